//! # antiphon-nodes
//!
//! The nodes of Antiphon's canonical speech-to-speech graph, for Mimi + Moshi
//! models on the `moshi` crate (candle), and model bundle loading:
//!
//! * [`bundle::ModelBundle`]: load a model directory (`antiphon.json`, or
//!   kyutai's published layout; safetensors f32/f16/bf16 or GGUF LM), with
//!   typed [`errors::ModelError`]s. [`bundle::ModelBundle::builtin`] gives the
//!   built-in tiny model (random weights: not speech).
//! * [`builtin`]: writes the built-in model ([`builtin::write_builtin`]).
//! * Nodes: [`capture::Capture`], [`resample::Resample`], [`encoder::Encoder`],
//!   [`backbone::Backbone`], [`code_predictor::CodePredictor`],
//!   [`decoder::Decoder`], [`output::Output`]; [`chain::OfflineChain`] runs
//!   them in order.
//! * [`family`]: model families (Moshi, Hibiki, the codec alone): each says
//!   which nodes make its graph, its ports, pacing, knobs and stand-in.
//! * [`graph::canonical_graph`]: a model's graph as a validated framework graph.
//! * [`driver`]: the endless multistream token state (fixed-size ring).
//! * [`knobs`]: the knob ids and specs these nodes read.
//! * [`csm`]: Sesame's CSM text-to-speech (model, stand-in, graph);
//!   [`speech`]: text to speech for front ends.
//! * [`session`]: the session core both front ends use (model loading and
//!   cache, graph, knob bus, presets, engine, status).

pub mod backbone;
pub mod builtin;
pub mod bundle;
pub mod capture;
pub mod chain;
pub mod code_predictor;
pub mod codec;
pub mod csm;
pub mod decoder;
pub mod driver;
pub mod encoder;
pub mod errors;
pub mod family;
pub mod gguf_header;
pub mod graph;
pub mod knobs;
pub mod lm;
pub mod mimi_transformer;
pub mod output;
mod pool;
pub mod precision;
pub mod pytorch_layout;
pub mod resample;
pub mod rng;
pub mod sampling;
pub mod seanet;
pub mod session;
pub mod simd;
pub mod spec;
pub mod speech;
pub mod stream_conv;
pub mod weights;
pub mod weights_mem;

pub use bundle::ModelBundle;
pub use errors::ModelError;
