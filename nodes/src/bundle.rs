//! Model bundles: a directory holding a Mimi codec and a Moshi LM.
//!
//! Detection, in order:
//! 1. `antiphon.json` (see [`Manifest`]) names the files and gives explicit configs.
//! 2. Otherwise kyutai's published candle layout: LM `model.safetensors` (or any
//!    `*.gguf`), Mimi `tokenizer-*.safetensors`, optional `config.json`. Sizes
//!    are inferred from tensor shapes; heads/context come from `config.json`
//!    when present, else Moshi v0.1's values.
//!
//! Every tensor goes through [`CheckedBackend`](crate::weights::CheckedBackend):
//! missing, wrong shape, unsupported dtype or non-finite values give a
//! [`ModelError`] naming the file and tensor. Loading never panics.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle::{DType, Device};
use moshi::lm::{DepFormer, LmModel};
use moshi::nn::MaybeQuantizedVarBuilder;

use crate::builtin::{builtin_dir, BUILTIN_SEED, MANIFEST_FILE};
use crate::codec::{MimiDecoder, MimiEncoder};
use crate::errors::ModelError;
use crate::precision::{DeviceChoice, Precision};
use crate::spec::{infer_lm, infer_mimi, FileSpec, GenerationSpec, Manifest, MANIFEST_FORMAT};
use crate::weights::{
    gguf_quantization, gguf_shapes, open_safetensors, safetensors_shapes, CheckedBackend,
    SharedBackend,
};

/// Samples per Mimi frame at 24 kHz (80 ms).
pub const FRAME_SAMPLES: usize = 1920;
/// Mimi's sample rate.
pub const MODEL_RATE: f64 = 24_000.0;

/// A loaded model: pristine (never stepped) copies of every part. Nodes clone
/// what they need (tensors are reference-counted, so clones are cheap).
pub struct ModelBundle {
    pub dir: PathBuf,
    pub manifest: Manifest,
    pub lm_file: PathBuf,
    pub mimi_file: PathBuf,
    /// `true` when the LM came from a GGUF file (moshi's quantized path).
    pub lm_quantized: bool,
    lm_dtype: DType,
    pub(crate) encoder: MimiEncoder,
    pub(crate) decoder: MimiDecoder,
    pub(crate) backbone: LmModel,
    pub(crate) depformer: DepFormer,
    /// Codes Mimi gives for digital silence in steady state (fed when `listen` is off).
    pub silence_codes: Vec<u32>,
}

/// Loader options.
#[derive(Clone, Copy, Debug)]
pub struct LoadOptions {
    /// Scan every tensor for NaN/Inf.
    pub check_finite: bool,
    /// LM weight precision; `None`: f32 for safetensors, the file's own for GGUF.
    pub precision: Option<Precision>,
    /// Where the LM runs (the Mimi codec always runs on the CPU).
    pub device: DeviceChoice,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            check_finite: true,
            precision: None,
            device: DeviceChoice::Cpu,
        }
    }
}

