//! `vigil drift --embeddings NAME=COL1,COL2,…`: drift of embedding column sets with Evidently's
//! embedding methods (`crate::drift::embedding`). Option names are Evidently's, prefixed with
//! `embedding-` (`--embedding-dist`, `--embedding-threshold`, …) because `--threshold` already
//! means the per-column threshold.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, ValueEnum};
use serde::Serialize;

use super::{csv_error, header_index, header_list, is_missing, open_csv, parse_number};
use crate::drift::embedding::{
    embedding_drift, DistanceOptions, EmbeddingDriftResult, EmbeddingMethod, Matrix, MeanDistance,
    MmdOptions, ModelOptions, RatioOptions,
};
use crate::drift::DriftTest;

/// Embedding drift method on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EmbeddingMethodArg {
    /// Distance between the mean embeddings.
    Distance,
    /// Share of components that drift on their own.
    Ratio,
    /// Maximum mean discrepancy (RBF kernel).
    Mmd,
    /// ROC AUC of a classifier telling reference from current rows.
    Model,
}

/// Embedding options of `vigil drift`.
#[derive(Debug, Clone, Default, Args)]
pub struct EmbeddingArgs {
    /// An embedding set to test as a whole: NAME=COL1,COL2,… (repeatable). Its columns are
    /// left out of the per-column analysis unless listed with --numerical.
    #[arg(long = "embeddings", value_name = "NAME=COL1,COL2,...")]
    pub embeddings: Vec<String>,
    /// Method for every embedding set. Default: Evidently's, `model`, bootstrapped when the
    /// reference has fewer than 1000 rows.
    #[arg(long, value_enum)]
    pub embedding_method: Option<EmbeddingMethodArg>,
    /// distance: euclidean, cosine, cityblock or chebyshev (default euclidean).
    #[arg(long)]
    pub embedding_dist: Option<String>,
    /// Drift threshold (defaults: distance 0.2, ratio 0.2, mmd 0.015, model 0.55).
    #[arg(long)]
    pub embedding_threshold: Option<f64>,
    /// distance, mmd, model: compare with a bootstrap percentile instead of the threshold.
    #[arg(long)]
    pub embedding_bootstrap: bool,
    /// Bootstrap percentile (defaults: distance 0.95, mmd 0.05, model 0.95).
    #[arg(long)]
    pub embedding_quantile_probability: Option<f64>,
    /// Project both sides onto this many principal components of the reference first.
    #[arg(long)]
    pub embedding_pca_components: Option<usize>,
    /// ratio: drift test per component (a numerical test; default wasserstein).
    #[arg(long)]
    pub embedding_component_stattest: Option<String>,
    /// ratio: threshold of the per-component test (default 0.1).
    #[arg(long)]
    pub embedding_component_stattest_threshold: Option<f64>,
}

/// One embedding set's result.
#[derive(Debug, Clone, Serialize)]
pub struct EmbeddingReport {
    pub name: String,
    #[serde(flatten)]
    pub result: EmbeddingDriftResult,
}

impl EmbeddingArgs {
    /// The sets as (name, columns), validated.
    pub fn sets(&self) -> Result<Vec<(String, Vec<String>)>> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for spec in &self.embeddings {
            let (name, cols) = spec.split_once('=').ok_or_else(|| {
                anyhow!("--embeddings `{spec}`: write NAME=COL1,COL2,… (a name, `=`, the columns)")
            })?;
            let name = name.trim().to_string();
            let cols: Vec<String> = cols
                .split(',')
                .map(|c| c.trim().to_string())
                .filter(|c| !c.is_empty())
                .collect();
            if name.is_empty() || cols.is_empty() {
                bail!("--embeddings `{spec}`: needs a name and at least one column");
            }
            if out.iter().any(|(n, _)| *n == name) {
                bail!("--embeddings: the name `{name}` is used twice; give each set its own");
            }
            let unique: BTreeSet<&String> = cols.iter().collect();
            if unique.len() != cols.len() {
                bail!("--embeddings `{name}`: a column is listed twice");
            }
            out.push((name, cols));
        }
        let options_given = self.embedding_method.is_some()
            || self.embedding_dist.is_some()
            || self.embedding_threshold.is_some()
            || self.embedding_bootstrap
            || self.embedding_quantile_probability.is_some()
            || self.embedding_pca_components.is_some()
            || self.embedding_component_stattest.is_some()
            || self.embedding_component_stattest_threshold.is_some();
        if out.is_empty() && options_given {
            bail!("--embedding-* options need at least one --embeddings NAME=COL1,COL2,…");
        }
        Ok(out)
    }

    fn reject(&self, method: &str, given: &[(&str, bool)]) -> Result<()> {
        if let Some((flag, _)) = given.iter().find(|(_, g)| *g) {
            bail!("{flag} does not apply to --embedding-method {method}");
        }
        Ok(())
    }

    /// The method with Evidently's defaults for whatever was not given.
    pub fn method(&self, reference_rows: usize) -> Result<EmbeddingMethod> {
        let dist = ("--embedding-dist", self.embedding_dist.is_some());
        let boot = ("--embedding-bootstrap", self.embedding_bootstrap);
        let quant = (
            "--embedding-quantile-probability",
            self.embedding_quantile_probability.is_some(),
        );
        let comp = (
            "--embedding-component-stattest",
            self.embedding_component_stattest.is_some(),
        );
        let comp_t = (
            "--embedding-component-stattest-threshold",
            self.embedding_component_stattest_threshold.is_some(),
        );
        let pca = self.embedding_pca_components;
        let m = match self.embedding_method {
            None | Some(EmbeddingMethodArg::Model) => {
                let name = "model";
                self.reject(name, &[dist, comp, comp_t])?;
                let d = match self.embedding_method {
                    None => match EmbeddingMethod::evidently_default(reference_rows) {
                        EmbeddingMethod::Model(o) => o,
                        _ => ModelOptions::default(),
                    },
                    Some(_) => ModelOptions::default(),
                };
                EmbeddingMethod::Model(ModelOptions {
                    threshold: self.embedding_threshold.unwrap_or(d.threshold),
                    bootstrap: self.embedding_bootstrap || d.bootstrap,
                    quantile_probability: self
                        .embedding_quantile_probability
                        .unwrap_or(d.quantile_probability),
                    pca_components: pca,
                })
            }
            Some(EmbeddingMethodArg::Distance) => {
                self.reject("distance", &[comp, comp_t])?;
                let d = DistanceOptions::default();
                let dist = match &self.embedding_dist {
                    Some(s) => MeanDistance::from_name(s)?,
                    None => d.dist,
                };
                EmbeddingMethod::Distance(DistanceOptions {
                    dist,
                    threshold: self.embedding_threshold.unwrap_or(d.threshold),
                    bootstrap: self.embedding_bootstrap,
                    quantile_probability: self
                        .embedding_quantile_probability
                        .unwrap_or(d.quantile_probability),
                    pca_components: pca,
                })
            }
            Some(EmbeddingMethodArg::Ratio) => {
                self.reject("ratio", &[dist, boot, quant])?;
                let d = RatioOptions::default();
                let test = match &self.embedding_component_stattest {
                    Some(s) => DriftTest::from_name(s)?,
                    None => d.component_stattest,
                };
                EmbeddingMethod::Ratio(RatioOptions {
                    component_stattest: test,
                    component_stattest_threshold: self
                        .embedding_component_stattest_threshold
                        .unwrap_or(d.component_stattest_threshold),
                    threshold: self.embedding_threshold.unwrap_or(d.threshold),
                    pca_components: pca,
                })
            }
            Some(EmbeddingMethodArg::Mmd) => {
                self.reject("mmd", &[dist, comp, comp_t])?;
                let d = MmdOptions::default();
                EmbeddingMethod::Mmd(MmdOptions {
                    threshold: self.embedding_threshold.unwrap_or(d.threshold),
                    bootstrap: self.embedding_bootstrap,
                    quantile_probability: self
                        .embedding_quantile_probability
                        .unwrap_or(d.quantile_probability),
                    pca_components: pca,
                })
            }
        };
        Ok(m)
    }
}

