//! The editor's only connection to the rest of the plugin.
//!
//! * **Snapshot** (generation side → editor): everything the editor shows, as
//!   one immutable [`Snapshot`] published with arc-swap, latest wins. The
//!   generation side publishes a few times per second; the editor loads the
//!   newest one each frame. The audio thread never touches it.
//! * **Requests** (editor → plugin's non-audio side): the model and the preset
//!   the user picked, each a latest-wins cell. The editor only stores a
//!   request and returns: it never blocks, reads files or loads a model on the
//!   GUI thread. The non-audio side takes requests when it gets to them
//!   ([`UiBridge::take_model_request`] …) and answers through the next
//!   snapshot (status, reason) and, for presets, with parameter values the
//!   editor sets through the host ([`UiBridge::take_param_changes`]), so the
//!   DAW records them and undo/automation work.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use arc_swap::{ArcSwap, ArcSwapOption};

use crate::knob_table::Knob;

/// Where the model stands, as the user should read it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ModelState {
    /// The host has not started processing (no stream yet).
    #[default]
    Inactive,
    Loading,
    Ready,
    /// The model could not be used; audio passes through dry. See the reason.
    Failed,
}

/// Time one stage takes per frame.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StageTime {
    pub name: String,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// One point of the lead-over-time graph.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LeadPoint {
    /// Seconds since the stream started.
    pub t_s: f64,
    pub lead_ms: f64,
    /// The lead the controller aims for.
    pub aim_ms: f64,
}

/// How many lead points the graph keeps (30 s at the feed's 10 Hz).
pub const LEAD_HISTORY: usize = 300;

/// Everything the editor shows. Immutable once published.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    pub state: ModelState,
    /// Why the model is in `state`, in words a user can act on.
    pub reason: String,
    /// Loading progress 0..1 where the loader can tell; `None` otherwise.
    pub progress: Option<f32>,
    /// When the current state began (the editor shows how long it is loading).
    pub state_since: Option<Instant>,
    /// The answer to the user's last request when it could not be followed
    /// (e.g. a preset that does not load); empty otherwise.
    pub notice: String,
    /// The model in use or being loaded: a folder, or `""` for the built-in one.
    pub model: String,
    /// Presets the plugin knows (names), and the chosen one (`""` = none).
    pub presets: Vec<String>,
    pub preset: String,
    /// Audio in → reply out, p50 over the stream so far.
    pub latency_ms: f64,
    /// Generated audio waiting ahead of the playhead, now.
    pub lead_ms: f64,
    /// The lead the controller aims for, now.
    pub aim_ms: f64,
    /// Callbacks with gap-filled samples since activation.
    pub underruns: u64,
    /// The fixed latency reported to the host, or `None` when adaptive.
    pub fixed_latency_ms: Option<f64>,
    /// Fixed latency: frames that came later than it allows.
    pub late_frames: u64,
    /// Compute time / audio time (below 1 keeps up).
    pub rtf: f64,
    pub stages: Vec<StageTime>,
    /// Recent lead points, oldest first, at most [`LEAD_HISTORY`].
    pub lead_history: Vec<LeadPoint>,
}

/// The model the user asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelRequest {
    Builtin,
    /// A model folder, exactly as typed or browsed (spaces, non-ASCII kept).
    Folder(String),
}

impl ModelRequest {
    /// The persisted form (`""` = built-in), as the plugin's state stores it.
    pub fn as_model_dir(&self) -> &str {
        match self {
            ModelRequest::Builtin => "",
            ModelRequest::Folder(f) => f,
        }
    }
}

/// Shared between one plugin instance's editor and its non-audio side.
#[derive(Default)]
pub struct UiBridge {
    snapshot: ArcSwap<Snapshot>,
    model_request: ArcSwapOption<ModelRequest>,
    preset_request: ArcSwapOption<String>,
    param_changes: ArcSwapOption<Vec<(Knob, f32)>>,
    /// An editor window is open (the feed aggregates the report only then:
    /// it locks the engine for a moment, which generation should not pay for
    /// while nobody looks).
    open: AtomicBool,
}

impl UiBridge {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Editor: the window opened or closed.
    pub fn set_open(&self, open: bool) {
        self.open.store(open, Ordering::Release);
    }

    /// Whether an editor window is open.
    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    /// The newest snapshot (wait-free).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// Replaces the snapshot (generation side).
    pub fn publish(&self, s: Snapshot) {
        self.snapshot.store(Arc::new(s));
    }

    /// Editor: asks for another model; replaces any request not yet taken.
    pub fn request_model(&self, r: ModelRequest) {
        self.model_request.store(Some(Arc::new(r)));
    }

    /// Non-audio side: the newest model request, once.
    pub fn take_model_request(&self) -> Option<ModelRequest> {
        self.model_request.swap(None).map(|r| (*r).clone())
    }

    /// Editor: asks for a preset by name; replaces any request not yet taken.
    pub fn request_preset(&self, name: String) {
        self.preset_request.store(Some(Arc::new(name)));
    }

    /// Non-audio side: the newest preset request, once.
    pub fn take_preset_request(&self) -> Option<String> {
        self.preset_request.swap(None).map(|r| (*r).clone())
    }

    /// Non-audio side: parameter values (in each knob's unit) for the editor to
    /// set through the host.
    pub fn offer_param_changes(&self, changes: Vec<(Knob, f32)>) {
        self.param_changes.store(Some(Arc::new(changes)));
    }

    /// Editor: parameter values to set through the host, once.
    pub fn take_param_changes(&self) -> Option<Arc<Vec<(Knob, f32)>>> {
        self.param_changes.swap(None)
    }
}

/// A bounded ring of lead points (oldest dropped first).
#[derive(Debug, Default)]
pub struct LeadHistory(VecDeque<LeadPoint>);

impl LeadHistory {
    pub fn push(&mut self, p: LeadPoint) {
        if self.0.len() == LEAD_HISTORY {
            self.0.pop_front();
        }
        self.0.push_back(p);
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }

    pub fn to_vec(&self) -> Vec<LeadPoint> {
        self.0.iter().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_latest_wins_and_taken_once() {
        let b = UiBridge::new();
        assert_eq!(b.take_model_request(), None);
        b.request_model(ModelRequest::Folder("/a b/ünïcode model".into()));
        b.request_model(ModelRequest::Builtin);
        assert_eq!(b.take_model_request(), Some(ModelRequest::Builtin));
        assert_eq!(b.take_model_request(), None);
        b.request_preset("one".into());
        b.request_preset("two".into());
        assert_eq!(b.take_preset_request().as_deref(), Some("two"));
        assert_eq!(b.take_preset_request(), None);
        assert_eq!(
            ModelRequest::Folder("/a b/ünïcode".into()).as_model_dir(),
            "/a b/ünïcode"
        );
    }

    #[test]
    fn lead_history_is_bounded_and_keeps_the_newest() {
        let mut h = LeadHistory::default();
        for i in 0..(LEAD_HISTORY * 3) {
            h.push(LeadPoint {
                t_s: i as f64,
                lead_ms: 1.0,
                aim_ms: 2.0,
            });
        }
        let v = h.to_vec();
        assert_eq!(v.len(), LEAD_HISTORY);
        assert_eq!(v[0].t_s, (LEAD_HISTORY * 2) as f64);
        assert_eq!(v[LEAD_HISTORY - 1].t_s, (LEAD_HISTORY * 3 - 1) as f64);
    }
}
