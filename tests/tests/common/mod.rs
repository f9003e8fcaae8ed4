//! A headless CLAP host (clack-host) driving the real built Antiphon plugin, and
//! the helper that builds that plugin. Shared by the `clap_*` test binaries.
#![allow(dead_code)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use clack_extensions::latency::PluginLatency;
use clack_extensions::params::{ParamInfoBuffer, PluginParams};
use clack_extensions::render::PluginRender;
pub use clack_extensions::render::RenderMode;
use clack_extensions::state::PluginState;
use clack_host::events::event_types::ParamValueEvent;
use clack_host::prelude::*;

/// Workspace root (this crate lives in `tests/`).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Where plugin builds for tests go: the workspace's own target dir, so the
/// plugin's dependencies (candle, nice-plug) are not compiled a second time.
/// Cargo holds its build-directory lock only while compiling, not while tests
/// run, so the nested build does not wait on the outer `cargo test`.
pub fn test_target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"))
}

/// Builds `antiphon-plugin` (debug) with `features` and returns a private copy
/// of the library named `<tag>.clap`. Builds are serialised with a file lock
/// because feature sets share one output path. The whole workspace is built so
/// that dependencies get the same features as under `cargo test --workspace`
/// (`-p antiphon-plugin` alone leaves out the host's, which changes libc's
/// features and so compiles candle a second time).
pub fn build_plugin(features: &str, tag: &str) -> PathBuf {
    let dir = test_target_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let lock = File::create(dir.join("build.lock")).unwrap();
    lock.lock().unwrap();
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(workspace())
        .args(["build", "--workspace", "--target-dir"])
        .arg(&dir);
    if !features.is_empty() {
        let scoped: Vec<String> = features
            .split(',')
            .map(|f| format!("antiphon-plugin/{}", f.trim()))
            .collect();
        cmd.args(["--features", &scoped.join(",")]);
    }
    let t = std::time::Instant::now();
    let out = cmd.output().expect("run cargo");
    assert!(
        out.status.success(),
        "building the plugin failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "built plugin [{features}] in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    let lib = dir.join("debug").join(format!(
        "{}antiphon_plugin{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    let copy = dir.join(format!("{tag}.clap"));
    std::fs::copy(&lib, &copy).unwrap();
    lock.unlock().unwrap();
    copy
}

pub struct TestHost;
pub struct TestShared;

impl<'a> SharedHandler<'a> for TestShared {
    fn request_restart(&self) {}
    fn request_process(&self) {}
    fn request_callback(&self) {}
}

impl HostHandlers for TestHost {
    type Shared<'a> = TestShared;
    type MainThread<'a> = ();
    type AudioProcessor<'a> = ();
}

/// One parameter as enumerated from the plugin.
#[derive(Clone, Debug)]
pub struct Param {
    pub id: ClapId,
    pub name: String,
    pub min: f64,
    pub max: f64,
    pub default: f64,
}

/// A loaded plugin instance plus the extensions the tests use.
pub struct Loaded {
    pub instance: PluginInstance<TestHost>,
    pub params: PluginParams,
    pub state: PluginState,
    pub latency: Option<PluginLatency>,
    pub render: Option<PluginRender>,
    _entry: PluginEntry,
}

pub fn load(path: &Path) -> Loaded {
    // SAFETY: loading our own freshly built plugin library.
    let entry = unsafe { PluginEntry::load(path) }.expect("load .clap entry");
    let factory = entry.get_plugin_factory().expect("plugin factory");
    let desc = factory
        .plugin_descriptors()
        .find(|d| {
            d.id()
                .is_some_and(|id| id.to_bytes() == b"dev.antiphon.antiphon")
        })
        .expect("Antiphon descriptor");
    let id = desc.id().unwrap().to_owned();
    let info = HostInfo::new(
        "antiphon-test-host",
        "Antiphon",
        "https://example.invalid",
        "0.1",
    )
    .unwrap();
    let mut instance = PluginInstance::<TestHost>::new(|_| TestShared, |_| (), &entry, &id, &info)
        .expect("instantiate");
    let h = instance.plugin_handle();
    let params = h.get_extension::<PluginParams>().expect("params extension");
    let state = h.get_extension::<PluginState>().expect("state extension");
    let latency = h.get_extension::<PluginLatency>();
    let render = h.get_extension::<PluginRender>();
    Loaded {
        instance,
        params,
        state,
        latency,
        render,
        _entry: entry,
    }
}

impl Loaded {
    pub fn enumerate(&mut self) -> Vec<Param> {
        let mut buf = ParamInfoBuffer::new();
        let h = self.instance.plugin_handle();
        (0..self.params.count(&h))
            .filter_map(|i| {
                self.params.get_info(&h, i, &mut buf).map(|p| Param {
                    id: p.id,
                    name: String::from_utf8_lossy(p.name).into_owned(),
                    min: p.min_value,
                    max: p.max_value,
                    default: p.default_value,
                })
            })
            .collect()
    }

    pub fn param(&mut self, name: &str) -> Param {
        self.enumerate()
            .into_iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no parameter named {name:?}"))
    }

    pub fn value(&mut self, id: ClapId) -> f64 {
        let h = self.instance.plugin_handle();
        self.params.get_value(&h, id).expect("param value")
    }

    pub fn values(&mut self) -> Vec<(String, f64)> {
        let ps = self.enumerate();
        ps.into_iter()
            .map(|p| (p.name.clone(), self.value(p.id)))
            .collect()
    }

    pub fn save(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        let h = self.instance.plugin_handle();
        self.state.save(&h, &mut out).expect("save state");
        out
    }

    /// Loads a state blob; `Ok` if the plugin accepted it.
    pub fn load_state(&mut self, blob: &[u8]) -> Result<(), String> {
        let h = self.instance.plugin_handle();
        let mut r = std::io::Cursor::new(blob);
        self.state.load(&h, &mut r).map_err(|e| e.to_string())
    }

    /// Tells the plugin how the next activation renders (CLAP `render` extension).
    pub fn set_render_mode(&mut self, mode: RenderMode) {
        let h = self.instance.plugin_handle();
        self.render
            .expect("render extension")
            .set(&h, mode)
            .expect("render mode accepted");
    }

    pub fn latency(&mut self) -> u32 {
        let h = self.instance.plugin_handle();
        self.latency.map_or(0, |l| l.get(&h))
    }

    pub fn activate(&mut self, rate: f64, max: u32) -> StartedPluginAudioProcessor<TestHost> {
        let stopped = self
            .instance
            .activate(
                |_, _| (),
                PluginAudioConfiguration {
                    sample_rate: rate,
                    min_frames_count: 1,
                    max_frames_count: max,
                },
            )
            .expect("activate");
        stopped.start_processing().expect("start processing")
    }

    pub fn deactivate(&mut self, p: StartedPluginAudioProcessor<TestHost>) {
        self.instance.deactivate(p.stop_processing());
    }
}

impl Loaded {
    /// Points the instance at another model folder (`""` = built-in) the way a
    /// host does it: by loading a state that differs only in `model_dir`.
    pub fn set_model_dir(&mut self, dir: &str) {
        let saved = self.save();
        let mut state: serde_json::Value = serde_json::from_slice(&saved[8..]).expect("state JSON");
        state["fields"]["model_dir"] =
            serde_json::Value::String(serde_json::to_string(dir).unwrap());
        let json = state.to_string();
        let mut blob = (json.len() as u64).to_le_bytes().to_vec();
        blob.extend_from_slice(json.as_bytes());
        self.load_state(&blob)
            .expect("state with another model folder");
    }
}

/// What one block sounded like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Heard {
    /// Exactly the input, on both channels.
    Dry,
    /// The model's audio: finite, and ≥ 90 % of the samples neither silent nor
    /// the input (gap fill decays to exact zeros within 3 ms).
    Generated,
    /// Anything else (gap fill, crossfades).
    Other,
}

/// Judges a block of `n` samples in `io`.
pub fn heard(io: &Io, n: usize) -> Heard {
    let dry = (0..2).all(|c| io.output[c][..n] == io.input[c][..n]);
    let model = (0..2).all(|c| {
        let out = &io.output[c][..n];
        let fresh = out
            .iter()
            .zip(&io.input[c][..n])
            .filter(|(o, i)| **o != 0.0 && o != i)
            .count();
        out.iter().all(|x| x.is_finite()) && fresh * 10 >= n * 9
    });
    match (dry, model) {
        (true, _) => Heard::Dry,
        (false, true) => Heard::Generated,
        _ => Heard::Other,
    }
}

/// Speech-like test input (the framework's synthetic voice), stereo.
pub fn speech(io: &mut Io, pos: u64, n: usize, rate: f64) {
    for i in 0..n {
        let x = 0.5 * antiphon_framework::synth::speechlike(pos + i as u64, rate);
        io.input[0][i] = x;
        io.input[1][i] = x;
    }
}

/// Plays speech in blocks of `n` samples paced by the wall clock like a sound
/// card, for at most `secs` of audio, until `stop` says so; `first` goes with
/// the first block. Returns what each block sounded like.
pub fn play(
    proc_: &mut StartedPluginAudioProcessor<TestHost>,
    io: &mut Io,
    rate: f64,
    n: usize,
    secs: f64,
    first: &EventBuffer,
    mut stop: impl FnMut(&[Heard]) -> bool,
) -> Vec<Heard> {
    let t0 = std::time::Instant::now();
    let none = EventBuffer::new();
    let mut out = Vec::new();
    let mut pos = 0u64;
    while (pos as f64) < secs * rate {
        let due = t0 + std::time::Duration::from_secs_f64(pos as f64 / rate);
        if let Some(w) = due.checked_duration_since(std::time::Instant::now()) {
            std::thread::sleep(w);
        }
        speech(io, pos, n, rate);
        io.process(proc_, n, if pos == 0 { first } else { &none });
        pos += n as u64;
        out.push(heard(io, n));
        if stop(&out) {
            break;
        }
    }
    out
}

/// A parameter change at `offset` within a block.
pub fn param_event(offset: u32, id: ClapId, value: f64) -> ParamValueEvent {
    ParamValueEvent::new(offset, id, Pckn::match_all(), value)
}

/// Reusable stereo buffers for out-of-place processing.
pub struct Io {
    pub input: [Vec<f32>; 2],
    pub output: [Vec<f32>; 2],
    in_ports: AudioPorts,
    out_ports: AudioPorts,
    out_events: EventBuffer,
}

impl Io {
    pub fn new(max: usize) -> Self {
        Self {
            input: [vec![0.0; max], vec![0.0; max]],
            output: [vec![0.0; max], vec![0.0; max]],
            in_ports: AudioPorts::with_capacity(2, 1),
            out_ports: AudioPorts::with_capacity(2, 1),
            out_events: EventBuffer::with_capacity(64),
        }
    }

    /// Processes the first `n` samples of `input` into `output`.
    pub fn process(
        &mut self,
        p: &mut StartedPluginAudioProcessor<TestHost>,
        n: usize,
        events: &EventBuffer,
    ) {
        let [il, ir] = &mut self.input;
        let ins = self.in_ports.with_input_buffers([AudioPortBuffer {
            latency: 0,
            channels: AudioPortBufferType::f32_input_only(
                [
                    InputChannel::variable(&mut il[..n]),
                    InputChannel::variable(&mut ir[..n]),
                ]
                .into_iter(),
            ),
        }]);
        let [ol, or] = &mut self.output;
        let mut outs = self.out_ports.with_output_buffers([AudioPortBuffer {
            latency: 0,
            channels: AudioPortBufferType::f32_output_only(
                [&mut ol[..n], &mut or[..n]].into_iter(),
            ),
        }]);
        self.out_events.clear();
        p.process(
            &ins,
            &mut outs,
            &InputEvents::from_buffer(events),
            &mut OutputEvents::from_buffer(&mut self.out_events),
            None,
            None,
        )
        .expect("process");
    }
}

/// Small deterministic PRNG (xorshift64*), so failures reproduce.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}
