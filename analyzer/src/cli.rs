//! Command-line front ends for `vigil drift` and `vigil fairness`: argument structs (clap
//! derive) and functions that read CSV files and return the rendered report.
//!
//! The binary only has to flatten [`DriftArgs`] / [`FairnessArgs`] into its subcommands and
//! print what [`run_drift`] / [`run_fairness`] return.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, ValueEnum};
use serde::Serialize;

use crate::drift::options::Level;
use crate::drift::{
    self, CategoryCounts, ColumnDrift, ColumnSample, ColumnStattest, DriftTest, NumericCounts,
    Stattest, StattestOptions,
};

mod embedding;
use crate::fairness::{self, FairnessReport, GroupCounts};
use crate::quality::{self, ColumnQuality, ColumnTally};
pub use embedding::{EmbeddingArgs, EmbeddingMethodArg, EmbeddingReport, TextEncoder};

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum OutputFormat {
    #[default]
    Json,
    Table,
}

/// Drift method choice on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum MethodArg {
    /// Evidently's default per column (KS / chi-square / Z for ≤ 1000 reference rows,
    /// Wasserstein / Jensen–Shannon above).
    #[default]
    Auto,
    Ks,
    #[value(alias = "chi2", alias = "chi-square")]
    Chisquare,
    #[value(alias = "ztest")]
    Z,
    Wasserstein,
    #[value(alias = "js")]
    Jensenshannon,
    Psi,
    /// Kullback–Leibler (Evidently's `kl_div` is accepted too).
    #[value(alias = "kl_div")]
    Kl,
    Hellinger,
}

impl MethodArg {
    fn stattest(self) -> Stattest {
        self.test().map_or(Stattest::Auto, Stattest::Test)
    }

    fn test(self) -> Option<DriftTest> {
        Some(match self {
            MethodArg::Auto => return None,
            MethodArg::Ks => DriftTest::KolmogorovSmirnov,
            MethodArg::Chisquare => DriftTest::ChiSquare,
            MethodArg::Z => DriftTest::ZTest,
            MethodArg::Wasserstein => DriftTest::WassersteinNormed,
            MethodArg::Jensenshannon => DriftTest::JensenShannon,
            MethodArg::Psi => DriftTest::Psi,
            MethodArg::Kl => DriftTest::KlDivergence,
            MethodArg::Hellinger => DriftTest::Hellinger,
        })
    }
}

/// `vigil drift`: compare a current CSV with a reference CSV column by column.
#[derive(Debug, Clone, Args)]
pub struct DriftArgs {
    /// Reference data (CSV with a header row).
    #[arg(long)]
    pub reference: PathBuf,
    /// Current data (CSV with a header row).
    #[arg(long)]
    pub current: PathBuf,
    /// Columns to treat as numerical (comma-separated). When this or --categorical is given,
    /// only the listed columns are analysed; otherwise every column in both files is, with
    /// its type inferred (all values numbers → numerical).
    #[arg(long, value_delimiter = ',')]
    pub numerical: Vec<String>,
    /// Columns to treat as categorical (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub categorical: Vec<String>,
    /// Tests and thresholds: for every column, per column type, per column.
    #[command(flatten)]
    pub stattests: StattestArgs,
    /// Share of drifted columns at or above which the dataset counts as drifted.
    #[arg(long, default_value_t = drift::DEFAULT_DRIFT_SHARE)]
    pub drift_share: f64,
    #[arg(long, value_enum, default_value_t = OutputFormat::Json)]
    pub format: OutputFormat,
    #[command(flatten)]
    pub embeddings: EmbeddingArgs,
}

