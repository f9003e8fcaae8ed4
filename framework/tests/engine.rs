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
use antiphon_framework::synth::{speechlike, ProductionTime, SynthMode, SynthStage};
use antiphon_framework::{endpoint, EndpointConfig};
use common::*;

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
            ("predictor", Box::new(Noise::new(seed, rate))),
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
    let (out, report, _) = render_offline(graph, input, cfg, knobs).unwrap();
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
        )
        .unwrap();
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

#[test]
fn a_panicking_node_is_reported_once_gap_filled_and_recovered_by_reset() {
    let rate = 48_000.0;
    let graph = GraphBuilder::new()
        .chain(vec![(
            "backbone",
            Box::new(Failing {
                at: 20,
                panic: true,
                rate,
            }),
        )])
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
        errors[0].contains("`backbone`") && errors[0].contains("worker blew up"),
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

/// Fails once, on frame `at` (a panic or an error); a reset brings it back.
/// Otherwise it writes a constant 0.25, so generated audio is told from input.
struct Failing {
    at: u64,
    panic: bool,
    rate: f64,
}

impl Node for Failing {
    fn name(&self) -> &str {
        "failing"
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
            self.at = u64::MAX;
            if self.panic {
                panic!("worker blew up");
            }
            return Err(NodeError::new("out of tokens"));
        }
        let out = o[0].audio_buf();
        out.extend(i[0].audio()?.iter().map(|_| 0.25));
        Ok(())
    }
}

/// Renders 60 s through [generator → failing stage] on another thread; the
/// error (or a timeout after 1 s, the bound we promise) comes back.
fn render_failing(panic: bool) -> Result<String, &'static str> {
    let rate = 24_000.0;
    let clock = WallClock::new();
    let graph = GraphBuilder::new()
        .chain(vec![
            (
                "encoder",
                Box::new(SynthStage::new(
                    "encoder",
                    rate,
                    ProductionTime {
                        mean_ms: 0.0,
                        jitter_ms: 0.0,
                        ..Default::default()
                    },
                    SynthMode::PassThrough { gain: 1.0 },
                    clock,
                )),
            ),
            ("predictor", Box::new(Failing { at: 5, panic, rate })),
        ])
        .build(rate)
        .unwrap();
    let knobs = knobs_for(&graph);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = render_offline(
            graph,
            vec![0.1; 60 * 24_000],
            EngineConfig::default(),
            knobs,
        );
        let _ = tx.send(r.map(|_| ()).map_err(|e| (e.message, e.report.frames)));
    });
    match rx.recv_timeout(Duration::from_secs(1)) {
        Ok(Ok(())) => Err("the render succeeded"),
        Ok(Err((msg, frames))) => {
            assert!(frames <= 5, "frames written after the failure: {frames}");
            Ok(msg)
        }
        Err(_) => Err("render_offline did not return within 1 s"),
    }
}

#[test]
fn a_node_error_ends_an_offline_render_with_that_error_within_1_s() {
    let msg = render_failing(false).unwrap();
    assert!(
        msg.contains("`predictor`") && msg.contains("out of tokens"),
        "{msg}"
    );
}

#[test]
fn a_panic_during_an_offline_render_is_an_error_not_a_hang() {
    let msg = render_failing(true).unwrap();
    assert!(
        msg.contains("`predictor`") && msg.contains("worker blew up"),
        "{msg}"
    );
}

/// Half of an autoregressive pair: `begin` (frame t) needs what `finish` made
/// at frame t-1; they share a counter of finished steps.
struct Step {
    begin: bool,
    finished: Arc<std::sync::atomic::AtomicU64>,
    rate: f64,
}

impl Node for Step {
    fn name(&self) -> &str {
        if self.begin {
            "backbone"
        } else {
            "predictor"
        }
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
        std::thread::sleep(Duration::from_millis(2));
        if self.begin {
            let done = self.finished.load(Ordering::SeqCst);
            if done != cx.frame {
                return Err(NodeError::new(format!(
                    "step {} begun before step {} finished",
                    cx.frame, done
                )));
            }
        } else {
            self.finished.store(cx.frame + 1, Ordering::SeqCst);
        }
        o[0].audio_buf().extend_from_slice(i[0].audio()?);
        Ok(())
    }
}

#[test]
fn a_declared_feedback_edge_orders_autoregressive_steps_without_waiting() {
    let rate = 24_000.0;
    let finished = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let step = |begin| {
        Box::new(Step {
            begin,
            finished: finished.clone(),
            rate,
        })
    };
    let graph = GraphBuilder::new()
        .chain(vec![
            (
                "encoder",
                Box::new(SynthStage::new(
                    "encoder",
                    rate,
                    ProductionTime {
                        mean_ms: 1.0,
                        jitter_ms: 1.0,
                        ..Default::default()
                    },
                    SynthMode::PassThrough { gain: 1.0 },
                    WallClock::new(),
                )),
            ),
            ("backbone", step(true)),
            ("predictor", step(false)),
        ])
        .feedback("predictor", "backbone")
        .build(rate)
        .unwrap();
    let knobs = knobs_for(&graph);
    let input = vec![0.25; 1920 * 40];
    let cfg = EngineConfig {
        workers: 4,
        ..Default::default()
    };
    let (out, r, _) = render_offline(graph, input.clone(), cfg, knobs).unwrap();
    assert_eq!(r.frames, 40);
    assert_eq!(out, input);
    let unknown = GraphBuilder::new()
        .chain(vec![("predictor", step(false))])
        .feedback("predictor", "nowhere")
        .build(rate);
    assert!(unknown.unwrap_err().to_string().contains("nowhere"));
}

#[test]
fn warm_start_avoids_every_underrun_and_the_lead_sits_within_20_ms_of_the_smallest_safe_lead() {
    // 150 ms stalls every 10th frame for 60 s, then none for 25 s (simulated clock).
    let clock = SimClock::new();
    let time = ProductionTime {
        mean_ms: 20.0,
        jitter_ms: 5.0,
        stall_ms: 150.0,
        stall_every: 10,
        stall_until: Some((60.0 / 0.08) as u64),
        seed: 7,
    };
    let graph = synth_graph(48_000.0, time, clock.clone());
    let knobs = knobs_for(&graph);
    let r = run_simulated(
        graph,
        EngineConfig::default(),
        knobs,
        clock,
        85.0,
        256,
        |_| 0.0,
        |_, _| {},
        1e9,
    );
    let prod = window(&r.series.production_ms, 0.0, 60.0);
    let lead_p50 = median(window(&r.series.lead_ms, 0.0, 60.0));
    let b_min = prod.iter().cloned().fold(0.0, f64::max);
    let best_p50 = median(prod.iter().map(|p| b_min - p).collect());
    let settled = median(window(&r.series.lead_ms, 80.0, 85.0));
    eprintln!(
        "simulated stalls: underruns {} (warm-up included), lead p50 {lead_p50:.1} ms vs smallest safe {best_p50:.1} \
         (report: {:.1}); after the stalls {settled:.1} ms, aim {:.1}",
        r.underruns.callbacks, r.lead_ms.smallest_safe_p50, r.lead_ms.aim_final
    );
    assert_eq!(r.underruns.callbacks, 0, "{}", r.summary(true));
    assert!(
        (lead_p50 - best_p50).abs() <= 20.0,
        "lead p50 {lead_p50} vs smallest safe {best_p50}"
    );
    assert!(settled <= r.lead_ms.aim_final + 20.0, "{settled}");
}
