//! Server configuration: one TOML file, every field optional, so that `dcim-server` with no
//! arguments runs an embedded broker and SQLite under `./dcim-data`.
//!
//! Errors name the file, the line and column, and the field (the `toml` crate's spans), plus
//! the cross-field checks done by [`Config::validate`].
//!
//! TLS (both optional; plain HTTP and plain MQTT are the defaults). Relative paths are relative
//! to the config file; the files are read at load and at start, and a missing, unreadable or
//! invalid PEM file is reported with the line and field that name it:
//!
//! ```toml
//! [http.tls]                       # HTTPS on http.listen instead of plain HTTP
//! cert_file = "tls/server.pem"     # certificate chain (PEM), the server's certificate first
//! key_file = "tls/server.key"      # private key (PEM: PKCS#8, PKCS#1 or SEC1)
//! client_ca_file = "tls/users-ca.pem"  # optional: require client certificates (mutual TLS)
//! hsts_max_age_s = 31536000        # Strict-Transport-Security max-age; 0 = no header
//! # With [http.tls], cookies are always `Secure` (http.secure_cookies is implied).
//!
//! [broker.tls]                     # embedded broker: MQTT over TLS, terminated at the ACL gate
//! listen = "0.0.0.0:8883"          # default 127.0.0.1:8883
//! cert_file = "tls/server.pem"
//! key_file = "tls/server.key"
//! client_ca_file = "tls/agents-ca.pem" # optional: agents need a certificate as well as a password
//! plain_listener = false           # default true: also keep plain MQTT on broker.listen
//! ```

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config file {path}: field `{field}`: {message}")]
    Invalid {
        path: PathBuf,
        field: String,
        message: String,
    },
    /// A field whose value was read but is not usable (e.g. a TLS file), at its line.
    #[error("config file {path}, line {line}: field `{field}`: {message}")]
    InvalidAt {
        path: PathBuf,
        line: usize,
        field: String,
        message: String,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Directory of the SQLite database and other state.
    pub data_dir: PathBuf,
    /// `[store]`: SQLite in `data_dir` (default) or PostgreSQL (`store::StoreConfig`).
    pub store: crate::store::StoreConfig,
    /// `[cluster]`: this server is one replica of a multi-site deployment (`cluster::
    /// ClusterConfig`); off when absent.
    pub cluster: Option<crate::cluster::ClusterConfig>,
    /// Site model (TOML), read by the site engine; optional.
    pub site_model: Option<PathBuf>,
    pub http: HttpConfig,
    pub broker: BrokerConfig,
    pub auth: AuthConfig,
    #[serde(rename = "agents")]
    pub agents: Vec<AgentConfig>,
    #[serde(rename = "users")]
    pub users: Vec<UserBootstrap>,
    pub influx: Option<InfluxConfig>,
    /// `[notify]`: notifications of alarms (webhook, e-mail, MQTT); off by default.
    pub notify: crate::notify_io::NotifyConfig,
    /// SIA DC-09 to the fire authority for site-level events (`dc09::Dc09Config`); off when
    /// absent.
    pub dc09: Option<crate::dc09::Dc09Config>,
    /// `[history]`: recent history kept in memory per point (`resolution_ms`, default 60000;
    /// `buckets`, default 60: one hour; about 40 bytes per bucket and point once full).
    pub history: crate::ingest::HistoryConfig,
    /// Where this file was read from (empty when built from defaults).
    #[serde(skip)]
    pub source: PathBuf,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("dcim-data"),
            store: Default::default(),
            cluster: None,
            site_model: None,
            http: HttpConfig::default(),
            broker: BrokerConfig::default(),
            auth: AuthConfig::default(),
            agents: Vec::new(),
            users: Vec::new(),
            influx: None,
            notify: Default::default(),
            dc09: None,
            history: Default::default(),
            source: PathBuf::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// Origins (scheme://host:port) allowed to make state-changing browser requests, in
    /// addition to the request's own `Host`.
    pub allowed_origins: Vec<String>,
    /// Session lifetime in seconds.
    pub session_ttl_s: u64,
    /// Mark cookies `Secure` (set when the server is behind HTTPS; implied by `[http.tls]`).
    pub secure_cookies: bool,
    /// Serve HTTPS on `listen` instead of plain HTTP.
    pub tls: Option<HttpTlsConfig>,
}

