//! Zarr v2/v3 directory stores and OME-Zarr images (through `zarrs`): recognition by directory layout,
//! one array as a chunked source (decoded chunks in [`ChunkedArray`]'s cache), OME multiscales as levels.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use zarrs::array::{Array, ArrayBytes, ArraySubset};
use zarrs::filesystem::FilesystemStore;
use zarrs::plugin::{ExtensionName, ZarrVersion};

use super::chunked::{Chunk, ChunkDecoder, ChunkedArray, Grid, DEFAULT_BUDGET};
use super::registry::FormatSpec;
use super::{ArraySource, Axis, ChannelInfo, Format, ImageShape, OpenSpec, SourceInfo};
use crate::dtype::DType;
use crate::error::{Error, Result};

/// The most bytes one decoded chunk region may take (a larger chunk is refused, not allocated).
const MAX_CHUNK_BYTES: u64 = 1 << 30;

/// Zarr v2 and v3 stores (directories), recognised by their metadata documents.
pub static ZARR: FormatSpec = FormatSpec {
    name: "zarr",
    title: "Zarr store (v2, v3, OME-Zarr)",
    extensions: &["zarr"],
    mime: &["application/x-zarr"],
    magic: &[],
    default_app: false,
    confirm: None,
    dir: Some(is_zarr_dir),
    open: open_zarr_source,
    parts: Some(zarr_parts),
};

/// The arrays of a group that is not an OME image (an array or an image has no parts to choose).
fn zarr_parts(path: &Path) -> Result<Vec<super::registry::Part>> {
    let dir = std::fs::canonicalize(path).map_err(|e| Error::io(path, e))?;
    let (is_array, attrs) = node_kind(path, &dir)?;
    let ome = attrs.get("ome").unwrap_or(&attrs);
    if is_array || ome.get("multiscales").is_some() {
        return Ok(Vec::new());
    }
    Ok(list_arrays(&dir)
        .into_iter()
        .filter(|(_, shape, _, _)| shape.len() >= 2)
        .map(|(name, shape, dtype, _)| super::registry::Part {
            label: format!("{name} {} {dtype}", super::fmt_shape(&shape)),
            member: name,
        })
        .collect())
}

/// Metadata documents that make a directory a Zarr node.
const DOCS: [&str; 4] = ["zarr.json", ".zarray", ".zgroup", ".zattrs"];

/// Whether `p` is a directory holding a Zarr node's metadata.
pub fn is_zarr_dir(p: &Path) -> bool {
    p.is_dir() && DOCS.iter().any(|d| p.join(d).is_file())
}

fn open_zarr_source(spec: &OpenSpec) -> Result<Arc<dyn ArraySource>> {
    match &spec.member {
        // An array of the group by its path inside it (the window's list), as `store.zarr/sub/array` is.
        Some(m) => {
            let rel = Path::new(m.trim_start_matches('/'));
            if rel.components().any(|c| !matches!(c, std::path::Component::Normal(_))) {
                return Err(Error::request(&spec.path, format!("'{m}' is not a path inside the store")));
            }
            open_zarr(&spec.path.join(rel))
        }
        None => open_zarr(&spec.path),
    }
}

/// The store root (the topmost ancestor directory that is still a Zarr node) and the node path of `dir`.
fn split_store(dir: &Path) -> (PathBuf, String) {
    let mut root = dir.to_path_buf();
    while let Some(parent) = root.parent() {
        if parent.as_os_str().is_empty() || !is_zarr_dir(parent) {
            break;
        }
        root = parent.to_path_buf();
    }
    let rel = dir.strip_prefix(&root).map(|r| r.to_string_lossy().into_owned()).unwrap_or_default();
    (root, format!("/{rel}"))
}

fn read_json(path: &Path, file: &Path) -> Result<Option<Value>> {
    match std::fs::read(file) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| Error::bad_input(path, format!("{} is not valid JSON: {e}", file.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(file, e)),
    }
}

/// What the node at `dir` is: `(is_array, attributes)`.
fn node_kind(path: &Path, dir: &Path) -> Result<(bool, Value)> {
    if let Some(v) = read_json(path, &dir.join("zarr.json"))? {
        let kind = v.get("node_type").and_then(Value::as_str).unwrap_or("");
        let attrs = v.get("attributes").cloned().unwrap_or(Value::Null);
        return match kind {
            "array" => Ok((true, attrs)),
            "group" => Ok((false, attrs)),
            k => Err(Error::bad_input(path, format!("zarr.json has node_type '{k}' (neither array nor group)"))),
        };
    }
    let attrs = read_json(path, &dir.join(".zattrs"))?.unwrap_or(Value::Null);
    if dir.join(".zarray").is_file() {
        return Ok((true, attrs));
    }
    if dir.join(".zgroup").is_file() || !attrs.is_null() {
        return Ok((false, attrs));
    }
    Err(Error::bad_input(path, "no Zarr metadata (zarr.json, .zarray or .zgroup) in this directory"))
}

