//! Embedding drift: did a set of embedding columns (text encoded by a model) change between a
//! reference and a current sample? Evidently's four definitions
//! (`evidently.legacy.metrics.data_drift.embedding_drift_methods`, 0.7.23), reproduced exactly,
//! randomness included: Evidently seeds NumPy's legacy generator (`np.random.seed(i)`,
//! `random_state=0/42`), and [`nprandom`] ports that generator, so vigil's values equal
//! Evidently's, not merely resemble them (golden-tested in `tests/embedding_golden.rs`).
//!
//! | method | value | drift when | defaults |
//! |---|---|---|---|
//! | `distance` | distance between the mean embeddings (euclidean, cosine, cityblock, chebyshev) | value > threshold, or with `bootstrap` value > the `quantile_probability` percentile of 100 reference-vs-reference bootstrap distances | euclidean, 0.2, no bootstrap, 0.95 |
//! | `ratio` | share of components whose own drift test (default normed Wasserstein ≥ 0.1) drifts | value > threshold | wasserstein, 0.1, 0.2 |
//! | `mmd` | unbiased MMD² with an RBF kernel, bandwidth = median reference–current distance, floored at 0 | raw MMD² > threshold, or with `bootstrap` > the `quantile_probability` percentile of 100 reference-only bootstrap MMD² | 0.015, no bootstrap, 0.05 |
//! | `model` | ROC AUC of a classifier telling reference from current ([`classifier`]) | value > threshold, or with `bootstrap` > the `quantile_probability` percentile of 100 AUCs of random scores | 0.55, no bootstrap, 0.95 |
//!
//! Every method optionally first projects both sides onto `pca_components` principal
//! components of the reference ([`pca`]). With no method given Evidently uses `model`, with
//! `bootstrap` exactly when the reference has fewer than 1000 rows
//! ([`EmbeddingMethod::evidently_default`]).
//!
//! Costs: `mmd` evaluates the kernel on all (m + n)² pairs (O((m + n)² d)); `model` runs up
//! to 1000 SGD epochs over half the rows. Sample large windows before calling.

pub mod classifier;
pub mod matrix;
mod mmd;
pub mod nprandom;
pub mod pca;

use serde::Serialize;

use super::{column_drift, ColumnKind, ColumnSample, DriftTest, NumericCounts};
use crate::error::AnalyzerError;
use matrix::sq_dist;
pub use matrix::Matrix;
use nprandom::{percentile, RandomState};

/// Bootstrap repetitions, as Evidently's `N_BOOTSTRAP`.
pub const N_BOOTSTRAP: u32 = 100;
/// Reference rows below which Evidently's default `model` method bootstraps.
pub const DEFAULT_BOOTSTRAP_BELOW_ROWS: usize = 1000;

/// Distance between mean embeddings (SciPy's `scipy.spatial.distance` functions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MeanDistance {
    Euclidean,
    /// 1 − cos(angle), clipped to [0, 2].
    Cosine,
    /// Sum of absolute differences.
    Cityblock,
    /// Largest absolute difference.
    Chebyshev,
}

impl MeanDistance {
    pub fn name(self) -> &'static str {
        match self {
            MeanDistance::Euclidean => "euclidean",
            MeanDistance::Cosine => "cosine",
            MeanDistance::Cityblock => "cityblock",
            MeanDistance::Chebyshev => "chebyshev",
        }
    }

    pub fn from_name(name: &str) -> Result<Self, AnalyzerError> {
        match name.trim().to_ascii_lowercase().as_str() {
            "euclidean" => Ok(MeanDistance::Euclidean),
            "cosine" => Ok(MeanDistance::Cosine),
            "cityblock" | "manhattan" => Ok(MeanDistance::Cityblock),
            "chebyshev" => Ok(MeanDistance::Chebyshev),
            _ => Err(AnalyzerError::InvalidInput(format!(
                "unknown embedding distance `{name}`; use euclidean, cosine, cityblock or chebyshev"
            ))),
        }
    }

    fn between(self, u: &[f64], v: &[f64]) -> f64 {
        match self {
            MeanDistance::Euclidean => sq_dist(u, v).sqrt(),
            MeanDistance::Cosine => {
                let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
                let d = 1.0 - dot(u, v) / (dot(u, u) * dot(v, v)).sqrt();
                d.clamp(0.0, 2.0)
            }
            MeanDistance::Cityblock => u.iter().zip(v).map(|(a, b)| (a - b).abs()).sum(),
            MeanDistance::Chebyshev => u
                .iter()
                .zip(v)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max),
        }
    }
}

