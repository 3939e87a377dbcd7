#!/usr/bin/env python3
"""Test oracle for vastview's point sets: numpy writes the inputs and re-implements datashader's binning
rule and `tf.shade` (with a matplotlib colormap) for the expected grids and colors. Nothing here uses
vastview; `benches/check_points_oracle.py` checks these functions once against real datashader.

Binning rule (datashader 0.19, Canvas.points): keep iff xmin <= x <= xmax and ymin <= y <= ymax (float64);
s = W / (xmax - xmin); t = -xmin * s; col = trunc(x * s + t), W - 1 when >= W; rows likewise, row 0 = lowest y.

Usage: python3 tests/oracle_points.py OUTDIR   -> inputs, expected arrays and OUTDIR/manifest_points.json
"""
import json
import os
import sys
import warnings

import numpy as np

warnings.filterwarnings("ignore")


def bin_points(x, y, v, extent, w, h, agg="count"):
    """The aggregate grid (h, w), row 0 = lowest y: uint32 counts, or float64 with NaN where empty."""
    xmin, ymin, xmax, ymax = extent
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    keep = (x >= xmin) & (x <= xmax) & (y >= ymin) & (y <= ymax)
    sx = w / (xmax - xmin)
    tx = -xmin * sx
    sy = h / (ymax - ymin)
    ty = -ymin * sy
    c = np.minimum((x[keep] * sx + tx).astype(np.int64), w - 1)
    r = np.minimum((y[keep] * sy + ty).astype(np.int64), h - 1)
    idx = r * w + c
    if agg == "count":
        return np.bincount(idx, minlength=w * h).astype(np.uint32).reshape(h, w)
    val = np.asarray(v, dtype=np.float64)[keep]
    ok = ~np.isnan(val)
    idx, val = idx[ok], val[ok]
    n = np.bincount(idx, minlength=w * h)
    if agg in ("sum", "mean"):
        s = np.bincount(idx, weights=val, minlength=w * h)
        out = s / np.where(n == 0, 1, n) if agg == "mean" else s
    elif agg == "min":
        out = np.full(w * h, np.inf)
        np.minimum.at(out, idx, val)
    else:
        out = np.full(w * h, -np.inf)
        np.maximum.at(out, idx, val)
    out = out.astype(np.float64)
    out[n == 0] = np.nan
    return out.reshape(h, w)


def data_bounds(x, y):
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    f = np.isfinite(x) & np.isfinite(y)
    e = [x[f].min(), y[f].min(), x[f].max(), y[f].max()]
    if e[2] <= e[0]:
        e[0] -= 0.5
        e[2] += 0.5
    if e[3] <= e[1]:
        e[1] -= 0.5
        e[3] += 0.5
    return e


def eq_hist(data, mask, nbins=256 * 256):
    """datashader.transfer_functions.eq_hist (numpy path), returning only the values."""
    data2 = data[~mask]
    if np.issubdtype(data2.dtype, np.integer) and np.ptp(data2) < nbins:
        values, counts = np.unique(data2, return_counts=True)
        vmin, vmax = values[0].item(), values[-1].item()
        bin_centers = np.arange(vmin, vmax + 1)
        hist = np.zeros(vmax - vmin + 1, dtype="uint64")
        hist[values - vmin] = counts
    else:
        hist, edges = np.histogram(data2, bins=nbins)
        bin_centers = (edges[:-1] + edges[1:]) / 2
        keep = hist > 0
        hist, bin_centers = hist[keep], bin_centers[keep]
    cdf = hist.cumsum()
    cdf = cdf / float(cdf[-1])
    return np.interp(data, bin_centers, cdf).reshape(data.shape)


