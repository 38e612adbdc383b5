//! `[[notifier]]`: where alerts go. One entry per channel, tagged by `kind`:
//!
//! ```toml
//! [[notifier]]
//! kind = "webhook"                    # generic JSON
//! url = "https://hooks.example.com/holdfast"
//! bearer_token_file = "/etc/holdfast/hook.token"
//!
//! [[notifier]]
//! kind = "dingtalk"
//! url_file = "/etc/holdfast/dingtalk.url"     # https://oapi.dingtalk.com/robot/send?access_token=…
//! secret_env = "HOLDFAST_DINGTALK_SECRET"     # the robot's signing secret (SEC…)
//! rate = "20/min"
//!
//! [[notifier]]
//! kind = "email"
//! host = "smtp.example.com"
//! tls = "starttls"
//! username = "alerts@example.com"
//! password_file = "/etc/holdfast/smtp.pass"
//! from = "holdfast <alerts@example.com>"
//! to = ["dba@example.com"]
//! ```
//!
//! Every secret (a URL carrying a token, a signing secret, a bearer token, the SMTP password) is
//! named, never written: `<what>_file` (its first line) or `<what>_env` (an environment variable
//! of the daemon). Slack, DingTalk, WeCom and Feishu URLs carry their token, so they are only
//! accepted that way. All kinds share the delivery keys `name`, `rate`, `timeout`, `attempts`,
//! `backoff` and `backoff_cap` (see docs/daemon.md, "Alerts").

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// One `[[notifier]]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum NotifierConfig {
    /// A generic JSON webhook (the alert as holdfast's own JSON).
    Webhook(WebhookConfig),
    /// A receiver of Alertmanager's webhook payload (version 4).
    Alertmanager(AlertmanagerConfig),
    /// A Slack incoming webhook.
    Slack(SlackConfig),
    /// A DingTalk group robot (optionally with the signed-secret mode).
    Dingtalk(DingtalkConfig),
    /// A WeCom (WeChat Work) group robot.
    Wecom(WecomConfig),
    /// A Feishu / Lark custom bot (optionally with signature verification).
    Feishu(FeishuConfig),
    /// E-mail over SMTP.
    Email(EmailConfig),
}

/// Adds the delivery keys every kind has and a `delivery()` accessor.
macro_rules! notifier_struct {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $field:ident : $ty:ty,)* }) => {
        $(#[$m])*
        #[derive(Clone, Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $($(#[$fm])* pub $field: $ty,)*
            /// The channel's name in logs, metrics and `notify test` (default: the kind; names
            /// must be unique).
            pub name: Option<String>,
            /// At most this many messages, e.g. "20/min", "1/s", "100/h"; more wait their turn.
            pub rate: Option<String>,
            /// One delivery attempt's time limit (default "10s").
            pub timeout: Option<String>,
            /// Attempts in all for a delivery failing transiently (default 5).
            pub attempts: Option<u32>,
            /// First retry delay (default "1s"), doubling up to `backoff_cap` (default "60s"),
            /// with full jitter.
            pub backoff: Option<String>,
            pub backoff_cap: Option<String>,
        }

        impl $name {
            pub fn delivery(&self) -> DeliveryKeys<'_> {
                DeliveryKeys {
                    name: self.name.as_deref(),
                    rate: self.rate.as_deref(),
                    timeout: self.timeout.as_deref(),
                    attempts: self.attempts,
                    backoff: self.backoff.as_deref(),
                    backoff_cap: self.backoff_cap.as_deref(),
                }
            }
        }
    };
}

/// The delivery keys shared by every kind, as written.
#[derive(Clone, Copy, Debug, Default)]
pub struct DeliveryKeys<'a> {
    pub name: Option<&'a str>,
    pub rate: Option<&'a str>,
    pub timeout: Option<&'a str>,
    pub attempts: Option<u32>,
    pub backoff: Option<&'a str>,
    pub backoff_cap: Option<&'a str>,
}

notifier_struct!(
    /// `kind = "webhook"`.
    WebhookConfig {
        /// The endpoint, when it carries no secret.
        url: Option<String>,
        /// A file whose first line is the endpoint (when the URL itself is a secret).
        url_file: Option<PathBuf>,
        /// An environment variable holding the endpoint.
        url_env: Option<String>,
        /// Sent as `Authorization: Bearer …`.
        bearer_token_file: Option<PathBuf>,
        bearer_token_env: Option<String>,
    }
);

