//! Fuzzing in CI: every fuzz target (`targets.rs`, one per parser of untrusted bytes) runs a short
//! bounded campaign (3000 inputs or 5 s each, whichever comes first) in a child process with a 4 GiB
//! address-space limit; any panic, hang (an input over 2 s) or failed allocation fails the test. Long
//! campaigns: `cargo run --release --example fuzz -- all --execs 1000000` (see FUZZING.md).

pub mod engine;
pub mod targets;

use std::process::Command;
use std::time::Duration;

/// Set in the child process that runs [`campaign`].
const CHILD: &str = "VASTVIEW_FUZZ_CHILD";

#[test]
fn every_parser_survives_a_short_fuzz_run() {
    let exe = std::env::current_exe().expect("test binary");
    let out = Command::new(exe)
        .args(["fuzz::campaign", "--exact", "--ignored", "--nocapture", "--test-threads", "1"])
        .env(CHILD, "1")
        .output()
        .expect("run the fuzz campaign child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: String =
        stderr.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
    println!("{stdout}");
    assert!(out.status.success(), "fuzz campaign failed ({}):\n{stdout}\n--- stderr (tail) ---\n{tail}", out.status);
    let clean = format!("fuzz: all {} targets clean", targets::ALL.len());
    assert!(stdout.contains(&clean), "no '{clean}' line:\n{stdout}");
}

/// The campaign itself, run only as the child of [`every_parser_survives_a_short_fuzz_run`] (it sets the
/// process-wide cache directory and address-space limit). `VASTVIEW_FUZZ_EXECS`, `VASTVIEW_FUZZ_SECS`
/// override the bounds.
#[test]
#[ignore = "run in a child process by every_parser_survives_a_short_fuzz_run"]
fn campaign() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let env = |k: &str, d: u64| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
    let dir = engine::scratch_dir("ci");
    targets::set_up_cache_dir(&dir);
    engine::limit_address_space(4 << 30).expect("setrlimit");
    let mut opts =
        engine::Options::new(env("VASTVIEW_FUZZ_EXECS", 3000), Duration::from_secs(env("VASTVIEW_FUZZ_SECS", 5)));
    opts.crash_dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-crashes");
    let mut failed = Vec::new();
    for name in targets::ALL {
        let mut t = targets::make(name, &dir).expect("target");
        let s = engine::fuzz(t.as_mut(), &opts);
        println!(
            "fuzz {name}: {} execs in {:.1} s ({:.0}/s), {} ok, {} crashes, corpus {} ({} seeds), {} outcome classes, peak RSS {} MiB",
            s.execs,
            s.secs,
            s.execs_per_sec(),
            s.ok,
            s.crashes,
            s.corpus,
            s.seeds,
            s.classes,
            engine::peak_rss_kib() / 1024
        );
        if s.crashes > 0 {
            failed.push(format!("{name}: {} crashes, first: {:?}, saved {:?}", s.crashes, s.first_crash, s.saved));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    if !targets::DESCR_ROUND_TRIP {
        println!(
            "pending defect 5: the raw target's dtype descr round-trip property is off (targets::DESCR_ROUND_TRIP)"
        );
    }
    assert!(failed.is_empty(), "fuzz crashes:\n{}", failed.join("\n"));
    println!("fuzz: all {} targets clean", targets::ALL.len());
}
