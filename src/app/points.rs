//! Point sets in the window: the point document (source, background aggregation worker, view extent in data
//! units, the grid on screen), its data area (the last grid stretched to the view until the aggregate of the new
//! view arrives), side panel (agg, scale, colormap, alpha, background), status bar, and `--bench-frames`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use eframe::egui;

use super::gpu::{PointCallback, ViewerGpu};
use super::{area_px, mean_p95_ms, navigate, Navigate, Viewer};
use crate::points::worker::{IndexBuild, PointWorker, ViewGrid, ViewRequest, WorkerMsg};
use crate::points::{Agg, Extent, PointScale};
use crate::render::PointStyle;
use crate::source::points::{PointSource, PointSpec};

/// How to open a point set from the command line (the layout flags) and how to draw it first.
#[derive(Debug, Clone)]
pub struct PointOptions {
    pub path: PathBuf,
    pub spec: PointSpec,
    pub agg: Agg,
    pub scale: PointScale,
    /// 0..1
    pub alpha: f64,
    pub background: [u8; 4],
    pub marker: Marker,
    /// Magnification of the fitted first view, and its centre in data units.
    pub zoom: Option<f64>,
    pub center: Option<(f64, f64)>,
}

/// Point style state of the window (kept across files).
#[derive(Debug, Clone)]
pub(crate) struct PointLook {
    pub scale: PointScale,
    pub alpha: f64,
    pub background: [u8; 4],
    pub agg: Agg,
    pub marker: Marker,
}

/// How a point is drawn: one grid pixel, a disc of a fixed diameter, or `Auto` (discs of 5 px when the view is
/// so deep that points are rare: fewer than one per `AUTO_MARKER_PIXELS` pixels of the exact grid).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    Auto,
    /// Diameter in pixels (odd; 1 = the pixel alone).
    Px(u32),
}

/// `Marker::Auto` draws discs when the exact grid holds fewer points than its pixels ÷ this.
pub const AUTO_MARKER_PIXELS: u64 = 64;

impl Marker {
    pub const CHOICES: [Marker; 6] =
        [Marker::Auto, Marker::Px(1), Marker::Px(3), Marker::Px(5), Marker::Px(7), Marker::Px(9)];
    /// `auto` or an odd diameter 1..=15.
    pub fn parse(s: &str) -> Option<Marker> {
        match s {
            "auto" => Some(Marker::Auto),
            _ => s.parse::<u32>().ok().filter(|d| d % 2 == 1 && *d <= 15).map(Marker::Px),
        }
    }
    pub fn name(self) -> String {
        match self {
            Marker::Auto => "auto".into(),
            Marker::Px(d) => format!("{d} px"),
        }
    }
    /// The shader's radius for `grid` (None: no grid yet).
    pub fn radius(self, grid: Option<&ViewGrid>) -> u32 {
        match (self, grid) {
            (Marker::Px(d), _) => d / 2,
            (Marker::Auto, Some(g))
                if !g.is_preview() && g.in_view * AUTO_MARKER_PIXELS < (g.req.w * g.req.h) as u64 =>
            {
                2
            }
            (Marker::Auto, _) => 0,
        }
    }
}

impl Default for PointLook {
    fn default() -> Self {
        PointLook { scale: PointScale::Linear, alpha: 1.0, background: [0; 4], agg: Agg::Count, marker: Marker::Auto }
    }
}

impl Navigate for PointView {
    fn pan(&mut self, dx: f64, dy: f64) {
        PointView::pan(self, dx, dy);
    }
    fn zoom_about(&mut self, sx: f64, sy: f64, factor: f64) {
        PointView::zoom_about(self, sx, sy, factor);
    }
    fn area(&self) -> (f64, f64) {
        (self.vw, self.vh)
    }
}

/// What part of the plane the data area shows: centre, data units per physical pixel, area size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PointView {
    pub cx: f64,
    pub cy: f64,
    pub upp: f64,
    pub vw: f64,
    pub vh: f64,
}

