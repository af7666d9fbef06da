//! The demo's own `vigil.toml`: every section a real deployment writes (gateway, experiments,
//! monitors, alert routes and rules, value model, shadow triggers), pointing at the backends,
//! mail sink and webhook receiver the demo runs on loopback. Written to a file so that the
//! same configuration serves the pages after the demo (`vigil --config FILE serve`).

use std::net::SocketAddr;

/// Where the demo's local services listen and when its story happens.
pub struct DemoPlan {
    /// The simulated model backends and the webhook receiver.
    pub backends: SocketAddr,
    /// The SMTP sink the alert e-mails go to.
    pub smtp: SocketAddr,
    /// Store URL, as written in `[store] url`.
    pub store_url: String,
    /// The user's `[store] cluster` (a ClickHouse cluster behind the URL), written along.
    pub store_cluster: Option<String>,
    /// Gateway, ingest and dashboards.
    pub bind: String,
    /// Unix seconds: traffic starts (the drift monitors' reference begins here) …
    pub started: i64,
    /// … and drift is injected here (the reference ends here).
    pub drift_at: i64,
}

/// Seconds per monitor window: short, so the demo's story fits in a minute and a half.
pub const WINDOW_SECS: u32 = 10;

fn rfc3339(ts: i64) -> String {
    chrono::DateTime::from_timestamp(ts, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The configuration text.
pub fn demo_toml(p: &DemoPlan) -> String {
    let backends = format!("http://{}", p.backends);
    let smtp = p.smtp;
    let (from, to) = (rfc3339(p.started), rfc3339(p.drift_at));
    let mut store = toml_string(&p.store_url);
    if let Some(c) = &p.store_cluster {
        store.push_str(&format!("\ncluster = {}", toml_string(c)));
    }
    let bind = toml_string(&p.bind);
    let dashboard = format!("http://{}/ui", p.bind);
    format!(
        r#"# Written by `vigil demo`: the whole loop on one machine. Serve these pages again with
#   vigil --config THIS_FILE serve --no-kafka
[store]
url = {store}

[http]
bind = {bind}

# The prediction gateway: the demo's traffic goes through it to simulated model backends.
[gateway]
timeout_ms = 1000
deployment_poll_ms = 1000

[[gateway.models]]
name = "churn"
control = "v1"
versions = [
  {{ version = "v1", url = "{backends}/models/churn/v1" }},
  {{ version = "v2", url = "{backends}/models/churn/v2" }},
  {{ version = "v3", url = "{backends}/models/churn/v3" }},
]
# A candidate that never answers users: a quarter of the requests are copied to it and its
# answers kept in shadow_responses.
shadows = [{{ version = "v3", share = 0.25 }}]

[[gateway.models]]
name = "fraud"
control = "v1"
versions = [
  {{ version = "v1", url = "{backends}/models/fraud/v1" }},
  {{ version = "v2", url = "{backends}/models/fraud/v2" }},
]

# A support assistant (a fine-tuned LLM) behind OpenAI-compatible servers: clients call
# POST /v1/chat/completions with "model": "assistant"; streams pass through chunk by chunk and
# each request is recorded with its prompt, answer, tokens, time to first token and cost.
[[gateway.models]]
name = "assistant"
api = "openai"
control = "v1"
versions = [
  {{ version = "v1", url = "{backends}/llm-v1/v1", backend_model = "qwen2.5-7b-support-ft1", price_input_per_1k = 0.0005, price_output_per_1k = 0.0015 }},
  {{ version = "v2", url = "{backends}/llm-v2/v1", backend_model = "qwen2.5-7b-support-ft2", price_input_per_1k = 0.0005, price_output_per_1k = 0.002 }},
  {{ version = "v3", url = "{backends}/llm-v3/v1", backend_model = "qwen2.5-7b-support-ft3", price_input_per_1k = 0.0003, price_output_per_1k = 0.001, stream_options = false }},
]
# The next fine-tune answers a copy of a fifth of the requests (not streamed); its answers,
# tokens and cost are kept next to the served ones.
shadows = [{{ version = "v3", share = 0.2 }}]

[gateway.llm]
store_text = true
text_cap_bytes = 4096

# The assistant's A/B test: users give v2's answers a thumbs up more often (42 % vs 30 %),
# time to first token and errors are guardrails.
[[experiments]]
key = "assistant-v2"
model = "assistant"
description = "Do users like the v2 fine-tune's answers more, without slower first tokens?"
hash_version = 2
arms = [{{ name = "control", model_version = "v1" }}, {{ name = "treatment", model_version = "v2" }}]
[experiments.analysis]
primary = {{ metric = "thumbs_up", type = "proportion" }}
guardrails = [{{ metric = "ttft", higher_is_worse = true }}, {{ metric = "error_rate" }}]
min_units_per_arm = 300
engine = "sequential"

# A/B tests: churn v2 really keeps more customers (the simulation makes it so); fraud v2 is
# no better than v1.
[[experiments]]
key = "churn-v2"
model = "churn"
description = "Does churn model v2 keep more customers than v1?"
hash_version = 2
arms = [{{ name = "control", model_version = "v1" }}, {{ name = "treatment", model_version = "v2" }}]
[experiments.analysis]
primary = {{ metric = "churned", type = "proportion", higher_is_better = false }}
min_units_per_arm = 1000
engine = "sequential"

[[experiments]]
key = "fraud-v2"
model = "fraud"
description = "Does fraud model v2 confirm more fraud than v1?"
hash_version = 2
arms = [{{ name = "control", model_version = "v1" }}, {{ name = "treatment", model_version = "v2" }}]
[experiments.analysis]
primary = {{ metric = "fraud_confirmed", type = "proportion" }}
min_units_per_arm = 1000
engine = "sequential"

# Drift of inputs and score against the demo's first seconds (before drift is injected), and
# service health, every {WINDOW_SECS} s.
[[monitors]]
name = "churn-inputs"
model = "churn"
columns = ["monthly_spend", "plan", "tenure_months", "support_tickets", "prediction.score"]
window = "{WINDOW_SECS}s"
min_rows = 100
reference = {{ from = "{from}", to = "{to}" }}

[[monitors]]
name = "fraud-inputs"
model = "fraud"
columns = ["amount", "distance_km", "hour", "merchant_category", "prediction.score"]
window = "{WINDOW_SECS}s"
min_rows = 100
reference = {{ from = "{from}", to = "{to}" }}

[[monitors]]
name = "churn-health"
model = "churn"
window = "{WINDOW_SECS}s"
min_rows = 50
columns = ["monthly_spend", "plan"]
health = {{ latency_p95_ms = 250, error_rate = 0.05, missing_share = 0.05 }}

[[monitors]]
name = "fraud-health"
model = "fraud"
window = "{WINDOW_SECS}s"
min_rows = 50
health = {{ latency_p95_ms = 250, error_rate = 0.05 }}

[alerting]
dashboard_url = "{dashboard}"
deliver_every = "1s"
retry_base = "1s"

# E-mail through the SMTP sink the demo runs (messages land as .eml files), and a webhook to
# the receiver the demo runs.
[[alert_routes]]
name = "oncall"
email = {{ smtp_url = "smtp://{smtp}", from = "vigil@demo.local", to = ["oncall@demo.local"] }}
webhook = {{ url = "{backends}/hooks/alerts", format = "generic" }}

[[alert_rules]]
name = "input-drift"
kind = "drift"
severity = "warning"
for_windows = 2
of_windows = 3
resolve_after = 2
cooldown = "1h"

[[alert_rules]]
name = "service-health"
kind = "health"
severity = "critical"
for_windows = 2
of_windows = 3
resolve_after = 2
cooldown = "1h"

# What the ROI page counts: a churned customer costs 120 EUR, confirmed fraud saves 250 EUR, a
# liked answer is worth 5 cents; serving costs 0.40 EUR per 1,000 inferences, v2s use a GPU
# (0.02 GPU hours per 1,000); the assistant's requests carry their token cost.
[roi]
currency = "EUR"
value_per_outcome = {{ churned = -120.0, fraud_confirmed = 250.0, thumbs_up = 0.05 }}
inference_cost_per_1k = 0.4
gpu_hour_cost = 2.5
gpu_hours_per_1k = {{ "churn/v2" = 0.02, "fraud/v2" = 0.02 }}
control = {{ churn = "v1", fraud = "v1", assistant = "v1" }}

# Input drift of churn files a retraining request (and posts it to the demo's receiver).
[shadow]
webhook_url = "{backends}/hooks/retraining"

# The assistant's next fine-tune (v3) as an offline shadow candidate: `vigil shadow run --model
# assistant` replays the captured prompts against it (streamed, for its time to first token)
# and compares its answers with the served ones (the demo runs it once traffic has built up).
[[shadow.candidates]]
name = "assistant"
version = "v3"
base_url = "{backends}/llm-v3/v1"
model = "qwen2.5-7b-support-ft3"
stream = true
concurrency = 4
prompt_price_per_1k = 0.0003
completion_price_per_1k = 0.001

[[shadow.triggers]]
name = "churn-input-drift"
model = "churn"
kind = "drift"
monitor = "churn-inputs"
"#
    )
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}
