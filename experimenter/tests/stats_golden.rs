//! Golden tests: every number `vigil_experimenter::stats` computes, against GrowthBook's gbstats
//! 0.8.0 (and statsmodels / a scipy closed form where gbstats 0.8.0 has nothing), on the cases in
//! `tests/golden/stats.json` written by `scripts/golden/experimenter/generate.py`.
//!
//! Tolerance: 1e-6 relative, or 1e-9 absolute for numbers near zero (gbstats computes
//! `1 - cdf` for p-values, which loses everything below ~1e-16; we compute the survival
//! function directly). One documented deviation: gbstats' one-sided "treatment lesser" CI.

use std::path::PathBuf;

use serde_json::Value;
use vigil_experimenter::stats::bayesian::{self, BayesianConfig, BayesianResult, GaussianPrior};
use vigil_experimenter::stats::frequentist::{self, Alternative, FrequentistConfig};
use vigil_experimenter::stats::sequential::{self, SequentialConfig};
use vigil_experimenter::stats::{
    benjamini_hochberg, holm_bonferroni, minimum_detectable_effect, power, srm_p_value, ArmStats,
    ArmSummary, DifferenceType, FrequentistResult, PowerScenario,
};

const REL: f64 = 1e-6;
const ABS: f64 = 1e-9;

fn golden() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/stats.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// A golden number: JSON numbers, or "inf" / "-inf" / "nan" strings.
fn num(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
        Value::String(s) if s == "inf" => f64::INFINITY,
        Value::String(s) if s == "-inf" => f64::NEG_INFINITY,
        Value::String(s) if s == "nan" => f64::NAN,
        other => panic!("not a golden number: {other}"),
    }
}

fn close(got: f64, want: f64) -> bool {
    if got.is_nan() || want.is_nan() {
        return got.is_nan() && want.is_nan();
    }
    if got.is_infinite() || want.is_infinite() {
        return got == want;
    }
    let diff = (got - want).abs();
    diff <= ABS || diff <= REL * got.abs().max(want.abs())
}

/// Collects every mismatch so one run shows them all.
#[derive(Default)]
struct Checker {
    checked: usize,
    failures: Vec<String>,
}

