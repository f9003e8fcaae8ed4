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
use antiphon_tests::starvation::{self, Canary};

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
    // The machine is shared: other processes can take both cores for tens of
    // ms (the workers cannot run: a canary thread at their priority notices),
    // and can make the device thread itself late (seen in CI: 630 of 11 250
    // callbacks; its catch-up then plays a burst of blocks in no time, which
    // drains any lead, as a sound card would). Underruns near such times are
    // the machine's doing; the rest are the engine's.
    let base = Instant::now();
    let canary = Canary::start(base);
    let device = thread::spawn(move || {
        let dev = VirtualDevice::new(RATE, 2, BlockSizes::Fixed(256), DevicePacing::WallClock)
            .realtime_priority(true);
        let cap = (seconds * RATE) as usize / 256 + 1;
        let (mut late, mut underruns) = (Vec::with_capacity(cap), Vec::with_capacity(cap));
        let mut t0 = None;
        let run = dev.run((seconds * RATE) as u64, |b| {
            let now = Instant::now();
            let t0 = *t0.get_or_insert(now);
            let due = t0 + Duration::from_secs_f64(b.start as f64 / RATE);
            if now.saturating_duration_since(due) > Duration::from_millis(10) {
                late.push((starvation::ms(base, due), starvation::ms(base, now)));
            }
            for ch in b.channels.iter_mut() {
                for (i, x) in ch.iter_mut().enumerate() {
                    *x = speechlike(b.start + i as u64, RATE);
                }
            }
            let before = audio.stats().underrun_callbacks.load(Ordering::Relaxed);
            audio.process(b.channels, &[]);
            if audio.stats().underrun_callbacks.load(Ordering::Relaxed) > before {
                underruns.push(starvation::ms(base, now));
            }
            true
        });
        (run, late, underruns)
    });
    let (run, late, underruns) = device.join().unwrap();
    let starved = canary.finish();
    let r = engine.stop();
    eprintln!("{}", r.summary(true));
    let stages: Vec<String> = r
        .stages_ms
        .iter()
        .map(|(k, v)| format!("{k} p50 {:.2} p99 {:.2}", v.p50, v.p99))
        .collect();
    eprintln!("paced 60 s @ 48 kHz/256: {}", stages.join(", "));
    let windows: Vec<_> = late.iter().chain(&starved).copied().collect();
    let judged: Vec<_> = underruns
        .iter()
        .filter(|&&u| !starvation::near(u, &windows))
        .collect();
    let clear = starvation::clear_fraction(&windows, (seconds * 1000.0) as u64);
    eprintln!(
        "virtual device (realtime priority: {}): {} callbacks, {} late; canary starved {} times; \
         {:.0} % of the run clear of both; underrun callbacks {} ({} in the clear: {judged:?} ms)",
        run.realtime,
        run.callbacks,
        late.len(),
        starved.len(),
        clear * 100.0,
        underruns.len(),
        judged.len(),
    );
    assert!(r.frames >= 700, "generated {} frames", r.frames);
    if clear < 0.5 {
        eprintln!(
            "SKIPPED the underrun check: other processes held this machine for {:.0} % of \
             the run, too much to judge the engine",
            (1.0 - clear) * 100.0
        );
        return;
    }
    // The controller covers the production times it has measured; a first
    // spike past all of them can still cost one short gap before the attack.
    // Allowed: 1 callback in 2 000 of the clear time. Deliberate break: no
    // floor, no margin and the median instead of p99 gave 54 underruns.
    let allowed = (clear * run.callbacks as f64 / 2000.0) as usize;
    assert!(
        judged.len() <= allowed,
        "{} underruns (> {allowed}) while the machine gave the engine its cores: {}",
        judged.len(),
        r.summary(true)
    );
    assert!(
        stats.first_output_at.load(Ordering::Relaxed) < (RATE as u64),
        "audio within the first second"
    );
}
