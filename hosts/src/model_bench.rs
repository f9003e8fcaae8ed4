//! `antiphon model bench [DIR]`: how fast this machine runs a model. Renders
//! a speech-like signal offline through the canonical chain (every stage in
//! turn on one thread, so stage times do not disturb each other) and prints
//! per-stage p50/p99 ms per 80 ms frame, the real-time factor, resident memory
//! and the lead floor to use here. The JSON report has the schema of `run`
//! and `bench`.

use std::collections::BTreeMap;
use std::time::Instant;

use antiphon_framework::lead::LeadSettings;
use antiphon_framework::report::{rss_mb, Report, RssMb};
use antiphon_framework::synth::speechlike;
use antiphon_framework::telemetry::Percentiles;
use antiphon_nodes::bundle::{FRAME_SAMPLES, MODEL_RATE};
use antiphon_nodes::chain::OfflineChain;
use antiphon_nodes::ModelBundle;
use anyhow::{anyhow, bail, Context, Result};

use crate::cli::ModelBenchArgs;
use crate::progress;

/// Frames run before measuring (caches, thread pools), as the engine's warm start does.
const WARMUP_FRAMES: usize = 3;

fn quantile(v: &[f64], p: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(((v.len().max(1) - 1) as f64 * p).round() as usize)
        .copied()
        .unwrap_or(0.0)
}

pub fn run(args: ModelBenchArgs) -> Result<()> {
    if !(args.seconds.is_finite() && args.seconds >= 0.08 && args.seconds <= 3600.0) {
        bail!(
            "--seconds must be between 0.08 and 3600 (got {})",
            args.seconds
        );
    }
    if let Some(p) = &args.report {
        crate::outputs::check_writable(&[p.as_path()])?;
    }
    if let Some(n) = args.threads {
        // Read by candle and rayon when their pools start, i.e. after this point.
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
    let rss_start = rss_mb();
    let spin = progress::spinner("loading the model");
    let t = Instant::now();
    let bundle = match &args.dir {
        Some(d) => ModelBundle::load_with(d, args.load.options())
            .map_err(|e| anyhow!("cannot load the model: {e}"))?,
        None => {
            ModelBundle::builtin().map_err(|e| anyhow!("cannot prepare the built-in model: {e}"))?
        }
    };
    let load_s = t.elapsed().as_secs_f64();
    spin.finish_and_clear();
    let rss_loaded = rss_mb();
    let mut chain = OfflineChain::canonical(&bundle, MODEL_RATE, args.seed)
        .map_err(|e| anyhow!("cannot build the graph: {e}"))?;
    let frames = (args.seconds * MODEL_RATE / FRAME_SAMPLES as f64).ceil() as usize;
    println!(
        "model {}  ({}; load {:.2} s, {} kernel threads)",
        bundle.manifest.name,
        args.dir
            .as_ref()
            .map_or("built-in".into(), |d| d.display().to_string()),
        load_s,
        candle::utils::get_num_threads()
    );

    let mut input = vec![0f32; FRAME_SAMPLES];
    let fill = |k: usize, buf: &mut [f32]| {
        for (i, x) in buf.iter_mut().enumerate() {
            *x = 0.5 * speechlike((k * FRAME_SAMPLES + i) as u64, MODEL_RATE);
        }
    };
    for k in 0..WARMUP_FRAMES {
        fill(k, &mut input);
        chain
            .run_frame(&input)
            .map_err(|e| anyhow!("warm-up frame {k}: {e}"))?;
    }
    let names: Vec<String> = chain.nodes.iter().map(|n| n.name().to_string()).collect();
    let mut stage_ms: Vec<Vec<f64>> = vec![Vec::with_capacity(frames); names.len()];
    let mut production_ms = Vec::with_capacity(frames);
    let mut rss_peak = rss_loaded;
    let pb = progress::bar(args.seconds, "model bench");
    let t_run = Instant::now();
    for k in 0..frames {
        fill(WARMUP_FRAMES + k, &mut input);
        let frame = (WARMUP_FRAMES + k) as u64;
        chain
            .run_frame(&input)
            .map_err(|e| anyhow!("frame {k}: {e}"))?;
        let mut total = 0.0;
        for (i, s) in stage_ms.iter_mut().enumerate() {
            let ms = chain.last_time(i, frame) * 1e3;
            s.push(ms);
            total += ms;
        }
        production_ms.push(total);
        if k % 25 == 0 {
            rss_peak = rss_peak.max(rss_mb());
        }
        pb.set_position(((k + 1) as f64 * 0.8).round() as u64);
        pb.set_message(format!("frame {} / {frames}", k + 1));
    }
    pb.finish_and_clear();
    let wall = t_run.elapsed().as_secs_f64();
    let rss_end = rss_mb();
    rss_peak = rss_peak.max(rss_end);
    let audio_s = frames as f64 * FRAME_SAMPLES as f64 / MODEL_RATE;

    let pct = |v: &[f64]| Percentiles {
        p50: quantile(v, 0.5),
        p99: quantile(v, 0.99),
        max: quantile(v, 1.0),
    };
    let stages: BTreeMap<String, Percentiles> = names
        .iter()
        .zip(&stage_ms)
        .map(|(n, v)| (n.clone(), pct(v)))
        .collect();
    let prod = pct(&production_ms);
    let rtf = production_ms.iter().sum::<f64>() / 1e3 / audio_s;
    let lead = LeadSettings::default();
    let floor = (prod.p99 + lead.margin_ms).max(lead.floor_ms);

    println!(
        "{frames} frames of 80 ms ({audio_s:.1} s of audio) in {wall:.2} s\n\nstage            p50 ms   p99 ms   max ms   (per 80 ms frame)"
    );
    for (n, v) in names.iter().zip(&stage_ms) {
        let p = pct(v);
        println!("{n:<15} {:7.2}  {:7.2}  {:7.2}", p.p50, p.p99, p.max);
    }
    println!(
        "{:<15} {:7.2}  {:7.2}  {:7.2}",
        "all stages", prod.p50, prod.p99, prod.max
    );
    println!("\nRTF {rtf:.3} (compute / audio time; below 1 is faster than real time)");
    println!(
        "resident memory: {rss_start:.0} MB at start, {rss_loaded:.0} MB loaded, {rss_peak:.0} MB peak"
    );
    println!(
        "recommended lead floor here: {floor:.0} ms (p99 production {:.1} ms + {:.0} ms margin, at least {:.0} ms){}",
        prod.p99,
        lead.margin_ms,
        lead.floor_ms,
        if prod.p99 > 80.0 {
            "; slower than real time: frames will be skipped live"
        } else {
            ""
        }
    );
    if let Some(p) = &args.report {
        let mut r = Report {
            frames: frames as u64,
            audio_seconds: audio_s,
            wall_seconds: wall,
            rtf,
            stages_ms: stages,
            rss_mb: RssMb {
                start: rss_start,
                peak: rss_peak,
                end: rss_end,
            },
            ..Report::default()
        };
        r.series.production_ms = production_ms
            .iter()
            .enumerate()
            .map(|(k, &ms)| (k as f64 * 0.08, ms))
            .collect();
        std::fs::write(p, r.to_json())
            .with_context(|| format!("cannot write report `{}`", p.display()))?;
        eprintln!("report: {}", p.display());
    }
    Ok(())
}
