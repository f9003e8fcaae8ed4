//! Session behaviour a user would notice, on the built-in model with the audio
//! side driven like a device (wall clock, 20 ms blocks): dry while loading,
//! generated audio once ready, model changes, failures, removed folders, and
//! host threads that never wait.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use antiphon_framework::synth::speechlike;

use super::*;
use crate::builtin::write_builtin;

const RATE: f64 = 48_000.0;
const BLOCK: usize = 960; // 20 ms
const FRAME_S: f64 = 0.08;

/// The audio side driven like a device callback on the wall clock.
struct Device {
    audio: AudioSide,
    gate: DryUntilReady,
    pos: u64,
    t0: Instant,
    input: Vec<f32>,
    output: Vec<f32>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Heard {
    /// Exactly the input.
    Dry,
    /// The model's audio: no gap fill in the block, finite, not the input.
    Generated,
    /// Anything else (gap fill, crossfades).
    Other,
}

impl Device {
    fn new(audio: AudioSide) -> Self {
        Self {
            audio,
            gate: DryUntilReady::default(),
            pos: 0,
            t0: Instant::now(),
            input: vec![0.0; BLOCK],
            output: vec![0.0; BLOCK],
        }
    }

    /// One block, paced so blocks come at the audio rate.
    fn block(&mut self, s: &Session) -> Heard {
        let due = self.t0 + Duration::from_secs_f64(self.pos as f64 / RATE);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        for (i, x) in self.input.iter_mut().enumerate() {
            *x = 0.5 * speechlike(self.pos + i as u64, RATE);
        }
        self.output.copy_from_slice(&self.input);
        let ev = self.gate.event(s.state() == State::Ready, false);
        let gaps = self.audio.stats().gap_samples.load(Ordering::Relaxed);
        self.audio
            .process(&mut [&mut self.output[..]], ev.as_slice());
        self.pos += BLOCK as u64;
        let gapped = self.audio.stats().gap_samples.load(Ordering::Relaxed) > gaps;
        let differs = self
            .output
            .iter()
            .zip(&self.input)
            .filter(|(o, i)| o != i)
            .count();
        if self.output == self.input {
            Heard::Dry
        } else if !gapped
            && self.output.iter().all(|x| x.is_finite())
            && differs >= BLOCK * 9 / 10
            && self.output.iter().any(|x| *x != 0.0)
        {
            Heard::Generated
        } else {
            Heard::Other
        }
    }

