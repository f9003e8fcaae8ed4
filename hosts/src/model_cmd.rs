//! `antiphon model init`, `init-tiny`, `inspect` and `bench`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use antiphon_nodes::builtin::{
    write_builtin, write_model, LmStorage, ModelSize, BUILTIN_SEED, MANIFEST_FILE,
};
use antiphon_nodes::bundle::LoadOptions;
use antiphon_nodes::{family, ModelBundle};
use anyhow::{anyhow, bail, Context, Result};
use candle::DType;

use crate::cli::{InitSize, ModelCommand};

pub fn run(cmd: ModelCommand) -> Result<()> {
    match cmd {
        ModelCommand::InitTiny { dir } => {
            check_empty(&dir)?;
            write_builtin(&dir, BUILTIN_SEED)
                .map_err(|e| anyhow!("cannot write the model: {e}"))?;
            done(
                &dir,
                "the built-in tiny model",
                BUILTIN_SEED,
                family::Task::Conversation,
            );
            Ok(())
        }
        ModelCommand::Init {
            dir,
            family,
            size,
            seed,
        } => init(&dir, &family, size, seed),
        ModelCommand::Families => {
            for f in family::all() {
                println!("{:<8} {}", f.name(), f.summary());
            }
            Ok(())
        }
        ModelCommand::Inspect { dir, load } => inspect(&dir, load.options()),
        ModelCommand::Bench(a) => crate::model_bench::run(a),
    }
}

fn check_empty(dir: &Path) -> Result<()> {
    if dir.join(MANIFEST_FILE).exists() || dir.join("model.safetensors").exists() {
        bail!(
            "`{}` already holds a model; choose an empty or new directory",
            dir.display()
        );
    }
    if dir.exists() && !dir.is_dir() {
        bail!("`{}` exists and is not a directory", dir.display());
    }
    Ok(())
}

fn done(dir: &Path, what: &str, seed: u64, task: family::Task) {
    println!("wrote {what} (seed {seed}) to {}", dir.display());
    if task == family::Task::TextToSpeech {
        println!(
            "use it with: antiphon say \"Hello.\" --model {} --output hello.wav",
            dir.display()
        );
    } else {
        println!(
            "use it with: antiphon model bench {0}   or   antiphon run --model {0} --output reply.wav",
            dir.display()
        );
    }
}

fn init(dir: &Path, family_name: &str, size: InitSize, seed: u64) -> Result<()> {
    let fam = family::by_name(family_name).map_err(|e| anyhow!(e))?;
    check_empty(dir)?;
    match size {
        InitSize::Tiny => fam
            .write_stand_in(dir, seed)
            .map_err(|e| anyhow!("cannot write the model: {e}"))?,
        InitSize::RealMimi if fam.name() == "moshi" => {
            write_model(
                dir,
                seed,
                ModelSize::RealMimi,
                LmStorage::Safetensors(DType::F32),
                true,
            )
            .map_err(|e| anyhow!("cannot write the model: {e}"))?;
        }
        InitSize::RealMimi => bail!("--size real-mimi is for --family moshi only"),
    }
    done(
        dir,
        &format!("a `{}` stand-in (random weights, not speech)", fam.name()),
        seed,
        fam.task(),
    );
    Ok(())
}

/// Per-file tensor statistics read from the file header.
struct FileStats {
    tensors: usize,
    params: u64,
    dtypes: BTreeMap<String, usize>,
    bytes: u64,
}

