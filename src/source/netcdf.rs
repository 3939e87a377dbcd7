//! NetCDF: classic files (CDF-1, CDF-2 64-bit offset, CDF-5) through the pure-Rust `netcdf-reader`, their
//! variables memory-mapped in place (record variables record by record); and the NetCDF conventions both
//! classic and NetCDF-4 files share: dimension names as axis names, coordinate variables as the cursor
//! readout's coordinates, CF `_FillValue`/`missing_value` as NaN and `scale_factor`/`add_offset` as the
//! value scaling.

use std::path::Path;
use std::sync::Arc;

use netcdf_reader::{NcAttrValue, NcFile, NcFormat, NcType, NcVariable};

use super::mapped::MappedArray;
use super::registry::{FormatSpec, Magic};
use super::scaled::{MaskedFloat, PhysicalFloat};
use super::{ArraySource, Axis, Format, ImageShape, OpenSpec, Scaling, SourceInfo};
use crate::dtype::{DType, Endian, Order};
use crate::error::{Error, Result};

/// Classic NetCDF files (NetCDF-4 files are HDF5 inside and open through [`super::hdf5`]).
pub static NETCDF: FormatSpec = FormatSpec {
    name: "netcdf",
    title: "NetCDF classic (CDF-1, CDF-2, CDF-5)",
    extensions: &["nc", "cdf", "netcdf"],
    mime: &["application/x-netcdf"],
    magic: &[
        Magic { offset: 0, bytes: b"CDF\x01" },
        Magic { offset: 0, bytes: b"CDF\x02" },
        Magic { offset: 0, bytes: b"CDF\x05" },
    ],
    default_app: true,
    confirm: None,
    dir: None,
    open: open_netcdf_source,
    parts: Some(netcdf_parts),
};

/// The image variables of the file.
fn netcdf_parts(path: &Path) -> Result<Vec<super::registry::Part>> {
    let (nc, _, _) = open_storage(path)?;
    let vars = nc.variables().map_err(|e| Error::bad_input(path, e.to_string()))?;
    Ok(vars
        .iter()
        .filter(|v| is_image(v))
        .map(|v| super::registry::Part { label: describe(v), member: v.name.clone() })
        .collect())
}

fn describe(v: &NcVariable) -> String {
    format!("{} {} {}", v.name, super::fmt_shape(&v.shape()), type_words(v.dtype()))
}

fn is_image(v: &NcVariable) -> bool {
    v.ndim() >= 2 && dtype_of(v.dtype()).is_some()
}

/// The longest coordinate variable read for the cursor readout (values, not bytes).
const MAX_COORDS: u64 = 1 << 24;

/// The CF value conventions of one variable.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cf {
    /// `_FillValue` then `missing_value` entries, in stored units.
    pub fill: Vec<f64>,
    /// `scale_factor`, and whether the attribute is float32 (then unpacking is float32 arithmetic, as
    /// numpy does it for netCDF4-python).
    pub scale: Option<(f64, bool)>,
    pub offset: Option<(f64, bool)>,
    pub units: Option<String>,
    pub long_name: Option<String>,
}

fn attr_f64s(v: &NcAttrValue) -> Option<(Vec<f64>, bool)> {
    Some((v.as_f64_vec()?, matches!(v, NcAttrValue::Floats(_))))
}

impl Cf {
    /// The conventions from a NetCDF variable's attributes.
    pub fn from_nc(var: &NcVariable) -> Cf {
        let get = |n: &str| var.attribute(n).and_then(|a| attr_f64s(&a.value));
        Cf::from_attrs(get, |n| var.attribute(n).and_then(|a| a.value.as_string()))
    }

    /// The conventions from an HDF5 dataset's attributes (files written by h5py with CF attributes).
    pub fn from_hdf5(ds: &hdf5_reader::Dataset) -> Cf {
        let get = |n: &str| {
            let a = ds.attribute(n).ok()?;
            let f32 = matches!(a.datatype, hdf5_reader::Datatype::FloatingPoint { size: 4, .. });
            a.read_1d::<f64>().ok().or_else(|| a.read_as_f64().ok().map(|v| vec![v])).map(|v| (v, f32))
        };
        Cf::from_attrs(get, |n| ds.attribute(n).ok().and_then(|a| a.read_string().ok()))
    }

