//! The built-in LLM metrics of the experiment analysis (`ttft`, `cost`, `output_tokens`,
//! `tokens_per_s`, `error_rate`) end to end on both engines (chDB 26.x embedded, ClickHouse
//! 18.16 server): inference rows with known values per arm, exposures and `thumbs_up` feedback
//! go into the store; the LLM experiment of docs/experiments.md is analysed from it; every arm
//! mean equals Σ value ÷ requests computed here from the rows, and a treatment with a slower
//! time to first token fails its `ttft` guardrail.

mod common;

use std::collections::BTreeMap;

use vigil_experimenter::analysis::{
    AnalysisConfig, ArmSums, ExperimentReport, MetricRole, COST, ERROR_RATE, OUTPUT_TOKENS,
    TOKENS_PER_S, TTFT,
};
use vigil_experimenter::stats::Verdict;
use vigil_experimenter::warehouse::{self, TimeRange};
use vigil_experimenter::Experiment;
use vigil_store::rows::*;
use vigil_store::Store;

const T0_MS: u64 = 1_790_000_000_000;
const KEY: &str = "assistant-ft2";
const ARMS: [(&str, &str); 2] = [("control", "qwen-ft-1"), ("treatment", "qwen-ft-2")];
const UNITS_PER_ARM: usize = 200;

/// The LLM experiment as documented (the ```toml block of docs/experiments.md with its key).
fn documented_experiment() -> Experiment {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/experiments.md"))
        .expect("docs/experiments.md");
    let block = doc
        .split("```toml\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .find(|b| b.contains(&format!("key = \"{KEY}\"")))
        .expect("the LLM experiment example in docs/experiments.md");
    #[derive(serde::Deserialize)]
    struct Doc {
        experiments: Vec<Experiment>,
    }
    let mut parsed: Doc = toml::from_str(block).expect("the documented example parses");
    vigil_experimenter::validate_experiments(&parsed.experiments).expect("and validates");
    parsed.experiments.remove(0)
}

fn exposure(unit: &str, variant: &str, ts_ms: u64) -> ExposureRow {
    ExposureRow {
        event_id: format!("x-{unit}"),
        ts: (ts_ms / 1000) as u32,
        ts_ms,
        experiment: KEY.into(),
        variant: variant.into(),
        unit_id: unit.into(),
        model: "assistant".into(),
        version: String::new(),
        attr_names: vec![],
        attr_values: vec![],
        source: "test".into(),
        src_partition: -1,
        src_offset: -1,
        ingested_at: 0,
    }
}

fn feedback(unit: &str, inference_id: &str, value: f64, ts_ms: u64) -> OutcomeRow {
    OutcomeRow {
        event_id: format!("fb-{inference_id}"),
        ts: (ts_ms / 1000) as u32,
        ts_ms,
        unit_id: unit.into(),
        model: "assistant".into(),
        inference_id: inference_id.into(),
        name: "thumbs_up".into(),
        value,
        source: "test".into(),
        src_partition: -1,
        src_offset: -1,
        ingested_at: 0,
    }
}

/// Unit `i` of an arm makes 1–3 requests. Every 7th (by `i + j`) fails in both arms; the
/// treatment answers its first token 150 ms later, writes shorter answers (so it is cheaper) and
/// faster; every 3rd request is not streamed (no time to first token) and every 11th unit's
/// requests have no price (no cost).
fn request(arm: usize, i: usize, j: usize, ts_ms: u64) -> InferenceRow {
    let (variant, version) = ARMS[arm];
    let unit = format!("{variant}-{i}");
    let mut row = InferenceRow {
        event_id: format!("{unit}-r{j}"),
        ts: (ts_ms / 1000) as u32,
        ts_ms,
        model: "assistant".into(),
        version: version.into(),
        unit_id: unit,
        latency_ms: Some(400.0 + (i % 9) as f64),
        experiment: KEY.into(),
        variant: variant.into(),
        input: "hello".into(),
        source: "gateway".into(),
        src_partition: -1,
        src_offset: -1,
        ..Default::default()
    };
    if (i + j).is_multiple_of(7) {
        // Failed: no answer, neither score nor label, an `error` attribute.
        row.attr_names = vec!["error".into()];
        row.attr_values = vec!["backend answered 503".into()];
        return row;
    }
    let prompt = 100 + (i % 50) as u32;
    let completion = if arm == 0 { 40 } else { 30 } + ((i * 3 + j) % 20) as u32;
    row.label = Some("stop".into());
    row.finish_reason = "stop".into();
    row.output = "an answer".into();
    row.prompt_tokens = Some(prompt);
    row.completion_tokens = Some(completion);
    row.streamed = u8::from(j != 2);
    row.ttft_ms = (j != 2)
        .then(|| (if arm == 0 { 100.0 } else { 250.0 }) + ((i * 7 + j * 13) % 40) as f64 + 0.25);
    row.output_tps = Some((if arm == 0 { 30.0 } else { 45.0 }) + ((i + j) % 10) as f64 + 0.5);
    row.cost = (!i.is_multiple_of(11))
        .then(|| (f64::from(prompt) * 0.0002 + f64::from(completion) * 0.0006) / 1000.0);
    row
}

