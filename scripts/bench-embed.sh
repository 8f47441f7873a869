#!/usr/bin/env bash
# Embedding throughput, Rust (candle, in-process, as ingest runs it) next to PyTorch
# sentence-transformers, on the same machine, in the same run, on the same real chunk texts (the
# first N chunks of the main database, as embedded: heading path, blank line, text).
#
# Needs ingested documents (e.g. the PostgreSQL manual) and builds a throwaway venv with
# sentence-transformers in .quarry/bench-venv (PyPI's torch wheel; large download, once).
# Usage: scripts/bench-embed.sh [N chunks, default 256] [rounds, default 3]
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$QUARRY_REPO"
eval "$("$QUARRY_REPO/scripts/stack.sh" env)"
n="${1:-256}"
rounds="${2:-3}"
export QUARRY_MODELS_DIR="${QUARRY_MODELS_DIR:-$QUARRY_HOME/models}"
venv="$QUARRY_HOME/bench-venv"
if [[ ! -x $venv/bin/python ]] || ! "$venv/bin/python" -c 'import sentence_transformers' 2>/dev/null; then
  step "creating $venv with sentence-transformers"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check sentence-transformers==3.3.1
fi
texts="$QUARRY_HOME/bench-embed-texts.jsonl"
psql "$DATABASE_URL" -qtA -v ON_ERROR_STOP=1 -c "
  SELECT to_json(CASE WHEN heading = '' THEN text ELSE heading || E'\n\n' || text END)
  FROM quarry_meta.chunks ORDER BY chunk_id LIMIT $n" >"$texts"
count=$(wc -l <"$texts")
((count > 0)) || die "no chunks in the main database: ingest documents first"
step "$count chunk texts; building the Rust example"
cargo build -q --release -p quarry-shared --features embed --example embed_throughput
target/release/examples/embed_throughput "$texts" "$rounds"
HF_HUB_OFFLINE=1 "$venv/bin/python" scripts/bench-embed.py "$texts" "$QUARRY_MODELS_DIR/all-minilm-l6-v2" "$rounds"
