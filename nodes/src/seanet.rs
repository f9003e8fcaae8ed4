//! Mimi's SEANet encoder and decoder as streaming layers of
//! [`stream_conv`](crate::stream_conv), built from the same weights and tensor
//! names as the moshi crate's `seanet` module (layer order and indices follow
//! it exactly), for the fixed 1920-sample step Antiphon always uses.

use candle::DType;
use candle_nn::VarBuilder;
use gemm::Parallelism;

use crate::stream_conv::{ConvShape, InputAct, LeftPad, StreamConv1d, StreamConvTr1d};

/// Reads a (possibly weight-normed) conv weight and its bias (of `bias`
/// elements) as moshi's `conv1d_weight_norm` does: `weight`, or
/// `weight_g · weight_v / ‖weight_v‖` with the norm over all but the first dim.
pub(crate) fn conv_weight(
    vb: &VarBuilder,
    shape: (usize, usize, usize),
    bias: Option<usize>,
) -> candle::Result<(Vec<f32>, Option<Vec<f32>>)> {
    let w = if vb.contains_tensor("weight") {
        vb.get(shape, "weight")?
    } else {
        let g = vb.get((shape.0, 1, 1), "weight_g")?;
        let v = vb.get(shape, "weight_v")?;
        let norm = v.sqr()?.sum_keepdim((1, 2))?.sqrt()?;
        v.broadcast_mul(&g)?.broadcast_div(&norm)?
    };
    let w = w.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    let b = match bias {
        Some(n) => Some(vb.get(n, "bias")?.to_dtype(DType::F32)?.to_vec1::<f32>()?),
        None => None,
    };
    Ok((w, b))
}

/// A streaming conv built from `vb` (moshi's `StreamableConv1d` at that path).
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv(
    vb: VarBuilder,
    s: ConvShape,
    bias: bool,
    act: InputAct,
    pad: LeftPad,
    t_in: usize,
    par: Parallelism,
) -> candle::Result<StreamConv1d> {
    let (w, b) = conv_weight(
        &vb.pp("conv").pp("conv"),
        (s.c_out, s.c_in, s.k),
        bias.then_some(s.c_out),
    )?;
    StreamConv1d::new(s, &w, b, act, pad, t_in, par).map_err(candle::Error::Msg)
}

fn check_cfg(cfg: &moshi::seanet::Config) -> candle::Result<()> {
    let elu1 = matches!(cfg.activation, candle_nn::Activation::Elu(a) if a == 1.0);
    if !elu1
        || !cfg.causal
        || !cfg.true_skip
        || cfg.lstm != 0
        || cfg.final_activation.is_some()
        || cfg.pad_mode != moshi::conv::PadMode::Constant
    {
        candle::bail!("SEANet variant not supported by the streaming kernels (needs Mimi's: causal, ELU, true skip, no LSTM)")
    }
    Ok(())
}

/// A residual block: ELU → conv k (dilated) → ELU → conv 1, plus the input.
#[derive(Clone, Debug)]
struct ResBlock {
    convs: Vec<StreamConv1d>,
}

impl ResBlock {
    fn new(
        cfg: &moshi::seanet::Config,
        dim: usize,
        j: usize,
        t: usize,
        vb: VarBuilder,
        par: Parallelism,
    ) -> candle::Result<Self> {
        let hidden = dim / cfg.compress;
        let taps = [
            (cfg.residual_kernel_size, cfg.dilation_base.pow(j as u32)),
            (1, 1),
        ];
        let vb = vb.pp("block");
        let mut convs = Vec::with_capacity(taps.len());
        for (i, &(k, dilation)) in taps.iter().enumerate() {
            let c_in = if i == 0 { dim } else { hidden };
            let c_out = if i == taps.len() - 1 { dim } else { hidden };
            let s = ConvShape {
                c_in,
                c_out,
                k,
                stride: 1,
                dilation,
            };
            convs.push(conv(
                vb.pp(2 * i + 1),
                s,
                true,
                InputAct::Elu,
                LeftPad::Zeros,
                t,
                par,
            )?);
        }
        Ok(Self { convs })
    }

    fn step<'a>(&'a mut self, x: &'a [f32]) -> &'a [f32] {
        let (first, rest) = self.convs.split_at_mut(1);
        let (mid, last) = rest.split_at_mut(rest.len() - 1);
        let mut h = first[0].step(x, None);
        for c in mid.iter_mut() {
            h = c.step(h, None);
        }
        last[0].step(h, Some(x))
    }

    fn reset(&mut self) {
        self.convs.iter_mut().for_each(|c| c.reset());
    }
}

#[derive(Clone, Debug)]
struct EncoderLayer {
    residuals: Vec<ResBlock>,
    downsample: StreamConv1d,
}

/// Streaming SEANet encoder: (1, t) samples → (dimension, t / hop).
#[derive(Clone, Debug)]
pub struct SeanetEncoder {
    init: StreamConv1d,
    layers: Vec<EncoderLayer>,
    last: StreamConv1d,
}

