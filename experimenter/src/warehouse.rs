//! Experiment data from the store: exposures and outcomes reduced in ClickHouse to per-arm
//! sufficient statistics, so an analysis never moves per-unit rows out of the database.
//!
//! For each metric one statement does, inside ClickHouse:
//! 1. the first exposure of every unit (`argMin(variant, ts_ms)`, `min(ts_ms)`) — a unit that
//!    later saw another arm still counts in the arm it saw first;
//! 2. its outcomes joined by unit id and summed per unit inside the conversion window
//!    `[first exposure, + window)` (and, for CUPED, in the pre-period before it);
//! 3. per arm: `count()`, Σy, Σy², Σx, Σx², Σxy.
//!
//! A built-in metric ([`analysis::BUILTIN_METRICS`]: `latency`, `ttft`, `error_rate`, …) reads
//! the unit's requests of the experiment in `inference_events` instead of outcomes (no window):
//! y = Σ value over the requests where it is defined, x = their number.
//!
//! The SQL stays inside the dialect shared by ClickHouse 18.16 and 26.x (no CTEs, `USING`
//! joins of aliased subqueries, every column cast), and reads event tables with `FINAL` so
//! replayed events count once.

use std::collections::BTreeMap;

use vigil_store::{sql_string, Store, StoreError};

use crate::analysis::{
    self, AnalysisConfig, ArmInfo, ArmSums, BuiltinMetric, BuiltinSource, ExperimentReport,
    MetricAggregates, MetricKind, MetricSpec,
};
use crate::experiment::ExperimentConfig;

/// A row of the per-arm aggregate query.
#[derive(Debug, Clone, serde::Deserialize, clickhouse::Row)]
pub struct ArmSumsRow {
    pub variant: String,
    pub n: u64,
    pub sum_y: f64,
    pub sum_y2: f64,
    pub sum_x: f64,
    pub sum_x2: f64,
    pub sum_xy: f64,
}

/// Why an experiment could not be analysed from the store.
#[derive(Debug, thiserror::Error)]
pub enum WarehouseError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Analysis(#[from] analysis::AnalysisError),
}

/// Optional restriction of the analysed exposures to a time range (Unix seconds).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeRange {
    pub since: Option<u32>,
    pub until: Option<u32>,
}

const HOUR_MS: u64 = 3_600_000;

/// The per-arm aggregate statement for one metric.
pub fn metric_sql(
    store: &Store,
    experiment: &str,
    spec: &MetricSpec,
    config: &AnalysisConfig,
    cuped: bool,
    range: TimeRange,
) -> String {
    metric_sql_for(
        &|t: &str| store.table(t),
        experiment,
        spec,
        config,
        cuped,
        range,
    )
}

