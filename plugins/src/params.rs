//! Host-visible parameters and persisted (non-parameter) state.
//!
//! Ranges, defaults and units come from [`crate::knob_table::KNOBS`]. nice-plug
//! smoothers are not used: output-stage knobs are smoothed sample-accurately by
//! the framework's audio endpoint, generation knobs are stepped per frame.

use std::sync::{Arc, RwLock};

use nice_plug::prelude::*;

use crate::knob_table::{Knob, KnobDef};

/// All parameters plus the persisted model directory and preset name.
#[derive(Params)]
pub struct AntiphonParams {
    #[id = "gain_db"]
    pub gain_db: FloatParam,
    #[id = "mix"]
    pub mix: FloatParam,
    #[id = "bypass"]
    pub bypass: BoolParam,
    #[id = "audio_temperature"]
    pub audio_temperature: FloatParam,
    #[id = "text_temperature"]
    pub text_temperature: FloatParam,
    #[id = "top_k"]
    pub top_k: IntParam,
    #[id = "codebook_depth"]
    pub codebook_depth: IntParam,
    #[id = "lead_floor_ms"]
    pub lead_floor_ms: FloatParam,
    #[id = "listen"]
    pub listen: BoolParam,
    #[id = "reset"]
    pub reset: BoolParam,
    /// Latency reporting (not a knob of the engine, so not in the knob table):
    /// off = *adaptive* (reports 0, the lead adapts freely); on = *fixed*
    /// (reports [`AntiphonParams::latency_samples`] and holds the wet output
    /// exactly there). Not automatable: changing it makes the host restart
    /// the plugin to re-align.
    #[id = "fixed_latency"]
    pub fixed_latency: BoolParam,

    /// Model directory; empty means the built-in model. Saved with the project.
    /// Read by the engine's worker (never by the audio thread), which reloads
    /// when it changes.
    #[persist = "model_dir"]
    pub model_dir: Arc<RwLock<String>>,
    /// Name (or path) of the preset chosen from `presets/`; empty for none.
    #[persist = "preset"]
    pub preset: Arc<RwLock<String>>,
}

fn float(k: Knob) -> FloatParam {
    let d: &KnobDef = k.def();
    FloatParam::new(
        d.name,
        d.default,
        FloatRange::Linear {
            min: d.min,
            max: d.max,
        },
    )
    .with_unit(d.unit)
}

fn int(k: Knob) -> IntParam {
    let d = k.def();
    IntParam::new(
        d.name,
        d.default as i32,
        IntRange::Linear {
            min: d.min as i32,
            max: d.max as i32,
        },
    )
    .with_unit(d.unit)
}

fn on_off(k: Knob) -> BoolParam {
    BoolParam::new(k.def().name, k.def().default >= 0.5)
}

impl Default for AntiphonParams {
    fn default() -> Self {
        Self {
            gain_db: float(Knob::GAIN_DB)
                .with_step_size(0.1)
                .with_value_to_string(formatters::v2s_f32_rounded(1)),
            // Shown and typed as a percentage, stored 0..1.
            mix: float(Knob::MIX)
                .with_unit("%")
                .with_value_to_string(formatters::v2s_f32_percentage(0))
                .with_string_to_value(formatters::s2v_f32_percentage()),
            bypass: on_off(Knob::BYPASS)
                .make_bypass()
                .with_value_to_string(formatters::v2s_bool_bypass())
                .with_string_to_value(formatters::s2v_bool_bypass()),
            audio_temperature: float(Knob::AUDIO_TEMPERATURE)
                .with_step_size(0.01)
                .with_value_to_string(formatters::v2s_f32_rounded(2)),
            text_temperature: float(Knob::TEXT_TEMPERATURE)
                .with_step_size(0.01)
                .with_value_to_string(formatters::v2s_f32_rounded(2)),
            top_k: int(Knob::TOP_K),
            codebook_depth: int(Knob::CODEBOOK_DEPTH),
            lead_floor_ms: float(Knob::LEAD_FLOOR_MS)
                .with_step_size(1.0)
                .with_value_to_string(formatters::v2s_f32_rounded(0)),
            listen: on_off(Knob::LISTEN),
            reset: on_off(Knob::RESET),
            fixed_latency: BoolParam::new("Fixed latency", false).non_automatable(),
            model_dir: Arc::new(RwLock::new(String::new())),
            preset: Arc::new(RwLock::new(String::new())),
        }
    }
}

/// Length of one model frame: the input a frame needs before it can be made.
pub const FRAME_SECONDS: f64 = 0.08;

impl AntiphonParams {
    /// The latency to report at `rate`: 0 when adaptive; when fixed, one
    /// frame (the input a reply frame needs) plus the lead floor (the time
    /// generation has to make it). Realtime-safe (atomics and arithmetic).
    #[inline]
    pub fn latency_samples(&self, rate: f64) -> u32 {
        if !self.fixed_latency.value() {
            return 0;
        }
        let s = FRAME_SECONDS + self.lead_floor_ms.value() as f64 / 1000.0;
        (s * rate).round() as u32
    }

    /// Current value of a knob in its own unit (booleans as 0/1). Realtime-safe:
    /// parameter values are atomics.
    #[inline]
    pub fn value(&self, k: Knob) -> f32 {
        let b = |p: &BoolParam| if p.value() { 1.0 } else { 0.0 };
        match k {
            Knob::GAIN_DB => self.gain_db.value(),
            Knob::MIX => self.mix.value(),
            Knob::BYPASS => b(&self.bypass),
            Knob::AUDIO_TEMPERATURE => self.audio_temperature.value(),
            Knob::TEXT_TEMPERATURE => self.text_temperature.value(),
            Knob::TOP_K => self.top_k.value() as f32,
            Knob::CODEBOOK_DEPTH => self.codebook_depth.value() as f32,
            Knob::LEAD_FLOOR_MS => self.lead_floor_ms.value(),
            Knob::LISTEN => b(&self.listen),
            _ => b(&self.reset),
        }
    }
}
