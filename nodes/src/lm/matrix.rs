//! LM weight matrices in the precision the user chose, and the batch-1
//! matrix–vector kernels that read them.
//!
//! Why our own: a batch-1 LM step reads every weight once, so it is bound by
//! memory bandwidth. candle's CPU paths fall short of that: its q8_0/q4_0 dot
//! products pick their SIMD at *compile* time (a portable x86-64 build runs
//! them scalar: 0.4–0.9 GB/s here) and it has no bf16 matmul on the CPU at
//! all. Here AVX2/FMA/F16C are chosen at run time (with a portable fallback)
//! and rows are split across the rayon pool.
//!
//! * f32/f16/bf16: weights widened to f32 in registers and FMA'd against f32
//!   activations (equal to the f32 product up to summation order).
//! * q8_0/q4_0: activations quantised per 32 values as candle and llama.cpp
//!   do, then exact int8 block products (equal to candle's quantised matmul
//!   on the same file up to summation order).
//!
//! Other GGUF quantisations (k-quants, q5, …) keep candle's own `QMatMul`.

use std::sync::Arc;

use candle::quantized::{GgmlDType, QMatMul, QTensor};
use candle::{DType, Device, Tensor};
use half::{bf16, f16};

use crate::weights_mem::Weights;

/// Rows of activations a kernel call takes at most (a streaming step: 1).
pub const MAX_ROWS: usize = 4;
/// Elements per q8_0 / q4_0 block.
const QK: usize = 32;
/// Quant bytes per block (after the f16 scale in the file).
const Q8_BYTES: usize = 32;
const Q4_BYTES: usize = 16;

/// GGUF q8_0/q4_0 blocks, repacked at load: the f16 scales of a row
/// contiguous, apart from the quants. Same bytes as the file; the kernel
/// then converts 8 scales with one instruction instead of one per block.
#[derive(Clone)]
struct Blocks {
    /// Per block (row-major), the scale's f16 bits.
    d: Weights<u16>,
    /// Per block, `Q8_BYTES` int8 or `Q4_BYTES` nibble pairs.
    q: Weights<u8>,
}

impl Blocks {
    /// From the file's interleaved blocks of `2 + per` bytes.
    fn split(bytes: &[u8], per: usize) -> Self {
        let n = bytes.len() / (2 + per);
        let mut d = Vec::with_capacity(n);
        let mut q = Vec::with_capacity(n * per);
        for blk in bytes.chunks_exact(2 + per) {
            d.push(u16::from_le_bytes([blk[0], blk[1]]));
            q.extend_from_slice(&blk[2..]);
        }
        Self {
            d: d.into(),
            q: q.into(),
        }
    }
}

#[derive(Clone)]
enum Store {
    F32(Weights<f32>),
    F16(Weights<f16>),
    Bf16(Weights<bf16>),
    /// Per 32 weights an f16 scale and 32 i8.
    Q8_0(Blocks),
    /// Per 32 weights an f16 scale and 16 bytes: element j in the low
    /// nibble of byte j, element j+16 in its high nibble, both offset by 8.
    Q4_0(Blocks),
    /// Any other GGUF quantisation, through candle.
    Candle(Arc<QMatMul>),
}

/// An (out × in) weight matrix, row-major, as `y = x · Wᵀ` uses it.
#[derive(Clone)]
pub struct Matrix {
    rows: usize,
    cols: usize,
    store: Store,
}

impl std::fmt::Debug for Matrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Matrix({}×{} {})", self.rows, self.cols, self.format())
    }
}

impl Matrix {
    /// A 2-D float tensor, kept in its own dtype (f32, f16 or bf16).
    pub fn from_tensor(t: &Tensor) -> candle::Result<Self> {
        let (rows, cols) = t.dims2()?;
        let store = match t.dtype() {
            DType::F32 => Store::F32(Weights::from_tensor(t)?),
            DType::F16 => Store::F16(Weights::from_tensor(t)?),
            DType::BF16 => Store::Bf16(Weights::from_tensor(t)?),
            d => candle::bail!("no LM kernel for {d:?} weights"),
        };
        Ok(Self { rows, cols, store })
    }

    /// A 2-D GGUF tensor: q8_0 and q4_0 keep their blocks for our kernels;
    /// f32/f16/bf16 become float matrices; other quantisations use candle's.
    pub fn from_qtensor(q: Arc<QTensor>) -> candle::Result<Self> {
        let (rows, cols) = q.shape().dims2()?;
        let store = match q.dtype() {
            GgmlDType::Q8_0 | GgmlDType::Q4_0 if cols % QK == 0 => {
                let bytes = q.data()?;
                let per = if q.dtype() == GgmlDType::Q8_0 {
                    Q8_BYTES
                } else {
                    Q4_BYTES
                };
                if bytes.len() != rows * cols / QK * (2 + per) {
                    candle::bail!(
                        "{:?} tensor of {rows}×{cols} holds {} bytes",
                        q.dtype(),
                        bytes.len()
                    );
                }
                let blocks = Blocks::split(&bytes, per);
                if q.dtype() == GgmlDType::Q8_0 {
                    Store::Q8_0(blocks)
                } else {
                    Store::Q4_0(blocks)
                }
            }
            GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16 => {
                let t = q.dequantize(&Device::Cpu)?;
                let t = match q.dtype() {
                    GgmlDType::F16 => t.to_dtype(DType::F16)?,
                    GgmlDType::BF16 => t.to_dtype(DType::BF16)?,
                    _ => t,
                };
                return Self::from_tensor(&t);
            }
            _ => Store::Candle(Arc::new(QMatMul::from_arc(q)?)),
        };
        Ok(Self { rows, cols, store })
    }

