//! Time for generation: the wall clock, or a simulated clock that only moves when
//! told to, so hour-long scenarios run in seconds and give the same figures
//! every time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A source of time that generation code (and synthetic nodes) use instead of
/// `Instant`/`sleep` directly.
pub trait Clock: Send + Sync + 'static {
    /// Seconds since the clock started.
    fn now(&self) -> f64;
    /// Waits (wall clock) or advances (simulated) by `d`.
    fn sleep(&self, d: Duration);
    /// Whether time is simulated (the engine then runs single-threaded).
    fn is_simulated(&self) -> bool {
        false
    }
}

/// The real clock.
#[derive(Clone, Debug)]
pub struct WallClock(Instant);

impl WallClock {
    pub fn new() -> Arc<Self> {
        Arc::new(Self(Instant::now()))
    }
}

impl Clock for WallClock {
    fn now(&self) -> f64 {
        self.0.elapsed().as_secs_f64()
    }
    fn sleep(&self, d: Duration) {
        std::thread::sleep(d);
    }
}

/// A clock that moves only through [`Clock::sleep`] and [`SimClock::advance_to`].
#[derive(Debug, Default)]
pub struct SimClock {
    nanos: AtomicU64,
}

impl SimClock {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Moves time forward to `t` seconds (never backward).
    pub fn advance_to(&self, t: f64) {
        let n = (t.max(0.0) * 1e9).ceil() as u64; // up, so now() >= t afterwards
        self.nanos.fetch_max(n, Ordering::SeqCst);
    }
}

impl Clock for SimClock {
    fn now(&self) -> f64 {
        self.nanos.load(Ordering::SeqCst) as f64 * 1e-9
    }
    fn sleep(&self, d: Duration) {
        self.nanos.fetch_add(d.as_nanos() as u64, Ordering::SeqCst);
    }
    fn is_simulated(&self) -> bool {
        true
    }
}
