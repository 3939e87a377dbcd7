//! Building a point index in two streaming passes over the records, on all cores: pass 1 counts the
//! points of every cell (the binning kernel itself, over the data bounds); pass 2 computes each point's
//! cell once more and scatters its record into the cell's range of the file (a file-backed shared map,
//! so anonymous memory stays a few tens of MB whatever N), in rounds of one chunk per thread whose
//! per-cell counts are prefix-summed so that every cell keeps the source order: the file is the same
//! whatever the number of threads and however often the build was interrupted. Checkpoints after pass 1
//! and every 2 s of pass 2 (`$VASTVIEW_CHECKPOINT_MS`, at round boundaries) let a cancelled, crashed or
//! killed build resume; the file is renamed into place only when complete.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rayon::prelude::*;

use super::{
    expected_base, footer_bytes, header_bytes, locate, parse_header, CellValues, IndexMeta, Layout, Paths, PointIndex,
    FOOTER_AT,
};
use crate::diskcache::{self, Identity};
use crate::error::{Error, Result};
use crate::points::bin::{bin_feed, chunk_cells, Axis, BinPlan, ChunkFeed};
use crate::points::{data_bounds, Agg, Bounds, Grid};
use crate::pyramid::Progress;
use crate::source::points::{Chunk, ChunkBuf, Cols, PointSource, CHUNK_RECORDS};

/// Average points per cell the level aims at (the finest level with at least this many).
const TARGET_PER_CELL: u64 = 1024;
/// The most memory the per-cell arrays of a build may take (all threads together).
const BUILD_BUDGET: u64 = 64 << 20;
/// Finest level: 2^13 × 2^13 cells.
const MAX_LEVEL: u32 = 13;

