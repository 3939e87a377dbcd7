#!/usr/bin/env python3
# Writes a 122880 x 122880 uint16 .npy (30.2 GB) in 256-row chunks: a smooth pattern plus a per-chunk offset.
import numpy as np, sys
n = 122880
path = sys.argv[1]
hdr = "{'descr': '<u2', 'fortran_order': False, 'shape': (%d, %d), }" % (n, n)
total = ((10 + len(hdr) + 1 + 63) // 64) * 64
head = b"\x93NUMPY\x01\x00" + (total - 10).to_bytes(2, "little") + hdr.encode() + b" " * (total - 10 - len(hdr) - 1) + b"\n"
x = np.arange(n, dtype=np.float32)
y = np.arange(256, dtype=np.float32)[:, None]
base = (20000 + 15000 * np.sin(x / 9000.0)[None, :] * np.cos(y / 40.0) + (x[None, :] * 7 % 5000)).astype(np.uint16)
with open(path, "wb") as f:
    f.write(head)
    for k in range(n // 256):
        f.write((base + np.uint16((k * 37) % 20000)).tobytes())
