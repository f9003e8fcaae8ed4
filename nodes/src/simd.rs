//! Element-wise kernels that the compiler vectorises: written as plain loops,
//! compiled a second time for AVX2+FMA and chosen at run time (the release
//! binary targets baseline x86-64, so without this they would run 4-wide SSE2).
//!
//! ELU needs `exp` on every negative input (~0.5 M per Mimi step); libm's
//! scalar `expf` cannot vectorise, so `exp` here is a range-reduced polynomial
//! (error < 3e-7 relative, well inside the 1e-5 the codec is held to).

/// `dst[i] = elu(src[i])` with alpha 1: `x` if `x > 0`, else `exp(x) − 1`.
pub fn elu(dst: &mut [f32], src: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // Safety: the features were just detected.
            return unsafe { elu_avx2(dst, src) };
        }
    }
    elu_portable(dst, src)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn elu_avx2(dst: &mut [f32], src: &[f32]) {
    elu_portable(dst, src)
}

#[inline(always)]
fn elu_portable(dst: &mut [f32], src: &[f32]) {
    for (d, &x) in dst.iter_mut().zip(src) {
        let e = exp_nonpositive(x.min(0.0)) - 1.0;
        *d = if x > 0.0 { x } else { e };
    }
}

/// `exp(x)` for `x <= 0`: `x = n·ln2 + r`, `|r| <= ln2/2`, degree-7 Taylor in
/// `r`, times `2^n` built from the exponent bits. Inputs below −87 give ~0.
#[inline(always)]
fn exp_nonpositive(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    let x = x.max(-87.0);
    let n = (x * LOG2E + 0.5).floor();
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.0 / 5040.0;
    let p = p * r + 1.0 / 720.0;
    let p = p * r + 1.0 / 120.0;
    let p = p * r + 1.0 / 24.0;
    let p = p * r + 1.0 / 6.0;
    let p = p * r + 0.5;
    let p = p * r + 1.0;
    let p = p * r + 1.0;
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    p * scale
}

/// Storage formats [`first_non_finite`] can scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FloatBits {
    F32,
    F16,
    Bf16,
}

/// Index of the first NaN/±Inf in little-endian raw floats (`None` if all are
/// finite). A value is non-finite exactly when its exponent bits are all ones,
/// so the scan is one mask-and-compare per element, OR-ed over blocks (which
/// vectorises) and a second pass only inside the block that has one.
pub fn first_non_finite(bytes: &[u8], fmt: FloatBits) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // Safety: the feature was just detected.
            return unsafe { first_non_finite_avx2(bytes, fmt) };
        }
    }
    first_non_finite_portable(bytes, fmt)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn first_non_finite_avx2(bytes: &[u8], fmt: FloatBits) -> Option<usize> {
    first_non_finite_portable(bytes, fmt)
}

#[inline(always)]
fn first_non_finite_portable(bytes: &[u8], fmt: FloatBits) -> Option<usize> {
    match fmt {
        FloatBits::F32 => scan(bytes, |c: [u8; 4]| {
            u32::from_le_bytes(c) & 0x7f80_0000 == 0x7f80_0000
        }),
        FloatBits::F16 => scan(bytes, |c: [u8; 2]| u16::from_le_bytes(c) & 0x7c00 == 0x7c00),
        FloatBits::Bf16 => scan(bytes, |c: [u8; 2]| u16::from_le_bytes(c) & 0x7f80 == 0x7f80),
    }
}

#[inline(always)]
fn scan<const N: usize>(bytes: &[u8], bad: impl Fn([u8; N]) -> bool) -> Option<usize> {
    const BLOCK: usize = 4096;
    let elem = |c: &[u8]| bad(c.try_into().expect("chunk of N bytes"));
    for (b, block) in bytes.chunks(BLOCK * N).enumerate() {
        if block.chunks_exact(N).fold(false, |acc, c| acc | elem(c)) {
            let i = block.chunks_exact(N).position(elem)?;
            return Some(b * BLOCK + i);
        }
    }
    None
}

