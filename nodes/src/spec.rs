//! Model configs as they appear in `antiphon.json`, and inference of the same
//! configs from tensor shapes for directories laid out like kyutai's releases.
//!
//! The moshi crate's configs are not `Serialize` (and Mimi's is not even
//! `Deserialize`), so we mirror the fields that describe a Mimi + Moshi model
//! here and convert. Unknown fields are rejected so a typo is an error, not a
//! silently ignored setting.

use std::collections::HashMap;

use moshi::transformer::{Config as TConfig, PositionalEmbedding};
use moshi::NormType;
use serde::{Deserialize, Serialize};

/// One streaming transformer (LM backbone, depformer or Mimi's).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformerSpec {
    pub d_model: usize,
    pub num_heads: usize,
    pub num_layers: usize,
    pub dim_feedforward: usize,
    /// Attention window in steps: the KV cache rotates at this size.
    pub context: usize,
    pub max_period: usize,
    /// `"rms_norm"` or `"layer_norm"`.
    pub norm: String,
    /// `"silu"` gated MLP, or `null` for a plain GELU MLP.
    pub gating: Option<String>,
    /// `"rope"` or `"none"`.
    pub positional_embedding: String,
    pub layer_scale: Option<f64>,
    pub conv_layout: bool,
    pub max_seq_len: usize,
}

impl TransformerSpec {
    pub fn to_moshi(&self) -> Result<TConfig, String> {
        if self.num_heads == 0 || self.d_model % self.num_heads != 0 {
            return Err(format!(
                "d_model {} is not a multiple of num_heads {}",
                self.d_model, self.num_heads
            ));
        }
        let norm = match self.norm.as_str() {
            "rms_norm" => NormType::RmsNorm,
            "layer_norm" => NormType::LayerNorm,
            o => {
                return Err(format!(
                    "unknown norm `{o}` (expected rms_norm or layer_norm)"
                ))
            }
        };
        let gating = match self.gating.as_deref() {
            None => None,
            Some("silu") => Some(candle_nn::Activation::Silu),
            Some(o) => return Err(format!("unknown gating `{o}` (expected silu or null)")),
        };
        let positional_embedding = match self.positional_embedding.as_str() {
            "rope" => PositionalEmbedding::Rope,
            "none" => PositionalEmbedding::None,
            o => {
                return Err(format!(
                    "unknown positional_embedding `{o}` (expected rope or none)"
                ))
            }
        };
        if self.context == 0 {
            return Err("context must be at least 1".into());
        }
        Ok(TConfig {
            d_model: self.d_model,
            num_heads: self.num_heads,
            num_layers: self.num_layers,
            dim_feedforward: self.dim_feedforward,
            causal: true,
            norm_first: true,
            bias_ff: false,
            bias_attn: false,
            layer_scale: self.layer_scale,
            context: self.context,
            max_period: self.max_period,
            use_conv_block: false,
            use_conv_bias: true,
            cross_attention: None,
            gating,
            norm,
            positional_embedding,
            conv_layout: self.conv_layout,
            conv_kernel_size: 3,
            kv_repeat: 1,
            max_seq_len: self.max_seq_len,
            shared_cross_attn: false,
        })
    }
}

/// The depformer (code predictor): one small transformer slice per codebook.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DepformerSpec {
    pub transformer: TransformerSpec,
    pub num_slices: usize,
    pub low_rank_embeddings: Option<usize>,
}

/// The Moshi LM: temporal transformer + depformer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LmSpec {
    pub transformer: TransformerSpec,
    pub depformer: DepformerSpec,
    pub text_in_vocab_size: usize,
    pub text_out_vocab_size: usize,
    pub audio_vocab_size: usize,
    /// Generated + input codebooks the backbone embeds.
    pub audio_codebooks: usize,
}

impl LmSpec {
    /// The crate's config; `with_depformer = false` builds the backbone alone.
    pub fn to_moshi(&self, with_depformer: bool) -> Result<moshi::lm::Config, String> {
        let transformer = self
            .transformer
            .to_moshi()
            .map_err(|e| format!("transformer: {e}"))?;
        let dep = self
            .depformer
            .transformer
            .to_moshi()
            .map_err(|e| format!("depformer: {e}"))?;
        Ok(moshi::lm::Config {
            transformer,
            depformer: with_depformer.then(|| moshi::lm::DepFormerConfig {
                transformer: dep,
                num_slices: self.depformer.num_slices,
                low_rank_embeddings: self.depformer.low_rank_embeddings,
            }),
            text_in_vocab_size: self.text_in_vocab_size,
            text_out_vocab_size: self.text_out_vocab_size,
            audio_vocab_size: self.audio_vocab_size,
            audio_codebooks: self.audio_codebooks,
            conditioners: None,
            extra_heads: None,
        })
    }

