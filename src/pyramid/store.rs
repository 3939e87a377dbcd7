//! The persistent pyramid file: levels 1.. of an image stored tile by tile in the source dtype (64-bit data
//! as a per-tile f64 offset plus float32 residuals, the form tiles are uploaded in), each tile with a CRC,
//! plus the per-tile statistics of every level; validated against its data file before use.
//!
//! Layout (all integers little-endian):
//! - `[0, HEADER)`: magic `VVPYRMD1`, u32 JSON length, u32 CRC-32 of the JSON, the JSON [`Meta`].
//! - index: one u64 per stored tile (levels ≥ 1, every slice): bit 32 set once the tile is complete,
//!   low 32 bits the CRC-32 of its bytes.
//! - statistics: one [`RECORD_BYTES`] record per tile of every level (0 included), checked by its own CRC.
//! - tile slots: `tile × tile × channels` elements each; a tile's rows are packed at its own width. For
//!   64-bit data (`offsets` in the header) each slot starts with the tile's f64 offset (native order) and
//!   its elements are float32 residuals `(v − offset) as f32`; the tile's CRC covers offset and residuals.
//!
//! A tile is trusted only if the index says complete and its bytes match the CRC; anything else in a
//! complete file is damage, and the file is deleted and rebuilt.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::diskcache::Identity;
use crate::dtype::{DType, Endian};
use crate::error::{Error, Result};
use crate::pyramid::levels::Levels;
use crate::pyramid::tilestats::{HistRange, TileStats, RECORD_BYTES};
use crate::source::RegionBuf;

const MAGIC: &[u8; 8] = b"VVPYRMD1";
/// Bytes reserved for the header.
pub const HEADER: u64 = 64 << 10;
/// Version of the layout; part of every cache key (3: identity with inode, ctime and content hash;
/// histogram limits stored losslessly).
pub const VERSION: u32 = 3;
const DONE: u64 = 1 << 32;

/// How a level pixel summarises the block of data pixels under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// The mean of the non-NaN values (NaN when all are NaN).
    Mean,
    /// The largest non-NaN value: keeps sparse bright points (star fields) visible when zoomed out.
    Max,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Mean => "mean",
            Method::Max => "max",
        }
    }
    pub fn parse(s: &str) -> Option<Method> {
        match s {
            "mean" => Some(Method::Mean),
            "max" => Some(Method::Max),
            _ => None,
        }
    }
}

/// The dtype level values are computed in: the source's own (bool as uint8; integers rounded).
pub fn value_dtype(d: DType) -> DType {
    if d == DType::Bool {
        DType::U8
    } else {
        d
    }
}

/// Whether levels of `d` are stored as a per-tile offset plus float32 residuals (64-bit types).
pub fn has_offsets(d: DType) -> bool {
    d.is_wide()
}

/// The dtype level elements are stored in: the value dtype, float32 residuals for 64-bit types.
pub fn level_dtype(d: DType) -> DType {
    if has_offsets(d) {
        DType::F32
    } else {
        value_dtype(d)
    }
}

/// Bytes of the per-tile offset that starts each slot of a file with offsets.
pub const OFFSET_BYTES: u64 = 8;

/// Everything the file says about itself (the header JSON).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Meta {
    pub format: String,
    pub version: u32,
    pub identity: Identity,
    /// How the source was opened (raw layout flags), so another reading of the same bytes gets its own file.
    pub source: String,
    pub width: u64,
    pub height: u64,
    pub slices: u64,
    pub channels: u64,
    /// numpy name of the stored dtype.
    pub dtype: String,
    pub tile: u64,
    pub levels: u32,
    pub method: Method,
    /// Histogram limits, exactly (non-finite values as the strings "inf", "-inf", "nan").
    #[serde(with = "exact_f64")]
    pub hist_lo: f64,
    #[serde(with = "exact_f64")]
    pub hist_hi: f64,
    pub little_endian: bool,
    pub file_size: u64,
    /// Tiles are an f64 offset plus float32 residuals (64-bit data); absent (false) otherwise.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub offsets: bool,
}

