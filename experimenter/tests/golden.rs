//! Golden data from the real GrowthBook JavaScript SDK (experimenter/scripts/growthbook-golden.js
//! → tests/data/growthbook-golden.json): non-ASCII unit ids and seeds (accents, CJK, Hangul,
//! Cyrillic, Arabic, emoji with surrogate pairs and ZWJ, code units just above 255), bucket
//! ranges, namespaces and whole-experiment runs. All comparisons are exact.

use std::path::PathBuf;

use chrono::Utc;
use serde_json::{json, Value};
use vigil_experimenter::bucket::bucket_ranges;
use vigil_experimenter::hash::hash_any_version;
use vigil_experimenter::namespace::in_namespace;
use vigil_experimenter::{Experiment, NoAttributes};

fn golden() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/growthbook-golden.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

fn arr<'a>(v: &'a Value, name: &str) -> &'a Vec<Value> {
    v[name]
        .as_array()
        .unwrap_or_else(|| panic!("golden data lacks {name}"))
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn hashes_match_the_js_sdk() {
    let g = golden();
    let cases = arr(&g, "hash");
    assert!(cases.len() >= 200);
    let mut non_ascii = 0;
    for c in cases {
        let (seed, unit) = (
            c[0].as_str().unwrap_or_default(),
            c[1].as_str().unwrap_or_default(),
        );
        if !seed.is_ascii() || !unit.is_ascii() {
            non_ascii += 1;
        }
        let version = c[2].as_i64().unwrap_or_default();
        assert_eq!(
            hash_any_version(seed, unit, version),
            c[3].as_f64(),
            "case {c}"
        );
    }
    assert!(
        non_ascii > 100,
        "golden data should be mostly non-ASCII, got {non_ascii}"
    );
}

#[test]
fn namespaces_match_the_js_sdk() {
    let g = golden();
    for c in arr(&g, "inNamespace") {
        let unit = c[0].as_str().unwrap_or_default();
        let ns = &c[1];
        let got = in_namespace(
            unit,
            ns[0].as_str().unwrap_or_default(),
            f(&ns[1]),
            f(&ns[2]),
        );
        assert_eq!(Some(got), c[2].as_bool(), "case {c}");
    }
}

#[test]
fn bucket_ranges_match_the_js_sdk_exactly() {
    let g = golden();
    for c in arr(&g, "bucketRanges") {
        let n = c[0].as_u64().unwrap_or_default() as usize;
        let weights: Option<Vec<f64>> = c[2].as_array().map(|w| w.iter().map(f).collect());
        let got: Vec<[f64; 2]> = bucket_ranges(n, Some(f(&c[1])), weights.as_deref())
            .iter()
            .map(|r| [r.start, r.end])
            .collect();
        let expected: Vec<[f64; 2]> = c[3]
            .as_array()
            .unwrap_or_else(|| panic!("bad case {c}"))
            .iter()
            .map(|r| [f(&r[0]), f(&r[1])])
            .collect();
        assert_eq!(got, expected, "case {c}");
    }
}

/// Builds our experiment from the GrowthBook experiment object of a golden `run` case.
fn experiment_from_gb(gb: &Value) -> Experiment {
    let n = gb["variations"].as_array().map_or(0, Vec::len);
    let weights = gb["weights"].as_array();
    let arms: Vec<Value> = (0..n)
        .map(|i| {
            let mut arm = json!({"name": format!("arm{i}"), "model_version": format!("m@{i}")});
            if let Some(w) = weights {
                arm["weight"] = w[i].clone();
            }
            arm
        })
        .collect();
    let mut cfg = json!({"key": gb["key"], "arms": arms});
    for (ours, theirs) in [
        ("seed", "seed"),
        ("coverage", "coverage"),
        ("hash_version", "hashVersion"),
        ("status", "status"),
    ] {
        if !gb[theirs].is_null() {
            cfg[ours] = gb[theirs].clone();
        }
    }
    if let Some(ns) = gb["namespace"].as_array() {
        cfg["namespace"] = json!({"id": ns[0], "range": [ns[1], ns[2]]});
    }
    serde_json::from_value(cfg).unwrap_or_else(|e| panic!("cannot build experiment from {gb}: {e}"))
}

#[test]
fn whole_experiment_runs_match_the_js_sdk() {
    let g = golden();
    let runs = arr(&g, "run");
    let mut enrolled = 0;
    for c in runs {
        let exp = experiment_from_gb(&c[0]);
        let unit = c[1].as_str().unwrap_or_default();
        let expected = &c[2];
        let a = exp.assign(unit, &NoAttributes, Utc::now());
        let in_exp = expected["inExperiment"].as_bool().unwrap_or_default();
        assert_eq!(a.in_experiment, in_exp, "case {c}");
        if in_exp {
            enrolled += 1;
            assert_eq!(
                Some(i64::from(a.variation)),
                expected["variationId"].as_i64(),
                "case {c}"
            );
            assert_eq!(Some(a.hash), expected["bucket"].as_f64(), "case {c}");
            assert_eq!(a.arm, format!("arm{}", a.variation));
        } else {
            // GrowthBook serves variation 0 (control); we report -1 and serve control.
            assert_eq!(expected["variationId"].as_i64(), Some(0), "case {c}");
            assert_eq!(a.variation, -1);
            assert_eq!(a.arm, "arm0");
        }
    }
    assert!(
        enrolled > 50 && enrolled < runs.len(),
        "golden runs should mix in and out"
    );
}
