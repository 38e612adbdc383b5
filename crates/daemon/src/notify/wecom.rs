//! `kind = "wecom"`: a WeCom (WeChat Work) group robot, as markdown (`msgtype: markdown`, at
//! most 4096 bytes of content). WeCom answers HTTP 200 with `{"errcode": 0}`; 45009 (more than
//! 20 messages a minute) is retried.

use async_trait::async_trait;
use serde_json::json;

use super::{http, secret, Alert, Channel, Delivery, DeliveryError, NotifyError, Severity};
use crate::config::WecomConfig;

const BUSY: &[i64] = &[45009];
const MAX_CONTENT: usize = 4096;

pub struct Wecom {
    client: reqwest::Client,
    url: reqwest::Url,
}

impl Wecom {
    pub fn from_config(
        name: &str,
        c: &WecomConfig,
        delivery: &Delivery,
    ) -> Result<Wecom, NotifyError> {
        Ok(Wecom {
            client: http::client(name, delivery.timeout)?,
            url: secret::url(
                name,
                "WeCom robot",
                c.url.as_deref(),
                c.url_file.as_deref(),
                c.url_env.as_deref(),
                true,
            )?,
        })
    }
}

pub fn payload(alert: &Alert) -> serde_json::Value {
    let color = match (alert.resolved, alert.severity) {
        (true, _) => "info",
        (false, Severity::Critical) => "warning",
        (false, _) => "comment",
    };
    let mut content = format!(
        "### <font color=\"{color}\">{}</font>\n{}\n",
        alert.headline(),
        alert.text
    );
    for (k, v) in &alert.labels {
        content.push_str(&format!("> {k}: <font color=\"comment\">{v}</font>\n"));
    }
    content.push_str(&format!("> holdfast · {}", alert.key));
    json!({ "msgtype": "markdown", "markdown": { "content": truncate(&content, MAX_CONTENT) } })
}

/// At most `max` bytes, cut on a character boundary.
fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max - 3;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[async_trait]
impl Channel for Wecom {
    async fn deliver(&self, alert: &Alert) -> Result<(), DeliveryError> {
        let body = http::post_json(&self.client, &self.url, &payload(alert), None).await?;
        http::check_code(&body, &["errcode"], BUSY)
    }
}
