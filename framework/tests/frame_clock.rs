//! The frame clock is anchored to the audio clock: whatever happened before — an
//! engine started late, a long stall, a model change — generation resumes at
//! the newest input within a few frames, and a stall is reported as a stall.
//!
//! The input is a slow ramp, so every output sample tells which input sample it
//! was made from: "fresh" output was captured at most half a second earlier.
//! Real time (a 10 ms block pump on the wall clock), ≈ 12 s in all.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use antiphon_framework::clock::WallClock;
use antiphon_framework::engine::{Engine, EngineConfig};
use antiphon_framework::graph::{Graph, GraphBuilder};
use antiphon_framework::node::{FrameContext, Node, NodeError, Payload, PortSpec};
use antiphon_framework::{endpoint, AudioSide, EndpointConfig, EndpointStats, GenSide};
use common::knobs_for;

const RATE: f64 = 48_000.0;
const FRAME: u64 = 3_840; // 80 ms at 48 kHz
const BLOCK: usize = 480; // 10 ms
/// The ramp's period: 20 s, longer than any test here.
const PERIOD: u64 = 20 * 48_000;

fn ramp(n: u64) -> f32 {
    0.1 + 0.8 * ((n % PERIOD) as f32 / PERIOD as f32)
}

/// Output sample `v` played at `n` is fresh generated audio: made from input
/// captured 0 … 0.5 s before it plays.
fn fresh(n: u64, v: f32) -> bool {
    if v < 0.1 {
        return false; // gap fill or silence
    }
    let src = ((v - 0.1) / 0.8 * PERIOD as f32) as i64;
    let age = (n % PERIOD) as i64 - src;
    (0..=(RATE as i64 / 2)).contains(&age)
}

/// Copies its input to its output; on one frame it first stands still, and
/// records the audio clock when that stall ended.
struct Staller {
    stall_frame: u64,
    stall: Duration,
    stats: Option<Arc<EndpointStats>>,
    ended_at: Arc<AtomicU64>,
}

impl Node for Staller {
    fn name(&self) -> &str {
        "generator"
    }
    fn inputs(&self) -> Vec<PortSpec> {
        vec![PortSpec::audio("in", RATE)]
    }
    fn outputs(&self) -> Vec<PortSpec> {
        vec![PortSpec::audio("out", RATE)]
    }
    fn process(
        &mut self,
        cx: &FrameContext,
        i: &[Payload],
        o: &mut [Payload],
    ) -> Result<(), NodeError> {
        if cx.frame == self.stall_frame {
            std::thread::sleep(self.stall);
            if let Some(s) = &self.stats {
                self.ended_at.store(s.clock(), Ordering::SeqCst);
            }
        }
        o[0].audio_buf().extend_from_slice(i[0].audio()?);
        Ok(())
    }
}

fn graph(
    stall_frame: u64,
    stall: Duration,
    stats: Option<Arc<EndpointStats>>,
) -> (Graph, Arc<AtomicU64>) {
    let ended_at = Arc::new(AtomicU64::new(0));
    let node = Staller {
        stall_frame,
        stall,
        stats,
        ended_at: ended_at.clone(),
    };
    let g = GraphBuilder::new()
        .chain(vec![("generator", Box::new(node))])
        .build(RATE)
        .unwrap();
    (g, ended_at)
}

fn start(graph: Graph, gen: GenSide) -> Engine {
    let knobs = knobs_for(&graph);
    Engine::start(graph, gen, EngineConfig::default(), knobs, WallClock::new())
}

/// The audio thread's side: feeds the ramp, block by block, and notes where
/// fresh generated audio was heard.
struct Device {
    audio: AudioSide,
    pos: u64,
    buf: Vec<f32>,
    /// First fresh sample of each block that had one.
    fresh: Vec<u64>,
}

impl Device {
    fn new(audio: AudioSide) -> Self {
        Self {
            audio,
            pos: 0,
            buf: vec![0.0; BLOCK],
            fresh: Vec::new(),
        }
    }

