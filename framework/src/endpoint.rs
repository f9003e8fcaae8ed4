//! The audio endpoint: the only part of Antiphon the audio thread touches.
//!
//! [`endpoint`] makes a pair:
//!
//! * [`AudioSide`], owned by the audio callback. Per block it mixes the input down
//!   to mono, sanitises it and pushes it into a fixed-capacity input ring; pulls
//!   generated audio from a fixed-capacity output ring (or gap-fills when it is
//!   empty); applies the output-stage knobs (gain, dry/wet, bypass)
//!   sample-accurately with smoothing; and records counters. It never allocates,
//!   locks, makes a syscall, logs, or loops beyond the block length.
//! * [`GenSide`], owned by generation: reads captured input, writes generated
//!   audio, and sees how much audio is queued ahead of the playhead (the lead).
//!
//! Both rings hold mono `f32` samples at the device rate. The input ring is an
//! [`input_ring`](crate::input_ring) addressed by audio-clock position (overflow
//! loses the oldest input); the output ring is an `rtrb` SPSC queue.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtrb::{Consumer, Producer, RingBuffer};

use crate::denormals::DenormalGuard;
use crate::gapfill::GapFill;
use crate::input_ring::{input_ring, InputReader, InputWriter, Overwritten};
use crate::knobs::{Binding, KnobSpec};
use crate::smoothing::Smoothed;
use crate::telemetry::Histogram;

/// Largest sub-block processed at once; longer host blocks are split, so any
/// block size works with fixed scratch memory.
const CHUNK: usize = 512;

/// Endpoint settings, fixed for the endpoint's life (make a new one on a
/// sample-rate change).
#[derive(Clone, Debug)]
pub struct EndpointConfig {
    /// Device sample rate in Hz (fractional allowed), 1 Hz … 1 MHz.
    pub sample_rate: f64,
    /// Input ring capacity in seconds of audio (older input is overwritten).
    pub input_seconds: f64,
    /// Output ring capacity in seconds of audio (the most lead that can exist).
    pub output_seconds: f64,
    /// Ramp time of gain, dry/wet and bypass changes.
    pub smoothing_ms: f32,
    /// Fade out/in length around a gap fill.
    pub crossfade_ms: f32,
    /// Delay of the dry path, in samples, on the first
    /// [`dry_delay_channels`](Self::dry_delay_channels) channels (0: none). A
    /// plugin reporting a fixed latency delays its dry signal by the same
    /// amount, so dry and wet stay aligned after the host's compensation.
    pub dry_delay_samples: usize,
    /// How many channels the dry delay covers (its memory is allocated here).
    pub dry_delay_channels: usize,
}

impl EndpointConfig {
    pub fn new(sample_rate: f64) -> Self {
        Self {
            sample_rate,
            input_seconds: 2.0,
            output_seconds: 4.0,
            smoothing_ms: 5.0,
            crossfade_ms: 3.0,
            dry_delay_samples: 0,
            dry_delay_channels: 0,
        }
    }

    fn samples(&self, seconds: f64) -> usize {
        (self.rate() * seconds)
            .ceil()
            .clamp(CHUNK as f64, 64.0 * 1024.0 * 1024.0) as usize
    }

    /// The sample rate, sanitised (a nonsense rate becomes 48 kHz rather than a panic).
    pub fn rate(&self) -> f64 {
        if self.sample_rate.is_finite() && (1.0..=1.0e6).contains(&self.sample_rate) {
            self.sample_rate
        } else {
            48_000.0
        }
    }
}

/// Output-stage parameters the audio thread applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputParam {
    /// Output gain in dB (−∞ … +24; ≤ −100 dB is silence).
    GainDb,
    /// Dry/wet mix, 0 = input only, 1 = model only.
    Mix,
    /// Bypass: 1 = pass the input through untouched (crossfaded), 0 = process.
    Bypass,
}

