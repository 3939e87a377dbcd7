//! Tests of the tile cache: completeness, load order, cancellation, budget, failures and shutdown.

use crate::pyramid::levels::tile_texels;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::*;
use crate::geom::Rect;
use crate::source::demo::DemoSource;
use crate::source::{RegionBuf, SourceInfo};

const PATIENCE: Duration = Duration::from_secs(10);

/// Polls `done` every millisecond; fails the test after `PATIENCE`.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The demo field with every read logged, and reads that can be held at a gate, slowed, failed or panicked.
struct Probe {
    inner: DemoSource,
    reads: Mutex<Vec<(Rect, Instant)>>,
    gate: Mutex<bool>,
    opened: Condvar,
    fail: AtomicBool,
    panic: AtomicBool,
    delay: Duration,
}

impl Probe {
    fn new(w: u64, h: u64, delay: Duration) -> Arc<Probe> {
        Arc::new(Probe {
            inner: DemoSource::new(w, h),
            reads: Mutex::new(Vec::new()),
            gate: Mutex::new(true),
            opened: Condvar::new(),
            fail: AtomicBool::new(false),
            panic: AtomicBool::new(false),
            delay,
        })
    }
    /// Reads from now on wait at the gate until `release`.
    fn hold(&self) {
        *self.gate.lock().unwrap() = false;
    }
    fn release(&self) {
        *self.gate.lock().unwrap() = true;
        self.opened.notify_all();
    }
    fn reads(&self) -> Vec<Rect> {
        self.reads.lock().unwrap().iter().map(|r| r.0).collect()
    }
    fn read_times(&self) -> Vec<Instant> {
        self.reads.lock().unwrap().iter().map(|r| r.1).collect()
    }
}

impl ArraySource for Probe {
    fn info(&self) -> &SourceInfo {
        self.inner.info()
    }
    fn read_region(&self, slice: u64, rect: Rect, out: &mut RegionBuf) -> Result<()> {
        self.reads.lock().unwrap().push((rect, Instant::now()));
        let open = self.gate.lock().unwrap();
        let (open, timeout) = self.opened.wait_timeout_while(open, PATIENCE, |open| !*open).unwrap();
        drop(open);
        if timeout.timed_out() {
            return Err(Error::request(&self.info().path, "the test gate was never opened"));
        }
        std::thread::sleep(self.delay);
        if self.fail.load(Ordering::SeqCst) {
            return Err(Error::request(&self.info().path, "injected failure"));
        }
        assert!(!self.panic.load(Ordering::SeqCst), "injected panic");
        self.inner.read_region(slice, rect, out)
    }
    fn sample_grid(&self, slice: u64, xs: &[u64], ys: &[u64]) -> Result<Vec<f64>> {
        self.inner.sample_grid(slice, xs, ys)
    }
}

fn tile(level: u32, tx: u64, ty: u64) -> TileId {
    TileId { slice: 0, level, tx, ty }
}
fn visible(id: TileId, priority: f64) -> TileRequest {
    TileRequest { id, tier: Tier::Visible, priority }
}
fn prefetch(id: TileId, priority: f64) -> TileRequest {
    TileRequest { id, tier: Tier::Prefetch, priority }
}
fn no_wake() -> Arc<dyn Fn() + Send + Sync> {
    Arc::new(|| {})
}
/// The data rectangle of a level-0 tile of 64-pixel tiles.
fn rect64(tx: u64, ty: u64) -> Rect {
    Rect::new(tx * 64, ty * 64, tx * 64 + 64, ty * 64 + 64)
}

