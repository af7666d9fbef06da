//! Versioned, idempotent schema migrations.
//!
//! The SQL stays inside what ClickHouse 18.16 and 26.x both run: no Map/JSON/DateTime64 types, no
//! CODEC/TTL, no query parameters. Every statement is `IF NOT EXISTS`, so a migration interrupted
//! half-way is simply run again. Applied versions are recorded in `schema_migrations`.
//!
//! Single node (default): `ReplacingMergeTree` tables keyed so that a re-delivered event (same
//! `event_id`) collapses on merge; queries de-duplicate before merges with `FINAL`.
//! Cluster (`[store] cluster = "name"`): each table becomes `<t>_local` with
//! `ReplicatedReplacingMergeTree` created `ON CLUSTER`, plus a `Distributed` table `<t>` sharded by
//! `cityHash64(event_id)`, so duplicates land on the same shard and queries keep their table names.

/// How tables are laid out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchemaOptions {
    /// Database all tables live in.
    pub database: String,
    /// Cluster name for replicated, distributed tables; `None` for a single node.
    pub cluster: Option<String>,
}

/// One table's definition; rendered per [`SchemaOptions`].
struct TableDef {
    name: &'static str,
    columns: &'static str,
    /// Engine family without the `Replicated` prefix, e.g. `ReplacingMergeTree`.
    engine: &'static str,
    partition_by: Option<&'static str>,
    order_by: &'static str,
    /// Sharding key for the distributed table in cluster mode.
    shard_key: &'static str,
    /// `ReplacingMergeTree`'s version column: the row with the highest value wins instead of
    /// the last inserted one (rollups: a later recomputation must replace an earlier one).
    version_column: Option<&'static str>,
}

const INFERENCE_COLUMNS: &str = "
    event_id String,
    ts DateTime,
    ts_ms UInt64,
    model String,
    version String,
    unit_id String,
    num_names Array(String),
    num_values Array(Float64),
    cat_names Array(String),
    cat_values Array(String),
    score Nullable(Float64),
    label Nullable(String),
    latency_ms Nullable(Float64),
    cost Nullable(Float64),
    attr_names Array(String),
    attr_values Array(String),
    experiment String,
    variant String,
    input String,
    source String,
    src_partition Int32,
    src_offset Int64,
    ingested_at DateTime";

const OUTCOME_COLUMNS: &str = "
    event_id String,
    ts DateTime,
    ts_ms UInt64,
    unit_id String,
    model String,
    inference_id String,
    name String,
    value Float64,
    source String,
    src_partition Int32,
    src_offset Int64,
    ingested_at DateTime";

const EXPOSURE_COLUMNS: &str = "
    event_id String,
    ts DateTime,
    ts_ms UInt64,
    experiment String,
    variant String,
    unit_id String,
    model String,
    version String,
    attr_names Array(String),
    attr_values Array(String),
    source String,
    src_partition Int32,
    src_offset Int64,
    ingested_at DateTime";

const DEAD_LETTER_COLUMNS: &str = "
    received_at DateTime,
    kind String,
    source String,
    src_partition Int32,
    src_offset Int64,
    field String,
    reason String,
    payload_encoding String,
    payload String,
    payload_bytes UInt64";

const OFFSET_COLUMNS: &str = "
    consumer_group String,
    topic String,
    partition Int32,
    next_offset Int64,
    written_at DateTime";

const TABLES_V1: &[TableDef] = &[
    TableDef {
        name: "inference_events",
        columns: INFERENCE_COLUMNS,
        engine: "ReplacingMergeTree",
        partition_by: Some("toYYYYMM(ts)"),
        order_by: "(model, version, ts, event_id)",
        shard_key: "cityHash64(event_id)",
        version_column: None,
    },
    TableDef {
        name: "outcome_events",
        columns: OUTCOME_COLUMNS,
        engine: "ReplacingMergeTree",
        partition_by: Some("toYYYYMM(ts)"),
        order_by: "(model, name, ts, event_id)",
        shard_key: "cityHash64(event_id)",
        version_column: None,
    },
    TableDef {
        name: "exposure_events",
        columns: EXPOSURE_COLUMNS,
        engine: "ReplacingMergeTree",
        partition_by: Some("toYYYYMM(ts)"),
        order_by: "(experiment, ts, event_id)",
        shard_key: "cityHash64(event_id)",
        version_column: None,
    },
    TableDef {
        name: "dead_letters",
        columns: DEAD_LETTER_COLUMNS,
        engine: "MergeTree",
        partition_by: Some("toYYYYMM(received_at)"),
        order_by: "(received_at, kind, source)",
        shard_key: "rand()",
        version_column: None,
    },
    TableDef {
        name: "ingest_offsets",
        columns: OFFSET_COLUMNS,
        engine: "MergeTree",
        partition_by: None,
        order_by: "(consumer_group, topic, partition, next_offset)",
        shard_key: "cityHash64(consumer_group, topic, partition)",
        version_column: None,
    },
];

const SHADOW_RESPONSE_COLUMNS: &str = "
    request_id String,
    ts DateTime,
    ts_ms UInt64,
    model String,
    version String,
    served_version String,
    unit_id String,
    output String,
    latency_ms Float64,
    status UInt16,
    error String";

/// Migration 2: the gateway's shadow (mirrored) responses. A mirrored request is sent once per
/// candidate, so `(model, version, ts, request_id)` identifies a row; plain `MergeTree` because
/// the gateway never re-sends a row.
const TABLES_V2: &[TableDef] = &[TableDef {
    name: "shadow_responses",
    columns: SHADOW_RESPONSE_COLUMNS,
    engine: "MergeTree",
    partition_by: Some("toYYYYMM(ts)"),
    order_by: "(model, version, ts, request_id)",
    shard_key: "cityHash64(request_id)",
    version_column: None,
}];

