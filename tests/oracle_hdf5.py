"""Writes HDF5 files with h5py and NetCDF files with netCDF4-python (the formats' reference libraries) and
the values those libraries read back (netCDF4's masked, unpacked values with masked entries as NaN).

usage: oracle_hdf5.py OUTDIR  -> OUTDIR/manifest.json, OUTDIR/*.h5|*.nc, OUTDIR/<case>.npy (C order)
"""
import json
import os
import sys

import h5py
import netCDF4
import numpy as np

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(5)
cases = []


def expect(name, path, member, values, **extra):
    values = np.ascontiguousarray(values)
    np.save(os.path.join(out, name + ".npy"), values)
    cases.append({"name": name, "path": path, "member": member, "shape": list(values.shape),
                  "dtype": str(values.dtype), **extra})


# --- HDF5 written by h5py: every layout and the filters people use.
h5 = os.path.join(out, "layouts.h5")
with h5py.File(h5, "w") as f:
    f["contiguous_u16"] = rng.integers(0, 65535, size=(300, 517), dtype=np.uint16)
    g = f.create_group("deep/er")
    g.create_dataset("gzip_shuffle_f32", data=rng.standard_normal((3, 200, 190)).astype(np.float32),
                     chunks=(1, 64, 50), compression="gzip", shuffle=True)
    f.create_dataset("bigendian_i32", data=rng.integers(-2**31, 2**31 - 1, size=(130, 90)).astype(">i4"))
    f.create_dataset("chunked_fletcher_f64", data=rng.standard_normal((70, 80)), chunks=(32, 32), fletcher32=True)
    # Compact layout through the low-level API.
    sp = h5py.h5s.create_simple((12, 10))
    plist = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    plist.set_layout(h5py.h5d.COMPACT)
    dset = h5py.h5d.create(f.id, b"compact_u8", h5py.h5t.NATIVE_UINT8, sp, plist)
    dset.write(h5py.h5s.ALL, h5py.h5s.ALL, rng.integers(0, 255, size=(12, 10), dtype=np.uint8))
    # Chunks never written read as the fill value.
    part = f.create_dataset("partial_i16", shape=(64, 64), dtype=np.int16, chunks=(16, 16), fillvalue=-7)
    part[16:32, 32:48] = np.arange(256, dtype=np.int16).reshape(16, 16)
    f.create_dataset("scaleoffset_i32", data=rng.integers(0, 5000, size=(50, 60), dtype=np.int32),
                     chunks=(25, 30), scaleoffset=0)
    f.create_dataset("stack_4d_u8", data=rng.integers(0, 255, size=(2, 3, 40, 30), dtype=np.uint8),
                     chunks=(1, 2, 16, 16), compression="gzip")
    f["vector"] = np.arange(10)
    f["label"] = "not an image"
    f.create_dataset("lzf_u16", data=np.zeros((20, 20), np.uint16), compression="lzf")
with h5py.File(h5, "r") as f:
    for name in ["contiguous_u16", "deep/er/gzip_shuffle_f32", "bigendian_i32", "chunked_fletcher_f64",
                 "compact_u8", "partial_i16", "scaleoffset_i32", "stack_4d_u8"]:
        a = f[name][...]
        expect(name.replace("/", "_"), h5, "/" + name, a.astype(a.dtype.newbyteorder("=")))

