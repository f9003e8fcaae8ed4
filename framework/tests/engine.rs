//! The engine off the wall clock: determinism across worker counts, pipeline
//! overlap, bounded latency when generation is slower than real time (simulated
//! clock), node failures and reset.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use antiphon_framework::clock::{SimClock, WallClock};
use antiphon_framework::engine::{render_offline, run_simulated, Engine, EngineConfig};
use antiphon_framework::graph::GraphBuilder;
use antiphon_framework::node::{FrameContext, Node, NodeError, Payload, PortSpec};
use antiphon_framework::rng::SplitMix64;
use antiphon_framework::synth::{speechlike, ProductionTime, SynthMode, SynthStage};
use antiphon_framework::{endpoint, EndpointConfig};
use common::*;

/// Adds seeded noise; its RNG state makes frame order matter.
struct Noise {
    rng: SplitMix64,
    seed: u64,
    rate: f64,
}

impl Node for Noise {
    fn name(&self) -> &str {
        "noise"
    }
    fn inputs(&self) -> Vec<PortSpec> {
        vec![PortSpec::audio("in", self.rate)]
    }
    fn outputs(&self) -> Vec<PortSpec> {
        vec![PortSpec::audio("out", self.rate)]
    }
    fn process(
        &mut self,
        _: &FrameContext,
        i: &[Payload],
        o: &mut [Payload],
    ) -> Result<(), NodeError> {
        let input = i[0].audio()?;
        let out = o[0].audio_buf();
        out.extend(
            input
                .iter()
                .map(|x| x + 0.01 * (self.rng.next_f64() as f32 - 0.5)),
        );
        Ok(())
    }
    fn reset(&mut self) {
        self.rng = SplitMix64::new(self.seed);
    }
}

fn seeded_render(workers: usize, seed: u64) -> Vec<f32> {
    let rate = 24_000.0;
    let clock = WallClock::new();
    let t = ProductionTime {
        mean_ms: 1.0,
        jitter_ms: 1.0,
        seed,
        ..Default::default()
    };
    let graph = GraphBuilder::new()
        .chain(vec![
            (
                "encoder",
                Box::new(SynthStage::new(
                    "encoder",
                    rate,
                    t.clone(),
                    SynthMode::PassThrough { gain: 0.5 },
                    clock.clone(),
                )),
            ),
            (
                "backbone",
                Box::new(SynthStage::new(
                    "backbone",
                    rate,
                    t.clone(),
                    SynthMode::Generate,
                    clock.clone(),
                )),
            ),
            (
                "predictor",
                Box::new(Noise {
                    rng: SplitMix64::new(seed),
                    seed,
                    rate,
                }),
            ),
            (
                "decoder",
                Box::new(SynthStage::new(
                    "decoder",
                    rate,
                    t,
                    SynthMode::PassThrough { gain: 0.9 },
                    clock,
                )),
            ),
        ])
        .build(rate)
        .unwrap();
    let knobs = knobs_for(&graph);
    let input: Vec<f32> = (0..(rate as usize * 3 + 77))
        .map(|n| (n as f32 * 0.01).sin())
        .collect();
    let cfg = EngineConfig {
        workers,
        ..Default::default()
    };
    let (out, report, _) = render_offline(graph, input, cfg, knobs);
    assert!(report.errors.is_empty());
    out
}

#[test]
fn offline_render_is_byte_identical_for_1_2_and_4_workers() {
    let one = seeded_render(1, 42);
    assert_eq!(
        one.len(),
        24_000 * 3 + 77,
        "every input sample has an output sample"
    );
    for w in [2, 4] {
        let other = seeded_render(w, 42);
        let same = one
            .iter()
            .zip(&other)
            .all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(
            same && one.len() == other.len(),
            "{w} workers changed the output"
        );
    }
    assert_ne!(
        one,
        seeded_render(2, 43),
        "another seed gives another output"
    );
    // And the content is the known signal, sample by sample (noise ≤ 0.005 × 0.9).
    for (n, y) in one.iter().enumerate() {
        assert!(
            (y - 0.9 * speechlike(n as u64, 24_000.0)).abs() <= 0.0046,
            "sample {n}"
        );
    }
}

#[test]
fn consecutive_frames_overlap_across_stages() {
    // Three stages of 12 ms each: one worker needs ~36 ms per frame, three ~12 ms.
    let time = |workers| {
        let clock = WallClock::new();
        let t = ProductionTime {
            mean_ms: 36.0,
            jitter_ms: 0.0,
            ..Default::default()
        };
        let graph = three_stage_graph(24_000.0, t, clock);
        let knobs = knobs_for(&graph);
        let t0 = Instant::now();
        let (out, r, trace) = render_offline(
            graph,
            vec![0.0; 1920 * 30],
            EngineConfig {
                workers,
                trace_capacity: 1000,
                ..Default::default()
            },
            knobs,
        );
        assert_eq!(out.len(), 1920 * 30);
        assert_eq!(r.frames, 30);
        let v: serde_json::Value = serde_json::from_str(&trace.unwrap()).unwrap();
        assert_eq!(
            v["traceEvents"].as_array().unwrap().len(),
            90,
            "one span per stage per frame"
        );
        t0.elapsed().as_secs_f64()
    };
    let (serial, parallel) = (time(1), time(3));
    eprintln!("30 frames × 3 stages × 12 ms: 1 worker {serial:.3} s, 3 workers {parallel:.3} s (ratio {:.2})", parallel / serial);
    assert!(
        parallel / serial < 0.75,
        "no overlap: {parallel:.3} s vs {serial:.3} s"
    );
}

