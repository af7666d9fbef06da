//! The OpenAI-compatible protocol as the gateway needs it: plain functions over bytes and JSON,
//! no I/O. Request preparation (the `model` rewrite, `stream_options`), prompt rendering, an
//! incremental server-sent-events splitter, what a chunk or a response says (content,
//! `finish_reason`, `usage`), and the tally of one generation.
//!
//! Facts it follows (../shared/facts/llm-protocol.md): each SSE event is `data: <json>\n\n`,
//! lines starting with `:` are comments, the stream ends with `data: [DONE]`; with
//! `stream_options.include_usage` the server sends one extra chunk whose `choices` is `[]` and
//! which carries the total `usage`, and every other chunk has `"usage": null`.

use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Map, Value};

/// Which OpenAI-compatible route a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Chat,
    Completions,
    Embeddings,
}

impl Endpoint {
    /// The path under the server's `/v1` base URL.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Chat => "/chat/completions",
            Endpoint::Completions => "/completions",
            Endpoint::Embeddings => "/embeddings",
        }
    }
}

/// A request ready to go upstream.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The body sent to the backend.
    pub body: Vec<u8>,
    pub stream: bool,
    /// The gateway added `stream_options.include_usage`: the usage chunk (and the
    /// `"usage": null` of the other chunks) must not reach the client.
    pub strip_usage: bool,
}

/// Parses a request body, which must be a JSON object.
pub fn parse_request(body: &[u8]) -> Result<Map<String, Value>, String> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err("the request body must be a JSON object".into()),
        Err(e) => Err(format!("the request body is not valid JSON: {e}")),
    }
}

/// The request's `model`, `user` and `stream` fields.
pub fn requested_model(req: &Map<String, Value>) -> Option<&str> {
    req.get("model").and_then(Value::as_str)
}

pub fn user(req: &Map<String, Value>) -> Option<&str> {
    req.get("user")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty() && u.len() <= 256)
}

pub fn wants_stream(req: &Map<String, Value>) -> bool {
    req.get("stream").and_then(Value::as_bool).unwrap_or(false)
}

