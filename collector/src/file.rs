//! File source: NDJSON files (`vigil ingest --file x.ndjson`), one event per line.
//!
//! Lines are read as bytes (a line that is not UTF-8 becomes a dead letter, it does not stop the
//! file); the dead letters' coordinates are the file path and the 1-based line number.

use crate::decode::decode_into;
use crate::writer::WriterHandle;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use vigil_store::event::{EventKind, EventTime, Limits};
use vigil_store::rows::{RowBatch, SourceCoord};

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct FileReport {
    pub lines: u64,
    pub accepted: u64,
    pub rejected: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum FileSourceError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("the collector stopped before {0} was fully written")]
    WriterGone(String),
}

/// Reads `path` and hands its events to the writer; returns once every line is stored.
/// Blocking: run it on a blocking thread. `on_progress(bytes_read)` is called per chunk.
pub fn ingest_file(
    path: &Path,
    kind: EventKind,
    limits: &Limits,
    writer: &WriterHandle,
    chunk_lines: usize,
    mut on_progress: impl FnMut(u64),
) -> Result<FileReport, FileSourceError> {
    let name = path.display().to_string();
    let io = |source| FileSourceError::Io {
        path: name.clone(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let source = format!("file:{name}");
    let metrics = writer.metrics().clone();
    let mut report = FileReport::default();
    let mut batch = RowBatch::default();
    let mut acks = Vec::new();
    let mut line = Vec::new();
    let mut bytes_read = 0u64;
    loop {
        line.clear();
        // Bound a single line's size: a runaway line is read (and counted) but only its head kept.
        let n = reader
            .by_ref()
            .take(limits.max_payload_bytes as u64 * 2 + 2)
            .read_until(b'\n', &mut line)
            .map_err(io)?;
        if n == 0 {
            break;
        }
        bytes_read += n as u64;
        if line.last() != Some(&b'\n') && n as u64 == limits.max_payload_bytes as u64 * 2 + 2 {
            // Skip the rest of an oversized line; it is rejected as too large below.
            let mut rest = Vec::new();
            bytes_read += reader.read_until(b'\n', &mut rest).map_err(io)? as u64;
        }
        report.lines += 1;
        let content = trim_line(&line);
        if content.is_empty() {
            continue;
        }
        let coord = SourceCoord {
            source: source.clone(),
            partition: -1,
            offset: report.lines as i64,
        };
        match decode_into(&mut batch, kind, content, &coord, limits, EventTime::now()) {
            Ok(()) => report.accepted += 1,
            Err(_) => report.rejected += 1,
        }
        if batch.len() >= chunk_lines {
            metrics.received(&source, kind.as_str(), batch.len() as u64);
            acks.push(
                writer
                    .blocking_submit(std::mem::take(&mut batch), Vec::new())
                    .map_err(|_| FileSourceError::WriterGone(name.clone()))?,
            );
            on_progress(bytes_read);
        }
    }
    if !batch.is_empty() {
        metrics.received(&source, kind.as_str(), batch.len() as u64);
        acks.push(
            writer
                .blocking_submit(batch, Vec::new())
                .map_err(|_| FileSourceError::WriterGone(name.clone()))?,
        );
    }
    metrics.rejected(&source, kind.as_str(), report.rejected);
    for ack in acks {
        ack.blocking_recv()
            .map_err(|_| FileSourceError::WriterGone(name.clone()))?;
    }
    on_progress(bytes_read);
    Ok(report)
}

fn trim_line(l: &[u8]) -> &[u8] {
    let mut end = l.len();
    while end > 0 && matches!(l[end - 1], b'\n' | b'\r' | b' ' | b'\t') {
        end -= 1;
    }
    let mut start = 0;
    while start < end && matches!(l[start], b' ' | b'\t') {
        start += 1;
    }
    &l[start..end]
}
