#!/usr/bin/env bash
# Benchmark the pyramid (issue 4) on the peers' 40000x40000 uint16 image (3.2 GB), side by side in one
# run with its references, all through the peers' measure.py (1 cold run after dropping the page
# cache, then warm runs; wall time, peak RSS and sampled peak RssAnon; waits for an idle machine):
#   vv_pyramid_u16_40k      vastview pyramid FILE           (cache emptied before every run)
#   ref_cat_u16_40k         cat FILE > /dev/null            (sequential read of the same bytes)
#   vips_dzsave_jpeg        the peers' bench_vips.sh dzsave  (needs the .v file: step convert)
#   vv_first_frame_u16_40k  render --size 1024x1024, no pyramid cached (preview)
#   vv_first_frame_30g      the same on a file larger than RAM (BIG=path, generated if missing)
#   vv_render_pyramid_1024  render --size 1024x1024 from the built pyramid (exact block means)
#   vv_stats_u16_40k        stats --json from the built pyramid
#
# Usage (as root, for drop_caches):  bash benches/bench_pyramid.sh
# Environment: VASTVIEW=binary (default: cargo build --release, target/release/vastview),
#   PEERS=/work/shared/peers, PY=/tmp/peervenv/bin/python, DATA=/tmp/peerdata, RUNS=4,
#   RES=/tmp/vvbench/pyramid-DATE, BIG=/tmp/big/image_u16_30g.npy,
#   ONLY="vv ref vips ff big stats" (subset of tasks), QUIET_WAIT=300 (see benches/lib.sh)
NAME=pyramid DEFAULT_ONLY="vv ref vips ff big stats"
source "$(dirname "$0")/lib.sh"
BIG="${BIG:-/tmp/big/image_u16_30g.npy}"
IMG="$DATA/image_u16_40k.npy"

bench_binary
export VASTVIEW_CACHE_DIR="$RES/cache"
[[ -f "$IMG" ]] || "$PY" "$PEERS/make_data.py" --only u16 --out "$DATA"
bench_machine "data: $(ls -l "$IMG")"

D40="40000x40000 uint16 (3.2 GB)"
CLEAR="rm -rf $VASTVIEW_CACHE_DIR"

if has vv; then
  M --label vv_pyramid_u16_40k --data "$D40, mean pyramid + tile stats" --cold --runs "$RUNS" \
    --pre "$CLEAR" -- "$VASTVIEW" pyramid -q "$IMG"
fi
if has ref; then
  M --label ref_cat_u16_40k --data "$D40, cat > /dev/null" --cold --runs "$RUNS" -- \
    bash -c "cat '$IMG' > /dev/null"
fi
if has vips; then
  [[ -f "$DATA/image_u16_40k.v" ]] || STEPS=convert RUNS=1 bash "$PEERS/bench_vips.sh" "$DATA"
  STEPS=dzsave RUNS="$RUNS" bash "$PEERS/bench_vips.sh" "$DATA"
fi
if has ff; then
  M --label vv_first_frame_u16_40k --data "$D40, render 1024x1024, no pyramid (preview)" --cold --runs "$RUNS" \
    --pre "$CLEAR" -- "$VASTVIEW" render "$IMG" --size 1024x1024 -o "$RES/out/ff_40k.png"
fi
if has big; then
  if [[ ! -f "$BIG" ]]; then
    log "generating $BIG (30 GB; delete it afterwards)"
    mkdir -p "$(dirname "$BIG")" && python3 "$HERE/make_big.py" "$BIG"
  fi
  M --label vv_first_frame_30g --data "$(ls -l "$BIG" | awk '{print $5}') bytes uint16 .npy, larger than RAM" \
    --cold --runs "$RUNS" --pre "$CLEAR" -- "$VASTVIEW" render "$BIG" --size 1024x1024 -o "$RES/out/ff_30g.png"
fi
if has stats; then
  "$VASTVIEW" pyramid -q "$IMG" > /dev/null
  M --label vv_render_pyramid_1024 --data "$D40, render 1024x1024 from the pyramid" --cold --runs "$RUNS" -- \
    "$VASTVIEW" render "$IMG" --size 1024x1024 -o "$RES/out/pyr_40k.png"
  M --label vv_stats_u16_40k --data "$D40, stats --json from the pyramid" --cold --runs "$RUNS" -- \
    "$VASTVIEW" stats --json "$IMG"
fi
"$PY" "$PEERS/make_results.py" > /dev/null 2>&1 || true
cat "$RES/table.md" 2>/dev/null || tail -n 20 "$RES/raw.jsonl"
