//! The Moshi-architecture families: Mimi + temporal transformer (backbone) +
//! depformer (code predictor), speech in → speech (and text) out.
//!
//! * `moshi`: kyutai's Moshi, a spoken conversation (the user's voice in, a
//!   reply out).
//! * `hibiki`: kyutai's Hibiki, streaming speech translation: the same
//!   architecture with its own config (16 generated + 16 input codebooks, a
//!   48k text vocabulary); its `config.json` says `"model_type": "hibiki"`.
//!
//! Without `antiphon.json` a folder is recognised from kyutai's layout: an LM
//! (`model.safetensors`, `config.json`'s `moshi_name`, or any `*.gguf`) beside
//! Mimi (`tokenizer-*.safetensors`); `config.json`'s `model_type` tells the
//! two apart.

use std::path::Path;

use antiphon_framework::knobs::KnobSpec;
use candle::DType;

use super::{Family, Pacing, Port, Stages, Task};
use crate::backbone::Backbone;
use crate::builtin::{write_lm_model, LmStorage, MANIFEST_FILE};
use crate::bundle::{file_names, kyutai_config, LoadOptions, ModelBundle, MODEL_RATE};
use crate::capture::Capture;
use crate::code_predictor::CodePredictor;
use crate::decoder::Decoder;
use crate::encoder::Encoder;
use crate::errors::ModelError;
use crate::output::Output;
use crate::pytorch_layout::{candle_shapes, is_pytorch};
use crate::resample::Resample;
use crate::spec::{
    infer_lm, infer_mimi, FileSpec, GenerationSpec, Manifest, StreamAlignment, MANIFEST_FORMAT,
};
use crate::weights::{gguf_shapes, open_safetensors, safetensors_shapes};

/// A Moshi-architecture family.
pub struct LmFamily {
    name: &'static str,
    summary: &'static str,
    task: Task,
    /// `config.json`'s `model_type` for this family (kyutai's loader's key).
    model_type: &'static str,
}

/// kyutai's Moshi: spoken conversation.
pub static MOSHI: LmFamily = LmFamily {
    name: "moshi",
    summary: "Mimi codec + Moshi LM (temporal transformer + depformer): spoken conversation",
    task: Task::Conversation,
    model_type: "moshi",
};

/// kyutai's Hibiki: streaming speech translation.
pub static HIBIKI: LmFamily = LmFamily {
    name: "hibiki",
    summary: "Mimi codec + Hibiki LM (Moshi architecture): streaming speech translation",
    task: Task::Translation,
    model_type: "hibiki",
};

/// The stage names of the graph, in order.
pub const STAGES: [&str; 8] = [
    "capture",
    "resample_in",
    "encoder",
    "backbone",
    "code_predictor",
    "decoder",
    "resample_out",
    "output",
];

impl Family for LmFamily {
    fn name(&self) -> &'static str {
        self.name
    }
    fn summary(&self) -> &'static str {
        self.summary
    }
    fn task(&self) -> Task {
        self.task
    }
    fn pacing(&self) -> Pacing {
        Pacing::InputPaced
    }
    fn ports(&self) -> &'static [Port] {
        &[Port::AudioIn, Port::AudioOut, Port::TextOut]
    }
    fn knobs(&self, bundle: &ModelBundle) -> Vec<KnobSpec> {
        crate::knobs::all(bundle.decoded_codebooks())
    }
    fn recognises(&self, files: &[String], config: Option<&serde_json::Value>) -> bool {
        // A declared model type decides (the load then names what is missing).
        match super::declared_type(config) {
            Some(t) => t == self.model_type,
            None => {
                self.model_type == "moshi"
                    && mimi_file(files).is_some()
                    && lm_file(files, config).is_some()
            }
        }
    }
    fn load(
        &'static self,
        dir: &Path,
        manifest: Option<Manifest>,
        opts: LoadOptions,
    ) -> Result<ModelBundle, ModelError> {
        let manifest = match manifest {
            Some(m) => {
                m.validate_lm()
                    .map_err(|e| ModelError::config(dir.join(MANIFEST_FILE), e))?;
                m
            }
            None => self.kyutai_manifest(dir)?,
        };
        ModelBundle::assemble(dir, self, manifest, opts)
    }
    fn graph(&self, bundle: &ModelBundle, rate: f64, seed: u64) -> Result<Stages, String> {
        let (backbone, conv) = Backbone::new(bundle, seed)?;
        let predictor = CodePredictor::new(bundle, conv, seed)?;
        let nodes: [Box<dyn antiphon_framework::node::Node>; 8] = [
            Box::new(Capture::new(rate)),
            Box::new(Resample::new("resample_in", rate, MODEL_RATE)?),
            Box::new(Encoder::new(bundle)),
            Box::new(backbone),
            Box::new(predictor),
            Box::new(Decoder::new(bundle)),
            Box::new(Resample::new("resample_out", MODEL_RATE, rate)?),
            Box::new(Output::new(rate)),
        ];
        Ok(Stages {
            chain: STAGES.into_iter().zip(nodes).collect(),
            // Backbone step t+1 needs the codes the predictor samples at step t.
            feedback: vec![("code_predictor", "backbone")],
        })
    }
    /// Moshi: the built-in model's layout (candle names, `antiphon.json`).
    /// Hibiki: its published layout (kyutai's PyTorch names and `config.json`
    /// with `"model_type": "hibiki"`, no manifest).
    fn write_stand_in(&self, dir: &Path, seed: u64) -> Result<(), ModelError> {
        match self.task {
            Task::Translation => write_lm_model(
                dir,
                seed,
                crate::builtin::tiny_hibiki_manifest(),
                LmStorage::Pytorch(DType::F32),
                false,
            ),
            _ => write_lm_model(
                dir,
                seed,
                crate::builtin::tiny_manifest(crate::builtin::KYUTAI_LM_FILE),
                LmStorage::Safetensors(DType::F32),
                true,
            ),
        }
        .map(|_| ())
    }
}