/// Evidently's drift options (`DataDriftPreset`'s `stattest`, `num_stattest`, `cat_stattest`,
/// `per_column_stattest` and their thresholds). For each column the test comes from
/// `--per-column-stattest`, else the column type's option, else `--stattest`, else Evidently's
/// default choice; the threshold is resolved the same way on its own, falling back to the
/// test's default (see `drift::options`).
#[derive(Debug, Clone, Default, Args)]
pub struct StattestArgs {
    /// Test or distance for every column (`--method` is the older name); `auto` picks
    /// Evidently's default per column. Overridden by --num-stattest / --cat-stattest and
    /// --per-column-stattest.
    #[arg(long = "stattest", visible_alias = "method", value_enum, default_value_t = MethodArg::Auto)]
    pub stattest: MethodArg,
    /// Threshold for every column (`--threshold` is the older name; default: the test's,
    /// 0.05 for p-values, 0.1 for distances).
    #[arg(long = "stattest-threshold", visible_alias = "threshold")]
    pub stattest_threshold: Option<f64>,
    /// Test for numerical columns (over --stattest).
    #[arg(long, value_enum)]
    pub num_stattest: Option<MethodArg>,
    /// Threshold for numerical columns (over --stattest-threshold).
    #[arg(long)]
    pub num_stattest_threshold: Option<f64>,
    /// Test for categorical columns (over --stattest).
    #[arg(long, value_enum)]
    pub cat_stattest: Option<MethodArg>,
    /// Threshold for categorical columns (over --stattest-threshold).
    #[arg(long)]
    pub cat_stattest_threshold: Option<f64>,
    /// COL=METHOD: test for one column, over every other option (repeatable or
    /// comma-separated; METHOD as for --stattest, or `auto`).
    #[arg(long, value_name = "COL=METHOD", value_delimiter = ',', value_parser = parse_column_stattest)]
    pub per_column_stattest: Vec<(String, Stattest)>,
    /// COL=X: threshold for one column, over every other threshold (repeatable or
    /// comma-separated).
    #[arg(long, value_name = "COL=X", value_delimiter = ',', value_parser = parse_column_threshold)]
    pub per_column_stattest_threshold: Vec<(String, f64)>,
}

fn split_column_value(text: &str) -> Result<(String, &str), String> {
    match text.rsplit_once('=') {
        Some((col, value)) if !col.trim().is_empty() && !value.trim().is_empty() => {
            Ok((col.trim().to_string(), value.trim()))
        }
        _ => Err(format!("`{text}` is not COL=VALUE")),
    }
}

fn parse_column_stattest(text: &str) -> Result<(String, Stattest), String> {
    let (col, method) = split_column_value(text)?;
    let test = Stattest::parse(method).map_err(|e| e.to_string())?;
    Ok((col, test))
}

fn parse_column_threshold(text: &str) -> Result<(String, f64), String> {
    let (col, value) = split_column_value(text)?;
    let t: f64 = value
        .parse()
        .map_err(|_| format!("`{value}` (for column `{col}`) is not a number"))?;
    Ok((col, t))
}

impl StattestArgs {
    /// The options as the statistics take them, checked (thresholds, per-type tests, no column
    /// given twice); errors name the flag.
    pub fn options(&self) -> Result<StattestOptions> {
        let flag = |level: Level, threshold: bool| level.flag(threshold);
        let mut per_column = BTreeMap::new();
        for (col, t) in &self.per_column_stattest {
            if per_column.insert(col.clone(), *t).is_some() {
                bail!("--per-column-stattest names column `{col}` twice; keep one");
            }
        }
        let mut per_column_threshold = BTreeMap::new();
        for (col, t) in &self.per_column_stattest_threshold {
            if per_column_threshold.insert(col.clone(), *t).is_some() {
                bail!("--per-column-stattest-threshold names column `{col}` twice; keep one");
            }
        }
        let options = StattestOptions {
            stattest: self.stattest.test().map(Stattest::Test),
            stattest_threshold: self.stattest_threshold,
            num_stattest: self.num_stattest.map(MethodArg::stattest),
            num_stattest_threshold: self.num_stattest_threshold,
            cat_stattest: self.cat_stattest.map(MethodArg::stattest),
            cat_stattest_threshold: self.cat_stattest_threshold,
            per_column_stattest: per_column,
            per_column_stattest_threshold: per_column_threshold,
        };
        options.check(flag).map_err(|e| anyhow!(e))?;
        Ok(options)
    }
}

