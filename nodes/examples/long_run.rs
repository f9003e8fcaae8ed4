//! Long-stream flatness: runs the full canonical chain on the built-in model
//! for N frames (default 20 000 ≈ 27 min of audio) and prints RSS and the
//! backbone's step time around frames 5 000 and N.
//!
//! `cargo run -p antiphon-nodes --example long_run [-- FRAMES]`

use antiphon_nodes::chain::OfflineChain;
use antiphon_nodes::ModelBundle;

fn rss_mib() -> f64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = s
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    pages * 4096.0 / (1024.0 * 1024.0)
}

fn main() {
    let frames: u64 = std::env::args()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let bundle = ModelBundle::builtin().expect("built-in model");
    let mut chain = OfflineChain::canonical(&bundle, 24_000.0, 1).expect("chain");
    let bb = chain
        .nodes
        .iter()
        .position(|n| n.name() == "backbone")
        .unwrap();
    let mut window: Vec<f64> = Vec::with_capacity(500);
    let t0 = std::time::Instant::now();
    let mut marks = vec![1_000u64, 5_000, 10_000, 15_000, frames];
    marks.retain(|&m| m <= frames);
    for k in 0..frames {
        let x: Vec<f32> = (0..1920)
            .map(|i| (((k * 1920 + i) as f64 * 0.0571).sin() * 0.3) as f32)
            .collect();
        chain.run_frame(&x).expect("frame");
        // Backbone time of this frame, from the chain's timing ring.
        let stats_t = chain_last(&chain, bb, k);
        if window.len() == 500 {
            window.remove(0);
        }
        window.push(stats_t);
        if marks.contains(&(k + 1)) {
            let mut w = window.clone();
            w.sort_by(|a, b| a.total_cmp(b));
            println!(
                "frame {:>6}: RSS {:7.1} MiB  backbone p50 {:.3} ms p99 {:.3} ms (last 500)  elapsed {:.0} s",
                k + 1,
                rss_mib(),
                w[w.len() / 2] * 1e3,
                w[(w.len() - 1) * 99 / 100] * 1e3,
                t0.elapsed().as_secs_f64()
            );
        }
    }
    for (name, p50, p99, max) in chain.stage_stats() {
        println!(
            "  {name:>15}: p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms",
            p50 * 1e3,
            p99 * 1e3,
            max * 1e3
        );
    }
}

fn chain_last(chain: &OfflineChain, node: usize, frame: u64) -> f64 {
    chain.last_time(node, frame)
}