/// How often pass 2 writes a checkpoint: every 2 s, or `$VASTVIEW_CHECKPOINT_MS`.
fn checkpoint_every() -> Duration {
    let ms = std::env::var("VASTVIEW_CHECKPOINT_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(2000);
    Duration::from_millis(ms)
}

/// Bytes of per-cell state per cell during a build with `threads` workers.
fn bytes_per_cell(threads: u64, has_value: bool) -> u64 {
    // Per thread: pass-1 grid (u32), round counts (u32), write positions (u64), value sums (32 B).
    // Shared: counts (u32), offsets and cursors (u64).
    threads * (4 + 4 + 8 + if has_value { 32 } else { 0 }) + 4 + 8 + 8
}

/// The grid level for `finite` points: the finest with at least `TARGET_PER_CELL` points per cell on
/// average whose per-cell arrays fit `BUILD_BUDGET`.
pub fn choose_level(finite: u64, threads: usize, has_value: bool) -> u32 {
    let per = bytes_per_cell(threads.max(1) as u64, has_value);
    let mut l = 0;
    while l < MAX_LEVEL {
        let cells = 1u64 << (2 * (l + 1));
        if cells * TARGET_PER_CELL > finite || cells * per > BUILD_BUDGET {
            break;
        }
        l += 1;
    }
    l
}

/// What a build did.
#[derive(Debug, Clone, Copy, Default)]
pub struct BuildReport {
    /// Point passes skipped by resuming (of 2 × the records; 0 for a fresh build).
    pub resumed: u64,
    pub pass1_s: f64,
    pub pass2_s: f64,
    pub finish_s: f64,
}

/// A build ready to run: a new or resumed partial file, locked against other builders.
pub struct BuildJob {
    pub paths: Paths,
    pub meta: IndexMeta,
    pub layout: Layout,
    file: File,
    /// True when an earlier, interrupted build is being continued.
    pub resuming: bool,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::io(path, e)
}

fn busy(path: &Path) -> Error {
    Error::request(path, "another vastview process is building this file's point index; try again when it is done")
}

fn try_lock(file: &File) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a file descriptor we own; no memory is involved.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

impl BuildJob {
    /// The header `src`'s index will have for these data bounds, and its layout.
    pub fn expected(src: &PointSource, id: Identity, b: &Bounds) -> Result<(IndexMeta, Layout)> {
        let Some(e) = b.extent else {
            return Err(Error::bad_input(
                &src.path,
                format!("none of the {} points has finite x and y (all NaN or infinite): nothing to index", src.len),
            ));
        };
        let (e, _, _) = e.padded();
        let mut meta = expected_base(src, id);
        let level = choose_level(b.finite, rayon::current_num_threads(), meta.value_column.is_some());
        let side = 1usize << level;
        if Axis::new(e.xmin, e.xmax, side).is_none() || Axis::new(e.ymin, e.ymax, side).is_none() {
            return Err(Error::bad_input(
                &src.path,
                "the points span too narrow (or too far out) a range to index in float64",
            ));
        }
        meta.extent_bits = [e.xmin, e.ymin, e.xmax, e.ymax].map(f64::to_bits);
        meta.level = level;
        meta.indexed = b.finite;
        meta.nonfinite = b.nonfinite;
        let layout =
            Layout::new(level, b.finite, meta.record_values, src.dtype.size() as u64, meta.value_column.is_some());
        meta.file_size = layout.file_size;
        Ok((meta, layout))
    }

    /// Opens the partial file of an interrupted build of `src`'s index in the cache (when valid) or
    /// creates a new one, after making room under the cache's size cap. Fails if another process is
    /// building it.
    pub fn prepare(src: &PointSource) -> Result<BuildJob> {
        let (id, paths) = locate(src)?;
        diskcache::require_writable(super::KIND, "point indexes")?;
        let b = data_bounds(src)?;
        let (_, layout) = Self::expected(src, id.clone(), &b)?;
        if !(paths.partial.exists() && paths.resume.exists()) {
            let _ = diskcache::enforce_cap(diskcache::cap(), layout.file_size, &[]);
        }
        Self::prepare_at(src, id, paths, &b)
    }

    /// [`BuildJob::prepare`] at explicit paths, for given data bounds (no cache directory involved).
    pub fn prepare_at(src: &PointSource, id: Identity, paths: Paths, b: &Bounds) -> Result<BuildJob> {
        let (meta, layout) = Self::expected(src, id, b)?;
        if paths.partial.exists() && paths.resume.exists() {
            if let Ok(file) = File::options().read(true).write(true).open(&paths.partial) {
                let mut head = vec![0u8; super::HEADER as usize];
                let n = file.read_at(&mut head, 0).unwrap_or(0);
                head.truncate(n);
                let len = file.metadata().map(|m| m.len()).unwrap_or(0);
                if parse_header(&paths.partial, &head).is_ok_and(|m| m == meta) && len == layout.file_size {
                    if !try_lock(&file) {
                        return Err(busy(&src.path));
                    }
                    return Ok(BuildJob { paths, meta, layout, file, resuming: true });
                }
            }
        }
        let p = &paths.partial;
        let file = File::options().read(true).write(true).create(true).truncate(false).open(p).map_err(io(p))?;
        if !try_lock(&file) {
            return Err(busy(&src.path));
        }
        let _ = std::fs::remove_file(&paths.resume);
        file.set_len(0).map_err(io(p))?;
        file.set_len(layout.file_size).map_err(io(p))?;
        reserve(&file, layout.file_size).map_err(io(p))?;
        file.write_all_at(&header_bytes(p, &meta)?, 0).map_err(io(p))?;
        Ok(BuildJob { paths, meta, layout, file, resuming: false })
    }

    /// Runs (or resumes) both passes, writes the tables and renames the file into place.
    pub fn run(&self, src: &PointSource, progress: &Progress) -> Result<(PointIndex, BuildReport)> {
        let r = Pass { job: self, src, progress }.run()?;
        let ix = PointIndex::open(&self.paths.done, src)?;
        Ok((ix, r))
    }
}

/// Reserves the file's blocks so that a full disk is an error now, not a SIGBUS while writing through
/// the map. File systems without `fallocate` are left sparse.
fn reserve(file: &File, len: u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: posix_fallocate on a file descriptor we own; no memory is involved.
    let r = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len as libc::off_t) };
    match r {
        0 | libc::EOPNOTSUPP | libc::EINVAL => Ok(()),
        e => Err(std::io::Error::from_raw_os_error(e)),
    }
}

/// The complete index of `src`: found in the cache, or built (resumed) now. The report is `None` when
/// it was found.
pub fn build_or_find(src: &PointSource, progress: &Progress) -> Result<(PointIndex, Option<BuildReport>)> {
    if let Some(ix) = PointIndex::find(src)? {
        return Ok((ix, None));
    }
    let (ix, r) = BuildJob::prepare(src)?.run(src, progress)?;
    Ok((ix, Some(r)))
}

