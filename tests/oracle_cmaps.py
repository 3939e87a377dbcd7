#!/usr/bin/env python3
"""Colormap oracle for tests/colormaps.rs: matplotlib's (and, when installed, colorcet's) 256-entry tables, and
colormap files and colour lists with their tables computed here independently in numpy (Oklab from Björn
Ottosson's published formulas; ParaView's RGB, Lab and Diverging spaces after VTK's vtkColorTransferFunction).
Nothing here uses vastview.

Usage: python3 tests/oracle_cmaps.py OUTDIR   -> writes the files and OUTDIR/cmaps.json
"""
import json
import os
import sys
import warnings

import matplotlib
import numpy as np

warnings.filterwarnings("ignore")
OUT = sys.argv[1]
os.makedirs(OUT, exist_ok=True)
rng = np.random.default_rng(20261203)
MPL = list(matplotlib.colormaps)  # before colorcet registers its cet_ maps
try:
    import colorcet
except ImportError:
    colorcet = None


def hexes(rgb):
    return np.asarray(rgb, dtype=np.uint8)[:, :3].tobytes().hex()


def mpl256(cmap):
    return cmap.resampled(256)(np.arange(256), bytes=True)


# Every built-in table, exactly.
tables = {n: hexes(mpl256(matplotlib.colormaps[n])) for n in MPL}
if colorcet is not None:
    for n in colorcet.cm:
        t = hexes(mpl256(colorcet.cm[n]))
        tables["cet_" + n] = t
        if n not in MPL and (not n.endswith("_r") or n[:-2] not in MPL):
            tables[n] = t

# The data: bin centres of entry k over limits LO..HI, so every pixel names one palette entry.
LO, HI = -5.0, 11.0
k = rng.integers(0, 256, (24, 48))
k[0, :4] = [0, 1, 254, 255]
np.save(os.path.join(OUT, "ramp.npy"), (LO + (k + 0.5) / 256 * (HI - LO)).astype(np.float32))
np.save(os.path.join(OUT, "ramp_k.npy"), k.astype(np.uint8))
renders = []
SAMPLE = ["tab10", "tab20", "tab20c", "Set1", "Paired", "Accent", "cubehelix", "Spectral", "twilight",
          "twilight_shifted", "jet", "nipy_spectral", "gist_earth", "terrain", "ocean", "PuOr", "YlGnBu",
          "Wistia", "afmhot", "brg", "berlin", "managua", "okabe_ito", "Spectral_r", "tab10_r", "cubehelix_r",
          "Set3_r", "seismic_r"]
for n in SAMPLE:
    renders.append({"spec": n, "table": tables[n], "tol": 0})
if colorcet is not None:
    for n in ["fire", "bmy", "kbc", "bgy", "cet_gray", "dimgray", "cet_coolwarm", "rainbow4", "glasbey", "fire_r"]:
        renders.append({"spec": n, "table": tables[n], "tol": 0})


def q(rgb01):
    """0..1 floats to bytes, rounded half up (vastview's rule for the colormaps it computes)."""
    return np.floor(np.clip(rgb01, 0, 1) * 255 + 0.5).astype(np.uint8)


def spread(colors, mix):
    colors = np.asarray(colors, dtype=np.float64)
    n = len(colors)
    x = np.arange(256) / 255 * (n - 1)
    seg = np.minimum(np.floor(x).astype(int), n - 2)
    return np.array([mix(colors[s], colors[s + 1], xi - s) for s, xi in zip(seg, x)])


def lerp(a, b, s):
    return a + (b - a) * s


def decode(c):
    c = np.asarray(c, dtype=np.float64)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def encode(c):
    c = np.asarray(c, dtype=np.float64)
    return np.where(c <= 0.0031308, 12.92 * c, 1.055 * np.abs(c) ** (1 / 2.4) - 0.055)


# Björn Ottosson, "A perceptual color space for image processing" (2020): linear sRGB <-> Oklab.
M1 = np.array([[0.4122214708, 0.5363325363, 0.0514459929], [0.2119034982, 0.6806995451, 0.1073969566],
               [0.0883024619, 0.2817188376, 0.6299787005]])
M2 = np.array([[0.2104542553, 0.7936177850, -0.0040720468], [1.9779984951, -2.4285922050, 0.4505937099],
               [0.0259040371, 0.7827717662, -0.8086757660]])