/// `y[t][j] (+)= Σ_i w[j][i] · x[t][i]` for `m <= 4` input rows: a
/// matrix product with a thin side, as in a streaming step (one or two frames
/// through a wide layer). It is bound by reading `w`; gemm packs (copies) `w`
/// before multiplying, which for so few columns triples the memory traffic.
/// This reads every weight exactly once, with the LM's f32 kernel (four
/// 8-wide accumulators per row, weights loaded once for all `m` rows), and
/// splits the rows of `w` across the rayon pool when `threads > 1`.
///
/// `w` is (n × k) row-major, `x` is (m × k) row-major; `y` element (t, j) is at
/// `t·y_t + j·y_j`.
pub fn thin_matmul(
    w: &[f32],
    x: &[f32],
    mkn: (usize, usize, usize),
    y: &mut [f32],
    y_strides: (usize, usize),
    accumulate: bool,
    threads: usize,
) {
    crate::lm::matrix::f32_product(w, x, mkn, y, y_strides, accumulate, threads)
}

/// Fewest weights (~512 KiB) a [`thin_matmul`] splits across threads.
pub const SPLIT_MIN: usize = crate::lm::matrix::SPLIT_MIN;

/// Most rows [`thin_matmul`] takes.
pub const THIN_MAX: usize = crate::lm::matrix::MAX_ROWS;

#[cfg(test)]
mod tests {
    #[test]
    fn elu_matches_f64_within_a_few_ulp() {
        let src: Vec<f32> = (-200_000..200_000)
            .map(|i| i as f32 * 5e-4)
            .chain([-0.0, 0.0, -87.5, -1e30, 1e30, f32::MIN_POSITIVE])
            .collect();
        let mut dst = vec![0.0; src.len()];
        super::elu(&mut dst, &src);
        for (&x, &y) in src.iter().zip(&dst) {
            let want = if x > 0.0 {
                x
            } else {
                (x as f64).exp_m1() as f32
            };
            // exp(x) − 1 near 0 loses the bits below 1's ulp, as libm's exp − 1 does.
            let tol = 2e-7 + 3e-7 * want.abs();
            assert!((y - want).abs() <= tol, "elu({x}) = {y}, want {want}");
        }
    }

    #[test]
    fn thin_matmul_equals_the_f64_product() {
        let mut r = crate::rng::SplitMix64::new(9);
        for &(m, k, n, threads) in &[
            (1, 13, 5, 1),
            (2, 512, 300, 2),
            (4, 1029, 129, 2),
            (3, 8, 1, 1),
        ] {
            let w: Vec<f32> = (0..n * k).map(|_| r.next_normal() as f32).collect();
            let x: Vec<f32> = (0..m * k).map(|_| r.next_normal() as f32).collect();
            // (n, m) layout, accumulating onto ones.
            let mut y = vec![1f32; n * m];
            super::thin_matmul(&w, &x, (m, k, n), &mut y, (1, m), true, threads);
            for j in 0..n {
                for t in 0..m {
                    let want: f64 = 1.0
                        + (0..k)
                            .map(|i| w[j * k + i] as f64 * x[t * k + i] as f64)
                            .sum::<f64>();
                    let got = y[j * m + t] as f64;
                    assert!(
                        (got - want).abs() < 1e-4 * (k as f64).sqrt(),
                        "{m}x{k}x{n}: {got} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn non_finite_scan_finds_the_first_bad_element_in_each_format() {
        use super::{first_non_finite, FloatBits};
        let n = 10_000;
        for (pos, bad) in [
            (0, f32::NAN),
            (4097, f32::INFINITY),
            (n - 1, f32::NEG_INFINITY),
        ] {
            // Finite values across the f16 range; a second bad value after the first.
            let mut v: Vec<f32> = (0..n).map(|i| (i as f32 - 5000.0) * 10.0).collect();
            v[pos] = bad;
            if pos + 1 < n {
                v[n - 1] = f32::NAN;
            }
            let first = pos;
            let f32b: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            assert_eq!(first_non_finite(&f32b, FloatBits::F32), Some(first));
            let f16b: Vec<u8> = v
                .iter()
                .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
                .collect();
            assert_eq!(first_non_finite(&f16b, FloatBits::F16), Some(first));
            let bf16b: Vec<u8> = v
                .iter()
                .flat_map(|&x| half::bf16::from_f32(x).to_le_bytes())
                .collect();
            assert_eq!(first_non_finite(&bf16b, FloatBits::Bf16), Some(first));
        }
        let ok: Vec<u8> = (0..n).flat_map(|i| (i as f32).to_le_bytes()).collect();
        assert_eq!(first_non_finite(&ok, FloatBits::F32), None);
        // f16 overflows to inf beyond 65504: a finite f32 file converted badly is caught.
        assert_eq!(
            first_non_finite(&half::f16::from_f32(1e5).to_le_bytes(), FloatBits::F16),
            Some(0)
        );
    }
}
