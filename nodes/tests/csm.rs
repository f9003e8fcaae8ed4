//! CSM text-to-speech on the stand-in (real architecture and Hugging Face
//! tensor names, tiny random weights), through the engine: offline
//! determinism, the sampling knobs, paced by the virtual device, and every
//! bad input a user can give.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use antiphon_framework::clock::WallClock;
use antiphon_framework::device::{BlockSizes, Pacing as DevicePacing, VirtualDevice};
use antiphon_framework::engine::{render_offline, Engine, EngineConfig, Pacing};
use antiphon_framework::{endpoint, EndpointConfig};
use antiphon_nodes::csm::standin::write_csm_standin;
use antiphon_nodes::speech::{self, ContextTurn, Script, TurnLimit, TEMPERATURE};
use antiphon_nodes::ModelBundle;

const RATE: f64 = 24_000.0;
const FRAME: usize = 1920;

/// The tests run one at a time: the wall-clock test must not share the 2
/// cores with a render.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("antiphon-csm-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn standin(name: &str, seed: u64) -> PathBuf {
    let d = tmp(name);
    write_csm_standin(&d, seed).expect("the stand-in writes and loads");
    d
}

/// Speaks `text` offline; returns the output, the frame the script ended at
/// and the report.
fn say(
    dir: &Path,
    text: &str,
    seed: u64,
    seconds: f64,
    knobs: &[(&str, f32)],
) -> (Vec<f32>, u64, antiphon_framework::report::Report) {
    let model = ModelBundle::load(dir).unwrap();
    let script = Script::parse(text).unwrap();
    let limit = TurnLimit::Seconds(seconds);
    let frames = speech::max_frames(&model, &script, limit).unwrap();
    let (graph, bus, progress) = speech::graph(&model, script, RATE, seed, limit, vec![]).unwrap();
    for (id, v) in knobs {
        bus.set_by_id(id, *v, 0).unwrap();
    }
    let cfg = EngineConfig {
        pacing: Pacing::FreeRunning,
        ..Default::default()
    };
    let (out, report, _) = render_offline(graph, vec![0.0; frames * FRAME], cfg, bus).unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let end = progress
        .finished_at()
        .expect("the script was spoken to its end");
    (out, end, report)
}

