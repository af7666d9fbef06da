//! Drift detection per column and per dataset, compatible with Evidently's data drift
//! (`DataDriftPreset`): the same tests, default test selection, thresholds and binning.

pub mod binning;
pub mod distance;
pub mod embedding;
pub mod ks;
pub mod options;
pub mod pvalue;
pub mod sample;

use serde::Serialize;

pub use options::{ColumnStattest, Stattest, StattestOptions};
pub use sample::{BinnedCounts, CategoryCounts, NumericCounts};

use crate::error::AnalyzerError;

/// Share of drifted columns at or above which the dataset is reported as drifted.
pub const DEFAULT_DRIFT_SHARE: f64 = 0.5;
/// Reference samples larger than this use distance-based defaults (Wasserstein, JS).
pub const LARGE_REFERENCE_ROWS: u64 = 1000;

/// Whether a column is treated as a number line or as a set of labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnKind {
    Numerical,
    Categorical,
}

impl ColumnKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ColumnKind::Numerical => "numerical",
            ColumnKind::Categorical => "categorical",
        }
    }
}

/// A drift test or distance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum DriftTest {
    /// Two-sample Kolmogorov–Smirnov (p-value; numerical only).
    #[serde(rename = "ks")]
    KolmogorovSmirnov,
    /// Pearson chi-square against reference frequencies (p-value).
    #[serde(rename = "chisquare")]
    ChiSquare,
    /// Two-proportion Z-test (p-value).
    #[serde(rename = "z")]
    ZTest,
    /// Wasserstein distance normed by the reference std (numerical only).
    #[serde(rename = "wasserstein")]
    WassersteinNormed,
    /// Jensen–Shannon distance, natural log.
    #[serde(rename = "jensenshannon")]
    JensenShannon,
    /// Population stability index.
    #[serde(rename = "psi")]
    Psi,
    /// Kullback–Leibler divergence.
    #[serde(rename = "kl")]
    KlDivergence,
    /// Hellinger distance.
    #[serde(rename = "hellinger")]
    Hellinger,
}

impl DriftTest {
    pub const ALL: [DriftTest; 8] = [
        DriftTest::KolmogorovSmirnov,
        DriftTest::ChiSquare,
        DriftTest::ZTest,
        DriftTest::WassersteinNormed,
        DriftTest::JensenShannon,
        DriftTest::Psi,
        DriftTest::KlDivergence,
        DriftTest::Hellinger,
    ];

    /// Name used on the command line and in JSON output.
    pub fn name(self) -> &'static str {
        match self {
            DriftTest::KolmogorovSmirnov => "ks",
            DriftTest::ChiSquare => "chisquare",
            DriftTest::ZTest => "z",
            DriftTest::WassersteinNormed => "wasserstein",
            DriftTest::JensenShannon => "jensenshannon",
            DriftTest::Psi => "psi",
            DriftTest::KlDivergence => "kl",
            DriftTest::Hellinger => "hellinger",
        }
    }

    /// Parse a CLI / config name (Evidently's `kl_div` is accepted as well).
    pub fn from_name(name: &str) -> Result<Self, AnalyzerError> {
        let n = name.trim().to_ascii_lowercase();
        let t = match n.as_str() {
            "ks" => DriftTest::KolmogorovSmirnov,
            "chisquare" | "chi2" | "chi-square" => DriftTest::ChiSquare,
            "z" | "ztest" => DriftTest::ZTest,
            "wasserstein" => DriftTest::WassersteinNormed,
            "jensenshannon" | "js" => DriftTest::JensenShannon,
            "psi" => DriftTest::Psi,
            "kl" | "kl_div" => DriftTest::KlDivergence,
            "hellinger" => DriftTest::Hellinger,
            _ => return Err(AnalyzerError::UnknownMethod(name.to_string())),
        };
        Ok(t)
    }

    /// True for tests whose score is a p-value (drift when small), false for distances.
    pub fn is_p_value(self) -> bool {
        matches!(
            self,
            DriftTest::KolmogorovSmirnov | DriftTest::ChiSquare | DriftTest::ZTest
        )
    }

    /// Evidently's default threshold: 0.05 for p-values, 0.1 for distances.
    pub fn default_threshold(self) -> f64 {
        if self.is_p_value() {
            0.05
        } else {
            0.1
        }
    }

    /// Column kinds the test may be requested for explicitly (as Evidently's registry).
    pub fn allows(self, kind: ColumnKind) -> bool {
        match self {
            DriftTest::KolmogorovSmirnov | DriftTest::WassersteinNormed => {
                kind == ColumnKind::Numerical
            }
            DriftTest::ChiSquare | DriftTest::ZTest => kind == ColumnKind::Categorical,
            _ => true,
        }
    }

    /// Drift decision for a score: p-values drift below the threshold (KS: at or below),
    /// distances at or above it.
    pub fn is_drift(self, score: f64, threshold: f64) -> bool {
        match self {
            DriftTest::KolmogorovSmirnov => score <= threshold,
            DriftTest::ChiSquare | DriftTest::ZTest => score < threshold,
            _ => score >= threshold,
        }
    }
}

