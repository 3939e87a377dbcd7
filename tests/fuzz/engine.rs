//! A small libFuzzer-free fuzzing engine for the stable toolchain: a seeded PRNG, byte-level and
//! structure-aware mutations over a corpus, every input run in-process under `catch_unwind` (a panic is a
//! crash, saved with its message), a watchdog thread for hangs, outcome-class feedback (an input whose
//! result is new joins the corpus), an address-space limit, and the figures of a run.
//!
//! Shared by the integration tests (`tests/fuzz/mod.rs`, short bounded runs in CI) and the long-run
//! command (`examples/fuzz.rs`), which include this file by path.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// splitmix64: small, fast, deterministic for a given seed.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5851_f42d_4c95_7f2d)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
    pub fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
}

/// Integers parsers trip over, as numbers (binary mutations) and as ASCII (text mutations).
pub const INTERESTING: [u64; 24] = [
    0,
    1,
    2,
    3,
    4,
    7,
    8,
    16,
    64,
    127,
    128,
    255,
    256,
    4095,
    4096,
    65535,
    65536,
    (1 << 31) - 1,
    1 << 31,
    u32::MAX as u64,
    1 << 32,
    (1 << 53) + 1,
    i64::MAX as u64,
    u64::MAX,
];

/// Text tokens worth splicing into any text input.
pub const TEXT_TOKENS: [&str; 30] = [
    "-1",
    "0",
    "-0",
    "1e308",
    "-1.7e308",
    "1e-320",
    "nan",
    "NaN",
    "inf",
    "-inf",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999999999",
    "4294967296",
    "9007199254740993",
    "0x10",
    "+5",
    ".5",
    "5.",
    "1_000",
    ",",
    ";",
    " ",
    "\t",
    "\n",
    "\r\n",
    "#",
    "\u{feff}",
    "\u{0}",
    "\u{00e9}",
];

/// What one run of a target gave: `Ok(label)` or `Err(message)` — both normal; a panic is a crash.
pub type Outcome = std::result::Result<String, String>;

/// A fuzz target: a parser driven through the project's public API.
pub trait Target {
    fn name(&self) -> &'static str;
    /// Subdirectory of `fuzz/corpus/` holding its seeds (several targets may share one).
    fn corpus(&self) -> &'static str {
        self.name()
    }
    /// Seeds made at run time (e.g. cache files that depend on this machine), added to the corpus files.
    fn extra_seeds(&mut self) -> Vec<Vec<u8>> {
        Vec::new()
    }
    /// Longest input kept.
    fn max_len(&self) -> usize {
        1 << 16
    }
    /// Mutates `input` in place; the default is generic byte-level havoc.
    fn mutate(&self, rng: &mut Rng, input: &mut Vec<u8>, corpus: &[Vec<u8>]) {
        havoc(rng, input, corpus);
    }
    /// Runs one input. Must not leave state behind that changes how the next input runs.
    fn run(&mut self, input: &[u8]) -> Outcome;
}

