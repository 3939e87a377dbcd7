#!/usr/bin/env bash
# Installs what vastview needs on a fresh Debian/Ubuntu machine beyond the Rust toolchain:
# a software Vulkan driver (lavapipe) so wgpu has an adapter without a GPU, Xvfb for the window,
# the freedesktop tools that install-desktop drives (and its test checks), and numpy + matplotlib (+ pillow,
# tifffile, colorcet) for the test oracles. Idempotent; needs root (or sudo) for apt.
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO=sudo; fi
missing=()
for p in mesa-vulkan-drivers xvfb xauth xdg-utils libfile-mimeinfo-perl shared-mime-info desktop-file-utils; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${missing[@]}"
fi
PY="${VASTVIEW_PYTHON:-python3}"
if ! "$PY" -c "import numpy, matplotlib, PIL, tifffile, imagecodecs, colorcet, astropy, zarr" >/dev/null 2>&1; then
  "$PY" -m pip install -q numpy matplotlib pillow tifffile imagecodecs colorcet astropy zarr h5py netCDF4  # zarr, h5py, netCDF4: the Zarr, HDF5 and NetCDF reader oracles; pillow, tifffile: JPEG/TIFF output tests; imagecodecs: tifffile's LZW/Zstandard/JPEG for the TIFF reader tests; colorcet: colormap tables; astropy: the FITS oracle
fi
mkdir -p -m 700 "${XDG_RUNTIME_DIR:-/tmp/vastview-xdg}"
