//! The built plugin in the headless CLAP host: its log reaches `NICE_LOG`'s
//! target, and denormal input costs no more than normal input in `process`.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use clack_host::prelude::*;
use common::*;

fn plugin() -> &'static PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| build_plugin("", "antiphon-log-denormals"))
}

const LOG_CHILD_ENV: &str = "ANTIPHON_LOG_CHILD_PLUGIN";

/// Points a saved state at `dir` as the model folder and loads it.
fn choose_model(p: &mut Loaded, dir: &str) {
    let saved = String::from_utf8(p.save()[8..].to_vec()).unwrap();
    let json = saved.replace(
        r#""model_dir":"\"\"""#,
        &format!(r#""model_dir":"\"{dir}\"""#),
    );
    assert_ne!(json, saved, "state layout changed: {saved}");
    let mut blob = (json.len() as u64).to_le_bytes().to_vec();
    blob.extend_from_slice(json.as_bytes());
    p.load_state(&blob).unwrap();
}

/// The child: loads the plugin with a missing model folder and runs a second
/// of audio. Its log goes wherever the parent's `NICE_LOG` says.
#[test]
#[ignore = "run by `nice_log_names_the_failed_model` in a child process"]
fn log_child() {
    let Some(path) = std::env::var_os(LOG_CHILD_ENV) else {
        println!("skipped: {LOG_CHILD_ENV} not set (a child of the log test)");
        return;
    };
    let mut p = load(std::path::Path::new(&path));
    choose_model(&mut p, "/no/such/antiphon model");
    let mut io = Io::new(512);
    let events = EventBuffer::new();
    let mut proc_ = p.activate(48_000.0, 512);
    for _ in 0..100 {
        io.process(&mut proc_, 480, &events);
        std::thread::sleep(Duration::from_millis(10));
    }
    p.deactivate(proc_);
}

#[test]
fn nice_log_names_the_failed_model() {
    let log = std::env::temp_dir().join(format!("antiphon-nice-log-{}.txt", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "log_child", "--nocapture"])
        .env(LOG_CHILD_ENV, plugin())
        .env("NICE_LOG", &log)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The file writer flushes from its own thread; give it a moment.
    let mut text = String::new();
    for _ in 0..100 {
        text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("passing audio through dry") {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = std::fs::remove_file(&log);
    assert!(
        text.contains("/no/such/antiphon model` failed")
            && text.contains("passing audio through dry"),
        "NICE_LOG file lacks the load failure:\n{text}"
    );
}

/// Median of a slice (sorted in place).
fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[test]
fn denormal_input_costs_no_more_than_normal_input() {
    const BLOCK: usize = 512;
    const BLOCKS: usize = 200;
    let mut p = load(plugin());
    let mut io = Io::new(BLOCK);
    let events = EventBuffer::new();
    let mut rng = Rng(7);
    let mut proc_ = p.activate(48_000.0, BLOCK as u32);
    // Wait (bounded) for model output, so the measured blocks mix a real reply.
    let mut ready = false;
    for _ in 0..2000 {
        io.process(&mut proc_, BLOCK, &events);
        if io.output[0][BLOCK - 16..] != io.input[0][BLOCK - 16..] {
            ready = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(ready, "the model never produced output");
    // Interleaved A/B, so machine load hits both alike.
    let (mut normal, mut denormal) = (Vec::new(), Vec::new());
    for b in 0..2 * BLOCKS {
        let scale = if b % 2 == 0 { 0.5 } else { 1e-39 };
        for ch in io.input.iter_mut() {
            for x in ch.iter_mut() {
                *x = (rng.unit() as f32 - 0.5) * scale;
            }
        }
        let t = Instant::now();
        io.process(&mut proc_, BLOCK, &events);
        let us = t.elapsed().as_secs_f64() * 1e6;
        if b % 2 == 0 {
            normal.push(us);
        } else {
            assert!(io.input[0].iter().any(|x| x.is_subnormal()));
            denormal.push(us);
        }
        // Real time-ish pacing, so generation keeps up as in a host.
        std::thread::sleep(Duration::from_millis(2));
    }
    p.deactivate(proc_);
    let (n, d) = (median(&mut normal), median(&mut denormal));
    let ratio = d / n;
    println!(
        "process per {BLOCK}-sample block over {BLOCKS} blocks each: normal median {n:.1} µs, \
         denormal median {d:.1} µs, ratio {ratio:.2}"
    );
    // The goal is ≤ 1.5× (see the report); the bound here is loose because a
    // shared CI machine is noisy.
    assert!(
        ratio <= 2.0,
        "denormal input costs {ratio:.2}× normal input"
    );
}
