//! Formats array elements exactly as numpy's `str()` of the scalar shows them (shortest round-trip digits in the element's own dtype).
//!
//! The rules mirror numpy 2.x (`scalartypes.c.src` and `dragon4.c`, checked
//! against numpy 2.4 for every `float16` bit pattern and for large samples of
//! `float32` and `float64` values):
//!
//! * `nan` (never signed), `inf`, `-inf`; zero prints as `0.0` or `-0.0`.
//! * Digits are the shortest decimal string that rounds back to the same value
//!   *in the element's own dtype* (Dragon4 "unique" mode): boundaries of the
//!   rounding interval count as inside when the binary mantissa is even, and
//!   when two shortest candidates are equally close the one with an even last
//!   digit wins (`np.float32(1048576.25)` prints `1.0485762e+06`).
//! * Positional notation when `1e-4 <= |v| < max`, where `max` depends on the
//!   dtype: `1e16` for `float64`, `1e6` for `float32` and `1e3` for `float16`
//!   (numpy >= 2.3; numpy 2.0-2.2 used `1e16` for every dtype).
//!   The comparison uses the exact stored value, so `np.float32(0.0001)`
//!   (stored as 9.99999974e-05) prints as `1e-04`. Positional output always
//!   has a decimal point and at least one digit after it (`100.0`, `0.0001`).
//! * Otherwise scientific notation: one leading digit, a `.` and further digits
//!   only when there are any (`1e+16`, `1.5e-05`), then `e`, the exponent sign
//!   and at least two exponent digits (`6.55e+04`, `1e+100`).

use half::f16;

/// Formats a boolean like numpy's `str(np.bool_(v))`.
pub fn format_bool(v: bool) -> String {
    if v { "True" } else { "False" }.to_string()
}

/// Formats a `float64` element like numpy's `str(np.float64(v))`.
pub fn format_f64(v: f64) -> String {
    if let Some(s) = special(v.is_nan(), v.is_infinite(), v == 0.0, v.is_sign_negative()) {
        return s;
    }
    let abs = v.abs();
    let bits = v.to_bits();
    let frac = bits & ((1u64 << 52) - 1);
    let biased = ((bits >> 52) & 0x7ff) as i32; // 11 bits, always fits
    let decoded = decode(frac, biased, 52, 1075);
    let positional = (1e-4..1e16).contains(&abs);
    format_binary(v.is_sign_negative(), &format!("{abs:e}"), &decoded, positional)
}

/// Formats a `float32` element like numpy's `str(np.float32(v))`.
pub fn format_f32(v: f32) -> String {
    if let Some(s) = special(v.is_nan(), v.is_infinite(), v == 0.0, v.is_sign_negative()) {
        return s;
    }
    let abs = v.abs();
    let bits = v.to_bits();
    let frac = u64::from(bits & ((1u32 << 23) - 1));
    let biased = ((bits >> 23) & 0xff) as i32; // 8 bits, always fits
    let decoded = decode(frac, biased, 23, 150);
    // The lower bound is compared in f64: `1e-4_f32` itself lies below 1e-4.
    let positional = abs < 1e6 && f64::from(abs) >= 1e-4;
    format_binary(v.is_sign_negative(), &format!("{abs:e}"), &decoded, positional)
}

/// Formats a `float16` element like numpy's `str(np.float16(v))`.
pub fn format_f16(v: f16) -> String {
    if let Some(s) = special(v.is_nan(), v.is_infinite(), v.to_bits() & 0x7fff == 0, v.is_sign_negative()) {
        return s;
    }
    let abs = v.to_f32().abs();
    let positional = abs < 1e3 && f64::from(abs) >= 1e-4;
    match shortest_f16(v.to_bits()) {
        Some(digits) => layout(v.is_sign_negative(), &digits, !positional),
        // Not reached for any f16 (checked exhaustively); stay panic-free.
        None => format_f32(v.to_f32()),
    }
}

/// nan / inf / zero, which need no digit generation.
fn special(nan: bool, inf: bool, zero: bool, negative: bool) -> Option<String> {
    let s = if nan {
        "nan"
    } else if inf {
        if negative {
            "-inf"
        } else {
            "inf"
        }
    } else if zero {
        if negative {
            "-0.0"
        } else {
            "0.0"
        }
    } else {
        return None;
    };
    Some(s.to_string())
}

