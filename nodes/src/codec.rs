//! Mimi's decode path, assembled from the crate's own layers so the number of
//! RVQ levels can change per frame (codebook-depth knob). `Mimi::decode_step`
//! needs exactly `n_q` codes; we keep one (tiny) quantizer per depth over the
//! same weights and share the streaming upsample/transformer/SEANet state.
//! At full depth the ops are exactly `Mimi::decode_step`'s (tested bit-exact).

use candle::{Device, Tensor};
use moshi::quantization::SplitResidualVectorQuantizer;
use moshi::{StreamMask, StreamTensor, StreamingModule};

/// Streaming Mimi decoder with selectable depth.
#[derive(Clone, Debug)]
pub struct MimiDecoder {
    /// `quantizers[d - 1]` decodes the first `d` codebooks.
    quantizers: Vec<SplitResidualVectorQuantizer>,
    upsample: moshi::conv::ConvTrUpsample1d,
    transformer: moshi::transformer::Transformer,
    seanet: moshi::seanet::SeaNetDecoder,
}

impl MimiDecoder {
    /// Builds from Mimi's weights (`vb` at the Mimi root), as `Mimi::new` does.
    pub fn new(cfg: &moshi::mimi::Config, vb: candle_nn::VarBuilder) -> candle::Result<Self> {
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
        let encoder_frame_rate =
            cfg.sample_rate / cfg.seanet.ratios.iter().product::<usize>() as f64;
        let stride = (encoder_frame_rate / cfg.frame_rate) as usize;
        let upsample =
            moshi::conv::ConvTrUpsample1d::new(stride, dim, true, true, vb.pp("upsample"))?;
        let transformer = moshi::transformer::Transformer::new(
            None,
            dim,
            &cfg.transformer,
            vb.pp("decoder_transformer"),
        )?;
        let seanet = moshi::seanet::SeaNetDecoder::new(&cfg.seanet, vb.pp("decoder"))?;
        Ok(Self {
            quantizers,
            upsample,
            transformer,
            seanet,
        })
    }

    pub fn max_depth(&self) -> usize {
        self.quantizers.len()
    }

    /// Decodes one frame from the first `depth` of `codes` (clamped to what is
    /// available). Returns the frame's samples (empty while the stream warms up).
    pub fn decode_step(
        &mut self,
        codes: &[u32],
        depth: usize,
        out: &mut Vec<f32>,
    ) -> candle::Result<()> {
        out.clear();
        let depth = depth.clamp(1, self.quantizers.len().min(codes.len()).max(1));
        if codes.is_empty() {
            candle::bail!("no codes to decode")
        }
        let t = Tensor::from_slice(&codes[..depth], (1, depth, 1), &Device::Cpu)?;
        let emb = StreamTensor::from_tensor(self.quantizers[depth - 1].decode(&t)?);
        let m = StreamMask::empty();
        let emb = self.upsample.step(&emb, &m)?;
        let xs = self.transformer.step(&emb, &m)?;
        let pcm = self.seanet.step(&xs, &m)?;
        if let Some(pcm) = pcm.as_option() {
            out.extend(pcm.flatten_all()?.to_vec1::<f32>()?);
        }
        Ok(())
    }

    pub fn reset_state(&mut self) {
        self.upsample.reset_state();
        self.transformer.reset_state();
        self.seanet.reset_state();
    }
}
