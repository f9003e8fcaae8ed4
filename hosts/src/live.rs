//! `antiphon live`: a spoken conversation on real devices through cpal (ALSA,
//! or JACK via cpal's JACK host). The output device's callback is the audio
//! thread: it takes the microphone's samples from a lock-free ring (filled by
//! the input callback), runs the endpoint in place and plays the result.
//! Generation runs in a session (`antiphon_nodes::session`), the same core the
//! plugin uses: the devices start at once and pass the microphone through dry
//! while the model loads, then the model's reply plays.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use antiphon_framework::endpoint::OutputParam;
use antiphon_nodes::family::Task;
use antiphon_nodes::session::{apply_knobs, load_model_with, Level, Session, SessionConfig, State};
use anyhow::{anyhow, bail, Context, Result};
use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{FromSample, SizedSample};

use crate::cli::{Backend, LiveArgs};
use crate::live_audio::{Meters, Microphone, ReadyFn, Speaker};
use crate::outputs;
use crate::progress;
use crate::realtime::output_params;
use crate::setup::{engine_config, find_preset, model_choice, session_knobs};

pub(crate) const NO_CARD_HINT: &str = "this machine seems to have no usable sound card. \
    Use `antiphon run` to talk to the model through WAV files, or start a JACK server \
    (e.g. `jackd -d dummy`) and use --backend jack";

pub(crate) fn host_for(backend: Backend) -> Result<(cpal::Host, &'static str)> {
    // Never start a JACK server behind the user's back.
    std::env::set_var("JACK_NO_START_SERVER", "1");
    let jack = || -> Option<cpal::Host> {
        let h = cpal::host_from_id(cpal::HostId::Jack).ok()?;
        h.default_output_device().is_some().then_some(h)
    };
    match backend {
        Backend::Jack => jack().map(|h| (h, "JACK")).ok_or_else(|| {
            anyhow!("no JACK server is running (start one, e.g. `jackd -d alsa` or `jackd -d dummy`, or use --backend alsa)")
        }),
        Backend::Alsa => Ok((cpal::host_from_id(cpal::HostId::Alsa).map_err(|e| anyhow!("ALSA: {e}"))?, "ALSA")),
        Backend::Auto => match jack() {
            Some(h) => Ok((h, "JACK")),
            None => Ok((cpal::host_from_id(cpal::HostId::Alsa).map_err(|e| anyhow!("ALSA: {e}"))?, "ALSA")),
        },
    }
}

fn names(devs: impl Iterator<Item = cpal::Device>) -> Vec<String> {
    devs.filter_map(|d| d.name().ok()).collect()
}

pub(crate) fn pick(
    host: &cpal::Host,
    backend: &str,
    want: Option<&str>,
    output: bool,
) -> Result<cpal::Device> {
    let kind = if output { "output" } else { "input" };
    let list = || -> Vec<cpal::Device> {
        if output {
            host.output_devices()
                .map(|d| d.collect())
                .unwrap_or_default()
        } else {
            host.input_devices()
                .map(|d| d.collect())
                .unwrap_or_default()
        }
    };
    match want {
        Some(name) => {
            let devs = list();
            let known = names(devs.clone().into_iter());
            devs.into_iter()
                .find(|d| d.name().is_ok_and(|n| n == name))
                .ok_or_else(|| {
                    if known.is_empty() {
                        anyhow!("{kind} device `{name}` not found ({backend} has no {kind} devices): {NO_CARD_HINT}")
                    } else {
                        anyhow!("{kind} device `{name}` not found ({backend}); available: {} (see --list-devices)", known.join(", "))
                    }
                })
        }
        None => {
            let d = if output {
                host.default_output_device()
            } else {
                host.default_input_device()
            };
            d.ok_or_else(|| anyhow!("no default {kind} device ({backend}): {NO_CARD_HINT}"))
        }
    }
}

fn db(x: f32) -> f32 {
    20.0 * x.max(1e-6).log10()
}

