//! The desktop window (feature `gui`): eframe with the wgpu backend, the tile pipeline drawn in a paint
//! callback, lazily loaded tiles (coarse first, never a hole), panels for palette and contrast, a status bar
//! with the exact stored value under the cursor, file dialog, drag-and-drop and `--screenshot`; point sets as
//! density images aggregated in the background (`points`).

mod gpu;
mod panels;
mod points;

pub use points::{is_point_file, Marker, PointOptions};

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Instant;

use eframe::egui;

use crate::cache::{Tier, TileCache, TileId, TileRequest, TileState};
use crate::headless::TILE;
use crate::palette::{Colormap, Display, Scale};
use crate::pyramid::levels::Levels;
use crate::render::{TileDraw, TileKey};
use crate::source::{self, ArraySource, OpenSpec};
use crate::view::View;

use gpu::{TileCallback, ViewerGpu};

/// How the window starts: everything the command line can say.
#[derive(Debug, Clone)]
pub struct LaunchOptions {
    /// What to open at start (None: the welcome screen).
    pub open: Option<OpenSpec>,
    pub colormap: String,
    pub limits: Option<(f64, f64)>,
    pub scale: Scale,
    pub gamma: f64,
    pub slice: u64,
    /// `--index AXIS=I,...` on the outer axes of an N-D array (resolved when the file is open).
    pub index: Option<String>,
    pub nan_color: [u8; 4],
    /// Save a screenshot of the whole window here once every visible tile is drawn, then exit.
    pub screenshot: Option<PathBuf>,
    pub window_size: (u32, u32),
    /// Initial zoom (screen pixels per data pixel) and centre (data pixels); default: fit the image.
    pub zoom: Option<f64>,
    pub center: Option<(f64, f64)>,
    pub cpu_budget: u64,
    pub gpu_budget: u64,
    /// Benchmark: once loaded, draw 30 still frames, pan for this many frames, change the palette 10
    /// times, print the figures to stderr and exit.
    pub bench_frames: Option<u32>,
    /// How coarse levels summarise their blocks.
    pub method: crate::pyramid::Method,
    /// Build a pyramid in the background for images of at least this many bytes (with no cached one).
    pub build_min_bytes: u64,
    /// Open this point set at start (instead of `open`).
    pub points: Option<PointOptions>,
    /// The display flags given on the command line (an RGB(A) image ignores them: one note says so).
    pub display_flags: Vec<&'static str>,
    /// `--channel-axis`, `--channel-colormaps`, `--channel-limits` (for the file opened at start).
    pub channels: crate::headless::ChannelArgs,
}

/// Images smaller than this are quick to reduce on the fly: no pyramid file is written for them.
pub const BUILD_MIN_BYTES: u64 = 64 << 20;

impl Default for LaunchOptions {
    fn default() -> Self {
        LaunchOptions {
            open: None,
            colormap: "viridis".into(),
            limits: None,
            scale: Scale::Linear,
            gamma: 1.0,
            slice: 0,
            index: None,
            nan_color: [0, 0, 0, 0],
            screenshot: None,
            window_size: (1280, 800),
            zoom: None,
            center: None,
            cpu_budget: 128 << 20,
            gpu_budget: 128 << 20,
            bench_frames: None,
            method: crate::pyramid::Method::Mean,
            build_min_bytes: BUILD_MIN_BYTES,
            points: None,
            display_flags: Vec::new(),
            channels: crate::headless::ChannelArgs::default(),
        }
    }
}

/// A pyramid being built in the background for the open document.
struct PyramidBuild {
    progress: Arc<crate::pyramid::Progress>,
    /// None while running; then Ok or the error message.
    outcome: Arc<std::sync::Mutex<Option<Result<(), String>>>>,
    started: Instant,
    epoch_seen: u64,
}

impl PyramidBuild {
    /// The build finished and stored its pyramid.
    fn succeeded(&self) -> bool {
        matches!(*self.outcome.lock().unwrap_or_else(std::sync::PoisonError::into_inner), Some(Ok(())))
    }
}

impl Drop for PyramidBuild {
    /// Closing the file stops the build at its next checkpoint; the next open resumes it.
    fn drop(&mut self) {
        self.progress.cancel.store(true, Ordering::Relaxed);
    }
}

/// When `run` was called (benchmarks report the window's own set-up time from it).
static RUN_START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

/// Opens the window and runs until it closes. Returns the process exit code.
pub fn run(opts: LaunchOptions) -> i32 {
    RUN_START.get_or_init(Instant::now);
    if cfg!(target_os = "linux")
        && std::env::var_os("DISPLAY").is_none()
        && std::env::var_os("WAYLAND_DISPLAY").is_none()
    {
        eprintln!(
            "vastview: no display (DISPLAY and WAYLAND_DISPLAY are unset): run it under `xvfb-run -a`, or render without a window: vastview render --demo -o demo.png"
        );
        return 2;
    }
    let exit = Arc::new(AtomicI32::new(0));
    let exit2 = exit.clone();
    let mut setup = eframe::egui_wgpu::WgpuSetupCreateNew::without_display_handle();
    setup.device_descriptor = Arc::new(gpu::device_descriptor);
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("vastview")
            .with_inner_size([opts.window_size.0 as f32, opts.window_size.1 as f32])
            .with_drag_and_drop(true),
        renderer: eframe::Renderer::Wgpu,
        wgpu_options: eframe::egui_wgpu::WgpuConfiguration {
            wgpu_setup: eframe::egui_wgpu::WgpuSetup::CreateNew(setup),
            ..Default::default()
        },
        ..Default::default()
    };
    let r = eframe::run_native(
        "vastview",
        options,
        Box::new(move |cc| {
            let rs = cc.wgpu_render_state.as_ref().ok_or("vastview needs the wgpu renderer")?;
            ViewerGpu::install(rs, opts.gpu_budget);
            Ok(Box::new(Viewer::new(cc.egui_ctx.clone(), opts, exit2)))
        }),
    );
    match r {
        Ok(()) => exit.load(Ordering::SeqCst),
        Err(e) => {
            eprintln!("vastview: cannot open the window: {e}");
            1
        }
    }
}

/// An open data source with its cache and view.
struct Doc {
    src: Arc<dyn ArraySource>,
    /// The pyramid build under way (or finished) for this document.
    build: Option<PyramidBuild>,
    /// How coarse levels summarise their blocks (and which cached pyramid they come from).
    method: crate::pyramid::Method,
    cache: TileCache,
    levels: Levels,
    /// The flat slice shown: the index over the outer axes (see `source::axes`).
    slice: u64,
    /// The outer axis `[`/`]` step along (`a` picks the next one).
    axis: usize,
    view: Option<View>,
    /// A per-document salt in GPU tile keys, so tiles of a previous file are never drawn.
    salt: u64,
    /// Last hovered data pixel and its value text.
    hover: Option<(u64, u64, String)>,
    hist: Option<panels::Histogram>,
    hist_key: u64,
    /// What the data area showed last frame (the side panel's histogram reads it).
    shown: Shown,
    /// The histogram does not yet describe `shown` (a screenshot waits for it).
    hist_stale: bool,
    hist_time: Option<Instant>,
    /// Visible tiles drawn from a preview last frame.
    previews_drawn: usize,
    /// Tiles whose resident texture holds a preview (set at upload, cleared when the exact one replaces it).
    preview_tiles: HashSet<TileId>,
    /// Visible tiles that failed to load (and their error) until they are drawn.
    failed_seen: HashMap<TileId, String>,
    /// The channel composite, when the image has a channel axis of 2 to 8 entries.
    composite: Option<Composite>,
}

