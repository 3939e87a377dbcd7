//! The window's channel composite, run under Xvfb on the software adapter: a 3-channel uint16 (c, y, x) array drawn
//! additively in the shader, each channel through its own colour ramp and limits, against numpy's composite of
//! the data and against `vastview render` of the same image; one channel alone (`--index`); and limit and
//! colormap changes that upload no tile.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;
use crate::window::{data_area, under_xvfb};

const LIMITS: &str = "0,1000;100,900;0,500";
const COLORMAPS: &str = "green,magenta,#ff8000";

/// Writes c3.npy (3 × 48 × 64 uint16) and numpy's expected composite (c3_want.npy, (48, 64, 4)) and channel 1
/// alone (c3_want_1.npy) into a fresh directory.
fn files(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vastview-composite-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let script = r#"
import sys, numpy as np
d = sys.argv[1]
a = np.random.default_rng(5).integers(0, 1000, (3, 48, 64)).astype(np.uint16)
np.save(f"{d}/c3.npy", a)
lims = [(0, 1000), (100, 900), (0, 500)]
cols = [(0, 255, 0), (255, 0, 255), (255, 128, 0)]
def ramp(k):
    lo, hi = lims[k]
    t = np.clip((a[k].astype(np.float64) - lo) / (hi - lo), 0, 1)
    i = np.clip(np.floor(t * 256), 0, 255).astype(np.int64)
    out = np.zeros((48, 64, 4), np.int64)
    out[..., 3] = 255
    for c in range(3):
        out[..., c] = ((cols[k][c] * np.arange(256) + 127) // 255)[i]
    return out
s = ramp(0) + ramp(1) + ramp(2)
np.save(f"{d}/c3_want.npy", np.minimum(s, 255).astype(np.uint8))
np.save(f"{d}/c3_want_1.npy", ramp(1).astype(np.uint8))
"#;
    let o = Command::new(python()).arg("-c").arg(script).arg(&dir).output().expect("python3");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    dir
}

/// The screenshot's data area at zoom 4 about the image centre against `want` ((48, 64, 4) RGBA, row-major):
/// every data pixel's 16 screen pixels, within 2 per channel (the single-image window test's rule).
fn compare_zoomed(shot: &Path, err: &str, want: &[u8]) {
    let [ox, oy, vw, vh] = data_area(err).unwrap_or_else(|| panic!("no data area line in: {err}"));
    let (sw, _, px) = read_png(shot);
    let (wd, h, zoom) = (64.0, 48.0, 4.0);
    let (mut compared, mut bad) = (0, Vec::new());
    for sy in 0..vh as u32 {
        for sx in 0..vw as u32 {
            let x = ((f64::from(sx) + 0.5 - vw / 2.0) / zoom + wd / 2.0).floor();
            let y = ((f64::from(sy) + 0.5 - vh / 2.0) / zoom + h / 2.0).floor();
            if x < 0.0 || y < 0.0 || x >= wd || y >= h {
                continue;
            }
            let k = ((y * wd + x) as usize) * 4;
            let at = (((oy as u32 + sy) * sw + ox as u32 + sx) * 4) as usize;
            let (got, exp) = (&px[at..at + 3], &want[k..k + 3]);
            compared += 1;
            if got.iter().zip(exp).any(|(a, b)| (i32::from(*a) - i32::from(*b)).abs() > 2) && bad.len() < 5 {
                bad.push(format!("screen ({sx},{sy}) data ({x},{y}): got {got:?} want {exp:?}"));
            }
        }
    }
    assert_eq!(compared, 64 * 48 * 16, "the whole image should be on screen at zoom 4");
    assert!(bad.is_empty(), "window pixels differ: {}", bad.join("; "));
}

fn window_args<'a>(file: &'a str, shot: &'a str) -> Vec<&'a str> {
    vec![
        file,
        "--screenshot",
        shot,
        "--window-size",
        "900x600",
        "--zoom",
        "4",
        "--center",
        "32,24",
        "--channel-axis",
        "dim_0",
        "--channel-colormaps",
        COLORMAPS,
        "--channel-limits",
        LIMITS,
    ]
}

#[test]
fn window_composite_equals_numpy_and_the_headless_render() {
    if gpu_session().is_none() {
        return;
    }
    let dir = files("shot");
    let (file, shot) = (dir.join("c3.npy"), dir.join("shot.png"));
    let (f, s) = (file.to_str().unwrap_or_default(), shot.to_str().unwrap_or_default());
    let Some(out) = under_xvfb(&window_args(f, s)) else { return };
    let err = stderr(&out);
    assert!(out.status.success(), "window exited {:?}: {err}", out.status.code());
    assert!(!err.contains("one channel at a time"), "{err}");
    let (_, want) = read_npy(&dir.join("c3_want.npy"));
    let want: Vec<u8> = want.iter().map(|&v| v as u8).collect();
    compare_zoomed(&shot, &err, &want);
    // `vastview render` of the same image with the same flags: the same pixels.
    let png = dir.join("render.png");
    let r = vastview(&[
        "render",
        f,
        "--channel-axis",
        "dim_0",
        "--channel-colormaps",
        COLORMAPS,
        "--channel-limits",
        LIMITS,
        "-o",
        png.to_str().unwrap_or_default(),
    ]);
    assert!(r.status.success(), "{}", stderr(&r));
    let (rw, rh, rendered) = read_png(&png);
    assert_eq!((rw, rh), (64, 48));
    assert_eq!(compare_rgba(&rendered, &want, 64, 0), None, "render differs from numpy");
    compare_zoomed(&shot, &err, &rendered);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn window_composite_indexed_channel_shows_alone() {
    if gpu_session().is_none() {
        return;
    }
    let dir = files("one");
    let (file, shot) = (dir.join("c3.npy"), dir.join("shot.png"));
    let (f, s) = (file.to_str().unwrap_or_default(), shot.to_str().unwrap_or_default());
    let mut args = window_args(f, s);
    args.extend(["--index", "dim_0=1"]);
    let Some(out) = under_xvfb(&args) else { return };
    let err = stderr(&out);
    assert!(out.status.success(), "window exited {:?}: {err}", out.status.code());
    let (_, want) = read_npy(&dir.join("c3_want_1.npy"));
    let want: Vec<u8> = want.iter().map(|&v| v as u8).collect();
    compare_zoomed(&shot, &err, &want);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn window_composite_limit_and_colormap_changes_upload_no_tiles() {
    if gpu_session().is_none() {
        return;
    }
    let dir = files("bench");
    let file = dir.join("c3.npy");
    let f = file.to_str().unwrap_or_default();
    let mut args = window_args(f, "");
    args.drain(1..3); // no screenshot
    args.extend(["--bench-frames", "20"]);
    let Some(out) = under_xvfb(&args) else { return };
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let line =
        err.lines().find(|l| l.contains("palette and limit changes uploaded")).unwrap_or_else(|| panic!("{err}"));
    assert!(line.contains("uploaded 0 tile bytes"), "{line}");
    // Per change: three palettes (1 KiB each), three 48-byte uniforms, the instances (a tile per channel: the
    // shift moves with the lower limit) and the composite's 16 bytes at most.
    let pal = err.lines().find(|l| l.contains("palette change uploads max")).unwrap_or_else(|| panic!("{err}"));
    let max: u64 = pal
        .split("palette change uploads max ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("{pal}"));
    assert!(max > 1024 && max <= 3 * (1024 + 48 + 4 * 48) + 16, "{pal}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn window_composite_bad_channel_flags_show_the_error_panel_with_the_render_line() {
    if gpu_session().is_none() {
        return;
    }
    let dir = files("bad");
    let (file, shot) = (dir.join("c3.npy"), dir.join("shot.png"));
    let (f, s) = (file.to_str().unwrap_or_default(), shot.to_str().unwrap_or_default());
    let args = [f, "--screenshot", s, "--channel-axis", "dim_0", "--channel-colormaps", "green,red"];
    let Some(out) = under_xvfb(&args) else { return };
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("names 2 colormaps for 3 channels"), "{err}");
    // The same line as `render` gives (one parser).
    let png = dir.join("r.png");
    let r = vastview(&[
        "render",
        f,
        "--channel-axis",
        "dim_0",
        "--channel-colormaps",
        "green,red",
        "-o",
        png.to_str().unwrap_or_default(),
    ]);
    let line = err.lines().find(|l| l.starts_with("vastview: ")).unwrap_or_default();
    assert_eq!(stderr(&r).trim(), line);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Several tiles per channel (700 × 500, 256-pixel tiles) at 1:1: the window's data area equals `render` of the
/// same composite (itself equal to numpy above) over the whole image.
#[test]
fn window_composite_of_many_tiles_equals_the_headless_render() {
    if gpu_session().is_none() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("vastview-composite-tiles-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let (w, h) = (700u32, 500u32);
    let file = dir.join("c.npy");
    let mut bytes = vastview::headless::npy_header("<u2", &[3, u64::from(h), u64::from(w)]);
    for c in 0..3u32 {
        for y in 0..h {
            for x in 0..w {
                let v = [(x * 3) % 1000, (y * 2) % 1000, (x + y + c) % 1000][c as usize] as u16;
                bytes.extend(v.to_le_bytes());
            }
        }
    }
    std::fs::write(&file, &bytes).expect("write");
    let (f, shot) = (file.to_str().unwrap_or_default(), dir.join("shot.png"));
    let lim = "0,1000;0,1000;0,1000";
    let args = [
        f,
        "--channel-axis",
        "dim_0",
        "--channel-limits",
        lim,
        "--zoom",
        "1",
        "--center",
        "350,250",
        "--window-size",
        "1000x700",
        "--screenshot",
        shot.to_str().unwrap_or_default(),
    ];
    let Some(out) = under_xvfb(&args) else { return };
    let err = stderr(&out);
    assert!(out.status.success(), "window exited {:?}: {err}", out.status.code());
    let png = dir.join("r.png");
    let r = vastview(&[
        "render",
        f,
        "--channel-axis",
        "dim_0",
        "--channel-limits",
        lim,
        "-o",
        png.to_str().unwrap_or_default(),
    ]);
    assert!(r.status.success(), "{}", stderr(&r));
    let (_, _, want) = read_png(&png);
    let [ox, oy, vw, vh] = data_area(&err).unwrap_or_else(|| panic!("no data area line in: {err}"));
    let (sw, _, px) = read_png(&shot);
    let (mut compared, mut bad) = (0, Vec::new());
    for sy in 0..vh as i64 {
        for sx in 0..vw as i64 {
            // Zoom 1: data pixel = screen pixel − half the area + the centre.
            let x = (sx as f64 + 0.5 - vw / 2.0 + 350.0).floor() as i64;
            let y = (sy as f64 + 0.5 - vh / 2.0 + 250.0).floor() as i64;
            if x < 0 || y < 0 || x >= i64::from(w) || y >= i64::from(h) {
                continue;
            }
            let k = ((y * i64::from(w) + x) * 4) as usize;
            let at = (((oy as i64 + sy) * i64::from(sw) + ox as i64 + sx) * 4) as usize;
            compared += 1;
            let (g, e) = (&px[at..at + 3], &want[k..k + 3]);
            if g.iter().zip(e).any(|(a, b)| (i32::from(*a) - i32::from(*b)).abs() > 2) && bad.len() < 5 {
                bad.push(format!("data ({x},{y}): window {g:?}, render {e:?}"));
            }
        }
    }
    assert_eq!(compared, (w * h) as usize, "the whole image should be in view");
    assert!(bad.is_empty(), "window differs from render: {}", bad.join("; "));
    let _ = std::fs::remove_dir_all(&dir);
}
