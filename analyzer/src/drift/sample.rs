//! Sufficient statistics for drift tests: sorted distinct values with counts.
//!
//! Every drift method can be computed from these, so they can be filled either from raw
//! arrays ([`NumericCounts::from_values`]) or from a database `GROUP BY value` aggregate
//! ([`NumericCounts::from_pairs`]).

use std::collections::BTreeMap;

use crate::error::AnalyzerError;

/// Distinct finite numeric values in ascending order, each with how often it occurs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NumericCounts {
    values: Vec<f64>,
    counts: Vec<u64>,
    total: u64,
    /// Whether the column had an integer type (as pandas would infer it); numpy's
    /// Sturges binning clamps the bin width to at least 1 for integer arrays.
    integer_typed: bool,
}

impl NumericCounts {
    /// Build from raw values. Non-finite values must have been removed already.
    pub fn from_values(values: &[f64]) -> Result<Self, AnalyzerError> {
        let mut v: Vec<f64> = Vec::with_capacity(values.len());
        for &x in values {
            if !x.is_finite() {
                return Err(AnalyzerError::NonFinite);
            }
            // pandas treats -0.0 and 0.0 as the same value
            v.push(if x == 0.0 { 0.0 } else { x });
        }
        v.sort_unstable_by(f64::total_cmp);
        let mut out = NumericCounts::default();
        for x in v {
            match out.values.last() {
                Some(&last) if last == x => {
                    if let Some(c) = out.counts.last_mut() {
                        *c += 1;
                    }
                }
                _ => {
                    out.values.push(x);
                    out.counts.push(1);
                }
            }
            out.total += 1;
        }
        Ok(out)
    }

    /// Build from `(value, count)` pairs in any order (e.g. a database aggregate).
    /// Pairs with a zero count are ignored; repeated values are merged.
    pub fn from_pairs(pairs: &[(f64, u64)]) -> Result<Self, AnalyzerError> {
        let mut sorted: Vec<(f64, u64)> = Vec::with_capacity(pairs.len());
        for &(x, c) in pairs {
            if !x.is_finite() {
                return Err(AnalyzerError::NonFinite);
            }
            if c > 0 {
                sorted.push((if x == 0.0 { 0.0 } else { x }, c));
            }
        }
        sorted.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        let mut out = NumericCounts::default();
        for (x, c) in sorted {
            match out.values.last() {
                Some(&last) if last == x => {
                    if let Some(lc) = out.counts.last_mut() {
                        *lc += c;
                    }
                }
                _ => {
                    out.values.push(x);
                    out.counts.push(c);
                }
            }
            out.total += c;
        }
        Ok(out)
    }

    /// Mark the column as integer-typed (affects Sturges binning exactly as numpy does).
    pub fn with_integer_type(mut self, integer_typed: bool) -> Self {
        self.integer_typed = integer_typed;
        self
    }

    pub fn values(&self) -> &[f64] {
        &self.values
    }
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }
    /// Number of observations.
    pub fn total(&self) -> u64 {
        self.total
    }
    /// Number of distinct values.
    pub fn distinct(&self) -> usize {
        self.values.len()
    }
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }
    pub fn integer_typed(&self) -> bool {
        self.integer_typed
    }
    pub fn min(&self) -> Option<f64> {
        self.values.first().copied()
    }
    pub fn max(&self) -> Option<f64> {
        self.values.last().copied()
    }

    /// Population mean (ddof = 0).
    pub fn mean(&self) -> f64 {
        let n = self.total as f64;
        let s: f64 = self
            .values
            .iter()
            .zip(&self.counts)
            .map(|(v, &c)| v * c as f64)
            .sum();
        s / n
    }

    /// Population standard deviation (ddof = 0), as `numpy.std`.
    pub fn std(&self) -> f64 {
        let m = self.mean();
        let n = self.total as f64;
        let ss: f64 = self
            .values
            .iter()
            .zip(&self.counts)
            .map(|(v, &c)| {
                let d = v - m;
                d * d * c as f64
            })
            .sum();
        (ss / n).sqrt()
    }
}

