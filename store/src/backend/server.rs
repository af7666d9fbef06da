//! A ClickHouse server over HTTP, through the official `clickhouse` crate, with failover over
//! the nodes the URL lists.
//!
//! The crate talks to one URL. A cluster has several nodes that each answer for the whole
//! cluster (the `Distributed` tables fan out), so the store keeps one client per node, uses one
//! at a time (sticky: the node in use stays in use while it answers) and moves to the next when a
//! request fails for network reasons — a refused or reset connection, a timeout. Query errors
//! (bad SQL, a shard's replicas all down) are answers, not failovers: another node would give the
//! same answer.
//!
//! Retrying an insert on another node cannot duplicate rows: an insert through a `Distributed`
//! table with `insert_distributed_sync=1` splits the rows into the same per-shard blocks every
//! time, replicated tables drop a block they already hold (block de-duplication), and every
//! table is a `ReplacingMergeTree` keyed by its event id besides.

use super::Priority;
use crate::StoreError;
use bytes::Bytes;
use clickhouse::{Client, RowOwned, RowRead};
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// One node's client.
struct Node {
    endpoint: String,
    client: Client,
}

pub struct ServerStore {
    nodes: Vec<Node>,
    /// Index in `nodes` of the node requests go to first.
    current: AtomicUsize,
    /// Times requests moved to another node since start.
    failovers: AtomicU64,
    pub(crate) version: String,
    /// The cluster's name when the tables are distributed.
    pub(crate) cluster: Option<String>,
}

/// `RowBinaryWithNamesAndTypes` (which the crate's validation needs) arrived in ClickHouse 24.10.
fn supports_validation(version: &str) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    (major, minor) >= (24, 10)
}

fn classify(e: clickhouse::error::Error, sql: &str) -> StoreError {
    match e {
        clickhouse::error::Error::Network(err) => StoreError::Unavailable(err.to_string()),
        clickhouse::error::Error::TimedOut => StoreError::Unavailable("timed out".into()),
        other => StoreError::query(sql, other.to_string()),
    }
}

/// A statement with its query priority: readers 1, the compactor 2 (the `priority` setting).
/// While a query of a higher priority (a lower number) runs, the server pauses those of a lower
/// one between blocks; 0, the default, takes no part, so readers must carry 1 for the
/// compactor's 2 to give way. Measured on 18.16.1: a 150 ms reader took 330 ms beside a
/// 2-thread background scan without priorities and 185 ms with them.
fn query(client: &Client, sql: &str, priority: Priority) -> clickhouse::query::Query {
    let level = match priority {
        Priority::Foreground => "1",
        Priority::Background => "2",
    };
    client.query_raw(sql).with_setting("priority", level)
}

impl ServerStore {
    /// Connects to the first of `endpoints` that answers (in order), and keeps clients for all.
    pub async fn connect(
        endpoints: &[String],
        user: Option<&str>,
        password: Option<&str>,
        compress: bool,
        cluster: Option<&super::ClusterOptions>,
    ) -> Result<ServerStore, StoreError> {
        let compression = if compress {
            clickhouse::Compression::Lz4
        } else {
            clickhouse::Compression::None
        };
        let client_for = |endpoint: &str| {
            let mut client = Client::default()
                .with_url(endpoint)
                .with_validation(false)
                .with_compression(compression);
            if let Some(u) = user {
                client = client.with_user(u);
            }
            if let Some(p) = password {
                client = client.with_password(p);
            }
            client
        };
        let mut version = None;
        let mut failures = Vec::new();
        for (i, endpoint) in endpoints.iter().enumerate() {
            match client_for(endpoint)
                .query_raw("SELECT toString(version())")
                .fetch_one::<String>()
                .await
                .map_err(|e| classify(e, "SELECT version()"))
            {
                Ok(v) => {
                    version = Some((i, v));
                    break;
                }
                Err(StoreError::Unavailable(m)) => failures.push(format!("{endpoint}: {m}")),
                Err(other) => return Err(other),
            }
        }
        let Some((first, version)) = version else {
            return Err(StoreError::Unavailable(format!(
                "cannot reach ClickHouse at {} (start it with `bash scripts/services/clickhouse.sh start`)",
                failures.join("; ")
            )));
        };
        if first > 0 {
            tracing::warn!(unreachable = %failures.join("; "), using = %endpoints[first], "ClickHouse: first node(s) of the store URL unreachable");
        }
        let settings = cluster.map(|c| c.settings()).unwrap_or_default();
        let nodes = endpoints
            .iter()
            .map(|endpoint| {
                let mut client =
                    client_for(endpoint).with_validation(supports_validation(&version));
                // Single node: no settings, the requests are exactly what they were.
                for (name, value) in &settings {
                    client = client.with_setting(*name, value.clone());
                }
                Node {
                    endpoint: endpoint.clone(),
                    client,
                }
            })
            .collect();
        Ok(ServerStore {
            nodes,
            current: AtomicUsize::new(first),
            failovers: AtomicU64::new(0),
            version,
            cluster: cluster.map(|c| c.name.clone()),
        })
    }

