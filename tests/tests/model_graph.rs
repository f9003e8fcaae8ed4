//! The full canonical graph on the built-in model, scheduled by the engine:
//! offline speed, determinism across worker counts and seeds, and a 60 s run
//! paced by the virtual device's wall clock (48 kHz, 256-sample blocks).

use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use antiphon_framework::clock::WallClock;
use antiphon_framework::device::{BlockSizes, Pacing as DevicePacing, VirtualDevice};
use antiphon_framework::engine::{render_offline, Engine, EngineConfig};
use antiphon_framework::synth::speechlike;
use antiphon_framework::{endpoint, EndpointConfig};
use antiphon_nodes::graph::{canonical_graph, knob_bus};
use antiphon_nodes::ModelBundle;

const RATE: f64 = 48_000.0;

/// The tests here run one at a time: an offline render uses every core, and
/// beside it the wall-clock test would measure the render, not the engine.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

fn voice(seconds: f64) -> Vec<f32> {
    (0..(seconds * RATE) as u64)
        .map(|n| speechlike(n, RATE))
        .collect()
}

fn render(
    workers: usize,
    seed: u64,
    seconds: f64,
) -> (Vec<f32>, antiphon_framework::report::Report) {
    let bundle = ModelBundle::builtin().expect("built-in model loads");
    let graph = canonical_graph(&bundle, RATE, seed).unwrap();
    let knobs = knob_bus(&graph, vec![]).unwrap();
    let (out, report, _) = render_offline(
        graph,
        voice(seconds),
        EngineConfig {
            workers,
            ..Default::default()
        },
        knobs,
    )
    .expect("the render succeeds");
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    (out, report)
}

#[test]
fn offline_render_is_fast_and_deterministic_across_workers_and_seeds() {
    let _serial = one_at_a_time();
    let (a, r) = render(1, 7, 8.0);
    let stages: Vec<String> = r
        .stages_ms
        .iter()
        .map(|(k, v)| format!("{k} p50 {:.2} p99 {:.2}", v.p50, v.p99))
        .collect();
    eprintln!(
        "offline, 8 s @ 48 kHz, 1 worker: compute RTF {:.3}, wall {:.2} s\n  {}",
        r.rtf,
        r.wall_seconds,
        stages.join("\n  ")
    );
    assert_eq!(a.len(), voice(8.0).len());
    assert!(a.iter().all(|x| x.is_finite()));
    assert!(a.iter().any(|x| x.abs() > 1e-4), "the model produced sound");
    // The report's compute RTF (stage time per second of audio, what `bench`
    // prints) against the target: a quarter of real time.
    assert!(r.rtf < 0.25, "compute RTF {:.3} ≥ 0.25", r.rtf);
    for w in [2, 4] {
        let (b, _) = render(w, 7, 8.0);
        assert!(
            a.len() == b.len() && a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()),
            "{w} workers changed the output"
        );
    }
    let (c, _) = render(2, 8, 8.0);
    assert_ne!(a, c, "another seed gives another output");
}

#[test]
fn sixty_seconds_on_the_wall_clock_without_underruns_after_warmup() {
    let _serial = one_at_a_time();
    let bundle = ModelBundle::builtin().unwrap();
    let graph = canonical_graph(&bundle, RATE, 1).unwrap();
    let knobs = knob_bus(&graph, vec![]).unwrap();
    let (mut audio, gen) = endpoint(&EndpointConfig::new(RATE));
    let stats = audio.stats().clone();
    let engine = Engine::start(
        graph,
        gen,
        EngineConfig {
            workers: 2,
            ..Default::default()
        },
        knobs,
        WallClock::new(),
    );
    let seconds = 60.0;
    let device = thread::spawn(move || {
        let dev = VirtualDevice::new(RATE, 2, BlockSizes::Fixed(256), DevicePacing::WallClock)
            .realtime_priority(true);
        // The device thread can itself be descheduled on a loaded 2-core
        // machine (seen in CI: 630 of 11 250 callbacks late). Its catch-up then
        // plays a burst of blocks in no time, which drains any lead: a glitch a
        // sound card would make too, but not the engine's doing. So each
        // callback notes how late it started, and underruns within a second of
        // a device lateness over 10 ms are counted apart.
        let mut t0 = None;
        let mut excused_until = 0u64;
        let (mut judged, mut excused, mut judged_underruns, mut excused_underruns) =
            (0u64, 0u64, 0u64, 0u64);
        let run = dev.run((seconds * RATE) as u64, |b| {
            let now = Instant::now();
            let t0 = *t0.get_or_insert(now);
            let due = t0 + Duration::from_secs_f64(b.start as f64 / RATE);
            if now.saturating_duration_since(due) > Duration::from_millis(10) {
                excused_until = b.start + RATE as u64;
            }
            for ch in b.channels.iter_mut() {
                for (i, x) in ch.iter_mut().enumerate() {
                    *x = speechlike(b.start + i as u64, RATE);
                }
            }
            let before = audio.stats().underrun_callbacks.load(Ordering::Relaxed);
            audio.process(b.channels, &[]);
            let under = audio.stats().underrun_callbacks.load(Ordering::Relaxed) - before;
            if b.start < excused_until {
                excused += 1;
                excused_underruns += under;
            } else {
                judged += 1;
                judged_underruns += under;
            }
            true
        });
        (run, judged, excused, judged_underruns, excused_underruns)
    });
    let (run, judged, excused, judged_underruns, excused_underruns) = device.join().unwrap();
    let r = engine.stop();
    eprintln!("{}", r.summary(true));
    let stages: Vec<String> = r
        .stages_ms
        .iter()
        .map(|(k, v)| format!("{k} p50 {:.2} p99 {:.2}", v.p50, v.p99))
        .collect();
    eprintln!("paced 60 s @ 48 kHz/256: {}", stages.join(", "));
    eprintln!(
        "virtual device (realtime priority: {}): {} callbacks, {} late; \
         judged {judged} callbacks ({judged_underruns} underruns), \
         {excused} within 1 s of a device lateness > 10 ms ({excused_underruns} underruns)",
        run.realtime, run.callbacks, run.xruns
    );
    if judged * 2 < run.callbacks {
        eprintln!(
            "SKIPPED the underrun check: the machine kept the device on time for only \
             {judged} of {} callbacks, too few to judge the engine",
            run.callbacks
        );
        return;
    }
    assert!(r.frames >= 700, "generated {} frames", r.frames);
    // The controller covers the production times it has measured; a first
    // spike past all of them (a worker descheduled 40 ms on a shared 2-core
    // box) can still cost one short gap before the attack. Allowed: 1 in 2 000
    // callbacks. Deliberate break: no floor, no margin and the median instead
    // of p99 gave 54 underruns in 11 002 judged callbacks.
    let allowed = judged / 2000;
    assert!(
        judged_underruns <= allowed,
        "{judged_underruns} underruns (> {allowed}) while the device kept time: {}",
        r.summary(true)
    );
    assert!(
        stats.first_output_at.load(Ordering::Relaxed) < (RATE as u64),
        "audio within the first second"
    );
}
