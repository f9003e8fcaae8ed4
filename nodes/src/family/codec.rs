//! The `codec` family: Mimi alone as an audio effect. capture → resample_in →
//! encoder → decoder (at the codebook-depth knob) → resample_out → output.
//!
//! Input-paced with a fixed delay: Mimi's streaming encoder and decoder are
//! causal and frame-aligned (decoded frame t reconstructs input frame t), so
//! the only delay is the pipeline's own — the offline render's frame delay
//! plus the two resamplers' — and it is known exactly
//! ([`Family::fixed_delay_samples`]).
//!
//! Recognised without `antiphon.json` from kyutai's Mimi file alone
//! (`tokenizer-e351c8d8-checkpoint125.safetensors`, or any
//! `tokenizer-*.safetensors`) with no language model beside it.

use std::path::Path;

use antiphon_framework::engine::{EngineConfig, RunMode};
use antiphon_framework::knobs::KnobSpec;
use candle::DType;

use super::lm::{lm_file, mimi_file};
use super::{Family, Pacing, Port, Stages, Task};
use crate::builtin::{make_mimi_tensors, save_safetensors, tiny_mimi_spec, KYUTAI_MIMI_FILE};
use crate::builtin::{write_manifest, MANIFEST_FILE};
use crate::bundle::{file_names, LoadOptions, ModelBundle, MODEL_RATE};
use crate::capture::Capture;
use crate::decoder::Decoder;
use crate::encoder::Encoder;
use crate::errors::ModelError;
use crate::output::Output;
use crate::resample::{Resample, StreamResampler};
use crate::spec::{infer_mimi, FileSpec, Manifest, MimiSpec, MANIFEST_FORMAT};
use crate::weights::{open_safetensors, safetensors_shapes};

/// Codebooks decoded at most: the plugin's depth knob reaches 8 (kyutai's
/// file holds 32; Moshi uses the first 8).
pub const MAX_CODEBOOKS: usize = 8;

/// Mimi alone as an audio effect.
pub struct Codec;

/// The `codec` family.
pub static CODEC: Codec = Codec;

/// The stage names of the graph, in order.
pub const STAGES: [&str; 6] = [
    "capture",
    "resample_in",
    "encoder",
    "decoder",
    "resample_out",
    "output",
];

impl Family for Codec {
    fn name(&self) -> &'static str {
        "codec"
    }
    fn summary(&self) -> &'static str {
        "Mimi codec alone: an audio effect (encode → decode at a codebook depth), fixed delay"
    }
    fn task(&self) -> Task {
        Task::Effect
    }
    fn pacing(&self) -> Pacing {
        Pacing::FixedDelay
    }
    fn ports(&self) -> &'static [Port] {
        &[Port::AudioIn, Port::AudioOut]
    }
    fn knobs(&self, bundle: &ModelBundle) -> Vec<KnobSpec> {
        vec![
            crate::knobs::codebook_depth(bundle.decoded_codebooks()),
            crate::knobs::reset(),
        ]
    }
    fn recognises(&self, files: &[String], config: Option<&serde_json::Value>) -> bool {
        super::declared_type(config).is_none()
            && mimi_file(files).is_some()
            && lm_file(files, config).is_none()
    }
    fn load(
        &'static self,
        dir: &Path,
        manifest: Option<Manifest>,
        opts: LoadOptions,
    ) -> Result<ModelBundle, ModelError> {
        let manifest = match manifest {
            Some(m) => {
                if m.lm.is_some() || m.generation.is_some() {
                    return Err(ModelError::config(
                        dir.join(MANIFEST_FILE),
                        "family `codec` is Mimi alone, but the manifest also names a language \
                         model (`lm`/`generation`); remove them, or set the family it belongs to \
                         (moshi, hibiki)",
                    ));
                }
                m
            }
            None => kyutai_manifest(dir)?,
        };
        ModelBundle::assemble(dir, self, manifest, opts)
    }
    fn graph(&self, bundle: &ModelBundle, rate: f64, _seed: u64) -> Result<Stages, String> {
        let nodes: [Box<dyn antiphon_framework::node::Node>; 6] = [
            Box::new(Capture::new(rate)),
            Box::new(Resample::new("resample_in", rate, MODEL_RATE)?),
            Box::new(Encoder::new(bundle)),
            Box::new(Decoder::new(bundle)),
            Box::new(Resample::new("resample_out", MODEL_RATE, rate)?),
            Box::new(Output::new(rate)),
        ];
        Ok(Stages {
            chain: STAGES.into_iter().zip(nodes).collect(),
            feedback: Vec::new(),
        })
    }
    fn fixed_delay_samples(
        &self,
        _bundle: &ModelBundle,
        rate: f64,
        engine: &EngineConfig,
    ) -> Option<usize> {
        // A render that waits for generation, or a live stream held at a
        // fixed delay (the plugin's fixed latency mode), keeps the delay
        // fixed; otherwise the lead controller moves it.
        if engine.mode != RunMode::Offline && engine.fixed_delay_samples.is_none() {
            return None;
        }
        let resample = |from, to| StreamResampler::new(from, to).map(|r| r.delay_seconds());
        let (d_in, d_out) = (
            resample(rate, MODEL_RATE).ok()?,
            resample(MODEL_RATE, rate).ok()?,
        );
        let resamplers = ((d_in + d_out) * rate).round() as usize;
        Some(engine.offline_delay_samples(rate) + resamplers)
    }
    fn write_stand_in(&self, dir: &Path, seed: u64) -> Result<(), ModelError> {
        std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
        let spec = tiny_mimi_spec();
        let tensors = make_mimi_tensors(&spec, seed)?;
        save_safetensors(&tensors, DType::F32, &dir.join(KYUTAI_MIMI_FILE))?;
        write_manifest(
            dir,
            &manifest(
                "antiphon-codec-tiny (random weights)",
                KYUTAI_MIMI_FILE,
                spec,
            ),
        )
    }
}

fn manifest(name: &str, file: &str, spec: MimiSpec) -> Manifest {
    Manifest {
        format: MANIFEST_FORMAT.into(),
        name: name.into(),
        family: CODEC.name().into(),
        lm: None,
        mimi: FileSpec {
            file: file.into(),
            config: spec,
        },
        generation: None,
        text_tokenizer: None,
    }
}

/// A manifest for kyutai's Mimi file alone (sizes from its tensor shapes).
fn kyutai_manifest(dir: &Path) -> Result<Manifest, ModelError> {
    let names = file_names(dir)?;
    let file = mimi_file(&names).ok_or_else(|| ModelError::MissingFile {
        dir: dir.into(),
        what: "Mimi codec",
        looked_for: format!("{MANIFEST_FILE} or tokenizer-*.safetensors"),
    })?;
    let path = dir.join(&file);
    let mut spec = infer_mimi(&safetensors_shapes(&open_safetensors(&path)?))
        .map_err(|e| ModelError::config(&path, e))?;
    spec.quantizer_n_q = spec.quantizer_n_q.min(MAX_CODEBOOKS);
    let name = dir
        .file_name()
        .map_or_else(|| "codec".into(), |n| n.to_string_lossy().into_owned());
    Ok(manifest(&name, &file, spec))
}
