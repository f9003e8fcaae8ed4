//! The plugin's editor (egui through `nice-plug-egui`, the nice-plug editor
//! adapter on the same `nice-plug-core` as our wrapper; egui because it needs
//! no asset pipeline and draws a live graph in a few lines).
//!
//! The editor reads the newest [`Snapshot`] each frame and turns the user's
//! choices into [`UiBridge`] requests; it never blocks, reads files or loads a
//! model. Preset values come back from the non-audio side and are set here
//! through the host (begin/set/end gesture), so the DAW records them.
//!
//! [`draw`] is the whole view, separate from the window plumbing so it can be
//! run headless in tests. HiDPI: sizes are logical; `nice-plug-egui` sets egui's
//! pixels-per-point from the host's (or the system's) scale factor.

use std::sync::Arc;
use std::time::Duration;

use egui::{Color32, RichText, Sense, Stroke, Ui};
use nice_plug::context::gui::GuiContext;
use nice_plug::prelude::*;
use nice_plug_egui::{
    create_egui_editor, EguiEditor, EguiEditorState, NiceEguiApp, RepaintNotifier,
};

use crate::knob_table::Knob;
use crate::params::AntiphonParams;
use crate::ui_bridge::{ModelRequest, ModelState, Snapshot, UiBridge};

/// The editor's logical size.
pub const SIZE: (u32, u32) = (560, 680);
/// One model frame: the scale of the stage bars.
const FRAME_MS: f64 = 80.0;
/// Redraw rate while open (the feed publishes at 10 Hz).
const REDRAW: Duration = Duration::from_millis(100);

const GREEN: Color32 = Color32::from_rgb(80, 200, 120);
const AMBER: Color32 = Color32::from_rgb(230, 170, 60);
const RED: Color32 = Color32::from_rgb(235, 90, 80);
const GREY: Color32 = Color32::from_rgb(150, 150, 150);
const BLUE: Color32 = Color32::from_rgb(90, 160, 240);

/// What the user did in one frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Model(ModelRequest),
    Preset(String),
    /// The *Fixed latency* parameter, set through the host.
    FixedLatency(bool),
}

/// Editor-only state (the text being typed), kept across frames.
#[derive(Debug, Default)]
pub struct Form {
    folder: String,
    /// The model the text field was last filled from, to refill it when the
    /// model in use changes.
    synced_model: Option<String>,
    problem: String,
}

/// The editor app: view + bridge + (while open) the host context.
pub struct EditorApp {
    bridge: Arc<UiBridge>,
    params: Arc<AntiphonParams>,
    gui: Option<GuiContext>,
    form: Form,
}

/// Builds the plugin's editor (called once per plugin instance).
pub fn create(bridge: Arc<UiBridge>, params: Arc<AntiphonParams>) -> Option<EguiEditor<EditorApp>> {
    let state = EguiEditorState::from_size(
        nice_plug::editor::dpi::LogicalSize::new(SIZE.0 as f64, SIZE.1 as f64),
        1.0,
    );
    create_egui_editor(
        state,
        RepaintNotifier::new(),
        nice_plug_egui::EguiNiceSettings::new().with_tile("Antiphon"),
        EditorApp::new(bridge, params),
    )
}

impl EditorApp {
    pub fn new(bridge: Arc<UiBridge>, params: Arc<AntiphonParams>) -> Self {
        Self {
            bridge,
            params,
            gui: None,
            form: Form::default(),
        }
    }
}

