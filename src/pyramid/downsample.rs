//! Box-filter downsampling: each output pixel is the NaN-ignoring mean of the data pixels it covers,
//! streamed a strip of rows at a time on all cores.

use rayon::prelude::*;

use crate::error::Result;
use crate::geom::Rect;
use crate::pyramid::store::Method;
use crate::source::{ArraySource, Element, RegionBuf};
use crate::with_elements;

/// The data pixels `[a, b)` behind each of `n_out` output pixels spanning `n_in` data pixels from `start`.
///
/// Shrinking (`n_out ≤ n_in`): data pixel k goes to the output pixel holding its center,
/// `floor((k + ½)·n_out / n_in)`, so for an integer factor the bins are exact blocks.
/// Enlarging: each output pixel takes the data pixel under its center (nearest).
pub fn bins(start: u64, n_in: u64, n_out: u64) -> Vec<(u64, u64)> {
    let (n_in_w, n_out_w) = (u128::from(n_in), u128::from(n_out));
    if n_out <= n_in {
        // First k with (2k + 1)·n_out ≥ 2·i·n_in, i.e. k = ceil((2·i·n_in − n_out) / (2·n_out)).
        let edge = |i: u128| -> u64 {
            let num = (2 * i * n_in_w).saturating_sub(n_out_w);
            num.div_ceil(2 * n_out_w) as u64
        };
        (0..n_out_w).map(|i| (start + edge(i), start + if i + 1 == n_out_w { n_in } else { edge(i + 1) })).collect()
    } else {
        (0..n_out_w)
            .map(|i| {
                let k = (((2 * i + 1) * n_in_w) / (2 * n_out_w)) as u64;
                (start + k, start + k + 1)
            })
            .collect()
    }
}

/// The one-row bin at the centre of each bin: what a preview reads instead of the whole block.
pub fn centre_rows(bins: &[(u64, u64)]) -> Vec<(u64, u64)> {
    bins.iter().map(|&(a, b)| ((a + b) / 2, (a + b) / 2 + 1)).collect()
}

/// The one-row bins a preview of `src` reads for the row blocks `bins`: the row at the centre of each
/// block ([`centre_rows`]), except where `src` reads the first rows of its chunks for a fraction of the
/// whole ([`ArraySource::cheap_head_rows`]: compressed tiles): there the blocks whose centres fall in one
/// chunk row read consecutive rows from the top of that chunk row (from the region's top if it starts
/// lower), in order, when that stops each chunk's decoding after a few rows. A staircase of the image
/// (each chunk row shown by its top rows), but a first frame that decodes a few percent of the data.
pub fn preview_rows(src: &dyn ArraySource, bins: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut rows = centre_rows(bins);
    let Some(ch) = src.cheap_head_rows().filter(|&c| c > 0) else { return rows };
    let mut i = 0;
    while i < rows.len() {
        let t = rows[i].0 / ch;
        let n = rows[i..].iter().take_while(|r| r.0 / ch == t).count();
        let top = (t * ch).max(bins[i].0);
        if crate::source::chunked::head_decoded(top - t * ch + n as u64, ch) {
            // The k-th block gets row top + k: never below its centre (the centres are distinct and
            // at least `top`), so the rows stay in order and inside the chunk row.
            for (k, r) in rows[i..i + n].iter_mut().enumerate() {
                *r = (top + k as u64, top + k as u64 + 1);
            }
        }
        i += n;
    }
    rows
}

/// Means of `src` over the blocks `x_bins × y_bins` (each a half-open pixel range), row by row, with
/// the channels of each block interleaved (`c` values per block for a `c`-channel source).
/// NaN pixels are left out of a block's mean; a block of only NaN is NaN. Multi-threaded; holds at most
/// one strip of source rows per thread.
pub fn block_means(
    src: &dyn ArraySource,
    slice: u64,
    x_bins: &[(u64, u64)],
    y_bins: &[(u64, u64)],
) -> Result<Vec<f64>> {
    block_reduce(src, slice, x_bins, y_bins, Method::Mean)
}

/// Like [`block_means`], with the block maximum (NaN-ignoring) for `Method::Max`.
pub fn block_reduce(
    src: &dyn ArraySource,
    slice: u64,
    x_bins: &[(u64, u64)],
    y_bins: &[(u64, u64)],
    method: Method,
) -> Result<Vec<f64>> {
    if method == Method::Mean {
        if let Some(r) = src.exact_block_means(slice, x_bins, y_bins) {
            return r;
        }
    }
    // Rows far apart (a strided preview): announce just those rows, not the span between them.
    let sparse = y_bins.windows(2).any(|w| w[1].0 > w[0].1);
    if sparse {
        if let (Some(first), Some(last)) = (x_bins.first(), x_bins.last()) {
            for &(ya, yb) in y_bins {
                src.prefetch(slice, Rect::new(first.0, ya, last.1, yb));
            }
        }
    }
    reduce_strips(src, slice, x_bins, y_bins, method == Method::Max, !sparse)
}

