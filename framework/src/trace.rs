//! Chrome trace-event files (open in Perfetto or chrome://tracing): one complete
//! ("X") span per stage per frame. The buffer is fixed-size: when full it keeps
//! the newest spans and counts what it dropped, so tracing an hour costs the
//! same memory as tracing a minute.

use serde::Serialize;

#[derive(Clone, Copy, Debug)]
struct Span {
    stage: u16,
    worker: u16,
    frame: u64,
    start_us: f64,
    dur_us: f64,
}

/// A bounded trace recorder.
#[derive(Debug)]
pub struct Trace {
    names: Vec<String>,
    spans: Vec<Span>,
    next: usize,
    dropped: u64,
    capacity: usize,
}

#[derive(Serialize)]
struct Event<'a> {
    name: &'a str,
    cat: &'static str,
    ph: &'static str,
    ts: f64,
    dur: f64,
    pid: u32,
    tid: u16,
    args: Args,
}

#[derive(Serialize)]
struct Args {
    frame: u64,
}

impl Trace {
    /// `stage_names` index the stages; `capacity` spans are kept at most.
    pub fn new(stage_names: Vec<String>, capacity: usize) -> Self {
        Self {
            names: stage_names,
            spans: Vec::with_capacity(capacity.min(1 << 20)),
            next: 0,
            dropped: 0,
            capacity: capacity.max(1),
        }
    }

    /// Records a span (times in seconds on the run's clock).
    pub fn span(&mut self, stage: usize, worker: usize, frame: u64, start: f64, end: f64) {
        let s = Span {
            stage: stage as u16,
            worker: worker as u16,
            frame,
            start_us: start * 1e6,
            dur_us: (end - start).max(0.0) * 1e6,
        };
        if self.spans.len() < self.capacity {
            self.spans.push(s);
        } else {
            self.spans[self.next] = s;
            self.next = (self.next + 1) % self.capacity;
            self.dropped += 1;
        }
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The trace as Chrome trace-event JSON.
    pub fn to_json(&self) -> String {
        let mut spans = self.spans.clone();
        spans.sort_by(|a, b| a.start_us.total_cmp(&b.start_us));
        let events: Vec<Event> = spans
            .iter()
            .map(|s| Event {
                name: self.names.get(s.stage as usize).map_or("?", |n| n.as_str()),
                cat: "stage",
                ph: "X",
                ts: s.start_us,
                dur: s.dur_us,
                pid: 1,
                tid: s.worker,
                args: Args { frame: s.frame },
            })
            .collect();
        serde_json::json!({ "traceEvents": events, "displayTimeUnit": "ms", "otherData": { "dropped_spans": self.dropped } })
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_is_valid_json_and_bounded() {
        let mut t = Trace::new(vec!["encoder".into(), "decoder".into()], 10);
        for f in 0..25 {
            t.span(
                (f % 2) as usize,
                0,
                f,
                f as f64 * 0.08,
                f as f64 * 0.08 + 0.01,
            );
        }
        assert_eq!(t.len(), 10);
        assert_eq!(t.dropped(), 15);
        let v: serde_json::Value = serde_json::from_str(&t.to_json()).unwrap();
        let ev = v["traceEvents"].as_array().unwrap();
        assert_eq!(ev.len(), 10);
        assert_eq!(ev[0]["ph"], "X");
        assert_eq!(ev[9]["args"]["frame"], 24, "keeps the newest spans");
        assert!((ev[0]["dur"].as_f64().unwrap() - 10_000.0).abs() < 1e-6);
    }
}
