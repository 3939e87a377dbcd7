//! Long fuzz campaigns on the stable toolchain (the engine and targets of `tests/fuzz/`):
//! `cargo run --release --example fuzz -- TARGET|all [--execs N] [--secs S] [--seed K] [--mem-mb M]
//! [--hang-secs H] [--keep-stderr]`. Crashes and hangs are saved under `fuzz/crashes/TARGET/`; prints
//! executions, executions per second, crashes, peak heap and peak RSS per target; exit 1 on a crash.

#[path = "../tests/fuzz/engine.rs"]
mod engine;
#[path = "../tests/fuzz/targets.rs"]
mod targets;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// The system allocator, counting live and peak heap bytes and noting the input that ran out of memory.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the counters are only statistics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        let p = unsafe { System.alloc(l) };
        grew(p, l.size());
        p
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        let p = unsafe { System.alloc_zeroed(l) };
        grew(p, l.size());
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        // SAFETY: `p` was allocated by `System` with layout `l`.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        // SAFETY: `p` was allocated by `System` with layout `l`; forwarded unchanged.
        let q = unsafe { System.realloc(p, l, new) };
        if q.is_null() {
            engine::note_out_of_memory(new);
        } else {
            LIVE.fetch_sub(l.size(), Ordering::Relaxed);
            grew(q, new);
        }
        q
    }
}

fn grew(p: *mut u8, size: usize) {
    if p.is_null() {
        engine::note_out_of_memory(size);
    } else {
        let now = LIVE.fetch_add(size, Ordering::Relaxed) + size;
        PEAK.fetch_max(now, Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut which = None;
    let (mut execs, mut secs, mut seed, mut mem_mb, mut hang, mut keep_stderr) =
        (1_000_000u64, 3600u64, 1u64, 2048u64, 2u64, false);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut num = |name: &str| -> u64 {
            it.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
                eprintln!("fuzz: {name} needs a number");
                std::process::exit(2)
            })
        };
        match a.as_str() {
            "--execs" => execs = num("--execs"),
            "--secs" => secs = num("--secs"),
            "--seed" => seed = num("--seed"),
            "--mem-mb" => mem_mb = num("--mem-mb"),
            "--hang-secs" => hang = num("--hang-secs"),
            "--keep-stderr" => keep_stderr = true,
            t if !t.starts_with('-') && which.is_none() => which = Some(t.to_string()),
            _ => {
                eprintln!(
                    "usage: fuzz TARGET|all [--execs N] [--secs S] [--seed K] [--mem-mb M] [--hang-secs H] [--keep-stderr]\ntargets: {}",
                    targets::ALL.join(", ")
                );
                std::process::exit(2);
            }
        }
    }
    let which = which.unwrap_or_else(|| "all".into());
    let names: Vec<&str> = if which == "all" { targets::ALL.to_vec() } else { vec![which.as_str()] };
    let dir = engine::scratch_dir("campaign");
    targets::set_up_cache_dir(&dir);
    if let Err(e) = engine::limit_address_space(mem_mb << 20) {
        eprintln!("fuzz: cannot limit the address space: {e}");
    }
    if !keep_stderr {
        // The library's notes (conversions, deleted caches) would be millions of lines.
        if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
            use std::os::fd::AsRawFd;
            // SAFETY: dup2 of two descriptors we hold; stderr is replaced for the rest of the run.
            unsafe { libc::dup2(null.as_raw_fd(), 2) };
        }
    }
    let mut opts = engine::Options::new(execs, Duration::from_secs(secs));
    opts.seed = seed;
    opts.hang_after = Duration::from_secs(hang);
    let mut crashes = 0;
    for name in names {
        let Some(mut t) = targets::make(name, &dir) else {
            println!("fuzz: no target '{name}' (targets: {})", targets::ALL.join(", "));
            std::process::exit(2);
        };
        PEAK.store(LIVE.load(Ordering::Relaxed), Ordering::Relaxed);
        let s = engine::fuzz(t.as_mut(), &opts);
        crashes += s.crashes;
        println!(
            "fuzz {name}: {} execs in {:.1} s ({:.0} execs/s), {} crashes, 0 hangs, {} ok, corpus {} ({} seeds), {} outcome classes, peak heap {:.1} MiB, peak RSS {:.1} MiB",
            s.execs,
            s.secs,
            s.execs_per_sec(),
            s.crashes,
            s.ok,
            s.corpus,
            s.seeds,
            s.classes,
            PEAK.load(Ordering::Relaxed) as f64 / (1 << 20) as f64,
            engine::peak_rss_kib() as f64 / 1024.0
        );
        if let Some(c) = &s.first_crash {
            println!("  first crash: {c}");
            for p in &s.saved {
                println!("  saved {}", p.display());
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::process::exit(if crashes > 0 { 1 } else { 0 });
}
