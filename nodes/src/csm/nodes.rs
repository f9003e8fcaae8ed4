//! CSM's graph nodes: `text` (the script, tokenised with the speaker knob) →
//! `backbone` (one position per frame, samples codebook 0) → `audio_decoder`
//! (codebooks 1..) → Mimi `decoder`. The audio decoder hands each frame's
//! codes back to the backbone through [`Feedback`] (a declared feedback edge,
//! so the backbone never waits on it).
//!
//! Each turn runs until the model emits the all-`eos` frame or the turn's
//! frame limit; then the next turn's text follows in the same context (after
//! an `eos` frame, as Sesame's generator writes context audio). When the
//! context would overflow, it restarts at the next turn (counted in
//! [`CsmProgress::context_restarts`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use antiphon_framework::knobs::{Binding, KnobSpec};
use antiphon_framework::lead::LeadSettings;
use antiphon_framework::node::{FrameContext, Node, NodeError, Payload, PortSpec};
use candle::Tensor;

use super::bundle::CsmModel;
use super::model::{CsmAudioDecoder, CsmBackbone};
use super::text::{CsmTokenizer, Script, MAX_SPEAKER};
use crate::knobs::{self, ResetWatch};
use crate::sampling::{Sampler, SamplingParams};

pub const TEMPERATURE: &str = "temperature";
pub const SPEAKER: &str = "speaker";

/// Sesame's generator defaults: temperature 0.9, top-k 50.
pub fn temperature() -> KnobSpec {
    KnobSpec::new(
        TEMPERATURE,
        "Temperature",
        "",
        0.0,
        2.0,
        0.9,
        Binding::Sampling,
    )
}
pub fn top_k(vocab: usize) -> KnobSpec {
    KnobSpec::new(
        knobs::TOP_K,
        "Top-k",
        "",
        1.0,
        vocab as f32,
        50.0,
        Binding::Sampling,
    )
    .stepped(1.0)
}
/// Who speaks turns without a `[N]` tag; read when a turn starts.
pub fn speaker() -> KnobSpec {
    KnobSpec::new(
        SPEAKER,
        "Speaker",
        "",
        0.0,
        MAX_SPEAKER as f32,
        0.0,
        Binding::Sampling,
    )
    .stepped(1.0)
}

fn sampling(cx: &FrameContext) -> SamplingParams {
    SamplingParams {
        temperature: cx.knobs.get_or(TEMPERATURE, 0.9) as f64,
        top_k: cx.knobs.get_or(knobs::TOP_K, 50.0).max(1.0) as usize,
        top_p: 1.0,
    }
}

/// The lead floor of a CSM stream, ms. Free-running speech has no input to
/// answer, so its lead costs no latency; it only bounds how late a knob
/// change is heard (a frame plus this). 250 ms covers the production-time
/// spikes of a loaded 2-core machine (ITL p99 150 ms measured beside three
/// compiling engineers, which underran at the speech-to-speech floor of 40 ms).
pub const CSM_LEAD_FLOOR_MS: f32 = 250.0;

/// The lead controller's floor knob with CSM's default: declared by the
/// backbone, it takes the place of the framework's default on the bus.
pub fn lead_floor() -> KnobSpec {
    let mut k = LeadSettings::knobs()
        .into_iter()
        .find(|k| k.id == "lead_floor_ms")
        .expect("the lead controller has a floor knob");
    k.default = CSM_LEAD_FLOOR_MS;
    k
}

/// How long a turn may run when the model never says it is done.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TurnLimit {
    /// 2 s + 0.4 s per text token (speech runs ~3 tokens/s: ample room).
    Auto,
    Seconds(f64),
}

impl TurnLimit {
    pub fn frames(self, tokens: usize) -> usize {
        match self {
            TurnLimit::Auto => 25 + 5 * tokens,
            TurnLimit::Seconds(s) => (s * 12.5).ceil().max(1.0) as usize,
        }
    }
}

/// Progress of a stream, readable from any thread (the host stops on it).
#[derive(Debug)]
pub struct CsmProgress {
    finished_frame: AtomicU64,
    /// Turns finished (by `eos` or by their limit).
    pub turns_done: AtomicU64,
    /// Turns the model ended itself with the `eos` frame.
    pub eos_turns: AtomicU64,
    /// Times the context was full and restarted at a turn.
    pub context_restarts: AtomicU64,
    /// Sampled codes outside the codec's range (CSM specials), decoded as 0.
    pub special_codes: AtomicU64,
}