    pub fn depformer_config(&self) -> Result<moshi::lm::DepFormerConfig, String> {
        Ok(moshi::lm::DepFormerConfig {
            transformer: self
                .depformer
                .transformer
                .to_moshi()
                .map_err(|e| format!("depformer: {e}"))?,
            num_slices: self.depformer.num_slices,
            low_rank_embeddings: self.depformer.low_rank_embeddings,
        })
    }
}

/// The Mimi codec. Only sizes are configurable; the layout (causal SEANet with
/// ELU, weight-normed convs, 24 kHz, 12.5 Hz frames) is Mimi's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MimiSpec {
    pub dimension: usize,
    pub n_filters: usize,
    pub n_residual_layers: usize,
    /// Downsampling ratios; their product must be 960 (24 kHz → 25 Hz).
    pub ratios: Vec<usize>,
    pub kernel_size: usize,
    pub residual_kernel_size: usize,
    pub last_kernel_size: usize,
    pub compress: usize,
    pub dilation_base: usize,
    pub transformer: TransformerSpec,
    pub quantizer_n_q: usize,
    pub quantizer_bins: usize,
    pub quantizer_dim: usize,
}

impl MimiSpec {
    pub fn to_moshi(&self) -> Result<moshi::mimi::Config, String> {
        if self.ratios.iter().product::<usize>() != 960 {
            return Err(format!(
                "ratios {:?} must multiply to 960 (24 kHz → 25 Hz)",
                self.ratios
            ));
        }
        if self.quantizer_n_q == 0 {
            return Err("quantizer_n_q must be at least 1".into());
        }
        if self.transformer.d_model != self.dimension {
            return Err(format!(
                "transformer.d_model {} must equal dimension {}",
                self.transformer.d_model, self.dimension
            ));
        }
        let mut cfg = moshi::mimi::Config::v0_1(Some(self.quantizer_n_q));
        let s = &mut cfg.seanet;
        s.dimension = self.dimension;
        s.n_filters = self.n_filters;
        s.n_residual_layers = self.n_residual_layers;
        s.ratios = self.ratios.clone();
        s.kernel_size = self.kernel_size;
        s.residual_kernel_size = self.residual_kernel_size;
        s.last_kernel_size = self.last_kernel_size;
        s.compress = self.compress;
        s.dilation_base = self.dilation_base;
        cfg.transformer = self
            .transformer
            .to_moshi()
            .map_err(|e| format!("transformer: {e}"))?;
        cfg.quantizer_bins = self.quantizer_bins;
        cfg.quantizer_dim = self.quantizer_dim;
        Ok(cfg)
    }

    /// Kyutai's published Mimi, with `n_q` codebooks.
    pub fn kyutai_v0_1(n_q: usize) -> Self {
        let c = moshi::mimi::Config::v0_1(Some(n_q));
        Self {
            dimension: c.seanet.dimension,
            n_filters: c.seanet.n_filters,
            n_residual_layers: c.seanet.n_residual_layers,
            ratios: c.seanet.ratios.clone(),
            kernel_size: c.seanet.kernel_size,
            residual_kernel_size: c.seanet.residual_kernel_size,
            last_kernel_size: c.seanet.last_kernel_size,
            compress: c.seanet.compress,
            dilation_base: c.seanet.dilation_base,
            transformer: mimi_transformer(c.seanet.dimension, 8, 8, 2048),
            quantizer_n_q: n_q,
            quantizer_bins: c.quantizer_bins,
            quantizer_dim: c.quantizer_dim,
        }
    }
}