    /// The node requests go to now.
    pub fn endpoint(&self) -> &str {
        &self.nodes[self.current.load(Ordering::Relaxed)].endpoint
    }

    /// Every node of the URL, in order.
    pub fn endpoints(&self) -> impl Iterator<Item = &str> {
        self.nodes.iter().map(|n| n.endpoint.as_str())
    }

    pub fn failovers(&self) -> u64 {
        self.failovers.load(Ordering::Relaxed)
    }

    /// Runs `op` on the node in use and, when it cannot be reached, on each next node once.
    async fn on_any_node<T, F, Fut>(&self, sql: &str, op: F) -> Result<T, StoreError>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = Result<T, clickhouse::error::Error>>,
    {
        let n = self.nodes.len();
        let start = self.current.load(Ordering::Relaxed);
        let mut failures = Vec::new();
        for step in 0..n {
            let i = (start + step) % n;
            match op(self.nodes[i].client.clone()).await {
                Ok(v) => {
                    if step > 0
                        && self
                            .current
                            .compare_exchange(start, i, Ordering::Relaxed, Ordering::Relaxed)
                            .is_ok()
                    {
                        self.failovers.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(from = %self.nodes[start].endpoint, to = %self.nodes[i].endpoint, "ClickHouse failover: {}", failures.join("; "));
                    }
                    return Ok(v);
                }
                Err(e) => match classify(e, sql) {
                    StoreError::Unavailable(m) => {
                        failures.push(format!("{}: {m}", self.nodes[i].endpoint))
                    }
                    other => return Err(other),
                },
            }
        }
        Err(StoreError::Unavailable(if n == 1 {
            failures.join("")
        } else {
            format!("no node answers: {}", failures.join("; "))
        }))
    }

    pub async fn execute(&self, sql: &str, priority: Priority) -> Result<(), StoreError> {
        self.on_any_node(
            sql,
            |c| async move { query(&c, sql, priority).execute().await },
        )
        .await
    }

    pub async fn fetch<T: RowOwned + RowRead>(
        &self,
        sql: &str,
        priority: Priority,
    ) -> Result<Vec<T>, StoreError> {
        self.on_any_node(sql, |c| async move {
            query(&c, sql, priority).fetch_all::<T>().await
        })
        .await
    }

    pub async fn query_formatted(
        &self,
        sql: &str,
        format: &str,
        priority: Priority,
    ) -> Result<Vec<u8>, StoreError> {
        self.on_any_node(sql, |c| async move {
            let mut cursor = query(&c, sql, priority).fetch_bytes(format)?;
            let mut out = Vec::new();
            while let Some(chunk) = cursor.next().await? {
                out.extend_from_slice(&chunk);
            }
            Ok(out)
        })
        .await
    }

    pub async fn insert_rowbinary(
        &self,
        insert_sql: &str,
        data: Vec<u8>,
    ) -> Result<(), StoreError> {
        let sql = format!("{insert_sql} FORMAT RowBinary");
        let data = Bytes::from(data);
        self.on_any_node(&sql, |c| {
            let (sql, data) = (sql.clone(), data.clone());
            async move {
                let mut insert = c.insert_formatted_with(sql);
                insert.send(data).await?;
                insert.end().await
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn validation_only_on_new_servers() {
        assert!(!super::supports_validation("18.16.1"));
        assert!(!super::supports_validation("24.3.2.1"));
        assert!(super::supports_validation("24.10.1"));
        assert!(super::supports_validation("26.7.3.1"));
    }
}
