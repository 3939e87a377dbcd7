#!/usr/bin/env python3
"""Test oracle for vastview's integration tests: numpy writes every input file and computes every
expected value; matplotlib's colormaps give every expected color. Nothing here uses vastview.

Usage: python3 tests/oracle.py OUTDIR   -> writes inputs, expected arrays and OUTDIR/manifest.json
"""
import json
import warnings
import os
import sys

import matplotlib
import numpy as np
from matplotlib.colors import Normalize

warnings.filterwarnings("ignore")
OUT = sys.argv[1]
os.makedirs(OUT, exist_ok=True)
rng = np.random.default_rng(20261122)
manifest = {"probe": [], "render": [], "export": [], "errors": [], "colormaps": {}}

DTYPES = ["bool", "int8", "uint8", "int16", "uint16", "float16", "int32", "uint32", "float32",
          "int64", "uint64", "float64"]
CMAPS = ["gray", "viridis", "magma", "inferno", "plasma", "cividis", "turbo", "twilight", "coolwarm",
         "hot", "RdBu", "Greys"]


def path(name):
    return os.path.join(OUT, name)


def sample(dtype, shape):
    """Random values of a dtype with its extremes and (for floats) specials at the start of row 0."""
    dt = np.dtype(dtype)
    n = int(np.prod(shape))
    if dt.kind == "b":
        v = rng.integers(0, 2, n).astype(bool)
    elif dt.kind in "iu":
        info = np.iinfo(dt)
        v = rng.integers(info.min, info.max, n, dtype=dt.newbyteorder("="), endpoint=True).astype(dt)
        v[:2] = [info.min, info.max]
    else:
        v = (rng.standard_normal(n) * 10.0 ** rng.integers(-3, 4, n)).astype(dt)
        fi = np.finfo(dt)
        v[:8] = [np.nan, np.inf, -np.inf, -0.0, fi.max, fi.tiny, 0.1, 1 / 3]
    return v.reshape(shape)


def probes_for(arr, stack):
    h, w = arr.shape[-2], arr.shape[-1]
    pts = [(x, 0) for x in range(min(8, w))] + [(int(rng.integers(w)), int(rng.integers(h))) for _ in range(8)]
    pts.append((w - 1, h - 1))
    out = []
    for x, y in pts:
        if stack:
            s = int(rng.integers(arr.shape[0]))
            out.append([x, y, s, str(arr[s, y, x])])
        else:
            out.append([x, y, 0, str(arr[y, x])])
    return out


def info_of(arr, order, endian, fmt):
    return {"shape": list(arr.shape), "dtype": arr.dtype.name, "memory_order": order,
            "byte_order": endian, "format": fmt}


# --- every dtype x byte order x memory order, as .npy (and stacks, versions 2.0/3.0, raw) ---
for dt in DTYPES:
    for endian in ["little", "big"]:
        for order in ["C", "F"]:
            code = np.dtype(dt).str[1:]
            e = "<" if endian == "little" else ">"
            full = np.dtype(e + code) if np.dtype(dt).itemsize > 1 else np.dtype(dt)
            stack = dt in ("uint16", "float32", "float64") and order == "C"
            shape = (3, 9, 11) if stack else (9, 11)
            arr = sample(full, shape)
            arr = np.asfortranarray(arr) if order == "F" else np.ascontiguousarray(arr)
            name = f"p_{dt}_{endian}_{order}.npy"
            np.save(path(name), arr)
            bo = endian if np.dtype(dt).itemsize > 1 else "little"
            manifest["probe"].append({"file": name, "args": [], "probes": probes_for(arr, stack),
                                      "info": info_of(arr, order, bo, "npy")})

for ver in [(2, 0), (3, 0)]:
    arr = sample("<f4", (6, 5))
    name = f"p_version_{ver[0]}.npy"
    with open(path(name), "wb") as f:
        np.lib.format.write_array(f, arr, version=ver)
    manifest["probe"].append({"file": name, "args": [], "probes": probes_for(arr, False),
                              "info": info_of(arr, "C", "little", "npy")})

