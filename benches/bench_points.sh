#!/usr/bin/env bash
# Benchmark `vastview render --points` against the datashader peer on the 200M-point file of
# /work/shared/peers (points_xyz_f32.bin: N x 3 float32 records, 2.4 GB), with the peers' protocol:
# every task runs through the peers' measure.py (1 cold run after `sync; echo 3 > /proc/sys/vm/drop_caches`,
# then warm runs; wall and peak RSS from /usr/bin/time -v, peak RssAnon sampled every 50 ms; waits for an
# idle machine and redoes runs disturbed by other processes). vastview and datashader run back to back.
#
# Usage (as root: dropping the page cache needs it):
#   bash benches/bench_points.sh
#
# Environment (all optional):
#   VASTVIEW=path   use this binary (default: cargo build --release into $VV_TARGET, default the repo's target/)
#   PEERS=dir       peer harness (default /work/shared/peers)
#   PY=python       peer venv python (default /tmp/peervenv/bin/python)
#   DATA=dir        data dir (default /tmp/peerdata; points_xyz_f32.bin made with make_data.py when missing)
#   RES=dir         results dir (default /tmp/vvbench/points-YYYYmmdd-HHMMSS)
#   RUNS=4          runs per task (1 cold + RUNS-1 warm)
#   N=200000000     points
#   QUIET_WAIT=300  seconds measure.py waits for an idle machine before a run
#   ONLY="vv ds check extra index zoom"
#                   vv: vastview tasks; ds: datashader points (aggregate, shade, save);
#                   check: vastview's count grid vs datashader's counts_points_N.npy (bit for bit);
#                   extra: one -v run of each vastview task (per-phase lines);
#                   index: `vastview index` (the spatial index built from scratch every run, data bounds
#                   cached; points/s and peak RssAnon);
#                   zoom: a zoomed 1024x1024 eqhist render of $ZOOM (about 1 % of the points) through the index
#                   and by a full scan (no index), plus a check that both grids are identical.
#                   Run the index tasks alone with ONLY="index zoom".
#   ZOOM=-0.55,-0.55,0.55,0.55   region of the zoom task
#
# Output: $RES/raw.jsonl (measure.py records), $RES/table.md, $RES/ratios.md, $RES/machine.txt.
NAME=points DEFAULT_ONLY="vv ds check extra index zoom"
source "$(dirname "$0")/lib.sh"
N="${N:-200000000}"
ZOOM="${ZOOM:--0.55,-0.55,0.55,0.55}"
PTS="$DATA/points_xyz_f32.bin"

bench_binary
if [[ ! -f "$PTS" ]]; then
  log "making $PTS (2.4 GB, about 1 min)"
  "$PY" "$PEERS/make_data.py" --only points --no-npy-points --n-points "$N" --out "$DATA"
fi
SIZE=$(stat -c %s "$PTS")
(( SIZE >= N * 12 )) || { log "$PTS holds fewer than $N points"; exit 1; }
if (( SIZE != N * 12 )); then
  # vastview reads whole files: make a view of exactly the first N records.
  PTS_N="$RES/points_first_$N.bin"; log "using the first $N records via $PTS_N"
  dd if="$PTS" of="$PTS_N" bs=12M count=$((N / 1048576)) iflag=count_bytes 2>/dev/null || true
  PTS="$PTS_N"
fi
bench_machine "data: $(ls -l "$PTS")"

DESC="$N pts x,y,z f32 ($((N * 12 / 1000000)) MB file)"
VV_REGION=("$VASTVIEW" render "$PTS" --points --dtype f32 --columns 3 --region -10,-10,10,10 --size 1024x1024
           --scale eqhist -o "$OUT/vv_points_eqhist.png")
VV_BOUNDS=("$VASTVIEW" render "$PTS" --points --dtype f32 --columns 3 --size 1024x1024 --scale eqhist
           -o "$OUT/vv_points_bounds_eqhist.png")
VV_COUNTS=("$VASTVIEW" render "$PTS" --points --dtype f32 --columns 3 --region -10,-10,10,10 --size 1024x1024
           -o "$OUT/vv_counts.npy")

if has vv; then
  M --label vv_points_eqhist_1024 --data "$DESC, region -10..10 (as datashader), 1024x1024 count, eqhist PNG" \
    --cold --runs "$RUNS" --timeout 300 -- "${VV_REGION[@]}"
fi
if has ds; then
  M --label "ds_points_$N" --data "$DESC" --cold --runs "$RUNS" --as-limit-gb $AS --timeout 900 \
    -- "$PY" "$PEERS/bench_datashader.py" points --n "$N" --data "$DATA"
