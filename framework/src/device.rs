//! A virtual audio device: calls an audio callback with blocks of a chosen size at
//! a chosen sample rate, without a sound card.
//!
//! * [`Pacing::WallClock`] calls back on the wall clock like a real device, so
//!   underruns are real and can be measured (a callback that runs past its
//!   block's period is counted as an xrun, as a real driver would).
//! * [`Pacing::Offline`] calls back as fast as possible (deterministic renders).
//!
//! Buffers are allocated once, before the first callback.

use std::time::{Duration, Instant};

use crate::rng::SplitMix64;

/// How block sizes are chosen, callback by callback.
#[derive(Clone, Debug, PartialEq)]
pub enum BlockSizes {
    /// Always the same size.
    Fixed(usize),
    /// Uniformly random in `min..=max`, seeded (a new size every call).
    Random { min: usize, max: usize, seed: u64 },
    /// Cycles through the list.
    Cycle(Vec<usize>),
}

impl BlockSizes {
    fn max(&self) -> usize {
        match self {
            BlockSizes::Fixed(n) => *n,
            BlockSizes::Random { max, .. } => *max,
            BlockSizes::Cycle(v) => v.iter().copied().max().unwrap_or(0),
        }
    }
}

/// When callbacks happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pacing {
    /// On the wall clock, one block period apart.
    WallClock,
    /// Back to back, as fast as the callback returns.
    Offline,
}

/// Settings of a virtual device.
#[derive(Clone, Debug)]
pub struct VirtualDevice {
    pub sample_rate: f64,
    pub channels: usize,
    pub blocks: BlockSizes,
    pub pacing: Pacing,
    /// Run wall-clock callbacks at realtime priority, as a sound card driver's
    /// thread does (see [`VirtualDevice::realtime_priority`]).
    pub realtime: bool,
}

/// One callback's view: `channels` hold `len` samples each. Fill them with input
/// before processing; read the output after.
pub struct DeviceBlock<'a> {
    /// Device time of the block's first sample, in samples since the run started.
    pub start: u64,
    /// Planar channel buffers, each exactly the block's length.
    pub channels: &'a mut [Vec<f32>],
}

impl DeviceBlock<'_> {
    pub fn len(&self) -> usize {
        self.channels.first().map_or(0, |c| c.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What happened during a run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DeviceRun {
    pub callbacks: u64,
    pub frames: u64,
    /// Callbacks that took longer than their block's period (a real device would glitch).
    pub xruns: u64,
    pub wall: Duration,
    /// The callbacks ran at realtime priority.
    pub realtime: bool,
}

impl VirtualDevice {
    pub fn new(sample_rate: f64, channels: usize, blocks: BlockSizes, pacing: Pacing) -> Self {
        Self {
            sample_rate,
            channels,
            blocks,
            pacing,
            realtime: false,
        }
    }

    /// Asks for realtime scheduling (SCHED_FIFO) of the calling thread while a
    /// wall-clock run lasts, as JACK, ALSA and CoreAudio give their callback
    /// threads; the thread's old policy is restored afterwards. Without the
    /// permission (no root, no rtprio limit) the run goes on at normal priority
    /// and [`DeviceRun::realtime`] says so.
    pub fn realtime_priority(mut self, on: bool) -> Self {
        self.realtime = on;
        self
    }

    /// Runs for `frames` sample frames (or until `callback` returns `false`).
    pub fn run(
        &self,
        frames: u64,
        mut callback: impl FnMut(&mut DeviceBlock) -> bool,
    ) -> DeviceRun {
        let rate = if self.sample_rate.is_finite() && self.sample_rate > 0.0 {
            self.sample_rate
        } else {
            48_000.0
        };
        let max = self.blocks.max().max(1);
        let mut bufs: Vec<Vec<f32>> = (0..self.channels)
            .map(|_| Vec::with_capacity(max))
            .collect();
        let mut rng = match &self.blocks {
            BlockSizes::Random { seed, .. } => SplitMix64::new(*seed),
            _ => SplitMix64::new(0),
        };
        let mut out = DeviceRun::default();
        let _priority = (self.realtime && self.pacing == Pacing::WallClock)
            .then(crate::rt_priority::RealtimePriority::raise)
            .flatten();
        out.realtime = _priority.is_some();
        let t0 = Instant::now();
        let mut pos = 0u64;
        let mut k = 0usize;
        while pos < frames {
            let want = match &self.blocks {
                BlockSizes::Fixed(n) => *n,
                BlockSizes::Random { min, max, .. } => rng.range(*min as u64, *max as u64) as usize,
                BlockSizes::Cycle(v) if v.is_empty() => 0,
                BlockSizes::Cycle(v) => v[k % v.len()],
            };
            k += 1;
            let len = (want as u64).min(frames - pos) as usize;
            let deadline = t0 + Duration::from_secs_f64((pos + len as u64) as f64 / rate);
            if self.pacing == Pacing::WallClock {
                // A real device asks for block k once block k-1 has been played.
                let due = t0 + Duration::from_secs_f64(pos as f64 / rate);
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
            }
            for b in bufs.iter_mut() {
                b.clear();
                b.resize(len, 0.0); // within capacity: no allocation
            }
            let mut block = DeviceBlock {
                start: pos,
                channels: &mut bufs,
            };
            let go_on = callback(&mut block);
            if self.pacing == Pacing::WallClock && Instant::now() > deadline {
                out.xruns += 1;
            }
            out.callbacks += 1;
            pos += len as u64;
            if !go_on || self.blocks.max() == 0 {
                break;
            }
        }
        out.frames = pos;
        out.wall = t0.elapsed();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offline_covers_every_frame_with_random_blocks() {
        let dev = VirtualDevice::new(
            44_100.0,
            2,
            BlockSizes::Random {
                min: 1,
                max: 4096,
                seed: 3,
            },
            Pacing::Offline,
        );
        let mut next = 0u64;
        let mut sizes = std::collections::BTreeSet::new();
        let run = dev.run(200_000, |b| {
            assert_eq!(b.start, next, "blocks are contiguous");
            assert_eq!(b.channels.len(), 2);
            next += b.len() as u64;
            sizes.insert(b.len());
            true
        });
        assert_eq!(run.frames, 200_000);
        assert_eq!(next, 200_000);
        assert!(sizes.len() > 20, "sizes vary call to call");
    }

    #[test]
    fn wall_clock_pacing_takes_real_time() {
        let dev = VirtualDevice::new(48_000.0, 1, BlockSizes::Fixed(480), Pacing::WallClock);
        let run = dev.run(4_800, |_| true); // 100 ms
        assert!(run.wall >= Duration::from_millis(85), "{:?}", run.wall);
        assert_eq!(run.callbacks, 10);
    }

    #[test]
    fn slow_callbacks_are_xruns() {
        let dev = VirtualDevice::new(48_000.0, 1, BlockSizes::Fixed(48), Pacing::WallClock); // 1 ms blocks
        let run = dev.run(480, |_| {
            std::thread::sleep(Duration::from_millis(3));
            true
        });
        assert!(run.xruns >= 5, "{run:?}");
    }
}
