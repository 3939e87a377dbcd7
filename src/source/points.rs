//! Point sets: records of N float32/float64 values (raw binary, `.npy` of shape (N, C), or text converted
//! once into a cached binary file), memory-mapped read-only and handed out in chunks for parallel passes.

use std::path::{Path, PathBuf};

use super::guard::GuardedMap;
use super::points_text::{self, TextReport};
use super::{fmt_shape, open_file};
use crate::dtype::{DType, Endian, Order};
use crate::error::{Error, Result};

/// Records per chunk of a parallel pass (12 MB of x, y, z float32).
pub const CHUNK_RECORDS: u64 = 1 << 20;

/// How to read a point file, as given on the command line.
#[derive(Debug, Clone, PartialEq)]
pub struct PointSpec {
    /// Raw records: the element type (f32 or f64). `None`: `.npy` or text, detected from the content.
    pub dtype: Option<DType>,
    pub endian: Endian,
    /// Raw records: values per record.
    pub columns: Option<u64>,
    /// Raw records: bytes to skip before the first record.
    pub offset: u64,
    pub x: u64,
    pub y: u64,
    /// Column of the value that `sum`, `mean`, `min`, `max` aggregate.
    pub value: Option<u64>,
}

impl Default for PointSpec {
    fn default() -> Self {
        PointSpec { dtype: None, endian: Endian::Little, columns: None, offset: 0, x: 0, y: 1, value: None }
    }
}

/// Where the records came from.
#[derive(Debug, Clone, PartialEq)]
pub enum PointFormat {
    Raw,
    Npy {
        major: u8,
        minor: u8,
    },
    /// Text converted into `binary` (float64 records) on first use.
    Text {
        binary: PathBuf,
        report: TextReport,
    },
}

impl PointFormat {
    pub fn name(&self) -> String {
        match self {
            PointFormat::Raw => "raw point records".into(),
            PointFormat::Npy { major, minor } => format!("npy {major}.{minor} point array"),
            PointFormat::Text { .. } => "text points (converted to float64 records)".into(),
        }
    }
}

/// A memory-mapped point set: `len` records of `columns` values, x/y (and value) columns chosen.
pub struct PointSource {
    pub path: PathBuf,
    pub format: PointFormat,
    pub dtype: DType,
    pub endian: Endian,
    pub order: Order,
    pub len: u64,
    pub columns: u64,
    pub x: u64,
    pub y: u64,
    pub value: Option<u64>,
    pub file_size: u64,
    pub data_offset: u64,
    map: GuardedMap,
    /// Things the user should know about opening and using the set (a damaged cache file rebuilt),
    /// taken by [`PointSource::take_notes`].
    notes: std::sync::Mutex<Vec<String>>,
}

impl std::fmt::Debug for PointSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PointSource")
            .field("path", &self.path)
            .field("format", &self.format)
            .field("dtype", &self.dtype)
            .field("len", &self.len)
            .field("columns", &self.columns)
            .finish()
    }
}

/// One chunk of records as typed column views: value `k` of column x is `x[k * stride]`.
pub struct Cols<'a, T> {
    pub x: &'a [T],
    pub y: &'a [T],
    pub value: Option<&'a [T]>,
    pub stride: usize,
    pub len: usize,
    /// C order: the chunk's whole records (`len × stride` values), with x, y, value at `offsets` in each.
    /// Empty for Fortran order.
    pub records: &'a [T],
    pub offsets: [usize; 3],
}

/// A chunk in the file's element type.
pub enum Chunk<'a> {
    F32(Cols<'a, f32>),
    F64(Cols<'a, f64>),
}

/// Per-thread scratch for chunks that cannot be viewed in place (misaligned or foreign byte order).
#[derive(Default)]
pub struct ChunkBuf {
    f32: Vec<f32>,
    f64: Vec<f64>,
}

/// Data bounds as kept in the cache: [xmin, ymin, xmax, ymax] of the finite points, and the counts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CachedBounds {
    pub extent: Option<[f64; 4]>,
    pub finite: u64,
    pub nonfinite: u64,
}

