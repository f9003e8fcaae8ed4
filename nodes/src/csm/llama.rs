//! A Llama-3 decoder stack with configurable sizes, as CSM uses it twice (the
//! backbone and the audio decoder).
//!
//! Why our own and not `candle_transformers::models::csm`: that module fixes its
//! sizes to two named flavours, reads only Sesame's tensor names, always uses
//! interleaved RoPE and grows its KV cache by concatenation. The tiny stand-in
//! needs other sizes, the Hugging Face layout needs its names and half-split
//! RoPE, and our caches are preallocated to the model's context and refuse to
//! grow past it.

use candle::{DType, Device, Module, Result, Tensor};
use candle_nn::kv_cache::KvCache;
use candle_nn::{linear_no_bias, Linear, RmsNorm, VarBuilder};

use super::config::{LlamaSpec, TensorLayout};

/// Cos/sin tables for every position of the context.
#[derive(Clone, Debug)]
struct Rope {
    cos: Tensor,
    sin: Tensor,
    /// Sesame (torchtune) rotates adjacent pairs; Hugging Face rotates halves.
    interleaved: bool,
}

impl Rope {
    fn new(spec: &LlamaSpec, interleaved: bool, dev: &Device) -> Result<Self> {
        let inv = spec.rope.inv_freq(spec.head_dim);
        let n = inv.len();
        let theta = Tensor::from_vec(inv, (1, n), dev)?;
        let pos = Tensor::arange(0u32, spec.max_positions as u32, dev)?
            .to_dtype(DType::F32)?
            .reshape((spec.max_positions, 1))?;
        let freqs = pos.matmul(&theta)?;
        Ok(Self {
            cos: freqs.cos()?,
            sin: freqs.sin()?,
            interleaved,
        })
    }

    fn apply(&self, x: &Tensor, offset: usize) -> Result<Tensor> {
        let seq = x.dim(2)?;
        let cos = self.cos.narrow(0, offset, seq)?;
        let sin = self.sin.narrow(0, offset, seq)?;
        if self.interleaved {
            candle_nn::rotary_emb::rope_i(x, &cos, &sin)
        } else {
            candle_nn::rotary_emb::rope(x, &cos, &sin)
        }
    }
}

#[derive(Clone, Debug)]
struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    cache: KvCache,
}

#[derive(Clone, Debug)]
struct Mlp {
    gate: Linear,
    up: Linear,
    down: Linear,
}

impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        (x.apply(&self.gate)?.silu()? * x.apply(&self.up)?)?.apply(&self.down)
    }
}

#[derive(Clone, Debug)]
struct Layer {
    attn_norm: RmsNorm,
    attn: Attention,
    mlp_norm: RmsNorm,
    mlp: Mlp,
}

/// A Llama stack (layers + final norm) with its KV cache.
#[derive(Clone, Debug)]
pub struct Llama {
    layers: Vec<Layer>,
    norm: RmsNorm,
    rope: Rope,
    pos: usize,
    max_positions: usize,
}

fn norm(dim: usize, eps: f64, vb: VarBuilder, layout: TensorLayout) -> Result<RmsNorm> {
    Ok(RmsNorm::new(vb.get(dim, layout.norm_weight())?, eps))
}

