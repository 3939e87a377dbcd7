//! The tile renderer: one pipeline per texel kind (built once), the palette texture, a GPU tile store
//! with a byte budget and LRU eviction, and counters of every byte uploaded.

use std::collections::HashMap;

use super::gpu::GpuContext;
use super::gpu_types::{GpuGlobals, GpuTileInstance};
use super::layouts::{texture_entry, uniform_entry};
use crate::error::{Error, Result};
use crate::palette::Display;
pub use crate::pyramid::texels::{TexelFormat, TexelKind, TileData};

/// The tile shader's source (`shaders/tile.wgsl`).
pub const TILE_WGSL: &str = include_str!("../../shaders/tile.wgsl");

const KINDS: [TexelKind; 4] = [TexelKind::Float, TexelKind::Uint, TexelKind::Sint, TexelKind::Rgba];

fn sample_type(k: TexelKind) -> wgpu::TextureSampleType {
    match k {
        TexelKind::Float => wgpu::TextureSampleType::Float { filterable: false },
        TexelKind::Uint | TexelKind::Rgba => wgpu::TextureSampleType::Uint,
        TexelKind::Sint => wgpu::TextureSampleType::Sint,
    }
}

fn entry_point(k: TexelKind) -> &'static str {
    match k {
        TexelKind::Float => "fs_float",
        TexelKind::Uint => "fs_uint",
        TexelKind::Sint => "fs_sint",
        TexelKind::Rgba => "fs_rgba",
    }
}

/// The GPU texture format of a texel format.
pub fn wgpu_format(f: TexelFormat) -> wgpu::TextureFormat {
    use wgpu::TextureFormat as W;
    match f {
        TexelFormat::R8Uint => W::R8Uint,
        TexelFormat::R8Sint => W::R8Sint,
        TexelFormat::R16Uint => W::R16Uint,
        TexelFormat::R16Sint => W::R16Sint,
        TexelFormat::R16Float => W::R16Float,
        TexelFormat::R32Uint => W::R32Uint,
        TexelFormat::R32Sint => W::R32Sint,
        TexelFormat::R32Float => W::R32Float,
        TexelFormat::Rgba8Uint => W::Rgba8Uint,
    }
}

/// Identifies a tile: which level grid (a hash of source, slice and level geometry) and where in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TileKey {
    pub level: u64,
    pub tx: u64,
    pub ty: u64,
}

struct GpuTile {
    bind_group: wgpu::BindGroup,
    _texture: wgpu::Texture,
    kind: TexelKind,
    offset: f64,
    bytes: u64,
    last_used: u64,
}

/// Bytes sent to the GPU, by purpose. A palette or contrast change must move only `lut` and `uniform`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UploadStats {
    pub tile_bytes: u64,
    pub tiles: u64,
    pub lut_bytes: u64,
    pub uniform_bytes: u64,
}

/// One tile to draw: where its quad goes in the target (pixels) and how target pixels map to texels.
#[derive(Debug, Clone, Copy)]
pub struct TileDraw {
    pub key: TileKey,
    /// x, y, width, height in target pixels.
    pub rect: [f64; 4],
    /// texel = floor(px·m[0] + m[1], py·m[2] + m[3]), with (px, py) the pixel center in the target.
    pub texel_map: [f64; 4],
}

/// Pipelines, palette and resident tiles.
pub struct TileRenderer {
    pipelines: Vec<wgpu::RenderPipeline>,
    tile_layouts: Vec<wgpu::BindGroupLayout>,
    globals_buf: wgpu::Buffer,
    globals_bg: wgpu::BindGroup,
    lut: wgpu::Texture,
    instance_buf: wgpu::Buffer,
    instance_cap: u64,
    tiles: HashMap<TileKey, GpuTile>,
    resident: u64,
    budget: u64,
    clock: u64,
    /// Tiles used at or after this clock value belong to the frame being built and are never evicted.
    frame_start: u64,
    lut_name: Option<String>,
    globals: Option<GpuGlobals>,
    instances: Vec<GpuTileInstance>,
    /// Tiles of the prepared instances, in order.
    pending: Vec<TileKey>,
    /// The instances last written to `instance_buf`.
    written: Vec<GpuTileInstance>,
    pub stats: UploadStats,
}

