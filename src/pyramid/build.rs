//! Building a pyramid file in one streaming pass over the data: bands of full-width rows are reduced
//! on all cores into level 1 (mean or max, NaN-aware) and the level-0 tile statistics; each coarser
//! level is reduced from the exact sums of the one below as its rows complete; finished tiles are
//! checksummed and usable at once. Levels of 64-bit data keep a tile row of exact values until it is
//! complete, then store each tile as its offset plus float32 residuals (the sums stay exact). The pass checkpoints its few rows of state now and then, so a build
//! that is cancelled, crashes or is killed resumes where it stopped.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rayon::prelude::*;

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::geom::Rect;
use crate::pyramid::kernels::{add, convert, full_blocks4, level1_row, pair_rows, reduce_pairs, LevelValue};
use crate::pyramid::store::{value_dtype, Method, Store};
use crate::pyramid::texels::TileData;
use crate::pyramid::tilestats::{BinLut, HistRange, StatsAcc, TileStats, RECORD_BYTES};
use crate::source::{ArraySource, Element, RegionBuf};

/// Shared progress of a build: read by a progress bar or the window, `cancel` set to stop it.
#[derive(Debug, Default)]
pub struct Progress {
    /// Data bytes reduced so far (of all slices), and in all.
    pub done: AtomicU64,
    pub total: AtomicU64,
    /// Bumped whenever tiles become available (a viewer re-requests its stand-ins).
    pub epoch: AtomicU64,
    pub cancel: AtomicBool,
    /// Set when the build resumed from a checkpoint, to the bytes it skipped.
    pub resumed_from: AtomicU64,
    /// Cancel by itself once this many bytes are done (0 = never): for tests of resuming.
    pub cancel_after: AtomicU64,
}

impl Progress {
    pub fn fraction(&self) -> f64 {
        let t = self.total.load(Ordering::Relaxed);
        if t == 0 {
            0.0
        } else {
            self.done.load(Ordering::Relaxed) as f64 / t as f64
        }
    }
}

/// How often the pass writes a checkpoint (at level-0 tile-row boundaries): every 2 s, or
/// `$VASTVIEW_CHECKPOINT_MS`.
fn checkpoint_every() -> Duration {
    let ms = std::env::var("VASTVIEW_CHECKPOINT_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(2000);
    Duration::from_millis(ms)
}
/// A testing aid: `$VASTVIEW_TEST_KILL_AT_CHECKPOINT=N` ends the process with SIGKILL (what `kill -9`
/// does: no destructors, no flush beyond what the kernel already has) right after its Nth checkpoint.
fn kill_for_tests() {
    static WRITTEN: AtomicU64 = AtomicU64::new(0);
    let Some(n) = std::env::var("VASTVIEW_TEST_KILL_AT_CHECKPOINT").ok().and_then(|v| v.parse::<u64>().ok()) else {
        return;
    };
    if WRITTEN.fetch_add(1, Ordering::Relaxed) + 1 >= n {
        // SAFETY: raise() only sends a signal to this process.
        unsafe { libc::raise(libc::SIGKILL) };
    }
}

/// Elements read per band (all cores share a band).
const BAND_ELEMENTS: u64 = 1 << 22;
/// How many bands ahead of the one being reduced the pass asks the kernel to read (one band is ≤ 8 MB).
const READ_AHEAD_BANDS: u64 = 8;
/// Buffered level rows are written out once they hold this many bytes.
const FLUSH_BYTES: usize = 4 << 20;

/// Row sums (or maxima) and counts of non-NaN values, `n` rows of `w·c` entries.
#[derive(Default, Clone)]
struct Rows {
    n: usize,
    v: Vec<f64>,
    k: Vec<u32>,
}

/// What a band reduces to: level-1 sums, or (one channel, level 2 present) level 1 already converted
/// to stored rows plus level 2's sums.
enum Band {
    Sums(Rows),
    Fused { level1: Vec<u64>, len: usize, level2: Rows },
}

/// Buffers of a fused band, kept for the next one.
#[derive(Default)]
struct Spare {
    level1: Vec<u64>,
    level2: Rows,
}

/// The state of one stored level (≥ 1) during the pass.
struct LevelState {
    level: u32,
    /// Values per row (width × channels) and the level's height.
    wc: usize,
    height: u64,
    rows_done: u64,
    /// A row of the level below waiting for its partner.
    pending: Option<Rows>,
    /// Converted rows not yet written, starting at `buf_row0`.
    buf: Vec<u8>,
    buf_rows: u64,
    buf_row0: u64,
    hashers: Vec<crc32fast::Hasher>,
    /// Statistics of the current tile row, merged from the finished tile rows below.
    stats: Vec<TileStats>,
    /// Files with offsets: the values of the current tile row's rows so far (`wc` per row).
    means: Vec<f64>,
}

/// One pass over slice after slice.
pub struct Builder<'a> {
    src: &'a dyn ArraySource,
    store: &'a Store,
    method: Method,
    range: HistRange,
    progress: &'a Progress,
    resume_path: PathBuf,
    with_stats: bool,
    /// For 8- and 16-bit integer data: the dtype and the histogram bin of every bit pattern.
    small: Option<(DType, BinLut)>,
}

