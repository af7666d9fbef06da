//! A traffic simulator: realistic inference and outcome events for two models with two versions
//! each, optional input drift, and a catalogue of malformed and hostile payloads.
//!
//! Used by `vigil demo`, `vigil bench` and the end-to-end tests, so all three exercise the same
//! event shapes. Deterministic for a given seed.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::fmt::Write;

/// One simulated model: its name and versions.
pub const MODELS: [(&str, [&str; 2]); 2] = [("churn", ["v1", "v2"]), ("fraud", ["v1", "v2"])];

const PLANS: [&str; 4] = ["free", "basic", "pro", "enterprise"];
const REGIONS: [&str; 3] = ["eu", "us", "apac"];
const MERCHANTS: [&str; 5] = ["grocery", "travel", "electronics", "fuel", "gaming"];

pub struct TrafficSimulator {
    rng: StdRng,
    run_id: String,
    seq: u64,
    drift: bool,
    fail_every: u64,
}

/// A generated inference: its id, unit and JSON.
pub struct SimulatedInference {
    pub event_id: String,
    pub unit_id: String,
    pub model: &'static str,
    pub score: f64,
    pub json: String,
}

/// A prediction request for the gateway (see [`TrafficSimulator::request`]).
pub struct SimulatedRequest {
    pub model: &'static str,
    pub unit_id: String,
    /// JSON body: `unit_id`, `features`, `attributes`.
    pub body: String,
    /// The unit's true chance of the model's outcome (churn, fraud) before any action taken on
    /// a prediction: what v1 scores for these features.
    pub risk: f64,
}