/// An f64 in JSON without loss: a number when finite (serde_json's `float_roundtrip` parses it back
/// to the same bits), else "inf", "-inf" or "nan" (JSON has no such numbers).
mod exact_f64 {
    pub fn serialize<S: serde::Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        match *v {
            v if v.is_finite() => s.serialize_f64(v),
            v if v.is_nan() => s.serialize_str("nan"),
            v if v > 0.0 => s.serialize_str("inf"),
            _ => s.serialize_str("-inf"),
        }
    }

    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Num(f64),
        Text(String),
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        match <Repr as serde::Deserialize>::deserialize(d)? {
            Repr::Num(v) => Ok(v),
            Repr::Text(t) => match t.as_str() {
                "inf" => Ok(f64::INFINITY),
                "-inf" => Ok(f64::NEG_INFINITY),
                "nan" => Ok(f64::NAN),
                _ => Err(serde::de::Error::custom(format!("'{t}' is not a number"))),
            },
        }
    }
}

/// Offsets of the parts of a file with this geometry.
#[derive(Debug, Clone)]
pub struct Layout {
    pub levels: Levels,
    pub slices: u64,
    pub channels: u64,
    pub dtype: DType,
    /// Each slot starts with the tile's f64 offset ([`OFFSET_BYTES`]); `dtype` is then float32.
    pub offsets: bool,
    /// First tile of each level (0..count) in the statistics table, per slice.
    stat_base: Vec<u64>,
    stats_per_slice: u64,
    /// First tile of each level in the tile table (levels ≥ 1; entry 0 unused), per slice.
    data_base: Vec<u64>,
    data_per_slice: u64,
    pub index_offset: u64,
    pub stats_offset: u64,
    pub data_offset: u64,
    pub slot_bytes: u64,
    pub file_size: u64,
}

impl Layout {
    pub fn new(levels: Levels, slices: u64, channels: u64, dtype: DType, offsets: bool) -> Layout {
        let tiles = |l: u32| {
            let g = levels.grid(l);
            g.cols() * g.rows()
        };
        let mut stat_base = Vec::new();
        let mut n = 0;
        for l in 0..levels.count {
            stat_base.push(n);
            n += tiles(l);
        }
        let stats_per_slice = n;
        let mut data_base = vec![0];
        let mut n = 0;
        for l in 1..levels.count {
            data_base.push(n);
            n += tiles(l);
        }
        let data_per_slice = n;
        let index_offset = HEADER;
        let stats_offset = (index_offset + 8 * data_per_slice * slices).next_multiple_of(4096);
        let data_offset = (stats_offset + RECORD_BYTES as u64 * stats_per_slice * slices).next_multiple_of(4096);
        let slot_bytes = levels.tile * levels.tile * channels * dtype.size() as u64 + Self::head(offsets);
        let file_size = data_offset + slot_bytes * data_per_slice * slices;
        Layout {
            levels,
            slices,
            channels,
            dtype,
            offsets,
            stat_base,
            stats_per_slice,
            data_base,
            data_per_slice,
            index_offset,
            stats_offset,
            data_offset,
            slot_bytes,
            file_size,
        }
    }

    /// Bytes before a slot's elements.
    fn head(offsets: bool) -> u64 {
        if offsets {
            OFFSET_BYTES
        } else {
            0
        }
    }

    /// Position of a stored tile (level ≥ 1) in the tile table.
    fn data_index(&self, slice: u64, level: u32, tx: u64, ty: u64) -> Option<u64> {
        if level == 0 || level >= self.levels.count || slice >= self.slices {
            return None;
        }
        let g = self.levels.grid(level);
        (tx < g.cols() && ty < g.rows())
            .then(|| slice * self.data_per_slice + self.data_base[level as usize] + ty * g.cols() + tx)
    }

