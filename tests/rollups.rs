//! The dashboards' rollups against real engines (ClickHouse 18.16 and chDB 26.x): every
//! rollup-backed query (per-minute counts, fairness, presence, the ROI page's per-hour unit
//! sums, the drift page's per-minute samples) gives the same numbers as the same query over
//! the raw table alone, with duplicate event ids (producer retries, replays) inserted before
//! and after a compaction, late events and outcomes, the open hour extended by a later pass,
//! and the range's edges inside minutes.

mod common;

use vigil_dashboards::data::{self, Range};
use vigil_dashboards::RoiConfig;
use vigil_store::queries::{TimeBucket, VersionCount};
use vigil_store::rollup::{self, CompactOptions};
use vigil_store::rows::{InferenceRow, OutcomeRow};
use vigil_store::{queries, Store};

fn now() -> u32 {
    chrono::Utc::now().timestamp() as u32
}

fn inference(i: u32, ts: u32, ingested_at: u32) -> InferenceRow {
    let version = if i.is_multiple_of(3) { "v2" } else { "v1" };
    InferenceRow {
        event_id: format!("e{i}"),
        ts,
        ts_ms: u64::from(ts) * 1000 + u64::from(i % 1000),
        model: "churn".into(),
        version: version.into(),
        unit_id: format!("u{}", i % 17),
        num_names: vec!["age".into()],
        num_values: vec![f64::from(20 + i % 50)],
        cat_names: vec!["channel".into()],
        cat_values: vec![["web", "app", "store", "partner"][(i % 4) as usize].into()],
        // Some events without a score, a label or a latency: the means skip them.
        score: (!i.is_multiple_of(7)).then(|| f64::from(i % 100) / 100.0),
        label: i.is_multiple_of(5).then(|| "positive".to_string()),
        latency_ms: (!i.is_multiple_of(11)).then(|| 3.0 + f64::from((i * 37) % 400) * 0.731),
        cost: i.is_multiple_of(2).then_some(0.0004),
        attr_names: vec!["region".into(), "plan".into()],
        attr_values: vec![
            ["eu", "us", "apac"][(i % 3) as usize].into(),
            ["free", "pro"][(i % 2) as usize].into(),
        ],
        experiment: String::new(),
        variant: String::new(),
        input: String::new(),
        source: "test".into(),
        src_partition: 0,
        src_offset: i64::from(i),
        ingested_at,
        // Every other event is a generation (the LLM page's rollup): TTFT, tokens/s, tokens,
        // a finish reason; some streamed, some with estimated or missing token counts.
        ttft_ms: i
            .is_multiple_of(2)
            .then(|| 20.0 + f64::from((i * 13) % 300) * 0.9),
        output_tps: i.is_multiple_of(2).then(|| 10.0 + f64::from(i % 40)),
        prompt_tokens: i.is_multiple_of(2).then_some(10 + i % 30),
        completion_tokens: i.is_multiple_of(4).then_some(5 + i % 50),
        tokens_estimated: u8::from(i.is_multiple_of(6)),
        finish_reason: match i % 4 {
            0 => "stop".into(),
            2 => "length".into(),
            _ => String::new(),
        },
        streamed: u8::from(i.is_multiple_of(8)),
        ..Default::default()
    }
}

fn outcome(i: u32, ts: u32, ingested_at: u32) -> OutcomeRow {
    OutcomeRow {
        event_id: format!("o{i}"),
        ts,
        ts_ms: u64::from(ts) * 1000,
        unit_id: format!("u{}", i % 17),
        model: "churn".into(),
        inference_id: format!("e{i}"),
        name: "churned".into(),
        value: f64::from(i % 2),
        source: "test".into(),
        src_partition: 0,
        src_offset: i64::from(i),
        ingested_at,
    }
}

/// A row's key, events, mean score and mean latency.
type Means = (String, u64, f64, f64);

/// Same keys and counts; means equal up to floating-point summation order.
fn same_means(what: &str, a: &[Means], b: &[Means]) {
    let close = |x: f64, y: f64| (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0);
    assert_eq!(a.len(), b.len(), "{what}: {a:?} vs {b:?}");
    for (x, y) in a.iter().zip(b) {
        assert_eq!((&x.0, x.1), (&y.0, y.1), "{what}");
        assert!(close(x.2, y.2) && close(x.3, y.3), "{what}: {x:?} vs {y:?}");
    }
}