/// The bounds cache line: the extent's bits and the counts in hex, then the CRC-32 of what precedes it.
fn format_bounds(b: &CachedBounds) -> String {
    let e = b.extent.unwrap_or([f64::NAN; 4]).map(f64::to_bits);
    let body = format!("{:x} {:x} {:x} {:x} {:x} {:x}", e[0], e[1], e[2], e[3], b.finite, b.nonfinite);
    format!("{body} crc32 {:08x}\n", crc32fast::hash(body.as_bytes()))
}

/// Reads [`format_bounds`]' line back; `None` when it is damaged (any byte changed) or not one.
fn parse_bounds(text: &[u8]) -> Option<CachedBounds> {
    let text = std::str::from_utf8(text).ok()?.strip_suffix('\n')?;
    let (body, crc) = text.rsplit_once(" crc32 ")?;
    if crc.len() != 8 || u32::from_str_radix(crc, 16).ok()? != crc32fast::hash(body.as_bytes()) {
        return None;
    }
    let v: Vec<u64> = body.split(' ').map(|w| u64::from_str_radix(w, 16).ok()).collect::<Option<_>>()?;
    let [x0, y0, x1, y1, finite, nonfinite] = v[..] else { return None };
    let extent = [x0, y0, x1, y1].map(f64::from_bits);
    Some(CachedBounds { extent: (finite > 0).then_some(extent), finite, nonfinite })
}

/// True for an array shape that reads naturally as points: (N, 2) or (N, 3) with N much larger than 3.
pub fn looks_like_points(shape: &[u64], dtype: DType) -> bool {
    matches!(dtype, DType::F32 | DType::F64) && matches!(*shape, [n, c] if (2..=3).contains(&c) && n >= 64 * c)
}

/// Opens a point set: raw records when `spec.dtype` is given, else `.npy` (by its magic) or text.
pub fn open_points(path: &Path, spec: &PointSpec) -> Result<PointSource> {
    let (file, len) = open_file(path)?;
    if let Some(dtype) = spec.dtype {
        if !matches!(dtype, DType::F32 | DType::F64) {
            return Err(Error::request(path, format!("point records must be f32 or f64, not {}", dtype.name())));
        }
        let columns = spec
            .columns
            .ok_or_else(|| Error::request(path, "raw point records need --columns N (values per record)"))?;
        if columns == 0 {
            return Err(Error::request(path, "--columns must be at least 1"));
        }
        let rec =
            columns.checked_mul(dtype.size() as u64).ok_or_else(|| Error::request(path, "--columns is too large"))?;
        if spec.offset > len {
            return Err(Error::bad_input(
                path,
                format!("--offset {} is past the end of the {len}-byte file", spec.offset),
            ));
        }
        let body = len - spec.offset;
        if body % rec != 0 {
            return Err(Error::bad_input(
                path,
                format!(
                    "file size {len} bytes{} is not a multiple of the record size {rec} bytes ({columns} x {}): \
                     {} whole records and {} bytes left over",
                    if spec.offset > 0 { format!(" minus offset {}", spec.offset) } else { String::new() },
                    dtype.name(),
                    body / rec,
                    body % rec
                ),
            ));
        }
        if body == 0 {
            return Err(Error::bad_input(path, "the file holds no point records"));
        }
        let map = GuardedMap::map(&file).map_err(|e| Error::io(path, e))?;
        return finish(PointSource {
            path: path.to_path_buf(),
            format: PointFormat::Raw,
            dtype,
            endian: spec.endian,
            order: Order::C,
            len: body / rec,
            columns,
            x: spec.x,
            y: spec.y,
            value: spec.value,
            file_size: len,
            data_offset: spec.offset,
            map,
            notes: Default::default(),
        });
    }
    let mut magic = [0u8; 6];
    {
        use std::io::Read;
        let mut f = &file;
        let mut got = 0;
        while got < magic.len() {
            match f.read(&mut magic[got..]).map_err(|e| Error::io(path, e))? {
                0 => break,
                k => got += k,
            }
        }
    }
    if &magic == b"\x93NUMPY" {
        use std::io::{Seek, SeekFrom};
        (&file).seek(SeekFrom::Start(0)).map_err(|e| Error::io(path, e))?;
        return open_npy_points(path, &file, len, spec);
    }
    drop(file);
    let (binary, report, note) = points_text::convert_cached_noted(path)?;
    let (bfile, blen) = open_file(&binary)?;
    let columns = report.columns;
    let map = GuardedMap::map(&bfile).map_err(|e| Error::io(&binary, e))?;
    finish(PointSource {
        path: path.to_path_buf(),
        format: PointFormat::Text { binary, report },
        dtype: DType::F64,
        endian: Endian::Little,
        order: Order::C,
        len: blen / (8 * columns),
        columns,
        x: spec.x,
        y: spec.y,
        value: spec.value,
        file_size: len,
        data_offset: 0,
        map,
        notes: std::sync::Mutex::new(note.into_iter().collect()),
    })
}

