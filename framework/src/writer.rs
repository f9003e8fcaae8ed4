//! Writes generated frames toward the speaker and carries out the lead
//! controller's decisions without a waveform jump: the lead grows by a short
//! gap fill (the last sample decays to zero, silence, the next frame fades in)
//! and shrinks by dropping samples inside silences first, then — when the
//! signal has no silence (a long reply, noise-like output) — by cutting whole
//! pitch periods at the frame's quietest point ([`crate::period_cut`]).

use crate::endpoint::GenSide;
use crate::period_cut::PeriodCutter;

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
    /// Samples removed from the frame (lead shrank): silence, then cuts.
    pub dropped: usize,
    /// Of `dropped`, the samples removed by pitch-synchronous cuts (not silence).
    pub cut: usize,
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
    cutter: PeriodCutter,
    /// The frame after silence drops, and after a cut (fixed scratch).
    unsilenced: Vec<f32>,
    shortened: Vec<f32>,
}

impl OutputWriter {
    /// For audio at `rate` Hz: `crossfade` samples for fades; samples below
    /// `silence` (linear) count as silent; `max_frame` sizes the scratch
    /// buffers once.
    pub fn new(rate: f64, crossfade: usize, silence: f32, max_frame: usize) -> Self {
        Self {
            crossfade: crossfade.max(1),
            silence,
            last: 0.0,
            fade_left: 0,
            buf: Vec::with_capacity(max_frame * 4),
            cutter: PeriodCutter::new(rate),
            unsilenced: Vec::with_capacity(max_frame),
            shortened: Vec::with_capacity(max_frame),
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
        // Silence first: dropping it is exact and costs nothing audible. Only
        // real pauses count (a run as long as the shortest cut), never the few
        // near-zero samples of a zero crossing; a run keeps its edge samples.
        let quiet = |x: f32| x.abs() < self.silence;
        let min_run = self.cutter.min_cut().max(3);
        self.unsilenced.clear();
        let mut i = 0;
        while i < frame.len() {
            let run = frame[i..].iter().take_while(|x| quiet(**x)).count().max(1);
            let drop = if run >= min_run {
                (run - 2).min(want_drop - w.dropped)
            } else {
                0
            };
            self.unsilenced.extend_from_slice(&frame[i..i + 1]);
            self.unsilenced
                .extend_from_slice(&frame[i + 1 + drop..i + run]);
            w.dropped += drop;
            i += run;
        }
        // Then, if the signal had too little silence, a pitch-synchronous cut.
        let rest = want_drop - w.dropped;
        let body: &[f32] = if rest >= self.cutter.min_cut() {
            w.cut = self.cutter.cut(&self.unsilenced, rest, &mut self.shortened);
            w.dropped += w.cut;
            &self.shortened
        } else {
            &self.unsilenced
        };
        for &x in body {
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

    /// Writes `frame` at a given place rather than adapting the lead (a fixed
    /// output delay): `shift` > 0 inserts that many samples of gap fill first
    /// (as [`write`](Self::write) does), `shift` < 0 drops the frame's first
    /// `-shift` samples — audio that came too late to play in its place — and
    /// fades in what remains.
    pub fn write_at(&mut self, out: &mut dyn AudioOut, frame: &[f32], shift: i64) -> Written {
        if shift >= 0 {
            return self.write(out, frame, shift);
        }
        let skip = ((-shift) as usize).min(frame.len());
        if skip == frame.len() {
            return Written {
                dropped: skip,
                ..Written::default()
            };
        }
        self.fade_left = self.crossfade;
        let mut w = self.write(out, &frame[skip..], 0);
        w.dropped += skip;
        w
    }

    /// Forget the last sample, any fade in progress and the cut allowance.
    pub fn reset(&mut self) {
        self.last = 0.0;
        self.fade_left = 0;
        self.cutter.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growing_is_a_continuous_gap_and_shrinking_removes_silence_first() {
        let mut w = OutputWriter::new(48_000.0, 16, 1e-3, 1920);
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
        // Shrinking: only the silent middle goes (a pause, not a zero crossing).
        let mut frame = tone.clone();
        frame.extend(std::iter::repeat_n(0.0, 200));
        frame.extend(&tone);
        let before = out.len();
        let r = w.write(&mut out, &frame, -1000);
        assert_eq!(r.dropped, 198, "all but the edges of the silence");
        assert_eq!(r.cut, 0, "too short a frame to cut a period from");
        assert_eq!(out.len() - before, frame.len() - 198);
        assert_eq!(&out[before..before + 201], &frame[..201]);
        // Isolated near-zero samples are never dropped.
        let mut zc = tone.clone();
        zc[50..53].fill(0.0);
        let r = w.write(&mut out, &zc, -1000);
        assert_eq!(r.dropped, 0, "three quiet samples are not a pause");
    }

    /// A voiced, speech-like signal with no silence at all: 130 Hz with
    /// harmonics and a syllable-rate envelope that never reaches zero.
    fn voiced(n: usize, rate: f64) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let t = i as f64 / rate;
                let f0 = 130.0;
                let env = 0.35 + 0.25 * (2.0 * std::f64::consts::PI * 4.0 * t).sin();
                let v: f64 = (1..=6)
                    .map(|h| (2.0 * std::f64::consts::PI * f0 * h as f64 * t).sin() / h as f64)
                    .sum();
                (env * v * 0.5) as f32
            })
            .collect()
    }

    #[test]
    fn without_silence_the_lead_shrinks_by_period_cuts_without_a_click() {
        let rate = 48_000.0;
        let frame_len = 3840;
        let frames = 60; // 4.8 s
        let signal = voiced(frame_len * frames, rate);
        let max_in_step = signal
            .windows(2)
            .map(|p| (p[1] - p[0]).abs())
            .fold(0.0, f32::max);
        let mut w = OutputWriter::new(rate, 144, 1e-3, frame_len);
        let mut out: Vec<f32> = Vec::new();
        // The engine asks for the whole excess (400 ms) at every frame until it is gone.
        let mut excess = (0.4 * rate) as usize;
        let (mut cut, mut dropped) = (0, 0);
        for f in signal.chunks(frame_len) {
            let r = w.write(&mut out, f, -(excess as i64));
            excess -= r.dropped;
            cut += r.cut;
            dropped += r.dropped;
        }
        assert_eq!(
            dropped, cut,
            "no silence to drop: every sample removed by a cut"
        );
        assert!(
            excess < PeriodCutter::new(rate).min_cut(),
            "400 ms removed within 4.8 s, {excess} samples left"
        );
        // Never faster than the cap: 400 ms at ≤ 10 % needs ≥ 4 s of audio.
        assert!(dropped as f64 <= signal.len() as f64 * crate::period_cut::MAX_RATIO + 1.0);
        let max_out_step = out
            .windows(2)
            .map(|p| (p[1] - p[0]).abs())
            .fold(0.0, f32::max);
        assert!(
            max_out_step <= max_in_step * 1.1,
            "no click: largest step {max_out_step} vs {max_in_step} in the signal"
        );
    }
}