/// `vigil fairness`: group fairness of binary predictions in a scored CSV.
#[derive(Debug, Clone, Args)]
pub struct FairnessArgs {
    /// Scored data (CSV with a header row).
    #[arg(long)]
    pub data: PathBuf,
    /// Column with the sensitive attribute (one group per distinct value).
    #[arg(long)]
    pub sensitive: String,
    /// Column with the true label (1/0, true/false, yes/no).
    #[arg(long)]
    pub label: String,
    /// Column with the predicted label (1/0, true/false, yes/no).
    #[arg(long)]
    pub prediction: String,
    /// Groups with fewer rows are reported but left out of the between-group metrics.
    #[arg(long, default_value_t = fairness::DEFAULT_MIN_GROUP_SIZE)]
    pub min_group_size: u64,
    #[arg(long, value_enum, default_value_t = OutputFormat::Json)]
    pub format: OutputFormat,
}

// ---------------------------------------------------------------------------------------
// CSV reading
// ---------------------------------------------------------------------------------------

/// pandas' default missing-value markers.
const NA_VALUES: &[&str] = &[
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
    "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
];

fn is_missing(cell: &[u8]) -> bool {
    cell.len() <= 8 && NA_VALUES.iter().any(|na| na.as_bytes() == cell)
}

fn looks_integer(cell: &[u8]) -> bool {
    let digits = match cell.first() {
        Some(b'-') | Some(b'+') => &cell[1..],
        _ => cell,
    };
    !digits.is_empty() && digits.len() <= 18 && digits.iter().all(u8::is_ascii_digit)
}

fn parse_number(cell: &[u8]) -> Option<f64> {
    // Straight from bytes (no UTF-8 pass, no allocation); same accepted syntax as `str::parse`
    // (`inf`, `nan`, exponents), with surrounding ASCII whitespace ignored as before.
    fast_float2::parse::<f64, _>(cell.trim_ascii()).ok()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Numerical,
    Categorical,
    Infer,
}

/// Data gathered for one column of one file.
#[derive(Debug, Default)]
struct ColumnData {
    numbers: Vec<f64>,
    categories: HashMap<Box<[u8]>, u64>,
    tally: ColumnTally,
    all_integer: bool,
    /// Inferred column turned out not to be numeric: re-read as categorical.
    not_numeric: bool,
    categorical: bool,
}

struct FileData {
    columns: Vec<(String, ColumnData)>,
}

fn header_index(path: &Path, headers: &csv::ByteRecord) -> Result<HashMap<String, usize>> {
    let mut idx = HashMap::new();
    for (i, h) in headers.iter().enumerate() {
        let name = String::from_utf8_lossy(h).trim().to_string();
        if idx.insert(name.clone(), i).is_some() {
            bail!(
                "{}: header names column `{name}` twice; rename one of them",
                path.display()
            );
        }
    }
    Ok(idx)
}

fn open_csv(path: &Path) -> Result<csv::Reader<std::fs::File>> {
    csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .buffer_capacity(1 << 20)
        .from_path(path)
        .with_context(|| format!("cannot open {}; check the path", path.display()))
}