impl OutputParam {
    pub const ALL: [OutputParam; 3] = [OutputParam::GainDb, OutputParam::Mix, OutputParam::Bypass];

    /// The knob id that drives this parameter (presets, plugin, host scripts).
    pub fn knob_id(self) -> &'static str {
        match self {
            OutputParam::GainDb => "gain_db",
            OutputParam::Mix => "mix",
            OutputParam::Bypass => "bypass",
        }
    }

    /// The parameter a knob id drives, if it is an output-stage knob.
    pub fn from_knob_id(id: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.knob_id() == id)
    }

    /// The knob's spec: range, unit, default; bound to the audio thread.
    pub fn knob_spec(self) -> KnobSpec {
        match self {
            OutputParam::GainDb => KnobSpec::new(
                "gain_db",
                "Output gain",
                "dB",
                -60.0,
                12.0,
                0.0,
                Binding::AudioThread,
            ),
            OutputParam::Mix => {
                KnobSpec::new("mix", "Dry/wet", "", 0.0, 1.0, 1.0, Binding::AudioThread)
            }
            OutputParam::Bypass => {
                KnobSpec::toggle("bypass", "Bypass", false, Binding::AudioThread)
            }
        }
    }
}

/// The output-stage knobs the endpoint applies on the audio thread.
pub fn output_knobs() -> Vec<KnobSpec> {
    OutputParam::ALL
        .into_iter()
        .map(OutputParam::knob_spec)
        .collect()
}

/// A timestamped output-knob change: takes effect at sample `offset` of the block.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OutputEvent {
    pub offset: u32,
    pub param: OutputParam,
    pub value: f32,
}

/// Counters shared between the audio thread (writer) and everyone else (readers).
/// All plain atomics: the audio thread only ever stores.
#[derive(Debug, Default)]
pub struct EndpointStats {
    /// Audio clock: samples processed since creation (the timestamp base of knob
    /// changes). Stored after every sub-block, so it is the position of the next
    /// sample to be played.
    pub samples: AtomicU64,
    pub callbacks: AtomicU64,
    /// Callbacks in which at least one sample was gap-filled after audio had started.
    pub underrun_callbacks: AtomicU64,
    /// Samples played from gap fill after audio had started.
    pub gap_samples: AtomicU64,
    /// Input samples generation never read: overwritten before it got to them,
    /// or passed over to resume at the newest input (counted by generation).
    pub input_dropped: AtomicU64,
    /// NaN/±Inf input samples replaced by 0.
    pub nonfinite_in: AtomicU64,
    /// NaN/±Inf generated samples replaced by 0.
    pub nonfinite_out: AtomicU64,
    /// Generated samples queued ahead of the playhead after the last callback.
    pub queued: AtomicU64,
    /// Audio clock of the first generated sample played (u64::MAX until then).
    pub first_output_at: AtomicU64,
    /// Set once generated audio has been played (underruns count from then).
    pub started: AtomicBool,
    /// The audio clock minus the generated samples taken from the ring so far
    /// (wrapping): the `k`-th sample ever written to the ring plays at audio
    /// clock `k + ring_offset`, as long as no gap comes before it. It changes
    /// only when a sample plays without ring data (before the first output,
    /// gap fill — both only while the ring is empty) or a reset discards queued
    /// audio. Stored with `samples`, so a fixed output delay can be held
    /// exactly ([`GenSide::next_write_plays_at`]).
    pub ring_offset: AtomicU64,
    /// Callback duration histogram (ms).
    pub callback_ms: Histogram,
}

impl EndpointStats {
    fn new() -> Self {
        Self {
            first_output_at: AtomicU64::new(u64::MAX),
            ..Default::default()
        }
    }

    fn bump(c: &AtomicU64, by: u64) {
        if by > 0 {
            c.store(c.load(Ordering::Relaxed) + by, Ordering::Relaxed);
        }
    }

    /// Current audio clock in samples.
    pub fn clock(&self) -> u64 {
        self.samples.load(Ordering::Acquire)
    }
}

