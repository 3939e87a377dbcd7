//! Element types, byte order and memory order of stored arrays, with numpy's spellings for each.

use std::fmt;

/// An element type vastview reads. Names follow numpy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    Bool,
    I8,
    U8,
    I16,
    U16,
    F16,
    I32,
    U32,
    F32,
    I64,
    U64,
    F64,
}

/// Byte order of multi-byte elements in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endian {
    Little,
    Big,
}

/// Memory order of a multi-dimensional array: C (last axis fastest) or Fortran (first axis fastest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Order {
    C,
    F,
}

impl Endian {
    pub const NATIVE: Endian = if cfg!(target_endian = "little") { Endian::Little } else { Endian::Big };
    pub fn name(self) -> &'static str {
        match self {
            Endian::Little => "little",
            Endian::Big => "big",
        }
    }
    pub fn parse(s: &str) -> Option<Endian> {
        match s.to_ascii_lowercase().as_str() {
            "little" | "le" | "<" => Some(Endian::Little),
            "big" | "be" | ">" => Some(Endian::Big),
            _ => None,
        }
    }
}

impl Order {
    pub fn name(self) -> &'static str {
        match self {
            Order::C => "C",
            Order::F => "F",
        }
    }
    pub fn parse(s: &str) -> Option<Order> {
        match s {
            "C" | "c" => Some(Order::C),
            "F" | "f" | "fortran" | "Fortran" => Some(Order::F),
            _ => None,
        }
    }
}

const ALL: [DType; 12] = [
    DType::Bool,
    DType::I8,
    DType::U8,
    DType::I16,
    DType::U16,
    DType::F16,
    DType::I32,
    DType::U32,
    DType::F32,
    DType::I64,
    DType::U64,
    DType::F64,
];

