//! The `csm` family: Sesame's CSM-1B text-to-speech (see [`crate::csm`]).
//! Free-running: text in, speech out, the lead bounding how far generation
//! runs ahead. Text comes through [`crate::speech::graph`] (`antiphon say`);
//! [`Family::graph`] speaks a demo line.
//!
//! Recognised without `antiphon.json` from its `config.json`
//! (`"model_type": "csm"`, or Sesame's `backbone_flavor`).

use std::path::Path;

use antiphon_framework::knobs::KnobSpec;

use super::{Family, Pacing, Port, Stages, Task};
use crate::bundle::{LoadOptions, ModelBundle};
use crate::csm::bundle::{csm_manifest, CsmModel};
use crate::csm::graph::{csm_stages, DEMO_TEXT};
use crate::csm::nodes::{lead_floor, speaker, temperature, top_k, TurnLimit};
use crate::csm::standin::write_csm_standin;
use crate::csm::text::Script;
use crate::errors::ModelError;
use crate::spec::Manifest;

/// Sesame's CSM: text (+ speaker, + context) → speech.
pub struct Csm;

/// The `csm` family.
pub static CSM: Csm = Csm;

impl Family for Csm {
    fn name(&self) -> &'static str {
        "csm"
    }
    fn summary(&self) -> &'static str {
        "Sesame CSM: text to speech (Llama backbone + audio decoder over 32 Mimi codebooks)"
    }
    fn task(&self) -> Task {
        Task::TextToSpeech
    }
    fn pacing(&self) -> Pacing {
        Pacing::FreeRunning
    }
    fn ports(&self) -> &'static [Port] {
        &[Port::TextIn, Port::AudioOut]
    }
    fn knobs(&self, bundle: &ModelBundle) -> Vec<KnobSpec> {
        let vocab = bundle
            .parts::<CsmModel>()
            .map_or(2051, |m| m.config.audio_vocab);
        vec![
            temperature(),
            top_k(vocab),
            speaker(),
            lead_floor(),
            crate::knobs::reset(),
        ]
    }
    fn recognises(&self, _files: &[String], config: Option<&serde_json::Value>) -> bool {
        super::declared_type(config) == Some("csm")
            || config.is_some_and(|c| c.get("backbone_flavor").is_some())
    }
    fn load(
        &'static self,
        dir: &Path,
        manifest: Option<Manifest>,
        opts: LoadOptions,
    ) -> Result<ModelBundle, ModelError> {
        let model = CsmModel::load(dir)?;
        let manifest = match manifest {
            Some(m) => m,
            None => csm_manifest(dir, model.config.num_codebooks)?,
        };
        Ok(ModelBundle::assemble(dir, self, manifest, opts)?.with_parts(model))
    }
    /// Without text to speak, the graph speaks [`DEMO_TEXT`] (then silence).
    fn graph(&self, bundle: &ModelBundle, rate: f64, seed: u64) -> Result<Stages, String> {
        let script = Script::parse(DEMO_TEXT)?;
        csm_stages(bundle, script, rate, seed, TurnLimit::Auto).map(|(s, _)| s)
    }
    fn write_stand_in(&self, dir: &Path, seed: u64) -> Result<(), ModelError> {
        write_csm_standin(dir, seed)
    }
}
