//! Per-tile statistics gathered in the pyramid's single pass: counts of finite/NaN/±inf values, min,
//! max, sum, the sum of squared deviations, and a histogram over bins shared by every tile of a file, so
//! tiles merge exactly (global statistics, the visible region's percentiles).

use crate::source::Element;

/// Histogram bins between the file's histogram limits; one more bin below and one above catch the rest.
pub const HIST_BINS: usize = 64;
/// Bytes of one stored record (see [`TileStats::to_bytes`]).
pub const RECORD_BYTES: usize = 8 * (9 + HIST_BINS + 2);

/// The histogram's bins: `HIST_BINS` equal bins over `[lo, hi]`, an underflow bin (values `< lo`)
/// first and an overflow bin (values `> hi`) last.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HistRange {
    pub lo: f64,
    pub hi: f64,
}

impl HistRange {
    /// Bins spanning `[min, max]` of a sample, widened by 1/64 of the span on each side so the
    /// extremes of the full data mostly land inside. A constant sample gets a unit-wide range. The
    /// limits and their span are always finite: a sample spanning more than `f64::MAX` (±1e308) gets
    /// the widest such range about its centre (the values beyond it go to the under/over bins).
    pub fn around(min: f64, max: f64) -> HistRange {
        if !(min.is_finite() && max.is_finite()) || max <= min {
            let c = if min.is_finite() { min } else { 0.0 };
            return HistRange { lo: c - 0.5, hi: c + 0.5 };
        }
        let pad = match (max - min) / HIST_BINS as f64 {
            p if p.is_finite() => p,
            // Each term is at most f64::MAX / 64: no overflow.
            _ => max / HIST_BINS as f64 - min / HIST_BINS as f64,
        };
        let (lo, hi) = ((min - pad).max(-f64::MAX), (max + pad).min(f64::MAX));
        if (hi - lo).is_finite() {
            return HistRange { lo, hi };
        }
        let (c, half) = (lo / 2.0 + hi / 2.0, f64::MAX / 2.0 * (1.0 - 1.0 / 1024.0));
        HistRange { lo: c - half, hi: c + half }
    }

    /// The bin of a finite value (0 = under, 1..=HIST_BINS, HIST_BINS + 1 = over).
    #[inline(always)]
    pub fn bin(&self, v: f64, scale: f64) -> usize {
        if v < self.lo {
            0
        } else if v > self.hi {
            HIST_BINS + 1
        } else {
            1 + (((v - self.lo) * scale) as usize).min(HIST_BINS - 1)
        }
    }

    pub fn scale(&self) -> f64 {
        HIST_BINS as f64 / (self.hi - self.lo)
    }

    /// The value interval of bin `i` (1..=HIST_BINS).
    pub fn edges(&self, i: usize) -> (f64, f64) {
        let w = (self.hi - self.lo) / HIST_BINS as f64;
        (self.lo + (i - 1) as f64 * w, if i == HIST_BINS { self.hi } else { self.lo + i as f64 * w })
    }
}

/// Statistics of a set of values (a tile, a level's tile, the whole image).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TileStats {
    /// Finite values.
    pub count: u64,
    pub nan: u64,
    pub pos_inf: u64,
    pub neg_inf: u64,
    /// Min and max of the finite values (+inf / −inf when there are none).
    pub min: f64,
    pub max: f64,
    /// Sum of the finite values.
    pub sum: f64,
    /// Sum of squared deviations of the finite values from their mean.
    pub m2: f64,
    pub hist: [u64; HIST_BINS + 2],
}

impl Default for TileStats {
    fn default() -> Self {
        TileStats {
            count: 0,
            nan: 0,
            pos_inf: 0,
            neg_inf: 0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            sum: 0.0,
            m2: 0.0,
            hist: [0; HIST_BINS + 2],
        }
    }
}

