//! The session core: everything a front end (the plugin, the `antiphon` host)
//! needs to turn an audio endpoint into a conversation with a model.
//!
//! A [`Session`] owns the generation side of one endpoint and a control thread
//! that:
//!
//! * loads the chosen model in the background through the process-wide
//!   [`ModelCache`] (a load never holds a lock; a load nobody wants any more is
//!   cancelled, or finishes in the background and is dropped);
//! * builds the family's graph at the device rate and runs it on the
//!   framework [`Engine`], moving the endpoint's generation side from engine to
//!   engine when the model changes ([`Engine::stop_into_io`]);
//! * owns the knob bus, applies presets (knob values and model), resets the
//!   stream on request, restarts it after a generation failure;
//! * reports status ([`State`]: loading / ready / failed, with a reason a user
//!   can act on) and the engine's live figures and report.
//!
//! No method a host thread calls waits for a load or for generation: model
//! changes, resets and dropping the session only signal the control thread.
//! [`Session::state`] and [`Session::request_reset`] are single atomics, safe
//! on the audio thread. The front end keeps the endpoint's [`AudioSide`].

pub mod model;
pub mod output;
pub mod presets;
mod status;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

use antiphon_framework::clock::WallClock;
use antiphon_framework::endpoint::{endpoint, output_knobs, EndpointConfig, EndpointStats};
use antiphon_framework::engine::{Engine, EngineConfig, RunMode, Status as EngineStatus};
use antiphon_framework::graph::Graph;
use antiphon_framework::knobs::{KnobBus, KnobSpec};
use antiphon_framework::lead::LeadSettings;
use antiphon_framework::node::Node;
use antiphon_framework::report::Report;
use antiphon_framework::{AudioSide, GenSide, OutputEvent, OutputParam};

use crate::bundle::ModelBundle;

pub use model::{
    default_loader, load_model, load_model_with, Cancel, LoadFn, ModelCache, ModelChoice,
};
pub use output::mix_offline;
pub use presets::{FoundPreset, Presets};
pub use status::{State, Status};

/// How often the control thread looks at requests while idle: well under a
/// frame, so a model change, reset or stop is picked up at once.
const TICK: Duration = Duration::from_millis(5);
/// After a generation failure, the stream is restarted at most this often.
const RETRY_EVERY: Duration = Duration::from_secs(1);

/// Wraps a stage's node as the graph is built (`(stage name, node)`), e.g. to
/// inject stalls in benchmarks.
pub type WrapFn = Arc<dyn Fn(&str, Box<dyn Node>) -> Box<dyn Node> + Send + Sync>;

/// Severity of a [`LogFn`] message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Info,
    Error,
}

/// Receives the session's log lines (status changes, load failures, generation
/// errors). Called from the control thread, never from the audio thread.
pub type LogFn = Arc<dyn Fn(Level, &str) + Send + Sync>;

/// Every knob a session's bus carries: the output stage (audio thread), the
/// model's knobs with codebook depth up to `max_depth`, and the lead's.
pub fn knob_specs(max_depth: usize) -> Vec<KnobSpec> {
    let mut v = output_knobs();
    v.extend(crate::knobs::all(max_depth));
    v.extend(LeadSettings::knobs());
    v
}

/// The family's graph for `bundle` at `device_rate`, each node passed through `wrap`.
pub fn build_graph(
    bundle: &ModelBundle,
    device_rate: f64,
    seed: u64,
    wrap: Option<&WrapFn>,
) -> Result<Graph, String> {
    bundle
        .graph_with(device_rate, seed, |name, node| match wrap {
            Some(w) => w(name, node),
            None => node,
        })
        .map_err(|e| format!("cannot build the graph at {device_rate} Hz: {e}"))
}

/// Sets a preset's knob values on `bus`, stamped at audio-clock sample `stamp`.
pub fn apply_knobs(bus: &KnobBus, preset: &FoundPreset, stamp: u64) -> Result<(), String> {
    for (id, v) in &preset.preset.knobs {
        bus.set_by_id(id, *v as f32, stamp)
            .map_err(|e| format!("preset {}: {e}", preset.source))?;
    }
    Ok(())
}

/// The output stage's rule while no model generates: the audio thread passes
/// the input through dry (bypass, crossfaded by the endpoint) unless the
/// session is [`State::Ready`] — while loading, after a failure, during a
/// model change. Realtime-safe.
#[derive(Debug, Default)]
pub struct DryUntilReady {
    sent: Option<bool>,
}

