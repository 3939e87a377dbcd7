//! Hardening of the window and of the windowing stack in headless commands (issue 15): `--screenshot` ends with
//! exit 2 and one line when the view cannot be completed (nothing of the image in view, a far-off `--center`), and
//! with `preview` when a failed pyramid build leaves previews; the welcome screen can be screenshot; one `data area`
//! line; the status bar fits one line at 1280 px; RGB(A) images take no display flags (one note); headless commands
//! say nothing about XDG_RUNTIME_DIR. Each window run is killed after `WINDOW_LIMIT_S`, so a hang fails the test.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// A window run that has not exited after this long is killed (with its Xvfb) and fails its test.
const WINDOW_LIMIT_S: u64 = 240;

/// Runs the window under `xvfb-run -a` with `args` and `envs` (the tests' cache and XDG directories unless `envs`
/// names others), killing its process group after `WINDOW_LIMIT_S`. None when Xvfb is missing (a failure under CI).
fn window(args: &[&str], envs: &[(&str, &std::ffi::OsStr)]) -> Option<Output> {
    let _one = crate::window::XVFB.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if Command::new("xvfb-run").arg("--help").output().is_err() {
        assert!(std::env::var_os("CI").is_none(), "CI is set but xvfb-run is missing (apt-get install xvfb xauth)");
        eprintln!("xvfb-run not found; window checks not run");
        return None;
    }
    let xdg = std::env::temp_dir().join("vastview-test-xdg");
    let _ = std::fs::create_dir_all(&xdg);
    let mut c = Command::new("xvfb-run");
    c.args(["-a", "-s", "-screen 0 1280x1024x24"])
        .arg(env!("CARGO_BIN_EXE_vastview"))
        .args(args)
        .env("XDG_RUNTIME_DIR", &xdg)
        .env("XDG_CONFIG_HOME", std::env::temp_dir().join("vastview-test-config"))
        .env("VASTVIEW_CACHE_DIR", test_cache_dir())
        .env_remove("NODEVICE_SELECT")
        .envs(envs.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = c.spawn().expect("run xvfb-run");
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut v);
            }
            v
        })
    };
    let out_t = drain(child.stdout.take().map(|r| Box::new(r) as Box<dyn Read + Send>));
    let err_t = drain(child.stderr.take().map(|r| Box::new(r) as Box<dyn Read + Send>));
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for xvfb-run") {
            break s;
        }
        if t0.elapsed() > Duration::from_secs(WINDOW_LIMIT_S) {
            // SAFETY: kill(2) on the process group this test created (the window and its Xvfb); no memory involved.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
            let err = String::from_utf8_lossy(&err_t.join().unwrap_or_default()).into_owned();
            panic!("the window did not exit within {WINDOW_LIMIT_S} s (killed): {args:?}\n{err}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    Some(Output { status, stdout: out_t.join().unwrap_or_default(), stderr: err_t.join().unwrap_or_default() })
}

fn dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("vastview-hardening-window-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("dir");
    d
}

/// The lines of `err` starting with `prefix`.
fn lines<'a>(err: &'a str, prefix: &str) -> Vec<&'a str> {
    err.lines().filter(|l| l.starts_with(prefix)).collect()
}

/// "data area: X,Y,W,H px; …" → [X, Y, W, H].
fn area(line: &str) -> [f64; 4] {
    let nums: Vec<f64> = line["data area: ".len()..]
        .split(" px")
        .next()
        .unwrap_or_default()
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    assert_eq!(nums.len(), 4, "{line}");
    [nums[0], nums[1], nums[2], nums[3]]
}