impl Doc {
    /// Moves the chosen outer axis by `by` (clamped to the axis), keeping the other indices.
    fn step_axis(&mut self, by: i64) {
        let info = self.src.info();
        let outer = info.outer_axes();
        if outer.is_empty() {
            return;
        }
        let k = self.axis.min(outer.len() - 1);
        let mut idx = crate::source::axes::index_of(outer, self.slice);
        idx[k] = idx[k].saturating_add_signed(by).min(outer[k].size - 1);
        self.slice = crate::source::axes::slice_of(outer, &idx);
    }
}

/// The layer index of the single-image renderer (channel layers are 0..MAX_CHANNELS).
const MAIN: usize = usize::MAX;

/// One channel of a composite: its name, palette, limits (stored values) and whether it is shown. The active
/// channel's colormap and limits live in `Viewer::display` while it is active (the side panel edits them there).
struct ChannelLook {
    label: String,
    colormap: Colormap,
    cmap_base: String,
    reversed: bool,
    lo: f64,
    hi: f64,
    visible: bool,
}

impl ChannelLook {
    /// The channel's display: its colormap and limits, the scale, gamma and NaN colour of `shared`.
    fn display(&self, shared: &Display) -> Display {
        Display { colormap: self.colormap.clone(), lo: self.lo, hi: self.hi, ..shared.clone() }
    }
}

/// A channel axis shown as an additive composite (2 to 8 channels), or one channel at a time (`c` toggles).
struct Composite {
    /// The channel axis among the outer axes.
    axis: usize,
    looks: Vec<ChannelLook>,
    /// All shown channels added (else the one the slider picks).
    on: bool,
    /// The channel whose colormap and limits are in `Viewer::display`: the channel-axis index of `Doc::slice`.
    active: usize,
}

/// The tiles at the level the view wants, and how many of them were drawn at that level.
#[derive(Default)]
struct Shown {
    level: u32,
    tiles: Vec<(u64, u64)>,
    drawn: usize,
}

pub(crate) struct Viewer {
    ctx: egui::Context,
    opts: LaunchOptions,
    doc: Option<Doc>,
    error: Option<String>,
    /// The parts of the file last opened that open on their own (HDF5 datasets, NetCDF variables, a Zarr
    /// group's arrays): the file, the part shown (if any), and the list for the side and error panels.
    parts: Option<(OpenSpec, Option<String>, Vec<crate::source::registry::Part>)>,
    pub(crate) display: Display,
    pub(crate) cmap_base: String,
    pub(crate) reversed: bool,
    recent: Vec<PathBuf>,
    next_salt: u64,
    exit: Arc<AtomicI32>,
    shot: ShotState,
    message: Option<(String, Instant)>,
    export: panels::ExportState,
    previews: Vec<(String, egui::TextureHandle)>,
    bench: Option<Bench>,
    /// The open point set (instead of `doc`).
    points: Option<points::PointDoc>,
    /// How point sets are drawn (scale, alpha, background, aggregate).
    look: points::PointLook,
    /// `--screenshot`: the data area's line (printed once, when the screenshot is taken), and the last
    /// progress seen (a signature of what changed, and when).
    shot_line: Option<String>,
    shot_progress: (u64, Instant),
}

/// The `--bench-frames` run: phases and what was measured.
struct Bench {
    phase: u8,
    n: u32,
    frames: u32,
    still_ui: Vec<f64>,
    pan_ui: Vec<f64>,
    pan_start: Option<Instant>,
    palette_bytes: Vec<u64>,
    /// Tile bytes uploaded during the palette (and, for composites, limit) changes: none.
    palette_tile_bytes: u64,
    last_upload: (u64, u64),
    rss_anon_peak_kb: u64,
    /// Peak CPU-cache and GPU tile bytes seen at the start of a frame, while panning.
    peak_cpu: u64,
    peak_gpu: u64,
    /// Point sets: grids received while panning, timings, aggregations and uploads around the style changes.
    grids_at: u64,
    pan_secs: f64,
    settle_start: Option<Instant>,
    settle_secs: f64,
    aggs_at: u64,
    last_point_up: Option<crate::render::PointUploads>,
    style_grid_bytes: u64,
    /// Aggregation time of the first exact grid.
    exact_secs: f64,
    exact_in_view: u64,
}

/// Whether what the data area shows is final, for `--screenshot`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Completion {
    /// Tiles (or the exact grid) are still on their way.
    Pending,
    /// Everything in view is drawn from exact values.
    Complete,
    /// Everything in view is drawn, partly from previews that nothing will replace (why).
    Preview(String),
    /// The view cannot be completed (why): the screenshot is taken as it is and exits with code 2.
    Incomplete(String),
}

/// `--screenshot`'s rule for a view of `visible` tiles (at least one), `drawn` of them resident (`previews` of
/// those from previews), `failed` the errors of visible tiles not drawn; `previews_stay`: why nothing will
/// replace the previews (None: a pyramid build will). Failed tiles end the wait once every other tile is drawn.
fn completion(
    visible: usize,
    drawn: usize,
    failed: &[&str],
    previews: usize,
    previews_stay: Option<String>,
) -> Completion {
    match failed.first() {
        Some(first) if drawn + failed.len() >= visible => {
            Completion::Incomplete(format!("{} of {visible} visible tiles failed: {first}", failed.len()))
        }
        _ if drawn < visible => Completion::Pending,
        _ if previews == 0 => Completion::Complete,
        _ => previews_stay.map_or(Completion::Pending, Completion::Preview),
    }
}

/// A screenshot waits at most this long without any progress (tiles loaded or failed, the pyramid build moving)
/// before it is taken as it is (exit code 2): whatever happens, `--screenshot` ends.
const SHOT_STALL_SECS: u64 = 60;

#[derive(PartialEq)]
enum ShotState {
    Off,
    /// Frames drawn since everything became resident.
    Waiting(u32),
    Requested,
}

impl Viewer {
    fn new(ctx: egui::Context, opts: LaunchOptions, exit: Arc<AtomicI32>) -> Viewer {
        let (base, reversed) = match opts.colormap.strip_suffix("_r") {
            Some(b) => (b.to_string(), true),
            None => (opts.colormap.clone(), false),
        };
        let colormap = Colormap::resolve(&opts.colormap).ok().unwrap_or_else(|| {
            Colormap::by_name("viridis").unwrap_or(Colormap { name: "gray".into(), table: [[0, 0, 0, 255]; 256] })
        });
        let display = Display {
            colormap,
            lo: opts.limits.map_or(0.0, |l| l.0),
            hi: opts.limits.map_or(1.0, |l| l.1),
            scale: opts.scale,
            gamma: opts.gamma,
            nan_color: opts.nan_color,
        };
        let shot = if opts.screenshot.is_some() { ShotState::Waiting(0) } else { ShotState::Off };
        let mut v = Viewer {
            ctx,
            doc: None,
            error: None,
            parts: None,
            display,
            cmap_base: base,
            reversed,
            recent: panels::load_recent(),
            next_salt: 1,
            exit,
            shot,
            message: None,
            export: panels::ExportState::default(),
            previews: Vec::new(),
            bench: opts.bench_frames.map(|n| Bench {
                phase: 0,
                n,
                frames: 0,
                still_ui: Vec::new(),
                pan_ui: Vec::new(),
                pan_start: None,
                palette_bytes: Vec::new(),
                palette_tile_bytes: 0,
                last_upload: (0, 0),
                rss_anon_peak_kb: 0,
                peak_cpu: 0,
                peak_gpu: 0,
                grids_at: 0,
                pan_secs: 0.0,
                settle_start: None,
                settle_secs: 0.0,
                aggs_at: 0,
                last_point_up: None,
                style_grid_bytes: 0,
                exact_secs: 0.0,
                exact_in_view: 0,
            }),
            points: None,
            look: opts.points.as_ref().map_or_else(points::PointLook::default, |p| points::PointLook {
                scale: p.scale,
                alpha: p.alpha,
                background: p.background,
                agg: p.agg,
                marker: p.marker,
            }),
            opts: opts.clone(),
            shot_line: None,
            shot_progress: (0, Instant::now()),
        };
        if let Some(p) = &opts.points {
            v.open_points(&p.path, &p.spec);
        } else if let Some(spec) = opts.open {
            v.open(&spec);
        }
        v
    }

