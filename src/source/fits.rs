//! FITS images: header parsing (2880-byte blocks of 80-character cards, CONTINUE, HIERARCH), the HDU
//! list (primary, IMAGE extensions; tables listed and skipped), BZERO/BSCALE/BLANK as astropy applies
//! them, and the selected image's big-endian data memory-mapped in place.

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use super::mapped::MappedArray;
use super::registry::{FormatSpec, Magic, Probe};
use super::{open_file, ArraySource, Axis, Format, ImageShape, OpenSpec, Scalar, Scaling, SourceInfo};
use crate::dtype::{DType, Endian, Order};
use crate::error::{Error, Result};

/// FITS block size: headers and data come in whole blocks.
pub const BLOCK: u64 = 2880;
const CARD: usize = 80;
/// A header longer than this many blocks (about 29 MB, 360 000 cards) is not a real one.
const MAX_HEADER_BLOCKS: u64 = 10_000;

/// FITS (Flexible Image Transport System): primary images and IMAGE extensions.
pub static FITS: FormatSpec = FormatSpec {
    name: "fits",
    title: "FITS image",
    extensions: &["fits", "fit", "fts"],
    mime: &["image/fits", "application/fits"],
    magic: &[Magic { offset: 0, bytes: b"SIMPLE  =" }],
    default_app: true,
    confirm: Some(confirm),
    dir: None,
    open: open_fits_source,
    parts: None,
};

/// The content check after the `SIMPLE  =` magic: the card's value is logical true.
fn confirm(p: &Probe) -> bool {
    p.head.get(..CARD).is_some_and(|c| matches!(parse_value(&c[10..]).0, Value::Logical(true)))
}

fn open_fits_source(spec: &OpenSpec) -> Result<Arc<dyn ArraySource>> {
    let src = open_fits(&spec.path, spec.member.as_deref())?;
    match src.info().scaling {
        // Integer data with BLANK: astropy hands out floats with NaN there; so does vastview, so that
        // renders, statistics and pyramids all see the blanks as NaN.
        Some(s) if s.blank.is_some() && matches!(s.physical, DType::F32 | DType::F64) => {
            let note = format!(
                "{} with BLANK = {} as NaN (stored {} converted on read, as astropy does)",
                s.physical.name(),
                s.blank.unwrap_or_default(),
                src.info().dtype.name()
            );
            Ok(Arc::new(super::scaled::PhysicalFloat::new(Arc::new(src), s, note)))
        }
        _ => Ok(Arc::new(src)),
    }
}

// ---------------------------------------------------------------------------------------------------
// Cards and values

/// A header value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Logical(bool),
    /// An integer (exact: BZERO = 9223372036854775808 fits).
    Int(i128),
    Float(f64),
    Str(String),
    /// A complex value, kept as written (`(1.0, 2.0)`).
    Complex(String),
    /// `KEY = ` with nothing after it.
    Undefined,
    /// A commentary card's text (COMMENT, HISTORY, blank keyword, or no value indicator).
    Text(String),
    /// A value field that is none of the above, as written.
    Invalid(String),
}

impl Value {
    /// The value as a JSON value (integers past 64 bits as floats; complex and invalid as text).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Logical(b) => J::Bool(*b),
            Value::Int(i) => {
                if let Ok(v) = i64::try_from(*i) {
                    J::from(v)
                } else if let Ok(v) = u64::try_from(*i) {
                    J::from(v)
                } else {
                    J::from(*i as f64)
                }
            }
            Value::Float(f) => serde_json::Number::from_f64(*f).map(J::Number).unwrap_or(J::Null),
            Value::Str(s) | Value::Complex(s) | Value::Text(s) | Value::Invalid(s) => J::String(s.clone()),
            Value::Undefined => J::Null,
        }
    }

    /// The value as FITS writes it, for `info` lines.
    pub fn display(&self) -> String {
        match self {
            Value::Logical(b) => if *b { "T" } else { "F" }.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => format!("{f:?}"),
            Value::Str(s) => format!("'{s}'"),
            Value::Complex(s) | Value::Text(s) | Value::Invalid(s) => s.clone(),
            Value::Undefined => String::new(),
        }
    }

    fn as_num(&self) -> Option<Num> {
        match *self {
            Value::Int(i) => Some(Num::Int(i)),
            Value::Float(f) => Some(Num::Float(f)),
            _ => None,
        }
    }
}

/// A number from a header, exact as written where it is an integer.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Num {
    Int(i128),
    Float(f64),
}

impl Num {
    fn f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }
    /// Python's `==` between this number and the integer `i` (exact for floats too).
    fn eq_int(self, i: i128) -> bool {
        match self {
            Num::Int(v) => v == i,
            Num::Float(f) => f.fract() == 0.0 && f.abs() < 1.7e38 && f as i128 == i,
        }
    }
}

/// One header card (a long string's CONTINUE cards merged into it).
#[derive(Debug, Clone, PartialEq)]
pub struct Card {
    /// The keyword (`NAXIS1`; a HIERARCH card's keyword without the `HIERARCH` prefix, as astropy).
    pub key: String,
    pub value: Value,
    pub comment: String,
}

