//! `backbone`: one step of the Moshi temporal transformer → hidden state +
//! sampled text token. On the CPU it runs on our kernels ([`crate::lm`]); on a
//! GPU on the moshi crate's `LmModel` (built without its depformer).

use std::sync::Arc;

use antiphon_framework::node::{FrameContext, Node, NodeError, Payload, PortSpec};
use candle::{DType, Device, IndexOp, Tensor};
use moshi::lm::LmModel;

use crate::bundle::{LmEngine, ModelBundle};
use crate::driver::{Conversation, TokenHistory};
use crate::knobs::{self, ResetWatch};
use crate::lm::LmBackbone;
use crate::sampling::{Sampler, SamplingParams};

/// Port type of [`BackboneStep`].
pub const BACKBONE_STEP: &str = "antiphon.moshi.backbone_step";

/// What the backbone hands the code predictor for one step.
#[derive(Clone, Debug)]
pub struct BackboneStep {
    pub step: u64,
    /// Reset epoch of the conversation this step belongs to.
    pub epoch: u64,
    /// Output of the backbone's final norm (d_model values).
    pub hidden: Vec<f32>,
    pub text_token: u32,
}

/// Derives the text sampler seed from the stream seed (audio uses `seed + 1`).
pub fn text_seed(seed: u64) -> u64 {
    seed
}

/// The LM implementation a backbone steps.
enum Lm {
    Kernels(LmBackbone),
    Candle(Box<LmModel>, Device),
}

pub struct Backbone {
    lm: Lm,
    /// Reused input list for [`LmBackbone::step`].
    audio_opt: Vec<Option<u32>>,
    conv: Arc<Conversation>,
    sampler: Sampler,
    silence: Vec<u32>,
    input_codebooks: usize,
    audio_in: Vec<u32>,
    reset: ResetWatch,
}

impl Backbone {
    /// The backbone and the conversation it shares with the code predictor.
    /// Fails for a model without a language model.
    pub fn new(bundle: &ModelBundle, seed: u64) -> Result<(Self, Arc<Conversation>), String> {
        let parts = bundle.lm()?;
        let g = bundle.generation();
        let vocab = bundle.lm_spec().map_or(1, |l| l.audio_vocab_size);
        let history = TokenHistory::new(&g, vocab);
        let conv = Arc::new(Conversation::new(history));
        let lm = match &parts.engine {
            LmEngine::Kernels { backbone, .. } => Lm::Kernels(backbone.fresh()),
            LmEngine::Candle {
                backbone, device, ..
            } => {
                let mut lm = backbone.clone();
                lm.reset_state();
                Lm::Candle(Box::new(lm), device.clone())
            }
        };
        let n_in = g.generated_audio_codebooks + g.input_audio_codebooks;
        let me = Self {
            lm,
            audio_opt: Vec::with_capacity(n_in),
            conv: conv.clone(),
            sampler: Sampler::new(text_seed(seed)),
            silence: bundle.silence_codes.clone(),
            input_codebooks: g.input_audio_codebooks,
            audio_in: Vec::with_capacity(g.generated_audio_codebooks + g.input_audio_codebooks),
            reset: ResetWatch::default(),
        };
        Ok((me, conv))
    }

    fn do_reset(&mut self) {
        match &mut self.lm {
            Lm::Kernels(lm) => lm.reset(),
            Lm::Candle(lm, _) => lm.reset_state(),
        }
        self.sampler.reset();
        self.conv.reset();
    }
}

fn sampling(cx: &FrameContext, temp_id: &str, temp_default: f32) -> SamplingParams {
    SamplingParams {
        temperature: cx.knobs.get_or(temp_id, temp_default) as f64,
        top_k: cx.knobs.get_or(knobs::TOP_K, 250.0).max(1.0) as usize,
        top_p: cx.knobs.get_or(knobs::TOP_P, 1.0) as f64,
    }
}

pub(crate) fn audio_sampling(cx: &FrameContext) -> SamplingParams {
    sampling(cx, knobs::AUDIO_TEMPERATURE, 0.8)
}

impl Node for Backbone {
    fn name(&self) -> &str {
        "backbone"
    }
    fn inputs(&self) -> Vec<PortSpec> {
        vec![PortSpec::codes("user_codes", self.input_codebooks)]
    }
    fn outputs(&self) -> Vec<PortSpec> {
        vec![PortSpec::custom("step", BACKBONE_STEP)]
    }
    fn knobs(&self) -> Vec<antiphon_framework::knobs::KnobSpec> {
        vec![
            knobs::text_temperature(),
            knobs::top_k(),
            knobs::top_p(),
            knobs::listen(),
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
            self.do_reset();
        }
        let listen = cx.knobs.get_or(knobs::LISTEN, 1.0) >= 0.5;
        let user: &[u32] = match &inputs[0] {
            Payload::Codes(c) if listen && !c.is_empty() => c,
            // Warm-up frames and `listen` off: the model hears silence.
            _ => &self.silence,
        };
        let mut audio_in = std::mem::take(&mut self.audio_in);
        let begun = self.conv.begin(|h, epoch| {
            let step = h.step();
            h.begin(user, &mut audio_in).map(|text| (step, epoch, text))
        });
        let (step, epoch, text_in) = match begun {
            Ok(b) => b,
            Err(e) => {
                self.audio_in = audio_in;
                return Err(NodeError::new(e));
            }
        };
        let params = sampling(cx, knobs::TEXT_TEMPERATURE, 0.7);
        let sampler = &mut self.sampler;
        let audio_opt = &mut self.audio_opt;
        let mut run = || -> candle::Result<(Vec<f32>, u32)> {
            match &mut self.lm {
                Lm::Kernels(lm) => {
                    audio_opt.clear();
                    audio_opt.extend(audio_in.iter().map(|&t| Some(t)));
                    let (logits, hidden) = lm.step(Some(text_in), audio_opt)?;
                    let logits = Tensor::from_slice(logits, logits.len(), &Device::Cpu)?;
                    let token = sampler.sample(step, params, &logits)?;
                    Ok((hidden.to_vec(), token))
                }
                Lm::Candle(lm, dev) => {
                    let text = Tensor::from_vec(vec![text_in], (1, 1), dev)?;
                    let audio = audio_in
                        .iter()
                        .map(|&t| Tensor::from_vec(vec![t], (1, 1), dev).map(Some))
                        .collect::<candle::Result<Vec<_>>>()?;
                    let (logits, hidden) = lm.forward(Some(text), audio, &().into())?;
                    let logits = logits.i((0, 0))?.to_dtype(DType::F32)?;
                    let token = sampler.sample(step, params, &logits)?;
                    let hidden = hidden
                        .flatten_all()?
                        .to_dtype(DType::F32)?
                        .to_vec1::<f32>()?;
                    Ok((hidden, token))
                }
            }
        };
        let r = run();
        self.audio_in = audio_in;
        let (hidden, text_token) =
            r.map_err(|e| NodeError::new(format!("backbone step {step}: {e}")))?;
        outputs[0] = Payload::Any(Box::new(BackboneStep {
            step,
            epoch,
            hidden,
            text_token,
        }));
        Ok(())
    }
    fn reset(&mut self) {
        self.do_reset();
    }
}