impl TileRenderer {
    /// Builds the pipelines for `target` (the surface or offscreen format) and a tile store of `budget` bytes.
    pub fn new(gpu: &GpuContext, target: wgpu::TextureFormat, budget: u64) -> TileRenderer {
        let device = &gpu.device;
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("tile.wgsl"),
            source: wgpu::ShaderSource::Wgsl(TILE_WGSL.into()),
        });
        let globals_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("tile globals"),
            entries: &[
                uniform_entry(0, wgpu::ShaderStages::VERTEX_FRAGMENT),
                texture_entry(1, wgpu::TextureViewDimension::D2),
            ],
        });
        let tile_layouts: Vec<wgpu::BindGroupLayout> = KINDS
            .iter()
            .map(|k| {
                device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                    label: Some("tile texture"),
                    entries: &[wgpu::BindGroupLayoutEntry {
                        binding: *k as u32,
                        visibility: wgpu::ShaderStages::FRAGMENT,
                        ty: wgpu::BindingType::Texture {
                            sample_type: sample_type(*k),
                            view_dimension: wgpu::TextureViewDimension::D2,
                            multisampled: false,
                        },
                        count: None,
                    }],
                })
            })
            .collect();
        let pipelines = KINDS
            .iter()
            .map(|k| {
                let layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                    label: Some("tile"),
                    bind_group_layouts: &[Some(&globals_layout), Some(&tile_layouts[*k as usize])],
                    immediate_size: 0,
                });
                device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
                    label: Some(entry_point(*k)),
                    layout: Some(&layout),
                    vertex: wgpu::VertexState {
                        module: &module,
                        entry_point: Some("vs_main"),
                        compilation_options: Default::default(),
                        buffers: &[Some(wgpu::VertexBufferLayout {
                            array_stride: std::mem::size_of::<GpuTileInstance>() as u64,
                            step_mode: wgpu::VertexStepMode::Instance,
                            attributes: &GpuTileInstance::ATTRIBS,
                        })],
                    },
                    primitive: wgpu::PrimitiveState::default(),
                    depth_stencil: None,
                    multisample: wgpu::MultisampleState::default(),
                    fragment: Some(wgpu::FragmentState {
                        module: &module,
                        entry_point: Some(entry_point(*k)),
                        compilation_options: Default::default(),
                        targets: &[Some(wgpu::ColorTargetState {
                            format: target,
                            blend: None,
                            write_mask: wgpu::ColorWrites::ALL,
                        })],
                    }),
                    multiview_mask: None,
                    cache: None,
                })
            })
            .collect();
        let globals_buf = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("tile globals"),
            size: std::mem::size_of::<GpuGlobals>() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let lut = device.create_texture(&wgpu::TextureDescriptor {
            label: Some("palette"),
            size: wgpu::Extent3d { width: 256, height: 1, depth_or_array_layers: 1 },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: wgpu::TextureFormat::Rgba8Unorm,
            usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
            view_formats: &[],
        });
        let lut_view = lut.create_view(&Default::default());
        let globals_bg = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("tile globals"),
            layout: &globals_layout,
            entries: &[
                wgpu::BindGroupEntry { binding: 0, resource: globals_buf.as_entire_binding() },
                wgpu::BindGroupEntry { binding: 1, resource: wgpu::BindingResource::TextureView(&lut_view) },
            ],
        });
        let instance_cap = 256;
        let instance_buf = Self::make_instance_buf(gpu, instance_cap);
        TileRenderer {
            pipelines,
            tile_layouts,
            globals_buf,
            globals_bg,
            lut,
            instance_buf,
            instance_cap,
            tiles: HashMap::new(),
            resident: 0,
            budget,
            clock: 0,
            frame_start: 0,
            lut_name: None,
            globals: None,
            instances: Vec::new(),
            pending: Vec::new(),
            written: Vec::new(),
            stats: UploadStats::default(),
        }
    }

    fn make_instance_buf(gpu: &GpuContext, cap: u64) -> wgpu::Buffer {
        gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("tile instances"),
            size: cap * std::mem::size_of::<GpuTileInstance>() as u64,
            usage: wgpu::BufferUsages::VERTEX | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    /// Starts a frame: tiles touched from now on are pinned until the next `begin_frame`, so a frame
    /// that needs more than the budget still draws completely (the store then exceeds its budget by
    /// at most that frame's tiles, and shrinks back at the next frame).
    pub fn begin_frame(&mut self) {
        self.clock += 1;
        self.frame_start = self.clock;
        self.evict_to(self.budget);
    }

    /// Whether the tile is resident (and marks it used).
    pub fn has_tile(&mut self, key: &TileKey) -> bool {
        self.clock += 1;
        match self.tiles.get_mut(key) {
            Some(t) => {
                t.last_used = self.clock;
                true
            }
            None => false,
        }
    }

    /// Bytes of tile textures resident on the GPU, and the budget.
    pub fn resident_bytes(&self) -> (u64, u64) {
        (self.resident, self.budget)
    }

    pub fn resident_tiles(&self) -> usize {
        self.tiles.len()
    }

    /// Uploads a tile (replacing any tile of the same key), then evicts least-recently-used tiles
    /// beyond the budget, never the one just uploaded.
    pub fn upload(&mut self, gpu: &GpuContext, key: TileKey, data: &TileData) -> Result<()> {
        let max = gpu.max_texture_side();
        if data.width == 0 || data.height == 0 || data.width > max || data.height > max {
            return Err(Error::Gpu(format!(
                "tile of {}x{} does not fit a texture (max {max})",
                data.width, data.height
            )));
        }
        let size = wgpu::Extent3d { width: data.width, height: data.height, depth_or_array_layers: 1 };
        let texture = gpu.device.create_texture(&wgpu::TextureDescriptor {
            label: Some("tile"),
            size,
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: wgpu_format(data.format),
            usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
            view_formats: &[],
        });
        let bpp = data.format.size();
        gpu.queue.write_texture(
            wgpu::TexelCopyTextureInfo {
                texture: &texture,
                mip_level: 0,
                origin: wgpu::Origin3d::ZERO,
                aspect: wgpu::TextureAspect::All,
            },
            &data.bytes,
            wgpu::TexelCopyBufferLayout {
                offset: 0,
                bytes_per_row: Some(data.width * bpp),
                rows_per_image: Some(data.height),
            },
            size,
        );
        let view = texture.create_view(&Default::default());
        let bind_group = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("tile"),
            layout: &self.tile_layouts[data.kind as usize],
            entries: &[wgpu::BindGroupEntry {
                binding: data.kind as u32,
                resource: wgpu::BindingResource::TextureView(&view),
            }],
        });
        let bytes = data.bytes.len() as u64;
        self.stats.tile_bytes += bytes;
        self.stats.tiles += 1;
        self.clock += 1;
        if let Some(old) = self.tiles.insert(
            key,
            GpuTile {
                bind_group,
                _texture: texture,
                kind: data.kind,
                offset: data.offset,
                bytes,
                last_used: self.clock,
            },
        ) {
            self.resident -= old.bytes;
        }
        self.resident += bytes;
        self.evict_to(self.budget);
        Ok(())
    }

    /// Evicts least-recently-used tiles until at most `bytes` are resident, sparing the current frame's.
    pub fn evict_to(&mut self, bytes: u64) {
        if self.resident <= bytes {
            return;
        }
        let start = self.frame_start;
        let mut order: Vec<(u64, TileKey)> =
            self.tiles.iter().filter(|(_, t)| t.last_used < start).map(|(k, t)| (t.last_used, *k)).collect();
        order.sort_unstable_by_key(|(t, _)| *t);
        for (_, k) in order {
            if self.resident <= bytes {
                break;
            }
            if let Some(t) = self.tiles.remove(&k) {
                self.resident -= t.bytes;
            }
        }
    }

    /// Sets palette and contrast. Uploads the 1 KiB palette only when the colormap changed and the
    /// 48-byte uniform only when it changed: never a tile.
    pub fn set_display(&mut self, gpu: &GpuContext, display: &Display, target_size: [u32; 2]) {
        if self.lut_name.as_deref() != Some(display.colormap.name.as_str()) {
            gpu.queue.write_texture(
                wgpu::TexelCopyTextureInfo {
                    texture: &self.lut,
                    mip_level: 0,
                    origin: wgpu::Origin3d::ZERO,
                    aspect: wgpu::TextureAspect::All,
                },
                display.colormap.bytes(),
                wgpu::TexelCopyBufferLayout { offset: 0, bytes_per_row: Some(256 * 4), rows_per_image: Some(1) },
                wgpu::Extent3d { width: 256, height: 1, depth_or_array_layers: 1 },
            );
            self.stats.lut_bytes += 1024;
            self.lut_name = Some(display.colormap.name.clone());
        }
        let range = display.hi - display.lo;
        let nan = display.nan_color.map(|c| f32::from(c) / 255.0);
        let globals = GpuGlobals {
            target_size: [target_size[0] as f32, target_size[1] as f32],
            inv_range: if range == 0.0 || !range.is_finite() { 0.0 } else { (1.0 / range) as f32 },
            gamma: display.gamma as f32,
            nan_color: nan,
            scale_mode: display.scale.code(),
            _pad: [0; 3],
        };
        if self.globals != Some(globals) {
            gpu.queue.write_buffer(&self.globals_buf, 0, bytemuck::bytes_of(&globals));
            self.stats.uniform_bytes += std::mem::size_of::<GpuGlobals>() as u64;
            self.globals = Some(globals);
        }
    }

    /// Writes the instance data for `draws` (each must be resident; missing ones are skipped) and
    /// remembers the draw list for `paint`. Call outside the render pass, before it.
    /// `lo` is the lower contrast limit: each tile's shift is its offset − lo, computed in f64.
    pub fn prepare(&mut self, gpu: &GpuContext, draws: &[TileDraw], lo: f64) {
        self.instances.clear();
        self.pending.clear();
        for d in draws {
            let Some(t) = self.tiles.get(&d.key) else { continue };
            self.instances.push(GpuTileInstance {
                rect: d.rect.map(|v| v as f32),
                texel_map: d.texel_map.map(|v| v as f32),
                shift: [(t.offset - lo) as f32, 0.0, 0.0, 0.0],
            });
            self.pending.push(d.key);
        }
        if self.instances.is_empty() {
            return;
        }
        if self.instances.len() as u64 > self.instance_cap {
            self.instance_cap = (self.instances.len() as u64).next_power_of_two();
            self.instance_buf = Self::make_instance_buf(gpu, self.instance_cap);
            self.written.clear();
        }
        // Unchanged draws (a still view, a palette change) re-use the buffer as it is.
        if self.instances != self.written {
            let bytes: &[u8] = bytemuck::cast_slice(&self.instances);
            gpu.queue.write_buffer(&self.instance_buf, 0, bytes);
            self.stats.uniform_bytes += bytes.len() as u64;
            self.written.clone_from(&self.instances);
        }
    }

    /// Draws `draws` with `display` into `view` (`size` pixels, cleared to transparent first) as one
    /// render pass of `encoder`: an offscreen render, or one channel's layer of a composite.
    #[allow(clippy::too_many_arguments)]
    pub fn draw_into(
        &mut self,
        gpu: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        view: &wgpu::TextureView,
        label: &str,
        draws: &[TileDraw],
        display: &Display,
        size: [u32; 2],
    ) {
        self.set_display(gpu, display, size);
        self.prepare(gpu, draws, display.lo);
        let mut pass = encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
            label: Some(label),
            color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                view,
                depth_slice: None,
                resolve_target: None,
                ops: wgpu::Operations {
                    load: wgpu::LoadOp::Clear(wgpu::Color::TRANSPARENT),
                    store: wgpu::StoreOp::Store,
                },
            })],
            ..Default::default()
        });
        self.paint(&mut pass);
    }

    /// Records the draws prepared by `prepare` into `pass`.
    pub fn paint(&self, pass: &mut wgpu::RenderPass<'_>) {
        if self.pending.is_empty() {
            return;
        }
        pass.set_bind_group(0, &self.globals_bg, &[]);
        pass.set_vertex_buffer(0, self.instance_buf.slice(..));
        let mut bound: Option<TexelKind> = None;
        for (i, key) in self.pending.iter().enumerate() {
            let Some(t) = self.tiles.get(key) else { continue };
            if bound != Some(t.kind) {
                pass.set_pipeline(&self.pipelines[t.kind as usize]);
                bound = Some(t.kind);
            }
            pass.set_bind_group(1, &t.bind_group, &[]);
            pass.draw(0..6, i as u32..i as u32 + 1);
        }
    }
}
