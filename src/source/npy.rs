//! `.npy` files (format versions 1.0, 2.0 and 3.0): header parsing and validation, then a memory map of the data.

use std::io::Read;
use std::path::Path;

use super::mapped::{Layout, MappedArray};
use super::{open_file, Format};
use crate::dtype::{DType, Endian, Order};
use crate::error::{Error, Result};

const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// numpy refuses headers longer than this by default; anything bigger is not a real header.
const MAX_HEADER: usize = 1 << 20;

/// The parsed header of an .npy file.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyHeader {
    pub major: u8,
    pub minor: u8,
    pub dtype: DType,
    pub endian: Endian,
    pub order: Order,
    pub shape: Vec<u64>,
    /// Bytes before the data (magic, version, length field and the header text).
    pub data_offset: u64,
}

/// Opens an .npy file read-only and memory-maps its data.
pub fn open_npy(path: &Path) -> Result<MappedArray> {
    let (file, len) = open_file(path)?;
    let header = read_header(path, &file, len)?;
    let (major, minor, total) = (header.major, header.minor, header.data_offset);
    let layout =
        Layout { shape: header.shape.clone(), dtype: header.dtype, endian: header.endian, order: header.order };
    let info = layout.into_info(path, Format::npy(major, minor), len, total)?;
    MappedArray::new(&file, info, total)
}

/// Reads and validates the header of an open .npy file of `len` bytes (the data is not checked).
pub fn read_header(path: &Path, file: &std::fs::File, len: u64) -> Result<NpyHeader> {
    // Read the preamble and header with plain reads: the header is small and bounded.
    let mut pre = [0u8; 12];
    let got = read_up_to(file, &mut pre).map_err(|e| Error::io(path, e))?;
    let (major, minor, len_field, text_len) = parse_preamble(path, &pre[..got])?;
    let start = 8 + len_field;
    if text_len > MAX_HEADER {
        return Err(Error::bad_input(
            path,
            format!("the .npy header claims {text_len} bytes, more than any real header"),
        ));
    }
    let total = start as u64 + text_len as u64;
    if total > len {
        return Err(Error::bad_input(
            path,
            format!("truncated .npy header: it says {text_len} header bytes but the file has only {len} bytes"),
        ));
    }
    let mut text = vec![0u8; text_len];
    {
        use std::io::{Seek, SeekFrom};
        let mut f = file;
        f.seek(SeekFrom::Start(start as u64)).map_err(|e| Error::io(path, e))?;
        f.read_exact(&mut text).map_err(|e| Error::io(path, e))?;
    }
    parse_header_text(path, major, minor, &text, total)
}

