//! Streaming 1-D convolutions for Mimi's SEANet, on the `gemm` crate.
//!
//! Why our own kernels and not candle's: one 80 ms Mimi step is ~40 small
//! convolutions, and candle's CPU path spends more time around the arithmetic
//! than in it. Per conv and per step it allocates and fills an im2col matrix with
//! a scalar gather loop, runs gemm, copies the result back from (T, C) to (C, T)
//! with a strided copy, and the moshi crate's streaming wrapper adds a `cat` of
//! the saved history, `narrow`s, a separate ELU pass and a fresh tensor per op
//! (measured: `nodes/examples/mimi_profile.rs`). Here every layer owns
//! preallocated buffers: its input (C, history + T) keeps the history in place,
//! the ELU before a conv is fused into the copy that fills that buffer, the
//! residual skip and the bias are the gemm's initial accumulator, and the
//! convolution itself is one gemm per kernel tap over strided views of the
//! buffer (no im2col). Nothing allocates after construction.
//!
//! The results equal candle's to float rounding (different summation order;
//! `nodes/tests/parity.rs` states the tolerance).

use gemm::{gemm, Parallelism};

use crate::simd::{thin_matmul, THIN_MAX};
use crate::weights_mem::Weights;

/// Activation applied to a layer's input (SEANet puts ELU before its convs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputAct {
    None,
    /// ELU with alpha 1.
    Elu,
}

/// How the first step pads the left edge (moshi's `PadMode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeftPad {
    Zeros,
    /// Repeat the first input sample (Mimi's learnt downsample).
    Replicate,
}

/// Copies `src` to `dst`, applying `act` on the way.
fn copy_act(dst: &mut [f32], src: &[f32], act: InputAct) {
    match act {
        InputAct::None => dst.copy_from_slice(src),
        InputAct::Elu => crate::simd::elu(dst, src),
    }
}

/// `dst = lhs · rhs` (or `dst += lhs · rhs`) over strided views.
/// Safety: every view must lie inside its buffer; the callers derive the
/// strides from buffer sizes fixed at construction.
#[allow(clippy::too_many_arguments)]
unsafe fn matmul_acc(
    par: Parallelism,
    (m, n, k): (usize, usize, usize),
    dst: *mut f32,
    (dst_cs, dst_rs): (usize, usize),
    lhs: *const f32,
    (lhs_cs, lhs_rs): (usize, usize),
    rhs: *const f32,
    (rhs_cs, rhs_rs): (usize, usize),
) {
    gemm(
        m,
        n,
        k,
        dst,
        dst_cs as isize,
        dst_rs as isize,
        true,
        lhs,
        lhs_cs as isize,
        lhs_rs as isize,
        rhs,
        rhs_cs as isize,
        rhs_rs as isize,
        1.0,
        1.0,
        false,
        false,
        false,
        par,
    )
}

/// Threads a [`Parallelism`] allows.
pub(crate) fn threads(par: Parallelism) -> usize {
    match par {
        Parallelism::None => 1,
        Parallelism::Rayon(n) => n.max(1),
    }
}

/// A conv weight of `c_out × c_in × k` elements repacked: element
/// (o, c, j) moves from `src(o, c, j)` to `dst(o, c, j)`.
fn repack(
    w: &[f32],
    (c_out, c_in, k): (usize, usize, usize),
    src: impl Fn(usize, usize, usize) -> usize,
    dst: impl Fn(usize, usize, usize) -> usize,
) -> Vec<f32> {
    let mut out = vec![0.0; w.len()];
    for o in 0..c_out {
        for c in 0..c_in {
            for j in 0..k {
                out[dst(o, c, j)] = w[src(o, c, j)];
            }
        }
    }
    out
}

/// Kernel taps repacked from (out, in, k) to k contiguous (out, in) matrices.
fn taps_from_oik(w: &[f32], c_out: usize, c_in: usize, k: usize) -> Vec<f32> {
    let src = |o, c, j| (o * c_in + c) * k + j;
    repack(w, (c_out, c_in, k), src, |o, c, j| {
        (j * c_out + o) * c_in + c
    })
}

