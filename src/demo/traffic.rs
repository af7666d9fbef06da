//! The demo's users: prediction requests through the gateway (`POST /v1/predict/{model}`),
//! each answered by the version the unit's experiment arm serves, and the outcomes that follow
//! (`POST /v1/outcomes`, linked to the inference by the gateway's request id), plus a trickle
//! of malformed events straight to ingest (they land in `dead_letters`). A tenth as many users
//! talk to the support assistant, an LLM, through `POST /v1/chat/completions` (mostly
//! streamed, as chat UIs do) and leave a thumbs up or down linked to the answer by its
//! `x-vigil-event-id`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vigil_collector::simulate::TrafficSimulator;

/// Chance that a unit with `risk` (its true chance of the outcome, which the model's score
/// tracks) served by `version` ends in the model's outcome. The retention offers that churn
/// v2's answers trigger work better: it cuts churn by a third more than v1 (about 31 % → 21 %
/// of units at the demo's mean risk); fraud v2 confirms no more fraud than v1. The A/B tests,
/// the ROI page and the decisions should find exactly this, and scores stay predictive (the
/// fairness page's true and false positive rates differ).
pub fn outcome_rate(model: &str, version: &str, risk: f64) -> f64 {
    let kept = match (model, version) {
        ("churn", "v2") => 0.37,
        ("churn", _) => 0.55,
        _ => 1.0,
    };
    (risk * kept).clamp(0.0, 1.0)
}

/// Chance that a user likes an answer of the assistant's `version`: the v2 fine-tune's
/// friendlier answers are liked more (42 % vs 30 %) — what the `assistant-v2` test should find.
pub fn thumbs_up_rate(version: &str) -> f64 {
    if version == "v2" {
        0.42
    } else {
        0.30
    }
}

/// What the assistant's users ask (topic × phrasing), drawn per request.
const TOPICS: [&str; 8] = [
    "cancel my subscription",
    "change the billing address",
    "a refund for a double charge",
    "reset my password",
    "upgrade to the pro plan",
    "export my invoices",
    "a delivery that is late",
    "two-factor authentication",
];
const PHRASINGS: [&str; 4] = [
    "How do I {}?",
    "I need help with {} please.",
    "Can you explain {} in a few steps?",
    "What happens if I ask about {}?",
];

/// One chat request body: a system prompt and the user's question; three in four streamed.
pub fn chat_body(unit: &str, draw_topic: f64, draw_phrase: f64, draw_stream: f64) -> String {
    let topic = TOPICS[((draw_topic * TOPICS.len() as f64) as usize).min(TOPICS.len() - 1)];
    let phrase =
        PHRASINGS[((draw_phrase * PHRASINGS.len() as f64) as usize).min(PHRASINGS.len() - 1)];
    serde_json::json!({
        "model": "assistant",
        "user": unit,
        "stream": draw_stream < 0.75,
        "max_tokens": 64,
        "messages": [
            {"role": "system", "content": "You are the support assistant of a subscription service. Be brief and kind."},
            {"role": "user", "content": phrase.replace("{}", topic)},
        ],
    })
    .to_string()
}

/// The outcome each model's users produce.
pub fn outcome_name(model: &str) -> &'static str {
    if model == "churn" {
        "churned"
    } else {
        "fraud_confirmed"
    }
}

/// What the traffic task has done so far (read by the status lines).
#[derive(Default)]
pub struct TrafficStats {
    pub requests: AtomicU64,
    pub answered: AtomicU64,
    pub failed: AtomicU64,
    pub outcomes: AtomicU64,
}

pub struct TrafficPlan {
    pub base: String,
    pub run_id: String,
    pub rate: u32,
    pub drift_after: u64,
    pub duration: u64,
}

