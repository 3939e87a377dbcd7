#!/usr/bin/env python3
"""Write vastview's colormap tables from matplotlib itself.

Each table is assets/colormaps/NAME.txt: 256 lines of `rrggbb` hex, entry 0 first, exactly the bytes
matplotlib's `Colormap(np.arange(256), bytes=True)` returns (matplotlib truncates lut*255 to uint8).
Reversed `_r` forms are derived in Rust by reading a table backwards, so only the forward maps live here.
Run: python3 scripts/gen_colormaps.py   (needs matplotlib; re-run when the list below changes)
"""
import pathlib
import sys

import matplotlib
import numpy as np

# name -> license of the table's data (see assets/colormaps/LICENSES.md)
MAPS = {
    "gray": "matplotlib",
    "viridis": "CC0-1.0",
    "magma": "CC0-1.0",
    "inferno": "CC0-1.0",
    "plasma": "CC0-1.0",
    "cividis": "CC0-1.0",
    "turbo": "Apache-2.0",
    "twilight": "matplotlib",
    "coolwarm": "matplotlib",
    "hot": "matplotlib",
    "RdBu": "matplotlib",
    "Greys": "matplotlib",
}


def main() -> int:
    out = pathlib.Path(__file__).resolve().parent.parent / "assets" / "colormaps"
    out.mkdir(parents=True, exist_ok=True)
    for name in MAPS:
        cmap = matplotlib.colormaps[name].resampled(256)
        rgba = cmap(np.arange(256), bytes=True)
        lines = [f"{r:02x}{g:02x}{b:02x}" for r, g, b, _a in rgba]
        (out / f"{name}.txt").write_text("\n".join(lines) + "\n")
    print(f"wrote {len(MAPS)} tables to {out} (matplotlib {matplotlib.__version__})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
