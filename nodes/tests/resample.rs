//! Resampler quality, delay, framing and cost.

use antiphon_nodes::resample::{frame_len, StreamResampler};

/// Least-squares fit of a sine of known frequency (any phase = any delay);
/// returns (SNR dB, fitted phase in radians).
fn sine_snr(x: &[f32], freq: f64, rate: f64) -> (f64, f64) {
    let w = std::f64::consts::TAU * freq / rate;
    let (mut ss, mut sc, mut cc, mut xs, mut xc) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (i, &v) in x.iter().enumerate() {
        let (s, c) = ((w * i as f64).sin(), (w * i as f64).cos());
        ss += s * s;
        sc += s * c;
        cc += c * c;
        xs += v as f64 * s;
        xc += v as f64 * c;
    }
    let det = ss * cc - sc * sc;
    let a = (xs * cc - xc * sc) / det;
    let b = (xc * ss - xs * sc) / det;
    let (mut sig, mut err) = (0.0, 0.0);
    for (i, &v) in x.iter().enumerate() {
        let fit = a * (w * i as f64).sin() + b * (w * i as f64).cos();
        sig += fit * fit;
        err += (v as f64 - fit).powi(2);
    }
    (10.0 * (sig / err).log10(), b.atan2(a))
}

#[test]
fn sine_round_trip_44k1_24k_44k1_keeps_80_db() {
    let (host, model) = (44_100.0, 24_000.0);
    let mut down = StreamResampler::new(host, model).unwrap();
    let mut up = StreamResampler::new(model, host).unwrap();
    let frames = 125u64; // 10 s
    let mut pos = 0usize;
    let (mut out, mut mid, mut buf) = (Vec::new(), Vec::new(), Vec::new());
    let t0 = std::time::Instant::now();
    for k in 0..frames {
        let n = frame_len(host, k);
        let x: Vec<f32> = (pos..pos + n)
            .map(|i| (0.5 * (std::f64::consts::TAU * 1000.0 * i as f64 / host).sin()) as f32)
            .collect();
        pos += n;
        down.push(&x).unwrap();
        mid.clear();
        down.pull_frame(&mut mid);
        assert_eq!(mid.len(), 1920, "exactly one Mimi frame per frame");
        up.push(&mid).unwrap();
        buf.clear();
        up.pull_frame(&mut buf);
        assert_eq!(buf.len(), n);
        out.extend_from_slice(&buf);
    }
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "round trip of 10 s: {:.1} ms of CPU per second of audio (both directions)",
        secs / 10.0 * 1e3
    );
    // Reported delay, in host samples.
    let delay = down.delay_samples() * host / model + up.delay_samples();
    println!("delays: down {:.2} samples @24k ({:.2} ms), up {:.2} samples @44.1k ({:.2} ms); total {:.1} host samples",
        down.delay_samples(), down.delay_seconds() * 1e3, up.delay_samples(), up.delay_seconds() * 1e3, delay);
    assert_eq!(
        down.underrun_samples + up.underrun_samples + down.overflow_samples + up.overflow_samples,
        0
    );
    // Skip the start (delay + filter warm-up), compensate the delay by fitting phase.
    let skip = delay.ceil() as usize + 2048;
    let tail = &out[skip..];
    let (snr, phase) = sine_snr(tail, 1000.0, host);
    println!("1 kHz 44.1k→24k→44.1k SNR {snr:.1} dB");
    assert!(snr >= 80.0, "SNR {snr:.1} dB");
    // The fitted phase agrees with the reported delay (within one host sample).
    let w = std::f64::consts::TAU * 1000.0 / host;
    let expected = (-(w * (delay - skip as f64))).rem_euclid(std::f64::consts::TAU);
    let diff = (phase.rem_euclid(std::f64::consts::TAU) - expected).abs();
    let diff = diff.min(std::f64::consts::TAU - diff);
    assert!(
        diff / w < 1.0,
        "reported delay off by {:.2} samples",
        diff / w
    );
}

