// Size: what a browser downloads. latchkey's published package as it ships (the wasm and every
// JS file the entry index.js loads: the wasm-bindgen glue latchkey.js, errors.js, popup.js), and
// the same JS bundled and minified by esbuild like the baselines; the baselines as an app's
// bundler would ship them (esbuild --bundle --minify of a minimal import), and their own
// published browser builds. Each raw, gzip -9 and brotli -q 11 (node:zlib).
import { readFile, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { brotliCompressSync, constants, gzipSync } from "node:zlib";

import { build } from "esbuild";

function measure(buffer) {
  return {
    raw: buffer.length,
    gzip: gzipSync(buffer, { level: 9 }).length,
    brotli: brotliCompressSync(buffer, {
      params: {
        [constants.BROTLI_PARAM_QUALITY]: 11,
        [constants.BROTLI_PARAM_SIZE_HINT]: buffer.length,
      },
    }).length,
  };
}

const sum = (parts) => ({
  raw: parts.reduce((n, p) => n + p.raw, 0),
  gzip: parts.reduce((n, p) => n + p.gzip, 0),
  brotli: parts.reduce((n, p) => n + p.brotli, 0),
});

// The smallest program that keeps each library's client in the bundle.
const ENTRIES = {
  auth0: 'export { createAuth0Client } from "@auth0/auth0-spa-js";\n',
  oidc: 'export { UserManager, WebStorageStateStore } from "oidc-client-ts";\n',
  latchkey: 'export { AuthClient } from "LATCHKEY";\n',
};

async function bundle(benchDir, name, source) {
  const dir = join(benchDir, "build", "size");
  await mkdir(dir, { recursive: true });
  const entry = join(dir, `${name}-entry.js`);
  await writeFile(entry, source);
  const outfile = join(dir, `${name}.min.js`);
  await build({
    entryPoints: [entry],
    outfile,
    bundle: true,
    minify: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    // The wasm is fetched by URL at run time, not bundled.
    external: ["*.wasm"],
    nodePaths: [join(benchDir, "node_modules")],
    logLevel: "error",
  });
  return readFile(outfile);
}

// The JS files `entry` loads, itself included, following its static relative imports.
async function moduleFiles(pkgDir, entry) {
  const seen = new Set();
  const visit = async (file) => {
    if (seen.has(file)) return;
    seen.add(file);
    const source = await readFile(join(pkgDir, file), "utf8");
    for (const [, spec] of source.matchAll(/(?:^|[;\s])(?:import|export)\s[^;]*?from\s*["']\.\/([^"']+\.js)["']/g)) await visit(spec);
  };
  await visit(entry);
  return [...seen];
}

// Each baseline's own minified browser build, as its package publishes it.
const PUBLISHED = {
  auth0: "@auth0/auth0-spa-js/dist/auth0-spa-js.production.js",
  oidc: "oidc-client-ts/dist/browser/oidc-client-ts.min.js",
};

async function publishedBuild(benchDir, lib) {
  try {
    return measure(await readFile(join(benchDir, "node_modules", PUBLISHED[lib])));
  } catch {
    return null;
  }
}

export async function sizes(benchDir, pkgDir) {
  const files = {};
  for (const f of ["latchkey_bg.wasm", ...(await moduleFiles(pkgDir, "index.js"))]) files[f] = measure(await readFile(join(pkgDir, f)));
  const published = sum(Object.values(files));
  const latchkeyMin = measure(await bundle(benchDir, "latchkey", ENTRIES.latchkey.replace("LATCHKEY", join(pkgDir, "index.js"))));
  const bundled = sum([files["latchkey_bg.wasm"], latchkeyMin]);
  return {
    latchkey: {
      files,
      published,
      bundledJs: latchkeyMin,
      bundled,
    },
    auth0: { bundled: measure(await bundle(benchDir, "auth0", ENTRIES.auth0)), published: await publishedBuild(benchDir, "auth0") },
    oidc: { bundled: measure(await bundle(benchDir, "oidc", ENTRIES.oidc)), published: await publishedBuild(benchDir, "oidc") },
  };
}
