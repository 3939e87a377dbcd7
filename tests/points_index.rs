//! `vastview index` and `render --points` through the index: grids equal to the numpy oracle's and to
//! the full scan's (bit for bit for count/min/max), a build killed with SIGKILL resumes into the same
//! bytes, damaged and stale index files are not trusted, `cache list|clear`, bad inputs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::common::*;
use crate::points::{oracle_points, same_npy};

fn s(p: &Path) -> String {
    p.to_str().unwrap_or_default().to_string()
}

/// `vastview ARGS…` with its cache in `cache`.
fn vv_in(cache: &Path, args: &[String]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vastview"))
        .args(args)
        .env("VASTVIEW_CACHE_DIR", cache)
        .output()
        .expect("run vastview")
}

fn ok(out: &Output, what: &str) -> (String, String) {
    assert!(out.status.success(), "{what}: exit {:?}: {}", out.status.code(), stderr(out));
    (stdout(out), stderr(out))
}

/// The flags of a render case that describe how the file is read (what `index` takes).
fn spec_flags(args: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--points" => out.push(a.clone()),
            "--dtype" | "--columns" | "--offset" | "--x" | "--y" | "--value" | "--endian" => {
                out.push(a.clone());
                out.extend(it.next().cloned());
            }
            _ => {}
        }
    }
    out
}

