"""FITS oracle: astropy writes the test files and reads them back; the expectations come from astropy.

Usage: oracle_fits.py DIR. Writes DIR/*.fits, for every case DIR/<case>.stored.npy (the selected HDU's
stored values: do_not_scale_image_data=True) and DIR/<case>.physical.npy (astropy's scaled values), DIR/<case>.exp.npy (matplotlib's viridis RGBA of
slice 0's scaled values between the limits in the case's render_args), and
DIR/manifest.json with, per case: file, member, the HDU astropy reads, shape, stored and physical dtype,
axes and the header cards.
"""

import json
import os
import sys
import warnings

import matplotlib
import numpy as np
from astropy.io import fits
from matplotlib.colors import Normalize

warnings.simplefilter("ignore")
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(10)
cases = []


def ints(dtype, shape):
    info = np.iinfo(dtype)
    a = rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)
    a.flat[0], a.flat[1] = info.min, info.max
    return a


def floats(dtype, shape):
    a = (rng.standard_normal(shape) * 1000).astype(dtype)
    a.flat[0], a.flat[1] = np.nan, -np.inf
    return a


def card_value(v):
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v) if np.isfinite(v) else None
    if isinstance(v, str):
        return v
    return None  # complex, undefined


def add(name, hdul_or_hdu, member=None, hdu_index=None, extra=None):
    path = os.path.join(out, name + ".fits")
    hdul = hdul_or_hdu if isinstance(hdul_or_hdu, fits.HDUList) else fits.HDUList([hdul_or_hdu])
    hdul.writeto(path, overwrite=True)
    add_existing(name, member, hdu_index, extra)


