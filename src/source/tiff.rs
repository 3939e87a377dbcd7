//! The TIFF family (classic TIFF, BigTIFF, ImageJ hyperstacks, OME-TIFF, COG): our own IFD parser,
//! pages grouped into series with named axes, uncompressed contiguous pages memory-mapped in place,
//! everything else decoded chunk by chunk through [`super::chunked`], and native pyramid levels
//! (SubIFDs, reduced-resolution overview IFDs) offered by [`TiffSource::levels`].

pub mod decode;
pub mod ifd;
pub mod meta;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use self::decode::Compression;
use self::ifd::{Bytes, Ifd, PResult};
use super::chunked::{Chunk, ChunkCache, ChunkDecoder, ChunkedArray, Grid, DEFAULT_BUDGET};
use super::guard::GuardedMap;
use super::mapped::MappedArray;
use super::registry::{FormatSpec, Magic};
use super::{open_file, ArraySource, Axis, Format, ImageShape, OpenSpec, RegionBuf, SourceInfo};
use crate::dtype::{DType, Endian, Order};
use crate::error::{Error, Result};
use crate::geom::Rect;

/// TIFF and its flavours.
pub static TIFF: FormatSpec = FormatSpec {
    name: "tiff",
    title: "TIFF / BigTIFF / OME-TIFF",
    extensions: &["tif", "tiff", "ome.tif", "ome.tiff", "btf", "tf8"],
    mime: &["image/tiff"],
    magic: &[
        Magic { offset: 0, bytes: b"II*\0" },
        Magic { offset: 0, bytes: b"MM\0*" },
        Magic { offset: 0, bytes: b"II+\0" },
        Magic { offset: 0, bytes: b"MM\0+" },
    ],
    // TIFF photos belong to image viewers: vastview is offered under Open With, not made the default.
    default_app: false,
    confirm: None,
    dir: None,
    open: open_spec,
    parts: None,
};

fn open_spec(spec: &OpenSpec) -> Result<Arc<dyn ArraySource>> {
    Ok(Arc::new(open_tiff(&spec.path, spec.member.as_deref())?))
}

/// The largest decoded tile vastview accepts (a bigger one is taken as damage).
const MAX_TILE_BYTES: u64 = 1 << 28;
/// The largest decoded strip (a whole image stored as one strip may be this big).
const MAX_STRIP_BYTES: u64 = 1 << 36;
/// Largest ImageDescription read from the first page (OME-XML can be long).
const MAX_DESCRIPTION: u64 = 64 << 20;

mod tag {
    pub const NEW_SUBFILE_TYPE: u16 = 254;
    pub const WIDTH: u16 = 256;
    pub const HEIGHT: u16 = 257;
    pub const BITS: u16 = 258;
    pub const COMPRESSION: u16 = 259;
    pub const PHOTOMETRIC: u16 = 262;
    pub const FILL_ORDER: u16 = 266;
    pub const DESCRIPTION: u16 = 270;
    pub const STRIP_OFFSETS: u16 = 273;
    pub const SAMPLES: u16 = 277;
    pub const ROWS_PER_STRIP: u16 = 278;
    pub const STRIP_COUNTS: u16 = 279;
    pub const X_RES: u16 = 282;
    pub const PLANAR: u16 = 284;
    pub const PREDICTOR: u16 = 317;
    pub const TILE_W: u16 = 322;
    pub const TILE_H: u16 = 323;
    pub const TILE_OFFSETS: u16 = 324;
    pub const TILE_COUNTS: u16 = 325;
    pub const SUB_IFDS: u16 = 330;
    pub const SAMPLE_FORMAT: u16 = 339;
    pub const JPEG_TABLES: u16 = 347;
}

/// One parsed, validated page (IFD) of image data.
#[derive(Debug, Clone)]
struct Page {
    width: u64,
    height: u64,
    spp: u64,
    dtype: DType,
    bilevel: bool,
    compression: Compression,
    predictor: u64,
    planar: u64,
    fill_order: u64,
    photometric: u64,
    tiled: bool,
    chunk_w: u64,
    chunk_h: u64,
    offsets: Vec<u64>,
    counts: Vec<u64>,
    jpeg_tables: Option<(u64, u64)>,
    subifds: Vec<u64>,
    subfile: u64,
    description: Option<String>,
    x_res: Option<f64>,
}

impl Page {
    /// The index of stored chunk (`cy`, `cx`) of sample plane `plane` in the offset/count arrays.
    fn chunk_index(&self, plane: u64, cy: u64, cx: u64) -> u64 {
        plane * self.across() * self.down() + cy * self.across() + cx
    }

    /// The rows stored chunk row `cy` decodes to (a tile is always whole; the last strip may be short).
    fn chunk_rows(&self, cy: u64) -> usize {
        if self.tiled { self.chunk_h } else { self.chunk_h.min(self.height.saturating_sub(cy * self.chunk_h)) }
            .try_into()
            .unwrap_or(usize::MAX)
    }

    fn across(&self) -> u64 {
        self.width.div_ceil(self.chunk_w)
    }
    fn down(&self) -> u64 {
        self.height.div_ceil(self.chunk_h)
    }
    /// Samples in one stored chunk's pixel (all of them, or one when planes are separate).
    fn samples_in(&self) -> u64 {
        if self.planar == 2 {
            1
        } else {
            self.spp
        }
    }
    /// Whether two pages can be slices of one array.
    fn same_layout(&self, o: &Page) -> bool {
        (self.width, self.height, self.spp, self.dtype, self.bilevel, self.planar)
            == (o.width, o.height, o.spp, o.dtype, o.bilevel, o.planar)
            && (self.tiled, self.chunk_w, self.chunk_h) == (o.tiled, o.chunk_w, o.chunk_h)
    }
    fn layout_text(&self) -> String {
        if self.tiled {
            format!("tiles of {}x{}", self.chunk_w, self.chunk_h)
        } else if self.chunk_h >= self.height {
            "one strip".into()
        } else {
            format!("strips of {} rows", self.chunk_h)
        }
    }
}

fn dtype_of(sf: u64, bps: u64) -> PResult<DType> {
    Ok(match (sf, bps) {
        (1 | 4, 8) => DType::U8,
        (1 | 4, 16) => DType::U16,
        (1 | 4, 32) => DType::U32,
        (1 | 4, 64) => DType::U64,
        (2, 8) => DType::I8,
        (2, 16) => DType::I16,
        (2, 32) => DType::I32,
        (2, 64) => DType::I64,
        (3, 16) => DType::F16,
        (3, 32) => DType::F32,
        (3, 64) => DType::F64,
        (5 | 6, _) => return Err(format!("complex samples (SampleFormat {sf}) are not supported")),
        (1..=4, b) => {
            return Err(format!("{b}-bit samples (SampleFormat {sf}) are not supported (1, 8, 16, 32 and 64 bits are)"))
        }
        (s, _) => return Err(format!("SampleFormat {s} is not supported (1 uint, 2 int, 3 float are)")),
    })
}