impl SeanetEncoder {
    /// `vb` at Mimi's `encoder`; `t` samples per step.
    pub fn new(
        cfg: &moshi::seanet::Config,
        t: usize,
        vb: VarBuilder,
        par: Parallelism,
    ) -> candle::Result<Self> {
        check_cfg(cfg)?;
        let vb = vb.pp("model");
        let nf = cfg.n_filters;
        let sh = |c_in, c_out, k, stride| ConvShape {
            c_in,
            c_out,
            k,
            stride,
            dilation: 1,
        };
        let init = conv(
            vb.pp(0),
            sh(cfg.channels, nf, cfg.kernel_size, 1),
            true,
            InputAct::None,
            LeftPad::Zeros,
            t,
            par,
        )?;
        let (mut idx, mut mult, mut t) = (1, 1, t);
        let mut layers = Vec::with_capacity(cfg.ratios.len());
        for &ratio in cfg.ratios.iter().rev() {
            let dim = mult * nf;
            let residuals = (0..cfg.n_residual_layers)
                .map(|j| {
                    let b = ResBlock::new(cfg, dim, j, t, vb.pp(idx), par);
                    idx += 1;
                    b
                })
                .collect::<candle::Result<Vec<_>>>()?;
            let downsample = conv(
                vb.pp(idx + 1),
                sh(dim, 2 * dim, 2 * ratio, ratio),
                true,
                InputAct::Elu,
                LeftPad::Zeros,
                t,
                par,
            )?;
            idx += 2;
            t = downsample.t_out();
            layers.push(EncoderLayer {
                residuals,
                downsample,
            });
            mult *= 2;
        }
        let last = conv(
            vb.pp(idx + 1),
            sh(mult * nf, cfg.dimension, cfg.last_kernel_size, 1),
            true,
            InputAct::Elu,
            LeftPad::Zeros,
            t,
            par,
        )?;
        Ok(Self { init, layers, last })
    }

    /// Frames out per step.
    pub fn t_out(&self) -> usize {
        self.last.t_out()
    }

    pub fn step(&mut self, pcm: &[f32]) -> &[f32] {
        let mut x = self.init.step(pcm, None);
        for layer in self.layers.iter_mut() {
            for r in layer.residuals.iter_mut() {
                x = r.step(x);
            }
            x = layer.downsample.step(x, None);
        }
        self.last.step(x, None)
    }

    pub fn reset(&mut self) {
        self.init.reset();
        for l in self.layers.iter_mut() {
            l.residuals.iter_mut().for_each(|r| r.reset());
            l.downsample.reset();
        }
        self.last.reset();
    }
}

#[derive(Clone, Debug)]
struct DecoderLayer {
    upsample: StreamConvTr1d,
    residuals: Vec<ResBlock>,
}

/// Streaming SEANet decoder: (dimension, t) → (1, t · hop) samples.
#[derive(Clone, Debug)]
pub struct SeanetDecoder {
    init: StreamConv1d,
    layers: Vec<DecoderLayer>,
    last: StreamConv1d,
}

impl SeanetDecoder {
    /// `vb` at Mimi's `decoder`; `t` latent frames per step.
    pub fn new(
        cfg: &moshi::seanet::Config,
        t: usize,
        vb: VarBuilder,
        par: Parallelism,
    ) -> candle::Result<Self> {
        check_cfg(cfg)?;
        let vb = vb.pp("model");
        let nf = cfg.n_filters;
        let mut mult = 1 << cfg.ratios.len();
        let sh = |c_in, c_out, k, stride| ConvShape {
            c_in,
            c_out,
            k,
            stride,
            dilation: 1,
        };
        let init = conv(
            vb.pp(0),
            sh(cfg.dimension, mult * nf, cfg.kernel_size, 1),
            true,
            InputAct::None,
            LeftPad::Zeros,
            t,
            par,
        )?;
        let (mut idx, mut t) = (1, t);
        let mut layers = Vec::with_capacity(cfg.ratios.len());
        for &ratio in cfg.ratios.iter() {
            let (c_in, c_out) = (mult * nf, mult * nf / 2);
            let vbu = vb.pp(idx + 1).pp("convtr").pp("convtr");
            let (w, b) = conv_weight(&vbu, (c_in, c_out, 2 * ratio), Some(c_out))?;
            let upsample = StreamConvTr1d::new(
                sh(c_in, c_out, 2 * ratio, ratio),
                &w,
                b,
                InputAct::Elu,
                t,
                par,
            )
            .map_err(candle::Error::Msg)?;
            idx += 2;
            t = upsample.t_out();
            let residuals = (0..cfg.n_residual_layers)
                .map(|j| {
                    let b = ResBlock::new(cfg, c_out, j, t, vb.pp(idx), par);
                    idx += 1;
                    b
                })
                .collect::<candle::Result<Vec<_>>>()?;
            layers.push(DecoderLayer {
                upsample,
                residuals,
            });
            mult /= 2;
        }
        let last = conv(
            vb.pp(idx + 1),
            sh(nf, cfg.channels, cfg.last_kernel_size, 1),
            true,
            InputAct::Elu,
            LeftPad::Zeros,
            t,
            par,
        )?;
        Ok(Self { init, layers, last })
    }

    pub fn step(&mut self, latent: &[f32]) -> &[f32] {
        let mut x = self.init.step(latent, None);
        for layer in self.layers.iter_mut() {
            x = layer.upsample.step(x);
            for r in layer.residuals.iter_mut() {
                x = r.step(x);
            }
        }
        self.last.step(x, None)
    }

    pub fn reset(&mut self) {
        self.init.reset();
        for l in self.layers.iter_mut() {
            l.upsample.reset();
            l.residuals.iter_mut().for_each(|r| r.reset());
        }
        self.last.reset();
    }
}
