//! CSM's configuration, read from the model folder's `config.json` in either
//! published form:
//!
//! * Hugging Face `transformers` (`"model_type": "csm"`, the `sesame/csm-1b`
//!   repository today): every size is written out, with a nested
//!   `depth_decoder_config`.
//! * Sesame's original (`backbone_flavor` / `decoder_flavor`, from the
//!   `SesameAILabs/csm` repository): sizes come from the two named flavours.
//!
//! Which tensor names the weights use is told by the weights file itself
//! ([`TensorLayout::detect`]), so either config works with either file.

use serde::Deserialize;
use serde_json::Value;

use crate::spec::Shapes;

/// Llama-3 RoPE frequency scaling (`rope_type: "llama3"`).
#[derive(Clone, Debug, PartialEq)]
pub struct Llama3Scaling {
    pub factor: f32,
    pub low_freq_factor: f32,
    pub high_freq_factor: f32,
    pub original_max_positions: f32,
}

/// Rotary embedding settings.
#[derive(Clone, Debug, PartialEq)]
pub struct RopeSpec {
    pub theta: f32,
    pub llama3: Option<Llama3Scaling>,
}

impl RopeSpec {
    /// Inverse frequencies for a head of `head_dim`, computed in f32 as
    /// `transformers` does (so the tables agree to the last bit or two).
    pub fn inv_freq(&self, head_dim: usize) -> Vec<f32> {
        let base: Vec<f32> = (0..head_dim)
            .step_by(2)
            .map(|i| 1.0 / self.theta.powf(i as f32 / head_dim as f32))
            .collect();
        let Some(s) = &self.llama3 else { return base };
        let low_wl = s.original_max_positions / s.low_freq_factor;
        let high_wl = s.original_max_positions / s.high_freq_factor;
        base.into_iter()
            .map(|f| {
                let wl = 2.0 * std::f32::consts::PI / f;
                if wl < high_wl {
                    f
                } else if wl > low_wl {
                    f / s.factor
                } else {
                    let smooth = (s.original_max_positions / wl - s.low_freq_factor)
                        / (s.high_freq_factor - s.low_freq_factor);
                    (1.0 - smooth) * f / s.factor + smooth * f
                }
            })
            .collect()
    }
}

/// One Llama stack's sizes.
#[derive(Clone, Debug, PartialEq)]
pub struct LlamaSpec {
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub intermediate: usize,
    pub eps: f64,
    pub rope: RopeSpec,
    /// Context length (positions the KV cache holds).
    pub max_positions: usize,
}

/// CSM: a backbone over text and audio frames, and an audio decoder that
/// predicts codebooks 1.. of each frame from the backbone's state.
#[derive(Clone, Debug, PartialEq)]
pub struct CsmConfig {
    pub backbone: LlamaSpec,
    pub decoder: LlamaSpec,
    pub num_codebooks: usize,
    /// Audio vocabulary per codebook (Mimi's 2048 codes + specials).
    pub audio_vocab: usize,
    pub text_vocab: usize,
    /// The code that, in every codebook, ends an utterance (an all-`eos` frame).
    pub codebook_eos: u32,
}

/// Sesame's two named sizes (`models.py`, `llama3_2_1B` / `llama3_2_100M`).
fn flavor(name: &str) -> Result<LlamaSpec, String> {
    let (layers, heads, kv_heads, hidden) = match name {
        "llama-1B" => (16, 32, 8, 2048),
        "llama-100M" => (4, 8, 2, 1024),
        other => {
            return Err(format!(
                "unknown flavor `{other}` (expected `llama-1B` or `llama-100M`)"
            ))
        }
    };
    Ok(LlamaSpec {
        hidden,
        layers,
        heads,
        kv_heads,
        head_dim: hidden / heads,
        intermediate: 8192,
        eps: 1e-5,
        rope: RopeSpec {
            theta: 500_000.0,
            llama3: Some(Llama3Scaling {
                factor: 32.0,
                low_freq_factor: 1.0,
                high_freq_factor: 4.0,
                original_max_positions: 8192.0,
            }),
        },
        max_positions: 2048,
    })
}

#[derive(Deserialize)]
struct SesameJson {
    audio_num_codebooks: usize,
    audio_vocab_size: usize,
    backbone_flavor: String,
    decoder_flavor: String,
    text_vocab_size: usize,
}

fn get_usize(v: &Value, key: &str) -> Result<usize, String> {
    v.get(key)
        .and_then(Value::as_u64)
        .map(|x| x as usize)
        .ok_or_else(|| format!("`{key}` is missing or not a whole number"))
}

