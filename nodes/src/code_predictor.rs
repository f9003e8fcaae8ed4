//! `code_predictor`: the depformer (built apart from the LM over the same
//! weights) samples the step's audio codes; the driver turns the delayed
//! codebooks into the frame that became complete.

use std::sync::Arc;

use antiphon_framework::node::{FrameContext, Node, NodeError, Payload, PortSpec};
use candle::{DType, Device, Tensor};
use moshi::lm::{DepFormer, ForcedAudioTokens};

use crate::backbone::{audio_sampling, BackboneStep, BACKBONE_STEP};
use crate::bundle::{LmEngine, ModelBundle};
use crate::driver::Conversation;
use crate::knobs::{self, ResetWatch};
use crate::lm::LmDepformer;
use crate::sampling::Sampler;

/// Audio sampler seed derived from the stream seed.
pub fn audio_seed(seed: u64) -> u64 {
    seed.wrapping_add(1)
}

/// The depformer implementation (ours on the CPU, moshi's on a GPU).
enum Dep {
    Kernels(LmDepformer),
    Candle(Box<DepFormer>, Device, DType),
}

pub struct CodePredictor {
    dep: Dep,
    conv: Arc<Conversation>,
    sampler: Sampler,
    forced: ForcedAudioTokens,
    gen: usize,
    /// Last text token (for telemetry / transcripts).
    pub last_text: Option<u32>,
    reset: ResetWatch,
}

impl CodePredictor {
    /// Fails for a model without a language model.
    pub fn new(bundle: &ModelBundle, conv: Arc<Conversation>, seed: u64) -> Result<Self, String> {
        let parts = bundle.lm()?;
        let dep = match &parts.engine {
            LmEngine::Kernels { depformer, .. } => Dep::Kernels(depformer.fresh()),
            LmEngine::Candle {
                depformer, device, ..
            } => Dep::Candle(
                Box::new(depformer.clone()),
                device.clone(),
                bundle.lm_dtype(),
            ),
        };
        let g = bundle.generation();
        let pad = bundle.lm_spec().map_or(1, |l| l.audio_vocab_size) as u32 - 1;
        Ok(Self {
            dep,
            conv,
            sampler: Sampler::new(audio_seed(seed)),
            forced: ForcedAudioTokens::new(
                g.acoustic_delay,
                pad,
                &[g.generated_audio_codebooks, g.input_audio_codebooks],
            ),
            gen: g.generated_audio_codebooks,
            last_text: None,
            reset: ResetWatch::default(),
        })
    }
}

impl Node for CodePredictor {
    fn name(&self) -> &str {
        "code_predictor"
    }
    fn inputs(&self) -> Vec<PortSpec> {
        vec![PortSpec::custom("step", BACKBONE_STEP)]
    }
    fn outputs(&self) -> Vec<PortSpec> {
        vec![PortSpec::codes("codes", self.gen)]
    }
    fn knobs(&self) -> Vec<antiphon_framework::knobs::KnobSpec> {
        vec![
            knobs::audio_temperature(),
            knobs::top_k(),
            knobs::top_p(),
            knobs::reset(),
        ]
    }
    fn process(
        &mut self,
        cx: &FrameContext,
        inputs: &[Payload],
        outputs: &mut [Payload],
    ) -> Result<(), NodeError> {
        if self.reset.fired(cx.knobs) {
            self.sampler.reset();
        }
        let s: &BackboneStep = inputs[0].any()?;
        let lp = self.sampler.prepare(s.step, audio_sampling(cx));
        let forced = self
            .forced
            .forced_tokens(s.step.min(usize::MAX as u64) as usize);
        let sampled = match &mut self.dep {
            Dep::Kernels(dep) => dep.sample(&s.hidden, Some(s.text_token), forced, lp),
            Dep::Candle(dep, dev, dtype) => {
                Tensor::from_slice(&s.hidden, (1, 1, s.hidden.len()), dev)
                    .and_then(|h| h.to_dtype(*dtype))
                    .and_then(|h| dep.sample(&h, Some(s.text_token), forced, lp))
            }
        }
        .map_err(|e| NodeError::new(format!("code predictor step {}: {e}", s.step)))?;
        self.last_text = Some(s.text_token);
        let out = outputs[0].codes_buf();
        let done = self
            .conv
            .finish(s.epoch, |h| h.finish(s.step, s.text_token, &sampled, out));
        match done {
            Some(Ok(true)) => {}
            Some(Ok(false)) | None => outputs[0] = Payload::Empty,
            Some(Err(e)) => return Err(NodeError::new(e)),
        }
        Ok(())
    }
    fn reset(&mut self) {
        self.sampler.reset();
    }
}
