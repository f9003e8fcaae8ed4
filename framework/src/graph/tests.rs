//! Graph validation: each kind of mistake is caught and reads well.

use super::*;
use crate::knobs::KnobSpec;
use crate::node::{FrameContext, Node, NodeError, Payload, PortSpec};

/// A test node with configurable ports.
struct T {
    ins: Vec<PortSpec>,
    outs: Vec<PortSpec>,
}

impl Node for T {
    fn name(&self) -> &str {
        "t"
    }
    fn inputs(&self) -> Vec<PortSpec> {
        self.ins.clone()
    }
    fn outputs(&self) -> Vec<PortSpec> {
        self.outs.clone()
    }
    fn knobs(&self) -> Vec<KnobSpec> {
        Vec::new()
    }
    fn process(
        &mut self,
        _: &FrameContext,
        _: &[Payload],
        _: &mut [Payload],
    ) -> Result<(), NodeError> {
        Ok(())
    }
}

fn audio(rate: f64) -> Box<dyn Node> {
    Box::new(T {
        ins: vec![PortSpec::audio("in", rate)],
        outs: vec![PortSpec::audio("out", rate)],
    })
}
fn enc() -> Box<dyn Node> {
    Box::new(T {
        ins: vec![PortSpec::audio("in", 48_000.0)],
        outs: vec![PortSpec::codes("codes", 8)],
    })
}
fn dec(k: usize) -> Box<dyn Node> {
    Box::new(T {
        ins: vec![PortSpec::codes("codes", k)],
        outs: vec![PortSpec::audio("out", 48_000.0)],
    })
}

fn err(b: GraphBuilder) -> String {
    b.build(48_000.0).unwrap_err().to_string()
}

#[test]
fn a_good_chain_builds_in_topological_order() {
    let g = GraphBuilder::new()
        .node("dec", dec(8))
        .node("enc", enc())
        .connect("enc.codes", "dec.codes")
        .input("enc.in")
        .output("dec.out")
        .build(48_000.0)
        .unwrap();
    assert_eq!(g.stage_names(), ["enc", "dec"]);
    assert_eq!(g.output, (1, 0));
    let g = GraphBuilder::new()
        .chain(vec![("a", audio(48_000.0)), ("b", audio(48_000.0))])
        .build(48_000.0)
        .unwrap();
    assert_eq!(g.stage_names(), ["a", "b"]);
}

#[test]
fn type_mismatch_names_both_ports_and_kinds() {
    let m = err(GraphBuilder::new()
        .node("enc", enc())
        .node("dec", dec(4))
        .connect("enc.codes", "dec.codes")
        .input("enc.in")
        .output("dec.out"));
    assert_eq!(
        m,
        "type mismatch: `enc.codes` produces codes × 8 but `dec.codes` expects codes × 4"
    );
}

#[test]
fn rate_mismatch_with_the_device_is_reported() {
    let m = err(GraphBuilder::new()
        .node("a", audio(24_000.0))
        .input("a.in")
        .output("a.out"));
    assert!(
        m.contains("device input")
            && m.contains("audio @ 48000 Hz")
            && m.contains("audio @ 24000 Hz"),
        "{m}"
    );
}

#[test]
fn unconnected_input_is_named() {
    let m = err(GraphBuilder::new()
        .node("enc", enc())
        .node("dec", dec(8))
        .input("enc.in")
        .output("dec.out"));
    assert_eq!(m, "input `dec.codes` is not connected to anything");
}

#[test]
fn unknown_node_and_port_list_what_exists() {
    let m = err(GraphBuilder::new()
        .node("enc", enc())
        .node("dec", dec(8))
        .connect("enc.codes", "dcd.codes")
        .input("enc.in")
        .output("dec.out"));
    assert!(
        m.contains("no node named `dcd`") && m.contains("enc"),
        "{m}"
    );
    let m = err(GraphBuilder::new()
        .node("enc", enc())
        .input("enc.input")
        .output("enc.codes"));
    assert_eq!(m, "`enc.input` is not an input port (available inputs: in)");
    let m = err(GraphBuilder::new()
        .node("enc", enc())
        .input("enc")
        .output("enc.codes"));
    assert!(m.contains("write `node.port`"), "{m}");
}

