//! Gateway metrics in Prometheus text, served at `GET /metrics/gateway` (next to the collector's
//! `/metrics`, which the gateway does not own).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

type Labels = (String, String, String);

#[derive(Default)]
pub struct GatewayMetrics {
    /// (model, version, status class) → responses returned, by the version that answered.
    responses: Mutex<BTreeMap<Labels, u64>>,
    /// (model, version, kind) → backend failures: timeout, connect, status_5xx, circuit_open.
    errors: Mutex<BTreeMap<Labels, u64>>,
    /// (model, from version, "") → requests served by control after their version failed.
    fallbacks: Mutex<BTreeMap<Labels, u64>>,
    /// (model, version, status class) → mirrored requests completed.
    shadow: Mutex<BTreeMap<Labels, u64>>,
    pub shadow_dropped: AtomicU64,
    pub records_dropped: AtomicU64,
    pub assignments: AtomicU64,
    pub reloads_ok: AtomicU64,
    pub reloads_failed: AtomicU64,
    /// (model, version, "") → 1 while that backend's circuit is open.
    open: Mutex<BTreeMap<Labels, u64>>,
}

fn bump(map: &Mutex<BTreeMap<Labels, u64>>, a: &str, b: &str, c: &str) {
    if let Ok(mut m) = map.lock() {
        *m.entry((a.to_owned(), b.to_owned(), c.to_owned()))
            .or_default() += 1;
    }
}

impl GatewayMetrics {
    pub fn response(&self, model: &str, version: &str, status: u16) {
        bump(&self.responses, model, version, status_class(status));
    }
    pub fn error(&self, model: &str, version: &str, kind: &str) {
        bump(&self.errors, model, version, kind);
    }
    pub fn fallback(&self, model: &str, from: &str) {
        bump(&self.fallbacks, model, from, "");
    }
    pub fn shadow(&self, model: &str, version: &str, status: u16) {
        bump(&self.shadow, model, version, status_class(status));
    }
    pub fn set_open(&self, model: &str, version: &str, open: bool) {
        if let Ok(mut m) = self.open.lock() {
            m.insert(
                (model.to_owned(), version.to_owned(), String::new()),
                u64::from(open),
            );
        }
    }
    /// Backend failures of one version (all kinds), for tests and dashboards.
    pub fn errors_of(&self, model: &str, version: &str) -> u64 {
        self.errors
            .lock()
            .map(|m| {
                m.iter()
                    .filter(|((a, b, _), _)| a == model && b == version)
                    .map(|(_, v)| v)
                    .sum()
            })
            .unwrap_or(0)
    }

    /// Prometheus text exposition format 0.0.4.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let series = |out: &mut String,
                      name: &str,
                      kind: &str,
                      help: &str,
                      labels: [&str; 3],
                      map: &Mutex<BTreeMap<Labels, u64>>| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            if let Ok(m) = map.lock() {
                for ((a, b, c), v) in m.iter() {
                    let mut l =
                        format!("{}=\"{}\",{}=\"{}\"", labels[0], esc(a), labels[1], esc(b));
                    if !labels[2].is_empty() {
                        let _ = write!(l, ",{}=\"{}\"", labels[2], esc(c));
                    }
                    let _ = writeln!(out, "{name}{{{l}}} {v}");
                }
            }
        };
        series(
            &mut out,
            "vigil_gateway_responses_total",
            "counter",
            "Responses returned to callers, by the version that answered and status class.",
            ["model", "version", "status"],
            &self.responses,
        );
        series(
            &mut out,
            "vigil_gateway_backend_errors_total",
            "counter",
            "Backend failures by version and kind (timeout, connect, status_5xx, circuit_open).",
            ["model", "version", "kind"],
            &self.errors,
        );
        series(
            &mut out,
            "vigil_gateway_fallbacks_total",
            "counter",
            "Requests answered by the control version after their assigned version failed.",
            ["model", "version", ""],
            &self.fallbacks,
        );
        series(
            &mut out,
            "vigil_gateway_shadow_responses_total",
            "counter",
            "Mirrored requests completed, by candidate version and status class (0 = no response).",
            ["model", "version", "status"],
            &self.shadow,
        );
        series(
            &mut out,
            "vigil_gateway_circuit_open",
            "gauge",
            "1 while a backend's circuit breaker is open or half-open.",
            ["model", "version", ""],
            &self.open,
        );
        for (name, help, v) in [
            (
                "vigil_gateway_shadow_dropped_total",
                "Mirrored copies dropped because the mirror queue was full.",
                &self.shadow_dropped,
            ),
            (
                "vigil_gateway_records_dropped_total",
                "Exposure/inference/shadow rows dropped because the record queue was full.",
                &self.records_dropped,
            ),
            (
                "vigil_gateway_assignments_total",
                "Assignments answered by GET /v1/assign.",
                &self.assignments,
            ),
            (
                "vigil_gateway_reloads_total",
                "Successful routing reloads (SIGHUP or POST /v1/admin/reload).",
                &self.reloads_ok,
            ),
            (
                "vigil_gateway_reload_failures_total",
                "Rejected reloads (the previous routing stays).",
                &self.reloads_failed,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Relaxed)
            );
        }
        out
    }
}

fn status_class(status: u16) -> &'static str {
    match status {
        0 => "0",
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    #[test]
    fn renders_per_version_errors() {
        let m = super::GatewayMetrics::default();
        m.error("ranker", "b", "timeout");
        m.error("ranker", "b", "timeout");
        m.response("ranker", "a", 200);
        let t = m.render();
        assert!(t.contains("vigil_gateway_backend_errors_total{model=\"ranker\",version=\"b\",kind=\"timeout\"} 2"), "{t}");
        assert!(
            t.contains(
                "vigil_gateway_responses_total{model=\"ranker\",version=\"a\",status=\"2xx\"} 1"
            ),
            "{t}"
        );
        assert_eq!(m.errors_of("ranker", "b"), 2);
    }
}