    fn stat_index(&self, slice: u64, level: u32, tx: u64, ty: u64) -> Option<u64> {
        if level >= self.levels.count || slice >= self.slices {
            return None;
        }
        let g = self.levels.grid(level);
        (tx < g.cols() && ty < g.rows())
            .then(|| slice * self.stats_per_slice + self.stat_base[level as usize] + ty * g.cols() + tx)
    }

    /// Bytes of one row of tile (tx, ty) of `level`, and its size in pixels.
    pub fn tile_dims(&self, level: u32, tx: u64, ty: u64) -> (u64, u64, u64) {
        let r = self.levels.grid(level).tile_rect(tx, ty);
        (r.width() * self.channels * self.dtype.size() as u64, r.width(), r.height())
    }

    /// Number of stored tiles (levels ≥ 1) over all slices.
    pub fn stored_tiles(&self) -> u64 {
        self.data_per_slice * self.slices
    }
}

/// An open pyramid file (complete, or being built by this process).
pub struct Store {
    path: PathBuf,
    file: File,
    pub meta: Meta,
    pub layout: Layout,
    index: Vec<AtomicU64>,
    complete: AtomicBool,
    /// The final name, once a build has renamed the file into place.
    renamed: std::sync::OnceLock<PathBuf>,
}

fn rw_err(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::io(path, e)
}

impl Store {
    /// Creates an empty (sparse) file for a new build at `path`, truncating what was there.
    pub fn create(path: &Path, meta: Meta, layout: Layout) -> Result<Store> {
        let file =
            File::options().read(true).write(true).create(true).truncate(false).open(path).map_err(rw_err(path))?;
        Self::create_in(path, file, meta, layout)
    }

    /// [`Store::create`] in `file`, already open (and locked by the caller) at `path`: emptied, then sized.
    pub fn create_in(path: &Path, file: File, meta: Meta, layout: Layout) -> Result<Store> {
        file.set_len(0).map_err(rw_err(path))?;
        file.set_len(layout.file_size).map_err(rw_err(path))?;
        let json = serde_json::to_vec(&meta).map_err(|e| Error::cache(path, e.to_string()))?;
        let mut head = Vec::with_capacity(16 + json.len());
        head.extend_from_slice(MAGIC);
        head.extend_from_slice(&(json.len() as u32).to_le_bytes());
        head.extend_from_slice(&crc32fast::hash(&json).to_le_bytes());
        head.extend_from_slice(&json);
        if head.len() as u64 > HEADER {
            return Err(Error::cache(path, "header too long"));
        }
        file.write_all_at(&head, 0).map_err(rw_err(path))?;
        let index = (0..layout.stored_tiles()).map(|_| AtomicU64::new(0)).collect();
        Ok(Self::assemble(path, file, meta, layout, index, false))
    }

    fn assemble(path: &Path, file: File, meta: Meta, layout: Layout, index: Vec<AtomicU64>, complete: bool) -> Store {
        Store {
            path: path.to_path_buf(),
            file,
            meta,
            layout,
            index,
            complete: AtomicBool::new(complete),
            renamed: Default::default(),
        }
    }

    /// Reads a file's header alone (no validation against a data file).
    pub fn read_meta(path: &Path) -> Result<Meta> {
        let file = File::open(path).map_err(rw_err(path))?;
        Self::meta_of(&file, path)
    }

    fn meta_of(file: &File, path: &Path) -> Result<Meta> {
        let mut head = [0u8; 16];
        file.read_exact_at(&mut head, 0).map_err(|_| Error::cache(path, "truncated header"))?;
        if &head[..8] != MAGIC {
            return Err(Error::cache(path, "not a vastview pyramid (bad magic)"));
        }
        let len = u32::from_le_bytes([head[8], head[9], head[10], head[11]]) as u64;
        let crc = u32::from_le_bytes([head[12], head[13], head[14], head[15]]);
        if len > HEADER - 16 {
            return Err(Error::cache(path, "header length out of range"));
        }
        let mut json = vec![0u8; len as usize];
        file.read_exact_at(&mut json, 16).map_err(|_| Error::cache(path, "truncated header"))?;
        if crc32fast::hash(&json) != crc {
            return Err(Error::cache(path, "header checksum mismatch"));
        }
        serde_json::from_slice(&json).map_err(|e| Error::cache(path, format!("header: {e}")))
    }

