//! Pushdown: ClickHouse reduces a column in a time range to sorted distinct values with
//! counts (`GROUP BY value`), the sufficient statistic every drift method works from, so only
//! `O(distinct values)` rows leave the database.
//!
//! A feature is read as `num_values[indexOf(num_names, name)]` (an event holds each feature
//! once), which avoids exploding every row with `ARRAY JOIN` just to keep one column. Tables
//! are read with `FINAL`, so replayed events count once. Numerical columns with more distinct
//! values than the monitor's `max_distinct` are rounded in SQL to the centre of one of
//! `fine_bins` equal-width bins spanning reference ∪ current (see `docs/analyzer.md` for the
//! resulting error). SQL stays in the ClickHouse 18.16 ∩ 26.x subset: no CTEs, explicit casts,
//! every selected column aliased to its Rust field.

use serde::Deserialize;
use vigil_store::{sql_string, Store, StoreError};

use super::config::{ColumnRef, Period};
use crate::drift::{CategoryCounts, ColumnSample, NumericCounts};
use crate::AnalyzerError;

/// Which rows a column is read from.
#[derive(Debug, Clone)]
pub struct Scope<'a> {
    pub model: &'a str,
    pub version: Option<&'a str>,
}

/// How a numerical column was reduced.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reduction {
    /// One `(value, count)` pair per distinct value.
    Exact,
    /// Values rounded to the centre of equal-width bins of this width.
    Binned { width: f64 },
    /// Categorical: one pair per category.
    Categories,
    /// Text monitors: at most `size` events per side (smallest `cityHash64(event_id)`).
    Sampled { size: u64 },
}

/// Both samples of one column plus how they were obtained.
#[derive(Debug, Clone)]
pub struct ColumnCounts {
    pub reference: ColumnSample,
    pub current: ColumnSample,
    pub reduction: Reduction,
}

#[derive(clickhouse::Row, Deserialize)]
struct NumPair {
    value: f64,
    n: u64,
}

#[derive(clickhouse::Row, Deserialize)]
struct CatPair {
    value: String,
    n: u64,
}

#[derive(clickhouse::Row, Deserialize)]
struct Spread {
    distinct: u64,
    lo: f64,
    hi: f64,
    n: u64,
}

/// `(table, extra filter, numeric expression)` of a numerical read.
fn numeric_source(store: &Store, column: &ColumnRef) -> (String, String, String) {
    match column {
        ColumnRef::Feature(name) => {
            let q = sql_string(name);
            (
                store.table("inference_events"),
                format!("has(num_names, {q})"),
                format!("num_values[indexOf(num_names, {q})]"),
            )
        }
        ColumnRef::Score => (
            store.table("inference_events"),
            "isNotNull(score)".into(),
            "assumeNotNull(score)".into(),
        ),
        ColumnRef::Outcome(name) => (
            store.table("outcome_events"),
            format!("name = {}", sql_string(name)),
            "value".into(),
        ),
    }
}

fn scope_filter(scope: &Scope<'_>, column: &ColumnRef) -> String {
    let mut f = format!("model = {}", sql_string(scope.model));
    // Outcomes carry no version: they belong to the unit, whichever version scored it.
    if let (Some(v), false) = (scope.version, matches!(column, ColumnRef::Outcome(_))) {
        f.push_str(&format!(" AND version = {}", sql_string(v)));
    }
    f
}

fn in_period(p: Period) -> String {
    format!(
        "(ts >= toDateTime({}) AND ts < toDateTime({}))",
        p.from, p.to
    )
}

/// A float literal ClickHouse 18.16 parses (no `inf`, parenthesised for negatives).
fn lit(x: f64) -> String {
    format!("({x:?})")
}

/// The inner `SELECT toFloat64(expr) AS v …` of a numerical column over `periods`.
fn numeric_values(
    store: &Store,
    scope: &Scope<'_>,
    column: &ColumnRef,
    periods: &[Period],
) -> String {
    let (table, filter, expr) = numeric_source(store, column);
    let when: Vec<String> = periods.iter().map(|p| in_period(*p)).collect();
    format!(
        "SELECT toFloat64({expr}) AS v FROM {table} FINAL WHERE {} AND {filter} AND ({})",
        scope_filter(scope, column),
        when.join(" OR ")
    )
}

