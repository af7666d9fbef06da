//! The experiment data path on both engines (ClickHouse 18.16 server and chDB 26.x): per-arm
//! sums for mean, proportion, ratio, CUPED and latency metrics, checked against sums computed
//! by hand from the inserted rows — first exposure wins, the conversion window and the
//! pre-period are respected, replayed events count once — and the deployments audit trail.

mod common;

use vigil_experimenter::analysis::{AnalysisConfig, ArmSums, MetricKind, MetricSpec};
use vigil_experimenter::promotion;
use vigil_experimenter::warehouse::{self, TimeRange};
use vigil_store::rows::*;
use vigil_store::Store;

const T0_MS: u64 = 1_790_000_000_000;
const HOUR_MS: u64 = 3_600_000;

fn exposure(id: &str, unit: &str, variant: &str, ts_ms: u64) -> ExposureRow {
    ExposureRow {
        event_id: id.into(),
        ts: (ts_ms / 1000) as u32,
        ts_ms,
        experiment: "exp".into(),
        variant: variant.into(),
        unit_id: unit.into(),
        model: "m".into(),
        version: String::new(),
        attr_names: vec![],
        attr_values: vec![],
        source: "test".into(),
        src_partition: -1,
        src_offset: -1,
        ingested_at: 0,
    }
}

fn outcome(id: &str, unit: &str, name: &str, value: f64, ts_ms: u64) -> OutcomeRow {
    OutcomeRow {
        event_id: id.into(),
        ts: (ts_ms / 1000) as u32,
        ts_ms,
        unit_id: unit.into(),
        model: "m".into(),
        inference_id: String::new(),
        name: name.into(),
        value,
        source: "test".into(),
        src_partition: -1,
        src_offset: -1,
        ingested_at: 0,
    }
}

fn spec(metric: &str, kind: MetricKind, denominator: Option<&str>) -> MetricSpec {
    MetricSpec {
        metric: metric.into(),
        kind,
        denominator: denominator.map(str::to_owned),
        higher_is_better: None,
        higher_is_worse: None,
        label_outcome: None,
    }
}

