//! Watches the store (and the demo's mailbox and webhook file) for the moments a user of the
//! demo is waiting for, and prints each once: an incident opened, its e-mail and webhook
//! delivered, an experiment's decision, shadow answers kept, a retraining request filed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use vigil_experimenter::Experiment;
use vigil_store::Store;

pub struct Milestones {
    store: Store,
    experiments: Vec<Experiment>,
    mailbox: PathBuf,
    hooks: PathBuf,
    drift_after: u64,
    incidents: BTreeSet<String>,
    mails: BTreeSet<String>,
    hook_lines: usize,
    decisions: BTreeMap<String, String>,
    shadow_seen: bool,
    retraining: BTreeSet<String>,
    first_alert_at: Option<u64>,
    /// When the experiments are analysed next (seconds since start).
    next_analysis: u64,
}

/// Seconds between the milestone watcher's experiment analyses: each is a full analysis in the
/// store, which on the embedded store shares one connection with the pages.
const ANALYSIS_EVERY: u64 = 10;

impl Milestones {
    pub fn new(
        store: Store,
        experiments: Vec<Experiment>,
        mailbox: PathBuf,
        hooks: PathBuf,
        drift_after: u64,
    ) -> Self {
        Milestones {
            store,
            experiments,
            mailbox,
            hooks,
            drift_after,
            incidents: BTreeSet::new(),
            mails: BTreeSet::new(),
            hook_lines: 0,
            decisions: BTreeMap::new(),
            shadow_seen: false,
            retraining: BTreeSet::new(),
            first_alert_at: None,
            next_analysis: 0,
        }
    }

    async fn rows(&self, sql: &str) -> Vec<Vec<String>> {
        match self.store.query_formatted(sql, "TabSeparated").await {
            Ok(bytes) => String::from_utf8_lossy(&bytes)
                .lines()
                .filter(|l| !l.is_empty())
                .map(|l| l.split('\t').map(str::to_owned).collect())
                .collect(),
            Err(e) => {
                tracing::debug!(error = %e, "demo milestone query failed");
                Vec::new()
            }
        }
    }