impl DType {
    pub fn all() -> &'static [DType] {
        &ALL
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::Bool | DType::I8 | DType::U8 => 1,
            DType::I16 | DType::U16 | DType::F16 => 2,
            DType::I32 | DType::U32 | DType::F32 => 4,
            DType::I64 | DType::U64 | DType::F64 => 8,
        }
    }

    /// numpy's name: `float32`, `uint16`, `bool`, ...
    pub fn name(self) -> &'static str {
        match self {
            DType::Bool => "bool",
            DType::I8 => "int8",
            DType::U8 => "uint8",
            DType::I16 => "int16",
            DType::U16 => "uint16",
            DType::F16 => "float16",
            DType::I32 => "int32",
            DType::U32 => "uint32",
            DType::F32 => "float32",
            DType::I64 => "int64",
            DType::U64 => "uint64",
            DType::F64 => "float64",
        }
    }

    /// numpy's kind and size letters (`f4`, `u2`, `b1`).
    pub fn code(self) -> &'static str {
        match self {
            DType::Bool => "b1",
            DType::I8 => "i1",
            DType::U8 => "u1",
            DType::I16 => "i2",
            DType::U16 => "u2",
            DType::F16 => "f2",
            DType::I32 => "i4",
            DType::U32 => "u4",
            DType::F32 => "f4",
            DType::I64 => "i8",
            DType::U64 => "u8",
            DType::F64 => "f8",
        }
    }

    /// The shortest spelling `--dtype` reads back as this type (`f32`, `u16`, `bool`; `int8`, `uint8` and
    /// `float16` have no short form: `i8`, `u8` and `f16` are numpy's int64, uint64 and float128).
    pub fn short(self) -> &'static str {
        match self {
            DType::Bool => "bool",
            DType::I8 => "int8",
            DType::U8 => "uint8",
            DType::I16 => "i16",
            DType::U16 => "u16",
            DType::F16 => "float16",
            DType::I32 => "i32",
            DType::U32 => "u32",
            DType::F32 => "f32",
            DType::I64 => "i64",
            DType::U64 => "u64",
            DType::F64 => "f64",
        }
    }

    pub fn is_float(self) -> bool {
        matches!(self, DType::F16 | DType::F32 | DType::F64)
    }

    /// 64-bit types travel to the GPU as a per-tile offset plus a float32 residual.
    pub fn is_wide(self) -> bool {
        self.size() == 8
    }

    /// numpy `descr` string for this type and byte order, as written into .npy headers (`<f4`, `|u1`).
    pub fn descr(self, endian: Endian) -> String {
        let e = if self.size() == 1 {
            '|'
        } else {
            match endian {
                Endian::Little => '<',
                Endian::Big => '>',
            }
        };
        format!("{e}{}", self.code())
    }

    /// Parses a user's dtype (see [`DType::parse_spelling`]); `None` when it is not one vastview reads.
    pub fn parse_user(s: &str) -> Option<(DType, Option<Endian>)> {
        DType::parse_spelling(s).ok()
    }

    /// Parses a user's dtype, exactly as numpy spells it and with numpy's meaning, or one of vastview's
    /// short forms. Returns the type and the byte order the spelling names, if it names one.
    ///
    /// - numpy codes, with an optional byte-order prefix `<` `>` `=` `|`: `b1` `?` `i1` `i2` `i4` `i8` `u1`
    ///   `u2` `u4` `u8` `f2` `f4` `f8` (the digit is the size in **bytes**: `i8` is int64, `u8` uint64);
    /// - numpy names (no prefix): `bool` `int8` … `int64` `uint8` … `uint64` `float16` `float32` `float64`;
    /// - short forms (no prefix), the size in bits: `i16` `u16` `i32` `u32` `i64` `u64` `f32` `f64`.
    ///   `i8`/`u8` are numpy's codes (8 bytes), so there is no short form for one-byte integers (`u1`,
    ///   `uint8`), and `f16` is numpy's float128, which is refused (half precision is `f2` or `float16`).
    ///
    /// Case matters (numpy's `U4` is a string type, `u4` uint32). `Err` says why anything else is refused.
    pub fn parse_spelling(s: &str) -> Result<(DType, Option<Endian>), String> {
        for d in ALL {
            if s == d.name() {
                return Ok((d, None));
            }
        }
        let short = [
            ("i16", DType::I16),
            ("u16", DType::U16),
            ("i32", DType::I32),
            ("u32", DType::U32),
            ("i64", DType::I64),
            ("u64", DType::U64),
            ("f32", DType::F32),
            ("f64", DType::F64),
        ];
        if let Some(&(_, d)) = short.iter().find(|(k, _)| *k == s) {
            return Ok((d, None));
        }
        let (prefix, code) = match s.as_bytes().first() {
            Some(b'<' | b'>' | b'=' | b'|') => (s.get(..1), &s[1..]),
            _ => (None, s),
        };
        let found = if code == "?" { Some(DType::Bool) } else { ALL.iter().copied().find(|d| d.code() == code) };
        let Some(d) = found else {
            return Err(dtype_refusal(s, code));
        };
        // numpy: '|' ("not applicable") and '=' mean native order; one-byte types have no byte order.
        let endian = match prefix {
            _ if d.size() == 1 => None,
            Some("<") => Some(Endian::Little),
            Some(">") => Some(Endian::Big),
            Some(_) => Some(Endian::NATIVE),
            None => None,
        };
        Ok((d, endian))
    }

    /// Parses a numpy `descr` from an .npy header (`'<f4'`, `'|b1'`, `'>i8'`). `Err` explains why not.
    pub fn parse_descr(descr: &str) -> Result<(DType, Endian), String> {
        let mut chars = descr.chars();
        let order = chars.next().ok_or_else(|| "empty dtype".to_string())?;
        let rest: String = chars.collect();
        let endian = match order {
            '<' => Endian::Little,
            '>' => Endian::Big,
            '|' | '=' => Endian::NATIVE,
            _ => return Err(format!("dtype '{descr}' is not understood")),
        };
        let kind = rest.chars().next().unwrap_or(' ');
        let d = ALL.iter().copied().find(|d| d.code() == rest || (rest == "?" && *d == DType::Bool));
        match d {
            Some(d) => Ok((d, endian)),
            None => Err(match kind {
                'c' => format!("complex dtype '{descr}' is not supported (save the real part or np.abs of it)"),
                'O' => format!(
                    "object dtype '{descr}' is not supported (arrays of Python objects cannot be memory-mapped)"
                ),
                'U' | 'S' | 'a' => format!("string dtype '{descr}' is not supported"),
                'M' | 'm' => format!("datetime/timedelta dtype '{descr}' is not supported"),
                'V' => format!("void/structured dtype '{descr}' is not supported"),
                'f' => format!("float dtype '{descr}' is not supported (float16, float32 and float64 are)"),
                _ => format!("dtype '{descr}' is not supported"),
            }),
        }
    }
}

