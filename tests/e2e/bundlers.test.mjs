// The packed npm tarball, installed unmodified the way a user installs it,
// works in a Vite 7 build, a webpack 5 build and a plain module page with
// no bundler: the wasm is fetched from the app's own origin, and a real
// login plus fetchWithAuth succeed in headless Chromium.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync, copyFileSync } from "node:fs";
import { promisify } from "node:util";
import path from "node:path";

import { startIdp } from "../idp/server.mjs";
import { launchBrowser, collectPageErrors } from "./support/browser.mjs";
import { ROOT, crateVersion } from "./support/project.mjs";

const run = promisify(execFile);
const TARBALL = path.join(ROOT, "dist", `latchkey-${crateVersion()}.tgz`);
const APPS = path.join(ROOT, "target/bundler-apps");
const BIN = path.join(ROOT, "node_modules/.bin");

// The same app for every kind: the options come from a global the test
// injects, the callback is completed on load, and `window.app` drives it.
const MAIN_JS = `import { AuthClient, isLatchkeyError, version } from "latchkey";

const status = document.getElementById("status");

async function start() {
  const client = await AuthClient.create(window.latchkeyAppOptions);
  if (new URLSearchParams(location.search).has("code")) {
    await client.handleRedirectCallback();
  }
  window.app = {
    version: await version(),
    isAuthenticated: () => client.isAuthenticated(),
    login: () => client.login(),
    async callApi(url) {
      const response = await client.fetchWithAuth(url);
      return response.status;
    },
  };
  status.textContent = (await client.isAuthenticated()) ? "signed in" : "signed out";
  document.body.dataset.ready = "true";
}

start().catch((error) => {
  status.textContent = isLatchkeyError(error) ? error.code + ": " + error.message : String(error);
  document.body.dataset.ready = "false";
  console.error(error);
});
`;

const page = (head, script) => `<!doctype html>
<html>
  <head>
    <meta charset="utf-8" />
    <title>latchkey in a bundler app</title>
    <link rel="icon" href="data:," />
${head}
  </head>
  <body>
    <p id="status">loading</p>
    ${script}
  </body>
</html>
`;

const WEBPACK_CONFIG = `import path from "node:path";
import { fileURLToPath } from "node:url";

export default {
  entry: "./main.js",
  output: {
    path: path.join(path.dirname(fileURLToPath(import.meta.url)), "dist"),
    filename: "main.js",
    clean: true,
  },
};
`;

// kind → files of the app, how to build it, and the folder to serve.
const KINDS = {
  vite: {
    files: { "index.html": page("", `<script type="module" src="/main.js"></script>`) },
    build: (dir) => run(path.join(BIN, "vite"), ["build"], { cwd: dir }),
    served: "dist",
  },
  webpack: {
    files: {
      "webpack.config.js": WEBPACK_CONFIG,
      "index.html": page("", `<script src="./main.js" defer></script>`),
    },
    build: async (dir) => {
      const output = await run(path.join(BIN, "webpack"), ["--mode", "production"], { cwd: dir });
      // webpack emits scripts only; the page is copied next to them.
      copyFileSync(path.join(dir, "index.html"), path.join(dir, "dist/index.html"));
      return output;
    },
    served: "dist",
  },
  plain: {
    files: {
      "index.html": page(
        `    <script type="importmap">{ "imports": { "latchkey": "./node_modules/latchkey/index.js" } }</script>`,
        `<script type="module" src="./main.js"></script>`,
      ),
    },
    build: null,
    served: ".",
  },
};

let browser;

before(async () => {
  if (!existsSync(TARBALL)) throw new Error(`${TARBALL} is missing: run scripts/build-pkg`);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
});

// Creates the app in a fresh folder, installs the tarball into it with npm
// and builds it; resolves with the folder to serve.
async function makeApp(kind) {
  const { files, build, served } = KINDS[kind];
  const dir = path.join(APPS, kind);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    path.join(dir, "package.json"),
    JSON.stringify({ name: `latchkey-${kind}-app`, private: true, type: "module" }, null, 2) + "\n",
  );
  writeFileSync(path.join(dir, "main.js"), MAIN_JS);
  for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, name), text);

  // The tarball has no dependencies, so this needs no registry.
  await run("npm", ["install", "--offline", "--no-audit", "--no-fund", TARBALL], { cwd: dir });
  assert.ok(existsSync(path.join(dir, "node_modules/latchkey/latchkey_bg.wasm")), "npm installed the package");

  if (build) {
    try {
      await build(dir);
    } catch (error) {
      throw new Error(`${kind} build failed:\n${error.stdout}\n${error.stderr}`);
    }
    // The bundler copied the package's wasm as it is (renamed, not rewritten).
    const out = path.join(dir, served);
    const emitted = readdirSync(out, { recursive: true }).filter((file) => String(file).endsWith(".wasm"));
    assert.equal(emitted.length, 1, `${kind} emitted one wasm file: ${emitted}`);
    assert.ok(
      readFileSync(path.join(out, String(emitted[0]))).equals(readFileSync(path.join(dir, "node_modules/latchkey/latchkey_bg.wasm"))),
      `${kind} emitted the package's wasm unchanged`,
    );
  }
  return path.join(dir, served);
}

for (const kind of Object.keys(KINDS)) {
  test(`${kind}: the installed tarball loads its wasm, logs in and calls the API`, async () => {
    const idp = await startIdp({ serveSpa: { root: await makeApp(kind) } });
    const context = await browser.newContext();
    try {
      const origin = idp.spaOrigin;
      await context.addInitScript((options) => {
        window.latchkeyAppOptions = options;
      }, {
        issuer: idp.issuer,
        clientId: idp.clientId,
        redirectUri: `${origin}/`,
        scope: "openid offline_access api",
        allowInsecureLoopback: true,
        allowedOrigins: [new URL(idp.whoamiUrl).origin],
      });
      const page = await context.newPage();
      const errors = collectPageErrors(page);
      const wasm = [];
      page.on("response", (response) => {
        if (new URL(response.url()).pathname.endsWith(".wasm")) {
          wasm.push({ url: response.url(), status: response.status(), type: response.headers()["content-type"] });
        }
      });
      const ready = async () => {
        await page.waitForSelector("body[data-ready]", { state: "attached", timeout: 15_000 });
        assert.equal(await page.getAttribute("body", "data-ready"), "true", await page.textContent("#status"));
      };

      await page.goto(`${origin}/`);
      await ready();
      assert.equal(await page.evaluate(() => window.app.version), crateVersion());
      assert.equal(await page.evaluate(() => window.app.isAuthenticated()), false);

      // login() navigates to the IdP, which signs "alice" in and redirects
      // back with code, state and iss; the app completes the callback.
      const landed = page.waitForURL((url) => url.searchParams.has("code"), { timeout: 15_000 });
      await page.evaluate(() => {
        void window.app.login();
      });
      await landed;
      await ready();
      assert.equal(page.url(), `${origin}/`, "callback parameters removed from the address bar");
      assert.equal(await page.textContent("#status"), "signed in");
      assert.equal(idp.counters().token.byGrantType.authorization_code, 1);

      assert.equal(await page.evaluate((url) => window.app.callApi(url), idp.whoamiUrl), 200);
      assert.equal(idp.counters().api.byStatus[200], 1);

      assert.ok(wasm.length >= 1, "the wasm was fetched");
      for (const response of wasm) {
        assert.equal(new URL(response.url).origin, origin, `wasm from the app's origin: ${response.url}`);
        assert.equal(response.status, 200);
        assert.equal(response.type, "application/wasm");
      }
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
      await idp.close();
    }
  });
}
