//! Owns crash-proof read-only file maps: a read past a shrunk file's end gives zeros and a `faulted()` flag, not a SIGBUS crash.
//!
//! # How
//!
//! Reading a page of a file mapping that lies past the file's current end raises
//! SIGBUS, whose default action kills the process. Another process truncating a
//! file we have mapped is enough to trigger it. This module installs, once, a
//! SIGBUS handler (`sigaction`, `SA_SIGINFO`) and keeps a fixed-size, lock-free
//! registry of the address ranges of every live [`GuardedMap`]. When a fault's
//! address lies inside a registered range, the handler maps anonymous read-only
//! zero pages (`MAP_FIXED`) from the faulting page to the end of that map, sets the
//! map's fault flag and returns: the faulting load is restarted and reads zeros.
//! The reader then checks [`GuardedMap::faulted`] and turns it into a clean error.
//!
//! A SIGBUS anywhere else is passed on to whatever handled SIGBUS before us (the
//! Rust runtime's own handler, a handler of the program's, or the default action),
//! so such a fault still behaves exactly as it did without this module: usually
//! the process dies of SIGBUS.
//!
//! # Limits
//!
//! - Linux only (relies on `si_addr` of a fault and on `MAP_FIXED` replacing a
//!   range of an existing mapping atomically).
//! - The flag is sticky and per map: once set, every later read of that map is
//!   suspect; the map must be dropped and the file reopened. It cannot say *which*
//!   bytes were replaced; callers check it after each region read and discard what
//!   they read if it is set. A fault taken by another thread is seen by a check on
//!   this thread only once the two are synchronised (e.g. the reader was joined).
//! - Only shrinking is guarded. Another process *rewriting* bytes in place still
//!   changes what `bytes()` returns, undetected (as with any shared file mapping).
//! - Any SIGBUS inside a guarded map counts as a fault: past end of file, but also
//!   an I/O error of the page cache (e.g. a failing disk or a network file system).
//! - The registry holds [`SLOTS`] maps. Past that, [`GuardedMap::map`] still works
//!   but returns an unguarded map ([`GuardedMap::is_guarded`] is false): reading it
//!   after the file shrank kills the process, as with a plain `memmap2::Mmap`.
//! - If the zero-page `mmap` itself fails inside the handler (out of memory, or
//!   `vm.max_map_count` reached), the fault is passed on as if unguarded (a crash)
//!   rather than retried forever.
//! - A handler installed for SIGBUS after ours replaces it (unless it chains to the
//!   one it replaced); guarded maps are then no longer guarded. A thread that
//!   blocks SIGBUS in its signal mask gets the kernel's forced default action.

use std::fs::File;
use std::io;
use std::os::raw::{c_int, c_void};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering::SeqCst};
use std::sync::Once;

use memmap2::{Mmap, MmapOptions};

/// How many maps can be guarded at once.
pub const SLOTS: usize = 1024;

/// One registry entry: the address range of one live guarded map.
///
/// Written only by the thread that owns the slot (the one creating or dropping the
/// map) and read by signal handlers on any thread, so every field is an atomic and
/// the pair `(start, len)` is published under a sequence lock: `seq` is odd while
/// the pair is being changed, and a reader that sees the same even `seq` before and
/// after reading the pair has a consistent pair. The even `seq` value of a
/// registration is its id, unique for the life of the process, which is what the
/// fault flag records: a flag left by a handler for an old registration can never
/// be mistaken for one of a later map that reuses the slot.
struct Slot {
    /// Claimed by a map (or being claimed/released); only the owner writes below.
    owned: AtomicBool,
    seq: AtomicUsize,
    /// Start address of the mapping; 0 when the slot holds no live map.
    start: AtomicUsize,
    len: AtomicUsize,
    /// The id (`seq`) of the registration a fault hit, or 0.
    fault: AtomicUsize,
}

