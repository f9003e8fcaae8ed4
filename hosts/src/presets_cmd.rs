//! `antiphon presets`: the preset files with their descriptions, checked
//! against the model's knobs (a broken preset is listed with its error).

use antiphon_framework::lead::LeadSettings;
use antiphon_framework::preset::{self, Preset};
use anyhow::{anyhow, Result};

use crate::cli::PresetsArgs;
use crate::setup::{output_knobs, presets_dir};

pub fn run(args: PresetsArgs) -> Result<()> {
    let dir = presets_dir(args.dir.as_deref());
    let files = preset::list(&dir)
        .map_err(|e| anyhow!("cannot list presets in `{}`: {e}", dir.display()))?;
    if files.is_empty() {
        println!("no presets (*.toml, *.json) in {}", dir.display());
        return Ok(());
    }
    // Every knob the canonical graph can have (codebook depth up to Mimi's 32).
    let mut specs = antiphon_nodes::knobs::all(32);
    specs.extend(LeadSettings::knobs());
    specs.extend(output_knobs());
    println!("presets in {} (use with --preset NAME):", dir.display());
    for f in files {
        let stem = f
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        match Preset::load(&f, &specs) {
            Ok(p) => {
                let model = p.model.as_deref().unwrap_or("builtin");
                println!(
                    "  {stem:<14} {} — {} [model: {model}]",
                    p.name, p.description
                );
            }
            Err(e) => println!("  {stem:<14} INVALID: {e}"),
        }
    }
    Ok(())
}