def to_oklab(c):
    return M2 @ np.cbrt(M1 @ decode(c))


def from_oklab(lab):
    return encode(np.clip(np.linalg.inv(M1) @ (np.linalg.inv(M2) @ lab) ** 3, 0, 1))


def add_custom(name, spec, table, tol=1):
    renders.append({"spec": spec, "table": hexes(table), "tol": tol, "custom": name})


# A colour list, interpolated in Oklab.
cols = ["#000000", "#ff0000", "#ffff00"]
rgb = np.array([[int(c[i:i + 2], 16) / 255 for i in (1, 3, 5)] for c in cols])
add_custom("list", ",".join(cols), q(spread(rgb, lambda a, b, s: from_oklab(lerp(to_oklab(a), to_oklab(b), s)))))
cols = ["#2a9d8f", "#e9c46a", "#f4a261", "#264653"]
rgb = np.array([[int(c[i:i + 2], 16) / 255 for i in (1, 3, 5)] for c in cols])
add_custom("list4", ",".join(cols), q(spread(rgb, lambda a, b, s: from_oklab(lerp(to_oklab(a), to_oklab(b), s)))))

# 256 integer rows: the table itself.
t256 = rng.integers(0, 256, (256, 3))
p = os.path.join(OUT, "ints256.txt")
np.savetxt(p, t256, fmt="%d")
add_custom("ints256", p, t256.astype(np.uint8), tol=0)
# 7 float rows with a CSV header: spread over 256 entries by linear interpolation of the values.
f7 = rng.uniform(0, 1, (7, 3))
p = os.path.join(OUT, "floats7.csv")
with open(p, "w") as f:
    f.write("r,g,b\n" + "".join(f"{float(r)!r},{float(g)!r},{float(b)!r}\n" for r, g, b in f7))
add_custom("floats7", p, q(spread(f7, lerp)))
add_custom("floats7_r", p + "_r", q(spread(f7, lerp))[::-1])


# ParaView JSON after vtkColorTransferFunction (vtkMath's sRGB/XYZ/Lab constants, Moreland's Msh).
def rgb2lab(c):
    r, g, b = decode(c)
    x = (r * 0.4124 + g * 0.3576 + b * 0.1805) / 0.9505
    y = r * 0.2126 + g * 0.7152 + b * 0.0722
    z = (r * 0.0193 + g * 0.1192 + b * 0.9505) / 1.089
    f = lambda t: np.cbrt(t) if t > 0.008856 else 7.787 * t + 16 / 116
    return np.array([116 * f(y) - 16, 500 * (f(x) - f(y)), 200 * (f(y) - f(z))])


def lab2rgb(lab):
    fy = (lab[0] + 16) / 116
    fx, fz = lab[1] / 500 + fy, fy - lab[2] / 200
    f = lambda t: t ** 3 if t ** 3 > 0.008856 else (t - 16 / 116) / 7.787
    x, y, z = 0.9505 * f(fx), f(fy), 1.089 * f(fz)
    rgb = np.array([3.2406 * x - 1.5372 * y - 0.4986 * z, -0.9689 * x + 1.8758 * y + 0.0415 * z,
                    0.0557 * x - 0.2040 * y + 1.0570 * z])
    rgb = encode(rgb)
    if rgb.max() > 1:
        rgb = rgb / rgb.max()
    return np.maximum(rgb, 0)


def msh(lab):
    m = np.linalg.norm(lab)
    s = np.arccos(lab[0] / m) if m > 0.001 else 0.0
    h = np.arctan2(lab[2], lab[1]) if s > 0.001 else 0.0
    return np.array([m, s, h])


def diverging(a, b, s):
    m1, m2 = msh(rgb2lab(a)), msh(rgb2lab(b))

    def adiff(h1, h2):
        d = abs(h1 - h2) % (2 * np.pi)
        return 2 * np.pi - d if d > np.pi else d

    def adjust(m, unsat):
        if m[0] >= unsat - 0.1:
            return m[2]
        spin = m[1] * np.sqrt(unsat ** 2 - m[0] ** 2) / (m[0] * np.sin(m[1]))
        return m[2] + spin if m[2] > -0.3 * np.pi else m[2] - spin

    if m1[1] > 0.05 and m2[1] > 0.05 and adiff(m1[2], m2[2]) > 0.33 * np.pi:
        mid = max(88.0, m1[0], m2[0])
        if s < 0.5:
            m2, s = np.array([mid, 0, 0]), 2 * s
        else:
            m1, s = np.array([mid, 0, 0]), 2 * s - 1
    if m1[1] < 0.05 < m2[1]:
        m1[2] = adjust(m2, m1[0])
    elif m2[1] < 0.05 < m1[1]:
        m2[2] = adjust(m1, m2[0])
    m, sat, h = lerp(m1, m2, s)
    return lab2rgb(np.array([m * np.cos(sat), m * np.sin(sat) * np.cos(h), m * np.sin(sat) * np.sin(h)]))


