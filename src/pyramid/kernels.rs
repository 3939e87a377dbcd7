//! Hot loops of the pyramid pass for one-channel images: level 1 reduced from pairs of data rows and
//! converted to its stored dtype in the same loop, and the sums of a level reduced pairwise into the
//! next one. Every path yields exactly the bits of the plain f64 arithmetic (same operations, same
//! order); the integer paths are exact, so they agree with it.

use crate::source::Element;

/// A value type a level is stored in (the source's own; bool is stored as u8).
pub(crate) trait LevelValue: Element {
    /// The stored value of a level pixel of mean (or max) `x`, NaN for an empty block: integers
    /// rounded half away from zero (`as` saturates at the type's limits).
    fn from_level(x: f64) -> Self;

    /// For 8- and 16-bit integers: level-1 pixels of the full 2×2 blocks of rows `a` and `b` (same
    /// even length) in integer arithmetic, into sums/maxima `v`, counts `k` and stored values `out`.
    /// False (nothing written) for the other types.
    #[inline(always)]
    fn full_blocks(_a: &[Self], _b: &[Self], _v: &mut [f64], _k: &mut [u32], _out: &mut [Self], _max: bool) -> bool {
        false
    }

    /// For 8- and 16-bit integers: four data rows `r` (same length, a multiple of 4) to two stored
    /// level-1 rows `out` and one row of level-2 sums (or maxima) and counts, all in integers. False
    /// (nothing written) for the other types.
    #[inline(always)]
    fn full_blocks4(_r: [&[Self]; 4], _out: [&mut [Self]; 2], _v: &mut [f64], _k: &mut [u32], _max: bool) -> bool {
        false
    }
}

macro_rules! level_float {
    ($t:ty, |$x:ident| $e:expr) => {
        impl LevelValue for $t {
            #[inline(always)]
            fn from_level($x: f64) -> Self {
                $e
            }
        }
    };
}
level_float!(f64, |x| x);
level_float!(f32, |x| x as f32);
level_float!(half::f16, |x| half::f16::from_f64(x));

macro_rules! level_int {
    ($t:ty) => {
        impl LevelValue for $t {
            #[inline(always)]
            fn from_level(x: f64) -> Self {
                (x + 0.5f64.copysign(x)) as $t
            }
        }
    };
    ($t:ty, small) => {
        impl LevelValue for $t {
            /// As `(x ± 0.5) as $t`, spelt so that it vectorises: clamped in f64, truncated through i32.
            #[inline(always)]
            fn from_level(x: f64) -> Self {
                let y = x + 0.5f64.copysign(x);
                let c = if y.is_nan() { 0.0 } else { y.clamp(<$t>::MIN as f64, <$t>::MAX as f64) };
                // SAFETY: `c` is finite and within $t's range, so within i32's. The checked `as` would
                // be converted one value at a time (it saturates); this one converts 4 per instruction.
                unsafe { c.to_int_unchecked::<i32>() as $t }
            }
            #[inline(always)]
            fn full_blocks(a: &[Self], b: &[Self], v: &mut [f64], k: &mut [u32], out: &mut [Self], max: bool) -> bool {
                small_int_blocks(a, b, v, k, out, max, |s| s as $t);
                true
            }
            #[inline(always)]
            fn full_blocks4(r: [&[Self]; 4], out: [&mut [Self]; 2], v: &mut [f64], k: &mut [u32], max: bool) -> bool {
                small_int_blocks4(r, out, v, k, max, |s| s as $t);
                true
            }
        }
    };
}
level_int!(u8, small);
level_int!(i8, small);
level_int!(u16, small);
level_int!(i16, small);
level_int!(u32);
level_int!(i32);
level_int!(u64);
level_int!(i64);

