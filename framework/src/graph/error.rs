//! Graph validation errors. Each names the nodes and ports involved and, where it
//! helps, what would have been accepted.

use std::fmt;

/// Why a graph was rejected.
#[derive(Debug, Clone, PartialEq)]
pub enum GraphError {
    Empty,
    DuplicateNode {
        name: String,
    },
    BadPortRef {
        text: String,
    },
    UnknownNode {
        name: String,
        known: String,
    },
    UnknownPort {
        port: String,
        side: &'static str,
        available: String,
    },
    TypeMismatch {
        from: String,
        to: String,
        from_kind: String,
        to_kind: String,
    },
    Unconnected {
        port: String,
    },
    InputConnectedTwice {
        input: String,
        first: String,
        second: String,
    },
    OutputFanOut {
        output: String,
        first: String,
        second: String,
    },
    Cycle {
        nodes: String,
    },
    NoInput,
    NoOutput,
    UnknownKind {
        node: String,
        kind: String,
        known: String,
    },
    BadParams {
        node: String,
        message: String,
    },
    BadDescription {
        message: String,
    },
}

impl fmt::Display for GraphError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use GraphError::*;
        match self {
            Empty => write!(f, "the graph has no nodes"),
            DuplicateNode { name } => write!(f, "two nodes are named `{name}`: node names must be unique"),
            BadPortRef { text } => write!(f, "`{text}` is not a port reference: write `node.port`"),
            UnknownNode { name, known } => write!(f, "no node named `{name}` (nodes: {known})"),
            UnknownPort { port, side, available } => {
                write!(f, "`{port}` is not an {side} port (available {side}s: {available})")
            }
            TypeMismatch { from, to, from_kind, to_kind } => {
                write!(f, "type mismatch: `{from}` produces {from_kind} but `{to}` expects {to_kind}")
            }
            Unconnected { port } => write!(f, "input `{port}` is not connected to anything"),
            InputConnectedTwice { input, first, second } => {
                write!(f, "input `{input}` is fed twice: by `{first}` and by `{second}`")
            }
            OutputFanOut { output, first, second } => write!(
                f,
                "output `{output}` feeds both `{first}` and `{second}`: an output feeds one input (add a splitter node)"
            ),
            Cycle { nodes } => write!(f, "the graph has a cycle through: {nodes}"),
            NoInput => write!(f, "the graph has no input port: name the port that receives captured audio"),
            NoOutput => write!(f, "the graph has no output port: name the port whose audio is played"),
            UnknownKind { node, kind, known } => write!(f, "node `{node}`: unknown kind `{kind}` (known kinds: {known})"),
            BadParams { node, message } => write!(f, "node `{node}`: bad parameters: {message}"),
            BadDescription { message } => write!(f, "bad graph description: {message}"),
        }
    }
}

impl std::error::Error for GraphError {}
