//! Shortening audio without a silence: remove whole pitch periods at the
//! quietest point of a frame, joined by a short crossfade.
//!
//! This is the cut a WSOLA time-scaler makes, applied only as often as the lead
//! controller asks. Why it is inaudible on speech: voiced speech is
//! quasi-periodic, so removing exactly one (or a few) pitch periods — the lag
//! where the signal best matches itself — joins two nearly identical waveforms;
//! the pitch is unchanged (no resampling) and only the duration of one vowel
//! shrinks by a few milliseconds, well under the jitter of natural speech
//! rhythm. Cutting where the short-time energy is lowest hides what mismatch is
//! left (and unvoiced or noise-like signals, which have no period, get an
//! equal-power crossfade there instead, so their loudness does not dip). The
//! rate is capped (at most [`MAX_RATIO`] of the audio on average, a time-scale
//! change of ≤ 10 %), so a long catch-up is spread out instead of rushed.
//!
//! Own code rather than a time-stretch crate: we need one cut at a chosen
//! length inside an existing frame, with fixed memory on a per-frame path, not
//! a continuous stretch factor (which would change every sample's timing).

/// Longest share of the audio that cuts may remove on average.
pub const MAX_RATIO: f64 = 0.10;

/// From this normalised correlation on, a lag counts as the signal's period.
/// Below it a cut is not pitch-synchronous: it waits for more credit when a
/// longer lag matches, and otherwise (no period: noise, unvoiced) it joins with
/// equal power.
const GOOD_MATCH: f64 = 0.8;

/// Finds and makes pitch-synchronous cuts. Fixed-size state; the caller owns
/// the buffers.
#[derive(Clone, Debug)]
pub struct PeriodCutter {
    /// Shortest and longest lag (pitch period) considered, samples.
    lag_min: usize,
    lag_max: usize,
    /// Crossfade length, samples.
    window: usize,
    /// Search stride at high sample rates (the search runs at ≈ 48 kHz density).
    stride: usize,
    /// Samples that may still be cut under the rate cap.
    credit: f64,
}

impl PeriodCutter {
    /// A cutter for audio at `rate` Hz: lags of 2.5–12.5 ms (400 down to 80 Hz
    /// voices), 5 ms crossfades.
    pub fn new(rate: f64) -> Self {
        let ms = |m: f64| ((m / 1000.0 * rate).round() as usize).max(1);
        Self {
            lag_min: ms(2.5),
            lag_max: ms(12.5).max(ms(2.5) + 1),
            window: ms(5.0),
            stride: ((rate / 48_000.0).ceil() as usize).max(1),
            credit: 0.0,
        }
    }

    /// Shortest cut this cutter makes, samples (a smaller shrink is not worth a cut).
    pub fn min_cut(&self) -> usize {
        self.lag_min
    }

    /// Forgets accumulated credit (stream reset).
    pub fn reset(&mut self) {
        self.credit = 0.0;
    }

    /// Copies `frame` into `out` (cleared first), removing at most `want`
    /// samples with one crossfaded cut when the rate cap allows. Returns the
    /// number of samples removed (0 when no cut was made).
    pub fn cut(&mut self, frame: &[f32], want: usize, out: &mut Vec<f32>) -> usize {
        out.clear();
        let n = frame.len();
        // Credit accrues with the audio that passes, capped so that a long quiet
        // spell cannot bank a burst of cuts.
        self.credit = (self.credit + n as f64 * MAX_RATIO).min((self.lag_max + n / 8) as f64);
        let cap = want.min(self.lag_max).min(self.credit as usize);
        let (w, s) = (self.window, self.stride);
        if cap < self.lag_min || n < self.lag_max + w + 1 {
            out.extend_from_slice(frame);
            return 0;
        }
        let p = quietest(frame, self.lag_max + w, s);
        let Some(m) = best_lags(frame, p, self.lag_min, self.lag_max, cap, w, s) else {
            out.extend_from_slice(frame);
            return 0;
        };
        let (lag, corr) = m.within_cap;
        if m.any.1 >= GOOD_MATCH && corr < m.any.1 - 0.01 {
            // The signal has a period that the cap does not allow yet: wait
            // for credit rather than cut off-period.
            out.extend_from_slice(frame);
            return 0;
        }
        self.credit -= lag as f64;
        out.extend_from_slice(&frame[..p]);
        let equal_power = corr < 0.5;
        for i in 0..w {
            let t = (i as f32 + 0.5) / w as f32;
            let (a, b) = if equal_power {
                let th = t * std::f32::consts::FRAC_PI_2;
                (th.cos(), th.sin())
            } else {
                let g = 0.5 - 0.5 * (t * std::f32::consts::PI).cos();
                (1.0 - g, g)
            };
            out.push(a * frame[p + i] + b * frame[p + lag + i]);
        }
        out.extend_from_slice(&frame[p + lag + w..]);
        lag
    }
}

/// Start of the window of `span` samples with the least energy (stepping by
/// `stride`), so that `start + span <= frame.len()`.
fn quietest(frame: &[f32], span: usize, stride: usize) -> usize {
    let last = frame.len() - span;
    let mut energy: f64 = frame[..span].iter().map(|x| (*x as f64).powi(2)).sum();
    let (mut best, mut best_e) = (0, energy);
    // Sliding sum, one sample at a time (cheap), compared every `stride`.
    for p in 1..=last {
        energy += (frame[p + span - 1] as f64).powi(2) - (frame[p - 1] as f64).powi(2);
        if p % stride == 0 && energy < best_e - 1e-12 {
            best = p;
            best_e = energy;
        }
    }
    best
}