/// Results of continuous monitors (`vigil analyze`, `vigil serve`): one row per monitored
/// column and window plus one dataset-level row (`column = '*'`). Replacing on the key, so
/// re-running a window replaces its verdict instead of doubling it (read with `FINAL`).
const MONITOR_RESULT_COLUMNS: &str = "
    run_at DateTime,
    monitor String,
    model String,
    version String,
    window_start DateTime,
    window_end DateTime,
    `column` String,
    method String,
    score Float64,
    threshold Float64,
    drift UInt8,
    verdict String,
    reference_rows UInt64,
    current_rows UInt64,
    dataset_drift UInt8,
    drift_share Float64";

const TABLES_V3: &[TableDef] = &[TableDef {
    name: "monitor_results",
    columns: MONITOR_RESULT_COLUMNS,
    engine: "ReplacingMergeTree",
    partition_by: Some("toYYYYMM(window_end)"),
    order_by: "(monitor, model, version, window_end, `column`)",
    shard_key: "cityHash64(monitor)",
    version_column: None,
}];

/// Migration 4: the audit trail of production-version changes (promotions, rollbacks, ramp
/// steps). The routing table's production versions are derived from it, so it is append-only:
/// a rollback is a new row, never an edit.
const DEPLOYMENT_COLUMNS: &str = "
    id String,
    ts DateTime,
    ts_ms UInt64,
    model String,
    action String,
    experiment String,
    arm String,
    from_version String,
    to_version String,
    rollout_share Float64,
    actor String,
    reason String,
    evidence String,
    mlflow String";

const TABLES_V4: &[TableDef] = &[TableDef {
    name: "deployments",
    columns: DEPLOYMENT_COLUMNS,
    engine: "MergeTree",
    partition_by: None,
    order_by: "(model, ts_ms, id)",
    shard_key: "cityHash64(model)",
    version_column: None,
}];

/// Migration 5, alerting (`vigil_analyzer::alerting`). Incidents and the notification outbox
/// are `ReplacingMergeTree`s keyed by id: each state change inserts a new row with a larger
/// `updated_ms`, and readers take `argMax(…, updated_ms)` per id (correct before any merge; the
/// merges only reclaim space). Silences and the event history are append-only.
const ALERT_INCIDENT_COLUMNS: &str = "
    id String,
    rule String,
    monitor String,
    model String,
    version String,
    severity String,
    state String,
    silenced UInt8,
    opened_at DateTime,
    first_window_end DateTime,
    last_window_end DateTime,
    clear_windows UInt32,
    columns_json String,
    acked_by String,
    acked_at DateTime,
    resolved_at DateTime,
    updated_ms UInt64";

const ALERT_NOTIFICATION_COLUMNS: &str = "
    idempotency_key String,
    incident_id String,
    kind String,
    route String,
    channel String,
    subject String,
    text String,
    html String,
    body_json String,
    attachment_b64 String,
    status String,
    attempts UInt32,
    next_attempt_at DateTime,
    created_at DateTime,
    delivered_at DateTime,
    last_error String,
    updated_ms UInt64";

const ALERT_SILENCE_COLUMNS: &str = "
    id String,
    model String,
    monitor String,
    starts_at DateTime,
    ends_at DateTime,
    reason String,
    created_by String,
    created_at DateTime";

const ALERT_EVENT_COLUMNS: &str = "
    at DateTime,
    at_ms UInt64,
    incident_id String,
    event String,
    actor String,
    model String,
    monitor String,
    detail String";

const TABLES_V5: &[TableDef] = &[
    TableDef {
        name: "alert_incidents",
        columns: ALERT_INCIDENT_COLUMNS,
        engine: "ReplacingMergeTree",
        partition_by: None,
        order_by: "id",
        shard_key: "cityHash64(id)",
        version_column: None,
    },
    TableDef {
        name: "alert_notifications",
        columns: ALERT_NOTIFICATION_COLUMNS,
        engine: "ReplacingMergeTree",
        partition_by: None,
        order_by: "idempotency_key",
        shard_key: "cityHash64(idempotency_key)",
        version_column: None,
    },
    TableDef {
        name: "alert_silences",
        columns: ALERT_SILENCE_COLUMNS,
        engine: "MergeTree",
        partition_by: None,
        order_by: "(model, id)",
        shard_key: "cityHash64(id)",
        version_column: None,
    },
    TableDef {
        name: "alert_events",
        columns: ALERT_EVENT_COLUMNS,
        engine: "MergeTree",
        partition_by: Some("toYYYYMM(at)"),
        order_by: "(incident_id, at_ms)",
        shard_key: "cityHash64(incident_id)",
        version_column: None,
    },
];

/// Migration 6, shadow runs (`vigil_shadow_runner`). `shadow_runs` holds one row per state
/// change of a replay job (checkpoint cursor, counters; readers take `argMax(…, updated_ms)` per
/// job), `shadow_metrics` the comparison time series (one row per run, candidate and bucket,
/// plus the whole window with `kind = 'total'`), `retraining_requests` one row per state change
/// of a request (idempotency: one open request per model and reason, checked before insert;
/// the id is derived from model, reason and evidence window so racing evaluators collapse).
const SHADOW_RUN_COLUMNS: &str = "
    job_id String,
    model String,
    production String,
    candidates String,
    since DateTime,
    until DateTime,
    sample_rate Float64,
    filters String,
    status String,
    cursor_ts DateTime,
    cursor_event_id String,
    processed UInt64,
    skipped UInt64,
    started_at DateTime,
    updated_ms UInt64,
    error String,
    state String";

const SHADOW_METRIC_COLUMNS: &str = "
    job_id String,
    model String,
    production String,
    candidate String,
    kind String,
    bucket_start DateTime,
    bucket_end DateTime,
    n UInt64,
    agreement Float64,
    replay_agreement Float64,
    score_delta_mean Float64,
    score_delta_p05 Float64,
    score_delta_p50 Float64,
    score_delta_p95 Float64,
    cosine_mean Float64,
    cosine_p05 Float64,
    top_shift_label String,
    top_shift Float64,
    labelled UInt64,
    prod_accuracy Float64,
    cand_accuracy Float64,
    accuracy_delta Float64,
    accuracy_delta_low Float64,
    accuracy_delta_high Float64,
    prod_f1 Float64,
    cand_f1 Float64,
    f1_delta Float64,
    f1_delta_low Float64,
    f1_delta_high Float64,
    prod_ms_per_input Float64,
    cand_ms_per_input Float64,
    cand_inputs_per_sec Float64,
    verdict String,
    reasons String,
    written_at DateTime";

