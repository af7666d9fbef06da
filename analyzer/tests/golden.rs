//! Golden tests: every value is compared with what Evidently / SciPy / Fairlearn /
//! scikit-learn computed (scripts/golden/analyzer/generate.py) to within 1e-6 relative.

use serde_json::Value;
use vigil_analyzer::drift::{
    self, column_drift, drift_score, ks, CategoryCounts, ColumnSample, DriftTest, NumericCounts,
};

const RTOL: f64 = 1e-6;

fn load(name: &str) -> Value {
    let path = format!("{}/tests/golden/{}", env!("CARGO_MANIFEST_DIR"), name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {path}: {e}"))
}

fn num(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().expect("number"),
        Value::String(s) if s == "nan" => f64::NAN,
        Value::String(s) if s == "inf" => f64::INFINITY,
        Value::String(s) if s == "-inf" => f64::NEG_INFINITY,
        other => panic!("not a number: {other}"),
    }
}

/// Relative comparison; values below 1e-300 on both sides count as equal ("< 1e-300").
fn close(actual: f64, expected: f64) -> bool {
    if expected.is_nan() {
        return actual.is_nan();
    }
    if expected.is_infinite() {
        return actual == expected;
    }
    if expected.abs() < 1e-300 && actual.abs() < 1e-300 {
        return true;
    }
    (actual - expected).abs() <= RTOL * expected.abs()
}

fn numeric_sample(v: &Value) -> NumericCounts {
    let integer = v["integer_typed"].as_bool().unwrap_or(false);
    let counts = if let Some(pairs) = v.get("pairs") {
        let pairs: Vec<(f64, u64)> = pairs
            .as_array()
            .expect("pairs")
            .iter()
            .map(|p| (num(&p[0]), p[1].as_u64().expect("count")))
            .collect();
        NumericCounts::from_pairs(&pairs).expect("finite pairs")
    } else {
        let values: Vec<f64> = v["values"]
            .as_array()
            .expect("values")
            .iter()
            .map(num)
            .collect();
        NumericCounts::from_values(&values).expect("finite values")
    };
    counts.with_integer_type(integer)
}

fn categorical_sample(v: &Value) -> CategoryCounts {
    let values: Vec<&str> = v["values"]
        .as_array()
        .expect("values")
        .iter()
        .filter_map(|x| x.as_str())
        .collect();
    CategoryCounts::from_values(&values)
}

fn sample(kind: &str, v: &Value) -> ColumnSample {
    match kind {
        "numerical" => ColumnSample::Numerical(numeric_sample(v)),
        _ => ColumnSample::Categorical(categorical_sample(v)),
    }
}

