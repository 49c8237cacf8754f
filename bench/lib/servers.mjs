// The bench's own loopback servers:
//
//   page servers   one origin per library (latchkey, auth0-spa-js, oidc-client-ts), so each has
//                  its own storage and its own registered redirect URI `<origin>/`. Each serves
//                  the library's harness page at `/`, its scripts, and `/ping`, the cheap
//                  same-origin endpoint the fast path and the cold start call.
//   auth0 adapter  a thin loopback façade that makes the test IdP look like an Auth0 tenant,
//                  because auth0-spa-js builds its endpoint URLs from a fixed `domain`
//                  (`/authorize`, `/oauth/token`). See startAuth0Adapter.
//
// Everything binds to 127.0.0.1 and every server is closed by its `close()`.

import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { createServer } from "node:http";
import { extname, resolve, sep } from "node:path";
import { listen, closeServer } from "../../tests/idp/server.mjs";

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".wasm": "application/wasm",
  ".json": "application/json; charset=utf-8",
  ".map": "application/json; charset=utf-8",
};

function sendText(res, status, text) {
  res.writeHead(status, { "Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store" });
  res.end(text);
}

// The harness page. The configuration is inlined so a cold page load makes no extra request
// before the library starts.
/**
 * latchkey's documented start-up advice (README, "Start-up"): a preload link, so the browser
 * fetches the wasm alongside the page's scripts instead of once its module has run. Every
 * latchkey page has it unless asked for `?preload=0`.
 */
const LATCHKEY_PRELOAD = `
  <link rel="preload" href="/latchkey/latchkey_bg.wasm" as="fetch" type="application/wasm" crossorigin>`;

function pageHtml(lib, config, { preload = true } = {}) {
  const json = JSON.stringify({ ...config, lib }).replace(/</g, "\\u003c");
  return `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <link rel="icon" href="data:,">
  <title>${lib} bench</title>${lib === "latchkey" && preload ? LATCHKEY_PRELOAD : ""}
  <script>window.BENCH_CONFIG = ${json};</script>
</head>
<body>
  <script type="module" src="/harness.js"></script>
</body>
</html>
`;
}

/**
 * Starts one page server for `lib`.
 *
 * Files: `/harness.js` (+ its map) from `harnessFile`; `/latchkey/*` from `pkgDir` when given.
 * Static files are sent with `Cache-Control: no-cache` and an ETag, so a reload revalidates
 * them (304) the way a returning visitor's browser does; the page itself is `no-store`.
 *
 * @returns {{origin, setConfig(obj), server, close()}}
 */
