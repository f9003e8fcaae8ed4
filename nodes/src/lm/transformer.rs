//! The Moshi LM's streaming transformer, one token per step, on [`Matrix`]
//! weights and preallocated buffers.
//!
//! Same weights, names and maths as `moshi::transformer::StreamingTransformer`
//! for what Moshi-architecture LMs use: pre-norm (RMS or layer norm), RoPE
//! (interleaved, as candle's `rope_i`) or no positions, self-attention over a
//! window of `context` steps, a SiLU-gated or GELU MLP, optional layer scale.
//! Weights and state are apart so the depformer's slices (one set of weights
//! each) can share one KV state, as moshi's `copy_state` does.

use candle::Result;
use moshi::nn::{MaybeQuantizedVarBuilder, MaybeQuantizedWeight};
use moshi::transformer::{Config, PositionalEmbedding};

use super::matrix::Matrix;

/// A weight matrix from `vb`, in the precision it was loaded in.
pub(crate) fn matrix(
    vb: &MaybeQuantizedVarBuilder,
    shape: (usize, usize),
    name: &str,
) -> Result<Matrix> {
    match vb.get(shape, name)? {
        MaybeQuantizedWeight::Real(t) => Matrix::from_tensor(&t),
        MaybeQuantizedWeight::Quantized(q) => Matrix::from_qtensor(q),
    }
}

