//! The window's GPU side: the tile and point renderers kept in egui-wgpu's callback resources, and the
//! per-frame paint callbacks that carry plain values (draw list, display settings, point style) to them.

use eframe::egui_wgpu::{self, CallbackResources, CallbackTrait, RenderState, ScreenDescriptor};

use crate::palette::Display;
use crate::render::{GpuContext, PointRenderer, PointStyle, TileDraw, TileRenderer};

/// What the window keeps on the GPU: built once from the window's device and surface format.
pub struct ViewerGpu {
    pub gpu: GpuContext,
    pub tiles: TileRenderer,
    pub points: PointRenderer,
}

impl ViewerGpu {
    pub fn install(rs: &RenderState, budget: u64) {
        let gpu =
            GpuContext::from_device(rs.device.clone(), rs.queue.clone(), rs.adapter.get_info(), rs.device.limits());
        let tiles = TileRenderer::new(&gpu, rs.target_format, budget);
        let points = PointRenderer::new(&gpu, rs.target_format);
        rs.renderer.write().callback_resources.insert(ViewerGpu { gpu, tiles, points });
    }
}

/// One frame's tile drawing: plain values only.
pub struct TileCallback {
    pub draws: Vec<TileDraw>,
    pub display: Display,
    /// The data area's size in physical pixels.
    pub size_px: [u32; 2],
}

impl CallbackTrait for TileCallback {
    fn prepare(
        &self,
        _device: &wgpu::Device,
        _queue: &wgpu::Queue,
        _screen: &ScreenDescriptor,
        _encoder: &mut wgpu::CommandEncoder,
        resources: &mut CallbackResources,
    ) -> Vec<wgpu::CommandBuffer> {
        if let Some(v) = resources.get_mut::<ViewerGpu>() {
            v.tiles.set_display(&v.gpu, &self.display, self.size_px);
            v.tiles.prepare(&v.gpu, &self.draws, self.display.lo);
        }
        Vec::new()
    }

    fn paint(
        &self,
        _info: egui::PaintCallbackInfo,
        pass: &mut wgpu::RenderPass<'static>,
        resources: &CallbackResources,
    ) {
        if let Some(v) = resources.get::<ViewerGpu>() {
            v.tiles.paint(pass);
        }
    }
}

/// One frame's point drawing: the style and where the resident grid goes (the grid is uploaded once, elsewhere).
pub struct PointCallback {
    pub style: PointStyle,
    /// Framebuffer pixel → grid pixel (see `PointRenderer::set_style`).
    pub grid_map: [f64; 4],
    /// The grid this frame draws (0: none yet); another resident grid is not drawn.
    pub grid_id: u64,
}

impl CallbackTrait for PointCallback {
    fn prepare(
        &self,
        _device: &wgpu::Device,
        _queue: &wgpu::Queue,
        _screen: &ScreenDescriptor,
        _encoder: &mut wgpu::CommandEncoder,
        resources: &mut CallbackResources,
    ) -> Vec<wgpu::CommandBuffer> {
        if let Some(v) = resources.get_mut::<ViewerGpu>() {
            v.points.set_style(&v.gpu, &self.style, self.grid_map, self.grid_id);
        }
        Vec::new()
    }

    fn paint(
        &self,
        _info: egui::PaintCallbackInfo,
        pass: &mut wgpu::RenderPass<'static>,
        resources: &CallbackResources,
    ) {
        if let Some(v) = resources.get::<ViewerGpu>() {
            v.points.paint(pass);
        }
    }
}

/// The device descriptor the window asks for: the adapter's own limits, not wgpu's defaults (8192-px textures).
pub fn device_descriptor(adapter: &wgpu::Adapter) -> wgpu::DeviceDescriptor<'static> {
    wgpu::DeviceDescriptor {
        label: Some("vastview window"),
        required_features: wgpu::Features::empty(),
        required_limits: adapter.limits(),
        ..Default::default()
    }
}

use eframe::{egui, wgpu};
pub use egui_wgpu::Callback;
