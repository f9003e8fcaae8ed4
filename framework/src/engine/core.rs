//! The engine's shared state and the scheduling decisions made on it: which
//! frame to admit, which (stage, frame) job to run next, and what to do with a
//! finished frame. The threaded pool and the simulated loop both drive this.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use crate::clock::Clock;
use crate::endpoint::GenSide;
use crate::graph::{Graph, Source, Stage};
use crate::knobs::{Binding, KnobBus, KnobSnapshot};
use crate::lead::{LeadController, LeadReason, LeadSettings};
use crate::node::{FrameContext, Node, Payload};
use crate::report::{LeadFigures, P50Max, Recorder, Report, ReportSeries, Skips, Underruns};
use crate::trace::Trace;
use crate::writer::{AudioOut, OutputWriter};

use super::{EngineConfig, Pacing};

/// Where captured audio comes from and generated audio goes.
pub(super) enum Io {
    Live(GenSide),
    Offline {
        input: Vec<f32>,
        pos: usize,
        output: Vec<f32>,
    },
}

impl Io {
    fn input_available(&self) -> usize {
        match self {
            Io::Live(g) => g.input_available(),
            Io::Offline { input, pos, .. } => input.len() - pos,
        }
    }

    fn read(&mut self, buf: &mut [f32]) -> usize {
        match self {
            Io::Live(g) => g.read_input(buf),
            Io::Offline { input, pos, .. } => {
                let n = buf.len().min(input.len() - *pos);
                buf[..n].copy_from_slice(&input[*pos..*pos + n]);
                *pos += n;
                n
            }
        }
    }

    fn out(&mut self) -> &mut dyn AudioOut {
        match self {
            Io::Live(g) => g,
            Io::Offline { output, .. } => output,
        }
    }

    fn queued(&mut self) -> usize {
        self.out().queued()
    }

    fn audio_clock(&self) -> u64 {
        match self {
            Io::Live(g) => g.stats().clock(),
            Io::Offline { pos, .. } => *pos as u64,
        }
    }

    fn gap_samples(&self) -> u64 {
        match self {
            Io::Live(g) => g
                .stats()
                .gap_samples
                .load(std::sync::atomic::Ordering::Relaxed),
            Io::Offline { .. } => 0,
        }
    }
}

struct StageState {
    name: String,
    node: Option<Box<dyn Node>>,
    sources: Vec<Source>,
    ins: Vec<Payload>,
    outs: Vec<Payload>,
    next_seq: u64,
    busy: bool,
    knob_ids: Vec<String>,
}

struct Slot {
    seq: Option<u64>,
    frame: u64,
    start: u64,
    len: usize,
    ready_at: f64,
    ext_in: Payload,
    outs: Vec<Vec<Payload>>,
    done: Vec<bool>,
    snaps: Vec<Option<Arc<KnobSnapshot>>>,
    compute_ms: f64,
}

/// A stage's work on one frame, carried out without the lock.
pub(super) struct Job {
    stage: usize,
    slot: usize,
    frame: u64,
    node: Box<dyn Node>,
    ins: Vec<Payload>,
    outs: Vec<Payload>,
    snap: Arc<KnobSnapshot>,
    started: f64,
    ended: f64,
    result: Result<(), String>,
}

impl Job {
    /// Runs the node, catching panics so one bad node cannot take the process down.
    pub(super) fn run(&mut self, clock: &dyn Clock) {
        self.started = clock.now();
        let cx = FrameContext {
            frame: self.frame,
            knobs: &self.snap,
        };
        let (node, ins, outs) = (&mut self.node, &self.ins, &mut self.outs);
        self.result = match catch_unwind(AssertUnwindSafe(|| node.process(&cx, ins, outs))) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(p) => Err(format!(
                "panicked: {}",
                p.downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_default()
            )),
        };
        self.ended = clock.now();
    }
}

struct PendingKnob {
    index: usize,
    version: u64,
    changed_at: u64,
    binding: Binding,
}

/// Live figures for a status line.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Status {
    pub frames: u64,
    pub lead_ms: f64,
    pub target_ms: f64,
    pub underruns: u64,
    pub itl_p99_ms: f64,
    pub skipped: u64,
    pub failed: bool,
}

