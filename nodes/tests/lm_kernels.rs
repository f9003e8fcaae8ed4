//! Our LM (`antiphon_nodes::lm`) against the moshi crate's `LmModel` and
//! `DepFormer` on the same weights: f32 to float rounding; f16, bf16, q8_0
//! and q4_0 against moshi in f32 on the same (rounded or dequantised)
//! weights, since our kernels widen every format to f32 before multiplying.

use std::collections::BTreeMap;
use std::io::Cursor;

use antiphon_nodes::builtin::{make_lm_tensors, tiny_lm_spec, write_gguf};
use antiphon_nodes::lm::{LmBackbone, LmDepformer};
use antiphon_nodes::rng::SplitMix64;
use antiphon_nodes::spec::LmSpec;
use candle::quantized::GgmlDType;
use candle::{DType, Device, IndexOp, Tensor};
use candle_transformers::generation::LogitsProcessor;
use moshi::lm::{DepFormer, LmModel};
use moshi::nn::MaybeQuantizedVarBuilder;

/// Wide enough that products split across threads, with a window (300) the
/// test runs past so the KV ring wraps and attention splits across heads.
fn spec() -> LmSpec {
    let mut s = tiny_lm_spec();
    s.transformer.d_model = 256;
    s.transformer.dim_feedforward = 1024;
    s.transformer.num_heads = 4;
    s.transformer.context = 300;
    s.depformer.transformer.d_model = 128;
    s.depformer.transformer.dim_feedforward = 512;
    s.depformer.transformer.num_layers = 2;
    s.depformer.num_slices = 4;
    s.depformer.transformer.context = 4;
    s
}

/// The moshi crate's backbone and depformer over `vb` (real or quantised).
fn moshi(spec: &LmSpec, vb: MaybeQuantizedVarBuilder) -> (LmModel, DepFormer) {
    let lm = LmModel::new(&spec.to_moshi(false).unwrap(), vb.clone()).unwrap();
    let dep = DepFormer::new(
        spec.text_in_vocab_size,
        spec.audio_vocab_size,
        spec.transformer.d_model,
        &spec.depformer_config().unwrap(),
        vb.pp("depformer"),
    )
    .unwrap();
    (lm, dep)
}

/// The moshi crate's model in f32 on `tensors`.
fn reference(spec: &LmSpec, tensors: BTreeMap<String, Tensor>) -> (LmModel, DepFormer) {
    moshi(
        spec,
        MaybeQuantizedVarBuilder::Real(candle_nn::VarBuilder::from_tensors(
            tensors.into_iter().collect(),
            DType::F32,
            &Device::Cpu,
        )),
    )
}

fn ours(spec: &LmSpec, vb: MaybeQuantizedVarBuilder) -> (LmBackbone, LmDepformer) {
    let lm = LmBackbone::new(&spec.to_moshi(false).unwrap(), vb.clone()).unwrap();
    let dep = LmDepformer::new(
        spec.text_in_vocab_size,
        spec.audio_vocab_size,
        spec.transformer.d_model,
        &spec.depformer_config().unwrap(),
        vb.pp("depformer"),
    )
    .unwrap();
    (lm, dep)
}

fn max_rel_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max)
        / scale
}

/// Steps both through `steps` frames (a reset at `steps - 20`) with the same
/// tokens: returns the worst relative difference of text logits and hidden
/// states, the steps where it exceeded 1e-5, and how many depformer tokens
/// (greedy) agreed out of how many.
fn compare(
    spec: &LmSpec,
    (mut lm, mut dep): (LmModel, DepFormer),
    (mut ol, mut od): (LmBackbone, LmDepformer),
    steps: usize,
) -> (f32, usize, usize, usize) {
    let dev = Device::Cpu;
    let mut rng = SplitMix64::new(11);
    let (mut worst, mut same, mut total, mut off) = (0f32, 0, 0, 0);
    let mut greedy = LogitsProcessor::new(0, None, None);
    for step in 0..steps {
        if step == steps - 20 {
            lm.reset_state();
            ol.reset();
        }
        let text = (rng.next_u64() % spec.text_in_vocab_size as u64) as u32;
        let audio: Vec<u32> = (0..spec.audio_codebooks)
            .map(|_| (rng.next_u64() % spec.audio_vocab_size as u64) as u32)
            .collect();
        let t = Tensor::from_vec(vec![text], (1, 1), &dev).unwrap();
        let a = audio
            .iter()
            .map(|&v| Some(Tensor::from_vec(vec![v], (1, 1), &dev).unwrap()))
            .collect();
        let (rl, rh) = lm.forward(Some(t), a, &().into()).unwrap();
        let rl: Vec<f32> = rl.i((0, 0)).unwrap().to_vec1().unwrap();
        let rh_v: Vec<f32> = rh.flatten_all().unwrap().to_vec1().unwrap();
        let audio_opt: Vec<Option<u32>> = audio.iter().map(|&v| Some(v)).collect();
        let (l, h) = ol.step(Some(text), &audio_opt).unwrap();
        let diff = max_rel_diff(l, &rl).max(max_rel_diff(h, &rh_v));
        worst = worst.max(diff);
        if diff > 1e-5 {
            off += 1;
        }
        // The depformer from the same hidden state; every other frame forces
        // its second token (as the acoustic delay does at the start).
        let forced = if step % 2 == 0 {
            vec![None, Some(5)]
        } else {
            vec![]
        };
        let want = dep.sample(&rh, Some(text), &forced, &mut greedy).unwrap();
        let got = od.sample(&rh_v, Some(text), &forced, &mut greedy).unwrap();
        total += want.len();
        same += want.iter().zip(&got).filter(|(a, b)| a == b).count();
    }
    (worst, off, same, total)
}

