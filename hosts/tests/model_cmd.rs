//! `antiphon model init / bench / inspect` end to end: the benchmark a user
//! runs on their own model, and the load options' one-line errors.

use std::path::PathBuf;
use std::process::{Command, Output};

fn antiphon(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_antiphon"))
        .args(args)
        .output()
        .expect("running antiphon")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("antiphon-model-cmd-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

#[test]
fn init_then_bench_prints_stages_and_writes_a_report() {
    let dir = tmp("tiny");
    let d = dir.to_str().unwrap();
    let o = antiphon(&["model", "init", d, "--size", "tiny", "--seed", "4"]);
    assert!(o.status.success(), "{}", text(&o));
    let report = tmp("bench.json");
    let o = antiphon(&[
        "model",
        "bench",
        d,
        "--seconds",
        "1",
        "--threads",
        "1",
        "--report",
        report.to_str().unwrap(),
    ]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    for w in [
        "encoder",
        "decoder",
        "backbone",
        "all stages",
        "RTF",
        "resident memory",
        "lead floor",
    ] {
        assert!(t.contains(w), "bench output lacks {w}: {t}");
    }
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    // 1 s of audio = 13 frames of 80 ms (rounded up).
    assert_eq!(r["frames"], 13);
    for stage in ["encoder", "backbone", "code_predictor", "decoder"] {
        let p50 = r["stages_ms"][stage]["p50"].as_f64().unwrap();
        let p99 = r["stages_ms"][stage]["p99"].as_f64().unwrap();
        assert!(p50 > 0.0 && p99 >= p50, "{stage}: p50 {p50} p99 {p99}");
    }
    assert!(r["rss_mb"]["peak"].as_f64().unwrap() > 10.0);
    assert!(r["rtf"].as_f64().unwrap() > 0.0);
}

#[test]
fn load_options_a_file_cannot_honour_are_one_error_line() {
    let dir = tmp("opts");
    let d = dir.to_str().unwrap();
    assert!(antiphon(&["model", "init", d]).status.success());
    for (args, want) in [
        (vec!["--dtype", "q4_0"], "needs a GGUF file"),
        (vec!["--device", "cuda"], "--features cuda"),
        (vec!["--dtype", "q7"], "unknown precision"),
    ] {
        let mut a = vec!["model", "inspect", d];
        a.extend(args.iter());
        let o = antiphon(&a);
        let t = text(&o);
        assert_ne!(o.status.code(), Some(0), "{a:?}: {t}");
        let lines: Vec<&str> = t.lines().filter(|l| !l.trim().is_empty()).collect();
        assert!(t.contains(want), "{a:?}: {t}");
        // clap's own usage errors add a usage hint; ours are exactly one line.
        if o.status.code() == Some(1) {
            assert_eq!(lines.len(), 1, "{a:?}: {t}");
            assert!(lines[0].starts_with("error: "), "{t}");
        }
    }
}
