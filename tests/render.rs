//! `vastview render` pixels on the real GPU path (software Vulkan in CI) against matplotlib's colormaps
//! applied to numpy's values, and `-o .npy` exports against numpy's block means.

use crate::common::*;

/// `vastview render FILE -o OUT ARGS…` for one oracle case (`file` and `args` from the manifest).
fn render_case(dir: &std::path::Path, case: &serde_json::Value, out: &std::path::Path) -> std::process::Output {
    let input = dir.join(case["file"].as_str().unwrap_or_default());
    let mut args = vec!["render", input.to_str().unwrap_or_default(), "-o", out.to_str().unwrap_or_default()];
    let extra = strs(&case["args"]);
    args.extend(extra.iter().map(String::as_str));
    vastview(&args)
}

#[test]
fn rendered_pixels_match_matplotlib() {
    if gpu_session().is_none() {
        return;
    }
    let (dir, m) = oracle();
    let mut failures = Vec::new();
    let cases = m["render"].as_array().expect("render cases");
    for case in cases {
        let name = case["name"].as_str().unwrap_or_default();
        let png = dir.join(format!("out_{name}.png"));
        let out = render_case(dir, case, &png);
        let (w, got, want) = match png_and_expected(dir, case, &out, &png) {
            Ok(v) => v,
            Err(msg) => {
                failures.push(format!("{name}: {msg}"));
                continue;
            }
        };
        let tol = case["tol"].as_i64().unwrap_or(2) as i32;
        if let Some(msg) = compare_rgba(&got, &want, w as usize, tol) {
            failures.push(format!("{name}: {msg}"));
        }
    }
    assert!(cases.len() >= 50);
    assert!(
        failures.is_empty(),
        "{} of {} renders differ from matplotlib:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn npy_export_matches_numpy() {
    let (dir, m) = oracle();
    for case in m["export"].as_array().expect("exports") {
        let name = case["name"].as_str().unwrap_or_default();
        let out_npy = dir.join(format!("out_{name}.npy"));
        let out = render_case(dir, case, &out_npy);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        // Check the file with numpy itself: dtype, shape and values.
        let check = format!(
            "import numpy as np, sys\na = np.load(sys.argv[1]); b = np.load(sys.argv[2])\n\
             assert a.dtype == b.dtype, (a.dtype, b.dtype)\nassert a.shape == b.shape, (a.shape, b.shape)\n\
             assert np.allclose(a, b, rtol={}, atol=0, equal_nan=True), np.abs(a.astype(float) - b).max()\n",
            case["rtol"].as_f64().unwrap_or(0.0)
        );
        let r = std::process::Command::new(python())
            .args(["-c", &check])
            .arg(&out_npy)
            .arg(dir.join(case["expected"].as_str().unwrap_or_default()))
            .output()
            .expect("python");
        assert!(r.status.success(), "{name}: {}", String::from_utf8_lossy(&r.stderr));
    }
}

#[test]
fn demo_renders_and_its_block_means_are_exact() {
    let (dir, _) = oracle();
    let full = dir.join("demo_full.npy");
    let small = dir.join("demo_small.npy");
    let f = |p: &std::path::Path| p.to_str().unwrap_or_default().to_string();
    let o1 = vastview(&["render", "--demo", "--region", "500000,300000,500256,300128", "-o", &f(&full)]);
    let o2 =
        vastview(&["render", "--demo", "--region", "500000,300000,500256,300128", "--size", "64x32", "-o", &f(&small)]);
    assert!(o1.status.success() && o2.status.success(), "{} {}", stderr(&o1), stderr(&o2));
    let check = "import numpy as np, sys\na = np.load(sys.argv[1]).astype(np.float64)\nb = np.load(sys.argv[2])\n\
                 m = a.reshape(32, 4, 64, 4).mean(axis=(1, 3))\nassert b.shape == (32, 64) and b.dtype == np.float32\n\
                 err = np.abs(m - b).max(); scale = np.abs(a).max()\nassert err < 1e-5 * scale, (err, scale)\n";
    let r = std::process::Command::new(python()).args(["-c", check]).arg(&full).arg(&small).output().expect("python");
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    if gpu_session().is_none() {
        return;
    }
    let png = dir.join("demo.png");
    let out = vastview(&["render", "--demo", "--size", "300x200", "-o", &f(&png)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (w, h, px) = read_png(&png);
    assert_eq!((w, h), (300, 200));
    // A real picture: opaque, and many distinct colors.
    assert!(px.chunks_exact(4).all(|p| p[3] == 255));
    let distinct: std::collections::HashSet<&[u8]> = px.chunks_exact(4).collect();
    assert!(distinct.len() > 100, "{} colors", distinct.len());
}
