//! Mimi's streaming transformer (8 layers at 25 Hz: LayerNorm, RoPE
//! self-attention over a 250-step window, GELU MLP, layer scale) on
//! preallocated buffers, for the two latent frames of each 80 ms step.
//!
//! Why not moshi's: at two tokens a step the layer is four thin matrix
//! products (weight-bandwidth bound) plus ~30 small tensor ops, and candle
//! allocates a tensor for each op, rebuilds the attention mask and RoPE tables
//! every step and copies K/V through `cat`. Here each product is one gemm into
//! a reused buffer, the K/V cache is a fixed ring, and the mask is implied by
//! positions. Same weights, names and maths as `moshi::transformer` (the
//! `Standard` variant with `conv_layout`), equal to rounding.

use candle::DType;
use candle_nn::VarBuilder;
use gemm::{gemm, Parallelism};

use moshi::nn::MaybeQuantizedVarBuilder;

use crate::lm::Norm;
use crate::simd::{thin_matmul, THIN_MAX};
use crate::stream_conv::threads;
use crate::weights_mem::Weights;

/// `y (m × n) = x (m × k) · Wᵀ` with `W` (n × k) row-major.
fn linear(par: Parallelism, x: &[f32], w: &[f32], y: &mut [f32], m: usize, k: usize, n: usize) {
    if m <= THIN_MAX {
        return thin_matmul(w, x, (m, k, n), y, (n, 1), false, threads(par));
    }
    debug_assert!(x.len() >= m * k && w.len() == n * k && y.len() >= m * n);
    // Safety: sizes checked above; all views are dense row-major.
    unsafe {
        gemm(
            m,
            n,
            k,
            y.as_mut_ptr(),
            1,
            n as isize,
            false,
            x.as_ptr(),
            1,
            k as isize,
            w.as_ptr(),
            k as isize,
            1,
            0.0,
            1.0,
            false,
            false,
            false,
            par,
        )
    }
}

/// `norm` on each `d`-wide row of `x` (one per frame of the step).
fn norm_rows(norm: &Norm, x: &[f32], y: &mut [f32], d: usize) {
    for (xr, yr) in x.chunks_exact(d).zip(y.chunks_exact_mut(d)) {
        norm.apply(xr, yr);
    }
}

pub(crate) fn gelu_erf(v: &mut [f32]) {
    for x in v.iter_mut() {
        let xf = *x as f64;
        *x = (0.5 * xf * (1.0 + erf(xf / std::f64::consts::SQRT_2))) as f32;
    }
}

/// erf with |error| < 1.2e-7 (Numerical Recipes' erfc Chebyshev fit), in f64.
fn erf(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 {
        1.0 - r
    } else {
        r - 1.0
    }
}

#[derive(Clone, Debug)]
struct Layer {
    norm1: Norm,
    norm2: Norm,
    in_proj: Weights<f32>,
    out_proj: Weights<f32>,
    linear1: Weights<f32>,
    linear2: Weights<f32>,
    scale1: Vec<f32>,
    scale2: Vec<f32>,
    /// Ring of (context, d) keys and values (RoPE applied to keys).
    k: Vec<f32>,
    v: Vec<f32>,
}

impl Layer {
    fn new(cfg: &moshi::transformer::Config, vb: VarBuilder) -> candle::Result<Self> {
        let d = cfg.d_model;
        let get1 = |vb: &VarBuilder, n: usize, name: &str| -> candle::Result<Vec<f32>> {
            vb.get(n, name)?.to_dtype(DType::F32)?.to_vec1::<f32>()
        };
        let get2 =
            |vb: &VarBuilder, (r, c): (usize, usize), name: &str| -> candle::Result<Weights<f32>> {
                Weights::from_tensor(&vb.get((r, c), name)?.to_dtype(DType::F32)?)
            };
        // The LM's pre-norm, layer-norm variant (Mimi's `alpha` or `weight`, and `bias`).
        let norm = |vb: VarBuilder| Norm::new(cfg.norm, d, &MaybeQuantizedVarBuilder::Real(vb));
        let ff = cfg.dim_feedforward;
        Ok(Self {
            norm1: norm(vb.pp("norm1"))?,
            norm2: norm(vb.pp("norm2"))?,
            in_proj: get2(&vb.pp("self_attn"), (3 * d, d), "in_proj_weight")?,
            out_proj: get2(&vb.pp("self_attn").pp("out_proj"), (d, d), "weight")?,
            linear1: get2(&vb.pp("linear1"), (ff, d), "weight")?,
            linear2: get2(&vb.pp("linear2"), (d, ff), "weight")?,
            scale1: get1(&vb.pp("layer_scale_1"), d, "scale")?,
            scale2: get1(&vb.pp("layer_scale_2"), d, "scale")?,
            k: vec![0.0; cfg.context * d],
            v: vec![0.0; cfg.context * d],
        })
    }
}

