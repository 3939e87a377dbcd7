//! The window's panels: menu (open, export view), the side panel (colormap with previews, limits with a
//! histogram and draggable handles, auto-contrast, scale, gamma, NaN color, slice; a composite's channels; a note
//! in their place for RGB(A) images), welcome and error screens.

use std::path::{Path, PathBuf};
use std::sync::mpsc;

use eframe::egui;

use super::Viewer;
use crate::headless::{self, LimitsSpec, RenderSpec};
use crate::palette::{Colormap, Scale};
use crate::pyramid::stats::percentile_sorted;
use crate::source::OpenSpec;

/// A histogram of the values in the visible tiles.
pub struct Histogram {
    pub lo: f64,
    pub hi: f64,
    pub counts: Vec<u32>,
    /// Sorted finite sample of the visible values (for auto-contrast percentiles).
    pub sorted: Vec<f64>,
}

const BINS: usize = 128;
/// The side panel's word on an RGB(A) image, in place of the colormap, limits, scale and gamma controls.
pub const RGB_NOTE: &str = "Shown as stored: colormap, limits, scale and gamma apply to single-channel images only.";
const SAMPLE: usize = 200_000;
/// Texels in a full tile.
const TILE_TEXELS: usize = (crate::headless::TILE * crate::headless::TILE) as usize;

impl Histogram {
    pub fn from_values(mut vals: Vec<f64>) -> Option<Histogram> {
        vals.retain(|v| v.is_finite());
        if vals.is_empty() {
            return None;
        }
        if vals.len() > SAMPLE {
            let step = vals.len() / SAMPLE + 1;
            vals = vals.into_iter().step_by(step).collect();
        }
        vals.sort_unstable_by(f64::total_cmp);
        let (lo, hi) = (vals[0], vals[vals.len() - 1]);
        let mut counts = vec![0u32; BINS];
        let w = if hi > lo { (hi - lo) / BINS as f64 } else { 1.0 };
        for v in &vals {
            let b = (((v - lo) / w) as usize).min(BINS - 1);
            counts[b] += 1;
        }
        Some(Histogram { lo, hi, counts, sorted: vals })
    }
}

#[derive(Default)]
pub struct ExportState {
    pub width: u32,
    pub height: u32,
    pub running: Option<mpsc::Receiver<String>>,
}

fn recent_path() -> Option<PathBuf> {
    crate::desktop::XdgDirs::from_env().ok().map(|d| d.config_home.join("vastview").join("recent.txt"))
}

pub fn load_recent() -> Vec<PathBuf> {
    recent_path()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .map(|t| t.lines().filter(|l| !l.is_empty()).map(PathBuf::from).collect())
        .unwrap_or_default()
}

/// Puts `p` first in the recent list (10 kept) and saves it; failures to save are ignored (not critical).
pub fn push_recent(list: &mut Vec<PathBuf>, p: &Path) {
    let p = std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    list.retain(|q| q != &p);
    list.insert(0, p);
    list.truncate(10);
    if let Some(f) = recent_path() {
        let text: String = list.iter().map(|p| format!("{}\n", p.display())).collect();
        let _ = crate::diskcache::write_atomic(&f, text.as_bytes(), None);
    }
}

/// Saves an egui screenshot as an RGBA PNG.
pub fn save_color_image(img: &egui::ColorImage, path: &Path) -> Result<(), String> {
    let [w, h] = img.size;
    let bytes: Vec<u8> = img.pixels.iter().flat_map(|c| c.to_srgba_unmultiplied()).collect();
    let file = std::fs::File::create(path).map_err(|e| e.to_string())?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), w as u32, h as u32);
    enc.set_color(png::ColorType::Rgba);
    enc.set_depth(png::BitDepth::Eight);
    let mut wr = enc.write_header().map_err(|e| e.to_string())?;
    wr.write_image_data(&bytes).map_err(|e| e.to_string())?;
    wr.finish().map_err(|e| e.to_string())
}

