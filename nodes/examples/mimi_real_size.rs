//! For the record: the real-size Mimi (kyutai v0.1 config, 8 codebooks,
//! random weights from our seeded generator) encode and decode time per 80 ms
//! frame on this machine.
//!
//! `cargo run -p antiphon-nodes --example mimi_real_size [-- FRAMES]`

use antiphon_nodes::builtin::make_mimi_tensors;
use antiphon_nodes::spec::MimiSpec;
use candle::{DType, Device, Tensor};
use moshi::{StreamMask, StreamTensor};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let frames: usize = std::env::args()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(25);
    let spec = MimiSpec::kyutai_v0_1(8);
    let t0 = std::time::Instant::now();
    let tensors = make_mimi_tensors(&spec, 1)?;
    let params: usize = tensors.values().map(|t| t.elem_count()).sum();
    println!(
        "real-size Mimi: {:.1} M params, weights made in {:.1} s",
        params as f64 / 1e6,
        t0.elapsed().as_secs_f64()
    );
    let vb = candle_nn::VarBuilder::from_tensors(
        tensors.into_iter().collect(),
        DType::F32,
        &Device::Cpu,
    );
    let mut mimi = moshi::mimi::Mimi::new(spec.to_moshi()?, vb)?;
    let mut dec = mimi.clone();
    let (mut enc_t, mut dec_t) = (Vec::new(), Vec::new());
    for k in 0..frames {
        let x: Vec<f32> = (0..1920)
            .map(|i| (((k * 1920 + i) as f64 * 0.0571).sin() * 0.3) as f32)
            .collect();
        let x = Tensor::from_vec(x, (1, 1, 1920), &Device::Cpu)?;
        let t = std::time::Instant::now();
        let codes = mimi.encode_step(&StreamTensor::from_tensor(x), &StreamMask::empty())?;
        enc_t.push(t.elapsed().as_secs_f64());
        if let Some(c) = codes.as_option() {
            let t = std::time::Instant::now();
            dec.decode_step(&StreamTensor::from_tensor(c.clone()), &StreamMask::empty())?;
            dec_t.push(t.elapsed().as_secs_f64());
        }
    }
    let stat = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        (v[v.len() / 2] * 1e3, v[v.len() - 1] * 1e3)
    };
    let (e50, emax) = stat(&mut enc_t);
    let (d50, dmax) = stat(&mut dec_t);
    println!("encode: p50 {e50:.1} ms, max {emax:.1} ms per 80 ms frame");
    println!("decode: p50 {d50:.1} ms, max {dmax:.1} ms per 80 ms frame");
    println!(
        "encode+decode p50 {:.1} ms → RTF {:.2}",
        e50 + d50,
        (e50 + d50) / 80.0
    );
    Ok(())
}