/// `[http.tls]`: HTTPS for the API and the console.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpTlsConfig {
    /// Certificate chain (PEM), the server's certificate first.
    pub cert_file: PathBuf,
    /// Private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// CA bundle (PEM): when set, clients must present a certificate it issued (mutual TLS).
    pub client_ca_file: Option<PathBuf>,
    /// `Strict-Transport-Security: max-age` in seconds; 0 sends no HSTS header.
    #[serde(default = "default_hsts")]
    pub hsts_max_age_s: u64,
}

fn default_hsts() -> u64 {
    365 * 24 * 3600
}

/// `[broker.tls]`: a second, TLS listener of the embedded broker's gate.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerTlsConfig {
    /// Where agents connect with MQTT over TLS.
    #[serde(default = "default_mqtts_listen")]
    pub listen: SocketAddr,
    /// Certificate chain (PEM), the server's certificate first.
    pub cert_file: PathBuf,
    /// Private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// CA bundle (PEM): when set, agents must present a certificate it issued (mutual TLS),
    /// in addition to their MQTT credentials.
    pub client_ca_file: Option<PathBuf>,
    /// Keep the plain listener on `broker.listen` open too (set false for TLS only).
    #[serde(default = "default_true")]
    pub plain_listener: bool,
}

fn default_mqtts_listen() -> SocketAddr {
    "127.0.0.1:8883".parse().expect("literal address")
}

fn default_true() -> bool {
    true
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: "127.0.0.1:8080".parse().expect("literal address"),
            allowed_origins: Vec::new(),
            session_ttl_s: 12 * 3600,
            secure_cookies: false,
            tls: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BrokerMode {
    Embedded,
    External,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerConfig {
    pub mode: BrokerMode,
    /// Embedded broker: where agents connect (plain MQTT 3.1.1).
    pub listen: SocketAddr,
    /// External broker: `mqtt://host:port` or `mqtts://host:port`.
    pub url: Option<String>,
    /// Credentials of the server's own client on the external broker.
    pub username: Option<String>,
    pub password: Option<String>,
    /// Environment variable holding the password instead of `password`.
    pub password_env: Option<String>,
    /// CA certificate (PEM) for `mqtts://`; the system roots are not used.
    pub ca_file: Option<PathBuf>,
    /// Client id of the server; keep it stable so a persistent session survives restarts.
    pub client_id: String,
    /// Largest accepted payload in bytes.
    pub max_payload: usize,
    /// Embedded broker: MQTT over TLS for agents, terminated at the gate.
    pub tls: Option<BrokerTlsConfig>,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            mode: BrokerMode::Embedded,
            listen: "127.0.0.1:1883".parse().expect("literal address"),
            url: None,
            username: None,
            password: None,
            password_env: None,
            ca_file: None,
            client_id: "dcim-server".into(),
            max_payload: 4 * 1024 * 1024,
            tls: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Argon2id memory cost in KiB (OWASP minimum 19 MiB by default).
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    /// Name of the admin created on first start when the user table is empty. Its password comes
    /// from `DCIM_ADMIN_PASSWORD`, or is generated and printed once to the log.
    pub bootstrap_admin: String,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            argon2_memory_kib: 19 * 1024,
            argon2_iterations: 2,
            bootstrap_admin: "admin".into(),
        }
    }
}

/// An edge agent allowed to publish.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    pub id: String,
    /// Site the agent belongs to; its topics must carry it.
    pub site: String,
    /// MQTT password (embedded broker); or `password_env`.
    pub password: Option<String>,
    pub password_env: Option<String>,
    /// Devices it may publish for: exact ids, or a prefix ending in `*` (`rack-*`).
    pub devices: Vec<String>,
}

impl AgentConfig {
    pub fn may_publish_for(&self, device: &str) -> bool {
        self.devices.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => device.starts_with(prefix),
            None => p == device,
        })
    }

    pub fn secret(&self) -> Option<String> {
        self.password.clone().or_else(|| {
            self.password_env
                .as_ref()
                .and_then(|v| std::env::var(v).ok())
        })
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    Operator,
    Admin,
    /// Read-only view of the fire authority; may never change anything.
    FireAuthority,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
            Role::FireAuthority => "fire_authority",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            "fire_authority" => Some(Role::FireAuthority),
            _ => None,
        }
    }
}

