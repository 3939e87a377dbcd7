//! The window's GPU side: the tile and point renderers kept in egui-wgpu's callback resources, and the
//! per-frame paint callbacks that carry plain values (draw lists, display settings, point style) to them; a
//! channel composite draws each channel into its layer in `prepare` and adds the layers in `paint`.

use eframe::egui_wgpu::{self, CallbackResources, CallbackTrait, RenderState, ScreenDescriptor};

use crate::palette::composite::MAX_CHANNELS;
use crate::palette::Display;
use crate::render::{CompositeRenderer, GpuContext, PointRenderer, PointStyle, TileDraw, TileRenderer};

/// What the window keeps on the GPU: built once from the window's device and surface format.
pub struct ViewerGpu {
    pub gpu: GpuContext,
    pub tiles: TileRenderer,
    pub points: PointRenderer,
    /// Channel composites: one tile renderer per channel (its own palette, limits and resident tiles, an eighth
    /// of the GPU budget each; the renderers a frame does not draw with are emptied, so all of them together
    /// stay within the budget) and the pass that adds their layers.
    pub channels: Vec<TileRenderer>,
    pub composite: CompositeRenderer,
}

impl ViewerGpu {
    /// The renderer of layer `c`: a channel's (0..MAX_CHANNELS), else the single image's.
    pub fn renderer(&mut self, c: usize) -> &mut TileRenderer {
        self.split(c).1
    }

    /// The context and the renderer of layer `c`, borrowed together (for uploads).
    pub fn split(&mut self, c: usize) -> (&GpuContext, &mut TileRenderer) {
        let ViewerGpu { gpu, tiles, channels, .. } = self;
        (gpu, channels.get_mut(c).unwrap_or(tiles))
    }

    pub fn install(rs: &RenderState, budget: u64) {
        let gpu =
            GpuContext::from_device(rs.device.clone(), rs.queue.clone(), rs.adapter.get_info(), rs.device.limits());
        let tiles = TileRenderer::new(&gpu, rs.target_format, budget);
        let points = PointRenderer::new(&gpu, rs.target_format);
        let channels = (0..MAX_CHANNELS)
            .map(|_| TileRenderer::new(&gpu, rs.target_format, budget / MAX_CHANNELS as u64))
            .collect();
        let composite = CompositeRenderer::new(&gpu, rs.target_format);
        rs.renderer.write().callback_resources.insert(ViewerGpu { gpu, tiles, points, channels, composite });
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

/// One frame's channel composite: each shown channel's draw list (origin at the layer's corner) and display.
pub struct CompositeCallback {
    pub layers: Vec<(usize, Vec<TileDraw>, Display)>,
    /// The composite's channels (shown or not): one layer each.
    pub channels: usize,
    /// The data area's origin and size in physical pixels.
    pub origin_px: [f32; 2],
    pub size_px: [u32; 2],
}

impl CallbackTrait for CompositeCallback {
    fn prepare(
        &self,
        _device: &wgpu::Device,
        _queue: &wgpu::Queue,
        _screen: &ScreenDescriptor,
        encoder: &mut wgpu::CommandEncoder,
        resources: &mut CallbackResources,
    ) -> Vec<wgpu::CommandBuffer> {
        let Some(v) = resources.get_mut::<ViewerGpu>() else { return Vec::new() };
        let ViewerGpu { gpu, channels, composite, .. } = v;
        composite.ensure_layers(gpu, self.size_px, self.channels);
        let mut mask = 0u32;
        for (c, draws, display) in &self.layers {
            let (Some(r), Some(target)) = (channels.get_mut(*c), composite.layer(*c)) else { continue };
            r.draw_into(gpu, encoder, target, "channel layer", draws, display, self.size_px);
            mask |= 1 << c;
        }
        composite.set_globals(gpu, self.origin_px, mask);
        Vec::new()
    }

    fn paint(
        &self,
        _info: egui::PaintCallbackInfo,
        pass: &mut wgpu::RenderPass<'static>,
        resources: &CallbackResources,
    ) {
        if let Some(v) = resources.get::<ViewerGpu>() {
            v.composite.paint(pass);
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