impl<'a> Builder<'a> {
    pub fn new(src: &'a dyn ArraySource, store: &'a Store, progress: &'a Progress, resume_path: &Path) -> Builder<'a> {
        let with_stats = store.meta.channels == 1;
        Builder {
            src,
            store,
            method: store.meta.method,
            range: store.hist_range(),
            progress,
            resume_path: resume_path.to_path_buf(),
            with_stats,
            small: small_int_lut(src.info().dtype, &store.hist_range()),
        }
    }

    fn slice_bytes(&self) -> u64 {
        let im = self.src.info().image;
        im.width * im.height * im.channels * self.src.info().dtype.size() as u64
    }

    /// Runs (or resumes) the pass to the end. On cancel, writes a checkpoint and returns `Cancelled`.
    pub fn run(&self) -> Result<()> {
        let im = self.src.info().image;
        self.progress.total.store(self.slice_bytes() * im.slices, Ordering::Relaxed);
        let (mut slice, mut y, mut states, mut l0) = match self.load_checkpoint() {
            Some(r) => r,
            None => (0, 0, self.fresh_states(), self.fresh_l0()),
        };
        if slice > 0 || y > 0 {
            let skipped = slice * self.slice_bytes() + y * self.slice_bytes() / im.height.max(1);
            self.progress.resumed_from.store(skipped, Ordering::Relaxed);
        }
        self.src.stream_hint(true);
        let r = (|| -> Result<()> {
            while slice < im.slices {
                self.run_slice(slice, y, &mut states, &mut l0)?;
                slice += 1;
                y = 0;
                states = self.fresh_states();
                l0 = self.fresh_l0();
            }
            Ok(())
        })();
        self.src.stream_hint(false);
        r
    }

    fn fresh_states(&self) -> Vec<LevelState> {
        let lv = self.store.levels();
        let c = self.store.meta.channels as usize;
        (1..lv.count)
            .map(|level| {
                let (w, h) = lv.size(level);
                let cols = lv.grid(level).cols() as usize;
                LevelState {
                    level,
                    wc: w as usize * c,
                    height: h,
                    rows_done: 0,
                    pending: None,
                    buf: Vec::new(),
                    buf_rows: 0,
                    buf_row0: 0,
                    hashers: vec![crc32fast::Hasher::new(); cols],
                    stats: vec![TileStats::default(); cols],
                    means: Vec::new(),
                }
            })
            .collect()
    }

    fn fresh_l0(&self) -> Vec<StatsAcc> {
        vec![StatsAcc::default(); self.store.levels().grid(0).cols() as usize]
    }

    fn run_slice(&self, slice: u64, mut y: u64, states: &mut [LevelState], l0: &mut [StatsAcc]) -> Result<()> {
        let im = self.src.info().image;
        let (w, h) = (im.width, im.height);
        let tile = self.store.levels().tile;
        // Band height: a power of two ≤ the tile, so bands never straddle a tile row.
        let mut bh = 2u64;
        while bh < tile && bh * 2 * w * im.channels <= BAND_ELEMENTS {
            bh *= 2;
        }
        let base_done = slice * self.slice_bytes();
        let row_bytes = w * im.channels * self.src.info().dtype.size() as u64;
        let mut last_checkpoint = Instant::now();
        let mut bufs: Vec<RegionBuf> = Vec::new();
        // Buffers of the fused path handed back after use: fresh ones every band cost page faults
        // and zeroing (about 5 % of the pass).
        let mut spare = Spare::default();
        if y < h {
            self.src.prefetch(slice, Rect::new(0, y, w, (y + READ_AHEAD_BANDS * bh).min(h)));
        }
        while y < h {
            let after = self.progress.cancel_after.load(Ordering::Relaxed);
            let stop = self.progress.cancel.load(Ordering::Relaxed)
                || (after > 0 && self.progress.done.load(Ordering::Relaxed) >= after);
            if stop && y % tile == 0 {
                self.checkpoint(slice, y, states)?;
                return Err(Error::Cancelled);
            }
            let y1 = (y + bh).min(h);
            // Read-ahead of the bands to come (asynchronous): far enough ahead that a cold read keeps up
            // with the reducing cores, instead of one band whose pages the populating core waits for.
            let ahead = (y1 + READ_AHEAD_BANDS * bh).min(h);
            if ahead > y1 {
                self.src.prefetch(slice, Rect::new(0, ahead.saturating_sub(bh).max(y1), w, ahead));
            }
            // Fused when level 1's rows pair up within the band (or the band ends the image).
            let fused =
                im.channels == 1 && states.len() >= 2 && states[0].pending.is_none() && ((y1 - y) % 4 == 0 || y1 == h);
            // The next band's pages are mapped by one core while the others reduce this band: one
            // call instead of a page fault every few pages (≈ 0.2 s of kernel time for 3.2 GB).
            let next = (y1, (y1 + bh).min(h));
            // Every other level-0 tile row (a level-1 tile row written), the same core also starts
            // writing the file's dirty pages to disk, so the final fsync finds little left to do.
            let writeback = y > 0 && y % (2 * tile) == 0;
            let (band, ()) = rayon::join(
                || self.reduce_band(slice, (y, y1), &mut bufs, l0, fused, &mut spare),
                || {
                    if next.0 < next.1 {
                        self.src.populate_rows(slice, next.0, next.1);
                    }
                    if writeback {
                        self.store.start_writeback();
                    }
                },
            );
            let band = band?;
            y = y1;
            // Level-0 tile row finished: its statistics go out and up.
            if self.with_stats && (y % tile == 0 || y == h) {
                let ty = (y - 1) / tile;
                let done: Vec<TileStats> = l0.iter().map(StatsAcc::finish).collect();
                for (tx, s) in done.iter().enumerate() {
                    self.store.write_stats(slice, 0, tx as u64, ty, s)?;
                }
                l0.iter_mut().for_each(|a| *a = StatsAcc::default());
                self.stats_up(slice, states, 0, ty, &done)?;
            }
            match band {
                Band::Sums(rows) => {
                    self.push_rows(slice, states, 0, rows)?;
                }
                Band::Fused { level1, len, level2 } => {
                    let bytes = &bytemuck::cast_slice::<u64, u8>(&level1)[..len];
                    self.push_band_rows(slice, &mut states[0], bytes)?;
                    spare.level1 = level1;
                    spare.level2 = self.push_rows(slice, states, 1, level2)?;
                }
            }
            self.progress.done.store(base_done + y * row_bytes, Ordering::Relaxed);
            if y % tile == 0 && y < h && last_checkpoint.elapsed() >= checkpoint_every() {
                self.checkpoint(slice, y, states)?;
                last_checkpoint = Instant::now();
            }
        }
        Ok(())
    }

    /// Reads rows `y0..y1` as one buffer per core (the copies run in parallel).
    fn read_band(&self, slice: u64, y0: u64, y1: u64, bufs: &mut Vec<RegionBuf>) -> Result<()> {
        let w = self.src.info().image.width;
        // A chunked (compressed) source decodes a band's chunks in parallel itself; row parts per core would
        // only wait on each other's chunks (every part of a band shares its tile row).
        let cores = if self.src.chunk_shape().is_some() { 1 } else { rayon::current_num_threads() };
        let parts = cores.clamp(1, (y1 - y0) as usize) as u64;
        let per = (y1 - y0).div_ceil(parts);
        bufs.resize_with(parts as usize, RegionBuf::default);
        bufs.par_iter_mut().enumerate().try_for_each(|(i, b)| {
            let a = y0 + i as u64 * per;
            let e = (a + per).min(y1);
            if a >= e {
                b.reset(self.src.info().dtype, w as usize, 0, self.src.info().image.channels as usize);
                return Ok(());
            }
            self.src.read_region(slice, Rect::new(0, a, w, e), b)
        })
    }

    /// Level-1 rows (sums/maxima and counts) from a band, and the band's part of the level-0 statistics:
    /// the band's rows lent by the source when it can (no copy, and aligned for the dtype), else
    /// copied into `bufs`.
    fn reduce_band(
        &self,
        slice: u64,
        (y0, y1): (u64, u64),
        bufs: &mut Vec<RegionBuf>,
        l0: &mut [StatsAcc],
        fused: bool,
        spare: &mut Spare,
    ) -> Result<Band> {
        let dtype = self.src.info().dtype;
        let wc = (self.src.info().image.width * self.src.info().image.channels).max(1) as usize;
        let lent = self.src.rows_in_place(slice, y0, y1);
        if lent.is_none() {
            self.read_band(slice, y0, y1, bufs)?;
        }
        macro_rules! go {
            ($t:ty) => {{
                let in_place: Option<&[$t]> = lent.and_then(|b| bytemuck::try_cast_slice(b).ok());
                let parts: Vec<&[$t]> = match in_place {
                    Some(s) => vec![s],
                    None => {
                        if lent.is_some() {
                            self.read_band(slice, y0, y1, bufs)?;
                        }
                        bufs.iter().map(|b| bytemuck::cast_slice(b.bytes())).collect()
                    }
                };
                let rows: Vec<&[$t]> = parts.iter().flat_map(|s| s.chunks_exact(wc)).collect();
                // Statistics and levels side by side: a core done with one helps with the other.
                let ((), band) = rayon::join(
                    || self.stats_rows::<$t>(&rows, l0),
                    || {
                        if fused {
                            self.reduce_fused::<$t>(&rows, spare)
                        } else {
                            Band::Sums(self.reduce_rows::<$t>(&rows))
                        }
                    },
                );
                if in_place.is_some() {
                    self.src.check_lent()?;
                }
                band
            }};
        }
        Ok(match dtype {
            DType::Bool | DType::U8 => go!(u8),
            DType::I8 => go!(i8),
            DType::U16 => go!(u16),
            DType::I16 => go!(i16),
            DType::F16 => go!(half::f16),
            DType::U32 => go!(u32),
            DType::I32 => go!(i32),
            DType::F32 => go!(f32),
            DType::U64 => go!(u64),
            DType::I64 => go!(i64),
            DType::F64 => go!(f64),
        })
    }

    /// The band's part of the level-0 tile statistics: one task per level-0 tile column.
    fn stats_rows<T: Element>(&self, rows: &[&[T]], l0: &mut [StatsAcc]) {
        if !self.with_stats {
            return;
        }
        let w = self.src.info().image.width as usize;
        let tile = self.store.levels().tile as usize;
        let (range, scale) = (self.range, self.range.scale());
        let small = self.small.as_ref().map(|(d, lut)| (*d, lut));
        l0.par_iter_mut().enumerate().for_each(|(tx, acc)| {
            let (x0, x1) = (tx * tile, ((tx + 1) * tile).min(w));
            let runs: Vec<&[T]> = rows.iter().map(|r| &r[x0..x1]).collect();
            if small_int_stats(acc, &runs, small).is_none() {
                for r in runs {
                    acc.add(r, &range, scale);
                }
            }
        });
    }

    /// One-channel bands whose level-1 rows pair up: each task takes four data rows, column block by
    /// column block, to two stored level-1 rows and one row of level-2 sums. Level 1's sums stay in a
    /// small per-thread scratch instead of going through memory twice.
    fn reduce_fused<T: LevelValue>(&self, rows: &[&[T]], spare: &mut Spare) -> Band {
        /// Level-2 pixels per column block (scratch of 2 × 2 × BLOCK level-1 sums and counts).
        const BLOCK: usize = 1024;
        let w = self.src.info().image.width as usize;
        let max = self.method == Method::Max;
        let init = if max { f64::NEG_INFINITY } else { 0.0 };
        let n = rows.len();
        let (w1, n1, n2) = (w.div_ceil(2), n.div_ceil(2), n.div_ceil(4));
        let w2 = w1.div_ceil(2);
        // u64 words, so the stored bytes are handed on without a copy whatever T's alignment.
        let len = n1 * w1 * std::mem::size_of::<T>();
        // Every value is written below: a buffer of the same size is reused as it is.
        let mut words = std::mem::take(&mut spare.level1);
        if words.len() != len.div_ceil(8) {
            words.clear();
            words.resize(len.div_ceil(8), 0);
        }
        let level1: &mut [T] = bytemuck::cast_slice_mut(&mut bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..len]);
        let mut level2 = std::mem::take(&mut spare.level2);
        level2.n = n2;
        level2.v.clear();
        level2.v.resize(n2 * w2, init);
        level2.k.clear();
        level2.k.resize(n2 * w2, 0);
        level1
            .par_chunks_mut((2 * w1).max(1))
            .zip(level2.v.par_chunks_mut(w2.max(1)).zip(level2.k.par_chunks_mut(w2.max(1))))
            .enumerate()
            .for_each_init(
                || (vec![0.0f64; 4 * BLOCK], vec![0u32; 4 * BLOCK]),
                |(sv, sk), (j, (out1, (vo, ko)))| {
                    for (bi, (vo, ko)) in vo.chunks_mut(BLOCK).zip(ko.chunks_mut(BLOCK)).enumerate() {
                        let mut p0 = 2 * bi * BLOCK;
                        let p1 = (p0 + 2 * vo.len()).min(w1);
                        let (mut x0, x1) = (2 * p0, (2 * p1).min(w));
                        let (mut vo, mut ko) = (vo, ko);
                        // Whole 4×4 blocks of small integers at once.
                        if 4 * j + 3 < n {
                            let q = (x1 - x0) / 4;
                            let r = [0, 1, 2, 3].map(|i| &rows[4 * j + i][x0..x0 + 4 * q]);
                            let (oa, ob) = out1.split_at_mut(w1);
                            let out = [&mut oa[p0..p0 + 2 * q], &mut ob[p0..p0 + 2 * q]];
                            if full_blocks4(r, out, &mut vo[..q], &mut ko[..q], max) {
                                (p0, x0, vo, ko) = (p0 + 2 * q, x0 + 4 * q, &mut vo[q..], &mut ko[q..]);
                                if vo.is_empty() {
                                    continue;
                                }
                            }
                        }
                        let m = p1 - p0;
                        let (sva, svb) = sv.split_at_mut(2 * BLOCK);
                        let (ska, skb) = sk.split_at_mut(2 * BLOCK);
                        let mut pairs = 0;
                        for (r1, (v, k)) in
                            [(&mut sva[..m], &mut ska[..m]), (&mut svb[..m], &mut skb[..m])].into_iter().enumerate()
                        {
                            let ra = 4 * j + 2 * r1;
                            if ra >= n {
                                break;
                            }
                            let b = rows.get(ra + 1).map(|r| &r[x0..x1]);
                            let out = &mut out1[r1 * w1 + p0..r1 * w1 + p1];
                            level1_row(&rows[ra][x0..x1], b, v, k, out, max);
                            pairs += 1;
                        }
                        let both = [(&sva[..m], &ska[..m]), (&svb[..m], &skb[..m])];
                        pair_rows(&both[..pairs], vo, ko, max);
                    }
                },
            );
        Band::Fused { level1: words, len, level2 }
    }

