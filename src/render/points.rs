//! The point density renderer: its pipeline (built once), the aggregate grid as one `R32Float` texture, the
//! per-scale palette thresholds and the palette, and counters of every byte uploaded. Style changes (scale,
//! colormap, alpha, background) move only the uniform or the 1 KiB palette, never the grid.

use super::gpu::GpuContext;
use super::gpu_types::GpuPointGlobals;
use super::layouts::{fullscreen_pipeline, texture_entry, uniform_entry};
use crate::error::{Error, Result};
use crate::palette::Colormap;

/// The point shader's source (`shaders/points.wgsl`).
pub const POINTS_WGSL: &str = include_str!("../../shaders/points.wgsl");

/// Bytes sent to the GPU by the point renderer, by purpose.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PointUploads {
    /// Grid texels and their thresholds (once per aggregated grid).
    pub grid_bytes: u64,
    pub grids: u64,
    pub lut_bytes: u64,
    pub uniform_bytes: u64,
}

/// How the grid is drawn: everything a style change touches.
#[derive(Debug, Clone, PartialEq)]
pub struct PointStyle {
    pub colormap: Colormap,
    /// Index in `PointScale::ALL`.
    pub scale_row: u32,
    /// 0..255, as the PNG's alpha.
    pub alpha: u8,
    pub background: [u8; 4],
    /// Marker radius in grid pixels (0: none); see `GpuPointGlobals::radius`.
    pub radius: u32,
}

struct GridTex {
    _grid: wgpu::Texture,
    _thresholds: wgpu::Texture,
    bind_group: wgpu::BindGroup,
    id: u64,
}

/// Pipeline, palette, and the one resident grid.
pub struct PointRenderer {
    pipeline: wgpu::RenderPipeline,
    layout: wgpu::BindGroupLayout,
    globals_buf: wgpu::Buffer,
    lut: wgpu::Texture,
    lut_name: Option<String>,
    globals: Option<GpuPointGlobals>,
    grid: Option<GridTex>,
    pub stats: PointUploads,
}

