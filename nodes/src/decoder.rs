//! `decoder`: one Mimi decode step per frame → 1920 samples at 24 kHz.
//! `codebook_depth` decodes only the first N RVQ levels (lo-fi, cheaper).
//! Frames without codes (the first `acoustic_delay` steps) are silence and do
//! not step the codec, as Moshi's own server does.

use antiphon_framework::node::{FrameContext, Node, NodeError, Payload, PortSpec};

use crate::bundle::{ModelBundle, FRAME_SAMPLES, MODEL_RATE};
use crate::codec::MimiDecoder;
use crate::knobs::{self, ResetWatch};

pub struct Decoder {
    dec: MimiDecoder,
    gen: usize,
    reset: ResetWatch,
}

impl Decoder {
    pub fn new(bundle: &ModelBundle) -> Self {
        let mut dec = bundle.decoder.clone();
        dec.reset_state();
        Self {
            dec,
            gen: bundle.decoded_codebooks(),
            reset: ResetWatch::default(),
        }
    }
    pub fn max_depth(&self) -> usize {
        self.dec.max_depth().min(self.gen)
    }
}

impl Node for Decoder {
    fn name(&self) -> &str {
        "decoder"
    }
    fn inputs(&self) -> Vec<PortSpec> {
        vec![PortSpec::codes("codes", self.gen)]
    }
    fn outputs(&self) -> Vec<PortSpec> {
        vec![PortSpec::audio("pcm", MODEL_RATE)]
    }
    fn knobs(&self) -> Vec<antiphon_framework::knobs::KnobSpec> {
        vec![knobs::codebook_depth(self.max_depth()), knobs::reset()]
    }
    fn process(
        &mut self,
        cx: &FrameContext,
        inputs: &[Payload],
        outputs: &mut [Payload],
    ) -> Result<(), NodeError> {
        if self.reset.fired(cx.knobs) {
            self.dec.reset_state();
        }
        let depth = cx
            .knobs
            .get_or(knobs::CODEBOOK_DEPTH, self.max_depth() as f32)
            .round()
            .max(1.0) as usize;
        let out = outputs[0].audio_buf();
        match &inputs[0] {
            Payload::Codes(c) if !c.is_empty() => {
                self.dec
                    .decode_step(c, depth, out)
                    .map_err(|e| NodeError::new(format!("decoder: {e}")))?;
                // Keep the frame cadence even if the codec ever returned a short frame.
                out.resize(FRAME_SAMPLES, 0.0);
            }
            _ => out.resize(FRAME_SAMPLES, 0.0),
        }
        Ok(())
    }
    fn reset(&mut self) {
        self.dec.reset_state();
    }
}