    fn reduce_rows<T: Element>(&self, rows: &[&[T]]) -> Rows {
        let im = self.src.info().image;
        let (w, c) = (im.width as usize, im.channels as usize);
        let w1 = w.div_ceil(2);
        let n_out = rows.len().div_ceil(2);
        let max = self.method == Method::Max;
        // Level 1: one task per output row (a pair of band rows), written in place.
        let wc1 = w1 * c;
        let init = if max { f64::NEG_INFINITY } else { 0.0 };
        let mut out = Rows { n: n_out, v: vec![init; wc1 * n_out], k: vec![0; wc1 * n_out] };
        out.v.par_chunks_mut(wc1.max(1)).zip(out.k.par_chunks_mut(wc1.max(1))).enumerate().for_each(|(j, (vo, ko))| {
            for r in &rows[2 * j..(2 * j + 2).min(rows.len())] {
                if c == 1 {
                    reduce_pairs(r, vo, ko, max);
                } else {
                    for (i, px) in r.chunks(c).enumerate() {
                        for (ch, e) in px.iter().enumerate() {
                            add(&mut vo[(i / 2) * c + ch], &mut ko[(i / 2) * c + ch], e.to_f64(), max);
                        }
                    }
                }
            }
        });
        out
    }

    /// Hands complete rows of level `from` (0 = from the band) to level `from + 1`: converts and buffers
    /// them, finishes tiles, and reduces pairs of them into the next level.
    /// Returns the rows' buffers for reuse.
    fn push_rows(&self, slice: u64, states: &mut [LevelState], from: usize, rows: Rows) -> Result<Rows> {
        let Some(st) = states.get_mut(from) else { return Ok(rows) };
        if rows.n == 0 {
            return Ok(rows);
        }
        let wc = st.wc;
        // Store: convert to the level dtype (all rows at once, on all cores), buffer, flush at tile-row ends.
        let (dtype, method) = (value_dtype(self.src.info().dtype), self.method);
        let converted: Vec<Vec<u8>> = rows
            .v
            .par_chunks(wc.max(1))
            .zip(rows.k.par_chunks(wc.max(1)))
            .map(|(v, k)| convert_row(v, k, dtype, method))
            .collect();
        self.push_converted(slice, st, converted.iter().map(Vec::as_slice))?;
        // Reduce pairs into the next level.
        if from + 1 >= states.len() {
            return Ok(rows);
        }
        let (cur, next) = states.split_at_mut(from + 1);
        let st = &mut cur[from];
        let last = st.rows_done == st.height;
        let mut input = match st.pending.take() {
            Some(mut p) => {
                p.n += rows.n;
                p.v.extend_from_slice(&rows.v);
                p.k.extend_from_slice(&rows.k);
                p
            }
            None => rows,
        };
        if input.n % 2 == 1 && !last {
            let n = input.n - 1;
            st.pending = Some(Rows { n: 1, v: input.v.split_off(n * wc), k: input.k.split_off(n * wc) });
            input.n = n;
        }
        let reduced = reduce_rows_pairwise(&input, wc, next[0].wc, self.store.meta.channels as usize, self.method);
        let _ = next;
        self.push_rows(slice, states, from + 1, reduced)?;
        Ok(input)
    }