const RETRAINING_REQUEST_COLUMNS: &str = "
    request_id String,
    model String,
    reason String,
    rule String,
    evidence String,
    dataset_since DateTime,
    dataset_until DateTime,
    dataset_filters String,
    status String,
    created_at DateTime,
    webhook_status String,
    kafka_status String,
    email_status String,
    updated_ms UInt64";

const TABLES_V6: &[TableDef] = &[
    TableDef {
        name: "shadow_runs",
        columns: SHADOW_RUN_COLUMNS,
        engine: "ReplacingMergeTree",
        partition_by: None,
        order_by: "(job_id, updated_ms)",
        shard_key: "cityHash64(job_id)",
        version_column: None,
    },
    TableDef {
        name: "shadow_metrics",
        columns: SHADOW_METRIC_COLUMNS,
        engine: "ReplacingMergeTree",
        partition_by: Some("toYYYYMM(bucket_start)"),
        order_by: "(model, candidate, job_id, kind, bucket_start)",
        shard_key: "cityHash64(job_id)",
        version_column: None,
    },
    TableDef {
        name: "retraining_requests",
        columns: RETRAINING_REQUEST_COLUMNS,
        engine: "ReplacingMergeTree",
        partition_by: None,
        order_by: "(request_id, updated_ms)",
        shard_key: "cityHash64(request_id)",
        version_column: None,
    },
];

// Per-minute rollups of `inference_events` (docs/dashboards.md § Rollups). Each row is a
// recomputation of one minute from the raw table with `FINAL` (so duplicates count once);
// `computed_ms` is the version, so a later recomputation of the same minute replaces it, and
// readers use `FINAL`. Latency quantiles come from a fixed log histogram: bin
// `floor(ln(1 + ms) * 50)` (about 2 % wide), kept as parallel arrays.
const INFERENCE_ROLLUP_COLUMNS: &str = "
    model String,
    version String,
    minute DateTime,
    events UInt64,
    failed UInt64,
    score_n UInt64,
    score_sum Float64,
    latency_n UInt64,
    latency_sum Float64,
    cost_n UInt64,
    cost_sum Float64,
    min_ts DateTime,
    max_ts DateTime,
    latency_bins Array(UInt16),
    latency_counts Array(UInt64),
    computed_ms UInt64";

// Fairness counts per minute and value of every attribute, with the outcomes linked to the
// minute's inferences as of the recomputation.
const GROUP_ROLLUP_COLUMNS: &str = "
    model String,
    attr String,
    grp String,
    minute DateTime,
    n UInt64,
    selected UInt64,
    labelled UInt64,
    positives UInt64,
    true_pos UInt64,
    false_pos UInt64,
    computed_ms UInt64";

// How many of a minute's inferences carry each feature (data quality: missing values).
const FEATURE_ROLLUP_COLUMNS: &str = "
    model String,
    version String,
    minute DateTime,
    name String,
    present UInt64,
    computed_ms UInt64";

// The compactor's progress: every minute before `compacted_until` is in the rollups, from the
// rows ingested up to `ingest_mark`.
const ROLLUP_STATE_COLUMNS: &str = "
    name String,
    compacted_until DateTime,
    ingest_mark DateTime,
    updated_ms UInt64";

const TABLES_V7: &[TableDef] = &[
    TableDef {
        name: "inference_rollup_1m",
        columns: INFERENCE_ROLLUP_COLUMNS,
        engine: "ReplacingMergeTree",
        partition_by: Some("toYYYYMM(minute)"),
        order_by: "(model, version, minute)",
        shard_key: "cityHash64(model, version, minute)",
        version_column: Some("computed_ms"),
    },
    TableDef {
        name: "inference_groups_1m",
        columns: GROUP_ROLLUP_COLUMNS,
        engine: "ReplacingMergeTree",
        partition_by: Some("toYYYYMM(minute)"),
        order_by: "(model, attr, minute, grp)",
        shard_key: "cityHash64(model, attr, minute)",
        version_column: Some("computed_ms"),
    },
    TableDef {
        name: "inference_features_1m",
        columns: FEATURE_ROLLUP_COLUMNS,
        engine: "ReplacingMergeTree",
        partition_by: Some("toYYYYMM(minute)"),
        order_by: "(model, version, minute, name)",
        shard_key: "cityHash64(model, version, minute)",
        version_column: Some("computed_ms"),
    },
    TableDef {
        name: "rollup_state",
        columns: ROLLUP_STATE_COLUMNS,
        engine: "ReplacingMergeTree",
        partition_by: None,
        order_by: "name",
        shard_key: "cityHash64(name)",
        version_column: Some("updated_ms"),
    },
];

// A bottom-k sample of each minute's inferences per model (the drift page's distributions):
// the `SAMPLE_PER_MINUTE` events with the smallest `cityHash64(event_id)`, ranked 1.., with the
// minute's event count so a reader can weight each sampled event by `minute_events / k`. A
// hash of the id, not the order of arrival, picks them: the same minute always gives the same
// sample, so the raw-table query for the unrolled tail picks the same events.
const SAMPLE_COLUMNS: &str = "
    model String,
    minute DateTime,
    rank UInt16,
    minute_events UInt64,
    ts DateTime,
    num_names Array(String),
    num_values Array(Float64),
    cat_names Array(String),
    cat_values Array(String),
    computed_ms UInt64";