fn get_f64(v: &Value, key: &str, default: f64) -> Result<f64, String> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(x) => x.as_f64().ok_or_else(|| format!("`{key}` is not a number")),
    }
}

/// RoPE from `rope_parameters` (transformers ≥ 5) or `rope_theta` + `rope_scaling` (4.x).
fn hf_rope(v: &Value) -> Result<RopeSpec, String> {
    let params = v.get("rope_parameters").filter(|p| !p.is_null());
    let scaling = params.or_else(|| v.get("rope_scaling").filter(|p| !p.is_null()));
    let theta = match params {
        Some(p) => get_f64(p, "rope_theta", 500_000.0)?,
        None => get_f64(v, "rope_theta", 500_000.0)?,
    } as f32;
    let llama3 = match scaling {
        Some(s) => match s
            .get("rope_type")
            .and_then(Value::as_str)
            .unwrap_or("default")
        {
            "default" => None,
            "llama3" => Some(Llama3Scaling {
                factor: get_f64(s, "factor", 32.0)? as f32,
                low_freq_factor: get_f64(s, "low_freq_factor", 1.0)? as f32,
                high_freq_factor: get_f64(s, "high_freq_factor", 4.0)? as f32,
                original_max_positions: get_f64(s, "original_max_position_embeddings", 8192.0)?
                    as f32,
            }),
            other => {
                return Err(format!(
                    "rope type `{other}` is not supported (CSM uses `llama3`)"
                ))
            }
        },
        None => None,
    };
    Ok(RopeSpec { theta, llama3 })
}

fn hf_llama(v: &Value) -> Result<LlamaSpec, String> {
    let hidden = get_usize(v, "hidden_size")?;
    let heads = get_usize(v, "num_attention_heads")?;
    let kv_heads = v
        .get("num_key_value_heads")
        .and_then(Value::as_u64)
        .map_or(heads, |x| x as usize);
    let head_dim = v
        .get("head_dim")
        .and_then(Value::as_u64)
        .map_or(hidden / heads.max(1), |x| x as usize);
    if let Some(act) = v.get("hidden_act").and_then(Value::as_str) {
        if act != "silu" {
            return Err(format!(
                "hidden_act `{act}` is not supported (CSM uses `silu`)"
            ));
        }
    }
    Ok(LlamaSpec {
        hidden,
        layers: get_usize(v, "num_hidden_layers")?,
        heads,
        kv_heads,
        head_dim,
        intermediate: get_usize(v, "intermediate_size")?,
        eps: get_f64(v, "rms_norm_eps", 1e-5)?,
        rope: hf_rope(v)?,
        max_positions: get_usize(v, "max_position_embeddings")?,
    })
}

impl CsmConfig {
    /// Parses either published `config.json` form. The error says what was
    /// expected when the file is another family's config.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let v: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let cfg = if v.get("backbone_flavor").is_some() {
            let s: SesameJson = serde_json::from_value(v).map_err(|e| e.to_string())?;
            Self {
                backbone: flavor(&s.backbone_flavor)?,
                decoder: LlamaSpec {
                    // The audio decoder only ever sees one frame: 1 + codebooks positions.
                    max_positions: s.audio_num_codebooks + 1,
                    ..flavor(&s.decoder_flavor)?
                },
                num_codebooks: s.audio_num_codebooks,
                audio_vocab: s.audio_vocab_size,
                text_vocab: s.text_vocab_size,
                codebook_eos: 0,
            }
        } else {
            match v.get("model_type").and_then(Value::as_str) {
                Some("csm") => {}
                Some(other) => {
                    return Err(format!(
                        "this is a `{other}` config, not CSM (expected `\"model_type\": \"csm\"` \
                         or Sesame's `backbone_flavor`)"
                    ))
                }
                None => {
                    return Err(
                        "not a CSM config: no `\"model_type\": \"csm\"` and no Sesame \
                                `backbone_flavor`"
                            .into(),
                    )
                }
            }
            let dd = v
                .get("depth_decoder_config")
                .filter(|d| d.is_object())
                .ok_or("`depth_decoder_config` is missing")?;
            Self {
                backbone: hf_llama(&v)?,
                decoder: hf_llama(dd).map_err(|e| format!("depth_decoder_config: {e}"))?,
                num_codebooks: get_usize(&v, "num_codebooks")?,
                audio_vocab: get_usize(&v, "vocab_size")?,
                text_vocab: get_usize(&v, "text_vocab_size")?,
                codebook_eos: v
                    .get("codebook_eos_token_id")
                    .and_then(Value::as_u64)
                    .unwrap_or(0) as u32,
            }
        };
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), String> {
        for (name, l) in [("backbone", &self.backbone), ("decoder", &self.decoder)] {
            if l.heads == 0 || l.kv_heads == 0 || l.heads % l.kv_heads != 0 {
                return Err(format!(
                    "{name}: {} attention heads do not split into {} key/value heads",
                    l.heads, l.kv_heads
                ));
            }
            if l.head_dim == 0 || l.head_dim % 2 != 0 || l.hidden == 0 || l.layers == 0 {
                return Err(format!("{name}: sizes must be positive and head_dim even"));
            }
            if l.max_positions == 0 || l.max_positions > 1 << 20 {
                return Err(format!("{name}: implausible context {}", l.max_positions));
            }
        }
        if self.num_codebooks < 2 || self.decoder.max_positions < self.num_codebooks {
            return Err(format!(
                "{} codebooks need an audio decoder context of at least that many positions (has {})",
                self.num_codebooks, self.decoder.max_positions
            ));
        }
        if self.audio_vocab == 0 || self.text_vocab == 0 {
            return Err("vocabulary sizes must be positive".into());
        }
        Ok(())
    }
}

