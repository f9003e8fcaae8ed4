//! The end of every generating command: the human summary, and the report,
//! trace and plot files asked for.

use std::fmt::Write as _;

use antiphon_framework::report::Report;
use anyhow::{Context, Result};

use crate::cli::OutputArgs;
use crate::plot;

/// A short summary for people (the JSON report has everything).
pub fn summary(r: &Report, live: bool) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "frames {}  audio {:.1} s  wall {:.1} s  RTF {:.3} (compute / audio time)",
        r.frames, r.audio_seconds, r.wall_seconds, r.rtf
    );
    if live {
        let first = r
            .first_audio_ms
            .map_or("-".into(), |f| format!("{f:.0} ms"));
        let _ = writeln!(
            s,
            "first audio {first}  latency p50 {:.0} / p99 {:.0} ms  ITL p50 {:.0} / p99 {:.0} ms",
            r.latency_ms.p50, r.latency_ms.p99, r.itl_ms.p50, r.itl_ms.p99
        );
        let _ = writeln!(
            s,
            "lead p50 {:.0} / p99 {:.0} ms (min {:.0}, final target {:.0})  underruns {} callbacks, {} samples, {} after warm-up",
            r.lead_ms.p50, r.lead_ms.p99, r.lead_ms.min, r.lead_ms.target_final,
            r.underruns.callbacks, r.underruns.samples, r.underruns.after_warmup
        );
    } else {
        let _ = writeln!(
            s,
            "offline render: latency, lead and underruns are measured with --pace realtime"
        );
    }
    let stages: Vec<String> = r
        .stages_ms
        .iter()
        .map(|(k, v)| format!("{k} {:.1}", v.p99))
        .collect();
    let _ = writeln!(s, "stage p99 ms: {}", stages.join(", "));
    let knobs: Vec<String> = r
        .knob_to_ear_ms
        .iter()
        .filter(|(_, v)| v.max > 0.0 || v.p50 > 0.0)
        .map(|(k, v)| format!("{k} p50 {:.0} / max {:.0}", v.p50, v.max))
        .collect();
    if !knobs.is_empty() {
        let _ = writeln!(s, "knob → ear ms: {}", knobs.join(", "));
    }
    if let Some(m) = &r.skipped.message {
        let _ = writeln!(s, "{m}");
    }
    for e in &r.errors {
        let _ = writeln!(s, "node error: {e}");
    }
    s
}

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
