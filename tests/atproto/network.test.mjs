// The AT Protocol test network's own tests: one network for the whole file (started in about
// 3 to 6 seconds), checked with plain HTTP and the small OAuth client of oauth-client.mjs.
// Run with the system Node: node --test tests/atproto/

import assert from "node:assert/strict";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { after, before, test } from "node:test";

import { startAtprotoNetwork } from "./network.mjs";
import { createDpopKey, createOAuthClient, loopbackClientId, signInWithOAuth } from "./oauth-client.mjs";

const TTL = 20;
let net;

before(async () => {
  net = await startAtprotoNetwork({ accessTokenTtlSeconds: TTL });
});

after(async () => {
  await net?.close();
});

async function getJson(url, init) {
  const res = await fetch(url, init);
  return { status: res.status, headers: res.headers, body: await res.json() };
}

const portOf = (url) => Number(new URL(url).port);

/** Listening TCP sockets of /proc/net/tcp{,6} on `port`: their local addresses, in hex. */
function listeners(port) {
  const found = [];
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    if (!existsSync(file)) continue;
    for (const line of readFileSync(file, "utf8").split("\n").slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 4 || cols[3] !== "0A") continue; // 0A: LISTEN
      const [address, hexPort] = cols[1].split(":");
      if (parseInt(hexPort, 16) === port) found.push(address);
    }
  }
  return found;
}

function refusesConnections(port) {
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(false);
    });
    socket.once("error", () => resolve(true));
  });
}

test("the handle: URLs on localhost, alice, the wrong network, the lifetime in force", () => {
  assert.match(net.pdsUrl, /^http:\/\/localhost:\d+$/);
  assert.match(net.plcUrl, /^http:\/\/localhost:\d+$/);
  assert.equal(net.issuer, net.pdsUrl);
  assert.equal(net.handleResolver, net.pdsUrl);
  assert.match(net.nodeVersion, /^v22\./);
  assert.equal(net.accessTokenTtlSeconds, TTL);
  assert.equal(net.accounts.alice.handle, "alice.test");
  assert.match(net.accounts.alice.did, /^did:plc:[a-z2-7]{24}$/);
  assert.equal(typeof net.accounts.alice.password, "string");
  assert.equal(net.wrong.unknownHandle, "nobody.test");
  for (const name of ["elsewhere", "misissued"]) {
    assert.match(net.wrong[name].did, /^did:plc:/);
    assert.match(net.wrong[name].pdsUrl, /^http:\/\/localhost:\d+$/);
    assert.notEqual(net.wrong[name].pdsUrl, net.pdsUrl);
  }
});

test("every server listens on 127.0.0.1 only", () => {
  for (const url of [net.pdsUrl, net.plcUrl, net.controlUrl, net.wrong.elsewhere.pdsUrl, net.wrong.misissued.pdsUrl]) {
    assert.deepEqual(listeners(portOf(url)), ["0100007F"], `${url} listens on 127.0.0.1 and nothing else`);
  }
});

test("well-known documents: the PDS is its own authorization server, PAR and DPoP required", async () => {
  const resource = await getJson(`${net.pdsUrl}/.well-known/oauth-protected-resource`);
  assert.equal(resource.status, 200);
  assert.equal(resource.body.resource, net.pdsUrl);
  assert.deepEqual(resource.body.authorization_servers, [net.issuer]);

  const { status, body: as } = await getJson(`${net.issuer}/.well-known/oauth-authorization-server`);
  assert.equal(status, 200);
  assert.equal(as.issuer, net.issuer);
  assert.equal(as.require_pushed_authorization_requests, true);
  assert.equal(as.pushed_authorization_request_endpoint, `${net.issuer}/oauth/par`);
  assert.equal(as.token_endpoint, `${net.issuer}/oauth/token`);
  assert.ok(as.dpop_signing_alg_values_supported.includes("ES256"));
  assert.ok(as.token_endpoint_auth_methods_supported.includes("none"));
  assert.equal(as.client_id_metadata_document_supported, true);
  assert.ok(as.scopes_supported.includes("atproto"));
});

