//! One interface over two backends: a ClickHouse server (HTTP) and embedded chDB.

pub mod chdb;
pub mod server;

use crate::rowbinary;
use crate::rows::TableRow;
use crate::schema::{self, quote_ident, SchemaOptions};
use crate::StoreError;
use clickhouse::{RowOwned, RowRead};
use std::path::PathBuf;
use std::sync::Arc;

/// Whether a statement may make readers wait (foreground: pages, the API, the collector) or
/// gives way to them (background: the rollup compactor). On the embedded store background
/// statements run on their own chDB connection at the lowest CPU priority
/// ([`chdb::ChdbConnection`]); on a server they carry a lower query `priority`, which the
/// server pauses while a reader's query runs ([`server::ServerStore`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Priority {
    #[default]
    Foreground,
    Background,
}

/// Where the store lives, parsed from a URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// `clickhouse://[user[:password]@]host:port[,host:port…]/database[?compression=lz4|none]`
    /// (HTTP ports). Several nodes: requests go to the first that answers and move to the next
    /// when it cannot be reached (see [`server`]).
    Server {
        endpoints: Vec<String>,
        database: String,
        user: Option<String>,
        password: Option<String>,
        /// LZ4-compress inserts and results. Default: on, except for loopback hosts, where it
        /// costs CPU on both ends and saves nothing (co-located: +20% raw insert speed).
        compress: bool,
        /// The cluster the tables are distributed over (`[store] cluster`; never from the URL
        /// itself): queries then carry the settings of [`ClusterOptions::settings`].
        cluster: Option<ClusterOptions>,
    },
    /// `chdb:///path/to/dir[?database=NAME]`.
    Embedded { path: PathBuf, database: String },
}

/// A store on a ClickHouse cluster: `_local` replicated tables behind `Distributed` ones (see
/// [`crate::schema`]). What a single node gives for free has to be asked for per query here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterOptions {
    /// The cluster's name in the servers' `remote_servers`.
    pub name: String,
    /// Replicas of a shard that must hold an insert before it is acknowledged (`insert_quorum`);
    /// 0 or 1: one replica (the others catch up asynchronously, so a read through another node
    /// right after may miss the rows). With a quorum, a replica down makes inserts fail after
    /// `insert_quorum_timeout_ms` (they are retried and de-duplicated), and ClickHouse before 20.x
    /// refuses a second concurrent quorum insert into the same shard (code 286, retried).
    pub insert_quorum: u32,
    /// How long a quorum insert waits for the replicas (ClickHouse's default: 600 000 ms).
    pub insert_quorum_timeout_ms: Option<u64>,
}

impl ClusterOptions {
    /// The settings every request carries on a cluster:
    /// - `insert_distributed_sync=1`: an insert into a `Distributed` table returns once every
    ///   shard has the rows (the default only spools them on the receiving node, so "stored" and
    ///   a Kafka offset in `ingest_offsets` would be claimed before the rows are queryable);
    /// - `distributed_product_mode=global`: an `IN`/`JOIN` subquery over a distributed table
    ///   inside a query over a distributed table runs once, on the node queried, and its result
    ///   is sent to every shard (`GLOBAL IN`): the answer a single node gives, since the tables
    ///   are sharded by different keys (outcomes by their own id, not their inference's). The
    ///   default refuses these queries (code 288); the SQL stays the same on every backend;
    /// - `wait_end_of_query=1`: the server buffers a result before answering, so a shard failing
    ///   mid-query is an HTTP error, never a 200 with a truncated body (ClickHouse 18.16 appends
    ///   its exception text to a streamed body in a form the client does not detect);
    /// - `insert_quorum` (and its timeout) when configured.
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![
            ("insert_distributed_sync", "1".to_string()),
            ("distributed_product_mode", "global".to_string()),
            ("wait_end_of_query", "1".to_string()),
        ];
        if self.insert_quorum > 1 {
            out.push(("insert_quorum", self.insert_quorum.to_string()));
            if let Some(ms) = self.insert_quorum_timeout_ms {
                out.push(("insert_quorum_timeout", ms.to_string()));
            }
        }
        out
    }
}

