//! Antiphon as a CLAP + VST3 plugin (one code base, nice-plug wrappers).
//!
//! * [`knob_table`]: the knobs (ids, ranges, units, bindings).
//! * [`params`]: host parameters and persisted model directory / preset.
//! * [`state`]: saved-state sanitising (foreign or out-of-range → defaults).
//! * [`stream`]: the session core's settings for the plugin (model loading,
//!   the canonical graph on the engine, status: `antiphon_nodes::session`).
//! * [`presets`]: the presets (shipped ones compiled in, plus folders).
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
use std::time::Duration;

use antiphon_framework::{AudioSide, OutputEvent, OutputParam};
use antiphon_nodes::session::{DryUntilReady, Session, State, Status};
use nice_plug::prelude::*;

pub mod knob_table;
pub mod params;
pub mod presets;
pub mod state;
pub mod stream;

use antiphon_framework::knobs::Binding;
use knob_table::{Knob, KNOBS};
use params::AntiphonParams;

/// How long an offline render waits for the model at activation.
const OFFLINE_LOAD_TIMEOUT: Duration = Duration::from_secs(120);
/// How long one offline `process` call waits for generation before giving up
/// (the render then continues dry, with an error logged).
const OFFLINE_BLOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// A running stream: the endpoint's audio half and the session that feeds it.
struct Running {
    audio: AudioSide,
    session: Session,
    /// The host renders offline (a bounce): `process` waits for generation.
    offline: bool,
    /// An offline wait timed out: the rest of this render is dry.
    offline_failed: bool,
}

/// The plugin.
pub struct Antiphon {
    params: Arc<AntiphonParams>,
    running: Option<Running>,
    /// Last value sent per knob (NaN = never sent), so unchanged knobs cost nothing.
    sent: [f32; KNOBS.len()],
    /// Dry until the session is ready.
    gate: DryUntilReady,
}

impl Default for Antiphon {
    fn default() -> Self {
        Self {
            params: Arc::new(AntiphonParams::default()),
            running: None,
            sent: [f32::NAN; KNOBS.len()],
            gate: DryUntilReady::default(),
        }
    }
}

impl Antiphon {
    /// The session's status (model, loading/ready/failed and why), for hosts
    /// and editors that can show it (`None` while inactive).
    pub fn status(&self) -> Option<Status> {
        self.running.as_ref().map(|r| r.session.status())
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

    type Editor = ();
    type SysExMessage = ();
    type BackgroundTask = ();

    fn params(&self) -> Arc<dyn Params> {
        self.params.clone()
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
        let cfg = stream::config(config.sample_rate as f64, &self.params.model_dir, offline);
        match Session::start(cfg) {
            Ok((audio, session)) => {
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
                // A model with a fixed delay (the codec, rendering offline: the
                // model is loaded by now) reports it for delay compensation;
                // replies are new signals (0).
                let latency = session.fixed_delay_samples().unwrap_or(0);
                self.running = Some(Running {
                    audio,
                    session,
                    offline,
                    offline_failed: false,
                });
                // Everything is re-sent to the fresh endpoint on the first block.
                self.sent = [f32::NAN; KNOBS.len()];
                self.gate.reset();
                context.set_latency_samples(latency as u32);
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
        _context: &mut impl ProcessContext<Self>,
    ) -> ProcessStatus {
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
}

impl Vst3Plugin for Antiphon {
    const VST3_CLASS_ID: [u8; 16] = *b"AntiphonSpeech01";
    const VST3_SUBCATEGORIES: &'static [Vst3SubCategory] =
        &[Vst3SubCategory::Fx, Vst3SubCategory::Tools];
}

nice_export_clap!(Antiphon);
nice_export_vst3!(Antiphon);