for dt, endian, order, offset in [("uint16", "little", "C", 0), ("float32", "big", "F", 100),
                                  ("int64", "little", "C", 8), ("float16", "big", "C", 3),
                                  ("uint8", "little", "F", 0)]:
    e = "<" if endian == "little" else ">"
    arr = sample(np.dtype(dt).newbyteorder(e), (7, 13))
    name = f"r_{dt}_{endian}_{order}.raw"
    with open(path(name), "wb") as f:
        f.write(b"\xab" * offset)
        f.write(arr.ravel(order=order).tobytes())
    args = ["--dtype", dt, "--shape", "7x13", "--order", order, "--endian", endian, "--offset", str(offset)]
    manifest["probe"].append({"file": name, "args": args, "probes": probes_for(arr, False),
                              "info": info_of(arr, order, endian if np.dtype(dt).itemsize > 1 else "little", "raw")})
# numpy spelling with the byte order inside the dtype
arr = sample(">u2", (4, 6))
arr.tofile(path("r_spelled.raw"))
manifest["probe"].append({"file": "r_spelled.raw", "args": ["--dtype", ">u2", "--shape", "4x6"],
                          "probes": probes_for(arr, False), "info": info_of(arr, "C", "big", "raw")})


# --- rendering: PNG pixels against matplotlib's colormaps ---
def cmap256(name):
    """matplotlib's colormap as a 256-entry table (twilight has 510 entries; the rest already 256)."""
    c = matplotlib.colormaps[name]
    return c if c.N == 256 else c.resampled(256)


def colors(cmap, t_or_norm_values):
    return cmap256(cmap)(t_or_norm_values, bytes=True)


def add_render(name, file, args, expected, tol=2):
    np.save(path(f"exp_{name}.npy"), np.ascontiguousarray(expected, dtype=np.uint8))
    manifest["render"].append({"name": name, "file": file, "args": args, "expected": f"exp_{name}.npy", "tol": tol})


# Every dtype through gray with limits at its finite range (NaN -> transparent, inf clamps).
for dt in DTYPES:
    arr = sample(np.dtype(dt), (40, 70))
    np.save(path(f"d_{dt}.npy"), arr)
    vals = arr.astype(np.float64)
    fin = vals[np.isfinite(vals)]
    lo, hi = float(fin.min()), float(fin.max())
    if dt.startswith("float"):
        # keep contrast on the bulk of the values, not on finfo.max
        lo, hi = -30.0, 30.0
    exp = colors("gray", Normalize(lo, hi)(vals))
    add_render(f"dtype_{dt}", f"d_{dt}.npy", ["--colormap", "gray", "--limits", f"{lo!r},{hi!r}"], exp)

# Colormap sweep: values at bin centres so every entry is hit unambiguously.
k = rng.integers(0, 256, (32, 64))
lo, hi = -5.0, 11.0
ramp = (lo + (k + 0.5) / 256 * (hi - lo)).astype(np.float32)
np.save(path("cmap_data.npy"), ramp)
for c in CMAPS:
    for cname in (c, c + "_r"):
        exp = colors(cname, Normalize(lo, hi)(ramp.astype(np.float64)))
        add_render(f"cmap_{cname}", "cmap_data.npy", ["--colormap", cname, "--limits", f"{lo},{hi}"], exp)
        manifest["colormaps"][cname] = cmap256(cname)(np.arange(256), bytes=True)[:, :3].tolist()

# Scales and gamma (log/asinh are astropy's LogStretch(1000) and AsinhStretch(0.1)).
data = rng.uniform(-2, 12, (30, 50)).astype(np.float32)
np.save(path("scale_data.npy"), data)
for scale, gamma in [("linear", 1.0), ("log", 1.0), ("sqrt", 1.0), ("asinh", 1.0), ("linear", 2.2), ("sqrt", 0.5)]:
    t = np.clip((data.astype(np.float64) - 0) / 10, 0, 1)
    t = {"linear": t, "log": np.log(1000 * t + 1) / np.log(1001), "sqrt": np.sqrt(t),
         "asinh": np.arcsinh(t / 0.1) / np.arcsinh(10)}[scale]
    t = t ** gamma
    exp = colors("magma", t)
    add_render(f"scale_{scale}_{gamma}", "scale_data.npy",
               ["--colormap", "magma", "--limits", "0,10", "--scale", scale, "--gamma", str(gamma)], exp)

