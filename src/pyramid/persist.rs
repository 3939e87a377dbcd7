//! Finding, validating, building and resuming a source's pyramid file in the disk cache, and reading a
//! stored level back as an [`ArraySource`].

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::diskcache::{self, Identity};
use crate::error::{Error, Result};
use crate::geom::Rect;
use crate::pyramid::build::{Builder, Progress};
use crate::pyramid::levels::Levels;
use crate::pyramid::store::{self, has_offsets, level_dtype, Layout, Meta, Method, Store};
use crate::pyramid::tilestats::{HistRange, StatsAcc, TileStats};
use crate::pyramid::TILE;
use crate::source::{ArraySource, Format, RegionBuf, SourceInfo};

/// Cache sub-directory of pyramid files.
pub const KIND: &str = "pyramids";

/// Where a source's pyramid lives: the final name, the name while building, and its checkpoint.
#[derive(Debug, Clone)]
pub struct Paths {
    pub done: PathBuf,
    pub partial: PathBuf,
    pub resume: PathBuf,
}

/// How the bytes were read as an array: two readings of one file get two pyramids.
fn source_desc(info: &SourceInfo) -> String {
    let mut d = format!(
        "{} shape={:?} dtype={} endian={} order={} header={}",
        info.format.name(),
        info.shape,
        info.dtype.name(),
        info.endian.name(),
        info.order.name(),
        info.header_size
    );
    // The part of a multi-part file (a FITS HDU, a TIFF series) is part of what was cached.
    if let Some(m) = &info.member {
        d.push_str(&format!(" member={m:?}"));
    }
    d
}

/// What a pyramid of `src` must say about itself (the histogram limits aside), and its layout.
fn expected_meta(src: &dyn ArraySource, id: Identity, method: Method, hist: HistRange) -> (Meta, Layout) {
    let info = src.info();
    let im = info.image;
    let levels = Levels::new(im.width, im.height, TILE);
    let dtype = level_dtype(info.dtype);
    let offsets = has_offsets(info.dtype);
    let layout = Layout::new(levels, im.slices, im.channels, dtype, offsets);
    let meta = Meta {
        format: "vastview-pyramid".into(),
        version: store::VERSION,
        identity: id,
        source: source_desc(info),
        width: im.width,
        height: im.height,
        slices: im.slices,
        channels: im.channels,
        dtype: dtype.name().into(),
        tile: TILE,
        levels: levels.count,
        method,
        hist_lo: hist.lo,
        hist_hi: hist.hi,
        little_endian: store::native_little(),
        file_size: layout.file_size,
        offsets,
    };
    (meta, layout)
}

/// The identity and cache paths of `src`'s pyramid, or `None` for sources that are not files (the demo).
pub fn locate(src: &dyn ArraySource, method: Method) -> Result<Option<(Identity, Paths)>> {
    let info = src.info();
    if info.format == Format::DEMO {
        return Ok(None);
    }
    let id = Identity::of(&info.path)?;
    let key = id.key(&format!("pyramid v{} {} {}", store::VERSION, method.name(), source_desc(info)));
    // Only a name: nothing is created, so lookups work (and find nothing) when the cache is unusable.
    let done = diskcache::entry_path(KIND, &key, "vvp")?;
    let partial = diskcache::partial_path(&done);
    let mut resume = partial.clone().into_os_string();
    resume.push(".resume");
    Ok(Some((id, Paths { done, partial, resume: PathBuf::from(resume) })))
}