/// Opens the array or OME-Zarr image at `path` (a store or a path inside one).
pub fn open_zarr(path: &Path) -> Result<Arc<dyn ArraySource>> {
    let dir = std::fs::canonicalize(path).map_err(|e| Error::io(path, e))?;
    let (is_array, attrs) = node_kind(path, &dir)?;
    if is_array {
        return Ok(Arc::new(open_array(path, &dir, None)?));
    }
    let ome = attrs.get("ome").unwrap_or(&attrs);
    let Some(ms) = ome.get("multiscales").and_then(|m| m.get(0)) else {
        let arrays = list_arrays(&dir);
        let names: Vec<String> = arrays
            .iter()
            .map(|(name, shape, dtype, _)| format!("{name} {} {dtype}", super::fmt_shape(shape)))
            .collect();
        return Err(Error::bad_input(
            path,
            format!(
                "is a Zarr group, not an array or OME-Zarr image; open one of its arrays: {}",
                if names.is_empty() { "(none)".to_string() } else { names.join(", ") }
            ),
        ));
    };
    open_ome(path, &dir, ome, ms)
}

/// The arrays under the group at `dir` (path inside the group, shape, dtype, chunks), sorted by path.
pub fn list_arrays(dir: &Path) -> Vec<(String, Vec<u64>, String, Vec<u64>)> {
    let mut out = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), 0)];
    while let Some((d, depth)) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if !e.file_type().is_ok_and(|t| t.is_dir()) || !is_zarr_dir(&p) || out.len() >= 1000 {
                continue;
            }
            match node_kind(&p, &p) {
                Ok((true, _)) => {
                    let rel = p.strip_prefix(dir).map(|r| r.to_string_lossy().into_owned()).unwrap_or_default();
                    if let Ok(a) = open_zarrs(&p) {
                        let chunks = a
                            .chunk_shape(&vec![0; a.dimensionality()])
                            .map(|c| c.iter().map(|n| n.get()).collect())
                            .unwrap_or_default();
                        out.push((rel, a.shape().to_vec(), dtype_name(&a), chunks));
                    }
                }
                Ok((false, _)) if depth < 8 => stack.push((p, depth + 1)),
                _ => {}
            }
        }
    }
    out.sort();
    out
}

fn dtype_name(a: &Array<FilesystemStore>) -> String {
    a.data_type().name(ZarrVersion::V3).map(|n| n.into_owned()).unwrap_or_else(|| a.data_type().to_string())
}

fn open_zarrs(dir: &Path) -> std::result::Result<Array<FilesystemStore>, String> {
    let (root, node) = split_store(dir);
    let store = FilesystemStore::new(&root).map_err(|e| e.to_string())?;
    Array::open(Arc::new(store), &node).map_err(|e| e.to_string())
}

fn dtype_of(path: &Path, a: &Array<FilesystemStore>) -> Result<DType> {
    let name = dtype_name(a);
    Ok(match name.as_str() {
        "bool" => DType::Bool,
        "int8" => DType::I8,
        "uint8" => DType::U8,
        "int16" => DType::I16,
        "uint16" => DType::U16,
        "float16" => DType::F16,
        "int32" => DType::I32,
        "uint32" => DType::U32,
        "float32" => DType::F32,
        "int64" => DType::I64,
        "uint64" => DType::U64,
        "float64" => DType::F64,
        other => return Err(Error::bad_input(path, format!("Zarr data type '{other}' is not one vastview reads"))),
    })
}

/// Reads one chunk-sized region of one slice through `zarrs` (missing chunks are the fill value).
struct ZarrDecoder {
    path: PathBuf,
    array: Array<FilesystemStore>,
    /// The shape of the axes outside y, x.
    outer: Vec<u64>,
    grid: Grid,
}

