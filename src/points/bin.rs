//! Binning points into a W×H grid with datashader's rule (bit for bit), in parallel over mmap'd chunks:
//! data bounds, extents, and the per-pixel aggregates count, sum, mean, min and max.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::source::points::{CachedBounds, Chunk, ChunkBuf, Cols, PointSource};

/// A data-space rectangle: keep a point iff xmin ≤ x ≤ xmax and ymin ≤ y ≤ ymax (in float64).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Extent {
    pub xmin: f64,
    pub ymin: f64,
    pub xmax: f64,
    pub ymax: f64,
}

/// The widest grid side binning takes (`render --points` sizes, index grids): extents are padded so
/// that an axis of this many pixels can be binned.
pub const MAX_SIDE: usize = 1 << 16;

impl Extent {
    /// Widens every axis too thin to bin (all points share an x or y, or they differ by less than float64
    /// can resolve into [`MAX_SIDE`] pixels at their magnitude, e.g. all x ≈ 1e300); returns which axes
    /// were padded. A thin axis becomes its centre ± 0.5 (as datashader pads equal values) where that can
    /// be binned, else its centre ± |v|·2⁻³³ (v its largest magnitude; |v| beyond about 1e10).
    pub fn padded(self) -> (Extent, bool, bool) {
        let (xmin, xmax, px) = pad_axis(self.xmin, self.xmax);
        let (ymin, ymax, py) = pad_axis(self.ymin, self.ymax);
        (Extent { xmin, ymin, xmax, ymax }, px, py)
    }
}

/// One axis of [`Extent::padded`].
fn pad_axis(lo: f64, hi: f64) -> (f64, f64, bool) {
    if !(lo.is_finite() && hi.is_finite()) || Axis::new(lo, hi, MAX_SIDE).is_some() {
        return (lo, hi, false);
    }
    let (a, b) = (lo.min(hi), lo.max(hi));
    let c = a * 0.5 + b * 0.5;
    // ±0.5 where that can be binned (datashader's padding of equal values), else relative to the magnitude.
    let half = Axis::new(c - 0.5, c + 0.5, MAX_SIDE).is_some();
    let p = if half { 0.5 } else { (a.abs().max(b.abs()) * (2f64).powi(-33)).max(0.5) };
    let (mut lo2, mut hi2) = (c - p, c + p);
    if !hi2.is_finite() {
        hi2 = f64::MAX;
        lo2 = hi2 - 2.0 * p;
    }
    if !lo2.is_finite() {
        lo2 = -f64::MAX;
        hi2 = lo2 + 2.0 * p;
    }
    (lo2, hi2, true)
}

/// The per-pixel reduction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Agg {
    #[default]
    Count,
    Sum,
    Mean,
    Min,
    Max,
}

impl Agg {
    pub const ALL: [Agg; 5] = [Agg::Count, Agg::Sum, Agg::Mean, Agg::Min, Agg::Max];
    pub fn name(self) -> &'static str {
        match self {
            Agg::Count => "count",
            Agg::Sum => "sum",
            Agg::Mean => "mean",
            Agg::Min => "min",
            Agg::Max => "max",
        }
    }
    pub fn parse(s: &str) -> Option<Agg> {
        Agg::ALL.into_iter().find(|a| a.name() == s.to_ascii_lowercase())
    }
    pub fn needs_value(self) -> bool {
        self != Agg::Count
    }
}

/// An aggregate grid, row 0 = lowest y (datashader's orientation).
#[derive(Debug, Clone, PartialEq)]
pub enum Grid {
    /// Points per pixel (datashader's `count()` is uint32 too).
    Count(Vec<u32>),
    /// sum/mean/min/max; NaN where no point (with a non-NaN value) fell.
    Float(Vec<f64>),
}

/// Counts of what a pass skipped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Skipped {
    /// Points whose x or y is NaN or ±inf.
    pub nonfinite: u64,
    /// Finite points outside the extent.
    pub outside: u64,
    /// Kept points whose value is NaN (not aggregated).
    pub nan_values: u64,
}

impl Skipped {
    pub(crate) fn add(&mut self, o: Skipped) {
        self.nonfinite += o.nonfinite;
        self.outside += o.outside;
        self.nan_values += o.nan_values;
    }
}

/// The bounds of the finite points, and how many points had non-finite coordinates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    /// `None` when no point has finite x and y.
    pub extent: Option<Extent>,
    pub finite: u64,
    pub nonfinite: u64,
    /// Read from the cache rather than computed by this call.
    pub cached: bool,
}