#[test]
fn drift_methods_match_evidently() {
    let cases = load("drift_methods.json");
    let mut failures = Vec::new();
    let mut checked = 0;
    for case in cases.as_array().expect("cases") {
        let name = case["name"].as_str().unwrap_or("?");
        let kind = case["kind"].as_str().expect("kind");
        let r = sample(kind, &case["reference"]);
        let c = sample(kind, &case["current"]);
        // default selection
        let d = &case["default"];
        match column_drift(name, &r, &c, None, None) {
            Ok(res) => {
                let want = d["method"].as_str().unwrap_or("?");
                if res.method.name() != want {
                    failures.push(format!(
                        "{name}: default method {} != {want}",
                        res.method.name()
                    ));
                }
                if !close(res.score, num(&d["score"]))
                    || res.drift != d["drift"].as_bool().unwrap_or(false)
                {
                    failures.push(format!(
                        "{name}: default score {} / drift {} != {} / {}",
                        res.score, res.drift, d["score"], d["drift"]
                    ));
                }
                if res.threshold != num(&d["threshold"]) {
                    failures.push(format!(
                        "{name}: threshold {} != {}",
                        res.threshold, d["threshold"]
                    ));
                }
            }
            Err(e) => failures.push(format!("{name}: default failed: {e}")),
        }
        for (method, exp) in case["methods"].as_object().expect("methods") {
            let test = DriftTest::from_name(method).expect("known method");
            checked += 1;
            match drift_score(test, &r, &c) {
                Ok(score) => {
                    let want = num(&exp["score"]);
                    let drift = test.is_drift(score, test.default_threshold());
                    if !close(score, want) || drift != exp["drift"].as_bool().unwrap_or(false) {
                        failures.push(format!("{name}/{method}: got {score:e} (drift {drift}), want {want:e} (drift {})", exp["drift"]));
                    }
                }
                Err(e) => failures.push(format!("{name}/{method}: error {e}")),
            }
        }
    }
    assert!(checked > 150, "too few golden values checked: {checked}");
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn kstwo_and_smirnov_match_scipy() {
    let cases = load("ks_distribution.json");
    let mut failures = Vec::new();
    for row in cases["kstwo_sf"].as_array().expect("rows") {
        let (n, x, want) = (row[0].as_u64().expect("n"), num(&row[1]), num(&row[2]));
        let got = ks::kstwo_sf(x, n);
        if !close(got, want) {
            failures.push(format!("kstwo.sf({x}, {n}) = {got:e}, want {want:e}"));
        }
    }
    for row in cases["smirnov_sf"].as_array().expect("rows") {
        let (n, x, want) = (row[0].as_u64().expect("n"), num(&row[1]), num(&row[2]));
        let got = ks::smirnov_sf(n, x);
        if !close(got, want) {
            failures.push(format!("smirnov({n}, {x}) = {got:e}, want {want:e}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn ks_2samp_matches_scipy() {
    let cases = load("ks_2samp.json");
    let mut failures = Vec::new();
    for (i, case) in cases.as_array().expect("cases").iter().enumerate() {
        let pairs = |v: &Value| -> NumericCounts {
            let p: Vec<(f64, u64)> = v
                .as_array()
                .expect("pairs")
                .iter()
                .map(|p| (num(&p[0]), p[1].as_u64().expect("c")))
                .collect();
            NumericCounts::from_pairs(&p).expect("pairs")
        };
        let (a, b) = (pairs(&case["reference"]), pairs(&case["current"]));
        let res = ks::ks_2samp(&a, &b).expect("ks");
        let (ws, wp) = (num(&case["statistic"]), num(&case["p_value"]));
        if !close(res.statistic, ws) || !close(res.p_value, wp) {
            failures.push(format!(
                "case {i} (n1={}, n2={}): D {} p {:e} ({:?}), want D {ws} p {wp:e}",
                a.total(),
                b.total(),
                res.statistic,
                res.p_value,
                res.mode
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn column_from_encoded(kind: &str, v: &Value) -> ColumnSample {
    sample(kind, v)
}

#[test]
fn dataset_drift_matches_evidently_preset() {
    let cases = load("drift_datasets.json");
    let mut failures = Vec::new();
    for case in cases.as_array().expect("cases") {
        let name = case["name"].as_str().unwrap_or("?");
        let numerical: Vec<&str> = case["numerical"]
            .as_array()
            .expect("n")
            .iter()
            .filter_map(|x| x.as_str())
            .collect();
        let mut results = Vec::new();
        for exp in case["expected"]["columns"].as_array().expect("columns") {
            let col = exp["column"].as_str().expect("column");
            let kind = if numerical.contains(&col) {
                "numerical"
            } else {
                "categorical"
            };
            let r = column_from_encoded(kind, &case["reference"][col]);
            let c = column_from_encoded(kind, &case["current"][col]);
            let res = column_drift(col, &r, &c, None, None).expect("drift");
            if res.method.name() != exp["method"].as_str().unwrap_or("?")
                || !close(res.score, num(&exp["score"]))
                || res.drift != exp["drift"].as_bool().unwrap_or(false)
                || res.kind.as_str() != exp["type"].as_str().unwrap_or("?")
            {
                failures.push(format!(
                    "{name}/{col}: got {} {:e} {} want {}",
                    res.method.name(),
                    res.score,
                    res.drift,
                    exp
                ));
            }
            results.push(res);
        }
        let ds = drift::dataset_drift(results, drift::DEFAULT_DRIFT_SHARE);
        if ds.dataset_drift != case["expected"]["dataset_drift"].as_bool().unwrap_or(false)
            || !close(ds.drift_share, num(&case["expected"]["drift_share"]))
        {
            failures.push(format!(
                "{name}: dataset drift {} share {}",
                ds.dataset_drift, ds.drift_share
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Evidently's per-column, per-type and global tests and thresholds (drift_options.json, the
/// legacy `DataDriftPreset` option names) given as `[[monitors]]` keys: each column's test,
/// threshold, score and drift as Evidently's. (`analyzer/tests/cli.rs` runs the same cases
/// through `vigil drift` flags on CSV files.)
#[test]
fn drift_options_match_evidently_through_monitor_config() {
    use vigil_analyzer::drift::ColumnKind;
    use vigil_analyzer::monitor::MonitorConfig;
    let cases = load("drift_options.json");
    let mut failures = Vec::new();
    let mut checked = 0;
    for case in cases.as_array().expect("cases") {
        let name = case["name"].as_str().unwrap_or("?");
        let numerical: Vec<&str> = case["numerical"]
            .as_array()
            .expect("n")
            .iter()
            .filter_map(|x| x.as_str())
            .collect();
        let columns: Vec<&str> = case["expected"]["columns"]
            .as_array()
            .expect("columns")
            .iter()
            .filter_map(|c| c["column"].as_str())
            .collect();
        let mut config = serde_json::json!({
            "name": name, "model": "m", "window": "1h", "reference": {"trailing": "1d"},
            "columns": columns,
        });
        for (k, v) in case["options"].as_object().expect("options") {
            config[k] = v.clone();
        }
        let monitor: MonitorConfig = serde_json::from_value(config).expect("monitor config");
        monitor.validate().expect("valid monitor");
        let options = monitor.stattests().expect("options");
        let mut results = Vec::new();
        for exp in case["expected"]["columns"].as_array().expect("columns") {
            let col = exp["column"].as_str().expect("column");
            let (kind, k) = if numerical.contains(&col) {
                ("numerical", ColumnKind::Numerical)
            } else {
                ("categorical", ColumnKind::Categorical)
            };
            let r = column_from_encoded(kind, &case["reference"][col]);
            let c = column_from_encoded(kind, &case["current"][col]);
            let chosen = monitor
                .column_stattest(&options, col, k)
                .expect("applicable");
            let res = column_drift(col, &r, &c, chosen.test, chosen.threshold).expect("drift");
            checked += 1;
            if res.method.name() != exp["method"].as_str().unwrap_or("?")
                || !close(res.score, num(&exp["score"]))
                || !close(res.threshold, num(&exp["threshold"]))
                || res.drift != exp["drift"].as_bool().unwrap_or(false)
                || res.kind.as_str() != exp["type"].as_str().unwrap_or("?")
            {
                failures.push(format!(
                    "{name}/{col}: got {} {:e} threshold {} drift {}, want {exp}",
                    res.method.name(),
                    res.score,
                    res.threshold,
                    res.drift
                ));
            }
            results.push(res);
        }
        let ds = drift::dataset_drift(results, drift::DEFAULT_DRIFT_SHARE);
        if ds.dataset_drift != case["expected"]["dataset_drift"].as_bool().unwrap_or(false)
            || !close(ds.drift_share, num(&case["expected"]["drift_share"]))
        {
            failures.push(format!(
                "{name}: dataset drift {} share {}",
                ds.dataset_drift, ds.drift_share
            ));
        }
    }
    assert!(checked >= 21, "too few golden columns checked: {checked}");
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn performance_matches_sklearn() {
    use vigil_analyzer::performance;
    let mut failures = Vec::new();
    for case in load("performance.json").as_array().expect("cases") {
        let name = case["name"].as_str().unwrap_or("?");
        let exp = case["expected"].as_object().expect("expected");
        let mut got: Vec<(&str, f64)> = Vec::new();
        if let Some(scores) = case.get("score") {
            let y: Vec<bool> = case["label"]
                .as_array()
                .expect("y")
                .iter()
                .map(|v| v.as_i64() == Some(1))
                .collect();
            let s: Vec<f64> = scores.as_array().expect("s").iter().map(num).collect();
            let m = performance::classification(&y, &s, 0.5).expect("classification");
            got.extend([
                ("accuracy", m.accuracy),
                ("precision", m.precision),
                ("recall", m.recall),
                ("f1", m.f1),
                ("roc_auc", m.roc_auc),
                ("log_loss", m.log_loss),
                ("brier", m.brier),
                ("ece", m.ece),
            ]);
        } else if let Some(p) = case.get("prediction") {
            let y: Vec<f64> = case["label"]
                .as_array()
                .expect("y")
                .iter()
                .map(num)
                .collect();
            let p: Vec<f64> = p.as_array().expect("p").iter().map(num).collect();
            let m = performance::regression(&y, &p).expect("regression");
            got.extend([("mae", m.mae), ("rmse", m.rmse), ("mape", m.mape)]);
        } else {
            let l: Vec<f64> = case["latency_ms"]
                .as_array()
                .expect("l")
                .iter()
                .map(num)
                .collect();
            let m = performance::serving(&l, 0);
            got.extend([("p50", m.p50_ms), ("p95", m.p95_ms), ("p99", m.p99_ms)]);
        }
        assert_eq!(
            got.len(),
            exp.len(),
            "{name}: every expected metric is checked"
        );
        for (k, v) in got {
            let want = num(&exp[k]);
            if !close(v, want) {
                failures.push(format!("{name}/{k}: {v} vs {want}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn fairness_matches_fairlearn_from_rows() {
    use vigil_analyzer::fairness::fairness_from_rows;
    for case in load("fairness.json").as_array().expect("cases") {
        let name = case["name"].as_str().unwrap_or("?");
        let s: Vec<&str> = case["sensitive"]
            .as_array()
            .expect("s")
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        let y: Vec<bool> = case["label"]
            .as_array()
            .expect("y")
            .iter()
            .map(|v| v.as_i64() == Some(1))
            .collect();
        let p: Vec<bool> = case["prediction"]
            .as_array()
            .expect("p")
            .iter()
            .map(|v| v.as_i64() == Some(1))
            .collect();
        let r = fairness_from_rows(&s, &y, &p, 0).expect("fairness");
        let e = &case["expected"];
        for (k, v) in [
            (
                "demographic_parity_difference",
                r.demographic_parity_difference,
            ),
            ("demographic_parity_ratio", r.demographic_parity_ratio),
            ("equalized_odds_difference", r.equalized_odds_difference),
            ("equalized_odds_ratio", r.equalized_odds_ratio),
            (
                "equal_opportunity_difference",
                r.equal_opportunity_difference,
            ),
            ("equal_opportunity_ratio", r.equal_opportunity_ratio),
        ] {
            assert!(close(v, num(&e[k])), "{name}/{k}: {v} vs {}", e[k]);
        }
        for (g, m) in e["groups"].as_object().expect("groups") {
            let got = &r.groups[g];
            assert_eq!(got.count, m["count"].as_u64().expect("count"));
            for (k, v) in [
                ("selection_rate", got.selection_rate),
                ("tpr", got.tpr),
                ("fpr", got.fpr),
                ("selection_rate_ci_low", got.selection_rate_ci_low),
                ("selection_rate_ci_high", got.selection_rate_ci_high),
            ] {
                assert!(close(v, num(&m[k])), "{name}/{g}/{k}: {v} vs {}", m[k]);
            }
        }
    }
}
