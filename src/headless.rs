//! The library API behind `vastview render | info | probe`: plans a render, streams it through the GPU
//! in chunks to PNG rows, exports regions as .npy, and describes and probes sources. No window types.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::geom::{Rect, TileGrid};
use crate::palette::{Colormap, Display, Scale};
use crate::pyramid::tilestats::{HistRange, TileStats, HIST_BINS};
use std::sync::Arc;

use crate::pyramid::persist::{self, LevelSource};
use crate::pyramid::{self, bins, Method, Store};
use crate::render::{GpuContext, Offscreen, TileData, TileDraw, TileKey, TileRenderer, OFFSCREEN_FORMAT};
use crate::source::{ArraySource, RegionBuf, SourceInfo};

pub use crate::info::{info_json, info_text};
pub use crate::pyramid::TILE;
/// Longest output side when `--size` is not given.
pub const DEFAULT_MAX_SIDE: u64 = 4096;
/// Largest render chunk side (also capped by the GPU's texture limit).
const CHUNK: u32 = 1024;
/// Most bytes of RGBA one band of output rows holds while it is rendered (wide outputs get shorter bands).
pub const BAND_BYTES: u64 = 64 << 20;

/// Rows per band of a render `out_w` wide, drawn in chunks at most `side` rows tall: `side`, or fewer
/// so a band of RGBA8 rows stays within [`BAND_BYTES`] (at least one row).
pub fn band_rows(out_w: u64, side: u64) -> u64 {
    (BAND_BYTES / out_w.saturating_mul(4).max(1)).clamp(1, side.max(1))
}

/// How contrast limits are chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LimitsSpec {
    Explicit(f64, f64),
    /// Percentiles (0–100) of an evenly spread sample of the slice.
    Percentiles(f64, f64),
    /// No colours are drawn (an `.npy` export): nothing is sampled, the limits are 0..1.
    Unused,
}

/// What the user asked `render` for.
#[derive(Debug, Clone)]
pub struct RenderSpec {
    pub slice: u64,
    pub region: Option<Rect>,
    pub size: Option<(u64, u64)>,
    pub colormap: String,
    pub limits: LimitsSpec,
    pub scale: Scale,
    pub gamma: f64,
    pub nan_color: [u8; 4],
    /// How shrunk output pixels summarise their blocks (and which pyramid is used).
    pub method: Method,
    /// What a shrunk render may read.
    pub quality: Quality,
}

/// What a shrunk render may read when the data is big and no pyramid is cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quality {
    /// The pyramid if cached; else exact block values when they need at most [`PREVIEW_BYTES`] of
    /// data, else a preview from a strided sample of rows.
    Auto,
    /// Exact block values from the pyramid or the data, however much must be read.
    Exact,
    /// Always the strided preview (one data row per output row).
    Preview,
}

/// Above this many data bytes, a shrunk render with no pyramid is a preview (unless `Quality::Exact`).
pub const PREVIEW_BYTES: u64 = 256 << 20;

/// Where the values of a shrunk render come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reduce {
    /// Block values computed from the data.
    Data,
    /// Block values computed from this stored pyramid level.
    Level(u32),
    /// One data row per output row (the row at the centre of its block), averaged along the row.
    Preview,
}

impl Default for RenderSpec {
    fn default() -> Self {
        RenderSpec {
            slice: 0,
            region: None,
            size: None,
            colormap: "viridis".into(),
            limits: LimitsSpec::Percentiles(0.5, 99.5),
            scale: Scale::Linear,
            gamma: 1.0,
            nan_color: [0, 0, 0, 0],
            method: Method::Mean,
            quality: Quality::Auto,
        }
    }
}

/// The file's own resolution level a shrunk render should read (OME-TIFF SubIFDs, COG overviews): the
/// coarsest native level `k` with `2^k` at most the shrink factor, with `spec` moved onto that level's pixels
/// (region scaled, output size fixed to what the full-resolution render would be). `None` when the render is
/// not shrunk by 2 or more, or the source stores no level that fine.
pub fn choose_native(src: &dyn ArraySource, spec: &RenderSpec) -> Option<(u32, Arc<dyn ArraySource>, RenderSpec)> {
    let info = src.info();
    let region = spec.region.unwrap_or_else(|| info.image.rect());
    if region.is_empty() || !info.image.rect().contains_rect(&region) {
        return None;
    }
    let (out_w, out_h) = spec.size.unwrap_or_else(|| default_size(&region, DEFAULT_MAX_SIDE));
    let factor = (region.width() as f64 / out_w.max(1) as f64).min(region.height() as f64 / out_h.max(1) as f64);
    if factor < 2.0 {
        return None;
    }
    let level = factor.log2().floor() as u32;
    let (k, lsrc) = crate::source::native_level_at_most(src, level)?;
    let lim = lsrc.info().image;
    let f = 1u64 << k;
    let r = Rect::new(region.x0 / f, region.y0 / f, region.x1.div_ceil(f), region.y1.div_ceil(f))
        .intersect(&Rect::of_size(lim.width, lim.height));
    let mut s = spec.clone();
    s.region = Some(r);
    s.size = Some((out_w, out_h));
    Some((k, lsrc, s))
}

