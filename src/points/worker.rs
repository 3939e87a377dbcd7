//! Background aggregation for viewers: one thread per open point set, the newest request wins, results come
//! back over a channel (a quick preview first for big views, then the exact grid). `aggregate_view` is the one
//! place that bins a view: through the spatial index when the cache has one (or one is built in the background),
//! else by a scan of the file.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::error::Result;
use crate::points::bin::{aggregate_sampled, data_bounds, scan_bounds_sampled, Agg, Bounds, Extent, Grid, Skipped};
use crate::points::index::{build_or_find, PointIndex};
use crate::points::shade::{palette_thresholds, PointScale};
use crate::source::points::{open_points, PointSource, PointSpec, CHUNK_RECORDS};

/// Point sets of at least this many chunks (of `CHUNK_RECORDS` records) get a preview before each exact grid.
pub const PREVIEW_MIN_CHUNKS: usize = 24;
/// A preview bins about this many chunks, spread evenly over the file.
pub const PREVIEW_CHUNKS: usize = 12;

/// Bins the points of every `every`-th chunk (1 = all) into a `w`×`h` grid over `extent`, with datashader's rule;
/// `cancel` set stops a scan early (`Error::Cancelled`). The one aggregation call of the viewer: an exact grid
/// comes from the spatial index when there is one (the same grid, reading only the cells under the view).
#[allow(clippy::too_many_arguments)]
pub fn aggregate_view(
    src: &PointSource,
    index: Option<&PointIndex>,
    extent: &Extent,
    w: usize,
    h: usize,
    agg: Agg,
    every: usize,
    cancel: &AtomicBool,
) -> Result<(Grid, Skipped)> {
    match index {
        Some(ix) if every <= 1 => ix.aggregate(extent, w, h, agg),
        _ => aggregate_sampled(src, extent, w, h, agg, every, Some(cancel)),
    }
}

/// The index slot a worker reads before each job (filled at open from the cache, or by a background build).
type IndexSlot = Arc<Mutex<Option<Arc<PointIndex>>>>;

/// A background index build: its progress (bytes), and its outcome once finished.
pub struct IndexBuild {
    pub progress: Arc<crate::pyramid::Progress>,
    /// None while running; then Ok or the error message.
    pub outcome: Arc<Mutex<Option<std::result::Result<(), String>>>>,
    pub started: Instant,
}

impl Drop for IndexBuild {
    /// Closing the file stops the build at its next checkpoint; a later build resumes it.
    fn drop(&mut self) {
        self.progress.cancel.store(true, Ordering::Relaxed);
    }
}

/// One view to aggregate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ViewRequest {
    /// Increases with every request; a result carries the generation it answers.
    pub gen: u64,
    pub extent: Extent,
    pub w: usize,
    pub h: usize,
    pub agg: Agg,
}

/// An aggregated view, ready to upload: the grid, what it counts, and the palette thresholds of each scale.
#[derive(Debug, Clone)]
pub struct ViewGrid {
    pub req: ViewRequest,
    pub grid: Grid,
    pub skipped: Skipped,
    /// 1 for the exact grid; k for a preview from every k-th chunk.
    pub every: usize,
    /// Points binned into the grid (in the sample, for a preview).
    pub in_view: u64,
    /// Points in the chunks read (all points for an exact grid).
    pub read: u64,
    pub secs: f64,
    /// `palette_thresholds` for each of `PointScale::ALL`, in that order.
    pub thresholds: [[f64; 256]; 3],
    /// Smallest and largest non-empty value (None when the view is empty).
    pub range: Option<(f64, f64)>,
}