/// Weights repacked from (out, in, k) to (out, k, in): one row per output
/// channel holding every tap, for a thin step's single product.
fn rows_from_oik(w: &[f32], c_out: usize, c_in: usize, k: usize) -> Vec<f32> {
    let src = |o, c, j| (o * c_in + c) * k + j;
    repack(w, (c_out, c_in, k), src, |o, c, j| (o * k + j) * c_in + c)
}

/// Kernel taps repacked from (in, out, k) (transposed conv) to k contiguous (out, in) matrices.
fn taps_from_iok(w: &[f32], c_in: usize, c_out: usize, k: usize) -> Vec<f32> {
    let src = |o, c, j| (c * c_out + o) * k + j;
    repack(w, (c_out, c_in, k), src, |o, c, j| {
        (j * c_out + o) * c_in + c
    })
}

/// Shape of a conv layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvShape {
    pub c_in: usize,
    pub c_out: usize,
    pub k: usize,
    pub stride: usize,
    pub dilation: usize,
}

/// Causal streaming conv1d with a fixed input length per step (moshi's
/// `StreamableConv1d::step` for steps that are a multiple of the stride).
#[derive(Clone, Debug)]
pub struct StreamConv1d {
    s: ConvShape,
    act: InputAct,
    pad: LeftPad,
    par: Parallelism,
    /// k (c_out, c_in) matrices; when `t_out` is thin, one (c_out, k·c_in)
    /// matrix instead. Shared by clones (each clone has its own state).
    taps: Weights<f32>,
    bias: Option<Vec<f32>>,
    t_in: usize,
    t_out: usize,
    /// Samples kept from the previous steps: effective kernel − stride.
    hist: usize,
    started: bool,
    /// (c_in, hist + t_in): history then this step's (activated) input.
    buf: Vec<f32>,
    /// (c_out, t_out).
    out: Vec<f32>,
    /// (t_out, k·c_in): every tap's input gathered, when t_out is thin.
    gathered: Vec<f32>,
}

impl StreamConv1d {
    /// `weight` is (c_out, c_in, k) row-major; `t_in` samples arrive per step
    /// and must be a multiple of the stride.
    pub fn new(
        s: ConvShape,
        weight: &[f32],
        bias: Option<Vec<f32>>,
        act: InputAct,
        pad: LeftPad,
        t_in: usize,
        par: Parallelism,
    ) -> Result<Self, String> {
        let k_eff = (s.k - 1) * s.dilation + 1;
        if s.stride == 0 || k_eff < s.stride || t_in % s.stride != 0 {
            return Err(format!(
                "conv {s:?}: a step of {t_in} samples is not a multiple of the stride (or kernel < stride)"
            ));
        }
        if weight.len() != s.c_out * s.c_in * s.k
            || bias.as_ref().is_some_and(|b| b.len() != s.c_out)
        {
            return Err(format!("conv {s:?}: weight/bias sizes do not match"));
        }
        let hist = k_eff - s.stride;
        let t_out = t_in / s.stride;
        Ok(Self {
            s,
            act,
            pad,
            par,
            taps: if t_out <= THIN_MAX {
                rows_from_oik(weight, s.c_out, s.c_in, s.k).into()
            } else {
                taps_from_oik(weight, s.c_out, s.c_in, s.k).into()
            },
            bias,
            t_in,
            t_out,
            hist,
            started: false,
            buf: vec![0.0; s.c_in * (hist + t_in)],
            out: vec![0.0; s.c_out * t_out],
            gathered: if t_out <= THIN_MAX {
                vec![0.0; t_out * s.k * s.c_in]
            } else {
                Vec::new()
            },
        })
    }

    pub fn t_out(&self) -> usize {
        self.t_out
    }

    pub fn c_out(&self) -> usize {
        self.s.c_out
    }

