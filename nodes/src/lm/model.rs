//! The Moshi LM on our kernels: the temporal transformer step
//! ([`LmBackbone`]) and the depformer ([`LmDepformer`]), built from the same
//! var-builder and names as `moshi::lm::{LmModel, DepFormer}` and equal to
//! them to float rounding on f32 weights (`nodes/tests/lm_kernels.rs`).

use std::sync::Arc;

use candle::{Device, Result, Tensor};
use candle_transformers::generation::LogitsProcessor;
use moshi::lm::{Config, DepFormerConfig};
use moshi::nn::MaybeQuantizedVarBuilder;

use super::matrix::Matrix;
use super::transformer::{matrix, KvState, Norm, Scratch, Transformer};

use crate::pool::{on_pool, threads};

/// An embedding table (vocab × dim), optionally low-rank (then `low_rank`
/// maps its rows up to the model width).
#[derive(Clone, Debug)]
struct Embedding {
    table: Matrix,
    low_rank: Option<Matrix>,
}

impl Embedding {
    fn new(
        vocab: usize,
        dim: usize,
        low_rank: Option<usize>,
        vb: &MaybeQuantizedVarBuilder,
    ) -> Result<Self> {
        let width = low_rank.unwrap_or(dim);
        let mut table = matrix(vb, (vocab, width), "weight")?;
        if !table.reads_rows() {
            // A quantisation our kernels do not read (k-quants, …): expand
            // the table once here, not on every lookup.
            table = Matrix::from_tensor(&vb.get_as_tensor((vocab, width), "weight")?)?;
        }
        let low_rank = match low_rank {
            Some(r) => Some(matrix(&vb.pp("low_rank"), (dim, r), "weight")?),
            None => None,
        };
        Ok(Self { table, low_rank })
    }

    /// `out += emb(token)`; `tmp` holds a table row.
    fn add(&self, token: u32, out: &mut [f32], tmp: &mut [f32], threads: usize) -> Result<()> {
        let r = self.table.cols();
        self.table.row_into(token as usize, &mut tmp[..r])?;
        match &self.low_rank {
            None => out.iter_mut().zip(&tmp[..r]).for_each(|(o, e)| *o += e),
            Some(up) => {
                let d = out.len();
                let (row, up_out) = tmp.split_at_mut(r);
                up.matvec(row, 1, &mut up_out[..d], threads)?;
                out.iter_mut().zip(&up_out[..d]).for_each(|(o, e)| *o += e);
            }
        }
        Ok(())
    }

    fn vocab(&self) -> usize {
        self.table.rows()
    }

    /// Room `add` needs in `tmp`.
    fn tmp_len(&self, d: usize) -> usize {
        self.table.cols() + if self.low_rank.is_some() { d } else { 0 }
    }
}

#[derive(Debug)]
struct BackboneWeights {
    transformer: Transformer,
    text_emb: Embedding,
    audio_embs: Vec<Embedding>,
    out_norm: Norm,
    text_linear: Matrix,
}

/// The temporal transformer: one step per frame, text logits and the
/// hidden state the depformer starts from.
#[derive(Clone, Debug)]
pub struct LmBackbone {
    w: Arc<BackboneWeights>,
    st: KvState,
    s: Scratch,
    threads: usize,
    x: Vec<f32>,
    hidden: Vec<f32>,
    logits: Vec<f32>,
    tmp: Vec<f32>,
}

impl LmBackbone {
    /// `vb` at the LM's root (`transformer.*`, `text_emb`, `emb.N`, `out_norm`, `text_linear`).
    pub fn new(cfg: &Config, vb: MaybeQuantizedVarBuilder) -> Result<Self> {
        if cfg.conditioners.is_some() || cfg.extra_heads.is_some() {
            candle::bail!(
                "LMs with conditioners or extra heads are not supported by antiphon's LM kernels"
            )
        }
        let d = cfg.transformer.d_model;
        let transformer = Transformer::new(&cfg.transformer, vb.pp("transformer"))?;
        let text_emb = Embedding::new(cfg.text_in_vocab_size, d, None, &vb.pp("text_emb"))?;
        let audio_embs = (0..cfg.audio_codebooks)
            .map(|i| Embedding::new(cfg.audio_vocab_size, d, None, &vb.pp("emb").pp(i)))
            .collect::<Result<Vec<_>>>()?;
        let out_norm = Norm::new(cfg.transformer.norm, d, &vb.pp("out_norm"))?;
        let text_linear = matrix(
            &vb.pp("text_linear"),
            (cfg.text_out_vocab_size, d),
            "weight",
        )?;
        let w = BackboneWeights {
            transformer,
            text_emb,
            audio_embs,
            out_norm,
            text_linear,
        };
        Ok(Self::from_weights(Arc::new(w)))
    }