# 1:1 region, enlarged region (nearest), downsampled (numpy block mean), F order / big endian.
img = (rng.standard_normal((384, 512)) * 3 + np.linspace(0, 20, 512)).astype(np.float32)
np.save(path("img.npy"), img)
np.save(path("img_f_be.npy"), np.asfortranarray(img.astype(">f4")))
norm = Normalize(-5, 25)
add_render("region_1to1", "img.npy", ["--region", "10,20,74,68", "--limits", "-5,25"],
           colors("viridis", norm(img[20:68, 10:74].astype(np.float64))))
add_render("region_1to1_fortran_bigendian", "img_f_be.npy", ["--region", "300,100,420,180", "--limits", "-5,25"],
           colors("viridis", norm(img[100:180, 300:420].astype(np.float64))))
crop = img[50:60, 200:216].astype(np.float64)
add_render("enlarged_4x", "img.npy", ["--region", "200,50,216,60", "--size", "64x40", "--limits", "-5,25"],
           colors("viridis", norm(np.repeat(np.repeat(crop, 4, 0), 4, 1))))
block = img.astype(np.float64).reshape(96, 4, 128, 4).mean(axis=(1, 3))
add_render("downsampled_4x_blockmean", "img.npy", ["--size", "128x96", "--limits", "-5,25"],
           colors("viridis", norm(block)))
block2 = img[0:256, 256:512].astype(np.float64).reshape(64, 4, 64, 4).mean(axis=(1, 3))
add_render("downsampled_region", "img_f_be.npy", ["--region", "256,0,512,256", "--size", "64x64", "--limits", "-5,25"],
           colors("viridis", norm(block2)))
manifest["export"].append({"name": "export_block_mean", "file": "img.npy", "args": ["--size", "128x96"],
                           "expected": "exp_export_block.npy", "rtol": 1e-6})
np.save(path("exp_export_block.npy"), block.astype(np.float32))
manifest["export"].append({"name": "export_1to1_region", "file": "img_f_be.npy", "args": ["--region", "5,6,40,30"],
                           "expected": "exp_export_1to1.npy", "rtol": 0})
np.save(path("exp_export_1to1.npy"), img[6:30, 5:40])
u16 = rng.integers(0, 65535, (20, 30), dtype=np.uint16)
np.save(path("u16_small.npy"), u16)
np.save(path("exp_export_u16.npy"), u16)
manifest["export"].append({"name": "export_1to1_keeps_dtype", "file": "u16_small.npy", "args": [],
                           "expected": "exp_export_u16.npy", "rtol": 0})

# Default limits: percentiles of a sample that, for a small image, is every pixel (np.nanpercentile).
u16img = rng.integers(1000, 60000, (64, 96), dtype=np.uint16)
np.save(path("u16.npy"), u16img)
plo, phi = np.percentile(u16img, [0.5, 99.5])
add_render("default_percentiles", "u16.npy", ["--colormap", "inferno"],
           colors("inferno", Normalize(plo, phi)(u16img.astype(np.float64))))
plo, phi = np.percentile(u16img, [10, 90])
add_render("explicit_percentiles", "u16.npy", ["--colormap", "gray", "--percentiles", "10,90"],
           colors("gray", Normalize(plo, phi)(u16img.astype(np.float64))))

# NaN color.
nanimg = rng.uniform(0, 1, (16, 24)).astype(np.float32)
nanimg[rng.uniform(size=nanimg.shape) < 0.2] = np.nan
np.save(path("nan.npy"), nanimg)
exp = colors("viridis", Normalize(0, 1)(nanimg.astype(np.float64)))
exp[np.isnan(nanimg)] = [255, 0, 0, 128]
add_render("nan_color", "nan.npy", ["--limits", "0,1", "--nan-color", "ff000080"], exp)
exp = colors("viridis", Normalize(0, 1)(nanimg.astype(np.float64)))
add_render("nan_default_transparent", "nan.npy", ["--limits", "0,1"], exp)

