//! `y = x · W + b` for f32 on x86-64 CPUs with AVX-512F, with `W` packed once at load time.
//!
//! The `gemm` crate that candle uses runs its AVX2/FMA kernels on stable Rust (its AVX-512
//! kernels need nightly) and packs its operands on every call. Here the weight is stored as
//! column panels of [`NR`] = 32 floats (`[panel][k][32]`, zero-padded), and an `MR × 32`
//! register-blocked microkernel (2 × `MR` zmm accumulators, started from the bias) walks `k`
//! once per output tile. Panels are spread over rayon's threads (`RAYON_NUM_THREADS`), like
//! candle's own matmul.

use std::arch::x86_64::*;

use rayon::prelude::*;

/// Output columns per packed panel (two zmm registers).
pub const NR: usize = 32;
/// Output rows per microkernel call.
const MR: usize = 12;
/// Rows of `x` per job (a multiple of [`MR`]).
const MC: usize = 96;

/// Whether this CPU can run the packed kernel.
pub fn available() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
}

/// A `[k, n]` weight packed into `NR`-column panels, with its bias padded to whole panels.
pub struct PackedWeight {
    data: Vec<f32>,
    bias: Vec<f32>,
    k: usize,
    n: usize,
}

impl PackedWeight {
    /// `wt`: the weight as a row-major `[k, n]` matrix (i.e. the transposed `nn.Linear`
    /// weight); `bias`: `n` values.
    pub fn new(wt: &[f32], bias: &[f32], k: usize, n: usize) -> Self {
        debug_assert_eq!(wt.len(), k * n);
        debug_assert_eq!(bias.len(), n);
        let panels = n.div_ceil(NR);
        let mut data = vec![0f32; panels * k * NR];
        for p in 0..panels {
            let cols = NR.min(n - p * NR);
            for kk in 0..k {
                let src = &wt[kk * n + p * NR..kk * n + p * NR + cols];
                let dst = (p * k + kk) * NR;
                data[dst..dst + cols].copy_from_slice(src);
            }
        }
        let mut padded = vec![0f32; panels * NR];
        padded[..n].copy_from_slice(bias);
        Self {
            data,
            bias: padded,
            k,
            n,
        }
    }

    /// Output columns.
    pub fn n(&self) -> usize {
        self.n
    }

    /// `x`: row-major `[m, k]` → row-major `[m, n]` = `x · W + b`.
    ///
    /// # Panics
    /// If `x.len()` is not a multiple of `k`, or (in debug builds) if [`available`] is false.
    pub fn matmul_bias(&self, x: &[f32]) -> Vec<f32> {
        debug_assert!(available());
        let (k, n) = (self.k, self.n);
        assert!(k > 0 && x.len().is_multiple_of(k), "x is not [m, {k}]");
        let m = x.len() / k;
        let mut out = vec![0f32; m * n];
        let panels = n.div_ceil(NR);
        let chunks = m.div_ceil(MC);
        let out_addr = out.as_mut_ptr() as usize;
        // Job = (row chunk of MC rows, panel): the chunk of `x` stays in L2 across its panels.
        let run = |job: usize| {
            let (chunk, p) = (job / panels, job % panels);
            let rows = MC.min(m - chunk * MC);
            let cols = NR.min(n - p * NR);
            // SAFETY: avx512f is present (checked by the caller at load time); job (chunk, p)
            // writes only rows chunk*MC..+rows, columns p*NR..+cols of `out`, so concurrent jobs
            // never overlap, and all reads stay inside `x` ([m, k]), the panel ([k, NR]) and the
            // padded bias.
            unsafe {
                panel(
                    x.as_ptr().add(chunk * MC * k),
                    rows,
                    k,
                    self.data.as_ptr().add(p * k * NR),
                    self.bias.as_ptr().add(p * NR),
                    (out_addr as *mut f32).add(chunk * MC * n + p * NR),
                    n,
                    cols,
                );
            }
        };
        let jobs = chunks * panels;
        if rayon::current_num_threads() > 1 && m * n * k >= 1 << 16 {
            (0..jobs).into_par_iter().for_each(run);
        } else {
            (0..jobs).for_each(run);
        }
        out
    }
}

/// In place `v ← 0.5·v·(1 + erf(v/√2))`, the exact (erf) GELU of BERT. erf is Abramowitz &
/// Stegun 7.1.26 (absolute error ≤ 1.5e-7, the size of an f32 rounding step near 1) with a
/// degree-6 exp polynomial, 16 lanes at a time, instead of a scalar libm `erff` per value.
///
/// # Panics
/// In debug builds, if [`available`] is false.
pub fn gelu_erf_in_place(v: &mut [f32]) {
    debug_assert!(available());
    // SAFETY: avx512f is present (checked by the caller at load time); every access is a
    // masked load/store inside `v`.
    unsafe { gelu_erf_avx512(v) }
}

