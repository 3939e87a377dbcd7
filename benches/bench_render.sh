#!/usr/bin/env bash
# Benchmark `vastview render` against the peer baselines (datashader, matplotlib) on the
# 20000x20000 float32 .npy of /work/shared/peers, with the peers' protocol and tools:
# every task runs through the peers' measure.py (1 cold run after
# `sync; echo 3 > /proc/sys/vm/drop_caches`, then warm runs; wall and peak RSS from
# /usr/bin/time -v, peak RssAnon sampled every 50 ms; waits for an idle machine and
# redoes runs disturbed by other processes).
#
# Usage (as root: dropping the page cache needs it):
#   bash benches/bench_render.sh
#
# Environment (all optional):
#   VASTVIEW=path     use this binary; default: build release into $VV_TARGET
#                     (CARGO_TARGET_DIR, default the repo's target/) and use
#                     $VV_TARGET/release/vastview
#   VV_BUILT_FROM=txt with VASTVIEW: what it was built from (recorded in machine.txt)
#   VV_REV=rev        build a committed revision instead of the working tree (exported with
#                     git archive to /tmp/vv-src-REV; use it while someone edits src/)
#   PEERS=dir         peer harness (default /work/shared/peers)
#   PY=python         peer venv python (default /tmp/peervenv/bin/python; created
#                     with the peers' setup.sh when missing)
#   DATA=dir          data dir (default /tmp/peerdata; image_f32_20k.npy is made
#                     with make_data.py --only f32 when missing)
#   RES=dir           results dir (default /tmp/vvbench/results-YYYYmmdd-HHMMSS)
#   RUNS=4            runs per task (1 cold + RUNS-1 warm)
#   ONLY="vv ds mpl ref extra"
#                     vv: vastview tasks; ds: datashader raster; mpl: matplotlib
#                     imshow (once: ~30 s, ~20 GiB RAM); ref: `dd` read of the file;
#                     extra: one -v run of each vastview task (per-phase lines) under a
#                     1 ms RssAnon sampler
#   MPL_COLD=1        run matplotlib imshow once cold instead of once warm
#
# Output: $RES/raw.jsonl (measure.py records), $RES/table.md (make_results.py),
# $RES/ratios.md (peer / vastview ratios from this run), $RES/machine.txt,
# $RES/verbose_*.txt and $RES/peak_anon_1ms.jsonl (extra). The tables are printed at the end.
NAME=render DEFAULT_ONLY="vv ds mpl ref extra"
source "$(dirname "$0")/lib.sh"
IMG="$DATA/image_f32_20k.npy"

SRC="$REPO"
if [[ -z "${VASTVIEW:-}" && -n "${VV_REV:-}" ]]; then
  # A committed revision, exported with git archive (the working tree may be mid-edit).
  rev=$(cd "$REPO" && git rev-parse --short "$VV_REV")
  SRC="/tmp/vv-src-$rev"
  if [[ ! -f "$SRC/Cargo.toml" ]]; then
    log "exporting $VV_REV ($rev) to $SRC"
    mkdir -p "$SRC" && (cd "$REPO" && git archive "$rev") | tar -x -C "$SRC"
  fi
fi
bench_binary "$SRC"

# --- 2. peers and data -------------------------------------------------------------------
if [[ ! -x "$PY" || ! -x /usr/bin/time ]]; then
  log "creating the peer venv with setup.sh (about 1 min)"
  # setup.sh writes results/pip-freeze.txt next to itself: run a copy under /tmp.
  S=$(mktemp -d /tmp/peersetup.XXXX); mkdir -p "$S/results"; cp "$PEERS/setup.sh" "$S/"
  VENV="$(dirname "$(dirname "$PY")")" bash "$S/setup.sh"
fi
if [[ ! -f "$IMG" ]]; then
  log "making $IMG (1.6 GB)"
  "$PY" "$PEERS/make_data.py" --only f32 --out "$DATA"
fi

# --- 3. what was measured where --------------------------------------------------------
[[ "$SRC" == "$REPO" ]] || VV_BUILT_FROM="$SRC = git archive of $(cd "$REPO" && git rev-parse "$rev") (clean)"
bench_machine "$("$VASTVIEW" render "$IMG" -o "$OUT/probe.png" --region 0,0,16,16 -v 2>&1 | grep '^adapter' || true)" \
  "data: $(ls -l "$IMG")" \
  "$(grep -o '"sha256_payload": "[0-9a-f]*"' "$DATA/manifest.json" 2>/dev/null | head -1 || true)"

