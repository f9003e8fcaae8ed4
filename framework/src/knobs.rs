//! Knobs: named, ranged controls, each bound to the stage where it takes effect.
//!
//! Delivery has two halves:
//!
//! * **Writers** (audio thread, UI, host automation) store into a [`LatestCell`]:
//!   a capacity-1, latest-wins slot. Writing never allocates, locks or waits, so it
//!   is safe on the audio thread, and 10 000 writes leave exactly one value behind.
//! * **Readers** (generation stages) read a [`KnobSnapshot`]: one immutable picture
//!   of every knob, published through `arc-swap` by [`KnobBus::publish`]. Every
//!   stage that runs loads the newest snapshot, so a change reaches frames already
//!   in flight at their next stage. Publishing when nothing changed is a no-op.
//!
//! Each write carries the audio-clock timestamp (in samples) at which it was made,
//! so knob → ear latency can be measured downstream.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};

/// Where a knob takes effect (DESIGN.md, "Knobs and shared curves").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Binding {
    /// Applied sample-accurately by the audio endpoint (gain, dry/wet, bypass).
    AudioThread,
    /// Read by the codec decoder at its next frame (codebook depth).
    Decoder,
    /// Read by the samplers at the next generated frame (temperature, top-k…).
    Sampling,
    /// Read by the controller at its next tick (lead floor, listen, reset).
    Control,
}

impl Binding {
    /// All binding classes, in a stable order (used for reports).
    pub const ALL: [Binding; 4] = [
        Binding::AudioThread,
        Binding::Decoder,
        Binding::Sampling,
        Binding::Control,
    ];

    /// Stable snake_case name, as used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Binding::AudioThread => "audio_thread",
            Binding::Decoder => "decoder",
            Binding::Sampling => "sampling",
            Binding::Control => "control",
        }
    }
}

/// Static description of a knob: identity, range, unit and binding.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KnobSpec {
    /// Stable identifier used in presets, state and reports (`snake_case`).
    pub id: String,
    /// Human-readable name for a DAW's generic editor.
    pub name: String,
    /// Unit shown after the value (`"dB"`, `"%"`, `""`).
    pub unit: String,
    pub min: f32,
    pub max: f32,
    pub default: f32,
    /// `Some(step)` for stepped knobs (integers: `Some(1.0)`; toggles and
    /// triggers: a 0..1 range with step 1).
    pub step: Option<f32>,
    pub binding: Binding,
}

impl KnobSpec {
    /// A continuous knob.
    pub fn new(
        id: &str,
        name: &str,
        unit: &str,
        min: f32,
        max: f32,
        default: f32,
        binding: Binding,
    ) -> Self {
        Self {
            id: id.into(),
            name: name.into(),
            unit: unit.into(),
            min,
            max,
            default,
            step: None,
            binding,
        }
    }

    /// Makes the knob stepped (integer-valued when `step == 1`).
    pub fn stepped(mut self, step: f32) -> Self {
        self.step = Some(step);
        self
    }

    /// A 0/1 switch.
    pub fn toggle(id: &str, name: &str, default: bool, binding: Binding) -> Self {
        Self::new(
            id,
            name,
            "",
            0.0,
            1.0,
            if default { 1.0 } else { 0.0 },
            binding,
        )
        .stepped(1.0)
    }

    /// Brings any value (NaN included) into range and onto the step grid.
    pub fn clamp(&self, v: f32) -> f32 {
        let v = if v.is_nan() {
            self.default
        } else {
            v.clamp(self.min, self.max)
        };
        match self.step {
            Some(s) if s > 0.0 => {
                (self.min + ((v - self.min) / s).round() * s).clamp(self.min, self.max)
            }
            _ => v,
        }
    }

    /// Checks a user-supplied value (presets), naming the allowed range on error.
    pub fn validate(&self, v: f64) -> Result<f32, String> {
        if !v.is_finite() || v < self.min as f64 || v > self.max as f64 {
            return Err(format!(
                "`{}` = {v} is out of range: allowed {} ..= {}{}",
                self.id,
                self.min,
                self.max,
                if self.unit.is_empty() {
                    String::new()
                } else {
                    format!(" {}", self.unit)
                }
            ));
        }
        Ok(self.clamp(v as f32))
    }
}

/// A capacity-1, latest-wins slot holding one knob value and the audio-clock time
/// it was written. One writer at a time (the audio thread *or* a UI thread);
/// any number of readers.
///
/// Written as a tiny seqlock rather than a queue: a queue would make readers
/// drain stale values, and `arc-swap` would allocate on every store.
#[derive(Debug)]
pub struct LatestCell {
    seq: AtomicU64,
    value: AtomicU64,
    stamp: AtomicU64,
}

impl LatestCell {
    pub fn new(value: f32) -> Self {
        Self {
            seq: AtomicU64::new(0),
            value: AtomicU64::new(value.to_bits() as u64),
            stamp: AtomicU64::new(0),
        }
    }

