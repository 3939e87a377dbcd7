//! Command-line definitions (clap) and their translation into validated library settings; `run` executes a command.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use clap::{Args, Parser, Subcommand};

use crate::dtype::{DType, Endian, Order};
use crate::error::{Error, Result};
use crate::geom::Rect;
use crate::headless::{self, LimitsSpec, Quality, Reduce, RenderSpec, Session};
use crate::headless_points::{self, PointRender};
use crate::palette::{parse_rgba, Scale};
use crate::points::{Agg, Extent, PointScale};
use crate::pyramid::{Method, Progress};
use crate::source::points::{PointSource, PointSpec};
use crate::source::{self, raw::parse_shape, OpenSpec, RawSpec};
use indicatif::{ProgressBar, ProgressStyle};

pub mod docs;

/// The command line's definition, with the list of formats from the registry in the long help.
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    Cli::command().after_long_help(format!(
        "Formats (detected from their magic numbers, else the extension; --format NAME forces one):\n{}\n  raw    raw binary: give --dtype and --shape",
        source::registry::help_text()
    ))
}

/// Parses the process's arguments (exits with clap's message on a usage error).
pub fn parse() -> Cli {
    use clap::FromArgMatches;
    let m = command().get_matches();
    let mut cli = Cli::from_arg_matches(&m).unwrap_or_else(|e| e.exit());
    // Which display flags were typed (even at their default value: `--colormap viridis` on an RGB image
    // still earns the note that RGB ignores it).
    let typed = |m: &clap::ArgMatches| -> Vec<&'static str> {
        DISPLAY_FLAG_IDS
            .iter()
            .filter(|(id, _)| {
                m.try_get_raw(id).is_ok_and(|v| v.is_some())
                    && m.value_source(id) == Some(clap::parser::ValueSource::CommandLine)
            })
            .map(|(_, flag)| *flag)
            .collect()
    };
    match (&mut cli.command, m.subcommand()) {
        (Some(Command::Render(a)), Some((_, sm))) => a.display.typed = typed(sm),
        (None, _) => cli.view.display.typed = typed(&m),
        _ => {}
    }
    cli
}

/// The display flags whose use on an RGB(A) image earns a note: clap id and flag.
const DISPLAY_FLAG_IDS: [(&str, &str); 5] = [
    ("colormap", "--colormap"),
    ("limits", "--limits"),
    ("scale", "--scale"),
    ("gamma", "--gamma"),
    ("percentiles", "--percentiles"),
];

/// vastview: look at arrays larger than memory, on the GPU.
///
/// `vastview FILE` opens a window on the file; `vastview` alone opens a welcome screen; `vastview --demo`
/// opens a procedural 1,000,000 x 1,000,000 image; `vastview POINTS --points ...` (or an (N, 2|3) float .npy,
/// or text points) opens a point set as a density image aggregated in the background. The subcommands work
/// with no window.
#[derive(Debug, Parser)]
#[command(name = "vastview", version, about, long_about = None, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub view: ViewArgs,
}

/// Flags of the window (no subcommand).
#[derive(Debug, Args)]
pub struct ViewArgs {
    /// The data file to open (.npy, or raw with --dtype/--shape; point sets with --points, or an (N, 2|3) float
    /// .npy or .txt/.csv/.xyz text points without it)
    pub input: Option<PathBuf>,
    /// Open the procedural 1,000,000 x 1,000,000 float32 demo field
    #[arg(long, conflicts_with = "input")]
    pub demo: bool,
    #[command(flatten)]
    pub display: DisplayArgs,
    /// Save a screenshot of the whole window once every visible tile is drawn, then exit (code 2, with one line
    /// saying why, when the view cannot be completed: failed tiles, nothing of the image in view; with no input,
    /// the welcome screen)
    #[arg(long)]
    pub screenshot: Option<PathBuf>,
    /// Window size WxH in points
    #[arg(long, default_value = "1280x800")]
    pub window_size: String,
    /// Start at this zoom (screen pixels per data pixel; 1 = 100 %) instead of fitting the image (point sets:
    /// magnification of the fitted view, 2 = twice as close)
    #[arg(long)]
    pub zoom: Option<f64>,
    /// Start centred on data point X,Y (column, row) instead of the image centre (point sets: X,Y in data units)
    #[arg(long, allow_hyphen_values = true)]
    pub center: Option<String>,
    /// Byte budget for tiles held in CPU memory, in MiB (the tiles of the current view are always kept)
    #[arg(long, default_value_t = 128)]
    pub cpu_budget_mb: u64,
    /// Byte budget for tile textures on the GPU, in MiB (the tiles of the current frame are always kept)
    #[arg(long, default_value_t = 128)]
    pub gpu_budget_mb: u64,
    /// Benchmark the window: once loaded, 30 still frames, N panning frames, 10 palette changes (point sets: 12
    /// scale/colormap/alpha/background changes, and the time to the first and the exact frame); print figures and exit
    #[arg(long)]
    pub bench_frames: Option<u32>,
    /// Coarse levels: mean (NaN-ignoring) or max (keeps sparse bright points visible) of their blocks
    #[arg(long, default_value = "mean")]
    pub downsample: String,
    /// Do not build a pyramid in the background for big images (coarse tiles are then previews or
    /// computed from the data on demand)
    #[arg(long)]
    pub no_pyramid: bool,
    #[command(flatten)]
    pub style: PointStyleArgs,
    /// Point sets: draw each non-empty pixel as a disc of this odd diameter (1..15), or auto: 5-px discs when the
    /// view holds fewer points than its pixels / 64 (deep zoom)
    #[arg(long, default_value = "auto", requires = "points")]
    pub point_size: String,
    #[command(flatten)]
    pub input_args: InputArgs,
    #[command(flatten)]
    pub point_args: PointArgs,
}

// Parsed once per run: the size of the biggest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Render an image (or a region of it) to PNG, or export its values to .npy; with --points, a point set as a
    /// density image (through its spatial index when `vastview index` built one, else a full scan)
    Render(Box<RenderArgs>),
    /// Describe a data file: format, shape, dtype, byte and memory order, sizes
    Info(InfoArgs),
    /// Print the exact stored value at column X, row Y (as numpy's str() shows it)
    Probe(ProbeArgs),
    /// Build (or resume) the file's multiresolution pyramid and tile statistics in the disk cache
    Pyramid(PyramidArgs),
    /// Exact statistics of the whole image (min, max, mean, std, NaN/inf counts, histogram, percentiles)
    Stats(StatsArgs),
    /// Build (or resume) the spatial index of a point set in the disk cache; `render --points` then reads
    /// only the points of the cells a region overlaps
    Index(IndexArgs),
    /// List or clear the disk cache of pyramids and point indexes
    #[command(subcommand)]
    Cache(CacheCommand),
    /// Register vastview for the current user: .desktop file, application/x-npy MIME type, icon, default app for .npy
    InstallDesktop,
    /// Remove what install-desktop wrote
    UninstallDesktop,
    /// List the colormap names --colormap takes (matplotlib's and colorcet's)
    Colormaps,
    /// Print the shell completion script for bash, zsh or fish (install-desktop installs them)
    Completions { shell: clap_complete::Shell },
    /// Print the man page (roff; install-desktop installs it as vastview(1))
    Manpage,
}

