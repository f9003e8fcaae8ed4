//! Checked weight access: a `candle_nn` var-builder backend over a safetensors
//! file that turns "tensor missing / wrong shape / wrong dtype / NaN" into a
//! typed [`ModelError`] naming the file and tensor. The moshi crate builds its
//! layers through this backend, so its own constructors drive the checks.

use std::io::Seek;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use candle::safetensors::MmapedSafetensors;
use candle::{DType, Device, Shape, Tensor};

use crate::errors::ModelError;
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
    let content =
        candle::quantized::gguf_file::Content::read(&mut f).map_err(|e| corrupt(e.to_string()))?;
    let mut shapes = Shapes::new();
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
    }
    Ok(shapes)
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
        let t = self.st.load(name, dev)?;
        if self.check_finite {
            let flat = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
            if let Some((index, &value)) = flat.iter().enumerate().find(|(_, v)| !v.is_finite()) {
                return Err(self.fail(ModelError::NonFinite {
                    file: self.file.clone(),
                    tensor: name.into(),
                    index,
                    value,
                }));
            }
        }
        t.to_dtype(dtype)
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