impl TileStats {
    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            f64::NAN
        } else {
            self.sum / self.count as f64
        }
    }

    /// Population standard deviation (numpy's `std` with ddof=0) of the finite values.
    pub fn std(&self) -> f64 {
        if self.count == 0 {
            f64::NAN
        } else {
            // NaN (sums that overflowed) stays NaN: `max` would make it 0.
            (if self.m2.is_nan() { self.m2 } else { self.m2.max(0.0) } / self.count as f64).sqrt()
        }
    }

    /// Adds another set's statistics (Chan et al.'s pairwise update for the squared deviations).
    pub fn merge(&mut self, o: &TileStats) {
        if o.count > 0 {
            if self.count == 0 {
                (self.sum, self.m2) = (o.sum, o.m2);
            } else {
                let (na, nb) = (self.count as f64, o.count as f64);
                let delta = o.sum / nb - self.sum / na;
                self.m2 += o.m2 + delta * delta * na * nb / (na + nb);
                self.sum += o.sum;
            }
            self.count += o.count;
            self.min = self.min.min(o.min);
            self.max = self.max.max(o.max);
        }
        self.nan += o.nan;
        self.pos_inf += o.pos_inf;
        self.neg_inf += o.neg_inf;
        for (a, b) in self.hist.iter_mut().zip(o.hist.iter()) {
            *a += b;
        }
    }

    /// The `p`-th percentile (0–100) of the finite values, from the histogram: exact rank, value
    /// interpolated linearly inside its bin (the under/over bins span to the exact min/max).
    /// NaN when there are no finite values.
    pub fn percentile(&self, range: &HistRange, p: f64) -> f64 {
        if self.count == 0 {
            return f64::NAN;
        }
        // numpy's linear method: rank (n − 1)·p/100 among the sorted values, here spread evenly in a bin.
        let rank = (p.clamp(0.0, 100.0) / 100.0) * (self.count - 1) as f64;
        // The extremes are known exactly (whatever bin they share).
        if rank <= 0.0 {
            return self.min;
        }
        if rank >= (self.count - 1) as f64 {
            return self.max;
        }
        let mut below = 0u64;
        for (i, &n) in self.hist.iter().enumerate() {
            if n == 0 {
                continue;
            }
            if rank < (below + n) as f64 {
                let (a, b) = match i {
                    0 => (self.min, range.lo.min(self.max)),
                    i if i == HIST_BINS + 1 => (range.hi.max(self.min), self.max),
                    i => range.edges(i),
                };
                let (a, b) = (a.max(self.min), b.min(self.max));
                let f = if n > 1 { (rank - below as f64) / (n - 1) as f64 } else { 0.5 };
                return a + (b - a) * f.clamp(0.0, 1.0);
            }
            below += n;
        }
        self.max
    }

    /// The fixed little-endian record stored in the pyramid file, closed by a check word.
    pub fn to_bytes(&self) -> [u8; RECORD_BYTES] {
        let mut out = [0u8; RECORD_BYTES];
        let words = [
            self.count,
            self.nan,
            self.pos_inf,
            self.neg_inf,
            self.min.to_bits(),
            self.max.to_bits(),
            self.sum.to_bits(),
            self.m2.to_bits(),
        ];
        for (i, w) in words.iter().chain(self.hist.iter()).enumerate() {
            out[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
        }
        let check = 0x5354_4154_0000_0000u64 | u64::from(crc32fast::hash(&out[..RECORD_BYTES - 8]));
        out[RECORD_BYTES - 8..].copy_from_slice(&check.to_le_bytes());
        out
    }

    /// Reads a record; `None` when it was never written or does not check out.
    pub fn from_bytes(b: &[u8]) -> Option<TileStats> {
        if b.len() < RECORD_BYTES {
            return None;
        }
        let w = |i: usize| u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
        let check = w(RECORD_BYTES / 8 - 1);
        if check != 0x5354_4154_0000_0000u64 | u64::from(crc32fast::hash(&b[..RECORD_BYTES - 8])) {
            return None;
        }
        let mut hist = [0u64; HIST_BINS + 2];
        for (k, h) in hist.iter_mut().enumerate() {
            *h = w(8 + k);
        }
        Some(TileStats {
            count: w(0),
            nan: w(1),
            pos_inf: w(2),
            neg_inf: w(3),
            min: f64::from_bits(w(4)),
            max: f64::from_bits(w(5)),
            sum: f64::from_bits(w(6)),
            m2: f64::from_bits(w(7)),
            hist,
        })
    }
}

