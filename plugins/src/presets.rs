//! The plugin's presets, through the session core's one preset lookup
//! ([`antiphon_nodes::session::Presets`]): the shipped presets are compiled
//! into the plugin (so they travel with the bundle), and `$ANTIPHON_PRESETS`
//! and the user's folder (`~/.config/antiphon/presets`) are searched first.
//!
//! The plugin persists the chosen preset's name with the project and validates
//! it on activation (errors are logged, naming file, field and range).

use antiphon_nodes::session::{FoundPreset, Presets};

use crate::knob_table;
use crate::params::AntiphonParams;

/// Names of the available presets (folders first, then shipped).
pub fn names() -> Vec<String> {
    Presets::standard().names()
}

/// Finds and validates a preset by name (or path) against the plugin's knobs.
pub fn load(name: &str) -> Result<FoundPreset, String> {
    Presets::standard().find(name, &knob_table::specs())
}

/// Validates the persisted preset choice, logging the outcome. Called off the
/// audio thread (activation).
pub fn check_chosen(params: &AntiphonParams) {
    let name = params.preset.read().map(|s| s.clone()).unwrap_or_default();
    if name.is_empty() {
        return;
    }
    match load(&name) {
        Ok(p) => nice_plug::nice_log!(
            "Antiphon: preset `{}` ({} knobs, from {})",
            p.preset.name,
            p.preset.knobs.len(),
            p.source
        ),
        Err(e) => nice_plug::nice_error!("Antiphon: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_presets_load_against_the_plugin_knobs_wherever_the_plugin_runs() {
        // No preset folder at all: the compiled-in ones are still there.
        std::env::set_var("ANTIPHON_PRESETS", "/no/such/folder");
        let names = names();
        for n in ["conversation", "lofi", "low-latency"] {
            assert!(names.iter().any(|m| m == n), "{names:?}");
            load(n).unwrap();
        }
        assert!(load("no-such-preset").unwrap_err().contains("not found"));
    }
}