/// Mimi's transformer layout (LayerNorm, RoPE, layer scale 0.01, 250-step window).
pub fn mimi_transformer(
    d_model: usize,
    num_heads: usize,
    num_layers: usize,
    ff: usize,
) -> TransformerSpec {
    TransformerSpec {
        d_model,
        num_heads,
        num_layers,
        dim_feedforward: ff,
        context: 250,
        max_period: 10_000,
        norm: "layer_norm".into(),
        gating: None,
        positional_embedding: "rope".into(),
        layer_scale: Some(0.01),
        conv_layout: true,
        max_seq_len: 8192,
    }
}

/// Speech-to-speech stream layout: which codebooks are generated vs the user's,
/// the acoustic delay, and the special text tokens.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerationSpec {
    pub generated_audio_codebooks: usize,
    pub input_audio_codebooks: usize,
    pub acoustic_delay: usize,
    pub text_pad_token: u32,
    pub text_eop_token: u32,
    pub text_start_token: u32,
    /// How the streams line up with the steps; manifests without it mean the
    /// moshi crate's.
    #[serde(default)]
    pub alignment: StreamAlignment,
}

/// How an LM's token streams line up with its steps. Both feed the model its
/// own codes of the previous step (acoustic codebooks `acoustic_delay` frames
/// late); they differ in when the user's codes are read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamAlignment {
    /// The moshi crate's `lm_generate_multistream` (kyutai's Rust server):
    /// the user's codes of step t are read at step t+1.
    #[default]
    MoshiCrate,
    /// kyutai's PyTorch `LMGen` with `config.json`'s `delays` (the reference
    /// the models were trained with): the user's semantic code of step t is
    /// read at step t, their acoustic codes `acoustic_delay` steps late.
    Pytorch,
}

impl GenerationSpec {
    /// Moshi v0.1 (moshiko/moshika).
    pub fn moshi_v0_1(text_in_vocab_size: usize) -> Self {
        Self {
            generated_audio_codebooks: 8,
            input_audio_codebooks: 8,
            acoustic_delay: 2,
            text_pad_token: 3,
            text_eop_token: 0,
            text_start_token: text_in_vocab_size.saturating_sub(1) as u32,
            alignment: StreamAlignment::MoshiCrate,
        }
    }
}

/// A file and the config of the model stored in it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec<C> {
    /// Path relative to the model directory.
    pub file: String,
    pub config: C,
}

/// `antiphon.json`: what a model directory holds, with explicit configs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`MANIFEST_FORMAT`].
    pub format: String,
    pub name: String,
    /// The model family (see [`crate::family`]); manifests written before
    /// families existed hold Moshi models.
    #[serde(default = "default_family")]
    pub family: String,
    /// The language model (Moshi and Hibiki); absent for the codec alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lm: Option<FileSpec<LmSpec>>,
    pub mimi: FileSpec<MimiSpec>,
    /// Stream layout of the language model; absent for the codec alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<GenerationSpec>,
    /// SentencePiece text tokenizer, if the bundle has one (unused by the nodes).
    #[serde(default)]
    pub text_tokenizer: Option<String>,
}

pub const MANIFEST_FORMAT: &str = "antiphon-model/1";

fn default_family() -> String {
    "moshi".into()
}

impl Manifest {
    /// Checks the format and the Mimi config; the family checks the rest
    /// ([`Manifest::validate_lm`] for the families with a language model).
    pub fn validate(&self) -> Result<(), String> {
        if self.format != MANIFEST_FORMAT {
            return Err(format!(
                "unknown format `{}` (expected `{MANIFEST_FORMAT}`)",
                self.format
            ));
        }
        self.mimi.config.to_moshi()?;
        Ok(())
    }