fn parse_page(b: &Bytes, ifd: &Ifd, first: bool) -> PResult<Page> {
    let one = |t: u16, default: Option<u64>| -> PResult<u64> {
        match ifd.get(t) {
            Some(e) => b.uint1(e),
            None => default.ok_or_else(|| format!("required tag {t} is missing")),
        }
    };
    let width = one(tag::WIDTH, None)?;
    let height = one(tag::HEIGHT, None)?;
    if width == 0 || height == 0 || width > u64::from(u32::MAX) || height > u64::from(u32::MAX) {
        return Err(format!("image size {width}x{height} is empty or absurd"));
    }
    let spp = one(tag::SAMPLES, Some(1))?;
    if spp == 0 || spp > 64 {
        return Err(format!("{spp} samples per pixel is not supported (1 to 64 are)"));
    }
    let bits = match ifd.get(tag::BITS) {
        Some(e) => b.uints(e, spp)?,
        None => vec![1],
    };
    let bps = bits.first().copied().unwrap_or(1);
    if bits.iter().any(|&x| x != bps) {
        return Err(format!("samples of different bit depths ({bits:?}) are not supported"));
    }
    let sf = match ifd.get(tag::SAMPLE_FORMAT) {
        Some(e) => b.uints(e, spp)?,
        None => vec![1],
    };
    let sf0 = sf.first().copied().unwrap_or(1);
    if sf.iter().any(|&x| x != sf0) {
        return Err("samples of different sample formats are not supported".into());
    }
    let bilevel = bps == 1;
    let dtype = if bilevel {
        if sf0 != 1 || spp != 1 {
            return Err("1-bit data is supported as single-sample unsigned integers only".into());
        }
        DType::U8
    } else {
        dtype_of(sf0, bps)?
    };
    let compression = Compression::from_code(one(tag::COMPRESSION, Some(1))?)?;
    let predictor = one(tag::PREDICTOR, Some(1))?;
    match predictor {
        1 => {}
        2 if !bilevel => {}
        3 if matches!(dtype, DType::F16 | DType::F32 | DType::F64) => {}
        p => return Err(format!("predictor {p} is not supported for {}-bit {} data", bps, dtype.name())),
    }
    let planar = if spp == 1 { 1 } else { one(tag::PLANAR, Some(1))? };
    if planar != 1 && planar != 2 {
        return Err(format!("PlanarConfiguration {planar} is not defined (1 and 2 are)"));
    }
    let fill_order = one(tag::FILL_ORDER, Some(1))?;
    if compression == Compression::Jpeg && (bps != 8 || !(spp == 1 || spp == 3) || planar != 1) {
        return Err(format!("JPEG with {spp} samples of {bps} bits (planar {planar}) is not supported"));
    }
    let esz = if bilevel { 1 } else { dtype.size() as u64 };
    let sin = if planar == 2 { 1 } else { spp };
    let tiled = ifd.get(tag::TILE_W).is_some() || ifd.get(tag::TILE_OFFSETS).is_some();
    let (chunk_w, chunk_h, ot, ct) = if tiled {
        let tw = one(tag::TILE_W, None)?;
        let th = one(tag::TILE_H, None)?;
        if tw == 0 || th == 0 {
            return Err(format!("tile size {tw}x{th} is empty"));
        }
        let bytes = tw.checked_mul(th).and_then(|n| n.checked_mul(sin * esz));
        if bytes.is_none_or(|n| n > MAX_TILE_BYTES) {
            return Err(format!("tile size {tw}x{th} is absurd (more than {} MiB a tile)", MAX_TILE_BYTES >> 20));
        }
        (tw, th, tag::TILE_OFFSETS, tag::TILE_COUNTS)
    } else {
        let rps = one(tag::ROWS_PER_STRIP, Some(height))?;
        let rps = if rps == 0 { height } else { rps.min(height) };
        let bytes = rps.checked_mul(width).and_then(|n| n.checked_mul(sin * esz));
        if bytes.is_none_or(|n| n > MAX_STRIP_BYTES) {
            return Err(format!("a strip of {rps} rows of {width} pixels is absurd"));
        }
        (width, rps, tag::STRIP_OFFSETS, tag::STRIP_COUNTS)
    };
    let per_plane = width.div_ceil(chunk_w).checked_mul(height.div_ceil(chunk_h));
    let need = per_plane.and_then(|n| n.checked_mul(if planar == 2 { spp } else { 1 }));
    let need = need.ok_or("the chunk count overflows")?;
    let kind = if tiled { "tile" } else { "strip" };
    let oe = ifd.get(ot).ok_or_else(|| format!("the {kind} offsets tag ({ot}) is missing"))?;
    let ce = ifd.get(ct).ok_or_else(|| format!("the {kind} byte counts tag ({ct}) is missing"))?;
    if oe.count < need || ce.count < need {
        return Err(format!(
            "{} {kind} offsets and {} byte counts for the {need} {kind}s a {width}x{height} image needs",
            oe.count, ce.count
        ));
    }
    let offsets = b.uints(oe, need)?;
    let counts = b.uints(ce, need)?;
    for (k, (&o, &c)) in offsets.iter().zip(&counts).enumerate() {
        if c > 0 && o.checked_add(c).is_none_or(|e| e > b.file_len()) {
            return Err(format!(
                "{kind} {k} at byte {o} ({c} bytes) lies past the end of the file ({} bytes)",
                b.file_len()
            ));
        }
    }
    let jpeg_tables = ifd.get(tag::JPEG_TABLES).map(|e| (e.at, e.count.saturating_mul(ifd::type_size(e.typ))));
    let subifds = match ifd.get(tag::SUB_IFDS) {
        Some(e) => b.uints(e, 4096)?,
        None => Vec::new(),
    };
    let subfile = match ifd.get(tag::NEW_SUBFILE_TYPE) {
        Some(e) => b.uint1(e)?,
        None => 0,
    };
    let description = match ifd.get(tag::DESCRIPTION) {
        Some(e) if e.typ == 2 => Some(b.ascii(e, if first { MAX_DESCRIPTION } else { 4096 })?),
        _ => None,
    };
    let x_res = ifd.get(tag::X_RES).and_then(|e| b.floats(e, 1).ok()).and_then(|v| v.first().copied());
    let photometric = one(tag::PHOTOMETRIC, Some(1))?;
    if photometric == 6 && compression != Compression::Jpeg {
        return Err("YCbCr data without JPEG compression (subsampled samples) is not supported".into());
    }
    Ok(Page {
        width,
        height,
        spp,
        dtype,
        bilevel,
        compression,
        predictor,
        planar,
        fill_order,
        photometric,
        tiled,
        chunk_w,
        chunk_h,
        offsets,
        counts,
        jpeg_tables,
        subifds,
        subfile,
        description,
        x_res,
    })
}

/// The open file every source of one TIFF shares.
struct Ctx {
    path: PathBuf,
    file: std::fs::File,
    len: u64,
    endian: Endian,
    big: bool,
    map: GuardedMap,
}

impl Ctx {
    fn bytes(&self) -> Bytes<'_> {
        Bytes { data: self.map.bytes(), endian: self.endian, big: self.big }
    }
    fn bad(&self, m: impl Into<String>) -> Error {
        Error::bad_input(&self.path, m)
    }
}

/// Decodes the strips/tiles of the pages of one series.
struct TiffChunks {
    ctx: Arc<Ctx>,
    pages: Vec<Arc<Page>>,
    /// Size of the sample axis `c` (1 when samples are interleaved colour or there is one).
    sax: u64,
    colour: bool,
    /// Rows per chunk when one-strip pages are streamed in row chunks (else chunks are the strips/tiles).
    vrows: Option<u64>,
    streams: std::sync::Mutex<std::collections::HashMap<u64, Vec<Stream>>>,
    tick: std::sync::atomic::AtomicU64,
}

