//! Antiphon as a CLAP + VST3 plugin (one code base, nice-plug wrappers).
//!
//! * [`knob_table`]: the knobs (ids, ranges, units, bindings).
//! * [`params`]: host parameters and persisted model directory / preset.
//! * [`state`]: saved-state sanitising (foreign or out-of-range → defaults).
//! * [`engine`]: the generation side (model loading, the canonical graph on the engine).
//! * [`presets`]: the shared `presets/` files.
//! * [`editor`]: the editor; [`ui_bridge`] is all it shares with the rest,
//!   [`ui_feed`] fills it from the generation side.
//!
//! **Latency.** The plugin reports **0 samples** to the host. The dry path is
//! zero-latency, and the model's output is a *reply*, not a processed copy of
//! the input: delay-compensating it would only delay the whole track by the
//! lead without aligning anything. The lead is adapted by generation and is
//! visible in telemetry instead, so the reported latency never changes (no host
//! thrash).
//!
//! **Realtime safety.** `process` reads parameter atomics, writes knob cells
//! (wait-free), and runs the framework's audio endpoint. It never locks, touches
//! the file system, waits for the worker or allocates; the allocation check is
//! tested with nice-plug's `assert_process_allocs` (see `tests/`).

use std::num::NonZeroU32;
use std::sync::Arc;

use antiphon_framework::denormals::DenormalGuard;
use antiphon_framework::knobs::KnobBus;
use antiphon_framework::{AudioSide, OutputEvent, OutputParam};
use nice_plug::prelude::*;

pub mod editor;
pub mod engine;
pub mod knob_table;
pub mod params;
pub mod presets;
pub mod remote_controls;
pub mod state;
pub mod ui_bridge;
pub mod ui_feed;

use antiphon_framework::knobs::Binding;
use engine::{Engine, EngineHandle, ModelChoice, Status};
use knob_table::{Knob, KNOBS};
use params::AntiphonParams;
use ui_bridge::UiBridge;
use ui_feed::UiFeed;

/// A running stream: the endpoint's audio half and the engine that feeds it.
struct Running {
    audio: AudioSide,
    engine: EngineHandle,
}

/// The plugin.
pub struct Antiphon {
    params: Arc<AntiphonParams>,
    knobs: Arc<KnobBus>,
    running: Option<Running>,
    /// Last value sent per knob (NaN = never sent), so unchanged knobs cost nothing.
    sent: [f32; KNOBS.len()],
    /// What the editor shows and asks for (never touched by `process`).
    ui: Arc<UiBridge>,
}

impl Default for Antiphon {
    fn default() -> Self {
        Self {
            params: Arc::new(AntiphonParams::default()),
            knobs: knob_table::new_bus(),
            running: None,
            sent: [f32::NAN; KNOBS.len()],
            ui: ui_feed::new_bridge(),
        }
    }
}

impl Antiphon {
    /// The model status and its reason, for hosts/UIs that can show it
    /// (`None` while inactive).
    pub fn status(&self) -> Option<(Status, String)> {
        self.running.as_ref().map(|r| {
            let s = r.engine.status();
            (s.status(), s.reason())
        })
    }

    /// Forwards changed knobs: output-stage ones as endpoint events at offset 0
    /// (nice-plug splits blocks at automation points, so offset 0 of this
    /// sub-block *is* the event's sample), the rest into the knob bus stamped
    /// with the audio clock. Returns how many events were written.
    #[inline]
    fn collect_changes(&mut self, clock: u64, ready: bool, events: &mut [OutputEvent; 3]) -> usize {
        let mut n = 0;
        for (i, def) in KNOBS.iter().enumerate() {
            let k = Knob(i);
            let mut v = self.params.value(k);
            if k == Knob::BYPASS && !ready {
                v = 1.0; // no model yet (or it failed): dry, crossfaded
            }
            if v == self.sent[i] {
                continue;
            }
            // NaN (never sent) counts as off, so a saved "on" does not fire on activation.
            let was_on = self.sent[i] >= 0.5;
            let rising = v >= 0.5 && !was_on && !self.sent[i].is_nan();
            self.sent[i] = v;
            self.knobs.set(k.bus_id(), v, clock);
            if def.binding == Binding::AudioThread {
                let param = match k {
                    Knob::GAIN_DB => OutputParam::GainDb,
                    Knob::MIX => OutputParam::Mix,
                    _ => OutputParam::Bypass,
                };
                // Bottom of the gain range means silence.
                let value = if k == Knob::GAIN_DB && v <= def.min {
                    -120.0
                } else {
                    v
                };
                events[n] = OutputEvent {
                    offset: 0,
                    param,
                    value,
                };
                n += 1;
            }
            if k == Knob::RESET && rising {
                if let Some(r) = self.running.as_ref() {
                    r.engine.request_reset();
                }
            }
        }
        n
    }
}