/// What the open editor does each frame with a preset's values: sets them
/// through the host (`gui`), one gesture per parameter, so the DAW records
/// them. Returns whether there were values to set.
pub fn apply_param_changes(bridge: &UiBridge, p: &AntiphonParams, gui: &GuiContext) -> bool {
    let Some(changes) = bridge.take_param_changes() else {
        return false;
    };
    let setter = gui.param_setter();
    for &(k, v) in changes.iter() {
        match k {
            Knob::GAIN_DB => set(&setter, &p.gain_db, v),
            Knob::MIX => set(&setter, &p.mix, v),
            Knob::BYPASS => set(&setter, &p.bypass, v >= 0.5),
            Knob::AUDIO_TEMPERATURE => set(&setter, &p.audio_temperature, v),
            Knob::TEXT_TEMPERATURE => set(&setter, &p.text_temperature, v),
            Knob::TOP_K => set(&setter, &p.top_k, v.round() as i32),
            Knob::CODEBOOK_DEPTH => set(&setter, &p.codebook_depth, v.round() as i32),
            Knob::LEAD_FLOOR_MS => set(&setter, &p.lead_floor_ms, v),
            Knob::LISTEN => set(&setter, &p.listen, v >= 0.5),
            // Reset is a trigger, not a setting a preset holds.
            _ => {}
        }
    }
    true
}

fn set<P: Param>(setter: &ParamSetter, param: &P, value: P::Plain) {
    setter.begin_set_parameter(param);
    setter.set_parameter(param, value);
    setter.end_set_parameter(param);
}

impl NiceEguiApp for EditorApp {
    fn build(
        &mut self,
        _egui_ctx: egui::Context,
        gui: GuiContext,
        _frame: &mut nice_plug_egui::Frame,
    ) -> Result<(), nice_plug_egui::baseview::HandlerError> {
        self.gui = Some(gui);
        self.bridge.set_open(true);
        Ok(())
    }

    fn ui(&mut self, ui: &mut Ui, _frame: &mut nice_plug_egui::Frame) {
        if let Some(gui) = &self.gui {
            apply_param_changes(&self.bridge, &self.params, gui);
        }
        let snap = self.bridge.snapshot();
        match draw(ui, &snap, &mut self.form) {
            Some(Action::Model(r)) => self.bridge.request_model(r),
            Some(Action::Preset(name)) => self.bridge.request_preset(name),
            Some(Action::FixedLatency(on)) => {
                if let Some(gui) = &self.gui {
                    set(&gui.param_setter(), &self.params.fixed_latency, on);
                }
            }
            None => {}
        }
        ui.ctx().request_repaint_after(REDRAW);
    }

    fn editor_closed(&mut self) {
        // The host context belongs to the window that just closed.
        self.gui = None;
        self.bridge.set_open(false);
        self.form = Form::default();
    }
}

/// Draws the whole editor for `s`; returns what the user asked for, if anything.
pub fn draw(ui: &mut Ui, s: &Snapshot, form: &mut Form) -> Option<Action> {
    let mut action = None;
    egui::ScrollArea::vertical().show(ui, |ui| {
        ui.heading("Antiphon");
        status(ui, s);
        ui.separator();
        if let Some(a) = model(ui, s, form) {
            action = Some(a);
        }
        if let Some(a) = preset(ui, s) {
            action = Some(a);
        }
        if let Some(a) = latency_mode(ui, s) {
            action = Some(a);
        }
        ui.separator();
        readouts(ui, s);
        ui.separator();
        ui.label(RichText::new("Time per frame, by stage (bar = 80 ms frame)").strong());
        stage_bars(ui, s);
        ui.separator();
        ui.label(RichText::new("Lead over time").strong());
        lead_graph(ui, s);
    });
    action
}

fn status(ui: &mut Ui, s: &Snapshot) {
    let (word, color) = match s.state {
        ModelState::Inactive => ("Inactive", GREY),
        ModelState::Loading => ("Loading", AMBER),
        ModelState::Ready => ("Ready", GREEN),
        ModelState::Failed => ("Failed", RED),
    };
    ui.horizontal(|ui| {
        ui.label(RichText::new(word).color(color).strong().size(16.0));
        if s.state == ModelState::Loading {
            ui.spinner();
            if let Some(since) = s.state_since {
                ui.label(format!("{:.1} s", since.elapsed().as_secs_f64()));
            }
        }
    });
    if let (ModelState::Loading, Some(p)) = (s.state, s.progress) {
        ui.add(egui::ProgressBar::new(p).show_percentage());
    }
    let text = RichText::new(&s.reason);
    ui.label(if s.state == ModelState::Failed {
        text.color(RED)
    } else {
        text
    });
    if !s.notice.is_empty() {
        ui.label(RichText::new(&s.notice).color(AMBER));
    }
}

