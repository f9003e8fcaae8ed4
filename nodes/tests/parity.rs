//! Parity: each model node equals calling the moshi crate directly on the same
//! weights (models loaded by the crate's own loaders).

use antiphon_framework::knobs::KnobBus;
use antiphon_framework::node::{FrameContext, Node, Payload};
use antiphon_nodes::backbone::Backbone;
use antiphon_nodes::code_predictor::CodePredictor;
use antiphon_nodes::decoder::Decoder;
use antiphon_nodes::encoder::Encoder;
use antiphon_nodes::{knobs, ModelBundle};
use candle::{Device, Tensor};
use candle_transformers::generation::{LogitsProcessor, Sampling};
use moshi::{StreamMask, StreamTensor};

fn signal(n: usize, off: usize) -> Vec<f32> {
    (off..off + n)
        .map(|i| (0.4 * (i as f64 * 0.0571).sin() + 0.2 * (i as f64 * 0.31).sin()) as f32)
        .collect()
}

/// Largest decoded-sample difference allowed against the moshi crate.
const DECODE_TOLERANCE: f32 = 1e-5;

#[test]
fn nodes_match_the_moshi_crate() {
    let bundle = ModelBundle::builtin().unwrap();
    let bus = KnobBus::new(knobs::all(8)).unwrap();
    let snap = bus.snapshot();
    let seed = 42;
    let steps = 40u64;

    // Ours.
    let mut enc = Encoder::new(&bundle);
    let (mut bb, conv) = Backbone::new(&bundle, seed).unwrap();
    let mut cp = CodePredictor::new(&bundle, conv, seed).unwrap();
    let mut dec = Decoder::new(&bundle);

    // The crate's, on the same files.
    let mut ref_mimi = bundle.reference_mimi().unwrap();
    let mut ref_mimi_dec = ref_mimi.clone();
    let g = bundle.generation();
    let gen_cfg = moshi::lm_generate_multistream::Config {
        generated_audio_codebooks: g.generated_audio_codebooks,
        input_audio_codebooks: g.input_audio_codebooks,
        audio_vocab_size: bundle.lm_spec().unwrap().audio_vocab_size,
        acoustic_delay: g.acoustic_delay,
        text_pad_token: g.text_pad_token,
        text_eop_token: g.text_eop_token,
        text_start_token: g.text_start_token,
    };
    let text_lp = LogitsProcessor::from_sampling(
        seed,
        Sampling::TopK {
            k: 250,
            temperature: 0.7,
        },
    );
    let audio_lp = LogitsProcessor::from_sampling(
        seed + 1,
        Sampling::TopK {
            k: 250,
            temperature: 0.8,
        },
    );
    let mut state = moshi::lm_generate_multistream::State::new(
        bundle.reference_lm().unwrap(),
        steps as usize + 10,
        audio_lp,
        text_lp,
        None,
        None,
        None,
        gen_cfg,
    );
    let mut prev_text = g.text_start_token;

    let mut pay: Vec<Payload> = (0..5).map(|_| Payload::Empty).collect();
    let (mut decoded_frames, mut compared_audio) = (0, 0);
    let (mut max_diff, mut peak) = (0f32, 0f32);
    for k in 0..steps {
        let cx = FrameContext {
            frame: k,
            knobs: &snap,
        };
        let pcm = signal(1920, k as usize * 1920);
        pay[0] = Payload::Audio(pcm.clone());
        let (a, b) = pay.split_at_mut(1);
        enc.process(&cx, &a[0..1], &mut b[0..1]).unwrap();
        // Encoder parity.
        let t = Tensor::from_slice(&pcm, (1, 1, 1920), &Device::Cpu).unwrap();
        let ref_codes = ref_mimi
            .encode_step(&StreamTensor::from_tensor(t), &StreamMask::empty())
            .unwrap();
        let ref_codes: Vec<u32> = ref_codes
            .as_option()
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let ours = pay[1].codes().unwrap().to_vec();
        assert_eq!(ours, ref_codes, "encoder codes at frame {k}");

        // Backbone + code predictor parity against State::step.
        let (a, b) = pay.split_at_mut(2);
        bb.process(&cx, &a[1..2], &mut b[0..1]).unwrap();
        let (a, b) = pay.split_at_mut(3);
        cp.process(&cx, &a[2..3], &mut b[0..1]).unwrap();
        let text = state
            .step(prev_text, &ref_codes[..g.input_audio_codebooks], None, None)
            .unwrap();
        prev_text = text;
        assert_eq!(cp.last_text, Some(text), "text token at step {k}");
        let ref_frame = state
            .last_audio_tokens()
            .map(|v| v[..g.generated_audio_codebooks].to_vec());
        let our_frame = match &pay[3] {
            Payload::Codes(c) => Some(c.clone()),
            _ => None,
        };
        assert_eq!(our_frame, ref_frame, "audio codes at step {k}");

        // Decoder parity (to float rounding).
        let (a, b) = pay.split_at_mut(4);
        dec.process(&cx, &a[3..4], &mut b[0..1]).unwrap();
        if let Some(codes) = ref_frame {
            decoded_frames += 1;
            let t = Tensor::from_slice(&codes, (1, codes.len(), 1), &Device::Cpu).unwrap();
            let r = ref_mimi_dec
                .decode_step(&StreamTensor::from_tensor(t), &StreamMask::empty())
                .unwrap();
            let r: Vec<f32> = r
                .as_option()
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let ours = pay[4].audio().unwrap();
            assert_eq!(r.len(), 1920);
            assert_eq!(ours.len(), 1920);
            // Our streaming conv kernels sum in a different order than candle's
            // im2col + gemm, so samples agree to rounding, not bit for bit.
            let diff = ours
                .iter()
                .zip(&r)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(
                diff <= DECODE_TOLERANCE,
                "decoded audio at step {k}: max |diff| {diff:e}"
            );
            max_diff = max_diff.max(diff);
            peak = r.iter().fold(peak, |p, x| p.max(x.abs()));
            compared_audio += r.len();
        }
    }
    assert!(
        decoded_frames >= steps as usize - 3,
        "most frames had complete codes ({decoded_frames})"
    );
    assert!(peak > 1e-3, "the decoder produced sound (peak {peak})");
    println!(
        "parity: {steps} steps, codes identical, {decoded_frames} frames / {compared_audio} samples within {max_diff:e} (peak {peak})"
    );
}

