//! Checked weight access: a `candle_nn` var-builder backend over a safetensors
//! file that turns "tensor missing / wrong shape / wrong dtype / NaN" into a
//! typed [`ModelError`] naming the file and tensor. The moshi crate builds its
//! layers through this backend, so its own constructors drive the checks.

use std::collections::HashMap;
use std::io::Seek;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use candle::quantized::GgmlDType;
use candle::safetensors::MmapedSafetensors;
use candle::{DType, Device, Shape, Tensor};

use crate::errors::ModelError;
use crate::simd::{first_non_finite, FloatBits};
use crate::spec::Shapes;

/// Opens a safetensors file, mapping header/size problems to typed errors.
pub fn open_safetensors(file: &Path) -> Result<MmapedSafetensors, ModelError> {
    if !file.is_file() {
        return Err(ModelError::io(file, "no such file"));
    }
    // Safety: the file is mapped read-only; like every mmap-based loader we
    // assume nobody truncates it while the model is loaded.
    unsafe { MmapedSafetensors::new(file) }.map_err(|e| ModelError::Corrupt {
        file: file.into(),
        format: "safetensors",
        detail: e.to_string(),
    })
}

/// Name → shape of every tensor in a safetensors file.
pub fn safetensors_shapes(st: &MmapedSafetensors) -> Shapes {
    st.tensors()
        .into_iter()
        .map(|(n, v)| (n, v.shape().to_vec()))
        .collect()
}

/// Name → shape of every tensor in a GGUF file (candle dim order).
pub fn gguf_shapes(file: &Path) -> Result<Shapes, ModelError> {
    Ok(gguf_tensors(file)?.0)
}

/// The quantisation most of a GGUF file's weights use (its 2-D tensors; 1-D
/// norms and biases stay F32 in every quantised file).
pub fn gguf_quantization(file: &Path) -> Result<GgmlDType, ModelError> {
    let (shapes, dtypes) = gguf_tensors(file)?;
    let mut count: Vec<(GgmlDType, usize)> = Vec::new();
    for (name, dt) in &dtypes {
        if shapes.get(name).is_some_and(|s| s.len() >= 2) {
            match count.iter_mut().find(|(d, _)| d == dt) {
                Some(c) => c.1 += 1,
                None => count.push((*dt, 1)),
            }
        }
    }
    Ok(count
        .into_iter()
        .max_by_key(|(_, n)| *n)
        .map_or(GgmlDType::F32, |(d, _)| d))
}

/// Shapes and storage types of a GGUF file's tensors, with typed errors for
/// truncated files and quantisations candle cannot read.
fn gguf_tensors(file: &Path) -> Result<(Shapes, HashMap<String, GgmlDType>), ModelError> {
    let mut f = std::fs::File::open(file).map_err(|e| ModelError::io(file, e))?;
    let len = f.metadata().map_err(|e| ModelError::io(file, e))?.len();
    let corrupt = |detail: String| ModelError::Corrupt {
        file: file.into(),
        format: "GGUF",
        detail,
    };
    // candle trusts the header's sizes: check them first (see gguf_header).
    crate::gguf_header::check(&mut f, len).map_err(corrupt)?;
    f.rewind().map_err(|e| ModelError::io(file, e))?;
    let content = candle::quantized::gguf_file::Content::read(&mut f).map_err(|e| {
        let detail = e.to_string();
        match detail.strip_prefix("unknown dtype for tensor ") {
            Some(id) => ModelError::Unsupported(format!(
                "`{}`: a tensor uses GGUF type id {id}, a quantisation this build cannot read; \
                 re-quantise the file to one of {} (e.g. llama.cpp's `llama-quantize`)",
                file.display(),
                crate::precision::Precision::names()[3..].join(", ")
            )),
            None => corrupt(detail),
        }
    })?;
    let mut shapes = Shapes::new();
    let mut dtypes = HashMap::new();
    for (name, info) in content.tensor_infos.iter() {
        let bytes =
            info.shape.elem_count() / info.ggml_dtype.block_size() * info.ggml_dtype.type_size();
        let end = content
            .tensor_data_offset
            .checked_add(info.offset)
            .and_then(|o| o.checked_add(bytes as u64));
        if end.is_none_or(|end| end > len) {
            return Err(corrupt(format!(
                "tensor `{name}` runs past the end of the file ({len} bytes)"
            )));
        }
        shapes.insert(name.clone(), info.shape.dims().to_vec());
        dtypes.insert(name.clone(), info.ggml_dtype);
    }
    Ok((shapes, dtypes))
}

