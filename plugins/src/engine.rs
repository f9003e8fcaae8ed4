//! Everything on the generation side of the plugin, behind one small interface:
//!
//! ```text
//! Engine::start(sample_rate, model: ModelChoice, knobs: Arc<KnobBus>)
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
//! * stop promptly when the handle is dropped.
//!
//! **Stand-in generation.** The real graph (framework issue 3) and the model
//! nodes (issue 4) do not exist yet, so [`run_stand_in`] is a placeholder that
//! is *not* a model: it reads captured input in 80 ms frames and writes back a
//! deterministic transform of it (level scaled by the audio temperature,
//! quantised by the codebook depth, silenced when `listen` is off), keeping the
//! queue at least `lead_floor_ms` deep. It exists so that the plugin, its knobs,
//! its host contract and its realtime safety can be built and tested now; the
//! lead swaps the real graph in here, in this module only.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use antiphon_framework::knobs::KnobBus;
use antiphon_framework::{endpoint, AudioSide, EndpointConfig, GenSide};

use crate::knob_table::Knob;

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
    ) -> Result<(AudioSide, EngineHandle), String> {
        let (audio, gen) = endpoint(&EndpointConfig::new(sample_rate));
        let status = Arc::new(EngineStatus::new());
        let reset = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let worker = {
            let (status, reset, stop) = (status.clone(), reset.clone(), stop.clone());
            std::thread::Builder::new()
                .name("antiphon-engine".into())
                .spawn(move || run_stand_in(gen, model, knobs, status, reset, stop))
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

/// Stand-in "model loading": the built-in choice is always available; a
/// directory must exist. Real loading (bundle validation, weights) replaces this.
fn load_stand_in(choice: &str) -> Result<String, String> {
    if choice.is_empty() || choice == "builtin" {
        return Ok("built-in stand-in generator (not a model; real graph pending)".into());
    }
    let p = Path::new(choice);
    if !p.is_dir() {
        return Err(format!(
            "model directory `{choice}` does not exist or is not a directory"
        ));
    }
    Ok(format!(
        "stand-in generator for `{choice}` (model nodes pending)"
    ))
}

/// The stand-in worker loop. NOT A MODEL — see the module docs.
fn run_stand_in(
    mut gen: GenSide,
    model: ModelChoice,
    knobs: Arc<KnobBus>,
    status: Arc<EngineStatus>,
    reset: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) {
    let rate = gen.sample_rate();
    let frame = ((rate * FRAME_SECONDS).round() as usize).max(1);
    let mut buf = vec![0.0f32; frame];
    let mut silence = vec![0.0f32; frame];
    let mut loaded: Option<String> = None;
    let mut primed = false;
    let mut reset_version = 0u64;

    while !stop.load(Ordering::Acquire) {
        knobs.publish();
        let snap = knobs.snapshot();
        let entry = |k: Knob| snap.entry(k.def().id).copied();
        let value = |k: Knob| entry(k).map_or(k.def().default, |e| e.value);

        // (Re)load when the choice changes; audio stays dry meanwhile.
        let choice = model.current();
        if loaded.as_deref() != Some(choice.as_str()) {
            status.set(Status::Loading, format!("loading `{choice}`"));
            match load_stand_in(&choice) {
                Ok(what) => status.set(Status::Ready, what),
                Err(why) => status.set(Status::Failed, why),
            }
            loaded = Some(choice);
            primed = false;
        }

        let (reset_value, version) = entry(Knob::RESET).map_or((0.0, 0), |e| (e.value, e.version));
        let knob_reset = version != reset_version && reset_value >= 0.5;
        reset_version = version;
        if reset.swap(false, Ordering::AcqRel) || knob_reset {
            // Drop captured input: a new conversation starts from now.
            while gen.read_input(&mut buf) > 0 {}
            primed = false;
        }

        if status.status() != Status::Ready {
            // Nobody listens: discard input so the ring never fills.
            while gen.read_input(&mut buf) > 0 {}
            std::thread::sleep(TICK);
            continue;
        }

        // Hold the queue at least `lead_floor_ms` deep before the first frame.
        let floor = (value(Knob::LEAD_FLOOR_MS) as f64 / 1000.0 * rate) as usize;
        if !primed {
            let mut left = floor.saturating_sub(gen.queued());
            while left > 0 {
                let n = left.min(silence.len());
                let w = gen.write_output(&silence[..n]);
                if w == 0 {
                    break;
                }
                left -= w;
            }
            primed = true;
        }

        if gen.input_available() < frame {
            std::thread::sleep(TICK);
            continue;
        }
        gen.read_input(&mut buf);
        stand_in_transform(
            &mut buf,
            value(Knob::AUDIO_TEMPERATURE),
            value(Knob::CODEBOOK_DEPTH),
            value(Knob::LISTEN) >= 0.5,
        );
        if gen.write_output(&buf) < buf.len() {
            primed = false; // queue was full: start again from the floor
        }
        silence.fill(0.0);
    }
}

/// The stand-in's deterministic "model output" for one frame (not a model):
/// level follows the audio temperature, resolution follows the codebook depth
/// (fewer codebooks → coarser), nothing is heard when `listen` is off.
pub fn stand_in_transform(frame: &mut [f32], temperature: f32, depth: f32, listen: bool) {
    if !listen {
        frame.fill(0.0);
        return;
    }
    let level = 0.5 + 0.25 * temperature;
    let steps = (2.0f32).powf(depth.clamp(1.0, 8.0) + 1.0);
    for x in frame.iter_mut() {
        let y = (*x * level).clamp(-1.0, 1.0);
        *x = (y * steps).round() / steps;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::knob_table;

    #[test]
    fn stand_in_output_reflects_knobs() {
        let mut a = [0.3f32; 4];
        stand_in_transform(&mut a, 0.8, 8.0, true);
        let mut b = [0.3f32; 4];
        stand_in_transform(&mut b, 2.0, 8.0, true);
        assert!(b[0] > a[0]);
        let mut c = [0.3f32; 4];
        stand_in_transform(&mut c, 0.8, 1.0, true);
        assert_ne!(c[0], a[0]);
        let mut d = [0.3f32; 4];
        stand_in_transform(&mut d, 0.8, 8.0, false);
        assert_eq!(d, [0.0; 4]);
    }

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
        let (_a, h) = Engine::start(48_000.0, bad.clone(), knob_table::new_bus()).unwrap();
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