impl LmFamily {
    /// A manifest for a folder laid out like kyutai's release: sizes from the
    /// tensor shapes, the rest from `config.json` (else Moshi v0.1's values).
    fn kyutai_manifest(&self, dir: &Path) -> Result<Manifest, ModelError> {
        let names = file_names(dir)?;
        let kyutai = kyutai_config(dir)?;
        let mimi = mimi_file(&names).ok_or_else(|| ModelError::MissingFile {
            dir: dir.into(),
            what: "Mimi codec",
            looked_for: format!("{MANIFEST_FILE} or tokenizer-*.safetensors"),
        })?;
        let lm = lm_file(&names, kyutai.as_ref()).ok_or_else(|| ModelError::MissingFile {
            dir: dir.into(),
            what: "language model",
            looked_for: "model.safetensors, config.json's moshi_name, or *.gguf".into(),
        })?;
        let lm_path = dir.join(&lm);
        let lm_shapes = if lm.ends_with(".gguf") {
            gguf_shapes(&lm_path)?
        } else {
            let shapes = safetensors_shapes(&open_safetensors(&lm_path)?);
            if is_pytorch(&shapes) {
                candle_shapes(&shapes)
            } else {
                shapes
            }
        };
        let lm_spec =
            infer_lm(&lm_shapes, kyutai.as_ref()).map_err(|e| ModelError::config(&lm_path, e))?;
        if let Some(cfg) = &kyutai {
            config_matches_weights(cfg, &lm_spec, &lm)
                .map_err(|e| ModelError::config(dir.join("config.json"), e))?;
        }
        let mimi_path = dir.join(&mimi);
        let mut mimi_spec = infer_mimi(&safetensors_shapes(&open_safetensors(&mimi_path)?))
            .map_err(|e| ModelError::config(&mimi_path, e))?;
        let mut generation = GenerationSpec {
            generated_audio_codebooks: lm_spec.depformer.num_slices,
            input_audio_codebooks: lm_spec
                .audio_codebooks
                .saturating_sub(lm_spec.depformer.num_slices),
            ..GenerationSpec::moshi_v0_1(lm_spec.text_in_vocab_size)
        };
        if let Some(delays) = kyutai.as_ref().and_then(|c| c.get("delays")) {
            // kyutai's `delays` are PyTorch `LMGen`'s: run as it does.
            generation.acoustic_delay = acoustic_delay(delays, &generation)
                .map_err(|e| ModelError::config(dir.join("config.json"), e))?;
            generation.alignment = StreamAlignment::Pytorch;
        }
        if let Some(pad) = kyutai
            .as_ref()
            .and_then(|c| c.get("existing_text_padding_id"))
            .and_then(|v| v.as_u64())
        {
            generation.text_pad_token = pad as u32;
        }
        // Kyutai ship all 32 Mimi levels; the LM uses the first few (fewer = cheaper).
        mimi_spec.quantizer_n_q = mimi_spec.quantizer_n_q.min(
            generation
                .generated_audio_codebooks
                .max(generation.input_audio_codebooks),
        );
        let m = Manifest {
            format: MANIFEST_FORMAT.into(),
            name: dir
                .file_name()
                .map_or_else(|| "model".into(), |n| n.to_string_lossy().into_owned()),
            family: self.name.into(),
            lm: Some(FileSpec {
                file: lm,
                config: lm_spec,
            }),
            mimi: FileSpec {
                file: mimi,
                config: mimi_spec,
            },
            generation: Some(generation),
            text_tokenizer: names
                .iter()
                .find(|n| n.starts_with("tokenizer_spm") && n.ends_with(".model"))
                .cloned(),
        };
        m.validate_lm()
            .map_err(|e| ModelError::config(&lm_path, e))?;
        Ok(m)
    }
}

