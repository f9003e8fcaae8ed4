//! Loads the real built Antiphon `.clap` in a headless CLAP host (clack-host)
//! and checks the host contract: parameters, sample rates, random block sizes,
//! mid-block automation, reset/reactivate, state, dry pass-through.

mod common;

use std::path::PathBuf;
use std::sync::OnceLock;

use clack_host::prelude::*;
use common::*;

/// The plugin under test, with its test hook: a model folder holding
/// `antiphon-test-load-delay-ms` loads that many milliseconds late (inert
/// otherwise), so a load in progress can be held for as long as a test needs.
fn plugin() -> &'static PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| build_plugin("test-hooks", "antiphon-hooks"))
}

/// The built-in model written to a fresh folder, loading `delay_ms` late.
fn model_folder(name: &str, delay_ms: u64) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("antiphon-clap-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    antiphon_nodes::builtin::write_builtin(&dir, 11).unwrap();
    if delay_ms > 0 {
        std::fs::write(
            dir.join("antiphon-test-load-delay-ms"),
            delay_ms.to_string(),
        )
        .unwrap();
    }
    dir
}

const NAMES: [&str; 10] = [
    "Output gain",
    "Dry/wet",
    "Bypass",
    "Audio temperature",
    "Text temperature",
    "Top-k",
    "Codebook depth",
    "Latency mode (lead floor)",
    "Listen",
    "Reset conversation",
];

fn noise(rng: &mut Rng, buf: &mut [f32]) {
    for x in buf {
        *x = (rng.unit() as f32 - 0.5) * 0.8;
    }
}

#[test]
fn parameters_enumerate_by_name_with_ranges() {
    let mut p = load(plugin());
    let ps = p.enumerate();
    for n in NAMES {
        assert!(
            ps.iter().any(|q| q.name == n),
            "missing parameter {n:?} in {ps:?}"
        );
    }
    // nice-plug exposes float parameters normalised (0..1) and integers plain.
    let gain = p.param("Output gain");
    assert_eq!((gain.min, gain.max), (0.0, 1.0));
    assert!(
        (gain.default - 60.0 / 72.0).abs() < 1e-6,
        "0 dB default: {gain:?}"
    );
    // Integers are exposed as steps above their minimum (1 → 0).
    let close = |a: (f64, f64, f64), b: (f64, f64, f64)| {
        (a.0 - b.0).abs() < 1e-3 && (a.1 - b.1).abs() < 1e-3 && (a.2 - b.2).abs() < 1e-3
    };
    let k = p.param("Top-k");
    assert!(
        close((k.min, k.max, k.default), (0.0, 2047.0, 249.0)),
        "{k:?}"
    );
    let d = p.param("Codebook depth");
    assert!(close((d.min, d.max, d.default), (0.0, 7.0, 7.0)), "{d:?}");
    let proc_ = p.activate(48_000.0, 4096);
    assert_eq!(p.latency(), 0, "Antiphon reports zero latency (documented)");
    p.deactivate(proc_);
}

/// Events that undo the stress test's automation: 0 dB, 100 % wet, not
/// bypassed, the default 40 ms lead floor.
fn plain_mix(p: &mut Loaded) -> EventBuffer {
    let mut e = EventBuffer::with_capacity(4);
    e.push(&param_event(0, p.param("Output gain").id, 60.0 / 72.0));
    e.push(&param_event(0, p.param("Dry/wet").id, 1.0));
    e.push(&param_event(0, p.param("Bypass").id, 0.0));
    e.push(&param_event(
        0,
        p.param("Latency mode (lead floor)").id,
        40.0 / 500.0,
    ));
    e
}

/// Least share of 10 ms blocks carrying generated audio once the model plays.
/// On a quiet machine the share is 90–100 % (printed). This 2-core machine,
/// shared with other builds (load average 12–16), starves generation at times
/// (29 % seen at 192 kHz), so the bound only separates "plays, with gaps under
/// load" from the failures it must catch: silent for good after a reset
/// (0–15 % measured before the session restarted its engine on reset).
const HEARD: f64 = 0.25;

