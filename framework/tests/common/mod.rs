//! Helpers shared by the engine tests.
#![allow(dead_code)]

use std::sync::Arc;

use antiphon_framework::clock::Clock;
use antiphon_framework::graph::{Graph, GraphBuilder};
use antiphon_framework::knobs::{Binding, KnobBus, KnobSpec};
use antiphon_framework::lead::LeadSettings;
use antiphon_framework::node::{FrameContext, Node, NodeError, Payload, PortSpec};
use antiphon_framework::rng::SplitMix64;
use antiphon_framework::synth::{ProductionTime, SynthMode, SynthStage};

pub fn gain_knob() -> KnobSpec {
    KnobSpec::new(
        "synth_gain",
        "Synth gain",
        "",
        0.0,
        1.0,
        1.0,
        Binding::Sampling,
    )
}

/// A one-stage synthetic generator graph.
pub fn synth_graph(rate: f64, time: ProductionTime, clock: Arc<dyn Clock>) -> Graph {
    GraphBuilder::new()
        .chain(vec![(
            "generator",
            Box::new(SynthStage::generator(rate, time, clock).with_gain_knob(gain_knob())),
        )])
        .build(rate)
        .unwrap()
}

/// Three synthetic stages splitting the production time (encoder → backbone → decoder).
pub fn three_stage_graph(rate: f64, time: ProductionTime, clock: Arc<dyn Clock>) -> Graph {
    let third = ProductionTime {
        mean_ms: time.mean_ms / 3.0,
        jitter_ms: time.jitter_ms / 3.0,
        stall_ms: time.stall_ms / 3.0,
        ..time
    };
    GraphBuilder::new()
        .chain(vec![
            (
                "encoder",
                Box::new(SynthStage::new(
                    "encoder",
                    rate,
                    third.clone(),
                    SynthMode::PassThrough { gain: 1.0 },
                    clock.clone(),
                )),
            ),
            (
                "backbone",
                Box::new(SynthStage::new(
                    "backbone",
                    rate,
                    third.clone(),
                    SynthMode::Generate,
                    clock.clone(),
                )),
            ),
            (
                "decoder",
                Box::new(SynthStage::new(
                    "decoder",
                    rate,
                    third,
                    SynthMode::PassThrough { gain: 0.5 },
                    clock,
                )),
            ),
        ])
        .build(rate)
        .unwrap()
}

pub fn knobs_for(graph: &Graph) -> Arc<KnobBus> {
    let mut specs = graph.knob_specs();
    specs.extend(LeadSettings::knobs());
    KnobBus::new(specs).unwrap()
}

pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Values of a (t, v) series with t in [from, to).
pub fn window(series: &[(f64, f64)], from: f64, to: f64) -> Vec<f64> {
    series
        .iter()
        .filter(|(t, _)| *t >= from && *t < to)
        .map(|(_, v)| *v)
        .collect()
}

/// Adds seeded noise; its RNG state makes frame order matter.
pub struct Noise {
    rng: SplitMix64,
    seed: u64,
    rate: f64,
}

impl Noise {
    pub fn new(seed: u64, rate: f64) -> Self {
        Self {
            rng: SplitMix64::new(seed),
            seed,
            rate,
        }
    }
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