/// Something binning can read in numbered chunks: the point file itself, or ranges of an index's cells.
pub(crate) trait ChunkFeed: Sync {
    /// Number of chunks.
    fn chunk_count(&self) -> usize;
    /// Announces a front-to-back pass (readahead). Advice only.
    fn advise_sequential(&self) {}
    /// Asks the kernel to start reading chunk `i`. Advice only.
    fn prefetch(&self, _i: usize) {}
    /// Calls `f` with chunk `i` as typed columns; `value` asks for the value column too.
    fn with_chunk<R>(&self, i: usize, value: Option<u64>, buf: &mut ChunkBuf, f: impl FnOnce(Chunk<'_>) -> R) -> R;
    /// An error if a read met a file that shrank underneath.
    fn check_faulted(&self) -> Result<()>;
    /// True once the pass should stop taking chunks (a cancelled viewer request).
    fn stopped(&self) -> bool {
        false
    }
}

impl ChunkFeed for PointSource {
    fn chunk_count(&self) -> usize {
        PointSource::chunk_count(self)
    }
    fn advise_sequential(&self) {
        PointSource::advise_sequential(self)
    }
    fn prefetch(&self, i: usize) {
        PointSource::prefetch(self, i)
    }
    fn with_chunk<R>(&self, i: usize, value: Option<u64>, buf: &mut ChunkBuf, f: impl FnOnce(Chunk<'_>) -> R) -> R {
        PointSource::with_chunk(self, i, value, buf, f)
    }
    fn check_faulted(&self) -> Result<()> {
        PointSource::check_faulted(self)
    }
}

/// Every `every`-th chunk of a point file (0, every, 2·every, …; 1 = all of them), optionally stopping when
/// `cancel` is set: the feed of viewer previews and cancellable passes.
struct Sampled<'a> {
    src: &'a PointSource,
    every: usize,
    cancel: Option<&'a AtomicBool>,
}

impl ChunkFeed for Sampled<'_> {
    fn chunk_count(&self) -> usize {
        self.src.chunk_count().div_ceil(self.every.max(1))
    }
    fn advise_sequential(&self) {
        if self.every <= 1 {
            self.src.advise_sequential()
        }
    }
    fn prefetch(&self, i: usize) {
        self.src.prefetch(i * self.every.max(1))
    }
    fn with_chunk<R>(&self, i: usize, value: Option<u64>, buf: &mut ChunkBuf, f: impl FnOnce(Chunk<'_>) -> R) -> R {
        self.src.with_chunk(i * self.every.max(1), value, buf, f)
    }
    fn check_faulted(&self) -> Result<()> {
        self.src.check_faulted()
    }
    fn stopped(&self) -> bool {
        self.cancel.is_some_and(|c| c.load(Ordering::Relaxed))
    }
}

/// Runs `work(chunk_index, state)` over every chunk on all rayon threads (one state per thread,
/// chunks handed out in order), then returns the states.
fn par_chunks<F: ChunkFeed, S: Send>(
    src: &F,
    init: impl Fn() -> S + Sync,
    work: impl Fn(usize, &mut S) + Sync,
) -> Vec<S> {
    let n = src.chunk_count();
    let threads = rayon::current_num_threads().clamp(1, n.max(1));
    let next = AtomicUsize::new(0);
    let out = Mutex::new(Vec::with_capacity(threads));
    src.advise_sequential();
    rayon::scope(|s| {
        for _ in 0..threads {
            s.spawn(|_| {
                let mut st = init();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n || src.stopped() {
                        break;
                    }
                    if i + threads < n {
                        src.prefetch(i + threads);
                    }
                    work(i, &mut st);
                }
                if let Ok(mut o) = out.lock() {
                    o.push(st);
                }
            });
        }
    });
    out.into_inner().unwrap_or_default()
}

/// min/max of the points with finite x and y: from the cache of an earlier pass over the same file, else
/// one parallel pass (then cached).
pub fn data_bounds(src: &PointSource) -> Result<Bounds> {
    if let Some(c) = src.cached_bounds() {
        let extent = c.extent.map(|[xmin, ymin, xmax, ymax]| Extent { xmin, ymin, xmax, ymax });
        return Ok(Bounds { extent, finite: c.finite, nonfinite: c.nonfinite, cached: true });
    }
    let b = scan_bounds(src)?;
    src.store_bounds(&CachedBounds {
        extent: b.extent.map(|e| [e.xmin, e.ymin, e.xmax, e.ymax]),
        finite: b.finite,
        nonfinite: b.nonfinite,
    });
    Ok(b)
}

/// One parallel pass: min/max of the points with finite x and y.
pub fn scan_bounds(src: &PointSource) -> Result<Bounds> {
    scan_bounds_sampled(src, 1)
}

/// `scan_bounds` over every `every`-th chunk only (a quick estimate; counts are the sample's).
pub fn scan_bounds_sampled(src: &PointSource, every: usize) -> Result<Bounds> {
    let feed = Sampled { src, every, cancel: None };
    #[derive(Clone, Copy)]
    struct B {
        xmin: f64,
        xmax: f64,
        ymin: f64,
        ymax: f64,
        finite: u64,
        nonfinite: u64,
    }
    let init = || B {
        xmin: f64::INFINITY,
        xmax: f64::NEG_INFINITY,
        ymin: f64::INFINITY,
        ymax: f64::NEG_INFINITY,
        finite: 0,
        nonfinite: 0,
    };
    fn scan_points<T: Copy + Into<f64>>(pts: impl Iterator<Item = (T, T)>, n: usize, b: &mut B) {
        let (mut xmin, mut xmax, mut ymin, mut ymax) = (b.xmin, b.xmax, b.ymin, b.ymax);
        let mut finite = 0u64;
        for (x, y) in pts {
            let (x, y): (f64, f64) = (x.into(), y.into());
            if x.is_finite() & y.is_finite() {
                // Plain compares (rarely true once the bounds settle), not NaN-aware min/max.
                if x < xmin {
                    xmin = x;
                }
                if x > xmax {
                    xmax = x;
                }
                if y < ymin {
                    ymin = y;
                }
                if y > ymax {
                    ymax = y;
                }
                finite += 1;
            }
        }
        *b = B { xmin, xmax, ymin, ymax, finite: b.finite + finite, nonfinite: b.nonfinite + (n as u64 - finite) };
    }
    fn scan<T: Copy + Into<f64>>(c: &Cols<'_, T>, b: &mut B) {
        let (xi, yi) = (c.offsets[0], c.offsets[1]);
        match c.stride {
            2 if xi < 2 && yi < 2 && !c.records.is_empty() => {
                scan_points(c.records.chunks_exact(2).map(|r| (r[xi], r[yi])), c.len, b)
            }
            3 if xi < 3 && yi < 3 && !c.records.is_empty() => {
                scan_points(c.records.chunks_exact(3).map(|r| (r[xi], r[yi])), c.len, b)
            }
            _ => scan_points(
                c.x.iter().step_by(c.stride).zip(c.y.iter().step_by(c.stride)).take(c.len).map(|(x, y)| (*x, *y)),
                c.len,
                b,
            ),
        }
    }
    let states = par_chunks(
        &feed,
        || (init(), ChunkBuf::default()),
        |i, (b, buf)| {
            feed.with_chunk(i, None, buf, |c| match c {
                Chunk::F32(c) => scan(&c, b),
                Chunk::F64(c) => scan(&c, b),
            })
        },
    );
    src.check_faulted()?;
    let mut t = init();
    for (b, _) in states {
        t.xmin = t.xmin.min(b.xmin);
        t.xmax = t.xmax.max(b.xmax);
        t.ymin = t.ymin.min(b.ymin);
        t.ymax = t.ymax.max(b.ymax);
        t.finite += b.finite;
        t.nonfinite += b.nonfinite;
    }
    let extent = (t.finite > 0).then_some(Extent { xmin: t.xmin, ymin: t.ymin, xmax: t.xmax, ymax: t.ymax });
    Ok(Bounds { extent, finite: t.finite, nonfinite: t.nonfinite, cached: false })
}

/// The binning transform of one axis: index = trunc(v·s + t), clamped to n − 1 (datashader's rule).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Axis {
    lo: f64,
    hi: f64,
    s: f64,
    t: f64,
    n: usize,
    /// The window of indexes binned (`w0..w0 + wn`; the whole axis unless windowed): a strip of a big
    /// grid, indexed by the whole grid's rule, stored from 0.
    w0: usize,
    wn: usize,
}