    /// Opens a source, replacing the current one; a failure shows the error panel. A file with no layout flags
    /// opens as points when it looks like a point set (see `points::is_point_file`).
    pub(crate) fn open(&mut self, spec: &OpenSpec) {
        if !spec.demo && spec.raw.is_none() && points::is_point_file(&spec.path) {
            return self.open_points(&spec.path, &crate::source::points::PointSpec::default());
        }
        self.parts = (!spec.demo && spec.raw.is_none())
            .then(|| {
                let (path, written) = crate::source::registry::split_part(&spec.path);
                let list = crate::source::registry::parts(&path);
                let base = OpenSpec { path, member: None, ..spec.clone() };
                (base, spec.member.clone().or(written), list)
            })
            .filter(|p| !p.2.is_empty());
        match source::open(spec) {
            Ok(src) => {
                let info = src.info().clone();
                let levels = Levels::new(info.image.width, info.image.height, TILE);
                let ctx = self.ctx.clone();
                let wake: Arc<dyn Fn() + Send + Sync> = Arc::new(move || ctx.request_repaint());
                let method = self.opts.method;
                let tiles = Arc::new(crate::pyramid::levels::TileSource::new(src.clone(), levels, method));
                let store = crate::pyramid::persist::find(src.as_ref(), method).unwrap_or_else(|e| {
                    eprintln!("vastview: {e}");
                    None
                });
                tiles.set_store(store.clone());
                let cache = match TileCache::with_source(tiles.clone(), 0, self.opts.cpu_budget, wake) {
                    Ok(c) => c,
                    Err(e) => return self.fail(e.to_string()),
                };
                let im = info.image;
                let bytes = im.width * im.height * im.channels * info.dtype.size() as u64;
                // A file with its own resolution levels needs no pyramid build: tiles come from those levels.
                let native = !src.native_levels().is_empty();
                let build = (store.is_none() && !native && !spec.demo && bytes >= self.opts.build_min_bytes)
                    .then(|| Self::start_build(spec, src.clone(), tiles, method, self.ctx.clone()));
                if self.opts.limits.is_none() || self.doc.is_some() {
                    let big = im.width * im.height > crate::pyramid::stats::SAMPLE_BUDGET;
                    let l = match &store {
                        _ if im.is_color() => Ok(crate::pyramid::Limits { lo: 0.0, hi: 255.0 }),
                        Some(st) if big => crate::headless::region_percentiles(st, 0, &im.rect(), 0.5, 99.5).map(|l| {
                            if l.lo.is_finite() {
                                l
                            } else {
                                crate::pyramid::Limits { lo: 0.0, hi: 1.0 }
                            }
                        }),
                        _ => crate::pyramid::percentile_limits(src.as_ref(), 0, 0.5, 99.5, 1 << 16),
                    };
                    match l {
                        Ok(l) => (self.display.lo, self.display.hi) = (l.lo, l.hi),
                        Err(e) => return self.fail(e.to_string()),
                    }
                } else if let (Some(s), Some((lo, hi))) = (info.scaling, self.opts.limits) {
                    // --limits are physical values; the shader (and the panel, for now) work in stored ones.
                    (self.display.lo, self.display.hi) = (s.invert(lo), s.invert(hi));
                }
                if self.doc.is_none() && im.is_color() {
                    if let Some(n) = crate::palette::rgb_note(&info.path, &self.opts.display_flags) {
                        eprintln!("vastview: note: {n}");
                    }
                }
                let slice = if self.doc.is_none() {
                    match crate::source::axes::resolve_index(
                        &info.path,
                        &info.axes,
                        im.channels,
                        self.opts.index.as_deref(),
                        self.opts.slice,
                    ) {
                        Ok(s) => s,
                        Err(e) => return self.fail(e.to_string()),
                    }
                } else {
                    0
                };
                let composite = match self.channel_composite(&src, &store, slice) {
                    Ok(c) => c,
                    Err(e) => return self.fail(e.to_string()),
                };
                self.next_salt += 1;
                if !spec.demo {
                    panels::push_recent(&mut self.recent, &spec.path);
                }
                self.doc = Some(Doc {
                    src,
                    build,
                    method,
                    cache,
                    levels,
                    slice,
                    axis: 0,
                    view: None,
                    salt: self.next_salt,
                    hover: None,
                    hist: None,
                    hist_key: 0,
                    shown: Shown::default(),
                    hist_stale: true,
                    hist_time: None,
                    previews_drawn: 0,
                    preview_tiles: HashSet::new(),
                    failed_seen: HashMap::new(),
                    composite,
                });
                if let Some(cp) = self.doc.as_ref().and_then(|d| d.composite.as_ref()) {
                    let l = &cp.looks[cp.active];
                    (self.display.colormap, self.display.lo, self.display.hi) = (l.colormap.clone(), l.lo, l.hi);
                    (self.cmap_base, self.reversed) = (l.cmap_base.clone(), l.reversed);
                }
                self.points = None;
                self.error = None;
            }
            Err(e) => self.fail(e.to_string()),
        }
    }

