//! The out-of-core spatial index of a point set: the finite points sorted by the cell of a fixed
//! 2^L × 2^L grid over the data bounds (row-major cells, row 0 = lowest y), stored in the source dtype in
//! the disk cache with per-cell offsets and coarse count/value pyramids, so that a view reads only the
//! points of the cells it overlaps and bins them with the same kernel as a full scan (bit-identical
//! counts, minima and maxima). `build` writes the file (two passes, resumable).
//!
//! File layout (native byte order, recorded in the header):
//! - `[0, HEADER)`: magic `VVPTIDX1`, u32 JSON length, u32 CRC-32 of the JSON, the JSON [`IndexMeta`];
//!   at `HEADER - 64` the completion footer (magic `VVPIDONE`, CRC of the offsets, CRC of the pyramids,
//!   CRC of the footer), written last.
//! - offsets: `4^L + 1` u64, the first point of every cell (the last one = number of indexed points);
//!   then `4^L` u32, the CRC-32 of every cell's point records (checked when a query reads the cell).
//! - count pyramid: levels 0..=L (level l has 4^l cells, coarsest first), u64 points per cell.
//! - value pyramid (when the records have a value column): levels 0..=L, per cell the non-NaN value
//!   count (u64), sum, min and max (f64; min/max NaN where no value).
//! - points (page-aligned): the indexed records, `2` (x, y) or `3` (x, y, value) values of the dtype.

pub mod build;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::diskcache::{self, Identity};
use crate::dtype::{DType, Endian};
use crate::error::{Error, Result};
use crate::points::bin::{bin_feed, Axis, BinPlan, ChunkFeed};
use crate::points::{Agg, Extent, Grid, Skipped};
use crate::source::guard::GuardedMap;
use crate::source::points::{Chunk, ChunkBuf, Cols, PointFormat, PointSource, CHUNK_RECORDS};

pub use build::{build, build_or_find, BuildJob};

/// Cache sub-directory of point index files.
pub const KIND: &str = "points-index";
/// File extension of a complete index.
pub const EXT: &str = "vvi";
const MAGIC: &[u8; 8] = b"VVPTIDX1";
const FOOTER_MAGIC: &[u8; 8] = b"VVPIDONE";
/// Bytes reserved for the header (the footer sits in its last 64 bytes).
pub const HEADER: u64 = 4096;
const FOOTER_AT: u64 = HEADER - 64;
/// Version of the layout; part of every cache key.
pub const VERSION: u32 = 2;
/// Bytes of one cell of the value pyramid.
const VALUE_CELL: u64 = 32;

/// Everything an index file says about itself (the header JSON).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct IndexMeta {
    pub format: String,
    pub version: u32,
    pub identity: Identity,
    /// How the records were read (layout, columns), so another reading of the same file gets its own index.
    pub source: String,
    /// numpy name of the stored dtype (the source's: float32 or float64).
    pub dtype: String,
    /// Values per stored record: 2 (x, y) or 3 (x, y, value).
    pub record_values: u64,
    pub value_column: Option<u64>,
    /// The grid's extent (the finite points' bounds, padded by ±0.5 along an axis of zero width), as the
    /// bits of xmin, ymin, xmax, ymax (exact through JSON).
    pub extent_bits: [u64; 4],
    /// The grid has 2^level × 2^level cells.
    pub level: u32,
    /// Records in the point file, indexed ones (finite x and y) and skipped ones (NaN/inf x or y).
    pub points: u64,
    pub indexed: u64,
    pub nonfinite: u64,
    pub little_endian: bool,
    pub file_size: u64,
}

impl IndexMeta {
    pub fn extent(&self) -> Extent {
        let [a, b, c, d] = self.extent_bits.map(f64::from_bits);
        Extent { xmin: a, ymin: b, xmax: c, ymax: d }
    }
    pub fn side(&self) -> usize {
        1usize << self.level
    }
    fn dtype(&self) -> Option<DType> {
        [DType::F32, DType::F64].into_iter().find(|d| d.name() == self.dtype)
    }
}