/// Splits a finite non-zero IEEE float (fraction bits, biased exponent field)
/// into `mant * 2^exp2`; `bias` is the exponent bias plus the fraction width.
fn decode(frac: u64, biased: i32, frac_bits: u32, bias: i32) -> Decoded {
    if biased == 0 {
        Decoded { mant: frac, exp2: 1 - bias, unequal_margins: false }
    } else {
        Decoded { mant: frac | (1u64 << frac_bits), exp2: biased - bias, unequal_margins: biased != 1 && frac == 0 }
    }
}

/// f32 / f64: Rust's shortest digits, numpy's tie rule, numpy's layout.
fn format_binary(negative: bool, rust: &str, decoded: &Decoded, positional: bool) -> String {
    match shortest_from_rust(rust, decoded) {
        Some(digits) => layout(negative, &digits, !positional),
        // Not reached (Rust's `{:e}` output always parses); stay panic-free.
        None if negative => format!("-{rust}"),
        None => rust.to_string(),
    }
}

/// A finite non-zero binary float: `mant * 2^exp2`.
struct Decoded {
    mant: u64,
    exp2: i32,
    /// The gap to the next lower float is half the gap to the next higher one
    /// (an exact power of two above the smallest normal exponent).
    unequal_margins: bool,
}

/// Significant decimal digits `d.ddd * 10^exp` (ASCII, no trailing zeros).
struct Digits {
    digits: String,
    exp: i32,
}

impl Digits {
    /// The decimal `int * 10^unit_exp`; `int` must be non-zero.
    fn from_int(int: u128, unit_exp: i32) -> Option<Digits> {
        let all = int.to_string();
        let len = i32::try_from(all.len()).ok()?;
        let digits = all.trim_end_matches('0');
        if digits.is_empty() {
            return None;
        }
        Some(Digits { digits: digits.to_string(), exp: unit_exp + len - 1 })
    }
}

/// Takes the shortest digits from Rust's `{:e}` output of a positive finite
/// float and applies numpy's round-half-to-even choice between two equally
/// close shortest candidates (Rust picks the upper one in that case).
fn shortest_from_rust(rust: &str, decoded: &Decoded) -> Option<Digits> {
    let (mantissa, exponent) = rust.split_once('e')?;
    let exp: i32 = exponent.parse().ok()?;
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = i32::try_from(digits.len()).ok()?;
    let unit_exp = exp - (n - 1);
    if let Ok(int) = digits.parse::<u64>() {
        if is_upper_of_tie(int, unit_exp, decoded) {
            return Digits::from_int(u128::from(int - 1), unit_exp);
        }
    }
    Digits::from_int(digits.parse::<u128>().ok()?, unit_exp)
}

/// Whether the value lies exactly halfway between `int - 1` and `int` (in
/// units of `10^unit_exp`), `int` is odd and `int - 1` is also a valid
/// shortest representation, so numpy would print the even `int - 1`.
fn is_upper_of_tie(int: u64, unit_exp: i32, decoded: &Decoded) -> bool {
    // A tie needs the value to be (2 * int - 1) * 10^unit_exp / 2 exactly,
    // which for a binary float is only possible with fractional digits.
    if int % 2 == 0 || unit_exp >= 0 {
        return false;
    }
    let q = unit_exp.unsigned_abs();
    let Some(twice) = int.checked_mul(2) else {
        return false;
    };
    let odd = twice - 1;
    // value * 2 * 10^q == odd  <=>  mant * 2^(exp2 + 1 + q) * 5^q == odd
    let Some(pow5) = 5u64.checked_pow(q) else {
        return false;
    };
    if odd % pow5 != 0 {
        return false;
    }
    let rest = u128::from(odd / pow5);
    let mant = u128::from(decoded.mant);
    let Ok(q_i32) = i32::try_from(q) else {
        return false;
    };
    let shift = decoded.exp2 + 1 + q_i32;
    let exact = if shift >= 0 { shift < 64 && mant << shift == rest } else { shift > -64 && rest << (-shift) == mant };
    if !exact {
        return false;
    }
    if !decoded.unequal_margins {
        return true;
    }
    // The lower candidate is 10^-q / 2 below the value, but the lower margin is
    // only 2^(exp2 - 2) (inclusive, the mantissa is even):
    // 10^-q / 2 <= 2^(exp2 - 2)  <=>  2^(1 - exp2) <= 10^q.
    let Some(pow10) = 10u128.checked_pow(q) else {
        return false;
    };
    match u32::try_from(1 - decoded.exp2) {
        Err(_) => true,
        Ok(e) if e < 127 => (1u128 << e) <= pow10,
        Ok(_) => false,
    }
}

