//! Business KPIs (volume, conversion rate, revenue per unit, cost per 1k inferences) computed in
//! the store on both backends, credited to the version that served each converted inference.

mod common;

use vigil_analyzer::kpi::Kpis;
use vigil_store::rows::{InferenceRow, OutcomeRow};
use vigil_store::{queries, Store};

const T0: u32 = 1_790_006_400; // an hour boundary

fn inference(id: &str, unit: &str, version: &str, ts: u32, cost: Option<f64>) -> InferenceRow {
    InferenceRow {
        event_id: id.into(),
        ts,
        ts_ms: ts as u64 * 1000,
        model: "shop".into(),
        version: version.into(),
        unit_id: unit.into(),
        num_names: vec![],
        num_values: vec![],
        cat_names: vec![],
        cat_values: vec![],
        score: Some(0.5),
        label: None,
        latency_ms: None,
        cost,
        attr_names: vec![],
        attr_values: vec![],
        experiment: String::new(),
        variant: String::new(),
        input: String::new(),
        source: "t".into(),
        src_partition: -1,
        src_offset: 0,
        ingested_at: ts,
        ..Default::default()
    }
}

fn outcome(id: &str, inference_id: &str, name: &str, value: f64) -> OutcomeRow {
    OutcomeRow {
        event_id: id.into(),
        ts: T0 + 100,
        ts_ms: (T0 as u64 + 100) * 1000,
        unit_id: "u".into(),
        model: "shop".into(),
        inference_id: inference_id.into(),
        name: name.into(),
        value,
        source: "t".into(),
        src_partition: -1,
        src_offset: 0,
        ingested_at: T0,
    }
}

async fn exercise(store: Store) {
    store.migrate(None).await.unwrap();
    // v1: units a, b, c (a twice); a converts with 30 revenue, b converts twice (counts once).
    // v2: units d, e; nobody converts; e's inference has no cost. Next hour: one v1 inference.
    let infs = vec![
        inference("i1", "a", "v1", T0 + 1, Some(0.002)),
        inference("i2", "a", "v1", T0 + 2, Some(0.002)),
        inference("i3", "b", "v1", T0 + 3, Some(0.002)),
        inference("i4", "c", "v1", T0 + 4, Some(0.002)),
        inference("i5", "d", "v2", T0 + 5, Some(0.004)),
        inference("i6", "e", "v2", T0 + 6, None),
        inference("i7", "a", "v1", T0 + 3700, Some(0.002)),
    ];
    store.insert(&infs).await.unwrap();
    store.insert(&infs[..2]).await.unwrap(); // a replay: must not count
    let outs = vec![
        outcome("o1", "i1", "converted", 1.0),
        outcome("o2", "i1", "revenue", 30.0),
        outcome("o3", "i3", "converted", 1.0),
        outcome("o4", "i3", "converted", 1.0),
        outcome("o5", "i5", "converted", 0.0),
        outcome("o6", "i5", "revenue", 0.0),
    ];
    store.insert(&outs).await.unwrap();
    store.insert(&outs[..2]).await.unwrap(); // replayed outcomes must not double revenue

    let rows = queries::kpi_counts(
        &store,
        Some("shop"),
        3600,
        T0,
        T0 + 7200,
        "converted",
        "revenue",
    )
    .await
    .unwrap();
    let got: Vec<(u32, &str, u64, u64, u64)> = rows
        .iter()
        .map(|r| {
            (
                r.bucket,
                r.version.as_str(),
                r.inferences,
                r.units,
                r.converted_units,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (T0, "v1", 4, 3, 2),
            (T0, "v2", 2, 2, 0),
            (T0 + 3600, "v1", 1, 1, 0)
        ]
    );
    assert_eq!(rows[0].revenue, 30.0);
    assert!((rows[0].cost - 0.008).abs() < 1e-12);
    let k = Kpis::from_counts(
        rows[0].inferences,
        rows[0].units,
        rows[0].converted_units,
        rows[0].revenue,
        rows[0].cost,
    );
    assert!((k.conversion_rate - 2.0 / 3.0).abs() < 1e-12);
    assert!((k.revenue_per_unit - 10.0).abs() < 1e-12);
    assert!((k.cost_per_1k_inferences - 2.0).abs() < 1e-9);
    let v2 = Kpis::from_counts(
        rows[1].inferences,
        rows[1].units,
        rows[1].converted_units,
        rows[1].revenue,
        rows[1].cost,
    );
    assert_eq!((v2.conversion_rate, v2.revenue_per_unit), (0.0, 0.0));
    assert!((v2.cost_per_1k_inferences - 2.0).abs() < 1e-9);
    // Another model is filtered out; no model filter includes everything.
    assert!(queries::kpi_counts(
        &store,
        Some("other"),
        3600,
        T0,
        T0 + 7200,
        "converted",
        "revenue"
    )
    .await
    .unwrap()
    .is_empty());
    assert_eq!(
        queries::kpi_counts(&store, None, 7200, T0, T0 + 7200, "converted", "revenue")
            .await
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kpis_on_clickhouse_server() {
    let url = common::clickhouse_url(&common::unique("kpi"));
    exercise(Store::open(&url).await.unwrap()).await;
    // The CLI renders the same numbers.
    let out = common::vigil()
        .args([
            "--store",
            &url,
            "kpi",
            "--model",
            "shop",
            "--format",
            "json",
            "--since",
            "2026-09-21T16:00:00Z",
            "--until",
            "2026-09-21T18:00:00Z",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(lines[0]["version"], "v1");
    assert_eq!(lines[0]["volume"], 4);
    assert_eq!(lines[0]["revenue_per_unit"], 10.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kpis_on_embedded_chdb() {
    common::require_chdb();
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "chdb://{}?database={}",
        dir.path().display(),
        common::unique("kpi")
    );
    exercise(Store::open(&url).await.unwrap()).await;
}
