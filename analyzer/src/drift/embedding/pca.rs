//! Principal component analysis as Evidently applies it (`sklearn.decomposition.PCA`, fitted
//! on the reference, applied to both sides): centre on the reference mean and project onto
//! the top eigenvectors of the reference covariance. scikit-learn gets the same vectors from
//! an SVD (or, for tall data, from the same covariance); signs follow its `svd_flip` rule (the
//! largest-magnitude loading of each component is positive). Every embedding drift method is
//! invariant to a component's sign anyway, because both sides are projected alike.
//!
//! The eigen decomposition is Householder tridiagonalisation + implicit QL (EISPACK
//! tred2/tql2, as in JAMA): deterministic, O(d³), accurate to rounding.

// The eigen solver is a line-by-line port; index loops keep it comparable with the original.
#![allow(clippy::needless_range_loop)]

use super::matrix::Matrix;
use crate::error::AnalyzerError;

/// A fitted projection.
#[derive(Debug, Clone)]
pub struct Pca {
    mean: Vec<f64>,
    /// `k` components, each of length `d` (rows of scikit-learn's `components_`).
    components: Vec<Vec<f64>>,
    /// Variance along each component (scikit-learn's `explained_variance_`).
    pub explained_variance: Vec<f64>,
}

impl Pca {
    /// Fit `k` components on `x`. scikit-learn requires `1 <= k <= min(rows, cols)`.
    pub fn fit(x: &Matrix, k: usize) -> Result<Self, AnalyzerError> {
        let (n, d) = (x.rows(), x.cols());
        if k == 0 || k > n.min(d) {
            return Err(AnalyzerError::InvalidInput(format!(
                "pca_components = {k} must be between 1 and min(reference rows, components) = {}",
                n.min(d)
            )));
        }
        if n < 2 {
            return Err(AnalyzerError::InvalidInput(
                "PCA needs at least 2 reference rows".into(),
            ));
        }
        let mean = x.column_means();
        let mut cov = vec![vec![0.0; d]; d];
        let mut centred = vec![0.0; d];
        for i in 0..n {
            for (c, (v, m)) in centred.iter_mut().zip(x.row(i).iter().zip(&mean)) {
                *c = v - m;
            }
            for a in 0..d {
                let ca = centred[a];
                for (b, cb) in centred.iter().enumerate().take(a + 1) {
                    cov[a][b] += ca * cb;
                }
            }
        }
        for a in 0..d {
            for b in 0..=a {
                cov[a][b] /= (n - 1) as f64;
                cov[b][a] = cov[a][b];
            }
        }
        let (values, vectors) = symmetric_eigen(cov);
        let mut order: Vec<usize> = (0..d).collect();
        order.sort_by(|&i, &j| values[j].total_cmp(&values[i]));
        let mut components = Vec::with_capacity(k);
        let mut explained_variance = Vec::with_capacity(k);
        for &c in order.iter().take(k) {
            let mut v: Vec<f64> = (0..d).map(|r| vectors[r][c]).collect();
            // svd_flip(u_based_decision=False): the first largest |loading| becomes positive.
            let mut arg = 0;
            for (r, val) in v.iter().enumerate() {
                if val.abs() > v[arg].abs() {
                    arg = r;
                }
            }
            if v[arg] < 0.0 {
                v.iter_mut().for_each(|e| *e = -*e);
            }
            components.push(v);
            explained_variance.push(values[c].max(0.0));
        }
        Ok(Pca {
            mean,
            components,
            explained_variance,
        })
    }

    /// Project rows onto the components: `(x − mean) · componentsᵀ`.
    pub fn transform(&self, x: &Matrix) -> Matrix {
        let k = self.components.len();
        let mut data = Vec::with_capacity(x.rows() * k);
        let mut centred = vec![0.0; self.mean.len()];
        for i in 0..x.rows() {
            for (c, (v, m)) in centred.iter_mut().zip(x.row(i).iter().zip(&self.mean)) {
                *c = v - m;
            }
            for comp in &self.components {
                data.push(comp.iter().zip(&centred).map(|(a, b)| a * b).sum());
            }
        }
        Matrix::from_row_major(x.rows(), k, data).expect("finite projection of finite data")
    }
}

/// Eigenvalues and eigenvectors (columns of the returned matrix) of a symmetric matrix.
pub fn symmetric_eigen(a: Vec<Vec<f64>>) -> (Vec<f64>, Vec<Vec<f64>>) {
    let n = a.len();
    let mut v = a;
    let mut d = vec![0.0; n];
    let mut e = vec![0.0; n];
    if n == 0 {
        return (d, v);
    }
    tred2(&mut v, &mut d, &mut e);
    tql2(&mut v, &mut d, &mut e);
    (d, v)
}