# --- NetCDF-4 with CF conventions: coordinates, packed shorts with a fill value, floats with a fill value.
nc4 = os.path.join(out, "cf.nc")
lat = np.linspace(-89.5, 89.5, 90, dtype=np.float32)
lon = np.linspace(-179.0, 179.0, 180, dtype=np.float32)
with netCDF4.Dataset(nc4, "w", format="NETCDF4") as d:
    d.createDimension("time", None)
    d.createDimension("lat", 90)
    d.createDimension("lon", 180)
    d.createVariable("time", "f8", ("time",), fill_value=False)[:] = [0.0, 31.0, 59.0]
    d["time"].units = "days since 2000-01-01"
    d.createVariable("lat", "f4", ("lat",))[:] = lat
    d["lat"].units = "degrees_north"
    d.createVariable("lon", "f4", ("lon",))[:] = lon
    d["lon"].units = "degrees_east"
    sst = d.createVariable("sst", "i2", ("time", "lat", "lon"), fill_value=np.int16(-32767), zlib=True,
                           chunksizes=(1, 45, 90))
    sst.scale_factor = np.float32(0.01)
    sst.add_offset = np.float32(15.0)
    sst.units = "degC"
    sst.long_name = "sea surface temperature"
    sst.set_auto_maskandscale(False)
    raw = rng.integers(-1500, 1500, size=(3, 90, 180)).astype(np.int16)
    raw[0, 0, :25] = -32767
    raw[2, 40:50, 100:110] = -32767
    sst[:] = raw
    prec = d.createVariable("precip", "f4", ("lat", "lon"), fill_value=np.float32(-999.0))
    vals = rng.random((90, 180)).astype(np.float32)
    vals[10:12, 5:9] = -999.0
    prec.set_auto_maskandscale(False)
    prec[:] = vals
with netCDF4.Dataset(nc4) as d:
    for v in ["sst", "precip"]:
        expect("cf_" + v, nc4, v, np.ma.filled(d[v][...].astype(d[v][...].dtype), np.nan),
               long_name=getattr(d[v], "long_name", None))
    expect_coords = {"lat": lat.tolist(), "lon": lon.tolist(), "time": [0.0, 31.0, 59.0]}

# --- NetCDF classic: CDF-1 with a record variable, CDF-2 (64-bit offsets), CDF-5 (unsigned types).
for fmt, tag in [("NETCDF3_CLASSIC", "cdf1"), ("NETCDF3_64BIT_OFFSET", "cdf2"), ("NETCDF3_64BIT_DATA", "cdf5")]:
    p = os.path.join(out, tag + ".nc")
    with netCDF4.Dataset(p, "w", format=fmt) as d:
        d.createDimension("time", None)
        d.createDimension("level", 2)
        d.createDimension("y", 40)
        d.createDimension("x", 50)
        d.createVariable("y", "f8", ("y",))[:] = np.arange(40) * 2.5
        d.createVariable("x", "f8", ("x",))[:] = np.arange(50) * -1.0
        t = d.createVariable("temp", "f4", ("time", "level", "y", "x"), fill_value=np.float32(-999.0))
        t.set_auto_maskandscale(False)
        x = rng.standard_normal((3, 2, 40, 50)).astype(np.float32)
        x[1, 0, 2, 3] = -999.0
        t[:] = x
        dt = "u2" if tag == "cdf5" else "i2"
        e = d.createVariable("elev", dt, ("y", "x"))
        e[:] = rng.integers(0, 30000, size=(40, 50)).astype(dt)
    with netCDF4.Dataset(p) as d:
        expect(tag + "_temp", p, "temp", np.ma.filled(d["temp"][...], np.nan))
        expect(tag + "_elev", p, "elev", np.asarray(d["elev"][...]))

# The datasets h5py sees as images (numeric, 2 or more dimensions), for the window's list of parts.
images = []
with h5py.File(h5, "r") as f:
    f.visititems(lambda n, o: images.append("/" + n) if isinstance(o, h5py.Dataset) and o.ndim >= 2
                 and o.dtype.kind in "biuf" else None)
with netCDF4.Dataset(os.path.join(out, "cdf1.nc")) as d:
    nc_images = [v for v in d.variables if d[v].ndim >= 2]
json.dump({"cases": cases, "coords": expect_coords, "h5": h5, "nc4": nc4, "h5_images": images, "nc_images": nc_images}, open(os.path.join(out, "manifest.json"), "w"))
