//! Data files shared by the end-to-end tests (tests/dashboards.rs, tests/cluster.rs): the demo's
//! simulated traffic, an A/B experiment's exposures and conversions, an LLM's requests with
//! feedback, and the `[roi]` / `[[experiments]]` / `[[monitors]]` configuration they go with.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const GPU_HOURS_V2: f64 = 0.01;
pub const GPU_HOUR_COST: f64 = 2.5;
/// The demo's simulator links outcomes (`fraud_confirmed`) to fraud inferences only, so the ROI
/// check runs on the fraud model.
pub const FRAUD_VALUE: f64 = 250.0;

pub fn shared_config() -> String {
    format!(
        r#"
[roi]
currency = "EUR"
inference_cost_per_1k = 0.4
gpu_hour_cost = {GPU_HOUR_COST}
gpu_hours_per_1k = {{ "fraud/v2" = {GPU_HOURS_V2} }}
value_per_outcome = {{ churned = -120.0, fraud_confirmed = {FRAUD_VALUE}, conversion = 30.0 }}

[[experiments]]
key = "churn-v2"
model = "churn"
description = "Does churn model v2 keep more customers than v1?"
arms = [ {{ name = "control", model_version = "v1" }}, {{ name = "treatment", model_version = "v2" }} ]

[[monitors]]
name = "churn-inputs"
model = "churn"
columns = ["monthly_spend", "plan", "tenure_months", "support_tickets", "prediction.score"]
window = "4s"
min_rows = 50
reference = {{ trailing = "12s" }}
"#
    )
}

/// `n` inference events of the demo's simulator spread over the 16 s before now (1 ms apart
/// per 1,000 events/s), input drift from the half-way point, an outcome for every fourth, and
/// one malformed event of each kind that fits on a line.
pub fn simulated_traffic(dir: &Path, n: usize) -> (PathBuf, PathBuf) {
    use vigil_collector::simulate::TrafficSimulator;
    let mut sim = TrafficSimulator::new(42, "dash");
    sim.set_failure_every(199);
    let start = chrono::Utc::now().timestamp_millis() - 17_000;
    let (mut events, mut outcomes) = (String::new(), String::new());
    for i in 0..n {
        let ts = start + (i as i64 * 16_000) / n as i64;
        if i == n / 2 {
            sim.set_drift(true);
        }
        let inf = sim.inference(ts);
        events.push_str(&inf.json);
        events.push('\n');
        if matches!(i % 8, 0 | 5) {
            outcomes.push_str(&sim.outcome(&inf, ts));
            outcomes.push('\n');
        }
    }
    // And malformed events, as real producers send: they land in dead_letters.
    for k in 0..TrafficSimulator::HOSTILE_KINDS {
        let bad = sim.hostile(k, start);
        if bad.len() < 4096 && !bad.contains(&b'\n') {
            events.push_str(&String::from_utf8_lossy(&bad));
            events.push('\n');
        }
    }
    let (e, o) = (dir.join("events.ndjson"), dir.join("outcomes.ndjson"));
    std::fs::write(&e, events).expect("write events");
    std::fs::write(&o, outcomes).expect("write outcomes");
    (e, o)
}

/// Experiment data: `n` units per arm exposed now; conversions 10 % (control) vs 20 %.
pub fn experiment_files(dir: &Path, n: usize) -> (PathBuf, PathBuf) {
    // Exposures spread over the last 16 s, so the confidence sequence has several points.
    let now = chrono::Utc::now().timestamp_millis();
    let (mut exp, mut out) = (String::new(), String::new());
    for i in 0..2 * n {
        let ts = now - 16_000 + (i as i64 * 16_000) / (2 * n as i64);
        let (arm, version) = if i % 2 == 0 {
            ("control", "v1")
        } else {
            ("treatment", "v2")
        };
        let unit = format!("ab-user-{i}");
        exp.push_str(&format!(
            r#"{{"event_id":"x{i}","ts":{ts},"experiment":"churn-v2","variant":"{arm}","unit_id":"{unit}","model":"churn","version":"{version}"}}"#
        ));
        exp.push('\n');
        // Deterministic: every 10th control unit and every 5th treatment unit converts.
        let k = i / 2;
        let converts = if arm == "control" {
            k % 10 == 0
        } else {
            k % 5 == 0
        };
        if converts {
            out.push_str(&format!(
                r#"{{"event_id":"c{i}","ts":{},"unit_id":"{unit}","model":"churn","name":"conversion","value":1}}"#,
                ts + 500
            ));
            out.push('\n');
        }
    }
    let (e, o) = (dir.join("exposures.ndjson"), dir.join("conversions.ndjson"));
    std::fs::write(&e, exp).expect("write exposures");
    std::fs::write(&o, out).expect("write conversions");
    (e, o)
}