/// Why a dtype spelling is refused, naming what was given (and what it is in numpy, when it is something).
fn dtype_refusal(given: &str, code: &str) -> String {
    let supported = "bool, int8, uint8, int16, uint16, float16, int32, uint32, float32, int64, uint64, float64; \
                     numpy codes such as '<u2', 'f4', 'i8' (= int64); or i16, u16, i32, u32, i64, u64, f32, f64";
    let what = match code {
        "f16" | "f12" | "g" | "float128" | "longdouble" => Some("numpy's float128 (16 bytes), which is not supported"),
        "" => Some("empty"),
        _ => match code.as_bytes()[0] {
            b'c' | b'F' | b'D' | b'G' => Some("a complex type, which is not supported"),
            b'U' | b'S' | b'a' => Some("a string type, which is not supported"),
            b'M' | b'm' => Some("a datetime/timedelta type, which is not supported"),
            b'O' => Some("an object type, which is not supported"),
            b'V' => Some("a void/structured type, which is not supported"),
            _ => None,
        },
    };
    let hint = if code == "f16" { " (half precision is 'f2' or 'float16')" } else { "" };
    match what {
        Some(w) => format!("--dtype '{given}' is {w}{hint}; supported: {supported}"),
        None => format!("--dtype '{given}' is not a supported type; supported: {supported}"),
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_user_spellings() {
        assert_eq!(DType::parse_user("f32"), Some((DType::F32, None)));
        assert_eq!(DType::parse_user("float32"), Some((DType::F32, None)));
        assert_eq!(DType::parse_user("<u2"), Some((DType::U16, Some(Endian::Little))));
        assert_eq!(DType::parse_user(">f8"), Some((DType::F64, Some(Endian::Big))));
        assert_eq!(DType::parse_user("bool"), Some((DType::Bool, None)));
        assert_eq!(DType::parse_user("i8"), Some((DType::I64, None)), "numpy's code: 8 bytes");
        assert_eq!(DType::parse_user("u8"), Some((DType::U64, None)), "numpy's code: 8 bytes");
        assert_eq!(DType::parse_user("<U4"), None, "a string type");
        assert!(DType::parse_spelling("f16").unwrap_err().contains("float128"));
        for d in DType::all() {
            assert_eq!(DType::parse_user(d.short()).map(|x| x.0), Some(*d), "{}", d.short());
            assert_eq!(DType::parse_user(d.name()).map(|x| x.0), Some(*d));
            assert_eq!(DType::parse_user(&d.descr(Endian::Big)).map(|x| x.0), Some(*d));
        }
        assert_eq!(DType::parse_user("complex64"), None);
    }

    #[test]
    fn parses_descr_and_rejects_unsupported() {
        assert_eq!(DType::parse_descr("<f4"), Ok((DType::F32, Endian::Little)));
        assert_eq!(DType::parse_descr(">i8"), Ok((DType::I64, Endian::Big)));
        assert_eq!(DType::parse_descr("|b1").map(|d| d.0), Ok(DType::Bool));
        assert!(DType::parse_descr("<c8").unwrap_err().contains("complex"));
        assert!(DType::parse_descr("|O").unwrap_err().contains("object"));
        assert!(DType::parse_descr("<U5").unwrap_err().contains("string"));
        assert!(DType::parse_descr("<M8[ns]").unwrap_err().contains("datetime"));
        for d in DType::all() {
            assert_eq!(DType::parse_descr(&d.descr(Endian::Big)).map(|x| x.0), Ok(*d));
        }
    }
}