/// One generic byte-level mutation.
pub fn mutate_bytes(rng: &mut Rng, v: &mut Vec<u8>, corpus: &[Vec<u8>]) {
    let n = v.len();
    match rng.below(11) {
        0 if n > 0 => {
            let i = rng.below(n);
            v[i] ^= 1 << rng.below(8);
        }
        1 if n > 0 => {
            let i = rng.below(n);
            v[i] = rng.next() as u8;
        }
        2 => {
            let i = rng.below(n + 1);
            let k = 1 + rng.below(8);
            for _ in 0..k {
                v.insert(i, rng.next() as u8);
            }
        }
        3 if n > 0 => {
            let i = rng.below(n);
            let k = (1 + rng.below(16)).min(n - i);
            v.drain(i..i + k);
        }
        4 if n > 0 => {
            // Overwrite with an interesting integer, binary, little- or big-endian, 1/2/4/8 bytes.
            let x = *rng.pick(&INTERESTING);
            let w = *rng.pick(&[1usize, 2, 4, 8]);
            let b = if rng.chance(0.5) { x.to_le_bytes() } else { x.to_be_bytes() };
            let b = if b[0] == 0 && w < 8 && rng.chance(0.5) { &b[8 - w..] } else { &b[..w] };
            let i = rng.below(n);
            for (k, &c) in b.iter().enumerate() {
                if let Some(d) = v.get_mut(i + k) {
                    *d = c;
                }
            }
        }
        5 => {
            // An interesting integer or token as ASCII, inserted or replacing a digit run.
            let tok = if rng.chance(0.5) {
                let x = *rng.pick(&INTERESTING);
                if rng.chance(0.2) {
                    format!("-{x}")
                } else {
                    x.to_string()
                }
            } else {
                rng.pick(&TEXT_TOKENS).to_string()
            };
            replace_digits_or_insert(rng, v, tok.as_bytes());
        }
        6 if n > 1 => {
            // Copy a chunk inside the input.
            let a = rng.below(n);
            let k = (1 + rng.below(32)).min(n - a);
            let chunk = v[a..a + k].to_vec();
            let at = rng.below(n + 1);
            v.splice(at..at, chunk);
        }
        7 if !corpus.is_empty() => {
            // Splice: a prefix of this input and a suffix of another.
            let o = rng.pick(corpus);
            let a = rng.below(n + 1);
            let b = rng.below(o.len() + 1);
            v.truncate(a);
            v.extend_from_slice(&o[b..]);
        }
        8 if n > 0 => {
            let i = rng.below(n + 1);
            v.truncate(i);
        }
        9 if n > 0 => {
            // Arithmetic on one byte.
            let i = rng.below(n);
            let d = 1 + rng.below(35) as u8;
            v[i] = if rng.chance(0.5) { v[i].wrapping_add(d) } else { v[i].wrapping_sub(d) };
        }
        _ => {
            let i = rng.below(n + 1);
            v.insert(i, *rng.pick(b"\x00\xff\n,;:()[]{}'\" x-.e"));
        }
    }
}

/// Replaces a run of ASCII digits (found from a random start) with `tok`, or inserts `tok` when none.
pub fn replace_digits_or_insert(rng: &mut Rng, v: &mut Vec<u8>, tok: &[u8]) {
    let n = v.len();
    let start = rng.below(n + 1);
    if let Some(off) = v[start..].iter().position(|c| c.is_ascii_digit()) {
        let a = start + off;
        let b = a + v[a..].iter().take_while(|c| c.is_ascii_digit()).count();
        v.splice(a..b, tok.iter().copied());
    } else {
        let at = rng.below(n + 1);
        v.splice(at..at, tok.iter().copied());
    }
}

/// 1 to 8 stacked generic mutations.
pub fn havoc(rng: &mut Rng, v: &mut Vec<u8>, corpus: &[Vec<u8>]) {
    for _ in 0..1 + rng.below(8) {
        mutate_bytes(rng, v, corpus);
    }
}

/// How a campaign runs.
#[derive(Debug, Clone)]
pub struct Options {
    pub execs: u64,
    /// Stop after this long even if `execs` is not reached.
    pub max_time: Duration,
    pub seed: u64,
    /// An input running longer than this is a hang.
    pub hang_after: Duration,
    /// Where crashes and hangs are saved: `DIR/TARGET/…`.
    pub crash_dir: PathBuf,
    /// The seed corpus root: `DIR/CORPUS/*`.
    pub corpus_dir: PathBuf,
    /// Most inputs the corpus grows to (seeds plus inputs with a new outcome).
    pub max_corpus: usize,
}

impl Options {
    pub fn new(execs: u64, max_time: Duration) -> Options {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
        Options {
            execs,
            max_time,
            seed: 1,
            hang_after: Duration::from_secs(2),
            crash_dir: root.join("crashes"),
            corpus_dir: root.join("corpus"),
            max_corpus: 4096,
        }
    }
}

/// What a campaign did.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub execs: u64,
    pub secs: f64,
    pub crashes: u64,
    pub seeds: usize,
    pub corpus: usize,
    /// Distinct outcome classes seen (a crude stand-in for coverage).
    pub classes: usize,
    pub ok: u64,
    /// Saved crash files.
    pub saved: Vec<PathBuf>,
    /// The first crash's panic message.
    pub first_crash: Option<String>,
}