/// Sends requests until `duration` (0: forever) at `rate` per second.
pub async fn run(client: reqwest::Client, plan: TrafficPlan, stats: Arc<TrafficStats>) {
    let mut sim = TrafficSimulator::new(42, &plan.run_id);
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let per_tick = (plan.rate as usize / 10).max(1);
    let (mut tick_no, mut hostile_no) = (0u64, 0usize);
    // Bounded concurrency: when the machine cannot keep up, the offered rate drops instead of
    // requests piling up.
    let in_flight = Arc::new(tokio::sync::Semaphore::new(256));
    let outcomes: Arc<Mutex<String>> = Arc::default();
    loop {
        tick.tick().await;
        if plan.duration > 0 && started.elapsed().as_secs() >= plan.duration {
            break;
        }
        if !sim.drifting() && started.elapsed().as_secs() >= plan.drift_after {
            sim.set_drift(true);
        }
        for _ in 0..per_tick {
            let req = sim.request();
            let draw = sim.uniform();
            let Ok(permit) = in_flight.clone().acquire_owned().await else {
                return;
            };
            let (client, base, stats, outcomes) = (
                client.clone(),
                plan.base.clone(),
                stats.clone(),
                outcomes.clone(),
            );
            stats.requests.fetch_add(1, Relaxed);
            tokio::spawn(async move {
                let sent = client
                    .post(format!("{base}/v1/predict/{}", req.model))
                    .header("content-type", "application/json")
                    .body(req.body)
                    .send()
                    .await;
                drop(permit);
                let r = match sent {
                    Ok(r) if r.status().is_success() => r,
                    Ok(_) | Err(_) => {
                        stats.failed.fetch_add(1, Relaxed);
                        return;
                    }
                };
                stats.answered.fetch_add(1, Relaxed);
                let header = |name: &str| {
                    r.headers()
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string()
                };
                let (rid, version) = (
                    header("x-vigil-request-id"),
                    header("x-vigil-model-version"),
                );
                // What happened to the user afterwards, linked to the inference that served them.
                let happened = draw < outcome_rate(req.model, &version, req.risk);
                let line = format!(
                    r#"{{"event_id":"{rid}-o","ts":{},"unit_id":"{}","model":"{}","inference_id":"{rid}","name":"{}","value":{}}}"#,
                    chrono::Utc::now().timestamp_millis(),
                    req.unit_id,
                    req.model,
                    outcome_name(req.model),
                    u8::from(happened)
                );
                if let Ok(mut buf) = outcomes.lock() {
                    buf.push_str(&line);
                    buf.push('\n');
                }
            });
        }
        // The assistant's users: a tenth of the prediction rate.
        for _ in 0..(per_tick / 10).max(1) {
            let req = sim.request();
            let body = chat_body(&req.unit_id, sim.uniform(), sim.uniform(), sim.uniform());
            let liked_draw = sim.uniform();
            let (client, base, stats, outcomes) = (
                client.clone(),
                plan.base.clone(),
                stats.clone(),
                outcomes.clone(),
            );
            stats.requests.fetch_add(1, Relaxed);
            tokio::spawn(async move {
                chat(client, base, req.unit_id, body, liked_draw, stats, outcomes).await;
            });
        }
        // Outcomes go to ingest in one request per tick, as an application's event pipeline
        // would batch them.
        let batch = outcomes
            .lock()
            .map(|mut b| std::mem::take(&mut *b))
            .unwrap_or_default();
        if !batch.is_empty() {
            let n = batch.lines().count() as u64;
            post(
                &client,
                &plan.base,
                "/v1/outcomes",
                batch.into_bytes(),
                false,
                &stats.outcomes,
                n,
            );
        }
        // A few malformed events, as real producers send. Each in a request of its own: some
        // (invalid UTF-8, …) make the whole body a dead letter.
        if tick_no % 10 == 5 {
            let bad = sim.hostile(hostile_no, chrono::Utc::now().timestamp_millis());
            hostile_no += 1;
            if bad.len() < 4096 && !bad.contains(&b'\n') {
                post(
                    &client,
                    &plan.base,
                    "/v1/events",
                    bad,
                    true,
                    &stats.outcomes,
                    0,
                );
            }
        }
        tick_no += 1;
    }
}

/// One chat request, read to its end as a chat UI would, then the user's feedback.
async fn chat(
    client: reqwest::Client,
    base: String,
    unit: String,
    body: String,
    liked_draw: f64,
    stats: Arc<TrafficStats>,
    outcomes: Arc<Mutex<String>>,
) {
    let sent = client
        .post(format!("{base}/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await;
    let mut r = match sent {
        Ok(r) if r.status().is_success() => r,
        Ok(_) | Err(_) => {
            stats.failed.fetch_add(1, Relaxed);
            return;
        }
    };
    let header = |r: &reqwest::Response, name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let (id, version) = (
        header(&r, "x-vigil-event-id"),
        header(&r, "x-vigil-model-version"),
    );
    while let Ok(Some(_)) = r.chunk().await {}
    stats.answered.fetch_add(1, Relaxed);
    let liked = liked_draw < thumbs_up_rate(&version);
    let line = format!(
        r#"{{"event_id":"{id}-fb","ts":{},"unit_id":"{unit}","model":"assistant","inference_id":"{id}","name":"thumbs_up","value":{}}}"#,
        chrono::Utc::now().timestamp_millis(),
        u8::from(liked)
    );
    if let Ok(mut buf) = outcomes.lock() {
        buf.push_str(&line);
        buf.push('\n');
    }
}

fn post(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    body: Vec<u8>,
    rejection_expected: bool,
    counter: &AtomicU64,
    n: u64,
) {
    let req = client
        .post(format!("{base}{path}"))
        .header("content-type", "application/x-ndjson")
        .body(body);
    let path = path.to_string();
    // Counted when sent: the status lines read the store for what was stored.
    counter.fetch_add(n, Relaxed);
    tokio::spawn(async move {
        match req.send().await {
            Ok(r) if r.status().is_success() || r.status().as_u16() == 207 => {}
            Ok(r) if rejection_expected && r.status().is_client_error() => {}
            Ok(r) => eprintln!("{path} answered {}", r.status()),
            Err(e) => eprintln!("{path} request failed: {e}"),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_churn_v2_changes_the_outcome_and_risk_drives_it() {
        for risk in [0.1, 0.5, 0.9] {
            assert!(outcome_rate("churn", "v2", risk) < outcome_rate("churn", "v1", risk));
            assert_eq!(
                outcome_rate("fraud", "v1", risk),
                outcome_rate("fraud", "v2", risk)
            );
        }
        assert!(outcome_rate("churn", "v1", 0.9) > outcome_rate("churn", "v1", 0.1));
    }
}