# 64-bit data with a tiny range around a huge value keeps full contrast (offset + f32 residual).
f64 = 1e9 + rng.uniform(-1e-3, 1e-3, (20, 300))
np.save(path("f64_offset.npy"), f64)
add_render("f64_tiny_range", "f64_offset.npy", ["--colormap", "gray", "--limits", f"{1e9 - 1e-3!r},{1e9 + 1e-3!r}"],
           colors("gray", Normalize(1e9 - 1e-3, 1e9 + 1e-3)(f64)))
i64 = (2 ** 50 + rng.integers(0, 1000, (20, 40))).astype(np.int64)
np.save(path("i64_offset.npy"), i64)
add_render("i64_tiny_range", "i64_offset.npy", ["--colormap", "gray", "--limits", f"{2**50},{2**50 + 999}"],
           colors("gray", Normalize(2 ** 50, 2 ** 50 + 999)(i64.astype(np.float64))))
f64d = 1e9 + rng.uniform(-1e-3, 1e-3, (64, 64))
np.save(path("f64_offset_ds.npy"), f64d)
bm = f64d.reshape(16, 4, 16, 4).mean(axis=(1, 3))
add_render("f64_tiny_range_downsampled", "f64_offset_ds.npy",
           ["--colormap", "gray", "--size", "16x16", "--limits", f"{1e9 - 5e-4!r},{1e9 + 5e-4!r}"],
           colors("gray", Normalize(1e9 - 5e-4, 1e9 + 5e-4)(bm)))

# Stacks, RGB and RGBA.
stack = rng.uniform(0, 1, (4, 12, 18)).astype(np.float32)
np.save(path("stack.npy"), stack)
add_render("stack_slice_2", "stack.npy", ["--slice", "2", "--limits", "0,1"],
           colors("viridis", Normalize(0, 1)(stack[2].astype(np.float64))))
rgb = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
np.save(path("rgb.npy"), rgb)
add_render("rgb", "rgb.npy", [], np.concatenate([rgb, np.full((20, 30, 1), 255, np.uint8)], axis=2), tol=0)
rgba = rng.integers(0, 256, (20, 30, 4), dtype=np.uint8)
np.save(path("rgba.npy"), rgba)
add_render("rgba_region", "rgba.npy", ["--region", "3,4,20,15"], rgba[4:15, 3:20], tol=0)
rgbd = rgb[:20, :28].astype(np.float64).reshape(10, 2, 14, 2, 3).mean(axis=(1, 3))
add_render("rgb_downsampled", "rgb.npy", ["--region", "0,0,28,20", "--size", "14x10"],
           np.concatenate([np.round(rgbd), np.full((10, 14, 1), 255.0)], axis=2), tol=1)

# Large enough to need several tiles and several render chunks in each direction.
big = rng.uniform(0, 1, (600, 2100)).astype(np.float32)
np.save(path("big.npy"), big)
add_render("multi_tile_1to1", "big.npy", ["--limits", "0,1", "--colormap", "turbo"],
           colors("turbo", Normalize(0, 1)(big.astype(np.float64))))


# The window: a 64 x 48 uint16 image seen at zoom 4; each data pixel through magma.
win = rng.integers(0, 4000, (48, 64), dtype=np.uint16)
np.save(path("window_u16.npy"), win)
np.save(path("exp_window.npy"), colors("magma", Normalize(500, 3500)(win.astype(np.float64))))
manifest["window"] = {"file": "window_u16.npy", "expected": "exp_window.npy", "limits": "500,3500",
                      "colormap": "magma", "zoom": 4, "center": "32,24"}


# --- bad input: exit 2, one line naming the file and the problem ---
def err(name, file, args, expect):
    manifest["errors"].append({"name": name, "file": file, "args": args, "expect": expect})