impl Llama {
    /// Builds from the stack's root (`backbone`, `depth_decoder.model`, …).
    pub fn new(spec: &LlamaSpec, layout: TensorLayout, vb: VarBuilder) -> Result<Self> {
        let h = spec.hidden;
        let (hd, kvd) = (spec.heads * spec.head_dim, spec.kv_heads * spec.head_dim);
        let names = layout.layer_names();
        let layers = (0..spec.layers)
            .map(|i| {
                let l = vb.pp("layers").pp(i);
                let a = l.pp(names.attn);
                let m = l.pp("mlp");
                Ok(Layer {
                    attn_norm: norm(h, spec.eps, l.pp(names.attn_norm), layout)?,
                    attn: Attention {
                        q: linear_no_bias(h, hd, a.pp("q_proj"))?,
                        k: linear_no_bias(h, kvd, a.pp("k_proj"))?,
                        v: linear_no_bias(h, kvd, a.pp("v_proj"))?,
                        o: linear_no_bias(hd, h, a.pp(names.o_proj))?,
                        heads: spec.heads,
                        kv_heads: spec.kv_heads,
                        head_dim: spec.head_dim,
                        cache: KvCache::new(2, spec.max_positions),
                    },
                    mlp_norm: norm(h, spec.eps, l.pp(names.mlp_norm), layout)?,
                    mlp: Mlp {
                        gate: linear_no_bias(h, spec.intermediate, m.pp(names.gate))?,
                        up: linear_no_bias(h, spec.intermediate, m.pp(names.up))?,
                        down: linear_no_bias(spec.intermediate, h, m.pp(names.down))?,
                    },
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            layers,
            norm: norm(h, spec.eps, vb.pp("norm"), layout)?,
            rope: Rope::new(spec, layout.interleaved_rope(), vb.device())?,
            pos: 0,
            max_positions: spec.max_positions,
        })
    }

    /// Positions used so far (the KV cache length).
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Positions left in the context.
    pub fn room(&self) -> usize {
        self.max_positions - self.pos
    }

    /// Runs `x` (1, seq, hidden) at the next positions; returns the final-norm
    /// output of the last position, (1, 1, hidden).
    pub fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        let (_, seq, _) = x.dims3()?;
        if seq > self.room() {
            candle::bail!(
                "context full: {seq} more positions after {} of {}",
                self.pos,
                self.max_positions
            )
        }
        let mask = causal_mask(seq, self.pos, x.device())?;
        let mut x = x.clone();
        for l in &mut self.layers {
            let a = l
                .attn
                .forward(&x.apply(&l.attn_norm)?, mask.as_ref(), &self.rope, self.pos)?;
            x = (x + a)?;
            let m = x.apply(&l.mlp_norm)?.apply(&l.mlp)?;
            x = (x + m)?;
        }
        self.pos += seq;
        x.narrow(1, seq - 1, 1)?.apply(&self.norm)
    }

    /// Forgets every position (the caches stay allocated).
    pub fn clear(&mut self) {
        for l in &mut self.layers {
            l.attn.cache.reset();
        }
        self.pos = 0;
    }
}

/// Additive mask for `seq` new positions after `offset` cached ones (None for one).
fn causal_mask(seq: usize, offset: usize, dev: &Device) -> Result<Option<Tensor>> {
    if seq <= 1 {
        return Ok(None);
    }
    let total = seq + offset;
    let m: Vec<f32> = (0..seq)
        .flat_map(|i| {
            (0..total).map(move |j| {
                if j > i + offset {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
        })
        .collect();
    Tensor::from_vec(m, (1, 1, seq, total), dev).map(Some)
}

impl Attention {
    fn forward(
        &mut self,
        x: &Tensor,
        mask: Option<&Tensor>,
        rope: &Rope,
        offset: usize,
    ) -> Result<Tensor> {
        let (b, seq, _) = x.dims3()?;
        let split = |t: Tensor, heads: usize| -> Result<Tensor> {
            t.reshape((b, seq, heads, self.head_dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = rope.apply(&split(x.apply(&self.q)?, self.heads)?, offset)?;
        let k = rope.apply(&split(x.apply(&self.k)?, self.kv_heads)?, offset)?;
        let v = split(x.apply(&self.v)?, self.kv_heads)?;
        let (k, v) = self.cache.append(&k, &v)?;
        let rep = self.heads / self.kv_heads;
        let k = candle_transformers::utils::repeat_kv(k, rep)?.contiguous()?;
        let v = candle_transformers::utils::repeat_kv(v, rep)?.contiguous()?;
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let w = (q.matmul(&k.t()?)? * scale)?;
        let w = match mask {
            Some(m) => w.broadcast_add(m)?,
            None => w,
        };
        let w = candle_nn::ops::softmax_last_dim(&w)?;
        w.matmul(&v)?
            .transpose(1, 2)?
            .reshape((b, seq, self.heads * self.head_dim))?
            .apply(&self.o)
    }
}