/// Tensor names of one of the two published weight layouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TensorLayout {
    /// Hugging Face `transformers` (`backbone_model.*`, `depth_decoder.*`).
    HuggingFace,
    /// Sesame's original `model.safetensors` (`backbone.*`, `decoder.*`).
    Sesame,
}

/// Per-layer names inside a Llama stack.
pub struct LayerNames {
    pub attn: &'static str,
    pub attn_norm: &'static str,
    pub mlp_norm: &'static str,
    pub o_proj: &'static str,
    pub gate: &'static str,
    pub up: &'static str,
    pub down: &'static str,
}

/// Where the model-level tensors live.
pub struct TopNames {
    pub backbone: &'static str,
    pub decoder: &'static str,
    pub text_embeddings: &'static str,
    /// Audio embeddings: names tried in order (transformers ties the two
    /// copies and saves whichever it keeps).
    pub audio_embeddings: &'static [&'static str],
    pub codebook0_head: &'static str,
    pub projection: &'static str,
    pub audio_head: &'static str,
}

impl TensorLayout {
    /// The layout a weights file uses, or an error naming what was expected.
    pub fn detect(shapes: &Shapes) -> Result<Self, String> {
        if shapes.contains_key("backbone_model.norm.weight") {
            Ok(Self::HuggingFace)
        } else if shapes.contains_key("backbone.norm.scale") {
            Ok(Self::Sesame)
        } else {
            Err(
                "not CSM weights: expected `backbone_model.norm.weight` (Hugging Face layout) \
                 or `backbone.norm.scale` (Sesame's layout)"
                    .into(),
            )
        }
    }

    pub fn interleaved_rope(self) -> bool {
        self == Self::Sesame
    }

    pub fn norm_weight(self) -> &'static str {
        match self {
            Self::HuggingFace => "weight",
            Self::Sesame => "scale",
        }
    }

    pub fn layer_names(self) -> LayerNames {
        match self {
            Self::HuggingFace => LayerNames {
                attn: "self_attn",
                attn_norm: "input_layernorm",
                mlp_norm: "post_attention_layernorm",
                o_proj: "o_proj",
                gate: "gate_proj",
                up: "up_proj",
                down: "down_proj",
            },
            Self::Sesame => LayerNames {
                attn: "attn",
                attn_norm: "sa_norm",
                mlp_norm: "mlp_norm",
                o_proj: "output_proj",
                gate: "w1",
                up: "w3",
                down: "w2",
            },
        }
    }

    pub fn top_names(self) -> TopNames {
        match self {
            Self::HuggingFace => TopNames {
                backbone: "backbone_model",
                decoder: "depth_decoder.model",
                text_embeddings: "embed_text_tokens.weight",
                audio_embeddings: &[
                    "backbone_model.embed_tokens.embed_audio_tokens.weight",
                    "depth_decoder.model.embed_tokens.weight",
                ],
                codebook0_head: "lm_head",
                projection: "depth_decoder.model.inputs_embeds_projector",
                audio_head: "depth_decoder.codebooks_head.weight",
            },
            Self::Sesame => TopNames {
                backbone: "backbone",
                decoder: "decoder",
                text_embeddings: "text_embeddings.weight",
                audio_embeddings: &["audio_embeddings.weight"],
                codebook0_head: "codebook0_head",
                projection: "projection",
                audio_head: "audio_head",
            },
        }
    }
}
