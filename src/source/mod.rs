//! Data sources: the `ArraySource` trait and opening a file (`.npy`, raw binary) or the procedural demo.

pub mod axes;
pub mod buf;
pub mod chunked;
pub mod demo;
pub mod fits;
pub mod guard;
pub mod hdf5;
pub mod mapped;
pub mod netcdf;
pub mod npy;
pub mod points;
pub mod points_text;
pub mod raw;
pub mod registry;
pub mod scaled;
pub mod tiff;
pub mod zarr;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use axes::Axis;
pub use buf::{Element, RegionBuf, Scalar};
pub use raw::RawSpec;

use crate::dtype::{DType, Endian, Order};
use crate::error::{Error, Result};
use crate::geom::Rect;

/// Which container the data came from: the registry name of its format (`npy`, `tiff`, `fits`, `raw`,
/// `demo`), the container's version where it has one, and a flavour (`OME-TIFF`, `BigTIFF`, `hdu 2`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    pub name: &'static str,
    pub version: Option<String>,
    pub flavour: Option<String>,
}

impl Format {
    pub const RAW: Format = Format { name: "raw", version: None, flavour: None };
    pub const DEMO: Format = Format { name: "demo", version: None, flavour: None };

    pub fn npy(major: u8, minor: u8) -> Format {
        Format { name: "npy", version: Some(format!("{major}.{minor}")), flavour: None }
    }

    /// `npy 1.0`, `tiff (BigTIFF, OME-TIFF)`.
    pub fn name(&self) -> String {
        let mut s = self.name.to_string();
        if let Some(v) = &self.version {
            s.push(' ');
            s.push_str(v);
        }
        if let Some(f) = &self.flavour {
            s.push_str(&format!(" ({f})"));
        }
        s
    }
}

/// A linear map from stored values to physical ones (FITS `BSCALE`/`BZERO`), applied in the display
/// transform and to probed values, never to the stored data: `physical = stored × scale + offset`.
/// `blank` is the stored integer that means "no value" (FITS `BLANK`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scaling {
    pub scale: f64,
    pub offset: f64,
    pub blank: Option<i64>,
    /// The dtype the physical values are presented in (astropy's choice: uint16 for 16-bit data with
    /// BZERO = 32768, float32 for other scaled 8/16-bit data, ...).
    pub physical: DType,
}

impl Scaling {
    pub fn apply(&self, stored: f64) -> f64 {
        stored * self.scale + self.offset
    }
    /// The stored value that maps to `physical`.
    pub fn invert(&self, physical: f64) -> f64 {
        (physical - self.offset) / self.scale
    }
}

/// How the stored array is seen as images: `slices` images of `height × width` pixels with
/// `channels` values each (1 = scalar data through a colormap, 3/4 = uint8 RGB(A) shown as is).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageShape {
    pub slices: u64,
    pub height: u64,
    pub width: u64,
    pub channels: u64,
}

impl ImageShape {
    pub fn is_color(&self) -> bool {
        self.channels > 1
    }
    pub fn rect(&self) -> Rect {
        Rect::of_size(self.width, self.height)
    }
}

/// Everything `info` reports about a source.
#[derive(Debug, Clone)]
pub struct SourceInfo {
    /// The file, or a name like `<demo>` for procedural sources.
    pub path: PathBuf,
    pub format: Format,
    /// The stored shape, outermost axis first.
    pub shape: Vec<u64>,
    /// One axis per entry of `shape`: names, units, scales.
    pub axes: Vec<Axis>,
    pub dtype: DType,
    pub endian: Endian,
    pub order: Order,
    pub file_size: u64,
    pub header_size: u64,
    pub image: ImageShape,
    /// Which part of the file this source is (`hdu 2`, `series 1`), part of its cache identity.
    pub member: Option<String>,
    /// Stored-to-physical value map (FITS BZERO/BSCALE/BLANK); `None` = the stored values are physical.
    pub scaling: Option<Scaling>,
    /// Format-specific lines for `info` (name, value).
    pub details: Vec<(String, String)>,
    /// Format-specific metadata for `info --json` (e.g. FITS header cards); `Null` when none.
    pub extra: serde_json::Value,
    /// What the file says about the entries of its channel axis (OME channel names and colours, RGB samples
    /// stored as a channel axis): one per entry, or empty.
    pub channels: Vec<ChannelInfo>,
}

/// One channel of a channel axis as the file describes it.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ChannelInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Display colour (OME `Color`; red, green, blue for RGB samples).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub color: Option<[u8; 3]>,
    /// Display window LO, HI (OME-Zarr `omero.window`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<(f64, f64)>,
}