impl TiffChunks {
    /// Decodes stored chunk (`cy`, `cx`) of sample plane `plane` of page `p`.
    /// With `head` = Some(n): only its first n rows (the stream stopped there).
    fn stored(&self, p: &Page, plane: u64, cy: u64, cx: u64, head: Option<usize>) -> Result<Chunk> {
        let ctx = &self.ctx;
        let idx = p.chunk_index(plane, cy, cx);
        let (off, cnt) = match (p.offsets.get(idx as usize), p.counts.get(idx as usize)) {
            (Some(&o), Some(&c)) => (o, c),
            _ => return Err(ctx.bad(format!("chunk {idx} does not exist"))),
        };
        let full = p.chunk_rows(cy);
        let rows = head.map_or(full, |h| h.min(full));
        let rowpx = p.chunk_w as usize;
        let sin = p.samples_in() as usize;
        let esz = p.dtype.size();
        let out_len = rows * rowpx * sin * esz;
        if cnt == 0 {
            // A chunk never written (tifffile's empty tiles): zeros, if it is a plausible size.
            if out_len as u64 > MAX_TILE_BYTES {
                return Err(ctx.bad(format!("chunk {idx} of {out_len} bytes is stored empty (0 bytes)")));
            }
            return Ok(Chunk { bytes: vec![0; out_len], row_pixels: rowpx, rows, samples: sin });
        }
        let kind = if p.tiled { "tile" } else { "strip" };
        let what = |m: String| ctx.bad(format!("{kind} {idx}: {m}"));
        let raw = usize::try_from(off)
            .ok()
            .and_then(|o| ctx.map.bytes().get(o..o.checked_add(cnt as usize)?))
            .ok_or_else(|| what("lies past the end of the file".into()))?;
        let want = head_bytes(p, cnt, rows, full);
        ctx.map.will_need(off as usize, want);
        ctx.map.populate(off as usize, want);
        let bytes = if p.compression == Compression::Jpeg {
            let tables =
                p.jpeg_tables.and_then(|(a, n)| ctx.map.bytes().get(a as usize..(a as usize).checked_add(n as usize)?));
            let (px, w, h, s) = decode::decode_jpeg(raw, tables, rowpx.max(1) * 2, rows.max(1) * 2).map_err(what)?;
            if s != sin || w < rowpx || h < rows {
                return Err(what(format!("the JPEG data is {w}x{h}x{s}, the {kind} needs {rowpx}x{rows}x{sin}")));
            }
            let mut out = Vec::with_capacity(out_len);
            for r in 0..rows {
                out.extend_from_slice(&px[r * w * s..(r * w + rowpx) * s]);
            }
            out
        } else {
            let src;
            let raw = if p.fill_order == 2 {
                src = decode::reverse_bits(raw);
                &src[..]
            } else {
                raw
            };
            let row_bytes = if p.bilevel { (rowpx * sin).div_ceil(8) } else { rowpx * sin * esz };
            let expected = row_bytes * rows;
            // No stream of `cnt` bytes of this scheme can decode to more than this (its best ratio):
            // a claim beyond it is damage, refused before anything is allocated.
            if expected as u64 > cnt.saturating_mul(p.compression.max_ratio()).saturating_add(4096) {
                return Err(what(format!(
                    "{cnt} bytes of {} data cannot hold the {expected} bytes it must",
                    p.compression.name()
                )));
            }
            let dec = decode::decompress(p.compression, raw, expected).map_err(what)?;
            finish(p, dec, rowpx, rows, ctx.endian)
        };
        if ctx.map.faulted() {
            return Err(Error::FileShrank { path: ctx.path.clone() });
        }
        Ok(Chunk { bytes, row_pixels: rowpx, rows, samples: sin })
    }
}

/// How many of a stored chunk's `cnt` compressed bytes decoding its first `rows` of `full` rows reads: the
/// map reads only what it is told (random advice), so this is announced before decoding. A head takes its
/// share of the stream, whole Zstandard blocks (128 KiB of output each), and the decoders' read-ahead as
/// slack; a decoder reading further faults the rest in a page at a time.
fn head_bytes(p: &Page, cnt: u64, rows: usize, full: usize) -> usize {
    if rows >= full {
        return cnt as usize;
    }
    let row_bytes = (p.chunk_w * p.samples_in()) as usize * p.dtype.size();
    let out = match p.compression {
        Compression::Zstd => (rows * row_bytes).div_ceil(128 << 10) * (128 << 10),
        _ => rows * row_bytes,
    };
    let share = (cnt as f64 * out as f64 / (full * row_bytes).max(1) as f64 * 1.25) as usize;
    share.saturating_add(48 << 10).min(cnt as usize)
}

/// Decoded bytes (file order, predictor applied) of `rows` rows of `rowpx` pixels to native values.
fn finish(p: &Page, mut dec: Vec<u8>, rowpx: usize, rows: usize, endian: Endian) -> Vec<u8> {
    let sin = p.samples_in() as usize;
    let esz = p.dtype.size();
    if p.bilevel {
        decode::unpack_bits(&dec, rowpx * sin, rows)
    } else if p.predictor == 3 {
        decode::undo_float(&dec, esz, rowpx * sin, sin)
    } else {
        decode::to_native(&mut dec, esz, endian);
        if p.predictor == 2 {
            decode::undo_horizontal(&mut dec, esz, rowpx * sin, sin);
        }
        dec
    }
}

/// Decoded bytes per streamed chunk of a one-strip image (its rows are read this many at a time).
const STREAM_CHUNK_BYTES: u64 = 4 << 20;
/// One-strip images decoding to more than this are streamed in row chunks instead of decoded whole.
const STREAM_THRESHOLD: u64 = 8 << 20;
/// Strips whose decoder states are kept (each state tens of KiB).
const MAX_STREAMS: usize = 16;
/// Decoders kept per streamed strip (readers walking down it at once).
const STREAMS_PER_STRIP: usize = 4;

/// Where the decoder of one streamed strip stands: the next row it gives and the input it has read.
struct Stream {
    next_row: u64,
    /// When a reader last continued it (for replacing the least recently used).
    used: u64,
    in_pos: usize,
    dec: StreamDec,
}

enum StreamDec {
    Deflate(Box<flate2::Decompress>),
    Lzw(Box<weezl::decode::Decoder>),
}

impl Stream {
    fn new(c: Compression, raw: &[u8]) -> Option<Stream> {
        let dec = match c {
            Compression::Deflate => StreamDec::Deflate(Box::new(flate2::Decompress::new(true))),
            Compression::Lzw => StreamDec::Lzw(Box::new(decode::lzw_decoder(raw))),
            _ => return None,
        };
        Some(Stream { next_row: 0, used: 0, in_pos: 0, dec })
    }

