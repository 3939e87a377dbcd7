//! TIFF and BigTIFF structure: the header, IFD chains (loops detected, count-limited) and tag values,
//! every offset and count checked against the file's length before anything is read or allocated.

use std::collections::HashSet;

use crate::dtype::Endian;

/// The most IFDs one chain may hold (a longer chain is taken as damage, not data).
pub const MAX_IFDS: usize = 1_000_000;

/// A parse problem, as the one-line message the reader wraps with the file name.
pub type PResult<T> = std::result::Result<T, String>;

/// The bytes of a TIFF file and how its numbers are stored.
#[derive(Clone, Copy)]
pub struct Bytes<'a> {
    pub data: &'a [u8],
    pub endian: Endian,
    pub big: bool,
}

impl<'a> Bytes<'a> {
    pub fn file_len(&self) -> u64 {
        self.data.len() as u64
    }
    /// `n` bytes at `at`, or an error naming what was being read.
    pub fn slice(&self, at: u64, n: u64, what: &str) -> PResult<&'a [u8]> {
        let end = at.checked_add(n).filter(|&e| e <= self.file_len());
        match end {
            Some(end) => Ok(&self.data[at as usize..end as usize]),
            None => Err(format!(
                "{what} at byte {at} ({n} bytes) lies past the end of the file ({} bytes)",
                self.file_len()
            )),
        }
    }
    fn uint(&self, b: &[u8]) -> u64 {
        let mut v = 0u64;
        match self.endian {
            Endian::Little => {
                for (i, &x) in b.iter().enumerate() {
                    v |= u64::from(x) << (8 * i);
                }
            }
            Endian::Big => {
                for &x in b {
                    v = (v << 8) | u64::from(x);
                }
            }
        }
        v
    }
    pub fn u16_at(&self, at: u64, what: &str) -> PResult<u16> {
        Ok(self.uint(self.slice(at, 2, what)?) as u16)
    }
    pub fn u32_at(&self, at: u64, what: &str) -> PResult<u32> {
        Ok(self.uint(self.slice(at, 4, what)?) as u32)
    }
    pub fn u64_at(&self, at: u64, what: &str) -> PResult<u64> {
        Ok(self.uint(self.slice(at, 8, what)?))
    }
    /// An offset-sized number (4 bytes classic, 8 BigTIFF).
    fn off_at(&self, at: u64, what: &str) -> PResult<u64> {
        if self.big {
            self.u64_at(at, what)
        } else {
            self.u32_at(at, what).map(u64::from)
        }
    }
}

/// The file header: byte order, classic or BigTIFF, and the first IFD's offset.
pub fn parse_header(data: &[u8]) -> PResult<(Endian, bool, u64)> {
    let endian = match data.get(..2) {
        Some(b"II") => Endian::Little,
        Some(b"MM") => Endian::Big,
        _ => return Err("not a TIFF file (no II or MM byte-order mark)".into()),
    };
    let b = Bytes { data, endian, big: false };
    let version = b.u16_at(2, "the TIFF header")?;
    match version {
        42 => Ok((endian, false, u64::from(b.u32_at(4, "the TIFF header")?))),
        43 => {
            let osz = b.u16_at(4, "the BigTIFF header")?;
            let zero = b.u16_at(6, "the BigTIFF header")?;
            if osz != 8 || zero != 0 {
                return Err(format!("BigTIFF header with offset size {osz} (only 8 is defined)"));
            }
            Ok((endian, true, b.u64_at(8, "the BigTIFF header")?))
        }
        v => Err(format!("TIFF version {v} is neither classic TIFF (42) nor BigTIFF (43)")),
    }
}

/// One tag entry: its type, count and where its values lie in the file.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    pub tag: u16,
    pub typ: u16,
    pub count: u64,
    /// File offset of the first value (inline values: the entry's value field).
    pub at: u64,
}

/// Bytes per value of a TIFF field type (0 for unknown types).
pub fn type_size(typ: u16) -> u64 {
    match typ {
        1 | 2 | 6 | 7 => 1,
        3 | 8 => 2,
        4 | 9 | 11 | 13 => 4,
        5 | 10 | 12 | 16 | 17 | 18 => 8,
        _ => 0,
    }
}

/// One image file directory: its entries sorted by tag, and the next IFD's offset.
#[derive(Debug, Clone)]
pub struct Ifd {
    pub offset: u64,
    pub entries: Vec<Entry>,
    pub next: u64,
}

impl Ifd {
    pub fn get(&self, tag: u16) -> Option<&Entry> {
        self.entries.iter().find(|e| e.tag == tag)
    }
}