/// Waits (at most 10 s) for the model's audio, then listens for one second of
/// 10 ms blocks paced like a sound card; returns the share of blocks that
/// carried generated audio in that second.
fn share_generated(
    proc_: &mut StartedPluginAudioProcessor<TestHost>,
    io: &mut Io,
    rate: f64,
    first: &EventBuffer,
    what: &str,
) -> f64 {
    let n = (rate / 100.0).round() as usize;
    let waited = play(proc_, io, rate, n, 10.0, first, |h| {
        h.last() == Some(&Heard::Generated)
    });
    assert_eq!(
        waited.last(),
        Some(&Heard::Generated),
        "{what} at {rate} Hz: no generated audio within 10 s"
    );
    let heard = play(proc_, io, rate, n, 1.0, &EventBuffer::new(), |_| false);
    heard.iter().filter(|h| **h == Heard::Generated).count() as f64 / heard.len() as f64
}

#[test]
fn any_rate_any_block_size_automation_reset_and_reactivate() {
    let mut p = load(plugin());
    let ids: Vec<Param> = NAMES.iter().map(|n| p.param(n)).collect();
    let plain = plain_mix(&mut p);
    let mut rng = Rng(0x5eed);
    let mut io = Io::new(4096);
    let mut events = EventBuffer::with_capacity(64);
    let (mut blocks, mut samples) = (0u64, 0u64);
    let rates = [
        8_000.0, 22_050.0, 44_100.0, 48_000.0, 96_000.0, 192_000.0, 44_099.5,
    ];
    let mut shares = Vec::new();
    for (ri, &rate) in rates.iter().enumerate() {
        let mut proc_ = p.activate(rate, 4096);
        let before = share_generated(&mut proc_, &mut io, rate, &plain, "after activation");
        for b in 0..300u32 {
            let n = 1 + rng.below(4096) as usize;
            // Silence a third of the time, noise otherwise.
            for ch in io.input.iter_mut() {
                if b % 3 == 0 {
                    ch[..n].fill(0.0);
                } else {
                    noise(&mut rng, &mut ch[..n]);
                }
            }
            events.clear();
            let mut offs: Vec<u32> = (0..rng.below(4))
                .map(|_| rng.below(n as u64) as u32)
                .collect();
            offs.sort();
            for off in offs {
                // Any knob but bypass (kept off so the wet path is exercised).
                let q = &ids[[0, 1, 3, 4, 5, 6, 7, 8, 9][rng.below(9) as usize]];
                let v = q.min + rng.unit() * (q.max - q.min);
                events.push(&param_event(off, q.id, v));
            }
            io.process(&mut proc_, n, &events);
            for ch in &io.output {
                assert!(
                    ch[..n].iter().all(|x| x.is_finite()),
                    "non-finite output at {rate} Hz block {b}"
                );
            }
            blocks += 1;
            samples += n as u64;
            if b == 100 {
                proc_.reset();
            }
            if b == 200 && ri % 2 == 0 {
                p.deactivate(proc_);
                proc_ = p.activate(rate, 4096);
            }
        }
        // Then, as a DAW would after such a storm: a reset (odd rates) or a
        // re-activation (even rates), and the model must be heard again, not
        // silent for good. (Without either, the unpaced storm leaves the lead
        // controller aiming at its ceiling, and it grows the lead by inserting
        // silence for seconds: that is the lead policy's business, issue 9 item 7.)
        if ri % 2 == 0 {
            p.deactivate(proc_);
            proc_ = p.activate(rate, 4096);
        } else {
            proc_.reset();
        }
        let after = share_generated(&mut proc_, &mut io, rate, &plain, "after reset/reactivate");
        p.deactivate(proc_);
        shares.push((rate, before, after));
    }
    println!(
        "processed {blocks} random blocks, {samples} samples at {} rates",
        rates.len()
    );
    for (rate, before, after) in &shares {
        println!(
            "{rate} Hz: generated audio in {:.0} % of 10 ms blocks after activation, {:.0} % after reset/reactivate",
            before * 100.0,
            after * 100.0
        );
    }
    for (rate, before, after) in shares {
        assert!(
            before >= HEARD && after >= HEARD,
            "{rate} Hz: generated audio in only {:.0} % / {:.0} % of blocks",
            before * 100.0,
            after * 100.0
        );
    }
}

