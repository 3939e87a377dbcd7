//! The cached pyramid end to end through the CLI: `render` from its levels and `stats` against numpy,
//! resuming a build killed with SIGKILL, stale and damaged cache files, `cache list|clear` and the size
//! cap, the preview of files without a pyramid, and bad input. Every test has its own cache directory.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use crate::common::*;

/// A fresh, empty directory for one test (a cache root or scratch files); removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!("vastview-pyr-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("create temp dir");
        TempDir(d)
    }
    fn path(&self) -> &Path {
        &self.0
    }
    fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// `vastview ARGS` with its disk cache in `cache`.
fn vv(cache: &Path, args: &[&str]) -> Output {
    vastview_env(args, &[("VASTVIEW_CACHE_DIR", s(cache))])
}

/// Asserts success; returns stdout.
fn ok(out: &Output, what: &str) -> String {
    assert!(out.status.success(), "{what}: exit {:?}: {}", out.status.code(), stderr(out));
    assert!(!stderr(out).contains("panicked"), "{what}: {}", stderr(out));
    stdout(out)
}

/// The finished pyramid files (`*.vvp`) in a cache root.
fn vvp_files(cache: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(cache.join("pyramids"))
        .map(|d| d.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "vvp")).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// All files in the cache's pyramid directory.
