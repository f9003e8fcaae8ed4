//! The canonical speech-to-speech graph as a framework [`Graph`], ready for the
//! engine's worker pool: capture → resample_in → encoder → backbone →
//! code_predictor → decoder → resample_out → output.

use std::sync::Arc;

use antiphon_framework::graph::{Graph, GraphBuilder};
use antiphon_framework::knobs::{KnobBus, KnobSpec};
use antiphon_framework::lead::LeadSettings;

use crate::bundle::ModelBundle;
use crate::chain::canonical_nodes;

/// Builds and validates the canonical graph for a device at `device_rate`.
pub fn canonical_graph(bundle: &ModelBundle, device_rate: f64, seed: u64) -> Result<Graph, String> {
    let names = [
        "capture",
        "resample_in",
        "encoder",
        "backbone",
        "code_predictor",
        "decoder",
        "resample_out",
        "output",
    ];
    let nodes = canonical_nodes(bundle, device_rate, seed)?;
    let chain: Vec<(&str, Box<dyn antiphon_framework::node::Node>)> =
        names.iter().copied().zip(nodes).collect();
    GraphBuilder::new()
        .chain(chain)
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