/// Shows the URL with any password replaced by `***`.
impl std::fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreUrl::Server {
                endpoints,
                database,
                user,
                password,
                ..
            } => {
                let host = endpoints
                    .iter()
                    .map(|e| e.split("://").nth(1).unwrap_or(e))
                    .collect::<Vec<_>>()
                    .join(",");
                match (user, password) {
                    (Some(u), Some(_)) => write!(f, "clickhouse://{u}:***@{host}/{database}"),
                    (Some(u), None) => write!(f, "clickhouse://{u}@{host}/{database}"),
                    _ => write!(f, "clickhouse://{host}/{database}"),
                }
            }
            StoreUrl::Embedded { path, database } => {
                write!(f, "chdb://{}?database={database}", path.display())
            }
        }
    }
}

/// Database used when a URL names none.
pub const DEFAULT_DATABASE: &str = "vigil";

impl std::str::FromStr for StoreUrl {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, StoreError> {
        // `scheme://[userinfo@]h1:p1,h2:p2/rest`: one URL per node, parsed alike, merged.
        if let Some((scheme, tail)) = s.split_once("://") {
            let end = tail.find(['/', '?', '#']).unwrap_or(tail.len());
            let (authority, rest) = tail.split_at(end);
            let (userinfo, hosts) = match authority.rfind('@') {
                Some(at) => authority.split_at(at + 1),
                None => ("", authority),
            };
            if hosts.contains(',') {
                let mut merged: Option<StoreUrl> = None;
                for host in hosts.split(',') {
                    if host.is_empty() {
                        return Err(StoreError::Url(format!(
                            "`{s}`: empty host in the node list"
                        )));
                    }
                    let one: StoreUrl = format!("{scheme}://{userinfo}{host}{rest}").parse()?;
                    let StoreUrl::Server { endpoints, .. } = &one else {
                        return Err(StoreError::Url(format!(
                            "`{s}`: a node list is for ClickHouse servers only"
                        )));
                    };
                    match &mut merged {
                        None => merged = Some(one),
                        Some(StoreUrl::Server { endpoints: all, .. }) => {
                            if all.contains(&endpoints[0]) {
                                return Err(StoreError::Url(format!(
                                    "`{s}`: {host} is listed twice"
                                )));
                            }
                            all.extend(endpoints.iter().cloned())
                        }
                        Some(_) => unreachable!("every node parses as a server"),
                    }
                }
                return Ok(merged.expect("at least two hosts"));
            }
        }
        let bad = |why: &str| {
            StoreError::Url(format!(
                "`{s}`: {why} (expected clickhouse://host:port/db or chdb:///path)"
            ))
        };
        let url = url::Url::parse(s).map_err(|e| bad(&e.to_string()))?;
        let database_param = url
            .query_pairs()
            .find(|(k, _)| k == "database")
            .map(|(_, v)| v.into_owned());
        match url.scheme() {
            "clickhouse" | "http" | "https" => {
                let host = url.host_str().ok_or_else(|| bad("no host"))?;
                let port = url.port().unwrap_or(8123);
                let scheme = if url.scheme() == "https" {
                    "https"
                } else {
                    "http"
                };
                let path_db = url.path().trim_matches('/');
                let database = database_param
                    .or_else(|| (!path_db.is_empty()).then(|| path_db.to_string()))
                    .unwrap_or_else(|| DEFAULT_DATABASE.to_string());
                let loopback =
                    matches!(host, "localhost" | "127.0.0.1" | "[::1]") || host.starts_with("127.");
                let compress = match url
                    .query_pairs()
                    .find(|(k, _)| k == "compression")
                    .map(|(_, v)| v.into_owned())
                {
                    None => !loopback,
                    Some(v) if v == "lz4" => true,
                    Some(v) if v == "none" => false,
                    Some(v) => {
                        return Err(bad(&format!("compression must be lz4 or none, not `{v}`")))
                    }
                };
                Ok(StoreUrl::Server {
                    endpoints: vec![format!("{scheme}://{host}:{port}")],
                    database,
                    user: (!url.username().is_empty()).then(|| url.username().to_string()),
                    password: url.password().map(str::to_string),
                    compress,
                    cluster: None,
                })
            }
            "chdb" => {
                let path = url.path();
                if path.is_empty() || path == "/" {
                    return Err(bad("no directory"));
                }
                Ok(StoreUrl::Embedded {
                    path: PathBuf::from(path),
                    database: database_param.unwrap_or_else(|| DEFAULT_DATABASE.to_string()),
                })
            }
            other => Err(bad(&format!("unknown scheme `{other}`"))),
        }
    }
}

