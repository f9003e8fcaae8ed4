//! `antiphon say`: text to speech with a CSM model, streamed frame by frame
//! through the engine (free-running pacing, the lead controller bounding how
//! far generation runs ahead). Written to a WAV through a virtual sound card
//! on the wall clock (`--pace realtime`, the default: first audio and
//! underruns are real), as fast as possible (`--pace fast`: deterministic),
//! and/or played on the audio device as it is generated (`--live`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use antiphon_framework::clock::WallClock;
use antiphon_framework::endpoint::{endpoint, EndpointConfig};
use antiphon_framework::engine::{render_offline, Engine, EngineConfig, Pacing};
use antiphon_framework::graph::Graph;
use antiphon_framework::knobs::KnobBus;
use antiphon_framework::report::Report;
use antiphon_nodes::family::Task;
use antiphon_nodes::speech::{
    self, Script, SpeechProgress, TurnLimit, SPEAKER, TEMPERATURE, TOP_K,
};
use antiphon_nodes::ModelBundle;
use anyhow::{anyhow, bail, Context, Result};
use cpal::traits::{DeviceTrait, StreamTrait};
use hound::{SampleFormat, WavSpec};

use crate::cli::{Backend, Pace, SayArgs};
use crate::live_audio::{Meters, ReadyFn, Speaker};
use crate::outputs;
use crate::progress;
use crate::realtime::{self, output_params, Feed};
use crate::setup::output_knobs;
use crate::wav;

/// Played after the script ends in realtime, so the lead drains, seconds.
const DRAIN_S: f64 = 0.5;

fn script(args: &SayArgs) -> Result<Script> {
    match (&args.text, &args.file) {
        (Some(t), None) => Script::parse(t).map_err(|e| anyhow!("{e}")),
        (None, Some(f)) => {
            let text = std::fs::read_to_string(f)
                .with_context(|| format!("cannot read the script `{}`", f.display()))?;
            Script::parse(&text).map_err(|e| anyhow!("`{}`: {e}", f.display()))
        }
        _ => bail!(
            "nothing to say: give the text, e.g. `antiphon say \"Hello.\"`, or --file SCRIPT.txt"
        ),
    }
}

