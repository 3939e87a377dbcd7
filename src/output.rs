//! Output files of `render`: the format a path's extension names (PNG, JPEG, TIFF, .npy), the checks
//! that writing it harms nothing (not an input, its directory exists, not a directory), and the image
//! writers (PNG and TIFF streamed a band of rows at a time, JPEG from a whole image of bounded size).

use std::io::Write;
use std::path::Path;

use crate::error::{quoted, Error, Result};

/// What an output path's extension names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `.png`, or no extension (a device such as `/dev/stdout`).
    Png,
    /// `.jpg` / `.jpeg`: RGB, alpha composited over black.
    Jpeg,
    /// `.tif` / `.tiff`: baseline RGBA8, uncompressed (BigTIFF above 4 GB).
    Tiff,
    /// `.npy`: data values (or a point set's aggregate grid), not colours.
    Npy,
}

/// The extensions [`Format::of`] knows, as the error for an unknown one lists them.
pub const KNOWN: &str = ".png, .jpg/.jpeg, .tif/.tiff or .npy";

/// Most pixels a JPEG output may have: JPEG is encoded from the whole image in memory (3 bytes a pixel).
pub const JPEG_MAX_PIXELS: u64 = 1 << 26;
/// JPEG quality (1..100) of `-o x.jpg`.
pub const JPEG_QUALITY: u8 = 95;

impl Format {
    /// The format `out` names by its extension (case-insensitive); no extension is PNG. An unknown
    /// extension is an error listing the known ones.
    pub fn of(out: &Path) -> Result<Format> {
        let Some(ext) = out.extension() else { return Ok(Format::Png) };
        match ext.to_string_lossy().to_ascii_lowercase().as_str() {
            "png" => Ok(Format::Png),
            "jpg" | "jpeg" => Ok(Format::Jpeg),
            "tif" | "tiff" => Ok(Format::Tiff),
            "npy" => Ok(Format::Npy),
            _ => Err(Error::request(
                out,
                format!("unknown output format '.{}': name the file {KNOWN}", ext.to_string_lossy()),
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Png => "PNG",
            Format::Jpeg => "JPEG",
            Format::Tiff => "TIFF",
            Format::Npy => ".npy",
        }
    }
}

/// The error for a failed write of `out` (a full disk, a broken pipe): names the file, exit code 2.
pub fn io_err(out: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::Output { path: out.to_path_buf(), msg: e.to_string() }
}

/// Checks that `out` can be written without harm: it is not one of `inputs` (same device and inode,
/// whatever links lead there; or, when it does not exist yet, the same canonical path), not a
/// directory, and its directory exists (it is never created). Request errors (exit code 2).
pub fn check(out: &Path, inputs: &[&Path]) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let Some(name) = out.file_name() else {
        return Err(Error::request(out, "is not a file name (give -o a file, not a directory)"));
    };
    let refuse = |input: &Path| {
        Err(Error::request(
            out,
            format!("is the input file {}: refusing to overwrite it (choose another output)", quoted(input)),
        ))
    };
    match std::fs::metadata(out) {
        Ok(m) if m.is_dir() => Err(Error::request(out, "is a directory (give -o a file name)")),
        Ok(m) => {
            for input in inputs {
                if let Ok(i) = std::fs::metadata(input) {
                    if i.dev() == m.dev() && i.ino() == m.ino() {
                        return refuse(input);
                    }
                }
            }
            Ok(())
        }
        Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory) => {
            let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            match std::fs::metadata(parent) {
                Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
                    return Err(Error::request(
                        out,
                        format!("the directory {} does not exist (a part of it is a file)", quoted(parent)),
                    ))
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(Error::request(
                        out,
                        format!("the directory {} does not exist (create it first)", quoted(parent)),
                    ))
                }
                Err(e) => return Err(Error::io(parent, e)),
                Ok(m) if !m.is_dir() => {
                    return Err(Error::request(out, format!("{} is not a directory", quoted(parent))))
                }
                Ok(_) => {}
            }
            if let Ok(dir) = std::fs::canonicalize(parent) {
                let target = dir.join(name);
                for input in inputs {
                    if std::fs::canonicalize(input).is_ok_and(|c| c == target) {
                        return refuse(input);
                    }
                }
            }
            Ok(())
        }
        Err(e) => Err(Error::io(out, e)),
    }
}

