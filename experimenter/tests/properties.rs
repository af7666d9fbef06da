//! Statistical and stability properties of assignment.

use chrono::{TimeZone, Utc};
use statrs::distribution::{ChiSquared, ContinuousCDF};
use vigil_experimenter::{Experiment, NoAttributes};

const UNITS: usize = 100_000;

fn experiment(hash_version: u8, coverage: f64, weights: &[f64]) -> Experiment {
    let arms: Vec<serde_json::Value> = weights
        .iter()
        .enumerate()
        .map(|(i, w)| serde_json::json!({"name": format!("arm{i}"), "model_version": format!("m@{i}"), "weight": w}))
        .collect();
    let cfg = serde_json::json!({
        "key": format!("srm-v{hash_version}-{coverage}-{}", weights.len()),
        "hash_version": hash_version,
        "coverage": coverage,
        "arms": arms,
    });
    serde_json::from_value(cfg).unwrap_or_else(|e| panic!("invalid test experiment: {e}"))
}

/// Unit ids shaped like real ones: numeric, UUID-like, e-mail-like and non-ASCII.
fn unit(i: usize) -> String {
    match i % 4 {
        0 => format!("{i}"),
        1 => format!(
            "{:08x}-{:04x}-4{:03x}",
            i.wrapping_mul(2_654_435_761),
            i % 65_536,
            i % 4096
        ),
        2 => format!("user{i}@example.com"),
        _ => format!("用户-{i}-é"),
    }
}

/// Pearson chi-square goodness-of-fit p-value of `observed` against `expected_shares`.
fn srm_p_value(observed: &[u64], expected_shares: &[f64]) -> f64 {
    let total: u64 = observed.iter().sum();
    let stat: f64 = observed
        .iter()
        .zip(expected_shares)
        .map(|(&o, &p)| {
            let e = p * total as f64;
            (o as f64 - e).powi(2) / e
        })
        .sum();
    let dist = ChiSquared::new((observed.len() - 1) as f64)
        .unwrap_or_else(|e| panic!("bad degrees of freedom: {e}"));
    1.0 - dist.cdf(stat)
}

fn counts(exp: &Experiment) -> (Vec<u64>, u64) {
    let now = Utc::now();
    let mut counts = vec![0u64; exp.arms().len()];
    let mut out = 0;
    for i in 0..UNITS {
        let a = exp.assign(&unit(i), &NoAttributes, now);
        match usize::try_from(a.variation) {
            Ok(v) => counts[v] += 1,
            Err(_) => out += 1,
        }
    }
    (counts, out)
}

#[test]
fn weights_are_honoured_without_sample_ratio_mismatch() {
    for version in [1, 2] {
        for weights in [&[0.5, 0.5][..], &[0.1, 0.9], &[0.2, 0.3, 0.5], &[0.25; 4]] {
            let exp = experiment(version, 1.0, weights);
            let (counts, out) = counts(&exp);
            assert_eq!(out, 0, "full coverage enrolls everyone");
            let p = srm_p_value(&counts, weights);
            assert!(
                p > 0.001,
                "v{version} weights {weights:?}: counts {counts:?}, SRM p = {p}"
            );
        }
    }
}

#[test]
fn coverage_is_honoured() {
    for version in [1, 2] {
        let exp = experiment(version, 0.3, &[0.5, 0.5]);
        let (counts, out) = counts(&exp);
        // Enrolled vs not: binomial with p = 0.3.
        let enrolled: u64 = counts.iter().sum();
        let p = srm_p_value(&[enrolled, out], &[0.3, 0.7]);
        assert!(
            p > 0.001,
            "v{version}: enrolled {enrolled}, out {out}, p = {p}"
        );
        let p = srm_p_value(&counts, &[0.5, 0.5]);
        assert!(p > 0.001, "v{version}: arms {counts:?}, p = {p}");
    }
}

#[test]
fn assignment_is_stable_across_calls_instances_and_time() {
    let a = experiment(2, 0.8, &[0.2, 0.3, 0.5]);
    let b = a.clone();
    let t1 = Utc::now();
    let t2 = Utc
        .with_ymd_and_hms(2030, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or(t1);
    for i in 0..10_000 {
        let u = unit(i);
        let first = a.assign(&u, &NoAttributes, t1);
        assert_eq!(first, a.assign(&u, &NoAttributes, t1));
        assert_eq!(first, b.assign(&u, &NoAttributes, t2));
    }
}

#[test]
fn raising_coverage_never_moves_enrolled_units() {
    let low = experiment(2, 0.2, &[0.5, 0.5]);
    let high = experiment(2, 0.9, &[0.5, 0.5]);
    // Same key is needed for the same hash line.
    let high: Experiment = {
        let mut cfg = high.config().clone();
        cfg.key = low.key().to_owned();
        Experiment::new(cfg).unwrap_or_else(|e| panic!("{e}"))
    };
    let now = Utc::now();
    for i in 0..20_000 {
        let u = unit(i);
        let a = low.assign(&u, &NoAttributes, now);
        if a.in_experiment {
            assert_eq!(
                a.variation,
                high.assign(&u, &NoAttributes, now).variation,
                "unit {u}"
            );
        }
    }
}

#[test]
fn hash_versions_2_are_independent_across_seeds() {
    // With v2, being in arm 1 of one experiment says nothing about another experiment.
    let a = experiment(2, 1.0, &[0.5, 0.5]);
    let mut cfg = a.config().clone();
    cfg.key = "another-experiment".into();
    let b = Experiment::new(cfg).unwrap_or_else(|e| panic!("{e}"));
    let now = Utc::now();
    let mut table = [0u64; 4];
    for i in 0..UNITS {
        let u = unit(i);
        let va = a.assign(&u, &NoAttributes, now).variation as usize;
        let vb = b.assign(&u, &NoAttributes, now).variation as usize;
        table[va * 2 + vb] += 1;
    }
    let p = srm_p_value(&table, &[0.25; 4]);
    assert!(p > 0.001, "joint assignment {table:?}, p = {p}");
}
