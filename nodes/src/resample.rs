//! `resample`: streaming band-limited rate conversion between the host rate
//! (8–384 kHz, fractional allowed) and the model's 24 kHz, with a constant,
//! reported delay.
//!
//! Built on rubato's `SincFixedIn` (256-tap sinc, Blackman-Harris², cubic
//! interpolation of a 256× oversampled table; works for any ratio, including
//! fractional host rates). Input of any length is chopped into 2 ms chunks;
//! output frames have exactly the length the frame schedule asks for (1920 at
//! 24 kHz; at 44.1 kHz frames alternate to average 3528). rubato withholds
//! output until half its sinc is filled, so on reset we pre-feed zeros, and the
//! output FIFO is primed with zeros so a frame is always available. The delay
//! is constant while the input keeps pace; it is measured once at construction
//! (impulse through an identical resampler) rather than derived, so the
//! reported figure is what the code really does. At equal rates (a host at
//! 24 kHz) samples pass through untouched, with no delay.

use std::collections::VecDeque;

use antiphon_framework::node::{FrameContext, Node, NodeError, Payload, PortSpec};
use rubato::{
    Resampler, SincFixedIn, SincInterpolationParameters, SincInterpolationType, WindowFunction,
};

use crate::knobs::ResetWatch;

const SINC_LEN: usize = 256;

/// Frames per second of the model (Mimi: 12.5 Hz).
pub const FRAME_RATE: f64 = 12.5;

/// Output samples of frame `k` at `rate`: cumulative rounding, so fractional
/// rates average out exactly.
pub fn frame_len(rate: f64, k: u64) -> usize {
    let at = |k: u64| (k as f64 * rate / FRAME_RATE).floor() as u64;
    (at(k + 1) - at(k)) as usize
}

/// A streaming resampler with a fixed output schedule.
pub struct StreamResampler {
    from: f64,
    to: f64,
    chunk: usize,
    rs: SincFixedIn<f32>,
    in_buf: Vec<f32>,
    out_scratch: Vec<Vec<f32>>,
    fifo: VecDeque<f32>,
    fifo_cap: usize,
    prime: usize,
    frames: u64,
    delay: f64,
    /// Same rate in and out: samples pass through untouched, without delay
    /// (a band-limited filter would only add delay and ripple).
    identity: bool,
    /// Output samples that had to be zero-filled (input ran short).
    pub underrun_samples: u64,
    /// Output samples dropped because the input ran ahead.
    pub overflow_samples: u64,
}

impl StreamResampler {
    pub fn new(from: f64, to: f64) -> Result<Self, String> {
        for r in [from, to] {
            if !(1_000.0..=800_000.0).contains(&r) {
                return Err(format!("sample rate {r} Hz is outside 1 kHz ..= 800 kHz"));
            }
        }
        let ratio = to / from;
        let chunk = ((from * 0.002).ceil() as usize).max(16);
        let params = SincInterpolationParameters {
            sinc_len: SINC_LEN,
            f_cutoff: 0.95,
            interpolation: SincInterpolationType::Cubic,
            oversampling_factor: 256,
            window: WindowFunction::BlackmanHarris2,
        };
        let rs =
            SincFixedIn::<f32>::new(ratio, 1.0, params, chunk, 1).map_err(|e| e.to_string())?;
        let out_max = rs.output_frames_max();
        let identity = from == to;
        let prime = if identity {
            0
        } else {
            (chunk as f64 * ratio).ceil() as usize + 2 + (to * 0.002).ceil() as usize
        };
        let fifo_cap = prime
            + 2 * frame_len(to, 0)
            + 2 * out_max
            + ((SINC_LEN / 2 + 2 * chunk) as f64 * ratio) as usize
            + 16;
        let mut s = Self {
            from,
            to,
            chunk,
            rs,
            in_buf: Vec::with_capacity(chunk),
            out_scratch: vec![vec![0.0; out_max]],
            fifo: VecDeque::with_capacity(fifo_cap),
            fifo_cap,
            prime,
            frames: 0,
            delay: 0.0,
            identity,
            underrun_samples: 0,
            overflow_samples: 0,
        };
        s.reset();
        s.delay = s.measure_delay()?;
        s.reset();
        Ok(s)
    }