impl Stats {
    pub fn execs_per_sec(&self) -> f64 {
        self.execs as f64 / self.secs.max(1e-9)
    }
}

/// The input being run (for the watchdog and the out-of-memory note) and when it started.
struct Current {
    input: Mutex<Vec<u8>>,
    target: Mutex<String>,
    crash_dir: Mutex<PathBuf>,
    /// Milliseconds since `epoch` when the current input started, 0 when idle.
    started_ms: AtomicU64,
    hang_ms: AtomicU64,
    epoch: Instant,
}

fn current() -> &'static Current {
    static C: OnceLock<Current> = OnceLock::new();
    C.get_or_init(|| Current {
        input: Mutex::new(Vec::new()),
        target: Mutex::new(String::new()),
        crash_dir: Mutex::new(PathBuf::new()),
        started_ms: AtomicU64::new(0),
        hang_ms: AtomicU64::new(2000),
        epoch: Instant::now(),
    })
}

static LAST_PANIC: Mutex<Option<String>> = Mutex::new(None);
static HOOKED: AtomicBool = AtomicBool::new(false);

/// Replaces the panic hook (once per process) with one that records the message and location instead of
/// printing it, and starts the hang watchdog.
fn install() {
    if HOOKED.swap(true, Ordering::SeqCst) {
        return;
    }
    std::panic::set_hook(Box::new(|info| {
        let bt = std::backtrace::Backtrace::force_capture();
        let msg = format!("{info}\n{bt}");
        if let Ok(mut g) = LAST_PANIC.lock() {
            *g = Some(msg);
        }
    }));
    std::thread::spawn(|| loop {
        std::thread::sleep(Duration::from_millis(100));
        let c = current();
        let s = c.started_ms.load(Ordering::Acquire);
        if s == 0 {
            continue;
        }
        let now = c.epoch.elapsed().as_millis() as u64 + 1;
        if now.saturating_sub(s) > c.hang_ms.load(Ordering::Relaxed) {
            let input = c.input.lock().map(|g| g.clone()).unwrap_or_default();
            let target = c.target.lock().map(|g| g.clone()).unwrap_or_default();
            let dir = c.crash_dir.lock().map(|g| g.clone()).unwrap_or_default();
            let p = save(&dir, &target, "hang", &input, "exceeded the per-input time bound");
            println!("HANG in target {target}: input saved to {}", p.display());
            eprintln!("HANG in target {target}: input saved to {}", p.display());
            std::process::exit(86);
        }
    });
}

/// Saves `input` (and a `.txt` with `note`) under `dir/target/`, named by its hash; returns the path.
fn save(dir: &Path, target: &str, kind: &str, input: &[u8], note: &str) -> PathBuf {
    let d = dir.join(target);
    let _ = std::fs::create_dir_all(&d);
    let p = d.join(format!("{kind}-{:016x}", vastview::diskcache::fnv1a(input, 0)));
    let _ = std::fs::write(&p, input);
    let _ = std::fs::write(p.with_extension("txt"), note);
    p
}

#[cfg_attr(test, allow(dead_code))]
/// Writes the input being run when memory ran out (called by an allocator wrapper; allocation-free
/// apart from what it must do). Best effort.
pub fn note_out_of_memory(size: usize) {
    let c = current();
    if let (Ok(input), Ok(target), Ok(dir)) = (c.input.try_lock(), c.target.try_lock(), c.crash_dir.try_lock()) {
        let p = dir.join(&*target).join("oom-last");
        let _ = std::fs::write(&p, &*input);
        let _ = std::fs::write(p.with_extension("txt"), format!("allocation of {size} bytes failed"));
    }
}

