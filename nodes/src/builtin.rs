//! The built-in default model: Mimi + Moshi LM with the real architecture and
//! tensor names at tiny sizes, weights made from a seed with our own RNG.
//!
//! The weights are random: the output is not speech. It exists so the whole
//! graph (loader included) runs and is tested everywhere without downloads.
//! Tensor names and shapes come from the moshi crate itself: we build its
//! models over a recording var-builder backend, so the files always match what
//! the crate's loader asks for.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use candle::{DType, Device, Shape, Tensor};

use crate::errors::ModelError;
use crate::rng::{seed_for, SplitMix64};
use crate::spec::{
    mimi_transformer, DepformerSpec, FileSpec, GenerationSpec, LmSpec, Manifest, MimiSpec,
    TransformerSpec, MANIFEST_FORMAT,
};

/// Kyutai's file names (moshiko/moshika candle releases).
pub const KYUTAI_LM_FILE: &str = "model.safetensors";
pub const KYUTAI_LM_GGUF_FILE: &str = "model.q8.gguf";
pub const KYUTAI_MIMI_FILE: &str = "tokenizer-e351c8d8-checkpoint125.safetensors";
pub const MANIFEST_FILE: &str = "antiphon.json";
/// Seed of the built-in default model.
pub const BUILTIN_SEED: u64 = 0xA171_F0E5;

/// The tiny LM: 2-layer 64-wide backbone (100-step window), 8 one-layer depformer slices.
pub fn tiny_lm_spec() -> LmSpec {
    let t = |d_model, num_heads, num_layers, context, pe: &str| TransformerSpec {
        d_model,
        num_heads,
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
    };
    LmSpec {
        transformer: t(64, 4, 2, 100, "rope"),
        depformer: DepformerSpec {
            transformer: t(32, 2, 1, 8, "none"),
            num_slices: 8,
            low_rank_embeddings: None,
        },
        text_in_vocab_size: 1001,
        text_out_vocab_size: 1000,
        audio_vocab_size: 2049,
        audio_codebooks: 16,
    }
}

/// The tiny Mimi: Mimi's strides and codebook size, 4 base filters, one
/// 64-wide transformer layer (8 heads, as Mimi, so sizes can be inferred).
pub fn tiny_mimi_spec() -> MimiSpec {
    let mut m = MimiSpec::kyutai_v0_1(8);
    m.dimension = 64;
    m.n_filters = 4;
    m.transformer = mimi_transformer(64, 8, 1, 128);
    m.quantizer_dim = 16;
    m
}

/// Sizes of the random-weight models we write (same architecture and tensor
/// names as kyutai's; the weights are random, so the output is not speech).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelSize {
    /// Tiny Mimi and tiny LM: the built-in model.
    Tiny,
    /// Real-size Mimi (kyutai v0.1, 8 codebooks) with the tiny LM, for
    /// benchmarking the codec at its real cost without downloading weights.
    RealMimi,
}

/// Manifest of the built-in model.
pub fn tiny_manifest(lm_file: &str) -> Manifest {
    sized_manifest(ModelSize::Tiny, lm_file)
}

/// Manifest of a model of `size` whose LM is stored in `lm_file`.
pub fn sized_manifest(size: ModelSize, lm_file: &str) -> Manifest {
    let lm = tiny_lm_spec();
    let (name, mimi) = match size {
        ModelSize::Tiny => (
            "antiphon-builtin-tiny (random weights, not speech)",
            tiny_mimi_spec(),
        ),
        ModelSize::RealMimi => (
            "antiphon-real-mimi (real-size Mimi, tiny LM; random weights, not speech)",
            MimiSpec::kyutai_v0_1(8),
        ),
    };
    lm_manifest("moshi", name, lm, mimi, lm_file)
}

/// The Hibiki stand-in: the tiny LM with Hibiki's stream layout (16 generated
/// + 16 input codebooks) over a tiny 16-level Mimi.
pub fn tiny_hibiki_manifest() -> Manifest {
    let mut lm = tiny_lm_spec();
    lm.depformer.num_slices = 16;
    lm.depformer.transformer.context = 16;
    lm.audio_codebooks = 32;
    let mut mimi = tiny_mimi_spec();
    mimi.quantizer_n_q = 16;
    let mut m = lm_manifest(
        "hibiki",
        "antiphon-hibiki-tiny (random weights, not speech)",
        lm,
        mimi,
        KYUTAI_LM_FILE,
    );
    if let Some(g) = m.generation.as_mut() {
        g.generated_audio_codebooks = 16;
        g.input_audio_codebooks = 16;
    }
    m
}

