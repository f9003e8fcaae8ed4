//! # antiphon-framework
//!
//! Model-agnostic realtime machinery for running streaming speech models inside
//! audio processes without stutter (see `DESIGN.md`):
//!
//! * [`endpoint`]: the only part the audio thread touches — input/output rings
//!   ([`input_ring`] is addressed by audio-clock position),
//!   output-stage knobs, gap fill, counters.
//! * [`knobs`]: knob specs, latest-wins cells and `arc-swap` snapshots.
//! * [`node`] and [`graph`]: the node API and validated graphs of nodes.
//! * [`engine`]: runs a graph on a worker pool (live, offline or simulated).
//! * [`lead`] and [`writer`]: the adaptive lead controller and how its decisions
//!   reach the output without a waveform jump.
//! * [`telemetry`], [`report`], [`trace`]: histograms, the JSON report, traces.
//! * [`device`]: a virtual audio device, wall-clock paced or offline.
//! * [`synth`]: synthetic stages with configurable production times.
//! * [`preset`]: preset files (knob values, lead settings, model choice).
//!
//! Nothing here depends on an ML library.

pub mod clock;
pub mod denormals;
pub mod device;
pub mod endpoint;
pub mod engine;
pub mod gapfill;
pub mod graph;
pub mod input_ring;
pub mod knobs;
pub mod lead;
pub mod node;
pub mod period_cut;
pub mod preset;
pub mod report;
pub mod rng;
pub mod rt_priority;
pub mod smoothing;
pub mod synth;
pub mod telemetry;
pub mod trace;
pub mod writer;

pub use endpoint::{
    endpoint, AudioSide, EndpointConfig, EndpointStats, GenSide, OutputEvent, OutputParam,
};
