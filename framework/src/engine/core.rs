//! The engine's shared state and the scheduling decisions made on it: which
//! frame to admit, which (stage, frame) job to run next, and what to do with a
//! finished frame. The threaded pool and the simulated loop both drive this.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use crate::clock::Clock;
use crate::endpoint::GenSide;
use crate::graph::{Feedback, Graph, Source, Stage};
use crate::knobs::{Binding, KnobBus, KnobSnapshot};
use crate::lead::{Admit, LeadController, LeadReason, LeadSettings};
use crate::node::{FrameContext, Node, Payload};
use crate::report::{LeadFigures, P50Max, Recorder, Report, ReportSeries, Skips, Underruns};
use crate::trace::Trace;
use crate::writer::{AudioOut, OutputWriter};

use super::stalls::StallLog;
use super::{EngineConfig, Pacing, RunMode};

/// Where captured audio comes from and generated audio goes.
pub(super) enum Io {
    Live(GenSide),
    Offline { input: Vec<f32>, output: Vec<f32> },
}

impl Io {
    /// Position (audio clock, or index into the offline input) of the next
    /// sample to be captured.
    fn input_end(&self) -> u64 {
        match self {
            Io::Live(g) => g.input_clock(),
            Io::Offline { input, .. } => input.len() as u64,
        }
    }

