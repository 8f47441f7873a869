#!/usr/bin/env bash
# Retrieval latency with 100k chunks in the index, against the running local stack.
#
# Copies the documents and chunks of the main database (ingest the PostgreSQL manual there first:
# `quarry ingest /usr/share/doc/postgresql-doc-15/html --roles admin,analyst,finance,catalog`)
# into a scratch database `quarry_bench`, pads it to TARGET chunks with perturbed copies (same
# texts, embeddings moved by small random noise and re-normalised, so the HNSW graph and the GIN
# index see realistic, not identical, data), rebuilds the indexes, writes everything to a scratch
# Chroma collection, serves `quarry dev` on it, and drives /v1/retrieve with distinct questions —
# hybrid, then again with Chroma unreachable (PostgreSQL alone, `degraded: ["chroma"]`).
#
# Build first: cargo build --release -p quarry-cli --bins --examples
# Usage: scripts/bench-retrieve.sh [TARGET chunks, default 100000] [seconds per run, default 30]
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$QUARRY_REPO"
eval "$("$QUARRY_REPO/scripts/stack.sh" env)"
target="${1:-100000}"
seconds="${2:-30}"
port=18788
quarry=target/release/quarry
load=target/release/examples/retrieve_load
[[ -x $quarry && -x $load ]] || die "build first: cargo build --release -p quarry-cli --bins --examples"

bench_url="${DATABASE_URL%/*}/quarry_bench"
app_bench_url="${APP_DATABASE_URL%/*}/quarry_bench"
psql_main() { psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -qtA "$@"; }
psql_bench() { psql "$bench_url" -v ON_ERROR_STOP=1 -qtA "$@"; }

real=$(psql_main -c "SELECT count(*) FROM quarry_meta.chunks")
((real > 0)) || die "the main database has no chunks: ingest the PostgreSQL manual first"
step "main database: $real real chunks"

psql_main -c "DROP DATABASE IF EXISTS quarry_bench WITH (FORCE)"
psql_main -c "CREATE DATABASE quarry_bench"
DATABASE_URL="$bench_url" "$quarry" migrate >/dev/null
step "copying the governance policy (roles and their regions)"
for table in roles role_tables role_regions endpoint_regions; do
  psql_main -c "\\copy quarry_meta.$table TO STDOUT" | psql_bench -c "\\copy quarry_meta.$table FROM STDIN"
done

step "copying documents and chunks"
cols_doc="document_id, source, title, media_type, content_hash, byte_size, page_count, ocr_pages, allowed_roles, allowed_regions, version, chunk_count"
cols_chunk="chunk_id, document_id, ordinal, heading_path, heading, page, char_start, char_end, byte_start, byte_end, token_count, text, embedding, allowed_roles, allowed_regions"
psql_main -c "\\copy (SELECT $cols_doc FROM quarry_meta.documents) TO STDOUT" | psql_bench -c "\\copy quarry_meta.documents ($cols_doc) FROM STDIN"
psql_bench -c "DROP INDEX quarry_meta.chunks_embedding_hnsw; DROP INDEX quarry_meta.chunks_tsv_gin"
psql_main -c "\\copy (SELECT $cols_chunk FROM quarry_meta.chunks) TO STDOUT" | psql_bench -c "\\copy quarry_meta.chunks ($cols_chunk) FROM STDIN"

copies=$(( (target + real - 1) / real - 1 ))
step "padding with $copies perturbed copies of every document"
for ((n = 1; n <= copies; n++)); do
  psql_bench <<SQL
BEGIN;
CREATE TEMP TABLE m ON COMMIT DROP AS
  SELECT document_id AS old_id, gen_random_uuid() AS new_id FROM quarry_meta.documents WHERE source NOT LIKE 'bench:%';
INSERT INTO quarry_meta.documents ($cols_doc)
  SELECT m.new_id, 'bench://$n/' || d.source, d.title, d.media_type, d.content_hash, d.byte_size, d.page_count,
         d.ocr_pages, d.allowed_roles, d.allowed_regions, d.version, d.chunk_count
  FROM quarry_meta.documents d JOIN m ON m.old_id = d.document_id;
INSERT INTO quarry_meta.chunks ($cols_chunk)
  SELECT gen_random_uuid(), m.new_id, c.ordinal, c.heading_path, c.heading, c.page, c.char_start, c.char_end,
         c.byte_start, c.byte_end, c.token_count, c.text,
         l2_normalize(c.embedding + (SELECT array_agg((random() - 0.5) * 0.06)::vector(384)
                                     FROM generate_series(1, 384)
                                     -- correlated, so a new noise vector is drawn per row
                                     WHERE c.ordinal IS NOT NULL)),
         c.allowed_roles, c.allowed_regions
  FROM quarry_meta.chunks c JOIN m ON m.old_id = c.document_id;
COMMIT;
SQL
done
total=$(psql_bench -c "SELECT count(*) FROM quarry_meta.chunks")
step "$total chunks; building the HNSW and GIN indexes"
start=$SECONDS
psql_bench -c "SET maintenance_work_mem = '1GB'; SET max_parallel_maintenance_workers = 2;
  CREATE INDEX chunks_embedding_hnsw ON quarry_meta.chunks USING hnsw (embedding vector_cosine_ops);
  CREATE INDEX chunks_tsv_gin ON quarry_meta.chunks USING gin (tsv); ANALYZE quarry_meta.chunks;"
step "indexes built in $((SECONDS - start)) s"

export CHROMA_COLLECTION=quarry_bench
curl -fsS -X DELETE "${CHROMA_URL%/}/api/v2/tenants/default_tenant/databases/default_database/collections/quarry_bench" >/dev/null 2>&1 || true
step "writing $total chunks to Chroma (collection quarry_bench)"
start=$SECONDS
DATABASE_URL="$bench_url" "$quarry" ingest --reconcile
step "Chroma written in $((SECONDS - start)) s"

# One token drives every client, so the role's per-user rate limit (120/min in the demo policy)
# would cap the run at 2 requests/s: lift it in this scratch database only.
psql_bench -c "UPDATE quarry_meta.roles SET rate_per_minute = 1000000, burst = 1000000"

pid=
trap '[[ -n $pid ]] && kill $pid 2>/dev/null || true' EXIT
# Serves quarry dev on the bench database with extra environment "$@", then drives it with 1 and
# 4 clients.
serve_and_load() {
  local label=$1
  shift
  step "$label: serving quarry dev on :$port"
  env DATABASE_URL="$bench_url" APP_DATABASE_URL="$app_bench_url" PORT=$port RUST_LOG=warn LOG_FORMAT=json \
    "$@" "$quarry" dev >"$QUARRY_HOME/bench-retrieve.log" 2>&1 &
  pid=$!
  # Any answer will do: /health says 503 while Chroma is unreachable, which the second pass wants.
  until curl -s -o /dev/null "http://127.0.0.1:$port/health"; do sleep 0.2; done
  local token
  token=$("$quarry" token --sub bench --role admin --region emea)
  # Warm up: loads the model, connects to Chroma, fills caches.
  "$load" "http://127.0.0.1:$port" "$token" 1 5 >/dev/null
  for clients in 1 4; do
    printf '%s chunks=%s ' "$label" "$total"
    "$load" "http://127.0.0.1:$port" "$token" "$clients" "$seconds"
  done
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  pid=
}
serve_and_load hybrid
# Chroma unreachable: PostgreSQL alone serves (the response says degraded: ["chroma"]).
serve_and_load postgres-only CHROMA_URL=http://127.0.0.1:9
