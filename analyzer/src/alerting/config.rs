//! `[alerting]`, `[[alert_routes]]` and `[[alert_rules]]` in `vigil.toml`.
//!
//! ```toml
//! [alerting]
//! dashboard_url = "https://vigil.example.com"
//! runbook_url = "https://wiki.example.com/runbooks/vigil-drift"
//! # default_rules = true      # with no [[alert_rules]]: the default drift rule
//! # deliver_every = "5s"      # outbox polling interval of `vigil serve`
//! # retry_base = "5s"         # first retry delay; doubles per attempt …
//! # retry_max = "10m"         # … up to this
//! # max_attempts = 100        # then the notification is marked failed
//!
//! [[alert_routes]]
//! name = "oncall"
//! email = { smtp_url = "smtp+starttls://smtp.example.com:587", username = "vigil",
//!           password_env = "VIGIL_SMTP_PASSWORD", from = "vigil@example.com",
//!           to = ["oncall@example.com", "ml-team@example.com"] }
//! webhook = { url = "https://hooks.slack.com/services/…", format = "slack" }
//!
//! [[alert_rules]]
//! name = "churn-drift"
//! kind = "drift"              # or "health", "no_data"
//! monitors = ["churn-inputs"] # empty: every monitor
//! models = ["churn"]          # empty: every model
//! severity = "critical"
//! routes = ["oncall"]         # empty: every route
//! for_windows = 2             # fire when 2 …
//! of_windows = 3              # … of the last 3 windows drift
//! ```

use serde::{Deserialize, Serialize};

use super::AlertError;
use crate::monitor::config::parse_duration;

/// The `[alerting]` section.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertingConfig {
    /// With no `[[alert_rules]]`, use [`default_rules`].
    pub default_rules: bool,
    /// Base URL of the dashboard; mails link to `{dashboard_url}/monitors/{monitor}`.
    pub dashboard_url: String,
    /// Runbook linked from every alert.
    pub runbook_url: String,
    /// How often `vigil serve` looks for due notifications.
    pub deliver_every: String,
    /// First retry delay after a failed delivery; doubles per attempt up to `retry_max`.
    pub retry_base: String,
    pub retry_max: String,
    /// Attempts after which a notification is marked `failed` (still listed, never dropped).
    pub max_attempts: u32,
    /// Timeout of one SMTP or webhook attempt.
    pub send_timeout: String,
}

impl Default for AlertingConfig {
    fn default() -> Self {
        AlertingConfig {
            default_rules: true,
            dashboard_url: String::new(),
            runbook_url: String::new(),
            deliver_every: "5s".into(),
            retry_base: "5s".into(),
            retry_max: "10m".into(),
            max_attempts: 100,
            send_timeout: "30s".into(),
        }
    }
}

/// Where notifications go: e-mail, a webhook, or both.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub name: String,
    #[serde(default)]
    pub email: Option<EmailRoute>,
    #[serde(default)]
    pub webhook: Option<WebhookRoute>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EmailRoute {
    /// `smtp://host:port` (plain, for local relays), `smtp+starttls://host:port` or
    /// `smtps://host:port` (implicit TLS).
    pub smtp_url: String,
    #[serde(default)]
    pub username: Option<String>,
    /// Prefer `password_env`: the name of an environment variable holding the password.
    #[serde(default, skip_serializing)]
    pub password: Option<String>,
    #[serde(default)]
    pub password_env: Option<String>,
    pub from: String,
    pub to: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookRoute {
    pub url: String,
    /// `generic` (the incident as JSON) or `slack` (`{"text": …}`).
    #[serde(default = "default_webhook_format")]
    pub format: String,
}

fn default_webhook_format() -> String {
    "generic".into()
}

/// What a rule watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    /// Column verdicts of drift monitors, grouped per monitor and model.
    Drift,
    /// The monitor could not judge (too few rows) for `for_windows` of `of_windows` windows.
    NoData,
    /// Breached checks of health monitors (latency, error rate, ingest lag, missing values,
    /// accuracy, fairness gap), grouped per monitor and model.
    Health,
}