/// Where the parts of a file with this geometry lie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub level: u32,
    pub cells: u64,
    pub offsets_at: u64,
    /// Per-cell CRC-32 of the points.
    pub crcs_at: u64,
    pub counts_at: u64,
    /// Cells of all pyramid levels together.
    pub pyramid_cells: u64,
    /// The value pyramid, when there is a value column.
    pub values_at: Option<u64>,
    pub points_at: u64,
    pub record_bytes: u64,
    pub file_size: u64,
}

impl Layout {
    pub fn new(level: u32, indexed: u64, record_values: u64, esz: u64, has_value: bool) -> Layout {
        let cells = 1u64 << (2 * level);
        let pyramid_cells = ((cells << 2) - 1) / 3;
        let offsets_at = HEADER;
        let crcs_at = offsets_at + 8 * (cells + 1);
        let counts_at = crcs_at + 4 * cells;
        let mut end = counts_at + 8 * pyramid_cells;
        let values_at = has_value.then(|| {
            let at = end;
            end += VALUE_CELL * pyramid_cells;
            at
        });
        let points_at = end.next_multiple_of(4096);
        let record_bytes = record_values * esz;
        Layout {
            level,
            cells,
            offsets_at,
            crcs_at,
            counts_at,
            pyramid_cells,
            values_at,
            points_at,
            record_bytes,
            file_size: points_at + indexed * record_bytes,
        }
    }

    /// First cell of pyramid level `l` (0 = one cell) among all levels.
    pub fn level_base(l: u32) -> u64 {
        ((1u64 << (2 * l)) - 1) / 3
    }
}

/// Per-cell value statistics of the value pyramid.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CellValues {
    /// Points with a non-NaN value.
    pub valued: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
}

impl Default for CellValues {
    fn default() -> Self {
        CellValues { valued: 0, sum: 0.0, min: f64::NAN, max: f64::NAN }
    }
}

impl CellValues {
    fn to_bytes(self) -> [u8; 32] {
        let mut b = [0u8; 32];
        b[..8].copy_from_slice(&self.valued.to_ne_bytes());
        b[8..16].copy_from_slice(&self.sum.to_ne_bytes());
        b[16..24].copy_from_slice(&self.min.to_ne_bytes());
        b[24..].copy_from_slice(&self.max.to_ne_bytes());
        b
    }
    fn from_bytes(b: &[u8]) -> CellValues {
        let f = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(b.get(i..i + 8).unwrap_or(&[0; 8]));
            a
        };
        CellValues {
            valued: u64::from_ne_bytes(f(0)),
            sum: f64::from_ne_bytes(f(8)),
            min: f64::from_ne_bytes(f(16)),
            max: f64::from_ne_bytes(f(24)),
        }
    }
}

/// Where a point set's index lives: the final name, the name while building, and its checkpoint.
#[derive(Debug, Clone)]
pub struct Paths {
    pub done: PathBuf,
    pub partial: PathBuf,
    pub resume: PathBuf,
}

/// How the records are read: two readings of one file (other columns, layout) get two indexes.
fn source_desc(src: &PointSource) -> String {
    let fmt = match &src.format {
        PointFormat::Raw => "raw",
        PointFormat::Npy { .. } => "npy",
        PointFormat::Text { .. } => "text",
    };
    format!(
        "{fmt} dtype={} endian={} order={} columns={} len={} offset={} x={} y={} value={:?}",
        src.dtype.name(),
        src.endian.name(),
        src.order.name(),
        src.columns,
        src.len,
        src.data_offset,
        src.x,
        src.y,
        src.value_column()
    )
}

impl Paths {
    /// The three names of a complete index at `done`.
    pub fn for_done(done: PathBuf) -> Paths {
        let partial = diskcache::partial_path(&done);
        let mut resume = partial.clone().into_os_string();
        resume.push(".resume");
        Paths { done, partial, resume: PathBuf::from(resume) }
    }
}

