//! Graphs from a serde description:
//!
//! ```json
//! { "nodes": [ {"name": "gen", "kind": "synth", "params": {"mean_ms": 20}} ],
//!   "edges": [],
//!   "input": "gen.in", "output": "gen.out" }
//! ```
//!
//! Node kinds are turned into nodes by a [`NodeRegistry`] of factories.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Graph, GraphBuilder, GraphError};
use crate::node::Node;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeDesc {
    pub name: String,
    pub kind: String,
    #[serde(default)]
    pub params: serde_json::Value,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeDesc {
    pub from: String,
    pub to: String,
}

/// A graph as data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphDesc {
    pub nodes: Vec<NodeDesc>,
    #[serde(default)]
    pub edges: Vec<EdgeDesc>,
    pub input: String,
    pub output: String,
}

/// Makes a node from its parameters and the device sample rate.
pub type NodeFactory =
    Box<dyn Fn(&serde_json::Value, f64) -> Result<Box<dyn Node>, String> + Send + Sync>;

/// Node kinds known to a description.
#[derive(Default)]
pub struct NodeRegistry {
    kinds: BTreeMap<String, NodeFactory>,
}

impl NodeRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn register(&mut self, kind: &str, factory: NodeFactory) {
        self.kinds.insert(kind.into(), factory);
    }

    pub fn kinds(&self) -> Vec<&str> {
        self.kinds.keys().map(|k| k.as_str()).collect()
    }
}

impl GraphDesc {
    /// Parses a JSON description.
    pub fn from_json(text: &str) -> Result<Self, GraphError> {
        serde_json::from_str(text).map_err(|e| GraphError::BadDescription {
            message: e.to_string(),
        })
    }

    /// Instantiates every node through `registry` and validates the result.
    pub fn build(&self, registry: &NodeRegistry, sample_rate: f64) -> Result<Graph, GraphError> {
        let mut b = GraphBuilder::new();
        for n in &self.nodes {
            let factory = registry
                .kinds
                .get(&n.kind)
                .ok_or_else(|| GraphError::UnknownKind {
                    node: n.name.clone(),
                    kind: n.kind.clone(),
                    known: registry.kinds().join(", "),
                })?;
            let node =
                factory(&n.params, sample_rate).map_err(|message| GraphError::BadParams {
                    node: n.name.clone(),
                    message,
                })?;
            b = b.node(&n.name, node);
        }
        for e in &self.edges {
            b = b.connect(&e.from, &e.to);
        }
        b.input(&self.input).output(&self.output).build(sample_rate)
    }
}