fn cache_files(cache: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(cache.join("pyramids"))
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// Values of two .npy files are identical (shape, and every value within `atol`; NaN equals NaN).
/// Returns a description of the difference, or None.
fn npy_differs(got: &Path, want: &Path, atol: f64) -> Option<String> {
    let (gs, gv) = read_npy(got);
    let (ws, wv) = read_npy(want);
    if gs != ws {
        return Some(format!("shape {gs:?}, expected {ws:?}"));
    }
    let width = *ws.last().unwrap_or(&1) as usize;
    let bad: Vec<usize> = (0..gv.len())
        .filter(|&i| !(gv[i] == wv[i] || (gv[i] - wv[i]).abs() <= atol || (gv[i].is_nan() && wv[i].is_nan())))
        .collect();
    (!bad.is_empty()).then(|| {
        let first: Vec<String> = bad
            .iter()
            .take(4)
            .map(|&i| format!("(x={}, y={}) got {} want {}", i % width, i / width, gv[i], wv[i]))
            .collect();
        format!("{} of {} values differ: {}", bad.len(), gv.len(), first.join("; "))
    })
}

/// The .npy header says little-endian float32.
fn assert_f32_npy(p: &Path) {
    let head = std::fs::read(p).expect("read npy");
    let head = String::from_utf8_lossy(&head[..head.len().min(128)]);
    assert!(head.contains("'descr': '<f4'"), "{}: {head}", p.display());
}

fn stats_json(cache: &Path, file: &Path, slice: u64) -> (Value, String) {
    let out = vv(cache, &["stats", s(file), "--slice", &slice.to_string(), "--json", "-q"]);
    let text = ok(&out, "stats");
    (serde_json::from_str(&text).expect("stats json"), stderr(&out))
}

fn rel_close(got: f64, want: f64, scale: f64, rtol: f64) -> bool {
    (got - want).abs() <= rtol * scale.abs().max(f64::MIN_POSITIVE)
}

#[test]
fn renders_from_the_pyramid_are_numpy_block_means_and_maxima() {
    let (dir, m) = oracle();
    let p = &m["pyramid"];
    let cache = TempDir::new("renders");
    let levels = p["files"]["levels"].as_u64().unwrap_or(0);
    for (file, method, levels) in [
        ("pyr_f32.npy", "mean", levels),
        ("pyr_f32.npy", "max", levels),
        ("pyr_u16.npy", "mean", levels),
        ("stats_stack.npy", "mean", 3),
    ] {
        let f = dir.join(file);
        let out = vv(cache.path(), &["pyramid", s(&f), "--downsample", method, "-q"]);
        let text = ok(&out, "pyramid");
        assert!(text.contains(&format!("{levels} levels ({method}), built: ")), "{text}");
        assert!(text.contains(s(cache.path())) && text.contains("read "), "{text}");
        assert!(!text.contains("resumed"), "{text}");
        let again = ok(&vv(cache.path(), &["pyramid", s(&f), "--downsample", method]), "pyramid again");
        assert!(again.contains("already built") && !again.contains("read "), "{again}");
    }
    assert_eq!(vvp_files(cache.path()).len(), 4, "{:?}", cache_files(cache.path()));

    let cases = p["renders"].as_array().expect("pyramid renders");
    let mut failures = Vec::new();
    for case in cases {
        let name = case["name"].as_str().unwrap_or_default();
        let method = case["method"].as_str().unwrap_or_default();
        let out_npy = cache.join(&format!("{name}.npy"));
        let input = dir.join(case["file"].as_str().unwrap_or_default());
        let mut args = vec!["render", s(&input), "-o", s(&out_npy), "-v", "--downsample", method];
        let extra = strs(&case["args"]);
        args.extend(extra.iter().map(String::as_str));
        let out = vv(cache.path(), &args);
        if !out.status.success() {
            failures.push(format!("{name}: exit {:?}: {}", out.status.code(), stderr(&out)));
            continue;
        }
        let level = case["level"].as_u64().unwrap_or(0);
        let err = stderr(&out);
        let kind = if method == "max" { "maxima" } else { "means" };
        if !err.contains(&format!("(block {kind} of pyramid level {level})")) {
            failures.push(format!("{name}: -v does not say it read pyramid level {level}: {err}"));
        }
        if err.contains("PREVIEW") {
            failures.push(format!("{name}: a preview although the pyramid is cached: {err}"));
        }
        assert_f32_npy(&out_npy);
        let (expected, atol) = (dir.join(case["expected"].as_str().unwrap_or_default()), case["atol"].as_f64());
        if let Some(d) = npy_differs(&out_npy, &expected, atol.unwrap_or(0.0)) {
            failures.push(format!("{name} (level {level}): {d}"));
        }
    }
    assert!(cases.len() >= 30, "{} cases", cases.len());
    assert!(
        failures.is_empty(),
        "{} of {} pyramid renders differ from numpy:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn png_from_the_pyramid_matches_matplotlib() {
    if gpu_session().is_none() {
        return;
    }
    let (dir, m) = oracle();
    let case = &m["pyramid"]["png"];
    let cache = TempDir::new("png");
    let file = dir.join(case["file"].as_str().unwrap_or_default());
    ok(&vv(cache.path(), &["pyramid", s(&file), "-q"]), "pyramid");
    let png = cache.join("out.png");
    let mut args = vec!["render", s(&file), "-o", s(&png), "-v"];
    let extra = strs(&case["args"]);
    args.extend(extra.iter().map(String::as_str));
    let out = vv(cache.path(), &args);
    ok(&out, "render png");
    let level = case["level"].as_u64().unwrap_or(0);
    assert!(stderr(&out).contains(&format!("(block means of pyramid level {level})")), "{}", stderr(&out));
    let (w, h, got) = read_png(&png);
    let (shape, want) = read_npy(&dir.join(case["expected"].as_str().unwrap_or_default()));
    assert_eq!(shape, [u64::from(h), u64::from(w), 4]);
    let want: Vec<u8> = want.iter().map(|&v| v as u8).collect();
    // The NaN blocks are transparent; the rest are colors.
    assert!(want.chunks_exact(4).any(|p| p[3] == 0) && want.chunks_exact(4).any(|p| p[3] == 255));
    if let Some(msg) = compare_rgba(&got, &want, w as usize, 2) {
        panic!("PNG from pyramid level {level} differs from matplotlib: {msg}");
    }
}

#[test]
fn float64_levels_keep_a_large_offset_in_pngs() {
    if gpu_session().is_none() {
        return;
    }
    let (dir, m) = oracle();
    let cache = TempDir::new("png64");
    let cases = m["pyramid"]["png64"].as_array().expect("png64 cases");
    assert_eq!(cases.len(), 2);
    let file = dir.join("pyr_f64.npy");
    ok(&vv(cache.path(), &["pyramid", s(&file), "-q"]), "pyramid");
    for case in cases {
        let level = case["level"].as_u64().unwrap_or(0);
        let png = cache.join(&format!("out{level}.png"));
        let mut args = vec!["render", s(&file), "-o", s(&png), "-v"];
        let extra = strs(&case["args"]);
        args.extend(extra.iter().map(String::as_str));
        let out = vv(cache.path(), &args);
        ok(&out, "render png");
        assert!(stderr(&out).contains(&format!("(block means of pyramid level {level})")), "{}", stderr(&out));
        let (w, h, got) = read_png(&png);
        let (shape, want) = read_npy(&dir.join(case["expected"].as_str().unwrap_or_default()));
        assert_eq!(shape, [u64::from(h), u64::from(w), 4]);
        let want: Vec<u8> = want.iter().map(|&v| v as u8).collect();
        // Limits 4 wide around 1e9: the colours spread over the colormap only if the residuals survive.
        let distinct: std::collections::HashSet<&[u8]> = want.chunks_exact(4).collect();
        assert!(distinct.len() > 100, "{} colours", distinct.len());
        if let Some(msg) = compare_rgba(&got, &want, w as usize, 2) {
            panic!("float64 PNG from pyramid level {level} differs from matplotlib: {msg}");
        }
    }
}

#[test]
fn float64_pyramid_files_are_about_half_the_size_of_float64_levels() {
    let (dir, _) = oracle();
    let cache = TempDir::new("size64");
    let mut sizes = Vec::new();
    for f in ["pyr_f64.npy", "pyr_f64_as_f32.npy"] {
        ok(&vv(cache.path(), &["pyramid", s(&dir.join(f)), "-q"]), "pyramid");
        let vvp = vvp_files(cache.path()).into_iter().find(|p| p.to_string_lossy().contains(f)).expect("vvp file");
        sizes.push(std::fs::metadata(&vvp).map(|m| m.len()).unwrap_or(0));
    }
    let (f64_file, f32_file) = (sizes[0], sizes[1]);
    // Same geometry: float32 residuals plus an 8-byte offset per tile (1100×301 has 3 + 2 + 1 stored tiles
    // in levels 1..=3), where float64 levels would need twice the float32 tile bytes.
    assert!(f64_file > f32_file && f64_file - f32_file <= 8 * 6 + 4096, "{f64_file} vs {f32_file}");
}

/// Checks `stats --json` histograms against `np.histogram` of the finite values over the same edges,
/// for every (data file, slice, json file) in `jobs`; a value within 1e-9 (relative) of an edge may
/// land on either side of it.
const HIST_CHECK: &str = r#"
import json, sys
import numpy as np
bad = []
for file, sl, jpath in json.load(open(sys.argv[1])):
    a = np.load(file)
    j = json.load(open(jpath))
    v = (a[sl] if a.ndim == 3 else a).astype(np.float64).ravel()
    v = v[np.isfinite(v)]
    e = np.array(j["histogram"]["edges"], dtype=np.float64)
    c = np.array(j["histogram"]["counts"], dtype=np.int64)
    width = (e[-1] - e[0]) / 64
    if len(e) != 65 or len(c) != 64 or not np.allclose(np.diff(e), width, rtol=1e-9, atol=0):
        bad.append(f"{file}[{sl}]: edges are not 64 equal bins: {e}")
        continue
    if abs(j["percentile_bin_width"] - width) > 1e-12 * abs(width):
        bad.append(f"{file}[{sl}]: percentile_bin_width {j['percentile_bin_width']} != {width}")
    want, _ = np.histogram(v, bins=e)
    below, above = int((v < e[0]).sum()), int((v > e[-1]).sum())
    i = np.clip(np.searchsorted(e, v), 1, 64)
    near = int((np.minimum(np.abs(v - e[i - 1]), np.abs(v - e[i])) <= 1e-9 * np.maximum(1, np.abs(v))).sum())
    diff = int(np.abs(c - want).sum()) + abs(j["histogram"]["below"] - below) + abs(j["histogram"]["above"] - above)
    if diff > 2 * near:
        bad.append(f"{file}[{sl}]: histogram differs from numpy by {diff} (values near an edge: {near}):\n"
                   f"  got   {c.tolist()} below {j['histogram']['below']} above {j['histogram']['above']}\n"
                   f"  numpy {want.tolist()} below {below} above {above}")
    if c.sum() + j["histogram"]["below"] + j["histogram"]["above"] != j["count"]:
        bad.append(f"{file}[{sl}]: histogram does not add up to count")
print("\n".join(bad))
sys.exit(1 if bad else 0)
"#;

#[test]
fn stats_json_matches_numpy() {
    let (dir, m) = oracle();
    let cache = TempDir::new("stats");
    let cases = m["pyramid"]["stats"].as_array().expect("stats cases");
    let mut failures = Vec::new();
    let mut jobs = Vec::new();
    let mut built = std::collections::HashSet::new();
    for case in cases {
        let name = case["name"].as_str().unwrap_or_default();
        let fname = case["file"].as_str().unwrap_or_default();
        let file = dir.join(fname);
        let slice = case["slice"].as_u64().unwrap_or(0);
        let out = vv(cache.path(), &["stats", s(&file), "--slice", &slice.to_string(), "--json"]);
        let text = ok(&out, name);
        // The first stats of a file builds its pyramid and says so; later ones read it.
        let says_building = stderr(&out).contains("building");
        if says_building == built.contains(fname) {
            failures
                .push(format!("{name}: building message {says_building} (built before: {})", built.contains(fname)));
        }
        built.insert(fname);
        let got: Value = serde_json::from_str(&text).expect("stats json");
        let jpath = cache.join(&format!("{name}.json"));
        std::fs::write(&jpath, &text).expect("write json");
        jobs.push(serde_json::json!([s(&file), slice, s(&jpath)]));
        if got["slice"] != case["slice"] || got["path"].as_str().is_none_or(|p| !p.ends_with(fname)) {
            failures.push(format!("{name}: slice/path {} {}", got["slice"], got["path"]));
        }
        for k in ["count", "nan", "pos_inf", "neg_inf"] {
            if got[k].as_u64() != case[k].as_u64() {
                failures.push(format!("{name}: {k} = {}, numpy says {}", got[k], case[k]));
            }
        }
        for k in ["min", "max"] {
            if got[k].as_f64() != case[k].as_f64() {
                failures.push(format!("{name}: {k} = {}, numpy says {}", got[k], case[k]));
            }
        }
        let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
        let abs_sum = f(&case["abs_sum"]);
        for (k, scale) in [("mean", f(&case["mean"])), ("std", f(&case["std"])), ("sum", abs_sum)] {
            if !rel_close(f(&got[k]), f(&case[k]), scale, 1e-9) {
                failures.push(format!("{name}: {k} = {}, numpy says {} (rtol 1e-9)", got[k], case[k]));
            }
        }
        let width = f(&got["percentile_bin_width"]);
        let want_p = case["percentiles"].as_object().expect("percentiles");
        let got_p = got["percentiles"].as_object().expect("percentiles in json");
        if got_p.len() != want_p.len() {
            failures.push(format!("{name}: percentiles {:?}", got_p.keys().collect::<Vec<_>>()));
        }
        for (k, want) in want_p {
            let g = got_p.get(k).map_or(f64::NAN, f);
            let within = (g - f(want)).abs() <= width; // false for NaN too
            if !within {
                failures.push(format!("{name}: {k}th percentile {g}, numpy says {want} (bin width {width})"));
            }
        }
    }
    let jobs_path = cache.join("jobs.json");
    std::fs::write(&jobs_path, Value::Array(jobs).to_string()).expect("write jobs");
    let r = std::process::Command::new(python()).args(["-c", HIST_CHECK]).arg(&jobs_path).output().expect("python");
    if !r.status.success() {
        failures.push(format!("{}{}", String::from_utf8_lossy(&r.stdout), String::from_utf8_lossy(&r.stderr)));
    }
    assert!(cases.len() >= 5);
    assert!(failures.is_empty(), "stats differ from numpy:\n{}", failures.join("\n"));

    // The text form states the same counts.
    let case = &cases[0];
    let file = dir.join(case["file"].as_str().unwrap_or_default());
    let text = ok(&vv(cache.path(), &["stats", s(&file)]), "stats text");
    let want =
        format!("{} finite, {} NaN, {} +inf, {} -inf", case["count"], case["nan"], case["pos_inf"], case["neg_inf"]);
    assert!(text.contains(&want), "{text}\nlacks {want}");
}

/// A 6000 x 6000 float32 .npy (144 MB): a smooth field with a few NaNs, written without numpy.
fn write_big_npy(p: &Path) {
    use std::io::Write;
    let (h, w) = (6000usize, 6000usize);
    let mut f = std::io::BufWriter::new(std::fs::File::create(p).expect("create big npy"));
    f.write_all(&vastview::headless::npy_header("<f4", &[h as u64, w as u64])).expect("write header");
    let mut row = vec![0u8; w * 4];
    for y in 0..h {
        for x in 0..w {
            let k = (x * 7919 + y * 104_729) % 1_000_003;
            let v = if k % 997 == 0 {
                f32::NAN
            } else {
                (x as f32 * 0.001).sin() * 100.0 + y as f32 * 0.01 + k as f32 * 1e-6
            };
            row[x * 4..x * 4 + 4].copy_from_slice(&v.to_le_bytes());
        }
        f.write_all(&row).expect("write row");
    }
    f.flush().expect("flush");
}

/// Runs `vastview pyramid data` with a checkpoint at every tile row and SIGKILLs it once a checkpoint
/// exists (a build may finish first on a fast machine: then it tries again).
fn kill_mid_build(data: &Path, cache: &Path) {
    use std::os::unix::process::ExitStatusExt;
    for _attempt in 0..5 {
        let _ = std::fs::remove_dir_all(cache);
        let mut child = vastview_command(
            &["pyramid", s(data), "-q"],
            &[("VASTVIEW_CACHE_DIR", s(cache)), ("VASTVIEW_CHECKPOINT_MS", "0")],
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn vastview pyramid");
        let t0 = Instant::now();
        let has_resume = || cache_files(cache).iter().any(|f| f.ends_with(".vvp.partial.resume"));
        while !has_resume() && t0.elapsed() < Duration::from_secs(60) {
            if child.try_wait().ok().flatten().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        child.kill().ok();
        if child.wait().expect("wait").signal() == Some(9) {
            return;
        }
    }
    panic!("every build finished before it could be killed");
}

#[test]
fn a_build_killed_with_sigkill_resumes_and_equals_a_fresh_build() {
    let work = TempDir::new("resume");
    let data = work.join("big.npy");
    write_big_npy(&data);
    let (killed_cache, fresh_cache) = (work.join("killed"), work.join("fresh"));
    kill_mid_build(&data, &killed_cache);
    let left = cache_files(&killed_cache);
    assert!(
        left.iter().any(|f| f.ends_with(".vvp.partial")) && !left.iter().any(|f| f.ends_with(".vvp")),
        "after SIGKILL: {left:?}"
    );
    let list = ok(&vv(&killed_cache, &["cache", "list"]), "cache list");
    assert!(list.contains("partial"), "{list}");

    let resumed = ok(&vv(&killed_cache, &["pyramid", s(&data), "-q"]), "resume");
    assert!(resumed.contains("resumed after") && resumed.contains("built: "), "{resumed}");
    let fresh = ok(&vv(&fresh_cache, &["pyramid", s(&data), "-q"]), "fresh build");
    assert!(!fresh.contains("resumed"), "{fresh}");
    let (a, b) = (vvp_files(&killed_cache), vvp_files(&fresh_cache));
    assert_eq!((a.len(), b.len()), (1, 1), "{:?} {:?}", cache_files(&killed_cache), cache_files(&fresh_cache));
    assert_eq!(cache_files(&killed_cache).len(), 1, "leftovers: {:?}", cache_files(&killed_cache));

    // Same statistics, same rendered values at several levels.
    let (sa, _) = stats_json(&killed_cache, &data, 0);
    let (sb, _) = stats_json(&fresh_cache, &data, 0);
    assert_eq!(sa, sb, "stats after resume differ from a fresh build");
    assert_eq!(sa["count"].as_u64().unwrap_or(0) + sa["nan"].as_u64().unwrap_or(0), 36_000_000);
    for (size, region, level) in [("750x750", "0,0,6000,6000", 3), ("1000x512", "2000,3000,4000,4024", 1)] {
        let (oa, ob) = (work.join("a.npy"), work.join("b.npy"));
        for (cache, out) in [(&killed_cache, &oa), (&fresh_cache, &ob)] {
            let o = vv(cache, &["render", s(&data), "-o", s(out), "--size", size, "--region", region, "-v"]);
            ok(&o, "render");
            assert!(stderr(&o).contains(&format!("pyramid level {level})")), "{}", stderr(&o));
        }
        assert!(std::fs::read(&oa).expect("a") == std::fs::read(&ob).expect("b"), "{size}: renders differ");
    }
    // The whole file: a resumed build writes what an uninterrupted one writes.
    assert!(std::fs::read(&a[0]).expect("a") == std::fs::read(&b[0]).expect("b"), "pyramid files differ");

    // `cache clear FILE` removes an interrupted build's partial file and its checkpoint, whichever of
    // the two it lists first (most recently used first: here the partial).
    let killed2 = work.join("killed2");
    kill_mid_build(&data, &killed2);
    let files = cache_files(&killed2);
    let resume = files.iter().find(|f| f.ends_with(".resume")).expect("checkpoint");
    set_mtime(&killed2.join("pyramids").join(resume), SystemTime::now() - Duration::from_secs(10));
    let out = ok(&vv(&killed2, &["cache", "clear", s(&data)]), "cache clear");
    assert!(out.contains("removed 2 cache file(s)"), "{out} (before: {files:?})");
    assert!(cache_files(&killed2).is_empty(), "left behind: {:?}", cache_files(&killed2));
}

/// Overwrites the float32 at element `index` of an .npy with a 128-byte header.
fn poke_f32(p: &Path, index: u64, v: f32) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::options().write(true).open(p).expect("open data");
    f.write_all_at(&v.to_le_bytes(), 128 + 4 * index).expect("poke");
}

fn set_mtime(p: &Path, t: SystemTime) {
    std::fs::File::options().append(true).open(p).and_then(|f| f.set_modified(t)).expect("set mtime");
}

fn mtime(p: &Path) -> SystemTime {
    std::fs::metadata(p).and_then(|m| m.modified()).expect("mtime")
}

/// The pyramid file built from `data` as it is now (stale ones of earlier contents may lie beside it).
fn current_vvp(cache: &Path, data: &Path) -> PathBuf {
    let id = vastview::diskcache::Identity::of(data).expect("identity");
    let mut v: Vec<PathBuf> = vvp_files(cache)
        .into_iter()
        .filter(|p| vastview::pyramid::store::Store::read_meta(p).is_ok_and(|m| m.identity == id))
        .collect();
    assert_eq!(v.len(), 1, "pyramids of the current file: {v:?} in {:?}", cache_files(cache));
    v.remove(0)
}

#[test]
fn stale_and_damaged_caches_are_rebuilt_or_refused() {
    let (dir, m) = oracle();
    let work = TempDir::new("stale");
    let cache = work.join("cache");
    let data = work.join("stats_f32.npy");
    std::fs::copy(dir.join("stats_f32.npy"), &data).expect("copy data");
    let case = m["pyramid"]["stats"].as_array().and_then(|a| a.first()).expect("stats case");
    let total =
        |j: &Value| ["count", "nan", "pos_inf", "neg_inf"].iter().map(|k| j[k].as_u64().unwrap_or(0)).sum::<u64>();

    let out = vv(&cache, &["stats", s(&data), "--json"]);
    let j: Value = serde_json::from_str(&ok(&out, "stats")).expect("json");
    assert!(stderr(&out).contains("building"), "{}", stderr(&out));
    assert_eq!(j["max"], case["max"]);
    let out = vv(&cache, &["stats", s(&data), "--json"]);
    assert!(!stderr(&out).contains("building"), "second stats rebuilt: {}", stderr(&out));

    // A value past the hashed head of the file changes, and the mtime with it.
    let before = mtime(&data);
    poke_f32(&data, 100_000, 1.0e6);
    set_mtime(&data, before + Duration::from_secs(10));
    let out = vv(&cache, &["stats", s(&data), "--json"]);
    let j: Value = serde_json::from_str(&ok(&out, "stats after edit")).expect("json");
    assert!(stderr(&out).contains("building"), "a changed file was not rebuilt: {}", stderr(&out));
    assert_eq!(j["max"].as_f64(), Some(1.0e6), "stale statistics: {j}");
    assert_eq!(total(&j), 300 * 530);

    // A value inside the first 64 KiB changes and the mtime is put back: the head hash notices.
    let before = mtime(&data);
    poke_f32(&data, 10, 2.0e6);
    set_mtime(&data, before);
    let out = vv(&cache, &["stats", s(&data), "--json"]);
    let j: Value = serde_json::from_str(&ok(&out, "stats after edit 2")).expect("json");
    assert!(stderr(&out).contains("building"), "a changed head was not noticed: {}", stderr(&out));
    assert_eq!(j["max"].as_f64(), Some(2.0e6), "stale statistics: {j}");

    // Truncated pyramid files (mid tiles, mid header): named, deleted, rebuilt, right answer.
    for keep in [0.5, 0.0001] {
        let vvp = current_vvp(&cache, &data);
        let len = std::fs::metadata(&vvp).expect("vvp").len();
        std::fs::File::options()
            .write(true)
            .open(&vvp)
            .and_then(|f| f.set_len((len as f64 * keep) as u64))
            .expect("truncate");
        let out = vv(&cache, &["stats", s(&data), "--json"]);
        let j: Value = serde_json::from_str(&ok(&out, "stats after truncation")).expect("json");
        let err = stderr(&out);
        assert!(err.contains(s(&vvp)) && err.contains("damaged"), "truncation not reported: {err}");
        assert!(err.contains("building"), "{err}");
        assert_eq!(j["max"].as_f64(), Some(2.0e6));
        assert_eq!(std::fs::metadata(&vvp).expect("rebuilt").len(), len, "not rebuilt at full size");
        let out = vv(&cache, &["render", s(&data), "-o", s(&work.join("t.npy")), "--size", "265x150", "-v"]);
        ok(&out, "render after rebuild");
        assert!(stderr(&out).contains("pyramid level 1)"), "{}", stderr(&out));
    }

    // Corrupt bytes inside the tile a render reads: an error naming the damaged file, no output.
    let vvp = current_vvp(&cache, &data);
    let meta = vastview::pyramid::store::Store::read_meta(&vvp).expect("meta");
    let dtype = vastview::dtype::DType::all().iter().copied().find(|d| d.name() == meta.dtype).expect("dtype");
    let levels = vastview::pyramid::levels::Levels::new(meta.width, meta.height, meta.tile);
    let layout = vastview::pyramid::store::Layout::new(levels, meta.slices, meta.channels, dtype, meta.offsets);
    let tiles_below: u64 = (1..2).map(|l| levels.grid(l).cols() * levels.grid(l).rows()).sum();
    let (w2, h2) = levels.size(2);
    let at = layout.data_offset
        + tiles_below * layout.slot_bytes
        + w2.min(meta.tile) * h2.min(meta.tile) * dtype.size() as u64 / 2;
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::options().write(true).open(&vvp).expect("open vvp");
        f.write_all_at(&[0x7f; 16], at).expect("corrupt");
    }
    let out_npy = work.join("corrupt.npy");
    let out = vv(&cache, &["render", s(&data), "-o", s(&out_npy), "--size", "132x75", "-v"]);
    let err = stderr(&out);
    // Never trusted: the damaged file is named and deleted, and the render goes on from the data.
    ok(&out, "a render over a corrupt tile");
    assert!(err.contains(s(&vvp)) && err.contains("damaged") && err.contains("checksum"), "{err}");
    assert!(err.contains("deleted"), "{err}");
    assert!(err.contains("block means of the data"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(out_npy.exists(), "no output after the retry");
    assert!(!vvp.exists(), "the damaged pyramid was kept");
    // Statistics rebuild it.
    let j: Value = serde_json::from_str(&ok(&vv(&cache, &["stats", s(&data), "--json"]), "stats")).expect("json");
    assert_eq!(j["max"].as_f64(), Some(2.0e6));
    // A damaged statistics record of the top level (what `stats` reads): named, deleted, rebuilt.
    let vvp = current_vvp(&cache, &data);
    let top = levels.count - 1;
    let records_below: u64 = (0..top).map(|l| levels.grid(l).cols() * levels.grid(l).rows()).sum();
    let record = vastview::pyramid::tilestats::RECORD_BYTES as u64;
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::options().write(true).open(&vvp).expect("open vvp");
        f.write_all_at(&[1, 2], layout.stats_offset + records_below * record + 40).expect("corrupt stats");
    }
    let out = vv(&cache, &["stats", s(&data), "--json"]);
    let err = stderr(&out);
    let j: Value = serde_json::from_str(&ok(&out, "stats over a damaged record")).expect("json");
    assert!(err.contains(s(&vvp)) && err.contains("damaged") && err.contains("statistics"), "{err}");
    assert!(err.contains("deleted") && err.contains("building"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(j["max"].as_f64(), Some(2.0e6));
    let out = vv(&cache, &["render", s(&data), "-o", s(&out_npy), "--size", "132x75", "-v"]);
    ok(&out, "render after the rebuild");
    assert!(stderr(&out).contains("pyramid level 2)"), "{}", stderr(&out));
}

#[test]
fn cache_list_clear_and_size_cap() {
    let (dir, _) = oracle();
    let work = TempDir::new("cachecmd");
    let cache = work.join("cache");
    let (a, b, c, d) =
        (dir.join("stats_f32.npy"), dir.join("pyr_u16.npy"), dir.join("stats_stack.npy"), dir.join("pyr_f32.npy"));
    let canon = |p: &Path| std::fs::canonicalize(p).expect("canonicalize").display().to_string();
    ok(&vv(&cache, &["pyramid", s(&a), "-q"]), "a mean");
    ok(&vv(&cache, &["pyramid", s(&a), "--downsample", "max", "-q"]), "a max");
    ok(&vv(&cache, &["pyramid", s(&b), "-q"]), "b");
    let list = ok(&vv(&cache, &["cache", "list"]), "cache list");
    assert!(list.starts_with(&format!("cache: {}", s(&cache))), "{list}");
    assert!(list.contains("3 file(s)"), "{list}");
    for (p, method) in [(&a, "mean"), (&a, "max"), (&b, "mean")] {
        let want = format!("<- {} ({method}, ", canon(p));
        let line = list.lines().find(|l| l.contains(&want)).unwrap_or_else(|| panic!("{list}\nlacks {want}"));
        assert!(line.contains("complete") && line.contains(".vvp"), "{line}");
    }

    let out = ok(&vv(&cache, &["cache", "clear", s(&a)]), "clear a");
    assert!(out.contains("removed 2 cache file(s)"), "{out}");
    let files = vvp_files(&cache);
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].file_name().is_some_and(|n| n.to_string_lossy().starts_with("pyr_u16.npy-")), "{files:?}");
    let out = ok(&vv(&cache, &["cache", "clear"]), "clear all");
    assert!(out.contains("removed 1 cache file(s)"), "{out}");
    assert!(cache_files(&cache).is_empty(), "{:?}", cache_files(&cache));
    assert!(ok(&vv(&cache, &["cache", "list"]), "list").contains("0 file(s)"));

    // The cap evicts entries unused for a minute, never recent ones.
    ok(&vv(&cache, &["pyramid", s(&a), "-q"]), "a");
    ok(&vv(&cache, &["pyramid", s(&b), "-q"]), "b");
    let old = SystemTime::now() - Duration::from_secs(120);
    for f in vvp_files(&cache) {
        set_mtime(&f, old);
    }
    let tiny = [("VASTVIEW_CACHE_DIR", s(&cache)), ("VASTVIEW_CACHE_CAP_MB", "1")];
    ok(&vastview_env(&["pyramid", s(&c), "-q"], &tiny), "c under the cap");
    let files = cache_files(&cache);
    assert_eq!(files.len(), 1, "old entries not evicted: {files:?}");
    assert!(files[0].starts_with("stats_stack.npy-"), "{files:?}");
    ok(&vastview_env(&["pyramid", s(&d), "-q"], &tiny), "d under the cap");
    let files = cache_files(&cache);
    assert_eq!(files.len(), 2, "a recent entry was evicted (or the new one is missing): {files:?}");
    // An evicted pyramid is simply rebuilt.
    let out = vastview_env(&["pyramid", s(&a), "-q"], &[("VASTVIEW_CACHE_DIR", s(&cache))]);
    assert!(ok(&out, "a again").contains("built: "));
}

#[test]
fn preview_takes_the_centre_row_of_each_block_and_small_files_are_exact() {
    let (dir, m) = oracle();
    let cache = TempDir::new("preview");
    let cases = m["pyramid"]["preview"].as_array().expect("preview cases");
    for case in cases {
        let file = dir.join(case["file"].as_str().unwrap_or_default());
        let size = case["size"].as_str().unwrap_or_default();
        let out_npy = cache.join(&format!("preview_{size}.npy"));
        let out = vv(cache.path(), &["render", s(&file), "-o", s(&out_npy), "--size", size, "--preview", "-v"]);
        ok(&out, "render --preview");
        let err = stderr(&out);
        assert!(err.contains("PREVIEW") && err.contains("(preview: "), "{size}: {err}");
        assert_f32_npy(&out_npy);
        if let Some(d) = npy_differs(&out_npy, &dir.join(case["expected"].as_str().unwrap_or_default()), 0.0) {
            panic!("preview {size}: {d}");
        }
        for flags in [&[][..], &["--exact"][..]] {
            let mut args = vec!["render", s(&file), "-o", s(&out_npy), "--size", size, "-v"];
            args.extend(flags);
            let out = vv(cache.path(), &args);
            ok(&out, "render");
            let err = stderr(&out);
            assert!(err.contains("(block means of the data)") && !err.contains("PREVIEW"), "{size} {flags:?}: {err}");
            if let Some(d) = npy_differs(&out_npy, &dir.join(case["exact"].as_str().unwrap_or_default()), 0.0) {
                panic!("exact {size} {flags:?}: {d}");
            }
        }
    }
    assert!(cases.len() >= 3);
    assert!(vvp_files(cache.path()).is_empty(), "render built a pyramid: {:?}", cache_files(cache.path()));
}

#[test]
fn pyramid_and_stats_refuse_bad_input_in_one_line() {
    let (dir, _) = oracle();
    let cache = TempDir::new("bad");
    let missing = dir.join("pyr_missing.npy");
    let directory = dir.join("e_dir.npy");
    let f32 = dir.join("pyr_f32.npy");
    let rgb = dir.join("rgb.npy");
    let stack = dir.join("stats_stack.npy");
    let o = cache.join("never.npy");
    for (args, names, expect) in [
        (vec!["pyramid", s(&missing)], "pyr_missing.npy", "no such file"),
        (vec!["pyramid", s(&directory)], "e_dir.npy", "directory"),
        (vec!["pyramid", s(&f32), "--downsample", "median"], "pyr_f32.npy", "--downsample 'median'"),
        (vec!["render", s(&f32), "-o", s(&o), "--downsample", "median"], "pyr_f32.npy", "--downsample 'median'"),
        (vec!["stats", s(&missing)], "pyr_missing.npy", "no such file"),
        (vec!["stats", s(&rgb)], "rgb.npy", "scalar images, not RGB"),
        (vec!["stats", s(&stack), "--slice", "3"], "stats_stack.npy", "slice 3 is out of range"),
    ] {
        let out = vv(cache.path(), &args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: more than one line: {err}");
        assert!(err.contains(names), "{args:?}: does not name the file: {err}");
        assert!(err.to_lowercase().contains(&expect.to_lowercase()), "{args:?}: {err:?} lacks {expect:?}");
        assert!(stdout(&out).is_empty(), "{args:?}: {}", stdout(&out));
    }
    assert!(vvp_files(cache.path()).is_empty() && !o.exists());
}
