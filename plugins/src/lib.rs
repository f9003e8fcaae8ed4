//! Antiphon as a CLAP + VST3 plugin (one code base, nice-plug wrappers).
//!
//! * [`knob_table`]: the knobs (ids, ranges, units, bindings).
//! * [`params`]: host parameters and persisted model directory / preset.
//! * [`state`]: saved-state sanitising (foreign or out-of-range → defaults).
//! * [`stream`]: the session core's settings for the plugin (model loading,
//!   the canonical graph on the engine, status: `antiphon_nodes::session`).
//! * [`presets`]: the presets (shipped ones compiled in, plus folders).
//! * [`editor`]: the editor; [`ui_bridge`] is all it shares with the rest,
//!   [`ui_feed`] fills it from the session and serves its requests.
//! * [`remote_controls`]: CLAP remote-control pages.
//!
//! **Latency** is the user's choice (the *Fixed latency* parameter):
//! * *adaptive* (default) reports **0 samples**: the dry path is zero-latency,
//!   the model's output is a *reply*, and the lead adapts freely (visible in
//!   telemetry);
//! * *fixed* reports one frame plus the lead floor
//!   ([`AntiphonParams::latency_samples`]) and the engine holds every frame's
//!   output exactly that long after its input
//!   (`EngineConfig::fixed_delay_samples`), so the host's delay compensation
//!   lines the wet signal up with the track.
//!
//! The reported value changes only when the user changes the mode or the lead
//! floor in fixed mode: `process` notices and asks the host to restart the
//! plugin (nice-plug's latency change), and the new activation runs with it.
//!
//! **Realtime safety.** `process` reads parameter atomics, writes knob cells
//! (wait-free), and runs the framework's audio endpoint. It never locks, touches
//! the file system, waits for the worker or allocates; the allocation check is
//! tested with nice-plug's `assert_process_allocs` (see `tests/`).

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use antiphon_framework::denormals::DenormalGuard;
use antiphon_framework::{AudioSide, OutputEvent, OutputParam};
use antiphon_nodes::session::{DryUntilReady, Session, State, Status};
use nice_plug::prelude::*;

pub mod editor;
pub mod headless;
pub mod knob_table;
pub mod params;
pub mod presets;
pub mod remote_controls;
pub mod state;
pub mod stream;
#[cfg(feature = "test-hooks")]
pub mod test_hooks;
pub mod ui_bridge;
pub mod ui_feed;

use antiphon_framework::knobs::Binding;
use knob_table::{Knob, KNOBS};
use params::AntiphonParams;
use ui_bridge::UiBridge;
use ui_feed::FeedThread;

/// How long an offline render waits for the model at activation.
const OFFLINE_LOAD_TIMEOUT: Duration = Duration::from_secs(120);
/// How long one offline `process` call waits for generation before giving up
/// (the render then continues dry, with an error logged).
const OFFLINE_BLOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// A running stream: the endpoint's audio half and the session that feeds it.
struct Running {
    audio: AudioSide,
    /// Shared with the editor's feed thread, which holds only a weak reference.
    session: Arc<Session>,
    /// The host renders offline (a bounce): `process` waits for generation.
    offline: bool,
    /// An offline wait timed out: the rest of this render is dry.
    offline_failed: bool,
    /// Sample rate of this activation.
    rate: f64,
    /// The latency reported to the host (samples).
    latency: u32,
}

/// The plugin.
pub struct Antiphon {
    params: Arc<AntiphonParams>,
    running: Option<Running>,
    /// Last value sent per knob (NaN = never sent), so unchanged knobs cost nothing.
    sent: [f32; KNOBS.len()],
    /// Dry until the session is ready.
    gate: DryUntilReady,
    /// What the editor shows and asks for (never touched by `process`).
    ui: Arc<UiBridge>,
    /// Fills `ui` from the session and serves its requests; started when
    /// nice-plug builds the editor (instance creation) or at activation.
    feed: Option<FeedThread>,
}

impl Default for Antiphon {
    fn default() -> Self {
        Self {
            params: Arc::new(AntiphonParams::default()),
            running: None,
            sent: [f32::NAN; KNOBS.len()],
            gate: DryUntilReady::default(),
            ui: ui_feed::new_bridge(),
            feed: None,
        }
    }
}

impl Antiphon {
    /// The session's status (model, loading/ready/failed and why), for hosts
    /// and editors that can show it (`None` while inactive).
    pub fn status(&self) -> Option<Status> {
        self.running.as_ref().map(|r| r.session.status())
    }

    /// The editor's feed thread, started on first use (never on the audio thread).
    fn feed(&mut self) -> Option<&FeedThread> {
        if self.feed.is_none() {
            match FeedThread::start(self.ui.clone(), self.params.clone()) {
                Ok(f) => {
                    #[cfg(feature = "test-hooks")]
                    test_hooks::register(&self.ui, &self.params);
                    self.feed = Some(f);
                }
                Err(e) => nice_error!("Antiphon: {e}"),
            }
        }
        self.feed.as_ref()
    }