    /// Fills `buf` with the next decoded bytes.
    fn pull(&mut self, raw: &[u8], buf: &mut [u8]) -> PResult<()> {
        let mut filled = 0;
        while filled < buf.len() {
            let inp = raw.get(self.in_pos..).unwrap_or(&[]);
            let (used, made, end) = match &mut self.dec {
                StreamDec::Deflate(d) => {
                    let (i0, o0) = (d.total_in(), d.total_out());
                    let st = d
                        .decompress(inp, &mut buf[filled..], flate2::FlushDecompress::None)
                        .map_err(|e| format!("Deflate data is damaged ({e})"))?;
                    ((d.total_in() - i0) as usize, (d.total_out() - o0) as usize, st == flate2::Status::StreamEnd)
                }
                StreamDec::Lzw(d) => {
                    let r = d.decode_bytes(inp, &mut buf[filled..]);
                    let end = match r.status {
                        Ok(weezl::LzwStatus::Done) => true,
                        Ok(_) => false,
                        Err(e) => return Err(format!("LZW data is damaged ({e})")),
                    };
                    (r.consumed_in, r.consumed_out, end)
                }
            };
            self.in_pos += used;
            filled += made;
            if filled < buf.len() && (end || (used == 0 && made == 0)) {
                return Err("the strip decodes shorter than the image needs".into());
            }
        }
        Ok(())
    }
}

impl TiffChunks {
    /// Rows `cy * vrows ..` of the one strip of plane `plane` of page `p` (chunk group `group`), decoded
    /// by continuing that strip's stream; the chunks passed on the way go to `cache`, and a chunk behind
    /// the stream comes from `cache` or (evicted) from a restart at the top.
    fn streamed(
        &self,
        group: u64,
        p: &Page,
        plane: u64,
        cy: u64,
        vrows: u64,
        cache: &dyn ChunkCache,
    ) -> Result<Arc<Chunk>> {
        let ctx = &self.ctx;
        let what = |m: String| ctx.bad(format!("strip {plane}: {m}"));
        let (off, cnt) = match (p.offsets.get(plane as usize), p.counts.get(plane as usize)) {
            (Some(&o), Some(&c)) => (o as usize, c as usize),
            _ => return Err(what("does not exist".into())),
        };
        let raw = ctx
            .map
            .bytes()
            .get(off..off.saturating_add(cnt))
            .ok_or_else(|| what("lies past the end of the file".into()))?;
        let (rowpx, sin) = (p.chunk_w as usize, p.samples_in() as usize);
        let rb = if p.bilevel { (rowpx * sin).div_ceil(8) } else { rowpx * sin * p.dtype.size() };
        let total = p.height.saturating_mul(rb as u64);
        if total > (cnt as u64).saturating_mul(p.compression.max_ratio()).saturating_add(4096) {
            return Err(what(format!(
                "{cnt} bytes of {} data cannot hold the {total} bytes it must",
                p.compression.name()
            )));
        }
        let rows_of = |k: u64| vrows.min(p.height.saturating_sub(k * vrows)) as usize;
        let finished = |k: u64, buf: Vec<u8>| -> Arc<Chunk> {
            let rows = rows_of(k);
            Arc::new(Chunk { bytes: finish(p, buf, rowpx, rows, ctx.endian), row_pixels: rowpx, rows, samples: sin })
        };
        if p.compression == Compression::None {
            let at = (cy * vrows) as usize * rb;
            let src =
                raw.get(at..at + rows_of(cy) * rb).ok_or_else(|| what("is shorter than the image needs".into()))?;
            return Ok(finished(cy, src.to_vec()));
        }
        // Planar chunks of one group share (group, cy, 0) in the cache: only single-plane groups store.
        let store = p.planar == 1 || !self.colour;
        let key = group * 64 + plane;
        let mut streams = self.streams.lock().map_err(|_| ctx.bad("a decoder thread panicked"))?;
        // Another thread may have decoded it while this one waited.
        if store {
            if let Some(c) = cache.get(group, cy, 0) {
                return Ok(c);
            }
        }
        // Several readers may walk down the strip at once (loader threads on bands): up to
        // STREAMS_PER_STRIP decoders, each continued by the reader just below it; a reader above all of
        // them replaces the least recently used one with a fresh decoder at the top.
        if !streams.contains_key(&key) && streams.len() >= MAX_STREAMS {
            streams.clear();
        }
        let tick = { self.tick.fetch_add(1, std::sync::atomic::Ordering::Relaxed) };
        let list = streams.entry(key).or_default();
        let row0 = cy * vrows;
        let best = (0..list.len()).filter(|&i| list[i].next_row <= row0).max_by_key(|&i| list[i].next_row);
        let i = match best {
            Some(i) => i,
            None => {
                let s = Stream::new(p.compression, raw).ok_or_else(|| what("cannot be streamed".into()))?;
                if list.len() < STREAMS_PER_STRIP {
                    list.push(s);
                    list.len() - 1
                } else {
                    let lru = (0..list.len()).min_by_key(|&i| list[i].used).unwrap_or(0);
                    list[lru] = s;
                    lru
                }
            }
        };
        let st = &mut list[i];
        st.used = tick;
        let r = (|| -> PResult<Arc<Chunk>> {
            loop {
                let k = st.next_row / vrows;
                let mut buf = vec![0u8; rows_of(k) * rb];
                st.pull(raw, &mut buf)?;
                st.next_row += rows_of(k) as u64;
                let c = finished(k, buf);
                if k == cy {
                    return Ok(c);
                }
                if store {
                    cache.put(group, k, 0, c);
                }
            }
        })();
        match r {
            Ok(c) => {
                if ctx.map.faulted() {
                    return Err(Error::FileShrank { path: ctx.path.clone() });
                }
                Ok(c)
            }
            Err(m) => {
                if let Some(l) = streams.get_mut(&key) {
                    l.remove(i);
                }
                Err(what(m))
            }
        }
    }

    /// A chunk of plane `plane` of page `p` (group `group`): streamed rows or a stored strip/tile (with
    /// `head`, its first rows only).
    #[allow(clippy::too_many_arguments)]
    fn chunk(
        &self,
        group: u64,
        p: &Page,
        plane: u64,
        cy: u64,
        cx: u64,
        head: Option<usize>,
        cache: &dyn ChunkCache,
    ) -> Result<Arc<Chunk>> {
        match self.vrows {
            Some(v) => self.streamed(group, p, plane, cy, v, cache),
            None => self.stored(p, plane, cy, cx, head).map(Arc::new),
        }
    }

    /// The page and the sample planes that chunk group `group` is made of: one plane of a page, or all the
    /// planes of a planar colour page (interleaved into one chunk).
    fn planes_of(&self, group: u64) -> Result<(&Page, std::ops::Range<u64>)> {
        let p0 = self.pages.first().ok_or_else(|| self.ctx.bad("no pages"))?;
        let (page, planes) = match (p0.planar == 2, self.colour) {
            (true, false) => (group / self.sax, group % self.sax..group % self.sax + 1),
            (true, true) => (group, 0..p0.spp),
            _ => (group, 0..1),
        };
        let p = self.pages.get(page as usize).ok_or_else(|| self.ctx.bad(format!("page {page} does not exist")))?;
        Ok((p, planes))
    }

