#!/usr/bin/env bash
# Checks the Rust toolchain the build needs and adds what can be added from the registries
# (cargo-nextest from crates.io). A machine without cargo at all cannot be fixed from here: only
# the package registries are reachable, and Debian's rustc is too old for this workspace.
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

[[ -d $HOME/.cargo/bin ]] && PATH="$HOME/.cargo/bin:$PATH"
command -v cargo >/dev/null || die "cargo is not installed: install a stable Rust toolchain (rustup) and re-run"

# 1.87: the WASM component's bindings (wasip2) and the wasmtime that runs it in the tests.
need="1.87.0"
have="$(rustc --version | awk '{print $2}')"
if [[ "$(printf '%s\n%s\n' "$need" "$have" | sort -V | head -n1)" != "$need" ]]; then
  die "rustc $have is older than $need: update the toolchain (rustup update stable)"
fi
for component in rustfmt clippy; do
  if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
    if command -v rustup >/dev/null; then
      step "rustup component add $component"
      rustup component add "$component" >&2
    else
      warn "$component is missing; 'make lint' will not work"
    fi
  fi
done
# The auth function also builds as a WASM component; `make test` builds and runs it.
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
  if command -v rustup >/dev/null; then
    step "rustup target add wasm32-wasip2"
    rustup target add wasm32-wasip2 >&2
  else
    warn "rustup is missing, so the wasm32-wasip2 target cannot be added; the WASM component test will fail"
  fi
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  step "cargo install cargo-nextest (once)"
  cargo install --locked cargo-nextest >&2
fi
