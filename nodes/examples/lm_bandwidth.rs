//! A batch-1 LM step reads every weight once, so its floor is weight bytes /
//! memory bandwidth. This measures the machine's read bandwidth, then the
//! Moshi-shaped backbone step and the depformer (8 slices, one frame) at a
//! few sizes in each precision, and prints a table: step ms, weight bytes,
//! achieved GB/s and the fraction of the measured bandwidth.
//!
//! Each precision runs on our kernels (`antiphon_nodes::lm`); with `--candle`
//! the moshi crate's `LmModel`/`DepFormer` (candle's kernels) run too, on the
//! first size, for comparison in the same process.
//!
//! `cargo run --release -p antiphon-nodes --example lm_bandwidth [-- 1024x16,2048x24 [--candle] [--dtype=q8_0,q4_0]]`
//! (`RAYON_NUM_THREADS` sets the threads; random weights from our generator).

use std::collections::BTreeMap;
use std::io::Cursor;
use std::time::Instant;

use antiphon_nodes::builtin::{make_lm_tensors, write_gguf};
use antiphon_nodes::lm::{LmBackbone, LmDepformer};
use antiphon_nodes::spec::{DepformerSpec, LmSpec, TransformerSpec};
use candle::quantized::GgmlDType;
use candle::{DType, Device, IndexOp, Tensor};
use candle_transformers::generation::LogitsProcessor;
use moshi::nn::MaybeQuantizedVarBuilder;