/// A render fully decided: which pixels, at what size, with which colors, read from where.
#[derive(Clone)]
pub struct Plan {
    pub slice: u64,
    pub region: Rect,
    pub out_w: u64,
    pub out_h: u64,
    pub display: Display,
    pub method: Method,
    pub reduce: Reduce,
    /// The cached pyramid, when there is one.
    pub pyramid: Option<Arc<Store>>,
    /// How the limits were found (for `--verbose`).
    pub limits_from: &'static str,
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan")
            .field("slice", &self.slice)
            .field("region", &self.region)
            .field("out", &(self.out_w, self.out_h))
            .field("method", &self.method)
            .field("reduce", &self.reduce)
            .field("pyramid", &self.pyramid.as_ref().map(|p| p.path().to_path_buf()))
            .finish()
    }
}

impl Plan {
    /// True when any axis is shrunk, so output pixels are block means rather than data pixels.
    pub fn is_reduced(&self) -> bool {
        self.out_w < self.region.width() || self.out_h < self.region.height()
    }
}

/// The output size for a region: `size` if given, else the region capped at `max_side`, keeping aspect.
pub fn default_size(region: &Rect, max_side: u64) -> (u64, u64) {
    let (w, h) = (region.width(), region.height());
    let long = w.max(h);
    if long <= max_side {
        return (w, h);
    }
    let s = max_side as f64 / long as f64;
    (((w as f64 * s).round() as u64).max(1), ((h as f64 * s).round() as u64).max(1))
}

/// Resolves a spec against a source: region, size, colormap, where the values come from (pyramid
/// level, data, or a strided preview) and the limits (from the pyramid's histograms for big images,
/// else percentiles of a sample).
pub fn plan(src: &dyn ArraySource, spec: &RenderSpec) -> Result<Plan> {
    let info = src.info();
    let region = spec.region.unwrap_or_else(|| info.image.rect());
    src.check_request(spec.slice, &region)?;
    let (out_w, out_h) = spec.size.unwrap_or_else(|| default_size(&region, DEFAULT_MAX_SIDE));
    if out_w == 0 || out_h == 0 || out_w > 1 << 20 || out_h > 1 << 20 {
        return Err(Error::request(
            &info.path,
            format!("output size {out_w}x{out_h} must be between 1 and 1048576 on each side"),
        ));
    }
    let colormap = Colormap::named(&info.path, &spec.colormap)?;
    let pyramid = persist::find(src, spec.method)?;
    let reduced = out_w < region.width() || out_h < region.height();
    let reduce = if !reduced {
        Reduce::Data
    } else {
        let factor = (region.width() as f64 / out_w as f64).min(region.height() as f64 / out_h as f64);
        let level = (factor.log2().floor().max(0.0) as u32).min(pyramid.as_ref().map_or(0, |p| p.levels().count - 1));
        let bytes = region.width() * region.height() * info.image.channels * info.dtype.size() as u64;
        let exact_cheap = bytes <= PREVIEW_BYTES || src.has_exact_block_means();
        match (level, spec.quality) {
            (l, Quality::Auto | Quality::Exact) if l >= 1 => Reduce::Level(l),
            (_, Quality::Preview) => Reduce::Preview,
            (_, Quality::Auto) if !exact_cheap => Reduce::Preview,
            _ => Reduce::Data,
        }
    };
    let big = info.image.width * info.image.height > pyramid::stats::SAMPLE_BUDGET;
    let (lo, hi, limits_from) = match spec.limits {
        LimitsSpec::Explicit(lo, hi) => (lo, hi, "given"),
        LimitsSpec::Unused => (0.0, 1.0, "unused: an export draws no colours, nothing sampled"),
        LimitsSpec::Percentiles(_, _) if info.image.is_color() => (0.0, 255.0, "color"),
        LimitsSpec::Percentiles(p_lo, p_hi) => match (&pyramid, reduce) {
            (Some(p), _) if big => {
                let l = region_percentiles(p, spec.slice, &region, p_lo, p_hi)?;
                if l.lo.is_finite() {
                    (l.lo, l.hi, "pyramid histograms of the region's tiles")
                } else {
                    (0.0, 1.0, "no finite values")
                }
            }
            (_, Reduce::Preview) => {
                let rows = preview_rows(src, &region, out_h);
                let rows: Vec<u64> = rows.iter().step_by(rows.len().div_ceil(512).max(1)).map(|r| r.0).collect();
                let nx = pyramid::stats::SAMPLE_BUDGET / rows.len().max(1) as u64;
                let l = pyramid::sample_percentiles(src, spec.slice, &rows, nx, p_lo, p_hi)?;
                (l.lo, l.hi, "sample of the preview rows")
            }
            _ => {
                let l = pyramid::percentile_limits(src, spec.slice, p_lo, p_hi, pyramid::stats::SAMPLE_BUDGET)?;
                (l.lo, l.hi, "sample")
            }
        },
    };
    // Limits are physical values (what --limits gives, what probe prints); the shader sees stored ones.
    let (lo, hi) = match (info.scaling, spec.limits) {
        (Some(s), LimitsSpec::Explicit(..)) => (s.invert(lo), s.invert(hi)),
        // Percentiles of the stored values: a negative scale swaps which end is low.
        (Some(s), LimitsSpec::Percentiles(..)) if s.scale < 0.0 => (hi, lo),
        _ => (lo, hi),
    };
    Ok(Plan {
        slice: spec.slice,
        region,
        out_w,
        out_h,
        display: Display { colormap, lo, hi, scale: spec.scale, gamma: spec.gamma, nan_color: spec.nan_color },
        method: spec.method,
        reduce,
        pyramid,
        limits_from,
    })
}

