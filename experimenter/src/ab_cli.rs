//! `vigil ab analyze --data UNITS.csv`: every engine of [`crate::stats`] on a per-unit CSV.
//!
//! One row per unit: the arm (`--variant-column`), the metric (`--metric-column`) and optionally
//! a pre-period covariate for CUPED. Reduced to per-arm sufficient statistics, then compared
//! arm by arm against the control with the gbstats-compatible engines.

use crate::stats::{
    self, ArmStats, BayesianConfig, CupedMoments, FrequentistConfig, FrequentistResult, Moments,
    ProportionMoments, SampleMoments, SequentialConfig,
};
use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricType {
    Mean,
    Proportion,
}

/// Arguments of `vigil ab analyze`.
#[derive(clap::Args, Debug)]
pub struct AbAnalyzeArgs {
    /// CSV with a header row and one row per unit.
    #[arg(
        long,
        required_unless_present = "experiment",
        conflicts_with = "experiment"
    )]
    pub data: Option<PathBuf>,
    /// Analyse a configured experiment from the store instead of a CSV: first exposure per
    /// unit, outcomes within the conversion window, per-arm sums computed in ClickHouse, and the
    /// ship / roll back / keep running / inconclusive decision (`[experiments.analysis]`).
    #[arg(long)]
    pub experiment: Option<String>,
    /// Name of the control arm (with --experiment: the first arm).
    #[arg(long, required_unless_present = "experiment")]
    pub control: Option<String>,
    #[arg(long, default_value = "variant")]
    pub variant_column: String,
    #[arg(long, default_value = "value")]
    pub metric_column: String,
    /// Pre-period covariate for CUPED (adds a `cuped` result per arm).
    #[arg(long)]
    pub covariate_column: Option<String>,
    #[arg(long, value_enum, default_value_t = MetricType::Mean)]
    pub metric_type: MetricType,
    /// Configured arm weights (control first, then the other arms sorted by name), for the SRM
    /// check. Default: equal.
    #[arg(long, value_delimiter = ',', num_args = 1)]
    pub weights: Option<Vec<f64>>,
    #[arg(long, default_value_t = 0.05)]
    pub alpha: f64,
    #[arg(long, value_enum, default_value_t = crate::cli::OutputFormat::Json)]
    pub format: crate::cli::OutputFormat,
}

#[derive(Serialize)]
struct TestResult {
    expected: f64,
    ci: [f64; 2],
    p_value: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    theta: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    not_estimable: Option<String>,
}

impl TestResult {
    fn from(r: &FrequentistResult, theta: Option<f64>) -> Self {
        TestResult {
            expected: r.expected,
            ci: r.ci,
            p_value: r.p_value,
            theta,
            not_estimable: r.not_estimable.map(|n| format!("{n:?}")),
        }
    }
}

#[derive(Serialize)]
struct BayesianOut {
    expected: f64,
    ci: [f64; 2],
    chance_to_win: f64,
    /// [control, treatment]
    risk: [f64; 2],
}

#[derive(Serialize)]
struct Comparison {
    units: u64,
    mean: f64,
    frequentist: TestResult,
    sequential: TestResult,
    bayesian: BayesianOut,
    #[serde(skip_serializing_if = "Option::is_none")]
    cuped: Option<TestResult>,
}

#[derive(Serialize)]
struct Report {
    control: String,
    control_units: u64,
    control_mean: f64,
    srm_p_value: f64,
    srm_mismatch: bool,
    comparisons: BTreeMap<String, Comparison>,
}

/// Per-arm raw sums.
#[derive(Default)]
struct Acc {
    values: Vec<f64>,
    covariates: Vec<f64>,
}

fn column(headers: &csv::StringRecord, name: &str, path: &str) -> Result<usize> {
    headers.iter().position(|h| h == name).ok_or_else(|| {
        anyhow!(
            "{path}: no column `{name}` in the header ({})",
            headers.iter().collect::<Vec<_>>().join(", ")
        )
    })
}

fn metric_moments(kind: MetricType, values: &[f64], arm: &str) -> Result<Moments> {
    Ok(match kind {
        MetricType::Mean => Moments::Mean(SampleMoments::from_values(values)),
        MetricType::Proportion => {
            if let Some(v) = values.iter().find(|v| **v != 0.0 && **v != 1.0) {
                bail!("arm `{arm}`: proportion metrics take 0 or 1 per unit, found {v}");
            }
            Moments::Proportion(ProportionMoments {
                n: values.len() as u64,
                successes: values.iter().sum(),
            })
        }
    })
}