fn lm_manifest(family: &str, name: &str, lm: LmSpec, mimi: MimiSpec, lm_file: &str) -> Manifest {
    Manifest {
        format: MANIFEST_FORMAT.into(),
        name: name.into(),
        family: family.into(),
        generation: Some(GenerationSpec::moshi_v0_1(lm.text_in_vocab_size)),
        lm: Some(FileSpec {
            file: lm_file.into(),
            config: lm,
        }),
        mimi: FileSpec {
            file: KYUTAI_MIMI_FILE.into(),
            config: mimi,
        },
        text_tokenizer: None,
    }
}

/// Writes `antiphon.json` for `m` into `dir`.
pub fn write_manifest(dir: &Path, m: &Manifest) -> Result<(), ModelError> {
    let json = serde_json::to_string_pretty(m).map_err(|e| ModelError::config(MANIFEST_FILE, e))?;
    std::fs::write(dir.join(MANIFEST_FILE), json)
        .map_err(|e| ModelError::io(dir.join(MANIFEST_FILE), e))
}

/// Records every tensor a model constructor asks for, making its values from
/// the seed and the tensor's name.
struct Recorder {
    seed: u64,
    tensors: Mutex<BTreeMap<String, Tensor>>,
}

/// Deterministic init by tensor role, chosen so activations stay O(1) through
/// random layers (no NaN/Inf in a long run).
fn init_values(seed: u64, name: &str, dims: &[usize]) -> Vec<f32> {
    let n: usize = dims.iter().product();
    let last = name.rsplit('.').next().unwrap_or("");
    let is_norm = name.contains("norm");
    let constant = match last {
        "alpha" => Some(1.0),
        "_initialized" | "cluster_usage" => Some(1.0),
        "scale" => Some(0.01),
        "bias" => Some(0.0),
        "weight" if dims.len() == 1 && is_norm => Some(1.0),
        _ => None,
    };
    if let Some(c) = constant {
        return vec![c; n];
    }
    let std = if last == "embedding_sum"
        || name.ends_with("emb.weight")
        || name.contains("emb.") && dims.len() == 2
    {
        1.0
    } else {
        let fan_in: usize = dims.iter().skip(1).product::<usize>().max(1);
        1.0 / (fan_in as f64).sqrt()
    };
    let mut rng = SplitMix64::new(seed_for(seed, name));
    (0..n).map(|_| (rng.next_normal() * std) as f32).collect()
}

impl candle_nn::var_builder::SimpleBackend for Recorder {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _h: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle::Result<Tensor> {
        let mut map = self.tensors.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = map.get(name) {
            return t.to_dtype(dtype);
        }
        let t = Tensor::from_vec(init_values(self.seed, name, s.dims()), s, dev)?;
        map.insert(name.into(), t.clone());
        t.to_dtype(dtype)
    }
    fn get_unchecked(&self, name: &str, _dtype: DType, _dev: &Device) -> candle::Result<Tensor> {
        candle::bail!("recorder needs a shape for `{name}`")
    }
    fn contains_tensor(&self, name: &str) -> bool {
        // Store plain (folded) conv weights rather than weight-norm g/v pairs,
        // as kyutai's candle Mimi checkpoint does.
        name.ends_with(".weight")
    }
}

/// All tensors of a model, made from `seed` by running `build` over a recorder.
pub(crate) fn record(
    seed: u64,
    build: impl FnOnce(candle_nn::VarBuilder) -> candle::Result<()>,
) -> candle::Result<BTreeMap<String, Tensor>> {
    let rec = std::sync::Arc::new(Recorder {
        seed,
        tensors: Mutex::new(BTreeMap::new()),
    });
    let vb = candle_nn::VarBuilder::from_backend(
        Box::new(crate::weights::SharedBackend(rec.clone())),
        DType::F32,
        Device::Cpu,
    );
    build(vb)?;
    let map = std::mem::take(&mut *rec.tensors.lock().unwrap_or_else(|p| p.into_inner()));
    Ok(map)
}

/// The LM's tensors (backbone + depformer) for `spec`, made from `seed`.
pub fn make_lm_tensors(spec: &LmSpec, seed: u64) -> Result<BTreeMap<String, Tensor>, ModelError> {
    let cfg = spec
        .to_moshi(true)
        .map_err(|e| ModelError::config("<builtin lm>", e))?;
    record(seed, |vb| {
        moshi::lm::LmModel::new(&cfg, moshi::nn::MaybeQuantizedVarBuilder::Real(vb)).map(|_| ())
    })
    .map_err(|e| ModelError::model("<builtin lm>", e))
}