/// Real-size Mimi (kyutai v0.1 shapes, seeded weights): the layers are wide
/// enough that every thin product and thin conv splits across the pool and
/// each step runs on a pool worker; codes and audio still equal the moshi
/// crate's. (The tiny built-in model above never splits.)
#[test]
fn real_size_mimi_on_the_pool_matches_the_moshi_crate() {
    use antiphon_nodes::builtin::make_mimi_tensors;
    use antiphon_nodes::codec::{MimiDecoder, MimiEncoder};
    use antiphon_nodes::spec::MimiSpec;

    let threads = candle::utils::get_num_threads();
    if threads < 2 {
        println!("SKIPPED: one kernel thread here, so nothing splits across the pool");
        return;
    }
    let spec = MimiSpec::kyutai_v0_1(8);
    let cfg = spec.to_moshi().unwrap();
    let vb = candle_nn::VarBuilder::from_tensors(
        make_mimi_tensors(&spec, 1).unwrap().into_iter().collect(),
        candle::DType::F32,
        &Device::Cpu,
    );
    let mut ref_enc = moshi::mimi::Mimi::new(cfg.clone(), vb.clone()).unwrap();
    let mut ref_dec = ref_enc.clone();
    let mut enc = MimiEncoder::new(&cfg, 1920, vb.clone()).unwrap();
    let mut dec = MimiDecoder::new(&cfg, 1920, vb).unwrap();
    let (mut codes, mut pcm) = (Vec::new(), Vec::new());
    let (mut max_diff, mut peak) = (0f32, 0f32);
    for k in 0..6 {
        let x = signal(1920, k * 1920);
        let t = Tensor::from_slice(&x, (1, 1, 1920), &Device::Cpu).unwrap();
        let rc = ref_enc
            .encode_step(&StreamTensor::from_tensor(t), &StreamMask::empty())
            .unwrap();
        let rc = rc.as_option().unwrap().clone();
        let rcv: Vec<u32> = rc.flatten_all().unwrap().to_vec1().unwrap();
        enc.encode_step(&x, &mut codes).unwrap();
        assert_eq!(codes, rcv, "real-size codes at frame {k}");
        let ra: Vec<f32> = ref_dec
            .decode_step(&StreamTensor::from_tensor(rc), &StreamMask::empty())
            .unwrap()
            .as_option()
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        dec.decode_step(&rcv, rcv.len(), &mut pcm).unwrap();
        assert_eq!(pcm.len(), ra.len());
        for (a, b) in ra.iter().zip(&pcm) {
            max_diff = max_diff.max((a - b).abs());
            peak = peak.max(a.abs());
        }
    }
    println!("real-size Mimi, {threads} threads: max |diff| {max_diff:e}, peak {peak}");
    assert!(peak > 0.1, "the decoder produced sound (peak {peak})");
    assert!(
        max_diff <= DECODE_TOLERANCE,
        "real-size decoded audio: max |diff| {max_diff:e}"
    );
}