    /// Buffers stored rows of a level, flushing them at tile-row ends (and when the buffer is full).
    fn push_converted<'b>(&self, slice: u64, st: &mut LevelState, rows: impl Iterator<Item = &'b [u8]>) -> Result<()> {
        let tile = self.store.levels().tile;
        if self.store.layout.offsets {
            for bytes in rows {
                self.push_values(slice, st, bytes)?;
            }
            return Ok(());
        }
        for bytes in rows {
            if st.buf_rows == 0 {
                st.buf_row0 = st.rows_done;
            }
            st.buf.extend_from_slice(bytes);
            st.buf_rows += 1;
            st.rows_done += 1;
            let row_end = st.rows_done % tile == 0 || st.rows_done == st.height;
            if row_end || st.buf.len() >= FLUSH_BYTES {
                self.flush(slice, st)?;
            }
            if row_end {
                self.finish_tile_row(slice, st)?;
            }
        }
        Ok(())
    }

    fn flush(&self, slice: u64, st: &mut LevelState) -> Result<()> {
        if st.buf_rows == 0 {
            return Ok(());
        }
        let buf = std::mem::take(&mut st.buf);
        let r = self.write_rows(slice, st, st.buf_row0, &buf);
        st.buf = buf;
        st.buf.clear();
        st.buf_rows = 0;
        r
    }

    /// Writes whole level rows `row0..` (within one tile row) into their tiles and checksums.
    fn write_rows(&self, slice: u64, st: &mut LevelState, row0: u64, bytes: &[u8]) -> Result<()> {
        let lv = self.store.levels();
        let tile = lv.tile;
        let ty = row0 / tile;
        let r0 = row0 % tile;
        let esz_c = self.store.layout.dtype.size() * self.store.meta.channels as usize;
        let row_bytes = st.wc * self.store.layout.dtype.size();
        let cols = lv.grid(st.level).cols();
        let n = bytes.len() / row_bytes.max(1);
        let (store, level) = (self.store, st.level);
        // Each tile's rows gathered, written and checksummed on all cores (positioned writes).
        st.hashers.par_iter_mut().enumerate().take(cols as usize).try_for_each(|(tx, hasher)| -> Result<()> {
            let tx = tx as u64;
            let (a, b) = ((tx * tile) as usize * esz_c, (((tx + 1) * tile) as usize * esz_c).min(row_bytes));
            let mut out = Vec::with_capacity((b - a) * n);
            for j in 0..n {
                out.extend_from_slice(&bytes[j * row_bytes + a..j * row_bytes + b]);
            }
            store.write_tile_rows(slice, level, tx, ty, r0, &out)?;
            hasher.update(&out);
            Ok(())
        })
    }

    /// Stored rows of a level, contiguous: written straight into their tiles (no copy through the
    /// level's buffer) while nothing is buffered, up to each tile-row end.
    fn push_band_rows(&self, slice: u64, st: &mut LevelState, bytes: &[u8]) -> Result<()> {
        if self.store.layout.offsets {
            let row_bytes = (st.wc * 8).max(1);
            for row in bytes.chunks_exact(row_bytes) {
                self.push_values(slice, st, row)?;
            }
            return Ok(());
        }
        let row_bytes = (st.wc * self.store.layout.dtype.size()).max(1);
        let tile = self.store.levels().tile;
        let mut rest = bytes;
        while rest.len() >= row_bytes {
            if st.buf_rows > 0 {
                self.push_converted(slice, st, std::iter::once(&rest[..row_bytes]))?;
                rest = &rest[row_bytes..];
                continue;
            }
            let to_end = (tile - st.rows_done % tile).min(st.height - st.rows_done) as usize;
            let n = (rest.len() / row_bytes).min(to_end).max(1);
            self.write_rows(slice, st, st.rows_done, &rest[..n * row_bytes])?;
            st.rows_done += n as u64;
            if st.rows_done % tile == 0 || st.rows_done == st.height {
                self.finish_tile_row(slice, st)?;
            }
            rest = &rest[n * row_bytes..];
        }
        Ok(())
    }

    /// Files with offsets: one level row of 64-bit values (the value dtype, native order) joins the
    /// current tile row; a complete tile row is stored tile by tile as offset + float32 residuals.
    fn push_values(&self, slice: u64, st: &mut LevelState, row: &[u8]) -> Result<()> {
        let dtype = value_dtype(self.src.info().dtype);
        st.means.extend(row.chunks_exact(8).map(|b| {
            let b: [u8; 8] = b.try_into().unwrap_or([0; 8]);
            match dtype {
                DType::I64 => i64::from_ne_bytes(b) as f64,
                DType::U64 => u64::from_ne_bytes(b) as f64,
                _ => f64::from_ne_bytes(b),
            }
        }));
        st.rows_done += 1;
        let tile = self.store.levels().tile;
        if st.rows_done % tile != 0 && st.rows_done != st.height {
            return Ok(());
        }
        let ty = (st.rows_done - 1) / tile;
        let c = self.store.meta.channels as usize;
        let (wc, level, store) = (st.wc.max(1), st.level, self.store);
        let cols = self.store.levels().grid(level).cols();
        let means = std::mem::take(&mut st.means);
        (0..cols).into_par_iter().try_for_each(|tx| -> Result<()> {
            let (a, b) = ((tx * tile) as usize * c, (((tx + 1) * tile) as usize * c).min(wc));
            let vals: Vec<f64> = means.chunks_exact(wc).flat_map(|r| r[a..b].iter().copied()).collect();
            let (offset, residuals) = TileData::residuals(&vals);
            let crc = store.write_offset_tile(slice, level, (tx, ty), offset, &residuals)?;
            store.finish_tile(slice, level, tx, ty, crc)
        })?;
        st.means = means;
        st.means.clear();
        self.progress.epoch.fetch_add(1, Ordering::Release);
        Ok(())
    }

    fn finish_tile_row(&self, slice: u64, st: &mut LevelState) -> Result<()> {
        let ty = (st.rows_done - 1) / self.store.levels().tile;
        for (tx, h) in st.hashers.iter_mut().enumerate() {
            let crc = std::mem::take(h).finalize();
            self.store.finish_tile(slice, st.level, tx as u64, ty, crc)?;
        }
        self.progress.epoch.fetch_add(1, Ordering::Release);
        Ok(())
    }

    /// A tile row of level `level` finished its statistics: fold them into level + 1, and when that
    /// level's tile row is finished too, write it and go on up.
    fn stats_up(&self, slice: u64, states: &mut [LevelState], level: u32, ty: u64, done: &[TileStats]) -> Result<()> {
        let Some(st) = states.get_mut(level as usize) else { return Ok(()) };
        for (tx, s) in done.iter().enumerate() {
            st.stats[tx / 2].merge(s);
        }
        let rows_below = self.store.levels().grid(level).rows();
        if ty % 2 == 1 || ty + 1 == rows_below {
            let finished = std::mem::replace(&mut st.stats, vec![TileStats::default(); st.hashers.len()]);
            for (tx, s) in finished.iter().enumerate() {
                self.store.write_stats(slice, level + 1, tx as u64, ty / 2, s)?;
            }
            return self.stats_up(slice, states, level + 1, ty / 2, &finished);
        }
        Ok(())
    }

    /// What ties a checkpoint to its pyramid file: a hash of the file's header.
    fn meta_key(&self) -> u64 {
        crate::diskcache::fnv1a(&serde_json::to_vec(&self.store.meta).unwrap_or_default(), 0)
    }

    /// Writes the state needed to resume at level-0 row `y` (a tile-row boundary) of `slice`.
    fn checkpoint(&self, slice: u64, y: u64, states: &mut [LevelState]) -> Result<()> {
        for st in states.iter_mut() {
            self.flush(slice, st)?;
        }
        let mut b = Vec::new();
        b.extend_from_slice(b"VVRESUM1");
        b.extend_from_slice(&self.meta_key().to_le_bytes());
        for v in [slice, y] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        for st in states.iter() {
            b.extend_from_slice(&st.rows_done.to_le_bytes());
            match &st.pending {
                Some(p) => {
                    b.push(1);
                    p.v.iter().for_each(|x| b.extend_from_slice(&x.to_le_bytes()));
                    p.k.iter().for_each(|x| b.extend_from_slice(&x.to_le_bytes()));
                }
                None => b.push(0),
            }
            for s in &st.stats {
                b.extend_from_slice(&s.to_bytes());
            }
            // Files with offsets: the current tile row's values (nothing of it is stored yet).
            if self.store.layout.offsets {
                b.extend_from_slice(&(st.means.len() as u64).to_le_bytes());
                st.means.iter().for_each(|x| b.extend_from_slice(&x.to_le_bytes()));
            }
        }
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        let tmp = self.resume_path.with_extension("resume-tmp");
        std::fs::File::create(&tmp)
            .and_then(|mut f| f.write_all(&b))
            .and_then(|_| std::fs::rename(&tmp, &self.resume_path))
            .map_err(|e| Error::io(&self.resume_path, e))?;
        kill_for_tests();
        Ok(())
    }

    /// The state saved by the last checkpoint, if it belongs to this file and reads back whole.
    #[allow(clippy::type_complexity)]
    fn load_checkpoint(&self) -> Option<(u64, u64, Vec<LevelState>, Vec<StatsAcc>)> {
        let b = std::fs::read(&self.resume_path).ok()?;
        if b.len() < 36 || &b[..8] != b"VVRESUM1" {
            return None;
        }
        let (body, crc) = b.split_at(b.len() - 4);
        if crc32fast::hash(body) != u32::from_le_bytes(crc.try_into().ok()?) {
            return None;
        }
        let mut at = 8;
        let u64_at = |at: &mut usize| -> Option<u64> {
            let v = u64::from_le_bytes(body.get(*at..*at + 8)?.try_into().ok()?);
            *at += 8;
            Some(v)
        };
        let key = u64_at(&mut at)?;
        if key != self.meta_key() {
            return None;
        }
        let slice = u64_at(&mut at)?;
        let y = u64_at(&mut at)?;
        let im = self.src.info().image;
        let tile = self.store.levels().tile;
        if slice >= im.slices || y >= im.height || y % tile != 0 {
            return None;
        }
        let mut states = self.fresh_states();
        for st in states.iter_mut() {
            st.rows_done = u64_at(&mut at)?;
            let flag = *body.get(at)?;
            at += 1;
            if flag == 1 {
                let wc = st.wc;
                let mut p = Rows { n: 1, v: Vec::with_capacity(wc), k: Vec::with_capacity(wc) };
                for _ in 0..wc {
                    p.v.push(f64::from_le_bytes(body.get(at..at + 8)?.try_into().ok()?));
                    at += 8;
                }
                for _ in 0..wc {
                    p.k.push(u32::from_le_bytes(body.get(at..at + 4)?.try_into().ok()?));
                    at += 4;
                }
                st.pending = Some(p);
            }
            for s in st.stats.iter_mut() {
                *s = TileStats::from_bytes(body.get(at..at + RECORD_BYTES)?)?;
                at += RECORD_BYTES;
            }
            // The rows of the current tile row already written: re-hash them, un-finish later tiles.
            let ty = st.rows_done / tile;
            let in_row = st.rows_done % tile;
            if self.store.layout.offsets {
                let n = u64_at(&mut at)? as usize;
                let whole = st.rows_done == st.height && n == 0;
                if n != in_row as usize * st.wc && !whole {
                    return None;
                }
                st.means = (0..n)
                    .map(|i| Some(f64::from_le_bytes(body.get(at + 8 * i..at + 8 * i + 8)?.try_into().ok()?)))
                    .collect::<Option<_>>()?;
                at += 8 * n;
                continue;
            }
            for (tx, h) in st.hashers.iter_mut().enumerate() {
                if in_row > 0 {
                    let bytes = self.store.tile_bytes(slice, st.level, tx as u64, ty).ok()?;
                    let (row_bytes, _, _) = self.store.layout.tile_dims(st.level, tx as u64, ty);
                    h.update(&bytes[..(row_bytes * in_row) as usize]);
                }
            }
        }
        if at != body.len() {
            return None;
        }
        // Tiles finished after the checkpoint are rewritten: forget them.
        let lv = self.store.levels();
        for st in &states {
            let g = lv.grid(st.level);
            for ty in st.rows_done / tile..g.rows() {
                for tx in 0..g.cols() {
                    self.store.unfinish_tile(slice, st.level, tx, ty).ok()?;
                }
            }
        }
        Some((slice, y, states, self.fresh_l0()))
    }
}

