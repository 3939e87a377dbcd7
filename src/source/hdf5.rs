//! HDF5 files, NetCDF-4 included (it is HDF5 inside), through the pure-Rust `hdf5-reader`: datasets listed
//! and chosen by path (`file.h5:/group/ds`, `--dataset`), contiguous ones memory-mapped and read in place,
//! chunked (or compact, external) ones read a chunk-sized hyperslab at a time through [`ChunkedArray`]'s
//! decoded-chunk cache; dimension names, coordinates and CF attributes through [`super::netcdf`].

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hdf5_reader::messages::HdfMessage;
use hdf5_reader::storage::DynStorage;
use hdf5_reader::{ByteOrder, Dataset, Datatype, FileStorage, Hdf5File, OpenOptions, SliceInfo, SliceInfoElem};

use super::chunked::{Chunk, ChunkDecoder, ChunkedArray, Grid, DEFAULT_BUDGET};
use super::mapped::MappedArray;
use super::registry::{FormatSpec, Magic};
use super::{ArraySource, Format, ImageShape, OpenSpec, SourceInfo};
use crate::dtype::{DType, Endian, Order};
use crate::error::{Error, Result};

/// The HDF5 signature; the library looks for it at 0, 512, 1024, 2048, … (after a user block).
const SIGNATURE: &[u8] = b"\x89HDF\r\n\x1a\n";

/// HDF5 files and NetCDF-4 files (HDF5 with NetCDF conventions).
pub static HDF5: FormatSpec = FormatSpec {
    name: "hdf5",
    title: "HDF5 / NetCDF-4",
    extensions: &["h5", "hdf5", "he5", "hdf", "nc4", "h5ad"],
    mime: &["application/x-hdf5", "application/x-hdf", "application/x-netcdf"],
    magic: &[
        Magic { offset: 0, bytes: SIGNATURE },
        Magic { offset: 512, bytes: SIGNATURE },
        Magic { offset: 1024, bytes: SIGNATURE },
        Magic { offset: 2048, bytes: SIGNATURE },
    ],
    default_app: false,
    confirm: None,
    dir: None,
    open: open_hdf5_source,
    parts: Some(hdf5_parts),
};

/// The image datasets of the file.
fn hdf5_parts(path: &Path) -> Result<Vec<super::registry::Part>> {
    let (h5, _, _) = open_file(path)?;
    Ok(list(path, &h5)?
        .into_iter()
        .filter(Entry::is_image)
        .map(|e| super::registry::Part { label: e.describe(), member: e.path })
        .collect())
}

/// The most bytes one decoded chunk-sized read may take (a larger chunk is refused, not allocated).
const MAX_CHUNK_BYTES: u64 = 1 << 30;
/// Rows per read for datasets without chunks of their own (compact, external): about this many bytes.
const STRIP_BYTES: u64 = 4 << 20;
/// The most datasets a listing walks (a file of millions of datasets is listed in part).
const MAX_LISTED: usize = 4096;
/// The deepest group nesting a listing walks.
const MAX_DEPTH: usize = 32;

/// HDF5 filters `hdf5-reader` decodes: deflate, shuffle, fletcher32, szip, n-bit, scale-offset, LZ4.
const FILTERS: [(u16, &str); 7] =
    [(1, "deflate"), (2, "shuffle"), (3, "fletcher32"), (4, "szip"), (5, "nbit"), (6, "scaleoffset"), (32004, "lz4")];

/// Names of registered third-party filters people meet, for the error that refuses them.
fn filter_name(id: u16) -> &'static str {
    match id {
        32000 => "LZF",
        32001 => "Blosc",
        32008 => "bitshuffle",
        32013 => "zfp",
        32015 => "Zstandard",
        32017 => "SZ",
        307 => "bzip2",
        _ => FILTERS.iter().find(|f| f.0 == id).map_or("unregistered", |f| f.1),
    }
}

/// One dataset of a file, as `info` lists it.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Absolute path inside the file (`/group/ds`).
    pub path: String,
    pub shape: Vec<u64>,
    /// The element type in words (`uint16`, `string`, `compound`).
    pub dtype: String,
    /// The dtype vastview shows it as, when it can.
    pub numeric: Option<DType>,
}

