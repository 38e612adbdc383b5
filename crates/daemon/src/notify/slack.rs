//! `kind = "slack"`: a Slack incoming webhook. The message is `text` (the headline, which
//! notifications show) plus one attachment coloured by severity with the text and labels.
//! Slack answers 200 `ok`; 4xx bodies name the problem (`invalid_token`, `channel_not_found`).

use async_trait::async_trait;
use serde_json::json;

use super::{http, secret, Alert, Channel, Delivery, DeliveryError, NotifyError, Severity};
use crate::config::SlackConfig;

pub struct Slack {
    client: reqwest::Client,
    url: reqwest::Url,
}

impl Slack {
    pub fn from_config(
        name: &str,
        c: &SlackConfig,
        delivery: &Delivery,
    ) -> Result<Slack, NotifyError> {
        Ok(Slack {
            client: http::client(name, delivery.timeout)?,
            url: secret::url(
                name,
                "Slack webhook",
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
        (true, _) => "good",
        (false, Severity::Critical) => "danger",
        (false, Severity::Warning) => "warning",
        (false, Severity::Info) => "#439FE0",
    };
    let fields: Vec<_> = alert
        .labels
        .iter()
        .map(|(k, v)| json!({ "title": k, "value": v, "short": true }))
        .collect();
    json!({
        "text": alert.headline(),
        "attachments": [{
            "color": color,
            "title": alert.title,
            "text": alert.text,
            "fields": fields,
            "footer": format!("holdfast · {}", alert.key),
            "ts": alert.at / 1000,
        }],
    })
}

#[async_trait]
impl Channel for Slack {
    async fn deliver(&self, alert: &Alert) -> Result<(), DeliveryError> {
        http::post_json(&self.client, &self.url, &payload(alert), None).await?;
        Ok(())
    }
}