/// LLM traffic as the gateway records it (model `assistant`, v1 and v2, over the last 16 s):
/// `n` requests per version, every 10th failed, every 4th cut off at `length`, every other
/// streamed; a `thumbs_up` for every 3rd answered one (positive for every 2nd of those).
/// Returns the files and, per version, (requests, failed, answered, positive feedback).
pub fn llm_files(dir: &Path, n: usize) -> (PathBuf, PathBuf, BTreeMap<String, [u64; 4]>) {
    let now = chrono::Utc::now().timestamp_millis();
    let (mut inf, mut fb) = (String::new(), String::new());
    let mut expected: BTreeMap<String, [u64; 4]> = BTreeMap::new();
    for (v, version) in ["v1", "v2"].into_iter().enumerate() {
        let e = expected.entry(version.to_string()).or_default();
        for i in 0..n {
            let ts = now - 16_000 + (i as i64 * 16_000) / n as i64;
            let id = format!("llm-{version}-{i}");
            let unit = format!("chat-user-{}", i % 40);
            e[0] += 1;
            if i % 10 == 9 {
                e[1] += 1;
                inf.push_str(&format!(
                    r#"{{"event_id":"{id}","ts":{ts},"model":"assistant","version":"{version}","unit_id":"{unit}","input":"question {i}","latency_ms":30000,"error":"timeout"}}"#
                ));
                inf.push('\n');
                continue;
            }
            e[2] += 1;
            let (prompt, completion) = (20 + i % 30, 40 + (i * 7) % 200 + v * 30);
            let ttft = 80.0 + (i % 17) as f64 * 12.0 + v as f64 * 40.0;
            let finish = if i % 4 == 3 { "length" } else { "stop" };
            inf.push_str(&format!(
                r#"{{"event_id":"{id}","ts":{ts},"model":"assistant","version":"{version}","unit_id":"{unit}","input":"question {i}","latency_ms":{lat},"cost":{cost},"generation":{{"output":"answer {i}","prompt_tokens":{prompt},"completion_tokens":{completion},"tokens_estimated":{est},"ttft_ms":{ttft},"output_tokens_per_s":{tps},"finish_reason":"{finish}","streamed":{streamed}}}}}"#,
                lat = ttft + completion as f64 * 20.0,
                cost = (prompt as f64 * 0.0002 + completion as f64 * 0.0006) / 1000.0,
                est = i % 5 == 0,
                tps = 50.0 - v as f64 * 10.0,
                streamed = i % 2 == 0,
            ));
            inf.push('\n');
            if i % 3 == 0 {
                let up = i % 2 == 0;
                e[3] += u64::from(up);
                fb.push_str(&format!(
                    r#"{{"event_id":"fb-{id}","ts":{},"unit_id":"{unit}","model":"assistant","inference_id":"{id}","name":"thumbs_up","value":{}}}"#,
                    ts + 1000,
                    u8::from(up)
                ));
                fb.push('\n');
            }
        }
    }
    let (i, f) = (dir.join("llm.ndjson"), dir.join("llm-feedback.ndjson"));
    std::fs::write(&i, inf).expect("write llm events");
    std::fs::write(&f, fb).expect("write llm feedback");
    (i, f, expected)
}