/// Where the data comes from: a file (.npy, or raw binary with a layout) or the procedural demo.
#[derive(Debug, Args, Clone, Default)]
pub struct InputArgs {
    /// Raw binary: element type, as numpy spells it ('float32', 'uint8', '<u2', 'f4'; numpy's codes count
    /// bytes: 'u8' is uint64, one byte is 'u1') or i16/u16/i32/u32/i64/u64/f32/f64. Images need --shape;
    /// point records (--points) take f32 or f64 with --columns
    #[arg(long)]
    pub dtype: Option<String>,
    /// Raw binary: HxW, NxHxW (stack) or HxWxC (uint8 RGB/RGBA)
    #[arg(long)]
    pub shape: Option<String>,
    /// Raw binary: bytes to skip before the data
    #[arg(long, default_value_t = 0)]
    pub offset: u64,
    /// Raw binary: memory order, C (row-major) or F (column-major)
    #[arg(long, default_value = "C")]
    pub order: String,
    /// Raw binary: byte order, little or big (a '<' or '>' in --dtype also sets it)
    #[arg(long)]
    pub endian: Option<String>,
    /// Read the file as this format instead of detecting it (npy, tiff, fits, zarr, hdf5, netcdf: see --help)
    #[arg(long)]
    pub format: Option<String>,
    /// The part of a multi-part file: a FITS HDU (number, 0 = primary, or EXTNAME), a TIFF series number,
    /// an HDF5 dataset path (`/group/ds`) or a NetCDF variable (`sst`); `FILE[2]` or `FILE:/group/ds` says the same
    #[arg(long, visible_aliases = ["series", "dataset", "variable"])]
    pub hdu: Option<String>,
}

/// How a point set is drawn, for `render --points` and the window alike (with --scale and --colormap).
#[derive(Debug, Args, Clone)]
pub struct PointStyleArgs {
    /// Point sets: per-pixel aggregate, count, or sum|mean|min|max of the value column
    #[arg(long, default_value = "count", requires = "points")]
    pub agg: String,
    /// Point sets: opacity (0..1) of the non-empty pixels
    #[arg(long, default_value_t = 1.0, requires = "points")]
    pub alpha: f64,
    /// Point sets: background color RRGGBB or RRGGBBAA under the density layer [default: none, transparent]
    #[arg(long, requires = "points")]
    pub background: Option<String>,
}

/// `PointStyleArgs` and the display flags points take, validated.
struct PointLookFlags {
    scale: PointScale,
    agg: Agg,
    alpha: f64,
    background: [u8; 4],
}

/// Validates a point set's style flags (the same rules for `render --points` and the window). `image_only`:
/// the error to give when flags for images only were given.
fn point_style(
    p: &std::path::Path,
    s: &PointStyleArgs,
    d: &DisplayArgs,
    image_only: Option<&str>,
) -> Result<PointLookFlags> {
    let scale = PointScale::parse(&d.scale)
        .ok_or_else(|| Error::request(p, format!("--scale '{}' is not linear, log or eqhist (point sets)", d.scale)))?;
    let agg = Agg::parse(&s.agg)
        .ok_or_else(|| Error::request(p, format!("--agg '{}' is not count, sum, mean, min or max", s.agg)))?;
    if let Some(msg) = image_only {
        return Err(Error::request(p, msg));
    }
    if !(0.0..=1.0).contains(&s.alpha) {
        return Err(Error::request(p, format!("--alpha {} must lie in 0..1", s.alpha)));
    }
    let background = parse_background(p, s.background.as_deref())?;
    crate::palette::Colormap::named(p, &d.colormap)?;
    Ok(PointLookFlags { scale, agg, alpha: s.alpha, background })
}

/// Point sets: records of x, y (and value) columns, drawn as a density image.
#[derive(Debug, Args, Clone, Default)]
pub struct PointArgs {
    /// Read the input as a point set: .npy of shape (N, 2) or (N, 3+), text (x y z per line), or raw records
    /// with --dtype f32|f64 --columns N
    #[arg(long)]
    pub points: bool,
    /// Raw point records: values per record (each record is N values of --dtype, little-endian, no header)
    #[arg(long, requires = "points")]
    pub columns: Option<u64>,
    /// Point sets: the column holding x
    #[arg(long = "x", default_value_t = 0, requires = "points")]
    pub x_col: u64,
    /// Point sets: the column holding y
    #[arg(long = "y", default_value_t = 1, requires = "points")]
    pub y_col: u64,
    /// Point sets: the column --agg sum|mean|min|max aggregates [default: 2 when the records have 3+ values]
    #[arg(long = "value", requires = "points")]
    pub value_col: Option<u64>,
}

/// How values become colors: flags shared by the window and `render`.
#[derive(Debug, Args, Clone)]
pub struct DisplayArgs {
    /// Colormap: any of matplotlib's and colorcet's (gray, viridis, magma, inferno, plasma, cividis, turbo, twilight,
    /// coolwarm, hot, RdBu, Greys, tab10, fire, ...: `vastview colormaps` lists them; add _r to reverse), a file
    /// (.txt/.csv rows of R G B, 0..1 or 0..255; ParaView .json, FILE.json:NAME) or '#rrggbb,#rrggbb,...'
    /// interpolated in Oklab
    #[arg(long, default_value = "viridis")]
    pub colormap: String,
    /// Contrast limits LO,HI in data units [default: the 0.5 and 99.5 percentiles of a sample]
    #[arg(long, allow_hyphen_values = true)]
    pub limits: Option<String>,
    /// Stretch after the limits: linear, log, sqrt or asinh (point sets: linear, log or eqhist)
    #[arg(long, default_value = "linear")]
    pub scale: String,
    /// Exponent applied after the stretch (t -> t^gamma)
    #[arg(long, default_value_t = 1.0)]
    pub gamma: f64,
    /// Slice of an (N, H, W) stack (N-D arrays: the flat number over all outer axes)
    #[arg(long, default_value_t = 0)]
    pub slice: u64,
    /// N-D arrays: the index on the axes not displayed, AXIS=I[,AXIS=I...] (AXIS by name, e.g. t=3,c=1, or by
    /// 0-based number); axes not named stay at --slice's index (0)
    #[arg(long)]
    pub index: Option<String>,
    /// Color of NaN pixels as RRGGBBAA hex
    #[arg(long, default_value = "00000000")]
    pub nan_color: String,
    /// N-D arrays: the outer axis drawn as an additive composite of its channels (2 to 8), each through its own
    /// colour ramp and limits [default: an axis named c or channel]; `--index c=K` shows channel K alone
    #[arg(long)]
    pub channel_axis: Option<String>,
    /// Composite: each channel's colormap, comma-separated: a colour ramp (green, magenta, cyan, yellow, red,
    /// blue, orange, white, #rrggbb) or any colormap [default: green,magenta,cyan,yellow,red,blue,orange,white]
    #[arg(long)]
    pub channel_colormaps: Option<String>,
    /// Composite: each channel's limits LO,HI, channels separated by ';' ('0,500;10,2000') [default: --limits for
    /// all, else each channel's own 0.5 and 99.5 percentiles]
    #[arg(long, allow_hyphen_values = true)]
    pub channel_limits: Option<String>,
    /// The display flags typed on the command line (filled by [`parse`]; empty when parsed otherwise).
    #[arg(skip)]
    pub typed: Vec<&'static str>,
}

