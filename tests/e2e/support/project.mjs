// Facts about the checkout the tests run in.
import { readFileSync, existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");

// The folder scripts/stage-www fills: www/ plus the release package.
export const STAGED_WWW = path.join(ROOT, "target/www");

export function crateVersion() {
  const cargoToml = readFileSync(path.join(ROOT, "Cargo.toml"), "utf8");
  const match = /^version\s*=\s*"([^"]+)"/m.exec(cargoToml);
  if (!match) throw new Error("no version in Cargo.toml");
  return match[1];
}

// The folder with the end-to-end tests' app page and the release package.
export const STAGED_APP = path.join(ROOT, "target/e2e-app");

export function requireStagedApp() {
  if (!existsSync(path.join(STAGED_APP, "latchkey/latchkey_bg.wasm"))) {
    throw new Error("target/e2e-app is not staged: run scripts/build-pkg && scripts/stage-www");
  }
  return STAGED_APP;
}

export function requireStagedWww() {
  if (!existsSync(path.join(STAGED_WWW, "latchkey/latchkey_bg.wasm"))) {
    throw new Error("target/www is not staged: run scripts/build-pkg && scripts/stage-www");
  }
  return STAGED_WWW;
}
