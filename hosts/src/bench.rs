//! `antiphon bench`: the reproducible end-to-end latency benchmark. A virtual
//! stereo sound card (48 kHz / 256 by default) on the wall clock feeds a known
//! speech-like signal to the full graph; optional fault injection and scripted
//! knob changes; prints the summary and writes report, trace and plot.

use antiphon_framework::synth::speechlike;
use anyhow::{bail, Result};

use crate::cli::BenchArgs;
use crate::outputs;
use crate::progress;
use crate::realtime::{self, Feed};
use crate::setup::{check_script, Loaded};

pub fn run(args: BenchArgs) -> Result<()> {
    if !(args.seconds.is_finite() && args.seconds > 0.0 && args.seconds <= 24.0 * 3600.0) {
        bail!(
            "--seconds must be between 0 and 86400 (got {})",
            args.seconds
        );
    }
    if !(8_000..=192_000).contains(&args.rate) {
        bail!("--rate must be 8000–192000 Hz (got {})", args.rate);
    }
    outputs::check_writable(&args.out.paths())?;
    let rate = args.rate as f64;
    let loaded = Loaded::new(&args.model)?;
    let (graph, knobs) = loaded.graph(rate, args.inject_stall)?;
    let script = check_script(&knobs, &args.knob)?;
    let cfg = loaded.engine_config(args.out.trace.is_some(), args.warmup);
    let stall = args.inject_stall.map_or("no stalls".to_string(), |s| {
        format!("backbone stalls {} ms every {} frames", s.ms, s.every)
    });
    eprintln!(
        "bench: {} s at {} Hz / {} samples on the wall clock, {stall}, model {}",
        args.seconds, args.rate, args.block_size, loaded.bundle.manifest.name
    );
    let feed = Feed {
        rate,
        channels: 2,
        block: args.block_size as usize,
        frames: (args.seconds * rate).round() as u64,
        input: Box::new(move |start, chans| {
            for i in 0..chans.first().map_or(0, |c| c.len()) {
                let x = 0.5 * speechlike(start + i as u64, rate);
                for c in chans.iter_mut() {
                    c[i] = x;
                }
            }
        }),
        script,
        keep_output: false,
        end: std::sync::Arc::new(std::sync::atomic::AtomicU64::new(u64::MAX)),
    };
    let pb = progress::bar(args.seconds, "bench");
    let o = realtime::run(graph, knobs, cfg, feed, |t, st| {
        pb.set_position((t * 10.0) as u64);
        pb.set_message(format!(
            "lead {:.0} ms (aim {:.0})  ITL p99 {:.0} ms  underruns {}",
            st.lead_ms, st.aim_ms, st.itl_p99_ms, st.underruns
        ));
    });
    pb.finish_and_clear();
    print!("{}", o.report.summary(true));
    if o.device.xruns > 0 {
        println!(
            "warning: the virtual device itself ran late {} times (machine overloaded)",
            o.device.xruns
        );
    }
    outputs::write_files(
        &args.out,
        &o.report,
        o.trace.as_deref(),
        &format!("antiphon bench: {stall}"),
    )
}
