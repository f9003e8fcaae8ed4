//! The end-to-end report: the same numbers from the plugin, the host and the
//! benchmark, as JSON a script can diff between builds (field names are stable),
//! plus bounded time series for plots.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::knobs::Binding;
use crate::telemetry::{Histogram, Percentiles, Series};

/// p50 / max pair (knob → ear).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct P50Max {
    pub p50: f64,
    pub max: f64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LeadFigures {
    pub p50: f64,
    pub p99: f64,
    pub min: f64,
    pub max: f64,
    pub target_final: f64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Underruns {
    /// Callbacks with any gap-filled sample.
    pub callbacks: u64,
    /// Gap-filled samples.
    pub samples: u64,
    /// Underrun callbacks after the warm-up period.
    pub after_warmup: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RssMb {
    pub start: f64,
    pub peak: f64,
    pub end: f64,
}

/// What happened to frames that could not be made in time.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Skips {
    pub frames: u64,
    /// Human-readable, e.g. "generation runs at 1.40× real time; output is being skipped".
    pub message: Option<String>,
}

/// One stall: generation stopped for longer than the lead ceiling, so the frames
/// whose input arrived meanwhile were dropped and the stream resumed at the
/// newest input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stall {
    /// When it was noticed, seconds since the stream started.
    pub at_s: f64,
    /// How long generation stood still (the oldest dropped frame's age).
    pub seconds: f64,
    pub frames_dropped: u64,
}

impl Stall {
    /// "generation stalled 5.0 s; 62 frames dropped"
    pub fn message(&self) -> String {
        format!(
            "generation stalled {:.1} s; {} frames dropped",
            self.seconds, self.frames_dropped
        )
    }
}

/// Stalls seen (see [`Stall`]); distinct from [`Skips`], which is about a
/// generator that is slower than real time on average.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stalls {
    pub count: u64,
    pub frames_dropped: u64,
    /// The most recent ones (bounded).
    pub recent: Vec<Stall>,
}

/// Bounded time series for plots (seconds, value).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ReportSeries {
    pub lead_ms: Vec<(f64, f64)>,
    pub target_ms: Vec<(f64, f64)>,
    pub itl_ms: Vec<(f64, f64)>,
    pub underruns: Vec<(f64, f64)>,
    pub rss_mb: Vec<(f64, f64)>,
    pub latency_ms: Vec<(f64, f64)>,
    /// Per-frame production time (input complete → frame ready).
    pub production_ms: Vec<(f64, f64)>,
}

/// The report. Stable field names (see issue "node graph … lead controller").
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Report {
    pub frames: u64,
    pub audio_seconds: f64,
    pub wall_seconds: f64,
    /// Compute time of all stages / audio time.
    pub rtf: f64,
    pub first_audio_ms: Option<f64>,
    pub latency_ms: Percentiles,
    pub itl_ms: Percentiles,
    pub stages_ms: BTreeMap<String, Percentiles>,
    pub lead_ms: LeadFigures,
    pub underruns: Underruns,
    pub knob_to_ear_ms: BTreeMap<String, P50Max>,
    pub rss_mb: RssMb,
    pub skipped: Skips,
    #[serde(default)]
    pub stalls: Stalls,
    /// Lead grown by gap fill / shrunk by dropping silence, ms in total.
    pub lead_inserted_ms: f64,
    pub lead_dropped_ms: f64,
    /// How often the controller moved for each reason.
    pub lead_reasons: BTreeMap<String, u64>,
    /// Node failures (reported once each, with the node's name).
    pub errors: Vec<String>,
    pub series: ReportSeries,
}