fn model(ui: &mut Ui, s: &Snapshot, form: &mut Form) -> Option<Action> {
    if form.synced_model.as_deref() != Some(s.model.as_str()) {
        form.folder = s.model.clone();
        form.synced_model = Some(s.model.clone());
    }
    let mut action = None;
    ui.label(RichText::new("Model").strong());
    ui.label(format!(
        "In use: {}",
        if s.model.is_empty() {
            "built-in (small random-weight model)"
        } else {
            &s.model
        }
    ));
    ui.horizontal(|ui| {
        let field = ui.add(
            egui::TextEdit::singleline(&mut form.folder)
                .hint_text("model folder, e.g. /home/me/models/moshi")
                .desired_width(330.0),
        );
        let entered = field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
        if ui.button("Load folder").clicked() || entered {
            // Keep the path exactly as typed (spaces, non-ASCII); only the
            // surrounding whitespace a paste brings along goes.
            let folder = form.folder.trim();
            if folder.is_empty() {
                form.problem = "Type a model folder first, or choose Built-in.".into();
            } else {
                form.problem.clear();
                action = Some(Action::Model(ModelRequest::Folder(folder.to_string())));
            }
        }
        if ui.button("Built-in").clicked() {
            form.problem.clear();
            action = Some(Action::Model(ModelRequest::Builtin));
        }
    });
    if !form.problem.is_empty() {
        ui.label(RichText::new(&form.problem).color(AMBER));
    }
    action
}

fn preset(ui: &mut Ui, s: &Snapshot) -> Option<Action> {
    let mut action = None;
    ui.horizontal(|ui| {
        ui.label(RichText::new("Preset").strong());
        let shown = if s.preset.is_empty() {
            "(none)"
        } else {
            &s.preset
        };
        egui::ComboBox::from_id_salt("preset")
            .selected_text(shown)
            .show_ui(ui, |ui| {
                for name in &s.presets {
                    if ui.selectable_label(*name == s.preset, name).clicked() {
                        action = Some(Action::Preset(name.clone()));
                    }
                }
            });
        if s.presets.is_empty() {
            ui.label(RichText::new("no presets found").color(GREY));
        }
    });
    action
}

fn latency_mode(ui: &mut Ui, s: &Snapshot) -> Option<Action> {
    let mut fixed = s.fixed_latency_ms.is_some();
    let label = match s.fixed_latency_ms {
        Some(ms) => format!("Fixed latency: {ms:.0} ms reported to the host (frame + lead floor)"),
        None => "Fixed latency (off: adaptive, 0 reported to the host)".to_string(),
    };
    ui.checkbox(&mut fixed, label)
        .changed()
        .then_some(Action::FixedLatency(fixed))
}

fn readouts(ui: &mut Ui, s: &Snapshot) {
    egui::Grid::new("readouts")
        .num_columns(2)
        .spacing([24.0, 4.0])
        .show(ui, |ui| {
            let row = |ui: &mut Ui, name: &str, value: String| {
                ui.label(name);
                ui.label(RichText::new(value).monospace());
                ui.end_row();
            };
            row(
                ui,
                "Latency (p50)",
                match s.fixed_latency_ms {
                    Some(f) if s.late_frames > 0 => format!(
                        "{:.0} ms  (fixed at {f:.0} ms: too short, {} frames late; \
                         raise the lead floor)",
                        s.latency_ms, s.late_frames
                    ),
                    Some(f) => format!("{:.0} ms  (fixed at {f:.0} ms)", s.latency_ms),
                    None => format!("{:.0} ms  (adaptive)", s.latency_ms),
                },
            );
            row(
                ui,
                "Lead / aim",
                format!("{:.0} ms / {:.0} ms", s.lead_ms, s.aim_ms),
            );
            row(ui, "Underruns since activation", s.underruns.to_string());
            row(
                ui,
                "Real-time factor",
                format!(
                    "{:.2}{}",
                    s.rtf,
                    if s.rtf >= 1.0 { "  (too slow)" } else { "" }
                ),
            );
        });
}