test("resolveHandle: alice.test is alice's DID; an unknown handle is HandleNotFound", async () => {
  const alice = await getJson(`${net.handleResolver}/xrpc/com.atproto.identity.resolveHandle?handle=alice.test`);
  assert.equal(alice.status, 200);
  assert.deepEqual(alice.body, { did: net.accounts.alice.did });

  const nobody = await getJson(`${net.handleResolver}/xrpc/com.atproto.identity.resolveHandle?handle=${net.wrong.unknownHandle}`);
  assert.equal(nobody.status, 400);
  assert.equal(nobody.body.error, "HandleNotFound");
});

test("the PLC document of alice's DID names the PDS and the handle", async () => {
  const { status, body: doc } = await getJson(`${net.plcUrl}/${net.accounts.alice.did}`);
  assert.equal(status, 200);
  assert.equal(doc.id, net.accounts.alice.did);
  assert.deepEqual(doc.alsoKnownAs, ["at://alice.test"]);
  const pds = doc.service.find((s) => s.id === "#atproto_pds");
  assert.equal(pds.type, "AtprotoPersonalDataServer");
  assert.equal(pds.serviceEndpoint, net.pdsUrl);
});

test("createAccount: a new handle resolves, and its DID document names the PDS", async () => {
  const bob = await net.createAccount("bob.test", "bob-password");
  assert.equal(bob.handle, "bob.test");
  assert.match(bob.did, /^did:plc:/);
  const resolved = await getJson(`${net.pdsUrl}/xrpc/com.atproto.identity.resolveHandle?handle=bob.test`);
  assert.deepEqual(resolved.body, { did: bob.did });
  const doc = (await getJson(`${net.plcUrl}/${bob.did}`)).body;
  assert.equal(doc.service.find((s) => s.id === "#atproto_pds").serviceEndpoint, net.pdsUrl);
  await assert.rejects(net.createAccount("bob.test", "again"), /createAccount bob\.test: 400/);
  await assert.rejects(net.createAccount("carol.example", "x"), /handle must end with \.test/);
});

