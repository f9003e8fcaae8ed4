//! SNR of the codec family's round trip (encode → decode at a codebook depth)
//! on speech-like input, for each depth: how much the depth knob keeps.
//!
//! `cargo run -p antiphon-nodes --release --example codec_snr -- DIR [SECONDS] [WAV]`
//!
//! DIR is a codec folder (`antiphon model init DIR --family codec`, or kyutai's
//! Mimi file alone). WAV (mono, 24 kHz, 16-bit) is read instead of the
//! built-in speech-like signal when given. With random weights the figures
//! say only that the knob works, not how good Mimi sounds.

use antiphon_framework::synth::speechlike;
use antiphon_nodes::bundle::{FRAME_SAMPLES, MODEL_RATE};
use antiphon_nodes::chain::OfflineChain;
use antiphon_nodes::knobs::CODEBOOK_DEPTH;
use antiphon_nodes::ModelBundle;

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args.next().expect("usage: codec_snr DIR [SECONDS] [WAV]");
    let seconds: f64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(10.0);
    let bundle = ModelBundle::load(&dir).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(bundle.family.name(), "codec", "{dir} is not a codec folder");
    let frames = (seconds * MODEL_RATE / FRAME_SAMPLES as f64) as usize;
    let input: Vec<f32> = match args.next() {
        Some(wav) => read_wav(&wav, frames * FRAME_SAMPLES),
        None => (0..frames * FRAME_SAMPLES)
            .map(|n| 0.5 * speechlike(n as u64, MODEL_RATE))
            .collect(),
    };
    let frames = input.len() / FRAME_SAMPLES;
    println!(
        "{dir}: {} ({} codebooks), {:.1} s of input",
        bundle.manifest.name,
        bundle.decoded_codebooks(),
        (frames * FRAME_SAMPLES) as f64 / MODEL_RATE
    );
    for depth in 1..=bundle.decoded_codebooks() {
        let mut chain = OfflineChain::canonical(&bundle, MODEL_RATE, 0).expect("chain");
        chain
            .knobs
            .set_by_id(CODEBOOK_DEPTH, depth as f32, 0)
            .expect("depth knob");
        let mut out = Vec::with_capacity(input.len());
        for f in input.chunks_exact(FRAME_SAMPLES) {
            out.extend_from_slice(chain.run_frame(f).expect("frame"));
        }
        // Skip the first second (the codec's streaming state fills).
        let skip = MODEL_RATE as usize;
        let (sig, err) = input[skip..]
            .iter()
            .zip(&out[skip..])
            .fold((0.0f64, 0.0f64), |(s, e), (&x, &y)| {
                (s + (x as f64).powi(2), e + ((x - y) as f64).powi(2))
            });
        println!(
            "depth {depth}: SNR {:.2} dB",
            10.0 * (sig / err.max(1e-30)).log10()
        );
    }
}

fn read_wav(path: &str, max: usize) -> Vec<f32> {
    let mut r = hound::WavReader::open(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let spec = r.spec();
    assert!(
        spec.channels == 1 && spec.sample_rate == 24_000 && spec.bits_per_sample == 16,
        "{path}: need mono 24 kHz 16-bit"
    );
    r.samples::<i16>()
        .take(max)
        .map(|s| s.unwrap() as f32 / 32768.0)
        .collect()
}
