//! Mimi's streaming encode and decode paths for a fixed 1920-sample frame.
//!
//! SEANet, the learnt 2× down/upsample and the transformers run on our
//! streaming kernels ([`seanet`](crate::seanet), [`stream_conv`](crate::stream_conv),
//! [`mimi_transformer`](crate::mimi_transformer)); the quantizer is the moshi
//! crate's own on the same weights (one small matrix product per frame). The decoder keeps one (tiny) quantizer per depth so the number
//! of RVQ levels can change per frame (codebook-depth knob).
//!
//! Both equal `moshi::mimi::Mimi::{encode_step, decode_step}` to float
//! rounding (`nodes/tests/parity.rs`).

use candle::{Device, Tensor};
use candle_nn::VarBuilder;
use gemm::Parallelism;
use moshi::quantization::SplitResidualVectorQuantizer;

use crate::mimi_transformer::MimiTransformer;
use crate::pool::{on_pool, threads};
use crate::seanet::{conv, conv_weight, SeanetDecoder, SeanetEncoder};
use crate::stream_conv::{ConvShape, InputAct, LeftPad, StreamConv1d, StreamDepthwiseConvTr1d};

/// Worker threads a kernel may use ([`threads`], as the LM uses), read
/// once rather than per matmul.
fn parallelism() -> Parallelism {
    match threads() {
        1 => Parallelism::None,
        n => Parallelism::Rayon(n),
    }
}

/// Threads a step hops to the pool with: the kernels' threads when the
/// transformer's products are wide enough to split (real-size Mimi), else 1
/// (a tiny codec runs inline on the caller).
fn pool_threads(par: Parallelism, transformer: &MimiTransformer) -> usize {
    if transformer.splits() {
        crate::stream_conv::threads(par)
    } else {
        1
    }
}

/// Latent frames per audio frame, and the 25 Hz → 12.5 Hz resampling stride.
fn frame_geometry(cfg: &moshi::mimi::Config, frame: usize) -> candle::Result<(usize, usize)> {
    let hop: usize = cfg.seanet.ratios.iter().product();
    let stride = (cfg.sample_rate / hop as f64 / cfg.frame_rate) as usize;
    if hop == 0 || frame % (hop * stride.max(1)) != 0 || stride == 0 {
        candle::bail!(
            "a frame of {frame} samples is not a whole number of codec frames (hop {hop} × {stride})"
        )
    }
    Ok((frame / hop, stride))
}

/// Streaming Mimi encoder: 1920 samples → one frame of `n_q` codes.
#[derive(Clone, Debug)]
pub struct MimiEncoder {
    seanet: SeanetEncoder,
    transformer: MimiTransformer,
    downsample: StreamConv1d,
    quantizer: SplitResidualVectorQuantizer,
    dim: usize,
    /// Threads for [`on_pool`]: > 1 only when the products split.
    pool: usize,
}

impl MimiEncoder {
    /// Builds from Mimi's weights (`vb` at the Mimi root) for `frame` samples per step.
    pub fn new(cfg: &moshi::mimi::Config, frame: usize, vb: VarBuilder) -> candle::Result<Self> {
        let (t_lat, stride) = frame_geometry(cfg, frame)?;
        let dim = cfg.seanet.dimension;
        let par = parallelism();
        let seanet = SeanetEncoder::new(&cfg.seanet, frame, vb.pp("encoder"), par)?;
        let transformer =
            MimiTransformer::new(&cfg.transformer, t_lat, vb.pp("encoder_transformer"), par)?;
        let downsample = conv(
            vb.pp("downsample").pp("conv"),
            ConvShape {
                c_in: dim,
                c_out: dim,
                k: 2 * stride,
                stride,
                dilation: 1,
            },
            false,
            InputAct::None,
            LeftPad::Replicate,
            t_lat,
            par,
        )?;
        let quantizer = SplitResidualVectorQuantizer::new(
            cfg.quantizer_dim,
            Some(dim),
            Some(dim),
            cfg.quantizer_n_q,
            cfg.quantizer_bins,
            vb.pp("quantizer"),
        )?;
        Ok(Self {
            seanet,
            downsample,
            pool: pool_threads(par, &transformer),
            transformer,
            quantizer,
            dim,
        })
    }