impl Plugin for Antiphon {
    const NAME: &'static str = "Antiphon";
    const VENDOR: &'static str = "Antiphon";
    const URL: &'static str = "https://example.invalid/antiphon";
    const EMAIL: &'static str = "antiphon@example.invalid";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    const AUDIO_IO_LAYOUTS: &'static [AudioIOLayout] = &[
        AudioIOLayout {
            main_input_channels: NonZeroU32::new(2),
            main_output_channels: NonZeroU32::new(2),
            aux_input_ports: &[],
            aux_output_ports: &[],
            names: PortNames::const_default(),
        },
        AudioIOLayout {
            main_input_channels: NonZeroU32::new(1),
            main_output_channels: NonZeroU32::new(1),
            aux_input_ports: &[],
            aux_output_ports: &[],
            names: PortNames::const_default(),
        },
    ];

    const SAMPLE_ACCURATE_AUTOMATION: bool = true;

    type Editor = nice_plug_egui::EguiEditor<editor::EditorApp>;
    type SysExMessage = ();
    type BackgroundTask = ();

    fn params(&self) -> Arc<dyn Params> {
        self.params.clone()
    }

    fn editor(&mut self, _async_executor: AsyncExecutor<Self>) -> Option<Self::Editor> {
        editor::create(self.ui.clone(), self.params.clone())
    }

    fn filter_state(state: &mut PluginState) {
        state::sanitize(state);
    }

    fn activate(
        &mut self,
        _layout: &AudioIOLayout,
        config: &BufferConfig,
        context: &mut impl ActivateContext<Self>,
    ) -> bool {
        // Stop the old stream first so its worker is gone before a new one starts.
        self.running = None;
        presets::check_chosen(&self.params);
        let model = ModelChoice(self.params.model_dir.clone());
        let feed = UiFeed::new(
            self.ui.clone(),
            self.params.model_dir.clone(),
            self.params.preset.clone(),
        );
        match Engine::start(config.sample_rate as f64, model, self.knobs.clone(), feed) {
            Ok((audio, engine)) => {
                self.running = Some(Running { audio, engine });
                // Everything is re-sent to the fresh endpoint on the first block.
                self.sent = [f32::NAN; KNOBS.len()];
                context.set_latency_samples(0);
                true
            }
            Err(e) => {
                nice_error!("Antiphon: cannot activate: {e}");
                false
            }
        }
    }

    fn reset(&mut self) {
        if let Some(r) = self.running.as_mut() {
            r.audio.reset();
            r.engine.request_reset();
        }
    }

    fn deactivate(&mut self) {
        self.running = None;
    }

    fn process(
        &mut self,
        buffer: &mut Buffer,
        _aux: &mut AuxiliaryBuffers,
        _context: &mut impl ProcessContext<Self>,
    ) -> ProcessStatus {
        // Denormals flushed for all of `process`, not only inside the endpoint
        // (knob collection and the host's own buffers see them too).
        let _ftz = DenormalGuard::new();
        #[cfg(feature = "test-alloc-canary")]
        std::hint::black_box(Vec::<u8>::with_capacity(16));

        let Some(run) = self.running.as_ref() else {
            return ProcessStatus::Normal; // not active: the buffer already holds the input
        };
        let clock = run.audio.stats().clock();
        let ready = run.engine.status().status() == Status::Ready;
        let mut events = [OutputEvent {
            offset: 0,
            param: OutputParam::Mix,
            value: 0.0,
        }; 3];
        let n = self.collect_changes(clock, ready, &mut events);
        if let Some(run) = self.running.as_mut() {
            run.audio.process(buffer.as_slice(), &events[..n]);
        }
        // Generation keeps talking through silent input.
        ProcessStatus::KeepAlive
    }
}

impl ClapPlugin for Antiphon {
    const CLAP_ID: &'static str = "dev.antiphon.antiphon";
    const CLAP_DESCRIPTION: Option<&'static str> =
        Some("Realtime streaming speech model: talk in, hear the reply");
    const CLAP_MANUAL_URL: Option<&'static str> = None;
    const CLAP_SUPPORT_URL: Option<&'static str> = None;
    const CLAP_FEATURES: &'static [ClapFeature] = &[
        ClapFeature::AudioEffect,
        ClapFeature::Stereo,
        ClapFeature::Mono,
    ];

    fn remote_controls(&self, context: &mut impl RemoteControlsContext) {
        remote_controls::define(&self.params, context);
    }
}

impl Vst3Plugin for Antiphon {
    const VST3_CLASS_ID: [u8; 16] = *b"AntiphonSpeech01";
    const VST3_SUBCATEGORIES: &'static [Vst3SubCategory] =
        &[Vst3SubCategory::Fx, Vst3SubCategory::Tools];
}

nice_export_clap!(Antiphon);
nice_export_vst3!(Antiphon);