/// The identity and cache paths of `src`'s index.
pub fn locate(src: &PointSource) -> Result<(Identity, Paths)> {
    let id = Identity::of(&src.path)?;
    let key = id.key(&format!("points-index v{VERSION} {}", source_desc(src)));
    Ok((id, Paths::for_done(diskcache::entry_path(KIND, &key, EXT)?)))
}

/// What the header of `src`'s index must say apart from what the data decides (extent, level, counts).
fn expected_base(src: &PointSource, id: Identity) -> IndexMeta {
    let value_column = src.value_column();
    IndexMeta {
        format: "vastview-points-index".into(),
        version: VERSION,
        identity: id,
        source: source_desc(src),
        dtype: src.dtype.name().into(),
        record_values: if value_column.is_some() { 3 } else { 2 },
        value_column,
        extent_bits: [0; 4],
        level: 0,
        points: src.len,
        indexed: 0,
        nonfinite: 0,
        little_endian: Endian::NATIVE == Endian::Little,
        file_size: 0,
    }
}

/// The header bytes of a file: magic, JSON length, JSON CRC, JSON.
fn header_bytes(path: &Path, meta: &IndexMeta) -> Result<Vec<u8>> {
    let json = serde_json::to_vec(meta).map_err(|e| Error::cache(path, e.to_string()))?;
    let mut head = Vec::with_capacity(16 + json.len());
    head.extend_from_slice(MAGIC);
    head.extend_from_slice(&(json.len() as u32).to_le_bytes());
    head.extend_from_slice(&crc32fast::hash(&json).to_le_bytes());
    head.extend_from_slice(&json);
    if head.len() as u64 > FOOTER_AT {
        return Err(Error::cache(path, "header too long"));
    }
    Ok(head)
}

/// The completion footer for the given table checksums.
fn footer_bytes(offsets_crc: u32, pyramid_crc: u32) -> [u8; 20] {
    let mut f = [0u8; 20];
    f[..8].copy_from_slice(FOOTER_MAGIC);
    f[8..12].copy_from_slice(&offsets_crc.to_le_bytes());
    f[12..16].copy_from_slice(&pyramid_crc.to_le_bytes());
    let crc = crc32fast::hash(&f[..16]);
    f[16..].copy_from_slice(&crc.to_le_bytes());
    f
}

/// Parses the header of `bytes` (the first `HEADER` bytes of a file, or fewer when it is truncated).
fn parse_header(path: &Path, bytes: &[u8]) -> Result<IndexMeta> {
    let head = bytes.get(..16).ok_or_else(|| Error::cache(path, "truncated header"))?;
    if &head[..8] != MAGIC {
        return Err(Error::cache(path, "not a vastview point index (bad magic)"));
    }
    let len = u32::from_le_bytes([head[8], head[9], head[10], head[11]]) as usize;
    let crc = u32::from_le_bytes([head[12], head[13], head[14], head[15]]);
    if len as u64 > FOOTER_AT - 16 {
        return Err(Error::cache(path, "header length out of range"));
    }
    let json = bytes.get(16..16 + len).ok_or_else(|| Error::cache(path, "truncated header"))?;
    if crc32fast::hash(json) != crc {
        return Err(Error::cache(path, "header checksum mismatch"));
    }
    serde_json::from_slice(json).map_err(|e| Error::cache(path, format!("header: {e}")))
}

/// Reads a file's header alone (no validation against a data file): for `cache list` and `cache clear`.
pub fn read_meta(path: &Path) -> Result<IndexMeta> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut b = vec![0u8; HEADER as usize];
    let n = file.read_at(&mut b, 0).map_err(|e| Error::io(path, e))?;
    b.truncate(n);
    parse_header(path, &b)
}

