//! The library API behind `vastview render --points` and `info --points`: extent, binning, shading, and
//! writing the PNG (north up) or the aggregate grid itself as `.npy` (row 0 = lowest y).

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use crate::error::{Error, Result};
use crate::headless::npy_header;
use crate::output::{self, Format};
use crate::palette::Colormap;
use crate::points::index::PointIndex;
use crate::points::shade::{shade_row, values};
use crate::points::{
    aggregate, aggregate_rows, data_bounds, shade, Agg, Bounds, Extent, Grid, Normalizer, PointScale, Shading, Skipped,
};
use crate::source::points::PointSource;

/// Longest output side when `--size` is not given (the other keeps the region's aspect ratio).
pub const DEFAULT_POINT_SIDE: u64 = 1024;

/// Most pixels a point image binned as one grid may have (its grids, one per thread while binning, are
/// held in memory); bigger images are binned and written in strips of rows.
pub const MAX_POINT_PIXELS: u64 = 1 << 26;

/// Pixels of one strip of an image rendered in strips (grids of a few tens of MB).
pub const STRIP_PIXELS: u64 = 1 << 21;

/// Rows per strip when a `w`×`h` image is rendered in strips: above `MAX_POINT_PIXELS`, or above
/// `$VASTVIEW_POINT_STRIP_PX` pixels, which then also sets the strip's pixels (tests use it to run the
/// strip path on small images). `None`: one grid.
pub fn strip_rows(w: u64, h: u64) -> Option<u64> {
    let env = std::env::var("VASTVIEW_POINT_STRIP_PX").ok().and_then(|v| v.parse::<u64>().ok()).filter(|&v| v > 0);
    (w * h > env.unwrap_or(MAX_POINT_PIXELS)).then(|| (env.unwrap_or(STRIP_PIXELS) / w).clamp(1, h))
}

/// What the user asked `render --points` for.
#[derive(Debug, Clone)]
pub struct PointRender {
    /// Data-space region; default: the bounds of the finite points.
    pub region: Option<Extent>,
    pub size: Option<(u64, u64)>,
    pub agg: Agg,
    pub colormap: String,
    pub scale: PointScale,
    /// 0..1
    pub alpha: f64,
    pub background: [u8; 4],
}

impl Default for PointRender {
    fn default() -> Self {
        PointRender {
            region: None,
            size: None,
            agg: Agg::Count,
            colormap: "viridis".into(),
            scale: PointScale::Linear,
            alpha: 1.0,
            background: [0; 4],
        }
    }
}

/// What a point render did: the extent and size used, what it skipped, notes for the user, timings.
#[derive(Debug, Clone)]
pub struct PointReport {
    pub extent: Extent,
    pub width: u64,
    pub height: u64,
    /// The data-bounds pass, when the region was not given.
    pub bounds: Option<Bounds>,
    pub skipped: Skipped,
    /// Things the user should know (a padded extent, skipped NaN values).
    pub notes: Vec<String>,
    /// The point index the binning read (its path, and the points it read), when one was used.
    pub index: Option<(std::path::PathBuf, u64)>,
    pub bounds_s: f64,
    pub bin_s: f64,
    pub write_s: f64,
}

/// The output size for an extent: long side `DEFAULT_POINT_SIDE`, the other by the aspect ratio.
fn default_size(e: &Extent) -> (u64, u64) {
    // Halved widths: the same ratio, and finite for extents across most of float64's range.
    let (dx, dy) = (e.xmax * 0.5 - e.xmin * 0.5, e.ymax * 0.5 - e.ymin * 0.5);
    let n = DEFAULT_POINT_SIDE as f64;
    if dx >= dy {
        (DEFAULT_POINT_SIDE, ((n * dy / dx).round() as u64).clamp(1, DEFAULT_POINT_SIDE))
    } else {
        (((n * dx / dy).round() as u64).clamp(1, DEFAULT_POINT_SIDE), DEFAULT_POINT_SIDE)
    }
}