/// [`metric_sql`] with the tables named by `table` (`exposure_events` → `` `db`.exposure_events ``).
fn metric_sql_for(
    table: &dyn Fn(&str) -> String,
    experiment: &str,
    spec: &MetricSpec,
    config: &AnalysisConfig,
    cuped: bool,
    range: TimeRange,
) -> String {
    let exposures = table("exposure_events");
    let mut exposure_filter = format!("experiment = {}", sql_string(experiment));
    if let Some(s) = range.since {
        exposure_filter.push_str(&format!(" AND ts >= {s}"));
    }
    if let Some(u) = range.until {
        exposure_filter.push_str(&format!(" AND ts < {u}"));
    }
    let window_ms = u64::from(config.conversion_window_hours) * HOUR_MS;
    let pre_ms = u64::from(config.cuped_pre_period_hours) * HOUR_MS;
    let in_window = format!("o_ts >= e_first AND o_ts < e_first + {window_ms}");
    // Ints: e_first can be smaller than the pre-period, so compare as signed.
    let in_pre = format!(
        "toInt64(o_ts) < toInt64(e_first) AND toInt64(o_ts) >= toInt64(e_first) - {pre_ms}"
    );
    let (source, y, x) = if let Some(b) = analysis::builtin(&spec.metric) {
        builtin_source(table, experiment, spec, b)
    } else {
        let mut names = vec![sql_string(&spec.metric)];
        if let Some(d) = &spec.denominator {
            names.push(sql_string(d));
        }
        let source = format!(
            "SELECT unit_id, toUInt64(ts_ms) AS o_ts, toFloat64(value) AS o_value, name AS o_name \
             FROM {} FINAL WHERE name IN ({})",
            table("outcome_events"),
            names.join(", ")
        );
        let is_metric = format!("o_name = {}", sql_string(&spec.metric));
        let y = match spec.effective_kind() {
            MetricKind::Proportion => {
                format!("toFloat64(countIf(o_value > 0 AND {is_metric} AND {in_window}) > 0)")
            }
            _ => format!("sumIf(o_value, {is_metric} AND {in_window})"),
        };
        let x = match (spec.effective_kind(), &spec.denominator) {
            (MetricKind::Ratio, Some(d)) => {
                format!("sumIf(o_value, o_name = {} AND {in_window})", sql_string(d))
            }
            (MetricKind::Proportion, _) if cuped => {
                format!("toFloat64(countIf(o_value > 0 AND {is_metric} AND {in_pre}) > 0)")
            }
            (_, _) if cuped => format!("sumIf(o_value, {is_metric} AND {in_pre})"),
            _ => "toFloat64(0)".to_string(),
        };
        (source, y, x)
    };
    format!(
        "SELECT variant, toUInt64(count()) AS n, toFloat64(sum(y)) AS sum_y, toFloat64(sum(y * y)) AS sum_y2, \
         toFloat64(sum(x)) AS sum_x, toFloat64(sum(x * x)) AS sum_x2, toFloat64(sum(x * y)) AS sum_xy \
         FROM ( \
           SELECT any(e_variant) AS variant, toFloat64({y}) AS y, toFloat64({x}) AS x \
           FROM ( \
             SELECT unit_id, argMin(variant, ts_ms) AS e_variant, toUInt64(min(ts_ms)) AS e_first \
             FROM {exposures} FINAL WHERE {exposure_filter} GROUP BY unit_id \
           ) AS e ALL LEFT JOIN ( {source} ) AS o USING unit_id \
           GROUP BY unit_id \
         ) AS per_unit GROUP BY variant ORDER BY variant"
    )
}

/// The per-request rows of a built-in metric (`unit_id, o_ts, o_value, o_name`) with the per-unit
/// numerator (Σ value) and denominator (number of requests) over them.
fn builtin_source(
    table: &dyn Fn(&str) -> String,
    experiment: &str,
    spec: &MetricSpec,
    b: &BuiltinMetric,
) -> (String, String, String) {
    let name = sql_string(b.name);
    let source = match b.source {
        BuiltinSource::LabelledPredictions => {
            // Each labelled prediction of the experiment: 1 when right, 0 when wrong.
            let label = spec.label_outcome.as_deref().unwrap_or("label");
            format!(
                "SELECT unit_id, o_ts, toFloat64(p_label != '' AND toFloat64OrZero(p_label) = truth) AS o_value, \
                 {name} AS o_name FROM ( \
                   SELECT event_id AS inference_id, unit_id, toUInt64(ts_ms) AS o_ts, ifNull(label, '') AS p_label \
                   FROM {inf} FINAL WHERE experiment = {exp} \
                 ) AS i ALL INNER JOIN ( \
                   SELECT inference_id, toFloat64(any(value)) AS truth FROM {out} FINAL \
                   WHERE name = {label} AND inference_id != '' \
                     AND inference_id IN (SELECT event_id FROM {inf} WHERE experiment = {exp}) \
                   GROUP BY inference_id \
                 ) AS l USING inference_id",
                inf = table("inference_events"),
                exp = sql_string(experiment),
                out = table("outcome_events"),
                label = sql_string(label)
            )
        }
        // The requests the unit was served in this experiment: Σ value over their count.
        BuiltinSource::Requests { value, filter } => format!(
            "SELECT unit_id, toUInt64(ts_ms) AS o_ts, toFloat64({value}) AS o_value, {name} AS o_name \
             FROM {} FINAL WHERE experiment = {}{}",
            table("inference_events"),
            sql_string(experiment),
            filter.map(|f| format!(" AND {f}")).unwrap_or_default()
        ),
    };
    (
        source,
        format!("sumIf(o_value, o_name = {name})"),
        format!("toFloat64(countIf(o_name = {name}))"),
    )
}