fn reduce_strips(
    src: &dyn ArraySource,
    slice: u64,
    x_bins: &[(u64, u64)],
    y_bins: &[(u64, u64)],
    max: bool,
    prefetch: bool,
) -> Result<Vec<f64>> {
    let c = src.info().image.channels as usize;
    let nx = x_bins.len() * c;
    let (Some(first), Some(last)) = (x_bins.first(), x_bins.last()) else {
        return Ok(Vec::new());
    };
    let (x0, x1) = (first.0, last.1);
    if let (Some(ya), Some(yb), true) = (y_bins.first(), y_bins.last(), prefetch) {
        // Let the disk stream the whole block region while the threads sum.
        src.prefetch(slice, Rect::new(x0, ya.0, x1, yb.1));
    }
    let mut out = vec![0.0f64; nx * y_bins.len()];
    out.par_chunks_mut(nx.max(1)).zip(y_bins.par_iter()).try_for_each_init(
        || (RegionBuf::default(), vec![0.0f64; nx], vec![0u64; nx]),
        |(buf, sums, counts), (row_out, &(ya, yb))| -> Result<()> {
            sums.iter_mut().for_each(|s| *s = if max { f64::NEG_INFINITY } else { 0.0 });
            counts.iter_mut().for_each(|c| *c = 0);
            // Read at most ~1M elements per strip.
            let step = ((1u64 << 20) / (x1 - x0).max(1)).clamp(1, (yb - ya).max(1));
            let mut y = ya;
            while y < yb {
                let y_end = (y + step).min(yb);
                src.read_region(slice, Rect::new(x0, y, x1, y_end), buf)?;
                let w = (x1 - x0) as usize;
                with_elements!(buf.dtype(), buf.bytes(), |s| accumulate(s, w, c, x0, x_bins, sums, counts, max));
                y = y_end;
            }
            for ((o, s), c) in row_out.iter_mut().zip(sums.iter()).zip(counts.iter()) {
                *o = if *c == 0 {
                    f64::NAN
                } else if max {
                    *s
                } else {
                    s / *c as f64
                };
            }
            Ok(())
        },
    )?;
    Ok(out)
}

/// Adds every row of the strip `data` (rows of `w` pixels of `c` channels from column `x0`) into the bins
/// (or keeps their maxima).
#[allow(clippy::too_many_arguments)]
fn accumulate<T: Element>(
    data: &[T],
    w: usize,
    c: usize,
    x0: u64,
    x_bins: &[(u64, u64)],
    sums: &mut [f64],
    counts: &mut [u64],
    max: bool,
) {
    for row in data.chunks_exact(w * c) {
        if max {
            for (i, &(a, b)) in x_bins.iter().enumerate() {
                for p in row[(a - x0) as usize * c..(b - x0) as usize * c].chunks_exact(c) {
                    for (k, e) in p.iter().enumerate() {
                        let v = e.to_f64();
                        if !v.is_nan() {
                            sums[i * c + k] = sums[i * c + k].max(v);
                            counts[i * c + k] += 1;
                        }
                    }
                }
            }
            continue;
        }
        for (i, &(a, b)) in x_bins.iter().enumerate() {
            let px = &row[(a - x0) as usize * c..(b - x0) as usize * c];
            if c == 1 {
                let mut s = 0.0f64;
                let mut n = 0u64;
                for e in px {
                    let v = e.to_f64();
                    if !v.is_nan() {
                        s += v;
                        n += 1;
                    }
                }
                sums[i] += s;
                counts[i] += n;
            } else {
                for p in px.chunks_exact(c) {
                    for (k, e) in p.iter().enumerate() {
                        sums[i * c + k] += e.to_f64();
                        counts[i * c + k] += 1;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_are_exact_blocks_for_integer_factors() {
        assert_eq!(bins(0, 8, 2), vec![(0, 4), (4, 8)]);
        assert_eq!(bins(10, 6, 3), vec![(10, 12), (12, 14), (14, 16)]);
        assert_eq!(bins(0, 5, 5), (0..5).map(|k| (k, k + 1)).collect::<Vec<_>>());
    }

    #[test]
    fn bins_partition_any_factor() {
        for (n_in, n_out) in [(10, 3), (20000, 1024), (7, 6), (1_000_000, 4096), (3, 1)] {
            let b = bins(5, n_in, n_out);
            assert_eq!(b.len() as u64, n_out);
            assert_eq!(b[0].0, 5);
            assert_eq!(b[b.len() - 1].1, 5 + n_in);
            for w in b.windows(2) {
                assert_eq!(w[0].1, w[1].0);
                assert!(w[0].0 < w[0].1);
            }
        }
        assert_eq!(bins(0, 10, 3), vec![(0, 3), (3, 7), (7, 10)]);
    }

    #[test]
    fn enlarging_picks_the_pixel_under_the_center() {
        assert_eq!(bins(0, 2, 4), vec![(0, 1), (0, 1), (1, 2), (1, 2)]);
        assert_eq!(bins(3, 2, 3), vec![(3, 4), (4, 5), (4, 5)]);
    }
}
