//! Helpers the CLI test binaries share: run `antiphon`, read what it printed,
//! and a scratch folder per test process.

#![allow(dead_code)] // each test binary uses its own subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_antiphon");

/// Runs `antiphon` with `args`, the shipped presets in reach.
pub fn antiphon(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env(
            "ANTIPHON_PRESETS",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../presets"),
        )
        .output()
        .expect("running antiphon")
}

/// Everything it printed, stdout then stderr.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `name` in a scratch folder of this test process.
pub fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("antiphon-host-tests-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}
