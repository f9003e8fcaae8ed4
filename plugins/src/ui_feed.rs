//! The adapter between today's generation side ([`crate::engine`]'s
//! [`EngineStatus`] and the framework engine's live status and report, both
//! read-only) and the editor's [`UiBridge`]. It runs on the generation thread,
//! never on the audio thread:
//!
//! * [`UiFeed::publish`] turns status + telemetry into a [`Snapshot`] (10 Hz;
//!   the report, which aggregates histograms, 2 Hz);
//! * [`UiFeed::serve_requests`] takes the editor's model / preset requests and
//!   applies them to the persisted model folder and preset (the generation
//!   thread reloads when the model folder changes);
//! * stream events (underruns, skipped frames, node errors) are logged through
//!   [`StreamLog`], rate-limited.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use antiphon_framework::engine::{Engine as FrameworkEngine, Status as EngineFigures};

use crate::engine::{EngineStatus, Status};
use crate::knob_table::{self, Knob};
use crate::presets;
use crate::ui_bridge::{
    LeadHistory, LeadPoint, ModelRequest, ModelState, Snapshot, StageTime, UiBridge,
};

/// How often live figures and the lead graph are refreshed.
const FIGURES_EVERY: Duration = Duration::from_millis(100);
/// How often the report (stage times, latency, RTF) is re-aggregated.
const REPORT_EVERY: Duration = Duration::from_millis(500);
/// At most one stream-event log line per this interval.
pub const LOG_EVERY: Duration = Duration::from_secs(5);

/// A bridge for a new plugin instance: "inactive", with the presets listed so
/// the menu works before the host starts processing.
pub fn new_bridge() -> Arc<UiBridge> {
    let b = UiBridge::new();
    b.publish(Snapshot {
        presets: presets::names(),
        reason: "waiting for the host to start audio processing".into(),
        ..Snapshot::default()
    });
    b
}

/// Feeds one plugin instance's editor from its generation thread.
pub struct UiFeed {
    bridge: Arc<UiBridge>,
    model_dir: Arc<RwLock<String>>,
    preset: Arc<RwLock<String>>,
    snap: Snapshot,
    history: LeadHistory,
    started: Instant,
    state_since: Instant,
    last_figures: Option<Instant>,
    last_report: Option<Instant>,
    log: StreamLog,
}

impl UiFeed {
    /// `model_dir` and `preset` are the plugin's persisted fields (shared with
    /// its state), which requests change.
    pub fn new(
        bridge: Arc<UiBridge>,
        model_dir: Arc<RwLock<String>>,
        preset: Arc<RwLock<String>>,
    ) -> Self {
        let now = Instant::now();
        Self {
            bridge,
            model_dir,
            preset,
            snap: Snapshot {
                presets: presets::names(),
                ..Snapshot::default()
            },
            history: LeadHistory::default(),
            started: now,
            state_since: now,
            last_figures: None,
            last_report: None,
            log: StreamLog::default(),
        }
    }

    /// Applies the editor's newest model and preset requests, if any.
    pub fn serve_requests(&mut self) {
        if let Some(r) = self.bridge.take_model_request() {
            nice_plug::nice_log!("Antiphon: model change requested: {}", describe(&r));
            set(&self.model_dir, r.as_model_dir());
        }
        if let Some(name) = self.bridge.take_preset_request() {
            match presets::load(&name) {
                Ok(p) => {
                    nice_plug::nice_log!("Antiphon: preset `{}` chosen", p.name);
                    set(&self.preset, &name);
                    if let Some(m) = p.model.as_deref() {
                        set(&self.model_dir, if m == "builtin" { "" } else { m });
                    }
                    let changes = p
                        .knobs
                        .iter()
                        .filter_map(|(id, v)| {
                            let i = knob_table::KNOBS.iter().position(|k| k.id == id)?;
                            Some((Knob(i), *v as f32))
                        })
                        .collect();
                    self.bridge.offer_param_changes(changes);
                    self.snap.notice.clear();
                }
                Err(e) => {
                    nice_plug::nice_error!("Antiphon: {e}");
                    self.snap.notice = e;
                }
            }
            self.snap.preset = current(&self.preset);
            self.bridge.publish(self.snap.clone());
        }
    }