/// The raw bit patterns of 8- and 16-bit integers (as `u8` / `u16`), for their integer statistics path.
pub trait SmallBits: Copy + Into<u32> + Send + Sync {
    /// The run itself when it is of `u16`.
    fn as_u16(vals: &[Self]) -> Option<&[u16]>;
}
impl SmallBits for u8 {
    fn as_u16(_: &[u8]) -> Option<&[u16]> {
        None
    }
}
impl SmallBits for u16 {
    fn as_u16(vals: &[u16]) -> Option<&[u16]> {
        Some(vals)
    }
}

/// The histogram bin of every index `bits ^ flip` of an 8- or 16-bit integer type, and, when the bins
/// never decrease with the index (always, for bins of equal width), the first index of every bin.
#[derive(Debug, Clone)]
pub struct BinLut {
    bins: Vec<u8>,
    first: Option<Vec<u32>>,
}

impl BinLut {
    pub fn new(bins: Vec<u8>) -> BinLut {
        let monotone = bins.windows(2).all(|w| w[0] <= w[1]);
        let first = monotone.then(|| {
            (0..=HIST_BINS + 1)
                .map(|b| bins.iter().position(|&x| x as usize >= b).unwrap_or(bins.len()) as u32)
                .collect()
        });
        BinLut { bins, first }
    }
}

/// Σi, Σi², min and max of `i = bits ^ flip` over a run of small integers, with its histogram added to
/// `hist`: for u16 on AVX2 by comparisons against the bin edges, else one table increment per value.
fn small_int_pass<U: SmallBits>(
    rows: &[&[U]],
    flip: u32,
    lut: &BinLut,
    hist: &mut [u64; HIST_BINS + 2],
) -> (u64, u64, u32, u32) {
    #[cfg(target_arch = "x86_64")]
    if let Some(first) = &lut.first {
        let rows16: Option<Vec<&[u16]>> = rows.iter().map(|r| U::as_u16(r)).collect();
        if let (Some(rows16), true) = (rows16, std::is_x86_feature_detected!("avx2")) {
            // SAFETY: the CPU was just checked for AVX2.
            return unsafe { avx2::u16_pass(&rows16, flip as u16, &lut.bins, first, hist) };
        }
    }
    let mut totals = (0u64, 0u64, u32::MAX, 0u32);
    for r in rows {
        let (s, ss, lo, hi) = scalar_pass(r, flip, &lut.bins, hist);
        totals = (totals.0 + s, totals.1 + ss, totals.2.min(lo), totals.3.max(hi));
    }
    totals
}