impl Slot {
    const fn new() -> Slot {
        Slot {
            owned: AtomicBool::new(false),
            seq: AtomicUsize::new(0),
            start: AtomicUsize::new(0),
            len: AtomicUsize::new(0),
            fault: AtomicUsize::new(0),
        }
    }
}

static REGISTRY: [Slot; SLOTS] = [const { Slot::new() }; SLOTS];
/// One past the highest slot index ever claimed: the handler scans only below it.
static HIGH: AtomicUsize = AtomicUsize::new(0);

static INSTALL: Once = Once::new();
/// Whether our handler is installed (false if `sigaction` failed).
static INSTALLED: AtomicBool = AtomicBool::new(false);
/// The page size, cached because `sysconf` is not async-signal-safe.
static PAGE: AtomicUsize = AtomicUsize::new(4096);
/// The SIGBUS disposition we replaced: `sa_sigaction` (a handler address, or
/// `SIG_DFL`/`SIG_IGN`) and its `sa_flags`.
static PREV_HANDLER: AtomicUsize = AtomicUsize::new(libc::SIG_DFL);
static PREV_FLAGS: AtomicI32 = AtomicI32::new(0);

/// A read-only memory map of a whole file whose reads survive the file shrinking underneath.
pub struct GuardedMap {
    /// `(slot index, registration id)`, or `None` when the registry was full.
    reg: Option<(usize, usize)>,
    /// Dropped (unmapped) after `Drop::drop` has unregistered it.
    map: Mmap,
}

impl GuardedMap {
    /// Maps `file` read-only, the whole of its current length.
    ///
    /// A zero-length file is an error of kind [`io::ErrorKind::InvalidInput`] (there
    /// is nothing to map; callers handle empty files before). If the registry is
    /// full the map is made unguarded; see [`GuardedMap::is_guarded`].
    pub fn map(file: &File) -> io::Result<GuardedMap> {
        let len = file.metadata()?.len();
        if len == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "cannot map an empty file"));
        }
        let len = usize::try_from(len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file is too large to map on this platform"))?;
        install();
        // SAFETY: memmap2 requires that the file not be changed while mapped, or the
        // bytes seen through the map change under a shared reference. The project's
        // inputs are read-only data files; their being truncated (the case that can
        // crash) is exactly what this type guards against, and a concurrent rewrite
        // is an accepted, documented risk of mapping files at all. The length is the
        // one just checked, so the map is never empty; if the file shrank meanwhile,
        // the missing pages fault and are guarded like any later shrink.
        let map = unsafe { MmapOptions::new().len(len).map(file)? };
        let reg = if INSTALLED.load(SeqCst) { register(map.as_ptr() as usize, map.len()) } else { None };
        Ok(GuardedMap { reg, map })
    }

    /// The mapped bytes. Reading them is always safe from a crash (for a guarded
    /// map): a page past a shrunk end of file reads as zeros, and [`faulted`]
    /// becomes true.
    ///
    /// [`faulted`]: GuardedMap::faulted
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// The length of the map in bytes: the file's length when it was mapped.
    /// Turns off speculative readahead on faults: a read then brings in only the pages it touches
    /// (callers announce what they will read with [`GuardedMap::will_need`]). Advice only; errors ignored.
    pub fn advise_random(&self) {
        let _ = self.map.advise(memmap2::Advice::Random);
    }

    /// Announces one front-to-back pass: aggressive readahead, pages dropped behind. Advice only; errors ignored.
    pub fn advise_sequential(&self) {
        let _ = self.map.advise(memmap2::Advice::Sequential);
    }

    /// Starts reading `len` bytes from `offset` into the page cache (asynchronously), so the copy
    /// that follows finds them there. Advice only; errors ignored.
    pub fn will_need(&self, offset: usize, len: usize) {
        const PAGE: usize = 4096;
        let start = offset / PAGE * PAGE;
        let end = (offset + len).min(self.map.len());
        if end > start {
            let _ = self.map.advise_range(memmap2::Advice::WillNeed, start, end - start);
        }
    }

    /// Maps `len` bytes from `offset` into the page tables now (reading them in if needed), in one
    /// call instead of a page fault per few pages. Advice only; errors ignored.
    /// (Linux ≥ 5.14; elsewhere, and on older kernels, nothing: the reads fault the pages in.)
    pub fn populate(&self, offset: usize, len: usize) {
        #[cfg(target_os = "linux")]
        {
            const PAGE: usize = 4096;
            let start = offset / PAGE * PAGE;
            let end = (offset + len).min(self.map.len());
            if end > start {
                let _ = self.map.advise_range(memmap2::Advice::PopulateRead, start, end - start);
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = (offset, len);
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Always false: an empty file cannot be mapped.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// True if any read of this map has hit a page past the end of the file since
    /// the map was made: the data read may contain zeros that are not the file's.
    /// Callers check it after each region read and turn it into an error
    /// ("the file shrank while it was being read").
    pub fn faulted(&self) -> bool {
        match self.reg {
            Some((slot, id)) => REGISTRY[slot].fault.load(SeqCst) == id,
            None => false,
        }
    }

    /// Whether this map is guarded: false only when the registry was full (or the
    /// handler could not be installed) when it was made, in which case a read past
    /// a shrunk end of file kills the process as with a plain `memmap2::Mmap`.
    pub fn is_guarded(&self) -> bool {
        self.reg.is_some()
    }
}

impl std::fmt::Debug for GuardedMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardedMap")
            .field("len", &self.len())
            .field("guarded", &self.is_guarded())
            .field("faulted", &self.faulted())
            .finish()
    }
}

