//! Hardening of the disk cache and the pyramid builder (issue 15): a first build killed with SIGKILL
//! resumes, extreme float64 values, an unusable cache directory, non-UTF-8 file names, two builders
//! of one file, a data file replaced under its old pyramid, and failed builds cleaned up.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::common::*;

/// A fresh, empty directory for one test; removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!("vastview-hc-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("create temp dir");
        TempDir(d)
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

/// A tmpfs mounted at a directory (unmounted when dropped), or None when mounting is not allowed here.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(dir: &Path, opts: &str) -> Option<Mount> {
        std::fs::create_dir_all(dir).expect("mount point");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", opts, "tmpfs"])
            .arg(dir)
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return Some(Mount(dir.to_path_buf()));
        }
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        assert!(!root, "running as root but `mount -t tmpfs -o {opts}` failed at {}", dir.display());
        eprintln!("not root and mount is not allowed: the tmpfs part of this test is skipped");
        None
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).output();
    }
}

/// `vastview ARGS` with its disk cache in `cache` and extra environment variables.
fn vv_in(cache: &Path, args: &[&OsStr], envs: &[(&str, &str)]) -> Output {
    let mut c = vastview_command(&[], envs);
    c.args(args).env("VASTVIEW_CACHE_DIR", cache);
    c.output().expect("run vastview")
}

fn vv(cache: &Path, args: &[&str]) -> Output {
    let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    vv_in(cache, &args, &[])
}

/// Asserts success; returns stdout.
fn ok(out: &Output, what: &str) -> String {
    assert!(out.status.success(), "{what}: exit {:?}: {}", out.status.code(), stderr(out));
    assert!(!stderr(out).contains("panicked"), "{what}: {}", stderr(out));
    stdout(out)
}