def normalize(agg, how):
    """datashader `_interpolate` up to the colormap call: 0..1 per pixel, NaN where empty."""
    data = agg.copy()
    mask = (data == 0) if data.dtype.kind == "u" else np.isnan(data)
    if mask.all():
        return np.full(data.shape, np.nan)
    offset = data[~mask].min()
    data = data - offset
    if how == "linear":
        f = np.where(mask, np.nan, data.astype(np.float64))
    elif how == "log":
        f = np.log1p(np.where(mask, np.nan, data.astype(np.float64)))
    else:
        f = eq_hist(data, mask)
        f = np.where(mask, np.nan, f)
    s0, s1 = np.nanmin(f), np.nanmax(f)
    if s1 == s0:  # datashader draws nothing here; vastview draws the top color
        return np.where(mask, np.nan, 1.0)
    return (f - s0) / (s1 - s0)


def over(src, bg):
    """datashader.composite.over for arrays of RGBA uint8 (src) over one RGBA color."""
    s = src.astype(np.float64) / 255
    d = np.array(bg, dtype=np.float64) / 255
    factor = 1 - s[..., 3]
    a = s[..., 3] + d[3] * factor
    out = np.zeros_like(src)
    nz = a > 0
    for i in range(3):
        ch = (s[..., i] * s[..., 3] + d[i] * d[3] * factor) / np.where(nz, a, 1)
        out[..., i] = np.minimum(255, (ch * 255).astype(np.uint32))
    out[..., 3] = np.minimum(255, (a * 255).astype(np.uint32))
    out[~nz] = 0
    return out


