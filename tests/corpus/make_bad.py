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

for name, data in files.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
print(f"wrote {len(files)} files to {out}", file=sys.stderr)
