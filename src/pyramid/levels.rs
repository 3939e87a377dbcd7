//! Level geometry of a multiresolution view of one image (level L is the image shrunk by 2^L) and the
//! texels of any one tile of any level.

use crate::error::{Error, Result};
use crate::geom::{Rect, TileGrid};
use std::sync::{Arc, PoisonError, RwLock};

use crate::pyramid::store::{Method, Store};
use crate::pyramid::texels::TileData;
use crate::pyramid::{block_reduce, preview_rows};
use crate::source::{ArraySource, RegionBuf};

/// The levels of an image of `width × height` data pixels cut into `tile × tile` tiles.
///
/// Level L has `ceil(width / 2^L) × ceil(height / 2^L)` pixels; its pixel `i` covers the data pixels
/// `[i·2^L, (i+1)·2^L)` (the last one clipped to the image). `count` is the number of levels down to
/// the first one that fits in a single tile (at least 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Levels {
    pub width: u64,
    pub height: u64,
    pub tile: u64,
    pub count: u32,
}

/// `2^level` data pixels per level pixel, saturating for absurd levels.
fn factor(level: u32) -> u64 {
    1u64.checked_shl(level).unwrap_or(u64::MAX)
}

impl Levels {
    /// The levels of a `width × height` image with `tile`-pixel tiles (a tile of 0 is taken as 1).
    pub fn new(width: u64, height: u64, tile: u64) -> Levels {
        let tile = tile.max(1);
        let mut levels = Levels { width, height, tile, count: 1 };
        while levels.count < 64 {
            let (w, h) = levels.size(levels.count - 1);
            if w <= tile && h <= tile {
                break;
            }
            levels.count += 1;
        }
        levels
    }

    /// Size `(width, height)` of `level` in its own pixels.
    pub fn size(&self, level: u32) -> (u64, u64) {
        let f = factor(level);
        (self.width.div_ceil(f), self.height.div_ceil(f))
    }

    /// The tile grid of `level`, in that level's pixels.
    pub fn grid(&self, level: u32) -> TileGrid {
        let (width, height) = self.size(level);
        TileGrid { width, height, size: self.tile }
    }

    /// Data pixels (level 0) covered by tile (tx, ty) of `level`, clipped to the image; empty for a
    /// tile outside the grid.
    pub fn data_rect(&self, level: u32, tx: u64, ty: u64) -> Rect {
        let r = self.grid(level).tile_rect(tx, ty);
        if r.is_empty() {
            return Rect::default();
        }
        let f = factor(level);
        Rect::new(r.x0.saturating_mul(f), r.y0.saturating_mul(f), r.x1.saturating_mul(f), r.y1.saturating_mul(f))
            .intersect(&Rect::of_size(self.width, self.height))
    }
}

/// Where a viewer's tiles come from: level 0 from the data; coarser levels from the pyramid file once
/// its tiles are stored, else computed from the data when that is cheap, else a preview from a strided
/// sample of rows (marked, so it is replaced when the pyramid catches up).
pub struct TileSource {
    pub src: Arc<dyn ArraySource>,
    pub levels: Levels,
    pub method: Method,
    store: RwLock<Option<Arc<Store>>>,
}

/// A coarse tile covering at most this many data pixels is computed exactly when the pyramid lacks it.
pub const EXACT_TILE_PIXELS: u64 = 1 << 22;

impl TileSource {
    pub fn new(src: Arc<dyn ArraySource>, levels: Levels, method: Method) -> TileSource {
        TileSource { src, levels, method, store: RwLock::new(None) }
    }

    /// Sets (or replaces) the pyramid file tiles are read from.
    pub fn set_store(&self, store: Option<Arc<Store>>) {
        *self.store.write().unwrap_or_else(PoisonError::into_inner) = store;
    }