/// Reads one metric's per-arm sums.
pub async fn load_metric(
    store: &Store,
    experiment: &str,
    spec: &MetricSpec,
    config: &AnalysisConfig,
    cuped: bool,
    range: TimeRange,
) -> Result<MetricAggregates, StoreError> {
    let rows: Vec<ArmSumsRow> = store
        .fetch(&metric_sql(store, experiment, spec, config, cuped, range))
        .await?;
    Ok(MetricAggregates {
        arms: rows
            .into_iter()
            .map(|r| {
                (
                    r.variant,
                    ArmSums {
                        n: r.n,
                        sum_y: r.sum_y,
                        sum_y2: r.sum_y2,
                        sum_x: r.sum_x,
                        sum_x2: r.sum_x2,
                        sum_xy: r.sum_xy,
                    },
                )
            })
            .collect::<BTreeMap<_, _>>(),
    })
}

/// The configured arms with their effective weights (equal when none are given).
pub fn arm_infos(experiment: &ExperimentConfig) -> Vec<ArmInfo> {
    let equal = 1.0 / experiment.arms.len().max(1) as f64;
    experiment
        .arms
        .iter()
        .map(|a| ArmInfo {
            name: a.name.clone(),
            model_version: a.model_version.clone(),
            weight: a.weight.unwrap_or(equal),
        })
        .collect()
}

