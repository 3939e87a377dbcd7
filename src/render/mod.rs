//! GPU rendering: context, tile pipeline (raw texels → palette in the shader), point density pipeline (aggregate
//! grid → palette in the shader), offscreen render and readback, channel composites (layers added in the shader).

pub mod composite;
pub mod gpu;
pub mod gpu_types;
pub mod layouts;
pub mod offscreen;
pub mod points;
pub mod tiles;

pub use composite::{CompositeRenderer, COMPOSITE_WGSL};
pub use gpu::GpuContext;
pub use offscreen::{Offscreen, OFFSCREEN_FORMAT};
pub use points::{PointRenderer, PointStyle, PointUploads, POINTS_WGSL};
pub use tiles::{TexelKind, TileData, TileDraw, TileKey, TileRenderer, UploadStats, TILE_WGSL};

#[cfg(test)]
mod tests {
    /// Every shader parses and validates with naga (no GPU needed).
    #[test]
    fn shaders_validate_with_naga() {
        let shaders: &[(&str, &str)] = &[
            ("tile.wgsl", super::TILE_WGSL),
            ("points.wgsl", super::POINTS_WGSL),
            ("composite.wgsl", super::COMPOSITE_WGSL),
        ];
        for (name, src) in shaders {
            let module =
                naga::front::wgsl::parse_str(src).unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(src)));
            naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::all())
                .validate(&module)
                .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        }
    }
}