/// A user created at start when it does not exist yet.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserBootstrap {
    pub name: String,
    pub role: Role,
    /// Environment variable that holds the initial password.
    pub password_env: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InfluxConfig {
    /// Base URL, e.g. `http://127.0.0.1:8086`.
    pub url: String,
    pub org: String,
    pub bucket: String,
    pub token: Option<String>,
    pub token_env: Option<String>,
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    #[serde(default = "default_flush_ms")]
    pub flush_interval_ms: u64,
    /// Lines held while the store is unreachable; beyond it lines are dropped and counted.
    #[serde(default = "default_queue")]
    pub queue_capacity: usize,
    #[serde(default = "default_measurement")]
    pub measurement: String,
}

fn default_batch() -> usize {
    5000
}
fn default_flush_ms() -> u64 {
    1000
}
fn default_queue() -> usize {
    200_000
}
fn default_measurement() -> String {
    "dcim".into()
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config = Config::parse(&text, path)?;
        // Relative paths in the file are relative to the file.
        let base = path.parent().unwrap_or(Path::new("."));
        if config.data_dir.is_relative() {
            config.data_dir = base.join(&config.data_dir);
        }
        if let Some(m) = &config.site_model
            && m.is_relative()
        {
            config.site_model = Some(base.join(m));
        }
        if let Some(ca) = &config.broker.ca_file
            && ca.is_relative()
        {
            config.broker.ca_file = Some(base.join(ca));
        }
        for c in &mut config.notify.channels {
            if let Some(ca) = &c.ca_file
                && ca.is_relative()
            {
                c.ca_file = Some(base.join(ca));
            }
        }
        if let Some(d) = &mut config.dc09 {
            d.resolve(base);
        }
        let rel = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        if let Some(t) = &mut config.http.tls {
            rel(&mut t.cert_file);
            rel(&mut t.key_file);
            t.client_ca_file.as_mut().map(rel);
        }
        if let Some(t) = &mut config.broker.tls {
            rel(&mut t.cert_file);
            rel(&mut t.key_file);
            t.client_ca_file.as_mut().map(rel);
        }
        config.check_tls_files(&text)?;
        Ok(config)
    }

    /// Loads the TLS files named in `[http.tls]` and `[broker.tls]`, so that a missing,
    /// unreadable or invalid PEM file is reported at start with the line of its field in `text`.
    pub fn check_tls_files(&self, text: &str) -> Result<(), ConfigError> {
        let err = |section: &str, e: crate::tls::TlsFileError| {
            let field = format!("{section}.{}", e.field);
            let message = format!("`{}`: {}", e.path.display(), e.message);
            let path: Vec<&str> = field.split('.').collect();
            match line_of(text, &path) {
                Some(line) => ConfigError::InvalidAt {
                    path: self.source.clone(),
                    line,
                    field,
                    message,
                },
                None => self.invalid(field, message),
            }
        };
        if let Some(t) = &self.http.tls {
            crate::tls::server_config(t.files(), &[]).map_err(|e| err("http.tls", e))?;
        }
        if let Some(t) = &self.broker.tls {
            crate::tls::server_config(t.files(), &[]).map_err(|e| err("broker.tls", e))?;
        }
        Ok(())
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_string(),
        })?;
        config.source = path.to_owned();
        config.validate()?;
        Ok(config)
    }

    fn invalid(&self, field: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            path: self.source.clone(),
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut seen = std::collections::HashSet::new();
        for (i, a) in self.agents.iter().enumerate() {
            let field = |f: &str| format!("agents[{i}].{f}");
            if dcim_wire::check_identifier(&a.id).is_err() {
                return Err(self.invalid(
                    field("id"),
                    format!("`{}` must be 1-64 of [A-Za-z0-9._-]", a.id),
                ));
            }
            if dcim_wire::check_identifier(&a.site).is_err() {
                return Err(self.invalid(
                    field("site"),
                    format!("`{}` must be 1-64 of [A-Za-z0-9._-]", a.site),
                ));
            }
            if !seen.insert(a.id.clone()) {
                return Err(self.invalid(field("id"), format!("agent `{}` is listed twice", a.id)));
            }
            if a.password.is_none() && a.password_env.is_none() {
                return Err(self.invalid(
                    field("password"),
                    "each agent needs `password` or `password_env`",
                ));
            }
            if a.devices.is_empty() {
                return Err(self.invalid(
                    field("devices"),
                    "list the devices the agent may publish for (exact ids or `prefix*`)",
                ));
            }
            if a.id == self.broker.client_id {
                return Err(self.invalid(
                    field("id"),
                    "an agent may not use the server's broker client id",
                ));
            }
        }
        match self.broker.mode {
            BrokerMode::External => {
                let Some(url) = &self.broker.url else {
                    return Err(
                        self.invalid("broker.url", "required when broker.mode = \"external\"")
                    );
                };
                if parse_broker_url(url).is_none() {
                    return Err(self.invalid(
                        "broker.url",
                        format!("`{url}`: expected mqtt://host:port or mqtts://host:port"),
                    ));
                }
            }
            BrokerMode::Embedded => {
                if self.broker.url.is_some() {
                    return Err(
                        self.invalid("broker.url", "only used with broker.mode = \"external\"")
                    );
                }
            }
        }
        if self.broker.tls.is_some() && self.broker.mode == BrokerMode::External {
            return Err(self.invalid(
                "broker.tls",
                "only for the embedded broker; an external broker has its own TLS settings",
            ));
        }
        if let Some(t) = &self.broker.tls
            && t.listen == self.broker.listen
            && t.listen.port() != 0
            && t.plain_listener
        {
            return Err(self.invalid(
                "broker.tls.listen",
                format!("{} is already broker.listen", t.listen),
            ));
        }
        self.validate_dc09()?;
        self.store.validate().map_err(|(f, m)| self.invalid(f, m))?;
        if let Some(c) = &self.cluster {
            c.validate(self).map_err(|(f, m)| self.invalid(f, m))?;
        }
        self.history
            .validate()
            .map_err(|(f, m)| self.invalid(f, m))?;
        if self.http.session_ttl_s == 0 {
            return Err(self.invalid("http.session_ttl_s", "must be at least 1"));
        }
        if self.auth.argon2_memory_kib < 64 {
            return Err(self.invalid("auth.argon2_memory_kib", "must be at least 64"));
        }
        if let Some(influx) = &self.influx {
            if !(influx.url.starts_with("http://") || influx.url.starts_with("https://")) {
                return Err(self.invalid("influx.url", "expected http:// or https:// URL"));
            }
            if influx.batch_size == 0 || influx.queue_capacity < influx.batch_size {
                return Err(self.invalid(
                    "influx.queue_capacity",
                    "must be at least batch_size, and batch_size at least 1",
                ));
            }
        }
        self.notify
            .validate()
            .map_err(|(field, message)| self.invalid(field, message))?;
        Ok(())
    }

    fn validate_dc09(&self) -> Result<(), ConfigError> {
        match &self.dc09 {
            Some(d) => d.validate().map_err(|(f, m)| self.invalid(f, m)),
            None => Ok(()),
        }
    }

    pub fn agent(&self, id: &str) -> Option<&AgentConfig> {
        self.agents.iter().find(|a| a.id == id)
    }
}