    /// Runs blocks until `until` holds (or `limit` seconds of audio); returns
    /// the blocks run.
    fn run_until(
        &mut self,
        s: &Session,
        limit: f64,
        mut until: impl FnMut(Heard, &Session) -> bool,
    ) -> Option<usize> {
        for n in 0..(limit * RATE / BLOCK as f64) as usize {
            if until(self.block(s), s) {
                return Some(n + 1);
            }
        }
        None
    }
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("antiphon-session-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn session(cfg: SessionConfig) -> (Device, Session) {
    let (audio, s) = Session::start(cfg).unwrap();
    (Device::new(audio), s)
}

/// Blocks from the model becoming ready to the first generated block; the
/// model must become ready within `limit` seconds.
fn blocks_to_audio_after_ready(dev: &mut Device, s: &Session, limit: f64) -> usize {
    dev.run_until(s, limit, |_, s| s.state() == State::Ready)
        .unwrap_or_else(|| panic!("not ready within {limit} s: {:?}", s.status()));
    dev.run_until(s, 3.0, |h, _| h == Heard::Generated)
        .unwrap_or_else(|| panic!("ready but no generated audio within 3 s: {:?}", s.status()))
}

/// Most blocks one may wait for generated audio after the model is ready:
/// 3 frames, plus one block for the bypass crossfade.
fn three_frames() -> usize {
    (3.0 * FRAME_S * RATE / BLOCK as f64).ceil() as usize + 1
}

#[test]
fn the_builtin_model_loads_in_the_background_and_is_heard() {
    let (mut dev, s) = session(SessionConfig::new(RATE));
    // Dry from the first block while it loads.
    assert_eq!(dev.block(&s), Heard::Dry);
    let n = blocks_to_audio_after_ready(&mut dev, &s, 30.0);
    assert!(
        n <= three_frames(),
        "{n} blocks from ready to generated audio"
    );
    // And it stays: 2 s of audio, nearly all generated.
    let mut heard = 0;
    let total = (2.0 * RATE / BLOCK as f64) as usize;
    for _ in 0..total {
        heard += (dev.block(&s) == Heard::Generated) as usize;
    }
    assert!(
        heard * 10 >= total * 9,
        "{heard} of {total} blocks generated"
    );
    let st = s.status();
    assert_eq!((st.state, st.model.as_str()), (State::Ready, "builtin"));
    assert!(s.report().unwrap().frames >= 20);
}

/// A loader that takes `secs` unless cancelled; flags when it started and
/// when it gave up.
fn slow_loader(secs: f64, started: Arc<AtomicBool>, gave_up: Arc<AtomicBool>) -> LoadFn {
    Arc::new(move |c, cancel| {
        started.store(true, Ordering::Release);
        let t0 = Instant::now();
        while t0.elapsed().as_secs_f64() < secs {
            if cancel.is_cancelled() {
                gave_up.store(true, Ordering::Release);
                return Err("cancelled".into());
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        load_model(c)
    })
}

#[test]
fn dropping_the_session_during_a_10_s_load_returns_at_once_and_cancels_it() {
    let gave_up = Arc::new(AtomicBool::new(false));
    let mut cfg = SessionConfig::new(RATE);
    cfg.model = ModelChoice::Dir("/slow/model".into());
    cfg.loader = slow_loader(10.0, Default::default(), gave_up.clone());
    let (mut dev, s) = session(cfg);
    for _ in 0..10 {
        assert_eq!(dev.block(&s), Heard::Dry, "dry while loading");
    }
    assert_eq!(s.state(), State::Loading);
    let t0 = Instant::now();
    drop(s);
    drop(dev);
    let took = t0.elapsed();
    println!(
        "drop during a 10 s load took {:.3} ms",
        took.as_secs_f64() * 1e3
    );
    assert!(took < Duration::from_millis(50), "drop took {took:?}");
    let t1 = Instant::now();
    while !gave_up.load(Ordering::Acquire) && t1.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        gave_up.load(Ordering::Acquire),
        "the load was not cancelled"
    );
}

#[test]
fn changing_the_model_during_a_slow_load_never_waits() {
    let gave_up = Arc::new(AtomicBool::new(false));
    let mut cfg = SessionConfig::new(RATE);
    cfg.model = ModelChoice::Dir("/slow/model".into());
    let started = Arc::new(AtomicBool::new(false));
    let slow = slow_loader(10.0, started.clone(), gave_up.clone());
    cfg.loader = Arc::new(move |c, cancel| match c {
        ModelChoice::Builtin => load_model(c),
        _ => slow(c, cancel),
    });
    let (mut dev, s) = session(cfg);
    dev.run_until(&s, 2.0, |_, _| started.load(Ordering::Acquire))
        .expect("the slow load started");
    let t0 = Instant::now();
    s.set_model(ModelChoice::Builtin);
    assert!(t0.elapsed() < Duration::from_millis(5), "set_model waited");
    let n = blocks_to_audio_after_ready(&mut dev, &s, 30.0);
    assert!(n <= three_frames(), "{n} blocks");
    assert!(
        gave_up.load(Ordering::Acquire),
        "the abandoned load was not cancelled"
    );
}

#[test]
fn model_change_while_running_is_heard_within_3_frames_of_ready() {
    let other = tmp("other-model");
    write_builtin(&other, 5).unwrap();
    let (mut dev, s) = session(SessionConfig::new(RATE));
    blocks_to_audio_after_ready(&mut dev, &s, 30.0);
    // Run a while, so the audio clock is well ahead of any new engine's start.
    dev.run_until(&s, 3.0, |_, _| false);
    s.set_model(ModelChoice::Dir(other.clone()));
    // Loading: dry (after the bypass crossfade).
    dev.run_until(&s, 1.0, |_, s| s.state() != State::Ready);
    let n = blocks_to_audio_after_ready(&mut dev, &s, 30.0);
    println!("model change: generated audio {n} block(s) of 20 ms after ready");
    assert!(
        n <= three_frames(),
        "{n} blocks from ready to generated audio"
    );
    assert_eq!(s.status().model, other.display().to_string());
    let _ = std::fs::remove_dir_all(&other);
}

#[test]
fn a_model_that_fails_after_a_working_one_gives_a_reason_and_dry_audio_then_recovers() {
    let (mut dev, s) = session(SessionConfig::new(RATE));
    blocks_to_audio_after_ready(&mut dev, &s, 30.0);
    let bad = tmp("not-a-model");
    std::fs::create_dir_all(&bad).unwrap();
    s.set_model(ModelChoice::Dir(bad.clone()));
    dev.run_until(&s, 10.0, |_, s| s.state() == State::Failed)
        .expect("failed status");
    let st = s.status();
    assert!(st.reason.contains(&bad.display().to_string()), "{st:?}");
    assert!(st.reason.contains("has no"), "says what is missing: {st:?}");
    // Dry, exactly, once the bypass crossfade is over.
    dev.block(&s);
    for _ in 0..20 {
        assert_eq!(dev.block(&s), Heard::Dry);
    }
    s.set_model(ModelChoice::Builtin);
    let n = blocks_to_audio_after_ready(&mut dev, &s, 30.0);
    assert!(n <= three_frames(), "{n} blocks");
    let _ = std::fs::remove_dir_all(&bad);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn a_model_folder_removed_while_in_use_keeps_playing_and_is_reported_when_chosen_again() {
    let dir = tmp("removed-model");
    write_builtin(&dir, 9).unwrap();
    let keep = tmp("removed-model-backup");
    copy_dir(&dir, &keep);
    let mut cfg = SessionConfig::new(RATE);
    cfg.model = ModelChoice::Dir(dir.clone());
    let (mut dev, s) = session(cfg.clone());
    blocks_to_audio_after_ready(&mut dev, &s, 30.0);
    std::fs::remove_dir_all(&dir).unwrap();
    // The weights are in memory: the running stream carries on.
    let mut heard = 0;
    for _ in 0..25 {
        heard += (dev.block(&s) == Heard::Generated) as usize;
    }
    assert!(
        heard >= 22,
        "{heard} of 25 blocks generated after the folder went away"
    );
    drop(s);
    // A re-activation (a new session on the same choice) says what happened.
    let (mut dev, s) = session(cfg);
    dev.run_until(&s, 10.0, |_, s| s.state() == State::Failed)
        .expect("failed status");
    let why = s.status().reason;
    assert!(
        why.contains("does not exist") && why.contains("choose"),
        "{why}"
    );
    assert_eq!(dev.block(&s), Heard::Dry);
    // Put it back and choose it again: it plays.
    copy_dir(&keep, &dir);
    s.set_model(ModelChoice::Dir(dir.clone()));
    blocks_to_audio_after_ready(&mut dev, &s, 30.0);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&keep);
}

#[test]
fn presets_set_knobs_and_model() {
    let (_dev, s) = session(SessionConfig::new(RATE));
    let p = Presets::new(Vec::new())
        .find("lofi", s.knobs().specs())
        .unwrap();
    s.apply_preset(&p).unwrap();
    let k = s.knobs();
    assert_eq!(k.latest(k.id("codebook_depth").unwrap()), 2.0);
    assert_eq!(k.latest(k.id("mix").unwrap()), 0.8);
    assert_eq!(s.model(), ModelChoice::Builtin);
}

/// A fault switch for one stage: while `panic` is on the stage panics; while
/// `stall` is on it blocks (as a starved or hung worker would).
#[derive(Clone, Default)]
struct Faults {
    panic: Arc<AtomicBool>,
    stall: Arc<AtomicBool>,
}

struct Faulty {
    inner: Box<dyn Node>,
    faults: Faults,
}

impl Node for Faulty {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn inputs(&self) -> Vec<antiphon_framework::node::PortSpec> {
        self.inner.inputs()
    }
    fn outputs(&self) -> Vec<antiphon_framework::node::PortSpec> {
        self.inner.outputs()
    }
    fn knobs(&self) -> Vec<KnobSpec> {
        self.inner.knobs()
    }
    fn process(
        &mut self,
        cx: &antiphon_framework::node::FrameContext,
        inputs: &[antiphon_framework::node::Payload],
        outputs: &mut [antiphon_framework::node::Payload],
    ) -> Result<(), antiphon_framework::node::NodeError> {
        if self.faults.panic.load(Ordering::Acquire) {
            panic!("injected fault");
        }
        while self.faults.stall.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(1));
        }
        self.inner.process(cx, inputs, outputs)
    }
    fn reset(&mut self) {
        self.inner.reset()
    }
}

fn faulty_decoder(faults: &Faults) -> WrapFn {
    let f = faults.clone();
    Arc::new(move |name: &str, node: Box<dyn Node>| -> Box<dyn Node> {
        if name == "decoder" {
            Box::new(Faulty {
                inner: node,
                faults: f.clone(),
            })
        } else {
            node
        }
    })
}

#[test]
fn a_generation_panic_gives_a_reason_and_dry_audio_and_the_stream_recovers() {
    let faults = Faults::default();
    let mut cfg = SessionConfig::new(RATE);
    cfg.wrap = Some(faulty_decoder(&faults));
    let (mut dev, s) = session(cfg);
    blocks_to_audio_after_ready(&mut dev, &s, 30.0);
    faults.panic.store(true, Ordering::Release);
    dev.run_until(&s, 2.0, |_, s| s.state() == State::Failed)
        .expect("failed status after a panic");
    let why = s.status().reason;
    assert!(
        why.contains("decoder") && why.contains("injected fault"),
        "{why}"
    );
    // Dry (after the crossfade), while the cause lasts.
    dev.block(&s);
    let heard: Vec<Heard> = (0..50).map(|_| dev.block(&s)).collect();
    assert!(heard.iter().all(|h| *h == Heard::Dry), "{heard:?}");
    // The cause goes away: the session restarts the stream (within a second).
    faults.panic.store(false, Ordering::Release);
    let n = dev
        .run_until(&s, 3.0, |h, _| h == Heard::Generated)
        .expect("generated audio after recovery");
    println!(
        "after a decoder panic: generated audio again {:.0} ms after the cause went away",
        n as f64 * 20.0
    );
    assert_eq!(s.state(), State::Ready);
}

#[test]
fn a_reset_during_a_stall_never_waits_and_the_stream_comes_back() {
    let faults = Faults::default();
    let mut cfg = SessionConfig::new(RATE);
    cfg.wrap = Some(faulty_decoder(&faults));
    let (mut dev, s) = session(cfg);
    blocks_to_audio_after_ready(&mut dev, &s, 30.0);
    faults.stall.store(true, Ordering::Release);
    dev.run_until(&s, 0.5, |_, _| false);
    let t0 = Instant::now();
    s.request_reset();
    let took = t0.elapsed();
    // The stall goes on for a while after the reset request.
    dev.run_until(&s, 1.0, |_, _| false);
    faults.stall.store(false, Ordering::Release);
    let n = dev
        .run_until(&s, 3.0, |h, _| h == Heard::Generated)
        .expect("generated audio after the stall");
    println!(
        "reset during a stall: request {:.3} ms; generated audio {} ms after the stall ended",
        took.as_secs_f64() * 1e3,
        n * 20
    );
    assert!(took < Duration::from_millis(1), "{took:?}");
    // The reset restarts the engine once the stalled stage returns: a fresh
    // engine's first frame, plus its start, on a loaded machine.
    assert!(n * 20 <= 1000, "{} ms after the stall", n * 20);
    assert_eq!(s.state(), State::Ready);
}

#[test]
fn a_worker_panic_during_an_offline_render_ends_the_wait_with_a_reason() {
    use antiphon_framework::engine::RunMode;
    let faults = Faults::default();
    let mut cfg = SessionConfig::new(RATE);
    cfg.wrap = Some(faulty_decoder(&faults));
    cfg.engine.mode = RunMode::Offline;
    cfg.start_dry = false;
    let (mut audio, s) = Session::start(cfg).unwrap();
    assert_eq!(s.wait_ready(Duration::from_secs(30)), State::Ready);
    let mut block = vec![0.0f32; 4096];
    let timeout = Duration::from_secs(1);
    for i in 0..20u64 {
        for (k, x) in block.iter_mut().enumerate() {
            *x = 0.5 * speechlike(i * 4096 + k as u64, RATE);
        }
        assert!(
            audio.process_offline(&mut [&mut block[..]], &[], timeout),
            "block {i}"
        );
    }
    faults.panic.store(true, Ordering::Release);
    let t0 = Instant::now();
    let mut complete = true;
    for _ in 0..10 {
        complete &= audio.process_offline(&mut [&mut block[..]], &[], timeout);
        if !complete {
            break;
        }
    }
    let took = t0.elapsed();
    println!(
        "offline render with a panicking worker: the wait ended after {:.2} s",
        took.as_secs_f64()
    );
    assert!(!complete, "a render whose generator panics cannot complete");
    assert!(took < Duration::from_secs(3), "{took:?}");
    s.wait_ready(Duration::from_millis(100));
    let st = s.status();
    assert_eq!(st.state, State::Failed, "{st:?}");
    assert!(st.reason.contains("injected fault"), "{st:?}");
}
