//! A read-only memory-mapped array of any supported dtype, byte order and memory order: the reader behind `.npy` and raw files.

use std::path::Path;

use super::guard::GuardedMap;
use super::{ArraySource, ImageShape, RegionBuf, SourceInfo};
use crate::dtype::{Endian, Order};
use crate::error::{Error, Result};
use crate::geom::Rect;

/// A memory-mapped array. Reads copy just the requested elements out of the map.
pub struct MappedArray {
    info: SourceInfo,
    map: GuardedMap,
    /// Byte offset of element 0 in the map.
    offset: usize,
    /// Element strides (not bytes) of the outer axes (outermost first), whose index is the slice number.
    outer_strides: Vec<usize>,
    /// Byte offset in the map of each slice's element 0, when slices lie apart (TIFF pages); else empty.
    planes: Vec<usize>,
    /// Element strides of the row, column and channel axes.
    stride_y: usize,
    stride_x: usize,
    stride_c: usize,
}

impl MappedArray {
    /// Maps `file` and checks that `info.shape` at `offset` fits in it.
    /// `info.image` must already be derived from `info.shape`.
    pub fn new(file: &std::fs::File, info: SourceInfo, offset: u64) -> Result<MappedArray> {
        let path = info.path.clone();
        let esz = info.dtype.size() as u64;
        let count = info.shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d)).and_then(|n| n.checked_mul(esz));
        let need = count.and_then(|n| n.checked_add(offset));
        let need = need.ok_or_else(|| Error::bad_input(&path, "the shape's size overflows 64 bits"))?;
        if need > info.file_size {
            return Err(Error::bad_input(
                &path,
                format!(
                    "the data needs {need} bytes ({} header + shape {} x {} bytes) but the file has only {}",
                    offset,
                    super::fmt_shape(&info.shape),
                    esz,
                    info.file_size
                ),
            ));
        }
        if usize::try_from(need).is_err() {
            return Err(Error::bad_input(&path, "the file is too large for this platform's address space"));
        }
        let map = GuardedMap::map(file).map_err(|e| Error::io(&path, e))?;
        if (map.len() as u64) < need {
            return Err(Error::FileShrank { path });
        }
        // Reads announce their own byte runs (will_need), so fault readahead would only add bytes
        // nobody asked for: a 1024² region of a 20000² image would otherwise pull ~150 MB cold.
        map.advise_random();
        let strides = element_strides(&info.shape, info.order);
        let inner = if info.image.channels > 1 { 3 } else { 2 };
        let n = info.shape.len();
        if n < inner {
            return Err(Error::bad_input(&path, "the shape has too few axes for an image"));
        }
        let (stride_y, stride_x) = (strides[n - inner], strides[n - inner + 1]);
        let stride_c = if inner == 3 { strides[n - 1] } else { 0 };
        let outer_strides = strides[..n - inner].to_vec();
        Ok(MappedArray {
            info,
            map,
            offset: offset as usize,
            outer_strides,
            planes: Vec::new(),
            stride_y,
            stride_x,
            stride_c,
        })
    }

    /// Maps `file` holding `info.image.slices` planes of `height × width × channels` C-order elements,
    /// each starting at its own byte offset (TIFF pages stored uncompressed). Each plane must fit the file.
    pub fn with_planes(file: &std::fs::File, info: SourceInfo, planes: &[u64]) -> Result<MappedArray> {
        let path = info.path.clone();
        let im = info.image;
        let esz = info.dtype.size() as u64;
        let plane =
            im.width.checked_mul(im.height).and_then(|n| n.checked_mul(im.channels)).and_then(|n| n.checked_mul(esz));
        let plane = plane.ok_or_else(|| Error::bad_input(&path, "the image size overflows 64 bits"))?;
        if planes.len() as u64 != im.slices {
            return Err(Error::bad_input(&path, format!("{} planes for {} slices", planes.len(), im.slices)));
        }
        for (k, &at) in planes.iter().enumerate() {
            if at.checked_add(plane).is_none_or(|end| end > info.file_size) {
                return Err(Error::bad_input(
                    &path,
                    format!("plane {k} at byte {at} needs {plane} bytes but the file has only {}", info.file_size),
                ));
            }
        }
        if usize::try_from(info.file_size).is_err() {
            return Err(Error::bad_input(&path, "the file is too large for this platform's address space"));
        }
        let map = GuardedMap::map(file).map_err(|e| Error::io(&path, e))?;
        if (map.len() as u64) < info.file_size {
            return Err(Error::FileShrank { path });
        }
        map.advise_random();
        let c = im.channels as usize;
        let w = im.width as usize;
        Ok(MappedArray {
            info,
            map,
            offset: 0,
            outer_strides: Vec::new(),
            planes: planes.iter().map(|&p| p as usize).collect(),
            stride_y: w * c,
            stride_x: c,
            stride_c: usize::from(c > 1),
        })
    }

    /// Byte offset in the map of element 0 of `slice`.
    fn base(&self, slice: u64) -> usize {
        if !self.planes.is_empty() {
            return self.planes[slice as usize];
        }
        let esz = self.info.dtype.size();
        let outer = self.info.outer_axes();
        let idx = super::axes::index_of(outer, slice);
        let elems: usize = idx.iter().zip(&self.outer_strides).map(|(&i, &s)| i as usize * s).sum();
        self.offset + elems * esz
    }

    fn path(&self) -> &Path {
        &self.info.path
    }

    /// Tells the kernel which bytes of `rect` are about to be read: one span when the runs are dense
    /// (the gaps cost less than extra requests), else each run of the contiguous axis.
    fn announce(&self, slice: u64, rect: &Rect) {
        let esz = self.info.dtype.size();
        let c = self.info.image.channels as usize;
        let base = self.base(slice);
        let (x0, y0, w, h) = (rect.x0 as usize, rect.y0 as usize, rect.width() as usize, rect.height() as usize);
        // Runs along the contiguous axis: rows (C order) or columns (Fortran order).
        let (first, run, step, n) = if self.stride_y == 1 && c == 1 {
            (base + (y0 + x0 * self.stride_x) * esz, h * esz, self.stride_x * esz, w)
        } else {
            (base + (y0 * self.stride_y + x0 * self.stride_x) * esz, w * c.max(1) * esz, self.stride_y * esz, h)
        };
        if n == 0 {
            return;
        }
        let span = step * (n - 1) + run;
        if span <= 4 * run * n {
            self.map.will_need(first, span);
        } else {
            for k in 0..n {
                self.map.will_need(first + k * step, run);
            }
        }
    }

    fn check_fault(&self) -> Result<()> {
        if self.map.faulted() {
            Err(Error::FileShrank { path: self.info.path.clone() })
        } else {
            Ok(())
        }
    }
}