/// Builds (or resumes) the index of `src` without looking for a complete one first (see [`build_or_find`]).
pub fn build(src: &PointSource, progress: &Progress) -> Result<PointIndex> {
    Ok(BuildJob::prepare(src)?.run(src, progress)?.0)
}

/// Pass 1 as a feed: the point file's chunks, counted into the progress as they are binned.
struct Counting<'a> {
    src: &'a PointSource,
    progress: &'a Progress,
}

impl ChunkFeed for Counting<'_> {
    fn chunk_count(&self) -> usize {
        self.src.chunk_count()
    }
    fn advise_sequential(&self) {
        self.src.advise_sequential()
    }
    fn prefetch(&self, i: usize) {
        self.src.prefetch(i)
    }
    fn with_chunk<R>(&self, i: usize, value: Option<u64>, buf: &mut ChunkBuf, f: impl FnOnce(Chunk<'_>) -> R) -> R {
        let r = self.src.with_chunk(i, value, buf, f);
        self.progress.done.fetch_add(chunk_len(self.src, i), Ordering::Relaxed);
        r
    }
    fn check_faulted(&self) -> Result<()> {
        self.src.check_faulted()
    }
}

fn chunk_len(src: &PointSource, i: usize) -> u64 {
    let a = (i as u64 * CHUNK_RECORDS).min(src.len);
    (a + CHUNK_RECORDS).min(src.len) - a
}

/// One worker of pass 2.
struct Worker {
    /// Cell of every point of the current chunk (`dump` for the skipped ones).
    ids: Vec<u32>,
    /// Points per cell in the current chunk.
    cnt: Vec<u32>,
    /// Where the next point of each cell goes.
    pos: Vec<u64>,
    /// Per-cell value statistics of the chunks this worker has done (min +inf, max −inf when none).
    vals: Vec<CellValues>,
    /// The chunk's records sorted by cell (then copied run by run to the file, in file order).
    local: LocalBuf,
    buf: ChunkBuf,
    /// A point fell outside its cell's range (the file changed during the build).
    bad: bool,
}

/// A worker's chunk sorted by cell, in the source dtype.
#[derive(Default)]
struct LocalBuf {
    f32: Vec<f32>,
    f64: Vec<f64>,
}

/// The element types of point records, with their worker buffer.
trait Elem: Copy + Into<f64> + Default + Send + Sync {
    fn local(b: &mut LocalBuf) -> &mut Vec<Self>;
    /// Value statistics of a run of (x, y, value) records: NaN values skipped, the sum in float64 in
    /// record order.
    fn run_values(run: &[Self]) -> CellValues;
}

macro_rules! run_values {
    ($t:ty) => {
        fn run_values(run: &[$t]) -> CellValues {
            // Minimum and maximum in the element type (converting to float64 keeps the order, so the
            // results are the same), the sum in float64.
            let (mut valued, mut sum, mut min, mut max) = (0u64, 0.0f64, <$t>::INFINITY, <$t>::NEG_INFINITY);
            for r in run.chunks_exact(3) {
                let v = r[2];
                if v == v {
                    valued += 1;
                    sum += f64::from(v);
                    min = if v < min { v } else { min };
                    max = if v > max { v } else { max };
                }
            }
            CellValues { valued, sum, min: f64::from(min), max: f64::from(max) }
        }
    };
}

impl Elem for f32 {
    fn local(b: &mut LocalBuf) -> &mut Vec<f32> {
        &mut b.f32
    }
    run_values!(f32);
}
impl Elem for f64 {
    fn local(b: &mut LocalBuf) -> &mut Vec<f64> {
        &mut b.f64
    }
    run_values!(f64);
}

fn empty_vals(n: usize) -> Vec<CellValues> {
    vec![CellValues { valued: 0, sum: 0.0, min: f64::INFINITY, max: f64::NEG_INFINITY }; n]
}

/// The output records, written by all workers at disjoint positions.
struct Out<T> {
    ptr: *mut T,
    /// Elements.
    len: usize,
}

// SAFETY: workers write disjoint elements (positions come from disjoint prefix-sum ranges) and each
// write is bounds-checked against `len`; the map outlives every use (a scope of `Pass::run`).
unsafe impl<T: Send> Send for Out<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for Out<T> {}