    /// Chunk (`cy`, `cx`) of `group`, or its first `head` rows: one plane's chunk, or the planes of a
    /// planar colour page interleaved.
    fn decode_rows(
        &self,
        group: u64,
        cy: u64,
        cx: u64,
        head: Option<usize>,
        cache: &dyn ChunkCache,
    ) -> Result<Arc<Chunk>> {
        let (p, planes) = self.planes_of(group)?;
        if planes.end - planes.start == 1 {
            return self.chunk(group, p, planes.start, cy, cx, head, cache);
        }
        let planes: Vec<Arc<Chunk>> =
            planes.map(|s| self.chunk(group, p, s, cy, cx, head, cache)).collect::<Result<_>>()?;
        let (rp, rows, s) = (planes[0].row_pixels, planes[0].rows, planes.len());
        if planes.iter().any(|pl| pl.rows != rows || pl.row_pixels != rp) {
            return Err(self.ctx.bad("the sample planes of a chunk decode to different sizes"));
        }
        let esz = p.dtype.size();
        let mut bytes = vec![0u8; rp * rows * s * esz];
        for (k, pl) in planes.iter().enumerate() {
            for i in 0..rp * rows {
                bytes[(i * s + k) * esz..(i * s + k + 1) * esz].copy_from_slice(&pl.bytes[i * esz..(i + 1) * esz]);
            }
        }
        Ok(Arc::new(Chunk { bytes, row_pixels: rp, rows, samples: s }))
    }
}

/// No decoded-chunk cache (a decode that stores nothing on the way).
struct NoCache;
impl ChunkCache for NoCache {
    fn get(&self, _: u64, _: u64, _: u64) -> Option<Arc<Chunk>> {
        None
    }
    fn put(&self, _: u64, _: u64, _: u64, _: Arc<Chunk>) {}
}

impl ChunkDecoder for TiffChunks {
    fn locate(&self, slice: u64) -> (u64, usize) {
        let (page, sample) = (slice / self.sax, slice % self.sax);
        let planar2 = self.pages.first().is_some_and(|p| p.planar == 2);
        if planar2 && !self.colour {
            (page * self.sax + sample, 0)
        } else if planar2 {
            (page, 0)
        } else {
            (page, sample as usize)
        }
    }

    fn decode(&self, group: u64, cy: u64, cx: u64) -> Result<Chunk> {
        self.decode_cached(group, cy, cx, &NoCache).map(Arc::unwrap_or_clone)
    }

    fn decode_cached(&self, group: u64, cy: u64, cx: u64, cache: &dyn ChunkCache) -> Result<Arc<Chunk>> {
        self.decode_rows(group, cy, cx, None, cache)
    }

    /// Stored strips/tiles compressed as a stream (all but JPEG) stop decoding after the rows asked for.
    fn cheap_heads(&self) -> bool {
        self.vrows.is_none() && self.pages.first().is_some_and(|p| p.compression != Compression::Jpeg)
    }

    fn will_need(&self, group: u64, cy: u64, cx: u64, head: Option<usize>) {
        if self.vrows.is_some() {
            return;
        }
        let Ok((p, planes)) = self.planes_of(group) else { return };
        if cy >= p.down() || cx >= p.across() {
            return;
        }
        let full = p.chunk_rows(cy);
        let rows = head.map_or(full, |h| h.min(full));
        for plane in planes {
            let idx = p.chunk_index(plane, cy, cx) as usize;
            if let (Some(&off), Some(&cnt)) = (p.offsets.get(idx), p.counts.get(idx)) {
                self.ctx.map.will_need(off as usize, head_bytes(p, cnt, rows, full));
            }
        }
    }

    fn decode_head(&self, group: u64, cy: u64, cx: u64, rows: usize) -> Result<Option<Chunk>> {
        if !self.cheap_heads() {
            return Ok(None);
        }
        self.decode_rows(group, cy, cx, Some(rows), &NoCache).map(|c| Some(Arc::unwrap_or_clone(c)))
    }
}

/// A TIFF series opened as an array, with its native pyramid levels.
pub struct TiffSource {
    inner: Arc<dyn ArraySource>,
    ctx: Arc<Ctx>,
    /// Pages of each reduced level (level 1 first), with the series' outer axes.
    levels: Vec<Vec<Arc<Page>>>,
    outer: Vec<Axis>,
    format: Format,
    member: Option<String>,
    /// The levels with vastview's level geometry, as `ArraySource::native_levels` hands them out (built once).
    native: std::sync::OnceLock<Vec<(u32, Arc<dyn ArraySource>)>>,
}

impl TiffSource {
    /// The native resolution levels, full resolution first: `levels()[k]` is level k (SubIFDs of the
    /// series' pages, or a COG's reduced-resolution overview IFDs), each a source of its own with the
    /// same outer axes.
    pub fn levels(&self) -> Result<Vec<Arc<dyn ArraySource>>> {
        let mut out = vec![self.inner.clone()];
        for (k, pages) in self.levels.iter().enumerate() {
            let member = Some(match &self.member {
                Some(m) => format!("{m} level {}", k + 1),
                None => format!("level {}", k + 1),
            });
            let meta = Meta {
                format: self.format.clone(),
                member,
                details: Vec::new(),
                extra: serde_json::Value::Null,
                yx: [(None, None), (None, None)],
                channels: Vec::new(),
            };
            out.push(build(&self.ctx, pages.clone(), self.outer.clone(), meta)?);
        }
        Ok(out)
    }

    /// How many native levels the series has (1 = full resolution only).
    pub fn level_count(&self) -> usize {
        1 + self.levels.len()
    }
}

impl ArraySource for TiffSource {
    fn info(&self) -> &SourceInfo {
        self.inner.info()
    }
    fn read_region(&self, slice: u64, rect: Rect, out: &mut RegionBuf) -> Result<()> {
        self.inner.read_region(slice, rect, out)
    }
    fn cheap_head_rows(&self) -> Option<u64> {
        self.inner.cheap_head_rows()
    }

    fn prefetch(&self, slice: u64, rect: Rect) {
        self.inner.prefetch(slice, rect)
    }
    fn stream_hint(&self, sequential: bool) {
        self.inner.stream_hint(sequential)
    }
    fn rows_in_place(&self, slice: u64, y0: u64, y1: u64) -> Option<&[u8]> {
        self.inner.rows_in_place(slice, y0, y1)
    }
    fn populate_rows(&self, slice: u64, y0: u64, y1: u64) {
        self.inner.populate_rows(slice, y0, y1)
    }
    fn check_lent(&self) -> Result<()> {
        self.inner.check_lent()
    }
    fn sample_grid(&self, slice: u64, xs: &[u64], ys: &[u64]) -> Result<Vec<f64>> {
        self.inner.sample_grid(slice, xs, ys)
    }
    /// The file's levels that are `ceil(W/2^L) × ceil(H/2^L)` of the same slices, channels and dtype (others,
    /// and levels that fail to open, are not used: the pyramid is then built as for any file).
    fn native_levels(&self) -> Vec<(u32, Arc<dyn ArraySource>)> {
        self.native
            .get_or_init(|| {
                let info = self.inner.info();
                let im = info.image;
                let levels = self.levels().unwrap_or_default();
                levels
                    .into_iter()
                    .skip(1)
                    .filter_map(|l| {
                        let li = l.info();
                        let k = super::level_number((im.width, im.height), (li.image.width, li.image.height))?;
                        (li.image.slices == im.slices && li.image.channels == im.channels && li.dtype == info.dtype)
                            .then_some((k, l))
                    })
                    .collect()
            })
            .clone()
    }
    fn chunk_shape(&self) -> Option<(u64, u64)> {
        self.inner.chunk_shape()
    }
}

/// What a series adds to the source it becomes.
struct Meta {
    format: Format,
    member: Option<String>,
    details: Vec<(String, String)>,
    extra: serde_json::Value,
    /// (scale, unit) of the y and x axes.
    yx: [(Option<f64>, Option<String>); 2],
    /// OME channel names and colours of the series' channel axis.
    channels: Vec<super::ChannelInfo>,
}

