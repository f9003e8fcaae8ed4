//! `antiphon run`: a WAV file spoken to the model as if into a microphone; the
//! reply is written at the input's rate, channel count and sample format.

use antiphon_framework::engine::render_offline;
use antiphon_framework::report::Report;
use antiphon_nodes::session::mix_offline;
use anyhow::{Context, Result};

use crate::cli::{Pace, RunArgs};
use crate::outputs;
use crate::progress;
use crate::realtime::{self, Feed};
use crate::setup::Loaded;
use crate::wav;

/// Audio appended after the input so the reply's tail (pipeline delay plus
/// lead) is heard, seconds.
const TAIL_S: f64 = 1.0;

pub fn run(args: RunArgs) -> Result<()> {
    let audio = match &args.input {
        Some(p) => wav::read(p)?,
        None => {
            eprintln!(
                "no --input given: using the built-in demo voice (4.7 s of espeak-ng speech)"
            );
            wav::demo()?
        }
    };
    let mut paths = args.out.paths();
    paths.push(&args.output);
    outputs::check_writable(&paths)?;
    let rate = audio.spec.sample_rate as f64;
    let loaded = Loaded::new(&args.model)?;
    let (graph, knobs) = loaded.graph(rate, None)?;
    let tail = (TAIL_S * rate) as usize;
    let total = audio.frames() + tail;
    let cfg = loaded.engine_config(args.out.trace.is_some(), 0.0);

    let (reply, report, trace) = match args.pace {
        Pace::Fast => {
            let mut mono = audio.mono();
            mono.resize(total, 0.0);
            let spin = progress::spinner("rendering (fast)");
            let rendered = render_offline(graph, mono, cfg, knobs.clone());
            spin.finish_and_clear();
            let (out, report, trace) = rendered.context("rendering failed")?;
            // No audio thread offline: the output stage runs through an
            // endpoint all the same (one gain rule, see the session core).
            let mut wet = out;
            wet.resize(total, 0.0);
            let reply = mix_offline(&audio.channels, &wet, rate, &knobs);
            (reply, report, trace)
        }
        Pace::Realtime => {
            let input = audio.channels.clone();
            let feed = Feed {
                rate,
                channels: audio.channels.len(),
                block: args.block_size as usize,
                frames: total as u64,
                input: Box::new(move |start, chans| {
                    for (c, buf) in chans.iter_mut().enumerate() {
                        for (i, x) in buf.iter_mut().enumerate() {
                            *x = input[c].get(start as usize + i).copied().unwrap_or(0.0);
                        }
                    }
                }),
                script: Vec::new(),
                keep_output: true,
                end: std::sync::Arc::new(std::sync::atomic::AtomicU64::new(u64::MAX)),
            };
            let pb = progress::bar(total as f64 / rate, "speaking");
            let o = realtime::run(graph, knobs, cfg, feed, |t, st| {
                pb.set_position((t * 10.0) as u64);
                pb.set_message(format!(
                    "lead {:.0} ms  underruns {}",
                    st.lead_ms, st.underruns
                ));
            });
            pb.finish_and_clear();
            (o.output, o.report, o.trace)
        }
    };
    wav::write(&args.output, audio.spec, &reply)?;
    let finite = reply.iter().flatten().all(|x| x.is_finite());
    println!(
        "reply: {} ({:.2} s, {} Hz, {} channel{}{})",
        args.output.display(),
        total as f64 / rate,
        audio.spec.sample_rate,
        reply.len(),
        if reply.len() == 1 { "" } else { "s" },
        if finite { "" } else { ", NON-FINITE SAMPLES" }
    );
    print_and_write(
        &args.out,
        &report,
        trace.as_deref(),
        args.pace == Pace::Realtime,
        "antiphon run",
    )
}

fn print_and_write(
    out: &crate::cli::OutputArgs,
    r: &Report,
    trace: Option<&str>,
    live: bool,
    title: &str,
) -> Result<()> {
    print!("{}", r.summary(live));
    outputs::write_files(out, r, trace, title).context("writing results")
}
