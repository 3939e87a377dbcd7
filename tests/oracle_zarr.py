"""Writes Zarr stores with zarr-python (the format's reference library) and numpy's expected values.

usage: oracle_zarr.py OUTDIR  -> OUTDIR/manifest.json, OUTDIR/<case>.zarr, OUTDIR/<case>.npy (C order)
"""
import json
import os
import sys

import numcodecs
import numpy as np
import zarr
from zarr.codecs import BloscCodec, BytesCodec, GzipCodec, ShardingCodec, TransposeCodec, ZstdCodec

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(11)
cases = []


def case(name, data, expect=None, **kw):
    path = os.path.join(out, name + ".zarr")
    a = zarr.create_array(store=path, shape=data.shape, dtype=data.dtype, **kw)
    a[...] = data
    back = a[...]
    np.save(os.path.join(out, name + ".npy"), np.ascontiguousarray(back if expect is None else expect))
    cases.append({"name": name, "path": path, "shape": list(data.shape), "dtype": str(data.dtype)})
    return a


img = rng.integers(0, 65535, size=(300, 517), dtype=np.uint16)
case("v3_zstd_u16", img, chunks=(128, 100), compressors=ZstdCodec(level=3))
case("v3_blosc_lz4_bitshuffle_f32", rng.standard_normal((3, 200, 190)).astype(np.float32), chunks=(1, 64, 64),
     compressors=BloscCodec(cname="lz4", shuffle="bitshuffle"))
case("v3_gzip_bigendian_i32", rng.integers(-2**31, 2**31 - 1, size=(130, 90), dtype=np.int32), chunks=(50, 50),
     serializer=BytesCodec(endian="big"), compressors=GzipCodec(level=5))
case("v3_sharded_u8", rng.integers(0, 255, size=(2, 256, 300), dtype=np.uint8), chunks=(1, 32, 32),
     shards=(1, 128, 128), compressors=ZstdCodec())
case("v3_transpose_f64", rng.standard_normal((70, 80)), chunks=(32, 32), filters=[TransposeCodec(order=(1, 0))])
case("v2_blosc_zstd_shuffle_i16", rng.integers(-30000, 30000, size=(4, 2, 100, 120), dtype=np.int16),
     chunks=(1, 1, 40, 40), zarr_format=2,
     compressors=numcodecs.Blosc(cname="zstd", shuffle=numcodecs.Blosc.SHUFFLE))
# Missing chunks read as the fill value: write only one chunk of a 4x4 grid.
sparse = zarr.create_array(store=os.path.join(out, "v3_fill.zarr"), shape=(64, 64), dtype=np.float32,
                           chunks=(16, 16), fill_value=7.5)
sparse[16:32, 32:48] = np.arange(256, dtype=np.float32).reshape(16, 16)
np.save(os.path.join(out, "v3_fill.npy"), sparse[...])
cases.append({"name": "v3_fill", "path": os.path.join(out, "v3_fill.zarr"), "shape": [64, 64], "dtype": "float32"})

# An OME-Zarr 0.4 image (c, y, x) with 3 levels, pixel sizes and omero channels, in a group with another array.
root = zarr.open_group(os.path.join(out, "ome.zarr"), mode="w", zarr_format=2)
base = rng.integers(0, 4000, size=(2, 256, 200), dtype=np.uint16)
levels = [base, base[:, ::2, ::2], base[:, ::4, ::4]]
for k, lv in enumerate(levels):
    root.create_array(str(k), shape=lv.shape, dtype=lv.dtype, chunks=(1, 64, 64))[...] = lv
    np.save(os.path.join(out, f"ome_{k}.npy"), lv)
root.attrs["multiscales"] = [{
    "version": "0.4",
    "axes": [{"name": "c", "type": "channel"}, {"name": "y", "type": "space", "unit": "micrometer"},
             {"name": "x", "type": "space", "unit": "micrometer"}],
    "datasets": [{"path": str(k), "coordinateTransformations": [{"type": "scale", "scale": [1, 0.5 * 2**k, 0.25 * 2**k]}]}
                 for k in range(3)],
}]
root.attrs["omero"] = {"channels": [{"label": "DAPI", "color": "0000FF", "window": {"start": 10, "end": 3000}},
                                    {"label": "GFP", "color": "00FF00", "window": {"start": 0, "end": 2500}}]}

# A plain group with two arrays (one nested).
g = zarr.open_group(os.path.join(out, "group.zarr"), mode="w")
g.create_array("a", shape=(10, 12), dtype=np.uint8, chunks=(5, 5))[...] = 3
g.create_group("sub").create_array("b", shape=(20, 30), dtype=np.float32, chunks=(10, 10))[...] = 1.5

json.dump({"cases": cases}, open(os.path.join(out, "manifest.json"), "w"), indent=1)