/// One data row per output row's block (one-row bins): what a preview reads ([`pyramid::preview_rows`]).
pub fn preview_rows(src: &dyn ArraySource, region: &Rect, out_h: u64) -> Vec<(u64, u64)> {
    pyramid::preview_rows(src, &bins(region.y0, region.height(), out_h))
}

/// Percentile limits of a region from the pyramid's tile histograms: the tiles over the region at the
/// finest level where they number at most 1024. NaN limits when those tiles hold no finite values.
pub fn region_percentiles(p: &Store, slice: u64, region: &Rect, p_lo: f64, p_hi: f64) -> Result<pyramid::Limits> {
    let lv = p.levels();
    let mut level = 0;
    let tiles_at = |l: u32| {
        let f = 1u64 << l;
        let r = Rect::new(region.x0 / f, region.y0 / f, region.x1.div_ceil(f), region.y1.div_ceil(f))
            .intersect(&Rect::of_size(lv.size(l).0, lv.size(l).1));
        lv.grid(l).tiles_in(&r)
    };
    while level + 1 < lv.count && tiles_at(level).len() > 1024 {
        level += 1;
    }
    let mut all = TileStats::default();
    for (tx, ty) in tiles_at(level) {
        if let Some(s) = p.read_stats(slice, level, tx, ty)? {
            all.merge(&s);
        }
    }
    let range = p.hist_range();
    if all.count == 0 {
        // No finite values (or no statistics yet): NaN, for the caller to fall back on.
        return Ok(pyramid::Limits { lo: f64::NAN, hi: f64::NAN });
    }
    Ok(pyramid::Limits { lo: all.percentile(&range, p_lo), hi: all.percentile(&range, p_hi) })
}

/// A GPU context with a tile renderer: render many plans, re-using resident tiles.
pub struct Session {
    pub gpu: GpuContext,
    pub tiles: TileRenderer,
    offscreen: Option<Offscreen>,
}

/// Default byte budget for resident GPU tiles in headless renders. One-shot renders go band by band
/// and never revisit a band, so a small budget keeps memory flat (a chunk's own tiles are always kept).
pub const GPU_BUDGET: u64 = 32 << 20;

impl Session {
    pub fn new() -> Result<Session> {
        Self::with_budget(GPU_BUDGET)
    }

    pub fn with_budget(budget: u64) -> Result<Session> {
        let gpu = GpuContext::new_headless()?;
        let tiles = TileRenderer::new(&gpu, OFFSCREEN_FORMAT, budget);
        gpu.check()?;
        Ok(Session { gpu, tiles, offscreen: None })
    }

    /// Renders `plan` in bands of rows, calling `sink(rgba_rows, n_rows)` top to bottom.
    /// Output larger than the GPU's texture limit is drawn in chunks.
    pub fn render_bands(
        &mut self,
        src: &dyn ArraySource,
        plan: &Plan,
        mut sink: impl FnMut(&[u8], u32) -> Result<()>,
    ) -> Result<()> {
        let side = u64::from(self.gpu.max_texture_side().min(CHUNK));
        let rows = band_rows(plan.out_w, side);
        let mut band = Vec::new();
        band.try_reserve_exact((plan.out_w * rows * 4) as usize).map_err(|_| {
            Error::request(&src.info().path, format!("no memory for a band of {rows} rows of {} pixels", plan.out_w))
        })?;
        let levels = LevelPlan::new(src, plan);
        for cy in (0..plan.out_h).step_by(rows as usize) {
            let ch = rows.min(plan.out_h - cy);
            band.clear();
            band.resize((plan.out_w * ch * 4) as usize, 0);
            for cx in (0..plan.out_w).step_by(side as usize) {
                let cw = side.min(plan.out_w - cx);
                let chunk = Rect::new(cx, cy, cx + cw, cy + ch);
                self.tiles.begin_frame();
                let draws = self.prepare(src, plan, &levels, &chunk)?;
                let (w, h) = (cw as u32, ch as u32);
                if self.offscreen.as_ref().map(|o| o.size()) != Some((w, h)) {
                    self.offscreen = Some(Offscreen::new(&self.gpu, w, h));
                }
                let Some(off) = self.offscreen.as_ref() else { continue };
                let px = off.render(&self.gpu, &mut self.tiles, &plan.display, &draws)?;
                let row = (cw * 4) as usize;
                for (j, r) in px.chunks_exact(row).enumerate() {
                    let at = (j * plan.out_w as usize + cx as usize) * 4;
                    band[at..at + row].copy_from_slice(r);
                }
            }
            sink(&band, ch as u32)?;
        }
        Ok(())
    }

