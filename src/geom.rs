//! Integer rectangles in pixel coordinates (x = column, y = row, half-open) and tile grids over them.

/// A half-open rectangle `[x0, x1) × [y0, y1)` in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Rect {
    pub x0: u64,
    pub y0: u64,
    pub x1: u64,
    pub y1: u64,
}

impl Rect {
    pub fn new(x0: u64, y0: u64, x1: u64, y1: u64) -> Rect {
        Rect { x0, y0, x1, y1 }
    }
    pub fn of_size(w: u64, h: u64) -> Rect {
        Rect::new(0, 0, w, h)
    }
    pub fn width(&self) -> u64 {
        self.x1.saturating_sub(self.x0)
    }
    pub fn height(&self) -> u64 {
        self.y1.saturating_sub(self.y0)
    }
    pub fn is_empty(&self) -> bool {
        self.width() == 0 || self.height() == 0
    }
    pub fn area(&self) -> u64 {
        self.width() * self.height()
    }
    pub fn intersect(&self, o: &Rect) -> Rect {
        let r = Rect::new(self.x0.max(o.x0), self.y0.max(o.y0), self.x1.min(o.x1), self.y1.min(o.y1));
        if r.x1 <= r.x0 || r.y1 <= r.y0 {
            Rect::default()
        } else {
            r
        }
    }
    pub fn contains_rect(&self, o: &Rect) -> bool {
        o.x0 >= self.x0 && o.y0 >= self.y0 && o.x1 <= self.x1 && o.y1 <= self.y1
    }
}

/// Tiles of `size × size` pixels covering a `width × height` grid, aligned at multiples of `size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TileGrid {
    pub width: u64,
    pub height: u64,
    pub size: u64,
}

impl TileGrid {
    pub fn cols(&self) -> u64 {
        self.width.div_ceil(self.size)
    }
    pub fn rows(&self) -> u64 {
        self.height.div_ceil(self.size)
    }
    /// The pixel rectangle of tile (tx, ty), clipped to the grid.
    pub fn tile_rect(&self, tx: u64, ty: u64) -> Rect {
        let x0 = tx * self.size;
        let y0 = ty * self.size;
        Rect::new(x0, y0, (x0 + self.size).min(self.width), (y0 + self.size).min(self.height))
    }
    /// Tiles touching `r`, as (tx, ty), row by row.
    pub fn tiles_in(&self, r: &Rect) -> Vec<(u64, u64)> {
        let r = r.intersect(&Rect::of_size(self.width, self.height));
        if r.is_empty() {
            return Vec::new();
        }
        let (tx0, ty0) = (r.x0 / self.size, r.y0 / self.size);
        let (tx1, ty1) = ((r.x1 - 1) / self.size, (r.y1 - 1) / self.size);
        let mut v = Vec::with_capacity(((tx1 - tx0 + 1) * (ty1 - ty0 + 1)) as usize);
        for ty in ty0..=ty1 {
            for tx in tx0..=tx1 {
                v.push((tx, ty));
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_cover_a_region_exactly() {
        let g = TileGrid { width: 1000, height: 600, size: 256 };
        assert_eq!(g.cols(), 4);
        assert_eq!(g.rows(), 3);
        assert_eq!(g.tile_rect(3, 2), Rect::new(768, 512, 1000, 600));
        let t = g.tiles_in(&Rect::new(255, 0, 257, 1));
        assert_eq!(t, vec![(0, 0), (1, 0)]);
        assert!(g.tiles_in(&Rect::new(1000, 0, 1200, 10)).is_empty());
    }
}