    fn from_weights(w: Arc<BackboneWeights>) -> Self {
        let d = w.transformer.d_model();
        let splits = w.transformer.splits() || w.text_linear.splits();
        Self {
            st: w.transformer.state(),
            s: w.transformer.scratch(),
            threads: if splits { threads() } else { 1 },
            x: vec![0.0; d],
            hidden: vec![0.0; d],
            logits: vec![0.0; w.text_linear.rows()],
            tmp: vec![0.0; d],
            w,
        }
    }

    /// A fresh stream over the same weights.
    pub fn fresh(&self) -> Self {
        Self::from_weights(self.w.clone())
    }

    /// Forgets the conversation.
    pub fn reset(&mut self) {
        self.st.reset();
    }

    /// Audio codebooks it reads per step.
    pub fn audio_codebooks(&self) -> usize {
        self.w.audio_embs.len()
    }

    /// Bytes of weight matrices one step reads (embedding rows aside).
    pub fn weight_bytes(&self) -> usize {
        self.w.transformer.weight_bytes() + self.w.text_linear.bytes()
    }

    /// One step: the text token and one token per audio codebook (`None`:
    /// no input there) → (text logits, hidden state after the out norm).
    pub fn step(&mut self, text: Option<u32>, audio: &[Option<u32>]) -> Result<(&[f32], &[f32])> {
        let w = &self.w;
        if audio.len() > w.audio_embs.len() {
            candle::bail!(
                "{} audio tokens for {} codebooks",
                audio.len(),
                w.audio_embs.len()
            )
        }
        self.x.fill(0.0);
        let tokens =
            std::iter::once((text, &w.text_emb)).chain(audio.iter().copied().zip(&w.audio_embs));
        for (tok, emb) in tokens {
            if let Some(t) = tok {
                if t as usize >= emb.vocab() {
                    candle::bail!("token {t} outside a vocabulary of {}", emb.vocab())
                }
                emb.add(t, &mut self.x, &mut self.tmp, self.threads)?;
            }
        }
        let threads = self.threads;
        let (x, st, s) = (&mut self.x, &mut self.st, &mut self.s);
        let (hidden, logits) = (&mut self.hidden, &mut self.logits);
        on_pool(threads, || -> Result<()> {
            w.transformer.step(x, st, s, threads)?;
            w.out_norm.apply(x, hidden);
            w.text_linear.matvec(hidden, 1, logits, threads)
        })?;
        Ok((&self.logits, &self.hidden))
    }
}

#[derive(Debug)]
struct Slice {
    transformer: Transformer,
    emb: Embedding,
    linear_in: Matrix,
    linear_out: Matrix,
}

/// The depformer: per frame, one slice per generated codebook, each with its
/// own weights, all on one KV state (reset at the frame's first slice).
#[derive(Clone, Debug)]
pub struct LmDepformer {
    slices: Arc<Vec<Slice>>,
    st: KvState,
    s: Scratch,
    threads: usize,
    x: Vec<f32>,
    logits: Vec<f32>,
    tmp: Vec<f32>,
}

