//! Tile texels prepared on the CPU for upload: each dtype in its own width (u8 → 8-bit, u16/i16/f16 →
//! 16-bit, 32-bit types → 32-bit), 64-bit data as a per-tile offset plus a float32 residual.

use crate::dtype::DType;
use crate::source::RegionBuf;

/// How a tile's texels are read in the shader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TexelKind {
    Float = 0,
    Uint = 1,
    Sint = 2,
    Rgba = 3,
}

/// Texel formats a tile can have (mapped to GPU texture formats by `render`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TexelFormat {
    R8Uint,
    R8Sint,
    R16Uint,
    R16Sint,
    R16Float,
    R32Uint,
    R32Sint,
    R32Float,
    Rgba8Uint,
}

impl TexelFormat {
    /// Bytes per texel.
    pub fn size(self) -> u32 {
        match self {
            TexelFormat::R8Uint | TexelFormat::R8Sint => 1,
            TexelFormat::R16Uint | TexelFormat::R16Sint | TexelFormat::R16Float => 2,
            _ => 4,
        }
    }
}

/// A tile ready for upload: texels in the texture format's own width, plus the value offset that
/// 64-bit data travels with (texel value + offset = data value).
#[derive(Debug, Clone)]
pub struct TileData {
    pub kind: TexelKind,
    pub format: TexelFormat,
    pub width: u32,
    pub height: u32,
    pub bytes: Vec<u8>,
    pub offset: f64,
    /// A stand-in from a strided sample of rows, to be replaced once the exact tile is available.
    pub preview: bool,
}

/// Median of the finite values (0 when none): the per-tile offset of 64-bit data. The median keeps
/// full precision for the bulk of the tile even when a few values are huge (a midpoint would not).
pub(crate) fn finite_median(vals: &[f64]) -> f64 {
    let mut f: Vec<f64> = vals.iter().copied().filter(|v| v.is_finite()).collect();
    if f.is_empty() {
        return 0.0;
    }
    let mid = f.len() / 2;
    *f.select_nth_unstable_by(mid, f64::total_cmp).1
}

impl TileData {
    /// Texels straight from a source region, in the dtype's own width (u8 → R8, u16 → R16, f32 → R32F …).
    /// 64-bit types become a float32 residual around the tile's own offset; RGB gets an opaque alpha.
    pub fn from_region(buf: &RegionBuf) -> TileData {
        let (w, h) = (buf.width as u32, buf.height as u32);
        use TexelFormat as F;
        let plain = |kind, format| TileData {
            kind,
            format,
            width: w,
            height: h,
            bytes: buf.bytes().to_vec(),
            offset: 0.0,
            preview: false,
        };
        if buf.channels > 1 {
            let mut bytes = Vec::with_capacity(buf.width * buf.height * 4);
            for px in buf.bytes().chunks_exact(buf.channels) {
                bytes.extend_from_slice(&[px[0], px[1], px[2], if buf.channels == 4 { px[3] } else { 255 }]);
            }
            return TileData {
                kind: TexelKind::Rgba,
                format: F::Rgba8Uint,
                width: w,
                height: h,
                bytes,
                offset: 0.0,
                preview: false,
            };
        }
        match buf.dtype() {
            DType::Bool | DType::U8 => plain(TexelKind::Uint, F::R8Uint),
            DType::I8 => plain(TexelKind::Sint, F::R8Sint),
            DType::U16 => plain(TexelKind::Uint, F::R16Uint),
            DType::I16 => plain(TexelKind::Sint, F::R16Sint),
            DType::F16 => plain(TexelKind::Float, F::R16Float),
            DType::U32 => plain(TexelKind::Uint, F::R32Uint),
            DType::I32 => plain(TexelKind::Sint, F::R32Sint),
            DType::F32 => plain(TexelKind::Float, F::R32Float),
            DType::I64 | DType::U64 | DType::F64 => Self::from_values(&buf.to_f64(), w, h, true),
        }
    }

    /// Texels of a stored pyramid tile read by [`crate::pyramid::Store::read_tile`], with its offset.
    pub fn from_stored(buf: &RegionBuf, offset: f64) -> TileData {
        let mut t = Self::from_region(buf);
        t.offset = offset;
        t
    }