    /// Runs `seconds` of audio, on the wall clock if `paced`, else as fast as it
    /// goes (nobody listening).
    fn run(&mut self, seconds: f64, paced: bool) {
        let blocks = (seconds * RATE / BLOCK as f64) as u32;
        let t0 = Instant::now();
        for k in 0..blocks {
            for (i, x) in self.buf.iter_mut().enumerate() {
                *x = ramp(self.pos + i as u64);
            }
            self.audio.process(&mut [&mut self.buf[..]], &[]);
            let pos = self.pos;
            if let Some(i) = self
                .buf
                .iter()
                .enumerate()
                .position(|(i, &v)| fresh(pos + i as u64, v))
            {
                self.fresh.push(pos + i as u64);
            }
            self.pos += BLOCK as u64;
            if paced {
                let due = t0 + Duration::from_secs_f64((k + 1) as f64 * BLOCK as f64 / RATE);
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
            }
        }
    }

    /// Samples from `from` to the first fresh generated sample after it.
    fn fresh_after(&self, from: u64) -> Option<u64> {
        self.fresh.iter().find(|&&n| n >= from).map(|n| n - from)
    }
}

fn frames(samples: Option<u64>) -> f64 {
    samples.map_or(f64::INFINITY, |s| s as f64 / FRAME as f64)
}

#[test]
fn an_engine_started_ten_seconds_into_the_stream_plays_the_newest_input_within_3_frames() {
    let (audio, gen) = endpoint(&EndpointConfig::new(RATE));
    let mut dev = Device::new(audio);
    dev.run(10.0, false); // a long model load: the device ran on its own
    let started = dev.pos;
    let (g, _) = graph(u64::MAX, Duration::ZERO, None);
    let engine = start(g, gen);
    dev.run(1.0, true);
    let after = frames(dev.fresh_after(started));
    eprintln!("started 10 s in: fresh audio after {after:.2} frames");
    assert!(after <= 3.0, "fresh audio {after} frames after the start");
    assert_eq!(engine.stop().stalls.count, 0, "a late start is not a stall");
}

#[test]
fn after_a_five_second_stall_the_newest_input_plays_within_3_frames_and_the_stall_is_reported() {
    let (audio, gen) = endpoint(&EndpointConfig::new(RATE));
    let stats = audio.stats().clone();
    let mut dev = Device::new(audio);
    let (g, ended_at) = graph(9, Duration::from_secs(5), Some(stats));
    let engine = start(g, gen);
    dev.run(6.5, true);
    let ended = ended_at.load(Ordering::SeqCst);
    assert!(ended > 0, "the stall happened");
    assert!(
        frames(dev.fresh_after(0)) < 3.0,
        "audio flowed before the stall"
    );
    let after = frames(dev.fresh_after(ended));
    let r = engine.stop();
    eprintln!(
        "{}after the stall: fresh audio after {after:.2} frames",
        r.summary(true)
    );
    assert!(
        after <= 3.0,
        "fresh audio {after} frames after the stall ended"
    );
    assert_eq!(r.stalls.count, 1, "{:?}", r.stalls);
    let st = r.stalls.recent[0];
    assert!((4.9..=5.5).contains(&st.seconds), "{st:?}");
    assert!((55..=70).contains(&st.frames_dropped), "{st:?}");
    assert!(
        st.message().starts_with("generation stalled 5."),
        "{}",
        st.message()
    );
    assert!(
        r.skipped.message.is_none(),
        "not slower than real time: {:?}",
        r.skipped
    );
    // Gap fill only while stalled (plus the few frames to resume).
    let gap_s = r.underruns.samples as f64 / RATE;
    assert!(gap_s <= 5.0 + 0.5, "{gap_s} s of gap fill");
}

#[test]
fn a_new_engine_on_a_running_endpoint_plays_the_newest_input_within_3_frames() {
    let (audio, gen) = endpoint(&EndpointConfig::new(RATE));
    let mut dev = Device::new(audio);
    let (g, _) = graph(u64::MAX, Duration::ZERO, None);
    let first = start(g, gen);
    dev.run(1.0, true);
    assert!(frames(dev.fresh_after(0)) <= 3.0);
    // A model change: the first engine stops, the next model takes 3 s to load.
    let (_, gen) = first.stop_into_io();
    dev.run(3.0, false);
    let started = dev.pos;
    let (g, _) = graph(u64::MAX, Duration::ZERO, None);
    let second = start(g, gen.expect("a live engine hands its endpoint back"));
    dev.run(1.0, true);
    let after = frames(dev.fresh_after(started));
    eprintln!("model change: fresh audio after {after:.2} frames");
    assert!(
        after <= 3.0,
        "fresh audio {after} frames after the new engine started"
    );
    assert_eq!(second.stop().stalls.count, 0);
}
