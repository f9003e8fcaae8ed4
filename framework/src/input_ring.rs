//! The captured-input ring: one producer (the audio thread), one consumer
//! (generation). The producer never waits and never loses the newest samples:
//! when generation falls behind, the *oldest* samples are overwritten. A sample's
//! position in the ring is its audio-clock position (samples since the endpoint
//! was made), so generation always knows where its input sits on the audio clock,
//! across stalls, model loads and engine restarts.
//!
//! Own code rather than `rtrb`: an rtrb producer cannot discard from the
//! consumer's end, so a full ring loses the newest input, and its read position
//! says nothing about the audio clock. Here the consumer reads by position and
//! validates what it copied seqlock-style: samples are atomics (plain loads and
//! stores on x86 and ARM), and the producer announces the range it is about to
//! overwrite (`claimed`) before writing it.

use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

struct Shared {
    buf: Box<[AtomicU32]>,
    /// End of the range the producer may be writing (≥ `written`).
    claimed: AtomicU64,
    /// Samples completely written: the audio clock of the next input sample.
    written: AtomicU64,
}

/// The audio thread's end.
pub struct InputWriter {
    shared: Arc<Shared>,
    pos: u64,
}

/// Generation's end: reads any still-held range by audio-clock position.
#[derive(Clone)]
pub struct InputReader {
    shared: Arc<Shared>,
}

/// A range that was asked for but has been overwritten already.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Overwritten {
    /// The oldest position still held.
    pub oldest: u64,
}

/// Makes a ring holding the newest `capacity` samples (all memory allocated here).
pub fn input_ring(capacity: usize) -> (InputWriter, InputReader) {
    let shared = Arc::new(Shared {
        buf: (0..capacity.max(1)).map(|_| AtomicU32::new(0)).collect(),
        claimed: AtomicU64::new(0),
        written: AtomicU64::new(0),
    });
    (
        InputWriter {
            shared: shared.clone(),
            pos: 0,
        },
        InputReader { shared },
    )
}

impl InputWriter {
    /// Appends samples (bounded by `samples.len()`; no allocation, no wait).
    #[inline]
    pub fn push(&mut self, samples: &[f32]) {
        let s = &*self.shared;
        let cap = s.buf.len() as u64;
        let end = self.pos + samples.len() as u64;
        s.claimed.store(end, Ordering::Relaxed);
        fence(Ordering::Release);
        for (i, x) in samples.iter().enumerate() {
            s.buf[((self.pos + i as u64) % cap) as usize].store(x.to_bits(), Ordering::Relaxed);
        }
        s.written.store(end, Ordering::Release);
        self.pos = end;
    }
}

impl InputReader {
    /// Samples held at most.
    pub fn capacity(&self) -> usize {
        self.shared.buf.len()
    }

    /// Audio clock of the next sample to be captured (= samples captured so far).
    pub fn written(&self) -> u64 {
        self.shared.written.load(Ordering::Acquire)
    }

    /// The oldest position that is still held (a lower bound that only grows).
    pub fn oldest(&self) -> u64 {
        self.shared
            .claimed
            .load(Ordering::Relaxed)
            .saturating_sub(self.capacity() as u64)
    }

    /// Copies the samples at positions `from..` into `buf`, as many as have been
    /// captured; returns how many. Fails if any of them has been overwritten.
    pub fn read_at(&self, from: u64, buf: &mut [f32]) -> Result<usize, Overwritten> {
        let s = &*self.shared;
        let cap = s.buf.len() as u64;
        let end = (from + buf.len() as u64).min(s.written.load(Ordering::Acquire));
        let n = end.saturating_sub(from) as usize;
        for (i, y) in buf[..n].iter_mut().enumerate() {
            *y = f32::from_bits(s.buf[((from + i as u64) % cap) as usize].load(Ordering::Relaxed));
        }
        // Anything the producer may have touched while we copied is suspect.
        fence(Ordering::Acquire);
        let oldest = s.claimed.load(Ordering::Relaxed).saturating_sub(cap);
        if from < oldest {
            return Err(Overwritten { oldest });
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_the_audio_clock_and_overflow_loses_the_oldest() {
        let (mut w, r) = input_ring(100);
        let block: Vec<f32> = (0..60).map(|i| i as f32).collect();
        w.push(&block);
        w.push(&block);
        assert_eq!(r.written(), 120);
        assert_eq!(r.oldest(), 20);
        let mut buf = [0.0f32; 30];
        assert_eq!(r.read_at(0, &mut buf), Err(Overwritten { oldest: 20 }));
        // The newest samples are all there, at their clock positions.
        assert_eq!(r.read_at(100, &mut buf), Ok(20));
        assert_eq!(buf[..20], block[40..60]);
        assert_eq!(r.read_at(60, &mut buf), Ok(30));
        assert_eq!(buf[0], 0.0);
        assert_eq!(r.read_at(120, &mut buf), Ok(0), "not captured yet");
    }

    #[test]
    fn a_reader_racing_the_writer_never_accepts_torn_data() {
        use std::sync::atomic::{AtomicU64, Ordering};
        use std::sync::Arc;
        // Each sample's value is its position (mod 2^24, exact in f32): any
        // accepted copy must match. The writer keeps writing until the reader
        // has checked enough, so a descheduled reader cannot make it vacuous.
        const WANT: u64 = 200_000;
        let value = |pos: u64| (pos % (1 << 24)) as f32;
        let (mut w, r) = input_ring(256);
        let checked = Arc::new(AtomicU64::new(0));
        let seen = checked.clone();
        let t = std::thread::spawn(move || {
            let mut pos = 0u64;
            let mut block = [0.0f32; 64];
            let mut blocks = 0u64;
            while seen.load(Ordering::Relaxed) < WANT && blocks < 50_000_000 {
                for x in block.iter_mut() {
                    *x = value(pos);
                    pos += 1;
                }
                w.push(&block);
                blocks += 1;
            }
        });
        let mut buf = [0.0f32; 200];
        while !t.is_finished() {
            let from = r.written().saturating_sub(230);
            if let Ok(n) = r.read_at(from, &mut buf) {
                for (i, y) in buf[..n].iter().enumerate() {
                    assert_eq!(*y, value(from + i as u64));
                }
                checked.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
        t.join().unwrap();
        assert!(
            checked.load(Ordering::Relaxed) >= WANT,
            "the reader never kept up"
        );
    }
}
