//! A fixed output delay (a plugin's *fixed* latency mode): every frame's output
//! plays exactly `fixed_delay_samples` after its input, through start-up and
//! after a stall longer than the delay allows, so a host's delay compensation
//! lines the wet signal up with the dry.
//!
//! The graph copies its input; the input is a slow ramp, so every output sample
//! says which input sample it was made from. Real time (a 10 ms block pump on
//! the wall clock), ≈ 5 s.

mod common;

use std::time::{Duration, Instant};

use antiphon_framework::clock::WallClock;
use antiphon_framework::engine::{Engine, EngineConfig};
use antiphon_framework::graph::GraphBuilder;
use antiphon_framework::node::{FrameContext, Node, NodeError, Payload, PortSpec};
use antiphon_framework::{endpoint, EndpointConfig};
use common::knobs_for;

const RATE: f64 = 48_000.0;
const BLOCK: usize = 480; // 10 ms
/// The fixed delay: 200 ms (one 80 ms frame + 120 ms for generation).
const DELAY: u64 = 9_600;
/// How close "aligned" is: the engine's 1 ms slack.
const SLACK: i64 = 48;
const PERIOD: u64 = 20 * 48_000;

fn ramp(n: u64) -> f32 {
    0.1 + 0.8 * ((n % PERIOD) as f32 / PERIOD as f32)
}

/// Input position an output value was made from (`None`: gap fill, silence).
fn source(v: f32) -> Option<i64> {
    (v >= 0.1).then(|| ((v - 0.1) / 0.8 * PERIOD as f32).round() as i64)
}

/// Copies input to output, taking 15 ms per frame; frame `stall_frame` takes
/// `stall` instead (longer than the delay leaves for generation).
struct Copier {
    stall_frame: u64,
    stall: Duration,
}

impl Node for Copier {
    fn name(&self) -> &str {
        "generator"
    }
    fn inputs(&self) -> Vec<PortSpec> {
        vec![PortSpec::audio("in", RATE)]
    }
    fn outputs(&self) -> Vec<PortSpec> {
        vec![PortSpec::audio("out", RATE)]
    }
    fn process(
        &mut self,
        cx: &FrameContext,
        i: &[Payload],
        o: &mut [Payload],
    ) -> Result<(), NodeError> {
        std::thread::sleep(if cx.frame == self.stall_frame {
            self.stall
        } else {
            Duration::from_millis(15)
        });
        o[0].audio_buf().extend_from_slice(i[0].audio()?);
        Ok(())
    }
}

/// Runs `seconds` paced on the wall clock with the engine holding `fixed`;
/// returns, per output sample after the first second, its delay from its
/// input (`None` for gap fill), and the engine's late-frame count.
fn run(fixed: Option<u64>, seconds: f64) -> (Vec<Option<i64>>, u64) {
    let node = Copier {
        stall_frame: 30, // 2.4 s in
        stall: Duration::from_millis(300),
    };
    let graph = GraphBuilder::new()
        .chain(vec![("generator", Box::new(node) as Box<dyn Node>)])
        .build(RATE)
        .unwrap();
    let knobs = knobs_for(&graph);
    let (mut audio, gen) = endpoint(&EndpointConfig::new(RATE));
    let cfg = EngineConfig {
        fixed_delay_samples: fixed,
        warmup_frames: 0,
        ..Default::default()
    };
    let engine = Engine::start(graph, gen, cfg, knobs, WallClock::new());
    let mut buf = vec![0.0f32; BLOCK];
    let mut delays = Vec::new();
    let t0 = Instant::now();
    let blocks = (seconds * RATE / BLOCK as f64) as u64;
    for k in 0..blocks {
        let pos = k * BLOCK as u64;
        for (i, x) in buf.iter_mut().enumerate() {
            *x = ramp(pos + i as u64);
        }
        audio.process(&mut [&mut buf[..]], &[]);
        if pos as f64 >= RATE {
            for (i, &v) in buf.iter().enumerate() {
                delays.push(source(v).map(|s| (pos + i as u64) as i64 - s));
            }
        }
        let due = t0 + Duration::from_secs_f64((pos + BLOCK as u64) as f64 / RATE);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
    }
    let late = engine.status().late_frames;
    (delays, late)
}

