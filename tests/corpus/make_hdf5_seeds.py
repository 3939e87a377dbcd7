"""Writes the fuzz seeds for the hdf5 and netcdf targets (fuzz/corpus/hdf5/, fuzz/corpus/netcdf/): small
files written by h5py and netCDF4-python covering the layouts and conventions the readers handle.

usage: python3 tests/corpus/make_hdf5_seeds.py   (from the repository root; the outputs are committed)
"""
import os

import h5py
import netCDF4
import numpy as np

rng = np.random.default_rng(3)
h = "fuzz/corpus/hdf5"
n = "fuzz/corpus/netcdf"
os.makedirs(h, exist_ok=True)
os.makedirs(n, exist_ok=True)
with h5py.File(f"{h}/contiguous.h5", "w") as f:
    f["a"] = rng.integers(0, 255, size=(8, 8), dtype=np.uint8)
with h5py.File(f"{h}/chunked_gzip.h5", "w") as f:
    f.create_dataset("g/b", data=rng.standard_normal((2, 16, 12)).astype(np.float32), chunks=(1, 8, 8),
                     compression="gzip", shuffle=True)
with h5py.File(f"{h}/latest_btree2.h5", "w", libver="latest") as f:
    d = f.create_dataset("c", shape=(20, 20), maxshape=(None, None), dtype=">i2", chunks=(5, 5), fletcher32=True)
    d[:10, :10] = 7
with netCDF4.Dataset(f"{h}/cf.nc", "w") as d:
    d.createDimension("lat", 6)
    d.createDimension("lon", 5)
    d.createVariable("lat", "f4", ("lat",))[:] = np.arange(6)
    v = d.createVariable("t", "i2", ("lat", "lon"), fill_value=np.int16(-1), zlib=True)
    v.scale_factor = np.float32(0.5)
    v.set_auto_maskandscale(False)
    v[:] = np.arange(30).reshape(6, 5)
for fmt, tag in [("NETCDF3_CLASSIC", "cdf1"), ("NETCDF3_64BIT_OFFSET", "cdf2"), ("NETCDF3_64BIT_DATA", "cdf5")]:
    with netCDF4.Dataset(f"{n}/{tag}.nc", "w", format=fmt) as d:
        d.createDimension("t", None)
        d.createDimension("y", 4)
        d.createDimension("x", 3)
        d.createVariable("y", "f8", ("y",))[:] = np.arange(4)
        d.createVariable("r", "f4", ("t", "y", "x"), fill_value=np.float32(-9))[:] = np.ones((2, 4, 3))
        d.createVariable("s", "i2", ("y", "x"))[:] = np.arange(12).reshape(4, 3)
