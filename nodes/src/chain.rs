//! A model's graph as a plain in-order chain, for offline runs, tests and
//! benchmarks (Moshi: capture → resample_in → encoder → backbone →
//! code_predictor → decoder → resample_out → output). The realtime runtime schedules the same
//! nodes on workers; this runs them one after another on the caller's thread.

use std::time::Instant;

use antiphon_framework::knobs::{KnobBus, KnobSnapshot};
use antiphon_framework::node::{FrameContext, Node, NodeError, Payload};

use crate::bundle::ModelBundle;

/// Per-stage timing samples kept (a fixed window: nothing grows).
pub const TIMING_WINDOW: usize = 4096;

/// The model's nodes, in order (its family's graph as a plain chain).
pub fn canonical_nodes(
    bundle: &ModelBundle,
    host_rate: f64,
    seed: u64,
) -> Result<Vec<Box<dyn Node>>, String> {
    let stages = bundle.family.graph(bundle, host_rate, seed)?;
    Ok(stages.chain.into_iter().map(|(_, n)| n).collect())
}

/// A chain of single-input, single-output nodes run in order.
pub struct OfflineChain {
    pub nodes: Vec<Box<dyn Node>>,
    /// `payloads[i]` is the input of node i; the last is the chain's output.
    payloads: Vec<Payload>,
    /// Per node: the last [`TIMING_WINDOW`] process times in seconds (ring).
    timings: Vec<Vec<f64>>,
    frame: u64,
    pub knobs: std::sync::Arc<KnobBus>,
}

impl OfflineChain {
    /// The canonical chain with every node's knobs registered on one bus.
    pub fn canonical(bundle: &ModelBundle, host_rate: f64, seed: u64) -> Result<Self, String> {
        let nodes = canonical_nodes(bundle, host_rate, seed)?;
        let mut specs = Vec::new();
        for n in &nodes {
            for k in n.knobs() {
                if !specs
                    .iter()
                    .any(|s: &antiphon_framework::knobs::KnobSpec| s.id == k.id)
                {
                    specs.push(k);
                }
            }
        }
        let bus = KnobBus::new(specs)?;
        let n = nodes.len();
        Ok(Self {
            nodes,
            payloads: (0..=n).map(|_| Payload::Empty).collect(),
            timings: vec![Vec::new(); n],
            frame: 0,
            knobs: bus,
        })
    }

    /// Runs one frame of host audio through every node; returns the output frame.
    pub fn run_frame(&mut self, input: &[f32]) -> Result<&[f32], NodeError> {
        self.knobs.publish();
        let snap: std::sync::Arc<KnobSnapshot> = self.knobs.snapshot();
        let buf = self.payloads[0].audio_buf();
        buf.extend_from_slice(input);
        let cx = FrameContext {
            frame: self.frame,
            knobs: &snap,
        };
        for i in 0..self.nodes.len() {
            let (ins, outs) = self.payloads.split_at_mut(i + 1);
            let t0 = Instant::now();
            self.nodes[i]
                .process(&cx, &ins[i..i + 1], &mut outs[..1])
                .map_err(|e| NodeError::new(format!("{}: {e}", self.nodes[i].name())))?;
            let dt = t0.elapsed().as_secs_f64();
            let t = &mut self.timings[i];
            if t.len() < TIMING_WINDOW {
                t.push(dt);
            } else {
                t[(self.frame as usize) % TIMING_WINDOW] = dt;
            }
        }
        self.frame += 1;
        self.payloads.last().expect("non-empty").audio()
    }

    /// (name, p50, p99, max) seconds per node over the timing window.
    pub fn stage_stats(&self) -> Vec<(String, f64, f64, f64)> {
        self.nodes
            .iter()
            .zip(&self.timings)
            .map(|(n, t)| {
                let mut v = t.clone();
                v.sort_by(|a, b| a.total_cmp(b));
                let q = |p: f64| {
                    if v.is_empty() {
                        0.0
                    } else {
                        v[((v.len() - 1) as f64 * p).round() as usize]
                    }
                };
                (
                    n.name().to_string(),
                    q(0.5),
                    q(0.99),
                    v.last().copied().unwrap_or(0.0),
                )
            })
            .collect()
    }

    /// Process time (seconds) of node `node` at `frame`, if still in the window.
    pub fn last_time(&self, node: usize, frame: u64) -> f64 {
        let t = &self.timings[node];
        let i = if (frame as usize) < TIMING_WINDOW {
            frame as usize
        } else {
            frame as usize % TIMING_WINDOW
        };
        t.get(i).copied().unwrap_or(0.0)
    }

    /// A node by name (e.g. to read its telemetry).
    pub fn node(&self, name: &str) -> Option<&dyn Node> {
        self.nodes
            .iter()
            .find(|n| n.name() == name)
            .map(|b| b.as_ref())
    }
}