/// Shortest round-trip digits of a finite non-zero f16 (given as bits), the
/// way numpy's Dragon4 picks them, computed with exact integer arithmetic.
fn shortest_f16(bits: u16) -> Option<Digits> {
    // Every quantity below is an integer count of 2^-26 * 10^-SCALE10.
    const SCALE10: i32 = 14;
    const BIN_SHIFT: u32 = 26;
    let frac = u128::from(bits & 0x3ff);
    let biased = i32::from((bits >> 10) & 0x1f);
    let (mant, exp2, unequal) =
        if biased == 0 { (frac, -24, false) } else { (frac | 0x400, biased - 25, biased != 1 && frac == 0) };
    if mant == 0 {
        return None;
    }
    let scale = 10u128.pow(SCALE10.unsigned_abs());
    // exp2 >= -24, so 2^(exp2 - 2), the smallest margin, is a whole unit.
    let shift = u32::try_from(exp2 + 24).ok()?;
    let value = (mant << (shift + 2)) * scale;
    let high_margin = (1u128 << (shift + 1)) * scale;
    let low_margin = if unequal { (1u128 << shift) * scale } else { high_margin };
    let even = mant % 2 == 0;
    let unit = |k: i32| -> Option<u128> {
        let e = u32::try_from(k + SCALE10).ok()?;
        10u128.checked_pow(e)?.checked_mul(1u128 << BIN_SHIFT)
    };
    // Exponent of the first significant digit (|f16| < 65536 < 10^5).
    let mut first = 4;
    while unit(first)? > value {
        first -= 1;
    }
    for n in 1..=17 {
        let k = first - n + 1;
        let u = unit(k)?;
        let q = value / u;
        let r = value % u;
        let up_gap = u - r;
        let low_ok = r < low_margin || (even && r == low_margin);
        let high_ok = up_gap < high_margin || (even && up_gap == high_margin);
        if low_ok || high_ok {
            let round_up = if low_ok && high_ok {
                match (2 * r).cmp(&u) {
                    std::cmp::Ordering::Less => false,
                    std::cmp::Ordering::Greater => true,
                    std::cmp::Ordering::Equal => q % 2 == 1,
                }
            } else {
                high_ok
            };
            return Digits::from_int(if round_up { q + 1 } else { q }, k);
        }
    }
    None
}

