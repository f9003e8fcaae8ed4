//! Model bundles: a directory holding a model of one [`family`](crate::family)
//! (Mimi, and for Moshi/Hibiki a language model).
//!
//! Detection, in order:
//! 1. `antiphon.json` (see [`Manifest`]) names the family and the files and
//!    gives explicit configs.
//! 2. Otherwise each family in turn recognises the folder from its files
//!    ([`Family::recognises`]): kyutai's published layouts (see the family
//!    modules). Sizes are inferred from tensor shapes.
//!
//! Every tensor goes through [`CheckedBackend`](crate::weights::CheckedBackend):
//! missing, wrong shape, unsupported dtype or non-finite values give a
//! [`ModelError`] naming the file and tensor. Loading never panics.

use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use antiphon_framework::engine::EngineConfig;

use candle::{DType, Device};
use moshi::lm::{DepFormer, LmModel};
use moshi::nn::MaybeQuantizedVarBuilder;

use crate::builtin::{builtin_dir, BUILTIN_SEED, MANIFEST_FILE};
use crate::codec::{MimiDecoder, MimiEncoder};
use crate::errors::ModelError;
use crate::family::{self, Family};
use crate::lm::{LmBackbone, LmDepformer};
use crate::precision::{DeviceChoice, Precision};
use crate::pytorch_layout::{is_pytorch, PytorchNames};
use crate::spec::{GenerationSpec, LmSpec, Manifest, MimiSpec};
use crate::weights::{
    gguf_quantization, gguf_shapes, open_safetensors, safetensors_shapes, CheckedBackend,
    SharedBackend,
};

/// Samples per Mimi frame at 24 kHz (80 ms).
pub const FRAME_SAMPLES: usize = 1920;
/// Mimi's sample rate.
pub const MODEL_RATE: f64 = 24_000.0;

/// A loaded model: its family and pristine (never stepped) copies of every
/// part. Nodes clone what they need (tensors are reference-counted, so clones
/// are cheap).
pub struct ModelBundle {
    pub dir: PathBuf,
    /// The family that loaded it: its graph, pacing, knobs and delay.
    pub family: &'static dyn Family,
    pub manifest: Manifest,
    pub mimi_file: PathBuf,
    pub(crate) encoder: MimiEncoder,
    pub(crate) decoder: MimiDecoder,
    /// Codes Mimi gives for digital silence in steady state (fed when `listen` is off).
    pub silence_codes: Vec<u32>,
    /// The language model (Moshi, Hibiki); `None` for the codec alone.
    pub lm: Option<LmParts>,
    /// A family's own loaded parts (families beyond Mimi + LM), read back with
    /// [`ModelBundle::parts`].
    parts: Option<Box<dyn Any + Send + Sync>>,
}

/// A loaded Moshi-architecture language model.
pub struct LmParts {
    pub file: PathBuf,
    /// `true` when the LM came from a GGUF file.
    pub quantized: bool,
    dtype: DType,
    pub(crate) engine: LmEngine,
}

/// Which implementation runs the LM.
#[derive(Clone)]
pub(crate) enum LmEngine {
    /// Ours, on the CPU ([`crate::lm`]): weights in the chosen precision,
    /// bandwidth-bound batch-1 kernels.
    Kernels {
        backbone: LmBackbone,
        depformer: LmDepformer,
    },
    /// The moshi crate's, on a GPU device.
    Candle {
        backbone: LmModel,
        depformer: DepFormer,
        device: Device,
    },
}

impl LmParts {
    /// Bytes of weights a backbone step and a depformer frame read, when the
    /// LM runs on our kernels (`None` on a GPU).
    pub fn step_weight_bytes(&self) -> Option<(usize, usize)> {
        match &self.engine {
            LmEngine::Kernels {
                backbone,
                depformer,
            } => Some((backbone.weight_bytes(), depformer.weight_bytes())),
            LmEngine::Candle { .. } => None,
        }
    }

    /// A fresh backbone and depformer on our kernels (benchmarks, parity).
    pub fn kernels(&self) -> Option<(LmBackbone, LmDepformer)> {
        match &self.engine {
            LmEngine::Kernels {
                backbone,
                depformer,
            } => Some((backbone.fresh(), depformer.fresh())),
            LmEngine::Candle { .. } => None,
        }
    }
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

