//! `output`: last stage. Sanitises the frame (non-finite → 0, clamped to
//! ±1 so a wild model cannot blow up a speaker) and stamps when it was made,
//! for the lead controller.

use std::time::Instant;

use antiphon_framework::node::{FrameContext, Node, NodeError, Payload, PortSpec};

/// When a frame left the graph.
#[derive(Clone, Copy, Debug)]
pub struct FrameTiming {
    pub frame: u64,
    pub produced_at: Instant,
    pub samples: usize,
}

pub struct Output {
    rate: f64,
    last: Option<FrameTiming>,
}

impl Output {
    pub fn new(host_rate: f64) -> Self {
        Self {
            rate: host_rate,
            last: None,
        }
    }
    pub fn last_timing(&self) -> Option<FrameTiming> {
        self.last
    }
}

impl Node for Output {
    fn name(&self) -> &str {
        "output"
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
        inputs: &[Payload],
        outputs: &mut [Payload],
    ) -> Result<(), NodeError> {
        let input: &[f32] = match &inputs[0] {
            Payload::Empty => &[],
            p => p.audio()?,
        };
        let out = outputs[0].audio_buf();
        out.extend(input.iter().map(|&x| {
            if x.is_finite() {
                x.clamp(-1.0, 1.0)
            } else {
                0.0
            }
        }));
        self.last = Some(FrameTiming {
            frame: cx.frame,
            produced_at: Instant::now(),
            samples: out.len(),
        });
        Ok(())
    }
}
