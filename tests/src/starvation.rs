//! When the machine, not the code under test, held up a realtime run.
//!
//! A wall-clock test on a shared 2-core machine meets other processes that take
//! the cores for tens of ms; the engine's workers then cannot run, and neither
//! can any other thread of ours at normal priority. A [`Canary`] thread at that
//! priority sleeps 1 ms at a time and records every wake-up that came more than
//! 16 ms late; the device records its own late callbacks the same way. Events
//! near such a window are the machine's doing and are judged apart.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// A span of time, ms since the run's base instant, in which our threads did not run.
pub type Window = (u64, u64);

/// Slack around a window: an underrun can show up to a lead (≤ 1 s here)
/// after the time was lost, and a little before the canary noticed.
const BEFORE_MS: u64 = 100;
const AFTER_MS: u64 = 1000;

/// A normal-priority thread that records when it could not get a core.
pub struct Canary {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Vec<Window>>,
}

impl Canary {
    /// Starts watching; times are ms since `base`.
    pub fn start(base: Instant) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = thread::spawn(move || {
            let mut windows = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                let t = Instant::now();
                thread::sleep(Duration::from_millis(1));
                if t.elapsed() > Duration::from_millis(16) {
                    windows.push((ms(base, t), ms(base, Instant::now())));
                }
            }
            windows
        });
        Self { stop, handle }
    }

    /// Stops watching; the windows in which it starved.
    pub fn finish(self) -> Vec<Window> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or_default()
    }
}

/// `t` in ms since `base`.
pub fn ms(base: Instant, t: Instant) -> u64 {
    t.saturating_duration_since(base).as_millis() as u64
}

/// Whether an event at `at` ms falls near one of `windows`.
pub fn near(at: u64, windows: &[Window]) -> bool {
    windows
        .iter()
        .any(|&(s, e)| at + BEFORE_MS >= s && at <= e + AFTER_MS)
}

/// The share of `0..total_ms` that is near no window.
pub fn clear_fraction(windows: &[Window], total_ms: u64) -> f64 {
    if total_ms == 0 {
        return 0.0;
    }
    let clear = (0..total_ms)
        .step_by(10)
        .filter(|&t| !near(t, windows))
        .count();
    clear as f64 * 10.0 / total_ms as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_near_a_window_are_excused_and_the_clear_share_is_the_rest() {
        let w = [(10_000, 10_050)];
        assert!(near(9_950, &w) && near(10_020, &w) && near(11_000, &w));
        assert!(!near(9_800, &w) && !near(11_100, &w));
        let f = clear_fraction(&w, 60_000);
        // 100 + 50 + 1000 ms of 60 s are near the window.
        assert!((f - (60_000.0 - 1_150.0) / 60_000.0).abs() < 0.001, "{f}");
    }
}
