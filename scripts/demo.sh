#!/usr/bin/env bash
# The main job: vastview's window on the procedural 1,000,000 x 1,000,000 demo field (no data file).
# With a display it opens the window; without one (a server, CI) it runs the same window under Xvfb,
# waits until every visible tile is drawn, and saves a screenshot to demo.png.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/vastview-xdg}"
mkdir -p -m 700 "$XDG_RUNTIME_DIR"
if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
  exec target/release/vastview --demo "$@"
fi
echo "no display: running the window under Xvfb and saving demo.png"
xvfb-run -a -s "-screen 0 1400x900x24" target/release/vastview --demo --window-size 1280x800 --screenshot demo.png "$@"
echo "wrote $(pwd)/demo.png"