/// Timed steps (after 3 warm-up steps); `LM_STEPS` overrides (profiling).
fn steps() -> usize {
    std::env::var("LM_STEPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12)
}

/// Read bandwidth: best of 5 passes summing a buffer far larger than the caches.
fn read_bandwidth(threads: usize) -> f64 {
    let n: usize = 256 << 20; // 1 GiB of f32
    let buf: Vec<f32> = (0..n).map(|i| (i % 7) as f32).collect();
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        let sum: f32 = std::thread::scope(|s| {
            let hs: Vec<_> = buf
                .chunks(n.div_ceil(threads))
                .map(|c| {
                    s.spawn(move || {
                        // 8 independent accumulators so the loop vectorises.
                        let mut acc = [0f32; 8];
                        for ch in c.chunks_exact(8) {
                            for (a, x) in acc.iter_mut().zip(ch) {
                                *a += x;
                            }
                        }
                        acc.iter().sum::<f32>()
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap_or(0.0)).sum()
        });
        std::hint::black_box(sum);
        best = best.min(t.elapsed().as_secs_f64());
    }
    (n * 4) as f64 / best / 1e9
}

fn transformer(d_model: usize, num_layers: usize, context: usize, pe: &str) -> TransformerSpec {
    TransformerSpec {
        d_model,
        num_heads: d_model / 128,
        num_layers,
        dim_feedforward: 4 * d_model,
        context,
        max_period: 10_000,
        norm: "rms_norm".into(),
        gating: Some("silu".into()),
        positional_embedding: pe.into(),
        layer_scale: None,
        conv_layout: false,
        max_seq_len: 4096,
    }
}

/// Moshi's layout at `d_model` × `layers`, with Moshi's depformer (1024 wide,
/// 6 layers, 8 slices) when `depformer`, else a token one.
fn lm_spec(d_model: usize, layers: usize, depformer: bool) -> LmSpec {
    let dep = if depformer {
        transformer(1024, 6, 8, "none")
    } else {
        transformer(128, 1, 8, "none")
    };
    LmSpec {
        transformer: transformer(d_model, layers, 3000, "rope"),
        depformer: DepformerSpec {
            transformer: dep,
            num_slices: 8,
            low_rank_embeddings: None,
        },
        text_in_vocab_size: 32001,
        text_out_vocab_size: 32000,
        audio_vocab_size: 2049,
        audio_codebooks: 16,
    }
}

/// Bytes one step reads: the 2-D weights of the part that runs (embedding
/// tables are only indexed, so they do not count).
fn step_bytes(tensors: &BTreeMap<String, Tensor>, prefix: &[&str], bytes_per: f64) -> f64 {
    tensors
        .iter()
        .filter(|(n, t)| {
            t.dims().len() == 2 && prefix.iter().any(|p| n.starts_with(p)) && !n.contains("emb")
        })
        .map(|(_, t)| t.elem_count() as f64 * bytes_per)
        .sum()
}

enum Weights {
    Float(DType),
    Quant(GgmlDType),
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Resident memory of this process, bytes (Linux).
fn rss() -> f64 {
    // Freed temporaries (conversions at load) go back to the OS first, so
    // the figure is what the model holds, not what the heap kept.
    #[cfg(target_os = "linux")]
    // Safety: plain libc call, no arguments to uphold.
    unsafe {
        libc::malloc_trim(0);
    }
    antiphon_framework::report::rss_mb() * (1 << 20) as f64
}

/// Which implementation runs the steps.
#[derive(Clone, Copy, PartialEq)]
enum Impl {
    Ours,
    Candle,
}

/// A var-builder over `tensors` in one precision (GGUF written in memory).
fn var_builder<'a>(
    tensors: &BTreeMap<String, Tensor>,
    w: &Weights,
    buf: &'a mut Cursor<Vec<u8>>,
) -> candle::Result<MaybeQuantizedVarBuilder<'a>> {
    let dev = Device::Cpu;
    Ok(match w {
        Weights::Float(dt) => MaybeQuantizedVarBuilder::Real(candle_nn::VarBuilder::from_tensors(
            tensors.clone().into_iter().collect(),
            *dt,
            &dev,
        )),
        Weights::Quant(q) => {
            write_gguf(tensors, *q, buf).map_err(|e| candle::Error::Msg(e.to_string()))?;
            MaybeQuantizedVarBuilder::Quantized(
                candle_transformers::quantized_var_builder::VarBuilder::from_gguf_buffer(
                    buf.get_ref(),
                    &dev,
                )?,
            )
        }
    })
}

/// Builds the LM in one precision: (resident bytes it added, then
/// (backbone step ms, depformer frame ms) or why it cannot run).
fn time_steps(
    spec: &LmSpec,
    tensors: &BTreeMap<String, Tensor>,
    w: &Weights,
    which: Impl,
) -> candle::Result<(f64, candle::Result<(f64, f64)>)> {
    let cfg = spec.to_moshi(false).map_err(candle::Error::Msg)?;
    let dep_cfg = spec.depformer_config().map_err(candle::Error::Msg)?;
    let (tv, av, d) = (
        spec.text_in_vocab_size,
        spec.audio_vocab_size,
        spec.transformer.d_model,
    );
    let rss0 = rss();
    let mut buf = Cursor::new(Vec::new());
    if which == Impl::Ours {
        let (mut lm, mut dep) = {
            let vb = var_builder(tensors, w, &mut buf)?;
            (
                LmBackbone::new(&cfg, vb.clone())?,
                LmDepformer::new(tv, av, d, &dep_cfg, vb.pp("depformer"))?,
            )
        };
        drop(buf);
        let added = rss() - rss0;
        return Ok((added, run_ours(spec, &mut lm, &mut dep)));
    }
    let vb = var_builder(tensors, w, &mut buf)?;
    let mut lm = moshi::lm::LmModel::new(&cfg, vb.clone())?;
    let mut dep = moshi::lm::DepFormer::new(tv, av, d, &dep_cfg, vb.pp("depformer"))?;
    let added = rss() - rss0;
    Ok((added, run_candle(spec, &mut lm, &mut dep)))
}

fn run_ours(
    spec: &LmSpec,
    lm: &mut LmBackbone,
    dep: &mut LmDepformer,
) -> candle::Result<(f64, f64)> {
    let mut lp = LogitsProcessor::new(1, Some(0.8), None);
    let (mut bb, mut df) = (Vec::new(), Vec::new());
    for step in 0..steps() + 3 {
        let audio: Vec<Option<u32>> = (0..spec.audio_codebooks)
            .map(|i| Some((i * 7 + step) as u32 % 2048))
            .collect();
        let t = Instant::now();
        let (logits, hidden) = lm.step(Some(3), &audio)?;
        let _ = logits.iter().copied().fold(f32::MIN, f32::max);
        let hidden = hidden.to_vec();
        let tb = t.elapsed().as_secs_f64();
        let t = Instant::now();
        dep.sample(&hidden, Some(3), &[], &mut lp)?;
        let td = t.elapsed().as_secs_f64();
        if step >= 3 {
            bb.push(tb * 1e3);
            df.push(td * 1e3);
        }
    }
    Ok((median(bb), median(df)))
}

fn run_candle(
    spec: &LmSpec,
    lm: &mut moshi::lm::LmModel,
    dep: &mut moshi::lm::DepFormer,
) -> candle::Result<(f64, f64)> {
    let dev = Device::Cpu;
    let mut lp = LogitsProcessor::new(1, Some(0.8), None);
    let (mut bb, mut df) = (Vec::new(), Vec::new());
    for step in 0..steps() + 3 {
        let text = Tensor::from_vec(vec![3u32], (1, 1), &dev)?;
        let audio = (0..spec.audio_codebooks)
            .map(|i| Tensor::from_vec(vec![(i * 7 + step) as u32 % 2048], (1, 1), &dev).map(Some))
            .collect::<candle::Result<Vec<_>>>()?;
        let t = Instant::now();
        let (logits, hidden) = lm.forward(Some(text), audio, &().into())?;
        let _ = logits
            .i((0, 0))?
            .to_dtype(DType::F32)?
            .argmax(0)?
            .to_scalar::<u32>()?;
        let tb = t.elapsed().as_secs_f64();
        let t = Instant::now();
        dep.sample(&hidden, Some(3), &[], &mut lp)?;
        let td = t.elapsed().as_secs_f64();
        if step >= 3 {
            bb.push(tb * 1e3);
            df.push(td * 1e3);
        }
    }
    Ok((median(bb), median(df)))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let with_candle = args.iter().any(|a| a == "--candle");
    // `--dtype=q4_0,q8_0` measures only those.
    let only: Option<Vec<String>> = args
        .iter()
        .find_map(|a| a.strip_prefix("--dtype="))
        .map(|v| v.split(',').map(String::from).collect());
    let sizes: Vec<(usize, usize)> = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .cloned()
        .unwrap_or_else(|| "1024x16,2048x24".into())
        .split(',')
        .map(|s| {
            let (d, l) = s.split_once('x').expect("sizes like 1024x16");
            (d.parse().expect("d_model"), l.parse().expect("layers"))
        })
        .collect();
    let threads = candle::utils::get_num_threads();
    let bw1 = read_bandwidth(1);
    let bw = read_bandwidth(threads);
    println!("read bandwidth: {bw1:.1} GB/s (1 thread), {bw:.1} GB/s ({threads} threads)\n");
    println!(
        "{:<22} {:<7} {:<6} {:>9} {:>10} {:>8} {:>6}",
        "part", "kernels", "dtype", "step ms", "weight MB", "GB/s", "of bw"
    );
    let precisions: [(&str, Weights, f64); 5] = [
        ("f32", Weights::Float(DType::F32), 4.0),
        ("f16", Weights::Float(DType::F16), 2.0),
        ("bf16", Weights::Float(DType::BF16), 2.0),
        ("q8_0", Weights::Quant(GgmlDType::Q8_0), 34.0 / 32.0),
        ("q4_0", Weights::Quant(GgmlDType::Q4_0), 18.0 / 32.0),
    ];
    for (i, &(d, l)) in sizes.iter().enumerate() {
        // Moshi's real depformer is measured once, with the first size.
        let with_dep = i == 0;
        let spec = lm_spec(d, l, with_dep);
        let t = Instant::now();
        let tensors = make_lm_tensors(&spec, 7)?;
        let params = tensors.values().map(|t| t.elem_count()).sum::<usize>() as f64;
        eprintln!(
            "{d}x{l}: {:.0} M parameters made in {:.1} s",
            params / 1e6,
            t.elapsed().as_secs_f64()
        );
        let impls: &[Impl] = if with_candle && i == 0 {
            &[Impl::Ours, Impl::Candle]
        } else {
            &[Impl::Ours]
        };
        for (name, w, bytes_per) in &precisions {
            if only.as_ref().is_some_and(|o| !o.iter().any(|n| n == name)) {
                continue;
            }
            for &which in impls {
                let label = if which == Impl::Ours {
                    "ours"
                } else {
                    "candle"
                };
                let (added, timed) = time_steps(&spec, &tensors, w, which)?;
                println!(
                "  {d}x{l} {label} {name}: building the model added {:.0} MB resident = {:.2} bytes/parameter{}",
                added / 1e6,
                added / params,
                if *name == "f32" && which == Impl::Candle { " (f32 shares the source tensors)" } else { "" }
            );
                let (bb, df) = match timed {
                    Ok(v) => v,
                    Err(e) => {
                        println!("  {d}x{l} {label} {name}: step not run: {e}");
                        continue;
                    }
                };
                let row = |part: String, ms: f64, bytes: f64| {
                    let gbs = bytes / (ms / 1e3) / 1e9;
                    println!(
                        "{part:<22} {label:<7} {name:<6} {ms:>9.2} {:>10.1} {gbs:>8.1} {:>5.0}%",
                        bytes / 1e6,
                        100.0 * gbs / bw
                    );
                };
                row(
                    format!("backbone {d}x{l}"),
                    bb,
                    step_bytes(
                        &tensors,
                        &["transformer.", "text_linear", "out_norm"],
                        *bytes_per,
                    ),
                );
                if with_dep {
                    row(
                        "depformer 1024x6 ×8".into(),
                        df,
                        step_bytes(&tensors, &["depformer."], *bytes_per),
                    );
                }
            }
        }
    }
    Ok(())
}