/// The audio-thread half. See the module docs.
pub struct AudioSide {
    rate: f64,
    to_gen: InputWriter,
    from_gen: Consumer<f32>,
    gain: Smoothed,
    mix: Smoothed,
    bypass: Smoothed,
    gap: GapFill,
    stats: Arc<EndpointStats>,
    mono: Box<[f32; CHUNK]>,
    wet: Box<[f32; CHUNK]>,
    started: bool,
    /// Generated samples taken from the ring (played or discarded) so far.
    ring_read: u64,
    dry_delay: DryDelay,
}

/// A fixed delay of the dry path: one circular buffer per channel, allocated
/// once. (Its own code: a few lines, and no delay-line crate is
/// allocation-free by contract.)
struct DryDelay {
    lines: Vec<Box<[f32]>>,
    pos: usize,
}

impl DryDelay {
    fn new(samples: usize, channels: usize) -> Self {
        let lines = if samples == 0 {
            Vec::new()
        } else {
            (0..channels)
                .map(|_| vec![0.0; samples].into_boxed_slice())
                .collect()
        };
        Self { lines, pos: 0 }
    }

    /// `x` in on channel `c`, the sample from `len` samples ago out (channels
    /// past the delay's count pass through).
    #[inline]
    fn tap(&mut self, c: usize, x: f32) -> f32 {
        match self.lines.get_mut(c) {
            Some(line) => std::mem::replace(&mut line[self.pos], x),
            None => x,
        }
    }

    /// One sample later on every channel.
    #[inline]
    fn advance(&mut self) {
        if let Some(len) = self.lines.first().map(|l| l.len()) {
            self.pos = (self.pos + 1) % len;
        }
    }

    fn clear(&mut self) {
        self.lines.iter_mut().for_each(|l| l.fill(0.0));
    }
}

/// The generation half. See the module docs.
pub struct GenSide {
    from_audio: InputReader,
    /// Next position [`GenSide::read_input`] reads from.
    read_pos: u64,
    to_audio: Producer<f32>,
    stats: Arc<EndpointStats>,
    rate: f64,
    /// Generated samples written to the ring so far.
    ring_written: u64,
}

/// Creates a connected endpoint pair. All memory is allocated here, none later.
pub fn endpoint(cfg: &EndpointConfig) -> (AudioSide, GenSide) {
    let rate = cfg.rate();
    let (in_tx, in_rx) = input_ring(cfg.samples(cfg.input_seconds));
    let (out_tx, out_rx) = RingBuffer::new(cfg.samples(cfg.output_seconds));
    let stats = Arc::new(EndpointStats::new());
    let ramp = Smoothed::ramp_for(cfg.smoothing_ms, rate);
    let audio = AudioSide {
        rate,
        to_gen: in_tx,
        from_gen: out_rx,
        gain: Smoothed::new(1.0, ramp),
        mix: Smoothed::new(1.0, ramp),
        bypass: Smoothed::new(0.0, ramp),
        gap: GapFill::new(Smoothed::ramp_for(cfg.crossfade_ms, rate).max(1)),
        stats: stats.clone(),
        mono: Box::new([0.0; CHUNK]),
        wet: Box::new([0.0; CHUNK]),
        started: false,
        ring_read: 0,
        dry_delay: DryDelay::new(cfg.dry_delay_samples, cfg.dry_delay_channels),
    };
    let gen = GenSide {
        from_audio: in_rx,
        read_pos: 0,
        to_audio: out_tx,
        stats,
        rate,
        ring_written: 0,
    };
    (audio, gen)
}

#[inline]
fn db_to_gain(db: f32) -> f32 {
    if db <= -100.0 || db.is_nan() {
        0.0
    } else {
        10f32.powf(db.min(24.0) / 20.0)
    }
}

#[inline]
fn finite_or_zero(x: f32, bad: &mut u64) -> f32 {
    if x.is_finite() {
        x
    } else {
        *bad += 1;
        0.0
    }
}