np.save(path("e_object.npy"), np.array([[1, "a"], [None, 2.0]], dtype=object))
err("object dtype", "e_object.npy", [], "object")
np.save(path("e_struct.npy"), np.zeros((3, 3), dtype=[("a", "<f4"), ("b", "<i2")]))
err("structured dtype", "e_struct.npy", [], "structured")
np.save(path("e_complex.npy"), np.zeros((3, 3), dtype=np.complex64))
err("complex dtype", "e_complex.npy", [], "complex")
np.save(path("e_string.npy"), np.array([["ab", "cd"]]))
err("string dtype", "e_string.npy", [], "string")
np.save(path("e_datetime.npy"), np.array([["2020-01-01"]], dtype="datetime64[ns]"))
err("datetime dtype", "e_datetime.npy", [], "datetime")
np.save(path("e_short.npy"), np.zeros((100, 100), np.float32))
with open(path("e_short.npy"), "r+b") as f:
    f.truncate(128 + 100 * 100 * 4 - 1)
err("data shorter than shape", "e_short.npy", [], "needs 40128 bytes")
with open(path("e_trunc_header.npy"), "wb") as f:
    f.write(open(path("e_short.npy"), "rb").read()[:40])
err("truncated header", "e_trunc_header.npy", [], "truncated")
with open(path("e_text.npy"), "w") as f:
    f.write("x,y\n1,2\n")
err("not an npy", "e_text.npy", [], "not an .npy")
open(path("e_empty.npy"), "wb").close()
err("empty file", "e_empty.npy", [], "empty")
np.save(path("e_zero.npy"), np.zeros((0, 5), np.float32))
err("zero-sized dimension", "e_zero.npy", [], "zero-sized")
np.save(path("e_1d.npy"), np.zeros(10, np.float32))
err("1-D array", "e_1d.npy", [], "not an image")
os.makedirs(path("e_dir.npy"), exist_ok=True)
err("directory", "e_dir.npy", [], "directory")
err("missing file", "e_missing.npy", [], "no such file")
np.zeros((10, 10), np.uint16).tofile(path("e_raw.raw"))
err("raw size mismatch", "e_raw.raw", ["--dtype", "u16", "--shape", "10x11"], "needs 220 bytes but the file has 200")
err("raw bad dtype", "e_raw.raw", ["--dtype", "c8", "--shape", "10x10"], "--dtype")
err("raw without shape", "e_raw.raw", ["--dtype", "u16"], "--shape")


# --- pyramid: level values, renders from a cached pyramid, stats, preview (tests/pyramid.rs) ---
# Semantics written down independently of vastview's code:
# - level L pixel i covers data pixels [i*2^L, (i+1)*2^L) clipped to the image; its value is the
#   NaN-ignoring mean of that block (all NaN -> NaN) in the source dtype (integers rounded half away
#   from zero) or the NaN-ignoring max;
# - the level count goes down to the first level that fits in one 256 x 256 tile;
# - shrinking a region to W x H: data pixel k of an axis belongs to output pixel floor((k + 0.5) * out / n)
#   (its centre); a render from the pyramid reads level floor(log2(min shrink of the two axes)) and an
#   output pixel is the NaN-ignoring mean (or max) of the level pixels its data block touches;
# - a preview reads, for each output row, the data row at the centre of its block, (first + end) // 2,
#   and averages it along x over each output column's block.
TILE = 256
pyr = {"renders": [], "stats": [], "preview": [], "files": {}}
manifest["pyramid"] = pyr


