//! Transmitter configuration (TOML).
//!
//! ```toml
//! account = "1234"            # 3-16 hex digits
//! receiver = 1                # R prefix (hex value), optional
//! line = 1                    # L prefix
//! key_hex = "00112233445566778899AABBCCDDEEFF"   # or key_ascii = "0123456789ABCDEF"; none = plain
//! ack_timeout_ms = 3000       # wait for ACK per attempt
//! attempts_per_path = 3       # then fail over to the next path
//! all_paths_down_backoff_ms = 2000
//! down_probe_ms = 10000       # NULL probe interval on a failed path
//! test_interval_ms = 86400000 # periodic test report; 0 = off
//! codes_file = "arc-north.toml"  # per-authority code table (sia-dc09 CodeTable), optional
//!
//! [[path]]
//! name = "primary-main"
//! addr = "127.0.0.1:12000"
//! transport = "tcp"           # or "udp"
//! supervision_ms = 90000      # NULL supervision interval; 0 = off
//! ```

use serde::Deserialize;
use sia_dc09::{Account, CodeTable, Header, Key};
use std::net::SocketAddr;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Tcp,
    Udp,
}

/// One transmission path to one receiver, in preference order in [`LinkConfig::paths`]
/// (e.g. primary receiver over the main network, primary over the backup network, secondary
/// receiver ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathConfig {
    pub name: String,
    pub addr: SocketAddr,
    pub transport: Transport,
    /// NULL supervision interval; 0 disables.
    pub supervision_ms: u64,
}

#[derive(Debug, Clone)]
pub struct LinkConfig {
    pub header: Header,
    pub key: Option<Key>,
    pub paths: Vec<PathConfig>,
    pub ack_timeout_ms: u64,
    pub attempts_per_path: u32,
    pub all_paths_down_backoff_ms: u64,
    pub down_probe_ms: u64,
    pub test_interval_ms: u64,
    pub codes: CodeTable,
}

impl LinkConfig {
    /// A configuration with defaults for everything but the account and the paths.
    pub fn new(account: Account, paths: Vec<PathConfig>) -> LinkConfig {
        LinkConfig {
            header: Header {
                receiver: None,
                line: 1,
                account,
            },
            key: None,
            paths,
            ack_timeout_ms: 3000,
            attempts_per_path: 3,
            all_paths_down_backoff_ms: 2000,
            down_probe_ms: 10_000,
            test_interval_ms: 86_400_000,
            codes: CodeTable::default(),
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let e = |field: &str, msg: &str| ConfigError::new("(config)", 0, field, msg);
        if self.paths.is_empty() {
            return Err(e("path", "at least one path is required"));
        }
        if self.ack_timeout_ms == 0 {
            return Err(e("ack_timeout_ms", "must be > 0"));
        }
        if self.attempts_per_path == 0 {
            return Err(e("attempts_per_path", "must be >= 1"));
        }
        let mut names = std::collections::HashSet::new();
        for p in &self.paths {
            if !names.insert(&p.name) {
                return Err(e("path.name", &format!("duplicate path name {:?}", p.name)));
            }
        }
        Ok(())
    }

    /// Loads a configuration file; `codes_file` is resolved relative to it.
    pub fn from_file(path: &Path) -> Result<LinkConfig, ConfigError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|err| ConfigError::new(&origin, 0, "(file)", &err.to_string()))?;
        LinkConfig::from_toml(&text, &origin, path.parent())
    }

    /// Parses a configuration; `base_dir` resolves a relative `codes_file`.
    pub fn from_toml(
        text: &str,
        origin: &str,
        base_dir: Option<&Path>,
    ) -> Result<LinkConfig, ConfigError> {
        let lines = dcim_source_lines::LineIndex::new(text);
        let line = |span: std::ops::Range<usize>| lines.line(span.start);
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            ConfigError::new(origin, e.span().map_or(0, line), "(syntax)", e.message())
        })?;
        let account = Account::new(raw.account.get_ref()).map_err(|err| {
            ConfigError::new(
                origin,
                line(raw.account.span()),
                "account",
                &err.to_string(),
            )
        })?;
        let paths = raw_paths(&raw.path, origin, &line)?;
        let mut cfg = LinkConfig::new(account, paths);
        cfg.header.receiver = raw.receiver;
        if let Some(l) = raw.line {
            cfg.header.line = l;
        }
        for (v, n) in [
            (cfg.header.receiver.unwrap_or(0), "receiver"),
            (cfg.header.line, "line"),
        ] {
            if v > 0xFF_FFFF {
                return Err(ConfigError::new(
                    origin,
                    0,
                    n,
                    "must fit in 6 hex digits (<= 16777215)",
                ));
            }
        }
        cfg.key = raw_key(&raw, origin, &line)?;
        macro_rules! set {
            ($f:ident) => {
                if let Some(v) = raw.$f {
                    cfg.$f = v;
                }
            };
        }
        set!(ack_timeout_ms);
        set!(attempts_per_path);
        set!(all_paths_down_backoff_ms);
        set!(down_probe_ms);
        set!(test_interval_ms);
        if let Some(f) = &raw.codes_file {
            let p = base_dir.map_or_else(|| Path::new(f).to_path_buf(), |d| d.join(f));
            let ctext = std::fs::read_to_string(&p).map_err(|err| {
                ConfigError::new(origin, 0, "codes_file", &format!("{}: {err}", p.display()))
            })?;
            cfg.codes = CodeTable::from_toml(&ctext, &p.display().to_string())
                .map_err(|t| ConfigError::new(&t.origin, t.line, &t.field, &t.message))?;
        }
        cfg.validate().map_err(|mut e| {
            e.origin = origin.to_string();
            e
        })?;
        Ok(cfg)
    }
}