/// Every rollup-backed query with the watermark equals the raw-only query (watermark 0).
async fn assert_same(store: &Store, r: Range, what: &str) {
    let raw = Range {
        rolled_until: 0,
        ..r
    };
    let versions = |v: Vec<VersionCount>| -> Vec<Means> {
        v.into_iter()
            .map(|x| {
                // Failed inferences (neither score nor label: every 7th event not also a
                // 5th) are counted the same way by all three queries.
                assert!(x.failed > 0, "{x:?}");
                let key = format!(
                    "{}/{} last {} failed {}",
                    x.model, x.version, x.last_ts, x.failed
                );
                (key, x.events, x.mean_score, x.mean_latency_ms)
            })
            .collect()
    };
    let rolled = versions(data::versions(store, r).await.expect("versions"));
    same_means(
        what,
        &rolled,
        &versions(data::versions(store, raw).await.expect("raw")),
    );
    // The rollup-free query is the one the CLI and earlier pages use.
    let reference = queries::counts_by_version(store, r.since, r.until).await;
    same_means(
        what,
        &rolled,
        &versions(reference.expect("counts_by_version")),
    );

    let traffic = |v: Vec<TimeBucket>| -> Vec<Means> {
        v.into_iter()
            .map(|x| {
                let key = format!("{} {}/{}", x.bucket, x.model, x.version);
                (key, x.events, x.mean_score, x.mean_latency_ms)
            })
            .collect()
    };
    let rolled = traffic(data::traffic(store, "churn", r).await.expect("traffic"));
    let raw_traffic = data::traffic(store, "churn", raw).await.expect("raw");
    same_means(what, &rolled, &traffic(raw_traffic));
    let reference = queries::time_buckets(store, "churn", r.bucket, r.since, r.until).await;
    same_means(what, &rolled, &traffic(reference.expect("time_buckets")));

    let (a, b) = (
        data::latency_buckets(store, "churn", r)
            .await
            .expect("latency"),
        data::latency_buckets(store, "churn", raw)
            .await
            .expect("raw latency"),
    );
    assert!(!a.is_empty(), "{what}: latency buckets");
    assert_eq!(json(&a), json(&b), "{what}: latency");
    // The LLM page: version sums and TTFT/TPS quantiles, answers, TTFT chart.
    let (a, b) = (
        data::llm::version_stats(store, r)
            .await
            .expect("llm versions"),
        data::llm::version_stats(store, raw)
            .await
            .expect("raw llm versions"),
    );
    assert!(
        a.len() == 2
            && a.iter()
                .all(|v| v.generative > 0 && v.ttft_n > 0 && v.tps_p50 > 0.0),
        "{what}: llm versions {a:?}"
    );
    let close = |x: f64, y: f64| (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0);
    for (x, y) in a.iter().zip(&b) {
        assert!(
            close(x.cost_sum, y.cost_sum),
            "{what}: llm cost {x:?} vs {y:?}"
        );
        let exact = |v: &data::llm::VersionStats| data::llm::VersionStats {
            cost_sum: 0.0,
            ..v.clone()
        };
        assert_eq!(exact(x), exact(y), "{what}: llm versions");
    }
    let requests: u64 = a.iter().map(|v| v.requests).sum();
    assert_eq!(
        requests,
        raw_count(store, r.since, r.until).await,
        "{what}: llm requests"
    );
    let (a, b) = (
        data::llm::finish_reasons(store, "churn", r)
            .await
            .expect("reasons"),
        data::llm::finish_reasons(store, "churn", raw)
            .await
            .expect("raw reasons"),
    );
    assert!(
        ["stop", "length", "(failed)", "positive"]
            .iter()
            .all(|w| a.iter().any(|x| x.reason == *w)),
        "{what}: reasons {a:?}"
    );
    assert_eq!(json(&a), json(&b), "{what}: finish reasons");
    let (a, b) = (
        data::llm::ttft_buckets(store, "churn", r)
            .await
            .expect("ttft"),
        data::llm::ttft_buckets(store, "churn", raw)
            .await
            .expect("raw ttft"),
    );
    assert!(!a.is_empty(), "{what}: ttft buckets");
    assert_eq!(json(&a), json(&b), "{what}: ttft buckets");
    for attr in ["region", "plan"] {
        let (a, b) = (
            data::fairness_buckets(store, "churn", attr, r)
                .await
                .expect("fairness"),
            data::fairness_buckets(store, "churn", attr, raw)
                .await
                .expect("raw fairness"),
        );
        assert!(!a.is_empty(), "{what}: fairness buckets");
        assert_eq!(json(&a), json(&b), "{what}: fairness by {attr}");
    }
    let (a, b) = (
        data::presence(store, "churn", r).await.expect("presence"),
        data::presence(store, "churn", raw)
            .await
            .expect("raw presence"),
    );
    assert!(!a.is_empty(), "{what}: presence");
    assert_eq!(json(&a), json(&b), "{what}: presence");
    assert_same_roi(store, r, what).await;

    // Distributions from the per-minute samples: the whole sample (weights 1 at three events a
    // minute) and one event a minute (weights = the minute's events) pick the same events
    // from the rollups as from the raw table, and the estimates add up to each period's events
    // (a minute's sample stands for the whole minute, so exactly only when the split is on a
    // minute).
    let split = (r.since + 3600) / 60 * 60;
    for budget in [data::DISTRIBUTION_BUDGET, 100] {
        for (column, numerical) in [("age", true), ("channel", false)] {
            let (a, b) = (
                data::distribution(store, "churn", column, numerical, r, split, budget)
                    .await
                    .expect("distribution"),
                data::distribution(store, "churn", column, numerical, raw, split, budget)
                    .await
                    .expect("raw distribution"),
            );
            assert!(a.len() >= 4, "{what}: {column} bins {a:?}");
            assert_eq!(
                json(&a),
                json(&b),
                "{what}: {column} distribution, budget {budget}"
            );
            let total =
                |cur: u8| -> u64 { a.iter().filter(|x| x.current == cur).map(|x| x.n).sum() };
            assert_eq!(
                (total(0), total(1)),
                (
                    raw_count(store, r.since, split).await,
                    raw_count(store, split, r.until).await
                ),
                "{what}: {column} estimates, budget {budget}"
            );
            let sampled: u64 = a.iter().map(|x| x.sampled).sum();
            if budget == 100 {
                assert!(sampled < total(0) + total(1), "{what}: sampled {sampled}");
            }
        }
    }
    let (a, b) = (
        data::extent(store, r.since, r.until, r.rolled_until)
            .await
            .expect("extent"),
        data::extent(store, r.since, r.until, 0)
            .await
            .expect("raw extent"),
    );
    assert_eq!(
        (a.lo, a.hi, a.n > 0),
        (b.lo, b.hi, b.n > 0),
        "{what}: extent"
    );
}

