//! Typed model-loading errors. Every variant names the file (and the tensor
//! where there is one) so a user can fix a bad bundle without a debugger.

use std::path::PathBuf;

/// Why a model bundle could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("model directory `{0}` does not exist")]
    MissingDir(PathBuf),
    #[error("`{0}` is not a directory")]
    NotADir(PathBuf),
    #[error("model directory `{dir}` has no {what} (looked for {looked_for})")]
    MissingFile {
        dir: PathBuf,
        what: &'static str,
        looked_for: String,
    },
    #[error("cannot read `{file}`: {detail}")]
    Io { file: PathBuf, detail: String },
    #[error("`{file}` is not a valid {format} file (truncated or corrupt): {detail}")]
    Corrupt {
        file: PathBuf,
        format: &'static str,
        detail: String,
    },
    #[error("`{file}`: tensor `{tensor}` is missing")]
    MissingTensor { file: PathBuf, tensor: String },
    #[error("`{file}`: tensor `{tensor}` has shape {found:?}, expected {expected:?}")]
    Shape {
        file: PathBuf,
        tensor: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("`{file}`: tensor `{tensor}` has dtype {found}, expected one of {expected}")]
    DType {
        file: PathBuf,
        tensor: String,
        expected: &'static str,
        found: String,
    },
    #[error(
        "`{file}`: tensor `{tensor}` contains a non-finite value ({value}) at element {index}"
    )]
    NonFinite {
        file: PathBuf,
        tensor: String,
        index: usize,
        value: f32,
    },
    #[error("`{file}`: bad config: {detail}")]
    Config { file: PathBuf, detail: String },
    #[error("`{file}`: cannot build the model: {detail}")]
    Model { file: PathBuf, detail: String },
    /// A load option this file or build cannot honour (precision, device, format).
    #[error("{0}")]
    Unsupported(String),
}

impl ModelError {
    pub(crate) fn io(file: impl Into<PathBuf>, e: impl std::fmt::Display) -> Self {
        Self::Io {
            file: file.into(),
            detail: e.to_string(),
        }
    }
    pub(crate) fn model(file: impl Into<PathBuf>, e: impl std::fmt::Display) -> Self {
        Self::Model {
            file: file.into(),
            detail: e.to_string(),
        }
    }
    pub(crate) fn config(file: impl Into<PathBuf>, e: impl std::fmt::Display) -> Self {
        Self::Config {
            file: file.into(),
            detail: e.to_string(),
        }
    }
}