    /// Float32 residuals `(v − offset) as f32` of 64-bit values around their median: the stored and
    /// uploaded form of a 64-bit tile.
    pub(crate) fn residuals(vals: &[f64]) -> (f64, Vec<f32>) {
        let offset = finite_median(vals);
        (offset, vals.iter().map(|&v| (v - offset) as f32).collect())
    }

    /// Float texels from computed values (block means): float32, or offset + residual when `wide`.
    pub fn from_values(vals: &[f64], width: u32, height: u32, wide: bool) -> TileData {
        if !wide {
            return Self::float32(vals, width, height, 0.0);
        }
        let (offset, f) = Self::residuals(vals);
        Self::from_f32(f, width, height, offset)
    }

    /// RGB(A) texels from per-channel block means (`channels` values per pixel), rounded to u8.
    pub fn from_color_means(vals: &[f64], width: u32, height: u32, channels: usize) -> TileData {
        let mut bytes = Vec::with_capacity(width as usize * height as usize * 4);
        for px in vals.chunks_exact(channels) {
            let ch = |k: usize| px.get(k).map_or(255, |v| v.round().clamp(0.0, 255.0) as u8);
            bytes.extend_from_slice(&[ch(0), ch(1), ch(2), if channels == 4 { ch(3) } else { 255 }]);
        }
        TileData {
            kind: TexelKind::Rgba,
            format: TexelFormat::Rgba8Uint,
            width,
            height,
            bytes,
            offset: 0.0,
            preview: false,
        }
    }

    /// Float32 texels `v − offset` (the shader adds the offset back through the tile's shift).
    fn float32(vals: &[f64], width: u32, height: u32, offset: f64) -> TileData {
        Self::from_f32(vals.iter().map(|&v| (v - offset) as f32).collect(), width, height, offset)
    }

    fn from_f32(f: Vec<f32>, width: u32, height: u32, offset: f64) -> TileData {
        TileData {
            kind: TexelKind::Float,
            format: TexelFormat::R32Float,
            width,
            height,
            bytes: bytemuck::cast_slice(&f).to_vec(),
            offset,
            preview: false,
        }
    }

    /// Every `step`-th data value of scalar texels (texel + offset), as f64, row by row: a bounded
    /// sample for histograms. Colour tiles give nothing.
    pub fn values_every(&self, step: usize) -> Vec<f64> {
        let sz = self.format.size() as usize;
        let step = step.max(1);
        let b: std::borrow::Cow<[u8]> = if step == 1 {
            std::borrow::Cow::Borrowed(&self.bytes)
        } else {
            std::borrow::Cow::Owned(self.bytes.chunks_exact(sz).step_by(step).flatten().copied().collect())
        };
        let o = self.offset;
        match self.format {
            TexelFormat::R8Uint => b.iter().map(|&v| f64::from(v) + o).collect(),
            TexelFormat::R8Sint => b.iter().map(|&v| f64::from(v as i8) + o).collect(),
            TexelFormat::R16Uint => {
                b.chunks_exact(2).map(|c| f64::from(u16::from_ne_bytes([c[0], c[1]])) + o).collect()
            }
            TexelFormat::R16Sint => {
                b.chunks_exact(2).map(|c| f64::from(i16::from_ne_bytes([c[0], c[1]])) + o).collect()
            }
            TexelFormat::R16Float => {
                b.chunks_exact(2).map(|c| f64::from(half::f16::from_ne_bytes([c[0], c[1]]).to_f32()) + o).collect()
            }
            TexelFormat::R32Uint => {
                b.chunks_exact(4).map(|c| f64::from(u32::from_ne_bytes([c[0], c[1], c[2], c[3]])) + o).collect()
            }
            TexelFormat::R32Sint => {
                b.chunks_exact(4).map(|c| f64::from(i32::from_ne_bytes([c[0], c[1], c[2], c[3]])) + o).collect()
            }
            TexelFormat::R32Float => {
                b.chunks_exact(4).map(|c| f64::from(f32::from_ne_bytes([c[0], c[1], c[2], c[3]])) + o).collect()
            }
            TexelFormat::Rgba8Uint => Vec::new(),
        }
    }
}