impl ModelBundle {
    /// Loads the directory with default options.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self, ModelError> {
        Self::load_with(dir, LoadOptions::default())
    }

    /// The built-in tiny model (random weights), written once to a cache
    /// directory and loaded through the same loader as real weights.
    pub fn builtin() -> Result<Self, ModelError> {
        Self::load(builtin_dir(BUILTIN_SEED)?)
    }

    /// Loads the directory with explicit [`LoadOptions`] (precision, device, checks).
    pub fn load_with(dir: impl AsRef<Path>, opts: LoadOptions) -> Result<Self, ModelError> {
        let dir = dir.as_ref().to_path_buf();
        if !dir.exists() {
            return Err(ModelError::MissingDir(dir));
        }
        if !dir.is_dir() {
            return Err(ModelError::NotADir(dir));
        }
        let manifest = detect(&dir)?;
        let lm_file = dir.join(&manifest.lm.file);
        let mimi_file = dir.join(&manifest.mimi.file);
        let dev = Device::Cpu;
        let lm_dev = opts.device.open().map_err(ModelError::Unsupported)?;

        // Mimi: always f32 (its convs are precision-sensitive and cheap).
        let mimi_cfg = manifest
            .mimi
            .config
            .to_moshi()
            .map_err(|e| ModelError::config(&mimi_file, e))?;
        let st = open_safetensors(&mimi_file)?;
        let backend = Arc::new(CheckedBackend::new(&mimi_file, st, opts.check_finite));
        let vb = candle_nn::VarBuilder::from_backend(
            Box::new(SharedBackend(backend.clone())),
            DType::F32,
            dev.clone(),
        );
        let built = MimiEncoder::new(&mimi_cfg, FRAME_SAMPLES, vb.clone())
            .and_then(|m| Ok((m, MimiDecoder::new(&mimi_cfg, FRAME_SAMPLES, vb)?)));
        let (encoder, decoder) = built.map_err(|e| {
            backend
                .take_error()
                .unwrap_or_else(|| ModelError::model(&mimi_file, e))
        })?;

        // LM: backbone and depformer built separately over the same weights.
        let lm = &manifest.lm.config;
        let lm_cfg = lm
            .to_moshi(false)
            .map_err(|e| ModelError::config(&lm_file, e))?;
        let dep_cfg = lm
            .depformer_config()
            .map_err(|e| ModelError::config(&lm_file, e))?;
        let lm_quantized = is_gguf(&lm_file);
        let lm_dtype = lm_precision(&lm_file, lm_quantized, opts)?;
        let build = |vb: MaybeQuantizedVarBuilder| -> candle::Result<(LmModel, DepFormer)> {
            let backbone = LmModel::new(&lm_cfg, vb.clone())?;
            let dep = DepFormer::new(
                lm.text_in_vocab_size,
                lm.audio_vocab_size,
                lm.transformer.d_model,
                &dep_cfg,
                vb.pp("depformer"),
            )?;
            Ok((backbone, dep))
        };
        let (backbone, depformer) = if lm_quantized {
            gguf_shapes(&lm_file)?; // typed error for truncated/corrupt files
            let qvb = candle_transformers::quantized_var_builder::VarBuilder::from_gguf(
                &lm_file, &lm_dev,
            )
            .map_err(|e| ModelError::Corrupt {
                file: lm_file.clone(),
                format: "GGUF",
                detail: e.to_string(),
            })?;
            build(MaybeQuantizedVarBuilder::Quantized(qvb))
                .map_err(|e| ModelError::model(&lm_file, e))?
        } else {
            let st = open_safetensors(&lm_file)?;
            let backend = Arc::new(CheckedBackend::new(&lm_file, st, opts.check_finite));
            let vb = candle_nn::VarBuilder::from_backend(
                Box::new(SharedBackend(backend.clone())),
                lm_dtype,
                lm_dev.clone(),
            );
            build(MaybeQuantizedVarBuilder::Real(vb)).map_err(|e| {
                backend
                    .take_error()
                    .unwrap_or_else(|| ModelError::model(&lm_file, e))
            })?
        };

        let silence_codes =
            silence_codes(&encoder).map_err(|e| ModelError::model(&mimi_file, e))?;
        Ok(Self {
            dir,
            manifest,
            lm_file,
            mimi_file,
            lm_quantized,
            lm_dtype,
            encoder,
            decoder,
            backbone,
            depformer,
            silence_codes,
        })
    }

    /// The dtype the LM's weights are kept in (quantised GGUF tensors report F32,
    /// the dtype they compute in).
    pub fn lm_dtype(&self) -> DType {
        self.lm_dtype
    }

    pub fn generation(&self) -> &GenerationSpec {
        &self.manifest.generation
    }

    /// The moshi crate's LM config (with depformer), for reference runs.
    pub fn lm_config(&self) -> moshi::lm::Config {
        self.manifest
            .lm
            .config
            .to_moshi(true)
            .expect("validated at load")
    }

    /// The moshi crate's Mimi config.
    pub fn mimi_config(&self) -> moshi::mimi::Config {
        self.manifest
            .mimi
            .config
            .to_moshi()
            .expect("validated at load")
    }

    /// A fresh full `LmModel` loaded by the moshi crate's own loader (parity reference).
    pub fn reference_lm(&self) -> candle::Result<LmModel> {
        moshi::lm::load_lm_model(self.lm_config(), &self.lm_file, DType::F32, &Device::Cpu)
    }

    /// A fresh `Mimi` loaded by the moshi crate's own var-builder (parity reference).
    pub fn reference_mimi(&self) -> candle::Result<moshi::mimi::Mimi> {
        let vb = unsafe {
            candle_nn::VarBuilder::from_mmaped_safetensors(
                &[&self.mimi_file],
                DType::F32,
                &Device::Cpu,
            )?
        };
        moshi::mimi::Mimi::new(self.mimi_config(), vb)
    }
}

/// The dtype the LM's weights are kept in, or why the asked precision cannot
/// be honoured for this file on this device.
fn lm_precision(file: &Path, gguf: bool, opts: LoadOptions) -> Result<DType, ModelError> {
    let unsupported = |m: String| Err(ModelError::Unsupported(m));
    if gguf {
        let stored = gguf_quantization(file)?;
        return match opts.precision {
            None => Ok(DType::F32),
            Some(Precision::Quantized(q)) if q == stored => Ok(DType::F32),
            Some(p) => unsupported(format!(
                "`{}` is a GGUF file quantised as {}; --dtype {p} cannot be applied to it \
                 (omit --dtype, or point --model at a safetensors LM for f32/f16/bf16)",
                file.display(),
                Precision::quant_name(stored)
            )),
        };
    }
    match opts.precision {
        None => Ok(DType::F32),
        Some(Precision::Quantized(q)) => unsupported(format!(
            "`{}` is a safetensors file (f32/f16/bf16 weights); --dtype {} needs a GGUF file \
             quantised that way (or use --dtype f32, f16 or bf16)",
            file.display(),
            Precision::quant_name(q)
        )),
        Some(Precision::Bf16) if opts.device == DeviceChoice::Cpu => unsupported(
            "--dtype bf16: candle 0.9 has no bf16 matrix multiply on the CPU; use --dtype f16 \
             (also 2 bytes per parameter), a q8_0/q4_0 GGUF, or --device cuda"
                .into(),
        ),
        Some(p) => Ok(p.float_dtype().unwrap_or(DType::F32)),
    }
}

