//! Test builds only (`test-hooks`): C entry points that let a headless CLAP
//! host drive the editor's code path on the built plugin without a window:
//! the request the editor makes on a click, then — for presets — what the open
//! editor does each frame with the values the feed offers
//! ([`crate::editor::apply_param_changes`], through a [`NoHost`] context, as
//! no DAW is behind it).

use std::ffi::{c_char, CStr};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use nice_plug::context::gui::GuiContext;

use crate::headless::NoHost;
use crate::params::AntiphonParams;
use crate::ui_bridge::{ModelRequest, UiBridge};

type Instance = (Weak<UiBridge>, Weak<AntiphonParams>);

/// Instances whose feed runs, newest last (dead ones pruned on register).
static INSTANCES: Mutex<Vec<Instance>> = Mutex::new(Vec::new());

/// Records an instance (called when its feed starts).
pub fn register(ui: &Arc<UiBridge>, params: &Arc<AntiphonParams>) {
    let mut v = INSTANCES.lock().unwrap_or_else(|e| e.into_inner());
    v.retain(|(u, _)| u.strong_count() > 0);
    v.push((Arc::downgrade(ui), Arc::downgrade(params)));
}

fn newest() -> Option<(Arc<UiBridge>, Arc<AntiphonParams>)> {
    let v = INSTANCES.lock().unwrap_or_else(|e| e.into_inner());
    v.iter()
        .rev()
        .find_map(|(u, p)| Some((u.upgrade()?, p.upgrade()?)))
}

/// # Safety
/// `s` is null or a NUL-terminated string.
unsafe fn text(s: *const c_char) -> Option<String> {
    (!s.is_null()).then(|| unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned())
}

/// The newest instance's editor chooses preset `name`; returns whether its
/// values were set (within 2 s).
///
/// # Safety
/// `name` is a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn antiphon_test_editor_choose_preset(name: *const c_char) -> bool {
    let (Some(name), Some((ui, params))) = (unsafe { text(name) }, newest()) else {
        return false;
    };
    ui.request_preset(name);
    let gui = GuiContext::new(Arc::new(NoHost));
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(2) {
        if crate::editor::apply_param_changes(&ui, &params, &gui) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    false
}

/// The newest instance's editor asks for the model folder `path` (`""`:
/// built-in). Returns at once, like the editor.
///
/// # Safety
/// `path` is a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn antiphon_test_editor_choose_model(path: *const c_char) -> bool {
    let (Some(path), Some((ui, _))) = (unsafe { text(path) }, newest()) else {
        return false;
    };
    ui.request_model(if path.is_empty() {
        ModelRequest::Builtin
    } else {
        ModelRequest::Folder(path)
    });
    true
}
