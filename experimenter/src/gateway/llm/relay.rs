//! Relays a backend's event stream to the client as it arrives.
//!
//! Each network read is split into complete events (an incomplete one is held back until its
//! end arrives: the only buffering), inspected (content, `finish_reason`, `usage`) and
//! forwarded in one write; comments and `[DONE]` pass through. When the gateway asked for usage
//! on the client's behalf, the usage chunk and the `"usage": null` of the other chunks are
//! removed. The inference is recorded exactly once, when the relay ends or is dropped:
//! finished (`[DONE]` seen), failed (the backend broke off, errored or went quiet longer than
//! the timeout: the client gets an error event, then the end), or cancelled (the client went
//! away: dropping the relay drops the backend response, which closes that connection and so
//! cancels the generation upstream).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::web::Bytes;
use futures::Stream;

use super::protocol::{self, SseKind, SseSplitter, Tally};
use super::Call;

struct Relay {
    upstream: reqwest::Response,
    splitter: SseSplitter,
    tally: Tally,
    strip_usage: bool,
    idle: Duration,
    call: Arc<Call>,
    /// Set once the stream has ended one way or another (then nothing more is read).
    ended: bool,
    /// Why the stream failed, if it did.
    failure: Option<String>,
    recorded: bool,
}

/// The client-facing stream for one backend response.
pub(super) fn relay(
    upstream: reqwest::Response,
    call: Call,
    tally: Tally,
    strip_usage: bool,
    idle: Duration,
) -> impl Stream<Item = Result<Bytes, Infallible>> {
    let state = Relay {
        upstream,
        splitter: SseSplitter::default(),
        tally,
        strip_usage,
        idle,
        call: Arc::new(call),
        ended: false,
        failure: None,
        recorded: false,
    };
    futures::stream::unfold(state, |mut st| async move {
        loop {
            if st.ended {
                st.record();
                return None;
            }
            match tokio::time::timeout(st.idle, st.upstream.chunk()).await {
                Ok(Ok(Some(bytes))) => {
                    let out = st.take(&bytes);
                    if !out.is_empty() {
                        return Some((Ok(out), st));
                    }
                }
                Ok(Ok(None)) => {
                    st.ended = true;
                    if st.tally.done {
                        st.record();
                        return None;
                    }
                    let e = "the backend closed the stream before [DONE]".to_owned();
                    return Some((Ok(st.fail(e)), st));
                }
                Ok(Err(e)) => {
                    st.ended = true;
                    let e = format!("the backend stream broke off: {e}");
                    return Some((Ok(st.fail(e)), st));
                }
                Err(_) => {
                    st.ended = true;
                    let e = format!("no chunk from the backend for {} ms", st.idle.as_millis());
                    return Some((Ok(st.fail(e)), st));
                }
            }
        }
    })
}

impl Relay {
    /// The events of one read that go to the client.
    fn take(&mut self, bytes: &[u8]) -> Bytes {
        let now = Instant::now();
        let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
        let (tally, strip) = (&mut self.tally, self.strip_usage);
        let mut error = None;
        self.splitter
            .push(bytes, |event| match protocol::classify(event) {
                SseKind::Done => {
                    tally.done = true;
                    out.extend_from_slice(event);
                }
                SseKind::Data(data) => match protocol::read_chunk(&data) {
                    Some(info) => {
                        tally.chunk(&info, now);
                        if let Some(e) = &info.error {
                            error = Some(e.clone());
                        }
                        if info.usage_only && strip {
                            return;
                        }
                        if strip {
                            out.extend_from_slice(&protocol::without_null_usage(event));
                        } else {
                            out.extend_from_slice(event);
                        }
                    }
                    None => out.extend_from_slice(event),
                },
                SseKind::Comment | SseKind::Other => out.extend_from_slice(event),
            });
        if let Some(e) = error {
            // The backend reported an error in the stream: forwarded as sent, recorded as a
            // failure.
            self.failure = Some(format!("the backend sent an error: {e}"));
        }
        Bytes::from(out)
    }

    /// Ends the stream with an error event the OpenAI SDKs raise; returns its bytes.
    fn fail(&mut self, reason: String) -> Bytes {
        self.call.backend.breaker.failure(Instant::now());
        let event = serde_json::json!({
            "error": {"message": reason, "type": "upstream_error", "param": null, "code": "upstream_disconnected"}
        });
        self.failure = Some(reason);
        Bytes::from(format!("data: {event}\n\n"))
    }

    fn record(&mut self) {
        if self.recorded {
            return;
        }
        self.recorded = true;
        let (label, error) = match (&self.failure, self.ended) {
            (Some(f), _) => (None, Some(f.clone())),
            (None, true) => (
                Some(
                    self.tally
                        .finish_reason
                        .clone()
                        .unwrap_or_else(|| "stop".to_owned()),
                ),
                None,
            ),
            // Dropped before the end: the client went away.
            (None, false) => (Some("client_cancelled".to_owned()), None),
        };
        if label.as_deref() == Some("client_cancelled") {
            self.tally.finish_reason = Some("client_cancelled".to_owned());
        }
        self.call.record(&self.tally, label, error);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.record();
    }
}