/// Mimi's tensors for `spec`, made from `seed`.
pub fn make_mimi_tensors(
    spec: &MimiSpec,
    seed: u64,
) -> Result<BTreeMap<String, Tensor>, ModelError> {
    let cfg = spec
        .to_moshi()
        .map_err(|e| ModelError::config("<builtin mimi>", e))?;
    record(seed, |vb| moshi::mimi::Mimi::new(cfg, vb).map(|_| ()))
        .map_err(|e| ModelError::model("<builtin mimi>", e))
}

/// Saves tensors through candle's normal safetensors path, converted to `dtype`.
pub fn save_safetensors(
    tensors: &BTreeMap<String, Tensor>,
    dtype: DType,
    file: &Path,
) -> Result<(), ModelError> {
    let conv: std::collections::HashMap<String, Tensor> = tensors
        .iter()
        .map(|(k, v)| v.to_dtype(dtype).map(|t| (k.clone(), t)))
        .collect::<candle::Result<_>>()
        .map_err(|e| ModelError::model(file, e))?;
    candle::safetensors::save(&conv, file).map_err(|e| ModelError::io(file, e))
}

/// Saves LM tensors as GGUF: Q8_0 where the row length allows (multiple of
/// 32), F32 elsewhere — the layout of kyutai's `model.q8.gguf`.
pub fn save_gguf(tensors: &BTreeMap<String, Tensor>, file: &Path) -> Result<(), ModelError> {
    let mut f = std::fs::File::create(file).map_err(|e| ModelError::io(file, e))?;
    write_gguf(tensors, candle::quantized::GgmlDType::Q8_0, &mut f)
        .map_err(|e| ModelError::io(file, e))
}

/// Writes LM tensors as GGUF, 2-D weights quantised to `quant` where the row
/// length is a multiple of its block size, everything else F32.
pub fn write_gguf(
    tensors: &BTreeMap<String, Tensor>,
    quant: candle::quantized::GgmlDType,
    w: &mut (impl std::io::Write + std::io::Seek),
) -> candle::Result<()> {
    use candle::quantized::{GgmlDType, QTensor};
    let mut q = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let dims = t.dims();
        let dt = if dims.len() == 2 && dims[1] % quant.block_size() == 0 {
            quant
        } else {
            GgmlDType::F32
        };
        q.push((name.as_str(), QTensor::quantize(t, dt)?));
    }
    let refs: Vec<(&str, &QTensor)> = q.iter().map(|(n, t)| (*n, t)).collect();
    candle::quantized::gguf_file::write(w, &[], &refs)
}

/// How the LM is stored in a written directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LmStorage {
    /// kyutai's candle layout (`depformer.{i}.linear_in`, …).
    Safetensors(DType),
    /// kyutai's PyTorch layout (`depformer_in.{i}`, `linears.{i}`, shared
    /// depformer norms, …; see [`crate::pytorch_layout`]).
    Pytorch(DType),
    Gguf,
}

/// LM tensors under kyutai's PyTorch names (a shared norm once).
fn pytorch_named(tensors: &BTreeMap<String, Tensor>) -> BTreeMap<String, Tensor> {
    tensors
        .iter()
        .map(|(k, v)| (crate::pytorch_layout::to_pytorch(k), v.clone()))
        .collect()
}

/// Writes the built-in model into `dir` (created if needed): LM
/// `model.safetensors` (f32), Mimi `tokenizer-*.safetensors` and `antiphon.json`.
pub fn write_builtin(dir: &Path, seed: u64) -> Result<Manifest, ModelError> {
    write_tiny(dir, seed, LmStorage::Safetensors(DType::F32), true)
}

/// Writes the tiny model with a chosen LM storage; `manifest = false` leaves a
/// directory laid out like kyutai's release (their file names, a kyutai-style
/// `config.json` for what shapes cannot tell, no `antiphon.json`).
pub fn write_tiny(
    dir: &Path,
    seed: u64,
    lm: LmStorage,
    manifest: bool,
) -> Result<Manifest, ModelError> {
    write_model(dir, seed, ModelSize::Tiny, lm, manifest)
}

/// Writes a random-weight model of `size` into `dir` (see [`write_tiny`]).
pub fn write_model(
    dir: &Path,
    seed: u64,
    size: ModelSize,
    lm: LmStorage,
    manifest: bool,
) -> Result<Manifest, ModelError> {
    let lm_file = match lm {
        LmStorage::Safetensors(_) | LmStorage::Pytorch(_) => KYUTAI_LM_FILE,
        LmStorage::Gguf => KYUTAI_LM_GGUF_FILE,
    };
    write_lm_model(dir, seed, sized_manifest(size, lm_file), lm, manifest)
}