impl Checker {
    fn num(&mut self, what: &str, got: f64, want: f64) {
        self.checked += 1;
        if !close(got, want) {
            self.failures.push(format!(
                "{what}: got {got:e}, gbstats {want:e} (rel diff {:e})",
                (got - want).abs() / want.abs().max(f64::MIN_POSITIVE)
            ));
        }
    }
    fn error(&mut self, what: &str, got: Option<&str>, want: &Value) {
        self.checked += 1;
        let want = want.as_str();
        if got != want {
            self.failures
                .push(format!("{what}: error {got:?}, gbstats {want:?}"));
        }
    }
    fn summary(&mut self, what: &str, got: &ArmSummary, want: &Value) {
        self.num(&format!("{what}.n"), got.n, num(&want["n"]));
        self.num(&format!("{what}.mean"), got.mean, num(&want["mean"]));
        self.num(
            &format!("{what}.unadjusted_mean"),
            got.unadjusted_mean,
            num(&want["unadjusted_mean"]),
        );
        self.num(
            &format!("{what}.variance"),
            got.variance,
            num(&want["variance"]),
        );
    }
    fn frequentist(&mut self, what: &str, got: &FrequentistResult, want: &Value, lesser: bool) {
        self.error(
            &format!("{what}.error"),
            got.not_estimable.map(|r| r.gbstats_message()),
            &want["error"],
        );
        let expected = num(&want["expected"]);
        self.num(&format!("{what}.expected"), got.expected, expected);
        self.num(
            &format!("{what}.p_value"),
            got.p_value,
            num(&want["p_value"]),
        );
        self.num(&format!("{what}.stddev"), got.stddev, num(&want["stddev"]));
        self.num(&format!("{what}.ci[0]"), got.ci[0], num(&want["ci"][0]));
        let mut upper = num(&want["ci"][1]);
        if lesser && got.not_estimable.is_none() {
            // gbstats 0.8.0 OneSidedTreatmentLesserTTest returns `[-inf, lift - width]`; the
            // upper bound of a one-sided interval is `lift + width` = 2·lift − (lift − width).
            upper = 2.0 * expected - upper;
        }
        self.num(&format!("{what}.ci[1]"), got.ci[1], upper);
        self.summary(&format!("{what}.control"), &got.control, &want["control"]);
        self.summary(
            &format!("{what}.treatment"),
            &got.treatment,
            &want["treatment"],
        );
    }
    fn bayesian(&mut self, what: &str, got: &BayesianResult, want: &Value) {
        self.error(
            &format!("{what}.error"),
            got.not_estimable.map(|r| r.gbstats_message()),
            &want["error"],
        );
        self.num(
            &format!("{what}.chance_to_win"),
            got.chance_to_win,
            num(&want["chance_to_win"]),
        );
        self.num(
            &format!("{what}.expected"),
            got.expected,
            num(&want["expected"]),
        );
        self.num(&format!("{what}.stddev"), got.stddev, num(&want["stddev"]));
        self.num(&format!("{what}.ci[0]"), got.ci[0], num(&want["ci"][0]));
        self.num(&format!("{what}.ci[1]"), got.ci[1], num(&want["ci"][1]));
        self.num(
            &format!("{what}.risk[0]"),
            got.risk.control,
            num(&want["risk"][0]),
        );
        self.num(
            &format!("{what}.risk[1]"),
            got.risk.treatment,
            num(&want["risk"][1]),
        );
        self.summary(&format!("{what}.control"), &got.control, &want["control"]);
        self.summary(
            &format!("{what}.treatment"),
            &got.treatment,
            &want["treatment"],
        );
    }
    fn finish(self, min_checked: usize) {
        assert!(
            self.failures.is_empty(),
            "{} of {} numbers differ from the golden data:\n{}",
            self.failures.len(),
            self.checked,
            self.failures.join("\n")
        );
        assert!(
            self.checked >= min_checked,
            "only {} numbers checked, expected at least {min_checked}",
            self.checked
        );
    }
}

fn difference(case: &Value) -> DifferenceType {
    match case["difference"].as_str() {
        Some("absolute") => DifferenceType::Absolute,
        _ => DifferenceType::Relative,
    }
}

fn arms(case: &Value) -> Vec<ArmStats> {
    serde_json::from_value(case["arms"].clone())
        .unwrap_or_else(|e| panic!("case {}: arms do not parse: {e}", case["name"]))
}

fn cases(g: &Value) -> &Vec<Value> {
    g["cases"].as_array().expect("golden data has cases")
}

#[test]
fn frequentist_tests_match_gbstats() {
    let g = golden();
    let mut check = Checker::default();
    for case in cases(&g) {
        let name = case["name"].as_str().unwrap_or("?");
        let arms = arms(case);
        for c in case["comparisons"].as_array().expect("comparisons") {
            let i = c["treatment"].as_u64().expect("treatment index") as usize;
            for (key, alternative) in [
                ("two_sided", Alternative::TwoSided),
                ("greater", Alternative::Greater),
                ("less", Alternative::Less),
            ] {
                let config = FrequentistConfig {
                    alpha: num(&case["alpha"]),
                    test_value: 0.0,
                    difference: difference(case),
                    alternative,
                };
                let got = frequentist::analyze(&arms[0], &arms[i], &config)
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                check.frequentist(
                    &format!("{name}[{i}].{key}"),
                    &got,
                    &c[key],
                    alternative == Alternative::Less,
                );
            }
        }
    }
    check.finish(1000);
}

#[test]
fn sequential_tests_match_gbstats() {
    let g = golden();
    let mut check = Checker::default();
    for case in cases(&g) {
        let name = case["name"].as_str().unwrap_or("?");
        let arms = arms(case);
        for c in case["comparisons"].as_array().expect("comparisons") {
            let i = c["treatment"].as_u64().expect("treatment index") as usize;
            let config = SequentialConfig {
                alpha: num(&case["alpha"]),
                test_value: 0.0,
                difference: difference(case),
                tuning_parameter: num(&case["tuning_parameter"]),
            };
            let got = sequential::analyze(&arms[0], &arms[i], &config)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            check.frequentist(
                &format!("{name}[{i}].sequential"),
                &got,
                &c["sequential"],
                false,
            );
        }
    }
    check.finish(300);
}

