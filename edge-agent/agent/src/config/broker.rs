//! `[[broker]]`: the one or two MQTT brokers the spool is published to, and their lag limits.

use super::spool::SpoolSettings;
use super::{ConfigError, Ctx, identifier};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;
use toml::Spanned;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerConfig {
    pub name: String,
    pub endpoint: Endpoint,
    pub ca_file: Option<PathBuf>,
    pub client_auth: Option<(PathBuf, PathBuf)>,
    pub credentials: Option<(String, String)>,
    pub keep_alive: Duration,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub inflight: usize,
    /// Past this lag (unacknowledged bytes, or time without any acknowledgement while records
    /// wait) the broker is detached while the other one flows (`uplink::lag`). Default: half
    /// the spool, 15 minutes.
    pub lag_limits: Limits,
}

/// A broker's lag limits (`max_lag_bytes`, `max_lag_s`): past them the broker is detached
/// while another one flows (`uplink::lag`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_bytes: u64,
    pub max_stuck_ms: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBroker {
    name: Spanned<String>,
    url: Spanned<String>,
    ca_file: Option<String>,
    cert_file: Option<Spanned<String>>,
    key_file: Option<Spanned<String>>,
    username: Option<String>,
    password: Option<String>,
    password_file: Option<Spanned<String>>,
    #[serde(default = "d_keep_alive")]
    keep_alive_s: Spanned<u64>,
    #[serde(default = "d_backoff_initial")]
    backoff_initial_ms: u64,
    #[serde(default = "d_backoff_max")]
    backoff_max_ms: u64,
    #[serde(default = "d_inflight")]
    inflight: Spanned<usize>,
    max_lag_bytes: Option<Spanned<u64>>,
    max_lag_s: Option<Spanned<u64>>,
}

fn d_keep_alive() -> Spanned<u64> {
    Spanned::new(0..0, 15)
}
fn d_backoff_initial() -> u64 {
    500
}
fn d_backoff_max() -> u64 {
    30_000
}
fn d_inflight() -> Spanned<usize> {
    Spanned::new(0..0, 32)
}

/// Every `[[broker]]`: one or two, names unique.
pub(super) fn brokers(
    ctx: &Ctx,
    agent: &Spanned<String>,
    raw: &[Spanned<RawBroker>],
    spool: &SpoolSettings,
) -> Result<Vec<BrokerConfig>, ConfigError> {
    if raw.is_empty() {
        return Err(ctx.err(
            agent.span(),
            "broker",
            "at least one [[broker]] is required",
        ));
    }
    if raw.len() > 2 {
        return Err(ctx.err(raw[2].span(), "broker", "at most two brokers are supported"));
    }
    let mut brokers = Vec::new();
    for (i, b) in raw.iter().enumerate() {
        let broker = broker(ctx, i, b, &brokers, spool)?;
        brokers.push(broker);
    }
    Ok(brokers)
}

fn broker(
    ctx: &Ctx,
    i: usize,
    b: &Spanned<RawBroker>,
    brokers: &[BrokerConfig],
    spool: &SpoolSettings,
) -> Result<BrokerConfig, ConfigError> {
    let span = b.span();
    let b = b.get_ref();
    let f = |name: &str| format!("broker[{i}].{name}");
    let name = identifier(ctx, &f("name"), &b.name)?;
    if brokers.iter().any(|x: &BrokerConfig| x.name == name) {
        return Err(ctx.err(b.name.span(), &f("name"), "broker names must be unique"));
    }
    let endpoint = parse_url(b.url.get_ref()).map_err(|m| ctx.err(b.url.span(), &f("url"), m))?;
    let client_auth = match (&b.cert_file, &b.key_file) {
        (Some(c), Some(k)) => Some((ctx.path(c.get_ref()), ctx.path(k.get_ref()))),
        (None, None) => None,
        (Some(c), None) => {
            return Err(ctx.err(c.span(), &f("key_file"), "cert_file needs key_file too"));
        }
        (None, Some(k)) => {
            return Err(ctx.err(k.span(), &f("cert_file"), "key_file needs cert_file too"));
        }
    };
    if !endpoint.tls && (client_auth.is_some() || b.ca_file.is_some()) {
        return Err(ctx.err(
            b.url.span(),
            &f("url"),
            "TLS files are set but the URL is not mqtts://",
        ));
    }
    let credentials = credentials(ctx, &f, span, b)?;
    if *b.keep_alive_s.get_ref() < 5 {
        return Err(ctx.err(
            b.keep_alive_s.span(),
            &f("keep_alive_s"),
            "must be at least 5",
        ));
    }
    if *b.inflight.get_ref() == 0 || *b.inflight.get_ref() > 64 {
        return Err(ctx.err(b.inflight.span(), &f("inflight"), "must be from 1 to 64"));
    }
    let lag_limits = lag_limits(ctx, &f, b, spool)?;
    Ok(BrokerConfig {
        name,
        endpoint,
        ca_file: b.ca_file.as_deref().map(|p| ctx.path(p)),
        client_auth,
        credentials,
        keep_alive: Duration::from_secs(*b.keep_alive_s.get_ref()),
        backoff_initial: Duration::from_millis(b.backoff_initial_ms.max(10)),
        backoff_max: Duration::from_millis(b.backoff_max_ms.max(b.backoff_initial_ms).max(10)),
        inflight: *b.inflight.get_ref(),
        lag_limits,
    })
}