    pub fn store(&self) -> Option<Arc<Store>> {
        self.store.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Whether the exact texels of a tile are available now (data, stored, or cheap to compute).
    pub fn exact_available(&self, slice: u64, level: u32, tx: u64, ty: u64) -> bool {
        level == 0
            || crate::source::native_level_at_most(self.src.as_ref(), level).is_some()
            || self.levels.data_rect(level, tx, ty).area() <= EXACT_TILE_PIXELS
            || self.src.has_exact_block_means()
            || self.store().is_some_and(|s| s.has_tile(slice, level, tx, ty))
    }

    /// The texels of a tile: exact when available, else a preview (`TileData::preview` set).
    pub fn texels(&self, slice: u64, level: u32, tx: u64, ty: u64) -> Result<TileData> {
        if level > 0 {
            // The file's own level (or the finest one above it, reduced the rest of the way).
            if let Some((k, lsrc)) = crate::source::native_level_at_most(self.src.as_ref(), level) {
                let im = lsrc.info().image;
                let lv =
                    Levels { width: im.width, height: im.height, tile: self.levels.tile, count: self.levels.count - k };
                return tile_texels_by(lsrc.as_ref(), slice, &lv, level - k, tx, ty, self.method);
            }
            if let Some(s) = self.store() {
                let mut buf = RegionBuf::default();
                match s.read_tile(slice, level, tx, ty, &mut buf) {
                    Ok(Some(offset)) => return Ok(TileData::from_stored(&buf, offset)),
                    Ok(None) => {}
                    // A damaged file is never trusted: delete it and go on from the data.
                    Err(e @ crate::error::Error::Cache { .. }) => {
                        eprintln!("vastview: {e}; deleted it (it is rebuilt when the file is next opened)");
                        if s.is_complete() {
                            let _ = std::fs::remove_file(s.path());
                        }
                        self.set_store(None);
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        if self.exact_available(slice, level, tx, ty) {
            return tile_texels_by(self.src.as_ref(), slice, &self.levels, level, tx, ty, self.method);
        }
        // Preview: one data row per level row's block (its centre, or near a compressed tile's top), reduced
        // along the row.
        let r = self.levels.grid(level).tile_rect(tx, ty);
        let f = factor(level);
        let x_bins = level_bins(r.x0, r.x1, f, self.levels.width);
        let rows = preview_rows(self.src.as_ref(), &level_bins(r.y0, r.y1, f, self.levels.height));
        let vals = block_reduce(self.src.as_ref(), slice, &x_bins, &rows, self.method)?;
        let mut t = texels_of(self.src.info(), &vals, r.width() as u32, r.height() as u32);
        t.preview = true;
        Ok(t)
    }
}

fn texels_of(info: &crate::source::SourceInfo, vals: &[f64], w: u32, h: u32) -> TileData {
    if info.image.is_color() {
        TileData::from_color_means(vals, w, h, info.image.channels as usize)
    } else {
        TileData::from_values(vals, w, h, info.dtype.is_wide())
    }
}

/// The data pixels `[i·f, (i+1)·f)` behind each level pixel `i` in `[a, b)`, clipped at `n`.
fn level_bins(a: u64, b: u64, f: u64, n: u64) -> Vec<(u64, u64)> {
    (a..b).map(|i| (i.saturating_mul(f), (i + 1).saturating_mul(f).min(n))).collect()
}

/// The texels of tile (tx, ty) of `level` of slice `slice`.
///
/// Level 0 is the region read in the source dtype ([`TileData::from_region`]). Level L > 0 holds the
/// NaN-ignoring means of 2^L × 2^L blocks of data pixels (the last block of a row or column clipped to the
/// image), as float32 (offset + residual for 64-bit data) or, for RGB(A), rounded u8 per channel.
pub fn tile_texels(
    src: &dyn ArraySource,
    slice: u64,
    levels: &Levels,
    level: u32,
    tx: u64,
    ty: u64,
) -> Result<TileData> {
    tile_texels_by(src, slice, levels, level, tx, ty, Method::Mean)
}

/// [`tile_texels`] with block maxima for `Method::Max`.
pub fn tile_texels_by(
    src: &dyn ArraySource,
    slice: u64,
    levels: &Levels,
    level: u32,
    tx: u64,
    ty: u64,
    method: Method,
) -> Result<TileData> {
    let info = src.info();
    let im = info.image;
    if (im.width, im.height) != (levels.width, levels.height) {
        return Err(Error::request(
            &info.path,
            format!(
                "tile levels for a {}x{} image do not fit this {}x{} image",
                levels.width, levels.height, im.width, im.height
            ),
        ));
    }
    if level >= levels.count {
        return Err(Error::request(
            &info.path,
            format!("level {level} is out of range (the image has {} levels)", levels.count),
        ));
    }
    let data = levels.data_rect(level, tx, ty);
    // Names the slice or the (empty) region in the error when either is out of range.
    src.check_request(slice, &data)?;
    if level == 0 {
        let mut buf = RegionBuf::default();
        src.read_region(slice, data, &mut buf)?;
        return Ok(TileData::from_region(&buf));
    }
    let r = levels.grid(level).tile_rect(tx, ty);
    let f = factor(level);
    let x_bins = level_bins(r.x0, r.x1, f, levels.width);
    let y_bins = level_bins(r.y0, r.y1, f, levels.height);
    let vals = block_reduce(src, slice, &x_bins, &y_bins, method)?;
    Ok(texels_of(info, &vals, r.width() as u32, r.height() as u32))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::dtype::DType;
    use crate::pyramid::texels::{TexelFormat, TexelKind};
    use crate::source::demo::DemoSource;
    use crate::source::{Format, ImageShape, SourceInfo};

    /// A small in-memory image: `values[(y·w + x)·c + k]`, stored as `dtype` (f32 or u8).
    struct MemSource {
        info: SourceInfo,
        values: Vec<f64>,
    }

    impl MemSource {
        fn new(width: u64, height: u64, channels: u64, dtype: DType, f: impl Fn(u64, u64, u64) -> f64) -> MemSource {
            let mut values = Vec::new();
            for y in 0..height {
                for x in 0..width {
                    for k in 0..channels {
                        values.push(f(x, y, k));
                    }
                }
            }
            let shape = if channels > 1 { vec![height, width, channels] } else { vec![height, width] };
            let info = SourceInfo::basic(
                PathBuf::from("<mem>"),
                Format::DEMO,
                shape,
                dtype,
                ImageShape { slices: 1, height, width, channels },
            );
            MemSource { info, values }
        }
    }

    impl ArraySource for MemSource {
        fn info(&self) -> &SourceInfo {
            &self.info
        }
        fn read_region(&self, slice: u64, rect: Rect, out: &mut RegionBuf) -> Result<()> {
            self.check_request(slice, &rect)?;
            let c = self.info.image.channels as usize;
            let w = self.info.image.width as usize;
            let dtype = self.info.dtype;
            let bytes = out.reset(dtype, rect.width() as usize, rect.height() as usize, c);
            let mut i = 0;
            for y in rect.y0 as usize..rect.y1 as usize {
                for x in rect.x0 as usize..rect.x1 as usize {
                    for k in 0..c {
                        let v = self.values[(y * w + x) * c + k];
                        match dtype {
                            DType::U8 => bytes[i] = v as u8,
                            _ => bytes[i * 4..i * 4 + 4].copy_from_slice(&(v as f32).to_ne_bytes()),
                        }
                        i += 1;
                    }
                }
            }
            Ok(())
        }
        fn sample_grid(&self, _slice: u64, _xs: &[u64], _ys: &[u64]) -> Result<Vec<f64>> {
            Ok(Vec::new())
        }
    }

    /// A full-resolution image whose file also stores level 1 and level 3 with their own (marked) values.
    struct WithLevels {
        full: MemSource,
        levels: Vec<(u32, Arc<dyn ArraySource>)>,
    }

    impl ArraySource for WithLevels {
        fn info(&self) -> &SourceInfo {
            self.full.info()
        }
        fn read_region(&self, slice: u64, rect: Rect, out: &mut RegionBuf) -> Result<()> {
            self.full.read_region(slice, rect, out)
        }
        fn sample_grid(&self, slice: u64, xs: &[u64], ys: &[u64]) -> Result<Vec<f64>> {
            self.full.sample_grid(slice, xs, ys)
        }
        fn native_levels(&self) -> Vec<(u32, Arc<dyn ArraySource>)> {
            self.levels.clone()
        }
    }

    #[test]
    fn native_levels_are_read_as_stored_and_reduced_from_the_finest_one_above() {
        let (w, h) = (4000u64, 2400u64);
        let level = |l: u32, v: f64| -> (u32, Arc<dyn ArraySource>) {
            let f = 1u64 << l;
            let s: Arc<dyn ArraySource> =
                Arc::new(MemSource::new(w.div_ceil(f), h.div_ceil(f), 1, DType::F32, move |x, _, _| v + x as f64));
            (l, s)
        };
        let src: Arc<dyn ArraySource> = Arc::new(WithLevels {
            full: MemSource::new(w, h, 1, DType::F32, |_, _, _| 0.0),
            levels: vec![level(1, 100.0), level(3, 1000.0)],
        });
        for ((lw, lh), want) in
            [((2000, 1200), Some(1)), ((500, 300), Some(3)), ((2001, 1200), None), ((4000, 2400), None)]
        {
            assert_eq!(crate::source::level_number((w, h), (lw, lh)), want, "{lw}x{lh}");
        }
        let levels = Levels::new(w, h, 256);
        let ts = TileSource::new(src.clone(), levels, Method::Mean);
        // Level 1 is the stored level itself, not means of the (all-zero) data.
        let t = ts.texels(0, 1, 0, 0).unwrap();
        assert!(!t.preview);
        let v = f32s(&t);
        assert_eq!(&v[..3], &[100.0, 101.0, 102.0]);
        // Level 2 is reduced from level 1: means of x = 0,1 -> 100.5.
        let v = f32s(&ts.texels(0, 2, 0, 0).unwrap());
        assert_eq!(&v[..2], &[100.5, 102.5]);
        // Levels 3 and 4 come from level 3.
        assert_eq!(f32s(&ts.texels(0, 3, 0, 0).unwrap())[1], 1001.0);
        assert_eq!(f32s(&ts.texels(0, 4, 0, 0).unwrap())[0], 1000.5);
        // A render shrunk by 8 reads level 3, with the region moved onto its pixels.
        let spec = crate::headless::RenderSpec { size: Some((500, 300)), ..Default::default() };
        let (k, lsrc, s) = crate::headless::choose_native(src.as_ref(), &spec).unwrap();
        assert_eq!((k, s.region, s.size), (3, Some(Rect::new(0, 0, 500, 300)), Some((500, 300))));
        assert_eq!(lsrc.info().image.width, 500);
        let spec = crate::headless::RenderSpec {
            region: Some(Rect::new(8, 16, 808, 416)),
            size: Some((200, 100)),
            ..Default::default()
        };
        let (k, _, s) = crate::headless::choose_native(src.as_ref(), &spec).unwrap();
        assert_eq!((k, s.region), (1, Some(Rect::new(4, 8, 404, 208))));
        // Not shrunk: the data.
        let spec = crate::headless::RenderSpec { size: Some((4000, 2400)), ..Default::default() };
        assert!(crate::headless::choose_native(src.as_ref(), &spec).is_none());
    }

    fn f32s(t: &TileData) -> Vec<f32> {
        t.bytes.chunks_exact(4).map(|b| f32::from_ne_bytes([b[0], b[1], b[2], b[3]])).collect()
    }

    #[test]
    fn sizes_and_counts() {
        let l = Levels::new(1000, 600, 256);
        assert_eq!(l.count, 3);
        assert_eq!(l.size(0), (1000, 600));
        assert_eq!(l.size(1), (500, 300));
        assert_eq!(l.size(2), (250, 150));
        assert_eq!((l.grid(0).cols(), l.grid(0).rows()), (4, 3));
        assert_eq!((l.grid(2).cols(), l.grid(2).rows()), (1, 1));

        let one = Levels::new(1, 1, 256);
        assert_eq!(one.count, 1);
        assert_eq!(one.size(0), (1, 1));

        // 1e6 / 2^12 = 244.1 → 245 ≤ 256, while 2^11 gives 489.
        let demo = Levels::new(1_000_000, 1_000_000, 256);
        assert_eq!(demo.count, 13);
        assert_eq!(demo.size(11), (489, 489));
        assert_eq!(demo.size(12), (245, 245));

        // Odd sizes round up; a tall image counts levels by its longer side; exact fit needs no extra level.
        assert_eq!(Levels::new(5, 3, 2).size(1), (3, 2));
        assert_eq!(Levels::new(3, 5000, 256).count, 6);
        assert_eq!(Levels::new(256, 256, 256).count, 1);
        assert_eq!(Levels::new(257, 1, 256).count, 2);
        // Absurd levels saturate instead of overflowing.
        assert_eq!(demo.size(80), (1, 1));
    }

    #[test]
    fn data_rect_of_edge_tiles() {
        let l = Levels::new(1000, 600, 256);
        assert_eq!(l.data_rect(0, 0, 0), Rect::new(0, 0, 256, 256));
        assert_eq!(l.data_rect(0, 3, 2), Rect::new(768, 512, 1000, 600));
        // Level 1 is 500×300: tile (1, 1) is level pixels [256, 500) × [256, 300).
        assert_eq!(l.data_rect(1, 1, 1), Rect::new(512, 512, 1000, 600));
        assert_eq!(l.data_rect(1, 0, 0), Rect::new(0, 0, 512, 512));
        assert_eq!(l.data_rect(2, 0, 0), Rect::new(0, 0, 1000, 600));
        // Outside the grid: empty.
        assert!(l.data_rect(0, 4, 0).is_empty());
        assert!(l.data_rect(2, 0, 1).is_empty());
        // An odd edge: 5 wide, level 1 pixel 2 covers data pixel 4 only.
        assert_eq!(Levels::new(5, 3, 2).data_rect(1, 1, 0), Rect::new(4, 0, 5, 3));
    }

    #[test]
    fn level_one_is_the_block_mean_of_level_zero() {
        // 5×3, tile 2: level 1 is 3×2 (its last column and row are clipped blocks), level 2 is 2×1.
        let src = MemSource::new(5, 3, 1, DType::F32, |x, y, _| (x * 10 + y * 100) as f64);
        let l = Levels::new(5, 3, 2);
        assert_eq!(l.count, 3);
        let t0 = tile_texels(&src, 0, &l, 0, 2, 1).unwrap();
        assert_eq!((t0.width, t0.height, t0.format), (1, 1, TexelFormat::R32Float));
        assert_eq!(f32s(&t0), vec![240.0]);

        let t = tile_texels(&src, 0, &l, 1, 0, 0).unwrap();
        assert_eq!((t.width, t.height, t.kind), (2, 2, TexelKind::Float));
        let mean = |xs: &[u64], ys: &[u64]| {
            let v: Vec<f64> = ys.iter().flat_map(|&y| xs.iter().map(move |&x| (x * 10 + y * 100) as f64)).collect();
            (v.iter().sum::<f64>() / v.len() as f64) as f32
        };
        assert_eq!(
            f32s(&t),
            vec![mean(&[0, 1], &[0, 1]), mean(&[2, 3], &[0, 1]), mean(&[0, 1], &[2]), mean(&[2, 3], &[2])]
        );
        let edge = tile_texels(&src, 0, &l, 1, 1, 0).unwrap();
        assert_eq!((edge.width, edge.height), (1, 2));
        assert_eq!(f32s(&edge), vec![mean(&[4], &[0, 1]), mean(&[4], &[2])]);
        let top = tile_texels(&src, 0, &l, 2, 0, 0).unwrap();
        assert_eq!((top.width, top.height), (2, 1));
        assert_eq!(f32s(&top), vec![mean(&[0, 1, 2, 3], &[0, 1, 2]), mean(&[4], &[0, 1, 2])]);
    }

    #[test]
    fn demo_level_one_matches_two_by_two_means_of_level_zero() {
        let src = DemoSource::new(300, 200);
        let l = Levels::new(300, 200, 64);
        let fine: Vec<Vec<f32>> = [(0, 0), (1, 0), (0, 1), (1, 1)]
            .iter()
            .map(|&(tx, ty)| f32s(&tile_texels(&src, 0, &l, 0, tx, ty).unwrap()))
            .collect();
        let coarse = f32s(&tile_texels(&src, 0, &l, 1, 0, 0).unwrap());
        assert_eq!(coarse.len(), 64 * 64);
        let px = |x: usize, y: usize| f64::from(fine[(y / 64) * 2 + x / 64][(y % 64) * 64 + x % 64]);
        for j in 0..64 {
            for i in 0..64 {
                let m =
                    (px(2 * i, 2 * j) + px(2 * i + 1, 2 * j) + px(2 * i, 2 * j + 1) + px(2 * i + 1, 2 * j + 1)) / 4.0;
                let scale = m.abs().max(1.0);
                let c = f64::from(coarse[j * 64 + i]);
                assert!((c - m).abs() < 1e-5 * scale, "({i}, {j}): {c} vs {m}");
            }
        }
    }

    #[test]
    fn color_levels_average_each_channel() {
        let src = MemSource::new(4, 2, 3, DType::U8, |x, y, k| (x * 10 + y * 50 + k) as f64);
        let l = Levels::new(4, 2, 2);
        assert_eq!(l.count, 2);
        let t = tile_texels(&src, 0, &l, 1, 0, 0).unwrap();
        assert_eq!((t.width, t.height, t.format), (2, 1, TexelFormat::Rgba8Uint));
        // Block (0..2, 0..2): mean of 0, 10, 50, 60 = 30 (+k per channel); opaque alpha.
        assert_eq!(t.bytes, vec![30, 31, 32, 255, 50, 51, 52, 255]);
    }

    #[test]
    fn bad_requests_are_errors() {
        let src = MemSource::new(5, 3, 1, DType::F32, |_, _, _| 1.0);
        let l = Levels::new(5, 3, 2);
        assert!(tile_texels(&src, 0, &l, 3, 0, 0).is_err());
        assert!(tile_texels(&src, 0, &l, 0, 3, 0).is_err());
        assert!(tile_texels(&src, 1, &l, 0, 0, 0).is_err());
        let e = tile_texels(&src, 0, &Levels::new(6, 3, 2), 0, 0, 0).unwrap_err();
        assert!(e.to_string().contains("do not fit"), "{e}");
    }
}
