//! No syscall on the audio thread, machine-checked: the endpoint's audio side
//! (`AudioSide::process`, `reset`, knob writes as the host's device callback
//! makes them) runs on a seccomp-confined thread for thousands of blocks while
//! the built-in model generates on the engine's workers — knob changes,
//! underruns and gap fill, lead inserts and drops, model output, resets. Any
//! syscall traps and fails the test with its number (see `antiphon_tests::seccomp`).
//!
//! Canaries prove the check can fail: a contended lock, a sleep, a log line and
//! an allocation made in the same harness are each trapped, with their syscall.
#![cfg(all(target_os = "linux", target_arch = "x86_64"))]

use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use antiphon_framework::clock::WallClock;
use antiphon_framework::endpoint::output_knobs;
use antiphon_framework::engine::{Engine, EngineConfig};
use antiphon_framework::lead::LeadSettings;
use antiphon_framework::rng::SplitMix64;
use antiphon_framework::synth::speechlike;
use antiphon_framework::{endpoint, EndpointConfig, OutputEvent, OutputParam};
use antiphon_nodes::graph::{canonical_graph, knob_bus};
use antiphon_nodes::ModelBundle;
use antiphon_tests::seccomp::{self, run_child, section, syscall_name, TRAP_EXIT};

const CHILD: &str = "endpoint_child";
const MODE_ENV: &str = "ANTIPHON_SECCOMP_MODE";
const DONE: &str = "SECCOMP_ENDPOINT_DONE";
const RATE: f64 = 48_000.0;
const BLOCKS: u64 = 3_000;
/// Blocks played without pacing (far faster than real time): generation cannot
/// keep up, so the output ring runs dry and the endpoint gap-fills.
const STARVE: std::ops::Range<u64> = 1_200..1_500;

/// A lock another thread holds forever (the contended-lock canary).
static HELD: Mutex<()> = Mutex::new(());

/// What the confined audio thread saw.
#[derive(Clone, Debug, Default)]
struct Seen {
    blocks: u64,
    samples: u64,
    wet_blocks: u64,
    knob_writes: u64,
    output_events: u64,
    resets: u64,
}

/// One deliberate realtime violation, made inside the confined thread.
fn canary(mode: &str) {
    match mode {
        "lock" => {
            section("canary: contended lock");
            drop(HELD.lock());
        }
        "sleep" => {
            section("canary: sleep");
            std::thread::sleep(Duration::from_millis(1));
        }
        "log" => {
            section("canary: log line");
            eprintln!("the audio thread logs");
        }
        "alloc" => {
            section("canary: allocation");
            std::hint::black_box(vec![1u8; 32 << 20]);
        }
        other => panic!("unknown mode {other}"),
    }
}