pub fn run(args: SayArgs) -> Result<()> {
    if args.output.is_none() && !args.live {
        bail!("say where: give --output OUT.wav, --live, or both");
    }
    if args.live && args.pace == Pace::Fast {
        bail!("--live plays as it is generated: it cannot be used with --pace fast");
    }
    let mut script = script(&args)?;
    let mut paths = args.out.paths();
    if let Some(o) = &args.output {
        paths.push(o);
    }
    outputs::check_writable(&paths)?;
    let dir = match &args.model {
        Some(d) => d.clone(),
        None => {
            eprintln!(
                "no --model given: using the text-to-speech stand-in (random weights: not speech)"
            );
            speech::default_model_dir().map_err(|e| anyhow!("{e}"))?
        }
    };
    let loading = Instant::now();
    let bundle = ModelBundle::load(&dir).map_err(|e| anyhow!("{e}"))?;
    bundle
        .expect_task(Task::TextToSpeech, "`antiphon say`")
        .map_err(|e| anyhow!(e))?;
    let load_ms = loading.elapsed().as_secs_f64() * 1000.0;
    if let (Some(text), Some(wav_path)) = (&args.context_text, &args.context_wav) {
        let audio = wav::read(wav_path)?;
        let turn = speech::context_turn(
            &bundle,
            args.context_speaker,
            text,
            &audio.mono(),
            audio.spec.sample_rate as f64,
        )
        .map_err(|e| anyhow!("--context-wav `{}`: {e}", wav_path.display()))?;
        script.context.push(turn);
    }
    let limit = args.max_seconds.map_or(TurnLimit::Auto, TurnLimit::Seconds);
    let device = if args.live {
        Some(LiveOut::open()?)
    } else {
        None
    };
    let rate = device.as_ref().map_or(args.rate as f64, |d| d.rate);
    let (graph, knobs, progress) = speech::graph(
        &bundle,
        script.clone(),
        rate,
        args.seed,
        limit,
        output_knobs(),
    )
    .map_err(|e| anyhow!(e))?;
    for (id, v) in [
        (SPEAKER, args.speaker as f64),
        (TEMPERATURE, args.temperature as f64),
        (TOP_K, args.top_k as f64),
    ] {
        let flag = id.replace('_', "-");
        let spec = knobs.specs().iter().find(|s| s.id == id);
        let v = spec
            .ok_or_else(|| anyhow!("--{flag}: the model has no such knob"))?
            .validate(v)
            .map_err(|e| anyhow!("--{flag}: {e}"))?;
        knobs
            .set_by_id(id, v, 0)
            .map_err(|e| anyhow!("--{flag}: {e}"))?;
    }
    let cfg = EngineConfig {
        workers: args.workers as usize,
        pacing: Pacing::FreeRunning,
        trace_capacity: if args.out.trace.is_some() { 1 << 16 } else { 0 },
        warmup_seconds: 0.0,
        ..Default::default()
    };
    let frame_len = (rate * 0.08).round() as u64;
    let most =
        speech::max_frames(&bundle, &script, limit).map_err(|e| anyhow!(e))? as u64 * frame_len;

    let (speech, report, trace, live) = match (device, args.pace) {
        (Some(dev), _) => {
            let (report, trace) = dev.play(graph, knobs, cfg, &progress, args.output.is_some())?;
            (report.0, report.1, trace, true)
        }
        (None, Pace::Fast) => {
            let spin = progress::spinner("speaking (fast)");
            let rendered = render_offline(graph, vec![0.0; most as usize], cfg, knobs);
            spin.finish_and_clear();
            let (out, report, trace) = rendered.context("generation failed")?;
            (out, report, trace, false)
        }
        (None, Pace::Realtime) => {
            let end = Arc::new(AtomicU64::new(u64::MAX));
            let feed = Feed {
                rate,
                channels: 1,
                block: args.block_size as usize,
                // Room for the lead on top of the longest the script can take.
                frames: most + (rate * 5.0) as u64,
                input: Box::new(|_, chans| chans.iter_mut().for_each(|c| c.fill(0.0))),
                script: Vec::new(),
                keep_output: true,
                end: end.clone(),
            };
            let pb = progress::bar(most as f64 / rate, "speaking");
            let o = realtime::run(graph, knobs, cfg, feed, |t, st| {
                pb.set_position((t * 10.0) as u64);
                pb.set_message(format!(
                    "lead {:.0} ms  underruns {}",
                    st.lead_ms, st.underruns
                ));
                if st.failed {
                    end.store(0, Ordering::Relaxed);
                } else if progress.finished_at().is_some()
                    && end.load(Ordering::Relaxed) == u64::MAX
                {
                    let drain = (st.lead_ms / 1000.0 + DRAIN_S) * rate;
                    end.store((t * rate + drain) as u64, Ordering::Relaxed);
                }
            });
            pb.finish_and_clear();
            let out = o.output.into_iter().next().unwrap_or_default();
            (out, o.report, o.trace, true)
        }
    };
    if let Some(e) = report.errors.first() {
        bail!("generation failed: {e}");
    }
    let speech = trim(speech, &progress, frame_len);
    if let Some(path) = &args.output {
        let spec = WavSpec {
            channels: 1,
            sample_rate: rate as u32,
            bits_per_sample: 16,
            sample_format: SampleFormat::Int,
        };
        wav::write(path, spec, std::slice::from_ref(&speech))?;
        println!(
            "speech: {} ({:.2} s, {} Hz)",
            path.display(),
            speech.len() as f64 / rate,
            rate
        );
    }
    println!(
        "turns {} ({} ended by the model, {} at their limit){}",
        script.turns.len(),
        progress.eos_turns.load(Ordering::Relaxed),
        progress.turns_done.load(Ordering::Relaxed) - progress.eos_turns.load(Ordering::Relaxed),
        match progress.context_restarts.load(Ordering::Relaxed) {
            0 => String::new(),
            n => format!("; the context filled and restarted {n} time(s)"),
        }
    );
    println!("model loaded in {load_ms:.0} ms");
    print!("{}", report.summary(live));
    outputs::write_files(&args.out, &report, trace.as_deref(), "antiphon say")
        .context("writing results")
}

