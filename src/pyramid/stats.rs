//! Statistics without a full pass: percentiles of an evenly spread, bounded sample of an image.

use crate::error::Result;
use crate::source::ArraySource;

/// Default number of values sampled for percentile limits.
pub const SAMPLE_BUDGET: u64 = 1 << 20;
/// Rows a large image's sample is spread over.
pub const SAMPLE_ROWS: u64 = 512;

/// Contrast limits: data values mapped to the bottom and top of the colormap.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub lo: f64,
    pub hi: f64,
}

/// `n` indices evenly spread over `0..len` (all of them when `n ≥ len`).
fn spread(len: u64, n: u64) -> Vec<u64> {
    if n >= len {
        return (0..len).collect();
    }
    (0..n).map(|i| ((2 * i + 1) * len / (2 * n)).min(len - 1)).collect()
}

/// The `p_lo` and `p_hi` percentiles (0–100, numpy's default linear interpolation) of the finite
/// values in an evenly spread sample of at most `budget` pixels of the slice. When the image has no
/// more pixels than the budget, every pixel is used, so the result equals `np.nanpercentile`.
/// No finite values gives `0..1`.
pub fn percentile_limits(src: &dyn ArraySource, slice: u64, p_lo: f64, p_hi: f64, budget: u64) -> Result<Limits> {
    let im = src.info().image;
    let (w, h) = (im.width, im.height);
    // Few rows, many columns: a row's samples share its pages, so a cold file costs
    // SAMPLE_ROWS row reads, not one page per sample.
    let (nx, ny) = if w.saturating_mul(h) <= budget {
        (w, h)
    } else {
        let nx = (budget / h.clamp(1, SAMPLE_ROWS)).clamp(1, w);
        // Narrow images get more rows (their rows are cheap), up to the budget.
        (nx, (budget / nx).clamp(1, h))
    };
    sample_percentiles(src, slice, &spread(h, ny), nx, p_lo, p_hi)
}

/// Percentile limits from `nx` evenly spread columns of the given rows (a preview reads just these).
pub fn sample_percentiles(
    src: &dyn ArraySource,
    slice: u64,
    rows: &[u64],
    nx: u64,
    p_lo: f64,
    p_hi: f64,
) -> Result<Limits> {
    let w = src.info().image.width;
    let mut vals = src.sample_grid(slice, &spread(w, nx.clamp(1, w)), rows)?;
    vals.retain(|v| v.is_finite());
    if vals.is_empty() {
        return Ok(Limits { lo: 0.0, hi: 1.0 });
    }
    vals.sort_unstable_by(f64::total_cmp);
    Ok(Limits { lo: percentile_sorted(&vals, p_lo), hi: percentile_sorted(&vals, p_hi) })
}

/// numpy's `percentile(a, p)` with the default 'linear' method, for sorted, non-empty `a`.
pub fn percentile_sorted(a: &[f64], p: f64) -> f64 {
    let pos = (p.clamp(0.0, 100.0) / 100.0) * (a.len() - 1) as f64;
    let i = pos.floor() as usize;
    let frac = pos - i as f64;
    match a.get(i + 1) {
        Some(&next) if frac > 0.0 => a[i] + (next - a[i]) * frac,
        _ => a[i],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_match_numpy_linear() {
        let a = [1.0, 2.0, 3.0, 4.0, 10.0];
        // np.percentile([1,2,3,4,10], [0, 25, 50, 99.5, 100]) -> 1, 2, 3, 9.88, 10
        assert_eq!(percentile_sorted(&a, 0.0), 1.0);
        assert_eq!(percentile_sorted(&a, 25.0), 2.0);
        assert_eq!(percentile_sorted(&a, 50.0), 3.0);
        assert!((percentile_sorted(&a, 99.5) - 9.88).abs() < 1e-12);
        assert_eq!(percentile_sorted(&a, 100.0), 10.0);
    }

    #[test]
    fn spread_is_even_and_in_range() {
        assert_eq!(spread(10, 20), (0..10).collect::<Vec<_>>());
        assert_eq!(spread(10, 2), vec![2, 7]);
        assert!(spread(1_000_000, 1000).iter().all(|&x| x < 1_000_000));
    }
}