/// The `[[path]]` entries, named `path1`, `path2`... when they have no name.
fn raw_paths(
    raw: &[RawPath],
    origin: &str,
    line: &dyn Fn(std::ops::Range<usize>) -> usize,
) -> Result<Vec<PathConfig>, ConfigError> {
    let mut paths = Vec::new();
    for (i, p) in raw.iter().enumerate() {
        let addr: SocketAddr = p.addr.get_ref().parse().map_err(|_| {
            ConfigError::new(
                origin,
                line(p.addr.span()),
                &format!("path[{i}].addr"),
                &format!("expected IP:port, got {:?}", p.addr.get_ref()),
            )
        })?;
        paths.push(PathConfig {
            name: p.name.clone().unwrap_or_else(|| format!("path{}", i + 1)),
            addr,
            transport: p.transport.unwrap_or(Transport::Tcp),
            supervision_ms: p.supervision_ms.unwrap_or(90_000),
        });
    }
    Ok(paths)
}

/// The encryption key, from `key_hex` or `key_ascii` (not both).
fn raw_key(
    raw: &RawConfig,
    origin: &str,
    line: &dyn Fn(std::ops::Range<usize>) -> usize,
) -> Result<Option<Key>, ConfigError> {
    Ok(match (&raw.key_hex, &raw.key_ascii) {
        (Some(_), Some(s)) => {
            return Err(ConfigError::new(
                origin,
                line(s.span()),
                "key_ascii",
                "give either key_hex or key_ascii, not both",
            ));
        }
        (Some(h), None) => Some(Key::from_hex(h.get_ref()).map_err(|err| {
            ConfigError::new(origin, line(h.span()), "key_hex", &err.to_string())
        })?),
        (None, Some(a)) => Some(Key::from_ascii(a.get_ref()).map_err(|err| {
            ConfigError::new(origin, line(a.span()), "key_ascii", &err.to_string())
        })?),
        (None, None) => None,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    account: toml::Spanned<String>,
    receiver: Option<u32>,
    line: Option<u32>,
    key_hex: Option<toml::Spanned<String>>,
    key_ascii: Option<toml::Spanned<String>>,
    ack_timeout_ms: Option<u64>,
    attempts_per_path: Option<u32>,
    all_paths_down_backoff_ms: Option<u64>,
    down_probe_ms: Option<u64>,
    test_interval_ms: Option<u64>,
    codes_file: Option<String>,
    #[serde(default)]
    path: Vec<RawPath>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPath {
    name: Option<String>,
    addr: toml::Spanned<String>,
    transport: Option<Transport>,
    supervision_ms: Option<u64>,
}

/// A configuration error with its place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}:{line}: {field}: {message}")]
pub struct ConfigError {
    pub origin: String,
    pub line: usize,
    pub field: String,
    pub message: String,
}

impl ConfigError {
    fn new(origin: &str, line: usize, field: &str, message: &str) -> ConfigError {
        ConfigError {
            origin: origin.into(),
            line,
            field: field.into(),
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_validates() {
        let c = LinkConfig::from_toml(
            "account = \"1234\"\nreceiver = 1\nkey_ascii = \"AAAAAAAAAAAAAAAA\"\n[[path]]\naddr = \"127.0.0.1:1\"\ntransport = \"udp\"\n",
            "l.toml",
            None,
        )
        .unwrap();
        assert_eq!(c.paths[0].transport, Transport::Udp);
        assert_eq!(c.paths[0].name, "path1");
        assert_eq!(c.key.unwrap().bits(), 128);
        let e = LinkConfig::from_toml("account = \"12\"\n", "l.toml", None).unwrap_err();
        assert_eq!((e.line, e.field.as_str()), (1, "account"));
        let e = LinkConfig::from_toml(
            "account = \"1234\"\n[[path]]\naddr = \"localhost\"\n",
            "l.toml",
            None,
        )
        .unwrap_err();
        assert_eq!((e.line, e.field.as_str()), (3, "path[0].addr"));
        let e = LinkConfig::from_toml("account = \"1234\"\n", "l.toml", None).unwrap_err();
        assert!(e.to_string().contains("at least one path"), "{e}");
        let e = LinkConfig::from_toml(
            "account = \"1234\"\nkey_hex = \"0011\"\n[[path]]\naddr = \"127.0.0.1:1\"\n",
            "l.toml",
            None,
        )
        .unwrap_err();
        assert_eq!(e.field, "key_hex");
    }
}

#[cfg(test)]
mod example_file {
    #[test]
    fn example_config_loads() {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/link.example.toml");
        let c = super::LinkConfig::from_file(&p).unwrap();
        assert_eq!(c.paths.len(), 3);
        assert_eq!(c.codes.authority, "Example fire authority ARC");
    }
}