/// Analyses an experiment from the store with its `[experiments.analysis]` (or the defaults:
/// conversion as a proportion).
pub async fn analyze_experiment(
    store: &Store,
    experiment: &ExperimentConfig,
    override_config: Option<&AnalysisConfig>,
    range: TimeRange,
) -> Result<ExperimentReport, WarehouseError> {
    let config = override_config
        .cloned()
        .or_else(|| experiment.analysis.clone())
        .unwrap_or_default();
    config.validate().map_err(analysis::AnalysisError::from)?;
    let mut metrics = Vec::with_capacity(1 + config.guardrails.len());
    metrics.push(
        load_metric(
            store,
            &experiment.key,
            &config.primary,
            &config,
            config.cuped_pre_period_hours > 0,
            range,
        )
        .await?,
    );
    for g in &config.guardrails {
        metrics.push(load_metric(store, &experiment.key, g, &config, false, range).await?);
    }
    Ok(analysis::analyze(
        &experiment.key,
        &arm_infos(experiment),
        &config,
        &metrics,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::{BUILTIN_METRICS, ERROR_RATE, TTFT};

    fn table(name: &str) -> String {
        format!("`db`.{name}")
    }

    fn spec(metric: &str) -> MetricSpec {
        MetricSpec {
            metric: metric.into(),
            kind: MetricKind::Mean,
            denominator: None,
            higher_is_better: None,
            higher_is_worse: None,
            label_outcome: None,
        }
    }

    fn sql(metric: &str) -> String {
        metric_sql_for(
            &table,
            "exp",
            &spec(metric),
            &AnalysisConfig::default(),
            false,
            TimeRange::default(),
        )
    }

    /// The statement around a metric's per-unit `y`, `x` and its rows `source`.
    fn statement(y: &str, x: &str, source: &str) -> String {
        format!(
            "SELECT variant, toUInt64(count()) AS n, toFloat64(sum(y)) AS sum_y, \
             toFloat64(sum(y * y)) AS sum_y2, toFloat64(sum(x)) AS sum_x, \
             toFloat64(sum(x * x)) AS sum_x2, toFloat64(sum(x * y)) AS sum_xy FROM ( \
             SELECT any(e_variant) AS variant, toFloat64({y}) AS y, toFloat64({x}) AS x FROM ( \
             SELECT unit_id, argMin(variant, ts_ms) AS e_variant, toUInt64(min(ts_ms)) AS e_first \
             FROM `db`.exposure_events FINAL WHERE experiment = 'exp' GROUP BY unit_id ) AS e \
             ALL LEFT JOIN ( {source} ) AS o USING unit_id GROUP BY unit_id ) AS per_unit \
             GROUP BY variant ORDER BY variant"
        )
    }

    /// The statements of `latency` and `accuracy` are exactly those before the built-ins became
    /// a table.
    #[test]
    fn latency_and_accuracy_sql_is_unchanged() {
        assert_eq!(
            sql("latency"),
            statement(
                "sumIf(o_value, o_name = 'latency')",
                "toFloat64(countIf(o_name = 'latency'))",
                "SELECT unit_id, toUInt64(ts_ms) AS o_ts, toFloat64(ifNull(latency_ms, 0)) AS o_value, \
                 'latency' AS o_name FROM `db`.inference_events FINAL WHERE experiment = 'exp' \
                 AND isNotNull(latency_ms)"
            )
        );
        assert_eq!(
            sql("accuracy"),
            statement(
                "sumIf(o_value, o_name = 'accuracy')",
                "toFloat64(countIf(o_name = 'accuracy'))",
                "SELECT unit_id, o_ts, toFloat64(p_label != '' AND toFloat64OrZero(p_label) = truth) \
                 AS o_value, 'accuracy' AS o_name FROM ( SELECT event_id AS inference_id, unit_id, \
                 toUInt64(ts_ms) AS o_ts, ifNull(label, '') AS p_label FROM `db`.inference_events \
                 FINAL WHERE experiment = 'exp' ) AS i ALL INNER JOIN ( SELECT inference_id, \
                 toFloat64(any(value)) AS truth FROM `db`.outcome_events FINAL WHERE name = 'label' \
                 AND inference_id != '' AND inference_id IN (SELECT event_id FROM `db`.inference_events \
                 WHERE experiment = 'exp') GROUP BY inference_id ) AS l USING inference_id"
            )
        );
        let mut truth = spec("accuracy");
        truth.label_outcome = Some("truth".into());
        assert!(metric_sql_for(
            &table,
            "exp",
            &truth,
            &AnalysisConfig::default(),
            false,
            TimeRange::default()
        )
        .contains("WHERE name = 'truth' AND inference_id != ''"));
    }

    #[test]
    fn llm_builtins_are_per_request_ratios_over_inference_rows() {
        let expected = [
            ("ttft", "ifNull(ttft_ms, 0)", " AND isNotNull(ttft_ms)"),
            ("cost", "ifNull(cost, 0)", " AND isNotNull(cost)"),
            (
                "output_tokens",
                "ifNull(completion_tokens, 0)",
                " AND isNotNull(completion_tokens)",
            ),
            (
                "tokens_per_s",
                "ifNull(output_tps, 0)",
                " AND isNotNull(output_tps)",
            ),
            // Every request counts; a failed one has neither score nor label.
            ("error_rate", "isNull(score) AND isNull(label)", ""),
        ];
        for (name, value, filter) in expected {
            assert_eq!(
                sql(name),
                statement(
                    &format!("sumIf(o_value, o_name = '{name}')"),
                    &format!("toFloat64(countIf(o_name = '{name}'))"),
                    &format!(
                        "SELECT unit_id, toUInt64(ts_ms) AS o_ts, toFloat64({value}) AS o_value, \
                         '{name}' AS o_name FROM `db`.inference_events FINAL \
                         WHERE experiment = 'exp'{filter}"
                    )
                ),
                "{name}"
            );
        }
        // Every built-in reads inference rows, never outcomes of its name; CUPED and the
        // conversion window do not apply to them.
        for b in BUILTIN_METRICS {
            let s = sql(b.name);
            assert!(s.contains("FROM `db`.inference_events FINAL"), "{}", b.name);
            assert!(!s.contains("WHERE name IN"), "{}", b.name);
            let with_cuped = metric_sql_for(
                &table,
                "exp",
                &spec(b.name),
                &AnalysisConfig::default(),
                true,
                TimeRange::default(),
            );
            assert_eq!(s, with_cuped, "{}", b.name);
        }
        // The experiment key and the exposure range are applied as for any metric.
        let ranged = metric_sql_for(
            &table,
            "it's",
            &spec(TTFT),
            &AnalysisConfig::default(),
            false,
            TimeRange {
                since: Some(10),
                until: Some(20),
            },
        );
        assert!(ranged.contains("WHERE experiment = 'it\\'s' AND ts >= 10 AND ts < 20 GROUP BY"));
        assert!(ranged.contains("WHERE experiment = 'it\\'s' AND isNotNull(ttft_ms)"));
        assert!(!sql(ERROR_RATE).contains("isNotNull"));
    }

    #[test]
    fn outcome_metrics_are_not_builtins() {
        let s = sql("thumbs_up");
        assert!(s.contains("FROM `db`.outcome_events FINAL WHERE name IN ('thumbs_up')"));
        assert!(!s.contains("inference_events"));
    }
}
