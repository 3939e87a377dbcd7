//! Shading an aggregate grid into RGBA on the CPU, following datashader's `tf.shade` with a matplotlib
//! colormap: linear, log (log1p) and eq_hist scales over the non-empty pixels, alpha, then a background.

use crate::palette::{palette_index, Colormap};
use crate::points::bin::Grid;

/// The numeric bins datashader's `eq_hist` uses for float data (and for integers spread wider than this).
pub const EQ_HIST_BINS: usize = 256 * 256;

/// How aggregate values map to 0..1 before the colormap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PointScale {
    #[default]
    Linear,
    Log,
    EqHist,
}

impl PointScale {
    pub const ALL: [PointScale; 3] = [PointScale::Linear, PointScale::Log, PointScale::EqHist];
    pub fn name(self) -> &'static str {
        match self {
            PointScale::Linear => "linear",
            PointScale::Log => "log",
            PointScale::EqHist => "eqhist",
        }
    }
    /// `linear`, `log`, `eqhist` (also `eq_hist`).
    pub fn parse(s: &str) -> Option<PointScale> {
        let s = s.to_ascii_lowercase().replace('_', "");
        PointScale::ALL.into_iter().find(|m| m.name() == s)
    }
}

/// Everything that turns an aggregate into colors.
#[derive(Debug, Clone)]
pub struct Shading {
    pub colormap: Colormap,
    pub scale: PointScale,
    /// Alpha of the non-empty pixels (0..255).
    pub alpha: u8,
    /// Composited under the density layer (datashader's `set_background`); alpha 0 = none.
    pub background: [u8; 4],
}

/// The normalized value (0..1) of every pixel, NaN where empty. Row order as in the grid.
pub fn normalize(grid: &Grid, scale: PointScale) -> Vec<f64> {
    let vals = values(grid);
    let mut n = Normalizer::new(scale, matches!(grid, Grid::Count(_)));
    n.see_range(&vals);
    if n.needs_histogram() {
        n.see_histogram(&vals);
        n.end_histogram();
    }
    n.see_span(&vals);
    vals.iter().map(|&v| n.apply(v)).collect()
}

/// A grid's pixel values as float64, NaN where empty (count 0).
pub fn values(grid: &Grid) -> Vec<f64> {
    match grid {
        Grid::Count(c) => c.iter().map(|&n| if n == 0 { f64::NAN } else { f64::from(n) }).collect(),
        Grid::Float(v) => v.clone(),
    }
}

/// What normalizing needs to know of the whole grid, gathered from its pixels in any number of parts
/// (strips of an image too big to hold), stage by stage: `see_range` (every part), then for eq_hist
/// `see_histogram` (every part) and `end_histogram`, then `see_span` (every part); then `apply` maps a
/// pixel value to 0..1 exactly as a whole-grid [`normalize`] would.
#[derive(Debug, Clone)]
pub struct Normalizer {
    scale: PointScale,
    /// Integer (count) data: eq_hist uses exact bins when their spread allows.
    int: bool,
    /// Smallest and largest non-empty value.
    lo: f64,
    hi: f64,
    hist: Hist,
    /// Smallest and largest scaled value (before the final 0..1 stretch).
    s0: f64,
    s1: f64,
}

/// The eq_hist histogram (while gathered) and then its curve.
#[derive(Debug, Clone)]
enum Hist {
    None,
    /// Exact: counts of every integer offset 0..=max; then the cdf.
    Int(Vec<u64>),
    IntCdf(Vec<f64>),
    /// numpy's 65536 bins: edges and counts; then the (bin centre, cdf) curve.
    Float {
        edges: Vec<f64>,
        first: f64,
        denom: f64,
        counts: Vec<u64>,
    },
    Curve {
        xp: Vec<f64>,
        fp: Vec<f64>,
    },
}

impl Normalizer {
    pub fn new(scale: PointScale, int: bool) -> Normalizer {
        Normalizer {
            scale,
            int,
            lo: f64::INFINITY,
            hi: f64::NEG_INFINITY,
            hist: Hist::None,
            s0: f64::INFINITY,
            s1: f64::NEG_INFINITY,
        }
    }