    /// Starts building the pyramid on a background thread. Tiles are read from the partial file as soon
    /// as they are stored; the build reads through its own mapping of the file (streaming advice).
    fn start_build(
        spec: &OpenSpec,
        src: Arc<dyn ArraySource>,
        tiles: Arc<crate::pyramid::levels::TileSource>,
        method: crate::pyramid::Method,
        ctx: egui::Context,
    ) -> PyramidBuild {
        let progress = Arc::new(crate::pyramid::Progress::default());
        let outcome = Arc::new(std::sync::Mutex::new(None));
        let (p, o, spec) = (progress.clone(), outcome.clone(), spec.clone());
        let run = move || -> crate::Result<()> {
            let own = source::open(&spec).unwrap_or(src);
            let job = crate::pyramid::persist::BuildJob::prepare(own.as_ref(), method)?;
            tiles.set_store(Some(job.store.clone()));
            job.run(own.as_ref(), &p)?;
            Ok(())
        };
        let spawned = std::thread::Builder::new().name("vastview-pyramid".into()).spawn(move || {
            let r = run().map_err(|e| e.to_string());
            if let Err(e) = &r {
                if e != "cancelled" {
                    eprintln!("vastview: pyramid: {e}");
                }
            }
            *o.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(r);
            ctx.request_repaint();
        });
        if let Err(e) = spawned {
            *outcome.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Err(e.to_string()));
        }
        PyramidBuild { progress, outcome, started: Instant::now(), epoch_seen: 0 }
    }

    /// The build's state for the status bar, and whether it is still running (then a progress bar shows).
    fn build_status(doc: &Doc) -> Option<(String, bool)> {
        let b = doc.build.as_ref()?;
        let outcome = b.outcome.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        Some(match outcome {
            None => {
                let done = b.progress.done.load(Ordering::Relaxed);
                let from = b.progress.resumed_from.load(Ordering::Relaxed);
                let rate = done.saturating_sub(from) as f64 / b.started.elapsed().as_secs_f64().max(1e-3) / 1e6;
                (format!("building pyramid {:.0} % ({rate:.0} MB/s)", b.progress.fraction() * 100.0), true)
            }
            Some(Ok(())) => ("pyramid built".into(), false),
            Some(Err(e)) => (format!("pyramid not built: {e}"), false),
        })
    }

    /// The composite of a newly opened image: each channel's colormap and limits as `render` takes them from the
    /// channel flags (those of the command line for the first file), `--limits`, the file's channel names,
    /// colours and windows, else the channel's own 0.5 and 99.5 percentiles. Starts as one channel when `--index`
    /// names the channel axis.
    fn channel_composite(
        &self,
        src: &Arc<dyn ArraySource>,
        store: &Option<Arc<crate::pyramid::Store>>,
        slice: u64,
    ) -> crate::Result<Option<Composite>> {
        use crate::headless::{ChannelArgs, LimitsSpec, RenderSpec};
        let info = src.info();
        let first = self.doc.is_none();
        let mut args = if first { self.opts.channels.clone() } else { ChannelArgs::default() };
        let base = RenderSpec {
            slice,
            region: None,
            size: None,
            colormap: self.opts.colormap.clone(),
            limits: match self.opts.limits {
                Some((lo, hi)) if first => LimitsSpec::Explicit(lo, hi),
                _ => LimitsSpec::Percentiles(0.5, 99.5),
            },
            scale: self.display.scale,
            gamma: self.display.gamma,
            nan_color: self.display.nan_color,
            method: self.opts.method,
            quality: crate::headless::Quality::Auto,
        };
        args.limits_given = first && self.opts.limits.is_some();
        let Some(specs) = crate::headless::composite_specs(info, &args, &base, true)? else { return Ok(None) };
        let Some(axis) =
            crate::source::axes::channel_axis(&info.path, &info.axes, info.image.channels, args.axis.as_deref())?
        else {
            return Ok(None);
        };
        let outer = info.outer_axes();
        let im = info.image;
        let big = im.width * im.height > crate::pyramid::stats::SAMPLE_BUDGET;
        let mut looks = Vec::with_capacity(specs.len());
        for (label, spec) in specs {
            let (lo, hi) = match spec.limits {
                LimitsSpec::Explicit(lo, hi) => match info.scaling {
                    Some(s) => (s.invert(lo), s.invert(hi)),
                    None => (lo, hi),
                },
                _ => {
                    let l = match store {
                        Some(st) if big => crate::headless::region_percentiles(st, spec.slice, &im.rect(), 0.5, 99.5)?,
                        _ => crate::pyramid::percentile_limits(src.as_ref(), spec.slice, 0.5, 99.5, 1 << 16)?,
                    };
                    if l.lo.is_finite() && l.hi.is_finite() {
                        (l.lo, l.hi)
                    } else {
                        (0.0, 1.0)
                    }
                }
            };
            let colormap = crate::palette::Colormap::named(&info.path, &spec.colormap)?;
            let (cmap_base, reversed) = match spec.colormap.strip_suffix("_r") {
                Some(b) if Colormap::by_name(b).is_some() => (b.to_string(), true),
                _ => (spec.colormap.clone(), false),
            };
            looks.push(ChannelLook { label, colormap, cmap_base, reversed, lo, hi, visible: true });
        }
        let active = (crate::source::axes::index_of(outer, slice)[axis] as usize).min(looks.len() - 1);
        let on = !(first && crate::source::axes::index_names(&info.axes, axis, args.index.as_deref()));
        Ok(Some(Composite { axis, looks, on, active }))
    }

    /// Keeps `display` on the active channel: when the slider (or `[`/`]`) picked another channel, the old one's
    /// colormap and limits are stored and the new one's loaded.
    pub(crate) fn sync_channel(&mut self) {
        let Some(doc) = self.doc.as_mut() else { return };
        let Some(cp) = doc.composite.as_mut() else { return };
        let now = crate::source::axes::index_of(doc.src.info().outer_axes(), doc.slice)[cp.axis] as usize;
        if now == cp.active || now >= cp.looks.len() {
            return;
        }
        let old = &mut cp.looks[cp.active];
        (old.colormap, old.lo, old.hi) = (self.display.colormap.clone(), self.display.lo, self.display.hi);
        (old.cmap_base, old.reversed) = (self.cmap_base.clone(), self.reversed);
        let new = &cp.looks[now];
        (self.display.colormap, self.display.lo, self.display.hi) = (new.colormap.clone(), new.lo, new.hi);
        (self.cmap_base, self.reversed) = (new.cmap_base.clone(), new.reversed);
        cp.active = now;
    }

    fn fail(&mut self, msg: String) {
        eprintln!("vastview: {msg}");
        self.error = Some(msg);
        self.doc = None;
        self.points = None;
    }

    pub(crate) fn set_colormap(&mut self) {
        let name = if self.reversed { format!("{}_r", self.cmap_base) } else { self.cmap_base.clone() };
        if let Ok(c) = Colormap::resolve(&name) {
            self.display.colormap = c;
        }
    }

    fn key(doc: &Doc, id: &TileId) -> TileKey {
        TileKey { level: (doc.salt << 40) ^ (id.slice << 8) ^ u64::from(id.level), tx: id.tx, ty: id.ty }
    }

    /// Input on the data area: drag, wheel, `+`/`-`/arrows (`navigate`), then `f` fits, `1` is 1:1, `[`/`]`
    /// step the chosen outer axis (slices), `a` chooses the next outer axis.
    fn handle_input(&mut self, resp: &egui::Response, origin: egui::Pos2, ppp: f32) {
        let Some(doc) = self.doc.as_mut() else { return };
        let Some(view) = doc.view.as_mut() else { return };
        let im = doc.src.info().image;
        let (cw, ch) = (view.vw / 2.0, view.vh / 2.0);
        let keys = navigate(&self.ctx, resp, origin, ppp, view);
        for k in keys {
            match k {
                egui::Key::F => {
                    if let Some(view) = doc.view.as_mut() {
                        *view = View::fit(im.width, im.height, view.vw, view.vh);
                    }
                }
                egui::Key::Num1 => {
                    if let Some(view) = doc.view.as_mut() {
                        view.zoom_about(cw, ch, 1.0 / view.zoom);
                    }
                }
                egui::Key::OpenBracket => doc.step_axis(-1),
                egui::Key::CloseBracket => doc.step_axis(1),
                egui::Key::A => {
                    let n = doc.src.info().outer_axes().len().max(1);
                    doc.axis = (doc.axis + 1) % n;
                }
                // Composite ↔ one channel (the slider picks it).
                egui::Key::C => {
                    if let Some(cp) = doc.composite.as_mut() {
                        cp.on = !cp.on;
                        doc.axis = cp.axis;
                    }
                }
                _ => {}
            }
        }
    }

    /// The data area: requests tiles, uploads the ready ones, and draws fine tiles over their nearest
    /// resident ancestors (so loading never shows a hole); failed tiles are outlined. Returns whether the view
    /// is final (for `--screenshot`).
    fn data_area(&mut self, ui: &mut egui::Ui, frame: &mut eframe::Frame) -> Completion {
        let rect = ui.max_rect();
        let ppp = ui.ctx().pixels_per_point();
        let resp = ui.interact(rect, ui.scope_id().with("data"), egui::Sense::click_and_drag());
        let (origin_px, size_px) = area_px(rect, ppp);
        {
            let Some(doc) = self.doc.as_mut() else { return Completion::Pending };
            let im = doc.src.info().image;
            let (vw, vh) = (f64::from(size_px[0]), f64::from(size_px[1]));
            let (zoom, center) = (self.opts.zoom, self.opts.center);
            let view = doc.view.get_or_insert_with(|| {
                let mut v = View::fit(im.width, im.height, vw, vh);
                if let Some(z) = zoom {
                    v.zoom = z.clamp(crate::view::MIN_ZOOM, crate::view::MAX_ZOOM);
                }
                if let Some((x, y)) = center {
                    (v.cx, v.cy) = (x, y);
                }
                v
            });
            view.vw = vw;
            view.vh = vh;
        }
        self.handle_input(&resp, rect.min, ppp);
        self.sync_channel();
        let Some(doc) = self.doc.as_mut() else { return Completion::Pending };
        let Some(view) = doc.view.as_mut() else { return Completion::Pending };
        // Far-off centres (`--center 1e308,…`, endless panning) are kept where the view math stays finite.
        view.clamp_center();
        let view = *view;
        let levels = doc.levels;
        let level = view.level(levels.count);
        let slice = doc.slice;
        // What is drawn: the one slice, or each shown channel of a composite (its index among the channels and
        // its slice; `MAIN` marks the single-image renderer).
        let layers: Vec<(usize, u64)> = match &doc.composite {
            Some(cp) if cp.on => {
                let outer = doc.src.info().outer_axes();
                (0..cp.looks.len())
                    .filter(|c| cp.looks[*c].visible)
                    .map(|c| (c, crate::source::axes::with_entry(outer, slice, cp.axis, c as u64)))
                    .collect()
            }
            _ => vec![(MAIN, slice)],
        };
        let id = |slice: u64, level: u32, (tx, ty): (u64, u64)| TileId { slice, level, tx, ty };
        // Wanted: the coarsest level (always there to fall back on), the visible tiles at `level`
        // nearest the centre first, then a prefetch ring, for each layer.
        let top = levels.count - 1;
        let mut wanted = Vec::new();
        let visible = view.tiles(&levels.grid(level), level, 0);
        let seen: HashSet<(u64, u64)> = visible.iter().copied().collect();
        let ring: Vec<(u64, u64)> =
            view.tiles(&levels.grid(level), level, 1).into_iter().filter(|t| !seen.contains(t)).collect();
        for &(_, s) in &layers {
            for t in view.tiles(&levels.grid(top), top, 0) {
                wanted.push(TileRequest { id: id(s, top, t), tier: Tier::Visible, priority: -1.0 });
            }
            for (i, t) in visible.iter().enumerate() {
                wanted.push(TileRequest { id: id(s, level, *t), tier: Tier::Visible, priority: i as f64 });
            }
            for (i, t) in ring.iter().enumerate() {
                wanted.push(TileRequest { id: id(s, level, *t), tier: Tier::Prefetch, priority: i as f64 });
            }
        }
        if let Some(b) = doc.build.as_mut() {
            let epoch = b.progress.epoch.load(Ordering::Acquire);
            if epoch != b.epoch_seen {
                b.epoch_seen = epoch;
                doc.cache.refresh_previews();
            }
            if b.outcome.lock().unwrap_or_else(std::sync::PoisonError::into_inner).is_none() {
                ui.ctx().request_repaint_after(std::time::Duration::from_millis(250));
            }
        }
        doc.cache.request(&wanted);
        let fresh = doc.cache.take_ready();

        // Upload what is ready and needed, then decide each visible tile's stand-in.
        let Some(rs) = frame.wgpu_render_state() else { return Completion::Pending };
        let mut renderer = rs.renderer.write();
        let Some(vg) = renderer.callback_resources.get_mut::<ViewerGpu>() else { return Completion::Pending };
        for &(c, _) in &layers {
            vg.renderer(c).begin_frame();
        }
        // Renderers this frame does not draw with (the single image's in a composite, or the channels') give
        // their tiles back, so all of them together stay within the GPU budget.
        for c in std::iter::once(MAIN).chain(0..crate::palette::composite::MAX_CHANNELS) {
            if !layers.iter().any(|(l, _)| *l == c) && vg.renderer(c).resident_tiles() > 0 {
                vg.renderer(c).begin_frame();
                vg.renderer(c).evict_to(0);
            }
        }
        // Whether each texture uploaded this frame is a preview (recorded once, at upload).
        let mut uploaded: Vec<(TileId, bool)> = Vec::new();
        // A tile loaded again (an exact tile replacing its preview) replaces the resident texture.
        for tid in &fresh {
            let Some(&(c, _)) = layers.iter().find(|(_, s)| *s == tid.slice) else { continue };
            let key = Self::key(doc, tid);
            if vg.renderer(c).has_tile(&key) {
                if let Some(data) = doc.cache.get(tid) {
                    let (gpu, r) = vg.split(c);
                    let _ = r.upload(gpu, key, &data);
                    uploaded.push((*tid, data.preview));
                }
            }
        }
        let mut uploads = 0;
        let resident =
            |vg: &mut ViewerGpu, c: usize, tid: &TileId, uploads: &mut u32, uploaded: &mut Vec<(TileId, bool)>| {
                let key = Self::key(doc, tid);
                if vg.renderer(c).has_tile(&key) {
                    return true;
                }
                if *uploads >= 64 {
                    return false; // spread big uploads over frames
                }
                match doc.cache.get(tid) {
                    Some(data) => {
                        *uploads += 1;
                        uploaded.push((*tid, data.preview));
                        let (gpu, r) = vg.split(c);
                        r.upload(gpu, key, &data).is_ok()
                    }
                    None => false,
                }
            };
        // Visible tiles (of every layer) and those drawn exact at `level`.
        let mut visible_ids: Vec<TileId> = Vec::new();
        let mut fine_all: Vec<TileId> = Vec::new();
        let mut layer_draws: Vec<(usize, Vec<TileDraw>)> = Vec::new();
        for &(c, s) in &layers {
            let mut fine = Vec::new();
            let mut stand_ins: Vec<TileId> = Vec::new();
            for t in &visible {
                let tid = id(s, level, *t);
                visible_ids.push(tid);
                if resident(vg, c, &tid, &mut uploads, &mut uploaded) {
                    fine.push(tid);
                    continue;
                }
                let mut a = tid;
                while a.level < top {
                    a = a.parent();
                    if resident(vg, c, &a, &mut uploads, &mut uploaded) {
                        if !stand_ins.contains(&a) {
                            stand_ins.push(a);
                        }
                        break;
                    }
                }
            }
            stand_ins.sort_by_key(|a| std::cmp::Reverse(a.level));
            // The shader sees framebuffer pixels: the mapping is relative to the data area's origin, or to the
            // layer's corner for a composite's channel layer.
            let (ox, oy) = if c == MAIN { (f64::from(origin_px[0]), f64::from(origin_px[1])) } else { (0.0, 0.0) };
            let draws: Vec<TileDraw> = stand_ins
                .iter()
                .chain(fine.iter())
                .map(|tid| {
                    let g = levels.grid(tid.level);
                    let r = g.tile_rect(tid.tx, tid.ty);
                    let p = view.place(tid.level, tid.tx, tid.ty, TILE, (r.width(), r.height()));
                    let [mx, bx, my, by] = p.texel_map;
                    TileDraw { key: Self::key(doc, tid), rect: p.rect, texel_map: [mx, bx - ox * mx, my, by - oy * my] }
                })
                .collect();
            fine_all.extend(fine);
            layer_draws.push((c, draws));
        }
        drop(renderer);
        let size = [size_px[0] as u32, size_px[1] as u32];
        match (&doc.composite, layer_draws.first()) {
            (Some(cp), _) if cp.on => {
                let layers = layer_draws
                    .into_iter()
                    .map(|(c, draws)| {
                        let display =
                            if c == cp.active { self.display.clone() } else { cp.looks[c].display(&self.display) };
                        (c, draws, display)
                    })
                    .collect();
                let cb = gpu::CompositeCallback { layers, channels: cp.looks.len(), origin_px, size_px: size };
                ui.painter().add(gpu::Callback::new_paint_callback(rect, cb));
            }
            (_, Some((_, draws))) => {
                let cb = TileCallback { draws: draws.clone(), display: self.display.clone(), size_px: size };
                ui.painter().add(gpu::Callback::new_paint_callback(rect, cb));
            }
            _ => {}
        }
        // Failed tiles are outlined and retried by the cache.
        for tid in &visible_ids {
            if let TileState::Failed(msg) = doc.cache.state(tid) {
                let t = (tid.tx, tid.ty);
                let g = levels.grid(level);
                let r = g.tile_rect(t.0, t.1);
                let p = view.place(level, t.0, t.1, TILE, (r.width(), r.height()));
                let tl = rect.min + egui::vec2(p.rect[0] as f32, p.rect[1] as f32) / ppp;
                let tr = egui::Rect::from_min_size(tl, egui::vec2(p.rect[2] as f32, p.rect[3] as f32) / ppp);
                ui.painter().rect_stroke(tr, 0.0, egui::Stroke::new(2.0, egui::Color32::RED), egui::StrokeKind::Inside);
                // The message wrapped inside the tile (and clipped to it), so neighbours' messages never overlap.
                let galley = ui.painter().layout(
                    format!("failed: {msg}"),
                    egui::FontId::default(),
                    egui::Color32::RED,
                    (tr.width() - 8.0).max(16.0),
                );
                let at = tr.center() - galley.size() / 2.0;
                ui.painter().with_clip_rect(tr.intersect(rect)).galley(at, galley, egui::Color32::RED);
            }
        }
        // The exact stored value under the cursor, read from the source (not the texture).
        let hover = resp.hover_pos().map(|p| {
            let (sx, sy) = (f64::from((p.x - rect.min.x) * ppp), f64::from((p.y - rect.min.y) * ppp));
            view.screen_to_data(sx, sy)
        });
        let im = doc.src.info().image;
        doc.hover = match hover {
            Some((x, y)) if x >= 0.0 && y >= 0.0 && (x as u64) < im.width && (y as u64) < im.height => {
                let (x, y) = (x as u64, y as u64);
                match &doc.hover {
                    Some((hx, hy, s)) if *hx == x && *hy == y => Some((x, y, s.clone())),
                    _ => {
                        let probe = |s: u64| {
                            crate::headless::probe_text(doc.src.as_ref(), s, x, y).unwrap_or_else(|e| e.to_string())
                        };
                        // A composite: every channel's value, by its name.
                        let s = match &doc.composite {
                            Some(cp) if cp.on => {
                                let outer = doc.src.info().outer_axes();
                                let each: Vec<String> = cp
                                    .looks
                                    .iter()
                                    .enumerate()
                                    .map(|(c, l)| {
                                        let s = crate::source::axes::with_entry(outer, slice, cp.axis, c as u64);
                                        format!("{}: {}", l.label, probe(s))
                                    })
                                    .collect();
                                each.join("  ")
                            }
                            _ => probe(slice),
                        };
                        Some((x, y, s))
                    }
                }
            }
            _ => None,
        };
        // Preview tiles on screen: not final while a pyramid build may still replace them.
        for (tid, preview) in uploaded {
            if preview {
                doc.preview_tiles.insert(tid);
            } else {
                doc.preview_tiles.remove(&tid);
            }
        }
        let previews = fine_all.iter().filter(|t| doc.preview_tiles.contains(t)).count();
        doc.previews_drawn = previews;
        // Visible tiles that failed stay failed for the screenshot until they are drawn (a retry in flight
        // does not make the view pending again).
        for &tid in &visible_ids {
            if fine_all.contains(&tid) {
                doc.failed_seen.remove(&tid);
            } else if let TileState::Failed(msg) = doc.cache.state(&tid) {
                doc.failed_seen.insert(tid, msg);
            }
        }
        let failed: Vec<&str> = visible_ids.iter().filter_map(|t| doc.failed_seen.get(t).map(String::as_str)).collect();
        // Previews stay until a pyramid replaces them: one is being built, or was (wait), or none will be (why).
        let previews_stay = match Self::build_status(doc) {
            Some((_, true)) => None,
            Some(_) if doc.build.as_ref().is_some_and(PyramidBuild::succeeded) => None,
            Some((why, false)) => Some(why),
            None if !doc.src.native_levels().is_empty() => None,
            None if self.opts.build_min_bytes == u64::MAX => Some("no pyramid (--no-pyramid)".to_string()),
            None => Some("no pyramid is built for this file".to_string()),
        };
        let completion = if visible.is_empty() {
            Completion::Incomplete(format!(
                "nothing of the {}x{} image is in view (centre {},{} at zoom {})",
                im.width,
                im.height,
                crate::numfmt::format_f64(view.cx),
                crate::numfmt::format_f64(view.cy),
                crate::numfmt::format_f64(view.zoom)
            ))
        } else {
            completion(visible_ids.len(), fine_all.len(), &failed, previews, previews_stay)
        };
        if completion == Completion::Pending {
            ui.ctx().request_repaint();
        }
        if self.opts.screenshot.is_some() {
            let s = doc.cache.stats();
            let build_done = doc.build.as_ref().map_or(0, |b| b.progress.done.load(Ordering::Relaxed));
            self.shot_line = Some(format!(
                "data area: {},{},{},{} px; level {level}; {} of {} visible tiles resident",
                origin_px[0],
                origin_px[1],
                size_px[0],
                size_px[1],
                fine_all.len(),
                visible_ids.len()
            ));
            let sig = {
                use std::hash::{Hash, Hasher};
                let mut h = std::collections::hash_map::DefaultHasher::new();
                (s.loaded_total, s.failed, s.ready, fine_all.len(), previews, build_done).hash(&mut h);
                h.finish()
            };
            if sig != self.shot_progress.0 {
                self.shot_progress = (sig, Instant::now());
            }
        }
        let drawn = fine_all.iter().filter(|t| t.slice == slice).count();
        doc.shown = Shown { level, drawn, tiles: visible };
        completion
    }

    /// One line, whatever the window's width: short fields first (value under the cursor, zoom, tiles, memory),
    /// then the pyramid build and messages, truncated to the space left (hover for the whole text).
    fn status_bar(&self, ui: &mut egui::Ui, gpu_mem: (u64, u64, u64)) {
        ui.horizontal(|ui| {
            let Some(doc) = &self.doc else {
                ui.label("no file open");
                return;
            };
            match &doc.hover {
                Some((x, y, v)) => {
                    let info = doc.src.info();
                    let at = crate::source::axes::position_text(&info.axes, info.image.channels, doc.slice, *x, *y)
                        .map_or(String::new(), |t| format!(" ({t})"));
                    ui.add(
                        egui::Label::new(egui::RichText::new(format!("x {x} y {y}{at} = {v}")).monospace()).truncate(),
                    )
                }
                None => ui.monospace("x – y –"),
            };
            ui.separator();
            if doc.src.info().image.slices > 1 {
                ui.monospace(doc.src.info().slice_label(doc.slice));
                ui.separator();
            }
            if let Some(v) = &doc.view {
                ui.label(format!("zoom {:.1} %  level {}", v.zoom * 100.0, v.level(doc.levels.count)));
            }
            ui.separator();
            let s = doc.cache.stats();
            let mut tiles = format!("tiles {} resident", s.ready);
            if s.loading + s.queued > 0 {
                tiles.push_str(&format!(", {} loading", s.loading + s.queued));
            }
            ui.label(tiles).on_hover_text(format!(
                "{} loading, {} queued, {} resident, {} failed",
                s.loading, s.queued, s.ready, s.failed
            ));
            if s.failed > 0 {
                ui.colored_label(egui::Color32::from_rgb(255, 90, 90), format!("{} failed", s.failed));
            }
            ui.separator();
            let mib = |b: u64| b as f64 / 1048576.0;
            ui.label(format!(
                "CPU {:.0}/{:.0} MiB  GPU {:.0}/{:.0} MiB",
                mib(s.bytes),
                mib(s.budget),
                mib(gpu_mem.0),
                mib(gpu_mem.1)
            ))
            .on_hover_text(format!(
                "tiles in CPU memory {:.1} MiB of {:.0}; on the GPU {:.1} MiB of {:.0}, {:.1} MiB uploaded in all",
                mib(s.bytes),
                mib(s.budget),
                mib(gpu_mem.0),
                mib(gpu_mem.1),
                mib(gpu_mem.2)
            ));
            if let Some((text, building)) = Self::build_status(doc) {
                ui.separator();
                if building {
                    if let Some(b) = &doc.build {
                        ui.add(egui::ProgressBar::new(b.progress.fraction() as f32).desired_width(80.0));
                    }
                }
                let text = if doc.previews_drawn > 0 {
                    format!("preview ({} tiles) · {text}", doc.previews_drawn)
                } else {
                    text
                };
                ui.add(egui::Label::new(text.clone()).truncate()).on_hover_text(text);
            }
            if let Some((msg, t)) = &self.message {
                if t.elapsed().as_secs() < 8 {
                    ui.separator();
                    ui.add(egui::Label::new(msg.as_str()).truncate()).on_hover_text(msg.as_str());
                }
            }
        });
    }

    fn gpu_memory(frame: &eframe::Frame) -> (u64, u64, u64) {
        frame
            .wgpu_render_state()
            .and_then(|rs| {
                rs.renderer.read().callback_resources.get::<ViewerGpu>().map(|v| {
                    let all = || std::iter::once(&v.tiles).chain(&v.channels);
                    // The single image's budget is the whole budget; the channels share it.
                    let u = all().map(|r| r.resident_bytes().0).sum();
                    (u, v.tiles.resident_bytes().1, all().map(|r| r.stats.tile_bytes).sum())
                })
            })
            .unwrap_or((0, 0, 0))
    }

    /// `--screenshot`: once the view is final (complete, previews nothing will replace, or incomplete for good),
    /// two more frames, then the screenshot, one line about the data area (with `preview` and why, when so), and
    /// the exit code: 0, or 2 with a one-line reason when the view cannot be completed (a failed open, failed
    /// tiles, nothing of the image in view, or no progress for `SHOT_STALL_SECS`).
    fn take_screenshot_when_ready(&mut self, ui: &egui::Ui, completion: Completion) {
        let Some(path) = self.opts.screenshot.clone() else { return };
        let ShotState::Waiting(n) = self.shot else { return };
        ui.ctx().request_repaint();
        let completion = match completion {
            _ if self.error.is_some() => Completion::Incomplete(String::new()),
            Completion::Pending
                if self.doc.is_some() && self.shot_progress.1.elapsed().as_secs() >= SHOT_STALL_SECS =>
            {
                Completion::Incomplete(format!("the view was still loading after {SHOT_STALL_SECS} s without progress"))
            }
            c => c,
        };
        if completion == Completion::Pending {
            return;
        }
        // Two more frames so the last uploads are on screen, then ask.
        if n < 2 {
            self.shot = ShotState::Waiting(n + 1);
            return;
        }
        self.shot = ShotState::Requested;
        if let Some(line) = self.shot_line.take() {
            match &completion {
                Completion::Preview(why) => eprintln!("{line}; preview ({why})"),
                _ => eprintln!("{line}"),
            }
        }
        let code = match &completion {
            // The error panel's message was printed when the open failed.
            Completion::Incomplete(why) if why.is_empty() => 2,
            Completion::Incomplete(why) => {
                let what = self
                    .doc
                    .as_ref()
                    .map(|d| d.src.info().path.clone())
                    .or_else(|| self.points.as_ref().map(|p| p.path.clone()))
                    .unwrap_or_default();
                eprintln!("vastview: {}: screenshot of an incomplete view: {why}", what.display());
                2
            }
            _ => 0,
        };
        let exit = self.exit.clone();
        let ctx = ui.ctx().clone();
        ui.ctx().request_screenshot(move |img| {
            let r = panels::save_color_image(&img, &path);
            if let Err(e) = &r {
                eprintln!("vastview: {}: cannot save screenshot: {e}", path.display());
            }
            exit.store(if r.is_ok() { code } else { 1 }, Ordering::SeqCst);
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
        });
    }
}

