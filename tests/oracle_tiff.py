"""Writes the TIFF test matrix with tifffile (and imagecodecs) into DIR, with the values tifffile reads
back in vastview's layout (outer axes, then a sample axis `c` for non-colour samples, then y, x, then
interleaved uint8 RGB(A)), and DIR/manifest.json listing every case.

Usage: python3 oracle_tiff.py DIR
"""

import json
import os
import sys

import numpy as np
import tifffile

OUT = sys.argv[1]
os.makedirs(OUT, exist_ok=True)
rng = np.random.default_rng(10)
cases = []
H, W = 29, 37  # odd sizes: edge tiles and a short last strip


def data(dtype, shape):
    dt = np.dtype(dtype)
    if dt.kind == "f":
        a = rng.standard_normal(shape) * 100
        a = a.astype(dt)
        a.flat[0] = np.inf
        a.flat[3] = -0.0
        if dt.itemsize >= 4:
            a.flat[5] = np.nan
        return a
    info = np.iinfo(dt)
    return rng.integers(info.min, int(info.max) + 1, shape, dtype=dt)


def ours(arr, axes, colour):
    """tifffile's array (axes as tifffile names them) in vastview's order."""
    if "S" in axes:
        s = axes.index("S")
        if colour:
            arr = np.moveaxis(arr, s, -1)
        else:
            arr = np.moveaxis(arr, s, len(axes) - 3)
    return np.ascontiguousarray(arr)


def probe_str(v):
    return str(v)


