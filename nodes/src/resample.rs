//! `resample`: streaming band-limited rate conversion between the host rate
//! (8–384 kHz, fractional allowed) and the model's 24 kHz, with a constant,
//! reported delay.
//!
//! Built on rubato's `SincFixedIn` (256-tap sinc, Blackman-Harris², cubic
//! interpolation of a 256× oversampled table; works for any ratio, including
//! fractional host rates). Input of any length is chopped into 2 ms chunks;
//! output frames have exactly the length the frame schedule asks for (1920 at
//! 24 kHz; at 44.1 kHz frames alternate to average 3528). The output FIFO is
//! primed with zeros so a frame is always available: the delay is
//! `prime + rubato's own delay`, constant while the input keeps pace.

use std::collections::VecDeque;

use antiphon_framework::node::{FrameContext, Node, NodeError, Payload, PortSpec};
use rubato::{
    Resampler, SincFixedIn, SincInterpolationParameters, SincInterpolationType, WindowFunction,
};

use crate::knobs::ResetWatch;

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
            sinc_len: 256,
            f_cutoff: 0.95,
            interpolation: SincInterpolationType::Cubic,
            oversampling_factor: 256,
            window: WindowFunction::BlackmanHarris2,
        };
        let rs =
            SincFixedIn::<f32>::new(ratio, 1.0, params, chunk, 1).map_err(|e| e.to_string())?;
        let out_max = rs.output_frames_max();
        let prime = (chunk as f64 * ratio).ceil() as usize + 2 + (to * 0.002).ceil() as usize;
        let fifo_cap = prime + 2 * frame_len(to, 0) + 2 * out_max + 16;
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
            underrun_samples: 0,
            overflow_samples: 0,
        };
        s.reset();
        Ok(s)
    }

    /// Delay from input to output, in output samples (may be fractional in input time).
    pub fn delay_samples(&self) -> usize {
        self.prime + self.rs.output_delay()
    }

    /// Delay in seconds.
    pub fn delay_seconds(&self) -> f64 {
        self.delay_samples() as f64 / self.to
    }

    pub fn rates(&self) -> (f64, f64) {
        (self.from, self.to)
    }

    /// Pushes input samples (any count).
    pub fn push(&mut self, input: &[f32]) -> Result<(), String> {
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
