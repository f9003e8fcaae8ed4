//! The end of every generating command: the human summary, and the report,
//! trace and plot files asked for.

use antiphon_framework::report::Report;
use anyhow::{Context, Result};

use crate::cli::OutputArgs;
use crate::plot;

/// Writes the report, trace and plot asked for on the command line.
pub fn write_files(args: &OutputArgs, r: &Report, trace: Option<&str>, title: &str) -> Result<()> {
    if let Some(p) = &args.report {
        std::fs::write(p, r.to_json())
            .with_context(|| format!("cannot write report `{}`", p.display()))?;
        eprintln!("report: {}", p.display());
    }
    if let Some(p) = &args.trace {
        let t = trace.unwrap_or("{\"traceEvents\":[]}");
        std::fs::write(p, t).with_context(|| format!("cannot write trace `{}`", p.display()))?;
        eprintln!("trace: {} (open in https://ui.perfetto.dev)", p.display());
    }
    if let Some(p) = &args.plot {
        std::fs::write(p, plot::svg(r, title))
            .with_context(|| format!("cannot write plot `{}`", p.display()))?;
        eprintln!("plot: {}", p.display());
    }
    Ok(())
}

/// Fails early (before minutes of work) when an output file cannot be created.
pub fn check_writable(paths: &[&std::path::Path]) -> Result<()> {
    for p in paths {
        if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.is_dir() {
                anyhow::bail!(
                    "cannot write `{}`: folder `{}` does not exist",
                    p.display(),
                    dir.display()
                );
            }
        }
    }
    Ok(())
}

impl OutputArgs {
    pub fn paths(&self) -> Vec<&std::path::Path> {
        [&self.report, &self.trace, &self.plot]
            .into_iter()
            .flatten()
            .map(|p| p.as_path())
            .collect()
    }
}
