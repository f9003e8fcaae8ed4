//! The built plugin declares CLAP remote-control pages a DAW can map a
//! controller to: every knob on exactly one page, grouped by what it does.

mod common;

use clack_extensions::remote_controls::{PluginRemoteControls, RemoteControlsPageBuffer};
use common::*;

#[test]
fn remote_control_pages_cover_every_knob_once() {
    let path = build_plugin("", "antiphon-remote-controls");
    let mut p = load(&path);
    let params = p.enumerate();
    let h = p.instance.plugin_handle();
    let rc = h
        .get_extension::<PluginRemoteControls>()
        .expect("remote-controls extension");
    let mut mh = p.instance.plugin_handle();
    let count = rc.count(&mut mh);
    let mut pages = Vec::new();
    for i in 0..count {
        let mut buf = RemoteControlsPageBuffer::new();
        let page = rc.get(&mut mh, i, &mut buf).expect("page");
        let names: Vec<String> = page
            .param_ids
            .iter()
            .flatten()
            .map(|id| {
                params
                    .iter()
                    .find(|q| q.id == *id)
                    .expect("known id")
                    .name
                    .clone()
            })
            .collect();
        pages.push((String::from_utf8_lossy(page.page_name).into_owned(), names));
    }
    let expected = [
        ("Output", vec!["Output gain", "Dry/wet", "Bypass"]),
        (
            "Voice",
            vec![
                "Audio temperature",
                "Text temperature",
                "Top-k",
                "Codebook depth",
            ],
        ),
        (
            "Stream",
            vec![
                "Latency mode (lead floor)",
                "Fixed latency",
                "Listen",
                "Reset conversation",
            ],
        ),
    ];
    assert_eq!(pages.len(), expected.len(), "{pages:?}");
    for ((name, got), (want_name, want)) in pages.iter().zip(expected) {
        assert_eq!(name, want_name);
        assert_eq!(got, &want, "page {name}");
    }
    let covered: usize = pages.iter().map(|(_, n)| n.len()).sum();
    assert_eq!(covered, params.len(), "every knob on a page");
}