pub fn run(args: LiveArgs) -> Result<()> {
    let (host, backend) = host_for(args.backend)?;
    if args.list_devices {
        println!("{backend} input devices:");
        for n in names(
            host.input_devices()
                .map(|d| d.collect::<Vec<_>>())
                .unwrap_or_default()
                .into_iter(),
        ) {
            println!("  {n}");
        }
        println!("{backend} output devices:");
        for n in names(
            host.output_devices()
                .map(|d| d.collect::<Vec<_>>())
                .unwrap_or_default()
                .into_iter(),
        ) {
            println!("  {n}");
        }
        return Ok(());
    }
    outputs::check_writable(&args.out.paths())?;
    let out_dev = pick(&host, backend, args.output_device.as_deref(), true)?;
    let in_dev = pick(&host, backend, args.input_device.as_deref(), false)?;
    let out_name = out_dev.name().unwrap_or_default();
    let in_name = in_dev.name().unwrap_or_default();
    let out_cfg = out_dev.default_output_config().map_err(|e| {
        anyhow!("output device `{out_name}` ({backend}) cannot be used: {e}; {NO_CARD_HINT}")
    })?;
    let in_cfg = in_dev.default_input_config().map_err(|e| {
        anyhow!("input device `{in_name}` ({backend}) cannot be used: {e}; {NO_CARD_HINT}")
    })?;
    let rate = out_cfg.sample_rate();
    let out_ch = out_cfg.channels() as usize;
    // Ask the input for the output's rate: the endpoint runs at one rate.
    let in_stream_cfg = cpal::StreamConfig {
        channels: in_cfg.channels(),
        sample_rate: rate,
        buffer_size: cpal::BufferSize::Default,
    };
    let out_stream_cfg: cpal::StreamConfig = out_cfg.config();

    let preset = find_preset(&args.model)?;
    let choice = model_choice(&args.model, preset.as_ref());
    let mut cfg = SessionConfig::new(rate.0 as f64);
    cfg.model = choice.clone();
    cfg.engine = engine_config(args.model.workers as usize, args.out.trace.is_some(), 5.0);
    cfg.seed = args.model.seed;
    let opts = args.model.load.options();
    // `live` holds a conversation: a translation model or an effect is refused
    // with the reason, before any device opens.
    cfg.loader = Arc::new(move |c, _| {
        let bundle = load_model_with(c, opts)?;
        bundle.expect_task(Task::Conversation, "`antiphon live` (a conversation)")?;
        Ok(bundle)
    });
    cfg.knobs = session_knobs();
    cfg.log = Some(Arc::new(|level, msg| {
        let tag = if level == Level::Error { "error: " } else { "" };
        eprintln!("\r\x1b[2K{tag}{msg}");
    }));
    let (mut audio, session) = Session::start(cfg).map_err(|e| anyhow!(e))?;
    // A command line can wait for its model (a plugin never does): the
    // conversation starts with the model, and a bad model is an error before
    // any device opens. The audio side still follows the session's state.
    let progress = progress::spinner("loading the model");
    let state = session.wait_ready(std::time::Duration::from_secs(600));
    progress.finish_and_clear();
    if state != State::Ready {
        bail!("{}", session.status().reason);
    }
    if let Some(p) = &preset {
        apply_knobs(session.knobs(), p, 0).map_err(|e| anyhow!(e))?;
    }
    // Bypass follows the model's state (DryUntilReady), the rest the knobs.
    for (p, v) in output_params(session.knobs()) {
        if p != OutputParam::Bypass {
            audio.set_param(p, v);
        }
    }
    let session = Arc::new(session);
    let s_out = session.clone();
    let meters = Arc::new(Meters::default());
    let endpoint_stats = audio.stats().clone();
    // Microphone → audio thread: mono samples, one second of room.
    let (mic_tx, mic_rx) = rtrb::RingBuffer::<f32>::new(rate.0 as usize);

    let mut mic = Microphone::new(mic_tx, in_cfg.channels() as usize, meters.clone());
    let on_input = move |data: &[f32]| mic.process(data);
    let ready: ReadyFn = Box::new(move || s_out.state() == State::Ready);
    let mut speaker = Speaker::new(mic_rx, audio, ready, out_ch, meters.clone());
    let on_output = move |data: &mut [f32]| speaker.process(data);

    let m_err = meters.clone();
    let err_in = move |e: cpal::StreamError| {
        m_err.stream_errors.fetch_add(1, Ordering::Relaxed);
        let _ = e;
    };
    let m_err2 = meters.clone();
    let err_out = move |e: cpal::StreamError| {
        m_err2.stream_errors.fetch_add(1, Ordering::Relaxed);
        let _ = e;
    };
    let in_stream = build_input(
        &in_dev,
        &in_stream_cfg,
        in_cfg.sample_format(),
        on_input,
        err_in,
    )
    .with_context(|| {
        format!(
            "cannot open input device `{in_name}` ({backend}) at {} Hz",
            rate.0
        )
    })?;
    let out_stream = build_output(
        &out_dev,
        &out_stream_cfg,
        out_cfg.sample_format(),
        on_output,
        err_out,
    )
    .with_context(|| format!("cannot open output device `{out_name}` ({backend})"))?;

    in_stream
        .play()
        .map_err(|e| anyhow!("cannot start input `{in_name}`: {e}"))?;
    out_stream
        .play()
        .map_err(|e| anyhow!("cannot start output `{out_name}`: {e}"))?;

    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    let _ = ctrlc::set_handler(move || s2.store(true, Ordering::Relaxed));
    eprintln!(
        "live on {backend}: in `{in_name}`, out `{out_name}`, {} Hz, {out_ch} channel(s), model {choice} (dry until loaded){}",
        rate.0,
        if args.seconds.is_none() { " — Ctrl-C to stop" } else { "" }
    );
    let t0 = Instant::now();
    let tty = progress::interactive();
    while !stop.load(Ordering::Relaxed)
        && args.seconds.is_none_or(|s| t0.elapsed().as_secs_f64() < s)
    {
        std::thread::sleep(Duration::from_millis(250));
        if let (true, Some(st)) = (tty, session.engine_status()) {
            let i = f32::from_bits(meters.input_peak.swap(0, Ordering::Relaxed));
            let o = f32::from_bits(meters.output_peak.swap(0, Ordering::Relaxed));
            eprint!(
                "\r\x1b[2Klead {:.0} ms (budget {:.0}) | underruns {} | ITL p99 {:.0} ms | in {:.0} dBFS | out {:.0} dBFS",
                st.lead_ms, st.budget_ms, st.underruns, st.itl_p99_ms, db(i), db(o)
            );
        }
    }
    if tty {
        eprintln!();
    }
    drop(in_stream);
    drop(out_stream);
    let trace = session.trace_json();
    let status = session.status();
    let report = match Arc::try_unwrap(session) {
        Ok(s) => s.stop(),
        Err(s) => s.report(),
    };
    let Some(report) = report else {
        bail!(
            "the model never ran: {}",
            if status.state == State::Failed {
                status.reason
            } else {
                "still loading when the session ended".into()
            }
        );
    };
    print!("{}", report.summary(true));
    // Our side: gap-filled callbacks (above) and callbacks that overran their period.
    let period_ms = meters.max_block.load(Ordering::Relaxed) as f64 / rate.0 as f64 * 1000.0;
    let cb = &endpoint_stats.callback_ms;
    println!(
        "audio callback p99 {:.3} / max {:.3} ms of a {period_ms:.2} ms period ({})",
        cb.quantile_ms(0.99),
        cb.max_ms(),
        if cb.max_ms() < period_ms {
            "never late"
        } else {
            "LATE: our callback overran its period"
        }
    );
    // Server-wide xruns, notified to each of our two clients (a non-realtime or
    // loaded JACK server has them whatever its clients do).
    println!(
        "{backend} stream errors/xrun notifications: {}",
        meters.stream_errors.load(Ordering::Relaxed)
    );
    outputs::write_files(
        &args.out,
        &report,
        trace.as_deref(),
        &format!("antiphon live ({backend})"),
    )
}