fn open_npy_points(path: &Path, file: &std::fs::File, len: u64, spec: &PointSpec) -> Result<PointSource> {
    let h = super::npy::read_header(path, file, len)?;
    if !matches!(h.dtype, DType::F32 | DType::F64) {
        return Err(Error::bad_input(
            path,
            format!("point arrays must be float32 or float64, this one is {}", h.dtype.name()),
        ));
    }
    let (n, c) = match *h.shape {
        [n, c] if c >= 2 => (n, c),
        _ => {
            return Err(Error::bad_input(
                path,
                format!(
                    "shape {} is not a point array: expected (N, 2) or (N, 3+) (x, y[, value, ...])",
                    fmt_shape(&h.shape)
                ),
            ))
        }
    };
    if n == 0 {
        return Err(Error::bad_input(path, "the array holds no points (shape has N = 0)"));
    }
    let need =
        n.checked_mul(c).and_then(|e| e.checked_mul(h.dtype.size() as u64)).and_then(|b| b.checked_add(h.data_offset));
    match need {
        Some(need) if need <= len => {}
        _ => {
            return Err(Error::bad_input(
                path,
                format!("the file is too short for shape {} of {} ({len} bytes)", fmt_shape(&h.shape), h.dtype.name()),
            ))
        }
    }
    let map = GuardedMap::map(file).map_err(|e| Error::io(path, e))?;
    finish(PointSource {
        path: path.to_path_buf(),
        format: PointFormat::Npy { major: h.major, minor: h.minor },
        dtype: h.dtype,
        endian: h.endian,
        order: h.order,
        len: n,
        columns: c,
        x: spec.x,
        y: spec.y,
        value: spec.value,
        file_size: len,
        data_offset: h.data_offset,
        map,
        notes: Default::default(),
    })
}

/// Checks the column choices against the record width.
fn finish(src: PointSource) -> Result<PointSource> {
    let c = src.columns;
    for (flag, col) in [("--x", Some(src.x)), ("--y", Some(src.y)), ("--value", src.value)] {
        if let Some(col) = col {
            if col >= c {
                return Err(Error::request(
                    &src.path,
                    format!("{flag} {col} is not a column: the records have {c} values (columns 0..{})", c - 1),
                ));
            }
        }
    }
    Ok(src)
}

impl PointSource {
    /// The value column `agg` would use: `--value`, else column 2 when there is one.
    pub fn value_column(&self) -> Option<u64> {
        self.value.or((self.columns >= 3).then_some(2))
    }

    /// Number of chunks of `CHUNK_RECORDS` records.
    pub fn chunk_count(&self) -> usize {
        self.len.div_ceil(CHUNK_RECORDS) as usize
    }

    /// Announces a front-to-back pass to the kernel (readahead).
    pub fn advise_sequential(&self) {
        self.map.advise_sequential();
    }