async fn exercise(store: Store) {
    store.migrate(None).await.expect("migrate");
    // Units: a1, a2 in control; b1 in treatment; b1 later also saw control (first wins);
    // c1 exposed in treatment but with no outcome at all.
    store
        .insert(&[
            exposure("e1", "a1", "control", T0_MS),
            exposure("e2", "a2", "control", T0_MS + 1000),
            exposure("e3", "b1", "treatment", T0_MS + 2000),
            exposure("e4", "b1", "control", T0_MS + 5000),
            exposure("e5", "c1", "treatment", T0_MS + 3000),
            exposure("e1", "a1", "control", T0_MS), // replay of e1
        ])
        .await
        .expect("exposures");
    store
        .insert(&[
            // a1: 5 in window, 7 after the 72 h window, 2 in the pre-period (−1 h).
            outcome("o1", "a1", "revenue", 5.0, T0_MS + HOUR_MS),
            outcome("o2", "a1", "revenue", 7.0, T0_MS + 73 * HOUR_MS),
            outcome("o3", "a1", "revenue", 2.0, T0_MS - HOUR_MS),
            outcome("o1", "a1", "revenue", 5.0, T0_MS + HOUR_MS), // replay of o1
            // a2: 0-valued revenue (no conversion), 3 sessions.
            outcome("o4", "a2", "revenue", 0.0, T0_MS + 2000),
            outcome("o5", "a2", "sessions", 3.0, T0_MS + 2000),
            // b1: two purchases in window, 2 sessions; one pre-period purchase.
            outcome("o6", "b1", "revenue", 4.0, T0_MS + 3000),
            outcome("o7", "b1", "revenue", 6.0, T0_MS + 4000),
            outcome("o8", "b1", "sessions", 2.0, T0_MS + 4000),
            outcome("o9", "b1", "revenue", 1.0, T0_MS - 10 * HOUR_MS),
            // Someone never exposed: ignored.
            outcome("o10", "zz", "revenue", 100.0, T0_MS + 3000),
        ])
        .await
        .expect("outcomes");

    let config = AnalysisConfig {
        cuped_pre_period_hours: 24,
        ..Default::default()
    };
    let load = |s: MetricSpec, cuped: bool| {
        let store = store.clone();
        let config = config.clone();
        async move {
            warehouse::load_metric(&store, "exp", &s, &config, cuped, TimeRange::default())
                .await
                .expect("load metric")
        }
    };

    // Mean revenue with the CUPED covariate: control y = [5, 0], x = [2, 0];
    // treatment y = [10, 0], x = [1, 0].
    let m = load(spec("revenue", MetricKind::Mean, None), true).await;
    assert_eq!(
        m.arms["control"],
        ArmSums {
            n: 2,
            sum_y: 5.0,
            sum_y2: 25.0,
            sum_x: 2.0,
            sum_x2: 4.0,
            sum_xy: 10.0
        }
    );
    assert_eq!(
        m.arms["treatment"],
        ArmSums {
            n: 2,
            sum_y: 10.0,
            sum_y2: 100.0,
            sum_x: 1.0,
            sum_x2: 1.0,
            sum_xy: 10.0
        }
    );

    // Conversion: a positive revenue in the window. Control [1, 0], treatment [1, 0].
    let p = load(spec("revenue", MetricKind::Proportion, None), false).await;
    assert_eq!((p.arms["control"].n, p.arms["control"].sum_y), (2, 1.0));
    assert_eq!((p.arms["treatment"].n, p.arms["treatment"].sum_y), (2, 1.0));
    assert_eq!(p.arms["control"].sum_x, 0.0, "no covariate without CUPED");

    // Revenue per session (ratio): control y = [5, 0], d = [0, 3]; treatment y = [10, 0], d = [2, 0].
    let r = load(spec("revenue", MetricKind::Ratio, Some("sessions")), false).await;
    assert_eq!(
        r.arms["control"],
        ArmSums {
            n: 2,
            sum_y: 5.0,
            sum_y2: 25.0,
            sum_x: 3.0,
            sum_x2: 9.0,
            sum_xy: 0.0
        }
    );
    assert_eq!(
        (r.arms["treatment"].sum_x, r.arms["treatment"].sum_xy),
        (2.0, 20.0)
    );

    // A time range on exposures: only units first exposed from T0 + 1.5 s on.
    let since = TimeRange {
        since: Some(((T0_MS + 2000) / 1000) as u32),
        until: None,
    };
    let late = warehouse::load_metric(
        &store,
        "exp",
        &spec("revenue", MetricKind::Mean, None),
        &config,
        false,
        since,
    )
    .await
    .expect("range");
    assert!(!late.arms.contains_key("control") || late.arms["control"].n <= 1);

    // The whole analysis runs on these sums (tiny samples: a call is not made).
    let exp: vigil_experimenter::ExperimentConfig = serde_json::from_str(
        r#"{"key":"exp","model":"m","arms":[{"name":"control","model_version":"m@1"},{"name":"treatment","model_version":"m@2"}]}"#,
    )
    .unwrap();
    let report = warehouse::analyze_experiment(
        &store,
        &exp,
        Some(&AnalysisConfig {
            primary: spec("revenue", MetricKind::Mean, None),
            ..Default::default()
        }),
        TimeRange::default(),
    )
    .await
    .expect("analysis");
    assert_eq!(report.arms[0].units, 2);
    assert_eq!(
        report.decisions["treatment"].verdict,
        vigil_experimenter::stats::Verdict::KeepRunning
    );

    // The ramp guardrail's per-request latency moments (a Nullable column summed).
    let mut inf: Vec<InferenceRow> = Vec::new();
    for (i, (version, latency)) in [
        ("m@2", Some(10.0)),
        ("m@2", Some(20.0)),
        ("m@2", None),
        ("m@1", Some(5.0)),
    ]
    .into_iter()
    .enumerate()
    {
        inf.push(InferenceRow {
            event_id: format!("i{i}"),
            ts: (T0_MS / 1000) as u32,
            ts_ms: T0_MS + i as u64,
            model: "m".into(),
            version: version.into(),
            unit_id: "a1".into(),
            num_names: vec![],
            num_values: vec![],
            cat_names: vec![],
            cat_values: vec![],
            score: None,
            // Predicted labels: i0 "1", i1 "0", i2 none, i3 "1".
            label: ["1", "0", "", "1"][i]
                .parse::<u8>()
                .ok()
                .map(|l| l.to_string()),
            latency_ms: latency,
            cost: None,
            attr_names: vec![],
            attr_values: vec![],
            experiment: "exp".into(),
            variant: "control".into(),
            input: String::new(),
            source: "test".into(),
            src_partition: -1,
            src_offset: -1,
            ingested_at: 0,
            ..Default::default()
        });
    }
    store.insert(&inf).await.expect("inferences");
    let lat = vigil_experimenter::gateway::ramp::latency_since(&store, "m", "m@2", T0_MS)
        .await
        .expect("latency");
    assert_eq!((lat.n, lat.sum, lat.sum_squares), (2, 30.0, 500.0));
    // The experiment's latency guardrail (Σ latency / requests per unit).
    let l = load(spec("latency", MetricKind::Mean, None), false).await;
    assert_eq!(
        (l.arms["control"].sum_y, l.arms["control"].sum_x),
        (35.0, 3.0)
    );

    // Accuracy on labelled outcomes: truth 1 for i0 (right), i1 (wrong), i3 (right), 0 for i2
    // (no predicted label: wrong); one replayed label counts once.
    let labels: Vec<OutcomeRow> = [
        ("i0", 1.0),
        ("i1", 1.0),
        ("i3", 1.0),
        ("i2", 0.0),
        ("i0", 1.0),
    ]
    .iter()
    .map(|(inference, truth)| {
        let mut o = outcome(
            &format!("lab-{inference}"),
            "a1",
            "label",
            *truth,
            T0_MS + 5000,
        );
        o.inference_id = inference.to_string();
        o
    })
    .collect();
    store.insert(&labels).await.expect("labels");
    let acc = load(spec("accuracy", MetricKind::Mean, None), false).await;
    assert_eq!(
        (acc.arms["control"].sum_y, acc.arms["control"].sum_x),
        (2.0, 4.0)
    );
    assert_eq!(acc.arms["treatment"].sum_x, 0.0);

    // Deployments: written, read back in order, replayed.
    let row = |id: &str, ts_ms: u64, action: &str, from: &str, to: &str| DeploymentRow {
        id: id.into(),
        ts: (ts_ms / 1000) as u32,
        ts_ms,
        model: "m".into(),
        action: action.into(),
        experiment: "exp".into(),
        arm: "treatment".into(),
        from_version: from.into(),
        to_version: to.into(),
        rollout_share: 1.0,
        actor: "t".into(),
        reason: "r'\"\\".into(),
        evidence: "{}".into(),
        mlflow: String::new(),
    };
    store
        .insert(&[
            row("d2", T0_MS + 10, "rollback", "m@2", "m@1"),
            row("d1", T0_MS, "promote", "m@1", "m@2"),
        ])
        .await
        .expect("deployments");
    let rows = promotion::load_rows(&store, Some("m")).await.expect("rows");
    assert_eq!(
        rows.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["d1", "d2"]
    );
    assert_eq!(rows[0].reason, "r'\"\\");
    let state = promotion::load_state(&store).await.expect("state");
    assert_eq!(state.production("m"), Some("m@1"));
    assert!(state.ended_experiments.contains("exp"));
}

#[tokio::test]
async fn clickhouse_server_backend() {
    common::require_clickhouse();
    let db = common::unique("exp_store");
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