test("counters count by path, handle, DID, grant type and outcome; resetCounters empties them", async () => {
  await net.resetCounters();
  await fetch(`${net.pdsUrl}/.well-known/oauth-protected-resource`);
  await fetch(`${net.pdsUrl}/.well-known/oauth-authorization-server`);
  await fetch(`${net.pdsUrl}/.well-known/oauth-authorization-server`);
  await fetch(`${net.pdsUrl}/xrpc/com.atproto.identity.resolveHandle?handle=alice.test`);
  await fetch(`${net.pdsUrl}/xrpc/com.atproto.identity.resolveHandle?handle=nobody.test`);
  await fetch(`${net.plcUrl}/${net.accounts.alice.did}`);
  // A preflight is counted apart from the requests.
  await fetch(`${net.pdsUrl}/oauth/token`, {
    method: "OPTIONS",
    headers: { origin: "http://127.0.0.1:5173", "access-control-request-method": "POST", "access-control-request-headers": "dpop" },
  });
  // A refresh without a DPoP proof, and one with a proof but no nonce.
  await fetch(`${net.pdsUrl}/oauth/token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ grant_type: "refresh_token", refresh_token: "ref-nothing", client_id: loopbackClientId("http://127.0.0.1/cb") }),
  });

  const c = await net.counters();
  assert.equal(c.protectedResourceMetadata, 1);
  assert.equal(c.authorizationServerMetadata, 2);
  assert.equal(c.resolveHandle.requests, 2);
  assert.deepEqual(c.resolveHandle.byHandle, { "alice.test": 1, "nobody.test": 1 });
  assert.deepEqual(c.resolveHandle.byOutcome, { success: 1, HandleNotFound: 1 });
  assert.equal(c.plc.documentFetches, 1);
  assert.deepEqual(c.plc.documentFetchesByDid, { [net.accounts.alice.did]: 1 });
  assert.deepEqual(c.pds.preflights, { "/oauth/token": 1 });
  assert.equal(c.token.requests, 1);
  assert.deepEqual(c.token.byGrantType, { refresh_token: 1 });
  assert.deepEqual(c.token.byGrantTypeAndOutcome, { refresh_token: { invalid_dpop_proof: 1 } });
  assert.equal(c.pds.requests["/oauth/token"], 1);

  await net.resetCounters();
  const empty = await net.counters();
  assert.equal(empty.token.requests, 0);
  assert.equal(empty.plc.documentFetches, 0);
  assert.deepEqual(empty.pds.requests, {});
});

test("OAuth with DPoP: PAR nonce dance, code and refresh grants, the shortened lifetime, replay", async () => {
  await net.resetCounters();
  const { client, tokens, did } = await signInWithOAuth({ issuer: net.issuer, identifier: "alice.test", password: net.accounts.alice.password });
  assert.equal(did, net.accounts.alice.did);
  assert.equal(tokens.sub, net.accounts.alice.did);
  assert.equal(tokens.token_type, "DPoP");
  // The lifetime asked for, not the PDS's 60 minutes: expires_in and the token's own claims.
  assert.ok(tokens.expires_in <= TTL && tokens.expires_in >= TTL - 2, `expires_in ${tokens.expires_in}`);
  const claims = JSON.parse(Buffer.from(tokens.access_token.split(".")[1], "base64url").toString());
  assert.equal(claims.exp - claims.iat, TTL);
  assert.equal(claims.iss, net.issuer);

  const session = await client.xrpc(net.pdsUrl, "com.atproto.server.getSession", tokens.access_token);
  assert.equal(session.status, 200);
  assert.equal(session.body.handle, "alice.test");

  const refreshed = await client.refresh(tokens.refresh_token);
  assert.equal(refreshed.status, 200);
  assert.ok(refreshed.body.expires_in <= TTL);
  assert.notEqual(refreshed.body.refresh_token, tokens.refresh_token);
  const replayed = await client.refresh(tokens.refresh_token);
  assert.equal(replayed.status, 400);
  assert.equal(replayed.body.error, "invalid_grant");

  const c = await net.counters();
  assert.deepEqual(c.par.byOutcome, { use_dpop_nonce: 1, success: 1 });
  assert.deepEqual(c.token.byGrantTypeAndOutcome, {
    authorization_code: { success: 1 },
    refresh_token: { success: 1, invalid_grant: 1 },
  });
  assert.deepEqual(c.token.byOutcome, { success: 2, invalid_grant: 1 });
  assert.deepEqual(c.pds.outcomes["/xrpc/com.atproto.server.getSession"], { use_dpop_nonce: 1, success: 1 });
});

test("setAccessTokenTtl changes the lifetime of the tokens issued next", async () => {
  assert.equal(await net.setAccessTokenTtl(45), 45);
  try {
    const { tokens } = await signInWithOAuth({ issuer: net.issuer, identifier: "alice.test", password: net.accounts.alice.password });
    assert.ok(tokens.expires_in <= 45 && tokens.expires_in >= 43, `expires_in ${tokens.expires_in}`);
  } finally {
    await net.setAccessTokenTtl(TTL);
  }
});

test("a token request with a stale nonce is refused use_dpop_nonce and counted so", async () => {
  const client = createOAuthClient({
    issuer: net.issuer,
    clientId: loopbackClientId("http://127.0.0.1/cb"),
    redirectUri: "http://127.0.0.1/cb",
    key: await createDpopKey(),
  });
  await net.resetCounters();
  const answer = await client.token({ grant_type: "authorization_code", code: "cod-nothing", code_verifier: "x".repeat(43), redirect_uri: "http://127.0.0.1/cb" });
  assert.equal(answer.retried, true); // the first proof had no nonce
  const c = await net.counters();
  assert.equal(c.token.byGrantTypeAndOutcome.authorization_code.use_dpop_nonce, 1);
  assert.equal(c.token.requests, 2);
});

test("wrong network (b): elsewhere.test resolves here, but its DID document names another PDS", async () => {
  const { elsewhere } = net.wrong;
  const resolved = await getJson(`${net.pdsUrl}/xrpc/com.atproto.identity.resolveHandle?handle=elsewhere.test`);
  assert.deepEqual(resolved.body, { did: elsewhere.did });
  const doc = (await getJson(`${net.plcUrl}/${elsewhere.did}`)).body;
  assert.equal(doc.service.find((s) => s.id === "#atproto_pds").serviceEndpoint, elsewhere.pdsUrl);

  // That PDS is its own, self-consistent authorization server: not this network's issuer.
  await net.resetCounters();
  const resource = await getJson(`${elsewhere.pdsUrl}/.well-known/oauth-protected-resource`);
  assert.equal(resource.headers.get("access-control-allow-origin"), "*");
  assert.deepEqual(resource.body.authorization_servers, [elsewhere.pdsUrl]);
  const as = (await getJson(`${elsewhere.pdsUrl}/.well-known/oauth-authorization-server`)).body;
  assert.equal(as.issuer, elsewhere.pdsUrl);
  assert.notEqual(as.issuer, net.issuer);
  const par = await getJson(`${elsewhere.pdsUrl}/oauth/par`, { method: "POST" });
  assert.equal(par.status, 400);
  assert.equal(par.body.error, "invalid_request");
  const c = await net.counters();
  assert.deepEqual(c.elsewhere.requests, {
    "/.well-known/oauth-protected-resource": 1,
    "/.well-known/oauth-authorization-server": 1,
    "/oauth/par": 1,
  });

  // The account still signs in at this PDS: a token whose sub names the other PDS.
  const { tokens } = await signInWithOAuth({ issuer: net.issuer, identifier: "elsewhere.test", password: elsewhere.password });
  assert.equal(tokens.sub, elsewhere.did);
});

test("wrong network (c): misissued.test's PDS names an authorization server whose issuer is not its origin", async () => {
  const { misissued } = net.wrong;
  const doc = (await getJson(`${net.plcUrl}/${misissued.did}`)).body;
  assert.equal(doc.service.find((s) => s.id === "#atproto_pds").serviceEndpoint, misissued.pdsUrl);
  const resource = (await getJson(`${misissued.pdsUrl}/.well-known/oauth-protected-resource`)).body;
  assert.deepEqual(resource.authorization_servers, [misissued.pdsUrl]);
  const as = (await getJson(`${misissued.pdsUrl}/.well-known/oauth-authorization-server`)).body;
  assert.equal(as.issuer, net.issuer);
  assert.equal(misissued.claimedIssuer, net.issuer);
  assert.notEqual(as.issuer, misissued.pdsUrl);
  assert.equal(as.pushed_authorization_request_endpoint, `${net.issuer}/oauth/par`);
});

test("movePds points a DID at any endpoint", async () => {
  const dave = await net.createAccount("dave.test", "dave-password");
  await net.movePds(dave.did, "http://localhost:9");
  const doc = (await getJson(`${net.plcUrl}/${dave.did}`)).body;
  assert.equal(doc.service.find((s) => s.id === "#atproto_pds").serviceEndpoint, "http://localhost:9");
});

test("startAtprotoNetwork refuses bad options before starting anything", async () => {
  await assert.rejects(startAtprotoNetwork({ accessTokenTtlSeconds: 0 }), RangeError);
  await assert.rejects(startAtprotoNetwork({ pdsPort: 70000 }), RangeError);
});

test("a port in use: the start fails with the reason, and leaves no data directory", async () => {
  const dataDirs = () => readdirSync(tmpdir()).filter((name) => name.startsWith("latchkey-atproto-")).sort();
  const before = dataDirs();
  await assert.rejects(startAtprotoNetwork({ pdsPort: portOf(net.pdsUrl) }), /did not start: Error: listen EADDRINUSE/);
  assert.deepEqual(dataDirs(), before);
});

// Last: it ends the file's network.
test("close() leaves no process, port or data directory behind", async () => {
  const ports = [net.pdsUrl, net.plcUrl, net.controlUrl, net.wrong.elsewhere.pdsUrl, net.wrong.misissued.pdsUrl].map(portOf);
  const { pid, dataDir } = net;
  assert.doesNotThrow(() => process.kill(pid, 0));
  assert.ok(existsSync(dataDir));
  const started = Date.now();
  await net.close();
  assert.ok(Date.now() - started < 5000, `close took ${Date.now() - started} ms`);
  assert.throws(() => process.kill(pid, 0), { code: "ESRCH" });
  assert.equal(existsSync(dataDir), false);
  for (const port of ports) {
    assert.equal(await refusesConnections(port), true, `port ${port} is closed`);
    assert.deepEqual(listeners(port), []);
  }
  await net.close(); // twice is fine
});