/// Files of the index kind in `cache`.
fn index_files(cache: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(cache.join("points-index"))
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn indexed_renders_equal_the_oracle_and_the_full_scan() {
    let (dir, m) = oracle_points();
    let (ixc, scanc) = (dir.join("cache-index"), dir.join("cache-scan"));
    let cases = m["npy"].as_array().expect("npy cases");
    let mut failures = Vec::new();
    for case in cases {
        let name = case["name"].as_str().unwrap_or_default();
        let file = s(&dir.join(case["file"].as_str().unwrap_or_default()));
        let args = strs(&case["args"]);
        let mut index = vec!["index".to_string(), file.clone(), "-q".into()];
        index.extend(spec_flags(&args));
        let (out, _) = ok(&vv_in(&ixc, &index), name);
        assert!(out.contains("point index of") && out.contains(".vvi"), "{name}: {out}");
        let (a, b) = (dir.join(format!("ix_{name}.npy")), dir.join(format!("scan_{name}.npy")));
        for (cache, npy) in [(&ixc, &a), (&scanc, &b)] {
            let mut r = vec!["render".to_string(), file.clone(), "-o".into(), s(npy), "-v".into()];
            r.extend(args.iter().cloned());
            let (_, err) = ok(&vv_in(cache, &r), name);
            assert_eq!(err.contains("index: none"), cache == &scanc, "{name}: {err}");
        }
        // In strips of a few rows (each strip reading only its cell rows of the index): the same grid.
        let strips = dir.join(format!("ixstrips_{name}.npy"));
        let mut r = vec!["render".to_string(), file.clone(), "-o".into(), s(&strips), "-v".into()];
        r.extend(args.iter().cloned());
        let out = Command::new(env!("CARGO_BIN_EXE_vastview"))
            .args(&r)
            .env("VASTVIEW_CACHE_DIR", &ixc)
            .env("VASTVIEW_POINT_STRIP_PX", "300")
            .output()
            .expect("run vastview");
        let (_, err) = ok(&out, name);
        assert!(
            err.contains("in strips of") && !err.contains("index: none") && !err.contains("no spatial index"),
            "{name}: {err}"
        );
        let want = dir.join(case["expected"].as_str().unwrap_or_default());
        for got in [&a, &strips] {
            if let Err(e) = same_npy(got, &want, case["rtol"].as_f64().unwrap_or(0.0)) {
                failures.push(format!("{name} ({}) vs oracle: {e}", got.display()));
            }
        }
        if std::fs::read(&a).ok() != std::fs::read(&strips).ok() {
            failures.push(format!("{name}: the grid rendered in strips differs from the one-grid render"));
        }
        let exact = !name.starts_with("sum") && !name.starts_with("mean") && !name.starts_with("nanval");
        let (ba, bb) = (std::fs::read(&a).expect("index npy"), std::fs::read(&b).expect("scan npy"));
        if exact && ba != bb {
            failures.push(format!("{name}: the indexed grid differs from the full scan's"));
        } else if let Err(e) = same_npy(&a, &b, 1e-12) {
            failures.push(format!("{name} vs scan: {e}"));
        }
    }
    assert!(cases.len() >= 14);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // One index per reading of a file: every case's file and columns, no partial leftovers.
    let files = index_files(&ixc);
    assert!(files.len() >= 8 && files.iter().all(|f| f.ends_with(".vvi")), "{files:?}");
    // `index` again finds it.
    let again = vv_in(&ixc, &["index".into(), s(&dir.join("xyz_f32.npy"))]);
    assert!(ok(&again, "again").0.contains("already built"), "{}", stdout(&again));
}

/// 8,000,000 x, y float32 records (64 MB): enough chunks for pass 2 to checkpoint between rounds.
fn write_xy(p: &Path) {
    let mut b = Vec::with_capacity(64_000_000);
    let mut z = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..16_000_000 {
        z ^= z << 13;
        z ^= z >> 7;
        z ^= z << 17;
        b.extend_from_slice(&(((z >> 40) as f32) / 16_777_216.0 * 100.0).to_le_bytes());
    }
    std::fs::write(p, b).expect("write points");
}

/// Runs `vastview index` with a checkpoint at every round and SIGKILLs it once a checkpoint exists
/// (a build may finish first: then it tries again).
fn kill_mid_build(args: &[String], cache: &Path) {
    use std::os::unix::process::ExitStatusExt;
    for _attempt in 0..8 {
        let _ = std::fs::remove_dir_all(cache);
        let mut child = Command::new(env!("CARGO_BIN_EXE_vastview"))
            .args(args)
            .env("VASTVIEW_CACHE_DIR", cache)
            .env("VASTVIEW_CHECKPOINT_MS", "0")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn vastview index");
        let t0 = Instant::now();
        let has_resume = || index_files(cache).iter().any(|f| f.ends_with(".vvi.partial.resume"));
        while !has_resume() && t0.elapsed() < Duration::from_secs(60) {
            if child.try_wait().ok().flatten().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        child.kill().ok();
        if child.wait().expect("wait").signal() == Some(9) && has_resume() {
            return;
        }
    }
    panic!("every build finished before it could be killed");
}

#[test]
fn an_index_build_killed_with_sigkill_resumes_into_the_same_file() {
    let work = std::env::temp_dir().join(format!("vastview-pindex-kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).expect("mkdir");
    let data = work.join("xy.bin");
    write_xy(&data);
    let args: Vec<String> =
        ["index", &s(&data), "--points", "--dtype", "f32", "--columns", "2", "-q"].map(String::from).into();
    let (killed, fresh) = (work.join("killed"), work.join("fresh"));
    kill_mid_build(&args, &killed);
    let left = index_files(&killed);
    assert!(left.iter().any(|f| f.ends_with(".vvi.partial")) && !left.iter().any(|f| f.ends_with(".vvi")), "{left:?}");
    let list = ok(&vv_in(&killed, &["cache".into(), "list".into()]), "cache list").0;
    assert!(list.contains("partial") && list.contains("point index"), "{list}");
    let (resumed, _) = ok(&vv_in(&killed, &args), "resume");
    assert!(resumed.contains("resumed after") && resumed.contains("built: "), "{resumed}");
    let (built, _) = ok(&vv_in(&fresh, &args), "fresh");
    assert!(!built.contains("resumed"), "{built}");
    let (a, b) = (index_files(&killed), index_files(&fresh));
    assert_eq!((a.len(), b.len()), (1, 1), "{a:?} {b:?}");
    let bytes = |c: &Path, f: &str| std::fs::read(c.join("points-index").join(f)).expect("read index");
    assert!(bytes(&killed, &a[0]) == bytes(&fresh, &b[0]), "the resumed index differs from a fresh one");
    // And it answers: the whole extent's counts add up to every point.
    let out = work.join("all.npy");
    let r: Vec<String> =
        ["render", &s(&data), "--points", "--dtype", "f32", "--columns", "2", "--size", "64x64", "-o", &s(&out), "-v"]
            .map(String::from)
            .into();
    let (_, err) = ok(&vv_in(&killed, &r), "render");
    assert!(err.contains("index: ") && !err.contains("index: none"), "{err}");
    let (_, v) = read_npy(&out);
    assert_eq!(v.iter().sum::<f64>(), 8_000_000.0);
    let _ = std::fs::remove_dir_all(&work);
}

#[test]
fn damaged_and_stale_indexes_are_not_used_and_cache_commands_see_them() {
    use std::os::unix::fs::FileExt;
    let (dir, m) = oracle_points();
    let case = m["npy"].as_array().and_then(|c| c.iter().find(|c| c["name"] == "count_xyz_f32_bin")).expect("case");
    let work: PathBuf = dir.join("damage");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).expect("mkdir");
    let data = work.join("copy.bin");
    std::fs::copy(dir.join("xyz_f32.bin"), &data).expect("copy");
    let cache = work.join("cache");
    let want = dir.join(case["expected"].as_str().unwrap_or_default());
    let args = strs(&case["args"]);
    let mut index = vec!["index".to_string(), s(&data)];
    index.extend(spec_flags(&args));
    let render = |out: &Path| {
        let mut r = vec!["render".to_string(), s(&data), "-o".into(), s(out), "-v".into()];
        r.extend(args.iter().cloned());
        ok(&vv_in(&cache, &r), "render").1
    };
    let ix_path = || {
        let f = index_files(&cache);
        assert_eq!(f.len(), 1, "{f:?}");
        cache.join("points-index").join(&f[0])
    };
    let (built, _) = ok(&vv_in(&cache, &index), "index");
    assert!(built.contains("built: ") && built.contains("M points/s"), "{built}");
    let list = ok(&vv_in(&cache, &["cache".into(), "list".into()]), "list").0;
    assert!(list.contains("point index, 50000 points") && list.contains("complete"), "{list}");
    let mut info = vec!["info".to_string(), s(&data)];
    info.extend(spec_flags(&args));
    let text = ok(&vv_in(&cache, &info), "info").0;
    assert!(text.contains(&format!("index:        {}", s(&ix_path()))), "{text}");
    info.push("--json".into());
    let v: serde_json::Value = serde_json::from_str(&ok(&vv_in(&cache, &info), "info json").0).expect("json");
    assert_eq!(v["index"], s(&ix_path()).as_str());
    // Damage: truncated, then a flipped byte in the cell offsets.
    type Damage = Box<dyn Fn(&Path)>;
    let damages: [(&str, Damage); 3] = [
        (
            "truncated",
            Box::new(|p: &Path| std::fs::File::options().write(true).open(p).unwrap().set_len(9000).unwrap()),
        ),
        (
            "flipped",
            Box::new(|p: &Path| {
                let f = std::fs::File::options().read(true).write(true).open(p).unwrap();
                let mut b = [0u8; 1];
                f.read_exact_at(&mut b, 4096 + 8 * 3 + 2).unwrap();
                f.write_all_at(&[b[0] ^ 0x10], 4096 + 8 * 3 + 2).unwrap();
            }),
        ),
        (
            "points",
            Box::new(|p: &Path| {
                let f = std::fs::File::options().read(true).write(true).open(p).unwrap();
                // A bit of one point in each sixteenth of the file (past the tables): some in cells the region
                // reads (a damaged cell the region does not read is not noticed by it).
                let len = f.metadata().unwrap().len();
                for k in 2..16 {
                    let at = len * k / 16;
                    let mut b = [0u8; 1];
                    f.read_exact_at(&mut b, at).unwrap();
                    f.write_all_at(&[b[0] ^ 0x01], at).unwrap();
                }
            }),
        ),
    ];
    for (what, damage) in damages {
        damage(&ix_path());
        let out = work.join(format!("{what}.npy"));
        let err = render(&out);
        assert!(err.contains("damaged cache file") && err.contains("index: none"), "{what}: {err}");
        same_npy(&out, &want, 0.0).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(index_files(&cache).is_empty(), "{what}: the damaged file is still there");
        let (rebuilt, _) = ok(&vv_in(&cache, &index), "rebuild");
        assert!(rebuilt.contains("built: "), "{what}: {rebuilt}");
        let err = render(&out);
        assert!(!err.contains("index: none"), "{what}: {err}");
        same_npy(&out, &want, 0.0).unwrap_or_else(|e| panic!("{what} rebuilt: {e}"));
    }
    // Stale: the data file changes (one value, so its size stays): the old index is not used.
    {
        let f = std::fs::File::options().write(true).open(&data).expect("open data");
        f.write_all_at(&1000.0f32.to_le_bytes(), 8).expect("poke");
    }
    let err = render(&work.join("stale.npy"));
    assert!(err.contains("index: none"), "{err}");
    let text = ok(&vv_in(&cache, &info[..info.len() - 1]), "info").0;
    assert!(text.contains("index:        none"), "{text}");
    // cache clear FILE removes the file's index.
    let (cleared, _) = ok(&vv_in(&cache, &["cache".into(), "clear".into(), s(&data)]), "clear");
    assert!(cleared.contains("removed"), "{cleared}");
    assert!(index_files(&cache).is_empty(), "{:?}", index_files(&cache));
}

#[test]
fn bad_inputs_to_index_exit_2_with_one_line_naming_the_file() {
    let (dir, m) = oracle_points();
    let cache = dir.join("cache-index-bad");
    let mut n = 0;
    for case in m["errors"].as_array().expect("errors") {
        let args = strs(&case["args"]);
        if args.iter().any(|a| ["--agg", "--region", "--scale", "--size"].contains(&a.as_str())) {
            continue; // render flags
        }
        let file = case["file"].as_str().unwrap_or_default();
        let mut a = vec!["index".to_string(), s(&dir.join(file)), "--points".into()];
        a.extend(args);
        let out = vv_in(&cache, &a);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{file}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{file}: {err}");
        assert!(err.contains(file), "{file}: {err}");
        let want = case["want"].as_str().unwrap_or_default();
        assert!(err.contains(want), "{file}: expected '{want}' in {err}");
        n += 1;
    }
    assert!(n >= 7, "{n} cases");
    assert!(index_files(&cache).iter().all(|f| !f.ends_with(".vvi")));
}
