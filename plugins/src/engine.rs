//! Everything on the generation side of the plugin, behind one small interface:
//!
//! ```text
//! Engine::start(sample_rate, model: ModelChoice, knobs: Arc<KnobBus>, feed: UiFeed)
//!     -> Result<(AudioSide, EngineHandle), String>
//! ```
//!
//! The plugin's audio thread owns the returned [`AudioSide`]; the engine owns
//! the matching `GenSide` on its own thread and must:
//!
//! * load the model named by [`ModelChoice`] in the background (and reload when
//!   it changes), reporting progress through [`EngineStatus`] — the audio thread
//!   passes audio through dry until the status is [`Status::Ready`];
//! * call [`KnobBus::publish`] regularly (the audio thread only writes cells) and
//!   read knob values from the snapshot;
//! * honour [`EngineHandle::request_reset`] (host reset / the `reset` knob);
//! * stop promptly when the handle is dropped;
//! * keep the editor's feed ([`UiFeed`]) served and published.
//!
//! Generation is the canonical speech-to-speech graph (`antiphon-nodes`) on
//! the framework's engine (worker pool + adaptive lead controller).

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use antiphon_framework::knobs::KnobBus;
use antiphon_framework::{endpoint, AudioSide, EndpointConfig, GenSide};

use antiphon_framework::clock::WallClock;
use antiphon_framework::engine::{Engine as FrameworkEngine, EngineConfig};
use antiphon_nodes::graph::canonical_graph;
use antiphon_nodes::ModelBundle;

use crate::ui_feed::UiFeed;

/// Length of one model frame (Mimi: 80 ms).
pub const FRAME_SECONDS: f64 = 0.080;
/// How often the worker wakes when idle: well under a frame, so knob changes and
/// stop requests are picked up quickly.
const TICK: Duration = Duration::from_millis(5);

/// Which model to run: the persisted model directory (empty = built-in). Shared
/// with the plugin's state; read only off the audio thread.
#[derive(Clone, Debug, Default)]
pub struct ModelChoice(pub Arc<RwLock<String>>);

impl ModelChoice {
    /// The current choice (`""` = built-in).
    pub fn current(&self) -> String {
        self.0.read().map(|s| s.clone()).unwrap_or_default()
    }
}

/// Model state as the audio thread sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Status {
    Loading = 0,
    Ready = 1,
    Failed = 2,
}

/// Shared engine status: an atomic for the audio thread, a reason string for
/// everyone else.
#[derive(Debug)]
pub struct EngineStatus {
    state: AtomicU8,
    reason: Mutex<String>,
}

impl EngineStatus {
    fn new() -> Self {
        Self {
            state: AtomicU8::new(Status::Loading as u8),
            reason: Mutex::new("loading model".into()),
        }
    }

    /// Current status. Realtime-safe (one atomic load).
    #[inline]
    pub fn status(&self) -> Status {
        match self.state.load(Ordering::Acquire) {
            1 => Status::Ready,
            2 => Status::Failed,
            _ => Status::Loading,
        }
    }

    /// Human-readable reason for the status (not for the audio thread).
    pub fn reason(&self) -> String {
        self.reason.lock().map(|r| r.clone()).unwrap_or_default()
    }

    fn set(&self, s: Status, reason: String) {
        match s {
            Status::Failed => nice_plug::nice_error!(
                "Antiphon: model failed: {reason}; passing audio through dry"
            ),
            _ => nice_plug::nice_log!("Antiphon: model {s:?}: {reason}"),
        }
        if let Ok(mut r) = self.reason.lock() {
            *r = reason;
        }
        self.state.store(s as u8, Ordering::Release);
    }
}

/// The running engine, owned by the plugin off the audio thread (dropping it
/// stops and joins the worker), plus the few things the audio thread may touch.
pub struct EngineHandle {
    status: Arc<EngineStatus>,
    reset: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    worker: Option<JoinHandle<()>>,
}

impl EngineHandle {
    pub fn status(&self) -> &Arc<EngineStatus> {
        &self.status
    }

    /// Asks generation to drop its state (conversation history, queued frames).
    /// Realtime-safe: one atomic store.
    #[inline]
    pub fn request_reset(&self) {
        self.reset.store(true, Ordering::Release);
    }
}

impl Drop for EngineHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

/// Entry point for the generation side (see the module docs).
pub struct Engine;