impl RuleKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleKind::Drift => "drift",
            RuleKind::NoData => "no_data",
            RuleKind::Health => "health",
        }
    }

    /// Whether the rule judges results of this kind of monitor: drift rules read drift
    /// monitors, health rules health monitors, "no data" both.
    pub fn applies_to(self, health_monitor: bool) -> bool {
        match self {
            RuleKind::Drift => !health_monitor,
            RuleKind::Health => health_monitor,
            RuleKind::NoData => true,
        }
    }
}

/// How p-value columns of one window are corrected for testing many columns at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MultipleTesting {
    /// Benjamini–Hochberg at false discovery rate `fdr`.
    Bh,
    /// Each column against its own threshold.
    None,
}

/// One `[[alert_rules]]` entry.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    pub name: String,
    #[serde(default = "default_kind")]
    pub kind: RuleKind,
    /// Monitor names; empty: every monitor.
    #[serde(default)]
    pub monitors: Vec<String>,
    /// Models; empty: every model.
    #[serde(default)]
    pub models: Vec<String>,
    /// Versions as the monitor stores them (empty string = all versions); empty: any.
    #[serde(default)]
    pub versions: Vec<String>,
    #[serde(default = "default_severity")]
    pub severity: String,
    /// Route names; empty: every route.
    #[serde(default)]
    pub routes: Vec<String>,
    /// Persistence: fire when at least `for_windows` of the last `of_windows` windows fire.
    #[serde(default = "default_for")]
    pub for_windows: u32,
    #[serde(default = "default_of")]
    pub of_windows: u32,
    /// Hysteresis: resolve after this many consecutive clear windows.
    #[serde(default = "default_resolve_after")]
    pub resolve_after: u32,
    /// A window is clear only when every distance is below `resolve_ratio` × its threshold.
    #[serde(default = "default_resolve_ratio")]
    pub resolve_ratio: f64,
    /// After a resolve, the same rule/monitor/model does not fire again for this long.
    #[serde(default = "default_cooldown")]
    pub cooldown: String,
    /// Columns that must fire in a window for the window to count.
    #[serde(default = "default_min_columns")]
    pub min_columns: u32,
    #[serde(default = "default_mt")]
    pub multiple_testing: MultipleTesting,
    /// False discovery rate for Benjamini–Hochberg (default: the method's p-value threshold).
    #[serde(default)]
    pub fdr: Option<f64>,
    /// Learned thresholds: a distance column fires only above max(threshold, mean + k·σ) of its
    /// own statistic over the baseline (the first `learn_windows` stored windows).
    #[serde(default = "default_true")]
    pub learned_thresholds: bool,
    #[serde(default = "default_k")]
    pub k: f64,
    #[serde(default = "default_learn_windows")]
    pub learn_windows: u32,
}

fn default_kind() -> RuleKind {
    RuleKind::Drift
}
fn default_severity() -> String {
    "warning".into()
}
fn default_for() -> u32 {
    2
}
fn default_of() -> u32 {
    3
}
fn default_resolve_after() -> u32 {
    2
}
fn default_resolve_ratio() -> f64 {
    0.8
}
fn default_cooldown() -> String {
    "1h".into()
}
fn default_min_columns() -> u32 {
    1
}
fn default_mt() -> MultipleTesting {
    MultipleTesting::Bh
}
fn default_true() -> bool {
    true
}
fn default_k() -> f64 {
    3.0
}
fn default_learn_windows() -> u32 {
    24
}

impl RuleConfig {
    /// A rule with every default, for `name` and `kind`.
    pub fn new(name: &str, kind: RuleKind) -> RuleConfig {
        RuleConfig {
            name: name.into(),
            kind,
            monitors: vec![],
            models: vec![],
            versions: vec![],
            severity: default_severity(),
            routes: vec![],
            for_windows: default_for(),
            of_windows: default_of(),
            resolve_after: default_resolve_after(),
            resolve_ratio: default_resolve_ratio(),
            cooldown: default_cooldown(),
            min_columns: default_min_columns(),
            multiple_testing: default_mt(),
            fdr: None,
            learned_thresholds: true,
            k: default_k(),
            learn_windows: default_learn_windows(),
        }
    }

