//! Reading `[[experiments]]` from TOML, validation errors, and assignment rules.

use std::collections::HashMap;

use chrono::{TimeZone, Utc};
use serde::Deserialize;
use vigil_experimenter::{
    validate_experiments, Experiment, ExperimentError, NoAttributes, Reason, Status,
};

#[derive(Deserialize)]
struct Config {
    #[serde(default)]
    experiments: Vec<Experiment>,
}

const VALID: &str = r#"
[[experiments]]
key = "ranker-v2"
description = "new ranker"
model = "ranker"
seed = "ranker-v2-seed"
hash_version = 2
coverage = 0.8
status = "running"
start = "2025-01-01T00:00:00Z"
stop = "2030-01-01T00:00:00Z"
namespace = { id = "ranking", range = [0.0, 0.6] }
targeting = { country = "DE", plan = ["pro", "team"] }

[[experiments.arms]]
name = "control"
model_version = "ranker@1.4"
weight = 0.4

[[experiments.arms]]
name = "treatment"
model_version = "ranker@2.0"
weight = 0.6

[[experiments]]
key = "minimal"
arms = [
  { name = "a", model_version = "m@1" },
  { name = "b", model_version = "m@2" },
]
"#;

fn parse(text: &str) -> Result<Vec<Experiment>, String> {
    toml::from_str::<Config>(text)
        .map(|c| c.experiments)
        .map_err(|e| e.to_string())
}

fn now() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0)
        .single()
        .unwrap_or_else(Utc::now)
}

#[test]
fn reads_experiments_from_toml() {
    let exps = parse(VALID).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(exps.len(), 2);
    validate_experiments(&exps).unwrap_or_else(|e| panic!("{e}"));
    let e = &exps[0];
    assert_eq!(e.key(), "ranker-v2");
    assert_eq!(e.seed(), "ranker-v2-seed");
    assert_eq!(e.config().status, Status::Running);
    assert_eq!(e.arms()[1].model_version, "ranker@2.0");
    let m = &exps[1];
    assert_eq!(m.seed(), "minimal", "seed defaults to the key");
    assert_eq!(m.config().coverage, 1.0);
    assert_eq!(
        u8::from(m.config().hash_version),
        1,
        "GrowthBook SDK default"
    );
    assert_eq!(m.ranges()[1].start, 0.5);
}