def shade(agg, how, cmap, alpha=255, background=None):
    """RGBA uint8 image, north up (row 0 = highest y), like tf.shade(agg, cmap=<matplotlib cmap>)."""
    import matplotlib

    t = normalize(agg, how)
    rgba = matplotlib.colormaps[cmap](t, bytes=True)
    rgba[..., 3] = np.where(np.isnan(t), 0, alpha).astype(np.uint8)
    rgba[np.isnan(t)] = 0
    if background is not None and background[3] > 0:
        rgba = over(rgba, background)
    return rgba[::-1].copy()


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(20261123)
    p = lambda n: os.path.join(out, n)
    man = {"npy": [], "png": [], "errors": [], "notes": []}

    # Points with edges, NaN/inf coordinates and points just outside the region.
    n = 50_000
    xyz = np.empty((n, 3), dtype=np.float32)
    xyz[:, 0] = rng.normal(0.5, 1.2, n)
    xyz[:, 1] = rng.normal(-0.25, 0.8, n)
    xyz[:, 2] = rng.gamma(2.0, 3.0, n)
    region = [-2.0, -1.5, 3.0, 1.25]
    edges = [(-2.0, 0.0), (3.0, 0.0), (0.0, -1.5), (0.0, 1.25), (-2.0, -1.5), (3.0, 1.25),
             (np.nextafter(np.float32(3.0), np.float32(9)), 0.0), (np.nan, 0.0), (0.0, np.inf), (-np.inf, np.nan),
             (0.1, 0.1), (0.1, 0.1)]
    for i, (a, b) in enumerate(edges):
        xyz[i, 0], xyz[i, 1] = a, b
    xyz.tofile(p("xyz_f32.bin"))
    np.save(p("xyz_f32.npy"), xyz)
    xyz64 = xyz.astype(np.float64)
    np.save(p("xyz_f64_F.npy"), np.asfortranarray(xyz64))
    np.save(p("xy_f32.npy"), np.ascontiguousarray(xyz[:, :2]))
    x, y, v = xyz64[:, 0], xyz64[:, 1], xyz64[:, 2]
    reg = ",".join(str(r) for r in region)

    def case(name, file, args, agg, extent, w, h, rtol=0.0):
        exp = bin_points(x, y, v, extent, w, h, agg)
        np.save(p(f"exp_{name}.npy"), exp)
        man["npy"].append({"name": name, "file": file, "args": args, "expected": f"exp_{name}.npy", "rtol": rtol})

    np.save(p("xyz_f64_F_big.npy"), np.asfortranarray(xyz64.astype(">f8")))
    with open(p("xyz_f32_off3.bin"), "wb") as f:  # a 3-byte header: records not aligned in memory
        f.write(b"abc")
        f.write(xyz.tobytes())
    for fname, extra in [("xyz_f32.bin", ["--dtype", "f32", "--columns", "3"]), ("xyz_f32.npy", []),
                         ("xyz_f64_F.npy", []), ("xy_f32.npy", []), ("xyz_f64_F_big.npy", []),
                         ("xyz_f32_off3.bin", ["--dtype", "f32", "--columns", "3", "--offset", "3"])]:
        tag = fname.replace(".", "_")
        case(f"count_{tag}", fname, ["--points", *extra, "--region", reg, "--size", "64x40"], "count", region, 64, 40)
    case("count_default_region", "xyz_f32.bin", ["--points", "--dtype", "f32", "--columns", "3", "--size", "100x70"],
         "count", data_bounds(x, y), 100, 70)
    for agg in ["sum", "mean", "min", "max"]:
        for fname in ["xyz_f32.npy", "xyz_f64_F.npy", "xyz_f64_F_big.npy"]:
            case(f"{agg}_{fname.replace('.', '_')}", fname,
                 ["--points", "--agg", agg, "--region", reg, "--size", "48x32"], agg, region, 48, 32, 1e-12)
    # NaN values are not aggregated (and said so): mean over the others.
    nv = xyz64.copy()
    nv[::7, 2] = np.nan
    np.save(p("xyz_nanval.npy"), nv)
    np.save(p("exp_nanval_mean.npy"), bin_points(nv[:, 0], nv[:, 1], nv[:, 2], region, 48, 32, "mean"))
    man["npy"].append({"name": "nanval_mean", "file": "xyz_nanval.npy", "expected": "exp_nanval_mean.npy",
                       "rtol": 1e-12, "args": ["--points", "--agg", "mean", "--region", reg, "--size", "48x32"]})
    man["nan_values"] = int(np.count_nonzero(np.isnan(nv[:, 2]) & (nv[:, 0] >= region[0]) & (nv[:, 0] <= region[2])
                                             & (nv[:, 1] >= region[1]) & (nv[:, 1] <= region[3])))
    # x and y swapped, value from column 2 named explicitly
    sw = bin_points(y, x, v, [-1.5, -2.0, 1.25, 3.0], 30, 50, "max")
    np.save(p("exp_swapped.npy"), sw)
    man["npy"].append({"name": "swapped", "file": "xyz_f32.npy", "expected": "exp_swapped.npy", "rtol": 0.0,
                       "args": ["--points", "--x", "1", "--y", "0", "--value", "2", "--agg", "max",
                                "--region", "-1.5,-2,1.25,3", "--size", "30x50"]})

    # Text: header, comma and whitespace separators, malformed lines (numbered from 1).
    lines = ["x,y,z"]
    bad = []
    for i in range(3000):
        if i in (10, 500, 2999):
            lines.append("1.0,oops,3")
            bad.append(len(lines))
        elif i == 42:
            lines.append("1 2")
            bad.append(len(lines))
        else:
            sep = "," if i % 2 else " "
            lines.append(sep.join(repr(float(t)) for t in xyz64[100 + i]))
    with open(p("pts.csv"), "w") as f:
        f.write("\n".join(lines) + "\n")
    tx = np.array([xyz64[100 + i] for i in range(3000) if i not in (10, 500, 2999, 42)])
    np.save(p("exp_text.npy"), bin_points(tx[:, 0], tx[:, 1], tx[:, 2], region, 40, 30, "count"))
    man["text"] = {"file": "pts.csv", "args": ["--points", "--region", reg, "--size", "40x30"],
                   "expected": "exp_text.npy", "malformed": len(bad), "first_malformed": bad}

    # PNG colors: scales, colormaps, alpha, background, a float aggregate through eq_hist's histogram path.
    pngs = [("eqhist_viridis", "count", "eqhist", "viridis", 1.0, None),
            ("log_magma", "count", "log", "magma", 1.0, None),
            ("linear_gray_r", "count", "linear", "gray_r", 1.0, None),
            ("eqhist_alpha_bg", "count", "eqhist", "inferno", 0.5, [16, 32, 48, 255]),
            ("mean_eqhist", "mean", "eqhist", "turbo", 1.0, None),
            ("sum_log_bg", "sum", "log", "plasma", 1.0, [255, 255, 255, 255]),
            ("max_linear", "max", "linear", "RdBu", 0.8, None)]
    for name, agg, how, cmap, alpha, bg in pngs:
        g = bin_points(x, y, v, region, 80, 60, agg)
        img = shade(g, "eq_hist" if how == "eqhist" else how, cmap, int(round(alpha * 255)), bg)
        np.save(p(f"exp_png_{name}.npy"), img)
        args = ["--points", "--agg", agg, "--scale", how, "--colormap", cmap, "--alpha", str(alpha),
                "--region", reg, "--size", "80x60"]
        if bg is not None:
            args += ["--background", "".join(f"{c:02x}" for c in bg)]
        man["png"].append({"name": name, "file": "xyz_f32.npy", "args": args, "expected": f"exp_png_{name}.npy",
                           "tol": 2})
    # Counts spread wider than 65536 values: eq_hist switches to its histogram path.
    big = np.concatenate([np.zeros((70_000, 2)), rng.uniform(0, 1, (2000, 2))]).astype(np.float64)
    np.save(p("wide.npy"), big)
    g = bin_points(big[:, 0], big[:, 1], None, [0, 0, 1, 1], 16, 16, "count")
    np.save(p("exp_png_wide.npy"), shade(g, "eq_hist", "viridis"))
    man["png"].append({"name": "wide_counts_eqhist", "file": "wide.npy", "expected": "exp_png_wide.npy", "tol": 2,
                       "args": ["--points", "--scale", "eqhist", "--region", "0,0,1,1", "--size", "16x16"]})

    # Bad input: exit 2 and one line naming the file.
    xyz[:1000].tofile(p("bad_size.bin"))
    with open(p("bad_size.bin"), "ab") as f:
        f.write(b"\0\0\0\0\0")
    open(p("empty.bin"), "wb").close()
    np.full((100, 2), np.nan, dtype=np.float32).tofile(p("all_nan.bin"))
    np.save(p("ints.npy"), np.zeros((100, 2), dtype=np.int32))
    np.save(p("flat.npy"), np.zeros(100, dtype=np.float32))
    with open(p("garbage.dat"), "wb") as f:
        f.write(bytes(range(256)) * 4)
    with open(p("all_bad.txt"), "w") as f:
        f.write("a b c\n1 x 2\nfoo\n")
    f32 = ["--dtype", "f32", "--columns", "3"]
    man["errors"] = [
        {"file": "bad_size.bin", "args": f32, "want": "not a multiple of the record size"},
        {"file": "empty.bin", "args": f32, "want": "empty"},
        {"file": "all_nan.bin", "args": ["--dtype", "f32", "--columns", "2"], "want": "finite"},
        {"file": "ints.npy", "args": [], "want": "float32 or float64"},
        {"file": "flat.npy", "args": [], "want": "not a point array"},
        {"file": "garbage.dat", "args": [], "want": "neither .npy nor text"},
        {"file": "all_bad.txt", "args": [], "want": "malformed"},
        {"file": "xyz_f32.npy", "args": ["--x", "7"], "want": "--x 7 is not a column"},
        {"file": "xy_f32.npy", "args": ["--agg", "mean"], "want": "needs a value column"},
        {"file": "xyz_f32.npy", "args": ["--region", "1,1,0,2"], "want": "--region"},
        {"file": "xyz_f32.npy", "args": ["--scale", "sqrt"], "want": "eqhist"},
        {"file": "xyz_f32.npy", "args": ["--size", "70000x10"], "want": "1 to 65536 on each side"},
    ]
    # All points identical: padded by 0.5, said so, and drawn.
    np.save(p("same.npy"), np.tile(np.array([[2.0, -3.0]], dtype=np.float64), (500, 1)))
    man["same"] = {"file": "same.npy", "expected_extent": [1.5, -3.5, 2.5, -2.5]}
    json.dump(man, open(p("manifest_points.json"), "w"), indent=1)


if __name__ == "__main__":
    main()
