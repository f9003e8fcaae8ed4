//! The model knobs, with the stage each binds to (DESIGN.md, "Knobs").

use antiphon_framework::knobs::{Binding, KnobSnapshot, KnobSpec};

pub const TEXT_TEMPERATURE: &str = "text_temperature";
pub const AUDIO_TEMPERATURE: &str = "audio_temperature";
pub const TOP_K: &str = "top_k";
pub const TOP_P: &str = "top_p";
pub const CODEBOOK_DEPTH: &str = "codebook_depth";
pub const LISTEN: &str = "listen";
pub const RESET: &str = "reset";

/// Defaults follow Moshi's server (temperatures 0.7/0.8, top-k 250, no top-p).
pub fn text_temperature() -> KnobSpec {
    KnobSpec::new(
        TEXT_TEMPERATURE,
        "Text temperature",
        "",
        0.0,
        2.0,
        0.7,
        Binding::Sampling,
    )
}
pub fn audio_temperature() -> KnobSpec {
    KnobSpec::new(
        AUDIO_TEMPERATURE,
        "Audio temperature",
        "",
        0.0,
        2.0,
        0.8,
        Binding::Sampling,
    )
}
pub fn top_k() -> KnobSpec {
    KnobSpec::new(TOP_K, "Top-k", "", 1.0, 2048.0, 250.0, Binding::Sampling).stepped(1.0)
}
/// 1.0 disables nucleus filtering.
pub fn top_p() -> KnobSpec {
    KnobSpec::new(TOP_P, "Top-p", "", 0.01, 1.0, 1.0, Binding::Sampling)
}
pub fn codebook_depth(max: usize) -> KnobSpec {
    KnobSpec::new(
        CODEBOOK_DEPTH,
        "Codebook depth",
        "",
        1.0,
        max.max(1) as f32,
        max.max(1) as f32,
        Binding::Decoder,
    )
    .stepped(1.0)
}
/// On: the model hears the user. Off: it hears silence codes.
pub fn listen() -> KnobSpec {
    KnobSpec::toggle(LISTEN, "Listen", true, Binding::Control)
}
/// Trigger: every write restarts the conversation (all streaming state).
pub fn reset() -> KnobSpec {
    KnobSpec::toggle(RESET, "Reset", false, Binding::Control)
}

/// Every model knob (for registering on a knob bus).
pub fn all(max_depth: usize) -> Vec<KnobSpec> {
    vec![
        text_temperature(),
        audio_temperature(),
        top_k(),
        top_p(),
        codebook_depth(max_depth),
        listen(),
        reset(),
    ]
}

/// Notices writes to the `reset` trigger: each node keeps one and resets its
/// state when the trigger's write count changes.
#[derive(Clone, Debug, Default)]
pub struct ResetWatch(Option<u64>);

impl ResetWatch {
    /// `true` once per new write of `reset` (never on the first look).
    pub fn fired(&mut self, knobs: &KnobSnapshot) -> bool {
        let v = knobs.entry(RESET).map(|e| e.version);
        let fired = matches!((self.0, v), (Some(a), Some(b)) if a != b);
        if v.is_some() {
            self.0 = v;
        }
        fired
    }
}
