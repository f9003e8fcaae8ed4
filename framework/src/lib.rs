//! # antiphon-framework
//!
//! Model-agnostic realtime machinery for running streaming speech models inside
//! audio processes without stutter (see `DESIGN.md`):
//!
//! * [`endpoint`]: the only part the audio thread touches — input/output rings,
//!   output-stage knobs, gap fill, counters.
//! * [`knobs`]: knob specs, latest-wins cells and `arc-swap` snapshots.
//! * [`telemetry`]: fixed-size histograms and bounded series.
//! * [`device`]: a virtual audio device, wall-clock paced or offline.
//! * [`node`]: the node API every generation stage implements.
//! * [`preset`]: preset files (knob values, lead settings, model choice).
//!
//! Nothing here depends on an ML library.

pub mod denormals;
pub mod device;
pub mod endpoint;
pub mod gapfill;
pub mod knobs;
pub mod node;
pub mod preset;
pub mod rng;
pub mod smoothing;
pub mod telemetry;

pub use endpoint::{
    endpoint, AudioSide, EndpointConfig, EndpointStats, GenSide, OutputEvent, OutputParam,
};