notifier_struct!(
    /// `kind = "alertmanager"`: same keys as `webhook`.
    AlertmanagerConfig {
        url: Option<String>,
        url_file: Option<PathBuf>,
        url_env: Option<String>,
        bearer_token_file: Option<PathBuf>,
        bearer_token_env: Option<String>,
    }
);

notifier_struct!(
    /// `kind = "slack"`: the incoming webhook's URL (it is the credential).
    SlackConfig {
        /// Rejected with an explanation: the URL is a credential.
        url: Option<String>,
        url_file: Option<PathBuf>,
        url_env: Option<String>,
    }
);

notifier_struct!(
    /// `kind = "dingtalk"`: the robot's URL with its `access_token`, and its signing secret when
    /// the robot's security setting is "signature" (加签).
    DingtalkConfig {
        url: Option<String>,
        url_file: Option<PathBuf>,
        url_env: Option<String>,
        secret_file: Option<PathBuf>,
        secret_env: Option<String>,
    }
);

notifier_struct!(
    /// `kind = "wecom"`: the group robot's URL with its `key`.
    WecomConfig {
        url: Option<String>,
        url_file: Option<PathBuf>,
        url_env: Option<String>,
    }
);

notifier_struct!(
    /// `kind = "feishu"`: the custom bot's hook URL, and its secret when signature verification
    /// (签名校验) is on.
    FeishuConfig {
        url: Option<String>,
        url_file: Option<PathBuf>,
        url_env: Option<String>,
        secret_file: Option<PathBuf>,
        secret_env: Option<String>,
    }
);

notifier_struct!(
    /// `kind = "email"`: SMTP.
    EmailConfig {
        /// The SMTP server's host name (also the name its certificate must carry).
        host: String,
        /// Default: 587 for `starttls`, 465 for `tls`, 25 for `none`.
        port: Option<u16>,
        /// `starttls` (default: plain connection upgraded, refused if the server cannot),
        /// `tls` (TLS from the first byte, "SMTPS") or `none` (loopback or trusted networks only:
        /// the password would cross in clear, so `none` with a password is rejected).
        tls: Option<String>,
        /// A PEM file of CA certificates to trust for the server besides the public roots (a
        /// company CA, a self-signed server).
        ca_file: Option<PathBuf>,
        username: Option<String>,
        password_file: Option<PathBuf>,
        password_env: Option<String>,
        /// The sender, `alerts@example.com` or `holdfast <alerts@example.com>`.
        from: String,
        /// Recipients.
        #[serde(default)]
        to: Vec<String>,
        /// Prepended to every subject (default "[holdfast]").
        subject_prefix: Option<String>,
    }
);