    /// Stage 1: the range of non-empty values.
    pub fn see_range(&mut self, vals: &[f64]) {
        self.see_range_of(vals.iter().map(|&v| (v, 1)))
    }

    /// [`Normalizer::see_range`] of values each seen `m` times (`(value, m)`): the stages depend only on
    /// the multiset of values, so a count grid's distinct values and their pixel counts stand for it.
    pub fn see_range_of(&mut self, vals: impl Iterator<Item = (f64, u64)>) {
        for v in vals.map(|(v, _)| v).filter(|v| !v.is_nan()) {
            self.lo = self.lo.min(v);
            self.hi = self.hi.max(v);
        }
    }

    /// Whether stage 2 (the eq_hist histogram) is needed.
    pub fn needs_histogram(&self) -> bool {
        self.scale == PointScale::EqHist && self.lo != f64::INFINITY
    }

    /// Stage 2: eq_hist's histogram of the values less the smallest (datashader's offset).
    pub fn see_histogram(&mut self, vals: &[f64]) {
        self.see_histogram_of(vals.iter().map(|&v| (v, 1)))
    }

    /// [`Normalizer::see_histogram`] of values each seen `m` times.
    pub fn see_histogram_of(&mut self, vals: impl Iterator<Item = (f64, u64)>) {
        if matches!(self.hist, Hist::None) {
            // The offsets run from 0 to hi − lo (subtracting a constant keeps the order).
            let max = self.hi - self.lo;
            self.hist = if self.int && max < EQ_HIST_BINS as f64 {
                Hist::Int(vec![0; max as usize + 1])
            } else {
                let (mut first, mut last) = (0.0, max);
                if first == last {
                    first -= 0.5;
                    last += 0.5;
                }
                let nb = EQ_HIST_BINS;
                let step = (last - first) / nb as f64;
                let mut edges: Vec<f64> = (0..=nb).map(|i| i as f64 * step + first).collect();
                edges[nb] = last;
                Hist::Float { edges, first, denom: last - first, counts: vec![0; nb] }
            };
        }
        let lo = self.lo;
        match &mut self.hist {
            Hist::Int(h) => {
                for (v, m) in vals.filter(|(v, _)| !v.is_nan()) {
                    if let Some(c) = h.get_mut((v - lo) as usize) {
                        *c += m;
                    }
                }
            }
            Hist::Float { edges, first, denom, counts } => {
                let nb = EQ_HIST_BINS;
                for (v, m) in vals.filter(|(v, _)| !v.is_nan()) {
                    let v = v - lo;
                    let mut i = (((v - *first) / *denom) * nb as f64) as usize;
                    if i >= nb {
                        i = nb - 1;
                    }
                    if v < edges[i] && i > 0 {
                        i -= 1;
                    }
                    if v >= edges[i + 1] && i != nb - 1 {
                        i += 1;
                    }
                    counts[i] += m;
                }
            }
            _ => {}
        }
    }

    /// End of stage 2: the histogram becomes eq_hist's curve.
    pub fn end_histogram(&mut self) {
        self.hist = match std::mem::replace(&mut self.hist, Hist::None) {
            Hist::Int(hist) => {
                let total: u64 = hist.iter().sum();
                let mut cdf = Vec::with_capacity(hist.len());
                let mut acc = 0u64;
                for h in hist {
                    acc += h;
                    cdf.push(acc as f64 / total as f64);
                }
                Hist::IntCdf(cdf)
            }
            Hist::Float { edges, counts, .. } => {
                let (mut xp, mut fp) = (Vec::new(), Vec::new());
                let total: u64 = counts.iter().sum();
                let mut acc = 0u64;
                for (i, h) in counts.iter().enumerate() {
                    if *h > 0 {
                        acc += h;
                        xp.push((edges[i] + edges[i + 1]) / 2.0);
                        fp.push(acc as f64 / total as f64);
                    }
                }
                Hist::Curve { xp, fp }
            }
            h => h,
        };
    }