/// The display flags given other than at their defaults (`extra`: more such flags of the command, by name).
/// RGB(A) images ignore them all: see [`crate::palette::rgb_note`].
fn display_flags_given(a: &DisplayArgs, extra: &[(&'static str, bool)]) -> Vec<&'static str> {
    // The defaults of `DisplayArgs` above.
    let given = [
        ("--colormap", a.colormap != "viridis"),
        ("--limits", a.limits.is_some()),
        ("--scale", a.scale != "linear"),
        ("--gamma", a.gamma != 1.0),
    ];
    given.iter().chain(extra).filter(|(f, g)| *g || a.typed.contains(f)).map(|(f, _)| *f).collect()
}

/// `DisplayArgs`, checked (the colormap name too).
struct DisplaySettings {
    limits: Option<(f64, f64)>,
    scale: Scale,
    gamma: f64,
    nan_color: [u8; 4],
}

fn display_settings(p: &std::path::Path, a: &DisplayArgs) -> Result<DisplaySettings> {
    let limits = a.limits.as_deref().map(|s| finite_pair(p, "--limits", s)).transpose()?;
    let scale = Scale::parse(&a.scale)
        .ok_or_else(|| Error::request(p, format!("--scale '{}' is not linear, log, sqrt or asinh", a.scale)))?;
    if !(a.gamma.is_finite() && a.gamma > 0.0) {
        return Err(Error::request(p, "--gamma must be a positive number"));
    }
    let nan_color = parse_rgba(&a.nan_color)
        .ok_or_else(|| Error::request(p, format!("--nan-color '{}' is not RRGGBBAA hex", a.nan_color)))?;
    crate::palette::Colormap::named(p, &a.colormap)?;
    Ok(DisplaySettings { limits, scale, gamma: a.gamma, nan_color })
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// The data file (.npy, or raw with --dtype/--shape); omit with --demo
    #[arg(required_unless_present = "demo")]
    pub input: Option<PathBuf>,
    /// Use the procedural 1,000,000 x 1,000,000 float32 demo field instead of a file
    #[arg(long, conflicts_with = "input")]
    pub demo: bool,
    /// Output, in the format its extension names: .png (or no extension), .jpg/.jpeg (RGB: alpha composited
    /// over black; whole image in memory, at most 64 Mpixels), .tif/.tiff (RGBA8 uncompressed, BigTIFF above
    /// 4 GB), or .npy for the (downsampled) data values. Never an input file; its directory must exist; a device
    /// or FIFO (/dev/stdout) is written through
    #[arg(short = 'o', long = "output")]
    pub output: PathBuf,
    /// Region X0,Y0,X1,Y1 (columns, rows; half-open; row 0 at the top). Default: the whole image.
    /// Point sets: XMIN,YMIN,XMAX,YMAX in data units (inclusive). Default: the bounds of the finite points
    #[arg(long, allow_hyphen_values = true)]
    pub region: Option<String>,
    /// Output size WxH. Default: the region's size, capped at 4096 on the long side (point sets: 1024 on the
    /// long side, the other by the region's aspect ratio; up to 65536 a side, above 2^26 pixels binned and
    /// written in strips of rows)
    #[arg(long)]
    pub size: Option<String>,
    /// Contrast limits as percentiles P_LO,P_HI of an evenly spread sample [default: 0.5,99.5]
    #[arg(long, conflicts_with = "limits")]
    pub percentiles: Option<String>,
    #[command(flatten)]
    pub display: DisplayArgs,
    /// Shrunk output pixels: mean (NaN-ignoring) or max of their blocks; uses that kind of cached pyramid
    #[arg(long, default_value = "mean")]
    pub downsample: String,
    /// Shrunk output without a cached pyramid: compute exact block values however much must be read
    /// (by default a big file gives a preview from one data row per output row; see `vastview pyramid`)
    #[arg(long, conflicts_with = "preview")]
    pub exact: bool,
    /// Always draw the quick preview (one data row per output row) when shrinking
    #[arg(long)]
    pub preview: bool,
    #[command(flatten)]
    pub style: PointStyleArgs,
    /// Print the adapter, the plan, timings and bytes uploaded to stderr
    #[arg(short, long)]
    pub verbose: bool,
    #[command(flatten)]
    pub input_args: InputArgs,
    #[command(flatten)]
    pub point_args: PointArgs,
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// The data file (.npy, or raw with --dtype/--shape)
    #[arg(required_unless_present = "demo")]
    pub input: Option<PathBuf>,
    /// Describe the procedural demo source
    #[arg(long, conflicts_with = "input")]
    pub demo: bool,
    /// Print a JSON object instead of text
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub input_args: InputArgs,
    #[command(flatten)]
    pub point_args: PointArgs,
}

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// The data file (.npy, or raw with --dtype/--shape)
    pub input: PathBuf,
    /// Column
    pub x: u64,
    /// Row (0 at the top)
    pub y: u64,
    /// Slice of an (N, H, W) stack (N-D arrays: the flat number over all outer axes)
    #[arg(long, default_value_t = 0)]
    pub slice: u64,
    /// N-D arrays: the index on the axes not displayed, AXIS=I[,AXIS=I...] (AXIS by name or 0-based number)
    #[arg(long)]
    pub index: Option<String>,
    #[command(flatten)]
    pub input_args: InputArgs,
}

#[derive(Debug, Args)]
pub struct PyramidArgs {
    /// The data file (.npy, or raw with --dtype/--shape)
    pub input: PathBuf,
    /// How a level pixel summarises the 2x2 pixels under it: mean (NaN-ignoring) or max (for sparse bright points)
    #[arg(long, default_value = "mean")]
    pub downsample: String,
    /// No progress bar
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub input_args: InputArgs,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// The data file (.npy, or raw with --dtype/--shape)
    pub input: PathBuf,
    /// Slice of an (N, H, W) stack (N-D arrays: the flat number over all outer axes)
    #[arg(long, default_value_t = 0)]
    pub slice: u64,
    /// N-D arrays: the index on the axes not displayed, AXIS=I[,AXIS=I...] (AXIS by name or 0-based number)
    #[arg(long)]
    pub index: Option<String>,
    /// Print a JSON object instead of text
    #[arg(long)]
    pub json: bool,
    /// No progress bar while a pyramid is built
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub input_args: InputArgs,
}

#[derive(Debug, Args)]
pub struct IndexArgs {
    /// The point file (.npy of shape (N, 2|3+), raw records with --points --dtype f32|f64 --columns N, or text)
    pub input: PathBuf,
    /// No progress bar
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub input_args: InputArgs,
    #[command(flatten)]
    pub point_args: PointArgs,
}

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// List cached pyramids and point indexes: size on disk, last use, state, data file
    List,
    /// Delete cached pyramids and point indexes: all of them, or those of FILE
    Clear {
        /// Only the cache files built from this data file
        file: Option<PathBuf>,
    },
}

/// Turns input flags into an `OpenSpec`, checking the raw layout flags.
pub fn open_spec(path: Option<PathBuf>, demo: bool, a: &InputArgs) -> Result<OpenSpec> {
    let p = path.clone().unwrap_or_else(|| PathBuf::from("<demo>"));
    let raw = match (&a.dtype, &a.shape) {
        (None, None) => None,
        (Some(d), Some(s)) => {
            let (dtype, e1) = DType::parse_spelling(d).map_err(|m| Error::request(&p, m))?;
            let shape = parse_shape(s)
                .ok_or_else(|| Error::request(&p, format!("--shape '{s}' is not HxW, NxHxW or HxWxC")))?;
            let e2 = match &a.endian {
                Some(e) => Some(
                    Endian::parse(e)
                        .ok_or_else(|| Error::request(&p, format!("--endian '{e}' is not little or big")))?,
                ),
                None => None,
            };
            if let (Some(x), Some(y)) = (e1, e2) {
                if x != y {
                    return Err(Error::request(&p, "--dtype and --endian name different byte orders"));
                }
            }
            let order = Order::parse(&a.order)
                .ok_or_else(|| Error::request(&p, format!("--order '{}' is not C or F", a.order)))?;
            Some(RawSpec { dtype, endian: e1.or(e2).unwrap_or(Endian::Little), shape, offset: a.offset, order })
        }
        _ => return Err(Error::request(&p, "raw input needs both --dtype and --shape")),
    };
    if raw.is_some() && (a.format.is_some() || a.hdu.is_some()) {
        return Err(Error::request(&p, "--dtype/--shape read raw binary; --format and --hdu are for detected formats"));
    }
    Ok(OpenSpec { path: path.unwrap_or_default(), raw, demo, format: a.format.clone(), member: a.hdu.clone() })
}

fn pair<T: std::str::FromStr>(p: &std::path::Path, flag: &str, s: &str, n: usize) -> Result<Vec<T>> {
    let v: Option<Vec<T>> = s.split(',').map(|x| x.trim().parse::<T>().ok()).collect();
    v.filter(|v| v.len() == n)
        .ok_or_else(|| Error::request(p, format!("{flag} '{s}' must be {n} comma-separated numbers")))
}

/// Two finite, comma-separated numbers (`--limits`, `--center`).
fn finite_pair(p: &std::path::Path, flag: &str, s: &str) -> Result<(f64, f64)> {
    let v: Vec<f64> = pair(p, flag, s, 2)?;
    if !v.iter().all(|x| x.is_finite()) {
        return Err(Error::request(p, format!("{flag} must be finite numbers")));
    }
    Ok((v[0], v[1]))
}

/// Validates render flags into a `RenderSpec`.
pub fn render_spec(a: &RenderArgs, path: &std::path::Path) -> Result<RenderSpec> {
    let region = match &a.region {
        Some(s) => {
            let v: Vec<u64> = pair(path, "--region", s, 4)?;
            if v[2] <= v[0] || v[3] <= v[1] {
                return Err(Error::request(path, format!("--region '{s}' is empty: need X0 < X1 and Y0 < Y1")));
            }
            Some(Rect::new(v[0], v[1], v[2], v[3]))
        }
        None => None,
    };
    let size = a.size.as_deref().map(|s| parse_wxh(path, "--size", s)).transpose()?;
    let DisplaySettings { limits, scale, gamma, nan_color } = display_settings(path, &a.display)?;
    let limits = match (limits, &a.percentiles) {
        (Some((lo, hi)), _) => LimitsSpec::Explicit(lo, hi),
        (None, Some(s)) => {
            let v: Vec<f64> = pair(path, "--percentiles", s, 2)?;
            if !(0.0..=100.0).contains(&v[0]) || !(0.0..=100.0).contains(&v[1]) {
                return Err(Error::request(path, "--percentiles must lie in 0..100"));
            }
            LimitsSpec::Percentiles(v[0], v[1])
        }
        (None, None) => LimitsSpec::Percentiles(0.5, 99.5),
    };
    let d = &a.display;
    let method = parse_method(path, &a.downsample)?;
    let quality = match (a.exact, a.preview) {
        (true, _) => Quality::Exact,
        (_, true) => Quality::Preview,
        _ => Quality::Auto,
    };
    Ok(RenderSpec {
        slice: d.slice,
        region,
        size,
        colormap: d.colormap.clone(),
        limits,
        scale,
        gamma,
        nan_color,
        method,
        quality,
    })
}

fn parse_wxh(p: &std::path::Path, flag: &str, s: &str) -> Result<(u64, u64)> {
    let v: Option<Vec<u64>> = s.split(['x', 'X']).map(|x| x.trim().parse().ok()).collect();
    match v.as_deref() {
        Some([w, h]) if *w > 0 && *h > 0 => Ok((*w, *h)),
        _ => Err(Error::request(p, format!("{flag} '{s}' is not WxH"))),
    }
}

/// Validates the window's flags (the data file is opened by the window, so a bad file shows there).
#[cfg(feature = "gui")]
pub fn launch_options(a: &ViewArgs) -> Result<crate::app::LaunchOptions> {
    let p = a.input.clone().unwrap_or_else(|| PathBuf::from("<window>"));
    if let Some(shot) = &a.screenshot {
        // The screenshot must not overwrite the data file, nor go to a missing directory.
        crate::output::check(shot, &a.input.iter().map(PathBuf::as_path).collect::<Vec<_>>())?;
    }
    // A file with no layout flags that looks like points ((N, 2|3) float .npy, text points) opens as points.
    let looks = a.input_args.dtype.is_none() && a.input.as_deref().is_some_and(crate::app::is_point_file);
    if a.point_args.points || looks {
        return point_launch_options(a, &p);
    }
    let open =
        if a.demo || a.input.is_some() { Some(open_spec(a.input.clone(), a.demo, &a.input_args)?) } else { None };
    let DisplaySettings { limits, scale, gamma, nan_color } = display_settings(&p, &a.display)?;
    let d = &a.display;
    let (w, h) = parse_wxh(&p, "--window-size", &a.window_size)?;
    if let Some(z) = a.zoom {
        if !(z.is_finite() && z > 0.0) {
            return Err(Error::request(&p, "--zoom must be a positive number"));
        }
    }
    // Finite, but as far off as asked: the window keeps its view math finite (and says when nothing is in view).
    let center = a.center.as_deref().map(|s| finite_pair(&p, "--center", s)).transpose()?;
    Ok(crate::app::LaunchOptions {
        zoom: a.zoom,
        center,
        open,
        colormap: a.display.colormap.clone(),
        limits,
        scale,
        gamma,
        slice: a.display.slice,
        index: a.display.index.clone(),
        nan_color,
        screenshot: a.screenshot.clone(),
        window_size: (w as u32, h as u32),
        cpu_budget: a.cpu_budget_mb << 20,
        gpu_budget: a.gpu_budget_mb << 20,
        bench_frames: a.bench_frames,
        method: parse_method(&p, &a.downsample)?,
        build_min_bytes: if a.no_pyramid { u64::MAX } else { crate::app::BUILD_MIN_BYTES },
        points: None,
        channels: channel_args(d),
        display_flags: display_flags_given(&a.display, &[]),
    })
}

/// The window's flags with `--points`: the layout is checked here (a bad file still opens the window's error
/// panel); scale, colormap, alpha, background and aggregate as `render --points` takes them.
#[cfg(feature = "gui")]
fn point_launch_options(a: &ViewArgs, p: &std::path::Path) -> Result<crate::app::LaunchOptions> {
    let d = &a.display;
    let image_only = (d.limits.is_some() || d.gamma != 1.0 || d.slice != 0)
        .then_some("--limits, --gamma and --slice are for images; point sets take --scale, --alpha, --background");
    let style = point_style(p, &a.style, d, image_only)?;
    if let Some(z) = a.zoom {
        if !(z.is_finite() && z > 0.0) {
            return Err(Error::request(p, "--zoom must be a positive number"));
        }
    }
    let center = a.center.as_deref().map(|s| finite_pair(p, "--center", s)).transpose()?;
    let marker = crate::app::Marker::parse(&a.point_size).ok_or_else(|| {
        Error::request(p, format!("--point-size '{}' is not auto or an odd number of pixels 1..15", a.point_size))
    })?;
    let path = a.input.clone().ok_or_else(|| Error::request(p, "--points needs an input file"))?;
    let spec = point_spec(&path, &a.input_args, &a.point_args)?;
    let (w, h) = parse_wxh(p, "--window-size", &a.window_size)?;
    Ok(crate::app::LaunchOptions {
        colormap: d.colormap.clone(),
        screenshot: a.screenshot.clone(),
        window_size: (w as u32, h as u32),
        bench_frames: a.bench_frames,
        points: Some(crate::app::PointOptions {
            path,
            spec,
            agg: style.agg,
            scale: style.scale,
            alpha: style.alpha,
            background: style.background,
            marker,
            zoom: a.zoom,
            center,
        }),
        ..Default::default()
    })
}

/// Runs a parsed command, writing its normal output to `out`; returns the exit code.
pub fn run(cli: Cli, out: &mut dyn Write) -> Result<i32> {
    let Some(command) = cli.command else {
        #[cfg(feature = "gui")]
        {
            let opts = launch_options(&cli.view)?;
            return Ok(crate::app::run(opts));
        }
        #[cfg(not(feature = "gui"))]
        {
            let _ = cli.view;
            return Err(Error::request(
                "<window>",
                "this vastview was built without the window (feature `gui`); use render, info or probe",
            ));
        }
    };
    run_command(command, out).map(|_| 0)
}

fn report(out: &mut dyn Write, verb: &str, r: &crate::desktop::InstallReport) -> Result<()> {
    let mut text = String::new();
    for f in &r.files {
        text.push_str(&format!("{verb} {}\n", f.display()));
    }
    for n in &r.notes {
        text.push_str(&format!("note: {n}\n"));
    }
    write_out(out, &text)
}

fn run_command(command: Command, out: &mut dyn Write) -> Result<()> {
    match command {
        Command::InstallDesktop => {
            let exe = std::env::current_exe().map_err(|e| Error::io("<current executable>", e))?;
            report(out, "wrote", &crate::desktop::install(&exe)?)
        }
        Command::UninstallDesktop => report(out, "removed", &crate::desktop::uninstall()?),
        Command::Colormaps => write_out(out, &crate::palette::Colormap::listing()),
        Command::Completions { shell } => write_out(out, &docs::completion(shell)),
        Command::Manpage => write_out(out, &docs::manpage()),
        Command::Info(a) => {
            if a.point_args.points {
                let src = open_points(a.input.as_deref(), &a.input_args, &a.point_args)?;
                let text = if a.json {
                    format!("{}\n", headless_points::points_info_json(&src)?)
                } else {
                    headless_points::points_info_text(&src)?
                };
                return write_out(out, &text);
            }
            let src = source::open(&open_spec(a.input, a.demo, &a.input_args)?)?;
            let info = src.info();
            let hint = looks_like_points(info);
            let text = if a.json {
                let mut v = headless::info_json(info);
                v["looks_like_points"] = hint.into();
                format!("{v}\n")
            } else {
                let mut t = headless::info_text(info);
                if hint {
                    t.push_str(&format!(
                        "{:<14}shape {} looks like {} points: add --points to draw them as a density image\n",
                        "points?:",
                        source::fmt_shape(&info.shape),
                        info.shape[0]
                    ));
                }
                t
            };
            write_out(out, &text)
        }
        Command::Probe(a) => {
            let src = source::open(&open_spec(Some(a.input), false, &a.input_args)?)?;
            let info = src.info();
            let slice = resolve_slice(info, a.index.as_deref(), a.slice)?;
            let v = headless::probe_text(src.as_ref(), slice, a.x, a.y)?;
            let dtype = info.scaling.map_or(info.dtype, |s| s.physical);
            let at = source::axes::position_text(&info.axes, info.image.channels, slice, a.x, a.y)
                .map_or(String::new(), |t| format!("; {t}"));
            write_out(
                out,
                &format!("{dtype} [{}, {}] (x={}, y={}, {}{at}): {v}\n", a.y, a.x, a.x, a.y, info.slice_label(slice)),
            )
        }
        Command::Pyramid(a) => {
            let src = source::open(&open_spec(Some(a.input.clone()), false, &a.input_args)?)?;
            let method = parse_method(&a.input, &a.downsample)?;
            let t0 = Instant::now();
            let (store, built) = build_with_progress(src.as_ref(), method, a.quiet)?;
            let secs = t0.elapsed().as_secs_f64();
            let bytes = std::fs::metadata(store.path()).map_or(0, |m| m.len());
            let what = if built.is_some() { "built" } else { "already built" };
            let mut line = format!(
                "pyramid of {}: {} levels ({}), {what}: {} ({:.1} MB)",
                src.info().path.display(),
                store.levels().count,
                method.name(),
                store.path().display(),
                bytes as f64 / 1e6
            );
            if let Some(b) = built {
                line.push_str(&format!(
                    "\nread {:.1} MB in {secs:.2} s ({:.0} MB/s){}",
                    b.read as f64 / 1e6,
                    b.read as f64 / 1e6 / secs.max(1e-9),
                    if b.resumed > 0 {
                        format!(", resumed after {:.1} MB", b.resumed as f64 / 1e6)
                    } else {
                        String::new()
                    }
                ));
            }
            write_out(out, &format!("{line}\n"))
        }
        Command::Stats(a) => with_cache_retry(|| {
            let src = source::open(&open_spec(Some(a.input.clone()), false, &a.input_args)?)?;
            let info = src.info();
            if info.image.is_color() {
                return Err(Error::request(&info.path, "statistics are computed for scalar images, not RGB(A)"));
            }
            let slice = resolve_slice(info, a.index.as_deref(), a.slice)?;
            let (st, range) = match crate::pyramid::persist::find(src.as_ref(), Method::Mean)? {
                Some(store) => (
                    store.slice_stats(slice)?.ok_or_else(|| Error::cache(store.path(), "statistics missing"))?,
                    store.hist_range(),
                ),
                None => match crate::diskcache::unusable(crate::pyramid::persist::KIND) {
                    Some(why) => {
                        eprintln!(
                            "vastview: note: caching is off ({why}): statistics computed from the data, not stored"
                        );
                        crate::pyramid::persist::stats_without_cache(src.as_ref(), slice)?
                    }
                    None => {
                        if !a.quiet {
                            eprintln!(
                                "vastview: no pyramid yet for {}: building one (one pass over the file; later stats are instant)",
                                info.path.display()
                            );
                        }
                        let store = build_with_progress(src.as_ref(), Method::Mean, a.quiet)?.0;
                        let st = store
                            .slice_stats(slice)?
                            .ok_or_else(|| Error::cache(store.path(), "statistics missing"))?;
                        (st, store.hist_range())
                    }
                },
            };
            let text = if a.json {
                format!("{}\n", headless::stats_json(info, slice, &st, &range))
            } else {
                headless::stats_text(info, slice, &st, &range)
            };
            write_out(out, &text)
        }),
        Command::Cache(CacheCommand::List) => write_out(out, &headless::cache_list_text()?),
        Command::Cache(CacheCommand::Clear { file }) => {
            let (n, bytes) = headless::cache_clear(file.as_deref())?;
            write_out(out, &format!("removed {n} cache file(s), {:.1} MB\n", bytes as f64 / 1e6))
        }
        Command::Render(a) if a.point_args.points => with_cache_retry(|| render_points(&a)),
        Command::Index(a) => with_cache_retry(|| {
            let t0 = Instant::now();
            let src = open_points(Some(&a.input), &a.input_args, &a.point_args)?;
            let (ix, built) = index_with_progress(&src, a.quiet)?;
            let secs = t0.elapsed().as_secs_f64();
            let m = &ix.meta;
            let bytes = std::fs::metadata(ix.path()).map(|m| m.len()).unwrap_or(0);
            let what = if built.is_some() { "built" } else { "already built" };
            let mut line = format!(
                "point index of {}: {} points ({} indexed, {} with NaN/inf x or y skipped), {}x{} cells, {what}: {} ({:.1} MB)",
                src.path.display(),
                m.points,
                m.indexed,
                m.nonfinite,
                m.side(),
                m.side(),
                ix.path().display(),
                bytes as f64 / 1e6
            );
            if let Some(b) = built {
                line.push_str(&format!(
                    "\nindexed in {secs:.2} s ({:.1} M points/s; count {:.2} s, sort {:.2} s, finish {:.2} s){}",
                    m.points as f64 / 1e6 / secs.max(1e-9),
                    b.pass1_s,
                    b.pass2_s,
                    b.finish_s,
                    if b.resumed > 0 {
                        format!(", resumed after {} of {} point passes", b.resumed, 2 * m.points)
                    } else {
                        String::new()
                    }
                ));
            }
            write_out(out, &format!("{line}\n"))
        }),
        Command::Render(a) => with_cache_retry(|| {
            let t0 = Instant::now();
            let src = source::open(&open_spec(a.input.clone(), a.demo, &a.input_args)?)?;
            if looks_like_points(src.info()) {
                eprintln!(
                    "vastview: note: {} has shape {}: drawn as an image; add --points to draw its rows as points",
                    src.info().path.display(),
                    source::fmt_shape(&src.info().shape)
                );
            }
            crate::output::check(&a.output, &[&src.info().path])?;
            let format = crate::output::Format::of(&a.output)?;
            let mut spec = render_spec(&a, &src.info().path)?;
            spec.slice = resolve_slice(src.info(), a.display.index.as_deref(), a.display.slice)?;
            if format == crate::output::Format::Npy {
                // An export holds values, not colours: no sample for colour limits.
                spec.limits = LimitsSpec::Unused;
            }
            // A channel axis: one spec per channel, blended (an export holds the one slice's values).
            let composite = match format {
                crate::output::Format::Npy => None,
                _ => headless::composite_specs(src.info(), &channel_args(&a.display), &spec, false)?,
            };
            let mut specs =
                composite.clone().map_or_else(|| vec![spec.clone()], |c| c.into_iter().map(|(_, s)| s).collect());
            // A file with its own resolution levels: a shrunk render reads the level that fits.
            let (src, native) = match headless::choose_native(src.as_ref(), &specs[0]) {
                Some((k, lsrc, _)) => {
                    for s in specs.iter_mut() {
                        if let Some((_, _, moved)) = headless::choose_native(src.as_ref(), s) {
                            *s = moved;
                        }
                    }
                    (lsrc, Some(k))
                }
                None => (src, None),
            };
            let mut plans = specs.iter().map(|s| headless::plan(src.as_ref(), s)).collect::<Result<Vec<_>>>()?;
            // RGB samples of any integer dtype: one pair of limits for the image (the widest), not one per channel.
            if plans.len() > 1
                && src.info().channels_are_rgb()
                && a.display.limits.is_none()
                && a.display.channel_limits.is_none()
            {
                let lo = plans.iter().map(|p| p.display.lo).fold(f64::INFINITY, f64::min);
                let hi = plans.iter().map(|p| p.display.hi).fold(f64::NEG_INFINITY, f64::max);
                for p in plans.iter_mut() {
                    (p.display.lo, p.display.hi) = (lo, hi);
                }
            }
            let plan = plans[0].clone();
            crate::output::check_size(&a.output, format, plan.out_w, plan.out_h)?;
            let from_file = src.info().format != source::Format::DEMO;
            if let Some(why) = crate::diskcache::unusable(crate::pyramid::persist::KIND).filter(|_| from_file) {
                eprintln!("vastview: note: caching is off ({why}): rendering without cached pyramids");
            }
            if src.info().image.is_color() {
                let flags = display_flags_given(&a.display, &[("--percentiles", a.percentiles.is_some())]);
                if let Some(n) = crate::palette::rgb_note(&src.info().path, &flags) {
                    eprintln!("vastview: note: {n}");
                }
            }
            let t_plan = t0.elapsed();
            if format == crate::output::Format::Npy {
                headless::export_npy(src.as_ref(), &plan, &a.output)?;
            } else if plans.len() > 1 {
                let mut session = Session::new()?;
                headless::render_composite(&mut session, src.as_ref(), &plans, &a.output)?;
                if a.verbose {
                    for ((name, _), p) in composite.iter().flatten().zip(&plans) {
                        let sc = src.info().scaling;
                        let phys = |v: f64| sc.map_or(v, |s| s.apply(v));
                        eprintln!(
                            "channel {name}: {}, limits {} .. {} ({})",
                            p.display.colormap.name,
                            phys(p.display.lo),
                            phys(p.display.hi),
                            p.limits_from
                        );
                    }
                }
            } else {
                let mut session = Session::new()?;
                if a.verbose {
                    eprintln!("adapter: {}", session.gpu.describe());
                }
                headless::render_image(&mut session, src.as_ref(), &plan, &a.output)?;
                if a.verbose {
                    let s = session.tiles.stats;
                    eprintln!(
                        "uploaded: {} tiles, {} tile bytes, {} palette bytes, {} uniform bytes",
                        s.tiles, s.tile_bytes, s.lut_bytes, s.uniform_bytes
                    );
                }
            }
            if plan.reduce == Reduce::Preview {
                let rows = match src.cheap_head_rows() {
                    Some(ch) => format!(
                        "one data row per output row, taken from the top rows of each {ch}-row band of \
                         compressed tiles (only their first rows are decoded)"
                    ),
                    None => "one data row per output row".to_string(),
                };
                eprintln!(
                    "vastview: note: PREVIEW of {}: {rows} (no pyramid cached); \
                     run `vastview pyramid` on it for exact block values, or render with --exact",
                    src.info().path.display()
                );
            }
            if a.verbose {
                let r = plan.region;
                let how = match plan.reduce {
                    _ if native.is_some() && !plan.is_reduced() => "pixels".to_string(),
                    _ if !plan.is_reduced() => "data pixels".to_string(),
                    Reduce::Data => format!("block {} of the data", plural(plan.method)),
                    Reduce::Level(l) => format!("block {} of pyramid level {l}", plural(plan.method)),
                    Reduce::Preview if src.cheap_head_rows().is_some() => {
                        "preview: a strided sample of rows, near the top of each tile row".to_string()
                    }
                    Reduce::Preview => "preview: a strided sample of rows".to_string(),
                };
                // With a native level the region is in that level's pixels; say which level was read.
                let how = match native {
                    Some(k) => format!("{how} of native level {k} stored in the file"),
                    None => how,
                };
                eprintln!(
                    "region {},{},{},{} -> {}x{} ({how}), limits {} .. {} ({}), plan {:.3} s, total {:.3} s",
                    r.x0,
                    r.y0,
                    r.x1,
                    r.y1,
                    plan.out_w,
                    plan.out_h,
                    src.info().scaling.map_or(plan.display.lo, |s| s.apply(plan.display.lo)),
                    src.info().scaling.map_or(plan.display.hi, |s| s.apply(plan.display.hi)),
                    plan.limits_from,
                    t_plan.as_secs_f64(),
                    t0.elapsed().as_secs_f64()
                );
                eprintln!("memory: {}", crate::headless::memory_report());
            }
            Ok(())
        }),
    }
}

/// Runs `f`; if it met a damaged cache file, deletes that file, says so, and runs `f` once more
/// (which then rebuilds the file or goes without it).
fn with_cache_retry(mut f: impl FnMut() -> Result<()>) -> Result<()> {
    match f() {
        Err(e @ Error::Cache { .. }) => {
            if let Error::Cache { path, .. } = &e {
                let _ = std::fs::remove_file(path);
            }
            eprintln!("vastview: {e}; deleted it (it is rebuilt when needed)");
            f()
        }
        r => r,
    }
}

fn plural(m: Method) -> &'static str {
    match m {
        Method::Mean => "means",
        Method::Max => "maxima",
    }
}