/// Each churn costs 120.
/// ROI per unit from the daily and hourly unit rollups + the raw tail equals ROI from the raw
/// tables alone, and counts every inference from the range's first whole hour (or day) on
/// once; returns the buckets.
async fn assert_same_roi(store: &Store, r: Range, what: &str) -> Vec<data::RoiBucket> {
    let raw = Range {
        rolled_until: 0,
        ..r
    };
    let roi = churn_roi();
    let (a, b) = (
        data::roi_buckets(store, &roi, r).await.expect("roi"),
        data::roi_buckets(store, &roi, raw).await.expect("raw roi"),
    );
    assert!(!a.is_empty(), "{what}: roi buckets");
    let key = |x: &data::RoiBucket| {
        (
            x.model.clone(),
            x.bucket,
            x.version.clone(),
            x.units,
            x.inferences,
            x.costed,
        )
    };
    assert_eq!(
        a.iter().map(key).collect::<Vec<_>>(),
        b.iter().map(key).collect::<Vec<_>>(),
        "{what}: roi"
    );
    let close = |x: f64, y: f64| (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0);
    for (x, y) in a.iter().zip(&b) {
        assert!(
            close(x.value_sum, y.value_sum)
                && close(x.value_sumsq, y.value_sumsq)
                && close(x.cost, y.cost),
            "{what}: roi {x:?} vs {y:?}"
        );
    }
    let inferences: u64 = a.iter().map(|x| x.inferences).sum();
    assert_eq!(
        inferences,
        raw_count(store, data::roi_since(r), r.until).await,
        "{what}: roi inferences"
    );
    a
}

fn churn_roi() -> RoiConfig {
    RoiConfig {
        value_per_outcome: [("churned".to_string(), -120.0)].into(),
        ..RoiConfig::default()
    }
}

#[derive(clickhouse::Row, serde::Deserialize)]
struct N {
    n: u64,
}

/// Inferences of `churn` in `[since, until)`, each event id once.
async fn raw_count(store: &Store, since: u32, until: u32) -> u64 {
    store
        .fetch::<N>(&format!(
            "SELECT toUInt64(count()) AS n FROM {} FINAL
             WHERE model = 'churn' AND ts >= toDateTime({since}) AND ts < toDateTime({until})",
            store.table("inference_events")
        ))
        .await
        .expect("count")[0]
        .n
}

/// The dashboards' row types as JSON, to compare whole result sets.
/// One compactor pass with the default options, as if run at `at`.
async fn pass(store: &Store, at: u32) -> rollup::CompactReport {
    rollup::compact(store, &CompactOptions::default(), at)
        .await
        .expect("compact")
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("serialisable rows")
}

