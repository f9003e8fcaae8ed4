//! A CSM model folder: `config.json` (either published form, see
//! [`config`](super::config)), the weights (`model.safetensors`, Hugging Face or
//! Sesame tensor names), `tokenizer.json`, and kyutai's Mimi codec
//! (`tokenizer-e351c8d8-checkpoint125.safetensors`, all 32 levels; Sesame's
//! own generator downloads the same file). [`CsmModel`] is CSM's own part;
//! the codec is loaded with every family's Mimi ([`csm_manifest`] names it).
//! Every problem is a [`ModelError`] naming the file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle::{DType, Device};

use super::config::{CsmConfig, TensorLayout};
use super::model::{CsmAudioDecoder, CsmBackbone};
use super::text::{tokenizer_file, CsmTokenizer};
use crate::errors::ModelError;
use crate::spec::{infer_mimi, FileSpec, Manifest, MANIFEST_FORMAT};
use crate::weights::{open_safetensors, safetensors_shapes, CheckedBackend, SharedBackend};

/// The weights file of a CSM folder.
pub const CSM_WEIGHTS_FILE: &str = "model.safetensors";
/// The config file of a CSM folder.
pub const CSM_CONFIG_FILE: &str = "config.json";

/// A loaded CSM model (without its codec): pristine copies of every part;
/// nodes clone what they need (tensors are reference-counted).
#[derive(Clone)]
pub struct CsmModel {
    pub dir: PathBuf,
    pub config: Arc<CsmConfig>,
    pub layout: TensorLayout,
    pub backbone: CsmBackbone,
    pub audio_decoder: CsmAudioDecoder,
    pub tokenizer: CsmTokenizer,
}

fn find_mimi(dir: &Path) -> Result<PathBuf, ModelError> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| ModelError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("tokenizer-") && n.ends_with(".safetensors"))
        })
        .collect();
    found.sort();
    found
        .into_iter()
        .next()
        .ok_or_else(|| ModelError::MissingFile {
            dir: dir.into(),
            what: "Mimi codec",
            looked_for:
                "tokenizer-*.safetensors (kyutai's tokenizer-e351c8d8-checkpoint125.safetensors)"
                    .into(),
        })
}

fn require(dir: &Path, name: &str, what: &'static str) -> Result<PathBuf, ModelError> {
    let p = dir.join(name);
    if p.is_file() {
        Ok(p)
    } else {
        Err(ModelError::MissingFile {
            dir: dir.into(),
            what,
            looked_for: name.into(),
        })
    }
}

impl CsmModel {
    /// Loads CSM's part of a folder (every tensor checked for shape, dtype and NaN/Inf).
    pub fn load(dir: impl AsRef<Path>) -> Result<Self, ModelError> {
        let dir = dir.as_ref().to_path_buf();
        if !dir.is_dir() {
            return Err(if dir.exists() {
                ModelError::NotADir(dir)
            } else {
                ModelError::MissingDir(dir)
            });
        }
        let cfg_file = require(&dir, CSM_CONFIG_FILE, "CSM config")?;
        let text = std::fs::read_to_string(&cfg_file).map_err(|e| ModelError::io(&cfg_file, e))?;
        let config =
            Arc::new(CsmConfig::from_json(&text).map_err(|e| ModelError::config(&cfg_file, e))?);
        let weights = require(&dir, CSM_WEIGHTS_FILE, "CSM weights")?;
        let tokenizer = CsmTokenizer::load(
            &require(&dir, "tokenizer.json", "text tokenizer").map(|_| tokenizer_file(&dir))?,
            config.text_vocab,
        )?;

        let st = open_safetensors(&weights)?;
        let layout = TensorLayout::detect(&safetensors_shapes(&st))
            .map_err(|e| ModelError::config(&weights, e))?;
        let backend = Arc::new(CheckedBackend::new(&weights, st, true));
        let vb = candle_nn::VarBuilder::from_backend(
            Box::new(SharedBackend(backend.clone())),
            DType::F32,
            Device::Cpu,
        );
        let built = CsmBackbone::new(config.clone(), layout, &vb)
            .and_then(|b| Ok((b, CsmAudioDecoder::new(config.clone(), layout, &vb)?)));
        let (backbone, audio_decoder) = built.map_err(|e| {
            backend
                .take_error()
                .unwrap_or_else(|| ModelError::model(&weights, e))
        })?;

        Ok(Self {
            dir,
            config,
            layout,
            backbone,
            audio_decoder,
            tokenizer,
        })
    }
}

/// The manifest of a CSM folder: its Mimi file with `codebooks` levels (the
/// file must hold at least that many).
pub fn csm_manifest(dir: &Path, codebooks: usize) -> Result<Manifest, ModelError> {
    let mimi_file = find_mimi(dir)?;
    let st = open_safetensors(&mimi_file)?;
    let mut spec =
        infer_mimi(&safetensors_shapes(&st)).map_err(|e| ModelError::config(&mimi_file, e))?;
    if spec.quantizer_n_q < codebooks {
        return Err(ModelError::config(
            &mimi_file,
            format!(
                "the codec has {} codebooks, CSM needs {codebooks}",
                spec.quantizer_n_q
            ),
        ));
    }
    spec.quantizer_n_q = codebooks;
    Ok(Manifest {
        format: MANIFEST_FORMAT.into(),
        name: dir
            .file_name()
            .map_or_else(|| "csm".into(), |n| n.to_string_lossy().into_owned()),
        family: "csm".into(),
        lm: None,
        mimi: FileSpec {
            file: mimi_file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            config: spec,
        },
        generation: None,
        text_tokenizer: None,
    })
}