fn parse_method(p: &std::path::Path, s: &str) -> Result<Method> {
    Method::parse(s).ok_or_else(|| Error::request(p, format!("--downsample '{s}' is not mean or max")))
}

/// What a build did: bytes reduced, and bytes skipped by resuming.
pub struct Built {
    pub read: u64,
    pub resumed: u64,
}

/// The source's complete pyramid: found in the cache, or built (resumed) now with a progress bar on
/// stderr (bytes, throughput, time left) unless `quiet` or stderr is not a terminal.
pub fn build_with_progress(
    src: &dyn source::ArraySource,
    method: Method,
    quiet: bool,
) -> Result<(std::sync::Arc<crate::pyramid::Store>, Option<Built>)> {
    if let Some(s) = crate::pyramid::persist::find(src, method)? {
        return Ok((s, None));
    }
    let job = crate::pyramid::persist::BuildJob::prepare(src, method)?;
    let progress = Progress::default();
    let bar = if quiet { ProgressBar::hidden() } else { ProgressBar::new(0) };
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(if job.resuming { "resuming pyramid" } else { "building pyramid" });
    let done = std::sync::atomic::AtomicBool::new(false);
    let r = std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(std::sync::atomic::Ordering::Acquire) {
                bar.set_length(progress.total.load(std::sync::atomic::Ordering::Relaxed));
                bar.set_position(progress.done.load(std::sync::atomic::Ordering::Relaxed));
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        });
        let r = job.run(src, &progress);
        done.store(true, std::sync::atomic::Ordering::Release);
        r
    });
    bar.finish_and_clear();
    let resumed = progress.resumed_from.load(std::sync::atomic::Ordering::Relaxed);
    let read = progress.done.load(std::sync::atomic::Ordering::Relaxed).saturating_sub(resumed);
    Ok((r?, Some(Built { read, resumed })))
}