// Per (model, version, unit, hour), keyed by `unit_key = cityHash64(model, version, unit_id)`
// (grouping by one UInt64 is several times cheaper than by three strings; collisions are
// negligible below billions of units): what the ROI page needs of a unit (first inference,
// inferences, cost, and the outcomes linked to those inferences summed per outcome name, so
// the value model can change without a recomputation). A computation of an hour covers
// `[hour, covered_until)`: the open hour up to the watermark, extended by every pass.
macro_rules! unit_columns {
    ($period:literal) => {
        concat!(
            "
    model String,
    version String,
    unit_key UInt64,
    ",
            $period,
            " DateTime,
    first_ts DateTime,
    inferences UInt64,
    costed UInt64,
    cost Float64,
    outcome_names Array(String),
    outcome_values Array(Float64),
    covered_until DateTime,
    computed_ms UInt64"
        )
    };
}
const UNIT_ROLLUP_COLUMNS: &str = unit_columns!("hour");

const TABLES_V8: &[TableDef] = &[
    TableDef {
        name: "inference_sample_1m",
        columns: SAMPLE_COLUMNS,
        engine: "ReplacingMergeTree",
        partition_by: Some("toYYYYMM(minute)"),
        order_by: "(model, minute, rank)",
        shard_key: "cityHash64(model, minute)",
        version_column: Some("computed_ms"),
    },
    TableDef {
        name: "inference_units_1h",
        columns: UNIT_ROLLUP_COLUMNS,
        engine: "ReplacingMergeTree",
        partition_by: Some("toYYYYMM(hour)"),
        order_by: "(model, hour, version, unit_key)",
        shard_key: "cityHash64(model, hour)",
        version_column: Some("computed_ms"),
    },
];

// Migration 12: the generative fields of each minute's inferences per version (the LLM page),
// written for the models with a generative event in the recomputed range (none for a store
// without LLM traffic). Requests, failures and cost stay in `inference_rollup_1m`; TTFT and
// output tokens/s are histograms in the latency bins (`rollup::log_bin_sql`), so the page's
// quantiles read the same from both paths; the answers (finish reason, else label) of the
// minute's answered requests as parallel arrays.
const LLM_ROLLUP_COLUMNS: &str = "
    model String,
    version String,
    minute DateTime,
    generative UInt64,
    streamed UInt64,
    prompt_n UInt64,
    prompt_sum UInt64,
    completion_n UInt64,
    completion_sum UInt64,
    tokens_n UInt64,
    estimated UInt64,
    ttft_bins Array(UInt16),
    ttft_counts Array(UInt64),
    tps_bins Array(UInt16),
    tps_counts Array(UInt64),
    reasons Array(String),
    reason_counts Array(UInt64),
    computed_ms UInt64";

const TABLES_V12: &[TableDef] = &[TableDef {
    name: "inference_llm_1m",
    columns: LLM_ROLLUP_COLUMNS,
    engine: "ReplacingMergeTree",
    partition_by: Some("toYYYYMM(minute)"),
    order_by: "(model, version, minute)",
    shard_key: "cityHash64(model, version, minute)",
    version_column: Some("computed_ms"),
}];

/// Migration 13: the unit rows of whole days (`inference_units_1d`), merged from the completed
/// hours of `inference_units_1h` by the compactor (`rollup::compact_unit_days`): the ROI page
/// over a day or more reads one row per unit and day instead of one per unit and hour. Same
/// columns as the hourly rows, `day` for `hour`; `covered_until` is the end of the last
/// merged hour (the current day grows hour by hour).
const UNIT_DAY_COLUMNS: &str = unit_columns!("day");

const TABLES_V13: &[TableDef] = &[TableDef {
    name: "inference_units_1d",
    columns: UNIT_DAY_COLUMNS,
    engine: "ReplacingMergeTree",
    partition_by: Some("toYYYYMM(day)"),
    order_by: "(model, day, version, unit_key)",
    shard_key: "cityHash64(model, day)",
    version_column: Some("computed_ms"),
}];

/// Migration 15: the daily unit rows again, partitioned by day (`inference_units_daily`,
/// replacing `inference_units_1d`, whose rows migration 15 copies and then drops). The
/// compactor rewrites a day's rows for every unit served in an hour it adds, so a day held a
/// version of each unit row per hour written (2.4–3 measured) until background merges caught
/// up, and every ROI request merged them with `FINAL` (on a 10 M-event store 273 ms with three
/// versions, 108 ms with one). With a partition per day the compactor merges the day it wrote
/// into one part (`OPTIMIZE … PARTITION … FINAL`, see `rollup::compact_unit_days`): the cost
/// of a day's rows, not of a month's. The partition is the day's number since the epoch
/// (`intDiv(toUInt32(day), 86400)`): an integer, so the compactor names it without asking
/// the server's time zone.
const TABLES_V15: &[TableDef] = &[TableDef {
    name: "inference_units_daily",
    columns: UNIT_DAY_COLUMNS,
    engine: "ReplacingMergeTree",
    partition_by: Some("intDiv(toUInt32(day), 86400)"),
    order_by: "(model, day, version, unit_key)",
    shard_key: "cityHash64(model, day)",
    version_column: Some("computed_ms"),
}];

/// The rows migration 15 moves: `(from, to)`.
const COPIED_V15: &[(&str, &str)] = &[("inference_units_1d", "inference_units_daily")];

/// Migration 14: the per-minute sample again, ordered by rank before minute
/// (`inference_sample_rank_1m`, replacing `inference_sample_1m`, which migration 14 drops).
/// A reader takes the first `k` ranks of every minute in a range (`k` falls as the range
/// grows: 27 of 1 000 over a day, 1 over a month); keyed by minute first, every granule held
/// all ranks of a few minutes and the read decompressed the whole sample, features included.
/// Keyed by rank first, ranks `1..=k` of a range are `k` runs of rows. A new name rather than
/// a new key under the old one: a replicated table's key is recorded in ZooKeeper under its
/// path. The compactor's state is renamed with it (`rollup::STATE_NAME`), so the first pass
/// after the upgrade fills it.
const TABLES_V14: &[TableDef] = &[TableDef {
    name: "inference_sample_rank_1m",
    columns: SAMPLE_COLUMNS,
    engine: "ReplacingMergeTree",
    partition_by: Some("toYYYYMM(minute)"),
    order_by: "(model, rank, minute)",
    shard_key: "cityHash64(model, minute)",
    version_column: Some("computed_ms"),
}];