/// One column's data, already cleaned of missing and infinite values.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnSample {
    Numerical(NumericCounts),
    Categorical(CategoryCounts),
}

impl ColumnSample {
    pub fn kind(&self) -> ColumnKind {
        match self {
            ColumnSample::Numerical(_) => ColumnKind::Numerical,
            ColumnSample::Categorical(_) => ColumnKind::Categorical,
        }
    }
    pub fn total(&self) -> u64 {
        match self {
            ColumnSample::Numerical(c) => c.total(),
            ColumnSample::Categorical(c) => c.total(),
        }
    }
}

/// Drift result for one column.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColumnDrift {
    pub column: String,
    #[serde(rename = "type")]
    pub kind: ColumnKind,
    pub method: DriftTest,
    /// p-value for tests, distance for distances.
    pub score: f64,
    pub threshold: f64,
    pub drift: bool,
    /// Whether the method was picked by the default rules.
    pub auto: bool,
    pub reference_rows: u64,
    pub current_rows: u64,
    /// Distinct values in reference ∪ current.
    pub distinct_values: u64,
}

/// Drift over a set of columns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DatasetDrift {
    pub dataset_drift: bool,
    pub drift_share: f64,
    pub drifted_columns: u64,
    pub total_columns: u64,
    pub drift_share_threshold: f64,
    pub columns: Vec<ColumnDrift>,
}

fn distinct_union(reference: &ColumnSample, current: &ColumnSample) -> Result<u64, AnalyzerError> {
    match (reference, current) {
        (ColumnSample::Numerical(r), ColumnSample::Numerical(c)) => {
            Ok(sample::merge_numeric(r, c).len() as u64)
        }
        (ColumnSample::Categorical(r), ColumnSample::Categorical(c)) => {
            Ok(sample::merge_categories(r, c).len() as u64)
        }
        _ => Err(AnalyzerError::MixedKinds(String::new())),
    }
}

/// Evidently's default test for a column (after dropping missing values):
/// reference ≤ 1000 rows — numerical with ≤ 5 distinct values: chi-square (> 2) or Z (≤ 2),
/// other numerical: KS, categorical: chi-square (> 2) or Z (≤ 2); reference > 1000 rows —
/// numerical with ≤ 5 distinct: Jensen–Shannon, other numerical: Wasserstein, categorical:
/// Jensen–Shannon. Distinct values are counted over reference ∪ current.
pub fn default_test(kind: ColumnKind, reference_rows: u64, distinct_values: u64) -> DriftTest {
    let small = reference_rows <= LARGE_REFERENCE_ROWS;
    match (kind, small) {
        (ColumnKind::Numerical, true) if distinct_values <= 5 => {
            if distinct_values > 2 {
                DriftTest::ChiSquare
            } else {
                DriftTest::ZTest
            }
        }
        (ColumnKind::Numerical, true) => DriftTest::KolmogorovSmirnov,
        (ColumnKind::Categorical, true) => {
            if distinct_values > 2 {
                DriftTest::ChiSquare
            } else {
                DriftTest::ZTest
            }
        }
        (ColumnKind::Numerical, false) if distinct_values <= 5 => DriftTest::JensenShannon,
        (ColumnKind::Numerical, false) => DriftTest::WassersteinNormed,
        (ColumnKind::Categorical, false) => DriftTest::JensenShannon,
    }
}

