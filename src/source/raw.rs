//! Raw binary files with no header: the user gives dtype, shape, offset, memory order and byte order.

use std::path::Path;

use super::mapped::{Layout, MappedArray};
use super::{fmt_shape, open_file, Format};
use crate::dtype::{DType, Endian, Order};
use crate::error::{Error, Result};

/// The layout of a raw file, as given on the command line.
#[derive(Debug, Clone, PartialEq)]
pub struct RawSpec {
    pub dtype: DType,
    pub endian: Endian,
    /// `[H, W]`, `[N, H, W]` or `[H, W, C]`.
    pub shape: Vec<u64>,
    pub offset: u64,
    pub order: Order,
}

/// Parses `HxW`, `NxHxW` or `HxWxC` (also with `,` or `*` between the numbers).
pub fn parse_shape(s: &str) -> Option<Vec<u64>> {
    let v: Option<Vec<u64>> = s.split(['x', 'X', ',', '*']).map(|p| p.trim().parse::<u64>().ok()).collect();
    v.filter(|v| (2..=3).contains(&v.len()))
}

/// Opens a raw file read-only; its size must match the layout exactly.
pub fn open_raw(path: &Path, spec: &RawSpec) -> Result<MappedArray> {
    let (file, len) = open_file(path)?;
    let esz = spec.dtype.size() as u64;
    let elems = spec.shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d));
    let expected = elems.and_then(|n| n.checked_mul(esz)).and_then(|n| n.checked_add(spec.offset));
    let expected = expected.ok_or_else(|| Error::bad_input(path, "the raw shape's size overflows 64 bits"))?;
    if expected != len {
        return Err(Error::bad_input(
            path,
            format!(
                "raw layout {} of {} at offset {} needs {} bytes but the file has {} bytes{}",
                fmt_shape(&spec.shape),
                spec.dtype.name(),
                spec.offset,
                expected,
                len,
                if matches!(spec.dtype, DType::I64 | DType::U64) {
                    " (numpy's codes 'i8' and 'u8' are 8-byte int64 and uint64; one byte is 'i1'/'u1' or 'int8'/'uint8')"
                } else {
                    ""
                }
            ),
        ));
    }
    let layout = Layout { shape: spec.shape.clone(), dtype: spec.dtype, endian: spec.endian, order: spec.order };
    let info = layout.into_info(path, Format::RAW, len, spec.offset)?;
    MappedArray::new(&file, info, spec.offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_shapes() {
        assert_eq!(parse_shape("300x200"), Some(vec![300, 200]));
        assert_eq!(parse_shape("4x300x200"), Some(vec![4, 300, 200]));
        assert_eq!(parse_shape("10,20,3"), Some(vec![10, 20, 3]));
        assert_eq!(parse_shape("300"), None);
        assert_eq!(parse_shape("ax3"), None);
    }
}