impl AudioSide {
    pub fn stats(&self) -> &Arc<EndpointStats> {
        &self.stats
    }

    pub fn sample_rate(&self) -> f64 {
        self.rate
    }

    /// Sets an output parameter immediately (ramped), e.g. on activation from saved state.
    pub fn set_param(&mut self, param: OutputParam, value: f32) {
        self.apply(OutputEvent {
            offset: 0,
            param,
            value,
        });
    }

    #[inline]
    fn apply(&mut self, ev: OutputEvent) {
        match ev.param {
            OutputParam::GainDb => self.gain.set_target(db_to_gain(ev.value)),
            OutputParam::Mix => self.mix.set_target(ev.value.clamp(0.0, 1.0)),
            OutputParam::Bypass => self
                .bypass
                .set_target(if ev.value >= 0.5 { 1.0 } else { 0.0 }),
        }
    }

    /// Drops queued generated audio and smoothing/gap state (host reset).
    /// Bounded: skips at most the ring's capacity in one chunk.
    pub fn reset(&mut self) {
        let n = self.from_gen.slots();
        if let Ok(chunk) = self.from_gen.read_chunk(n) {
            chunk.commit_all();
            self.ring_read += n as u64;
        }
        self.stats.ring_offset.store(
            self.stats.clock().wrapping_sub(self.ring_read),
            Ordering::Release,
        );
        self.gap.reset();
        self.dry_delay.clear();
        self.gain.reset(self.gain.target());
        self.mix.reset(self.mix.target());
        self.bypass.reset(self.bypass.target());
        self.started = false;
    }

    /// Processes one block in place: `channels` hold the input on entry and the
    /// output on return. Any channel count (0 included) and any block length work;
    /// channels of unequal length are processed up to the shortest. `events` must
    /// be sorted by offset; offsets past the block apply at its last sample.
    pub fn process<C: AsMut<[f32]>>(&mut self, channels: &mut [C], events: &[OutputEvent]) {
        self.run(channels, events, None);
    }

    /// Offline render (DAW bounce): like [`process`](Self::process), but waits —
    /// bounded by `timeout` per call — until generation has produced this block's
    /// audio. Returns false if it timed out (the missing samples are gap-filled;
    /// the caller reports the error and falls back to dry).
    ///
    /// Not for a realtime thread: it sleeps while it waits. Pair it with an
    /// engine in [`RunMode::Offline`](crate::engine::RunMode), which delays its
    /// output by [`offline_delay_samples`](crate::engine::EngineConfig::offline_delay_samples)
    /// so that a block never waits for input it has not delivered yet.
    pub fn process_offline<C: AsMut<[f32]>>(
        &mut self,
        channels: &mut [C],
        events: &[OutputEvent],
        timeout: Duration,
    ) -> bool {
        self.run(channels, events, Some(Instant::now() + timeout))
    }