impl PointView {
    /// `e` centred and fitted into a `vw`×`vh` area with square pixels, with half a pixel to spare on each side
    /// (so rounding never leaves the outermost points out of the view).
    pub fn fit(e: &Extent, vw: f64, vh: f64) -> PointView {
        let upp = ((e.xmax - e.xmin) / (vw - 1.0).max(1.0)).max((e.ymax - e.ymin) / (vh - 1.0).max(1.0));
        PointView { cx: (e.xmin + e.xmax) / 2.0, cy: (e.ymin + e.ymax) / 2.0, upp, vw, vh }
    }
    pub fn extent(&self) -> Extent {
        let (hw, hh) = (self.vw / 2.0 * self.upp, self.vh / 2.0 * self.upp);
        Extent { xmin: self.cx - hw, xmax: self.cx + hw, ymin: self.cy - hh, ymax: self.cy + hh }
    }
    /// Data point under area pixel (sx, sy) (y up in data, down on screen).
    pub fn screen_to_data(&self, sx: f64, sy: f64) -> (f64, f64) {
        (self.cx + (sx - self.vw / 2.0) * self.upp, self.cy - (sy - self.vh / 2.0) * self.upp)
    }
    pub fn pan(&mut self, dx: f64, dy: f64) {
        self.cx -= dx * self.upp;
        self.cy += dy * self.upp;
    }
    pub fn zoom_about(&mut self, sx: f64, sy: f64, factor: f64) {
        let (x, y) = self.screen_to_data(sx, sy);
        self.upp = (self.upp / factor).max(f64::MIN_POSITIVE * 1e10);
        self.cx = x - (sx - self.vw / 2.0) * self.upp;
        self.cy = y + (sy - self.vh / 2.0) * self.upp;
    }
    /// The map from framebuffer pixels (origin `o` of the area) to `g`'s grid pixels: column = floor(px·m0 + m1),
    /// row (0 = lowest y) = floor(py·m2 + m3). Identity on pixels when the view is the grid's own.
    pub fn grid_map(&self, g: &ViewRequest, o: [f64; 2]) -> [f64; 4] {
        let e = self.extent();
        let (gw, gh) = (g.w as f64, g.h as f64);
        let (gdx, gdy) = (g.extent.xmax - g.extent.xmin, g.extent.ymax - g.extent.ymin);
        let mx = (e.xmax - e.xmin) / self.vw * (gw / gdx);
        let my = -((e.ymax - e.ymin) / self.vh) * (gh / gdy);
        let bx = (e.xmin - g.extent.xmin) * gw / gdx;
        let by = (e.ymax - g.extent.ymin) * gh / gdy;
        [mx, bx - o[0] * mx, my, by - o[1] * my]
    }
}

/// An open point set.
pub(crate) struct PointDoc {
    pub path: PathBuf,
    /// None while the worker opens it (a text file is converted then).
    pub src: Option<Arc<PointSource>>,
    worker: PointWorker,
    /// Best known data bounds (padded when flat) and whether they are exact (else from a sample).
    bounds: Option<(Extent, bool)>,
    pub view: Option<PointView>,
    gen: u64,
    last_req: Option<ViewRequest>,
    /// The grid on screen (possibly of an older view, drawn stretched).
    pub shown: Option<Arc<ViewGrid>>,
    /// Id of `shown` for the GPU (uploaded once).
    shown_id: u64,
    /// The user moved the view (then new exact bounds do not refit it).
    interacted: bool,
    hover: Option<String>,
    failed: Option<String>,
    opened: Instant,
    /// Seconds from `app::run` (window and GPU set-up) to opening this file.
    pub setup_s: f64,
    pub first_frame_s: Option<f64>,
    /// Whether the first grid drawn was a preview.
    pub first_was_preview: bool,
    pub exact_frame_s: Option<f64>,
    /// Grids received (previews included).
    pub grids_received: u64,
    /// The spatial index exact grids come from (found in the cache, or built here).
    index: Option<PathBuf>,
    index_build: Option<IndexBuild>,
}

/// Ids of grids for the GPU, unique across documents (so a new file never shows the previous file's grid).
static NEXT_GRID_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Whether a file opened without flags should open as points (asked of the source layer, which answers it).
pub fn is_point_file(path: &Path) -> bool {
    crate::source::registry::is_point_file(path)
}

impl Viewer {
    /// Opens a point set, replacing what is open: the worker thread opens it (and converts text), so the window
    /// stays responsive; a failure shows the error panel with the command line's message.
    pub(crate) fn open_points(&mut self, path: &Path, spec: &PointSpec) {
        let ctx = self.ctx.clone();
        let wake = Arc::new(move || ctx.request_repaint());
        let worker = match PointWorker::open(path.to_path_buf(), spec.clone(), wake) {
            Ok(w) => w,
            Err(e) => return self.fail(format!("{}: cannot start a worker thread: {e}", path.display())),
        };
        self.doc = None;
        self.error = None;
        self.points = Some(PointDoc {
            path: path.to_path_buf(),
            src: None,
            worker,
            bounds: None,
            view: None,
            gen: 0,
            last_req: None,
            shown: None,
            shown_id: 0,
            interacted: false,
            hover: None,
            failed: None,
            opened: Instant::now(),
            setup_s: super::RUN_START.get().map_or(0.0, |t| t.elapsed().as_secs_f64()),
            first_frame_s: None,
            first_was_preview: false,
            exact_frame_s: None,
            grids_received: 0,
            index: None,
            index_build: None,
        });
    }

