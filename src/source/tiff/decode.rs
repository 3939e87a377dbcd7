//! Decoding one TIFF strip or tile: decompression (none, LZW, Deflate, PackBits, Zstandard, JPEG), bit
//! order, byte order, the horizontal and floating-point predictors and 1-bit unpacking. Every output is
//! bounded by the size the chunk must have; data that decodes shorter is an error.

use std::io::Read;

use super::ifd::PResult;
use crate::dtype::Endian;

/// The compression schemes this reader decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Lzw,
    Deflate,
    PackBits,
    Jpeg,
    Zstd,
}

impl Compression {
    /// The scheme of TIFF compression code `code`, or a message naming the unsupported one.
    pub fn from_code(code: u64) -> PResult<Compression> {
        Ok(match code {
            1 => Compression::None,
            5 => Compression::Lzw,
            8 | 32946 => Compression::Deflate,
            32773 => Compression::PackBits,
            7 => Compression::Jpeg,
            50000 => Compression::Zstd,
            other => {
                let name = match other {
                    2 => "CCITT RLE",
                    3 => "CCITT Group 3 fax",
                    4 => "CCITT Group 4 fax",
                    6 => "old-style JPEG",
                    34712 => "JPEG 2000",
                    34887..=34889 => "LERC",
                    34925 => "LZMA",
                    34927 => "WebP (deprecated code)",
                    50001 => "WebP",
                    50002 => "JPEG XL",
                    34892 => "lossy JPEG (DNG)",
                    32809 => "ThunderScan",
                    _ => "unknown",
                };
                return Err(format!(
                    "compression {other} ({name}) is not supported (none, LZW, Deflate, PackBits, JPEG and Zstandard are)"
                ));
            }
        })
    }

    /// More than the most output one input byte can give (Deflate 1032, LZW's ~2600 with 12-bit codes,
    /// PackBits 64, Zstandard's RLE blocks ~32768): a bound on decoded size from the stored size.
    pub fn max_ratio(self) -> u64 {
        match self {
            Compression::None => 1,
            Compression::PackBits => 64,
            Compression::Deflate => 1100,
            Compression::Lzw => 3000,
            Compression::Zstd => 40_000,
            Compression::Jpeg => 1 << 20,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Lzw => "LZW",
            Compression::Deflate => "Deflate",
            Compression::PackBits => "PackBits",
            Compression::Jpeg => "JPEG",
            Compression::Zstd => "Zstandard",
        }
    }
}

/// Decompresses `data` (not JPEG) to exactly `expected` bytes; longer output is cut, shorter is an error.
pub fn decompress(c: Compression, data: &[u8], expected: usize) -> PResult<Vec<u8>> {
    let mut out = Vec::new();
    let lim = expected as u64;
    match c {
        Compression::None => out.extend_from_slice(&data[..data.len().min(expected)]),
        Compression::Deflate => {
            flate2::read::ZlibDecoder::new(data)
                .take(lim)
                .read_to_end(&mut out)
                .map_err(|e| format!("Deflate data is damaged ({e})"))?;
        }
        Compression::Zstd => {
            // libzstd's streaming decoder gives output as it decodes, so a head stops after its blocks.
            let dec = zstd::stream::read::Decoder::with_buffer(data)
                .map_err(|e| format!("Zstandard data is damaged ({e})"))?;
            dec.take(lim).read_to_end(&mut out).map_err(|e| format!("Zstandard data is damaged ({e})"))?;
        }
        Compression::Lzw => lzw(data, expected, &mut out)?,
        Compression::PackBits => packbits(data, expected, &mut out),
        Compression::Jpeg => return Err("JPEG goes through decode_jpeg".into()),
    }
    if out.len() < expected {
        return Err(format!("a {} chunk decodes to {} bytes but the image needs {expected}", c.name(), out.len()));
    }
    out.truncate(expected);
    Ok(out)
}

