//! Parameter smoothing for output-stage knobs.
//!
//! A linear ramp rather than a one-pole filter: it reaches the target in a known
//! number of samples (so tests and users can reason about it), and the first
//! sample after a change already moves toward the target (sample-accurate).

/// A value that glides linearly to its target over a fixed number of samples.
#[derive(Clone, Debug)]
pub struct Smoothed {
    current: f32,
    target: f32,
    step: f32,
    remaining: u32,
    ramp_len: u32,
}

impl Smoothed {
    /// Starts settled at `value`; changes take `ramp_len` samples (0 = instant).
    pub fn new(value: f32, ramp_len: u32) -> Self {
        Self {
            current: value,
            target: value,
            step: 0.0,
            remaining: 0,
            ramp_len,
        }
    }

    /// Ramp length in samples for `ms` milliseconds at `sample_rate`.
    pub fn ramp_for(ms: f32, sample_rate: f64) -> u32 {
        ((ms as f64 * 1e-3 * sample_rate).round().max(0.0) as u64).min(u32::MAX as u64) as u32
    }

    /// Changes the ramp length for future changes (e.g. after a sample-rate change).
    pub fn set_ramp_len(&mut self, ramp_len: u32) {
        self.ramp_len = ramp_len;
    }

    /// Sets a new target; the next [`Smoothed::next`] already moves toward it.
    #[inline]
    pub fn set_target(&mut self, target: f32) {
        if !target.is_finite() || target == self.target {
            return;
        }
        self.target = target;
        if self.ramp_len == 0 {
            self.current = target;
            self.remaining = 0;
        } else {
            self.remaining = self.ramp_len;
            self.step = (target - self.current) / self.ramp_len as f32;
        }
    }

    /// Jumps to `value` with no ramp (reset, activation).
    pub fn reset(&mut self, value: f32) {
        self.current = value;
        self.target = value;
        self.remaining = 0;
    }

    /// Advances one sample and returns the new value.
    #[inline]
    pub fn next(&mut self) -> f32 {
        if self.remaining > 0 {
            self.remaining -= 1;
            // Land exactly on the target at the end (no float drift).
            self.current = if self.remaining == 0 {
                self.target
            } else {
                self.current + self.step
            };
        }
        self.current
    }

    /// The value the last [`Smoothed::next`] returned.
    pub fn value(&self) -> f32 {
        self.current
    }

    pub fn target(&self) -> f32 {
        self.target
    }

    pub fn is_settled(&self) -> bool {
        self.remaining == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_sample_moves_and_ramp_lands_exactly() {
        let mut s = Smoothed::new(0.0, 4);
        assert_eq!(s.next(), 0.0);
        s.set_target(1.0);
        let v: Vec<f32> = (0..6).map(|_| s.next()).collect();
        assert_eq!(v, [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]);
        assert!(s.is_settled());
    }

    #[test]
    fn non_finite_targets_are_ignored() {
        let mut s = Smoothed::new(0.5, 8);
        s.set_target(f32::NAN);
        s.set_target(f32::INFINITY);
        assert_eq!(s.next(), 0.5);
    }
}