#[allow(clippy::large_enum_variant)] // one per store, behind an Arc
enum Backend {
    Server(server::ServerStore),
    Embedded(Arc<chdb::ChdbConnection>),
}

/// The nodes of a ClickHouse server store (see [`Store::nodes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreNodes {
    pub endpoints: Vec<String>,
    pub in_use: String,
    pub failovers: u64,
}

/// A handle to the store. Cheap to clone; safe to share across tasks.
#[derive(Clone)]
pub struct Store {
    backend: Arc<Backend>,
    database: Arc<str>,
    /// On the embedded store: whether this handle's statements yield to readers
    /// ([`Store::background`]).
    priority: Priority,
}

impl Store {
    /// Opens the store at `url` (see [`StoreUrl`]). Does not create tables: call [`Store::migrate`].
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        let parsed: StoreUrl = url.parse()?;
        Self::open_url(&parsed).await
    }

    pub async fn open_url(url: &StoreUrl) -> Result<Store, StoreError> {
        match url {
            StoreUrl::Server {
                endpoints,
                database,
                user,
                password,
                compress,
                cluster,
            } => {
                let s = server::ServerStore::connect(
                    endpoints,
                    user.as_deref(),
                    password.as_deref(),
                    *compress,
                    cluster.as_ref(),
                )
                .await?;
                Ok(Store {
                    backend: Arc::new(Backend::Server(s)),
                    database: database.as_str().into(),
                    priority: Priority::Foreground,
                })
            }
            StoreUrl::Embedded { path, database } => {
                let path = path.clone();
                let conn = tokio::task::spawn_blocking(move || chdb::ChdbConnection::open(&path))
                    .await
                    .map_err(|e| StoreError::Connect(e.to_string()))??;
                Ok(Store {
                    backend: Arc::new(Backend::Embedded(conn)),
                    database: database.as_str().into(),
                    priority: Priority::Foreground,
                })
            }
        }
    }

    /// The same store for background work (the rollup compactor): its statements give way to
    /// readers' (see [`Priority`]).
    pub fn background(&self) -> Store {
        Store {
            priority: Priority::Background,
            ..self.clone()
        }
    }

    /// The database tables live in.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// `\`db\`.table`: every statement names its tables fully, so stores for different
    /// databases can share one chDB connection.
    pub fn table(&self, name: &str) -> String {
        format!("{}.{}", quote_ident(&self.database), name)
    }

    /// `clickhouse 18.16.1 at http://…` or `chdb 26.7.3 at /path`.
    pub fn describe(&self) -> String {
        match &*self.backend {
            Backend::Server(s) => match &s.cluster {
                None => format!(
                    "ClickHouse server {} at {} (database {})",
                    s.version,
                    s.endpoint(),
                    self.database
                ),
                Some(c) => format!(
                    "ClickHouse server {} at {} (database {}, cluster {})",
                    s.version,
                    s.endpoint(),
                    self.database,
                    c
                ),
            },
            Backend::Embedded(c) => {
                format!("embedded chDB {} (database {})", c.version(), self.database)
            }
        }
    }

    /// For a ClickHouse server store: every node of its URL, the one in use, and how many
    /// times requests moved to another node since start (`/metrics`).
    pub fn nodes(&self) -> Option<StoreNodes> {
        match &*self.backend {
            Backend::Server(s) => Some(StoreNodes {
                endpoints: s.endpoints().map(str::to_string).collect(),
                in_use: s.endpoint().to_string(),
                failovers: s.failovers(),
            }),
            Backend::Embedded(_) => None,
        }
    }

    /// The cluster the tables are distributed over (`[store] cluster`), if any.
    pub fn cluster(&self) -> Option<&str> {
        match &*self.backend {
            Backend::Server(s) => s.cluster.as_deref(),
            Backend::Embedded(_) => None,
        }
    }

    pub fn is_embedded(&self) -> bool {
        matches!(&*self.backend, Backend::Embedded(_))
    }

    /// Runs a statement that returns nothing.
    pub async fn execute(&self, sql: &str) -> Result<(), StoreError> {
        match &*self.backend {
            Backend::Server(s) => s.execute(sql, self.priority).await,
            Backend::Embedded(c) => {
                let c = c.clone();
                let sql = sql.to_string();
                let priority = self.priority;
                blocking(move || c.query(&sql, "TabSeparated", priority).map(|_| ())).await
            }
        }
    }

    /// Runs a query and decodes its rows. Every selected column must be cast to the Rust field's
    /// exact ClickHouse type and aliased to the field's name (rows are positional on the server
    /// and named on chDB).
    pub async fn fetch<T>(&self, sql: &str) -> Result<Vec<T>, StoreError>
    where
        T: RowOwned + RowRead + Send + 'static,
    {
        let started = std::time::Instant::now();
        let rows = self.fetch_rows::<T>(sql).await;
        // `RUST_LOG=vigil_store=debug` shows what each page's queries cost.
        tracing::debug!(
            ms = started.elapsed().as_secs_f64() * 1000.0,
            rows = rows.as_ref().map_or(0, Vec::len),
            sql = %sql.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(160).collect::<String>(),
            "query"
        );
        rows
    }

    async fn fetch_rows<T>(&self, sql: &str) -> Result<Vec<T>, StoreError>
    where
        T: RowOwned + RowRead + Send + 'static,
    {
        match &*self.backend {
            Backend::Server(s) => s.fetch::<T>(sql, self.priority).await,
            Backend::Embedded(c) => {
                let c = c.clone();
                let sql = sql.to_string();
                let priority = self.priority;
                blocking(move || {
                    let out = c.query(&sql, "JSONEachRow", priority)?;
                    let mut rows = Vec::new();
                    for line in out.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                        rows.push(
                            serde_json::from_slice::<<T as clickhouse::Row>::Value<'_>>(line)
                                .map_err(|e| {
                                    StoreError::Decode(format!(
                                        "{e} in {}",
                                        String::from_utf8_lossy(line)
                                    ))
                                })?,
                        );
                    }
                    Ok(rows)
                })
                .await
            }
        }
    }

    /// Runs any statement and returns its output in a ClickHouse `format` (e.g.
    /// `TabSeparatedWithNames`). For operators' ad-hoc queries, not for code paths.
    pub async fn query_formatted(&self, sql: &str, format: &str) -> Result<Vec<u8>, StoreError> {
        match &*self.backend {
            Backend::Server(s) => s.query_formatted(sql, format, self.priority).await,
            Backend::Embedded(c) => {
                let c = c.clone();
                let (sql, format) = (sql.to_string(), format.to_string());
                let priority = self.priority;
                blocking(move || c.query(&sql, &format, priority)).await
            }
        }
    }

    /// Inserts rows into their table in one RowBinary insert.
    pub async fn insert<R: TableRow>(&self, rows: &[R]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(rows.len() * 256);
        for r in rows {
            rowbinary::encode(r, &mut buf).map_err(|e| StoreError::Insert {
                table: R::TABLE.to_string(),
                message: e.to_string(),
            })?;
        }
        self.insert_rowbinary(R::TABLE, R::COLUMNS, buf).await
    }

    /// Inserts pre-encoded RowBinary data for `columns` of `table`.
    pub async fn insert_rowbinary(
        &self,
        table: &str,
        columns: &[&str],
        data: Vec<u8>,
    ) -> Result<(), StoreError> {
        let insert_sql = format!("INSERT INTO {} ({})", self.table(table), columns.join(", "));
        match &*self.backend {
            Backend::Server(s) => s.insert_rowbinary(&insert_sql, data).await,
            Backend::Embedded(c) => {
                let c = c.clone();
                let priority = self.priority;
                blocking(move || c.insert(&insert_sql, "RowBinary", &data, priority)).await
            }
        }
    }

    /// Creates the database and applies pending migrations; returns the versions applied now.
    pub async fn migrate(&self, cluster: Option<&str>) -> Result<Vec<u32>, StoreError> {
        let opts = SchemaOptions {
            database: self.database.to_string(),
            cluster: cluster.map(str::to_string),
        };
        for stmt in schema::migrations_table(&opts) {
            self.execute(&stmt).await?;
        }
        #[derive(clickhouse::Row, serde::Deserialize)]
        struct Applied {
            version: u32,
        }
        let applied: Vec<u32> = self
            .fetch::<Applied>(&format!(
                "SELECT DISTINCT toUInt32(version) AS version FROM {}",
                self.table("schema_migrations")
            ))
            .await?
            .into_iter()
            .map(|a| a.version)
            .collect();
        let mut done = Vec::new();
        for m in schema::migrations(&opts) {
            if applied.contains(&m.version) {
                continue;
            }
            for stmt in &m.statements {
                self.execute(stmt).await?;
            }
            for add in &m.add_columns {
                for (table, stmts) in add.statements(&opts) {
                    if !self.has_column(&table, add.column).await? {
                        for stmt in &stmts {
                            if let Err(e) = self.execute(stmt).await {
                                // Another `vigil` migrating at the same moment (several
                                // collectors starting together) added it between the check
                                // and the ALTER: done, not an error.
                                if !self.has_column(&table, add.column).await? {
                                    return Err(e);
                                }
                            }
                        }
                    }
                }
            }
            for copy in &m.copies {
                if self.has_table(copy.from).await? {
                    for stmt in &copy.statements {
                        self.execute(stmt).await?;
                    }
                }
            }
            self.execute(&format!(
                "INSERT INTO {} (version, name, applied_at) VALUES ({}, {}, now())",
                self.table("schema_migrations"),
                m.version,
                crate::sql_string(m.name)
            ))
            .await?;
            done.push(m.version);
        }
        Ok(done)
    }

    /// Whether this database has `table` (on a cluster: on the node asked, where migrations
    /// create and drop tables `ON CLUSTER`).
    async fn has_table(&self, table: &str) -> Result<bool, StoreError> {
        #[derive(clickhouse::Row, serde::Deserialize)]
        struct N {
            n: u64,
        }
        let rows = self
            .fetch::<N>(&format!(
                "SELECT toUInt64(count()) AS n FROM system.tables WHERE database = {} AND name = {}",
                crate::sql_string(&self.database),
                crate::sql_string(table)
            ))
            .await?;
        Ok(rows.first().is_some_and(|r| r.n > 0))
    }

    /// Whether `table` of this database has `column` (what `ALTER … ADD COLUMN IF NOT EXISTS`
    /// would check, on servers that lack it).
    async fn has_column(&self, table: &str, column: &str) -> Result<bool, StoreError> {
        #[derive(clickhouse::Row, serde::Deserialize)]
        struct N {
            n: u64,
        }
        let rows = self
            .fetch::<N>(&format!(
                "SELECT toUInt64(count()) AS n FROM system.columns WHERE database = {} AND table = {} AND name = {}",
                crate::sql_string(&self.database),
                crate::sql_string(table),
                crate::sql_string(column)
            ))
            .await?;
        Ok(rows.first().is_some_and(|r| r.n > 0))
    }

    /// Version of the newest applied migration (0 when none).
    pub async fn schema_version(&self) -> Result<u32, StoreError> {
        #[derive(clickhouse::Row, serde::Deserialize)]
        struct V {
            v: u32,
        }
        let rows = self
            .fetch::<V>(&format!(
                "SELECT toUInt32(max(version)) AS v FROM {}",
                self.table("schema_migrations")
            ))
            .await?;
        Ok(rows.first().map(|r| r.v).unwrap_or(0))
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Connect(format!("store task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        assert_eq!(
            "clickhouse://127.0.0.1:18123/prod"
                .parse::<StoreUrl>()
                .unwrap(),
            StoreUrl::Server {
                endpoints: vec!["http://127.0.0.1:18123".into()],
                database: "prod".into(),
                user: None,
                password: None,
                compress: false,
                cluster: None,
            }
        );
        assert!(matches!(
            "clickhouse://ch.internal:8123/x"
                .parse::<StoreUrl>()
                .unwrap(),
            StoreUrl::Server { compress: true, .. }
        ));
        assert!(matches!(
            "clickhouse://ch.internal:8123/x?compression=none"
                .parse::<StoreUrl>()
                .unwrap(),
            StoreUrl::Server {
                compress: false,
                ..
            }
        ));
        assert!("clickhouse://h:1/x?compression=zstd"
            .parse::<StoreUrl>()
            .is_err());
        assert_eq!(
            "chdb:///tmp/x?database=t1".parse::<StoreUrl>().unwrap(),
            StoreUrl::Embedded {
                path: "/tmp/x".into(),
                database: "t1".into()
            }
        );
        let StoreUrl::Server {
            database,
            user,
            password,
            ..
        } = "clickhouse://bob:pw@h:1".parse::<StoreUrl>().unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (database.as_str(), user.as_deref(), password.as_deref()),
            ("vigil", Some("bob"), Some("pw"))
        );
        assert_eq!(
            "clickhouse://bob:pw@h:1"
                .parse::<StoreUrl>()
                .unwrap()
                .to_string(),
            "clickhouse://bob:***@h:1/vigil"
        );
        assert!("mysql://x".parse::<StoreUrl>().is_err());
        let quorum = ClusterOptions {
            name: "vigil".into(),
            insert_quorum: 2,
            insert_quorum_timeout_ms: Some(60_000),
        };
        let names: Vec<&str> = quorum.settings().iter().map(|s| s.0).collect();
        assert_eq!(
            names,
            [
                "insert_distributed_sync",
                "distributed_product_mode",
                "wait_end_of_query",
                "insert_quorum",
                "insert_quorum_timeout"
            ]
        );
        let one = ClusterOptions {
            insert_quorum: 1,
            ..quorum
        };
        assert_eq!(one.settings().len(), 3);
        assert!("chdb://".parse::<StoreUrl>().is_err());
    }

    #[test]
    fn parses_node_lists() {
        let url: StoreUrl =
            "clickhouse://bob:pw@127.0.0.1:18201,127.0.0.1:18202/prod?compression=lz4"
                .parse()
                .unwrap();
        let StoreUrl::Server {
            endpoints,
            database,
            user,
            password,
            compress,
            ..
        } = &url
        else {
            panic!("{url:?}")
        };
        assert_eq!(
            endpoints,
            &["http://127.0.0.1:18201", "http://127.0.0.1:18202"]
        );
        assert_eq!(
            (
                database.as_str(),
                user.as_deref(),
                password.as_deref(),
                *compress
            ),
            ("prod", Some("bob"), Some("pw"), true)
        );
        assert_eq!(
            url.to_string(),
            "clickhouse://bob:***@127.0.0.1:18201,127.0.0.1:18202/prod"
        );
        // Default port per node, and the display parses back to the same nodes.
        let url: StoreUrl = "clickhouse://a,b:9000".parse().unwrap();
        assert_eq!(url.to_string(), "clickhouse://a:8123,b:9000/vigil");
        assert_eq!(url.to_string().parse::<StoreUrl>().unwrap(), url);
        assert!("clickhouse://a:1,,b:2/db".parse::<StoreUrl>().is_err());
        assert!("clickhouse://a:1,a:1/db".parse::<StoreUrl>().is_err());
        assert!("chdb://a,b/x".parse::<StoreUrl>().is_err());
    }
}