    /// Sends an impulse through this resampler and finds the peak (parabolic
    /// interpolation): the delay in output samples. Leaves state dirty.
    fn measure_delay(&mut self) -> Result<f64, String> {
        let mut out = Vec::new();
        let mut k = 0;
        while out.len() < self.prime + 4 * frame_len(self.to, 0) + 512 && k < 64 {
            let mut x = vec![0.0; frame_len(self.from, k)];
            if k == 0 {
                x[0] = 1.0;
            }
            self.push(&x)?;
            self.pull_frame(&mut out);
            k += 1;
        }
        let (i, _) = out
            .iter()
            .enumerate()
            .fold((0, f32::MIN), |m, (i, &v)| if v > m.1 { (i, v) } else { m });
        if i == 0 || i + 1 >= out.len() {
            return Ok(i as f64);
        }
        let (a, b, c) = (out[i - 1] as f64, out[i] as f64, out[i + 1] as f64);
        let den = a - 2.0 * b + c;
        Ok(i as f64
            + if den.abs() > 1e-12 {
                0.5 * (a - c) / den
            } else {
                0.0
            })
    }

    /// Delay from input to output, in output samples (fractional).
    pub fn delay_samples(&self) -> f64 {
        self.delay
    }

    /// Delay in seconds.
    pub fn delay_seconds(&self) -> f64 {
        self.delay / self.to
    }

    pub fn rates(&self) -> (f64, f64) {
        (self.from, self.to)
    }

    /// Pushes input samples (any count).
    pub fn push(&mut self, input: &[f32]) -> Result<(), String> {
        if self.identity {
            for &x in input {
                if self.fifo.len() == self.fifo_cap {
                    self.fifo.pop_front();
                    self.overflow_samples += 1;
                }
                self.fifo.push_back(x);
            }
            return Ok(());
        }
        let mut rest = input;
        while !rest.is_empty() {
            let take = (self.chunk - self.in_buf.len()).min(rest.len());
            self.in_buf.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.in_buf.len() == self.chunk {
                let (_, n) = self
                    .rs
                    .process_into_buffer(&[&self.in_buf], &mut self.out_scratch, None)
                    .map_err(|e| e.to_string())?;
                self.in_buf.clear();
                for &x in &self.out_scratch[0][..n] {
                    if self.fifo.len() == self.fifo_cap {
                        self.fifo.pop_front();
                        self.overflow_samples += 1;
                    }
                    self.fifo.push_back(x);
                }
            }
        }
        Ok(())
    }

    /// Pops the next output frame (schedule length) into `out`.
    pub fn pull_frame(&mut self, out: &mut Vec<f32>) {
        let n = frame_len(self.to, self.frames);
        self.frames += 1;
        let have = n.min(self.fifo.len());
        out.extend(self.fifo.drain(..have));
        if have < n {
            self.underrun_samples += (n - have) as u64;
            out.resize(out.len() + n - have, 0.0);
        }
    }

    pub fn reset(&mut self) {
        self.rs.reset();
        self.in_buf.clear();
        self.fifo.clear();
        self.fifo.extend(std::iter::repeat(0.0).take(self.prime));
        self.frames = 0;
        // Get rubato past its start-up (it emits nothing until half the sinc
        // is filled); its zeros join the priming.
        if !self.identity {
            let warm = vec![0.0; SINC_LEN / 2 + self.chunk];
            let _ = self.push(&warm);
        }
        self.underrun_samples = 0;
        self.overflow_samples = 0;
    }
}

/// The `resample` node (named `resample_in` / `resample_out` in the canonical graph).
pub struct Resample {
    name: String,
    inner: StreamResampler,
    reset: ResetWatch,
}

impl Resample {
    pub fn new(name: &str, from: f64, to: f64) -> Result<Self, String> {
        Ok(Self {
            name: name.into(),
            inner: StreamResampler::new(from, to)?,
            reset: ResetWatch::default(),
        })
    }
    pub fn resampler(&self) -> &StreamResampler {
        &self.inner
    }
}

impl Node for Resample {
    fn name(&self) -> &str {
        &self.name
    }
    fn inputs(&self) -> Vec<PortSpec> {
        vec![PortSpec::audio("in", self.inner.from)]
    }
    fn outputs(&self) -> Vec<PortSpec> {
        vec![PortSpec::audio("out", self.inner.to)]
    }
    fn process(
        &mut self,
        cx: &FrameContext,
        inputs: &[Payload],
        outputs: &mut [Payload],
    ) -> Result<(), NodeError> {
        if self.reset.fired(cx.knobs) {
            self.inner.reset();
        }
        if let Payload::Audio(a) = &inputs[0] {
            self.inner.push(a).map_err(NodeError::new)?;
        }
        self.inner.pull_frame(outputs[0].audio_buf());
        Ok(())
    }
    fn reset(&mut self) {
        self.inner.reset();
    }
}