    /// Waits until `len` generated samples are queued or `deadline` passes.
    fn wait_for_output(&self, len: usize, deadline: Instant) -> bool {
        while self.from_gen.slots() < len {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_micros(100));
        }
        true
    }

    fn run<C: AsMut<[f32]>>(
        &mut self,
        channels: &mut [C],
        events: &[OutputEvent],
        deadline: Option<Instant>,
    ) -> bool {
        let mut complete = true;
        let _ftz = DenormalGuard::new();
        // Instant::now reads the vDSO clock: no kernel entry.
        let t0 = Instant::now();
        let n = channels
            .iter_mut()
            .map(|c| c.as_mut().len())
            .min()
            .unwrap_or(0);
        let mut ev = 0;
        let mut gap_samples = 0u64;
        let mut bad_in = 0u64;
        let mut bad_out = 0u64;
        let mut first_out: Option<u64> = None;
        let clock0 = self.stats.samples.load(Ordering::Relaxed);
        let inv_ch = if channels.is_empty() {
            0.0
        } else {
            1.0 / channels.len() as f32
        };

        let mut start = 0;
        while start < n {
            let len = (n - start).min(CHUNK);
            // 1. Mono mix-down, sanitised, into the input ring.
            for i in 0..len {
                let mut acc = 0.0;
                for ch in channels.iter_mut() {
                    let ch = ch.as_mut();
                    let x = finite_or_zero(ch[start + i], &mut bad_in);
                    ch[start + i] = x; // the dry path is sanitised too
                    acc += x;
                }
                self.mono[i] = acc * inv_ch;
            }
            self.to_gen.push(&self.mono[..len]);

            // 2. Generated audio, as much as is there (offline: wait for it).
            if let Some(d) = deadline {
                complete &= self.wait_for_output(len, d);
            }
            let avail = self.from_gen.slots().min(len);
            if let Ok(chunk) = self.from_gen.read_chunk(avail) {
                let (a, b) = chunk.as_slices();
                self.wet[..a.len()].copy_from_slice(a);
                self.wet[a.len()..a.len() + b.len()].copy_from_slice(b);
                chunk.commit_all();
                self.ring_read += avail as u64;
            }
            if avail > 0 && !self.started {
                self.started = true;
                first_out = Some(clock0 + start as u64);
            }

            // 3. Per sample: knob events, gap fill, mix.
            for i in 0..len {
                let at = (start + i) as u32;
                while ev < events.len()
                    && (events[ev].offset <= at
                        || (events[ev].offset as usize >= n && start + i + 1 == n))
                {
                    self.apply(events[ev]);
                    ev += 1;
                }
                let wet = if i < avail {
                    self.gap.play(finite_or_zero(self.wet[i], &mut bad_out))
                } else {
                    if self.started {
                        gap_samples += 1;
                    }
                    self.gap.fill()
                };
                let g = self.gain.next();
                let m = self.mix.next();
                let b = self.bypass.next();
                for (c, ch) in channels.iter_mut().enumerate() {
                    let ch = ch.as_mut();
                    let dry = self.dry_delay.tap(c, ch[start + i]);
                    let processed = g * ((1.0 - m) * dry + m * wet);
                    ch[start + i] = if b == 0.0 {
                        processed
                    } else {
                        b * dry + (1.0 - b) * processed
                    };
                }
                self.dry_delay.advance();
            }
            start += len;
            let clock = clock0 + start as u64;
            // Offset first: a reader that sees the new clock sees it too.
            self.stats
                .ring_offset
                .store(clock.wrapping_sub(self.ring_read), Ordering::Release);
            self.stats.samples.store(clock, Ordering::Release);
        }
        // Events left over (empty block): still take effect.
        while ev < events.len() {
            self.apply(events[ev]);
            ev += 1;
        }

        let s = &self.stats;
        EndpointStats::bump(&s.gap_samples, gap_samples);
        if gap_samples > 0 {
            EndpointStats::bump(&s.underrun_callbacks, 1);
        }
        EndpointStats::bump(&s.nonfinite_in, bad_in);
        EndpointStats::bump(&s.nonfinite_out, bad_out);
        if let Some(at) = first_out {
            s.first_output_at.store(at, Ordering::Relaxed);
            s.started.store(true, Ordering::Relaxed);
        }
        s.queued
            .store(self.from_gen.slots() as u64, Ordering::Relaxed);
        EndpointStats::bump(&s.callbacks, 1);
        s.callback_ms.record_us(t0.elapsed().as_micros() as u64);
        complete
    }

    /// Out-of-place processing: copies `inputs` into `outputs` (input channel
    /// `c % inputs.len()` feeds output channel `c`; silence if there are no
    /// inputs), then processes in place.
    pub fn process_split<C: AsMut<[f32]>>(
        &mut self,
        inputs: &[&[f32]],
        outputs: &mut [C],
        events: &[OutputEvent],
    ) {
        for (c, out) in outputs.iter_mut().enumerate() {
            let out = out.as_mut();
            match inputs.get(c % inputs.len().max(1)) {
                Some(inp) => {
                    let k = inp.len().min(out.len());
                    out[..k].copy_from_slice(&inp[..k]);
                    out[k..].fill(0.0);
                }
                None => out.fill(0.0),
            }
        }
        self.process(outputs, events);
    }
}