    pub(super) fn point_style(&self) -> PointStyle {
        PointStyle {
            colormap: self.display.colormap.clone(),
            scale_row: PointScale::ALL.iter().position(|s| *s == self.look.scale).unwrap_or(0) as u32,
            alpha: (self.look.alpha.clamp(0.0, 1.0) * 255.0).round() as u8,
            background: self.look.background,
            radius: self.look.marker.radius(self.points.as_ref().and_then(|pd| pd.shown.as_deref())),
        }
    }

    /// Takes the worker's messages: bounds (fit the view), grids (newest wins), failures.
    fn poll_points(&mut self) {
        let Some(pd) = self.points.as_mut() else { return };
        let mut fail = None;
        let mut opened = false;
        while let Some(m) = pd.worker.poll() {
            match m {
                WorkerMsg::Opened(src) => {
                    pd.src = Some(src);
                    opened = true;
                }
                WorkerMsg::Index(path) => {
                    pd.index = path;
                    if pd.index.is_none() {
                        // Damaged and deleted: a new build may be started from the side panel.
                        pd.index_build = None;
                    }
                }
                WorkerMsg::Bounds { bounds, exact } => {
                    match bounds.extent {
                        Some(e) => {
                            let (e, _, _) = e.padded();
                            // The view refits to these bounds unless the user has moved it.
                            pd.bounds = Some((e, exact));
                        }
                        None if exact || bounds.finite == 0 && bounds.nonfinite == 0 => {
                            // The message `render --points` gives.
                            let len = pd.src.as_ref().map_or(0, |s| s.len);
                            let e = crate::error::Error::bad_input(
                            &pd.path,
                            format!("none of the {len} points has finite x and y (all NaN or infinite): nothing to draw"),
                        );
                            fail = Some(e.to_string());
                        }
                        // A sample with no finite point: wait for the exact bounds.
                        None => {}
                    }
                }
                WorkerMsg::Grid(g) => {
                    pd.grids_received += 1;
                    let newer = pd
                        .shown
                        .as_ref()
                        .is_none_or(|s| g.req.gen > s.req.gen || (g.req.gen == s.req.gen && !g.is_preview()));
                    if newer {
                        pd.shown = Some(Arc::from(g));
                        pd.shown_id = NEXT_GRID_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if pd.gen == pd.shown.as_ref().map_or(0, |s| s.req.gen) {
                            pd.failed = None;
                        }
                    }
                }
                WorkerMsg::Failed { gen: 0, msg } => fail = Some(msg),
                WorkerMsg::Failed { gen, msg } => {
                    if gen == pd.gen {
                        pd.failed = Some(msg);
                    }
                }
            }
        }
        if opened {
            let path = pd.path.clone();
            if self.look.agg.needs_value() && pd.src.as_ref().is_some_and(|s| s.value_column().is_none()) {
                self.look.agg = Agg::Count;
            }
            super::panels::push_recent(&mut self.recent, &path);
        }
        if let Some(msg) = fail {
            self.fail(msg);
        }
    }

    /// Drag, wheel, `+`/`-`/arrows (`navigate`); `f` fits the data bounds.
    fn point_input(&mut self, resp: &egui::Response, origin: egui::Pos2, ppp: f32) {
        let Some(pd) = self.points.as_mut() else { return };
        let Some(view) = pd.view.as_mut() else { return };
        let before = *view;
        for k in navigate(&self.ctx, resp, origin, ppp, view) {
            if let (egui::Key::F, Some((e, _))) = (k, pd.bounds) {
                *view = PointView::fit(&e, view.vw, view.vh);
            }
        }
        if *view != before {
            pd.interacted = true;
        }
    }