    /// The conventions from an attribute reader: `get` gives a numeric attribute's values and whether it
    /// is float32, `text` a text attribute.
    fn from_attrs(get: impl Fn(&str) -> Option<(Vec<f64>, bool)>, text: impl Fn(&str) -> Option<String>) -> Cf {
        let one = |n: &str| get(n).and_then(|(v, f)| v.first().map(|&x| (x, f)));
        let mut fill: Vec<f64> = get("_FillValue").map(|v| v.0).unwrap_or_default();
        fill.extend(get("missing_value").map(|v| v.0).unwrap_or_default());
        Cf {
            fill,
            scale: one("scale_factor"),
            offset: one("add_offset"),
            units: text("units"),
            long_name: text("long_name"),
        }
    }
}

impl Cf {
    /// `long_name` and `units` as `info` lines.
    pub fn add_details(&self, info: &mut SourceInfo) {
        if let Some(l) = &self.long_name {
            info.details.push(("long_name".into(), l.clone()));
        }
        if let Some(u) = &self.units {
            info.details.push(("units".into(), u.clone()));
        }
    }
}

/// `src` as the CF attributes say its values are meant: float data with fill values gets them as NaN
/// (same dtype); packed integers (`scale_factor`/`add_offset`) get the scaling as a display transform,
/// or, with a fill value, are unpacked to float with the fill as NaN (what netCDF4-python returns).
pub fn with_cf(src: Arc<dyn ArraySource>, cf: &Cf) -> Arc<dyn ArraySource> {
    let info = src.info();
    let dtype = info.dtype;
    let float = matches!(dtype, DType::F32 | DType::F64);
    let fills: Vec<f64> = cf.fill.iter().copied().filter(|f| !f.is_nan()).collect();
    let g = crate::numfmt::format_f64;
    if float && cf.scale.is_none() && cf.offset.is_none() {
        if fills.is_empty() {
            return src;
        }
        let list = fills.iter().map(|&f| g(f)).collect::<Vec<_>>().join(", ");
        return Arc::new(MaskedFloat::new(src, fills, format!("_FillValue/missing_value {list} shown as NaN")));
    }
    let (scale, s32) = cf.scale.unwrap_or((1.0, true));
    let (offset, o32) = cf.offset.unwrap_or((0.0, true));
    let packed = cf.scale.is_some() || cf.offset.is_some();
    let small_int = dtype.size() <= 2 && !float;
    let physical = match (packed, s32 && o32) {
        (true, true) => DType::F32,
        (true, false) => DType::F64,
        (false, _) if small_int => DType::F32,
        (false, _) => DType::F64,
    };
    let blank = fills.iter().find(|f| f.fract() == 0.0 && f.abs() < 9.2e18).map(|&f| f as i64);
    let scaling = Scaling { scale, offset, blank, physical };
    if float || blank.is_none() {
        if !packed {
            return src;
        }
        // Packed data without a fill value: the GPU keeps the stored integers; the display maps them.
        let mut info = src.info().clone();
        info.scaling = Some(scaling);
        return Arc::new(Rescaled { inner: src, info });
    }
    let num = |v: f64, single: bool| if single { crate::numfmt::format_f32(v as f32) } else { g(v) };
    let what = if packed {
        format!("unpacked as stored x {} + {}, ", num(scale, s32), num(offset, o32))
    } else {
        String::new()
    };
    let note = format!(
        "{} {what}with _FillValue {} as NaN (stored {} converted on read, as netCDF4-python does)",
        physical.name(),
        blank.unwrap_or_default(),
        dtype.name()
    );
    Arc::new(PhysicalFloat::new(src, scaling, note))
}

/// A source with a different description (the value scaling) over the same reads.
struct Rescaled {
    inner: Arc<dyn ArraySource>,
    info: SourceInfo,
}