/// The complete, valid pyramid of `src` if the cache has one. A damaged or stale file is deleted.
pub fn find(src: &dyn ArraySource, method: Method) -> Result<Option<Arc<Store>>> {
    let Some((id, paths)) = locate(src, method)? else { return Ok(None) };
    if !paths.done.exists() {
        return Ok(None);
    }
    let (expect, _) = expected_meta(src, id, method, HistRange { lo: 0.0, hi: 1.0 });
    match Store::open(&paths.done, &expect, true) {
        Ok(s) => {
            diskcache::touch(&paths.done);
            Ok(Some(Arc::new(s)))
        }
        Err(e @ Error::Cache { .. }) => {
            eprintln!("vastview: {e}; deleting it (it will be rebuilt)");
            let _ = std::fs::remove_file(&paths.done);
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// A build ready to run: a new or resumed partial file, locked against other builders.
pub struct BuildJob {
    pub store: Arc<Store>,
    pub paths: Paths,
    /// True when an earlier, interrupted build is being continued.
    pub resuming: bool,
}

impl BuildJob {
    /// Opens the partial file left by an interrupted build (when it is valid) or creates a new one.
    /// The partial file is locked before anything in it is read or changed: a second builder of the
    /// same pyramid fails (without touching the first one's file). Fails too when the cache cannot
    /// store the file (read-only, not a directory).
    pub fn prepare(src: &dyn ArraySource, method: Method) -> Result<BuildJob> {
        let Some((id, paths)) = locate(src, method)? else {
            return Err(Error::request(&src.info().path, "procedural sources have no pyramid file"));
        };
        diskcache::require_writable(KIND, "pyramids")?;
        let p = &paths.partial;
        let file = std::fs::File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(p)
            .map_err(|e| Error::io(p, e))?;
        if !store::try_lock(&file) || !same_file(&file, p) {
            // Locked by another builder, or finished (renamed) or abandoned by it since it was opened.
            return Err(busy(&src.info().path));
        }
        let (expect, _) = expected_meta(src, id.clone(), method, HistRange { lo: 0.0, hi: 1.0 });
        if paths.resume.exists() {
            let again = file.try_clone().map_err(|e| Error::io(p, e))?;
            if let Ok(s) = Store::open_in(p, again, &expect, false) {
                return Ok(BuildJob { store: Arc::new(s), paths, resuming: true });
            }
        }
        // A new build: free room first, then sample the histogram range.
        let fresh = (|| {
            let (meta, layout) = expected_meta(src, id, method, sample_range(src)?);
            let _ = diskcache::enforce_cap(diskcache::cap(), layout.file_size, &[p.as_path()]);
            let _ = std::fs::remove_file(&paths.resume);
            Store::create_in(p, file, meta, layout)
        })();
        match fresh {
            Ok(s) => Ok(BuildJob { store: Arc::new(s), paths, resuming: false }),
            Err(e) => {
                let _ = std::fs::remove_file(p);
                Err(e)
            }
        }
    }

    /// Runs the pass to the end, then renames the file into place. The store stays readable throughout.
    /// A cancelled build keeps its partial file and checkpoint (to resume); any other failure (disk
    /// full, the data file shrank or became unreadable) deletes both, so no dead partial file is left.
    pub fn run(&self, src: &dyn ArraySource, progress: &Progress) -> Result<Arc<Store>> {
        let built = Builder::new(src, &self.store, progress, &self.paths.resume)
            .run()
            .and_then(|()| self.store.sync())
            .and_then(|()| {
                std::fs::rename(&self.paths.partial, &self.paths.done).map_err(|e| Error::io(&self.paths.done, e))
            });
        match built {
            Ok(()) => {}
            Err(Error::Cancelled) => return Err(Error::Cancelled),
            Err(e) => {
                let _ = std::fs::remove_file(&self.paths.partial);
                let _ = std::fs::remove_file(&self.paths.resume);
                return Err(e);
            }
        }
        let _ = std::fs::remove_file(&self.paths.resume);
        self.store.set_complete(&self.paths.done);
        progress.epoch.fetch_add(1, Ordering::Release);
        Ok(self.store.clone())
    }
}

/// Whether `file` is still the file at `path` (same device and inode).
fn same_file(file: &std::fs::File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

fn busy(path: &Path) -> Error {
    Error::request(path, "another vastview process is building this file's pyramid; try again when it is done")
}

/// Statistics of one slice straight from the data, for when the cache cannot store a pyramid: one
/// pass with the histogram range a pyramid would get, per level-0 tile as the pyramid gathers them,
/// merged (the same values as a pyramid's up to the rounding of the merge order).
pub fn stats_without_cache(src: &dyn ArraySource, slice: u64) -> Result<(TileStats, HistRange)> {
    let im = src.info().image;
    if im.channels != 1 {
        return Err(Error::request(&src.info().path, "statistics are computed for scalar images, not RGB(A)"));
    }
    let range = sample_range(src)?;
    let scale = range.scale();
    let (w, h) = (im.width, im.height);
    let cols = w.div_ceil(TILE).max(1) as usize;
    let mut bh = 1u64;
    while bh < TILE && bh * 2 * w * im.channels <= 1 << 22 {
        bh *= 2;
    }
    let mut accs = vec![StatsAcc::default(); cols];
    let mut all = TileStats::default();
    let mut buf = RegionBuf::default();
    let mut y = 0;
    while y < h {
        let y1 = (y + bh).min(h);
        src.read_region(slice, Rect::new(0, y, w, y1), &mut buf)?;
        let vals = buf.to_f64();
        for row in vals.chunks_exact(w as usize) {
            for (tx, acc) in accs.iter_mut().enumerate() {
                let x0 = tx * TILE as usize;
                acc.add(&row[x0..(x0 + TILE as usize).min(w as usize)], &range, scale);
            }
        }
        y = y1;
        if y % TILE == 0 || y == h {
            for acc in accs.iter_mut() {
                all.merge(&acc.finish());
                *acc = StatsAcc::default();
            }
        }
    }
    Ok((all, range))
}

/// Histogram limits from evenly spread samples of up to 16 evenly spread slices (one range for the
/// whole stack, so every slice's tiles merge).
fn sample_range(src: &dyn ArraySource) -> Result<HistRange> {
    let im = src.info().image;
    if im.is_color() {
        return Ok(HistRange { lo: 0.0, hi: 255.0 });
    }
    let n = im.slices.min(16);
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for k in 0..n {
        let slice = (2 * k + 1) * im.slices / (2 * n);
        let l = crate::pyramid::percentile_limits(src, slice, 0.0, 100.0, (1 << 16) / n)?;
        if l.lo.is_finite() && l.hi.is_finite() && (l.lo, l.hi) != (0.0, 1.0) {
            (lo, hi) = (lo.min(l.lo), hi.max(l.hi));
        }
    }
    Ok(HistRange::around(lo, hi))
}

/// The complete pyramid, building (or resuming) it first when there is none.
pub fn find_or_build(src: &dyn ArraySource, method: Method, progress: &Progress) -> Result<Arc<Store>> {
    if let Some(s) = find(src, method)? {
        return Ok(s);
    }
    BuildJob::prepare(src, method)?.run(src, progress)
}

/// One stored level of a pyramid, read tile by tile (checksums verified), as an array source: in the
/// stored dtype, or as float64 (offset + residual) for a file with offsets.
pub struct LevelSource {
    store: Arc<Store>,
    level: u32,
    info: SourceInfo,
}

impl LevelSource {
    /// Level `level` ≥ 1 of `store`, whose level 0 is `base`.
    pub fn new(store: Arc<Store>, base: &SourceInfo, level: u32) -> LevelSource {
        let (w, h) = store.levels().size(level);
        let mut info = base.clone();
        info.dtype = if store.layout.offsets { crate::dtype::DType::F64 } else { store.layout.dtype };
        info.image.width = w;
        info.image.height = h;
        LevelSource { store, level, info }
    }

    /// Whether every tile under `rect` (level pixels) of `slice` is stored.
    pub fn covers(&self, slice: u64, rect: &Rect) -> bool {
        let g = self.store.levels().grid(self.level);
        g.tiles_in(rect).iter().all(|&(tx, ty)| self.store.has_tile(slice, self.level, tx, ty))
    }
}

impl ArraySource for LevelSource {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    fn read_region(&self, slice: u64, rect: Rect, out: &mut RegionBuf) -> Result<()> {
        self.check_request(slice, &rect)?;
        let g = self.store.levels().grid(self.level);
        let c = self.info.image.channels as usize;
        let esz = self.info.dtype.size() * c;
        let (w, h) = (rect.width() as usize, rect.height() as usize);
        let mut tile = RegionBuf::default();
        let mut dst = std::mem::take(out);
        let bytes = dst.reset(self.info.dtype, w, h, c);
        for (tx, ty) in g.tiles_in(&rect) {
            let Some(offset) = self.store.read_tile(slice, self.level, tx, ty, &mut tile)? else {
                return Err(Error::request(
                    &self.info.path,
                    format!("level {} tile {tx},{ty} is not built yet", self.level),
                ));
            };
            if self.store.layout.offsets {
                let vals: Vec<f64> = tile.to_f64().into_iter().map(|r| r + offset).collect();
                tile.reset(self.info.dtype, tile.width, tile.height, c).copy_from_slice(bytemuck::cast_slice(&vals));
            }
            let t = g.tile_rect(tx, ty);
            let part = t.intersect(&rect);
            let tw = t.width() as usize;
            for y in part.y0..part.y1 {
                let src_at = ((y - t.y0) as usize * tw + (part.x0 - t.x0) as usize) * esz;
                let dst_at = ((y - rect.y0) as usize * w + (part.x0 - rect.x0) as usize) * esz;
                let n = part.width() as usize * esz;
                bytes[dst_at..dst_at + n].copy_from_slice(&tile.bytes()[src_at..src_at + n]);
            }
        }
        *out = dst;
        Ok(())
    }

    fn sample_grid(&self, slice: u64, xs: &[u64], ys: &[u64]) -> Result<Vec<f64>> {
        let mut vals = Vec::with_capacity(xs.len() * ys.len());
        let mut b = RegionBuf::default();
        for &y in ys {
            for &x in xs {
                self.read_region(slice, Rect::new(x, y, x + 1, y + 1), &mut b)?;
                vals.extend(b.to_f64());
            }
        }
        Ok(vals)
    }
}