    /// One step: `x` is (c_in, t_in); returns (c_out, t_out). With `skip`
    /// (c_out, t_out), returns `conv(x) + skip` (the residual add, fused).
    pub fn step(&mut self, x: &[f32], skip: Option<&[f32]>) -> &[f32] {
        let ConvShape {
            c_in,
            c_out,
            k,
            stride,
            dilation,
        } = self.s;
        let (t_in, t_out, hist) = (self.t_in, self.t_out, self.hist);
        let row = hist + t_in;
        assert_eq!(x.len(), c_in * t_in, "conv input size");
        for c in 0..c_in {
            let r = &mut self.buf[c * row..(c + 1) * row];
            copy_act(&mut r[hist..], &x[c * t_in..(c + 1) * t_in], self.act);
            if !self.started && self.pad == LeftPad::Replicate {
                let first = r[hist];
                r[..hist].fill(first);
            }
        }
        self.started = true;
        // Accumulator starts at bias (+ skip).
        for o in 0..c_out {
            let r = &mut self.out[o * t_out..(o + 1) * t_out];
            match skip {
                Some(s) => r.copy_from_slice(&s[o * t_out..(o + 1) * t_out]),
                None => r.fill(0.0),
            }
            if let Some(b) = &self.bias {
                let b = b[o];
                r.iter_mut().for_each(|v| *v += b);
            }
        }
        if t_out <= THIN_MAX {
            // Thin: one pass over all k taps' weights (one split across
            // threads, rows k times longer) instead of a product per tap.
            // gathered(t, j, c) = buf(c, t·stride + j·dilation)
            for t in 0..t_out {
                for j in 0..k {
                    let g = &mut self.gathered[(t * k + j) * c_in..(t * k + j + 1) * c_in];
                    for (c, g) in g.iter_mut().enumerate() {
                        *g = self.buf[c * row + t * stride + j * dilation];
                    }
                }
            }
            thin_matmul(
                &self.taps,
                &self.gathered,
                (t_out, k * c_in, c_out),
                &mut self.out,
                (1, t_out),
                true,
                threads(self.par),
            );
        } else {
            for j in 0..k {
                // out(o, t) += Σ_c W_j(o, c) · buf(c, t·stride + j·dilation)
                unsafe {
                    matmul_acc(
                        self.par,
                        (c_out, t_out, c_in),
                        self.out.as_mut_ptr(),
                        (1, t_out),
                        self.taps.as_ptr().add(j * c_out * c_in),
                        (1, c_in),
                        self.buf.as_ptr().add(j * dilation),
                        (stride, row),
                    );
                }
            }
        }
        // Keep the last `hist` samples of each row for the next step.
        for c in 0..c_in {
            self.buf.copy_within(c * row + t_in..(c + 1) * row, c * row);
        }
        &self.out
    }

    pub fn reset(&mut self) {
        self.buf.fill(0.0);
        self.started = false;
    }
}

/// Causal streaming transposed conv1d (moshi's `StreamableConvTranspose1d::step`):
/// the last `k − stride` output samples of a step are partial sums that the
/// next step completes.
#[derive(Clone, Debug)]
pub struct StreamConvTr1d {
    s: ConvShape,
    act: InputAct,
    par: Parallelism,
    taps: Weights<f32>,
    bias: Option<Vec<f32>>,
    t_in: usize,
    /// (c_in, t_in) activated input.
    xin: Vec<f32>,
    /// (t_in, c_in): the same, transposed, when t_in is thin.
    xt: Vec<f32>,
    /// (t_in, k·c_out): every tap's products, when t_in is thin.
    yt: Vec<f32>,
    /// (c_out, t_in·stride + k − stride): carried partial sums, then this step's.
    acc: Vec<f32>,
    /// (c_out, t_in·stride).
    out: Vec<f32>,
}

