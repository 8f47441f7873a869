# shellcheck shell=bash
# Shared helpers for scripts/*.sh. Source it; do not execute it.
# Resolves the repo root from the calling script's location so every script
# works from any cwd, and puts all project state under $QUARRY_HOME.

# Repo root = parent of the scripts/ folder (this file lives in scripts/lib/).
QUARRY_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)"
export QUARRY_REPO

# All state (venv, data, models, service data, logs) lives here; git-ignored.
QUARRY_HOME="${QUARRY_HOME:-$QUARRY_REPO/.quarry}"
mkdir -p "$QUARRY_HOME"
QUARRY_HOME="$(cd "$QUARRY_HOME" && pwd -P)"   # absolute: services cd elsewhere
export QUARRY_HOME
# Make the state folder ignore itself, so gigabytes of models/data can never
# be committed by accident even if the repo's .gitignore lacks an entry.
[[ -f $QUARRY_HOME/.gitignore ]] || echo '*' >"$QUARRY_HOME/.gitignore"

export QUARRY_VENV="$QUARRY_HOME/venv"

# Progress lines go to stderr so stdout stays clean (e.g. `stack.sh env`).
# The [+Ns] prefix (seconds since the script started) makes step timings visible.
step() { printf '==> [+%ss] %s\n' "$SECONDS" "$*" >&2; }
warn() { printf 'WARN: %s\n' "$*" >&2; }
die()  { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

# Run a command as the postgres OS user from a cwd it can read (the caller's
# cwd may be under /root, which makes initdb/pg_ctl complain).
as_postgres() { (cd / && runuser -u postgres -- "$@"); }

# sha256 of a file (hex only).
sha256_of() { sha256sum "$1" | cut -d' ' -f1; }
