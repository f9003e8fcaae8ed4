//! Command-line interface: every subcommand and option, with the help text
//! people read first.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use antiphon_nodes::bundle::LoadOptions;
use antiphon_nodes::precision::{DeviceChoice, Precision};

use crate::script::{KnobChange, Stall};

#[derive(Parser, Debug)]
#[command(
    name = "antiphon",
    version,
    about = "Talk to streaming speech models (Mimi + Moshi) in realtime, without stutter.",
    long_about = "Talk to streaming speech models (Mimi + Moshi) in realtime, without stutter.\n\n\
        Generation runs on worker threads one 80 ms frame at a time; an adaptive lead \
        controller holds just enough audio ahead of the playhead that the output never gaps.\n\n\
        Start here:\n  \
        antiphon run --output reply.wav          # the shipped demo voice in, the model's reply out\n  \
        antiphon bench --seconds 20              # latency benchmark on a virtual sound card\n  \
        antiphon live                            # a conversation on your microphone and speakers\n\n\
        Without --model the built-in tiny model is used: real architecture, random weights, \
        so its reply is noise-like, not speech. Point --model at a kyutai Moshi checkpoint \
        directory for a real conversation.",
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Speak a WAV file to the model and write its reply (file in, file out).
    Run(RunArgs),
    /// Hold a conversation on real audio devices until Ctrl-C.
    Live(LiveArgs),
    /// Text to speech with a CSM model: speak TEXT (or a script file) into a WAV, streaming.
    Say(SayArgs),
    /// End-to-end latency benchmark on a virtual sound card paced by the wall clock.
    Bench(BenchArgs),
    /// Create or inspect a model directory.
    #[command(subcommand)]
    Model(ModelCommand),
    /// List the presets and what they do.
    Presets(PresetsArgs),
}

/// Which model, preset and generation settings to use.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// Model directory (antiphon.json, or kyutai's published layout). Default: the built-in tiny model.
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// Preset name (see `antiphon presets`) or path to a preset file.
    #[arg(long, value_name = "NAME|FILE")]
    pub preset: Option<String>,
    /// Seed for sampling: the same seed and input give the same output with --pace fast.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub seed: u64,
    /// Worker threads for generation.
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub workers: u64,
    #[command(flatten)]
    pub load: LoadArgs,
}

/// How the model's weights are loaded: precision and device.
#[derive(Args, Debug, Clone, Default)]
pub struct LoadArgs {
    /// LM weight precision: f32, f16, bf16 (safetensors; converted at load and kept so),
    /// or a GGUF quantisation (q8_0, q4_0, q4k, …; must match the file). Default: f32, or the GGUF's own.
    #[arg(long, value_name = "PRECISION")]
    pub dtype: Option<Precision>,
    /// Where the LM runs: cpu, cuda[:N] or metal (GPU builds need `--features cuda|metal`).
    #[arg(long, value_name = "DEVICE", default_value = "cpu")]
    pub device: DeviceChoice,
}

impl LoadArgs {
    /// The loader options these arguments ask for.
    pub fn options(&self) -> LoadOptions {
        LoadOptions {
            precision: self.dtype,
            device: self.device,
            ..LoadOptions::default()
        }
    }
}