    /// Forwards changed knobs: output-stage ones as endpoint events at offset 0
    /// (nice-plug splits blocks at automation points, so offset 0 of this
    /// sub-block *is* the event's sample), the rest into the session's knob bus
    /// stamped with the audio clock. Bypass follows [`DryUntilReady`]. Returns
    /// how many events were written.
    #[inline]
    fn collect_changes(
        &mut self,
        run: &Running,
        clock: u64,
        events: &mut [OutputEvent; 3],
    ) -> usize {
        let session = &run.session;
        let knobs = session.knobs();
        let mut n = 0;
        let bypass = self.params.value(Knob::BYPASS) >= 0.5;
        let ready = session.state() == State::Ready && !run.offline_failed;
        if let Some(ev) = self.gate.event(ready, bypass) {
            events[n] = ev;
            n += 1;
        }
        for (i, def) in KNOBS.iter().enumerate() {
            let k = Knob(i);
            let v = self.params.value(k);
            if v == self.sent[i] {
                continue;
            }
            // NaN (never sent) counts as off, so a saved "on" does not fire on activation.
            let was_on = self.sent[i] >= 0.5;
            let rising = v >= 0.5 && !was_on && !self.sent[i].is_nan();
            self.sent[i] = v;
            if k == Knob::RESET {
                // A trigger: the session restarts the stream on the rising edge.
                // Not written to the bus, where every write would be a reset.
                if rising {
                    session.request_reset();
                }
                continue;
            }
            knobs.set(k.bus_id(), v, clock);
            let param = match k {
                Knob::GAIN_DB => Some(OutputParam::GainDb),
                Knob::MIX => Some(OutputParam::Mix),
                _ => None, // bypass: through the gate above
            };
            if let (Binding::AudioThread, Some(param)) = (def.binding, param) {
                events[n] = OutputEvent {
                    offset: 0,
                    param,
                    value: v,
                };
                n += 1;
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
        self.feed();
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
        // Dropping the old session only signals it: it stops in the background.
        self.running = None;
        presets::check_chosen(&self.params);
        let offline = config.process_mode == ProcessMode::Offline;
        let rate = config.sample_rate as f64;
        let latency = self.params.latency_samples(rate);
        let mut cfg = stream::config(rate, &self.params.model_dir, offline);
        cfg.engine.fixed_delay_samples = (latency > 0).then_some(latency as u64);
        match Session::start(cfg) {
            Ok((audio, session)) => {
                let session = Arc::new(session);
                if let Some(feed) = self.feed() {
                    feed.attach(&session);
                }
                if offline {
                    // A bounce must hear the model from its first sample:
                    // wait for it here (bounded), not in `process`.
                    let state = session.wait_ready(OFFLINE_LOAD_TIMEOUT);
                    if state != State::Ready {
                        nice_error!(
                            "Antiphon: offline render without the model ({}): the output is dry",
                            session.status().reason
                        );
                    }
                }
                // A model with a fixed delay of its own (the codec, offline or
                // in fixed mode, once loaded) reports it exactly; otherwise the
                // user's choice stands (fixed: the budget; adaptive: 0, a
                // reply is a new signal).
                let reported = session.fixed_delay_samples().map_or(latency, |d| d as u32);
                self.running = Some(Running {
                    audio,
                    session,
                    offline,
                    offline_failed: false,
                    rate,
                    latency,
                });
                // Everything is re-sent to the fresh endpoint on the first block.
                self.sent = [f32::NAN; KNOBS.len()];
                self.gate.reset();
                context.set_latency_samples(reported);
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
            r.session.request_reset();
        }
    }

    fn deactivate(&mut self) {
        self.running = None;
    }

    fn process(
        &mut self,
        buffer: &mut Buffer,
        _aux: &mut AuxiliaryBuffers,
        context: &mut impl ProcessContext<Self>,
    ) -> ProcessStatus {
        // Denormals flushed for all of `process`, not only inside the endpoint
        // (knob collection and the host's own buffers see them too).
        let _ftz = DenormalGuard::new();
        #[cfg(feature = "test-alloc-canary")]
        std::hint::black_box(Vec::<u8>::with_capacity(16));

        let Some(mut run) = self.running.take() else {
            return ProcessStatus::Normal; // not active: the buffer already holds the input
        };
        let clock = run.audio.stats().clock();
        let mut events = [OutputEvent {
            offset: 0,
            param: OutputParam::Mix,
            value: 0.0,
        }; 3];
        let n = self.collect_changes(&run, clock, &mut events);
        let latency = self.params.latency_samples(run.rate);
        if latency != run.latency {
            // The user changed the latency mode (or the fixed budget): tell the
            // host, which restarts the plugin; the next activation uses it.
            run.latency = latency;
            context.set_latency_samples(latency);
        }
        if run.offline && !run.offline_failed && run.session.state() == State::Ready {
            // Offline (a bounce): wait for generation instead of gap-filling.
            let complete =
                run.audio
                    .process_offline(buffer.as_slice(), &events[..n], OFFLINE_BLOCK_TIMEOUT);
            if !complete {
                run.offline_failed = true;
                nice_error!(
                    "Antiphon: offline render: generation gave no audio for {} s ({}); the rest of this render is dry",
                    OFFLINE_BLOCK_TIMEOUT.as_secs(),
                    run.session.errors().last().map_or("no error reported", |e| e.as_str())
                );
            }
        } else {
            run.audio.process(buffer.as_slice(), &events[..n]);
        }
        self.running = Some(run);
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
