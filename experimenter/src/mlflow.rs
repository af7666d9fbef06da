//! The MLflow model registry, through its REST API: promotion points the registered model's
//! alias (`champion` by default) at the promoted version, rollback points it back.
//!
//! ```toml
//! [mlflow]
//! tracking_uri = "http://127.0.0.1:5000"
//! alias = "champion"
//! # Optional: how vigil's model and version names map to the registry's. By default the
//! # registered model has the gateway model's name and the version is the number at the end of
//! # vigil's version string ("ranker@3" → 3, "v2" → 2).
//! [mlflow.models.ranker]
//! name = "search-ranker"
//! versions = { "ranker@2.0" = "7" }
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[mlflow]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MlflowConfig {
    pub tracking_uri: String,
    #[serde(default = "default_alias")]
    pub alias: String,
    /// Bearer token for a secured MLflow, read from this environment variable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_env: Option<String>,
    #[serde(default)]
    pub models: BTreeMap<String, MlflowModel>,
}

fn default_alias() -> String {
    "champion".into()
}

/// Registry names of one gateway model.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MlflowModel {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub versions: BTreeMap<String, String>,
}

impl MlflowConfig {
    /// Checks the section: an http(s) tracking URI and a non-empty alias.
    pub fn validate(&self) -> Result<(), String> {
        match reqwest::Url::parse(&self.tracking_uri) {
            Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
            _ => {
                return Err(format!(
                    "[mlflow] tracking_uri `{}` is not an http(s) URL, e.g. \"http://mlflow:5000\"",
                    self.tracking_uri
                ))
            }
        }
        if self.alias.trim().is_empty() {
            return Err("[mlflow] alias must not be empty (default: champion)".into());
        }
        Ok(())
    }

    /// The registered model and version number for a vigil model version.
    pub fn registry_version(&self, model: &str, version: &str) -> Result<(String, String), String> {
        let entry = self.models.get(model);
        let name = entry
            .and_then(|m| m.name.clone())
            .unwrap_or_else(|| model.to_owned());
        if let Some(v) = entry.and_then(|m| m.versions.get(version)) {
            return Ok((name, v.clone()));
        }
        let digits: String = version
            .chars()
            .rev()
            .take_while(|c| c.is_ascii_digit())
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        if digits.is_empty() {
            return Err(format!(
                "cannot tell which MLflow version `{version}` of model `{model}` is; add it to [mlflow.models.{model}] versions"
            ));
        }
        let number = digits
            .parse::<u64>()
            .map_err(|e| format!("version number of `{version}`: {e}"))?;
        Ok((name, number.to_string()))
    }
}

/// A small client for the registry endpoints vigil needs.
pub struct MlflowClient {
    config: MlflowConfig,
    http: reqwest::Client,
    token: Option<String>,
}

#[derive(Deserialize)]
struct AliasResponse {
    model_version: ModelVersion,
}

#[derive(Deserialize)]
struct ModelVersion {
    version: String,
}

impl MlflowClient {
    pub fn new(config: &MlflowConfig) -> Result<MlflowClient, String> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
        let token = config
            .token_env
            .as_ref()
            .and_then(|v| std::env::var(v).ok())
            .filter(|t| !t.is_empty());
        Ok(MlflowClient {
            config: config.clone(),
            http,
            token,
        })
    }

    fn url(&self, path: &str) -> String {
        format!(
            "{}/api/2.0/mlflow/{path}",
            self.config.tracking_uri.trim_end_matches('/')
        )
    }

    fn auth(&self, r: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    /// Points the configured alias at the registry version of `model`/`version`; returns a
    /// note for the audit record.
    pub async fn set_alias_for(&self, model: &str, version: &str) -> Result<String, String> {
        let (name, number) = self.config.registry_version(model, version)?;
        self.set_alias(&name, &self.config.alias, &number).await?;
        Ok(format!("{name}@{} -> {number}", self.config.alias))
    }

    /// `POST registered-models/alias`.
    pub async fn set_alias(&self, name: &str, alias: &str, version: &str) -> Result<(), String> {
        let resp = self
            .auth(self.http.post(self.url("registered-models/alias")))
            .json(&serde_json::json!({"name": name, "alias": alias, "version": version}))
            .send()
            .await
            .map_err(|e| format!("cannot reach {}: {e}", self.config.tracking_uri))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            let status = resp.status();
            let body = resp.text().await.unwrap_or_default();
            Err(format!(
                "setting alias `{alias}` of `{name}` to version {version} failed: HTTP {status}: {}",
                body.chars().take(300).collect::<String>()
            ))
        }
    }

    /// `GET registered-models/alias`: the version an alias points at, if any.
    pub async fn get_alias(&self, name: &str, alias: &str) -> Result<Option<String>, String> {
        let resp = self
            .auth(self.http.get(self.url("registered-models/alias")))
            .query(&[("name", name), ("alias", alias)])
            .send()
            .await
            .map_err(|e| format!("cannot reach {}: {e}", self.config.tracking_uri))?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return Err(format!(
                "reading alias `{alias}` of `{name}`: HTTP {}",
                resp.status()
            ));
        }
        let body: AliasResponse = resp.json().await.map_err(|e| e.to_string())?;
        Ok(Some(body.model_version.version))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_versions_by_trailing_number_or_explicitly() {
        let mut cfg: MlflowConfig = toml::from_str(r#"tracking_uri = "http://x""#).unwrap();
        assert_eq!(cfg.alias, "champion");
        cfg.validate().unwrap();
        let bad: MlflowConfig = toml::from_str(r#"tracking_uri = "mlflow:5000""#).unwrap();
        assert!(bad.validate().unwrap_err().contains("http"));
        assert_eq!(
            cfg.registry_version("ranker", "ranker@12").unwrap(),
            ("ranker".into(), "12".into())
        );
        assert!(cfg.registry_version("ranker", "ranker@beta").is_err());
        cfg.models.insert(
            "ranker".into(),
            MlflowModel {
                name: Some("search".into()),
                versions: [("ranker@beta".to_string(), "7".to_string())].into(),
            },
        );
        assert_eq!(
            cfg.registry_version("ranker", "ranker@beta").unwrap(),
            ("search".into(), "7".into())
        );
    }
}