    /// Output features.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Input features.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The storage format, as `--dtype` names it.
    pub fn format(&self) -> &'static str {
        match &self.store {
            Store::F32(_) => "f32",
            Store::F16(_) => "f16",
            Store::Bf16(_) => "bf16",
            Store::Q8_0(_) => "q8_0",
            Store::Q4_0(_) => "q4_0",
            Store::Candle(_) => "gguf (candle kernel)",
        }
    }

    /// Whether [`row_into`](Self::row_into) reads a row directly (every
    /// format but candle's quantisations, which dequantise the whole matrix).
    pub fn reads_rows(&self) -> bool {
        !matches!(self.store, Store::Candle(_))
    }

    /// Whether products with this matrix split across threads.
    pub(crate) fn splits(&self) -> bool {
        self.rows * self.cols >= SPLIT_MIN
    }

    /// Bytes of weights one product reads.
    pub fn bytes(&self) -> usize {
        let n = self.rows * self.cols;
        match &self.store {
            Store::F32(_) => 4 * n,
            Store::F16(_) | Store::Bf16(_) => 2 * n,
            Store::Q8_0(b) | Store::Q4_0(b) => 2 * b.d.len() + b.q.len(),
            Store::Candle(_) => n, // unknown block size; about a byte a weight
        }
    }

    /// Row `i` in f32 (an embedding lookup).
    pub fn row_into(&self, i: usize, out: &mut [f32]) -> candle::Result<()> {
        let c = self.cols;
        if i >= self.rows || out.len() != c {
            candle::bail!(
                "row {i} of a {}×{c} matrix into {} values",
                self.rows,
                out.len()
            );
        }
        match &self.store {
            Store::F32(w) => out.copy_from_slice(&w[i * c..(i + 1) * c]),
            Store::F16(w) => out
                .iter_mut()
                .zip(&w[i * c..(i + 1) * c])
                .for_each(|(o, v)| *o = v.to_f32()),
            Store::Bf16(w) => out
                .iter_mut()
                .zip(&w[i * c..(i + 1) * c])
                .for_each(|(o, v)| *o = v.to_f32()),
            Store::Q8_0(w) | Store::Q4_0(w) => {
                let nb = c / QK;
                let q8 = matches!(self.store, Store::Q8_0(_));
                let per = if q8 { Q8_BYTES } else { Q4_BYTES };
                for (b, o) in out.chunks_exact_mut(QK).enumerate() {
                    let d = f16::from_bits(w.d[i * nb + b]).to_f32();
                    let q = &w.q[(i * nb + b) * per..][..per];
                    if q8 {
                        for (o, &q) in o.iter_mut().zip(q) {
                            *o = q as i8 as f32 * d;
                        }
                    } else {
                        for (j, &q) in q.iter().enumerate() {
                            o[j] = ((q & 0x0f) as i32 - 8) as f32 * d;
                            o[j + QK / 2] = ((q >> 4) as i32 - 8) as f32 * d;
                        }
                    }
                }
            }
            Store::Candle(m) => {
                // Whole-matrix dequantisation: callers that look rows up often
                // expand such a matrix once instead (see `reads_rows`).
                let w = match m.as_ref() {
                    QMatMul::QTensor(q) => q.dequantize(&Device::Cpu)?,
                    QMatMul::Tensor(t) | QMatMul::TensorF16(t) => t.to_dtype(DType::F32)?,
                };
                out.copy_from_slice(&w.get(i)?.to_vec1::<f32>()?);
            }
        }
        Ok(())
    }

    /// `y (m × rows) = x (m × cols) · Wᵀ` for `m <= MAX_ROWS`, rows split
    /// over `threads` (the caller's pool size).
    pub fn matvec(&self, x: &[f32], m: usize, y: &mut [f32], threads: usize) -> candle::Result<()> {
        let (n, k) = (self.rows, self.cols);
        if m == 0 || m > MAX_ROWS || x.len() < m * k || y.len() < m * n {
            candle::bail!(
                "matvec of {m} rows: x {} for {k}, y {} for {n}",
                x.len(),
                y.len()
            );
        }
        let out = Out::dense(y, n);
        match &self.store {
            Store::F32(w) => {
                split_rows(n, k, threads, out, |a, b, o| rows_f32(w, x, m, k, a, b, o))
            }
            Store::F16(w) => {
                split_rows(n, k, threads, out, |a, b, o| rows_f16(w, x, m, k, a, b, o))
            }
            Store::Bf16(w) => {
                split_rows(n, k, threads, out, |a, b, o| rows_bf16(w, x, m, k, a, b, o))
            }
            Store::Q8_0(w) | Store::Q4_0(w) => XQ.with(|xq| {
                let mut xq = xq.borrow_mut();
                xq.quantize(&x[..m * k], k);
                let xq = &*xq;
                if matches!(self.store, Store::Q8_0(_)) {
                    split_rows(n, k, threads, out, |a, b, o| rows_q8(w, xq, m, k, a, b, o))
                } else {
                    split_rows(n, k, threads, out, |a, b, o| rows_q4(w, xq, m, k, a, b, o))
                }
            }),
            Store::Candle(q) => {
                let xt = Tensor::from_slice(&x[..m * k], (m, k), &Device::Cpu)?;
                let yt = xt.apply(q.as_ref())?.flatten_all()?.to_vec1::<f32>()?;
                y[..m * n].copy_from_slice(&yt);
            }
        }
        Ok(())
    }
}