export async function startPageServer({ lib, harnessFile, pkgDir }) {
  let config = null;
  const etags = new Map(); // path -> etag (files do not change during a run)

  async function serveFile(req, res, file) {
    let body;
    try {
      body = await readFile(file);
    } catch {
      return sendText(res, 404, "404\n");
    }
    let etag = etags.get(file);
    if (!etag) {
      etag = `"${createHash("sha1").update(body).digest("base64url")}"`;
      etags.set(file, etag);
    }
    const headers = {
      "Content-Type": TYPES[extname(file)] ?? "application/octet-stream",
      "Cache-Control": "no-cache",
      ETag: etag,
    };
    if (req.headers["if-none-match"] === etag) {
      res.writeHead(304, headers).end();
      return;
    }
    res.writeHead(200, { ...headers, "Content-Length": body.length }).end(body);
  }

  const server = createServer((req, res) => {
    const path = req.url.split(/[?#]/)[0];
    if (req.method !== "GET" && req.method !== "HEAD") return sendText(res, 405, "405\n");
    if (path === "/ping") {
      // The cheapest possible authorized endpoint: it does not look at the token.
      res.writeHead(200, { "Content-Type": "application/json", "Content-Length": 11, "Cache-Control": "no-store" });
      return res.end('{"ok":true}');
    }
    if (path === "/" || path === "/index.html") {
      if (!config) return sendText(res, 503, "not configured yet\n");
      // `?preload=0`: latchkey's page without its preload link (the cold start's other case).
      const preload = !/[?&]preload=0(&|$)/.test(req.url);
      const html = pageHtml(lib, config, { preload });
      res.writeHead(200, { "Content-Type": TYPES[".html"], "Cache-Control": "no-store" });
      return res.end(html);
    }
    if (path === "/harness.js" || path === "/harness.js.map") {
      return serveFile(req, res, path.endsWith(".map") ? `${harnessFile}.map` : harnessFile);
    }
    if (pkgDir && path.startsWith("/latchkey/")) {
      const root = resolve(pkgDir);
      const target = resolve(root, `.${decodeURIComponent(path.slice("/latchkey".length))}`);
      if (!target.startsWith(root + sep)) return sendText(res, 403, "403\n");
      return serveFile(req, res, target);
    }
    return sendText(res, 404, "404\n");
  });
  const port = await listen(server);
  return {
    origin: `http://127.0.0.1:${port}`,
    server,
    setConfig(value) {
      config = value;
    },
    close: () => closeServer(server),
  };
}

/** Reads a request body completely. */
async function readBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return Buffer.concat(chunks);
}

const b64urlJson = (part) => JSON.parse(Buffer.from(part, "base64url").toString("utf8"));
const jsonB64url = (value) => Buffer.from(JSON.stringify(value), "utf8").toString("base64url");

/**
 * Replaces the `iss` claim of an ID token. Only for auth0-spa-js, which (as its source shows)
 * decodes the ID token and compares its claims but does not check the signature, and which
 * expects the issuer of an Auth0 tenant: `<domain>/` with a trailing slash. The test IdP's
 * issuer has no trailing slash and lives on another port, so without this the SDK would refuse
 * every login. The signature part is left as it was.
 */
function reissue(idToken, iss) {
  const [header, payload, signature] = idToken.split(".");
  const claims = b64urlJson(payload);
  claims.iss = iss;
  return `${header}.${jsonB64url(claims)}.${signature}`;
}

/**
 * The Auth0 façade over the test IdP, on its own origin (its `domain`):
 *
 *   GET /authorize      → 302 to the IdP's authorization endpoint with the same query, so the
 *                         browser runs the real code flow at the IdP (cookies, interaction).
 *   POST /oauth/token   → forwarded to the IdP's token endpoint (same body, same Origin, so the
 *                         IdP counts and answers it exactly as a direct request, CORS included);
 *                         the ID token in a successful answer gets the façade's issuer.
 *   OPTIONS /oauth/token → the CORS preflight, forwarded too.
 *
 * `stats.forwarded` counts token requests passed on, `stats.reusedRefreshTokens` the requests
 * that carried a refresh token already presented before.
 */
export async function startAuth0Adapter({ issuer }) {
  const upstream = new URL(issuer);
  const stats = { forwarded: 0, reusedRefreshTokens: 0 };
  const seen = new Set();
  let origin;

  const server = createServer(async (req, res) => {
    const url = new URL(req.url, "http://x");
    try {
      if (req.method === "GET" && url.pathname === "/authorize") {
        res.writeHead(302, { Location: `${issuer}/auth${url.search}`, "Cache-Control": "no-store" });
        return res.end();
      }
      if (url.pathname !== "/oauth/token" || (req.method !== "POST" && req.method !== "OPTIONS")) {
        return sendText(res, 404, "404\n");
      }
      const body = req.method === "POST" ? await readBody(req) : undefined;
      const headers = {};
      for (const [name, value] of Object.entries(req.headers)) {
        if (["host", "connection", "content-length", "accept-encoding"].includes(name)) continue;
        headers[name] = value;
      }
      if (req.method === "POST") {
        stats.forwarded += 1;
        // A refresh token presented a second time is what the IdP answers with invalid_grant.
        const presented = new URLSearchParams(body.toString("utf8")).get("refresh_token");
        if (presented) {
          if (seen.has(presented)) stats.reusedRefreshTokens += 1;
          seen.add(presented);
        }
      }
      const answer = await fetch(new URL("/token", upstream), { method: req.method, headers, body });
      let out = Buffer.from(await answer.arrayBuffer());
      if (answer.status === 200 && /json/.test(answer.headers.get("content-type") ?? "")) {
        const json = JSON.parse(out.toString("utf8"));
        if (typeof json.id_token === "string") json.id_token = reissue(json.id_token, `${origin}/`);
        out = Buffer.from(JSON.stringify(json), "utf8");
      }
      const outHeaders = {};
      answer.headers.forEach((value, name) => {
        if (!["content-length", "content-encoding", "transfer-encoding", "connection", "keep-alive"].includes(name)) {
          outHeaders[name] = value;
        }
      });
      outHeaders["content-length"] = String(out.length);
      res.writeHead(answer.status, outHeaders).end(out);
    } catch (err) {
      if (!res.headersSent) sendText(res, 502, `auth0 adapter: ${err?.message ?? err}\n`);
      else res.destroy();
    }
  });
  const port = await listen(server);
  origin = `http://127.0.0.1:${port}`;
  return { origin, stats, close: () => closeServer(server) };
}
