//! `vigil kpi`: business KPIs per model version and time bucket, for product owners.

use anyhow::{Context, Result};
use vigil_analyzer::kpi::Kpis;

#[derive(clap::Args, Debug)]
pub struct KpiArgs {
    /// Only this model.
    #[arg(long)]
    pub model: Option<String>,
    /// Bucket width, e.g. 15m, 1h, 1d.
    #[arg(long, default_value = "1h")]
    pub bucket: String,
    /// Start (RFC 3339); default: 24 hours before --until.
    #[arg(long)]
    pub since: Option<String>,
    /// End, exclusive (RFC 3339); default: now.
    #[arg(long)]
    pub until: Option<String>,
    /// Outcome name that marks a conversion (value > 0).
    #[arg(long, default_value = "converted")]
    pub conversion: String,
    /// Outcome name that carries revenue.
    #[arg(long, default_value = "revenue")]
    pub revenue: String,
    #[arg(long, value_enum, default_value_t = crate::Format::Table)]
    pub format: crate::Format,
}

#[derive(serde::Serialize)]
struct KpiLine {
    bucket_start: String,
    model: String,
    version: String,
    #[serde(flatten)]
    kpis: Kpis,
}

fn parse_time(flag: &str, v: &str) -> Result<u32> {
    let t = chrono::DateTime::parse_from_rfc3339(v)
        .with_context(|| format!("--{flag} `{v}` is not an RFC 3339 time"))?;
    Ok(t.timestamp().clamp(0, u32::MAX as i64) as u32)
}

pub async fn run(store: &vigil_store::Store, args: &KpiArgs) -> Result<String> {
    let bucket = vigil_analyzer::monitor::config::parse_duration(&args.bucket)
        .map_err(|e| anyhow::anyhow!("--bucket: {e}"))?;
    let until = match &args.until {
        Some(v) => parse_time("until", v)?,
        None => chrono::Utc::now().timestamp() as u32 + 1,
    };
    let since = match &args.since {
        Some(v) => parse_time("since", v)?,
        None => until.saturating_sub(24 * 3600),
    };
    let rows = vigil_store::queries::kpi_counts(
        store,
        args.model.as_deref(),
        bucket,
        since,
        until,
        &args.conversion,
        &args.revenue,
    )
    .await?;
    let lines: Vec<KpiLine> = rows
        .into_iter()
        .map(|r| KpiLine {
            bucket_start: chrono::DateTime::from_timestamp(r.bucket as i64, 0)
                .map(|t| t.to_rfc3339())
                .unwrap_or_default(),
            model: r.model,
            version: r.version,
            kpis: Kpis::from_counts(r.inferences, r.units, r.converted_units, r.revenue, r.cost),
        })
        .collect();
    Ok(match args.format {
        crate::Format::Json => serde_json::to_string_pretty(&lines)?,
        crate::Format::Table => {
            let mut out = format!(
                "{:<26} {:<12} {:<8} {:>9} {:>8} {:>10} {:>12} {:>11}\n",
                "bucket", "model", "version", "volume", "units", "conv.rate", "rev/unit", "cost/1k"
            );
            for l in &lines {
                out.push_str(&format!(
                    "{:<26} {:<12} {:<8} {:>9} {:>8} {:>10.4} {:>12.4} {:>11.4}\n",
                    l.bucket_start,
                    l.model,
                    l.version,
                    l.kpis.volume,
                    l.kpis.units,
                    l.kpis.conversion_rate,
                    l.kpis.revenue_per_unit,
                    l.kpis.cost_per_1k_inferences
                ));
            }
            out
        }
    })
}
