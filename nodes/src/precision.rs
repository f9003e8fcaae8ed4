//! The user's choice of weight precision (`--dtype`) and compute device
//! (`--device`), with the errors a user can act on.
//!
//! Precision applies to the LM (backbone + depformer), where the weights are
//! the memory and the bandwidth; the Mimi codec always runs in f32 on the CPU
//! (its convolutions are precision-sensitive and it is ~80 M parameters).
//!
//! * safetensors LM: `f32` (default), `f16` or `bf16`: weights are converted
//!   once at load and kept in that precision (≈ 2 bytes/parameter for 16-bit).
//!   On the CPU all three run on our kernels ([`crate::lm`]), bf16 included
//!   (candle 0.9 has no bf16 matmul on the CPU).
//! * GGUF LM: the file's own quantisation (`q8_0`, `q4_0`, `q4k`, …) is used
//!   as stored; asking for a different one is an error (re-quantise the file).
//!
//! Devices: `cpu` (default), `cuda[:N]` and `metal` when antiphon is built
//! with the `cuda` / `metal` cargo feature (passed through to candle and
//! moshi). Those builds are untested here: these machines have no GPU.

use std::fmt;
use std::str::FromStr;

use candle::quantized::GgmlDType;
use candle::{DType, Device};

/// Weight precision of the LM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    F32,
    F16,
    Bf16,
    /// A GGUF quantisation (only valid for GGUF files, which carry it).
    Quantized(GgmlDType),
}

/// The GGUF quantisations candle reads, by the names users know from llama.cpp.
const QUANT_NAMES: [(&str, GgmlDType); 12] = [
    ("q4_0", GgmlDType::Q4_0),
    ("q4_1", GgmlDType::Q4_1),
    ("q5_0", GgmlDType::Q5_0),
    ("q5_1", GgmlDType::Q5_1),
    ("q8_0", GgmlDType::Q8_0),
    ("q8_1", GgmlDType::Q8_1),
    ("q2k", GgmlDType::Q2K),
    ("q3k", GgmlDType::Q3K),
    ("q4k", GgmlDType::Q4K),
    ("q5k", GgmlDType::Q5K),
    ("q6k", GgmlDType::Q6K),
    ("q8k", GgmlDType::Q8K),
];

impl Precision {
    /// The candle dtype of a float precision (`None` for quantisations).
    pub fn float_dtype(self) -> Option<DType> {
        match self {
            Self::F32 => Some(DType::F32),
            Self::F16 => Some(DType::F16),
            Self::Bf16 => Some(DType::BF16),
            Self::Quantized(_) => None,
        }
    }

    /// All names `--dtype` accepts.
    pub fn names() -> Vec<&'static str> {
        let mut v = vec!["f32", "f16", "bf16"];
        v.extend(QUANT_NAMES.iter().map(|(n, _)| *n));
        v
    }

    /// The name of a GGUF quantisation, as `--dtype` spells it.
    pub fn quant_name(q: GgmlDType) -> String {
        QUANT_NAMES
            .iter()
            .find(|(_, d)| *d == q)
            .map_or_else(|| format!("{q:?}").to_lowercase(), |(n, _)| n.to_string())
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::F32 => f.write_str("f32"),
            Self::F16 => f.write_str("f16"),
            Self::Bf16 => f.write_str("bf16"),
            Self::Quantized(q) => f.write_str(&Self::quant_name(*q)),
        }
    }
}

impl FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let l = s.to_ascii_lowercase().replace(['-', '.'], "_");
        match l.as_str() {
            "f32" | "float32" => Ok(Self::F32),
            "f16" | "float16" | "half" => Ok(Self::F16),
            "bf16" | "bfloat16" => Ok(Self::Bf16),
            _ => QUANT_NAMES
                .iter()
                .find(|(n, _)| *n == l || n.replace('k', "_k") == l)
                .map(|(_, q)| Self::Quantized(*q))
                .ok_or_else(|| {
                    format!(
                        "unknown precision `{s}` (expected one of: {})",
                        Self::names().join(", ")
                    )
                }),
        }
    }
}

/// Where the LM runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeviceChoice {
    #[default]
    Cpu,
    Cuda(usize),
    Metal,
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
            Self::Metal => f.write_str("metal"),
        }
    }
}