    /// Encodes one frame into `codes` (`n_q` of them).
    pub fn encode_step(&mut self, pcm: &[f32], codes: &mut Vec<u32>) -> candle::Result<()> {
        on_pool(self.pool, || self.encode_on_pool(pcm, codes))
    }

    fn encode_on_pool(&mut self, pcm: &[f32], codes: &mut Vec<u32>) -> candle::Result<()> {
        let x = self.seanet.step(pcm);
        let x = self.transformer.step(x);
        let z = self.downsample.step(x, None);
        let z = Tensor::from_slice(z, (1, self.dim, z.len() / self.dim), &Device::Cpu)?;
        codes.clear();
        codes.extend(self.quantizer.encode(&z)?.flatten_all()?.to_vec1::<u32>()?);
        Ok(())
    }

    pub fn reset_state(&mut self) {
        self.seanet.reset();
        self.transformer.reset();
        self.downsample.reset();
    }
}

/// Streaming Mimi decoder with selectable depth: codes → 1920 samples.
#[derive(Clone, Debug)]
pub struct MimiDecoder {
    /// `quantizers[d - 1]` decodes the first `d` codebooks.
    quantizers: Vec<SplitResidualVectorQuantizer>,
    upsample: StreamDepthwiseConvTr1d,
    transformer: MimiTransformer,
    seanet: SeanetDecoder,
    /// Threads for [`on_pool`]: > 1 only when the products split.
    pool: usize,
}

impl MimiDecoder {
    /// Builds from Mimi's weights (`vb` at the Mimi root) for `frame` samples per step.
    pub fn new(cfg: &moshi::mimi::Config, frame: usize, vb: VarBuilder) -> candle::Result<Self> {
        let (t_lat, stride) = frame_geometry(cfg, frame)?;
        let dim = cfg.seanet.dimension;
        let quantizers = (1..=cfg.quantizer_n_q)
            .map(|n_q| {
                SplitResidualVectorQuantizer::new(
                    cfg.quantizer_dim,
                    Some(dim),
                    Some(dim),
                    n_q,
                    cfg.quantizer_bins,
                    vb.pp("quantizer"),
                )
            })
            .collect::<candle::Result<Vec<_>>>()?;
        let (w, _) = conv_weight(
            &vb.pp("upsample").pp("convtr").pp("convtr").pp("convtr"),
            (dim, 1, 2 * stride),
            None,
        )?;
        let upsample = StreamDepthwiseConvTr1d::new(dim, 2 * stride, stride, &w, t_lat / stride)
            .map_err(candle::Error::Msg)?;
        let par = parallelism();
        let transformer =
            MimiTransformer::new(&cfg.transformer, t_lat, vb.pp("decoder_transformer"), par)?;
        let seanet = SeanetDecoder::new(&cfg.seanet, t_lat, vb.pp("decoder"), par)?;
        Ok(Self {
            quantizers,
            upsample,
            pool: pool_threads(par, &transformer),
            transformer,
            seanet,
        })
    }

    pub fn max_depth(&self) -> usize {
        self.quantizers.len()
    }

    /// Decodes one frame from the first `depth` of `codes` (clamped to what is
    /// available) into `out` (1920 samples).
    pub fn decode_step(
        &mut self,
        codes: &[u32],
        depth: usize,
        out: &mut Vec<f32>,
    ) -> candle::Result<()> {
        on_pool(self.pool, || self.decode_on_pool(codes, depth, out))
    }

    fn decode_on_pool(
        &mut self,
        codes: &[u32],
        depth: usize,
        out: &mut Vec<f32>,
    ) -> candle::Result<()> {
        out.clear();
        if codes.is_empty() {
            candle::bail!("no codes to decode")
        }
        let depth = depth.clamp(1, self.quantizers.len().min(codes.len()));
        let t = Tensor::from_slice(&codes[..depth], (1, depth, 1), &Device::Cpu)?;
        let emb = self.quantizers[depth - 1].decode(&t)?;
        let emb = emb.flatten_all()?.to_vec1::<f32>()?;
        let up = self.upsample.step(&emb);
        let latent = self.transformer.step(up);
        out.extend_from_slice(self.seanet.step(latent));
        Ok(())
    }

    pub fn reset_state(&mut self) {
        self.upsample.reset();
        self.transformer.reset();
        self.seanet.reset();
    }
}