impl eframe::App for Viewer {
    fn ui(&mut self, ui: &mut egui::Ui, frame: &mut eframe::Frame) {
        let t0 = Instant::now();
        // Files dropped anywhere on the window replace the view.
        let dropped: Vec<PathBuf> = ui.ctx().input(|i| {
            i.raw.dropped_files.iter().map(|f| f.path().to_path_buf()).filter(|p| !p.as_os_str().is_empty()).collect()
        });
        if let Some(p) = dropped.into_iter().next() {
            self.open(&OpenSpec { path: p, ..Default::default() });
        }
        self.sync_channel();
        let gpu_mem = Self::gpu_memory(frame);
        egui::Panel::top("menu").show(ui, |ui| self.menu_bar(ui));
        egui::Panel::bottom("status").show(ui, |ui| {
            if self.points.is_some() {
                self.points_status(ui);
                return;
            }
            self.status_bar(ui, gpu_mem);
        });
        if self.points.is_some() {
            egui::Panel::right("controls").default_size(260.0).show(ui, |ui| self.points_side_panel(ui));
        } else if self.doc.is_some() {
            egui::Panel::right("controls").default_size(260.0).show(ui, |ui| self.side_panel(ui));
        }
        // The welcome screen and the error panel are final at once (a screenshot of them is taken).
        let mut completion = Completion::Complete;
        egui::CentralPanel::default().frame(egui::Frame::NONE).show(ui, |ui| {
            if let Some(err) = self.error.clone() {
                self.error_panel(ui, &err);
            } else if self.points.is_some() {
                completion = self.points_area(ui, frame);
            } else if self.doc.is_some() {
                completion = self.data_area(ui, frame);
            } else {
                self.welcome(ui);
            }
        });
        let ready = completion == Completion::Complete;
        // The side panel's histogram must describe the final view too (it is drawn from the tiles on screen).
        let hist_stale = self.doc.as_ref().is_some_and(|d| d.hist_stale);
        if hist_stale && matches!(completion, Completion::Complete | Completion::Preview(_)) {
            completion = Completion::Pending;
        }
        self.take_screenshot_when_ready(ui, completion);
        if self.points.is_some() {
            self.points_bench_step(ui, frame, ready, t0.elapsed().as_secs_f64());
        } else {
            self.bench_step(ui, frame, ready, t0.elapsed().as_secs_f64());
        }
    }
}

