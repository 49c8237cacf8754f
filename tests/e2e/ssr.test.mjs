// Server-side rendering: `import "latchkey"` and `import "latchkey/react"`
// in Node 20 with no DOM touch nothing (no window, no wasm fetched or
// compiled), create() rejects with unsupported_environment, and
// <AuthProvider> renders its children with isLoading true.
//
// The package is the built one (dist/latchkey), reached by name through its
// `exports` map from a scratch app folder, in a child Node process so that
// nothing of the test runner leaks in.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { promisify } from "node:util";
import path from "node:path";

import { ROOT } from "./support/project.mjs";

const run = promisify(execFile);
const PACKAGE = path.join(ROOT, "dist/latchkey");
const APP = path.join(ROOT, "target/ssr-app");

const SERVER_JS = `// Counts every way the wasm could be reached before anything is imported.
const touched = [];
const realFetch = globalThis.fetch;
globalThis.fetch = (...args) => (touched.push("fetch"), realFetch(...args));
for (const name of ["instantiate", "instantiateStreaming", "compile", "compileStreaming"]) {
  const real = WebAssembly[name];
  WebAssembly[name] = (...args) => (touched.push(name), real.apply(WebAssembly, args));
}

const latchkey = await import("latchkey");
const { AuthProvider, useAuth } = await import("latchkey/react");
const { createElement } = await import("react");
const { renderToString } = await import("react-dom/server");

const options = { issuer: "https://idp.example", clientId: "spa", redirectUri: "https://app.example/" };
function Status() {
  const auth = useAuth();
  return createElement("p", null, \`isLoading=\${auth.isLoading} isAuthenticated=\${auth.isAuthenticated} user=\${auth.user} client=\${auth.client}\`);
}
const html = renderToString(createElement(AuthProvider, { options }, createElement(Status)));
let outside;
try {
  renderToString(createElement(Status));
} catch (e) {
  outside = e.message;
}
const created = await latchkey.AuthClient.create(options).then(
  () => ({ ok: true }),
  (e) => ({ code: e.code, name: e.name, isLatchkeyError: latchkey.isLatchkeyError(e) }),
);
console.log(JSON.stringify({
  html,
  outside,
  created,
  exports: Object.keys(latchkey).sort(),
  reactExports: ["AuthProvider", "useAuth"].filter((n) => typeof { AuthProvider, useAuth }[n] === "function"),
  globals: [typeof window, typeof document, typeof globalThis.navigator?.locks],
  touched,
}));
`;

test("both entry points import in Node without a DOM; AuthProvider renders loading; create() says unsupported_environment", async () => {
  if (!existsSync(path.join(PACKAGE, "react.js"))) throw new Error("dist/latchkey is not built: run scripts/build-pkg");
  rmSync(APP, { recursive: true, force: true });
  mkdirSync(path.join(APP, "node_modules"), { recursive: true });
  writeFileSync(path.join(APP, "package.json"), JSON.stringify({ name: "latchkey-ssr-app", private: true, type: "module" }));
  // react and react-dom resolve from the repository's node_modules above.
  symlinkSync(PACKAGE, path.join(APP, "node_modules/latchkey"), "dir");
  writeFileSync(path.join(APP, "server.js"), SERVER_JS);

  const { stdout } = await run(process.execPath, ["server.js"], { cwd: APP, timeout: 30_000 });
  const result = JSON.parse(stdout);
  assert.deepEqual(result.globals, ["undefined", "undefined", "undefined"], "a DOM-less Node");
  assert.deepEqual(result.touched, [], "nothing fetched or compiled the wasm");
  assert.deepEqual(result.exports, ["AuthClient", "initialize", "isLatchkeyError", "version"]);
  assert.deepEqual(result.reactExports, ["AuthProvider", "useAuth"]);
  assert.equal(result.html, "<p>isLoading=true isAuthenticated=false user=null client=null</p>");
  assert.match(result.outside, /inside <AuthProvider>/);
  assert.deepEqual(result.created, { code: "unsupported_environment", name: "LatchkeyError", isLatchkeyError: true });
});

// A React Server Component (Next.js's app/layout) may import latchkey/react:
// its bundler sees the directive and loads the file as a client module.
// React's server build has no hooks, so without it the import fails there.
test("latchkey/react begins with the \"use client\" directive", () => {
  const source = readFileSync(path.join(PACKAGE, "react.js"), "utf8");
  assert.ok(/^"use client";\n/.test(source), source.slice(0, 80));
});
