//! A small dense row-major matrix: one row per embedding, one column per component.

use crate::error::AnalyzerError;

/// Embeddings as a dense row-major matrix of finite values (rows = samples).
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    rows: usize,
    cols: usize,
    data: Vec<f64>,
}

impl Matrix {
    /// From row-major data; `data.len()` must be `rows * cols` and every value finite.
    pub fn from_row_major(rows: usize, cols: usize, data: Vec<f64>) -> Result<Self, AnalyzerError> {
        if rows.checked_mul(cols) != Some(data.len()) {
            return Err(AnalyzerError::InvalidInput(format!(
                "matrix data has {} values, expected {rows} rows × {cols} columns",
                data.len()
            )));
        }
        if cols == 0 {
            return Err(AnalyzerError::InvalidInput(
                "embeddings need at least one component (column)".into(),
            ));
        }
        if data.iter().any(|v| !v.is_finite()) {
            return Err(AnalyzerError::NonFinite);
        }
        Ok(Matrix { rows, cols, data })
    }

    /// From rows of equal length.
    pub fn from_rows(rows: &[Vec<f64>]) -> Result<Self, AnalyzerError> {
        let cols = rows.first().map_or(0, Vec::len);
        if let Some((i, r)) = rows.iter().enumerate().find(|(_, r)| r.len() != cols) {
            return Err(AnalyzerError::InvalidInput(format!(
                "embedding row {i} has {} components, row 0 has {cols}; every row needs the same number",
                r.len()
            )));
        }
        Self::from_row_major(rows.len(), cols, rows.concat())
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    pub fn row(&self, i: usize) -> &[f64] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    pub fn get(&self, i: usize, j: usize) -> f64 {
        self.data[i * self.cols + j]
    }

    pub fn column(&self, j: usize) -> Vec<f64> {
        (0..self.rows).map(|i| self.get(i, j)).collect()
    }

    /// Mean of every column (the mean embedding).
    pub fn column_means(&self) -> Vec<f64> {
        let mut sums = vec![0.0; self.cols];
        for i in 0..self.rows {
            for (s, v) in sums.iter_mut().zip(self.row(i)) {
                *s += v;
            }
        }
        sums.iter().map(|s| s / self.rows as f64).collect()
    }

    /// Mean of the given rows (repeats count repeatedly).
    pub fn mean_of_rows(&self, idx: &[usize]) -> Vec<f64> {
        let mut sums = vec![0.0; self.cols];
        for &i in idx {
            for (s, v) in sums.iter_mut().zip(self.row(i)) {
                *s += v;
            }
        }
        sums.iter().map(|s| s / idx.len() as f64).collect()
    }

    /// The given rows, in the given order.
    pub fn select_rows(&self, idx: &[usize]) -> Matrix {
        let mut data = Vec::with_capacity(idx.len() * self.cols);
        for &i in idx {
            data.extend_from_slice(self.row(i));
        }
        Matrix {
            rows: idx.len(),
            cols: self.cols,
            data,
        }
    }

    /// Rows of `self` followed by rows of `other` (same number of columns).
    pub fn stack(&self, other: &Matrix) -> Matrix {
        let mut data = self.data.clone();
        data.extend_from_slice(&other.data);
        Matrix {
            rows: self.rows + other.rows,
            cols: self.cols,
            data,
        }
    }
}

/// Squared Euclidean distance.
pub fn sq_dist(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}