fn inspect(dir: &Path, opts: LoadOptions) -> Result<()> {
    let b = ModelBundle::load_with(dir, opts).map_err(|e| anyhow!("{e}"))?;
    let m = &b.manifest;
    let mimi = &m.mimi.config;
    println!("model      {}", dir.display());
    println!("name       {}", m.name);
    println!("family     {}: {}", b.family.name(), b.family.summary());
    println!(
        "pacing     {:?}; ports {:?}",
        b.family.pacing(),
        b.family.ports()
    );
    if let Some(lm) = b.lm_spec() {
        print_lm(lm);
    }
    println!(
        "mimi       dimension {}, {} filters, {} codebooks, transformer {} layers",
        mimi.dimension, mimi.n_filters, mimi.quantizer_n_q, mimi.transformer.num_layers
    );
    let mut total = 0u64;
    let lm_file = b.lm.as_ref().map(|l| &l.file);
    for (what, f) in lm_file
        .map(|f| ("lm", f))
        .into_iter()
        .chain([("mimi", &b.mimi_file)])
    {
        let s = file_stats(f)?;
        total += s.params;
        let dtypes: Vec<String> = s.dtypes.iter().map(|(d, n)| format!("{d} ×{n}")).collect();
        println!(
            "{what:<10} {}: {} tensors, {} parameters, dtype {}, {}",
            f.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            s.tensors,
            human_count(s.params),
            dtypes.join(", "),
            human_bytes(s.bytes)
        );
    }
    println!("total      {} parameters", human_count(total));
    println!("ok: loads, every tensor present with the expected shape and finite values");
    Ok(())
}

fn print_lm(lm: &antiphon_nodes::spec::LmSpec) {
    println!(
        "backbone   d_model {}, {} layers, {} heads, context {} frames; {} audio codebooks, text vocab {}",
        lm.transformer.d_model,
        lm.transformer.num_layers,
        lm.transformer.num_heads,
        lm.transformer.context,
        lm.audio_codebooks,
        lm.text_out_vocab_size
    );
    println!(
        "depformer  d_model {}, {} layers, {} slices",
        lm.depformer.transformer.d_model,
        lm.depformer.transformer.num_layers,
        lm.depformer.num_slices
    );
}

fn file_stats(file: &Path) -> Result<FileStats> {
    let bytes = std::fs::metadata(file)
        .with_context(|| format!("cannot read `{}`", file.display()))?
        .len();
    if file.extension().is_some_and(|e| e == "gguf") {
        let shapes = antiphon_nodes::weights::gguf_shapes(file).map_err(|e| anyhow!("{e}"))?;
        let params = shapes
            .values()
            .map(|s| s.iter().product::<usize>() as u64)
            .sum();
        let mut dtypes = BTreeMap::new();
        dtypes.insert("quantized (GGUF)".to_string(), shapes.len());
        return Ok(FileStats {
            tensors: shapes.len(),
            params,
            dtypes,
            bytes,
        });
    }
    // safetensors: an 8-byte little-endian header length, then a JSON header.
    let mut f =
        std::fs::File::open(file).with_context(|| format!("cannot open `{}`", file.display()))?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len)
        .with_context(|| format!("`{}`: truncated header", file.display()))?;
    let n = u64::from_le_bytes(len);
    if n > bytes.saturating_sub(8) || n > 100 << 20 {
        bail!(
            "`{}`: header length {n} is larger than the file",
            file.display()
        );
    }
    let mut head = vec![0u8; n as usize];
    f.read_exact(&mut head)
        .with_context(|| format!("`{}`: truncated header", file.display()))?;
    let v: serde_json::Value = serde_json::from_slice(&head)
        .with_context(|| format!("`{}`: header is not valid JSON", file.display()))?;
    let mut s = FileStats {
        tensors: 0,
        params: 0,
        dtypes: BTreeMap::new(),
        bytes,
    };
    for (name, t) in v.as_object().into_iter().flatten() {
        if name == "__metadata__" {
            continue;
        }
        s.tensors += 1;
        let shape = t["shape"]
            .as_array()
            .map(|a| a.iter().filter_map(|x| x.as_u64()).product())
            .unwrap_or(1);
        s.params += shape;
        *s.dtypes
            .entry(t["dtype"].as_str().unwrap_or("?").to_string())
            .or_default() += 1;
    }
    Ok(s)
}

pub fn human_count(n: u64) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.2} B", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.2} M", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.1} k", n as f64 / 1e3),
        n => n.to_string(),
    }
}

pub fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.2} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n => format!("{:.1} KiB", n as f64 / 1024.0),
    }
}