impl<T: Copy> Out<T> {
    /// Asks the kernel to allocate the page-cache pages of the whole area now, in parallel pieces (one
    /// fault per page spared later). Advice only: errors (old kernels) are ignored.
    fn populate(&self) {
        #[cfg(target_os = "linux")]
        {
            const PIECE: usize = 64 << 20;
            let bytes = self.len * std::mem::size_of::<T>();
            let base = self.ptr as usize;
            (0..bytes.div_ceil(PIECE)).into_par_iter().for_each(|i| {
                let a = (base + i * PIECE).next_multiple_of(4096);
                let b = (base + ((i + 1) * PIECE).min(bytes)) / 4096 * 4096;
                if b > a {
                    // SAFETY: the range lies inside the live mapping; POPULATE_WRITE only faults pages in.
                    unsafe { libc::madvise(a as *mut libc::c_void, b - a, libc::MADV_POPULATE_WRITE) };
                }
            });
        }
    }

    #[inline(always)]
    fn put(&self, at: usize, vals: &[T]) -> bool {
        if at.checked_add(vals.len()).is_none_or(|end| end > self.len) {
            return false;
        }
        // SAFETY: in bounds (checked just above); no other worker writes these elements.
        unsafe { std::ptr::copy_nonoverlapping(vals.as_ptr(), self.ptr.add(at), vals.len()) };
        true
    }
}

/// Scatters a chunk's points into their cells' ranges: first sorted by cell into the worker's local
/// buffer (random writes that stay in a few MB), then each cell's run copied to its place in the file,
/// cell after cell (writes that move forward through the file).
fn scatter<T: Elem>(c: &Cols<'_, T>, w: &mut Worker, out: &Out<T>, rv: usize, dump: u32) {
    let s = c.stride;
    let vcol = c.value.unwrap_or(&[]);
    let n = c.len.min(w.ids.len());
    let Worker { ids, cnt, pos, vals, local, bad, .. } = w;
    let local = T::local(local);
    // Not cleared between chunks: every slot a run covers is written below before it is read.
    local.resize(n * rv, T::default());
    // Start of each cell's run in the local buffer (reusing `cnt` as the running cursor).
    let mut at = 0u32;
    for c in cnt.iter_mut() {
        let k = *c;
        *c = at;
        at += k;
    }
    // Whole records whose first values are x, y (and the value): copied record by record, with the
    // stride and record width known to the compiler.
    let direct = !c.records.is_empty() && c.offsets[0] == 0 && c.offsets[1] == 1 && (rv == 2 || c.offsets[2] == 2);
    let ids = ids.get(..n).unwrap_or(&[]);
    let fast = match (direct, s, rv) {
        (true, 2, 2) => Some(sort_records::<T, 2, 2>(c.records, ids, cnt, local, dump)),
        (true, 3, 2) => Some(sort_records::<T, 3, 2>(c.records, ids, cnt, local, dump)),
        (true, 3, 3) => Some(sort_records::<T, 3, 3>(c.records, ids, cnt, local, dump)),
        _ => None,
    };
    if let Some(ok) = fast {
        *bad |= !ok;
    }
    for (i, &k) in ids.iter().enumerate().take(if fast.is_some() { 0 } else { n }) {
        if k == dump {
            continue;
        }
        let (Some(&x), Some(&y), Some(q)) = (c.x.get(i * s), c.y.get(i * s), cnt.get_mut(k as usize)) else {
            *bad = true;
            continue;
        };
        let o = *q as usize * rv;
        *q += 1;
        let Some(dst) = local.get_mut(o..o + rv) else {
            *bad = true;
            continue;
        };
        dst[0] = x;
        dst[1] = y;
        if rv == 3 {
            let Some(&v) = vcol.get(i * s) else {
                *bad = true;
                continue;
            };
            dst[2] = v;
        }
    }
    // `cnt[k]` is now the end of cell k's run; its start is the previous cell's end. The value
    // statistics are gathered run by run (cells in order: a forward sweep through `vals`).
    let mut start = 0usize;
    for (k, &end) in cnt.iter().enumerate() {
        let end = end as usize;
        if end > start {
            let p = pos.get(k).copied().unwrap_or(u64::MAX) as usize;
            let run = local.get(start * rv..end * rv).unwrap_or(&[]);
            *bad |= !out.put(p.saturating_mul(rv), run);
            if let (3, Some(a)) = (rv, vals.get_mut(k)) {
                merge_acc(a, &T::run_values(run));
            }
        }
        start = end;
    }
}

