//! Stall bookkeeping: frames dropped because generation stood still longer than
//! the lead ceiling are gathered into one event per stall, reported once as
//! what it was ("generation stalled 5.0 s; 62 frames dropped").

use std::collections::VecDeque;

use crate::report::{Stall, Stalls};

/// How many stalls the report keeps (the count covers all of them).
const KEEP: usize = 16;

#[derive(Default)]
pub(super) struct StallLog {
    open: Option<Stall>,
    count: u64,
    frames_dropped: u64,
    recent: VecDeque<Stall>,
}

impl StallLog {
    /// `frames` frames were dropped at `at_s`; the oldest of them was `age_s` old.
    pub fn dropped(&mut self, at_s: f64, frames: u64, age_s: f64) {
        let st = self.open.get_or_insert(Stall {
            at_s,
            ..Default::default()
        });
        st.frames_dropped += frames;
        st.seconds = st.seconds.max(age_s);
        self.frames_dropped += frames;
    }

    /// A frame was played on time again: the open stall, if any, is over.
    pub fn resumed(&mut self) {
        if let Some(st) = self.open.take() {
            self.count += 1;
            if self.recent.len() == KEEP {
                self.recent.pop_front();
            }
            self.recent.push_back(st);
        }
    }

    pub fn report(&self) -> Stalls {
        Stalls {
            count: self.count + self.open.is_some() as u64,
            frames_dropped: self.frames_dropped,
            recent: self
                .recent
                .iter()
                .chain(self.open.iter())
                .copied()
                .collect(),
        }
    }
}
