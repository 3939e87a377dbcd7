//! `vastview render --points` and `info --points` against tests/oracle_points.py: aggregate grids (`-o .npy`)
//! against numpy's re-implementation of datashader's binning rule, PNG colors against datashader's shading
//! with matplotlib colormaps, and the bad-input cases (exit 2, one line naming the file).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

use crate::common::*;

/// Runs tests/oracle_points.py once into a fresh directory and returns (dir, manifest).
pub(crate) fn oracle_points() -> &'static (PathBuf, Value) {
    static ORACLE: OnceLock<(PathBuf, Value)> = OnceLock::new();
    ORACLE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("vastview-points-oracle-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracle_points.py");
        let out = Command::new(python()).arg(&script).arg(&dir).output().expect("run python3 (numpy, matplotlib)");
        assert!(out.status.success(), "oracle_points.py failed: {}", String::from_utf8_lossy(&out.stderr));
        let text = std::fs::read_to_string(dir.join("manifest_points.json")).expect("manifest");
        (dir, serde_json::from_str(&text).expect("manifest json"))
    })
}

fn s(p: &Path) -> String {
    p.to_str().unwrap_or_default().to_string()
}

/// `vastview render DIR/FILE -o OUT ARGS…` with the text cache under DIR.
fn render(dir: &Path, file: &str, out: &Path, args: &[String]) -> std::process::Output {
    render_env(dir, file, out, args, &[])
}

/// [`render`] with environment variables.
fn render_env(dir: &Path, file: &str, out: &Path, args: &[String], envs: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vastview"));
    cmd.arg("render").arg(dir.join(file)).arg("-o").arg(out).args(args);
    cmd.envs(envs.iter().copied());
    cmd.env("VASTVIEW_CACHE_DIR", dir.join("cache")).output().expect("run vastview")
}

/// Compares two .npy files with numpy: same dtype, shape, values (NaN equal), within `rtol`.
pub(crate) fn same_npy(got: &Path, want: &Path, rtol: f64) -> Result<(), String> {
    let check = format!(
        "import numpy as np, sys\na = np.load(sys.argv[1]); b = np.load(sys.argv[2])\n\
         assert a.dtype == b.dtype, (a.dtype, b.dtype)\nassert a.shape == b.shape, (a.shape, b.shape)\n\
         bad = ~np.isclose(a, b, rtol={rtol}, atol=0, equal_nan=True)\n\
         assert not bad.any(), f'{{bad.sum()}} pixels differ, first at {{np.argwhere(bad)[:3].tolist()}}: \
         {{a[bad][:3]}} vs {{b[bad][:3]}}'\n"
    );
    let r = Command::new(python()).args(["-c", &check]).arg(got).arg(want).output().expect("python");
    if r.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&r.stderr).lines().last().unwrap_or_default().to_string())
    }
}