impl StreamConvTr1d {
    /// `weight` is (c_in, c_out, k) row-major (PyTorch's ConvTranspose1d layout).
    pub fn new(
        s: ConvShape,
        weight: &[f32],
        bias: Option<Vec<f32>>,
        act: InputAct,
        t_in: usize,
        par: Parallelism,
    ) -> Result<Self, String> {
        if s.stride == 0 || s.k < s.stride || s.dilation != 1 {
            return Err(format!("conv-transpose {s:?}: unsupported shape"));
        }
        if weight.len() != s.c_out * s.c_in * s.k
            || bias.as_ref().is_some_and(|b| b.len() != s.c_out)
        {
            return Err(format!(
                "conv-transpose {s:?}: weight/bias sizes do not match"
            ));
        }
        let t_out = t_in * s.stride;
        Ok(Self {
            s,
            act,
            par,
            taps: taps_from_iok(weight, s.c_in, s.c_out, s.k).into(),
            bias,
            t_in,
            xin: vec![0.0; s.c_in * t_in],
            xt: if t_in <= THIN_MAX {
                vec![0.0; s.c_in * t_in]
            } else {
                Vec::new()
            },
            yt: if t_in <= THIN_MAX {
                vec![0.0; t_in * s.k * s.c_out]
            } else {
                Vec::new()
            },
            acc: vec![0.0; s.c_out * (t_out + s.k - s.stride)],
            out: vec![0.0; s.c_out * t_out],
        })
    }

    pub fn t_out(&self) -> usize {
        self.t_in * self.s.stride
    }

    /// One step: `x` is (c_in, t_in); returns (c_out, t_in·stride).
    pub fn step(&mut self, x: &[f32]) -> &[f32] {
        let ConvShape {
            c_in,
            c_out,
            k,
            stride,
            ..
        } = self.s;
        let t_in = self.t_in;
        let t_out = t_in * stride;
        let tail = k - stride;
        let row = t_out + tail;
        assert_eq!(x.len(), c_in * t_in, "conv-transpose input size");
        copy_act(&mut self.xin, x, self.act);
        let thin = t_in <= THIN_MAX;
        if thin {
            for c in 0..c_in {
                for t in 0..t_in {
                    self.xt[t * c_in + c] = self.xin[c * t_in + t];
                }
            }
        }
        if thin {
            // All k taps are one (k·c_out, c_in) matrix: a single pass over
            // the weights (one split across threads), then a scatter-add of
            // yt(t, j, o) into acc(o, t·stride + j).
            thin_matmul(
                &self.taps,
                &self.xt,
                (t_in, c_in, k * c_out),
                &mut self.yt,
                (k * c_out, 1),
                false,
                threads(self.par),
            );
            for t in 0..t_in {
                for j in 0..k {
                    let y = &self.yt[(t * k + j) * c_out..(t * k + j + 1) * c_out];
                    for (o, v) in y.iter().enumerate() {
                        self.acc[o * row + t * stride + j] += v;
                    }
                }
            }
        } else {
            for j in 0..k {
                // acc(o, t·stride + j) += Σ_c W_j(o, c) · x(c, t)
                unsafe {
                    matmul_acc(
                        self.par,
                        (c_out, t_in, c_in),
                        self.acc.as_mut_ptr().add(j),
                        (stride, row),
                        self.taps.as_ptr().add(j * c_out * c_in),
                        (1, c_in),
                        self.xin.as_ptr(),
                        (1, t_in),
                    );
                }
            }
        }
        for o in 0..c_out {
            let a = &mut self.acc[o * row..(o + 1) * row];
            let b = self.bias.as_ref().map_or(0.0, |b| b[o]);
            for (y, v) in self.out[o * t_out..(o + 1) * t_out]
                .iter_mut()
                .zip(&a[..t_out])
            {
                *y = v + b;
            }
            // The partial tail moves to the front; the rest starts from zero.
            a.copy_within(t_out.., 0);
            a[tail..].fill(0.0);
        }
        &self.out
    }

    pub fn reset(&mut self) {
        self.acc.fill(0.0);
    }
}

/// Depthwise streaming transposed conv1d without bias (Mimi's learnt 2×
/// upsample: one kernel per channel). moshi expands it to a dense
/// (C, C, k) kernel of mostly zeros; this does only the C·k useful products.
#[derive(Clone, Debug)]
pub struct StreamDepthwiseConvTr1d {
    c: usize,
    k: usize,
    stride: usize,
    t_in: usize,
    /// (c, k)
    w: Vec<f32>,
    acc: Vec<f32>,
    out: Vec<f32>,
}

