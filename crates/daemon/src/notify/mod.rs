//! Alerts: what the daemon tells people, and the channels it tells them through.
//!
//! - [`Alert`] (in [`alert`]): one message about one incident, keyed (`job-failed/db1/backup`),
//!   opening or resolving it; constructors for every event the daemon raises.
//! - [`Channel`]: one destination, one file each: [`webhook`] (generic JSON), [`alertmanager`]
//!   (Alertmanager's webhook payload, version 4), [`slack`], [`dingtalk`] (signed-secret mode),
//!   [`wecom`], [`feishu`] (signature mode) and [`email`] (SMTP via lettre, rustls). A channel
//!   delivers once; retrying is not its business.
//! - [`Notifications`] (in [`dispatcher`]): the one handle the daemon holds. `emit` never blocks
//!   (a bounded queue that drops its oldest entry when full); a background task de-duplicates
//!   ([`dedup`]: one message per open incident, one when it resolves, a repeat only after the
//!   repeat interval), then hands each message to every channel's own queue, where it waits for
//!   the channel's rate limit ([`ratelimit`]) and is delivered with retries (exponential backoff
//!   with full jitter; timeouts, 5xx and 429 are retried, other 4xx are not).
//!
//! Secrets (URLs carrying tokens, signing secrets, the SMTP password) are read from files or
//! environment variables when a channel is built ([`secret`]) and never logged: delivery errors
//! name the channel and the HTTP status, never the URL.

pub mod alert;
pub mod alertmanager;
pub mod dedup;
pub mod dingtalk;
pub mod dispatcher;
pub mod email;
pub mod feishu;
mod http;
pub mod ratelimit;
pub mod secret;
pub mod slack;
pub mod webhook;
pub mod wecom;

use std::time::Duration;

use async_trait::async_trait;

pub use alert::{Alert, AlertEvent, Severity};
pub use dispatcher::{ChannelCounters, Counters, Notifications, NotifyOptions};
pub use ratelimit::Rate;

use crate::config::{parse_duration_ms, NotifierConfig};
use crate::time::Millis;

/// A notifier that cannot be built from its config: what is wrong and what to do.
#[derive(Debug, thiserror::Error)]
#[error("notifier `{notifier}`: {message}")]
pub struct NotifyError {
    /// The channel's name.
    pub notifier: String,
    pub message: String,
}

impl NotifyError {
    pub fn new(notifier: &str, message: impl Into<String>) -> NotifyError {
        NotifyError {
            notifier: notifier.to_string(),
            message: message.into(),
        }
    }
}

/// One failed delivery attempt.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DeliveryError {
    /// A later attempt may succeed (timeout, connection refused, 5xx, 429, a robot's
    /// "too many requests" code); otherwise retrying only delays the failure.
    pub transient: bool,
    /// What went wrong, without the URL or any secret.
    pub message: String,
}

impl DeliveryError {
    pub fn transient(message: impl Into<String>) -> DeliveryError {
        DeliveryError {
            transient: true,
            message: message.into(),
        }
    }

    pub fn permanent(message: impl Into<String>) -> DeliveryError {
        DeliveryError {
            transient: false,
            message: message.into(),
        }
    }
}

/// One destination of alerts.
///
/// `deliver` makes one attempt and says whether another may succeed. It may be called again
/// with the same alert after a transient error, so a receiver can see an alert twice (when the
/// first attempt arrived but its answer was lost); channels do not try to prevent that.
#[async_trait]
pub trait Channel: Send + Sync {
    async fn deliver(&self, alert: &Alert) -> Result<(), DeliveryError>;
}

/// How a channel delivers: its name, rate limit, timeout and retry policy.
#[derive(Clone, Debug, PartialEq)]
pub struct Delivery {
    pub name: String,
    pub kind: &'static str,
    /// `None`: unlimited.
    pub rate: Option<Rate>,
    pub timeout: Duration,
    pub attempts: u32,
    pub backoff_ms: Millis,
    pub backoff_cap_ms: Millis,
}

/// Default delivery keys: chat robots allow about 20 messages a minute (DingTalk and WeCom
/// document that limit), so that is the default for every channel.
pub const DEFAULT_RATE: &str = "20/min";
pub const DEFAULT_TIMEOUT: &str = "10s";
pub const DEFAULT_ATTEMPTS: u32 = 5;
pub const DEFAULT_BACKOFF: &str = "1s";
pub const DEFAULT_BACKOFF_CAP: &str = "60s";

impl Delivery {
    /// The delivery keys of a `[[notifier]]`, checked.
    pub fn from_config(config: &NotifierConfig) -> Result<Delivery, NotifyError> {
        let keys = config.delivery();
        let name = config.name().to_string();
        let err = |m: String| NotifyError::new(&name, m);
        let duration = |key: &str, v: Option<&str>, default: &str| {
            parse_duration_ms(v.unwrap_or(default)).map_err(|e| err(format!("{key}: {e}")))
        };
        let rate_text = keys.rate.unwrap_or(DEFAULT_RATE);
        let rate = if rate_text == "unlimited" {
            None
        } else {
            Some(Rate::parse(rate_text).map_err(|e| err(format!("rate: {e}")))?)
        };
        let timeout = duration("timeout", keys.timeout, DEFAULT_TIMEOUT)?;
        if timeout <= 0 {
            return Err(err("timeout must be more than 0 (e.g. \"10s\")".into()));
        }
        let attempts = keys.attempts.unwrap_or(DEFAULT_ATTEMPTS);
        if attempts == 0 {
            return Err(err("attempts must be at least 1".into()));
        }
        let backoff_ms = duration("backoff", keys.backoff, DEFAULT_BACKOFF)?;
        let backoff_cap_ms = duration("backoff_cap", keys.backoff_cap, DEFAULT_BACKOFF_CAP)?;
        Ok(Delivery {
            name: name.clone(),
            kind: config.kind(),
            rate,
            timeout: Duration::from_millis(timeout as u64),
            attempts,
            backoff_ms,
            backoff_cap_ms: backoff_cap_ms.max(backoff_ms),
        })
    }
}

/// Builds the channel a `[[notifier]]` describes, reading its secrets now.
pub fn build_channel(config: &NotifierConfig) -> Result<(Delivery, Box<dyn Channel>), NotifyError> {
    let delivery = Delivery::from_config(config)?;
    let name = delivery.name.as_str();
    let channel: Box<dyn Channel> = match config {
        NotifierConfig::Webhook(c) => Box::new(webhook::Webhook::from_config(name, c, &delivery)?),
        NotifierConfig::Alertmanager(c) => {
            Box::new(alertmanager::Alertmanager::from_config(name, c, &delivery)?)
        }
        NotifierConfig::Slack(c) => Box::new(slack::Slack::from_config(name, c, &delivery)?),
        NotifierConfig::Dingtalk(c) => {
            Box::new(dingtalk::Dingtalk::from_config(name, c, &delivery)?)
        }
        NotifierConfig::Wecom(c) => Box::new(wecom::Wecom::from_config(name, c, &delivery)?),
        NotifierConfig::Feishu(c) => Box::new(feishu::Feishu::from_config(name, c, &delivery)?),
        NotifierConfig::Email(c) => Box::new(email::Email::from_config(name, c, &delivery)?),
    };
    Ok((delivery, channel))
}