/// Parses a value field (the bytes after `= `): the value and the comment after `/`.
fn parse_value(field: &[u8]) -> (Value, String) {
    let s = String::from_utf8_lossy(field);
    let s = s.as_ref();
    let t = s.trim_start();
    let comment_of = |rest: &str| -> String {
        let r = rest.trim_start();
        r.strip_prefix('/').map(|c| c.trim().to_string()).unwrap_or_default()
    };
    if let Some(body) = t.strip_prefix('\'') {
        // A string: '' is a quote; ends at the first lone quote.
        let mut out = String::new();
        let mut chars = body.char_indices().peekable();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            if c == '\'' {
                if chars.peek().map(|&(_, n)| n) == Some('\'') {
                    out.push('\'');
                    chars.next();
                } else {
                    end = Some(i + 1);
                    break;
                }
            } else {
                out.push(c);
            }
        }
        let rest = end.map(|e| &body[e..]).unwrap_or("");
        let trimmed = out.trim_end().to_string();
        return (Value::Str(trimmed), comment_of(rest));
    }
    if t.starts_with('(') {
        let close = t.find(')').map(|i| i + 1).unwrap_or(t.len());
        return (Value::Complex(t[..close].trim().to_string()), comment_of(&t[close..]));
    }
    let (tok, rest) = match t.find('/') {
        Some(i) => (&t[..i], &t[i..]),
        None => (t, ""),
    };
    let tok = tok.trim();
    let comment = comment_of(rest);
    let v = match tok {
        "" => Value::Undefined,
        "T" => Value::Logical(true),
        "F" => Value::Logical(false),
        _ => parse_number(tok).unwrap_or_else(|| Value::Invalid(tok.to_string())),
    };
    (v, comment)
}

/// A FITS integer or real (`1.5E3`, `1.5D3`, `-.5`, `+7`); `None` for anything else.
fn parse_number(tok: &str) -> Option<Value> {
    let b = tok.as_bytes();
    let digits = b.strip_prefix(b"+").or_else(|| b.strip_prefix(b"-")).unwrap_or(b);
    if !digits.is_empty() && digits.iter().all(u8::is_ascii_digit) {
        if let Ok(i) = tok.parse::<i128>() {
            return Some(Value::Int(i));
        }
    }
    if !b.iter().all(|c| c.is_ascii_digit() || matches!(c, b'+' | b'-' | b'.' | b'E' | b'e' | b'D' | b'd')) {
        return None;
    }
    if !b.iter().any(u8::is_ascii_digit) {
        return None;
    }
    let norm: String = tok.chars().map(|c| if c == 'D' || c == 'd' { 'E' } else { c }).collect();
    norm.parse::<f64>().ok().filter(|f| f.is_finite()).map(Value::Float)
}

/// Parses one 80-byte card. `None` for END (whatever follows it on the card, as astropy accepts).
fn parse_card(c: &[u8]) -> Option<Card> {
    let key = String::from_utf8_lossy(&c[..8]).trim_end().to_string();
    if key == "END" {
        return None;
    }
    if key == "HIERARCH" {
        let rest = &c[8..];
        if let Some(eq) = rest.iter().position(|&b| b == b'=') {
            let k = String::from_utf8_lossy(&rest[..eq]).trim().to_string();
            let (value, comment) = parse_value(&rest[eq + 1..]);
            return Some(Card { key: k, value, comment });
        }
    }
    if key == "CONTINUE" {
        let (value, comment) = parse_value(&c[8..]);
        return Some(Card { key, value, comment });
    }
    let commentary = matches!(key.as_str(), "COMMENT" | "HISTORY" | "");
    if !commentary && c[8] == b'=' {
        let (value, comment) = parse_value(&c[9..]);
        return Some(Card { key, value, comment });
    }
    let text = String::from_utf8_lossy(&c[8..]).trim_end().to_string();
    Some(Card { key, value: Value::Text(text), comment: String::new() })
}

/// Appends a card, merging a CONTINUE card into a long string (`'...&'`) before it.
fn push_card(cards: &mut Vec<Card>, card: Card) {
    if card.key == "CONTINUE" {
        if let (Some(last), Value::Str(more)) = (cards.last_mut(), &card.value) {
            if let Value::Str(s) = &mut last.value {
                if let Some(head) = s.strip_suffix('&') {
                    *s = format!("{head}{more}");
                    if !card.comment.is_empty() {
                        if !last.comment.is_empty() {
                            last.comment.push(' ');
                        }
                        last.comment.push_str(&card.comment);
                    }
                    return;
                }
            }
        }
    }
    cards.push(card);
}

/// A header's cards.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Header {
    pub cards: Vec<Card>,
}

impl Header {
    /// The first card with keyword `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.cards.iter().find(|c| c.key == key).map(|c| &c.value)
    }
    fn num(&self, key: &str) -> Option<Num> {
        self.get(key).and_then(Value::as_num)
    }
    fn str(&self, key: &str) -> Option<&str> {
        match self.get(key) {
            Some(Value::Str(s)) => Some(s.as_str()),
            _ => None,
        }
    }
    fn float(&self, key: &str) -> Option<f64> {
        self.num(key).map(Num::f64)
    }
}

// ---------------------------------------------------------------------------------------------------
// HDUs

/// What kind of HDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HduKind {
    Primary,
    Image,
    /// Primary random groups (`GROUPS = T`): listed, not shown.
    RandomGroups,
    /// A table or other extension (`BINTABLE`, `TABLE`, ...), by its XTENSION value; `compressed` when
    /// it is a tile-compressed image (`ZIMAGE = T`).
    Other {
        xtension: String,
        compressed: bool,
    },
}

/// One header-data unit.
#[derive(Debug, Clone, PartialEq)]
pub struct Hdu {
    pub index: usize,
    pub kind: HduKind,
    pub header: Header,
    pub bitpix: i64,
    /// NAXIS1, NAXIS2, ... (FITS order: NAXIS1 varies fastest).
    pub naxis: Vec<u64>,
    pub extname: Option<String>,
    pub extver: i64,
    /// Byte offset of the header, of the data, and the data's size without padding.
    pub header_start: u64,
    pub data_start: u64,
    pub data_len: u64,
}