/// The child: the whole scenario, confined. `$ANTIPHON_SECCOMP_MODE` is
/// `clean` or a canary name (then the canary runs once model output flows).
#[test]
#[ignore = "run by the seccomp tests in a child process"]
fn endpoint_child() {
    let Ok(mode) = std::env::var(MODE_ENV) else {
        println!("skipped: {MODE_ENV} not set (a child process of the seccomp tests)");
        return;
    };
    if mode == "lock" {
        std::thread::spawn(|| {
            let _g = HELD.lock().unwrap();
            std::thread::sleep(Duration::from_secs(3600));
        });
        while HELD.try_lock().is_ok() {
            std::thread::yield_now();
        }
    }
    let bundle = ModelBundle::builtin().expect("built-in model");
    let graph = canonical_graph(&bundle, RATE, 1).unwrap();
    let knobs = knob_bus(&graph, [output_knobs(), LeadSettings::knobs()].concat()).unwrap();
    let (mut audio, gen) = endpoint(&EndpointConfig::new(RATE));
    let stats = audio.stats().clone();
    let engine = Engine::start(
        graph,
        gen,
        EngineConfig {
            workers: 2,
            ..Default::default()
        },
        knobs.clone(),
        WallClock::new(),
    );
    let bus = knobs.clone();
    // Allocated before confinement, like a driver's buffers.
    let mut block = vec![vec![0.0f32; 1024]; 2];
    let seen = seccomp::run_confined(Duration::from_secs(120), move || {
        let mut rng = SplitMix64::new(7);
        let mut events = [OutputEvent {
            offset: 0,
            param: OutputParam::GainDb,
            value: 0.0,
        }; 2];
        let mut seen = Seen::default();
        let mut clock = 0u64;
        let mut canary_done = mode == "clean";
        let t0 = Instant::now();
        for b in 0..BLOCKS {
            let n = rng.range(1, 513) as usize;
            section("harness: input");
            for ch in block.iter_mut() {
                for (i, x) in ch[..n].iter_mut().enumerate() {
                    *x = speechlike(clock + i as u64, RATE);
                }
            }
            // Output-stage automation inside the block, every 4th block.
            let mut ev = 0;
            if b % 4 == 0 {
                events[0] = OutputEvent {
                    offset: rng.range(0, n as u64) as u32,
                    param: OutputParam::GainDb,
                    value: -(rng.range(0, 13) as f32),
                };
                events[1] = OutputEvent {
                    offset: n as u32 - 1,
                    param: OutputParam::Mix,
                    value: if b % 40 == 0 { 0.5 } else { 1.0 },
                };
                ev = 2;
                seen.output_events += 2;
            }
            // Generation-side knobs as the host's device callback writes them:
            // sampling, decoder, lead floor (inserts, then drops), model reset.
            section("KnobBus::set_by_id");
            let knob = match b % 300 {
                50 => Some(("audio_temperature", rng.next_f64() as f32)),
                100 => Some(("codebook_depth", rng.range(1, 9) as f32)),
                150 => Some(("lead_floor_ms", 300.0)),
                250 => Some(("lead_floor_ms", 40.0)),
                299 if b > 1_500 => Some(("reset", 1.0)),
                _ => None,
            };
            if let Some((id, v)) = knob {
                bus.set_by_id(id, v, clock).expect("known knob");
                seen.knob_writes += 1;
            }
            section("AudioSide::process");
            {
                let [l, r] = &mut block[..] else {
                    unreachable!()
                };
                let mut chans = [&mut l[..n], &mut r[..n]];
                audio.process(&mut chans, &events[..ev]);
            }
            section("harness: output check");
            if block[0][..n]
                .iter()
                .enumerate()
                .any(|(i, y)| *y != 0.0 && *y != speechlike(clock + i as u64, RATE))
            {
                seen.wet_blocks += 1;
            }
            if b % 700 == 699 {
                section("AudioSide::reset");
                audio.reset();
                seen.resets += 1;
            }
            if !canary_done && seen.wet_blocks > 200 {
                canary(&mode);
                canary_done = true;
            }
            clock += n as u64;
            seen.blocks += 1;
            seen.samples += n as u64;
            section("harness: pacing");
            if !STARVE.contains(&b) {
                seccomp::sleep_until(t0 + Duration::from_secs_f64(clock as f64 / RATE));
            }
        }
        seen
    });
    let report = engine.stop();
    println!(
        "{DONE} blocks={} samples={} wet_blocks={} knob_writes={} output_events={} resets={} \
         underrun_callbacks={} gap_samples={} lead_inserted_ms={:.0} lead_dropped_ms={:.0} frames={}",
        seen.blocks,
        seen.samples,
        seen.wet_blocks,
        seen.knob_writes,
        seen.output_events,
        seen.resets,
        stats.underrun_callbacks.load(Ordering::Relaxed),
        stats.gap_samples.load(Ordering::Relaxed),
        report.lead_inserted_ms,
        report.lead_dropped_ms,
        report.frames,
    );
    // The confined thread never exits; end the child here.
    std::process::exit(0);
}

fn figure(line: &str, key: &str) -> f64 {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {line}"))
}

#[test]
fn audio_side_makes_no_syscall_through_a_whole_session() {
    let out = run_child(CHILD, &[(MODE_ENV, "clean")]);
    let line = out.summary(DONE);
    assert!(
        out.status.success() && line.is_some(),
        "the confined audio thread made a syscall or failed: {}",
        out.describe()
    );
    let line = line.unwrap();
    println!("{line}");
    let f = |k| figure(&line, k);
    assert_eq!(f("blocks"), BLOCKS as f64);
    // The scenario really covered what it claims.
    assert!(
        f("wet_blocks") > 0.6 * BLOCKS as f64,
        "model output in most blocks"
    );
    assert!(
        f("underrun_callbacks") > 0.0,
        "no underrun: gap fill not exercised"
    );
    assert!(f("gap_samples") > 0.0);
    assert!(f("lead_inserted_ms") > 0.0, "no lead insert happened");
    assert!(f("lead_dropped_ms") > 0.0, "no lead drop happened");
    assert!(f("resets") >= 4.0 && f("knob_writes") >= 40.0);
}

/// Each canary is trapped, and the report names its syscall.
#[test]
fn canaries_are_trapped_with_their_syscall() {
    for (mode, expected) in [
        ("lock", &["futex"][..]),
        ("sleep", &["clock_nanosleep", "nanosleep"]),
        ("log", &["write", "writev"]),
        ("alloc", &["mmap", "brk"]),
    ] {
        let out = run_child(CHILD, &[(MODE_ENV, mode)]);
        let (nr, where_) = out
            .trapped()
            .unwrap_or_else(|| panic!("canary `{mode}` was not trapped: {}", out.describe()));
        println!(
            "canary {mode}: trapped syscall {nr} ({}) in `{where_}`",
            syscall_name(nr)
        );
        assert_eq!(
            out.status.code(),
            Some(TRAP_EXIT),
            "{mode}: {}",
            out.describe()
        );
        assert!(
            expected.contains(&syscall_name(nr)),
            "canary `{mode}` trapped {nr} ({}), expected {expected:?}",
            syscall_name(nr)
        );
        assert!(where_.starts_with("canary"), "{mode} trapped in `{where_}`");
        assert!(!out.stdout.contains(DONE));
    }
}