fn asks_usage(req: &Map<String, Value>) -> bool {
    req.get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// The body for a backend: `model` becomes the backend's name for the version and, for a
/// stream that did not ask for usage on a server that accepts `stream_options`, usage is asked
/// for (and later stripped). Every other field passes through as sent.
pub fn prepare(
    mut req: Map<String, Value>,
    endpoint: Endpoint,
    backend_model: &str,
    stream_options_ok: bool,
) -> Prepared {
    req.insert("model".into(), Value::String(backend_model.to_owned()));
    let stream = endpoint != Endpoint::Embeddings && wants_stream(&req);
    let mut strip_usage = false;
    if stream && stream_options_ok && !asks_usage(&req) {
        let options = req
            .entry("stream_options")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(o) = options {
            o.insert("include_usage".into(), Value::Bool(true));
            strip_usage = true;
        }
    }
    Prepared {
        body: serde_json::to_vec(&Value::Object(req)).unwrap_or_default(),
        stream,
        strip_usage,
    }
}

/// The body of a mirrored copy: not streamed (the whole answer is kept), for `backend_model`.
pub fn prepare_shadow(req: &Map<String, Value>, backend_model: &str) -> Vec<u8> {
    let mut req = req.clone();
    req.insert("model".into(), Value::String(backend_model.to_owned()));
    req.remove("stream");
    req.remove("stream_options");
    serde_json::to_vec(&Value::Object(req)).unwrap_or_default()
}

/// The prompt as text: chat messages as `role: content` lines (text parts of multi-part
/// contents; other parts as `[type]`), a completion prompt (strings joined by newlines),
/// embedding inputs likewise. Token-id prompts render as nothing.
pub fn render_prompt(endpoint: Endpoint, req: &Map<String, Value>) -> String {
    fn text_of(v: &Value, out: &mut String) {
        match v {
            Value::String(s) => out.push_str(s),
            Value::Array(parts) => {
                for (i, p) in parts.iter().enumerate() {
                    if i > 0 {
                        out.push('\n');
                    }
                    match p {
                        Value::String(s) => out.push_str(s),
                        Value::Object(o) => match o.get("text").and_then(Value::as_str) {
                            Some(t) => out.push_str(t),
                            None => {
                                let kind = o.get("type").and_then(Value::as_str).unwrap_or("part");
                                out.push('[');
                                out.push_str(kind);
                                out.push(']');
                            }
                        },
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    let mut out = String::new();
    match endpoint {
        Endpoint::Chat => {
            for m in req
                .get("messages")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if !out.is_empty() {
                    out.push('\n');
                }
                out.push_str(m.get("role").and_then(Value::as_str).unwrap_or("user"));
                out.push_str(": ");
                if let Some(c) = m.get("content") {
                    text_of(c, &mut out);
                }
            }
        }
        Endpoint::Completions => {
            if let Some(p) = req.get("prompt") {
                text_of(p, &mut out);
            }
        }
        Endpoint::Embeddings => {
            if let Some(p) = req.get("input") {
                text_of(p, &mut out);
            }
        }
    }
    out
}

/// Token count of a text when the server reported none: OpenAI's rule of thumb of one token
/// per four characters, rounded up (an estimate, recorded as such).
pub fn estimate_tokens(text: &str) -> u32 {
    let chars = text.chars().count() as u64;
    chars.div_ceil(4).min(u64::from(u32::MAX)) as u32
}

/// `s` cut to at most `cap` bytes at a character boundary.
pub fn cap_text(s: &str, cap: usize) -> &str {
    if s.len() <= cap {
        return s;
    }
    let mut end = cap;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// `usage` as servers send it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: u32,
    #[serde(default)]
    pub completion_tokens: u32,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(default, borrow)]
    content: Option<std::borrow::Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ChoiceChunk<'a> {
    #[serde(default, borrow)]
    delta: Option<Delta<'a>>,
    /// Legacy completions stream `text` instead of `delta`.
    #[serde(default, borrow)]
    text: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(default, borrow)]
    choices: Option<Vec<ChoiceChunk<'a>>>,
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    error: Option<Value>,
}

/// One server-sent event, classified.
#[derive(Debug, PartialEq)]
pub enum SseKind<'a> {
    /// Only comment lines (`: keep-alive`).
    Comment,
    /// `data: [DONE]`.
    Done,
    /// A data payload (the `data:` lines joined).
    Data(std::borrow::Cow<'a, str>),
    /// Anything else (event names without data, blank).
    Other,
}

/// Classifies one complete event (with or without its terminating blank line).
pub fn classify(event: &[u8]) -> SseKind<'_> {
    let Ok(text) = std::str::from_utf8(event) else {
        return SseKind::Other;
    };
    let mut data: Option<std::borrow::Cow<'_, str>> = None;
    let mut only_comments = true;
    for line in text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)) {
        if line.is_empty() {
            continue;
        }
        if line.starts_with(':') {
            continue;
        }
        only_comments = false;
        if let Some(v) = line.strip_prefix("data:") {
            let v = v.strip_prefix(' ').unwrap_or(v);
            data = Some(match data {
                None => std::borrow::Cow::Borrowed(v),
                Some(d) => std::borrow::Cow::Owned(format!("{d}\n{v}")),
            });
        }
    }
    match data {
        Some(d) if d.trim() == "[DONE]" => SseKind::Done,
        Some(d) => SseKind::Data(d),
        None if only_comments && !text.trim().is_empty() => SseKind::Comment,
        None => SseKind::Other,
    }
}

/// Splits a byte stream into complete events (each returned with its terminator) as bytes
/// arrive; holds back only an incomplete event.
#[derive(Debug, Default)]
pub struct SseSplitter {
    buf: Vec<u8>,
}