/// Counting-sort placement of whole records: record `i` (its first `RV` values) goes to slot `cnt[ids[i]]`
/// of `local`, which then moves on. False when a slot falls outside `local` (the file changed).
#[inline(always)]
fn sort_records<T: Copy, const S: usize, const RV: usize>(
    records: &[T],
    ids: &[u32],
    cnt: &mut [u32],
    local: &mut [T],
    dump: u32,
) -> bool {
    let mut ok = records.len() >= ids.len() * S;
    for (rec, &k) in records.chunks_exact(S).zip(ids) {
        if k == dump {
            continue;
        }
        let Some(q) = cnt.get_mut(k as usize) else {
            ok = false;
            continue;
        };
        let o = *q as usize * RV;
        *q += 1;
        match (local.get_mut(o..o + RV), rec.get(..RV)) {
            (Some(dst), Some(src)) => dst.copy_from_slice(src),
            _ => ok = false,
        }
    }
    ok
}

/// The state a checkpoint saves.
struct State {
    /// Pass-1 counts per cell.
    counts: Vec<u32>,
    /// Pass 2: the next chunk, the next position of every cell, the workers' value statistics.
    next: usize,
    cursor: Vec<u64>,
    vals: Vec<Vec<CellValues>>,
    /// After pass 2: the CRC-32 of every cell's records (not checkpointed).
    crcs: Vec<u32>,
}

struct Pass<'a> {
    job: &'a BuildJob,
    src: &'a PointSource,
    progress: &'a Progress,
}