/// `(flip, base)` of the small integer types: value = (bits ^ flip) + base.
fn small_int_code(d: DType) -> Option<(u32, i64)> {
    match d {
        DType::Bool | DType::U8 | DType::U16 => Some((0, 0)),
        DType::I8 => Some((0x80, -128)),
        DType::I16 => Some((0x8000, -32768)),
        _ => None,
    }
}

/// The histogram bin of every value of an 8- or 16-bit integer dtype, indexed by `bits ^ flip`.
fn small_int_lut(d: DType, range: &HistRange) -> Option<(DType, BinLut)> {
    let (_, base) = small_int_code(d)?;
    let n = 1usize << (8 * d.size());
    let scale = range.scale();
    Some((d, BinLut::new((0..n).map(|i| range.bin((i as i64 + base) as f64, scale) as u8).collect())))
}

/// Adds the runs `runs` to `acc` through the integer path when the data is a small integer type.
#[inline(always)]
fn small_int_stats<T: Element>(acc: &mut StatsAcc, runs: &[&[T]], small: Option<(DType, &BinLut)>) -> Option<()> {
    let (d, lut) = small?;
    let (flip, base) = small_int_code(d)?;
    match std::mem::size_of::<T>() {
        1 => {
            let r: Vec<&[u8]> = runs.iter().map(|r| bytemuck::cast_slice::<T, u8>(r)).collect();
            acc.add_small_int_runs(&r, flip, base, lut)
        }
        2 => {
            let r: Vec<&[u16]> = runs.iter().map(|r| bytemuck::cast_slice::<T, u16>(r)).collect();
            acc.add_small_int_runs(&r, flip, base, lut)
        }
        _ => return None,
    }
    Some(())
}

