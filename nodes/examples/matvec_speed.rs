//! One LM kernel at a time: an 8192 × 4096 matrix–vector product in each
//! weight format on 1 and 2 threads, as GB/s of weights read (median of 30);
//! first 1024 × 1024 q8_0/q4_0 products back to back (cache-resident: what a
//! split across threads costs).
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
    small()?;
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

/// Small products back to back (a depformer layer's size), run from a pool
/// worker as the LM does: what a split costs beside the work.
fn small() -> candle::Result<()> {
    let (n, k) = (1024, 1024);
    let mut r = SplitMix64::new(2);
    let w: Vec<f32> = (0..n * k).map(|_| r.next_normal() as f32).collect();
    let w = Tensor::from_vec(w, (n, k), &Device::Cpu)?;
    let x: Vec<f32> = (0..k).map(|_| r.next_normal() as f32).collect();
    let mut y = vec![0f32; n];
    for q in [GgmlDType::Q8_0, GgmlDType::Q4_0] {
        let m = Matrix::from_qtensor(Arc::new(QTensor::quantize(&w, q)?))?;
        for threads in [1, 2] {
            let mut res = Ok(0.0);
            rayon::scope(|_| {
                let t0 = Instant::now();
                for _ in 0..2000 {
                    if let Err(e) = m.matvec(&x, 1, &mut y, threads) {
                        res = Err(e);
                        return;
                    }
                }
                res = Ok(t0.elapsed().as_secs_f64() / 2000.0);
            });
            let s = res?;
            println!(
                "{:<5} 1024×1024 {threads} thread(s): {:6.1} µs  {:5.1} GB/s",
                m.format(),
                s * 1e6,
                m.bytes() as f64 / s / 1e9
            );
        }
    }
    Ok(())
}
