//! Gap fill end to end: a generator that stops and restarts produces no click
//! (no sample-to-sample step beyond what the signal and the crossfade allow), and
//! the gap is counted exactly.

use std::sync::atomic::Ordering;

use antiphon_framework::{endpoint, EndpointConfig};

#[test]
fn generator_stop_and_restart_is_click_free_and_counted_exactly() {
    let rate = 48_000.0;
    let cfg = EndpointConfig::new(rate);
    let (mut audio, mut gen) = endpoint(&cfg);
    let amp = 0.8f32;
    let w = 2.0 * std::f32::consts::PI * 440.0 / rate as f32;
    let sine = |i: usize| amp * (w * i as f32).sin();

    let block = 256;
    let mut out = Vec::new();
    let mut t = 0usize;
    let play = |audio: &mut antiphon_framework::AudioSide, out: &mut Vec<f32>| {
        let mut b = vec![0.0f32; block];
        audio.process(&mut [&mut b[..]], &[]);
        out.extend_from_slice(&b);
    };

    // 1 000 samples, then the generator stops mid-block.
    gen.write_output(&(0..1000).map(sine).collect::<Vec<_>>());
    t += 1000;
    for _ in 0..4 {
        play(&mut audio, &mut out); // 1024 samples asked: 24 gap-filled
    }
    for _ in 0..8 {
        play(&mut audio, &mut out); // 2048 more gap-filled
    }
    // The generator restarts (continuing its phase, as a real one would).
    gen.write_output(&(t..t + 4096).map(sine).collect::<Vec<_>>());
    for _ in 0..8 {
        play(&mut audio, &mut out);
    }

    let stats = audio.stats();
    assert_eq!(
        stats.gap_samples.load(Ordering::Relaxed),
        24 + 2048,
        "gap counted to the sample"
    );
    assert_eq!(stats.underrun_callbacks.load(Ordering::Relaxed), 9);

    // Largest step: the sine's own slope plus amp/crossfade for the fade in/out.
    let xf = (cfg.crossfade_ms as f64 * 1e-3 * rate).round() as f32;
    let allowed = amp * w + 2.0 * amp / xf + 1e-4;
    let (worst_i, worst) = out
        .windows(2)
        .map(|p| (p[1] - p[0]).abs())
        .enumerate()
        .fold((0, 0.0f32), |a, (i, d)| if d > a.1 { (i, d) } else { a });
    eprintln!(
        "gap fill: {} samples in {} callbacks; largest step {worst:.5} (allowed {allowed:.5})",
        stats.gap_samples.load(Ordering::Relaxed),
        stats.underrun_callbacks.load(Ordering::Relaxed)
    );
    assert!(
        worst <= allowed,
        "step of {worst} at sample {worst_i} exceeds {allowed}"
    );
    // No repeated audio: during the gap the output only decays toward zero.
    let gap = &out[1000..1000 + 2072];
    assert!(
        gap.windows(2).all(|p| p[1].abs() <= p[0].abs() + 1e-7),
        "gap fill must only decay"
    );
    assert_eq!(gap[gap.len() - 1], 0.0);
    // After the fade-in, the generated audio comes through untouched.
    let back = 1000 + 2072 + xf as usize + 1;
    for (k, &y) in out[back..back + 1000].iter().enumerate() {
        let expect = sine(t + xf as usize + 1 + k);
        assert!(
            (y - expect).abs() < 1e-6,
            "sample {k} after fade-in: {y} vs {expect}"
        );
    }
}