impl Drop for GuardedMap {
    fn drop(&mut self) {
        // SAFETY (of the signal handler, which reads this slot): the slot is cleared
        // here, before the `map` field is dropped (fields drop after this body), so
        // the range is unregistered before memmap2 unmaps it.
        // Hence a registered range is always still mapped by its map, and once the
        // address range is unmapped and perhaps reused by an unrelated mapping, no
        // live registration names it. No read of this map can be faulting now:
        // `&mut self` means no `bytes()` borrow is alive, and a SIGBUS is delivered
        // synchronously to the thread doing the read. Handlers on other threads that
        // scan this slot meanwhile see either the old consistent pair (their address
        // lies in their own live map, which cannot overlap ours while ours is still
        // mapped, so it does not match) or a changing `seq` (they skip the slot).
        if let Some((slot, _)) = self.reg.take() {
            unregister(slot);
        }
    }
}

/// Claims a free slot for `[start, start + len)`; returns `(slot, id)`, or `None`
/// when all slots are taken.
fn register(start: usize, len: usize) -> Option<(usize, usize)> {
    for (i, s) in REGISTRY.iter().enumerate() {
        if s.owned.compare_exchange(false, true, SeqCst, SeqCst).is_err() {
            continue;
        }
        // Raise the scan bound before publishing, so a handler never misses a live slot.
        HIGH.fetch_max(i + 1, SeqCst);
        s.seq.fetch_add(1, SeqCst); // odd: being written
        s.len.store(len, SeqCst);
        s.start.store(start, SeqCst);
        let id = s.seq.fetch_add(1, SeqCst) + 1; // even again: published
        return Some((i, id));
    }
    None
}

fn unregister(slot: usize) {
    let s = &REGISTRY[slot];
    s.seq.fetch_add(1, SeqCst); // odd: being written
    s.start.store(0, SeqCst);
    s.len.store(0, SeqCst);
    s.seq.fetch_add(1, SeqCst); // even: holds no map (start 0)
    s.owned.store(false, SeqCst);
}

