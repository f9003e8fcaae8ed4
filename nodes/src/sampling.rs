//! Seeded, knob-driven sampling around candle's `LogitsProcessor` (the one the
//! moshi crate uses, so our tokens match the crate's for the same seed).
//!
//! `LogitsProcessor` fixes its settings at construction; when a knob changes
//! we rebuild it with a seed derived from (seed, frame), so runs stay
//! deterministic whatever the knob timing.

use candle::Tensor;
use candle_transformers::generation::{LogitsProcessor, Sampling};

use crate::rng::seed_for;

/// Sampling settings read from knobs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SamplingParams {
    pub temperature: f64,
    pub top_k: usize,
    pub top_p: f64,
}

impl SamplingParams {
    /// The candle sampling mode these settings mean.
    pub fn sampling(&self) -> Sampling {
        if self.temperature < 1e-6 {
            Sampling::ArgMax
        } else if self.top_p >= 1.0 {
            Sampling::TopK {
                k: self.top_k.max(1),
                temperature: self.temperature,
            }
        } else {
            Sampling::TopKThenTopP {
                k: self.top_k.max(1),
                p: self.top_p,
                temperature: self.temperature,
            }
        }
    }
}

/// A seeded sampler whose settings can change between frames.
pub struct Sampler {
    seed: u64,
    params: Option<SamplingParams>,
    lp: Option<LogitsProcessor>,
}

impl Sampler {
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            params: None,
            lp: None,
        }
    }

    /// Samples one token at `frame` with `params`.
    pub fn sample(
        &mut self,
        frame: u64,
        params: SamplingParams,
        logits: &Tensor,
    ) -> candle::Result<u32> {
        self.prepare(frame, params).sample(logits)
    }

    /// The processor for `params` (rebuilt only when they change).
    pub fn prepare(&mut self, frame: u64, params: SamplingParams) -> &mut LogitsProcessor {
        if self.params != Some(params) || self.lp.is_none() {
            // First build uses the plain seed (= the crate's behaviour); later
            // rebuilds mix in the frame so the stream stays reproducible.
            let seed = if self.lp.is_none() {
                self.seed
            } else {
                seed_for(self.seed, &frame.to_string())
            };
            self.lp = Some(LogitsProcessor::from_sampling(seed, params.sampling()));
            self.params = Some(params);
        }
        self.lp.as_mut().expect("just built")
    }

    pub fn reset(&mut self) {
        self.params = None;
        self.lp = None;
    }
}