    /// Renders `plan` into one RGBA8 buffer (row-major, `out_w × out_h`).
    pub fn render_rgba(&mut self, src: &dyn ArraySource, plan: &Plan) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        out.try_reserve_exact((plan.out_w * plan.out_h * 4) as usize).map_err(|_| {
            Error::request(&src.info().path, format!("no memory for a {}x{} RGBA image", plan.out_w, plan.out_h))
        })?;
        self.render_bands(src, plan, |rows, _| {
            out.extend_from_slice(rows);
            Ok(())
        })?;
        Ok(out)
    }

    /// Uploads the tiles `chunk` needs (those not resident) and returns how to draw them.
    fn prepare(&mut self, src: &dyn ArraySource, plan: &Plan, lv: &LevelPlan, chunk: &Rect) -> Result<Vec<TileDraw>> {
        let info = src.info();
        let r = plan.region;
        let (cx, cy) = (chunk.x0 as f64, chunk.y0 as f64);
        let mut draws = Vec::new();
        if plan.is_reduced() {
            // The level is the output grid itself: tiles of block means.
            let grid = TileGrid { width: plan.out_w, height: plan.out_h, size: TILE };
            for (tx, ty) in grid.tiles_in(chunk) {
                let t = grid.tile_rect(tx, ty);
                let key = TileKey { level: lv.level_id, tx, ty };
                if !self.tiles.has_tile(&key) {
                    let xb = &lv.x_bins[t.x0 as usize..t.x1 as usize];
                    let yb = &lv.y_bins[t.y0 as usize..t.y1 as usize];
                    let vals = lv.values(src, plan.slice, xb, yb)?;
                    let (w, h) = (t.width() as u32, t.height() as u32);
                    let data = if info.image.is_color() {
                        TileData::from_color_means(&vals, w, h, info.image.channels as usize)
                    } else {
                        TileData::from_values(&vals, w, h, info.dtype.is_wide())
                    };
                    self.tiles.upload(&self.gpu, key, &data)?;
                }
                draws.push(TileDraw {
                    key,
                    rect: [t.x0 as f64 - cx, t.y0 as f64 - cy, t.width() as f64, t.height() as f64],
                    texel_map: [1.0, cx - t.x0 as f64, 1.0, cy - t.y0 as f64],
                });
            }
        } else {
            // Full resolution (1:1 or enlarged): tiles of the data grid, nearest texel per output pixel.
            let sx = r.width() as f64 / plan.out_w as f64;
            let sy = r.height() as f64 / plan.out_h as f64;
            let fx0 = r.x0 + (cx * sx).floor() as u64;
            let fy0 = r.y0 + (cy * sy).floor() as u64;
            let fx1 = r.x0 + ((chunk.x1 as f64 * sx).ceil() as u64).min(r.width());
            let fy1 = r.y0 + ((chunk.y1 as f64 * sy).ceil() as u64).min(r.height());
            let footprint = Rect::new(fx0, fy0, fx1.max(fx0 + 1), fy1.max(fy0 + 1)).intersect(&r);
            let grid = TileGrid { width: info.image.width, height: info.image.height, size: TILE };
            let mut buf = RegionBuf::default();
            for (tx, ty) in grid.tiles_in(&footprint) {
                let t = grid.tile_rect(tx, ty);
                let key = TileKey { level: lv.level_id, tx, ty };
                if !self.tiles.has_tile(&key) {
                    src.read_region(plan.slice, t, &mut buf)?;
                    self.tiles.upload(&self.gpu, key, &TileData::from_region(&buf))?;
                }
                let ox = (t.x0 as f64 - r.x0 as f64) / sx - cx;
                let oy = (t.y0 as f64 - r.y0 as f64) / sy - cy;
                draws.push(TileDraw {
                    key,
                    rect: [ox, oy, t.width() as f64 / sx, t.height() as f64 / sy],
                    texel_map: [sx, cx * sx + r.x0 as f64 - t.x0 as f64, sy, cy * sy + r.y0 as f64 - t.y0 as f64],
                });
            }
        }
        Ok(draws)
    }
}

/// The level a plan draws from: its id (for tile keys) and, for shrunk output, the blocks in the
/// coordinates of the source they are read from (data, a pyramid level, or preview rows).
struct LevelPlan {
    level_id: u64,
    x_bins: Vec<(u64, u64)>,
    y_bins: Vec<(u64, u64)>,
    level_src: Option<LevelSource>,
    method: Method,
}

impl LevelPlan {
    fn new(src: &dyn ArraySource, plan: &Plan) -> LevelPlan {
        let mut h = DefaultHasher::new();
        src.info().path.hash(&mut h);
        plan.slice.hash(&mut h);
        let mut level_src = None;
        let (x_bins, y_bins) = if plan.is_reduced() {
            (plan.region, plan.out_w, plan.out_h, format!("{:?} {:?}", plan.reduce, plan.method)).hash(&mut h);
            let xb = bins(plan.region.x0, plan.region.width(), plan.out_w);
            let yb = bins(plan.region.y0, plan.region.height(), plan.out_h);
            match (plan.reduce, &plan.pyramid) {
                (Reduce::Level(l), Some(p)) => {
                    let ls = LevelSource::new(p.clone(), src.info(), l);
                    let (w, hh) = (ls.info().image.width, ls.info().image.height);
                    level_src = Some(ls);
                    (to_level(&xb, l, w), to_level(&yb, l, hh))
                }
                (Reduce::Preview, _) => (xb, preview_rows(src, &plan.region, plan.out_h)),
                _ => (xb, yb),
            }
        } else {
            "full".hash(&mut h);
            (Vec::new(), Vec::new())
        };
        LevelPlan { level_id: h.finish(), x_bins, y_bins, level_src, method: plan.method }
    }

