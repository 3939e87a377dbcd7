//! Offscreen rendering: draw tiles into an RGBA8 texture and read the pixels back (rows unpadded).

use super::gpu::GpuContext;
use super::tiles::{TileDraw, TileRenderer};
use crate::error::{Error, Result};
use crate::palette::Display;

/// The offscreen format: plain (non-sRGB) RGBA8, so palette bytes come back exactly.
pub const OFFSCREEN_FORMAT: wgpu::TextureFormat = wgpu::TextureFormat::Rgba8Unorm;

/// A render target and its readback buffer, reused while the size stays the same.
pub struct Offscreen {
    texture: wgpu::Texture,
    view: wgpu::TextureView,
    readback: wgpu::Buffer,
    width: u32,
    height: u32,
    padded_row: u32,
}

impl Offscreen {
    pub fn new(gpu: &GpuContext, width: u32, height: u32) -> Offscreen {
        let texture = gpu.device.create_texture(&wgpu::TextureDescriptor {
            label: Some("offscreen"),
            size: wgpu::Extent3d { width, height, depth_or_array_layers: 1 },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: OFFSCREEN_FORMAT,
            usage: wgpu::TextureUsages::RENDER_ATTACHMENT | wgpu::TextureUsages::COPY_SRC,
            view_formats: &[],
        });
        let view = texture.create_view(&Default::default());
        let padded_row = (width * 4).next_multiple_of(wgpu::COPY_BYTES_PER_ROW_ALIGNMENT);
        let readback = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: u64::from(padded_row) * u64::from(height),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Offscreen { texture, view, readback, width, height, padded_row }
    }

    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// Clears to transparent, draws `draws` with `display`, and returns the RGBA8 pixels, row by row.
    pub fn render(
        &self,
        gpu: &GpuContext,
        renderer: &mut TileRenderer,
        display: &Display,
        draws: &[TileDraw],
    ) -> Result<Vec<u8>> {
        let mut enc = gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("offscreen") });
        renderer.draw_into(gpu, &mut enc, &self.view, "tiles", draws, display, [self.width, self.height]);
        enc.copy_texture_to_buffer(
            wgpu::TexelCopyTextureInfo {
                texture: &self.texture,
                mip_level: 0,
                origin: wgpu::Origin3d::ZERO,
                aspect: wgpu::TextureAspect::All,
            },
            wgpu::TexelCopyBufferInfo {
                buffer: &self.readback,
                layout: wgpu::TexelCopyBufferLayout {
                    offset: 0,
                    bytes_per_row: Some(self.padded_row),
                    rows_per_image: Some(self.height),
                },
            },
            wgpu::Extent3d { width: self.width, height: self.height, depth_or_array_layers: 1 },
        );
        gpu.queue.submit([enc.finish()]);
        let slice = self.readback.slice(..);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        gpu.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| Error::Gpu(format!("poll: {e}")))?;
        rx.recv()
            .map_err(|_| Error::Gpu("readback never completed".into()))?
            .map_err(|e| Error::Gpu(format!("readback: {e}")))?;
        gpu.check()?;
        let mut out = Vec::with_capacity(self.width as usize * self.height as usize * 4);
        {
            let data = slice.get_mapped_range().map_err(|e| Error::Gpu(format!("readback map: {e}")))?;
            let row = self.width as usize * 4;
            for r in data.chunks_exact(self.padded_row as usize) {
                out.extend_from_slice(&r[..row]);
            }
        }
        self.readback.unmap();
        Ok(out)
    }
}
