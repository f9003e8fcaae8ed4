//! The engine: runs a [`Graph`] on a pool of worker threads, one frame at a
//! time, between an endpoint's [`GenSide`] and the lead controller.
//!
//! * Stages of consecutive frames overlap (frame N's decoder while frame N+1's
//!   backbone runs) up to `max_in_flight` frames; each stage sees its frames in
//!   order, so output does not depend on the number of workers.
//! * A failing or panicking node is caught: the error is reported once with the
//!   node's name, the stream goes to gap fill, and [`Engine::reset`] recovers.
//! * Three ways to run: [`Engine::start`] (live, wall clock; [`RunMode`] picks
//!   realtime or offline pacing against the endpoint), [`render_offline`] (as
//!   fast as possible, deterministic) and [`run_simulated`] (a simulated clock
//!   and device, for hour-long scenarios in seconds).
//! * The frame clock is anchored to the audio clock: each frame's input starts
//!   at a known audio-clock sample. A live engine starts at the newest input
//!   (after a warm start, see [`EngineConfig::warmup_frames`]), and after a stall
//!   longer than the lead ceiling it resumes at the newest input and reports the
//!   stall once (`Report::stalls`).
//! * A declared feedback edge ([`GraphBuilder::feedback`](crate::graph::GraphBuilder::feedback))
//!   keeps a stage from starting frame t+1 before another finished frame t, so
//!   no worker ever waits on another.
//!
//! The worker side uses a mutex and a condvar: it is never the audio thread,
//! which only touches the endpoint's lock-free rings.

mod core;
mod stalls;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use self::core::panic_message;
pub use self::core::Status;
use self::core::{Core, Io};
use crate::clock::{Clock, SimClock};
use crate::endpoint::{endpoint, EndpointConfig, GenSide};
use crate::graph::Graph;
use crate::knobs::KnobBus;
use crate::lead::LeadSettings;
use crate::report::Report;

/// How generation is paced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pacing {
    /// Speech-to-speech: frame t of the reply needs frame t of the input.
    InputPaced,
    /// TTS-like: generation runs ahead, up to the lead target.
    FreeRunning,
}

/// How a live engine meets its endpoint's audio side.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunMode {
    /// A live device: late frames are gap-filled, the lead adapts, stale input
    /// is passed over to stay at the newest.
    #[default]
    Realtime,
    /// An offline render through a live endpoint (DAW bounce): the audio side
    /// waits for generation ([`AudioSide::process_offline`](crate::AudioSide::process_offline)),
    /// so nothing is skipped, the lead never changes, and the output is
    /// [`offline_delay_samples`](EngineConfig::offline_delay_samples) zeros
    /// followed by exactly what [`render_offline`] gives for the same input.
    Offline,
}

/// Engine settings.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Realtime or offline pacing on a live endpoint (chosen at activation).
    pub mode: RunMode,
    /// Frame duration (Mimi: 80 ms).
    pub frame_seconds: f64,
    pub workers: usize,
    pub pacing: Pacing,
    /// Frames in flight at once (pipeline depth).
    pub max_in_flight: usize,
    /// Underruns before this are not counted in `underruns.after_warmup`.
    pub warmup_seconds: f64,
    /// Warm start: frames of silence run through the graph before a realtime
    /// engine goes live, to seed the lead controller with measured production
    /// times (see `Core::warm_up`). 12 frames ≈ 1 s of audio: long enough to
    /// meet a spike that recurs within a second; rarer ones are learned live.
    pub warmup_frames: usize,
    /// Spans kept for the trace file (0: no trace).
    pub trace_capacity: usize,
    /// Lead settings used when the knob bus has no lead knobs.
    pub lead: LeadSettings,
    /// Budget differences smaller than this are left alone, ms.
    pub hysteresis_ms: f64,
    /// Fade length when the lead grows by gap fill, ms.
    pub crossfade_ms: f64,
    /// Realtime, input-paced only: hold every frame's output at exactly this
    /// many samples after its input (a plugin's *fixed* latency mode, whose
    /// reported latency this is). The lead controller then measures but never
    /// moves the output; a frame that is late is gap-filled and the stream
    /// re-aligns by dropping what came too late ([`Status::late_frames`]).
    /// `None`: the lead adapts freely.
    pub fixed_delay_samples: Option<u64>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            mode: RunMode::Realtime,
            frame_seconds: 0.08,
            workers: 2,
            pacing: Pacing::InputPaced,
            max_in_flight: 4,
            warmup_seconds: 5.0,
            warmup_frames: 12,
            trace_capacity: 0,
            lead: LeadSettings::default(),
            hysteresis_ms: 5.0,
            crossfade_ms: 3.0,
            fixed_delay_samples: None,
        }
    }
}

