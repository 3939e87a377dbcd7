"""Writes the malformed input files of tests/corpus/bad/ (kept in the repo; rerun to regenerate).

Each file is small and wrong in one way; tests/malformed.rs runs every command on each and checks a
one-line error naming the file, exit code 2, no panic, and the file left untouched.
"""
import os
import struct
import sys

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bad")
os.makedirs(out, exist_ok=True)


def npy(header, data=b"", major=1, length=None):
    h = header.encode("latin-1")
    pre = 10 if major == 1 else 12
    pad = (-(pre + len(h) + 1)) % 64
    h = h + b" " * pad + b"\n"
    n = len(h) if length is None else length
    lf = struct.pack("<H", n) if major == 1 else struct.pack("<I", n)
    return b"\x93NUMPY" + bytes([major, 0]) + lf + h + data


def dict_(descr, shape, fortran="False"):
    return "{'descr': %s, 'fortran_order': %s, 'shape': %s, }" % (descr, fortran, shape)


files = {
    "empty.npy": b"",
    "magic_only.npy": b"\x93NUMPY",
    "bad_magic.npy": b"\x93NUMPX\x01\x00" + b"\x00" * 120,
    "version_4.npy": npy(dict_("'<f4'", "(2, 2)"), b"\x00" * 16)[:6] + b"\x04\x00" + npy(dict_("'<f4'", "(2, 2)"), b"\x00" * 16)[8:],
    "header_len_past_eof.npy": npy(dict_("'<f4'", "(2, 2)"), b"\x00" * 16, length=60000),
    "header_not_ascii.npy": npy(dict_("'<f4'", "(2, 2)").replace("descr", "d\xe9scr"), b"\x00" * 16),
    "header_unterminated.npy": npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2", b"\x00" * 16),
    "descr_unicode.npy": npy(dict_("'<U4'", "(2, 2)"), b"\x00" * 64),
    "descr_complex.npy": npy(dict_("'<c8'", "(2, 2)"), b"\x00" * 32),
    "descr_object.npy": npy(dict_("'|O'", "(2, 2)"), b"\x00" * 32),
    "descr_structured.npy": npy(dict_("[('x', '<f4'), ('y', '<f4')]", "(4,)"), b"\x00" * 32),
    "descr_garbage.npy": npy(dict_("'zz'", "(2, 2)"), b"\x00" * 16),
    "no_shape.npy": npy("{'descr': '<f4', 'fortran_order': False, }", b"\x00" * 16),
    "fortran_garbage.npy": npy(dict_("'<f4'", "(2, 2)", fortran="Maybe"), b"\x00" * 16),
    "shape_huge.npy": npy(dict_("'<f4'", "(18446744073709551615, 2)"), b"\x00" * 16),
    "shape_overflow.npy": npy(dict_("'<f8'", "(4294967296, 4294967296)"), b"\x00" * 16),
    "shape_too_large_int.npy": npy(dict_("'<f4'", "(18446744073709551616, 1)"), b"\x00" * 16),
    "shape_zero.npy": npy(dict_("'<f4'", "(0, 5)")),
    "shape_1d.npy": npy(dict_("'<f4'", "(5,)"), b"\x00" * 20),
    "shape_4d_short.npy": npy(dict_("'<f4'", "(2, 3, 4, 5)"), b"\x00" * 32),  # N-D arrays open; this one lacks data
    "shape_negative.npy": npy(dict_("'<f4'", "(-2, 2)"), b"\x00" * 16),
    "data_short.npy": npy(dict_("'<f4'", "(64, 64)"), b"\x00" * 100),
    "points_short.npy": npy(dict_("'<f4'", "(1000, 2)"), b"\x00" * 100),
    "points_int.npy": npy(dict_("'<i4'", "(200, 2)"), b"\x00" * 1600),
    "garbage.txt": b"hello world\nthis is not\na point file\n",
    "binary_garbage.bin": bytes((i * 7 + 3) % 256 for i in range(300)),
    "only_header.csv": b"x,y,z\n",
    "comments_only.txt": b"# nothing\n# here\n\n",
    # Raw: 60 bytes where --dtype f32 --shape 4x4 needs 64.
    "raw_short.bin": b"\x00" * 60,
}



def tiff(tags, data=b"", nxt=0):
    """A little-endian classic TIFF: one IFD at byte 8 of (tag, type, count, value) entries, then `data`."""
    t = sorted(tags)
    b = b"II*\0" + struct.pack("<IH", 8, len(t))
    for tag, typ, count, val in t:
        v = struct.pack("<HH", val, 0) if typ == 3 and count == 1 else struct.pack("<I", val)
        b += struct.pack("<HHI", tag, typ, count) + v
    return b + struct.pack("<I", nxt) + data


def tags_8x8(compression=1, count=64, **repl):
    at = 8 + 2 + 12 * 10 + 4
    t = {256: (3, 1, 8), 257: (3, 1, 8), 258: (3, 1, 8), 259: (3, 1, compression), 262: (3, 1, 1),
         273: (4, 1, at), 277: (3, 1, 1), 278: (3, 1, 8), 279: (4, 1, count), 284: (3, 1, 1)}
    for k, v in repl.items():
        t[int(k[1:])] = v
    return [(k,) + v for k, v in t.items()]


px = bytes(range(64))
files.update({
    "tiff_ifd_loop.tif": tiff(tags_8x8(), px, nxt=8),
    "tiff_first_ifd_past_end.tif": b"II*\0\xff\xff\0\0",
    "tiff_strip_past_end.tif": tiff(tags_8x8(t273=(4, 1, 100000)), px),
    "tiff_count_past_end.tif": tiff(tags_8x8(count=1000000), px),
    "tiff_jpeg2000.tif": tiff(tags_8x8(compression=34712), px),
    "tiff_complex.tif": tiff(tags_8x8(t258=(3, 1, 32), t284=(3, 1, 1))[:9] + [(339, 3, 1, 6)], px),
    "tiff_zero_width.tif": tiff(tags_8x8(t256=(3, 1, 0)), px),
    "tiff_too_few_strips.tif": tiff(tags_8x8(t278=(3, 1, 1)), px),
    "tiff_entries_past_end.tif": b"II*\0\x08\0\0\0\xff\xff" + b"\0" * 40,
    "tiff_bigtiff_bad_offset_size.tif": b"II+\0\x04\0\0\0\x10\0\0\0\0\0\0\0",
    "tiff_truncated.tif": tiff(tags_8x8(), px)[:150],
})

for name, data in files.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
print(f"wrote {len(files)} files to {out}", file=sys.stderr)
