//! The Moshi-architecture LM (temporal transformer + depformer) on our own
//! batch-1 kernels, with weights kept in the precision the user chose
//! (f32, f16, bf16, q8_0, q4_0; other GGUF quantisations through candle).
//!
//! Why not the moshi crate's `LmModel` on the CPU: a streaming step is a
//! chain of matrix–vector products bound by reading the weights, and
//! candle's quantised CPU kernels run far below the memory bandwidth in a
//! portable build (see [`matrix`]); its linear layers cannot be swapped. On a
//! GPU (`--device cuda|metal`) the moshi crate's model is used as before.

pub mod matrix;
mod model;
mod transformer;

pub use matrix::Matrix;
pub use model::{LmBackbone, LmDepformer};
pub(crate) use transformer::{dot, Norm};
pub use transformer::{KvState, Transformer};