/// `username` with `password` or `password_file` (read here).
fn credentials(
    ctx: &Ctx,
    f: &dyn Fn(&str) -> String,
    span: std::ops::Range<usize>,
    b: &RawBroker,
) -> Result<Option<(String, String)>, ConfigError> {
    let password = match (&b.password, &b.password_file) {
        (Some(_), Some(pf)) => {
            return Err(ctx.err(
                pf.span(),
                &f("password_file"),
                "set either password or password_file, not both",
            ));
        }
        (Some(p), None) => Some(p.clone()),
        (None, Some(pf)) => {
            let path = ctx.path(pf.get_ref());
            let text = std::fs::read_to_string(&path).map_err(|e| {
                ctx.err(
                    pf.span(),
                    &f("password_file"),
                    format!("{}: {e}", path.display()),
                )
            })?;
            Some(text.trim_end_matches(['\r', '\n']).to_owned())
        }
        (None, None) => None,
    };
    Ok(match (&b.username, password) {
        (Some(u), p) => Some((u.clone(), p.unwrap_or_default())),
        (None, Some(_)) => {
            return Err(ctx.err(span, &f("username"), "a password needs a username"));
        }
        (None, None) => None,
    })
}

/// The lag limits (default: half the spool, 15 minutes).
fn lag_limits(
    ctx: &Ctx,
    f: &dyn Fn(&str) -> String,
    b: &RawBroker,
    spool: &SpoolSettings,
) -> Result<Limits, ConfigError> {
    let max_lag_bytes = match &b.max_lag_bytes {
        Some(v) if *v.get_ref() < 64 * 1024 || *v.get_ref() > spool.max_bytes => {
            return Err(ctx.err(
                v.span(),
                &f("max_lag_bytes"),
                format!(
                    "must be from 65536 to the spool's size ({} bytes)",
                    spool.max_bytes
                ),
            ));
        }
        Some(v) => *v.get_ref(),
        None => spool.max_bytes / 2,
    };
    let max_lag_s = match &b.max_lag_s {
        Some(v) if *v.get_ref() < 5 => {
            return Err(ctx.err(v.span(), &f("max_lag_s"), "must be at least 5"));
        }
        Some(v) => *v.get_ref(),
        None => 900,
    };
    Ok(Limits {
        max_bytes: max_lag_bytes,
        max_stuck_ms: (max_lag_s as i64).saturating_mul(1000),
    })
}

/// Parse `mqtt://host[:port]` or `mqtts://host[:port]`.
pub fn parse_url(url: &str) -> Result<Endpoint, String> {
    let (tls, rest) = if let Some(r) = url.strip_prefix("mqtts://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("mqtt://") {
        (false, r)
    } else {
        return Err(format!(
            "`{url}` is not a broker URL: expected mqtt://host[:port] or mqtts://host[:port]"
        ));
    };
    let rest = rest.trim_end_matches('/');
    if rest.contains('/') || rest.contains('@') {
        return Err(format!(
            "`{url}`: a broker URL holds only host and port (put credentials in username/password)"
        ));
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
            let port: u16 = p
                .parse()
                .map_err(|_| format!("`{url}`: port `{p}` is not a number from 1 to 65535"))?;
            if port == 0 {
                return Err(format!("`{url}`: port 0 is not allowed"));
            }
            (h, port)
        }
        _ => (rest, if tls { 8883 } else { 1883 }),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("`{url}`: missing host"));
    }
    Ok(Endpoint {
        host: host.to_owned(),
        port,
        tls,
    })
}
