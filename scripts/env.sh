# Sourced by every script: one environment for setup, build, test and demo,
# locally and in CI.
LATCHKEY_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export LATCHKEY_ROOT
# npm's binaryen (wasm-opt 132) must shadow Debian's binaryen 108, which
# silently breaks wasm-bindgen's release output (TOOLCHAIN.md pitfall 1).
export PATH="$LATCHKEY_ROOT/node_modules/.bin:$HOME/.cargo/bin:$PATH"
# A RUSTFLAGS variable would replace .cargo/config.toml's list and drop
# --cfg=web_sys_unstable_apis (Web Locks).
unset RUSTFLAGS
export WASM_PACK_CACHE="$LATCHKEY_ROOT/target/wasm-pack-cache"
mkdir -p "$WASM_PACK_CACHE"
export CHROMIUM_PATH="${CHROMIUM_PATH:-/usr/bin/chromium}"

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