#[test]
fn slower_than_real_time_keeps_latency_bounded_for_ten_simulated_minutes() {
    let clock = SimClock::new();
    // 100 ms per 80 ms frame: 1.25× slower than real time.
    let time = ProductionTime {
        mean_ms: 100.0,
        jitter_ms: 10.0,
        ..Default::default()
    };
    let graph = synth_graph(48_000.0, time, clock.clone());
    let knobs = knobs_for(&graph);
    let mut at = Vec::new();
    let t0 = Instant::now();
    let r = run_simulated(
        graph,
        EngineConfig::default(),
        knobs,
        clock,
        600.0,
        256,
        |_| 0.0,
        |t, rep| at.push((t, rep.skipped.frames)),
        60.0,
    );
    let lat = &r.series.latency_ms;
    let one_min = median(window(lat, 50.0, 60.0));
    let ten_min = median(window(lat, 590.0, 600.0));
    eprintln!(
        "slow generator, simulated 600 s in {:.1} s: latency at 1 min {one_min:.1} ms, at 10 min {ten_min:.1} ms; skipped {} frames; {}",
        t0.elapsed().as_secs_f64(),
        r.skipped.frames,
        r.skipped.message.clone().unwrap_or_default()
    );
    assert!(
        (ten_min - one_min).abs() <= 80.0,
        "latency grew from {one_min} to {ten_min} ms"
    );
    assert!(
        r.skipped.frames > 1000,
        "frames must have been skipped: {}",
        r.skipped.frames
    );
    let msg = r.skipped.message.expect("the report says why");
    assert!(
        msg.contains("real time") && msg.contains("skipped"),
        "{msg}"
    );
    assert!(
        at.len() >= 9 && at[8].1 > at[0].1,
        "skipping continues through the run"
    );
    assert!(
        r.latency_ms.max < 2_000.0,
        "latency stays under the ceiling: {}",
        r.latency_ms.max
    );
}

#[test]
fn simulated_runs_repeat_exactly() {
    let run = || {
        let clock = SimClock::new();
        let time = ProductionTime {
            mean_ms: 20.0,
            jitter_ms: 5.0,
            stall_ms: 150.0,
            stall_every: 10,
            ..Default::default()
        };
        let graph = synth_graph(48_000.0, time, clock.clone());
        let knobs = knobs_for(&graph);
        run_simulated(
            graph,
            EngineConfig::default(),
            knobs,
            clock,
            30.0,
            256,
            |_| 0.0,
            |_, _| {},
            1e9,
        )
    };
    let (a, b) = (run(), run());
    assert_eq!(a.series.lead_ms, b.series.lead_ms);
    assert_eq!(a.underruns.after_warmup, 0, "{}", a.summary(true));
}

/// Panics on one frame.
struct Flaky {
    at: u64,
    rate: f64,
}

impl Node for Flaky {
    fn name(&self) -> &str {
        "flaky"
    }
    fn inputs(&self) -> Vec<PortSpec> {
        vec![PortSpec::audio("in", self.rate)]
    }
    fn outputs(&self) -> Vec<PortSpec> {
        vec![PortSpec::audio("out", self.rate)]
    }
    fn process(
        &mut self,
        cx: &FrameContext,
        i: &[Payload],
        o: &mut [Payload],
    ) -> Result<(), NodeError> {
        if cx.frame == self.at {
            self.at = u64::MAX; // fails once; a reset brings it back
            panic!("model exploded");
        }
        let out = o[0].audio_buf();
        out.extend(i[0].audio()?.iter().map(|_| 0.25));
        Ok(())
    }
}

#[test]
fn a_panicking_node_is_reported_once_gap_filled_and_recovered_by_reset() {
    let rate = 48_000.0;
    let graph = GraphBuilder::new()
        .chain(vec![("backbone", Box::new(Flaky { at: 5, rate }))])
        .build(rate)
        .unwrap();
    let knobs = knobs_for(&graph);
    let (mut audio, gen) = endpoint(&EndpointConfig::new(rate));
    let engine = Engine::start(graph, gen, EngineConfig::default(), knobs, WallClock::new());
    let mut block = vec![0.1f32; 480];
    let mut pump = |audio: &mut antiphon_framework::AudioSide, ms: u64| {
        for _ in 0..ms / 10 {
            audio.process(&mut [&mut block[..]], &[]);
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    pump(&mut audio, 1500);
    let errors = engine.errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("`backbone`") && errors[0].contains("model exploded"),
        "{}",
        errors[0]
    );
    assert!(engine.status().failed);
    let gaps = audio.stats().gap_samples.load(Ordering::Relaxed);
    assert!(gaps > 0, "the stream went to gap fill");
    engine.reset();
    pump(&mut audio, 600);
    assert!(!engine.status().failed, "reset recovers without a restart");
    let mut out = vec![0.0f32; 480];
    audio.process(&mut [&mut out[..]], &[]);
    assert!(
        out.iter().any(|&x| x == 0.25),
        "generated audio flows again"
    );
    assert_eq!(engine.stop().errors.len(), 1);
    let _ = Arc::new(());
}