/// The point set's complete index: found in the cache, or built (resumed) now with a progress bar on
/// stderr (points, points/s, time left per pass) unless `quiet`.
pub fn index_with_progress(
    src: &PointSource,
    quiet: bool,
) -> Result<(crate::points::index::PointIndex, Option<crate::points::index::build::BuildReport>)> {
    use std::sync::atomic::Ordering;
    if let Some(ix) = crate::points::index::PointIndex::find(src)? {
        return Ok((ix, None));
    }
    let job = crate::points::index::BuildJob::prepare(src)?;
    let progress = Progress::default();
    let bar = if quiet { ProgressBar::hidden() } else { ProgressBar::new(0) };
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {human_pos}/{human_len} points, eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let verb = if job.resuming { "resuming index" } else { "indexing" };
    let done = std::sync::atomic::AtomicBool::new(false);
    let r = std::thread::scope(|s| {
        s.spawn(|| {
            let (mut phase, mut since, mut from) = (0, Instant::now(), 0);
            while !done.load(Ordering::Acquire) {
                let p = progress.epoch.load(Ordering::Relaxed);
                let now = progress.done.load(Ordering::Relaxed);
                if p != phase {
                    (phase, since, from) = (p, Instant::now(), now);
                    bar.reset();
                }
                let rate = now.saturating_sub(from) as f64 / since.elapsed().as_secs_f64().max(1e-3) / 1e6;
                let what = if p == 1 { "count" } else { "sort" };
                bar.set_message(format!("{verb}, pass {p}/2 ({what}) {rate:.1} M points/s"));
                bar.set_length(progress.total.load(Ordering::Relaxed));
                bar.set_position(now);
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        });
        let r = job.run(src, &progress);
        done.store(true, Ordering::Release);
        r
    });
    bar.finish_and_clear();
    let (ix, report) = r?;
    Ok((ix, Some(report)))
}

fn write_out(out: &mut dyn Write, s: &str) -> Result<()> {
    out.write_all(s.as_bytes()).map_err(|e| Error::io("<stdout>", e))
}

/// True for an array `info` should offer as points: (N, 2) or (N, 3) float with N much larger than 3.
/// The channel flags, as `headless::composite_specs` takes them.
fn channel_args(d: &DisplayArgs) -> headless::ChannelArgs {
    headless::ChannelArgs {
        axis: d.channel_axis.clone(),
        colormaps: d.channel_colormaps.clone(),
        limits: d.channel_limits.clone(),
        index: d.index.clone(),
        limits_given: d.limits.is_some(),
    }
}

/// The flat slice number `--index`/`--slice` name on `info`'s outer axes.
fn resolve_slice(info: &source::SourceInfo, index: Option<&str>, slice: u64) -> Result<u64> {
    source::axes::resolve_index(&info.path, &info.axes, info.image.channels, index, slice)
}

fn looks_like_points(info: &source::SourceInfo) -> bool {
    info.looks_like_points()
}

/// Opens a point set from the input and point flags.
fn open_points(input: Option<&std::path::Path>, a: &InputArgs, p: &PointArgs) -> Result<PointSource> {
    let path = input.ok_or_else(|| Error::request("<points>", "--points needs an input file"))?;
    source::points::open_points(path, &point_spec(path, a, p)?)
}

/// The point layout the input and point flags describe.
fn point_spec(path: &std::path::Path, a: &InputArgs, p: &PointArgs) -> Result<PointSpec> {
    if a.shape.is_some() {
        return Err(Error::request(path, "--shape is for images; point records take --dtype f32|f64 and --columns N"));
    }
    let (dtype, endian) = match &a.dtype {
        Some(d) => {
            let (dt, e) = DType::parse_spelling(d).map_err(|m| Error::request(path, m))?;
            if !matches!(dt, DType::F32 | DType::F64) {
                return Err(Error::request(path, format!("--dtype '{d}' is {dt}: point records are f32 or f64")));
            }
            let e2 = match &a.endian {
                Some(s) => Some(
                    Endian::parse(s)
                        .ok_or_else(|| Error::request(path, format!("--endian '{s}' is not little or big")))?,
                ),
                None => None,
            };
            (Some(dt), e.or(e2).unwrap_or(Endian::Little))
        }
        None => {
            if p.columns.is_some() {
                return Err(Error::request(path, "--columns describes raw records: give --dtype f32|f64 too"));
            }
            (None, Endian::Little)
        }
    };
    Ok(PointSpec { dtype, endian, columns: p.columns, offset: a.offset, x: p.x_col, y: p.y_col, value: p.value_col })
}

/// The `vastview index` command line that builds the index a render with these point flags would use,
/// each word shell-quoted.
pub fn index_command(path: &std::path::Path, a: &InputArgs, p: &PointArgs) -> String {
    let mut w: Vec<String> = vec!["vastview".into(), "index".into(), path.to_string_lossy().into_owned()];
    let mut flag = |k: &str, v: String| w.extend([k.to_string(), v]);
    if let Some(d) = &a.dtype {
        flag("--dtype", d.clone());
    }
    if let Some(c) = p.columns {
        flag("--columns", c.to_string());
    }
    if a.offset != 0 {
        flag("--offset", a.offset.to_string());
    }
    if let Some(e) = &a.endian {
        flag("--endian", e.clone());
    }
    if p.x_col != 0 {
        flag("--x", p.x_col.to_string());
    }
    if p.y_col != 1 {
        flag("--y", p.y_col.to_string());
    }
    if let Some(v) = p.value_col {
        flag("--value", v.to_string());
    }
    if w.len() > 3 {
        w.insert(3, "--points".into());
    }
    w.iter().map(|x| shell_quote(x)).collect::<Vec<_>>().join(" ")
}

/// `s` as one POSIX shell word: as is when it has only safe characters, else in single quotes.
pub fn shell_quote(s: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_-./:=@%+,".contains(c);
    if !s.is_empty() && s.chars().all(safe) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// `--background RRGGBB[AA]` (None: transparent).
fn parse_background(path: &std::path::Path, s: Option<&str>) -> Result<[u8; 4]> {
    let Some(s) = s else { return Ok([0; 4]) };
    let full = if s.trim_start_matches('#').len() == 6 {
        format!("{}ff", s.trim_start_matches('#'))
    } else {
        s.trim_start_matches('#').to_string()
    };
    parse_rgba(&full).ok_or_else(|| Error::request(path, format!("--background '{s}' is not RRGGBB or RRGGBBAA hex")))
}

/// Validates `render --points` flags into a `PointRender`.
fn point_render_spec(a: &RenderArgs, path: &std::path::Path) -> Result<PointRender> {
    let region = match &a.region {
        Some(s) => {
            let v: Vec<f64> = pair(path, "--region", s, 4)?;
            if !v.iter().all(|x| x.is_finite()) || v[2] <= v[0] || v[3] <= v[1] {
                return Err(Error::request(
                    path,
                    format!("--region '{s}' must be finite XMIN,YMIN,XMAX,YMAX with XMIN < XMAX and YMIN < YMAX"),
                ));
            }
            Some(Extent { xmin: v[0], ymin: v[1], xmax: v[2], ymax: v[3] })
        }
        None => None,
    };
    let size = a.size.as_deref().map(|s| parse_wxh(path, "--size", s)).transpose()?;
    let d = &a.display;
    let image_only = (d.limits.is_some() || a.percentiles.is_some() || d.gamma != 1.0 || d.slice != 0).then_some(
        "--limits, --percentiles, --gamma and --slice are for images; point sets take --scale, --alpha, --background",
    );
    let PointLookFlags { scale, agg, alpha, background } = point_style(path, &a.style, d, image_only)?;
    Ok(PointRender { region, size, agg, colormap: d.colormap.clone(), scale, alpha, background })
}

fn render_points(a: &RenderArgs) -> Result<()> {
    let t0 = Instant::now();
    let path = a.input.as_deref().ok_or_else(|| Error::request("<points>", "--points needs an input file"))?;
    let spec = point_render_spec(a, path)?;
    let src = open_points(Some(path), &a.input_args, &a.point_args)?;
    let t_open = t0.elapsed().as_secs_f64();
    let r = headless_points::render_points(&src, &spec, &a.output)?;
    if let Some(why) = crate::diskcache::unusable(crate::points::index::KIND) {
        eprintln!("vastview: note: caching is off ({why}): rendering without cached indexes or bounds");
    }
    for n in &r.notes {
        eprintln!("vastview: note: {}: {n}", src.path.display());
    }
    if a.verbose {
        let e = r.extent;
        eprintln!(
            "points: {} records of {} x {} ({}), region {},{},{},{} -> {}x{}, agg {}, scale {}",
            src.len,
            src.columns,
            src.dtype.name(),
            src.format.name(),
            e.xmin,
            e.ymin,
            e.xmax,
            e.ymax,
            r.width,
            r.height,
            spec.agg.name(),
            spec.scale.name()
        );
        match &r.index {
            Some((p, read)) => eprintln!(
                "index: {} (read the {read} points of the cells the region overlaps, {:.2} % of {})",
                p.display(),
                100.0 * *read as f64 / src.len.max(1) as f64,
                src.len
            ),
            None => eprintln!(
                "index: none (full scan of {} points; `{}` builds one)",
                src.len,
                index_command(path, &a.input_args, &a.point_args)
            ),
        }
        let nonfinite = r.bounds.map_or(r.skipped.nonfinite, |b| b.nonfinite);
        eprintln!(
            "skipped: {nonfinite} points with NaN/inf x or y, {} outside the region, {} NaN values",
            r.skipped.outside, r.skipped.nan_values
        );
        eprintln!(
            "time: open {t_open:.3} s, bounds {:.3} s{}, bin {:.3} s, shade+write {:.3} s, total {:.3} s",
            r.bounds_s,
            if r.bounds.is_some_and(|b| b.cached) { " (cached)" } else { "" },
            r.bin_s,
            r.write_s,
            t0.elapsed().as_secs_f64()
        );
        eprintln!("memory: {}", crate::headless::memory_report());
    }
    Ok(())
}