pub(super) struct Core {
    pub cfg: EngineConfig,
    pub rate: f64,
    stages: Vec<StageState>,
    slots: Vec<Slot>,
    output: (usize, usize),
    next_seq: u64,
    next_frame: u64,
    next_write: u64,
    pub io: Io,
    pub knobs: Arc<KnobBus>,
    pub clock: Arc<dyn Clock>,
    controller: LeadController,
    writer: OutputWriter,
    pub rec: Recorder,
    pub trace: Option<Trace>,
    seen_versions: Vec<u64>,
    pending: Vec<PendingKnob>,
    last_write: Option<f64>,
    last_gap: u64,
    warmup_underruns: Option<u64>,
    skipped: u64,
    slow_ratio: f64,
    stage_ema: Vec<f64>,
    started_at: f64,
    last_rss: f64,
    pub failed: bool,
    pub errors: Vec<String>,
    pub stop: bool,
    status: Status,
}

/// Moves a stage's input payloads between its scratch vector and the frame's
/// slot (taking them out before a job, putting them back after it).
fn swap_inputs(sources: &[Source], ins: &mut [Payload], slot: &mut Slot) {
    for (k, src) in sources.iter().enumerate() {
        match src {
            Source::External => std::mem::swap(&mut ins[k], &mut slot.ext_in),
            Source::Stage { stage, port } => {
                std::mem::swap(&mut ins[k], &mut slot.outs[*stage][*port])
            }
        }
    }
}

fn frame_bounds(t: u64, frame_s: f64, rate: f64) -> (u64, usize) {
    let a = (t as f64 * frame_s * rate).round() as u64;
    let b = ((t + 1) as f64 * frame_s * rate).round() as u64;
    (a, (b - a) as usize)
}

impl Core {
    pub fn new(
        graph: Graph,
        io: Io,
        cfg: EngineConfig,
        knobs: Arc<KnobBus>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let rate = graph.sample_rate;
        let names = graph.stage_names();
        let n = graph.stages.len();
        let stages: Vec<StageState> = graph
            .stages
            .into_iter()
            .map(
                |Stage {
                     name,
                     node,
                     inputs,
                     outputs,
                     sources,
                 }| StageState {
                    knob_ids: node.knobs().into_iter().map(|k| k.id).collect(),
                    name,
                    node: Some(node),
                    sources,
                    ins: (0..inputs.len()).map(|_| Payload::Empty).collect(),
                    outs: (0..outputs.len()).map(|_| Payload::Empty).collect(),
                    next_seq: 0,
                    busy: false,
                },
            )
            .collect();
        let in_flight = cfg.max_in_flight.max(1);
        let slots = (0..in_flight)
            .map(|_| Slot {
                seq: None,
                frame: 0,
                start: 0,
                len: 0,
                ready_at: 0.0,
                ext_in: Payload::Empty,
                outs: stages
                    .iter()
                    .map(|s| (0..s.outs.len()).map(|_| Payload::Empty).collect())
                    .collect(),
                done: vec![false; n],
                snaps: vec![None; n],
                compute_ms: 0.0,
            })
            .collect();
        let max_frame = (cfg.frame_seconds * rate).ceil() as usize + 1;
        let snap = knobs.snapshot();
        let lead = if snap.entry("lead_floor_ms").is_some() {
            LeadSettings::from_knobs(&snap)
        } else {
            cfg.lead.clone()
        };
        let trace = (cfg.trace_capacity > 0).then(|| Trace::new(names.clone(), cfg.trace_capacity));
        let now = clock.now();
        Self {
            rate,
            stages,
            slots,
            output: graph.output,
            next_seq: 0,
            next_frame: 0,
            next_write: 0,
            io,
            seen_versions: snap.iter().map(|(_, v)| v.version).collect(),
            knobs,
            controller: LeadController::new(lead),
            writer: OutputWriter::new(
                rate,
                ((cfg.crossfade_ms / 1000.0) * rate).round() as usize,
                1e-3,
                max_frame,
            ),
            rec: Recorder::new(&names),
            trace,
            pending: Vec::new(),
            last_write: None,
            last_gap: 0,
            warmup_underruns: None,
            skipped: 0,
            slow_ratio: 0.0,
            stage_ema: vec![0.0; n],
            started_at: now,
            last_rss: now,
            failed: false,
            errors: Vec::new(),
            stop: false,
            status: Status::default(),
            clock,
            cfg,
        }
    }

