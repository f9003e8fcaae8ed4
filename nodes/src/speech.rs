//! Text to speech for front ends, without naming a family: a script in, a
//! free-running graph out. The loaded model must do
//! [`Task::TextToSpeech`](crate::family::Task::TextToSpeech) (today: `csm`);
//! anything else is one clear error naming the file that says what it is.

use std::path::PathBuf;
use std::sync::Arc;

use antiphon_framework::graph::Graph;
use antiphon_framework::knobs::{KnobBus, KnobSpec};

use crate::bundle::ModelBundle;
use crate::errors::ModelError;

pub use crate::csm::nodes::{CsmProgress as SpeechProgress, TurnLimit, SPEAKER, TEMPERATURE};
pub use crate::csm::text::{ContextTurn, Script, Turn};
pub use crate::knobs::TOP_K;

/// The graph speaking `script` at the device's `rate`, its knob bus (with
/// `extra` knobs, e.g. the output stage's) and its progress (when it is done).
pub fn graph(
    bundle: &ModelBundle,
    script: Script,
    rate: f64,
    seed: u64,
    limit: TurnLimit,
    extra: Vec<KnobSpec>,
) -> Result<(Graph, Arc<KnobBus>, Arc<SpeechProgress>), String> {
    let (graph, progress) = crate::csm::csm_graph(bundle, script, rate, seed, limit)?;
    let knobs = crate::graph::knob_bus(&graph, extra)?;
    Ok((graph, knobs, progress))
}

/// At most how many 80 ms frames `script` takes.
pub fn max_frames(
    bundle: &ModelBundle,
    script: &Script,
    limit: TurnLimit,
) -> Result<usize, String> {
    crate::csm::graph::max_frames(crate::csm::graph::csm_model(bundle)?, script, limit)
}

/// The default text-to-speech model: the CSM stand-in (random weights),
/// written to the model cache on first use.
pub fn default_model_dir() -> Result<PathBuf, ModelError> {
    crate::csm::standin::csm_standin_dir(0)
}