DESC="20000x20000 f32 (1.6 GB)"
VV_1TO1=("$VASTVIEW" render "$IMG" -o "$OUT/vv_1to1_1024.png" --region 9000,9000,10024,10024)
VV_WHOLE=("$VASTVIEW" render "$IMG" -o "$OUT/vv_whole_1024.png" --size 1024x1024 --exact)
VV_DEMO=("$VASTVIEW" render --demo -o "$OUT/vv_demo_4096.png")

# --- 4. measurements (vastview and datashader back to back: same page-cache state) -----
if has vv; then
  M --label vv_render_1to1_1024 --data "$DESC, region 1024x1024 at (9000,9000), 1:1" \
    --cold --runs "$RUNS" --timeout 300 -- "${VV_1TO1[@]}"
  M --label vv_render_whole_1024 --data "$DESC, whole image -> 1024x1024 box filter" \
    --cold --runs "$RUNS" --timeout 300 -- "${VV_WHOLE[@]}"
fi
if has ds; then
  M --label ds_raster_20k --data "$DESC" --cold --runs "$RUNS" \
    --as-limit-gb $AS --timeout 900 -- "$PY" "$PEERS/bench_datashader.py" raster --data "$DATA"
fi
if has ref; then
  M --label ref_dd_read_20k --data "$DESC, dd bs=4M of=/dev/null (read-bandwidth reference)" \
    --cold --runs "$RUNS" -- dd if="$IMG" of=/dev/null bs=4M
fi
if has vv; then
  M --label vv_render_demo_4096 --data "procedural 1e6x1e6 f32 demo -> 4096x4096" \
    --cold --runs "$RUNS" --timeout 300 -- "${VV_DEMO[@]}"
fi

# --- 5. per-phase lines (-v) and a finer RssAnon peak (1 ms sampling) --------------------
if has extra; then
  SAMPLER="$RES/peak_anon_1ms.py"
  cat > "$SAMPLER" <<'EOF'
import json, subprocess, sys, time
label, out, cmd = sys.argv[1], sys.argv[2], sys.argv[3:]
t0 = time.perf_counter()
p = subprocess.Popen(cmd, stderr=subprocess.PIPE)
peak = {"RssAnon": 0, "RssFile": 0, "VmHWM": 0}
n = 0
while p.poll() is None:
    try:
        for line in open(f"/proc/{p.pid}/status"):
            k, _, v = line.partition(":")
            if k in peak:
                peak[k] = max(peak[k], int(v.split()[0]))
        n += 1
    except (OSError, ValueError, IndexError):
        pass
    time.sleep(0.001)
wall = time.perf_counter() - t0
err = p.stderr.read().decode(errors="replace")
open(out, "a").write(json.dumps(dict(label=label, wall_s=round(wall, 3), samples=n,
     peak_rss_anon_kb=peak["RssAnon"], peak_rss_file_kb=peak["RssFile"],
     vmhwm_kb=peak["VmHWM"], rc=p.returncode, cmd=cmd)) + "\n")
sys.stderr.write(err)
EOF
  for t in 1to1 whole demo; do
    case $t in 1to1) c=("${VV_1TO1[@]}");; whole) c=("${VV_WHOLE[@]}");; demo) c=("${VV_DEMO[@]}");; esac
    "${c[@]}" >/dev/null 2>&1 || true            # warm the page cache
    { echo "\$ ${c[*]} -v   (warm)"; "$PY" "$SAMPLER" "vv_$t" "$RES/peak_anon_1ms.jsonl" "${c[@]}" -v 2>&1; } \
      | tee "$RES/verbose_${t}_warm.txt" >&2
    if [[ $t != demo ]]; then
      sync; echo 3 > /proc/sys/vm/drop_caches
      { echo "\$ ${c[*]} -v   (cold: after sync; echo 3 > /proc/sys/vm/drop_caches)"
        "$PY" "$SAMPLER" "vv_${t}_cold" "$RES/peak_anon_1ms.jsonl" "${c[@]}" -v 2>&1; } \
        | tee "$RES/verbose_${t}_cold.txt" >&2
    fi
  done
fi

# --- 6. matplotlib imshow: once (~30 s warm, ~20 GiB RAM); last, as it evicts the page cache
if has mpl; then
  cold=(); [[ "${MPL_COLD:-0}" == 1 ]] && cold=(--cold)
  "$VASTVIEW" render "$IMG" -o "$OUT/warm.png" --size 64x64 >/dev/null 2>&1 || true   # file in page cache
  M --label mpl_imshow_20k --data "$DESC" "${cold[@]}" --runs 1 \
    --as-limit-gb $AS --timeout 900 -- "$PY" "$PEERS/bench_matplotlib.py" imshow --data "$DATA"
fi