impl ArraySource for Rescaled {
    fn info(&self) -> &SourceInfo {
        &self.info
    }
    fn read_region(&self, slice: u64, rect: crate::geom::Rect, out: &mut super::RegionBuf) -> Result<()> {
        self.inner.read_region(slice, rect, out)
    }
    fn prefetch(&self, slice: u64, rect: crate::geom::Rect) {
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
    fn chunk_shape(&self) -> Option<(u64, u64)> {
        self.inner.chunk_shape()
    }
    fn cheap_head_rows(&self) -> Option<u64> {
        self.inner.cheap_head_rows()
    }
    fn check_lent(&self) -> Result<()> {
        self.inner.check_lent()
    }
    fn sample_grid(&self, slice: u64, xs: &[u64], ys: &[u64]) -> Result<Vec<f64>> {
        self.inner.sample_grid(slice, xs, ys)
    }
}

/// One dimension of a variable: its name, its coordinate variable's values and their units.
pub type NcDim = (String, Option<Arc<[f64]>>, Option<String>);

/// What the NetCDF layer knows about a variable: its dimensions (name, coordinates, their units) and CF
/// conventions.
#[derive(Debug, Clone, Default)]
pub struct NcMeta {
    pub dims: Vec<NcDim>,
    pub cf: Cf,
}

impl NcMeta {
    fn of(nc: &NcFile, var: &NcVariable) -> NcMeta {
        let dims = var
            .dimensions()
            .iter()
            .map(|d| {
                let cv = nc.variable(&d.name).ok().filter(|c| c.is_coordinate_variable() && c.dtype().is_primitive());
                let coords = cv
                    .filter(|c| {
                        c.shape().first().is_some_and(|&n| n <= MAX_COORDS) && !matches!(c.dtype(), NcType::Char)
                    })
                    .and_then(|c| nc.read_variable_as_f64(&c.name).ok())
                    .map(|a| a.iter().copied().collect::<Arc<[f64]>>());
                let unit = cv.and_then(|c| c.attribute("units")).and_then(|a| a.value.as_string());
                (d.name.clone(), coords, unit)
            })
            .collect();
        NcMeta { dims, cf: Cf::from_nc(var) }
    }