impl FromStr for DeviceChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let l = s.to_ascii_lowercase();
        match l.as_str() {
            "cpu" => Ok(Self::Cpu),
            "cuda" | "gpu" => Ok(Self::Cuda(0)),
            "metal" | "mps" => Ok(Self::Metal),
            _ => match l.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(n)) => Ok(Self::Cuda(n)),
                _ => Err(format!(
                    "unknown device `{s}` (expected cpu, cuda, cuda:N or metal)"
                )),
            },
        }
    }
}

impl DeviceChoice {
    /// Opens the device, or says how to get a build that can.
    pub fn open(self) -> Result<Device, String> {
        match self {
            Self::Cpu => Ok(Device::Cpu),
            Self::Cuda(n) => {
                if !cfg!(feature = "cuda") {
                    return Err(
                        "this antiphon was built without CUDA support; rebuild with `cargo build --release --features cuda` (needs the CUDA toolkit), or use --device cpu".into(),
                    );
                }
                Device::new_cuda(n).map_err(|e| format!("cannot open CUDA device {n}: {e}"))
            }
            Self::Metal => {
                if !cfg!(feature = "metal") {
                    return Err(
                        "this antiphon was built without Metal support; rebuild on macOS with `cargo build --release --features metal`, or use --device cpu".into(),
                    );
                }
                Device::new_metal(0).map_err(|e| format!("cannot open the Metal device: {e}"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_print_back() {
        for n in Precision::names() {
            let p: Precision = n.parse().unwrap();
            assert_eq!(p.to_string(), n);
        }
        assert_eq!(
            "Q4_K".parse::<Precision>(),
            Ok(Precision::Quantized(GgmlDType::Q4K))
        );
        assert_eq!("BF16".parse::<Precision>(), Ok(Precision::Bf16));
        let e = "q3".parse::<Precision>().unwrap_err();
        assert!(
            e.contains("unknown precision `q3`") && e.contains("q8_0"),
            "{e}"
        );
        assert_eq!("cuda:1".parse::<DeviceChoice>(), Ok(DeviceChoice::Cuda(1)));
        assert_eq!("cuda".parse::<DeviceChoice>(), Ok(DeviceChoice::Cuda(0)));
        assert!("tpu".parse::<DeviceChoice>().is_err());
    }

    #[test]
    fn gpu_devices_without_the_feature_say_how_to_rebuild() {
        if cfg!(feature = "cuda") {
            return;
        }
        let e = DeviceChoice::Cuda(0).open().unwrap_err();
        assert!(e.contains("--features cuda"), "{e}");
        assert!(DeviceChoice::Cpu.open().unwrap().is_cpu());
    }
}

/// A note for users of GGUF models whose quantisation our kernels do not
/// read (k-quants, q5, …: candle's kernels run them) when this build leaves
/// speed on the table: candle picks its quantised SIMD kernels at *compile*
/// time (`cfg(target_feature = "avx2")`), so a portable x86-64 build runs
/// them scalar even on a CPU that has AVX2 (an 8192×4096 q8_0 product here:
/// 0.4–0.9 GB/s portable, 3.8 GB/s built for AVX2). q8_0 and q4_0 run on
/// our runtime-dispatched kernels and need nothing. `None` where nothing is
/// lost.
pub fn quantized_speed_hint(stored: GgmlDType) -> Option<&'static str> {
    if matches!(stored, GgmlDType::Q8_0 | GgmlDType::Q4_0) {
        return None;
    }
    #[cfg(all(target_arch = "x86_64", not(target_feature = "avx2")))]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        return Some(
            "this build runs this GGUF's quantisation on candle's kernels without SIMD; \
             for 4-7x faster steps on this CPU, build with RUSTFLAGS=\"-C target-cpu=native\" \
             (the binary then needs an AVX2 CPU), or use a q8_0/q4_0 GGUF (antiphon's own \
             kernels, SIMD chosen at run time)",
        );
    }
    None
}

#[cfg(test)]
mod speed_hint_tests {
    #[test]
    fn the_hint_appears_exactly_for_candle_kernels_when_the_build_lacks_avx2_and_the_cpu_has_it() {
        #[cfg(target_arch = "x86_64")]
        {
            let cpu = std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma");
            let build = cfg!(target_feature = "avx2");
            use candle::quantized::GgmlDType;
            assert_eq!(
                super::quantized_speed_hint(GgmlDType::Q4K).is_some(),
                cpu && !build
            );
            // Our own kernels read q8_0 and q4_0 with SIMD chosen at run time.
            assert!(super::quantized_speed_hint(GgmlDType::Q8_0).is_none());
            assert!(super::quantized_speed_hint(GgmlDType::Q4_0).is_none());
        }
    }
}