async fn exercise(store: Store) {
    store.migrate(None).await.expect("migrate");
    // Half past an hour (on a minute), so the tail below lands in an hour the compactor has
    // already started: its unit rows get extended rather than recomputed.
    let t = now() / 3600 * 3600 - 1800;
    // Two hours of closed minutes, an event every 20 s, plus a tail in the current minute.
    let start = t - 2 * 3600 - 600;
    let mut rows: Vec<InferenceRow> = (0..360).map(|i| inference(i, start + i * 20, t)).collect();
    rows.extend((360..370).map(|i| inference(i, t - 5, t)));
    store.insert(&rows).await.expect("insert");
    // Producer retries: the same events again, in another part.
    store.insert(&rows[100..140]).await.expect("duplicates");
    let outcomes: Vec<OutcomeRow> = (0..360)
        .step_by(4)
        .map(|i| outcome(i, start + i * 20 + 600, t))
        .collect();
    store.insert(&outcomes).await.expect("outcomes");

    let report = rollup::compact(&store, &CompactOptions::default(), t)
        .await
        .expect("compact");
    assert!(report.dirty_minutes >= 119, "{report:?}");
    let wm = data::rolled_until(&store).await.expect("watermark");
    assert_eq!(wm, report.compacted_until);
    assert!(wm > start + 359 * 20 && wm <= t, "watermark {wm}");
    // The rollups hold every compacted event once (so the reads below do use them).
    let n = |sql: String| {
        let store = store.clone();
        async move { store.fetch::<N>(&sql).await.expect("count")[0].n }
    };
    let rolled = n(format!(
        "SELECT toUInt64(sum(events)) AS n FROM {} FINAL",
        store.table("inference_rollup_1m")
    ))
    .await;
    let raw = n(format!(
        "SELECT toUInt64(count()) AS n FROM {} FINAL WHERE ts < toDateTime({wm})",
        store.table("inference_events")
    ))
    .await;
    assert_eq!((rolled, raw), (360, 360));
    // The LLM rollup holds the generations (every other event) of the compacted minutes.
    let generations = n(format!(
        "SELECT toUInt64(sum(generative)) AS n FROM {} FINAL",
        store.table("inference_llm_1m")
    ))
    .await;
    assert_eq!(generations, 180);
    // Three events a minute: the samples hold every compacted event; the unit rollups hold
    // every (version, unit, hour) with its inferences.
    let sampled = n(format!(
        "SELECT toUInt64(count()) AS n FROM {} FINAL",
        store.table("inference_sample_rank_1m")
    ))
    .await;
    let units = n(format!(
        "SELECT toUInt64(sum(inferences)) AS n FROM {} FINAL",
        store.table("inference_units_1h")
    ))
    .await;
    assert_eq!((sampled, units), (360, 360));

    // Edges inside minutes, chart buckets of 1, 5 and 15 minutes (and 20 s: raw only).
    for bucket in [60, 300, 900, 20] {
        let r = Range {
            since: start + 7,
            until: t + 60,
            bucket,
            rolled_until: wm,
        };
        assert_same(&store, r, &format!("after compaction, bucket {bucket}")).await;
    }

    // A replay after a crash re-inserts already rolled-up rows: nothing changes, even before
    // the next pass.
    store.insert(&rows[0..200]).await.expect("replay");
    let r = Range {
        since: start + 7,
        until: t + 60,
        bucket: 300,
        rolled_until: wm,
    };
    assert_same(&store, r, "replay before the next pass").await;

    // Late events and outcomes for compacted minutes are picked up by the next pass (their
    // `ingested_at` is after the previous pass), duplicates still count once.
    let late: Vec<InferenceRow> = (400..420)
        .map(|i| inference(i, start + 1800 + i, t + 1))
        .collect();
    store.insert(&late).await.expect("late events");
    store.insert(&late[..5]).await.expect("late duplicates");
    let late_outcomes: Vec<OutcomeRow> =
        (1..360).step_by(4).map(|i| outcome(i, t, t + 1)).collect();
    store.insert(&late_outcomes).await.expect("late outcomes");
    let again = rollup::compact(&store, &CompactOptions::default(), t + 2)
        .await
        .expect("compact again");
    assert!(again.dirty_minutes >= 1, "{again:?}");
    let r = Range {
        rolled_until: again.compacted_until,
        ..r
    };
    assert_same(&store, r, "after late data and the next pass").await;
    // The late outcomes are the first churns (value 1): the unit rollups picked them up.
    let roi = data::roi_buckets(&store, &churn_roi(), r)
        .await
        .expect("roi");
    assert!(roi.iter().any(|x| x.value_sum < 0.0), "{roi:?}");

    // A full pass rebuilds the same numbers (idempotent).
    let full = CompactOptions {
        full: true,
        ..CompactOptions::default()
    };
    rollup::compact(&store, &full, t + 3)
        .await
        .expect("full compaction");
    assert_same(&store, r, "after a full pass").await;

    // Outcomes stamped before their inference: within `OUTCOME_LEAD_SECS` (producers' clocks)
    // they count, earlier they count nowhere, on the rolled-up and the raw path alike.
    // Inferences 2 and 6 had no outcome; both get a churn (value 1, worth −120).
    let value = |b: &[data::RoiBucket]| b.iter().map(|x| x.value_sum).sum::<f64>();
    let labelled = |store: Store, r: Range| async move {
        data::fairness_buckets(&store, "churn", "plan", r)
            .await
            .expect("fairness")
            .iter()
            .map(|b| b.labelled)
            .sum::<u64>()
    };
    let before = (
        value(&assert_same_roi(&store, r, "before early outcomes").await),
        labelled(store.clone(), r).await,
    );
    let early = |i: u32, by: u32| OutcomeRow {
        event_id: format!("early{i}"),
        value: 1.0,
        ..outcome(i, start + i * 20 - by, t + 4)
    };
    store
        .insert(&[
            early(2, rollup::OUTCOME_LEAD_SECS / 2),
            early(6, rollup::OUTCOME_LEAD_SECS + 600),
        ])
        .await
        .expect("early outcomes");
    rollup::compact(&store, &CompactOptions::default(), t + 5)
        .await
        .expect("compact the early outcomes");
    assert_same(&store, r, "after early outcomes").await;
    let after = (
        value(&assert_same_roi(&store, r, "after early outcomes").await),
        labelled(store.clone(), r).await,
    );
    assert_eq!(after.1, before.1 + 1, "labelled: one early outcome counts");
    assert!(
        (after.0 - (before.0 - 120.0)).abs() < 1e-6,
        "value {} → {}: one early churn counts",
        before.0,
        after.0
    );

    // Later traffic in the open hour: once the rows ingested before are out of the overlap,
    // a pass extends the open hour's unit rows by the minutes that became stable (not a
    // recomputation), and every event still counts once. Unit rows cover up to
    // `now − overlap − UNIT_DELAY_SECS` (on a minute): t − 60 at t + 130, t + 120 at t + 320.
    let settled = rollup::compact(&store, &CompactOptions::default(), t + 130)
        .await
        .expect("compact after the overlap");
    assert_eq!(settled.compacted_until, t + 60, "{settled:?}");
    let later: Vec<InferenceRow> = (500..510)
        .map(|i| inference(i, t + 70 + i % 10, t + 140))
        .collect();
    store.insert(&later).await.expect("later events");
    let ext = rollup::compact(&store, &CompactOptions::default(), t + 320)
        .await
        .expect("compact the later minute");
    assert_eq!(
        (
            ext.dirty_minutes,
            ext.unit_hours_extended,
            ext.unit_hours_recomputed,
            ext.compacted_until
        ),
        (1, 1, 0, t + 240),
        "{ext:?}"
    );
    let r = Range {
        until: t + 600,
        rolled_until: ext.compacted_until,
        ..r
    };
    assert_same(&store, r, "after extending the open hour").await;
    // The extension (of [t − 60, t + 120)) rewrote only the units with events there; the
    // hour's other units keep their rows.
    let rewritten = n(format!(
        "SELECT toUInt64(count()) AS n FROM {} WHERE covered_until = toDateTime({})",
        store.table("inference_units_1h"),
        t + 120
    ))
    .await;
    let active = n(format!(
        "SELECT toUInt64(uniqExact(version, unit_id)) AS n FROM {}
         WHERE ts >= toDateTime({}) AND ts < toDateTime({})",
        store.table("inference_events"),
        t - 60,
        t + 120
    ))
    .await;
    let hour_units = n(format!(
        "SELECT toUInt64(uniqExact(unit_key)) AS n FROM {} WHERE hour = toDateTime({})",
        store.table("inference_units_1h"),
        t / 3600 * 3600
    ))
    .await;
    assert!(
        active > 0 && active < hour_units,
        "{active} of {hour_units}"
    );
    assert_eq!(rewritten, active);
    let units = n(format!(
        "SELECT toUInt64(sum(inferences)) AS n FROM {} FINAL",
        store.table("inference_units_1h")
    ))
    .await;
    let covered = n(format!(
        "SELECT toUInt64(max(covered_until)) AS n FROM {}",
        store.table("inference_units_1h")
    ))
    .await;
    assert_eq!(
        (units, covered),
        (raw_count(&store, 0, t + 120).await, u64::from(t + 120))
    );

    // The quantiles come from ~2 % wide bins: close to the exact ones.
    let lat = data::latency_buckets(
        &store,
        "churn",
        Range {
            since: start,
            until: t + 60,
            bucket: 86400 * 7,
            rolled_until: again.compacted_until,
        },
    )
    .await
    .expect("latency");
    let mut exact: Vec<f64> = rows
        .iter()
        .chain(&late)
        .filter(|r| r.version == "v1")
        .filter_map(|r| r.latency_ms)
        .collect();
    exact.sort_by(f64::total_cmp);
    let p50 = exact[exact.len().div_ceil(2) - 1];
    let v1: Vec<f64> = lat
        .iter()
        .filter(|b| b.version == "v1")
        .map(|b| b.p50)
        .collect();
    // One weekly bucket unless the range crosses a week boundary.
    if let [v1] = v1[..] {
        assert!((v1 / p50 - 1.0).abs() < 0.02, "p50 {v1} vs exact {p50}");
    }
}