/// Checks a header against what `src` expects, and returns the file's layout.
fn check_meta(path: &Path, meta: &IndexMeta, base: &IndexMeta, file_len: u64) -> Result<Layout> {
    let mut want = base.clone();
    (want.extent_bits, want.level, want.indexed, want.nonfinite, want.file_size) =
        (meta.extent_bits, meta.level, meta.indexed, meta.nonfinite, meta.file_size);
    if *meta != want {
        return Err(Error::cache(path, "built from a different file, version or layout"));
    }
    let dtype = meta.dtype().ok_or_else(|| Error::cache(path, "unknown dtype"))?;
    if meta.level > 13 || meta.indexed.checked_add(meta.nonfinite) != Some(meta.points) {
        return Err(Error::cache(path, "inconsistent header (level or point counts)"));
    }
    let layout =
        Layout::new(meta.level, meta.indexed, meta.record_values, dtype.size() as u64, meta.value_column.is_some());
    if file_len != layout.file_size || meta.file_size != layout.file_size {
        return Err(Error::cache(path, format!("size is {file_len} bytes, expected {}", layout.file_size)));
    }
    let e = meta.extent();
    if Axis::new(e.xmin, e.xmax, meta.side()).is_none() || Axis::new(e.ymin, e.ymax, meta.side()).is_none() {
        return Err(Error::cache(path, "header extent cannot be binned"));
    }
    Ok(layout)
}

/// A complete, validated point index, memory-mapped read-only.
pub struct PointIndex {
    path: PathBuf,
    pub meta: IndexMeta,
    pub layout: Layout,
    dtype: DType,
    /// First point of every cell, and the number of points at the end.
    offsets: Vec<u64>,
    /// CRC-32 of every cell's records.
    crcs: Vec<u32>,
    map: GuardedMap,
    /// Whether the pyramids passed their checksum (checked on first use).
    pyramid_ok: OnceLock<bool>,
    pyramid_crc: u32,
}

impl std::fmt::Debug for PointIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PointIndex").field("path", &self.path).field("meta", &self.meta).finish()
    }
}

fn u64s(bytes: &[u8]) -> Vec<u64> {
    bytes.chunks_exact(8).map(|c| u64::from_ne_bytes(c.try_into().unwrap_or([0; 8]))).collect()
}

impl PointIndex {
    /// Opens a complete index file and checks it against `src`: header checksum and fields, the data
    /// file's identity, size, the completion footer, the offsets' checksum and monotonicity.
    pub fn open(path: &Path, src: &PointSource) -> Result<PointIndex> {
        let id = Identity::of(&src.path)?;
        let base = expected_base(src, id);
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        if len < HEADER {
            return Err(Error::cache(path, format!("truncated ({len} bytes)")));
        }
        let map = GuardedMap::map(&file).map_err(|e| Error::io(path, e))?;
        let bytes = map.bytes();
        let meta = parse_header(path, &bytes[..HEADER as usize])?;
        let layout = check_meta(path, &meta, &base, len)?;
        let foot = &bytes[FOOTER_AT as usize..FOOTER_AT as usize + 20];
        let (offsets_crc, pyramid_crc) = match parse_footer(foot) {
            Some(c) => c,
            None => return Err(Error::cache(path, "incomplete (no completion footer)")),
        };
        let ob = &bytes[layout.offsets_at as usize..layout.counts_at as usize];
        if crc32fast::hash(ob) != offsets_crc {
            return Err(Error::cache(path, "cell offsets fail their checksum"));
        }
        let offsets = u64s(&bytes[layout.offsets_at as usize..layout.crcs_at as usize]);
        let crcs: Vec<u32> = bytes[layout.crcs_at as usize..layout.counts_at as usize]
            .chunks_exact(4)
            .map(|c| u32::from_ne_bytes(c.try_into().unwrap_or([0; 4])))
            .collect();
        let monotone = offsets.windows(2).all(|w| w[0] <= w[1]);
        if !monotone || offsets.first() != Some(&0) || offsets.last() != Some(&meta.indexed) {
            return Err(Error::cache(path, "cell offsets are inconsistent"));
        }
        if map.faulted() {
            return Err(Error::cache(path, "the file shrank while it was read"));
        }
        let dtype = meta.dtype().ok_or_else(|| Error::cache(path, "unknown dtype"))?;
        Ok(PointIndex {
            path: path.to_path_buf(),
            meta,
            layout,
            dtype,
            offsets,
            crcs,
            map,
            pyramid_ok: OnceLock::new(),
            pyramid_crc,
        })
    }