#[test]
fn screenshot_of_a_view_with_nothing_of_the_image_in_it_ends_with_exit_2_and_one_line() {
    if gpu_session().is_none() {
        return;
    }
    let d = dir("empty");
    let file = d.join("small.npy");
    let mut bytes = vastview::headless::npy_header("<f4", &[64, 80]);
    bytes.extend((0..80u32 * 64).flat_map(|i| (i as f32).to_le_bytes()));
    std::fs::write(&file, &bytes).expect("write");
    for center in ["5000,5000", "1e308,-1e308"] {
        let shot = d.join("shot.png");
        let _ = std::fs::remove_file(&shot);
        let args = [file.to_str().unwrap_or_default(), "--center", center, "--zoom", "1", "--screenshot"];
        let mut args = args.to_vec();
        args.push(shot.to_str().unwrap_or_default());
        let Some(out) = window(&args, &[]) else { return };
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "--center {center}: {err}");
        let msg = lines(&err, "vastview: ");
        assert_eq!(msg.len(), 1, "--center {center}: {err}");
        assert!(msg[0].contains("small.npy") && msg[0].contains("nothing of the 80x64 image is in view"), "{err}");
        // The view math stayed finite: the centre shown is the clamped one.
        assert!(!msg[0].contains("inf") && !msg[0].contains("NaN"), "{err}");
        assert_eq!(lines(&err, "data area: ").len(), 1, "one data area line: {err}");
        let (w, h, _) = read_png(&shot);
        assert!(w >= 1280 && h >= 800, "screenshot {w}x{h}");
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_failed_pyramid_build_leaves_previews_that_the_screenshot_takes_and_the_status_bar_fits_one_line() {
    if gpu_session().is_none() {
        return;
    }
    // 4096 x 4096 float32 = 64 MiB: the window builds a pyramid for it, but its cache directory is a regular file,
    // so the build fails; at zoom 1/16 (level 4) the tile is a preview (it covers more pixels than is computed
    // exactly), which nothing will replace.
    let d = dir("preview");
    let file = d.join("big.npy");
    let mut bytes = vastview::headless::npy_header("<f4", &[4096, 4096]);
    bytes.extend((0..4096u32 * 4096).flat_map(|i| ((i % 4099) as f32).to_le_bytes()));
    std::fs::write(&file, &bytes).expect("write");
    drop(bytes);
    let not_a_dir = d.join("cache-is-a-file");
    std::fs::write(&not_a_dir, b"not a directory").expect("write");
    let shot = d.join("shot.png");
    let args = [
        file.to_str().unwrap_or_default(),
        "--zoom",
        "0.0625",
        "--limits",
        "0,4098",
        "--window-size",
        "1280x800",
        "--screenshot",
        shot.to_str().unwrap_or_default(),
    ];
    let Some(out) = window(&args, &[("VASTVIEW_CACHE_DIR", not_a_dir.as_os_str())]) else { return };
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let area_lines = lines(&err, "data area: ");
    assert_eq!(area_lines.len(), 1, "one data area line: {err}");
    assert!(area_lines[0].contains("; preview (pyramid not built: "), "{err}");
    // The status bar (below the data area) is one line high at 1280 px, with the long build error in it.
    let [_, oy, _, vh] = area(area_lines[0]);
    let (_, sh, _) = read_png(&shot);
    let status_h = f64::from(sh) - (oy + vh);
    assert!(status_h > 0.0 && status_h < 34.0, "status bar {status_h} px high (two lines?): {}", area_lines[0]);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn screenshot_with_no_input_shows_the_welcome_screen_and_exits_0() {
    if gpu_session().is_none() {
        return;
    }
    let d = dir("welcome");
    let shot = d.join("welcome.png");
    let Some(out) = window(&["--screenshot", shot.to_str().unwrap_or_default()], &[]) else { return };
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let (w, h, px) = read_png(&shot);
    assert!(w >= 1280 && h >= 800, "screenshot {w}x{h}");
    // Not blank: the welcome text and buttons are drawn.
    let first = &px[..4];
    assert!(px.chunks(4).any(|p| p != first), "a blank screenshot");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn rgb_images_ignore_display_flags_with_one_note_in_render_and_the_window() {
    let (dir, m) = oracle();
    let case = m["render"].as_array().expect("cases").iter().find(|c| c["name"] == "rgb").expect("the rgb case");
    let input = dir.join(case["file"].as_str().unwrap_or_default());
    let png = dir.join("hardening_rgb.png");
    let flags = ["--colormap", "magma", "--limits", "0,10", "--gamma", "2"];
    let mut args = vec!["render", input.to_str().unwrap_or_default(), "-o", png.to_str().unwrap_or_default()];
    args.extend(flags);
    let out = vastview(&args);
    let err = stderr(&out);
    let notes = lines(&err, "vastview: note: ");
    assert_eq!(notes.len(), 1, "{err}");
    assert!(
        notes[0].contains("rgb.npy") && notes[0].contains("--colormap, --limits, --gamma are ignored for RGB(A)"),
        "{err}"
    );
    // No note without such flags.
    let plain = vastview(&args[..4]);
    assert!(!stderr(&plain).contains("note"), "{}", stderr(&plain));
    // A flag typed at its default value is still a flag the image ignores.
    let mut typed = args[..4].to_vec();
    typed.extend(["--colormap", "viridis", "--gamma", "1"]);
    let typed_err = stderr(&vastview(&typed));
    let typed_notes = lines(&typed_err, "vastview: note: ");
    assert!(
        typed_notes.len() == 1 && typed_notes[0].contains("--colormap, --gamma are ignored for RGB(A)"),
        "{typed_err}"
    );
    if gpu_session().is_none() {
        return;
    }
    // The PNG is the image as stored (the oracle's), whatever the flags said.
    let (w, got, want) = png_and_expected(dir, case, &out, &png).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(compare_rgba(&got, &want, w as usize, 0), None);
    // The window: the same note once, and the data area shows the stored colors.
    let shot = dir.join("hardening_rgb_window.png");
    let mut wargs = vec![input.to_str().unwrap_or_default(), "--zoom", "4", "--center", "15,10"];
    wargs.extend(flags);
    wargs.extend(["--window-size", "700x500", "--screenshot", shot.to_str().unwrap_or_default()]);
    let Some(out) = window(&wargs, &[]) else { return };
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(lines(&err, "vastview: note: "), notes, "{err}");
    let area_lines = lines(&err, "data area: ");
    assert_eq!(area_lines.len(), 1, "{err}");
    let [ox, oy, vw, vh] = area(area_lines[0]);
    let (sw, _, px) = read_png(&shot);
    let mut bad = Vec::new();
    for (sx, sy) in [(0.5, 0.5), (10.5, 3.5), (29.5, 19.5), (17.5, 11.5)] {
        // Data pixel (sx, sy) at zoom 4 about the centre (15, 10).
        let (x, y) = (((sx - 15.0) * 4.0 + vw / 2.0) as u32, ((sy - 10.0) * 4.0 + vh / 2.0) as u32);
        let at = (((oy as u32 + y) * sw + ox as u32 + x) * 4) as usize;
        let k = ((sy as usize) * w as usize + sx as usize) * 4;
        if px[at..at + 3] != want[k..k + 3] {
            bad.push(format!("({sx},{sy}): window {:?}, stored {:?}", &px[at..at + 3], &want[k..k + 3]));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("; "));
}

#[test]
fn headless_commands_with_no_xdg_runtime_dir_say_nothing_about_it() {
    let (dir, m) = oracle();
    let case = m["render"].as_array().expect("cases")[0].clone();
    let input = dir.join(case["file"].as_str().unwrap_or_default());
    let input = input.to_str().unwrap_or_default();
    let png = dir.join("hardening_no_xdg.png");
    let mut render = vec!["render", input, "-o", png.to_str().unwrap_or_default()];
    let extra = strs(&case["args"]);
    render.extend(extra.iter().map(String::as_str));
    let runs: [&[&str]; 4] = [&["info", input], &["probe", input, "0", "0"], &["stats", input, "-q"], &render];
    for args in runs {
        let out = vastview_command(args, &[]).env_remove("XDG_RUNTIME_DIR").output().expect("run vastview");
        let err = stderr(&out);
        assert!(out.status.success(), "{args:?}: {err}");
        assert!(!err.contains("XDG_RUNTIME_DIR") && !err.contains("error"), "{args:?} printed: {err}");
    }
    if gpu_session().is_none() {
        return;
    }
    let out = vastview_command(&render, &[]).env_remove("XDG_RUNTIME_DIR").output().expect("run vastview");
    let (w, got, want) = png_and_expected(dir, &case, &out, &png).unwrap_or_else(|e| panic!("{e}"));
    let tol = case["tol"].as_i64().unwrap_or(2) as i32;
    assert_eq!(compare_rgba(&got, &want, w as usize, tol), None);
}

/// An N-D array in the window: `--index` picks the slice at start, the status bar names it, and the data area
/// shows that slice's values (gray, explicit limits) as numpy computes them.
#[test]
fn the_window_opens_an_nd_array_at_the_index_given() {
    let d = dir("nd");
    let script = r#"
import sys, numpy as np
d = sys.argv[1]
a = np.random.default_rng(7).integers(-1000, 1000, (3, 2, 5, 7)).astype(np.int32)
np.save(f"{d}/nd.npy", a)
t = np.clip((a[2, 1].astype(np.float64) + 1000) / 2000, 0, 1)
np.save(f"{d}/nd_want.npy", np.clip(np.floor(t * 256), 0, 255).astype(np.uint8))
"#;
    let o = Command::new(crate::common::python()).arg("-c").arg(script).arg(&d).output().expect("python3");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    if gpu_session().is_none() {
        return;
    }
    let input = d.join("nd.npy");
    let shot = d.join("nd.png");
    let args = [
        input.to_str().unwrap_or_default(),
        "--index",
        "dim_0=2,dim_1=1",
        "--colormap",
        "gray",
        "--limits",
        "-1000,1000",
        "--zoom",
        "40",
        "--center",
        "3.5,2.5",
        "--window-size",
        "700x500",
        "--screenshot",
        shot.to_str().unwrap_or_default(),
    ];
    let Some(out) = window(&args, &[]) else { return };
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let area_lines = lines(&err, "data area: ");
    assert_eq!(area_lines.len(), 1, "{err}");
    let [ox, oy, vw, vh] = area(area_lines[0]);
    let (sw, _, px) = read_png(&shot);
    let (_, want) = crate::common::read_npy(&d.join("nd_want.npy"));
    let gray = vastview::palette::Colormap::by_name("gray").expect("gray");
    let mut bad = Vec::new();
    for (sx, sy) in [(0.5, 0.5), (3.5, 2.5), (6.5, 4.5), (5.5, 1.5)] {
        let (x, y) = (((sx - 3.5) * 40.0 + vw / 2.0) as u32, ((sy - 2.5) * 40.0 + vh / 2.0) as u32);
        let at = (((oy as u32 + y) * sw + ox as u32 + x) * 4) as usize;
        let i = want[sy as usize * 7 + sx as usize] as usize;
        if px[at..at + 3] != gray.table[i][..3] {
            bad.push(format!("({sx},{sy}): window {:?}, want {:?}", &px[at..at + 3], &gray.table[i][..3]));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("; "));
    // A bad index is the error panel's one line (exit 2 with --screenshot).
    let mut bad_args = args;
    bad_args[2] = "dim_0=9";
    let Some(out) = window(&bad_args, &[]) else { return };
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("dim_0=9 is out of range"), "{}", stderr(&out));
    let _ = std::fs::remove_dir_all(&d);
}