impl ChannelInfo {
    /// Red, green, blue (and alpha, shown as white) channels of RGB(A) samples stored as a channel axis.
    pub fn rgb(samples: u64) -> Vec<ChannelInfo> {
        let colors = [[255, 0, 0], [0, 255, 0], [0, 0, 255]];
        (0..samples)
            .map(|k| ChannelInfo {
                name: Some(["R", "G", "B", "A"].get(k as usize).unwrap_or(&"extra").to_string()),
                color: colors.get(k as usize).copied(),
                window: None,
            })
            .collect()
    }
}

impl SourceInfo {
    /// A source of `shape` with default axis names and nothing format-specific.
    pub fn basic(path: PathBuf, format: Format, shape: Vec<u64>, dtype: DType, image: ImageShape) -> SourceInfo {
        SourceInfo {
            path,
            format,
            axes: axes::default_axes(&shape, image.channels > 1),
            shape,
            dtype,
            endian: Endian::NATIVE,
            order: Order::C,
            file_size: 0,
            header_size: 0,
            image,
            member: None,
            scaling: None,
            details: Vec::new(),
            extra: serde_json::Value::Null,
            channels: Vec::new(),
        }
    }

    /// The axes that are not displayed (each a slider in the window), outermost first.
    pub fn outer_axes(&self) -> &[Axis] {
        axes::outer(&self.axes, self.image.channels)
    }

    /// Whether this array is better drawn as a point set (shape (N, 2|3) of floats in an `.npy`): the one
    /// place the image-or-points question is answered for array files.
    pub fn looks_like_points(&self) -> bool {
        self.format.name == "npy" && points::looks_like_points(&self.shape, self.dtype)
    }

    /// Whether the channel axis holds the red, green and blue samples of a colour image (then a composite
    /// shares one pair of limits, so colours keep their balance).
    pub fn channels_are_rgb(&self) -> bool {
        let c: Vec<Option<[u8; 3]>> = self.channels.iter().take(3).map(|c| c.color).collect();
        c == [Some([255, 0, 0]), Some([0, 255, 0]), Some([0, 0, 255])]
    }

    /// `slice 3` or `t=1 c=2`: how a slice is named to the user.
    pub fn slice_label(&self, slice: u64) -> String {
        let out = self.outer_axes();
        if out.len() <= 1 && out.first().is_none_or(|a| a.name.starts_with("dim_")) {
            format!("slice {slice}")
        } else {
            axes::describe_slice(out, slice)
        }
    }
}

/// A 2-D (or stack of 2-D) array that can be read a rectangle at a time.
///
/// Implementations never read more than the bytes a request needs, and hold no copy of the data.
pub trait ArraySource: Send + Sync {
    fn info(&self) -> &SourceInfo;

    /// Reads `rect` of slice `slice` into `out` (resized to fit), row-major, channels interleaved,
    /// values of `info().dtype` in native byte order. `rect` must lie inside the image.
    fn read_region(&self, slice: u64, rect: Rect, out: &mut RegionBuf) -> Result<()>;

    /// Hints that `rect` of `slice` will be read soon, so its bytes can be fetched in the background.
    fn prefetch(&self, _slice: u64, _rect: Rect) {}

    /// Tells the source that reads will (or no longer) stream through it front to back, so the
    /// operating system can read ahead. Advice only.
    fn stream_hint(&self, _sequential: bool) {}

    /// Full rows `y0..y1` of `slice` lent straight from memory, when the source holds them contiguous,
    /// in native byte order (a memory-mapped C-order file): what `read_region` would copy out. `None`
    /// when it cannot (the caller reads a copy). After using the bytes, [`ArraySource::check_lent`]
    /// says whether they were intact.
    fn rows_in_place(&self, _slice: u64, _y0: u64, _y1: u64) -> Option<&[u8]> {
        None
    }

    /// Brings full rows `y0..y1` of `slice` into memory now (blocking), where reading them in place
    /// would otherwise take a page fault every few pages. Advice only.
    fn populate_rows(&self, _slice: u64, _y0: u64, _y1: u64) {}

    /// The stored chunk size (width, height) when the data is decoded in chunks (compressed TIFF
    /// strips/tiles): reads aligned with it decode each chunk once. `None` for in-place data.
    fn chunk_shape(&self) -> Option<(u64, u64)> {
        None
    }

    /// The chunk height when the first rows of each chunk cost a fraction of the whole chunk to read
    /// (compressed tiles decode as a stream from their top): a preview then reads rows near the top of
    /// each chunk row ([`crate::pyramid::preview_rows`]). `None` when every row costs the same.
    fn cheap_head_rows(&self) -> Option<u64> {
        None
    }

    /// An error if bytes lent by [`ArraySource::rows_in_place`] may not have been the file's (it
    /// shrank while they were read).
    fn check_lent(&self) -> Result<()> {
        Ok(())
    }

