//! The event contract: inference, outcome and exposure events as versioned JSON.
//!
//! Parsing is strict (unknown fields, wrong types and out-of-range values are errors that name the
//! field at fault) and never panics on any input: callers turn a [`ValidationError`] into an HTTP
//! 4xx or a dead letter. See `docs/events.md` and `docs/events.schema.json`.

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::fmt;

/// The schema version this build writes and the newest it accepts.
pub const SCHEMA_VERSION: u8 = 1;

/// Which stream an event belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    Inference,
    Outcome,
    Exposure,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Inference => "inference",
            EventKind::Outcome => "outcome",
            EventKind::Exposure => "exposure",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for EventKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "inference" | "inferences" | "events" => Ok(EventKind::Inference),
            "outcome" | "outcomes" => Ok(EventKind::Outcome),
            "exposure" | "exposures" => Ok(EventKind::Exposure),
            other => Err(format!(
                "unknown event kind `{other}` (expected inference, outcome or exposure)"
            )),
        }
    }
}

/// Size and time limits every event is checked against.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest accepted payload of one event, in bytes.
    pub max_payload_bytes: usize,
    /// Most features (and most attributes) one event may carry.
    pub max_features: usize,
    /// Longest name (ids, model, version, feature and attribute names), in bytes.
    pub max_name_bytes: usize,
    /// Longest string value (categorical features, attribute values, labels), in bytes.
    pub max_value_bytes: usize,
    /// How far in the past an event's `ts` may lie, in seconds (backfills need a large value).
    pub max_past_skew_secs: u64,
    /// How far in the future an event's `ts` may lie, in seconds (clock skew of producers).
    pub max_future_skew_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_payload_bytes: 1 << 20,
            max_features: 1000,
            max_name_bytes: 256,
            max_value_bytes: 64 * 1024,
            max_past_skew_secs: 366 * 24 * 3600,
            max_future_skew_secs: 300,
        }
    }
}

