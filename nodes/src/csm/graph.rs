//! CSM's graph: text → backbone → audio_decoder → decoder → resample_out →
//! output, free-running, with the feedback edge audio_decoder → backbone.

use std::sync::Arc;

use antiphon_framework::graph::Graph;
use antiphon_framework::node::Node;

use super::bundle::CsmModel;
use super::nodes::{model_nodes, CsmProgress, TextNode, TextPlan, TurnLimit};
use super::text::Script;
use crate::bundle::ModelBundle;
use crate::bundle::MODEL_RATE;
use crate::decoder::Decoder;
use crate::family::Stages;
use crate::output::Output;
use crate::resample::Resample;

/// The CSM graph's stage names, in order.
pub const CSM_STAGES: [&str; 6] = [
    "text",
    "backbone",
    "audio_decoder",
    "decoder",
    "resample_out",
    "output",
];

/// Audio frames the context must hold after a turn's text: ~1 s.
const MIN_TURN_FRAMES: usize = 13;

/// The CSM part of a loaded model, or an error naming what it is instead.
pub fn csm_model(bundle: &ModelBundle) -> Result<&CsmModel, String> {
    bundle
        .expect_task(crate::family::Task::TextToSpeech, "speaking text")
        .and_then(|_| {
            bundle
                .parts::<CsmModel>()
                .ok_or_else(|| format!("`{}` is not a CSM model", bundle.dir.display()))
        })
}

/// Checks a script against the model before anything runs: every turn (and
/// the context turns) must fit the context with room to speak. The error
/// names the turn and says what to do.
pub fn check_script(model: &CsmModel, script: &Script) -> Result<(), String> {
    let plan = TextPlan::new(script, &model.tokenizer, 0)?;
    let ctx = model.config.backbone.max_positions;
    let context: usize = plan
        .context
        .iter()
        .map(|(t, a)| t.len() + a.len() + 1)
        .sum();
    if context + MIN_TURN_FRAMES > ctx {
        return Err(format!(
            "the context turns take {context} positions; CSM's context holds {ctx} \
             (text tokens plus 12.5 audio frames per second): give less context"
        ));
    }
    for (i, (tokens, turn)) in plan.turns.iter().zip(&script.turns).enumerate() {
        if tokens.len() + MIN_TURN_FRAMES > ctx {
            let head: String = turn.text.chars().take(40).collect();
            return Err(format!(
                "text longer than the context: turn {} (\"{head}…\") is {} tokens; CSM's context \
                 holds {ctx} positions (text tokens plus 12.5 audio frames per second): split it \
                 into shorter lines (each line is a turn)",
                i + 1,
                tokens.len()
            ));
        }
    }
    Ok(())
}

/// An upper bound on the frames a script takes (every turn to its limit,
/// plus the frame that notices the end).
pub fn max_frames(model: &CsmModel, script: &Script, limit: TurnLimit) -> Result<usize, String> {
    let plan = TextPlan::new(script, &model.tokenizer, 0)?;
    Ok(plan
        .turns
        .iter()
        .map(|t| limit.frames(t.len()) + 1)
        .sum::<usize>()
        + 1)
}

/// What a stand-in speaks when no text is given (a model folder run by a
/// front end that has no text to give, e.g. the family tests).
pub const DEMO_TEXT: &str = "Hello! This is Antiphon, streaming speech one frame at a time.";

/// The CSM graph's stages for a device at `device_rate`; the returned
/// progress tells when the script is done.
pub fn csm_stages(
    bundle: &ModelBundle,
    script: Script,
    device_rate: f64,
    seed: u64,
    limit: TurnLimit,
) -> Result<(Stages, Arc<CsmProgress>), String> {
    let model = csm_model(bundle)?;
    check_script(model, &script)?;
    let bins = bundle.manifest.mimi.config.quantizer_bins;
    let (backbone, audio_decoder, progress) = model_nodes(model, bins, seed, limit);
    let nodes: Vec<Box<dyn Node>> = vec![
        Box::new(TextNode::new(model, script, device_rate)),
        Box::new(backbone),
        Box::new(audio_decoder),
        Box::new(Decoder::new(bundle)),
        Box::new(Resample::new("resample_out", MODEL_RATE, device_rate)?),
        Box::new(Output::new(device_rate)),
    ];
    let stages = Stages {
        chain: CSM_STAGES.into_iter().zip(nodes).collect(),
        // Backbone frame t+1 embeds the codes the audio decoder sampled at t.
        feedback: vec![("audio_decoder", "backbone")],
    };
    Ok((stages, progress))
}

/// [`csm_stages`] as a validated graph.
pub fn csm_graph(
    bundle: &ModelBundle,
    script: Script,
    device_rate: f64,
    seed: u64,
    limit: TurnLimit,
) -> Result<(Graph, Arc<CsmProgress>), String> {
    let (stages, progress) = csm_stages(bundle, script, device_rate, seed, limit)?;
    Ok((stages.build(device_rate, |_, n| n)?, progress))
}
