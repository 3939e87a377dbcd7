#!/usr/bin/env bash
# TIFF benchmarks of issue 10 on the peers' 40000 x 40000 uint16 image (image_u16_40k.npy of
# /work/shared/peers/make_data.py), written by tifffile as (a) an uncompressed BigTIFF, (b) a 512-px tiled
# Deflate TIFF, (c) a 512-px tiled Zstandard TIFF. Every task runs through the peers' measure.py (cold run after
# dropping the page cache, then warm runs; wall, peak RssAnon and RssFile apart).
#   first frame : vastview render F --size 1024x1024 (no pyramid cached), against the same on the .npy
#   pyramid     : vastview pyramid F (full build, cache cleared first), against `vips dzsave` of (a)
#   decode      : tifffile + imagecodecs decoding every tile of (b)/(c) in Python (one worker), for MB/s/core
# Usage (root: dropping the page cache needs it): bash benches/bench_tiff.sh
# Env: VASTVIEW (binary; default target/release/vastview), DATA (/tmp/peerdata), RES (results dir), RUNS (3),
#      ONLY ("tiffs ff pyr vips dec").
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
VV="${VASTVIEW:-$HERE/../target/release/vastview}"
DATA="${DATA:-/tmp/peerdata}"
RES="${RES:-/tmp/vvbench/tiff-$(date +%Y%m%d-%H%M%S)}"
RUNS="${RUNS:-3}"
ONLY="${ONLY:-tiffs ff pyr vips dec}"
PY="${PY:-python3}"
M() { "$PY" /work/shared/peers/measure.py --quiet-max-wait 120 --retries 1 --out "$RES/raw.jsonl" "$@"; }
mkdir -p "$RES"
export VASTVIEW_CACHE_DIR="$RES/cache"
NPY="$DATA/image_u16_40k.npy"
A="$DATA/u16_40k_none.tif"; B="$DATA/u16_40k_deflate512.tif"; C="$DATA/u16_40k_zstd512.tif"
{ uname -a; nproc; free -g | head -2; "$VV" --version; } > "$RES/machine.txt"
# The disk's cold sequential read rate, beside the cold figures.
sync; echo 3 > /proc/sys/vm/drop_caches
dd if="$NPY" of=/dev/null bs=16M 2>&1 | tail -1 > "$RES/disk_read.txt"

if [[ " $ONLY " == *" tiffs "* ]]; then
  "$PY" - "$NPY" "$A" "$B" "$C" <<'PYEOF' | tee "$RES/tiffs.txt"
import sys, time, numpy as np, tifffile
src, a, b, c = sys.argv[1:]
d = np.load(src, mmap_mode="r")
for path, kw in [(a, {}), (b, dict(tile=(512, 512), compression="zlib")), (c, dict(tile=(512, 512), compression="zstd"))]:
    t = time.time()
    tifffile.imwrite(path, d, bigtiff=True, maxworkers=2, **kw)
    print(f"{path}: written in {time.time() - t:.1f} s")
PYEOF
  ls -l "$A" "$B" "$C" | tee -a "$RES/tiffs.txt"
fi
if [[ " $ONLY " == *" ff "* ]]; then
  for f in "$NPY" "$A" "$B" "$C"; do
    rm -rf "$VASTVIEW_CACHE_DIR"
    M --label "first frame $(basename "$f")" --runs "$RUNS" --cold --data "$(basename "$f")" -- \
      "$VV" render "$f" --size 1024x1024 -o "$RES/ff.png"
  done
fi
if [[ " $ONLY " == *" pyr "* ]]; then
  for f in "$A" "$B" "$C"; do
    M --label "pyramid $(basename "$f")" --runs 1 --cold --pre "rm -rf $VASTVIEW_CACHE_DIR" --data "$(basename "$f")" -- \
      "$VV" pyramid "$f" -q
  done
fi
if [[ " $ONLY " == *" vips "* ]] && command -v vips >/dev/null; then
  rm -rf "$RES/dz" "$RES/dz_files"
  M --label "vips dzsave (a)" --runs 1 --cold --data "$(basename "$A")" -- vips dzsave "$A" "$RES/dz"
  M --label "vips thumbnail (a)" --runs 2 --cold --data "$(basename "$A")" -- vips thumbnail "$A" "$RES/th.png" 1024
fi
if [[ " $ONLY " == *" dec "* ]]; then
  for f in "$B" "$C"; do
    M --label "tifffile decode $(basename "$f")" --runs 2 --data "$(basename "$f")" -- \
      "$PY" -c "import sys, tifffile; tifffile.imread(sys.argv[1], maxworkers=1)" "$f"
  done
fi
"$PY" - "$RES/raw.jsonl" <<'PYEOF' | tee "$RES/summary.txt"
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    runs = r.get("runs", [])
    def fmt(x):
        return f"{x['wall_s']:.2f} s, RssAnon {x.get('peak_rss_anon_kb', 0) / 1024:.0f} MiB, RssFile {x.get('peak_rss_file_kb', 0) / 1024:.0f} MiB"
    print(r.get("label"), "|", " ; ".join(fmt(x) for x in runs))
PYEOF