#[test]
fn bayesian_tests_match_gbstats() {
    let g = golden();
    let mut check = Checker::default();
    for case in cases(&g) {
        let name = case["name"].as_str().unwrap_or("?");
        let arms = arms(case);
        for c in case["comparisons"].as_array().expect("comparisons") {
            let i = c["treatment"].as_u64().expect("treatment index") as usize;
            for (key, inverse, prior) in [
                ("bayesian", false, false),
                ("bayesian_inverse", true, false),
                ("bayesian_prior", false, true),
            ] {
                let config = BayesianConfig {
                    alpha: num(&case["alpha"]),
                    inverse,
                    difference: difference(case),
                    prior: prior.then(|| GaussianPrior {
                        mean: 0.0,
                        variance: num(&case["prior_variance"]),
                    }),
                };
                let got = bayesian::analyze(&arms[0], &arms[i], &config)
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                check.bayesian(&format!("{name}[{i}].{key}"), &got, &c[key]);
            }
        }
    }
    check.finish(1000);
}

#[test]
fn srm_matches_gbstats() {
    let g = golden();
    let mut check = Checker::default();
    for case in cases(&g) {
        let arms = arms(case);
        let users: Vec<u64> = arms.iter().map(ArmStats::units).collect();
        let weights: Vec<f64> = case["weights"]
            .as_array()
            .expect("weights")
            .iter()
            .map(num)
            .collect();
        let got = srm_p_value(&users, &weights).expect("valid SRM input");
        check.num(
            &format!("{}.srm", case["name"]),
            got,
            num(&case["srm_p_value"]),
        );
    }
    for (k, s) in g["srm"].as_array().expect("srm cases").iter().enumerate() {
        let users: Vec<u64> = serde_json::from_value(s["users"].clone()).expect("users");
        let weights: Vec<f64> = serde_json::from_value(s["weights"].clone()).expect("weights");
        let got = srm_p_value(&users, &weights).expect("valid SRM input");
        check.num(&format!("srm[{k}] {users:?}"), got, num(&s["p_value"]));
    }
    check.finish(35);
}

#[test]
fn multiple_testing_matches_statsmodels() {
    let g = golden();
    let mut check = Checker::default();
    for (k, m) in g["multiple"]
        .as_array()
        .expect("multiple")
        .iter()
        .enumerate()
    {
        let p: Vec<f64> = m["p_values"]
            .as_array()
            .expect("p")
            .iter()
            .map(num)
            .collect();
        let holm = holm_bonferroni(&p).expect("valid p-values");
        let bh = benjamini_hochberg(&p).expect("valid p-values");
        for (j, (got, want)) in holm
            .iter()
            .zip(m["holm"].as_array().expect("holm"))
            .enumerate()
        {
            check.num(&format!("multiple[{k}].holm[{j}]"), *got, num(want));
        }
        for (j, (got, want)) in bh.iter().zip(m["bh"].as_array().expect("bh")).enumerate() {
            check.num(&format!("multiple[{k}].bh[{j}]"), *got, num(want));
        }
    }
    check.finish(80);
}

#[test]
fn power_matches_closed_form() {
    let g = golden();
    let mut check = Checker::default();
    for (k, case) in g["power"].as_array().expect("power").iter().enumerate() {
        let scenario: PowerScenario =
            serde_json::from_value(case["scenario"].clone()).expect("scenario parses");
        for (lift, want) in case["lifts"]
            .as_array()
            .expect("lifts")
            .iter()
            .zip(case["power"].as_array().expect("power"))
        {
            let lift = num(lift);
            let got = power(&scenario, lift).expect("valid");
            check.num(&format!("power[{k}] lift {lift}"), got, num(want));
        }
        for (target, want) in case["mde"].as_object().expect("mde") {
            let target: f64 = target.parse().expect("target power");
            let got = minimum_detectable_effect(&scenario, target).expect("reachable");
            check.num(&format!("power[{k}] mde at {target}"), got, num(want));
        }
    }
    check.finish(30);
}