impl ChunkDecoder for ZarrDecoder {
    fn locate(&self, slice: u64) -> (u64, usize) {
        (slice, 0)
    }
    fn decode(&self, group: u64, cy: u64, cx: u64) -> Result<Chunk> {
        let mut ranges = Vec::with_capacity(self.outer.len() + 2);
        ranges.extend(super::axes::unflatten(&self.outer, group).iter().map(|&i| i..i + 1));
        let g = self.grid;
        let (y0, x0) = (cy * g.chunk_h, cx * g.chunk_w);
        let (y1, x1) = ((y0 + g.chunk_h).min(g.height), (x0 + g.chunk_w).min(g.width));
        ranges.push(y0..y1);
        ranges.push(x0..x1);
        let subset = ArraySubset::new_with_ranges(&ranges);
        let bad = |e: String| Error::bad_input(&self.path, format!("reading chunk ({cy}, {cx}) of slice {group}: {e}"));
        let bytes: ArrayBytes<'static> = self.array.retrieve_array_subset(&subset).map_err(|e| bad(e.to_string()))?;
        let bytes = bytes.into_fixed().map_err(|e| bad(e.to_string()))?.into_owned();
        let (w, h) = ((x1 - x0) as usize, (y1 - y0) as usize);
        if bytes.len() != w * h * self.array.data_type().fixed_size().unwrap_or(0) {
            return Err(bad("the decoded chunk has the wrong size".into()));
        }
        Ok(Chunk { bytes, row_pixels: w, rows: h, samples: 1 })
    }
}

/// Axis names, units and scales the metadata gives: OME `axes` + the dataset's scale, else v3
/// `dimension_names`, else numpy's defaults.
fn axes_of(a: &Array<FilesystemStore>, shape: &[u64], ome_axes: Option<&Value>, scale: Option<&[f64]>) -> Vec<Axis> {
    let mut axes = super::axes::default_axes(shape, false);
    if let Some(Value::Array(oa)) = ome_axes {
        for (ax, o) in axes.iter_mut().zip(oa) {
            match o {
                Value::String(n) => ax.name = n.clone(),
                o => {
                    if let Some(n) = o.get("name").and_then(Value::as_str) {
                        ax.name = n.to_string();
                    }
                    ax.unit = o.get("unit").and_then(Value::as_str).map(str::to_string);
                }
            }
        }
    } else if let Some(names) = a.dimension_names() {
        for (ax, n) in axes.iter_mut().zip(names) {
            if let Some(n) = n {
                ax.name = n.to_string();
            }
        }
    }
    if let Some(s) = scale {
        for (ax, &v) in axes.iter_mut().zip(s) {
            ax.scale = Some(v);
        }
    }
    axes
}

/// What OME metadata adds to one level's source.
#[derive(Default)]
struct OmeMeta {
    axes: Option<Value>,
    scale: Option<Vec<f64>>,
    channels: Vec<ChannelInfo>,
    member: Option<String>,
    flavour: Option<String>,
}

type ZarrArray = ChunkedArray<ZarrDecoder>;

fn open_array(path: &Path, dir: &Path, ome: Option<OmeMeta>) -> Result<ZarrArray> {
    let a = open_zarrs(dir).map_err(|e| Error::bad_input(path, e))?;
    let dtype = dtype_of(path, &a)?;
    let shape = a.shape().to_vec();
    let n = shape.len();
    if n < 2 {
        return Err(Error::bad_input(path, format!("the array has {n} dimension(s); vastview shows 2 or more")));
    }
    let esz = dtype.size() as u64;
    if super::shape_bytes(&shape, esz).is_none() {
        return Err(Error::bad_input(path, format!("shape {shape:?} is more bytes than a 64-bit size can hold")));
    }
    let chunks: Vec<u64> = a
        .chunk_shape(&vec![0; n])
        .map_err(|e| Error::bad_input(path, e.to_string()))?
        .iter()
        .map(|c| c.get())
        .collect();
    let (ch, cw) = (chunks[n - 2].min(shape[n - 2]).max(1), chunks[n - 1].min(shape[n - 1]).max(1));
    if ch.saturating_mul(cw).saturating_mul(esz) > MAX_CHUNK_BYTES {
        return Err(Error::bad_input(
            path,
            format!(
                "chunks of {cw}x{ch} pixels are more than the {} MiB vastview decodes at once",
                MAX_CHUNK_BYTES >> 20
            ),
        ));
    }
    let outer = shape[..n - 2].to_vec();
    let slices: u64 = outer.iter().product();
    let (height, width) = (shape[n - 2], shape[n - 1]);
    let image = ImageShape { slices, height, width, channels: 1 };
    let version = match a.metadata() {
        zarrs::array::ArrayMetadata::V3(_) => "v3",
        zarrs::array::ArrayMetadata::V2(_) => "v2",
    };
    let ome = ome.unwrap_or_default();
    let format = Format { name: "zarr", version: Some(version.to_string()), flavour: ome.flavour.clone() };
    let mut info = SourceInfo::basic(path.to_path_buf(), format, shape.clone(), dtype, image);
    info.axes = axes_of(&a, &shape, ome.axes.as_ref(), ome.scale.as_deref());
    if info.axes.iter().any(|ax| ax.is_channel()) {
        info.channels = ome.channels;
    }
    info.member = ome.member;
    info.details.push(("chunks".into(), format!("{chunks:?}")));
    info.details.push(("codecs".into(), codec_names(&a)));
    let grid = Grid { width, height, chunk_w: cw, chunk_h: ch };
    let decoder = ZarrDecoder { path: path.to_path_buf(), array: a, outer, grid };
    Ok(ChunkedArray::new(info, grid, decoder, DEFAULT_BUDGET))
}