    /// The values at the grid `xs × ys` (all channels averaged away: scalar sources only), as f64,
    /// row by row. Used for percentile estimates from an evenly spread sample.
    fn sample_grid(&self, slice: u64, xs: &[u64], ys: &[u64]) -> Result<Vec<f64>>;

    /// The resolution levels the file itself stores (OME-TIFF SubIFDs, COG overviews, OME-Zarr
    /// multiscales), as `(level, source)`: level L is `ceil(W / 2^L) × ceil(H / 2^L)` pixels of the same
    /// slices, channels and dtype ([`level_number`] checks that). Empty when the file stores none; the
    /// window and `render` read these instead of building a pyramid.
    fn native_levels(&self) -> Vec<(u32, Arc<dyn ArraySource>)> {
        Vec::new()
    }

    /// Whether `exact_block_means` answers (procedural data): then any downsampled view is exact and cheap.
    fn has_exact_block_means(&self) -> bool {
        self.exact_block_means(0, &[], &[]).is_some()
    }

    /// A source that can compute the mean of any block of its pixels directly (procedural data)
    /// returns `Some`: the means over the pixel ranges `x_bins[i]` × `y_bins[j]` (half-open), row by row.
    fn exact_block_means(
        &self,
        _slice: u64,
        _x_bins: &[(u64, u64)],
        _y_bins: &[(u64, u64)],
    ) -> Option<Result<Vec<f64>>> {
        None
    }

    /// The stored value(s) at column `x`, row `y`.
    fn probe(&self, slice: u64, x: u64, y: u64) -> Result<Vec<Scalar>> {
        let mut b = RegionBuf::default();
        self.read_region(slice, Rect::new(x, y, x + 1, y + 1), &mut b)?;
        Ok(b.scalars())
    }

    /// Checks a request against the image and names the source in the error.
    fn check_request(&self, slice: u64, rect: &Rect) -> Result<()> {
        let info = self.info();
        let im = info.image;
        if slice >= im.slices {
            return Err(Error::request(
                &info.path,
                format!("slice {slice} is out of range (the stack has {} slices)", im.slices),
            ));
        }
        if rect.is_empty() || !im.rect().contains_rect(rect) {
            return Err(Error::request(
                &info.path,
                format!(
                    "region {},{},{},{} is empty or outside the {}x{} image (x0,y0,x1,y1, half-open)",
                    rect.x0, rect.y0, rect.x1, rect.y1, im.width, im.height
                ),
            ));
        }
        Ok(())
    }
}

/// Which pyramid level (`L ≥ 1`) an image of `level` size is for a full image of `full` size: the `L`
/// with `ceil(W / 2^L) × ceil(H / 2^L)` equal to it (the geometry of every level in vastview), else `None`.
pub fn level_number(full: (u64, u64), level: (u64, u64)) -> Option<u32> {
    (1..63u32).find(|&l| (full.0.div_ceil(1 << l), full.1.div_ceil(1 << l)) == level)
}

/// The finest native level of `src` at or below `level`... precisely: the native level `k ≤ level` with the
/// largest `k` (so the fewest pixels to reduce), if any.
pub fn native_level_at_most(src: &dyn ArraySource, level: u32) -> Option<(u32, Arc<dyn ArraySource>)> {
    src.native_levels().into_iter().filter(|(k, _)| *k >= 1 && *k <= level).max_by_key(|(k, _)| *k)
}

/// How to open an input: a path plus, for raw binary, the layout the user gave.
#[derive(Debug, Clone, Default)]
pub struct OpenSpec {
    pub path: PathBuf,
    pub raw: Option<RawSpec>,
    /// Open the procedural demo field instead of a file.
    pub demo: bool,
    /// `--format NAME`: skip detection and open with this registry format.
    pub format: Option<String>,
    /// Which part of a multi-part file (`--hdu 2`, `file.fits[2]`, a TIFF series): the format reads it.
    pub member: Option<String>,
}

/// Opens a source as the spec says: the demo, raw binary (when a layout is given) or the format the
/// registry recognises (or `--format` names).
pub fn open(spec: &OpenSpec) -> Result<Arc<dyn ArraySource>> {
    if spec.demo {
        return Ok(Arc::new(demo::DemoSource::new(demo::DEMO_SIZE, demo::DEMO_SIZE)));
    }
    match &spec.raw {
        Some(raw) => Ok(Arc::new(raw::open_raw(&spec.path, raw)?)),
        None => registry::open(spec),
    }
}