/// Householder reduction to tridiagonal form (EISPACK tred2).
fn tred2(v: &mut [Vec<f64>], d: &mut [f64], e: &mut [f64]) {
    let n = d.len();
    d.copy_from_slice(&v[n - 1]);
    for i in (1..n).rev() {
        let mut scale = 0.0;
        let mut h = 0.0;
        for dk in d.iter().take(i) {
            scale += dk.abs();
        }
        if scale == 0.0 {
            e[i] = d[i - 1];
            for j in 0..i {
                d[j] = v[i - 1][j];
                v[i][j] = 0.0;
                v[j][i] = 0.0;
            }
        } else {
            for dk in d.iter_mut().take(i) {
                *dk /= scale;
                h += *dk * *dk;
            }
            let mut f = d[i - 1];
            let mut g = h.sqrt();
            if f > 0.0 {
                g = -g;
            }
            e[i] = scale * g;
            h -= f * g;
            d[i - 1] = f - g;
            for ej in e.iter_mut().take(i) {
                *ej = 0.0;
            }
            for j in 0..i {
                f = d[j];
                v[j][i] = f;
                g = e[j] + v[j][j] * f;
                for k in j + 1..i {
                    g += v[k][j] * d[k];
                    e[k] += v[k][j] * f;
                }
                e[j] = g;
            }
            f = 0.0;
            for j in 0..i {
                e[j] /= h;
                f += e[j] * d[j];
            }
            let hh = f / (h + h);
            for j in 0..i {
                e[j] -= hh * d[j];
            }
            for j in 0..i {
                f = d[j];
                g = e[j];
                for k in j..i {
                    v[k][j] -= f * e[k] + g * d[k];
                }
                d[j] = v[i - 1][j];
                v[i][j] = 0.0;
            }
        }
        d[i] = h;
    }
    for i in 0..n - 1 {
        v[n - 1][i] = v[i][i];
        v[i][i] = 1.0;
        let h = d[i + 1];
        if h != 0.0 {
            for k in 0..=i {
                d[k] = v[k][i + 1] / h;
            }
            for j in 0..=i {
                let mut g = 0.0;
                for k in 0..=i {
                    g += v[k][i + 1] * v[k][j];
                }
                for k in 0..=i {
                    v[k][j] -= g * d[k];
                }
            }
        }
        for row in v.iter_mut().take(i + 1) {
            row[i + 1] = 0.0;
        }
    }
    for j in 0..n {
        d[j] = v[n - 1][j];
        v[n - 1][j] = 0.0;
    }
    v[n - 1][n - 1] = 1.0;
    e[0] = 0.0;
}

/// Implicit QL iterations on the tridiagonal matrix (EISPACK tql2).
fn tql2(v: &mut [Vec<f64>], d: &mut [f64], e: &mut [f64]) {
    let n = d.len();
    for i in 1..n {
        e[i - 1] = e[i];
    }
    e[n - 1] = 0.0;
    let mut f = 0.0;
    let mut tst1: f64 = 0.0;
    let eps = f64::EPSILON;
    for l in 0..n {
        tst1 = tst1.max(d[l].abs() + e[l].abs());
        let mut m = l;
        while m < n {
            if e[m].abs() <= eps * tst1 {
                break;
            }
            m += 1;
        }
        if m == n {
            m = n - 1;
        }
        if m > l {
            let mut iterations = 0;
            loop {
                iterations += 1;
                let mut g = d[l];
                let mut p = (d[l + 1] - g) / (2.0 * e[l]);
                let mut r = p.hypot(1.0);
                if p < 0.0 {
                    r = -r;
                }
                d[l] = e[l] / (p + r);
                d[l + 1] = e[l] * (p + r);
                let dl1 = d[l + 1];
                let mut h = g - d[l];
                for di in d.iter_mut().skip(l + 2) {
                    *di -= h;
                }
                f += h;
                p = d[m];
                let mut c = 1.0;
                let mut c2 = c;
                let mut c3 = c;
                let el1 = e[l + 1];
                let mut s = 0.0;
                let mut s2 = 0.0;
                for i in (l..m).rev() {
                    c3 = c2;
                    c2 = c;
                    s2 = s;
                    g = c * e[i];
                    h = c * p;
                    r = p.hypot(e[i]);
                    e[i + 1] = s * r;
                    s = e[i] / r;
                    c = p / r;
                    p = c * d[i] - s * g;
                    d[i + 1] = h + s * (c * g + s * d[i]);
                    for row in v.iter_mut() {
                        h = row[i + 1];
                        row[i + 1] = s * row[i] + c * h;
                        row[i] = c * row[i] - s * h;
                    }
                }
                p = -s * s2 * c3 * el1 * e[l] / dl1;
                e[l] = s * p;
                d[l] = c * p;
                // Converges in a few iterations for finite input; the cap only guards NaN.
                if e[l].abs() <= eps * tst1 || iterations >= 100 {
                    break;
                }
            }
        }
        d[l] += f;
        e[l] = 0.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eigen_decomposition_reconstructs() {
        let a = vec![
            vec![4.0, 1.0, -2.0, 0.5],
            vec![1.0, 3.0, 0.0, 1.5],
            vec![-2.0, 0.0, 5.0, -1.0],
            vec![0.5, 1.5, -1.0, 2.0],
        ];
        let (vals, vecs) = symmetric_eigen(a.clone());
        for c in 0..4 {
            for r in 0..4 {
                let av: f64 = (0..4).map(|k| a[r][k] * vecs[k][c]).sum();
                assert!((av - vals[c] * vecs[r][c]).abs() < 1e-12);
            }
            let norm: f64 = (0..4).map(|k| vecs[k][c] * vecs[k][c]).sum();
            assert!((norm - 1.0).abs() < 1e-12);
        }
        // Trace is preserved.
        assert!((vals.iter().sum::<f64>() - 14.0).abs() < 1e-12);
    }

    #[test]
    fn pca_rejects_too_many_components() {
        let x = Matrix::from_rows(&[vec![1.0, 2.0], vec![2.0, 1.0], vec![0.0, 0.0]]).unwrap();
        assert!(Pca::fit(&x, 3).is_err());
        assert!(Pca::fit(&x, 0).is_err());
        let p = Pca::fit(&x, 2).unwrap();
        assert_eq!(p.transform(&x).cols(), 2);
    }
}