fn same_bytes(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

#[test]
fn offline_speech_is_deterministic_per_seed_and_ends_with_the_script() {
    let _one = one_at_a_time();
    let (a_dir, b_dir, c_dir) = (standin("a", 1), standin("b", 1), standin("c", 2));
    let text = "Hello there.\n[1] Hi!";
    let (a, end, r) = say(&a_dir, text, 5, 1.6, &[]);
    // Two turns of 1.6 s (20 frames) each: the stand-in never says `eos`.
    assert_eq!(end, 40, "the script ends after its two turns");
    let speech = &a[..40 * FRAME];
    assert!(a.iter().all(|x| x.is_finite()));
    for (i, f) in speech.chunks(FRAME).enumerate() {
        assert!(f.iter().any(|x| x.abs() > 1e-4), "frame {i} is silent");
    }
    // The output resampler delays by a few ms: one frame covers it.
    assert!(
        a[41 * FRAME..].iter().all(|&x| x == 0.0),
        "silence after the script"
    );
    let stages: Vec<String> = r
        .stages_ms
        .iter()
        .map(|(k, v)| format!("{k} p50 {:.2} p99 {:.2}", v.p50, v.p99))
        .collect();
    eprintln!(
        "CSM stand-in offline: RTF {:.3}\n  {}",
        r.rtf,
        stages.join("\n  ")
    );
    for s in [
        "text",
        "backbone",
        "audio_decoder",
        "decoder",
        "resample_out",
        "output",
    ] {
        assert!(r.stages_ms.contains_key(s), "stage {s} is timed");
    }

    let (b, _, _) = say(&b_dir, text, 5, 1.6, &[]);
    assert!(
        same_bytes(&a, &b),
        "same weights seed and stream seed: same bytes"
    );
    let (c, _, _) = say(&c_dir, text, 5, 1.6, &[]);
    assert!(!same_bytes(&a, &c), "another weights seed: other audio");
    let (d, _, _) = say(&a_dir, text, 6, 1.6, &[]);
    assert!(!same_bytes(&a, &d), "another stream seed: other audio");
    for d in [a_dir, b_dir, c_dir] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn temperature_zero_is_greedy_whatever_the_seed() {
    let _one = one_at_a_time();
    let dir = standin("greedy", 3);
    let (a, _, _) = say(&dir, "Greedy.", 1, 0.8, &[(TEMPERATURE, 0.0)]);
    let (b, _, _) = say(&dir, "Greedy.", 2, 0.8, &[(TEMPERATURE, 0.0)]);
    assert!(same_bytes(&a, &b), "greedy decoding ignores the seed");
    let (c, _, _) = say(&dir, "Greedy.", 1, 0.8, &[]);
    assert!(!same_bytes(&a, &c), "sampling at 0.9 differs from greedy");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn ten_seconds_on_the_wall_clock_without_underruns_after_warmup() {
    let _one = one_at_a_time();
    let dir = standin("paced", 4);
    let model = ModelBundle::load(&dir).unwrap();
    let rate = 48_000.0;
    let (graph, knobs, progress) = speech::graph(
        &model,
        Script::parse("A long turn for the clock.").unwrap(),
        rate,
        0,
        TurnLimit::Seconds(12.0),
        vec![],
    )
    .unwrap();
    let (mut audio, gen) = endpoint(&EndpointConfig::new(rate));
    let stats = audio.stats().clone();
    let warmup = 2.0;
    let engine = Engine::start(
        graph,
        gen,
        EngineConfig {
            pacing: Pacing::FreeRunning,
            warmup_seconds: warmup,
            ..Default::default()
        },
        knobs,
        WallClock::new(),
    );
    let seconds = 10.0;
    let device = thread::spawn(move || {
        let dev = VirtualDevice::new(rate, 2, BlockSizes::Fixed(256), DevicePacing::WallClock)
            .realtime_priority(true);
        // As in tests/tests/model_graph.rs: underruns within a second of the
        // device itself running > 10 ms late are the machine's, not ours.
        let mut t0 = None;
        let mut excused_until = 0u64;
        let (mut judged, mut judged_underruns, mut sound) = (0u64, 0u64, 0u64);
        let run = dev.run((seconds * rate) as u64, |b| {
            let now = Instant::now();
            let t0 = *t0.get_or_insert(now);
            let due = t0 + Duration::from_secs_f64(b.start as f64 / rate);
            if now.saturating_duration_since(due) > Duration::from_millis(10) {
                excused_until = b.start + rate as u64;
            }
            let before = audio.stats().underrun_callbacks.load(Ordering::Relaxed);
            audio.process(b.channels, &[]);
            let under = audio.stats().underrun_callbacks.load(Ordering::Relaxed) - before;
            if b.channels[0].iter().any(|x| x.abs() > 1e-4) {
                sound += 1;
            }
            if b.start >= (warmup * rate) as u64 && b.start >= excused_until {
                judged += 1;
                judged_underruns += under;
            }
            true
        });
        (run, judged, judged_underruns, sound)
    });
    let (run, judged, judged_underruns, sound) = device.join().unwrap();
    let r = engine.stop();
    eprintln!("{}", r.summary(true));
    eprintln!(
        "virtual device: {} callbacks, {} late; judged {judged} ({judged_underruns} underruns); \
         {sound} with sound",
        run.callbacks, run.xruns
    );
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert!(
        progress.finished_at().is_none(),
        "a 12 s turn is still speaking at 10 s"
    );
    assert!(
        sound * 10 >= run.callbacks * 7,
        "speech in {sound} of {} blocks",
        run.callbacks
    );
    assert!(
        stats.first_output_at.load(Ordering::Relaxed) < (rate as u64) / 2,
        "first audio within 0.5 s"
    );
    if judged * 2 < run.callbacks {
        eprintln!("SKIPPED the underrun check: the device kept time for only {judged} callbacks");
        return;
    }
    assert_eq!(judged_underruns, 0, "{}", r.summary(true));
    let _ = std::fs::remove_dir_all(dir);
}

/// Context turns (earlier text with its audio codes) condition the speech;
/// context that cannot fit is a clear error.
#[test]
fn context_turns_condition_the_speech() {
    let _one = one_at_a_time();
    let dir = standin("context", 6);
    let model = ModelBundle::load(&dir).unwrap();
    let greedy = |script: Script| {
        let (graph, bus, progress) =
            speech::graph(&model, script, RATE, 0, TurnLimit::Seconds(0.8), vec![]).unwrap();
        bus.set_by_id(TEMPERATURE, 0.0, 0).unwrap();
        let cfg = EngineConfig {
            pacing: Pacing::FreeRunning,
            ..Default::default()
        };
        let (out, r, _) = render_offline(graph, vec![0.0; 12 * FRAME], cfg, bus).unwrap();
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        assert_eq!(progress.finished_at(), Some(10));
        out
    };
    let plain = Script::parse("Reply.").unwrap();
    let codes: Vec<Vec<u32>> = (0..10u32)
        .map(|f| (0..32u32).map(|c| (f * 97 + c * 31) % 2048).collect())
        .collect();
    let with_context = Script {
        context: vec![ContextTurn {
            speaker: 1,
            text: "An earlier line.".into(),
            codes: codes.clone(),
        }],
        ..plain.clone()
    };
    let (a, b) = (greedy(plain.clone()), greedy(with_context));
    assert!(!same_bytes(&a, &b), "the context changed the greedy speech");
    let too_much = Script {
        context: vec![ContextTurn {
            speaker: 0,
            text: "x".into(),
            codes: vec![codes[0].clone(); 2100],
        }],
        ..plain
    };
    let e = speech::graph(&model, too_much, RATE, 0, TurnLimit::Auto, vec![])
        .err()
        .expect("context too long");
    assert!(e.contains("context turns take"), "{e}");
    let _ = std::fs::remove_dir_all(dir);
}

/// Sesame's tensor name for a Hugging Face one (`None`: not stored there).
fn sesame_name(hf: &str) -> Option<String> {
    let top = [
        ("embed_text_tokens.weight", "text_embeddings.weight"),
        (
            "backbone_model.embed_tokens.embed_audio_tokens.weight",
            "audio_embeddings.weight",
        ),
        ("lm_head.weight", "codebook0_head.weight"),
        (
            "depth_decoder.model.inputs_embeds_projector.weight",
            "projection.weight",
        ),
        ("depth_decoder.codebooks_head.weight", "audio_head"),
    ];
    if let Some((_, s)) = top.iter().find(|(h, _)| *h == hf) {
        return Some(s.to_string());
    }
    if hf == "depth_decoder.model.embed_tokens.weight" {
        return None; // tied to the backbone's
    }
    let mut n = hf
        .replace("backbone_model.", "backbone.")
        .replace("depth_decoder.model.", "decoder.")
        .replace(".self_attn.", ".attn.")
        .replace(".o_proj.", ".output_proj.")
        .replace(".input_layernorm.weight", ".sa_norm.scale")
        .replace(".post_attention_layernorm.weight", ".mlp_norm.scale")
        .replace(".gate_proj.", ".w1.")
        .replace(".up_proj.", ".w3.")
        .replace(".down_proj.", ".w2.");
    if n.ends_with(".norm.weight") {
        n = n.replace(".norm.weight", ".norm.scale");
    }
    Some(n)
}

/// Undoes transformers' conversion of q/k projections (interleaved RoPE
/// pairs → halves), giving Sesame's (torchtune's) layout.
fn to_interleaved(w: &candle::Tensor, heads: usize) -> candle::Tensor {
    let (rows, cols) = w.dims2().unwrap();
    let hd = rows / heads;
    w.reshape((heads, 2, hd / 2, cols))
        .unwrap()
        .transpose(1, 2)
        .unwrap()
        .reshape((rows, cols))
        .unwrap()
}

/// The same weights in Sesame's layout (its names, interleaved RoPE) speak
/// exactly as in the Hugging Face layout.
#[test]
fn sesame_layout_speaks_like_the_hugging_face_layout() {
    let _one = one_at_a_time();
    let hf = standin("hf", 8);
    let sesame = tmp("sesame");
    copy_dir(&hf, &sesame);
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(hf.join("config.json")).unwrap()).unwrap();
    let heads = |c: &serde_json::Value, k: &str| c[k].as_u64().unwrap() as usize;
    let t = candle::safetensors::load(hf.join("model.safetensors"), &candle::Device::Cpu).unwrap();
    let mut out = std::collections::HashMap::new();
    for (name, w) in &t {
        let Some(new) = sesame_name(name) else {
            continue;
        };
        let c = if name.starts_with("backbone_model.") {
            &cfg
        } else {
            &cfg["depth_decoder_config"]
        };
        let w = if name.ends_with("q_proj.weight") {
            to_interleaved(w, heads(c, "num_attention_heads"))
        } else if name.ends_with("k_proj.weight") {
            to_interleaved(w, heads(c, "num_key_value_heads"))
        } else {
            w.clone()
        };
        out.insert(new, w);
    }
    candle::safetensors::save(&out, sesame.join("model.safetensors")).unwrap();
    let greedy = &[(TEMPERATURE, 0.0)];
    let (a, _, _) = say(&hf, "Same voice.", 0, 1.2, greedy);
    let (b, _, _) = say(&sesame, "Same voice.", 0, 1.2, greedy);
    let diff = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    eprintln!("Sesame vs Hugging Face layout, greedy 1.2 s: max |difference| {diff:.3e}");
    assert!(diff < 1e-4, "max |difference| {diff}");
    assert!(a.iter().any(|x| x.abs() > 1e-3));
    for d in [hf, sesame] {
        let _ = std::fs::remove_dir_all(d);
    }
}

fn load_err(dir: &Path) -> String {
    match ModelBundle::load(dir) {
        Ok(_) => panic!("`{}` loaded", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_input_is_a_clear_error() {
    let _one = one_at_a_time();
    let dir = standin("bad", 5);
    let model = ModelBundle::load(&dir).unwrap();
    assert_eq!(model.family.name(), "csm", "recognised from config.json");

    let e = Script::parse(" \n\t\n").unwrap_err();
    assert!(e.contains("no text to speak"), "{e}");
    let e = Script::parse("fine\n[12] who?").unwrap_err();
    assert!(
        e.contains("line 2") && e.contains("unknown speaker id 12"),
        "{e}"
    );
    let e = Script::parse("[x] who?").unwrap_err();
    assert!(e.contains("not a speaker id"), "{e}");

    let long = "word ".repeat(500); // 2 500 byte tokens > 2 048 positions
    let e = speech::graph(
        &model,
        Script::parse(&long).unwrap(),
        RATE,
        0,
        TurnLimit::Auto,
        vec![],
    )
    .err()
    .expect("too long");
    assert!(
        e.contains("text longer than the context") && e.contains("turn 1"),
        "{e}"
    );

    // A tokenizer with ids past the model's text vocabulary (another model's).
    let other = tmp("bad-tokenizer");
    copy_dir(&dir, &other);
    let mut tok: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(other.join("tokenizer.json")).unwrap())
            .unwrap();
    tok["model"]["vocab"]["zz"] = 4000.into();
    std::fs::write(other.join("tokenizer.json"), tok.to_string()).unwrap();
    let e = load_err(&other);
    assert!(
        e.contains("tokenizer.json") && e.contains("text vocabulary has 260"),
        "{e}"
    );
    std::fs::write(other.join("tokenizer.json"), "{ not json").unwrap();
    let e = load_err(&other);
    assert!(
        e.contains("tokenizer.json") && e.contains("not a valid"),
        "{e}"
    );

    // Another family's model where speech is asked for: one clear error
    // naming the file that says what the folder is.
    let moshi = tmp("moshi");
    antiphon_nodes::builtin::write_tiny(
        &moshi,
        1,
        antiphon_nodes::builtin::LmStorage::Safetensors(candle::DType::F32),
        false,
    )
    .unwrap();
    let m = ModelBundle::load(&moshi).unwrap();
    let e = speech::graph(
        &m,
        Script::parse("Hi.").unwrap(),
        RATE,
        0,
        TurnLimit::Auto,
        vec![],
    )
    .err()
    .expect("Moshi does not speak text");
    assert!(
        e.contains("config.json") && e.contains("`moshi`") && e.contains("text-to-speech"),
        "{e}"
    );
    // CSM's config and tokenizer beside Moshi's weights.
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(dir.join(f), moshi.join(f)).unwrap();
    }
    let e = load_err(&moshi);
    assert!(
        e.contains("model.safetensors") && e.contains("not CSM weights"),
        "{e}"
    );
    for d in [dir, other, moshi] {
        let _ = std::fs::remove_dir_all(d);
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
    }
}