/// Where a kernel writes: element (t, j) of an (m × n) output at
/// `t · t_stride + j · j_stride`, stored or added to what is there.
#[derive(Clone, Copy)]
struct Out {
    ptr: *mut f32,
    t_stride: usize,
    j_stride: usize,
    accumulate: bool,
}
// Safety: each call of a kernel writes only its own rows [a, b) (see `split_rows`).
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

impl Out {
    /// Dense row-major (m × n), overwritten.
    fn dense(y: &mut [f32], n: usize) -> Self {
        Self {
            ptr: y.as_mut_ptr(),
            t_stride: n,
            j_stride: 1,
            accumulate: false,
        }
    }

    /// Safety: `t < m`, `j < n` of the buffer this was made from, and no
    /// other thread writes element (t, j).
    unsafe fn set(self, t: usize, j: usize, v: f32) {
        let p = self.ptr.add(t * self.t_stride + j * self.j_stride);
        *p = if self.accumulate { *p + v } else { v };
    }
}

/// `y[t][j] (+)= Σ_i w[j][i] · x[t][i]` for f32 weights held outside a
/// [`Matrix`] (Mimi's convolutions and transformer), with any output layout:
/// element (t, j) at `t · y_t + j · y_j`. Same kernels and splitting as
/// [`Matrix::matvec`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn f32_product(
    w: &[f32],
    x: &[f32],
    (m, k, n): (usize, usize, usize),
    y: &mut [f32],
    (y_t, y_j): (usize, usize),
    accumulate: bool,
    threads: usize,
) {
    assert!(m <= MAX_ROWS && w.len() >= n * k && x.len() >= m * k);
    assert!(m == 0 || n == 0 || y.len() > (m - 1) * y_t + (n - 1) * y_j);
    if m == 0 {
        return;
    }
    let out = Out {
        ptr: y.as_mut_ptr(),
        t_stride: y_t,
        j_stride: y_j,
        accumulate,
    };
    split_rows(n, k, threads, out, |a, b, o| rows_f32(w, x, m, k, a, b, o));
}

/// Weights (elements) a product needs before it is split across threads.
pub const SPLIT_MIN: usize = 1 << 17;

/// Runs `kernel(a, b, out)` over row ranges, in parallel when the matrix
/// reads at least ~256 KiB (below that, scheduling costs more than it saves).
/// Four ranges per thread: a thread that starts late (a sibling still
/// waking, or descheduled) then costs a quarter of its share, not all of it,
/// because the others steal the ranges it has not begun.
fn split_rows(
    n: usize,
    k: usize,
    threads: usize,
    out: Out,
    kernel: impl Fn(usize, usize, Out) + Sync,
) {
    if threads <= 1 || n * k < SPLIT_MIN {
        return kernel(0, n, out);
    }
    let parts = (4 * threads).min(n);
    let per = n.div_ceil(parts);
    let kernel = &kernel;
    rayon::scope(|s| {
        for p in 1..parts {
            s.spawn(move |_| kernel((p * per).min(n), ((p + 1) * per).min(n), out));
        }
        kernel(0, per.min(n), out);
    });
}

/// Whether this CPU runs the AVX2 kernels (checked once; cached by std).
#[cfg(target_arch = "x86_64")]
fn avx2() -> bool {
    std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma")
        && std::arch::is_x86_feature_detected!("f16c")
}

/// Declares `rows_X(w, x, m, k, a, b, out)`: AVX2 when the CPU has it, else
/// the portable loop.
macro_rules! dispatch {
    ($name:ident, $elem:ty, $avx:ident, $portable:ident) => {
        fn $name(w: &[$elem], x: &[f32], m: usize, k: usize, a: usize, b: usize, out: Out) {
            #[cfg(target_arch = "x86_64")]
            if avx2() {
                // Safety: features detected; ranges are in bounds (checked by `matvec`).
                return unsafe { avx::$avx(w, x, m, k, a, b, out) };
            }
            $portable(w, x, m, k, a, b, out)
        }
    };
}
dispatch!(rows_f32, f32, f32_rows, f32_portable);
dispatch!(rows_f16, f16, f16_rows, f16_portable);
dispatch!(rows_bf16, bf16, bf16_rows, bf16_portable);

