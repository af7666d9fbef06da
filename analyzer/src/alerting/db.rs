//! Store access for alerting (migration 5 tables).
//!
//! Incidents and notifications change state by inserting a new row with a larger
//! `updated_ms`; the latest row per id wins. Reads take `argMax(column, updated_ms)` per id
//! rather than relying on `FINAL`, so the answer is right before any merge and does not depend
//! on which part a row landed in. SQL stays within ClickHouse 18.16 ∩ 26.x: inner aliases
//! carry a `_` suffix (an aggregate aliased to its own column name is an error on 26.x), and
//! the outer query casts and aliases every column to its Rust field name.

use vigil_store::rows::{
    AlertEventRow, AlertIncidentRow, AlertNotificationRow, AlertSilenceRow, TableRow,
};
use vigil_store::{sql_string, Store, StoreError};

use super::engine::{FiredColumn, Incident, IncidentState};

/// `(column, cast)` of a latest-state table, key first.
type Cols = &'static [(&'static str, &'static str)];

const INCIDENT_COLS: Cols = &[
    ("id", "toString"),
    ("rule", "toString"),
    ("monitor", "toString"),
    ("model", "toString"),
    ("version", "toString"),
    ("severity", "toString"),
    ("state", "toString"),
    ("silenced", "toUInt8"),
    ("opened_at", "toUInt32"),
    ("first_window_end", "toUInt32"),
    ("last_window_end", "toUInt32"),
    ("clear_windows", "toUInt32"),
    ("columns_json", "toString"),
    ("acked_by", "toString"),
    ("acked_at", "toUInt32"),
    ("resolved_at", "toUInt32"),
    ("updated_ms", "toUInt64"),
];

const NOTIFICATION_COLS: Cols = &[
    ("idempotency_key", "toString"),
    ("incident_id", "toString"),
    ("kind", "toString"),
    ("route", "toString"),
    ("channel", "toString"),
    ("subject", "toString"),
    ("text", "toString"),
    ("html", "toString"),
    ("body_json", "toString"),
    ("attachment_b64", "toString"),
    ("status", "toString"),
    ("attempts", "toUInt32"),
    ("next_attempt_at", "toUInt32"),
    ("created_at", "toUInt32"),
    ("delivered_at", "toUInt32"),
    ("last_error", "toString"),
    ("updated_ms", "toUInt64"),
];

/// `SELECT <latest columns> FROM (SELECT key, argMax(..) GROUP BY key) WHERE outer ORDER BY`.
fn latest_sql(
    store: &Store,
    table: &str,
    cols: Cols,
    inner_where: &str,
    outer_where: &str,
    order: &str,
) -> String {
    let key = cols[0].0;
    let inner: Vec<String> = cols
        .iter()
        .map(|(c, _)| {
            if *c == key {
                format!("{c} AS {c}_")
            } else if *c == "updated_ms" {
                format!("max(updated_ms) AS {c}_")
            } else {
                format!("argMax({c}, updated_ms) AS {c}_")
            }
        })
        .collect();
    let outer: Vec<String> = cols
        .iter()
        .map(|(c, cast)| format!("{cast}({c}_) AS {c}"))
        .collect();
    let iw = if inner_where.is_empty() {
        String::new()
    } else {
        format!(" WHERE {inner_where}")
    };
    let ow = if outer_where.is_empty() {
        String::new()
    } else {
        format!(" WHERE {outer_where}")
    };
    format!(
        "SELECT {} FROM (SELECT {} FROM {}{iw} GROUP BY {key}){ow} ORDER BY {order}",
        outer.join(", "),
        inner.join(", "),
        store.table(table),
    )
}

/// Milliseconds since the epoch, strictly increasing within this process (a state change
/// inserted right after another must win the `argMax`).
pub fn now_ms() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let wall = chrono::Utc::now().timestamp_millis().max(0) as u64;
    let mut prev = LAST.load(Ordering::Relaxed);
    loop {
        let next = wall.max(prev + 1);
        match LAST.compare_exchange(prev, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(p) => prev = p,
        }
    }
}

pub fn now_secs() -> u32 {
    chrono::Utc::now().timestamp().clamp(0, u32::MAX as i64) as u32
}

// ---- incidents -------------------------------------------------------------------------

impl Incident {
    pub fn to_row(&self, updated_ms: u64) -> AlertIncidentRow {
        AlertIncidentRow {
            id: self.id.clone(),
            rule: self.rule.clone(),
            monitor: self.monitor.clone(),
            model: self.model.clone(),
            version: self.version.clone(),
            severity: self.severity.clone(),
            state: self.state.as_str().to_string(),
            silenced: u8::from(self.silenced),
            opened_at: self.opened_at,
            first_window_end: self.first_window_end,
            last_window_end: self.last_window_end,
            clear_windows: self.clear_windows,
            columns_json: serde_json::json!({"kind": self.kind, "columns": self.columns})
                .to_string(),
            acked_by: self.acked_by.clone(),
            acked_at: self.acked_at,
            resolved_at: self.resolved_at,
            updated_ms,
        }
    }

    pub fn from_row(r: &AlertIncidentRow) -> Incident {
        #[derive(serde::Deserialize, Default)]
        struct Cols {
            #[serde(default)]
            kind: String,
            #[serde(default)]
            columns: Vec<FiredColumn>,
        }
        let cols: Cols = serde_json::from_str(&r.columns_json).unwrap_or_default();
        Incident {
            id: r.id.clone(),
            rule: r.rule.clone(),
            kind: cols.kind,
            monitor: r.monitor.clone(),
            model: r.model.clone(),
            version: r.version.clone(),
            severity: r.severity.clone(),
            state: IncidentState::parse(&r.state).unwrap_or(IncidentState::Firing),
            silenced: r.silenced != 0,
            opened_at: r.opened_at,
            first_window_end: r.first_window_end,
            last_window_end: r.last_window_end,
            clear_windows: r.clear_windows,
            columns: cols.columns,
            acked_by: r.acked_by.clone(),
            acked_at: r.acked_at,
            resolved_at: r.resolved_at,
        }
    }
}

