#!/usr/bin/env node
// The demo page against the AT Protocol test network ("Sign in with Bluesky"), for
// `scripts/demo --atproto`:
//
//   node tests/atproto/demo.mjs --spa-root DIR [--spa-port N] [--access-token-ttl S]
//
// Serves DIR on http://127.0.0.1:<spa-port> (a loopback client's redirect URI must be on
// 127.0.0.1) and starts the network (PDS + PLC, see README.md). The page's ./demo-config.json
// then says { profile: "atproto", clientId, handleResolver, plcDirectoryUrl, pdsUrl, account }:
// the loopback client id for the page's own origin, and the local account with its password
// (a local demo). stdout: one JSON line { spaOrigin, clientId, pdsUrl, issuer, handleResolver,
// plcUrl, account }, then one line for humans. SIGINT/SIGTERM stop everything, exit code 0.

import { resolve } from "node:path";
import { parseArgs } from "node:util";

import { startStaticServer } from "../idp/static.mjs";
import { startAtprotoNetwork } from "./network.mjs";
import { loopbackClientId } from "./oauth-client.mjs";

const SCOPE = "atproto transition:generic";

function int(name, value) {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a non-negative integer`);
  return n;
}

async function main() {
  const { values } = parseArgs({
    options: {
      "spa-root": { type: "string" },
      "spa-port": { type: "string" },
      "access-token-ttl": { type: "string" },
    },
  });
  if (!values["spa-root"]) throw new Error("--spa-root is required");
  const ttl = int("access-token-ttl", values["access-token-ttl"]);

  // The page first: a busy port fails before the network is started.
  const spa = await startStaticServer({ root: resolve(values["spa-root"]), port: int("spa-port", values["spa-port"]) ?? 0 });
  let net;
  let stopping = false;
  const stop = async (code = 0) => {
    if (stopping) return;
    stopping = true;
    await new Promise((ok) => spa.server.close(ok));
    spa.server.closeAllConnections?.();
    await net?.close();
    process.exit(code);
  };
  process.on("SIGINT", () => stop(0));
  process.on("SIGTERM", () => stop(0));

  try {
    net = await startAtprotoNetwork({ accessTokenTtlSeconds: ttl || undefined });
  } catch (err) {
    process.stderr.write(`atproto demo: ${err?.message ?? err}\n`);
    return stop(1);
  }
  const { handle, did, password } = net.accounts.alice;
  const redirectUri = `${spa.origin}/`;
  const clientId = loopbackClientId(redirectUri, SCOPE);
  spa.setDemoConfig({
    profile: "atproto",
    clientId,
    scope: SCOPE,
    handleResolver: net.handleResolver,
    plcDirectoryUrl: net.plcUrl,
    pdsUrl: net.pdsUrl,
    account: { handle, password },
  });

  const info = {
    spaOrigin: spa.origin,
    clientId,
    pdsUrl: net.pdsUrl,
    issuer: net.issuer,
    handleResolver: net.handleResolver,
    plcUrl: net.plcUrl,
    accessTokenTtlSeconds: net.accessTokenTtlSeconds,
    account: { handle, did, password },
  };
  process.stdout.write(`${JSON.stringify(info)}\n`);
  process.stdout.write(
    `demo page at ${spa.origin}/ — Sign in with Bluesky as ${handle} / ${password} (PDS ${net.pdsUrl}, PLC ${net.plcUrl}); Ctrl-C to stop\n`,
  );
}

main().catch((err) => {
  process.stderr.write(`atproto demo: ${err?.message ?? err}\n`);
  process.exit(1);
});
