//! The library API behind `vastview render | info | probe`: plans a render, streams it through the GPU
//! in chunks to PNG rows, exports regions as .npy, and describes and probes sources. No window types.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};
use crate::geom::{Rect, TileGrid};
use crate::palette::{Colormap, Display, Scale};
use crate::pyramid::{self, bins, block_means};
use crate::render::{GpuContext, Offscreen, TileData, TileDraw, TileKey, TileRenderer, OFFSCREEN_FORMAT};
use crate::source::{ArraySource, RegionBuf, SourceInfo};

/// Side of a tile, in pixels of its level.
pub const TILE: u64 = 256;
/// Longest output side when `--size` is not given.
pub const DEFAULT_MAX_SIDE: u64 = 4096;
/// Largest render chunk side (also capped by the GPU's texture limit).
const CHUNK: u32 = 1024;

/// How contrast limits are chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LimitsSpec {
    Explicit(f64, f64),
    /// Percentiles (0–100) of an evenly spread sample of the slice.
    Percentiles(f64, f64),
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
        }
    }
}

/// A render fully decided: which pixels, at what size, with which colors.
#[derive(Debug, Clone)]
pub struct Plan {
    pub slice: u64,
    pub region: Rect,
    pub out_w: u64,
    pub out_h: u64,
    pub display: Display,
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

/// Resolves a spec against a source: region, size, colormap and limits (percentiles sampled here).
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
    let colormap = Colormap::by_name(&spec.colormap).ok_or_else(|| {
        Error::request(
            &info.path,
            format!("unknown colormap '{}' (known: {})", spec.colormap, Colormap::names().join(", ")),
        )
    })?;
    let (lo, hi) = match spec.limits {
        LimitsSpec::Explicit(lo, hi) => (lo, hi),
        LimitsSpec::Percentiles(_, _) if info.image.is_color() => (0.0, 255.0),
        LimitsSpec::Percentiles(p_lo, p_hi) => {
            let l = pyramid::percentile_limits(src, spec.slice, p_lo, p_hi, pyramid::stats::SAMPLE_BUDGET)?;
            (l.lo, l.hi)
        }
    };
    Ok(Plan {
        slice: spec.slice,
        region,
        out_w,
        out_h,
        display: Display { colormap, lo, hi, scale: spec.scale, gamma: spec.gamma, nan_color: spec.nan_color },
    })
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
        let mut band = Vec::new();
        let levels = LevelPlan::new(src, plan);
        for cy in (0..plan.out_h).step_by(side as usize) {
            let ch = side.min(plan.out_h - cy);
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
        let mut out = Vec::with_capacity((plan.out_w * plan.out_h * 4) as usize);
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
                    let vals = block_means(src, plan.slice, xb, yb)?;
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

/// The level a plan draws from: its id (for tile keys) and, for shrunk output, the pixel bins.
struct LevelPlan {
    level_id: u64,
    x_bins: Vec<(u64, u64)>,
    y_bins: Vec<(u64, u64)>,
}

impl LevelPlan {
    fn new(src: &dyn ArraySource, plan: &Plan) -> LevelPlan {
        let mut h = DefaultHasher::new();
        src.info().path.hash(&mut h);
        plan.slice.hash(&mut h);
        let (x_bins, y_bins) = if plan.is_reduced() {
            (plan.region, plan.out_w, plan.out_h).hash(&mut h);
            (
                bins(plan.region.x0, plan.region.width(), plan.out_w),
                bins(plan.region.y0, plan.region.height(), plan.out_h),
            )
        } else {
            "full".hash(&mut h);
            (Vec::new(), Vec::new())
        };
        LevelPlan { level_id: h.finish(), x_bins, y_bins }
    }
}

/// Renders to a PNG file, streaming rows to the encoder. Writes to a temporary name, then renames.
pub fn render_png(session: &mut Session, src: &dyn ArraySource, plan: &Plan, out: &Path) -> Result<()> {
    let werr = |m: String| Error::Output { path: out.to_path_buf(), msg: m };
    write_atomically(out, |file| {
        let mut enc = png::Encoder::new(std::io::BufWriter::new(file), plan.out_w as u32, plan.out_h as u32);
        enc.set_color(png::ColorType::Rgba);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_compression(png::Compression::Fast);
        let mut writer = enc.write_header().map_err(|e| werr(e.to_string()))?;
        let mut stream = writer.stream_writer().map_err(|e| werr(e.to_string()))?;
        session.render_bands(src, plan, |rows, _| stream.write_all(rows).map_err(|e| werr(e.to_string())))?;
        stream.finish().map_err(|e| werr(e.to_string()))?;
        writer.finish().map_err(|e| werr(e.to_string()))
    })
}

/// Writes the plan's data values as .npy: the source dtype (little-endian) at 1:1, else float32
/// block means (nearest pixels on enlarged axes). Streams a band of rows at a time.
pub fn export_npy(src: &dyn ArraySource, plan: &Plan, out: &Path) -> Result<()> {
    let info = src.info();
    let c = info.image.channels;
    let one_to_one = plan.out_w == plan.region.width() && plan.out_h == plan.region.height();
    let dtype = if one_to_one { info.dtype } else { crate::dtype::DType::F32 };
    let mut shape = vec![plan.out_h, plan.out_w];
    if c > 1 {
        shape.push(c);
    }
    let werr = |e: std::io::Error| Error::Output { path: out.to_path_buf(), msg: e.to_string() };
    write_atomically(out, |file| {
        let mut w = std::io::BufWriter::new(file);
        w.write_all(&npy_header(&dtype.descr(crate::dtype::Endian::Little), &shape)).map_err(werr)?;
        let band = (((4u64 << 20) / (plan.out_w * c * dtype.size() as u64).max(1)).max(1)).min(plan.out_h);
        let (xb, yb) = (
            bins(plan.region.x0, plan.region.width(), plan.out_w),
            bins(plan.region.y0, plan.region.height(), plan.out_h),
        );
        let mut buf = RegionBuf::default();
        for y in (0..plan.out_h).step_by(band as usize) {
            let y1 = (y + band).min(plan.out_h);
            if one_to_one {
                let r = Rect::new(plan.region.x0, plan.region.y0 + y, plan.region.x1, plan.region.y0 + y1);
                src.read_region(plan.slice, r, &mut buf)?;
                if crate::dtype::Endian::NATIVE == crate::dtype::Endian::Little {
                    w.write_all(buf.bytes()).map_err(werr)?;
                } else {
                    for e in buf.bytes().chunks_exact(dtype.size()) {
                        let mut e = e.to_vec();
                        e.reverse();
                        w.write_all(&e).map_err(werr)?;
                    }
                }
            } else {
                let vals = block_means(src, plan.slice, &xb, &yb[y as usize..y1 as usize])?;
                for v in vals {
                    w.write_all(&(v as f32).to_le_bytes()).map_err(werr)?;
                }
            }
        }
        w.flush().map_err(werr)
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

/// Writes through `f` to `OUT.tmp-PID`, then renames onto `out`; removes the temporary file on error.
pub(crate) fn write_atomically(out: &Path, f: impl FnOnce(std::fs::File) -> Result<()>) -> Result<()> {
    let mut tmp_name = out.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = out.with_file_name(tmp_name);
    let file =
        std::fs::File::create(&tmp).map_err(|e| Error::Output { path: out.to_path_buf(), msg: e.to_string() })?;
    let r = f(file).and_then(|_| {
        std::fs::rename(&tmp, out).map_err(|e| Error::Output { path: out.to_path_buf(), msg: e.to_string() })
    });
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

/// `info` as text lines.
pub fn info_text(info: &SourceInfo) -> String {
    let im = info.image;
    let mut s = String::new();
    let mut line = |k: &str, v: String| s.push_str(&format!("{k:<14}{v}\n"));
    line("path:", info.path.display().to_string());
    line("format:", info.format.name());
    line("shape:", crate::source::fmt_shape(&info.shape));
    line("dtype:", info.dtype.name().to_string());
    line("byte order:", info.endian.name().to_string());
    line("memory order:", info.order.name().to_string());
    line("file size:", format!("{} bytes", info.file_size));
    line("header size:", format!("{} bytes", info.header_size));
    let kind = if im.is_color() { format!("{}-channel color", im.channels) } else { "scalar".into() };
    line("image:", format!("{} x {} (width x height), {} slice(s), {kind}", im.width, im.height, im.slices));
    s
}

/// `info --json`: a stable JSON object.
pub fn info_json(info: &SourceInfo) -> serde_json::Value {
    let (format, version) = match &info.format {
        crate::source::Format::Npy { major, minor } => ("npy", Some(format!("{major}.{minor}"))),
        crate::source::Format::Raw => ("raw", None),
        crate::source::Format::Demo => ("demo", None),
    };
    serde_json::json!({
        "path": info.path.display().to_string(),
        "format": format,
        "format_version": version,
        "shape": info.shape,
        "dtype": info.dtype.name(),
        "byte_order": info.endian.name(),
        "memory_order": info.order.name(),
        "file_size": info.file_size,
        "header_size": info.header_size,
        "width": info.image.width,
        "height": info.image.height,
        "slices": info.image.slices,
        "channels": info.image.channels,
    })
}

/// The stored value at (x, y) as numpy's `str()` shows it (an array like `[ 12 200   3]` for color).
pub fn probe_text(src: &dyn ArraySource, slice: u64, x: u64, y: u64) -> Result<String> {
    let vals = src.probe(slice, x, y)?;
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