    /// Block values of output rows `ys` (indices into the bins), all columns.
    fn values(&self, src: &dyn ArraySource, slice: u64, xb: &[(u64, u64)], yb: &[(u64, u64)]) -> Result<Vec<f64>> {
        match &self.level_src {
            Some(l) => pyramid::block_reduce(l, slice, xb, yb, self.method),
            None => pyramid::block_reduce(src, slice, xb, yb, self.method),
        }
    }
}

/// Data-pixel blocks as blocks of level `l` pixels (each at least one pixel, inside `n`).
fn to_level(b: &[(u64, u64)], l: u32, n: u64) -> Vec<(u64, u64)> {
    b.iter()
        .map(|&(a, e)| {
            let a2 = (a >> l).min(n - 1);
            (a2, (e.div_ceil(1 << l)).clamp(a2 + 1, n))
        })
        .collect()
}

/// Renders to an image file in the format its extension names (PNG, JPEG, TIFF: see
/// [`crate::output`]), streaming bands of rows to the encoder (JPEG: the whole image, of bounded size).
/// The output is checked first (not the input, its directory exists) and written to a temporary name,
/// then renamed (a device or FIFO is written through).
pub fn render_image(session: &mut Session, src: &dyn ArraySource, plan: &Plan, out: &Path) -> Result<()> {
    let format = crate::output::Format::of(out)?;
    let input = src.info().path.clone();
    crate::output::write_rgba(out, &[&input], format, plan.out_w, plan.out_h, |sink| {
        session.render_bands(src, plan, |rows, _| sink(rows))
    })
}

/// Renders a channel composite: each plan (one per channel: its slice, colormap and limits, all of the same
/// region and size) drawn on the GPU, the channels' colours added (saturating), written as [`render_image`]
/// writes one. The whole output is held in memory: at most 64 Mpixels.
pub fn render_composite(session: &mut Session, src: &dyn ArraySource, plans: &[Plan], out: &Path) -> Result<()> {
    let format = crate::output::Format::of(out)?;
    let input = src.info().path.clone();
    let Some(first) = plans.first() else { return Ok(()) };
    let (w, h) = (first.out_w, first.out_h);
    if w * h > 1 << 26 {
        return Err(Error::request(
            &input,
            format!("a composite of {w}x{h} is over 64 Mpixels: give a smaller --size"),
        ));
    }
    let mut sum = session.render_rgba(src, first)?;
    for p in &plans[1..] {
        let px = session.render_rgba(src, p)?;
        crate::palette::composite::add_onto(&mut sum, &px);
    }
    crate::output::write_rgba(out, &[&input], format, w, h, |sink| {
        for rows in sum.chunks((w * 4 * 256) as usize) {
            sink(rows)?;
        }
        Ok(())
    })
}

/// The channel flags of `render` and the window (`--channel-axis`, `--channel-colormaps`, `--channel-limits`), with
/// the `--index` text and whether `--limits` was given: parsed in one place, [`composite_specs`].
#[derive(Debug, Clone, Default)]
pub struct ChannelArgs {
    pub axis: Option<String>,
    pub colormaps: Option<String>,
    pub limits: Option<String>,
    pub index: Option<String>,
    pub limits_given: bool,
}

fn finite_pair(p: &Path, flag: &str, s: &str) -> Result<(f64, f64)> {
    let v: Option<Vec<f64>> = s.split(',').map(|x| x.trim().parse::<f64>().ok()).collect();
    match v.as_deref() {
        Some([a, b]) if a.is_finite() && b.is_finite() => Ok((*a, *b)),
        Some([_, _]) => Err(Error::request(p, format!("{flag} must be finite numbers"))),
        _ => Err(Error::request(p, format!("{flag} '{s}' must be 2 comma-separated numbers"))),
    }
}