impl EngineConfig {
    /// The stated delay D of [`RunMode::Offline`], in samples at `rate`: the
    /// longest frame (frames are rounded to whole samples) plus one sample for
    /// output schedules that round down (the model graph's resampler). With it,
    /// the block whose input completes frame t never waits for frame t+1.
    ///
    /// With a [`fixed_delay_samples`](Self::fixed_delay_samples) at least that
    /// long, D is the fixed delay: a bounce then lines up exactly as the
    /// realtime stream does (a plugin's fixed latency mode).
    pub fn offline_delay_samples(&self, rate: f64) -> usize {
        let d = (self.frame_seconds * rate).ceil() as usize + 1;
        self.fixed_delay_samples.map_or(d, |f| d.max(f as usize))
    }
}

struct Shared {
    core: Mutex<Core>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Core> {
        // Node panics are caught inside jobs, so poisoning means a bug in the
        // engine itself; keep going with the data as it is rather than abort.
        self.core.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Runs [`worker_loop`]; if the engine's own code panics on this worker, the
/// stream is marked failed with the reason (an offline render then ends with
/// that error instead of waiting for a worker that is gone).
fn worker(shared: Arc<Shared>, id: usize) {
    if let Err(p) = catch_unwind(AssertUnwindSafe(|| worker_loop(&shared, id))) {
        let mut core = shared.lock();
        core.fail(format!("worker {id} panicked: {}", panic_message(&*p)));
        shared.wake.notify_all();
    }
}

fn worker_loop(shared: &Shared, id: usize) {
    let mut core = shared.lock();
    loop {
        if core.stop {
            break;
        }
        core.tick();
        core.admit();
        if let Some(mut job) = core.take_job() {
            let clock = core.clock.clone();
            drop(core);
            job.run(clock.as_ref());
            core = shared.lock();
            core.finish(job, id);
            shared.wake.notify_all();
            continue;
        }
        if core.finished() {
            shared.wake.notify_all();
            break;
        }
        // Input arrives from the audio thread, which never signals: poll at 1 ms.
        core = shared
            .wake
            .wait_timeout(core, Duration::from_millis(1))
            .map(|r| r.0)
            .unwrap_or_else(|e| e.into_inner().0);
    }
}

/// A running engine (live mode).
pub struct Engine {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

impl Engine {
    /// Starts `cfg.workers` worker threads generating into `gen`, starting at
    /// the newest input. A realtime engine first runs its warm start on the
    /// calling thread (`warmup_frames` frames of compute: call this off any
    /// thread that must not block, e.g. a plugin host's main thread).
    pub fn start(
        graph: Graph,
        gen: GenSide,
        cfg: EngineConfig,
        knobs: Arc<KnobBus>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let workers = cfg.workers.max(1);
        let warmup = cfg.warmup_frames;
        let mut core = Core::new(graph, Io::Live(gen), cfg, knobs, clock);
        core.warm_up(warmup);
        let shared = Arc::new(Shared {
            core: Mutex::new(core),
            wake: Condvar::new(),
        });
        let handles = (0..workers)
            .map(|i| {
                let s = shared.clone();
                std::thread::Builder::new()
                    .name(format!("antiphon-worker-{i}"))
                    .spawn(move || worker(s, i))
                    .expect("spawning a worker thread")
            })
            .collect();
        Self {
            shared,
            workers: handles,
        }
    }

    /// Live figures (cheap; for a status line).
    pub fn status(&self) -> Status {
        self.shared.lock().status()
    }

    /// The report so far.
    pub fn report(&self) -> Report {
        self.shared.lock().report()
    }

    /// Node errors so far.
    pub fn errors(&self) -> Vec<String> {
        self.shared.lock().errors.clone()
    }

    /// Resets the stream (all nodes, frames in flight, controller) without
    /// restarting threads; clears a failure. Generation resumes at the newest
    /// input (offline pacing: at the playhead, after D samples of silence).
    pub fn reset(&self) {
        let mut core = self.shared.lock();
        while core.any_busy() {
            core = self
                .shared
                .wake
                .wait_timeout(core, Duration::from_millis(1))
                .map(|r| r.0)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        core.reset();
        self.shared.wake.notify_all();
    }

    /// Trace file contents (Chrome trace-event JSON), if tracing was on.
    pub fn trace_json(&self) -> Option<String> {
        self.shared.lock().trace.as_ref().map(|t| t.to_json())
    }

    /// Stops the workers and returns the final report.
    pub fn stop(mut self) -> Report {
        self.halt();
        self.shared.lock().report()
    }

    /// Stops the workers and hands back the endpoint's generation side (to start
    /// another graph on the same endpoint, e.g. after loading another model).
    pub fn stop_into_io(mut self) -> (Report, Option<GenSide>) {
        self.halt();
        let mut core = self.shared.lock();
        let report = core.report();
        let io = std::mem::replace(
            &mut core.io,
            Io::Offline {
                input: Vec::new(),
                output: Vec::new(),
            },
        );
        (
            report,
            match io {
                Io::Live(g) => Some(g),
                Io::Offline { .. } => None,
            },
        )
    }

    fn halt(&mut self) {
        self.shared.lock().stop = true;
        self.shared.wake.notify_all();
        for h in self.workers.drain(..) {
            let _ = h.join();
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.halt();
    }
}

/// An offline render that ended early because a node failed or panicked (or a
/// worker died): the first error, with the report up to that point.
#[derive(Debug, Clone)]
pub struct RenderError {
    pub message: String,
    pub report: Box<Report>,
}

impl std::fmt::Display for RenderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RenderError {}

/// A finished offline render: output (one sample per input sample), report and
/// trace file contents (if tracing was on).
pub type Rendered = (Vec<f32>, Report, Option<String>);

/// Renders `input` (mono, at the graph's rate) as fast as possible. The result
/// is byte-identical for any number of workers: each stage sees its frames in
/// order and the lead controller does not touch offline output. A node error
/// ends the render at once with that error.
pub fn render_offline(
    graph: Graph,
    input: Vec<f32>,
    cfg: EngineConfig,
    knobs: Arc<KnobBus>,
) -> Result<Rendered, RenderError> {
    let workers = cfg.workers.max(1);
    let clock = crate::clock::WallClock::new();
    let core = Core::new(
        graph,
        Io::Offline {
            input,
            output: Vec::new(),
        },
        cfg,
        knobs,
        clock,
    );
    let shared = Arc::new(Shared {
        core: Mutex::new(core),
        wake: Condvar::new(),
    });
    let handles: Vec<_> = (0..workers)
        .map(|i| {
            let s = shared.clone();
            std::thread::spawn(move || worker(s, i))
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
    let mut core = shared.lock();
    let report = core.report();
    if let Some(e) = report.errors.first() {
        return Err(RenderError {
            message: e.clone(),
            report: Box::new(report),
        });
    }
    let trace = core.trace.as_ref().map(|t| t.to_json());
    let out = match &mut core.io {
        Io::Offline { output, .. } => std::mem::take(output),
        Io::Live(_) => Vec::new(),
    };
    Ok((out, report, trace))
}

/// Runs `seconds` of a live session on a simulated clock: a virtual device
/// calls the endpoint every `block` samples of simulated time with input from
/// `input(sample_index)`, and generation runs on one simulated worker whose
/// stages advance the clock instead of sleeping. Hours take seconds, and the
/// same scenario always gives the same figures.
///
/// `on_frame` is called after each written frame with the report so far every
/// `report_every` frames (use it to compare figures across the run).
pub fn run_simulated(
    graph: Graph,
    cfg: EngineConfig,
    knobs: Arc<KnobBus>,
    clock: Arc<SimClock>,
    seconds: f64,
    block: usize,
    mut input: impl FnMut(u64) -> f32,
    mut checkpoint: impl FnMut(f64, &Report),
    checkpoint_every_s: f64,
) -> Report {
    let rate = graph.sample_rate;
    let (mut audio, gen) = endpoint(&EndpointConfig::new(rate));
    let cfg = EngineConfig { workers: 1, ..cfg };
    let warmup = cfg.warmup_frames;
    let mut core = Core::new(graph, Io::Live(gen), cfg, knobs, clock.clone());
    core.warm_up(warmup);
    let block = block.max(1);
    let block_s = block as f64 / rate;
    // The device starts once the engine is live (after warm-up).
    let mut next_cb = clock.now();
    let seconds = seconds + next_cb;
    let mut pos = 0u64;
    let mut buf = vec![0.0f32; block];
    let mut next_checkpoint = checkpoint_every_s;
    let mut device_until =
        |now: f64, audio: &mut crate::endpoint::AudioSide, next_cb: &mut f64, pos: &mut u64| {
            while *next_cb <= now {
                for (i, x) in buf.iter_mut().enumerate() {
                    *x = input(*pos + i as u64);
                }
                audio.process(&mut [&mut buf[..]], &[]);
                *pos += block as u64;
                *next_cb += block_s;
            }
        };
    while clock.now() < seconds {
        device_until(clock.now(), &mut audio, &mut next_cb, &mut pos);
        core.tick();
        core.admit();
        if let Some(mut job) = core.take_job() {
            job.run(clock.as_ref());
            // Callbacks due while the stage ran happen before its output exists.
            device_until(clock.now(), &mut audio, &mut next_cb, &mut pos);
            core.finish(job, 0);
        } else {
            clock.advance_to(next_cb);
        }
        if clock.now() >= next_checkpoint {
            checkpoint(clock.now(), &core.report());
            next_checkpoint += checkpoint_every_s;
        }
    }
    core.report()
}
