// A minimal static file server for the demo/test SPA, bound to 127.0.0.1.
//
// It exists so end-to-end tests need no other tool (python, vite): one call starts the IdP and
// the page that talks to it, on two origins, like a real deployment.

import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { createServer } from "node:http";
import { extname, join, resolve, sep } from "node:path";

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".cjs": "text/javascript; charset=utf-8",
  ".wasm": "application/wasm", // required for WebAssembly.instantiateStreaming
  ".css": "text/css; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".map": "application/json; charset=utf-8",
  ".png": "image/png",
  ".svg": "image/svg+xml",
  ".ico": "image/x-icon",
  ".txt": "text/plain; charset=utf-8",
  ".ts": "text/plain; charset=utf-8",
};

function send(res, status, text) {
  res.writeHead(status, {
    "Content-Type": "text/plain; charset=utf-8",
    "Content-Length": Buffer.byteLength(text),
    "Cache-Control": "no-store",
  });
  res.end(text);
}

async function fileAt(path) {
  try {
    const st = await stat(path);
    if (st.isFile()) return { path, size: st.size };
    if (st.isDirectory()) return fileAt(join(path, "index.html"));
  } catch {
    // not found: fall through
  }
  return undefined;
}

/**
 * Maps a request path to a file under `root`, or to an error status.
 * `/` and directories serve index.html; an extension-less path that is not a file also tries
 * `<path>.html`, so `/callback` serves callback.html.
 */
async function resolveFile(root, rawPath) {
  let decoded;
  try {
    decoded = decodeURIComponent(rawPath);
  } catch {
    return { status: 400 };
  }
  if (decoded.includes("\0")) return { status: 400 };
  // Refuse any `..` segment outright (raw or percent-encoded, either slash), rather than
  // normalising it: a client sending one is probing, not browsing.
  if (decoded.split(/[\\/]/).includes("..")) return { status: 403 };

  const target = resolve(root, `.${decoded}`);
  if (target !== root && !target.startsWith(root + sep)) return { status: 403 };

  const found = (await fileAt(target)) ?? (extname(target) === "" ? await fileAt(`${target}.html`) : undefined);
  return found ?? { status: 404 };
}

/** The path at which the page can learn where its authorization server is (set by startIdp). */
export const DEMO_CONFIG_PATH = "/demo-config.json";

/**
 * Starts a static server for `root` on 127.0.0.1:`port` (0 = any free port).
 * Resolves to `{ server, port, origin, setDemoConfig }` once listening; once
 * `setDemoConfig(object)` was called, `GET /demo-config.json` answers that object as JSON
 * (so a page needs no configuration to find the issuer on the other origin).
 */
export async function startStaticServer({ root, port = 0 }) {
  const absRoot = resolve(root);
  const st = await stat(absRoot);
  if (!st.isDirectory()) throw new Error(`serveSpa.root is not a directory: ${absRoot}`);

  let demoConfig;
  const server = createServer(async (req, res) => {
    if (req.method !== "GET" && req.method !== "HEAD") return send(res, 405, "method not allowed\n");
    // The raw request path, not new URL(): the URL parser would quietly resolve `..` and
    // `%2e%2e` segments, and a traversal attempt should be refused, not served from the root.
    const rawPath = req.url.split(/[?#]/)[0];
    if (rawPath === DEMO_CONFIG_PATH && demoConfig) {
      res.writeHead(200, {
        "Content-Type": TYPES[".json"],
        "Content-Length": Buffer.byteLength(demoConfig),
        "Cache-Control": "no-store",
      });
      return res.end(req.method === "HEAD" ? undefined : demoConfig);
    }
    const file = await resolveFile(absRoot, rawPath.startsWith("/") ? rawPath : `/${rawPath}`);
    if (file.status) return send(res, file.status, `${file.status}\n`);

    res.writeHead(200, {
      "Content-Type": TYPES[extname(file.path).toLowerCase()] ?? "application/octet-stream",
      "Content-Length": file.size,
      "Cache-Control": "no-store",
    });
    if (req.method === "HEAD") return res.end();
    createReadStream(file.path)
      .on("error", () => res.destroy())
      .pipe(res);
  });

  await new Promise((ok, fail) => {
    server.once("error", fail);
    server.listen(port, "127.0.0.1", () => {
      server.off("error", fail);
      ok();
    });
  });
  const actualPort = server.address().port;
  return {
    server,
    port: actualPort,
    origin: `http://127.0.0.1:${actualPort}`,
    setDemoConfig: (config) => {
      demoConfig = `${JSON.stringify(config)}\n`;
    },
  };
}
