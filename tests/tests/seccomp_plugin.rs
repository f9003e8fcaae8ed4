//! No syscall in the plugin's `process`, machine-checked: the real built
//! plugin, driven through the headless CLAP host, processes every block on a
//! seccomp-confined thread — while the model loads (dry), then with model
//! output, parameter automation inside blocks, random block sizes and resets.
//! Any syscall traps and fails the test with its number (see
//! `antiphon_tests::seccomp`, whose canaries show the check can fail).
#![cfg(all(target_os = "linux", target_arch = "x86_64"))]

mod common;

use std::time::{Duration, Instant};

use antiphon_tests::seccomp::{self, run_child, section};
use clack_host::prelude::*;
use common::*;

const CHILD: &str = "plugin_child";
const PLUGIN_ENV: &str = "ANTIPHON_SECCOMP_PLUGIN";
const DONE: &str = "SECCOMP_PLUGIN_DONE";
const BLOCKS: u64 = 3_000;

#[derive(Clone, Debug, Default)]
struct Seen {
    loading_blocks: u64,
    blocks: u64,
    wet_blocks: u64,
    param_events: u64,
    resets: u64,
}

#[test]
#[ignore = "run by the seccomp plugin test in a child process"]
fn plugin_child() {
    let Some(path) = std::env::var_os(PLUGIN_ENV) else {
        println!("skipped: {PLUGIN_ENV} not set (a child process of the seccomp test)");
        return;
    };
    let mut p = load(std::path::Path::new(&path));
    // Every automatable parameter (a host never automates "Fixed latency";
    // changing it asks the host for a restart).
    let params: Vec<_> = p
        .enumerate()
        .into_iter()
        .filter(|q| q.name != "Fixed latency")
        .collect();
    let mut proc_ = p.activate(48_000.0, 1024);
    // Everything the audio thread touches is allocated here: the confined
    // thread's first allocation would map a malloc arena (a syscall).
    let mut io = Io::new(1024);
    let mut events = EventBuffer::with_capacity(16);
    let seen = seccomp::run_confined(Duration::from_secs(180), move || {
        let mut rng = Rng(42);
        let mut seen = Seen::default();
        let mut played = 0u64;
        let t0 = Instant::now();
        let pace = |played: u64| {
            section("harness: pacing");
            seccomp::sleep_until(t0 + Duration::from_secs_f64(played as f64 / 48_000.0));
        };
        // While the model loads on its own thread the plugin passes audio dry.
        loop {
            for ch in io.input.iter_mut() {
                for x in &mut ch[..256] {
                    *x = (rng.unit() as f32 - 0.5) * 0.5;
                }
            }
            section("plugin process (loading)");
            io.process(&mut proc_, 256, &events);
            played += 256;
            seen.loading_blocks += 1;
            if io.output[0][240..256]
                .iter()
                .zip(&io.input[0][240..256])
                .all(|(o, i)| o != i)
            {
                break;
            }
            assert!(
                seen.loading_blocks < 4_000,
                "the model never produced output"
            );
            pace(played);
        }
        for b in 0..BLOCKS {
            let n = 1 + rng.below(512) as usize;
            section("harness: input");
            for ch in io.input.iter_mut() {
                for x in &mut ch[..n] {
                    *x = (rng.unit() as f32 - 0.5) * 0.5;
                }
            }
            events.clear();
            if b % 3 == 0 {
                let q = &params[rng.below(params.len() as u64) as usize];
                let v = match q.name.as_str() {
                    "Bypass" => 0.0,
                    "Dry/wet" => 1.0,
                    _ => q.min + rng.unit() * (q.max - q.min),
                };
                events.push(&param_event(rng.below(n as u64) as u32, q.id, v));
                seen.param_events += 1;
            }
            section("plugin process");
            io.process(&mut proc_, n, &events);
            section("harness: output check");
            if io.output[0][..n]
                .iter()
                .zip(&io.input[0][..n])
                .any(|(o, i)| o != i && *o != 0.0)
            {
                seen.wet_blocks += 1;
            }
            if b % 600 == 599 {
                section("plugin reset");
                proc_.reset();
                seen.resets += 1;
            }
            seen.blocks += 1;
            played += n as u64;
            pace(played);
        }
        seen
    });
    println!(
        "{DONE} loading_blocks={} blocks={} wet_blocks={} param_events={} resets={}",
        seen.loading_blocks, seen.blocks, seen.wet_blocks, seen.param_events, seen.resets
    );
    std::process::exit(0);
}

#[test]
fn plugin_process_makes_no_syscall() {
    let plugin = build_plugin("", "antiphon-seccomp");
    let out = run_child(CHILD, &[(PLUGIN_ENV, plugin.to_str().unwrap())]);
    let line = out.summary(DONE);
    assert!(
        out.status.success() && line.is_some(),
        "the plugin made a syscall in process or failed: {}",
        out.describe()
    );
    let line = line.unwrap();
    println!("{line}");
    let figure = |key: &str| -> u64 {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
            .and_then(|v| v.parse().ok())
            .unwrap()
    };
    assert_eq!(figure("blocks"), BLOCKS);
    assert!(figure("loading_blocks") > 0);
    assert!(figure("param_events") >= BLOCKS / 3);
    // Random lead-floor and reset automation inserts silence now and then;
    // measured: 1 818 of 3 000 blocks carry model output alone, 1 395 beside
    // three compiles. A third is still a thousand blocks of the model path.
    assert!(
        figure("wet_blocks") * 3 >= BLOCKS,
        "model output in too few blocks to be a real check: {line}"
    );
}