#[target_feature(enable = "avx512f")]
unsafe fn gelu_erf_avx512(v: &mut [f32]) {
    let n = v.len();
    let p = v.as_mut_ptr();
    let mut i = 0;
    while i < n {
        let left = n - i;
        let mask: u16 = if left >= 16 {
            u16::MAX
        } else {
            ((1u32 << left) - 1) as u16
        };
        let x = _mm512_maskz_loadu_ps(mask, p.add(i));
        _mm512_mask_storeu_ps(p.add(i), mask, gelu16(x));
        i += 16;
    }
}

#[inline(always)]
unsafe fn gelu16(x: __m512) -> __m512 {
    let z = _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::FRAC_1_SQRT_2));
    let az = _mm512_abs_ps(z);
    // t = 1 / (1 + p·|z|)
    let t = _mm512_div_ps(
        _mm512_set1_ps(1.0),
        _mm512_fmadd_ps(_mm512_set1_ps(0.327_591_1), az, _mm512_set1_ps(1.0)),
    );
    let mut poly = _mm512_set1_ps(1.061_405_4);
    poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(-1.453_152));
    poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(1.421_413_8));
    poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(-0.284_496_74));
    poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(0.254_829_6));
    poly = _mm512_mul_ps(poly, t);
    let e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_mul_ps(az, az)));
    // erf(|z|) = 1 - poly·e^{-z²}; erf is odd.
    let erf_abs = _mm512_fnmadd_ps(poly, e, _mm512_set1_ps(1.0));
    let sign = _mm512_castps_si512(z);
    let sign = _mm512_and_si512(sign, _mm512_set1_epi32(i32::MIN));
    let erf = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(erf_abs), sign));
    let half_x = _mm512_mul_ps(x, _mm512_set1_ps(0.5));
    _mm512_fmadd_ps(half_x, erf, half_x)
}

/// e^x for x ≤ 0 (clamped at -87.3, where the result underflows to ~0 anyway).
#[inline(always)]
unsafe fn exp16(x: __m512) -> __m512 {
    let x = _mm512_max_ps(x, _mm512_set1_ps(-87.3));
    // x = n·ln2 + r, |r| ≤ ln2/2
    let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
        _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E)),
    );
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693_145_75), x);
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428_606_8e-6), r);
    let mut y = _mm512_set1_ps(1.0 / 720.0);
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.0 / 120.0));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.0 / 24.0));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.0 / 6.0));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(0.5));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.0));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.0));
    _mm512_scalef_ps(y, n)
}

/// One 32-column panel of the output, blocked over `k` in [`KC`] steps so that the
/// `KC × 32` slice of the packed weight stays in L1 while every row tile uses it.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
unsafe fn panel(
    a: *const f32,
    m: usize,
    k: usize,
    b: *const f32,
    bias: *const f32,
    c: *mut f32,
    ldc: usize,
    cols: usize,
) {
    let m0: u16 = if cols >= 16 {
        u16::MAX
    } else {
        ((1u32 << cols) - 1) as u16
    };
    let m1: u16 = if cols <= 16 {
        0
    } else {
        ((1u32 << (cols - 16)) - 1) as u16
    };
    let masks = (m0, m1);
    let mut k0 = 0;
    while k0 < k {
        let kc = KC.min(k - k0);
        let first = k0 == 0;
        let b_k = b.add(k0 * NR);
        let mut i = 0;
        while i < m {
            let rows = MR.min(m - i);
            let a_i = a.add(i * k + k0);
            let c_i = c.add(i * ldc);
            let t = Tile {
                a: a_i,
                lda: k,
                kc,
                b: b_k,
                bias,
                c: c_i,
                ldc,
                masks,
                first,
            };
            match rows {
                12 => t.run::<12>(),
                11 => t.run::<11>(),
                10 => t.run::<10>(),
                9 => t.run::<9>(),
                8 => t.run::<8>(),
                7 => t.run::<7>(),
                6 => t.run::<6>(),
                5 => t.run::<5>(),
                4 => t.run::<4>(),
                3 => t.run::<3>(),
                2 => t.run::<2>(),
                _ => t.run::<1>(),
            }
            i += rows;
        }
        k0 += kc;
    }
}

/// `k` values per block of [`panel`] (`KC × 32` floats = 16 KiB of weight).
const KC: usize = 128;

