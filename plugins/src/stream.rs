//! The plugin's side of the session core: a [`SessionConfig`] made from the
//! plugin's state, and the session's log routed to nice-plug's log.
//!
//! The session ([`antiphon_nodes::session`]) loads the model in the background
//! (cached across activations and instances), runs the canonical graph on the
//! engine, follows the persisted model folder, and reports status. The audio
//! thread passes audio through dry until the session is ready.

use std::sync::{Arc, RwLock};

use antiphon_framework::engine::{EngineConfig, RunMode};
use antiphon_nodes::session::{Level, ModelChoice, SessionConfig};

use crate::knob_table;

/// The model folder as persisted (`""` = built-in).
fn choice(model_dir: &RwLock<String>) -> ModelChoice {
    ModelChoice::parse(&model_dir.read().map(|s| s.clone()).unwrap_or_default())
}

/// Session settings for an activation at `sample_rate`, following `model_dir`;
/// `offline` when the host renders offline (generation is waited for).
pub fn config(sample_rate: f64, model_dir: &Arc<RwLock<String>>, offline: bool) -> SessionConfig {
    let mut cfg = SessionConfig::new(sample_rate);
    cfg.model = choice(model_dir);
    cfg.knobs = knob_table::specs();
    cfg.start_dry = !offline;
    cfg.engine = EngineConfig {
        workers: 2,
        mode: if offline {
            RunMode::Offline
        } else {
            RunMode::Realtime
        },
        ..Default::default()
    };
    cfg.log = Some(Arc::new(|level, msg| match level {
        Level::Error => nice_plug::nice_error!("Antiphon: {msg}"),
        Level::Info => nice_plug::nice_log!("Antiphon: {msg}"),
    }));
    let dir = model_dir.clone();
    cfg.follow = Some(Arc::new(move || choice(&dir)));
    #[cfg(feature = "test-hooks")]
    {
        cfg.loader = slow_loader_for_tests();
    }
    cfg
}

/// Test builds only: a model folder holding `TEST_DELAY_FILE` (a number of
/// milliseconds) loads that much later, so tests can hold a load in progress.
#[cfg(feature = "test-hooks")]
pub const TEST_DELAY_FILE: &str = "antiphon-test-load-delay-ms";

#[cfg(feature = "test-hooks")]
fn slow_loader_for_tests() -> antiphon_nodes::session::LoadFn {
    use antiphon_nodes::session::load_model;
    Arc::new(|c, cancel| {
        if let ModelChoice::Dir(d) = c {
            let ms: u64 = std::fs::read_to_string(d.join(TEST_DELAY_FILE))
                .ok()
                .and_then(|t| t.trim().parse().ok())
                .unwrap_or(0);
            let t0 = std::time::Instant::now();
            while t0.elapsed().as_millis() < ms as u128 {
                if cancel.is_cancelled() {
                    return Err("cancelled".into());
                }
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        }
        load_model(c)
    })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use antiphon_framework::OutputEvent;
    use antiphon_nodes::session::{DryUntilReady, Session, State};

    use super::*;

    /// Runs 20 ms blocks of a 220 Hz tone on the wall clock until `until`
    /// holds for a block's output (or `secs` pass); returns whether it did.
    fn play(
        audio: &mut antiphon_framework::AudioSide,
        s: &Session,
        gate: &mut DryUntilReady,
        secs: f64,
        mut until: impl FnMut(&[f32], &[f32], bool) -> bool,
    ) -> bool {
        let t0 = Instant::now();
        let mut pos = 0u64;
        while t0.elapsed().as_secs_f64() < secs {
            let input: Vec<f32> = (0..960)
                .map(|i| 0.3 * ((pos + i) as f32 * 220.0 * std::f32::consts::TAU / 48_000.0).sin())
                .collect();
            let mut out = input.clone();
            let ev: Vec<OutputEvent> = gate
                .event(s.state() == State::Ready, false)
                .into_iter()
                .collect();
            let gaps = audio
                .stats()
                .gap_samples
                .load(std::sync::atomic::Ordering::Relaxed);
            audio.process(&mut [&mut out[..]], &ev);
            let gapped = audio
                .stats()
                .gap_samples
                .load(std::sync::atomic::Ordering::Relaxed)
                > gaps;
            pos += 960;
            if until(&input, &out, gapped) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// A Ready session that stays silent would pass a status check: this one
    /// listens for the model's audio (not the input, not gap fill) after load.
    #[test]
    fn a_missing_folder_fails_with_a_reason_and_the_builtin_model_is_then_heard() {
        let dir = Arc::new(RwLock::new("/no/such/model".to_string()));
        let (mut audio, s) = Session::start(config(48_000.0, &dir, false)).unwrap();
        let mut gate = DryUntilReady::default();
        assert!(play(&mut audio, &s, &mut gate, 10.0, |_, _, _| s.state()
            == State::Failed));
        assert!(
            s.status().reason.contains("/no/such/model"),
            "{:?}",
            s.status()
        );
        // Failed: the input, untouched.
        assert!(play(&mut audio, &s, &mut gate, 1.0, |i, o, _| i == o));
        // The persisted folder changes (state load): the session follows it.
        *dir.write().unwrap() = String::new();
        assert!(play(&mut audio, &s, &mut gate, 30.0, |_, _, _| s.state()
            == State::Ready));
        let mut generated = 0;
        play(&mut audio, &s, &mut gate, 2.0, |i, o, gapped| {
            if !gapped && o.iter().zip(i).filter(|(a, b)| a != b).count() > 900 {
                generated += 1;
            }
            false
        });
        assert!(
            generated >= 60,
            "{generated} of ~100 blocks carried the model's audio"
        );
    }
}