impl Default for CsmProgress {
    fn default() -> Self {
        Self {
            finished_frame: AtomicU64::new(u64::MAX),
            turns_done: AtomicU64::new(0),
            eos_turns: AtomicU64::new(0),
            context_restarts: AtomicU64::new(0),
            special_codes: AtomicU64::new(0),
        }
    }
}

impl CsmProgress {
    /// Frames the whole script took, counted from the stream's first frame
    /// (`None` while still speaking).
    pub fn finished_at(&self) -> Option<u64> {
        match self.finished_frame.load(Ordering::Acquire) {
            u64::MAX => None,
            f => Some(f),
        }
    }
}

/// The script tokenised for one speaker-knob value.
pub struct TextPlan {
    /// Per turn: its tokens.
    pub turns: Vec<Vec<u32>>,
    /// Context turns: their tokens and audio frames.
    pub context: Vec<(Vec<u32>, Vec<Vec<u32>>)>,
}

pub const TEXT_PLAN: &str = "antiphon.csm.text_plan";
pub const CSM_STEP: &str = "antiphon.csm.step";

impl TextPlan {
    pub fn new(script: &Script, tok: &CsmTokenizer, speaker: u32) -> Result<Self, String> {
        let turns = script
            .turns
            .iter()
            .map(|t| tok.turn(t.speaker.unwrap_or(speaker), &t.text))
            .collect::<Result<_, _>>()?;
        let context = script
            .context
            .iter()
            .map(|c| Ok((tok.turn(c.speaker, &c.text)?, c.codes.clone())))
            .collect::<Result<_, String>>()?;
        Ok(Self { turns, context })
    }
}

/// `text`: first stage. Emits the tokenised script, re-tokenised only when
/// the speaker knob changes (the backbone reads it when a turn starts).
pub struct TextNode {
    script: Script,
    tok: CsmTokenizer,
    rate: f64,
    plan: Option<(u32, Arc<TextPlan>)>,
}

impl TextNode {
    pub fn new(model: &CsmModel, script: Script, host_rate: f64) -> Self {
        Self {
            script,
            tok: model.tokenizer.clone(),
            rate: host_rate,
            plan: None,
        }
    }
}

impl Node for TextNode {
    fn name(&self) -> &str {
        "text"
    }
    fn inputs(&self) -> Vec<PortSpec> {
        vec![PortSpec::audio("clock", self.rate)]
    }
    fn outputs(&self) -> Vec<PortSpec> {
        vec![PortSpec::custom("plan", TEXT_PLAN)]
    }
    fn knobs(&self) -> Vec<KnobSpec> {
        vec![speaker()]
    }
    fn process(
        &mut self,
        cx: &FrameContext,
        _: &[Payload],
        out: &mut [Payload],
    ) -> Result<(), NodeError> {
        let speaker = cx
            .knobs
            .get_or(SPEAKER, 0.0)
            .round()
            .clamp(0.0, MAX_SPEAKER as f32) as u32;
        let plan = match &self.plan {
            Some((s, p)) if *s == speaker => p.clone(),
            _ => {
                let p = Arc::new(
                    TextPlan::new(&self.script, &self.tok, speaker).map_err(NodeError::new)?,
                );
                self.plan = Some((speaker, p.clone()));
                p
            }
        };
        out[0] = Payload::Any(Box::new(plan));
        Ok(())
    }
}

/// What the backbone hands the audio decoder for one frame.
pub struct CsmStep {
    pub epoch: u64,
    pub hidden: Tensor,
    pub c0: u32,
}

/// The audio decoder's codes of the last frame, for the backbone's next.
#[derive(Default)]
pub struct Feedback {
    epoch: u64,
    codes: Option<Vec<u32>>,
}

/// Where the backbone is in the script.
enum Turn {
    /// The next turn (index) starts at the next frame.
    Next(usize),
    /// Inside turn `index`, with `left` frames allowed.
    In {
        index: usize,
        left: usize,
    },
    Done,
}

/// `backbone`: per frame, one position (the previous frame's codes, or a new
/// turn's text), then codebook 0.
pub struct BackboneNode {
    model: CsmBackbone,
    feedback: Arc<Mutex<Feedback>>,
    progress: Arc<CsmProgress>,
    sampler: Sampler,
    limit: TurnLimit,
    turn: Turn,
    /// Audio was generated since the last (re)start: the next prompt begins with `eos`.
    spoke: bool,
    /// The engine's index of the stream's first frame (frames keep counting
    /// across a reset).
    first_frame: Option<u64>,
    epoch: u64,
    eos: u32,
    reset: ResetWatch,
}

