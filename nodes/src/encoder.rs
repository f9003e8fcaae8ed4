//! `encoder`: one Mimi encode step per 80 ms frame → the user's codes.
//! Owns its own [`MimiEncoder`] clone (weights shared), so its streaming state is separate from the decoder's.

use crate::bundle::{ModelBundle, FRAME_SAMPLES, MODEL_RATE};
use crate::codec::MimiEncoder;
use crate::knobs::ResetWatch;
use antiphon_framework::node::{FrameContext, Node, NodeError, Payload, PortSpec};

pub struct Encoder {
    mimi: MimiEncoder,
    n_q: usize,
    zeros: Vec<f32>,
    reset: ResetWatch,
}

impl Encoder {
    pub fn new(bundle: &ModelBundle) -> Self {
        let mut mimi = bundle.encoder.clone();
        mimi.reset_state();
        Self {
            mimi,
            n_q: bundle.manifest.mimi.config.quantizer_n_q,
            zeros: vec![0.0; FRAME_SAMPLES],
            reset: ResetWatch::default(),
        }
    }

    /// Encodes one frame of 1920 samples at 24 kHz into `codes`.
    pub fn encode(&mut self, pcm: &[f32], codes: &mut Vec<u32>) -> candle::Result<()> {
        self.mimi.encode_step(pcm, codes)
    }
}

impl Node for Encoder {
    fn name(&self) -> &str {
        "encoder"
    }
    fn inputs(&self) -> Vec<PortSpec> {
        vec![PortSpec::audio("pcm", MODEL_RATE)]
    }
    fn outputs(&self) -> Vec<PortSpec> {
        vec![PortSpec::codes("codes", self.n_q)]
    }
    fn process(
        &mut self,
        cx: &FrameContext,
        inputs: &[Payload],
        outputs: &mut [Payload],
    ) -> Result<(), NodeError> {
        if self.reset.fired(cx.knobs) {
            self.mimi.reset_state();
        }
        let r = match &inputs[0] {
            Payload::Empty => {
                let zeros = std::mem::take(&mut self.zeros);
                let r = self.encode(&zeros, outputs[0].codes_buf());
                self.zeros = zeros;
                r
            }
            p => {
                let pcm = p.audio()?;
                if pcm.len() != FRAME_SAMPLES {
                    return Err(NodeError::new(format!(
                        "encoder: expected {FRAME_SAMPLES} samples at 24 kHz, got {}",
                        pcm.len()
                    )));
                }
                self.encode(pcm, outputs[0].codes_buf())
            }
        };
        r.map_err(|e| NodeError::new(format!("encoder: {e}")))?;
        if matches!(&outputs[0], Payload::Codes(c) if c.is_empty()) {
            outputs[0] = Payload::Empty;
        }
        Ok(())
    }
    fn reset(&mut self) {
        self.mimi.reset_state();
    }
}