/// A bulk load stamped just before a pass is compacted by that pass only: the next passes find
/// the minutes of their overlap unchanged and leave them (issue #17: every pass in the two
/// minutes after a 10 M load redid it), yet a straggler stored after a pass is still caught.
async fn load_is_compacted_once(store: Store) {
    store.migrate(None).await.expect("migrate");
    // Five minutes into an hour, so that the load ends just before it: the passes below see
    // that hour as stable yet without events, which must not make every pass "recompute" it.
    let t = now() / 3600 * 3600 - 3600 + 300;
    // Two hours of events (three a minute, as in `exercise`, so that the distribution
    // estimates are exact), all stamped at t by the load.
    let start = t - 7500;
    // First, in a part of its own, a failed inference: only an `error` attribute, no features.
    let failed = InferenceRow {
        event_id: "failed-0".into(),
        ts: start + 1,
        ts_ms: u64::from(start + 1) * 1000,
        num_names: vec![],
        num_values: vec![],
        cat_names: vec![],
        cat_values: vec![],
        score: None,
        label: None,
        attr_names: vec!["error".into()],
        attr_values: vec!["timeout".into()],
        ..inference(999, start + 1, t)
    };
    store
        .insert(std::slice::from_ref(&failed))
        .await
        .expect("failed inference");
    let rows: Vec<InferenceRow> = (0..360).map(|i| inference(i, start + i * 20, t)).collect();
    store.insert(&rows).await.expect("insert");
    // The pages' feature and attribute names do not come from the failed row.
    let whole = Range {
        since: start,
        until: t,
        bucket: 300,
        rolled_until: 0,
    };
    let names = data::feature_names(&store, "churn", whole)
        .await
        .expect("feature names");
    assert_eq!(
        (names.num, names.cat, names.attrs),
        (
            vec!["age".to_string()],
            vec!["channel".to_string()],
            vec!["region".to_string(), "plan".to_string()]
        )
    );
    let first = pass(&store, t + 10).await;
    assert_eq!(first.dirty_minutes, 120, "{first:?}");
    // 20 s later the whole load is in the overlap (stamped < 120 s before the first pass), and
    // the first pass saw all of it.
    let second = pass(&store, t + 30).await;
    assert_eq!(
        (second.dirty_minutes, second.unit_hours_recomputed),
        (0, 0),
        "{second:?}"
    );
    // A straggler: stamped (t + 25) before the second pass started, stored after it looked.
    let straggler = inference(900, start + 1801, t + 25);
    store
        .insert(std::slice::from_ref(&straggler))
        .await
        .expect("straggler");
    let third = pass(&store, t + 50).await;
    assert_eq!(third.dirty_minutes, 1, "{third:?}");
    // A producer retry of a seen event, stamped in the next overlap: nothing to recompute.
    let retry = InferenceRow {
        ingested_at: t + 45,
        ..rows[5].clone()
    };
    store
        .insert(std::slice::from_ref(&retry))
        .await
        .expect("retry");
    let fourth = pass(&store, t + 70).await;
    assert_eq!(fourth.dirty_minutes, 0, "{fourth:?}");
    let r = Range {
        since: start + 7,
        until: t,
        bucket: 300,
        rolled_until: fourth.compacted_until,
    };
    assert_same(&store, r, "after a load, a straggler and a retry").await;
}

/// Rows of the daily unit table as stored and as read with `FINAL` (one per unit and day).
async fn day_rows(store: &Store) -> (u64, u64) {
    let count = |final_: &str| {
        let store = store.clone();
        let sql = format!(
            "SELECT toUInt64(count()) AS n FROM {} {final_}",
            store.table(rollup::UNIT_DAYS)
        );
        async move { store.fetch::<N>(&sql).await.expect("day rows")[0].n }
    };
    (count("").await, count("FINAL").await)
}