/// TIFF LZW (MSB-first codes, early code-size change), and the old-style LSB-first variant that
/// libtiff recognises by the first bytes (`0x00`, then an odd byte).
/// The LZW decoder for `data`: TIFF's (MSB-first, early change) or the old-style LSB-first one.
pub fn lzw_decoder(data: &[u8]) -> weezl::decode::Decoder {
    use weezl::{decode::Decoder, BitOrder};
    let old_style = data.len() >= 2 && data[0] == 0 && data[1] & 1 == 1;
    if old_style {
        Decoder::new(BitOrder::Lsb, 8)
    } else {
        Decoder::with_tiff_size_switch(BitOrder::Msb, 8)
    }
}

fn lzw(data: &[u8], expected: usize, out: &mut Vec<u8>) -> PResult<()> {
    use weezl::LzwStatus;
    let mut dec = lzw_decoder(data);
    let mut inp = data;
    let step = (expected / 4).clamp(1 << 12, 1 << 22);
    while out.len() < expected {
        let len = out.len();
        out.resize((len + step).min(expected), 0);
        let r = dec.decode_bytes(inp, &mut out[len..]);
        inp = &inp[r.consumed_in..];
        out.truncate(len + r.consumed_out);
        match r.status {
            Ok(LzwStatus::Done) => break,
            Ok(LzwStatus::NoProgress) => break,
            Ok(LzwStatus::Ok) => {
                if r.consumed_in == 0 && r.consumed_out == 0 {
                    break;
                }
            }
            // Damaged codes after all the needed bytes are harmless; before, the length check reports.
            Err(e) => {
                if out.len() < expected {
                    return Err(format!("LZW data is damaged ({e})"));
                }
                break;
            }
        }
    }
    Ok(())
}

fn packbits(data: &[u8], expected: usize, out: &mut Vec<u8>) {
    let mut i = 0;
    while i < data.len() && out.len() < expected {
        let n = data[i] as i8;
        i += 1;
        if n >= 0 {
            let k = n as usize + 1;
            let end = (i + k).min(data.len());
            out.extend_from_slice(&data[i..end]);
            i = end;
        } else if n != -128 {
            let k = (1 - i32::from(n)) as usize;
            if let Some(&b) = data.get(i) {
                out.resize(out.len() + k, b);
            }
            i += 1;
        }
    }
}

/// Reverses the bit order of every byte (FillOrder 2).
pub fn reverse_bits(data: &[u8]) -> Vec<u8> {
    data.iter().map(|b| b.reverse_bits()).collect()
}

/// Converts elements of `esz` bytes from `from` to native byte order in place.
pub fn to_native(buf: &mut [u8], esz: usize, from: Endian) {
    if from != Endian::NATIVE && esz > 1 {
        for e in buf.chunks_exact_mut(esz) {
            e.reverse();
        }
    }
}

/// Undoes the horizontal predictor (2) on native-order integers: each sample adds the same sample of
/// the pixel to its left, row by row (`row` elements a row, `spp` samples a pixel), wrapping.
pub fn undo_horizontal(buf: &mut [u8], esz: usize, row: usize, spp: usize) {
    macro_rules! acc {
        ($t:ty) => {{
            let v: &mut [$t] = bytemuck::cast_slice_mut(buf);
            for r in v.chunks_exact_mut(row) {
                for i in spp..r.len() {
                    r[i] = r[i].wrapping_add(r[i - spp]);
                }
            }
        }};
    }
    if row == 0 || spp == 0 {
        return;
    }
    match esz {
        1 => acc!(u8),
        // The buffer's alignment is not guaranteed: work on a copy of aligned words.
        2 => with_aligned::<u16>(buf, |v| acc_rows(v, row, spp)),
        4 => with_aligned::<u32>(buf, |v| acc_rows(v, row, spp)),
        8 => with_aligned::<u64>(buf, |v| acc_rows(v, row, spp)),
        _ => {}
    }
}

trait Wrap: Copy {
    fn add(self, o: Self) -> Self;
}
impl Wrap for u16 {
    fn add(self, o: Self) -> Self {
        self.wrapping_add(o)
    }
}
impl Wrap for u32 {
    fn add(self, o: Self) -> Self {
        self.wrapping_add(o)
    }
}
impl Wrap for u64 {
    fn add(self, o: Self) -> Self {
        self.wrapping_add(o)
    }
}