fn stage_bars(ui: &mut Ui, s: &Snapshot) {
    if s.stages.is_empty() {
        ui.label(RichText::new("no frames yet").color(GREY));
        return;
    }
    let width = 220.0;
    egui::Grid::new("stages").num_columns(3).show(ui, |ui| {
        for st in &s.stages {
            ui.label(&st.name);
            let (rect, _) = ui.allocate_exact_size(egui::vec2(width, 12.0), Sense::hover());
            let p = ui.painter_at(rect);
            p.rect_filled(rect, 2.0, ui.visuals().extreme_bg_color);
            let x = |ms: f64| rect.left() + (ms / FRAME_MS).clamp(0.0, 1.0) as f32 * width;
            let bar =
                egui::Rect::from_min_max(rect.left_top(), egui::pos2(x(st.p50_ms), rect.bottom()));
            p.rect_filled(bar, 2.0, BLUE);
            let tick = x(st.p99_ms);
            p.line_segment(
                [
                    egui::pos2(tick, rect.top()),
                    egui::pos2(tick, rect.bottom()),
                ],
                Stroke::new(2.0, AMBER),
            );
            ui.label(
                RichText::new(format!("{:5.1} / {:5.1} ms", st.p50_ms, st.p99_ms)).monospace(),
            );
            ui.end_row();
        }
    });
    ui.label(RichText::new("bar: p50, tick: p99").color(GREY).small());
}

