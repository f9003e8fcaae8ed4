//! The output stage (gain, dry/wet, bypass) for renders that have no audio
//! thread (`antiphon run --pace fast`). It runs the rendered reply through an
//! audio endpoint, so an offline file gets exactly the gain rule, mix and
//! sanitising a live stream gets: one rule, in the endpoint.

use antiphon_framework::endpoint::{endpoint, EndpointConfig, OutputParam};
use antiphon_framework::knobs::KnobBus;

/// Samples per endpoint call (well inside the endpoint's output ring).
const CHUNK: usize = 4096;

/// Mixes `wet` (the mono reply, `wet.len()` samples) with the `dry` input
/// channels (shorter channels are padded with silence) at `rate`, with the
/// output knobs' current values on `knobs`. Returns one channel per `dry`
/// channel, each `wet.len()` long.
pub fn mix_offline(dry: &[Vec<f32>], wet: &[f32], rate: f64, knobs: &KnobBus) -> Vec<Vec<f32>> {
    let (mut audio, mut gen) = endpoint(&EndpointConfig::new(rate));
    for p in OutputParam::ALL {
        if let Some(id) = knobs.id(p.knob_id()) {
            audio.set_param(p, knobs.latest(id));
        }
    }
    // Start at the knobs' values, not ramping towards them.
    audio.reset();
    let mut out: Vec<Vec<f32>> = dry.iter().map(|_| Vec::with_capacity(wet.len())).collect();
    let mut bufs: Vec<Vec<f32>> = dry.iter().map(|_| vec![0.0; CHUNK]).collect();
    for (k, chunk) in wet.chunks(CHUNK).enumerate() {
        let at = k * CHUNK;
        gen.write_output(chunk);
        for (b, d) in bufs.iter_mut().zip(dry) {
            b.truncate(0);
            b.extend((at..at + chunk.len()).map(|i| d.get(i).copied().unwrap_or(0.0)));
        }
        audio.process(&mut bufs, &[]);
        // Generation's input is not wanted here: keep the ring from filling.
        while gen.read_input(&mut [0.0; CHUNK]) > 0 {}
        for (o, b) in out.iter_mut().zip(&bufs) {
            o.extend_from_slice(b);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::knob_specs;

    #[test]
    fn the_endpoint_rule_applies_to_files() {
        let knobs = KnobBus::new(knob_specs(8)).unwrap();
        let dry = vec![vec![0.5f32; 10_000], vec![0.25f32; 9_000]];
        let wet = vec![0.1f32; 10_000];
        // Default: 100 % wet, 0 dB.
        let out = mix_offline(&dry, &wet, 48_000.0, &knobs);
        assert!(out
            .iter()
            .all(|c| c.len() == 10_000 && c.iter().all(|x| *x == 0.1)));
        // Half wet at −6 dB: 10^(−6/20) · (0.5·dry + 0.5·wet), the second channel padded.
        knobs.set_by_id("mix", 0.5, 0).unwrap();
        knobs.set_by_id("gain_db", -6.0, 0).unwrap();
        let out = mix_offline(&dry, &wet, 48_000.0, &knobs);
        let g = 10f32.powf(-6.0 / 20.0);
        assert!((out[0][5000] - g * 0.3).abs() < 1e-6, "{}", out[0][5000]);
        assert!((out[1][9500] - g * 0.05).abs() < 1e-6, "{}", out[1][9500]);
        // Bypass: the input, untouched.
        knobs.set_by_id("bypass", 1.0, 0).unwrap();
        let out = mix_offline(&dry, &wet, 48_000.0, &knobs);
        assert_eq!(out[0], dry[0]);
    }
}