fn read_columns(path: &Path, wanted: &[(String, Want)]) -> Result<FileData> {
    let mut rdr = open_csv(path)?;
    let headers = rdr
        .byte_headers()
        .with_context(|| format!("{}: cannot read the header row", path.display()))?
        .clone();
    let idx = header_index(path, &headers)?;
    let mut cols: Vec<(usize, Want, ColumnData)> = Vec::with_capacity(wanted.len());
    for (name, want) in wanted {
        let i = *idx.get(name).ok_or_else(|| {
            anyhow!(
                "{}: no column `{name}` in the header; columns are: {}",
                path.display(),
                header_list(&headers)
            )
        })?;
        let data = ColumnData {
            all_integer: true,
            categorical: *want == Want::Categorical,
            ..Default::default()
        };
        cols.push((i, *want, data));
    }
    let mut record = csv::ByteRecord::new();
    let mut row: u64 = 1; // header is line 1
    let file_bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    loop {
        let more = rdr
            .read_byte_record(&mut record)
            .map_err(|e| csv_error(path, e))?;
        if !more {
            break;
        }
        row += 1;
        if row == 1001 {
            // Size the value vectors once from the average line length so far: growing them by
            // doubling touched twice the memory and showed up as page zeroing in profiles.
            let read = rdr.position().byte().max(1);
            let estimate = (file_bytes.saturating_mul(1000) / read) as usize * 21 / 20;
            for (_, _, data) in cols.iter_mut() {
                if !data.categorical {
                    data.numbers
                        .reserve(estimate.saturating_sub(data.numbers.len()));
                }
            }
        }
        for (i, want, data) in cols.iter_mut() {
            let cell = record
                .get(*i)
                .ok_or_else(|| anyhow!("{}: row {row} has no column {}", path.display(), *i + 1))?;
            data.tally.rows += 1;
            if is_missing(cell) {
                data.tally.missing += 1;
                data.all_integer = false;
                continue;
            }
            if data.categorical {
                add_category(&mut data.categories, cell);
                continue;
            }
            if data.not_numeric {
                continue;
            }
            if data.all_integer && !looks_integer(cell) {
                data.all_integer = false;
            }
            match parse_number(cell) {
                Some(v) if v.is_nan() => data.tally.missing += 1,
                Some(v) if v.is_infinite() => {
                    data.tally.infinite += 1;
                    data.all_integer = false;
                }
                Some(v) => data.numbers.push(v),
                None => match want {
                    Want::Numerical => data.tally.type_violations += 1,
                    _ => data.not_numeric = true,
                },
            }
        }
    }
    let mut out = Vec::with_capacity(cols.len());
    for ((name, _), (_, _, data)) in wanted.iter().zip(cols) {
        out.push((name.clone(), data));
    }
    Ok(FileData { columns: out })
}

/// Second pass for inferred columns that turned out to hold text.
fn reread_categorical(path: &Path, file: &mut FileData) -> Result<()> {
    let names: Vec<String> = file
        .columns
        .iter()
        .filter(|(_, d)| d.not_numeric)
        .map(|(n, _)| n.clone())
        .collect();
    if names.is_empty() {
        return Ok(());
    }
    let wanted: Vec<(String, Want)> = names
        .iter()
        .map(|n| (n.clone(), Want::Categorical))
        .collect();
    let again = read_columns(path, &wanted)?;
    for (name, data) in again.columns {
        if let Some(slot) = file.columns.iter_mut().find(|(n, _)| *n == name) {
            slot.1 = data;
        }
    }
    Ok(())
}

fn add_category(map: &mut HashMap<Box<[u8]>, u64>, cell: &[u8]) {
    if let Some(c) = map.get_mut(cell) {
        *c += 1;
    } else {
        map.insert(cell.into(), 1);
    }
}

