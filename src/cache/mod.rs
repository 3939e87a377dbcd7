//! The CPU tile cache: explicit tile states, priority tiers, a byte budget with least-recently-used
//! eviction, and background loader threads that always take the best wanted tile. Modelled on
//! Neuroglancer's chunk manager: the view states every frame which tiles it wants; requests nobody
//! wants any more are cancelled by generation.

use std::collections::{HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::pyramid::levels::{Levels, TileSource};
use crate::pyramid::texels::TileData;
use crate::pyramid::Method;
use crate::source::ArraySource;

/// One tile of one level of one slice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TileId {
    pub slice: u64,
    pub level: u32,
    pub tx: u64,
    pub ty: u64,
}

impl TileId {
    /// The tile of the next coarser level that covers this one (it exists when `level + 1 < Levels::count`).
    pub fn parent(&self) -> TileId {
        TileId { slice: self.slice, level: self.level + 1, tx: self.tx / 2, ty: self.ty / 2 }
    }
}

/// How urgently a tile is wanted: every `Visible` request is served before any `Prefetch` one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    Visible,
    Prefetch,
}

/// One wanted tile for this frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TileRequest {
    pub id: TileId,
    pub tier: Tier,
    /// Order inside the tier, lower = sooner (e.g. distance to the view centre). The caller should give
    /// coarser levels lower numbers, so a coarse tile can stand in while the fine ones load.
    pub priority: f64,
}

/// Where a tile stands.
#[derive(Clone, Debug, PartialEq)]
pub enum TileState {
    /// Not in the cache and not wanted (never requested, cancelled, or evicted).
    Absent,
    /// Wanted and waiting for a loader.
    Queued,
    /// A loader is computing it.
    Loading,
    /// Its texels are in memory ([`TileCache::get`]).
    Ready,
    /// Loading failed with this message; requested again after a back-off, it is retried.
    Failed(String),
}

/// Counts for a status line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct CacheStats {
    pub queued: usize,
    pub loading: usize,
    pub ready: usize,
    pub failed: usize,
    /// Bytes of texels held by ready tiles.
    pub bytes: u64,
    pub budget: u64,
    /// Tiles loaded since the cache was made (reloads of evicted tiles count again).
    pub loaded_total: u64,
}

/// Failed tiles kept beyond this many are forgotten once nobody wants them (their back-off with them).
const MAX_FAILED_KEPT: usize = 4096;

enum Slot {
    Queued,
    Loading,
    Ready(Arc<TileData>),
    Failed { msg: String, retry_at: Instant },
}

struct Entry {
    slot: Slot,
    /// The generation of the last `request` that named this tile.
    wanted: u64,
    /// Use clock at the last use (request, get or load): higher = more recent.
    used: u64,
    /// Back-off before the next retry should the next load fail.
    backoff: Duration,
    /// Ready and not yet handed out by `take_ready`.
    fresh: bool,
}

struct QueueItem {
    tier: Tier,
    priority: f64,
    seq: usize,
    id: TileId,
}

#[derive(Default)]
struct Counts {
    queued: usize,
    loading: usize,
    ready: usize,
    failed: usize,
    bytes: u64,
}

impl Counts {
    fn track(&mut self, slot: &Slot, add: bool) {
        let n = match slot {
            Slot::Queued => &mut self.queued,
            Slot::Loading => &mut self.loading,
            Slot::Ready(d) => {
                let b = d.bytes.len() as u64;
                self.bytes = if add { self.bytes + b } else { self.bytes.saturating_sub(b) };
                &mut self.ready
            }
            Slot::Failed { .. } => &mut self.failed,
        };
        *n = if add { *n + 1 } else { n.saturating_sub(1) };
    }
}

/// Moves `e` to `slot`, keeping the counts right.
fn set_slot(counts: &mut Counts, e: &mut Entry, slot: Slot) {
    counts.track(&e.slot, false);
    counts.track(&slot, true);
    e.slot = slot;
}

struct State {
    entries: HashMap<TileId, Entry>,
    /// Exactly the wanted tiles that were queued at the last `request`, worst first (loaders pop the best
    /// from the end, skipping any no longer queued).
    queue: Vec<QueueItem>,
    generation: u64,
    clock: u64,
    budget: u64,
    counts: Counts,
    loaded_total: u64,
    /// Tiles that became ready, in order, for `take_ready` (may hold stale ids; filtered on the way out).
    fresh: Vec<TileId>,
    retry_first: Duration,
    retry_max: Duration,
    shutdown: bool,
}