/// Parses the IFD at `at`.
pub fn parse_ifd(b: &Bytes, at: u64) -> PResult<Ifd> {
    let (n, first, esz) = if b.big {
        (b.u64_at(at, "an IFD's entry count")?, at + 8, 20u64)
    } else {
        (u64::from(b.u16_at(at, "an IFD's entry count")?), at + 2, 12u64)
    };
    let table = n.checked_mul(esz).ok_or_else(|| format!("IFD at byte {at} claims {n} entries"))?;
    b.slice(first, table, &format!("the IFD at byte {at} with {n} entries"))?;
    let inline = if b.big { 8 } else { 4 };
    let mut entries = Vec::with_capacity(n as usize);
    for i in 0..n {
        let e = first + i * esz;
        let tag = b.u16_at(e, "an IFD entry")?;
        let typ = b.u16_at(e + 2, "an IFD entry")?;
        let (count, vf) = if b.big {
            (b.u64_at(e + 4, "an IFD entry")?, e + 12)
        } else {
            (u64::from(b.u32_at(e + 4, "an IFD entry")?), e + 8)
        };
        let ts = type_size(typ);
        if ts == 0 {
            continue; // Unknown field types are skipped, as the specification says.
        }
        let bytes = count.checked_mul(ts).ok_or_else(|| format!("tag {tag} claims {count} values"))?;
        let at = if bytes <= inline { vf } else { b.off_at(vf, "an IFD entry")? };
        if at.checked_add(bytes).is_none_or(|end| end > b.file_len()) {
            return Err(format!(
                "tag {tag}'s {count} values at byte {at} lie past the end of the file ({} bytes)",
                b.file_len()
            ));
        }
        entries.push(Entry { tag, typ, count, at });
    }
    entries.sort_by_key(|e| e.tag);
    let next = b.off_at(first + table, "an IFD's next-IFD offset")?;
    Ok(Ifd { offset: at, entries, next })
}

/// Every IFD of the chain starting at `first`, in order; a loop or more than [`MAX_IFDS`] is an error.
/// `seen` is shared between chains (SubIFDs) so no IFD is read twice.
pub fn parse_chain(b: &Bytes, first: u64, seen: &mut HashSet<u64>) -> PResult<Vec<Ifd>> {
    let mut out = Vec::new();
    let mut at = first;
    while at != 0 {
        if !seen.insert(at) {
            return Err(format!("the IFD chain loops back to the IFD at byte {at}"));
        }
        if seen.len() > MAX_IFDS {
            return Err(format!("more than {MAX_IFDS} IFDs"));
        }
        let ifd = parse_ifd(b, at)?;
        at = ifd.next;
        out.push(ifd);
    }
    if out.is_empty() {
        return Err("the file has no image (first IFD offset is 0)".into());
    }
    Ok(out)
}

/// Typed access to the values of an entry.
impl Bytes<'_> {
    /// The entry's values as unsigned integers (BYTE/SHORT/LONG/LONG8/IFD types), at most `max` of them.
    pub fn uints(&self, e: &Entry, max: u64) -> PResult<Vec<u64>> {
        let ts = type_size(e.typ);
        if !matches!(e.typ, 1 | 3 | 4 | 7 | 13 | 16 | 18) {
            return Err(format!("tag {} has field type {}, not an unsigned integer", e.tag, e.typ));
        }
        let n = e.count.min(max);
        let raw = self.slice(e.at, n * ts, "tag values")?;
        Ok(raw.chunks_exact(ts as usize).map(|c| self.uint(c)).collect())
    }
    /// The entry's first value as an unsigned integer.
    pub fn uint1(&self, e: &Entry) -> PResult<u64> {
        self.uints(e, 1)?.first().copied().ok_or_else(|| format!("tag {} has no value", e.tag))
    }
    /// The entry's values as f64 (RATIONAL, FLOAT, DOUBLE or integers).
    pub fn floats(&self, e: &Entry, max: u64) -> PResult<Vec<f64>> {
        let n = e.count.min(max);
        let ts = type_size(e.typ);
        let raw = self.slice(e.at, n * ts, "tag values")?;
        Ok(raw
            .chunks_exact(ts as usize)
            .map(|c| match e.typ {
                5 => {
                    let (a, b) = (self.uint(&c[..4]) as f64, self.uint(&c[4..]) as f64);
                    a / b
                }
                10 => {
                    let (a, b) = (self.uint(&c[..4]) as u32 as i32, self.uint(&c[4..]) as u32 as i32);
                    f64::from(a) / f64::from(b)
                }
                11 => f64::from(f32::from_bits(self.uint(c) as u32)),
                12 => f64::from_bits(self.uint(c)),
                6 => f64::from(c[0] as i8),
                8 => f64::from(self.uint(c) as u16 as i16),
                9 => f64::from(self.uint(c) as u32 as i32),
                17 => self.uint(c) as i64 as f64,
                _ => self.uint(c) as f64,
            })
            .collect())
    }
    /// The entry's bytes (ASCII or UNDEFINED), at most `max`.
    pub fn raw(&self, e: &Entry, max: u64) -> PResult<&[u8]> {
        let n = e.count.saturating_mul(type_size(e.typ)).min(max);
        self.slice(e.at, n, "tag values")
    }
    /// An ASCII entry as text (up to the first NUL), lossily decoded.
    pub fn ascii(&self, e: &Entry, max: u64) -> PResult<String> {
        let b = self.raw(e, max)?;
        let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
        Ok(String::from_utf8_lossy(&b[..end]).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_loop() {
        assert!(parse_header(b"II*\0\x08\0\0\0").is_ok());
        assert!(parse_header(b"MM\0+\0\x08\0\0\0\0\0\0\0\0\0\x10").unwrap().1);
        assert!(parse_header(b"II*").is_err());
        assert!(parse_header(b"XX*\0").is_err());
        // An IFD with no entries whose next pointer is itself.
        let mut f = b"II*\0\x08\0\0\0".to_vec();
        f.extend_from_slice(&[0, 0, 8, 0, 0, 0]);
        let b = Bytes { data: &f, endian: Endian::Little, big: false };
        let e = parse_chain(&b, 8, &mut HashSet::new()).unwrap_err();
        assert!(e.contains("loops"), "{e}");
    }
}