/// Activations quantised as candle (and llama.cpp) do for q8_0/q4_0 weights:
/// per 32 values `d = max|x| / 127` (kept as f16) and `q = round(x / d)`.
/// The block products are then exact integer sums, so our q8_0/q4_0 results
/// equal candle's quantised matmul on the same file up to float summation
/// order, at a third of the instructions of widening every weight to f32.
#[derive(Default)]
struct QuantizedRows {
    q: Vec<i8>,
    /// Per block, the f16 scale widened to f32.
    d: Vec<f32>,
    /// Per block, 8 lanes of `8 · Σ` of 4 consecutive values: what q4_0's
    /// offset of 8 takes off a product of unsigned nibbles (see `q4_rows`).
    c: Vec<i32>,
}

impl QuantizedRows {
    fn quantize(&mut self, x: &[f32], k: usize) {
        // Grows to the widest layer once; a stream then never reallocates.
        self.q.resize(x.len(), 0);
        self.d.resize(x.len() / QK, 0.0);
        self.c.resize(x.len() / 4, 0);
        debug_assert_eq!(x.len() % k, 0);
        #[cfg(target_arch = "x86_64")]
        if avx2() {
            // Safety: features detected. Compiled for AVX2 so `round` and
            // the block loops vectorise instead of calling libm per value.
            unsafe { quantize_avx2(x, &mut self.q, &mut self.d) };
        } else {
            quantize_blocks(x, &mut self.q, &mut self.d);
        }
        for (c, q) in self.c.iter_mut().zip(self.q.chunks_exact(4)) {
            *c = 8 * q.iter().map(|&v| v as i32).sum::<i32>();
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn quantize_avx2(x: &[f32], q: &mut [i8], d: &mut [f32]) {
    quantize_blocks(x, q, d)
}

#[inline(always)]
fn quantize_blocks(x: &[f32], q: &mut [i8], d: &mut [f32]) {
    for ((xb, qb), d) in x.chunks_exact(QK).zip(q.chunks_exact_mut(QK)).zip(d) {
        let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
        let dd = amax / 127.0;
        let id = if dd != 0.0 { 1.0 / dd } else { 0.0 };
        *d = f16::from_f32(dd).to_f32();
        for (q, v) in qb.iter_mut().zip(xb) {
            *q = (v * id).round() as i8;
        }
    }
}

thread_local! {
    /// The calling thread's quantised activations (read by every part of a split product).
    static XQ: std::cell::RefCell<QuantizedRows> = Default::default();
}

/// Declares `rows_qX(w, xq, m, k, a, b, out)` for block formats.
macro_rules! dispatch_q {
    ($name:ident, $avx:ident, $per:expr) => {
        fn $name(w: &Blocks, xq: &QuantizedRows, m: usize, k: usize, a: usize, b: usize, out: Out) {
            #[cfg(target_arch = "x86_64")]
            if avx2() {
                // Safety: features detected; ranges are in bounds (checked by `matvec`).
                return unsafe { avx::$avx(w, xq, m, k, a, b, out) };
            }
            block_portable(w, $per, xq, (m, k, a, b), out)
        }
    };
}
dispatch_q!(rows_q8, q8_rows, Q8_BYTES);
dispatch_q!(rows_q4, q4_rows, Q4_BYTES);

/// The portable kernels: one weight row at a time, expanded to f32 in 32-wide
/// chunks, 8 accumulators per activation row so the compiler vectorises.
fn float_portable<E: Copy>(
    w: &[E],
    to_f32: impl Fn(E) -> f32,
    x: &[f32],
    (m, k, a, b): (usize, usize, usize, usize),
    out: Out,
) {
    let mut wf = [0f32; QK];
    for j in a..b {
        let row = &w[j * k..(j + 1) * k];
        let mut acc = [[0f32; 8]; MAX_ROWS];
        let full = k / QK * QK;
        for c in (0..full).step_by(QK) {
            for (o, &v) in wf.iter_mut().zip(&row[c..c + QK]) {
                *o = to_f32(v);
            }
            accumulate(&wf, x, m, k, c, &mut acc);
        }
        for t in 0..m {
            let mut s: f32 = acc[t].iter().sum();
            for i in full..k {
                s += to_f32(row[i]) * x[t * k + i];
            }
            // Safety: j in this call's rows, t < m.
            unsafe { out.set(t, j, s) };
        }
    }
}

#[inline(always)]
fn accumulate(
    wf: &[f32; QK],
    x: &[f32],
    m: usize,
    k: usize,
    c: usize,
    acc: &mut [[f32; 8]; MAX_ROWS],
) {
    for t in 0..m {
        let xs = &x[t * k + c..t * k + c + QK];
        for i in 0..QK {
            acc[t][i % 8] += wf[i] * xs[i];
        }
    }
}

fn f32_portable(w: &[f32], x: &[f32], m: usize, k: usize, a: usize, b: usize, out: Out) {
    float_portable(w, |v| v, x, (m, k, a, b), out)
}
fn f16_portable(w: &[f16], x: &[f32], m: usize, k: usize, a: usize, b: usize, out: Out) {
    float_portable(w, f16::to_f32, x, (m, k, a, b), out)
}
fn bf16_portable(w: &[bf16], x: &[f32], m: usize, k: usize, a: usize, b: usize, out: Out) {
    float_portable(w, bf16::to_f32, x, (m, k, a, b), out)
}

fn block_portable(
    w: &Blocks,
    per: usize,
    xq: &QuantizedRows,
    (m, k, a, b): (usize, usize, usize, usize),
    out: Out,
) {
    let nb = k / QK;
    let mut wq = [0i32; QK];
    for j in a..b {
        let mut sums = [0f32; MAX_ROWS];
        for bi in 0..nb {
            let q = &w.q[(j * nb + bi) * per..][..per];
            if per == Q8_BYTES {
                for (o, &q) in wq.iter_mut().zip(q) {
                    *o = q as i8 as i32;
                }
            } else {
                for (i, &q) in q.iter().enumerate() {
                    wq[i] = (q & 0x0f) as i32 - 8;
                    wq[i + QK / 2] = (q >> 4) as i32 - 8;
                }
            }
            let dw = f16::from_bits(w.d[j * nb + bi]).to_f32();
            for (t, sum) in sums.iter_mut().enumerate().take(m) {
                let xb = &xq.q[t * k + bi * QK..][..QK];
                let dot: i32 = wq.iter().zip(xb).map(|(a, b)| a * *b as i32).sum();
                *sum += dot as f32 * (dw * xq.d[t * nb + bi]);
            }
        }
        for (t, &s) in sums.iter().enumerate().take(m) {
            // Safety: j in this call's rows, t < m.
            unsafe { out.set(t, j, s) };
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx {
    //! AVX2 + FMA + F16C kernels. Each loads a row's weights once, widens
    //! them to 8-lane f32 vectors and FMAs them against every activation row.
    use std::arch::x86_64::*;

    use half::{bf16, f16};

    use super::{Blocks, Out, QuantizedRows, MAX_ROWS, Q4_BYTES, Q8_BYTES, QK};

    #[inline(always)]
    unsafe fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        _mm_cvtss_f32(s)
    }

    /// Float rows: `load(p)` widens 8 weights at `p` to f32. 32 weights per
    /// iteration into 4 accumulators per activation row, so the FMA latency
    /// chain (4 cycles) does not limit a row to 8 weights per 4 cycles.
    #[inline(always)]
    unsafe fn float_rows<E>(
        w: &[E],
        x: &[f32],
        (m, k, a, b): (usize, usize, usize, usize),
        out: Out,
        load: impl Fn(*const E) -> __m256,
        to_f32: impl Fn(&E) -> f32,
    ) {
        let full = k / 32 * 32;
        for j in a..b {
            let row = w.as_ptr().add(j * k);
            let mut acc = [[_mm256_setzero_ps(); 4]; MAX_ROWS];
            let mut c = 0;
            while c < full {
                let wv = [
                    load(row.add(c)),
                    load(row.add(c + 8)),
                    load(row.add(c + 16)),
                    load(row.add(c + 24)),
                ];
                for t in 0..m {
                    let xp = x.as_ptr().add(t * k + c);
                    for (u, wv) in wv.iter().enumerate() {
                        acc[t][u] = _mm256_fmadd_ps(*wv, _mm256_loadu_ps(xp.add(8 * u)), acc[t][u]);
                    }
                }
                c += 32;
            }
            for t in 0..m {
                let [a0, a1, a2, a3] = acc[t];
                let mut s = hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
                for i in full..k {
                    s += to_f32(&*row.add(i)) * x[t * k + i];
                }
                out.set(t, j, s);
            }
        }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn f32_rows(
        w: &[f32],
        x: &[f32],
        m: usize,
        k: usize,
        a: usize,
        b: usize,
        out: Out,
    ) {
        float_rows(w, x, (m, k, a, b), out, |p| _mm256_loadu_ps(p), |v| *v)
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn f16_rows(
        w: &[f16],
        x: &[f32],
        m: usize,
        k: usize,
        a: usize,
        b: usize,
        out: Out,
    ) {
        float_rows(
            w,
            x,
            (m, k, a, b),
            out,
            |p| _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i)),
            |v| v.to_f32(),
        )
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn bf16_rows(
        w: &[bf16],
        x: &[f32],
        m: usize,
        k: usize,
        a: usize,
        b: usize,
        out: Out,
    ) {
        float_rows(
            w,
            x,
            (m, k, a, b),
            out,
            // bf16 is the top half of an f32: widen and shift into place.
            |p| {
                let h = _mm256_cvtepu16_epi32(_mm_loadu_si128(p as *const __m128i));
                _mm256_castsi256_ps(_mm256_slli_epi32(h, 16))
            },
            |v| v.to_f32(),
        )
    }

    /// One f16 scale, broadcast.
    #[inline(always)]
    unsafe fn scale(bits: u16) -> __m256 {
        _mm256_broadcastss_ps(_mm_cvtph_ps(_mm_set1_epi16(bits as i16)))
    }

    /// Σ w·x over 32 int8 pairs as 8 f32 lanes: |x| (unsigned) times w with
    /// x's sign, pairwise into i16 (at most 2·127·127, no saturation), then i32.
    #[inline(always)]
    unsafe fn dot_i8(w: __m256i, x: __m256i) -> __m256 {
        let ax = _mm256_sign_epi8(x, x);
        let sw = _mm256_sign_epi8(w, x);
        let p = _mm256_madd_epi16(_mm256_maddubs_epi16(ax, sw), _mm256_set1_epi16(1));
        _mm256_cvtepi32_ps(p)
    }

    /// Block rows against quantised activations (scales `xd`): `dot(quants,
    /// activation block)` gives a block's products as 8 f32 lanes before the
    /// scales. One activation row (the streaming case) takes 8 blocks per
    /// iteration: their 8 weight scales converted at once and multiplied by
    /// the activations' scales, each then picked out with one permute; two
    /// accumulators (the FMA latency would otherwise bound the loop).
    #[inline(always)]
    unsafe fn block_rows(
        w: &Blocks,
        per: usize,
        xd: &[f32],
        (m, k, a, b): (usize, usize, usize, usize),
        out: Out,
        dot: impl Fn(*const u8, usize) -> __m256,
    ) {
        let nb = k / QK;
        let lanes: [__m256i; 8] = std::array::from_fn(|u| _mm256_set1_epi32(u as i32));
        for j in a..b {
            let q = w.q.as_ptr().add(j * nb * per);
            let ds = &w.d[j * nb..(j + 1) * nb];
            if m == 1 {
                let mut acc = [_mm256_setzero_ps(); 2];
                let mut bi = 0;
                while bi + 8 <= nb {
                    let dw =
                        _mm256_cvtph_ps(_mm_loadu_si128(ds.as_ptr().add(bi) as *const __m128i));
                    let dv = _mm256_mul_ps(dw, _mm256_loadu_ps(xd.as_ptr().add(bi)));
                    for (u, lane) in lanes.iter().enumerate() {
                        let p = dot(q.add((bi + u) * per), bi + u);
                        let d = _mm256_permutevar8x32_ps(dv, *lane);
                        acc[u % 2] = _mm256_fmadd_ps(p, d, acc[u % 2]);
                    }
                    bi += 8;
                }
                for bi in bi..nb {
                    let d = _mm256_mul_ps(scale(ds[bi]), _mm256_broadcast_ss(&xd[bi]));
                    acc[0] = _mm256_fmadd_ps(dot(q.add(bi * per), bi), d, acc[0]);
                }
                out.set(0, j, hsum(_mm256_add_ps(acc[0], acc[1])));
                continue;
            }
            let mut acc = [_mm256_setzero_ps(); MAX_ROWS];
            for bi in 0..nb {
                let dw = scale(ds[bi]);
                for (t, acc) in acc.iter_mut().enumerate().take(m) {
                    let d = _mm256_mul_ps(dw, _mm256_broadcast_ss(&xd[t * nb + bi]));
                    *acc = _mm256_fmadd_ps(dot(q.add(bi * per), t * nb + bi), d, *acc);
                }
            }
            for (t, a) in acc.iter().enumerate().take(m) {
                out.set(t, j, hsum(*a));
            }
        }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn q8_rows(
        w: &Blocks,
        xq: &QuantizedRows,
        m: usize,
        k: usize,
        a: usize,
        b: usize,
        out: Out,
    ) {
        block_rows(w, Q8_BYTES, &xq.d, (m, k, a, b), out, |q, xb| {
            let x = _mm256_loadu_si256(xq.q.as_ptr().add(xb * QK) as *const __m256i);
            dot_i8(_mm256_loadu_si256(q as *const __m256i), x)
        })
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn q4_rows(
        w: &Blocks,
        xq: &QuantizedRows,
        m: usize,
        k: usize,
        a: usize,
        b: usize,
        out: Out,
    ) {
        if m == 1 {
            return q4_rows_one(w, xq, k, a, b, out);
        }
        let mask = _mm_set1_epi8(0x0f);
        let ones = _mm256_set1_epi16(1);
        block_rows(w, Q4_BYTES, &xq.d, (m, k, a, b), out, |q, xb| {
            // Element j in the low nibble of byte j, j+16 in its high nibble.
            let bytes = _mm_loadu_si128(q as *const __m128i);
            let lo = _mm_and_si128(bytes, mask);
            let hi = _mm_and_si128(_mm_srli_epi16(bytes, 4), mask);
            let w = _mm256_set_m128i(hi, lo);
            let x = _mm256_loadu_si256(xq.q.as_ptr().add(xb * QK) as *const __m256i);
            // (w − 8)·x = w·x − 8·x: the nibbles go in unsigned (no sign
            // trick, no offset per weight) and 8·Σx comes precomputed.
            let p = _mm256_madd_epi16(_mm256_maddubs_epi16(w, x), ones);
            let c = _mm256_loadu_si256(xq.c.as_ptr().add(xb * 8) as *const __m256i);
            _mm256_cvtepi32_ps(_mm256_sub_epi32(p, c))
        })
    }

    /// q4_0 against one activation row (the streaming case): as
    /// [`block_rows`] with 8 blocks per iteration, and the nibbles of two
    /// blocks unpacked by one 256-bit load, mask and shift (then one lane
    /// permute per block) instead of a 128-bit round per block.
    #[inline(always)]
    unsafe fn q4_rows_one(w: &Blocks, xq: &QuantizedRows, k: usize, a: usize, b: usize, out: Out) {
        let nb = k / QK;
        let mask = _mm256_set1_epi8(0x0f);
        let ones = _mm256_set1_epi16(1);
        let lanes: [__m256i; 8] = std::array::from_fn(|u| _mm256_set1_epi32(u as i32));
        // (w − 8)·x = w·x − 8·x with w the unsigned nibbles (see `q4_rows`).
        let dot = |wv: __m256i, xb: usize| {
            let x = _mm256_loadu_si256(xq.q.as_ptr().add(xb * QK) as *const __m256i);
            let p = _mm256_madd_epi16(_mm256_maddubs_epi16(wv, x), ones);
            let c = _mm256_loadu_si256(xq.c.as_ptr().add(xb * 8) as *const __m256i);
            _mm256_cvtepi32_ps(_mm256_sub_epi32(p, c))
        };
        for j in a..b {
            let q = w.q.as_ptr().add(j * nb * Q4_BYTES);
            let ds = &w.d[j * nb..(j + 1) * nb];
            let mut acc = [_mm256_setzero_ps(); 2];
            let mut bi = 0;
            while bi + 8 <= nb {
                let dw = _mm256_cvtph_ps(_mm_loadu_si128(ds.as_ptr().add(bi) as *const __m128i));
                let dv = _mm256_mul_ps(dw, _mm256_loadu_ps(xq.d.as_ptr().add(bi)));
                for pair in 0..4 {
                    let b0 = bi + 2 * pair;
                    let v = _mm256_loadu_si256(q.add(b0 * Q4_BYTES) as *const __m256i);
                    let lo = _mm256_and_si256(v, mask);
                    let hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), mask);
                    // Block b0: its low nibbles then its high ones; block b0+1 likewise.
                    let w0 = _mm256_permute2x128_si256(lo, hi, 0x20);
                    let w1 = _mm256_permute2x128_si256(lo, hi, 0x31);
                    let d0 = _mm256_permutevar8x32_ps(dv, lanes[2 * pair]);
                    let d1 = _mm256_permutevar8x32_ps(dv, lanes[2 * pair + 1]);
                    acc[0] = _mm256_fmadd_ps(dot(w0, b0), d0, acc[0]);
                    acc[1] = _mm256_fmadd_ps(dot(w1, b0 + 1), d1, acc[1]);
                }
                bi += 8;
            }
            for bi in bi..nb {
                let bytes = _mm_loadu_si128(q.add(bi * Q4_BYTES) as *const __m128i);
                let m4 = _mm_set1_epi8(0x0f);
                let lo = _mm_and_si128(bytes, m4);
                let hi = _mm_and_si128(_mm_srli_epi16(bytes, 4), m4);
                let d = _mm256_mul_ps(scale(ds[bi]), _mm256_broadcast_ss(&xq.d[bi]));
                acc[0] = _mm256_fmadd_ps(dot(_mm256_set_m128i(hi, lo), bi), d, acc[0]);
            }
            out.set(0, j, hsum(_mm256_add_ps(acc[0], acc[1])));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    fn random(n: usize, seed: u64) -> Vec<f32> {
        let mut r = SplitMix64::new(seed);
        (0..n).map(|_| r.next_normal() as f32).collect()
    }

    /// f64 product of the *dequantised* weights: what every kernel must equal.
    fn reference(w: &Tensor, x: &[f32], m: usize) -> Vec<f64> {
        let w: Vec<Vec<f32>> = w.to_dtype(DType::F32).unwrap().to_vec2().unwrap();
        let k = w[0].len();
        (0..m)
            .flat_map(|t| {
                w.iter()
                    .map(move |r| {
                        r.iter()
                            .zip(&x[t * k..])
                            .map(|(a, b)| *a as f64 * *b as f64)
                            .sum()
                    })
                    .collect::<Vec<f64>>()
            })
            .collect()
    }

    /// x as the q8_0/q4_0 kernels see it, by the rule candle documents
    /// (written out again here): per 32 values d = max|x|/127 as f16, q = round(x/d).
    fn as_quantised(x: &[f32]) -> Vec<f32> {
        x.chunks(32)
            .flat_map(|b| {
                let d = b.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0;
                let id = if d == 0.0 { 0.0 } else { 1.0 / d };
                let dh = f16::from_f32(d).to_f32();
                b.iter()
                    .map(move |v| (v * id).round() * dh)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn check(mat: &Matrix, dequant: &Tensor, what: &str) {
        let k = mat.cols();
        let quantised = mat.format().starts_with('q');
        for m in 1..=MAX_ROWS {
            let x = random(m * k, m as u64);
            let want = if quantised {
                reference(dequant, &as_quantised(&x), m)
            } else {
                reference(dequant, &x, m)
            };
            for threads in [1, 3] {
                let mut y = vec![f32::NAN; m * mat.rows()];
                mat.matvec(&x, m, &mut y, threads).unwrap();
                let scale = want.iter().fold(0f64, |a, v| a.max(v.abs()));
                let worst = y
                    .iter()
                    .zip(&want)
                    .map(|(a, b)| (*a as f64 - b).abs())
                    .fold(0f64, f64::max);
                assert!(
                    worst <= 2e-6 * scale.max(1.0),
                    "{what}: m {m} threads {threads}: max |diff| {worst} (scale {scale})"
                );
            }
        }
        // Embedding rows equal the dequantised rows.
        let mut row = vec![0f32; k];
        let last = mat.rows() - 1;
        mat.row_into(last, &mut row).unwrap();
        let want: Vec<f32> = dequant
            .to_dtype(DType::F32)
            .unwrap()
            .get(last)
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(row, want, "{what}: row {last}");
    }

    /// Every format, with sizes that split across threads and leave a tail
    /// (k = 4128: 129 quant blocks; float rows end in a scalar tail).
    #[test]
    fn every_format_equals_the_product_of_its_dequantised_weights() {
        let (n, k) = (67, 4128);
        let w = Tensor::from_vec(random(n * k, 9), (n, k), &Device::Cpu).unwrap();
        for dt in [DType::F32, DType::F16, DType::BF16] {
            let t = w.to_dtype(dt).unwrap();
            check(&Matrix::from_tensor(&t).unwrap(), &t, &format!("{dt:?}"));
        }
        for q in [GgmlDType::Q8_0, GgmlDType::Q4_0, GgmlDType::Q4K] {
            // k-quants need rows of 256: 4096 there; 4128 (a tail block past
            // the kernels' 8-block steps) for ours.
            let w = if q == GgmlDType::Q4K {
                w.narrow(1, 0, 4096).unwrap()
            } else {
                w.clone()
            };
            let qt = Arc::new(QTensor::quantize(&w, q).unwrap());
            let mat = Matrix::from_qtensor(qt.clone()).unwrap();
            if q == GgmlDType::Q4K {
                assert_eq!(mat.format(), "gguf (candle kernel)");
                continue; // candle's own kernel quantises activations: not exact
            }
            check(
                &mat,
                &qt.dequantize(&Device::Cpu).unwrap(),
                &format!("{q:?}"),
            );
        }
        // Odd widths: float kernels take any k (the tail runs scalar).
        let t = Tensor::from_vec(random(5 * 37, 4), (5, 37), &Device::Cpu).unwrap();
        check(
            &Matrix::from_tensor(&t.to_dtype(DType::BF16).unwrap()).unwrap(),
            &t.to_dtype(DType::BF16).unwrap(),
            "bf16 k=37",
        );
    }

    #[test]
    fn portable_kernels_equal_the_simd_ones() {
        let (n, k) = (9, 256);
        let w = Tensor::from_vec(random(n * k, 2), (n, k), &Device::Cpu).unwrap();
        let x = random(2 * k, 3);
        for q in [GgmlDType::Q8_0, GgmlDType::Q4_0] {
            let qt = QTensor::quantize(&w, q).unwrap();
            let blocks = Blocks::split(
                &qt.data().unwrap(),
                if q == GgmlDType::Q8_0 {
                    Q8_BYTES
                } else {
                    Q4_BYTES
                },
            );
            let (mut a, mut b) = (vec![0f32; 2 * n], vec![0f32; 2 * n]);
            let per = if q == GgmlDType::Q8_0 {
                Q8_BYTES
            } else {
                Q4_BYTES
            };
            let mut xq = QuantizedRows::default();
            xq.quantize(&x, k);
            block_portable(&blocks, per, &xq, (2, k, 0, n), Out::dense(&mut a, n));
            let mat = Matrix::from_qtensor(Arc::new(qt)).unwrap();
            mat.matvec(&x, 2, &mut b, 1).unwrap();
            for (p, s) in a.iter().zip(&b) {
                assert!(
                    (p - s).abs() <= 1e-5 * p.abs().max(1.0),
                    "{q:?}: {p} vs {s}"
                );
            }
        }
    }

    #[test]
    fn bad_shapes_are_errors() {
        let t = Tensor::zeros((4, 8), DType::F32, &Device::Cpu).unwrap();
        let m = Matrix::from_tensor(&t).unwrap();
        assert!(m.matvec(&[0.0; 7], 1, &mut [0.0; 4], 1).is_err());
        assert!(m.matvec(&[0.0; 40], 5, &mut [0.0; 20], 1).is_err());
        assert!(m.row_into(4, &mut [0.0; 8]).is_err());
        assert!(Matrix::from_tensor(&Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap()).is_err());
    }
}