fn arm_stats(m: &Moments) -> ArmStats {
    match m {
        Moments::Mean(s) => ArmStats::Mean(*s),
        Moments::Proportion(p) => ArmStats::Proportion(*p),
    }
}

/// Runs `vigil ab analyze` and returns what to print.
pub fn run_ab_analyze(args: &AbAnalyzeArgs) -> Result<String> {
    let data = args
        .data
        .as_ref()
        .ok_or_else(|| anyhow!("--data UNITS.csv is required without --experiment"))?;
    let control_name = args
        .control
        .as_deref()
        .ok_or_else(|| anyhow!("--control NAME is required with --data"))?;
    let path = data.display().to_string();
    let mut reader = csv::Reader::from_path(data).with_context(|| format!("cannot open {path}"))?;
    let headers = reader
        .headers()
        .with_context(|| format!("{path}: cannot read the header row"))?
        .clone();
    let vi = column(&headers, &args.variant_column, &path)?;
    let mi = column(&headers, &args.metric_column, &path)?;
    let ci = args
        .covariate_column
        .as_deref()
        .map(|c| column(&headers, c, &path))
        .transpose()?;
    let mut arms: BTreeMap<String, Acc> = BTreeMap::new();
    for (i, record) in reader.records().enumerate() {
        let row = i + 2;
        let record = record.with_context(|| format!("{path}, row {row}"))?;
        let number = |idx: usize, name: &str| -> Result<f64> {
            let cell = record.get(idx).unwrap_or("").trim();
            cell.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| {
                    anyhow!("{path}, row {row}, column `{name}`: `{cell}` is not a finite number")
                })
        };
        let arm = record.get(vi).unwrap_or("").trim().to_string();
        if arm.is_empty() {
            bail!(
                "{path}, row {row}, column `{}`: empty arm name",
                args.variant_column
            );
        }
        let value = number(mi, &args.metric_column)?;
        let acc = arms.entry(arm).or_default();
        acc.values.push(value);
        if let (Some(ci), Some(name)) = (ci, args.covariate_column.as_deref()) {
            acc.covariates.push(number(ci, name)?);
        }
    }
    let control = arms
        .remove(control_name)
        .ok_or_else(|| anyhow!("{path}: no unit of the control arm `{control_name}`"))?;
    if arms.is_empty() {
        bail!("{path}: only the control arm `{control_name}` has units; nothing to compare");
    }
    let c_metric = metric_moments(args.metric_type, &control.values, control_name)?;
    let c_stats = arm_stats(&c_metric);
    let users: Vec<u64> = std::iter::once(control.values.len() as u64)
        .chain(arms.values().map(|a| a.values.len() as u64))
        .collect();
    let weights = match &args.weights {
        Some(w) => w.clone(),
        None => vec![1.0 / users.len() as f64; users.len()],
    };
    let srm = stats::check_srm(&users, &weights, stats::SRM_P_THRESHOLD)?;
    let freq = FrequentistConfig {
        alpha: args.alpha,
        ..Default::default()
    };
    let seq = SequentialConfig {
        alpha: args.alpha,
        ..Default::default()
    };
    let bayes = BayesianConfig {
        alpha: args.alpha,
        ..Default::default()
    };
    let mut comparisons = BTreeMap::new();
    for (name, acc) in &arms {
        let t_metric = metric_moments(args.metric_type, &acc.values, name)?;
        let t_stats = arm_stats(&t_metric);
        let f = stats::frequentist::analyze(&c_stats, &t_stats, &freq)?;
        let s = stats::sequential::analyze(&c_stats, &t_stats, &seq)?;
        let b = stats::bayesian::analyze(&c_stats, &t_stats, &bayes)?;
        let cuped = match args.covariate_column {
            Some(_) => {
                let moments = |metric: &Moments, a: &Acc, arm: &str| -> Result<CupedMoments> {
                    Ok(CupedMoments {
                        n: a.values.len() as u64,
                        metric: *metric,
                        covariate: metric_moments(MetricType::Mean, &a.covariates, arm)?,
                        cross_sum: a.values.iter().zip(&a.covariates).map(|(x, y)| x * y).sum(),
                    })
                };
                let cc = moments(&c_metric, &control, control_name)?;
                let tc = moments(&t_metric, acc, name)?;
                let theta = stats::cuped::pooled_theta(&cc, &tc)?;
                let r =
                    stats::frequentist::analyze(&ArmStats::Cuped(cc), &ArmStats::Cuped(tc), &freq)?;
                Some(TestResult::from(&r, Some(theta)))
            }
            None => None,
        };
        comparisons.insert(
            name.clone(),
            Comparison {
                units: acc.values.len() as u64,
                mean: t_metric.mean(),
                frequentist: TestResult::from(&f, None),
                sequential: TestResult::from(&s, None),
                bayesian: BayesianOut {
                    expected: b.expected,
                    ci: b.ci,
                    chance_to_win: b.chance_to_win,
                    risk: [b.risk.control, b.risk.treatment],
                },
                cuped,
            },
        );
    }
    let report = Report {
        control: control_name.to_owned(),
        control_units: control.values.len() as u64,
        control_mean: c_metric.mean(),
        srm_p_value: srm.p_value,
        srm_mismatch: srm.mismatch,
        comparisons,
    };
    Ok(match args.format {
        crate::cli::OutputFormat::Json => serde_json::to_string_pretty(&report)?,
        crate::cli::OutputFormat::Table => {
            let mut out = format!(
                "control {} ({} units, mean {:.6}); SRM p = {:.4}{}\n{:<16} {:>8} {:>10} {:>24} {:>10} {:>12}\n",
                report.control, report.control_units, report.control_mean, report.srm_p_value,
                if report.srm_mismatch { " — SAMPLE RATIO MISMATCH: do not trust the results" } else { "" },
                "arm", "units", "lift", "95% CI (frequentist)", "p", "P(win)"
            );
            for (name, c) in &report.comparisons {
                out.push_str(&format!(
                    "{:<16} {:>8} {:>+9.3}% [{:>+9.3}%, {:>+9.3}%] {:>10.4} {:>11.1}%\n",
                    name,
                    c.units,
                    c.frequentist.expected * 100.0,
                    c.frequentist.ci[0] * 100.0,
                    c.frequentist.ci[1] * 100.0,
                    c.frequentist.p_value,
                    c.bayesian.chance_to_win * 100.0
                ));
            }
            out
        }
    })
}

