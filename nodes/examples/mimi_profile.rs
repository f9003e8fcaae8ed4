//! Where a real-size Mimi step spends its time, layer by layer.
//!
//! * moshi crate (candle): its own tracing spans, timed by a tiny subscriber
//!   (self time per span name: `norm-conv1d` is candle's conv — im2col, gemm,
//!   copy back —, `streamable-conv1d` self time is the streaming glue — state
//!   `cat`, `narrow`, padding —, `sea-resnet` self time is ELU + skip add, …).
//! * ours: each stage of `codec::MimiEncoder` / `MimiDecoder` timed directly.
//!
//! `cargo run --release -p antiphon-nodes --example mimi_profile [-- FRAMES]`

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use antiphon_nodes::builtin::make_mimi_tensors;
use antiphon_nodes::bundle::FRAME_SAMPLES;
use antiphon_nodes::spec::MimiSpec;
use candle::{DType, Device, Tensor};
use moshi::{StreamMask, StreamTensor};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Self time per span name (time inside a span minus its child spans).
#[derive(Default)]
struct SpanTimer {
    next: AtomicU64,
    names: Mutex<HashMap<u64, &'static str>>,
    totals: Mutex<HashMap<&'static str, (Duration, u64)>>,
}

thread_local! {
    static STACK: RefCell<Vec<(u64, Instant, Duration)>> = const { RefCell::new(Vec::new()) };
}

impl Subscriber for &'static SpanTimer {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, a: &Attributes<'_>) -> Id {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        self.names.lock().unwrap().insert(id, a.metadata().name());
        Id::from_u64(id)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, _: &Event<'_>) {}
    fn enter(&self, id: &Id) {
        STACK.with(|s| {
            s.borrow_mut()
                .push((id.into_u64(), Instant::now(), Duration::ZERO))
        });
    }
    fn exit(&self, _: &Id) {
        let Some((id, t0, child)) = STACK.with(|s| s.borrow_mut().pop()) else {
            return;
        };
        let total = t0.elapsed();
        STACK.with(|s| {
            if let Some(parent) = s.borrow_mut().last_mut() {
                parent.2 += total;
            }
        });
        let name = self.names.lock().unwrap().get(&id).copied().unwrap_or("?");
        let mut t = self.totals.lock().unwrap();
        let e = t.entry(name).or_default();
        e.0 += total.saturating_sub(child);
        e.1 += 1;
    }
}

fn signal(k: usize) -> Vec<f32> {
    (0..FRAME_SAMPLES)
        .map(|i| {
            let n = (k * FRAME_SAMPLES + i) as f64;
            (0.3 * (n * 0.0571).sin() + 0.1 * (n * 0.31).sin()) as f32
        })
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let frames: usize = std::env::args()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let timer: &'static SpanTimer = Box::leak(Box::default());
    tracing::subscriber::set_global_default(timer)?;
    let spec = MimiSpec::kyutai_v0_1(8);
    let cfg = spec.to_moshi()?;
    let vb = candle_nn::VarBuilder::from_tensors(
        make_mimi_tensors(&spec, 1)?.into_iter().collect(),
        DType::F32,
        &Device::Cpu,
    );
    println!(
        "{} threads, {frames} frames",
        candle::utils::get_num_threads()
    );

    // moshi crate.
    let mut mimi = moshi::mimi::Mimi::new(cfg.clone(), vb.clone())?;
    let mut mimi_dec = mimi.clone();
    let warm = 3;
    let (mut enc_total, mut dec_total) = (Duration::ZERO, Duration::ZERO);
    for k in 0..frames + warm {
        if k == warm {
            timer.totals.lock().unwrap().clear();
        }
        let x = Tensor::from_vec(signal(k), (1, 1, FRAME_SAMPLES), &Device::Cpu)?;
        let t = Instant::now();
        let c = mimi.encode_step(&StreamTensor::from_tensor(x), &StreamMask::empty())?;
        let te = t.elapsed();
        let t = Instant::now();
        mimi_dec.decode_step(&c, &StreamMask::empty())?;
        if k >= warm {
            enc_total += te;
            dec_total += t.elapsed();
        }
    }
    let per = |d: Duration| d.as_secs_f64() * 1e3 / frames as f64;
    println!(
        "\nmoshi crate: encode {:.1} ms + decode {:.1} ms per frame; self time by span:",
        per(enc_total),
        per(dec_total)
    );
    let mut rows: Vec<_> = timer.totals.lock().unwrap().clone().into_iter().collect();
    rows.sort_by(|a, b| b.1 .0.cmp(&a.1 .0));
    let all: f64 = per(enc_total) + per(dec_total);
    for (name, (d, n)) in rows {
        println!(
            "  {name:<22} {:6.2} ms/frame {:5.1}%  ({} calls/frame)",
            per(d),
            100.0 * per(d) / all,
            n / frames as u64
        );
    }

    // Ours, stage by stage.
    use antiphon_nodes::mimi_transformer::MimiTransformer;
    use antiphon_nodes::seanet::{SeanetDecoder, SeanetEncoder};
    let par = gemm::Parallelism::Rayon(candle::utils::get_num_threads());
    let mut se = SeanetEncoder::new(&cfg.seanet, FRAME_SAMPLES, vb.pp("encoder"), par)?;
    let mut te = MimiTransformer::new(&cfg.transformer, 2, vb.pp("encoder_transformer"), par)?;
    let mut sd = SeanetDecoder::new(&cfg.seanet, 2, vb.pp("decoder"), par)?;
    let mut td = MimiTransformer::new(&cfg.transformer, 2, vb.pp("decoder_transformer"), par)?;
    let mut enc = antiphon_nodes::codec::MimiEncoder::new(&cfg, FRAME_SAMPLES, vb.clone())?;
    let mut t_stage = [Duration::ZERO; 5];
    let mut codes = Vec::new();
    for k in 0..frames + warm {
        let x = signal(k);
        let t = Instant::now();
        let h = se.step(&x).to_vec();
        let t1 = t.elapsed();
        let t = Instant::now();
        let z = te.step(&h).to_vec();
        let t2 = t.elapsed();
        let t = Instant::now();
        enc.encode_step(&x, &mut codes)?; // whole encoder, for the quantizer share below
        let t3 = t.elapsed();
        let t = Instant::now();
        let y = td.step(&z).to_vec();
        let t4 = t.elapsed();
        let t = Instant::now();
        std::hint::black_box(sd.step(&y));
        let t5 = t.elapsed();
        if k >= warm {
            for (a, b) in t_stage.iter_mut().zip([t1, t2, t3, t4, t5]) {
                *a += b;
            }
        }
    }
    let [se_t, te_t, enc_t, td_t, sd_t] = t_stage.map(per);
    println!("\nours, per frame:");
    println!("  encoder SEANet         {se_t:6.2} ms");
    println!("  encoder transformer    {te_t:6.2} ms");
    println!(
        "  downsample + quantizer {:6.2} ms  (whole encoder {enc_t:.2} ms)",
        (enc_t - se_t - te_t).max(0.0)
    );
    println!("  decoder transformer    {td_t:6.2} ms");
    println!("  decoder SEANet         {sd_t:6.2} ms");
    Ok(())
}