    /// Asks the kernel to start reading chunk `i` (asynchronously).
    pub fn prefetch(&self, i: usize) {
        let (a, b) = self.chunk_range(i);
        if a >= b {
            return;
        }
        let esz = self.dtype.size() as u64;
        match self.order {
            Order::C => {
                let off = self.data_offset + a * self.columns * esz;
                self.map.will_need(off as usize, ((b - a) * self.columns * esz) as usize);
            }
            Order::F => {
                for c in [Some(self.x), Some(self.y), self.value].into_iter().flatten() {
                    let off = self.data_offset + (c * self.len + a) * esz;
                    self.map.will_need(off as usize, ((b - a) * esz) as usize);
                }
            }
        }
    }

    fn chunk_range(&self, i: usize) -> (u64, u64) {
        let a = (i as u64 * CHUNK_RECORDS).min(self.len);
        (a, (a + CHUNK_RECORDS).min(self.len))
    }

    /// True if a read hit pages past a shrunk end of file (the data read is then not the file's).
    pub fn check_faulted(&self) -> Result<()> {
        if self.map.faulted() {
            let path = match &self.format {
                PointFormat::Text { binary, .. } => binary.clone(),
                _ => self.path.clone(),
            };
            return Err(Error::FileShrank { path });
        }
        Ok(())
    }