impl HttpTlsConfig {
    pub fn files(&self) -> crate::tls::TlsFiles<'_> {
        crate::tls::TlsFiles {
            cert_file: &self.cert_file,
            key_file: &self.key_file,
            client_ca_file: self.client_ca_file.as_deref(),
        }
    }
}

impl BrokerTlsConfig {
    pub fn files(&self) -> crate::tls::TlsFiles<'_> {
        crate::tls::TlsFiles {
            cert_file: &self.cert_file,
            key_file: &self.key_file,
            client_ca_file: self.client_ca_file.as_deref(),
        }
    }
}

/// 1-based line of the value at a dotted key path (`["http", "tls", "cert_file"]`) in a TOML
/// text, for error messages about values that parse but are not usable.
pub fn line_of(text: &str, path: &[&str]) -> Option<usize> {
    let root = toml::de::DeTable::parse(text).ok()?;
    let mut table = root.get_ref();
    let (last, parents) = path.split_last()?;
    for key in parents {
        let (_, v) = table.iter().find(|(k, _)| k.get_ref().as_ref() == *key)?;
        match v.get_ref() {
            toml::de::DeValue::Table(t) => table = t,
            _ => return None,
        }
    }
    let (_, v) = table.iter().find(|(k, _)| k.get_ref().as_ref() == *last)?;
    Some(text[..v.span().start].matches('\n').count() + 1)
}