    /// Loads the directory with explicit [`LoadOptions`] (precision, device,
    /// checks): finds its family (`antiphon.json`, else recognised from the
    /// files) and lets the family load it.
    pub fn load_with(dir: impl AsRef<Path>, opts: LoadOptions) -> Result<Self, ModelError> {
        let dir = dir.as_ref().to_path_buf();
        if !dir.exists() {
            return Err(ModelError::MissingDir(dir));
        }
        if !dir.is_dir() {
            return Err(ModelError::NotADir(dir));
        }
        let manifest = read_manifest(&dir)?;
        let family = match &manifest {
            Some(m) => family::by_name(&m.family)
                .map_err(|e| ModelError::config(dir.join(MANIFEST_FILE), e))?,
            None => recognise(&dir)?,
        };
        let bundle = family.load(&dir, manifest, opts);
        release_load_temporaries();
        bundle
    }

    /// A bundle of Mimi (loaded from `manifest.mimi`) and, when the manifest
    /// has one, the LM; for families' [`Family::load`].
    pub fn assemble(
        dir: &Path,
        family: &'static dyn Family,
        manifest: Manifest,
        opts: LoadOptions,
    ) -> Result<Self, ModelError> {
        let mimi_file = dir.join(&manifest.mimi.file);
        let (encoder, decoder) = load_mimi(&mimi_file, &manifest.mimi.config, opts)?;
        let lm = match &manifest.lm {
            Some(l) => Some(load_lm(&dir.join(&l.file), &l.config, opts)?),
            None => None,
        };
        let silence_codes =
            silence_codes(&encoder).map_err(|e| ModelError::model(&mimi_file, e))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            family,
            manifest,
            mimi_file,
            encoder,
            decoder,
            silence_codes,
            lm,
            parts: None,
        })
    }

    /// Attaches a family's own loaded parts (see [`ModelBundle::parts`]).
    pub fn with_parts(mut self, parts: impl Any + Send + Sync) -> Self {
        self.parts = Some(Box::new(parts));
        self
    }

    /// The family's own parts, if they are of type `T`.
    pub fn parts<T: Any>(&self) -> Option<&T> {
        self.parts.as_ref().and_then(|p| p.downcast_ref())
    }

    /// The language model; an error naming the family when it has none.
    pub fn lm(&self) -> Result<&LmParts, String> {
        self.lm.as_ref().ok_or_else(|| {
            format!(
                "`{}` holds a `{}` model, which has no language model",
                self.dir.display(),
                self.family.name()
            )
        })
    }

    /// The LM's config, if the model has an LM.
    pub fn lm_spec(&self) -> Option<&LmSpec> {
        self.manifest.lm.as_ref().map(|l| &l.config)
    }

    /// The dtype the LM's weights are kept in (quantised GGUF tensors report F32,
    /// the dtype they compute in); F32 without an LM.
    pub fn lm_dtype(&self) -> DType {
        self.lm.as_ref().map_or(DType::F32, |l| l.dtype)
    }

    /// The LM's stream layout (Moshi v0.1's for a model without an LM).
    pub fn generation(&self) -> GenerationSpec {
        match &self.manifest.generation {
            Some(g) => g.clone(),
            None => GenerationSpec::moshi_v0_1(0),
        }
    }

    /// Codebooks the decoder turns into audio: those the LM generates, or all
    /// of Mimi's for the codec alone.
    pub fn decoded_codebooks(&self) -> usize {
        match &self.manifest.generation {
            Some(g) => g.generated_audio_codebooks,
            None => self.manifest.mimi.config.quantizer_n_q,
        }
    }

    /// The file that made this folder its family: `antiphon.json`, else
    /// kyutai's `config.json`, else the weights it was recognised from.
    pub fn family_source(&self) -> PathBuf {
        [MANIFEST_FILE, "config.json"]
            .iter()
            .map(|f| self.dir.join(f))
            .find(|p| p.is_file())
            .unwrap_or_else(|| self.mimi_file.clone())
    }

    /// `Ok` when this model does `task`; otherwise why not, naming the file
    /// that says what it is and the families that would do (`what` names the
    /// command or mode asking, e.g. "`antiphon live` (a conversation)").
    pub fn expect_task(&self, task: family::Task, what: &str) -> Result<(), String> {
        if self.family.task() == task {
            return Ok(());
        }
        let fit: Vec<&str> = family::all()
            .iter()
            .filter(|f| f.task() == task)
            .map(|f| f.name())
            .collect();
        Err(format!(
            "`{}` makes this a `{}` model, {}; {what} needs {} (family {})",
            self.family_source().display(),
            self.family.name(),
            self.family.task().describe(),
            task.describe(),
            fit.join(" or ")
        ))
    }

    /// The model's graph at `rate`, each node passed through `wrap`.
    pub fn graph_with(
        &self,
        rate: f64,
        seed: u64,
        wrap: impl FnMut(
            &str,
            Box<dyn antiphon_framework::node::Node>,
        ) -> Box<dyn antiphon_framework::node::Node>,
    ) -> Result<antiphon_framework::graph::Graph, String> {
        family::build(self, rate, seed, wrap)
    }

    /// The delay (samples at `rate`) this model's output has against its
    /// input when it is fixed (an effect, reported to the host); `None` when
    /// the lead controller adapts it.
    pub fn fixed_delay_samples(&self, rate: f64, engine: &EngineConfig) -> Option<usize> {
        self.family.fixed_delay_samples(self, rate, engine)
    }

    /// The moshi crate's LM config (with depformer), for reference runs.
    pub fn lm_config(&self) -> Result<moshi::lm::Config, String> {
        self.lm_spec()
            .ok_or_else(|| "no language model".to_string())?
            .to_moshi(true)
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
        let cfg = self.lm_config().map_err(candle::Error::Msg)?;
        let file = &self.lm().map_err(candle::Error::Msg)?.file;
        moshi::lm::load_lm_model(cfg, file, DType::F32, &Device::Cpu)
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

/// Mimi's encoder and decoder from `file` (always f32: its convs are
/// precision-sensitive and cheap).
fn load_mimi(
    file: &Path,
    spec: &MimiSpec,
    opts: LoadOptions,
) -> Result<(MimiEncoder, MimiDecoder), ModelError> {
    let cfg = spec.to_moshi().map_err(|e| ModelError::config(file, e))?;
    let st = open_safetensors(file)?;
    let backend = Arc::new(CheckedBackend::new(file, st, opts.check_finite));
    let vb = candle_nn::VarBuilder::from_backend(
        Box::new(SharedBackend(backend.clone())),
        DType::F32,
        Device::Cpu,
    );
    MimiEncoder::new(&cfg, FRAME_SAMPLES, vb.clone())
        .and_then(|m| Ok((m, MimiDecoder::new(&cfg, FRAME_SAMPLES, vb)?)))
        .map_err(|e| {
            backend
                .take_error()
                .unwrap_or_else(|| ModelError::model(file, e))
        })
}

/// The LM's backbone and depformer, built separately over the same weights.
fn load_lm(file: &Path, lm: &LmSpec, opts: LoadOptions) -> Result<LmParts, ModelError> {
    let lm_dev = opts.device.open().map_err(ModelError::Unsupported)?;
    let lm_cfg = lm
        .to_moshi(false)
        .map_err(|e| ModelError::config(file, e))?;
    let dep_cfg = lm
        .depformer_config()
        .map_err(|e| ModelError::config(file, e))?;
    let quantized = is_gguf(file);
    let dtype = lm_precision(file, quantized, opts)?;
    let build = |vb: MaybeQuantizedVarBuilder| -> candle::Result<LmEngine> {
        let (tv, av, d) = (
            lm.text_in_vocab_size,
            lm.audio_vocab_size,
            lm.transformer.d_model,
        );
        if lm_dev.is_cpu() {
            return Ok(LmEngine::Kernels {
                backbone: LmBackbone::new(&lm_cfg, vb.clone())?,
                depformer: LmDepformer::new(tv, av, d, &dep_cfg, vb.pp("depformer"))?,
            });
        }
        Ok(LmEngine::Candle {
            backbone: LmModel::new(&lm_cfg, vb.clone())?,
            depformer: DepFormer::new(tv, av, d, &dep_cfg, vb.pp("depformer"))?,
            device: lm_dev.clone(),
        })
    };
    let engine = if quantized {
        gguf_shapes(file)?; // typed error for truncated/corrupt files
        let qvb = candle_transformers::quantized_var_builder::VarBuilder::from_gguf(file, &lm_dev)
            .map_err(|e| ModelError::Corrupt {
                file: file.into(),
                format: "GGUF",
                detail: e.to_string(),
            })?;
        build(MaybeQuantizedVarBuilder::Quantized(qvb)).map_err(|e| ModelError::model(file, e))?
    } else {
        let st = open_safetensors(file)?;
        let pytorch = is_pytorch(&safetensors_shapes(&st));
        let backend = Arc::new(CheckedBackend::new(file, st, opts.check_finite));
        let shared = SharedBackend(backend.clone());
        let names: Box<dyn candle_nn::var_builder::SimpleBackend> = if pytorch {
            Box::new(PytorchNames(shared))
        } else {
            Box::new(shared)
        };
        let vb = candle_nn::VarBuilder::from_backend(names, dtype, lm_dev.clone());
        build(MaybeQuantizedVarBuilder::Real(vb)).map_err(|e| {
            backend
                .take_error()
                .unwrap_or_else(|| ModelError::model(file, e))
        })?
    };
    Ok(LmParts {
        file: file.into(),
        quantized,
        dtype,
        engine,
    })
}

/// `antiphon.json`, checked, with every file it names present; `None` when
/// the folder has none.
fn read_manifest(dir: &Path) -> Result<Option<Manifest>, ModelError> {
    let mpath = dir.join(MANIFEST_FILE);
    if !mpath.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&mpath).map_err(|e| ModelError::io(&mpath, e))?;
    let m: Manifest = serde_json::from_str(&text).map_err(|e| ModelError::config(&mpath, e))?;
    m.validate().map_err(|e| ModelError::config(&mpath, e))?;
    let files = m.lm.iter().map(|l| &l.file).chain([&m.mimi.file]);
    for f in files {
        if !dir.join(f).is_file() {
            return Err(ModelError::MissingFile {
                dir: dir.into(),
                what: "file named in antiphon.json",
                looked_for: f.clone(),
            });
        }
    }
    Ok(Some(m))
}