/// Element strides of each axis for C (last axis fastest) or Fortran (first axis fastest) order.
fn element_strides(shape: &[u64], order: Order) -> Vec<usize> {
    let n = shape.len();
    let mut s = vec![1usize; n];
    match order {
        Order::C => {
            for i in (0..n.saturating_sub(1)).rev() {
                s[i] = s[i + 1] * shape[i + 1] as usize;
            }
        }
        Order::F => {
            for i in 1..n {
                s[i] = s[i - 1] * shape[i - 1] as usize;
            }
        }
    }
    s
}

/// Reverses the bytes of every `esz`-byte element in place.
fn swap_elements(bytes: &mut [u8], esz: usize) {
    if esz > 1 {
        for e in bytes.chunks_exact_mut(esz) {
            e.reverse();
        }
    }
}

impl ArraySource for MappedArray {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    fn read_region(&self, slice: u64, rect: Rect, out: &mut RegionBuf) -> Result<()> {
        self.check_request(slice, &rect)?;
        let ImageShape { channels, .. } = self.info.image;
        let (w, h, c) = (rect.width() as usize, rect.height() as usize, channels as usize);
        let esz = self.info.dtype.size();
        let src = self.map.bytes();
        let dst = out.reset(self.info.dtype, w, h, c);
        let base = self.base(slice);
        let (x0, y0) = (rect.x0 as usize, rect.y0 as usize);
        if self.stride_x == c && (c == 1 || self.stride_c == 1) {
            // Rows are contiguous runs of w·c elements (C order): one copy per row.
            let run = w * c * esz;
            self.announce(slice, &rect);
            for (j, row) in dst.chunks_exact_mut(run).enumerate() {
                let at = base + ((y0 + j) * self.stride_y + x0 * self.stride_x) * esz;
                row.copy_from_slice(&src[at..at + run]);
            }
        } else if self.stride_y == 1 && c == 1 {
            // Columns are contiguous (Fortran order): copy each column run, scatter into rows.
            let run = h * esz;
            self.announce(slice, &rect);
            for i in 0..w {
                let at = base + (y0 + (x0 + i) * self.stride_x) * esz;
                let col = &src[at..at + run];
                for (j, e) in col.chunks_exact(esz).enumerate() {
                    let d = (j * w + i) * esz;
                    dst[d..d + esz].copy_from_slice(e);
                }
            }
        } else {
            // General strides (Fortran-order colour): element by element.
            for j in 0..h {
                for i in 0..w {
                    for k in 0..c {
                        let at = base + ((y0 + j) * self.stride_y + (x0 + i) * self.stride_x + k * self.stride_c) * esz;
                        let d = ((j * w + i) * c + k) * esz;
                        dst[d..d + esz].copy_from_slice(&src[at..at + esz]);
                    }
                }
            }
        }
        if self.info.endian != Endian::NATIVE {
            swap_elements(out.bytes_mut(), esz);
        }
        self.check_fault()
    }

