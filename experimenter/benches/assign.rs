//! Assignments per second, in-process, one thread.
//!
//! Run: `CARGO_TARGET_DIR=target/helper-experimenter cargo bench -p vigil-experimenter --bench assign`
//! Throughput is reported in elements/s, one element = one assignment.

use std::hint::black_box;

use chrono::Utc;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vigil_experimenter::hash::{hash, HashVersion};
use vigil_experimenter::{Experiment, NoAttributes};

const UNITS: usize = 4096;

fn units(prefix: &str) -> Vec<String> {
    (0..UNITS)
        .map(|i| format!("{prefix}{:08}", i * 7919))
        .collect()
}

fn experiment(extra: &str) -> Experiment {
    let json = format!(
        r#"{{"key": "ranker-v2", "hash_version": 2, "coverage": 0.9, {extra}
            "arms": [{{"name": "control", "model_version": "ranker@1.4", "weight": 0.5}},
                     {{"name": "treatment", "model_version": "ranker@2.0", "weight": 0.5}}]}}"#
    );
    match serde_json::from_str(&json) {
        Ok(e) => e,
        Err(e) => panic!("bench experiment is invalid: {e}"),
    }
}

fn bench(c: &mut Criterion) {
    let ascii = units("user-");
    let non_ascii = units("用户-é-");
    let now = Utc::now();
    let plain = experiment("");
    let targeted = experiment(
        r#""namespace": {"id": "ranking", "range": [0.0, 1.0]}, "targeting": {"country": ["DE", "FR"]},"#,
    );
    let attrs = [("country", "DE")];

    let mut g = c.benchmark_group("assign");
    g.throughput(Throughput::Elements(UNITS as u64));
    g.bench_function("hash_v2_ascii", |b| {
        b.iter(|| {
            let mut acc = 0.0;
            for u in &ascii {
                acc += hash(black_box("ranker-v2"), u, HashVersion::V2);
            }
            acc
        })
    });
    g.bench_function("experiment_ascii", |b| {
        b.iter(|| {
            let mut acc = 0i32;
            for u in &ascii {
                acc += plain.assign(black_box(u), &NoAttributes, now).variation;
            }
            acc
        })
    });
    g.bench_function("experiment_non_ascii", |b| {
        b.iter(|| {
            let mut acc = 0i32;
            for u in &non_ascii {
                acc += plain.assign(black_box(u), &NoAttributes, now).variation;
            }
            acc
        })
    });
    g.bench_function("experiment_namespace_targeting", |b| {
        b.iter(|| {
            let mut acc = 0i32;
            for u in &ascii {
                acc += targeted.assign(black_box(u), &attrs, now).variation;
            }
            acc
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