async fn spread(
    store: &Store,
    scope: &Scope<'_>,
    column: &ColumnRef,
    periods: &[Period],
) -> Result<Spread, StoreError> {
    let sql = format!(
        "SELECT toUInt64(uniqExact(v)) AS distinct, toFloat64(min(v)) AS lo,
                toFloat64(max(v)) AS hi, toUInt64(count()) AS n
         FROM ({}) WHERE isFinite(v)",
        numeric_values(store, scope, column, periods)
    );
    let rows = store.fetch::<Spread>(&sql).await?;
    Ok(rows.into_iter().next().unwrap_or(Spread {
        distinct: 0,
        lo: 0.0,
        hi: 0.0,
        n: 0,
    }))
}

async fn numeric_counts(
    store: &Store,
    scope: &Scope<'_>,
    column: &ColumnRef,
    period: Period,
    bins: Option<(f64, f64, u64)>,
) -> Result<Vec<(f64, u64)>, StoreError> {
    let value = match bins {
        None => "v".to_string(),
        Some((lo, width, n)) => format!(
            "{lo} + (least(floor((v - {lo}) / {width}), {last}) + 0.5) * {width}",
            lo = lit(lo),
            width = lit(width),
            last = n.saturating_sub(1)
        ),
    };
    let sql = format!(
        "SELECT toFloat64({value}) AS value, toUInt64(count()) AS n
         FROM ({}) WHERE isFinite(v) GROUP BY value ORDER BY value",
        numeric_values(store, scope, column, &[period])
    );
    Ok(store
        .fetch::<NumPair>(&sql)
        .await?
        .into_iter()
        .map(|p| (p.value, p.n))
        .collect())
}

async fn category_counts(
    store: &Store,
    scope: &Scope<'_>,
    name: &str,
    period: Period,
) -> Result<Vec<(String, u64)>, StoreError> {
    let q = sql_string(name);
    let sql = format!(
        "SELECT toString(v) AS value, toUInt64(count()) AS n
         FROM (SELECT toString(cat_values[indexOf(cat_names, {q})]) AS v
               FROM {} FINAL WHERE {} AND has(cat_names, {q}) AND {})
         GROUP BY value ORDER BY value",
        store.table("inference_events"),
        scope_filter(scope, &ColumnRef::Feature(name.to_string())),
        in_period(period)
    );
    Ok(store
        .fetch::<CatPair>(&sql)
        .await?
        .into_iter()
        .map(|p| (p.value, p.n))
        .collect())
}

/// Errors of a pushdown read.
#[derive(Debug, thiserror::Error)]
pub enum PushdownError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Analyzer(#[from] AnalyzerError),
}

/// Reads one column's reference and current samples. A feature is numerical when any of
/// its values in either period is a number, else categorical. `fine_bins` applies when the
/// distinct numerical values exceed `max_distinct`.
pub async fn column_counts(
    store: &Store,
    scope: &Scope<'_>,
    column: &ColumnRef,
    reference: Period,
    current: Period,
    max_distinct: u64,
    fine_bins: u64,
) -> Result<ColumnCounts, PushdownError> {
    let s = spread(store, scope, column, &[reference, current]).await?;
    if let (ColumnRef::Feature(name), 0) = (column, s.n) {
        let r = category_counts(store, scope, name, reference).await?;
        let c = category_counts(store, scope, name, current).await?;
        return Ok(ColumnCounts {
            reference: ColumnSample::Categorical(CategoryCounts::from_pairs(&r)),
            current: ColumnSample::Categorical(CategoryCounts::from_pairs(&c)),
            reduction: Reduction::Categories,
        });
    }
    let (bins, reduction) = if s.distinct > max_distinct && s.hi > s.lo && fine_bins >= 2 {
        let width = (s.hi - s.lo) / fine_bins as f64;
        (Some((s.lo, width, fine_bins)), Reduction::Binned { width })
    } else {
        (None, Reduction::Exact)
    };
    let r = numeric_counts(store, scope, column, reference, bins).await?;
    let c = numeric_counts(store, scope, column, current, bins).await?;
    // pandas infers an integer column when every value is integral; numpy's Sturges binning
    // then clamps the bin width to 1. Exact counts only: bin centres are not data.
    let integer = bins.is_none() && r.iter().chain(&c).all(|(v, _)| v.fract() == 0.0);
    Ok(ColumnCounts {
        reference: ColumnSample::Numerical(
            NumericCounts::from_pairs(&r)?.with_integer_type(integer),
        ),
        current: ColumnSample::Numerical(NumericCounts::from_pairs(&c)?.with_integer_type(integer)),
        reduction,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_parse_back() {
        assert_eq!(lit(-3.5), "(-3.5)");
        assert_eq!(lit(1e-7), "(1e-7)");
        assert_eq!(lit(2.0), "(2.0)");
    }
}
