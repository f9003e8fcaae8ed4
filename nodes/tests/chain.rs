//! Full canonical chain on the built-in model: speed, determinism, knobs.

use antiphon_nodes::chain::OfflineChain;
use antiphon_nodes::resample::frame_len;
use antiphon_nodes::ModelBundle;

/// Deterministic "voice-like" test input: two tones plus LCG noise.
pub fn test_signal(rate: f64, n: usize, offset: usize) -> Vec<f32> {
    let mut s: u32 = 12345u32.wrapping_add(offset as u32);
    (offset..offset + n)
        .map(|i| {
            let t = i as f64 / rate;
            s = s.wrapping_mul(1664525).wrapping_add(1013904223);
            let noise = (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5;
            (0.3 * (t * 220.0 * std::f64::consts::TAU).sin()
                + 0.1 * (t * 1370.0 * std::f64::consts::TAU).sin()) as f32
                + 0.05 * noise
        })
        .collect()
}

fn run(bundle: &ModelBundle, rate: f64, seed: u64, frames: u64) -> (Vec<f32>, OfflineChain) {
    let mut chain = OfflineChain::canonical(bundle, rate, seed).unwrap();
    let mut out = Vec::new();
    let mut pos = 0;
    for k in 0..frames {
        let n = frame_len(rate, k);
        let input = test_signal(rate, n, pos);
        pos += n;
        let o = chain.run_frame(&input).unwrap();
        assert_eq!(o.len(), n, "output frame {k} has the host frame length");
        out.extend_from_slice(o);
    }
    (out, chain)
}

fn hash(xs: &[f32]) -> u64 {
    xs.iter().fold(0xcbf29ce484222325u64, |h, x| {
        (h ^ x.to_bits() as u64).wrapping_mul(0x100000001b3)
    })
}

#[test]
fn full_chain_runs_faster_than_real_time() {
    let bundle = ModelBundle::builtin().unwrap();
    let frames = 150; // 12 s of audio
    let t0 = std::time::Instant::now();
    let (out, chain) = run(&bundle, 44_100.0, 7, frames);
    let secs = t0.elapsed().as_secs_f64();
    let rtf = secs / (frames as f64 * 0.08);
    println!("full chain 44.1 kHz, {frames} frames: {secs:.3} s, RTF {rtf:.3}");
    for (name, p50, p99, max) in chain.stage_stats() {
        println!(
            "  {name:>15}: p50 {:7.3} ms  p99 {:7.3} ms  max {:7.3} ms",
            p50 * 1e3,
            p99 * 1e3,
            max * 1e3
        );
    }
    assert!(out.iter().all(|x| x.is_finite()));
    assert!(
        out.iter().any(|x| x.abs() > 1e-4),
        "the model produced some audio"
    );
    // Loose: the 0.25 target is checked in release-like runs (see report); CI
    // machines are shared and this crate is built without optimisation.
    assert!(rtf < 0.5, "RTF {rtf}");
}

#[test]
fn same_seed_same_bytes_other_seed_differs() {
    let bundle = ModelBundle::builtin().unwrap();
    let (a, _) = run(&bundle, 48_000.0, 1, 40);
    let (b, _) = run(&bundle, 48_000.0, 1, 40);
    let (c, _) = run(&bundle, 48_000.0, 2, 40);
    println!(
        "seed 1: {:016x} {:016x}, seed 2: {:016x}",
        hash(&a),
        hash(&b),
        hash(&c)
    );
    assert_eq!(hash(&a), hash(&b));
    assert_eq!(a, b);
    assert_ne!(hash(&a), hash(&c));
}

#[test]
fn knobs_change_the_output() {
    let bundle = ModelBundle::builtin().unwrap();
    let rate = 24_000.0;
    let run_with = |set: &dyn Fn(&OfflineChain, u64)| {
        let mut chain = OfflineChain::canonical(&bundle, rate, 3).unwrap();
        let mut out = Vec::new();
        for k in 0..30u64 {
            set(&chain, k);
            out.extend_from_slice(
                chain
                    .run_frame(&test_signal(rate, 1920, k as usize * 1920))
                    .unwrap(),
            );
        }
        out
    };
    let base = run_with(&|_, _| {});
    let lofi = run_with(&|c, _| c.knobs.set_by_id("codebook_depth", 1.0, 0).unwrap());
    let deaf = run_with(&|c, _| c.knobs.set_by_id("listen", 0.0, 0).unwrap());
    let greedy = run_with(&|c, _| {
        c.knobs.set_by_id("audio_temperature", 0.0, 0).unwrap();
        c.knobs.set_by_id("text_temperature", 0.0, 0).unwrap();
    });
    assert_ne!(base, lofi, "codebook_depth changes the decoded audio");
    assert_ne!(base, deaf, "listen off feeds silence codes");
    assert_ne!(base, greedy, "temperature changes sampling");
    // Reset at frame 15: the second half restarts the conversation from scratch.
    let reset = run_with(&|c, k| {
        if k == 15 {
            c.knobs.set_by_id("reset", 1.0, 0).unwrap();
        }
    });
    assert_eq!(base[..15 * 1920], reset[..15 * 1920]);
    assert_ne!(base[15 * 1920..], reset[15 * 1920..]);
    // Greedy decoding twice gives the same result (no hidden randomness).
    let greedy2 = run_with(&|c, _| {
        c.knobs.set_by_id("audio_temperature", 0.0, 0).unwrap();
        c.knobs.set_by_id("text_temperature", 0.0, 0).unwrap();
    });
    assert_eq!(greedy, greedy2);
}
