//! CSM's two halves over one set of weights: [`CsmBackbone`] (text and audio
//! frames in, codebook 0 and the hidden state out) and [`CsmAudioDecoder`]
//! (codebooks 1.. of the frame, one decoder step each).

use std::sync::Arc;

use candle::{IndexOp, Module, Result, Tensor, D};
use candle_nn::{linear_no_bias, Embedding, Linear, VarBuilder};

use super::config::{CsmConfig, TensorLayout};
use super::llama::Llama;

/// The audio embedding table (codebook `i`'s code `c` is row `i * vocab + c`),
/// shared by both halves.
fn audio_embeddings(cfg: &CsmConfig, layout: TensorLayout, vb: &VarBuilder) -> Result<Tensor> {
    let names = layout.top_names().audio_embeddings;
    let name = names
        .iter()
        .find(|n| vb.contains_tensor(n))
        .unwrap_or(&names[0]);
    vb.get(
        (cfg.num_codebooks * cfg.audio_vocab, cfg.backbone.hidden),
        name,
    )
}

/// The backbone: one position per text token or audio frame.
#[derive(Clone, Debug)]
pub struct CsmBackbone {
    llama: Llama,
    text: Embedding,
    audio: Tensor,
    head0: Linear,
    cfg: Arc<CsmConfig>,
}

impl CsmBackbone {
    pub fn new(cfg: Arc<CsmConfig>, layout: TensorLayout, vb: &VarBuilder) -> Result<Self> {
        let n = layout.top_names();
        let h = cfg.backbone.hidden;
        let text = vb.get((cfg.text_vocab, h), n.text_embeddings)?;
        Ok(Self {
            llama: Llama::new(&cfg.backbone, layout, vb.pp(n.backbone))?,
            text: Embedding::new(text, h),
            audio: audio_embeddings(&cfg, layout, vb)?,
            head0: linear_no_bias(h, cfg.audio_vocab, vb.pp(n.codebook0_head))?,
            cfg,
        })
    }

    /// Embeddings of text tokens, (1, n, hidden).
    pub fn embed_text(&self, ids: &[u32]) -> Result<Tensor> {
        let t = Tensor::from_slice(ids, (1, ids.len()), self.audio.device())?;
        self.text.forward(&t)
    }

    /// Embeddings of audio frames (each the sum of its codebooks'), (1, n, hidden).
    pub fn embed_audio(&self, frames: &[Vec<u32>]) -> Result<Tensor> {
        let (cb, vocab) = (self.cfg.num_codebooks, self.cfg.audio_vocab as u32);
        let mut rows = Vec::with_capacity(frames.len() * cb);
        for f in frames {
            if f.len() != cb {
                candle::bail!("an audio frame has {} codes, CSM takes {cb}", f.len())
            }
            rows.extend(
                f.iter()
                    .enumerate()
                    .map(|(i, &c)| i as u32 * vocab + c.min(vocab - 1)),
            );
        }
        let idx = Tensor::from_vec(rows, frames.len() * cb, self.audio.device())?;
        self.audio
            .index_select(&idx, 0)?
            .reshape((1, frames.len(), cb, ()))?
            .sum(D::Minus2)
    }

    /// Runs new positions; returns the last one's hidden state (1, 1, hidden).
    pub fn forward(&mut self, embeds: &Tensor) -> Result<Tensor> {
        self.llama.forward(embeds)
    }

    /// Codebook 0's logits from a hidden state, (audio_vocab,).
    pub fn codebook0_logits(&self, hidden: &Tensor) -> Result<Tensor> {
        hidden.apply(&self.head0)?.i((0, 0))
    }

    pub fn position(&self) -> usize {
        self.llama.position()
    }
    pub fn room(&self) -> usize {
        self.llama.room()
    }
    pub fn clear(&mut self) {
        self.llama.clear()
    }
    pub fn config(&self) -> &CsmConfig {
        &self.cfg
    }
}

/// The audio decoder: fills codebooks 1.. of a frame.
#[derive(Clone, Debug)]
pub struct CsmAudioDecoder {
    llama: Llama,
    audio: Tensor,
    projection: Linear,
    /// (codebooks - 1, decoder hidden, audio vocab): one head per codebook.
    heads: Tensor,
    cfg: Arc<CsmConfig>,
}

impl CsmAudioDecoder {
    pub fn new(cfg: Arc<CsmConfig>, layout: TensorLayout, vb: &VarBuilder) -> Result<Self> {
        let n = layout.top_names();
        let (bh, dh) = (cfg.backbone.hidden, cfg.decoder.hidden);
        Ok(Self {
            llama: Llama::new(&cfg.decoder, layout, vb.pp(n.decoder))?,
            audio: audio_embeddings(&cfg, layout, vb)?,
            projection: linear_no_bias(bh, dh, vb.pp(n.projection))?,
            heads: vb.get((cfg.num_codebooks - 1, dh, cfg.audio_vocab), n.audio_head)?,
            cfg,
        })
    }

    fn embed(&self, codebook: usize, code: u32) -> Result<Tensor> {
        let row = codebook * self.cfg.audio_vocab + code as usize;
        self.audio.narrow(0, row, 1)?.unsqueeze(0)
    }

    /// Samples codebooks 1.. after `c0` from the backbone's `hidden`, writing the
    /// whole frame (c0 first) into `out`. `sample(codebook, logits)` picks each code.
    pub fn frame(
        &mut self,
        hidden: &Tensor,
        c0: u32,
        out: &mut Vec<u32>,
        mut sample: impl FnMut(usize, &Tensor) -> Result<u32>,
    ) -> Result<()> {
        self.llama.clear();
        out.clear();
        out.push(c0);
        let mut x = Tensor::cat(&[hidden, &self.embed(0, c0)?], 1)?;
        for i in 1..self.cfg.num_codebooks {
            let h = self.llama.forward(&x.apply(&self.projection)?)?;
            let logits = h
                .i((0, 0))?
                .unsqueeze(0)?
                .matmul(&self.heads.get(i - 1)?)?
                .i(0)?;
            let code = sample(i, &logits)?;
            out.push(code);
            if i + 1 < self.cfg.num_codebooks {
                x = self.embed(i, code)?;
            }
        }
        Ok(())
    }
}
