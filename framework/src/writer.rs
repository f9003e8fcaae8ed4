//! Writes generated frames toward the speaker and carries out the lead
//! controller's decisions without a waveform jump: the lead grows by a short
//! gap fill (the last sample decays to zero, silence, the next frame fades in)
//! and shrinks only by dropping samples inside silences.

use crate::endpoint::GenSide;

/// Where frames go: the endpoint's output ring, or a buffer when rendering offline.
pub trait AudioOut {
    /// Samples queued ahead of the playhead.
    fn queued(&self) -> usize;
    /// Appends samples; returns how many fitted.
    fn write(&mut self, samples: &[f32]) -> usize;
}

impl AudioOut for GenSide {
    fn queued(&self) -> usize {
        GenSide::queued(self)
    }
    fn write(&mut self, samples: &[f32]) -> usize {
        self.write_output(samples)
    }
}

/// An offline destination: everything is kept, nothing is ever "queued".
impl AudioOut for Vec<f32> {
    fn queued(&self) -> usize {
        0
    }
    fn write(&mut self, samples: &[f32]) -> usize {
        self.extend_from_slice(samples);
        samples.len()
    }
}

/// What one write did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Written {
    /// Samples of the frame that reached the destination.
    pub written: usize,
    /// Samples of gap fill inserted before the frame (lead grew).
    pub inserted: usize,
    /// Silent samples dropped from the frame (lead shrank).
    pub dropped: usize,
    /// Samples that did not fit (ring full) and were lost.
    pub overflow: usize,
}

/// Frame writer with inaudible lead changes.
#[derive(Clone, Debug)]
pub struct OutputWriter {
    crossfade: usize,
    silence: f32,
    last: f32,
    fade_left: usize,
    buf: Vec<f32>,
}

impl OutputWriter {
    /// `crossfade` samples for fades; samples below `silence` (linear) count as
    /// silent; `max_frame` sizes the scratch buffer once.
    pub fn new(crossfade: usize, silence: f32, max_frame: usize) -> Self {
        Self {
            crossfade: crossfade.max(1),
            silence,
            last: 0.0,
            fade_left: 0,
            buf: Vec::with_capacity(max_frame * 4),
        }
    }

    /// Writes `frame`, first growing the lead by `adjust` samples (> 0) or
    /// shrinking it by up to `-adjust` silent samples (< 0).
    pub fn write(&mut self, out: &mut dyn AudioOut, frame: &[f32], adjust: i64) -> Written {
        let mut w = Written::default();
        self.buf.clear();
        if adjust > 0 {
            let n = adjust as usize;
            let tail = n.min(self.crossfade);
            for i in 0..n {
                let v = if i < tail {
                    self.last * (1.0 - (i + 1) as f32 / tail as f32)
                } else {
                    0.0
                };
                self.buf.push(v);
            }
            w.inserted = n;
            self.fade_left = self.crossfade;
        }
        let want_drop = if adjust < 0 { (-adjust) as usize } else { 0 };
        let quiet = |i: usize| frame.get(i).is_some_and(|x| x.abs() < self.silence);
        for (i, &x) in frame.iter().enumerate() {
            if w.dropped < want_drop && i > 0 && quiet(i) && quiet(i - 1) && quiet(i + 1) {
                w.dropped += 1;
                continue;
            }
            let y = if self.fade_left > 0 {
                let g = 1.0 - self.fade_left as f32 / (self.crossfade + 1) as f32;
                self.fade_left -= 1;
                x * g
            } else {
                x
            };
            self.buf.push(y);
        }
        if let Some(&l) = self.buf.last() {
            self.last = l;
        }
        let n = out.write(&self.buf);
        w.overflow = self.buf.len() - n;
        w.written = n.saturating_sub(w.inserted);
        w
    }

    /// Forget the last sample and any fade in progress.
    pub fn reset(&mut self) {
        self.last = 0.0;
        self.fade_left = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growing_is_a_continuous_gap_and_shrinking_removes_only_silence() {
        let mut w = OutputWriter::new(16, 1e-3, 1920);
        let mut out: Vec<f32> = Vec::new();
        let tone: Vec<f32> = (0..200)
            .map(|i| 0.5 * (i as f32 * 0.3).sin() + 0.3)
            .collect();
        w.write(&mut out, &tone, 0);
        let r = w.write(&mut out, &tone, 100);
        assert_eq!(r.inserted, 100);
        assert_eq!(out.len(), 500);
        let max_step = out
            .windows(2)
            .map(|p| (p[1] - p[0]).abs())
            .fold(0.0, f32::max);
        assert!(max_step < 0.2, "no jump: {max_step}");
        // Shrinking: only the silent middle goes.
        let mut frame = tone.clone();
        frame.extend(std::iter::repeat_n(0.0, 50));
        frame.extend(&tone);
        let before = out.len();
        let r = w.write(&mut out, &frame, -1000);
        assert_eq!(r.dropped, 48, "all but the edges of the silence");
        assert_eq!(out.len() - before, frame.len() - 48);
        let r = w.write(&mut out, &tone, -1000);
        assert_eq!(r.dropped, 0, "no silence, nothing dropped");
    }
}