# --- 7. tables ---------------------------------------------------------------------------
"$PY" "$PEERS/make_results.py" "$RES/raw.jsonl" > "$RES/table.md"
PYTHONPATH="$HERE" "$PY" - "$RES/raw.jsonl" > "$RES/ratios.md" <<'EOF'
import json, sys
import figures
recs = figures.load(sys.argv[1])
def fig(label): return figures.fig(recs, label)
# finer RssAnon peaks (1 ms sampler, step 5) raise a task's anon_max when higher
import os
fine = os.path.join(os.path.dirname(sys.argv[1]), "peak_anon_1ms.jsonl")
if os.path.exists(fine):
    names = {"vv_1to1": "vv_render_1to1_1024", "vv_whole": "vv_render_whole_1024",
             "vv_demo": "vv_render_demo_4096"}
    for line in open(fine):
        r = json.loads(line)
        lab = names.get(r["label"].removesuffix("_cold"))
        if lab in recs:
            recs[lab].setdefault("fine_anon_kb", []).append(r["peak_rss_anon_kb"])
_fig = fig
def fig(label):
    d = _fig(label)
    if d and recs[label].get("fine_anon_kb"):
        d["anon_max"] = max(d["anon_max"], max(recs[label]["fine_anon_kb"]) / 1024)
    return d
def f(x, unit=" s"): return "-" if x is None else f"{x:.2f}{unit}"
def ratio(a, b): return "-" if a is None or b is None else f"{a / b:.1f}x"
vv = fig("vv_render_whole_1024")
print("| peer task / vastview task | warm median ratio | cold ratio | peak anon ratio |")
print("|---|---|---|---|")
for peer in ("ds_raster_20k", "mpl_imshow_20k"):
    p = fig(peer)
    if p and vv:
        print(f"| {peer} ({f(p['warm'])} warm, {f(p['cold'])} cold, {f(p['anon'], ' MiB')} anon) / "
              f"vv_render_whole_1024 ({f(vv['warm'])} warm, {f(vv['cold'])} cold, {f(vv['anon'], ' MiB')} anon) | "
              f"{ratio(p['warm'], vv['warm'])} | {ratio(p['cold'], vv['cold'])} | {ratio(p['anon'], vv['anon'])} |")
print()
print("Goals (100 MB = 95.4 MiB; anon = highest RssAnon seen in any run of the task, 50 ms and 1 ms sampling):")
def goal(name, ok): print(f"- {name}: {'MET' if ok else 'NOT MET'}")
a = fig("vv_render_1to1_1024")
if a:
    goal(f"1:1 1024 region warm < 0.3 s ({f(a['warm'])})", a["warm"] is not None and a["warm"] < 0.3)
    goal(f"1:1 1024 region cold < 0.3 s ({f(a['cold'])})", a["cold"] is not None and a["cold"] < 0.3)
    goal(f"1:1 1024 region anon < 100 MB ({f(a['anon_max'], ' MiB')})", a["anon_max"] < 100e6 / 2**20)
ds = fig("ds_raster_20k")
if vv and ds:
    goal(f"whole -> 1024 >= 3x faster than datashader, warm ({ratio(ds['warm'], vv['warm'])})",
         ds["warm"] / vv["warm"] >= 3)
    goal(f"whole -> 1024 >= 3x faster than datashader, cold ({ratio(ds['cold'], vv['cold'])})",
         ds["cold"] / vv["cold"] >= 3)
if vv:
    goal(f"whole -> 1024 anon < 100 MB ({f(vv['anon_max'], ' MiB')})", vv["anon_max"] < 100e6 / 2**20)
d = fig("vv_render_demo_4096")
if d:
    print(f"- demo 4096x4096 (no stated goal): {f(d['warm'])} warm, {f(d['cold'])} cold, "
          f"{f(d['anon_max'], ' MiB')} peak anon")
EOF
if [[ -f "$RES/peak_anon_1ms.jsonl" ]]; then
  {
    echo; echo "Peak RssAnon with 1 ms sampling (one -v run each; the sampler itself costs some CPU):"; echo
    echo "| run | wall | peak RssAnon | peak RssFile | VmHWM | samples |"; echo "|---|---|---|---|---|---|"
    "$PY" - "$RES/peak_anon_1ms.jsonl" <<'EOF2'
import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    print(f"| {r['label']} | {r['wall_s']:.3f} s | {r['peak_rss_anon_kb']/1024:.1f} MiB | "
          f"{r['peak_rss_file_kb']/1024:.1f} MiB | {r['vmhwm_kb']/1024:.1f} MiB | {r['samples']} |")
EOF2
  } >> "$RES/ratios.md"
fi
echo
cat "$RES/table.md"
echo
cat "$RES/ratios.md"
log "results in $RES"
