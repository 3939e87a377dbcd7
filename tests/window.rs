//! The window, run for real under Xvfb on the software adapter: `--screenshot` pixels of the data area
//! against matplotlib's colormap of numpy's values, and the error panel for a bad file.

use std::process::Command;

use crate::common::*;

/// Runs vastview under `xvfb-run -a`; None (or a failure under CI) when Xvfb is missing.
fn under_xvfb(args: &[&str]) -> Option<std::process::Output> {
    let have = Command::new("xvfb-run").arg("--help").output().is_ok();
    if !have {
        assert!(std::env::var_os("CI").is_none(), "CI is set but xvfb-run is missing (apt-get install xvfb xauth)");
        eprintln!("xvfb-run not found; window checks not run");
        return None;
    }
    let xdg = std::env::temp_dir().join("vastview-test-xdg");
    let _ = std::fs::create_dir_all(&xdg);
    let out = Command::new("timeout")
        .arg("120")
        .args(["xvfb-run", "-a", "-s", "-screen 0 1280x1024x24"])
        .arg(env!("CARGO_BIN_EXE_vastview"))
        .args(args)
        .env("XDG_RUNTIME_DIR", &xdg)
        .env("XDG_CONFIG_HOME", std::env::temp_dir().join("vastview-test-config"))
        .env("VASTVIEW_CACHE_DIR", std::env::temp_dir().join(format!("vastview-test-cache-{}", std::process::id())))
        .output()
        .expect("run xvfb-run");
    Some(out)
}

/// The last "data area: x,y,w,h px" line the window printed.
fn data_area(stderr: &str) -> Option<[f64; 4]> {
    let line = stderr.lines().rev().find(|l| l.starts_with("data area: "))?;
    let nums: Vec<f64> =
        line["data area: ".len()..].split(" px").next()?.split(',').filter_map(|v| v.trim().parse().ok()).collect();
    (nums.len() == 4).then(|| [nums[0], nums[1], nums[2], nums[3]])
}

#[test]
fn window_screenshot_shows_the_data_through_the_colormap() {
    if gpu_session().is_none() {
        return;
    }
    let (dir, m) = oracle();
    let w = &m["window"];
    let file = dir.join(w["file"].as_str().unwrap_or_default());
    let shot = dir.join("window.png");
    let zoom = w["zoom"].as_f64().unwrap_or(4.0);
    let args = [
        file.to_str().unwrap_or_default(),
        "--screenshot",
        shot.to_str().unwrap_or_default(),
        "--window-size",
        "900x600",
        "--zoom",
        &zoom.to_string(),
        "--center",
        w["center"].as_str().unwrap_or_default(),
        "--colormap",
        w["colormap"].as_str().unwrap_or_default(),
        "--limits",
        w["limits"].as_str().unwrap_or_default(),
    ];
    let Some(out) = under_xvfb(&args) else { return };
    let err = stderr(&out);
    assert!(out.status.success(), "window exited {:?}: {err}", out.status.code());
    let [ox, oy, vw, vh] = data_area(&err).unwrap_or_else(|| panic!("no data area line in: {err}"));
    let (sw, sh, px) = read_png(&shot);
    assert!(sw >= 900 && sh >= 600, "screenshot {sw}x{sh}");
    let (shape, want) = read_npy(&dir.join(w["expected"].as_str().unwrap_or_default()));
    let (h, wd) = (shape[0] as f64, shape[1] as f64);
    let (cx, cy) = (wd / 2.0, h / 2.0);
    let mut compared = 0;
    let mut bad = Vec::new();
    for sy in 0..vh as u32 {
        for sx in 0..vw as u32 {
            // The same mapping the view uses: pixel centre → data pixel.
            let x = ((f64::from(sx) + 0.5 - vw / 2.0) / zoom + cx).floor();
            let y = ((f64::from(sy) + 0.5 - vh / 2.0) / zoom + cy).floor();
            if x < 0.0 || y < 0.0 || x >= wd || y >= h {
                continue;
            }
            let k = ((y * wd + x) as usize) * 4;
            let at = (((oy as u32 + sy) * sw + ox as u32 + sx) * 4) as usize;
            let got = &px[at..at + 3];
            let exp: Vec<u8> = want[k..k + 3].iter().map(|&v| v as u8).collect();
            compared += 1;
            if got.iter().zip(&exp).any(|(a, b)| (i32::from(*a) - i32::from(*b)).abs() > 2) && bad.len() < 5 {
                bad.push(format!("screen ({sx},{sy}) data ({x},{y}): got {got:?} want {exp:?}"));
            }
        }
    }
    assert_eq!(compared, (64 * 48) as usize * 16, "the whole image should be on screen at zoom 4");
    assert!(bad.is_empty(), "window pixels differ from matplotlib: {}", bad.join("; "));
}