    pub fn cooldown_secs(&self) -> Result<u32, AlertError> {
        parse_duration(&self.cooldown)
            .map_err(|e| AlertError::Config(format!("alert rule `{}`: cooldown: {e}", self.name)))
    }

    pub fn matches(&self, monitor: &str, model: &str, version: &str) -> bool {
        let ok = |list: &[String], v: &str| list.is_empty() || list.iter().any(|x| x == v);
        ok(&self.monitors, monitor) && ok(&self.models, model) && ok(&self.versions, version)
    }

    pub fn validate(&self, routes: &[RouteConfig]) -> Result<(), AlertError> {
        let err = |m: String| AlertError::Config(format!("alert rule `{}`: {m}", self.name));
        if self.name.trim().is_empty() || self.name.contains(':') {
            return Err(AlertError::Config(
                "an alert rule needs a `name` without `:`".into(),
            ));
        }
        if !["info", "warning", "critical"].contains(&self.severity.as_str()) {
            return Err(err(format!(
                "severity `{}` must be info, warning or critical",
                self.severity
            )));
        }
        if self.for_windows == 0 || self.of_windows < self.for_windows {
            return Err(err(format!(
                "for_windows = {} of_windows = {}: need 1 ≤ for_windows ≤ of_windows",
                self.for_windows, self.of_windows
            )));
        }
        if self.resolve_after == 0 {
            return Err(err("resolve_after must be at least 1".into()));
        }
        if !(self.resolve_ratio > 0.0 && self.resolve_ratio <= 1.0) {
            return Err(err(format!(
                "resolve_ratio {} must be in (0, 1]",
                self.resolve_ratio
            )));
        }
        if let Some(q) = self.fdr {
            if !(q > 0.0 && q < 1.0) {
                return Err(err(format!("fdr {q} must be in (0, 1)")));
            }
        }
        if !(self.k.is_finite() && self.k >= 0.0) {
            return Err(err(format!("k {} must be a non-negative number", self.k)));
        }
        self.cooldown_secs()?;
        for r in &self.routes {
            if !routes.iter().any(|x| &x.name == r) {
                return Err(err(format!(
                    "route `{r}` is not defined; add an [[alert_routes]] entry named `{r}`"
                )));
            }
        }
        Ok(())
    }
}

/// The rules used when `[alerting] default_rules = true` and no `[[alert_rules]]` are given:
/// input drift on every drift monitor (a column drifting in 2 of 3 windows, BH, learned
/// thresholds with k = 3, resolve after 2 clear windows, 1 h cooldown) and breached checks on
/// every health monitor (a check breached in 2 of 3 windows; its threshold is the SLO the
/// monitor states, so nothing is learned). "No data" is not a default: a
/// monitor's quiet night hours are `insufficient_data` by design and must not page anyone;
/// add a `kind = "no_data"` rule for models that should never go quiet.
pub fn default_rules() -> Vec<RuleConfig> {
    vec![
        RuleConfig::new("default-drift", RuleKind::Drift),
        RuleConfig::new("default-health", RuleKind::Health),
    ]
}

/// The rules in force.
pub fn effective_rules(alerting: &AlertingConfig, rules: &[RuleConfig]) -> Vec<RuleConfig> {
    if rules.is_empty() && alerting.default_rules {
        default_rules()
    } else {
        rules.to_vec()
    }
}