fn build_input(
    dev: &cpal::Device,
    cfg: &cpal::StreamConfig,
    fmt: cpal::SampleFormat,
    mut f: impl FnMut(&[f32]) + Send + 'static,
    err: impl FnMut(cpal::StreamError) + Send + 'static,
) -> Result<cpal::Stream> {
    fn conv<T: SizedSample>(
        dev: &cpal::Device,
        cfg: &cpal::StreamConfig,
        mut f: impl FnMut(&[f32]) + Send + 'static,
        err: impl FnMut(cpal::StreamError) + Send + 'static,
    ) -> Result<cpal::Stream>
    where
        f32: FromSample<T>,
    {
        let mut buf = vec![0.0f32; 1 << 16];
        Ok(dev.build_input_stream(
            cfg,
            move |d: &[T], _: &_| {
                for chunk in d.chunks(buf.len()) {
                    for (o, x) in buf.iter_mut().zip(chunk) {
                        *o = x.to_sample::<f32>();
                    }
                    f(&buf[..chunk.len()]);
                }
            },
            err,
            None,
        )?)
    }
    match fmt {
        cpal::SampleFormat::F32 => {
            Ok(dev.build_input_stream(cfg, move |d: &[f32], _: &_| f(d), err, None)?)
        }
        cpal::SampleFormat::I16 => conv::<i16>(dev, cfg, f, err),
        cpal::SampleFormat::I32 => conv::<i32>(dev, cfg, f, err),
        cpal::SampleFormat::U16 => conv::<u16>(dev, cfg, f, err),
        other => bail!("unsupported device sample format {other}"),
    }
}

pub(crate) fn build_output(
    dev: &cpal::Device,
    cfg: &cpal::StreamConfig,
    fmt: cpal::SampleFormat,
    mut f: impl FnMut(&mut [f32]) + Send + 'static,
    err: impl FnMut(cpal::StreamError) + Send + 'static,
) -> Result<cpal::Stream> {
    fn conv<T: SizedSample + FromSample<f32>>(
        dev: &cpal::Device,
        cfg: &cpal::StreamConfig,
        mut f: impl FnMut(&mut [f32]) + Send + 'static,
        err: impl FnMut(cpal::StreamError) + Send + 'static,
    ) -> Result<cpal::Stream> {
        let mut buf = vec![0.0f32; 1 << 16];
        Ok(dev.build_output_stream(
            cfg,
            move |d: &mut [T], _: &_| {
                for chunk in d.chunks_mut(buf.len()) {
                    let b = &mut buf[..chunk.len()];
                    f(b);
                    for (o, x) in chunk.iter_mut().zip(b.iter()) {
                        *o = T::from_sample(*x);
                    }
                }
            },
            err,
            None,
        )?)
    }
    match fmt {
        cpal::SampleFormat::F32 => {
            Ok(dev.build_output_stream(cfg, move |d: &mut [f32], _: &_| f(d), err, None)?)
        }
        cpal::SampleFormat::I16 => conv::<i16>(dev, cfg, f, err),
        cpal::SampleFormat::I32 => conv::<i32>(dev, cfg, f, err),
        cpal::SampleFormat::U16 => conv::<u16>(dev, cfg, f, err),
        other => bail!("unsupported device sample format {other}"),
    }
}