/// What a file that is not a regular file is, in user terms (`None` for a regular file).
fn special_kind(ft: &std::fs::FileType) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_file() {
        None
    } else if ft.is_dir() {
        Some("a directory")
    } else if ft.is_fifo() {
        Some("a FIFO (named pipe)")
    } else if ft.is_socket() {
        Some("a socket")
    } else if ft.is_char_device() {
        Some("a character device")
    } else if ft.is_block_device() {
        Some("a block device")
    } else {
        Some("not a regular file")
    }
}

/// Opens `path` read-only, with errors that say what is wrong in user terms: the one check of every data
/// file a source reads (images, point sets, text points). Only regular files are accepted: a FIFO, socket,
/// device or directory is refused (exit 2) without a blocking open or read. The path is `stat`ed first
/// (nothing but a regular file is opened at all), then opened with `O_NONBLOCK` (a FIFO swapped in
/// between cannot block the open) and the open descriptor checked again with `fstat` (same file, still
/// regular), so what is read is what was checked.
pub(crate) fn open_file(path: &Path) -> Result<(std::fs::File, u64)> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::bad_input(path, "no such file"),
        std::io::ErrorKind::PermissionDenied => Error::bad_input(path, "permission denied"),
        _ => Error::io(path, e),
    })?;
    let not_data = |what: &str| Error::bad_input(path, format!("is {what}, not a regular data file"));
    if let Some(what) = special_kind(&meta.file_type()) {
        return Err(not_data(what));
    }
    let file =
        std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY).open(path).map_err(
            |e| match e.kind() {
                std::io::ErrorKind::PermissionDenied => {
                    Error::bad_input(path, "permission denied (cannot open for reading)")
                }
                _ => Error::io(path, e),
            },
        )?;
    let fmeta = file.metadata().map_err(|e| Error::io(path, e))?;
    if let Some(what) = special_kind(&fmeta.file_type()) {
        return Err(not_data(what));
    }
    if (fmeta.dev(), fmeta.ino()) != (meta.dev(), meta.ino()) {
        return Err(Error::bad_input(path, "the file was replaced while it was opened"));
    }
    // Regular files ignore O_NONBLOCK; clear it all the same so the descriptor reads as a plain one.
    {
        use std::os::fd::AsRawFd;
        let fd = file.as_raw_fd();
        // SAFETY: `fd` is the open descriptor `file` owns; F_GETFL/F_SETFL only read and set its status flags.
        unsafe {
            let fl = libc::fcntl(fd, libc::F_GETFL);
            if fl >= 0 {
                libc::fcntl(fd, libc::F_SETFL, fl & !libc::O_NONBLOCK);
            }
        }
    }
    let len = fmeta.len();
    if len == 0 {
        return Err(Error::bad_input(path, "the file is empty"));
    }
    Ok((file, len))
}

/// Interprets a stored shape as images, per the rules in the README: the last two axes are rows and
/// columns (`(..., H, W)`; every axis before them is an outer axis, one slice per index), except that a
/// last axis of 3 or 4 in uint8 data is interleaved RGB(A) (`(..., H, W, 3|4)`).
pub(crate) fn image_shape(path: &Path, shape: &[u64], dtype: DType) -> Result<ImageShape> {
    if let Some(i) = shape.iter().position(|&d| d == 0) {
        return Err(Error::bad_input(
            path,
            format!("shape {} has a zero-sized dimension (axis {i}): nothing to show", fmt_shape(shape)),
        ));
    }
    let n = shape.len();
    let color = n >= 3 && matches!(shape[n - 1], 3 | 4) && dtype == DType::U8;
    if n < 2 {
        return Err(Error::bad_input(
            path,
            format!(
                "shape {} is not an image: expected (..., H, W) or uint8 RGB(A) (..., H, W, 3|4)",
                fmt_shape(shape)
            ),
        ));
    }
    let inner = if color { 3 } else { 2 };
    let slices = shape[..n - inner]
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d))
        .ok_or_else(|| Error::bad_input(path, "the number of slices overflows 64 bits"))?;
    Ok(ImageShape {
        slices,
        height: shape[n - inner],
        width: shape[n - inner + 1],
        channels: if color { shape[n - 1] } else { 1 },
    })
}

/// The bytes an array of `shape` with `esz`-byte elements takes, or `None` when that overflows 64 bits
/// (checked before any size from a header is multiplied, allocated or compared with the file).
pub(crate) fn shape_bytes(shape: &[u64], esz: u64) -> Option<u64> {
    shape.iter().try_fold(esz, |acc, &d| acc.checked_mul(d))
}

/// numpy's spelling of a shape: `(3,)`, `(20000, 20000)`.
pub fn fmt_shape(shape: &[u64]) -> String {
    match shape {
        [one] => format!("({one},)"),
        _ => format!("({})", shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
    }
}
