//! Model directories: layouts that must load, and bad inputs that must give a
//! typed error naming the file and tensor (never a panic).

use std::collections::BTreeMap;
use std::path::PathBuf;

use antiphon_nodes::builtin::{self, LmStorage, KYUTAI_LM_FILE, KYUTAI_MIMI_FILE, MANIFEST_FILE};
use antiphon_nodes::chain::OfflineChain;
use antiphon_nodes::{ModelBundle, ModelError};
use candle::{DType, Tensor};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("antiphon-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn runs(bundle: &ModelBundle) -> Vec<f32> {
    let mut chain = OfflineChain::canonical(bundle, 24_000.0, 5).unwrap();
    let mut out = Vec::new();
    for k in 0..8 {
        let x: Vec<f32> = (0..1920)
            .map(|i| (((k * 1920 + i) as f32) * 0.05).sin() * 0.3)
            .collect();
        out.extend_from_slice(chain.run_frame(&x).unwrap());
    }
    assert!(out.iter().all(|x| x.is_finite()));
    out
}

fn load_err(dir: &std::path::Path) -> ModelError {
    match ModelBundle::load(dir) {
        Ok(_) => panic!("{} loaded but should not", dir.display()),
        Err(e) => {
            println!("{e}");
            e
        }
    }
}

#[test]
fn kyutai_layout_standin_loads_and_runs() {
    let d = tmp("kyutai");
    let m = builtin::write_tiny(&d, 9, LmStorage::Safetensors(DType::BF16), false).unwrap();
    assert!(!d.join(MANIFEST_FILE).exists());
    assert!(d.join(KYUTAI_LM_FILE).is_file() && d.join(KYUTAI_MIMI_FILE).is_file());
    let b = ModelBundle::load(&d).unwrap();
    // Configs inferred from shapes + config.json equal the ones written.
    assert_eq!(b.manifest.lm, m.lm);
    assert_eq!(b.manifest.mimi.config, m.mimi.config);
    assert_eq!(b.manifest.generation, m.generation);
    runs(&b);
}

#[test]
fn f16_and_gguf_lms_load_and_run() {
    let d = tmp("f16");
    builtin::write_tiny(&d, 9, LmStorage::Safetensors(DType::F16), true).unwrap();
    runs(&ModelBundle::load(&d).unwrap());

    let g = tmp("gguf");
    builtin::write_tiny(&g, 9, LmStorage::Gguf, false).unwrap();
    let b = ModelBundle::load(&g).unwrap();
    assert!(
        b.lm.as_ref().unwrap().quantized,
        "a GGUF LM loads quantised"
    );
    let q = runs(&b);
    let f = runs(&ModelBundle::load(&d).unwrap());
    assert_ne!(q, f, "quantized weights give (slightly) different output");
}

#[test]
fn missing_directory_and_files() {
    let e = load_err(&tmp("does-not-exist"));
    assert!(matches!(e, ModelError::MissingDir(_)));

    let f = tmp("a-file");
    std::fs::write(&f, b"x").unwrap();
    assert!(matches!(load_err(&f), ModelError::NotADir(_)));

    let d = tmp("empty");
    std::fs::create_dir_all(&d).unwrap();
    let e = load_err(&d);
    assert!(
        matches!(
            e,
            ModelError::MissingFile {
                what: "model this build recognises",
                ..
            }
        ) && e.to_string().contains("tokenizer-*.safetensors"),
        "{e}"
    );

    // Manifest naming a file that is not there.
    let d = tmp("no-lm");
    builtin::write_builtin(&d, 1).unwrap();
    std::fs::remove_file(d.join(KYUTAI_LM_FILE)).unwrap();
    let e = load_err(&d);
    assert!(
        matches!(&e, ModelError::MissingFile { looked_for, .. } if looked_for == KYUTAI_LM_FILE),
        "{e}"
    );
}

#[test]
fn truncated_and_corrupt_safetensors() {
    let d = tmp("trunc");
    builtin::write_builtin(&d, 1).unwrap();
    let p = d.join(KYUTAI_MIMI_FILE);
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let e = load_err(&d);
    assert!(
        matches!(&e, ModelError::Corrupt { file, .. } if file.ends_with(KYUTAI_MIMI_FILE)),
        "{e}"
    );

    std::fs::write(&p, b"\xff\xff\xff\xff\xff\xff\xff\x7fgarbage").unwrap();
    let e = load_err(&d);
    assert!(matches!(e, ModelError::Corrupt { .. }), "{e}");

    let g = tmp("trunc-gguf");
    builtin::write_tiny(&g, 1, LmStorage::Gguf, false).unwrap();
    let p = g.join(builtin::KYUTAI_LM_GGUF_FILE);
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() - 100]).unwrap();
    let e = load_err(&g);
    assert!(
        matches!(&e, ModelError::Corrupt { format: "GGUF", .. }),
        "{e}"
    );
}

