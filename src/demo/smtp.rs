//! A local SMTP sink for `vigil demo`: accepts every message over plain SMTP on loopback and
//! writes it to a mailbox folder, one `.eml` file per message. The alerting code delivers to it
//! exactly as to a real relay (lettre over TCP), so what the demo shows is the real path.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Longest message accepted (bigger ones are refused with 552, as a relay would).
const MAX_MESSAGE_BYTES: usize = 10 << 20;

/// A running sink: its address and the folder it writes to.
pub struct SmtpSink {
    pub addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl SmtpSink {
    /// Listens on `127.0.0.1` (a free port) and writes messages under `mailbox`.
    pub async fn start(mailbox: &Path) -> std::io::Result<SmtpSink> {
        std::fs::create_dir_all(mailbox)?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let dir = mailbox.to_path_buf();
        let seq = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(async move {
            loop {
                let Ok((conn, _)) = listener.accept().await else {
                    continue;
                };
                let (dir, seq) = (dir.clone(), seq.clone());
                tokio::spawn(async move {
                    if let Err(e) = session(conn, &dir, &seq).await {
                        tracing::debug!(error = %e, "demo SMTP session ended with an error");
                    }
                });
            }
        });
        Ok(SmtpSink { addr, task })
    }

    pub fn stop(&self) {
        self.task.abort();
    }
}

/// One SMTP conversation (RFC 5321, the subset a client needs to hand over a message).
async fn session(conn: TcpStream, dir: &Path, seq: &AtomicU64) -> std::io::Result<()> {
    let (read, mut write) = conn.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 vigil-demo ESMTP sink\r\n").await?;
    let (mut from, mut to) = (String::new(), Vec::<String>::new());
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let cmd = line.trim_end().to_string();
        let verb = cmd
            .split([' ', ':'])
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => b"250-vigil-demo\r\n250-8BITMIME\r\n250 SIZE 10485760\r\n",
            "HELO" => b"250 vigil-demo\r\n",
            "MAIL" => {
                from = address(&cmd);
                to.clear();
                b"250 OK\r\n"
            }
            "RCPT" => {
                to.push(address(&cmd));
                b"250 OK\r\n"
            }
            "DATA" => {
                write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
                let mut message = Vec::new();
                let mut too_big = false;
                loop {
                    line.clear();
                    if lines.read_line(&mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" || line == ".\n" {
                        break;
                    }
                    // Dot-stuffing: a leading ".." stands for ".".
                    let text = line.strip_prefix('.').unwrap_or(&line);
                    if message.len() + text.len() > MAX_MESSAGE_BYTES {
                        too_big = true;
                    } else {
                        message.extend_from_slice(text.as_bytes());
                    }
                }
                if too_big {
                    b"552 message too big\r\n"
                } else {
                    let n = seq.fetch_add(1, Ordering::Relaxed);
                    let name = format!("{}-{n:04}.eml", chrono::Utc::now().format("%Y%m%dT%H%M%S"));
                    let mut file = format!(
                        "X-Envelope-From: {from}\r\nX-Envelope-To: {}\r\n",
                        to.join(", ")
                    )
                    .into_bytes();
                    file.extend_from_slice(&message);
                    // Written under a temporary name first: readers never see half a message.
                    let tmp = dir.join(format!(".{name}.tmp"));
                    tokio::fs::write(&tmp, &file).await?;
                    tokio::fs::rename(&tmp, dir.join(&name)).await?;
                    b"250 OK: queued\r\n"
                }
            }
            "RSET" => {
                from.clear();
                to.clear();
                b"250 OK\r\n"
            }
            "NOOP" => b"250 OK\r\n",
            "QUIT" => {
                write.write_all(b"221 bye\r\n").await?;
                return Ok(());
            }
            _ => b"502 command not implemented\r\n",
        };
        write.write_all(reply).await?;
    }
}

/// The address in `MAIL FROM:<a@b>` / `RCPT TO:<a@b>`.
fn address(cmd: &str) -> String {
    match (cmd.find('<'), cmd.find('>')) {
        (Some(a), Some(b)) if b > a => cmd[a + 1..b].to_string(),
        _ => cmd.split(':').nth(1).unwrap_or("").trim().to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_envelope_addresses() {
        assert_eq!(
            super::address("MAIL FROM:<vigil@demo.local> SIZE=12"),
            "vigil@demo.local"
        );
        assert_eq!(
            super::address("RCPT TO: oncall@demo.local"),
            "oncall@demo.local"
        );
    }
}