/// Limits the address space of this process (RLIMIT_AS), so a huge allocation fails instead of taking
/// the machine's memory.
pub fn limit_address_space(bytes: u64) -> std::io::Result<()> {
    let r = libc::rlimit { rlim_cur: bytes as libc::rlim_t, rlim_max: bytes as libc::rlim_t };
    // SAFETY: setrlimit reads the struct we pass; no memory is handed over.
    if unsafe { libc::setrlimit(libc::RLIMIT_AS, &r) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Peak resident set size of this process so far, in KiB.
pub fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// An outcome's class: its text with quoted parts, numbers and paths blurred (inputs with a new class
/// join the corpus).
fn class_of(o: &Outcome) -> String {
    let (tag, s) = match o {
        Ok(s) => ("ok", s.as_str()),
        Err(s) => ("err", s.as_str()),
    };
    let mut out = String::from(tag);
    out.push(' ');
    let mut quoted = None;
    for c in s.chars().take(300) {
        match quoted {
            Some(q) if c == q => quoted = None,
            Some(_) => {}
            None if c == '\'' || c == '`' => {
                quoted = Some(c);
                out.push_str("''");
            }
            None if c.is_ascii_digit() => {
                if !out.ends_with('#') {
                    out.push('#');
                }
            }
            None => out.push(c),
        }
    }
    out
}

/// Reads the seed files of `dir` (sorted by name).
pub fn read_corpus(dir: &Path) -> Vec<Vec<u8>> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_file()).collect())
        .unwrap_or_default();
    names.sort();
    names.iter().filter_map(|p| std::fs::read(p).ok()).collect()
}

/// Runs `target` for `opts.execs` inputs or `opts.max_time`, whichever comes first.
pub fn fuzz(target: &mut dyn Target, opts: &Options) -> Stats {
    install();
    let name = target.name().to_string();
    let c = current();
    if let Ok(mut g) = c.target.lock() {
        g.clone_from(&name);
    }
    if let Ok(mut g) = c.crash_dir.lock() {
        g.clone_from(&opts.crash_dir);
    }
    c.hang_ms.store(opts.hang_after.as_millis() as u64, Ordering::Relaxed);
    let mut corpus = read_corpus(&opts.corpus_dir.join(target.corpus()));
    corpus.extend(target.extra_seeds());
    if corpus.is_empty() {
        corpus.push(Vec::new());
    }
    let seeds = corpus.len();
    let mut rng = Rng::new(opts.seed);
    let mut classes = HashSet::new();
    let mut stats = Stats { seeds, ..Default::default() };
    let t0 = Instant::now();
    let mut input = Vec::new();
    let mut i = 0u64;
    while i < opts.execs {
        if i % 64 == 0 && t0.elapsed() > opts.max_time {
            break;
        }
        // The seeds themselves first, then mutants.
        input.clear();
        if (i as usize) < seeds {
            input.extend_from_slice(&corpus[i as usize]);
        } else {
            let k = rng.below(corpus.len());
            input.extend_from_slice(&corpus[k]);
            target.mutate(&mut rng, &mut input, &corpus);
            input.truncate(target.max_len());
        }
        if let Ok(mut g) = c.input.lock() {
            g.clear();
            g.extend_from_slice(&input);
        }
        c.started_ms.store(c.epoch.elapsed().as_millis() as u64 + 1, Ordering::Release);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| target.run(&input)));
        c.started_ms.store(0, Ordering::Release);
        i += 1;
        match r {
            Ok(o) => {
                if o.is_ok() {
                    stats.ok += 1;
                }
                let cl = class_of(&o);
                if !classes.contains(&cl) {
                    classes.insert(cl);
                    if corpus.len() < opts.max_corpus && i as usize > seeds {
                        corpus.push(input.clone());
                    }
                }
            }
            Err(_) => {
                let msg = LAST_PANIC.lock().ok().and_then(|mut g| g.take()).unwrap_or_else(|| "panic".into());
                stats.crashes += 1;
                if stats.saved.len() < 20 {
                    stats.saved.push(save(&opts.crash_dir, &name, "crash", &input, &msg));
                }
                if stats.first_crash.is_none() {
                    stats.first_crash = Some(msg.lines().next().unwrap_or("").to_string());
                }
            }
        }
    }
    stats.execs = i;
    stats.secs = t0.elapsed().as_secs_f64();
    stats.corpus = corpus.len();
    stats.classes = classes.len();
    stats
}

/// A per-process scratch directory on tmpfs when there is one (`/dev/shm`), else the temp directory.
pub fn scratch_dir(what: &str) -> PathBuf {
    let base = if Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
    let d = base.join(format!("vastview-fuzz-{}-{what}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    let _ = std::fs::create_dir_all(&d);
    d
}
