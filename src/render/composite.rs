//! The channel composite: one layer texture per channel (each channel's tiles drawn there by its own
//! `TileRenderer` through its own palette and limits), and the pipeline (built once) that adds the layers in the
//! shader. Contrast and colormap changes stay the tile renderers' uniforms and palettes; visibility is a bit in
//! this 16-byte uniform; no tile is uploaded again for any of them.

use super::gpu::GpuContext;
use super::gpu_types::GpuCompositeGlobals;
use super::layouts::{fullscreen_pipeline, texture_entry, uniform_entry};

/// The composite shader's source (`shaders/composite.wgsl`).
pub const COMPOSITE_WGSL: &str = include_str!("../../shaders/composite.wgsl");

/// The layers of one size and count (remade when either changes).
struct Layers {
    _texture: wgpu::Texture,
    views: Vec<wgpu::TextureView>,
    bind_group: wgpu::BindGroup,
    size: [u32; 2],
}

/// Pipeline, uniform and layers of the composite.
pub struct CompositeRenderer {
    pipeline: wgpu::RenderPipeline,
    layout: wgpu::BindGroupLayout,
    globals_buf: wgpu::Buffer,
    globals: Option<GpuCompositeGlobals>,
    layers: Option<Layers>,
    format: wgpu::TextureFormat,
    /// Uniform bytes written (never tiles: they live in the tile renderers).
    pub uniform_bytes: u64,
}

impl CompositeRenderer {
    /// Builds the pipeline for `target` (the window's surface format; the layers have it too, so the tile
    /// pipelines draw into them unchanged).
    pub fn new(gpu: &GpuContext, target: wgpu::TextureFormat) -> CompositeRenderer {
        let device = &gpu.device;
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("composite.wgsl"),
            source: wgpu::ShaderSource::Wgsl(COMPOSITE_WGSL.into()),
        });
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("composite"),
            entries: &[
                uniform_entry(0, wgpu::ShaderStages::FRAGMENT),
                texture_entry(1, wgpu::TextureViewDimension::D2Array),
            ],
        });
        let pipeline = fullscreen_pipeline(device, "composite", &module, &layout, target, None);
        let globals_buf = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("composite globals"),
            size: std::mem::size_of::<GpuCompositeGlobals>() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        CompositeRenderer {
            pipeline,
            layout,
            globals_buf,
            globals: None,
            layers: None,
            format: target,
            uniform_bytes: 0,
        }
    }

    /// Makes sure there are `count` layers (at most `MAX_CHANNELS`) of `size` (another size or count remakes them).
    pub fn ensure_layers(&mut self, gpu: &GpuContext, size: [u32; 2], count: usize) {
        let n = count.clamp(1, crate::palette::composite::MAX_CHANNELS) as u32;
        if self.layers.as_ref().is_some_and(|l| l.size == size && l.views.len() == n as usize) {
            return;
        }
        let max = gpu.max_texture_side();
        let size = [size[0].clamp(1, max), size[1].clamp(1, max)];
        let texture = gpu.device.create_texture(&wgpu::TextureDescriptor {
            label: Some("composite layers"),
            size: wgpu::Extent3d { width: size[0], height: size[1], depth_or_array_layers: n },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: self.format,
            usage: wgpu::TextureUsages::RENDER_ATTACHMENT | wgpu::TextureUsages::TEXTURE_BINDING,
            view_formats: &[],
        });
        let views = (0..n)
            .map(|i| {
                texture.create_view(&wgpu::TextureViewDescriptor {
                    label: Some("composite layer"),
                    dimension: Some(wgpu::TextureViewDimension::D2),
                    base_array_layer: i,
                    array_layer_count: Some(1),
                    ..Default::default()
                })
            })
            .collect();
        let all = texture.create_view(&wgpu::TextureViewDescriptor {
            label: Some("composite layers"),
            dimension: Some(wgpu::TextureViewDimension::D2Array),
            ..Default::default()
        });
        let bind_group = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("composite"),
            layout: &self.layout,
            entries: &[
                wgpu::BindGroupEntry { binding: 0, resource: self.globals_buf.as_entire_binding() },
                wgpu::BindGroupEntry { binding: 1, resource: wgpu::BindingResource::TextureView(&all) },
            ],
        });
        self.layers = Some(Layers { _texture: texture, views, bind_group, size });
    }

    /// The render target of layer `i` (after `ensure_layers`).
    pub fn layer(&self, i: usize) -> Option<&wgpu::TextureView> {
        self.layers.as_ref().and_then(|l| l.views.get(i))
    }

    /// Sets the data area's origin (framebuffer pixels) and which layers are added: 16 bytes, written only when
    /// they change.
    pub fn set_globals(&mut self, gpu: &GpuContext, origin: [f32; 2], mask: u32) {
        let count = self.layers.as_ref().map_or(0, |l| l.views.len() as u32);
        let g = GpuCompositeGlobals { origin, count, mask };
        if self.globals != Some(g) {
            gpu.queue.write_buffer(&self.globals_buf, 0, bytemuck::bytes_of(&g));
            self.uniform_bytes += std::mem::size_of::<GpuCompositeGlobals>() as u64;
            self.globals = Some(g);
        }
    }

    /// Draws the sum of the layers into `pass` (its viewport: the data area).
    pub fn paint(&self, pass: &mut wgpu::RenderPass<'_>) {
        let Some(l) = &self.layers else { return };
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &l.bind_group, &[]);
        pass.draw(0..3, 0..1);
    }
}