fi
if has vv; then
  # Default region: the data bounds. Uncached: the cache directory is emptied before every run, so each
  # run makes the bounds pass; cached: later runs read the bounds the first run saved.
  CACHE="$RES/cache"
  M --label vv_points_bounds_eqhist_1024 --data "$DESC, region = data bounds (extra pass every run), 1024x1024 eqhist PNG" \
    --pre "rm -rf $CACHE" --cold --runs "$RUNS" --timeout 300 -- env VASTVIEW_CACHE_DIR="$CACHE" "${VV_BOUNDS[@]}"
  M --label vv_points_bounds_cached_1024 --data "$DESC, region = data bounds (read from the cache an earlier run wrote), 1024x1024 eqhist PNG" \
    --pre "true" --cold --runs "$RUNS" --timeout 300 -- env VASTVIEW_CACHE_DIR="$CACHE" "${VV_BOUNDS[@]}"
fi
if has check; then
  "${VV_COUNTS[@]}"
  "$PY" - "$OUT/vv_counts.npy" "$DATA/out/datashader/counts_points_$N.npy" > "$RES/check.txt" <<'EOF'
import sys, numpy as np
a = np.load(sys.argv[1]); b = np.load(sys.argv[2])
d = int(np.count_nonzero(a.astype(np.int64) != b.astype(np.int64)))
print(f"vastview {a.dtype} {a.shape} sum {int(a.sum())} vs datashader {b.dtype} {b.shape} sum {int(b.sum())}: "
      f"{d} pixels differ")
EOF
  cat "$RES/check.txt" >&2
fi
if has extra; then
  for c in VV_REGION VV_BOUNDS; do
    declare -n cmd=$c
    rm -rf "$RES/cache-extra"; VASTVIEW_CACHE_DIR="$RES/cache-warm" "${cmd[@]}" >/dev/null 2>&1 || true
    { echo "\$ ${cmd[*]} -v   (warm)"; VASTVIEW_CACHE_DIR="$RES/cache-extra" "${cmd[@]}" -v 2>&1; } \
      | tee "$RES/verbose_$c.txt" >&2
  done
fi

if has index || has zoom; then
  # Index tasks: their own cache directories (the index of this file is 2.4 GB); data bounds cached first.
  ICACHE="$RES/cache-index"; SCACHE="$RES/cache-scan"
  VV_SPEC=("$VASTVIEW" render "$PTS" --points --dtype f32 --columns 3)
  VASTVIEW_CACHE_DIR="$ICACHE" "$VASTVIEW" info "$PTS" --points --dtype f32 --columns 3 > /dev/null
  VV_INDEX=("$VASTVIEW" index "$PTS" --points --dtype f32 --columns 3 -q)
fi
if has index; then
  M --label vv_index_build --data "$DESC, vastview index from scratch (bounds cached), 2 passes" \
    --pre "rm -rf $ICACHE/points-index" --cold --runs "$RUNS" --timeout 600 -- env VASTVIEW_CACHE_DIR="$ICACHE" "${VV_INDEX[@]}"
  rm -rf "$ICACHE/points-index"
  { echo "\$ ${VV_INDEX[*]}"; VASTVIEW_CACHE_DIR="$ICACHE" "${VV_INDEX[@]}"; } 2>&1 | tee "$RES/index_build.txt" >&2
fi
if has zoom; then
  [[ -n "$(ls "$ICACHE"/points-index/*.vvi 2>/dev/null)" ]] || VASTVIEW_CACHE_DIR="$ICACHE" "${VV_INDEX[@]}" >&2
  ZARGS=(--region "$ZOOM" --size 1024x1024 --scale eqhist)
  M --label vv_zoom_index --data "$DESC, region $ZOOM through the index, 1024x1024 eqhist PNG" \
    --cold --runs "$RUNS" --timeout 300 -- env VASTVIEW_CACHE_DIR="$ICACHE" "${VV_SPEC[@]}" "${ZARGS[@]}" -o "$OUT/vv_zoom_index.png"
  M --label vv_zoom_scan --data "$DESC, region $ZOOM by a full scan (no index), 1024x1024 eqhist PNG" \
    --cold --runs "$RUNS" --timeout 300 -- env VASTVIEW_CACHE_DIR="$SCACHE" "${VV_SPEC[@]}" "${ZARGS[@]}" -o "$OUT/vv_zoom_scan.png"
  VASTVIEW_CACHE_DIR="$ICACHE" "${VV_SPEC[@]}" --region "$ZOOM" --size 1024x1024 -o "$OUT/zoom_index.npy" -v 2> "$RES/zoom_index_v.txt"
  VASTVIEW_CACHE_DIR="$SCACHE" "${VV_SPEC[@]}" --region "$ZOOM" --size 1024x1024 -o "$OUT/zoom_scan.npy" -v 2> "$RES/zoom_scan_v.txt"
  "$PY" - "$OUT/zoom_index.npy" "$OUT/zoom_scan.npy" "$N" > "$RES/zoom_check.txt" <<'EOF'