/// Evidently's `DistanceDriftMethod`.
#[derive(Debug, Clone, PartialEq)]
pub struct DistanceOptions {
    pub dist: MeanDistance,
    pub threshold: f64,
    pub bootstrap: bool,
    pub quantile_probability: f64,
    pub pca_components: Option<usize>,
}

impl Default for DistanceOptions {
    fn default() -> Self {
        DistanceOptions {
            dist: MeanDistance::Euclidean,
            threshold: 0.2,
            bootstrap: false,
            quantile_probability: 0.95,
            pca_components: None,
        }
    }
}

/// Evidently's `RatioDriftMethod`.
#[derive(Debug, Clone, PartialEq)]
pub struct RatioOptions {
    /// Drift test per component (numerical tests only).
    pub component_stattest: DriftTest,
    /// Threshold of the per-component test (Evidently: 0.1 whatever the test).
    pub component_stattest_threshold: f64,
    /// The set drifts when the share of drifted components exceeds this.
    pub threshold: f64,
    pub pca_components: Option<usize>,
}

impl Default for RatioOptions {
    fn default() -> Self {
        RatioOptions {
            component_stattest: DriftTest::WassersteinNormed,
            component_stattest_threshold: 0.1,
            threshold: 0.2,
            pca_components: None,
        }
    }
}

/// Evidently's `MMDDriftMethod`.
#[derive(Debug, Clone, PartialEq)]
pub struct MmdOptions {
    pub threshold: f64,
    pub bootstrap: bool,
    pub quantile_probability: f64,
    pub pca_components: Option<usize>,
}

impl Default for MmdOptions {
    fn default() -> Self {
        MmdOptions {
            threshold: 0.015,
            bootstrap: false,
            quantile_probability: 0.05,
            pca_components: None,
        }
    }
}

/// Evidently's `ModelDriftMethod`.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelOptions {
    pub threshold: f64,
    pub bootstrap: bool,
    pub quantile_probability: f64,
    pub pca_components: Option<usize>,
}

impl Default for ModelOptions {
    fn default() -> Self {
        ModelOptions {
            threshold: 0.55,
            bootstrap: false,
            quantile_probability: 0.95,
            pca_components: None,
        }
    }
}

/// One of Evidently's embedding drift methods with its options.
#[derive(Debug, Clone, PartialEq)]
pub enum EmbeddingMethod {
    Distance(DistanceOptions),
    Ratio(RatioOptions),
    Mmd(MmdOptions),
    Model(ModelOptions),
}

impl EmbeddingMethod {
    /// What Evidently's `EmbeddingsDriftMetric` uses when given no method:
    /// `model(bootstrap = reference rows < 1000)`.
    pub fn evidently_default(reference_rows: usize) -> Self {
        EmbeddingMethod::Model(ModelOptions {
            bootstrap: reference_rows < DEFAULT_BOOTSTRAP_BELOW_ROWS,
            ..ModelOptions::default()
        })
    }

    pub fn name(&self) -> &'static str {
        match self {
            EmbeddingMethod::Distance(_) => "distance",
            EmbeddingMethod::Ratio(_) => "ratio",
            EmbeddingMethod::Mmd(_) => "mmd",
            EmbeddingMethod::Model(_) => "model",
        }
    }

    fn pca_components(&self) -> Option<usize> {
        match self {
            EmbeddingMethod::Distance(o) => o.pca_components,
            EmbeddingMethod::Ratio(o) => o.pca_components,
            EmbeddingMethod::Mmd(o) => o.pca_components,
            EmbeddingMethod::Model(o) => o.pca_components,
        }
    }
}