    /// Prints what happened since the last call; `t` is seconds since traffic started.
    pub async fn check(&mut self, t: u64) {
        let db = self.store.database().to_string();
        for r in self
            .rows(&format!(
                "SELECT id, argMax(model, updated_ms), argMax(monitor, updated_ms),
                        argMax(rule, updated_ms), argMax(columns_json, updated_ms)
                 FROM {db}.alert_incidents GROUP BY id ORDER BY min(opened_at)"
            ))
            .await
        {
            let [id, model, monitor, rule, cols] = &r[..] else {
                continue;
            };
            if self.incidents.insert(id.clone()) {
                self.first_alert_at.get_or_insert(t);
                let columns: Vec<String> = serde_json::from_str::<serde_json::Value>(
                    &cols.replace("\\\\", "\\").replace("\\'", "'"),
                )
                .ok()
                .and_then(|v| v.get("columns").and_then(|c| c.as_array()).cloned())
                .unwrap_or_default()
                .iter()
                .filter_map(|c| c.get("column").and_then(|n| n.as_str()).map(str::to_owned))
                .collect();
                let since = if t >= self.drift_after {
                    format!(", {} s after the drift", t - self.drift_after)
                } else {
                    String::new()
                };
                println!(
                    "  >> t={t}s ALERT opened: {model} / {monitor} (rule {rule}): {}{since}  → /ui/alerts",
                    columns.join(", ")
                );
            }
        }
        if let Ok(dir) = std::fs::read_dir(&self.mailbox) {
            let mut names: Vec<String> = dir
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|n| n.ends_with(".eml") && !n.starts_with('.'))
                .collect();
            names.sort();
            for n in names {
                if self.mails.insert(n.clone()) {
                    let path = self.mailbox.join(&n);
                    let subject = std::fs::read_to_string(&path)
                        .ok()
                        .and_then(|m| {
                            m.lines()
                                .find_map(|l| l.strip_prefix("Subject: ").map(str::to_owned))
                        })
                        .unwrap_or_default();
                    println!(
                        "  >> t={t}s e-mail delivered: {}  \"{subject}\"",
                        path.display()
                    );
                }
            }
        }
        if let Ok(text) = std::fs::read_to_string(&self.hooks) {
            let lines: Vec<&str> = text.lines().collect();
            for l in lines.iter().skip(self.hook_lines) {
                let hook = serde_json::from_str::<serde_json::Value>(l)
                    .ok()
                    .and_then(|v| v.get("hook").and_then(|h| h.as_str()).map(str::to_owned))
                    .unwrap_or_default();
                println!(
                    "  >> t={t}s webhook `{hook}` received ({})",
                    self.hooks.display()
                );
            }
            self.hook_lines = lines.len();
        }
        let analyse = t >= self.next_analysis;
        if analyse {
            self.next_analysis = t + ANALYSIS_EVERY;
        }
        for e in self.experiments.iter().filter(|_| analyse) {
            let report = vigil_experimenter::warehouse::analyze_experiment(
                &self.store,
                e.config(),
                None,
                vigil_experimenter::warehouse::TimeRange::default(),
            )
            .await;
            let Ok(report) = report else { continue };
            let units: Vec<String> = report
                .arms
                .iter()
                .map(|a| format!("{} {}", a.name, a.units))
                .collect();
            for (arm, d) in &report.decisions {
                let verdict = serde_json::to_value(d.verdict)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                let key = format!("{}/{arm}", e.key());
                if self.decisions.get(&key) != Some(&verdict) {
                    println!(
                        "  >> t={t}s experiment {}: {arm} → {verdict} (units: {})  → /ui/experiments?experiment={}",
                        e.key(),
                        units.join(", "),
                        e.key()
                    );
                    self.decisions.insert(key, verdict);
                }
            }
        }
        if !self.shadow_seen {
            let n = self
                .rows(&format!("SELECT count() FROM {db}.shadow_responses"))
                .await
                .first()
                .and_then(|r| r.first()?.parse::<u64>().ok())
                .unwrap_or(0);
            if n > 0 {
                self.shadow_seen = true;
                println!("  >> t={t}s shadow answers kept: {n} so far (churn v3)  → /ui/shadow");
            }
        }
        for r in self
            .rows(&format!(
                "SELECT request_id, argMax(model, updated_ms), argMax(reason, updated_ms)
                 FROM {db}.retraining_requests GROUP BY request_id"
            ))
            .await
        {
            let [id, model, reason] = &r[..] else {
                continue;
            };
            if self.retraining.insert(id.clone()) {
                println!(
                    "  >> t={t}s retraining request filed for {model} ({reason}): {id}  → /ui/shadow"
                );
            }
        }
    }

    /// The last check of a run: like [`Self::check`], with the experiments analysed whatever
    /// the time, so the summary has their final decisions.
    pub async fn final_check(&mut self, t: u64) {
        self.next_analysis = 0;
        self.check(t).await;
    }

    /// The closing lines: what the run produced and where to look.
    pub fn summary(&self) {
        println!("\nsummary:");
        match self.first_alert_at {
            Some(t) => println!(
                "  incidents: {} (first at t={t}s, {} s after the drift)",
                self.incidents.len(),
                t.saturating_sub(self.drift_after)
            ),
            None => println!("  incidents: none"),
        }
        println!(
            "  e-mails: {} in {}",
            self.mails.len(),
            self.mailbox.display()
        );
        println!(
            "  webhooks: {} in {}",
            self.hook_lines,
            self.hooks.display()
        );
        for (k, v) in &self.decisions {
            println!("  decision {k}: {v}");
        }
        println!("  retraining requests: {}", self.retraining.len());
    }
}
