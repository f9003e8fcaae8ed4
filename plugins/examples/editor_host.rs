//! A minimal host that shows the plugin's editor on a real stream, without a DAW
//! or a sound card: the plugin's generation side (model load, graph, engine)
//! fed by a paced stand-in for an audio device, and the editor in a top-level
//! window. `plugins/screenshots.sh` photographs it under Xvfb.
//!
//! ```sh
//! cargo run --workspace --example editor_host [-- --scale 2] [-- --model DIR]
//! ```
//!
//! Why not nice-plug's standalone wrapper: its `standalone` feature pulls cpal
//! 0.18, which links a second ALSA library next to the host's cpal 0.15, and
//! Cargo refuses two `links = "alsa"` packages in one workspace.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use antiphon_nodes::session::Session;
use antiphon_plugin::editor;
use antiphon_plugin::headless::NoHost;
use antiphon_plugin::params::AntiphonParams;
use antiphon_plugin::stream;
use antiphon_plugin::ui_feed::{self, FeedThread};
use nice_plug::context::gui::GuiContext;
use nice_plug::editor::{Editor, EditorHandle, SpawnedEditor};

const RATE: f64 = 48_000.0;
const BLOCK: usize = 512;

fn main() {
    // The plugin's log as in a DAW: `NICE_LOG=stderr` or a file name.
    nice_plug::wrapper::setup_logger::<antiphon_plugin::Antiphon>();
    let arg = |name: &str| std::env::args().skip_while(|a| a != name).nth(1);
    let scale = arg("--scale")
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(1.0);
    let params = Arc::new(AntiphonParams::default());
    // `--model DIR` starts on a model folder instead of the built-in model.
    if let Some(dir) = arg("--model") {
        *params.model_dir.write().unwrap() = dir;
    }
    let bridge = ui_feed::new_bridge();
    let (mut audio, session) = match Session::start(stream::config(RATE, &params.model_dir, false))
    {
        Ok(started) => started,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    let session = Arc::new(session);
    let feed = match FeedThread::start(bridge.clone(), params.clone()) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    feed.attach(&session);

    // The "device": 512-sample blocks in real time, a quiet gliding tone in.
    let stop = Arc::new(AtomicBool::new(false));
    let device = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut l, mut r) = (vec![0.0f32; BLOCK], vec![0.0f32; BLOCK]);
            let start = Instant::now();
            let mut n = 0u64;
            while !stop.load(Ordering::Acquire) {
                for (i, (a, b)) in l.iter_mut().zip(r.iter_mut()).enumerate() {
                    let t = (n + i as u64) as f64 / RATE;
                    let f = 140.0 + 60.0 * (t * 0.7).sin();
                    *a = (0.1 * (std::f64::consts::TAU * f * t).sin()) as f32;
                    *b = *a;
                }
                audio.process(&mut [&mut l[..], &mut r[..]], &[]);
                n += BLOCK as u64;
                let due = start + Duration::from_secs_f64(n as f64 / RATE);
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
            }
        })
    };

    let ed = editor::create(bridge, params.clone()).expect("the plugin has an editor");
    let gui = GuiContext::new(Arc::new(NoHost));
    match ed.spawn(None, false, Some(scale), gui, None) {
        Ok(SpawnedEditor { handle, window }) => {
            if let Err(e) =
                <nice_plug_egui::EguiEditorHandle as EditorHandle>::run_until_closed(window)
            {
                eprintln!("error: the window failed: {e:?}");
            }
            drop(handle);
        }
        Err(e) => eprintln!("error: cannot open the editor window: {e}"),
    }
    stop.store(true, Ordering::Release);
    let _ = device.join();
    drop(feed);
    drop(session);
}
