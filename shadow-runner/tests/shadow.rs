//! Shadow comparison on real models: a good candidate (same encoder, LinearSVC head instead of
//! LogisticRegression) and a bad one (paraphrase-MiniLM-L3-v2 embeddings fed to the head trained
//! on all-MiniLM-L6-v2 embeddings) against production (L6 + LogisticRegression).
//!
//! Needs `bash scripts/models/fetch.sh`; fails in CI without it, skips with a notice elsewhere.

mod common;

use common::{models_or_skip, queries, HEADS, L3, L6};
use vigil_shadow_runner::{compare, Device, LoadedModel, Registry, ShadowPolicy, Verdict};

const REGISTRY: &str = r#"
[[model]]
name = "intent"
version = "l6+logreg"
role = "production"
path = "all-MiniLM-L6-v2"
head = { path = "intent-heads/logistic_regression.safetensors", labels = "intent-heads/labels.json", kind = "softmax" }

[[model]]
name = "intent"
version = "l6+svc"
role = "candidate"
path = "all-MiniLM-L6-v2"
head = { path = "intent-heads/linear_svc.safetensors", labels = "intent-heads/labels.json", kind = "decision_scores" }

[[model]]
name = "intent"
version = "l3+logreg"
role = "candidate"
path = "paraphrase-MiniLM-L3-v2"
head = { path = "intent-heads/logistic_regression.safetensors", labels = "intent-heads/labels.json", kind = "softmax" }
"#;

#[test]
fn shadow_run_flags_the_bad_candidate_and_passes_the_good_one() {
    let Some(dir) = models_or_skip("shadow comparison", &[L6, L3, HEADS]) else {
        return;
    };
    let registry = Registry::from_toml(REGISTRY, &dir).expect("registry");
    let texts = queries();
    assert!(texts.len() >= 100, "need a realistic number of queries");
    let device = Device::Cpu;
    let production = LoadedModel::load(registry.production("intent").expect("production"), &device)
        .expect("load production")
        .run(&texts)
        .expect("run production");

    let policy = ShadowPolicy::default();
    for spec in registry.candidates("intent") {
        let out = LoadedModel::load(spec, &device)
            .expect("load candidate")
            .run(&texts)
            .expect("run candidate");
        let report = compare(&production, &out).expect("compare");
        let agreement = report.agreement_rate.expect("both have heads");
        let verdict = report.verdict(&policy);
        eprintln!(
            "{} vs {}: agreement {:.3}, mean cosine {:?}, top flips {:?}, biggest shift {:?}, {:?}",
            report.candidate,
            report.production,
            agreement,
            report.mean_cosine,
            report.top_flips.iter().take(3).collect::<Vec<_>>(),
            report.label_shift.first(),
            verdict
        );
        match spec.version.as_str() {
            "l6+svc" => {
                assert!(
                    agreement >= 0.8,
                    "LinearSVC should mostly agree: {agreement}"
                );
                assert_eq!(verdict, Verdict::Acceptable);
                // Same encoder: identical embeddings.
                assert!(report.mean_cosine.expect("same dims") > 0.999_999);
            }
            "l3+logreg" => {
                assert!(
                    agreement < 0.5,
                    "L3 into the L6 head should mostly disagree: {agreement}"
                );
                let top = report.label_shift.first().expect("labels moved");
                assert_eq!(top.label, "oos", "the bad candidate collapses onto `oos`");
                assert!(top.candidate_count * 2 > texts.len(), "mostly oos: {top:?}");
                assert!(matches!(verdict, Verdict::Rejected(_)));
            }
            other => panic!("unexpected candidate {other}"),
        }
    }
}