fn codec_names(a: &Array<FilesystemStore>) -> String {
    let m = serde_json::to_value(a.metadata()).unwrap_or(Value::Null);
    let v3 = m.get("codecs").and_then(Value::as_array).map(|cs| {
        cs.iter().filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_string)).collect::<Vec<_>>()
    });
    let v2 = || {
        let mut v: Vec<String> = Vec::new();
        if let Some(fs) = m.get("filters").and_then(Value::as_array) {
            v.extend(fs.iter().filter_map(|f| f.get("id").and_then(Value::as_str).map(str::to_string)));
        }
        if let Some(c) = m.get("compressor").and_then(|c| c.get("id")).and_then(Value::as_str) {
            v.push(c.to_string());
        }
        v
    };
    let v = v3.unwrap_or_else(v2);
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// The `scale` of a dataset's (or the multiscale's) coordinateTransformations.
fn scale_of(ct: Option<&Value>) -> Option<Vec<f64>> {
    ct?.as_array()?
        .iter()
        .find(|t| t.get("type").and_then(Value::as_str) == Some("scale"))
        .and_then(|t| t.get("scale")?.as_array()?.iter().map(Value::as_f64).collect::<Option<Vec<f64>>>())
}

fn omero_channels(ome: &Value) -> Vec<ChannelInfo> {
    let Some(cs) = ome.get("omero").and_then(|o| o.get("channels")).and_then(Value::as_array) else {
        return Vec::new();
    };
    cs.iter()
        .map(|c| {
            let color = c.get("color").and_then(Value::as_str).and_then(|s| {
                let v = u32::from_str_radix(s.trim_start_matches('#'), 16).ok()?;
                (s.trim_start_matches('#').len() == 6).then_some([(v >> 16) as u8, (v >> 8) as u8, v as u8])
            });
            let window = c.get("window").and_then(|w| Some((w.get("start")?.as_f64()?, w.get("end")?.as_f64()?)));
            ChannelInfo { name: c.get("label").and_then(Value::as_str).map(str::to_string), color, window }
        })
        .collect()
}

fn open_ome(path: &Path, dir: &Path, ome: &Value, ms: &Value) -> Result<Arc<dyn ArraySource>> {
    let version = ome.get("version").or_else(|| ms.get("version")).and_then(Value::as_str).unwrap_or("?");
    let datasets = ms
        .get("datasets")
        .and_then(Value::as_array)
        .filter(|d| !d.is_empty())
        .ok_or_else(|| Error::bad_input(path, "OME-Zarr multiscales has no datasets"))?;
    let global = scale_of(ms.get("coordinateTransformations"));
    let channels = omero_channels(ome);
    let mut levels: Vec<ZarrArray> = Vec::new();
    for (k, d) in datasets.iter().enumerate() {
        let rel = d
            .get("path")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::bad_input(path, format!("OME-Zarr dataset {k} has no path")))?;
        let sub = dir.join(rel);
        let sub = std::fs::canonicalize(&sub).map_err(|e| Error::bad_input(path, format!("dataset '{rel}': {e}")))?;
        if !sub.starts_with(dir) {
            return Err(Error::bad_input(path, format!("OME-Zarr dataset path '{rel}' leaves the image's directory")));
        }
        let mut scale = scale_of(d.get("coordinateTransformations"));
        if let (Some(s), Some(g)) = (scale.as_mut(), global.as_ref()) {
            for (a, b) in s.iter_mut().zip(g) {
                *a *= b;
            }
        }
        let meta = OmeMeta {
            axes: ms.get("axes").cloned(),
            scale,
            channels: channels.clone(),
            member: (k > 0).then(|| format!("level {k}")),
            flavour: Some(format!("OME-Zarr {version}")),
        };
        levels.push(open_array(path, &sub, Some(meta))?);
    }
    let mut it = levels.into_iter();
    let Some(base) = it.next() else { return Err(Error::bad_input(path, "OME-Zarr multiscales has no datasets")) };
    let im = base.info().image;
    let native = it
        .filter_map(|l| {
            let li = l.info();
            let k = super::level_number((im.width, im.height), (li.image.width, li.image.height))?;
            (li.image.slices == im.slices && li.dtype == base.info().dtype)
                .then(|| (k, Arc::new(l) as Arc<dyn ArraySource>))
        })
        .collect();
    Ok(Arc::new(base.with_native_levels(native)))
}