impl StreamDepthwiseConvTr1d {
    /// `weight` is (c, 1, k) row-major.
    pub fn new(
        c: usize,
        k: usize,
        stride: usize,
        weight: &[f32],
        t_in: usize,
    ) -> Result<Self, String> {
        if stride == 0 || k < stride || weight.len() != c * k {
            return Err(format!(
                "depthwise conv-transpose c={c} k={k} stride={stride}: unsupported shape"
            ));
        }
        let t_out = t_in * stride;
        Ok(Self {
            c,
            k,
            stride,
            t_in,
            w: weight.to_vec(),
            acc: vec![0.0; c * (t_out + k - stride)],
            out: vec![0.0; c * t_out],
        })
    }

    pub fn step(&mut self, x: &[f32]) -> &[f32] {
        let (c_n, k, stride, t_in) = (self.c, self.k, self.stride, self.t_in);
        let t_out = t_in * stride;
        let row = t_out + k - stride;
        assert_eq!(x.len(), c_n * t_in, "upsample input size");
        for c in 0..c_n {
            let a = &mut self.acc[c * row..(c + 1) * row];
            let w = &self.w[c * k..(c + 1) * k];
            for t in 0..t_in {
                let xv = x[c * t_in + t];
                for (j, wj) in w.iter().enumerate() {
                    a[t * stride + j] += wj * xv;
                }
            }
            self.out[c * t_out..(c + 1) * t_out].copy_from_slice(&a[..t_out]);
            a.copy_within(t_out.., 0);
            a[k - stride..].fill(0.0);
        }
        &self.out
    }