    /// The LM and its stream layout, cross-checked against each other and Mimi.
    pub fn validate_lm(&self) -> Result<(&FileSpec<LmSpec>, &GenerationSpec), String> {
        let (Some(lm_file), Some(g)) = (&self.lm, &self.generation) else {
            return Err(format!(
                "family `{}` needs a language model: `lm` and `generation` are missing",
                self.family
            ));
        };
        let lm = &lm_file.config;
        lm.to_moshi(true)?;
        if g.generated_audio_codebooks + g.input_audio_codebooks != lm.audio_codebooks {
            return Err(format!(
                "generated ({}) + input ({}) codebooks must equal lm audio_codebooks ({})",
                g.generated_audio_codebooks, g.input_audio_codebooks, lm.audio_codebooks
            ));
        }
        if lm.depformer.num_slices != g.generated_audio_codebooks {
            return Err(format!(
                "depformer num_slices ({}) must equal generated_audio_codebooks ({})",
                lm.depformer.num_slices, g.generated_audio_codebooks
            ));
        }
        let n_q = self.mimi.config.quantizer_n_q;
        if g.generated_audio_codebooks > n_q || g.input_audio_codebooks > n_q {
            return Err(format!(
                "the LM uses more codebooks than Mimi's quantizer_n_q ({n_q})"
            ));
        }
        if lm.audio_vocab_size != self.mimi.config.quantizer_bins + 1 {
            return Err(format!(
                "lm audio_vocab_size ({}) must be Mimi quantizer_bins + 1 ({})",
                lm.audio_vocab_size,
                self.mimi.config.quantizer_bins + 1
            ));
        }
        if g.text_start_token as usize >= lm.text_in_vocab_size {
            return Err(format!(
                "text_start_token {} outside text_in_vocab_size",
                g.text_start_token
            ));
        }
        if g.acoustic_delay > 16 {
            return Err(format!(
                "acoustic_delay {} is larger than supported (16)",
                g.acoustic_delay
            ));
        }
        Ok((lm_file, g))
    }
}

/// Tensor name → shape, as read from a file header.
pub type Shapes = HashMap<String, Vec<usize>>;

/// Largest size a dimension read from a header may have. Real models stay far
/// below it; the bound keeps the size arithmetic below from overflowing on a
/// crafted header (a zero-sized tensor can claim any other dimension).
const MAX_DIM: usize = 1 << 31;

/// The shape of a tensor that must have `R` dimensions of plausible size.
fn dims<const R: usize>(name: &str, shape: &[usize]) -> Result<[usize; R], String> {
    let d: [usize; R] = shape
        .try_into()
        .map_err(|_| format!("tensor `{name}` has shape {shape:?}, expected {R} dimensions"))?;
    match d.iter().find(|&&x| x > MAX_DIM) {
        Some(x) => Err(format!("tensor `{name}` has an implausible dimension {x}")),
        None => Ok(d),
    }
}

fn shape<const R: usize>(shapes: &Shapes, name: &str) -> Result<[usize; R], String> {
    let s = shapes
        .get(name)
        .ok_or_else(|| format!("tensor `{name}` is missing"))?;
    dims(name, s)
}

/// How many `{prefix}{i}.` groups exist (layers, slices, codebooks).
fn count_indexed(shapes: &Shapes, prefix: &str) -> usize {
    let mut n = 0;
    while shapes
        .keys()
        .any(|k| k.starts_with(&format!("{prefix}{n}.")))
    {
        n += 1;
    }
    n
}

/// First found of several names (weight-normed convs store `weight_v`).
fn shape_any<const R: usize>(shapes: &Shapes, names: &[&str]) -> Result<[usize; R], String> {
    let (name, s) = names
        .iter()
        .find_map(|n| shapes.get(*n).map(|s| (n, s)))
        .ok_or_else(|| format!("none of the tensors {names:?} is present"))?;
    dims(name, s)
}

/// Gated-MLP hidden width back to moshi's `dim_feedforward`.
fn ff_from_gated(hidden2: usize, d_model: usize) -> usize {
    let hidden = hidden2 / 2;
    if hidden == 11 * d_model / 4 {
        4 * d_model
    } else {
        hidden * 3 / 2
    }
}