/// The portable path: a loop that vectorises for the sums and extremes, then the histogram's scattered
/// increments into 4 interleaved tables (no store-to-load stalls on runs of one bin).
#[inline(always)]
fn scalar_pass<U: SmallBits>(
    vals: &[U],
    flip: u32,
    bins: &[u8],
    hist: &mut [u64; HIST_BINS + 2],
) -> (u64, u64, u32, u32) {
    let (mut s, mut ss, mut lo, mut hi) = (0u64, 0u64, u32::MAX, 0u32);
    for &v in vals {
        let i = v.into() ^ flip;
        s += u64::from(i);
        ss += u64::from(i * i);
        lo = lo.min(i);
        hi = hi.max(i);
    }
    let mut h = [[0u32; HIST_BINS + 2]; 4];
    let quads = vals.chunks_exact(4);
    let rest = quads.remainder();
    for q in quads {
        for (k, &v) in q.iter().enumerate() {
            h[k][bins[(v.into() ^ flip) as usize] as usize] += 1;
        }
    }
    for &v in rest {
        h[0][bins[(v.into() ^ flip) as usize] as usize] += 1;
    }
    for t in &h {
        for (a, &b) in hist.iter_mut().zip(t.iter()) {
            *a += u64::from(b);
        }
    }
    (s, ss, lo, hi)
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::HIST_BINS;

    /// Most values per group of runs: lane sums of `d` stay below 2^31 and lane counts below 2^15.
    const BLOCK: usize = 4096;
    /// How many runs ahead to prefetch.
    const AHEAD: usize = 4;
    /// Most bins a group may span for its histogram to be counted by comparisons (one pass over the
    /// group per bin edge, 4 instructions per 16 values) rather than one table increment per value.
    const MAX_EDGES: usize = 16;

    /// Σ of the 8 i32 lanes.
    #[inline(always)]
    fn hsum_i32(v: __m256i) -> i64 {
        let mut lanes = [0i32; 8];
        // SAFETY: storing a vector into an array of its size; the callers have AVX2.
        unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), v) };
        lanes.iter().map(|&x| i64::from(x)).sum()
    }

    /// Σ of the 4 u64 lanes.
    #[inline(always)]
    fn hsum_u64(v: __m256i) -> u64 {
        let mut lanes = [0u64; 4];
        // SAFETY: as above.
        unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), v) };
        lanes.iter().sum()
    }

    /// Extremes of the 16 i16 lanes.
    #[inline(always)]
    fn hmin_hmax_i16(mn: __m256i, mx: __m256i) -> (i16, i16) {
        let (mut l, mut h) = ([0i16; 16], [0i16; 16]);
        // SAFETY: as above.
        unsafe {
            _mm256_storeu_si256(l.as_mut_ptr().cast(), mn);
            _mm256_storeu_si256(h.as_mut_ptr().cast(), mx);
        }
        (l.iter().copied().min().unwrap_or(i16::MAX), h.iter().copied().max().unwrap_or(i16::MIN))
    }

    /// [`super::small_int_pass`] of u16 runs whose bins never decrease with the index (`first[b]` is
    /// the first index of bin `b`), in groups of up to `BLOCK` values.
    #[target_feature(enable = "avx2")]
    pub(super) fn u16_pass(
        rows: &[&[u16]],
        flip: u16,
        bins: &[u8],
        first: &[u32],
        hist: &mut [u64; HIST_BINS + 2],
    ) -> (u64, u64, u32, u32) {
        let mut totals = (0u64, 0u64, u32::MAX, 0u32);
        let mut group: Vec<&[u16]> = Vec::with_capacity(64);
        let mut len = 0;
        for row in rows {
            for piece in row.chunks(BLOCK) {
                if len + piece.len() > BLOCK && !group.is_empty() {
                    group_pass(&group, flip, bins, first, hist, &mut totals);
                    group.clear();
                    len = 0;
                }
                group.push(piece);
                len += piece.len();
            }
        }
        if !group.is_empty() {
            group_pass(&group, flip, bins, first, hist, &mut totals);
        }
        totals
    }

    /// One group (≤ `BLOCK` values). One vector pass over `d = i − 32768` as i16 (`bits ^ flip ^
    /// 0x8000`): min, max, Σd (madd with 1, i32 lanes) and Σd² (madd with itself: d0² + d1² ≤ 2^31 fits
    /// a u32 lane, added into u64 lanes); then, when the group spans few bins, one signed
    /// compare-and-count pass per inner bin edge.
    #[target_feature(enable = "avx2")]
    fn group_pass(
        group: &[&[u16]],
        flip: u16,
        bins: &[u8],
        first: &[u32],
        hist: &mut [u64; HIST_BINS + 2],
        totals: &mut (u64, u64, u32, u32),
    ) {
        let dflip = _mm256_set1_epi16((flip ^ 0x8000) as i16);
        let ones = _mm256_set1_epi16(1);
        let low32 = _mm256_set1_epi64x(0xffff_ffff);
        let zero = _mm256_setzero_si256();
        let (mut mn, mut mx) = (_mm256_set1_epi16(i16::MAX), _mm256_set1_epi16(i16::MIN));
        let (mut sd, mut sq) = (zero, zero);
        let (mut nv, mut n) = (0u64, 0u64);
        // Runs' tails (fewer than 16 values), in i = bits ^ flip.
        let (mut ts, mut tss, mut tlo, mut thi) = (0u64, 0u64, u32::MAX, 0u32);
        for (r, row) in group.iter().enumerate() {
            // Runs are short pieces of rows far apart (a tile's width of each image row): ask for the
            // one a few runs ahead now, as no hardware prefetcher follows that stride.
            if let Some(ahead) = group.get(r + AHEAD) {
                for line in ahead.chunks(32) {
                    _mm_prefetch::<_MM_HINT_T0>(line.as_ptr().cast());
                }
            }
            let vecs = row.chunks_exact(16);
            for &v in vecs.remainder() {
                let i = u32::from(v ^ flip);
                (ts, tss, tlo, thi) = (ts + u64::from(i), tss + u64::from(i * i), tlo.min(i), thi.max(i));
            }
            nv += (row.len() / 16 * 16) as u64;
            n += row.len() as u64;
            for c in vecs {
                // SAFETY: `c` holds 16 u16 (32 bytes).
                let d = _mm256_xor_si256(unsafe { _mm256_loadu_si256(c.as_ptr().cast()) }, dflip);
                mn = _mm256_min_epi16(mn, d);
                mx = _mm256_max_epi16(mx, d);
                sd = _mm256_add_epi32(sd, _mm256_madd_epi16(d, ones));
                let q = _mm256_madd_epi16(d, d);
                sq = _mm256_add_epi64(sq, _mm256_add_epi64(_mm256_and_si256(q, low32), _mm256_srli_epi64(q, 32)));
            }
        }
        let (mut lo, mut hi) = (tlo, thi);
        let (mut s, mut ss) = (ts, tss);
        if nv > 0 {
            let (dmin, dmax) = hmin_hmax_i16(mn, mx);
            lo = lo.min((i32::from(dmin) + 32768) as u32);
            hi = hi.max((i32::from(dmax) + 32768) as u32);
            // Σi = Σd + 32768·n and Σi² = Σd² + 65536·Σd + 2^30·n: |Σd| < 2^29, Σd² < 2^45.
            let (sum_d, sum_d2) = (hsum_i32(sd), hsum_u64(sq) as i64);
            s += (sum_d + 32768 * nv as i64) as u64;
            ss += (sum_d2 + 65536 * sum_d + (1 << 30) * nv as i64) as u64;
        }
        *totals = (totals.0 + s, totals.1 + ss, totals.2.min(lo), totals.3.max(hi));
        let (b0, b1) = (bins[lo as usize] as usize, bins[hi as usize] as usize);
        if b1 - b0 > MAX_EDGES {
            let mut h = [0u64; HIST_BINS + 2];
            for row in group {
                super::scalar_pass(row, u32::from(flip), bins, &mut h);
            }
            for (a, b) in hist.iter_mut().zip(h) {
                *a += b;
            }
            return;
        }
        let mut above = n;
        for b in b0 + 1..=b1 {
            let t = first[b];
            // i ≥ t  ⇔  d > (t − 32768) − 1  (t ≥ 1 here).
            let tt = _mm256_set1_epi16(((t as u16) ^ 0x8000) as i16 - 1);
            let mut acc = zero;
            let mut tail = 0u64;
            for row in group {
                let vecs = row.chunks_exact(16);
                tail += vecs.remainder().iter().filter(|&&v| u32::from(v ^ flip) >= t).count() as u64;
                for c in vecs {
                    // SAFETY: `c` holds 16 u16 (32 bytes).
                    let d = _mm256_xor_si256(unsafe { _mm256_loadu_si256(c.as_ptr().cast()) }, dflip);
                    acc = _mm256_sub_epi16(acc, _mm256_cmpgt_epi16(d, tt));
                }
            }
            // Lane counts ≤ BLOCK / 16: summed as i16 pairs without overflow.
            let count = hsum_i32(_mm256_madd_epi16(acc, ones)) as u64 + tail;
            hist[b - 1] += above - count;
            above = count;
        }
        hist[b1] += above;
    }
}

