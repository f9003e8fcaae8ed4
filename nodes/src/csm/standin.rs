//! The CSM stand-in: the real architecture and the Hugging Face tensor names
//! at tiny sizes, weights made from a seed, written as a model folder that
//! `transformers`' `CsmForConditionalGeneration` also loads
//! (`tests/reference/csm_parity.py`), and read back through [`CsmModel::load`].
//! Random weights: the output is not speech.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use candle::{DType, Tensor};
use serde_json::json;

use super::bundle::{CsmModel, CSM_CONFIG_FILE, CSM_WEIGHTS_FILE};
use super::config::{CsmConfig, TensorLayout};
use super::model::{CsmAudioDecoder, CsmBackbone};
use crate::builtin::{
    make_mimi_tensors, record, save_safetensors, tiny_mimi_spec, KYUTAI_MIMI_FILE,
};
use crate::errors::ModelError;
use crate::rng::{seed_for, SplitMix64};

/// Byte-level tokens, then the specials Sesame's template uses.
const BYTE_TOKENS: u32 = 256;
const BOS: u32 = 256;
const EOS: u32 = 257;
const AUDIO: u32 = 258;
const AUDIO_EOS: u32 = 259;
const TEXT_VOCAB: u32 = 260;

/// The stand-in's `config.json` (transformers ≥ 5 form).
pub fn tiny_config_json() -> serde_json::Value {
    let rope = json!({
        "rope_type": "llama3", "rope_theta": 500000.0, "factor": 32.0,
        "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192
    });
    json!({
        "model_type": "csm",
        "architectures": ["CsmForConditionalGeneration"],
        "_name": "antiphon CSM stand-in (random weights, not speech)",
        "num_codebooks": 32, "vocab_size": 2051, "text_vocab_size": TEXT_VOCAB,
        "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
        "hidden_act": "silu", "max_position_embeddings": 2048, "rms_norm_eps": 1e-5,
        "rope_parameters": rope,
        "bos_token_id": BOS, "eos_token_id": null, "pad_token_id": AUDIO,
        "audio_token_id": AUDIO, "audio_eos_token_id": AUDIO_EOS,
        "codebook_pad_token_id": 2050, "codebook_eos_token_id": 0,
        "tie_codebooks_embeddings": true,
        "depth_decoder_config": {
            "model_type": "csm_depth_decoder_model",
            "num_codebooks": 32, "backbone_hidden_size": 64, "vocab_size": 2051,
            "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8,
            "hidden_act": "silu", "max_position_embeddings": 33, "rms_norm_eps": 1e-5,
            "rope_parameters": rope
        }
    })
}

/// GPT-2's byte → printable character map (what byte-level BPE vocabularies store).
fn byte_char(b: u8) -> char {
    let printable = |b: u8| (33..=126).contains(&b) || (161..=172).contains(&b) || b >= 174;
    if printable(b) {
        b as char
    } else {
        let n = (0..b).filter(|&x| !printable(x)).count() as u32;
        char::from_u32(256 + n).expect("below 0x180")
    }
}

/// A byte-level BPE `tokenizer.json` (no merges: one token per byte) with
/// Llama-3's special-token names.
pub fn tiny_tokenizer_json() -> serde_json::Value {
    let vocab: serde_json::Map<String, serde_json::Value> = (0..BYTE_TOKENS)
        .map(|b| (byte_char(b as u8).to_string(), json!(b)))
        .collect();
    let special = |id: u32, content: &str| {
        json!({"id": id, "content": content, "single_word": false, "lstrip": false,
               "rstrip": false, "normalized": false, "special": true})
    };
    json!({
        "version": "1.0", "truncation": null, "padding": null,
        "added_tokens": [
            special(BOS, "<|begin_of_text|>"), special(EOS, "<|end_of_text|>"),
            special(AUDIO, "<|AUDIO|>"), special(AUDIO_EOS, "<|audio_eos|>")
        ],
        "normalizer": null,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
                  "ignore_merges": false, "vocab": vocab, "merges": []}
    })
}

/// The stand-in's weights (Hugging Face names), made from `seed`.
fn tiny_tensors(cfg: &Arc<CsmConfig>, seed: u64) -> candle::Result<BTreeMap<String, Tensor>> {
    let layout = TensorLayout::HuggingFace;
    let mut t = record(seed, |vb| {
        CsmBackbone::new(cfg.clone(), layout, &vb)?;
        CsmAudioDecoder::new(cfg.clone(), layout, &vb).map(|_| ())
    })?;
    // Norm gains of exactly 1 would hide a norm loaded from the wrong tensor.
    for (name, v) in t.iter_mut() {
        if v.rank() == 1 && name.contains("norm") {
            let mut rng = SplitMix64::new(seed_for(seed, name));
            let g: Vec<f32> = (0..v.elem_count())
                .map(|_| 1.0 + 0.1 * rng.next_normal() as f32)
                .collect();
            *v = Tensor::from_vec(g, v.elem_count(), v.device())?;
        }
    }
    // transformers ties the depth decoder's audio embeddings to the backbone's.
    let names = layout.top_names().audio_embeddings;
    let shared = t[names[0]].clone();
    t.insert(names[1].to_string(), shared);
    Ok(t)
}

/// Writes the CSM stand-in into `dir` (created if needed) and checks that it
/// loads.
pub fn write_csm_standin(dir: &Path, seed: u64) -> Result<(), ModelError> {
    std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
    let write_json = |name: &str, v: serde_json::Value| {
        let p = dir.join(name);
        let text = serde_json::to_string_pretty(&v).map_err(|e| ModelError::config(&p, e))?;
        std::fs::write(&p, text).map_err(|e| ModelError::io(&p, e))
    };
    let cfg_json = tiny_config_json();
    let cfg = Arc::new(
        CsmConfig::from_json(&cfg_json.to_string())
            .map_err(|e| ModelError::config(CSM_CONFIG_FILE, e))?,
    );
    write_json(CSM_CONFIG_FILE, cfg_json)?;
    write_json("tokenizer.json", tiny_tokenizer_json())?;
    let weights = dir.join(CSM_WEIGHTS_FILE);
    let t = tiny_tensors(&cfg, seed).map_err(|e| ModelError::model(&weights, e))?;
    save_safetensors(&t, DType::F32, &weights)?;
    let mut mimi = tiny_mimi_spec();
    mimi.quantizer_n_q = cfg.num_codebooks;
    let mimi_t = make_mimi_tensors(&mimi, seed ^ 0x4D49_4D49)?;
    save_safetensors(&mimi_t, DType::F32, &dir.join(KYUTAI_MIMI_FILE))?;
    CsmModel::load(dir).map(|_| ())
}

/// The stand-in of `seed` in the model cache, written on first use (see
/// [`cached_model_dir`](crate::builtin::cached_model_dir)).
pub fn csm_standin_dir(seed: u64) -> Result<std::path::PathBuf, ModelError> {
    crate::builtin::cached_model_dir("csm-standin", seed, CSM_WEIGHTS_FILE, write_csm_standin)
}
