//! `#[repr(C)]` mirrors of the uniform and instance structs in `shaders/tile.wgsl`, `shaders/points.wgsl` and
//! `shaders/composite.wgsl`.

use bytemuck::{Pod, Zeroable};

/// `Globals` in tile.wgsl (48 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable, PartialEq)]
pub struct GpuGlobals {
    pub target_size: [f32; 2],
    pub inv_range: f32,
    pub gamma: f32,
    pub nan_color: [f32; 4],
    pub scale_mode: u32,
    pub _pad: [u32; 3],
}

/// `Instance` in tile.wgsl: one tile quad (48 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable, PartialEq)]
pub struct GpuTileInstance {
    pub rect: [f32; 4],
    pub texel_map: [f32; 4],
    pub shift: [f32; 4],
}

impl GpuTileInstance {
    pub const ATTRIBS: [wgpu::VertexAttribute; 3] =
        wgpu::vertex_attr_array![0 => Float32x4, 1 => Float32x4, 2 => Float32x4];
}

/// `Globals` in points.wgsl (64 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable, PartialEq)]
pub struct GpuPointGlobals {
    /// Grid column = floor(px·m[0] + m[1]), grid row (0 = lowest y) = floor(py·m[2] + m[3]), framebuffer pixels.
    pub grid_map: [f32; 4],
    /// Straight-alpha RGBA composited under the density layer (a = 0: none).
    pub background: [f32; 4],
    /// Opacity of non-empty pixels, quantized to 1/255 like the PNG's.
    pub alpha: f32,
    /// Row of the threshold texture: index in `PointScale::ALL`.
    pub scale_row: u32,
    /// 0 while no grid is uploaded.
    pub has_grid: u32,
    /// Marker radius in grid pixels (0: each pixel alone): an empty pixel takes the value of the nearest
    /// non-empty one within this distance (squared distance ≤ r² + r; ties: the larger value), so sparse points show as discs.
    pub radius: u32,
    pub _pad2: [u32; 4],
}

/// `Globals` in composite.wgsl (16 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable, PartialEq)]
pub struct GpuCompositeGlobals {
    pub origin: [f32; 2],
    pub count: u32,
    pub mask: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_match_the_shader() {
        assert_eq!(std::mem::size_of::<GpuGlobals>(), 48);
        assert_eq!(std::mem::size_of::<GpuTileInstance>(), 48);
        assert_eq!(std::mem::size_of::<GpuPointGlobals>(), 64);
        assert_eq!(std::mem::size_of::<GpuCompositeGlobals>(), 16);
    }
}
