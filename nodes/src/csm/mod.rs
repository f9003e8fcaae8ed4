//! CSM (Sesame's Conversational Speech Model, CSM-1B): text-to-speech with
//! conversational context. A Llama backbone reads the turn's text (and any
//! context turns' text and audio) and predicts codebook 0 of each Mimi frame;
//! a small Llama audio decoder predicts codebooks 1..31 of the frame; Mimi
//! decodes it. Frames stream through the graph one at a time, free-running.
//!
//! * [`bundle::CsmModel`]: loads a `sesame/csm-1b` folder (Hugging Face or
//!   Sesame tensor names, either `config.json` form) or the stand-in; the
//!   `csm` [family](crate::family::csm) wraps it with the Mimi codec in a
//!   [`ModelBundle`](crate::ModelBundle).
//! * [`standin::write_csm_standin`]: the tiny random-weight stand-in.
//! * [`graph::csm_graph`]: the streaming graph; [`nodes`]: its nodes and knobs.
//! * [`text::Script`]: what to say (turns, speakers, context).

pub mod bundle;
pub mod config;
pub mod graph;
pub mod llama;
pub mod model;
pub mod nodes;
pub mod standin;
pub mod text;

pub use bundle::CsmModel;
pub use graph::{csm_graph, CSM_STAGES};
pub use nodes::{CsmProgress, TurnLimit};
pub use text::{ContextTurn, Script, Turn};
