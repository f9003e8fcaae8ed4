//! Telemetry primitives, all fixed-size.
//!
//! * [`Histogram`]: log-linear buckets (≈1.6 % resolution) over 1 µs … ~36 h,
//!   recorded with plain atomic loads/stores by a single writer. Realtime-safe:
//!   no allocation, no lock, no read-modify-write loop, so the audio thread can
//!   record into one while another thread reads percentiles.
//! * [`Series`]: a bounded time series for plots; when full it halves its
//!   resolution instead of growing, so a one-hour run costs the same memory as a
//!   one-minute run. Not for the audio thread (it is written by workers).
//!
//! Our own histogram instead of `hdrhistogram`: that crate's recording takes
//! `&mut self` and can resize; we need a shared, fixed-size one written
//! wait-free from the audio thread and read concurrently.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

const SUB_BITS: u32 = 6;
const SUB: usize = 1 << SUB_BITS; // 64 linear sub-buckets per power of two
const OCTAVES: usize = 38; // up to 2^(38+6) µs
const BUCKETS: usize = SUB * (OCTAVES + 1);

/// p50 / p99 / max of a distribution, in the unit it was recorded in (ms).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

/// A fixed-size, single-writer histogram of durations or other non-negative
/// quantities, recorded in milliseconds with microsecond resolution.
pub struct Histogram {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum_us: AtomicU64,
    min_us: AtomicU64,
    max_us: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Histogram(n={}, {:?})", self.count(), self.percentiles())
    }
}

fn bucket_of(us: u64) -> usize {
    if us < SUB as u64 {
        return us as usize;
    }
    let msb = 63 - us.leading_zeros(); // ≥ SUB_BITS
    let shift = msb - SUB_BITS;
    let octave = (shift + 1) as usize;
    let sub = ((us >> shift) as usize) & (SUB - 1);
    (octave * SUB + sub).min(BUCKETS - 1)
}

/// Midpoint (µs) of a bucket, used when reading quantiles.
fn bucket_value(b: usize) -> f64 {
    let octave = b / SUB;
    let sub = (b % SUB) as u64;
    if octave == 0 {
        return sub as f64;
    }
    let shift = (octave - 1) as u32;
    let lo = (SUB as u64 + sub) << shift;
    lo as f64 + ((1u64 << shift) as f64 - 1.0) / 2.0
}

impl Histogram {
    pub fn new() -> Self {
        Self {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_us: AtomicU64::new(0),
            min_us: AtomicU64::new(u64::MAX),
            max_us: AtomicU64::new(0),
        }
    }

    /// Records one value in milliseconds (negative and NaN count as 0).
    /// Single writer: concurrent `record` calls from two threads may lose counts.
    #[inline]
    pub fn record_ms(&self, ms: f64) {
        let us = if ms > 0.0 {
            (ms * 1000.0).round().min(u64::MAX as f64 / 2.0) as u64
        } else {
            0
        };
        self.record_us(us);
    }

    /// Records one value in microseconds.
    #[inline]
    pub fn record_us(&self, us: u64) {
        let b = &self.buckets[bucket_of(us)];
        b.store(b.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        self.sum_us.store(
            self.sum_us.load(Ordering::Relaxed).saturating_add(us),
            Ordering::Relaxed,
        );
        if us < self.min_us.load(Ordering::Relaxed) {
            self.min_us.store(us, Ordering::Relaxed);
        }
        if us > self.max_us.load(Ordering::Relaxed) {
            self.max_us.store(us, Ordering::Relaxed);
        }
        // Count last: a reader that sees the count sees the bucket too.
        self.count
            .store(self.count.load(Ordering::Relaxed) + 1, Ordering::Release);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Acquire)
    }

    /// Mean in ms (0 when empty).
    pub fn mean_ms(&self) -> f64 {
        let n = self.count();
        if n == 0 {
            0.0
        } else {
            self.sum_us.load(Ordering::Relaxed) as f64 / n as f64 / 1000.0
        }
    }

    /// Exact maximum in ms (0 when empty).
    pub fn max_ms(&self) -> f64 {
        self.max_us.load(Ordering::Relaxed) as f64 / 1000.0
    }

    /// Exact minimum in ms (0 when empty).
    pub fn min_ms(&self) -> f64 {
        match self.min_us.load(Ordering::Relaxed) {
            u64::MAX => 0.0,
            v => v as f64 / 1000.0,
        }
    }

