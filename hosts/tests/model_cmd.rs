//! `antiphon model init / bench / inspect` end to end: the benchmark a user
//! runs on their own model, and the load options' one-line errors.

mod common;
use common::*;

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

#[test]
fn init_writes_each_family_and_inspect_names_it() {
    for (family, names) in [
        ("moshi", "moshi: Mimi codec + Moshi LM"),
        ("hibiki", "hibiki: Mimi codec + Hibiki LM"),
        ("codec", "codec: Mimi codec alone"),
    ] {
        let dir = tmp(&format!("family-{family}"));
        let d = dir.to_str().unwrap();
        let o = antiphon(&["model", "init", d, "--family", family, "--seed", "3"]);
        assert!(o.status.success(), "{}", text(&o));
        let o = antiphon(&["model", "inspect", d]);
        let t = text(&o);
        assert!(o.status.success(), "{t}");
        assert!(t.contains(&format!("family     {names}")), "{t}");
    }
    let o = antiphon(&[
        "model",
        "init",
        tmp("family-x").to_str().unwrap(),
        "--family",
        "x",
    ]);
    let t = text(&o);
    assert!(
        !o.status.success() && t.contains("unknown model family `x`") && t.contains("codec"),
        "{t}"
    );
}

/// `init-tiny` writes the built-in model itself: the same bytes the session
/// loads when no model is chosen.
#[test]
fn init_tiny_writes_exactly_the_built_in_model() {
    let dir = tmp("init-tiny");
    let o = antiphon(&["model", "init-tiny", dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let builtin = antiphon_nodes::builtin::builtin_dir(antiphon_nodes::builtin::BUILTIN_SEED)
        .expect("built-in model");
    let mut files: Vec<_> = std::fs::read_dir(&builtin)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    files.sort();
    assert_eq!(files.len(), 3, "{files:?}");
    for f in files {
        let (a, b) = (
            std::fs::read(builtin.join(&f)).unwrap(),
            std::fs::read(dir.join(&f)).unwrap(),
        );
        if f == "antiphon.json" {
            // The same manifest (a cache written by an earlier build may
            // format it differently).
            let parse =
                |t: &[u8]| serde_json::from_slice::<antiphon_nodes::spec::Manifest>(t).unwrap();
            assert_eq!(parse(&a), parse(&b));
        } else {
            assert!(a == b, "{f:?} differs from the built-in model's");
        }
    }
}