/// Where to write the measurements.
#[derive(Args, Debug, Clone, Default)]
pub struct OutputArgs {
    /// Write the JSON report (stable field names, for scripts that diff builds).
    #[arg(long, value_name = "R.json")]
    pub report: Option<PathBuf>,
    /// Write a trace (Chrome trace-event JSON: open in Perfetto or chrome://tracing).
    #[arg(long, value_name = "T.json")]
    pub trace: Option<PathBuf>,
    /// Write an SVG plot of lead/target, ITL and underruns over time.
    #[arg(long, value_name = "P.svg")]
    pub plot: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Pace {
    /// Fed by a virtual sound card on the wall clock: takes the input's duration, underruns are real.
    Realtime,
    /// As fast as possible, deterministic (same seed → same bytes).
    Fast,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Input WAV (any channel count; 8/16/24/32-bit int or 32-bit float; 8–192 kHz).
    /// Default: a short spoken demo shipped with antiphon.
    #[arg(long, short, value_name = "IN.wav")]
    pub input: Option<PathBuf>,
    /// Output WAV: the reply, at the input's sample rate, channel count and sample format.
    #[arg(long, short, value_name = "OUT.wav")]
    pub output: PathBuf,
    /// How the input is fed to the model.
    #[arg(long, value_enum, default_value_t = Pace::Realtime)]
    pub pace: Pace,
    /// Virtual sound card block size in samples (realtime pace).
    #[arg(long, value_name = "N", default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=65536))]
    pub block_size: u64,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub out: OutputArgs,
}

#[derive(Args, Debug)]
pub struct SayArgs {
    /// What to say (one turn). Use --file for a script of several turns.
    #[arg(value_name = "TEXT", conflicts_with = "file")]
    pub text: Option<String>,
    /// A script: one turn per non-blank line; a line may start with `[N]` to give its speaker.
    #[arg(long, short, value_name = "SCRIPT.txt")]
    pub file: Option<PathBuf>,
    /// Output WAV (mono, 16-bit).
    #[arg(long, short, value_name = "OUT.wav")]
    pub output: Option<PathBuf>,
    /// Play through the audio device (JACK or ALSA default output) as it is generated.
    #[arg(long)]
    pub live: bool,
    /// CSM model directory (sesame/csm-1b, Hugging Face or Sesame layout, with kyutai's Mimi
    /// file). Default: the CSM stand-in (real architecture, random weights: not speech).
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// Speaker of turns without a `[N]` tag (0–9).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub speaker: u32,
    /// Sampling temperature (0: greedy).
    #[arg(long, value_name = "T", default_value_t = 0.9)]
    pub temperature: f32,
    /// Sample among the K most likely codes.
    #[arg(long, value_name = "K", default_value_t = 50)]
    pub top_k: u32,
    /// Context: an earlier turn's text (with --context-wav, its recording). The speech
    /// continues that conversation (voice, pace, tone).
    #[arg(long, value_name = "TEXT", requires = "context_wav")]
    pub context_text: Option<String>,
    /// Context: the recording of --context-text (WAV, any rate).
    #[arg(long, value_name = "IN.wav", requires = "context_text")]
    pub context_wav: Option<PathBuf>,
    /// Context: who spoke the context turn (0–9).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub context_speaker: u32,
    /// Longest a turn may run, seconds, if the model does not end it first.
    /// Default: 2 s + 0.4 s per text token.
    #[arg(long, value_name = "S")]
    pub max_seconds: Option<f64>,
    /// Output sample rate, Hz (the model makes 24 kHz).
    #[arg(long, value_name = "HZ", default_value_t = 24_000)]
    pub rate: u32,
    /// realtime: streamed through a virtual sound card on the wall clock (first audio and
    /// underruns are real); fast: as fast as possible, deterministic (same seed → same bytes).
    #[arg(long, value_enum, default_value_t = Pace::Realtime)]
    pub pace: Pace,
    /// Virtual sound card block size in samples (realtime pace).
    #[arg(long, value_name = "N", default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=65536))]
    pub block_size: u64,
    /// Seed for sampling.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub seed: u64,
    /// Worker threads for generation.
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub workers: u64,
    #[command(flatten)]
    pub out: OutputArgs,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// How long to run, seconds of audio (and of wall time).
    #[arg(long, value_name = "N", default_value_t = 30.0)]
    pub seconds: f64,
    /// Virtual sound card sample rate, Hz.
    #[arg(long, value_name = "HZ", default_value_t = 48_000)]
    pub rate: u32,
    /// Virtual sound card block size in samples.
    #[arg(long, value_name = "N", default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=65536))]
    pub block_size: u64,
    /// Delay every EVERY-th frame's backbone step by MS milliseconds (e.g. 150:10).
    #[arg(long, value_name = "MS:EVERY")]
    pub inject_stall: Option<Stall>,
    /// Scripted knob change at an audio time, e.g. audio_temperature=0.2@5s (repeatable).
    #[arg(long, value_name = "ID=VALUE@TIME")]
    pub knob: Vec<KnobChange>,
    /// Seconds at the start during which underruns are not counted as after warm-up.
    #[arg(long, value_name = "S", default_value_t = 5.0)]
    pub warmup: f64,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub out: OutputArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// JACK if a server is running, else ALSA.
    Auto,
    Jack,
    Alsa,
}

#[derive(Args, Debug)]
pub struct LiveArgs {
    /// Audio backend.
    #[arg(long, value_enum, default_value_t = Backend::Auto)]
    pub backend: Backend,
    /// Input device name (see --list-devices). Default: the backend's default input.
    #[arg(long, value_name = "NAME")]
    pub input_device: Option<String>,
    /// Output device name (see --list-devices). Default: the backend's default output.
    #[arg(long, value_name = "NAME")]
    pub output_device: Option<String>,
    /// List the devices of the chosen backend and exit.
    #[arg(long)]
    pub list_devices: bool,
    /// Stop after this many seconds instead of waiting for Ctrl-C.
    #[arg(long, value_name = "S")]
    pub seconds: Option<f64>,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub out: OutputArgs,
}

#[derive(Subcommand, Debug)]
pub enum ModelCommand {
    /// Write exactly the built-in tiny model (random weights, its seed) to DIR in the real on-disk layout.
    InitTiny {
        /// Directory to create (must not hold a model already).
        dir: PathBuf,
    },
    /// Write a family's random-weight stand-in to DIR in the real on-disk layout (real
    /// architecture and tensor names, random weights: not speech), to run and benchmark
    /// without downloads.
    Init {
        /// Directory to create (must not hold a model already).
        dir: PathBuf,
        /// Model family (see `antiphon model families`).
        #[arg(long, value_name = "NAME", default_value = "moshi")]
        family: String,
        /// moshi only: tiny (the built-in model's sizes) or real-mimi (real-size Mimi codec,
        /// kyutai v0.1, with the tiny LM).
        #[arg(long, value_enum, default_value_t = InitSize::Tiny)]
        size: InitSize,
        /// Seed of the random weights.
        #[arg(long, value_name = "N", default_value_t = 0)]
        seed: u64,
    },
    /// List the model families: what each does, its pacing and ports.
    Families,
    /// Load DIR and print what is there (family, config, tensors, parameters, dtype, size),
    /// or exactly what is wrong.
    Inspect {
        dir: PathBuf,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// Render offline on a model and print per-stage time per frame (p50/p99), real-time factor,
    /// resident memory and the lead floor to use on this machine.
    Bench(ModelBenchArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum InitSize {
    Tiny,
    RealMimi,
}

#[derive(Args, Debug)]
pub struct ModelBenchArgs {
    /// Model directory. Default: the built-in tiny model.
    pub dir: Option<PathBuf>,
    /// Seconds of audio to render.
    #[arg(long, value_name = "S", default_value_t = 20.0)]
    pub seconds: f64,
    /// Threads the model's kernels may use (like PyTorch's set_num_threads). Default: all cores.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=256))]
    pub threads: Option<u64>,
    /// Seed for sampling.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub seed: u64,
    /// Write the JSON report (the same schema as `run` and `bench`).
    #[arg(long, value_name = "R.json")]
    pub report: Option<PathBuf>,
    #[command(flatten)]
    pub load: LoadArgs,
}

#[derive(Args, Debug)]
pub struct PresetsArgs {
    /// Presets folder. Default: $ANTIPHON_PRESETS, ./presets, or the one shipped with antiphon.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}
