#!/usr/bin/env bash
# Ingests the demo documents (quick: a few dozen chunks): the company policies in demo/docs, a dozen
# pages of the PostgreSQL manual (Debian's postgresql-doc-15), and the scanned Linn page (OCR).
# Idempotent: unchanged documents are skipped by content hash.
# Usage: scripts/demo-docs.sh [path to the quarry binary, default target/debug/quarry]
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$QUARRY_REPO"
quarry="${1:-target/debug/quarry}"
everyone=admin,analyst,finance,catalog
manual=/usr/share/doc/postgresql-doc-15/html
pages=(routine-vacuuming.html sql-vacuum.html mvcc-intro.html transaction-iso.html
       continuous-archiving.html backup-dump.html indexes-partial.html sql-createindex.html
       ddl-rowsecurity.html pgstatstatements.html runtime-config-resource.html textsearch-controls.html)

step "demo documents: company policies (everyone), finance notes (finance and admin)"
"$quarry" ingest demo/docs/company --roles "$everyone" --regions '*'
"$quarry" ingest demo/docs/finance --roles admin,finance --regions '*'
if [[ -d $manual ]]; then
  step "demo documents: ${#pages[@]} pages of the PostgreSQL manual"
  "$quarry" ingest "${pages[@]/#/$manual/}" --roles "$everyone" --regions '*'
else
  warn "$manual is missing (Debian package postgresql-doc-15); skipping the manual pages"
fi
ocr="$QUARRY_HOME/data/ocr/linn.pdf"
if [[ -f $ocr ]]; then
  step "demo documents: a scanned page (OCR)"
  "$quarry" ingest "$ocr" --roles admin,catalog --regions '*'
fi