/// Mimi's streaming transformer for a fixed number of frames per step.
#[derive(Clone, Debug)]
pub struct MimiTransformer {
    layers: Vec<Layer>,
    d: usize,
    heads: usize,
    ff: usize,
    context: usize,
    /// Frames per step.
    t: usize,
    inv_freq: Vec<f32>,
    /// Frames seen since the last reset (the next frame's position).
    pos: usize,
    par: Parallelism,
    x: Vec<f32>,
    h: Vec<f32>,
    qkv: Vec<f32>,
    att: Vec<f32>,
    o: Vec<f32>,
    f: Vec<f32>,
    scores: Vec<f32>,
    /// (sin, cos) per frame of the step and rotary frequency.
    rope: Vec<(f32, f32)>,
    /// (d, t): the conv-layout output.
    out: Vec<f32>,
}

impl MimiTransformer {
    /// `vb` at e.g. `encoder_transformer`; `t` frames per step.
    pub fn new(
        cfg: &moshi::transformer::Config,
        t: usize,
        vb: VarBuilder,
        par: Parallelism,
    ) -> candle::Result<Self> {
        let mimi_like = cfg.norm == moshi::NormType::LayerNorm
            && cfg.gating.is_none()
            && cfg.positional_embedding == moshi::transformer::PositionalEmbedding::Rope
            && cfg.layer_scale.is_some()
            && !cfg.bias_ff
            && !cfg.bias_attn
            && cfg.kv_repeat == 1
            && cfg.causal
            && cfg.norm_first
            && cfg.conv_layout
            && cfg.cross_attention.is_none()
            && !cfg.use_conv_block
            && cfg.num_heads > 0
            && cfg.d_model % cfg.num_heads == 0
            && (cfg.d_model / cfg.num_heads) % 2 == 0
            && cfg.context > 0;
        if !mimi_like {
            candle::bail!(
                "transformer variant not supported by the streaming kernels (needs Mimi's)"
            )
        }
        let (d, ff) = (cfg.d_model, cfg.dim_feedforward);
        let vbl = vb.pp("transformer").pp("layers");
        let layers = (0..cfg.num_layers)
            .map(|i| Layer::new(cfg, vbl.pp(i)))
            .collect::<candle::Result<Vec<_>>>()?;
        let hd = d / cfg.num_heads;
        let theta = cfg.max_period as f32;
        let inv_freq = (0..hd)
            .step_by(2)
            .map(|i| 1f32 / theta.powf(i as f32 / hd as f32))
            .collect();
        Ok(Self {
            layers,
            d,
            heads: cfg.num_heads,
            ff,
            context: cfg.context,
            t,
            inv_freq,
            pos: 0,
            par,
            x: vec![0.0; t * d],
            h: vec![0.0; t * d],
            qkv: vec![0.0; t * 3 * d],
            att: vec![0.0; t * d],
            o: vec![0.0; t * d],
            f: vec![0.0; t * ff],
            scores: vec![0.0; cfg.context],
            rope: vec![(0.0, 1.0); t * hd / 2],
            out: vec![0.0; t * d],
        })
    }

    pub fn reset(&mut self) {
        self.pos = 0;
    }

    /// Whether its products split across threads (see [`thin_matmul`]).
    pub fn splits(&self) -> bool {
        threads(self.par) > 1 && self.d * self.ff >= crate::simd::SPLIT_MIN
    }