impl ViewGrid {
    pub fn is_preview(&self) -> bool {
        self.every > 1
    }
    /// The thresholds of `scale`.
    pub fn thresholds_of(&self, scale: PointScale) -> &[f64; 256] {
        let i = PointScale::ALL.iter().position(|s| *s == scale).unwrap_or(0);
        &self.thresholds[i]
    }
    /// The grid value at column `c`, row `r` (row 0 = lowest y): None where empty.
    pub fn value(&self, c: usize, r: usize) -> Option<f64> {
        if c >= self.req.w || r >= self.req.h {
            return None;
        }
        let k = r * self.req.w + c;
        match &self.grid {
            Grid::Count(v) => v.get(k).filter(|n| **n > 0).map(|n| f64::from(*n)),
            Grid::Float(v) => v.get(k).copied().filter(|x| !x.is_nan()),
        }
    }
    /// The grid as f32 texels, NaN where empty (row 0 = lowest y).
    pub fn texels(&self) -> Vec<f32> {
        match &self.grid {
            Grid::Count(v) => v.iter().map(|&n| if n == 0 { f32::NAN } else { n as f32 }).collect(),
            Grid::Float(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }
}

/// What the worker sends back.
#[derive(Debug)]
pub enum WorkerMsg {
    /// The point set is open (text converted into its cached binary, when it is text).
    Opened(Arc<PointSource>),
    /// Data bounds: `exact` from a full pass (or the cache), else from the preview's sample of chunks.
    Bounds {
        bounds: Bounds,
        exact: bool,
    },
    Grid(Box<ViewGrid>),
    /// Exact grids now come from this index file; None: the index was found damaged, deleted, and views are
    /// scanned again.
    Index(Option<PathBuf>),
    /// Aggregating request `gen` failed; generation 0: opening the file or its bounds failed.
    Failed {
        gen: u64,
        msg: String,
    },
}

/// The handle a viewer keeps: send requests, receive results. Dropping it stops the thread after its current job.
pub struct PointWorker {
    tx: Sender<ViewRequest>,
    rx: Receiver<WorkerMsg>,
    aggregations: Arc<AtomicU64>,
    /// Set with every request: the aggregation under way stops at its next chunk (its view is stale).
    cancel: Arc<AtomicBool>,
    index: IndexSlot,
    wake: Arc<dyn Fn() + Send + Sync>,
}

impl PointWorker {
    /// Starts the thread, which opens the point set (converting text once, off the caller's thread) and reports
    /// it, then the data bounds (cached, or a sample's then the exact ones), then answers requests.
    /// `wake` is called after every message (the window's repaint request).
    pub fn open(path: PathBuf, spec: PointSpec, wake: Arc<dyn Fn() + Send + Sync>) -> std::io::Result<PointWorker> {
        Self::spawn(Box::new(move || open_points(&path, &spec).map(Arc::new)), wake, None)
    }

    /// Starts the thread on an open point set with the preview stride given (None: exact grids only).
    pub fn start_with(
        src: Arc<PointSource>,
        wake: Arc<dyn Fn() + Send + Sync>,
        preview: Option<usize>,
    ) -> std::io::Result<PointWorker> {
        Self::spawn(Box::new(move || Ok(src)), wake, Some(preview))
    }

    fn spawn(
        open: Box<dyn FnOnce() -> Result<Arc<PointSource>> + Send>,
        wake: Arc<dyn Fn() + Send + Sync>,
        preview: Option<Option<usize>>,
    ) -> std::io::Result<PointWorker> {
        let (tx, req_rx) = mpsc::channel::<ViewRequest>();
        let (msg_tx, rx) = mpsc::channel();
        let aggregations = Arc::new(AtomicU64::new(0));
        let count = aggregations.clone();
        let cancel = Arc::new(AtomicBool::new(false));
        let stop = cancel.clone();
        let index: IndexSlot = Arc::new(Mutex::new(None));
        let slot = index.clone();
        let wake2 = wake.clone();
        std::thread::Builder::new().name("vastview-points".into()).spawn(move || {
            let src = match open() {
                Ok(s) => s,
                Err(e) => {
                    let _ = msg_tx.send(WorkerMsg::Failed { gen: 0, msg: e.to_string() });
                    return wake();
                }
            };
            let preview = preview.unwrap_or_else(|| preview_every(&src));
            if msg_tx.send(WorkerMsg::Opened(src.clone())).is_err() {
                return;
            }
            // A complete index in the cache serves the exact grids (a damaged one is deleted, with a note).
            if let Ok(Some(ix)) = PointIndex::find(&src) {
                let _ = msg_tx.send(WorkerMsg::Index(Some(ix.path().to_path_buf())));
                *slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::new(ix));
            }
            wake();
            run(&src, preview, &slot, &req_rx, &msg_tx, &count, &stop, wake.as_ref());
        })?;
        Ok(PointWorker { tx, rx, aggregations, cancel, index, wake: wake2 })
    }

    /// Asks for a view: an older request not yet started is dropped, and one being aggregated stops.
    pub fn request(&self, r: ViewRequest) {
        self.cancel.store(true, Ordering::Relaxed);
        let _ = self.tx.send(r);
    }

    /// Builds (or resumes) the spatial index of `src` on its own thread; when it is complete, the exact grids of
    /// later requests come from it.
    pub fn build_index(&self, src: Arc<PointSource>) -> IndexBuild {
        let progress = Arc::new(crate::pyramid::Progress::default());
        let outcome = Arc::new(Mutex::new(None));
        let (p, o, slot, wake) = (progress.clone(), outcome.clone(), self.index.clone(), self.wake.clone());
        let spawned = std::thread::Builder::new().name("vastview-index".into()).spawn(move || {
            let r = build_or_find(&src, &p).map(|(ix, _)| {
                *slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::new(ix));
            });
            *o.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(r.map_err(|e| e.to_string()));
            wake();
        });
        if let Err(e) = spawned {
            *outcome.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Err(e.to_string()));
        }
        IndexBuild { progress, outcome, started: Instant::now() }
    }

    /// Whether exact grids come from an index now.
    pub fn has_index(&self) -> bool {
        self.index.lock().is_ok_and(|s| s.is_some())
    }

    /// The next message, if any (never blocks).
    pub fn poll(&self) -> Option<WorkerMsg> {
        self.rx.try_recv().ok()
    }

    /// Aggregations run so far (previews included).
    pub fn aggregations(&self) -> u64 {
        self.aggregations.load(Ordering::Relaxed)
    }
}

