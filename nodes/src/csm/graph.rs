//! CSM's graph: text → backbone → audio_decoder → decoder → resample_out →
//! output, free-running, with the feedback edge audio_decoder → backbone.

use std::sync::Arc;

use antiphon_framework::graph::{Graph, GraphBuilder};
use antiphon_framework::knobs::{KnobBus, KnobSpec};
use antiphon_framework::node::Node;

use super::bundle::CsmModel;
use super::nodes::{model_nodes, CsmProgress, TextNode, TextPlan, TurnLimit};
use super::text::Script;
use crate::bundle::MODEL_RATE;
use crate::decoder::Decoder;
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

/// The lead floor of a CSM stream, ms. Free-running speech has no input to
/// answer, so its lead costs no latency; it only bounds how late a knob
/// change is heard (a frame plus this). 250 ms covers the production-time
/// spikes of a loaded 2-core machine (ITL p99 150 ms measured beside three
/// compiling engineers, which underran at the speech-to-speech floor of 40 ms).
pub const CSM_LEAD_FLOOR_MS: f32 = 250.0;

/// The graph's knobs and the lead controller's (plus `extra`) on one bus,
/// with CSM's lead floor.
pub fn csm_knob_bus(graph: &Graph, extra: Vec<KnobSpec>) -> Result<Arc<KnobBus>, String> {
    let bus = crate::graph::knob_bus(graph, extra)?;
    bus.set_by_id("lead_floor_ms", CSM_LEAD_FLOOR_MS, 0)?;
    Ok(bus)
}

/// Audio frames the context must hold after a turn's text: ~1 s.
const MIN_TURN_FRAMES: usize = 13;

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

/// Builds and validates the CSM graph for a device at `device_rate`; the
/// returned progress tells when the script is done.
pub fn csm_graph(
    model: &CsmModel,
    script: Script,
    device_rate: f64,
    seed: u64,
    limit: TurnLimit,
) -> Result<(Graph, Arc<CsmProgress>), String> {
    check_script(model, &script)?;
    let (backbone, audio_decoder, progress) = model_nodes(model, seed, limit);
    let nodes: Vec<Box<dyn Node>> = vec![
        Box::new(TextNode::new(model, script, device_rate)),
        Box::new(backbone),
        Box::new(audio_decoder),
        Box::new(Decoder::from_codec(
            model.codec.clone(),
            model.config.num_codebooks,
        )),
        Box::new(Resample::new("resample_out", MODEL_RATE, device_rate)?),
        Box::new(Output::new(device_rate)),
    ];
    let graph = GraphBuilder::new()
        .chain(CSM_STAGES.iter().copied().zip(nodes).collect())
        // Backbone frame t+1 embeds the codes the audio decoder sampled at t.
        .feedback("audio_decoder", "backbone")
        .build(device_rate)
        .map_err(|e| e.to_string())?;
    Ok((graph, progress))
}