    /// The axes of a variable of `shape`: dimension names, units and coordinates where the file has them.
    pub fn axes(&self, shape: &[u64]) -> Vec<Axis> {
        let mut axes = super::axes::default_axes(shape, false);
        for (ax, (name, coords, unit)) in axes.iter_mut().zip(&self.dims) {
            if !name.is_empty() && !name.starts_with("dim_") && !name.starts_with("phony_dim") {
                ax.name = name.clone();
            }
            if coords.as_ref().is_some_and(|c| c.len() as u64 == ax.size) {
                ax.coords = coords.clone();
                ax.unit = unit.clone();
            }
        }
        axes
    }
}

fn open_storage(path: &Path) -> Result<(NcFile, std::fs::File, u64)> {
    let (file, len) = super::open_file(path)?;
    let dup = file.try_clone().map_err(|e| Error::io(path, e))?;
    let storage = netcdf_reader::FileStorage::from_file(dup).map_err(|e| Error::bad_input(path, e.to_string()))?;
    let nc = NcFile::from_storage(Arc::new(storage))
        .map_err(|e| Error::bad_input(path, format!("not a readable NetCDF file: {e}")))?;
    Ok((nc, file, len))
}

/// The NetCDF-4 view of HDF5 dataset `ds_path` of `path` (dimension names, coordinates, CF), when
/// `netcdf-reader` reads the file as NetCDF-4 and knows the variable.
pub fn nc4_metadata(path: &Path, ds_path: &str) -> Option<NcMeta> {
    let (nc, _, _) = open_storage(path).ok()?;
    if !matches!(nc.format(), NcFormat::Nc4 | NcFormat::Nc4Classic) {
        return None;
    }
    let var = nc.variable(ds_path.trim_start_matches('/')).ok()?;
    Some(NcMeta::of(&nc, var))
}

fn dtype_of(t: &NcType) -> Option<DType> {
    Some(match t {
        NcType::Byte => DType::I8,
        NcType::UByte => DType::U8,
        NcType::Short => DType::I16,
        NcType::UShort => DType::U16,
        NcType::Int => DType::I32,
        NcType::UInt => DType::U32,
        NcType::Int64 => DType::I64,
        NcType::UInt64 => DType::U64,
        NcType::Float => DType::F32,
        NcType::Double => DType::F64,
        _ => return None,
    })
}

fn type_words(t: &NcType) -> String {
    dtype_of(t).map_or_else(
        || if matches!(t, NcType::Char) { "char".into() } else { "non-numeric".into() },
        |d| d.name().to_string(),
    )
}

fn open_netcdf_source(spec: &OpenSpec) -> Result<Arc<dyn ArraySource>> {
    open_netcdf(&spec.path, spec.member.as_deref())
}

/// Opens variable `member` of the classic NetCDF file `path` (or its first variable of 2 or more
/// dimensions).
pub fn open_netcdf(path: &Path, member: Option<&str>) -> Result<Arc<dyn ArraySource>> {
    let (nc, file, len) = open_storage(path)?;
    let vars = nc.variables().map_err(|e| Error::bad_input(path, e.to_string()))?;
    let listing = || vars.iter().map(describe).collect::<Vec<_>>().join(", ");
    let (var, why) = match member {
        Some(m) => {
            let m = m.trim_start_matches('/');
            let v = vars.iter().find(|v| v.name == m).ok_or_else(|| {
                Error::request(path, format!("there is no variable '{m}' in the file; it has {}", listing()))
            })?;
            if !is_image(v) {
                return Err(Error::bad_input(
                    path,
                    format!(
                        "variable {} is not an image (vastview shows numeric variables of 2 or more dimensions)",
                        describe(v)
                    ),
                ));
            }
            (v, String::new())
        }
        None => {
            let images: Vec<&NcVariable> = vars.iter().filter(|v| is_image(v)).collect();
            let Some(first) = images.first() else {
                return Err(Error::bad_input(
                    path,
                    format!("has no numeric variable of 2 or more dimensions to show; its variables: {}", listing()),
                ));
            };
            let why = if images.len() == 1 {
                " (the file's one image variable)".to_string()
            } else {
                format!(" (the first of {} image variables; choose another with FILE:NAME or --variable)", images.len())
            };
            (*first, why)
        }
    };
    let dtype = dtype_of(var.dtype()).ok_or_else(|| Error::bad_input(path, "unsupported variable type"))?;
    let shape = var.shape();
    let n = shape.len();
    let esz = dtype.size() as u64;
    // Sizes from the header are checked against the file before anything is allocated or multiplied.
    let total = super::shape_bytes(&shape, esz);
    if total.is_none_or(|t| t > len) {
        return Err(Error::bad_input(
            path,
            format!("variable '{}' of shape {shape:?} is more bytes than the file holds ({len})", var.name),
        ));
    }
    let slices: u64 = shape[..n - 2].iter().product();
    let image = ImageShape { slices, height: shape[n - 2], width: shape[n - 1], channels: 1 };
    let version = match nc.format() {
        NcFormat::Classic => "CDF-1",
        NcFormat::Offset64 => "CDF-2",
        NcFormat::Cdf5 => "CDF-5",
        _ => "NetCDF-4",
    };
    let format = Format { name: "netcdf", version: Some(version.into()), flavour: None };
    let mut info = SourceInfo::basic(path.to_path_buf(), format, shape.clone(), dtype, image);
    let meta = NcMeta::of(&nc, var);
    info.axes = meta.axes(&shape);
    info.endian = Endian::Big;
    info.order = Order::C;
    info.file_size = len;
    info.header_size = var.data_offset;
    info.member = Some(var.name.clone());
    info.details.push(("variable".into(), format!("{}{why}", var.name)));
    meta.cf.add_details(&mut info);
    if vars.len() > 1 {
        info.details.push(("variables".into(), format!("{}: {}", vars.len(), listing())));
    }
    let plane = image.width * image.height * esz;
    let src = if var.is_record_var {
        if n < 3 {
            return Err(Error::bad_input(
                path,
                format!("variable '{}' is a 2-D record variable (rows lie apart in the file), which vastview does not read yet", var.name),
            ));
        }
        // Each record holds the variable's slices for one index of the record dimension, back to back.
        let per_record: u64 = shape[1..n - 2].iter().product();
        let last = shape[0].checked_sub(1).and_then(|r| r.checked_mul(var.record_size));
        let end = last.and_then(|l| l.checked_add(var.data_offset)?.checked_add(per_record.checked_mul(plane)?));
        if shape[0] > 0 && end.is_none_or(|e| e > len) {
            return Err(Error::bad_input(
                path,
                format!(
                    "variable '{}': {} records of {} bytes lie past the end of the file ({len})",
                    var.name, shape[0], var.record_size
                ),
            ));
        }
        let mut planes = Vec::with_capacity(slices as usize);
        for r in 0..shape[0] {
            for k in 0..per_record {
                planes.push(var.data_offset + r * var.record_size + k * plane);
            }
        }
        info.details.push(("layout".into(), format!("record variable, {} records (memory-mapped)", shape[0])));
        MappedArray::with_planes(&file, info, &planes)?
    } else {
        info.details.push(("layout".into(), "contiguous (memory-mapped, read in place)".into()));
        MappedArray::new(&file, info, var.data_offset)?
    };
    Ok(with_cf(Arc::new(src), &meta.cf))
}
