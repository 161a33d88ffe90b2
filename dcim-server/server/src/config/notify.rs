//! `[notify]`: notification channels, escalation policy and circuit breakers.

use anyhow::Context;
use dcim_alarms::{Breaker, BreakerConfig, Channel, ChannelKind, EscalationStep, Notifier, Policy};
use serde::Deserialize;
use std::path::PathBuf;

/// `[notify]` in the server config. Off unless `enabled = true`.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    pub enabled: bool,
    /// `[[notify.channels]]`.
    pub channels: Vec<ChannelConfig>,
    /// Channels per grade of the alarm (names of `channels`).
    pub grade1: Vec<String>,
    pub grade2: Vec<String>,
    pub grade3: Vec<String>,
    /// Channel that also receives battery fire-stage alarms.
    pub fire_channel: Option<String>,
    /// `[[notify.escalation]]`: steps for alarms left unacknowledged.
    pub escalation: Vec<EscalationConfig>,
    /// How often escalations are checked, in milliseconds.
    pub tick_ms: u64,
    /// Record batches waiting for the notifier; beyond it batches are dropped and counted.
    pub queue: usize,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            enabled: false,
            channels: Vec::new(),
            grade1: Vec::new(),
            grade2: Vec::new(),
            grade3: Vec::new(),
            fire_channel: None,
            escalation: Vec::new(),
            tick_ms: 1000,
            queue: 1024,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Webhook,
    Email,
    Mqtt,
}

/// One `[[notify.channels]]` entry; which fields apply depends on `kind`.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelConfig {
    pub name: String,
    pub kind: Kind,
    /// Channel to use when this one fails or its breaker is open.
    pub fallback: Option<String>,
    /// Time allowed for one send, in milliseconds.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default)]
    pub breaker: BreakerToml,
    /// webhook: `http://` or `https://` URL. email: `smtp://host[:port]` (plain, to a relay),
    /// `smtp+starttls://host[:port]` or `smtps://host[:port]`. mqtt: `mqtt://` or `mqtts://`
    /// broker URL; absent = the server's own broker connection.
    pub url: Option<String>,
    /// webhook: HMAC-SHA256 key; the body's signature is sent in `X-Dcim-Signature:
    /// sha256=<hex>`. Or `secret_env`.
    pub secret: Option<String>,
    pub secret_env: Option<String>,
    /// email: sender and recipients.
    pub from: Option<String>,
    #[serde(default)]
    pub to: Vec<String>,
    /// email: name sent in EHLO (default `localhost`).
    pub helo_name: Option<String>,
    /// email (SMTP AUTH) or mqtt credentials; password or `password_env`.
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_env: Option<String>,
    /// mqtt: topic of the JSON messages.
    pub topic: Option<String>,
    /// mqtt (`mqtts://`) and email (`smtp+starttls://`, `smtps://`): CA certificate (PEM)
    /// trusted instead of the system roots.
    pub ca_file: Option<PathBuf>,
    /// webhook: the body's format (`crate::base::notify_templates`): `json` (default), `slack`,
    /// `teams`, `kakaowork`, `pagerduty` or `custom` (with `template`).
    pub format: Option<String>,
    /// webhook, `format = "custom"`: the JSON body with `{{placeholders}}`.
    pub template: Option<String>,
    /// webhook, `format = "pagerduty"`: the Events API v2 integration key; or
    /// `routing_key_env`.
    pub routing_key: Option<String>,
    pub routing_key_env: Option<String>,
}

impl ChannelConfig {
    /// The webhook body format, with its secret read (`routing_key_env`) for PagerDuty.
    pub fn webhook_format(&self) -> Result<crate::base::notify_templates::Format, String> {
        use crate::base::notify_templates::Format;
        Ok(match self.format.as_deref().unwrap_or("json") {
            "json" => Format::Json,
            "slack" => Format::Slack,
            "teams" => Format::Teams,
            "kakaowork" => Format::KakaoWork,
            "pagerduty" => Format::PagerDuty {
                routing_key: secret_of(&self.routing_key, &self.routing_key_env, "routing_key")
                    .map_err(|e| format!("{e:#}"))?
                    .ok_or("a pagerduty channel needs `routing_key` or `routing_key_env`")?,
            },
            "custom" => Format::Custom {
                template: self
                    .template
                    .clone()
                    .ok_or("a custom format needs `template`")?,
            },
            other => {
                return Err(format!(
                    "`{other}`: expected {}",
                    crate::base::notify_templates::FORMATS
                ));
            }
        })
    }
}

fn default_timeout_ms() -> u64 {
    5000
}