#[test]
fn cycles_are_named() {
    let m = err(GraphBuilder::new()
        .node("src", audio(48_000.0))
        .node(
            "a",
            Box::new(T {
                ins: vec![
                    PortSpec::audio("in", 48_000.0),
                    PortSpec::audio("fb", 48_000.0),
                ],
                outs: vec![
                    PortSpec::audio("out", 48_000.0),
                    PortSpec::audio("o2", 48_000.0),
                ],
            }),
        )
        .node(
            "b",
            Box::new(T {
                ins: vec![PortSpec::audio("in", 48_000.0)],
                outs: vec![PortSpec::audio("out", 48_000.0)],
            }),
        )
        .connect("src.out", "a.in")
        .connect("a.out", "b.in")
        .connect("b.out", "a.fb")
        .input("src.in")
        .output("a.o2"));
    assert!(
        m.starts_with("the graph has a cycle through:") && m.contains('a') && m.contains('b'),
        "{m}"
    );
}

#[test]
fn double_feeds_fan_out_duplicates_and_missing_ends_are_rejected() {
    let m = err(GraphBuilder::new()
        .node("a", audio(48_000.0))
        .node("b", audio(48_000.0))
        .node("c", audio(48_000.0))
        .connect("a.out", "c.in")
        .connect("b.out", "c.in")
        .input("a.in")
        .output("c.out"));
    assert_eq!(m, "input `c.in` is fed twice: by `a.out` and by `b.out`");
    let m = err(GraphBuilder::new()
        .node("a", audio(48_000.0))
        .node("b", audio(48_000.0))
        .connect("a.out", "b.in")
        .input("a.in")
        .output("a.out"));
    assert!(m.contains("feeds both `device output` and `b.in`"), "{m}");
    let m = err(GraphBuilder::new()
        .node("a", audio(48_000.0))
        .node("a", audio(48_000.0))
        .input("a.in")
        .output("a.out"));
    assert!(m.contains("two nodes are named `a`"));
    assert!(err(GraphBuilder::new()
        .node("a", audio(48_000.0))
        .output("a.out"))
    .contains("no input port"));
    assert!(
        err(GraphBuilder::new().node("a", audio(48_000.0)).input("a.in"))
            .contains("no output port")
    );
    assert_eq!(err(GraphBuilder::new()), "the graph has no nodes");
}

#[test]
fn descriptions_build_through_the_registry_and_report_bad_kinds() {
    let mut reg = NodeRegistry::new();
    reg.register(
        "pass",
        Box::new(|p, rate| {
            if p.get("fail").is_some() {
                return Err("`fail` is not a parameter".into());
            }
            Ok(audio(rate))
        }),
    );
    let d = GraphDesc::from_json(
        r#"{"nodes":[{"name":"a","kind":"pass"},{"name":"b","kind":"pass"}],
        "edges":[{"from":"a.out","to":"b.in"}],"input":"a.in","output":"b.out"}"#,
    )
    .unwrap();
    assert_eq!(d.build(&reg, 48_000.0).unwrap().stage_names(), ["a", "b"]);
    let d = GraphDesc::from_json(
        r#"{"nodes":[{"name":"a","kind":"encoder"}],"input":"a.in","output":"a.out"}"#,
    )
    .unwrap();
    assert_eq!(
        d.build(&reg, 48_000.0).unwrap_err().to_string(),
        "node `a`: unknown kind `encoder` (known kinds: pass)"
    );
    let d = GraphDesc::from_json(r#"{"nodes":[{"name":"a","kind":"pass","params":{"fail":1}}],"input":"a.in","output":"a.out"}"#).unwrap();
    assert!(d
        .build(&reg, 48_000.0)
        .unwrap_err()
        .to_string()
        .contains("node `a`: bad parameters"));
    let e = GraphDesc::from_json(r#"{"nodes":[],"input":"a.in","output":"a.out","extra":1}"#)
        .unwrap_err();
    assert!(
        e.to_string().contains("bad graph description") && e.to_string().contains("extra"),
        "{e}"
    );
}
