//! GrowthBook SDK conformance suite (tests/data/growthbook-cases.json, MIT, see the NOTICE
//! beside it): every `hash`, `getBucketRange`, `chooseVariation`, `getEqualWeights` and
//! `inNamespace` case.

use std::path::PathBuf;

use serde_json::Value;
use vigil_experimenter::bucket::{bucket_ranges, choose_variation, equal_weights, BucketRange};
use vigil_experimenter::hash::hash_any_version;
use vigil_experimenter::namespace::in_namespace;

fn cases() -> Value {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data/growthbook-cases.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

fn section(name: &str) -> Vec<Value> {
    match cases().get(name) {
        Some(Value::Array(v)) if !v.is_empty() => v.clone(),
        other => panic!("section {name} missing or empty: {other:?}"),
    }
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

/// GrowthBook's own tests compare bucket ranges rounded to 6 decimals.
fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// GrowthBook's own tests compare equal weights truncated to 8 decimals.
fn floor8(x: f64) -> f64 {
    (x * 1e8).floor() / 1e8
}

#[test]
fn hash_cases() {
    let cases = section("hash");
    for c in &cases {
        let (seed, value) = (s(&c[0]), s(&c[1]));
        let version = c[2]
            .as_i64()
            .unwrap_or_else(|| panic!("bad version in {c}"));
        let expected = c[3].as_f64();
        // Exact: GrowthBook's value is an integer divided by 1000 or 10000, as ours.
        assert_eq!(hash_any_version(seed, value, version), expected, "case {c}");
    }
    assert_eq!(cases.len(), 15);
}

#[test]
fn get_bucket_range_cases() {
    let cases = section("getBucketRange");
    for c in &cases {
        let args = &c[1];
        let n = args[0]
            .as_u64()
            .unwrap_or_else(|| panic!("bad count in {c}")) as usize;
        let coverage = f(&args[1]);
        let weights: Option<Vec<f64>> = args[2].as_array().map(|w| w.iter().map(f).collect());
        let got: Vec<(f64, f64)> = bucket_ranges(n, Some(coverage), weights.as_deref())
            .iter()
            .map(|r| (round6(r.start), round6(r.end)))
            .collect();
        let expected: Vec<(f64, f64)> = c[2]
            .as_array()
            .unwrap_or_else(|| panic!("bad expectation in {c}"))
            .iter()
            .map(|r| (f(&r[0]), f(&r[1])))
            .collect();
        assert_eq!(got, expected, "case {}", c[0]);
    }
    assert_eq!(cases.len(), 13);
}

#[test]
fn choose_variation_cases() {
    let cases = section("chooseVariation");
    for c in &cases {
        let n = f(&c[1]);
        let ranges: Vec<BucketRange> = c[2]
            .as_array()
            .unwrap_or_else(|| panic!("bad ranges in {c}"))
            .iter()
            .map(|r| BucketRange {
                start: f(&r[0]),
                end: f(&r[1]),
            })
            .collect();
        let expected = c[3]
            .as_i64()
            .unwrap_or_else(|| panic!("bad expectation in {c}"));
        assert_eq!(
            i64::from(choose_variation(n, &ranges)),
            expected,
            "case {}",
            c[0]
        );
    }
    assert_eq!(cases.len(), 13);
}

#[test]
fn get_equal_weights_cases() {
    let cases = section("getEqualWeights");
    for c in &cases {
        let n = c[0].as_i64().unwrap_or_else(|| panic!("bad n in {c}"));
        let got: Vec<f64> = equal_weights(n).into_iter().map(floor8).collect();
        let expected: Vec<f64> = c[1]
            .as_array()
            .unwrap_or_else(|| panic!("bad expectation in {c}"))
            .iter()
            .map(f)
            .collect();
        assert_eq!(got, expected, "case {c}");
    }
    assert_eq!(cases.len(), 6);
}

#[test]
fn in_namespace_cases() {
    let cases = section("inNamespace");
    for c in &cases {
        let unit = s(&c[1]);
        let ns = &c[2];
        let expected = c[3]
            .as_bool()
            .unwrap_or_else(|| panic!("bad expectation in {c}"));
        assert_eq!(
            in_namespace(unit, s(&ns[0]), f(&ns[1]), f(&ns[2])),
            expected,
            "case {}",
            c[0]
        );
    }
    assert_eq!(cases.len(), 16);
}