    /// Opens an existing file and checks it against what the caller expects: the data file's current
    /// identity, the source description and the method; size and header checksum. `complete` says
    /// whether this is a finished file (every tile must then be present) or a partial one to resume.
    pub fn open(path: &Path, expect: &Meta, complete: bool) -> Result<Store> {
        let file = File::options().read(true).write(!complete).open(path).map_err(rw_err(path))?;
        Self::open_in(path, file, expect, complete)
    }

    /// [`Store::open`] of `file`, already open at `path` (read-write for a partial file).
    pub fn open_in(path: &Path, file: File, expect: &Meta, complete: bool) -> Result<Store> {
        let meta = Self::meta_of(&file, path)?;
        // The histogram limits come from the data: whatever the file says.
        let mut expect = expect.clone();
        (expect.hist_lo, expect.hist_hi) = (meta.hist_lo, meta.hist_hi);
        if meta != expect {
            return Err(Error::cache(path, "built from a different file, version or layout"));
        }
        let dtype = DType::all()
            .iter()
            .copied()
            .find(|d| d.name() == meta.dtype)
            .ok_or_else(|| Error::cache(path, "unknown dtype"))?;
        let levels = Levels::new(meta.width, meta.height, meta.tile);
        if levels.count != meta.levels {
            return Err(Error::cache(path, "level count does not match the geometry"));
        }
        if meta.offsets && dtype != DType::F32 {
            return Err(Error::cache(path, "offsets with a dtype other than float32"));
        }
        let layout = Layout::new(levels, meta.slices, meta.channels, dtype, meta.offsets);
        let len = file.metadata().map_err(rw_err(path))?.len();
        if len != layout.file_size || meta.file_size != layout.file_size {
            return Err(Error::cache(path, format!("size is {len} bytes, expected {}", layout.file_size)));
        }
        let n = layout.stored_tiles() as usize;
        let mut raw = vec![0u8; n * 8];
        file.read_exact_at(&mut raw, layout.index_offset).map_err(|_| Error::cache(path, "truncated index"))?;
        let index: Vec<AtomicU64> =
            raw.chunks_exact(8).map(|c| AtomicU64::new(u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))).collect();
        if complete && index.iter().any(|e| e.load(Ordering::Relaxed) & DONE == 0) {
            return Err(Error::cache(path, "complete file with missing tiles"));
        }
        Ok(Self::assemble(path, file, meta, layout, index, complete))
    }

    /// Where the file is now.
    pub fn path(&self) -> &Path {
        self.renamed.get().unwrap_or(&self.path)
    }

    pub fn levels(&self) -> Levels {
        self.layout.levels
    }

    pub fn hist_range(&self) -> HistRange {
        HistRange { lo: self.meta.hist_lo, hi: self.meta.hist_hi }
    }

    pub fn is_complete(&self) -> bool {
        self.complete.load(Ordering::Acquire)
    }

    /// Marks the file complete once it was renamed to `done`.
    pub(crate) fn set_complete(&self, done: &Path) {
        let _ = self.renamed.set(done.to_path_buf());
        self.complete.store(true, Ordering::Release);
    }

    /// Whether tile (tx, ty) of `level` ≥ 1 is stored. Level 0 is the data itself: never stored.
    pub fn has_tile(&self, slice: u64, level: u32, tx: u64, ty: u64) -> bool {
        self.layout
            .data_index(slice, level, tx, ty)
            .and_then(|i| self.index.get(i as usize))
            .is_some_and(|e| e.load(Ordering::Acquire) & DONE != 0)
    }

    /// Number of stored tiles complete so far.
    pub fn tiles_done(&self) -> u64 {
        self.index.iter().filter(|e| e.load(Ordering::Relaxed) & DONE != 0).count() as u64
    }

    /// The tile-table position of a stored tile the builder writes (an error for a tile outside the file).
    fn slot(&self, slice: u64, level: u32, tx: u64, ty: u64) -> Result<u64> {
        self.layout.data_index(slice, level, tx, ty).ok_or_else(|| Error::cache(&self.path, "tile index"))
    }

    fn slot_offset(&self, i: u64) -> u64 {
        self.layout.data_offset + i * self.layout.slot_bytes
    }

    /// Reads a stored tile into `out` (its own width × height, native order): `Ok(Some(offset))` with
    /// the tile's value offset (0 unless the file stores offsets: value = element + offset), `Ok(None)`
    /// when it is not stored yet; an error when its bytes do not match their checksum.
    pub fn read_tile(&self, slice: u64, level: u32, tx: u64, ty: u64, out: &mut RegionBuf) -> Result<Option<f64>> {
        let Some(i) = self.layout.data_index(slice, level, tx, ty) else {
            return Err(Error::request(&self.path, format!("no tile {tx},{ty} at level {level}")));
        };
        let e = self.index.get(i as usize).map_or(0, |e| e.load(Ordering::Acquire));
        if e & DONE == 0 {
            return Ok(None);
        }
        let (_, w, h) = self.layout.tile_dims(level, tx, ty);
        let c = self.layout.channels as usize;
        let truncated = |_| Error::cache(&self.path, "truncated tile");
        let mut head = [0u8; OFFSET_BYTES as usize];
        let head = &mut head[..Layout::head(self.layout.offsets) as usize];
        self.file.read_exact_at(head, self.slot_offset(i)).map_err(truncated)?;
        let dst = out.reset(self.layout.dtype, w as usize, h as usize, c);
        self.file.read_exact_at(dst, self.slot_offset(i) + head.len() as u64).map_err(truncated)?;
        let mut crc = crc32fast::Hasher::new();
        crc.update(head);
        crc.update(dst);
        if crc.finalize() != (e & 0xffff_ffff) as u32 {
            return Err(Error::cache(&self.path, format!("tile {tx},{ty} of level {level} fails its checksum")));
        }
        Ok(Some(<[u8; 8]>::try_from(&*head).map_or(0.0, f64::from_ne_bytes)))
    }

    /// Writes a whole stored tile of a file with offsets: its offset, then its residuals (packed at the
    /// tile's own width); returns the tile's checksum.
    pub(crate) fn write_offset_tile(
        &self,
        slice: u64,
        level: u32,
        (tx, ty): (u64, u64),
        offset: f64,
        residuals: &[f32],
    ) -> Result<u32> {
        let i = self.slot(slice, level, tx, ty)?;
        let mut b = Vec::with_capacity(OFFSET_BYTES as usize + 4 * residuals.len());
        b.extend_from_slice(&offset.to_ne_bytes());
        b.extend_from_slice(bytemuck::cast_slice(residuals));
        self.file.write_all_at(&b, self.slot_offset(i)).map_err(rw_err(&self.path))?;
        Ok(crc32fast::hash(&b))
    }

    /// Writes rows `row0..` of a stored tile (bytes packed at the tile's own width; files without offsets).
    pub(crate) fn write_tile_rows(
        &self,
        slice: u64,
        level: u32,
        tx: u64,
        ty: u64,
        row0: u64,
        bytes: &[u8],
    ) -> Result<()> {
        let i = self.slot(slice, level, tx, ty)?;
        let (row_bytes, _, _) = self.layout.tile_dims(level, tx, ty);
        self.file.write_all_at(bytes, self.slot_offset(i) + row0 * row_bytes).map_err(rw_err(&self.path))
    }

    /// Reads back a stored tile's bytes whatever its state (to checksum it when it is finished; files
    /// without offsets).
    pub(crate) fn tile_bytes(&self, slice: u64, level: u32, tx: u64, ty: u64) -> Result<Vec<u8>> {
        let i = self.slot(slice, level, tx, ty)?;
        let (row_bytes, _, h) = self.layout.tile_dims(level, tx, ty);
        let mut b = vec![0u8; (row_bytes * h) as usize];
        self.file.read_exact_at(&mut b, self.slot_offset(i)).map_err(rw_err(&self.path))?;
        Ok(b)
    }

    /// Records a tile as complete with the checksum of its bytes.
    pub(crate) fn finish_tile(&self, slice: u64, level: u32, tx: u64, ty: u64, crc: u32) -> Result<()> {
        let i = self.slot(slice, level, tx, ty)?;
        let e = DONE | u64::from(crc);
        self.file.write_all_at(&e.to_le_bytes(), self.layout.index_offset + 8 * i).map_err(rw_err(&self.path))?;
        if let Some(a) = self.index.get(i as usize) {
            a.store(e, Ordering::Release);
        }
        Ok(())
    }

    /// Forgets a tile (a resumed build rewrites it).
    pub(crate) fn unfinish_tile(&self, slice: u64, level: u32, tx: u64, ty: u64) -> Result<()> {
        let i = self.slot(slice, level, tx, ty)?;
        self.file.write_all_at(&0u64.to_le_bytes(), self.layout.index_offset + 8 * i).map_err(rw_err(&self.path))?;
        if let Some(a) = self.index.get(i as usize) {
            a.store(0, Ordering::Release);
        }
        Ok(())
    }

    pub(crate) fn write_stats(&self, slice: u64, level: u32, tx: u64, ty: u64, s: &TileStats) -> Result<()> {
        let i = self.layout.stat_index(slice, level, tx, ty).ok_or_else(|| Error::cache(&self.path, "stats index"))?;
        let at = self.layout.stats_offset + i * RECORD_BYTES as u64;
        self.file.write_all_at(&s.to_bytes(), at).map_err(rw_err(&self.path))
    }

    /// The statistics of tile (tx, ty) of `level` (0 = data tiles), once that tile row is done.
    pub fn read_stats(&self, slice: u64, level: u32, tx: u64, ty: u64) -> Result<Option<TileStats>> {
        let Some(i) = self.layout.stat_index(slice, level, tx, ty) else { return Ok(None) };
        let mut b = [0u8; RECORD_BYTES];
        let at = self.layout.stats_offset + i * RECORD_BYTES as u64;
        self.file.read_exact_at(&mut b, at).map_err(|_| Error::cache(&self.path, "truncated statistics"))?;
        let s = TileStats::from_bytes(&b);
        if s.is_none() && self.is_complete() {
            return Err(Error::cache(&self.path, format!("statistics of tile {tx},{ty} level {level} are damaged")));
        }
        Ok(s)
    }

    /// Statistics of a whole slice (the top level's single tile merged over its tiles).
    pub fn slice_stats(&self, slice: u64) -> Result<Option<TileStats>> {
        let top = self.layout.levels.count - 1;
        let g = self.layout.levels.grid(top);
        let mut all = TileStats::default();
        for ty in 0..g.rows() {
            for tx in 0..g.cols() {
                match self.read_stats(slice, top, tx, ty)? {
                    Some(s) => all.merge(&s),
                    None => return Ok(None),
                }
            }
        }
        Ok(Some(all))
    }

    /// Starts writing the file's dirty pages to disk, waiting only for the requests to be queued
    /// (advice; errors ignored: the final [`Store::sync`] reports them).
    pub(crate) fn start_writeback(&self) {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            // SAFETY: sync_file_range on a file descriptor we own; no memory is involved.
            unsafe { libc::sync_file_range(self.file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
        }
    }

    /// Flushes the file to disk.
    pub(crate) fn sync(&self) -> Result<()> {
        self.file.sync_all().map_err(rw_err(&self.path))
    }
}

/// Takes an exclusive advisory lock on `file` (held until every handle of it is closed); false when
/// another process holds it.
pub fn try_lock(file: &File) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a file descriptor we own; no memory is involved.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

/// Native byte order flag for new files.
pub fn native_little() -> bool {
    Endian::NATIVE == Endian::Little
}
