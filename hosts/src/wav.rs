//! WAV in and out: any channel count, 8/16/24/32-bit int or 32-bit float,
//! 8–192 kHz. Audio is kept planar (`channels[c][i]`) as f32 in -1..1.

use std::io::Cursor;
use std::path::Path;

use anyhow::{bail, Context, Result};
use hound::{SampleFormat, WavReader, WavSpec, WavWriter};

/// The demo voice used when `run` gets no `--input` (espeak-ng, 16 kHz mono),
/// built into the binary so `antiphon run -o reply.wav` works from anywhere.
pub const DEMO_WAV: &[u8] = include_bytes!("../../presets/demo/hello.wav");

pub const MIN_RATE: u32 = 8_000;
pub const MAX_RATE: u32 = 192_000;

/// Decoded audio plus the format it came in (the reply is written the same way).
pub struct Audio {
    pub spec: WavSpec,
    pub channels: Vec<Vec<f32>>,
}

impl Audio {
    pub fn frames(&self) -> usize {
        self.channels.first().map_or(0, |c| c.len())
    }

    /// Mono mix-down, as the endpoint does for the model.
    pub fn mono(&self) -> Vec<f32> {
        let n = self.channels.len().max(1) as f32;
        (0..self.frames())
            .map(|i| self.channels.iter().map(|c| c[i]).sum::<f32>() / n)
            .collect()
    }
}

/// Reads a WAV file; errors say what is wrong with it in one line.
pub fn read(path: &Path) -> Result<Audio> {
    if !path.exists() {
        bail!("input file `{}` does not exist", path.display());
    }
    let bytes = std::fs::read(path).with_context(|| format!("cannot read `{}`", path.display()))?;
    decode(&bytes).with_context(|| format!("`{}`", path.display()))
}

/// The built-in demo input.
pub fn demo() -> Result<Audio> {
    decode(DEMO_WAV).context("the built-in demo WAV")
}

/// Decodes WAV bytes (also the entry point the fuzzer and its corpus replay use).
pub fn decode(bytes: &[u8]) -> Result<Audio> {
    let mut r = WavReader::new(Cursor::new(bytes)).map_err(describe)?;
    let spec = r.spec();
    if !(MIN_RATE..=MAX_RATE).contains(&spec.sample_rate) {
        bail!(
            "unsupported WAV: sample rate {} Hz (supported: {}–{} kHz)",
            spec.sample_rate,
            MIN_RATE / 1000,
            MAX_RATE / 1000
        );
    }
    let ch = spec.channels as usize;
    if ch == 0 {
        bail!("unsupported WAV: no channels");
    }
    let interleaved: Vec<f32> =
        match (spec.sample_format, spec.bits_per_sample) {
            (SampleFormat::Float, 32) => r
                .samples::<f32>()
                .collect::<Result<_, _>>()
                .map_err(describe)?,
            (SampleFormat::Int, b @ (8 | 16 | 24 | 32)) => {
                let scale = 1.0 / (1u64 << (b - 1)) as f64;
                r.samples::<i32>()
                    .map(|s| s.map(|v| (v as f64 * scale) as f32))
                    .collect::<Result<_, _>>()
                    .map_err(describe)?
            }
            (f, b) => {
                bail!(
            "unsupported WAV: {b}-bit {} samples (supported: 8/16/24/32-bit int, 32-bit float)",
            if f == SampleFormat::Float { "float" } else { "int" }
        )
            }
        };
    let frames = interleaved.len() / ch;
    if frames == 0 {
        bail!("the WAV file holds no audio");
    }
    let mut channels = vec![Vec::with_capacity(frames); ch];
    for f in interleaved.chunks_exact(ch) {
        for (c, x) in channels.iter_mut().zip(f) {
            // Non-finite float input is cleaned here rather than passed on.
            c.push(if x.is_finite() { *x } else { 0.0 });
        }
    }
    Ok(Audio { spec, channels })
}

fn describe(e: hound::Error) -> anyhow::Error {
    match e {
        hound::Error::FormatError(m) => anyhow::anyhow!("not a valid WAV file ({m})"),
        hound::Error::Unsupported => {
            anyhow::anyhow!("unsupported WAV encoding (only PCM int and IEEE float are supported)")
        }
        hound::Error::IoError(e) => anyhow::anyhow!("not a valid WAV file ({e})"),
        other => anyhow::anyhow!("unsupported WAV: {other}"),
    }
}

/// Writes planar audio with `spec` (int formats are clamped, not wrapped).
pub fn write(path: &Path, spec: WavSpec, channels: &[Vec<f32>]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            bail!(
                "cannot write `{}`: folder `{}` does not exist",
                path.display(),
                dir.display()
            );
        }
    }
    let ctx = || format!("cannot write `{}`", path.display());
    let mut w = WavWriter::create(path, spec).with_context(ctx)?;
    let frames = channels.first().map_or(0, |c| c.len());
    let max = ((1u64 << (spec.bits_per_sample.max(1) - 1)) - 1) as f64;
    for i in 0..frames {
        for c in channels {
            let x = c[i].clamp(-1.0, 1.0);
            match spec.sample_format {
                SampleFormat::Float => w.write_sample(x),
                SampleFormat::Int if spec.bits_per_sample == 8 => {
                    w.write_sample((x as f64 * max).round() as i8)
                }
                SampleFormat::Int => w.write_sample((x as f64 * max).round() as i32),
            }
            .with_context(ctx)?;
        }
    }
    w.finalize().with_context(ctx)?;
    Ok(())
}
