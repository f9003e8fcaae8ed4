//! Flat memory and step time once the backbone's context window is full
//! (short CI version; `examples/long_run.rs` runs 20 000 frames).

use antiphon_framework::knobs::KnobBus;
use antiphon_framework::node::{FrameContext, Node, Payload};
use antiphon_nodes::backbone::Backbone;
use antiphon_nodes::code_predictor::CodePredictor;
use antiphon_nodes::{knobs, ModelBundle};

#[test]
fn backbone_step_time_stops_growing_after_the_context_fills() {
    let bundle = ModelBundle::builtin().unwrap();
    let context = bundle.manifest.lm.config.transformer.context as u64; // 100 steps
    let bus = KnobBus::new(knobs::all(8)).unwrap();
    let snap = bus.snapshot();
    let (mut bb, conv) = Backbone::new(&bundle, 1);
    let mut cp = CodePredictor::new(&bundle, conv.clone(), 1);
    let user = Payload::Codes(bundle.silence_codes.clone());
    let (mut step, mut codes) = (Payload::Empty, Payload::Empty);
    let steps = 5 * context;
    let mut times = Vec::new();
    for k in 0..steps {
        let cx = FrameContext {
            frame: k,
            knobs: &snap,
        };
        let t = std::time::Instant::now();
        bb.process(
            &cx,
            std::slice::from_ref(&user),
            std::slice::from_mut(&mut step),
        )
        .unwrap();
        times.push(t.elapsed().as_secs_f64());
        cp.process(
            &cx,
            std::slice::from_ref(&step),
            std::slice::from_mut(&mut codes),
        )
        .unwrap();
    }
    let median = |s: &[f64]| {
        let mut v = s.to_vec();
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let c = context as usize;
    let (early, late) = (
        median(&times[c + c / 2..2 * c + c / 2]),
        median(&times[4 * c..5 * c]),
    );
    println!(
        "backbone step p50: {:.3} ms at steps {}..{}, {:.3} ms at {}..{}",
        early * 1e3,
        c + c / 2,
        2 * c + c / 2,
        late * 1e3,
        4 * c,
        5 * c
    );
    assert!(
        late < early * 1.5,
        "step time grew after the window filled: {early} → {late}"
    );
    assert_eq!(
        conv.step(),
        steps,
        "the driver runs past any fixed step budget"
    );
}
