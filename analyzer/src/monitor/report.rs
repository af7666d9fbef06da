//! `vigil analyze`: its arguments and how its results are printed.

use super::{DueOutcome, MonitorError};
use crate::cli::OutputFormat;

/// Arguments of `vigil analyze`.
#[derive(Debug, Clone, clap::Args)]
pub struct AnalyzeArgs {
    /// Run only this monitor (default: every monitor in [[monitors]]).
    #[arg(long)]
    pub monitor: Option<String>,
    /// Evaluate the latest window complete at this time (RFC 3339; default: now).
    #[arg(long)]
    pub at: Option<String>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

impl AnalyzeArgs {
    /// `--at` as unix seconds, or `now`.
    pub fn at_secs(&self, now: u32) -> Result<u32, MonitorError> {
        match &self.at {
            None => Ok(now),
            Some(t) => {
                let parsed = chrono::DateTime::parse_from_rfc3339(t.trim()).map_err(|e| {
                    MonitorError::Config(format!(
                        "--at {t}: not an RFC 3339 time ({e}); write e.g. 2026-11-22T10:00:00Z"
                    ))
                })?;
                u32::try_from(parsed.timestamp())
                    .map_err(|_| MonitorError::Config(format!("--at {t} is out of range")))
            }
        }
    }
}

fn time(secs: u32) -> String {
    chrono::DateTime::from_timestamp(secs as i64, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| secs.to_string())
}

/// Renders the outcomes of one `vigil analyze` call.
pub fn render(outcomes: &[DueOutcome], format: OutputFormat) -> Result<String, serde_json::Error> {
    match format {
        OutputFormat::Json => Ok(serde_json::to_string_pretty(outcomes)? + "\n"),
        OutputFormat::Table => Ok(render_table(outcomes)),
    }
}

fn render_table(outcomes: &[DueOutcome]) -> String {
    let mut out = String::new();
    if outcomes.is_empty() {
        out.push_str("no monitors configured: add [[monitors]] to vigil.toml\n");
    }
    for o in outcomes {
        match o {
            DueOutcome::UpToDate {
                monitor,
                window_end,
            } => out.push_str(&format!(
                "{monitor}: window ending {} already evaluated\n",
                time(*window_end)
            )),
            DueOutcome::Ran(run) if run.health => {
                let breached = run
                    .columns
                    .iter()
                    .filter(|c| c.verdict == super::Verdict::Drift)
                    .count();
                out.push_str(&format!(
                    "{}: {} {} window {} .. {}  health {} ({breached} of {} checks breached)\n",
                    run.monitor,
                    run.model,
                    if run.version.is_empty() {
                        "*"
                    } else {
                        &run.version
                    },
                    time(run.window_start),
                    time(run.window_end),
                    match run.verdict {
                        super::Verdict::Drift => "breached",
                        v => v.as_str(),
                    },
                    run.columns.len()
                ));
                out.push_str(&format!(
                    "  {:<28} {:<18} {:>6} {:>12} {:>12} {:>9}\n",
                    "check", "verdict", "limit", "value", "threshold", "rows"
                ));
                for c in &run.columns {
                    out.push_str(&format!(
                        "  {:<28} {:<18} {:>6} {:>12.4} {:>12.4} {:>9}\n",
                        c.column,
                        match c.verdict {
                            super::Verdict::Drift => "breached",
                            v => v.as_str(),
                        },
                        c.method,
                        c.score,
                        c.threshold,
                        c.current_rows
                    ));
                }
            }
            DueOutcome::Ran(run) => {
                out.push_str(&format!(
                    "{}: {} {} window {} .. {}  dataset {} (drift share {:.2}, threshold {:.2})\n",
                    run.monitor,
                    run.model,
                    if run.version.is_empty() {
                        "*"
                    } else {
                        &run.version
                    },
                    time(run.window_start),
                    time(run.window_end),
                    run.verdict.as_str(),
                    run.drift_share,
                    run.drift_share_threshold
                ));
                out.push_str(&format!(
                    "  {:<24} {:<18} {:<14} {:>10} {:>10} {:>9} {:>9}\n",
                    "column", "verdict", "method", "score", "threshold", "ref rows", "cur rows"
                ));
                for c in &run.columns {
                    out.push_str(&format!(
                        "  {:<24} {:<18} {:<14} {:>10.4} {:>10.4} {:>9} {:>9}\n",
                        c.column,
                        c.verdict.as_str(),
                        c.method,
                        c.score,
                        c.threshold,
                        c.reference_rows,
                        c.current_rows
                    ));
                }
            }
        }
    }
    out
}
