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
# The release package is built with this pinned nightly when it is
# installed (scripts/setup installs it): std rebuilt for size and panics that
# abort without formatting a message (issue 20). Tests, clippy and fmt use
# the stable toolchain.
export LATCHKEY_SIZE_TOOLCHAIN=nightly-2026-10-30
export WASM_PACK_CACHE="$LATCHKEY_ROOT/target/wasm-pack-cache"
mkdir -p "$WASM_PACK_CACHE"
export CHROMIUM_PATH="${CHROMIUM_PATH:-/usr/bin/chromium}"

# Whether the pinned nightly of the release build is installed, with the
# standard library's sources (build-std) and the wasm32 target (wasm-pack
# checks for it).
size_toolchain_ready() {
  rustup run "$LATCHKEY_SIZE_TOOLCHAIN" rustc --version >/dev/null 2>&1 \
    && rustup component list --toolchain "$LATCHKEY_SIZE_TOOLCHAIN" --installed 2>/dev/null \
      | grep -q '^rust-src' \
    && rustup target list --toolchain "$LATCHKEY_SIZE_TOOLCHAIN" --installed 2>/dev/null \
      | grep -qx wasm32-unknown-unknown
}

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
