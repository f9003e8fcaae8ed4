//! The bodies of `antiphon live`'s two device callbacks (the audio threads),
//! kept apart from the device plumbing so a test can run them confined by
//! seccomp: [`Microphone`] mixes the input device's frames down into a ring;
//! [`Speaker`] takes them from it, runs the endpoint in place and plays the
//! result. Both only touch memory allocated when they were made.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use antiphon_framework::endpoint::AudioSide;
use antiphon_nodes::session::DryUntilReady;

/// Largest block handled in one piece; longer device buffers are split.
const MAX_BLOCK: usize = 8192;
/// Most output channels the endpoint processes (more are copies of channel 0).
const MAX_CHANNELS: usize = 32;

/// Peak level meters written by the callbacks (f32 bits in atomics: no locks).
#[derive(Default)]
pub struct Meters {
    pub input_peak: AtomicU32,
    pub output_peak: AtomicU32,
    pub stream_errors: AtomicU64,
    /// Largest device buffer seen, frames (its period is our callback's deadline).
    pub max_block: AtomicU64,
}

fn raise(peak: &AtomicU32, x: f32) {
    if x > f32::from_bits(peak.load(Ordering::Relaxed)) {
        peak.store(x.to_bits(), Ordering::Relaxed);
    }
}

/// The input device's callback.
pub struct Microphone {
    ring: rtrb::Producer<f32>,
    channels: usize,
    meters: Arc<Meters>,
}

impl Microphone {
    pub fn new(ring: rtrb::Producer<f32>, channels: usize, meters: Arc<Meters>) -> Self {
        Self {
            ring,
            channels: channels.max(1),
            meters,
        }
    }

    /// One interleaved input buffer.
    pub fn process(&mut self, data: &[f32]) {
        let inv = 1.0 / self.channels as f32;
        let mut peak = 0.0f32;
        for f in data.chunks(self.channels) {
            let x = f.iter().sum::<f32>() * inv;
            peak = peak.max(x.abs());
            let _ = self.ring.push(x); // a full ring drops the oldest-to-be: never blocks
        }
        raise(&self.meters.input_peak, peak);
    }
}

/// Whether the model is ready (an atomic read: safe on the audio thread).
pub type ReadyFn = Box<dyn Fn() -> bool + Send>;

/// The output device's callback.
pub struct Speaker {
    mic: rtrb::Consumer<f32>,
    audio: AudioSide,
    ready: ReadyFn,
    gate: DryUntilReady,
    planar: Vec<Vec<f32>>,
    channels: usize,
    meters: Arc<Meters>,
}

impl Speaker {
    /// `ready` says whether the model is ready: until it is, the output is
    /// the dry input (crossfaded), the session's one rule for that.
    pub fn new(
        mic: rtrb::Consumer<f32>,
        audio: AudioSide,
        ready: ReadyFn,
        channels: usize,
        meters: Arc<Meters>,
    ) -> Self {
        Self {
            mic,
            audio,
            ready,
            gate: DryUntilReady::default(),
            planar: (0..channels).map(|_| vec![0.0; MAX_BLOCK]).collect(),
            channels: channels.max(1),
            meters,
        }
    }

    /// One interleaved output buffer, filled in place.
    pub fn process(&mut self, data: &mut [f32]) {
        let out_ch = self.channels;
        let frames = (data.len() / out_ch) as u64;
        if frames > self.meters.max_block.load(Ordering::Relaxed) {
            self.meters.max_block.store(frames, Ordering::Relaxed);
        }
        let mut peak = 0.0f32;
        for block in data.chunks_mut(MAX_BLOCK * out_ch) {
            let n = block.len() / out_ch;
            for i in 0..n {
                let x = self.mic.pop().unwrap_or(0.0);
                for c in self.planar.iter_mut() {
                    c[i] = x;
                }
            }
            let mut views: [&mut [f32]; MAX_CHANNELS] = Default::default();
            let k = self.planar.len().min(MAX_CHANNELS);
            for (v, c) in views.iter_mut().zip(self.planar.iter_mut()) {
                *v = &mut c[..n];
            }
            let ev = self.gate.event((self.ready)(), false);
            self.audio.process(&mut views[..k], ev.as_slice());
            for i in 0..n {
                for c in 0..out_ch {
                    let y = if c < k { views[c][i] } else { views[0][i] };
                    peak = peak.max(y.abs());
                    block[i * out_ch + c] = y;
                }
            }
        }
        raise(&self.meters.output_peak, peak);
    }
}