impl GenSide {
    pub fn stats(&self) -> &Arc<EndpointStats> {
        &self.stats
    }

    pub fn sample_rate(&self) -> f64 {
        self.rate
    }

    /// Audio clock of the next input sample: everything before it has been captured.
    pub fn input_clock(&self) -> u64 {
        self.from_audio.written()
    }

    /// The oldest input position still held (older input was overwritten).
    pub fn input_oldest(&self) -> u64 {
        self.from_audio.oldest()
    }

    /// Copies captured input from audio-clock position `from` on (as much as has
    /// been captured, up to `buf.len()`); returns how many samples. Fails if that
    /// input has been overwritten already.
    pub fn read_input_at(&self, from: u64, buf: &mut [f32]) -> Result<usize, Overwritten> {
        self.from_audio.read_at(from, buf)
    }

    /// Counts input that generation will never read (see [`EndpointStats::input_dropped`]).
    pub fn count_dropped_input(&self, samples: u64) {
        self.stats
            .input_dropped
            .fetch_add(samples, Ordering::Relaxed);
    }

    /// Captured input samples not read yet by [`read_input`](Self::read_input).
    pub fn input_available(&self) -> usize {
        (self.input_clock() - self.read_pos.max(self.input_oldest())) as usize
    }

    /// Reads up to `buf.len()` captured samples in order; returns how many. Input
    /// that was overwritten before this call is passed over and counted as dropped.
    pub fn read_input(&mut self, buf: &mut [f32]) -> usize {
        loop {
            match self.from_audio.read_at(self.read_pos, buf) {
                Ok(n) => {
                    self.read_pos += n as u64;
                    return n;
                }
                Err(Overwritten { oldest }) => {
                    self.count_dropped_input(oldest - self.read_pos);
                    self.read_pos = oldest;
                }
            }
        }
    }

    /// Generated samples queued ahead of the playhead: the current lead in samples.
    pub fn queued(&self) -> usize {
        self.to_audio.buffer().capacity() - self.to_audio.slots()
    }

    /// Free room in the output ring, in samples.
    pub fn free(&self) -> usize {
        self.to_audio.slots()
    }

    /// Writes generated audio; returns how many samples fitted (the rest is
    /// dropped by the caller's choice: the ring never grows).
    pub fn write_output(&mut self, samples: &[f32]) -> usize {
        let n = self.to_audio.slots().min(samples.len());
        if let Ok(mut chunk) = self.to_audio.write_chunk(n) {
            let (a, b) = chunk.as_mut_slices();
            let k = a.len();
            a.copy_from_slice(&samples[..k]);
            b.copy_from_slice(&samples[k..n]);
            chunk.commit_all();
        }
        self.ring_written += n as u64;
        n
    }

    /// The audio clock at which the next sample written will play, if no gap
    /// comes before it (see [`EndpointStats::ring_offset`]). Exact while the
    /// ring holds audio; while it runs dry, a callback in progress may add
    /// gap samples this does not see yet.
    pub fn next_write_plays_at(&self) -> u64 {
        self.ring_written
            .wrapping_add(self.stats.ring_offset.load(Ordering::Acquire))
    }