/// What each built-in takes from a request (`None`: the request does not count).
fn value(metric: &str, r: &InferenceRow) -> Option<f64> {
    match metric {
        TTFT => r.ttft_ms,
        COST => r.cost,
        OUTPUT_TOKENS => r.completion_tokens.map(f64::from),
        TOKENS_PER_S => r.output_tps,
        ERROR_RATE => Some(if r.score.is_none() && r.label.is_none() {
            1.0
        } else {
            0.0
        }),
        other => panic!("no value for {other}"),
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-300)
}

fn assert_sums_close(got: &ArmSums, want: &ArmSums, what: &str) {
    assert_eq!(got.n, want.n, "{what}: units");
    for (name, g, w) in [
        ("sum_y", got.sum_y, want.sum_y),
        ("sum_y2", got.sum_y2, want.sum_y2),
        ("sum_x", got.sum_x, want.sum_x),
        ("sum_x2", got.sum_x2, want.sum_x2),
        ("sum_xy", got.sum_xy, want.sum_xy),
    ] {
        assert!(close(g, w), "{what}: {name} = {g}, expected {w}");
    }
}

fn metric<'a>(
    report: &'a ExperimentReport,
    name: &str,
) -> &'a vigil_experimenter::analysis::MetricReport {
    report
        .metrics
        .iter()
        .find(|m| m.metric == name)
        .unwrap_or_else(|| panic!("metric {name} in the report"))
}