    fn live(&self) -> bool {
        matches!(self.io, Io::Live(_))
    }

    fn in_flight(&self) -> usize {
        self.slots.iter().filter(|s| s.seq.is_some()).count()
    }

    /// Offline: all input consumed and every frame written.
    pub fn finished(&self) -> bool {
        matches!(&self.io, Io::Offline { input, pos, .. } if *pos >= input.len())
            && self.in_flight() == 0
    }

    /// Housekeeping between jobs: knob snapshots, controller settings, warm-up
    /// bookkeeping, memory samples.
    pub fn tick(&mut self) {
        if self.knobs.publish() {
            let snap = self.knobs.snapshot();
            self.controller
                .set_settings(if snap.entry("lead_floor_ms").is_some() {
                    LeadSettings::from_knobs(&snap)
                } else {
                    self.cfg.lead.clone()
                });
            let clock = self.io.audio_clock();
            for (i, (spec, v)) in snap.iter().enumerate() {
                if v.version != self.seen_versions[i] {
                    self.seen_versions[i] = v.version;
                    let readers = self.stages.iter().any(|s| s.knob_ids.contains(&spec.id));
                    if readers && matches!(spec.binding, Binding::Decoder | Binding::Sampling) {
                        self.pending.retain(|p| p.index != i);
                        self.pending.push(PendingKnob {
                            index: i,
                            version: v.version,
                            changed_at: v.changed_at,
                            binding: spec.binding,
                        });
                    } else {
                        // Read at this tick (control) or applied by the endpoint (audio thread).
                        let ms = clock.saturating_sub(v.changed_at) as f64 / self.rate * 1000.0;
                        self.rec.knob_to_ear(spec.binding, ms);
                    }
                }
            }
        }
        let now = self.clock.now();
        if self.warmup_underruns.is_none() && now - self.started_at >= self.cfg.warmup_seconds {
            self.warmup_underruns = Some(self.underrun_callbacks());
        }
        if now - self.last_rss >= 1.0 {
            self.last_rss = now;
            self.rec.sample_rss(now - self.started_at);
        }
    }

    fn underrun_callbacks(&self) -> u64 {
        match &self.io {
            Io::Live(g) => g
                .stats()
                .underrun_callbacks
                .load(std::sync::atomic::Ordering::Relaxed),
            Io::Offline { .. } => 0,
        }
    }

    /// Admits as many new frames as input, free slots and pacing allow.
    pub fn admit(&mut self) {
        if self.failed || self.stop {
            return;
        }
        let frame_s = self.cfg.frame_seconds;
        while let Some(si) = self.slots.iter().position(|s| s.seq.is_none()) {
            // Admit only what the first stage can start next: a frame admitted
            // early would wait in a slot and look slow to the lead controller,
            // while waiting in the input ring keeps its age visible.
            let first = self.stages[0].next_seq;
            if self.slots.iter().any(|s| s.seq.is_some_and(|q| q >= first)) {
                return;
            }
            let (start, len) = frame_bounds(self.next_frame, frame_s, self.rate);
            let mut age_s = 0.0;
            match self.cfg.pacing {
                Pacing::InputPaced => {
                    let avail = self.io.input_available();
                    let last_partial =
                        matches!(self.io, Io::Offline { .. }) && avail > 0 && avail < len;
                    if avail < len && !last_partial {
                        return;
                    }
                    // Never unbounded. Frames older than the ceiling are skipped;
                    // and when generation is slower than real time on average,
                    // only the newest complete frame is made (older ones are
                    // skipped), so latency stays flat instead of growing.
                    if self.live() {
                        let age_ms = self.io.audio_clock().saturating_sub(start + len as u64)
                            as f64
                            / self.rate
                            * 1000.0;
                        let backlog = avail / len.max(1);
                        let too_old = age_ms > self.controller.settings().ceiling_ms;
                        if too_old || (self.slow_ratio > 1.0 && backlog >= 2) {
                            let mut sink = std::mem::take(&mut self.slots[si].ext_in);
                            let buf = sink.audio_buf();
                            buf.resize(len, 0.0);
                            self.io.read(buf);
                            self.slots[si].ext_in = sink;
                            self.skipped += 1;
                            self.next_frame += 1;
                            continue;
                        }
                        age_s = age_ms / 1000.0;
                    }
                }
                Pacing::FreeRunning => {
                    if matches!(self.io, Io::Offline { .. }) && self.io.input_available() == 0 {
                        return;
                    }
                    let ahead_ms = (self.io.queued() as f64 / self.rate
                        + self.in_flight() as f64 * frame_s)
                        * 1000.0;
                    if self.live() && self.next_seq > 0 && ahead_ms > self.controller.target_ms() {
                        return;
                    }
                }
            }
            let now = self.clock.now();
            let slot = &mut self.slots[si];
            let buf = slot.ext_in.audio_buf();
            buf.resize(len, 0.0);
            let got = self.io.read(buf);
            if self.cfg.pacing == Pacing::InputPaced {
                buf.truncate(got.max(1).min(len));
            }
            slot.seq = Some(self.next_seq);
            slot.frame = self.next_frame;
            slot.start = start;
            slot.len = len;
            // Production time counts from the moment the frame's input was complete.
            slot.ready_at = now - age_s;
            slot.done.iter_mut().for_each(|d| *d = false);
            slot.snaps.iter_mut().for_each(|s| *s = None);
            slot.compute_ms = 0.0;
            self.next_seq += 1;
            self.next_frame += 1;
        }
    }