/// Up to `R` rows × 32 columns over `kc` values of `k`: `c[r][j] (+)= Σ a[r][kk] · b[kk][j]`,
/// starting from the bias on the first block and from `c` on the others.
struct Tile {
    a: *const f32,
    lda: usize,
    kc: usize,
    b: *const f32,
    bias: *const f32,
    c: *mut f32,
    ldc: usize,
    masks: (u16, u16),
    first: bool,
}

impl Tile {
    #[inline(always)]
    unsafe fn run<const R: usize>(&self) {
        let (m0, m1) = self.masks;
        let (a, b, c, lda, ldc) = (self.a, self.b, self.c, self.lda, self.ldc);
        let mut acc0: [__m512; R] = [_mm512_setzero_ps(); R];
        let mut acc1: [__m512; R] = [_mm512_setzero_ps(); R];
        if self.first {
            let bias0 = _mm512_loadu_ps(self.bias);
            let bias1 = _mm512_loadu_ps(self.bias.add(16));
            acc0 = [bias0; R];
            acc1 = [bias1; R];
        } else {
            for r in 0..R {
                acc0[r] = _mm512_maskz_loadu_ps(m0, c.add(r * ldc));
                acc1[r] = _mm512_maskz_loadu_ps(m1, c.add(r * ldc + 16));
            }
        }
        for kk in 0..self.kc {
            let w0 = _mm512_loadu_ps(b.add(kk * NR));
            let w1 = _mm512_loadu_ps(b.add(kk * NR + 16));
            for r in 0..R {
                let av = _mm512_set1_ps(*a.add(r * lda + kk));
                acc0[r] = _mm512_fmadd_ps(av, w0, acc0[r]);
                acc1[r] = _mm512_fmadd_ps(av, w1, acc1[r]);
            }
        }
        for r in 0..R {
            _mm512_mask_storeu_ps(c.add(r * ldc), m0, acc0[r]);
            _mm512_mask_storeu_ps(c.add(r * ldc + 16), m1, acc1[r]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// erf by its Maclaurin series / continued tail in f64, as a reference.
    fn erf_ref(x: f64) -> f64 {
        // Abramowitz & Stegun 7.1.5 series, accurate for |x| < 4 with enough terms.
        if x.abs() > 4.0 {
            return x.signum();
        }
        let mut sum = 0.0;
        let mut term = x;
        let mut k = 0.0;
        while term.abs() > 1e-17 || k < 5.0 {
            sum += term / (2.0 * k + 1.0);
            k += 1.0;
            term *= -x * x / k;
            if k > 200.0 {
                break;
            }
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn gelu_matches_exact_erf_gelu() {
        if !available() {
            return;
        }
        let xs: Vec<f32> = (-2000..=2000)
            .map(|i| i as f32 / 200.0)
            .chain([-100.0, 100.0, 0.0])
            .collect();
        let mut got = xs.clone();
        gelu_erf_in_place(&mut got);
        for (&x, &g) in xs.iter().zip(&got) {
            let x64 = f64::from(x);
            let want = 0.5 * x64 * (1.0 + erf_ref(x64 / std::f64::consts::SQRT_2));
            assert!(
                (f64::from(g) - want).abs() < 2e-6 * (1.0 + x64.abs()),
                "gelu({x}) = {g}, want {want}"
            );
        }
    }

    #[test]
    fn matches_naive_matmul_on_ragged_shapes() {
        if !available() {
            return;
        }
        for &(m, k, n) in &[
            (1, 3, 5),
            (13, 17, 40),
            (25, 64, 96),
            (7, 384, 33),
            (30, 300, 70),
        ] {
            let x: Vec<f32> = (0..m * k)
                .map(|i| ((i * 7 % 13) as f32 - 6.0) / 7.0)
                .collect();
            let w: Vec<f32> = (0..k * n)
                .map(|i| ((i * 5 % 11) as f32 - 5.0) / 9.0)
                .collect();
            let b: Vec<f32> = (0..n).map(|j| j as f32 / 10.0).collect();
            let got = PackedWeight::new(&w, &b, k, n).matmul_bias(&x);
            for i in 0..m {
                for j in 0..n {
                    let want: f32 =
                        b[j] + (0..k).map(|kk| x[i * k + kk] * w[kk * n + j]).sum::<f32>();
                    let g = got[i * n + j];
                    assert!(
                        (g - want).abs() < 1e-3 * (1.0 + want.abs()),
                        "{m}x{k}x{n} [{i},{j}]: {g} vs {want}"
                    );
                }
            }
        }
    }
}