/// Accumulates values one run at a time: sums are taken about the first finite value (`shift`), so
/// the squared deviations keep their precision when the values sit far from zero.
#[derive(Debug, Clone, Copy)]
pub struct StatsAcc {
    pub stats: TileStats,
    shift: Option<f64>,
    s1: f64,
    s2: f64,
}

impl Default for StatsAcc {
    fn default() -> Self {
        StatsAcc { stats: TileStats::default(), shift: None, s1: 0.0, s2: 0.0 }
    }
}

impl StatsAcc {
    /// Adds a run of values of one channel.
    #[inline(never)]
    pub fn add<T: Element>(&mut self, vals: &[T], range: &HistRange, scale: f64) {
        let st = &mut self.stats;
        let shift = match self.shift {
            Some(s) => s,
            None => match vals.iter().map(|v| v.to_f64()).find(|v| v.is_finite()) {
                Some(s) => *self.shift.insert(s),
                None => 0.0,
            },
        };
        let (mut n, mut s1, mut s2) = (0u64, 0.0f64, 0.0f64);
        let (mut lo, mut hi) = (st.min, st.max);
        for &e in vals {
            let v = e.to_f64();
            if v.is_finite() {
                n += 1;
                let d = v - shift;
                s1 += d;
                s2 += d * d;
                lo = lo.min(v);
                hi = hi.max(v);
                st.hist[range.bin(v, scale)] += 1;
            } else if v.is_nan() {
                st.nan += 1;
            } else if v > 0.0 {
                st.pos_inf += 1;
            } else {
                st.neg_inf += 1;
            }
        }
        st.count += n;
        st.min = lo;
        st.max = hi;
        self.s1 += s1;
        self.s2 += s2;
    }