fn acc_rows<T: Wrap>(v: &mut [T], row: usize, spp: usize) {
    for r in v.chunks_exact_mut(row) {
        for i in spp..r.len() {
            r[i] = r[i].add(r[i - spp]);
        }
    }
}

/// Runs `f` on `buf` viewed as `T`s, through an aligned copy when `buf` is not aligned for `T`.
fn with_aligned<T: bytemuck::Pod>(buf: &mut [u8], f: impl FnOnce(&mut [T])) {
    let n = buf.len() / std::mem::size_of::<T>();
    let whole = n * std::mem::size_of::<T>();
    match bytemuck::try_cast_slice_mut::<u8, T>(&mut buf[..whole]) {
        Ok(v) => f(v),
        Err(_) => {
            let mut tmp: Vec<T> = vec![T::zeroed(); n];
            bytemuck::cast_slice_mut::<T, u8>(&mut tmp).copy_from_slice(&buf[..whole]);
            f(&mut tmp);
            buf[..whole].copy_from_slice(bytemuck::cast_slice(&tmp));
        }
    }
}

/// Undoes the floating-point predictor (3): per row of `row` samples of `esz` bytes, the bytes were
/// split into planes (most significant first) and delta-coded with a stride of `spp` bytes (libtiff's
/// `fpAcc`); the result is in native byte order.
pub fn undo_float(buf: &[u8], esz: usize, row: usize, spp: usize) -> Vec<u8> {
    let mut out = vec![0u8; buf.len()];
    let rb = row * esz;
    if rb == 0 {
        return out;
    }
    let mut tmp = vec![0u8; rb];
    for (src, dst) in buf.chunks_exact(rb).zip(out.chunks_exact_mut(rb)) {
        tmp.copy_from_slice(src);
        for i in spp.max(1)..rb {
            tmp[i] = tmp[i].wrapping_add(tmp[i - spp.max(1)]);
        }
        for i in 0..row {
            for k in 0..esz {
                // Plane k holds byte k counted from the most significant.
                let b = tmp[k * row + i];
                let pos = if cfg!(target_endian = "little") { esz - 1 - k } else { k };
                dst[i * esz + pos] = b;
            }
        }
    }
    out
}

/// Unpacks 1-bit pixels (rows padded to whole bytes, most significant bit first) to one byte each (0/1).
pub fn unpack_bits(buf: &[u8], width: usize, rows: usize) -> Vec<u8> {
    let rb = width.div_ceil(8);
    let mut out = vec![0u8; width * rows];
    for (r, dst) in out.chunks_exact_mut(width.max(1)).enumerate().take(rows) {
        let src = buf.get(r * rb..(r + 1) * rb).unwrap_or(&[]);
        for (i, d) in dst.iter_mut().enumerate() {
            *d = src.get(i / 8).map_or(0, |b| (b >> (7 - i % 8)) & 1);
        }
    }
    out
}