    /// The point data area: asks the worker for the view's aggregate, uploads each new grid once and draws the
    /// newest grid mapped onto the view. Returns true once the exact grid of this very view is on screen.
    pub(super) fn points_area(&mut self, ui: &mut egui::Ui, frame: &mut eframe::Frame) -> super::Completion {
        self.poll_points();
        let rect = ui.max_rect();
        let ppp = ui.ctx().pixels_per_point();
        let resp = ui.interact(rect, ui.scope_id().with("points"), egui::Sense::click_and_drag());
        let (origin_px, size_px) = area_px(rect, ppp);
        let (vw, vh) = (f64::from(size_px[0]), f64::from(size_px[1]));
        {
            let Some(pd) = self.points.as_mut() else { return super::Completion::Pending };
            let (zoom, center) = self.opts.points.as_ref().map_or((None, None), |p| (p.zoom, p.center));
            match (&mut pd.view, pd.bounds) {
                // `--zoom`/`--center`: the fitted view magnified and moved, once the exact bounds are known.
                (None, Some((e, true))) if zoom.is_some() || center.is_some() => {
                    let mut v = PointView::fit(&e, vw, vh);
                    v.upp /= zoom.unwrap_or(1.0);
                    if let Some((x, y)) = center {
                        (v.cx, v.cy) = (x, y);
                    }
                    pd.view = Some(v);
                    pd.interacted = true;
                }
                (None, Some(_)) if zoom.is_some() || center.is_some() => {
                    ui.centered_and_justified(|ui| ui.label("reading the point set…"));
                    return super::Completion::Pending;
                }
                // Until the user moves it, the view fits the data whatever the area's size.
                (_, Some((e, _))) if !pd.interacted => pd.view = Some(PointView::fit(&e, vw, vh)),
                (Some(v), _) => (v.vw, v.vh) = (vw, vh),
                (None, Some((e, _))) => pd.view = Some(PointView::fit(&e, vw, vh)),
                (None, None) => {
                    let what = if pd.src.is_none() { "opening the point set…" } else { "reading the point set…" };
                    ui.centered_and_justified(|ui| ui.label(what));
                    return super::Completion::Pending;
                }
            }
        }
        self.point_input(&resp, rect.min, ppp);
        let agg = self.look.agg;
        let style = self.point_style();
        let Some(pd) = self.points.as_mut() else { return super::Completion::Pending };
        let Some(view) = pd.view else { return super::Completion::Pending };
        // A new view (or size, or aggregate) asks the worker; it drops requests superseded before they start.
        let e = view.extent();
        let (w, h) = (size_px[0] as usize, size_px[1] as usize);
        let same = pd.last_req.is_some_and(|r| r.extent == e && r.w == w && r.h == h && r.agg == agg);
        if !same {
            pd.gen += 1;
            let r = ViewRequest { gen: pd.gen, extent: e, w, h, agg };
            pd.worker.request(r);
            pd.last_req = Some(r);
        }
        ui.painter().rect_filled(rect, 0.0, ui.visuals().extreme_bg_color);
        let Some(rs) = frame.wgpu_render_state() else { return super::Completion::Pending };
        let mut renderer = rs.renderer.write();
        let Some(vg) = renderer.callback_resources.get_mut::<ViewerGpu>() else { return super::Completion::Pending };
        let mut uploaded = false;
        let mut map = [0.0; 4];
        if let Some(g) = &pd.shown {
            if vg.points.grid_id() != pd.shown_id {
                let th: [[f32; 256]; 3] = g.thresholds.map(|t| t.map(|v| v as f32));
                match vg.points.set_grid(&vg.gpu, pd.shown_id, g.req.w as u32, g.req.h as u32, &g.texels(), &th) {
                    Ok(()) => uploaded = true,
                    Err(e) => pd.failed = Some(e.to_string()),
                }
            }
            map = view.grid_map(&g.req, [f64::from(origin_px[0]), f64::from(origin_px[1])]);
        }
        drop(renderer);
        let t = pd.opened.elapsed().as_secs_f64();
        if uploaded && pd.first_frame_s.is_none() {
            pd.first_frame_s = Some(t);
            pd.first_was_preview = pd.shown.as_ref().is_some_and(|g| g.is_preview());
        }
        let exact_now = pd.shown.as_ref().is_some_and(|g| !g.is_preview() && g.req.gen == pd.gen);
        if exact_now {
            pd.exact_frame_s.get_or_insert(t);
        }
        let cb = PointCallback { style, grid_map: map, grid_id: pd.shown.as_ref().map_or(0, |_| pd.shown_id) };
        ui.painter().add(super::gpu::Callback::new_paint_callback(rect, cb));
        // The aggregate under the cursor, from the grid on screen.
        pd.hover = resp.hover_pos().and_then(|p| {
            let g = pd.shown.as_ref()?;
            let (sx, sy) = (f64::from((p.x - rect.min.x) * ppp), f64::from((p.y - rect.min.y) * ppp));
            let (x, y) = view.screen_to_data(sx, sy);
            let fx = (x - g.req.extent.xmin) / (g.req.extent.xmax - g.req.extent.xmin) * g.req.w as f64;
            let fy = (y - g.req.extent.ymin) / (g.req.extent.ymax - g.req.extent.ymin) * g.req.h as f64;
            let what = if fx < 0.0 || fy < 0.0 {
                "–".to_string()
            } else {
                match g.value(fx as usize, fy as usize) {
                    Some(v) if g.req.agg == Agg::Count => format!("{}", v as u64),
                    Some(v) => crate::numfmt::format_f64(v),
                    None => "empty".into(),
                }
            };
            Some(format!("x {x:.6}  y {y:.6}  {} {what}", g.req.agg.name()))
        });
        let line = pd.last_req.filter(|_| exact_now && self.opts.screenshot.is_some()).map(|r| {
            format!(
                "points view: {},{},{},{}; grid {}x{}; data area: {},{},{},{} px; {} points in view; from the {}",
                r.extent.xmin,
                r.extent.ymin,
                r.extent.xmax,
                r.extent.ymax,
                r.w,
                r.h,
                origin_px[0],
                origin_px[1],
                size_px[0],
                size_px[1],
                pd.shown.as_ref().map_or(0, |g| g.in_view),
                if pd.worker.has_index() { "index" } else { "scan" }
            )
        });
        // No polling while aggregating: the worker wakes the window when a result arrives (frames drawn meanwhile
        // would take CPU from the aggregation, on a small machine with a software renderer).
        let completion = match &pd.failed {
            Some(msg) => super::Completion::Incomplete(msg.clone()),
            None if exact_now && !uploaded => super::Completion::Complete,
            None => super::Completion::Pending,
        };
        if line.is_some() {
            self.shot_line = line;
        }
        completion
    }

