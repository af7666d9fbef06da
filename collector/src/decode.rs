//! Turning raw payloads into rows or dead letters. Never fails: every input lands somewhere.

use vigil_store::event::{parse_event, EventKind, EventTime, Limits, ValidationError};
use vigil_store::rows::{DeadLetterRow, RowBatch, SourceCoord};

/// Validates one payload and adds it to `batch` as an event row or a dead letter.
pub fn decode_into(
    batch: &mut RowBatch,
    kind: EventKind,
    payload: &[u8],
    coord: &SourceCoord,
    limits: &Limits,
    now: EventTime,
) -> Result<(), ValidationError> {
    match parse_event(kind, payload, limits, now) {
        Ok(event) => {
            batch.push_event(event, coord);
            Ok(())
        }
        Err(e) => {
            batch.dead_letters.push(DeadLetterRow::new(
                kind, coord, &e.field, &e.reason, payload,
            ));
            Err(e)
        }
    }
}

/// The items of a request body: a JSON array of events, NDJSON (one event per line) or one event.
pub enum BodyItems<'a> {
    Items(Vec<&'a [u8]>),
    /// The body as a whole is unusable (e.g. a broken JSON array); the reason says why.
    Malformed(String),
}

/// Splits a body into raw items without fully parsing them (each item is validated on its own,
/// so one bad event does not reject its neighbours).
pub fn split_body(body: &[u8]) -> BodyItems<'_> {
    let trimmed = trim(body);
    if trimmed.is_empty() {
        return BodyItems::Malformed("empty body (send a JSON object, array or NDJSON)".into());
    }
    if trimmed[0] == b'[' {
        return match serde_json::from_slice::<Vec<&serde_json::value::RawValue>>(trimmed) {
            Ok(items) => BodyItems::Items(items.iter().map(|r| r.get().as_bytes()).collect()),
            Err(e) => BodyItems::Malformed(format!(
                "body starts with `[` but is not a JSON array of events: {e}"
            )),
        };
    }
    BodyItems::Items(
        trimmed
            .split(|b| *b == b'\n')
            .map(trim)
            .filter(|l| !l.is_empty())
            .collect(),
    )
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &s[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(b: &str) -> Vec<String> {
        match split_body(b.as_bytes()) {
            BodyItems::Items(v) => v
                .iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect(),
            BodyItems::Malformed(m) => vec![format!("MALFORMED {m}")],
        }
    }

    #[test]
    fn splits_arrays_ndjson_and_single_objects() {
        assert_eq!(
            items(r#"[{"a":1}, {"b":[1,2]}]"#),
            vec![r#"{"a":1}"#, r#"{"b":[1,2]}"#]
        );
        assert_eq!(
            items("{\"a\":1}\n\n{\"b\":2}\r\n"),
            vec![r#"{"a":1}"#, r#"{"b":2}"#]
        );
        assert_eq!(items(r#" {"a":1} "#), vec![r#"{"a":1}"#]);
        assert!(items("[{\"a\":1},").remove(0).starts_with("MALFORMED"));
        assert!(items("  ").remove(0).starts_with("MALFORMED"));
        // Items of an array are kept raw even when they are not objects: validation rejects them.
        assert_eq!(items("[1, \"x\"]"), vec!["1", "\"x\""]);
    }
}
