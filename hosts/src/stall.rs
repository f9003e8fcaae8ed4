//! Fault injection: a node wrapper that delays every N-th frame, used by
//! `bench --inject-stall MS:EVERY` to show (and regression-test) that the lead
//! controller absorbs periodic generator spikes without an audible gap.

use std::time::Duration;

use antiphon_framework::knobs::KnobSpec;
use antiphon_framework::node::{FrameContext, Node, NodeError, Payload, PortSpec};

use crate::script::Stall;

/// Delegates everything to `inner`; sleeps `stall.ms` before frames
/// `every-1, 2·every-1, …` (the same schedule as the framework's synthetic stalls).
pub struct Stalled {
    inner: Box<dyn Node>,
    stall: Stall,
}

impl Stalled {
    pub fn new(inner: Box<dyn Node>, stall: Stall) -> Self {
        Self { inner, stall }
    }
}

impl Node for Stalled {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn inputs(&self) -> Vec<PortSpec> {
        self.inner.inputs()
    }
    fn outputs(&self) -> Vec<PortSpec> {
        self.inner.outputs()
    }
    fn knobs(&self) -> Vec<KnobSpec> {
        self.inner.knobs()
    }
    fn process(
        &mut self,
        cx: &FrameContext,
        inputs: &[Payload],
        outputs: &mut [Payload],
    ) -> Result<(), NodeError> {
        let every = self.stall.every.max(1);
        if cx.frame % every == every - 1 && self.stall.ms > 0.0 {
            std::thread::sleep(Duration::from_secs_f64(self.stall.ms / 1000.0));
        }
        self.inner.process(cx, inputs, outputs)
    }
    fn reset(&mut self) {
        self.inner.reset()
    }
}
