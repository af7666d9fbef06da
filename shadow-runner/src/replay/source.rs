//! Reading replayed traffic from the store: inference events with their input text, one page at a
//! time with keyset pagination on `(ts, event_id)`, and their ground-truth labels (outcomes).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use vigil_store::{sql_string, Store, StoreError};

/// Which inference events a replay reads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Filters {
    /// Only events served by this version.
    pub version: Option<String>,
    /// Only events whose attributes have these values.
    pub attributes: BTreeMap<String, String>,
    /// Stop after this many events (after sampling).
    pub limit: Option<u64>,
}

/// One replayed request.
#[derive(Debug, Clone, PartialEq, clickhouse::Row, Deserialize)]
pub struct ReplayEvent {
    /// Inference event id.
    pub event_id: String,
    /// Unix seconds.
    pub ts: u32,
    /// Version that served it.
    pub version: String,
    /// The input text.
    pub input: String,
    /// Production's logged label (empty when none).
    pub label: String,
}

#[derive(clickhouse::Row, Deserialize)]
struct Truth {
    inference_id: String,
    name: String,
}

#[derive(clickhouse::Row, Deserialize)]
struct Count {
    n: u64,
}

/// The events of `model` in `[since, until)` matching `filters`, sampled at `sample_rate`
/// (deterministic: by a hash of the event id, so a resumed job sees the same sample).
#[derive(Debug, Clone, PartialEq)]
pub struct Scope<'a> {
    /// Model name.
    pub model: &'a str,
    /// Window start (unix seconds).
    pub since: u32,
    /// Window end (exclusive).
    pub until: u32,
    /// Share of events kept.
    pub sample_rate: f64,
    /// Filters.
    pub filters: &'a Filters,
}

impl Scope<'_> {
    /// The WHERE clause (without cursor).
    pub fn where_clause(&self) -> String {
        let mut w = format!(
            "model = {} AND ts >= toDateTime({}) AND ts < toDateTime({}) AND input != ''",
            sql_string(self.model),
            self.since,
            self.until
        );
        if self.sample_rate < 1.0 {
            let keep = (self.sample_rate.clamp(0.0, 1.0) * 1_000_000.0).round() as u64;
            w.push_str(&format!(" AND cityHash64(event_id) % 1000000 < {keep}"));
        }
        if let Some(v) = &self.filters.version {
            w.push_str(&format!(" AND version = {}", sql_string(v)));
        }
        for (k, v) in &self.filters.attributes {
            w.push_str(&format!(
                " AND attr_values[indexOf(attr_names, {})] = {}",
                sql_string(k),
                sql_string(v)
            ));
        }
        w
    }
}

/// Events in scope (before `limit`).
pub async fn count(store: &Store, scope: &Scope<'_>) -> Result<u64, StoreError> {
    let rows = store
        .fetch::<Count>(&format!(
            "SELECT toUInt64(count()) AS n FROM {} FINAL WHERE {}",
            store.table("inference_events"),
            scope.where_clause()
        ))
        .await?;
    Ok(rows.first().map_or(0, |r| r.n))
}

/// The next page of at most `page` events after the cursor `(ts, event_id)` (an empty
/// `event_id` with `ts` 0 means "from the start"), ordered by `(ts, event_id)`.
pub async fn page(
    store: &Store,
    scope: &Scope<'_>,
    cursor: (u32, &str),
    page: usize,
) -> Result<Vec<ReplayEvent>, StoreError> {
    let after = if cursor.0 == 0 && cursor.1.is_empty() {
        String::new()
    } else {
        format!(
            " AND (ts > toDateTime({ts}) OR (ts = toDateTime({ts}) AND event_id > {id}))",
            ts = cursor.0,
            id = sql_string(cursor.1)
        )
    };
    store
        .fetch::<ReplayEvent>(&format!(
            "SELECT toString(event_id) AS event_id, toUInt32(ts) AS ts,
                    toString(version) AS version, toString(input) AS input,
                    toString(ifNull(label, '')) AS label
             FROM {} FINAL
             WHERE {}{after}
             ORDER BY ts, event_id
             LIMIT {page}",
            store.table("inference_events"),
            scope.where_clause()
        ))
        .await
}

/// Ground truth of `event_ids`: outcome events of `model` named `<prefix><class>` that name the
/// inference (`inference_id`); the latest one wins. Returns event id → class.
pub async fn truth(
    store: &Store,
    model: &str,
    prefix: &str,
    event_ids: &[&str],
) -> Result<HashMap<String, String>, StoreError> {
    if event_ids.is_empty() || prefix.is_empty() {
        return Ok(HashMap::new());
    }
    let ids: Vec<String> = event_ids.iter().map(|id| sql_string(id)).collect();
    let plen = prefix.len();
    let rows = store
        .fetch::<Truth>(&format!(
            "SELECT toString(l_id) AS inference_id, toString(l_name) AS name
             FROM (SELECT inference_id AS l_id, argMax(name, ts_ms) AS l_name
                   FROM {} FINAL
                   WHERE model = {} AND substring(name, 1, {plen}) = {} AND inference_id IN ({})
                   GROUP BY inference_id)",
            store.table("outcome_events"),
            sql_string(model),
            sql_string(prefix),
            ids.join(",")
        ))
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let class = r.name.get(plen..)?.to_string();
            Some((r.inference_id, class))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn where_clause_quotes_and_samples() {
        let filters = Filters {
            version: Some("v'1".into()),
            attributes: [("region".to_string(), "eu".to_string())].into(),
            limit: None,
        };
        let scope = Scope {
            model: "intent",
            since: 10,
            until: 20,
            sample_rate: 0.25,
            filters: &filters,
        };
        let w = scope.where_clause();
        assert!(w.contains("model = 'intent'"), "{w}");
        assert!(w.contains("cityHash64(event_id) % 1000000 < 250000"), "{w}");
        assert!(w.contains("version = 'v\\'1'"), "{w}");
        assert!(
            w.contains("attr_values[indexOf(attr_names, 'region')] = 'eu'"),
            "{w}"
        );
        let all = Scope {
            sample_rate: 1.0,
            ..scope
        };
        assert!(!all.where_clause().contains("cityHash64"));
    }
}
