//! A session's status: loading / ready / failed, with the model and a reason in
//! words a user can act on. The state is one atomic (the audio thread reads
//! it); the words sit behind a mutex that only non-realtime threads touch.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;

/// Where a session's model stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum State {
    /// Loading (or building the graph); audio passes through dry.
    Loading = 0,
    /// Generating.
    Ready = 1,
    /// The model could not be used; audio passes through dry until another is chosen.
    Failed = 2,
}

/// A status snapshot for people (editors, logs, status lines).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub state: State,
    /// The model this status is about (`builtin` or its folder).
    pub model: String,
    /// What is happening, or why it failed and what to do about it.
    pub reason: String,
    /// Increases with every change (so a reader can tell something happened).
    pub version: u64,
}

/// The shared cell behind [`Status`].
#[derive(Debug)]
pub(crate) struct StatusCell {
    state: AtomicU8,
    version: AtomicU64,
    words: Mutex<(String, String)>,
}

impl StatusCell {
    pub fn new(model: String) -> Self {
        Self {
            state: AtomicU8::new(State::Loading as u8),
            version: AtomicU64::new(0),
            words: Mutex::new((model, "loading".into())),
        }
    }

    /// One atomic load: realtime-safe.
    #[inline]
    pub fn state(&self) -> State {
        match self.state.load(Ordering::Acquire) {
            1 => State::Ready,
            2 => State::Failed,
            _ => State::Loading,
        }
    }

    pub fn get(&self) -> Status {
        let w = self.words.lock().unwrap_or_else(|e| e.into_inner());
        Status {
            state: self.state(),
            model: w.0.clone(),
            reason: w.1.clone(),
            version: self.version.load(Ordering::Acquire),
        }
    }

    pub fn set(&self, state: State, model: &str, reason: String) {
        let mut w = self.words.lock().unwrap_or_else(|e| e.into_inner());
        *w = (model.to_string(), reason);
        self.state.store(state as u8, Ordering::Release);
        self.version.fetch_add(1, Ordering::AcqRel);
    }
}