    /// Adds a run of 8- or 16-bit integers given as raw bit patterns `U` (u8 or u16): the value of a
    /// pattern is `(bits ^ flip) + base` (flip = the sign bit for signed types), and `lut` maps
    /// `bits ^ flip` to its histogram bin. Integer sums, no float work per value.
    pub fn add_small_int<U: SmallBits>(&mut self, vals: &[U], flip: u32, base: i64, lut: &BinLut) {
        self.add_small_int_runs(&[vals], flip, base, lut)
    }

    /// [`StatsAcc::add_small_int`] of several runs at once (fewer per-run overheads). The sums of a
    /// tile's 8- or 16-bit values are integers below 2^53, exact in f64 whatever the grouping.
    #[inline(never)]
    pub fn add_small_int_runs<U: SmallBits>(&mut self, runs: &[&[U]], flip: u32, base: i64, lut: &BinLut) {
        let Some(&v0) = runs.iter().find_map(|r| r.first()) else { return };
        let count: usize = runs.iter().map(|r| r.len()).sum();
        let (s, ss, lo, hi) = small_int_pass(runs, flip, lut, &mut self.stats.hist);
        // Sums about the shift, exactly in integers: Σd = Σi − n·k, Σd² = Σi² − 2k·Σi + n·k².
        let shift = *self.shift.get_or_insert((i64::from(v0.into() ^ flip) + base) as f64);
        if count < 1 << 20 {
            // |Σi| < 2^36, Σi² < 2^52, 0 ≤ k < 2^16: every term fits in i64 (i128 needs library calls
            // to convert to f64, per run), and an integer converts to the same f64 from either.
            let (n, k) = (count as i64, shift as i64 - base);
            let (s, ss) = (s as i64, ss as i64);
            self.s1 += (s - n * k) as f64;
            self.s2 += (ss - 2 * k * s + n * k * k) as f64;
        } else {
            let (n, k) = (count as i128, shift as i128 - i128::from(base));
            let (s, ss) = (i128::from(s), i128::from(ss));
            self.s1 += (s - n * k) as f64;
            self.s2 += (ss - 2 * k * s + n * k * k) as f64;
        }
        let st = &mut self.stats;
        st.count += count as u64;
        st.min = st.min.min((i64::from(lo) + base) as f64);
        st.max = st.max.max((i64::from(hi) + base) as f64);
    }

