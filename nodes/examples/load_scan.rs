//! Load time of a ~2 GB bf16 checkpoint with the NaN/Inf check done the old
//! way (convert every tensor to f32, copy it out, search) and the new way
//! (scan the mapped bytes in their own format: `simd::first_non_finite`).
//! Both then load each tensor as f32, as the loader does by default.
//!
//! `cargo run --release -p antiphon-nodes --example load_scan [-- GB]`

use std::time::Instant;

use antiphon_nodes::simd::{first_non_finite, FloatBits};
use candle::{DType, Device, Tensor};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let gb: f64 = std::env::args()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(2.0);
    let file = std::env::temp_dir().join(format!("antiphon-load-scan-{gb}gb.safetensors"));
    let tensors = 64;
    let per = ((gb * 1e9 / 2.0) as usize / tensors) / 1024 * 1024;
    if !file.is_file() {
        let t = Instant::now();
        let mut map = std::collections::HashMap::new();
        for i in 0..tensors {
            let v: Vec<f32> = (0..per)
                .map(|j| ((j * 2_654_435_761 + i) % 20_011) as f32 * 1e-4 - 1.0)
                .collect();
            let t = Tensor::from_vec(v, (per / 1024, 1024), &Device::Cpu)?.to_dtype(DType::BF16)?;
            map.insert(format!("layers.{i}.weight"), t);
        }
        candle::safetensors::save(&map, &file)?;
        eprintln!(
            "wrote {} in {:.1} s",
            file.display(),
            t.elapsed().as_secs_f64()
        );
    }
    let size = std::fs::metadata(&file)?.len() as f64;
    let load = |new: bool| -> Result<(f64, f64), Box<dyn std::error::Error>> {
        let t = Instant::now();
        let st = unsafe { candle::safetensors::MmapedSafetensors::new(&file)? };
        let mut scan = 0.0;
        for (name, view) in st.tensors() {
            let s = Instant::now();
            if new {
                assert!(first_non_finite(view.data(), FloatBits::Bf16).is_none());
            } else {
                let t = st.load(&name, &Device::Cpu)?;
                let flat = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
                assert!(!flat.iter().any(|v| !v.is_finite()));
            }
            scan += s.elapsed().as_secs_f64();
            std::hint::black_box(st.load(&name, &Device::Cpu)?.to_dtype(DType::F32)?);
        }
        Ok((t.elapsed().as_secs_f64(), scan))
    };
    println!(
        "{:.2} GB bf16 checkpoint, {tensors} tensors, loaded as f32:",
        size / 1e9
    );
    for round in 0..2 {
        for (name, new) in [
            ("before (convert + copy + search)", false),
            ("after (byte scan)", true),
        ] {
            let (total, scan) = load(new)?;
            println!(
                "  round {round} {name:<34} load {total:6.2} s, of which the check {scan:5.2} s"
            );
        }
    }
    Ok(())
}