    /// The complete, valid index of `src` if the cache has one. A damaged or stale file is deleted (and a
    /// note printed); a later `vastview index` rebuilds it.
    pub fn find(src: &PointSource) -> Result<Option<PointIndex>> {
        let (_, paths) = locate(src)?;
        if !paths.done.exists() {
            return Ok(None);
        }
        match PointIndex::open(&paths.done, src) {
            Ok(ix) => {
                diskcache::touch(&paths.done);
                Ok(Some(ix))
            }
            Err(e @ Error::Cache { .. }) => {
                eprintln!("vastview: {e}; deleting it (run `vastview index` to rebuild it)");
                let _ = std::fs::remove_file(&paths.done);
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The grid axes of the index (2^L cells each way over the stored extent).
    fn axes(&self) -> Option<(Axis, Axis)> {
        let e = self.meta.extent();
        Axis::new(e.xmin, e.xmax, self.meta.side()).zip(Axis::new(e.ymin, e.ymax, self.meta.side()))
    }

    /// The cells (columns c0..=c1, rows r0..=r1) that can hold points inside `extent`, `None` when none can.
    /// Cell indices are monotone in x and y (float64 rounding is monotone), so the points with
    /// xmin ≤ x ≤ xmax lie in the columns of the clamped xmin and xmax and those between.
    fn cell_range(&self, extent: &Extent) -> Option<(usize, usize, usize, usize)> {
        let (cx, cy) = self.axes()?;
        let b = self.meta.extent();
        let (x0, x1) = (extent.xmin.max(b.xmin), extent.xmax.min(b.xmax));
        let (y0, y1) = (extent.ymin.max(b.ymin), extent.ymax.min(b.ymax));
        if !(x0 <= x1 && y0 <= y1) {
            return None;
        }
        Some((cx.index_kept(x0), cx.index_kept(x1), cy.index_kept(y0), cy.index_kept(y1)))
    }

    /// Point ranges (first, end) of the cells under `extent`: one per cell row.
    fn ranges(&self, extent: &Extent) -> Vec<(u64, u64)> {
        let Some((c0, c1, r0, r1)) = self.cell_range(extent) else { return Vec::new() };
        let n = self.meta.side();
        (r0..=r1).map(|r| (self.offsets[r * n + c0], self.offsets[r * n + c1 + 1])).filter(|(a, b)| b > a).collect()
    }

    /// How many indexed points lie in the cells `extent` overlaps: an upper bound of the points in the
    /// extent (exact for an extent on cell boundaries), from the offsets alone.
    pub fn points_in(&self, extent: &Extent) -> u64 {
        self.ranges(extent).iter().map(|(a, b)| b - a).sum()
    }

    /// Bins the points of the cells under `extent` into a `w`×`h` grid with exactly the rule and kernel of
    /// [`crate::points::aggregate`]: the same grid for count, min and max (sum and mean up to the order of
    /// float64 additions), and the same skipped counts.
    pub fn aggregate(&self, extent: &Extent, w: usize, h: usize, agg: Agg) -> Result<(Grid, Skipped)> {
        self.aggregate_rows(extent, w, h, 0..h, agg)
    }

    /// Rows `rows` of [`PointIndex::aggregate`]'s grid, like [`crate::points::aggregate_rows`]: reads only
    /// the cells under the strip (with a margin of two pixel rows).
    pub fn aggregate_rows(
        &self,
        extent: &Extent,
        w: usize,
        h: usize,
        rows: std::ops::Range<usize>,
        agg: Agg,
    ) -> Result<(Grid, Skipped)> {
        let plan = BinPlan::new(&self.path, extent, w, h, agg, self.meta.value_column, self.meta.record_values)?;
        let mut cover = *extent;
        if rows.start > 0 || rows.end < h {
            let px = (extent.ymax - extent.ymin) / h as f64;
            let y0 = extent.ymin + (rows.start as f64 - 2.0) * px;
            let y1 = extent.ymin + (rows.end as f64 + 2.0) * px;
            if y0.is_finite() && y1.is_finite() {
                (cover.ymin, cover.ymax) = (y0.max(extent.ymin), y1.min(extent.ymax));
            }
        }
        let plan = plan.rows(rows);
        let extent = &cover;
        let mut chunks = Vec::new();
        for (a, b) in self.ranges(extent) {
            let mut s = a;
            while s < b {
                let e = (s + CHUNK_RECORDS).min(b);
                chunks.push((s, e));
                s = e;
            }
        }
        let read: u64 = chunks.iter().map(|(a, b)| b - a).sum();
        self.verify(extent)?;
        let feed = IndexFeed { ix: self, chunks };
        let (grid, mut sk) = bin_feed(&feed, &self.path, &plan)?;
        sk.outside += self.meta.indexed - read;
        sk.nonfinite += self.meta.nonfinite;
        Ok((grid, sk))
    }

    /// Checks the points of the cells under `extent` against their checksums (all cores).
    fn verify(&self, extent: &Extent) -> Result<()> {
        use rayon::prelude::*;
        let Some((c0, c1, r0, r1)) = self.cell_range(extent) else { return Ok(()) };
        let n = self.meta.side();
        let rb = self.layout.record_bytes;
        let bytes = self.map.bytes();
        (r0..=r1).into_par_iter().try_for_each(|r| {
            for c in c0..=c1 {
                let k = r * n + c;
                let (a, b) = (self.offsets[k], self.offsets[k + 1]);
                let (s, e) = (self.layout.points_at + a * rb, self.layout.points_at + b * rb);
                let cell = bytes.get(s as usize..e as usize).unwrap_or(&[]);
                if crc32fast::hash(cell) != self.crcs.get(k).copied().unwrap_or(0) || cell.len() as u64 != e - s {
                    return Err(Error::cache(&self.path, format!("the points of cell {c},{r} fail their checksum")));
                }
            }
            Ok(())
        })?;
        if self.map.faulted() {
            return Err(Error::cache(&self.path, "the file shrank while it was being read"));
        }
        Ok(())
    }

    /// The count pyramid's level `l` (0..=L): points per cell, row-major, row 0 = lowest y.
    pub fn level_counts(&self, l: u32) -> Result<Vec<u64>> {
        self.check_pyramids()?;
        let l = l.min(self.meta.level);
        let at = self.layout.counts_at + 8 * Layout::level_base(l);
        let n = 1u64 << (2 * l);
        Ok(u64s(&self.map.bytes()[at as usize..(at + 8 * n) as usize]))
    }

    /// The value pyramid's level `l` (0..=L), when the records have a value column.
    pub fn level_values(&self, l: u32) -> Result<Option<Vec<CellValues>>> {
        self.check_pyramids()?;
        let Some(vat) = self.layout.values_at else { return Ok(None) };
        let l = l.min(self.meta.level);
        let at = vat + VALUE_CELL * Layout::level_base(l);
        let n = 1u64 << (2 * l);
        let b = &self.map.bytes()[at as usize..(at + VALUE_CELL * n) as usize];
        Ok(Some(b.chunks_exact(VALUE_CELL as usize).map(CellValues::from_bytes).collect()))
    }

    fn check_pyramids(&self) -> Result<()> {
        let ok = *self.pyramid_ok.get_or_init(|| {
            let a = self.layout.counts_at as usize;
            crc32fast::hash(&self.map.bytes()[a..self.layout.points_at as usize]) == self.pyramid_crc
        });
        if ok {
            Ok(())
        } else {
            Err(Error::cache(&self.path, "the coarse pyramids fail their checksum"))
        }
    }

    /// An approximate `w`×`h` count grid over `extent` from the count pyramid alone (no point is read):
    /// the level whose cells are at most a pixel wide (else the finest), each cell's count added to the
    /// pixel holding the cell's centre when that centre lies in the extent. Cell-aligned, for a first view.
    pub fn coarse_counts(&self, extent: &Extent, w: usize, h: usize) -> Result<Vec<u32>> {
        let plan = BinPlan::new(&self.path, extent, w, h, Agg::Count, None, self.meta.record_values)?;
        let b = self.meta.extent();
        let (bw, bh) = (b.xmax - b.xmin, b.ymax - b.ymin);
        let (pw, ph) = ((extent.xmax - extent.xmin) / w as f64, (extent.ymax - extent.ymin) / h as f64);
        let mut l = 0;
        while l < self.meta.level && (bw / (1u64 << l) as f64 > pw || bh / (1u64 << l) as f64 > ph) {
            l += 1;
        }
        let counts = self.level_counts(l)?;
        let n = 1usize << l;
        let mut out = vec![0u32; plan.cells];
        let (cw, ch) = (bw / n as f64, bh / n as f64);
        for r in 0..n {
            let y = b.ymin + (r as f64 + 0.5) * ch;
            if !(y >= extent.ymin && y <= extent.ymax) {
                continue;
            }
            let py = plan.ay.index_kept(y);
            for c in 0..n {
                let x = b.xmin + (c as f64 + 0.5) * cw;
                let k = counts[r * n + c];
                if k == 0 || !(x >= extent.xmin && x <= extent.xmax) {
                    continue;
                }
                let px = plan.ax.index_kept(x);
                if let Some(o) = out.get_mut(py * w + px) {
                    *o = o.wrapping_add(k as u32);
                }
            }
        }
        Ok(out)
    }

    /// The stored records of points `a..b` as typed values (native order; the map is page-aligned).
    fn records<T: bytemuck::Pod>(&self, a: u64, b: u64) -> &[T] {
        let rb = self.layout.record_bytes;
        let (s, e) = (self.layout.points_at + a * rb, self.layout.points_at + b * rb);
        let bytes = self.map.bytes().get(s as usize..e as usize).unwrap_or(&[]);
        bytemuck::try_cast_slice(bytes).unwrap_or(&[])
    }
}

/// The completion footer's table checksums, if it is present and intact.
fn parse_footer(f: &[u8]) -> Option<(u32, u32)> {
    if f.len() < 20 || &f[..8] != FOOTER_MAGIC {
        return None;
    }
    let u = |i: usize| u32::from_le_bytes([f[i], f[i + 1], f[i + 2], f[i + 3]]);
    (crc32fast::hash(&f[..16]) == u(16)).then(|| (u(8), u(12)))
}

/// Ranges of an index's points as chunks for the binning kernel.
struct IndexFeed<'a> {
    ix: &'a PointIndex,
    chunks: Vec<(u64, u64)>,
}

impl ChunkFeed for IndexFeed<'_> {
    fn chunk_count(&self) -> usize {
        self.chunks.len()
    }
    fn prefetch(&self, i: usize) {
        if let Some(&(a, b)) = self.chunks.get(i) {
            let rb = self.ix.layout.record_bytes;
            self.ix.map.will_need((self.ix.layout.points_at + a * rb) as usize, ((b - a) * rb) as usize);
        }
    }
    fn with_chunk<R>(&self, i: usize, value: Option<u64>, _buf: &mut ChunkBuf, f: impl FnOnce(Chunk<'_>) -> R) -> R {
        let (a, b) = self.chunks.get(i).copied().unwrap_or((0, 0));
        let rv = self.ix.meta.record_values as usize;
        let value = value.filter(|_| rv >= 3);
        macro_rules! cols {
            ($t:ty, $v:ident) => {{
                let rec: &[$t] = self.ix.records(a, b);
                let len = rec.len() / rv;
                let rec = &rec[..len * rv];
                let col = |k: usize| rec.get(k..).unwrap_or(&[]);
                f(Chunk::$v(Cols {
                    x: col(0),
                    y: col(1),
                    value: value.map(|_| col(2)),
                    stride: rv,
                    len,
                    records: rec,
                    offsets: [0, 1, 2],
                }))
            }};
        }
        if self.ix.dtype == DType::F32 {
            cols!(f32, F32)
        } else {
            cols!(f64, F64)
        }
    }
    fn check_faulted(&self) -> Result<()> {
        if self.ix.map.faulted() {
            return Err(Error::cache(&self.ix.path, "the file shrank while it was being read"));
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