    /// Publishes a snapshot if one is due (or the status changed). `engine` is
    /// the running framework engine, if any; `model` the choice in use.
    pub fn publish(
        &mut self,
        status: &EngineStatus,
        engine: Option<&FrameworkEngine>,
        model: &str,
    ) {
        let now = Instant::now();
        let state = match status.status() {
            Status::Loading => ModelState::Loading,
            Status::Ready => ModelState::Ready,
            Status::Failed => ModelState::Failed,
        };
        let changed = state != self.snap.state || model != self.snap.model;
        if changed {
            self.state_since = now;
            if model != self.snap.model {
                self.clear_figures();
            }
        }
        let due = |last: Option<Instant>, every| last.is_none_or(|t| now - t >= every);
        if !changed && !due(self.last_figures, FIGURES_EVERY) {
            return;
        }
        self.last_figures = Some(now);
        self.snap.state = state;
        self.snap.reason = user_reason(state, &status.reason(), model);
        self.snap.state_since = Some(self.state_since);
        self.snap.model = model.to_string();
        self.snap.preset = current(&self.preset);
        let Some(e) = engine else {
            // No stream (loading or failed): no figures to show, none stale.
            self.clear_figures();
            self.bridge.publish(self.snap.clone());
            return;
        };
        {
            let f = e.status();
            self.apply_figures(&f, now);
            if let Some(line) = self.log.observe(&f, now) {
                nice_plug::nice_warn!("Antiphon: {line}");
            }
            if changed || due(self.last_report, REPORT_EVERY) {
                self.last_report = Some(now);
                let r = e.report();
                self.snap.latency_ms = r.latency_ms.p50;
                self.snap.rtf = r.rtf;
                self.snap.stages = r
                    .stages_ms
                    .iter()
                    .map(|(name, p)| StageTime {
                        name: name.clone(),
                        p50_ms: p.p50,
                        p99_ms: p.p99,
                    })
                    .collect();
            }
        }
        self.bridge.publish(self.snap.clone());
    }

    fn clear_figures(&mut self) {
        let s = &mut self.snap;
        (s.latency_ms, s.lead_ms, s.aim_ms, s.rtf, s.underruns) = (0.0, 0.0, 0.0, 0.0, 0);
        s.stages.clear();
        s.lead_history.clear();
        self.history.clear();
    }

    fn apply_figures(&mut self, f: &EngineFigures, now: Instant) {
        self.snap.lead_ms = f.lead_ms;
        // The controller's target budget: the lead the controller aims for.
        self.snap.aim_ms = f.target_ms;
        self.snap.underruns = f.underruns;
        if f.frames > 0 {
            self.history.push(LeadPoint {
                t_s: (now - self.started).as_secs_f64(),
                lead_ms: f.lead_ms,
                aim_ms: f.target_ms,
            });
        }
        self.snap.lead_history = self.history.to_vec();
    }

    /// Called when the stream stops (deactivation): the editor shows "inactive".
    pub fn stopped(&mut self) {
        self.snap.state = ModelState::Inactive;
        self.snap.reason = "audio processing is stopped (the host deactivated the plugin)".into();
        self.bridge.publish(self.snap.clone());
    }
}

fn describe(r: &ModelRequest) -> String {
    match r {
        ModelRequest::Builtin => "built-in".into(),
        ModelRequest::Folder(f) => format!("`{f}`"),
    }
}

fn set(cell: &RwLock<String>, v: &str) {
    if let Ok(mut s) = cell.write() {
        if *s != v {
            *s = v.to_string();
        }
    }
}

