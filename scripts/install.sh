#!/usr/bin/env bash
# Install the system packages, pgvector (>= 0.8) and the Python venv (chromadb)
# that Quarry's local stack needs. Idempotent: every step checks first and a
# second run only does cheap checks (no apt-get update, no network).
#
# Env: QUARRY_HOME (default <repo>/.quarry).
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

export DEBIAN_FRONTEND=noninteractive

PG_MAJOR=15
PG_CONFIG="/usr/lib/postgresql/$PG_MAJOR/bin/pg_config"
PG_EXT_DIR="/usr/share/postgresql/$PG_MAJOR/extension"
PGVECTOR_MIN=0.8.0
# Exact pin: chromadb 1.x serves the v2 HTTP API (/api/v2/heartbeat) that the
# Rust `chroma` crate 0.15 speaks.
CHROMADB_VERSION=1.5.9
# deb-src ONLY: we build pgvector from trixie's source, never install trixie binaries.
TRIXIE_SRC_LIST=/etc/apt/sources.list.d/quarry-trixie-src.list

APT_PACKAGES=(
  "postgresql-$PG_MAJOR" "postgresql-server-dev-$PG_MAJOR" "postgresql-$PG_MAJOR-hypopg"
  redis-server
  build-essential dpkg-dev cmake pkg-config clang libclang-dev  # clang: llama-cpp-2 bindgen
  unzip curl ca-certificates
  python3 python3-venv
  tesseract-ocr tesseract-ocr-eng poppler-utils postgresql-doc-15
)

APT_UPDATED=0
apt_update_once() {
  if [[ $APT_UPDATED == 0 ]]; then
    step "apt-get update"
    apt-get update -q >&2
    APT_UPDATED=1
  fi
}

pkg_installed() {
  [[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" == installed ]]
}

require_root() {
  [[ $EUID -eq 0 ]] || die "$1 needs root (run as root or via sudo)"
}

ensure_apt_packages() {
  local missing=() p
  for p in "${APT_PACKAGES[@]}"; do
    pkg_installed "$p" || missing+=("$p")
  done
  # pg_stat_statements ships inside postgresql-15 on Debian 12; older/other
  # layouts have a separate postgresql-contrib-15 package.
  local need_contrib=0
  [[ -f "$PG_EXT_DIR/pg_stat_statements.control" ]] || need_contrib=1
  if [[ ${#missing[@]} -eq 0 && $need_contrib -eq 0 ]]; then
    step "apt packages: all present, skipping apt"
    return
  fi
  require_root "installing apt packages"
  apt_update_once
  if [[ $need_contrib -eq 1 ]] && apt-cache show "postgresql-contrib-$PG_MAJOR" >/dev/null 2>&1; then
    missing+=("postgresql-contrib-$PG_MAJOR")
  fi
  step "apt-get install ${missing[*]}"
  # Note: on a fresh machine postgresql-common may create/start the default
  # 'main' cluster on 5432; harmless, our stack uses its own data dir and port.
  apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
  [[ -f "$PG_EXT_DIR/pg_stat_statements.control" ]] \
    || die "pg_stat_statements extension still missing after apt install"
}

# Prints the default_version from vector.control, or nothing.
pgvector_version() {
  local ctl="$PG_EXT_DIR/vector.control"
  [[ -f $ctl ]] || return 0
  sed -nE "s/^[[:space:]]*default_version[[:space:]]*=[[:space:]]*'([^']+)'.*/\1/p" "$ctl"
}

ensure_pgvector() {
  local have
  have="$(pgvector_version)"
  if [[ -n $have ]] && dpkg --compare-versions "$have" ge "$PGVECTOR_MIN"; then
    step "pgvector $have already installed, skipping"
    return
  fi
  require_root "building pgvector"
  step "pgvector ${have:-missing} < $PGVECTOR_MIN: building from Debian trixie source"
  if [[ ! -f $TRIXIE_SRC_LIST ]]; then
    step "adding deb-src-only trixie entry: $TRIXIE_SRC_LIST"
    echo 'deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main' \
      >"$TRIXIE_SRC_LIST"
  fi
  # Needed even if apt ran already: the trixie Sources index is new.
  APT_UPDATED=0
  apt_update_once

  local build="$QUARRY_HOME/build/pgvector"
  rm -rf "$build"
  mkdir -p "$build"
  step "apt-get source pgvector/trixie (in $build)"
  if ! (cd "$build" && apt-get source -q pgvector/trixie >&2); then
    die "apt-get source pgvector/trixie failed. Check that a deb-src line for trixie exists (we write $TRIXIE_SRC_LIST) and that 'apt-get update' fetched trixie Sources without errors."
  fi
  local src
  src="$(find "$build" -mindepth 1 -maxdepth 1 -type d -name 'pgvector-*' | head -n1)"
  [[ -n $src ]] || die "apt-get source did not unpack a pgvector-* folder in $build"
  step "make && make install ($(basename "$src"))"
  # OPTFLAGS="": no -march=native, so the .so does not depend on this CPU.
  make -C "$src" -j"$(nproc)" OPTFLAGS="" PG_CONFIG="$PG_CONFIG" >&2
  make -C "$src" install OPTFLAGS="" PG_CONFIG="$PG_CONFIG" >&2
  have="$(pgvector_version)"
  dpkg --compare-versions "${have:-0}" ge "$PGVECTOR_MIN" \
    || die "pgvector install finished but vector.control reports '${have:-none}'"
  step "pgvector $have installed"
}

venv_chromadb_version() {
  "$QUARRY_VENV/bin/python" -c \
    'import importlib.metadata as m; print(m.version("chromadb"))' 2>/dev/null || true
}

ensure_venv() {
  if [[ "$(venv_chromadb_version)" == "$CHROMADB_VERSION" ]]; then
    step "venv: chromadb $CHROMADB_VERSION already installed, skipping"
    return
  fi
  # A venv whose interpreter no longer runs (python moved/removed) is rebuilt.
  if [[ -d $QUARRY_VENV ]] && ! "$QUARRY_VENV/bin/python" -c 'pass' 2>/dev/null; then
    step "venv at $QUARRY_VENV is broken, recreating"
    rm -rf "$QUARRY_VENV"
  fi
  if [[ ! -x $QUARRY_VENV/bin/python ]]; then
    local py
    py="$(command -v python3)" || die "python3 not found on PATH"
    step "creating venv $QUARRY_VENV with $py ($("$py" --version 2>&1))"
    "$py" -m venv "$QUARRY_VENV"
  fi
  step "pip install chromadb==$CHROMADB_VERSION"
  "$QUARRY_VENV/bin/python" -m pip install -q --disable-pip-version-check \
    "chromadb==$CHROMADB_VERSION" >&2
  [[ "$(venv_chromadb_version)" == "$CHROMADB_VERSION" ]] \
    || die "chromadb $CHROMADB_VERSION not importable in $QUARRY_VENV after install"
}

main() {
  ensure_apt_packages
  ensure_pgvector
  ensure_venv
  step "install done (QUARRY_HOME=$QUARRY_HOME)"
}

main "$@"
