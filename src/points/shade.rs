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
    let vals: Vec<f64> = match grid {
        Grid::Count(c) => c.iter().map(|&n| if n == 0 { f64::NAN } else { f64::from(n) }).collect(),
        Grid::Float(v) => v.clone(),
    };
    let mut lo = f64::INFINITY;
    for v in vals.iter().filter(|v| !v.is_nan()) {
        lo = lo.min(*v);
    }
    if lo == f64::INFINITY {
        return vals;
    }
    // datashader subtracts the smallest non-empty value first (its `offset`).
    let mut f: Vec<f64> = vals.iter().map(|v| v - lo).collect();
    match scale {
        PointScale::Linear => {}
        PointScale::Log => f.iter_mut().for_each(|v| *v = v.ln_1p()),
        PointScale::EqHist => {
            f = match grid {
                Grid::Count(_) => eq_hist_int(&f).unwrap_or_else(|| eq_hist_float(&f)),
                Grid::Float(_) => eq_hist_float(&f),
            }
        }
    }
    let (mut s0, mut s1) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in f.iter().filter(|v| !v.is_nan()) {
        s0 = s0.min(*v);
        s1 = s1.max(*v);
    }
    // datashader divides by zero here (and draws nothing) when every pixel has the same value; draw the top color.
    let span = s1 - s0;
    f.iter_mut().filter(|v| !v.is_nan()).for_each(|v| *v = if span > 0.0 { (*v - s0) / span } else { 1.0 });
    f
}

/// Exact `eq_hist` for integer data spread over fewer than `EQ_HIST_BINS` values: the fraction of
/// non-empty pixels whose value is ≤ this one. `None` when the spread is too wide.
fn eq_hist_int(d: &[f64]) -> Option<Vec<f64>> {
    let max = d.iter().filter(|v| !v.is_nan()).fold(0.0f64, |a, &b| a.max(b));
    if max >= EQ_HIST_BINS as f64 {
        return None;
    }
    let mut hist = vec![0u64; max as usize + 1];
    for v in d.iter().filter(|v| !v.is_nan()) {
        hist[*v as usize] += 1;
    }
    let total: u64 = hist.iter().sum();
    let mut cdf = Vec::with_capacity(hist.len());
    let mut acc = 0u64;
    for h in hist {
        acc += h;
        cdf.push(acc as f64 / total as f64);
    }
    Some(d.iter().map(|v| if v.is_nan() { f64::NAN } else { cdf[*v as usize] }).collect())
}

/// `eq_hist` through numpy's `histogram(bins=65536)` (same edges and bin assignment), empty bins
/// dropped, then `np.interp` of each value on the (bin center, cdf) curve.
fn eq_hist_float(d: &[f64]) -> Vec<f64> {
    let (mut first, mut last) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in d.iter().filter(|v| !v.is_nan()) {
        first = first.min(*v);
        last = last.max(*v);
    }
    if first > last {
        return d.to_vec();
    }
    if first == last {
        first -= 0.5;
        last += 0.5;
    }
    let nb = EQ_HIST_BINS;
    let step = (last - first) / nb as f64;
    let mut edges: Vec<f64> = (0..=nb).map(|i| i as f64 * step + first).collect();
    edges[nb] = last;
    let denom = last - first;
    let mut hist = vec![0u64; nb];
    for &v in d.iter().filter(|v| !v.is_nan()) {
        let mut i = (((v - first) / denom) * nb as f64) as usize;
        if i >= nb {
            i = nb - 1;
        }
        if v < edges[i] && i > 0 {
            i -= 1;
        }
        if v >= edges[i + 1] && i != nb - 1 {
            i += 1;
        }
        hist[i] += 1;
    }
    let mut xp = Vec::new();
    let mut fp = Vec::new();
    let total: u64 = hist.iter().sum();
    let mut acc = 0u64;
    for (i, h) in hist.iter().enumerate() {
        if *h > 0 {
            acc += h;
            xp.push((edges[i] + edges[i + 1]) / 2.0);
            fp.push(acc as f64 / total as f64);
        }
    }
    d.iter().map(|&v| if v.is_nan() { f64::NAN } else { interp(v, &xp, &fp) }).collect()
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
        for &v in &t[row * w..(row + 1) * w] {
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
    out
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