/// Reduces consecutive row pairs (a last unpaired row alone) of sums/counts into half-width rows.
#[inline(never)]
fn reduce_rows_pairwise(input: &Rows, wc: usize, wc_next: usize, c: usize, method: Method) -> Rows {
    let n_out = input.n.div_ceil(2);
    let max = method == Method::Max;
    let mut out = Rows {
        n: n_out,
        v: vec![if max { f64::NEG_INFINITY } else { 0.0 }; wc_next * n_out],
        k: vec![0; wc_next * n_out],
    };
    out.v.par_chunks_mut(wc_next.max(1)).zip(out.k.par_chunks_mut(wc_next.max(1))).enumerate().for_each(
        |(j, (vo, ko))| {
            let rows = (2 * j)..(2 * j + 2).min(input.n);
            if c == 1 {
                let pairs: Vec<(&[f64], &[u32])> =
                    rows.map(|r| (&input.v[r * wc..(r + 1) * wc], &input.k[r * wc..(r + 1) * wc])).collect();
                pair_rows(&pairs, vo, ko, max);
                return;
            }
            for r in rows {
                let (vi, ki) = (&input.v[r * wc..(r + 1) * wc], &input.k[r * wc..(r + 1) * wc]);
                for (i, (&v, &k)) in vi.iter().zip(ki).enumerate() {
                    let o = (i / c / 2) * c + i % c;
                    if k > 0 {
                        vo[o] = if max { vo[o].max(v) } else { vo[o] + v };
                        ko[o] += k;
                    }
                }
            }
        },
    );
    out
}