#[cfg(all(test, target_os = "linux", target_arch = "x86_64"))]
mod tests {
    //! The callbacks on a seccomp-confined thread (any syscall traps; see
    //! `antiphon_tests::seccomp`), with the built-in model generating.

    use std::time::{Duration, Instant};

    use antiphon_framework::clock::WallClock;
    use antiphon_framework::endpoint::{endpoint, EndpointConfig};
    use antiphon_framework::engine::{Engine, EngineConfig};
    use antiphon_framework::synth::speechlike;
    use antiphon_nodes::graph::{canonical_graph, knob_bus};
    use antiphon_nodes::ModelBundle;
    use antiphon_tests::seccomp::{self, run_child, section};

    use super::*;

    const CHILD: &str = "live_audio::tests::live_child";
    const ENV: &str = "ANTIPHON_SECCOMP_LIVE";
    const DONE: &str = "SECCOMP_LIVE_DONE";
    const RATE: f64 = 48_000.0;
    const BLOCKS: u64 = 2_000;

    #[derive(Clone, Default)]
    struct Seen {
        blocks: u64,
        wet_blocks: u64,
    }

    #[test]
    #[ignore = "run by the seccomp live test in a child process"]
    fn live_child() {
        if std::env::var_os(ENV).is_none() {
            println!("skipped: {ENV} not set (a child process of the seccomp test)");
            return;
        }
        let bundle = ModelBundle::builtin().expect("built-in model");
        let graph = canonical_graph(&bundle, RATE, 1).unwrap();
        let knobs = knob_bus(&graph, vec![]).unwrap();
        let (audio, gen) = endpoint(&EndpointConfig::new(RATE));
        let engine = Engine::start(
            graph,
            gen,
            EngineConfig {
                workers: 2,
                ..Default::default()
            },
            knobs,
            WallClock::new(),
        );
        let meters = Arc::new(Meters::default());
        let (tx, rx) = rtrb::RingBuffer::<f32>::new(RATE as usize);
        // Stereo microphone, stereo speakers; JACK-like 256-frame periods.
        let mut mic = Microphone::new(tx, 2, meters.clone());
        let mut speaker = Speaker::new(rx, audio, Box::new(|| true), 2, meters.clone());
        let mut input = vec![0.0f32; 2 * 256];
        let mut output = vec![0.0f32; 2 * 256];
        let seen = seccomp::run_confined(Duration::from_secs(120), move || {
            let mut seen = Seen::default();
            let t0 = Instant::now();
            let mut clock = 0u64;
            for _ in 0..BLOCKS {
                section("harness: input");
                for (i, f) in input.chunks_mut(2).enumerate() {
                    f.fill(speechlike(clock + i as u64, RATE));
                }
                section("live input callback");
                mic.process(&input);
                section("live output callback");
                speaker.process(&mut output);
                section("harness: output check");
                if output.iter().any(|y| *y != 0.0) {
                    seen.wet_blocks += 1;
                }
                clock += 256;
                seen.blocks += 1;
                section("harness: pacing");
                seccomp::sleep_until(t0 + Duration::from_secs_f64(clock as f64 / RATE));
            }
            seen
        });
        let report = engine.stop();
        println!(
            "{DONE} blocks={} wet_blocks={} frames={} input_peak={:.3} output_peak={:.3}",
            seen.blocks,
            seen.wet_blocks,
            report.frames,
            f32::from_bits(meters.input_peak.load(Ordering::Relaxed)),
            f32::from_bits(meters.output_peak.load(Ordering::Relaxed)),
        );
        std::process::exit(0);
    }

    #[test]
    fn live_callbacks_make_no_syscall() {
        let out = run_child(CHILD, &[(ENV, "1")]);
        let line = out.summary(DONE);
        assert!(
            out.status.success() && line.is_some(),
            "a live callback made a syscall or failed: {}",
            out.describe()
        );
        let line = line.unwrap();
        println!("{line}");
        let figure = |key: &str| -> f64 {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
                .and_then(|v| v.parse().ok())
                .unwrap()
        };
        assert_eq!(figure("blocks"), BLOCKS as f64);
        assert!(
            figure("wet_blocks") > 0.8 * BLOCKS as f64,
            "model output in too few blocks: {line}"
        );
        assert!(figure("input_peak") > 0.1 && figure("output_peak") > 0.0);
    }
}
