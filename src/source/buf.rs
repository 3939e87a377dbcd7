//! Aligned buffers of native-order elements read from a source, and typed access to them.

use half::f16;

use crate::dtype::DType;

/// A region read from a source: `height × width × channels` elements of `dtype`, native byte order,
/// row-major. Backed by `u64` words so every element type can be viewed in place.
#[derive(Debug, Clone, Default)]
pub struct RegionBuf {
    words: Vec<u64>,
    len: usize,
    pub dtype: Option<DType>,
    pub width: usize,
    pub height: usize,
    pub channels: usize,
}

impl RegionBuf {
    /// Resizes for a region and returns the bytes to fill. Reuses the allocation when it can.
    pub fn reset(&mut self, dtype: DType, width: usize, height: usize, channels: usize) -> &mut [u8] {
        let len = width * height * channels * dtype.size();
        // Same size as before: keep the old contents (every caller overwrites them), skip the memset.
        if self.words.len() != len.div_ceil(8) {
            self.words.clear();
            self.words.resize(len.div_ceil(8), 0);
        }
        self.len = len;
        self.dtype = Some(dtype);
        self.width = width;
        self.height = height;
        self.channels = channels;
        &mut bytemuck::cast_slice_mut(&mut self.words)[..len]
    }
    pub fn bytes(&self) -> &[u8] {
        &bytemuck::cast_slice(&self.words)[..self.len]
    }
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut bytemuck::cast_slice_mut(&mut self.words)[..self.len]
    }
    pub fn dtype(&self) -> DType {
        self.dtype.unwrap_or(DType::U8)
    }
    /// Number of elements.
    pub fn count(&self) -> usize {
        self.width * self.height * self.channels
    }
    /// Every element as f64, in order.
    pub fn to_f64(&self) -> Vec<f64> {
        let mut v = Vec::with_capacity(self.count());
        crate::with_elements!(self.dtype(), self.bytes(), |s| v.extend(s.iter().map(|e| e.to_f64())));
        v
    }
    /// Every element as an exact typed scalar.
    pub fn scalars(&self) -> Vec<Scalar> {
        let mut v = Vec::with_capacity(self.count());
        crate::with_elements!(self.dtype(), self.bytes(), |s| v.extend(s.iter().map(|e| e.scalar())));
        if self.dtype() == DType::Bool {
            for s in &mut v {
                if let Scalar::U(x) = *s {
                    *s = Scalar::Bool(x != 0);
                }
            }
        }
        v
    }
}

/// One stored value, exactly.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scalar {
    Bool(bool),
    I(i64),
    U(u64),
    F16(f16),
    F32(f32),
    F64(f64),
}

impl Scalar {
    /// The value the way numpy's `str()` of the scalar shows it.
    pub fn numpy_str(&self) -> String {
        match *self {
            Scalar::Bool(b) => crate::numfmt::format_bool(b),
            Scalar::I(i) => i.to_string(),
            Scalar::U(u) => u.to_string(),
            Scalar::F16(h) => crate::numfmt::format_f16(h),
            Scalar::F32(f) => crate::numfmt::format_f32(f),
            Scalar::F64(f) => crate::numfmt::format_f64(f),
        }
    }
    pub fn to_f64(&self) -> f64 {
        match *self {
            Scalar::Bool(b) => f64::from(u8::from(b)),
            Scalar::I(i) => i as f64,
            Scalar::U(u) => u as f64,
            Scalar::F16(h) => h.to_f64(),
            Scalar::F32(f) => f64::from(f),
            Scalar::F64(f) => f,
        }
    }
}

/// An element type as it sits in memory.
pub trait Element: bytemuck::Pod + Send + Sync {
    fn to_f64(self) -> f64;
    fn scalar(self) -> Scalar;
}

macro_rules! impl_element {
    ($t:ty, $variant:ident, $conv:ty) => {
        impl Element for $t {
            #[inline(always)]
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn scalar(self) -> Scalar {
                Scalar::$variant(self as $conv)
            }
        }
    };
}
impl_element!(u8, U, u64);
impl_element!(i8, I, i64);
impl_element!(u16, U, u64);
impl_element!(i16, I, i64);
impl_element!(u32, U, u64);
impl_element!(i32, I, i64);
impl_element!(u64, U, u64);
impl_element!(i64, I, i64);
impl_element!(f32, F32, f32);
impl_element!(f64, F64, f64);

impl Element for f16 {
    #[inline(always)]
    fn to_f64(self) -> f64 {
        f64::from(self.to_f32())
    }
    fn scalar(self) -> Scalar {
        Scalar::F16(self)
    }
}

/// Runs `$body` with `$s` bound to the bytes viewed as a slice of the element type of `$dtype`.
/// The bytes must be aligned for that type (RegionBuf's are).
#[macro_export]
macro_rules! with_elements {
    ($dtype:expr, $bytes:expr, |$s:ident| $body:expr) => {{
        use $crate::dtype::DType as D;
        let b: &[u8] = $bytes;
        match $dtype {
            D::Bool | D::U8 => {
                let $s: &[u8] = b;
                $body
            }
            D::I8 => {
                let $s: &[i8] = bytemuck::cast_slice(b);
                $body
            }
            D::U16 => {
                let $s: &[u16] = bytemuck::cast_slice(b);
                $body
            }
            D::I16 => {
                let $s: &[i16] = bytemuck::cast_slice(b);
                $body
            }
            D::F16 => {
                let $s: &[half::f16] = bytemuck::cast_slice(b);
                $body
            }
            D::U32 => {
                let $s: &[u32] = bytemuck::cast_slice(b);
                $body
            }
            D::I32 => {
                let $s: &[i32] = bytemuck::cast_slice(b);
                $body
            }
            D::F32 => {
                let $s: &[f32] = bytemuck::cast_slice(b);
                $body
            }
            D::U64 => {
                let $s: &[u64] = bytemuck::cast_slice(b);
                $body
            }
            D::I64 => {
                let $s: &[i64] = bytemuck::cast_slice(b);
                $body
            }
            D::F64 => {
                let $s: &[f64] = bytemuck::cast_slice(b);
                $body
            }
        }
    }};
}
