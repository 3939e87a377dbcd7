#!/usr/bin/env python3
"""Write vastview's colormap tables from matplotlib and colorcet.

Output, in assets/colormaps/:
  tables.bin  N tables of 256 RGB8 rows (768 bytes each), entry 0 first: exactly the bytes
              `cmap.resampled(256)(np.arange(256), bytes=True)` gives (matplotlib truncates lut*255 to
              uint8; a qualitative ListedColormap such as tab10 is so sampled at np.linspace(0, 1, 256)).
  names.tsv   one line per name: NAME <tab> TABLE-INDEX <tab> SOURCE (matplotlib|colorcet) <tab> MENU (1 when
              the window's colormap menu lists it). Identical tables are stored once.
A reversed `NAME_r` is listed (with its own table) only where matplotlib's `NAME_r` is not the forward table read
backwards (qualitative maps, and 1-unit rounding differences); vastview reads the table backwards otherwise.
Names: every map in `matplotlib.colormaps`; every colorcet map (`colorcet.cm`) as `cet_NAME` (the name colorcet
registers with matplotlib) and as plain `NAME` where matplotlib has no map of that name (gray, coolwarm and
rainbow stay matplotlib's).
Run: pip install matplotlib colorcet; python3 scripts/gen_colormaps.py   (re-run after upgrading either)
"""
import pathlib
import sys

import matplotlib
import numpy as np

# The twelve offered first (the window's menu, `vastview colormaps`).
COMMON = ["gray", "viridis", "magma", "inferno", "plasma", "cividis", "turbo", "twilight", "coolwarm", "hot",
          "RdBu", "Greys"]


def table(cmap):
    rgba = cmap.resampled(256)(np.arange(256), bytes=True)
    assert (rgba[:, 3] == 255).all(), cmap.name
    return rgba[:, :3].astype(np.uint8).tobytes()


def main() -> int:
    out = pathlib.Path(__file__).resolve().parent.parent / "assets" / "colormaps"
    out.mkdir(parents=True, exist_ok=True)
    # matplotlib's names before colorcet registers its own `cet_` ones.
    mpl = [n for n in matplotlib.colormaps if not n.endswith("_r")]
    import colorcet

    cc = [n for n in colorcet.cm if not n.endswith("_r")]
    tables, index, rows = [], {}, []

    def add(name, cmap, rev_cmap, source, menu):
        def store(b):
            if b not in index:
                index[b] = len(tables)
                tables.append(b)
            return index[b]

        fwd = table(cmap)
        i = store(fwd)
        rows.append((name, i, source, menu))
        rev = table(rev_cmap)
        backwards = np.frombuffer(fwd, np.uint8).reshape(256, 3)[::-1].tobytes()
        if rev != backwards:
            rows.append((name + "_r", store(rev), source, 0))
        return i

    for n in COMMON + [n for n in mpl if n not in COMMON]:
        add(n, matplotlib.colormaps[n], matplotlib.colormaps[n + "_r"], "matplotlib", 1)
    menu_tables = {r[1] for r in rows}
    for n in cc:
        if n not in mpl:
            t = table(colorcet.cm[n])
            # The menu gets one name per table: the short alias (fire) over the long and CET_ names.
            menu = int(index.get(t) not in menu_tables and not n.startswith("CET_") and n.count("_") < 2)
            i = add(n, colorcet.cm[n], colorcet.cm.get(n + "_r", colorcet.cm[n].reversed()), "colorcet", menu)
            if menu:
                menu_tables.add(i)
    for n in cc:
        add("cet_" + n, colorcet.cm[n], colorcet.cm.get(n + "_r", colorcet.cm[n].reversed()), "colorcet", 0)
    (out / "tables.bin").write_bytes(b"".join(tables))
    (out / "names.tsv").write_text("".join(f"{n}\t{i}\t{s}\t{m}\n" for n, i, s, m in rows))
    for old in out.glob("*.txt"):
        old.unlink()
    print(f"wrote {len(tables)} tables ({len(tables) * 768} bytes) and {len(rows)} names to {out} "
          f"(matplotlib {matplotlib.__version__}, colorcet {colorcet.__version__})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