impl SseSplitter {
    /// Adds bytes; calls `on_event` with each event completed by them.
    pub fn push(&mut self, bytes: &[u8], mut on_event: impl FnMut(&[u8])) {
        if self.buf.is_empty() {
            // The usual case: servers flush whole events, so nothing is copied.
            let used = split_events(bytes, &mut on_event);
            self.buf.extend_from_slice(&bytes[used..]);
        } else {
            self.buf.extend_from_slice(bytes);
            let held = std::mem::take(&mut self.buf);
            let used = split_events(&held, &mut on_event);
            self.buf.extend_from_slice(&held[used..]);
        }
    }

    /// What is held back (an event the stream never finished).
    pub fn rest(&self) -> &[u8] {
        &self.buf
    }
}

/// Calls `on_event` with each complete event of `slice`; returns the bytes used.
fn split_events(slice: &[u8], on_event: &mut impl FnMut(&[u8])) -> usize {
    let (mut start, mut i) = (0, 0);
    while i + 1 < slice.len() {
        let end = if slice[i] == b'\n' && slice[i + 1] == b'\n' {
            Some(i + 2)
        } else if slice[i..].starts_with(b"\r\n\r\n") {
            Some(i + 4)
        } else {
            None
        };
        match end {
            Some(e) => {
                on_event(&slice[start..e]);
                start = e;
                i = e;
            }
            None => i += 1,
        }
    }
    start
}

/// What one data chunk says.
#[derive(Debug, Default, PartialEq)]
pub struct ChunkInfo {
    /// Content of the first choice (delta content or legacy `text`); may be empty.
    pub content: Option<String>,
    pub finish_reason: Option<String>,
    pub usage: Option<Usage>,
    /// The extra usage chunk (`choices` empty, `usage` set).
    pub usage_only: bool,
    /// An error object sent in the stream.
    pub error: Option<String>,
}

/// Reads a data chunk; `None` when it is not JSON of the chunk shape.
pub fn read_chunk(data: &str) -> Option<ChunkInfo> {
    let c: Chunk<'_> = serde_json::from_str(data).ok()?;
    let mut info = ChunkInfo {
        usage: c.usage,
        error: c.error.map(|e| {
            e.get("message")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| e.to_string())
        }),
        ..ChunkInfo::default()
    };
    match c.choices {
        Some(choices) if choices.is_empty() => info.usage_only = info.usage.is_some(),
        Some(choices) => {
            if let Some(first) = choices.into_iter().next() {
                info.content = first
                    .delta
                    .and_then(|d| d.content)
                    .or(first.text)
                    .map(|c| c.into_owned());
                info.finish_reason = first.finish_reason;
            }
        }
        None => {}
    }
    Some(info)
}