#[test]
fn f32_equals_the_moshi_crate_through_the_window_and_a_reset() {
    let spec = spec();
    let tensors = make_lm_tensors(&spec, 21).unwrap();
    let vb = MaybeQuantizedVarBuilder::Real(candle_nn::VarBuilder::from_tensors(
        tensors.clone().into_iter().collect(),
        DType::F32,
        &Device::Cpu,
    ));
    let (worst, off, same, total) = compare(&spec, reference(&spec, tensors), ours(&spec, vb), 330);
    println!("f32: max relative |diff| {worst:.2e}; depformer tokens {same}/{total}");
    assert!(worst < 1e-5 && off == 0, "max relative |diff| {worst}");
    assert_eq!(same, total, "greedy depformer tokens");
}

/// f16 / bf16 weights stay 16-bit in memory; moshi runs on the same values
/// widened to f32.
#[test]
fn half_precisions_equal_moshi_on_the_rounded_weights() {
    let spec = spec();
    let tensors = make_lm_tensors(&spec, 22).unwrap();
    for dt in [DType::F16, DType::BF16] {
        let rounded: BTreeMap<String, Tensor> = tensors
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.to_dtype(dt).unwrap().to_dtype(DType::F32).unwrap(),
                )
            })
            .collect();
        let vb = MaybeQuantizedVarBuilder::Real(candle_nn::VarBuilder::from_tensors(
            tensors.clone().into_iter().collect(),
            dt,
            &Device::Cpu,
        ));
        let (worst, off, same, total) =
            compare(&spec, reference(&spec, rounded), ours(&spec, vb), 40);
        println!("{dt:?}: max relative |diff| {worst:.2e}; depformer tokens {same}/{total}");
        assert!(
            worst < 1e-5 && off == 0,
            "{dt:?}: max relative |diff| {worst}"
        );
        assert_eq!(same, total, "{dt:?}: greedy depformer tokens");
    }
}

/// q8_0 and q4_0 blocks are read by our kernels as stored, against
/// activations quantised as candle does: the reference is the moshi crate's
/// own quantised model on the same GGUF (candle's q8_0 · q8_0 products).
#[test]
fn quantised_kernels_equal_moshis_quantised_model_on_the_same_file() {
    let spec = spec();
    let tensors = make_lm_tensors(&spec, 23).unwrap();
    for q in [GgmlDType::Q8_0, GgmlDType::Q4_0] {
        let mut buf = Cursor::new(Vec::new());
        write_gguf(&tensors, q, &mut buf).unwrap();
        let qvb = || {
            MaybeQuantizedVarBuilder::Quantized(
                candle_transformers::quantized_var_builder::VarBuilder::from_gguf_buffer(
                    buf.get_ref(),
                    &Device::Cpu,
                )
                .unwrap(),
            )
        };
        let (ol, od) = ours(&spec, qvb());
        // The weights really are held quantised: ~1.06 (q8) / 0.56 (q4) bytes each.
        let params: usize = tensors
            .iter()
            .filter(|(n, t)| t.dims().len() == 2 && !n.contains("emb"))
            .map(|(_, t)| t.elem_count())
            .sum();
        let per = (ol.weight_bytes() + od.weight_bytes()) as f64 / params as f64;
        let want = if q == GgmlDType::Q8_0 {
            34.0 / 32.0
        } else {
            18.0 / 32.0
        };
        println!("{q:?}: {per:.3} bytes per weight read");
        assert!((per - want).abs() < 1e-3, "{q:?}: {per} bytes per weight");
        let reference = moshi(&spec, qvb());
        let (worst, off, same, total) = compare(&spec, reference, (ol, od), 40);
        println!(
            "{q:?}: max relative |diff| {worst:.2e} ({off} of 40 steps over 1e-5); depformer tokens {same}/{total}"
        );
        // Equal to float rounding, except where an activation lands so near a
        // rounding tie of its 8-bit quantisation that the two summation
        // orders round it apart (one value off by one step: ~1e-3 at most).
        assert!(
            off <= 2 && worst < 1e-2,
            "{q:?}: max relative |diff| {worst}, {off} steps over 1e-5"
        );
        assert!(
            same * 100 >= total * 99,
            "{q:?}: greedy depformer tokens {same}/{total}"
        );
    }
}

#[test]
fn out_of_range_tokens_are_errors_not_panics() {
    let spec = tiny_lm_spec();
    let tensors = make_lm_tensors(&spec, 1).unwrap();
    let vb = MaybeQuantizedVarBuilder::Real(candle_nn::VarBuilder::from_tensors(
        tensors.into_iter().collect(),
        DType::F32,
        &Device::Cpu,
    ));
    let (mut lm, mut dep) = ours(&spec, vb);
    let e = lm.step(Some(5000), &[]).unwrap_err().to_string();
    assert!(e.contains("token 5000 outside a vocabulary of 1001"), "{e}");
    let too_many = vec![Some(1); 17];
    assert!(lm.step(Some(1), &too_many).is_err());
    let mut greedy = LogitsProcessor::new(0, None, None);
    assert!(dep.sample(&[0.0; 3], Some(1), &[], &mut greedy).is_err());
}
