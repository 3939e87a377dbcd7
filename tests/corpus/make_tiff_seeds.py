"""Writes the TIFF fuzz seeds (fuzz/corpus/tiff/): small tifffile files of each layout the reader knows.

Usage: python3 tests/corpus/make_tiff_seeds.py fuzz/corpus/tiff
"""

import os
import sys

import numpy as np
import tifffile

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
r = np.random.default_rng(1)


def p(n):
    return os.path.join(out, n)


a8 = r.integers(0, 255, (12, 10), dtype=np.uint8)
a16 = r.integers(0, 65535, (12, 10), dtype=np.uint16)
f32 = r.standard_normal((12, 10)).astype(np.float32)
tifffile.imwrite(p("strip_none.tif"), a16, rowsperstrip=5)
tifffile.imwrite(p("strip_none_be_big.tif"), a16, rowsperstrip=5, bigtiff=True, byteorder=">")
tifffile.imwrite(p("tile_lzw_pred.tif"), a16, tile=(16, 16), compression="lzw", predictor=True)
tifffile.imwrite(p("tile_zlib_fpred.tif"), f32, tile=(16, 16), compression="zlib", predictor=True)
tifffile.imwrite(p("strip_zstd.tif"), a8, rowsperstrip=4, compression="zstd")
tifffile.imwrite(p("strip_packbits.tif"), a8, compression="packbits")
tifffile.imwrite(p("bilevel.tif"), a8 > 128)
tifffile.imwrite(p("rgb_planar.tif"), r.integers(0, 255, (3, 12, 10), dtype=np.uint8), photometric="rgb", planarconfig="separate")
tifffile.imwrite(p("jpeg.tif"), r.integers(0, 255, (16, 16, 3), dtype=np.uint8), compression="jpeg", photometric="rgb")
tifffile.imwrite(p("pages.tif"), r.integers(0, 255, (3, 6, 5), dtype=np.uint8))
tifffile.imwrite(p("imagej.tif"), r.integers(0, 255, (2, 2, 6, 5), dtype=np.uint8), imagej=True, metadata={"axes": "ZCYX"})
with tifffile.TiffWriter(p("ome_subifds.ome.tif"), ome=True) as t:
    im = r.integers(0, 65535, (2, 16, 16), dtype=np.uint16)
    t.write(im, subifds=1, metadata={"axes": "CYX"}, tile=(16, 16), compression="zlib")
    t.write(im[:, ::2, ::2], subfiletype=1, tile=(16, 16), compression="zlib")
with tifffile.TiffWriter(p("cog.tif")) as t:
    t.write(a16, tile=(16, 16), compression="zlib")
    t.write(a16[::2, ::2], tile=(16, 16), compression="zlib", subfiletype=1)