impl Axis {
    /// `None` when the transform overflows or cannot resolve pixels (an extent too narrow or too far out
    /// for float64 binning).
    ///
    /// The rule is datashader's: s = n / (hi − lo), t = −lo·s. When hi − lo overflows (an extent across
    /// most of float64's range, e.g. −1.7e308 … 1.7e308) it is computed on the halved extent,
    /// s = n / (hi/2 − lo/2) / 2, which is the same value wherever hi − lo is finite (halving is exact).
    /// An axis is refused when |lo|·s or |hi|·s reaches 2⁵⁰: v·s + t then rounds by a quarter pixel or
    /// more (a region only a few thousand ulps wide at its magnitude).
    pub(crate) fn new(lo: f64, hi: f64, n: usize) -> Option<Axis> {
        if !(lo.is_finite() && hi.is_finite() && hi > lo && n > 0) {
            return None;
        }
        let span = hi - lo;
        let s = if span.is_finite() { n as f64 / span } else { n as f64 / (hi * 0.5 - lo * 0.5) * 0.5 };
        let t = -lo * s;
        // Every v in [lo, hi] then has a finite v·s (between lo·s and hi·s) and 0 ≤ v·s + t ≲ n.
        let resolved = (lo.abs() * s).max(hi.abs() * s) < (2f64).powi(50);
        let ok = s.is_finite() && s > 0.0 && t.is_finite() && (hi * s).is_finite() && resolved;
        ok.then_some(Axis { lo, hi, s, t, n, w0: 0, wn: n })
    }
    /// The axis binning only indexes `first..first + count` (of the whole axis's `n`), stored from 0.
    pub(crate) fn windowed(self, first: usize, count: usize) -> Axis {
        let w0 = first.min(self.n);
        Axis { w0, wn: count.min(self.n - w0), ..self }
    }
    /// `index` for a value known to lie in [lo, hi]: the truncation needs no saturation.
    #[inline(always)]
    pub(crate) fn index_kept(&self, v: f64) -> usize {
        let f = v * self.s + self.t;
        // SAFETY: `v` is in [lo, hi] (callers substitute `lo` for points they drop) and `new` checked that
        // s, t, lo·s and hi·s are finite, so `f` is finite and in [0, n + ε]: representable as i64.
        let i = unsafe { f.to_int_unchecked::<i64>() } as usize;
        i.min(self.n - 1)
    }
    #[inline(always)]
    fn index(&self, v: f64) -> usize {
        // v ≥ lo makes v·s + t ≥ 0; the cast truncates toward zero (and saturates; NaN gives 0).
        // Points not kept may give anything in 0..n; callers drop them.
        ((v * self.s + self.t) as i64).clamp(0, self.n as i64 - 1) as usize
    }
}