/// The ROI page over a day or more reads whole days from `inference_units_daily`: across a UTC
/// day boundary, with duplicates, a day grown hour by hour as hours complete, a late outcome
/// for a day already merged, and a range ending inside a day (days, then hours, then raw),
/// the numbers equal the raw-only query's. Time is simulated: the passes run at `now`s two
/// days back, where the events are.
async fn days_match_raw_queries(store: Store) {
    store.migrate(None).await.expect("migrate");
    let midnight = now() / 86_400 * 86_400 - 2 * 86_400;
    // One event a minute from 3 h before midnight to 3 h after, and from 03:05 to 03:15,
    // stamped 5 s after its `ts`.
    let first = midnight - 3 * 3600;
    let rows: Vec<InferenceRow> = (0..360)
        .map(|i| inference(i, first + i * 60, first + i * 60 + 5))
        .chain((360..370).map(|i| {
            let ts = midnight + 11_100 + (i - 360) * 60;
            inference(i, ts, ts + 5)
        }))
        .collect();
    store.insert(&rows).await.expect("insert");
    store.insert(&rows[150..200]).await.expect("duplicates");
    let outcomes: Vec<OutcomeRow> = (0..360)
        .step_by(4)
        .map(|i| outcome(i, first + i * 60 + 600, first + i * 60 + 600))
        .collect();
    store.insert(&outcomes).await.expect("outcomes");
    let day_inferences = || {
        let store = store.clone();
        async move {
            store
                .fetch::<N>(&format!(
                    "SELECT toUInt64(sum(inferences)) AS n FROM {} FINAL",
                    store.table(rollup::UNIT_DAYS)
                ))
                .await
                .expect("day rows")[0]
                .n
        }
    };
    // 02:30 after midnight: both days get rows, the second up to the stable point (02:27:00,
    // `now − overlap − UNIT_DELAY_SECS`), inside the open hour as the hourly rows.
    let p1 = pass(&store, midnight + 9000).await;
    assert_eq!(p1.unit_days_recomputed, 2, "{p1:?}");
    assert_eq!(
        day_inferences().await,
        raw_count(&store, first, midnight + 8820).await
    );
    let day_range = |until: u32, rolled_until: u32| Range {
        since: midnight - 86_400 + 7,
        until,
        bucket: 3600,
        rolled_until,
    };
    // Days to inside the open hour, then raw; and a range ending inside the second day (whole
    // days, whole hours, then raw).
    assert_same_roi(
        &store,
        day_range(midnight + 9060, p1.compacted_until),
        "days, pass 1",
    )
    .await;
    assert_same_roi(
        &store,
        day_range(midnight + 5407, p1.compacted_until),
        "inside a day",
    )
    .await;

    // 03:30: outcomes stamped since the first pass name inferences of 02:18–02:27, so the hour
    // 02:00 is recomputed, and the second day with it (from its hourly rows, to 03:27).
    let p2 = pass(&store, midnight + 12_600).await;
    assert_eq!(
        (p2.unit_days_recomputed, p2.unit_days_extended),
        (1, 0),
        "{p2:?}"
    );
    assert_eq!(
        day_inferences().await,
        raw_count(&store, first, midnight + 12_420).await
    );
    assert_same_roi(
        &store,
        day_range(midnight + 12_660, p2.compacted_until),
        "days, pass 2",
    )
    .await;

    // 03:45: ten more events (03:30–03:39) and nothing else: the second day is extended, not
    // recomputed, by the raw events after 03:27 (the open hour's rows also hold 03:00–03:27).
    let fresh: Vec<InferenceRow> = (370..380)
        .map(|i| {
            let ts = midnight + 12_600 + (i - 370) * 60;
            inference(i, ts, ts + 5)
        })
        .collect();
    store.insert(&fresh).await.expect("fresh events");
    let p2b = pass(&store, midnight + 13_500).await;
    assert_eq!(
        (p2b.unit_days_recomputed, p2b.unit_days_extended),
        (0, 1),
        "{p2b:?}"
    );
    assert_eq!(
        day_inferences().await,
        raw_count(&store, first, midnight + 13_320).await
    );
    let before = assert_same_roi(
        &store,
        day_range(midnight + 13_560, p2b.compacted_until),
        "days extended inside the open hour",
    )
    .await;
    // The extension wrote a new version of the units' rows it touched; the pass merged the
    // day, so each unit has one row again (what keeps `FINAL` cheap for the page).
    let (stored, read) = day_rows(&store).await;
    assert_eq!(stored, read, "versions left after an extension");
    // A pass that finds nothing new leaves the days alone.
    let idle = pass(&store, midnight + 13_560).await;
    assert_eq!(
        (idle.unit_days_recomputed, idle.unit_days_extended),
        (0, 0),
        "{idle:?}"
    );

    // A late churn for an inference of the first day (21:01): its hour and day are recomputed.
    let late = OutcomeRow {
        event_id: "late-churn".into(),
        value: 1.0,
        ..outcome(61, midnight + 13_610, midnight + 13_610)
    };
    store
        .insert(std::slice::from_ref(&late))
        .await
        .expect("late outcome");
    let p3 = pass(&store, midnight + 13_700).await;
    assert!(
        p3.unit_days_recomputed >= 1 && p3.unit_hours_recomputed >= 1,
        "{p3:?}"
    );
    let after = assert_same_roi(
        &store,
        day_range(midnight + 13_760, p3.compacted_until),
        "late outcome",
    )
    .await;
    let (stored, read) = day_rows(&store).await;
    assert_eq!(stored, read, "versions left after a recompute");
    let value = |b: &[data::RoiBucket]| b.iter().map(|x| x.value_sum).sum::<f64>();
    assert!(
        value(&after) < value(&before),
        "{} vs {}",
        value(&after),
        value(&before)
    );

    // And from the real present: a full pass, a range of a week.
    let full = CompactOptions {
        full: true,
        ..CompactOptions::default()
    };
    let p4 = rollup::compact(&store, &full, now())
        .await
        .expect("full pass");
    assert_eq!(day_inferences().await, 380);
    let week = Range {
        since: now() - 7 * 86_400,
        until: now() + 60,
        bucket: 86_400,
        rolled_until: p4.compacted_until,
    };
    assert_same_roi(&store, week, "a week, after a full pass").await;
}

