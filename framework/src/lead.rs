//! The adaptive lead controller.
//!
//! Each frame has a *budget*: the time from the moment it may start (its input
//! was captured, or — free-running — the queue fell to the target) to the moment
//! its first sample must play. The lead measured when the frame is written is
//! `budget − production time`; negative would be an underrun. The controller
//! holds the budget just above a high quantile of recent production times plus a
//! margin: it rises at once (attack) when a slower frame is seen or an underrun
//! happens, and falls slowly (release) toward the floor when the generator has
//! been steady for a window. The lead it aims for is the budget less recent
//! production time.
//!
//! This module is the one home of the policy: the budget, which frames to make
//! or pass over ([`LeadController::admit`]), which finished frames are too late
//! to play ([`LeadController::too_late`]), and how much lead to add or remove
//! before a frame ([`LeadController::adjust_ms`]). The engine schedules and does
//! the I/O; the writer carries the adjustments out inaudibly.

use serde::{Deserialize, Serialize};

use crate::knobs::{Binding, KnobSnapshot, KnobSpec};

/// Number of recent frames the quantile is taken over (8 s of 80 ms frames).
pub const WINDOW_FRAMES: usize = 100;

/// Controller settings; each is also a knob (binding: control) and a preset field.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LeadSettings {
    /// Smallest budget held, ms ("latency mode").
    pub floor_ms: f64,
    /// Largest budget; frames older than this are skipped rather than played late.
    pub ceiling_ms: f64,
    /// Quantile of recent production times to cover (0.5 … 1).
    pub quantile: f64,
    /// Safety margin above the quantile, ms.
    pub margin_ms: f64,
    /// How fast the budget may fall, ms per second.
    pub release_ms_per_s: f64,
}

impl Default for LeadSettings {
    fn default() -> Self {
        Self {
            floor_ms: 40.0,
            ceiling_ms: 2000.0,
            quantile: 0.99,
            // Covers what production times do not show: the OS scheduling the
            // audio and worker threads late (measured: 10 ms let a 2-core box
            // running two benches underrun at the stall quantile, 15 ms did not).
            margin_ms: 15.0,
            release_ms_per_s: 25.0,
        }
    }
}

impl LeadSettings {
    /// The knobs that carry these settings.
    pub fn knobs() -> Vec<KnobSpec> {
        let d = Self::default();
        vec![
            KnobSpec::new(
                "lead_floor_ms",
                "Latency floor",
                "ms",
                0.0,
                500.0,
                d.floor_ms as f32,
                Binding::Control,
            ),
            KnobSpec::new(
                "lead_ceiling_ms",
                "Latency ceiling",
                "ms",
                100.0,
                4000.0,
                d.ceiling_ms as f32,
                Binding::Control,
            ),
            KnobSpec::new(
                "lead_quantile",
                "Lead quantile",
                "",
                0.5,
                1.0,
                d.quantile as f32,
                Binding::Control,
            ),
            KnobSpec::new(
                "lead_margin_ms",
                "Lead margin",
                "ms",
                0.0,
                200.0,
                d.margin_ms as f32,
                Binding::Control,
            ),
            KnobSpec::new(
                "lead_release_ms_per_s",
                "Lead release",
                "ms/s",
                1.0,
                1000.0,
                d.release_ms_per_s as f32,
                Binding::Control,
            ),
        ]
    }

    /// Reads the settings from a knob snapshot (missing knobs keep defaults).
    pub fn from_knobs(k: &KnobSnapshot) -> Self {
        let d = Self::default();
        Self {
            floor_ms: k.get_or("lead_floor_ms", d.floor_ms as f32) as f64,
            ceiling_ms: k.get_or("lead_ceiling_ms", d.ceiling_ms as f32) as f64,
            quantile: k.get_or("lead_quantile", d.quantile as f32) as f64,
            margin_ms: k.get_or("lead_margin_ms", d.margin_ms as f32) as f64,
            release_ms_per_s: k.get_or("lead_release_ms_per_s", d.release_ms_per_s as f32) as f64,
        }
    }
}

/// Why the budget last moved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LeadReason {
    /// Not enough frames seen yet; holding the floor.
    Start,
    /// A frame took longer than the budget covered: raised at once.
    Attack,
    /// An underrun happened: raised at once past that frame's time.
    Underrun,
    /// Steady generator: falling toward the quantile at the release rate.
    Release,
    /// Held at the floor.
    Floor,
    /// Clamped at the ceiling.
    Ceiling,
    /// No change.
    Hold,
}

impl LeadReason {
    /// Stable snake_case name, as used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            LeadReason::Start => "start",
            LeadReason::Attack => "attack",
            LeadReason::Underrun => "underrun",
            LeadReason::Release => "release",
            LeadReason::Floor => "floor",
            LeadReason::Ceiling => "ceiling",
            LeadReason::Hold => "hold",
        }
    }
}