    /// Whether the audio side has gone away (e.g. the device stopped).
    pub fn is_abandoned(&self) -> bool {
        self.to_audio.is_abandoned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(audio: &mut AudioSide, block: &mut [f32], events: &[OutputEvent]) {
        let mut chans = [block];
        audio.process(&mut chans, events);
    }

    #[test]
    fn input_reaches_generation_and_output_reaches_the_speaker() {
        let (mut a, mut g) = endpoint(&EndpointConfig::new(48_000.0));
        a.set_param(OutputParam::Mix, 1.0);
        g.write_output(&[0.25; 64]);
        let mut l = [0.5f32; 64];
        let mut r = [0.1f32; 64];
        a.process(&mut [&mut l, &mut r], &[]);
        assert_eq!(l, [0.25; 64]);
        assert_eq!(r, [0.25; 64]);
        let mut got = [0.0; 100];
        assert_eq!(g.read_input(&mut got), 64);
        assert!((got[0] - 0.3).abs() < 1e-6, "mono mix-down");
        assert_eq!(a.stats().underrun_callbacks.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn output_knob_change_is_heard_from_its_sample() {
        let (mut a, mut g) = endpoint(&EndpointConfig::new(48_000.0));
        g.write_output(&[0.5; 4096]);
        let mut block = [0.0f32; 256];
        run(&mut a, &mut block, &[]);
        assert!(block.iter().all(|&x| x == 0.5));
        let n = 100;
        run(
            &mut a,
            &mut block,
            &[OutputEvent {
                offset: n,
                param: OutputParam::GainDb,
                value: -20.0,
            }],
        );
        assert!(
            block[..n as usize].iter().all(|&x| x == 0.5),
            "unchanged before sample n"
        );
        assert!(block[n as usize] < 0.5, "changed at sample n");
        let ramp = Smoothed::ramp_for(5.0, 48_000.0) as usize;
        let mut later = [0.0f32; 512];
        run(&mut a, &mut later, &[]);
        let settled = later[ramp.saturating_sub(256 - n as usize)..]
            .iter()
            .all(|&x| (x - 0.05).abs() < 1e-6);
        assert!(settled, "reaches −20 dB within the smoothing time");
    }

    #[test]
    fn dry_at_zero_mix_is_bit_exact() {
        let (mut a, _g) = endpoint(&EndpointConfig::new(44_100.0));
        a.set_param(OutputParam::Mix, 0.0);
        a.reset(); // settle the ramp
        let input: Vec<f32> = (0..1000)
            .map(|i| ((i * 7919) % 2001) as f32 / 1000.0 - 1.0)
            .collect();
        let mut out = input.clone();
        run(&mut a, &mut out, &[]);
        assert_eq!(out, input);
    }

    #[test]
    fn nonfinite_input_is_sanitised_and_counted() {
        let (mut a, mut g) = endpoint(&EndpointConfig::new(48_000.0));
        let mut block = [0.1, f32::NAN, f32::INFINITY, -f32::INFINITY, 0.2];
        run(&mut a, &mut block, &[]);
        assert!(block.iter().all(|x| x.is_finite()));
        assert_eq!(a.stats().nonfinite_in.load(Ordering::Relaxed), 3);
        let mut got = [1.0; 5];
        g.read_input(&mut got);
        assert_eq!(got, [0.1, 0.0, 0.0, 0.0, 0.2]);
    }

    #[test]
    fn rings_are_bounded_and_overflow_loses_the_oldest_input() {
        let mut cfg = EndpointConfig::new(8_000.0);
        cfg.input_seconds = 0.1;
        let (mut a, mut g) = endpoint(&cfg);
        let cap = 800;
        let mut block: Vec<f32> = (0..1000).map(|i| i as f32 / 1000.0).collect();
        let sent = block.clone();
        run(&mut a, &mut block, &[]);
        assert_eq!(g.input_available(), cap);
        assert_eq!(g.input_clock(), 1000);
        let mut got = vec![0.0f32; 1000];
        assert_eq!(g.read_input(&mut got), cap);
        assert_eq!(got[..cap], sent[200..], "the newest input is kept");
        assert_eq!(a.stats().input_dropped.load(Ordering::Relaxed), 200);
        let written = g.write_output(&vec![0.0; 1_000_000]);
        assert_eq!(g.queued(), written);
        assert!(written <= 8_000 * 4 + CHUNK);
    }
}