/// A day is written when it has events up to the stable point, and left alone by the passes
/// that find nothing new in it. (A query alias once made the compactor take a day as one with
/// events it did not have, and write it, empty, on every pass.)
async fn quiet_day_is_left_alone(store: Store) {
    store.migrate(None).await.expect("migrate");
    let midnight = now() / 86_400 * 86_400 - 2 * 86_400;
    // An event a minute in the last hour of one day, and from 03:10 to 03:20 of the next.
    let evening = midnight - 3600;
    let morning = midnight + 3 * 3600 + 600;
    let rows: Vec<InferenceRow> = (0..60)
        .map(|i| inference(i, evening + i * 60, evening + i * 60 + 5))
        .chain((0..10).map(|i| inference(60 + i, morning + i * 60, morning + i * 60 + 5)))
        .collect();
    store.insert(&rows).await.expect("insert");
    // 03:40: both days get their rows, the morning's from its open hour 03:00.
    let at = midnight + 3 * 3600 + 2400;
    let p1 = pass(&store, at).await;
    assert_eq!(p1.unit_days_recomputed, 2, "{p1:?}");
    for later in [60, 120] {
        let p = pass(&store, at + later).await;
        assert_eq!(
            (p.unit_days_recomputed, p.unit_days_extended),
            (0, 0),
            "a pass {later} s later: {p:?}"
        );
    }
    // 04:40: the hour 03:00 is complete, and still nothing new for either day.
    let p = pass(&store, at + 3600).await;
    assert_eq!(
        (p.unit_days_recomputed, p.unit_days_extended),
        (0, 0),
        "{p:?}"
    );
    let days = store
        .fetch::<N>(&format!(
            "SELECT toUInt64(sum(inferences)) AS n FROM {} FINAL",
            store.table(rollup::UNIT_DAYS)
        ))
        .await
        .expect("day rows");
    assert_eq!(days[0].n, 70);
}

/// The drift sample (`rollup::sample_select`) is each minute's bottom-`k` by
/// `cityHash64(event_id)`, ranked from 1, against the same choice made here from the events'
/// hashes: minutes with more and with fewer than `k` events, and one event id stored twice in
/// a minute (two versions, which `FINAL` keeps apart), which counts twice towards the `k` and
/// gives both rows its first rank.
async fn sample_is_bottom_k_per_minute(store: Store) {
    #[derive(clickhouse::Row, serde::Deserialize, Debug)]
    struct Hashed {
        minute: u32,
        h: u64,
        x: f64,
    }
    #[derive(clickhouse::Row, serde::Deserialize, Debug, PartialEq, PartialOrd)]
    struct Sampled {
        minute: u32,
        rank: u16,
        n: u64,
        x: f64,
    }
    store.migrate(None).await.expect("migrate");
    let start = now() / 3600 * 3600 - 7200;
    // 40 events in the first minute, 6 in the second; the feature `age` tells them apart.
    let rows: Vec<InferenceRow> = (0..46)
        .map(|i| {
            let ts = if i < 40 { start + i } else { start + 60 + i };
            let mut r = inference(i, ts, ts + 5);
            r.num_values = vec![f64::from(i)];
            r
        })
        .collect();
    store.insert(&rows).await.expect("insert");
    let raw = store.table("inference_events");
    let filter = format!(
        "model = 'churn' AND ts >= toDateTime({start}) AND ts < toDateTime({})",
        start + 120
    );
    let hashes = || async {
        store
            .fetch::<Hashed>(&format!(
                "SELECT toUInt32(intDiv(toUInt32(ts), 60) * 60) AS minute,
                        cityHash64(event_id) AS h, toFloat64(num_values[1]) AS x
                 FROM {raw} FINAL WHERE {filter}"
            ))
            .await
            .expect("hashes")
    };
    // The twin: the first minute's smallest hash, stored again under another version.
    let first = hashes()
        .await
        .into_iter()
        .filter(|e| e.minute == start)
        .min_by_key(|e| e.h)
        .expect("first minute");
    let mut twin = rows[first.x as usize].clone();
    twin.version = "v9".into();
    twin.num_values = vec![100.0];
    store.insert(&[twin]).await.expect("insert the twin");
    let k = 10usize;
    let hashed = hashes().await;
    assert_eq!(hashed.len(), 47);
    let mut expected = Vec::new();
    for minute in [start, start + 60] {
        let events: Vec<&Hashed> = hashed.iter().filter(|e| e.minute == minute).collect();
        let mut picked: Vec<u64> = events.iter().map(|e| e.h).collect();
        picked.sort_unstable();
        picked.truncate(k);
        for e in &events {
            if let Some(i) = picked.iter().position(|h| *h == e.h) {
                expected.push(Sampled {
                    minute,
                    rank: i as u16 + 1,
                    n: events.len() as u64,
                    x: e.x,
                });
            }
        }
    }
    let mut got: Vec<Sampled> = store
        .fetch(&format!(
            "SELECT toUInt32(minute) AS minute, toUInt16(rank) AS rank,
                    toUInt64(minute_events) AS n, toFloat64(num_values[1]) AS x
             FROM ({}) AS s",
            rollup::sample_select(&raw, &filter, k as u16)
        ))
        .await
        .expect("sample");
    let order = |a: &Sampled, b: &Sampled| a.partial_cmp(b).expect("no NaN");
    expected.sort_by(order);
    got.sort_by(order);
    // The twins share the smallest hash: both have rank 1, and 8 more events follow them.
    let ranks: Vec<u16> = expected
        .iter()
        .filter(|s| s.minute == start)
        .map(|s| s.rank)
        .collect();
    assert_eq!(ranks, [1, 1, 3, 4, 5, 6, 7, 8, 9, 10], "{expected:?}");
    assert_eq!(
        expected.iter().filter(|s| s.minute == start + 60).count(),
        6
    );
    assert_eq!(got, expected);
}

