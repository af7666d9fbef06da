//! A ClickHouse server over HTTP, through the official `clickhouse` crate.

use crate::StoreError;
use bytes::Bytes;
use clickhouse::{Client, RowOwned, RowRead};

pub struct ServerStore {
    client: Client,
    pub(crate) version: String,
    pub(crate) endpoint: String,
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

impl ServerStore {
    pub async fn connect(
        endpoint: &str,
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
        let version: String = client
            .query_raw("SELECT toString(version())")
            .fetch_one()
            .await
            .map_err(|e| match classify(e, "SELECT version()") {
                StoreError::Unavailable(m) => StoreError::Unavailable(format!(
                    "cannot reach ClickHouse at {endpoint}: {m} (start it with `bash scripts/services/clickhouse.sh start`)"
                )),
                other => other,
            })?;
        let mut client = client.with_validation(supports_validation(&version));
        // Single node: no settings, the requests are exactly what they were.
        for (name, value) in cluster.map(|c| c.settings()).unwrap_or_default() {
            client = client.with_setting(name, value);
        }
        Ok(ServerStore {
            client,
            version,
            endpoint: endpoint.to_string(),
            cluster: cluster.map(|c| c.name.clone()),
        })
    }

    pub async fn execute(&self, sql: &str) -> Result<(), StoreError> {
        self.client
            .query_raw(sql)
            .execute()
            .await
            .map_err(|e| classify(e, sql))
    }

    pub async fn fetch<T: RowOwned + RowRead>(&self, sql: &str) -> Result<Vec<T>, StoreError> {
        self.client
            .query_raw(sql)
            .fetch_all::<T>()
            .await
            .map_err(|e| classify(e, sql))
    }

    pub async fn query_formatted(&self, sql: &str, format: &str) -> Result<Vec<u8>, StoreError> {
        let mut cursor = self
            .client
            .query_raw(sql)
            .fetch_bytes(format)
            .map_err(|e| classify(e, sql))?;
        let mut out = Vec::new();
        while let Some(chunk) = cursor.next().await.map_err(|e| classify(e, sql))? {
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    pub async fn insert_rowbinary(
        &self,
        insert_sql: &str,
        data: Vec<u8>,
    ) -> Result<(), StoreError> {
        let sql = format!("{insert_sql} FORMAT RowBinary");
        let mut insert = self.client.insert_formatted_with(sql.clone());
        insert
            .send(Bytes::from(data))
            .await
            .map_err(|e| classify(e, &sql))?;
        insert.end().await.map_err(|e| classify(e, &sql))
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
