//! Presets: human-readable TOML (or JSON) files holding knob values, lead
//! settings (which are knobs too) and the model choice. The host and the plugin
//! read the same files from `presets/`.
//!
//! ```toml
//! name = "Conversation"
//! description = "Balanced latency for talking to the model."
//! model = "builtin"          # or a model directory
//!
//! [knobs]
//! audio_temperature = 0.8
//! lead_floor_ms = 40
//! ```
//!
//! Every error names the file, the field and, for values, the allowed range.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::knobs::KnobSpec;

/// A parsed, validated preset.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preset {
    /// Display name (defaults to the file stem).
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// `"builtin"` or a model directory; `None` keeps the current model.
    #[serde(default)]
    pub model: Option<String>,
    /// Knob id → value, in the knob's own unit.
    #[serde(default)]
    pub knobs: BTreeMap<String, f64>,
}

/// Why a preset could not be used.
#[derive(Debug, Clone, PartialEq)]
pub struct PresetError {
    pub file: PathBuf,
    /// The offending field (`knobs.top_k`), empty when the whole file is at fault.
    pub field: String,
    pub message: String,
}

impl fmt::Display for PresetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "preset {}: {}", self.file.display(), self.message)
        } else {
            write!(
                f,
                "preset {}: field `{}`: {}",
                self.file.display(),
                self.field,
                self.message
            )
        }
    }
}

impl std::error::Error for PresetError {}

impl Preset {
    /// Parses preset text (TOML, or JSON when `file` ends in `.json`) and checks
    /// every knob against `specs`. `file` is only used for naming and format.
    pub fn parse(text: &str, file: &Path, specs: &[KnobSpec]) -> Result<Self, PresetError> {
        let err = |field: &str, message: String| PresetError {
            file: file.to_path_buf(),
            field: field.into(),
            message,
        };
        let mut p: Preset = if file.extension().is_some_and(|e| e == "json") {
            serde_json::from_str(text)
                .map_err(|e| err("", format!("not valid preset JSON: {e}")))?
        } else {
            toml::from_str(text).map_err(|e| {
                err(
                    "",
                    format!("not valid preset TOML: {}", e.to_string().trim()),
                )
            })?
        };
        if p.name.is_empty() {
            p.name = file
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
        }
        for (id, value) in p.knobs.iter_mut() {
            let field = format!("knobs.{id}");
            let spec = specs.iter().find(|s| &s.id == id).ok_or_else(|| {
                let known: Vec<&str> = specs.iter().map(|s| s.id.as_str()).collect();
                err(
                    &field,
                    format!("unknown knob; known knobs: {}", known.join(", ")),
                )
            })?;
            *value = spec.validate(*value).map_err(|m| err(&field, m))? as f64;
        }
        Ok(p)
    }

    /// Reads and validates a preset file.
    pub fn load(file: &Path, specs: &[KnobSpec]) -> Result<Self, PresetError> {
        let text = std::fs::read_to_string(file).map_err(|e| PresetError {
            file: file.to_path_buf(),
            field: String::new(),
            message: format!("cannot read: {e}"),
        })?;
        Self::parse(&text, file, specs)
    }

    /// Serialises as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }
}

/// Lists the presets (`*.toml`, `*.json`) in `dir`, sorted by file name.
pub fn list(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml" || e == "json"))
        .collect();
    v.sort();
    Ok(v)
}

/// Finds a preset by name (`conversation`) in `dir`, or treats `name_or_path`
/// as a path if it names an existing file.
pub fn resolve(name_or_path: &str, dir: &Path) -> Option<PathBuf> {
    let p = Path::new(name_or_path);
    if p.is_file() {
        return Some(p.to_path_buf());
    }
    ["toml", "json"]
        .iter()
        .map(|ext| dir.join(format!("{name_or_path}.{ext}")))
        .find(|c| c.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::knobs::Binding;

    fn specs() -> Vec<KnobSpec> {
        vec![
            KnobSpec::new(
                "audio_temperature",
                "Audio temperature",
                "",
                0.0,
                2.0,
                0.8,
                Binding::Sampling,
            ),
            KnobSpec::new("top_k", "Top-k", "", 1.0, 2048.0, 250.0, Binding::Sampling).stepped(1.0),
        ]
    }

    #[test]
    fn a_good_preset_parses_in_toml_and_json() {
        let t =
            "name = \"Calm\"\nmodel = \"builtin\"\n[knobs]\naudio_temperature = 0.5\ntop_k = 40\n";
        let p = Preset::parse(t, Path::new("calm.toml"), &specs()).unwrap();
        assert_eq!(p.knobs["top_k"], 40.0);
        assert_eq!(p.model.as_deref(), Some("builtin"));
        let j = r#"{"knobs": {"top_k": 12}}"#;
        let p = Preset::parse(j, Path::new("x/lofi.json"), &specs()).unwrap();
        assert_eq!(p.name, "lofi");
        let back = Preset::parse(&p.to_toml(), Path::new("lofi.toml"), &specs()).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn errors_name_file_field_and_range() {
        let e = Preset::parse("[knobs]\ntop_k = 5000\n", Path::new("p/bad.toml"), &specs())
            .unwrap_err();
        let m = e.to_string();
        assert!(
            m.contains("p/bad.toml") && m.contains("knobs.top_k") && m.contains("1 ..= 2048"),
            "{m}"
        );
        let e =
            Preset::parse("[knobs]\ntemprature = 1\n", Path::new("t.toml"), &specs()).unwrap_err();
        assert!(
            e.to_string().contains("unknown knob") && e.field == "knobs.temprature",
            "{e}"
        );
        let e = Preset::parse("knobs = [", Path::new("t.toml"), &specs()).unwrap_err();
        assert!(e.to_string().contains("not valid preset TOML"), "{e}");
        let e = Preset::parse("colour = 1", Path::new("t.toml"), &specs()).unwrap_err();
        assert!(e.to_string().contains("colour"), "{e}");
        let e = Preset::load(Path::new("/no/such/preset.toml"), &specs()).unwrap_err();
        assert!(e.to_string().contains("cannot read"), "{e}");
    }
}
