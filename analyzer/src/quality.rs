//! Data quality of one column against its reference: missing share, non-finite values,
//! categories unseen in the reference, share of values outside the reference range, and
//! values of the wrong type.

use std::collections::BTreeSet;

use serde::Serialize;

/// Counts for one column of one dataset, gathered while reading it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ColumnTally {
    pub rows: u64,
    /// Empty cells, NA markers and NaN.
    pub missing: u64,
    /// +inf / -inf in a numerical column.
    pub infinite: u64,
    /// Cells that do not parse as the column's type (e.g. text in a numerical column).
    pub type_violations: u64,
}

/// Quality of one column of the current data.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColumnQuality {
    pub rows: u64,
    pub missing: u64,
    pub missing_share: f64,
    pub infinite: u64,
    pub type_violations: u64,
    /// Categorical: categories present in current but not in reference (sorted, at most 20).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub new_categories: Vec<String>,
    pub new_category_rows: u64,
    /// Numerical: share of finite current values below the reference minimum or above its maximum.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub out_of_range_share: Option<f64>,
}

fn share(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// Quality of a numerical column: `reference_range` is (min, max) of the finite reference
/// values; `current_values` are the finite current values.
pub fn numerical_quality(
    tally: &ColumnTally,
    reference_range: Option<(f64, f64)>,
    current_values: &[f64],
) -> ColumnQuality {
    let out_of_range = reference_range.map(|(lo, hi)| {
        let n = current_values.iter().filter(|&&v| v < lo || v > hi).count() as u64;
        share(n, current_values.len() as u64)
    });
    ColumnQuality {
        rows: tally.rows,
        missing: tally.missing,
        missing_share: share(tally.missing, tally.rows),
        infinite: tally.infinite,
        type_violations: tally.type_violations,
        new_categories: Vec::new(),
        new_category_rows: 0,
        out_of_range_share: out_of_range,
    }
}

/// Quality of a categorical column given the reference categories and the current
/// (category, count) pairs.
pub fn categorical_quality<'a>(
    tally: &ColumnTally,
    reference_categories: &BTreeSet<&str>,
    current: impl Iterator<Item = (&'a str, u64)>,
) -> ColumnQuality {
    let mut new = Vec::new();
    let mut new_rows = 0;
    for (k, c) in current {
        if !reference_categories.contains(k) {
            new_rows += c;
            if new.len() < 20 {
                new.push(k.to_string());
            }
        }
    }
    ColumnQuality {
        rows: tally.rows,
        missing: tally.missing,
        missing_share: share(tally.missing, tally.rows),
        infinite: tally.infinite,
        type_violations: tally.type_violations,
        new_categories: new,
        new_category_rows: new_rows,
        out_of_range_share: None,
    }
}