impl State {
    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// The best queued tile, now marked loading.
    fn pop_best(&mut self) -> Option<TileId> {
        while let Some(item) = self.queue.pop() {
            if let Some(e) = self.entries.get_mut(&item.id) {
                if matches!(e.slot, Slot::Queued) {
                    set_slot(&mut self.counts, e, Slot::Loading);
                    return Some(item.id);
                }
            }
        }
        None
    }

    /// Records the outcome of a load.
    fn finish(&mut self, id: TileId, result: std::result::Result<TileData, String>) {
        let used = self.tick();
        let Some(e) = self.entries.get_mut(&id) else { return };
        match result {
            Ok(data) => {
                e.used = used;
                e.backoff = self.retry_first;
                e.fresh = true;
                set_slot(&mut self.counts, e, Slot::Ready(Arc::new(data)));
                self.loaded_total += 1;
                self.fresh.push(id);
            }
            Err(msg) => {
                let wait = e.backoff;
                e.backoff = (wait * 2).min(self.retry_max);
                set_slot(&mut self.counts, e, Slot::Failed { msg, retry_at: Instant::now() + wait });
            }
        }
        self.evict();
        if self.fresh.len() > 2 * self.entries.len() + 64 {
            let entries = &self.entries;
            let mut seen = HashSet::new();
            self.fresh.retain(|id| entries.get(id).is_some_and(|e| e.fresh) && seen.insert(*id));
        }
    }

    /// Drops the least recently used ready tiles outside the wanted set until the bytes fit the budget.
    fn evict(&mut self) {
        if self.counts.bytes <= self.budget {
            return;
        }
        let gen = self.generation;
        let mut victims: Vec<(u64, TileId)> = self
            .entries
            .iter()
            .filter(|(_, e)| e.wanted != gen && matches!(e.slot, Slot::Ready(_)))
            .map(|(id, e)| (e.used, *id))
            .collect();
        victims.sort_unstable();
        for (_, id) in victims {
            if self.counts.bytes <= self.budget {
                break;
            }
            if let Some(e) = self.entries.remove(&id) {
                self.counts.track(&e.slot, false);
            }
        }
    }

    /// Forgets failed tiles nobody wants once there are too many of them.
    fn prune_failed(&mut self) {
        if self.counts.failed <= MAX_FAILED_KEPT {
            return;
        }
        let gen = self.generation;
        let counts = &mut self.counts;
        self.entries.retain(|_, e| {
            let keep = e.wanted == gen || !matches!(e.slot, Slot::Failed { .. });
            if !keep {
                counts.track(&e.slot, false);
            }
            keep
        });
    }
}

struct Shared {
    state: Mutex<State>,
    work: Condvar,
    tiles: Arc<TileSource>,
    wake: Arc<dyn Fn() + Send + Sync>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is consistent between statements that could panic, so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Tiles of one source, loaded in the background by priority and kept within a byte budget.
///
/// Every frame the view calls [`request`](TileCache::request) with the tiles it wants; loader threads
/// take the best one at a time (`Visible` before `Prefetch`, then lowest priority), compute its texels
/// with [`TileSource::texels`] without holding any lock, and call `wake`. The UI draws what is ready
/// ([`get`](TileCache::get)) and uploads new tiles once ([`take_ready`](TileCache::take_ready)). No call
/// blocks on I/O.
///
/// The budget bounds the texel bytes of ready tiles: the least recently used ready tiles outside the
/// current wanted set are evicted to fit it. Tiles in the wanted set are never evicted, so when the
/// view wants more than the budget holds, the cache exceeds it until they are no longer wanted.
pub struct TileCache {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl TileCache {
    /// Starts `threads` loader threads (0 = one per core) for tiles of `src` cut as `levels`, holding at
    /// most `budget_bytes` of unwanted ready tiles. `wake` is called from a loader thread whenever a
    /// tile becomes ready or fails (e.g. to request a repaint). Fails only when no thread can be started.
    pub fn new(
        src: Arc<dyn ArraySource>,
        levels: Levels,
        threads: usize,
        budget_bytes: u64,
        wake: Arc<dyn Fn() + Send + Sync>,
    ) -> Result<TileCache> {
        Self::with_source(Arc::new(TileSource::new(src, levels, Method::Mean)), threads, budget_bytes, wake)
    }

