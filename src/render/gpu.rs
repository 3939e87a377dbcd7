//! The GPU context: adapter, device and queue, with limits taken from the adapter and errors captured, not panicked.

use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};

/// A device and queue plus what the renderers need to know about them.
pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    errors: Arc<Mutex<Vec<String>>>,
}

impl GpuContext {
    /// Creates a headless context on the best adapter (`WGPU_BACKEND` and `WGPU_POWER_PREF` are honoured),
    /// asking for the adapter's own limits rather than wgpu's conservative defaults.
    ///
    /// Nothing here needs a display: with no `WGPU_BACKEND`, the primary backends (Vulkan) are tried first, then
    /// GL (EGL's surfaceless platform) only when they have no adapter; neither is given a display handle.
    pub fn new_headless() -> Result<GpuContext> {
        let power_preference = wgpu::PowerPreference::from_env().unwrap_or(wgpu::PowerPreference::HighPerformance);
        let tries = match wgpu::Backends::from_env() {
            Some(asked) => vec![asked],
            None => vec![wgpu::Backends::PRIMARY, wgpu::Backends::SECONDARY],
        };
        let mut found = None;
        let mut failure = String::new();
        for backends in tries {
            let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
            desc.backends = backends;
            let instance = wgpu::Instance::new(desc);
            match pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
                power_preference,
                force_fallback_adapter: false,
                compatible_surface: None,
                ..Default::default()
            })) {
                Ok(a) => {
                    found = Some(a);
                    break;
                }
                Err(e) => failure = e.to_string(),
            }
        }
        let adapter = found.ok_or_else(|| {
            Error::Gpu(format!(
                "no GPU adapter found ({failure}); on Linux without a GPU install a software one: apt-get install mesa-vulkan-drivers"
            ))
        })?;
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("vastview"),
            required_features: wgpu::Features::empty(),
            required_limits: limits.clone(),
            ..Default::default()
        }))
        .map_err(|e| Error::Gpu(format!("cannot create a device on {}: {e}", adapter.get_info().name)))?;
        Ok(Self::from_device(device, queue, adapter.get_info(), limits))
    }

    /// Wraps a device made elsewhere (the window's), capturing its errors.
    pub fn from_device(
        device: wgpu::Device,
        queue: wgpu::Queue,
        info: wgpu::AdapterInfo,
        limits: wgpu::Limits,
    ) -> GpuContext {
        let errors = Arc::new(Mutex::new(Vec::new()));
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut v) = sink.lock() {
                v.push(e.to_string());
            }
        }));
        GpuContext { device, queue, info, limits, errors }
    }

    /// The first GPU error since the last call, as an `Error`.
    pub fn check(&self) -> Result<()> {
        let first = match self.errors.lock() {
            Ok(mut v) => v.drain(..).next(),
            Err(_) => Some("GPU error log poisoned".to_string()),
        };
        match first {
            Some(e) => Err(Error::Gpu(e)),
            None => Ok(()),
        }
    }

    /// Largest texture side, which is also the largest render chunk.
    pub fn max_texture_side(&self) -> u32 {
        self.limits.max_texture_dimension_2d
    }

    /// One line describing the adapter (for `--verbose` and benchmarks).
    pub fn describe(&self) -> String {
        format!(
            "{} ({:?}, {:?}, driver {} {})",
            self.info.name, self.info.backend, self.info.device_type, self.info.driver, self.info.driver_info
        )
    }
}