impl Viewer {
    /// One frame of `--bench-frames`: 0 wait for the view to load, 1 still frames (warm cache),
    /// 2 panning (1/32 of the view per frame), 4 settle, 3 palette changes, then report and close.
    fn bench_step(&mut self, ui: &egui::Ui, frame: &eframe::Frame, ready: bool, ui_secs: f64) {
        let Some(mut b) = self.bench.take() else { return };
        ui.ctx().request_repaint();
        b.rss_anon_peak_kb = b.rss_anon_peak_kb.max(crate::headless::proc_status_kb("RssAnon:"));
        let (_, _, uploaded) = Self::gpu_memory(frame);
        let lut_uniform = frame
            .wgpu_render_state()
            .and_then(|rs| {
                rs.renderer.read().callback_resources.get::<ViewerGpu>().map(|v| {
                    let all = std::iter::once(&v.tiles).chain(&v.channels);
                    all.map(|r| r.stats.lut_bytes + r.stats.uniform_bytes).sum::<u64>() + v.composite.uniform_bytes
                })
            })
            .unwrap_or(0);
        b.frames += 1;
        match b.phase {
            0 if ready || b.frames > 2000 => (b.phase, b.frames) = (1, 0),
            1 => {
                b.still_ui.push(ui_secs);
                if b.frames >= 30 {
                    (b.phase, b.frames) = (2, 0);
                    b.pan_start = Some(Instant::now());
                }
            }
            2 => {
                b.pan_ui.push(ui_secs);
                b.peak_cpu = b.peak_cpu.max(self.doc.as_ref().map_or(0, |d| d.cache.stats().bytes));
                b.peak_gpu = b.peak_gpu.max(Self::gpu_memory(frame).0);
                if let Some(v) = self.doc.as_mut().and_then(|d| d.view.as_mut()) {
                    v.pan(-v.vw / 32.0, -v.vh / 256.0);
                }
                if b.frames >= b.n {
                    (b.phase, b.frames) = (4, 0);
                }
            }
            // Settle: every visible tile drawn and nothing uploaded for a frame, before palette changes.
            4 => {
                if (ready && uploaded == b.last_upload.0) || b.frames > 3000 {
                    (b.phase, b.frames) = (3, 0);
                }
                b.last_upload = (uploaded, lut_uniform);
            }
            3 => {
                // Bytes since the previous frame, which changed only the palette.
                b.palette_bytes.push(lut_uniform - b.last_upload.1 + (uploaded - b.last_upload.0));
                b.last_upload = (uploaded, lut_uniform);
                let names = ["magma", "gray", "turbo", "cividis", "viridis"];
                b.palette_tile_bytes += uploaded - b.last_upload.0;
                self.cmap_base = names[b.frames as usize % names.len()].to_string();
                self.set_colormap();
                // A composite: every other channel's colormap and every channel's limits change too.
                if let Some(cp) = self.doc.as_mut().and_then(|d| d.composite.as_mut()) {
                    for (c, l) in cp.looks.iter_mut().enumerate().filter(|(c, _)| *c != cp.active) {
                        if let Ok(m) = Colormap::resolve(names[(b.frames as usize + c) % names.len()]) {
                            l.colormap = m;
                        }
                        (l.lo, l.hi) = (l.lo + 1.0, l.hi + 2.0);
                    }
                    (self.display.lo, self.display.hi) = (self.display.lo + 1.0, self.display.hi + 2.0);
                }
                if b.frames >= 11 {
                    let (sm, sp) = mean_p95_ms(&b.still_ui);
                    let (pm, pp) = mean_p95_ms(&b.pan_ui);
                    let pan_secs = b.pan_start.map_or(0.0, |t| t.elapsed().as_secs_f64());
                    let pal = &b.palette_bytes[1..];
                    let (cpu_budget, gpu_budget) = (self.opts.cpu_budget, Self::gpu_memory(frame).1);
                    eprintln!(
                        "bench: peak CPU tiles {} bytes (budget {cpu_budget}), peak GPU tiles {} bytes (budget {gpu_budget}), {} tiles loaded",
                        b.peak_cpu,
                        b.peak_gpu,
                        self.doc.as_ref().map_or(0, |d| d.cache.stats().loaded_total)
                    );
                    eprintln!(
                        "bench: still frames ui {sm:.2} ms mean / {sp:.2} ms p95; panning {} frames ui {pm:.2} ms mean / {pp:.2} ms p95, {:.1} fps wall; palette change uploads max {} bytes; peak RssAnon {:.1} MiB",
                        b.pan_ui.len(),
                        b.pan_ui.len() as f64 / pan_secs.max(1e-9),
                        pal.iter().max().copied().unwrap_or(0),
                        b.rss_anon_peak_kb as f64 / 1024.0
                    );
                    eprintln!("bench: palette and limit changes uploaded {} tile bytes", b.palette_tile_bytes);
                    ui.ctx().send_viewport_cmd(egui::ViewportCommand::Close);
                }
            }
            _ => {}
        }
        self.bench = Some(b);
    }
}