/// Per-thread accumulation grids.
struct Acc {
    count: Vec<u32>,
    /// sum (sum, mean), running min or max; unused for count.
    val: Vec<f64>,
    skipped: Skipped,
    buf: ChunkBuf,
}

#[inline(always)]
fn bin_count<T: Copy + Into<f64>>(c: &Cols<'_, T>, ax: &Axis, ay: &Axis, grid: &mut [u32], sk: &mut Skipped) {
    let (xi, yi) = (c.offsets[0], c.offsets[1]);
    let nonfinite = match c.stride {
        // Whole records of 2 or 3 values (the common layouts): a loop the compiler can keep tight.
        2 if (xi, yi) == (0, 1) && !c.records.is_empty() => count_records::<T, 2>(c.records, ax, ay, grid),
        2 if (xi, yi) == (0, 1) && !c.records.is_empty() => count_records::<T, 2>(c.records, ax, ay, grid),
        2 if xi < 2 && yi < 2 && !c.records.is_empty() => {
            count_points(c.records.chunks_exact(2).map(|r| (r[xi], r[yi])), ax, ay, grid)
        }
        3 if (xi, yi) == (0, 1) && !c.records.is_empty() => count_records::<T, 3>(c.records, ax, ay, grid),
        3 if xi < 3 && yi < 3 && !c.records.is_empty() => {
            count_points(c.records.chunks_exact(3).map(|r| (r[xi], r[yi])), ax, ay, grid)
        }
        _ => count_points(
            c.x.iter().step_by(c.stride).zip(c.y.iter().step_by(c.stride)).take(c.len).map(|(x, y)| (*x, *y)),
            ax,
            ay,
            grid,
        ),
    };
    sk.nonfinite += nonfinite;
}

/// Points per batch of the count kernel: indices first (branch-free), then the increments (independent
/// memory accesses the CPU overlaps).
const BATCH: usize = 512;

/// The grid cell of one point, `dump` when the point is not kept (datashader's rule: dropped points are
/// binned at (lo, lo) so the truncation needs no saturation, then sent to `dump`).
#[inline(always)]
fn point_cell(x: f64, y: f64, ax: &Axis, ay: &Axis, dump: usize) -> usize {
    let keep = (x >= ax.lo) & (x <= ax.hi) & (y >= ay.lo) & (y <= ay.hi);
    let (xk, yk) = if keep { (x, y) } else { (ax.lo, ay.lo) };
    let r = ay.index_kept(yk).wrapping_sub(ay.w0);
    let k = r.wrapping_mul(ax.n).wrapping_add(ax.index_kept(xk));
    if keep & (r < ay.wn) {
        k
    } else {
        dump
    }
}

/// The count kernel: `grid` has one extra cell at the end that collects the points not kept.
/// Returns how many points had non-finite coordinates.
#[inline(always)]
fn count_points<T: Copy + Into<f64>>(
    mut pts: impl Iterator<Item = (T, T)>,
    ax: &Axis,
    ay: &Axis,
    grid: &mut [u32],
) -> u64 {
    let dump = grid.len() - 1;
    let mut nonfinite = 0u64;
    let mut idx = [0usize; BATCH];
    loop {
        let mut n = 0;
        for (slot, (x, y)) in idx.iter_mut().zip(&mut pts) {
            let (x, y): (f64, f64) = (x.into(), y.into());
            *slot = point_cell(x, y, ax, ay, dump);
            nonfinite += u64::from(!(x.is_finite() & y.is_finite()));
            n += 1;
        }
        for &k in &idx[..n] {
            if let Some(g) = grid.get_mut(k) {
                *g += 1;
            }
        }
        if n < BATCH {
            return nonfinite;
        }
    }
}