/// Full 2×2 blocks of small integers. The f64 path would compute the sum `s` exactly (|s| < 2^18) and
/// round `s / 4` half away from zero; `(|s| + 2) >> 2` with the sign of `s` is the same number. A
/// maximum is an integer, which that rounding leaves alone.
#[inline(always)]
fn small_int_blocks<T: Copy + Into<i32>>(
    a: &[T],
    b: &[T],
    v: &mut [f64],
    k: &mut [u32],
    out: &mut [T],
    max: bool,
    from: impl Fn(i32) -> T,
) {
    let blocks = a.chunks_exact(2).zip(b.chunks_exact(2)).zip(v.iter_mut().zip(k.iter_mut()).zip(out.iter_mut()));
    if max {
        for ((pa, pb), ((v, k), o)) in blocks {
            let m = pa[0].into().max(pa[1].into()).max(pb[0].into().max(pb[1].into()));
            *v = f64::from(m);
            *k = 4;
            *o = from(m);
        }
    } else {
        for ((pa, pb), ((v, k), o)) in blocks {
            let s = pa[0].into() + pa[1].into() + pb[0].into() + pb[1].into();
            let r = (s.abs() + 2) >> 2;
            *v = f64::from(s);
            *k = 4;
            *o = from(if s < 0 { -r } else { r });
        }
    }
}

/// Four rows of full 4×4 blocks of small integers: level 1 as in [`small_int_blocks`], and level 2's
/// sums (exact, so the f64 path's order of additions does not matter) or maxima, with counts of 16.
#[inline(always)]
fn small_int_blocks4<T: Copy + Into<i32>>(
    r: [&[T]; 4],
    out: [&mut [T]; 2],
    v: &mut [f64],
    k: &mut [u32],
    max: bool,
    from: impl Fn(i32) -> T,
) {
    let [oa, ob] = out;
    let quads = r[0].chunks_exact(4).zip(r[1].chunks_exact(4)).zip(r[2].chunks_exact(4).zip(r[3].chunks_exact(4)));
    let outs = oa.chunks_exact_mut(2).zip(ob.chunks_exact_mut(2)).zip(v.iter_mut().zip(k.iter_mut()));
    let round = |s: i32| {
        let q = (s.abs() + 2) >> 2;
        from(if s < 0 { -q } else { q })
    };
    if max {
        for (((p0, p1), (p2, p3)), ((oa, ob), (v, k))) in quads.zip(outs) {
            let m = |x: &[T], y: &[T], i: usize| x[i].into().max(x[i + 1].into()).max(y[i].into().max(y[i + 1].into()));
            let (a0, a1, b0, b1) = (m(p0, p1, 0), m(p0, p1, 2), m(p2, p3, 0), m(p2, p3, 2));
            (oa[0], oa[1], ob[0], ob[1]) = (from(a0), from(a1), from(b0), from(b1));
            *v = f64::from(a0.max(a1).max(b0.max(b1)));
            *k = 16;
        }
    } else {
        for (((p0, p1), (p2, p3)), ((oa, ob), (v, k))) in quads.zip(outs) {
            let s = |x: &[T], y: &[T], i: usize| x[i].into() + x[i + 1].into() + y[i].into() + y[i + 1].into();
            let (a0, a1, b0, b1) = (s(p0, p1, 0), s(p0, p1, 2), s(p2, p3, 0), s(p2, p3, 2));
            (oa[0], oa[1], ob[0], ob[1]) = (round(a0), round(a1), round(b0), round(b1));
            *v = f64::from(a0 + a1 + b0 + b1);
            *k = 16;
        }
    }
}

/// Four data rows of 8- or 16-bit integers (or fewer: `false`, nothing written) to two stored level-1
/// rows and level 2's sums, for the first `4·q` columns; returns whether it did.
pub(crate) fn full_blocks4<T: LevelValue>(
    r: [&[T]; 4],
    out: [&mut [T]; 2],
    v: &mut [f64],
    k: &mut [u32],
    max: bool,
) -> bool {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        #[target_feature(enable = "avx2")]
        fn avx2<T: LevelValue>(r: [&[T]; 4], out: [&mut [T]; 2], v: &mut [f64], k: &mut [u32], max: bool) -> bool {
            T::full_blocks4(r, out, v, k, max)
        }
        // SAFETY: the CPU was just checked for AVX2.
        return unsafe { avx2(r, out, v, k, max) };
    }
    T::full_blocks4(r, out, v, k, max)
}

#[inline(always)]
pub(crate) fn add(v: &mut f64, k: &mut u32, x: f64, max: bool) {
    if !x.is_nan() {
        *v = if max { v.max(x) } else { *v + x };
        *k += 1;
    }
}

