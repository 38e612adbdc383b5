//! `kind = "feishu"`: a Feishu (Lark) custom bot, as a rich-text `post` message.
//!
//! With signature verification on (签名校验), the body carries `timestamp` (Unix seconds, as a
//! string) and `sign` = base64(HMAC-SHA256(key = timestamp + "\n" + secret, message = empty)),
//! as Feishu documents (the key is the string to sign; the message is empty). Feishu answers
//! `{"code": 0}` (older bots `{"StatusCode": 0}`); 11232 (frequency limited) is retried.

use async_trait::async_trait;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use super::{http, secret, Alert, Channel, Delivery, DeliveryError, NotifyError};
use crate::config::FeishuConfig;
use crate::time::now_millis;

const BUSY: &[i64] = &[11232];

pub struct Feishu {
    client: reqwest::Client,
    url: reqwest::Url,
    secret: Option<String>,
}

impl Feishu {
    pub fn from_config(
        name: &str,
        c: &FeishuConfig,
        delivery: &Delivery,
    ) -> Result<Feishu, NotifyError> {
        Ok(Feishu {
            client: http::client(name, delivery.timeout)?,
            url: secret::url(
                name,
                "Feishu bot",
                c.url.as_deref(),
                c.url_file.as_deref(),
                c.url_env.as_deref(),
                true,
            )?,
            secret: secret::read(
                name,
                "secret",
                c.secret_file.as_deref(),
                c.secret_env.as_deref(),
            )?,
        })
    }
}

/// `sign` for `timestamp` (seconds).
pub fn sign(secret: &str, timestamp_s: i64) -> String {
    let key = format!("{timestamp_s}\n{secret}");
    let mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes any key");
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

pub fn payload(alert: &Alert, secret: Option<&str>, timestamp_s: i64) -> serde_json::Value {
    let mut lines = vec![vec![json!({ "tag": "text", "text": alert.text })]];
    for (k, v) in &alert.labels {
        lines.push(vec![json!({ "tag": "text", "text": format!("{k}: {v}") })]);
    }
    lines.push(vec![
        json!({ "tag": "text", "text": format!("holdfast · {}", alert.key) }),
    ]);
    let mut body = json!({
        "msg_type": "post",
        "content": { "post": { "zh_cn": { "title": alert.headline(), "content": lines } } },
    });
    if let Some(secret) = secret {
        body["timestamp"] = json!(timestamp_s.to_string());
        body["sign"] = json!(sign(secret, timestamp_s));
    }
    body
}

#[async_trait]
impl Channel for Feishu {
    async fn deliver(&self, alert: &Alert) -> Result<(), DeliveryError> {
        let body = payload(alert, self.secret.as_deref(), now_millis() / 1000);
        let answer = http::post_json(&self.client, &self.url, &body, None).await?;
        http::check_code(&answer, &["code", "StatusCode"], BUSY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_a_known_value() {
        // printf '' | openssl dgst -sha256 -hmac "$(printf '1700000000\nSECabc')" -binary | base64
        assert_eq!(
            sign("SECabc", 1_700_000_000),
            "XprR1de+0SSBnwWyU/4k6x2TL+Q2SJlM5NNEdAv7MWg="
        );
    }
}
