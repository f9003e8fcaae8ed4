//! Offline pacing on a live endpoint (a DAW bounce): the audio side waits for
//! generation, so the render is complete and deterministic, and equals
//! `render_offline` of the same input after the stated delay D.

mod common;

use std::time::Duration;

use antiphon_framework::clock::WallClock;
use antiphon_framework::engine::{render_offline, Engine, EngineConfig, RunMode};
use antiphon_framework::graph::{Graph, GraphBuilder};
use antiphon_framework::rng::SplitMix64;
use antiphon_framework::synth::{speechlike, ProductionTime, SynthMode, SynthStage};
use antiphon_framework::{endpoint, EndpointConfig};
use common::{knobs_for, Noise};

const SECONDS: f64 = 3.0;

/// Pass-through with a few ms of work per frame, then seeded noise (whose RNG
/// makes every frame's place in the stream matter).
fn graph(rate: f64) -> Graph {
    let work = ProductionTime {
        mean_ms: 2.0,
        jitter_ms: 2.0,
        ..Default::default()
    };
    GraphBuilder::new()
        .chain(vec![
            (
                "backbone",
                Box::new(SynthStage::new(
                    "backbone",
                    rate,
                    work,
                    SynthMode::PassThrough { gain: 0.5 },
                    WallClock::new(),
                )),
            ),
            ("predictor", Box::new(Noise::new(11, rate))),
        ])
        .build(rate)
        .unwrap()
}

fn input(rate: f64) -> Vec<f32> {
    (0..(SECONDS * rate) as u64)
        .map(|n| speechlike(n, rate))
        .collect()
}

/// Bounces the input through an offline-paced engine in blocks of random size
/// (1 … 4096, a new size every call); returns the output and D.
fn bounce(rate: f64, blocks_seed: u64) -> (Vec<f32>, usize) {
    let (mut audio, gen) = endpoint(&EndpointConfig::new(rate));
    let g = graph(rate);
    let knobs = knobs_for(&g);
    let cfg = EngineConfig {
        mode: RunMode::Offline,
        ..Default::default()
    };
    let d = cfg.offline_delay_samples(rate);
    let engine = Engine::start(g, gen, cfg, knobs, WallClock::new());
    let input = input(rate);
    let mut out = Vec::with_capacity(input.len());
    let mut rng = SplitMix64::new(blocks_seed);
    let mut buf = vec![0.0f32; 4096];
    while out.len() < input.len() {
        let pos = out.len();
        let n = (rng.range(1, 4096) as usize).min(input.len() - pos);
        buf[..n].copy_from_slice(&input[pos..pos + n]);
        let done = audio.process_offline(&mut [&mut buf[..n]], &[], Duration::from_secs(2));
        assert!(done, "block at {pos} waited in vain");
        out.extend_from_slice(&buf[..n]);
    }
    let r = engine.stop();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.underruns.samples, 0, "no gap-filled sample");
    assert_eq!(r.skipped.frames + r.stalls.frames_dropped, 0);
    assert_eq!(
        r.lead_inserted_ms + r.lead_dropped_ms,
        0.0,
        "the lead never moves"
    );
    (out, d)
}

fn bit_equal(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

#[test]
fn an_offline_bounce_is_render_offline_delayed_by_d_and_repeats_exactly() {
    for rate in [44_100.0, 22_050.0, 47_999.5] {
        let (a, d) = bounce(rate, 1);
        let (b, _) = bounce(rate, 2);
        assert!(bit_equal(&a, &b), "two bounces at {rate} Hz differ");
        let (reference, _, _) = render_offline(
            graph(rate),
            input(rate),
            EngineConfig::default(),
            knobs_for(&graph(rate)),
        )
        .unwrap();
        assert_eq!(d, (0.08 * rate).ceil() as usize + 1);
        assert!(
            a[..d].iter().all(|&x| x == 0.0),
            "D samples of silence first"
        );
        let n = a.len() - d;
        assert!(
            bit_equal(&a[d..], &reference[..n]),
            "at {rate} Hz the bounce is not render_offline delayed by {d} samples"
        );
        assert!(
            a[d..].iter().any(|&x| x.abs() > 0.2),
            "the model's output is there"
        );
        eprintln!(
            "{rate} Hz: {} samples, D = {d}, identical to render_offline after D",
            a.len()
        );
    }
}