impl PointRenderer {
    /// Builds the pipeline for `target` (the window's surface format), blending over what is below.
    pub fn new(gpu: &GpuContext, target: wgpu::TextureFormat) -> PointRenderer {
        let device = &gpu.device;
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("points.wgsl"),
            source: wgpu::ShaderSource::Wgsl(POINTS_WGSL.into()),
        });
        let tex = |b| texture_entry(b, wgpu::TextureViewDimension::D2);
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("points"),
            entries: &[uniform_entry(0, wgpu::ShaderStages::FRAGMENT), tex(1), tex(2), tex(3)],
        });
        let pipeline =
            fullscreen_pipeline(device, "points", &module, &layout, target, Some(wgpu::BlendState::ALPHA_BLENDING));
        let globals_buf = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("point globals"),
            size: std::mem::size_of::<GpuPointGlobals>() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let lut = Self::texture(gpu, "point palette", 256, 1, wgpu::TextureFormat::Rgba8Unorm);
        PointRenderer {
            pipeline,
            layout,
            globals_buf,
            lut,
            lut_name: None,
            globals: None,
            grid: None,
            stats: PointUploads::default(),
        }
    }

    fn texture(gpu: &GpuContext, label: &str, w: u32, h: u32, format: wgpu::TextureFormat) -> wgpu::Texture {
        gpu.device.create_texture(&wgpu::TextureDescriptor {
            label: Some(label),
            size: wgpu::Extent3d { width: w, height: h, depth_or_array_layers: 1 },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format,
            usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
            view_formats: &[],
        })
    }

    fn write(gpu: &GpuContext, tex: &wgpu::Texture, bytes: &[u8], w: u32, h: u32, bpp: u32) {
        gpu.queue.write_texture(
            wgpu::TexelCopyTextureInfo {
                texture: tex,
                mip_level: 0,
                origin: wgpu::Origin3d::ZERO,
                aspect: wgpu::TextureAspect::All,
            },
            bytes,
            wgpu::TexelCopyBufferLayout { offset: 0, bytes_per_row: Some(w * bpp), rows_per_image: Some(h) },
            wgpu::Extent3d { width: w, height: h, depth_or_array_layers: 1 },
        );
    }

    /// The id of the resident grid (0: none).
    pub fn grid_id(&self) -> u64 {
        self.grid.as_ref().map_or(0, |g| g.id)
    }

    /// Uploads a `w`×`h` grid (f32, NaN = empty, row 0 = lowest y) and its thresholds (3 rows of 256), replacing
    /// the resident one. `id` names it, so the caller uploads each grid once.
    pub fn set_grid(
        &mut self,
        gpu: &GpuContext,
        id: u64,
        w: u32,
        h: u32,
        texels: &[f32],
        thresholds: &[[f32; 256]; 3],
    ) -> Result<()> {
        let max = gpu.max_texture_side();
        if w == 0 || h == 0 || w > max || h > max || texels.len() != (w as usize) * (h as usize) {
            return Err(Error::Gpu(format!("a {w}x{h} point grid does not fit a texture (max {max})")));
        }
        let grid = Self::texture(gpu, "point grid", w, h, wgpu::TextureFormat::R32Float);
        Self::write(gpu, &grid, bytemuck::cast_slice(texels), w, h, 4);
        let th = Self::texture(gpu, "point thresholds", 256, 3, wgpu::TextureFormat::R32Float);
        Self::write(gpu, &th, bytemuck::cast_slice(thresholds.as_slice()), 256, 3, 4);
        let (gv, tv, lv) = (
            grid.create_view(&Default::default()),
            th.create_view(&Default::default()),
            self.lut.create_view(&Default::default()),
        );
        let bind_group = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("points"),
            layout: &self.layout,
            entries: &[
                wgpu::BindGroupEntry { binding: 0, resource: self.globals_buf.as_entire_binding() },
                wgpu::BindGroupEntry { binding: 1, resource: wgpu::BindingResource::TextureView(&gv) },
                wgpu::BindGroupEntry { binding: 2, resource: wgpu::BindingResource::TextureView(&tv) },
                wgpu::BindGroupEntry { binding: 3, resource: wgpu::BindingResource::TextureView(&lv) },
            ],
        });
        self.stats.grid_bytes += (texels.len() * 4 + 256 * 3 * 4) as u64;
        self.stats.grids += 1;
        self.grid = Some(GridTex { _grid: grid, _thresholds: th, bind_group, id });
        Ok(())
    }

    /// Sets the style and the grid mapping for this frame: the palette is written only when the colormap changed,
    /// the 64-byte uniform only when it changed. Pixels show the grid only if the resident one is `grid_id` (else
    /// just the background).
    pub fn set_style(&mut self, gpu: &GpuContext, style: &PointStyle, grid_map: [f64; 4], grid_id: u64) {
        if self.lut_name.as_deref() != Some(style.colormap.name.as_str()) {
            Self::write(gpu, &self.lut, style.colormap.bytes(), 256, 1, 4);
            self.stats.lut_bytes += 1024;
            self.lut_name = Some(style.colormap.name.clone());
        }
        let globals = GpuPointGlobals {
            grid_map: grid_map.map(|v| v as f32),
            background: style.background.map(|c| f32::from(c) / 255.0),
            alpha: f32::from(style.alpha) / 255.0,
            scale_row: style.scale_row,
            has_grid: u32::from(grid_id != 0 && self.grid_id() == grid_id),
            radius: style.radius,
            _pad2: [0; 4],
        };
        if self.globals != Some(globals) {
            gpu.queue.write_buffer(&self.globals_buf, 0, bytemuck::bytes_of(&globals));
            self.stats.uniform_bytes += std::mem::size_of::<GpuPointGlobals>() as u64;
            self.globals = Some(globals);
        }
    }

    /// Draws the grid over the whole viewport (the data area).
    pub fn paint(&self, pass: &mut wgpu::RenderPass<'_>) {
        let Some(g) = &self.grid else { return };
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &g.bind_group, &[]);
        pass.draw(0..6, 0..1);
    }
}