/// The region a render uses: the given one, or the data bounds (padded when all points share an x or y).
pub fn resolve_extent(src: &PointSource, region: Option<Extent>) -> Result<(Extent, Option<Bounds>, Vec<String>)> {
    if let Some(e) = region {
        return Ok((e, None, Vec::new()));
    }
    let b = data_bounds(src)?;
    let Some(e) = b.extent else {
        return Err(Error::bad_input(
            &src.path,
            format!("none of the {} points has finite x and y (all NaN or infinite): nothing to draw", src.len),
        ));
    };
    let orig = e;
    let (e, px, py) = e.padded();
    let mut notes = Vec::new();
    if px || py {
        let axes = match (px, py) {
            (true, true) => "x and y",
            (true, false) => "x",
            _ => "y",
        };
        let equal = (!px || orig.xmax == orig.xmin) && (!py || orig.ymax == orig.ymin);
        let half = (!px || e.xmax - e.xmin == 1.0) && (!py || e.ymax - e.ymin == 1.0);
        let what = if equal {
            format!("all points have the same {axes}")
        } else {
            format!("the points' {axes} differ by less than float64 can bin at their magnitude")
        };
        notes.push(format!(
            "{what}: the region is padded {}to {},{},{},{}",
            if half { "by 0.5 " } else { "" },
            e.xmin,
            e.ymin,
            e.xmax,
            e.ymax
        ));
    }
    Ok((e, Some(b), notes))
}

/// Bins `src` per `spec` and writes `out`: an image in the format its extension names (PNG, JPEG, TIFF;
/// see [`crate::output`]) or, for `.npy`, the aggregate grid. The output is checked first (not the
/// input, its directory exists).
pub fn render_points(src: &PointSource, spec: &PointRender, out: &Path) -> Result<PointReport> {
    let colormap = Colormap::named(&src.path, &spec.colormap)?;
    output::check(out, &[&src.path])?;
    let format = Format::of(out)?;
    if !(0.0..=1.0).contains(&spec.alpha) {
        return Err(Error::request(&src.path, "--alpha must lie in 0..1"));
    }
    let t0 = Instant::now();
    let (extent, bounds, mut notes) = resolve_extent(src, spec.region)?;
    let bounds_s = t0.elapsed().as_secs_f64();
    let (w, h) = spec.size.unwrap_or_else(|| default_size(&extent));
    if w == 0 || h == 0 || w > 1 << 16 || h > 1 << 16 {
        return Err(Error::request(&src.path, format!("output size {w}x{h} must be 1 to 65536 on each side")));
    }
    output::check_size(out, format, w, h)?;
    let t1 = Instant::now();
    // A complete index of the file (built by `vastview index`) is used when there is one; looking for it
    // is best effort (an unusable cache directory means a full scan).
    let index = PointIndex::find(src).ok().flatten();
    let index_note = index.as_ref().map(|ix| (ix.path().to_path_buf(), ix.points_in(&extent)));
    let (skipped, bin_s, write_s) = if let Some(rows) = strip_rows(w, h) {
        let strips = Strips {
            src,
            index: index.as_ref(),
            extent,
            w: w as usize,
            h: h as usize,
            rows: rows as usize,
            agg: spec.agg,
        };
        let hint = if index.is_none() {
            "; with no spatial index every strip of every pass scans the whole file (`vastview index` with the same \
             point flags first, and strips read only their cells)"
        } else {
            ""
        };
        notes.push(format!("{w}x{h} pixels: binned and written in strips of {rows} rows{hint}"));
        strips.render(spec, colormap, format, out)?
    } else {
        let (grid, skipped) = match &index {
            Some(ix) => ix.aggregate(&extent, w as usize, h as usize, spec.agg)?,
            None => aggregate(src, &extent, w as usize, h as usize, spec.agg)?,
        };
        let bin_s = t1.elapsed().as_secs_f64();
        let t2 = Instant::now();
        if format == Format::Npy {
            write_grid_npy(&grid, w, h, &src.path, out)?;
        } else {
            let sh = Shading {
                colormap,
                scale: spec.scale,
                alpha: (spec.alpha * 255.0).round() as u8,
                background: spec.background,
            };
            let rgba = shade(&grid, w as usize, h as usize, &sh);
            output::write_rgba(out, &[&src.path], format, w, h, |sink| sink(&rgba))?;
        }
        (skipped, bin_s, t2.elapsed().as_secs_f64())
    };
    if skipped.nan_values > 0 {
        notes.push(format!("{} points with a NaN value were not aggregated", skipped.nan_values));
    }
    // Damaged cache files found (and rebuilt) while opening and binning.
    let notes = [src.take_notes(), notes].concat();
    Ok(PointReport { extent, width: w, height: h, bounds, skipped, notes, index: index_note, bounds_s, bin_s, write_s })
}