    /// A non-empty value scaled (offset, then linear, log or eq_hist), before the 0..1 stretch.
    fn scaled(&self, v: f64) -> f64 {
        let f = v - self.lo;
        match (self.scale, &self.hist) {
            (PointScale::Log, _) => f.ln_1p(),
            (PointScale::EqHist, Hist::IntCdf(cdf)) => cdf.get(f as usize).copied().unwrap_or(f64::NAN),
            (PointScale::EqHist, Hist::Curve { xp, fp }) => interp(f, xp, fp),
            _ => f,
        }
    }

    /// Stage 3: the range of the scaled values.
    pub fn see_span(&mut self, vals: &[f64]) {
        self.see_span_of(vals.iter().map(|&v| (v, 1)))
    }

    /// [`Normalizer::see_span`] of values each seen `m` times.
    pub fn see_span_of(&mut self, vals: impl Iterator<Item = (f64, u64)>) {
        if self.lo == f64::INFINITY {
            return;
        }
        for v in vals.map(|(v, _)| v).filter(|v| !v.is_nan()) {
            let f = self.scaled(v);
            if !f.is_nan() {
                self.s0 = self.s0.min(f);
                self.s1 = self.s1.max(f);
            }
        }
    }

    /// A pixel value normalized to 0..1 (NaN stays NaN: empty).
    pub fn apply(&self, v: f64) -> f64 {
        if v.is_nan() || self.lo == f64::INFINITY {
            return v;
        }
        let f = self.scaled(v);
        if f.is_nan() {
            return f;
        }
        // datashader divides by zero here (and draws nothing) when every pixel has the same value; draw
        // the top color.
        let span = self.s1 - self.s0;
        if span > 0.0 {
            (f - self.s0) / span
        } else {
            1.0
        }
    }
}

/// numpy's `interp` (clamped at both ends).
fn interp(x: f64, xp: &[f64], fp: &[f64]) -> f64 {
    let n = xp.len();
    if n == 0 {
        return f64::NAN;
    }
    if x <= xp[0] {
        return fp[0];
    }
    if x >= xp[n - 1] {
        return fp[n - 1];
    }
    // xp[j] <= x < xp[j + 1]
    let j = xp.partition_point(|&e| e <= x) - 1;
    let slope = (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j]);
    slope * (x - xp[j]) + fp[j]
}

/// The smallest grid value drawn with each palette entry or a later one: entry k is used for a non-empty value v
/// iff `t[k] ≤ v < t[k + 1]` (+∞ where no value reaches entry k). The window's shader picks palette entries with
/// these 256 thresholds, so it draws exactly the entries `shade` picks (same `normalize`, computed here once per
/// grid and scale on the CPU) while the grid itself stays on the GPU as raw values. Every scale is monotone, so
/// the thresholds are non-decreasing.
pub fn palette_thresholds(grid: &Grid, scale: PointScale) -> [f64; 256] {
    let t = normalize(grid, scale);
    let mut th = [f64::INFINITY; 256];
    let mut note = |v: f64, ti: f64| {
        if !ti.is_nan() {
            let k = palette_index(ti);
            if v < th[k] {
                th[k] = v;
            }
        }
    };
    match grid {
        Grid::Count(c) => c.iter().zip(&t).for_each(|(&v, &ti)| note(f64::from(v), ti)),
        Grid::Float(f) => f.iter().zip(&t).for_each(|(&v, &ti)| note(v, ti)),
    }
    for k in (0..255).rev() {
        th[k] = th[k].min(th[k + 1]);
    }
    th
}

/// The palette entry the thresholds give value `v`: the last k with `th[k] ≤ v` (what the shader's search does).
pub fn threshold_index(th: &[f64; 256], v: f64) -> usize {
    th.partition_point(|&t| t <= v).saturating_sub(1)
}