impl Entry {
    /// Whether this dataset is an image vastview can show (numeric, 2 or more dimensions).
    pub fn is_image(&self) -> bool {
        self.numeric.is_some() && self.shape.len() >= 2
    }
    pub fn describe(&self) -> String {
        format!("{} {} {}", self.path, super::fmt_shape(&self.shape), self.dtype)
    }
}

fn bad(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::bad_input(path, e.to_string())
}

/// The dtype of an HDF5 datatype and its byte order, when vastview reads it.
fn dtype_of(t: &Datatype) -> Option<(DType, ByteOrder)> {
    Some(match t {
        Datatype::FixedPoint { size, signed, byte_order } => {
            let d = match (size, signed) {
                (1, true) => DType::I8,
                (1, false) => DType::U8,
                (2, true) => DType::I16,
                (2, false) => DType::U16,
                (4, true) => DType::I32,
                (4, false) => DType::U32,
                (8, true) => DType::I64,
                (8, false) => DType::U64,
                _ => return None,
            };
            (d, *byte_order)
        }
        Datatype::FloatingPoint { size, byte_order } => {
            let d = match size {
                2 => DType::F16,
                4 => DType::F32,
                8 => DType::F64,
                _ => return None,
            };
            (d, *byte_order)
        }
        // h5py's bool is an enum over int8; other enums show their stored integers.
        Datatype::Enum { base, .. } => return dtype_of(base),
        _ => return None,
    })
}

fn type_words(t: &Datatype) -> String {
    match dtype_of(t) {
        Some((d, _)) => d.name().to_string(),
        None => match t {
            Datatype::String { .. } => "string".into(),
            Datatype::VarLen { kind: hdf5_reader::VarLenKind::String, .. } => "string".into(),
            Datatype::VarLen { .. } => "variable-length".into(),
            Datatype::Compound { .. } => "compound".into(),
            Datatype::Array { .. } => "array".into(),
            Datatype::Opaque { .. } => "opaque".into(),
            Datatype::Reference { .. } => "reference".into(),
            Datatype::Bitfield { .. } => "bitfield".into(),
            _ => "unsupported".into(),
        },
    }
}

/// Opens `path` as HDF5 with reads through `pread` (no map the library could fault on; the one map vastview
/// makes for contiguous data is guarded).
pub fn open_file(path: &Path) -> Result<(Hdf5File, std::fs::File, u64)> {
    let (file, len) = super::open_file(path)?;
    let dup = file.try_clone().map_err(|e| Error::io(path, e))?;
    let storage: DynStorage = Arc::new(FileStorage::from_file(dup).map_err(|e| bad(path, e))?);
    let options = OpenOptions::default().with_max_chunk_bytes(MAX_CHUNK_BYTES as usize);
    let h5 = Hdf5File::from_storage_with_options(storage, options)
        .map_err(|e| bad(path, format!("not a readable HDF5 file: {e}")))?;
    Ok((h5, file, len))
}

/// Every dataset below the root (at most [`MAX_LISTED`]), in file order, groups depth first; a group
/// reached twice (hard links, loops) is walked once.
pub fn list(path: &Path, h5: &Hdf5File) -> Result<Vec<Entry>> {
    let root = h5.root_group().map_err(|e| bad(path, format!("reading the root group: {e}")))?;
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut stack = vec![(root, String::new(), 0usize)];
    while let Some((g, prefix, depth)) = stack.pop() {
        if !seen.insert(g.address()) || depth > MAX_DEPTH {
            continue;
        }
        let Ok((groups, datasets)) = g.member_names() else { continue };
        for name in datasets {
            if out.len() >= MAX_LISTED {
                return Ok(out);
            }
            let path = format!("{prefix}/{name}");
            if let Ok(ds) = g.dataset(&name) {
                let numeric = dtype_of(ds.dtype()).map(|d| d.0);
                out.push(Entry { path, shape: ds.shape().to_vec(), dtype: type_words(ds.dtype()), numeric });
            }
        }
        for name in groups.into_iter().rev() {
            if let Ok(sub) = g.group(&name) {
                stack.push((sub, format!("{prefix}/{name}"), depth + 1));
            }
        }
    }
    Ok(out)
}

