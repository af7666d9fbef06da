//! `vigil drift --embeddings NAME=COL1,COL2,…`: drift of embedding column sets with Evidently's
//! embedding methods (`crate::drift::embedding`). Option names are Evidently's, prefixed with
//! `embedding-` (`--embedding-dist`, `--embedding-threshold`, …) because `--threshold` already
//! means the per-column threshold.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, ValueEnum};
use serde::Serialize;

use super::{csv_error, header_index, header_list, is_missing, open_csv, parse_number};
use crate::drift::embedding::{
    embedding_drift, DistanceOptions, EmbeddingDriftResult, EmbeddingMethod, Matrix, MeanDistance,
    MmdOptions, ModelOptions, RatioOptions,
};
use crate::drift::DriftTest;

/// Turns texts into embeddings for `--text-column`. This crate runs no model: the binary
/// supplies the shadow runner's sentence encoder (all-MiniLM-L6-v2 in candle).
pub trait TextEncoder {
    /// What encoded the texts, for the report (e.g. the model directory's name).
    fn name(&self) -> String;
    /// One embedding per text, in input order.
    fn encode(
        &self,
        texts: &[String],
    ) -> std::result::Result<Vec<Vec<f32>>, Box<dyn std::error::Error + Send + Sync>>;
    /// The encoder's whole-word vocabulary in lower case (see [`crate::text::whole_words`]), for
    /// the out-of-vocabulary descriptor; `None` when it has none to offer.
    fn vocabulary(&self) -> Option<std::sync::Arc<std::collections::HashSet<String>>> {
        None
    }
}

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
    /// A text column judged by its embeddings (repeatable): every text is encoded with the
    /// sentence encoder (--encoder) and the vectors are tested like an --embeddings set named
    /// after the column. The column is left out of the per-column analysis.
    #[arg(long = "text-column", value_name = "COL")]
    pub text_columns: Vec<String>,
    /// Sentence-transformers model directory for --text-column (default: all-MiniLM-L6-v2 in
    /// the models cache of scripts/models/fetch.sh).
    #[arg(long, value_name = "DIR")]
    pub encoder: Option<PathBuf>,
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
    /// The sentence encoder, for a `--text-column` (absent for precomputed `--embeddings`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoder: Option<String>,
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
        if out.is_empty() && self.text_columns.is_empty() && options_given {
            bail!("--embedding-* options need at least one --embeddings NAME=COL1,COL2,… or --text-column COL");
        }
        if self.encoder.is_some() && self.text_columns.is_empty() {
            bail!("--encoder is the model for --text-column; give at least one --text-column COL");
        }
        Ok(out)
    }

    /// The `--text-column`s, validated (each once, none also an --embeddings name).
    pub fn texts(&self) -> Result<Vec<String>> {
        let sets = self.sets()?;
        let mut out: Vec<String> = Vec::new();
        for c in &self.text_columns {
            let c = c.trim().to_string();
            if c.is_empty() {
                bail!("--text-column needs a column name");
            }
            if out.contains(&c) {
                bail!("--text-column `{c}` is given twice");
            }
            if sets.iter().any(|(n, _)| *n == c) {
                bail!("--text-column `{c}` is also an --embeddings name; results are named after both, so rename the set");
            }
            out.push(c);
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

/// Opens a CSV and indexes its header row (name → position).
fn open_indexed(
    path: &Path,
) -> Result<(
    csv::Reader<std::fs::File>,
    csv::ByteRecord,
    HashMap<String, usize>,
)> {
    let mut rdr = open_csv(path)?;
    let headers = rdr
        .byte_headers()
        .with_context(|| format!("{}: cannot read the header row", path.display()))?
        .clone();
    let idx = header_index(path, &headers)?;
    Ok((rdr, headers, idx))
}

/// Read every set's columns from one CSV as row-aligned matrices. Embeddings need a number in
/// every row: a missing or non-numeric cell is an error naming file, row and column.
fn read_matrices(path: &Path, sets: &[(String, Vec<String>)]) -> Result<Vec<Matrix>> {
    let (mut rdr, headers, idx) = open_indexed(path)?;
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

/// Read one text column per name from a CSV. Missing cells (`NA`, …) are left out, and so are
/// empty cells unless `keep_empty` (an empty answer is a fact for the descriptors, nothing to
/// encode for the embeddings).
pub(super) fn read_texts(
    path: &Path,
    columns: &[String],
    keep_empty: bool,
) -> Result<Vec<Vec<String>>> {
    let (mut rdr, headers, idx) = open_indexed(path)?;
    let mut at = Vec::with_capacity(columns.len());
    for col in columns {
        at.push(*idx.get(col).ok_or_else(|| {
            anyhow!(
                "{}: --text-column `{col}`: no such column in the header; columns are: {}",
                path.display(),
                header_list(&headers)
            )
        })?);
    }
    let mut out: Vec<Vec<String>> = vec![Vec::new(); columns.len()];
    let mut record = csv::ByteRecord::new();
    let mut row: u64 = 1;
    while rdr
        .read_byte_record(&mut record)
        .map_err(|e| csv_error(path, e))?
    {
        row += 1;
        for ((col, &i), texts) in columns.iter().zip(&at).zip(out.iter_mut()) {
            let cell = record.get(i).unwrap_or_default();
            if cell.is_empty() {
                if keep_empty {
                    texts.push(String::new());
                }
                continue;
            }
            if is_missing(cell) {
                continue;
            }
            let text = std::str::from_utf8(cell).map_err(|_| {
                anyhow!(
                    "{}: row {row}: text column `{col}` is not valid UTF-8",
                    path.display()
                )
            })?;
            texts.push(text.to_owned());
        }
    }
    Ok(out)
}

fn encode_matrix(
    encoder: &dyn TextEncoder,
    texts: &[String],
    path: &Path,
    col: &str,
) -> Result<Matrix> {
    if texts.is_empty() {
        bail!("{}: text column `{col}` has no texts", path.display());
    }
    // Encoding is the slow part (seconds per thousand texts on a CPU): say what is happening.
    eprintln!(
        "vigil drift: encoding {} texts of `{col}` from {}",
        texts.len(),
        path.display()
    );
    let vectors = encoder.encode(texts).map_err(|e| {
        anyhow!(
            "{}: encoding text column `{col}` with {}: {e}",
            path.display(),
            encoder.name()
        )
    })?;
    let dim = vectors.first().map_or(0, Vec::len);
    let mut data = Vec::with_capacity(vectors.len() * dim);
    for v in &vectors {
        if v.len() != dim {
            bail!(
                "the encoder returned vectors of different lengths ({dim} and {})",
                v.len()
            );
        }
        data.extend(v.iter().map(|&x| f64::from(x)));
    }
    Matrix::from_row_major(vectors.len(), dim, data).map_err(|e| anyhow!("{col}: {e}"))
}

/// Embedding drift for every set and text column of `args`; empty when none was given.
/// Text columns need `encoder`.
pub fn embedding_reports(
    args: &EmbeddingArgs,
    reference: &Path,
    current: &Path,
    encoder: Option<&dyn TextEncoder>,
) -> Result<Vec<EmbeddingReport>> {
    let sets = args.sets()?;
    let texts = args.texts()?;
    let mut out = Vec::with_capacity(sets.len() + texts.len());
    if !sets.is_empty() {
        let refs = read_matrices(reference, &sets)?;
        let curs = read_matrices(current, &sets)?;
        for (((name, _), r), c) in sets.iter().zip(&refs).zip(&curs) {
            let method = args.method(r.rows())?;
            let result =
                embedding_drift(r, c, &method).map_err(|e| anyhow!("embedding `{name}`: {e}"))?;
            out.push(EmbeddingReport {
                name: name.clone(),
                encoder: None,
                result,
            });
        }
    }
    if !texts.is_empty() {
        let encoder = encoder.ok_or_else(|| {
            anyhow!("--text-column needs a sentence encoder, which `vigil drift` loads (this build has none)")
        })?;
        let ref_texts = read_texts(reference, &texts, false)?;
        let cur_texts = read_texts(current, &texts, false)?;
        for ((col, rt), ct) in texts.iter().zip(&ref_texts).zip(&cur_texts) {
            let r = encode_matrix(encoder, rt, reference, col)?;
            let c = encode_matrix(encoder, ct, current, col)?;
            let method = args.method(r.rows())?;
            let result = embedding_drift(&r, &c, &method)
                .map_err(|e| anyhow!("text column `{col}`: {e}"))?;
            out.push(EmbeddingReport {
                name: col.clone(),
                encoder: Some(encoder.name()),
                result,
            });
        }
    }
    Ok(out)
}
