//! `kind = "dingtalk"`: a DingTalk group robot, as markdown.
//!
//! With the robot's "signature" security setting (加签), each request carries `timestamp`
//! (Unix milliseconds) and `sign` in its query: `sign` = urlencode(base64(HMAC-SHA256(key =
//! secret, message = timestamp + "\n" + secret))), as DingTalk documents; DingTalk rejects a
//! timestamp more than an hour off, so the signature is made per attempt. DingTalk answers HTTP
//! 200 with `{"errcode": 0}` on success; 130101 (more than 20 messages a minute) is retried.
//! Messages contain the word "holdfast", for robots using the keyword setting.

use async_trait::async_trait;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use super::{http, secret, Alert, Channel, Delivery, DeliveryError, NotifyError};
use crate::config::DingtalkConfig;
use crate::time::now_millis;

/// DingTalk's "sending too fast" code.
const BUSY: &[i64] = &[130101];

pub struct Dingtalk {
    client: reqwest::Client,
    url: reqwest::Url,
    secret: Option<String>,
}

impl Dingtalk {
    pub fn from_config(
        name: &str,
        c: &DingtalkConfig,
        delivery: &Delivery,
    ) -> Result<Dingtalk, NotifyError> {
        Ok(Dingtalk {
            client: http::client(name, delivery.timeout)?,
            url: secret::url(
                name,
                "DingTalk robot",
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

/// The `sign` parameter before URL encoding: base64(HMAC-SHA256(secret, "{timestamp}\n{secret}")).
pub fn sign(secret: &str, timestamp_ms: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(format!("{timestamp_ms}\n{secret}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The URL of one request: the robot's URL, plus `timestamp` and `sign` when signing
/// (`append_pair` percent-encodes the base64's `+`, `/` and `=`).
pub fn signed_url(url: &reqwest::Url, secret: Option<&str>, timestamp_ms: i64) -> reqwest::Url {
    let mut url = url.clone();
    if let Some(secret) = secret {
        url.query_pairs_mut()
            .append_pair("timestamp", &timestamp_ms.to_string())
            .append_pair("sign", &sign(secret, timestamp_ms));
    }
    url
}

pub fn payload(alert: &Alert) -> serde_json::Value {
    let mut text = format!("### {}\n\n{}\n", alert.headline(), alert.text);
    if !alert.labels.is_empty() {
        text.push('\n');
        for (k, v) in &alert.labels {
            text.push_str(&format!("- **{k}**: {v}\n"));
        }
    }
    text.push_str(&format!("\n> holdfast · {}\n", alert.key));
    json!({
        "msgtype": "markdown",
        "markdown": { "title": alert.headline(), "text": text },
    })
}

#[async_trait]
impl Channel for Dingtalk {
    async fn deliver(&self, alert: &Alert) -> Result<(), DeliveryError> {
        let url = signed_url(&self.url, self.secret.as_deref(), now_millis());
        let body = http::post_json(&self.client, &url, &payload(alert), None).await?;
        http::check_code(&body, &["errcode"], BUSY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_a_known_value() {
        // Computed independently: printf '1700000000000\nSECabc' |
        //   openssl dgst -sha256 -hmac SECabc -binary | base64
        assert_eq!(
            sign("SECabc", 1_700_000_000_000),
            "jcUpW0QmtKduN03n4JqQ0PBosVjqnM8gU7fIIvsDmCM="
        );
        let u = reqwest::Url::parse("https://oapi.dingtalk.com/robot/send?access_token=t").unwrap();
        let s = signed_url(&u, Some("SECabc"), 1_700_000_000_000);
        assert_eq!(
            s.query(),
            Some("access_token=t&timestamp=1700000000000&sign=jcUpW0QmtKduN03n4JqQ0PBosVjqnM8gU7fIIvsDmCM%3D")
        );
    }
}
