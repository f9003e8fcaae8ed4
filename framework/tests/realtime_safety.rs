//! The audio thread never allocates: the endpoint's process function runs under
//! `assert_no_alloc`'s checking allocator for thousands of blocks while knobs
//! change, generation stalls (underruns, gap fills), input carries NaN/Inf, and
//! block sizes and sample rates vary. A second test proves the checker catches a
//! deliberate allocation, so the first one can fail.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use antiphon_framework::device::{BlockSizes, Pacing, VirtualDevice};
use antiphon_framework::rng::SplitMix64;
use antiphon_framework::{endpoint, AudioSide, EndpointConfig, OutputEvent, OutputParam};
use assert_no_alloc::{assert_no_alloc, reset_violation_count, violation_count, AllocDisabler};

#[global_allocator]
static ALLOC: AllocDisabler = AllocDisabler;

/// Counts the allocations made inside `audio` on this thread. Warn mode
/// (`warn_debug`) counts instead of aborting, so the count can be asserted.
fn allocations_in(audio: impl FnOnce()) -> u32 {
    reset_violation_count();
    assert_no_alloc(audio);
    violation_count()
}

/// Drives `audio` through the virtual device at `rate` with random block sizes
/// 1..=8192 (and some zero-length blocks), knob automation and hostile input,
/// while a generator thread writes audio in bursts with stalls between them.
/// `extra` runs inside each checked callback (the canary uses it to allocate).
fn torture(rate: f64, blocks: u64, seed: u64, extra: &mut dyn FnMut()) -> (u32, u64, u64) {
    let (mut audio, mut gen) = endpoint(&EndpointConfig::new(rate));
    let stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let stop = stop.clone();
        thread::spawn(move || {
            let mut phase = 0.0f32;
            let mut buf = vec![0.0f32; 4096];
            let mut sink = vec![0.0f32; 65536];
            let mut burst = 0u32;
            while !stop.load(Ordering::Relaxed) {
                gen.read_input(&mut sink);
                burst += 1;
                if burst % 4 != 0 {
                    for x in buf.iter_mut() {
                        phase += 0.05;
                        *x = 0.5 * phase.sin();
                    }
                    gen.write_output(&buf);
                }
                thread::sleep(Duration::from_micros(300)); // stalls → underruns
            }
        })
    };
    let mut rng = SplitMix64::new(seed);
    let mut events = [OutputEvent {
        offset: 0,
        param: OutputParam::Mix,
        value: 0.0,
    }; 3];
    let mut violations = 0;
    let dev = VirtualDevice::new(
        rate,
        2,
        BlockSizes::Random {
            min: 0,
            max: 8192,
            seed,
        },
        Pacing::Offline,
    );
    let mut k = 0u64;
    dev.run(u64::MAX, |block| {
        k += 1;
        for ch in block.channels.iter_mut() {
            for x in ch.iter_mut() {
                *x = match rng.range(0, 500) {
                    0 => f32::NAN,
                    1 => f32::INFINITY,
                    2 => f32::NEG_INFINITY,
                    3 => 1e-42, // denormal
                    _ => rng.next_f64() as f32 - 0.5,
                };
            }
        }
        let len = block.len() as u64;
        events[0] = OutputEvent {
            offset: rng.range(0, len) as u32,
            param: OutputParam::GainDb,
            value: rng.range(0, 40) as f32 - 30.0,
        };
        events[1] = OutputEvent {
            offset: rng.range(len / 2, len + 10) as u32,
            param: OutputParam::Mix,
            value: rng.next_f64() as f32,
        };
        events[2] = OutputEvent {
            offset: u32::MAX,
            param: OutputParam::Bypass,
            value: (k % 97 == 0) as u32 as f32,
        };
        let channels = &mut *block.channels;
        let audio: &mut AudioSide = &mut audio;
        violations += allocations_in(|| {
            audio.process(channels, &events);
            extra();
        });
        for ch in channels.iter() {
            assert!(ch.iter().all(|x| x.is_finite()), "output must stay finite");
        }
        if k % 50 == 0 {
            thread::sleep(Duration::from_millis(2)); // let the generator run
        }
        k < blocks
    });
    stop.store(true, Ordering::Relaxed);
    producer.join().unwrap();
    let s = audio.stats();
    (
        violations,
        s.underrun_callbacks.load(Ordering::Relaxed),
        s.nonfinite_in.load(Ordering::Relaxed),
    )
}

#[test]
fn audio_thread_never_allocates_under_stress() {
    let rates = [
        8_000.0, 11_025.0, 22_050.0, 44_100.0, 47_999.5, 48_000.0, 88_200.0, 96_000.0, 192_000.0,
        384_000.0,
    ];
    let mut underruns = 0;
    let mut sanitised = 0;
    for (i, rate) in rates.iter().enumerate() {
        let (violations, u, nf) = torture(*rate, 400, i as u64 + 1, &mut || {});
        assert_eq!(violations, 0, "the audio thread allocated at {rate} Hz");
        underruns += u;
        sanitised += nf;
    }
    eprintln!("{} rates × 400 blocks (sizes 0..=8192): 0 allocations; {underruns} underrun callbacks, {sanitised} non-finite samples sanitised", rates.len());
    // The scenario must really have exercised gap fill and sanitising.
    assert!(
        underruns > 0,
        "no underrun happened: the test would not catch a gap-fill allocation"
    );
    assert!(sanitised > 0);
}

#[test]
fn the_checker_catches_a_deliberate_allocation() {
    let (violations, _, _) = torture(48_000.0, 20, 99, &mut || {
        std::hint::black_box(vec![0u8; 64]);
    });
    eprintln!("canary: {violations} allocations caught in 20 blocks");
    assert!(
        violations >= 20,
        "the allocation checker missed {} allocations",
        20 - violations.min(20)
    );
}

#[test]
fn zero_length_and_channel_less_blocks_are_harmless() {
    let (mut audio, _gen) = endpoint(&EndpointConfig::new(48_000.0));
    let v = allocations_in(|| {
        let mut none: [&mut [f32]; 0] = [];
        audio.process(
            &mut none,
            &[OutputEvent {
                offset: 5,
                param: OutputParam::GainDb,
                value: -6.0,
            }],
        );
        let mut empty: [&mut [f32]; 2] = [&mut [], &mut []];
        audio.process(&mut empty, &[]);
    });
    assert_eq!(v, 0);
    assert_eq!(audio.stats().clock(), 0);
}

#[test]
fn nonsense_sample_rates_fall_back_instead_of_panicking() {
    for rate in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e12] {
        let (mut audio, _gen) = endpoint(&EndpointConfig::new(rate));
        assert_eq!(audio.sample_rate(), 48_000.0);
        let mut b = [0.1f32; 64];
        audio.process(&mut [&mut b[..]], &[]);
    }
}