    /// Stores a value made at audio-clock sample `stamp`. Wait-free; never
    /// allocates. Returns immediately even if readers are mid-read.
    #[inline]
    pub fn store(&self, value: f32, stamp: u64) {
        let s = self.seq.load(Ordering::Relaxed);
        self.seq.store(s.wrapping_add(1), Ordering::Relaxed); // odd: write in progress
        std::sync::atomic::fence(Ordering::Release);
        self.value.store(value.to_bits() as u64, Ordering::Relaxed);
        self.stamp.store(stamp, Ordering::Relaxed);
        self.seq.store(s.wrapping_add(2), Ordering::Release);
    }

    /// Reads `(value, stamp, version)`. The version changes with every store, so a
    /// reader can tell whether anything happened since it last looked.
    /// Readers retry only while a store is in flight (a few instructions), and
    /// readers are never the audio thread.
    pub fn load(&self) -> (f32, u64, u64) {
        loop {
            let s1 = self.seq.load(Ordering::Acquire);
            if s1 & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let v = self.value.load(Ordering::Relaxed);
            let t = self.stamp.load(Ordering::Relaxed);
            std::sync::atomic::fence(Ordering::Acquire);
            if self.seq.load(Ordering::Relaxed) == s1 {
                return (f32::from_bits(v as u32), t, s1 / 2);
            }
        }
    }
}

/// One knob's value inside a [`KnobSnapshot`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct KnobValue {
    pub value: f32,
    /// Audio-clock sample at which this value was set (0 for defaults).
    pub changed_at: u64,
    /// How many times the knob has been written.
    pub version: u64,
}

/// An immutable picture of every knob, as published by [`KnobBus::publish`].
#[derive(Debug)]
pub struct KnobSnapshot {
    specs: Arc<[KnobSpec]>,
    values: Vec<KnobValue>,
    /// Increases by one with every publish that changed something.
    pub generation: u64,
}

impl KnobSnapshot {
    /// Value of knob `id`, or `None` if no such knob is registered.
    pub fn get(&self, id: &str) -> Option<f32> {
        self.entry(id).map(|v| v.value)
    }

    /// Value of knob `id`, or `fallback` if it is not registered (nodes use this so
    /// they also run in graphs that do not expose every knob).
    pub fn get_or(&self, id: &str, fallback: f32) -> f32 {
        self.get(id).unwrap_or(fallback)
    }

    /// Full entry (value, timestamp, version) of knob `id`.
    pub fn entry(&self, id: &str) -> Option<&KnobValue> {
        self.specs
            .iter()
            .position(|s| s.id == id)
            .map(|i| &self.values[i])
    }

    /// Iterates over `(spec, value)` pairs in registration order.
    pub fn iter(&self) -> impl Iterator<Item = (&KnobSpec, &KnobValue)> {
        self.specs.iter().zip(self.values.iter())
    }
}

/// The registry of knobs of one stream: their specs, the writer-side cells and
/// the published snapshot.
#[derive(Debug)]
pub struct KnobBus {
    specs: Arc<[KnobSpec]>,
    cells: Vec<LatestCell>,
    current: ArcSwap<KnobSnapshot>,
}

/// Index of a knob inside a [`KnobBus`]; cheap to copy, valid for that bus only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KnobId(pub usize);

impl KnobBus {
    /// Builds a bus from specs. Duplicate ids are an error naming the id.
    pub fn new(specs: Vec<KnobSpec>) -> Result<Arc<Self>, String> {
        for (i, s) in specs.iter().enumerate() {
            if specs[..i].iter().any(|o| o.id == s.id) {
                return Err(format!("knob `{}` is registered twice", s.id));
            }
            if !(s.min <= s.default && s.default <= s.max) {
                return Err(format!(
                    "knob `{}`: default {} outside {} ..= {}",
                    s.id, s.default, s.min, s.max
                ));
            }
        }
        let specs: Arc<[KnobSpec]> = specs.into();
        let cells = specs.iter().map(|s| LatestCell::new(s.default)).collect();
        let values = specs
            .iter()
            .map(|s| KnobValue {
                value: s.default,
                changed_at: 0,
                version: 0,
            })
            .collect();
        let snap = KnobSnapshot {
            specs: specs.clone(),
            values,
            generation: 0,
        };
        Ok(Arc::new(Self {
            specs,
            cells,
            current: ArcSwap::from_pointee(snap),
        }))
    }

    pub fn specs(&self) -> &[KnobSpec] {
        &self.specs
    }

    /// Looks a knob up by id.
    pub fn id(&self, id: &str) -> Option<KnobId> {
        self.specs.iter().position(|s| s.id == id).map(KnobId)
    }

    /// Writes a knob (clamped into its range). Realtime-safe: see [`LatestCell::store`].
    #[inline]
    pub fn set(&self, knob: KnobId, value: f32, stamp: u64) {
        if let (Some(spec), Some(cell)) = (self.specs.get(knob.0), self.cells.get(knob.0)) {
            cell.store(spec.clamp(value), stamp);
        }
    }

