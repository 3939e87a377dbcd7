# Shared preamble of the benches/bench_*.sh scripts (sourced, not run): settings with their defaults,
# log/has helpers, the results directory, the release binary, machine.txt and the measure.py wrapper M.
#
# Before sourcing, a script sets NAME (its log prefix and default results directory) and DEFAULT_ONLY.
# Environment (all optional): VASTVIEW (binary; else built), VV_TARGET (its target dir, default the repo's
# target/), PEERS, PY, DATA, RES, RUNS, ONLY, QUIET_WAIT (seconds measure.py waits for an idle machine).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
PEERS="${PEERS:-/work/shared/peers}"
PY="${PY:-/tmp/peervenv/bin/python}"
DATA="${DATA:-/tmp/peerdata}"
RES="${RES:-/tmp/vvbench/$NAME-$(date +%Y%m%d-%H%M%S)}"
RUNS="${RUNS:-4}"
ONLY="${ONLY:-$DEFAULT_ONLY}"
OUT="$RES/out"
AS=22   # GiB address-space cap for the Python peers, as in the peers' run_all.sh

log() { echo "[bench_$NAME] $*" >&2; }
has() { [[ " $ONLY " == *" $1 "* ]]; }
M() { "$PY" "$PEERS/measure.py" --quiet-max-wait "${QUIET_WAIT:-300}" --retries 2 "$@"; }

mkdir -p "$RES" "$OUT"
export PEERS_RESULTS="$RES" PYTHONUNBUFFERED=1
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/xdg}"
mkdir -p -m 700 "$XDG_RUNTIME_DIR"

# The binary: $VASTVIEW, else a release build of $1 (default: this checkout) into $VV_TARGET (retried, in
# case the source is mid-edit). Sets VASTVIEW, and BUILT=1 when it built one.
bench_binary() {
  local src="${1:-$REPO}" target="${VV_TARGET:-$REPO/target}"
  if [[ -z "${VASTVIEW:-}" ]]; then
    log "building the release binary from $src into $target"
    for attempt in 1 2 3 4 5; do
      if (cd "$src" && CARGO_TARGET_DIR="$target" cargo build --release); then break; fi
      [[ $attempt == 5 ]] && { log "build failed 5 times"; exit 1; }
      log "build failed (source mid-edit?), retrying in 60 s"; sleep 60
    done
    VASTVIEW="$target/release/vastview"
    BUILT=1
  fi
  [[ -x "$VASTVIEW" ]] || { log "no binary at $VASTVIEW"; exit 1; }
}

# $RES/machine.txt (and stderr): date, binary, source, toolchain, kernel, CPU, memory, then the lines the
# script passes as arguments (its data files).
bench_machine() {
  {
    echo "date: $(date -Is)"
    echo "binary: $VASTVIEW"
    if [[ -n "${VV_BUILT_FROM:-}" ]]; then
      echo "source: $VV_BUILT_FROM"
    elif [[ -z "${BUILT:-}" ]]; then
      echo "source: not recorded (binary given with VASTVIEW; set VV_BUILT_FROM=... to record it)"
    else
      echo "source: $(cd "$REPO" && git rev-parse HEAD 2>/dev/null || echo n/a) ($(cd "$REPO" && git status --short | wc -l) uncommitted files)"
    fi
    echo "rustc: $(rustc --version 2>/dev/null || echo n/a)"
    echo "kernel: $(uname -sr)"; echo "nproc: $(nproc)"
    lscpu | grep -E "^(Model name|CPU\(s\)|Thread|Core|Socket|Hypervisor|L2|L3)" || true
    free -g
    local line
    for line in "$@"; do echo "$line"; done
  } > "$RES/machine.txt"
  cat "$RES/machine.txt" >&2
}
