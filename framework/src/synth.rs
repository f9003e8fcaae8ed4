//! Synthetic generation stages for tests and benchmarks.
//!
//! [`SynthStage`] takes a configurable time per frame (mean, jitter, periodic
//! stalls, slower than real time) on a [`Clock`], so lead-controller behaviour can
//! be reproduced without a model; on a simulated clock it advances time instead of
//! sleeping. As a generator it writes a known, speech-like signal (tone bursts
//! with silences) so output can be checked sample by sample; as a pass-through it
//! forwards its input, optionally scaled.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::knobs::KnobSpec;
use crate::node::{FrameContext, Node, NodeError, Payload, PortSpec};
use crate::rng::SplitMix64;

/// Per-frame production time. Deterministic per frame index and seed, so runs
/// with any number of workers take the same (simulated) times.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProductionTime {
    /// Mean time per frame, ms. Above the frame duration = slower than real time.
    pub mean_ms: f64,
    /// Uniform jitter ±jitter_ms around the mean.
    pub jitter_ms: f64,
    /// Extra time on stall frames, ms.
    pub stall_ms: f64,
    /// Every `stall_every`-th frame stalls (0 = never).
    pub stall_every: u64,
    /// Frames from `stall_until` on never stall (to watch the release).
    pub stall_until: Option<u64>,
    pub seed: u64,
}

impl Default for ProductionTime {
    fn default() -> Self {
        Self {
            mean_ms: 20.0,
            jitter_ms: 5.0,
            stall_ms: 0.0,
            stall_every: 0,
            stall_until: None,
            seed: 1,
        }
    }
}

impl ProductionTime {
    /// Time to spend on frame `t`, in ms.
    pub fn for_frame(&self, t: u64) -> f64 {
        let mut r = SplitMix64::new(self.seed ^ t.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let jitter = (r.next_f64() * 2.0 - 1.0) * self.jitter_ms;
        let stalls = self.stall_every > 0 && self.stall_until.is_none_or(|u| t < u);
        let stall = if stalls && t % self.stall_every == self.stall_every - 1 {
            self.stall_ms
        } else {
            0.0
        };
        (self.mean_ms + jitter + stall).max(0.0)
    }
}

/// The known signal: 220 Hz bursts of 0.6 s separated by 0.4 s of silence, with
/// 5 ms raised-cosine edges. `n` is the sample index at `rate`.
pub fn speechlike(n: u64, rate: f64) -> f32 {
    let t = n as f64 / rate;
    let pos = t % 1.0;
    if pos >= 0.6 {
        return 0.0;
    }
    let edge = 0.005;
    let env = if pos < edge {
        0.5 - 0.5 * (std::f64::consts::PI * pos / edge).cos()
    } else if pos > 0.6 - edge {
        0.5 - 0.5 * (std::f64::consts::PI * (0.6 - pos) / edge).cos()
    } else {
        1.0
    };
    (0.5 * env * (std::f64::consts::TAU * 220.0 * t).sin()) as f32
}

/// What a [`SynthStage`] outputs.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SynthMode {
    /// The known [`speechlike`] signal, one sample per input sample.
    Generate,
    /// The input, multiplied by `gain`.
    PassThrough { gain: f32 },
}

/// A synthetic stage with an audio input and output at `sample_rate`.
pub struct SynthStage {
    name: String,
    rate: f64,
    time: ProductionTime,
    mode: SynthMode,
    clock: Arc<dyn Clock>,
    position: u64,
    gain_knob: Option<KnobSpec>,
}

impl SynthStage {
    pub fn new(
        name: &str,
        rate: f64,
        time: ProductionTime,
        mode: SynthMode,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            name: name.into(),
            rate,
            time,
            mode,
            clock,
            position: 0,
            gain_knob: None,
        }
    }

    /// Scales the output by a knob (read each frame), so knob → ear latency can
    /// be measured on synthetic graphs.
    pub fn with_gain_knob(mut self, spec: KnobSpec) -> Self {
        self.gain_knob = Some(spec);
        self
    }

    /// A generator stage (known signal out).
    pub fn generator(rate: f64, time: ProductionTime, clock: Arc<dyn Clock>) -> Self {
        Self::new("synth", rate, time, SynthMode::Generate, clock)
    }
}

impl Node for SynthStage {
    fn name(&self) -> &str {
        &self.name
    }

    fn inputs(&self) -> Vec<PortSpec> {
        vec![PortSpec::audio("in", self.rate)]
    }

    fn outputs(&self) -> Vec<PortSpec> {
        vec![PortSpec::audio("out", self.rate)]
    }

    fn knobs(&self) -> Vec<KnobSpec> {
        self.gain_knob.iter().cloned().collect()
    }

    fn process(
        &mut self,
        cx: &FrameContext,
        inputs: &[Payload],
        outputs: &mut [Payload],
    ) -> Result<(), NodeError> {
        let input = inputs[0].audio()?;
        let g = self
            .gain_knob
            .as_ref()
            .map_or(1.0, |k| cx.knobs.get_or(&k.id, k.default));
        let ms = self.time.for_frame(cx.frame);
        if ms > 0.0 {
            self.clock.sleep(Duration::from_secs_f64(ms / 1000.0));
        }
        let out = outputs[0].audio_buf();
        match self.mode {
            SynthMode::Generate => {
                out.extend(
                    (0..input.len() as u64).map(|i| g * speechlike(self.position + i, self.rate)),
                );
            }
            SynthMode::PassThrough { gain } => out.extend(input.iter().map(|x| x * gain * g)),
        }
        self.position += input.len() as u64;
        Ok(())
    }

    fn reset(&mut self) {
        self.position = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn production_times_follow_the_recipe() {
        let p = ProductionTime {
            mean_ms: 20.0,
            jitter_ms: 5.0,
            stall_ms: 150.0,
            stall_every: 10,
            stall_until: Some(100),
            seed: 3,
        };
        for t in 0..200 {
            let ms = p.for_frame(t);
            let stall = t < 100 && t % 10 == 9;
            let base = if stall { 170.0 } else { 20.0 };
            assert!((ms - base).abs() <= 5.0, "frame {t}: {ms}");
            assert_eq!(ms, p.for_frame(t), "deterministic");
        }
    }

    #[test]
    fn speechlike_has_bursts_and_silences() {
        let rate = 24_000.0;
        let loud = (0..24_000)
            .filter(|&n| speechlike(n, rate).abs() > 0.1)
            .count();
        let silent = (0..24_000).filter(|&n| speechlike(n, rate) == 0.0).count();
        assert!(loud > 10_000 && silent >= 9_600, "{loud} {silent}");
    }
}