impl Pass<'_> {
    fn path(&self) -> &Path {
        &self.job.paths.partial
    }

    fn axes(&self) -> Result<(Axis, Axis)> {
        let e = self.job.meta.extent();
        let n = self.job.meta.side();
        Axis::new(e.xmin, e.xmax, n)
            .zip(Axis::new(e.ymin, e.ymax, n))
            .ok_or_else(|| Error::bad_input(&self.src.path, "the points' range cannot be binned in float64"))
    }

    fn changed(&self) -> Error {
        Error::bad_input(&self.src.path, "the file changed while it was being indexed (counts differ between passes)")
    }

    fn run(&self) -> Result<BuildReport> {
        let meta = &self.job.meta;
        let cells = self.job.layout.cells as usize;
        let threads = rayon::current_num_threads().max(1);
        let mut report = BuildReport::default();
        let p = self.progress;
        p.total.store(self.src.len, Ordering::Relaxed);
        let t0 = Instant::now();
        let state = self.load_checkpoint();
        let mut st = match state {
            Some(s) => {
                let skipped = self.src.len + (s.next as u64 * CHUNK_RECORDS).min(self.src.len);
                p.resumed_from.store(skipped, Ordering::Relaxed);
                report.resumed = skipped;
                s
            }
            None => {
                // Pass 1: the count kernel over the grid.
                p.epoch.store(1, Ordering::Relaxed);
                p.done.store(0, Ordering::Relaxed);
                let e = meta.extent();
                let n = meta.side();
                let plan = BinPlan::new(&self.src.path, &e, n, n, Agg::Count, None, self.src.columns)?;
                let (grid, sk) = bin_feed(&Counting { src: self.src, progress: p }, &self.src.path, &plan)?;
                let Grid::Count(counts) = grid else { return Err(self.changed()) };
                let total: u64 = counts.iter().map(|&c| u64::from(c)).sum();
                if sk.outside != 0 || sk.nonfinite != meta.nonfinite || total != meta.indexed {
                    return Err(self.changed());
                }
                let s = State { counts, next: 0, cursor: Vec::new(), vals: Vec::new(), crcs: Vec::new() };
                self.checkpoint(&s, 1)?;
                s
            }
        };
        report.pass1_s = t0.elapsed().as_secs_f64();
        let mut offsets = Vec::with_capacity(cells + 1);
        let mut acc = 0u64;
        offsets.push(0);
        for &c in &st.counts {
            acc += u64::from(c);
            offsets.push(acc);
        }
        if st.cursor.len() != cells {
            st.cursor = offsets[..cells].to_vec();
        }
        let has_value = meta.value_column.is_some();
        if has_value && st.vals.len() != threads {
            // A checkpoint of another thread count: fold its statistics into the first worker.
            let mut v = vec![empty_vals(cells); threads];
            for w in &st.vals {
                for (a, b) in v[0].iter_mut().zip(w) {
                    merge_acc(a, b);
                }
            }
            st.vals = v;
        }
        let t1 = Instant::now();
        let r = self.pass2(&mut st, &offsets, threads);
        report.pass2_s = t1.elapsed().as_secs_f64();
        r?;
        let t2 = Instant::now();
        self.finish(&st, &offsets)?;
        report.finish_s = t2.elapsed().as_secs_f64();
        Ok(report)
    }

    fn pass2(&self, st: &mut State, offsets: &[u64], threads: usize) -> Result<()> {
        let meta = &self.job.meta;
        let layout = &self.job.layout;
        let cells = layout.cells as usize;
        let p = self.progress;
        p.epoch.store(2, Ordering::Relaxed);
        p.done.store((st.next as u64 * CHUNK_RECORDS).min(self.src.len), Ordering::Relaxed);
        let (ax, ay) = self.axes()?;
        let dump = cells as u32;
        let rv = meta.record_values as usize;
        let value_col = meta.value_column;
        let nchunks = self.src.chunk_count();
        // SAFETY: the file is ours (created and locked by this build) and is not resized while mapped; the
        // map is dropped at the end of this function, before the file is renamed and reopened.
        let mut map = unsafe { memmap2::MmapMut::map_mut(&self.job.file) }.map_err(io(self.path()))?;
        let pts = &mut map[layout.points_at as usize..];
        let mut workers: Vec<Worker> = (0..threads)
            .map(|t| Worker {
                ids: Vec::new(),
                cnt: vec![0; cells],
                pos: vec![0; cells],
                vals: st.vals.get_mut(t).map(std::mem::take).unwrap_or_default(),
                local: LocalBuf::default(),
                buf: ChunkBuf::default(),
                bad: false,
            })
            .collect();
        self.src.advise_sequential();
        let every = checkpoint_every();
        let mut last = Instant::now();
        let result = (|| -> Result<()> {
            macro_rules! go {
                ($t:ty, $v:ident) => {{
                    let out: Out<$t> = match bytemuck::try_cast_slice_mut::<u8, $t>(pts) {
                        Ok(s) => Out { ptr: s.as_mut_ptr(), len: s.len() },
                        Err(_) => return Err(Error::cache(self.path(), "misaligned point area")),
                    };
                    out.populate();
                    while st.next < nchunks {
                        let after = p.cancel_after.load(Ordering::Relaxed);
                        let stop =
                            p.cancel.load(Ordering::Relaxed) || (after > 0 && p.done.load(Ordering::Relaxed) >= after);
                        if stop {
                            self.save_pass2(st, &mut workers)?;
                            return Err(Error::Cancelled);
                        }
                        let base = st.next;
                        for i in base + threads..(base + 2 * threads).min(nchunks) {
                            self.src.prefetch(i);
                        }
                        // Cells and per-cell counts of one chunk per worker.
                        workers.par_iter_mut().enumerate().for_each(|(t, w)| {
                            w.ids.clear();
                            w.cnt.iter_mut().for_each(|c| *c = 0);
                            let i = base + t;
                            if i < nchunks {
                                let Worker { ids, buf, .. } = w;
                                self.src.with_chunk(i, None, buf, |c| chunk_cells(&c, &ax, &ay, dump, ids));
                                for &k in w.ids.iter() {
                                    if let Some(c) = w.cnt.get_mut(k as usize) {
                                        *c += 1;
                                    }
                                }
                            }
                        });
                        // Each worker's first position in every cell: after the earlier chunks' points.
                        for k in 0..cells {
                            let mut c = st.cursor[k];
                            for w in workers.iter_mut() {
                                w.pos[k] = c;
                                c += u64::from(w.cnt[k]);
                            }
                            if c > offsets[k + 1] {
                                return Err(self.changed());
                            }
                            st.cursor[k] = c;
                        }
                        let out = &out;
                        workers.par_iter_mut().enumerate().for_each(|(t, w)| {
                            let i = base + t;
                            if i < nchunks {
                                let mut buf = std::mem::take(&mut w.buf);
                                self.src.with_chunk(i, value_col, &mut buf, |c| match c {
                                    Chunk::$v(c) => scatter_any(&c, w, out, rv, dump),
                                    _ => w.bad = true,
                                });
                                w.buf = buf;
                            }
                        });
                        if workers.iter().any(|w| w.bad) {
                            return Err(self.changed());
                        }
                        self.src.check_faulted()?;
                        let end = (base + threads).min(nchunks);
                        st.next = end;
                        p.done.store((end as u64 * CHUNK_RECORDS).min(self.src.len), Ordering::Relaxed);
                        if st.next < nchunks && last.elapsed() >= every {
                            self.save_pass2(st, &mut workers)?;
                            last = Instant::now();
                        }
                    }
                    Ok(())
                }};
            }
            if self.src.dtype == crate::dtype::DType::F32 {
                go!(f32, F32)
            } else {
                go!(f64, F64)
            }
        })();
        st.vals = workers.into_iter().map(|w| w.vals).collect();
        result?;
        // Every cell's checksum, read back from the map (all cores).
        let pts = &map[layout.points_at as usize..];
        let rb = layout.record_bytes as usize;
        st.crcs = (0..cells)
            .into_par_iter()
            .map(|k| {
                let (a, b) = (offsets[k] as usize * rb, offsets[k + 1] as usize * rb);
                crc32fast::hash(pts.get(a..b).unwrap_or(&[]))
            })
            .collect();
        // Not flushed to disk here (nor synced in `finish`): the kernel writes the file back in its own
        // time. Every byte a reader trusts is checked against a CRC first (header, offsets, pyramids, and
        // each cell's points before a render uses them), so a file left incomplete by a power loss is found
        // damaged, deleted and rebuilt, never used; waiting for 2.4 GB to reach the disk took ~0.3-0.5 s of
        // a 2 s build.
        drop(map);
        Ok(())
    }

    /// Saves a pass-2 checkpoint (the workers' value statistics lent to the state meanwhile).
    fn save_pass2(&self, st: &mut State, workers: &mut [Worker]) -> Result<()> {
        st.vals = workers.iter_mut().map(|w| std::mem::take(&mut w.vals)).collect();
        let r = self.checkpoint(st, 2);
        for (w, v) in workers.iter_mut().zip(st.vals.iter_mut()) {
            w.vals = std::mem::take(v);
        }
        r
    }

    /// Writes the tables (offsets, pyramids) and the footer, and renames the file into place (not synced: see
    /// the end of `pass2`).
    fn finish(&self, st: &State, offsets: &[u64]) -> Result<()> {
        let layout = &self.job.layout;
        let cells = layout.cells as usize;
        if st.cursor.iter().zip(&offsets[1..]).any(|(c, o)| c != o) || st.cursor.len() != cells {
            return Err(self.changed());
        }
        let level = layout.level;
        let path = self.path();
        let file = &self.job.file;
        // Count pyramid, finest level first, then each level from the one below.
        let mut counts: Vec<Vec<u64>> = vec![st.counts.iter().map(|&c| u64::from(c)).collect()];
        let mut vals: Vec<Vec<CellValues>> = Vec::new();
        if layout.values_at.is_some() {
            let mut v = empty_vals(cells);
            for w in &st.vals {
                for (a, b) in v.iter_mut().zip(w) {
                    merge_acc(a, b);
                }
            }
            vals.push(v);
        }
        for l in (0..level).rev() {
            let n = 1usize << l;
            let below = counts.last().map_or(&[][..], |v| v.as_slice());
            let mut c = vec![0u64; n * n];
            let mut v = empty_vals(if vals.is_empty() { 0 } else { n * n });
            let vb = vals.last();
            for r in 0..2 * n {
                for q in 0..2 * n {
                    let (k, up) = (r * 2 * n + q, (r / 2) * n + q / 2);
                    c[up] += below[k];
                    if let (Some(vb), Some(a)) = (vb, v.get_mut(up)) {
                        merge_acc(a, &vb[k]);
                    }
                }
            }
            counts.push(c);
            if !vals.is_empty() {
                vals.push(v);
            }
        }
        let mut bytes = Vec::with_capacity((layout.points_at - layout.offsets_at) as usize);
        offsets.iter().for_each(|o| bytes.extend_from_slice(&o.to_ne_bytes()));
        if st.crcs.len() != cells {
            return Err(self.changed());
        }
        st.crcs.iter().for_each(|c| bytes.extend_from_slice(&c.to_ne_bytes()));
        let offsets_crc = crc32fast::hash(&bytes);
        let pyr_at = bytes.len();
        for c in counts.iter().rev() {
            c.iter().for_each(|o| bytes.extend_from_slice(&o.to_ne_bytes()));
        }
        for v in vals.iter().rev() {
            for a in v {
                let mut a = *a;
                if a.valued == 0 {
                    (a.min, a.max) = (f64::NAN, f64::NAN);
                }
                bytes.extend_from_slice(&a.to_bytes());
            }
        }
        bytes.resize((layout.points_at - layout.offsets_at) as usize, 0);
        let pyramid_crc = crc32fast::hash(&bytes[pyr_at..]);
        file.write_all_at(&bytes, layout.offsets_at).map_err(io(path))?;
        file.write_all_at(&footer_bytes(offsets_crc, pyramid_crc), FOOTER_AT).map_err(io(path))?;
        let done = &self.job.paths.done;
        std::fs::rename(path, done).map_err(io(done))?;
        let _ = std::fs::remove_file(&self.job.paths.resume);
        Ok(())
    }

    /// What ties a checkpoint to its partial file: a hash of the file's header.
    fn meta_key(&self) -> u64 {
        diskcache::fnv1a(&serde_json::to_vec(&self.job.meta).unwrap_or_default(), 0)
    }

    /// Writes the state: after pass 1 (`phase` 1: the counts) or at a round boundary of pass 2.
    fn checkpoint(&self, st: &State, phase: u8) -> Result<()> {
        let mut b = Vec::new();
        b.extend_from_slice(b"VVPIRES1");
        b.extend_from_slice(&self.meta_key().to_le_bytes());
        b.push(phase);
        b.extend_from_slice(&(st.next as u64).to_le_bytes());
        b.extend_from_slice(&(st.vals.len() as u64).to_le_bytes());
        st.counts.iter().for_each(|c| b.extend_from_slice(&c.to_le_bytes()));
        if phase == 2 {
            st.cursor.iter().for_each(|c| b.extend_from_slice(&c.to_le_bytes()));
            for w in &st.vals {
                b.extend_from_slice(&(w.len() as u64).to_le_bytes());
                w.iter().for_each(|a| b.extend_from_slice(&a.to_bytes()));
            }
        }
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        let resume = &self.job.paths.resume;
        let tmp = resume.with_extension("resume-tmp");
        std::fs::write(&tmp, &b).and_then(|_| std::fs::rename(&tmp, resume)).map_err(io(resume))
    }

    /// The state of the last checkpoint, if it belongs to this partial file and reads back whole.
    fn load_checkpoint(&self) -> Option<State> {
        if !self.job.resuming {
            return None;
        }
        let b = std::fs::read(&self.job.paths.resume).ok()?;
        if b.len() < 37 || &b[..8] != b"VVPIRES1" {
            return None;
        }
        let (body, crc) = b.split_at(b.len() - 4);
        if crc32fast::hash(body) != u32::from_le_bytes(crc.try_into().ok()?) {
            return None;
        }
        let u64_at = |at: usize| -> Option<u64> { Some(u64::from_le_bytes(body.get(at..at + 8)?.try_into().ok()?)) };
        if u64_at(8)? != self.meta_key() {
            return None;
        }
        let phase = *body.get(16)?;
        let next = u64_at(17)? as usize;
        let nvals = u64_at(25)? as usize;
        let cells = self.job.layout.cells as usize;
        let mut at = 33;
        let counts: Vec<u32> = body
            .get(at..at + 4 * cells)?
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap_or([0; 4])))
            .collect();
        at += 4 * cells;
        let mut st = State { counts, next: 0, cursor: Vec::new(), vals: Vec::new(), crcs: Vec::new() };
        if phase == 2 {
            if next > self.src.chunk_count() {
                return None;
            }
            st.next = next;
            st.cursor = super::u64s(body.get(at..at + 8 * cells)?).iter().map(|v| u64::from_le(*v)).collect();
            at += 8 * cells;
            for _ in 0..nvals {
                let k = u64_at(at)? as usize;
                if k != 0 && k != cells {
                    return None;
                }
                let w = body.get(at + 8..at + 8 + 32 * k)?;
                st.vals.push(w.chunks_exact(32).map(CellValues::from_bytes).collect());
                at += 8 + 32 * k;
            }
        } else if phase != 1 {
            return None;
        }
        (at == body.len()).then_some(st)
    }
}

#[inline(never)]
fn scatter_any<T: Elem>(c: &Cols<'_, T>, w: &mut Worker, out: &Out<T>, rv: usize, dump: u32) {
    scatter(c, w, out, rv, dump)
}

/// Adds per-cell statistics `b` into `a` (min +inf / max −inf meaning none).
fn merge_acc(a: &mut CellValues, b: &CellValues) {
    a.valued += b.valued;
    a.sum += b.sum;
    a.min = a.min.min(b.min);
    a.max = a.max.max(b.max);
}