/// Lays the digits out the way numpy's Dragon4 does for `str()`.
fn layout(negative: bool, d: &Digits, scientific: bool) -> String {
    let mut out = String::with_capacity(d.digits.len() + 8);
    if negative {
        out.push('-');
    }
    let digits = d.digits.as_str();
    if scientific {
        let (first, rest) = digits.split_at(digits.len().min(1));
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        out.push('e');
        out.push(if d.exp < 0 { '-' } else { '+' });
        out.push_str(&format!("{:02}", d.exp.unsigned_abs()));
    } else if d.exp >= 0 {
        let whole = d.exp.unsigned_abs() as usize + 1;
        if digits.len() <= whole {
            out.push_str(digits);
            out.extend(std::iter::repeat_n('0', whole - digits.len()));
            out.push_str(".0");
        } else {
            let (int_part, frac_part) = digits.split_at(whole);
            out.push_str(int_part);
            out.push('.');
            out.push_str(frac_part);
        }
    } else {
        out.push_str("0.");
        let zeros = (-1 - d.exp).unsigned_abs() as usize;
        out.extend(std::iter::repeat_n('0', zeros));
        out.push_str(digits);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // Every expected string below was printed by numpy 2.4.6 as
    // `str(np.float64/float32/float16(x))` for the bit pattern given.

    #[test]
    fn f64_matches_numpy() {
        let cases: &[(u64, &str)] = &[
            (0x0, "0.0"),
            (0x8000000000000000, "-0.0"),
            (0x3ff0000000000000, "1.0"),
            (0xbff0000000000000, "-1.0"),
            (0x4059000000000000, "100.0"),
            (0x3fb999999999999a, "0.1"),
            (0x3f1a36e2eb1c432d, "0.0001"),
            (0x3f19f3c70c996b76, "9.9e-05"),
            (0x4341c37937e08000, "1e+16"),
            (0x4341c37937e07fff, "9999999999999998.0"),
            (0x430c6bf526340000, "1000000000000000.0"),
            (0x3eef75104d551d69, "1.5e-05"),
            (0x54b249ad2594c37d, "1e+100"),
            (0x01a56e1fc2f8f359, "1e-300"),
            (0x1, "5e-324"),
            (0xffefffffffffffff, "-1.7976931348623157e+308"),
            (0x0010000000000000, "2.2250738585072014e-308"),
            (0x40fe240c9fbe76c9, "123456.789"),
            (0x4480f0cf064dd592, "1e+22"),
            (0x44b52d02c7e14af6, "1e+23"),
            (0x4356345785d8a000, "2.5e+16"),
            (0x3fd3333333333333, "0.3"),
            (0x3fe5555555555555, "0.6666666666666666"),
            (0xc004000000000000, "-2.5"),
            (0x43118b54f22aeb03, "1234567890123456.8"),
            (0x4345ee2a2eb5a5c4, "1.2345678901234568e+16"),
            (0x3f0a36e2eb1c432d, "5e-05"),
            (0x7ff8000000000000, "nan"),
            (0xfff8000000000000, "nan"),
            (0x7ff0000000000000, "inf"),
            (0xfff0000000000000, "-inf"),
        ];
        for &(bits, want) in cases {
            assert_eq!(format_f64(f64::from_bits(bits)), want, "bits {bits:#x}");
        }
    }

    #[test]
    fn f32_matches_numpy() {
        let cases: &[(u32, &str)] = &[
            (0x0, "0.0"),
            (0x80000000, "-0.0"),
            (0x3f800000, "1.0"),
            (0x3dcccccd, "0.1"),
            (0x38d1b717, "1e-04"),
            (0x38d1b719, "0.00010000001"),
            (0x42c80000, "100.0"),
            (0x47f12065, "123456.79"),
            (0x497423ff, "999999.94"),
            (0x49742400, "1e+06"),
            (0xc9742400, "-1e+06"),
            (0x4b3c614e, "1.2345678e+07"),
            (0x4b800000, "1.6777216e+07"),
            (0x1, "1e-45"),
            (0x800000, "1.1754944e-38"),
            (0x7f7fffff, "3.4028235e+38"),
            (0xff7fffff, "-3.4028235e+38"),
            (0x3727c5ac, "1e-05"),
            (0x377ba882, "1.5e-05"),
            (0x3e99999a, "0.3"),
            (0x49800002, "1.0485762e+06"),
            (0x39800000, "0.00024414062"),
            (0x3f2aaaab, "0.6666667"),
            (0x501502f9, "1e+10"),
            (0x477fe000, "65504.0"),
            (0x7fc00000, "nan"),
            (0xffc00000, "nan"),
            (0x7f800000, "inf"),
            (0xff800000, "-inf"),
        ];
        for &(bits, want) in cases {
            assert_eq!(format_f32(f32::from_bits(bits)), want, "bits {bits:#x}");
        }
    }

    #[test]
    fn f16_matches_numpy() {
        let cases: &[(u16, &str)] = &[
            (0x0, "0.0"),
            (0x8000, "-0.0"),
            (0x3c00, "1.0"),
            (0x2e66, "0.1"),
            (0x3554, "0.333"),
            (0x068e, "0.0001"),
            (0x067d, "9.9e-05"),
            (0x0001, "6e-08"),
            (0x0002, "1e-07"),
            (0x0400, "6.104e-05"),
            (0x7bff, "6.55e+04"),
            (0xfbff, "-6.55e+04"),
            (0x6800, "2.048e+03"),
            (0x63cf, "999.5"),
            (0x63d0, "1e+03"),
            (0x63ce, "999.0"),
            (0x581a, "131.2"),
            (0x5806, "128.8"),
            (0x3800, "0.5"),
            (0xc100, "-2.5"),
            (0x4248, "3.14"),
            (0x7e00, "nan"),
            (0xfe00, "nan"),
            (0x7c00, "inf"),
            (0xfc00, "-inf"),
        ];
        for &(bits, want) in cases {
            assert_eq!(format_f16(f16::from_bits(bits)), want, "bits {bits:#x}");
        }
    }

    #[test]
    fn bool_matches_numpy() {
        assert_eq!(format_bool(true), "True");
        assert_eq!(format_bool(false), "False");
    }
}