/// Blocks run (with a short pause each) before [`run_noise`] sends its events,
/// so the engine has reported ready and the stream is in steady state.
const WARMUP: usize = 20;

/// Runs `blocks` blocks of noise at 48 kHz, sending `first` in block [`WARMUP`];
/// returns input and output (right channel) from that block on.
fn run_noise(
    p: &mut Loaded,
    first: &[(u32, ClapId, f64)],
    blocks: usize,
    n: usize,
) -> (Vec<f32>, Vec<f32>) {
    let mut proc_ = p.activate(48_000.0, 4096);
    let mut io = Io::new(4096);
    let mut rng = Rng(7);
    let (mut ins, mut outs) = (Vec::new(), Vec::new());
    let mut events = EventBuffer::with_capacity(8);
    // The model loads in the background (dry until then): wait, bounded, for
    // its first output before the measured blocks.
    for _ in 0..3000 {
        noise(&mut rng, &mut io.input[1][..n]);
        let i0 = io.input[1][..n].to_vec();
        io.process(&mut proc_, n, &events);
        // Judge by the block's end: the first block differs only by a bypass ramp.
        if io.output[1][n - 16..n]
            .iter()
            .zip(&i0[n - 16..])
            .all(|(o, i)| o != i)
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    for b in 0..blocks {
        events.clear();
        if b < WARMUP {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        if b == WARMUP {
            for &(off, id, v) in first {
                events.push(&param_event(off, id, v));
            }
        }
        for ch in io.input.iter_mut() {
            noise(&mut rng, &mut ch[..n]);
        }
        io.process(&mut proc_, n, &events);
        if b >= WARMUP {
            ins.extend_from_slice(&io.input[1][..n]);
            outs.extend_from_slice(&io.output[1][..n]);
        }
    }
    p.deactivate(proc_);
    (ins, outs)
}

#[test]
fn dry_wet_at_zero_passes_input_through_and_automation_is_sample_accurate() {
    let mut p = load(plugin());
    let mix = p.param("Dry/wet").id;
    // The mix change lands at sample 1000 of the first block; 5 ms ramp after it.
    let (ins, outs) = run_noise(&mut p, &[(1000, mix, 0.0)], WARMUP + 20, 2048);
    let ramp = 240;
    let equal: Vec<usize> = outs[..1000]
        .iter()
        .zip(&ins)
        .enumerate()
        .filter(|(_, (o, i))| o == i)
        .map(|(k, _)| k)
        .collect();
    assert!(
        equal.is_empty(),
        "mix changed before its offset: output = input at {} samples, first {:?}",
        equal.len(),
        &equal[..equal.len().min(10)]
    );
    let from = 1000 + ramp + 1;
    let same = outs[from..]
        .iter()
        .zip(&ins[from..])
        .filter(|(o, i)| o == i)
        .count();
    assert_eq!(
        same,
        ins.len() - from,
        "dry/wet 0 must pass input through unchanged (latency 0)"
    );
}

#[test]
fn state_round_trips_and_restoring_twice_gives_the_same_parameters() {
    let mut a = load(plugin());
    let (k, t, m) = (
        a.param("Top-k").id,
        a.param("Audio temperature").id,
        a.param("Dry/wet").id,
    );
    // Temperature is normalised: 0.625 of 0..2 = 1.25.
    run_noise(
        &mut a,
        &[(0, k, 39.0), (0, t, 0.625), (0, m, 0.3)],
        WARMUP + 1,
        256,
    );
    let saved = a.save();
    let expect = a.values();
    assert!(
        expect
            .iter()
            .any(|(n, v)| n == "Top-k" && (*v - 39.0).abs() < 1e-3),
        "{expect:?}"
    );
    assert!(
        expect
            .iter()
            .any(|(n, v)| n == "Audio temperature" && (*v - 0.625).abs() < 1e-6),
        "{expect:?}"
    );
    let mut b = load(plugin());
    b.load_state(&saved).unwrap();
    let once = b.values();
    b.load_state(&saved).unwrap();
    assert_eq!(once, expect);
    assert_eq!(b.values(), once);
    assert_eq!(
        b.save(),
        saved,
        "saving restored state gives the same bytes"
    );
}

/// nice-plug's CLAP state: an 8-byte little-endian length, then JSON.
fn framed(json: &str) -> Vec<u8> {
    let mut v = (json.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(json.as_bytes());
    v
}

#[test]
fn empty_random_and_foreign_state_give_defaults_without_crashing() {
    let mut p = load(plugin());
    let defaults = p.values();
    let mut rng = Rng(99);
    assert!(p.load_state(&[]).is_err(), "empty state must be refused");
    for i in 0..50 {
        let len = rng.below(300) as usize;
        let mut blob: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if i % 2 == 0 && len >= 8 {
            blob[..8].copy_from_slice(&((len - 8) as u64).to_le_bytes()); // plausible length
        }
        let _ = p.load_state(&blob);
        assert_eq!(p.values(), defaults, "random state #{i} changed parameters");
    }
    // Another plugin's JSON, and our own keys with wrong types / out of range.
    let foreign = r#"{"version":"1.0","params":{"cutoff":{"f32":0.5},"top_k":{"bool":true},"gain_db":{"f32":1000.0}},"fields":{"model_dir":"[1,2]"}}"#;
    let _ = p.load_state(&framed(foreign));
    let got = p.values();
    for ((n, v), (_, d)) in got.iter().zip(&defaults) {
        if n == "Output gain" {
            assert_eq!(
                *v, 1.0,
                "out-of-range gain is clamped to +12 dB (normalised 1.0)"
            );
        } else {
            assert_eq!(v, d, "{n} not default after foreign state");
        }
    }
    // Still processes normally.
    let (_, outs) = run_noise(&mut p, &[], WARMUP + 10, 512);
    assert!(outs.iter().all(|x| x.is_finite()));
}

const RATE: f64 = 48_000.0;
/// 10 ms blocks at 48 kHz.
const N: usize = 480;
/// Blocks a change may take to be heard: the session notices it within a
/// tick (5 ms) and stops the old engine, then the 5 ms bypass crossfade runs;
/// 100 ms allows for a loaded machine (40 ms seen).
const SETTLE: usize = 10;

fn all_dry_after_settling(heard: &[Heard]) -> bool {
    heard.len() > SETTLE && heard[SETTLE..].iter().all(|h| *h == Heard::Dry)
}

#[test]
fn deactivating_or_changing_the_model_during_a_10_s_load_returns_at_once() {
    let slow = model_folder("slow-10s", 10_000);
    let mut p = load(plugin());
    let plain = plain_mix(&mut p);
    p.set_model_dir(slow.to_str().unwrap());
    let mut io = Io::new(4096);
    let t = std::time::Instant::now();
    let mut proc_ = p.activate(RATE, 4096);
    let activate = t.elapsed();
    let heard = play(&mut proc_, &mut io, RATE, N, 0.5, &plain, |_| false);
    assert!(
        all_dry_after_settling(&heard),
        "dry while loading: {heard:?}"
    );
    let t = std::time::Instant::now();
    p.deactivate(proc_);
    let deactivate = t.elapsed();
    // Again, now changing the model (loading a state) during the load.
    let mut proc_ = p.activate(RATE, 4096);
    play(&mut proc_, &mut io, RATE, N, 0.2, &plain, |_| false);
    let t = std::time::Instant::now();
    p.set_model_dir("");
    let change = t.elapsed();
    // The built-in model plays while the abandoned load is still "running".
    let share = share_generated(
        &mut proc_,
        &mut io,
        RATE,
        &plain,
        "built-in after a change during a load",
    );
    let t = std::time::Instant::now();
    p.deactivate(proc_);
    let deactivate_running = t.elapsed();
    println!(
        "during a 10 s load: activate {:.2} ms, deactivate {:.2} ms, model change {:.2} ms; \
         deactivate while generating {:.2} ms; generated audio after the change in {:.0} % of blocks",
        activate.as_secs_f64() * 1e3,
        deactivate.as_secs_f64() * 1e3,
        change.as_secs_f64() * 1e3,
        deactivate_running.as_secs_f64() * 1e3,
        share * 100.0
    );
    for (what, took) in [
        ("activate", activate),
        ("deactivate during the load", deactivate),
        ("model change during the load", change),
        ("deactivate while generating", deactivate_running),
    ] {
        assert!(
            took < std::time::Duration::from_millis(50),
            "{what} took {took:?}"
        );
    }
    assert!(share >= HEARD, "{share}");
    let _ = std::fs::remove_dir_all(&slow);
}

#[test]
fn a_model_change_while_running_is_heard_once_the_new_model_has_loaded() {
    let next = model_folder("slow-1s", 1_000);
    let mut p = load(plugin());
    let plain = plain_mix(&mut p);
    let mut io = Io::new(4096);
    let mut proc_ = p.activate(RATE, 4096);
    share_generated(&mut proc_, &mut io, RATE, &plain, "built-in");
    p.set_model_dir(next.to_str().unwrap());
    // Loading (held 1 s): the input, untouched.
    let during = play(
        &mut proc_,
        &mut io,
        RATE,
        N,
        0.8,
        &EventBuffer::new(),
        |_| false,
    );
    assert!(
        all_dry_after_settling(&during),
        "dry while the new model loads: {during:?}"
    );
    // Then the new model, and it stays.
    let share = share_generated(&mut proc_, &mut io, RATE, &EventBuffer::new(), "new model");
    println!(
        "after a model change: generated audio in {:.0} % of blocks",
        share * 100.0
    );
    assert!(share >= HEARD, "{share}");
    p.deactivate(proc_);
    let _ = std::fs::remove_dir_all(&next);
}

#[test]
fn a_model_that_fails_after_a_working_one_gives_dry_audio_and_the_stream_recovers() {
    let mut p = load(plugin());
    let plain = plain_mix(&mut p);
    let mut io = Io::new(4096);
    let mut proc_ = p.activate(RATE, 4096);
    share_generated(&mut proc_, &mut io, RATE, &plain, "built-in");
    // 100 % wet, yet with no usable model the output is exactly the input.
    p.set_model_dir("/no/such/antiphon-model");
    let failed = play(
        &mut proc_,
        &mut io,
        RATE,
        N,
        0.5,
        &EventBuffer::new(),
        |_| false,
    );
    assert!(
        all_dry_after_settling(&failed),
        "failed model must give dry audio: {failed:?}"
    );
    p.set_model_dir("");
    let share = share_generated(
        &mut proc_,
        &mut io,
        RATE,
        &EventBuffer::new(),
        "built-in again",
    );
    assert!(share >= HEARD, "{share}");
    p.deactivate(proc_);
}

#[test]
fn a_model_folder_deleted_between_load_and_use() {
    let dir = model_folder("deleted", 0);
    let mut p = load(plugin());
    let plain = plain_mix(&mut p);
    p.set_model_dir(dir.to_str().unwrap());
    let mut io = Io::new(4096);
    let mut proc_ = p.activate(RATE, 4096);
    share_generated(&mut proc_, &mut io, RATE, &plain, "the folder's model");
    std::fs::remove_dir_all(&dir).unwrap();
    // Loaded weights are in memory: the running stream carries on.
    let share = share_generated(
        &mut proc_,
        &mut io,
        RATE,
        &EventBuffer::new(),
        "after deletion",
    );
    assert!(share >= HEARD, "{share}");
    p.deactivate(proc_);
    // Re-activated (the host changed the rate): the folder is gone → dry.
    let mut proc_ = p.activate(44_100.0, 4096);
    let gone = play(&mut proc_, &mut io, 44_100.0, 441, 0.5, &plain, |_| false);
    assert!(
        all_dry_after_settling(&gone),
        "a deleted model folder must give dry audio: {gone:?}"
    );
    p.deactivate(proc_);
    // Put back: the next activation plays it again.
    antiphon_nodes::builtin::write_builtin(&dir, 11).unwrap();
    let mut proc_ = p.activate(44_100.0, 4096);
    let share = share_generated(&mut proc_, &mut io, 44_100.0, &plain, "restored folder");
    assert!(share >= HEARD, "{share}");
    p.deactivate(proc_);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Renders `input` (mono, both channels) through the plugin in offline mode,
/// in random block sizes (seeded), process calls as fast as they return.
fn render_offline_through_the_plugin(input: &[f32], rate: f64, seed: u64) -> Vec<f32> {
    let mut p = load(plugin());
    p.set_render_mode(RenderMode::Offline);
    let mut proc_ = p.activate(rate, 4096); // waits (bounded) for the model
    let mut io = Io::new(4096);
    let mut rng = Rng(seed);
    let mut out = Vec::with_capacity(input.len());
    let none = EventBuffer::new();
    let mut pos = 0;
    while pos < input.len() {
        let n = (1 + rng.below(4096) as usize).min(input.len() - pos);
        for ch in io.input.iter_mut() {
            ch[..n].copy_from_slice(&input[pos..pos + n]);
        }
        io.process(&mut proc_, n, &none);
        assert_eq!(io.output[0][..n], io.output[1][..n], "channels differ");
        out.extend_from_slice(&io.output[0][..n]);
        pos += n;
    }
    p.deactivate(proc_);
    out
}

#[test]
fn an_offline_render_is_complete_repeatable_and_equals_render_offline() {
    use antiphon_framework::engine::{render_offline, EngineConfig, RunMode};
    use antiphon_framework::knobs::KnobBus;
    use antiphon_nodes::session::{build_graph, knob_specs};

    let rate = 48_000.0;
    let total = (30.0 * rate) as usize;
    let input: Vec<f32> = (0..total)
        .map(|i| 0.5 * antiphon_framework::synth::speechlike(i as u64, rate))
        .collect();
    let t = std::time::Instant::now();
    let a = render_offline_through_the_plugin(&input, rate, 1);
    let wall = t.elapsed().as_secs_f64();
    let b = render_offline_through_the_plugin(&input, rate, 2);
    let differ = a
        .iter()
        .zip(&b)
        .filter(|(x, y)| x.to_bits() != y.to_bits())
        .count();
    assert_eq!(
        differ, 0,
        "two offline renders (different block sizes) differ in {differ} samples"
    );

    // The reference: the same model, graph, seed and knob values through
    // `render_offline` (what `antiphon run --pace fast` uses).
    let cfg = EngineConfig {
        workers: 2,
        mode: RunMode::Offline,
        ..Default::default()
    };
    let d = cfg.offline_delay_samples(rate);
    let bundle = antiphon_nodes::ModelBundle::builtin().unwrap();
    let graph = build_graph(&bundle, rate, 0, None).unwrap();
    let knobs = KnobBus::new(knob_specs(8)).unwrap();
    let (reference, _, _) =
        render_offline(graph, input.clone(), cfg, knobs).expect("reference render");
    assert!(
        a[..d].iter().all(|x| *x == 0.0),
        "the stated delay is silence"
    );
    let m = (total - d).min(reference.len());
    assert!(
        m as f64 >= total as f64 - 2.0 * 0.08 * rate,
        "reference covers the input: {m}"
    );
    let first_diff = (0..m).find(|&i| a[d + i].to_bits() != reference[i].to_bits());
    // Gap fill would show as runs of exact zeros. The model's own output
    // starts with some (the codec's warm-up), in the reference too; after the
    // first second there must be none.
    let last_zero_ref = reference[..m].iter().rposition(|x| *x == 0.0);
    let zeros = a[d + rate as usize..d + m]
        .iter()
        .filter(|x| **x == 0.0)
        .count();
    println!(
        "offline render through the plugin: {total} samples (30 s) in {wall:.1} s wall ({:.1}x real time); \
         two renders byte-identical; output = {d} samples of silence (D = offline_delay_samples) then \
         render_offline's output, compared over {m} samples: first difference {first_diff:?}; \
         last exact zero in the reference at sample {last_zero_ref:?}; exact zeros after the first second: {zeros}",
        30.0 / wall
    );
    assert_eq!(
        first_diff, None,
        "plugin offline output ≠ render_offline shifted by D = {d}"
    );
    assert_eq!(zeros, 0, "gap fill (exact zeros) after the first second");
}

/// The codec as an effect in a DAW bounce: the plugin reports its fixed delay
/// to the host (CLAP latency), and that is the delay a click measures, to the
/// sample (24 kHz: Mimi's rate). Live, the delay adapts, so 0 is reported.
#[test]
fn the_codec_reports_its_exact_delay_to_the_host() {
    use antiphon_framework::synth::speechlike;
    use antiphon_nodes::family::{Family, CODEC};
    let dir = std::env::temp_dir().join(format!("antiphon-clap-{}-codec", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    CODEC.write_stand_in(&dir, 5).unwrap();
    let rate = 24_000.0;
    let frame = 1920;
    let quiet: Vec<f32> = (0..12 * frame as u64)
        .map(|n| 0.3 * speechlike(n, rate))
        .collect();
    let click_at = 5 * frame;
    let mut click = quiet.clone();
    for (i, x) in click[click_at..click_at + 48].iter_mut().enumerate() {
        *x += if i % 2 == 0 { 0.9 } else { -0.9 };
    }
    let render = |input: &[f32]| {
        let mut p = load(plugin());
        p.set_model_dir(dir.to_str().unwrap());
        p.set_render_mode(RenderMode::Offline);
        let mut proc_ = p.activate(rate, 512);
        let latency = p.latency();
        let mut io = Io::new(512);
        let none = EventBuffer::new();
        let mut out = Vec::new();
        for block in input.chunks(512) {
            for ch in io.input.iter_mut() {
                ch[..block.len()].copy_from_slice(block);
            }
            io.process(&mut proc_, block.len(), &none);
            out.extend_from_slice(&io.output[0][..block.len()]);
        }
        p.deactivate(proc_);
        (out, latency)
    };
    let (a, latency) = render(&quiet);
    let (b, _) = render(&click);
    let first = a
        .iter()
        .zip(&b)
        .position(|(x, y)| x != y)
        .expect("the click changes the output");
    eprintln!(
        "codec through the CLAP plugin @ 24 kHz, offline: reported latency {latency} samples, \
         click at {click_at} first heard at {first} (measured {})",
        first - click_at
    );
    assert_eq!(
        (first - click_at) as u32,
        latency,
        "measured ≠ reported latency"
    );
    // Live (realtime) the lead adapts: nothing fixed to report.
    let mut p = load(plugin());
    p.set_model_dir(dir.to_str().unwrap());
    let proc_ = p.activate(rate, 512);
    assert_eq!(p.latency(), 0);
    p.deactivate(proc_);
    let _ = std::fs::remove_dir_all(&dir);
}