#[test]
fn everything_requested_becomes_ready_and_matches_tile_texels() {
    let src = Arc::new(DemoSource::new(600, 400));
    let levels = Levels::new(600, 400, 64);
    assert_eq!(levels.count, 5);
    let wakes = Arc::new(AtomicUsize::new(0));
    let w = Arc::clone(&wakes);
    let cache = TileCache::new(
        src.clone(),
        levels,
        4,
        u64::MAX,
        Arc::new(move || {
            w.fetch_add(1, Ordering::SeqCst);
        }),
    )
    .unwrap();
    assert_eq!(cache.threads(), 4);
    let mut wanted = Vec::new();
    for level in (0..levels.count).rev() {
        let g = levels.grid(level);
        for ty in 0..g.rows() {
            for tx in 0..g.cols() {
                wanted.push(visible(tile(level, tx, ty), f64::from(level) * -1000.0 + (tx + ty) as f64));
            }
        }
    }
    assert_eq!(wanted.len(), 70 + 20 + 6 + 2 + 1);
    cache.request(&wanted);
    wait_until("all tiles ready", || cache.stats().ready == wanted.len());

    let mut taken = cache.take_ready();
    assert_eq!(taken.len(), wanted.len());
    assert!(cache.take_ready().is_empty(), "each tile is reported once");
    taken.sort();
    let mut ids: Vec<TileId> = wanted.iter().map(|r| r.id).collect();
    ids.sort();
    assert_eq!(taken, ids);

    let mut bytes = 0;
    for r in &wanted {
        let id = r.id;
        assert_eq!(cache.state(&id), TileState::Ready);
        let got = cache.get(&id).unwrap();
        let want = tile_texels(&*src, 0, &levels, id.level, id.tx, id.ty).unwrap();
        assert_eq!((got.width, got.height, got.format), (want.width, want.height, want.format), "{id:?}");
        assert_eq!(got.bytes, want.bytes, "{id:?}");
        bytes += got.bytes.len() as u64;
    }
    let s = cache.stats();
    assert_eq!((s.queued, s.loading, s.failed), (0, 0, 0));
    assert_eq!(s.bytes, bytes);
    assert_eq!(s.loaded_total, wanted.len() as u64);
    wait_until("a wake per tile", || wakes.load(Ordering::SeqCst) == wanted.len());
    assert_eq!(cache.state(&tile(0, 99, 0)), TileState::Absent);
    assert!(cache.get(&tile(0, 99, 0)).is_none());
}

#[test]
fn loaders_take_visible_before_prefetch_then_lowest_priority() {
    let probe = Probe::new(512, 512, Duration::ZERO);
    let cache = TileCache::new(probe.clone(), Levels::new(512, 512, 64), 1, u64::MAX, no_wake()).unwrap();
    probe.hold();
    let a = tile(0, 0, 0);
    cache.request(&[visible(a, 0.0)]);
    wait_until("the first load to block", || probe.reads().len() == 1);
    assert_eq!(cache.state(&a), TileState::Loading);

    let (v1, v2, v3, p0, p1) = (tile(0, 1, 0), tile(0, 2, 0), tile(0, 3, 0), tile(0, 4, 0), tile(0, 5, 0));
    cache.request(&[
        visible(a, 0.0),
        prefetch(p1, 0.0),
        visible(v2, 5.0),
        visible(v3, 9.0),
        visible(v1, 1.0),
        prefetch(p0, -1.0),
        // Named twice: the better priority counts.
        visible(v3, 0.5),
    ]);
    let s = cache.stats();
    assert_eq!((s.queued, s.loading), (5, 1));
    probe.release();
    wait_until("all ready", || cache.stats().ready == 6);
    let order: Vec<Rect> = [a, v3, v1, v2, p0, p1].iter().map(|t| rect64(t.tx, t.ty)).collect();
    assert_eq!(probe.reads(), order);
}

#[test]
fn cancelled_requests_are_never_loaded() {
    let probe = Probe::new(512, 512, Duration::ZERO);
    let cache = TileCache::new(probe.clone(), Levels::new(512, 512, 64), 1, u64::MAX, no_wake()).unwrap();
    probe.hold();
    let (a, b, c) = (tile(0, 0, 0), tile(0, 1, 0), tile(0, 2, 0));
    cache.request(&[visible(a, 0.0)]);
    wait_until("the first load to block", || probe.reads().len() == 1);
    cache.request(&[visible(a, 0.0), visible(b, 1.0), prefetch(c, 2.0)]);
    assert_eq!(cache.state(&b), TileState::Queued);
    assert_eq!(cache.state(&c), TileState::Queued);
    // Only `b` stays wanted; `a`, loading, is not wanted either but finishes.
    cache.request(&[visible(b, 1.0)]);
    assert_eq!(cache.state(&c), TileState::Absent);
    cache.request(&[]);
    assert_eq!(cache.state(&b), TileState::Absent);
    assert_eq!(cache.state(&a), TileState::Loading);
    assert_eq!(cache.stats().queued, 0);
    probe.release();
    wait_until("the loader to go idle", || {
        let s = cache.stats();
        s.loading == 0 && s.queued == 0
    });
    assert_eq!(cache.state(&a), TileState::Ready, "a tile already loading is kept");
    assert_eq!(probe.reads(), vec![rect64(0, 0)]);
    assert_eq!(cache.stats().loaded_total, 1);
}

