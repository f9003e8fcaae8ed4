//! Graphs of nodes: built in code ([`GraphBuilder`]) or from a serde description
//! ([`GraphDesc`]), validated before they run.
//!
//! A graph has one external input port (fed with captured audio at the device
//! rate, one frame at a time) and one external output port (audio at the device
//! rate, written to the speaker). Every other input must be connected exactly
//! once; an output feeds at most one input (payloads are moved, not copied).

mod desc;
mod error;

pub use desc::{EdgeDesc, GraphDesc, NodeDesc, NodeRegistry};
pub use error::GraphError;

use crate::node::{Node, PortKind, PortSpec};

/// `node.port` reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortRef {
    pub node: String,
    pub port: String,
}

impl PortRef {
    /// Parses `"node.port"`.
    pub fn parse(s: &str) -> Result<Self, GraphError> {
        match s.split_once('.') {
            Some((n, p)) if !n.is_empty() && !p.is_empty() => Ok(Self {
                node: n.into(),
                port: p.into(),
            }),
            _ => Err(GraphError::BadPortRef { text: s.into() }),
        }
    }
}

impl std::fmt::Display for PortRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.node, self.port)
    }
}

/// Where a stage's input comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The graph's external input (captured audio).
    External,
    /// Output `port` of stage `stage`.
    Stage { stage: usize, port: usize },
}

/// One validated node in execution order.
pub struct Stage {
    pub name: String,
    pub node: Box<dyn Node>,
    pub inputs: Vec<PortSpec>,
    pub outputs: Vec<PortSpec>,
    /// For each input port, where its data comes from.
    pub sources: Vec<Source>,
}

/// A declared feedback dependency: stage `to` may start frame t+1 only after
/// stage `from` has finished frame t (an autoregressive step that needs the
/// previous step's output). The scheduler honours it, so no worker waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Feedback {
    pub from: usize,
    pub to: usize,
}

/// A validated graph, stages in topological order.
pub struct Graph {
    pub stages: Vec<Stage>,
    /// Feedback dependencies between stages (indices into `stages`).
    pub feedback: Vec<Feedback>,
    /// Stage and port of the external output.
    pub output: (usize, usize),
    /// Sample rate of the external input and output.
    pub sample_rate: f64,
}

impl std::fmt::Debug for Graph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.stages.iter().map(|s| s.name.as_str()).collect();
        write!(f, "Graph({} @ {} Hz)", names.join(" → "), self.sample_rate)
    }
}

/// Builds a [`Graph`] in code.
#[derive(Default)]
pub struct GraphBuilder {
    nodes: Vec<(String, Box<dyn Node>)>,
    edges: Vec<(String, String)>,
    feedback: Vec<(String, String)>,
    input: Option<String>,
    output: Option<String>,
}

impl GraphBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a node under a unique instance name.
    pub fn node(mut self, name: &str, node: Box<dyn Node>) -> Self {
        self.nodes.push((name.into(), node));
        self
    }

    /// Connects output `from` (`"node.port"`) to input `to`.
    pub fn connect(mut self, from: &str, to: &str) -> Self {
        self.edges.push((from.into(), to.into()));
        self
    }

    /// Declares that node `to` may start frame t+1 only after node `from` has
    /// finished frame t (see [`Feedback`]). Data for it travels outside the
    /// graph's edges (shared state of the two nodes); this only orders them.
    pub fn feedback(mut self, from: &str, to: &str) -> Self {
        self.feedback.push((from.into(), to.into()));
        self
    }

    /// Adds nodes in a line, connecting each one's first output to the next one's
    /// first input, with the first node's first input as the graph input and the
    /// last node's first output as the graph output.
    pub fn chain(mut self, nodes: Vec<(&str, Box<dyn Node>)>) -> Self {
        let names: Vec<String> = nodes.iter().map(|(n, _)| n.to_string()).collect();
        let ports: Vec<(Option<String>, Option<String>)> = nodes
            .iter()
            .map(|(_, n)| {
                (
                    n.inputs().first().map(|p| p.name.clone()),
                    n.outputs().first().map(|p| p.name.clone()),
                )
            })
            .collect();
        for (name, node) in nodes {
            self.nodes.push((name.into(), node));
        }
        for i in 0..names.len() {
            if i + 1 < names.len() {
                let from = format!(
                    "{}.{}",
                    names[i],
                    ports[i].1.clone().unwrap_or_else(|| "out".into())
                );
                let to = format!(
                    "{}.{}",
                    names[i + 1],
                    ports[i + 1].0.clone().unwrap_or_else(|| "in".into())
                );
                self.edges.push((from, to));
            }
        }
        if let (Some(first), Some(last)) = (names.first(), names.last()) {
            self.input = Some(format!(
                "{first}.{}",
                ports[0].0.clone().unwrap_or_else(|| "in".into())
            ));
            self.output = Some(format!(
                "{last}.{}",
                ports[names.len() - 1]
                    .1
                    .clone()
                    .unwrap_or_else(|| "out".into())
            ));
        }
        self
    }

    /// Names the port fed with captured audio.
    pub fn input(mut self, port: &str) -> Self {
        self.input = Some(port.into());
        self
    }

    /// Names the port whose audio goes to the speaker.
    pub fn output(mut self, port: &str) -> Self {
        self.output = Some(port.into());
        self
    }

    /// Validates and orders the graph for a device running at `sample_rate`.
    pub fn build(self, sample_rate: f64) -> Result<Graph, GraphError> {
        validate(
            self.nodes,
            self.edges,
            self.feedback,
            self.input,
            self.output,
            sample_rate,
        )
    }
}

