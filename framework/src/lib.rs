//! # antiphon-framework
//!
//! Model-agnostic realtime machinery for running streaming speech models inside
//! audio processes without stutter (see `DESIGN.md`):
//!
//! * [`knobs`]: knob specs, latest-wins cells and `arc-swap` snapshots.
//! * [`node`]: the node API every generation stage implements.
//!
//! Nothing here depends on an ML library.

pub mod knobs;
pub mod node;