#[test]
fn budget_evicts_least_recently_used_tiles_outside_the_wanted_set() {
    let levels = Levels::new(1024, 1024, 64);
    let tile_bytes = 64 * 64 * 4;
    let cache = TileCache::new(Arc::new(DemoSource::new(1024, 1024)), levels, 2, 2 * tile_bytes, no_wake()).unwrap();

    // Wanted tiles may exceed the budget.
    let ids: Vec<TileId> = (0..8).map(|i| tile(0, i, 0)).collect();
    let wanted: Vec<TileRequest> = ids.iter().map(|&id| visible(id, 0.0)).collect();
    cache.request(&wanted);
    wait_until("8 tiles ready", || cache.stats().ready == 8);
    assert_eq!(cache.stats().bytes, 8 * tile_bytes);

    // Once unwanted, only the two most recently used stay.
    assert!(cache.get(&ids[5]).is_some());
    assert!(cache.get(&ids[2]).is_some());
    cache.request(&[]);
    let s = cache.stats();
    assert_eq!((s.ready, s.bytes), (2, 2 * tile_bytes));
    for (i, id) in ids.iter().enumerate() {
        let want = if i == 2 || i == 5 { TileState::Ready } else { TileState::Absent };
        assert_eq!(cache.state(id), want, "tile {i}");
    }

    // Load many tiles one frame at a time: the budget holds after every one.
    for i in 0..20 {
        let id = tile(0, i % 16, 1 + i / 16);
        cache.request(&[visible(id, 0.0)]);
        wait_until("the tile", || cache.state(&id) == TileState::Ready);
        assert!(cache.stats().bytes <= 2 * tile_bytes, "after tile {i}: {:?}", cache.stats());
    }
    cache.request(&[]);
    assert!(cache.stats().bytes <= 2 * tile_bytes);

    // A smaller budget evicts at once.
    cache.set_budget(tile_bytes);
    assert_eq!(cache.stats().bytes, tile_bytes);
}

#[test]
fn failing_tile_reports_its_error_and_is_retried_after_a_doubling_backoff() {
    let probe = Probe::new(512, 512, Duration::ZERO);
    let wakes = Arc::new(AtomicUsize::new(0));
    let w = Arc::clone(&wakes);
    let wake: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
        w.fetch_add(1, Ordering::SeqCst);
    });
    let cache = TileCache::new(probe.clone(), Levels::new(512, 512, 64), 1, u64::MAX, wake).unwrap();
    let first = Duration::from_millis(100);
    let max = Duration::from_millis(250);
    cache.set_retry_backoff(first, max);
    probe.fail.store(true, Ordering::SeqCst);

    let a = tile(0, 0, 0);
    let started = Instant::now();
    cache.request(&[visible(a, 0.0)]);
    wait_until("the failure", || matches!(cache.state(&a), TileState::Failed(_)));
    let TileState::Failed(msg) = cache.state(&a) else { unreachable!() };
    assert!(msg.contains("injected failure"), "{msg}");
    assert_eq!(cache.stats().failed, 1);
    wait_until("a wake for the failure", || wakes.load(Ordering::SeqCst) == 1);
    // Asked again within the back-off (measured from before the first attempt): no retry yet.
    cache.request(&[visible(a, 0.0)]);
    if started.elapsed() < first {
        assert!(matches!(cache.state(&a), TileState::Failed(_)));
        assert_eq!(probe.reads().len(), 1);
    }
    // Keep asking every frame: retries come after 100 ms, then 200 ms, then 250 ms (the cap).
    wait_until("a third failed attempt", || {
        cache.request(&[visible(a, 0.0)]);
        probe.reads().len() >= 3 && matches!(cache.state(&a), TileState::Failed(_))
    });
    probe.fail.store(false, Ordering::SeqCst);
    wait_until("the retry to succeed", || {
        cache.request(&[visible(a, 0.0)]);
        cache.state(&a) == TileState::Ready
    });
    // Three failed attempts and a good one (more if this machine stalled past a back-off).
    let t = probe.read_times();
    assert!(t.len() >= 4, "{} attempts", t.len());
    for (k, pair) in t.windows(2).enumerate() {
        let backoff = (first * (1 << k)).min(max);
        assert!(pair[1] - pair[0] >= backoff, "attempt {}: {:?} < {backoff:?}", k + 1, pair[1] - pair[0]);
    }
    assert_eq!(cache.stats().failed, 0);
}