/// `(tls, host, port)` of an `mqtt://` or `mqtts://` URL.
pub fn parse_broker_url(url: &str) -> Option<(bool, String, u16)> {
    let (tls, rest) = if let Some(r) = url.strip_prefix("mqtts://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("mqtt://") {
        (false, r)
    } else {
        return None;
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().ok()?),
        None => (rest, if tls { 8883 } else { 1883 }),
    };
    if host.is_empty() {
        return None;
    }
    Some((tls, host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("server.toml"))
    }

    #[test]
    fn empty_file_gives_defaults() {
        let c = p("").unwrap();
        assert_eq!(c.broker.mode, BrokerMode::Embedded);
        assert_eq!(c.http.listen.port(), 8080);
    }

    #[test]
    fn unknown_field_names_file_line_and_field() {
        let err = p("[http]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("server.toml"), "{err}");
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("lisen"), "{err}");
    }

    #[test]
    fn bad_role_and_bad_agent_are_reported() {
        let err = p("[[users]]\nname='a'\nrole='root'\npassword_env='X'\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 3") && err.contains("root"), "{err}");
        let err = p("[[agents]]\nid='a b'\nsite='s'\npassword='x'\ndevices=['d']\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("agents[0].id"), "{err}");
        let err = p("[broker]\nmode='external'\n").unwrap_err().to_string();
        assert!(err.contains("broker.url"), "{err}");
    }

    #[test]
    fn device_patterns() {
        let c =
            p("[[agents]]\nid='a1'\nsite='s'\npassword='x'\ndevices=['ups-1','rack-*']\n").unwrap();
        let a = c.agent("a1").unwrap();
        assert!(a.may_publish_for("ups-1"));
        assert!(a.may_publish_for("rack-17"));
        assert!(!a.may_publish_for("ups-2"));
        assert!(!a.may_publish_for("racks"));
    }

    #[test]
    fn tls_files_are_checked_at_load_with_line_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let c = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        std::fs::write(dir.path().join("cert.pem"), c.cert.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), c.signing_key.serialize_pem()).unwrap();
        let file = dir.path().join("server.toml");
        let load = |text: &str| {
            std::fs::write(&file, text).unwrap();
            Config::load(&file)
        };
        // Relative paths are relative to the config file.
        let ok = load("[http.tls]\ncert_file = 'cert.pem'\nkey_file = 'key.pem'\n").unwrap();
        let t = ok.http.tls.unwrap();
        assert_eq!(t.cert_file, dir.path().join("cert.pem"));
        assert_eq!(t.hsts_max_age_s, 365 * 24 * 3600);

        let err = load("[http]\nlisten = '127.0.0.1:1'\n[http.tls]\ncert_file = 'nope.pem'\nkey_file = 'key.pem'\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("server.toml, line 4"), "{err}");
        assert!(err.contains("`http.tls.cert_file`"), "{err}");
        assert!(
            err.contains("nope.pem") && err.contains("cannot read"),
            "{err}"
        );

        let err = load(
            "[broker.tls]\nlisten = '127.0.0.1:0'\ncert_file = 'cert.pem'\nkey_file = 'cert.pem'\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("line 4") && err.contains("`broker.tls.key_file`"),
            "{err}"
        );
        assert!(err.contains("private key"), "{err}");

        let err = load("[broker]\ntls = { cert_file = 'cert.pem', key_file = 'key.pem', client_ca_file = 'key.pem' }\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 2") && err.contains("`broker.tls.client_ca_file`"),
            "{err}"
        );

        // Both listeners on one fixed port is a mistake; port 0 (ephemeral) twice is not.
        let both = "[broker]\nlisten = '127.0.0.1:1883'\n[broker.tls]\nlisten = '127.0.0.1:1883'\ncert_file = 'cert.pem'\nkey_file = 'key.pem'\n";
        let err = load(both).unwrap_err().to_string();
        assert!(err.contains("`broker.tls.listen`"), "{err}");
        assert!(load(&both.replace(":1883", ":0")).is_ok());

        let err = load("[http.tls]\ncert_file = 'cert.pem'\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("key_file"), "{err}");
        let err = load("[broker]\nmode = 'external'\nurl = 'mqtt://h'\n[broker.tls]\ncert_file = 'cert.pem'\nkey_file = 'key.pem'\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("`broker.tls`"), "{err}");
    }

    #[test]
    fn broker_urls() {
        assert_eq!(
            parse_broker_url("mqtts://h:8884"),
            Some((true, "h".into(), 8884))
        );
        assert_eq!(
            parse_broker_url("mqtt://h"),
            Some((false, "h".into(), 1883))
        );
        assert_eq!(parse_broker_url("http://h"), None);
    }
}