impl Report {
    /// The top-level fields every report carries (the stable contract scripts rely on).
    pub const REQUIRED_FIELDS: [&'static str; 12] = [
        "frames",
        "audio_seconds",
        "wall_seconds",
        "rtf",
        "first_audio_ms",
        "latency_ms",
        "itl_ms",
        "stages_ms",
        "lead_ms",
        "underruns",
        "knob_to_ear_ms",
        "rss_mb",
    ];

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// A few lines for people. `live` runs (on a device clock) also show
    /// latency, lead and underruns; offline renders have none.
    pub fn summary(&self, live: bool) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "frames {}  audio {:.1} s  wall {:.1} s  RTF {:.3} (compute / audio time)",
            self.frames, self.audio_seconds, self.wall_seconds, self.rtf
        );
        if live {
            let first = self
                .first_audio_ms
                .map_or("-".into(), |f| format!("{f:.0} ms"));
            let _ = writeln!(
                s,
                "first audio {first}  latency p50 {:.0} / p99 {:.0} ms  ITL p50 {:.0} / p99 {:.0} ms",
                self.latency_ms.p50, self.latency_ms.p99, self.itl_ms.p50, self.itl_ms.p99
            );
            let _ = writeln!(
                s,
                "lead p50 {:.0} / p99 {:.0} ms (min {:.0}, final target {:.0})  underruns {} callbacks, {} samples, {} after warm-up",
                self.lead_ms.p50,
                self.lead_ms.p99,
                self.lead_ms.min,
                self.lead_ms.target_final,
                self.underruns.callbacks,
                self.underruns.samples,
                self.underruns.after_warmup
            );
        } else {
            let _ = writeln!(
                s,
                "offline render: latency, lead and underruns are measured with --pace realtime"
            );
        }
        let stages: Vec<String> = self
            .stages_ms
            .iter()
            .map(|(k, v)| format!("{k} {:.1}", v.p99))
            .collect();
        let _ = writeln!(s, "stage p99 ms: {}", stages.join(", "));
        let knobs: Vec<String> = self
            .knob_to_ear_ms
            .iter()
            .filter(|(_, v)| v.max > 0.0 || v.p50 > 0.0)
            .map(|(k, v)| format!("{k} p50 {:.0} / max {:.0}", v.p50, v.max))
            .collect();
        if !knobs.is_empty() {
            let _ = writeln!(s, "knob → ear ms: {}", knobs.join(", "));
        }
        if let Some(m) = &self.skipped.message {
            let _ = writeln!(s, "{m}");
        }
        for st in &self.stalls.recent {
            let _ = writeln!(s, "at {:.1} s: {}", st.at_s, st.message());
        }
        for e in &self.errors {
            let _ = writeln!(s, "node error: {e}");
        }
        s
    }
}

/// Resident memory of this process in MB (Linux; 0 elsewhere).
pub fn rss_mb() -> f64 {
    #[cfg(target_os = "linux")]
    {
        if let Ok(s) = std::fs::read_to_string("/proc/self/statm") {
            if let Some(pages) = s
                .split_whitespace()
                .nth(1)
                .and_then(|x| x.parse::<f64>().ok())
            {
                return pages * 4096.0 / (1024.0 * 1024.0);
            }
        }
    }
    0.0
}

/// Collects the per-frame figures during a run (off the audio thread).
pub struct Recorder {
    pub stages: Vec<(String, Histogram)>,
    pub latency: Histogram,
    pub itl: Histogram,
    pub lead: Histogram,
    pub lead_min: f64,
    pub lead_max: f64,
    pub knob_to_ear: Vec<(Binding, Histogram)>,
    pub series: [Series; 7],
    pub rss: RssMb,
    pub reasons: BTreeMap<&'static str, u64>,
    pub compute_ms: f64,
    pub inserted: u64,
    pub dropped: u64,
}

impl Recorder {
    pub fn new(stage_names: &[String]) -> Self {
        let rss = rss_mb();
        Self {
            stages: stage_names
                .iter()
                .map(|n| (n.clone(), Histogram::new()))
                .collect(),
            latency: Histogram::new(),
            itl: Histogram::new(),
            lead: Histogram::new(),
            lead_min: f64::INFINITY,
            lead_max: f64::NEG_INFINITY,
            knob_to_ear: Binding::ALL
                .iter()
                .map(|b| (*b, Histogram::new()))
                .collect(),
            series: std::array::from_fn(|_| Series::new(2048)),
            rss: RssMb {
                start: rss,
                peak: rss,
                end: rss,
            },
            reasons: BTreeMap::new(),
            compute_ms: 0.0,
            inserted: 0,
            dropped: 0,
        }
    }

    /// Records a lead measurement (ms, may be negative) at time `t` (s).
    pub fn lead(&mut self, t: f64, lead_ms: f64, target_ms: f64) {
        self.lead.record_ms(lead_ms);
        self.lead_min = self.lead_min.min(lead_ms);
        self.lead_max = self.lead_max.max(lead_ms);
        self.series[0].push(t, lead_ms);
        self.series[1].push(t, target_ms);
    }

    pub fn knob_to_ear(&mut self, b: Binding, ms: f64) {
        if let Some((_, h)) = self.knob_to_ear.iter().find(|(x, _)| *x == b) {
            h.record_ms(ms);
        }
    }

    /// Samples memory (call about once a second).
    pub fn sample_rss(&mut self, t: f64) {
        let r = rss_mb();
        self.rss.peak = self.rss.peak.max(r);
        self.rss.end = r;
        self.series[4].push(t, r);
    }
}