fn header_list(headers: &csv::ByteRecord) -> String {
    headers
        .iter()
        .map(|h| String::from_utf8_lossy(h).to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn csv_error(path: &Path, e: csv::Error) -> anyhow::Error {
    match e.position() {
        Some(pos) => anyhow!("{}: row {}: {e}", path.display(), pos.line()),
        None => anyhow!("{}: {e}", path.display()),
    }
}

fn read_headers(path: &Path) -> Result<Vec<String>> {
    let mut rdr = open_csv(path)?;
    let headers = rdr
        .byte_headers()
        .with_context(|| format!("{}: cannot read the header row", path.display()))?;
    Ok(headers
        .iter()
        .map(|h| String::from_utf8_lossy(h).trim().to_string())
        .collect())
}

fn to_categories(data: &ColumnData) -> CategoryCounts {
    let mut c = CategoryCounts::default();
    for (k, &n) in &data.categories {
        c.add(&String::from_utf8_lossy(k), n);
    }
    c
}

// ---------------------------------------------------------------------------------------
// drift
// ---------------------------------------------------------------------------------------

/// One column of the drift report: the drift result plus data quality of the current data.
#[derive(Debug, Clone, Serialize)]
pub struct DriftColumnReport {
    #[serde(flatten)]
    pub drift: ColumnDrift,
    pub quality: ColumnQuality,
    pub reference_missing: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct DriftReport {
    pub dataset_drift: bool,
    pub drift_share: f64,
    pub drifted_columns: u64,
    pub total_columns: u64,
    pub drift_share_threshold: f64,
    pub columns: Vec<DriftColumnReport>,
    /// Embedding sets (`--embeddings`), each judged as a whole; not part of `drift_share`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub embeddings: Vec<EmbeddingReport>,
}

/// Run `vigil drift` and return the rendered report (JSON or table).
pub fn run_drift(args: &DriftArgs) -> Result<String> {
    run_drift_with(args, None)
}

/// [`run_drift`] with a sentence encoder for `--text-column`.
pub fn run_drift_with(args: &DriftArgs, encoder: Option<&dyn TextEncoder>) -> Result<String> {
    let report = drift_report_with(args, encoder)?;
    match args.format {
        OutputFormat::Json => Ok(serde_json::to_string_pretty(&report)? + "\n"),
        OutputFormat::Table => Ok(render_drift_table(&report)),
    }
}

/// Compute the drift report without rendering it.
pub fn drift_report(args: &DriftArgs) -> Result<DriftReport> {
    drift_report_with(args, None)
}

/// [`drift_report`] with a sentence encoder for `--text-column`.
pub fn drift_report_with(
    args: &DriftArgs,
    encoder: Option<&dyn TextEncoder>,
) -> Result<DriftReport> {
    let stattests = args.stattests.options()?;
    let embedding_sets = args.embeddings.sets()?;
    let text_columns = args.embeddings.texts()?;
    let embedding_columns: BTreeSet<&str> = embedding_sets
        .iter()
        .flat_map(|(_, cols)| cols.iter().map(String::as_str))
        .chain(text_columns.iter().map(String::as_str))
        .collect();
    let mut wanted: Vec<(String, Want)> = Vec::new();
    let explicit = !args.numerical.is_empty() || !args.categorical.is_empty();
    if explicit {
        for c in &args.numerical {
            wanted.push((c.trim().to_string(), Want::Numerical));
        }
        for c in &args.categorical {
            let c = c.trim().to_string();
            if wanted.iter().any(|(n, _)| *n == c) {
                bail!("column `{c}` is listed both as --numerical and --categorical; keep one");
            }
            wanted.push((c, Want::Categorical));
        }
    } else {
        let ref_headers = read_headers(&args.reference)?;
        let cur_headers: BTreeSet<String> = read_headers(&args.current)?.into_iter().collect();
        for h in ref_headers {
            if cur_headers.contains(&h) && !embedding_columns.contains(h.as_str()) {
                wanted.push((h, Want::Infer));
            }
        }
        if wanted.is_empty() && embedding_sets.is_empty() && text_columns.is_empty() {
            bail!(
                "{} and {} share no column names; check the header rows",
                args.reference.display(),
                args.current.display()
            );
        }
    }

    // A per-column option must name a column that is analysed (text descriptors included).
    let mut analysed: Vec<String> = wanted.iter().map(|(n, _)| n.clone()).collect();
    for col in &text_columns {
        analysed.extend(crate::text::descriptor_names().map(|d| format!("{col}:{d}")));
    }
    stattests
        .check_columns(analysed.iter().map(String::as_str), |l, t| l.flag(t))
        .map_err(|e| anyhow!(e))?;

    // read both files in parallel (one core each)
    let (ref_res, cur_res) = std::thread::scope(|s| {
        let h = s.spawn(|| read_columns(&args.reference, &wanted));
        let cur = read_columns(&args.current, &wanted);
        (
            h.join()
                .unwrap_or_else(|_| Err(anyhow!("reader thread panicked"))),
            cur,
        )
    });
    let mut reference = ref_res?;
    let mut current = cur_res?;
    // an inferred column is numerical only if it is numeric in both files
    for ((w, r), c) in wanted
        .iter()
        .zip(reference.columns.iter_mut())
        .zip(current.columns.iter_mut())
    {
        if w.1 == Want::Infer && (r.1.not_numeric || c.1.not_numeric) {
            r.1.not_numeric = true;
            c.1.not_numeric = true;
        }
    }
    // Both files' second passes (inferred columns that held text) run in parallel too.
    let (ref_again, cur_again) = std::thread::scope(|s| {
        let h = s.spawn(|| reread_categorical(&args.reference, &mut reference));
        let cur = reread_categorical(&args.current, &mut current);
        (
            h.join()
                .unwrap_or_else(|_| Err(anyhow!("reader thread panicked"))),
            cur,
        )
    });
    ref_again?;
    cur_again?;
    // Text columns are also described, text by text, as numerical columns `COL:chars`, … and
    // tested like any other (Evidently's descriptors; crate::text).
    if !text_columns.is_empty() {
        // The out-of-vocabulary share needs the encoder's vocabulary.
        let text_options = crate::text::TextOptions {
            vocabulary: encoder.and_then(|e| e.vocabulary()),
            ..crate::text::TextOptions::default()
        };
        for (path, data) in [
            (&args.reference, &mut reference),
            (&args.current, &mut current),
        ] {
            let texts = embedding::read_texts(path, &text_columns, true)?;
            for (col, texts) in text_columns.iter().zip(&texts) {
                data.columns
                    .extend(descriptor_columns(col, texts, &text_options));
            }
        }
    }

    // Columns are independent: sort and test them on every core (sorting a million values per
    // numerical column is most of the work once the files are read).
    let column_report = |name: &String,
                         rd: &ColumnData,
                         cd: &ColumnData,
                         chosen: &ColumnStattest|
     -> Result<DriftColumnReport> {
        let categorical = rd.categorical;
        let (rs, cs, quality) = if categorical {
            let r = to_categories(rd);
            let c = to_categories(cd);
            let ref_keys: BTreeSet<&str> = r.iter().map(|(k, _)| k).collect();
            let q = quality::categorical_quality(&cd.tally, &ref_keys, c.iter());
            (
                ColumnSample::Categorical(r),
                ColumnSample::Categorical(c),
                q,
            )
        } else {
            let integer = rd.all_integer && cd.all_integer;
            let r = NumericCounts::from_values(&rd.numbers)
                .map_err(|e| anyhow!("column `{name}`: {e}"))?
                .with_integer_type(integer);
            let c = NumericCounts::from_values(&cd.numbers)
                .map_err(|e| anyhow!("column `{name}`: {e}"))?
                .with_integer_type(integer);
            let range = r.min().zip(r.max());
            let q = quality::numerical_quality(&cd.tally, range, &cd.numbers);
            (ColumnSample::Numerical(r), ColumnSample::Numerical(c), q)
        };
        if rs.total() == 0 {
            bail!("{}: column `{name}` has no usable values (all missing or infinite); drop it or fix the data", args.reference.display());
        }
        if cs.total() == 0 {
            bail!("{}: column `{name}` has no usable values (all missing or infinite); drop it or fix the data", args.current.display());
        }
        let d = drift::column_drift(name, &rs, &cs, chosen.test, chosen.threshold)
            .map_err(|e| anyhow!("column `{name}`: {e}"))?;
        Ok(DriftColumnReport {
            drift: d,
            quality,
            reference_missing: rd.tally.missing + rd.tally.infinite,
        })
    };
    // Each column's test and threshold, checked against its type before any work is done.
    let pairs: Vec<(&String, &ColumnData, &ColumnData, ColumnStattest)> = reference
        .columns
        .iter()
        .zip(current.columns.iter())
        .map(|((name, rd), (_, cd))| {
            let kind = if rd.categorical {
                drift::ColumnKind::Categorical
            } else {
                drift::ColumnKind::Numerical
            };
            let chosen = stattests
                .resolve_checked(name, kind)
                .map_err(|e| anyhow!(e.message(&e.from.flag(false))))?;
            Ok((name, rd, cd, chosen))
        })
        .collect::<Result<_>>()?;
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, pairs.len().max(1));
    let per_thread = pairs.len().div_ceil(threads).max(1);
    let reports: Vec<DriftColumnReport> = std::thread::scope(|s| {
        let handles: Vec<_> = pairs
            .chunks(per_thread)
            .map(|chunk| {
                let column_report = &column_report;
                s.spawn(move || {
                    chunk
                        .iter()
                        .map(|(n, r, c, chosen)| column_report(n, r, c, chosen))
                        .collect::<Result<Vec<_>>>()
                })
            })
            .collect();
        let mut out = Vec::with_capacity(pairs.len());
        for h in handles {
            out.extend(
                h.join()
                    .unwrap_or_else(|_| Err(anyhow!("drift worker panicked")))?,
            );
        }
        Ok::<_, anyhow::Error>(out)
    })?;
    let summary = drift::dataset_drift(
        reports.iter().map(|r| r.drift.clone()).collect(),
        args.drift_share,
    );
    let embeddings =
        embedding::embedding_reports(&args.embeddings, &args.reference, &args.current, encoder)?;
    Ok(DriftReport {
        dataset_drift: summary.dataset_drift,
        drift_share: summary.drift_share,
        drifted_columns: summary.drifted_columns,
        total_columns: summary.total_columns,
        drift_share_threshold: summary.drift_share_threshold,
        columns: reports,
        embeddings,
    })
}

/// The descriptors of a text column as numerical columns named `COL:descriptor`.
fn descriptor_columns(
    column: &str,
    texts: &[String],
    options: &crate::text::TextOptions,
) -> Vec<(String, ColumnData)> {
    let described: Vec<crate::text::TextDescriptors> = texts
        .iter()
        .map(|t| crate::text::describe(t, options))
        .collect();
    crate::text::descriptors(options)
        .iter()
        .map(|(name, integer, f)| {
            let numbers: Vec<f64> = described.iter().map(f).collect();
            let data = ColumnData {
                tally: quality::ColumnTally {
                    rows: numbers.len() as u64,
                    ..Default::default()
                },
                numbers,
                all_integer: *integer,
                ..Default::default()
            };
            (format!("{column}:{name}"), data)
        })
        .collect()
}

fn render_drift_table(r: &DriftReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "dataset drift: {} ({} of {} columns drifted, share {:.3}, threshold {})",
        if r.dataset_drift { "YES" } else { "no" },
        r.drifted_columns,
        r.total_columns,
        r.drift_share,
        r.drift_share_threshold
    );
    let w = r
        .columns
        .iter()
        .map(|c| c.drift.column.len())
        .max()
        .unwrap_or(6)
        .max(6);
    let _ = writeln!(
        s,
        "{:<w$}  {:<11}  {:<13}  {:>12}  {:>9}  {:<5}  {:>8}",
        "column", "type", "method", "score", "threshold", "drift", "missing"
    );
    for c in &r.columns {
        let d = &c.drift;
        let _ = writeln!(
            s,
            "{:<w$}  {:<11}  {:<13}  {:>12.6e}  {:>9}  {:<5}  {:>7.2}%",
            d.column,
            d.kind.as_str(),
            d.method.name(),
            d.score,
            d.threshold,
            if d.drift { "YES" } else { "no" },
            c.quality.missing_share * 100.0
        );
    }
    if !r.embeddings.is_empty() {
        let w = r
            .embeddings
            .iter()
            .map(|e| e.name.len())
            .max()
            .unwrap_or(9)
            .max(9);
        let _ = writeln!(
            s,
            "\n{:<w$}  {:<8}  {:>12}  {:>12}  {:<5}",
            "embedding", "method", "value", "threshold", "drift"
        );
        for e in &r.embeddings {
            let _ = writeln!(
                s,
                "{:<w$}  {:<8}  {:>12.6}  {:>12.6}  {:<5}",
                e.name,
                e.result.method,
                e.result.value,
                e.result.threshold,
                if e.result.drifted { "YES" } else { "no" }
            );
        }
    }
    s
}

// ---------------------------------------------------------------------------------------
// fairness
// ---------------------------------------------------------------------------------------

fn parse_binary(cell: &[u8]) -> Option<bool> {
    let s = std::str::from_utf8(cell).ok()?.trim().to_ascii_lowercase();
    match s.as_str() {
        "1" | "1.0" | "true" | "t" | "yes" | "y" => Some(true),
        "0" | "0.0" | "false" | "f" | "no" | "n" => Some(false),
        _ => None,
    }
}

/// Run `vigil fairness` and return the rendered report (JSON or table).
pub fn run_fairness(args: &FairnessArgs) -> Result<String> {
    let report = fairness_report(args)?;
    match args.format {
        OutputFormat::Json => Ok(serde_json::to_string_pretty(&report)? + "\n"),
        OutputFormat::Table => Ok(render_fairness_table(&report)),
    }
}

/// Compute the fairness report without rendering it.
pub fn fairness_report(args: &FairnessArgs) -> Result<FairnessReport> {
    let path = &args.data;
    let mut rdr = open_csv(path)?;
    let headers = rdr
        .byte_headers()
        .with_context(|| format!("{}: cannot read the header row", path.display()))?
        .clone();
    let idx = header_index(path, &headers)?;
    let col = |name: &str| -> Result<usize> {
        idx.get(name).copied().ok_or_else(|| {
            anyhow!(
                "{}: no column `{name}` in the header; columns are: {}",
                path.display(),
                header_list(&headers)
            )
        })
    };
    let (si, li, pi) = (
        col(&args.sensitive)?,
        col(&args.label)?,
        col(&args.prediction)?,
    );
    let mut groups: BTreeMap<String, GroupCounts> = BTreeMap::new();
    let mut record = csv::ByteRecord::new();
    let mut row: u64 = 1;
    while rdr
        .read_byte_record(&mut record)
        .map_err(|e| csv_error(path, e))?
    {
        row += 1;
        let get = |i: usize, name: &str| -> Result<&[u8]> {
            record
                .get(i)
                .ok_or_else(|| anyhow!("{}: row {row}: column `{name}` is missing", path.display()))
        };
        let group = get(si, &args.sensitive)?;
        let group = if is_missing(group) {
            "<missing>".to_string()
        } else {
            String::from_utf8_lossy(group).to_string()
        };
        let binary = |i: usize, name: &str| -> Result<bool> {
            let cell = get(i, name)?;
            parse_binary(cell).ok_or_else(|| {
                anyhow!(
                    "{}: row {row}, column `{name}`: `{}` is not a binary label; use 1/0, true/false or yes/no",
                    path.display(),
                    String::from_utf8_lossy(cell)
                )
            })
        };
        let y = binary(li, &args.label)?;
        let p = binary(pi, &args.prediction)?;
        groups.entry(group).or_default().add(y, p);
    }
    if groups.is_empty() {
        bail!("{}: no data rows", path.display());
    }
    Ok(fairness::fairness_from_counts(&groups, args.min_group_size))
}

fn render_fairness_table(r: &FairnessReport) -> String {
    let mut s = String::new();
    let w = r.groups.keys().map(|k| k.len()).max().unwrap_or(5).max(5);
    let _ = writeln!(
        s,
        "{:<w$}  {:>8}  {:>9}  {:>17}  {:>7}  {:>7}  judged",
        "group", "count", "selection", "95% CI", "tpr", "fpr"
    );
    for (g, m) in &r.groups {
        let _ = writeln!(
            s,
            "{:<w$}  {:>8}  {:>9.4}  [{:>6.4}, {:>6.4}]  {:>7.4}  {:>7.4}  {}",
            g,
            m.count,
            m.selection_rate,
            m.selection_rate_ci_low,
            m.selection_rate_ci_high,
            m.tpr,
            m.fpr,
            if m.judged { "yes" } else { "no (too small)" }
        );
    }
    let _ = writeln!(
        s,
        "demographic parity   difference {:.4}  ratio {:.4}",
        r.demographic_parity_difference, r.demographic_parity_ratio
    );
    let _ = writeln!(
        s,
        "equalized odds       difference {:.4}  ratio {:.4}",
        r.equalized_odds_difference, r.equalized_odds_ratio
    );
    let _ = writeln!(
        s,
        "equal opportunity    difference {:.4}  ratio {:.4}",
        r.equal_opportunity_difference, r.equal_opportunity_ratio
    );
    let _ = writeln!(
        s,
        "four-fifths rule: {} (min group size {}, {} groups judged)",
        if r.four_fifths_rule_violated {
            "VIOLATED"
        } else {
            "ok"
        },
        r.min_group_size,
        r.judged_groups
    );
    s
}