#[test]
fn targeting_namespace_and_time_window() {
    let exps = parse(VALID).unwrap_or_else(|e| panic!("{e}"));
    let e = &exps[0];
    let mut attrs = HashMap::new();
    attrs.insert("country".to_string(), "DE".to_string());
    attrs.insert("plan".to_string(), "team".to_string());
    let mut reasons = HashMap::new();
    for i in 0..2000 {
        let a = e.assign(&format!("u{i}"), &attrs, now());
        *reasons.entry(a.reason).or_insert(0) += 1;
        assert_eq!(a.in_experiment, a.reason == Reason::InExperiment);
        if !a.in_experiment {
            assert_eq!(
                (a.variation, a.arm, a.model_version),
                (-1, "control", "ranker@1.4")
            );
        }
    }
    assert!(reasons[&Reason::InExperiment] > 0);
    assert!(reasons[&Reason::Namespace] > 0);
    assert!(reasons[&Reason::Coverage] > 0);

    // Find an enrolled unit, then break each rule in turn.
    let unit = (0..2000)
        .map(|i| format!("u{i}"))
        .find(|u| e.assign(u, &attrs, now()).in_experiment)
        .unwrap_or_else(|| panic!("no enrolled unit"));
    let reason = |attrs: &[(&str, &str)], t| e.assign(&unit, attrs, t).reason;
    assert_eq!(
        reason(&[("country", "DE"), ("plan", "pro")], now()),
        Reason::InExperiment
    );
    assert_eq!(
        reason(&[("country", "FR"), ("plan", "pro")], now()),
        Reason::Targeting
    );
    assert_eq!(
        reason(&[("country", "DE"), ("plan", "free")], now()),
        Reason::Targeting
    );
    assert_eq!(
        reason(&[("country", "DE")], now()),
        Reason::Targeting,
        "missing attribute"
    );
    assert_eq!(
        e.assign(&unit, &NoAttributes, now()).reason,
        Reason::Targeting
    );
    let before = Utc
        .with_ymd_and_hms(2024, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_else(Utc::now);
    let after = Utc
        .with_ymd_and_hms(2030, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_else(Utc::now);
    assert_eq!(
        reason(&[("country", "DE"), ("plan", "pro")], before),
        Reason::NotStarted
    );
    assert_eq!(
        reason(&[("country", "DE"), ("plan", "pro")], after),
        Reason::Ended
    );
    assert_eq!(e.assign("", &attrs, now()).reason, Reason::MissingUnitId);
}

#[test]
fn paused_and_stopped_serve_control_to_everyone() {
    for (status, reason) in [("paused", Reason::Paused), ("stopped", Reason::Stopped)] {
        let text = VALID.replacen("status = \"running\"", &format!("status = \"{status}\""), 1);
        let exps = parse(&text).unwrap_or_else(|e| panic!("{e}"));
        for i in 0..500 {
            let a = exps[0].assign(
                &format!("u{i}"),
                &[("country", "DE"), ("plan", "pro")],
                now(),
            );
            assert!(!a.in_experiment);
            assert_eq!((a.variation, a.arm, a.reason), (-1, "control", reason));
        }
    }
}

fn minimal_with(extra: &str, arms: &str) -> String {
    format!("[[experiments]]\nkey = \"x\"\n{extra}\narms = [{arms}]\n")
}

const TWO_ARMS: &str =
    r#"{ name = "a", model_version = "m@1" }, { name = "b", model_version = "m@2" }"#;

fn error_of(text: &str) -> String {
    match parse(text) {
        Ok(_) => panic!("accepted invalid config:\n{text}"),
        Err(e) => e,
    }
}

#[test]
fn invalid_configs_get_clear_errors() {
    let cases: Vec<(String, &str)> = vec![
        (minimal_with("", ""), "has no arms"),
        (
            minimal_with("coverage = 1.5", TWO_ARMS),
            "coverage 1.5 is outside [0, 1]",
        ),
        (
            minimal_with("coverage = -0.1", TWO_ARMS),
            "coverage -0.1 is outside [0, 1]",
        ),
        (
            minimal_with(
                "",
                r#"{ name = "a", model_version = "m@1", weight = 0.5 }, { name = "b", model_version = "m@2", weight = 0.4 }"#,
            ),
            "sum to 0.9",
        ),
        (
            minimal_with(
                "",
                r#"{ name = "a", model_version = "m@1", weight = 0.5 }, { name = "b", model_version = "m@2" }"#,
            ),
            "arms b have no `weight`",
        ),
        (
            minimal_with(
                "",
                r#"{ name = "a", model_version = "m@1", weight = -0.5 }, { name = "b", model_version = "m@2", weight = 1.5 }"#,
            ),
            "weights must be finite and >= 0",
        ),
        (
            minimal_with(
                "",
                r#"{ name = "a", model_version = "m@1" }, { name = "a", model_version = "m@2" }"#,
            ),
            "arm `a` is defined twice",
        ),
        (
            minimal_with("", r#"{ name = "", model_version = "m@1" }"#),
            "arm #0 has an empty `name`",
        ),
        (
            minimal_with("", r#"{ name = "a", model_version = "" }"#),
            "empty `model_version`",
        ),
        (
            minimal_with("hash_version = 3", TWO_ARMS),
            "unknown hash version 3",
        ),
        (
            minimal_with("status = \"draft\"", TWO_ARMS),
            "unknown variant `draft`",
        ),
        (
            minimal_with("covrage = 0.5", TWO_ARMS),
            "unknown field `covrage`",
        ),
        (
            minimal_with("namespace = { id = \"n\", range = [0.6, 0.2] }", TWO_ARMS),
            "namespace range",
        ),
        (
            minimal_with("namespace = { id = \"\", range = [0.0, 0.2] }", TWO_ARMS),
            "namespace id is empty",
        ),
        (
            minimal_with(
                "start = \"2025-02-01T00:00:00Z\"\nstop = \"2025-01-01T00:00:00Z\"",
                TWO_ARMS,
            ),
            "must be after start",
        ),
        (
            minimal_with("targeting = { plan = [] }", TWO_ARMS),
            "targeting on `plan` lists no values",
        ),
        (
            minimal_with("targeting = { plan = 3 }", TWO_ARMS),
            "a string (equality) or a list of strings",
        ),
        (
            "[[experiments]]\nkey = \"\"\narms = [{ name = \"a\", model_version = \"m\" }]\n"
                .to_string(),
            "experiment key is empty",
        ),
    ];
    for (text, needle) in cases {
        let err = error_of(&text);
        assert!(
            err.contains(needle),
            "error for\n{text}\nshould contain `{needle}`, got:\n{err}"
        );
        // toml reports where the problem is.
        assert!(err.contains("line"), "error should give a line: {err}");
    }
}

#[test]
fn duplicate_keys_are_rejected() {
    let text = format!(
        "{}{}",
        minimal_with("", TWO_ARMS),
        minimal_with("", TWO_ARMS)
    );
    let exps = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        validate_experiments(&exps),
        Err(ExperimentError::DuplicateKey { key: "x".into() })
    );
}

#[test]
fn weights_within_growthbook_tolerance_are_accepted() {
    let text = minimal_with(
        "",
        r#"{ name = "a", model_version = "m@1", weight = 0.4 }, { name = "b", model_version = "m@2", weight = 0.5999 }"#,
    );
    let exps = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(exps[0].ranges()[1].end, 0.4 + 0.5999);
}

#[test]
fn experiments_round_trip_through_serde() {
    let exps = parse(VALID).unwrap_or_else(|e| panic!("{e}"));
    let json = serde_json::to_string(&exps).unwrap_or_else(|e| panic!("{e}"));
    let back: Vec<Experiment> = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(exps, back);
}