/// Adds one row segment of scalar values into half-width outputs (pixels 2i and 2i+1 → output i).
#[inline(always)]
pub(crate) fn reduce_pairs<T: Element>(seg: &[T], vo: &mut [f64], ko: &mut [u32], max: bool) {
    let pairs = seg.chunks_exact(2);
    let rest = pairs.remainder();
    if max {
        for ((p, v), k) in pairs.zip(vo.iter_mut()).zip(ko.iter_mut()) {
            let (a, b) = (p[0].to_f64(), p[1].to_f64());
            add(v, k, a, true);
            add(v, k, b, true);
        }
    } else {
        for ((p, v), k) in pairs.zip(vo.iter_mut()).zip(ko.iter_mut()) {
            let (a, b) = (p[0].to_f64(), p[1].to_f64());
            let (na, nb) = (a.is_nan(), b.is_nan());
            *v += if na { 0.0 } else { a } + if nb { 0.0 } else { b };
            *k += u32::from(!na) + u32::from(!nb);
        }
    }
    if let (Some(e), Some(v), Some(k)) = (rest.first(), vo.last_mut(), ko.last_mut()) {
        add(v, k, e.to_f64(), max);
    }
}

/// The mean (or max) of a block from its sum (or max) and count; NaN when the block is empty.
#[inline(always)]
pub(crate) fn block_value(v: f64, k: u32, max: bool) -> f64 {
    // Branch-free, so loops over it vectorise.
    let x = if max { v } else { v / f64::from(k) };
    if k == 0 {
        f64::NAN
    } else {
        x
    }
}

/// Level-1 pixels of data rows `a` and, below it, `b` (none for a last odd row): sums or maxima `v`,
/// counts `k` (as `reduce_pairs` of `a` then `b` from empty gives) and stored values `out`.
/// `v`, `k` and `out` hold `a.len().div_ceil(2)` pixels.
pub(crate) fn level1_row<T: LevelValue>(
    a: &[T],
    b: Option<&[T]>,
    v: &mut [f64],
    k: &mut [u32],
    out: &mut [T],
    max: bool,
) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        #[target_feature(enable = "avx2")]
        fn avx2<T: LevelValue>(a: &[T], b: Option<&[T]>, v: &mut [f64], k: &mut [u32], out: &mut [T], max: bool) {
            level1_body(a, b, v, k, out, max)
        }
        // SAFETY: the CPU was just checked for AVX2 (wider vectors, and f64 <-> i32 conversions).
        return unsafe { avx2(a, b, v, k, out, max) };
    }
    level1_body(a, b, v, k, out, max)
}

#[inline(always)]
fn level1_body<T: LevelValue>(a: &[T], b: Option<&[T]>, v: &mut [f64], k: &mut [u32], out: &mut [T], max: bool) {
    let full = a.len() / 2;
    let done = match b {
        Some(b)
            if T::full_blocks(
                &a[..2 * full],
                &b[..2 * full],
                &mut v[..full],
                &mut k[..full],
                &mut out[..full],
                max,
            ) =>
        {
            full
        }
        _ => 0,
    };
    if done == v.len() {
        return;
    }
    let (v, k, out) = (&mut v[done..], &mut k[done..], &mut out[done..]);
    v.fill(if max { f64::NEG_INFINITY } else { 0.0 });
    k.fill(0);
    reduce_pairs(&a[2 * done..], v, k, max);
    if let Some(b) = b {
        reduce_pairs(&b[2 * done..], v, k, max);
    }
    for ((o, &v), &k) in out.iter_mut().zip(v.iter()).zip(k.iter()) {
        *o = T::from_level(block_value(v, k, max));
    }
}

/// Reduces up to two rows of sums/counts (one channel) into one half-width row `vo`/`ko`, which must
/// start empty (0 or −inf, 0): output `o` takes entries `2o`, `2o + 1` of the first row, then of the
/// second. Branch-free, and the same bits as adding only the non-empty entries: an empty entry is
/// +0 (mean), which leaves a sum that started at +0 unchanged, or −inf (max), which `max` ignores.
pub(crate) fn pair_rows(rows: &[(&[f64], &[u32])], vo: &mut [f64], ko: &mut [u32], max: bool) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        #[target_feature(enable = "avx2")]
        fn avx2(rows: &[(&[f64], &[u32])], vo: &mut [f64], ko: &mut [u32], max: bool) {
            pair_rows_body(rows, vo, ko, max)
        }
        // SAFETY: the CPU was just checked for AVX2.
        return unsafe { avx2(rows, vo, ko, max) };
    }
    pair_rows_body(rows, vo, ko, max)
}

