//! A model's graph as a framework [`Graph`], ready for the engine's worker
//! pool. The model's family says which nodes make it (see [`crate::family`]);
//! Moshi's is capture → resample_in → encoder → backbone → code_predictor →
//! decoder → resample_out → output, with the feedback edge code_predictor →
//! backbone (the autoregressive step).

use std::sync::Arc;

use antiphon_framework::graph::Graph;
use antiphon_framework::knobs::{KnobBus, KnobSpec};
use antiphon_framework::lead::LeadSettings;
use antiphon_framework::node::Node;

use crate::bundle::ModelBundle;

/// Builds and validates the model's graph for a device at `device_rate`.
pub fn canonical_graph(bundle: &ModelBundle, device_rate: f64, seed: u64) -> Result<Graph, String> {
    canonical_graph_with(bundle, device_rate, seed, |_, node| node)
}

/// Like [`canonical_graph`], passing each node through `wrap(stage name, node)`
/// first (e.g. to inject stalls into the backbone for benchmarks).
pub fn canonical_graph_with(
    bundle: &ModelBundle,
    device_rate: f64,
    seed: u64,
    wrap: impl FnMut(&str, Box<dyn Node>) -> Box<dyn Node>,
) -> Result<Graph, String> {
    bundle.graph_with(device_rate, seed, wrap)
}

/// Every knob of a graph plus the lead controller's, on one bus.
pub fn knob_bus(graph: &Graph, extra: Vec<KnobSpec>) -> Result<Arc<KnobBus>, String> {
    let mut specs = graph.knob_specs();
    for k in LeadSettings::knobs().into_iter().chain(extra) {
        if !specs.iter().any(|s| s.id == k.id) {
            specs.push(k);
        }
    }
    KnobBus::new(specs)
}