    /// Writes a knob by id; `Err` names an unknown id.
    pub fn set_by_id(&self, id: &str, value: f32, stamp: u64) -> Result<(), String> {
        let k = self.id(id).ok_or_else(|| format!("unknown knob `{id}`"))?;
        self.set(k, value, stamp);
        Ok(())
    }

    /// Latest written value of a knob, read straight from its cell (not the snapshot).
    pub fn latest(&self, knob: KnobId) -> f32 {
        self.cells[knob.0].load().0
    }

    /// Publishes a new snapshot if any cell changed since the last publish.
    /// Returns `true` if it published. Unchanged values publish nothing: no
    /// allocation, no new generation. Call it off the audio thread (it allocates
    /// when something changed).
    pub fn publish(&self) -> bool {
        let old = self.current.load();
        let mut changed = false;
        for (cell, prev) in self.cells.iter().zip(old.values.iter()) {
            let (_, _, version) = cell.load();
            if version != prev.version {
                changed = true;
                break;
            }
        }
        if !changed {
            return false;
        }
        let values = self
            .cells
            .iter()
            .zip(old.values.iter())
            .map(|(cell, prev)| {
                let (value, stamp, version) = cell.load();
                if version == prev.version {
                    *prev
                } else {
                    KnobValue {
                        value,
                        changed_at: stamp,
                        version,
                    }
                }
            })
            .collect();
        let snap = KnobSnapshot {
            specs: self.specs.clone(),
            values,
            generation: old.generation + 1,
        };
        self.current.store(Arc::new(snap));
        true
    }

    /// The newest published snapshot. Cheap; never blocks.
    pub fn snapshot(&self) -> Arc<KnobSnapshot> {
        self.current.load_full()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bus() -> Arc<KnobBus> {
        KnobBus::new(vec![
            KnobSpec::new(
                "temperature",
                "Temperature",
                "",
                0.0,
                2.0,
                0.8,
                Binding::Sampling,
            ),
            KnobSpec::new("top_k", "Top-k", "", 1.0, 2048.0, 250.0, Binding::Sampling).stepped(1.0),
        ])
        .unwrap()
    }

    #[test]
    fn latest_wins_over_ten_thousand_changes() {
        let bus = bus();
        let t = bus.id("temperature").unwrap();
        let writer = {
            let bus = bus.clone();
            std::thread::spawn(move || {
                for i in 0..10_000u32 {
                    bus.set(t, i as f32 / 10_000.0, i as u64);
                }
            })
        };
        // A concurrent reader never sees a torn (value, stamp) pair.
        let mut seen = 0;
        while !writer.is_finished() {
            let (v, stamp, version) = bus.cells[t.0].load();
            if version > 0 {
                assert_eq!(v, stamp as f32 / 10_000.0, "torn read");
            }
            seen += 1;
        }
        writer.join().unwrap();
        assert!(seen > 0);
        assert!(bus.publish());
        let snap = bus.snapshot();
        let e = snap.entry("temperature").unwrap();
        assert_eq!(e.value, 9_999.0 / 10_000.0);
        assert_eq!(e.changed_at, 9_999);
        assert_eq!(e.version, 10_000, "every write counted, one value kept");
        // The cell is one slot: its size does not depend on how many writes happened.
        assert_eq!(std::mem::size_of::<LatestCell>(), 24);
    }

    #[test]
    fn republishing_unchanged_values_is_a_noop() {
        let bus = bus();
        let before = bus.snapshot();
        assert!(!bus.publish());
        assert!(
            Arc::ptr_eq(&before, &bus.snapshot()),
            "no new snapshot for no change"
        );
        bus.set_by_id("top_k", 40.4, 7).unwrap();
        assert!(bus.publish());
        let after = bus.snapshot();
        assert_eq!(after.generation, 1);
        assert_eq!(
            after.get("top_k"),
            Some(40.0),
            "stepped knob lands on the grid"
        );
        assert!(!bus.publish());
        assert!(Arc::ptr_eq(&after, &bus.snapshot()));
    }

    #[test]
    fn values_are_clamped_and_nan_is_rejected() {
        let bus = bus();
        bus.set_by_id("temperature", f32::NAN, 1).unwrap();
        bus.set_by_id("top_k", 1e9, 1).unwrap();
        bus.publish();
        let s = bus.snapshot();
        assert_eq!(s.get("temperature"), Some(0.8));
        assert_eq!(s.get("top_k"), Some(2048.0));
        assert!(bus.set_by_id("nope", 1.0, 0).unwrap_err().contains("nope"));
        let spec = &bus.specs()[0];
        let err = spec.validate(3.0).unwrap_err();
        assert!(
            err.contains("temperature") && err.contains("0 ..= 2"),
            "{err}"
        );
    }

    #[test]
    fn duplicate_ids_are_rejected() {
        let s = KnobSpec::new("gain", "Gain", "dB", -60.0, 12.0, 0.0, Binding::AudioThread);
        let err = KnobBus::new(vec![s.clone(), s]).unwrap_err();
        assert!(err.contains("gain"));
    }
}
