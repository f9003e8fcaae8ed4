//! Saved-state hygiene. nice-plug serialises parameters and `#[persist]` fields
//! as JSON; this module makes a *parsed* state complete and in range before it
//! is applied, so that:
//!
//! * restoring a state always gives the same parameters, whatever the instance
//!   held before (knobs missing from the state get their defaults);
//! * a foreign state (another plugin's JSON, or values out of range or of the
//!   wrong type) gives defaults for what it cannot supply, with a logged error.
//!
//! Bytes that are not a state at all (empty, random, truncated) are refused by
//! nice-plug before this runs: the load reports failure to the host, an error is
//! logged and the instance keeps its settings (a fresh instance: the defaults).

use nice_plug::plugin::{ParamValue, PluginState};

use crate::knob_table::{Kind, KNOBS};

/// Host parameters that are not knobs of the engine (so not in the knob
/// table), with their defaults: fixed latency off.
pub const EXTRA_SWITCHES: [(&str, bool); 1] = [("fixed_latency", false)];

/// Persisted fields and their defaults (JSON-encoded, as nice-plug stores them).
const FIELDS: [(&str, &str); 2] = [("model_dir", "\"\""), ("preset", "\"\"")];

/// What loading a saved state does with the host's bytes: nice-plug's JSON
/// decoding (its `deserialize_json` is crate-private, so it is repeated here
/// for tests and fuzzing), then [`sanitize`]. `None` for bytes that are not a
/// state at all.
pub fn parse(bytes: &[u8]) -> Option<PluginState> {
    let mut state: PluginState = serde_json::from_slice(bytes).ok()?;
    sanitize(&mut state);
    Some(state)
}

/// Completes and clamps `state` in place. Returns the problems found (also logged).
pub fn sanitize(state: &mut PluginState) -> Vec<String> {
    let mut problems = Vec::new();
    for k in KNOBS.iter() {
        let fixed = match (k.kind, state.params.get(k.id)) {
            (Kind::Float, Some(ParamValue::F32(v))) if v.is_finite() => {
                ParamValue::F32(v.clamp(k.min, k.max))
            }
            (Kind::Int, Some(ParamValue::I32(v))) => {
                ParamValue::I32((*v).clamp(k.min as i32, k.max as i32))
            }
            (Kind::Bool, Some(ParamValue::Bool(v))) => ParamValue::Bool(*v),
            (kind, found) => {
                if let Some(bad) = found {
                    problems.push(format!("`{}`: unusable value {bad:?}, using default", k.id));
                }
                match kind {
                    Kind::Float => ParamValue::F32(k.default),
                    Kind::Int => ParamValue::I32(k.default as i32),
                    Kind::Bool => ParamValue::Bool(k.default >= 0.5),
                }
            }
        };
        if let (ParamValue::F32(a), Some(ParamValue::F32(b))) = (&fixed, state.params.get(k.id)) {
            if a != b {
                problems.push(format!("`{}` = {b} out of range, clamped to {a}", k.id));
            }
        }
        state.params.insert(k.id.to_string(), fixed);
    }
    let unknown: Vec<String> = state
        .params
        .keys()
        .filter(|id| {
            !KNOBS.iter().any(|k| k.id == id.as_str())
                && !EXTRA_SWITCHES.iter().any(|(e, _)| e == id)
        })
        .cloned()
        .collect();
    if !unknown.is_empty() {
        problems.push(format!(
            "unknown parameters ignored: {}",
            unknown.join(", ")
        ));
        for id in unknown {
            state.params.remove(&id);
        }
    }
    for (id, default) in EXTRA_SWITCHES {
        match state.params.get(id) {
            Some(ParamValue::Bool(_)) => {}
            found => {
                if let Some(bad) = found {
                    problems.push(format!("`{id}`: unusable value {bad:?}, using default"));
                }
                state
                    .params
                    .insert(id.to_string(), ParamValue::Bool(default));
            }
        }
    }
    for (key, default) in FIELDS {
        let ok = state
            .fields
            .get(key)
            .is_some_and(|v| serde_json::from_str::<String>(v).is_ok());
        if !ok {
            if state.fields.contains_key(key) {
                problems.push(format!("`{key}`: not a string, using default"));
            }
            state.fields.insert(key.to_string(), default.to_string());
        }
    }
    if !problems.is_empty() {
        nice_plug::nice_error!(
            "Antiphon: saved state had problems (defaults used where needed): {}",
            problems.join("; ")
        );
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn foreign_state_becomes_defaults_and_good_state_is_kept() {
        let mut s = PluginState {
            version: "9".into(),
            params: BTreeMap::from([
                ("cutoff".to_string(), ParamValue::F32(3.0)),
                ("top_k".to_string(), ParamValue::F32(3.0)),
                ("gain_db".to_string(), ParamValue::F32(99.0)),
                ("mix".to_string(), ParamValue::F32(0.25)),
            ]),
            fields: BTreeMap::from([("model_dir".to_string(), "{".to_string())]),
        };
        let problems = sanitize(&mut s);
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(!s.params.contains_key("cutoff"));
        assert!(matches!(s.params["top_k"], ParamValue::I32(250)));
        assert!(matches!(s.params["gain_db"], ParamValue::F32(v) if v == 12.0));
        assert!(matches!(s.params["mix"], ParamValue::F32(v) if v == 0.25));
        assert!(matches!(s.params["listen"], ParamValue::Bool(true)));
        assert_eq!(s.fields["model_dir"], "\"\"");
        assert_eq!(s.fields["preset"], "\"\"");
    }
}