/// Result for one embedding set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EmbeddingDriftResult {
    /// `distance`, `ratio`, `mmd` or `model`.
    pub method: &'static str,
    /// Evidently's `drift_score`.
    pub value: f64,
    /// What the decision compared against: the fixed threshold, or with `bootstrap` the
    /// bootstrap percentile.
    pub threshold: f64,
    pub drifted: bool,
    pub bootstrap: bool,
    pub reference_rows: usize,
    pub current_rows: usize,
    /// Components the method saw (after PCA, if any).
    pub components: usize,
}

/// Embedding drift of `current` against `reference` (same number of columns, at least two
/// rows each).
pub fn embedding_drift(
    reference: &Matrix,
    current: &Matrix,
    method: &EmbeddingMethod,
) -> Result<EmbeddingDriftResult, AnalyzerError> {
    if reference.cols() != current.cols() {
        return Err(AnalyzerError::InvalidInput(format!(
            "reference embeddings have {} components, current {}; use the same columns on both sides",
            reference.cols(),
            current.cols()
        )));
    }
    if reference.rows() < 2 || current.rows() < 2 {
        return Err(AnalyzerError::InvalidInput(format!(
            "embedding drift needs at least 2 rows on each side (got {} reference, {} current)",
            reference.rows(),
            current.rows()
        )));
    }
    let projected;
    let (r, c) = match method.pca_components() {
        Some(k) => {
            let p = pca::Pca::fit(reference, k)?;
            projected = (p.transform(reference), p.transform(current));
            (&projected.0, &projected.1)
        }
        None => (reference, current),
    };
    let (value, threshold, drifted, bootstrap) = match method {
        EmbeddingMethod::Distance(o) => distance(r, c, o)?,
        EmbeddingMethod::Ratio(o) => ratio(r, c, o)?,
        EmbeddingMethod::Mmd(o) => mmd::mmd(r, c, o)?,
        EmbeddingMethod::Model(o) => model(r, c, o)?,
    };
    Ok(EmbeddingDriftResult {
        method: method.name(),
        value,
        threshold,
        drifted,
        bootstrap,
        reference_rows: reference.rows(),
        current_rows: current.rows(),
        components: r.cols(),
    })
}

/// (value, threshold compared against, drifted, bootstrapped)
type Decision = (f64, f64, bool, bool);

fn finite(value: f64, what: &str) -> Result<f64, AnalyzerError> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(AnalyzerError::InvalidInput(format!(
            "{what} is undefined for these embeddings (e.g. a zero mean vector for cosine, or all rows identical)"
        )))
    }
}

fn distance(r: &Matrix, c: &Matrix, o: &DistanceOptions) -> Result<Decision, AnalyzerError> {
    if o.dist == MeanDistance::Cosine && o.pca_components.is_some() {
        // PCA centres the reference on its mean, so the reference mean is the origin up to
        // rounding and the angle to it is rounding noise (Evidently returns that noise).
        return Err(AnalyzerError::InvalidInput(
            "cosine distance after PCA is undefined: PCA moves the reference mean to the origin; use euclidean, or cosine without pca_components".into(),
        ));
    }
    let value = finite(
        o.dist.between(&r.column_means(), &c.column_means()),
        "the distance",
    )?;
    if !o.bootstrap {
        return Ok((value, o.threshold, value > o.threshold, false));
    }
    // Both bootstrap samples come from the reference: the spread of the statistic without drift.
    let (m, n) = (r.rows() as f64, c.rows() as f64);
    let ref_size = (m * m / (m + n)) as usize;
    let cur_size = (n * m / (m + n)) as usize;
    let mut stats = Vec::with_capacity(N_BOOTSTRAP as usize);
    for i in 0..N_BOOTSTRAP {
        let mut rs = RandomState::new(i);
        let a = rs.choice(r.rows(), ref_size);
        let b = rs.choice(r.rows(), cur_size);
        stats.push(o.dist.between(&r.mean_of_rows(&a), &r.mean_of_rows(&b)));
    }
    let perc = percentile(&stats, o.quantile_probability);
    Ok((value, perc, value > perc, true))
}