/// An image too big for one grid, binned strip by strip (each strip: the points whose row, by the whole
/// grid's rule, falls in it), so the strips are exactly the rows of the one big grid.
struct Strips<'a> {
    src: &'a PointSource,
    index: Option<&'a PointIndex>,
    extent: Extent,
    w: usize,
    h: usize,
    /// Rows per strip.
    rows: usize,
    agg: Agg,
}

impl Strips<'_> {
    /// The strips' row ranges, bottom (row 0) first.
    fn ranges(&self) -> Vec<std::ops::Range<usize>> {
        (0..self.h).step_by(self.rows).map(|a| a..(a + self.rows).min(self.h)).collect()
    }

    fn bin(&self, rows: std::ops::Range<usize>) -> Result<(Grid, Skipped)> {
        match self.index {
            Some(ix) => ix.aggregate_rows(&self.extent, self.w, self.h, rows, self.agg),
            None => aggregate_rows(self.src, &self.extent, self.w, self.h, rows, self.agg),
        }
    }

    /// Bins every strip (bottom first, or top first), calling `f` with each strip's rows and grid, and
    /// returns the skipped points of the whole image.
    fn each(&self, top_first: bool, mut f: impl FnMut(std::ops::Range<usize>, &Grid) -> Result<()>) -> Result<Skipped> {
        let mut ranges = self.ranges();
        if top_first {
            ranges.reverse();
        }
        let mut total = Skipped::default();
        let mut inside = 0u64;
        let mut finite = 0u64;
        for r in ranges {
            let (g, sk) = self.bin(r.clone())?;
            // Each strip counts every point of the other strips as outside; NaN/inf points are counted
            // by every strip, NaN values only by the strip holding them.
            finite = self.src.len.saturating_sub(sk.nonfinite);
            inside += finite.saturating_sub(sk.outside);
            total.nonfinite = sk.nonfinite;
            total.nan_values += sk.nan_values;
            f(r, &g)?;
        }
        total.outside = finite.saturating_sub(inside);
        Ok(total)
    }

    /// Writes the PNG (shaded over the whole image's values: a pass for their range, one for eq_hist's
    /// histogram, one for the scaled range, then the rows, top strip first) or the `.npy` grid (one pass,
    /// bottom strip first). Returns the skipped points and the binning and writing times.
    fn render(
        &self,
        spec: &PointRender,
        colormap: Colormap,
        format: Format,
        out: &Path,
    ) -> Result<(Skipped, f64, f64)> {
        let t = Instant::now();
        let werr = output::io_err(out);
        if format == Format::Npy {
            let mut skipped = Skipped::default();
            let float = self.agg.needs_value();
            output::write(out, &[&self.src.path], |f| {
                let (descr, w, h) = (if float { "<f8" } else { "<u4" }, self.w as u64, self.h as u64);
                f.write_all(&npy_header(descr, &[h, w])).map_err(&werr)?;
                skipped = self.each(false, |_, g| write_grid_values(g, f).map_err(&werr))?;
                Ok(())
            })?;
            return Ok((skipped, t.elapsed().as_secs_f64(), 0.0));
        }
        let mut norm = Normalizer::new(spec.scale, !self.agg.needs_value());
        // Counts: one pass gathers how many pixels have each count (few distinct values), which is all the
        // normalizer's stages need. Float aggregates: a pass per stage.
        let mut counts: std::collections::HashMap<u32, u64> = std::collections::HashMap::new();
        let skipped = self.each(false, |_, g| {
            match g {
                Grid::Count(c) => c.iter().filter(|&&n| n > 0).for_each(|&n| *counts.entry(n).or_default() += 1),
                Grid::Float(_) => norm.see_range(&values(g)),
            }
            Ok(())
        })?;
        if !self.agg.needs_value() {
            let seen = || counts.iter().map(|(&n, &m)| (f64::from(n), m));
            norm.see_range_of(seen());
            if norm.needs_histogram() {
                norm.see_histogram_of(seen());
                norm.end_histogram();
            }
            norm.see_span_of(seen());
        } else {
            if norm.needs_histogram() {
                self.each(false, |_, g| {
                    norm.see_histogram(&values(g));
                    Ok(())
                })?;
                norm.end_histogram();
            }
            self.each(false, |_, g| {
                norm.see_span(&values(g));
                Ok(())
            })?;
        }
        let sh = Shading {
            colormap,
            scale: spec.scale,
            alpha: (spec.alpha * 255.0).round() as u8,
            background: spec.background,
        };
        let w = self.w;
        output::write_rgba(out, &[&self.src.path], format, w as u64, self.h as u64, |sink| {
            let mut rgba = Vec::with_capacity(w * 4);
            let mut norm_row = Vec::with_capacity(w);
            self.each(true, |rows, g| {
                let vals = values(g);
                for r in (0..rows.len()).rev() {
                    norm_row.clear();
                    norm_row.extend(vals.get(r * w..(r + 1) * w).unwrap_or(&[]).iter().map(|&v| norm.apply(v)));
                    rgba.clear();
                    shade_row(&norm_row, &sh, &mut rgba);
                    sink(&rgba)?;
                }
                Ok(())
            })
            .map(|_| ())
        })?;
        Ok((skipped, t.elapsed().as_secs_f64(), 0.0))
    }
}