/// A vector (norm or scale), always f32.
pub(crate) fn vector(vb: &MaybeQuantizedVarBuilder, n: usize, name: &str) -> Result<Vec<f32>> {
    vb.get_unquantized(n, name)?
        .to_dtype(candle::DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()
}

/// Pre-norm of a layer.
#[derive(Clone, Debug)]
pub(crate) enum Norm {
    /// `x / sqrt(mean(x²) + 1e-8) · alpha` (moshi's `RmsNorm`).
    Rms(Vec<f32>),
    /// `(x − mean) / sqrt(var + 1e-5) · w + b`.
    Layer(Vec<f32>, Vec<f32>),
}

impl Norm {
    pub(crate) fn new(
        cfg_norm: moshi::NormType,
        d: usize,
        vb: &MaybeQuantizedVarBuilder,
    ) -> Result<Self> {
        let alpha = |vb: &MaybeQuantizedVarBuilder| -> Result<Vec<f32>> {
            vb.get_unquantized((1, 1, d), "alpha")?
                .to_dtype(candle::DType::F32)?
                .flatten_all()?
                .to_vec1::<f32>()
        };
        Ok(match cfg_norm {
            moshi::NormType::RmsNorm => Self::Rms(alpha(vb)?),
            moshi::NormType::LayerNorm => {
                let w = if vb.contains_key("alpha") {
                    alpha(vb)?
                } else {
                    vector(vb, d, "weight")?
                };
                Self::Layer(w, vector(vb, d, "bias")?)
            }
        })
    }

    pub(crate) fn apply(&self, x: &[f32], y: &mut [f32]) {
        let d = x.len() as f32;
        match self {
            Self::Rms(a) => {
                let ms = x.iter().map(|v| v * v).sum::<f32>() / d;
                let inv = 1.0 / (ms + 1e-8).sqrt();
                for ((y, x), a) in y.iter_mut().zip(x).zip(a) {
                    *y = x * inv * a;
                }
            }
            Self::Layer(w, b) => {
                let mean = x.iter().sum::<f32>() / d;
                let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / d;
                let inv = 1.0 / (var + 1e-5).sqrt();
                for (i, y) in y.iter_mut().enumerate() {
                    *y = (x[i] - mean) * inv * w[i] + b[i];
                }
            }
        }
    }
}

#[derive(Clone, Debug)]
enum Mlp {
    /// `linear_out(silu(a) · b)` with `[a, b] = linear_in(x)`.
    Gated {
        lin_in: Matrix,
        lin_out: Matrix,
        hidden: usize,
    },
    /// `linear2(gelu(linear1(x)))`.
    Plain { lin1: Matrix, lin2: Matrix },
}

#[derive(Clone, Debug)]
struct Layer {
    norm1: Norm,
    norm2: Norm,
    in_proj: Matrix,
    out_proj: Matrix,
    mlp: Mlp,
    scale: Option<(Vec<f32>, Vec<f32>)>,
}

/// The transformer's weights (shared by every stream that runs it).
#[derive(Clone, Debug)]
pub struct Transformer {
    layers: Vec<Layer>,
    d: usize,
    heads: usize,
    /// Widest MLP activation (gated: 2 × hidden).
    ff: usize,
    context: usize,
    /// RoPE frequencies per pair of a head's dims; `None` without positions.
    inv_freq: Option<Vec<f32>>,
}

/// What a stream of steps keeps: per layer a ring of `context` keys and
/// values (grown as steps arrive, never past `context`), and the position.
#[derive(Clone, Debug, Default)]
pub struct KvState {
    k: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    pos: usize,
}

impl KvState {
    /// Forgets every step (the next one is position 0).
    pub fn reset(&mut self) {
        self.pos = 0;
    }

    /// Steps since the last reset.
    pub fn pos(&self) -> usize {
        self.pos
    }
}

/// Reused per-step buffers.
#[derive(Clone, Debug, Default)]
pub struct Scratch {
    h: Vec<f32>,
    qkv: Vec<f32>,
    att: Vec<f32>,
    o: Vec<f32>,
    f: Vec<f32>,
    scores: Vec<f32>,
    /// (sin, cos) of this step's position per rotary frequency.
    rope: Vec<(f32, f32)>,
}

impl Transformer {
    /// The variants Moshi-architecture LMs use; anything else is an error
    /// naming what is missing.
    pub fn new(cfg: &Config, vb: MaybeQuantizedVarBuilder) -> Result<Self> {
        let unsupported = [
            (cfg.kv_repeat != 1, "kv_repeat ≠ 1"),
            (!cfg.causal, "non-causal attention"),
            (!cfg.norm_first, "post-norm layers"),
            (cfg.cross_attention.is_some(), "cross-attention"),
            (cfg.use_conv_block, "conv blocks"),
            (cfg.bias_attn || cfg.bias_ff, "biases"),
            (
                cfg.positional_embedding == PositionalEmbedding::Sin,
                "sinusoidal positions",
            ),
            (
                !matches!(cfg.gating, None | Some(candle_nn::Activation::Silu)),
                "gating other than SiLU",
            ),
            (
                cfg.num_heads == 0 || cfg.d_model % cfg.num_heads != 0,
                "d_model not a multiple of the heads",
            ),
            (
                (cfg.d_model / cfg.num_heads.max(1)) % 2 != 0,
                "odd head size",
            ),
            (cfg.context == 0, "no context"),
        ];
        if let Some((_, what)) = unsupported.iter().find(|(bad, _)| *bad) {
            candle::bail!("LM transformer with {what} is not supported by antiphon's LM kernels")
        }
        let d = cfg.d_model;
        let vbl = vb.pp("layers");
        let mut layers = Vec::with_capacity(cfg.num_layers);
        let mut ff = 0;
        for i in 0..cfg.num_layers {
            let vb = vbl.pp(i);
            let mlp = match cfg.gating {
                Some(_) => {
                    // moshi's rule for the gated width.
                    let hidden = if cfg.dim_feedforward == 4 * d {
                        11 * d / 4
                    } else {
                        2 * cfg.dim_feedforward / 3
                    };
                    let g = vb.pp("gating");
                    ff = ff.max(2 * hidden);
                    Mlp::Gated {
                        lin_in: matrix(&g.pp("linear_in"), (2 * hidden, d), "weight")?,
                        lin_out: matrix(&g.pp("linear_out"), (d, hidden), "weight")?,
                        hidden,
                    }
                }
                None => {
                    ff = ff.max(cfg.dim_feedforward);
                    Mlp::Plain {
                        lin1: matrix(&vb.pp("linear1"), (cfg.dim_feedforward, d), "weight")?,
                        lin2: matrix(&vb.pp("linear2"), (d, cfg.dim_feedforward), "weight")?,
                    }
                }
            };
            let scale = match cfg.layer_scale {
                Some(_) => Some((
                    vector(&vb.pp("layer_scale_1"), d, "scale")?,
                    vector(&vb.pp("layer_scale_2"), d, "scale")?,
                )),
                None => None,
            };
            let sa = vb.pp("self_attn");
            layers.push(Layer {
                norm1: Norm::new(cfg.norm, d, &vb.pp("norm1"))?,
                norm2: Norm::new(cfg.norm, d, &vb.pp("norm2"))?,
                in_proj: matrix(&sa, (3 * d, d), "in_proj_weight")?,
                out_proj: matrix(&sa.pp("out_proj"), (d, d), "weight")?,
                mlp,
                scale,
            });
        }
        let hd = d / cfg.num_heads;
        let theta = cfg.max_period as f32;
        let inv_freq = (cfg.positional_embedding == PositionalEmbedding::Rope).then(|| {
            (0..hd)
                .step_by(2)
                .map(|i| 1f32 / theta.powf(i as f32 / hd as f32))
                .collect()
        });
        Ok(Self {
            layers,
            d,
            heads: cfg.num_heads,
            ff,
            context: cfg.context,
            inv_freq,
        })
    }

    /// Model width.
    pub fn d_model(&self) -> usize {
        self.d
    }

    /// A fresh KV state for this transformer.
    pub fn state(&self) -> KvState {
        let n = self.layers.len();
        KvState {
            k: vec![Vec::new(); n],
            v: vec![Vec::new(); n],
            pos: 0,
        }
    }

    /// Buffers for [`step`](Self::step).
    pub fn scratch(&self) -> Scratch {
        let d = self.d;
        Scratch {
            h: vec![0.0; d],
            qkv: vec![0.0; 3 * d],
            att: vec![0.0; d],
            o: vec![0.0; d],
            f: vec![0.0; self.ff.max(1)],
            scores: vec![0.0; self.heads * self.context],
            rope: vec![(0.0, 1.0); d / self.heads / 2],
        }
    }

    /// Whether any product of a step splits across threads.
    pub(crate) fn splits(&self) -> bool {
        self.layers.iter().any(|l| {
            let mlp = match &l.mlp {
                Mlp::Gated {
                    lin_in, lin_out, ..
                } => lin_in.splits() || lin_out.splits(),
                Mlp::Plain { lin1, lin2 } => lin1.splits() || lin2.splits(),
            };
            l.in_proj.splits() || l.out_proj.splits() || mlp
        })
    }

    /// Bytes of weight matrices one step reads.
    pub fn weight_bytes(&self) -> usize {
        self.layers
            .iter()
            .map(|l| {
                let mlp = match &l.mlp {
                    Mlp::Gated {
                        lin_in, lin_out, ..
                    } => lin_in.bytes() + lin_out.bytes(),
                    Mlp::Plain { lin1, lin2 } => lin1.bytes() + lin2.bytes(),
                };
                l.in_proj.bytes() + l.out_proj.bytes() + mlp
            })
            .sum()
    }

    /// One step in place: `x` (d) in, the last layer's output out.
    /// `st` must come from a transformer of the same depth and width (the
    /// depformer's slices share one).
    pub fn step(
        &self,
        x: &mut [f32],
        st: &mut KvState,
        s: &mut Scratch,
        threads: usize,
    ) -> Result<()> {
        let (d, ctx) = (self.d, self.context);
        if x.len() != d || st.k.len() != self.layers.len() || s.h.len() != d {
            candle::bail!("transformer step: input {} for width {d}", x.len());
        }
        let (heads, hd) = (self.heads, d / self.heads);
        let pos = st.pos;
        let slot = pos % ctx;
        let first = (pos + 1).saturating_sub(ctx);
        if let Some(inv_freq) = &self.inv_freq {
            for (r, f) in s.rope.iter_mut().zip(inv_freq) {
                *r = (pos as f32 * f).sin_cos();
            }
        }
        for (li, l) in self.layers.iter().enumerate() {
            l.norm1.apply(x, &mut s.h);
            l.in_proj.matvec(&s.h, 1, &mut s.qkv, threads)?;
            if self.inv_freq.is_some() {
                // Interleaved RoPE (candle's `rope_i`) on q and k of every head.
                for part in 0..2 {
                    for h in 0..heads {
                        let v = &mut s.qkv[part * d + h * hd..part * d + (h + 1) * hd];
                        for (i, &(sin, cos)) in s.rope.iter().enumerate() {
                            let (a, b) = (v[2 * i], v[2 * i + 1]);
                            v[2 * i] = a * cos - b * sin;
                            v[2 * i + 1] = a * sin + b * cos;
                        }
                    }
                }
            }
            store(&mut st.k[li], slot, &s.qkv[d..2 * d]);
            store(&mut st.v[li], slot, &s.qkv[2 * d..3 * d]);
            attend(
                &s.qkv[..d],
                (&st.k[li], &st.v[li]),
                (first, pos, ctx),
                (heads, hd),
                &mut s.att,
                &mut s.scores,
                threads,
            );
            l.out_proj.matvec(&s.att, 1, &mut s.o, threads)?;
            residual(x, &s.o, l.scale.as_ref().map(|s| &s.0[..]));
            l.norm2.apply(x, &mut s.h);
            match &l.mlp {
                Mlp::Gated {
                    lin_in,
                    lin_out,
                    hidden,
                } => {
                    let hidden = *hidden;
                    lin_in.matvec(&s.h, 1, &mut s.f[..2 * hidden], threads)?;
                    let (a, b) = s.f.split_at_mut(hidden);
                    for (a, b) in a.iter_mut().zip(&b[..hidden]) {
                        *a = *a / (1.0 + (-*a).exp()) * b;
                    }
                    lin_out.matvec(&s.f[..hidden], 1, &mut s.o, threads)?;
                }
                Mlp::Plain { lin1, lin2 } => {
                    let n = lin1.rows();
                    lin1.matvec(&s.h, 1, &mut s.f[..n], threads)?;
                    crate::mimi_transformer::gelu_erf(&mut s.f[..n]);
                    lin2.matvec(&s.f[..n], 1, &mut s.o, threads)?;
                }
            }
            residual(x, &s.o, l.scale.as_ref().map(|s| &s.1[..]));
        }
        st.pos = pos + 1;
        Ok(())
    }
}

/// `x += scale · o` (scale 1 without layer scale).
fn residual(x: &mut [f32], o: &[f32], scale: Option<&[f32]>) {
    match scale {
        Some(sc) => x
            .iter_mut()
            .zip(o)
            .zip(sc)
            .for_each(|((x, o), s)| *x += s * o),
        None => x.iter_mut().zip(o).for_each(|(x, o)| *x += o),
    }
}

/// Writes one step's keys (or values) into ring slot `slot`, growing the
/// ring by one slot while it is not yet full (slots fill in order).
fn store(ring: &mut Vec<f32>, slot: usize, row: &[f32]) {
    let d = row.len();
    if slot * d == ring.len() {
        ring.extend_from_slice(row);
    } else {
        ring[slot * d..(slot + 1) * d].copy_from_slice(row);
    }
}

/// Softmax attention of the query `q` (d) over positions `first..=last` of
/// the rings, per head, into `out` (d). Heads are split across `threads`
/// once the window is long enough to pay for it. Over a long window this
/// reads more than the layer's weights (2 × context × d floats), so the
/// loops are compiled a second time for AVX2+FMA and chosen at run time.
#[allow(clippy::too_many_arguments)]
fn attend(
    q: &[f32],
    kv: (&[f32], &[f32]),
    span: (usize, usize, usize),
    shape: (usize, usize),
    out: &mut [f32],
    scores: &mut [f32],
    threads: usize,
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // Safety: the features were just detected.
        return unsafe { attend_avx2(q, kv, span, shape, out, scores, threads) };
    }
    attend_portable(q, kv, span, shape, out, scores, threads)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn attend_avx2(
    q: &[f32],
    kv: (&[f32], &[f32]),
    span: (usize, usize, usize),
    shape: (usize, usize),
    out: &mut [f32],
    scores: &mut [f32],
    threads: usize,
) {
    attend_portable(q, kv, span, shape, out, scores, threads)
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn attend_portable(
    q: &[f32],
    (k, v): (&[f32], &[f32]),
    (first, last, ctx): (usize, usize, usize),
    (heads, hd): (usize, usize),
    out: &mut [f32],
    scores: &mut [f32],
    threads: usize,
) {
    let d = heads * hd;
    let n = last + 1 - first;
    let scale = (hd as f64).powf(-0.5) as f32;
    let head = |h: usize, out: &mut [f32], sc: &mut [f32]| {
        let q = &q[h * hd..(h + 1) * hd];
        let sc = &mut sc[..n];
        let mut max = f32::NEG_INFINITY;
        for (j, p) in (first..=last).enumerate() {
            let k = &k[(p % ctx) * d + h * hd..][..hd];
            sc[j] = dot(q, k) * scale;
            max = max.max(sc[j]);
        }
        let mut sum = 0.0;
        for v in sc.iter_mut() {
            *v = (*v - max).exp();
            sum += *v;
        }
        out.fill(0.0);
        for (j, p) in (first..=last).enumerate() {
            let w = sc[j] / sum;
            let v = &v[(p % ctx) * d + h * hd..][..hd];
            out.iter_mut().zip(v).for_each(|(o, x)| *o += w * x);
        }
    };
    if threads > 1 && n * d >= 1 << 16 {
        let per = heads.div_ceil(threads);
        let head = &head;
        rayon::scope(|s| {
            let groups = out.chunks_mut(per * hd).zip(scores.chunks_mut(per * ctx));
            for (g, (out, sc)) in groups.enumerate() {
                s.spawn(move |_| {
                    for (i, (o, sc)) in out.chunks_mut(hd).zip(sc.chunks_mut(ctx)).enumerate() {
                        head(g * per + i, o, sc);
                    }
                });
            }
        });
    } else {
        for (h, (o, sc)) in out.chunks_mut(hd).zip(scores.chunks_mut(ctx)).enumerate() {
            head(h, o, sc);
        }
    }
}

/// A dot product with 8 independent sums (so it vectorises: 8 lanes of
/// AVX2 where the CPU has it, see [`attend`]).
#[inline(always)]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}