    /// `File ▸ Export view…` for a point set: `render --points` of the view's extent, at the view's pixels (or the
    /// export size), with the window's style, on a thread.
    pub(super) fn export_points_view(&mut self) {
        let Some(pd) = &self.points else { return };
        let Some(view) = pd.view else { return };
        let Some(path) = rfd::FileDialog::new().add_filter("PNG", &["png"]).set_file_name("points.png").save_file()
        else {
            return;
        };
        let size = if self.export.width > 0 && self.export.height > 0 {
            (u64::from(self.export.width), u64::from(self.export.height))
        } else {
            (view.vw as u64, view.vh as u64)
        };
        let spec = crate::headless_points::PointRender {
            region: Some(view.extent()),
            size: Some(size),
            agg: self.look.agg,
            colormap: self.display.colormap.name.clone(),
            scale: self.look.scale,
            alpha: self.look.alpha,
            background: self.look.background,
        };
        let Some(src) = pd.src.clone() else { return };
        let (tx, rx) = std::sync::mpsc::channel();
        self.export.running = Some(rx);
        let ctx = self.ctx.clone();
        std::thread::spawn(move || {
            let msg = match crate::headless_points::render_points(&src, &spec, &path) {
                Ok(r) => format!("exported {}x{} to {}", r.width, r.height, path.display()),
                Err(e) => format!("export failed: {e}"),
            };
            let _ = tx.send(msg);
            ctx.request_repaint();
        });
    }

    pub(super) fn points_status(&self, ui: &mut egui::Ui) {
        let Some(pd) = &self.points else { return };
        ui.horizontal(|ui| {
            match &pd.hover {
                Some(h) => ui.monospace(h),
                None => ui.monospace("x –  y –"),
            };
            ui.separator();
            match &pd.shown {
                Some(g) => {
                    let stale = pd.last_req.is_some_and(|r| r.gen != g.req.gen);
                    if g.is_preview() {
                        ui.colored_label(egui::Color32::GOLD, "preview");
                        ui.label(format!(
                            "≈ {} points in view (1/{} sample: {} of {} read), aggregated in {:.0} ms",
                            fmt_count(g.in_view.saturating_mul(g.every as u64)),
                            g.every,
                            fmt_count(g.in_view),
                            fmt_count(g.read),
                            g.secs * 1e3
                        ));
                    } else {
                        ui.label("exact");
                        ui.label(format!(
                            "{} points in view, aggregated in {:.0} ms",
                            fmt_count(g.in_view),
                            g.secs * 1e3
                        ));
                    }
                    if stale {
                        ui.separator();
                        ui.label("aggregating the new view…");
                    }
                }
                None => {
                    ui.label("aggregating…");
                }
            }
            ui.separator();
            if let Some(src) = &pd.src {
                ui.label(format!("{} points in the file", fmt_count(src.len)));
            }
            if let Some(b) = &pd.index_build {
                let outcome = b.outcome.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
                ui.separator();
                match outcome {
                    None => {
                        let f = b.progress.fraction();
                        let rate = b.progress.done.load(std::sync::atomic::Ordering::Relaxed) as f64
                            / b.started.elapsed().as_secs_f64().max(1e-3)
                            / 1e6;
                        ui.add(egui::ProgressBar::new(f as f32).desired_width(120.0));
                        ui.ctx().request_repaint_after(std::time::Duration::from_millis(250));
                        ui.label(format!("building index {:.0} % ({rate:.0} MB/s)", f * 100.0));
                    }
                    Some(Ok(())) => {
                        ui.label("index built");
                    }
                    Some(Err(e)) => {
                        ui.colored_label(egui::Color32::from_rgb(255, 90, 90), format!("index not built: {e}"));
                    }
                }
            } else if pd.index.is_some() {
                ui.separator();
                ui.label("index");
            }
            if let Some(msg) = &pd.failed {
                ui.separator();
                ui.colored_label(egui::Color32::from_rgb(255, 90, 90), msg);
            }
            if let Some((msg, t)) = &self.message {
                if t.elapsed().as_secs() < 8 {
                    ui.separator();
                    ui.label(msg);
                }
            }
        });
    }

