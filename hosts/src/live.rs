//! `antiphon live`: placeholder until the device backends land.
use crate::cli::LiveArgs;
use anyhow::{bail, Result};
pub fn run(_args: LiveArgs) -> Result<()> {
    bail!("live audio is not available in this build; use `antiphon run` for files")
}
