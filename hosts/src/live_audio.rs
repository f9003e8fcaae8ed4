//! The bodies of `antiphon live`'s two device callbacks (the audio threads),
//! kept apart from the device plumbing so a test can run them confined by
//! seccomp: [`Microphone`] mixes the input device's frames down into a ring;
//! [`Speaker`] takes them from it, runs the endpoint in place and plays the
//! result. Both only touch memory allocated when they were made.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use antiphon_framework::endpoint::AudioSide;

/// Largest block handled in one piece; longer device buffers are split.
const MAX_BLOCK: usize = 8192;
/// Most output channels the endpoint processes (more are copies of channel 0).
const MAX_CHANNELS: usize = 32;

/// Peak level meters written by the callbacks (f32 bits in atomics: no locks).
#[derive(Default)]
pub struct Meters {
    pub input_peak: AtomicU32,
    pub output_peak: AtomicU32,
    pub stream_errors: AtomicU64,
    /// Largest device buffer seen, frames (its period is our callback's deadline).
    pub max_block: AtomicU64,
}

fn raise(peak: &AtomicU32, x: f32) {
    if x > f32::from_bits(peak.load(Ordering::Relaxed)) {
        peak.store(x.to_bits(), Ordering::Relaxed);
    }
}

/// The input device's callback.
pub struct Microphone {
    ring: rtrb::Producer<f32>,
    channels: usize,
    meters: Arc<Meters>,
}

impl Microphone {
    pub fn new(ring: rtrb::Producer<f32>, channels: usize, meters: Arc<Meters>) -> Self {
        Self {
            ring,
            channels: channels.max(1),
            meters,
        }
    }

    /// One interleaved input buffer.
    pub fn process(&mut self, data: &[f32]) {
        let inv = 1.0 / self.channels as f32;
        let mut peak = 0.0f32;
        for f in data.chunks(self.channels) {
            let x = f.iter().sum::<f32>() * inv;
            peak = peak.max(x.abs());
            let _ = self.ring.push(x); // a full ring drops the oldest-to-be: never blocks
        }
        raise(&self.meters.input_peak, peak);
    }
}

/// The output device's callback.
pub struct Speaker {
    mic: rtrb::Consumer<f32>,
    audio: AudioSide,
    planar: Vec<Vec<f32>>,
    channels: usize,
    meters: Arc<Meters>,
}

impl Speaker {
    pub fn new(
        mic: rtrb::Consumer<f32>,
        audio: AudioSide,
        channels: usize,
        meters: Arc<Meters>,
    ) -> Self {
        Self {
            mic,
            audio,
            planar: (0..channels).map(|_| vec![0.0; MAX_BLOCK]).collect(),
            channels: channels.max(1),
            meters,
        }
    }

    /// One interleaved output buffer, filled in place.
    pub fn process(&mut self, data: &mut [f32]) {
        let out_ch = self.channels;
        let frames = (data.len() / out_ch) as u64;
        if frames > self.meters.max_block.load(Ordering::Relaxed) {
            self.meters.max_block.store(frames, Ordering::Relaxed);
        }
        let mut peak = 0.0f32;
        for block in data.chunks_mut(MAX_BLOCK * out_ch) {
            let n = block.len() / out_ch;
            for i in 0..n {
                let x = self.mic.pop().unwrap_or(0.0);
                for c in self.planar.iter_mut() {
                    c[i] = x;
                }
            }
            let mut views: [&mut [f32]; MAX_CHANNELS] = Default::default();
            let k = self.planar.len().min(MAX_CHANNELS);
            for (v, c) in views.iter_mut().zip(self.planar.iter_mut()) {
                *v = &mut c[..n];
            }
            self.audio.process(&mut views[..k], &[]);
            for i in 0..n {
                for c in 0..out_ch {
                    let y = if c < k { views[c][i] } else { views[0][i] };
                    peak = peak.max(y.abs());
                    block[i * out_ch + c] = y;
                }
            }
        }
        raise(&self.meters.output_peak, peak);
    }
}
