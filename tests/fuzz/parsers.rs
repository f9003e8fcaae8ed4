//! One entry point per fuzz target: what Antiphon does with untrusted bytes of
//! each kind. The fuzz targets (`tests/fuzz/fuzz_targets/`) and the corpus
//! replay test of the workspace (`tests/tests/fuzz_corpus_replay.rs`) both
//! include this file, so the suite replays exactly what was fuzzed.
//!
//! A clear `Err` is a correct answer to bad input; a panic, an abort (e.g. an
//! allocation sized from a header) or a hang is the bug. Where the accepted
//! result has a property a user relies on, it is asserted too.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use antiphon_framework::graph::{GraphDesc, NodeRegistry};
use antiphon_framework::knobs::KnobSpec;
use antiphon_framework::node::{FrameContext, Node, NodeError, Payload, PortSpec};
use antiphon_framework::preset::Preset;
use antiphon_nodes::builtin::{builtin_dir, BUILTIN_SEED, MANIFEST_FILE};
use antiphon_nodes::spec::{infer_lm, infer_mimi, Manifest, Shapes};
use antiphon_nodes::weights::{gguf_shapes, open_safetensors, safetensors_shapes};

#[allow(dead_code)] // the host's reader is included whole; only `decode` is fuzzed
#[path = "../../hosts/src/wav.rs"]
mod wav;

/// Every target: name (= corpus directory) and entry point.
pub const TARGETS: [(&str, fn(&[u8])); 8] = [
    ("plugin_state", plugin_state),
    ("preset", preset),
    ("model_manifest", model_manifest),
    ("kyutai_config", kyutai_config),
    ("wav", wav_file),
    ("safetensors_header", safetensors_header),
    ("gguf_header", gguf_header),
    ("graph_desc", graph_desc),
];

/// A plugin state blob as a host hands it back: nice-plug's JSON decoding, then
/// our sanitising. An accepted state is complete and every knob in range.
pub fn plugin_state(data: &[u8]) {
    use antiphon_plugin::knob_table::KNOBS;
    use nice_plug::plugin::ParamValue;
    let Some(state) = antiphon_plugin::state::parse(data) else {
        return;
    };
    for k in KNOBS.iter() {
        let ok = match state.params.get(k.id) {
            Some(ParamValue::F32(v)) => (k.min..=k.max).contains(v),
            Some(ParamValue::I32(v)) => (k.min as i32..=k.max as i32).contains(v),
            Some(ParamValue::Bool(_)) => true,
            _ => false,
        };
        assert!(ok, "`{}` missing or out of range after sanitising", k.id);
    }
    let extra = antiphon_plugin::state::EXTRA_SWITCHES;
    for (id, _) in extra {
        assert!(
            matches!(state.params.get(id), Some(ParamValue::Bool(_))),
            "`{id}` missing after sanitising"
        );
    }
    assert_eq!(
        state.params.len(),
        KNOBS.len() + extra.len(),
        "unknown parameters kept"
    );
}

/// A preset file: the first byte picks the format (odd: JSON, even: TOML), the
/// rest is the file. An accepted preset survives a save/load round trip.
pub fn preset(data: &[u8]) {
    let Some((&format, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return; // `Preset::load` reads the file as UTF-8 and reports it
    };
    let file = Path::new(if format % 2 == 1 {
        "fuzz.json"
    } else {
        "fuzz.toml"
    });
    let specs = antiphon_plugin::knob_table::specs();
    if let Ok(p) = Preset::parse(text, file, &specs) {
        let again = Preset::parse(&p.to_toml(), Path::new("again.toml"), &specs)
            .unwrap_or_else(|e| panic!("a saved preset does not load again: {e}"));
        assert_eq!(again, p, "a preset changed in a save/load round trip");
    }
}

/// `antiphon.json`: parsed and cross-checked as the loader does before it
/// touches any weights file.
pub fn model_manifest(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(m) = serde_json::from_str::<Manifest>(text) else {
        return;
    };
    if m.validate().is_ok() {
        m.mimi.config.to_moshi().expect("validated Mimi config");
        if let Ok((lm, _)) = m.validate_lm() {
            lm.config.to_moshi(true).expect("validated LM config");
            lm.config.depformer_config().expect("validated depformer");
        }
    }
}

/// Tensor shapes of the built-in LM, the weights a `config.json` is read with.
fn builtin_lm_shapes() -> &'static Shapes {
    static SHAPES: OnceLock<Shapes> = OnceLock::new();
    SHAPES.get_or_init(|| {
        let dir = builtin_dir(BUILTIN_SEED).expect("built-in model");
        let text = std::fs::read_to_string(dir.join(MANIFEST_FILE)).expect("built-in manifest");
        let m: Manifest = serde_json::from_str(&text).expect("built-in manifest parses");
        let lm = m.lm.expect("built-in LM");
        safetensors_shapes(&open_safetensors(&dir.join(&lm.file)).expect("built-in LM"))
    })
}

