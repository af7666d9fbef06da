//! `y = x · W + b` for f32 on x86-64 CPUs with AVX-512F, with `W` packed once at load time.
//!
//! The `gemm` crate that candle uses runs its AVX2/FMA kernels on stable Rust (its AVX-512
//! kernels need nightly) and packs its operands on every call. Here the weight is stored as
//! column panels of [`NR`] = 32 floats (`[panel][k][32]`, zero-padded), and an `MR × 32`
//! register-blocked microkernel (2 × `MR` zmm accumulators, started from the bias) walks `k`
//! once per output tile. Panels are spread over rayon's threads (`RAYON_NUM_THREADS`), like
//! candle's own matmul.

use std::arch::x86_64::{
    __m512, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_mask_storeu_ps, _mm512_set1_ps,
    _mm512_storeu_ps,
};

use rayon::prelude::*;

/// Output columns per packed panel (two zmm registers).
pub const NR: usize = 32;
/// Output rows per microkernel call.
const MR: usize = 12;

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
        assert!(k > 0 && x.len() % k == 0, "x is not [m, {k}]");
        let m = x.len() / k;
        let mut out = vec![0f32; m * n];
        let panels = n.div_ceil(NR);
        let out_addr = out.as_mut_ptr() as usize;
        let run = |p: usize| {
            let cols = NR.min(n - p * NR);
            // SAFETY: avx512f is present (checked by the caller at load time); panel `p` writes
            // only columns p*NR..p*NR+cols of `out`, so concurrent panels never overlap, and all
            // reads stay inside `x` ([m, k]), the panel ([k, NR]) and the padded bias.
            unsafe {
                panel(
                    x.as_ptr(),
                    m,
                    k,
                    self.data.as_ptr().add(p * k * NR),
                    self.bias.as_ptr().add(p * NR),
                    (out_addr as *mut f32).add(p * NR),
                    n,
                    cols,
                );
            }
        };
        if rayon::current_num_threads() > 1 && m * n * k >= 1 << 16 {
            (0..panels).into_par_iter().for_each(run);
        } else {
            (0..panels).for_each(run);
        }
        out
    }
}

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
    let mut i = 0;
    while i < m {
        let rows = MR.min(m - i);
        let a_i = a.add(i * k);
        let c_i = c.add(i * ldc);
        match rows {
            12 => tile::<12>(a_i, k, b, bias, c_i, ldc, cols),
            11 => tile::<11>(a_i, k, b, bias, c_i, ldc, cols),
            10 => tile::<10>(a_i, k, b, bias, c_i, ldc, cols),
            9 => tile::<9>(a_i, k, b, bias, c_i, ldc, cols),
            8 => tile::<8>(a_i, k, b, bias, c_i, ldc, cols),
            7 => tile::<7>(a_i, k, b, bias, c_i, ldc, cols),
            6 => tile::<6>(a_i, k, b, bias, c_i, ldc, cols),
            5 => tile::<5>(a_i, k, b, bias, c_i, ldc, cols),
            4 => tile::<4>(a_i, k, b, bias, c_i, ldc, cols),
            3 => tile::<3>(a_i, k, b, bias, c_i, ldc, cols),
            2 => tile::<2>(a_i, k, b, bias, c_i, ldc, cols),
            _ => tile::<1>(a_i, k, b, bias, c_i, ldc, cols),
        }
        i += rows;
    }
}

/// `R` rows × up to 32 columns: `c[r][j] = bias[j] + Σ_kk a[r][kk] · b[kk][j]`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<const R: usize>(
    a: *const f32,
    lda: usize,
    b: *const f32,
    bias: *const f32,
    c: *mut f32,
    ldc: usize,
    cols: usize,
) {
    let bias0 = _mm512_loadu_ps(bias);
    let bias1 = _mm512_loadu_ps(bias.add(16));
    let mut acc0: [__m512; R] = [bias0; R];
    let mut acc1: [__m512; R] = [bias1; R];
    for kk in 0..lda {
        let w0 = _mm512_loadu_ps(b.add(kk * NR));
        let w1 = _mm512_loadu_ps(b.add(kk * NR + 16));
        for r in 0..R {
            let av = _mm512_set1_ps(*a.add(r * lda + kk));
            acc0[r] = _mm512_fmadd_ps(av, w0, acc0[r]);
            acc1[r] = _mm512_fmadd_ps(av, w1, acc1[r]);
        }
    }
    if cols == NR {
        for r in 0..R {
            _mm512_storeu_ps(c.add(r * ldc), acc0[r]);
            _mm512_storeu_ps(c.add(r * ldc + 16), acc1[r]);
        }
    } else {
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
        for r in 0..R {
            _mm512_mask_storeu_ps(c.add(r * ldc), m0, acc0[r]);
            _mm512_mask_storeu_ps(c.add(r * ldc + 16), m1, acc1[r]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_naive_matmul_on_ragged_shapes() {
        if !available() {
            return;
        }
        for &(m, k, n) in &[(1, 3, 5), (13, 17, 40), (25, 64, 96), (7, 384, 33)] {
            let x: Vec<f32> = (0..m * k).map(|i| ((i * 7 % 13) as f32 - 6.0) / 7.0).collect();
            let w: Vec<f32> = (0..k * n).map(|i| ((i * 5 % 11) as f32 - 5.0) / 9.0).collect();
            let b: Vec<f32> = (0..n).map(|j| j as f32 / 10.0).collect();
            let got = PackedWeight::new(&w, &b, k, n).matmul_bias(&x);
            for i in 0..m {
                for j in 0..n {
                    let want: f32 = b[j] + (0..k).map(|kk| x[i * k + kk] * w[kk * n + j]).sum::<f32>();
                    let g = got[i * n + j];
                    assert!((g - want).abs() < 1e-3 * (1.0 + want.abs()), "{m}x{k}x{n} [{i},{j}]: {g} vs {want}");
                }
            }
        }
    }
}
