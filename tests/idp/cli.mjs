#!/usr/bin/env node
// Starts the test IdP from the command line (demo, manual testing, Playwright webServer).
//
//   node tests/idp/cli.mjs [--port N] [--access-token-ttl S] [--refresh-token-ttl S]
//                          [--advertised-expires-in S] [--mode rfc6750|bluesky]
//                          [--spa-root DIR] [--spa-port N]
//                          [--spa-origin ORIGIN ...] [--redirect-uri URI ...]
//
// stdout: one JSON line {"issuer","spaOrigin","spaOrigins","whoami","refreshSession","clientId"}
// that scripts can parse, then one line for humans. Stops cleanly (exit 0) on SIGINT/SIGTERM.

import { resolve } from "node:path";
import { parseArgs } from "node:util";

import { startIdp } from "./server.mjs";

const DEFAULT_SPA_ORIGIN = "http://127.0.0.1:5173";

function int(name, value) {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a non-negative integer`);
  return n;
}

async function main() {
  const { values } = parseArgs({
    options: {
      port: { type: "string" },
      "access-token-ttl": { type: "string" },
      "refresh-token-ttl": { type: "string" },
      "advertised-expires-in": { type: "string" },
      mode: { type: "string" },
      "spa-root": { type: "string" },
      "spa-port": { type: "string" },
      "spa-origin": { type: "string", multiple: true },
      "redirect-uri": { type: "string", multiple: true },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    process.stdout.write(
      "usage: node tests/idp/cli.mjs [--port N] [--access-token-ttl S] [--refresh-token-ttl S] [--advertised-expires-in S]\n" +
        "                              [--mode rfc6750|bluesky] [--spa-root DIR] [--spa-port N] [--spa-origin ORIGIN ...] [--redirect-uri URI ...]\n",
    );
    return;
  }

  let spaOrigins = values["spa-origin"] ?? [];
  // With nothing to redirect to, the client could not log in at all: assume a dev server.
  if (!spaOrigins.length && !values["spa-root"] && !values["redirect-uri"]) spaOrigins = [DEFAULT_SPA_ORIGIN];

  const idp = await startIdp({
    port: int("port", values.port) ?? 0,
    accessTokenTtl: int("access-token-ttl", values["access-token-ttl"]),
    refreshTokenTtl: int("refresh-token-ttl", values["refresh-token-ttl"]),
    advertisedExpiresIn: int("advertised-expires-in", values["advertised-expires-in"]),
    mode: values.mode,
    spaOrigins,
    redirectUris: values["redirect-uri"],
    serveSpa: values["spa-root"] ? { root: resolve(values["spa-root"]), port: int("spa-port", values["spa-port"]) ?? 0 } : undefined,
  });

  const info = {
    issuer: idp.issuer,
    spaOrigin: idp.spaOrigin ?? null,
    spaOrigins: idp.spaOrigins,
    whoami: idp.whoamiUrl,
    refreshSession: idp.refreshSessionUrl,
    clientId: idp.clientId,
  };
  process.stdout.write(`${JSON.stringify(info)}\n`);
  process.stdout.write(
    `test IdP ready at ${idp.issuer} (client_id "spa", user "alice")${idp.spaOrigin ? `, SPA at ${idp.spaOrigin}/` : ""}; Ctrl-C to stop\n`,
  );

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await idp.close();
    process.exit(0);
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}

main().catch((err) => {
  process.stderr.write(`test idp: ${err?.message ?? err}\n`);
  process.exit(1);
});
