//! Sources that turn "no value" markers into NaN where every consumer (render, stats, pyramid) must see
//! it: stored integers as their physical floating-point values with a blank integer (FITS `BLANK`, CF
//! `_FillValue` of packed data) as NaN, as astropy and netCDF4 hand them out; and float data whose fill
//! values (CF `_FillValue`/`missing_value`) become NaN in their own dtype.

use std::sync::Arc;

use super::{ArraySource, RegionBuf, Scaling, SourceInfo};
use crate::dtype::DType;
use crate::error::Result;
use crate::geom::Rect;

/// `inner`'s values through `scaling`, as float32 or float64 (`scaling.physical`), blanks NaN.
pub struct PhysicalFloat {
    inner: Arc<dyn ArraySource>,
    info: SourceInfo,
    scaling: Scaling,
}

impl PhysicalFloat {
    /// Wraps `inner` (whose `info().scaling` is `scaling`); `scaling.physical` must be F32 or F64.
    pub fn new(inner: Arc<dyn ArraySource>, scaling: Scaling, note: String) -> PhysicalFloat {
        let mut info = inner.info().clone();
        info.dtype = if scaling.physical == DType::F64 { DType::F64 } else { DType::F32 };
        info.endian = crate::dtype::Endian::NATIVE;
        info.scaling = None;
        info.details.push(("values".to_string(), note));
        PhysicalFloat { inner, info, scaling }
    }

    fn convert(&self, stored: f64) -> f64 {
        let s = &self.scaling;
        if s.blank.is_some_and(|b| b as f64 == stored) {
            return f64::NAN;
        }
        if self.info.dtype == DType::F32 {
            // astropy's arithmetic for 8/16-bit data: float32 throughout.
            let mut v = stored as f32;
            if s.scale != 1.0 {
                v *= s.scale as f32;
            }
            if s.offset != 0.0 {
                v += s.offset as f32;
            }
            f64::from(v)
        } else {
            let mut v = stored;
            if s.scale != 1.0 {
                v *= s.scale;
            }
            if s.offset != 0.0 {
                v += s.offset;
            }
            v
        }
    }
}

impl ArraySource for PhysicalFloat {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    fn read_region(&self, slice: u64, rect: Rect, out: &mut RegionBuf) -> Result<()> {
        self.check_request(slice, &rect)?;
        let mut stored = RegionBuf::default();
        self.inner.read_region(slice, rect, &mut stored)?;
        let vals = stored.to_f64();
        let c = self.info.image.channels as usize;
        let dst = out.reset(self.info.dtype, rect.width() as usize, rect.height() as usize, c);
        if self.info.dtype == DType::F32 {
            for (d, v) in dst.chunks_exact_mut(4).zip(&vals) {
                d.copy_from_slice(&(self.convert(*v) as f32).to_ne_bytes());
            }
        } else {
            for (d, v) in dst.chunks_exact_mut(8).zip(&vals) {
                d.copy_from_slice(&self.convert(*v).to_ne_bytes());
            }
        }
        Ok(())
    }

    fn cheap_head_rows(&self) -> Option<u64> {
        self.inner.cheap_head_rows()
    }

    fn prefetch(&self, slice: u64, rect: Rect) {
        self.inner.prefetch(slice, rect);
    }

    fn stream_hint(&self, sequential: bool) {
        self.inner.stream_hint(sequential);
    }

    fn check_lent(&self) -> Result<()> {
        self.inner.check_lent()
    }

    fn sample_grid(&self, slice: u64, xs: &[u64], ys: &[u64]) -> Result<Vec<f64>> {
        Ok(self.inner.sample_grid(slice, xs, ys)?.into_iter().map(|v| self.convert(v)).collect())
    }
}

/// `inner`'s float32/float64 values with every value equal to one of `fill` as NaN (same dtype).
pub struct MaskedFloat {
    inner: Arc<dyn ArraySource>,
    info: SourceInfo,
    fill: Vec<f64>,
}

impl MaskedFloat {
    /// Wraps `inner` (float32 or float64, scalar) so that `fill` values read as NaN.
    pub fn new(inner: Arc<dyn ArraySource>, fill: Vec<f64>, note: String) -> MaskedFloat {
        let mut info = inner.info().clone();
        info.details.push(("values".to_string(), note));
        MaskedFloat { inner, info, fill }
    }

    fn is_fill(&self, v: f64) -> bool {
        self.fill.contains(&v)
    }
}

impl ArraySource for MaskedFloat {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    fn read_region(&self, slice: u64, rect: Rect, out: &mut RegionBuf) -> Result<()> {
        self.inner.read_region(slice, rect, out)?;
        // The comparison is made in the stored dtype: a float32 fill of 1e20 is the float32 nearest 1e20.
        match self.info.dtype {
            DType::F32 => {
                let fill: Vec<f32> = self.fill.iter().map(|&f| f as f32).collect();
                for v in bytemuck::cast_slice_mut::<u8, f32>(out.bytes_mut()) {
                    if fill.contains(v) {
                        *v = f32::NAN;
                    }
                }
            }
            DType::F64 => {
                for v in bytemuck::cast_slice_mut::<u8, f64>(out.bytes_mut()) {
                    if self.is_fill(*v) {
                        *v = f64::NAN;
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn chunk_shape(&self) -> Option<(u64, u64)> {
        self.inner.chunk_shape()
    }

    fn cheap_head_rows(&self) -> Option<u64> {
        self.inner.cheap_head_rows()
    }

    fn prefetch(&self, slice: u64, rect: Rect) {
        self.inner.prefetch(slice, rect);
    }

    fn stream_hint(&self, sequential: bool) {
        self.inner.stream_hint(sequential);
    }

    fn check_lent(&self) -> Result<()> {
        self.inner.check_lent()
    }

    fn sample_grid(&self, slice: u64, xs: &[u64], ys: &[u64]) -> Result<Vec<f64>> {
        let f32_fill: Vec<f64> = self.fill.iter().map(|&f| f64::from(f as f32)).collect();
        let single = self.info.dtype == DType::F32;
        Ok(self
            .inner
            .sample_grid(slice, xs, ys)?
            .into_iter()
            .map(|v| if (single && f32_fill.contains(&v)) || (!single && self.is_fill(v)) { f64::NAN } else { v })
            .collect())
    }
}