/// Records of `C` values with x, y in columns 0 and 1: whole batches through a fixed-length loop the
/// compiler can vectorize (with AVX2 when the CPU has it), the rest through `count_points`.
fn count_records<T: Copy + Into<f64>, const C: usize>(rec: &[T], ax: &Axis, ay: &Axis, grid: &mut [u32]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            return unsafe { count_records_avx2::<T, C>(rec, ax, ay, grid) };
        }
    }
    count_records_any::<T, C>(rec, ax, ay, grid)
}

/// `count_records_any` compiled for AVX2.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn count_records_avx2<T: Copy + Into<f64>, const C: usize>(
    rec: &[T],
    ax: &Axis,
    ay: &Axis,
    grid: &mut [u32],
) -> u64 {
    count_records_any::<T, C>(rec, ax, ay, grid)
}

/// The cells of one whole batch of `C`-value records (x, y in columns 0 and 1) into `idx`, `dump` for the
/// points not kept; returns how many had non-finite coordinates. Branch-free, so it vectorizes.
#[inline(always)]
fn batch_cells<T: Copy + Into<f64>, const C: usize>(b: &[T], ax: &Axis, ay: &Axis, dump: u32, idx: &mut [u32]) -> u32 {
    // Grids have at most 2^26 pixels (checked by callers' size limit), so u32/i32 hold every index.
    let w = ax.n as u32;
    let (xmax_i, ymax_i) = (ax.n as i32 - 1, ay.n as i32 - 1);
    let mut nf = 0u32;
    for (slot, r) in idx.iter_mut().zip(b.chunks_exact(C)) {
        let (x, y): (f64, f64) = (r[0].into(), r[1].into());
        let keep = (x >= ax.lo) & (x <= ax.hi) & (y >= ay.lo) & (y <= ay.hi);
        let xk = if keep { x } else { ax.lo };
        let yk = if keep { y } else { ay.lo };
        let (fx, fy) = (xk * ax.s + ax.t, yk * ay.s + ay.t);
        // SAFETY: xk, yk lie in the extent and `Axis::new` checked the transform is finite, so fx, fy are
        // in [0, n + ε] with n ≤ 65536: representable as i32.
        let (col, row) = unsafe { (fx.to_int_unchecked::<i32>(), fy.to_int_unchecked::<i32>()) };
        // The row within the window (the whole grid's row minus the window's first).
        let r = row.min(ymax_i).wrapping_sub(ay.w0 as i32) as u32;
        let k = r.wrapping_mul(w).wrapping_add(col.min(xmax_i) as u32);
        *slot = if keep & (r < ay.wn as u32) { k } else { dump };
        nf += u32::from(!(x.is_finite() & y.is_finite()));
    }
    nf
}

#[inline(always)]
fn count_records_any<T: Copy + Into<f64>, const C: usize>(rec: &[T], ax: &Axis, ay: &Axis, grid: &mut [u32]) -> u64 {
    let dump = (grid.len() - 1) as u32;
    let mut nonfinite = 0u64;
    let mut idx = [0u32; BATCH];
    let mut batches = rec.chunks_exact(C * BATCH);
    for b in &mut batches {
        nonfinite += u64::from(batch_cells::<T, C>(b, ax, ay, dump, &mut idx));
        for &k in &idx {
            if let Some(g) = grid.get_mut(k as usize) {
                *g += 1;
            }
        }
    }
    nonfinite + count_points(batches.remainder().chunks_exact(C).map(|r| (r[0], r[1])), ax, ay, grid)
}

/// The grid cell of every point of a chunk (`ax.n × ay.n` cells, row 0 = lowest y; `dump` for points not
/// kept), by exactly the rule and code of the count kernel, into `out` (resized to the chunk's length).
/// Returns how many points had non-finite coordinates.
pub(crate) fn chunk_cells(c: &Chunk<'_>, ax: &Axis, ay: &Axis, dump: u32, out: &mut Vec<u32>) -> u64 {
    match c {
        Chunk::F32(c) => cols_cells(c, ax, ay, dump, out),
        Chunk::F64(c) => cols_cells(c, ax, ay, dump, out),
    }
}

fn cols_cells<T: Copy + Into<f64>>(c: &Cols<'_, T>, ax: &Axis, ay: &Axis, dump: u32, out: &mut Vec<u32>) -> u64 {
    out.clear();
    out.resize(c.len, dump);
    let (xi, yi) = (c.offsets[0], c.offsets[1]);
    match c.stride {
        2 if (xi, yi) == (0, 1) && !c.records.is_empty() => records_cells::<T, 2>(c.records, ax, ay, dump, out),
        3 if (xi, yi) == (0, 1) && !c.records.is_empty() => records_cells::<T, 3>(c.records, ax, ay, dump, out),
        _ => {
            let pts = c.x.iter().step_by(c.stride).zip(c.y.iter().step_by(c.stride)).take(c.len);
            points_cells(pts.map(|(x, y)| (*x, *y)), ax, ay, dump, out)
        }
    }
}

