//! View state (pure, no GPU or window types): where the viewport looks, at what zoom, which pyramid level
//! and tiles that needs, and how tiles map onto screen pixels.

use crate::geom::{Rect, TileGrid};

/// A view onto a `width × height` image through a viewport of `vw × vh` physical pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct View {
    /// Data coordinates (pixels, x right, y down) at the viewport's centre.
    pub cx: f64,
    pub cy: f64,
    /// Screen pixels per data pixel.
    pub zoom: f64,
    pub vw: f64,
    pub vh: f64,
}

/// One tile placed on the screen: its level and grid position, and the draw mapping.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placement {
    pub level: u32,
    pub tx: u64,
    pub ty: u64,
    /// Quad in viewport pixels: x, y, w, h.
    pub rect: [f64; 4],
    /// texel = floor(px·m[0] + m[1], py·m[2] + m[3]) for (px, py) in viewport pixels.
    pub texel_map: [f64; 4],
}

pub const MIN_ZOOM: f64 = 1e-7;
pub const MAX_ZOOM: f64 = 256.0;
/// The largest |centre coordinate| a view keeps (2^53: data pixels stay exact integers, and screen positions
/// `(x − cx) · zoom` stay finite for any image).
pub const MAX_CENTER: f64 = 9_007_199_254_740_992.0;

impl View {
    /// The whole image, centred, fitted into the viewport.
    pub fn fit(width: u64, height: u64, vw: f64, vh: f64) -> View {
        let zoom = (vw / width as f64).min(vh / height as f64).clamp(MIN_ZOOM, MAX_ZOOM);
        View { cx: width as f64 / 2.0, cy: height as f64 / 2.0, zoom, vw, vh }
    }

    pub fn screen_to_data(&self, sx: f64, sy: f64) -> (f64, f64) {
        ((sx - self.vw / 2.0) / self.zoom + self.cx, (sy - self.vh / 2.0) / self.zoom + self.cy)
    }

    pub fn data_to_screen(&self, x: f64, y: f64) -> (f64, f64) {
        ((x - self.cx) * self.zoom + self.vw / 2.0, (y - self.cy) * self.zoom + self.vh / 2.0)
    }

    /// Zooms by `factor` keeping the data point under screen point (sx, sy) fixed.
    pub fn zoom_about(&mut self, sx: f64, sy: f64, factor: f64) {
        let (x, y) = self.screen_to_data(sx, sy);
        self.zoom = (self.zoom * factor).clamp(MIN_ZOOM, MAX_ZOOM);
        self.cx = x - (sx - self.vw / 2.0) / self.zoom;
        self.cy = y - (sy - self.vh / 2.0) / self.zoom;
    }

    /// Keeps the centre finite and within ±[`MAX_CENTER`] (a NaN centre becomes 0).
    pub fn clamp_center(&mut self) {
        let c = |v: f64| if v.is_nan() { 0.0 } else { v.clamp(-MAX_CENTER, MAX_CENTER) };
        (self.cx, self.cy) = (c(self.cx), c(self.cy));
    }

    /// Moves the view by a screen-pixel drag.
    pub fn pan(&mut self, dx: f64, dy: f64) {
        self.cx -= dx / self.zoom;
        self.cy -= dy / self.zoom;
    }

    /// Data rectangle visible (unclipped, fractional): x0, y0, x1, y1.
    pub fn visible(&self) -> [f64; 4] {
        let (x0, y0) = self.screen_to_data(0.0, 0.0);
        let (x1, y1) = self.screen_to_data(self.vw, self.vh);
        [x0, y0, x1, y1]
    }

    /// The visible part of a `width × height` image, in whole data pixels.
    pub fn visible_rect(&self, width: u64, height: u64) -> Rect {
        let [x0, y0, x1, y1] = self.visible();
        let c = |v: f64, max: u64| v.clamp(0.0, max as f64);
        Rect::new(
            c(x0.floor(), width) as u64,
            c(y0.floor(), height) as u64,
            c(x1.ceil(), width) as u64,
            c(y1.ceil(), height) as u64,
        )
    }

    /// The level to draw: the coarsest whose pixels are still no larger than a screen pixel
    /// (level L shrinks by 2^L), clamped to the levels that exist.
    pub fn level(&self, count: u32) -> u32 {
        if self.zoom >= 1.0 {
            return 0;
        }
        ((1.0 / self.zoom).log2().floor().max(0.0) as u32).min(count.saturating_sub(1))
    }

    /// Tiles of `grid` (level `level`) intersecting the view, nearest the centre first, with
    /// `margin` extra tiles around (the prefetch ring when > 0).
    pub fn tiles(&self, grid: &TileGrid, level: u32, margin: u64) -> Vec<(u64, u64)> {
        let s = (1u64 << level) as f64;
        let [x0, y0, x1, y1] = self.visible();
        let t = grid.size as f64 * s;
        let lo = |v: f64| ((v / t).floor().max(0.0) as u64).saturating_sub(margin);
        let hi = |v: f64, n: u64| (((v / t).ceil().max(0.0) as u64) + margin).min(n);
        let (tx0, tx1, ty0, ty1) = (lo(x0), hi(x1, grid.cols()), lo(y0), hi(y1, grid.rows()));
        let mut v: Vec<(u64, u64)> = (ty0..ty1).flat_map(|ty| (tx0..tx1).map(move |tx| (tx, ty))).collect();
        let (ccx, ccy) = (self.cx / t - 0.5, self.cy / t - 0.5);
        v.sort_by(|a, b| {
            let d = |p: &(u64, u64)| (p.0 as f64 - ccx).powi(2) + (p.1 as f64 - ccy).powi(2);
            d(a).total_cmp(&d(b))
        });
        v
    }