    /// Calls `f` with chunk `i` viewed as typed columns; `value` asks for the value column too.
    pub fn with_chunk<R>(&self, i: usize, value: Option<u64>, buf: &mut ChunkBuf, f: impl FnOnce(Chunk<'_>) -> R) -> R {
        let (a, b) = self.chunk_range(i);
        let n = (b - a) as usize;
        let esz = self.dtype.size();
        let bytes = self.map.bytes();
        let cols = self.columns as usize;
        // The byte range holding the chunk, and where each wanted column starts in it (in elements).
        let (lo, hi, starts, stride) = match self.order {
            Order::C => {
                let lo = (self.data_offset + a * self.columns * esz as u64) as usize;
                let hi = lo + n * cols * esz;
                let s = |c: u64| c as usize;
                (lo, hi, [s(self.x), s(self.y), value.map_or(0, s)], cols)
            }
            Order::F => {
                // Columns are contiguous runs of `len` values: view the span from the first to the last wanted one.
                let wanted = [Some(self.x), Some(self.y), value];
                let cmin = wanted.iter().flatten().min().copied().unwrap_or(0);
                let cmax = wanted.iter().flatten().max().copied().unwrap_or(0);
                let lo = (self.data_offset + (cmin * self.len + a) * esz as u64) as usize;
                let hi = (self.data_offset + (cmax * self.len + b) * esz as u64) as usize;
                let s = |c: u64| ((c - cmin) * self.len) as usize;
                (lo, hi, [s(self.x), s(self.y), value.map_or(0, s)], 1)
            }
        };
        let raw = &bytes[lo.min(bytes.len())..hi.min(bytes.len())];
        let span = if n == 0 { 0 } else { (n - 1) * stride + 1 };
        let native = self.endian == Endian::NATIVE;
        let mut starts = starts;
        macro_rules! view {
            ($t:ty, $field:ident, $variant:ident) => {{
                const SZ: usize = std::mem::size_of::<$t>();
                let conv = |e: &[u8]| {
                    let mut a = [0u8; SZ];
                    a.copy_from_slice(e);
                    if !native {
                        a.reverse();
                    }
                    <$t>::from_ne_bytes(a)
                };
                let data: &[$t] = match bytemuck::try_cast_slice::<u8, $t>(raw) {
                    Ok(d) if native => d,
                    _ if stride == 1 => {
                        // Fortran order: copy just the wanted columns' runs, one after the other.
                        buf.$field.clear();
                        for (k, st) in starts.iter_mut().enumerate() {
                            let seg = raw.get(*st * SZ..(*st + n) * SZ).unwrap_or(&[]);
                            buf.$field.extend(seg.chunks_exact(SZ).map(conv));
                            *st = k * n;
                        }
                        &buf.$field
                    }
                    _ => {
                        buf.$field.clear();
                        buf.$field.extend(raw.chunks_exact(SZ).map(conv));
                        &buf.$field
                    }
                };
                let col = |s: usize| data.get(s..(s + span).min(data.len())).unwrap_or(&[]);
                let len = if data.len() >= starts.iter().max().copied().unwrap_or(0) + span { n } else { 0 };
                f(Chunk::$variant(Cols {
                    x: col(starts[0]),
                    y: col(starts[1]),
                    value: value.map(|_| col(starts[2])),
                    stride,
                    len,
                    records: if stride > 1 && len > 0 { data.get(..len * stride).unwrap_or(&[]) } else { &[] },
                    offsets: starts,
                }))
            }};
        }
        if self.dtype == DType::F32 {
            view!(f32, f32, F32)
        } else {
            view!(f64, f64, F64)
        }
    }

    /// The cache file for this point set's data bounds (depends on the file and on the x/y columns read).
    fn bounds_cache_path(&self) -> Option<PathBuf> {
        let key = format!(
            "bounds v2 {} {} {} {} {} {} {} {}",
            self.dtype.name(),
            self.endian.name(),
            self.order.name(),
            self.columns,
            self.len,
            self.data_offset,
            self.x,
            self.y
        );
        points_text::cache_path(&self.path, &key, "bounds").ok()
    }

    /// Data bounds saved by an earlier pass over this same file (same identity and layout), if any. The
    /// cache line carries a CRC-32 of its values: a damaged one is ignored (a note says so) and deleted,
    /// so the next pass computes and stores the bounds again.
    pub fn cached_bounds(&self) -> Option<CachedBounds> {
        let path = self.bounds_cache_path()?;
        let text = std::fs::read(&path).ok()?;
        match parse_bounds(&text) {
            Some(b) if b.finite + b.nonfinite == self.len => Some(b),
            _ => {
                self.note(format!(
                    "the cached data bounds {} were damaged (checksum or count mismatch): recomputed",
                    path.display()
                ));
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Saves data bounds for later runs. Best effort: a cache that cannot be written is skipped.
    pub fn store_bounds(&self, b: &CachedBounds) {
        let Some(path) = self.bounds_cache_path() else { return };
        let _ = crate::diskcache::write_atomic(&path, format_bounds(b).as_bytes(), None);
    }

    /// Adds a note for the user (see [`PointSource::take_notes`]).
    pub fn note(&self, n: String) {
        if let Ok(mut v) = self.notes.lock() {
            v.push(n);
        }
    }

    /// The notes gathered since the last call: what the user should know about a cache file found damaged
    /// and rebuilt.
    pub fn take_notes(&self) -> Vec<String> {
        self.notes.lock().map(|mut v| std::mem::take(&mut *v)).unwrap_or_default()
    }

    /// `info` lines for the point set itself.
    pub fn describe(&self) -> Vec<(String, String)> {
        let mut v = vec![
            ("path:".to_string(), self.path.display().to_string()),
            ("format:".into(), self.format.name()),
            ("points:".into(), self.len.to_string()),
            (
                "record:".into(),
                format!(
                    "{} x {} ({} bytes), {}-endian, {} order",
                    self.columns,
                    self.dtype.name(),
                    self.columns * self.dtype.size() as u64,
                    self.endian.name(),
                    self.order.name()
                ),
            ),
            (
                "columns:".into(),
                format!(
                    "x = {}, y = {}, value = {}",
                    self.x,
                    self.y,
                    self.value_column().map_or("none".to_string(), |c| c.to_string())
                ),
            ),
            ("file size:".into(), format!("{} bytes", self.file_size)),
        ];
        if let PointFormat::Text { binary, report } = &self.format {
            v.push(("converted to:".into(), binary.display().to_string()));
            v.push(("text lines:".into(), report.summary()));
        }
        v
    }
}