    pub(super) fn points_side_panel(&mut self, ui: &mut egui::Ui) {
        let has_value = self.points.as_ref().and_then(|p| p.src.as_ref()).is_some_and(|s| s.value_column().is_some());
        egui::ScrollArea::vertical().show(ui, |ui| {
            ui.heading("Aggregate");
            egui::ComboBox::from_id_salt("agg").selected_text(self.look.agg.name()).show_ui(ui, |ui| {
                for a in Agg::ALL {
                    ui.add_enabled_ui(!a.needs_value() || has_value, |ui| {
                        ui.selectable_value(&mut self.look.agg, a, a.name());
                    });
                }
            });
            if !has_value {
                ui.small("sum/mean/min/max need a value column (--value)");
            }
            ui.separator();
            ui.heading("Colormap");
            self.colormap_picker(ui);
            if ui.checkbox(&mut self.reversed, "reversed").changed() {
                self.set_colormap();
            }
            ui.separator();
            ui.horizontal(|ui| {
                ui.label("scale");
                egui::ComboBox::from_id_salt("pscale").selected_text(self.look.scale.name()).show_ui(ui, |ui| {
                    for s in PointScale::ALL {
                        ui.selectable_value(&mut self.look.scale, s, s.name());
                    }
                });
            });
            ui.add(egui::Slider::new(&mut self.look.alpha, 0.0..=1.0).text("alpha"));
            egui::ComboBox::from_id_salt("marker")
                .selected_text(format!("points: {}", self.look.marker.name()))
                .show_ui(ui, |ui| {
                    for m in Marker::CHOICES {
                        ui.selectable_value(&mut self.look.marker, m, m.name());
                    }
                });
            ui.horizontal(|ui| {
                let mut on = self.look.background[3] > 0;
                if ui.checkbox(&mut on, "background").changed() {
                    self.look.background = if on { [255, 255, 255, 255] } else { [0; 4] };
                }
                if on {
                    let b = self.look.background;
                    let mut c = egui::Color32::from_rgba_unmultiplied(b[0], b[1], b[2], b[3]);
                    if ui.color_edit_button_srgba(&mut c).changed() {
                        self.look.background = c.to_srgba_unmultiplied();
                    }
                }
            });
            if let Some(g) = self.points.as_ref().and_then(|p| p.shown.as_ref()) {
                ui.separator();
                if let Some((lo, hi)) = g.range {
                    let (lo, hi) = if g.req.agg == Agg::Count {
                        (fmt_count(lo as u64), fmt_count(hi as u64))
                    } else {
                        (fmt_value(lo), fmt_value(hi))
                    };
                    ui.small(format!("{} in view: {lo} … {hi}", g.req.agg.name()));
                }
                let e = g.req.extent;
                ui.small(format!("x {} … {}", fmt_value(e.xmin), fmt_value(e.xmax)));
                ui.small(format!("y {} … {}", fmt_value(e.ymin), fmt_value(e.ymax)));
                ui.small(format!("grid {} × {} px", g.req.w, g.req.h));
            }
            ui.separator();
            self.export_size_ui(ui);
            if let Some(pd) = self.points.as_mut() {
                ui.separator();
                ui.heading("Spatial index");
                let running = pd
                    .index_build
                    .as_ref()
                    .is_some_and(|b| b.outcome.lock().unwrap_or_else(std::sync::PoisonError::into_inner).is_none());
                if let Some(p) = &pd.index {
                    ui.small(format!("exact views read only their cells: {}", p.display()));
                } else if pd.worker.has_index() {
                    ui.small("built: exact views read only their cells");
                } else if running {
                    ui.small("building in the background (one pass, then cached)…");
                } else {
                    ui.small("none: every exact view reads all records");
                    let can = pd.src.is_some();
                    if ui.add_enabled(can, egui::Button::new("Build index")).clicked() {
                        if let Some(src) = pd.src.clone() {
                            pd.index_build = Some(pd.worker.build_index(src));
                        }
                    }
                }
            }
        });
    }