/// Read every set's columns from one CSV as row-aligned matrices. Embeddings need a number in
/// every row: a missing or non-numeric cell is an error naming file, row and column.
fn read_matrices(path: &Path, sets: &[(String, Vec<String>)]) -> Result<Vec<Matrix>> {
    let mut rdr = open_csv(path)?;
    let headers = rdr
        .byte_headers()
        .with_context(|| format!("{}: cannot read the header row", path.display()))?
        .clone();
    let idx: HashMap<String, usize> = header_index(path, &headers)?;
    let mut columns: Vec<Vec<usize>> = Vec::with_capacity(sets.len());
    for (name, cols) in sets {
        let mut c = Vec::with_capacity(cols.len());
        for col in cols {
            c.push(*idx.get(col).ok_or_else(|| {
                anyhow!(
                    "{}: embedding `{name}`: no column `{col}` in the header; columns are: {}",
                    path.display(),
                    header_list(&headers)
                )
            })?);
        }
        columns.push(c);
    }
    let mut data: Vec<Vec<f64>> = vec![Vec::new(); sets.len()];
    let mut record = csv::ByteRecord::new();
    let mut row: u64 = 1;
    while rdr
        .read_byte_record(&mut record)
        .map_err(|e| csv_error(path, e))?
    {
        row += 1;
        for ((name, cols), (ci, out)) in sets.iter().zip(columns.iter().zip(data.iter_mut())) {
            for (col, &i) in cols.iter().zip(ci) {
                let cell = record.get(i).unwrap_or_default();
                let v = if is_missing(cell) {
                    None
                } else {
                    parse_number(cell).filter(|v| v.is_finite())
                };
                let v = v.ok_or_else(|| {
                    anyhow!(
                        "{}: row {row}: embedding `{name}` column `{col}` holds `{}`, not a finite number; embeddings need a number in every row",
                        path.display(),
                        String::from_utf8_lossy(cell)
                    )
                })?;
                out.push(v);
            }
        }
    }
    sets.iter()
        .zip(data)
        .map(|((name, cols), d)| {
            Matrix::from_row_major(d.len() / cols.len(), cols.len(), d)
                .map_err(|e| anyhow!("{}: embedding `{name}`: {e}", path.display()))
        })
        .collect()
}

/// Embedding drift for every set of `args`; empty when none was given.
pub fn embedding_reports(
    args: &EmbeddingArgs,
    reference: &Path,
    current: &Path,
) -> Result<Vec<EmbeddingReport>> {
    let sets = args.sets()?;
    if sets.is_empty() {
        return Ok(Vec::new());
    }
    let refs = read_matrices(reference, &sets)?;
    let curs = read_matrices(current, &sets)?;
    let mut out = Vec::with_capacity(sets.len());
    for (((name, _), r), c) in sets.iter().zip(&refs).zip(&curs) {
        let method = args.method(r.rows())?;
        let result =
            embedding_drift(r, c, &method).map_err(|e| anyhow!("embedding `{name}`: {e}"))?;
        out.push(EmbeddingReport {
            name: name.clone(),
            result,
        });
    }
    Ok(out)
}
