//! The one preset lookup for every front end.
//!
//! A preset is found, in order: as a file path; in the preset folders given
//! (e.g. `$ANTIPHON_PRESETS`, the user's folder, `./presets`); among the shipped
//! presets, which are compiled in, so a plugin finds them wherever its bundle
//! lives (a plugin's `current_exe()` is the DAW, not the bundle).

use std::path::{Path, PathBuf};

use antiphon_framework::knobs::KnobSpec;
use antiphon_framework::preset::{self, Preset};

use super::model::ModelChoice;

/// The presets shipped in `presets/`: (name, TOML text).
pub const SHIPPED: [(&str, &str); 3] = [
    (
        "conversation",
        include_str!("../../../presets/conversation.toml"),
    ),
    ("lofi", include_str!("../../../presets/lofi.toml")),
    (
        "low-latency",
        include_str!("../../../presets/low-latency.toml"),
    ),
];

/// A preset found and validated against a knob set.
#[derive(Clone, Debug, PartialEq)]
pub struct FoundPreset {
    pub preset: Preset,
    /// The model it asks for (`None`: keep the current model). Relative
    /// folders are resolved against the preset file's folder first.
    pub model: Option<ModelChoice>,
    /// Where it came from: the file, or `shipped:<name>`.
    pub source: String,
}

/// Where presets are looked up (see the module docs).
#[derive(Clone, Debug, Default)]
pub struct Presets {
    /// Folders searched before the shipped presets, in order.
    pub dirs: Vec<PathBuf>,
}

/// The user's preset folder: `$XDG_CONFIG_HOME/antiphon/presets`, else
/// `~/.config/antiphon/presets` (`%APPDATA%\antiphon\presets` on Windows).
/// Two environment variables do not justify a dependency.
pub fn user_dir() -> Option<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let base = if cfg!(windows) {
        env("APPDATA")
    } else {
        env("XDG_CONFIG_HOME").or_else(|| env("HOME").map(|h| h.join(".config")))
    };
    base.map(|b| b.join("antiphon").join("presets"))
}

impl Presets {
    /// Only the given folders (and the shipped presets).
    pub fn new(dirs: Vec<PathBuf>) -> Self {
        Self { dirs }
    }

    /// `$ANTIPHON_PRESETS`, then the user's folder, then the shipped presets.
    pub fn standard() -> Self {
        let dirs = std::env::var_os("ANTIPHON_PRESETS")
            .map(PathBuf::from)
            .into_iter()
            .chain(user_dir())
            .collect();
        Self { dirs }
    }

    /// Every preset name available (folders first, then shipped), without duplicates.
    pub fn names(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for d in &self.dirs {
            for f in preset::list(d).unwrap_or_default() {
                if let Some(s) = f.file_stem().map(|s| s.to_string_lossy().into_owned()) {
                    if !out.contains(&s) {
                        out.push(s);
                    }
                }
            }
        }
        for (n, _) in SHIPPED {
            if !out.iter().any(|o| o == n) {
                out.push(n.to_string());
            }
        }
        out
    }

    /// Finds `name_or_path` and validates it against `specs` (errors name the
    /// file, the field and the allowed range).
    pub fn find(&self, name_or_path: &str, specs: &[KnobSpec]) -> Result<FoundPreset, String> {
        let file = Path::new(name_or_path)
            .is_file()
            .then(|| PathBuf::from(name_or_path))
            .or_else(|| {
                self.dirs
                    .iter()
                    .find_map(|d| preset::resolve(name_or_path, d))
            });
        if let Some(file) = file {
            let preset = Preset::load(&file, specs).map_err(|e| e.to_string())?;
            let model = preset
                .model
                .as_deref()
                .map(|m| resolve_model(m, file.parent()));
            return Ok(FoundPreset {
                preset,
                model,
                source: file.display().to_string(),
            });
        }
        if let Some((name, text)) = SHIPPED.iter().find(|(n, _)| *n == name_or_path) {
            let virt = PathBuf::from(format!("shipped:{name}.toml"));
            let preset = Preset::parse(text, &virt, specs).map_err(|e| e.to_string())?;
            let model = preset.model.as_deref().map(|m| resolve_model(m, None));
            return Ok(FoundPreset {
                preset,
                model,
                source: format!("shipped:{name}"),
            });
        }
        let looked: Vec<String> = self
            .dirs
            .iter()
            .map(|d| format!("`{}`", d.display()))
            .collect();
        Err(format!(
            "preset `{name_or_path}` not found: not a file, no {name_or_path}.toml or {name_or_path}.json in {}, and not a shipped preset (shipped: {})",
            if looked.is_empty() { "any preset folder".to_string() } else { looked.join(", ") },
            SHIPPED.map(|(n, _)| n).join(", ")
        ))
    }
}

/// A preset's `model` field: "builtin", or a folder (relative folders are
/// looked for beside the preset file first).
fn resolve_model(m: &str, beside: Option<&Path>) -> ModelChoice {
    match ModelChoice::parse(m) {
        ModelChoice::Dir(p) if p.is_relative() => match beside.map(|b| b.join(&p)) {
            Some(b) if b.is_dir() => ModelChoice::Dir(b),
            _ => ModelChoice::Dir(p),
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::knob_specs;

    #[test]
    fn shipped_presets_are_found_without_any_folder_and_validate() {
        let p = Presets::new(Vec::new());
        assert_eq!(p.names(), ["conversation", "lofi", "low-latency"]);
        for n in p.names() {
            let f = p.find(&n, &knob_specs(8)).unwrap();
            assert_eq!(f.model, Some(ModelChoice::Builtin), "{n}");
            assert!(f.source.starts_with("shipped:"));
        }
        let lofi = p.find("lofi", &knob_specs(8)).unwrap();
        assert_eq!(lofi.preset.knobs["codebook_depth"], 2.0);
    }

    #[test]
    fn a_folder_overrides_shipped_and_errors_are_clear() {
        let dir = std::env::temp_dir().join(format!("antiphon-presets-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("m")).unwrap();
        std::fs::write(dir.join("lofi.toml"), "model = \"m\"\n[knobs]\ntop_k = 7\n").unwrap();
        std::fs::write(dir.join("bad.toml"), "[knobs]\ntop_k = 9999\n").unwrap();
        let p = Presets::new(vec![dir.clone()]);
        let f = p.find("lofi", &knob_specs(8)).unwrap();
        assert_eq!(f.preset.knobs["top_k"], 7.0);
        assert_eq!(f.model, Some(ModelChoice::Dir(dir.join("m"))));
        let e = p.find("bad", &knob_specs(8)).unwrap_err();
        assert!(
            e.contains("bad.toml") && e.contains("knobs.top_k") && e.contains("1 ..= 2048"),
            "{e}"
        );
        let e = p.find("nope", &knob_specs(8)).unwrap_err();
        assert!(
            e.contains("`nope` not found") && e.contains("conversation"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
