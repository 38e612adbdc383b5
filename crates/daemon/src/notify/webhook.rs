//! `kind = "webhook"`: the alert as holdfast's own JSON, POSTed to any endpoint.
//!
//! ```json
//! {"version": 1, "source": "holdfast", "status": "firing", "key": "job-failed/db1/backup",
//!  "event": "job-failed", "severity": "critical", "title": "…", "text": "…",
//!  "labels": {"server": "db1", …}, "at": "2026-12-07T04:00:00Z", "started_at": "…"}
//! ```
//! `status` is `resolved` on the message closing an incident. An optional bearer token goes in
//! the `Authorization` header.

use async_trait::async_trait;
use serde_json::json;

use super::alert::rfc3339;
use super::{http, secret, Alert, Channel, Delivery, DeliveryError, NotifyError};
use crate::config::WebhookConfig;

pub struct Webhook {
    client: reqwest::Client,
    url: reqwest::Url,
    bearer: Option<String>,
}

impl Webhook {
    pub fn from_config(
        name: &str,
        c: &WebhookConfig,
        delivery: &Delivery,
    ) -> Result<Webhook, NotifyError> {
        Ok(Webhook {
            client: http::client(name, delivery.timeout)?,
            url: secret::url(
                name,
                "webhook",
                c.url.as_deref(),
                c.url_file.as_deref(),
                c.url_env.as_deref(),
                false,
            )?,
            bearer: secret::read(
                name,
                "bearer_token",
                c.bearer_token_file.as_deref(),
                c.bearer_token_env.as_deref(),
            )?,
        })
    }
}

/// The generic JSON body (version 1).
pub fn payload(alert: &Alert) -> serde_json::Value {
    json!({
        "version": 1,
        "source": "holdfast",
        "status": if alert.resolved { "resolved" } else { "firing" },
        "key": alert.key,
        "event": alert.event.as_str(),
        "severity": alert.severity.as_str(),
        "title": alert.title,
        "text": alert.text,
        "labels": alert.labels,
        "at": rfc3339(alert.at),
        "started_at": rfc3339(alert.started_at),
    })
}

#[async_trait]
impl Channel for Webhook {
    async fn deliver(&self, alert: &Alert) -> Result<(), DeliveryError> {
        http::post_json(
            &self.client,
            &self.url,
            &payload(alert),
            self.bearer.as_deref(),
        )
        .await?;
        Ok(())
    }
}