impl Engine {
    /// Creates the audio endpoint for `sample_rate` and starts generation on a
    /// background thread. Allocates; call it from activation, never from process.
    pub fn start(
        sample_rate: f64,
        model: ModelChoice,
        knobs: Arc<KnobBus>,
        feed: UiFeed,
    ) -> Result<(AudioSide, EngineHandle), String> {
        let (audio, gen) = endpoint(&EndpointConfig::new(sample_rate));
        let status = Arc::new(EngineStatus::new());
        let reset = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let worker = {
            let (status, reset, stop) = (status.clone(), reset.clone(), stop.clone());
            std::thread::Builder::new()
                .name("antiphon-engine".into())
                .spawn(move || run(gen, model, knobs, status, reset, stop, feed))
                .map_err(|e| format!("cannot start the generation thread: {e}"))?
        };
        Ok((
            audio,
            EngineHandle {
                status,
                reset,
                stop,
                worker: Some(worker),
            },
        ))
    }
}

/// The last model loaded in this process. Weights do not depend on the sample
/// rate, so a re-activation (new rate, new block size) reuses them instead of
/// reading gigabytes again; only the graph around them is rebuilt.
static LOADED: Mutex<Option<(String, Arc<ModelBundle>)>> = Mutex::new(None);

/// Loads the chosen model ("" or "builtin" = the built-in tiny model).
fn load(choice: &str) -> Result<Arc<ModelBundle>, String> {
    let mut cache = LOADED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((name, bundle)) = cache.as_ref() {
        if name == choice {
            return Ok(bundle.clone());
        }
    }
    let bundle = if choice.is_empty() || choice == "builtin" {
        ModelBundle::builtin().map_err(|e| e.to_string())?
    } else {
        ModelBundle::load(choice).map_err(|e| e.to_string())?
    };
    let bundle = Arc::new(bundle);
    *cache = Some((choice.to_string(), bundle.clone()));
    Ok(bundle)
}

/// The generation thread: loads the model, runs the canonical graph on the
/// framework engine, and restarts it when the model choice changes.
fn run(
    gen: GenSide,
    model: ModelChoice,
    knobs: Arc<KnobBus>,
    status: Arc<EngineStatus>,
    reset: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    mut feed: UiFeed,
) {
    let rate = gen.sample_rate();
    let mut gen = Some(gen);
    let mut sink = vec![0.0f32; 4096];
    while !stop.load(Ordering::Acquire) {
        let choice = model.current();
        status.set(
            Status::Loading,
            format!(
                "loading `{}`",
                if choice.is_empty() {
                    "builtin"
                } else {
                    &choice
                }
            ),
        );
        feed.publish(&status, None, &choice);
        let graph = load(&choice).and_then(|b| canonical_graph(&b, rate, 0));
        let graph = match graph {
            Ok(g) => g,
            Err(why) => {
                status.set(Status::Failed, why);
                // Wait for another choice; keep the input ring drained meanwhile.
                while !stop.load(Ordering::Acquire) && model.current() == choice {
                    feed.serve_requests();
                    feed.publish(&status, None, &choice);
                    knobs.publish();
                    if let Some(g) = gen.as_mut() {
                        while g.read_input(&mut sink) > 0 {}
                    }
                    std::thread::sleep(TICK);
                }
                continue;
            }
        };
        let Some(io) = gen.take() else { break };
        let cfg = EngineConfig {
            workers: 2,
            ..Default::default()
        };
        let engine = FrameworkEngine::start(graph, io, cfg, knobs.clone(), WallClock::new());
        status.set(
            Status::Ready,
            format!(
                "model `{}` running",
                if choice.is_empty() {
                    "builtin"
                } else {
                    &choice
                }
            ),
        );
        let mut reported = 0;
        while !stop.load(Ordering::Acquire) && model.current() == choice {
            if reset.swap(false, Ordering::AcqRel) {
                engine.reset();
            }
            feed.serve_requests();
            feed.publish(&status, Some(&engine), &choice);
            let errors = engine.errors();
            if errors.len() > reported {
                reported = errors.len();
                nice_plug::nice_error!("Antiphon: {}", errors[errors.len() - 1]);
            }
            std::thread::sleep(TICK);
        }
        gen = engine.stop_into_io().1;
    }
    feed.stopped();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{knob_table, ui_feed};

    #[test]
    fn missing_model_dir_fails_with_a_reason_and_builtin_becomes_ready() {
        let wait = |h: &EngineHandle| {
            for _ in 0..400 {
                if h.status().status() != Status::Loading {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            h.status().status()
        };
        let bad = ModelChoice(Arc::new(RwLock::new("/no/such/model".into())));
        let feed = UiFeed::new(
            ui_feed::new_bridge(),
            Default::default(),
            Default::default(),
        );
        let (_a, h) = Engine::start(48_000.0, bad.clone(), knob_table::new_bus(), feed).unwrap();
        assert_eq!(wait(&h), Status::Failed);
        assert!(h.status().reason().contains("/no/such/model"));
        // Changing the choice reloads without restarting.
        *bad.0.write().unwrap() = String::new();
        for _ in 0..400 {
            if h.status().status() == Status::Ready {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(h.status().status(), Status::Ready);
    }
}