/// Infers the LM config from tensor shapes; settings that do not show in
/// shapes (heads, context, rope period) come from kyutai's `config.json` keys
/// when present, else Moshi v0.1's values.
pub fn infer_lm(shapes: &Shapes, kyutai: Option<&serde_json::Value>) -> Result<LmSpec, String> {
    let get = |k: &str, d: usize| {
        kyutai
            .and_then(|v| v.get(k))
            .and_then(|v| v.as_u64())
            .map_or(d, |v| v as usize)
    };
    let [text_in, d_model] = shape(shapes, "text_emb.weight")?;
    let [text_out, _] = shape(shapes, "text_linear.weight")?;
    let [audio_vocab, _] = shape(shapes, "emb.0.weight")?;
    let audio_codebooks = count_indexed(shapes, "emb.");
    let num_layers = count_indexed(shapes, "transformer.layers.");
    let ff = ff_from_gated(
        shape::<2>(shapes, "transformer.layers.0.gating.linear_in.weight")?[0],
        d_model,
    );
    let num_slices = count_indexed(shapes, "depformer.");
    let [dd, _] = shape(shapes, "depformer.0.linear_in.weight")?;
    let dep_layers = count_indexed(shapes, "depformer.0.transformer.layers.");
    let dep_ff = ff_from_gated(
        shape::<2>(
            shapes,
            "depformer.0.transformer.layers.0.gating.linear_in.weight",
        )?[0],
        dd,
    );
    let low_rank = match shapes.get("depformer.0.emb.low_rank.weight") {
        Some(s) => Some(dims::<2>("depformer.0.emb.low_rank.weight", s)?[1]),
        None => None,
    };
    let lm_t = |d_model, num_heads, num_layers, ff, context, pe: &str| TransformerSpec {
        d_model,
        num_heads,
        num_layers,
        dim_feedforward: ff,
        context,
        max_period: get("max_period", 10_000),
        norm: "rms_norm".into(),
        gating: Some("silu".into()),
        positional_embedding: pe.into(),
        layer_scale: None,
        conv_layout: false,
        max_seq_len: 4096,
    };
    Ok(LmSpec {
        transformer: lm_t(
            d_model,
            get("num_heads", 32),
            num_layers,
            ff,
            get("context", 3000),
            "rope",
        ),
        depformer: DepformerSpec {
            transformer: TransformerSpec {
                max_period: get("depformer_max_period", 10_000),
                ..lm_t(
                    dd,
                    get("depformer_num_heads", 16),
                    dep_layers,
                    dep_ff,
                    get("depformer_context", num_slices),
                    "none",
                )
            },
            num_slices,
            low_rank_embeddings: low_rank,
        },
        text_in_vocab_size: text_in,
        text_out_vocab_size: text_out,
        audio_vocab_size: audio_vocab,
        audio_codebooks,
    })
}

/// Infers a Mimi config from tensor shapes (sizes only; layout is Mimi's).
pub fn infer_mimi(shapes: &Shapes) -> Result<MimiSpec, String> {
    let [n_filters, _, _] = shape_any(
        shapes,
        &[
            "encoder.model.0.conv.conv.weight",
            "encoder.model.0.conv.conv.weight_v",
        ],
    )?;
    let tp = "encoder_transformer.transformer.layers.";
    let [dimension, _] = shape(shapes, &format!("{tp}0.self_attn.out_proj.weight"))?;
    let [ff, _] = shape(shapes, &format!("{tp}0.linear1.weight"))?;
    let num_layers = count_indexed(shapes, tp);
    let [quantizer_bins, quantizer_dim] = shape(
        shapes,
        "quantizer.rvq_first.vq.layers.0._codebook.embedding_sum",
    )?;
    let n_rest = count_indexed(shapes, "quantizer.rvq_rest.vq.layers.");
    let mut spec = MimiSpec::kyutai_v0_1(n_rest + 1);
    spec.dimension = dimension;
    spec.n_filters = n_filters;
    // Heads do not show in shapes: keep Mimi's 8 (the tiny models use 8 too).
    spec.transformer = mimi_transformer(dimension, 8, num_layers, ff);
    spec.quantizer_bins = quantizer_bins;
    spec.quantizer_dim = quantizer_dim;
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by fuzzing (`safetensors_header`): a header may give any tensor
    /// any shape; inference must refuse it, naming the tensor, never index past it.
    #[test]
    fn wrong_ranks_and_absurd_sizes_are_errors_not_panics() {
        let shapes: Shapes = [("text_emb.weight".to_string(), vec![])].into();
        let e = infer_lm(&shapes, None).unwrap_err();
        assert!(
            e.contains("`text_emb.weight`") && e.contains("2 dimensions"),
            "{e}"
        );
        let shapes: Shapes =
            [("encoder.model.0.conv.conv.weight_v".to_string(), vec![4, 1])].into();
        let e = infer_mimi(&shapes).unwrap_err();
        assert!(e.contains("weight_v") && e.contains("3 dimensions"), "{e}");
        let shapes: Shapes = [("text_emb.weight".to_string(), vec![0, usize::MAX])].into();
        let e = infer_lm(&shapes, None).unwrap_err();
        assert!(e.contains("implausible dimension"), "{e}");
    }
}