/// Breaker tuning of a channel; absent fields take [`BreakerConfig::default`].
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerToml {
    pub consecutive_failures: Option<u32>,
    pub error_rate: Option<f64>,
    pub window: Option<usize>,
    pub min_samples: Option<usize>,
    pub slow_ms: Option<i64>,
    pub cool_down_ms: Option<i64>,
}

impl BreakerToml {
    pub fn config(&self) -> BreakerConfig {
        let d = BreakerConfig::default();
        BreakerConfig {
            consecutive_failures: self.consecutive_failures.unwrap_or(d.consecutive_failures),
            error_rate: self.error_rate.unwrap_or(d.error_rate),
            window: self.window.unwrap_or(d.window),
            min_samples: self.min_samples.unwrap_or(d.min_samples),
            slow_ms: self.slow_ms.unwrap_or(d.slow_ms),
            cool_down_ms: self.cool_down_ms.unwrap_or(d.cool_down_ms),
        }
    }
}

/// One `[[notify.escalation]]` step.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationConfig {
    /// Unacknowledged this long (seconds, fractions allowed) since it was annunciated.
    pub after_s: f64,
    pub channel: String,
    /// Who is escalated to. On an e-mail channel an address here replaces the channel's
    /// recipients for this step.
    pub to: String,
}

/// SMTP security of an e-mail channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    Plain,
    StartTls,
    Tls,
}

/// `(security, host, port)` of an SMTP URL.
pub fn parse_smtp_url(url: &str) -> Option<(SmtpSecurity, String, u16)> {
    let (sec, rest, port) = if let Some(r) = url.strip_prefix("smtp+starttls://") {
        (SmtpSecurity::StartTls, r, 587)
    } else if let Some(r) = url.strip_prefix("smtps://") {
        (SmtpSecurity::Tls, r, 465)
    } else if let Some(r) = url.strip_prefix("smtp://") {
        (SmtpSecurity::Plain, r, 25)
    } else {
        return None;
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().ok()?),
        None => (rest, port),
    };
    if host.is_empty() || host.contains('/') {
        return None;
    }
    Some((sec, host.to_string(), port))
}

impl NotifyConfig {
    /// Checks the section; errors are `(field, message)`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let err = |f: String, m: &str| Err((f, m.to_string()));
        if !self.enabled {
            return Ok(());
        }
        if self.tick_ms == 0 || self.queue == 0 {
            return err(
                "notify.tick_ms".into(),
                "tick_ms and queue must be at least 1",
            );
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, c) in self.channels.iter().enumerate() {
            let f = |n: &str| format!("notify.channels[{i}].{n}");
            if c.name.is_empty() || !names.insert(c.name.as_str()) {
                return err(f("name"), "channel names must be non-empty and unique");
            }
            validate_channel(i, c)?;
        }
        for (g, list) in [(1, &self.grade1), (2, &self.grade2), (3, &self.grade3)] {
            for n in list {
                if !names.contains(n.as_str()) {
                    return err(
                        format!("notify.grade{g}"),
                        &format!("unknown channel `{n}`"),
                    );
                }
            }
        }
        for (i, e) in self.escalation.iter().enumerate() {
            if !names.contains(e.channel.as_str()) {
                return err(
                    format!("notify.escalation[{i}].channel"),
                    &format!("unknown channel `{}`", e.channel),
                );
            }
            if !(e.after_s.is_finite() && e.after_s > 0.0) {
                return err(format!("notify.escalation[{i}].after_s"), "must be above 0");
            }
            if i > 0 && e.after_s <= self.escalation[i - 1].after_s {
                return err(
                    format!("notify.escalation[{i}].after_s"),
                    "steps must come in increasing after_s",
                );
            }
        }
        if let Some(f) = &self.fire_channel
            && !names.contains(f.as_str())
        {
            return err(
                "notify.fire_channel".into(),
                &format!("unknown channel `{f}`"),
            );
        }
        // Fallback names and loops.
        self.notifier()
            .map_err(|m| ("notify.channels".to_string(), m))?;
        Ok(())
    }

    /// The pure notifier this section describes.
    pub fn notifier(&self) -> Result<Notifier, String> {
        let channels = self
            .channels
            .iter()
            .map(|c| Channel {
                name: c.name.clone(),
                kind: match c.kind {
                    Kind::Webhook => ChannelKind::Webhook,
                    Kind::Email => ChannelKind::Email,
                    Kind::Mqtt => ChannelKind::Mqtt,
                },
                fallback: c.fallback.clone(),
                breaker: Breaker::new(c.breaker.config()),
            })
            .collect();
        let policy = Policy {
            by_grade: [
                self.grade1.clone(),
                self.grade2.clone(),
                self.grade3.clone(),
            ],
            fire_channel: self.fire_channel.clone(),
            escalation: self
                .escalation
                .iter()
                .map(|e| EscalationStep {
                    after_ms: (e.after_s * 1000.0).round() as i64,
                    channel: e.channel.clone(),
                    to: e.to.clone(),
                })
                .collect(),
        };
        Notifier::new(channels, policy)
    }
}