    /// Picks the next runnable (stage, frame), preferring later stages so frames
    /// in flight drain before new ones start.
    pub fn take_job(&mut self) -> Option<Job> {
        if self.failed || self.stop {
            return None;
        }
        for s in (0..self.stages.len()).rev() {
            let st = &self.stages[s];
            if st.busy || st.node.is_none() {
                continue;
            }
            let Some(si) = self.slots.iter().position(|x| x.seq == Some(st.next_seq)) else {
                continue;
            };
            let ready = st.sources.iter().all(|src| match src {
                Source::External => true,
                Source::Stage { stage, .. } => self.slots[si].done[*stage],
            });
            if !ready {
                continue;
            }
            let snap = self.knobs.snapshot();
            let st = &mut self.stages[s];
            st.busy = true;
            let mut ins = std::mem::take(&mut st.ins);
            let outs = std::mem::take(&mut st.outs);
            let slot = &mut self.slots[si];
            swap_inputs(&st.sources, &mut ins, slot);
            slot.snaps[s] = Some(snap.clone());
            return Some(Job {
                stage: s,
                slot: si,
                frame: slot.frame,
                node: st.node.take().expect("checked above"),
                ins,
                outs,
                snap,
                started: 0.0,
                ended: 0.0,
                result: Ok(()),
            });
        }
        None
    }

    /// Puts a finished job's buffers back and writes every frame that is complete.
    pub fn finish(&mut self, job: Job, worker: usize) {
        let Job {
            stage,
            slot: si,
            frame,
            node,
            mut ins,
            mut outs,
            started,
            ended,
            result,
            ..
        } = job;
        let st = &mut self.stages[stage];
        st.node = Some(node);
        st.busy = false;
        let slot = &mut self.slots[si];
        swap_inputs(&st.sources, &mut ins, slot);
        std::mem::swap(&mut outs, &mut slot.outs[stage]);
        st.ins = ins;
        st.outs = outs;
        let ms = (ended - started) * 1000.0;
        self.rec.stages[stage].1.record_ms(ms);
        self.rec.compute_ms += ms;
        slot.compute_ms += ms;
        if let Some(t) = &mut self.trace {
            t.span(
                stage,
                worker,
                frame,
                started - self.started_at,
                ended - self.started_at,
            );
        }
        if let Err(e) = result {
            // Reported once, with the node's name; the stream goes to gap fill.
            self.errors
                .push(format!("node `{}` failed on frame {frame}: {e}", st.name));
            self.failed = true;
            return;
        }
        slot.done[stage] = true;
        st.next_seq += 1;
        self.update_speed(stage, ms);
        self.write_ready();
    }

    /// Keeps an average of each stage's time; the slowest stage (or, with too
    /// few workers, their sum shared among the workers) bounds throughput.
    fn update_speed(&mut self, stage: usize, ms: f64) {
        let e = &mut self.stage_ema[stage];
        *e = if *e == 0.0 { ms } else { 0.9 * *e + 0.1 * ms };
        let slowest = self.stage_ema.iter().cloned().fold(0.0, f64::max);
        let shared = self.stage_ema.iter().sum::<f64>() / self.cfg.workers.max(1) as f64;
        self.slow_ratio = slowest.max(shared) / (self.cfg.frame_seconds * 1000.0);
    }

