//! How folders are recognised as a family, and the one clear error for a
//! folder that is not what it claims or not what the caller needs.

use std::path::{Path, PathBuf};

use antiphon_nodes::builtin::{
    tiny_hibiki_manifest, write_lm_model, write_model, LmStorage, ModelSize, KYUTAI_LM_FILE,
    KYUTAI_MIMI_FILE, MANIFEST_FILE,
};
use antiphon_nodes::family::{self, Family, Task};
use antiphon_nodes::ModelBundle;
use candle::DType;

/// A scratch folder, removed when dropped (a real-size Mimi is 330 MB; a
/// test run must not leave that behind on the machine that runs it).
struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = PathBuf;
    fn deref(&self) -> &PathBuf {
        &self.0
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tmp(name: &str) -> Scratch {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("families-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    Scratch(d)
}

fn load_err(dir: &Path) -> String {
    match ModelBundle::load(dir) {
        Ok(b) => panic!("`{}` loaded as {}", dir.display(), b.family.name()),
        Err(e) => e.to_string(),
    }
}

fn edit_json(file: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(file, v.to_string()).unwrap();
}

/// kyutai's Mimi file alone is the codec; at real size (kyutai v0.1's
/// layout) it decodes at most the 8 levels the depth knob reaches.
#[test]
fn kyutai_mimi_file_alone_is_the_codec() {
    let d = tmp("real-mimi");
    write_model(
        &d,
        1,
        ModelSize::RealMimi,
        LmStorage::Safetensors(DType::F32),
        true,
    )
    .unwrap();
    let codec = tmp("codec-from-file");
    std::fs::create_dir_all(&codec).unwrap();
    std::fs::copy(d.join(KYUTAI_MIMI_FILE), codec.join(KYUTAI_MIMI_FILE)).unwrap();
    let b = ModelBundle::load(&codec).unwrap();
    assert_eq!(b.family.name(), "codec");
    assert_eq!(b.manifest.mimi.config.dimension, 512, "real-size Mimi");
    assert_eq!(b.decoded_codebooks(), 8);
    assert!(b.lm.is_none());
}

/// Hibiki's stand-in written in kyutai's layout (no manifest), in `name`.
fn hibiki_in_kyutai_layout(name: &str) -> Scratch {
    let d = tmp(name);
    write_lm_model(
        &d,
        1,
        tiny_hibiki_manifest(),
        LmStorage::Safetensors(DType::F32),
        false,
    )
    .unwrap();
    d
}

/// Hibiki in kyutai's layout (`config.json` with `"model_type": "hibiki"`)
/// loads as Hibiki, with its 16 + 16 codebooks.
#[test]
fn kyutai_hibiki_layout_is_hibiki() {
    let d = hibiki_in_kyutai_layout("hibiki-kyutai");
    assert!(!d.join(MANIFEST_FILE).exists());
    let b = ModelBundle::load(&d).unwrap();
    assert_eq!(b.family.name(), "hibiki");
    let g = b.generation();
    assert_eq!(
        (g.generated_audio_codebooks, g.input_audio_codebooks),
        (16, 16)
    );
}

/// Hibiki's stand-in is in its published layout: kyutai's PyTorch names,
/// `config.json` and no manifest; it loads as Hibiki through the same loader.
#[test]
fn hibiki_stand_in_is_in_kyutais_pytorch_layout() {
    let d = tmp("hibiki-stand-in");
    family::HIBIKI.write_stand_in(&d, 1).unwrap();
    assert!(!d.join(MANIFEST_FILE).exists());
    let st = antiphon_nodes::weights::open_safetensors(&d.join(KYUTAI_LM_FILE)).unwrap();
    let names = antiphon_nodes::weights::safetensors_shapes(&st);
    for n in [
        "depformer_in.0.weight",
        "linears.15.weight",
        "depformer_text_emb.weight",
        "depformer.layers.0.self_attn.in_projs.15.weight",
        "depformer.layers.0.norm1.alpha",
    ] {
        assert!(names.contains_key(n), "no `{n}`: not the PyTorch layout");
    }
    let b = ModelBundle::load(&d).unwrap();
    assert_eq!(b.family.name(), "hibiki");
    assert_eq!(b.generation().acoustic_delay, 2);
    assert_eq!(b.lm_spec().unwrap().depformer.transformer.context, 16);
}

/// Moshi's weights with Hibiki's config: refused, naming config.json and
/// what disagrees.
#[test]
fn one_familys_weights_with_anothers_config_is_one_clear_error() {
    let d = tmp("moshi-with-hibiki-config");
    write_model(
        &d,
        1,
        ModelSize::Tiny,
        LmStorage::Safetensors(DType::F32),
        false,
    )
    .unwrap();
    edit_json(&d.join("config.json"), |v| {
        v["model_type"] = "hibiki".into();
        v["n_q"] = 32.into();
        v["dep_q"] = 16.into();
    });
    let e = load_err(&d);
    assert!(
        e.contains("config.json")
            && e.contains("n_q = 32")
            && e.contains(KYUTAI_LM_FILE)
            && e.contains("another model"),
        "{e}"
    );

    // A manifest that calls a Moshi folder the codec, or the codec Moshi.
    let d = tmp("moshi-called-codec");
    family::MOSHI.write_stand_in(&d, 1).unwrap();
    edit_json(&d.join(MANIFEST_FILE), |v| v["family"] = "codec".into());
    let e = load_err(&d);
    assert!(
        e.contains(MANIFEST_FILE) && e.contains("Mimi alone") && e.contains("language model"),
        "{e}"
    );
    let d = tmp("codec-called-moshi");
    family::CODEC.write_stand_in(&d, 1).unwrap();
    edit_json(&d.join(MANIFEST_FILE), |v| v["family"] = "moshi".into());
    let e = load_err(&d);
    assert!(
        e.contains(MANIFEST_FILE) && e.contains("needs a language model"),
        "{e}"
    );
    // Families this build does not know.
    edit_json(&d.join(MANIFEST_FILE), |v| v["family"] = "qwen3-tts".into());
    let e = load_err(&d);
    assert!(
        e.contains(MANIFEST_FILE) && e.contains("unknown model family `qwen3-tts`"),
        "{e}"
    );
    let d = tmp("kyutai-tts");
    write_model(
        &d,
        1,
        ModelSize::Tiny,
        LmStorage::Safetensors(DType::F32),
        false,
    )
    .unwrap();
    edit_json(&d.join("config.json"), |v| v["model_type"] = "tts".into());
    let e = load_err(&d);
    assert!(
        e.contains("config.json") && e.contains("model_type `tts`") && e.contains("hibiki"),
        "{e}"
    );
}

/// A Hibiki folder where a conversation is asked for: why not, naming the
/// file that makes it Hibiki and what would do.
#[test]
fn hibiki_is_not_a_conversation() {
    let d = hibiki_in_kyutai_layout("hibiki-live");
    let b = ModelBundle::load(&d).unwrap();
    let e = b
        .expect_task(Task::Conversation, "`antiphon live` (a conversation)")
        .unwrap_err();
    assert!(
        e.contains(&d.join("config.json").display().to_string())
            && e.contains("speech translation")
            && e.contains("`antiphon live`")
            && e.contains("family moshi"),
        "{e}"
    );
    let moshi = ModelBundle::builtin().unwrap();
    assert!(moshi
        .expect_task(Task::Conversation, "`antiphon live`")
        .is_ok());
}