/// The per-channel specs of a composite (channel label, spec), or `None` when the image has no channel
/// axis of 2 to 8 entries (or it is RGB, or `--index` names it and `keep_indexed` is false: `render` then shows
/// that channel alone; the window keeps the channels and starts showing the indexed one).
pub fn composite_specs(
    info: &SourceInfo,
    d: &ChannelArgs,
    base: &RenderSpec,
    keep_indexed: bool,
) -> Result<Option<Vec<(String, RenderSpec)>>> {
    use crate::source;
    let p = &info.path;
    let given = d.axis.as_deref();
    let Some(k) = source::axes::channel_axis(p, &info.axes, info.image.channels, given)? else {
        if d.colormaps.is_some() || d.limits.is_some() {
            return Err(Error::request(p, "--channel-colormaps/--channel-limits need a channel axis (--channel-axis)"));
        }
        return Ok(None);
    };
    let outer = info.outer_axes();
    let axis = &outer[k];
    let n = axis.size as usize;
    if info.image.is_color() || (!keep_indexed && source::axes::index_names(&info.axes, k, d.index.as_deref())) {
        return Ok(None);
    }
    if !(2..=crate::palette::composite::MAX_CHANNELS).contains(&n) {
        if given.is_some() {
            return Err(Error::request(
                p,
                format!("--channel-axis {}: a composite takes 2 to 8 channels, the axis has {n}", axis.name),
            ));
        }
        return Ok(None);
    }
    let cmaps: Vec<String> = match &d.colormaps {
        Some(s) => {
            let v: Vec<String> = s.split(',').map(|c| c.trim().to_string()).collect();
            if v.len() != n {
                return Err(Error::request(
                    p,
                    format!("--channel-colormaps names {} colormaps for {n} channels", v.len()),
                ));
            }
            v
        }
        // The file's channel colours where it has them (OME colours, RGB samples), else the default sequence.
        None => (0..n)
            .map(|c| match info.channels.get(c).and_then(|ch| ch.color) {
                Some([r, g, b]) => format!("#{r:02x}{g:02x}{b:02x}"),
                None => crate::palette::composite::DEFAULT_COLORS[c].0.to_string(),
            })
            .collect(),
    };
    let limits: Option<Vec<(f64, f64)>> = match &d.limits {
        Some(s) => {
            let v = s.split(';').map(|pair| finite_pair(p, "--channel-limits", pair)).collect::<Result<Vec<_>>>()?;
            if v.len() != n {
                return Err(Error::request(p, format!("--channel-limits gives {} pairs for {n} channels", v.len())));
            }
            Some(v)
        }
        None => None,
    };
    let mut out = Vec::with_capacity(n);
    for (c, cmap) in cmaps.iter().enumerate() {
        crate::palette::Colormap::named(p, cmap)?;
        let mut s = base.clone();
        s.slice = source::axes::with_entry(outer, base.slice, k, c as u64);
        s.colormap = cmap.clone();
        if let Some(l) = &limits {
            s.limits = LimitsSpec::Explicit(l[c].0, l[c].1);
        } else if let (Some((lo, hi)), false) = (info.channels.get(c).and_then(|ch| ch.window), d.limits_given) {
            s.limits = LimitsSpec::Explicit(lo, hi);
        }
        let label = match info.channels.get(c).and_then(|ch| ch.name.as_deref()) {
            Some(name) => format!("{}={c} ({name})", axis.name),
            None => format!("{}={c}", axis.name),
        };
        out.push((label, s));
    }
    Ok(Some(out))
}

/// [`render_image`] (PNG for a `.png` path).
pub fn render_png(session: &mut Session, src: &dyn ArraySource, plan: &Plan, out: &Path) -> Result<()> {
    render_image(session, src, plan, out)
}

/// Writes the plan's data values as .npy: the source dtype (little-endian) at 1:1, else float32
/// block means (nearest pixels on enlarged axes: the data pixel under each output pixel's centre, as
/// an enlarged PNG shows it). Streams a band of rows at a time.
pub fn export_npy(src: &dyn ArraySource, plan: &Plan, out: &Path) -> Result<()> {
    let info = src.info();
    let c = info.image.channels;
    let one_to_one = plan.out_w == plan.region.width() && plan.out_h == plan.region.height();
    let dtype = if one_to_one { info.dtype } else { crate::dtype::DType::F32 };
    let mut shape = vec![plan.out_h, plan.out_w];
    if c > 1 {
        shape.push(c);
    }
    let mut lv = LevelPlan::new(src, plan);
    if !one_to_one && !plan.is_reduced() {
        // Enlarged on one axis or both, shrunk on none: each output pixel is the data pixel under its centre.
        let r = plan.region;
        lv.x_bins = bins(r.x0, r.width(), plan.out_w);
        lv.y_bins = bins(r.y0, r.height(), plan.out_h);
    }
    let werr = crate::output::io_err(out);
    crate::output::write(out, &[&info.path], |w| {
        w.write_all(&npy_header(&dtype.descr(crate::dtype::Endian::Little), &shape)).map_err(&werr)?;
        let band = (((4u64 << 20) / (plan.out_w * c * 8).max(1)).max(1)).min(plan.out_h);
        let mut buf = RegionBuf::default();
        let mut bytes = Vec::new();
        for y in (0..plan.out_h).step_by(band as usize) {
            let y1 = (y + band).min(plan.out_h);
            if one_to_one {
                let r = Rect::new(plan.region.x0, plan.region.y0 + y, plan.region.x1, plan.region.y0 + y1);
                src.read_region(plan.slice, r, &mut buf)?;
                if crate::dtype::Endian::NATIVE == crate::dtype::Endian::Little {
                    w.write_all(buf.bytes()).map_err(&werr)?;
                } else {
                    bytes.clear();
                    for e in buf.bytes().chunks_exact(dtype.size()) {
                        bytes.extend(e.iter().rev());
                    }
                    w.write_all(&bytes).map_err(&werr)?;
                }
            } else {
                let vals = lv.values(src, plan.slice, &lv.x_bins, &lv.y_bins[y as usize..y1 as usize])?;
                bytes.clear();
                bytes.extend(vals.iter().flat_map(|&v| (v as f32).to_le_bytes()));
                w.write_all(&bytes).map_err(&werr)?;
            }
        }
        Ok(())
    })
}

/// An .npy version 1.0 header for a C-order array, padded to a multiple of 64 bytes.
pub fn npy_header(descr: &str, shape: &[u64]) -> Vec<u8> {
    let dict =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {}, }}", crate::source::fmt_shape(shape));
    let unpadded = 10 + dict.len() + 1;
    let total = unpadded.next_multiple_of(64);
    let mut h = Vec::with_capacity(total);
    h.extend_from_slice(b"\x93NUMPY\x01\x00");
    h.extend_from_slice(&((total - 10) as u16).to_le_bytes());
    h.extend_from_slice(dict.as_bytes());
    h.resize(total - 1, b' ');
    h.push(b'\n');
    h
}