fn is_gguf(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "gguf")
}

/// Reads the manifest, or builds one from kyutai's layout.
fn detect(dir: &Path) -> Result<Manifest, ModelError> {
    let mpath = dir.join(MANIFEST_FILE);
    if mpath.is_file() {
        let text = std::fs::read_to_string(&mpath).map_err(|e| ModelError::io(&mpath, e))?;
        let m: Manifest = serde_json::from_str(&text).map_err(|e| ModelError::config(&mpath, e))?;
        m.validate().map_err(|e| ModelError::config(&mpath, e))?;
        for f in [&m.lm.file, &m.mimi.file] {
            if !dir.join(f).is_file() {
                return Err(ModelError::MissingFile {
                    dir: dir.into(),
                    what: "file named in antiphon.json",
                    looked_for: f.clone(),
                });
            }
        }
        return Ok(m);
    }
    let names: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| ModelError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    let mut mimi: Vec<&String> = names
        .iter()
        .filter(|n| n.starts_with("tokenizer-") && n.ends_with(".safetensors"))
        .collect();
    mimi.sort();
    let mimi = mimi.first().ok_or_else(|| ModelError::MissingFile {
        dir: dir.into(),
        what: "Mimi codec",
        looked_for: format!("{MANIFEST_FILE} or tokenizer-*.safetensors"),
    })?;
    let mut lm: Vec<&String> = names
        .iter()
        .filter(|n| {
            (n.ends_with(".safetensors") && !n.starts_with("tokenizer")) || n.ends_with(".gguf")
        })
        .collect();
    // Prefer kyutai's `model.safetensors`, then any safetensors, then GGUF.
    lm.sort_by_key(|n| {
        (
            n.as_str() != "model.safetensors",
            n.ends_with(".gguf"),
            n.to_string(),
        )
    });
    let lm = lm.first().ok_or_else(|| ModelError::MissingFile {
        dir: dir.into(),
        what: "Moshi LM",
        looked_for: "model.safetensors or *.gguf".into(),
    })?;
    let kyutai_cfg = dir.join("config.json");
    let kyutai: Option<serde_json::Value> = if kyutai_cfg.is_file() {
        let t = std::fs::read_to_string(&kyutai_cfg).map_err(|e| ModelError::io(&kyutai_cfg, e))?;
        Some(serde_json::from_str(&t).map_err(|e| ModelError::config(&kyutai_cfg, e))?)
    } else {
        None
    };
    let lm_path = dir.join(lm);
    let lm_shapes = if is_gguf(&lm_path) {
        gguf_shapes(&lm_path)?
    } else {
        safetensors_shapes(&open_safetensors(&lm_path)?)
    };
    let lm_spec =
        infer_lm(&lm_shapes, kyutai.as_ref()).map_err(|e| ModelError::config(&lm_path, e))?;
    let mimi_path = dir.join(mimi);
    let mut mimi_spec = infer_mimi(&safetensors_shapes(&open_safetensors(&mimi_path)?))
        .map_err(|e| ModelError::config(&mimi_path, e))?;
    let generation = GenerationSpec {
        generated_audio_codebooks: lm_spec.depformer.num_slices,
        input_audio_codebooks: lm_spec
            .audio_codebooks
            .saturating_sub(lm_spec.depformer.num_slices),
        ..GenerationSpec::moshi_v0_1(lm_spec.text_in_vocab_size)
    };
    // Kyutai ship all 32 Mimi levels; Moshi uses the first 8 (fewer = cheaper).
    mimi_spec.quantizer_n_q = mimi_spec.quantizer_n_q.min(
        generation
            .generated_audio_codebooks
            .max(generation.input_audio_codebooks),
    );
    let m = Manifest {
        format: MANIFEST_FORMAT.into(),
        name: dir
            .file_name()
            .map_or_else(|| "model".into(), |n| n.to_string_lossy().into_owned()),
        lm: FileSpec {
            file: lm.to_string(),
            config: lm_spec,
        },
        mimi: FileSpec {
            file: mimi.to_string(),
            config: mimi_spec,
        },
        generation,
        text_tokenizer: names
            .iter()
            .find(|n| n.starts_with("tokenizer_spm") && n.ends_with(".model"))
            .cloned(),
    };
    m.validate().map_err(|e| ModelError::config(&lm_path, e))?;
    Ok(m)
}

/// Steady-state codes of digital silence: encode a few zero frames with a
/// private copy of the encoder and keep the last (the first frames carry padding).
fn silence_codes(encoder: &MimiEncoder) -> candle::Result<Vec<u32>> {
    let mut m = encoder.clone();
    m.reset_state();
    let zeros = vec![0.0; FRAME_SAMPLES];
    let mut codes = Vec::new();
    for _ in 0..4 {
        m.encode_step(&zeros, &mut codes)?;
    }
    Ok(codes)
}
