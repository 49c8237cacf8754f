// Runs the AT Protocol test network by hand, for a demo or for debugging:
//   node tests/atproto/cli.mjs [--pds-port N] [--plc-port N] [--access-token-ttl S]
// The first stdout line is the handle's data as JSON (URLs, accounts, the wrong network); a line
// for humans follows. Ctrl-C (SIGINT) or SIGTERM stops it, exit code 0.

import { parseArgs } from "node:util";

import { startAtprotoNetwork } from "./network.mjs";

const { values } = parseArgs({
  options: {
    "pds-port": { type: "string" },
    "plc-port": { type: "string" },
    "access-token-ttl": { type: "string" },
  },
});
const number = (value) => (value === undefined ? undefined : Number(value));

const net = await startAtprotoNetwork({
  pdsPort: number(values["pds-port"]),
  plcPort: number(values["plc-port"]),
  accessTokenTtlSeconds: number(values["access-token-ttl"]),
});
const { pdsUrl, plcUrl, issuer, handleResolver, controlUrl, accessTokenTtlSeconds, accounts, wrong } = net;
process.stdout.write(`${JSON.stringify({ pdsUrl, plcUrl, issuer, handleResolver, controlUrl, accessTokenTtlSeconds, accounts, wrong })}\n`);
process.stdout.write(
  `PDS ${pdsUrl} (issuer ${issuer}), PLC ${plcUrl}; sign in as ${accounts.alice.handle} / ${accounts.alice.password}. Ctrl-C stops.\n`,
);

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  await net.close();
  process.exit(0);
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