/// The event without `"usage": null` (what the backend sends in every chunk once usage was
/// asked for), so a client that did not ask sees the chunks it would have seen.
pub fn without_null_usage(event: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    const NEEDLES: [&[u8]; 4] = [
        b",\"usage\":null",
        b", \"usage\": null",
        b"\"usage\":null,",
        b"\"usage\": null, ",
    ];
    for n in NEEDLES {
        if let Some(at) = find(event, n) {
            let mut out = Vec::with_capacity(event.len());
            out.extend_from_slice(&event[..at]);
            out.extend_from_slice(&event[at + n.len()..]);
            return std::borrow::Cow::Owned(out);
        }
    }
    std::borrow::Cow::Borrowed(event)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The first choice's text, `finish_reason` and `usage` of a non-streamed response.
pub fn read_response(endpoint: Endpoint, body: &[u8]) -> (String, Option<String>, Option<Usage>) {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return (String::new(), None, None);
    };
    let usage = v
        .get("usage")
        .and_then(|u| serde_json::from_value::<Usage>(u.clone()).ok());
    let first = v.get("choices").and_then(|c| c.get(0));
    let text = match endpoint {
        Endpoint::Chat => first
            .and_then(|c| c.get("message"))
            .and_then(|m| m.get("content"))
            .and_then(Value::as_str),
        Endpoint::Completions => first.and_then(|c| c.get("text")).and_then(Value::as_str),
        Endpoint::Embeddings => None,
    }
    .unwrap_or_default()
    .to_owned();
    let finish = first
        .and_then(|c| c.get("finish_reason"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    (text, finish, usage)
}

/// Everything recorded about one generation, filled chunk by chunk (or from one response).
#[derive(Debug, Clone)]
pub struct Tally {
    pub started: Instant,
    pub text: String,
    cap: usize,
    pub content_chunks: u32,
    pub first_content: Option<Instant>,
    pub finish_reason: Option<String>,
    pub usage: Option<Usage>,
    pub done: bool,
    pub error: Option<String>,
}

impl Tally {
    pub fn new(started: Instant, cap: usize) -> Tally {
        Tally {
            started,
            text: String::new(),
            cap,
            content_chunks: 0,
            first_content: None,
            finish_reason: None,
            usage: None,
            done: false,
            error: None,
        }
    }

    /// Takes in one chunk, seen at `at`.
    pub fn chunk(&mut self, info: &ChunkInfo, at: Instant) {
        if let Some(c) = info.content.as_deref().filter(|c| !c.is_empty()) {
            self.content_chunks += 1;
            self.first_content.get_or_insert(at);
            if self.text.len() < self.cap {
                let room = self.cap - self.text.len();
                self.text.push_str(cap_text(c, room));
            }
        }
        if let Some(f) = &info.finish_reason {
            self.finish_reason = Some(f.clone());
        }
        if let Some(u) = info.usage {
            self.usage = Some(u);
        }
        if let Some(e) = &info.error {
            self.error = Some(e.clone());
        }
    }

    /// Time to first token, in milliseconds.
    pub fn ttft_ms(&self) -> Option<f64> {
        self.first_content
            .map(|t| t.duration_since(self.started).as_secs_f64() * 1000.0)
    }

    /// (prompt, completion, estimated): the server's usage, else the prompt estimated from its
    /// text and the completion counted as one token per content chunk (what vLLM, llama.cpp and
    /// TGI stream).
    pub fn tokens(&self, prompt: &str) -> (u32, u32, bool) {
        match self.usage {
            Some(u) => (u.prompt_tokens, u.completion_tokens, false),
            None => (estimate_tokens(prompt), self.content_chunks, true),
        }
    }

    /// Completion tokens per second after the first token (none for fewer than two tokens).
    pub fn tokens_per_s(&self, completion_tokens: u32, total: Duration) -> Option<f64> {
        let first = self.first_content?;
        let decode = (self.started + total).checked_duration_since(first)?;
        (completion_tokens > 1 && decode > Duration::ZERO)
            .then(|| f64::from(completion_tokens - 1) / decode.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepare_rewrites_model_and_asks_usage_once() {
        let req = parse_request(
            br#"{"model":"assistant","stream":true,"messages":[],"tools":[{"type":"function"}]}"#,
        )
        .unwrap();
        let p = prepare(req.clone(), Endpoint::Chat, "qwen-ft-2", true);
        let v: Value = serde_json::from_slice(&p.body).unwrap();
        assert_eq!(v["model"], "qwen-ft-2");
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert_eq!(v["tools"][0]["type"], "function");
        assert!(p.stream && p.strip_usage);
        // Asked by the client: nothing to strip.
        let mut asked = req.clone();
        asked.insert(
            "stream_options".into(),
            serde_json::json!({"include_usage": true}),
        );
        let p = prepare(asked, Endpoint::Chat, "m", true);
        assert!(!p.strip_usage);
        // A server without stream_options (TGI): the body keeps none.
        let p = prepare(req, Endpoint::Chat, "m", false);
        let v: Value = serde_json::from_slice(&p.body).unwrap();
        assert!(v.get("stream_options").is_none() && !p.strip_usage);
        let shadow = prepare_shadow(
            &parse_request(
                br#"{"model":"a","stream":true,"stream_options":{"include_usage":true}}"#,
            )
            .unwrap(),
            "b",
        );
        assert_eq!(shadow, br#"{"model":"b"}"#);
    }

    #[test]
    fn renders_prompts() {
        let req = parse_request(br#"{"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":[{"type":"text","text":"Hi"},{"type":"image_url","image_url":{}}]}]}"#).unwrap();
        assert_eq!(
            render_prompt(Endpoint::Chat, &req),
            "system: Be brief.\nuser: Hi\n[image_url]"
        );
        let req = parse_request(br#"{"prompt":["a","b"]}"#).unwrap();
        assert_eq!(render_prompt(Endpoint::Completions, &req), "a\nb");
        assert_eq!(estimate_tokens("abcde"), 2);
        assert_eq!(cap_text("héllo", 2), "h");
    }

    #[test]
    fn splits_events_across_reads() {
        let mut s = SseSplitter::default();
        let mut seen = Vec::new();
        s.push(b"data: {\"a\":1}\n\n: keep-alive\n\ndata: {\"b\"", |e| {
            seen.push(e.to_vec())
        });
        assert_eq!(seen.len(), 2);
        assert_eq!(classify(&seen[1]), SseKind::Comment);
        s.push(b":2}\r\n\r\ndata: [DONE]\n\n", |e| seen.push(e.to_vec()));
        assert_eq!(seen.len(), 4);
        assert_eq!(classify(&seen[2]), SseKind::Data("{\"b\":2}".into()));
        assert_eq!(classify(&seen[3]), SseKind::Done);
        assert!(s.rest().is_empty());
    }

    #[test]
    fn reads_chunks_and_strips_null_usage() {
        let c = read_chunk(r#"{"id":"x","choices":[{"index":0,"delta":{"content":" hi"},"finish_reason":null}],"usage":null}"#).unwrap();
        assert_eq!(c.content.as_deref(), Some(" hi"));
        assert!(!c.usage_only);
        let u = read_chunk(
            r#"{"id":"x","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}}"#,
        )
        .unwrap();
        assert!(u.usage_only);
        assert_eq!(
            u.usage,
            Some(Usage {
                prompt_tokens: 5,
                completion_tokens: 7
            })
        );
        let legacy = read_chunk(r#"{"choices":[{"text":"x","finish_reason":"length"}]}"#).unwrap();
        assert_eq!(legacy.content.as_deref(), Some("x"));
        assert_eq!(legacy.finish_reason.as_deref(), Some("length"));
        assert_eq!(
            &*without_null_usage(b"data: {\"id\":\"x\",\"choices\":[],\"usage\":null}\n\n"),
            b"data: {\"id\":\"x\",\"choices\":[]}\n\n"
        );
        assert_eq!(
            &*without_null_usage(b"data: {\"usage\": null, \"id\": 1}\n\n"),
            b"data: {\"id\": 1}\n\n"
        );
    }

    #[test]
    fn tally_counts_tokens_and_times() {
        let t0 = Instant::now();
        let mut t = Tally::new(t0, 4);
        t.chunk(
            &ChunkInfo {
                content: Some(String::new()),
                ..Default::default()
            },
            t0 + Duration::from_millis(5),
        );
        assert!(
            t.first_content.is_none(),
            "a role-only chunk is not a token"
        );
        for (i, w) in ["ab", "cd", "ef"].iter().enumerate() {
            t.chunk(
                &ChunkInfo {
                    content: Some((*w).into()),
                    ..Default::default()
                },
                t0 + Duration::from_millis(100 + 50 * i as u64),
            );
        }
        assert_eq!(t.text, "abcd");
        assert_eq!(t.ttft_ms().map(|x| x.round()), Some(100.0));
        assert_eq!(t.tokens("12345678"), (2, 3, true));
        let tps = t.tokens_per_s(3, Duration::from_millis(200)).unwrap();
        assert!((tps - 20.0).abs() < 1e-9, "{tps}");
        let (text, finish, usage) = read_response(
            Endpoint::Chat,
            br#"{"choices":[{"message":{"role":"assistant","content":"Hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1}}"#,
        );
        assert_eq!((text.as_str(), finish.as_deref()), ("Hello", Some("stop")));
        assert_eq!(usage.map(|u| u.completion_tokens), Some(1));
    }
}