fn read_up_to(mut f: &std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Checks the magic and version; returns (major, minor, size of the length field, header length).
fn parse_preamble(path: &Path, pre: &[u8]) -> Result<(u8, u8, usize, usize)> {
    if pre.len() < 6 || &pre[..6] != MAGIC {
        return Err(Error::bad_input(
            path,
            "not an .npy file (no \\x93NUMPY magic); for raw binary give --dtype and --shape",
        ));
    }
    if pre.len() < 10 {
        return Err(Error::bad_input(path, "truncated .npy header (file ends inside the preamble)"));
    }
    let (major, minor) = (pre[6], pre[7]);
    match major {
        1 => Ok((major, minor, 2, u16::from_le_bytes([pre[8], pre[9]]) as usize)),
        2 | 3 => {
            if pre.len() < 12 {
                return Err(Error::bad_input(path, "truncated .npy header (file ends inside the preamble)"));
            }
            Ok((major, minor, 4, u32::from_le_bytes([pre[8], pre[9], pre[10], pre[11]]) as usize))
        }
        _ => Err(Error::bad_input(
            path,
            format!(".npy format version {major}.{minor} is not supported (1.0, 2.0 and 3.0 are)"),
        )),
    }
}

/// Parses the header dict, e.g. `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }`.
pub fn parse_header_text(path: &Path, major: u8, minor: u8, text: &[u8], data_offset: u64) -> Result<NpyHeader> {
    let text = if major >= 3 {
        std::str::from_utf8(text).ok()
    } else {
        std::str::from_utf8(text).ok().filter(|t| t.is_ascii())
    };
    let text = text.ok_or_else(|| Error::bad_input(path, "the .npy header is not valid text"))?;
    let bad = |m: &str| Error::bad_input(path, format!("malformed .npy header: {m}"));
    let mut p = Parser { s: text.as_bytes(), i: 0 };
    let dict = p.dict().map_err(|m| bad(&m))?;
    let mut descr = None;
    let mut fortran = None;
    let mut shape = None;
    for (k, v) in dict {
        match (k.as_str(), v) {
            ("descr", Value::Str(s)) => descr = Some(s),
            ("descr", Value::List) => {
                return Err(Error::bad_input(
                    path,
                    "structured (record) dtype is not supported: save one field as its own array",
                ))
            }
            ("fortran_order", Value::Bool(b)) => fortran = Some(b),
            ("shape", Value::Tuple(t)) => shape = Some(t),
            (k, _) => return Err(bad(&format!("unexpected key or value for '{k}'"))),
        }
    }
    let descr = descr.ok_or_else(|| bad("no 'descr'"))?;
    let fortran = fortran.ok_or_else(|| bad("no 'fortran_order'"))?;
    let shape = shape.ok_or_else(|| bad("no 'shape'"))?;
    let (dtype, endian) = DType::parse_descr(&descr).map_err(|m| Error::bad_input(path, m))?;
    Ok(NpyHeader { major, minor, dtype, endian, order: if fortran { Order::F } else { Order::C }, shape, data_offset })
}

enum Value {
    Str(String),
    Bool(bool),
    Tuple(Vec<u64>),
    List,
}

/// A parser for the tiny subset of Python literals that .npy headers use.
struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && (self.s[self.i] as char).is_ascii_whitespace() {
            self.i += 1;
        }
    }
    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.s.get(self.i).copied()
    }
    fn eat(&mut self, c: u8) -> Result<(), String> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(format!("expected '{}' at byte {}", c as char, self.i))
        }
    }
    fn dict(&mut self) -> Result<Vec<(String, Value)>, String> {
        self.eat(b'{')?;
        let mut out = Vec::new();
        loop {
            if self.peek() == Some(b'}') {
                self.i += 1;
                return Ok(out);
            }
            let k = self.string()?;
            self.eat(b':')?;
            let v = self.value()?;
            out.push((k, v));
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {}
                _ => return Err(format!("expected ',' or '}}' at byte {}", self.i)),
            }
        }
    }
    fn string(&mut self) -> Result<String, String> {
        let q = self.peek().ok_or("unexpected end")?;
        if q != b'\'' && q != b'"' {
            return Err(format!("expected a string at byte {}", self.i));
        }
        self.i += 1;
        let start = self.i;
        while self.i < self.s.len() && self.s[self.i] != q {
            self.i += 1;
        }
        if self.i >= self.s.len() {
            return Err("unterminated string".into());
        }
        let v = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
        self.i += 1;
        Ok(v)
    }
    fn value(&mut self) -> Result<Value, String> {
        match self.peek().ok_or("unexpected end")? {
            b'\'' | b'"' => Ok(Value::Str(self.string()?)),
            b'(' => {
                self.i += 1;
                let mut t = Vec::new();
                loop {
                    match self.peek() {
                        Some(b')') => {
                            self.i += 1;
                            return Ok(Value::Tuple(t));
                        }
                        Some(c) if c.is_ascii_digit() => {
                            let start = self.i;
                            while self.i < self.s.len() && self.s[self.i].is_ascii_digit() {
                                self.i += 1;
                            }
                            // Python ints in old headers may carry an 'L' suffix.
                            if self.s.get(self.i) == Some(&b'L') {
                                self.i += 1;
                            }
                            let digits =
                                std::str::from_utf8(&self.s[start..self.i]).unwrap_or("").trim_end_matches('L');
                            t.push(digits.parse::<u64>().map_err(|_| "shape dimension too large".to_string())?);
                            if self.peek() == Some(b',') {
                                self.i += 1;
                            }
                        }
                        _ => return Err(format!("bad shape tuple at byte {}", self.i)),
                    }
                }
            }
            b'[' => {
                // A structured dtype: skip the balanced list (strings may hold brackets).
                let mut depth = 0usize;
                while let Some(&c) = self.s.get(self.i) {
                    match c {
                        b'\'' | b'"' => {
                            self.string()?;
                            continue;
                        }
                        b'[' | b'(' => depth += 1,
                        b']' | b')' => {
                            depth -= 1;
                            if depth == 0 {
                                self.i += 1;
                                return Ok(Value::List);
                            }
                        }
                        _ => {}
                    }
                    self.i += 1;
                }
                Err("unterminated list".into())
            }
            _ => {
                let rest = &self.s[self.i..];
                if rest.starts_with(b"True") {
                    self.i += 4;
                    Ok(Value::Bool(true))
                } else if rest.starts_with(b"False") {
                    self.i += 5;
                    Ok(Value::Bool(false))
                } else {
                    Err(format!("unexpected value at byte {}", self.i))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(t: &str) -> Result<NpyHeader> {
        parse_header_text(Path::new("x.npy"), 1, 0, t.as_bytes(), 128)
    }

    #[test]
    fn parses_real_headers() {
        let h = parse("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }            \n").unwrap();
        assert_eq!((h.dtype, h.endian, h.order, h.shape), (DType::F32, Endian::Little, Order::C, vec![3, 4]));
        let h = parse("{'descr': '>u2', 'fortran_order': True, 'shape': (2, 5, 7), }\n").unwrap();
        assert_eq!((h.dtype, h.endian, h.order, h.shape), (DType::U16, Endian::Big, Order::F, vec![2, 5, 7]));
        let h = parse("{'descr': '|b1', 'fortran_order': False, 'shape': (10,), }").unwrap();
        assert_eq!(h.shape, vec![10]);
        let h = parse("{'descr': '<i8', 'fortran_order': False, 'shape': (3L, 4L)}").unwrap();
        assert_eq!(h.shape, vec![3, 4]);
    }

    #[test]
    fn rejects_bad_headers() {
        let e = parse("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (3,), }").unwrap_err();
        assert!(e.to_string().contains("structured"), "{e}");
        assert!(parse("{'descr': '<c16', 'fortran_order': False, 'shape': (3,), }")
            .unwrap_err()
            .to_string()
            .contains("complex"));
        assert!(parse("{'descr': '<f4', 'shape': (3,), }").unwrap_err().to_string().contains("fortran_order"));
        assert!(parse("{'descr': '<f4', 'fortran_order': False, 'shape': (3,").is_err());
        assert!(parse("garbage").is_err());
    }
}