    /// Like [`new`](TileCache::new), loading through a [`TileSource`] (which may read a pyramid file).
    pub fn with_source(
        tiles: Arc<TileSource>,
        threads: usize,
        budget_bytes: u64,
        wake: Arc<dyn Fn() + Send + Sync>,
    ) -> Result<TileCache> {
        let n = if threads == 0 { std::thread::available_parallelism().map_or(4, |n| n.get()) } else { threads };
        let state = State {
            entries: HashMap::new(),
            queue: Vec::new(),
            generation: 0,
            clock: 0,
            budget: budget_bytes,
            counts: Counts::default(),
            loaded_total: 0,
            fresh: Vec::new(),
            retry_first: Duration::from_secs(1),
            retry_max: Duration::from_secs(30),
            shutdown: false,
        };
        let path = tiles.src.info().path.clone();
        let shared = Arc::new(Shared { state: Mutex::new(state), work: Condvar::new(), tiles, wake });
        let mut cache = TileCache { shared, threads: Vec::with_capacity(n) };
        for i in 0..n {
            let shared = Arc::clone(&cache.shared);
            match std::thread::Builder::new().name(format!("vastview-tiles-{i}")).spawn(move || loader(&shared)) {
                Ok(h) => cache.threads.push(h),
                // Fewer loaders still work; none at all is an error (dropping `cache` joins any started).
                Err(e) if cache.threads.is_empty() => return Err(Error::io(path, e)),
                Err(_) => break,
            }
        }
        Ok(cache)
    }

    /// The level geometry the tiles are cut by.
    pub fn levels(&self) -> Levels {
        self.shared.tiles.levels
    }

    /// Where tiles come from.
    pub fn tile_source(&self) -> &Arc<TileSource> {
        &self.shared.tiles
    }