/// The tables migration 14 replaces (rollups the compactor rebuilds in their new layout).
const DROPPED_V14: &[&str] = &["inference_sample_1m"];

/// `DROP TABLE IF EXISTS` of `name`: the table, or on a cluster the distributed table and
/// then its local tables on every node.
fn drop_table(name: &str, opts: &SchemaOptions) -> Vec<String> {
    let db = quote_ident(&opts.database);
    let oc = on_cluster(opts);
    match &opts.cluster {
        None => vec![format!("DROP TABLE IF EXISTS {db}.{name}")],
        Some(_) => vec![
            format!("DROP TABLE IF EXISTS {db}.{name}{oc}"),
            format!("DROP TABLE IF EXISTS {db}.{name}_local{oc}"),
        ],
    }
}

/// Migration 10: example texts of text monitors (`analyzer::monitor::text`), a few per
/// window, column and kind; replacing on the key, so a re-run window replaces its examples.
const TABLES_V10: &[TableDef] = &[TableDef {
    name: "monitor_examples",
    columns: "
    run_at DateTime,
    monitor String,
    model String,
    version String,
    window_start DateTime,
    window_end DateTime,
    `column` String,
    kind String,
    rank UInt16,
    event_id String,
    text String,
    distance Float64",
    engine: "ReplacingMergeTree",
    partition_by: Some("toYYYYMM(window_end)"),
    order_by: "(monitor, model, version, window_end, `column`, kind, rank)",
    shard_key: "cityHash64(monitor)",
    version_column: None,
}];

/// A migration: a version number, a name and its statements.
#[derive(Debug, Clone)]
pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    pub statements: Vec<String>,
    /// Columns added to existing tables. ClickHouse 18.16 has no `ADD COLUMN IF NOT EXISTS`,
    /// so the runner adds each one only when `system.columns` lacks it: a migration
    /// interrupted half-way is simply run again, like the `IF NOT EXISTS` statements.
    pub add_columns: Vec<AddColumn>,
    /// Tables whose rows move to a new table, run after `statements` (which create the new
    /// one): each copy runs only while its source exists, and the source is dropped after it,
    /// so a migration interrupted half-way copies again (the same rows: a replacing table
    /// keeps one) or finds nothing left to copy.
    pub copies: Vec<CopyRows>,
}

/// `INSERT INTO to SELECT * FROM from FINAL`, then `from` dropped (see [`Migration::copies`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyRows {
    pub from: &'static str,
    pub to: &'static str,
    /// The copy, then the drops (on a cluster the distributed table, then its local tables).
    pub statements: Vec<String>,
}

impl CopyRows {
    fn new(from: &'static str, to: &'static str, opts: &SchemaOptions) -> CopyRows {
        let db = quote_ident(&opts.database);
        let mut statements = vec![format!(
            "INSERT INTO {db}.{to} SELECT * FROM {db}.{from} FINAL"
        )];
        statements.extend(drop_table(from, opts));
        CopyRows {
            from,
            to,
            statements,
        }
    }
}

/// One column added to an existing table (and, on a cluster, to its `_local` table first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddColumn {
    pub table: &'static str,
    pub column: &'static str,
    pub ty: &'static str,
}

impl AddColumn {
    /// The statements adding the column, in groups, each with the table whose columns say
    /// whether the group is still needed. Single node: one `ALTER`. On a cluster: the local
    /// (replicated) table first, `ALTER … ON CLUSTER`, so a distributed insert never names a
    /// column a shard lacks; then the `Distributed` table is dropped and created again
    /// `ON CLUSTER` over the altered local table. ClickHouse 18.16 refuses `ALTER … ON CLUSTER`
    /// of a table that is not replicated when the cluster's shards use `internal_replication`
    /// (code 371), and a `Distributed` table holds no rows (inserts are synchronous on a
    /// cluster, see `ClusterOptions`, so none are spooled either). A run interrupted between
    /// the two finds the column missing (or the table gone) and does both again.
    pub fn statements(&self, opts: &SchemaOptions) -> Vec<(String, Vec<String>)> {
        let db = quote_ident(&opts.database);
        let alter = |t: &str| {
            format!(
                "ALTER TABLE {db}.{t}{oc} ADD COLUMN {c} {ty}",
                oc = on_cluster(opts),
                c = self.column,
                ty = self.ty
            )
        };
        if opts.cluster.is_none() {
            return vec![(self.table.to_string(), vec![alter(self.table)])];
        }
        let local = format!("{}_local", self.table);
        let distributed = match table_def(self.table) {
            Some(def) => vec![
                format!(
                    "DROP TABLE IF EXISTS {db}.{t}{oc}",
                    t = self.table,
                    oc = on_cluster(opts)
                ),
                distributed_sql(def, opts),
            ],
            None => vec![alter(self.table)],
        };
        vec![
            (local.clone(), vec![alter(&local)]),
            (self.table.to_string(), distributed),
        ]
    }
}

/// Every table the migrations create, by name.
fn table_def(name: &str) -> Option<&'static TableDef> {
    [
        TABLES_V1, TABLES_V2, TABLES_V3, TABLES_V4, TABLES_V5, TABLES_V6, TABLES_V7, TABLES_V8,
        TABLES_V10, TABLES_V12, TABLES_V13, TABLES_V14, TABLES_V15,
    ]
    .into_iter()
    .flatten()
    .find(|t| t.name == name)
}

/// Migration 9: what a generative (LLM) request adds to an inference event. The prompt is the
/// event's `input`; these are the rest (see docs/events.md, `generation`). Old rows read the
/// defaults: no output, NULL tokens and times, not streamed.
const GENERATION_COLUMNS_V9: &[(&str, &str)] = &[
    ("output", "String DEFAULT ''"),
    ("prompt_tokens", "Nullable(UInt32)"),
    ("completion_tokens", "Nullable(UInt32)"),
    ("tokens_estimated", "UInt8 DEFAULT 0"),
    ("ttft_ms", "Nullable(Float64)"),
    ("output_tps", "Nullable(Float64)"),
    ("finish_reason", "String DEFAULT ''"),
    ("streamed", "UInt8 DEFAULT 0"),
];