/// kyutai's `config.json` next to a `model.safetensors`: read for the settings
/// shapes do not show (heads, context, rope period).
pub fn kyutai_config(data: &[u8]) {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    if let Ok(spec) = infer_lm(builtin_lm_shapes(), Some(&v)) {
        let _ = spec.to_moshi(true);
    }
}

/// A WAV file given to `antiphon run --input`.
pub fn wav_file(data: &[u8]) {
    if let Ok(a) = wav::decode(data) {
        assert!(a.frames() > 0 && !a.channels.is_empty());
        assert!(a.channels.iter().all(|c| c.len() == a.frames()));
        assert!(a.channels.iter().flatten().all(|x| x.is_finite()));
    }
}

/// A private file for the loaders that take a path (they mmap or seek it).
fn scratch(ext: &str, data: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("antiphon-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("input.{ext}"));
    std::fs::write(&file, data).unwrap();
    file
}

/// A safetensors weights file: header parsed, then sizes inferred from the
/// shapes as for a kyutai-layout directory (LM and Mimi).
pub fn safetensors_header(data: &[u8]) {
    let file = scratch("safetensors", data);
    if let Ok(st) = open_safetensors(&file) {
        let shapes = safetensors_shapes(&st);
        let _ = infer_lm(&shapes, None);
        let _ = infer_mimi(&shapes);
    }
}

/// A GGUF LM file: header and tensor table, bounds-checked against the file.
pub fn gguf_header(data: &[u8]) {
    let file = scratch("gguf", data);
    if let Ok(shapes) = gguf_shapes(&file) {
        let _ = infer_lm(&shapes, None);
    }
}

/// A node for graph descriptions: ports chosen by its parameters.
struct Stage {
    inputs: Vec<PortSpec>,
    outputs: Vec<PortSpec>,
}

impl Node for Stage {
    fn name(&self) -> &str {
        "stage"
    }
    fn inputs(&self) -> Vec<PortSpec> {
        self.inputs.clone()
    }
    fn outputs(&self) -> Vec<PortSpec> {
        self.outputs.clone()
    }
    fn knobs(&self) -> Vec<KnobSpec> {
        Vec::new()
    }
    fn process(
        &mut self,
        _: &FrameContext,
        _: &[Payload],
        _: &mut [Payload],
    ) -> Result<(), NodeError> {
        Ok(())
    }
}

/// Kinds like the model graph's: audio → audio, audio → codes, codes → audio,
/// each taking `{"codebooks": n}` or `{"rate": hz}` parameters.
fn registry() -> NodeRegistry {
    fn param(p: &serde_json::Value, key: &str, default: f64) -> Result<f64, String> {
        match p.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_f64()
                .filter(|x| x.is_finite() && *x >= 1.0)
                .ok_or_else(|| format!("`{key}` must be a number ≥ 1")),
        }
    }
    let mut reg = NodeRegistry::new();
    reg.register(
        "resample",
        Box::new(|p, rate| {
            let to = param(p, "rate", rate)?;
            Ok(Box::new(Stage {
                inputs: vec![PortSpec::audio("in", rate)],
                outputs: vec![PortSpec::audio("out", to)],
            }))
        }),
    );
    reg.register(
        "encoder",
        Box::new(|p, rate| {
            let k = param(p, "codebooks", 8.0)?.min(64.0) as usize;
            Ok(Box::new(Stage {
                inputs: vec![PortSpec::audio("in", rate)],
                outputs: vec![PortSpec::codes("codes", k)],
            }))
        }),
    );
    reg.register(
        "decoder",
        Box::new(|p, rate| {
            let k = param(p, "codebooks", 8.0)?.min(64.0) as usize;
            Ok(Box::new(Stage {
                inputs: vec![PortSpec::codes("codes", k)],
                outputs: vec![PortSpec::audio("out", rate)],
            }))
        }),
    );
    reg
}

/// A graph description (JSON), instantiated and validated.
pub fn graph_desc(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(d) = GraphDesc::from_json(text) {
        if let Ok(g) = d.build(&registry(), 48_000.0) {
            assert_eq!(g.stage_names().len(), d.nodes.len());
        }
    }
}