#[test]
fn any_host_rate_gives_exact_model_frames() {
    for rate in [
        8_000.0, 11_025.0, 22_050.0, 44_100.0, 47_999.7, 96_000.0, 192_000.0, 384_000.0,
    ] {
        let mut r = StreamResampler::new(rate, 24_000.0).unwrap();
        let mut total_in = 0usize;
        let mut out = Vec::new();
        for k in 0..40 {
            let n = frame_len(rate, k);
            total_in += n;
            r.push(&vec![0.1; n]).unwrap();
            out.clear();
            r.pull_frame(&mut out);
            assert_eq!(out.len(), 1920, "rate {rate} frame {k}");
        }
        assert!((total_in as f64 - 40.0 * rate / 12.5).abs() < 1.0);
        assert_eq!(r.underrun_samples, 0, "rate {rate}");
    }
    assert!(StreamResampler::new(100.0, 24_000.0).is_err());
}

/// The resampler was chosen by measurement: rubato's streaming sinc against
/// dasp's sinc interpolator (128 taps) on the same 1 kHz round trip. rubato must
/// be at least as clean, and we print both costs.
#[test]
fn rubato_measures_at_least_as_well_as_dasp_sinc() {
    use dasp::{interpolate::sinc::Sinc, ring_buffer, signal, Signal};
    let (host, model) = (44_100.0, 24_000.0);
    let secs = 4.0;
    let x: Vec<f32> = (0..(host * secs) as usize)
        .map(|i| (0.5 * (std::f64::consts::TAU * 1000.0 * i as f64 / host).sin()) as f32)
        .collect();

    // dasp: whole-signal converters, down then up.
    let t0 = std::time::Instant::now();
    let down = signal::from_iter(x.iter().map(|&s| s as f64)).from_hz_to_hz(
        Sinc::new(ring_buffer::Fixed::from([0.0f64; 128])),
        host,
        model,
    );
    let mid: Vec<f64> = down.take((model * secs) as usize).collect();
    let up = signal::from_iter(mid.into_iter()).from_hz_to_hz(
        Sinc::new(ring_buffer::Fixed::from([0.0f64; 128])),
        model,
        host,
    );
    let y: Vec<f32> = up.take(x.len()).map(|v| v as f32).collect();
    let dasp_ms = t0.elapsed().as_secs_f64() / secs * 1e3;
    let (dasp_snr, _) = sine_snr(&y[8192..y.len() - 8192], 1000.0, host);

    // rubato, through our streaming wrapper, frame by frame.
    let t0 = std::time::Instant::now();
    let mut d = StreamResampler::new(host, model).unwrap();
    let mut u = StreamResampler::new(model, host).unwrap();
    let (mut out, mut mid, mut buf, mut pos) = (Vec::new(), Vec::new(), Vec::new(), 0usize);
    for k in 0..(secs / 0.08) as u64 {
        let n = frame_len(host, k);
        d.push(&x[pos..pos + n]).unwrap();
        pos += n;
        mid.clear();
        d.pull_frame(&mut mid);
        u.push(&mid).unwrap();
        buf.clear();
        u.pull_frame(&mut buf);
        out.extend_from_slice(&buf);
    }
    let rubato_ms = t0.elapsed().as_secs_f64() / secs * 1e3;
    let (rubato_snr, _) = sine_snr(&out[8192..out.len() - 8192], 1000.0, host);
    println!(
        "resampler choice, 1 kHz 44.1k→24k→44.1k: rubato {rubato_snr:.1} dB at {rubato_ms:.1} ms CPU/s; \
         dasp sinc(128) {dasp_snr:.1} dB at {dasp_ms:.1} ms CPU/s"
    );
    assert!(
        rubato_snr >= dasp_snr - 1.0,
        "dasp measures better: {dasp_snr} vs {rubato_snr} dB"
    );
}