def add(name, expected, colour=False, member=None, tol=0, flavour=None, axes=None, levels=None, extra=None):
    exp = f"{name}.expected.npy"
    np.save(os.path.join(OUT, exp), expected)
    spatial = 3 if colour else 2
    h, w = expected.shape[-spatial], expected.shape[-spatial + 1]
    slices = int(np.prod(expected.shape[:-spatial])) if expected.ndim > spatial else 1
    flat = expected.reshape((slices, h, w) + ((expected.shape[-1],) if colour else ()))
    probes = []
    for (s, x, y) in [(0, 0, 0), (slices - 1, w - 1, h - 1), (slices // 2, w // 2, h // 3), (0, w - 1, 0)]:
        if not colour and tol == 0:
            probes.append([s, x, y, probe_str(flat[s, y, x])])
    region = [w // 4, h // 5, w - 2, h - 1]
    c = {
        "name": name,
        "file": name + (".ome.tif" if flavour == "OME-TIFF" else ".tif"),
        "expected": exp,
        "colour": colour,
        "slices": slices,
        "height": int(h),
        "width": int(w),
        "dtype": str(expected.dtype),
        "tol": tol,
        "probes": probes,
        "region": region,
    }
    if member is not None:
        c["member"] = member
    if flavour:
        c["flavour"] = flavour
    if axes:
        c["axes"] = axes
    if levels:
        names = []
        for k, lv in enumerate(levels):
            n = f"{name}.level{k + 1}.npy"
            np.save(os.path.join(OUT, n), lv)
            names.append(n)
        c["levels"] = names
    if extra:
        c.update(extra)
    cases.append(c)
    return c


def path(name, ome=False):
    return os.path.join(OUT, name + (".ome.tif" if ome else ".tif"))


def read_series(p, series=0, level=0):
    with tifffile.TiffFile(p) as t:
        s = t.series[series]
        if level:
            s = s.levels[level]
        return s.asarray(), s.axes


# 1. Single-sample matrix: dtype x compression x predictor x tiled/striped, byte order and BigTIFF varied.
DTYPES = ["uint8", "uint16", "uint32", "int8", "int16", "int32", "float16", "float32", "float64"]
COMPS = [None, "zlib", "lzw", "zstd", "packbits"]
k = 0
for dt in DTYPES:
    isfloat = np.dtype(dt).kind == "f"
    for comp in COMPS:
        preds = [None] if comp in (None, "packbits") else [None, "floatingpoint" if isfloat else "horizontal"]
        for pred in preds:
            for tiled in (False, True):
                k += 1
                big = k % 3 == 0
                bo = ">" if k % 2 else "<"
                name = f"m_{dt}_{comp or 'none'}_{pred or 'nopred'}_{'tile' if tiled else 'strip'}"
                a = data(dt, (H, W))
                kw = dict(compression=comp, predictor=pred, bigtiff=big, byteorder=bo, photometric="minisblack")
                if tiled:
                    kw["tile"] = (16, 16)
                else:
                    kw["rowsperstrip"] = 5
                tifffile.imwrite(path(name), a, **kw)
                got, axes = read_series(path(name))
                assert np.array_equal(got, a, equal_nan=True) or isfloat, name
                add(name, ours(got, axes, False), flavour="BigTIFF" if big else None)

# 2. Multi-sample: uint8 RGB(A) (colour) and uint16 / float32 3-sample (a `c` axis), contiguous and planar.
for dt, spp in [("uint8", 3), ("uint8", 4), ("uint16", 3), ("float32", 2), ("int16", 5)]:
    for planar in ("contig", "separate"):
        for comp, pred in [(None, None), ("zlib", "horizontal" if dt != "float32" else "floatingpoint"), ("lzw", None)]:
            for tiled in (False, True):
                name = f"s_{dt}x{spp}_{planar}_{comp or 'none'}_{'tile' if tiled else 'strip'}"
                shape = (spp, H, W) if planar == "separate" else (H, W, spp)
                a = data(dt, shape)
                photo = "rgb" if spp in (3, 4) and dt == "uint8" else "minisblack"
                kw = dict(compression=comp, predictor=pred, planarconfig=planar, photometric=photo)
                if photo == "rgb" and spp == 4:
                    kw["extrasamples"] = ["unassalpha"]
                if tiled:
                    kw["tile"] = (16, 16)
                else:
                    kw["rowsperstrip"] = 7
                tifffile.imwrite(path(name), a, **kw)
                got, axes = read_series(path(name))
                colour = dt == "uint8" and spp in (3, 4)
                add(name, ours(got, axes, colour), colour=colour)

# 3. Multi-page: uncompressed (mapped in place, one regular run), uncompressed with pages apart, and
# compressed; a 4-D shaped stack; BigTIFF big-endian.
a = data("uint16", (5, H, W))
tifffile.imwrite(path("pages_none"), a, photometric="minisblack")
add("pages_none", read_series(path("pages_none"))[0], extra={"mapped": True})
with tifffile.TiffWriter(path("pages_apart")) as t:
    for p in a:
        t.write(p, photometric="minisblack", description="x" * 50, metadata=None)
add("pages_apart", a, extra={"mapped": True})
tifffile.imwrite(path("pages_zstd"), a, photometric="minisblack", compression="zstd", predictor=True, tile=(16, 16))
add("pages_zstd", read_series(path("pages_zstd"))[0])
b = data("float32", (2, 3, H, W))
tifffile.imwrite(path("pages_4d_big"), b, photometric="minisblack", bigtiff=True, byteorder=">")
add("pages_4d_big", read_series(path("pages_4d_big"))[0], flavour="BigTIFF", extra={"mapped": True})
c = data("uint8", (3, H, W, 3))
tifffile.imwrite(path("pages_rgb"), c, photometric="rgb")
add("pages_rgb", c, colour=True, extra={"mapped": True})

# 4. ImageJ hyperstack TZCYX (t=3, z=2, c=2) and an ImageJ file of uint8.
hs = data("uint16", (3, 2, 2, H, W))
tifffile.imwrite(path("imagej"), hs, imagej=True, metadata={"axes": "TZCYX", "unit": "um", "spacing": 2.5}, resolution=(4.0, 4.0))
got, axes = read_series(path("imagej"))
assert axes == "TZCYX", axes
add("imagej", got, flavour="ImageJ", axes=["t", "z", "c", "y", "x"])

# 5. OME-TIFF: two series, the first (c=2, y, x) with a SubIFD pyramid of 2 levels, tiled Deflate;
# channel names; physical sizes.
img = data("uint16", (2, 64, 80))
with tifffile.TiffWriter(path("ome", True), ome=True) as t:
    md = {"axes": "CYX", "Channel": {"Name": ["DAPI", "GFP"]}, "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.25}
    t.write(img, subifds=2, tile=(16, 16), compression="zlib", metadata=md, photometric="minisblack")
    t.write(img[:, ::2, ::2], subfiletype=1, tile=(16, 16), compression="zlib", photometric="minisblack")
    t.write(img[:, ::4, ::4], subfiletype=1, tile=(16, 16), compression="zlib", photometric="minisblack")
    t.write(data("float32", (3, 20, 24)), metadata={"axes": "ZYX"}, photometric="minisblack")
with tifffile.TiffFile(path("ome", True)) as t:
    assert t.is_ome and len(t.series) == 2 and len(t.series[0].levels) == 3, (len(t.series), t.series[0].levels)
    lv = [t.series[0].levels[i].asarray() for i in (1, 2)]
    s0 = t.series[0].asarray()
    s1 = t.series[1].asarray()
add("ome", s0, flavour="OME-TIFF", axes=["c", "y", "x"], levels=lv, extra={"channel_names": ["DAPI", "GFP"], "scale_x": 0.5})
c1 = add("ome_s1", s1, flavour="OME-TIFF", member="1", axes=["z", "y", "x"])
c1["file"] = "ome.ome.tif"

# OME-TIFF 4-D (t=2, c=3, y, x) uint16 striped LZW, and OME RGB (uint8 samples interleaved).
t4 = data("uint16", (2, 3, 24, 20))
tifffile.imwrite(path("ome_tc", True), t4, ome=True, metadata={"axes": "TCYX"}, compression="lzw", photometric="minisblack")
got, axes = read_series(path("ome_tc", True))
assert axes == "TCYX", axes
add("ome_tc", got, flavour="OME-TIFF", axes=["t", "c", "y", "x"])
orgb = data("uint8", (24, 20, 3))
tifffile.imwrite(path("ome_rgb", True), orgb, ome=True, photometric="rgb", tile=(16, 16), compression="zlib")
got, axes = read_series(path("ome_rgb", True))
add("ome_rgb", ours(got, axes, True), colour=True, flavour="OME-TIFF", axes=["y", "x", "c"])
# uint8 with 3 samples that are not RGB (MinIsBlack + extra samples): a `c` axis, not colour.
g3 = data("uint8", (H, W, 3))
tifffile.imwrite(path("u8x3_minisblack"), g3, photometric="minisblack", planarconfig="contig")
got, axes = read_series(path("u8x3_minisblack"))
add("u8x3_minisblack", ours(got, axes, False), axes=["c", "y", "x"])

# Two plain series of different sizes (tifffile's shaped series): FILE[1] opens the second.
s_a, s_b = data("uint16", (2, 10, 12)), data("float64", (14, 9))
with tifffile.TiffWriter(path("two_series")) as t:
    t.write(s_a, photometric="minisblack", compression="zlib")
    t.write(s_b, photometric="minisblack")
with tifffile.TiffFile(path("two_series")) as t:
    assert len(t.series) == 2
add("two_series", s_a)
c2 = add("two_series_1", s_b, member="1")
c2["file"] = "two_series.tif"

# 6. COG-like: one tiled image with reduced-resolution overview IFDs (NewSubfileType 1) in the main chain.
g = data("int16", (96, 128))
with tifffile.TiffWriter(path("cog")) as t:
    t.write(g, tile=(32, 32), compression="zlib", predictor=True, photometric="minisblack")
    t.write(g[::2, ::2], tile=(32, 32), compression="zlib", subfiletype=1, photometric="minisblack")
    t.write(g[::4, ::4], tile=(16, 16), compression="zlib", subfiletype=1, photometric="minisblack")
with tifffile.TiffFile(path("cog")) as t:
    lv = [p.asarray() for p in t.pages[1:]]
    assert all(p.subfiletype == 1 for p in t.pages[1:])
add("cog", g, flavour="COG", levels=lv)

# 7. Bilevel (1-bit) MinIsBlack and MinIsWhite, packbits; one huge compressed strip; JPEG.
bl = rng.integers(0, 2, (H, W)).astype(bool)
tifffile.imwrite(path("bilevel"), bl, compression="packbits")
add("bilevel", read_series(path("bilevel"))[0].astype(np.uint8))
tifffile.imwrite(path("bilevel_white"), bl, photometric="miniswhite", rowsperstrip=4)
add("bilevel_white", read_series(path("bilevel_white"))[0].astype(np.uint8))
one = data("uint16", (300, 257))
tifffile.imwrite(path("one_strip"), one, compression="zlib", rowsperstrip=300, photometric="minisblack")
add("one_strip", one, extra={"one_strip": True})
# One strip decoding to more than 8 MiB: streamed in row chunks (Deflate + horizontal predictor, LZW +
# floating-point predictor on planar samples).
big = (np.add.outer(np.arange(2100, dtype=np.uint32) * 3, np.arange(2048, dtype=np.uint32)) % 65536).astype(np.uint16)
tifffile.imwrite(path("one_strip_stream"), big, compression="zlib", predictor=True, rowsperstrip=2100, photometric="minisblack")
add("one_strip_stream", big, extra={"one_strip": True, "stream": True})
bf = np.sin(np.add.outer(np.arange(1600), np.arange(1500)) / 50.0).astype(np.float32)
bf = np.stack([bf, -bf])
tifffile.imwrite(path("one_strip_stream_lzw"), bf, compression="lzw", predictor=True, rowsperstrip=1600, planarconfig="separate", photometric="minisblack")
got, axes = read_series(path("one_strip_stream_lzw"))
add("one_strip_stream_lzw", ours(got, axes, False), extra={"one_strip": True, "stream": True})
rgb = (np.add.outer(np.arange(64), np.arange(48))[:, :, None] * [1, 2, 3] % 256).astype(np.uint8)
for tiled in (False, True):
    name = f"jpeg_rgb_{'tile' if tiled else 'strip'}"
    kw = dict(tile=(16, 16)) if tiled else dict(rowsperstrip=16)
    tifffile.imwrite(path(name), rgb, compression="jpeg", photometric="rgb", **kw)
    add(name, read_series(path(name))[0], colour=True, tol=3)
# Photometric RGB JPEG (no YCbCr transform in the stream).
tifffile.imwrite(path("jpeg_rgb_notransform"), rgb, compression="jpeg", photometric="rgb", tile=(16, 16), compressionargs={"outcolorspace": "RGB"})
with tifffile.TiffFile(path("jpeg_rgb_notransform")) as t:
    assert t.pages[0].photometric == 2
add("jpeg_rgb_notransform", read_series(path("jpeg_rgb_notransform"))[0], colour=True, tol=3)
gray = (np.add.outer(np.arange(40), np.arange(56)) * 3 % 256).astype(np.uint8)
tifffile.imwrite(path("jpeg_gray"), gray, compression="jpeg", photometric="minisblack", tile=(16, 16))
add("jpeg_gray", read_series(path("jpeg_gray"))[0], tol=3)

with open(os.path.join(OUT, "manifest.json"), "w") as f:
    json.dump({"cases": cases}, f, indent=1)
