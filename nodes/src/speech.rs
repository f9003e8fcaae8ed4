//! Text to speech for front ends, without naming a family: a script in, a
//! free-running graph out. The loaded model must do
//! [`Task::TextToSpeech`](crate::family::Task::TextToSpeech) (today: `csm`);
//! anything else is one clear error naming the file that says what it is.

use std::path::PathBuf;
use std::sync::Arc;

use antiphon_framework::graph::Graph;
use antiphon_framework::knobs::{KnobBus, KnobSpec};

use crate::bundle::{ModelBundle, FRAME_SAMPLES, MODEL_RATE};
use crate::errors::ModelError;
use crate::resample::StreamResampler;

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

/// An earlier turn for the context: its text, who said it, and its recorded
/// audio (mono at `rate`), encoded to the model's Mimi codes.
pub fn context_turn(
    bundle: &ModelBundle,
    speaker: u32,
    text: &str,
    audio: &[f32],
    rate: f64,
) -> Result<ContextTurn, String> {
    crate::csm::graph::csm_model(bundle)?;
    if speaker > crate::csm::text::MAX_SPEAKER {
        return Err(format!(
            "unknown speaker id {speaker}: speakers are 0–{}",
            crate::csm::text::MAX_SPEAKER
        ));
    }
    // To 24 kHz, frame by frame (the resampler's queue is bounded), then
    // drop its delay so the codes line up with the words.
    let mut rs = StreamResampler::new(rate, MODEL_RATE)?;
    let chunk = (rate * 0.08).round().max(1.0) as usize;
    let delay = rs.delay_samples().round() as usize;
    let flush = vec![0.0; chunk * (delay / FRAME_SAMPLES + 2)];
    let mut pcm = Vec::new();
    for c in audio.chunks(chunk).chain(flush.chunks(chunk)) {
        rs.push(c)?;
        rs.pull_frame(&mut pcm);
    }
    let len = (audio.len() as f64 * MODEL_RATE / rate).ceil() as usize;
    let mut pcm: Vec<f32> = pcm.into_iter().skip(delay).take(len).collect();
    pcm.resize(len.div_ceil(FRAME_SAMPLES) * FRAME_SAMPLES, 0.0);
    let mut enc = bundle.encoder.clone();
    enc.reset_state();
    let mut codes = Vec::with_capacity(pcm.len() / FRAME_SAMPLES);
    let mut frame = Vec::new();
    for f in pcm.chunks(FRAME_SAMPLES) {
        enc.encode_step(f, &mut frame)
            .map_err(|e| format!("encoding the context audio: {e}"))?;
        codes.push(frame.clone());
    }
    Ok(ContextTurn {
        speaker,
        text: text.to_string(),
        codes,
    })
}