def level_count(w, h):
    n = 1
    while -(-w // 2 ** (n - 1)) > TILE or -(-h // 2 ** (n - 1)) > TILE:
        n += 1
    return n


def level_values(a, lvl, method):
    """Level `lvl` of a 2-D array from the data (clipped blocks), in the stored dtype, as float64."""
    f = 2 ** lvl
    h, w = a.shape
    H, W = -(-h // f), -(-w // f)
    x = np.full((H * f, W * f), np.nan)
    x[:h, :w] = a.astype(np.float64)
    blocks = x.reshape(H, f, W, f)
    if method == "max":
        return np.nanmax(blocks, axis=(1, 3))
    m = np.nanmean(blocks, axis=(1, 3))
    if a.dtype.kind in "iu":
        return np.where(m >= 0, np.floor(m + 0.5), np.ceil(m - 0.5))  # round half away from zero
    return m.astype(a.dtype).astype(np.float64)


def axis_blocks(start, n, out):
    """Per output pixel, its data block [first, end) along one axis (the centre rule)."""
    owner = ((2 * np.arange(n) + 1) * out) // (2 * n)
    first = np.searchsorted(owner, np.arange(out), side="left")
    end = np.searchsorted(owner, np.arange(out), side="right")
    assert np.all(end > first)
    return [(start + int(a), start + int(b)) for a, b in zip(first, end)]


def reduce_blocks(vals, xb, yb, method):
    """NaN-ignoring mean (or max) of vals[y0:y1, x0:x1] for every pair of blocks (blocks may overlap)."""
    def gather(b, n):
        first, lens = np.array([p for p, _ in b]), np.array([q - p for p, q in b])
        k = np.arange(lens.max())
        return np.minimum(first[:, None] + k, n - 1), k < lens[:, None]
    iy, my = gather(yb, vals.shape[0])
    ix, mx = gather(xb, vals.shape[1])
    g = np.where(my[:, :, None, None] & mx[None, None], vals[iy[:, :, None, None], ix[None, None]], np.nan)
    return (np.nanmax if method == "max" else np.nanmean)(g, axis=(1, 3))


def pyramid_render(a, region, size, method):
    """(expected float32 output, level used) of `render --region --size` with a cached pyramid."""
    x0, y0, x1, y1 = region
    ow, oh = size
    fac = min((x1 - x0) / ow, (y1 - y0) / oh)
    lvl = min(int(np.floor(np.log2(fac))), level_count(a.shape[1], a.shape[0]) - 1)
    xb, yb = axis_blocks(x0, x1 - x0, ow), axis_blocks(y0, y1 - y0, oh)
    lv = level_values(a, lvl, method)
    f = 2 ** lvl
    to_level = lambda b, n: [(min(p >> lvl, n - 1), min(max(-(-q // f), min(p >> lvl, n - 1) + 1), n)) for p, q in b]
    out = reduce_blocks(lv, to_level(xb, lv.shape[1]), to_level(yb, lv.shape[0]), method)
    return out.astype(np.float32), lvl


def add_pyr_render(name, file, arr, region, size, method, aligned, extra=()):
    exp, lvl = pyramid_render(arr, region, size, method)
    if aligned:  # a power-of-two shrink of an aligned region: the plain numpy block mean/max of the data
        f = 2 ** lvl
        x0, y0, x1, y1 = region
        blk = arr[y0:y1, x0:x1].astype(np.float64).reshape((y1 - y0) // f, f, (x1 - x0) // f, f)
        if method == "max":
            direct = np.nanmax(blk, axis=(1, 3))
        else:
            direct = np.nanmean(blk, axis=(1, 3))
            if arr.dtype.kind in "iu":
                direct = np.floor(direct + 0.5)
            else:
                direct = direct.astype(arr.dtype)
        assert np.array_equal(direct.astype(np.float32), exp, equal_nan=True), name
    np.save(path(f"exp_pyr_{name}.npy"), exp)
    # 64-bit levels are stored as a per-tile offset plus float32 residuals: the block values are exact to a
    # float32 ulp of the residual (|v - offset| <= the data's range) plus one of the value; others exactly.
    atol = 0.0
    if arr.dtype.itemsize == 8:
        atol = float(2.0 ** -23 * (np.nanmax(arr) - np.nanmin(arr) + np.nanmax(np.abs(arr))))
    pyr["renders"].append({"name": name, "file": file, "method": method, "level": lvl, "atol": atol,
                           "args": ["--region", ",".join(map(str, region)), "--size", f"{size[0]}x{size[1]}", *extra],
                           "expected": f"exp_pyr_{name}.npy"})


# Sizes that are not multiples of 16 (nor of 2): every level has a clipped last column and row.
PH, PW = 301, 2103
pf32 = (rng.standard_normal((PH, PW)) * 3 + 5).astype(np.float32)
pf32[rng.uniform(size=pf32.shape) < 0.05] = np.nan
pf32[32:72, 64:104] = np.nan  # whole 16 x 16 blocks of NaN -> NaN at every level
pf32[:, PW - 1] = np.nan  # the last, clipped level columns mix NaN and values
np.save(path("pyr_f32.npy"), pf32)
pu16 = rng.integers(0, 65535, (PH, PW), dtype=np.uint16, endpoint=True)
pu16[200:, 1000:1300] = rng.integers(0, 3, (PH - 200, 300))  # small values: rounding ties matter
np.save(path("pyr_u16.npy"), pu16)
pyr["files"] = {"f32": "pyr_f32.npy", "u16": "pyr_u16.npy", "levels": level_count(PW, PH)}
for label, file, arr, method in [("f32", "pyr_f32.npy", pf32, "mean"), ("u16", "pyr_u16.npy", pu16, "mean"),
                                 ("max", "pyr_f32.npy", pf32, "max")]:
    for f in [2, 4, 8, 16]:
        # the largest aligned region from the origin, and an aligned region inside that crosses tiles
        r = (0, 0, PW // f * f, PH // f * f)
        add_pyr_render(f"{label}_x{f}_aligned", file, arr, r, ((r[2] - r[0]) // f, (r[3] - r[1]) // f), method, True)
        r = (3 * f, 5 * f, 3 * f + (PW // f - 7) * f, 5 * f + (PH // f - 9) * f)
        add_pyr_render(f"{label}_x{f}_offset", file, arr, r, ((r[2] - r[0]) // f, (r[3] - r[1]) // f), method, True)
    # the whole image at sizes that are not exact factors: clipped last level pixels are read
    for ow, oh in [(PW // 4, PH // 4), (-(-PW // 8), -(-PH // 8)), (PW // 16, PH // 16)]:
        add_pyr_render(f"{label}_whole_{ow}x{oh}", file, arr, (0, 0, PW, PH), (ow, oh), method, False)

# A PNG of a power-of-two shrink from the pyramid against matplotlib's colors of the block mean.
pm = pf32[:PH // 4 * 4, :PW // 4 * 4].astype(np.float64).reshape(PH // 4, 4, PW // 4, 4)
pm = np.nanmean(pm, axis=(1, 3)).astype(np.float32).astype(np.float64)
np.save(path("exp_pyr_png.npy"), colors("viridis", Normalize(-4, 14)(pm)))
pyr["png"] = {"file": "pyr_f32.npy", "args": ["--region", f"0,0,{PW // 4 * 4},{PH // 4 * 4}", "--size",
                                              f"{PW // 4}x{PH // 4}", "--limits", "-4,14"],
              "expected": "exp_pyr_png.npy", "level": 2}


# stats: exact counts and extremes, mean/std, percentiles of the finite values of one slice
def add_stats(name, file, arr, slice_):
    v = (arr[slice_] if arr.ndim == 3 else arr).astype(np.float64).ravel()
    fin = v[np.isfinite(v)]
    pyr["stats"].append({
        "name": name, "file": file, "slice": slice_, "count": int(fin.size), "nan": int(np.isnan(v).sum()),
        "pos_inf": int(np.isposinf(v).sum()), "neg_inf": int(np.isneginf(v).sum()),
        "min": float(fin.min()), "max": float(fin.max()), "sum": float(np.sum(fin)), "abs_sum": float(np.abs(fin).sum()),
        "mean": float(np.mean(fin)), "std": float(np.std(fin)),
        "percentiles": {k: float(np.percentile(fin, float(k))) for k in
                        ["0.1", "0.5", "1", "5", "25", "50", "75", "95", "99", "99.5", "99.9"]}})


sf32 = (rng.standard_normal((300, 530)) * 2 + 7).astype(np.float32)
sf32[rng.uniform(size=sf32.shape) < 0.02] = np.nan
sf32.ravel()[rng.choice(sf32.size, 25, replace=False)] = np.inf
sf32.ravel()[rng.choice(sf32.size, 13, replace=False)] = -np.inf
np.save(path("stats_f32.npy"), sf32)
add_stats("f32_nan_inf", "stats_f32.npy", sf32, 0)
add_stats("u16", "pyr_u16.npy", pu16, 0)
sstack = rng.uniform(-3, 5, (3, 300, 530))
sstack[1] = sstack[1] * 0.5 + 1  # a different distribution inside slice 0's range
sstack[2, :10] = np.nan
np.save(path("stats_stack.npy"), sstack)
for s in range(3):
    add_stats(f"stack_slice_{s}", "stats_stack.npy", sstack, s)
# later slices of a stack are read from their own part of the pyramid file
for s in [1, 2]:
    add_pyr_render(f"stack_slice_{s}_x4", "stats_stack.npy", sstack[s], (0, 0, 528, 300), (132, 75), "mean", True,
                   ["--slice", str(s)])
    add_pyr_render(f"stack_slice_{s}_whole", "stats_stack.npy", sstack[s], (0, 0, 530, 300), (176, 100), "mean", False,
                   ["--slice", str(s)])


# preview (no pyramid): one data row per output row, block means along x
def preview(a, size):
    ow, oh = size
    h, w = a.shape
    rows = [(p + q) // 2 for p, q in axis_blocks(0, h, oh)]
    xb = axis_blocks(0, w, ow)
    return reduce_blocks(a.astype(np.float64), xb, [(r, r + 1) for r in rows], "mean").astype(np.float32)


for ow, oh in [(PW // 4, PH // 4), (PW // 7, PH // 5), (100, 30)]:
    np.save(path(f"exp_preview_{ow}x{oh}.npy"), preview(pf32, (ow, oh)))
    blocks = reduce_blocks(pf32.astype(np.float64), axis_blocks(0, PW, ow), axis_blocks(0, PH, oh), "mean")
    np.save(path(f"exp_exact_{ow}x{oh}.npy"), blocks.astype(np.float32))
    pyr["preview"].append({"file": "pyr_f32.npy", "size": f"{ow}x{oh}", "expected": f"exp_preview_{ow}x{oh}.npy",
                           "exact": f"exp_exact_{ow}x{oh}.npy"})

# float64 with a large offset: levels are stored as a per-tile offset plus float32 residuals, so a PNG
# with limits a few units wide still shows the noise (float32 values of 1e9 would be 64 apart); the same
# values as float32 give the size of a file of float32 levels.
F64H, F64W = 301, 1100
pf64 = 1e9 + rng.standard_normal((F64H, F64W))
pf64[rng.uniform(size=pf64.shape) < 0.05] = np.nan
pf64[64:96, 128:160] = np.nan  # whole blocks of NaN -> transparent
np.save(path("pyr_f64.npy"), pf64)
np.save(path("pyr_f64_as_f32.npy"), pf64.astype(np.float32))
pyr["png64"] = []
for f, lvl in [(2, 1), (4, 2)]:
    H4, W4 = F64H // f * f, F64W // f * f
    m = np.nanmean(pf64[:H4, :W4].reshape(H4 // f, f, W4 // f, f), axis=(1, 3))
    np.save(path(f"exp_pyr_f64_x{f}.npy"), colors("viridis", Normalize(1e9 - 2, 1e9 + 2)(m)))
    pyr["png64"].append({"file": "pyr_f64.npy", "level": lvl, "expected": f"exp_pyr_f64_x{f}.npy",
                         "args": ["--region", f"0,0,{W4},{H4}", "--size", f"{W4 // f}x{H4 // f}",
                                  "--limits", f"{1e9 - 2!r},{1e9 + 2!r}"]})

with open(path("manifest.json"), "w") as f:
    json.dump(manifest, f)
print(f"oracle: {len(manifest['probe'])} probe files, {len(manifest['render'])} renders, "
      f"{len(manifest['export'])} exports, {len(manifest['errors'])} error cases (numpy {np.__version__}, "
      f"matplotlib {matplotlib.__version__})")