/// Installs the SIGBUS handler, once per process.
fn install() {
    INSTALL.call_once(|| {
        // SAFETY: sysconf has no memory-safety preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if page > 0 {
            PAGE.store(page as usize, SeqCst);
        }
        // SAFETY: an all-zero `sigaction` is a valid value of this plain C struct.
        let mut prev: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: a null new action only queries; `prev` is a valid out pointer.
        if unsafe { libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut prev) } != 0 {
            return;
        }
        // Saved before ours is installed, so the handler always finds it.
        PREV_HANDLER.store(prev.sa_sigaction, SeqCst);
        PREV_FLAGS.store(prev.sa_flags, SeqCst);
        // SAFETY: as above, all-zero is a valid `sigaction` (and an empty mask).
        let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
        let handler: extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void) = on_sigbus;
        act.sa_sigaction = handler as usize;
        // SA_ONSTACK: run on the thread's alternate signal stack where there is one,
        // as the Rust runtime's SIGBUS handler (which we chain to) expects.
        act.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        // SAFETY: `act.sa_mask` is a valid sigset_t to initialise.
        unsafe { libc::sigemptyset(&mut act.sa_mask) };
        // SAFETY: `act` is fully initialised and `on_sigbus` has the three-argument
        // signature that SA_SIGINFO requires.
        if unsafe { libc::sigaction(libc::SIGBUS, &act, std::ptr::null_mut()) } == 0 {
            INSTALLED.store(true, SeqCst);
        }
    });
}

/// Whether `si_code` says the kernel raised this SIGBUS for the access being made
/// by the interrupted instruction, so that returning restarts the access.
fn is_synchronous_fault(code: c_int) -> bool {
    matches!(code, libc::BUS_ADRALN | libc::BUS_ADRERR | libc::BUS_OBJERR | libc::BUS_MCEERR_AR)
}

/// The SIGBUS handler. Async-signal-safe: atomics, `mmap`, `sigaction`, `raise`
/// only; no allocation, no locks, no I/O.
extern "C" fn on_sigbus(sig: c_int, info: *mut libc::siginfo_t, ctx: *mut c_void) {
    // SAFETY: __errno_location returns this thread's errno, valid for the thread's
    // lifetime; saved and restored so the interrupted code never sees ours.
    let errno = unsafe { *libc::__errno_location() };
    // SAFETY: `info` comes from the kernel for an SA_SIGINFO handler (checked for
    // null anyway); see `zero_fill` and `pass_on`.
    unsafe {
        if !zero_fill(info) {
            pass_on(sig, info, ctx);
        }
        *libc::__errno_location() = errno;
    }
}

/// If `info` is a fault inside a registered map: flags the map, maps zero pages
/// from the faulting page to the end of the map, and returns true.
///
/// # Safety
/// `info` is null or points to the `siginfo_t` of the signal being handled.
unsafe fn zero_fill(info: *const libc::siginfo_t) -> bool {
    if info.is_null() {
        return false;
    }
    // SAFETY: non-null and valid per the contract.
    let info = unsafe { &*info };
    if info.si_signo != libc::SIGBUS || !is_synchronous_fault(info.si_code) {
        return false;
    }
    // SAFETY: for a kernel-raised SIGBUS the union holds the fault fields.
    let addr = unsafe { info.si_addr() } as usize;
    let page = PAGE.load(SeqCst);
    let mut end = usize::MAX;
    let mut found = false;
    for s in &REGISTRY[..HIGH.load(SeqCst).min(SLOTS)] {
        let seq = s.seq.load(SeqCst);
        if seq % 2 == 1 {
            continue;
        }
        let start = s.start.load(SeqCst);
        let len = s.len.load(SeqCst);
        if s.seq.load(SeqCst) != seq || start == 0 {
            continue;
        }
        if addr >= start && addr - start < len {
            // Flag before the zero pages appear: the restarted load happens after.
            s.fault.store(seq, SeqCst);
            let map_end = (start + len).div_ceil(page) * page;
            end = end.min(map_end);
            found = true;
        }
    }
    if !found {
        return false;
    }
    // `[base, end)` is within the faulting map: the kernel mapped it as whole pages
    // from `start` (page-aligned) to `map_end`, so nothing outside it is replaced.
    // (Taking the smallest end over all matches keeps that true even if a stale
    // snapshot matched too.)
    let base = addr / page * page;
    // SAFETY: MAP_FIXED replaces pages of the faulting map only (see above); the map
    // is alive (its reader is mid-read holding a borrow) and stays registered until
    // it is dropped, and memmap2's munmap of the whole range removes these pages
    // with the rest. Nothing is freed that Rust code owns: the range stays mapped,
    // readable, and the same length; only its (past-end-of-file) contents become 0.
    let p = unsafe {
        libc::mmap(
            base as *mut c_void,
            end - base,
            libc::PROT_READ,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
            -1,
            0,
        )
    };
    p != libc::MAP_FAILED
}