/// Var-builder backend that checks every tensor the model asks for.
pub struct CheckedBackend {
    file: PathBuf,
    st: MmapedSafetensors,
    check_finite: bool,
    /// The first problem found; candle's error type cannot carry ours, so the
    /// loader picks it up from here after construction fails.
    first_error: Mutex<Option<ModelError>>,
}

impl CheckedBackend {
    pub fn new(file: &Path, st: MmapedSafetensors, check_finite: bool) -> Self {
        Self {
            file: file.into(),
            st,
            check_finite,
            first_error: Mutex::new(None),
        }
    }

    fn fail(&self, e: ModelError) -> candle::Error {
        let msg = e.to_string();
        let mut slot = self.first_error.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(e);
        }
        candle::Error::Msg(msg)
    }

    /// Takes the typed error recorded during construction, if any.
    pub fn take_error(&self) -> Option<ModelError> {
        self.first_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    fn load(
        &self,
        name: &str,
        expected: Option<&Shape>,
        dtype: DType,
        dev: &Device,
    ) -> candle::Result<Tensor> {
        let view = match self.st.get(name) {
            Ok(v) => v,
            Err(_) => {
                return Err(self.fail(ModelError::MissingTensor {
                    file: self.file.clone(),
                    tensor: name.into(),
                }))
            }
        };
        // candle uses a different safetensors major than the workspace, so
        // compare the dtype by name rather than by type.
        let found = format!("{:?}", view.dtype());
        if !["F32", "F16", "BF16"].contains(&found.as_str()) {
            return Err(self.fail(ModelError::DType {
                file: self.file.clone(),
                tensor: name.into(),
                expected: "F32, F16, BF16",
                found,
            }));
        }
        if let Some(s) = expected {
            if view.shape() != s.dims() {
                return Err(self.fail(ModelError::Shape {
                    file: self.file.clone(),
                    tensor: name.into(),
                    expected: s.dims().to_vec(),
                    found: view.shape().to_vec(),
                }));
            }
        }
        if self.check_finite {
            // Scan the mapped bytes in the file's own format: no conversion, no copy.
            let fmt = match found.as_str() {
                "F32" => FloatBits::F32,
                "F16" => FloatBits::F16,
                _ => FloatBits::Bf16,
            };
            if let Some(index) = first_non_finite(view.data(), fmt) {
                let value = self
                    .st
                    .load(name, &Device::Cpu)?
                    .to_dtype(DType::F32)?
                    .flatten_all()?
                    .get(index)?
                    .to_scalar::<f32>()?;
                return Err(self.fail(ModelError::NonFinite {
                    file: self.file.clone(),
                    tensor: name.into(),
                    index,
                    value,
                }));
            }
        }
        self.st.load(name, dev)?.to_dtype(dtype)
    }
}

impl candle_nn::var_builder::SimpleBackend for CheckedBackend {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _h: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle::Result<Tensor> {
        self.load(name, Some(&s), dtype, dev)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle::Result<Tensor> {
        self.load(name, None, dtype, dev)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.st.get(name).is_ok()
    }
}

/// Shares one backend between a var-builder (which takes ownership) and the
/// loader (which reads the recorded error afterwards).
pub struct SharedBackend<T>(pub std::sync::Arc<T>);

impl<T: candle_nn::var_builder::SimpleBackend> candle_nn::var_builder::SimpleBackend
    for SharedBackend<T>
{
    fn get(
        &self,
        s: Shape,
        n: &str,
        h: candle_nn::Init,
        d: DType,
        dev: &Device,
    ) -> candle::Result<Tensor> {
        self.0.get(s, n, h, d, dev)
    }
    fn get_unchecked(&self, n: &str, d: DType, dev: &Device) -> candle::Result<Tensor> {
        self.0.get_unchecked(n, d, dev)
    }
    fn contains_tensor(&self, n: &str) -> bool {
        self.0.contains_tensor(n)
    }
}
