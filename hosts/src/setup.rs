//! What every command that generates needs: the model (from `--model`, the
//! preset, or the built-in one), the canonical graph at the device rate, and a
//! knob bus with the preset applied.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use antiphon_framework::endpoint::OutputParam;
use antiphon_framework::engine::{EngineConfig, Pacing};
use antiphon_framework::graph::Graph;
use antiphon_framework::knobs::KnobBus;
use antiphon_framework::preset::{self, Preset};
use antiphon_nodes::graph::canonical_graph_with;
use antiphon_nodes::ModelBundle;
use anyhow::{anyhow, bail, Context, Result};

use crate::cli::ModelArgs;
use crate::script::{KnobChange, Stall};
use crate::stall::Stalled;

pub use antiphon_framework::endpoint::output_knobs;

/// The endpoint parameter an output knob drives.
pub fn output_param(id: &str) -> Option<OutputParam> {
    OutputParam::from_knob_id(id)
}

/// Where presets live: `$ANTIPHON_PRESETS`, `./presets`, else the folder
/// shipped next to the sources.
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

/// A loaded model and the preset file chosen with it.
pub struct Loaded {
    pub bundle: ModelBundle,
    pub preset_file: Option<PathBuf>,
    pub seed: u64,
    pub workers: usize,
}

impl Loaded {
    pub fn new(args: &ModelArgs) -> Result<Self> {
        let preset_file = match &args.preset {
            None => None,
            Some(p) => {
                let dir = presets_dir(None);
                Some(preset::resolve(p, &dir).ok_or_else(|| {
                    anyhow!(
                        "preset `{p}` not found: not a file, and no {p}.toml or {p}.json in `{}` (see `antiphon presets`)",
                        dir.display()
                    )
                })?)
            }
        };
        let model_dir = match (&args.model, &preset_file) {
            (Some(d), _) => Some(d.clone()),
            (None, Some(f)) => preset_model(f)?,
            (None, None) => None,
        };
        let bundle = match &model_dir {
            Some(d) => ModelBundle::load(d).map_err(|e| anyhow!("cannot load the model: {e}"))?,
            None => ModelBundle::builtin()
                .map_err(|e| anyhow!("cannot prepare the built-in model: {e}"))?,
        };
        Ok(Self {
            bundle,
            preset_file,
            seed: args.seed,
            workers: args.workers as usize,
        })
    }

    /// The canonical graph at `rate`, its backbone optionally stalled, and the
    /// knob bus with the preset applied (errors name file, field and range).
    pub fn graph(&self, rate: f64, stall: Option<Stall>) -> Result<(Graph, Arc<KnobBus>)> {
        let graph = canonical_graph_with(&self.bundle, rate, self.seed, |name, node| match stall {
            Some(s) if name == "backbone" => Box::new(Stalled::new(node, s)),
            _ => node,
        })
        .map_err(|e| anyhow!("cannot build the graph at {rate} Hz: {e}"))?;
        let knobs = antiphon_nodes::graph::knob_bus(&graph, output_knobs())
            .map_err(|e| anyhow!("knobs: {e}"))?;
        if let Some(f) = &self.preset_file {
            let p = Preset::load(f, knobs.specs()).map_err(|e| anyhow!("{e}"))?;
            for (id, v) in &p.knobs {
                knobs
                    .set_by_id(id, *v as f32, 0)
                    .map_err(|e| anyhow!("preset {}: {e}", f.display()))?;
            }
        }
        Ok((graph, knobs))
    }
}

/// The `model` field of a preset file: `None` for "builtin" or absent.
fn preset_model(file: &Path) -> Result<Option<PathBuf>> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read preset `{}`", file.display()))?;
    let model = if file.extension().is_some_and(|e| e == "json") {
        serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("model").and_then(|m| m.as_str().map(String::from)))
    } else {
        toml::from_str::<toml::Value>(&text)
            .ok()
            .and_then(|v| v.get("model").and_then(|m| m.as_str().map(String::from)))
    };
    Ok(match model.as_deref() {
        None | Some("builtin") | Some("") => None,
        Some(m) => {
            let p = PathBuf::from(m);
            // Relative model paths are relative to the preset file first.
            let beside = file.parent().map(|d| d.join(&p));
            Some(match beside {
                Some(b) if p.is_relative() && b.is_dir() => b,
                _ => p,
            })
        }
    })
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
