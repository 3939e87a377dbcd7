//! `#[repr(C)]` mirrors of the uniform and instance structs in `shaders/tile.wgsl`.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_match_the_shader() {
        assert_eq!(std::mem::size_of::<GpuGlobals>(), 48);
        assert_eq!(std::mem::size_of::<GpuTileInstance>(), 48);
    }
}
