#!/usr/bin/env python3
"""Checks tests/oracle_points.py (numpy, what CI uses) against real datashader, once, on the oracle's inputs:
aggregate grids (count, sum, mean, min, max) and shaded colors (linear, log, eq_hist with matplotlib
colormaps, alpha, set_background). Needs datashader (e.g. /tmp/peervenv/bin/python).

Usage: check_points_oracle.py [OUTDIR]     (writes the oracle's files there first; default /tmp/vv-points-check)
Prints one line per comparison and exits 1 if any differs.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import oracle_points as op  # noqa: E402


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "/tmp/vv-points-check"
    sys.argv = [sys.argv[0], out]
    op.main()
    import datashader as ds
    import datashader.transfer_functions as tf
    import matplotlib
    import pandas as pd

    xyz = np.load(os.path.join(out, "xyz_f32.npy"))
    df = pd.DataFrame({"x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2]})
    bad = 0

    def report(what, ok, extra=""):
        nonlocal bad
        bad += not ok
        print(f"{'OK  ' if ok else 'DIFF'} {what} {extra}")

    cases = [([-2.0, -1.5, 3.0, 1.25], 64, 40), ([-2.0, -1.5, 3.0, 1.25], 80, 60), ([-4.0, -3.0, 5.0, 2.0], 333, 217),
             (op.data_bounds(df.x.values, df.y.values), 100, 70)]
    aggs = {"count": ds.count(), "sum": ds.sum("z"), "mean": ds.mean("z"), "min": ds.min("z"), "max": ds.max("z")}
    for ext, w, h in cases:
        cvs = ds.Canvas(plot_width=w, plot_height=h, x_range=(ext[0], ext[2]), y_range=(ext[1], ext[3]))
        for name, agg in aggs.items():
            a = cvs.points(df, "x", "y", agg=agg)
            ref = a.values
            mine = op.bin_points(df.x.values, df.y.values, df.z.values, ext, w, h, name)
            if name == "count":
                ok = ref.dtype == mine.dtype and np.array_equal(ref, mine)
            else:
                ok = np.allclose(ref, mine, rtol=1e-5, atol=0, equal_nan=True)  # datashader sums float32 z
            report(f"agg {name:5s} {w}x{h} extent {ext}", ok, f"(datashader {ref.dtype}, sum {np.nansum(ref):.6g})")
            for how in ("linear", "log", "eq_hist"):
                for cmap, alpha, bg in (("viridis", 255, None), ("inferno", 128, "#102030")):
                    img = tf.shade(a, cmap=matplotlib.colormaps[cmap], how=how, alpha=alpha)
                    if bg:
                        img = tf.set_background(img, bg)
                    rgba = img.data.view(np.uint8).reshape(h, w, 4)[::-1]
                    want = op.shade(mine, how, cmap, alpha, None if bg is None else [16, 32, 48, 255])
                    d = np.abs(rgba.astype(int) - want.astype(int)).max()
                    report(f"  shade {name:5s} {how:7s} {cmap} alpha {alpha} bg {bg}", d <= 1, f"max channel diff {d}")
    print(f"datashader {ds.__version__}: {'all match' if bad == 0 else f'{bad} differ'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
