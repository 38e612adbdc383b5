//! `kind = "alertmanager"`: the alert in the payload Alertmanager's webhook receiver sends
//! (`version: "4"`), so tools that consume Alertmanager webhooks (alert routers, on-call
//! tools, chat bridges) take holdfast's alerts as they are.
//!
//! One alert per message; its group is the incident: `groupKey` is the incident key,
//! `labels` are the alert's labels plus `alertname` (the event), `severity` and `incident`;
//! `annotations` carry `summary` (the title) and `description` (the text). A firing alert's
//! `endsAt` is the zero time, as Alertmanager sends it; a resolved one's is its time.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::alert::rfc3339;
use super::{http, secret, Alert, Channel, Delivery, DeliveryError, NotifyError};
use crate::config::AlertmanagerConfig;

pub struct Alertmanager {
    client: reqwest::Client,
    url: reqwest::Url,
    bearer: Option<String>,
    receiver: String,
}

impl Alertmanager {
    pub fn from_config(
        name: &str,
        c: &AlertmanagerConfig,
        delivery: &Delivery,
    ) -> Result<Alertmanager, NotifyError> {
        Ok(Alertmanager {
            client: http::client(name, delivery.timeout)?,
            url: secret::url(
                name,
                "alertmanager",
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
            receiver: name.to_string(),
        })
    }
}

/// The version 4 payload for one alert.
pub fn payload(alert: &Alert, receiver: &str) -> serde_json::Value {
    let status = if alert.resolved { "resolved" } else { "firing" };
    let mut labels: BTreeMap<String, String> = alert.labels.clone();
    labels.insert("alertname".into(), alert.event.as_str().into());
    labels.insert("severity".into(), alert.severity.as_str().into());
    labels.insert("incident".into(), alert.key.clone());
    let annotations = json!({ "summary": alert.title, "description": alert.text });
    let fingerprint = {
        let mut h = Sha256::new();
        h.update(alert.key.as_bytes());
        let d = h.finalize();
        d[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let ends_at = if alert.resolved {
        rfc3339(alert.at)
    } else {
        "0001-01-01T00:00:00Z".to_string()
    };
    json!({
        "version": "4",
        "groupKey": format!("{{}}:{{incident=\"{}\"}}", alert.key),
        "truncatedAlerts": 0,
        "status": status,
        "receiver": receiver,
        "groupLabels": { "incident": alert.key },
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": "",
        "alerts": [{
            "status": status,
            "labels": labels,
            "annotations": annotations,
            "startsAt": rfc3339(alert.started_at),
            "endsAt": ends_at,
            "generatorURL": "",
            "fingerprint": fingerprint,
        }],
    })
}

#[async_trait]
impl Channel for Alertmanager {
    async fn deliver(&self, alert: &Alert) -> Result<(), DeliveryError> {
        let body = payload(alert, &self.receiver);
        http::post_json(&self.client, &self.url, &body, self.bearer.as_deref()).await?;
        Ok(())
    }
}