#[test]
fn a_bad_file_shows_the_error_panel_and_the_same_message() {
    let (dir, _) = oracle();
    let file = dir.join("e_text.npy");
    let shot = dir.join("window_error.png");
    let Some(out) = under_xvfb(&[file.to_str().unwrap_or_default(), "--screenshot", shot.to_str().unwrap_or_default()])
    else {
        return;
    };
    let err = stderr(&out);
    if gpu_session().is_none() {
        return;
    }
    assert_eq!(out.status.code(), Some(2), "{err}");
    let msg: Vec<&str> = err.lines().filter(|l| l.starts_with("vastview: ")).collect();
    assert_eq!(msg.len(), 1, "{err}");
    assert!(msg[0].contains("e_text.npy") && msg[0].contains("not an .npy"), "{err}");
    // The same line as the command line gives.
    let cli = vastview(&["info", file.to_str().unwrap_or_default()]);
    assert_eq!(stderr(&cli).trim(), msg[0]);
    assert!(shot.exists(), "no screenshot of the error panel");
}

#[test]
fn panning_a_file_much_larger_than_the_budgets_stays_within_them() {
    if gpu_session().is_none() {
        return;
    }
    // 16384 x 1024 float32 = 64 MiB of data against 8 MiB budgets, panned along its length.
    let dir = std::env::temp_dir().join(format!("vastview-pan-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("big.npy");
    let mut bytes = vastview::headless::npy_header("<f4", &[1024, 16384]);
    bytes.extend((0..16384u32 * 1024).flat_map(|i| ((i % 4099) as f32).to_le_bytes()));
    std::fs::write(&file, &bytes).expect("write");
    drop(bytes);
    let args = [
        file.to_str().unwrap_or_default(),
        "--window-size",
        "900x600",
        "--zoom",
        "1",
        "--center",
        "450,512",
        "--cpu-budget-mb",
        "8",
        "--gpu-budget-mb",
        "8",
        "--bench-frames",
        "200",
    ];
    let Some(out) = under_xvfb(&args) else { return };
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let line = err.lines().find(|l| l.starts_with("bench: peak CPU")).unwrap_or_else(|| panic!("no bench line: {err}"));
    let nums: Vec<u64> =
        line.split(|c: char| !c.is_ascii_digit()).filter(|t| !t.is_empty()).filter_map(|t| t.parse().ok()).collect();
    let (cpu, cpu_budget, gpu, gpu_budget, loaded) = (nums[0], nums[1], nums[2], nums[3], nums[4]);
    assert_eq!(cpu_budget, 8 << 20);
    assert!(cpu <= cpu_budget, "CPU tiles {cpu} over budget {cpu_budget}");
    assert!(gpu <= gpu_budget, "GPU tiles {gpu} over budget {gpu_budget}");
    // Panning 200 frames by 1/32 of the view crossed far more tiles than the budgets hold.
    assert!(loaded * 256 * 256 * 4 > 2 * cpu_budget, "only {loaded} tiles loaded: {line}");
    let _ = std::fs::remove_dir_all(&dir);
}