/// datashader's `over` compositing of straight-alpha RGBA `src` onto `dst`.
fn over(src: [u8; 4], dst: [u8; 4]) -> [u8; 4] {
    let s = src.map(|c| f64::from(c) / 255.0);
    let d = dst.map(|c| f64::from(c) / 255.0);
    let factor = 1.0 - s[3];
    let a = s[3] + d[3] * factor;
    if a == 0.0 {
        return [0; 4];
    }
    let ch = |i: usize| (s[i] * s[3] + d[i] * d[3] * factor) / a;
    let q = |v: f64| (v * 255.0).clamp(0.0, 255.0) as u8;
    [q(ch(0)), q(ch(1)), q(ch(2)), q(a)]
}

/// Shades a `w`×`h` grid (row 0 = lowest y) into RGBA8 rows, north up (row 0 of the output = highest y).
pub fn shade(grid: &Grid, w: usize, h: usize, sh: &Shading) -> Vec<u8> {
    let t = normalize(grid, sh.scale);
    let mut out = Vec::with_capacity(w * h * 4);
    for row in (0..h).rev() {
        shade_row(&t[row * w..(row + 1) * w], sh, &mut out);
    }
    out
}

/// Appends the RGBA8 pixels of one row of normalized values (NaN = empty) to `out`.
pub fn shade_row(t: &[f64], sh: &Shading, out: &mut Vec<u8>) {
    for &v in t {
        let px = if v.is_nan() {
            [0, 0, 0, 0]
        } else {
            let c = sh.colormap.color(v);
            [c[0], c[1], c[2], sh.alpha]
        };
        let px = if sh.background[3] > 0 { over(px, sh.background) } else { px };
        out.extend_from_slice(&px);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eq_hist_of_counts_is_the_cdf() {
        let g = Grid::Count(vec![0, 1, 1, 2, 5]);
        let t = normalize(&g, PointScale::EqHist);
        // offsets 0,0,1,4 -> cdf 0.5, 0.5, 0.75, 1 -> span 0.5..1
        assert!(t[0].is_nan());
        assert_eq!(&t[1..], &[0.0, 0.0, 0.5, 1.0]);
        let l = normalize(&g, PointScale::Linear);
        assert_eq!(&l[1..], &[0.0, 0.0, 0.25, 1.0]);
    }

    #[test]
    fn thresholds_pick_the_entries_shade_picks() {
        // Counts spread wide (float eq_hist) and narrow (exact eq_hist), and float values with NaN.
        let counts: Vec<u32> = (0..5000u32).map(|i| (i * 7919 % 1000) * (i % 5) + i % 3).collect();
        let wide: Vec<u32> = (0..5000u32).map(|i| i * i % 200_003).collect();
        let floats: Vec<f64> =
            (0..5000).map(|i| if i % 11 == 0 { f64::NAN } else { ((i as f64) * 0.37).sin() * 1e3 }).collect();
        for grid in [Grid::Count(counts), Grid::Count(wide), Grid::Float(floats)] {
            for scale in PointScale::ALL {
                let th = palette_thresholds(&grid, scale);
                let t = normalize(&grid, scale);
                for (i, ti) in t.iter().enumerate() {
                    let v = match &grid {
                        Grid::Count(c) => f64::from(c[i]),
                        Grid::Float(f) => f[i],
                    };
                    if ti.is_nan() {
                        continue;
                    }
                    assert_eq!(threshold_index(&th, v), palette_index(*ti), "{scale:?} pixel {i} value {v}");
                }
                assert!(th.windows(2).all(|w| w[0] <= w[1]));
            }
        }
    }

    #[test]
    fn interp_matches_numpy() {
        let xp = [1.0, 2.0, 4.0];
        let fp = [0.25, 0.5, 1.0];
        assert_eq!(interp(0.0, &xp, &fp), 0.25);
        assert_eq!(interp(3.0, &xp, &fp), 0.75);
        assert_eq!(interp(2.0, &xp, &fp), 0.5);
        assert_eq!(interp(9.0, &xp, &fp), 1.0);
    }

    #[test]
    fn over_keeps_opaque_source() {
        assert_eq!(over([10, 20, 30, 255], [255, 255, 255, 255]), [10, 20, 30, 255]);
        assert_eq!(over([0, 0, 0, 0], [1, 2, 3, 255]), [1, 2, 3, 255]);
    }
}