fn current(cell: &RwLock<String>) -> String {
    cell.read().map(|s| s.clone()).unwrap_or_default()
}

/// The status line a user reads: the loader's reason plus what to do about it.
fn user_reason(state: ModelState, reason: &str, model: &str) -> String {
    let name = if model.is_empty() {
        "the built-in model".to_string()
    } else {
        format!("`{model}`")
    };
    match state {
        ModelState::Inactive => "audio processing is stopped".into(),
        ModelState::Loading => {
            format!("loading {name}; audio passes through dry until it is ready")
        }
        ModelState::Ready => format!("{name} is running"),
        ModelState::Failed => {
            format!("{reason}. Audio passes through dry. Choose another model folder, or Built-in.")
        }
    }
}

/// Turns the engine's counters into log lines about stream events — underruns
/// (gap fill), skipped frames — at most one line per [`LOG_EVERY`], summing
/// what happened since the last line, so a bad minute cannot flood the log.
#[derive(Debug, Default)]
pub struct StreamLog {
    logged_underruns: u64,
    logged_skipped: u64,
    last: Option<Instant>,
}

impl StreamLog {
    /// A line to log now, if anything new happened and the last line is old enough.
    pub fn observe(&mut self, f: &EngineFigures, now: Instant) -> Option<String> {
        // A reset or a new engine starts its counters again.
        if f.underruns < self.logged_underruns || f.skipped < self.logged_skipped {
            self.logged_underruns = 0;
            self.logged_skipped = 0;
        }
        let underruns = f.underruns - self.logged_underruns;
        let skipped = f.skipped - self.logged_skipped;
        if underruns == 0 && skipped == 0 {
            return None;
        }
        if self.last.is_some_and(|t| now - t < LOG_EVERY) {
            return None;
        }
        self.last = Some(now);
        self.logged_underruns = f.underruns;
        self.logged_skipped = f.skipped;
        Some(format!(
            "stream: {underruns} underrun callback(s) gap-filled, {skipped} frame(s) skipped \
             (lead {:.0} ms, aim {:.0} ms, ITL p99 {:.0} ms)",
            f.lead_ms, f.target_ms, f.itl_p99_ms
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(underruns: u64, skipped: u64) -> EngineFigures {
        EngineFigures {
            underruns,
            skipped,
            ..Default::default()
        }
    }

    #[test]
    fn stream_events_are_logged_at_most_once_per_interval_and_summed() {
        let mut log = StreamLog::default();
        let t0 = Instant::now();
        assert_eq!(log.observe(&figures(0, 0), t0), None);
        let first = log.observe(&figures(3, 0), t0).unwrap();
        assert!(first.contains("3 underrun"), "{first}");
        // A burst inside the interval: nothing logged...
        for i in 1..100u64 {
            let t = t0 + Duration::from_millis(40 * i);
            assert_eq!(log.observe(&figures(3 + i, i), t), None);
        }
        // ...then one line that sums it.
        let line = log.observe(&figures(102, 99), t0 + LOG_EVERY).unwrap();
        assert!(
            line.contains("99 underrun") && line.contains("99 frame"),
            "{line}"
        );
        // Quiet stream: no line.
        assert_eq!(log.observe(&figures(102, 99), t0 + LOG_EVERY * 3), None);
    }

    /// The whole path on a real engine: the snapshot carries the engine's own
    /// figures, and a model chosen through the bridge is loaded (or fails with
    /// the folder named) while the audio side keeps being served.
    #[test]
    fn the_snapshot_follows_a_real_stream_and_model_requests() {
        use crate::engine::{Engine, ModelChoice};
        let bridge = new_bridge();
        let dir = Arc::new(RwLock::new(String::new()));
        let feed = UiFeed::new(bridge.clone(), dir.clone(), Default::default());
        let (mut audio, _engine) = Engine::start(
            48_000.0,
            ModelChoice(dir.clone()),
            knob_table::new_bus(),
            feed,
        )
        .unwrap();
        let (mut l, mut r) = (vec![0.0f32; 480], vec![0.0f32; 480]);
        let mut slowest = Duration::ZERO;
        // Runs ~10 ms blocks (in real time) until `done` holds for the snapshot.
        let mut run_until = |what: &str, done: &dyn Fn(&Snapshot) -> bool| {
            for i in 0..1500 {
                for (k, x) in l.iter_mut().enumerate() {
                    *x = 0.1 * ((i * 480 + k) as f32 * 0.02).sin();
                }
                r.copy_from_slice(&l);
                let t = Instant::now();
                audio.process(&mut [&mut l[..], &mut r[..]], &[]);
                slowest = slowest.max(t.elapsed());
                if done(&bridge.snapshot()) {
                    return bridge.snapshot();
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            panic!("never saw {what}: {:?}", bridge.snapshot());
        };
        let s = run_until("figures", &|s| {
            s.state == ModelState::Ready && s.lead_history.len() >= 5 && !s.stages.is_empty()
        });
        assert_eq!(s.model, "");
        assert!(
            s.reason.contains("built-in model is running"),
            "{}",
            s.reason
        );
        assert!(
            s.stages
                .iter()
                .any(|st| st.name == "backbone" && st.p50_ms > 0.0),
            "{s:?}"
        );
        assert!(s.rtf > 0.0 && s.rtf < 5.0, "rtf {}", s.rtf);
        assert!(s.lead_history.windows(2).all(|w| w[0].t_s < w[1].t_s));

        let missing = "/no/such folder/mödel";
        bridge.request_model(ModelRequest::Folder(missing.into()));
        let s = run_until("the failure", &|s| s.state == ModelState::Failed);
        assert_eq!(s.model, missing);
        assert!(
            s.stages.is_empty() && s.lead_history.is_empty() && s.lead_ms == 0.0,
            "stale: {s:?}"
        );
        assert!(
            s.reason.contains(missing) && s.reason.contains("Choose another model folder"),
            "{}",
            s.reason
        );
        bridge.request_model(ModelRequest::Builtin);
        run_until("ready again", &|s| {
            s.state == ModelState::Ready && s.model.is_empty()
        });
        // Loose sanity bound: model changes never made the audio side wait.
        assert!(
            slowest < Duration::from_millis(20),
            "slowest block {slowest:?}"
        );
    }

    #[test]
    fn requests_change_the_persisted_model_and_preset_and_offer_knob_values() {
        let bridge = UiBridge::new();
        let dir = Arc::new(RwLock::new(String::from("/old")));
        let preset = Arc::new(RwLock::new(String::new()));
        let mut feed = UiFeed::new(bridge.clone(), dir.clone(), preset.clone());
        assert!(feed.snap.presets.contains(&"lofi".to_string()));

        bridge.request_model(ModelRequest::Folder("/mödel with spaces".into()));
        feed.serve_requests();
        assert_eq!(*dir.read().unwrap(), "/mödel with spaces");

        bridge.request_preset("lofi".into());
        feed.serve_requests();
        assert_eq!(*preset.read().unwrap(), "lofi");
        assert_eq!(
            *dir.read().unwrap(),
            "",
            "the preset names the built-in model"
        );
        let changes = bridge.take_param_changes().unwrap();
        assert!(
            changes.contains(&(Knob::CODEBOOK_DEPTH, 2.0)),
            "{changes:?}"
        );
        assert!(changes.contains(&(Knob::MIX, 0.8)), "{changes:?}");

        bridge.request_preset("no-such-preset".into());
        feed.serve_requests();
        assert_eq!(
            *preset.read().unwrap(),
            "lofi",
            "a bad choice changes nothing"
        );
        assert!(bridge.snapshot().notice.contains("not found"));
        assert!(bridge.take_param_changes().is_none());
    }
}