    pub fn reset(&mut self) {
        self.acc.fill(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle::{Device, Tensor};

    fn rand(n: usize, seed: u64) -> Vec<f32> {
        let mut r = crate::rng::SplitMix64::new(seed);
        (0..n).map(|_| r.next_normal() as f32).collect()
    }

    fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    /// 1e-4, or a few f32 ulps of the largest output for wide layers.
    fn tolerance(reference: &[f32]) -> f32 {
        let peak = reference.iter().fold(0f32, |m, v| m.max(v.abs()));
        1e-4f32.max(4e-6 * peak)
    }

    /// Streams `steps` chunks through our conv and compares with candle's
    /// whole-signal conv1d on the causally padded input.
    fn check_conv(s: ConvShape, t_in: usize, act: InputAct, pad: LeftPad, par: Parallelism) {
        let steps = 4;
        let w = rand(s.c_out * s.c_in * s.k, 1);
        let b = rand(s.c_out, 2);
        let x = rand(s.c_in * t_in * steps, 3);
        let mut conv = StreamConv1d::new(s, &w, Some(b.clone()), act, pad, t_in, par).unwrap();
        let t_out = conv.t_out();
        let mut ours = vec![0.0; s.c_out * t_out * steps];
        for st in 0..steps {
            let chunk: Vec<f32> = (0..s.c_in)
                .flat_map(|c| {
                    let base = c * t_in * steps + st * t_in;
                    x[base..base + t_in].to_vec()
                })
                .collect();
            let y = conv.step(&chunk, None);
            for o in 0..s.c_out {
                ours[o * t_out * steps + st * t_out..][..t_out]
                    .copy_from_slice(&y[o * t_out..(o + 1) * t_out]);
            }
        }
        let dev = Device::Cpu;
        let xt = Tensor::from_vec(x, (1, s.c_in, t_in * steps), &dev).unwrap();
        let xt = if act == InputAct::Elu {
            xt.elu(1.0).unwrap()
        } else {
            xt
        };
        let hist = (s.k - 1) * s.dilation + 1 - s.stride;
        let xt = match pad {
            LeftPad::Zeros => xt.pad_with_zeros(2, hist, 0).unwrap(),
            LeftPad::Replicate => xt.pad_with_same(2, hist, 0).unwrap(),
        };
        let wt = Tensor::from_vec(w, (s.c_out, s.c_in, s.k), &dev).unwrap();
        let r = xt.conv1d(&wt, 0, s.stride, s.dilation, 1).unwrap();
        let r = r
            .broadcast_add(&Tensor::from_vec(b, (1, s.c_out, 1), &dev).unwrap())
            .unwrap();
        let r: Vec<f32> = r.flatten_all().unwrap().to_vec1().unwrap();
        let d = max_diff(&ours, &r);
        assert!(d < tolerance(&r), "conv {s:?} t_in {t_in}: max diff {d}");
    }

    #[test]
    fn streaming_conv_equals_candle_on_the_whole_signal() {
        let sh = |c_in, c_out, k, stride, dilation| ConvShape {
            c_in,
            c_out,
            k,
            stride,
            dilation,
        };
        let one = Parallelism::None;
        check_conv(sh(1, 4, 7, 1, 1), 24, InputAct::None, LeftPad::Zeros, one);
        check_conv(sh(6, 3, 3, 1, 2), 10, InputAct::Elu, LeftPad::Zeros, one);
        check_conv(sh(5, 8, 8, 4, 1), 12, InputAct::Elu, LeftPad::Zeros, one);
        check_conv(
            sh(4, 4, 4, 2, 1),
            2,
            InputAct::None,
            LeftPad::Replicate,
            one,
        );
        check_conv(sh(6, 3, 7, 1, 1), 2, InputAct::Elu, LeftPad::Zeros, one);
        // Thin steps wide enough to split across threads (Mimi's deepest
        // layers): one product over all taps, rows split over the pool.
        let two = Parallelism::Rayon(2);
        check_conv(sh(96, 256, 8, 4, 1), 8, InputAct::Elu, LeftPad::Zeros, two);
        check_conv(
            sh(160, 128, 7, 1, 1),
            3,
            InputAct::None,
            LeftPad::Zeros,
            two,
        );
    }

    #[test]
    fn streaming_conv_transpose_equals_candle_on_the_whole_signal() {
        // The last two are thin and wide enough to split across threads.
        for (c_in, c_out, k, stride, t_in) in [
            (6, 3, 8, 4, 3),
            (4, 5, 10, 5, 1),
            (3, 2, 3, 2, 2),
            (160, 128, 8, 4, 2),
            (160, 96, 10, 5, 1),
        ] {
            let steps = 4;
            let w = rand(c_in * c_out * k, 4);
            let b = rand(c_out, 5);
            let x = rand(c_in * t_in * steps, 6);
            let s = ConvShape {
                c_in,
                c_out,
                k,
                stride,
                dilation: 1,
            };
            let mut tr = StreamConvTr1d::new(
                s,
                &w,
                Some(b.clone()),
                InputAct::Elu,
                t_in,
                Parallelism::Rayon(2),
            )
            .unwrap();
            let t_out = tr.t_out();
            let mut ours = vec![0.0; c_out * t_out * steps];
            for st in 0..steps {
                let chunk: Vec<f32> = (0..c_in)
                    .flat_map(|c| x[c * t_in * steps + st * t_in..][..t_in].to_vec())
                    .collect();
                let y = tr.step(&chunk);
                for o in 0..c_out {
                    ours[o * t_out * steps + st * t_out..][..t_out]
                        .copy_from_slice(&y[o * t_out..(o + 1) * t_out]);
                }
            }
            let dev = Device::Cpu;
            let xt = Tensor::from_vec(x, (1, c_in, t_in * steps), &dev)
                .unwrap()
                .elu(1.0)
                .unwrap();
            let wt = Tensor::from_vec(w, (c_in, c_out, k), &dev).unwrap();
            let r = xt.conv_transpose1d(&wt, 0, 0, stride, 1, 1).unwrap();
            let r = r
                .broadcast_add(&Tensor::from_vec(b, (1, c_out, 1), &dev).unwrap())
                .unwrap()
                .narrow(2, 0, t_out * steps)
                .unwrap();
            let r: Vec<f32> = r.flatten_all().unwrap().to_vec1().unwrap();
            let d = max_diff(&ours, &r);
            assert!(d < tolerance(&r), "conv-transpose {s:?}: max diff {d}");
        }
    }
}