/// Hands a SIGBUS that is not ours to the disposition we replaced, so it behaves as
/// if this module were absent. (A previous handler is called directly, so its own
/// `sa_mask`, `SA_NODEFER` and `SA_RESETHAND` are not applied; the Rust runtime's
/// handler, the usual one, needs none of them.)
///
/// # Safety
/// Called only from the signal handler, with its arguments.
unsafe fn pass_on(sig: c_int, info: *mut libc::siginfo_t, ctx: *mut c_void) {
    let prev = PREV_HANDLER.load(SeqCst);
    let flags = PREV_FLAGS.load(SeqCst);
    // SAFETY: non-null `info` is the kernel's siginfo for this signal.
    let code = if info.is_null() { 0 } else { unsafe { (*info).si_code } };
    let fault = is_synchronous_fault(code);
    if prev == libc::SIG_DFL || (prev == libc::SIG_IGN && fault) {
        // The kernel forces a fault's SIGBUS even where it is ignored, so both end
        // in the default action. Reset to it: a fault is then raised again when the
        // access restarts on return; any other SIGBUS is re-raised now (it stays
        // pending while this handler runs and is delivered on return).
        // SAFETY: all-zero is SIG_DFL with no flags and an empty mask.
        let dfl: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: sigaction and raise are async-signal-safe; `dfl` is valid.
        unsafe {
            libc::sigaction(libc::SIGBUS, &dfl, std::ptr::null_mut());
            if !fault {
                libc::raise(libc::SIGBUS);
            }
        }
        return;
    }
    if prev == libc::SIG_IGN {
        return;
    }
    if flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the previous action was installed with SA_SIGINFO, so its handler
        // has this signature; we call it with the arguments the kernel gave us.
        let f: extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void) = unsafe { std::mem::transmute(prev) };
        f(sig, info, ctx);
    } else {
        // SAFETY: without SA_SIGINFO the previous handler is a one-argument
        // `sa_handler`.
        let f: extern "C" fn(c_int) = unsafe { std::mem::transmute(prev) };
        f(sig);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::process::ExitStatusExt;
    use std::path::{Path, PathBuf};
    use std::process::{Command, ExitStatus, Stdio};

    /// Set, in a child process, to the name of the child test to run for real.
    const CHILD_ENV: &str = "VASTVIEW_GUARD_CHILD";
    /// Set, in a child process, to a path prefix for the child's files.
    const CHILD_TMP_ENV: &str = "VASTVIEW_GUARD_CHILD_TMP";

    /// A file path under the temp dir, removed on drop.
    struct TempPath(PathBuf);

    impl TempPath {
        fn new(tag: &str) -> TempPath {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let n = NEXT.fetch_add(1, SeqCst);
            let name = format!("vastview-guard-{}-{n}-{tag}", std::process::id());
            TempPath(std::env::temp_dir().join(name))
        }

        fn at(path: PathBuf) -> TempPath {
            TempPath(path)
        }
    }

    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn page() -> usize {
        // SAFETY: sysconf has no memory-safety preconditions.
        unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
    }

    /// An anonymous page filled with 0xAB right after a map's last page, to show the
    /// zero fill stays inside the map. Unmapped on drop.
    struct Neighbour(*mut u8);

    impl Neighbour {
        /// Maps `file` (of `len` bytes) just below a fresh 0xAB page: reserves
        /// `pages + 1` pages, frees all but the last, and maps the file, which the
        /// kernel's top-down placement normally puts in that hole. The neighbour is
        /// None if it landed elsewhere (e.g. a parallel test took the hole).
        fn map_below(file: &File, len: usize) -> (GuardedMap, Option<Neighbour>) {
            let body = len.div_ceil(page()) * page();
            // SAFETY: a fresh anonymous mapping at an address of the kernel's choice.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    body + page(),
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            assert_ne!(p, libc::MAP_FAILED);
            // SAFETY: unmaps the first `body` bytes of the mapping just made, and
            // fills its last page, which stays ours.
            let n = unsafe {
                libc::munmap(p, body);
                let n = Neighbour(p.cast::<u8>().add(body));
                std::ptr::write_bytes(n.0, 0xAB, page());
                n
            };
            let map = GuardedMap::map(file).unwrap();
            let placed = map.bytes().as_ptr() == p.cast::<u8>();
            (map, placed.then_some(n))
        }

        fn intact(&self) -> bool {
            // SAFETY: the page stays mapped until `self` drops.
            unsafe { std::slice::from_raw_parts(self.0, page()) }.iter().all(|&b| b == 0xAB)
        }
    }

    impl Drop for Neighbour {
        fn drop(&mut self) {
            // SAFETY: unmaps only the page this value mapped.
            unsafe { libc::munmap(self.0.cast(), page()) };
        }
    }

    /// Never zero, so a zero read back is not the file's.
    fn pattern(len: usize, salt: u8) -> Vec<u8> {
        (0..len).map(|i| ((i + salt as usize) % 251) as u8 + 1).collect()
    }

    fn write_file(path: &Path, data: &[u8]) -> File {
        let mut f = File::create(path).unwrap();
        f.write_all(data).unwrap();
        f.sync_all().unwrap();
        File::open(path).unwrap()
    }

    fn truncate(path: &Path, len: u64) {
        std::fs::OpenOptions::new().write(true).open(path).unwrap().set_len(len).unwrap();
    }

    /// Name of a test in this module as libtest knows it (no crate name).
    fn test_name(test: &str) -> String {
        let module = module_path!();
        let module = module.split_once("::").map_or(module, |(_, rest)| rest);
        format!("{module}::{test}")
    }

    /// Re-runs this test binary with only `test`, marked as the child; returns its
    /// exit status. The child's files are named from a prefix we clean up (even when
    /// the child dies).
    fn run_child(test: &str) -> ExitStatus {
        let tmp = TempPath::new("child");
        let _files = ["a", "b"].map(|suffix| TempPath::at(child_path(&tmp.0, suffix)));
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([&test_name(test), "--exact", "--test-threads=1", "--nocapture"])
            .env(CHILD_ENV, test)
            .env(CHILD_TMP_ENV, &tmp.0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // A broken handler could re-fault forever instead of dying: bound the wait.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if std::time::Instant::now() > deadline {
                child.kill().unwrap();
                child.wait().unwrap();
                panic!("child test {test} did not finish in 60 s");
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        status
    }

    fn child_path(prefix: &Path, suffix: &str) -> PathBuf {
        let mut p = prefix.as_os_str().to_owned();
        p.push(format!("-{suffix}"));
        PathBuf::from(p)
    }

    /// In a child run for `test`: its file prefix, after disabling core dumps (the
    /// child may be meant to die). None in a normal run, where the test is a no-op.
    fn child_setup(test: &str) -> Option<PathBuf> {
        if std::env::var(CHILD_ENV).ok()? != test {
            return None;
        }
        let off = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: plain syscalls on this process with valid arguments.
        unsafe {
            libc::setrlimit(libc::RLIMIT_CORE, &off);
            libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
        }
        Some(PathBuf::from(std::env::var_os(CHILD_TMP_ENV).unwrap()))
    }

    /// Installs the guard (by making a guarded map, kept alive), then reads a plain,
    /// unregistered `memmap2::Mmap` of a truncated file: must die of SIGBUS.
    fn unguarded_read_dies(prefix: &Path) {
        let a = child_path(prefix, "a");
        let b = child_path(prefix, "b");
        let guarded = GuardedMap::map(&write_file(&a, &pattern(3 * page(), 0))).unwrap();
        assert!(guarded.is_guarded());
        let file = write_file(&b, &pattern(3 * page(), 1));
        // SAFETY: test of the crash itself; the file is ours.
        let plain = unsafe { Mmap::map(&file).unwrap() };
        truncate(&b, 0);
        let sum: u64 = plain.iter().map(|&x| x as u64).sum();
        // Not reached: the read above raises SIGBUS.
        println!("survived, sum {sum}");
        drop(guarded);
    }

    #[test]
    fn reads_an_intact_file() {
        let tmp = TempPath::new("intact");
        let data = pattern(4 * page() + 123, 7);
        let map = GuardedMap::map(&write_file(&tmp.0, &data)).unwrap();
        assert!(map.is_guarded());
        assert_eq!(map.len(), data.len());
        assert!(!map.is_empty());
        assert_eq!(map.bytes(), &data[..]);
        assert!(!map.faulted());
    }

    #[test]
    fn empty_file_is_invalid_input() {
        let tmp = TempPath::new("empty");
        let err = GuardedMap::map(&write_file(&tmp.0, &[])).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn shrunk_file_reads_zeros_and_flags_only_its_map() {
        let (ta, tb) = (TempPath::new("shrink-a"), TempPath::new("shrink-b"));
        let data = pattern(5 * page() + 321, 3);
        let other_data = pattern(3 * page(), 9);
        let (map, neighbour) = Neighbour::map_below(&write_file(&ta.0, &data), data.len());
        let other = GuardedMap::map(&write_file(&tb.0, &other_data)).unwrap();
        assert!(map.is_guarded() && other.is_guarded());

        let new_len = page() + page() / 2;
        truncate(&ta.0, new_len as u64);
        let read = map.bytes().to_vec(); // faults past the new end: must not crash
        assert_eq!(read.len(), data.len());
        assert_eq!(&read[..new_len], &data[..new_len]);
        assert!(read[new_len..].iter().all(|&b| b == 0));
        assert!(map.faulted());

        // The zero pages replaced nothing past the map's last page.
        if let Some(n) = &neighbour {
            assert!(n.intact());
        } else {
            eprintln!("note: no neighbour page; the zero fill's bound went unchecked");
        }

        // Reading again takes no new fault and still gives the same.
        assert_eq!(map.bytes(), &read[..]);
        assert!(map.faulted());

        // The other map is untouched and unflagged.
        assert!(!other.faulted());
        assert_eq!(other.bytes(), &other_data[..]);
        assert!(!other.faulted());
    }

    #[test]
    fn fault_in_another_thread_is_seen_after_join() {
        let tmp = TempPath::new("thread");
        let data = pattern(4 * page(), 5);
        let map = GuardedMap::map(&write_file(&tmp.0, &data)).unwrap();
        truncate(&tmp.0, 0);
        let zeros = std::thread::scope(|s| s.spawn(|| map.bytes().iter().all(|&b| b == 0)).join().unwrap());
        assert!(zeros);
        assert!(map.faulted());
    }

    #[test]
    fn reused_slot_does_not_inherit_a_fault() {
        let tmp = TempPath::new("reuse");
        let data = pattern(2 * page(), 1);
        let file = write_file(&tmp.0, &data);
        let map = GuardedMap::map(&file).unwrap();
        let (slot, id) = map.reg.unwrap();
        truncate(&tmp.0, 0);
        assert!(map.bytes().iter().all(|&b| b == 0));
        assert!(map.faulted());
        drop(map);

        let tmp2 = TempPath::new("reuse2");
        let file2 = write_file(&tmp2.0, &data);
        // Other tests run in parallel and may take the freed slot first; keep maps
        // until one of ours lands in it.
        let mut maps = Vec::new();
        for _ in 0..64 {
            let m = GuardedMap::map(&file2).unwrap();
            let reused = m.reg.unwrap().0 == slot;
            maps.push(m);
            if reused {
                break;
            }
        }
        for m in &maps {
            assert_eq!(m.bytes(), &data[..]);
            assert!(!m.faulted());
            assert_ne!(m.reg.unwrap().1, id);
        }
    }

    #[test]
    fn unguarded_fault_still_kills_after_runtime_handler() {
        let status = run_child("child_unguarded_read_runtime_handler");
        assert_eq!(status.signal(), Some(libc::SIGBUS), "{status:?}");
    }

    #[test]
    fn child_unguarded_read_runtime_handler() {
        // Previous handler: the Rust runtime's (installed at startup), chained to.
        if let Some(prefix) = child_setup("child_unguarded_read_runtime_handler") {
            unguarded_read_dies(&prefix);
        }
    }

    #[test]
    fn unguarded_fault_still_kills_after_default() {
        let status = run_child("child_unguarded_read_default");
        assert_eq!(status.signal(), Some(libc::SIGBUS), "{status:?}");
    }

    #[test]
    fn child_unguarded_read_default() {
        // Previous disposition: SIG_DFL, restored by our handler.
        if let Some(prefix) = child_setup("child_unguarded_read_default") {
            // SAFETY: resetting SIGBUS to its default before the guard installs.
            unsafe { libc::signal(libc::SIGBUS, libc::SIG_DFL) };
            unguarded_read_dies(&prefix);
        }
    }

    #[test]
    fn sent_sigbus_still_kills() {
        let status = run_child("child_sent_sigbus");
        assert_eq!(status.signal(), Some(libc::SIGBUS), "{status:?}");
    }

    #[test]
    fn child_sent_sigbus() {
        // A SIGBUS sent (not a fault), with SIG_DFL before us: the default action.
        if let Some(prefix) = child_setup("child_sent_sigbus") {
            // SAFETY: resetting SIGBUS to its default before the guard installs.
            unsafe { libc::signal(libc::SIGBUS, libc::SIG_DFL) };
            let a = child_path(&prefix, "a");
            let _map = GuardedMap::map(&write_file(&a, &pattern(page(), 0))).unwrap();
            // SAFETY: raising a signal at ourselves.
            unsafe { libc::raise(libc::SIGBUS) };
            println!("survived");
        }
    }

    #[test]
    fn unguarded_fault_reaches_a_previous_handler() {
        let status = run_child("child_previous_handler");
        assert_eq!(status.code(), Some(42), "{status:?}");
    }

    extern "C" fn exit_42(_: c_int) {
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(42) };
    }

    #[test]
    fn child_previous_handler() {
        // A program's own SIGBUS handler, installed before us, is chained to.
        if let Some(prefix) = child_setup("child_previous_handler") {
            let handler: extern "C" fn(c_int) = exit_42;
            // SAFETY: installing a one-argument handler that only calls _exit.
            unsafe { libc::signal(libc::SIGBUS, handler as libc::sighandler_t) };
            unguarded_read_dies(&prefix);
        }
    }

    #[test]
    fn full_registry_falls_back_to_unguarded() {
        let status = run_child("child_full_registry");
        assert!(status.success(), "{status:?}");
    }

    #[test]
    fn child_full_registry() {
        // In a child: in this process other tests would race for the slots.
        if let Some(prefix) = child_setup("child_full_registry") {
            let a = child_path(&prefix, "a");
            let data = pattern(page() + 1, 4);
            let file = write_file(&a, &data);
            let mut maps: Vec<GuardedMap> = (0..SLOTS).map(|_| GuardedMap::map(&file).unwrap()).collect();
            assert!(maps.iter().all(GuardedMap::is_guarded));
            let extra = GuardedMap::map(&file).unwrap();
            assert!(!extra.is_guarded());
            assert_eq!(extra.bytes(), &data[..]);
            assert!(!extra.faulted());
            maps.pop();
            let again = GuardedMap::map(&file).unwrap();
            assert!(again.is_guarded());
            assert_eq!(again.bytes(), &data[..]);
        }
    }
}
