//! Greedy tokens of a model folder's LM through our backbone and code
//! predictor nodes, for parity scripts (`tests/reference/`).
//!
//! `cargo run -p antiphon-nodes --example lm_greedy_tokens -- DIR INPUT.json`
//!
//! INPUT.json: `[[codes of the user's stream at step 0], [step 1], …]`.
//! Prints `{"family", "acoustic_delay", "text": [per step], "audio": [each
//! complete generated frame, in order]}`.

use antiphon_framework::knobs::KnobBus;
use antiphon_framework::node::{FrameContext, Node, Payload};
use antiphon_nodes::backbone::Backbone;
use antiphon_nodes::code_predictor::CodePredictor;
use antiphon_nodes::{knobs, ModelBundle};

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args.next().expect("usage: lm_greedy_tokens DIR INPUT.json");
    let input: Vec<Vec<u32>> = serde_json::from_str(
        &std::fs::read_to_string(args.next().expect("INPUT.json")).expect("read INPUT.json"),
    )
    .expect("INPUT.json: a list of code lists");
    let bundle = ModelBundle::load(&dir).unwrap_or_else(|e| panic!("{e}"));
    let bus = KnobBus::new(knobs::all(bundle.decoded_codebooks())).unwrap();
    bus.set_by_id(knobs::TEXT_TEMPERATURE, 0.0, 0).unwrap();
    bus.set_by_id(knobs::AUDIO_TEMPERATURE, 0.0, 0).unwrap();
    bus.publish();
    let snap = bus.snapshot();
    let (mut bb, conv) = Backbone::new(&bundle, 0).unwrap();
    let mut cp = CodePredictor::new(&bundle, conv, 0).unwrap();
    let mut pay: Vec<Payload> = (0..3).map(|_| Payload::Empty).collect();
    let (mut text, mut audio) = (Vec::new(), Vec::new());
    for (k, codes) in input.into_iter().enumerate() {
        let cx = FrameContext {
            frame: k as u64,
            knobs: &snap,
        };
        pay[0] = Payload::Codes(codes);
        let (a, b) = pay.split_at_mut(1);
        bb.process(&cx, &a[0..1], &mut b[0..1]).unwrap();
        let (a, b) = pay.split_at_mut(2);
        cp.process(&cx, &a[1..2], &mut b[0..1]).unwrap();
        text.push(cp.last_text.expect("a text token every step"));
        if let Payload::Codes(c) = &pay[2] {
            audio.push(c.clone());
        }
    }
    let out = serde_json::json!({
        "family": bundle.family.name(),
        "acoustic_delay": bundle.generation().acoustic_delay,
        "text": text,
        "audio": audio,
    });
    println!("{out}");
}
