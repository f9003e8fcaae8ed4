//! The plugin's knobs in one static table: ids, ranges, units, defaults and the
//! stage each binds to (DESIGN.md, "Knobs and shared curves"). The host
//! parameters ([`crate::params`]), the [`KnobBus`] specs and state sanitising
//! ([`crate::state`]) are all derived from it, so they cannot disagree.

use std::sync::Arc;

use antiphon_framework::knobs::{Binding, KnobBus, KnobId, KnobSpec};

/// How a knob is presented to the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A continuous value.
    Float,
    /// An integer value.
    Int,
    /// An on/off switch (also used for the host bypass and the reset trigger).
    Bool,
}

/// One knob of the plugin.
#[derive(Clone, Copy, Debug)]
pub struct KnobDef {
    /// Stable id: the host parameter id, the preset/state key and the bus id.
    pub id: &'static str,
    pub name: &'static str,
    pub unit: &'static str,
    pub min: f32,
    pub max: f32,
    pub default: f32,
    pub kind: Kind,
    pub binding: Binding,
}

/// Every knob, in host display order. Indexes into this table are used as
/// [`Knob`] values throughout the plugin.
pub const KNOBS: [KnobDef; 10] = [
    KnobDef {
        id: "gain_db",
        name: "Output gain",
        unit: " dB",
        min: -60.0,
        max: 12.0,
        default: 0.0,
        kind: Kind::Float,
        binding: Binding::AudioThread,
    },
    KnobDef {
        id: "mix",
        name: "Dry/wet",
        unit: "%",
        min: 0.0,
        max: 1.0,
        default: 1.0,
        kind: Kind::Float,
        binding: Binding::AudioThread,
    },
    KnobDef {
        id: "bypass",
        name: "Bypass",
        unit: "",
        min: 0.0,
        max: 1.0,
        default: 0.0,
        kind: Kind::Bool,
        binding: Binding::AudioThread,
    },
    KnobDef {
        id: "audio_temperature",
        name: "Audio temperature",
        unit: "",
        min: 0.0,
        max: 2.0,
        default: 0.8,
        kind: Kind::Float,
        binding: Binding::Sampling,
    },
    KnobDef {
        id: "text_temperature",
        name: "Text temperature",
        unit: "",
        min: 0.0,
        max: 2.0,
        default: 0.7,
        kind: Kind::Float,
        binding: Binding::Sampling,
    },
    KnobDef {
        id: "top_k",
        name: "Top-k",
        unit: "",
        min: 1.0,
        max: 2048.0,
        default: 250.0,
        kind: Kind::Int,
        binding: Binding::Sampling,
    },
    KnobDef {
        id: "codebook_depth",
        name: "Codebook depth",
        unit: "",
        min: 1.0,
        max: 8.0,
        default: 8.0,
        kind: Kind::Int,
        binding: Binding::Decoder,
    },
    KnobDef {
        id: "lead_floor_ms",
        name: "Latency mode (lead floor)",
        unit: " ms",
        min: 0.0,
        max: 500.0,
        default: 40.0,
        kind: Kind::Float,
        binding: Binding::Control,
    },
    KnobDef {
        id: "listen",
        name: "Listen",
        unit: "",
        min: 0.0,
        max: 1.0,
        default: 1.0,
        kind: Kind::Bool,
        binding: Binding::Control,
    },
    KnobDef {
        id: "reset",
        name: "Reset conversation",
        unit: "",
        min: 0.0,
        max: 1.0,
        default: 0.0,
        kind: Kind::Bool,
        binding: Binding::Control,
    },
];

/// Index of a knob in [`KNOBS`] (and in the plugin's [`KnobBus`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Knob(pub usize);

impl Knob {
    pub const GAIN_DB: Knob = Knob(0);
    pub const MIX: Knob = Knob(1);
    pub const BYPASS: Knob = Knob(2);
    pub const AUDIO_TEMPERATURE: Knob = Knob(3);
    pub const TEXT_TEMPERATURE: Knob = Knob(4);
    pub const TOP_K: Knob = Knob(5);
    pub const CODEBOOK_DEPTH: Knob = Knob(6);
    pub const LEAD_FLOOR_MS: Knob = Knob(7);
    pub const LISTEN: Knob = Knob(8);
    pub const RESET: Knob = Knob(9);

    pub fn def(self) -> &'static KnobDef {
        &KNOBS[self.0]
    }

    /// The matching bus id (the bus is built from [`KNOBS`] in order).
    pub fn bus_id(self) -> KnobId {
        KnobId(self.0)
    }
}

/// Looks a knob up by id.
pub fn by_id(id: &str) -> Option<&'static KnobDef> {
    KNOBS.iter().find(|k| k.id == id)
}

/// The framework's spec for each knob, in [`KNOBS`] order.
pub fn specs() -> Vec<KnobSpec> {
    KNOBS
        .iter()
        .map(|k| {
            let unit = k.unit.trim();
            match k.kind {
                Kind::Float => {
                    KnobSpec::new(k.id, k.name, unit, k.min, k.max, k.default, k.binding)
                }
                Kind::Int => KnobSpec::new(k.id, k.name, unit, k.min, k.max, k.default, k.binding)
                    .stepped(1.0),
                Kind::Bool => KnobSpec::toggle(k.id, k.name, k.default >= 0.5, k.binding),
            }
        })
        .collect()
}

/// A fresh knob bus holding every knob at its default.
pub fn new_bus() -> Arc<KnobBus> {
    // The table is static and has unique ids with in-range defaults (tested), so
    // this cannot fail at runtime.
    KnobBus::new(specs()).expect("static knob table is valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_builds_a_bus_in_order() {
        let bus = new_bus();
        for (i, k) in KNOBS.iter().enumerate() {
            assert_eq!(bus.id(k.id), Some(KnobId(i)));
        }
        assert_eq!(Knob::RESET.def().id, "reset");
        assert_eq!(Knob::CODEBOOK_DEPTH.def().id, "codebook_depth");
    }

    /// The table must be static for the host parameters, so it repeats the specs
    /// the endpoint, the model nodes and the lead controller declare: check that
    /// it agrees with them, so a range changed in one place cannot drift.
    #[test]
    fn table_agrees_with_the_specs_the_engine_uses() {
        let mut canonical = antiphon_framework::endpoint::output_knobs();
        canonical.extend(antiphon_nodes::knobs::all(8));
        canonical.extend(antiphon_framework::lead::LeadSettings::knobs());
        for k in KNOBS.iter() {
            let spec = canonical
                .iter()
                .find(|s| s.id == k.id)
                .unwrap_or_else(|| panic!("`{}` is not a knob of the engine", k.id));
            assert_eq!(
                (k.min, k.max, k.default, k.binding),
                (spec.min, spec.max, spec.default, spec.binding),
                "`{}` disagrees",
                k.id
            );
        }
    }
}