fn logistic(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

fn churn_z(tenure: f64, spend: f64, tickets: f64) -> f64 {
    -1.0 - 0.04 * tenure + 0.02 * spend + 0.3 * tickets
}

fn fraud_z(amount: f64, distance: f64, hour: i64) -> f64 {
    -4.0 + 0.004 * amount + 0.05 * distance + if hour < 5 { 1.0 } else { 0.0 }
}

/// How a version shifts its model's score (v2 of churn scores a little lower).
fn version_effect(model: &str, version: &str) -> f64 {
    match (model, version) {
        ("churn", "v2") => -0.1,
        ("churn", "v3") => 0.15,
        _ => 0.0,
    }
}

/// What a simulated model backend answers for `features` (a request body's `features`
/// object): the same scoring as the events of [`TrafficSimulator::inference`]. `None` when a
/// feature the model needs is missing or not a number.
pub fn backend_score(
    model: &str,
    version: &str,
    features: &serde_json::Map<String, serde_json::Value>,
) -> Option<f64> {
    let num = |k: &str| features.get(k).and_then(serde_json::Value::as_f64);
    let z = match model {
        "churn" => churn_z(
            num("tenure_months")?,
            num("monthly_spend")?,
            num("support_tickets")?,
        ),
        "fraud" => fraud_z(num("amount")?, num("distance_km")?, num("hour")? as i64),
        _ => return None,
    };
    Some(logistic(z + version_effect(model, version)))
}

fn normal(rng: &mut StdRng) -> f64 {
    // Box–Muller; adequate for synthetic features.
    let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
    let u2: f64 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

impl TrafficSimulator {
    /// `run_id` keeps event ids unique across runs sharing a store.
    pub fn new(seed: u64, run_id: &str) -> Self {
        TrafficSimulator {
            rng: StdRng::seed_from_u64(seed),
            run_id: run_id.to_string(),
            seq: 0,
            drift: false,
            fail_every: 0,
        }
    }

    /// From now on, every `n`-th inference (0 = none) is a failed request: no prediction, an
    /// `error` instead, and the latency of a timeout. Chosen by sequence number, not by the
    /// random generator, so the other events stay the same as without failures.
    pub fn set_failure_every(&mut self, n: u64) {
        self.fail_every = n;
    }

    /// From now on, shift the input distributions (what the analyzer should notice).
    pub fn set_drift(&mut self, on: bool) {
        self.drift = on;
    }

    pub fn drifting(&self) -> bool {
        self.drift
    }

    /// Next inference event at `ts_ms`, spread over both models and both versions.
    pub fn inference(&mut self, ts_ms: i64) -> SimulatedInference {
        self.seq += 1;
        let model_ix = (self.seq % 2) as usize;
        let (model, versions) = MODELS[model_ix];
        let version = versions[self.rng.gen_range(0..2)];
        let unit = self.rng.gen_range(0..50_000u32);
        let unit_id = format!("user-{unit}");
        let event_id = format!("{}-{}", self.run_id, self.seq);
        let region = REGIONS[self.rng.gen_range(0..REGIONS.len())];
        let mut json = String::with_capacity(320);
        let (features, z) = self.features(model);
        let score = logistic(z + version_effect(model, version));
        let label = if score >= 0.5 { "positive" } else { "negative" };
        let latency =
            (if version == "v2" { 18.0 } else { 12.0 }) + 4.0 * normal(&mut self.rng).abs();
        let failed = self.fail_every > 0 && self.seq.is_multiple_of(self.fail_every);
        let (answer, latency) = if failed {
            (r#""error":"backend timeout""#.to_string(), 2000.0)
        } else {
            (
                format!(r#""prediction":{{"score":{score:.5},"label":"{label}"}}"#),
                latency,
            )
        };
        let _ = write!(
            json,
            r#"{{"event_id":"{event_id}","ts":{ts_ms},"model":"{model}","version":"{version}","unit_id":"{unit_id}","features":{features},{answer},"latency_ms":{latency:.2},"attributes":{{"region":"{region}"}},"cost":0.0004}}"#
        );
        SimulatedInference {
            event_id,
            unit_id,
            model,
            score,
            json,
        }
    }

    /// Draws `model`'s input features (drifted when drift is on): their JSON object and the
    /// model's linear predictor before any version effect.
    fn features(&mut self, model: &str) -> (String, f64) {
        if model == "churn" {
            let tenure = (24.0 + 12.0 * normal(&mut self.rng)).max(0.0).round();
            let spend_mu = if self.drift { 70.0 } else { 50.0 };
            let spend = (spend_mu + 15.0 * normal(&mut self.rng)).max(0.0);
            let tickets = self.rng.gen_range(0..if self.drift { 9 } else { 4 }) as f64;
            let plan = if self.drift && self.rng.gen_bool(0.5) {
                "free"
            } else {
                PLANS[self.rng.gen_range(0..PLANS.len())]
            };
            (
                format!(
                    r#"{{"tenure_months":{tenure},"monthly_spend":{spend:.2},"support_tickets":{tickets},"plan":"{plan}"}}"#
                ),
                churn_z(tenure, spend, tickets),
            )
        } else {
            let scale = if self.drift { 3.0 } else { 1.0 };
            let amount = (scale * 40.0 * (0.8 * normal(&mut self.rng)).exp()).max(0.01);
            let hour = self.rng.gen_range(0..24);
            let distance = (5.0 * normal(&mut self.rng).abs()) * if self.drift { 2.0 } else { 1.0 };
            let merchant = MERCHANTS[self.rng.gen_range(0..MERCHANTS.len())];
            (
                format!(
                    r#"{{"amount":{amount:.2},"hour":{hour},"distance_km":{distance:.3},"merchant_category":"{merchant}"}}"#
                ),
                fraud_z(amount, distance, hour),
            )
        }
    }

    /// Next prediction request as an application sends it to the gateway
    /// (`POST /v1/predict/{model}`): unit, features and attributes, no version (the gateway
    /// picks it). Alternates models like [`Self::inference`].
    pub fn request(&mut self) -> SimulatedRequest {
        self.seq += 1;
        let model = MODELS[(self.seq % 2) as usize].0;
        let unit_id = format!("user-{}", self.rng.gen_range(0..50_000u32));
        let region = REGIONS[self.rng.gen_range(0..REGIONS.len())];
        let (features, z) = self.features(model);
        let body = format!(
            r#"{{"unit_id":"{unit_id}","features":{features},"attributes":{{"region":"{region}"}}}}"#
        );
        SimulatedRequest {
            model,
            unit_id,
            body,
            risk: logistic(z),
        }
    }

    /// A uniform draw in `[0, 1)` from the simulator's generator (for outcomes decided by the
    /// caller, e.g. from the version a gateway served).
    pub fn uniform(&mut self) -> f64 {
        self.rng.gen()
    }

    /// An outcome for an inference: whether the prediction came true (label) or revenue.
    pub fn outcome(&mut self, inf: &SimulatedInference, ts_ms: i64) -> String {
        let happened = self.rng.gen_bool(inf.score.clamp(0.01, 0.99));
        let (name, value) = if inf.model == "churn" {
            ("churned", if happened { 1.0 } else { 0.0 })
        } else {
            ("fraud_confirmed", if happened { 1.0 } else { 0.0 })
        };
        format!(
            r#"{{"event_id":"{}-o","ts":{ts_ms},"unit_id":"{}","model":"{}","inference_id":"{}","name":"{name}","value":{value}}}"#,
            inf.event_id, inf.unit_id, inf.model, inf.event_id
        )
    }

    /// Number of distinct kinds in [`TrafficSimulator::hostile`].
    pub const HOSTILE_KINDS: usize = 20;

    /// The `i`-th hostile payload (cycling through [`Self::HOSTILE_KINDS`] kinds): wrong types,
    /// NaN, huge bodies, deep nesting, invalid UTF-8, truncation, limits, skew and more.
    /// `ts_ms` is a valid receive time; `unique` keeps ids distinct.
    pub fn hostile(&mut self, i: usize, ts_ms: i64) -> Vec<u8> {
        let id = format!("{}-bad-{i}", self.run_id);
        let good = |extra: &str, features: &str| {
            format!(
                r#"{{"event_id":"{id}","ts":{ts_ms},"model":"churn","version":"v1","unit_id":"u","features":{features},"prediction":{{"score":0.5}}{extra}}}"#
            )
        };
        match i % Self::HOSTILE_KINDS {
            0 => good("", r#"{"age":"thirty","spend":[1,2]}"#).into_bytes(),
            1 => good("", r#"{"age":NaN}"#).into_bytes(),
            2 => good("", r#"{"age":Infinity}"#).into_bytes(),
            3 => good("", r#"{"age":1e999}"#).into_bytes(),
            4 => {
                let mut s = good("", r#"{"x":1}"#);
                s.insert_str(s.len() - 1, &format!(r#","input":"{}""#, "A".repeat(1_100_000)));
                s.into_bytes()
            }
            5 => good("", &format!("{{\"deep\":{}1{}}}", "[".repeat(10_000), "]".repeat(10_000))).into_bytes(),
            6 => {
                let mut b = good("", r#"{"name":"XX"}"#).into_bytes();
                let at = b.windows(2).position(|w| w == b"XX").unwrap_or(0);
                b[at] = 0xff;
                b[at + 1] = 0xfe;
                b
            }
            7 => {
                let s = good("", r#"{"x":1}"#);
                s.as_bytes()[..s.len() / 2].to_vec()
            }
            8 => format!(r#"{{"event_id":"{id}","ts":{ts_ms},"version":"v1","unit_id":"u","prediction":{{"score":0.5}}}}"#).into_bytes(),
            9 => good(r#","surprise":true"#, r#"{"x":1}"#).into_bytes(),
            10 => good(r#","latency_ms":-5"#, r#"{"x":1}"#).into_bytes(),
            11 => good("", r#"{"x":1}"#).replace(&format!("\"{id}\""), "\"\"").into_bytes(),
            12 => {
                let many: Vec<String> = (0..1500).map(|k| format!("\"f{k}\":{k}")).collect();
                good("", &format!("{{{}}}", many.join(","))).into_bytes()
            }
            13 => good("", &format!("{{\"{}\":1}}", "n".repeat(300))).into_bytes(),
            14 => good("", r#"{"x":1}"#).replace(&format!("\"ts\":{ts_ms}"), &format!("\"ts\":{}", ts_ms + 86_400_000)).into_bytes(),
            15 => good("", r#"{"x":1}"#).replace(&format!("\"ts\":{ts_ms}"), "\"yesterday-ish\"").into_bytes(),
            16 => b"[1,2,3]".to_vec(),
            17 => b"null".to_vec(),
            18 => (0..64u8).map(|b| b.wrapping_mul(37)).collect(),
            _ => good("", r#"{"x":1,"x":2}"#).into_bytes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_store::event::{parse_event, Event, EventKind, EventTime, Limits};

    #[test]
    fn requests_carry_features_a_backend_can_score() {
        let mut sim = TrafficSimulator::new(9, "t");
        for _ in 0..20 {
            let r = sim.request();
            let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
            assert_eq!(body["unit_id"], r.unit_id.as_str());
            let features = body["features"].as_object().unwrap();
            let s1 = backend_score(r.model, "v1", features).unwrap();
            assert!(
                (s1 - r.risk).abs() < 1e-3,
                "risk {} vs v1 score {s1}",
                r.risk
            );
            let s2 = backend_score(r.model, "v2", features).unwrap();
            assert!(s1 > 0.0 && s1 < 1.0, "{s1}");
            if r.model == "churn" {
                assert!(s2 < s1, "churn v2 scores lower: {s2} vs {s1}");
            }
        }
        assert_eq!(backend_score("churn", "v1", &serde_json::Map::new()), None);
    }

    #[test]
    fn failures_replace_every_nth_prediction_and_leave_the_rest_alone() {
        let now = 1_790_000_000_000;
        let (mut plain, mut failing) =
            (TrafficSimulator::new(3, "t"), TrafficSimulator::new(3, "t"));
        failing.set_failure_every(5);
        for seq in 1..=50u64 {
            let (a, b) = (plain.inference(now), failing.inference(now));
            let e = parse_event(
                EventKind::Inference,
                b.json.as_bytes(),
                &Limits::default(),
                EventTime(now),
            )
            .unwrap_or_else(|e| panic!("{e}: {}", b.json));
            let Event::Inference(e) = e else {
                panic!("not an inference: {}", b.json)
            };
            if seq % 5 == 0 {
                assert!(
                    e.prediction.score.is_none() && e.error.is_some(),
                    "{}",
                    b.json
                );
                assert_eq!(e.latency_ms, Some(2000.0));
            } else {
                assert_eq!(a.json, b.json);
            }
        }
    }

    #[test]
    fn simulated_events_are_valid_and_hostile_ones_are_not() {
        let now = 1_790_000_000_000;
        let mut sim = TrafficSimulator::new(7, "t");
        for drift in [false, true] {
            sim.set_drift(drift);
            for _ in 0..200 {
                let inf = sim.inference(now);
                parse_event(
                    EventKind::Inference,
                    inf.json.as_bytes(),
                    &Limits::default(),
                    EventTime(now),
                )
                .unwrap_or_else(|e| panic!("{e}: {}", inf.json));
                let o = sim.outcome(&inf, now);
                parse_event(
                    EventKind::Outcome,
                    o.as_bytes(),
                    &Limits::default(),
                    EventTime(now),
                )
                .unwrap();
            }
        }
        for i in 0..TrafficSimulator::HOSTILE_KINDS {
            let p = sim.hostile(i, now);
            assert!(
                parse_event(EventKind::Inference, &p, &Limits::default(), EventTime(now)).is_err(),
                "hostile kind {i} was accepted: {}",
                String::from_utf8_lossy(&p[..p.len().min(200)])
            );
        }
    }
}