/// The file names in `dir`.
pub fn file_names(dir: &Path) -> Result<Vec<String>, ModelError> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| ModelError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    names.sort();
    Ok(names)
}

/// Kyutai's `config.json`, if the folder has one.
pub fn kyutai_config(dir: &Path) -> Result<Option<serde_json::Value>, ModelError> {
    let path = dir.join("config.json");
    if !path.is_file() {
        return Ok(None);
    }
    let t = std::fs::read_to_string(&path).map_err(|e| ModelError::io(&path, e))?;
    serde_json::from_str(&t)
        .map(Some)
        .map_err(|e| ModelError::config(&path, e))
}

/// The family of a folder without `antiphon.json`, from its files.
fn recognise(dir: &Path) -> Result<&'static dyn Family, ModelError> {
    let names = file_names(dir)?;
    let config = kyutai_config(dir)?;
    if let Some(t) = family::declared_type(config.as_ref()) {
        if family::by_name(t).is_err() {
            return Err(ModelError::config(
                dir.join("config.json"),
                format!(
                    "model_type `{t}` is not a model family this build runs (it runs: {})",
                    family::names().join(", ")
                ),
            ));
        }
    }
    family::all()
        .iter()
        .copied()
        .find(|f| f.recognises(&names, config.as_ref()))
        .ok_or_else(|| ModelError::MissingFile {
            dir: dir.into(),
            what: "model this build recognises",
            looked_for: format!(
                "{MANIFEST_FILE}, or kyutai's layout: tokenizer-*.safetensors (Mimi) with \
                 model.safetensors or *.gguf (Moshi, Hibiki), or alone (the codec)"
            ),
        })
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
        Some(p) => Ok(p.float_dtype().unwrap_or(DType::F32)),
    }
}

fn is_gguf(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "gguf")
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

/// Hands the heap pages freed during a load (dtype conversions, file
/// buffers) back to the OS: glibc keeps them otherwise, and a bf16 LM would
/// stay resident at ~2.4 instead of 2.0 bytes per parameter.
fn release_load_temporaries() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // Safety: a plain libc call with no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}
