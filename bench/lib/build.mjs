// Bundles the harness pages with esbuild into bench/build/ (gitignored), and snapshots the
// published package so a concurrent `scripts/build-pkg` cannot change it mid-run.
import { cp, mkdir, rm } from "node:fs/promises";
import { join } from "node:path";

import { build } from "esbuild";

export const LIBS = ["latchkey", "auth0", "oidc"];

/**
 * @param {string} benchDir absolute path of bench/
 * @param {string} pkgDir the built package (dist/latchkey)
 * @returns {{ harness: Record<string,string>, pkgDir: string }}
 */
export async function buildHarness(benchDir, pkgDir) {
  const out = join(benchDir, "build");
  await rm(out, { recursive: true, force: true });
  await mkdir(out, { recursive: true });

  const pkgCopy = join(out, "latchkey-pkg");
  await cp(pkgDir, pkgCopy, { recursive: true });

  const harness = {};
  for (const lib of LIBS) {
    const outfile = join(out, "harness", `${lib}.js`);
    await build({
      entryPoints: [join(benchDir, "harness", `${lib}.js`)],
      outfile,
      bundle: true,
      format: "esm",
      platform: "browser",
      target: "es2022",
      minify: true,
      sourcemap: "linked",
      // latchkey is loaded as published, from /latchkey/ on the page's origin.
      external: ["./latchkey/index.js"],
      logLevel: "warning",
    });
    harness[lib] = outfile;
  }
  return { harness, pkgDir: pkgCopy };
}