/// One `[[notify.channels]]` entry (its name is checked for uniqueness by the caller): the
/// timeout, the breaker and what its kind needs.
fn validate_channel(i: usize, c: &ChannelConfig) -> Result<(), (String, String)> {
    let err = |f: String, m: &str| Err((f, m.to_string()));
    let f = |n: &str| format!("notify.channels[{i}].{n}");
    if c.timeout_ms == 0 {
        return err(f("timeout_ms"), "must be at least 1");
    }
    let b = c.breaker.config();
    if b.consecutive_failures == 0 || !(0.0..=1.0).contains(&b.error_rate) {
        return err(
            f("breaker"),
            "consecutive_failures must be at least 1 and error_rate within 0..1",
        );
    }
    match c.kind {
        Kind::Webhook => validate_webhook(i, c)?,
        Kind::Email => {
            if c.url.as_deref().and_then(parse_smtp_url).is_none() {
                return err(
                    f("url"),
                    "expected smtp://host[:port], smtp+starttls://host[:port] or smtps://host[:port]",
                );
            }
            match &c.from {
                Some(a) if a.parse::<lettre::message::Mailbox>().is_ok() => {}
                _ => {
                    return err(f("from"), "an e-mail channel needs a valid `from` address");
                }
            }
            if c.to.is_empty() {
                return err(f("to"), "an e-mail channel needs at least one recipient");
            }
            for a in &c.to {
                if a.parse::<lettre::message::Mailbox>().is_err() {
                    return err(f("to"), &format!("`{a}` is not an e-mail address"));
                }
            }
        }
        Kind::Mqtt => {
            if c.topic
                .as_deref()
                .is_none_or(|t| t.is_empty() || t.contains('+') || t.contains('#'))
            {
                return err(
                    f("topic"),
                    "an mqtt channel needs a topic without wildcards",
                );
            }
            if let Some(u) = &c.url
                && crate::config::parse_broker_url(u).is_none()
            {
                return err(f("url"), "expected mqtt://host:port or mqtts://host:port");
            }
        }
    }
    Ok(())
}

/// A webhook channel: its url, and what its format needs (a routing key, a template that
/// renders).
fn validate_webhook(i: usize, c: &ChannelConfig) -> Result<(), (String, String)> {
    let err = |f: String, m: &str| Err((f, m.to_string()));
    let f = |n: &str| format!("notify.channels[{i}].{n}");
    match &c.url {
        Some(u) if u.starts_with("http://") || u.starts_with("https://") => {}
        _ => return err(f("url"), "a webhook needs an http:// or https:// url"),
    }
    match c.format.as_deref().unwrap_or("json") {
        "json" | "slack" | "teams" | "kakaowork" => {}
        "pagerduty" => {
            if c.routing_key.is_none() && c.routing_key_env.is_none() {
                return err(
                    f("routing_key"),
                    "a pagerduty channel needs `routing_key` or `routing_key_env`",
                );
            }
        }
        "custom" => {
            let Some(t) = &c.template else {
                return err(f("template"), "format = \"custom\" needs `template`");
            };
            let fmt = crate::base::notify_templates::Format::Custom {
                template: t.clone(),
            };
            if let Err(e) = crate::base::notify_templates::render(
                &fmt,
                &crate::base::notify_templates::sample_delivery(),
                &c.name,
                0,
            ) {
                return err(f("template"), &e);
            }
        }
        other => {
            return err(
                f("format"),
                &format!(
                    "`{other}`: expected {}",
                    crate::base::notify_templates::FORMATS
                ),
            );
        }
    }
    Ok(())
}

/// A secret given in the file or named by an environment variable.
pub fn secret_of(
    value: &Option<String>,
    env: &Option<String>,
    what: &str,
) -> anyhow::Result<Option<String>> {
    match (value, env) {
        (Some(v), _) => Ok(Some(v.clone())),
        (None, Some(var)) => std::env::var(var)
            .map(Some)
            .with_context(|| format!("{what}: environment variable {var} is not set")),
        (None, None) => Ok(None),
    }
}