fn points_cells<T: Copy + Into<f64>>(
    pts: impl Iterator<Item = (T, T)>,
    ax: &Axis,
    ay: &Axis,
    dump: u32,
    out: &mut [u32],
) -> u64 {
    let mut nonfinite = 0u64;
    for (slot, (x, y)) in out.iter_mut().zip(pts) {
        let (x, y): (f64, f64) = (x.into(), y.into());
        *slot = point_cell(x, y, ax, ay, dump as usize) as u32;
        nonfinite += u64::from(!(x.is_finite() & y.is_finite()));
    }
    nonfinite
}

fn records_cells<T: Copy + Into<f64>, const C: usize>(
    rec: &[T],
    ax: &Axis,
    ay: &Axis,
    dump: u32,
    out: &mut [u32],
) -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            return unsafe { records_cells_avx2::<T, C>(rec, ax, ay, dump, out) };
        }
    }
    records_cells_any::<T, C>(rec, ax, ay, dump, out)
}

/// `records_cells_any` compiled for AVX2.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn records_cells_avx2<T: Copy + Into<f64>, const C: usize>(
    rec: &[T],
    ax: &Axis,
    ay: &Axis,
    dump: u32,
    out: &mut [u32],
) -> u64 {
    records_cells_any::<T, C>(rec, ax, ay, dump, out)
}

#[inline(always)]
fn records_cells_any<T: Copy + Into<f64>, const C: usize>(
    rec: &[T],
    ax: &Axis,
    ay: &Axis,
    dump: u32,
    out: &mut [u32],
) -> u64 {
    let mut nonfinite = 0u64;
    let mut batches = rec.chunks_exact(C * BATCH);
    let mut outs = out.chunks_exact_mut(BATCH);
    for (b, o) in (&mut batches).zip(&mut outs) {
        nonfinite += u64::from(batch_cells::<T, C>(b, ax, ay, dump, o));
    }
    let rest = batches.remainder().chunks_exact(C).map(|r| (r[0], r[1]));
    nonfinite + points_cells(rest, ax, ay, dump, outs.into_remainder())
}

#[inline(always)]
fn bin_value<T: Copy + Into<f64>>(c: &Cols<'_, T>, ax: &Axis, ay: &Axis, agg: Agg, acc: &mut Acc) {
    let w = ax.n;
    let vals = c.value.unwrap_or(&[]);
    let it = c.x.iter().step_by(c.stride).zip(c.y.iter().step_by(c.stride)).zip(vals.iter().step_by(c.stride));
    for ((x, y), v) in it.take(c.len) {
        let (x, y, v): (f64, f64, f64) = ((*x).into(), (*y).into(), (*v).into());
        let r = if x >= ax.lo && x <= ax.hi && y >= ay.lo && y <= ay.hi {
            ay.index(y).wrapping_sub(ay.w0)
        } else {
            usize::MAX
        };
        if r < ay.wn {
            if v.is_nan() {
                acc.skipped.nan_values += 1;
                continue;
            }
            let k = r * w + ax.index(x);
            let (Some(n), Some(a)) = (acc.count.get_mut(k), acc.val.get_mut(k)) else { continue };
            *n += 1;
            match agg {
                Agg::Min => *a = a.min(v),
                Agg::Max => *a = a.max(v),
                _ => *a += v,
            }
        } else if !(x.is_finite() && y.is_finite()) {
            acc.skipped.nonfinite += 1;
        } else {
            acc.skipped.outside += 1;
        }
    }
}

/// The largest memory all threads' private grids may take together; fewer threads beyond it.
const GRID_BUDGET: usize = 1 << 30;

/// The checked inputs of a binning pass: the axes of the grid, its size, the aggregate and value column.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BinPlan {
    pub ax: Axis,
    pub ay: Axis,
    pub cells: usize,
    pub agg: Agg,
    pub value_col: Option<u64>,
}