/// Checks `out` (see [`check`]) and writes it through `f`, buffered: a regular file (or a new one) is
/// written to a temporary file beside it and renamed into place only when complete; a device or FIFO
/// is written through, never replaced (see `diskcache::write_atomically`). Write errors, a full disk
/// included, name `out`.
pub fn write(out: &Path, inputs: &[&Path], f: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<()> {
    check(out, inputs)?;
    crate::diskcache::write_atomically(out, |file| {
        let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
        f(&mut w)?;
        w.flush().map_err(io_err(out))
    })
}

/// Where an image writer gets its rows: called once with a sink that takes whole RGBA8 rows, top to
/// bottom, any number at a time.
pub type RowSink<'a> = dyn FnMut(&[u8]) -> Result<()> + 'a;

/// Writes a `w`×`h` RGBA8 image to `out` in `format` (PNG, JPEG or TIFF); `produce` feeds the rows.
/// Sizes are checked before anything is allocated or written (JPEG: at most 65535 a side and
/// [`JPEG_MAX_PIXELS`]).
pub fn write_rgba(
    out: &Path,
    inputs: &[&Path],
    format: Format,
    w: u64,
    h: u64,
    produce: impl FnOnce(&mut RowSink) -> Result<()>,
) -> Result<()> {
    check(out, inputs)?;
    check_size(out, format, w, h)?;
    let werr = |m: String| Error::Output { path: out.to_path_buf(), msg: m };
    let want = w * h * 4;
    let mut got = 0u64;
    match format {
        Format::Npy => Err(Error::request(out, "an .npy output holds values, not an image")),
        Format::Png => write(out, inputs, |file| {
            let mut enc = png::Encoder::new(file, w as u32, h as u32);
            enc.set_color(png::ColorType::Rgba);
            enc.set_depth(png::BitDepth::Eight);
            enc.set_compression(png::Compression::Fast);
            let mut writer = enc.write_header().map_err(|e| werr(e.to_string()))?;
            let mut stream = writer.stream_writer().map_err(|e| werr(e.to_string()))?;
            produce(&mut |rows: &[u8]| {
                got += rows.len() as u64;
                stream.write_all(rows).map_err(io_err(out))
            })?;
            complete(out, got, want)?;
            stream.finish().map_err(|e| werr(e.to_string()))?;
            writer.finish().map_err(|e| werr(e.to_string()))
        }),
        Format::Tiff => {
            let rows_per_strip = (TIFF_STRIP_BYTES / (w * 4).max(1)).clamp(1, h.max(1));
            let header = tiff_header(w, h, rows_per_strip);
            write(out, inputs, |file| {
                file.write_all(&header).map_err(io_err(out))?;
                produce(&mut |rows: &[u8]| {
                    got += rows.len() as u64;
                    file.write_all(rows).map_err(io_err(out))
                })?;
                complete(out, got, want)
            })
        }
        Format::Jpeg => {
            let mut rgb = Vec::new();
            rgb.try_reserve_exact((w * h * 3) as usize)
                .map_err(|_| Error::request(out, format!("no memory for a {w}x{h} JPEG")))?;
            produce(&mut |rows: &[u8]| {
                got += rows.len() as u64;
                if got > want {
                    return Err(werr("more rows than the image has".into()));
                }
                rgb.extend(rows.chunks_exact(4).flat_map(over_black));
                Ok(())
            })?;
            complete(out, got, want)?;
            write(out, inputs, |file| {
                let mut enc = jpeg_encoder::Encoder::new(file, JPEG_QUALITY);
                enc.set_sampling_factor(jpeg_encoder::SamplingFactor::F_1_1);
                enc.encode(&rgb, w as u16, h as u16, jpeg_encoder::ColorType::Rgb).map_err(|e| match e {
                    jpeg_encoder::EncodingError::IoError(e) => io_err(out)(e),
                    e => werr(e.to_string()),
                })
            })
        }
    }
}

/// Checks that a `w`×`h` image fits `format` (before any work is done): JPEG at most 65535 a side and
/// [`JPEG_MAX_PIXELS`] (it is encoded from the whole image in memory), PNG below 2^31 a side.
pub fn check_size(out: &Path, format: Format, w: u64, h: u64) -> Result<()> {
    match format {
        Format::Jpeg if w > 65535 || h > 65535 || w * h > JPEG_MAX_PIXELS => Err(Error::request(
            out,
            format!(
                "{w}x{h} is too big for a JPEG output (at most 65535 a side and {} Mpixels: JPEG is encoded from \
                 the whole image in memory); use .png or .tiff, which are written in strips",
                JPEG_MAX_PIXELS >> 20
            ),
        )),
        Format::Png if w > u64::from(u32::MAX >> 1) || h > u64::from(u32::MAX >> 1) => {
            Err(Error::request(out, format!("{w}x{h} is too big for PNG")))
        }
        _ => Ok(()),
    }
}

/// An RGBA8 pixel composited over black (what a JPEG, which has no alpha, shows).
pub fn over_black(p: &[u8]) -> [u8; 3] {
    let a = u32::from(p[3]);
    let c = |v: u8| ((u32::from(v) * a + 127) / 255) as u8;
    [c(p[0]), c(p[1]), c(p[2])]
}

fn complete(out: &Path, got: u64, want: u64) -> Result<()> {
    if got != want {
        return Err(Error::Output { path: out.to_path_buf(), msg: format!("got {got} of {want} image bytes") });
    }
    Ok(())
}

/// Target bytes of one TIFF strip.
const TIFF_STRIP_BYTES: u64 = 256 << 10;

/// The bytes of a baseline TIFF (BigTIFF when the image data passes 4 GB) up to its image data: the
/// header and one IFD for a `w`×`h` RGBA8 image (straight alpha, uncompressed, chunky) stored as
/// strips of `rows_per_strip` rows, one after another right after these bytes.
pub fn tiff_header(w: u64, h: u64, rows_per_strip: u64) -> Vec<u8> {
    const SHORT: u16 = 3;
    const LONG: u16 = 4;
    const LONG8: u16 = 16;
    let data = w * h * 4;
    let big = data > u64::from(u32::MAX) - (64 << 20);
    let strips = h.div_ceil(rows_per_strip.max(1)).max(1);
    let strip_bytes: Vec<u64> =
        (0..strips).map(|s| (rows_per_strip.min(h - (s * rows_per_strip).min(h))) * w * 4).collect();
    let off_type = if big { LONG8 } else { LONG };
    // (tag, type, values); StripOffsets (273) is filled once the layout is known.
    let mut entries: Vec<(u16, u16, Vec<u64>)> = vec![
        (256, LONG, vec![w]),
        (257, LONG, vec![h]),
        (258, SHORT, vec![8; 4]),
        (259, SHORT, vec![1]), // no compression
        (262, SHORT, vec![2]), // RGB
        (273, off_type, vec![0; strips as usize]),
        (277, SHORT, vec![4]), // samples per pixel
        (278, LONG, vec![rows_per_strip.min(h.max(1))]),
        (279, off_type, strip_bytes.clone()),
        (284, SHORT, vec![1]), // chunky
        (338, SHORT, vec![2]), // extra sample: unassociated alpha
    ];
    let size = |t: u16| {
        if t == SHORT {
            2
        } else if t == LONG {
            4
        } else {
            8
        }
    };
    let (head, entry, count_bytes, inline) = if big { (16u64, 20u64, 8u64, 8u64) } else { (8, 12, 2, 4) };
    let ifd_bytes = count_bytes + entries.len() as u64 * entry + if big { 8 } else { 4 };
    let extra: u64 = entries
        .iter()
        .map(|(_, t, v)| size(*t) * v.len() as u64)
        .filter(|&n| n > inline)
        .map(|n| n.next_multiple_of(2))
        .sum();
    let data_start = head + ifd_bytes + extra;
    let mut at = data_start;
    entries[5].2 = strip_bytes
        .iter()
        .map(|&n| {
            let o = at;
            at += n;
            o
        })
        .collect();
    let mut out = Vec::with_capacity(data_start as usize);
    let mut ext = Vec::new();
    let put = |b: &mut Vec<u8>, v: u64, n: u64| b.extend_from_slice(&v.to_le_bytes()[..n as usize]);
    out.extend_from_slice(b"II");
    if big {
        put(&mut out, 43, 2);
        put(&mut out, 8, 2);
        put(&mut out, 0, 2);
        put(&mut out, head, 8);
    } else {
        put(&mut out, 42, 2);
        put(&mut out, head, 4);
    }
    put(&mut out, entries.len() as u64, count_bytes);
    let ext_start = head + ifd_bytes;
    for (tag, t, vals) in &entries {
        put(&mut out, u64::from(*tag), 2);
        put(&mut out, u64::from(*t), 2);
        put(&mut out, vals.len() as u64, inline);
        let n = size(*t) * vals.len() as u64;
        if n <= inline {
            let mut v = Vec::new();
            for &x in vals {
                put(&mut v, x, size(*t));
            }
            v.resize(inline as usize, 0);
            out.extend_from_slice(&v);
        } else {
            put(&mut out, ext_start + ext.len() as u64, inline);
            for &x in vals {
                put(&mut ext, x, size(*t));
            }
            if ext.len() % 2 == 1 {
                ext.push(0);
            }
        }
    }
    put(&mut out, 0, if big { 8 } else { 4 }); // no next IFD
    out.extend_from_slice(&ext);
    debug_assert_eq!(out.len() as u64, data_start);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_by_extension() {
        assert_eq!(Format::of(Path::new("a.PNG")).unwrap(), Format::Png);
        assert_eq!(Format::of(Path::new("/dev/full")).unwrap(), Format::Png);
        assert_eq!(Format::of(Path::new("a.jpeg")).unwrap(), Format::Jpeg);
        assert_eq!(Format::of(Path::new("a.Tif")).unwrap(), Format::Tiff);
        assert_eq!(Format::of(Path::new("a.npy")).unwrap(), Format::Npy);
        let e = Format::of(Path::new("a.bmp")).unwrap_err().to_string();
        assert!(e.contains("'.bmp'") && e.contains(KNOWN), "{e}");
    }

    #[test]
    fn tiff_header_layout() {
        // 3 strips of 2, 2 and 1 rows of a 5x5 image.
        let h = tiff_header(5, 5, 2);
        assert_eq!(&h[..4], b"II*\0");
        let n = u16::from_le_bytes([h[8], h[9]]) as usize;
        assert_eq!(n, 11);
        let entry = |tag: u16| {
            (0..n).map(|i| &h[10 + 12 * i..22 + 12 * i]).find(|e| u16::from_le_bytes([e[0], e[1]]) == tag).unwrap()
        };
        let le32 = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
        let offs = entry(273);
        assert_eq!(le32(&offs[4..8]), 3);
        let at = le32(&offs[8..12]);
        let first = le32(&h[at..at + 4]);
        assert_eq!(first, h.len(), "the first strip starts right after the header");
        assert_eq!(le32(&h[at + 4..at + 8]), h.len() + 40);
        assert_eq!(le32(&h[at + 8..at + 12]), h.len() + 80);
        // BigTIFF for > 4 GB of pixels.
        let b = tiff_header(1 << 20, 4096, 1);
        assert_eq!(&b[..4], b"II+\0");
    }

    #[test]
    fn alpha_is_composited_over_black() {
        assert_eq!(over_black(&[200, 100, 50, 255]), [200, 100, 50]);
        assert_eq!(over_black(&[200, 100, 50, 0]), [0, 0, 0]);
        assert_eq!(over_black(&[255, 255, 255, 128]), [128, 128, 128]);
    }
}