impl Hdu {
    /// The type name astropy lists: PRIMARY, IMAGE, BINTABLE, ...
    pub fn type_name(&self) -> String {
        match &self.kind {
            HduKind::Primary => "PRIMARY".into(),
            HduKind::Image => "IMAGE".into(),
            HduKind::RandomGroups => "GROUPS".into(),
            HduKind::Other { xtension, compressed: true } => format!("{xtension} (compressed image)"),
            HduKind::Other { xtension, .. } => xtension.clone(),
        }
    }
    /// Whether this HDU holds an image vastview can show (primary or IMAGE with all axes non-empty).
    pub fn has_image(&self) -> bool {
        matches!(self.kind, HduKind::Primary | HduKind::Image)
            && !self.naxis.is_empty()
            && self.naxis.iter().all(|&n| n > 0)
    }
    /// The stored shape in numpy order (NAXISn reversed).
    pub fn shape(&self) -> Vec<u64> {
        self.naxis.iter().rev().copied().collect()
    }
    /// `hdu 2 'SCI'`.
    pub fn label(&self) -> String {
        match &self.extname {
            Some(n) => format!("hdu {} '{n}'", self.index),
            None => format!("hdu {}", self.index),
        }
    }
    /// One line for `info`: `IMAGE 'SCI' (200, 300) BITPIX 16`.
    pub fn summary(&self) -> String {
        let mut s = self.type_name();
        if let Some(n) = &self.extname {
            s.push_str(&format!(" '{n}'"));
            if self.extver != 1 {
                s.push_str(&format!(" ver {}", self.extver));
            }
        }
        let table = matches!(self.kind, HduKind::Other { compressed: false, .. }) && self.naxis.len() == 2;
        if self.naxis.is_empty() || self.naxis.contains(&0) {
            s.push_str(" (no data)");
        } else if table {
            s.push_str(&format!(" ({} rows of {} bytes)", self.naxis[1], self.naxis[0]));
        } else {
            s.push_str(&format!(" {}", super::fmt_shape(&self.shape())));
        }
        s.push_str(&format!(" BITPIX {}", self.bitpix));
        s
    }
    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "index": self.index,
            "type": self.type_name(),
            "extname": self.extname,
            "extver": self.extver,
            "shape": self.shape(),
            "bitpix": self.bitpix,
            "image": self.has_image(),
        })
    }
}

/// The HDUs of a file, and why the walk stopped early if it did (a damaged extension after good ones).
#[derive(Debug, Clone, Default)]
pub struct HduList {
    pub hdus: Vec<Hdu>,
    pub stopped: Option<String>,
}

impl HduList {
    /// `0 PRIMARY (no data), 1 IMAGE 'SCI' (100, 100), 2 BINTABLE`: what there is, for errors.
    pub fn listing(&self) -> String {
        let mut s = self.hdus.iter().map(|h| format!("{} {}", h.index, h.summary())).collect::<Vec<_>>().join(", ");
        if let Some(why) = &self.stopped {
            s.push_str(&format!("; then {why}"));
        }
        s
    }
}

/// Where the bytes come from: a file (positioned reads) or memory (the fuzz target, unit tests).
pub trait ReadAt {
    /// The size in bytes.
    fn size(&self) -> u64;
    /// Fills `buf` from byte `at`; `at + buf.len() <= size()`.
    fn read_at(&self, at: u64, buf: &mut [u8]) -> std::io::Result<()>;
}