/// What to do with the next frame whose input is complete (input-paced, realtime).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    Make,
    /// Its input is older than the ceiling: generation stood still (a stall,
    /// CPU starvation). Resume at the newest input; report it as a stall.
    ResumeAfterStall,
    /// Generation is slower than real time on average and complete frames are
    /// queuing: make only the newest, so latency stays flat instead of growing.
    SkipToNewest,
}

/// The controller. Fixed-size: a window of recent production times.
#[derive(Clone, Debug)]
pub struct LeadController {
    settings: LeadSettings,
    window: [f64; WINDOW_FRAMES],
    len: usize,
    pos: usize,
    scratch: [f64; WINDOW_FRAMES],
    budget_ms: f64,
    last_t: Option<f64>,
    reason: LeadReason,
}

impl LeadController {
    pub fn new(settings: LeadSettings) -> Self {
        let budget_ms = settings.floor_ms;
        Self {
            settings,
            window: [0.0; WINDOW_FRAMES],
            len: 0,
            pos: 0,
            scratch: [0.0; WINDOW_FRAMES],
            budget_ms,
            last_t: None,
            reason: LeadReason::Start,
        }
    }

    pub fn settings(&self) -> &LeadSettings {
        &self.settings
    }

    /// Changes settings live (knob turn); the budget is re-clamped at once.
    pub fn set_settings(&mut self, s: LeadSettings) {
        if s != self.settings {
            self.settings = s;
            self.budget_ms = self.clamp(self.budget_ms);
        }
    }

    /// The budget it holds: production time plus queued audio that a frame may
    /// take from input to playback, ms.
    pub fn budget_ms(&self) -> f64 {
        self.budget_ms
    }

    pub fn reason(&self) -> LeadReason {
        self.reason
    }

    fn clamp(&self, v: f64) -> f64 {
        v.max(self.settings.floor_ms)
            .min(self.settings.ceiling_ms.max(self.settings.floor_ms))
    }

    /// The configured quantile of the window, ms (0 when empty).
    pub fn window_quantile(&mut self) -> f64 {
        self.quantile(self.settings.quantile)
    }

    /// Quantile `q` of the window, ms (0 when empty).
    fn quantile(&mut self, q: f64) -> f64 {
        if self.len == 0 {
            return 0.0;
        }
        let s = &mut self.scratch[..self.len];
        s.copy_from_slice(&self.window[..self.len]);
        let k = ((q.clamp(0.0, 1.0) * self.len as f64).ceil() as usize).clamp(1, self.len) - 1;
        let (_, v, _) = s.select_nth_unstable_by(k, |a, b| a.total_cmp(b));
        *v
    }

    /// Feeds one frame's production time (ms) observed at time `now` (s);
    /// returns the new budget.
    pub fn observe(&mut self, production_ms: f64, now: f64) -> f64 {
        let p = if production_ms.is_finite() {
            production_ms.max(0.0)
        } else {
            0.0
        };
        self.window[self.pos] = p;
        self.pos = (self.pos + 1) % WINDOW_FRAMES;
        self.len = (self.len + 1).min(WINDOW_FRAMES);
        // Cover the quantile, and at once any single frame slower than the
        // budget (it nearly underran): attack on it, release it slowly.
        let want = self.window_quantile() + self.settings.margin_ms;
        let spike = p + self.settings.margin_ms;
        let want = if spike > self.budget_ms { spike } else { want };
        let dt = self.last_t.map_or(0.0, |t| (now - t).max(0.0));
        self.last_t = Some(now);
        let old = self.budget_ms;
        let next = if want > old {
            self.reason = LeadReason::Attack;
            want
        } else {
            let released = old - self.settings.release_ms_per_s * dt;
            self.reason = if released <= want {
                LeadReason::Hold
            } else {
                LeadReason::Release
            };
            released.max(want)
        };
        self.budget_ms = self.clamp(next);
        if self.budget_ms == self.settings.floor_ms && next <= self.settings.floor_ms {
            self.reason = LeadReason::Floor;
        } else if self.budget_ms < next {
            self.reason = LeadReason::Ceiling;
        }
        if self.budget_ms == old && self.reason == LeadReason::Release {
            self.reason = LeadReason::Hold;
        }
        self.budget_ms
    }

    /// An underrun happened on a frame that took `production_ms`: raise the
    /// budget past it at once.
    pub fn underrun(&mut self, production_ms: f64) -> f64 {
        let want = self.clamp(production_ms + self.settings.margin_ms);
        if want > self.budget_ms {
            self.budget_ms = want;
        }
        self.reason = LeadReason::Underrun;
        self.budget_ms
    }

    /// The lead it aims for: the budget less recent (median) production time, ms.
    pub fn aimed_lead_ms(&mut self) -> f64 {
        (self.budget_ms - self.quantile(0.5)).max(0.0)
    }

