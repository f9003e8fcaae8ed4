//! The endless speech-to-speech driver: what `lm_generate_multistream::State`
//! does, without its fixed step budget.
//!
//! The crate's `State` preallocates `max_step_idx` rows of tokens and fails with
//! "max step-idx reached" (Moshi stops talking after ~5 minutes). A step only
//! ever reads the previous row and the row `acoustic_delay + 1` back, so we keep
//! a ring of `acoustic_delay + 2` rows: memory is constant for any length. The
//! backbone's KV cache is the crate's rotating cache (window = `context`), so
//! per-step cost stops growing once the window is full.
//!
//! The state is shared by the backbone (reads inputs, begins a step) and the
//! code predictor (writes the sampled codes, finishes it): step t+1's input
//! needs step t's codes. The graph declares that as a feedback edge
//! (code_predictor → backbone), so the scheduler never starts step t+1 early
//! and nothing waits; if a graph lacks the edge, beginning a step whose
//! predecessor is unfinished is an error.

use std::sync::Mutex;

use crate::spec::{GenerationSpec, StreamAlignment};

/// Marks a slot no step has written.
pub const UNGENERATED: u32 = u32::MAX;

/// Fixed-size token history of one conversation.
#[derive(Clone, Debug)]
pub struct TokenHistory {
    gen: usize,
    input: usize,
    delay: usize,
    /// Which step reads the user's codes (see [`StreamAlignment`]).
    user_lag: u64,
    pad: u32,
    rows: Vec<Vec<u32>>,
    /// Steps begun (the next step's index).
    begun: u64,
    /// Steps whose codes are written.
    finished: u64,
    last_text: u32,
    text_start: u32,
}

impl TokenHistory {
    pub fn new(g: &GenerationSpec, audio_vocab_size: usize) -> Self {
        let total = g.generated_audio_codebooks + g.input_audio_codebooks;
        Self {
            gen: g.generated_audio_codebooks,
            input: g.input_audio_codebooks,
            delay: g.acoustic_delay,
            user_lag: match g.alignment {
                StreamAlignment::MoshiCrate => 1,
                StreamAlignment::Pytorch => 0,
            },
            pad: audio_vocab_size as u32 - 1,
            rows: vec![vec![UNGENERATED; total]; g.acoustic_delay + 2],
            begun: 0,
            finished: 0,
            last_text: g.text_start_token,
            text_start: g.text_start_token,
        }
    }

    fn row(&self, step: u64) -> &[u32] {
        &self.rows[(step % self.rows.len() as u64) as usize]
    }
    fn row_mut(&mut self, step: u64) -> &mut Vec<u32> {
        let n = self.rows.len() as u64;
        &mut self.rows[(step % n) as usize]
    }

    pub fn step(&self) -> u64 {
        self.begun
    }

    /// Number of rows kept: independent of stream length.
    pub fn capacity(&self) -> usize {
        self.rows.len()
    }

    /// Starts step `self.step()` with the user's codes; fills `audio_in` with
    /// the backbone's audio inputs and returns its text input, exactly as
    /// `State::step_` computes them.
    pub fn begin(&mut self, user: &[u32], audio_in: &mut Vec<u32>) -> Result<u32, String> {
        if self.begun != self.finished {
            return Err(format!(
                "step {} begun before step {} finished",
                self.begun, self.finished
            ));
        }
        let s = self.begun;
        let (gen, input, pad) = (self.gen, self.input, self.pad);
        let row = self.row_mut(s);
        row.fill(UNGENERATED);
        for c in 0..input {
            row[gen + c] = user.get(c).copied().unwrap_or(pad);
        }
        audio_in.clear();
        for cb in 0..gen + input {
            // The model's own codes come from the previous step (acoustic
            // ones `delay` frames late); the user's `user_lag` steps later.
            let lag = if cb < gen { 1 } else { self.user_lag };
            let t = if cb == 0 || cb == gen {
                if s == 0 {
                    pad
                } else {
                    self.row(s - lag)[cb]
                }
            } else if s <= self.delay as u64 {
                pad
            } else {
                self.row(s - self.delay as u64 - lag)[cb]
            };
            if t == UNGENERATED {
                return Err(format!(
                    "internal error: token of codebook {cb} missing at step {s}"
                ));
            }
            audio_in.push(t);
        }
        self.begun += 1;
        Ok(self.last_text)
    }

    /// Finishes step `step` with its text token and sampled codes; fills
    /// `frame` with the codes of the frame that became complete (the one
    /// `acoustic_delay` steps back) and returns whether there is one.
    pub fn finish(
        &mut self,
        step: u64,
        text: u32,
        sampled: &[u32],
        frame: &mut Vec<u32>,
    ) -> Result<bool, String> {
        if step != self.finished || self.begun != step + 1 {
            return Err(format!(
                "finishing step {step} out of order (finished {}, begun {})",
                self.finished, self.begun
            ));
        }
        for c in 0..self.gen {
            let d = if c == 0 { 0 } else { self.delay as u64 };
            let tok = sampled.get(c).copied().unwrap_or(self.pad);
            self.row_mut(step.saturating_sub(d))[c] = tok;
        }
        self.last_text = text;
        self.finished += 1;
        frame.clear();
        if step + 1 <= self.delay as u64 {
            return Ok(false);
        }
        let row = self.row(step - self.delay as u64);
        if row.iter().any(|&t| t >= self.pad) {
            return Ok(false);
        }
        frame.extend_from_slice(&row[..self.gen]);
        Ok(true)
    }

    pub fn reset(&mut self) {
        for r in &mut self.rows {
            r.fill(UNGENERATED);
        }
        self.begun = 0;
        self.finished = 0;
        self.last_text = self.text_start;
    }
}

/// A conversation shared by the backbone and code-predictor nodes. The lock is
/// never held across model work and never contended for long: the two nodes
/// take turns (see the module docs).
pub struct Conversation {
    state: Mutex<(TokenHistory, u64)>,
}

impl Conversation {
    pub fn new(history: TokenHistory) -> Self {
        Self {
            state: Mutex::new((history, 0)),
        }
    }

    /// Runs `f` on the history and the reset epoch (to begin a step; it fails
    /// if the previous step is unfinished).
    pub fn begin<R>(&self, f: impl FnOnce(&mut TokenHistory, u64) -> R) -> R {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let epoch = guard.1;
        f(&mut guard.0, epoch)
    }

    /// Runs `f` on the history if `epoch` is still current.
    pub fn finish<R>(&self, epoch: u64, f: impl FnOnce(&mut TokenHistory) -> R) -> Option<R> {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        (guard.1 == epoch).then(|| f(&mut guard.0))
    }

    /// Forgets the conversation; steps in flight from before are dropped.
    pub fn reset(&self) {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        guard.0.reset();
        guard.1 += 1;
    }

    pub fn step(&self) -> u64 {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .step()
    }
}
