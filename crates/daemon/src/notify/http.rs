//! The HTTP part every webhook-style channel shares: one POST of JSON, classified.

use std::time::Duration;

use super::{DeliveryError, NotifyError};

/// A client for one channel, with its per-attempt timeout (rustls, no proxy surprises beyond
/// the standard `HTTPS_PROXY` variables).
pub(crate) fn client(notifier: &str, timeout: Duration) -> Result<reqwest::Client, NotifyError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("holdfast/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| NotifyError::new(notifier, format!("cannot set up HTTP: {e}")))
}

/// POSTs `body` as JSON and returns the answer's body on a 2xx. Timeouts, connection errors,
/// 408, 429 and 5xx are transient; other statuses are not. Errors never carry the URL (it may
/// hold a token).
pub(crate) async fn post_json(
    client: &reqwest::Client,
    url: &reqwest::Url,
    body: &serde_json::Value,
    bearer: Option<&str>,
) -> Result<String, DeliveryError> {
    let mut request = client
        .post(url.clone())
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.map_err(|e| {
        let e = e.without_url();
        if e.is_builder() {
            DeliveryError::permanent(format!("cannot build the request: {e}"))
        } else if e.is_timeout() {
            DeliveryError::transient(format!("timed out: {e}"))
        } else {
            DeliveryError::transient(format!("cannot reach the endpoint: {}", chain(&e)))
        }
    })?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if status.is_success() {
        return Ok(text);
    }
    let code = status.as_u16();
    let message = format!("HTTP {status}: {}", snippet(&text));
    if code == 408 || code == 429 || status.is_server_error() {
        Err(DeliveryError::transient(message))
    } else {
        Err(DeliveryError::permanent(message))
    }
}

/// The start of a response body, on one line, for error messages.
pub(crate) fn snippet(text: &str) -> String {
    let one: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one.chars().count() > 200 {
        format!("{}…", one.chars().take(200).collect::<String>())
    } else if one.is_empty() {
        "(empty body)".into()
    } else {
        one
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let t = s.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        source = s.source();
    }
    out
}

/// Robots (DingTalk, WeCom, Feishu) answer HTTP 200 with a JSON code: 0 is success. `busy` are
/// the codes meaning "too many messages, try later" (transient).
pub(crate) fn check_code(body: &str, fields: &[&str], busy: &[i64]) -> Result<(), DeliveryError> {
    let value: serde_json::Value = serde_json::from_str(body).map_err(|_| {
        DeliveryError::permanent(format!(
            "the answer is not the robot's JSON: {}",
            snippet(body)
        ))
    })?;
    let code = fields
        .iter()
        .find_map(|f| value.get(*f).and_then(|c| c.as_i64()));
    match code {
        Some(0) => Ok(()),
        Some(c) => {
            let message = format!(
                "the robot refused the message (code {c}): {}",
                snippet(body)
            );
            if busy.contains(&c) {
                Err(DeliveryError::transient(message))
            } else {
                Err(DeliveryError::permanent(message))
            }
        }
        None => Err(DeliveryError::permanent(format!(
            "the answer has no result code: {}",
            snippet(body)
        ))),
    }
}
