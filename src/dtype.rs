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

    /// The short spelling used on vastview's command line (`f32`, `u16`, `bool`).
    pub fn short(self) -> &'static str {
        match self {
            DType::Bool => "bool",
            DType::I8 => "i8",
            DType::U8 => "u8",
            DType::I16 => "i16",
            DType::U16 => "u16",
            DType::F16 => "f16",
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

    /// Parses a user's dtype: `f32`, `float32`, `<u2`, `>f8`, `uint8`, `bool`, `u1`, `f4`...
    /// Returns the type and the byte order the spelling names, if it names one.
    pub fn parse_user(s: &str) -> Option<(DType, Option<Endian>)> {
        let s = s.trim();
        let (endian, rest) = match s.chars().next() {
            Some('<') => (Some(Endian::Little), &s[1..]),
            Some('>') => (Some(Endian::Big), &s[1..]),
            Some('=') => (Some(Endian::NATIVE), &s[1..]),
            Some('|') => (None, &s[1..]),
            _ => (None, s),
        };
        let lower = rest.to_ascii_lowercase();
        let d = ALL.iter().copied().find(|d| {
            lower == d.name() || lower == d.short() || lower == d.code() || (lower == "?" && *d == DType::Bool)
        })?;
        // numpy spells the one-letter kinds without size for a few types; accept the common aliases too.
        Some((d, endian))
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
        assert_eq!(DType::parse_user("i8"), Some((DType::I8, None)));
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