/// Latest state of incidents matching `outer_where` (on the latest columns), newest first.
pub async fn incidents(store: &Store, outer_where: &str) -> Result<Vec<Incident>, StoreError> {
    let rows = store
        .fetch::<AlertIncidentRow>(&latest_sql(
            store,
            AlertIncidentRow::TABLE,
            INCIDENT_COLS,
            "",
            outer_where,
            "opened_at_ DESC, id_",
        ))
        .await?;
    Ok(rows.iter().map(Incident::from_row).collect())
}

/// Incidents of one rule and group, for the engine's state.
pub async fn group_incidents(
    store: &Store,
    rule: &str,
    monitor: &str,
    model: &str,
    version: &str,
) -> Result<Vec<Incident>, StoreError> {
    incidents(
        store,
        &format!(
            "rule_ = {} AND monitor_ = {} AND model_ = {} AND version_ = {}",
            sql_string(rule),
            sql_string(monitor),
            sql_string(model),
            sql_string(version)
        ),
    )
    .await
}

pub async fn incident(store: &Store, id: &str) -> Result<Option<Incident>, StoreError> {
    Ok(incidents(store, &format!("id_ = {}", sql_string(id)))
        .await?
        .into_iter()
        .next())
}

pub async fn put_incident(store: &Store, i: &Incident) -> Result<(), StoreError> {
    store.insert(&[i.to_row(now_ms())]).await
}

pub async fn add_event(
    store: &Store,
    incident: &Incident,
    event: &str,
    actor: &str,
    detail: &str,
) -> Result<(), StoreError> {
    let ms = now_ms();
    store
        .insert(&[AlertEventRow {
            at: (ms / 1000) as u32,
            at_ms: ms,
            incident_id: incident.id.clone(),
            event: event.to_string(),
            actor: actor.to_string(),
            model: incident.model.clone(),
            monitor: incident.monitor.clone(),
            detail: detail.to_string(),
        }])
        .await
}

/// History of one incident (or all, with `None`), oldest first.
pub async fn events(
    store: &Store,
    incident_id: Option<&str>,
) -> Result<Vec<AlertEventRow>, StoreError> {
    let filter = incident_id
        .map(|i| format!("WHERE incident_id = {}", sql_string(i)))
        .unwrap_or_default();
    store
        .fetch::<AlertEventRow>(&format!(
            "SELECT toUInt32(at) AS at, toUInt64(at_ms) AS at_ms,
                    toString(incident_id) AS incident_id, toString(event) AS event,
                    toString(actor) AS actor, toString(model) AS model,
                    toString(monitor) AS monitor, toString(detail) AS detail
             FROM {} {filter} ORDER BY at_ms",
            store.table(AlertEventRow::TABLE)
        ))
        .await
}

// ---- silences --------------------------------------------------------------------------

pub async fn add_silence(store: &Store, s: &AlertSilenceRow) -> Result<(), StoreError> {
    store.insert(std::slice::from_ref(s)).await
}

/// Silences in force at `at`.
pub async fn active_silences(store: &Store, at: u32) -> Result<Vec<AlertSilenceRow>, StoreError> {
    store
        .fetch::<AlertSilenceRow>(&format!(
            "SELECT toString(id) AS id, toString(model) AS model, toString(monitor) AS monitor,
                    toUInt32(starts_at) AS starts_at, toUInt32(ends_at) AS ends_at,
                    toString(reason) AS reason, toString(created_by) AS created_by,
                    toUInt32(created_at) AS created_at
             FROM {} WHERE starts_at <= toDateTime({at}) AND ends_at > toDateTime({at})
             ORDER BY ends_at",
            store.table(AlertSilenceRow::TABLE)
        ))
        .await
}

pub fn silenced_by(silences: &[AlertSilenceRow], model: &str, monitor: &str) -> bool {
    silences
        .iter()
        .any(|s| s.model == model && (s.monitor.is_empty() || s.monitor == monitor))
}

// ---- notifications (the outbox) --------------------------------------------------------

pub async fn notifications(
    store: &Store,
    inner_where: &str,
    outer_where: &str,
) -> Result<Vec<AlertNotificationRow>, StoreError> {
    store
        .fetch::<AlertNotificationRow>(&latest_sql(
            store,
            AlertNotificationRow::TABLE,
            NOTIFICATION_COLS,
            inner_where,
            outer_where,
            "created_at_, idempotency_key_",
        ))
        .await
}

/// Whether a notification with this key was ever written.
pub async fn notification_exists(store: &Store, key: &str) -> Result<bool, StoreError> {
    #[derive(clickhouse::Row, serde::Deserialize)]
    struct N {
        n: u64,
    }
    let rows = store
        .fetch::<N>(&format!(
            "SELECT toUInt64(count()) AS n FROM {} WHERE idempotency_key = {}",
            store.table(AlertNotificationRow::TABLE),
            sql_string(key)
        ))
        .await?;
    Ok(rows.first().is_some_and(|r| r.n > 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_ms_is_strictly_increasing() {
        let a = now_ms();
        let b = now_ms();
        assert!(b > a);
    }
}