/// The stored value at (x, y) as numpy's `str()` shows it (an array like `[ 12 200   3]` for color).
pub fn probe_text(src: &dyn ArraySource, slice: u64, x: u64, y: u64) -> Result<String> {
    let info = src.info();
    let (w, h) = (info.image.width, info.image.height);
    if x >= w || y >= h {
        return Err(Error::request(
            &info.path,
            format!(
                "pixel ({x}, {y}) is outside the {w} x {h} image (columns 0..={}, rows 0..={})",
                w.saturating_sub(1),
                h.saturating_sub(1)
            ),
        ));
    }
    let mut vals = src.probe(slice, x, y)?;
    // A scaled source (FITS BZERO/BSCALE/BLANK) shows the physical value, as astropy presents it.
    if let Some(s) = info.scaling {
        vals = vals.iter().map(|v| crate::source::fits::physical_value(&s, v)).collect();
    }
    let strs: Vec<String> = vals.iter().map(|v| v.numpy_str()).collect();
    Ok(match strs.as_slice() {
        [one] => one.clone(),
        many => {
            let w = many.iter().map(|s| s.len()).max().unwrap_or(0);
            format!("[{}]", many.iter().map(|s| format!("{s:>w$}")).collect::<Vec<_>>().join(" "))
        }
    })
}

/// A `kB` field (`"RssAnon:"`, `"VmHWM:"`, …) of /proc/self/status text; 0 when absent.
fn status_field(status: &str, key: &str) -> u64 {
    status
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
}

/// One `kB` field of this process's /proc/self/status (0 where /proc is missing).
pub fn proc_status_kb(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status").map_or(0, |s| status_field(&s, key))
}

/// Anonymous (heap) and file-backed resident memory of this process, from /proc/self/status.
/// Memory-mapped data shows up as file-backed, not as our heap.
pub fn memory_report() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |k: &str| status_field(&status, k);
    format!(
        "RssAnon {:.1} MB, RssFile {:.1} MB, peak RSS (VmHWM) {:.1} MB",
        field("RssAnon:") as f64 / 1024.0,
        field("RssFile:") as f64 / 1024.0,
        field("VmHWM:") as f64 / 1024.0
    )
}

/// Percentiles `stats` reports.
const STATS_PERCENTILES: [f64; 11] = [0.1, 0.5, 1.0, 5.0, 25.0, 50.0, 75.0, 95.0, 99.0, 99.5, 99.9];

/// `stats` as text lines.
/// Statistics of stored values seen as physical ones through the source's scaling (FITS BZERO/BSCALE):
/// every figure is a linear map of the stored one (order statistics swap when the scale is negative).
struct Physical {
    min: f64,
    max: f64,
    mean: f64,
    std: f64,
    sum: f64,
    /// Histogram range and bin width in physical units (lo > hi when the scale is negative).
    lo: f64,
    hi: f64,
    bin: f64,
    scale: f64,
    offset: f64,
}

impl Physical {
    fn of(info: &SourceInfo, st: &TileStats, range: &HistRange) -> Physical {
        let (scale, offset) = info.scaling.map_or((1.0, 0.0), |s| (s.scale, s.offset));
        let f = |v: f64| v * scale + offset;
        let (min, max) = if scale < 0.0 { (f(st.max), f(st.min)) } else { (f(st.min), f(st.max)) };
        Physical {
            min,
            max,
            mean: f(st.mean()),
            std: st.std() * scale.abs(),
            sum: st.sum * scale + offset * st.count as f64,
            lo: f(range.lo),
            hi: f(range.hi),
            bin: (range.hi - range.lo) / HIST_BINS as f64 * scale.abs(),
            scale,
            offset,
        }
    }
    fn percentile(&self, st: &TileStats, range: &HistRange, p: f64) -> f64 {
        let q = if self.scale < 0.0 { 100.0 - p } else { p };
        st.percentile(range, q) * self.scale + self.offset
    }
    fn value(&self, v: f64) -> f64 {
        v * self.scale + self.offset
    }
}