fn find_port(specs: &[PortSpec], name: &str) -> Option<usize> {
    specs.iter().position(|p| p.name == name)
}

fn kinds_match(a: &PortKind, b: &PortKind) -> bool {
    match (a, b) {
        (PortKind::Audio { sample_rate: x }, PortKind::Audio { sample_rate: y }) => {
            (x - y).abs() < 1e-6
        }
        _ => a == b,
    }
}

fn port_names(specs: &[PortSpec]) -> String {
    if specs.is_empty() {
        "none".into()
    } else {
        specs
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn validate(
    nodes: Vec<(String, Box<dyn Node>)>,
    edges: Vec<(String, String)>,
    feedback: Vec<(String, String)>,
    input: Option<String>,
    output: Option<String>,
    sample_rate: f64,
) -> Result<Graph, GraphError> {
    if nodes.is_empty() {
        return Err(GraphError::Empty);
    }
    for (i, (name, _)) in nodes.iter().enumerate() {
        if nodes[..i].iter().any(|(n, _)| n == name) {
            return Err(GraphError::DuplicateNode { name: name.clone() });
        }
    }
    let ins: Vec<Vec<PortSpec>> = nodes.iter().map(|(_, n)| n.inputs()).collect();
    let outs: Vec<Vec<PortSpec>> = nodes.iter().map(|(_, n)| n.outputs()).collect();
    let index = |name: &str| nodes.iter().position(|(n, _)| n == name);
    let node_index = |name: &str| {
        index(name).ok_or_else(|| GraphError::UnknownNode {
            name: name.into(),
            known: nodes
                .iter()
                .map(|(n, _)| n.clone())
                .collect::<Vec<_>>()
                .join(", "),
        })
    };
    let feedback = feedback
        .iter()
        .map(|(f, t)| Ok((node_index(f)?, node_index(t)?)))
        .collect::<Result<Vec<_>, GraphError>>()?;

    // Resolve a reference to (node, port) on the given side.
    let resolve = |r: &PortRef, is_input: bool| -> Result<(usize, usize), GraphError> {
        let ni = node_index(&r.node)?;
        let specs = if is_input { &ins[ni] } else { &outs[ni] };
        let pi = find_port(specs, &r.port).ok_or_else(|| GraphError::UnknownPort {
            port: r.to_string(),
            side: if is_input { "input" } else { "output" },
            available: port_names(specs),
        })?;
        Ok((ni, pi))
    };

    let mut sources: Vec<Vec<Option<Source>>> = ins.iter().map(|p| vec![None; p.len()]).collect();
    let mut used_outputs: Vec<Vec<Option<String>>> =
        outs.iter().map(|p| vec![None; p.len()]).collect();

    let input = PortRef::parse(input.as_deref().ok_or(GraphError::NoInput)?)?;
    let (gi_node, gi_port) = resolve(&input, true)?;
    let want = PortKind::Audio { sample_rate };
    if !kinds_match(&ins[gi_node][gi_port].kind, &want) {
        return Err(GraphError::TypeMismatch {
            from: "device input".into(),
            to: input.to_string(),
            from_kind: want.to_string(),
            to_kind: ins[gi_node][gi_port].kind.to_string(),
        });
    }
    sources[gi_node][gi_port] = Some(Source::External);

    let output = PortRef::parse(output.as_deref().ok_or(GraphError::NoOutput)?)?;
    let (go_node, go_port) = resolve(&output, false)?;
    if !kinds_match(&outs[go_node][go_port].kind, &want) {
        return Err(GraphError::TypeMismatch {
            from: output.to_string(),
            to: "device output".into(),
            from_kind: outs[go_node][go_port].kind.to_string(),
            to_kind: want.to_string(),
        });
    }
    used_outputs[go_node][go_port] = Some("device output".into());

    for (from, to) in &edges {
        let fr = PortRef::parse(from)?;
        let tr = PortRef::parse(to)?;
        let (fn_, fp) = resolve(&fr, false)?;
        let (tn, tp) = resolve(&tr, true)?;
        let (fk, tk) = (&outs[fn_][fp].kind, &ins[tn][tp].kind);
        if !kinds_match(fk, tk) {
            return Err(GraphError::TypeMismatch {
                from: fr.to_string(),
                to: tr.to_string(),
                from_kind: fk.to_string(),
                to_kind: tk.to_string(),
            });
        }
        if let Some(prev) = &sources[tn][tp] {
            let first = match prev {
                Source::External => "device input".to_string(),
                Source::Stage { stage, port } => {
                    format!("{}.{}", nodes[*stage].0, outs[*stage][*port].name)
                }
            };
            return Err(GraphError::InputConnectedTwice {
                input: tr.to_string(),
                first,
                second: fr.to_string(),
            });
        }
        if let Some(prev) = &used_outputs[fn_][fp] {
            return Err(GraphError::OutputFanOut {
                output: fr.to_string(),
                first: prev.clone(),
                second: tr.to_string(),
            });
        }
        sources[tn][tp] = Some(Source::Stage {
            stage: fn_,
            port: fp,
        });
        used_outputs[fn_][fp] = Some(tr.to_string());
    }
    for (ni, srcs) in sources.iter().enumerate() {
        for (pi, s) in srcs.iter().enumerate() {
            if s.is_none() {
                return Err(GraphError::Unconnected {
                    port: format!("{}.{}", nodes[ni].0, ins[ni][pi].name),
                });
            }
        }
    }

    // Topological order (Kahn); whatever is left over sits on a cycle.
    let n = nodes.len();
    let mut indegree: Vec<usize> = sources
        .iter()
        .map(|s| {
            s.iter()
                .filter(|x| matches!(x, Some(Source::Stage { .. })))
                .count()
        })
        .collect();
    let mut order = Vec::with_capacity(n);
    let mut ready: Vec<usize> = (0..n).filter(|&i| indegree[i] == 0).collect();
    while let Some(i) = ready.pop() {
        order.push(i);
        for (j, srcs) in sources.iter().enumerate() {
            for s in srcs {
                if let Some(Source::Stage { stage, .. }) = s {
                    if *stage == i {
                        indegree[j] -= 1;
                        if indegree[j] == 0 {
                            ready.push(j);
                        }
                    }
                }
            }
        }
        ready.sort_unstable_by(|a, b| b.cmp(a)); // deterministic: lowest index first
    }
    if order.len() < n {
        let on_cycle: Vec<String> = (0..n)
            .filter(|i| !order.contains(i))
            .map(|i| nodes[i].0.clone())
            .collect();
        return Err(GraphError::Cycle {
            nodes: on_cycle.join(" → "),
        });
    }

    // Re-index everything into execution order.
    let mut new_index = vec![0; n];
    for (k, &i) in order.iter().enumerate() {
        new_index[i] = k;
    }
    let mut slots: Vec<Option<(String, Box<dyn Node>)>> = nodes.into_iter().map(Some).collect();
    let mut ins: Vec<Option<Vec<PortSpec>>> = ins.into_iter().map(Some).collect();
    let mut outs: Vec<Option<Vec<PortSpec>>> = outs.into_iter().map(Some).collect();
    let stages = order
        .iter()
        .map(|&i| {
            let (name, node) = slots[i].take().expect("each node once");
            Stage {
                name,
                node,
                inputs: ins[i].take().unwrap_or_default(),
                outputs: outs[i].take().unwrap_or_default(),
                sources: sources[i]
                    .iter()
                    .map(|s| match s.expect("checked above") {
                        Source::External => Source::External,
                        Source::Stage { stage, port } => Source::Stage {
                            stage: new_index[stage],
                            port,
                        },
                    })
                    .collect(),
            }
        })
        .collect();
    Ok(Graph {
        stages,
        feedback: feedback
            .into_iter()
            .map(|(f, t)| Feedback {
                from: new_index[f],
                to: new_index[t],
            })
            .collect(),
        output: (new_index[go_node], go_port),
        sample_rate,
    })
}

impl Graph {
    /// All knobs the graph's nodes read, deduplicated by id (first wins).
    pub fn knob_specs(&self) -> Vec<crate::knobs::KnobSpec> {
        let mut v: Vec<crate::knobs::KnobSpec> = Vec::new();
        for s in &self.stages {
            for k in s.node.knobs() {
                if !v.iter().any(|o| o.id == k.id) {
                    v.push(k);
                }
            }
        }
        v
    }

    /// Stage names in execution order.
    pub fn stage_names(&self) -> Vec<String> {
        self.stages.iter().map(|s| s.name.clone()).collect()
    }
}

#[cfg(test)]
mod tests;