impl LmDepformer {
    /// `vb` at `depformer` (slices `0..num_slices`).
    pub fn new(
        text_vocab: usize,
        audio_vocab: usize,
        main_dim: usize,
        cfg: &DepFormerConfig,
        vb: MaybeQuantizedVarBuilder,
    ) -> Result<Self> {
        let d = cfg.transformer.d_model;
        let slices = (0..cfg.num_slices)
            .map(|i| {
                let vb = vb.pp(i);
                let vocab = if i == 0 { text_vocab } else { audio_vocab };
                Ok(Slice {
                    transformer: Transformer::new(&cfg.transformer, vb.pp("transformer"))?,
                    emb: Embedding::new(vocab, d, cfg.low_rank_embeddings, &vb.pp("emb"))?,
                    linear_in: matrix(&vb.pp("linear_in"), (d, main_dim), "weight")?,
                    // The depformer cannot emit the audio padding token.
                    linear_out: matrix(&vb.pp("linear_out"), (audio_vocab - 1, d), "weight")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self::from_slices(Arc::new(slices), d))
    }

    fn from_slices(slices: Arc<Vec<Slice>>, d: usize) -> Self {
        let (st, s, vocab, tmp) = match slices.first() {
            Some(s0) => (
                s0.transformer.state(),
                s0.transformer.scratch(),
                s0.linear_out.rows(),
                slices.iter().map(|s| s.emb.tmp_len(d)).max().unwrap_or(d),
            ),
            None => (Default::default(), Default::default(), 0, 0),
        };
        let splits = slices
            .iter()
            .any(|s| s.transformer.splits() || s.linear_in.splits() || s.linear_out.splits());
        Self {
            slices,
            st,
            s,
            threads: if splits { threads() } else { 1 },
            x: vec![0.0; d],
            logits: vec![0.0; vocab],
            tmp: vec![0.0; tmp],
        }
    }

    /// A fresh depformer over the same weights.
    pub fn fresh(&self) -> Self {
        Self::from_slices(self.slices.clone(), self.x.len())
    }

    /// Codebooks it generates per frame.
    pub fn num_slices(&self) -> usize {
        self.slices.len()
    }

    /// Bytes of weight matrices one frame reads.
    pub fn weight_bytes(&self) -> usize {
        self.slices
            .iter()
            .map(|s| s.transformer.weight_bytes() + s.linear_in.bytes() + s.linear_out.bytes())
            .sum()
    }

    /// Samples one token per slice, as `moshi::lm::DepFormer::sample`: each
    /// slice reads the backbone's `hidden` plus the previous token (the text
    /// token for the first; a forced token where `forced` has one).
    pub fn sample(
        &mut self,
        hidden: &[f32],
        text_token: Option<u32>,
        forced: &[Option<u32>],
        lp: &mut LogitsProcessor,
    ) -> Result<Vec<u32>> {
        let mut tokens = Vec::with_capacity(self.slices.len());
        self.sample_with(hidden, text_token, forced, |logits| {
            let t = lp.sample(&Tensor::from_slice(logits, logits.len(), &Device::Cpu)?)?;
            tokens.push(t);
            Ok(t)
        })?;
        Ok(tokens)
    }

    /// [`sample`](Self::sample) with the caller choosing each token from the
    /// slice's logits.
    pub fn sample_with(
        &mut self,
        hidden: &[f32],
        text_token: Option<u32>,
        forced: &[Option<u32>],
        mut choose: impl FnMut(&[f32]) -> Result<u32>,
    ) -> Result<()> {
        self.st.reset();
        let mut last = text_token;
        for (i, slice) in self.slices.iter().enumerate() {
            if hidden.len() != slice.linear_in.cols() {
                candle::bail!(
                    "depformer input of {} for width {}",
                    hidden.len(),
                    slice.linear_in.cols()
                )
            }
            if let Some(t) = last {
                if t as usize >= slice.emb.vocab() {
                    candle::bail!("token {t} outside a vocabulary of {}", slice.emb.vocab())
                }
            }
            let threads = self.threads;
            let (x, st, s, tmp) = (&mut self.x, &mut self.st, &mut self.s, &mut self.tmp);
            let logits = &mut self.logits;
            on_pool(threads, || -> Result<()> {
                slice.linear_in.matvec(hidden, 1, x, threads)?;
                if let Some(t) = last {
                    slice.emb.add(t, x, tmp, threads)?;
                }
                slice.transformer.step(x, st, s, threads)?;
                slice.linear_out.matvec(x, 1, logits, threads)
            })?;
            let token = choose(&self.logits)?;
            last = Some(forced.get(i).copied().flatten().unwrap_or(token));
        }
        Ok(())
    }
}