def add_existing(name, member, hdu_index, extra=None, file=None):
    path = os.path.join(out, (file or name) + ".fits")
    with fits.open(path, do_not_scale_image_data=True) as raw, fits.open(path) as sc:
        i = hdu_index
        if i is None:
            i = next(k for k, h in enumerate(sc) if h.is_image and h.data is not None)
        stored = raw[i].data
        phys = sc[i].data
        np.save(os.path.join(out, name + ".stored.npy"), stored)
        np.save(os.path.join(out, name + ".physical.npy"), phys)
        h = raw[i].header
        n = h["NAXIS"]
        axes = []
        for k in range(n, 0, -1):
            axes.append(
                {
                    "ctype": h.get(f"CTYPE{k}"),
                    "cunit": h.get(f"CUNIT{k}"),
                    "size": h[f"NAXIS{k}"],
                }
            )
        cards = [
            {"key": c.keyword, "value": card_value(c.value), "comment": c.comment}
            for c in h.cards
            if c.keyword not in ("", "END")
        ]
        hdus = [
            {"index": k, "name": x.name, "ver": x.ver, "type": type(x).__name__}
            for k, x in enumerate(raw)
        ]
        case = {
            "name": name,
            "file": (file or name) + ".fits",
            "member": member,
            "hdu": i,
            "shape": list(stored.shape),
            "stored_dtype": stored.dtype.name,
            "physical_dtype": phys.dtype.name,
            "axes": axes,
            "cards": cards,
            "hdus": hdus,
            "bzero": h.get("BZERO"),
            "bscale": h.get("BSCALE"),
            "blank": h.get("BLANK"),
        }
        # Render expectation: slice 0 through viridis, limits in physical units (matplotlib's colours of
        # astropy's scaled values; NaN is matplotlib's transparent "bad" colour, as --nan-color's default).
        plane = np.asarray(phys).reshape((-1,) + phys.shape[-2:])[0].astype(np.float64)
        fin = plane[np.isfinite(plane)]
        if phys.dtype.kind == "f":
            lo, hi = (float(v) for v in np.percentile(fin, [5, 95]))
        else:
            lo, hi = float(fin.min()), float(fin.max())
        cmap = matplotlib.colormaps["viridis"]
        exp = cmap(Normalize(lo, hi)(plane), bytes=True)
        np.save(os.path.join(out, name + ".exp.npy"), np.ascontiguousarray(exp, dtype=np.uint8))
        p0 = np.asarray(phys).reshape((-1,) + phys.shape[-2:])[0]
        h_, w_ = p0.shape
        pix = sorted({(0, 0), (1, 0), (w_ - 1, h_ - 1), (w_ // 2, h_ // 2), (2 % w_, 3 % h_)})
        case["probes"] = [{"x": x, "y": y, "str": str(p0[y, x])} for x, y in pix]
        case["stats"] = {
            "count": int(fin.size),
            "nan": int(np.isnan(plane).sum()),
            "pos_inf": int(np.isposinf(plane).sum()),
            "neg_inf": int(np.isneginf(plane).sum()),
            "min": float(fin.min()),
            "max": float(fin.max()),
            "mean": float(fin.mean()),
        }
        case["render_args"] = ["--colormap", "viridis", "--limits", f"{lo!r},{hi!r}"]
        case["expected"] = name + ".exp.npy"
        case.update(extra or {})
        cases.append(case)


shape = (5, 7)
# Every BITPIX, no scaling (astropy writes BZERO/BSCALE only for the unsigned conventions).
for dt in ["uint8", "int16", "int32", "int64"]:
    add(f"bitpix_{dt}", fits.PrimaryHDU(ints(np.dtype(dt), shape)))
for dt in ["float32", "float64"]:
    add(f"bitpix_{dt}", fits.PrimaryHDU(floats(np.dtype(dt), shape)))

# The unsigned and int8 conventions: astropy writes them from unsigned / int8 arrays.
for dt in ["uint16", "uint32", "uint64", "int8"]:
    add(f"conv_{dt}", fits.PrimaryHDU(ints(np.dtype(dt), shape)))


def scaled(name, stored, **keys):
    """A primary HDU holding `stored` as is, with scaling keywords set without rescaling the data."""
    path = os.path.join(out, name + ".fits")
    hdu = fits.PrimaryHDU(stored)
    hdu.writeto(path, overwrite=True)
    with fits.open(path, mode="update", do_not_scale_image_data=True) as f:
        for k, v in keys.items():
            f[0].header[k] = v
    add_existing(name, None, 0)


scaled("scaled_i16", ints(np.int16, shape), BSCALE=0.1, BZERO=3.5, BLANK=-32768)
scaled("scaled_u8_blank", ints(np.uint8, shape), BLANK=255)
scaled("scaled_i32", ints(np.int32, shape), BSCALE=2.5, BZERO=-100000.0, BLANK=-2147483648)
scaled("scaled_i64", ints(np.int64, shape), BZERO=1000)
scaled("scaled_i16_blank0", ints(np.int16, shape) // 4 * 4, BLANK=0)
scaled("scaled_i16_u16zero_bscale2", ints(np.int16, shape), BZERO=32768, BSCALE=2)
scaled("scaled_f32", floats(np.float32, shape), BSCALE=2.0, BZERO=0.5, BLANK=7)
scaled("scaled_f64", floats(np.float64, shape), BSCALE=1.0e-3, BZERO=-2.25)
scaled("scaled_u16_blank", ints(np.int16, shape), BZERO=32768, BLANK=-32768)

# Primary with data + 2 IMAGE extensions + a BINTABLE.
prim = fits.PrimaryHDU(floats(np.float32, (4, 6)))
sci = fits.ImageHDU(ints(np.int16, (6, 8)), name="SCI", ver=1)
err = fits.ImageHDU(floats(np.float64, (3, 5)), name="ERR")
tab = fits.BinTableHDU.from_columns(
    [fits.Column(name="x", format="J", array=np.arange(10)), fits.Column(name="y", format="E", array=np.ones(10))],
    name="EVENTS",
)
fits.HDUList([prim, sci, err, tab]).writeto(os.path.join(out, "mef.fits"), overwrite=True)
add_existing("mef_default", None, 0, file="mef")
add_existing("mef_1", "1", 1, file="mef")
add_existing("mef_sci", "SCI", 1, file="mef")
add_existing("mef_err", "err", 2, file="mef")

# No primary data: the default is the first IMAGE extension; two SCI extensions told apart by EXTVER;
# a table in between.
empty = fits.PrimaryHDU()
tab2 = fits.BinTableHDU.from_columns([fits.Column(name="a", format="D", array=np.arange(3.0))], name="T")
s1 = fits.ImageHDU(ints(np.uint16, (4, 5)), name="SCI", ver=1)
s2 = fits.ImageHDU(floats(np.float32, (5, 4)), name="SCI", ver=2)
fits.HDUList([empty, tab2, s1, s2]).writeto(os.path.join(out, "nodata.fits"), overwrite=True)
add_existing("nodata_default", None, 2, file="nodata")
add_existing("nodata_sci2", "SCI,2", 3, file="nodata")

# Cubes with WCS axes, a HIERARCH card and a long string (CONTINUE).
cube = fits.PrimaryHDU(floats(np.float32, (4, 5, 6)))
h = cube.header
h["CTYPE1"], h["CUNIT1"], h["CDELT1"] = "RA---TAN", "deg", -0.001
h["CTYPE2"], h["CUNIT2"], h["CDELT2"] = "DEC--TAN", "deg", 0.001
h["CTYPE3"], h["CUNIT3"], h["CDELT3"] = "FREQ", "Hz", 1.5e6
h["HIERARCH ESO DET CHIP NAME"] = "chip one"
h["LONGSTR"] = "a long string value " * 6
h["OBSERVER"] = ("O'Brien", "with a quote")
add("cube3", cube, extra={"scales": [1.5e6, 0.001, -0.001], "units": ["Hz", "deg", "deg"]})

hyper = fits.PrimaryHDU(ints(np.int16, (2, 3, 4, 5)))
h = hyper.header
h["CTYPE3"], h["CTYPE4"] = "FREQ", "STOKES"
h["CD1_1"] = 0.25
h["PC2_2"], h["CDELT2"] = 2.0, 0.5
add("cube4", hyper, extra={"scales": [None, None, 1.0, 0.25]})

with open(os.path.join(out, "manifest.json"), "w") as f:
    json.dump({"cases": cases}, f, indent=1)
