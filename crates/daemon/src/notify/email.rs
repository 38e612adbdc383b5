//! `kind = "email"`: SMTP through lettre over rustls.
//!
//! `tls`: `starttls` (default, port 587: the connection must upgrade, a server that does not
//! offer STARTTLS is an error rather than a silent downgrade), `tls` (TLS from the first byte,
//! port 465) or `none` (port 25; no password may be set, it would cross in clear). The server's
//! certificate is checked against the public roots plus `ca_file`. One message per alert to all
//! of `to`; the subject is `<subject_prefix> <headline>`, the body the text and the labels.
//! SMTP 4xx answers and connection trouble are transient, 5xx answers are not.

use async_trait::async_trait;
use lettre::message::{header::ContentType, Mailbox};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::alert::rfc3339;
use super::{secret, Alert, Channel, Delivery, DeliveryError, NotifyError};
use crate::config::EmailConfig;

pub struct Email {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    subject_prefix: String,
}

/// How the SMTP connection is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsMode {
    StartTls,
    Tls,
    None,
}

impl TlsMode {
    pub fn parse(s: &str) -> Option<TlsMode> {
        match s {
            "starttls" => Some(TlsMode::StartTls),
            "tls" => Some(TlsMode::Tls),
            "none" => Some(TlsMode::None),
            _ => None,
        }
    }

    pub fn default_port(self) -> u16 {
        match self {
            TlsMode::StartTls => 587,
            TlsMode::Tls => 465,
            TlsMode::None => 25,
        }
    }
}

impl Email {
    pub fn from_config(
        name: &str,
        c: &EmailConfig,
        delivery: &Delivery,
    ) -> Result<Email, NotifyError> {
        let err = |m: String| NotifyError::new(name, m);
        let mode_text = c.tls.as_deref().unwrap_or("starttls");
        let mode = TlsMode::parse(mode_text).ok_or_else(|| {
            err(format!(
                "tls = \"{mode_text}\" is not one of \"starttls\", \"tls\", \"none\""
            ))
        })?;
        let password = secret::read(
            name,
            "password",
            c.password_file.as_deref(),
            c.password_env.as_deref(),
        )?;
        if mode == TlsMode::None && password.is_some() {
            return Err(err(
                "tls = \"none\" with a password would send it in clear; use \"starttls\" or \"tls\""
                    .into(),
            ));
        }
        if password.is_some() && c.username.is_none() {
            return Err(err("a password is set but no username".into()));
        }
        let from: Mailbox = c
            .from
            .parse()
            .map_err(|e| err(format!("from = \"{}\" is not an address: {e}", c.from)))?;
        if c.to.is_empty() {
            return Err(err("to is empty: name at least one recipient".into()));
        }
        let to =
            c.to.iter()
                .map(|t| {
                    t.parse::<Mailbox>()
                        .map_err(|e| err(format!("to: \"{t}\" is not an address: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
        let port = c.port.unwrap_or(mode.default_port());
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&c.host)
            .port(port)
            .timeout(Some(delivery.timeout));
        if mode != TlsMode::None {
            let mut params = TlsParameters::builder(c.host.clone());
            if let Some(ca) = &c.ca_file {
                let pem = std::fs::read(ca)
                    .map_err(|e| err(format!("cannot read ca_file {}: {e}", ca.display())))?;
                let cert = Certificate::from_pem(&pem).map_err(|e| {
                    err(format!(
                        "ca_file {} is not a PEM certificate: {e}",
                        ca.display()
                    ))
                })?;
                params = params.add_root_certificate(cert);
            }
            let params = params
                .build_rustls()
                .map_err(|e| err(format!("cannot set up TLS: {e}")))?;
            builder = builder.tls(match mode {
                TlsMode::StartTls => Tls::Required(params),
                _ => Tls::Wrapper(params),
            });
        } else {
            builder = builder.tls(Tls::None);
        }
        if let Some(user) = &c.username {
            builder = builder
                .credentials(Credentials::new(user.clone(), password.unwrap_or_default()))
                .authentication(vec![Mechanism::Plain, Mechanism::Login]);
        }
        Ok(Email {
            transport: builder.build(),
            from,
            to,
            subject_prefix: c
                .subject_prefix
                .clone()
                .unwrap_or_else(|| "[holdfast]".into()),
        })
    }

    fn message(&self, alert: &Alert) -> Result<Message, DeliveryError> {
        let mut builder = Message::builder().from(self.from.clone()).subject(format!(
            "{} {}",
            self.subject_prefix,
            alert.headline()
        ));
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        builder
            .header(ContentType::TEXT_PLAIN)
            .body(body(alert))
            .map_err(|e| DeliveryError::permanent(format!("cannot build the message: {e}")))
    }
}

/// The plain-text body.
pub fn body(alert: &Alert) -> String {
    let mut text = format!("{}\n\n{}\n\n", alert.headline(), alert.text);
    if !alert.labels.is_empty() {
        text.push_str(&alert.label_lines());
        text.push_str("\n\n");
    }
    text.push_str(&format!(
        "incident: {}\nevent: {}\nsince: {}\nat: {}\n-- \nholdfast\n",
        alert.key,
        alert.event.as_str(),
        rfc3339(alert.started_at),
        rfc3339(alert.at)
    ));
    text
}

#[async_trait]
impl Channel for Email {
    async fn deliver(&self, alert: &Alert) -> Result<(), DeliveryError> {
        let message = self.message(alert)?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(e) => {
                let text = format!("SMTP: {}", chain(&e));
                if e.is_permanent() {
                    Err(DeliveryError::permanent(text))
                } else {
                    Err(DeliveryError::transient(text))
                }
            }
        }
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