/// Writes the random-weight LM model `m` describes into `dir` (created if
/// needed); `manifest = false` writes kyutai's `config.json` instead of
/// `antiphon.json` (see [`write_tiny`]).
pub fn write_lm_model(
    dir: &Path,
    seed: u64,
    m: Manifest,
    lm: LmStorage,
    manifest: bool,
) -> Result<Manifest, ModelError> {
    std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
    let (Some(lm_spec), Some(g)) = (&m.lm, &m.generation) else {
        return Err(ModelError::config(MANIFEST_FILE, "not a language model"));
    };
    let lm_file = lm_spec.file.as_str();
    let lm_t = make_lm_tensors(&lm_spec.config, seed)?;
    match lm {
        LmStorage::Safetensors(dt) => save_safetensors(&lm_t, dt, &dir.join(lm_file))?,
        LmStorage::Pytorch(dt) => save_safetensors(&pytorch_named(&lm_t), dt, &dir.join(lm_file))?,
        LmStorage::Gguf => save_gguf(&lm_t, &dir.join(lm_file))?,
    }
    let mimi_t = make_mimi_tensors(&m.mimi.config, seed ^ 0x4D49_4D49)?;
    save_safetensors(&mimi_t, DType::F32, &dir.join(&m.mimi.file))?;
    if manifest {
        write_manifest(dir, &m)?;
    } else {
        let c = &lm_spec.config;
        let kyutai = serde_json::json!({
            "model_type": m.family,
            "dim": c.transformer.d_model,
            "text_card": c.text_out_vocab_size,
            "existing_text_padding_id": g.text_pad_token,
            "n_q": c.audio_codebooks,
            "dep_q": c.depformer.num_slices,
            "card": c.audio_vocab_size - 1,
            "num_heads": c.transformer.num_heads,
            "num_layers": c.transformer.num_layers,
            "context": c.transformer.context,
            "max_period": c.transformer.max_period,
            "depformer_dim": c.depformer.transformer.d_model,
            "depformer_num_heads": c.depformer.transformer.num_heads,
            "depformer_num_layers": c.depformer.transformer.num_layers,
            "depformer_context": c.depformer.transformer.context,
            "depformer_max_period": c.depformer.transformer.max_period,
            "delays": kyutai_delays(g),
            "moshi_name": lm_file,
            "mimi_name": m.mimi.file,
        });
        std::fs::write(dir.join("config.json"), kyutai.to_string())
            .map_err(|e| ModelError::io(dir.join("config.json"), e))?;
    }
    let mut m = m;
    if !manifest {
        // kyutai's `delays` make the folder run as PyTorch's LMGen does.
        if let Some(g) = m.generation.as_mut() {
            g.alignment = crate::spec::StreamAlignment::Pytorch;
        }
    }
    Ok(m)
}

/// kyutai's `delays` for our stream layout: text and each stream's first
/// codebook undelayed, the others by the acoustic delay (a folder with
/// `delays` runs with PyTorch's stream alignment; see `family::lm`).
fn kyutai_delays(g: &GenerationSpec) -> Vec<usize> {
    let d = g.acoustic_delay;
    let stream = |n: usize| (0..n).map(move |i| if i == 0 { 0 } else { d });
    std::iter::once(0)
        .chain(stream(g.generated_audio_codebooks))
        .chain(stream(g.input_audio_codebooks))
        .collect()
}

/// Directory of the built-in model, written on first use: under
/// `$ANTIPHON_CACHE_DIR`, else the system temp dir, keyed by seed and crate
/// version so a changed generator never reuses stale files.
pub fn builtin_dir(seed: u64) -> Result<PathBuf, ModelError> {
    cached_model_dir("builtin", seed, MANIFEST_FILE, |d, s| {
        write_builtin(d, s).map(|_| ())
    })
}

/// A generated model's directory in the cache (see [`builtin_dir`]): `write`
/// fills it on first use; `marker` is the file whose presence means complete.
pub fn cached_model_dir(
    kind: &str,
    seed: u64,
    marker: &str,
    write: impl FnOnce(&Path, u64) -> Result<(), ModelError>,
) -> Result<PathBuf, ModelError> {
    let base = std::env::var_os("ANTIPHON_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = base.join(format!(
        "antiphon-{kind}-{}-{seed:016x}",
        env!("CARGO_PKG_VERSION")
    ));
    if !dir.join(marker).is_file() {
        // Write into a private temp dir and rename, so concurrent users never
        // see a half-written model.
        let tmp = base.join(format!(
            "antiphon-{kind}-tmp-{}-{:x}",
            std::process::id(),
            seed_for(seed, &format!("{:?}", std::thread::current().id()))
        ));
        write(&tmp, seed)?;
        if std::fs::rename(&tmp, &dir).is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
            if !dir.join(marker).is_file() {
                return Err(ModelError::io(&dir, "could not create the model directory"));
            }
        }
    }
    Ok(dir)
}