#[test]
fn point_grids_match_numpy_datashader_rule() {
    let (dir, m) = oracle_points();
    let cases = m["npy"].as_array().expect("npy cases");
    let mut failures = Vec::new();
    for case in cases {
        let name = case["name"].as_str().unwrap_or_default();
        let out_path = dir.join(format!("out_{name}.npy"));
        let out = render(dir, case["file"].as_str().unwrap_or_default(), &out_path, &strs(&case["args"]));
        if !out.status.success() {
            failures.push(format!("{name}: exit {:?}: {}", out.status.code(), stderr(&out)));
            continue;
        }
        let want = dir.join(case["expected"].as_str().unwrap_or_default());
        if let Err(e) = same_npy(&out_path, &want, case["rtol"].as_f64().unwrap_or(0.0)) {
            failures.push(format!("{name}: {e}"));
        }
    }
    assert!(cases.len() >= 14, "{} cases", cases.len());
    assert!(failures.is_empty(), "{} of {} grids differ:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

#[test]
fn edge_points_and_nonfinite_coordinates_are_binned_and_counted() {
    let (dir, _) = oracle_points();
    let out_path = dir.join("out_edges.npy");
    let args: Vec<String> =
        ["--points", "--region", "-2,-1.5,3,1.25", "--size", "64x40", "-v"].map(String::from).into();
    let out = render(dir, "xyz_f32.npy", &out_path, &args);
    assert!(out.status.success(), "{}", stderr(&out));
    let (shape, v) = read_npy(&out_path);
    assert_eq!(shape, [40, 64]);
    let at = |r: usize, c: usize| v[r * 64 + c];
    // (xmin, ymin) lands in row 0, column 0; (xmax, ymax) in the last row and column.
    assert!(at(0, 0) >= 1.0 && at(39, 63) >= 1.0, "{} {}", at(0, 0), at(39, 63));
    // 3 points have NaN or inf coordinates; -v says so.
    let err = stderr(&out);
    assert!(err.contains("skipped: 3 points with NaN/inf x or y"), "{err}");
}

#[test]
fn text_points_convert_once_and_report_malformed_lines() {
    let (dir, m) = oracle_points();
    let t = &m["text"];
    let file = t["file"].as_str().unwrap_or_default();
    let out_path = dir.join("out_text.npy");
    let first = render(dir, file, &out_path, &strs(&t["args"]));
    assert!(first.status.success(), "{}", stderr(&first));
    let err = stderr(&first);
    let lines: Vec<String> = t["first_malformed"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).map(|n| format!("line {n}")).collect())
        .unwrap_or_default();
    assert!(err.contains(&format!("{} malformed lines", t["malformed"])), "{err}");
    for l in &lines {
        assert!(err.contains(l.as_str()), "{l} not reported: {err}");
    }
    assert!(err.contains("converted") && err.contains("MB/s"), "{err}");
    same_npy(&out_path, &dir.join(t["expected"].as_str().unwrap_or_default()), 0.0).expect("text grid");
    // The second run uses the cached binary: no conversion line, same grid.
    let again = render(dir, file, &out_path, &strs(&t["args"]));
    assert!(again.status.success() && !stderr(&again).contains("converted"), "{}", stderr(&again));
    same_npy(&out_path, &dir.join(t["expected"].as_str().unwrap_or_default()), 0.0).expect("cached grid");
    // info reports the malformed lines too.
    let info = Command::new(env!("CARGO_BIN_EXE_vastview"))
        .args(["info", "--points", "--json"])
        .arg(dir.join(file))
        .env("VASTVIEW_CACHE_DIR", dir.join("cache"))
        .output()
        .expect("info");
    let v: Value = serde_json::from_slice(&info.stdout).expect("info json");
    assert_eq!(v["malformed_lines"], t["malformed"]);
    assert_eq!(v["first_malformed_lines"], t["first_malformed"]);
    assert_eq!(v["kind"], "points");
}

#[test]
fn point_pngs_match_datashader_shading() {
    let (dir, m) = oracle_points();
    let cases = m["png"].as_array().expect("png cases");
    let mut failures = Vec::new();
    for case in cases {
        let name = case["name"].as_str().unwrap_or_default();
        let png = dir.join(format!("out_{name}.png"));
        let out = render(dir, case["file"].as_str().unwrap_or_default(), &png, &strs(&case["args"]));
        let (w, got, want) = match png_and_expected(dir, case, &out, &png) {
            Ok(v) => v,
            Err(msg) => {
                failures.push(format!("{name}: {msg}"));
                continue;
            }
        };
        // The picture is real: some transparent (empty) and many colored pixels.
        let empty = got.chunks_exact(4).filter(|p| p[3] == 0).count();
        let colors: std::collections::HashSet<&[u8]> = got.chunks_exact(4).collect();
        if colors.len() < 4 {
            failures.push(format!("{name}: only {} colors", colors.len()));
        }
        if let Some(msg) = compare_rgba(&got, &want, w as usize, case["tol"].as_i64().unwrap_or(2) as i32) {
            failures.push(format!("{name}: {msg} ({empty} empty pixels)"));
        }
    }
    assert!(cases.len() >= 8);
    assert!(failures.is_empty(), "{} of {} PNGs differ:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

#[test]
fn bad_point_inputs_exit_2_with_one_line_naming_the_file() {
    let (dir, m) = oracle_points();
    for case in m["errors"].as_array().expect("errors") {
        let file = case["file"].as_str().unwrap_or_default();
        let mut args = vec!["--points".to_string()];
        args.extend(strs(&case["args"]));
        let out = render(dir, file, &dir.join("never.png"), &args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{file} {args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{file}: {err}");
        assert!(err.contains(file), "{file}: message does not name the file: {err}");
        let want = case["want"].as_str().unwrap_or_default();
        assert!(err.contains(want), "{file} {args:?}: expected '{want}' in: {err}");
    }
    assert!(!dir.join("never.png").exists());
}

#[test]
fn identical_points_pad_the_extent_and_say_so() {
    let (dir, m) = oracle_points();
    let same = &m["same"];
    let out_path = dir.join("out_same.png");
    let args: Vec<String> = ["--points", "--size", "5x5", "-v"].map(String::from).into();
    let out = render(dir, same["file"].as_str().unwrap_or_default(), &out_path, &args);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("padded by 0.5 to 1.5,-3.5,2.5,-2.5"), "{err}");
    let (w, h, px) = read_png(&out_path);
    assert_eq!((w, h), (5, 5));
    // One opaque pixel in the middle (the top of viridis), the rest transparent.
    let lit: Vec<usize> = (0..25).filter(|i| px[i * 4 + 3] == 255).collect();
    assert_eq!(lit, [12]);
    assert_eq!(&px[48..52], &[253, 231, 36, 255]);
}

#[test]
fn info_offers_point_shaped_arrays_as_points() {
    let (dir, _) = oracle_points();
    let out = vastview(&["info", &s(&dir.join("xyz_f32.npy"))]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("looks like 50000 points: add --points"), "{}", stdout(&out));
    let out = Command::new(env!("CARGO_BIN_EXE_vastview"))
        .args(["info", "--points"])
        .arg(dir.join("xyz_f32.npy"))
        .env("VASTVIEW_CACHE_DIR", dir.join("cache"))
        .output()
        .expect("info");
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(text.contains("points:       50000") && text.contains("49997 finite, 3 with NaN/inf"), "{text}");
}

#[test]
fn data_bounds_are_cached_per_file_and_columns() {
    let (dir, m) = oracle_points();
    let case = m["npy"].as_array().and_then(|c| c.iter().find(|c| c["name"] == "count_default_region")).expect("case");
    let mut args = strs(&case["args"]);
    args.push("-v".into());
    // A copy of its own, so no other test has cached its bounds yet.
    std::fs::copy(dir.join("xyz_f32.bin"), dir.join("bounds_copy.bin")).expect("copy");
    let want = dir.join(case["expected"].as_str().unwrap_or_default());
    for (run, cached) in [(1, false), (2, true)] {
        let out_path = dir.join(format!("out_bounds_{run}.npy"));
        let out = render(dir, "bounds_copy.bin", &out_path, &args);
        let err = stderr(&out);
        assert!(out.status.success(), "{err}");
        assert_eq!(err.contains("(cached)"), cached, "run {run}: {err}");
        same_npy(&out_path, &want, 0.0).unwrap_or_else(|e| panic!("run {run}: {e}"));
    }
    // Other x/y columns have other bounds: not taken from the cache.
    args.extend(["--x", "1", "--y", "0"].map(String::from));
    let out = render(dir, "bounds_copy.bin", &dir.join("out_bounds_3.npy"), &args);
    assert!(out.status.success() && !stderr(&out).contains("(cached)"), "{}", stderr(&out));
}

#[test]
fn nan_values_are_not_aggregated_and_the_note_says_how_many() {
    let (dir, m) = oracle_points();
    let case = m["npy"].as_array().and_then(|c| c.iter().find(|c| c["name"] == "nanval_mean")).expect("case");
    let out_path = dir.join("out_nanval_note.npy");
    let out = render(dir, case["file"].as_str().unwrap_or_default(), &out_path, &strs(&case["args"]));
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let n = m["nan_values"].as_u64().unwrap_or(0);
    assert!(n > 1000, "{n}");
    assert!(err.contains(&format!("{n} points with a NaN value were not aggregated")), "{err}");
    same_npy(&out_path, &dir.join(case["expected"].as_str().unwrap_or_default()), 1e-12).expect("mean grid");
}

/// Strips of a few rows (`$VASTVIEW_POINT_STRIP_PX`): every oracle grid and every PNG the same as one grid.
#[test]
fn images_rendered_in_strips_equal_one_grid_renders() {
    let (dir, m) = oracle_points();
    let strips = [("VASTVIEW_POINT_STRIP_PX", "250")];
    let mut failures = Vec::new();
    let cases = m["npy"].as_array().expect("npy cases");
    for case in cases {
        let name = case["name"].as_str().unwrap_or_default();
        let out_path = dir.join(format!("strips_{name}.npy"));
        let out = render_env(dir, case["file"].as_str().unwrap_or_default(), &out_path, &strs(&case["args"]), &strips);
        if !out.status.success() {
            failures.push(format!("{name}: exit {:?}: {}", out.status.code(), stderr(&out)));
            continue;
        }
        let want = dir.join(case["expected"].as_str().unwrap_or_default());
        if let Err(e) = same_npy(&out_path, &want, case["rtol"].as_f64().unwrap_or(0.0)) {
            failures.push(format!("{name}: {e}"));
        }
    }
    let pngs = m["png"].as_array().expect("png cases");
    for case in pngs {
        let name = case["name"].as_str().unwrap_or_default();
        let (one, strip) = (dir.join(format!("one_{name}.png")), dir.join(format!("strips_{name}.png")));
        let file = case["file"].as_str().unwrap_or_default();
        let args = strs(&case["args"]);
        let verbose = [&args[..], &["-v".to_string()]].concat();
        let a = render(dir, file, &one, &verbose);
        let b = render_env(dir, file, &strip, &verbose, &strips);
        if !(a.status.success() && b.status.success()) {
            failures.push(format!("{name}: {} {}", stderr(&a), stderr(&b)));
            continue;
        }
        if !stderr(&b).contains("in strips of") || !stderr(&b).contains("with no spatial index every strip") {
            failures.push(format!("{name}: not rendered in strips (with the no-index hint): {}", stderr(&b)));
        }
        let skipped =
            |o: &std::process::Output| stderr(o).lines().find(|l| l.starts_with("skipped:")).map(String::from);
        if skipped(&a) != skipped(&b) || skipped(&a).is_none() {
            failures.push(format!("{name}: skipped counts differ: {:?} vs {:?}", skipped(&a), skipped(&b)));
        }
        if read_png(&one) != read_png(&strip) {
            failures.push(format!("{name}: the PNG rendered in strips differs from the one-grid PNG"));
        }
    }
    assert!(cases.len() >= 14 && pngs.len() >= 8);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// An image above the one-grid cap (9000 x 8000 = 72M pixels > 2^26) renders, in strips, to the oracle's
/// grid (its non-empty pixels checked by numpy against the binning rule).
#[test]
fn images_above_the_one_grid_cap_render_in_strips() {
    let (dir, _) = oracle_points();
    let out_path = dir.join("out_big.npy");
    let args: Vec<String> =
        ["--points", "--dtype", "f32", "--columns", "3", "--size", "9000x8000", "-v"].map(String::from).into();
    let out = render(dir, "xyz_f32.bin", &out_path, &args);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("9000x8000 pixels: binned and written in strips"), "{err}");
    let check = "import sys, numpy as np\n\
         xyz = np.fromfile(sys.argv[2], dtype=np.float32).reshape(-1, 3)\n\
         x, y = xyz[:, 0].astype(np.float64), xyz[:, 1].astype(np.float64)\n\
         ok = np.isfinite(x) & np.isfinite(y)\n\
         e = (x[ok].min(), y[ok].min(), x[ok].max(), y[ok].max())\n\
         W, H = 9000, 8000\n\
         keep = ok & (x >= e[0]) & (x <= e[2]) & (y >= e[1]) & (y <= e[3])\n\
         sx = W / (e[2] - e[0]); sy = H / (e[3] - e[1])\n\
         c = np.minimum((x[keep] * sx + -e[0] * sx).astype(np.int64), W - 1)\n\
         r = np.minimum((y[keep] * sy + -e[1] * sy).astype(np.int64), H - 1)\n\
         k, n = np.unique(r * W + c, return_counts=True)\n\
         g = np.load(sys.argv[1], mmap_mode='r')\n\
         assert g.shape == (H, W) and g.dtype == np.uint32, (g.shape, g.dtype)\n\
         flat = g.reshape(-1)\n\
         nz = np.flatnonzero(flat)\n\
         assert np.array_equal(nz, k), (len(nz), len(k))\n\
         assert np.array_equal(flat[nz], n)\n";
    let r = Command::new(python())
        .args(["-c", check])
        .arg(&out_path)
        .arg(dir.join("xyz_f32.bin"))
        .output()
        .expect("python");
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let _ = std::fs::remove_file(&out_path);
}