    /// Forgets ready preview tiles whose exact texels are now available, so the next request loads
    /// those. Returns how many were dropped.
    pub fn refresh_previews(&self) -> usize {
        let tiles = &self.shared.tiles;
        let mut st = self.shared.lock();
        let stale: Vec<TileId> = st
            .entries
            .iter()
            .filter(|(id, e)| {
                matches!(&e.slot, Slot::Ready(d) if d.preview)
                    && tiles.exact_available(id.slice, id.level, id.tx, id.ty)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in &stale {
            if let Some(e) = st.entries.remove(id) {
                st.counts.track(&e.slot, false);
            }
        }
        stale.len()
    }

    /// Number of loader threads running.
    pub fn threads(&self) -> usize {
        self.threads.len()
    }

    /// Changes the byte budget (evicting at once if it shrank).
    pub fn set_budget(&self, budget_bytes: u64) {
        let mut st = self.shared.lock();
        st.budget = budget_bytes;
        st.evict();
    }

    /// Changes the retry back-off of failed tiles: `first` after the first failure, doubling up to `max`
    /// (defaults 1 s and 30 s). Applies to tiles first requested after the call.
    pub fn set_retry_backoff(&self, first: Duration, max: Duration) {
        let mut st = self.shared.lock();
        st.retry_first = first;
        st.retry_max = max.max(first);
    }

    /// The wanted set for this frame, replacing the previous one (a new generation).
    ///
    /// New tiles are queued; queued tiles no longer wanted are cancelled (back to `Absent`); tiles being
    /// loaded finish and are kept; ready tiles named here are marked used; failed tiles named here are
    /// queued again once their back-off (1 s, doubling to 30 s) has passed. A tile named twice takes its
    /// best tier and priority. Costs a hash lookup per request plus a sort of the queued ones.
    pub fn request(&self, wanted: &[TileRequest]) {
        let mut guard = self.shared.lock();
        let st = &mut *guard;
        st.generation += 1;
        let gen = st.generation;
        let now = Instant::now();
        let mut queue = Vec::with_capacity(wanted.len());
        for (seq, r) in wanted.iter().enumerate() {
            st.clock += 1;
            let clock = st.clock;
            let item = QueueItem { tier: r.tier, priority: r.priority, seq, id: r.id };
            let Some(e) = st.entries.get_mut(&r.id) else {
                let e = Entry { slot: Slot::Queued, wanted: gen, used: clock, backoff: st.retry_first, fresh: false };
                st.counts.track(&e.slot, true);
                st.entries.insert(r.id, e);
                queue.push(item);
                continue;
            };
            e.wanted = gen;
            match &e.slot {
                Slot::Queued => queue.push(item),
                Slot::Loading => {}
                Slot::Ready(_) => e.used = clock,
                Slot::Failed { retry_at, .. } => {
                    if now >= *retry_at {
                        set_slot(&mut st.counts, e, Slot::Queued);
                        queue.push(item);
                    }
                }
            }
        }
        // Cancel what was queued and is no longer wanted.
        for item in std::mem::take(&mut st.queue) {
            if let Some(e) = st.entries.get(&item.id) {
                if e.wanted != gen && matches!(e.slot, Slot::Queued) {
                    st.counts.track(&e.slot, false);
                    st.entries.remove(&item.id);
                }
            }
        }
        // Worst first, so loaders pop the best from the end; a duplicate's worse copy is skipped later.
        queue.sort_unstable_by(|a, b| {
            b.tier.cmp(&a.tier).then(b.priority.total_cmp(&a.priority)).then(b.seq.cmp(&a.seq))
        });
        let wake_loaders = queue.len().min(self.threads.len());
        st.queue = queue;
        st.evict();
        st.prune_failed();
        drop(guard);
        for _ in 0..wake_loaders {
            self.shared.work.notify_one();
        }
    }

    /// Where tile `id` stands.
    pub fn state(&self, id: &TileId) -> TileState {
        let st = self.shared.lock();
        match st.entries.get(id).map(|e| &e.slot) {
            None => TileState::Absent,
            Some(Slot::Queued) => TileState::Queued,
            Some(Slot::Loading) => TileState::Loading,
            Some(Slot::Ready(_)) => TileState::Ready,
            Some(Slot::Failed { msg, .. }) => TileState::Failed(msg.clone()),
        }
    }

    /// A ready tile's texels (marking it used), or `None` when it is not ready.
    pub fn get(&self, id: &TileId) -> Option<Arc<TileData>> {
        let mut st = self.shared.lock();
        let used = st.tick();
        let e = st.entries.get_mut(id)?;
        match &e.slot {
            Slot::Ready(d) => {
                e.used = used;
                Some(Arc::clone(d))
            }
            _ => None,
        }
    }

    /// Tiles that became ready since the last call and are still ready, in the order they loaded (so
    /// the UI uploads each once). A tile evicted and loaded again is reported again.
    pub fn take_ready(&self) -> Vec<TileId> {
        let mut guard = self.shared.lock();
        let st = &mut *guard;
        let mut out = Vec::with_capacity(st.fresh.len());
        for id in std::mem::take(&mut st.fresh) {
            if let Some(e) = st.entries.get_mut(&id) {
                if e.fresh && matches!(e.slot, Slot::Ready(_)) {
                    e.fresh = false;
                    out.push(id);
                }
            }
        }
        out
    }

    /// Counts of tiles in each state, bytes held and the budget.
    pub fn stats(&self) -> CacheStats {
        let st = self.shared.lock();
        let c = &st.counts;
        CacheStats {
            queued: c.queued,
            loading: c.loading,
            ready: c.ready,
            failed: c.failed,
            bytes: c.bytes,
            budget: st.budget,
            loaded_total: st.loaded_total,
        }
    }
}

impl Drop for TileCache {
    /// Stops the loaders and joins them; a loader in the middle of a tile finishes that tile first.
    fn drop(&mut self) {
        self.shared.lock().shutdown = true;
        self.shared.work.notify_all();
        for h in self.threads.drain(..) {
            // A loader that panicked outside a load has nothing left to clean up.
            let _ = h.join();
        }
    }
}

/// One loader thread: take the best queued tile, load it with no lock held, record it, wake the UI.
fn loader(shared: &Shared) {
    loop {
        let id = {
            let mut st = shared.lock();
            loop {
                if st.shutdown {
                    return;
                }
                if let Some(id) = st.pop_best() {
                    break id;
                }
                st = shared.work.wait(st).unwrap_or_else(PoisonError::into_inner);
            }
        };
        let result = load(shared, &id);
        let stopping = {
            let mut st = shared.lock();
            st.finish(id, result);
            st.shutdown
        };
        if !stopping {
            // A panicking callback must not take the loader down with it.
            let _ = catch_unwind(AssertUnwindSafe(|| (shared.wake)()));
        }
    }
}

/// The texels of `id`, or the message of why not (a panic in the source included).
fn load(shared: &Shared, id: &TileId) -> std::result::Result<TileData, String> {
    let run = || shared.tiles.texels(id.slice, id.level, id.tx, id.ty);
    match catch_unwind(AssertUnwindSafe(run)) {
        Ok(Ok(data)) => Ok(data),
        Ok(Err(e)) => Err(e.to_string()),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(format!("loading tile {}/{},{} panicked: {what}", id.level, id.tx, id.ty))
        }
    }
}

#[cfg(test)]
mod tests;