async fn exercise(store: Store) {
    store.migrate(None).await.expect("migrate");
    let experiment = documented_experiment();
    let documented = experiment.config().analysis.clone().expect("analysis");
    assert_eq!(documented.primary.metric, "thumbs_up");
    let guardrails: Vec<&str> = documented
        .guardrails
        .iter()
        .map(|g| g.metric.as_str())
        .collect();
    assert_eq!(
        guardrails,
        [TTFT, ERROR_RATE, COST, TOKENS_PER_S, OUTPUT_TOKENS]
    );
    assert!(documented
        .guardrails
        .iter()
        .all(|g| g.effective_kind() == vigil_experimenter::analysis::MetricKind::Ratio));

    // Exposures, requests and feedback of 200 units per arm (plus 3 units per arm exposed but
    // never served a request: they count as units with no requests).
    let mut exposures = Vec::new();
    let mut rows: Vec<InferenceRow> = Vec::new();
    let mut outcomes = Vec::new();
    // Per arm: the units and, per unit, the requests of the experiment.
    let mut arm_units: Vec<BTreeMap<String, Vec<usize>>> = vec![BTreeMap::new(), BTreeMap::new()];
    let mut thumbs_up_units = [0usize; 2];
    for (arm, (variant, _)) in ARMS.iter().enumerate() {
        for i in 0..UNITS_PER_ARM + 3 {
            let unit = format!("{variant}-{i}");
            let first = T0_MS + (i as u64) * 10;
            exposures.push(exposure(&unit, variant, first));
            let requests = if i < UNITS_PER_ARM { 1 + i % 3 } else { 0 };
            let mut indices = Vec::new();
            let mut up = false;
            for j in 0..requests {
                let r = request(arm, i, j, first + 1000 + j as u64 * 100);
                if r.label.is_some() && (i + j) % 4 == 0 {
                    // A rating within the conversion window: up for some arms' units, down else.
                    let v = if (i + arm) % 3 == 0 { 1.0 } else { 0.0 };
                    up |= v > 0.0;
                    outcomes.push(feedback(&r.unit_id, &r.event_id, v, r.ts_ms + 5000));
                }
                indices.push(rows.len());
                rows.push(r);
            }
            thumbs_up_units[arm] += usize::from(up);
            arm_units[arm].insert(unit, indices);
        }
    }
    // Noise that must not count: a replayed request (same event) and requests of the same
    // units outside the experiment or in another one, with absurd values.
    let mut extra = vec![rows[1].clone()];
    for (k, experiment) in ["", "other-exp"].into_iter().enumerate() {
        let mut r = request(0, 1, 0, T0_MS + 9000);
        r.event_id = format!("noise-{k}");
        r.experiment = experiment.into();
        r.variant = if experiment.is_empty() {
            String::new()
        } else {
            "control".into()
        };
        r.ttft_ms = Some(1e6);
        r.cost = Some(1e3);
        r.completion_tokens = Some(1_000_000);
        r.output_tps = Some(1e6);
        r.label = None;
        extra.push(r);
    }
    store.insert(&exposures).await.expect("exposures");
    store.insert(&rows).await.expect("inferences");
    store.insert(&extra).await.expect("noise");
    store.insert(&outcomes).await.expect("feedback");

    // The sums each built-in must produce, computed from the rows.
    let expected = |name: &str, arm: usize| -> ArmSums {
        let mut s = ArmSums::default();
        for indices in arm_units[arm].values() {
            let (mut y, mut x) = (0.0, 0.0);
            for &k in indices {
                if let Some(v) = value(name, &rows[k]) {
                    y += v;
                    x += 1.0;
                }
            }
            s.n += 1;
            s.sum_y += y;
            s.sum_y2 += y * y;
            s.sum_x += x;
            s.sum_x2 += x * x;
            s.sum_xy += x * y;
        }
        s
    };
    // The arm's mean: Σ value ÷ requests with a value.
    let mean = |name: &str, arm: usize| -> f64 {
        let values: Vec<f64> = arm_units[arm]
            .values()
            .flatten()
            .filter_map(|&k| value(name, &rows[k]))
            .collect();
        values.iter().sum::<f64>() / values.len() as f64
    };
    // The data is what the test says it is: slower first tokens, same error rate, cheaper,
    // shorter and faster answers in the treatment; some requests without ttft or cost.
    assert!(mean(TTFT, 1) > mean(TTFT, 0) + 140.0);
    assert_eq!(mean(ERROR_RATE, 0), mean(ERROR_RATE, 1));
    assert!(mean(ERROR_RATE, 0) > 0.1 && mean(ERROR_RATE, 0) < 0.2);
    assert!(mean(COST, 1) < mean(COST, 0));
    assert!(mean(OUTPUT_TOKENS, 1) < mean(OUTPUT_TOKENS, 0));
    assert!(mean(TOKENS_PER_S, 1) > mean(TOKENS_PER_S, 0));
    for name in [TTFT, COST] {
        assert!(expected(name, 0).sum_x < expected(ERROR_RATE, 0).sum_x);
    }

    // The per-arm sums from the store.
    let config = AnalysisConfig {
        min_units_per_arm: 100,
        ..documented.clone()
    };
    for g in &config.guardrails {
        let got = warehouse::load_metric(&store, KEY, g, &config, false, TimeRange::default())
            .await
            .expect("load metric");
        assert_eq!(got.arms.len(), 2, "{}", g.metric);
        for (arm, (variant, _)) in ARMS.iter().enumerate() {
            assert_sums_close(
                &got.arms[*variant],
                &expected(&g.metric, arm),
                &format!("{} / {variant}", g.metric),
            );
        }
    }

    // The analysis of the documented experiment (with a sample size this test can reach).
    let report = warehouse::analyze_experiment(
        &store,
        experiment.config(),
        Some(&config),
        TimeRange::default(),
    )
    .await
    .expect("analysis");
    assert_eq!(
        report.arms.iter().map(|a| a.units).collect::<Vec<_>>(),
        [UNITS_PER_ARM as u64 + 3; 2]
    );
    assert!(!report.srm_mismatch);
    let primary = &report.metrics[0];
    assert_eq!(
        (primary.metric.as_str(), primary.role),
        ("thumbs_up", MetricRole::Primary)
    );
    let units = (UNITS_PER_ARM + 3) as f64;
    assert!(close(
        primary.comparisons["treatment"].control_mean,
        thumbs_up_units[0] as f64 / units
    ));
    assert!(close(
        primary.comparisons["treatment"].mean,
        thumbs_up_units[1] as f64 / units
    ));
    for name in [TTFT, ERROR_RATE, COST, OUTPUT_TOKENS, TOKENS_PER_S] {
        let m = metric(&report, name);
        assert_eq!(m.role, MetricRole::Guardrail);
        let c = &m.comparisons["treatment"];
        assert!(
            close(c.control_mean, mean(name, 0)),
            "{name}: control mean {} != {}",
            c.control_mean,
            mean(name, 0)
        );
        assert!(
            close(c.mean, mean(name, 1)),
            "{name}: treatment mean {} != {}",
            c.mean,
            mean(name, 1)
        );
        assert_eq!(c.units, UNITS_PER_ARM as u64 + 3);
    }

    // The treatment's first token comes ~150 ms later: the ttft guardrail fails and the arm is
    // rolled back; nothing else is harm (same errors, cheaper, faster, shorter answers, which
    // this experiment's `output_tokens` guardrail counts as fine).
    let d = &report.decisions["treatment"];
    let reasons = d.reasons.join("\n");
    assert_eq!(d.verdict, Verdict::Rollback, "{reasons}");
    assert!(reasons.contains("guardrail ttft got worse"), "{reasons}");
    for other in [ERROR_RATE, COST, OUTPUT_TOKENS, TOKENS_PER_S] {
        assert!(
            !reasons.contains(&format!("guardrail {other} ")),
            "{reasons}"
        );
        assert!(
            metric(&report, other).harm_p_values["treatment"] > config.alpha,
            "{other}: {:?}",
            metric(&report, other).harm_p_values
        );
    }
    assert!(metric(&report, TTFT).harm_p_values["treatment"] < 1e-6);
    assert!(report.winner.is_none());

    // With `output_tokens`' default direction (higher is not worse), shorter answers are harm.
    let mut default_direction = config.clone();
    for g in &mut default_direction.guardrails {
        g.higher_is_worse = None;
    }
    let report = warehouse::analyze_experiment(
        &store,
        experiment.config(),
        Some(&default_direction),
        TimeRange::default(),
    )
    .await
    .expect("analysis");
    let reasons = report.decisions["treatment"].reasons.join("\n");
    assert!(reasons.contains("guardrail ttft got worse"), "{reasons}");
    assert!(
        reasons.contains("guardrail output_tokens got worse"),
        "{reasons}"
    );
    assert!(!reasons.contains("guardrail tokens_per_s"), "{reasons}");
    assert!(!reasons.contains("guardrail error_rate"), "{reasons}");

    // Two more failed requests for every other treatment unit: the error-rate guardrail fails
    // too, at exactly the new rate.
    let failures: Vec<InferenceRow> = (0..UNITS_PER_ARM)
        .step_by(2)
        .flat_map(|i| {
            (0..2).map(move |k| InferenceRow {
                event_id: format!("treatment-{i}-failed-{k}"),
                // A `j` with (i + j) % 7 == 0: a failed request.
                ..request(1, i, 7 - i % 7, T0_MS + 20_000 + k)
            })
        })
        .collect();
    store.insert(&failures).await.expect("failures");
    let treatment_requests: Vec<&InferenceRow> = arm_units[1]
        .values()
        .flatten()
        .map(|&k| &rows[k])
        .chain(&failures)
        .collect();
    let failed = treatment_requests
        .iter()
        .filter(|r| r.score.is_none() && r.label.is_none())
        .count();
    let error_rate = failed as f64 / treatment_requests.len() as f64;
    assert!(error_rate > 0.3, "{error_rate}");
    let report = warehouse::analyze_experiment(
        &store,
        experiment.config(),
        Some(&config),
        TimeRange::default(),
    )
    .await
    .expect("analysis");
    let reasons = report.decisions["treatment"].reasons.join("\n");
    assert!(
        reasons.contains("guardrail error_rate got worse"),
        "{reasons}"
    );
    assert!(reasons.contains("guardrail ttft got worse"), "{reasons}");
    let c = &metric(&report, ERROR_RATE).comparisons["treatment"];
    assert!(close(c.mean, error_rate), "{} != {error_rate}", c.mean);
    assert!(close(c.control_mean, mean(ERROR_RATE, 0)));
    // Failed requests have no time to first token: the ttft means do not move.
    assert!(close(
        metric(&report, TTFT).comparisons["treatment"].mean,
        mean(TTFT, 1)
    ));
}

#[tokio::test]
async fn clickhouse_server_backend() {
    common::require_clickhouse();
    let db = common::unique("llm_metrics");
    let store = Store::open(&common::clickhouse_url(&db))
        .await
        .expect("open");
    exercise(store).await;
}

#[tokio::test]
async fn embedded_chdb_backend() {
    common::require_chdb();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!("chdb://{}", dir.path().join("d").display()))
        .await
        .expect("open");
    exercise(store).await;
}