/// Rewrites one tensor of the LM file of a built-in directory.
fn tamper(name: &str, f: impl FnOnce(&Tensor) -> Tensor) -> (PathBuf, String) {
    let d = tmp(name);
    let m = builtin::write_builtin(&d, 1).unwrap();
    let p = d.join(KYUTAI_LM_FILE);
    let mut ts: BTreeMap<String, Tensor> = candle::safetensors::load(&p, &candle::Device::Cpu)
        .unwrap()
        .into_iter()
        .collect();
    let key = "transformer.layers.1.self_attn.out_proj.weight".to_string();
    let t = f(&ts[&key]);
    ts.insert(key.clone(), t);
    builtin::save_safetensors(&ts, DType::F32, &p).unwrap_or_else(|_| {
        let hm: std::collections::HashMap<_, _> = ts.clone().into_iter().collect();
        candle::safetensors::save(&hm, &p).unwrap()
    });
    let _ = m;
    (d, key)
}

#[test]
fn wrong_shape_dtype_nan_and_missing_tensor() {
    let (d, key) = tamper("shape", |t| t.narrow(0, 0, 32).unwrap());
    let e = load_err(&d);
    assert!(
        matches!(&e, ModelError::Shape { tensor, expected, found, .. } if *tensor == key && expected == &vec![64, 64] && found == &vec![32, 64]),
        "{e}"
    );

    // Integer weights: written directly so the dtype survives.
    let d = tmp("dtype");
    builtin::write_builtin(&d, 1).unwrap();
    let p = d.join(KYUTAI_LM_FILE);
    let mut ts: std::collections::HashMap<String, Tensor> =
        candle::safetensors::load(&p, &candle::Device::Cpu).unwrap();
    let key = "text_linear.weight".to_string();
    let t = ts[&key].to_dtype(DType::I64).unwrap();
    ts.insert(key.clone(), t);
    candle::safetensors::save(&ts, &p).unwrap();
    let e = load_err(&d);
    assert!(
        matches!(&e, ModelError::DType { tensor, found, .. } if *tensor == key && found == "I64"),
        "{e}"
    );

    let (d, key) = tamper("nan", |t| {
        let mut v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        v[17] = f32::NAN;
        Tensor::from_vec(v, t.shape(), t.device()).unwrap()
    });
    let e = load_err(&d);
    assert!(
        matches!(&e, ModelError::NonFinite { tensor, index: 17, .. } if *tensor == key),
        "{e}"
    );
    assert!(e.to_string().contains(KYUTAI_LM_FILE) && e.to_string().contains(&key));

    let d = tmp("missing-tensor");
    builtin::write_builtin(&d, 1).unwrap();
    let p = d.join(KYUTAI_LM_FILE);
    let mut ts: std::collections::HashMap<String, Tensor> =
        candle::safetensors::load(&p, &candle::Device::Cpu).unwrap();
    ts.remove("out_norm.alpha");
    candle::safetensors::save(&ts, &p).unwrap();
    let e = load_err(&d);
    assert!(
        matches!(&e, ModelError::MissingTensor { tensor, .. } if tensor == "out_norm.alpha"),
        "{e}"
    );
}

#[test]
fn unknown_or_inconsistent_config() {
    let d = tmp("cfg");
    builtin::write_builtin(&d, 1).unwrap();
    let p = d.join(MANIFEST_FILE);
    let text = std::fs::read_to_string(&p).unwrap();

    std::fs::write(&p, text.replace("\"rms_norm\"", "\"batch_norm\"")).unwrap();
    let e = load_err(&d);
    assert!(
        matches!(&e, ModelError::Config { detail, .. } if detail.contains("batch_norm")),
        "{e}"
    );

    std::fs::write(
        &p,
        text.replacen("\"format\"", "\"flavour\": 1, \"format\"", 1),
    )
    .unwrap();
    let e = load_err(&d);
    assert!(
        matches!(&e, ModelError::Config { detail, .. } if detail.contains("flavour")),
        "{e}"
    );

    std::fs::write(&p, text.replace("antiphon-model/1", "antiphon-model/99")).unwrap();
    assert!(matches!(load_err(&d), ModelError::Config { .. }));

    std::fs::write(&p, "{ not json").unwrap();
    assert!(matches!(load_err(&d), ModelError::Config { .. }));

    // Valid JSON, sizes that disagree with the weights: a shape error.
    std::fs::write(
        &p,
        text.replace(
            "\"text_out_vocab_size\": 1000",
            "\"text_out_vocab_size\": 999",
        ),
    )
    .unwrap();
    let e = load_err(&d);
    assert!(
        matches!(&e, ModelError::Shape { tensor, .. } if tensor == "text_linear.weight"),
        "{e}"
    );
}

#[test]
fn builtin_is_deterministic_from_its_seed() {
    let (a, b, c) = (tmp("seed-a"), tmp("seed-b"), tmp("seed-c"));
    builtin::write_builtin(&a, 11).unwrap();
    builtin::write_builtin(&b, 11).unwrap();
    builtin::write_builtin(&c, 12).unwrap();
    for f in [KYUTAI_LM_FILE, KYUTAI_MIMI_FILE, MANIFEST_FILE] {
        assert_eq!(
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap(),
            "{f}"
        );
    }
    assert_ne!(
        std::fs::read(a.join(KYUTAI_LM_FILE)).unwrap(),
        std::fs::read(c.join(KYUTAI_LM_FILE)).unwrap()
    );
}