impl BinPlan {
    /// Checks a request against a point file whose records have `columns` values and whose value column
    /// (for sum/mean/min/max) would be `value_col`.
    pub(crate) fn new(
        path: &Path,
        extent: &Extent,
        w: usize,
        h: usize,
        agg: Agg,
        value_col: Option<u64>,
        columns: u64,
    ) -> Result<BinPlan> {
        let finite = [extent.xmin, extent.xmax, extent.ymin, extent.ymax].iter().all(|v| v.is_finite());
        if !(finite && extent.xmax > extent.xmin && extent.ymax > extent.ymin) {
            return Err(Error::request(path, "the region must be finite with XMIN < XMAX and YMIN < YMAX"));
        }
        let cells = w
            .checked_mul(h)
            .filter(|&c| c > 0)
            .ok_or_else(|| Error::request(path, "the output size is empty or too large"))?;
        let value_col = if agg.needs_value() {
            Some(value_col.ok_or_else(|| {
                Error::request(
                    path,
                    format!(
                        "--agg {} needs a value column: the records have only {columns} values (give --value COLUMN)",
                        agg.name(),
                    ),
                )
            })?)
        } else {
            None
        };
        let axes = Axis::new(extent.xmin, extent.xmax, w).zip(Axis::new(extent.ymin, extent.ymax, h));
        let (ax, ay) = axes.ok_or_else(|| {
            Error::request(path, "the region is too narrow (or too far out) to bin in float64: choose a wider --region")
        })?;
        Ok(BinPlan { ax, ay, cells, agg, value_col })
    }

    /// The plan binning only rows `rows` of the grid (a strip: each point's row by the whole grid's rule,
    /// points of other rows counted as outside), into a `w × rows.len()` grid.
    pub(crate) fn rows(self, rows: std::ops::Range<usize>) -> BinPlan {
        let ay = self.ay.windowed(rows.start, rows.end.saturating_sub(rows.start));
        BinPlan { ay, cells: self.ax.n * ay.wn, ..self }
    }
}

/// Bins every point of `src` into a `w`×`h` grid over `extent` (which must have positive width and height).
pub fn aggregate(src: &PointSource, extent: &Extent, w: usize, h: usize, agg: Agg) -> Result<(Grid, Skipped)> {
    aggregate_rows(src, extent, w, h, 0..h, agg)
}

/// Rows `rows` of [`aggregate`]'s `w`×`h` grid (a `w × rows.len()` grid, its row 0 = row `rows.start`),
/// every point's row by the whole grid's rule, so that the strips of a grid put together are the grid.
/// The points of other rows count as outside.
pub fn aggregate_rows(
    src: &PointSource,
    extent: &Extent,
    w: usize,
    h: usize,
    rows: std::ops::Range<usize>,
    agg: Agg,
) -> Result<(Grid, Skipped)> {
    let plan = BinPlan::new(&src.path, extent, w, h, agg, src.value_column(), src.columns)?.rows(rows);
    bin_feed(src, &src.path, &plan)
}

/// `aggregate` over the points of every `every`-th chunk of `CHUNK_RECORDS` records only (a strided sample for a
/// quick preview; `every` = 1 is `aggregate`). Counts and sums are those of the sample, not scaled up. Setting
/// `cancel` stops the pass at the next chunk with `Error::Cancelled` (a viewer whose view moved on).
pub fn aggregate_sampled(
    src: &PointSource,
    extent: &Extent,
    w: usize,
    h: usize,
    agg: Agg,
    every: usize,
    cancel: Option<&AtomicBool>,
) -> Result<(Grid, Skipped)> {
    let plan = BinPlan::new(&src.path, extent, w, h, agg, src.value_column(), src.columns)?;
    let r = bin_feed(&Sampled { src, every, cancel }, &src.path, &plan)?;
    if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
        return Err(Error::Cancelled);
    }
    Ok(r)
}

/// Bins every chunk of `feed` per `plan` (all cores, one private grid per thread), merges the grids and
/// counts what was skipped. The one binning code of full scans and index queries.
pub(crate) fn bin_feed<F: ChunkFeed>(feed: &F, path: &Path, plan: &BinPlan) -> Result<(Grid, Skipped)> {
    let BinPlan { ax, ay, cells, agg, value_col } = *plan;
    let per_thread = cells * if agg.needs_value() { 12 } else { 4 };
    let pool_threads = rayon::current_num_threads().min((GRID_BUDGET / per_thread.max(1)).max(1));
    let run = || {
        par_chunks(
            feed,
            || Acc {
                count: vec![0u32; cells + 1],
                val: if agg.needs_value() {
                    vec![
                        match agg {
                            Agg::Min => f64::INFINITY,
                            Agg::Max => f64::NEG_INFINITY,
                            _ => 0.0,
                        };
                        cells
                    ]
                } else {
                    Vec::new()
                },
                skipped: Skipped::default(),
                buf: ChunkBuf::default(),
            },
            |i, acc| {
                let mut buf = std::mem::take(&mut acc.buf);
                feed.with_chunk(i, value_col, &mut buf, |c| match (c, agg) {
                    (Chunk::F32(c), Agg::Count) => bin_count(&c, &ax, &ay, &mut acc.count, &mut acc.skipped),
                    (Chunk::F64(c), Agg::Count) => bin_count(&c, &ax, &ay, &mut acc.count, &mut acc.skipped),
                    (Chunk::F32(c), _) => bin_value(&c, &ax, &ay, agg, acc),
                    (Chunk::F64(c), _) => bin_value(&c, &ax, &ay, agg, acc),
                });
                acc.buf = buf;
            },
        )
    };
    let accs = if pool_threads < rayon::current_num_threads() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(pool_threads)
            .build()
            .map_err(|e| Error::request(path, format!("cannot start worker threads: {e}")))?;
        pool.install(run)
    } else {
        run()
    };
    feed.check_faulted()?;
    let mut it = accs.into_iter();
    let Some(mut total) = it.next() else {
        return Ok((empty_grid(agg, cells), Skipped::default()));
    };
    for a in it {
        total.skipped.add(a.skipped);
        merge(&mut total, &a, agg);
    }
    // The extra cell: points the count kernel did not keep (value aggregates count theirs as they go).
    if let Some(missed) = total.count.pop() {
        if agg == Agg::Count {
            total.skipped.outside = u64::from(missed).saturating_sub(total.skipped.nonfinite);
        }
    }
    let grid = match agg {
        Agg::Count => Grid::Count(total.count),
        _ => {
            let mut v = total.val;
            for (x, &n) in v.iter_mut().zip(&total.count) {
                if n == 0 {
                    *x = f64::NAN;
                } else if agg == Agg::Mean {
                    *x /= f64::from(n);
                }
            }
            Grid::Float(v)
        }
    };
    Ok((grid, total.skipped))
}