/// Score of one test on a pair of samples of the same kind.
pub fn drift_score(
    test: DriftTest,
    reference: &ColumnSample,
    current: &ColumnSample,
) -> Result<f64, AnalyzerError> {
    if reference.total() == 0 || current.total() == 0 {
        return Err(AnalyzerError::EmptySample);
    }
    let score = match (reference, current) {
        (ColumnSample::Numerical(r), ColumnSample::Numerical(c)) => match test {
            DriftTest::KolmogorovSmirnov => ks::ks_2samp(r, c)?.p_value,
            DriftTest::ChiSquare => pvalue::chi_square(&binning::per_value_bins(r, c)).1,
            DriftTest::ZTest => pvalue::z_test(&binning::per_value_bins(r, c)).1,
            DriftTest::WassersteinNormed => distance::wasserstein_normed(r, c),
            DriftTest::JensenShannon => distance::jensen_shannon(&binning::numeric_bins(r, c)),
            DriftTest::Psi => distance::psi(&binning::numeric_bins(r, c)),
            DriftTest::KlDivergence => distance::kl_divergence(&binning::numeric_bins(r, c)),
            DriftTest::Hellinger => distance::hellinger_numerical(r, c),
        },
        (ColumnSample::Categorical(r), ColumnSample::Categorical(c)) => {
            let bins = binning::category_bins(r, c);
            match test {
                DriftTest::ChiSquare => pvalue::chi_square(&bins).1,
                DriftTest::ZTest => pvalue::z_test(&bins).1,
                DriftTest::JensenShannon => distance::jensen_shannon(&bins),
                DriftTest::Psi => distance::psi(&bins),
                DriftTest::KlDivergence => distance::kl_divergence(&bins),
                DriftTest::Hellinger => distance::hellinger_categorical(r, c),
                DriftTest::KolmogorovSmirnov | DriftTest::WassersteinNormed => {
                    return Err(not_applicable(test, ColumnKind::Categorical))
                }
            }
        }
        _ => return Err(AnalyzerError::MixedKinds(String::new())),
    };
    Ok(score)
}

fn not_applicable(test: DriftTest, kind: ColumnKind) -> AnalyzerError {
    let allowed: Vec<&str> = DriftTest::ALL
        .iter()
        .filter(|t| t.allows(kind))
        .map(|t| t.name())
        .collect();
    AnalyzerError::MethodNotApplicable {
        method: test.name().to_string(),
        kind: kind.as_str().to_string(),
        allowed: allowed.join(", "),
    }
}

/// Drift of one column. `test: None` picks Evidently's default; `threshold: None` uses the
/// test's default threshold.
pub fn column_drift(
    column: &str,
    reference: &ColumnSample,
    current: &ColumnSample,
    test: Option<DriftTest>,
    threshold: Option<f64>,
) -> Result<ColumnDrift, AnalyzerError> {
    let kind = reference.kind();
    let distinct = distinct_union(reference, current)
        .map_err(|_| AnalyzerError::MixedKinds(column.to_string()))?;
    let (test, auto) = match test {
        Some(t) => {
            if !t.allows(kind) {
                return Err(not_applicable(t, kind));
            }
            (t, false)
        }
        None => (default_test(kind, reference.total(), distinct), true),
    };
    let threshold = threshold.unwrap_or_else(|| test.default_threshold());
    let score = drift_score(test, reference, current)?;
    Ok(ColumnDrift {
        column: column.to_string(),
        kind,
        method: test,
        score,
        threshold,
        drift: test.is_drift(score, threshold),
        auto,
        reference_rows: reference.total(),
        current_rows: current.total(),
        distinct_values: distinct,
    })
}

/// Dataset drift: drifted when the share of drifted columns is at least `drift_share_threshold`.
pub fn dataset_drift(columns: Vec<ColumnDrift>, drift_share_threshold: f64) -> DatasetDrift {
    let drifted = columns.iter().filter(|c| c.drift).count() as u64;
    let total = columns.len() as u64;
    let share = if total == 0 {
        0.0
    } else {
        drifted as f64 / total as f64
    };
    DatasetDrift {
        dataset_drift: total > 0 && share >= drift_share_threshold,
        drift_share: share,
        drifted_columns: drifted,
        total_columns: total,
        drift_share_threshold,
        columns,
    }
}
