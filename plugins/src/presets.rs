//! The shared preset files (`presets/*.toml`, the same files the host reads).
//!
//! The plugin persists the chosen preset's name with the project and validates
//! it on activation (errors are logged, naming file, field and range). Where the
//! directory is: `$ANTIPHON_PRESETS`, else `presets/` next to the plugin bundle's
//! folder, else the source tree's `presets/` (development builds).

use std::path::PathBuf;

use antiphon_framework::preset::{self, Preset};

use crate::knob_table;
use crate::params::AntiphonParams;

/// The presets directory (see the module docs); `None` if none exists.
pub fn dir() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("ANTIPHON_PRESETS").map(PathBuf::from),
        std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("presets"))),
        Some(PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../presets"
        ))),
    ];
    candidates.into_iter().flatten().find(|d| d.is_dir())
}

/// Names of the available presets (file stems), sorted.
pub fn names() -> Vec<String> {
    dir()
        .and_then(|d| preset::list(&d).ok())
        .unwrap_or_default()
        .iter()
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect()
}

/// Loads and validates a preset by name (or path) against the plugin's knobs.
pub fn load(name: &str) -> Result<Preset, String> {
    let d = dir().ok_or_else(|| "no presets directory found".to_string())?;
    let file = preset::resolve(name, &d)
        .ok_or_else(|| format!("preset `{name}` not found in {}", d.display()))?;
    Preset::load(&file, &knob_table::specs()).map_err(|e| e.to_string())
}

/// Validates the persisted preset choice, logging the outcome. Called off the
/// audio thread (activation).
pub fn check_chosen(params: &AntiphonParams) {
    let name = params.preset.read().map(|s| s.clone()).unwrap_or_default();
    if name.is_empty() {
        return;
    }
    match load(&name) {
        Ok(p) => nice_plug::nice_log!("Antiphon: preset `{}` ({} knobs)", p.name, p.knobs.len()),
        Err(e) => nice_plug::nice_error!("Antiphon: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_presets_load_against_the_plugin_knobs() {
        let names = names();
        assert!(names.len() >= 3, "{names:?}");
        for n in &names {
            load(n).unwrap();
        }
        assert!(load("no-such-preset").unwrap_err().contains("not found"));
    }
}