impl BackboneNode {
    fn restart(&mut self) {
        self.model.clear();
        self.sampler.reset();
        self.turn = Turn::Next(0);
        self.spoke = false;
        self.first_frame = None;
        self.epoch += 1;
        let p = &self.progress;
        p.finished_frame.store(u64::MAX, Ordering::Release);
        for c in [
            &p.turns_done,
            &p.eos_turns,
            &p.context_restarts,
            &p.special_codes,
        ] {
            c.store(0, Ordering::Relaxed);
        }
    }

    /// Embeddings of a new turn's prompt: [eos frame] [context turns] text.
    fn prompt(&self, plan: &TextPlan, index: usize, with_history: bool) -> candle::Result<Tensor> {
        let cb = self.model.config().num_codebooks;
        let eos_frame = vec![vec![self.eos; cb]];
        let mut parts = Vec::new();
        if with_history && self.spoke {
            parts.push(self.model.embed_audio(&eos_frame)?);
        }
        if index == 0 || !with_history {
            for (text, audio) in &plan.context {
                parts.push(self.model.embed_text(text)?);
                if !audio.is_empty() {
                    parts.push(self.model.embed_audio(audio)?);
                }
                parts.push(self.model.embed_audio(&eos_frame)?);
            }
        }
        parts.push(self.model.embed_text(&plan.turns[index])?);
        Tensor::cat(&parts, 1)
    }

    /// Starts turn `index` (or ends the stream); the hidden state to sample from.
    fn start_turn(
        &mut self,
        plan: &TextPlan,
        index: usize,
        frame: u64,
    ) -> candle::Result<Option<Tensor>> {
        if index >= plan.turns.len() {
            self.turn = Turn::Done;
            let first = *self.first_frame.get_or_insert(frame);
            self.progress
                .finished_frame
                .store(frame - first, Ordering::Release);
            return Ok(None);
        }
        let want = self.limit.frames(plan.turns[index].len());
        let mut x = self.prompt(plan, index, true)?;
        if x.dim(1)? + want.min(12) > self.model.room() {
            // Not even ~1 s of audio would fit after the prompt: drop the history.
            self.model.clear();
            self.progress
                .context_restarts
                .fetch_add(1, Ordering::Relaxed);
            x = self.prompt(plan, index, false)?;
        }
        let h = self.model.forward(&x)?;
        self.spoke = true;
        // This frame is the turn's first; `left` counts the ones after it.
        self.turn = Turn::In {
            index,
            left: want.min(self.model.room()).saturating_sub(1),
        };
        Ok(Some(h))
    }

    fn end_turn(&mut self, index: usize, by_eos: bool) {
        self.progress.turns_done.fetch_add(1, Ordering::Relaxed);
        if by_eos {
            self.progress.eos_turns.fetch_add(1, Ordering::Relaxed);
        }
        self.turn = Turn::Next(index + 1);
    }

    fn step(&mut self, cx: &FrameContext, plan: &TextPlan) -> candle::Result<Option<Tensor>> {
        let prev = {
            let mut fb = self.feedback.lock().unwrap_or_else(|p| p.into_inner());
            if fb.epoch == self.epoch {
                fb.codes.take()
            } else {
                None
            }
        };
        self.first_frame.get_or_insert(cx.frame);
        match self.turn {
            Turn::Done => Ok(None),
            Turn::Next(i) => self.start_turn(plan, i, cx.frame),
            Turn::In { index, left } => {
                let Some(codes) = prev else {
                    candle::bail!("no codes from the audio decoder for the previous frame")
                };
                let eos = codes.iter().all(|&c| c == self.eos);
                if eos || left == 0 {
                    self.end_turn(index, eos);
                    return self.start_turn(plan, index + 1, cx.frame);
                }
                let h = self
                    .model
                    .forward(&self.model.embed_audio(std::slice::from_ref(&codes))?)?;
                self.turn = Turn::In {
                    index,
                    left: left - 1,
                };
                Ok(Some(h))
            }
        }
    }
}

impl Node for BackboneNode {
    fn name(&self) -> &str {
        "backbone"
    }
    fn inputs(&self) -> Vec<PortSpec> {
        vec![PortSpec::custom("plan", TEXT_PLAN)]
    }
    fn outputs(&self) -> Vec<PortSpec> {
        vec![PortSpec::custom("step", CSM_STEP)]
    }
    fn knobs(&self) -> Vec<KnobSpec> {
        vec![
            temperature(),
            top_k(self.model.config().audio_vocab),
            lead_floor(),
            knobs::reset(),
        ]
    }
    fn process(
        &mut self,
        cx: &FrameContext,
        inputs: &[Payload],
        out: &mut [Payload],
    ) -> Result<(), NodeError> {
        if self.reset.fired(cx.knobs) {
            self.restart();
        }
        let plan: &Arc<TextPlan> = inputs[0].any()?;
        let err = |e: candle::Error| NodeError::new(format!("backbone frame {}: {e}", cx.frame));
        let Some(h) = self.step(cx, plan).map_err(err)? else {
            out[0] = Payload::Empty;
            return Ok(());
        };
        let logits = self.model.codebook0_logits(&h).map_err(err)?;
        let c0 = self
            .sampler
            .sample(cx.frame, sampling(cx), &logits)
            .map_err(err)?;
        out[0] = Payload::Any(Box::new(CsmStep {
            epoch: self.epoch,
            hidden: h,
            c0,
        }));
        Ok(())
    }
    fn reset(&mut self) {
        self.restart();
    }
}