/// A data area's view as navigation sees it: pan by screen pixels, zoom about a screen pixel, its size.
trait Navigate {
    fn pan(&mut self, dx: f64, dy: f64);
    fn zoom_about(&mut self, sx: f64, sy: f64, factor: f64);
    fn area(&self) -> (f64, f64);
}

impl Navigate for View {
    fn pan(&mut self, dx: f64, dy: f64) {
        View::pan(self, dx, dy);
    }
    fn zoom_about(&mut self, sx: f64, sy: f64, factor: f64) {
        View::zoom_about(self, sx, sy, factor);
    }
    fn area(&self) -> (f64, f64) {
        (self.vw, self.vh)
    }
}

/// The navigation both data areas share: drag pans, the wheel (or a pinch) zooms about the cursor, `+`/`=`/`-`
/// zoom about the centre, arrows pan by a tenth of the area. Returns the other keys pressed, for the caller.
fn navigate(
    ctx: &egui::Context,
    resp: &egui::Response,
    origin: egui::Pos2,
    ppp: f32,
    view: &mut impl Navigate,
) -> Vec<egui::Key> {
    if resp.dragged() {
        let d = resp.drag_delta() * ppp;
        view.pan(f64::from(d.x), f64::from(d.y));
    }
    let (scroll, zoom_delta, hover, keys) = ctx.input(|i| {
        let keys: Vec<egui::Key> = i
            .events
            .iter()
            .filter_map(|e| match e {
                egui::Event::Key { key, pressed: true, .. } => Some(*key),
                _ => None,
            })
            .collect();
        (i.smooth_scroll_delta.y, i.zoom_delta(), i.pointer.hover_pos(), keys)
    });
    if let Some(p) = hover.filter(|p| resp.rect.contains(*p)) {
        let (sx, sy) = (f64::from((p.x - origin.x) * ppp), f64::from((p.y - origin.y) * ppp));
        let factor = (f64::from(scroll) / 200.0).exp2() * f64::from(zoom_delta);
        if (factor - 1.0).abs() > 1e-6 {
            view.zoom_about(sx, sy, factor);
        }
    }
    let (vw, vh) = view.area();
    let (cw, ch) = (vw / 2.0, vh / 2.0);
    let mut rest = Vec::new();
    for k in keys {
        match k {
            egui::Key::Plus | egui::Key::Equals => view.zoom_about(cw, ch, 2.0),
            egui::Key::Minus => view.zoom_about(cw, ch, 0.5),
            egui::Key::ArrowLeft => view.pan(vw * 0.1, 0.0),
            egui::Key::ArrowRight => view.pan(-vw * 0.1, 0.0),
            egui::Key::ArrowUp => view.pan(0.0, vh * 0.1),
            egui::Key::ArrowDown => view.pan(0.0, -vh * 0.1),
            other => rest.push(other),
        }
    }
    rest
}

