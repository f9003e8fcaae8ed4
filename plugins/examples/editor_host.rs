//! A minimal host that shows the plugin's editor on a real stream, without a DAW
//! or a sound card: the plugin's generation side (model load, graph, engine)
//! fed by a paced stand-in for an audio device, and the editor in a top-level
//! window. `plugins/screenshots.sh` photographs it under Xvfb.
//!
//! ```sh
//! cargo run -p antiphon-plugin --example editor_host [-- --scale 2]
//! ```
//!
//! Why not nice-plug's standalone wrapper: its `standalone` feature pulls cpal
//! 0.18, which links a second ALSA library next to the host's cpal 0.15, and
//! Cargo refuses two `links = "alsa"` packages in one workspace.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use antiphon_plugin::engine::{Engine, ModelChoice};
use antiphon_plugin::params::AntiphonParams;
use antiphon_plugin::ui_feed::{self, UiFeed};
use antiphon_plugin::{editor, knob_table};
use nice_plug::context::gui::{GuiContext, GuiContextInner};
use nice_plug::context::PluginApi;
use nice_plug::editor::{Editor, EditorHandle, SpawnedEditor};
use nice_plug::params::internals::ParamPtr;
use nice_plug::plugin::PluginState;

const RATE: f64 = 48_000.0;
const BLOCK: usize = 512;

/// No DAW behind the window: parameter values are set directly (as a host
/// would after a gesture), state requests go nowhere.
struct NoHost;

impl GuiContextInner for NoHost {
    fn plugin_api(&self) -> PluginApi {
        PluginApi::Standalone
    }
    unsafe fn raw_begin_set_parameter(&self, _: ParamPtr) {}
    unsafe fn raw_set_parameter_normalized(&self, p: ParamPtr, v: f32) {
        // SAFETY: `p` points into the `AntiphonParams` this example keeps alive.
        let _ = unsafe { p._internal_set_normalized_value(v) };
    }
    unsafe fn raw_end_set_parameter(&self, _: ParamPtr) {}
    fn get_state(&self) -> PluginState {
        PluginState {
            version: String::new(),
            params: Default::default(),
            fields: Default::default(),
        }
    }
    fn set_state(&self, _: PluginState) {}
    fn request_restart(&self) {}
}

fn main() {
    // The plugin's log as in a DAW: `NICE_LOG=stderr` or a file name.
    nice_plug::wrapper::setup_logger::<antiphon_plugin::Antiphon>();
    let scale = std::env::args()
        .skip_while(|a| a != "--scale")
        .nth(1)
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(1.0);
    let params = Arc::new(AntiphonParams::default());
    let bridge = ui_feed::new_bridge();
    let feed = UiFeed::new(
        bridge.clone(),
        params.model_dir.clone(),
        params.preset.clone(),
    );
    let model = ModelChoice(params.model_dir.clone());
    let (mut audio, engine) = match Engine::start(RATE, model, knob_table::new_bus(), feed) {
        Ok(started) => started,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };

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
    drop(engine);
}