/// `audio_decoder`: codebooks 1.. of the frame; hands the whole frame back
/// to the backbone and on to the codec (without the `eos` frame, which is
/// not audio; CSM's special codes beyond the codec's range decode as 0).
pub struct AudioDecoderNode {
    model: CsmAudioDecoder,
    feedback: Arc<Mutex<Feedback>>,
    progress: Arc<CsmProgress>,
    sampler: Sampler,
    codes: Vec<u32>,
    codebooks: usize,
    /// Codes per codebook the model samples from.
    vocab: usize,
    bins: u32,
    eos: u32,
    reset: ResetWatch,
}

impl Node for AudioDecoderNode {
    fn name(&self) -> &str {
        "audio_decoder"
    }
    fn inputs(&self) -> Vec<PortSpec> {
        vec![PortSpec::custom("step", CSM_STEP)]
    }
    fn outputs(&self) -> Vec<PortSpec> {
        vec![PortSpec::codes("codes", self.codebooks)]
    }
    fn knobs(&self) -> Vec<KnobSpec> {
        vec![temperature(), top_k(self.vocab), knobs::reset()]
    }
    fn process(
        &mut self,
        cx: &FrameContext,
        inputs: &[Payload],
        out: &mut [Payload],
    ) -> Result<(), NodeError> {
        if self.reset.fired(cx.knobs) {
            self.sampler.reset();
        }
        if inputs[0].is_empty() {
            out[0] = Payload::Empty;
            return Ok(());
        }
        let step: &CsmStep = inputs[0].any()?;
        let params = sampling(cx);
        let sampler = &mut self.sampler;
        self.model
            .frame(&step.hidden, step.c0, &mut self.codes, |_, logits| {
                sampler.sample(cx.frame, params, logits)
            })
            .map_err(|e| NodeError::new(format!("audio decoder frame {}: {e}", cx.frame)))?;
        {
            let mut fb = self.feedback.lock().unwrap_or_else(|p| p.into_inner());
            fb.epoch = step.epoch;
            fb.codes = Some(self.codes.clone());
        }
        if self.codes.iter().all(|&c| c == self.eos) {
            out[0] = Payload::Empty;
            return Ok(());
        }
        let buf = out[0].codes_buf();
        let mut special = 0;
        buf.extend(self.codes.iter().map(|&c| {
            if c < self.bins {
                c
            } else {
                special += 1;
                0
            }
        }));
        if special > 0 {
            self.progress
                .special_codes
                .fetch_add(special, Ordering::Relaxed);
        }
        Ok(())
    }
    fn reset(&mut self) {
        self.sampler.reset();
    }
}

/// The backbone and audio decoder nodes of one stream, wired to each other.
pub fn model_nodes(
    model: &CsmModel,
    codec_bins: usize,
    seed: u64,
    limit: TurnLimit,
) -> (BackboneNode, AudioDecoderNode, Arc<CsmProgress>) {
    let feedback = Arc::new(Mutex::new(Feedback::default()));
    let progress = Arc::new(CsmProgress::default());
    let mut backbone = model.backbone.clone();
    backbone.clear();
    let eos = model.config.codebook_eos;
    let b = BackboneNode {
        model: backbone,
        feedback: feedback.clone(),
        progress: progress.clone(),
        sampler: Sampler::new(seed),
        limit,
        turn: Turn::Next(0),
        spoke: false,
        first_frame: None,
        epoch: 0,
        eos,
        reset: ResetWatch::default(),
    };
    let d = AudioDecoderNode {
        model: model.audio_decoder.clone(),
        feedback,
        progress: progress.clone(),
        sampler: Sampler::new(seed.wrapping_add(1)),
        codes: Vec::with_capacity(model.config.num_codebooks),
        codebooks: model.config.num_codebooks,
        vocab: model.config.audio_vocab,
        bins: codec_bins as u32,
        eos,
        reset: ResetWatch::default(),
    };
    (b, d, progress)
}