    /// Where tile (tx, ty) of `level` (tiles of `tile` level pixels; `size` its clipped size in level
    /// pixels) goes on screen, and the texel mapping — computed relative to the tile in f64 so that
    /// f32 on the GPU stays exact far from the origin.
    pub fn place(&self, level: u32, tx: u64, ty: u64, tile: u64, size: (u64, u64)) -> Placement {
        let s = (1u64 << level) as f64;
        let (ox, oy) = ((tx * tile) as f64, (ty * tile) as f64); // tile origin, level pixels
        let (sx, sy) = self.data_to_screen(ox * s, oy * s);
        let k = self.zoom * s; // screen pixels per level pixel
        let m = 1.0 / k;
        // texel = (px − vw/2)/k + cx/s − ox, with (cx/s − ox) formed first (small near the view).
        let bx = (self.cx / s - ox) - self.vw / 2.0 * m;
        let by = (self.cy / s - oy) - self.vh / 2.0 * m;
        Placement { level, tx, ty, rect: [sx, sy, size.0 as f64 * k, size.1 as f64 * k], texel_map: [m, bx, m, by] }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_far_off_centre_is_clamped_and_the_view_math_stays_finite() {
        for (cx, cy) in [(1e308, -1e308), (f64::MAX, f64::MIN), (f64::NAN, f64::INFINITY)] {
            let mut v = View { cx, cy, zoom: MAX_ZOOM, vw: 800.0, vh: 600.0 };
            v.clamp_center();
            assert!(v.cx.abs() <= MAX_CENTER && v.cy.abs() <= MAX_CENTER, "{v:?}");
            let (sx, sy) = v.data_to_screen(0.0, 0.0);
            assert!(sx.is_finite() && sy.is_finite(), "{v:?}");
            assert!(v.visible().iter().all(|c| c.is_finite()), "{v:?}");
            assert!(v.visible_rect(80, 64).is_empty() || cx.is_nan(), "{v:?}");
            let grid = crate::geom::TileGrid { width: 80, height: 64, size: 256 };
            assert!(v.tiles(&grid, 0, 1).is_empty() || cx.is_nan(), "{v:?}");
        }
    }

    #[test]
    fn zoom_about_keeps_the_point_fixed() {
        let mut v = View::fit(1000, 500, 800.0, 600.0);
        let before = v.screen_to_data(123.0, 456.0);
        v.zoom_about(123.0, 456.0, 3.7);
        let after = v.screen_to_data(123.0, 456.0);
        assert!((before.0 - after.0).abs() < 1e-9 && (before.1 - after.1).abs() < 1e-9);
    }

    #[test]
    fn levels_follow_zoom() {
        let mut v = View::fit(100_000, 100_000, 1000.0, 1000.0);
        assert_eq!(v.level(20), 6); // zoom 0.01 → 2^6 = 64 ≤ 100 < 128
        v.zoom = 1.0;
        assert_eq!(v.level(20), 0);
        v.zoom = 0.5;
        assert_eq!(v.level(20), 1);
        v.zoom = 1e-6;
        assert_eq!(v.level(3), 2);
    }

    #[test]
    fn placement_maps_pixel_centres_to_the_right_texels() {
        // 1:1 with the view's top-left at data (1000, 2000): screen pixel i → data 1000 + i.
        let v = View { cx: 1000.0 + 64.0, cy: 2000.0 + 32.0, zoom: 1.0, vw: 128.0, vh: 64.0 };
        let p = v.place(0, 1000 / 256, 2000 / 256, 256, (256, 256));
        for i in [0.5, 10.5, 127.5] {
            let texel = (i * p.texel_map[0] + p.texel_map[1]).floor();
            assert_eq!(texel as u64 + 3 * 256, 1000 + i as u64);
        }
        // Far from the origin at a deep zoom, the mapping stays exact in f32.
        let v = View { cx: 999_999.5, cy: 999_999.5, zoom: 64.0, vw: 640.0, vh: 640.0 };
        let p = v.place(0, 999_999 / 256, 999_999 / 256, 256, (256, 256));
        let (m, b) = (p.texel_map[0] as f32, p.texel_map[1] as f32);
        let texel = (320.5f32 * m + b).floor() as u64 + (999_999 / 256) * 256;
        assert_eq!(texel, 999_999);
    }

    #[test]
    fn tiles_are_sorted_centre_first() {
        let v = View { cx: 1300.0, cy: 1300.0, zoom: 1.0, vw: 1024.0, vh: 1024.0 };
        let g = TileGrid { width: 10_000, height: 10_000, size: 256 };
        let t = v.tiles(&g, 0, 0);
        assert_eq!(t.len(), 25);
        assert_eq!(t[0], (5, 5));
        assert!(v.tiles(&g, 0, 1).len() > 25);
    }
}