    fn write_ready(&mut self) {
        while let Some(si) = self
            .slots
            .iter()
            .position(|s| s.seq == Some(self.next_write) && s.done.iter().all(|d| *d))
        {
            self.write_frame(si);
            self.slots[si].seq = None;
            self.next_write += 1;
        }
    }

    fn write_frame(&mut self, si: usize) {
        let now = self.clock.now();
        let t_rel = now - self.started_at;
        let (os, op) = self.output;
        let audio = std::mem::take(&mut self.slots[si].outs[os][op]);
        let samples: &[f32] = match &audio {
            Payload::Audio(a) => a,
            _ => &[],
        };
        let production_ms = (now - self.slots[si].ready_at) * 1000.0;
        let live = self.live();
        let mut adjust = 0i64;
        let queued = self.io.queued();
        if live {
            let gaps = self.io.gap_samples();
            let gap_delta = gaps - self.last_gap;
            self.last_gap = gaps;
            let lead_ms = if gap_delta > 0 {
                -(gap_delta as f64) / self.rate * 1000.0
            } else {
                queued as f64 / self.rate * 1000.0
            };
            if gap_delta > 0 {
                self.controller.underrun(production_ms);
            }
            let target = self.controller.observe(production_ms, now);
            // Keyed by a static name: no allocation per frame.
            let reason = self.controller.reason();
            *self.rec.reasons.entry(reason.as_str()).or_default() +=
                (reason != LeadReason::Hold) as u64;
            self.rec.lead(t_rel, lead_ms, target);
            self.rec.series[6].push(t_rel, production_ms);
            self.status.lead_ms = lead_ms;
            self.status.target_ms = target;
            if self.cfg.pacing == Pacing::InputPaced {
                let budget_ms = lead_ms.max(0.0) + production_ms;
                let diff = target - budget_ms;
                if diff.abs() > self.cfg.hysteresis_ms {
                    adjust = (diff / 1000.0 * self.rate).round() as i64;
                }
            }
            if let Some(prev) = self.last_write {
                self.rec.itl.record_ms((now - prev) * 1000.0);
                self.rec.series[2].push(t_rel, (now - prev) * 1000.0);
            }
        }
        self.last_write = Some(now);
        let w = self.writer.write(self.io.out(), samples, adjust);
        self.rec.inserted += w.inserted as u64;
        self.rec.dropped += w.dropped as u64;
        if live {
            let slot = &self.slots[si];
            let play_at = self.io.audio_clock() + queued as u64 + w.inserted as u64;
            if self.cfg.pacing == Pacing::InputPaced {
                let captured = slot.start + slot.len as u64;
                let ms = play_at.saturating_sub(captured) as f64 / self.rate * 1000.0;
                self.rec.latency.record_ms(ms);
                self.rec.series[5].push(t_rel, ms);
            }
            // Knob → ear: the first frame whose reading stages all saw the change.
            let mut heard = Vec::new();
            for (k, p) in self.pending.iter().enumerate() {
                let id = &self.knobs.specs()[p.index].id;
                let all_saw = self
                    .stages
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| s.knob_ids.contains(id))
                    .all(|(i, _)| {
                        slot.snaps[i]
                            .as_ref()
                            .and_then(|s| s.entry(id))
                            .is_some_and(|e| e.version >= p.version)
                    });
                if all_saw {
                    heard.push(k);
                    let ms = play_at.saturating_sub(p.changed_at) as f64 / self.rate * 1000.0;
                    self.rec.knob_to_ear(p.binding, ms);
                }
            }
            for k in heard.into_iter().rev() {
                self.pending.remove(k);
            }
            self.rec.series[3].push(t_rel, self.underrun_callbacks() as f64);
        }
        self.slots[si].outs[os][op] = audio;
        self.status.frames = self.next_write + 1;
        self.status.underruns = self.underrun_callbacks();
        self.status.itl_p99_ms = self.rec.itl.quantile_ms(0.99);
        self.status.skipped = self.skipped;
        self.status.failed = self.failed;
    }

    pub fn any_busy(&self) -> bool {
        self.stages.iter().any(|s| s.busy)
    }

    /// Back to a fresh stream: nodes reset, frames in flight dropped, errors cleared.
    /// Call only when no job is running.
    pub fn reset(&mut self) {
        for s in &mut self.stages {
            if let Some(n) = &mut s.node {
                let _ = catch_unwind(AssertUnwindSafe(|| n.reset()));
            }
            s.next_seq = 0;
        }
        for s in &mut self.slots {
            s.seq = None;
        }
        self.next_seq = 0;
        self.next_write = 0;
        self.failed = false;
        self.controller.reset();
        self.writer.reset();
        self.last_write = None;
    }

    pub fn status(&self) -> Status {
        Status {
            failed: self.failed,
            ..self.status
        }
    }

    /// The report so far.
    pub fn report(&self) -> Report {
        let wall = self.clock.now() - self.started_at;
        let audio_seconds = self.next_write as f64 * self.cfg.frame_seconds;
        let (callbacks, samples) = match &self.io {
            Io::Live(g) => {
                let s = g.stats();
                (
                    s.underrun_callbacks
                        .load(std::sync::atomic::Ordering::Relaxed),
                    s.gap_samples.load(std::sync::atomic::Ordering::Relaxed),
                )
            }
            Io::Offline { .. } => (0, 0),
        };
        let first_audio_ms = match &self.io {
            Io::Live(g) => match g
                .stats()
                .first_output_at
                .load(std::sync::atomic::Ordering::Relaxed)
            {
                u64::MAX => None,
                at => Some(at as f64 / self.rate * 1000.0),
            },
            Io::Offline { .. } => None,
        };
        let mut rss = self.rec.rss;
        let now_rss = crate::report::rss_mb();
        rss.end = now_rss;
        rss.peak = rss.peak.max(now_rss);
        let slow = self.slow_ratio > 1.0 || self.skipped > 0;
        Report {
            frames: self.next_write,
            audio_seconds,
            wall_seconds: wall,
            rtf: if audio_seconds > 0.0 { self.rec.compute_ms / 1000.0 / audio_seconds } else { 0.0 },
            first_audio_ms,
            latency_ms: self.rec.latency.percentiles(),
            itl_ms: self.rec.itl.percentiles(),
            stages_ms: self.rec.stages.iter().map(|(n, h)| (n.clone(), h.percentiles())).collect(),
            lead_ms: LeadFigures {
                p50: self.rec.lead.quantile_ms(0.5),
                p99: self.rec.lead.quantile_ms(0.99),
                min: if self.rec.lead_min.is_finite() { self.rec.lead_min } else { 0.0 },
                max: if self.rec.lead_max.is_finite() { self.rec.lead_max } else { 0.0 },
                target_final: self.controller.target_ms(),
            },
            underruns: Underruns { callbacks, samples, after_warmup: callbacks - self.warmup_underruns.unwrap_or(callbacks).min(callbacks) },
            knob_to_ear_ms: self
                .rec
                .knob_to_ear
                .iter()
                .filter(|(_, h)| h.count() > 0)
                .map(|(b, h)| (b.as_str().to_string(), P50Max { p50: h.quantile_ms(0.5), max: h.max_ms() }))
                .collect(),
            rss_mb: rss,
            skipped: Skips {
                frames: self.skipped,
                message: slow.then(|| {
                    format!(
                        "generation runs at {:.2}× real time; {} frames were skipped to keep latency bounded",
                        self.slow_ratio, self.skipped
                    )
                }),
            },
            lead_inserted_ms: self.rec.inserted as f64 / self.rate * 1000.0,
            lead_dropped_ms: self.rec.dropped as f64 / self.rate * 1000.0,
            lead_reasons: self.rec.reasons.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            errors: self.errors.clone(),
            series: ReportSeries {
                lead_ms: self.rec.series[0].points().to_vec(),
                target_ms: self.rec.series[1].points().to_vec(),
                itl_ms: self.rec.series[2].points().to_vec(),
                underruns: self.rec.series[3].points().to_vec(),
                rss_mb: self.rec.series[4].points().to_vec(),
                latency_ms: self.rec.series[5].points().to_vec(),
                production_ms: self.rec.series[6].points().to_vec(),
            },
        }
    }
}