    /// The finished statistics.
    pub fn finish(&self) -> TileStats {
        let mut st = self.stats;
        if st.count > 0 {
            let n = st.count as f64;
            let shift = self.shift.unwrap_or(0.0);
            st.sum = shift * n + self.s1;
            let m2 = self.s2 - self.s1 * self.s1 / n;
            st.m2 = if m2.is_nan() { m2 } else { m2.max(0.0) };
        }
        st
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats_of(vals: &[f64], r: &HistRange) -> TileStats {
        let mut a = StatsAcc::default();
        a.add(vals, r, r.scale());
        a.finish()
    }

    #[test]
    fn merged_tiles_equal_the_whole() {
        let vals: Vec<f64> = (0..1000).map(|i| 1e9 + ((i * 37) % 101) as f64 * 0.25).collect();
        let r = HistRange::around(1e9, 1e9 + 25.0);
        let whole = stats_of(&vals, &r);
        let mut merged = TileStats::default();
        for part in vals.chunks(77) {
            merged.merge(&stats_of(part, &r));
        }
        assert_eq!(merged.count, 1000);
        assert_eq!(merged.hist, whole.hist);
        assert_eq!((merged.min, merged.max), (whole.min, whole.max));
        let mean = vals.iter().sum::<f64>() / 1000.0;
        let var = vals.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / 1000.0;
        assert!((merged.mean() - mean).abs() < 1e-6);
        assert!((merged.std() - var.sqrt()).abs() < 1e-9 * var.sqrt().max(1.0), "{} {}", merged.std(), var.sqrt());
        assert!((whole.std() - var.sqrt()).abs() < 1e-9 * var.sqrt().max(1.0));
    }

    #[test]
    fn the_integer_path_equals_the_float_path() {
        let raw: Vec<u16> = (0..1000u32).map(|i| ((i * 7919 + 13) % 65536) as u16).collect();
        // uint16 and int16 (the same bits), uint8 and int8.
        let as_i16: Vec<i16> = raw.iter().map(|&b| b as i16).collect();
        let r16 = HistRange::around(-30000.0, 60000.0);
        // The bin of every index `bits ^ flip`, whose value is index + base.
        let lut16 =
            |base: i64| -> Vec<u8> { (0..65536i64).map(|i| r16.bin((i + base) as f64, r16.scale()) as u8).collect() };
        for (signed, vals_f) in [
            (false, raw.iter().map(|&v| f64::from(v)).collect::<Vec<_>>()),
            (true, as_i16.iter().map(|&v| f64::from(v)).collect()),
        ] {
            let (flip, base) = if signed { (0x8000, -32768) } else { (0, 0) };
            let mut a = StatsAcc::default();
            a.add_small_int(&raw, flip, base, &BinLut::new(lut16(base)));
            let mut b = StatsAcc::default();
            b.add(&vals_f, &r16, r16.scale());
            let (a, b) = (a.finish(), b.finish());
            assert_eq!((a.count, a.min, a.max, a.hist), (b.count, b.min, b.max, b.hist), "signed {signed}");
            assert!((a.sum - b.sum).abs() < 1e-6 && (a.m2 - b.m2).abs() < 1e-6 * b.m2, "{a:?} {b:?}");
        }
    }

    #[test]
    fn grouped_runs_and_the_compare_path_equal_the_float_path() {
        // Narrow runs (few bins: counted by comparisons on AVX2) and wide ones (the table), of lengths
        // that are not multiples of 16, over more than one group of runs.
        for (signed, spread) in [(false, 3000u32), (true, 3000), (false, 60000), (true, 60000)] {
            let (flip, base) = if signed { (0x8000u32, -32768i64) } else { (0, 0) };
            let range = HistRange::around(-30000.0, 60000.0);
            let lut = BinLut::new((0..65536i64).map(|i| range.bin((i + base) as f64, range.scale()) as u8).collect());
            let data: Vec<Vec<u16>> = [1000usize, 17, 5000, 3, 256, 4096, 31]
                .iter()
                .enumerate()
                .map(|(r, &n)| (0..n as u32).map(|i| (20000 + (i * 7919 + r as u32 * 13) % spread) as u16).collect())
                .collect();
            let runs: Vec<&[u16]> = data.iter().map(Vec::as_slice).collect();
            let mut a = StatsAcc::default();
            a.add_small_int_runs(&runs, flip, base, &lut);
            let mut b = StatsAcc::default();
            for r in &runs {
                let vals: Vec<f64> = r.iter().map(|&v| (i64::from(u32::from(v) ^ flip) + base) as f64).collect();
                b.add(&vals, &range, range.scale());
            }
            let (a, b) = (a.finish(), b.finish());
            assert_eq!((a.count, a.min, a.max, a.hist), (b.count, b.min, b.max, b.hist), "signed {signed} {spread}");
            assert!((a.sum - b.sum).abs() < 1e-6 * b.sum.abs() && (a.m2 - b.m2).abs() < 1e-9 * b.m2, "{a:?} {b:?}");
        }
    }

    #[test]
    fn special_values_are_counted_not_summed() {
        let r = HistRange::around(0.0, 10.0);
        let s = stats_of(&[1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 3.0, f64::NAN], &r);
        assert_eq!((s.count, s.nan, s.pos_inf, s.neg_inf), (2, 2, 1, 1));
        assert_eq!((s.min, s.max, s.sum), (1.0, 3.0, 4.0));
        assert_eq!(s.hist.iter().sum::<u64>(), 2);
    }

    #[test]
    fn histogram_bins_and_overflow() {
        let r = HistRange { lo: 0.0, hi: 64.0 };
        let s = stats_of(&[-1.0, 0.0, 0.5, 63.9, 64.0, 65.0], &r);
        assert_eq!(s.hist[0], 1);
        assert_eq!(s.hist[1], 2);
        assert_eq!(s.hist[HIST_BINS], 2);
        assert_eq!(s.hist[HIST_BINS + 1], 1);
    }

    #[test]
    fn percentiles_from_bins_are_close() {
        let vals: Vec<f64> = (0..10001).map(|i| i as f64).collect();
        let r = HistRange::around(0.0, 10000.0);
        let s = stats_of(&vals, &r);
        let w = (r.hi - r.lo) / HIST_BINS as f64;
        for p in [0.0, 0.5, 25.0, 50.0, 99.5, 100.0] {
            let exact = p / 100.0 * 10000.0;
            assert!((s.percentile(&r, p) - exact).abs() <= w, "p{p}: {} vs {exact}", s.percentile(&r, p));
        }
        assert_eq!(s.percentile(&r, 0.0), 0.0);
        assert_eq!(s.percentile(&r, 100.0), 10000.0);
    }

    #[test]
    fn ranges_of_extreme_samples_stay_finite() {
        for (a, b) in [
            (-1e308, 1e308),
            (-f64::MAX, f64::MAX),
            (-f64::MAX, -1e308),
            (1e308, f64::MAX),
            (0.0, f64::MAX),
            (5e-324, 1e-323),
            (-1.0, 1.0),
        ] {
            let r = HistRange::around(a, b);
            assert!(r.lo.is_finite() && r.hi.is_finite() && (r.hi - r.lo).is_finite() && r.lo < r.hi, "{a} {b}: {r:?}");
            assert!(r.scale().is_finite() || (b - a) < 1e-300, "{a} {b}: {r:?}");
            let s = stats_of(&[a, b, f64::NAN, f64::INFINITY, -f64::INFINITY, 0.0], &r);
            assert_eq!((s.count, s.nan, s.pos_inf, s.neg_inf, s.min, s.max), (3, 1, 1, 1, a.min(0.0), b.max(0.0)));
            assert_eq!(s.hist.iter().sum::<u64>(), 3);
            assert_eq!((s.percentile(&r, 0.0), s.percentile(&r, 100.0)), (a.min(0.0), b.max(0.0)), "{a} {b}");
        }
        // An ordinary span is unchanged.
        assert_eq!(HistRange::around(0.0, 64.0), HistRange { lo: -1.0, hi: 65.0 });
    }

    #[test]
    fn records_round_trip_and_detect_damage() {
        let r = HistRange::around(0.0, 1.0);
        let s = stats_of(&[0.1, 0.7, f64::NAN], &r);
        let mut b = s.to_bytes();
        assert_eq!(TileStats::from_bytes(&b), Some(s));
        b[20] ^= 1;
        assert_eq!(TileStats::from_bytes(&b), None);
        assert_eq!(TileStats::from_bytes(&[0u8; RECORD_BYTES]), None);
    }
}
