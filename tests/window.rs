//! The window, run for real under Xvfb on the software adapter: `--screenshot` pixels of the data area
//! against matplotlib's colormap of numpy's values, point sets against `render --points` of the same extent and
//! size (itself checked against numpy's datashader rule in points.rs), and the error panel for a bad file.

use std::process::Command;

use crate::common::*;

/// One `xvfb-run` at a time: parallel ones sometimes fail to clean up their temporary directory (then
/// xvfb-run's exit code replaces the window's).
pub(crate) static XVFB: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs vastview under `xvfb-run -a`; None (or a failure under CI) when Xvfb is missing.
pub(crate) fn under_xvfb(args: &[&str]) -> Option<std::process::Output> {
    let _one = XVFB.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
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
        .env_remove("NODEVICE_SELECT")
        .output()
        .expect("run xvfb-run");
    Some(out)
}

/// The last "data area: x,y,w,h px" line the window printed.
pub(crate) fn data_area(stderr: &str) -> Option<[f64; 4]> {
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

/// A deterministic point set: `n` records of x, y (a curved band) and a value, float32.
fn point_records(n: u32) -> Vec<[f32; 3]> {
    (0..n)
        .map(|i| {
            // Two low-discrepancy coordinates, bent into a band; the value varies along it.
            let u = (f64::from(i) * 0.618_033_988_749_895).fract();
            let v = (f64::from(i) * 0.754_877_666_246_693).fract();
            let x = (u - 0.5) * 8.0;
            let y = 0.2 * x * x + (v - 0.5) * (1.0 + u * 3.0);
            [x as f32, y as f32, (x * 1.7).sin() as f32 * (1.0 + v as f32)]
        })
        .collect()
}

/// The last "points view: XMIN,YMIN,XMAX,YMAX; grid WxH; data area: X,Y,W,H px; N points in view" line:
/// (region, size, origin, points in view).
fn points_view(stderr: &str) -> Option<(String, String, [u32; 2], u64)> {
    let line = stderr.lines().rev().find(|l| l.starts_with("points view: "))?;
    let mut parts = line["points view: ".len()..].split("; ");
    let region = parts.next()?.to_string();
    let size = parts.next()?.strip_prefix("grid ")?.to_string();
    let area: Vec<u32> = parts
        .next()?
        .strip_prefix("data area: ")?
        .trim_end_matches(" px")
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    let in_view = parts.next()?.strip_suffix(" points in view")?.parse().ok()?;
    (area.len() == 4).then(|| (region, size, [area[0], area[1]], in_view))
}

/// Opens `file` in the window with `window_args`, then renders the view it reports with `render --points` and
/// `render_args`; compares the screenshot's data area with the PNG. Non-empty pixels (alpha > 0 in the PNG) must
/// match within `tol` per channel; empty ones must all show one color (the area's backdrop). Returns how many
/// pixels were compared and how many were non-empty, and the window's stderr. The fitted first view holds every
/// point.
fn window_matches_render(
    file: &std::path::Path,
    n_points: u64,
    window_args: &[&str],
    render_args: &[&str],
    tol: i32,
) -> (usize, usize, String) {
    window_matches_render_with_markers(file, n_points, window_args, render_args, tol, 0)
}

/// `window_matches_render` where the window draws points as discs of `radius` grid pixels: the expected image is
/// the PNG with every empty pixel given the color of the nearest non-empty pixel within that distance (squared
/// distance ≤ radius² + radius; ties: the larger grid value, from the same render's `.npy`). Count aggregates only.
fn window_matches_render_with_markers(
    file: &std::path::Path,
    n_points: u64,
    window_args: &[&str],
    render_args: &[&str],
    tol: i32,
    radius: i64,
) -> (usize, usize, String) {
    let dir = file.parent().expect("dir");
    let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("p");
    let shot = dir.join(format!("{stem}-window.png"));
    let mut args = vec![file.to_str().unwrap_or_default()];
    args.extend_from_slice(window_args);
    args.extend(["--window-size", "700x500", "--screenshot", shot.to_str().unwrap_or_default()]);
    let Some(out) = under_xvfb(&args) else { return (0, 0, String::new()) };
    let err = stderr(&out);
    assert!(out.status.success(), "window exited {:?}: {err}", out.status.code());
    let (region, size, [ox, oy], in_view) =
        points_view(&err).unwrap_or_else(|| panic!("no points view line in: {err}"));
    assert_eq!(in_view, n_points, "the first view fits the data: every point is in it");
    let png = dir.join(format!("{stem}-render.png"));
    let mut rargs = vec!["render", file.to_str().unwrap_or_default(), "-o", png.to_str().unwrap_or_default()];
    let region_arg = format!("--region={region}");
    rargs.extend(["--points", region_arg.as_str(), "--size", size.as_str()]);
    rargs.extend_from_slice(render_args);
    let r = vastview(&rargs);
    assert!(r.status.success(), "render --points: {}", stderr(&r));
    let (rw, rh, mut want) = read_png(&png);
    if radius > 0 {
        let npy = dir.join(format!("{stem}-render.npy"));
        rargs[3] = npy.to_str().unwrap_or_default();
        let r = vastview(&rargs);
        assert!(r.status.success(), "render --points -o .npy: {}", stderr(&r));
        let (shape, grid) = read_npy(&npy);
        assert_eq!(shape, [u64::from(rh), u64::from(rw)]);
        want = dilate(&want, &grid, (rw as i64, rh as i64), radius);
    }
    let (sw, _, got) = read_png(&shot);
    let mut backdrop = None;
    let (mut compared, mut nonempty, mut bad) = (0, 0, Vec::new());
    for y in 0..rh {
        for x in 0..rw {
            let k = ((y * rw + x) * 4) as usize;
            let at = (((oy + y) * sw + ox + x) * 4) as usize;
            let (g, w) = (&got[at..at + 3], &want[k..k + 4]);
            compared += 1;
            if w[3] == 0 {
                // Empty in the PNG (transparent): the window shows its backdrop there, the same everywhere.
                let b = *backdrop.get_or_insert([g[0], g[1], g[2]]);
                if g != b && bad.len() < 5 {
                    bad.push(format!("empty pixel ({x},{y}) shows {g:?}, other empty pixels {b:?}"));
                }
                continue;
            }
            nonempty += 1;
            assert_eq!(w[3], 255, "these cases draw opaque pixels");
            if g.iter().zip(w).any(|(a, b)| (i32::from(*a) - i32::from(*b)).abs() > tol) && bad.len() < 5 {
                bad.push(format!("pixel ({x},{y}): window {g:?}, render --points {:?}", &w[..3]));
            }
        }
    }
    assert!(bad.is_empty(), "window differs from render --points {region} {size}: {}", bad.join("; "));
    (compared, nonempty, err)
}

/// RGBA `png` (north up) with its empty pixels given the color of the nearest non-empty pixel within `radius`
/// (squared distance ≤ radius² + radius, ties to the larger count); `grid` holds the counts, row 0 = lowest y.
fn dilate(png: &[u8], grid: &[f64], (w, h): (i64, i64), radius: i64) -> Vec<u8> {
    let count = |x: i64, y: i64| grid[((h - 1 - y) * w + x) as usize];
    let mut out = png.to_vec();
    for y in 0..h {
        for x in 0..w {
            if count(x, y) > 0.0 {
                continue;
            }
            let mut best: Option<(i64, f64, i64, i64)> = None;
            for dy in -radius..=radius {
                for dx in -radius..=radius {
                    let (px, py, d2) = (x + dx, y + dy, dx * dx + dy * dy);
                    if d2 > radius * radius + radius || px < 0 || py < 0 || px >= w || py >= h || count(px, py) <= 0.0 {
                        continue;
                    }
                    let v = count(px, py);
                    if best.is_none_or(|(bd, bv, _, _)| d2 < bd || (d2 == bd && v > bv)) {
                        best = Some((d2, v, px, py));
                    }
                }
            }
            if let Some((_, _, px, py)) = best {
                let (to, from) = (((y * w + x) * 4) as usize, ((py * w + px) * 4) as usize);
                out.copy_within(from..from + 4, to);
            }
        }
    }
    out
}

#[test]
fn window_points_at_deep_zoom_are_drawn_as_discs() {
    if gpu_session().is_none() {
        return;
    }
    // 60 points (counts 1 to 3) in a 700×500 window: far fewer than one point per 64 pixels, so `auto` draws
    // 5-pixel discs; an explicit --point-size 7 draws 7-pixel ones. Both equal the headless PNG dilated the same way.
    let dir = points_dir("markers");
    let file = dir.join("sparse.bin");
    let recs: Vec<[f32; 3]> =
        point_records(60).into_iter().enumerate().flat_map(|(i, r)| std::iter::repeat_n(r, i % 3 + 1)).collect();
    std::fs::write(&file, recs.iter().flatten().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()).expect("write");
    let layout = ["--points", "--dtype", "f32", "--columns", "3", "--colormap", "viridis"];
    for (size, radius) in [("auto", 2), ("7", 3)] {
        let mut wargs = layout.to_vec();
        wargs.extend(["--point-size", size]);
        let (compared, nonempty, _) =
            window_matches_render_with_markers(&file, recs.len() as u64, &wargs, &layout[1..], 0, radius);
        if compared == 0 {
            return;
        }
        // Discs: many more drawn pixels than the 60 points' own.
        assert!(nonempty > 60 * 9, "--point-size {size}: {nonempty} of {compared} pixels drawn");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn points_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("vastview-window-points-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

#[test]
fn window_points_count_eqhist_equal_the_headless_render() {
    if gpu_session().is_none() {
        return;
    }
    // A (N, 3) float32 .npy opened with no flags: the window offers it as points, as `info` does.
    let dir = points_dir("npy");
    let file = dir.join("band.npy");
    let recs = point_records(300_000);
    let mut bytes = vastview::headless::npy_header("<f4", &[recs.len() as u64, 3]);
    bytes.extend(recs.iter().flatten().flat_map(|v| v.to_le_bytes()));
    std::fs::write(&file, &bytes).expect("write");
    let (compared, nonempty, err) =
        window_matches_render(&file, 300_000, &["--scale", "eqhist"], &["--scale", "eqhist"], 0);
    if compared == 0 {
        return;
    }
    assert!(err.contains("; from the scan"), "no index here: {err}");
    assert!(nonempty > compared / 10 && nonempty < compared, "{nonempty} of {compared} pixels drawn");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn window_points_mean_log_alpha_background_equal_the_headless_render() {
    if gpu_session().is_none() {
        return;
    }
    let dir = points_dir("raw");
    let file = dir.join("band.bin");
    let recs = point_records(200_000);
    std::fs::write(&file, recs.iter().flatten().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()).expect("write");
    let style = [
        "--points",
        "--dtype",
        "f32",
        "--columns",
        "3",
        "--agg",
        "mean",
        "--scale",
        "log",
        "--colormap",
        "magma",
        "--alpha",
        "0.7",
        "--background",
        "203040",
    ];
    // The window runs with the same flags (plus its own); render gets them after --points.
    let (compared, nonempty, err) = window_matches_render(&file, 200_000, &style, &style[1..], 1);
    if compared == 0 {
        return;
    }
    assert!(err.contains("; from the scan"), "no index here: {err}");
    // With an opaque background every pixel is compared.
    assert_eq!(nonempty, compared);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn window_points_text_file_opens_without_flags_and_equals_the_headless_render() {
    if gpu_session().is_none() {
        return;
    }
    // A .csv with a header line: converted once (on the worker thread) into the cache, then drawn like any set.
    let dir = points_dir("text");
    let file = dir.join("band.csv");
    let mut text = String::from("x,y,v\n");
    for r in point_records(20_000) {
        text.push_str(&format!("{},{},{}\n", r[0], r[1], r[2]));
    }
    std::fs::write(&file, text).expect("write");
    let (compared, nonempty, err) =
        window_matches_render(&file, 20_000, &["--colormap", "inferno"], &["--colormap", "inferno"], 0);
    if compared == 0 {
        return;
    }
    assert!(err.contains("; from the scan"), "no index here: {err}");
    assert!(nonempty > 100, "{nonempty} of {compared} pixels drawn");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The layout flags of `indexed_points`'s files.
const INDEXED_LAYOUT: [&str; 5] = ["--points", "--dtype", "f32", "--columns", "3"];

/// `n` records of `point_records` written as raw f32 to `<points_dir(tag)>/name`, then `vastview index` of it
/// (in the tests' cache directory, which the window shares). Returns (directory, file).
fn indexed_points(tag: &str, name: &str, n: u32) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = points_dir(tag);
    let file = dir.join(name);
    let recs = point_records(n);
    std::fs::write(&file, recs.iter().flatten().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()).expect("write");
    let mut ix = vec!["index", file.to_str().unwrap_or_default(), "-q"];
    ix.extend(INDEXED_LAYOUT);
    let built = vastview(&ix);
    assert!(built.status.success(), "vastview index: {}", stderr(&built));
    (dir, file)
}

#[test]
fn window_points_through_the_spatial_index_equal_the_headless_render() {
    if gpu_session().is_none() {
        return;
    }
    // `vastview index` first (same cache directory as the window's): the window's exact grid then comes from it.
    let (dir, file) = indexed_points("index", "band.bin", 250_000);
    let layout = INDEXED_LAYOUT;
    let mut style = layout.to_vec();
    style.extend(["--scale", "eqhist", "--colormap", "plasma"]);
    let (compared, nonempty, err) = window_matches_render(&file, 250_000, &style, &style[1..], 0);
    if compared == 0 {
        return;
    }
    assert!(nonempty > 100, "{nonempty} of {compared}");
    assert!(err.contains("; from the index"), "the window's exact grid did not come from the index: {err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn window_points_with_a_damaged_index_delete_it_and_scan() {
    if gpu_session().is_none() {
        return;
    }
    let (dir, file) = indexed_points("badindex", "damaged.bin", 150_000);
    let layout = INDEXED_LAYOUT;
    // Flip a byte of the stored points (the last quarter of the file): the cell's checksum fails on the first query.
    let ixdir = test_cache_dir().join("points-index");
    let vvi = std::fs::read_dir(&ixdir)
        .expect("index dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "vvi") && p.to_string_lossy().contains("damaged.bin"))
        .expect("the index file");
    let mut bytes = std::fs::read(&vvi).expect("read index");
    let at = bytes.len() - bytes.len() / 4;
    bytes[at] ^= 0x40;
    std::fs::write(&vvi, &bytes).expect("write index");
    let (compared, _, err) = window_matches_render(&file, 150_000, &layout, &layout[1..], 0);
    if compared == 0 {
        return;
    }
    assert!(err.contains("deleted it") && err.contains("; from the scan"), "{err}");
    assert!(!vvi.exists(), "the damaged index is still there");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn window_points_style_changes_never_reaggregate() {
    if gpu_session().is_none() {
        return;
    }
    let dir = points_dir("bench");
    let file = dir.join("band.bin");
    let recs = point_records(100_000);
    std::fs::write(&file, recs.iter().flatten().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()).expect("write");
    let args = [
        file.to_str().unwrap_or_default(),
        "--points",
        "--dtype",
        "f32",
        "--columns",
        "3",
        "--window-size",
        "700x500",
        "--bench-frames",
        "20",
    ];
    let Some(out) = under_xvfb(&args) else { return };
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("bench points: style changes"))
        .unwrap_or_else(|| panic!("no style line: {err}"));
    let nums: Vec<u64> =
        line.split(|c: char| !c.is_ascii_digit()).filter(|t| !t.is_empty()).filter_map(|t| t.parse().ok()).collect();
    let (changes, aggs, grid_bytes, max_bytes) = (nums[0], nums[1], nums[2], nums[3]);
    // Each change set a new scale, colormap, alpha and background: the palette (1 KiB) and the 64-byte uniform at
    // most, never a grid, and nothing was aggregated again.
    assert!(changes >= 10, "{line}");
    assert_eq!(aggs, 0, "{line}");
    assert_eq!(grid_bytes, 0, "{line}");
    assert!(max_bytes > 0 && max_bytes <= 1024 + 64, "{line}");
    // Panning asked for new views, and their grids arrived.
    let pan = err.lines().find(|l| l.contains("grids arrived while panning")).unwrap_or_default();
    assert!(!pan.contains(" 0 grids arrived"), "{pan}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_point_input_shows_the_error_panel_with_the_cli_line() {
    let dir = points_dir("bad");
    let file = dir.join("ragged.bin");
    // 10 float32 values: not a whole number of 3-value records.
    std::fs::write(&file, [0u8; 40]).expect("write");
    let shot = dir.join("error.png");
    let flags = ["--points", "--dtype", "f32", "--columns", "3"];
    let mut args = vec![file.to_str().unwrap_or_default()];
    args.extend(flags);
    args.extend(["--screenshot", shot.to_str().unwrap_or_default()]);
    let Some(out) = under_xvfb(&args) else { return };
    if gpu_session().is_none() {
        return;
    }
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let msg: Vec<&str> = err.lines().filter(|l| l.starts_with("vastview: ")).collect();
    assert_eq!(msg.len(), 1, "{err}");
    assert!(msg[0].contains("ragged.bin") && msg[0].contains("not a multiple of the record size"), "{err}");
    let mut cli = vec!["info", file.to_str().unwrap_or_default()];
    cli.extend(flags);
    assert_eq!(stderr(&vastview(&cli)).trim(), msg[0]);
    assert!(shot.exists(), "no screenshot of the error panel");
    let _ = std::fs::remove_dir_all(&dir);
}
