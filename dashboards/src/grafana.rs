//! Grafana dashboards (`dashboards/grafana/*.json`) for the ClickHouse data source plugin
//! (`grafana-clickhouse-datasource`), over the same tables as the web UI. Embedded so tests can
//! check that they parse and that every query runs on the store.

/// `(file name, JSON text)` of every dashboard.
pub const DASHBOARDS: &[(&str, &str)] = &[
    (
        "vigil-overview.json",
        include_str!("../grafana/vigil-overview.json"),
    ),
    (
        "vigil-drift.json",
        include_str!("../grafana/vigil-drift.json"),
    ),
    ("vigil-roi.json", include_str!("../grafana/vigil-roi.json")),
];

/// Every `rawSql` of a dashboard's panels, with its panel title.
pub fn queries(json: &str) -> Result<Vec<(String, String)>, serde_json::Error> {
    let v: serde_json::Value = serde_json::from_str(json)?;
    let mut out = Vec::new();
    if let Some(panels) = v.get("panels").and_then(|p| p.as_array()) {
        for p in panels {
            let title = p
                .get("title")
                .and_then(|t| t.as_str())
                .unwrap_or("")
                .to_string();
            for t in p
                .get("targets")
                .and_then(|t| t.as_array())
                .into_iter()
                .flatten()
            {
                if let Some(sql) = t.get("rawSql").and_then(|s| s.as_str()) {
                    out.push((title.clone(), sql.to_string()));
                }
            }
        }
    }
    Ok(out)
}

/// Replaces the Grafana macros and variables the dashboards use with literals, so a query can
/// run outside Grafana: `$__timeFilter(col)`, `$__fromTime`, `$__toTime`, `$__interval_s`,
/// `${database}`, `${model}`.
pub fn expand(
    sql: &str,
    database: &str,
    model: &str,
    from: u32,
    to: u32,
    interval_s: u32,
) -> String {
    let mut s = sql.to_string();
    while let Some(start) = s.find("$__timeFilter(") {
        let Some(len) = s[start..].find(')') else {
            break;
        };
        let col = s[start + "$__timeFilter(".len()..start + len]
            .trim()
            .to_string();
        s.replace_range(
            start..start + len + 1,
            &format!("{col} >= toDateTime({from}) AND {col} <= toDateTime({to})"),
        );
    }
    s.replace("$__fromTime", &format!("toDateTime({from})"))
        .replace("$__toTime", &format!("toDateTime({to})"))
        .replace("$__interval_s", &interval_s.to_string())
        .replace("${database}", database)
        .replace("${model}", model)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dashboard_parses_and_has_queries() {
        for (name, json) in DASHBOARDS {
            let v: serde_json::Value =
                serde_json::from_str(json).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(
                v.get("title").and_then(|t| t.as_str()).is_some(),
                "{name}: no title"
            );
            let q = queries(json).unwrap();
            assert!(!q.is_empty(), "{name}: no rawSql targets");
            for (title, sql) in q {
                assert!(
                    sql.contains("`${database}`."),
                    "{name} / {title}: tables must be qualified with ${{database}}"
                );
            }
        }
    }

    #[test]
    fn expands_macros() {
        let s = expand("SELECT 1 FROM `${database}`.t WHERE $__timeFilter(ts) AND model = '${model}' AND b = $__interval_s", "vigil", "churn", 10, 20, 60);
        assert_eq!(s, "SELECT 1 FROM `vigil`.t WHERE ts >= toDateTime(10) AND ts <= toDateTime(20) AND model = 'churn' AND b = 60");
    }
}