/// Checks what `config.json` says about the stream layout against what the
/// weights hold: another model's config beside these weights is an error, not
/// a model that runs with the wrong layout.
fn config_matches_weights(
    cfg: &serde_json::Value,
    lm: &crate::spec::LmSpec,
    lm_file: &str,
) -> Result<(), String> {
    let checks = [
        (
            "n_q",
            lm.audio_codebooks,
            "audio codebook embeddings (emb.*)",
        ),
        ("dep_q", lm.depformer.num_slices, "depformer slices"),
        ("dim", lm.transformer.d_model, "backbone width"),
        ("num_layers", lm.transformer.num_layers, "backbone layers"),
    ];
    for (key, found, what) in checks {
        if let Some(want) = cfg.get(key).and_then(|v| v.as_u64()) {
            if want as usize != found {
                return Err(format!(
                    "says {key} = {want}, but `{lm_file}` has {found} {what}: this config \
                     belongs to another model"
                ));
            }
        }
    }
    Ok(())
}

/// Our acoustic delay from kyutai's `delays` (text, then each codebook of the
/// generated and the input stream): text and each stream's first (semantic)
/// codebook undelayed, every other codebook delayed alike — the layout of
/// every Moshi and Hibiki release. kyutai count a delay of d steps where the
/// moshi crate's state machine (which reads a step ahead) counts d + 1.
fn acoustic_delay(delays: &serde_json::Value, g: &GenerationSpec) -> Result<usize, String> {
    let d: Vec<u64> = delays
        .as_array()
        .and_then(|a| a.iter().map(|v| v.as_u64()).collect())
        .ok_or_else(|| format!("delays {delays} is not a list of step counts"))?;
    let (gen, inp) = (g.generated_audio_codebooks, g.input_audio_codebooks);
    let unsupported = || {
        format!(
            "delays {d:?}: only text and each stream's first codebook undelayed, and one delay \
             for every other codebook, are supported ({} entries: text + {gen} + {inp} codebooks)",
            1 + gen + inp
        )
    };
    if d.len() != 1 + gen + inp || d[0] != 0 || d[1] != 0 || (inp > 0 && d[1 + gen] != 0) {
        return Err(unsupported());
    }
    let acoustic: Vec<u64> = d[2..1 + gen]
        .iter()
        .chain(d.get(2 + gen..).unwrap_or(&[]))
        .copied()
        .collect();
    let a = acoustic.first().copied().unwrap_or(0);
    if acoustic.iter().any(|&x| x != a) {
        return Err(unsupported());
    }
    Ok(a as usize)
}

/// Mimi in kyutai's layout: the first `tokenizer-*.safetensors`.
pub(super) fn mimi_file(files: &[String]) -> Option<String> {
    files
        .iter()
        .filter(|n| n.starts_with("tokenizer-") && n.ends_with(".safetensors"))
        .min()
        .cloned()
}

/// The LM in kyutai's layout: `config.json`'s `moshi_name` if present, else
/// `model.safetensors`, then any other safetensors, then GGUF.
pub(super) fn lm_file(files: &[String], config: Option<&serde_json::Value>) -> Option<String> {
    if let Some(n) = config
        .and_then(|c| c.get("moshi_name"))
        .and_then(|n| n.as_str())
        .filter(|n| files.iter().any(|f| f == n))
    {
        return Some(n.to_string());
    }
    files
        .iter()
        .filter(|n| {
            (n.ends_with(".safetensors") && !n.starts_with("tokenizer")) || n.ends_with(".gguf")
        })
        .min_by_key(|n| {
            (
                n.as_str() != "model.safetensors",
                n.ends_with(".gguf"),
                n.to_string(),
            )
        })
        .cloned()
}
