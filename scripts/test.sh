#!/usr/bin/env bash
# Runs every test of the workspace against the stack started by `scripts/stack.sh up`.
#
# Tests copy a template database (migrated, demo data loaded) into a fresh database each, so the
# template is rebuilt here from the current migrations every run; leftovers of killed runs go too.
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$QUARRY_REPO"
[[ -d $HOME/.cargo/bin ]] && PATH="$HOME/.cargo/bin:$PATH"

eval "$("$QUARRY_REPO/scripts/stack.sh" env)"
export QUARRY_DATA_DIR="${QUARRY_DATA_DIR:-$QUARRY_HOME/data}"
export QUARRY_MODELS_DIR="${QUARRY_MODELS_DIR:-$QUARRY_HOME/models}"
export QUARRY_TEST_TEMPLATE="${QUARRY_TEST_TEMPLATE:-quarry_template}"
export REDIS_SERVER_BIN="${REDIS_SERVER_BIN:-$(command -v redis-server)}"
export LOG_FORMAT=pretty

step "cargo fmt --check"
cargo fmt --all -- --check

# Lint while building: clippy-driver stands in for rustc on the workspace's own crates (this is
# what `cargo clippy` does, in check mode), so one compilation both lints and produces the test
# binaries. A separate `cargo clippy` step type-checked every dependency a second time (~15 min of
# a cold run on two cores, measured under load). Exported, so nextest's own build matches this one.
clippy_driver="$(rustup which clippy-driver 2>/dev/null || command -v clippy-driver)" \
  || die "clippy-driver not found (scripts/rust.sh installs the clippy component)"
export RUSTC_WORKSPACE_WRAPPER="$clippy_driver"
# The argument list cargo-clippy hands to clippy-driver, in its own encoding.
export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"

# The auth function as a wasi:http component (release, as deployed), built beside the native
# build in a target directory of its own (cargo builds one thing at a time per target
# directory): it compiles mostly one crate at a time, which fills the core the native build
# leaves idle. Built here rather than from inside the test that runs it, so no test spends
# minutes compiling; functions/auth/wasm-test finds it through QUARRY_AUTH_WASM.
wasm_target="${CARGO_TARGET_DIR:-$QUARRY_REPO/target}/wasm-component"
wasm_log="$(mktemp)"
cargo build -p quarry-auth --target wasm32-wasip2 --release --no-default-features --features wasm \
  --target-dir "$wasm_target" >"$wasm_log" 2>&1 &
wasm_pid=$!
trap 'kill "$wasm_pid" 2>/dev/null || true' EXIT

step "build + clippy -D warnings (all targets; the wasm component beside it)"
# --timings: target/cargo-timings/ shows where a slow cold build spent its time.
cargo build --workspace --all-targets --timings

step "wasm component (quarry-auth, wasm32-wasip2) + clippy"
if ! wait "$wasm_pid"; then
  cat "$wasm_log" >&2
  die "the auth component did not build (above)"
fi
trap - EXIT
tail -n 3 "$wasm_log" >&2
rm -f "$wasm_log"
export QUARRY_AUTH_WASM="$wasm_target/wasm32-wasip2/release/quarry_auth.wasm"
ls -l "$QUARRY_AUTH_WASM" >&2

step "template database $QUARRY_TEST_TEMPLATE"
psql_admin() { psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -qtA "$@"; }
# Databases named qt_* belong to tests; a killed run leaves some behind.
while read -r db; do
  [[ -n $db ]] && psql_admin -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)"
done < <(psql_admin -c "SELECT datname FROM pg_database WHERE datname LIKE 'qt\_%'")
psql_admin -c "DROP DATABASE IF EXISTS \"$QUARRY_TEST_TEMPLATE\" WITH (FORCE)"
psql_admin -c "CREATE DATABASE \"$QUARRY_TEST_TEMPLATE\""
template_url="${DATABASE_URL%/*}/$QUARRY_TEST_TEMPLATE"
DATABASE_URL="$template_url" ./target/debug/quarry migrate
DATABASE_URL="$template_url" ./target/debug/quarry demo load

step "chroma: dropping test collections of earlier runs"
collections_url="${CHROMA_URL%/}/api/v2/tenants/default_tenant/databases/default_database/collections"
while read -r name; do
  [[ -n $name ]] && curl -fsS -X DELETE "$collections_url/$name" >/dev/null || true
done < <(curl -fsS "$collections_url?limit=100000" | python3 -c 'import json,sys; [print(c["name"]) for c in json.load(sys.stdin) if c["name"].startswith("qt_")]' || true)

# Includes functions/auth/wasm-test (the component under wasmtime against the native function) and
# functions/auth/tests/lambda.rs (the router under lambda_http; quarry-auth's dev-dependencies turn
# on quarry-shared's `lambda` feature, so it needs no build of its own).
# The tests that run a language model go last, on their own: each uses every core for seconds
# to minutes, and beside the rest of the suite (OCR, ingest, load tests) a cold whole-schema
# prompt took longer than any sane deadline. Both runs go to the end before the verdict.
llm_tests='binary(local_llm) | test(/local_model/)'
status=0
step "tests"
cargo nextest run --workspace --no-fail-fast -E "not ($llm_tests)" || status=$?
step "tests with a language model"
cargo nextest run --workspace --no-fail-fast -E "$llm_tests" || status=$?
exit "$status"