#[inline(always)]
fn pair_rows_body(rows: &[(&[f64], &[u32])], vo: &mut [f64], ko: &mut [u32], max: bool) {
    for &(vi, ki) in rows {
        let (vp, kp) = (vi.chunks_exact(2), ki.chunks_exact(2));
        let (vr, kr) = (vp.remainder(), kp.remainder());
        if max {
            for ((o, ok), (p, q)) in vo.iter_mut().zip(ko.iter_mut()).zip(vp.zip(kp)) {
                *o = o.max(p[0]).max(p[1]);
                *ok += q[0] + q[1];
            }
        } else {
            for ((o, ok), (p, q)) in vo.iter_mut().zip(ko.iter_mut()).zip(vp.zip(kp)) {
                *o = *o + p[0] + p[1];
                *ok += q[0] + q[1];
            }
        }
        if let (Some(&v), Some(&k), Some(o), Some(ok)) = (vr.first(), kr.first(), vo.last_mut(), ko.last_mut()) {
            *o = if max { o.max(v) } else { *o + v };
            *ok += k;
        }
    }
}

/// Stored values of a row of sums (or maxima) and counts.
pub(crate) fn convert<T: LevelValue>(v: &[f64], k: &[u32], out: &mut [T], max: bool) {
    #[inline(always)]
    fn body<T: LevelValue>(v: &[f64], k: &[u32], out: &mut [T], max: bool) {
        for ((o, &v), &k) in out.iter_mut().zip(v).zip(k) {
            *o = T::from_level(block_value(v, k, max));
        }
    }
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        #[target_feature(enable = "avx2")]
        fn avx2<T: LevelValue>(v: &[f64], k: &[u32], out: &mut [T], max: bool) {
            body(v, k, out, max)
        }
        // SAFETY: the CPU was just checked for AVX2.
        return unsafe { avx2(v, k, out, max) };
    }
    body(v, k, out, max)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plain f64 path the kernels must match bit for bit: level 1 by `reduce_pairs` and
    /// `block_value`, level 2 by adding only non-empty entries.
    #[allow(clippy::type_complexity)]
    fn reference<T: LevelValue>(rows: &[&[T]], max: bool) -> (Vec<Vec<T>>, Vec<f64>, Vec<u32>) {
        let init = if max { f64::NEG_INFINITY } else { 0.0 };
        let w1 = rows[0].len().div_ceil(2);
        let mut level1 = Vec::new();
        let (mut vo, mut ko) = (vec![init; w1.div_ceil(2)], vec![0u32; w1.div_ceil(2)]);
        for pair in rows.chunks(2) {
            let (mut v, mut k) = (vec![init; w1], vec![0u32; w1]);
            for r in pair {
                reduce_pairs(r, &mut v, &mut k, max);
            }
            level1.push(v.iter().zip(&k).map(|(&v, &k)| T::from_level(block_value(v, k, max))).collect());
            for (i, (&v, &k)) in v.iter().zip(&k).enumerate() {
                if k > 0 {
                    vo[i / 2] = if max { vo[i / 2].max(v) } else { vo[i / 2] + v };
                    ko[i / 2] += k;
                }
            }
        }
        (level1, vo, ko)
    }

    /// What the builder's fused loop does for one block of up to four rows.
    #[allow(clippy::type_complexity)]
    fn fused<T: LevelValue>(rows: &[&[T]], max: bool) -> (Vec<Vec<T>>, Vec<f64>, Vec<u32>) {
        let w = rows[0].len();
        let (w1, w2) = (w.div_ceil(2), w.div_ceil(4));
        let init = if max { f64::NEG_INFINITY } else { 0.0 };
        let mut level1 = vec![vec![T::zeroed(); w1]; rows.len().div_ceil(2)];
        let (mut vo, mut ko) = (vec![init; w2], vec![0u32; w2]);
        let (mut p0, mut x0, mut o0) = (0, 0, 0);
        if rows.len() == 4 {
            let q = w / 4;
            let (a, b) = level1.split_at_mut(1);
            let r = [0, 1, 2, 3].map(|i| &rows[i][..4 * q]);
            if full_blocks4(r, [&mut a[0][..2 * q], &mut b[0][..2 * q]], &mut vo[..q], &mut ko[..q], max) {
                (p0, x0, o0) = (2 * q, 4 * q, q);
            }
        }
        let mut scratch = Vec::new();
        for (r1, pair) in rows.chunks(2).enumerate() {
            let (mut v, mut k) = (vec![0.0; w1 - p0], vec![0u32; w1 - p0]);
            let b = pair.get(1).map(|r| &r[x0..]);
            level1_row(&pair[0][x0..], b, &mut v, &mut k, &mut level1[r1][p0..], max);
            scratch.push((v, k));
        }
        let s: Vec<(&[f64], &[u32])> = scratch.iter().map(|(v, k)| (v.as_slice(), k.as_slice())).collect();
        pair_rows(&s, &mut vo[o0..], &mut ko[o0..], max);
        (level1, vo, ko)
    }

    fn check<T: LevelValue>(vals: impl Fn(usize) -> T) {
        for w in [1, 2, 3, 4, 5, 8, 13, 64, 67] {
            for n in 1..=4 {
                let data: Vec<Vec<T>> = (0..n).map(|y| (0..w).map(|x| vals(y * 131 + x * 7)).collect()).collect();
                let rows: Vec<&[T]> = data.iter().map(Vec::as_slice).collect();
                for max in [false, true] {
                    let (a, b) = (reference(&rows, max), fused(&rows, max));
                    let bytes = |l: &[Vec<T>]| {
                        l.iter().flat_map(|r| bytemuck::cast_slice::<T, u8>(r).to_vec()).collect::<Vec<u8>>()
                    };
                    assert_eq!(bytes(&a.0), bytes(&b.0), "level 1, w {w} n {n} max {max}");
                    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    assert_eq!((bits(&a.1), &a.2), (bits(&b.1), &b.2), "level 2, w {w} n {n} max {max}");
                }
            }
        }
    }

    #[test]
    fn fused_kernels_equal_the_f64_path() {
        let pick = |i: usize, set: &[f64]| set[(i * 2654435761) % set.len()];
        check(|i| pick(i, &[0.0, 1.0, 2.0, 3.0, 65535.0, 65534.0, 32768.0, 7.0]) as u16);
        check(|i| pick(i, &[-32768.0, 32767.0, -1.0, 0.0, 1.0, -2.0, 3.0, -3.0]) as i16);
        check(|i| pick(i, &[0.0, 255.0, 254.0, 1.0, 2.0, 128.0]) as u8);
        check(|i| pick(i, &[-128.0, 127.0, -1.0, 0.0, 1.0, -2.0, 2.0]) as i8);
        check(|i| pick(i, &[f64::NAN, 1.5, -2.25, 0.0, -0.0, 1e30, f64::INFINITY, f64::NEG_INFINITY]) as f32);
        check(|i| pick(i, &[f64::NAN, 1.5, -2.25, 0.0, -0.0, 1e300, 3.0]));
        check(|i| pick(i, &[-7.0, 3e9, -3e9, 1.0]) as i64);
    }

    #[test]
    fn small_int_conversion_equals_the_saturating_cast() {
        let xs = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.0, -0.0, 0.49, 0.5, -0.5, -0.51, 1.5, -1.5, 2.5];
        let more = [127.4, 127.5, 128.0, -128.5, -129.0, 255.5, 256.0, 32767.5, -32768.5, 65535.4, 65535.5, 1e10];
        for &x in xs.iter().chain(&more) {
            assert_eq!(u8::from_level(x), (x + 0.5f64.copysign(x)) as u8, "{x}");
            assert_eq!(i8::from_level(x), (x + 0.5f64.copysign(x)) as i8, "{x}");
            assert_eq!(u16::from_level(x), (x + 0.5f64.copysign(x)) as u16, "{x}");
            assert_eq!(i16::from_level(x), (x + 0.5f64.copysign(x)) as i16, "{x}");
        }
    }
}