/// The speech in a played or rendered stream: from the first generated
/// sample to the end of the script's last frame.
fn trim(out: Vec<f32>, progress: &SpeechProgress, frame_len: u64) -> Vec<f32> {
    let start = out.iter().position(|x| *x != 0.0).unwrap_or(out.len());
    let frames = progress.finished_at().unwrap_or(u64::MAX);
    let len = (frames.saturating_mul(frame_len) as usize).min(out.len() - start);
    out[start..start + len].to_vec()
}

/// The default output device, for `--live`.
struct LiveOut {
    dev: cpal::Device,
    name: String,
    backend: &'static str,
    cfg: cpal::SupportedStreamConfig,
    rate: f64,
}

type Played = (Vec<f32>, Report);

impl LiveOut {
    fn open() -> Result<Self> {
        let (host, backend) = crate::live::host_for(Backend::Auto)?;
        let dev = crate::live::pick(&host, backend, None, true)?;
        let name = dev.name().unwrap_or_default();
        let cfg = dev.default_output_config().map_err(|e| {
            anyhow!(
                "output device `{name}` ({backend}) cannot be used: {e}; {}",
                crate::live::NO_CARD_HINT
            )
        })?;
        let rate = cfg.sample_rate().0 as f64;
        Ok(Self {
            dev,
            name,
            backend,
            cfg,
            rate,
        })
    }

    /// Plays the stream until the script has been spoken and the lead drained.
    fn play(
        self,
        graph: Graph,
        knobs: Arc<KnobBus>,
        cfg: EngineConfig,
        progress: &SpeechProgress,
        keep: bool,
    ) -> Result<(Played, Option<String>)> {
        let (mut audio, gen) = endpoint(&EndpointConfig::new(self.rate));
        for (p, v) in output_params(&knobs) {
            audio.set_param(p, v);
        }
        let engine = Engine::start(graph, gen, cfg, knobs, WallClock::new());
        let channels = self.cfg.channels() as usize;
        // No microphone: the ring stays empty and the input is silence.
        let (_mic_tx, mic_rx) = rtrb::RingBuffer::<f32>::new(1);
        let meters = Arc::new(Meters::default());
        let ready: ReadyFn = Box::new(|| true);
        let mut speaker = Speaker::new(mic_rx, audio, ready, channels, meters);
        // The played samples (first channel) for --output: a bounded ring the
        // callback pushes to without allocating; drained here.
        let (mut tap_tx, mut tap_rx) = rtrb::RingBuffer::<f32>::new((self.rate * 4.0) as usize);
        let on_output = move |data: &mut [f32]| {
            speaker.process(data);
            if keep {
                for frame in data.chunks(channels) {
                    let _ = tap_tx.push(frame[0]);
                }
            }
        };
        let stream = crate::live::build_output(
            &self.dev,
            &self.cfg.config(),
            self.cfg.sample_format(),
            on_output,
            |_| {},
        )
        .with_context(|| {
            format!(
                "cannot open output device `{}` ({})",
                self.name, self.backend
            )
        })?;
        stream
            .play()
            .map_err(|e| anyhow!("cannot start output `{}`: {e}", self.name))?;
        eprintln!(
            "playing on `{}` ({}, {} Hz)",
            self.name, self.backend, self.rate
        );
        let mut played = Vec::new();
        let mut done_at: Option<Instant> = None;
        loop {
            std::thread::sleep(Duration::from_millis(20));
            while let Ok(x) = tap_rx.pop() {
                played.push(x);
            }
            let st = engine.status();
            if st.failed {
                bail!("generation failed: {}", engine.stop().errors.join("; "));
            }
            if progress.finished_at().is_some() {
                let t = *done_at.get_or_insert_with(Instant::now);
                if t.elapsed().as_secs_f64() > st.lead_ms / 1000.0 + DRAIN_S {
                    break;
                }
            }
        }
        drop(stream);
        while let Ok(x) = tap_rx.pop() {
            played.push(x);
        }
        let trace = engine.trace_json();
        Ok(((played, engine.stop()), trace))
    }
}
