//! `antiphon say` end to end on the CSM stand-in: streamed on the wall clock
//! into a WAV with report, trace and plot; deterministic fast renders; and
//! the user's mistakes (message and exit code).

use std::path::{Path, PathBuf};

mod common;
use common::*;

/// The stand-in written through the CLI, once per test.
fn standin(name: &str, seed: u64) -> PathBuf {
    let dir = tmp(name);
    let o = antiphon(&[
        "model",
        "init",
        s(&dir),
        "--family",
        "csm",
        "--seed",
        &seed.to_string(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    dir
}

fn samples(p: &Path) -> (hound::WavSpec, Vec<i16>) {
    let mut r = hound::WavReader::open(p).unwrap();
    let spec = r.spec();
    (spec, r.samples::<i16>().map(|x| x.unwrap()).collect())
}

#[test]
fn say_streams_on_the_wall_clock_with_report_trace_and_plot() {
    let model = standin("rt-model", 3);
    let (out, report, trace, plot) = (
        tmp("rt.wav"),
        tmp("rt.json"),
        tmp("rt-trace.json"),
        tmp("rt.svg"),
    );
    let o = antiphon(&[
        "say",
        "Hello there.",
        "--model",
        s(&model),
        "--output",
        s(&out),
        "--max-seconds",
        "2",
        "--report",
        s(&report),
        "--trace",
        s(&trace),
        "--plot",
        s(&plot),
    ]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    eprintln!("{t}");
    let (spec, x) = samples(&out);
    assert_eq!((spec.channels, spec.sample_rate), (1, 24_000));
    // 2 s = 25 frames of 1 920 samples, from the first generated sample on.
    assert_eq!(x.len(), 25 * 1920, "{t}");
    let loud = x
        .chunks(1920)
        .filter(|f| f.iter().any(|v| v.unsigned_abs() > 3))
        .count();
    assert_eq!(loud, 25, "every frame has sound");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let first = r["first_audio_ms"].as_f64().expect("first audio measured");
    assert!(first > 0.0 && first < 500.0, "first audio after {first} ms");
    for stage in ["text", "backbone", "audio_decoder", "decoder"] {
        assert!(
            r["stages_ms"][stage]["p50"].as_f64().unwrap() > 0.0 || stage == "text",
            "{stage}"
        );
    }
    let tr = std::fs::read_to_string(&trace).unwrap();
    assert!(
        tr.contains("\"audio_decoder\"") && tr.contains("\"backbone\""),
        "trace spans"
    );
    assert!(std::fs::read_to_string(&plot).unwrap().starts_with("<svg"));
    assert!(t.contains("first audio") && t.contains("RTF"), "{t}");
}

#[test]
fn say_fast_from_a_script_is_byte_identical_per_seed() {
    let model = standin("fast-model", 4);
    let script = tmp("script.txt");
    std::fs::write(
        &script,
        "[0] First line.\n\n[1] Second line, another voice.\n",
    )
    .unwrap();
    let run = |seed: &str, out: &Path| {
        let o = antiphon(&[
            "say",
            "--file",
            s(&script),
            "--model",
            s(&model),
            "--output",
            s(out),
            "--pace",
            "fast",
            "--max-seconds",
            "1",
            "--seed",
            seed,
        ]);
        assert!(o.status.success(), "{}", text(&o));
        text(&o)
    };
    let (a, b, c) = (tmp("fast-a.wav"), tmp("fast-b.wav"), tmp("fast-c.wav"));
    let t = run("1", &a);
    assert!(t.contains("turns 2"), "{t}");
    run("1", &b);
    run("2", &c);
    let (_, xa) = samples(&a);
    assert_eq!(xa.len(), 2 * 13 * 1920, "two turns of 1 s (13 frames)");
    assert_eq!(
        std::fs::read(&a).unwrap(),
        std::fs::read(&b).unwrap(),
        "same seed, same bytes"
    );
    assert_ne!(
        std::fs::read(&a).unwrap(),
        std::fs::read(&c).unwrap(),
        "another seed"
    );
}

fn mistake(args: &[&str], code: i32, expect: &[&str]) {
    let o = antiphon(args);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(code), "{args:?}: {t}");
    for e in expect {
        assert!(t.contains(e), "{args:?}: expected `{e}` in: {t}");
    }
    assert!(!t.contains("panicked"), "{t}");
}

#[test]
fn say_mistakes_give_one_clear_line() {
    let model = standin("bad-model", 5);
    let m = s(&model);
    let out = tmp("bad.wav");
    let o = s(&out);
    mistake(
        &["say", "--model", m, "--output", o],
        1,
        &["nothing to say"],
    );
    mistake(
        &["say", "Hi.", "--model", m],
        1,
        &["--output OUT.wav, --live"],
    );
    mistake(
        &["say", "Hi.", "--file", "x.txt", "--output", o],
        2,
        &["cannot be used with"],
    );
    mistake(
        &["say", "Hi.", "--output", o, "--context-text", "Earlier."],
        2,
        &["--context-wav"],
    );
    mistake(
        &[
            "say",
            "Hi.",
            "--model",
            m,
            "--output",
            o,
            "--context-text",
            "Earlier.",
            "--context-wav",
            "/nonexistent/c.wav",
        ],
        1,
        &["c.wav"],
    );
    let empty = tmp("empty.txt");
    std::fs::write(&empty, "\n  \n").unwrap();
    mistake(
        &["say", "--file", s(&empty), "--model", m, "--output", o],
        1,
        &["empty.txt", "no text to speak"],
    );
    mistake(
        &["say", "--file", "/nonexistent/s.txt", "--output", o],
        1,
        &["cannot read the script", "s.txt"],
    );
    mistake(
        &["say", "Hi.", "--model", m, "--output", o, "--speaker", "12"],
        1,
        &["--speaker", "12 is out of range"],
    );
    let long = "word ".repeat(500);
    mistake(
        &["say", &long, "--model", m, "--output", o],
        1,
        &["text longer than the context", "split it"],
    );
    // A Moshi model given where CSM is expected.
    let moshi = tmp("moshi-model");
    let i = antiphon(&["model", "init", s(&moshi)]);
    assert!(i.status.success(), "{}", text(&i));
    mistake(
        &["say", "Hi.", "--model", s(&moshi), "--output", o],
        1,
        &["`moshi`", "text-to-speech", "antiphon say"],
    );
    assert!(!out.exists(), "no WAV written after a mistake");
}
