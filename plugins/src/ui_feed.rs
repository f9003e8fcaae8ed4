//! Fills one plugin instance's [`UiBridge`] from its session
//! ([`antiphon_nodes::session::Session`]) and serves the editor's requests.
//! It runs on its own thread (one per plugin instance, started when nice-plug
//! builds the instance's editor or at the first activation), never on the
//! audio thread, and never waits for a load:
//!
//! * [`Feed::publish`] turns the session's status, live figures and report
//!   into a [`Snapshot`] (figures at 10 Hz; the report, which aggregates
//!   histograms, at 2 Hz);
//! * [`Feed::serve_requests`] takes the editor's model / preset requests. A
//!   model request changes the persisted model folder, which the session
//!   follows (its non-blocking load); a preset request offers the preset's knob
//!   values to the editor, which sets them through the host, and changes the
//!   model folder if the preset names a model;
//! * stream events (underruns, skipped frames) are logged through
//!   [`StreamLog`], rate-limited.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use antiphon_framework::engine::Status as EngineFigures;
use antiphon_nodes::session::{ModelChoice, Session, State};

use crate::knob_table::{self, Knob};
use crate::params::AntiphonParams;
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

/// The session the feed reads: set at activation, gone when it is dropped.
type SessionSlot = Arc<Mutex<Weak<Session>>>;

