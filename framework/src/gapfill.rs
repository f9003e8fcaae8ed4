//! Underrun handling: what the audio thread plays when generation is late.
//!
//! When the output ring runs dry the last played sample decays linearly to zero
//! over the crossfade length (never a jump, never repeated audio). When audio
//! returns it fades in over the same length while the tail finishes decaying.
//! So the largest extra sample-to-sample step a gap can cause is
//! `peak / crossfade_len` on each side, on top of the signal's own slope.

/// Gap-fill state machine for one mono stream.
#[derive(Clone, Debug)]
pub struct GapFill {
    len: u32,
    /// Decaying tail value (what was playing when the ring ran dry).
    tail: f32,
    tail_step: f32,
    /// Gain applied to fresh audio (0 right after a gap, 1 when settled).
    fade: f32,
    last_out: f32,
    in_gap: bool,
}

impl GapFill {
    /// `crossfade_len` samples for the fade out and the fade back in (≥ 1).
    pub fn new(crossfade_len: u32) -> Self {
        Self {
            len: crossfade_len.max(1),
            tail: 0.0,
            tail_step: 0.0,
            fade: 1.0,
            last_out: 0.0,
            in_gap: false,
        }
    }

    pub fn crossfade_len(&self) -> u32 {
        self.len
    }

    /// Whether the last sample came from gap fill.
    pub fn in_gap(&self) -> bool {
        self.in_gap
    }

    #[inline]
    fn step_tail(&mut self) -> f32 {
        if self.tail != 0.0 {
            let t = self.tail - self.tail_step;
            // Stop exactly at zero once the ramp crosses it.
            self.tail = if (t > 0.0) == (self.tail > 0.0) && t != 0.0 {
                t
            } else {
                0.0
            };
        }
        self.tail
    }

    /// One sample of fresh audio arrived: returns what to play.
    #[inline]
    pub fn play(&mut self, sample: f32) -> f32 {
        self.in_gap = false;
        let out = if self.fade < 1.0 {
            self.fade = (self.fade + 1.0 / self.len as f32).min(1.0);
            sample * self.fade + self.step_tail()
        } else {
            sample
        };
        self.last_out = out;
        out
    }

    /// No audio for this sample: returns the gap-fill sample.
    #[inline]
    pub fn fill(&mut self) -> f32 {
        if !self.in_gap {
            self.in_gap = true;
            // Continue from exactly what was last played, fading to zero.
            self.tail = self.last_out;
            self.tail_step = self.last_out / self.len as f32;
            self.fade = 0.0;
        }
        let out = self.step_tail();
        self.last_out = out;
        out
    }

    /// Forget everything (stream reset).
    pub fn reset(&mut self) {
        *self = Self::new(self.len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gap_is_continuous_and_returns_smoothly() {
        let mut g = GapFill::new(64);
        let mut out = Vec::new();
        for i in 0..100 {
            out.push(g.play(0.9 * (i as f32 * 0.01).sin() + 0.5));
        }
        for _ in 0..200 {
            out.push(g.fill());
        }
        assert_eq!(*out.last().unwrap(), 0.0, "tail decays to silence");
        for i in 0..100 {
            out.push(g.play(0.8));
            let _ = i;
        }
        let max_step = out
            .windows(2)
            .map(|w| (w[1] - w[0]).abs())
            .fold(0.0, f32::max);
        assert!(max_step <= 1.4 / 64.0 + 0.01, "max step {max_step}");
        assert_eq!(*out.last().unwrap(), 0.8, "fully faded back in");
    }
}
