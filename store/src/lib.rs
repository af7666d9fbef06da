//! vigil-store: the data contract and the ClickHouse layer every other vigil crate builds on.
//!
//! - [`event`]: inference, outcome and exposure events as versioned JSON, and their validation.
//! - [`rows`]: the stored form of events, dead letters and Kafka progress.
//! - [`schema`]: versioned, idempotent migrations (single node or `ON CLUSTER`).
//! - [`Store`]: one interface over a ClickHouse server (`clickhouse://host:port/db`, HTTP) and
//!   embedded chDB (`chdb:///path`, loaded at run time).
//! - [`queries`]: typed queries (counts, time buckets, per-version aggregates, offsets).
//! - [`rollup`]: per-minute rollups of inference events for the dashboards, and their compactor.
//! - [`auth`]: bearer tokens and roles for every HTTP surface.
//!
//! SQL here runs on ClickHouse 18.16 and 26.x alike; see `docs/architecture.md`.
//!
//! ```
//! use vigil_store::event::{parse_event, EventKind, EventTime, Limits};
//! let raw = br#"{"event_id":"e1","ts":"2026-11-22T10:00:00Z","model":"churn","version":"v2",
//!                "unit_id":"u42","features":{"age":31},"prediction":{"score":0.8}}"#;
//! let now = EventTime(1_795_341_660_000); // a minute later
//! let event = parse_event(EventKind::Inference, raw, &Limits::default(), now).unwrap();
//! assert_eq!(event.event_id(), "e1");
//! ```

pub mod auth;
pub mod backend;
pub mod event;
pub mod queries;
pub mod rollup;
pub mod rowbinary;
pub mod rows;
pub mod schema;

pub use backend::{
    chdb::CHDB_VERSION, ClusterOptions, Store, StoreNodes, StoreUrl, DEFAULT_DATABASE,
};

/// Errors from the store. Messages say what to do next.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("embedded store needs libchdb.so (chDB {}) at {path}; install it with `{hint}` or point VIGIL_CHDB_LIB at a copy", CHDB_VERSION)]
    LibraryMissing { path: String, hint: String },
    #[error("cannot open store: {0}")]
    Connect(String),
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("invalid store URL {0}")]
    Url(String),
    #[error("query failed: {message}\n  in: {sql}")]
    Query { sql: String, message: String },
    #[error("insert into {table} failed: {message}")]
    Insert { table: String, message: String },
    #[error("cannot decode query result: {0}")]
    Decode(String),
}

impl StoreError {
    pub(crate) fn query(sql: &str, message: impl Into<String>) -> Self {
        let mut sql: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
        if sql.len() > 300 {
            let mut cut = 300;
            while !sql.is_char_boundary(cut) {
                cut -= 1;
            }
            sql.truncate(cut);
            sql.push('…');
        }
        StoreError::Query {
            sql,
            message: message.into(),
        }
    }

    /// Whether retrying later may succeed (the store is down or overloaded).
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// Quotes a string as a ClickHouse SQL literal.
pub fn sql_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn quotes_sql_strings() {
        assert_eq!(super::sql_string(r"a'b\c"), r"'a\'b\\c'");
    }
}