/// The best-matching lags found by [`best_lags`], each with its normalised
/// cross-correlation.
struct Matches {
    /// Best over every lag that fits the frame.
    any: (usize, f64),
    /// Best among lags up to the cap.
    within_cap: (usize, f64),
}

/// Where the `w` samples at `p + lag` best match those at `p` (normalised
/// cross-correlation), over `lag_min..=lag_max` and over `lag_min..=cap`.
fn best_lags(
    x: &[f32],
    p: usize,
    lag_min: usize,
    lag_max: usize,
    cap: usize,
    w: usize,
    stride: usize,
) -> Option<Matches> {
    let lag_max = lag_max.min(x.len().checked_sub(p + w)?);
    if lag_max < lag_min || cap < lag_min {
        return None;
    }
    let a = &x[p..p + w];
    let ea: f64 = a.iter().step_by(stride).map(|v| (*v as f64).powi(2)).sum();
    let mut any = (lag_min, f64::NEG_INFINITY);
    let mut within_cap = any;
    let mut lag = lag_min;
    while lag <= lag_max {
        let b = &x[p + lag..p + lag + w];
        let (mut ab, mut eb) = (0.0f64, 0.0f64);
        for (u, v) in a.iter().zip(b).step_by(stride) {
            ab += *u as f64 * *v as f64;
            eb += (*v as f64).powi(2);
        }
        let c = if ea > 0.0 && eb > 0.0 {
            ab / (ea * eb).sqrt()
        } else {
            1.0 // silence matches silence
        };
        if c > any.1 {
            any = (lag, c);
        }
        if lag <= cap && c > within_cap.1 {
            within_cap = (lag, c);
        }
        lag += stride;
    }
    Some(Matches { any, within_cap })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(hz: f64, rate: f64, n: usize, phase0: usize) -> Vec<f32> {
        (0..n)
            .map(|i| {
                (0.5 * (2.0 * std::f64::consts::PI * hz * (i + phase0) as f64 / rate).sin()) as f32
            })
            .collect()
    }

    #[test]
    fn a_voiced_frame_loses_whole_periods_without_a_jump() {
        let rate = 48_000.0;
        let mut c = PeriodCutter::new(rate);
        // 120 Hz: a period is 400 samples; the cut must be a multiple of it.
        let frame = sine(120.0, rate, 3840, 0);
        let mut out = Vec::new();
        let mut cut = 0;
        for _ in 0..3 {
            cut = c.cut(&frame, 5000, &mut out);
            if cut > 0 {
                break;
            }
        }
        assert_eq!(cut % 400, 0, "whole periods: {cut}");
        assert!(cut >= 400, "cut made: {cut}");
        assert_eq!(out.len(), 3840 - cut);
        // Phase is continuous: the result equals the sine itself.
        let err = out
            .iter()
            .zip(&frame)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(err < 1e-3, "waveform continues its period: {err}");
    }

    #[test]
    fn cuts_respect_the_rate_cap_and_the_request() {
        let rate = 48_000.0;
        let mut c = PeriodCutter::new(rate);
        let mut out = Vec::new();
        let mut total = 0;
        let frames = 100;
        for t in 0..frames {
            let frame = sine(150.0, rate, 3840, t * 3840);
            total += c.cut(&frame, usize::MAX, &mut out);
        }
        let ratio = total as f64 / (frames * 3840) as f64;
        assert!(ratio <= MAX_RATIO + 0.005, "ratio {ratio}");
        assert!(
            ratio >= MAX_RATIO * 0.7,
            "uses most of its allowance: {ratio}"
        );
        // Never more than asked.
        let mut c = PeriodCutter::new(rate);
        for _ in 0..10 {
            assert!(
                c.cut(&sine(150.0, rate, 3840, 0), 200, &mut out) == 0,
                "200 < a period"
            );
        }
    }

    #[test]
    fn noise_is_cut_at_its_quietest_point_with_equal_power() {
        let rate = 24_000.0;
        let mut c = PeriodCutter::new(rate);
        let mut rng = crate::rng::SplitMix64::new(7);
        // Loud noise with a quiet stretch in the middle.
        let frame: Vec<f32> = (0..1920)
            .map(|i| {
                let amp = if (850..1350).contains(&i) { 0.01 } else { 0.5 };
                amp * (rng.next_f64() as f32 * 2.0 - 1.0)
            })
            .collect();
        let mut out = Vec::new();
        let mut cut = 0;
        for _ in 0..10 {
            cut = c.cut(&frame, 10_000, &mut out);
            if cut > 0 {
                break;
            }
        }
        assert!(cut > 0, "aperiodic signals are cut too");
        // Everything outside the quiet stretch is untouched.
        assert_eq!(&out[..850], &frame[..850]);
        assert_eq!(&out[out.len() - 570..], &frame[frame.len() - 570..]);
        let max_in_join = out[850..out.len() - 570]
            .iter()
            .fold(0.0f32, |m, x| m.max(x.abs()));
        assert!(
            max_in_join < 0.02,
            "joined inside the quiet part: {max_in_join}"
        );
    }
}