/// One level row as stored bytes: means (sum / count) or maxima in the level dtype (integers rounded
/// and clamped), NaN where every value was NaN.
#[inline(never)]
fn convert_row(v: &[f64], k: &[u32], dtype: DType, method: Method) -> Vec<u8> {
    let max = method == Method::Max;
    fn typed<T: LevelValue>(v: &[f64], k: &[u32], max: bool) -> Vec<u8> {
        let mut out = vec![0u8; std::mem::size_of_val(v) / 8 * std::mem::size_of::<T>()];
        match bytemuck::try_cast_slice_mut::<u8, T>(&mut out) {
            Ok(typed) => convert(v, k, typed, max),
            Err(_) => {
                let mut typed = vec![T::zeroed(); v.len()];
                convert(v, k, &mut typed, max);
                out.copy_from_slice(bytemuck::cast_slice(&typed));
            }
        }
        out
    }
    match dtype {
        DType::Bool | DType::U8 => typed::<u8>(v, k, max),
        DType::I8 => typed::<i8>(v, k, max),
        DType::U16 => typed::<u16>(v, k, max),
        DType::I16 => typed::<i16>(v, k, max),
        DType::U32 => typed::<u32>(v, k, max),
        DType::I32 => typed::<i32>(v, k, max),
        DType::U64 => typed::<u64>(v, k, max),
        DType::I64 => typed::<i64>(v, k, max),
        DType::F16 => typed::<half::f16>(v, k, max),
        DType::F32 => typed::<f32>(v, k, max),
        DType::F64 => typed::<f64>(v, k, max),
    }
}

#[cfg(test)]
#[path = "build_tests.rs"]
mod tests;