/// The byte offsets of each slice's plane when every page is uncompressed and its strips lie in one
/// contiguous run per plane (so the pages can be mapped and read in place); `None` otherwise.
fn contiguous_planes(pages: &[Arc<Page>], colour: bool, sax: u64) -> Option<Vec<u64>> {
    let mut planes = Vec::new();
    for p in pages {
        if p.compression != Compression::None || p.bilevel || p.fill_order != 1 || p.predictor != 1 || p.tiled {
            return None;
        }
        if p.planar == 1 && sax > 1 {
            return None;
        }
        if p.planar == 2 && colour {
            return None;
        }
        let row = p.width * p.samples_in() * p.dtype.size() as u64;
        let strips = p.down();
        let nplanes = if p.planar == 2 { p.spp } else { 1 };
        for s in 0..nplanes {
            let first = (s * strips) as usize;
            let base = *p.offsets.get(first)?;
            for k in 0..strips {
                let i = first + k as usize;
                let rows = p.chunk_h.min(p.height - k * p.chunk_h);
                if *p.offsets.get(i)? != base + k * p.chunk_h * row || *p.counts.get(i)? < rows * row {
                    return None;
                }
            }
            planes.push(base);
        }
    }
    Some(planes)
}

/// Makes the source of `pages` (equal layout) with `outer` axes over them.
fn build(ctx: &Arc<Ctx>, pages: Vec<Arc<Page>>, outer: Vec<Axis>, meta: Meta) -> Result<Arc<dyn ArraySource>> {
    let p0 = pages.first().ok_or_else(|| ctx.bad("the series has no pages"))?.clone();
    if let Some(i) = pages.iter().position(|p| !p.same_layout(&p0)) {
        return Err(ctx.bad(format!("page {i} of the series differs in size or type from its first page")));
    }
    // uint8 RGB(A) (or JPEG's YCbCr, decoded to RGB) is colour; other samples (CMYK, extra samples of
    // grey data, any wider type) are an axis of their own.
    let colour = p0.dtype == DType::U8 && !p0.bilevel && matches!(p0.spp, 3 | 4) && matches!(p0.photometric, 2 | 6);
    let sax = if !colour && p0.spp > 1 { p0.spp } else { 1 };
    let n = pages.len() as u64;
    let mut axes = outer;
    if checked_product(axes.iter().map(|a| a.size)) != Some(n) {
        axes = if n > 1 { vec![Axis::new("page", n)] } else { Vec::new() };
    }
    let has_c = axes.iter().any(|a| a.name == "c");
    if sax > 1 {
        axes.push(Axis::new(if has_c { "s" } else { "c" }, sax));
    }
    let mut y = Axis::new("y", p0.height);
    let mut x = Axis::new("x", p0.width);
    (y.scale, y.unit) = meta.yx[0].clone();
    (x.scale, x.unit) = meta.yx[1].clone();
    axes.push(y);
    axes.push(x);
    if colour {
        axes.push(Axis::new(if has_c { "s" } else { "c" }, p0.spp));
    }
    let shape: Vec<u64> = axes.iter().map(|a| a.size).collect();
    let slices = n.checked_mul(sax).ok_or_else(|| ctx.bad("the number of slices overflows"))?;
    let image = ImageShape { slices, height: p0.height, width: p0.width, channels: if colour { p0.spp } else { 1 } };
    let mut info = SourceInfo::basic(ctx.path.clone(), meta.format, shape, p0.dtype, image);
    info.axes = axes;
    info.endian = ctx.endian;
    info.order = Order::C;
    info.file_size = ctx.len;
    info.member = meta.member;
    info.extra = meta.extra;
    // The channel axis's colours: RGB samples stored as a channel axis (16-bit RGB) are red, green, blue;
    // OME channels have their own (when they match the axis).
    let c_size = info.axes.iter().find(|a| a.name == "c").map(|a| a.size);
    info.channels = if sax > 1 && p0.photometric == 2 {
        super::ChannelInfo::rgb(sax)
    } else if c_size == Some(meta.channels.len() as u64) {
        meta.channels
    } else {
        Vec::new()
    };
    let mut details = meta.details;
    details.push(("compression".into(), p0.compression.name().into()));
    details.push(("layout".into(), p0.layout_text()));
    if p0.spp > 1 {
        let pl = if p0.planar == 2 { "separate planes" } else { "contiguous (interleaved)" };
        details.push(("samples".into(), format!("{} per pixel, {pl}", p0.spp)));
    }
    if p0.bilevel {
        details.push(("bits".into(), "1-bit bilevel, shown as 0/1".into()));
    }
    match p0.predictor {
        2 => details.push(("predictor".into(), "horizontal".into())),
        3 => details.push(("predictor".into(), "floating point".into())),
        _ => {}
    }
    if let Some(planes) = contiguous_planes(&pages, colour, sax) {
        details.push(("read".into(), "memory-mapped in place".into()));
        info.details = details;
        let plane = p0.width * p0.height * p0.spp / sax * p0.dtype.size() as u64;
        let regular = planes.windows(2).all(|w| w[1] == w[0].wrapping_add(plane));
        let m = if regular {
            info.header_size = planes[0];
            MappedArray::new(&ctx.file, info, planes[0])?
        } else {
            MappedArray::with_planes(&ctx.file, info, &planes)?
        };
        return Ok(Arc::new(m));
    }
    details.push(("read".into(), format!("decoded chunk by chunk (cache {} MiB)", DEFAULT_BUDGET >> 20)));
    let one_strip = !p0.tiled && p0.chunk_h >= p0.height;
    let row_bytes = p0.width * p0.samples_in() * if p0.bilevel { 1 } else { p0.dtype.size() as u64 };
    let streamable = matches!(p0.compression, Compression::None | Compression::Deflate | Compression::Lzw)
        && p0.fill_order == 1
        && pages.iter().all(|p| p.compression == p0.compression && p.fill_order == 1);
    let vrows = (one_strip && streamable && row_bytes.saturating_mul(p0.height) > STREAM_THRESHOLD)
        .then(|| (STREAM_CHUNK_BYTES / row_bytes.max(1)).clamp(1, p0.height));
    if one_strip && p0.compression != Compression::None {
        let how = match vrows {
            Some(v) => format!(
                "decoded as a stream, {v} rows at a time: reading down the image is cheap, a read far below the \
                 last one read decodes every row above it first"
            ),
            None => "the first read of a page decodes all of it (then it is cached)".into(),
        };
        details.push(("note".into(), format!("the image is stored as one compressed strip: {how}")));
    }
    info.details = details;
    let chunk_h = vrows.unwrap_or(p0.chunk_h);
    let grid = Grid { width: p0.width, height: p0.height, chunk_w: p0.chunk_w, chunk_h };
    let streams = std::sync::Mutex::new(std::collections::HashMap::new());
    let tick = std::sync::atomic::AtomicU64::new(0);
    if vrows.is_none() {
        // Stored chunks are read one at a time, each announced with its exact byte range (`stored`): no
        // read-around on faults, which would pull megabytes for the few KiB of a tile's head.
        ctx.map.advise_random();
    }
    let dec = TiffChunks { ctx: ctx.clone(), pages, sax, colour, vrows, streams, tick };
    Ok(Arc::new(ChunkedArray::new(info, grid, dec, DEFAULT_BUDGET)))
}

