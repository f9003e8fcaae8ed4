//! One LM kernel at a time: an 8192 × 4096 matrix–vector product in each
//! weight format on 1 and 2 threads, as GB/s of weights read (median of 30).
//! The kernels behind `lm_bandwidth`'s figures, without the model around them.
//!
//! `cargo run --release -p antiphon-nodes --example matvec_speed`

use std::sync::Arc;
use std::time::Instant;

use antiphon_nodes::lm::Matrix;
use antiphon_nodes::rng::SplitMix64;
use candle::quantized::{GgmlDType, QTensor};
use candle::{DType, Device, Tensor};

fn main() -> candle::Result<()> {
    let (n, k) = (8192, 4096);
    let mut r = SplitMix64::new(1);
    let w: Vec<f32> = (0..n * k).map(|_| r.next_normal() as f32).collect();
    let w = Tensor::from_vec(w, (n, k), &Device::Cpu)?;
    let x: Vec<f32> = (0..k).map(|_| r.next_normal() as f32).collect();
    let mut y = vec![0f32; n];
    let mats = [
        Matrix::from_tensor(&w)?,
        Matrix::from_tensor(&w.to_dtype(DType::F16)?)?,
        Matrix::from_tensor(&w.to_dtype(DType::BF16)?)?,
        Matrix::from_qtensor(Arc::new(QTensor::quantize(&w, GgmlDType::Q8_0)?))?,
        Matrix::from_qtensor(Arc::new(QTensor::quantize(&w, GgmlDType::Q4_0)?))?,
    ];
    for m in &mats {
        for threads in [1, 2] {
            let mut t = Vec::new();
            for _ in 0..30 {
                let t0 = Instant::now();
                m.matvec(&x, 1, &mut y, threads)?;
                t.push(t0.elapsed().as_secs_f64());
            }
            t.sort_by(|a, b| a.total_cmp(b));
            let s = t[t.len() / 2];
            println!(
                "{:<5} {threads} thread(s): {:6.2} ms  {:5.1} GB/s",
                m.format(),
                s * 1e3,
                m.bytes() as f64 / s / 1e9
            );
        }
    }
    Ok(())
}