    /// Copies input from position `from` on; fails if it is no longer held.
    fn read_at(&self, from: u64, buf: &mut [f32]) -> Result<usize, ()> {
        match self {
            Io::Live(g) => g.read_input_at(from, buf).map_err(|_| ()),
            Io::Offline { input, .. } => {
                let from = (from as usize).min(input.len());
                let n = buf.len().min(input.len() - from);
                buf[..n].copy_from_slice(&input[from..from + n]);
                Ok(n)
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

    /// The playhead: position of the next sample to be played.
    fn audio_clock(&self) -> u64 {
        match self {
            Io::Live(g) => g.stats().clock(),
            Io::Offline { output, .. } => output.len() as u64,
        }
    }

    /// Audio clock at which the next sample written will play (live only).
    fn next_write_plays_at(&self) -> Option<u64> {
        match self {
            Io::Live(g) => Some(g.next_write_plays_at()),
            Io::Offline { .. } => None,
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

    fn count_dropped_input(&self, samples: u64) {
        if let Io::Live(g) = self {
            g.count_dropped_input(samples);
        }
    }
}

/// Recent per-frame times of one stage (fixed size), for a speed estimate that
/// one stall cannot move: the median.
struct RecentTimes {
    ms: [f64; 32],
    len: usize,
    pos: usize,
}

impl RecentTimes {
    fn new() -> Self {
        Self {
            ms: [0.0; 32],
            len: 0,
            pos: 0,
        }
    }

    fn push(&mut self, ms: f64) {
        self.ms[self.pos] = ms;
        self.pos = (self.pos + 1) % self.ms.len();
        self.len = (self.len + 1).min(self.ms.len());
    }

    fn median(&self) -> f64 {
        if self.len == 0 {
            return 0.0;
        }
        let mut s = self.ms;
        let s = &mut s[..self.len];
        let k = self.len / 2;
        *s.select_nth_unstable_by(k, |a, b| a.total_cmp(b)).1
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
            Err(p) => Err(format!("panicked: {}", panic_message(&*p))),
        };
        self.ended = clock.now();
    }
}

/// A fixed delay is held to within this (seconds; 1 ms).
const FIXED_SLACK_S: f64 = 0.001;

/// The text of a panic payload (empty if it carried none).
pub(super) fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_default()
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
    /// The controller's budget: production time plus queued audio a frame may take.
    pub budget_ms: f64,
    /// The lead it aims for: budget less recent production time.
    pub aim_ms: f64,
    pub underruns: u64,
    pub itl_p99_ms: f64,
    pub skipped: u64,
    pub failed: bool,
    /// Fixed delay only: frames that missed their place (came later than the
    /// fixed delay allows) since the engine started. Rising means the fixed
    /// latency is too short for this model on this machine.
    pub late_frames: u64,
}

pub(super) struct Core {
    pub cfg: EngineConfig,
    pub rate: f64,
    stages: Vec<StageState>,
    feedback: Vec<Feedback>,
    slots: Vec<Slot>,
    output: (usize, usize),
    next_seq: u64,
    /// Frame index handed to nodes (counts passed-over frames too).
    next_frame: u64,
    next_write: u64,
    /// The frame clock: the next frame's input starts at audio-clock position
    /// `origin + frame_bounds(rel)`. Re-anchored at start, reset and after a stall.
    origin: u64,
    rel: u64,
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
    /// Frames passed over because generation is slower than real time.
    skipped: u64,
    stalls: StallLog,
    slow_ratio: f64,
    stage_times: Vec<RecentTimes>,
    started_at: f64,
    last_rss: f64,
    /// Compute time of each frame written during warm-up (None when live).
    warming: Option<Vec<f64>>,
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
        let feedback = graph.feedback;
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
        let mut core = Self {
            rate,
            stages,
            feedback,
            slots,
            output: graph.output,
            next_seq: 0,
            next_frame: 0,
            next_write: 0,
            origin: 0,
            rel: 0,
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
            stalls: StallLog::default(),
            slow_ratio: 0.0,
            stage_times: (0..n).map(|_| RecentTimes::new()).collect(),
            started_at: now,
            last_rss: now,
            warming: None,
            failed: false,
            errors: Vec::new(),
            stop: false,
            status: Status::default(),
            clock,
            cfg,
        };
        core.anchor();
        core
    }

    fn offline_paced(&self) -> bool {
        self.live() && self.cfg.mode == RunMode::Offline
    }

    /// Realtime on a live endpoint: skipping, stall drops and lead changes apply.
    fn realtime(&self) -> bool {
        self.live() && self.cfg.mode == RunMode::Realtime
    }

    /// Starts the frame clock at the newest input: the newest complete frame
    /// (realtime), or the playhead followed by D samples of silence (offline
    /// pacing, so output lines up with input D samples later). Earlier input
    /// belongs to nobody: it is not counted as dropped.
    fn anchor(&mut self) {
        self.rel = 0;
        if !self.live() {
            self.origin = 0;
        } else if self.offline_paced() {
            self.origin = self.io.audio_clock();
            let d = self.cfg.offline_delay_samples(self.rate);
            self.io.out().write(&vec![0.0; d]);
        } else {
            let len = frame_bounds(0, self.cfg.frame_seconds, self.rate).1 as u64;
            self.origin = self.io.input_end().saturating_sub(len);
        }
    }

    /// Audio-clock position and length of the next frame's input.
    fn next_bounds(&self) -> (u64, usize) {
        let (a, len) = frame_bounds(self.rel, self.cfg.frame_seconds, self.rate);
        (self.origin + a, len)
    }

    /// Passes over the input from the next frame up to the newest complete
    /// frame, so the stream resumes at the newest input; returns how many
    /// frames were passed over.
    fn resume_at_newest(&mut self) -> u64 {
        let (start, len) = self.next_bounds();
        let newest = self.io.input_end().saturating_sub(len as u64).max(start);
        self.io.count_dropped_input(newest - start);
        let frames = ((newest - start) as f64 / len.max(1) as f64)
            .round()
            .max(1.0) as u64;
        self.next_frame += frames;
        self.origin = newest;
        self.rel = 0;
        frames
    }

    fn live(&self) -> bool {
        matches!(self.io, Io::Live(_))
    }

    fn in_flight(&self) -> usize {
        self.slots.iter().filter(|s| s.seq.is_some()).count()
    }

    /// Offline: all input consumed and every frame written, or a node failed.
    pub fn finished(&self) -> bool {
        match &self.io {
            Io::Offline { input, .. } => {
                self.failed || (self.next_bounds().0 >= input.len() as u64 && self.in_flight() == 0)
            }
            Io::Live(_) => false,
        }
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
            let (start, len) = self.next_bounds();
            let mut age_s = 0.0;
            let newest = self.io.input_end();
            match self.cfg.pacing {
                Pacing::InputPaced => {
                    // Offline renders make the last, partial frame too.
                    let last_partial = !self.live() && newest > start;
                    if start + (len as u64) > newest && !last_partial {
                        return;
                    }
                    if self.realtime() {
                        let age_ms = (newest - (start + len as u64)) as f64 / self.rate * 1000.0;
                        let backlog = (newest - start) / len.max(1) as u64;
                        match self.controller.admit(age_ms, backlog, self.slow_ratio) {
                            Admit::Make => age_s = age_ms / 1000.0,
                            Admit::ResumeAfterStall => {
                                let frames = self.resume_at_newest();
                                let at = self.clock.now() - self.started_at;
                                self.stalls.dropped(at, frames, age_ms / 1000.0);
                                continue;
                            }
                            Admit::SkipToNewest => {
                                self.skipped += self.resume_at_newest();
                                continue;
                            }
                        }
                    }
                }
                Pacing::FreeRunning => {
                    if !self.live() && newest <= start {
                        return;
                    }
                    let ahead_ms = (self.io.queued() as f64 / self.rate
                        + self.in_flight() as f64 * frame_s)
                        * 1000.0;
                    if self.live() && self.next_seq > 0 && ahead_ms > self.controller.budget_ms() {
                        return;
                    }
                }
            }
            let now = self.clock.now();
            let mut input = std::mem::take(&mut self.slots[si].ext_in);
            let buf = input.audio_buf();
            buf.resize(len, 0.0);
            let read = self.io.read_at(start, buf);
            match read {
                // Input-paced frames are what was captured (offline: the last one
                // may be short); free-running ones are zero-padded.
                Ok(got) if self.cfg.pacing == Pacing::InputPaced => buf.truncate(got.max(1)),
                Ok(_) => {}
                Err(()) => buf.fill(0.0), // possibly torn: not input
            }
            self.slots[si].ext_in = input;
            match read {
                Ok(_) => {}
                // Overwritten: generation fell more than the input ring behind.
                Err(()) if self.cfg.pacing == Pacing::InputPaced => {
                    let frames = self.resume_at_newest();
                    let at = now - self.started_at;
                    self.stalls
                        .dropped(at, frames, (newest - start) as f64 / self.rate);
                    continue;
                }
                Err(()) => {}
            }
            let slot = &mut self.slots[si];
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
            self.rel += 1;
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
            // Declared feedback: frame q waits until `from` has finished frame q-1.
            let fed = self
                .feedback
                .iter()
                .filter(|f| f.to == s)
                .all(|f| self.stages[f.from].next_seq >= st.next_seq);
            if !ready || !fed {
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
            let e = format!("node `{}` failed on frame {frame}: {e}", st.name);
            self.fail(e);
            return;
        }
        slot.done[stage] = true;
        st.next_seq += 1;
        self.update_speed(stage, ms);
        self.write_ready();
    }

    /// Keeps each stage's typical (median) time; the slowest stage (or, with too
    /// few workers, their sum shared among the workers) bounds throughput. The
    /// median, so that a stall is not taken for a slow generator.
    fn update_speed(&mut self, stage: usize, ms: f64) {
        self.stage_times[stage].push(ms);
        let medians = self.stage_times.iter().map(RecentTimes::median);
        let slowest = medians.clone().fold(0.0, f64::max);
        let shared = medians.sum::<f64>() / self.cfg.workers.max(1) as f64;
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

    /// Fixed delay only: how far frame `si` must move to start playing exactly
    /// the fixed delay after its input (> 0: gap fill before it, < 0: drop its
    /// first samples). Shifts within [`FIXED_SLACK_S`] are left alone, so the
    /// ±1-sample frame lengths of a resampled graph never cause a fix-up.
    fn fixed_shift(&self, si: usize) -> Option<i64> {
        let d = self.cfg.fixed_delay_samples?;
        if !self.realtime() || self.cfg.pacing != Pacing::InputPaced {
            return None;
        }
        let plays_at = self.io.next_write_plays_at()?;
        let want = self.slots[si].start + d;
        let shift = want.wrapping_sub(plays_at) as i64;
        let slack = (FIXED_SLACK_S * self.rate).round() as i64;
        Some(if shift.abs() <= slack { 0 } else { shift })
    }

    fn write_frame(&mut self, si: usize) {
        if let Some(w) = &mut self.warming {
            w.push(self.slots[si].compute_ms);
            return;
        }
        let now = self.clock.now();
        let t_rel = now - self.started_at;
        let production_ms = (now - self.slots[si].ready_at) * 1000.0;
        // Made after a stall longer than the ceiling: dropped, and counted with
        // the stall rather than taught to the controller.
        if self.realtime()
            && self.cfg.pacing == Pacing::InputPaced
            && self.controller.too_late(production_ms)
        {
            self.stalls.dropped(t_rel, 1, production_ms / 1000.0);
            return;
        }
        self.stalls.resumed();
        let (os, op) = self.output;
        let audio = std::mem::take(&mut self.slots[si].outs[os][op]);
        let samples: &[f32] = match &audio {
            Payload::Audio(a) => a,
            _ => &[],
        };
        let live = self.realtime();
        let fixed = self.fixed_shift(si);
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
            let budget = self.controller.observe(production_ms, now);
            let aim = self.controller.aimed_lead_ms();
            // Keyed by a static name: no allocation per frame.
            let reason = self.controller.reason();
            *self.rec.reasons.entry(reason.as_str()).or_default() +=
                (reason != LeadReason::Hold) as u64;
            self.rec.lead(t_rel, lead_ms, budget, aim);
            self.rec.production(t_rel, production_ms);
            self.status.lead_ms = lead_ms;
            self.status.budget_ms = budget;
            self.status.aim_ms = aim;
            if let Some(shift) = fixed {
                // Fixed delay: the output's place is given; nothing adapts it.
                adjust = shift;
                if shift < 0 {
                    self.status.late_frames += 1;
                }
            } else if self.cfg.pacing == Pacing::InputPaced {
                let ms = self
                    .controller
                    .adjust_ms(lead_ms, production_ms, self.cfg.hysteresis_ms);
                adjust = (ms / 1000.0 * self.rate).round() as i64;
            }
            if let Some(prev) = self.last_write {
                self.rec.itl.record_ms((now - prev) * 1000.0);
                self.rec.series[2].push(t_rel, (now - prev) * 1000.0);
            }
        }
        self.last_write = Some(now);
        let w = if fixed.is_some() {
            self.writer.write_at(self.io.out(), samples, adjust)
        } else {
            self.writer.write(self.io.out(), samples, adjust)
        };
        self.rec.inserted += w.inserted as u64;
        self.rec.dropped += w.dropped as u64;
        self.rec.cut += w.cut as u64;
        if self.live() {
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

    /// Stops generation with an error (kept for the report; cleared by reset).
    pub fn fail(&mut self, error: String) {
        // Bounded: a stream that keeps failing and being reset keeps the first ones.
        if self.errors.len() < 64 {
            self.errors.push(error);
        }
        self.failed = true;
    }

    pub fn any_busy(&self) -> bool {
        self.stages.iter().any(|s| s.busy)
    }

    /// Warm start: runs `frames` frames of silence through the graph on the
    /// calling thread (off the audio path), teaches the lead controller their
    /// production times, then resets the nodes and re-anchors the stream. The
    /// controller keeps what it learned, so the first live frames are covered
    /// by measurements instead of by underruns. Production time here is each
    /// frame's compute time (stages run one after another on one thread).
    pub fn warm_up(&mut self, frames: usize) {
        if frames == 0 || !self.realtime() {
            return;
        }
        let len = frame_bounds(0, self.cfg.frame_seconds, self.rate).1;
        let silence = Io::Offline {
            input: vec![0.0; frames * len],
            output: Vec::new(),
        };
        let live = std::mem::replace(&mut self.io, silence);
        self.origin = 0;
        self.rel = 0;
        self.warming = Some(Vec::with_capacity(frames));
        while !self.finished() {
            self.admit();
            let Some(mut job) = self.take_job() else {
                break;
            };
            job.run(self.clock.as_ref());
            self.finish(job, 0);
        }
        self.io = live;
        let times = self.warming.take().unwrap_or_default();
        if self.failed {
            // Reported like any failure; `reset` recovers.
            return;
        }
        let frame_s = self.cfg.frame_seconds;
        let t0 = self.clock.now();
        for (k, ms) in times.iter().enumerate() {
            self.controller.observe(*ms, t0 + k as f64 * frame_s);
        }
        // Live figures start now: warm-up frames are not part of the report.
        self.rec = Recorder::new(
            &self
                .stages
                .iter()
                .map(|s| s.name.clone())
                .collect::<Vec<_>>(),
        );
        self.started_at = self.clock.now();
        self.last_rss = self.started_at;
        self.reset_stream();
    }

    /// Back to a fresh stream: nodes reset, frames in flight dropped, errors cleared.
    /// Call only when no job is running.
    pub fn reset(&mut self) {
        self.controller.reset();
        self.reset_stream();
    }

    /// Nodes, frames in flight and writer back to a fresh stream, re-anchored;
    /// the controller is left as it is.
    fn reset_stream(&mut self) {
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
        self.writer.reset();
        self.last_write = None;
        self.stalls.resumed();
        self.anchor();
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
        let slow = self.skipped > 0;
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
                budget_final: self.controller.budget_ms(),
                aim_final: self.status.aim_ms,
                smallest_safe_p50: self.rec.smallest_safe_lead_p50(),
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
            stalls: self.stalls.report(),
            lead_inserted_ms: self.rec.inserted as f64 / self.rate * 1000.0,
            lead_dropped_ms: self.rec.dropped as f64 / self.rate * 1000.0,
            lead_cut_ms: self.rec.cut as f64 / self.rate * 1000.0,
            lead_reasons: self.rec.reasons.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            errors: self.errors.clone(),
            series: ReportSeries {
                lead_ms: self.rec.series[0].points().to_vec(),
                budget_ms: self.rec.series[1].points().to_vec(),
                aim_ms: self.rec.series[7].points().to_vec(),
                itl_ms: self.rec.series[2].points().to_vec(),
                underruns: self.rec.series[3].points().to_vec(),
                rss_mb: self.rec.series[4].points().to_vec(),
                latency_ms: self.rec.series[5].points().to_vec(),
                production_ms: self.rec.series[6].points().to_vec(),
            },
        }
    }
}