impl Viewer {
    /// The side panel's export size (0 × 0: the view's own pixels), shared by images and point sets.
    pub(super) fn export_size_ui(&mut self, ui: &mut egui::Ui) {
        ui.heading("Export size");
        ui.horizontal(|ui| {
            ui.add(egui::DragValue::new(&mut self.export.width).prefix("w "));
            ui.add(egui::DragValue::new(&mut self.export.height).prefix("h "));
        });
        ui.small("0 × 0: the view's own pixels");
    }

    pub(super) fn menu_bar(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.menu_button("File", |ui| {
                if ui.button("Open…").clicked() {
                    ui.close();
                    if let Some(p) = open_dialog().pick_file() {
                        self.open(&OpenSpec { path: p, ..Default::default() });
                    }
                }
                if ui.button("Open the demo").clicked() {
                    ui.close();
                    self.open(&OpenSpec { demo: true, ..Default::default() });
                }
                if !self.recent.is_empty() {
                    ui.menu_button("Open recent", |ui| {
                        for p in self.recent.clone() {
                            if ui.button(p.display().to_string()).clicked() {
                                ui.close();
                                self.open(&OpenSpec { path: p, ..Default::default() });
                            }
                        }
                    });
                }
                ui.separator();
                if ui
                    .add_enabled(self.doc.is_some() || self.points.is_some(), egui::Button::new("Export view…"))
                    .clicked()
                {
                    ui.close();
                    self.export_view();
                }
                ui.separator();
                if ui.button("Quit").clicked() {
                    ui.ctx().send_viewport_cmd(egui::ViewportCommand::Close);
                }
            });
            if let Some(rx) = &self.export.running {
                if let Ok(msg) = rx.try_recv() {
                    self.message = Some((msg, std::time::Instant::now()));
                    self.export.running = None;
                } else {
                    ui.spinner();
                }
            }
            if let Some(doc) = &self.doc {
                ui.separator();
                ui.label(doc.src.info().path.display().to_string());
            }
            if let Some(p) = &self.points {
                ui.separator();
                match &p.src {
                    Some(s) => ui.label(format!("{} ({})", p.path.display(), s.format.name())),
                    None => ui.label(p.path.display().to_string()),
                };
            }
        });
    }

    /// Writes what is on screen (the data area) to PNG through the headless renderer, on a thread.
    fn export_view(&mut self) {
        if self.points.is_some() {
            return self.export_points_view();
        }
        let Some(doc) = &self.doc else { return };
        let Some(view) = doc.view else { return };
        let Some(path) = rfd::FileDialog::new().add_filter("PNG", &["png"]).set_file_name("view.png").save_file()
        else {
            return;
        };
        let im = doc.src.info().image;
        let region = view.visible_rect(im.width, im.height);
        if region.is_empty() {
            self.message = Some(("nothing of the image is in view".into(), std::time::Instant::now()));
            return;
        }
        let (w, h) = if self.export.width > 0 && self.export.height > 0 {
            (u64::from(self.export.width), u64::from(self.export.height))
        } else {
            let (sx0, sy0) = view.data_to_screen(region.x0 as f64, region.y0 as f64);
            let (sx1, sy1) = view.data_to_screen(region.x1 as f64, region.y1 as f64);
            (((sx1 - sx0).round() as u64).max(1), ((sy1 - sy0).round() as u64).max(1))
        };
        let spec = RenderSpec {
            slice: doc.slice,
            region: Some(region),
            size: Some((w, h)),
            colormap: self.display.colormap.name.clone(),
            limits: LimitsSpec::Explicit(self.display.lo, self.display.hi),
            scale: self.display.scale,
            gamma: self.display.gamma,
            nan_color: self.display.nan_color,
            method: doc.method,
            quality: headless::Quality::Exact,
        };
        let src = doc.src.clone();
        let (tx, rx) = mpsc::channel();
        self.export.running = Some(rx);
        let ctx = self.ctx.clone();
        std::thread::spawn(move || {
            let r = headless::plan(src.as_ref(), &spec).and_then(|plan| {
                let mut s = headless::Session::new()?;
                headless::render_png(&mut s, src.as_ref(), &plan, &path)
            });
            let _ = tx.send(match r {
                Ok(()) => format!("exported {w}x{h} to {}", path.display()),
                Err(e) => format!("export failed: {e}"),
            });
            ctx.request_repaint();
        });
    }

    pub(super) fn side_panel(&mut self, ui: &mut egui::Ui) {
        self.update_histogram(ui);
        let color = self.doc.as_ref().is_some_and(|d| d.src.info().image.is_color());
        egui::ScrollArea::vertical().show(ui, |ui| {
            self.parts_picker(ui);
            if color {
                // RGB(A) pixels are drawn as stored: colormap, limits, scale and gamma would do nothing.
                ui.heading("RGB(A) image");
                ui.label(RGB_NOTE);
            } else {
                self.channels_ui(ui);
                ui.heading("Colormap");
                self.colormap_picker(ui);
                if ui.checkbox(&mut self.reversed, "reversed").changed() {
                    self.set_colormap();
                }
                ui.separator();
                ui.heading("Limits");
                self.limits_editor(ui);
                ui.separator();
                ui.horizontal(|ui| {
                    ui.label("scale");
                    egui::ComboBox::from_id_salt("scale").selected_text(self.display.scale.name()).show_ui(ui, |ui| {
                        for s in Scale::ALL {
                            ui.selectable_value(&mut self.display.scale, s, s.name());
                        }
                    });
                });
                ui.add(egui::Slider::new(&mut self.display.gamma, 0.1..=5.0).logarithmic(true).text("gamma"));
                ui.horizontal(|ui| {
                    ui.label("NaN color");
                    let mut c = egui::Color32::from_rgba_unmultiplied(
                        self.display.nan_color[0],
                        self.display.nan_color[1],
                        self.display.nan_color[2],
                        self.display.nan_color[3],
                    );
                    if ui.color_edit_button_srgba(&mut c).changed() {
                        self.display.nan_color = c.to_srgba_unmultiplied();
                    }
                });
            }
            if let Some(doc) = self.doc.as_mut() {
                // One slider per outer axis (name, index, size); `[`/`]` step the marked one, `a` marks the next.
                let src = doc.src.clone();
                let outer = src.info().outer_axes();
                if src.info().image.slices > 1 {
                    ui.separator();
                    let mut idx = crate::source::axes::index_of(outer, doc.slice);
                    for (k, a) in outer.iter().enumerate() {
                        let mark = if k == doc.axis.min(outer.len() - 1) && outer.len() > 1 { " ◀ [ ]" } else { "" };
                        let r = ui.add(
                            egui::Slider::new(&mut idx[k], 0..=a.size - 1)
                                .text(format!("{} (of {}){mark}", a.name, a.size)),
                        );
                        if r.changed() {
                            doc.axis = k;
                        }
                    }
                    doc.slice = crate::source::axes::slice_of(outer, &idx);
                }
            }
            ui.separator();
            self.export_size_ui(ui);
        });
    }

    /// A composite's channels: composite on/off (`c`), and per channel whether it is shown, its colour and name;
    /// clicking a name selects it (the colormap and limits editors below then edit that channel), as the slider
    /// does. A colour-ramp menu for the selected channel.
    fn channels_ui(&mut self, ui: &mut egui::Ui) {
        let active_color = self.display.colormap.table[255];
        let Some(doc) = self.doc.as_mut() else { return };
        let Some(cp) = doc.composite.as_mut() else { return };
        ui.heading("Channels");
        ui.checkbox(&mut cp.on, "composite (c)")
            .on_hover_text("every shown channel added; off: the channel the slider picks, alone");
        let mut pick = None;
        for c in 0..cp.looks.len() {
            let [r, g, b, _] = if c == cp.active { active_color } else { cp.looks[c].colormap.table[255] };
            ui.horizontal(|ui| {
                ui.checkbox(&mut cp.looks[c].visible, "").on_hover_text("shown in the composite");
                ui.colored_label(egui::Color32::from_rgb(r, g, b), "■");
                if ui.selectable_label(c == cp.active, cp.looks[c].label.as_str()).clicked() {
                    pick = Some(c as u64);
                }
            });
        }
        if let Some(c) = pick {
            doc.slice = crate::source::axes::with_entry(doc.src.info().outer_axes(), doc.slice, cp.axis, c);
            doc.axis = cp.axis;
        }
        let mut ramp = None;
        egui::ComboBox::from_id_salt("ramp").selected_text("colour ramp").show_ui(ui, |ui| {
            for (name, _) in crate::palette::composite::DEFAULT_COLORS {
                if ui.selectable_label(false, name).clicked() {
                    ramp = Some(name);
                }
            }
        });
        ui.small("The colormap and limits below are the selected channel's.");
        ui.separator();
        if pick.is_some() {
            self.sync_channel();
        }
        if let Some(name) = ramp {
            (self.cmap_base, self.reversed) = (name.to_string(), false);
            self.set_colormap();
        }
    }

    pub(super) fn colormap_picker(&mut self, ui: &mut egui::Ui) {
        if self.previews.is_empty() {
            for name in Colormap::menu_names() {
                if let Some(c) = Colormap::by_name(&name) {
                    let img = egui::ColorImage::from_rgba_unmultiplied([256, 1], c.bytes());
                    let tex = ui.ctx().load_texture(format!("cmap-{name}"), img, egui::TextureOptions::NEAREST);
                    self.previews.push((name, tex));
                }
            }
        }
        let mut chosen = None;
        egui::ComboBox::from_id_salt("colormap").selected_text(self.cmap_base.clone()).width(220.0).show_ui(ui, |ui| {
            for (i, (name, tex)) in self.previews.iter().enumerate() {
                if i == 12 {
                    ui.separator(); // the twelve common ones above, matplotlib's others and colorcet's below
                }
                ui.horizontal(|ui| {
                    ui.add(egui::Image::new((tex.id(), egui::vec2(110.0, 14.0))));
                    if ui.selectable_label(*name == self.cmap_base, name).clicked() {
                        chosen = Some(name.clone());
                    }
                });
            }
        });
        if let Some((_, tex)) = self.previews.iter().find(|(n, _)| *n == self.cmap_base) {
            let uv = if self.reversed {
                egui::Rect::from_min_max(egui::pos2(1.0, 0.0), egui::pos2(0.0, 1.0))
            } else {
                egui::Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0))
            };
            ui.add(egui::Image::new((tex.id(), egui::vec2(230.0, 14.0))).uv(uv));
        }
        if let Some(n) = chosen {
            self.cmap_base = n;
            self.set_colormap();
        }
    }

    /// The histogram of the tiles the data area showed last frame, recomputed when that set (or how many of it
    /// were drawn) changes. None with nothing in view, and for RGB(A) images (their colors are shown as stored).
    fn update_histogram(&mut self, ui: &egui::Ui) {
        let Some(doc) = self.doc.as_mut() else { return };
        let (level, tiles, drawn) = (doc.shown.level, &doc.shown.tiles, doc.shown.drawn);
        let key = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (level, doc.slice, tiles, drawn).hash(&mut h);
            h.finish()
        };
        if tiles.is_empty() || doc.src.info().image.is_color() {
            doc.hist = None;
            doc.hist_key = key;
        }
        // From a strided sample of about SAMPLE values in all; once there is a histogram, at most
        // 4 times a second (panning changes the set every frame).
        let due = doc.hist.is_none() || doc.hist_time.is_none_or(|t| t.elapsed().as_millis() >= 250);
        if key != doc.hist_key && due {
            let per_tile = (SAMPLE / tiles.len().max(1)).max(1);
            let step = (TILE_TEXELS / per_tile).max(1);
            let mut vals = Vec::with_capacity(SAMPLE + per_tile);
            for t in tiles {
                let id = crate::cache::TileId { slice: doc.slice, level, tx: t.0, ty: t.1 };
                if let Some(d) = doc.cache.get(&id) {
                    vals.extend(d.values_every(step));
                }
            }
            doc.hist = Histogram::from_values(vals);
            doc.hist_key = key;
            doc.hist_time = Some(std::time::Instant::now());
        } else if key != doc.hist_key {
            ui.ctx().request_repaint_after(std::time::Duration::from_millis(250));
        }
        doc.hist_stale = key != doc.hist_key;
    }

    fn limits_editor(&mut self, ui: &mut egui::Ui) {
        let (mut lo, mut hi) = (self.display.lo, self.display.hi);
        let speed = ((hi - lo).abs() / 200.0).max(1e-12);
        ui.horizontal(|ui| {
            ui.add(egui::DragValue::new(&mut lo).speed(speed).prefix("lo "));
            ui.add(egui::DragValue::new(&mut hi).speed(speed).prefix("hi "));
        });
        if let Some(h) = self.doc.as_ref().and_then(|d| d.hist.as_ref()) {
            let (resp, painter) = ui.allocate_painter(egui::vec2(240.0, 90.0), egui::Sense::click_and_drag());
            let r = resp.rect;
            painter.rect_filled(r, 2.0, ui.visuals().extreme_bg_color);
            let max = h.counts.iter().copied().max().unwrap_or(1).max(1) as f32;
            let bw = r.width() / h.counts.len() as f32;
            for (i, c) in h.counts.iter().enumerate() {
                let bh = (*c as f32 / max).sqrt() * r.height();
                let x = r.left() + i as f32 * bw;
                painter.rect_filled(
                    egui::Rect::from_min_max(egui::pos2(x, r.bottom() - bh), egui::pos2(x + bw, r.bottom())),
                    0.0,
                    egui::Color32::GRAY,
                );
            }
            let span = if h.hi > h.lo { h.hi - h.lo } else { 1.0 };
            let to_x = |v: f64| r.left() + (((v - h.lo) / span) as f32).clamp(0.0, 1.0) * r.width();
            let to_v = |x: f32| h.lo + f64::from((x - r.left()) / r.width()) * span;
            for (v, col) in [(lo, egui::Color32::LIGHT_BLUE), (hi, egui::Color32::GOLD)] {
                let x = to_x(v);
                painter.line_segment([egui::pos2(x, r.top()), egui::pos2(x, r.bottom())], egui::Stroke::new(2.0, col));
            }
            // Drag near a handle moves it; elsewhere moves the nearer one.
            if let Some(p) = resp.interact_pointer_pos() {
                if resp.dragged() || resp.clicked() {
                    let v = to_v(p.x);
                    if (p.x - to_x(lo)).abs() <= (p.x - to_x(hi)).abs() {
                        lo = v;
                    } else {
                        hi = v;
                    }
                }
            }
            ui.small(format!("visible values {:.4} … {:.4}", h.lo, h.hi));
        }
        ui.horizontal(|ui| {
            if ui.button("Auto (0.5–99.5 % of view)").clicked() {
                // Exact counts from the pyramid's tile histograms of the view when there is one, else the
                // sample of the visible tiles' texels.
                let from_pyramid = self.doc.as_ref().and_then(|d| {
                    let store = d.cache.tile_source().store()?;
                    let im = d.src.info().image;
                    let r = d.view?.visible_rect(im.width, im.height);
                    if r.is_empty() || im.is_color() {
                        return None;
                    }
                    crate::headless::region_percentiles(&store, d.slice, &r, 0.5, 99.5).ok()
                });
                if let Some(l) = from_pyramid.filter(|l| l.lo.is_finite() && l.hi.is_finite() && l.hi > l.lo) {
                    (lo, hi) = (l.lo, l.hi);
                } else if let Some(h) = self.doc.as_ref().and_then(|d| d.hist.as_ref()) {
                    lo = percentile_sorted(&h.sorted, 0.5);
                    hi = percentile_sorted(&h.sorted, 99.5);
                }
            }
            if ui.button("Min/max").clicked() {
                if let Some(h) = self.doc.as_ref().and_then(|d| d.hist.as_ref()) {
                    (lo, hi) = (h.lo, h.hi);
                }
            }
        });
        self.display.lo = lo;
        self.display.hi = hi;
    }

    pub(super) fn welcome(&mut self, ui: &mut egui::Ui) {
        ui.vertical_centered(|ui| {
            ui.add_space(60.0);
            ui.heading("vastview");
            ui.label("Arrays larger than memory, on the GPU.");
            ui.add_space(20.0);
            if ui.button("Open a file…").clicked() {
                if let Some(p) = open_dialog().pick_file() {
                    self.open(&OpenSpec { path: p, ..Default::default() });
                }
            }
            if ui.button("Open the demo (a procedural 1,000,000² image)").clicked() {
                self.open(&OpenSpec { demo: true, ..Default::default() });
            }
            ui.label("…or drop a file anywhere in this window.");
            if !self.recent.is_empty() {
                ui.add_space(20.0);
                ui.heading("Recent files");
                for p in self.recent.clone() {
                    if ui.link(p.display().to_string()).clicked() {
                        self.open(&OpenSpec { path: p, ..Default::default() });
                    }
                }
            }
        });
    }

    /// The file's parts that open on their own (HDF5 datasets, NetCDF variables, a Zarr group's arrays),
    /// when there are several: choosing one opens it in place of the one shown.
    fn parts_picker(&mut self, ui: &mut egui::Ui) {
        let Some((base, current, list)) = &self.parts else { return };
        if list.len() < 2 || self.doc.is_none() {
            return;
        }
        // The part shown: the one asked for, else the one the format chose (`info().member`).
        let shown = current.clone().or_else(|| self.doc.as_ref().and_then(|d| d.src.info().member.clone()));
        let norm = |m: &str| m.trim_start_matches('/').to_string();
        let shown = shown.map(|m| norm(&m));
        let label = list
            .iter()
            .find(|p| Some(norm(&p.member)) == shown)
            .map_or_else(|| "(choose)".to_string(), |p| p.label.clone());
        let mut pick = None;
        ui.heading("Dataset");
        egui::ComboBox::from_id_salt("part").selected_text(label).width(ui.available_width()).show_ui(ui, |ui| {
            for p in list {
                if ui.selectable_label(Some(norm(&p.member)) == shown, &p.label).clicked() {
                    pick = Some(p.member.clone());
                }
            }
        });
        ui.separator();
        if let Some(m) = pick {
            let spec = OpenSpec { member: Some(m), ..base.clone() };
            self.open(&spec);
        }
    }

    pub(super) fn error_panel(&mut self, ui: &mut egui::Ui, err: &str) {
        ui.vertical_centered(|ui| {
            ui.add_space(60.0);
            ui.heading("Cannot open this file");
            ui.colored_label(egui::Color32::from_rgb(255, 90, 90), err);
            ui.add_space(20.0);
            // A group or a file with several parts: open one of them from here.
            let mut pick = None;
            if let Some((base, _, list)) = &self.parts {
                ui.label("Open one of its parts:");
                egui::ScrollArea::vertical().max_height(240.0).show(ui, |ui| {
                    for p in list {
                        if ui.link(&p.label).clicked() {
                            pick = Some(OpenSpec { member: Some(p.member.clone()), ..base.clone() });
                        }
                    }
                });
                ui.add_space(20.0);
            }
            if let Some(spec) = pick {
                self.error = None;
                self.open(&spec);
                return;
            }
            if ui.button("Open another file…").clicked() {
                if let Some(p) = rfd::FileDialog::new().pick_file() {
                    self.open(&OpenSpec { path: p, ..Default::default() });
                }
            }
            if ui.button("Back").clicked() {
                self.error = None;
            }
        });
    }
}

/// The Open dialog, its filters from the source registry (every array format, each on its own) plus text points.
fn open_dialog() -> rfd::FileDialog {
    let mut d = rfd::FileDialog::new();
    let text = crate::source::registry::TEXT_POINT_EXTENSIONS;
    for (i, (title, exts)) in crate::source::registry::dialog_filters().into_iter().enumerate() {
        if i == 0 {
            let all: Vec<&str> = exts.iter().copied().chain(text).collect();
            d = d.add_filter("All supported (arrays and point sets)", &all);
        } else {
            d = d.add_filter(title, &exts);
        }
    }
    d.add_filter("Text points", &text).add_filter("All files", &["*"])
}