/// Migration 11: the LLM comparison of a shadow run against an OpenAI-compatible candidate
/// (similarity distribution and interval, length/token ratios, latency/cost deltas, empty and
/// refusal rates; a JSON object, docs/shadow.md). Empty for classifier runs and old rows.
const SHADOW_LLM_COLUMNS_V11: &[(&str, &str)] = &[("llm", "String DEFAULT ''")];

/// Migration 9 too: a mirrored LLM answer's text, tokens and cost next to its raw body.
const SHADOW_GENERATION_COLUMNS_V9: &[(&str, &str)] = &[
    ("text", "String DEFAULT ''"),
    ("prompt_tokens", "Nullable(UInt32)"),
    ("completion_tokens", "Nullable(UInt32)"),
    ("cost", "Nullable(Float64)"),
];

fn on_cluster(opts: &SchemaOptions) -> String {
    match &opts.cluster {
        Some(c) => format!(" ON CLUSTER {}", quote_ident(c)),
        None => String::new(),
    }
}

/// Quotes an identifier with backticks.
pub fn quote_ident(s: &str) -> String {
    format!("`{}`", s.replace('\\', "\\\\").replace('`', "\\`"))
}

fn render_table(t: &TableDef, opts: &SchemaOptions) -> Vec<String> {
    let db = quote_ident(&opts.database);
    let partition = t
        .partition_by
        .map(|p| format!(" PARTITION BY {p}"))
        .unwrap_or_default();
    let version = t.version_column.unwrap_or_default();
    let replicated_version = t
        .version_column
        .map(|v| format!(", {v}"))
        .unwrap_or_default();
    match &opts.cluster {
        None => vec![format!(
            "CREATE TABLE IF NOT EXISTS {db}.{name} ({cols}\n) ENGINE = {engine}({version}){partition} ORDER BY {order}",
            name = t.name,
            cols = t.columns,
            engine = t.engine,
            order = t.order_by,
        )],
        Some(_) => {
            let local = format!("{}_local", t.name);
            vec![
                format!(
                    "CREATE TABLE IF NOT EXISTS {db}.{local}{oc} ({cols}\n) ENGINE = Replicated{engine}('/clickhouse/tables/{{shard}}/{dbname}/{local}', '{{replica}}'{replicated_version}){partition} ORDER BY {order}",
                    oc = on_cluster(opts),
                    cols = t.columns,
                    engine = t.engine,
                    dbname = opts.database,
                    order = t.order_by,
                ),
                distributed_sql(t, opts),
            ]
        }
    }
}

/// The `Distributed` table `t` over its `_local` tables (cluster mode).
fn distributed_sql(t: &TableDef, opts: &SchemaOptions) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {db}.{name}{oc} AS {db}.{name}_local ENGINE = Distributed({cluster}, {dbname}, {name}_local, {key})",
        db = quote_ident(&opts.database),
        name = t.name,
        oc = on_cluster(opts),
        cluster = quote_ident(opts.cluster.as_deref().unwrap_or_default()),
        dbname = quote_ident(&opts.database),
        key = t.shard_key,
    )
}

/// The bookkeeping table, created before anything else. On a cluster it is one replicated
/// table with a replica on every node (no `{shard}` in its path, and `{shard}-{replica}` as
/// replica name, unique across the cluster even where replica macros repeat per shard), not a
/// distributed one: every node then knows what was applied, whichever node `migrate` or a
/// later run connects to.
pub fn migrations_table(opts: &SchemaOptions) -> Vec<String> {
    let db = quote_ident(&opts.database);
    let engine = match &opts.cluster {
        Some(_) => format!(
            "ReplicatedMergeTree('/clickhouse/tables/all/{}/schema_migrations', '{{shard}}-{{replica}}')",
            opts.database
        ),
        None => "MergeTree()".to_string(),
    };
    vec![
        format!("CREATE DATABASE IF NOT EXISTS {db}{}", on_cluster(opts)),
        format!(
            "CREATE TABLE IF NOT EXISTS {db}.schema_migrations{} (version UInt32, name String, applied_at DateTime) ENGINE = {engine} ORDER BY version",
            on_cluster(opts),
        ),
    ]
}

