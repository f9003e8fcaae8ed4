//! `capture`: first stage. The endpoint already mixed the host's channels to
//! mono; this node replaces NaN/Inf with silence (one bad sample must not
//! poison the codec's streaming state forever) and measures the input level.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use antiphon_framework::node::{FrameContext, Node, NodeError, Payload, PortSpec};

/// Input level of the last frame, readable from any thread.
#[derive(Debug, Default)]
pub struct InputLevel {
    rms_bits: AtomicU32,
    peak_bits: AtomicU32,
    /// Non-finite samples replaced so far.
    pub sanitized: AtomicU64,
}

impl InputLevel {
    /// (RMS, peak) of the last frame, linear full scale.
    pub fn get(&self) -> (f32, f32) {
        (
            f32::from_bits(self.rms_bits.load(Ordering::Relaxed)),
            f32::from_bits(self.peak_bits.load(Ordering::Relaxed)),
        )
    }
}

pub struct Capture {
    rate: f64,
    level: Arc<InputLevel>,
}

impl Capture {
    pub fn new(host_rate: f64) -> Self {
        Self {
            rate: host_rate,
            level: Arc::default(),
        }
    }
    pub fn level(&self) -> Arc<InputLevel> {
        self.level.clone()
    }
}

impl Node for Capture {
    fn name(&self) -> &str {
        "capture"
    }
    fn inputs(&self) -> Vec<PortSpec> {
        vec![PortSpec::audio("in", self.rate)]
    }
    fn outputs(&self) -> Vec<PortSpec> {
        vec![PortSpec::audio("out", self.rate)]
    }
    fn process(
        &mut self,
        _cx: &FrameContext,
        inputs: &[Payload],
        outputs: &mut [Payload],
    ) -> Result<(), NodeError> {
        let input: &[f32] = match &inputs[0] {
            Payload::Empty => &[],
            p => p.audio()?,
        };
        let out = outputs[0].audio_buf();
        let (mut sum, mut peak, mut bad) = (0f64, 0f32, 0u64);
        out.extend(input.iter().map(|&x| {
            let x = if x.is_finite() {
                x
            } else {
                bad += 1;
                0.0
            };
            sum += (x as f64) * (x as f64);
            peak = peak.max(x.abs());
            x
        }));
        let rms = if input.is_empty() {
            0.0
        } else {
            (sum / input.len() as f64).sqrt() as f32
        };
        self.level.rms_bits.store(rms.to_bits(), Ordering::Relaxed);
        self.level
            .peak_bits
            .store(peak.to_bits(), Ordering::Relaxed);
        self.level.sanitized.fetch_add(bad, Ordering::Relaxed);
        Ok(())
    }
}