impl DryUntilReady {
    /// The bypass event to send with this block, if the rule's outcome changed.
    #[inline]
    pub fn event(&mut self, ready: bool, user_bypass: bool) -> Option<OutputEvent> {
        let bypass = user_bypass || !ready;
        if self.sent == Some(bypass) {
            return None;
        }
        self.sent = Some(bypass);
        Some(OutputEvent {
            offset: 0,
            param: OutputParam::Bypass,
            value: if bypass { 1.0 } else { 0.0 },
        })
    }

    /// Forget what was sent (a fresh endpoint).
    pub fn reset(&mut self) {
        self.sent = None;
    }
}

/// Channels whose dry path a fixed output delay also delays (mono and stereo
/// front ends; further channels pass through undelayed).
pub const DRY_DELAY_CHANNELS: usize = 2;

/// The endpoint for `cfg`: with a fixed output delay, the dry path is delayed
/// by the same amount, so dry and wet stay aligned (a plugin's fixed latency).
fn endpoint_config(cfg: &SessionConfig) -> EndpointConfig {
    let mut e = EndpointConfig::new(cfg.sample_rate);
    if let Some(d) = cfg.engine.fixed_delay_samples {
        e.dry_delay_samples = match cfg.engine.mode {
            RunMode::Offline => cfg.engine.offline_delay_samples(e.rate()),
            RunMode::Realtime => d as usize,
        };
        e.dry_delay_channels = DRY_DELAY_CHANNELS;
    }
    e
}

/// What a session runs and how.
#[derive(Clone)]
pub struct SessionConfig {
    /// Device sample rate (the endpoint's and the graph's).
    pub sample_rate: f64,
    /// The model to load first.
    pub model: ModelChoice,
    /// Engine settings (workers, realtime or offline, trace, warm-up).
    pub engine: EngineConfig,
    /// Sampling seed.
    pub seed: u64,
    /// The knob bus's knobs (see [`knob_specs`]).
    pub knobs: Vec<KnobSpec>,
    /// How models are loaded (tests inject slow or failing loaders).
    pub loader: LoadFn,
    /// Wraps the graph's nodes (stall injection); `None` for the plain graph.
    pub wrap: Option<WrapFn>,
    /// The endpoint starts passing the input through (no model yet). Off for
    /// an offline render that waits for the model before its first block, so
    /// its output starts with the engine's silent delay, not a crossfade.
    pub start_dry: bool,
    pub log: Option<LogFn>,
    /// A model choice stored elsewhere (a plugin's saved state) that the
    /// session follows: read every tick, and a change switches models.
    pub follow: Option<FollowFn>,
}

/// Reads a model choice kept outside the session (see [`SessionConfig::follow`]).
pub type FollowFn = Arc<dyn Fn() -> ModelChoice + Send + Sync>;

impl SessionConfig {
    /// The built-in model at `sample_rate`, default engine settings, every knob.
    pub fn new(sample_rate: f64) -> Self {
        Self {
            sample_rate,
            model: ModelChoice::Builtin,
            engine: EngineConfig::default(),
            seed: 0,
            knobs: knob_specs(8),
            loader: default_loader(),
            wrap: None,
            start_dry: true,
            log: None,
            follow: None,
        }
    }
}

/// State shared between the session handle and its control thread.
struct Shared {
    status: status::StatusCell,
    want: Mutex<ModelChoice>,
    want_version: AtomicU64,
    reset: AtomicBool,
    stop: AtomicBool,
    /// The running engine, if any. Readers clone the `Arc` and let go of the
    /// lock at once, so nobody waits behind an engine call.
    engine: Mutex<Option<Arc<Engine>>>,
    /// The report of the last engine that stopped (model change).
    last_report: Mutex<Option<Report>>,
    /// The running model's fixed delay in samples ([`NO_FIXED_DELAY`]: none).
    fixed_delay: AtomicU64,
}

/// [`Shared::fixed_delay`] when the running model's delay is not fixed.
const NO_FIXED_DELAY: u64 = u64::MAX;

