//! Webhook delivery: one JSON POST per notification, with an `Idempotency-Key` header so a
//! receiver can drop the duplicate the outbox cannot rule out (a crash between the receiver's
//! 2xx and recording it). Retries are the outbox's job.

use std::time::Duration;

/// POSTs `body` to `url`; any 2xx is success, anything else an error naming the status.
pub async fn post(
    url: &str,
    body: &str,
    idempotency_key: &str,
    timeout: Duration,
) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(|e| format!("webhook client: {e}"))?;
    let resp = client
        .post(url)
        .header("content-type", "application/json")
        .header("idempotency-key", idempotency_key)
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| format!("webhook {url}: {e}"))?;
    let status = resp.status();
    if status.is_success() {
        Ok(())
    } else {
        let text = resp.text().await.unwrap_or_default();
        let cut: String = text.chars().take(200).collect();
        Err(format!("webhook {url} answered {status}: {cut}"))
    }
}