/// Mean and 95th percentile of frame times in seconds, as milliseconds (`--bench-frames`).
fn mean_p95_ms(v: &[f64]) -> (f64, f64) {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let mean = s.iter().sum::<f64>() / s.len().max(1) as f64;
    let p95 = s.get((s.len() as f64 * 0.95) as usize).copied().unwrap_or(0.0);
    (mean * 1e3, p95 * 1e3)
}

/// A data area in framebuffer pixels: its origin and size (at least 1 × 1), rounded like egui rounds the clip.
fn area_px(rect: egui::Rect, ppp: f32) -> ([f32; 2], [f32; 2]) {
    let origin = [(rect.min.x * ppp).round(), (rect.min.y * ppp).round()];
    let size = [((rect.max.x * ppp).round() - origin[0]).max(1.0), ((rect.max.y * ppp).round() - origin[1]).max(1.0)];
    (origin, size)
}

#[cfg(test)]
mod tests {
    use super::{completion, Completion};

    #[test]
    fn screenshot_rule_ends_the_wait_for_failed_tiles_and_previews_nothing_replaces() {
        // Loading: wait.
        assert_eq!(completion(4, 2, &[], 0, None), Completion::Pending);
        assert_eq!(completion(4, 4, &[], 0, None), Completion::Complete);
        // A truncated file: the tiles that could be read are drawn, the others failed: final, exit 2.
        assert_eq!(
            completion(4, 3, &["file shrank"], 0, None),
            Completion::Incomplete("1 of 4 visible tiles failed: file shrank".into())
        );
        // A failure while others still load: wait for them (they are drawn in the screenshot).
        assert_eq!(completion(4, 1, &["file shrank"], 0, None), Completion::Pending);
        // Previews while a pyramid is built (or was): wait for the exact tiles.
        assert_eq!(completion(4, 4, &[], 2, None), Completion::Pending);
        // The build failed (a full or read-only cache): the previews are the final view.
        assert_eq!(
            completion(4, 4, &[], 2, Some("pyramid not built: disk full".into())),
            Completion::Preview("pyramid not built: disk full".into())
        );
    }
}