fn empty_grid(agg: Agg, cells: usize) -> Grid {
    match agg {
        Agg::Count => Grid::Count(vec![0; cells]),
        _ => Grid::Float(vec![f64::NAN; cells]),
    }
}

/// Adds thread grid `a` into `total`, in parallel over pixel bands.
fn merge(total: &mut Acc, a: &Acc, agg: Agg) {
    use rayon::prelude::*;
    const BAND: usize = 1 << 16;
    total.count.par_chunks_mut(BAND).zip(a.count.par_chunks(BAND)).for_each(|(t, s)| {
        for (t, s) in t.iter_mut().zip(s) {
            *t = t.wrapping_add(*s);
        }
    });
    if agg.needs_value() {
        total.val.par_chunks_mut(BAND).zip(a.val.par_chunks(BAND)).for_each(|(t, s)| {
            for (t, s) in t.iter_mut().zip(s) {
                *t = match agg {
                    Agg::Min => t.min(*s),
                    Agg::Max => t.max(*s),
                    _ => *t + *s,
                };
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_follows_datashader_rule() {
        let Some(a) = Axis::new(-10.0, 10.0, 1024) else { panic!("axis") };
        assert!(Axis::new(0.0, 1e-320, 1024).is_none());
        assert_eq!(a.index_kept(10.0), 1023);
        assert_eq!(a.index(-10.0), 0);
        assert_eq!(a.index(10.0), 1023);
        assert_eq!(a.index(0.0), 512);
        assert_eq!(a.index(-10.0 + 20.0 / 1024.0), 1);
        let (e, px, py) = Extent { xmin: 1.0, xmax: 1.0, ymin: 0.0, ymax: 2.0 }.padded();
        assert!(px && !py);
        assert_eq!((e.xmin, e.xmax), (0.5, 1.5));
        // ±0.5 is lost at 1e300: padded relative to the magnitude instead, and then binnable.
        let (e, px, py) = Extent { xmin: 1e300, xmax: 1e300, ymin: 0.0, ymax: 0.0 }.padded();
        assert!(px && py);
        assert!(e.xmin < 1e300 && e.xmax > 1e300 && (e.ymin, e.ymax) == (-0.5, 0.5));
        assert!(Axis::new(e.xmin, e.xmax, MAX_SIDE).is_some());
        // A span of one ulp at 1e300 is too thin to bin: padded too; a user region that thin is refused.
        let up = f64::from_bits(1e300f64.to_bits() + 1);
        assert!(Axis::new(1e300, up, 1024).is_none());
        let (e, px, _) = Extent { xmin: 1e300, xmax: up, ymin: 0.0, ymax: 1.0 }.padded();
        assert!(px && Axis::new(e.xmin, e.xmax, MAX_SIDE).is_some());
        // At the top of the range the padding stays finite.
        let (e, px, _) = Extent { xmin: f64::MAX, xmax: f64::MAX, ymin: 0.0, ymax: 1.0 }.padded();
        assert!(px && e.xmax == f64::MAX && e.xmin < f64::MAX);
        // An extent whose width overflows: halved rule, the same s as datashader's where that is finite.
        let Some(a) = Axis::new(-1.7e308, 1.7e308, 1000) else { panic!("wide axis") };
        assert_eq!(a.index(-1.7e308), 0);
        assert_eq!(a.index(0.0), 500);
        assert_eq!(a.index(1.7e308), 999);
        let (lo, hi) = (-1e300f64, 3e300f64);
        assert_eq!(1000.0 / (hi * 0.5 - lo * 0.5) * 0.5, 1000.0 / (hi - lo));
    }
}