/// Asserts a one-line error with exit code 2; returns it.
fn user_error(out: &Output, what: &str) -> String {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(2), "{what}: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{what}: not one line: {err}");
    assert!(!err.contains("panicked"), "{what}: {err}");
    err
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Names of the files in the cache's pyramid directory.
fn pyramid_files(cache: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(cache.join("pyramids"))
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn vvp_files(cache: &Path) -> Vec<PathBuf> {
    pyramid_files(cache).iter().filter(|f| f.ends_with(".vvp")).map(|f| cache.join("pyramids").join(f)).collect()
}

/// Writes a 2-D little-endian .npy (`<f4` or `<f8`) of `h` rows of `w` values.
fn write_npy(p: &Path, descr: &str, w: u64, h: u64, vals: &[f64]) {
    assert_eq!(vals.len() as u64, w * h);
    let mut b = vastview::headless::npy_header(descr, &[h, w]);
    for &v in vals {
        match descr {
            "<f4" => b.extend_from_slice(&(v as f32).to_le_bytes()),
            _ => b.extend_from_slice(&v.to_le_bytes()),
        }
    }
    std::fs::write(p, b).expect("write npy");
}

/// numpy's statistics of the finite values of an .npy (count, nan, ±inf, min, max, mean, std).
fn numpy_stats(p: &Path) -> Value {
    let script = r#"
import json, sys, warnings
import numpy as np
warnings.simplefilter("ignore")
a = np.load(sys.argv[1]).astype(np.float64).ravel()
f = a[np.isfinite(a)]
num = lambda v: float(v) if np.isfinite(v) else None
print(json.dumps({"count": int(f.size), "nan": int(np.isnan(a).sum()), "pos_inf": int(np.isposinf(a).sum()),
    "neg_inf": int(np.isneginf(a).sum()), "min": num(f.min()), "max": num(f.max()), "mean": num(f.mean()),
    "std": num(f.std())}))
"#;
    let out = Command::new(python()).args(["-c", script]).arg(p).output().expect("run python3 with numpy");
    assert!(out.status.success(), "numpy: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("numpy json")
}

fn close(got: &Value, want: &Value, rtol: f64) -> bool {
    match (got.as_f64(), want.as_f64()) {
        (Some(g), Some(w)) => (g - w).abs() <= rtol * w.abs().max(1e-300),
        _ => false,
    }
}

fn stats_json(cache: &Path, file: &Path) -> (Value, String) {
    let out = vv(cache, &["stats", s(file), "--json", "-q"]);
    let text = ok(&out, "stats");
    (serde_json::from_str(&text).expect("stats json"), stderr(&out))
}

/// Defect 6: histogram limits whose shortest decimal form serde_json's default parser reads back one
/// ULP off (0 .. 0.01f32 gives lo = -0.00015624999650754035) made the first run's checkpoints
/// unusable: its rerun started again from the beginning.
#[test]
fn a_first_build_killed_after_its_first_checkpoint_resumes() {
    use std::os::unix::process::ExitStatusExt;
    let work = TempDir::new("kill");
    let data = work.join("ulp.npy");
    let (w, h) = (1024u64, 1024u64);
    // 0 and 0.01f32 in every row and column (whichever pixels the range sample takes).
    let vals: Vec<f64> = (0..w * h)
        .map(|i| match (i % w + i / w) % 3 {
            0 => 0.0,
            1 => f64::from(0.01f32),
            _ => f64::from(0.0001f32 + (i % 977) as f32 * 1e-5),
        })
        .collect();
    write_npy(&data, "<f4", w, h, &vals);
    let (killed, fresh, third) = (work.join("killed"), work.join("fresh"), work.join("third"));

    let out = vv_in(
        &killed,
        &[OsStr::new("pyramid"), data.as_os_str(), OsStr::new("-q")],
        &[("VASTVIEW_CHECKPOINT_MS", "0"), ("VASTVIEW_TEST_KILL_AT_CHECKPOINT", "1")],
    );
    assert_eq!(out.status.signal(), Some(9), "the first run was not killed: {}", stderr(&out));
    let left = pyramid_files(&killed);
    assert!(left.iter().any(|f| f.ends_with(".vvp.partial.resume")), "no checkpoint: {left:?}");

    let resumed = ok(&vv(&killed, &["pyramid", s(&data), "-q"]), "rerun");
    assert!(resumed.contains("resumed after"), "the rerun did not resume: {resumed}");
    let read_mb: f64 = resumed
        .split("\nread ")
        .nth(1)
        .and_then(|t| t.split(" MB").next())
        .and_then(|t| t.parse().ok())
        .expect("read MB");
    assert!(read_mb < (w * h * 4) as f64 / 1e6 * 0.9, "the rerun read everything again: {resumed}");
    ok(&vv(&fresh, &["pyramid", s(&data), "-q"]), "uninterrupted build");
    let (a, b) = (vvp_files(&killed), vvp_files(&fresh));
    assert_eq!((a.len(), b.len()), (1, 1), "{:?} {:?}", pyramid_files(&killed), pyramid_files(&fresh));
    assert_eq!(pyramid_files(&killed).len(), 1, "leftovers: {:?}", pyramid_files(&killed));
    assert!(std::fs::read(&a[0]).expect("a") == std::fs::read(&b[0]).expect("b"), "resumed file differs");

    // The building run's statistics equal later runs' (the header's limits read back exactly).
    let (building, err) = stats_json(&third, &data);
    assert!(err.is_empty() || !err.contains("damaged"), "{err}");
    let (later, err) = stats_json(&third, &data);
    assert!(!err.contains("building"), "{err}");
    assert_eq!(building, later, "stats of the building run differ from a later run");
    assert_eq!(stats_json(&killed, &data).0, later);
    let meta = vastview::pyramid::store::Store::read_meta(&a[0]).expect("meta");
    assert_eq!(meta.hist_lo, -f64::from(0.01f32) / 64.0, "histogram limit not read back exactly");
}

/// Defect 7: ±1e308 made the histogram limits ±inf, written as JSON null: the header never parsed, so
/// the pyramid was deleted and rebuilt on every use.
#[test]
fn extreme_float64_values_build_one_reusable_pyramid() {
    let work = TempDir::new("extreme");
    let cache = work.join("cache");
    let (w, h) = (300u64, 200u64);
    let special = [1e308, -1e308, f64::MAX, -f64::MAX, f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 5e-324, -5e-324];
    let mut vals: Vec<f64> = (0..w * h).map(|i| ((i % 1000) as f64 - 500.0) * 1e-3).collect();
    for (k, &v) in special.iter().enumerate() {
        for j in 0..20 {
            vals[(k * 6007 + j * 2999) % (w * h) as usize] = v;
        }
    }
    let data = work.join("extreme.npy");
    write_npy(&data, "<f8", w, h, &vals);
    let want = numpy_stats(&data);

    let (first, err) = stats_json(&cache, &data);
    assert!(!err.contains("damaged"), "{err}");
    for k in ["count", "nan", "pos_inf", "neg_inf", "min", "max"] {
        assert_eq!(first[k], want[k], "{k}: got {first}, numpy {want}");
    }
    // Sums of ±f64::MAX overflow: mean and std are not numbers (numpy: inf/nan), never a made-up 0.
    assert!(first["mean"].is_null() && first["std"].is_null(), "{first}");
    let pct = first["percentiles"].as_object().expect("percentiles");
    assert!(pct.values().all(|v| v.as_f64().is_some_and(f64::is_finite)), "{first}");
    let vvp = vvp_files(&cache);
    assert_eq!(vvp.len(), 1, "{:?}", pyramid_files(&cache));
    let meta = vastview::pyramid::store::Store::read_meta(&vvp[0]).expect("the header parses");
    assert!(meta.hist_lo.is_finite() && meta.hist_hi.is_finite() && (meta.hist_hi - meta.hist_lo).is_finite());
    let before = std::fs::read(&vvp[0]).expect("vvp");
    for _ in 0..2 {
        let out = vv(&cache, &["stats", s(&data), "--json"]);
        let again: Value = serde_json::from_str(&ok(&out, "stats again")).expect("json");
        assert!(!stderr(&out).contains("building") && !stderr(&out).contains("damaged"), "{}", stderr(&out));
        assert_eq!(again, first);
        let o = vv(&cache, &["render", s(&data), "-o", s(&work.join("r.npy")), "--size", "75x50", "-v"]);
        ok(&o, "render");
        assert!(stderr(&o).contains("pyramid level"), "{}", stderr(&o));
    }
    assert_eq!(vvp_files(&cache), vvp, "the pyramid was rebuilt");
    assert!(std::fs::read(&vvp[0]).expect("vvp") == before, "the pyramid file changed");

    // Denormals and ordinary values (no overflow anywhere): mean and std as numpy has them.
    let tiny: Vec<f64> = (0..w * h)
        .map(|i| match i % 7 {
            0 => 5e-324 * (i % 13) as f64,
            1 => -2.2250738585072014e-308,
            _ => (i % 101) as f64 * 0.37 - 10.0,
        })
        .collect();
    let data = work.join("tiny.npy");
    write_npy(&data, "<f8", w, h, &tiny);
    let want = numpy_stats(&data);
    let (got, _) = stats_json(&cache, &data);
    for k in ["count", "nan", "pos_inf", "neg_inf", "min", "max"] {
        assert_eq!(got[k], want[k], "{k}: got {got}, numpy {want}");
    }
    assert!(close(&got["mean"], &want["mean"], 1e-12) && close(&got["std"], &want["std"], 1e-12), "{got} {want}");
    assert_eq!(stats_json(&cache, &data).0, got);
}

/// A points file: n rows of (x, y) float64.
fn write_points(p: &Path, n: usize) {
    let vals: Vec<f64> = (0..n).flat_map(|i| [(i % 97) as f64, (i % 89) as f64 * 0.5]).collect();
    let mut b = vastview::headless::npy_header("<f8", &[n as u64, 2]);
    vals.iter().for_each(|v| b.extend_from_slice(&v.to_le_bytes()));
    std::fs::write(p, b).expect("write points");
}

/// Defect 9: a cache that cannot be written (read-only, a regular file, a file where its
/// sub-directory should be) stopped plain renders. Renders, stats and info go on without it with one
/// note; `pyramid` and `index`, which exist to fill it, fail in one line with exit code 2.
#[test]
fn an_unusable_cache_turns_caching_off() {
    let work = TempDir::new("rocache");
    let data = work.join("copy.npy");
    let (w, h) = (1200u64, 900u64);
    let vals: Vec<f64> = (0..w * h).map(|i| ((i * 7919) % 1000) as f64 * 0.5).collect();
    write_npy(&data, "<f4", w, h, &vals);
    let points = work.join("pts.npy");
    write_points(&points, 5000);
    let good = work.join("good");
    let want_render = work.join("want.npy");
    ok(&vv(&good, &["render", s(&data), "-o", s(&want_render), "--size", "1000x1000"]), "render, good cache");
    let (want_stats, _) = stats_json(&good, &data);

    let file_cache = work.join("cache-file");
    std::fs::write(&file_cache, b"not a directory").expect("file");
    let child_cache = work.join("child");
    std::fs::create_dir_all(&child_cache).expect("dir");
    std::fs::write(child_cache.join("pyramids"), b"x").expect("file");
    std::fs::write(child_cache.join("points-index"), b"x").expect("file");
    let ro = work.join("ro");
    let mount = Mount::tmpfs(&ro, "ro,size=1m");
    let mut caches = vec![file_cache.clone(), child_cache.clone()];
    if mount.is_some() {
        caches.push(ro.clone());
    }
    for cache in &caches {
        let what = cache.display().to_string();
        let got = work.join("got.npy");
        let out = vv(cache, &["render", s(&data), "-o", s(&got), "--size", "1000x1000"]);
        ok(&out, &what);
        let err = stderr(&out);
        assert_eq!(err.matches("caching is off").count(), 1, "{what}: {err}");
        assert!(std::fs::read(&got).expect("got") == std::fs::read(&want_render).expect("want"), "{what}");

        let out = vv(cache, &["stats", s(&data), "--json"]);
        let j: Value = serde_json::from_str(&ok(&out, &what)).expect("json");
        assert_eq!(stderr(&out).matches("caching is off").count(), 1, "{what}: {}", stderr(&out));
        for k in ["count", "nan", "min", "max"] {
            assert_eq!(j[k], want_stats[k], "{what}: {k}");
        }
        assert_eq!(j["histogram"], want_stats["histogram"], "{what}");
        assert!(close(&j["mean"], &want_stats["mean"], 1e-12) && close(&j["std"], &want_stats["std"], 1e-9));

        ok(&vv(cache, &["info", s(&data)]), &what);
        let err = user_error(&vv(cache, &["pyramid", s(&data)]), &what);
        assert!(err.contains("cannot store pyramids") && err.contains("VASTVIEW_CACHE_DIR"), "{what}: {err}");
        let err = user_error(&vv(cache, &["index", s(&points)]), &what);
        assert!(err.contains("cannot store point indexes"), "{what}: {err}");
        let out = vv(cache, &["info", s(&points), "--points"]);
        ok(&out, &what);
    }
    assert!(std::fs::read(&file_cache).expect("cache file") == b"not a directory", "the cache file was changed");
}

/// Defect 10: a data file whose name is not UTF-8.
#[test]
fn non_utf8_file_names_are_cached() {
    let work = TempDir::new("nonutf8");
    let cache = work.join("cache");
    let mut name = b"bad".to_vec();
    name.extend_from_slice(&[0xff, 0xfe]);
    name.extend_from_slice(b"name.npy");
    let data = work.0.join(OsString::from_vec(name));
    let (w, h) = (700u64, 600u64);
    let vals: Vec<f64> = (0..w * h).map(|i| (i % 251) as f64).collect();
    write_npy(&data, "<f4", w, h, &vals);
    let d = data.as_os_str();
    let built = ok(&vv_in(&cache, &[OsStr::new("pyramid"), d, OsStr::new("-q")], &[]), "pyramid");
    assert!(built.contains("built"), "{built}");
    let out = vv_in(&cache, &[OsStr::new("stats"), d, OsStr::new("--json")], &[]);
    let j: Value = serde_json::from_str(&ok(&out, "stats")).expect("json");
    assert!(!stderr(&out).contains("building") && !stderr(&out).contains("damaged"), "{}", stderr(&out));
    assert_eq!((j["count"].as_u64(), j["min"].as_f64(), j["max"].as_f64()), (Some(w * h), Some(0.0), Some(250.0)));
    let png = work.join("r.npy");
    let out = vv_in(&cache, &[OsStr::new("render"), d, OsStr::new("-o"), png.as_os_str(), OsStr::new("-v")], &[]);
    ok(&out, "render");
    let list = ok(&vv(&cache, &["cache", "list"]), "cache list");
    assert!(list.contains("name.npy (mean, ") && list.contains("1 file(s)"), "{list}");
    let vvp = vvp_files(&cache);
    let meta = vastview::pyramid::store::Store::read_meta(&vvp[0]).expect("meta");
    let canon = std::fs::canonicalize(&data).expect("canon");
    assert_eq!(meta.identity.path.as_os_str().as_bytes(), canon.as_os_str().as_bytes());
    let cleared = ok(&vv_in(&cache, &[OsStr::new("cache"), OsStr::new("clear"), d], &[]), "cache clear");
    assert!(cleared.contains("removed 1 cache file(s)"), "{cleared}");
}

/// The name the finished pyramid of `data` gets in `cache` (built once, then cleared).
fn pyramid_name(cache: &Path, data: &Path) -> PathBuf {
    ok(&vv(cache, &["pyramid", s(data), "-q"]), "pyramid");
    let v = vvp_files(cache);
    assert_eq!(v.len(), 1);
    ok(&vv(cache, &["cache", "clear"]), "cache clear");
    v[0].clone()
}

/// Defect 13: a second builder truncated the first one's partial file before it found the lock.
#[test]
fn a_second_builder_leaves_the_first_ones_file_alone() {
    use std::os::fd::AsRawFd;
    let work = TempDir::new("twice");
    let cache = work.join("cache");
    let data = work.join("d.npy");
    let (w, h) = (900u64, 800u64);
    let vals: Vec<f64> = (0..w * h).map(|i| (i % 509) as f64 * 0.25).collect();
    write_npy(&data, "<f4", w, h, &vals);
    let done = pyramid_name(&cache, &data);
    let partial = PathBuf::from(format!("{}.partial", done.display()));

    // Another builder holds the lock on its partial file.
    std::fs::write(&partial, b"another builder's bytes").expect("partial");
    let held = std::fs::File::options().read(true).write(true).open(&partial).expect("open partial");
    // SAFETY: flock on a descriptor this test owns.
    assert_eq!(unsafe { libc::flock(held.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) }, 0);
    let err = user_error(&vv(&cache, &["pyramid", s(&data), "-q"]), "second builder");
    assert!(err.contains("another vastview process is building"), "{err}");
    assert_eq!(std::fs::read(&partial).expect("partial"), b"another builder's bytes", "the partial file was touched");
    let out = vv(&cache, &["stats", s(&data), "-q"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    drop(held);
    ok(&vv(&cache, &["pyramid", s(&data), "-q"]), "build once the lock is free");

    // Two builders started together: one builds, the other waits for nothing and reports it; the
    // file is complete and used as it is.
    ok(&vv(&cache, &["cache", "clear"]), "cache clear");
    let spawn = || {
        vastview_command(&["pyramid", s(&data), "-q"], &[("VASTVIEW_CACHE_DIR", s(&cache))])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn")
    };
    let (a, b) = (spawn(), spawn());
    let outs = [a.wait_with_output().expect("a"), b.wait_with_output().expect("b")];
    assert!(outs.iter().any(|o| o.status.success()), "neither build succeeded");
    for o in &outs {
        assert!(o.status.success() || stderr(o).contains("another vastview process"), "{}", stderr(o));
    }
    let out = vv(&cache, &["stats", s(&data), "--json"]);
    ok(&out, "stats after two builders");
    assert!(!stderr(&out).contains("building") && !stderr(&out).contains("damaged"), "{}", stderr(&out));
    assert_eq!(pyramid_files(&cache), vec![done.file_name().expect("name").to_string_lossy().into_owned()]);
}

/// Defect 14: bytes past the first 64 KiB rewritten and the mtime restored with `touch -r`: the old
/// pyramid was used.
#[test]
fn a_rewritten_or_replaced_file_gets_a_new_pyramid() {
    let work = TempDir::new("replaced");
    let cache = work.join("cache");
    let data = work.join("d.npy");
    let ref_file = work.join("ref");
    let (w, h) = (512u64, 512u64);
    write_npy(&data, "<f4", w, h, &vec![0.5; (w * h) as usize]);
    let touch_r = |from: &Path, to: &Path| {
        let o = Command::new("touch").arg("-r").arg(from).arg(to).output().expect("touch");
        assert!(o.status.success(), "touch -r: {}", String::from_utf8_lossy(&o.stderr));
    };
    touch_r(&data, &ref_file);
    let mean = |cache: &Path| stats_json(cache, &data).0["mean"].as_f64().expect("mean");
    assert_eq!(mean(&cache), 0.5);

    // In place: every value past the first 64 KiB becomes 10, the mtime is put back.
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::options().write(true).open(&data).expect("open");
        let at = 64 << 10;
        let n = (std::fs::metadata(&data).expect("len").len() - at) / 4;
        f.write_all_at(&vec![10.0f32; n as usize].iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>(), at)
            .expect("rewrite");
    }
    touch_r(&ref_file, &data);
    let want = numpy_stats(&data);
    let (j, err) = stats_json(&cache, &data);
    assert!(close(&j["mean"], &want["mean"], 1e-12), "old pyramid used after an in-place rewrite: {j} {err}");

    // A new file moved over it, mtime put back.
    let new = work.join("new.npy");
    let vals: Vec<f64> = (0..w * h).map(|i| if i < 20_000 { 0.5 } else { 3.0 }).collect();
    write_npy(&new, "<f4", w, h, &vals);
    touch_r(&ref_file, &new);
    std::fs::rename(&new, &data).expect("mv");
    let want = numpy_stats(&data);
    let (j, _) = stats_json(&cache, &data);
    assert!(close(&j["mean"], &want["mean"], 1e-12), "old pyramid used after a move: {j} {want}");
    let (again, err) = stats_json(&cache, &data);
    assert!(!err.contains("building"), "{err}");
    assert_eq!(again, j);
}

/// Defect 16: a build failing with "disk full" left its partial file filling the cache.
#[test]
fn a_build_that_runs_out_of_disk_leaves_nothing_behind() {
    let work = TempDir::new("full");
    let cache = work.join("small");
    let Some(_mount) = Mount::tmpfs(&cache, "size=2m") else { return };
    let data = work.join("big.npy");
    let (w, h) = (2048u64, 2048u64);
    let vals: Vec<f64> = (0..w * h).map(|i| (i % 1013) as f64).collect();
    write_npy(&data, "<f4", w, h, &vals);
    let out = vv(&cache, &["pyramid", s(&data), "-q"]);
    let err = user_error(&out, "pyramid on a full disk");
    assert!(err.contains("No space left"), "{err}");
    assert!(pyramid_files(&cache).is_empty(), "left behind: {:?}", pyramid_files(&cache));
    let out = vv(&cache, &["stats", s(&data), "-q"]);
    assert!(!out.status.success());
    assert!(pyramid_files(&cache).is_empty(), "left behind: {:?}", pyramid_files(&cache));
    // A render still works (no pyramid needed).
    ok(&vv(&cache, &["render", s(&data), "-o", s(&work.join("r.npy")), "--size", "64x64"]), "render");
}