    fn prefetch(&self, slice: u64, rect: Rect) {
        if self.check_request(slice, &rect).is_ok() {
            self.announce(slice, &rect);
        }
    }

    fn rows_in_place(&self, slice: u64, y0: u64, y1: u64) -> Option<&[u8]> {
        let im = self.info.image;
        let wc = (im.width * im.channels) as usize;
        let c_order_rows =
            self.stride_x == im.channels as usize && (im.channels == 1 || self.stride_c == 1) && self.stride_y == wc;
        if !c_order_rows || self.info.endian != Endian::NATIVE || slice >= im.slices || y0 >= y1 || y1 > im.height {
            return None;
        }
        let esz = self.info.dtype.size();
        let at = self.base(slice) + y0 as usize * self.stride_y * esz;
        self.announce(slice, &Rect::new(0, y0, im.width, y1));
        self.map.bytes().get(at..at + (y1 - y0) as usize * wc * esz)
    }

    fn populate_rows(&self, slice: u64, y0: u64, y1: u64) {
        let im = self.info.image;
        if self.stride_y != (im.width * im.channels) as usize || slice >= im.slices || y0 >= y1 || y1 > im.height {
            return;
        }
        let esz = self.info.dtype.size();
        let at = self.base(slice) + y0 as usize * self.stride_y * esz;
        self.map.populate(at, (y1 - y0) as usize * self.stride_y * esz);
    }

    fn check_lent(&self) -> Result<()> {
        self.check_fault()
    }

    fn stream_hint(&self, sequential: bool) {
        if sequential {
            self.map.advise_sequential();
        } else {
            self.map.advise_random();
        }
    }

    fn sample_grid(&self, slice: u64, xs: &[u64], ys: &[u64]) -> Result<Vec<f64>> {
        let im = self.info.image;
        if xs.iter().any(|&x| x >= im.width) || ys.iter().any(|&y| y >= im.height) || slice >= im.slices {
            return Err(Error::request(self.path(), "sample outside the image"));
        }
        let esz = self.info.dtype.size();
        let src = self.map.bytes();
        let base = self.base(slice);
        let mut vals = Vec::with_capacity(xs.len() * ys.len());
        let mut row = RegionBuf::default();
        if let (Some(&xa), Some(&xb)) = (xs.first(), xs.last()) {
            for &y in ys {
                let a = base + (y as usize * self.stride_y + xa as usize * self.stride_x) * esz;
                let b = base + (y as usize * self.stride_y + xb as usize * self.stride_x) * esz;
                self.map.will_need(a.min(b), a.max(b) - a.min(b) + esz);
            }
        }
        for &y in ys {
            // Gather the row's samples into one buffer, then convert them all at once.
            let dst = row.reset(self.info.dtype, xs.len(), 1, 1);
            for (i, &x) in xs.iter().enumerate() {
                let at = base + (y as usize * self.stride_y + x as usize * self.stride_x) * esz;
                dst[i * esz..(i + 1) * esz].copy_from_slice(&src[at..at + esz]);
            }
            if self.info.endian != Endian::NATIVE {
                swap_elements(row.bytes_mut(), esz);
            }
            vals.extend(row.to_f64());
        }
        self.check_fault()?;
        Ok(vals)
    }
}

/// Builds the `SourceInfo` common to npy and raw files.
pub(crate) struct Layout {
    pub shape: Vec<u64>,
    pub dtype: crate::dtype::DType,
    pub endian: Endian,
    pub order: Order,
}

impl Layout {
    pub fn into_info(self, path: &Path, format: super::Format, file_size: u64, header_size: u64) -> Result<SourceInfo> {
        let image = super::image_shape(path, &self.shape, self.dtype)?;
        let mut info = SourceInfo::basic(path.to_path_buf(), format, self.shape, self.dtype, image);
        info.endian = self.endian;
        info.order = self.order;
        info.file_size = file_size;
        info.header_size = header_size;
        Ok(info)
    }
}