/// A store from before migration 15 keeps its ROI: the daily unit rows move from
/// `inference_units_1d` (partitioned by month) to `inference_units_daily` (by day), one version
/// each, and the old table is dropped. Run as an interrupted migration is: from the start.
async fn unit_days_move_on_upgrade(store: Store) {
    store.migrate(None).await.expect("migrate");
    let midnight = now() / 86_400 * 86_400 - 2 * 86_400;
    let first = midnight - 3 * 3600;
    let rows: Vec<InferenceRow> = (0..360)
        .map(|i| inference(i, first + i * 60, first + i * 60 + 5))
        .collect();
    store.insert(&rows).await.expect("insert");
    let outcomes: Vec<OutcomeRow> = (0..360)
        .step_by(4)
        .map(|i| outcome(i, first + i * 60 + 600, first + i * 60 + 600))
        .collect();
    store.insert(&outcomes).await.expect("outcomes");
    let p1 = pass(&store, midnight + 9000).await;
    assert_eq!(p1.unit_days_recomputed, 2, "{p1:?}");
    let range = Range {
        since: midnight - 86_400 + 7,
        until: midnight + 9060,
        bucket: 3600,
        rolled_until: p1.compacted_until,
    };
    let expected = assert_same_roi(&store, range, "before the upgrade").await;
    // Two days of 17 units, each served by both versions.
    let (stored, day_units) = day_rows(&store).await;
    assert_eq!((stored, day_units), (2 * 34, 2 * 34));

    // The store as migration 14 left it: the day rows in the old table (two versions of
    // each), none in the new one, and no record of migration 15.
    let opts = vigil_store::schema::SchemaOptions {
        database: store.database().to_string(),
        cluster: None,
    };
    let m13 = vigil_store::schema::migrations(&opts)
        .into_iter()
        .find(|m| m.version == 13)
        .expect("migration 13");
    let old = store.table("inference_units_1d");
    let new = store.table(rollup::UNIT_DAYS);
    for sql in m13.statements.iter().cloned().chain([
        format!("INSERT INTO {old} SELECT * FROM {new}"),
        format!("INSERT INTO {old} SELECT * FROM {new}"),
        format!("TRUNCATE TABLE {new}"),
        format!("DROP TABLE {}", store.table("schema_migrations")),
    ]) {
        store.execute(&sql).await.expect(&sql);
    }
    assert_eq!(day_rows(&store).await, (0, 0));

    let applied = store.migrate(None).await.expect("migrate again");
    assert!(applied.contains(&15), "{applied:?}");
    assert_eq!(day_rows(&store).await, (day_units, day_units));
    let left = store
        .fetch::<N>(&format!(
            "SELECT toUInt64(count()) AS n FROM system.tables
             WHERE database = '{}' AND name = 'inference_units_1d'",
            store.database()
        ))
        .await
        .expect("tables")[0]
        .n;
    assert_eq!(left, 0, "the old table is dropped");
    let after = assert_same_roi(&store, range, "after the upgrade").await;
    assert_eq!(json(&after), json(&expected));
    // A migration run again finds nothing to copy.
    assert!(store
        .migrate(None)
        .await
        .expect("migrate once more")
        .is_empty());
}

/// chDB holds one path per process: the chDB tests of this binary share one, with a database each.
fn chdb_url(prefix: &str) -> String {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    let dir = DIR.get_or_init(|| tempfile::tempdir().expect("tempdir"));
    format!(
        "chdb://{}?database={}",
        dir.path().display(),
        common::unique(prefix)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_is_compacted_once_on_clickhouse_server() {
    let store = Store::open(&common::clickhouse_url(&common::unique("rollonce")))
        .await
        .expect("open server store");
    load_is_compacted_once(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_is_compacted_once_on_chdb() {
    common::require_chdb();
    let store = Store::open(&chdb_url("rollonce"))
        .await
        .expect("open chdb store");
    load_is_compacted_once(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollups_match_raw_queries_on_clickhouse_server() {
    let store = Store::open(&common::clickhouse_url(&common::unique("rollup")))
        .await
        .expect("open server store");
    exercise(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollups_match_raw_queries_on_chdb() {
    common::require_chdb();
    let store = Store::open(&chdb_url("rollup"))
        .await
        .expect("open chdb store");
    exercise(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unit_days_match_raw_queries_on_clickhouse_server() {
    let store = Store::open(&common::clickhouse_url(&common::unique("rolldays")))
        .await
        .expect("open server store");
    days_match_raw_queries(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unit_days_match_raw_queries_on_chdb() {
    common::require_chdb();
    let store = Store::open(&chdb_url("rolldays"))
        .await
        .expect("open chdb store");
    days_match_raw_queries(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_day_is_left_alone_on_clickhouse_server() {
    let store = Store::open(&common::clickhouse_url(&common::unique("quietday")))
        .await
        .expect("open server store");
    quiet_day_is_left_alone(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_day_is_left_alone_on_chdb() {
    common::require_chdb();
    let store = Store::open(&chdb_url("quietday"))
        .await
        .expect("open chdb store");
    quiet_day_is_left_alone(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unit_days_move_on_upgrade_on_clickhouse_server() {
    let store = Store::open(&common::clickhouse_url(&common::unique("daysmove")))
        .await
        .expect("open server store");
    unit_days_move_on_upgrade(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unit_days_move_on_upgrade_on_chdb() {
    common::require_chdb();
    let store = Store::open(&chdb_url("daysmove"))
        .await
        .expect("open chdb store");
    unit_days_move_on_upgrade(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_is_bottom_k_per_minute_on_clickhouse_server() {
    let store = Store::open(&common::clickhouse_url(&common::unique("bottomk")))
        .await
        .expect("open server store");
    sample_is_bottom_k_per_minute(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_is_bottom_k_per_minute_on_chdb() {
    common::require_chdb();
    let store = Store::open(&chdb_url("bottomk"))
        .await
        .expect("open chdb store");
    sample_is_bottom_k_per_minute(store).await;
}
