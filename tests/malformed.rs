//! The malformed-input corpus (tests/corpus/bad/, written by tests/corpus/make_bad.py, plus files made at
//! test time: truncations of a good .npy at many offsets, a raw file of the wrong size, a directory, a
//! FIFO): every command (info, probe, stats, render, render --points, info --points, index) on every file
//! must print one line on stderr naming the file, exit with code 2, never panic, and leave the file's
//! bytes and mtime as they were. Cases that still fail because of a defect being fixed elsewhere are
//! marked `// pending defect N`: they run, are listed in the output, and do not fail the test.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use crate::common::vastview_command;

/// A command never needs this long on these tiny files; past it the run counts as a hang.
const HANG: Duration = Duration::from_secs(20);
/// The bound for cases known to hang until their defect is fixed (so they cost little).
const HANG_PENDING: Duration = Duration::from_secs(3);

struct Case {
    file: PathBuf,
    args: Vec<String>,
    /// The defect whose fix this case waits for (it runs, but only its result is listed).
    pending: Option<u32>,
}

/// What a file looked like: its bytes (not for FIFOs, which cannot be read without a writer) and mtime.
fn snapshot(p: &Path) -> (Option<Vec<u8>>, Option<SystemTime>) {
    let meta = std::fs::symlink_metadata(p).ok();
    let bytes = meta.as_ref().filter(|m| m.is_file()).and_then(|_| std::fs::read(p).ok());
    (bytes, meta.and_then(|m| m.modified().ok()))
}

