//! A live session on the virtual sound card, paced by the wall clock: the
//! device thread feeds input and plays the reply through the audio endpoint
//! exactly as a real driver callback would; the engine generates on workers.
//! Used by `run --pace realtime` and `bench`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use antiphon_framework::clock::WallClock;
use antiphon_framework::device::{BlockSizes, DeviceRun, Pacing, VirtualDevice};
use antiphon_framework::endpoint::{endpoint, EndpointConfig, OutputEvent, OutputParam};
use antiphon_framework::engine::{Engine, EngineConfig, Status};
use antiphon_framework::graph::Graph;
use antiphon_framework::knobs::KnobBus;
use antiphon_framework::report::Report;

use crate::script::KnobChange;
use crate::setup::output_param;

/// Fills one block of input: `(first sample index, planar channels)`.
pub type InputFn = Box<dyn FnMut(u64, &mut [Vec<f32>]) + Send>;

/// What to play into the virtual device.
pub struct Feed {
    pub rate: f64,
    pub channels: usize,
    pub block: usize,
    /// Total length in samples per channel.
    pub frames: u64,
    pub input: InputFn,
    /// Knob writes at audio times, sorted, already validated.
    pub script: Vec<KnobChange>,
    /// Keep the played output (for `run`; the bench does not need it).
    pub keep_output: bool,
    /// Stop early once this many samples have played (settable while running,
    /// e.g. when a text-to-speech script ends); `u64::MAX`: play all `frames`.
    pub end: Arc<AtomicU64>,
}

pub struct Outcome {
    pub output: Vec<Vec<f32>>,
    pub report: Report,
    pub trace: Option<String>,
    pub device: DeviceRun,
}

/// Output-stage knob values currently on the bus, for the endpoint's start state.
pub fn output_params(knobs: &KnobBus) -> Vec<(OutputParam, f32)> {
    knobs
        .specs()
        .iter()
        .filter_map(|s| output_param(&s.id).map(|p| (p, knobs.latest(knobs.id(&s.id).unwrap()))))
        .collect()
}

/// Runs `feed` to the end. `tick` is called about every 100 ms on this thread
/// with (seconds played, engine status), for progress bars and status lines.
pub fn run(
    graph: Graph,
    knobs: Arc<KnobBus>,
    cfg: EngineConfig,
    mut feed: Feed,
    mut tick: impl FnMut(f64, &Status),
) -> Outcome {
    let (mut audio, gen) = endpoint(&EndpointConfig::new(feed.rate));
    for (p, v) in output_params(&knobs) {
        audio.set_param(p, v);
    }
    let engine = Engine::start(graph, gen, cfg, knobs.clone(), WallClock::new());
    let played = Arc::new(AtomicU64::new(0));
    let played_dev = played.clone();
    let rate = feed.rate;
    let device = std::thread::Builder::new()
        .name("antiphon-virtual-device".into())
        .spawn(move || {
            let dev = VirtualDevice::new(
                rate,
                feed.channels,
                BlockSizes::Fixed(feed.block),
                Pacing::WallClock,
            )
            .realtime_priority(true);
            // Everything the callback touches is allocated here, up front.
            let cap = if feed.keep_output {
                feed.frames as usize
            } else {
                0
            };
            let mut out: Vec<Vec<f32>> = (0..feed.channels)
                .map(|_| Vec::with_capacity(cap))
                .collect();
            let mut events: Vec<OutputEvent> = Vec::with_capacity(feed.script.len());
            let mut next = 0;
            let run = dev.run(feed.frames, |b| {
                let len = b.len() as u64;
                (feed.input)(b.start, b.channels);
                events.clear();
                while let Some(k) = feed.script.get(next) {
                    let at = (k.at_s * rate).round() as u64;
                    if at >= b.start + len {
                        break;
                    }
                    let at = at.max(b.start);
                    // The audio clock stamps the change, so knob → ear is measured from here.
                    let _ = knobs.set_by_id(&k.id, k.value as f32, at);
                    if let Some(param) = output_param(&k.id) {
                        events.push(OutputEvent {
                            offset: (at - b.start) as u32,
                            param,
                            value: k.value as f32,
                        });
                    }
                    next += 1;
                }
                audio.process(b.channels, &events);
                if feed.keep_output {
                    for (o, c) in out.iter_mut().zip(b.channels.iter()) {
                        o.extend_from_slice(c);
                    }
                }
                played_dev.store(b.start + len, Ordering::Relaxed);
                b.start + len < feed.end.load(Ordering::Relaxed)
            });
            (run, out)
        })
        .expect("spawning the virtual device thread");
    while !device.is_finished() {
        std::thread::sleep(Duration::from_millis(100));
        tick(
            played.load(Ordering::Relaxed) as f64 / rate,
            &engine.status(),
        );
    }
    let (device, output) = device
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p));
    let trace = engine.trace_json();
    let report = engine.stop();
    Outcome {
        output,
        report,
        trace,
        device,
    }
}