    /// One step: `x` is (d, t) (conv layout); returns (d, t).
    pub fn step(&mut self, x: &[f32]) -> &[f32] {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // Safety: the features were just detected.
            unsafe { self.step_avx2(x) };
            return &self.out;
        }
        self.step_portable(x);
        &self.out
    }

    /// The step compiled for AVX2+FMA: the attention's dot products and
    /// weighted sums (250 keys × 8 heads × 8 layers a frame) vectorise 8 wide.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn step_avx2(&mut self, x: &[f32]) {
        self.step_portable(x)
    }

    #[inline(always)]
    fn step_portable(&mut self, x: &[f32]) {
        let (d, t, ff, ctx) = (self.d, self.t, self.ff, self.context);
        let (heads, hd) = (self.heads, self.d / self.heads);
        assert_eq!(x.len(), d * t, "transformer input size");
        for c in 0..d {
            for s in 0..t {
                self.x[s * d + c] = x[c * t + s];
            }
        }
        let scale = (hd as f64).powf(-0.5) as f32;
        let half = hd / 2;
        for s in 0..t {
            let p = (self.pos + s) as f32;
            for (i, f) in self.inv_freq.iter().enumerate() {
                self.rope[s * half + i] = (p * f).sin_cos();
            }
        }
        let n_after = self.pos + t;
        let first = n_after.saturating_sub(ctx);
        for l in self.layers.iter_mut() {
            norm_rows(&l.norm1, &self.x, &mut self.h, d);
            linear(self.par, &self.h, &l.in_proj, &mut self.qkv, t, d, 3 * d);
            for s in 0..t {
                let rope = &self.rope[s * half..(s + 1) * half];
                let row = &mut self.qkv[s * 3 * d..(s + 1) * 3 * d];
                // Interleaved RoPE (candle's `rope_i`) on q and k of every head.
                for part in 0..2 {
                    for h in 0..heads {
                        let v = &mut row[part * d + h * hd..part * d + (h + 1) * hd];
                        for (i, &(sin, cos)) in rope.iter().enumerate() {
                            let (a, b) = (v[2 * i], v[2 * i + 1]);
                            v[2 * i] = a * cos - b * sin;
                            v[2 * i + 1] = a * sin + b * cos;
                        }
                    }
                }
                let slot = (self.pos + s) % ctx;
                l.k[slot * d..(slot + 1) * d].copy_from_slice(&row[d..2 * d]);
                l.v[slot * d..(slot + 1) * d].copy_from_slice(&row[2 * d..3 * d]);
            }
            for s in 0..t {
                let qpos = self.pos + s;
                let keys = first..=qpos;
                let n = keys.clone().count();
                for h in 0..heads {
                    let q = &self.qkv[s * 3 * d + h * hd..s * 3 * d + (h + 1) * hd];
                    let sc = &mut self.scores[..n];
                    let mut max = f32::NEG_INFINITY;
                    for (j, kp) in keys.clone().enumerate() {
                        let k = &l.k[(kp % ctx) * d + h * hd..][..hd];
                        sc[j] = crate::lm::dot(q, k) * scale;
                        max = max.max(sc[j]);
                    }
                    let mut sum = 0.0;
                    for v in sc.iter_mut() {
                        *v = (*v - max).exp();
                        sum += *v;
                    }
                    let out = &mut self.att[s * d + h * hd..s * d + (h + 1) * hd];
                    out.fill(0.0);
                    for (j, kp) in keys.clone().enumerate() {
                        let w = sc[j] / sum;
                        let v = &l.v[(kp % ctx) * d + h * hd..][..hd];
                        for (o, x) in out.iter_mut().zip(v) {
                            *o += w * x;
                        }
                    }
                }
            }
            linear(self.par, &self.att, &l.out_proj, &mut self.o, t, d, d);
            for (i, x) in self.x.iter_mut().enumerate() {
                *x += l.scale1[i % d] * self.o[i];
            }
            norm_rows(&l.norm2, &self.x, &mut self.h, d);
            linear(self.par, &self.h, &l.linear1, &mut self.f, t, d, ff);
            gelu_erf(&mut self.f);
            linear(self.par, &self.f, &l.linear2, &mut self.o, t, ff, d);
            for (i, x) in self.x.iter_mut().enumerate() {
                *x += l.scale2[i % d] * self.o[i];
            }
        }
        self.pos = n_after;
        for c in 0..d {
            for s in 0..t {
                self.out[c * t + s] = self.x[s * d + c];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle::{Device, Tensor};
    use moshi::{StreamMask, StreamTensor, StreamingModule};

    /// Against moshi's transformer on the tiny Mimi's weights, past the
    /// 250-frame window (the KV ring wraps), across a reset.
    #[test]
    fn equals_moshi_transformer_through_the_window_and_a_reset() {
        let spec = crate::builtin::tiny_mimi_spec();
        let cfg = spec.to_moshi().unwrap();
        let tensors = crate::builtin::make_mimi_tensors(&spec, 3).unwrap();
        let vb = VarBuilder::from_tensors(tensors.into_iter().collect(), DType::F32, &Device::Cpu);
        let vb = vb.pp("encoder_transformer");
        let d = cfg.transformer.d_model;
        let mut reference =
            moshi::transformer::Transformer::new(None, d, &cfg.transformer, vb.clone()).unwrap();
        let mut ours = MimiTransformer::new(&cfg.transformer, 2, vb, Parallelism::None).unwrap();
        let mut rng = crate::rng::SplitMix64::new(5);
        let mut worst = 0f32;
        for step in 0..140 {
            if step == 130 {
                reference.reset_state();
                ours.reset();
            }
            let x: Vec<f32> = (0..2 * d).map(|_| rng.next_normal() as f32).collect();
            let xt = Tensor::from_slice(&x, (1, d, 2), &Device::Cpu).unwrap();
            let r = reference
                .step(&StreamTensor::from_tensor(xt), &StreamMask::empty())
                .unwrap();
            let r: Vec<f32> = r
                .as_option()
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let y = ours.step(&x);
            let diff = r
                .iter()
                .zip(y)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            worst = worst.max(diff);
            // Our output moves away from the input (the layers do something).
            assert!(y.iter().zip(&x).any(|(a, b)| (a - b).abs() > 1e-4));
        }
        assert!(worst < 1e-5, "max |diff| {worst}");
    }
}
