//! E-mail delivery over SMTP with `lettre` (tokio transport, rustls).
//!
//! `smtp://host:port` is plain SMTP for local relays; `smtp+starttls://host:port` upgrades with
//! STARTTLS (required, never silently plain); `smtps://host:port` is implicit TLS. Credentials
//! come from `username` plus `password` or, better, `password_env`.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::config::EmailRoute;
use super::AlertError;

/// How to reach the SMTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    Plain,
    StartTls,
    Tls,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpTarget {
    pub security: Security,
    pub host: String,
    pub port: u16,
}

impl SmtpTarget {
    pub fn parse(url: &str) -> Result<SmtpTarget, AlertError> {
        let bad = |why: &str| {
            AlertError::Config(format!(
                "smtp_url `{url}` {why}; write smtp://host:port (plain, local relays), smtp+starttls://host:587 or smtps://host:465"
            ))
        };
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("has no scheme"))?;
        let (security, default_port) = match scheme {
            "smtp" => (Security::Plain, 25),
            "smtp+starttls" => (Security::StartTls, 587),
            "smtps" => (Security::Tls, 465),
            _ => return Err(bad("has an unknown scheme")),
        };
        let hostport = rest.trim_end_matches('/');
        if hostport.is_empty() || hostport.contains('/') || hostport.contains('@') {
            return Err(bad("must be scheme://host[:port] with nothing else"));
        }
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (
                h.to_string(),
                p.parse::<u16>().map_err(|_| bad("has a bad port"))?,
            ),
            None => (hostport.to_string(), default_port),
        };
        if host.is_empty() {
            return Err(bad("has no host"));
        }
        Ok(SmtpTarget {
            security,
            host,
            port,
        })
    }
}

fn password(route: &EmailRoute) -> Result<Option<String>, String> {
    if let Some(p) = &route.password {
        return Ok(Some(p.clone()));
    }
    match &route.password_env {
        Some(var) => std::env::var(var)
            .map(Some)
            .map_err(|_| format!("environment variable {var} (email.password_env) is not set")),
        None => Ok(None),
    }
}

/// A message id derived from the idempotency key, so a duplicate (the one case the outbox
/// cannot rule out: a crash between the server's acceptance and recording it) is recognisable.
pub fn message_id(key: &str) -> String {
    let local: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '.'
            }
        })
        .collect();
    format!("<{}@vigil.alerts>", local.trim_matches('.'))
}

/// Builds the MIME message: multipart/alternative of plain text and HTML (multipart/related
/// with the chart as an inline `cid:chart` PNG when there is one).
pub fn build_message(
    route: &EmailRoute,
    subject: &str,
    text: &str,
    html: &str,
    chart_png: Option<Vec<u8>>,
    key: &str,
) -> Result<Message, String> {
    let from: Mailbox = route
        .from
        .parse()
        .map_err(|e| format!("email.from `{}`: {e}", route.from))?;
    let mut b = Message::builder()
        .from(from)
        .subject(subject)
        .message_id(Some(message_id(key)));
    for to in &route.to {
        let mb: Mailbox = to.parse().map_err(|e| format!("email.to `{to}`: {e}"))?;
        b = b.to(mb);
    }
    let html_part = SinglePart::html(html.to_string());
    let body = match chart_png {
        Some(png) => {
            let ct = ContentType::parse("image/png").map_err(|e| e.to_string())?;
            MultiPart::alternative()
                .singlepart(SinglePart::plain(text.to_string()))
                .multipart(
                    MultiPart::related()
                        .singlepart(html_part)
                        .singlepart(Attachment::new_inline("chart".to_string()).body(png, ct)),
                )
        }
        None => MultiPart::alternative()
            .singlepart(SinglePart::plain(text.to_string()))
            .singlepart(html_part),
    };
    b.multipart(body).map_err(|e| e.to_string())
}

/// Sends one message. The error text says what failed (connection, TLS, auth, rejection).
pub async fn send(route: &EmailRoute, message: Message, timeout: Duration) -> Result<(), String> {
    let target = SmtpTarget::parse(&route.smtp_url).map_err(|e| e.to_string())?;
    let mut builder = match target.security {
        Security::Plain => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&target.host),
        Security::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&target.host)
            .map_err(|e| format!("STARTTLS setup for {}: {e}", target.host))?,
        Security::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&target.host)
            .map_err(|e| format!("TLS setup for {}: {e}", target.host))?,
    }
    .port(target.port)
    .timeout(Some(timeout));
    if let Some(user) = &route.username {
        let pass = password(route)?.unwrap_or_default();
        builder = builder.credentials(Credentials::new(user.clone(), pass));
    }
    let transport = builder.build();
    transport
        .send(message)
        .await
        .map(|_| ())
        .map_err(|e| format!("SMTP {}:{}: {e}", target.host, target.port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            SmtpTarget::parse("smtp://127.0.0.1:2525").unwrap(),
            SmtpTarget {
                security: Security::Plain,
                host: "127.0.0.1".into(),
                port: 2525
            }
        );
        assert_eq!(
            SmtpTarget::parse("smtps://mail.example.com").unwrap().port,
            465
        );
        assert_eq!(
            SmtpTarget::parse("smtp+starttls://mail.example.com")
                .unwrap()
                .security,
            Security::StartTls
        );
        assert!(SmtpTarget::parse("http://x").is_err());
        assert!(SmtpTarget::parse("smtp://u:p@x:25").is_err());
        assert!(SmtpTarget::parse("smtp://x:port").is_err());
    }

    #[test]
    fn message_has_both_parts_and_recipients() {
        let route = EmailRoute {
            smtp_url: "smtp://127.0.0.1:25".into(),
            username: None,
            password: None,
            password_env: None,
            from: "vigil@example.com".into(),
            to: vec!["a@example.com".into(), "b@example.com".into()],
        };
        let m = build_message(
            &route,
            "[vigil][warning] x",
            "plain",
            "<p>html</p>",
            Some(vec![1, 2, 3]),
            "r:m:c:v:1:fired",
        )
        .unwrap();
        let raw = String::from_utf8(m.formatted()).unwrap();
        assert!(raw.contains("To: a@example.com, b@example.com"), "{raw}");
        assert!(raw.contains("multipart/alternative") && raw.contains("multipart/related"));
        assert!(raw.contains("text/plain") && raw.contains("text/html"));
        assert!(raw.contains("Content-ID: <chart>"), "{raw}");
        assert!(
            raw.contains("Message-ID: <r.m.c.v.1.fired@vigil.alerts>"),
            "{raw}"
        );
        assert_eq!(m.envelope().to().len(), 2);
    }
}