pub fn stats_text(info: &SourceInfo, slice: u64, st: &TileStats, range: &HistRange) -> String {
    let g = |v: f64| crate::numfmt::format_f64(v);
    let ph = Physical::of(info, st, range);
    let mut s = String::new();
    let mut line = |k: &str, v: String| s.push_str(&format!("{k:<14}{v}\n"));
    line("path:", info.path.display().to_string());
    line("slice:", format!("{} of {}", info.slice_label(slice), info.image.slices));
    if let Some(sc) = info.scaling {
        line("scaling:", format!("physical values (stored x {} + {})", g(sc.scale), g(sc.offset)));
    }
    line("values:", format!("{} finite, {} NaN, {} +inf, {} -inf", st.count, st.nan, st.pos_inf, st.neg_inf));
    line("min:", g(ph.min));
    line("max:", g(ph.max));
    line("mean:", g(ph.mean));
    line("std:", g(ph.std));
    line("sum:", g(ph.sum));
    let w = ph.bin;
    let pct: Vec<String> =
        STATS_PERCENTILES.iter().map(|&p| format!("{p}%: {}", g(ph.percentile(st, range, p)))).collect();
    line("percentiles:", format!("{} (from the histogram: within one bin, {})", pct.join(", "), g(w)));
    line(
        "histogram:",
        format!(
            "{HIST_BINS} bins over [{}, {}]; {} below, {} above",
            g(ph.lo),
            g(ph.hi),
            st.hist[0],
            st.hist[HIST_BINS + 1]
        ),
    );
    let max = st.hist[1..=HIST_BINS].iter().copied().max().unwrap_or(0).max(1);
    for i in 1..=HIST_BINS {
        let (a, b) = range.edges(i);
        let bar = "#".repeat(((st.hist[i] as f64 / max as f64) * 40.0).round() as usize);
        s.push_str(&format!("  [{:>12}, {:>12}) {:>14} {bar}\n", g(ph.value(a)), g(ph.value(b)), st.hist[i]));
    }
    s
}

/// `stats --json`. Non-finite numbers (min of an all-NaN image) are null.
pub fn stats_json(info: &SourceInfo, slice: u64, st: &TileStats, range: &HistRange) -> serde_json::Value {
    let num = |v: f64| if v.is_finite() { serde_json::json!(v) } else { serde_json::Value::Null };
    let ph = Physical::of(info, st, range);
    let edges: Vec<f64> = (1..=HIST_BINS).map(|i| ph.value(range.edges(i).0)).chain([ph.hi]).collect();
    let pct: serde_json::Map<String, serde_json::Value> =
        STATS_PERCENTILES.iter().map(|&p| (p.to_string(), num(ph.percentile(st, range, p)))).collect();
    serde_json::json!({
        "path": info.path.display().to_string(),
        "slice": slice,
        "count": st.count,
        "nan": st.nan,
        "pos_inf": st.pos_inf,
        "neg_inf": st.neg_inf,
        "min": num(ph.min),
        "max": num(ph.max),
        "sum": num(ph.sum),
        "mean": num(ph.mean),
        "std": num(ph.std),
        "histogram": {
            "edges": edges,
            "counts": st.hist[1..=HIST_BINS].to_vec(),
            "below": st.hist[0],
            "above": st.hist[HIST_BINS + 1],
        },
        "percentiles": pct,
        "percentile_bin_width": ph.bin,
    })
}

/// `cache list`: one line per cache file, most recently used first.
pub fn cache_list_text() -> Result<String> {
    let root = crate::diskcache::root()?;
    let entries = crate::diskcache::list()?;
    let mut s = format!("cache: {} (cap {:.1} GB)\n", root.display(), crate::diskcache::cap() as f64 / 1e9);
    let now = std::time::SystemTime::now();
    let total: u64 = entries.iter().map(|e| e.bytes).sum();
    for e in &entries {
        let age = now.duration_since(e.last_used).map_or(0, |d| d.as_secs());
        let ago = match age {
            a if a < 120 => format!("{a} s ago"),
            a if a < 7200 => format!("{} min ago", a / 60),
            a if a < 172_800 => format!("{} h ago", a / 3600),
            a => format!("{} days ago", a / 86400),
        };
        let index_meta = || crate::points::index::read_meta(&e.path);
        let data = crate::pyramid::store::Store::read_meta(&e.path)
            .map(|m| format!("{} ({}, {} levels)", m.identity.path.display(), m.method.name(), m.levels))
            .or_else(|_| {
                index_meta().map(|m| {
                    format!(
                        "{} (point index, {} points, {}x{} cells)",
                        m.identity.path.display(),
                        m.points,
                        m.side(),
                        m.side()
                    )
                })
            })
            .unwrap_or_else(|_| "-".into());
        let state = if e.partial { "partial" } else { "complete" };
        s.push_str(&format!(
            "{:>10.1} MB  {ago:>14}  {state:<8}  {}  <- {data}\n",
            e.bytes as f64 / 1e6,
            e.path.display()
        ));
    }
    s.push_str(&format!("{} file(s), {:.1} MB\n", entries.len(), total as f64 / 1e6));
    Ok(s)
}

/// `cache clear [FILE]`: every cache file, or those built from FILE (any method, partial ones too).
pub fn cache_clear(file: Option<&Path>) -> Result<(usize, u64)> {
    let Some(file) = file else { return crate::diskcache::clear(None) };
    let canon = std::fs::canonicalize(file).map_err(|e| Error::io(file, e))?;
    let mut n = (0, 0);
    let mut entries = crate::diskcache::list()?;
    entries.sort_by_key(|e| !e.path.to_string_lossy().ends_with(".resume")); // before the partial they name
    for e in entries {
        let name = e.path.to_string_lossy().into_owned();
        let meta_path = name.strip_suffix(".resume").map(PathBuf::from).unwrap_or_else(|| e.path.clone());
        let ours = crate::pyramid::store::Store::read_meta(&meta_path).is_ok_and(|m| m.identity.path == canon)
            || crate::points::index::read_meta(&meta_path).is_ok_and(|m| m.identity.path == canon);
        if ours && std::fs::remove_file(&e.path).is_ok() {
            n = (n.0 + 1, n.1 + e.bytes);
        }
    }
    Ok(n)
}
