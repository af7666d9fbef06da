//! `vigil.toml`: one file configures every component; each section belongs to the crate that
//! uses it. Any key can be overridden from the environment as `VIGIL_<SECTION>__<KEY>` (double
//! underscore between levels), e.g. `VIGIL_STORE__URL=clickhouse://127.0.0.1:8123/vigil`.

use anyhow::{anyhow, Context, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use vigil_collector::config::{CollectorConfig, HttpConfig, KafkaConfig};
use vigil_experimenter::Experiment;
use vigil_store::auth::TokenConfig;
use vigil_store::StoreUrl;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSection {
    /// `clickhouse://host:port/db` or `chdb:///path[?database=db]`; empty: embedded chDB in
    /// `./vigil-data`.
    pub url: String,
    /// Cluster name for replicated tables created `ON CLUSTER` (multi-node deployments).
    pub cluster: Option<String>,
    /// With `cluster`: replicas of a shard that must have an insert before it is acknowledged
    /// (ClickHouse's `insert_quorum`; default 1). Set it to the replicas per shard for reads
    /// through any node to see every acknowledged row at once.
    pub insert_quorum: Option<u32>,
    /// With `insert_quorum`: how long an insert waits for the quorum (default: the server's,
    /// 600 000 ms); a replica down fails inserts after this long (they are retried).
    pub insert_quorum_timeout_ms: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSection {
    pub tokens: Vec<TokenConfig>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VigilConfig {
    pub store: StoreSection,
    pub collector: CollectorConfig,
    pub kafka: KafkaConfig,
    pub http: HttpConfig,
    pub auth: AuthSection,
    pub experiments: Vec<Experiment>,
    /// `[gateway]`: when present, `vigil serve` also routes prediction traffic.
    pub gateway: Option<vigil_experimenter::gateway::GatewayConfig>,
    /// The file this configuration was read from (for reloads); not a TOML key.
    #[serde(skip)]
    pub source_path: Option<PathBuf>,
    /// Continuous drift monitors (`vigil analyze`; `vigil serve` runs them on schedule).
    #[serde(default)]
    pub monitors: Vec<vigil_analyzer::monitor::MonitorConfig>,
    /// `[shadow]`: model registry, replay defaults and retraining triggers (`vigil shadow …`).
    #[serde(default)]
    pub shadow: vigil_shadow_runner::config::ShadowConfig,
    /// `[roi]`: the value model of the dashboards' ROI page.
    #[serde(default)]
    pub roi: vigil_dashboards::RoiConfig,
    /// `[mlflow]`: promotion and rollback also move the registered model's alias.
    pub mlflow: Option<vigil_experimenter::mlflow::MlflowConfig>,
    /// `[alerting]`: defaults, links and delivery timing (docs/alerting.md).
    #[serde(default)]
    pub alerting: vigil_analyzer::alerting::AlertingConfig,
    /// `[[alert_routes]]`: where notifications go (e-mail, webhook).
    #[serde(default)]
    pub alert_routes: Vec<vigil_analyzer::alerting::RouteConfig>,
    /// `[[alert_rules]]`: which monitor results raise incidents (default rules when empty).
    #[serde(default)]
    pub alert_rules: Vec<vigil_analyzer::alerting::RuleConfig>,
}

/// Directory of the embedded store when none is configured.
pub fn default_data_dir() -> PathBuf {
    std::env::var_os("VIGIL_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::current_dir()
                .unwrap_or_else(|_| ".".into())
                .join("vigil-data")
        })
}

impl VigilConfig {
    /// What alerting needs: its sections plus the monitors it watches.
    pub fn alert_context(&self) -> vigil_analyzer::alerting::AlertContext {
        vigil_analyzer::alerting::AlertContext {
            alerting: self.alerting.clone(),
            routes: self.alert_routes.clone(),
            rules: self.alert_rules.clone(),
            monitors: self.monitors.clone(),
        }
    }

    /// The store URL: `--store`, else `[store] url`, else embedded chDB in the data directory;
    /// with `[store] cluster`, what the store needs to know about the cluster.
    pub fn store_url(&self, cli_override: Option<&str>) -> Result<StoreUrl> {
        let url = cli_override.unwrap_or(&self.store.url);
        let explicit = !url.trim().is_empty();
        let mut url = if !explicit {
            StoreUrl::Embedded {
                path: default_data_dir(),
                database: vigil_store::DEFAULT_DATABASE.to_string(),
            }
        } else {
            url.parse()?
        };
        match (&mut url, &self.store.cluster) {
            (StoreUrl::Server { cluster, .. }, Some(name)) => {
                *cluster = Some(vigil_store::ClusterOptions {
                    name: name.clone(),
                    insert_quorum: self.store.insert_quorum.unwrap_or(1),
                    insert_quorum_timeout_ms: self.store.insert_quorum_timeout_ms,
                });
            }
            // Not for the default: `--store` may name the server on each command.
            (StoreUrl::Embedded { path, .. }, Some(name)) if explicit => {
                return Err(anyhow!(
                    "[store] cluster = {name:?} needs a ClickHouse server (clickhouse://host:port/db), not the embedded store at {}",
                    path.display()
                ));
            }
            (_, None) if self.store.insert_quorum.is_some() => {
                return Err(anyhow!(
                    "[store] insert_quorum is for a cluster: set [store] cluster too"
                ));
            }
            _ => {}
        }
        Ok(url)
    }

    /// Loads `path` (if given, it must exist; if not, `./vigil.toml` when present), applies
    /// `VIGIL_…__…` environment overrides, and validates.
    pub fn load(path: Option<&Path>) -> Result<VigilConfig> {
        let (text, name) = match path {
            Some(p) => (
                std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read config {}", p.display()))?,
                p.display().to_string(),
            ),
            None if Path::new("vigil.toml").exists() => (
                std::fs::read_to_string("vigil.toml").context("cannot read ./vigil.toml")?,
                "vigil.toml".to_string(),
            ),
            None => (String::new(), "(defaults)".to_string()),
        };
        let mut config = Self::parse(&text, &name, std::env::vars())?;
        config.source_path = match path {
            Some(p) => Some(p.to_path_buf()),
            None if name == "vigil.toml" => Some(PathBuf::from("vigil.toml")),
            None => None,
        };
        Ok(config)
    }

    /// Parses TOML text, applying overrides from `env`. Errors carry the line and column.
    pub fn parse(
        text: &str,
        name: &str,
        env: impl Iterator<Item = (String, String)>,
    ) -> Result<VigilConfig> {
        // First pass on the file alone, so errors point at its lines.
        let mut doc: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| anyhow!("{name}: {e}"))?;
        let _: VigilConfig = toml::from_str(text).map_err(|e| anyhow!("{name}: {e}"))?;
        let mut overridden = false;
        for (key, value) in env {
            let Some(rest) = key.strip_prefix("VIGIL_") else {
                continue;
            };
            if !rest.contains("__") {
                continue; // VIGIL_CHDB_LIB, VIGIL_DATA_DIR… are not config keys
            }
            let path: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
            set_path(&mut doc, &path, &value)
                .with_context(|| format!("environment variable {key}"))?;
            overridden = true;
        }
        let config: VigilConfig = if overridden {
            toml::Value::Table(doc)
                .try_into()
                .map_err(|e| anyhow!("{name} with VIGIL_… environment overrides: {e}"))?
        } else {
            toml::from_str(text).map_err(|e| anyhow!("{name}: {e}"))?
        };
        config.validate().map_err(|e| anyhow!("{name}: {e}"))?;
        Ok(config)
    }

    fn validate(&self) -> Result<()> {
        self.store_url(None)?;
        if self.collector.batch_max_rows == 0 {
            return Err(anyhow!("collector.batch_max_rows must be at least 1"));
        }
        if self.collector.queue_capacity == 0 {
            return Err(anyhow!("collector.queue_capacity must be at least 1"));
        }
        vigil_store::auth::Authenticator::from_config(&self.auth.tokens)?;
        vigil_experimenter::validate_experiments(&self.experiments)?;
        if let Some(g) = &self.gateway {
            g.validate(&self.experiments)?;
        }
        if let Some(m) = &self.mlflow {
            m.validate().map_err(|e| anyhow!(e))?;
        }
        vigil_analyzer::monitor::validate_monitors(&self.monitors)?;
        self.shadow.validate()?;
        self.roi.validate().map_err(|e| anyhow!(e))?;
        vigil_analyzer::alerting::config::validate(
            &self.alerting,
            &self.alert_routes,
            &self.alert_rules,
        )?;
        Ok(())
    }
}

/// Sets `a.b.c = value` in a TOML table; the value is parsed as TOML if it can be (numbers,
/// booleans, arrays), else taken as a string.
fn set_path(doc: &mut toml::Table, path: &[String], value: &str) -> Result<()> {
    let (last, parents) = path.split_last().ok_or_else(|| anyhow!("empty key"))?;
    let mut table = doc;
    for p in parents {
        table = table
            .entry(p.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .ok_or_else(|| anyhow!("`{p}` is not a table"))?;
    }
    let parsed = format!("v = {value}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_string()));
    table.insert(last.clone(), parsed);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, env: &[(&str, &str)]) -> Result<VigilConfig> {
        VigilConfig::parse(
            text,
            "vigil.toml",
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    #[test]
    fn cluster_settings_travel_with_the_store_url() {
        let c = parse(
            "[store]\nurl = \"clickhouse://127.0.0.1:18201/v\"\ncluster = \"vigil\"\ninsert_quorum = 2\n",
            &[],
        )
        .unwrap();
        let StoreUrl::Server { cluster, .. } = c.store_url(None).unwrap() else {
            panic!("a server URL")
        };
        assert_eq!(
            cluster,
            Some(vigil_store::ClusterOptions {
                name: "vigil".into(),
                insert_quorum: 2,
                insert_quorum_timeout_ms: None,
            })
        );
        let single = parse("[store]\nurl = \"clickhouse://127.0.0.1:18123/v\"\n", &[]).unwrap();
        assert!(matches!(
            single.store_url(None).unwrap(),
            StoreUrl::Server { cluster: None, .. }
        ));
        let e = parse("[store]\nurl = \"chdb:///x\"\ncluster = \"vigil\"\n", &[]).unwrap_err();
        assert!(e.to_string().contains("needs a ClickHouse server"), "{e}");
        let e = parse(
            "[store]\nurl = \"clickhouse://h:1/v\"\ninsert_quorum = 2\n",
            &[],
        )
        .unwrap_err();
        assert!(e.to_string().contains("set [store] cluster too"), "{e}");
    }

    #[test]
    fn defaults_to_embedded_store() {
        let c = parse("", &[]).unwrap();
        assert!(matches!(
            c.store_url(None).unwrap(),
            StoreUrl::Embedded { .. }
        ));
        assert_eq!(c.collector.batch_max_rows, 200_000);
    }

    #[test]
    fn errors_point_at_the_line() {
        let e = parse(
            "[store]\nurl = \"chdb:///x\"\n\n[collector]\nbatch_max_rowz = 5\n",
            &[],
        )
        .unwrap_err();
        let msg = format!("{e:#}");
        assert!(msg.contains("line 5"), "{msg}");
        assert!(msg.contains("batch_max_rowz"), "{msg}");
        let e = parse("[collector]\nbatch_max_rows = \"many\"\n", &[]).unwrap_err();
        assert!(format!("{e:#}").contains("line 2"), "{e:#}");
    }

    #[test]
    fn env_overrides_any_key() {
        let c = parse(
            "[collector]\nbatch_max_rows = 5\n",
            &[
                ("VIGIL_COLLECTOR__BATCH_MAX_ROWS", "7"),
                ("VIGIL_STORE__URL", "clickhouse://127.0.0.1:18123/x"),
                ("VIGIL_KAFKA__PROPERTIES__SESSION.TIMEOUT.MS", "6000"),
                ("VIGIL_CHDB_LIB", "/ignored"),
            ],
        )
        .unwrap();
        assert_eq!(c.collector.batch_max_rows, 7);
        assert_eq!(c.store.url, "clickhouse://127.0.0.1:18123/x");
        assert_eq!(
            c.kafka
                .properties
                .get("session.timeout.ms")
                .map(String::as_str),
            Some("6000")
        );
        let e = parse("", &[("VIGIL_COLLECTOR__BATCH_MAX_ROWS", "\"x\"")]).unwrap_err();
        assert!(format!("{e:#}").contains("batch_max_rows"), "{e:#}");
    }

    #[test]
    fn rejects_bad_store_urls() {
        assert!(parse("[store]\nurl = \"mysql://x\"\n", &[]).is_err());
    }
}