    /// The `q`-quantile (0..=1) in ms, to bucket resolution (≈1.6 %); 0 when empty.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        let n = self.count();
        if n == 0 {
            return 0.0;
        }
        let rank = ((q.clamp(0.0, 1.0) * n as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b.load(Ordering::Relaxed);
            if seen >= rank {
                // Never report beyond the exact extremes.
                return (bucket_value(i) / 1000.0).clamp(self.min_ms(), self.max_ms());
            }
        }
        self.max_ms()
    }

    pub fn percentiles(&self) -> Percentiles {
        Percentiles {
            p50: self.quantile_ms(0.5),
            p99: self.quantile_ms(0.99),
            max: self.max_ms(),
        }
    }

    /// Forgets everything (not while a writer is recording).
    pub fn clear(&self) {
        for b in self.buckets.iter() {
            b.store(0, Ordering::Relaxed);
        }
        self.sum_us.store(0, Ordering::Relaxed);
        self.min_us.store(u64::MAX, Ordering::Relaxed);
        self.max_us.store(0, Ordering::Relaxed);
        self.count.store(0, Ordering::Release);
    }
}

/// A bounded `(t, value)` series: keeps at most `capacity` points spread over the
/// whole run by dropping every other point and doubling its stride when full.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Series {
    capacity: usize,
    stride: u64,
    pending: u64,
    points: Vec<(f64, f64)>,
}

impl Series {
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(2);
        Self {
            capacity,
            stride: 1,
            pending: 0,
            points: Vec::with_capacity(capacity),
        }
    }

    /// Adds a point (time in seconds, value); may be thinned out later.
    pub fn push(&mut self, t: f64, v: f64) {
        self.pending += 1;
        if self.pending < self.stride {
            return;
        }
        self.pending = 0;
        if self.points.len() == self.capacity {
            let mut i = 0;
            self.points.retain(|_| {
                i += 1;
                i % 2 == 1
            });
            self.stride *= 2;
        }
        self.points.push((t, v));
    }

    pub fn points(&self) -> &[(f64, f64)] {
        &self.points
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_bucket_resolution() {
        let h = Histogram::new();
        for i in 1..=10_000u64 {
            h.record_us(i * 10); // 0.01 … 100 ms
        }
        let p = h.percentiles();
        assert!((p.p50 - 50.0).abs() / 50.0 < 0.02, "{p:?}");
        assert!((p.p99 - 99.0).abs() / 99.0 < 0.02, "{p:?}");
        assert_eq!(p.max, 100.0);
        assert_eq!(h.min_ms(), 0.01);
        assert!((h.mean_ms() - 50.005).abs() < 1e-6);
    }

    #[test]
    fn huge_negative_and_nan_values_do_not_panic() {
        let h = Histogram::new();
        h.record_ms(f64::NAN);
        h.record_ms(-5.0);
        h.record_ms(1e15);
        h.record_us(u64::MAX);
        assert_eq!(h.count(), 4);
        assert_eq!(h.quantile_ms(0.0), 0.0);
        assert!(h.max_ms() > 1e12);
    }

    #[test]
    fn every_bucket_index_is_in_range_and_monotonic() {
        // Powers of two and their neighbours over the whole u64 range, ascending:
        // a larger value never lands in a lower bucket, up to the top bucket.
        let mut values: Vec<u64> = (0..64u32)
            .flat_map(|s| {
                let p = 1u64 << s;
                [p - 1, p, p + 1, p + p / 2]
            })
            .chain([u64::MAX])
            .collect();
        values.sort_unstable();
        let mut last = 0;
        for v in values {
            let b = bucket_of(v);
            assert!(b < BUCKETS, "{v} -> bucket {b} of {BUCKETS}");
            assert!(b >= last, "{v} -> bucket {b}, below the previous {last}");
            last = b;
        }
        assert_eq!(last, BUCKETS - 1, "the largest values share the top bucket");
        let mut prev = 0;
        for v in 0..100_000u64 {
            let b = bucket_of(v);
            assert!(b >= prev);
            prev = b;
            let mid = bucket_value(b);
            assert!(
                (mid - v as f64).abs() <= (v as f64 / 64.0).max(0.5) + 0.5,
                "{v} -> {mid}"
            );
        }
    }

    #[test]
    fn series_stays_bounded_and_spans_the_run() {
        let mut s = Series::new(100);
        for i in 0..1_000_000 {
            s.push(i as f64, i as f64);
        }
        assert!(s.points().len() <= 100);
        assert!(s.points().len() >= 50);
        assert_eq!(s.points()[0].0, 0.0);
        assert!(
            s.points().last().unwrap().0 > 900_000.0,
            "covers the end of the run"
        );
    }
}