/// A grid's values in .npy order (little-endian uint32 or float64, row 0 first).
fn write_grid_values(grid: &Grid, f: &mut (impl Write + ?Sized)) -> std::io::Result<()> {
    match grid {
        Grid::Count(c) => c.iter().try_for_each(|v| f.write_all(&v.to_le_bytes())),
        Grid::Float(v) => v.iter().try_for_each(|v| f.write_all(&v.to_le_bytes())),
    }
}

/// The grid as .npy: uint32 counts or float64 (NaN = empty), shape (H, W), row 0 = lowest y. `input`:
/// the point file, which `out` must not be.
pub fn write_grid_npy(grid: &Grid, w: u64, h: u64, input: &Path, out: &Path) -> Result<()> {
    let werr = output::io_err(out);
    output::write(out, &[input], |f| {
        let descr = if matches!(grid, Grid::Count(_)) { "<u4" } else { "<f8" };
        f.write_all(&npy_header(descr, &[h, w])).map_err(&werr)?;
        write_grid_values(grid, f).map_err(&werr)
    })
}

/// `info --points` as text lines: the records, then one bounds pass (finite extent, non-finite count).
pub fn points_info_text(src: &PointSource) -> Result<String> {
    let mut s = String::new();
    for (k, v) in src.describe() {
        s.push_str(&format!("{k:<14}{v}\n"));
    }
    let b = data_bounds(src)?;
    let bounds = match b.extent {
        Some(e) => format!("x {} .. {}, y {} .. {}", e.xmin, e.xmax, e.ymin, e.ymax),
        None => "none (no point has finite x and y)".into(),
    };
    s.push_str(&format!("{:<14}{bounds}\n", "bounds:"));
    s.push_str(&format!(
        "{:<14}{} finite, {} with NaN/inf x or y (skipped when drawing)\n",
        "points x,y:", b.finite, b.nonfinite
    ));
    let index = match PointIndex::find(src).ok().flatten() {
        Some(ix) => format!("{} ({}x{} cells)", ix.path().display(), ix.meta.side(), ix.meta.side()),
        None => "none (`vastview index` builds one; renders then read only the cells they overlap)".into(),
    };
    s.push_str(&format!("{:<14}{index}\n", "index:"));
    for n in src.take_notes() {
        s.push_str(&format!("{:<14}{n}\n", "note:"));
    }
    Ok(s)
}

/// `info --points --json`.
pub fn points_info_json(src: &PointSource) -> Result<serde_json::Value> {
    let b = data_bounds(src)?;
    let fmt = match &src.format {
        crate::source::points::PointFormat::Raw => "raw",
        crate::source::points::PointFormat::Npy { .. } => "npy",
        crate::source::points::PointFormat::Text { .. } => "text",
    };
    let mut v = serde_json::json!({
        "path": src.path.display().to_string(),
        "format": fmt,
        "kind": "points",
        "points": src.len,
        "columns": src.columns,
        "dtype": src.dtype.name(),
        "byte_order": src.endian.name(),
        "memory_order": src.order.name(),
        "x_column": src.x,
        "y_column": src.y,
        "value_column": src.value_column(),
        "file_size": src.file_size,
        "finite_points": b.finite,
        "nonfinite_points": b.nonfinite,
        "bounds": b.extent.map(|e| [e.xmin, e.ymin, e.xmax, e.ymax]),
        "index": PointIndex::find(src).ok().flatten().map(|ix| ix.path().display().to_string()),
    });
    if let crate::source::points::PointFormat::Text { binary, report } = &src.format {
        v["converted_to"] = binary.display().to_string().into();
        v["text_lines"] = report.lines.into();
        v["malformed_lines"] = report.malformed.into();
        v["first_malformed_lines"] = report.first_malformed.clone().into();
    }
    v["notes"] = src.take_notes().into();
    Ok(v)
}
