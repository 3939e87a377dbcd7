"""Writes the malformed FITS files of tests/corpus/bad/ (kept in the repo; rerun to regenerate).

Each file is small and wrong in one way (made by hand, not by astropy, which refuses to write them);
tests/malformed.rs runs every command on each and checks a one-line error naming the file, exit code 2,
no panic, and the file left untouched.
"""
import gzip
import os

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bad")
os.makedirs(out, exist_ok=True)


def card(text):
    assert len(text) <= 80, text
    return text.ljust(80).encode("ascii")


def kv(key, value):
    return card(f"{key:<8}= {value:>20}")


def header(cards, end=True):
    h = b"".join(cards) + (card("END") if end else b"")
    return h + b" " * (-len(h) % 2880)


def primary(bitpix, axes, extra=()):
    cards = [kv("SIMPLE", "T"), kv("BITPIX", bitpix), kv("NAXIS", len(axes))]
    cards += [kv(f"NAXIS{i + 1}", n) for i, n in enumerate(axes)]
    return cards + list(extra)


def data(nbytes):
    return b"\x00" * nbytes + b"\x00" * (-nbytes % 2880)


good_cards = primary(-32, [8, 8])
files = {
    # Cards but no END, then the data: the header runs to the end of the file.
    "fits_no_end.fits": header(good_cards, end=False) + data(256),
    # The header stops inside its first block.
    "fits_header_truncated.fits": header(good_cards)[:1000],
    # 64 x 64 float32 needs 16384 bytes of data; the file has 100.
    "fits_data_short.fits": header(primary(-32, [64, 64])) + b"\x00" * 100,
    "fits_naxis_negative.fits": header([kv("SIMPLE", "T"), kv("BITPIX", 8), kv("NAXIS", -1)]) + data(16),
    "fits_naxis_too_large.fits": header([kv("SIMPLE", "T"), kv("BITPIX", 8), kv("NAXIS", 1000)]) + data(16),
    # NAXIS = 3 but only NAXIS1 and NAXIS2 are given.
    "fits_naxis_wrong.fits": header([kv("SIMPLE", "T"), kv("BITPIX", 8), kv("NAXIS", 3), kv("NAXIS1", 4), kv("NAXIS2", 4)])
    + data(16),
    "fits_naxis_float.fits": header([kv("SIMPLE", "T"), kv("BITPIX", 8), kv("NAXIS", "2.5")]) + data(16),
    "fits_naxisn_negative.fits": header(primary(8, [4, -4])) + data(16),
    "fits_naxisn_overflow.fits": header(primary(64, [4294967296, 4294967296, 4294967296])) + data(64),
    "fits_naxisn_absurd.fits": header(primary(16, [1000000, 1000000])) + data(64),
    "fits_naxisn_too_large_int.fits": header(primary(8, [18446744073709551616, 1])) + data(16),
    "fits_bitpix_bad.fits": header(primary(12, [4, 4])) + data(32),
    "fits_bitpix_missing.fits": header([kv("SIMPLE", "T"), kv("NAXIS", 2), kv("NAXIS1", 4), kv("NAXIS2", 4)])
    + data(16),
    "fits_simple_false.fits": header([kv("SIMPLE", "F")] + primary(8, [4, 4])[1:]) + data(16),
    "fits_not_fits.fits": bytes((i * 13 + 5) % 256 for i in range(3000)),
    "fits_text.fits": b"this is a text file, not FITS\n" * 10,
    "fits_gzip.fits": gzip.compress(header(primary(8, [4, 4])) + data(16), mtime=0),
    # Only a table: no HDU holds an image.
    "fits_table_only.fits": header(primary(8, [], [kv("EXTEND", "T")]))
    + header(
        [
            kv("XTENSION", "'BINTABLE'"),
            kv("BITPIX", 8),
            kv("NAXIS", 2),
            kv("NAXIS1", 4),
            kv("NAXIS2", 3),
            kv("PCOUNT", 0),
            kv("GCOUNT", 1),
            kv("TFIELDS", 1),
            kv("TFORM1", "'J'"),
        ]
    )
    + data(12),
    "fits_1d.fits": header(primary(16, [10])) + data(20),
    "fits_zero_axis.fits": header(primary(16, [10, 0])),
    # The primary has no data and the extension after it is garbage.
    "fits_bad_extension.fits": header(primary(8, [])) + bytes((i * 7 + 3) % 256 for i in range(2880)),
    # BZERO that is not a number.
    "fits_bzero_text.fits": header(primary(16, [4, 4], [kv("BZERO", "'abc'")])) + data(32),
}

for name, content in files.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(content)
print(f"wrote {len(files)} files to {out}")
