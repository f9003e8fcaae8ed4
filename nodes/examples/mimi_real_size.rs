//! Real-size Mimi (kyutai v0.1 config, 8 codebooks, random weights from our
//! seeded generator): streaming encode and decode time per 80 ms frame, ours
//! (`codec::MimiEncoder` / `MimiDecoder`) against the moshi crate's `Mimi` on the
//! same weights, interleaved frame by frame (A/B/A/B) so machine noise hits
//! both alike. Also checks that both give the same codes and audio.
//!
//! `cargo run --release -p antiphon-nodes --example mimi_real_size [-- FRAMES]`
//! (threads: `RAYON_NUM_THREADS`, default all cores).

use antiphon_nodes::builtin::make_mimi_tensors;
use antiphon_nodes::bundle::FRAME_SAMPLES;
use antiphon_nodes::codec::{MimiDecoder, MimiEncoder};
use antiphon_nodes::spec::MimiSpec;
use candle::{DType, Device, Tensor};
use moshi::{StreamMask, StreamTensor};
use std::time::Instant;

fn pct(v: &[f64], p: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize] * 1e3
}

fn row(name: &str, v: &[f64]) {
    println!(
        "{name:<16} p50 {:6.1}  p90 {:6.1}  p99 {:6.1}  max {:6.1} ms",
        pct(v, 0.5),
        pct(v, 0.9),
        pct(v, 0.99),
        pct(v, 1.0)
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let frames: usize = std::env::args()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let spec = MimiSpec::kyutai_v0_1(8);
    let t0 = Instant::now();
    let tensors = make_mimi_tensors(&spec, 1)?;
    let params: usize = tensors.values().map(|t| t.elem_count()).sum();
    println!(
        "real-size Mimi: {:.1} M params, weights made in {:.1} s, {} threads",
        params as f64 / 1e6,
        t0.elapsed().as_secs_f64(),
        candle::utils::get_num_threads()
    );
    let vb = candle_nn::VarBuilder::from_tensors(
        tensors.into_iter().collect(),
        DType::F32,
        &Device::Cpu,
    );
    let cfg = spec.to_moshi()?;
    let mut ref_enc = moshi::mimi::Mimi::new(cfg.clone(), vb.clone())?;
    let mut ref_dec = ref_enc.clone();
    let mut enc = MimiEncoder::new(&cfg, FRAME_SAMPLES, vb.clone())?;
    let mut dec = MimiDecoder::new(&cfg, FRAME_SAMPLES, vb)?;

    let (mut re, mut rd, mut oe, mut od) = (vec![], vec![], vec![], vec![]);
    let (mut same_codes, mut max_diff, mut peak) = (0, 0f32, 0f32);
    let mut codes = Vec::new();
    let mut pcm = Vec::new();
    for k in 0..frames {
        let x: Vec<f32> = (0..FRAME_SAMPLES)
            .map(|i| {
                let n = (k * FRAME_SAMPLES + i) as f64;
                (0.3 * (n * 0.0571).sin() + 0.1 * (n * 0.31).sin()) as f32
            })
            .collect();
        let xt = Tensor::from_slice(&x, (1, 1, FRAME_SAMPLES), &Device::Cpu)?;

        let t = Instant::now();
        let rc = ref_enc.encode_step(&StreamTensor::from_tensor(xt), &StreamMask::empty())?;
        re.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        enc.encode_step(&x, &mut codes)?;
        oe.push(t.elapsed().as_secs_f64());

        let rc = rc.as_option().ok_or("reference gave no codes")?.clone();
        let rcv: Vec<u32> = rc.flatten_all()?.to_vec1()?;
        same_codes += usize::from(rcv == codes);

        let t = Instant::now();
        let ra = ref_dec.decode_step(&StreamTensor::from_tensor(rc), &StreamMask::empty())?;
        rd.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        dec.decode_step(&rcv, rcv.len(), &mut pcm)?;
        od.push(t.elapsed().as_secs_f64());

        let ra: Vec<f32> = ra
            .as_option()
            .ok_or("reference gave no audio")?
            .flatten_all()?
            .to_vec1()?;
        for (a, b) in ra.iter().zip(&pcm) {
            max_diff = max_diff.max((a - b).abs());
            peak = peak.max(a.abs());
        }
    }
    // The first frames warm caches and thread pools.
    let skip = (frames / 10).min(5);
    println!(
        "per 80 ms frame, {} frames (first {skip} dropped):",
        frames - skip
    );
    row("moshi encode", &re[skip..]);
    row("ours  encode", &oe[skip..]);
    row("moshi decode", &rd[skip..]);
    row("ours  decode", &od[skip..]);
    let sum = |a: &[f64], b: &[f64]| pct(&a[skip..], 0.5) + pct(&b[skip..], 0.5);
    println!(
        "encode+decode p50: moshi {:.1} ms, ours {:.1} ms (ratio {:.2})",
        sum(&re, &rd),
        sum(&oe, &od),
        sum(&oe, &od) / sum(&re, &rd)
    );
    println!(
        "same codes in {same_codes}/{frames} frames; decoded audio max |diff| {max_diff:.2e} (peak {peak:.2})"
    );
    Ok(())
}
