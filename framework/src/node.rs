//! The node API: one stage of a generation graph.
//!
//! A node declares typed ports, does its work one frame at a time on a worker
//! thread, can be reset, and names the knobs it reads. Nodes never run on the
//! audio thread, so they may allocate, but in steady state they should reuse the
//! buffers they are handed (`Payload`s are recycled between frames).

use std::any::Any;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::knobs::{KnobSnapshot, KnobSpec};

/// What flows through a port.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PortKind {
    /// Mono audio at `sample_rate` Hz (fractional rates allowed). `Payload::Audio`.
    Audio { sample_rate: f64 },
    /// One frame of codec tokens, `codebooks` of them. `Payload::Codes`.
    Codes { codebooks: usize },
    /// Model-specific data (e.g. a backbone hidden state) identified by a type
    /// name; both ends must agree on the name. `Payload::Any`.
    Custom { type_name: String },
}

impl fmt::Display for PortKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortKind::Audio { sample_rate } => write!(f, "audio @ {sample_rate} Hz"),
            PortKind::Codes { codebooks } => write!(f, "codes × {codebooks}"),
            PortKind::Custom { type_name } => write!(f, "{type_name}"),
        }
    }
}

/// A named, typed port.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PortSpec {
    pub name: String,
    pub kind: PortKind,
}

impl PortSpec {
    pub fn audio(name: &str, sample_rate: f64) -> Self {
        Self {
            name: name.into(),
            kind: PortKind::Audio { sample_rate },
        }
    }
    pub fn codes(name: &str, codebooks: usize) -> Self {
        Self {
            name: name.into(),
            kind: PortKind::Codes { codebooks },
        }
    }
    pub fn custom(name: &str, type_name: &str) -> Self {
        Self {
            name: name.into(),
            kind: PortKind::Custom {
                type_name: type_name.into(),
            },
        }
    }
}

/// The data of one port for one frame. Buffers are reused from frame to frame:
/// clear and refill a `Vec` rather than replacing it.
#[derive(Default)]
pub enum Payload {
    /// Nothing this frame (e.g. a skipped frame, or before the first output).
    #[default]
    Empty,
    /// Mono samples.
    Audio(Vec<f32>),
    /// Codec tokens of one frame, one per codebook.
    Codes(Vec<u32>),
    /// Anything else, typed by the port's `Custom` name.
    Any(Box<dyn Any + Send>),
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Payload::Empty => write!(f, "Empty"),
            Payload::Audio(a) => write!(f, "Audio({} samples)", a.len()),
            Payload::Codes(c) => write!(f, "Codes({c:?})"),
            Payload::Any(_) => write!(f, "Any(..)"),
        }
    }
}

impl Payload {
    /// The audio samples, or an error naming what was found instead.
    pub fn audio(&self) -> Result<&[f32], NodeError> {
        match self {
            Payload::Audio(a) => Ok(a),
            other => Err(NodeError::new(format!("expected audio, got {other:?}"))),
        }
    }

    /// A reusable audio buffer: turns this payload into an (emptied) audio vec,
    /// keeping its capacity if it already was one.
    pub fn audio_buf(&mut self) -> &mut Vec<f32> {
        if !matches!(self, Payload::Audio(_)) {
            *self = Payload::Audio(Vec::new());
        }
        match self {
            Payload::Audio(a) => {
                a.clear();
                a
            }
            _ => unreachable!(),
        }
    }

    /// The codes, or an error naming what was found instead.
    pub fn codes(&self) -> Result<&[u32], NodeError> {
        match self {
            Payload::Codes(c) => Ok(c),
            other => Err(NodeError::new(format!("expected codes, got {other:?}"))),
        }
    }

    /// A reusable codes buffer (see [`Payload::audio_buf`]).
    pub fn codes_buf(&mut self) -> &mut Vec<u32> {
        if !matches!(self, Payload::Codes(_)) {
            *self = Payload::Codes(Vec::new());
        }
        match self {
            Payload::Codes(c) => {
                c.clear();
                c
            }
            _ => unreachable!(),
        }
    }

    /// Downcasts a custom payload.
    pub fn any<T: 'static>(&self) -> Result<&T, NodeError> {
        match self {
            Payload::Any(b) => b.downcast_ref::<T>().ok_or_else(|| {
                NodeError::new(format!(
                    "custom payload is not a {}",
                    std::any::type_name::<T>()
                ))
            }),
            other => Err(NodeError::new(format!(
                "expected custom payload, got {other:?}"
            ))),
        }
    }

    pub fn is_empty(&self) -> bool {
        matches!(self, Payload::Empty)
    }
}

/// What a node sees of the world while it processes one frame.
pub struct FrameContext<'a> {
    /// Index of the frame in the stream (0-based, counts skipped frames too).
    pub frame: u64,
    /// The newest published knob snapshot, loaded when this stage started.
    pub knobs: &'a KnobSnapshot,
}

/// A node failed on one frame. The graph reports it once, with the node's name,
/// and sends the stream to gap fill.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeError(pub String);

impl NodeError {
    pub fn new(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NodeError {}

/// One stage of a graph.
pub trait Node: Send + 'static {
    /// Short, stable name used in telemetry, traces and errors (`"backbone"`).
    fn name(&self) -> &str;

    /// Input ports, in the order `process` receives them.
    fn inputs(&self) -> Vec<PortSpec>;

    /// Output ports, in the order `process` fills them.
    fn outputs(&self) -> Vec<PortSpec>;

    /// The knobs this node reads (the graph registers them on its knob bus).
    fn knobs(&self) -> Vec<KnobSpec> {
        Vec::new()
    }

    /// Processes one frame: reads `inputs`, fills `outputs` (same lengths as the
    /// declared ports). Frames arrive strictly in order.
    fn process(
        &mut self,
        cx: &FrameContext,
        inputs: &[Payload],
        outputs: &mut [Payload],
    ) -> Result<(), NodeError>;

    /// Drops all streaming state, as if no frame had been processed.
    fn reset(&mut self) {}
}