/// The dataset `member` names (with or without the leading `/`), or, with none, the first image dataset
/// in the file; the second value says why that one was chosen.
fn select(path: &Path, entries: &[Entry], member: Option<&str>) -> Result<(Entry, String)> {
    let listing = || {
        let shown: Vec<String> = entries.iter().take(40).map(Entry::describe).collect();
        let more = if entries.len() > 40 { format!(" and {} more", entries.len() - 40) } else { String::new() };
        if shown.is_empty() {
            "(none)".to_string()
        } else {
            format!("{}{more}", shown.join(", "))
        }
    };
    match member {
        Some(m) => {
            let want = format!("/{}", m.trim_start_matches('/'));
            let e = entries.iter().find(|e| e.path == want).ok_or_else(|| {
                Error::request(path, format!("there is no dataset '{want}' in the file; it has {}", listing()))
            })?;
            if !e.is_image() {
                let why = if e.numeric.is_none() {
                    format!("its elements are {}", e.dtype)
                } else {
                    format!("it has {} dimension(s)", e.shape.len())
                };
                return Err(Error::bad_input(
                    path,
                    format!(
                        "dataset '{want}' {} {} is not an image ({why}; vastview shows numeric arrays of 2 or more dimensions)",
                        super::fmt_shape(&e.shape),
                        e.dtype
                    ),
                ));
            }
            Ok((e.clone(), String::new()))
        }
        None => {
            let images: Vec<&Entry> = entries.iter().filter(|e| e.is_image()).collect();
            let Some(first) = images.first() else {
                return Err(Error::bad_input(
                    path,
                    format!("has no numeric dataset of 2 or more dimensions to show; its datasets: {}", listing()),
                ));
            };
            let why = if images.len() == 1 {
                " (the file's one image dataset)".to_string()
            } else {
                format!(" (the first of {} image datasets; choose another with FILE:/path or --dataset)", images.len())
            };
            Ok(((*first).clone(), why))
        }
    }
}

fn open_hdf5_source(spec: &OpenSpec) -> Result<Arc<dyn ArraySource>> {
    open_hdf5(&spec.path, spec.member.as_deref())
}