impl Drop for PointWorker {
    /// Closing the point set stops a scan under way at its next chunk; the thread then ends (its channel is closed).
    fn drop(&mut self) {
        self.cancel.store(true, Ordering::Relaxed);
    }
}

/// The preview stride for `src`: None when a full pass is quick anyway.
pub fn preview_every(src: &PointSource) -> Option<usize> {
    let chunks = src.chunk_count();
    (chunks >= PREVIEW_MIN_CHUNKS).then_some(chunks / PREVIEW_CHUNKS)
}

/// Records in chunks 0, every, 2·every, …
fn sampled_records(src: &PointSource, every: usize) -> u64 {
    (0..src.chunk_count()).step_by(every.max(1)).map(|i| (src.len - i as u64 * CHUNK_RECORDS).min(CHUNK_RECORDS)).sum()
}

#[allow(clippy::too_many_arguments)]
fn run(
    src: &PointSource,
    preview: Option<usize>,
    slot: &IndexSlot,
    req_rx: &Receiver<ViewRequest>,
    tx: &Sender<WorkerMsg>,
    count: &AtomicU64,
    cancel: &AtomicBool,
    wake: &(dyn Fn() + Send + Sync),
) {
    let send = |m: WorkerMsg| {
        let ok = tx.send(m).is_ok();
        wake();
        ok
    };
    let mut bounds_exact = false;
    match (src.cached_bounds().is_some(), preview) {
        // Cached, or small enough for one quick pass.
        (true, _) | (false, None) => {
            let r = data_bounds(src);
            bounds_exact = true;
            if !send(match r {
                Ok(b) => WorkerMsg::Bounds { bounds: b, exact: true },
                Err(e) => WorkerMsg::Failed { gen: 0, msg: e.to_string() },
            }) {
                return;
            }
        }
        (false, Some(every)) => {
            if !send(match scan_bounds_sampled(src, every) {
                Ok(b) => WorkerMsg::Bounds { bounds: b, exact: false },
                Err(e) => WorkerMsg::Failed { gen: 0, msg: e.to_string() },
            }) {
                return;
            }
        }
    }
    // The newest request waiting (blocking for one when none is).
    let newest = |first: Option<ViewRequest>| -> Option<ViewRequest> {
        let mut r = match first {
            Some(r) => r,
            None => req_rx.recv().ok()?,
        };
        loop {
            match req_rx.try_recv() {
                Ok(n) => r = n,
                Err(TryRecvError::Empty) => return Some(r),
                Err(TryRecvError::Disconnected) => return None,
            }
        }
    };
    let pending = || -> Option<Option<ViewRequest>> {
        match req_rx.try_recv() {
            Ok(r) => Some(Some(r)),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => Some(None),
        }
    };
    let mut next: Option<ViewRequest> = None;
    'jobs: loop {
        let Some(req) = newest(next.take()) else { return };
        // Cleared once the channel is drained: a request sent from here on cancels this job. (One whose flag was
        // set just before this line is not lost: it is in the channel, checked before the exact pass and taken
        // next.)
        cancel.store(false, Ordering::Relaxed);
        let mut index = slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        // A preview only when the exact pass is long: a big set with no index, or a view holding many points.
        let many = (PREVIEW_MIN_CHUNKS as u64) * CHUNK_RECORDS;
        let preview = preview.filter(|_| index.as_ref().is_none_or(|ix| ix.points_in(&req.extent) >= many));
        let passes: Vec<usize> = match preview {
            Some(every) => vec![every, 1],
            None => vec![1],
        };
        for every in passes {
            if every == 1 && !bounds_exact {
                // The exact bounds (one pass, then cached) before the first exact grid.
                bounds_exact = true;
                if let Ok(b) = data_bounds(src) {
                    if !send(WorkerMsg::Bounds { bounds: b, exact: true }) {
                        return;
                    }
                    // A viewer that fitted the sample's bounds refits to these within a frame: wait that long for
                    // its request rather than aggregate a view about to be replaced.
                    match req_rx.recv_timeout(std::time::Duration::from_millis(250)) {
                        Ok(r) => {
                            next = Some(r);
                            continue 'jobs;
                        }
                        Err(mpsc::RecvTimeoutError::Disconnected) => return,
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                    }
                }
            }
            if every == 1 {
                // A newer view supersedes this one before its (long) exact pass.
                match pending() {
                    Some(Some(r)) => {
                        next = Some(r);
                        continue 'jobs;
                    }
                    Some(None) => return,
                    None => {}
                }
            }
            let t0 = Instant::now();
            count.fetch_add(1, Ordering::Relaxed);
            // Only a long pass (the exact one of a set big enough for previews) can be cancelled: short ones always
            // finish, so a view moving every frame still gets a grid as fast as they come (no starvation).
            let never = AtomicBool::new(false);
            let stop = if every == 1 && preview.is_some() { cancel } else { &never };
            let mut r = aggregate_view(src, index.as_deref(), &req.extent, req.w, req.h, req.agg, every, stop);
            if let (Err(e @ crate::error::Error::Cache { path, .. }), Some(_)) = (&r, &index) {
                // A damaged index (a cell failing its checksum): deleted, as `render` does, and this view scanned.
                eprintln!("vastview: {e}; deleted it (views are scanned; the side panel can build it again)");
                let _ = std::fs::remove_file(path);
                *slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
                index = None;
                if !send(WorkerMsg::Index(None)) {
                    return;
                }
                r = aggregate_view(src, None, &req.extent, req.w, req.h, req.agg, every, stop);
            }
            let msg = match r {
                Ok((grid, skipped)) => {
                    let read = if every == 1 { src.len } else { sampled_records(src, every) };
                    let in_view = match &grid {
                        Grid::Count(c) => c.iter().map(|&n| u64::from(n)).sum(),
                        Grid::Float(_) => read.saturating_sub(skipped.nonfinite + skipped.outside),
                    };
                    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
                    match &grid {
                        Grid::Count(c) => c.iter().filter(|&&n| n > 0).for_each(|&n| {
                            lo = lo.min(f64::from(n));
                            hi = hi.max(f64::from(n));
                        }),
                        Grid::Float(v) => v.iter().filter(|x| !x.is_nan()).for_each(|&x| {
                            lo = lo.min(x);
                            hi = hi.max(x);
                        }),
                    }
                    let thresholds = PointScale::ALL.map(|s| palette_thresholds(&grid, s));
                    WorkerMsg::Grid(Box::new(ViewGrid {
                        req,
                        grid,
                        skipped,
                        every,
                        in_view,
                        read,
                        secs: t0.elapsed().as_secs_f64(),
                        thresholds,
                        range: (lo <= hi).then_some((lo, hi)),
                    }))
                }
                // Stopped by a request sent while it ran: take the newest (this one again when the request that
                // cancelled it was already drained into it).
                Err(crate::error::Error::Cancelled) => {
                    next = Some(req);
                    continue 'jobs;
                }
                Err(e) => WorkerMsg::Failed { gen: req.gen, msg: e.to_string() },
            };
            if !send(msg) {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::points::bin::aggregate;
    use crate::source::points::{open_points, PointSpec};
    use std::time::Duration;

    fn recv(w: &PointWorker) -> WorkerMsg {
        for _ in 0..3000 {
            if let Some(m) = w.poll() {
                return m;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("no message from the worker in 15 s");
    }

    #[test]
    fn preview_then_exact_bounds_and_grid() {
        // 2.5 chunks of (x, y) float32 records: x = i mod 1000, y = i / 1000 (so the sample misses the top rows).
        let n = 2 * CHUNK_RECORDS + CHUNK_RECORDS / 2;
        let path = std::env::temp_dir().join(format!("vastview-worker-{}.bin", std::process::id()));
        let bytes: Vec<u8> =
            (0..n).flat_map(|i| [(i % 1000) as f32, (i / 1000) as f32]).flat_map(f32::to_le_bytes).collect();
        std::fs::write(&path, bytes).expect("write");
        let spec = PointSpec { dtype: Some(crate::dtype::DType::F32), columns: Some(2), ..Default::default() };
        let src = Arc::new(open_points(&path, &spec).expect("open"));
        let w = PointWorker::start_with(src.clone(), Arc::new(|| {}), Some(2)).expect("start");
        let WorkerMsg::Opened(s) = recv(&w) else { panic!("opened first") };
        assert_eq!(s.len, n);
        // The sample (chunks 0 and 2) holds the lowest and highest rows, so its bounds are the exact ones; both
        // arrive, the sample's first and marked inexact.
        let WorkerMsg::Bounds { bounds: b0, exact: false } = recv(&w) else { panic!("sample bounds first") };
        let e = b0.extent.expect("finite");
        assert_eq!(b0.finite, CHUNK_RECORDS + CHUNK_RECORDS / 2);
        let req = ViewRequest { gen: 1, extent: e, w: 64, h: 48, agg: Agg::Count };
        w.request(req);
        let WorkerMsg::Grid(p) = recv(&w) else { panic!("preview grid") };
        assert!(p.is_preview() && p.every == 2 && p.req == req);
        assert_eq!(p.in_view, CHUNK_RECORDS + CHUNK_RECORDS / 2, "the sample's points");
        let WorkerMsg::Bounds { bounds: b1, exact: true } = recv(&w) else { panic!("exact bounds") };
        assert_eq!(b1.finite, n);
        let WorkerMsg::Grid(g) = recv(&w) else { panic!("exact grid") };
        assert!(!g.is_preview());
        let (want, _) = aggregate(&src, &e, 64, 48, Agg::Count).expect("aggregate");
        assert_eq!(g.grid, want);
        assert_eq!(g.in_view, n);
        assert_eq!(w.aggregations(), 2);
        assert_eq!(g.thresholds_of(PointScale::EqHist), &palette_thresholds(&want, PointScale::EqHist));

        // A cancelled pass stops with `Cancelled`; a burst of requests ends with the newest view's exact grid.
        let stop = AtomicBool::new(true);
        let r = aggregate_view(&src, None, &e, 64, 48, Agg::Count, 1, &stop);
        assert!(matches!(r, Err(crate::error::Error::Cancelled)), "{r:?}");
        let mut last = 0;
        for gen in 2..=6 {
            let mut q = req;
            q.gen = gen;
            q.w = 60 + gen as usize;
            w.request(q);
        }
        loop {
            match recv(&w) {
                WorkerMsg::Grid(g) => {
                    assert!(g.req.gen >= last, "results in request order");
                    last = g.req.gen;
                    if g.req.gen == 6 && !g.is_preview() {
                        assert_eq!(g.req.w, 66);
                        break;
                    }
                }
                m => panic!("unexpected {m:?}"),
            }
        }
        let _ = std::fs::remove_file(&path);
    }
}