/// Arguments of `vigil ab power`: the minimum detectable effect of a planned experiment, and its
/// power at a given lift.
#[derive(clap::Args, Debug)]
pub struct AbPowerArgs {
    /// Baseline conversion rate in (0, 1) (a proportion metric).
    #[arg(long, conflicts_with_all = ["mean", "stddev"])]
    pub rate: Option<f64>,
    /// Baseline mean of a numeric metric (with --stddev).
    #[arg(long, requires = "stddev")]
    pub mean: Option<f64>,
    /// Per-unit standard deviation of the numeric metric.
    #[arg(long, requires = "mean")]
    pub stddev: Option<f64>,
    /// Units in each arm.
    #[arg(long)]
    pub units_per_arm: f64,
    #[arg(long, default_value_t = 0.05)]
    pub alpha: f64,
    /// Target power for the minimum detectable effect.
    #[arg(long, default_value_t = 0.8)]
    pub power: f64,
    /// Also report the power at this relative lift (0.05 = +5 %).
    #[arg(long)]
    pub lift: Option<f64>,
}

/// Runs `vigil ab power` and returns the JSON to print.
pub fn run_ab_power(args: &AbPowerArgs) -> Result<String> {
    let metric = match (args.rate, args.mean, args.stddev) {
        (Some(rate), None, None) => stats::PowerMetric::Proportion { rate },
        (None, Some(mean), Some(sd)) => stats::PowerMetric::Mean {
            mean,
            variance: sd * sd,
        },
        _ => bail!("give either --rate R, or --mean M with --stddev S"),
    };
    let scenario = stats::PowerScenario {
        metric,
        control_units: args.units_per_arm,
        treatment_units: args.units_per_arm,
        alpha: args.alpha,
    };
    let mde = stats::minimum_detectable_effect(&scenario, args.power)?;
    let at_lift = args.lift.map(|l| stats::power(&scenario, l)).transpose()?;
    Ok(serde_json::to_string_pretty(&serde_json::json!({
        "units_per_arm": args.units_per_arm,
        "alpha": args.alpha,
        "target_power": args.power,
        "minimum_detectable_effect": mde,
        "lift": args.lift,
        "power_at_lift": at_lift,
    }))?)
}
