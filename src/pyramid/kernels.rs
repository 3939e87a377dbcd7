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
            #[inline(always)]
            fn from_level(x: f64) -> Self {
                (x + 0.5f64.copysign(x)) as $t
            }
            #[inline(always)]
            fn full_blocks(a: &[Self], b: &[Self], v: &mut [f64], k: &mut [u32], out: &mut [Self], max: bool) -> bool {
                small_int_blocks(a, b, v, k, out, max, |s| s as $t);
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
#[inline(never)]
pub(crate) fn level1_row<T: LevelValue>(
    a: &[T],
    b: Option<&[T]>,
    v: &mut [f64],
    k: &mut [u32],
    out: &mut [T],
    max: bool,
) {
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
#[inline(never)]
pub(crate) fn pair_rows(rows: &[(&[f64], &[u32])], vo: &mut [f64], ko: &mut [u32], max: bool) {
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