/// The product of `v`, or `None` when it overflows.
fn checked_product(v: impl IntoIterator<Item = u64>) -> Option<u64> {
    v.into_iter().try_fold(1u64, |a, d| a.checked_mul(d))
}

/// One series: its pages, outer axes and metadata.
struct Series {
    pages: Vec<Arc<Page>>,
    outer: Vec<Axis>,
    kind: &'static str,
    yx: [(Option<f64>, Option<String>); 2],
    channels: Vec<meta::OmeChannel>,
    name: Option<String>,
}

/// Opens series `member` (default 0) of the TIFF file at `path`.
pub fn open_tiff(path: &Path, member: Option<&str>) -> Result<TiffSource> {
    let (file, len) = open_file(path)?;
    let map = GuardedMap::map(&file).map_err(|e| Error::io(path, e))?;
    let bad = |m: String| Error::bad_input(path, m);
    let (endian, big, first) = ifd::parse_header(map.bytes()).map_err(bad)?;
    let ctx = Arc::new(Ctx { path: path.to_path_buf(), file, len, endian, big, map });
    let b = ctx.bytes();
    let mut seen = HashSet::new();
    let ifds = ifd::parse_chain(&b, first, &mut seen).map_err(bad)?;
    let mut main = Vec::with_capacity(ifds.len());
    for (i, d) in ifds.iter().enumerate() {
        main.push(Arc::new(parse_page(&b, d, i == 0).map_err(|m| bad(format!("page {i}: {m}")))?));
    }
    let overviews: Vec<Arc<Page>> = main.iter().filter(|p| p.subfile & 1 == 1).cloned().collect();
    let desc = main[0].description.clone().unwrap_or_default();
    let ij = meta::imagej(&desc);
    let omes = if desc.contains("<OME") { meta::ome(&desc) } else { Vec::new() };
    let mut flavours = Vec::new();
    if big {
        flavours.push("BigTIFF");
    }
    let series = if !omes.is_empty() {
        flavours.push("OME-TIFF");
        ome_series(&main, &omes).map_err(bad)?
    } else if let Some(ij) = &ij {
        flavours.push("ImageJ");
        vec![imagej_series(&ctx, &main, ij).map_err(bad)?]
    } else {
        generic_series(&main)
    };
    if !overviews.is_empty() {
        flavours.push("COG");
    }
    if series.is_empty() {
        return Err(bad("the file holds no full-resolution image".into()));
    }
    let index = match member {
        None => 0,
        Some(m) => {
            let t = m.trim().trim_start_matches("series").trim();
            let k: usize = t.parse().map_err(|_| {
                Error::request(path, format!("'{m}' is not a series number (the file has {} series)", series.len()))
            })?;
            if k >= series.len() {
                return Err(Error::request(
                    path,
                    format!(
                        "series {k} does not exist (the file has {} series: 0 to {})",
                        series.len(),
                        series.len() - 1
                    ),
                ));
            }
            k
        }
    };
    let s = &series[index];
    // Native levels: SubIFDs of every page, or (single-page first series) the overview IFDs.
    let mut levels: Vec<Vec<Arc<Page>>> = Vec::new();
    let nsub = s.pages[0].subifds.len();
    if nsub > 0 && s.pages.iter().all(|p| p.subifds.len() == nsub) {
        let mut per_page = Vec::new();
        for p in &s.pages {
            let mut lv = Vec::new();
            for &at in &p.subifds {
                if !seen.insert(at) {
                    return Err(bad(format!("the SubIFD at byte {at} is also another IFD (a loop)")));
                }
                let d = ifd::parse_ifd(&b, at).map_err(bad)?;
                lv.push(Arc::new(parse_page(&b, &d, false).map_err(|m| bad(format!("SubIFD at byte {at}: {m}")))?));
            }
            per_page.push(lv);
        }
        for k in 0..nsub {
            levels.push(per_page.iter().map(|lv| lv[k].clone()).collect());
        }
    } else if index == 0 && s.pages.len() == 1 {
        levels = overviews.iter().map(|p| vec![p.clone()]).collect();
    }
    levels.retain(|lv| {
        lv.iter().all(|p| p.same_layout(&lv[0]) && p.spp == s.pages[0].spp && p.dtype == s.pages[0].dtype)
    });
    let mut details = Vec::new();
    if series.len() > 1 || member.is_some() {
        details.push(("series".into(), format!("{index} of {} (choose with FILE[N])", series.len())));
    }
    details.push(("pages".into(), s.pages.len().to_string()));
    if let Some(n) = &s.name {
        details.push(("name".into(), n.clone()));
    }
    for (k, c) in s.channels.iter().enumerate() {
        let text = [c.name.clone(), c.color.clone()].into_iter().flatten().collect::<Vec<_>>().join(" ");
        details.push((format!("channel {k}"), if text.is_empty() { "-".into() } else { text }));
    }
    let level_sizes: Vec<[u64; 2]> = std::iter::once([s.pages[0].height, s.pages[0].width])
        .chain(levels.iter().map(|l| [l[0].height, l[0].width]))
        .collect();
    if !levels.is_empty() {
        let src = if nsub > 0 { "SubIFDs" } else { "overview IFDs" };
        let sizes = level_sizes.iter().map(|[h, w]| format!("{w}x{h}")).collect::<Vec<_>>().join(", ");
        details.push(("levels".into(), format!("{} ({src}): {sizes}", level_sizes.len())));
    }
    let extra = serde_json::json!({
        "series": series.iter().map(|s| serde_json::json!({
            "kind": s.kind,
            "pages": s.pages.len(),
            "height": s.pages[0].height,
            "width": s.pages[0].width,
            "axes": s.outer.iter().map(|a| a.name.clone()).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "levels": level_sizes,
        "channels": s.channels.iter().map(|c| serde_json::json!({"name": c.name, "color": c.color})).collect::<Vec<_>>(),
        "byte_order": endian.name(),
    });
    let format = Format { name: "tiff", version: None, flavour: (!flavours.is_empty()).then(|| flavours.join(", ")) };
    let member_name = member.map(|_| format!("series {index}"));
    let channels = s
        .channels
        .iter()
        .map(|c| super::ChannelInfo { name: c.name.clone(), color: c.color.as_deref().and_then(hex_rgb), window: None })
        .collect();
    let meta = Meta { format: format.clone(), member: member_name.clone(), details, extra, yx: s.yx.clone(), channels };
    let inner = build(&ctx, s.pages.clone(), s.outer.clone(), meta)?;
    Ok(TiffSource {
        inner,
        ctx,
        levels,
        outer: s.outer.clone(),
        format,
        member: member_name,
        native: Default::default(),
    })
}

/// Series of a plain TIFF: tifffile's shaped series (`{"shape": [...]}`) take as many pages as their
/// shape says; other runs of equal consecutive pages are one series each, with a `page` axis.
fn generic_series(main: &[Arc<Page>]) -> Vec<Series> {
    let full: Vec<Arc<Page>> = main.iter().filter(|p| p.subfile & 5 == 0).cloned().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < full.len() {
        let p = &full[i];
        let shaped = p.description.as_deref().and_then(meta::shaped);
        let mut lead: Option<Vec<u64>> = None;
        if let Some(shape) = shaped {
            let (h, w, s) = (p.height, p.width, p.spp);
            let tails: [&[u64]; 3] = [&[h, w, s], &[s, h, w], &[h, w]];
            for t in tails {
                if (t.len() == 2 || s > 1) && shape.len() >= t.len() && shape[shape.len() - t.len()..] == *t {
                    lead = Some(shape[..shape.len() - t.len()].to_vec());
                    break;
                }
            }
        }
        let (n, outer) = match lead {
            Some(l) => {
                let n = checked_product(l.iter().copied()).unwrap_or(u64::MAX).max(1).min(usize::MAX as u64) as usize;
                let named = l.iter().enumerate().map(|(k, &d)| Axis::new(format!("dim_{k}"), d)).collect();
                (n, named)
            }
            None => {
                let mut j = i + 1;
                while j < full.len()
                    && full[j].same_layout(p)
                    && full[j].description.as_deref().and_then(meta::shaped).is_none()
                {
                    j += 1;
                }
                let outer = if j - i > 1 { vec![Axis::new("page", (j - i) as u64)] } else { Vec::new() };
                (j - i, outer)
            }
        };
        let n = n.min(full.len() - i);
        let pages: Vec<Arc<Page>> = full[i..i + n].to_vec();
        let outer = if pages.iter().all(|q| q.same_layout(p)) { outer } else { vec![Axis::new("page", n as u64)] };
        out.push(Series { pages, outer, kind: "generic", yx: res_scale(p, None), channels: Vec::new(), name: None });
        i += n;
    }
    out
}

/// x/y scale from XResolution (pixels per unit) with ImageJ's unit.
fn res_scale(p: &Page, unit: Option<&str>) -> [(Option<f64>, Option<String>); 2] {
    match (unit, p.x_res.filter(|r| r.is_finite() && *r > 0.0)) {
        (Some(u), Some(r)) => {
            let s = (Some(1.0 / r), Some(u.to_string()));
            [s.clone(), s]
        }
        _ => [(None, None), (None, None)],
    }
}

fn imagej_series(ctx: &Ctx, main: &[Arc<Page>], ij: &meta::ImageJ) -> PResult<Series> {
    let full: Vec<Arc<Page>> = main.iter().filter(|p| p.subfile & 5 == 0).cloned().collect();
    let p0 = full.first().ok_or("no image pages")?.clone();
    let images = ij.images.max(1);
    let mut pages: Vec<Arc<Page>> = full.iter().take(images as usize).cloned().collect();
    if (pages.len() as u64) < images && pages.len() == 1 {
        // ImageJ's files of more than 4 GB: one IFD, the other images follow the first contiguously.
        let plane =
            checked_product([p0.width, p0.height, p0.spp, p0.dtype.size() as u64]).ok_or("the image size overflows")?;
        let ok = p0.compression == Compression::None && !p0.tiled && p0.offsets.len() == 1 && !p0.bilevel;
        let end = p0.offsets[0].checked_add(plane.checked_mul(images).ok_or("ImageJ image count overflows")?);
        if !ok || end.is_none_or(|e| e > ctx.len) {
            return Err(format!("ImageJ says {images} images but the file holds {}", pages.len()));
        }
        for k in 1..images {
            let mut q = (*p0).clone();
            q.offsets = vec![p0.offsets[0] + k * plane];
            q.counts = vec![plane];
            pages.push(Arc::new(q));
        }
    }
    let mut outer = Vec::new();
    for (name, n, scale, unit) in [
        ("t", ij.frames, ij.finterval, Some("s".to_string())),
        ("z", ij.slices, ij.spacing, ij.unit.clone()),
        ("c", ij.channels, None, None),
    ] {
        if n > 1 {
            let mut a = Axis::new(name, n);
            if scale.is_some() {
                a.scale = scale;
                a.unit = unit;
            }
            outer.push(a);
        }
    }
    if checked_product(outer.iter().map(|a| a.size)) != Some(pages.len() as u64) {
        outer = vec![Axis::new("page", pages.len() as u64)];
    }
    Ok(Series {
        yx: res_scale(&p0, ij.unit.as_deref()),
        pages,
        outer,
        kind: "ImageJ",
        channels: Vec::new(),
        name: None,
    })
}

fn ome_series(main: &[Arc<Page>], omes: &[meta::OmeImage]) -> PResult<Vec<Series>> {
    let mut out = Vec::new();
    for (k, im) in omes.iter().enumerate() {
        let spp = im.channels.first().map_or(1, |c| c.samples);
        let order: Vec<char> = im.order.chars().filter(|c| "XYZCT".contains(*c)).collect();
        let mut outer = Vec::new();
        for &a in order.iter().rev() {
            if a == 'X' || a == 'Y' {
                continue;
            }
            let mut n = im.size_of(a);
            if a == 'C' {
                n = (n / spp).max(1);
            }
            if n > 1 {
                let mut ax = Axis::new(a.to_ascii_lowercase().to_string(), n);
                if a == 'Z' {
                    (ax.scale, ax.unit) = im.physical[2].clone();
                }
                if a == 'T' {
                    if let Some((v, u)) = &im.time_increment {
                        (ax.scale, ax.unit) = (Some(*v), u.clone());
                    }
                }
                outer.push(ax);
            }
        }
        let planes = checked_product(outer.iter().map(|a| a.size)).filter(|&n| n <= main.len() as u64);
        let planes = planes.ok_or_else(|| {
            format!(
                "OME image {k} has more planes than the file has IFDs ({}; multi-file OME datasets are not supported)",
                main.len()
            )
        })?;
        let first = im.first_ifd as usize;
        let pages = main.get(first..first.saturating_add(planes as usize)).ok_or_else(|| {
            format!(
                "OME image {k} needs IFDs {first} to {} but the file has {} (multi-file OME datasets are not supported)",
                (first as u64).saturating_add(planes - 1),
                main.len()
            )
        })?;
        let p0 = &pages[0];
        if (p0.width, p0.height) != (im.size[0], im.size[1]) {
            return Err(format!(
                "OME image {k} is {}x{} but its first IFD holds {}x{}",
                im.size[0], im.size[1], p0.width, p0.height
            ));
        }
        out.push(Series {
            pages: pages.to_vec(),
            outer,
            kind: "OME",
            yx: [im.physical[1].clone(), im.physical[0].clone()],
            channels: im.channels.clone(),
            name: im.name.clone(),
        });
    }
    Ok(out)
}

/// `#rrggbb` or `#rrggbbaa` (OME colours as meta.rs spells them) as RGB.
fn hex_rgb(s: &str) -> Option<[u8; 3]> {
    let h = s.strip_prefix('#')?;
    let v = |i: usize| h.get(i..i + 2).and_then(|x| u8::from_str_radix(x, 16).ok());
    Some([v(0)?, v(2)?, v(4)?])
}

#[cfg(test)]
mod tests {
    use super::super::registry::detect;
    use std::path::Path;

    #[test]
    fn the_registry_detects_every_tiff_magic() {
        for head in [&b"II*\0\x08\0\0\0"[..], b"MM\0*\0\0\0\x08", b"II+\0\x08\0\0\0", b"MM\0+\0\x08\0\0"] {
            assert_eq!(detect(Path::new("x.bin"), head).unwrap().name, "tiff");
        }
        assert_eq!(detect(Path::new("x.ome.tiff"), b"junk").unwrap().name, "tiff");
        assert_eq!(detect(Path::new("x.btf"), b"junk").unwrap().name, "tiff");
    }
}