/// Share of generated samples whose delay is the fixed delay (± the slack).
fn aligned(delays: &[Option<i64>]) -> (f64, usize) {
    let made: Vec<i64> = delays.iter().flatten().copied().collect();
    let ok = made
        .iter()
        .filter(|d| (*d - DELAY as i64).abs() <= SLACK)
        .count();
    (ok as f64 / made.len().max(1) as f64, made.len())
}

#[test]
fn every_frame_plays_the_fixed_delay_after_its_input_even_after_a_stall() {
    let (delays, late) = run(Some(DELAY), 5.0);
    let (share, made) = aligned(&delays);
    // The last 1.5 s, well after the stall: every generated sample in place.
    let tail = &delays[delays.len() - (1.5 * RATE) as usize..];
    let (tail_share, tail_made) = aligned(tail);
    let gap = delays.iter().filter(|d| d.is_none()).count();
    println!(
        "fixed delay {DELAY}: {:.2} % of {made} generated samples at the delay ±{SLACK} \
         ({:.2} % of the last 1.5 s); {gap} gap samples; {late} late frames",
        share * 100.0,
        tail_share * 100.0
    );
    assert!(
        tail_made as f64 >= 1.4 * RATE,
        "generated audio plays after the stall"
    );
    assert_eq!(tail_share, 1.0, "re-aligned after the stall");
    // Only the stall's gap and its fade-out edges may be elsewhere.
    assert!(share >= 0.99, "{share}");
    assert!(
        late >= 1,
        "the stall made frames late, and the engine says so"
    );
}

/// Without a fixed delay the lead adapts (the stall raises it): the same
/// check fails, so the one above measures the fixed delay, not the harness.
#[test]
fn an_adaptive_lead_is_not_held_at_the_delay() {
    let (delays, _) = run(None, 4.0);
    let (share, _) = aligned(&delays);
    assert!(share < 0.5, "{share}");
}

/// The dry path's delay (a plugin's fixed latency delays its dry signal too):
/// bypassed, the output is the input exactly `dry_delay_samples` later, across
/// odd block sizes; a reset clears what it held.
#[test]
fn the_dry_path_is_delayed_by_exactly_the_dry_delay() {
    use antiphon_framework::OutputParam;
    let mut cfg = EndpointConfig::new(RATE);
    cfg.dry_delay_samples = 1_000;
    cfg.dry_delay_channels = 2;
    let (mut audio, _gen) = endpoint(&cfg);
    audio.set_param(OutputParam::Bypass, 1.0);
    audio.reset();
    let (mut ins, mut outs) = (Vec::new(), Vec::new());
    let mut pos = 0u64;
    for n in [1usize, 7, 480, 1_023, 4_096, 333].iter().cycle().take(30) {
        let mut l: Vec<f32> = (0..*n as u64).map(|i| ramp(pos + i)).collect();
        let mut r: Vec<f32> = l.iter().map(|x| -x).collect();
        ins.extend_from_slice(&l);
        audio.process(&mut [&mut l[..], &mut r[..]], &[]);
        assert!(
            l.iter().zip(&r).all(|(a, b)| *a == -*b),
            "channels delayed alike"
        );
        outs.extend_from_slice(&l);
        pos += *n as u64;
    }
    assert!(outs[..1_000].iter().all(|x| *x == 0.0));
    assert_eq!(
        &outs[1_000..],
        &ins[..ins.len() - 1_000],
        "exactly 1 000 samples later"
    );
    audio.reset();
    let mut l = vec![0.5f32; 10];
    audio.process(&mut [&mut l[..]], &[]);
    assert_eq!(l, vec![0.0; 10], "a reset forgets the delayed input");
}