/// Runs one case; `Err` says what was wrong.
fn run(case: &Case, cache: &Path, out_dir: &Path) -> Result<(), String> {
    let before = snapshot(&case.file);
    let args: Vec<&str> = case.args.iter().map(String::as_str).collect();
    let mut child = vastview_command(&args, &[("VASTVIEW_CACHE_DIR", cache.to_str().unwrap())])
        .current_dir(out_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn: {e}"))?;
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().map_err(|e| e.to_string())? {
            break s;
        }
        let limit = if case.pending.is_some() { HANG_PENDING } else { HANG };
        if t0.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("no exit within {} s (hang)", limit.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let name = case.file.file_name().unwrap().to_string_lossy().into_owned();
    let mut wrong = Vec::new();
    if stderr.contains("panicked") {
        wrong.push("panicked".to_string());
    }
    if status.code() != Some(2) {
        wrong.push(format!("exit {status}, not 2"));
    }
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.len() != 1 {
        wrong.push(format!("{} stderr lines, not 1", lines.len()));
    }
    if !lines.iter().any(|l| l.contains(&name)) {
        wrong.push("stderr does not name the file".into());
    }
    if snapshot(&case.file) != before {
        wrong.push("the data file changed (bytes or mtime)".into());
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(format!("{}; stderr: {:?}", wrong.join(", "), stderr.chars().take(300).collect::<String>()))
    }
}

/// The commands run on every file (`F` = the file, `O` = an output PNG).
const IMAGE: [&[&str]; 5] = [
    &["info", "F"],
    &["info", "--json", "F"],
    &["probe", "F", "0", "0"],
    &["stats", "F"],
    &["render", "F", "-o", "O", "--size", "8x8"],
];
const POINTS: [&[&str]; 3] = [&["info", "F", "--points"], &["render", "F", "--points", "-o", "O"], &["index", "F"]];
const RAW: [&str; 4] = ["--dtype", "f32", "--shape", "4x4"];

fn cases_for(file: &Path, out: &Path, image: bool, raw: bool, points: bool, pending: Option<u32>) -> Vec<Case> {
    let f = file.to_str().unwrap().to_string();
    let o = out.join(format!("{}.png", file.file_name().unwrap().to_string_lossy())).to_str().unwrap().to_string();
    let mut v = Vec::new();
    let mut add = |cmd: &[&str], extra: &[&str]| {
        let mut args: Vec<String> = cmd
            .iter()
            .map(|a| {
                if *a == "F" {
                    f.clone()
                } else if *a == "O" {
                    o.clone()
                } else {
                    a.to_string()
                }
            })
            .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        v.push(Case { file: file.to_path_buf(), args, pending });
    };
    for c in IMAGE.iter().filter(|_| image) {
        add(c, &[]);
        if raw {
            add(c, &RAW);
        }
    }
    if points {
        for c in POINTS {
            add(c, &[]);
        }
    }
    v
}

/// A good 8 x 8 float32 .npy (128-byte header).
fn good_npy() -> Vec<u8> {
    crate::fuzz::targets::npy_f32(&[8, 8], |i| i as f32)
}

#[test]
fn malformed_inputs_get_one_line_exit_2_and_stay_untouched() {
    let root = std::env::temp_dir().join(format!("vastview-malformed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let (work, out, cache) = (root.join("files"), root.join("out"), root.join("cache"));
    for d in [&work, &out, &cache] {
        std::fs::create_dir_all(d).unwrap();
    }
    // The kept corpus, copied so that a test run can never touch the repo's files.
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/bad");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&corpus).unwrap().map(|e| e.unwrap().path()).collect();
    names.sort();
    let mut cases = Vec::new();
    for p in &names {
        let dst = work.join(p.file_name().unwrap());
        std::fs::copy(p, &dst).unwrap();
        // `points_*` files are bad only as point sets (points_int.npy is a fine int32 image).
        let name = dst.file_name().unwrap().to_string_lossy().into_owned();
        cases.extend(cases_for(&dst, &out, !name.starts_with("points_"), name.starts_with("raw_"), true, None));
    }
    assert!(names.len() >= 36, "the bad corpus is missing: {}", corpus.display());
    // A good file truncated at many offsets: inside the magic, the preamble, the header, the data.
    let good = good_npy();
    for at in [1, 3, 6, 7, 8, 9, 10, 11, 30, 64, 100, 127, 128, 129, 160, 255, good.len() - 1] {
        let p = work.join(format!("truncated_at_{at:03}.npy"));
        std::fs::write(&p, &good[..at]).unwrap();
        cases.extend(cases_for(&p, &out, true, false, true, None));
    }
    // A raw file whose size does not match the layout, and an offset past its end.
    let p = work.join("raw_mismatch.bin");
    std::fs::write(&p, vec![0u8; 65]).unwrap();
    cases.extend(cases_for(&p, &out, true, true, false, None));
    let f = p.to_str().unwrap().to_string();
    for extra in [["--offset", "1000"], ["--order", "Q"]] {
        let mut args: Vec<String> =
            ["info", &f, "--dtype", "u8", "--shape", "8x8"].iter().map(|s| s.to_string()).collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        cases.push(Case { file: p.clone(), args, pending: None });
    }
    // A directory.
    let d = work.join("a_directory.npy");
    std::fs::create_dir_all(&d).unwrap();
    cases.extend(cases_for(&d, &out, true, true, true, None));
    // A FIFO: opening it for a blocking read hangs today.
    let fifo = work.join("a_fifo.npy");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo reads the NUL-terminated path we pass.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
    let ff = fifo.to_str().unwrap().to_string();
    let o = out.join("fifo.png").to_str().unwrap().to_string();
    for args in [
        vec!["info", &ff],
        vec!["probe", &ff, "0", "0"],
        vec!["render", &ff, "-o", &o],
        vec!["info", &ff, "--dtype", "u8", "--shape", "1x1"],
        vec!["info", &ff, "--points"],
    ] {
        let args = args.iter().map(|s| s.to_string()).collect();
        cases.push(Case { file: fifo.clone(), args, pending: None }); // defect 4, fixed: a FIFO is refused, never opened for a blocking read
    }

    let mut failures = Vec::new();
    let mut pending_report = Vec::new();
    for case in &cases {
        let r = run(case, &cache, &out);
        let what = case.args.join(" ");
        match (r, case.pending) {
            (Ok(()), None) => {}
            (Err(e), None) => failures.push(format!("{what}: {e}")),
            (Err(e), Some(n)) => pending_report.push(format!("pending defect {n}: {what}: {e}")),
            (Ok(()), Some(n)) => pending_report.push(format!("pending defect {n} now passes, enable it: {what}")),
        }
    }
    println!("{} malformed-input cases, {} failed, {} pending", cases.len(), failures.len(), pending_report.len());
    for p in &pending_report {
        println!("{p}");
    }
    let _ = std::fs::remove_dir_all(&root);
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}