def paraview_table(points, mix):
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 4)
    xs = pts[:, 0]
    out = []
    for i in range(256):
        x = xs[0] + (xs[-1] - xs[0]) * i / 255
        j = min(int(np.searchsorted(xs, x, side="right")) - 1, len(xs) - 2)
        s = np.clip((x - xs[j]) / (xs[j + 1] - xs[j]), 0, 1)
        out.append(mix(pts[j, 1:], pts[j + 1, 1:], s))
    return q(np.array(out))


cool_warm = [-1, 0.23137254902, 0.298039215686, 0.752941176471, 1, 0.705882352941, 0.0156862745098, 0.149019607843]
three = [0, 0.1, 0.2, 0.9, 0.25, 0.9, 0.9, 0.1, 2, 0.6, 0.0, 0.3]
presets = [
    {"Name": "Cool to Warm", "ColorSpace": "Diverging", "NanColor": [1, 1, 0], "RGBPoints": cool_warm},
    {"Name": "three rgb", "ColorSpace": "RGB", "RGBPoints": three},
    {"Name": "three lab", "ColorSpace": "Lab", "RGBPoints": three},
    {"Name": "indexed", "IndexedColors": [1, 0, 0, 0, 1, 0]},
]
p = os.path.join(OUT, "presets.json")
with open(p, "w") as f:
    json.dump(presets, f)
lab_mix = lambda a, b, s: lab2rgb(lerp(rgb2lab(a), rgb2lab(b), s))
add_custom("paraview_first", p, paraview_table(cool_warm, diverging))
add_custom("paraview_rgb", p + ":three rgb", paraview_table(three, lerp))
add_custom("paraview_lab", p + ":three lab", paraview_table(three, lab_mix))
add_custom("paraview_diverging_rb", p + ":Cool to Warm", paraview_table(cool_warm, diverging))

# Bad colormap files and lists: (spec, text the one-line error must hold, whether it names the file).
errors = []
for name, text, expect in [
    ("bad_short.txt", "0 0 0\n", "at least 2"),
    ("bad_values.csv", "0,0,0\n1,2\n", "2 values"),
    ("bad_range.txt", "0 0 0\n300 0 0\n", "above 255"),
    ("bad_word.txt", "0 0 0\nred green blue\n", "line 2"),
    ("bad.json", "[{\"Name\": \"x\", \"ColorSpace\": \"HSV\", \"RGBPoints\": [0,0,0,0,1,1,1,1]}]", "HSV"),
    ("bad_points.json", "[{\"RGBPoints\": [0,0,0]}]", "RGBPoints"),
    ("bad_syntax.json", "[{", "not JSON"),
]:
    p = os.path.join(OUT, name)
    with open(p, "w") as f:
        f.write(text)
    errors.append({"spec": p, "expect": expect, "names": p})
errors.append({"spec": os.path.join(OUT, "missing.txt"), "expect": "no such file", "names": "missing.txt"})
errors.append({"spec": "#000000,#12345", "expect": "#12345", "names": "ramp.npy"})
errors.append({"spec": "not_a_colormap", "expect": "unknown colormap", "names": "ramp.npy"})
errors.append({"spec": os.path.join(OUT, "presets.json") + ":nope", "expect": "no preset named 'nope'",
               "names": "presets.json"})

with open(os.path.join(OUT, "cmaps.json"), "w") as f:
    json.dump({"tables": tables, "colorcet": colorcet is not None, "renders": renders, "errors": errors,
               "limits": f"{LO},{HI}"}, f)
print(f"oracle_cmaps: {len(tables)} tables, {len(renders)} renders (matplotlib {matplotlib.__version__}, "
      f"colorcet {colorcet.__version__ if colorcet else 'not installed'})")