impl Shared {
    fn engine(&self) -> Option<Arc<Engine>> {
        self.engine
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// A running session. See the module docs. Dropping it returns at once; the
/// control thread stops generation in the background.
pub struct Session {
    shared: Arc<Shared>,
    knobs: Arc<KnobBus>,
    stats: Arc<EndpointStats>,
    control: Thread,
    handle: Option<JoinHandle<Option<Report>>>,
}

impl Session {
    /// Creates the endpoint for `cfg.sample_rate` and starts the session on its
    /// generation side; the caller's audio thread owns the returned [`AudioSide`].
    /// Allocates and spawns: call it from activation, never from the audio thread.
    pub fn start(cfg: SessionConfig) -> Result<(AudioSide, Session), String> {
        let knobs = KnobBus::new(cfg.knobs.clone()).map_err(|e| format!("knobs: {e}"))?;
        let (mut audio, gen) = endpoint(&endpoint_config(&cfg));
        if cfg.start_dry {
            // Start dry, not fading in from silence: there is no model yet
            // (see [`DryUntilReady`]).
            audio.set_param(OutputParam::Bypass, 1.0);
            audio.reset();
        }
        let shared = Arc::new(Shared {
            status: status::StatusCell::new(cfg.model.to_string()),
            want: Mutex::new(cfg.model.clone()),
            want_version: AtomicU64::new(1),
            reset: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            engine: Mutex::new(None),
            last_report: Mutex::new(None),
            fixed_delay: AtomicU64::new(NO_FIXED_DELAY),
        });
        let handle = {
            let (shared, knobs) = (shared.clone(), knobs.clone());
            std::thread::Builder::new()
                .name("antiphon-session".into())
                .spawn(move || Control::new(shared, gen, cfg, knobs).run())
                .map_err(|e| format!("cannot start the session thread: {e}"))?
        };
        let session = Session {
            shared,
            knobs,
            stats: audio.stats().clone(),
            control: handle.thread().clone(),
            handle: Some(handle),
        };
        Ok((audio, session))
    }

    /// The knob bus generation reads (front ends write knob changes here).
    pub fn knobs(&self) -> &Arc<KnobBus> {
        &self.knobs
    }

    /// Loading / ready / failed. One atomic load: safe on the audio thread.
    #[inline]
    pub fn state(&self) -> State {
        self.shared.status.state()
    }

    /// The delay, in samples at the session's rate, that the running model's
    /// output has against its input when it is fixed (an effect such as the
    /// codec, rendering offline): what a plugin reports to the host for delay
    /// compensation. `None` while no model runs or when the delay adapts.
    /// One atomic load: safe on the audio thread.
    #[inline]
    pub fn fixed_delay_samples(&self) -> Option<usize> {
        if self.state() != State::Ready {
            return None;
        }
        match self.shared.fixed_delay.load(Ordering::Acquire) {
            NO_FIXED_DELAY => None,
            d => Some(d as usize),
        }
    }

    /// Status with the model and the reason (not for the audio thread).
    pub fn status(&self) -> Status {
        self.shared.status.get()
    }

    /// The model asked for last.
    pub fn model(&self) -> ModelChoice {
        self.shared
            .want
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Switches to another model. Returns at once: the old engine stops and the
    /// new model loads on the session's threads (audio is dry meanwhile). A
    /// load still running for an earlier choice is cancelled or dropped.
    pub fn set_model(&self, choice: ModelChoice) {
        let mut w = self.shared.want.lock().unwrap_or_else(|e| e.into_inner());
        *w = choice;
        self.shared.want_version.fetch_add(1, Ordering::AcqRel);
        drop(w);
        self.control.unpark();
    }

    /// Applies a preset: its knob values now, its model (if it names one that
    /// differs from the current choice) in the background.
    pub fn apply_preset(&self, preset: &FoundPreset) -> Result<(), String> {
        apply_knobs(&self.knobs, preset, self.stats.clock())?;
        match &preset.model {
            Some(m) if *m != self.model() => self.set_model(m.clone()),
            _ => {}
        }
        Ok(())
    }

    /// Asks generation to restart the stream (conversation history, frames in
    /// flight). One atomic store: safe on the audio thread.
    #[inline]
    pub fn request_reset(&self) {
        self.shared.reset.store(true, Ordering::Release);
    }

    /// Waits (bounded) until the model is ready or has failed; returns the state.
    /// Blocks the caller: for offline renders and command-line hosts only.
    pub fn wait_ready(&self, timeout: Duration) -> State {
        let t0 = Instant::now();
        loop {
            let s = self.state();
            if s != State::Loading || t0.elapsed() >= timeout {
                return s;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// The engine's live figures (lead, target, underruns…), while one runs.
    pub fn engine_status(&self) -> Option<EngineStatus> {
        self.shared.engine().map(|e| e.status())
    }

    /// The report so far: the running engine's, else the last stopped one's.
    pub fn report(&self) -> Option<Report> {
        match self.shared.engine() {
            Some(e) => Some(e.report()),
            None => self
                .shared
                .last_report
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }

    /// The trace so far (Chrome trace-event JSON), if tracing is on and an engine runs.
    pub fn trace_json(&self) -> Option<String> {
        self.shared.engine().and_then(|e| e.trace_json())
    }

    /// Generation errors of the running engine.
    pub fn errors(&self) -> Vec<String> {
        self.shared.engine().map(|e| e.errors()).unwrap_or_default()
    }

    /// Stops generation and waits for it; returns the final report (for
    /// command-line hosts; plugins just drop the session).
    pub fn stop(mut self) -> Option<Report> {
        self.signal_stop();
        self.handle.take().and_then(|h| h.join().ok()).flatten()
    }

    fn signal_stop(&self) {
        self.shared.stop.store(true, Ordering::Release);
        self.control.unpark();
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Never join here: the caller may be a host's main thread, and a load
        // or a stage in progress must not hold it up.
        self.signal_stop();
    }
}

/// The control thread's state.
struct Control {
    shared: Arc<Shared>,
    cfg: SessionConfig,
    knobs: Arc<KnobBus>,
    rate: f64,
    /// The endpoint's generation side while no engine holds it.
    io: Option<GenSide>,
    seen_version: u64,
    choice: ModelChoice,
    loading: Option<(Receiver<Result<Arc<ModelBundle>, String>>, Cancel)>,
    /// Since when generation has failed, and how many frames it had written at
    /// the last retry (it has recovered once it writes more).
    failed_since: Option<(Instant, u64)>,
    /// The last value read through [`SessionConfig::follow`].
    followed: Option<ModelChoice>,
    /// The model the running engine was built from (for restarts).
    bundle: Option<Arc<ModelBundle>>,
}

impl Control {
    fn new(shared: Arc<Shared>, gen: GenSide, cfg: SessionConfig, knobs: Arc<KnobBus>) -> Self {
        Self {
            rate: gen.sample_rate(),
            io: Some(gen),
            seen_version: 0,
            choice: cfg.model.clone(),
            shared,
            cfg,
            knobs,
            loading: None,
            failed_since: None,
            followed: None,
            bundle: None,
        }
    }

    fn log(&self, level: Level, msg: &str) {
        if let Some(l) = &self.cfg.log {
            l(level, msg);
        }
    }

    fn set_status(&self, state: State, reason: String) {
        let model = self.choice.to_string();
        match state {
            State::Failed => self.log(
                Level::Error,
                &format!("model `{model}` failed: {reason}; passing audio through dry"),
            ),
            _ => self.log(Level::Info, &format!("model `{model}`: {reason}")),
        }
        self.shared.status.set(state, &model, reason);
    }

    fn run(mut self) -> Option<Report> {
        let mut sink = vec![0.0f32; 4096];
        while !self.shared.stop.load(Ordering::Acquire) {
            self.follow_choice();
            self.poll_load();
            if self.shared.reset.swap(false, Ordering::AcqRel) {
                self.restart();
            }
            match self.shared.engine() {
                Some(engine) => self.watch(&engine),
                None => {
                    // Nothing generates: keep the knob snapshot fresh and the
                    // input ring from filling with stale audio.
                    self.knobs.publish();
                    if let Some(g) = self.io.as_mut() {
                        while g.read_input(&mut sink) > 0 {}
                    }
                }
            }
            std::thread::park_timeout(TICK);
        }
        if let Some((_, c)) = self.loading.take() {
            c.cancel();
        }
        self.stop_engine()
    }

    /// Starts loading a newly chosen model (stopping the current engine first).
    fn follow_choice(&mut self) {
        if let Some(f) = &self.cfg.follow {
            let now = f();
            if self.followed.as_ref() != Some(&now) {
                // The first read only records: the session started on cfg.model.
                let changed = self.followed.is_some();
                self.followed = Some(now.clone());
                if changed {
                    *self.shared.want.lock().unwrap_or_else(|e| e.into_inner()) = now;
                    self.shared.want_version.fetch_add(1, Ordering::AcqRel);
                }
            }
        }
        let v = self.shared.want_version.load(Ordering::Acquire);
        if v == self.seen_version {
            return;
        }
        self.seen_version = v;
        self.choice = self
            .shared
            .want
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        self.stop_engine();
        if let Some((_, c)) = self.loading.take() {
            c.cancel();
        }
        self.set_status(State::Loading, format!("loading model `{}`", self.choice));
        if let Some(bundle) = ModelCache::global().get(&self.choice) {
            self.start_engine(bundle);
            return;
        }
        let (tx, rx) = mpsc::channel();
        let cancel = Cancel::default();
        let (choice, loader, c2) = (self.choice.clone(), self.cfg.loader.clone(), cancel.clone());
        // A detached thread: nobody ever waits for a load. Its result goes into
        // the cache (useful if the model is chosen again) and, if the session
        // still wants it, through the channel.
        let spawned = std::thread::Builder::new()
            .name("antiphon-model-load".into())
            .spawn(move || {
                let r =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| loader(&choice, &c2)))
                        .unwrap_or_else(|_| {
                            Err("the model loader crashed (panicked); see the log".into())
                        })
                        .map(|b| {
                            let b = Arc::new(b);
                            if !c2.is_cancelled() {
                                ModelCache::global().insert(&choice, &b);
                            }
                            b
                        });
                let _ = tx.send(r);
            });
        match spawned {
            Ok(_) => self.loading = Some((rx, cancel)),
            Err(e) => self.set_status(State::Failed, format!("cannot start loading: {e}")),
        }
    }

    fn poll_load(&mut self) {
        let Some((rx, _)) = &self.loading else { return };
        let result = match rx.try_recv() {
            Err(TryRecvError::Empty) => return,
            Ok(r) => r,
            Err(TryRecvError::Disconnected) => {
                Err("the model loader stopped without a result".into())
            }
        };
        self.loading = None;
        match result {
            Ok(bundle) => self.start_engine(bundle),
            Err(why) => self.set_status(State::Failed, why),
        }
    }

    fn start_engine(&mut self, bundle: Arc<ModelBundle>) {
        let graph = match build_graph(&bundle, self.rate, self.cfg.seed, self.cfg.wrap.as_ref()) {
            Ok(g) => g,
            Err(why) => return self.set_status(State::Failed, why),
        };
        let Some(io) = self.io.take() else {
            return self.set_status(State::Failed, "internal error: the endpoint is gone".into());
        };
        // The family paces generation (input-paced speech, free-running TTS).
        let engine_cfg = EngineConfig {
            pacing: bundle.family.pacing().engine(),
            ..self.cfg.engine.clone()
        };
        self.shared.fixed_delay.store(
            bundle
                .fixed_delay_samples(self.rate, &engine_cfg)
                .map_or(NO_FIXED_DELAY, |d| d as u64),
            Ordering::Release,
        );
        let engine = Engine::start(graph, io, engine_cfg, self.knobs.clone(), WallClock::new());
        *self.shared.engine.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(engine));
        self.bundle = Some(bundle);
        self.failed_since = None;
        self.set_status(State::Ready, format!("model `{}` running", self.choice));
    }

    /// Takes the engine out of the shared slot, stops it and keeps its endpoint
    /// side and report.
    fn stop_engine(&mut self) -> Option<Report> {
        let mut engine = self
            .shared
            .engine
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()?;
        // Readers hold a clone only for the length of one call.
        let engine = loop {
            match Arc::try_unwrap(engine) {
                Ok(e) => break e,
                Err(e) => {
                    engine = e;
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        };
        let (report, io) = engine.stop_into_io();
        self.io = io;
        *self
            .shared
            .last_report
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(report.clone());
        Some(report)
    }

    /// A reset (host reset, the reset knob): a fresh engine on the same model,
    /// starting from the newest input. A new engine rather than
    /// [`Engine::reset`], so nothing learned before the reset (stage speeds
    /// measured under a burst, the lead controller's history) carries over.
    fn restart(&mut self) {
        if let Some(bundle) = self.bundle.clone() {
            if self.stop_engine().is_some() {
                self.start_engine(bundle);
            }
        }
    }

    /// Reports a generation failure and restarts the stream.
    fn watch(&mut self, engine: &Engine) {
        let st = engine.status();
        match (st.failed, self.failed_since) {
            (true, None) => {
                let why = engine.errors().last().cloned().unwrap_or_default();
                self.failed_since = Some((Instant::now(), st.frames));
                self.set_status(
                    State::Failed,
                    format!("generation failed: {why}; restarting the stream"),
                );
            }
            (true, Some((t, _))) if t.elapsed() >= RETRY_EVERY => {
                engine.reset();
                self.failed_since = Some((Instant::now(), engine.status().frames));
            }
            (false, Some((_, frames))) if st.frames > frames => {
                self.failed_since = None;
                self.set_status(
                    State::Ready,
                    format!("model `{}` running again", self.choice),
                );
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;