    /// One frame of `--bench-frames` on a point set: 0 wait for the exact view, 1 still frames, 2 panning (1/32 of
    /// the view per frame), 4 settle (exact again), 3 style changes (scale, colormap, alpha, background; counting
    /// aggregations and grid bytes uploaded), then report and close.
    pub(super) fn points_bench_step(&mut self, ui: &egui::Ui, frame: &eframe::Frame, ready: bool, ui_secs: f64) {
        let Some(mut b) = self.bench.take() else { return };
        // While waiting for a grid (phases 0 and 4) the worker's wake-ups drive the frames.
        if b.phase != 0 && b.phase != 4 {
            ui.ctx().request_repaint();
        }
        b.rss_anon_peak_kb = b.rss_anon_peak_kb.max(crate::headless::proc_status_kb("RssAnon:"));
        let up = frame
            .wgpu_render_state()
            .and_then(|rs| rs.renderer.read().callback_resources.get::<ViewerGpu>().map(|v| v.points.stats))
            .unwrap_or_default();
        let Some(pd) = self.points.as_mut() else {
            self.bench = Some(b);
            return;
        };
        b.frames += 1;
        match b.phase {
            0 if ready || b.frames > 5000 => {
                ui.ctx().request_repaint();
                (b.phase, b.frames) = (1, 0);
                b.exact_secs = pd.shown.as_ref().map_or(0.0, |g| g.secs);
                b.exact_in_view = pd.shown.as_ref().map_or(0, |g| g.in_view);
            }
            1 => {
                b.still_ui.push(ui_secs);
                if b.frames >= 30 {
                    (b.phase, b.frames) = (2, 0);
                    b.pan_start = Some(Instant::now());
                    b.grids_at = pd.grids_received;
                }
            }
            2 => {
                b.pan_ui.push(ui_secs);
                if let Some(v) = pd.view.as_mut() {
                    v.pan(-v.vw / 32.0, -v.vh / 256.0);
                    pd.interacted = true;
                }
                if b.frames >= b.n {
                    (b.phase, b.frames) = (4, 0);
                    b.pan_secs = b.pan_start.map_or(0.0, |t| t.elapsed().as_secs_f64());
                    b.grids_at = pd.grids_received - b.grids_at;
                    b.settle_start = Some(Instant::now());
                }
            }
            4 if ready || b.frames > 5000 => {
                ui.ctx().request_repaint();
                (b.phase, b.frames) = (3, 0);
                b.settle_secs = b.settle_start.map_or(0.0, |t| t.elapsed().as_secs_f64());
                b.aggs_at = pd.worker.aggregations();
                b.last_point_up = Some(up);
            }
            3 => {
                if let Some(prev) = b.last_point_up {
                    let bytes = (up.lut_bytes + up.uniform_bytes + up.grid_bytes)
                        - (prev.lut_bytes + prev.uniform_bytes + prev.grid_bytes);
                    b.palette_bytes.push(bytes);
                    b.style_grid_bytes += up.grid_bytes - prev.grid_bytes;
                }
                b.last_point_up = Some(up);
                if b.frames >= 12 {
                    let aggs = pd.worker.aggregations() - b.aggs_at;
                    let (sm, sp) = mean_p95_ms(&b.still_ui);
                    let (pm, pp) = mean_p95_ms(&b.pan_ui);
                    eprintln!(
                        "bench points: {} points; window set-up {:.3} s, then first frame {:.3} s ({}), exact frame {:.3} s after open ({:.3} s to aggregate it from the {}, {} points in view)",
                        pd.src.as_ref().map_or(0, |s| s.len),
                        pd.setup_s,
                        pd.first_frame_s.unwrap_or(f64::NAN),
                        if pd.first_was_preview { "preview" } else { "exact" },
                        pd.exact_frame_s.unwrap_or(f64::NAN),
                        b.exact_secs,
                        if pd.worker.has_index() { "index" } else { "scan" },
                        b.exact_in_view
                    );
                    eprintln!(
                        "bench points: still frames ui {sm:.2} ms mean / {sp:.2} ms p95; panning {} frames ui {pm:.2} ms mean / {pp:.2} ms p95, {:.1} fps wall, {} grids arrived while panning; exact again {:.3} s after panning stopped",
                        b.pan_ui.len(),
                        b.pan_ui.len() as f64 / b.pan_secs.max(1e-9),
                        b.grids_at,
                        b.settle_secs
                    );
                    eprintln!(
                        "bench points: style changes {} with {aggs} aggregations and {} grid bytes uploaded, max {} bytes per change; peak RssAnon {:.1} MiB",
                        b.palette_bytes.len(),
                        b.style_grid_bytes,
                        b.palette_bytes.iter().max().copied().unwrap_or(0),
                        b.rss_anon_peak_kb as f64 / 1024.0
                    );
                    ui.ctx().send_viewport_cmd(egui::ViewportCommand::Close);
                    b.phase = 5;
                }
                // The next frame draws with a new scale, colormap, alpha and background.
                let i = b.frames as usize;
                let names = ["magma", "gray", "turbo", "cividis", "viridis"];
                self.cmap_base = names[i % names.len()].to_string();
                self.set_colormap();
                self.look.scale = PointScale::ALL[i % 3];
                self.look.alpha = [1.0, 0.5, 0.8][i % 3];
                self.look.background = if i % 2 == 0 { [0; 4] } else { [16, 32, 48, 255] };
            }
            _ => {}
        }
        self.bench = Some(b);
    }
}