/// Why an event was rejected: the field at fault (a dotted path) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ValidationError {
    /// Dotted path of the offending field (`features.age`), or `$` for the payload as a whole.
    pub field: String,
    pub reason: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ValidationError {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// An event time in milliseconds since the Unix epoch; JSON accepts RFC 3339 strings or integer ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct EventTime(pub i64);

impl EventTime {
    pub fn now() -> Self {
        EventTime(chrono::Utc::now().timestamp_millis())
    }
    pub fn millis(self) -> i64 {
        self.0
    }
    pub fn seconds(self) -> i64 {
        self.0.div_euclid(1000)
    }
}

impl<'de> Deserialize<'de> for EventTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = EventTime;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an RFC 3339 timestamp string or integer milliseconds since the epoch")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<EventTime, E> {
                i64::try_from(v)
                    .map(EventTime)
                    .map_err(|_| E::custom("timestamp out of range"))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<EventTime, E> {
                Ok(EventTime(v))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<EventTime, E> {
                if v.is_finite() && v.fract() == 0.0 && v.abs() < 9.0e15 {
                    Ok(EventTime(v as i64))
                } else {
                    Err(E::custom(
                        "epoch timestamps must be whole milliseconds (integer)",
                    ))
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<EventTime, E> {
                chrono::DateTime::parse_from_rfc3339(v)
                    .map(|t| EventTime(t.timestamp_millis()))
                    .map_err(|e| E::custom(format!("`{v}` is not an RFC 3339 timestamp ({e})")))
            }
        }
        d.deserialize_any(V)
    }
}

/// A feature value: numerical or categorical.
#[derive(Debug, Clone, PartialEq)]
pub enum FeatureValue {
    Number(f64),
    Text(String),
}

/// Ordered `name → value` pairs (features or attributes), kept in payload order.
#[derive(Debug, Clone, PartialEq)]
pub struct Fields<T>(pub Vec<(String, T)>);

impl<T> Default for Fields<T> {
    fn default() -> Self {
        Fields(Vec::new())
    }
}

struct FieldsVisitor<T>(std::marker::PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for FieldsVisitor<T> {
    type Value = Fields<T>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object of name → value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields<T>, A::Error> {
        let mut out: Vec<(String, T)> = Vec::with_capacity(map.size_hint().unwrap_or(8));
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value::<T>()?;
            out.push((key, value));
        }
        Ok(Fields(out))
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Fields<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(FieldsVisitor(std::marker::PhantomData))
    }
}

impl<'de> Deserialize<'de> for FeatureValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = FeatureValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number or a string")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<FeatureValue, E> {
                Ok(FeatureValue::Number(v as f64))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<FeatureValue, E> {
                Ok(FeatureValue::Number(v as f64))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<FeatureValue, E> {
                Ok(FeatureValue::Number(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<FeatureValue, E> {
                Ok(FeatureValue::Text(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<FeatureValue, E> {
                Ok(FeatureValue::Text(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// A string-ish scalar (attribute values and labels may be sent as strings, numbers or booleans).
#[derive(Debug, Clone, PartialEq)]
pub struct Scalar(pub String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar, E> {
                Ok(Scalar(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// What the model returned.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prediction {
    #[serde(default)]
    pub score: Option<f64>,
    #[serde(default)]
    pub label: Option<Scalar>,
}

/// One model inference, as logged by the serving system.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InferenceEvent {
    #[serde(default)]
    pub schema_version: Option<u32>,
    pub event_id: String,
    pub ts: EventTime,
    pub model: String,
    pub version: String,
    pub unit_id: String,
    #[serde(default)]
    pub features: Fields<FeatureValue>,
    /// Absent only on a failed inference (one with `error`).
    #[serde(default)]
    pub prediction: Prediction,
    /// Why the inference failed (timeout, model error): the event then has no `prediction`.
    /// Stored as the attribute `error`; health monitors count such events as errors.
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub latency_ms: Option<f64>,
    #[serde(default)]
    pub attributes: Fields<Scalar>,
    #[serde(default)]
    pub experiment: Option<String>,
    #[serde(default)]
    pub variant: Option<String>,
    #[serde(default)]
    pub input: Option<String>,
    #[serde(default)]
    pub cost: Option<f64>,
    /// What a generative (LLM) request adds: response text, tokens, time to first token.
    /// Boxed: most events have none, and it would double the size of every [`Event`].
    #[serde(default)]
    pub generation: Option<Box<Generation>>,
}

/// The generative part of an inference event (an LLM request through an OpenAI-compatible
/// server). The prompt is the event's `input`; the cost, latency and experiment arm are the
/// event's own fields.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Generation {
    /// The response text (the first choice's content), possibly capped by the producer.
    #[serde(default)]
    pub output: Option<String>,
    #[serde(default)]
    pub prompt_tokens: Option<u32>,
    #[serde(default)]
    pub completion_tokens: Option<u32>,
    /// True when the token counts were counted by the producer, not reported by the server.
    #[serde(default)]
    pub tokens_estimated: bool,
    /// Milliseconds from the request to the first chunk with content.
    #[serde(default)]
    pub ttft_ms: Option<f64>,
    /// Completion tokens per second after the first token.
    #[serde(default)]
    pub output_tokens_per_s: Option<f64>,
    /// `stop`, `length`, `tool_calls`, `content_filter`…; absent when the stream broke off.
    #[serde(default)]
    pub finish_reason: Option<String>,
    #[serde(default)]
    pub streamed: bool,
}

/// Something that happened after an inference: a label, a conversion, revenue.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutcomeEvent {
    #[serde(default)]
    pub schema_version: Option<u32>,
    pub event_id: String,
    pub ts: EventTime,
    pub unit_id: String,
    pub model: String,
    #[serde(default)]
    pub inference_id: Option<String>,
    pub name: String,
    pub value: f64,
}

/// A unit was exposed to an experiment arm (written by the experimenter).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExposureEvent {
    #[serde(default)]
    pub schema_version: Option<u32>,
    pub event_id: String,
    pub ts: EventTime,
    pub experiment: String,
    pub variant: String,
    pub unit_id: String,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub attributes: Fields<Scalar>,
}

/// Any one of the three event kinds.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Inference(InferenceEvent),
    Outcome(OutcomeEvent),
    Exposure(ExposureEvent),
}

impl Event {
    pub fn event_id(&self) -> &str {
        match self {
            Event::Inference(e) => &e.event_id,
            Event::Outcome(e) => &e.event_id,
            Event::Exposure(e) => &e.event_id,
        }
    }
}

/// Parses and validates one event of `kind` from raw bytes.
///
/// `now` is the receive time used for the skew check. Never panics; every error names a field.
pub fn parse_event(
    kind: EventKind,
    payload: &[u8],
    limits: &Limits,
    now: EventTime,
) -> Result<Event, ValidationError> {
    if payload.len() > limits.max_payload_bytes {
        return Err(ValidationError::new(
            "$",
            format!(
                "payload is {} bytes, over the limit of {} bytes",
                payload.len(),
                limits.max_payload_bytes
            ),
        ));
    }
    match kind {
        EventKind::Inference => {
            let e: InferenceEvent = decode(payload)?;
            validate_inference(&e, limits, now)?;
            Ok(Event::Inference(e))
        }
        EventKind::Outcome => {
            let e: OutcomeEvent = decode(payload)?;
            validate_outcome(&e, limits, now)?;
            Ok(Event::Outcome(e))
        }
        EventKind::Exposure => {
            let e: ExposureEvent = decode(payload)?;
            validate_exposure(&e, limits, now)?;
            Ok(Event::Exposure(e))
        }
    }
}

fn decode<T: for<'de> Deserialize<'de>>(payload: &[u8]) -> Result<T, ValidationError> {
    // Fast path: most events are valid, and tracking the field path costs ~30%. Only a failure
    // is parsed again, with the path, to say which field is at fault.
    if let Ok(v) = serde_json::from_slice(payload) {
        return Ok(v);
    }
    let mut de = serde_json::Deserializer::from_slice(payload);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let field = if path.is_empty() || path == "." {
            "$".to_string()
        } else {
            path
        };
        ValidationError::new(field, describe_json_error(&inner))
    })?;
    de.end()
        .map_err(|e| ValidationError::new("$", format!("trailing data after the event: {e}")))?;
    Ok(value)
}

fn describe_json_error(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let msg = e.to_string();
    match e.classify() {
        Category::Syntax if msg.contains("recursion limit") => {
            "nesting is too deep (events are flat objects)".to_string()
        }
        Category::Syntax | Category::Eof => format!("not valid JSON: {msg}"),
        Category::Io => format!("could not read payload: {msg}"),
        Category::Data => msg,
    }
}

fn check_version(v: Option<u32>) -> Result<(), ValidationError> {
    match v {
        None => Ok(()),
        Some(v) if v >= 1 && v <= SCHEMA_VERSION as u32 => Ok(()),
        Some(v) => Err(ValidationError::new(
            "schema_version",
            format!("unsupported schema version {v} (this build accepts 1..={SCHEMA_VERSION})"),
        )),
    }
}

fn check_name(field: &str, v: &str, limits: &Limits) -> Result<(), ValidationError> {
    if v.is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    check_len(field, v, limits.max_name_bytes)
}

fn check_len(field: &str, v: &str, max: usize) -> Result<(), ValidationError> {
    if v.len() > max {
        return Err(ValidationError::new(
            field,
            format!("is {} bytes, over the limit of {max} bytes", v.len()),
        ));
    }
    Ok(())
}

fn check_finite(field: &str, v: f64) -> Result<(), ValidationError> {
    if !v.is_finite() {
        return Err(ValidationError::new(field, "must be a finite number"));
    }
    Ok(())
}

fn check_non_negative(field: &str, v: Option<f64>) -> Result<(), ValidationError> {
    if let Some(v) = v {
        check_finite(field, v)?;
        if v < 0.0 {
            return Err(ValidationError::new(field, "must not be negative"));
        }
    }
    Ok(())
}

fn check_time(ts: EventTime, limits: &Limits, now: EventTime) -> Result<(), ValidationError> {
    if ts.0 < 0 || ts.seconds() > u32::MAX as i64 {
        return Err(ValidationError::new(
            "ts",
            "is outside the storable range 1970-01-01..2106-02-07",
        ));
    }
    let past = now.0 - (limits.max_past_skew_secs as i64).saturating_mul(1000);
    let future = now.0 + (limits.max_future_skew_secs as i64).saturating_mul(1000);
    if ts.0 < past {
        return Err(ValidationError::new(
            "ts",
            format!(
                "is more than {} s in the past (raise limits.max_past_skew_secs to backfill)",
                limits.max_past_skew_secs
            ),
        ));
    }
    if ts.0 > future {
        return Err(ValidationError::new(
            "ts",
            format!(
                "is more than {} s in the future (check the producer's clock)",
                limits.max_future_skew_secs
            ),
        ));
    }
    Ok(())
}

fn check_fields<T>(
    field: &str,
    fields: &Fields<T>,
    limits: &Limits,
    mut check_value: impl FnMut(&str, &T) -> Result<(), ValidationError>,
) -> Result<(), ValidationError> {
    if fields.0.len() > limits.max_features {
        return Err(ValidationError::new(
            field,
            format!(
                "has {} entries, over the limit of {}",
                fields.0.len(),
                limits.max_features
            ),
        ));
    }
    // Small maps: a quadratic duplicate scan beats hashing; large ones are sorted.
    if fields.0.len() <= 32 {
        for (i, (name, _)) in fields.0.iter().enumerate() {
            if fields.0[..i].iter().any(|(n, _)| n == name) {
                return Err(ValidationError::new(
                    format!("{field}.{name}"),
                    "appears more than once",
                ));
            }
        }
    } else {
        let mut names: Vec<&str> = fields.0.iter().map(|(n, _)| n.as_str()).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(ValidationError::new(
                format!("{field}.{}", w[0]),
                "appears more than once",
            ));
        }
    }
    for (name, value) in &fields.0 {
        let path = format!("{field}.{name}");
        if name.is_empty() {
            return Err(ValidationError::new(field, "names must not be empty"));
        }
        check_len(&path, name, limits.max_name_bytes)?;
        check_value(&path, value)?;
    }
    Ok(())
}

fn check_features(f: &Fields<FeatureValue>, limits: &Limits) -> Result<(), ValidationError> {
    check_fields("features", f, limits, |path, v| match v {
        FeatureValue::Number(x) => check_finite(path, *x),
        FeatureValue::Text(s) => check_len(path, s, limits.max_value_bytes),
    })
}

fn check_attributes(f: &Fields<Scalar>, limits: &Limits) -> Result<(), ValidationError> {
    check_fields("attributes", f, limits, |path, v| {
        check_len(path, &v.0, limits.max_value_bytes)
    })
}

fn check_opt_name(field: &str, v: &Option<String>, limits: &Limits) -> Result<(), ValidationError> {
    match v {
        Some(s) => check_name(field, s, limits),
        None => Ok(()),
    }
}

/// Checks everything about an inference event that its JSON types do not.
pub fn validate_inference(
    e: &InferenceEvent,
    limits: &Limits,
    now: EventTime,
) -> Result<(), ValidationError> {
    check_version(e.schema_version)?;
    check_name("event_id", &e.event_id, limits)?;
    check_time(e.ts, limits, now)?;
    check_name("model", &e.model, limits)?;
    check_name("version", &e.version, limits)?;
    check_name("unit_id", &e.unit_id, limits)?;
    check_features(&e.features, limits)?;
    // A finished generation is a prediction too: its finish reason is stored as the label, so
    // "no score and no label" stays the one definition of a failed inference.
    let finished = e
        .generation
        .as_ref()
        .is_some_and(|g| g.finish_reason.is_some());
    let predicted = e.prediction.score.is_some() || e.prediction.label.is_some() || finished;
    match &e.error {
        Some(err) => {
            check_len("error", err, limits.max_value_bytes)?;
            if err.trim().is_empty() {
                return Err(ValidationError::new(
                    "error",
                    "is empty; say why the inference failed, or leave `error` out",
                ));
            }
            if predicted {
                return Err(ValidationError::new(
                    "error",
                    "marks a failed inference, which has no `prediction` (nor a `generation.finish_reason`); send one or the other",
                ));
            }
        }
        None if !predicted => {
            return Err(ValidationError::new(
                "prediction",
                "needs a `score`, a `label` or both (a generation: `generation.finish_reason`; a failed inference: `error`)",
            ));
        }
        None => {}
    }
    if let Some(s) = e.prediction.score {
        check_finite("prediction.score", s)?;
    }
    if let Some(l) = &e.prediction.label {
        check_len("prediction.label", &l.0, limits.max_value_bytes)?;
    }
    check_non_negative("latency_ms", e.latency_ms)?;
    check_non_negative("cost", e.cost)?;
    if let Some(g) = &e.generation {
        check_non_negative("generation.ttft_ms", g.ttft_ms)?;
        check_non_negative("generation.output_tokens_per_s", g.output_tokens_per_s)?;
        if let Some(f) = &g.finish_reason {
            check_name("generation.finish_reason", f, limits)?;
        }
    }
    check_attributes(&e.attributes, limits)?;
    check_opt_name("experiment", &e.experiment, limits)?;
    check_opt_name("variant", &e.variant, limits)?;
    if e.variant.is_some() && e.experiment.is_none() {
        return Err(ValidationError::new(
            "variant",
            "is set but `experiment` is missing",
        ));
    }
    Ok(())
}

/// Checks everything about an outcome event that its JSON types do not.
pub fn validate_outcome(
    e: &OutcomeEvent,
    limits: &Limits,
    now: EventTime,
) -> Result<(), ValidationError> {
    check_version(e.schema_version)?;
    check_name("event_id", &e.event_id, limits)?;
    check_time(e.ts, limits, now)?;
    check_name("unit_id", &e.unit_id, limits)?;
    check_name("model", &e.model, limits)?;
    check_opt_name("inference_id", &e.inference_id, limits)?;
    check_name("name", &e.name, limits)?;
    check_finite("value", e.value)
}

/// Checks everything about an exposure event that its JSON types do not.
pub fn validate_exposure(
    e: &ExposureEvent,
    limits: &Limits,
    now: EventTime,
) -> Result<(), ValidationError> {
    check_version(e.schema_version)?;
    check_name("event_id", &e.event_id, limits)?;
    check_time(e.ts, limits, now)?;
    check_name("experiment", &e.experiment, limits)?;
    check_name("variant", &e.variant, limits)?;
    check_name("unit_id", &e.unit_id, limits)?;
    check_opt_name("model", &e.model, limits)?;
    check_opt_name("version", &e.version, limits)?;
    check_attributes(&e.attributes, limits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> EventTime {
        EventTime(1_790_000_000_000)
    }

    fn inference(extra: &str) -> String {
        format!(
            r#"{{"event_id":"e1","ts":1790000000000,"model":"churn","version":"v1","unit_id":"u1",
               "features":{{"age":31,"plan":"pro"}},"prediction":{{"score":0.7,"label":"yes"}}{extra}}}"#
        )
    }

    fn err(kind: EventKind, s: &str) -> ValidationError {
        parse_event(kind, s.as_bytes(), &Limits::default(), now()).unwrap_err()
    }

    #[test]
    fn parses_a_full_inference_event() {
        let e = parse_event(
            EventKind::Inference,
            inference(r#","latency_ms":12.5,"attributes":{"region":"eu","vip":true},"experiment":"x","variant":"b","input":"hi","cost":0.002"#).as_bytes(),
            &Limits::default(),
            now(),
        )
        .unwrap();
        let Event::Inference(e) = e else { panic!() };
        assert_eq!(e.features.0[0], ("age".into(), FeatureValue::Number(31.0)));
        assert_eq!(
            e.features.0[1],
            ("plan".into(), FeatureValue::Text("pro".into()))
        );
        assert_eq!(e.attributes.0[1].1, Scalar("true".into()));
        assert_eq!(e.latency_ms, Some(12.5));
    }

    #[test]
    fn a_failed_inference_has_an_error_instead_of_a_prediction() {
        let failed = inference(r#","error":"timeout after 2000 ms","latency_ms":2000"#)
            .replace(r#","prediction":{"score":0.7,"label":"yes"}"#, "");
        let e = parse_event(
            EventKind::Inference,
            failed.as_bytes(),
            &Limits::default(),
            now(),
        )
        .unwrap();
        let mut batch = crate::rows::RowBatch::default();
        batch.push_event(
            e,
            &crate::rows::SourceCoord {
                source: "t".into(),
                partition: -1,
                offset: 0,
            },
        );
        let row = &batch.inference[0];
        assert_eq!((row.score, row.label.as_deref()), (None, None));
        assert_eq!(row.attr_names, ["error"]);
        assert_eq!(row.attr_values, ["timeout after 2000 ms"]);
        // Both, or neither: rejected with the field at fault.
        let both = err(EventKind::Inference, &inference(r#","error":"boom""#));
        assert_eq!(both.field, "error");
        let neither = err(
            EventKind::Inference,
            &inference("").replace(r#","prediction":{"score":0.7,"label":"yes"}"#, ""),
        );
        assert_eq!(neither.field, "prediction");
        assert!(neither.reason.contains("error"), "{}", neither.reason);
    }

    #[test]
    fn a_generation_is_stored_in_its_columns_with_its_finish_reason_as_label() {
        let g = inference(
            r#","input":"user: hi","cost":0.002,"generation":{"output":"Hello!","prompt_tokens":5,"completion_tokens":2,"tokens_estimated":true,"ttft_ms":80.5,"output_tokens_per_s":40,"finish_reason":"length","streamed":true}"#,
        )
        .replace(r#","prediction":{"score":0.7,"label":"yes"}"#, "");
        let e = parse_event(
            EventKind::Inference,
            g.as_bytes(),
            &Limits::default(),
            now(),
        )
        .unwrap();
        let mut batch = crate::rows::RowBatch::default();
        batch.push_event(
            e,
            &crate::rows::SourceCoord {
                source: "t".into(),
                partition: -1,
                offset: 0,
            },
        );
        let row = &batch.inference[0];
        assert_eq!(row.label.as_deref(), Some("length"));
        assert_eq!(
            (row.output.as_str(), row.input.as_str()),
            ("Hello!", "user: hi")
        );
        assert_eq!(
            (row.prompt_tokens, row.completion_tokens),
            (Some(5), Some(2))
        );
        assert_eq!((row.tokens_estimated, row.streamed), (1, 1));
        assert_eq!((row.ttft_ms, row.output_tps), (Some(80.5), Some(40.0)));
        assert_eq!(row.finish_reason, "length");
        // A generation that never finished is a failure: it needs `error`.
        let unfinished = g.replace(r#","finish_reason":"length""#, "");
        assert_eq!(err(EventKind::Inference, &unfinished).field, "prediction");
        let negative = g.replace(r#""ttft_ms":80.5"#, r#""ttft_ms":-1"#);
        assert_eq!(
            err(EventKind::Inference, &negative).field,
            "generation.ttft_ms"
        );
        let unknown = g.replace(r#""streamed":true"#, r#""streamed":true,"x":1"#);
        assert!(err(EventKind::Inference, &unknown)
            .field
            .starts_with("generation"));
    }

    #[test]
    fn accepts_rfc3339_and_epoch_ms() {
        let a = inference("").replace("1790000000000", "\"2026-09-21T14:13:20Z\"");
        let Event::Inference(e) = parse_event(
            EventKind::Inference,
            a.as_bytes(),
            &Limits::default(),
            now(),
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(e.ts, EventTime(1_790_000_000_000));
    }

    #[test]
    fn errors_name_the_field() {
        let e = err(EventKind::Inference, &inference("").replace("31", "[1]"));
        assert_eq!(e.field, "features.age");
        let e = err(
            EventKind::Inference,
            &inference("").replace("0.7", "\"high\""),
        );
        assert_eq!(e.field, "prediction.score");
        let e = err(EventKind::Inference, &inference(r#","latency":3"#));
        assert!(e.reason.contains("unknown field"), "{e}");
        let e = err(
            EventKind::Inference,
            &inference("").replace(r#""model":"churn","#, ""),
        );
        assert!(e.reason.contains("missing field `model`"), "{e}");
        let e = err(EventKind::Inference, &inference(r#","latency_ms":-1"#));
        assert_eq!(e.field, "latency_ms");
    }

    #[test]
    fn rejects_non_finite_and_bad_json() {
        assert_eq!(
            err(EventKind::Inference, &inference("").replace("31", "NaN")).field,
            "features.age"
        );
        assert!(
            err(EventKind::Inference, &inference("").replace("31", "1e999"))
                .reason
                .contains("out of range")
        );
        let deep = format!("{}1{}", "[".repeat(500), "]".repeat(500));
        let e = err(EventKind::Inference, &inference("").replace("31", &deep));
        assert!(
            e.reason.contains("too deep") || e.field.starts_with("features"),
            "{e}"
        );
        let bad = [b'{', 0xff, 0xfe, b'}'];
        assert!(parse_event(EventKind::Inference, &bad, &Limits::default(), now()).is_err());
    }

    #[test]
    fn enforces_limits() {
        let limits = Limits::default();
        let many: Vec<String> = (0..1001).map(|i| format!("\"f{i}\":1")).collect();
        let s = inference("").replace(r#""age":31,"plan":"pro""#, &many.join(","));
        let e = parse_event(EventKind::Inference, s.as_bytes(), &limits, now()).unwrap_err();
        assert_eq!(e.field, "features");
        let long = "x".repeat(257);
        let e = err(
            EventKind::Inference,
            &inference("").replace("\"churn\"", &format!("\"{long}\"")),
        );
        assert_eq!(e.field, "model");
        let dup = inference("").replace(r#""plan":"pro""#, r#""age":2"#);
        assert_eq!(err(EventKind::Inference, &dup).field, "features.age");
        let huge = vec![b' '; (1 << 20) + 1];
        assert_eq!(
            parse_event(EventKind::Inference, &huge, &limits, now())
                .unwrap_err()
                .field,
            "$"
        );
    }

    #[test]
    fn enforces_skew() {
        let future = inference("").replace("1790000000000", "1790000400000");
        assert_eq!(err(EventKind::Inference, &future).field, "ts");
        let ancient = inference("").replace("1790000000000", "1000");
        assert_eq!(err(EventKind::Inference, &ancient).field, "ts");
    }

    #[test]
    fn parses_outcomes_and_exposures() {
        let o = r#"{"event_id":"o1","ts":1790000000000,"unit_id":"u1","model":"churn","name":"converted","value":1}"#;
        assert!(parse_event(EventKind::Outcome, o.as_bytes(), &Limits::default(), now()).is_ok());
        let x = r#"{"event_id":"x1","ts":1790000000000,"experiment":"exp","variant":"b","unit_id":"u1"}"#;
        assert!(parse_event(EventKind::Exposure, x.as_bytes(), &Limits::default(), now()).is_ok());
        assert_eq!(
            err(
                EventKind::Outcome,
                &o.replace("\"value\":1", "\"value\":\"1\"")
            )
            .field,
            "value"
        );
    }
}