impl RouteConfig {
    pub fn validate(&self) -> Result<(), AlertError> {
        let err = |m: String| AlertError::Config(format!("alert route `{}`: {m}", self.name));
        if self.name.trim().is_empty() {
            return Err(AlertError::Config("an alert route needs a `name`".into()));
        }
        if self.email.is_none() && self.webhook.is_none() {
            return Err(err("give it an `email` or a `webhook` (or both)".into()));
        }
        if let Some(e) = &self.email {
            super::smtp::SmtpTarget::parse(&e.smtp_url).map_err(|e| match e {
                AlertError::Config(m) => err(m),
                other => err(other.to_string()),
            })?;
            if e.to.is_empty() {
                return Err(err("email.to is empty; list at least one recipient".into()));
            }
            for a in e.to.iter().chain(std::iter::once(&e.from)) {
                a.parse::<lettre::message::Mailbox>()
                    .map_err(|x| err(format!("`{a}` is not an e-mail address ({x})")))?;
            }
            if e.password.is_some() && e.password_env.is_some() {
                return Err(err(
                    "set email.password or email.password_env, not both".into()
                ));
            }
        }
        if let Some(w) = &self.webhook {
            if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
                return Err(err(format!("webhook.url `{}` must be http(s)://", w.url)));
            }
            if w.format != "generic" && w.format != "slack" {
                return Err(err(format!(
                    "webhook.format `{}` must be generic or slack",
                    w.format
                )));
            }
        }
        Ok(())
    }
}

impl AlertingConfig {
    pub fn secs(&self, field: &str, text: &str) -> Result<u32, AlertError> {
        parse_duration(text).map_err(|e| AlertError::Config(format!("alerting.{field}: {e}")))
    }
}

/// Validates the whole alerting configuration (`vigil config check` and every load).
pub fn validate(
    alerting: &AlertingConfig,
    routes: &[RouteConfig],
    rules: &[RuleConfig],
) -> Result<(), AlertError> {
    alerting.secs("deliver_every", &alerting.deliver_every)?;
    alerting.secs("retry_base", &alerting.retry_base)?;
    alerting.secs("retry_max", &alerting.retry_max)?;
    alerting.secs("send_timeout", &alerting.send_timeout)?;
    let mut names = std::collections::BTreeSet::new();
    for r in routes {
        r.validate()?;
        if !names.insert(r.name.as_str()) {
            return Err(AlertError::Config(format!(
                "two alert routes are named `{}`",
                r.name
            )));
        }
    }
    let mut names = std::collections::BTreeSet::new();
    for r in rules {
        r.validate(routes)?;
        if !names.insert(r.name.as_str()) {
            return Err(AlertError::Config(format!(
                "two alert rules are named `{}`",
                r.name
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(json: &str) -> RouteConfig {
        serde_json::from_str(json).expect("route json")
    }

    #[test]
    fn defaults_and_validation() {
        let rules = effective_rules(&AlertingConfig::default(), &[]);
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[1].kind, RuleKind::Health);
        assert_eq!((rules[0].for_windows, rules[0].of_windows), (2, 3));
        assert_eq!(rules[0].k, 3.0);
        validate(&AlertingConfig::default(), &[], &rules).expect("defaults are valid");

        let ok = route(
            r#"{"name":"oncall","email":{"smtp_url":"smtp://127.0.0.1:2525","from":"vigil@x.org","to":["a@x.org","b@x.org"]}}"#,
        );
        ok.validate().expect("valid route");
        let bad = route(
            r#"{"name":"oncall","email":{"smtp_url":"imap://x","from":"vigil@x.org","to":["a@x.org"]}}"#,
        );
        assert!(bad.validate().unwrap_err().to_string().contains("smtp"));
        let bad_to = route(
            r#"{"name":"r","email":{"smtp_url":"smtp://h:25","from":"vigil@x.org","to":["nope"]}}"#,
        );
        assert!(bad_to.validate().unwrap_err().to_string().contains("nope"));
        let mut rule = RuleConfig::new("r", RuleKind::Drift);
        rule.routes = vec!["missing".into()];
        assert!(rule
            .validate(&[ok])
            .unwrap_err()
            .to_string()
            .contains("missing"));
        let mut rule = RuleConfig::new("r", RuleKind::Drift);
        rule.for_windows = 4;
        assert!(rule.validate(&[]).is_err());
    }
}