import sys, numpy as np
a = np.load(sys.argv[1]); b = np.load(sys.argv[2]); n = int(sys.argv[3])
print(f"zoom region holds {int(a.sum())} points ({100 * int(a.sum()) / n:.2f} % of {n}); "
      f"index grid vs full-scan grid: {'identical' if a.dtype == b.dtype and np.array_equal(a, b) else 'DIFFERENT'}")
EOF
  cat "$RES/zoom_check.txt" "$RES/zoom_index_v.txt" "$RES/zoom_scan_v.txt" >&2
fi

"$PY" "$PEERS/make_results.py" "$RES/raw.jsonl" > "$RES/table.md"
PYTHONPATH="$HERE" "$PY" - "$RES/raw.jsonl" "$N" > "$RES/ratios.md" <<'EOF'
import sys
import figures
recs = figures.load(sys.argv[1])
def fig(label):
    # anon: the highest peak RssAnon of any run
    d = figures.fig(recs, label)
    if d: d["anon"] = d["anon_max"]
    return d
def f(x, u=" s"): return "-" if x is None else f"{x:.2f}{u}"
def ratio(a, b): return "-" if not a or not b else f"{a / b:.1f}x"
ds = fig(f"ds_points_{sys.argv[2]}")
print("| vastview task | warm | cold | peak RssAnon | datashader warm / vv | cold / vv | anon ds / vv |")
print("|---|---|---|---|---|---|---|")
for lab in ("vv_points_eqhist_1024", "vv_points_bounds_eqhist_1024", "vv_points_bounds_cached_1024"):
    v = fig(lab)
    if v:
        print(f"| {lab} | {f(v['warm'])} | {f(v['cold'])} | {f(v['anon'], ' MiB')} | "
              f"{ratio(ds and ds['warm'], v['warm'])} | {ratio(ds and ds['cold'], v['cold'])} | "
              f"{ratio(ds and ds['anon'], v['anon'])} |")
if ds:
    print(f"\ndatashader: {f(ds['warm'])} warm, {f(ds['cold'])} cold, {f(ds['anon'], ' MiB')} peak RssAnon")
v = fig("vv_points_eqhist_1024")
ix, zi, zs = fig("vv_index_build"), fig("vv_zoom_index"), fig("vv_zoom_scan")
if ix:
    n = int(sys.argv[2])
    rate = lambda t: "-" if not t else f"{n / t / 1e6:.0f} M points/s"
    print(f"\nindex build: {f(ix['warm'])} warm ({rate(ix['warm'])}), {f(ix['cold'])} cold ({rate(ix['cold'])}), "
          f"peak RssAnon {f(ix['anon'], ' MiB')}; goal >= 100 M points/s warm: "
          f"{'MET' if ix['warm'] and n / ix['warm'] >= 100e6 else 'NOT MET'}")
if zi:
    print(f"\nzoomed render: through the index {f(zi['warm'])} warm, {f(zi['cold'])} cold, {f(zi['anon'], ' MiB')}; "
          f"full scan {f(zs and zs['warm'])} warm, {f(zs and zs['cold'])} cold; goal < 100 ms warm: "
          f"{'MET' if zi['warm'] is not None and zi['warm'] < 0.1 else 'NOT MET (or no warm run)'}")
if v and ds:
    print(f"\nGoal >= 5x faster than datashader warm: {'MET' if ds['warm'] / v['warm'] >= 5 else 'NOT MET'} "
          f"({ratio(ds['warm'], v['warm'])}); warm < 1 s: {'MET' if v['warm'] < 1 else 'NOT MET'}; "
          f"RssAnon <= 150 MB: {'MET' if v['anon'] <= 150e6 / 2**20 else 'NOT MET'} ({f(v['anon'], ' MiB')})")
EOF
echo; cat "$RES/table.md"; echo; cat "$RES/ratios.md"
log "results in $RES"