fn ratio(r: &Matrix, c: &Matrix, o: &RatioOptions) -> Result<Decision, AnalyzerError> {
    let test = o.component_stattest;
    if !test.allows(ColumnKind::Numerical) {
        return Err(AnalyzerError::InvalidInput(format!(
            "component_stattest `{}` is not a numerical drift test; use e.g. wasserstein, ks, psi, jensenshannon",
            test.name()
        )));
    }
    let mut drifted = 0usize;
    for j in 0..r.cols() {
        let rs = ColumnSample::Numerical(NumericCounts::from_values(&r.column(j))?);
        let cs = ColumnSample::Numerical(NumericCounts::from_values(&c.column(j))?);
        let d = column_drift(
            "",
            &rs,
            &cs,
            Some(test),
            Some(o.component_stattest_threshold),
        )?;
        if d.drift {
            drifted += 1;
        }
    }
    let share = drifted as f64 / r.cols() as f64;
    Ok((share, o.threshold, share > o.threshold, false))
}

fn model(r: &Matrix, c: &Matrix, o: &ModelOptions) -> Result<Decision, AnalyzerError> {
    let (auc, test_labels) = classifier::domain_classifier_auc(r, c)?;
    if !o.bootstrap {
        return Ok((auc, o.threshold, auc > o.threshold, false));
    }
    // AUCs of uniformly random scores on the same test labels: chance level and its spread.
    let mut random_aucs = Vec::with_capacity(N_BOOTSTRAP as usize);
    for i in 0..N_BOOTSTRAP {
        let scores = RandomState::new(i).rand(test_labels.len());
        random_aucs.push(classifier::roc_auc(&test_labels, &scores)?);
    }
    let perc = percentile(&random_aucs, o.quantile_probability);
    Ok((auc, perc, auc > perc, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(rows: usize, cols: usize, offset: f64) -> Matrix {
        let data = (0..rows * cols)
            .map(|i| ((i * 7919) % 97) as f64 / 97.0 + offset)
            .collect();
        Matrix::from_row_major(rows, cols, data).unwrap()
    }

    #[test]
    fn shifted_embeddings_drift_under_every_method() {
        let r = grid(60, 5, 0.0);
        let c = grid(50, 5, 3.0);
        for m in [
            EmbeddingMethod::Distance(DistanceOptions::default()),
            EmbeddingMethod::Ratio(RatioOptions::default()),
            EmbeddingMethod::Mmd(MmdOptions::default()),
            EmbeddingMethod::Model(ModelOptions::default()),
            EmbeddingMethod::evidently_default(60),
        ] {
            let res = embedding_drift(&r, &c, &m).unwrap();
            assert!(res.drifted, "{m:?}: {res:?}");
        }
    }

    #[test]
    fn rejects_mismatched_or_tiny_inputs() {
        let m = EmbeddingMethod::Distance(DistanceOptions::default());
        assert!(embedding_drift(&grid(5, 3, 0.0), &grid(5, 4, 0.0), &m).is_err());
        assert!(embedding_drift(&grid(1, 3, 0.0), &grid(5, 3, 0.0), &m).is_err());
        let bad_ratio = EmbeddingMethod::Ratio(RatioOptions {
            component_stattest: DriftTest::ChiSquare,
            ..RatioOptions::default()
        });
        assert!(embedding_drift(&grid(5, 3, 0.0), &grid(5, 3, 0.0), &bad_ratio).is_err());
    }
}
