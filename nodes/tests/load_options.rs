//! `LoadOptions`: precision and device choices, and the one-line errors for
//! what a file or build cannot honour.

use std::path::PathBuf;

use antiphon_nodes::builtin::{self, LmStorage};
use antiphon_nodes::bundle::LoadOptions;
use antiphon_nodes::precision::{DeviceChoice, Precision};
use antiphon_nodes::{ModelBundle, ModelError};
use candle::quantized::GgmlDType;
use candle::DType;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("antiphon-loadopt-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn opts(p: Option<Precision>, device: DeviceChoice) -> LoadOptions {
    LoadOptions {
        precision: p,
        device,
        ..LoadOptions::default()
    }
}

fn err(dir: &std::path::Path, o: LoadOptions) -> String {
    match ModelBundle::load_with(dir, o) {
        Ok(_) => panic!("loaded with {o:?}"),
        Err(e @ ModelError::Unsupported(_)) => e.to_string(),
        Err(e) => panic!("expected an Unsupported error, got {e}"),
    }
}

#[test]
fn half_precision_weights_stay_16_bit_and_the_model_runs() {
    let d = tmp("f16");
    builtin::write_tiny(&d, 3, LmStorage::Safetensors(DType::F32), true).unwrap();
    for (p, dt) in [(Precision::F16, DType::F16), (Precision::Bf16, DType::BF16)] {
        run_precision(&d, p, dt);
    }
    // The default is unchanged: f32.
    assert_eq!(ModelBundle::load(&d).unwrap().lm_dtype(), DType::F32);
}

fn run_precision(d: &std::path::Path, p: Precision, dt: DType) {
    let b = ModelBundle::load_with(d, opts(Some(p), DeviceChoice::Cpu)).unwrap();
    assert_eq!(b.lm_dtype(), dt);
    let (bb, dep) = b.lm().unwrap().step_weight_bytes().unwrap();
    let f32_bytes = {
        let f = ModelBundle::load(d).unwrap();
        let (a, b) = f.lm().unwrap().step_weight_bytes().unwrap();
        a + b
    };
    assert_eq!(
        2 * (bb + dep),
        f32_bytes,
        "{p}: weights held in 2 bytes each"
    );
    let mut chain = antiphon_nodes::chain::OfflineChain::canonical(&b, 24_000.0, 1).unwrap();
    let mut heard = 0f32;
    for k in 0..12 {
        let x: Vec<f32> = (0..1920)
            .map(|i| ((k * 1920 + i) as f32 * 0.05).sin() * 0.3)
            .collect();
        let y = chain.run_frame(&x).unwrap();
        assert!(y.iter().all(|v| v.is_finite()));
        heard = y.iter().fold(heard, |m, v| m.max(v.abs()));
    }
    assert!(heard > 1e-3, "the {p} model produced audio (peak {heard})");
}

#[test]
fn precisions_a_file_or_this_build_cannot_honour_are_one_clear_error() {
    let st = tmp("st");
    builtin::write_tiny(&st, 3, LmStorage::Safetensors(DType::F32), true).unwrap();
    let e = err(
        &st,
        opts(
            Some(Precision::Quantized(GgmlDType::Q4_0)),
            DeviceChoice::Cpu,
        ),
    );
    assert!(
        e.contains("safetensors") && e.contains("q4_0") && e.contains("GGUF"),
        "{e}"
    );
    if !cfg!(feature = "cuda") {
        let e = err(&st, opts(None, DeviceChoice::Cuda(0)));
        assert!(e.contains("--features cuda"), "{e}");
    }

    let g = tmp("gguf");
    builtin::write_tiny(&g, 3, LmStorage::Gguf, false).unwrap();
    let b = ModelBundle::load_with(
        &g,
        opts(
            Some(Precision::Quantized(GgmlDType::Q8_0)),
            DeviceChoice::Cpu,
        ),
    );
    assert!(b.is_ok(), "the file's own quantisation is accepted");
    let e = err(
        &g,
        opts(
            Some(Precision::Quantized(GgmlDType::Q4K)),
            DeviceChoice::Cpu,
        ),
    );
    assert!(e.contains("quantised as q8_0") && e.contains("q4k"), "{e}");
    let e = err(&g, opts(Some(Precision::F16), DeviceChoice::Cpu));
    assert!(e.contains("GGUF") && e.contains("f16"), "{e}");

    // A GGUF whose tensor type id is not one candle knows (patched in place).
    let file = g.join(builtin::KYUTAI_LM_GGUF_FILE);
    let mut bytes = std::fs::read(&file).unwrap();
    let name = b"text_linear.weight";
    let at = bytes
        .windows(name.len())
        .position(|w| w == name)
        .expect("tensor name in the header")
        + name.len();
    // After the name: n_dims (u32), dims (u64 each), then the ggml type (u32).
    let n_dims = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    let ty = at + 4 + 8 * n_dims;
    bytes[ty..ty + 4].copy_from_slice(&99u32.to_le_bytes());
    std::fs::write(&file, bytes).unwrap();
    let e = ModelBundle::load(&g)
        .err()
        .expect("unknown quantisation")
        .to_string();
    assert!(e.contains("type id 99") && e.contains("re-quantise"), "{e}");
}