/// Decodes a JPEG strip or tile (with the JPEGTables stream `tables` merged in front) to 8-bit samples:
/// RGB for three components (YCbCr converted), luma for one; returns (bytes, width, height, samples).
pub fn decode_jpeg(
    data: &[u8],
    tables: Option<&[u8]>,
    max_w: usize,
    max_h: usize,
) -> PResult<(Vec<u8>, usize, usize, usize)> {
    use zune_jpeg::zune_core::bytestream::ZCursor;
    use zune_jpeg::zune_core::options::DecoderOptions;
    let merged;
    let stream: &[u8] = match tables {
        // Tables are SOI … EOI; the chunk is SOI … EOI: drop the tables' EOI and the chunk's SOI.
        Some(t) if t.len() >= 4 && data.len() >= 2 && data[..2] == [0xFF, 0xD8] => {
            let t = if t[t.len() - 2..] == [0xFF, 0xD9] { &t[..t.len() - 2] } else { t };
            merged = [t, &data[2..]].concat();
            &merged
        }
        _ => data,
    };
    let opts = DecoderOptions::default().set_max_width(max_w.max(1)).set_max_height(max_h.max(1));
    let mut dec = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(stream), opts);
    dec.decode_headers().map_err(|e| format!("JPEG data is damaged ({e:?})"))?;
    let info = dec.info().ok_or("JPEG data has no header")?;
    let comps = usize::from(info.components);
    let out_cs = if comps == 1 {
        zune_jpeg::zune_core::colorspace::ColorSpace::Luma
    } else {
        zune_jpeg::zune_core::colorspace::ColorSpace::RGB
    };
    let opts = DecoderOptions::default()
        .set_max_width(max_w.max(1))
        .set_max_height(max_h.max(1))
        .jpeg_set_out_colorspace(out_cs);
    let mut dec = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(stream), opts);
    let px = dec.decode().map_err(|e| format!("JPEG data is damaged ({e:?})"))?;
    let info = dec.info().ok_or("JPEG data has no header")?;
    let (w, h) = (usize::from(info.width), usize::from(info.height));
    let s = if comps == 1 { 1 } else { 3 };
    if px.len() < w * h * s {
        return Err("JPEG data decodes short".into());
    }
    Ok((px, w, h, s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packbits_and_predictors() {
        let mut o = Vec::new();
        packbits(&[0xFE, 0xAA, 0x02, 0x80, 0x00, 0x2A], 6, &mut o);
        assert_eq!(o, [0xAA, 0xAA, 0xAA, 0x80, 0x00, 0x2A]);
        let mut b = vec![1u8, 1, 1, 1, 2, 2, 2, 2];
        undo_horizontal(&mut b, 1, 4, 1);
        assert_eq!(b, [1, 2, 3, 4, 2, 4, 6, 8]);
        assert_eq!(unpack_bits(&[0b1010_0000], 3, 1), [1, 0, 1]);
        assert!(Compression::from_code(34712).unwrap_err().contains("JPEG 2000"));
        assert!(decompress(Compression::Deflate, b"junk", 10).is_err());
    }

    /// Splits a JPEG into a tables-only stream (SOI, DQT/DHT, EOI) and an abbreviated image stream, as
    /// TIFF writers store them (JPEGTables + strips/tiles).
    fn split_tables(full: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let (mut tables, mut image) = (vec![0xFF, 0xD8], vec![0xFF, 0xD8]);
        let mut i = 2;
        while i + 4 <= full.len() {
            let m = full[i + 1];
            let len = usize::from(u16::from_be_bytes([full[i + 2], full[i + 3]]));
            if m == 0xDA {
                image.extend_from_slice(&full[i..]);
                break;
            }
            let seg = &full[i..i + 2 + len];
            if m == 0xDB || m == 0xC4 {
                tables.extend_from_slice(seg);
            } else {
                image.extend_from_slice(seg);
            }
            i += 2 + len;
        }
        tables.extend_from_slice(&[0xFF, 0xD9]);
        (tables, image)
    }

    #[test]
    fn jpeg_tables_are_merged_into_abbreviated_streams() {
        let (w, h) = (24u16, 16u16);
        let px: Vec<u8> = (0..usize::from(w) * usize::from(h) * 3).map(|i| (i * 7 % 251) as u8).collect();
        let mut full = Vec::new();
        jpeg_encoder::Encoder::new(&mut full, 90).encode(&px, w, h, jpeg_encoder::ColorType::Rgb).unwrap();
        let (tables, image) = split_tables(&full);
        assert!(decode_jpeg(&image, None, 64, 64).is_err(), "the abbreviated stream alone has no tables");
        let a = decode_jpeg(&full, None, 64, 64).unwrap();
        let b = decode_jpeg(&image, Some(&tables), 64, 64).unwrap();
        assert_eq!((a.1, a.2, a.3), (24, 16, 3));
        assert_eq!(a, b);
        // Values are close to the encoded ones (lossy).
        let worst = a.0.iter().zip(&px).map(|(x, y)| (i32::from(*x) - i32::from(*y)).abs()).max().unwrap();
        assert!(worst < 40, "{worst}");
    }
}