fn fmt_count(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn fmt_value(v: f64) -> String {
    if v.abs() >= 1e6 || (v != 0.0 && v.abs() < 1e-3) {
        format!("{v:.4e}")
    } else {
        format!("{v:.4}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_view_maps_onto_its_own_grid_pixel_for_pixel() {
        let e = Extent { xmin: -3.25, ymin: 1.0, xmax: 7.5, ymax: 4.0 };
        let v = PointView::fit(&e, 640.0, 480.0);
        let f = v.extent();
        assert!(f.xmin <= e.xmin && f.xmax >= e.xmax && f.ymin <= e.ymin && f.ymax >= e.ymax, "{f:?}");
        let req = ViewRequest { gen: 1, extent: f, w: 640, h: 480, agg: Agg::Count };
        let [mx, bx, my, by] = v.grid_map(&req, [10.0, 25.0]);
        // Framebuffer pixel centres (x + 0.5, y + 0.5) of the area at origin (10, 25), in f32 as the shader sees them.
        for (px, py) in [(0.0, 0.0), (639.0, 479.0), (320.0, 17.0)] {
            let (fx, fy) = ((10.0 + px + 0.5) as f32, (25.0 + py + 0.5) as f32);
            let col = (fx * mx as f32 + bx as f32).floor();
            let row = (fy * my as f32 + by as f32).floor();
            assert_eq!((col, row), (px as f32, 479.0 - py as f32), "pixel ({px}, {py})");
        }
    }

    #[test]
    fn a_moved_view_draws_the_last_grid_stretched() {
        let e = Extent { xmin: 0.0, ymin: 0.0, xmax: 100.0, ymax: 50.0 };
        let v = PointView::fit(&e, 200.0, 100.0);
        let req = ViewRequest { gen: 1, extent: v.extent(), w: 200, h: 100, agg: Agg::Count };
        let cell = |m: [f64; 4], px: f64, py: f64| {
            ((px + 0.5) * m[0] + m[1]).floor() as i64 * 1000 + ((py + 0.5) * m[2] + m[3]).floor() as i64
        };
        // Panned right by 10 pixels: screen pixel x shows grid column x − 10 (the data moved with the drag).
        let mut p = v;
        p.pan(10.0, 0.0);
        let m = p.grid_map(&req, [0.0, 0.0]);
        assert_eq!(cell(m, 50.0, 20.0), 40 * 1000 + 79);
        // Zoomed 2× about the centre: the centre pixel keeps its cell, pixels 2 apart show neighbouring cells.
        let mut z = v;
        z.zoom_about(100.0, 50.0, 2.0);
        let m = z.grid_map(&req, [0.0, 0.0]);
        assert_eq!(cell(m, 100.0, 50.0), 100 * 1000 + 49);
        assert_eq!(cell(m, 102.0, 50.0), 101 * 1000 + 49);
    }

    #[test]
    fn point_shaped_files_open_as_points() {
        let dir = std::env::temp_dir().join(format!("vastview-ispoints-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let npy = |name: &str, dtype: &str, shape: &[u64]| {
            let p = dir.join(name);
            let mut b = crate::headless::npy_header(dtype, shape);
            b.resize(b.len() + shape.iter().product::<u64>() as usize * 4, 0);
            std::fs::write(&p, b).expect("write");
            p
        };
        assert!(is_point_file(&npy("pts.npy", "<f4", &[1000, 3])));
        assert!(is_point_file(&npy("pts2.npy", "<f4", &[1000, 2])));
        assert!(!is_point_file(&npy("img.npy", "<f4", &[100, 100])));
        assert!(!is_point_file(&npy("few.npy", "<f4", &[10, 3])));
        assert!(!is_point_file(&npy("ints.npy", "<i4", &[1000, 3])));
        let csv = dir.join("p.csv");
        std::fs::write(&csv, "1,2\n3,4\n").expect("write");
        assert!(is_point_file(&csv));
        let raw = dir.join("p.bin");
        std::fs::write(&raw, [0u8; 24]).expect("write");
        assert!(!is_point_file(&raw));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
