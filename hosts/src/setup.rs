//! What every command that generates needs, from the session core
//! (`antiphon_nodes::session`): the model (from `--model`, the preset, or the
//! built-in one, through the shared model cache and loader), the canonical
//! graph at the device rate, and a knob bus with the preset applied.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use antiphon_framework::endpoint::OutputParam;
use antiphon_framework::engine::{EngineConfig, Pacing};
use antiphon_framework::graph::Graph;
use antiphon_framework::knobs::KnobBus;
use antiphon_framework::node::Node;
use antiphon_nodes::session::{
    apply_knobs, build_graph, knob_specs, load_model_with, FoundPreset, ModelCache, ModelChoice,
    Presets, WrapFn,
};
use antiphon_nodes::ModelBundle;
use anyhow::{anyhow, bail, Result};

use crate::cli::ModelArgs;
use crate::script::{KnobChange, Stall};
use crate::stall::Stalled;

pub use antiphon_framework::endpoint::output_knobs;

/// Codebook depth presets and scripts may ask for: up to Mimi's 32 (the
/// decoder clamps to what the model generates).
pub const MAX_CODEBOOK_DEPTH: usize = 32;

/// The endpoint parameter an output knob drives.
pub fn output_param(id: &str) -> Option<OutputParam> {
    OutputParam::from_knob_id(id)
}

/// Where preset files are listed from: the explicit folder, `$ANTIPHON_PRESETS`,
/// `./presets`, else the folder shipped next to the sources.
pub fn presets_dir(explicit: Option<&Path>) -> PathBuf {
    if let Some(d) = explicit {
        return d.to_path_buf();
    }
    if let Some(d) = std::env::var_os("ANTIPHON_PRESETS") {
        return PathBuf::from(d);
    }
    let local = PathBuf::from("presets");
    if local.is_dir() {
        return local;
    }
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../presets"))
}

/// The host's preset lookup: `$ANTIPHON_PRESETS`, the user's folder,
/// `./presets`, then the shipped presets.
pub fn presets() -> Presets {
    let mut p = Presets::standard();
    p.dirs.push(PathBuf::from("presets"));
    p
}

/// Wraps the backbone with a stall injector.
pub fn stall_wrap(stall: Stall) -> WrapFn {
    Arc::new(move |name: &str, node: Box<dyn Node>| -> Box<dyn Node> {
        if name == "backbone" {
            Box::new(Stalled::new(node, stall))
        } else {
            node
        }
    })
}

/// The model to run: `--model`, else the preset's, else the built-in one.
pub fn model_choice(args: &ModelArgs, preset: Option<&FoundPreset>) -> ModelChoice {
    match (&args.model, preset.and_then(|p| p.model.clone())) {
        (Some(d), _) => ModelChoice::Dir(d.clone()),
        (None, Some(m)) => m,
        (None, None) => ModelChoice::Builtin,
    }
}

/// The `--preset`, found and checked (errors name file, field and range).
pub fn find_preset(args: &ModelArgs) -> Result<Option<FoundPreset>> {
    args.preset
        .as_deref()
        .map(|p| {
            presets()
                .find(p, &session_knobs())
                .map_err(|e| anyhow!("{e} (see `antiphon presets`)"))
        })
        .transpose()
}

/// Every knob a host session has.
pub fn session_knobs() -> Vec<antiphon_framework::knobs::KnobSpec> {
    knob_specs(MAX_CODEBOOK_DEPTH)
}

/// A loaded model and the preset chosen with it.
pub struct Loaded {
    pub bundle: Arc<ModelBundle>,
    pub preset: Option<FoundPreset>,
    pub seed: u64,
    pub workers: usize,
}

impl Loaded {
    pub fn new(args: &ModelArgs) -> Result<Self> {
        let preset = find_preset(args)?;
        let choice = model_choice(args, preset.as_ref());
        // The cache holds default-precision models only; `--dtype`/`--device` load afresh.
        let custom = args.load.dtype.is_some() || args.load.device != Default::default();
        let bundle = match ModelCache::global().get(&choice).filter(|_| !custom) {
            Some(b) => b,
            None => {
                let b = Arc::new(
                    load_model_with(&choice, args.load.options()).map_err(|e| anyhow!(e))?,
                );
                if !custom {
                    ModelCache::global().insert(&choice, &b);
                }
                b
            }
        };
        if let Some(lm) = bundle.lm.as_ref().filter(|lm| lm.quantized) {
            let stored = antiphon_nodes::weights::gguf_quantization(&lm.file).ok();
            if let Some(hint) = stored.and_then(antiphon_nodes::precision::quantized_speed_hint) {
                eprintln!("note: {hint}");
            }
        }
        Ok(Self {
            bundle,
            preset,
            seed: args.seed,
            workers: args.workers as usize,
        })
    }

    /// Engine settings for this model: the shared ones, paced as its family is.
    pub fn engine_config(&self, trace: bool, warmup_seconds: f64) -> EngineConfig {
        EngineConfig {
            pacing: self.bundle.family.pacing().engine(),
            ..engine_config(self.workers, trace, warmup_seconds)
        }
    }

    /// The model's graph at `rate`, its backbone optionally stalled, and the
    /// knob bus with the preset applied.
    pub fn graph(&self, rate: f64, stall: Option<Stall>) -> Result<(Graph, Arc<KnobBus>)> {
        let wrap = stall.map(stall_wrap);
        let graph =
            build_graph(&self.bundle, rate, self.seed, wrap.as_ref()).map_err(|e| anyhow!(e))?;
        let knobs = antiphon_nodes::graph::knob_bus(&graph, output_knobs())
            .map_err(|e| anyhow!("knobs: {e}"))?;
        if let Some(p) = &self.preset {
            apply_knobs(&knobs, p, 0).map_err(|e| anyhow!(e))?;
        }
        Ok((graph, knobs))
    }
}

/// Engine settings shared by the commands.
pub fn engine_config(workers: usize, trace: bool, warmup_seconds: f64) -> EngineConfig {
    EngineConfig {
        workers,
        pacing: Pacing::InputPaced,
        trace_capacity: if trace { 1 << 16 } else { 0 },
        warmup_seconds,
        ..Default::default()
    }
}

/// Checks scripted knob changes against the bus (unknown id or out of range → error).
pub fn check_script(knobs: &KnobBus, script: &[KnobChange]) -> Result<Vec<KnobChange>> {
    let mut out = Vec::with_capacity(script.len());
    for k in script {
        let Some(spec) = knobs.specs().iter().find(|s| s.id == k.id) else {
            let known: Vec<&str> = knobs.specs().iter().map(|s| s.id.as_str()).collect();
            bail!(
                "--knob {}: unknown knob; known knobs: {}",
                k.id,
                known.join(", ")
            );
        };
        let v = spec
            .validate(k.value)
            .map_err(|m| anyhow!("--knob {}: {m}", k.id))?;
        out.push(KnobChange {
            value: v as f64,
            ..k.clone()
        });
    }
    out.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
    Ok(out)
}
