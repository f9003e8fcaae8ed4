//! Parsers for the benchmark's fault injection (`--inject-stall MS:EVERY`) and
//! scripted knob changes (`--knob ID=VALUE@TIME`).

use std::str::FromStr;

/// A periodic stall of the backbone: `ms` extra on every `every`-th frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stall {
    pub ms: f64,
    pub every: u64,
}

impl FromStr for Stall {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not MS:EVERY (e.g. 150:10 = 150 ms every 10th frame)");
        let (ms, every) = s.split_once(':').ok_or_else(bad)?;
        let ms: f64 = ms.trim().parse().map_err(|_| bad())?;
        let every: u64 = every.trim().parse().map_err(|_| bad())?;
        if !(ms.is_finite() && (0.0..=10_000.0).contains(&ms)) || every == 0 {
            return Err(format!("`{s}`: MS must be 0–10000 and EVERY at least 1"));
        }
        Ok(Self { ms, every })
    }
}

/// A knob write at an audio time (seconds since the start of the stream).
#[derive(Clone, Debug, PartialEq)]
pub struct KnobChange {
    pub id: String,
    pub value: f64,
    pub at_s: f64,
}

impl FromStr for KnobChange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not ID=VALUE@TIME (e.g. audio_temperature=0.2@5s)");
        let (id, rest) = s.split_once('=').ok_or_else(bad)?;
        let (value, at) = rest.split_once('@').ok_or_else(bad)?;
        let value: f64 = value.trim().parse().map_err(|_| bad())?;
        let at_s = parse_time(at.trim()).ok_or_else(bad)?;
        let id = id.trim();
        if id.is_empty() || !value.is_finite() {
            return Err(bad());
        }
        Ok(Self {
            id: id.into(),
            value,
            at_s,
        })
    }
}

/// `5`, `5s`, `2.5s`, `500ms`.
fn parse_time(t: &str) -> Option<f64> {
    let v = if let Some(ms) = t.strip_suffix("ms") {
        ms.parse::<f64>().ok()? / 1000.0
    } else {
        t.strip_suffix('s').unwrap_or(t).parse::<f64>().ok()?
    };
    (v.is_finite() && v >= 0.0).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stalls_and_knobs() {
        assert_eq!(
            "150:10".parse::<Stall>().unwrap(),
            Stall {
                ms: 150.0,
                every: 10
            }
        );
        assert!("150".parse::<Stall>().is_err());
        assert!("150:0".parse::<Stall>().is_err());
        let k: KnobChange = "audio_temperature=0.2@5s".parse().unwrap();
        assert_eq!(
            (k.id.as_str(), k.value, k.at_s),
            ("audio_temperature", 0.2, 5.0)
        );
        let k: KnobChange = "gain_db=-6@500ms".parse().unwrap();
        assert_eq!(k.at_s, 0.5);
        assert!("x=1".parse::<KnobChange>().is_err());
        assert!("x=y@1s".parse::<KnobChange>().is_err());
    }
}