/// One plugin instance's feed thread. Dropping the handle stops the thread and
/// waits for it — at most one publish, which never waits for a load — so no
/// code of the plugin runs once the instance is gone (a host may unload the
/// library right after).
pub struct FeedThread {
    slot: SessionSlot,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FeedThread {
    /// Starts the thread for `bridge` and the instance's `params`.
    pub fn start(bridge: Arc<UiBridge>, params: Arc<AntiphonParams>) -> Result<Self, String> {
        let slot: SessionSlot = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let handle = {
            let (slot, stop) = (slot.clone(), stop.clone());
            std::thread::Builder::new()
                .name("antiphon-ui-feed".into())
                .spawn(move || {
                    let mut feed = Feed::new(bridge, params);
                    while !stop.load(Ordering::Acquire) {
                        feed.serve_requests();
                        // Hold the session only for one publish.
                        let session = slot.lock().unwrap_or_else(|e| e.into_inner()).upgrade();
                        feed.publish(session.as_deref());
                        drop(session);
                        std::thread::park_timeout(FIGURES_EVERY);
                    }
                })
                .map_err(|e| format!("cannot start the editor's feed thread: {e}"))?
        };
        Ok(Self {
            slot,
            stop,
            thread: Some(handle),
        })
    }

    /// Follows `session` from now on (an activation).
    pub fn attach(&self, session: &Arc<Session>) {
        *self.slot.lock().unwrap_or_else(|e| e.into_inner()) = Arc::downgrade(session);
        if let Some(t) = &self.thread {
            t.thread().unpark();
        }
    }
}

impl Drop for FeedThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

/// The feed's state (see the module docs).
pub struct Feed {
    bridge: Arc<UiBridge>,
    params: Arc<AntiphonParams>,
    snap: Snapshot,
    history: LeadHistory,
    started: Instant,
    state_since: Instant,
    last_figures: Option<Instant>,
    last_report: Option<Instant>,
    log: StreamLog,
}

impl Feed {
    pub fn new(bridge: Arc<UiBridge>, params: Arc<AntiphonParams>) -> Self {
        let now = Instant::now();
        Self {
            bridge,
            params,
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
            set(&self.params.model_dir, r.as_model_dir());
        }
        if let Some(name) = self.bridge.take_preset_request() {
            match presets::load(&name) {
                Ok(p) => {
                    nice_plug::nice_log!(
                        "Antiphon: preset `{}` chosen ({})",
                        p.preset.name,
                        p.source
                    );
                    set(&self.params.preset, &name);
                    match &p.model {
                        Some(ModelChoice::Builtin) => set(&self.params.model_dir, ""),
                        Some(ModelChoice::Dir(d)) => {
                            set(&self.params.model_dir, &d.to_string_lossy())
                        }
                        None => {}
                    }
                    let changes = p
                        .preset
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
            self.snap.preset = current(&self.params.preset);
            self.bridge.publish(self.snap.clone());
        }
    }

    /// Publishes a snapshot if one is due (or the status changed). `session`
    /// is the running session, if the host is processing.
    pub fn publish(&mut self, session: Option<&Session>) {
        let now = Instant::now();
        let status = session.map(|s| s.status());
        let (state, model, reason) = match &status {
            None => (
                ModelState::Inactive,
                current(&self.params.model_dir),
                "audio processing is stopped (the host has not activated the plugin)".to_string(),
            ),
            Some(st) => {
                let model = if st.model == "builtin" {
                    String::new()
                } else {
                    st.model.clone()
                };
                let state = match st.state {
                    State::Loading => ModelState::Loading,
                    State::Ready => ModelState::Ready,
                    State::Failed => ModelState::Failed,
                };
                let reason = user_reason(state, &st.reason, &model);
                (state, model, reason)
            }
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
        self.snap.reason = reason;
        self.snap.state_since = Some(self.state_since);
        self.snap.model = model;
        self.snap.preset = current(&self.params.preset);
        self.snap.fixed_latency_ms = self.params.fixed_latency.value().then(|| {
            crate::params::FRAME_SECONDS * 1000.0 + self.params.lead_floor_ms.value() as f64
        });
        let figures = session
            .filter(|_| state == ModelState::Ready)
            .and_then(|s| {
                let f = s.engine_status()?;
                Some((s, f))
            });
        let Some((session, f)) = figures else {
            // No stream (inactive, loading or failed): no figures, none stale.
            self.clear_figures();
            self.bridge.publish(self.snap.clone());
            return;
        };
        self.apply_figures(&f, now);
        self.snap.late_frames = f.late_frames;
        if let Some(line) = self.log.observe(&f, now) {
            nice_plug::nice_warn!("Antiphon: {line}");
        }
        if self.bridge.is_open() && (changed || due(self.last_report, REPORT_EVERY)) {
            self.last_report = Some(now);
            if let Some(r) = session.report() {
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
        self.snap.aim_ms = f.aim_ms;
        self.snap.underruns = f.underruns;
        if f.frames > 0 {
            self.history.push(LeadPoint {
                t_s: (now - self.started).as_secs_f64(),
                lead_ms: f.lead_ms,
                aim_ms: f.aim_ms,
            });
        }
        self.snap.lead_history = self.history.to_vec();
    }
}

fn describe(r: &ModelRequest) -> String {
    match r {
        ModelRequest::Builtin => "built-in".into(),
        ModelRequest::Folder(f) => format!("`{f}`"),
    }
}

/// Writes a persisted field from the feed thread (never the audio thread's).
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

/// The status line a user reads: the session's reason plus what to do about it.
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
        // The session's reasons usually say what to do; add it where not.
        ModelState::Failed if reason.to_lowercase().contains("choose") => {
            format!("{reason}. Audio passes through dry.")
        }
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
    logged_late: u64,
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
        if f.late_frames < self.logged_late {
            self.logged_late = 0;
        }
        let underruns = f.underruns - self.logged_underruns;
        let skipped = f.skipped - self.logged_skipped;
        let late = f.late_frames - self.logged_late;
        if underruns == 0 && skipped == 0 && late == 0 {
            return None;
        }
        if self.last.is_some_and(|t| now - t < LOG_EVERY) {
            return None;
        }
        self.last = Some(now);
        self.logged_underruns = f.underruns;
        self.logged_skipped = f.skipped;
        self.logged_late = f.late_frames;
        let late = if late > 0 {
            format!(", {late} frame(s) later than the fixed latency allows (raise the lead floor)")
        } else {
            String::new()
        };
        Some(format!(
            "stream: {underruns} underrun callback(s) gap-filled, {skipped} frame(s) skipped{late} \
             (lead {:.0} ms, aim {:.0} ms, ITL p99 {:.0} ms)",
            f.lead_ms, f.aim_ms, f.itl_p99_ms
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

    /// The whole path on a real session: the snapshot carries the engine's
    /// own figures, and a model chosen through the bridge is loaded (or fails
    /// with the folder named) while the audio side keeps being served.
    #[test]
    fn the_snapshot_follows_a_real_session_and_model_requests() {
        let bridge = new_bridge();
        let params = Arc::new(AntiphonParams::default());
        let cfg = crate::stream::config(48_000.0, &params.model_dir, false);
        let (mut audio, session) = Session::start(cfg).unwrap();
        let session = Arc::new(session);
        let feed = FeedThread::start(bridge.clone(), params.clone()).unwrap();
        bridge.set_open(true); // as the editor does when its window opens
        feed.attach(&session);
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
        assert_eq!(*params.model_dir.read().unwrap(), missing, "persisted");
        assert!(
            s.stages.is_empty() && s.lead_history.is_empty() && s.lead_ms == 0.0,
            "stale: {s:?}"
        );
        assert!(
            s.reason.contains(missing)
                && s.reason.contains("choose an existing model folder")
                && s.reason.matches("hoose").count() == 1,
            "{}",
            s.reason
        );
        bridge.request_model(ModelRequest::Builtin);
        run_until("ready again", &|s| {
            s.state == ModelState::Ready && s.model.is_empty()
        });
        // Deactivation: the editor says so, and shows no stale figures.
        drop(session);
        let s = run_until("inactive", &|s| s.state == ModelState::Inactive);
        assert!(s.stages.is_empty() && s.lead_history.is_empty(), "{s:?}");
        // Loose sanity bound: model changes never made the audio side wait.
        assert!(
            slowest < Duration::from_millis(20),
            "slowest block {slowest:?}"
        );
        // Dropping the handle (the instance going away) waits for the thread,
        // which a stop request ends at once: the host thread is not held up.
        let t = Instant::now();
        drop(feed);
        assert!(t.elapsed() < Duration::from_millis(50), "{:?}", t.elapsed());
    }

    #[test]
    fn requests_change_the_persisted_model_and_preset_and_offer_knob_values() {
        let bridge = UiBridge::new();
        let params = Arc::new(AntiphonParams::default());
        *params.model_dir.write().unwrap() = "/old".into();
        let (dir, preset) = (params.model_dir.clone(), params.preset.clone());
        let mut feed = Feed::new(bridge.clone(), params);
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
