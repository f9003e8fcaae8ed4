//! The canonical speech-to-speech graph as a framework [`Graph`], ready for the
//! engine's worker pool: capture → resample_in → encoder → backbone →
//! code_predictor → decoder → resample_out → output, with the feedback edge
//! code_predictor → backbone (the autoregressive step).

use std::sync::Arc;

use antiphon_framework::graph::{Graph, GraphBuilder};
use antiphon_framework::knobs::{KnobBus, KnobSpec};
use antiphon_framework::lead::LeadSettings;
use antiphon_framework::node::Node;

use crate::bundle::ModelBundle;
use crate::chain::canonical_nodes;

/// The canonical graph's stage names, in order.
pub const STAGE_NAMES: [&str; 8] = [
    "capture",
    "resample_in",
    "encoder",
    "backbone",
    "code_predictor",
    "decoder",
    "resample_out",
    "output",
];

/// Builds and validates the canonical graph for a device at `device_rate`.
pub fn canonical_graph(bundle: &ModelBundle, device_rate: f64, seed: u64) -> Result<Graph, String> {
    canonical_graph_with(bundle, device_rate, seed, |_, node| node)
}

/// Like [`canonical_graph`], passing each node through `wrap(stage name, node)`
/// first (e.g. to inject stalls into the backbone for benchmarks).
pub fn canonical_graph_with(
    bundle: &ModelBundle,
    device_rate: f64,
    seed: u64,
    mut wrap: impl FnMut(&str, Box<dyn Node>) -> Box<dyn Node>,
) -> Result<Graph, String> {
    let nodes = canonical_nodes(bundle, device_rate, seed)?;
    let chain: Vec<(&str, Box<dyn Node>)> = STAGE_NAMES
        .iter()
        .copied()
        .zip(nodes)
        .map(|(name, node)| (name, wrap(name, node)))
        .collect();
    GraphBuilder::new()
        .chain(chain)
        // Backbone step t+1 needs the codes the predictor samples at step t.
        .feedback("code_predictor", "backbone")
        .build(device_rate)
        .map_err(|e| e.to_string())
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