#[test]
fn a_panicking_source_fails_the_tile_not_the_loader() {
    let probe = Probe::new(512, 512, Duration::ZERO);
    let cache = TileCache::new(probe.clone(), Levels::new(512, 512, 64), 1, u64::MAX, no_wake()).unwrap();
    probe.panic.store(true, Ordering::SeqCst);
    let (a, b) = (tile(0, 0, 0), tile(0, 1, 0));
    cache.request(&[visible(a, 0.0)]);
    wait_until("the failure", || matches!(cache.state(&a), TileState::Failed(_)));
    let TileState::Failed(msg) = cache.state(&a) else { unreachable!() };
    assert!(msg.contains("panicked") && msg.contains("injected panic"), "{msg}");
    probe.panic.store(false, Ordering::SeqCst);
    cache.request(&[visible(b, 0.0)]);
    wait_until("the next tile", || cache.state(&b) == TileState::Ready);
}

#[test]
fn out_of_range_tiles_fail_with_a_message() {
    let cache =
        TileCache::new(Arc::new(DemoSource::new(100, 100)), Levels::new(100, 100, 64), 1, u64::MAX, no_wake()).unwrap();
    let bad = [tile(0, 5, 0), tile(7, 0, 0), TileId { slice: 3, level: 0, tx: 0, ty: 0 }];
    cache.request(&bad.map(|id| visible(id, 0.0)));
    wait_until("three failures", || cache.stats().failed == 3);
    for id in bad {
        let TileState::Failed(msg) = cache.state(&id) else { panic!("{id:?} did not fail") };
        assert!(msg.starts_with("<demo>: "), "{msg}");
    }
}

#[test]
fn drop_stops_and_joins_the_loaders_promptly() {
    let probe = Probe::new(4096, 4096, Duration::from_millis(20));
    let cache = TileCache::new(probe.clone(), Levels::new(4096, 4096, 64), 4, u64::MAX, no_wake()).unwrap();
    let wanted: Vec<TileRequest> = (0..200).map(|i| visible(tile(0, i % 64, i / 64), i as f64)).collect();
    cache.request(&wanted);
    wait_until("some tiles", || cache.stats().loaded_total >= 2);
    let t = Instant::now();
    drop(cache);
    assert!(t.elapsed() < Duration::from_secs(2), "drop took {:?}", t.elapsed());
    // The loaders are gone: they held the only other references to the source.
    assert_eq!(Arc::strong_count(&probe), 1);
    let n = probe.reads().len();
    assert!(n < 200, "{n} tiles were read");
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(probe.reads().len(), n);
}

#[test]
fn parent_is_the_covering_tile_one_level_up() {
    let id = TileId { slice: 2, level: 0, tx: 5, ty: 4 };
    assert_eq!(id.parent(), TileId { slice: 2, level: 1, tx: 2, ty: 2 });
    let l = Levels::new(1000, 600, 256);
    let child = l.data_rect(0, 3, 2);
    let p = TileId { slice: 0, level: 0, tx: 3, ty: 2 }.parent();
    assert!(l.data_rect(p.level, p.tx, p.ty).contains_rect(&child));
}