fn lead_graph(ui: &mut Ui, s: &Snapshot) {
    let size = egui::vec2(ui.available_width().min(520.0), 120.0);
    let (rect, _) = ui.allocate_exact_size(size, Sense::hover());
    let p = ui.painter_at(rect);
    p.rect_filled(rect, 2.0, ui.visuals().extreme_bg_color);
    let pts = &s.lead_history;
    if pts.len() < 2 {
        p.text(
            rect.center(),
            egui::Align2::CENTER_CENTER,
            "no data yet",
            egui::FontId::proportional(12.0),
            GREY,
        );
        return;
    }
    let (t0, t1) = (pts[0].t_s, pts[pts.len() - 1].t_s.max(pts[0].t_s + 1e-3));
    let top = pts
        .iter()
        .map(|q| q.lead_ms.max(q.aim_ms))
        .fold(10.0, f64::max)
        * 1.1;
    let at = |t: f64, ms: f64| {
        egui::pos2(
            rect.left() + ((t - t0) / (t1 - t0)) as f32 * rect.width(),
            rect.bottom() - (ms.max(0.0) / top) as f32 * rect.height(),
        )
    };
    let aim: Vec<_> = pts.iter().map(|q| at(q.t_s, q.aim_ms)).collect();
    let lead: Vec<_> = pts.iter().map(|q| at(q.t_s, q.lead_ms)).collect();
    p.add(egui::Shape::line(aim, Stroke::new(1.5, AMBER)));
    p.add(egui::Shape::line(lead, Stroke::new(1.5, BLUE)));
    let font = egui::FontId::proportional(11.0);
    p.text(
        rect.left_top() + egui::vec2(4.0, 2.0),
        egui::Align2::LEFT_TOP,
        format!("{top:.0} ms"),
        font.clone(),
        GREY,
    );
    let legend = p.text(
        rect.right_top() + egui::vec2(-4.0, 2.0),
        egui::Align2::RIGHT_TOP,
        "aim",
        font.clone(),
        AMBER,
    );
    p.text(
        legend.left_top() - egui::vec2(8.0, 0.0),
        egui::Align2::RIGHT_TOP,
        "lead",
        font.clone(),
        BLUE,
    );
    p.text(
        rect.left_bottom() + egui::vec2(4.0, -2.0),
        egui::Align2::LEFT_BOTTOM,
        format!("last {:.0} s", t1 - t0),
        font,
        GREY,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui_bridge::{LeadPoint, StageTime};

    /// Runs one headless egui frame of [`draw`] and returns every text it painted.
    fn render(s: &Snapshot, form: &mut Form) -> (String, Option<Action>) {
        let ctx = egui::Context::default();
        let mut action = None;
        let mut out = ctx.run_ui(egui::RawInput::default(), |ui| {
            action = draw(ui, s, form);
        });
        out.textures_delta.clear(); // no renderer here to upload the font atlas
        let mut text = String::new();
        for clipped in std::mem::take(&mut out.shapes) {
            collect_text(&clipped.shape, &mut text);
        }
        (text, action)
    }

    fn collect_text(shape: &egui::Shape, text: &mut String) {
        match shape {
            egui::Shape::Text(t) => {
                text.push_str(t.galley.text());
                text.push('\n');
            }
            egui::Shape::Vec(v) => v.iter().for_each(|s| collect_text(s, text)),
            _ => {}
        }
    }

    fn ready() -> Snapshot {
        Snapshot {
            state: ModelState::Ready,
            reason: "the built-in model is running".into(),
            presets: vec!["conversation".into(), "lofi".into()],
            latency_ms: 47.0,
            lead_ms: 37.0,
            aim_ms: 40.0,
            underruns: 3,
            rtf: 0.12,
            stages: vec![StageTime {
                name: "backbone".into(),
                p50_ms: 0.5,
                p99_ms: 2.5,
            }],
            lead_history: (0..50)
                .map(|i| LeadPoint {
                    t_s: i as f64 * 0.1,
                    lead_ms: 30.0,
                    aim_ms: 40.0,
                })
                .collect(),
            ..Snapshot::default()
        }
    }

    #[test]
    fn shows_the_readouts_the_snapshot_holds() {
        let (text, action) = render(&ready(), &mut Form::default());
        assert_eq!(action, None);
        for want in [
            "Ready",
            "the built-in model is running",
            "47 ms",
            "37 ms / 40 ms",
            "Underruns since activation",
            "0.12",
            "backbone",
            "0.5 /   2.5 ms",
            "last 5 s",
        ] {
            assert!(text.contains(want), "`{want}` missing from:\n{text}");
        }
    }

    #[test]
    fn shows_a_failure_with_its_reason_and_the_folder_in_use() {
        let s = Snapshot {
            state: ModelState::Failed,
            reason: "model directory `/models/my mödel` does not exist. Audio passes through dry."
                .into(),
            model: "/models/my mödel".into(),
            ..Snapshot::default()
        };
        let mut form = Form::default();
        let (text, _) = render(&s, &mut form);
        assert!(text.contains("Failed"), "{text}");
        assert!(
            text.contains("does not exist. Audio passes through dry"),
            "{text}"
        );
        assert!(text.contains("In use: /models/my mödel"), "{text}");
        // The field starts from the folder in use, exactly.
        assert_eq!(form.folder, "/models/my mödel");
    }

    #[test]
    fn loading_shows_progress_where_known() {
        let s = Snapshot {
            state: ModelState::Loading,
            reason: "loading `/m`".into(),
            progress: Some(0.25),
            state_since: Some(std::time::Instant::now()),
            ..Snapshot::default()
        };
        let (text, _) = render(&s, &mut Form::default());
        assert!(text.contains("Loading") && text.contains("25%"), "{text}");
    }

    /// Where a painted text that contains `needle` sits (centre), from one frame's shapes.
    fn find(shapes: &[egui::epaint::ClippedShape], needle: &str) -> Option<egui::Pos2> {
        fn walk(s: &egui::Shape, needle: &str) -> Option<egui::Pos2> {
            match s {
                egui::Shape::Text(t) if t.galley.text().contains(needle) => {
                    Some(t.pos + t.galley.rect.center().to_vec2())
                }
                egui::Shape::Vec(v) => v.iter().find_map(|s| walk(s, needle)),
                _ => None,
            }
        }
        shapes.iter().find_map(|c| walk(&c.shape, needle))
    }

    /// Runs frames of the editor with user input, like a window would.
    struct User {
        ctx: egui::Context,
        form: Form,
        snap: Snapshot,
        shapes: Vec<egui::epaint::ClippedShape>,
    }

    impl User {
        fn new(snap: Snapshot) -> Self {
            let mut u = Self {
                ctx: egui::Context::default(),
                form: Form::default(),
                snap,
                shapes: Vec::new(),
            };
            u.frame(vec![]);
            u
        }

        fn frame(&mut self, events: Vec<egui::Event>) -> Option<Action> {
            let input = egui::RawInput {
                events,
                ..Default::default()
            };
            let mut action = None;
            let mut out = self.ctx.run_ui(input, |ui| {
                action = draw(ui, &self.snap, &mut self.form);
            });
            out.textures_delta.clear();
            self.shapes = out.shapes;
            action
        }

        fn click(&mut self, label: &str) -> Option<Action> {
            let pos = find(&self.shapes, label).unwrap_or_else(|| panic!("no `{label}` drawn"));
            let button = |pressed| egui::Event::PointerButton {
                pos,
                button: egui::PointerButton::Primary,
                pressed,
                modifiers: Default::default(),
            };
            self.frame(vec![egui::Event::PointerMoved(pos), button(true)]);
            let a = self.frame(vec![button(false)]);
            self.frame(vec![]).or(a)
        }
    }

    #[test]
    fn a_typed_folder_with_spaces_and_non_ascii_is_requested_exactly() {
        let mut u = User::new(ready());
        u.click("model folder, e.g.");
        u.frame(vec![egui::Event::Text("  /my models/mödel ü  ".into())]);
        assert_eq!(
            u.click("Load folder"),
            Some(Action::Model(ModelRequest::Folder(
                "/my models/mödel ü".into()
            )))
        );
        assert_eq!(
            u.click("Built-in"),
            Some(Action::Model(ModelRequest::Builtin))
        );
    }

    #[test]
    fn the_latency_mode_shows_what_is_reported_and_a_click_switches_it() {
        let mut u = User::new(ready());
        assert!(find(&u.shapes, "0 reported to the host").is_some());
        assert_eq!(u.click("Fixed latency"), Some(Action::FixedLatency(true)));
        let mut fixed = ready();
        fixed.fixed_latency_ms = Some(280.0);
        fixed.late_frames = 3;
        let mut u = User::new(fixed);
        assert!(find(&u.shapes, "Fixed latency: 280 ms reported").is_some());
        assert!(find(&u.shapes, "too short, 3 frames late").is_some());
        assert_eq!(u.click("Fixed latency"), Some(Action::FixedLatency(false)));
    }

    #[test]
    fn loading_an_empty_folder_field_asks_for_one_instead() {
        let mut u = User::new(ready());
        assert_eq!(u.click("Load folder"), None);
        assert!(find(&u.shapes, "Type a model folder first").is_some());
    }

    /// Opening and closing the editor many times keeps nothing alive: every
    /// handle the editor took on the bridge and parameters is given back.
    #[test]
    fn editor_state_created_and_dropped_repeatedly_leaks_nothing() {
        let bridge = UiBridge::new();
        let params = Arc::new(AntiphonParams::default());
        bridge.publish(ready());
        for _ in 0..200 {
            let editor = create(bridge.clone(), params.clone()).unwrap();
            let mut app = EditorApp::new(bridge.clone(), params.clone());
            let ctx = egui::Context::default();
            let mut out = ctx.run_ui(egui::RawInput::default(), |ui| {
                let s = app.bridge.snapshot();
                draw(ui, &s, &mut app.form);
            });
            out.textures_delta.clear();
            app.editor_closed();
            drop((editor, app, ctx));
        }
        assert_eq!(Arc::strong_count(&bridge), 1);
        assert_eq!(Arc::strong_count(&params), 1);
        // The snapshot the editor read is the bridge's own, not a copy kept alive.
        assert_eq!(Arc::strong_count(&bridge.snapshot()), 2);
    }
}