impl NotifierConfig {
    /// `webhook`, `slack`, …
    pub fn kind(&self) -> &'static str {
        match self {
            NotifierConfig::Webhook(_) => "webhook",
            NotifierConfig::Alertmanager(_) => "alertmanager",
            NotifierConfig::Slack(_) => "slack",
            NotifierConfig::Dingtalk(_) => "dingtalk",
            NotifierConfig::Wecom(_) => "wecom",
            NotifierConfig::Feishu(_) => "feishu",
            NotifierConfig::Email(_) => "email",
        }
    }

    /// The shared delivery keys.
    pub fn delivery(&self) -> DeliveryKeys<'_> {
        match self {
            NotifierConfig::Webhook(c) => c.delivery(),
            NotifierConfig::Alertmanager(c) => c.delivery(),
            NotifierConfig::Slack(c) => c.delivery(),
            NotifierConfig::Dingtalk(c) => c.delivery(),
            NotifierConfig::Wecom(c) => c.delivery(),
            NotifierConfig::Feishu(c) => c.delivery(),
            NotifierConfig::Email(c) => c.delivery(),
        }
    }

    /// The channel's name: `name`, or the kind.
    pub fn name(&self) -> &str {
        self.delivery().name.unwrap_or(self.kind())
    }

    /// The `url` written in clear, and whether this kind forbids that (its URL carries the
    /// token: Slack, DingTalk, WeCom, Feishu).
    pub fn clear_url(&self) -> (Option<&str>, bool) {
        match self {
            NotifierConfig::Webhook(c) => (c.url.as_deref(), false),
            NotifierConfig::Alertmanager(c) => (c.url.as_deref(), false),
            NotifierConfig::Slack(c) => (c.url.as_deref(), true),
            NotifierConfig::Dingtalk(c) => (c.url.as_deref(), true),
            NotifierConfig::Wecom(c) => (c.url.as_deref(), true),
            NotifierConfig::Feishu(c) => (c.url.as_deref(), true),
            NotifierConfig::Email(_) => (None, false),
        }
    }

    /// The secrets this notifier names (for validation; the channel reads them when built).
    pub fn secrets(&self) -> Vec<SecretSource<'_>> {
        fn s<'a>(
            what: &'static str,
            file: &'a Option<PathBuf>,
            env: &'a Option<String>,
            required: bool,
        ) -> SecretSource<'a> {
            SecretSource {
                what,
                file: file.as_deref(),
                env: env.as_deref(),
                required,
            }
        }
        match self {
            NotifierConfig::Webhook(c) => vec![
                s("url", &c.url_file, &c.url_env, c.url.is_none()),
                s(
                    "bearer_token",
                    &c.bearer_token_file,
                    &c.bearer_token_env,
                    false,
                ),
            ],
            NotifierConfig::Alertmanager(c) => vec![
                s("url", &c.url_file, &c.url_env, c.url.is_none()),
                s(
                    "bearer_token",
                    &c.bearer_token_file,
                    &c.bearer_token_env,
                    false,
                ),
            ],
            NotifierConfig::Slack(c) => vec![s("url", &c.url_file, &c.url_env, true)],
            NotifierConfig::Wecom(c) => vec![s("url", &c.url_file, &c.url_env, true)],
            NotifierConfig::Dingtalk(c) => vec![
                s("url", &c.url_file, &c.url_env, true),
                s("secret", &c.secret_file, &c.secret_env, false),
            ],
            NotifierConfig::Feishu(c) => vec![
                s("url", &c.url_file, &c.url_env, true),
                s("secret", &c.secret_file, &c.secret_env, false),
            ],
            NotifierConfig::Email(c) => {
                vec![s("password", &c.password_file, &c.password_env, false)]
            }
        }
    }
}

/// A secret a notifier names: `<what>_file` or `<what>_env`.
#[derive(Clone, Copy, Debug)]
pub struct SecretSource<'a> {
    pub what: &'static str,
    pub file: Option<&'a Path>,
    pub env: Option<&'a str>,
    /// One of the two must be set.
    pub required: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct File {
        notifier: Vec<NotifierConfig>,
    }

    #[test]
    fn parses_each_kind_and_rejects_unknown_keys() {
        let text = r#"
            [[notifier]]
            kind = "webhook"
            url = "http://127.0.0.1:1/hook"
            rate = "5/s"
            [[notifier]]
            kind = "dingtalk"
            name = "ops-dingtalk"
            url_env = "DT_URL"
            secret_file = "/etc/dt.secret"
            [[notifier]]
            kind = "email"
            host = "smtp.example.com"
            from = "a@example.com"
            to = ["b@example.com"]
        "#;
        let f: File = toml::from_str(text).unwrap();
        assert_eq!(f.notifier.len(), 3);
        assert_eq!(f.notifier[0].kind(), "webhook");
        assert_eq!(f.notifier[0].delivery().rate, Some("5/s"));
        assert_eq!(f.notifier[1].name(), "ops-dingtalk");
        assert_eq!(f.notifier[2].name(), "email");

        let typo = "[[notifier]]\nkind = \"slack\"\nurl_fiel = \"/x\"\n";
        let err = toml::from_str::<File>(typo).err().unwrap().to_string();
        assert!(err.contains("url_fiel"), "{err}");
        let kind = "[[notifier]]\nkind = \"pager\"\n";
        let err = toml::from_str::<File>(kind).err().unwrap().to_string();
        assert!(err.contains("pager"), "{err}");
    }
}