/// Distinct values of the union of two samples, with each sample's count (0 where absent).
pub(crate) fn merge_numeric(a: &NumericCounts, b: &NumericCounts) -> Vec<(f64, u64, u64)> {
    let mut out = Vec::with_capacity(a.values.len().max(b.values.len()));
    let (mut i, mut j) = (0, 0);
    while i < a.values.len() || j < b.values.len() {
        let take_a = j >= b.values.len() || (i < a.values.len() && a.values[i] <= b.values[j]);
        let take_b = i >= a.values.len() || (j < b.values.len() && b.values[j] <= a.values[i]);
        let (v, ca, cb) = match (take_a, take_b) {
            (true, true) => {
                let r = (a.values[i], a.counts[i], b.counts[j]);
                i += 1;
                j += 1;
                r
            }
            (true, false) => {
                let r = (a.values[i], a.counts[i], 0);
                i += 1;
                r
            }
            _ => {
                let r = (b.values[j], 0, b.counts[j]);
                j += 1;
                r
            }
        };
        out.push((v, ca, cb));
    }
    out
}

/// Category frequencies of one sample.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CategoryCounts {
    counts: BTreeMap<String, u64>,
    total: u64,
}

impl CategoryCounts {
    pub fn from_values<S: AsRef<str>>(values: &[S]) -> Self {
        let mut out = CategoryCounts::default();
        for v in values {
            out.add(v.as_ref(), 1);
        }
        out
    }
    pub fn from_pairs<S: AsRef<str>>(pairs: &[(S, u64)]) -> Self {
        let mut out = CategoryCounts::default();
        for (v, c) in pairs {
            out.add(v.as_ref(), *c);
        }
        out
    }
    pub fn add(&mut self, value: &str, count: u64) {
        if count == 0 {
            return;
        }
        if let Some(c) = self.counts.get_mut(value) {
            *c += count;
        } else {
            self.counts.insert(value.to_string(), count);
        }
        self.total += count;
    }
    pub fn total(&self) -> u64 {
        self.total
    }
    pub fn distinct(&self) -> usize {
        self.counts.len()
    }
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }
    pub fn get(&self, key: &str) -> u64 {
        self.counts.get(key).copied().unwrap_or(0)
    }
    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> {
        self.counts.iter().map(|(k, &c)| (k.as_str(), c))
    }
}

/// Keys of the union (sorted) with each sample's count.
pub(crate) fn merge_categories(a: &CategoryCounts, b: &CategoryCounts) -> Vec<(String, u64, u64)> {
    let mut keys: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for (k, c) in a.iter() {
        keys.entry(k).or_default().0 = c;
    }
    for (k, c) in b.iter() {
        keys.entry(k).or_default().1 = c;
    }
    keys.into_iter()
        .map(|(k, (x, y))| (k.to_string(), x, y))
        .collect()
}

/// Aligned per-bin (or per-category) counts of reference and current; the common input of
/// chi-square, Z, PSI, KL, Jensen–Shannon and Hellinger.
#[derive(Debug, Clone, PartialEq)]
pub struct BinnedCounts {
    pub reference: Vec<u64>,
    pub current: Vec<u64>,
}

impl BinnedCounts {
    pub fn reference_total(&self) -> u64 {
        self.reference.iter().sum()
    }
    pub fn current_total(&self) -> u64 {
        self.current.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_sorted_and_merged() {
        let a = NumericCounts::from_values(&[3.0, 1.0, 3.0, -0.0, 0.0]).unwrap();
        assert_eq!(a.values(), &[0.0, 1.0, 3.0]);
        assert_eq!(a.counts(), &[2, 1, 2]);
        let b = NumericCounts::from_pairs(&[(2.0, 1), (1.0, 4), (2.0, 1)]).unwrap();
        assert_eq!(b.values(), &[1.0, 2.0]);
        assert_eq!(b.counts(), &[4, 2]);
        let m = merge_numeric(&a, &b);
        assert_eq!(m, vec![(0.0, 2, 0), (1.0, 1, 4), (2.0, 0, 2), (3.0, 2, 0)]);
    }

    #[test]
    fn std_is_population() {
        let a = NumericCounts::from_values(&[1.0, 2.0, 3.0, 4.0]).unwrap();
        assert!((a.std() - 1.118033988749895).abs() < 1e-15);
    }
}