    /// The admission rule for a frame whose input completed `age_ms` ago, with
    /// `backlog` complete frames of input waiting, when a frame typically takes
    /// `slow_ratio` × its duration to make (a median, so one stall does not
    /// count as slowness).
    pub fn admit(&self, age_ms: f64, backlog: u64, slow_ratio: f64) -> Admit {
        if age_ms > self.settings.ceiling_ms {
            Admit::ResumeAfterStall
        } else if slow_ratio > 1.0 && backlog >= 2 {
            Admit::SkipToNewest
        } else {
            Admit::Make
        }
    }

    /// Whether a finished frame is too late to play: made after a stall longer
    /// than the ceiling (it is dropped and counted with the stall, not learned).
    pub fn too_late(&self, production_ms: f64) -> bool {
        production_ms > self.settings.ceiling_ms
    }

    /// Lead to add (+) or remove (−) before writing a frame, ms: the frame's
    /// delay from input to playback (`lead + production`, `lead` ≥ 0 after an
    /// underrun) moved to the budget; differences within `hysteresis_ms` are
    /// left alone. Steady output keeps that delay constant by itself, so this
    /// acts only when the budget moves or a gap/stall changed the delay.
    pub fn adjust_ms(&self, lead_ms: f64, production_ms: f64, hysteresis_ms: f64) -> f64 {
        let diff = self.budget_ms - (lead_ms.max(0.0) + production_ms);
        if diff.abs() > hysteresis_ms {
            diff
        } else {
            0.0
        }
    }

    /// Forgets the window (stream reset).
    pub fn reset(&mut self) {
        *self = Self::new(self.settings.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attacks_at_once_and_releases_slowly_to_the_floor() {
        let mut c = LeadController::new(LeadSettings::default());
        let mut t = 0.0;
        for _ in 0..200 {
            t += 0.08;
            c.observe(20.0, t);
        }
        assert_eq!(
            c.budget_ms(),
            40.0,
            "steady 20 ms frames sit on the 40 ms floor"
        );
        t += 0.08;
        assert_eq!(
            c.observe(170.0, t),
            185.0,
            "a stall raises the budget immediately"
        );
        assert_eq!(c.reason(), LeadReason::Attack);
        // One stall in 100 frames is below p99: release starts at once.
        let mut back_at_floor = None;
        for i in 0..400 {
            t += 0.08;
            if c.observe(20.0, t) == 40.0 && back_at_floor.is_none() {
                back_at_floor = Some(i);
            }
        }
        let i = back_at_floor.expect("returns to the floor");
        // 145 ms at 25 ms/s = 5.8 s = 72.5 frames.
        assert!((68..=77).contains(&i), "back at floor after {i} frames");
        // Stalls on every 10th frame are inside p99: the budget holds them.
        for i in 0..300 {
            t += 0.08;
            c.observe(if i % 10 == 9 { 170.0 } else { 20.0 }, t);
        }
        assert_eq!(c.budget_ms(), 185.0);
    }

    #[test]
    fn underrun_raises_and_ceiling_caps() {
        let s = LeadSettings {
            ceiling_ms: 300.0,
            ..Default::default()
        };
        let mut c = LeadController::new(s);
        assert_eq!(c.underrun(120.0), 135.0);
        assert_eq!(c.reason(), LeadReason::Underrun);
        assert_eq!(c.observe(900.0, 0.1), 300.0);
        assert_eq!(c.reason(), LeadReason::Ceiling);
        c.set_settings(LeadSettings {
            ceiling_ms: 200.0,
            ..Default::default()
        });
        assert_eq!(c.budget_ms(), 200.0, "settings apply at once");
    }

    #[test]
    fn quantile_covers_all_but_the_rarest_frames() {
        let mut c = LeadController::new(LeadSettings {
            quantile: 0.9,
            floor_ms: 0.0,
            margin_ms: 0.0,
            ..Default::default()
        });
        for i in 0..100 {
            c.observe(i as f64, 0.0);
        }
        assert_eq!(c.window_quantile(), 89.0);
    }
}

#[cfg(test)]
mod policy_tests {
    use super::*;

    #[test]
    fn stale_frames_resume_slow_generators_skip_and_the_lead_follows_the_budget() {
        let c = LeadController::new(LeadSettings::default());
        assert_eq!(c.admit(10.0, 1, 0.5), Admit::Make);
        assert_eq!(c.admit(2500.0, 60, 0.5), Admit::ResumeAfterStall);
        assert_eq!(c.admit(100.0, 2, 1.2), Admit::SkipToNewest);
        assert_eq!(
            c.admit(100.0, 1, 1.2),
            Admit::Make,
            "one frame waiting is no backlog"
        );
        assert!(c.too_late(2500.0) && !c.too_late(400.0));
        // Budget 40 ms: a frame 20 ms in the making with 415 ms queued sheds 395 ms.
        assert_eq!(c.adjust_ms(415.0, 20.0, 5.0), -395.0);
        assert_eq!(
            c.adjust_ms(-30.0, 20.0, 5.0),
            20.0,
            "after an underrun, grow"
        );
        assert_eq!(c.adjust_ms(17.0, 20.0, 5.0), 0.0, "within hysteresis");
    }
}