/// All migrations, in order.
pub fn migrations(opts: &SchemaOptions) -> Vec<Migration> {
    vec![
        Migration {
            version: 1,
            name: "events, dead letters and ingest offsets",
            statements: TABLES_V1
                .iter()
                .flat_map(|t| render_table(t, opts))
                .collect(),
            add_columns: Vec::new(),
            copies: Vec::new(),
        },
        Migration {
            version: 2,
            name: "gateway shadow responses",
            statements: TABLES_V2
                .iter()
                .flat_map(|t| render_table(t, opts))
                .collect(),
            add_columns: Vec::new(),
            copies: Vec::new(),
        },
        Migration {
            version: 3,
            name: "monitor results",
            statements: TABLES_V3
                .iter()
                .flat_map(|t| render_table(t, opts))
                .collect(),
            add_columns: Vec::new(),
            copies: Vec::new(),
        },
        Migration {
            version: 4,
            name: "deployments (promotions, rollbacks, ramps)",
            statements: TABLES_V4
                .iter()
                .flat_map(|t| render_table(t, opts))
                .collect(),
            add_columns: Vec::new(),
            copies: Vec::new(),
        },
        Migration {
            version: 5,
            name: "alerting: incidents, notification outbox, silences, events",
            statements: TABLES_V5
                .iter()
                .flat_map(|t| render_table(t, opts))
                .collect(),
            add_columns: Vec::new(),
            copies: Vec::new(),
        },
        Migration {
            version: 6,
            name: "shadow runs, shadow metrics, retraining requests",
            statements: TABLES_V6
                .iter()
                .flat_map(|t| render_table(t, opts))
                .collect(),
            add_columns: Vec::new(),
            copies: Vec::new(),
        },
        Migration {
            version: 7,
            name: "per-minute rollups of inference events for the dashboards",
            statements: TABLES_V7
                .iter()
                .flat_map(|t| render_table(t, opts))
                .collect(),
            add_columns: Vec::new(),
            copies: Vec::new(),
        },
        Migration {
            version: 8,
            name: "per-minute inference samples and per-hour unit rollups (drift and ROI pages)",
            statements: TABLES_V8
                .iter()
                .flat_map(|t| render_table(t, opts))
                .collect(),
            add_columns: Vec::new(),
            copies: Vec::new(),
        },
        Migration {
            version: 9,
            name: "generative fields of inference events (LLM gateway)",
            statements: Vec::new(),
            add_columns: GENERATION_COLUMNS_V9
                .iter()
                .map(|(column, ty)| AddColumn {
                    table: "inference_events",
                    column,
                    ty,
                })
                .chain(
                    SHADOW_GENERATION_COLUMNS_V9
                        .iter()
                        .map(|(column, ty)| AddColumn {
                            table: "shadow_responses",
                            column,
                            ty,
                        }),
                )
                .collect(),
            copies: Vec::new(),
        },
        Migration {
            version: 10,
            name: "example texts of text monitors (drift page)",
            statements: TABLES_V10
                .iter()
                .flat_map(|t| render_table(t, opts))
                .collect(),
            add_columns: Vec::new(),
            copies: Vec::new(),
        },
        Migration {
            version: 11,
            name: "LLM comparison of shadow runs (semantic shadow)",
            statements: Vec::new(),
            add_columns: SHADOW_LLM_COLUMNS_V11
                .iter()
                .map(|(column, ty)| AddColumn {
                    table: "shadow_metrics",
                    column,
                    ty,
                })
                .collect(),
            copies: Vec::new(),
        },
        Migration {
            version: 12,
            name: "per-minute rollup of the generative fields (LLM page)",
            statements: TABLES_V12
                .iter()
                .flat_map(|t| render_table(t, opts))
                .collect(),
            add_columns: Vec::new(),
            copies: Vec::new(),
        },
        Migration {
            version: 13,
            name: "per-day unit rollups (ROI page over a day or more)",
            statements: TABLES_V13
                .iter()
                .flat_map(|t| render_table(t, opts))
                .collect(),
            add_columns: Vec::new(),
            copies: Vec::new(),
        },
        Migration {
            version: 14,
            name: "per-minute inference samples ordered by rank (drift page over long ranges)",
            statements: DROPPED_V14
                .iter()
                .flat_map(|t| drop_table(t, opts))
                .chain(TABLES_V14.iter().flat_map(|t| render_table(t, opts)))
                .collect(),
            add_columns: Vec::new(),
            copies: Vec::new(),
        },
        Migration {
            version: 15,
            name: "per-day unit rollups partitioned by day (one version per unit after each pass)",
            statements: TABLES_V15
                .iter()
                .flat_map(|t| render_table(t, opts))
                .collect(),
            add_columns: Vec::new(),
            copies: COPIED_V15
                .iter()
                .map(|(from, to)| CopyRows::new(from, to, opts))
                .collect(),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The options of database `vigil`, on a single node or on cluster `prod`.
    fn options(cluster: bool) -> SchemaOptions {
        SchemaOptions {
            database: "vigil".into(),
            cluster: cluster.then(|| "prod".into()),
        }
    }

    /// Migration `version`, rendered for a single node or for cluster `prod`.
    fn migration(version: u32, cluster: bool) -> Migration {
        migrations(&options(cluster))
            .into_iter()
            .find(|m| m.version == version)
            .unwrap_or_else(|| panic!("migration {version}"))
    }

    #[test]
    fn single_node_sql_uses_plain_engines() {
        let opts = options(false);
        let m = migrations(&opts);
        let sql = m[0].statements.join("\n");
        assert!(sql.contains("CREATE TABLE IF NOT EXISTS `vigil`.inference_events"));
        assert!(sql.contains("ENGINE = ReplacingMergeTree() PARTITION BY toYYYYMM(ts)"));
        assert!(!sql.contains("ON CLUSTER"));
        assert!(!sql.contains("DateTime64") && !sql.contains("Map("));
        let boot = migrations_table(&opts);
        assert!(
            boot[1].ends_with("ENGINE = MergeTree() ORDER BY version"),
            "{}",
            boot[1]
        );
    }

    #[test]
    fn cluster_sql_is_replicated_and_distributed() {
        let opts = options(true);
        let sql = migrations(&opts)[0].statements.join("\n");
        assert!(sql.contains("`vigil`.inference_events_local ON CLUSTER `prod`"));
        assert!(sql.contains(
            "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/vigil/inference_events_local', '{replica}')"
        ));
        assert!(sql.contains(
            "AS `vigil`.inference_events_local ENGINE = Distributed(`prod`, `vigil`, inference_events_local, cityHash64(event_id))"
        ));
        let boot = migrations_table(&opts);
        assert!(boot[0].ends_with("ON CLUSTER `prod`"));
        assert!(boot[1].contains("ReplicatedMergeTree('/clickhouse/tables/all/vigil/schema_migrations', '{shard}-{replica}')"), "{}", boot[1]);
    }

    #[test]
    fn added_columns_recreate_the_distributed_table() {
        let single = options(false);
        let cluster = options(true);
        let adds: Vec<AddColumn> = migrations(&single)
            .into_iter()
            .flat_map(|m| m.add_columns)
            .collect();
        assert!(!adds.is_empty());
        for add in &adds {
            assert!(table_def(add.table).is_some(), "{}", add.table);
            let one = add.statements(&single);
            assert_eq!(one.len(), 1);
            assert_eq!(
                one[0].1,
                [format!(
                    "ALTER TABLE `vigil`.{} ADD COLUMN {} {}",
                    add.table, add.column, add.ty
                )]
            );
            let on = add.statements(&cluster);
            assert_eq!(on[0].0, format!("{}_local", add.table));
            assert_eq!(
                on[0].1,
                [format!(
                    "ALTER TABLE `vigil`.{}_local ON CLUSTER `prod` ADD COLUMN {} {}",
                    add.table, add.column, add.ty
                )]
            );
            assert_eq!(on[1].0, add.table);
            assert_eq!(
                on[1].1[0],
                format!(
                    "DROP TABLE IF EXISTS `vigil`.{} ON CLUSTER `prod`",
                    add.table
                )
            );
            // The same statement migration 1 or 2 created the table with.
            assert!(
                migrations(&cluster)
                    .iter()
                    .any(|m| m.statements.contains(&on[1].1[1])),
                "{}",
                on[1].1[1]
            );
        }
    }

    #[test]
    fn migrations_ascend_and_monitor_results_is_version_3() {
        let opts = options(false);
        let all = migrations(&opts);
        assert!(all.windows(2).all(|w| w[0].version < w[1].version));
        let m3 = all.iter().find(|m| m.version == 3).expect("migration 3");
        let sql = m3.statements.join("\n");
        assert!(sql.contains("`vigil`.monitor_results"), "{sql}");
        assert!(sql.contains("ENGINE = ReplacingMergeTree() PARTITION BY toYYYYMM(window_end)"));
        assert!(sql.contains("`column` String") && sql.contains("drift UInt8"));
    }

    #[test]
    fn monitor_examples_is_version_10_and_distributed_on_a_cluster() {
        let m10 = migration(10, false);
        let sql = m10.statements.join("\n");
        assert!(sql.contains("`vigil`.monitor_examples"), "{sql}");
        assert!(sql.contains(
            "ENGINE = ReplacingMergeTree() PARTITION BY toYYYYMM(window_end) ORDER BY (monitor, model, version, window_end, `column`, kind, rank)"
        ));
        let m10 = migration(10, true);
        let sql = m10.statements.join("\n");
        assert!(
            sql.contains("ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/vigil/monitor_examples_local', '{replica}')"),
            "{sql}"
        );
        assert!(sql.contains(
            "ENGINE = Distributed(`prod`, `vigil`, monitor_examples_local, cityHash64(monitor))"
        ));
    }

    #[test]
    fn unit_rows_of_hours_and_days_differ_only_in_their_period() {
        assert!(UNIT_ROLLUP_COLUMNS.starts_with(
            "\n    model String,\n    version String,\n    unit_key UInt64,\n    hour DateTime,\n    first_ts DateTime,"
        ));
        assert_eq!(
            UNIT_DAY_COLUMNS,
            UNIT_ROLLUP_COLUMNS.replace("hour DateTime", "day DateTime")
        );
    }

    #[test]
    fn sample_by_rank_replaces_the_sample_by_minute_in_migration_14() {
        let m14 = migration(14, false);
        assert_eq!(
            m14.statements[0],
            "DROP TABLE IF EXISTS `vigil`.inference_sample_1m"
        );
        assert!(m14.statements[1].contains(
            "`vigil`.inference_sample_rank_1m (\n    model String,\n    minute DateTime,\n    rank UInt16,"
        ));
        assert!(m14.statements[1].ends_with(
            "ENGINE = ReplacingMergeTree(computed_ms) PARTITION BY toYYYYMM(minute) ORDER BY (model, rank, minute)"
        ));
        let m14 = migration(14, true);
        assert_eq!(
            m14.statements[..2],
            [
                "DROP TABLE IF EXISTS `vigil`.inference_sample_1m ON CLUSTER `prod`",
                "DROP TABLE IF EXISTS `vigil`.inference_sample_1m_local ON CLUSTER `prod`"
            ]
        );
        assert!(m14.statements[2].contains(
            "/clickhouse/tables/{shard}/vigil/inference_sample_rank_1m_local', '{replica}', computed_ms)"
        ));
        assert!(m14.statements[3].contains(
            "ENGINE = Distributed(`prod`, `vigil`, inference_sample_rank_1m_local, cityHash64(model, minute))"
        ));
    }

    #[test]
    fn unit_days_move_to_day_partitions_in_migration_15() {
        let m15 = migration(15, false);
        assert!(m15.statements[0].ends_with(
            "ENGINE = ReplacingMergeTree(computed_ms) PARTITION BY intDiv(toUInt32(day), 86400) ORDER BY (model, day, version, unit_key)"
        ));
        assert_eq!(
            m15.copies,
            [CopyRows {
                from: "inference_units_1d",
                to: "inference_units_daily",
                statements: vec![
                    "INSERT INTO `vigil`.inference_units_daily SELECT * FROM `vigil`.inference_units_1d FINAL".into(),
                    "DROP TABLE IF EXISTS `vigil`.inference_units_1d".into(),
                ],
            }]
        );
        let m15 = migration(15, true);
        assert!(m15.statements[0].contains(
            "/clickhouse/tables/{shard}/vigil/inference_units_daily_local', '{replica}', computed_ms) PARTITION BY intDiv(toUInt32(day), 86400)"
        ));
        assert_eq!(
            m15.copies[0].statements[1..],
            [
                "DROP TABLE IF EXISTS `vigil`.inference_units_1d ON CLUSTER `prod`",
                "DROP TABLE IF EXISTS `vigil`.inference_units_1d_local ON CLUSTER `prod`"
            ]
        );
    }

    #[test]
    fn rollups_are_versioned_replacing_tables() {
        let m7 = migration(7, false);
        let sql = m7.statements.join("\n");
        assert!(sql.contains("`vigil`.inference_rollup_1m"), "{sql}");
        assert!(sql.contains(
            "ENGINE = ReplacingMergeTree(computed_ms) PARTITION BY toYYYYMM(minute) ORDER BY (model, version, minute)"
        ));
        assert!(sql.contains("ENGINE = ReplacingMergeTree(updated_ms) ORDER BY name"));
        let cluster = options(true);
        let sql = migrations(&cluster)[6].statements.join("\n");
        assert!(
            sql.contains("/inference_rollup_1m_local', '{replica}', computed_ms)"),
            "{sql}"
        );
    }
}
