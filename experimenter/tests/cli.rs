//! `vigil assign` contract.

use clap::Parser;
use serde_json::Value;
use vigil_experimenter::hash::{hash, HashVersion};
use vigil_experimenter::{run_assign, AssignArgs, Experiment};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: AssignArgs,
}

fn args(argv: &[&str]) -> Result<AssignArgs, clap::Error> {
    Cli::try_parse_from(std::iter::once("vigil-assign").chain(argv.iter().copied())).map(|c| c.args)
}

fn run(argv: &[&str], exps: &[Experiment]) -> anyhow::Result<String> {
    let a = args(argv).map_err(|e| anyhow::anyhow!("{e}"))?;
    run_assign(&a, exps)
}

fn json(argv: &[&str], exps: &[Experiment]) -> Value {
    let out = run(argv, exps).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{out} is not JSON: {e}"))
}

fn experiments() -> Vec<Experiment> {
    let cfg = serde_json::json!([{
        "key": "ranker-v2", "hash_version": 2,
        "arms": [{"name": "control", "model_version": "ranker@1.4"},
                 {"name": "treatment", "model_version": "ranker@2.0"}]
    }, {
        "key": "de-only", "hash_version": 2, "targeting": {"country": "DE"},
        "arms": [{"name": "control", "model_version": "m@1"}, {"name": "t", "model_version": "m@2"}]
    }]);
    serde_json::from_value(cfg).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn seed_mode_prints_exactly_hash_variation_in_experiment() {
    // GrowthBook conformance case: hash("seed", "a", 2) = 0.0505.
    let v = json(
        &["--seed", "seed", "--unit", "a", "--hash-version", "2"],
        &[],
    );
    assert_eq!(
        v,
        serde_json::json!({"hash": 0.0505, "variation": 0, "in_experiment": true})
    );
    let out = run(
        &["--seed", "seed", "--unit", "a", "--hash-version", "2"],
        &[],
    )
    .unwrap_or_default();
    assert_eq!(out, r#"{"hash":0.0505,"variation":0,"in_experiment":true}"#);

    // Default hash version is 1: hash("", "a", 1) = 0.22.
    let v = json(&["--seed", "", "--unit", "a"], &[]);
    assert_eq!(v["hash"], 0.22);

    // Coverage: 0.0505 is outside [0, 0.025) and [0.5, 0.525).
    let v = json(
        &[
            "--seed",
            "seed",
            "--unit",
            "a",
            "--hash-version",
            "2",
            "--coverage",
            "0.05",
        ],
        &[],
    );
    assert_eq!(
        v,
        serde_json::json!({"hash": 0.0505, "variation": -1, "in_experiment": false})
    );

    // Weights.
    let v = json(
        &[
            "--seed",
            "seed",
            "--unit",
            "a",
            "--hash-version",
            "2",
            "--weights",
            "0.05,0.95",
        ],
        &[],
    );
    assert_eq!(v["variation"], 1);
    let v = json(
        &[
            "--seed",
            "seed",
            "--unit",
            "a",
            "--hash-version",
            "2",
            "--weights",
            "0.2,0.3,0.5",
        ],
        &[],
    );
    assert_eq!(v["variation"], 0);
}

#[test]
fn experiment_mode_adds_arm_and_model_version() {
    let exps = experiments();
    let v = json(&["--experiment", "ranker-v2", "--unit", "user-42"], &exps);
    let keys: Vec<&str> = v
        .as_object()
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default();
    assert_eq!(keys.len(), 5, "{v}");
    assert_eq!(v["hash"], hash("ranker-v2", "user-42", HashVersion::V2));
    assert_eq!(v["in_experiment"], true);
    let variation = v["variation"].as_i64().unwrap_or(-1);
    let arm = &exps[0].arms()[variation as usize];
    assert_eq!(v["arm"], arm.name.as_str());
    assert_eq!(v["model_version"], arm.model_version.as_str());

    // Targeting through --attr.
    let v = json(&["--experiment", "de-only", "--unit", "u1"], &exps);
    assert_eq!(
        (v["variation"].as_i64(), v["arm"].as_str()),
        (Some(-1), Some("control"))
    );
    let v = json(
        &[
            "--experiment",
            "de-only",
            "--unit",
            "u1",
            "--attr",
            "country=DE",
        ],
        &exps,
    );
    assert_eq!(v["in_experiment"], true);
}

#[test]
fn table_format() {
    let out = run(
        &[
            "--seed",
            "seed",
            "--unit",
            "a",
            "--hash-version",
            "2",
            "--format",
            "table",
        ],
        &[],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        out,
        "hash           0.0505\nvariation      0\nin_experiment  true"
    );
    let out = run(
        &[
            "--experiment",
            "ranker-v2",
            "--unit",
            "u",
            "--format",
            "table",
        ],
        &experiments(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.contains("model_version  ranker@"), "{out}");
}

#[test]
fn usage_errors() {
    let exps = experiments();
    let err = |argv: &[&str]| match run(argv, &exps) {
        Ok(out) => panic!("{argv:?} should fail, printed {out}"),
        Err(e) => e.to_string(),
    };
    assert!(err(&["--unit", "a"]).contains("--seed"));
    assert!(err(&["--seed", "s"]).contains("--unit"));
    assert!(err(&["--seed", "s", "--unit", "a", "--hash-version", "3"]).contains("use 1"));
    assert!(err(&["--seed", "s", "--unit", "a", "--weights", "0.5,0.6"]).contains("sum to 1"));
    assert!(err(&["--seed", "s", "--unit", "a", "--weights", "x"]).contains("invalid"));
    assert!(err(&["--seed", "s", "--unit", "a", "--coverage", "2"]).contains("outside [0, 1]"));
    assert!(err(&["--experiment", "nope", "--unit", "a"])
        .contains("known experiments: ranker-v2, de-only"));
    assert!(
        err(&["--experiment", "ranker-v2", "--seed", "s", "--unit", "a"])
            .contains("cannot be used with")
    );
    assert!(err(&[
        "--experiment",
        "ranker-v2",
        "--unit",
        "a",
        "--attr",
        "novalue"
    ])
    .contains("NAME=VALUE"));
}

#[test]
fn empty_unit_is_not_in_experiment() {
    let v = json(&["--seed", "s", "--unit", ""], &[]);
    assert_eq!(
        (v["variation"].as_i64(), v["in_experiment"].as_bool()),
        (Some(-1), Some(false))
    );
}