impl ReadAt for [u8] {
    fn size(&self) -> u64 {
        self.len() as u64
    }
    fn read_at(&self, at: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let a = at as usize;
        let src = self.get(a..a + buf.len()).ok_or(std::io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

struct FileAt<'a> {
    file: &'a std::fs::File,
    len: u64,
}

impl ReadAt for FileAt<'_> {
    fn size(&self) -> u64 {
        self.len
    }
    fn read_at(&self, at: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.file.read_exact_at(buf, at)
    }
}

/// A problem in HDU `index`: the message, or an I/O error.
enum HduError {
    Bad(String),
    Io(std::io::Error),
}

impl From<std::io::Error> for HduError {
    fn from(e: std::io::Error) -> Self {
        HduError::Io(e)
    }
}

/// Reads the header starting at `at`: its cards and its size in bytes (whole blocks, END included).
fn read_header<R: ReadAt + ?Sized>(src: &R, at: u64, index: usize) -> std::result::Result<(Header, u64), HduError> {
    let len = src.size();
    let mut cards = Vec::new();
    let mut block = vec![0u8; BLOCK as usize];
    let mut off = at;
    for _ in 0..MAX_HEADER_BLOCKS {
        if off >= len {
            return Err(HduError::Bad(format!(
                "hdu {index}'s header has no END card (it runs from byte {at} to the end of the file at byte {len})"
            )));
        }
        if len - off < BLOCK {
            return Err(HduError::Bad(format!(
                "truncated header: hdu {index}'s header block at byte {off} needs {BLOCK} bytes but the file ends at byte {len}"
            )));
        }
        src.read_at(off, &mut block)?;
        off += BLOCK;
        for c in block.chunks_exact(CARD) {
            if c[..8] == *b"END     " {
                return Ok((Header { cards }, off - at));
            }
            if let Some(card) = parse_card(c) {
                push_card(&mut cards, card);
            }
        }
    }
    Err(HduError::Bad(format!(
        "hdu {index}'s header has no END card in its first {MAX_HEADER_BLOCKS} blocks (from byte {at})"
    )))
}

/// An integer mandatory keyword.
fn int_key(h: &Header, key: &str, index: usize) -> std::result::Result<i128, HduError> {
    match h.get(key) {
        Some(Value::Int(i)) => Ok(*i),
        Some(v) => Err(HduError::Bad(format!("hdu {index}: {key} = {} is not an integer", v.display()))),
        None => Err(HduError::Bad(format!("hdu {index}: the required keyword {key} is missing"))),
    }
}

/// Parses the HDU whose header starts at `at`.
fn read_hdu<R: ReadAt + ?Sized>(src: &R, at: u64, index: usize) -> std::result::Result<(Hdu, u64), HduError> {
    let (header, hlen) = read_header(src, at, index)?;
    let bad = |m: String| HduError::Bad(format!("hdu {index}: {m}"));
    let first = header.cards.first().map(|c| c.key.as_str()).unwrap_or("");
    let kind = if index == 0 {
        if first != "SIMPLE" {
            return Err(bad("the first card is not SIMPLE".into()));
        }
        if header.get("GROUPS") == Some(&Value::Logical(true)) && header.get("NAXIS1") == Some(&Value::Int(0)) {
            HduKind::RandomGroups
        } else {
            HduKind::Primary
        }
    } else {
        match header.get("XTENSION") {
            Some(Value::Str(x)) if first == "XTENSION" => {
                let x = x.trim().to_string();
                if x == "IMAGE" {
                    HduKind::Image
                } else {
                    let compressed = header.get("ZIMAGE") == Some(&Value::Logical(true));
                    HduKind::Other { xtension: x, compressed }
                }
            }
            _ => return Err(bad(format!("the header at byte {at} does not start with an XTENSION card"))),
        }
    };
    let bitpix = int_key(&header, "BITPIX", index)?;
    if ![8, 16, 32, 64, -32, -64].contains(&bitpix) {
        return Err(bad(format!("BITPIX = {bitpix} is not one of 8, 16, 32, 64, -32, -64")));
    }
    let n = int_key(&header, "NAXIS", index)?;
    if !(0..=999).contains(&n) {
        return Err(bad(format!("NAXIS = {n} is not in 0..999")));
    }
    let mut naxis = Vec::with_capacity(n as usize);
    for k in 1..=n {
        let key = format!("NAXIS{k}");
        let v = match header.get(&key) {
            Some(Value::Int(i)) => *i,
            Some(v) => return Err(bad(format!("{key} = {} is not an integer", v.display()))),
            None => return Err(bad(format!("{key} is missing (NAXIS = {n})"))),
        };
        let v = u64::try_from(v).map_err(|_| bad(format!("{key} = {v} is not a size (negative or too large)")))?;
        naxis.push(v);
    }
    let pcount = match header.get("PCOUNT") {
        None => 0,
        Some(_) => int_key(&header, "PCOUNT", index)?,
    };
    let gcount = match header.get("GCOUNT") {
        None => 1,
        Some(_) => int_key(&header, "GCOUNT", index)?,
    };
    let pcount = u64::try_from(pcount).map_err(|_| bad(format!("PCOUNT = {pcount} is negative or too large")))?;
    let gcount = u64::try_from(gcount).map_err(|_| bad(format!("GCOUNT = {gcount} is negative or too large")))?;
    // Data size = |BITPIX|/8 × GCOUNT × (PCOUNT + NAXIS1 × … × NAXISn), random groups without NAXIS1.
    let overflow =
        || bad(format!("the data size (NAXISn = {naxis:?}, PCOUNT {pcount}, GCOUNT {gcount}) overflows 64 bits"));
    let data_len = if naxis.is_empty() {
        0
    } else {
        let axes = if kind == HduKind::RandomGroups { &naxis[1..] } else { &naxis[..] };
        let prod = axes.iter().try_fold(1u64, |a, &d| a.checked_mul(d)).ok_or_else(overflow)?;
        prod.checked_add(pcount)
            .and_then(|p| p.checked_mul(gcount))
            .and_then(|p| p.checked_mul(bitpix.unsigned_abs() as u64 / 8))
            .ok_or_else(overflow)?
    };
    let extname = header.str("EXTNAME").map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let extver = match header.get("EXTVER") {
        Some(Value::Int(v)) => i64::try_from(*v).unwrap_or(1),
        _ => 1,
    };
    let data_start = at + hlen;
    let padded = data_len.div_ceil(BLOCK).checked_mul(BLOCK).ok_or_else(overflow)?;
    let next = data_start.checked_add(padded).ok_or_else(overflow)?;
    let hdu = Hdu {
        index,
        kind,
        header,
        bitpix: bitpix as i64,
        naxis,
        extname,
        extver,
        header_start: at,
        data_start,
        data_len,
    };
    Ok((hdu, next))
}

/// Walks every HDU. A damaged primary header is an error; a damaged extension ends the list (kept in
/// `stopped`), as do trailing bytes that are not a header.
pub fn read_hdus<R: ReadAt + ?Sized>(path: &Path, src: &R) -> Result<HduList> {
    let to_err = |e: HduError| match e {
        HduError::Bad(m) => Error::bad_input(path, m),
        HduError::Io(e) => Error::io(path, e),
    };
    let (first, mut next) = read_hdu(src, 0, 0).map_err(to_err)?;
    let mut list = HduList { hdus: vec![first], stopped: None };
    let len = src.size();
    while next < len {
        let index = list.hdus.len();
        if len - next < BLOCK {
            list.stopped = Some(format!("{} stray bytes after the last HDU (ignored)", len - next));
            break;
        }
        let mut head = [0u8; 10];
        src.read_at(next, &mut head).map_err(|e| Error::io(path, e))?;
        if head.iter().all(|&b| b == 0 || b == b' ') {
            break; // padding after the last HDU
        }
        match read_hdu(src, next, index) {
            Ok((h, n)) => {
                list.hdus.push(h);
                next = n;
            }
            Err(HduError::Bad(m)) => {
                list.stopped = Some(format!("an unreadable extension at byte {next} ({m})"));
                break;
            }
            Err(HduError::Io(e)) => return Err(Error::io(path, e)),
        }
    }
    Ok(list)
}

/// Which HDU `member` names: a number (0 = primary), `PRIMARY`, an EXTNAME, or `EXTNAME,EXTVER`
/// (names case-insensitive, as astropy). `None`: the first HDU with image data.
pub fn select(path: &Path, list: &HduList, member: Option<&str>) -> Result<usize> {
    let what = || list.listing();
    let Some(m) = member.map(str::trim) else {
        return list.hdus.iter().position(Hdu::has_image).ok_or_else(|| {
            let packed = list.hdus.iter().any(|h| matches!(h.kind, HduKind::Other { compressed: true, .. }));
            let hint = if packed { "; its images are tile-compressed: uncompress them with funpack" } else { "" };
            Error::bad_input(path, format!("no HDU holds image data (the HDUs: {}){hint}", what()))
        });
    };
    let idx = if let Ok(i) = m.parse::<usize>() {
        if i >= list.hdus.len() {
            return Err(Error::request(
                path,
                format!("there is no hdu {i}: the file has {} HDUs ({})", list.hdus.len(), what()),
            ));
        }
        i
    } else {
        let (name, ver) = match m.split_once(',') {
            Some((n, v)) => {
                let v = v.trim().parse::<i64>().map_err(|_| {
                    Error::request(
                        path,
                        format!("'{m}': the EXTVER after the comma is not an integer (the HDUs: {})", what()),
                    )
                })?;
                (n.trim(), Some(v))
            }
            None => (m, None),
        };
        let found = list.hdus.iter().position(|h| {
            let named = match &h.extname {
                Some(n) => n.eq_ignore_ascii_case(name),
                None => h.index == 0 && name.eq_ignore_ascii_case("PRIMARY"),
            };
            named && ver.is_none_or(|v| v == h.extver)
        });
        found.ok_or_else(|| Error::request(path, format!("no HDU is named '{m}' (the HDUs: {})", what())))?
    };
    let h = &list.hdus[idx];
    if !matches!(h.kind, HduKind::Primary | HduKind::Image) {
        let why = match &h.kind {
            HduKind::Other { compressed: true, .. } => {
                "a tile-compressed image, which vastview does not decode (uncompress it with funpack)".to_string()
            }
            _ => format!("a {} HDU, not an image", h.type_name()),
        };
        return Err(Error::request(path, format!("{} is {why} (the HDUs: {})", h.label(), what())));
    }
    if !h.has_image() {
        return Err(Error::request(path, format!("{} holds no image data (the HDUs: {})", h.label(), what())));
    }
    Ok(idx)
}

// ---------------------------------------------------------------------------------------------------
// Scaling

/// BZERO/BSCALE/BLANK of an image HDU as astropy applies them (`_ImageBaseHDU._dtype_for_bitpix`,
/// `_scale_data`): `None` when the stored values are the physical ones. Also a line saying what is in
/// effect.
pub fn scaling_of(path: &Path, hdu: &Hdu) -> Result<(Option<Scaling>, String)> {
    let num = |key: &str, default: i128| -> Result<Num> {
        match hdu.header.get(key) {
            None => Ok(Num::Int(default)),
            Some(v) => v.as_num().ok_or_else(|| {
                Error::bad_input(path, format!("{}: {key} = {} is not a number", hdu.label(), v.display()))
            }),
        }
    };
    let bzero = num("BZERO", 0)?;
    let bscale = num("BSCALE", 1)?;
    let stored = dtype_of(hdu.bitpix);
    let mut notes = Vec::new();
    // BLANK counts only for integer data and only when it is an integer (astropy `_verify_blank`).
    let blank = match hdu.header.get("BLANK") {
        None => None,
        Some(_) if hdu.bitpix < 0 => {
            notes.push("BLANK ignored on floating-point data".to_string());
            None
        }
        Some(Value::Int(b)) => Some(*b),
        Some(v) => {
            notes.push(format!("BLANK = {} ignored (not an integer)", v.display()));
            None
        }
    };
    let (zero, one) = (bzero.eq_int(0), bscale.eq_int(1));
    if zero && one && blank.is_none() {
        let mut s = "none (BZERO 0, BSCALE 1, no BLANK)".to_string();
        for n in notes {
            s.push_str(&format!("; {n}"));
        }
        return Ok((None, s));
    }
    let bits = hdu.bitpix;
    let unsigned = match bits {
        _ if !one || zero => None,
        8 if bzero.eq_int(-128) => Some(DType::I8),
        16 if bzero.eq_int(1 << 15) => Some(DType::U16),
        32 if bzero.eq_int(1 << 31) => Some(DType::U32),
        64 if bzero.eq_int(1 << 63) => Some(DType::U64),
        _ => None,
    };
    let physical = match unsigned {
        Some(d) => d,
        None if bits > 16 => DType::F64,
        None if bits > 0 => DType::F32,
        None => stored,
    };
    // BLANK becomes NaN only in the float case, and astropy's `if self._blank:` skips BLANK = 0.
    let blank_applied = match blank {
        Some(b) if physical.is_float() && b != 0 => i64::try_from(b).ok(),
        Some(b) => {
            notes.push(if physical.is_float() {
                "BLANK = 0 is not turned into NaN (astropy skips a zero BLANK)".to_string()
            } else {
                format!(
                    "BLANK = {b} not applied to {} data (astropy applies it only to scaled floats)",
                    physical.name()
                )
            });
            None
        }
        None => None,
    };
    let mut s = format!(
        "BZERO {}, BSCALE {}, BLANK {}: stored {} shown as {}",
        fmt_num(bzero),
        fmt_num(bscale),
        blank.map(|b| b.to_string()).unwrap_or_else(|| "none".into()),
        stored.name(),
        physical.name()
    );
    for n in notes {
        s.push_str(&format!("; {n}"));
    }
    Ok((Some(Scaling { scale: bscale.f64(), offset: bzero.f64(), blank: blank_applied, physical }), s))
}

fn fmt_num(n: Num) -> String {
    match n {
        Num::Int(i) => i.to_string(),
        Num::Float(f) => format!("{f:?}"),
    }
}

fn dtype_of(bitpix: i64) -> DType {
    match bitpix {
        8 => DType::U8,
        16 => DType::I16,
        32 => DType::I32,
        64 => DType::I64,
        -32 => DType::F32,
        _ => DType::F64,
    }
}

/// The value astropy presents for a `stored` element under `s`: the unsigned (and int8) conventions in
/// exact integer arithmetic, else numpy's float arithmetic in the physical dtype (`float32` for BITPIX
/// 8/16 and -32, `float64` for 32/64 and -64: the value converted, times BSCALE (when not 1), plus BZERO
/// (when not 0), each step rounded to that dtype), with BLANK as NaN.
pub fn physical_value(s: &Scaling, stored: &Scalar) -> Scalar {
    let int = match *stored {
        Scalar::I(i) => Some(i as i128),
        Scalar::U(u) => Some(u as i128),
        Scalar::Bool(b) => Some(i128::from(b)),
        _ => None,
    };
    match s.physical {
        DType::I8 | DType::I16 | DType::I32 | DType::I64 | DType::U8 | DType::U16 | DType::U32 | DType::U64
            if int.is_some() && s.offset.fract() == 0.0 =>
        {
            let v = int.unwrap_or(0) + s.offset as i128;
            // The stored range plus the convention's offset is always within the physical type.
            match s.physical {
                DType::U8 | DType::U16 | DType::U32 | DType::U64 => Scalar::U(v.clamp(0, u64::MAX as i128) as u64),
                _ => Scalar::I(v.clamp(i64::MIN as i128, i64::MAX as i128) as i64),
            }
        }
        DType::F32 | DType::F16 => {
            if s.blank.is_some() && int.is_some() && s.blank.map(i128::from) == int {
                return Scalar::F32(f32::NAN);
            }
            let mut v = match *stored {
                Scalar::F16(h) => h.to_f32(),
                Scalar::F32(f) => f,
                Scalar::F64(f) => f as f32,
                _ => int.unwrap_or(0) as f32,
            };
            if s.scale != 1.0 {
                v *= s.scale as f32;
            }
            if s.offset != 0.0 {
                v += s.offset as f32;
            }
            Scalar::F32(v)
        }
        _ => {
            if s.blank.is_some() && int.is_some() && s.blank.map(i128::from) == int {
                return Scalar::F64(f64::NAN);
            }
            let mut v = match *stored {
                Scalar::I(i) => i as f64,
                Scalar::U(u) => u as f64,
                other => other.to_f64(),
            };
            if s.scale != 1.0 {
                v *= s.scale;
            }
            if s.offset != 0.0 {
                v += s.offset;
            }
            Scalar::F64(v)
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Opening

/// Magic numbers of compressed files, named for the refusal.
const COMPRESSED: [(&[u8], &str); 5] = [
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"PK\x03\x04", "zip"),
];

/// Opens the image HDU `member` names (default: the first with image data) and maps its data.
pub fn open_fits(path: &Path, member: Option<&str>) -> Result<MappedArray> {
    let (file, len) = open_file(path)?;
    let mut head = [0u8; CARD];
    let got = (len as usize).min(CARD);
    file.read_exact_at(&mut head[..got], 0).map_err(|e| Error::io(path, e))?;
    let head = &head[..got];
    if let Some((_, what)) = COMPRESSED.iter().find(|(m, _)| head.starts_with(m)) {
        return Err(Error::bad_input(
            path,
            format!("is {what}-compressed; vastview reads uncompressed FITS only (decompress it first)"),
        ));
    }
    if !head.starts_with(b"SIMPLE  =") {
        return Err(Error::bad_input(path, "not a FITS file (it does not start with a SIMPLE = T card)"));
    }
    if got == CARD && !matches!(parse_value(&head[10..]).0, Value::Logical(true)) {
        return Err(Error::bad_input(path, "SIMPLE is not T: the file says it does not conform to FITS"));
    }
    let list = read_hdus(path, &FileAt { file: &file, len })?;
    let idx = select(path, &list, member)?;
    let hdu = &list.hdus[idx];
    let info = hdu_info(path, &list, idx, len, member.is_none())?;
    let end = hdu.data_start.saturating_add(hdu.data_len);
    if end > len {
        return Err(Error::bad_input(
            path,
            format!(
                "data shorter than the header says: {} needs {} bytes of data from byte {} (to byte {end}) but the file has only {len} bytes",
                hdu.label(),
                hdu.data_len,
                hdu.data_start
            ),
        ));
    }
    MappedArray::new(&file, info, hdu.data_start)
}

/// The axes of an image HDU, outermost first: names from CTYPEn (else x, y, z, then dim_i), units from
/// CUNITn, scales from CDi_i, CDELTn (× PCi_i) or PCi_i.
fn axes_of(hdu: &Hdu) -> Vec<Axis> {
    let n = hdu.naxis.len();
    (0..n)
        .map(|i| {
            let k = n - i; // the FITS axis number of stored axis i
            let h = &hdu.header;
            let name = h.str(&format!("CTYPE{k}")).map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
            let name = name.unwrap_or_else(|| match k {
                1 => "x".into(),
                2 => "y".into(),
                3 => "z".into(),
                _ => format!("dim_{i}"),
            });
            let unit = h.str(&format!("CUNIT{k}")).map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
            let cd = h.float(&format!("CD{k}_{k}"));
            let cdelt = h.float(&format!("CDELT{k}"));
            let pc = h.float(&format!("PC{k}_{k}"));
            let scale = cd.or(cdelt.map(|d| d * pc.unwrap_or(1.0))).or(pc);
            Axis { name, size: hdu.naxis[k - 1], unit, scale, coords: None }
        })
        .collect()
}

/// The `SourceInfo` of image HDU `idx` (the data size is checked by the caller).
fn hdu_info(path: &Path, list: &HduList, idx: usize, file_size: u64, by_default: bool) -> Result<SourceInfo> {
    let hdu = &list.hdus[idx];
    let shape = hdu.shape();
    let n = shape.len();
    if n < 2 {
        return Err(Error::bad_input(
            path,
            format!(
                "{} is 1-D (NAXIS1 = {}): not an image (vastview shows 2-D images and stacks of them)",
                hdu.label(),
                shape[0]
            ),
        ));
    }
    let dtype = dtype_of(hdu.bitpix);
    let slices = shape[..n - 2]
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d))
        .ok_or_else(|| Error::bad_input(path, "the number of slices overflows 64 bits"))?;
    let image = ImageShape { slices, height: shape[n - 2], width: shape[n - 1], channels: 1 };
    let flavour = hdu.label();
    let format = Format { name: "fits", version: None, flavour: Some(flavour) };
    let mut info = SourceInfo::basic(path.to_path_buf(), format, shape, dtype, image);
    info.axes = axes_of(hdu);
    info.endian = Endian::Big;
    info.order = Order::C;
    info.file_size = file_size;
    info.header_size = hdu.data_start;
    info.member = Some(format!("hdu {idx}"));
    let (scaling, scaling_line) = scaling_of(path, hdu)?;
    info.scaling = scaling;
    let mut details = Vec::new();
    let why = if by_default {
        if idx == 0 {
            " (the primary HDU: the first with image data)".to_string()
        } else {
            " (the first HDU with image data; the primary has none)".to_string()
        }
    } else {
        String::new()
    };
    details.push(("hdu shown".to_string(), format!("{}{why}", hdu.label())));
    for h in &list.hdus {
        let mark = if h.index == idx { "  <- shown" } else { "" };
        details.push((format!("hdu {}", h.index), format!("{}{mark}", h.summary())));
    }
    if let Some(s) = &list.stopped {
        details.push(("hdu list".to_string(), format!("ends early: {s}")));
    }
    details.push(("fits scaling".to_string(), scaling_line));
    info.details = details;
    let header: Vec<serde_json::Value> = hdu
        .header
        .cards
        .iter()
        .map(|c| serde_json::json!({"key": c.key, "value": c.value.to_json(), "comment": c.comment}))
        .collect();
    info.extra = serde_json::json!({
        "hdus": list.hdus.iter().map(Hdu::to_json).collect::<Vec<_>>(),
        "hdu": idx,
        "header": header,
    });
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card(s: &str) -> [u8; 80] {
        let mut c = [b' '; 80];
        c[..s.len()].copy_from_slice(s.as_bytes());
        c
    }

    fn header(cards: &[&str]) -> Vec<u8> {
        let mut v: Vec<u8> = cards.iter().flat_map(|c| card(c)).collect();
        v.extend_from_slice(&card("END"));
        v.resize(v.len().div_ceil(2880) * 2880, b' ');
        v
    }

    #[test]
    fn values_parse_like_astropy() {
        let p = |s: &str| parse_value(s.as_bytes());
        assert_eq!(p("                   T / yes"), (Value::Logical(true), "yes".into()));
        assert_eq!(p("                  16"), (Value::Int(16), String::new()));
        assert_eq!(p(" 9223372036854775808"), (Value::Int(9223372036854775808), String::new()));
        assert_eq!(p("  1.5D3 / d"), (Value::Float(1500.0), "d".into()));
        assert_eq!(p(" -.5E-1"), (Value::Float(-0.05), String::new()));
        assert_eq!(p(" 'it''s  '  / c"), (Value::Str("it's".into()), "c".into()));
        assert_eq!(p(" '  lead'"), (Value::Str("  lead".into()), String::new()));
        assert_eq!(p(" (1.0, 2.0) / z").0, Value::Complex("(1.0, 2.0)".into()));
        assert_eq!(p("   / nothing"), (Value::Undefined, "nothing".into()));
        assert_eq!(p(" nan"), (Value::Invalid("nan".into()), String::new()));
    }

    #[test]
    fn cards_continue_and_hierarch() {
        let mut cards = Vec::new();
        for c in [
            "LONG    = 'abc&'  / one",
            "CONTINUE  'def&'",
            "CONTINUE  'ghi' / two",
            "HIERARCH ESO DET CHIP = 3 / chip",
            "COMMENT   hello there",
        ] {
            push_card(&mut cards, parse_card(&card(c)).unwrap());
        }
        assert_eq!(
            cards[0],
            Card { key: "LONG".into(), value: Value::Str("abcdefghi".into()), comment: "one two".into() }
        );
        assert_eq!(cards[1], Card { key: "ESO DET CHIP".into(), value: Value::Int(3), comment: "chip".into() });
        assert_eq!(cards[2].value, Value::Text("  hello there".into()));
        assert!(parse_card(&card("END")).is_none());
    }

    #[test]
    fn hdus_walk_and_select() {
        let mut f = header(&[
            "SIMPLE  =                    T",
            "BITPIX  =                    8",
            "NAXIS   =                    0",
        ]);
        f.extend(header(&[
            "XTENSION= 'IMAGE   '",
            "BITPIX  =                   16",
            "NAXIS   =                    2",
            "NAXIS1  =                    3",
            "NAXIS2  =                    2",
            "EXTNAME = 'SCI'",
        ]));
        f.extend(vec![0u8; 2880]);
        f.extend(header(&[
            "XTENSION= 'BINTABLE'",
            "BITPIX  =                    8",
            "NAXIS   =                    2",
            "NAXIS1  =                    4",
            "NAXIS2  =                    1",
            "PCOUNT  =                 2880",
            "GCOUNT  =                    1",
        ]));
        f.extend(vec![0u8; 5760]);
        let p = Path::new("t.fits");
        let list = read_hdus(p, f.as_slice()).unwrap();
        assert_eq!(list.hdus.len(), 3, "{list:?}");
        assert_eq!(list.hdus[1].shape(), vec![2, 3]);
        assert_eq!(list.hdus[1].data_len, 12);
        assert_eq!(list.hdus[2].data_len, 2884);
        assert_eq!(select(p, &list, None).unwrap(), 1);
        assert_eq!(select(p, &list, Some("sci")).unwrap(), 1);
        assert_eq!(select(p, &list, Some("SCI,1")).unwrap(), 1);
        for (m, want) in [("2", "BINTABLE"), ("0", "no image data"), ("3", "no hdu 3"), ("SCI,2", "no HDU is named")] {
            let e = select(p, &list, Some(m)).unwrap_err().to_string();
            assert!(e.contains(want) && e.contains("1 IMAGE 'SCI' (2, 3)"), "{m}: {e}");
        }
    }

    #[test]
    fn bad_headers_are_errors() {
        let p = Path::new("t.fits");
        let e = |cards: &[&str]| read_hdus(p, header(cards).as_slice()).unwrap_err().to_string();
        let s = "SIMPLE  =                    T";
        assert!(e(&[s, "BITPIX  =                    7", "NAXIS   = 0"]).contains("BITPIX = 7"));
        assert!(e(&[s, "BITPIX  =                    8", "NAXIS   = -1"]).contains("NAXIS = -1"));
        assert!(e(&[s, "BITPIX  =                    8", "NAXIS   = 2", "NAXIS1  = 3"]).contains("NAXIS2 is missing"));
        let huge = "NAXIS1  = 4294967296";
        let msg = e(&[s, "BITPIX  = 64", "NAXIS   = 3", huge, "NAXIS2  = 4294967296", "NAXIS3  = 4294967296"]);
        assert!(msg.contains("overflows"), "{msg}");
        let no_end: Vec<u8> =
            [s, "BITPIX  = 8", "NAXIS   = 0"].iter().flat_map(|c| card(c)).chain(vec![b' '; 2640]).collect();
        assert!(read_hdus(p, no_end.as_slice()).unwrap_err().to_string().contains("no END"));
        let cut = &header(&[s, "BITPIX  = 8", "NAXIS   = 0"])[..1000];
        assert!(read_hdus(p, cut).unwrap_err().to_string().contains("truncated header"));
    }

    fn sc(cards: &[&str]) -> Option<Scaling> {
        let mut all = vec!["SIMPLE  = T", "NAXIS   = 2", "NAXIS1  = 1", "NAXIS2  = 1"];
        all.extend_from_slice(cards);
        let bytes = header(&all);
        let list = read_hdus(Path::new("t"), bytes.as_slice()).unwrap();
        scaling_of(Path::new("t"), &list.hdus[0]).unwrap().0
    }

    #[test]
    fn scaling_follows_astropy_dtype_rules() {
        let phys = |c: &[&str]| sc(c).map(|s| s.physical);
        assert_eq!(phys(&["BITPIX  = 16"]), None);
        assert_eq!(phys(&["BITPIX  = 16", "BZERO   = 32768"]), Some(DType::U16));
        assert_eq!(phys(&["BITPIX  = 16", "BZERO   = 32768.0", "BSCALE  = 1.0"]), Some(DType::U16));
        assert_eq!(phys(&["BITPIX  = 8", "BZERO   = -128"]), Some(DType::I8));
        assert_eq!(phys(&["BITPIX  = 32", "BZERO   = 2147483648"]), Some(DType::U32));
        assert_eq!(phys(&["BITPIX  = 64", "BZERO   = 9223372036854775808"]), Some(DType::U64));
        assert_eq!(phys(&["BITPIX  = 16", "BZERO   = 32768", "BSCALE  = 2"]), Some(DType::F32));
        assert_eq!(phys(&["BITPIX  = 16", "BLANK   = -1"]), Some(DType::F32));
        assert_eq!(phys(&["BITPIX  = 32", "BSCALE  = 0.5"]), Some(DType::F64));
        assert_eq!(phys(&["BITPIX  = -32", "BLANK   = 5"]), None);
        assert_eq!(phys(&["BITPIX  = -32", "BSCALE  = 2.0"]), Some(DType::F32));
        assert_eq!(sc(&["BITPIX  = 16", "BLANK   = 0"]).unwrap().blank, None);
        assert_eq!(sc(&["BITPIX  = 16", "BZERO   = 32768", "BLANK   = 7"]).unwrap().blank, None);
    }

    #[test]
    fn physical_values_are_exact() {
        let u16s = Scaling { scale: 1.0, offset: 32768.0, blank: None, physical: DType::U16 };
        assert_eq!(physical_value(&u16s, &Scalar::I(-32768)), Scalar::U(0));
        assert_eq!(physical_value(&u16s, &Scalar::I(32767)), Scalar::U(65535));
        let u64s = Scaling { scale: 1.0, offset: 9223372036854775808.0, blank: None, physical: DType::U64 };
        assert_eq!(physical_value(&u64s, &Scalar::I(i64::MAX)), Scalar::U(u64::MAX));
        assert_eq!(physical_value(&u64s, &Scalar::I(-9223372036854775807)), Scalar::U(1));
        let i8s = Scaling { scale: 1.0, offset: -128.0, blank: None, physical: DType::I8 };
        assert_eq!(physical_value(&i8s, &Scalar::U(0)), Scalar::I(-128));
        assert_eq!(physical_value(&i8s, &Scalar::U(255)), Scalar::I(127));
        let f = Scaling { scale: 0.1, offset: 3.0, blank: Some(-1), physical: DType::F32 };
        assert_eq!(physical_value(&f, &Scalar::I(7)), Scalar::F32(7.0f32 * 0.1f32 + 3.0f32));
        assert!(matches!(physical_value(&f, &Scalar::I(-1)), Scalar::F32(v) if v.is_nan()));
        // astropy 8.0 on int16 data with BSCALE = 0.1, BZERO = 3.5 (tests/oracle_fits.py's scaled_i16):
        // stored -946 reads as float32 -91.1, stored 30578 as 3061.3, stored 32767 as 3280.2.
        let a = Scaling { scale: 0.1, offset: 3.5, blank: Some(-32768), physical: DType::F32 };
        assert_eq!(physical_value(&a, &Scalar::I(-946)), Scalar::F32(-91.1));
        assert_eq!(physical_value(&a, &Scalar::I(30578)), Scalar::F32(3061.3));
        assert_eq!(physical_value(&a, &Scalar::I(32767)), Scalar::F32(3280.2));
    }
}