/// Opens dataset `member` of the HDF5 file `path` (or the first image dataset), with NetCDF-4 dimension
/// names, coordinates and CF value conventions where the file has them.
pub fn open_hdf5(path: &Path, member: Option<&str>) -> Result<Arc<dyn ArraySource>> {
    let (h5, file, len) = open_file(path)?;
    let entries = list(path, &h5)?;
    let (entry, why) = select(path, &entries, member)?;
    let ds = h5.dataset(&entry.path).map_err(|e| bad(path, format!("dataset '{}': {e}", entry.path)))?;
    let (dtype, order) = dtype_of(ds.dtype()).ok_or_else(|| bad(path, "unsupported element type"))?;
    let shape = ds.shape().to_vec();
    let n = shape.len();
    let esz = dtype.size() as u64;
    if super::shape_bytes(&shape, esz).is_none() {
        return Err(bad(path, format!("dataset shape {shape:?} is more bytes than a 64-bit size can hold")));
    }
    let slices: u64 = shape[..n - 2].iter().product();
    let image = ImageShape { slices, height: shape[n - 2], width: shape[n - 1], channels: 1 };
    let nc = is_netcdf4(&h5, &ds).then(|| super::netcdf::nc4_metadata(path, &entry.path)).flatten();
    let flavour = if nc.is_some() { "NetCDF-4" } else { "HDF5" };
    let format = Format { name: "hdf5", version: None, flavour: Some(flavour.to_string()) };
    let mut info = SourceInfo::basic(path.to_path_buf(), format, shape.clone(), dtype, image);
    info.file_size = len;
    info.member = Some(entry.path.clone());
    info.order = Order::C;
    info.details.push(("dataset".into(), format!("{}{why}", entry.path)));
    let (layout, filters) = layout_of(&h5, &ds);
    info.details.push(("layout".into(), layout.describe(&filters)));
    if let Some(f) = filters.iter().find(|&&f| !FILTERS.iter().any(|k| k.0 == f)) {
        return Err(bad(
            path,
            format!(
                "dataset '{}' is compressed with HDF5 filter {f} ({}), which vastview cannot decode (it reads {})",
                entry.path,
                filter_name(*f),
                FILTERS.iter().map(|f| f.1).collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    if entries.len() > 1 {
        let all: Vec<String> = entries.iter().take(40).map(Entry::describe).collect();
        let more = if entries.len() > 40 { format!(" and {} more", entries.len() - 40) } else { String::new() };
        info.details.push(("datasets".into(), format!("{}: {}{more}", entries.len(), all.join(", "))));
    }
    let cf = match &nc {
        Some(m) => {
            info.axes = m.axes(&shape);
            m.cf.clone()
        }
        None => super::netcdf::Cf::from_hdf5(&ds),
    };
    cf.add_details(&mut info);
    let src: Arc<dyn ArraySource> = match layout {
        Layout::Contiguous { address, size } if size == shape.iter().product::<u64>() * esz && dtype != DType::F16 => {
            info.endian = if order == ByteOrder::BigEndian { Endian::Big } else { Endian::Little };
            let at = address + h5.superblock().base_address;
            info.header_size = at;
            Arc::new(MappedArray::new(&file, info, at)?)
        }
        _ if dtype == DType::F16 => {
            return Err(bad(
                path,
                format!(
                    "dataset '{}' is float16 stored with chunks; vastview reads float16 HDF5 data only when contiguous",
                    entry.path
                ),
            ))
        }
        _ => {
            let (cw, ch) = match ds.chunks() {
                Some(c) => (
                    u64::from(c[n - 1]).clamp(1, shape[n - 1].max(1)),
                    u64::from(c[n - 2]).clamp(1, shape[n - 2].max(1)),
                ),
                None => {
                    (shape[n - 1].max(1), (STRIP_BYTES / (shape[n - 1].max(1) * esz)).clamp(1, shape[n - 2].max(1)))
                }
            };
            if cw.saturating_mul(ch).saturating_mul(esz) > MAX_CHUNK_BYTES {
                return Err(bad(
                    path,
                    format!(
                        "chunks of {cw}x{ch} pixels are more than the {} MiB vastview decodes at once",
                        MAX_CHUNK_BYTES >> 20
                    ),
                ));
            }
            if let Some(c) = ds.chunks() {
                info.details.push(("chunks".into(), format!("{c:?}")));
            }
            let grid = Grid { width: image.width, height: image.height, chunk_w: cw, chunk_h: ch };
            let outer = shape[..n - 2].to_vec();
            let decoder = SlabDecoder { path: path.to_path_buf(), ds, dtype, outer, grid };
            Arc::new(ChunkedArray::new(info, grid, decoder, DEFAULT_BUDGET))
        }
    };
    Ok(super::netcdf::with_cf(src, &cf))
}

/// Whether the file follows NetCDF-4 conventions (its root has `_NCProperties`) or the dataset has
/// dimension scales attached (`DIMENSION_LIST`, as h5py's `dims` and netCDF write): then the NetCDF layer
/// names the axes and finds their coordinates.
fn is_netcdf4(h5: &Hdf5File, ds: &Dataset) -> bool {
    ds.attribute("DIMENSION_LIST").is_ok() || h5.root_group().is_ok_and(|r| r.attribute("_NCProperties").is_ok())
}

/// How a dataset's elements are stored.
enum Layout {
    Contiguous {
        address: u64,
        size: u64,
    },
    Chunked,
    /// Compact (in the object header), unallocated or external: read through the library.
    Other(&'static str),
}

impl Layout {
    fn describe(&self, filters: &[u16]) -> String {
        let f = if filters.is_empty() {
            String::new()
        } else {
            format!(", filters {}", filters.iter().map(|&f| filter_name(f)).collect::<Vec<_>>().join(", "))
        };
        match self {
            Layout::Contiguous { .. } => "contiguous (memory-mapped, read in place)".to_string(),
            Layout::Chunked => format!("chunked{f}"),
            Layout::Other(w) => w.to_string(),
        }
    }
}

/// The dataset's storage layout and filter ids, from its object header.
fn layout_of(h5: &Hdf5File, ds: &Dataset) -> (Layout, Vec<u16>) {
    let Ok(header) = h5.get_or_parse_header(ds.address()) else { return (Layout::Other("unknown"), Vec::new()) };
    let mut layout = Layout::Other("unknown");
    let mut filters = Vec::new();
    let mut external = false;
    for m in &header.messages {
        match m {
            HdfMessage::DataLayout(l) => {
                layout = match &l.layout {
                    hdf5_reader::messages::layout::DataLayout::Contiguous { address, size } => {
                        if *address == u64::MAX || *address == u64::from(u32::MAX) && *size == 0 {
                            Layout::Other("contiguous, not yet written (the fill value)")
                        } else {
                            Layout::Contiguous { address: *address, size: *size }
                        }
                    }
                    hdf5_reader::messages::layout::DataLayout::Chunked { .. } => Layout::Chunked,
                    hdf5_reader::messages::layout::DataLayout::Compact { .. } => {
                        Layout::Other("compact (in the header)")
                    }
                }
            }
            HdfMessage::FilterPipeline(p) => filters = p.filters.iter().map(|f| f.id).collect(),
            HdfMessage::ExternalFiles(_) => external = true,
            _ => {}
        }
    }
    if external {
        layout = Layout::Other("external files");
    }
    (layout, filters)
}

/// Reads chunk-sized hyperslabs of one dataset (the library finds and decodes just the chunks they cover).
struct SlabDecoder {
    path: PathBuf,
    ds: Dataset,
    dtype: DType,
    /// The shape of the axes outside y, x.
    outer: Vec<u64>,
    grid: Grid,
}

macro_rules! slab_bytes {
    ($ds:expr, $sel:expr, $t:ty) => {{
        let a = $ds.read_slice::<$t>($sel).map_err(|e| e.to_string())?;
        match a.as_slice() {
            Some(s) => bytemuck::cast_slice::<$t, u8>(s).to_vec(),
            None => a.iter().flat_map(|v| v.to_ne_bytes()).collect(),
        }
    }};
}

impl SlabDecoder {
    fn read(&self, sel: &SliceInfo) -> std::result::Result<Vec<u8>, String> {
        let ds = &self.ds;
        Ok(match self.dtype {
            DType::Bool | DType::U8 => slab_bytes!(ds, sel, u8),
            DType::I8 => slab_bytes!(ds, sel, i8),
            DType::U16 => slab_bytes!(ds, sel, u16),
            DType::I16 => slab_bytes!(ds, sel, i16),
            DType::U32 => slab_bytes!(ds, sel, u32),
            DType::I32 => slab_bytes!(ds, sel, i32),
            DType::U64 => slab_bytes!(ds, sel, u64),
            DType::I64 => slab_bytes!(ds, sel, i64),
            DType::F32 => slab_bytes!(ds, sel, f32),
            DType::F64 => slab_bytes!(ds, sel, f64),
            DType::F16 => return Err("float16 chunks are not read".into()),
        })
    }
}

impl ChunkDecoder for SlabDecoder {
    fn locate(&self, slice: u64) -> (u64, usize) {
        (slice, 0)
    }
    fn decode(&self, group: u64, cy: u64, cx: u64) -> Result<Chunk> {
        let mut sel = Vec::with_capacity(self.outer.len() + 2);
        sel.extend(super::axes::unflatten(&self.outer, group).iter().map(|&i| SliceInfoElem::Index(i)));
        let g = self.grid;
        let (y0, x0) = (cy * g.chunk_h, cx * g.chunk_w);
        let (y1, x1) = ((y0 + g.chunk_h).min(g.height), (x0 + g.chunk_w).min(g.width));
        sel.push(SliceInfoElem::Slice { start: y0, end: y1, step: 1 });
        sel.push(SliceInfoElem::Slice { start: x0, end: x1, step: 1 });
        let bytes = self.read(&SliceInfo { selections: sel }).map_err(|e| {
            Error::bad_input(
                &self.path,
                format!("reading chunk ({cy}, {cx}) of slice {group} of '{}': {e}", self.ds.name()),
            )
        })?;
        let (w, h) = ((x1 - x0) as usize, (y1 - y0) as usize);
        if bytes.len() != w * h * self.dtype.size() {
            return Err(Error::bad_input(&self.path, "a decoded chunk has the wrong size"));
        }
        Ok(Chunk { bytes, row_pixels: w, rows: h, samples: 1 })
    }
}
