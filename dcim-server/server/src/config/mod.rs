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
//!
//! Limits of the public surfaces (all optional; the defaults shown). The process's open-file
//! limit must cover `http.max_connections + 3 x broker.max_connections + 256` (the server
//! warns at start when it does not; the systemd unit sets `LimitNOFILE=65536`):
//!
//! ```toml
//! [http]
//! allowed_hosts = []               # Host names besides IP literals, localhost and the hosts of
//!                                  # allowed_origins; a browser request for another is refused
//!                                  # with 421 (DNS rebinding). Add the name users type.
//! header_timeout_s = 10            # headers (and the TLS handshake) within; also keep-alive idle
//! request_timeout_s = 30           # a request, body included, handled within (else 408)
//! idle_timeout_s = 60              # no byte either way for this long closes the connection
//! max_connections = 1024
//! max_connections_per_address = 128
//!
//! [broker]
//! max_connections = 1024
//! max_connections_per_address = 64
//! max_pending_connects = 128       # connections not logged in yet (a quarter per address)
//! connect_timeout_ms = 5000        # CONNECT (and TLS handshake) within
//! address_failures_before_lock = 20  # failed MQTT logins before an address is locked out
//!
//! [auth]
//! user_failures_before_lock = 5    # failed sign-ins of one name (without its device cookie)
//! address_failures_before_lock = 20 # failed sign-ins from one address (raise behind a proxy)
//! first_lock_s = 60                # then doubling ...
//! max_lock_s = 900                 # ... up to this
//! max_concurrent_hashes = 2        # argon2 computations at once (each argon2_memory_kib)
//! token_days = 90                  # lifetime of a new API token unless the request says
//! ```

pub mod cluster;
pub mod dc09;
pub mod history;
pub mod notify;
pub mod store;

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

impl ConfigError {
    /// An [`ConfigError::Invalid`] whose field can be found in `text` becomes
    /// [`ConfigError::InvalidAt`] with the field's line (or its table's, when the field is
    /// missing), so every error names file, line and field.
    pub fn at_line(self, text: &str) -> ConfigError {
        match self {
            ConfigError::Invalid {
                path,
                field,
                message,
            } => match line_of_field(text, &field) {
                Some(line) => ConfigError::InvalidAt {
                    path,
                    line,
                    field,
                    message,
                },
                None => ConfigError::Invalid {
                    path,
                    field,
                    message,
                },
            },
            other => other,
        }
    }
}

/// Default tolerance for agents' clocks running ahead (`[ingest] max_clock_skew_ms`).
pub const DEFAULT_MAX_CLOCK_SKEW_MS: i64 = 60_000;

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Directory of the SQLite database and other state.
    pub data_dir: PathBuf,
    /// `[store]`: SQLite in `data_dir` (default, with its free-space reserve) or PostgreSQL
    /// (`store::StoreConfig`).
    pub store: store::StoreConfig,
    /// `[cluster]`: this server is one replica of a multi-site deployment (`cluster::
    /// ClusterConfig`); off when absent.
    pub cluster: Option<cluster::ClusterConfig>,
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
    pub notify: notify::NotifyConfig,
    /// SIA DC-09 to the fire authority for site-level events (`dc09::Dc09Config`); off when
    /// absent.
    pub dc09: Option<dc09::Dc09Config>,
    /// `[history]`: recent history kept in memory per point (`resolution_ms`, default 60000;
    /// `buckets`, default 60: one hour; about 40 bytes per bucket and point once full).
    pub history: history::HistoryConfig,
    /// `[log]`: level and format of the log lines.
    pub log: LogConfig,
    /// `[metrics]`: how Prometheus scrapes `/metrics` without a user account.
    pub metrics: MetricsConfig,
    /// `[status]`: when missing data turns a component or device Unknown, then Down.
    pub status: StatusConfig,
    /// `[ingest]`: what the ingest accepts (clock skew of agents).
    pub ingest: IngestConfig,
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
            log: LogConfig::default(),
            metrics: MetricsConfig::default(),
            status: StatusConfig::default(),
            ingest: IngestConfig::default(),
            source: PathBuf::new(),
        }
    }
}

/// `[log]`: the log lines on stderr (journald under systemd).
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `tracing` filter (`info`, `warn`, `info,dcim_server::io::mqtt=debug`); `RUST_LOG` overrides.
    pub level: String,
    /// `text` (for people; colours only on a terminal) or `json` (one object per line, for
    /// Loki or Vector); `DCIM_LOG_FORMAT` overrides.
    pub format: String,
}

/// The default filter: the embedded broker's own chatter is kept out.
pub const DEFAULT_LOG_LEVEL: &str = "info,rumqttd=warn,rumqttd::server::broker=off";

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: DEFAULT_LOG_LEVEL.into(),
            format: "text".into(),
        }
    }
}

/// `[status]`: the seed rule "an Unknown that lasts turns into Down".
///
/// ```toml
/// [status]
/// unknown_after_ms = 60000   # a device with no good evidence for this long is Unknown
/// down_after_ms = 300000     # Unknown (a device, or a component of the site model) for this
///                            # long is Down: it then counts as lost in every level and alarm
/// ```
#[derive(Debug, Clone, Copy, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatusConfig {
    pub unknown_after_ms: i64,
    pub down_after_ms: i64,
}

impl Default for StatusConfig {
    fn default() -> Self {
        let p = dcim_site::StatusPolicy::default();
        StatusConfig {
            unknown_after_ms: p.unknown_after_ms,
            down_after_ms: p.down_after_ms,
        }
    }
}

impl StatusConfig {
    pub fn policy(&self) -> dcim_site::StatusPolicy {
        dcim_site::StatusPolicy {
            unknown_after_ms: self.unknown_after_ms,
            down_after_ms: self.down_after_ms,
        }
    }
}

/// `[metrics]`: scraping `/metrics` without a user account. Either a listener of its own
/// (serving only `/metrics` and `/health`, e.g. on an address only Prometheus reaches), or a
/// bearer token accepted on `/metrics` of the main listener and nowhere else, or both.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// A second listener for `/metrics` and `/health`, without authentication.
    pub listen: Option<SocketAddr>,
    /// Bearer token for `/metrics` only (at least 16 characters); or `scrape_token_env`.
    pub scrape_token: Option<String>,
    pub scrape_token_env: Option<String>,
}

impl MetricsConfig {
    /// The scrape token, if one is configured (and its environment variable set).
    pub fn token(&self) -> Option<String> {
        self.scrape_token.clone().or_else(|| {
            self.scrape_token_env
                .as_ref()
                .and_then(|v| std::env::var(v).ok())
                .filter(|t| !t.is_empty())
        })
    }
}

/// `[ingest]`.
///
/// ```toml
/// [ingest]
/// max_clock_skew_ms = 60000   # samples stamped further than this ahead of the server's clock
///                             # are refused (counted in dcim_ingest_future_samples_total, and
///                             # the agent gets an `agent-clock-ahead` trouble); samples ahead
///                             # by less are taken as received now
/// ```
#[derive(Debug, Clone, Copy, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    pub max_clock_skew_ms: i64,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            max_clock_skew_ms: DEFAULT_MAX_CLOCK_SKEW_MS,
        }
    }
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
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
    /// Host names the server is reached by (`Host` header), besides IP literals, `localhost`
    /// and the hosts of `allowed_origins`. A browser request (no bearer token) naming another
    /// host is refused with 421: a DNS-rebinding page reaches a loopback or LAN server under
    /// its own name. Example: `["dcim.example.org"]`.
    pub allowed_hosts: Vec<String>,
    /// A client must send a request's headers within this many seconds of connecting or of
    /// its previous response (also the keep-alive idle time between requests). Default 10.
    pub header_timeout_s: u64,
    /// A request (body included) must be handled within this many seconds; the live stream's
    /// events are not counted. Default 30.
    pub request_timeout_s: u64,
    /// A connection on which no byte moved either way for this long is closed (the live
    /// stream sends a keep-alive every 15 s). Default 60.
    pub idle_timeout_s: u64,
    /// Open HTTP connections at most (further ones are closed at accept). Keep
    /// `max_connections + 3 x broker.max_connections + 256` under the process's descriptor
    /// limit (`LimitNOFILE`). Default 1024.
    pub max_connections: usize,
    /// Open HTTP connections from one address (IPv6: one /64) at most. Default 128.
    pub max_connections_per_address: usize,
}

/// `[http.tls]`: HTTPS for the API and the console.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
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
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
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
            allowed_hosts: Vec::new(),
            header_timeout_s: 10,
            request_timeout_s: 30,
            idle_timeout_s: 60,
            max_connections: 1024,
            max_connections_per_address: 128,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BrokerMode {
    Embedded,
    External,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
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
    /// Embedded broker: size of one segment of rumqttd's in-memory log, per subscribed topic
    /// filter (default 32 MiB). The gate never lets the bytes relayed and not yet taken by the
    /// ingest exceed `(log_segments - 1) * log_segment_bytes - (max_payload + 64 KiB)`, so the
    /// log cannot drop a message before the ingest has read it (see `broker::budget`). The same
    /// bound holds the telemetry the gate hands to the ingest directly (not through rumqttd).
    pub log_segment_bytes: usize,
    /// Embedded broker: segments kept per filter (default 4, at least 2).
    pub log_segments: usize,
    /// New points (device and point names never seen before) one agent may add per minute
    /// (default 100,000: a 4,000-rack agent is fully known within two minutes of its start);
    /// samples of further new points are refused and counted
    /// (`dcim_ingest_new_points_refused_total`) until the next minute. 0 = no limit.
    pub new_points_per_agent_per_min: usize,
    /// Embedded broker: open MQTT connections at most (each costs the gate three file
    /// descriptors). Default 1024.
    pub max_connections: usize,
    /// Embedded broker: open MQTT connections from one address (IPv6: one /64). Default 64.
    pub max_connections_per_address: usize,
    /// Embedded broker: connections that have not completed their login yet, at most (a
    /// quarter of them from one address). Default 128.
    pub max_pending_connects: usize,
    /// Embedded broker: a client must send its CONNECT within this many milliseconds
    /// (TLS handshake included). Default 5000.
    pub connect_timeout_ms: u64,
    /// Embedded broker: failed MQTT logins from one address before it is locked out for a
    /// while (doubling, up to `auth.max_lock_s`); 0 = never. Agent ids are never locked by
    /// name: anyone could then cut an agent off. Default 20.
    pub address_failures_before_lock: u32,
}

impl BrokerConfig {
    /// Largest message the gate relays: the payload limit plus room for the topic and header.
    pub fn max_message(&self) -> usize {
        self.max_payload + 64 * 1024
    }

    /// The bytes one filter's log may hold unread (`broker::budget`); at least one largest
    /// message even for a configuration that skipped validation.
    pub fn log_budget(&self) -> usize {
        self.log_segments
            .saturating_sub(1)
            .saturating_mul(self.log_segment_bytes)
            .saturating_sub(self.max_message())
    }
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
            log_segment_bytes: 32 * 1024 * 1024,
            log_segments: 4,
            new_points_per_agent_per_min: 100_000,
            max_connections: 1024,
            max_connections_per_address: 64,
            max_pending_connects: 128,
            connect_timeout_ms: 5000,
            address_failures_before_lock: 20,
        }
    }
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Argon2id memory cost in KiB (OWASP minimum 19 MiB by default).
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    /// Name of the admin created on first start when the user table is empty. Its password comes
    /// from `DCIM_ADMIN_PASSWORD`, or is generated and shown once: on the terminal when the
    /// server runs on one, else written to `<data_dir>/initial-admin-password` (mode 0600).
    /// It is never written to the log.
    pub bootstrap_admin: String,
    /// Failed sign-ins of one user name (from browsers without that user's device cookie)
    /// before it is locked; every further lock doubles, up to `max_lock_s`. 0 = never.
    /// Default 5.
    pub user_failures_before_lock: u32,
    /// Failed sign-ins from one address (IPv6: one /64) before it is locked. 0 = never.
    /// Default 20. Behind a reverse proxy every client has the proxy's address: raise it.
    pub address_failures_before_lock: u32,
    /// First lock, in seconds. Default 60.
    pub first_lock_s: u64,
    /// Longest lock, in seconds. Default 900.
    pub max_lock_s: u64,
    /// Password hashes computed at once (each takes `argon2_memory_kib`); further sign-ins
    /// wait, at most 64 of them (4 per address), the rest are refused with 503. Default 2.
    pub max_concurrent_hashes: usize,
    /// Lifetime of a new API token when the request names none, in days (at most 3650).
    /// Default 90.
    pub token_days: u32,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            argon2_memory_kib: 19 * 1024,
            argon2_iterations: 2,
            bootstrap_admin: "admin".into(),
            user_failures_before_lock: 5,
            address_failures_before_lock: 20,
            first_lock_s: 60,
            max_lock_s: 900,
            max_concurrent_hashes: 2,
            token_days: 90,
        }
    }
}

/// An edge agent allowed to publish.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
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
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct UserBootstrap {
    pub name: String,
    pub role: Role,
    /// Environment variable that holds the initial password.
    pub password_env: String,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
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
    /// The on-disk buffer between the ingest and the store (`tsdb::buffer`); default
    /// `<data_dir>/tsdb-buffer`. Relative paths are relative to the config file.
    #[serde(default)]
    pub buffer_dir: Option<PathBuf>,
    /// Budget of the on-disk buffer in MiB (default 2048: about 10 hours of the demo
    /// facility's telemetry while the store is down). When it is full the oldest batches are
    /// dropped, counted (`dcim_tsdb_buffer_dropped_lines_total`) and reported by `/health`.
    #[serde(default = "default_buffer_mb")]
    pub buffer_max_mb: u64,
    /// Prometheus query API of the same store (VictoriaMetrics: its base URL, e.g.
    /// `http://127.0.0.1:8428`): the console's point history is read from it. Without it the
    /// history comes from the in-memory ring (`[history]`).
    #[serde(default)]
    pub query_url: Option<String>,
    /// Time allowed for one history query before the in-memory ring answers instead.
    #[serde(default = "default_query_timeout")]
    pub query_timeout_ms: u64,
}

fn default_buffer_mb() -> u64 {
    2048
}
fn default_query_timeout() -> u64 {
    3000
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
        if let Some(i) = &mut config.influx
            && let Some(b) = &i.buffer_dir
            && b.is_relative()
        {
            i.buffer_dir = Some(base.join(b));
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
        let err = |section: &str, e: crate::base::tls::TlsFileError| {
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
            crate::base::tls::server_config(t.files(), &[]).map_err(|e| err("http.tls", e))?;
        }
        if let Some(t) = &self.broker.tls {
            crate::base::tls::server_config(t.files(), &[]).map_err(|e| err("broker.tls", e))?;
        }
        Ok(())
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_string(),
        })?;
        config.source = path.to_owned();
        config.validate().map_err(|e| e.at_line(text))?;
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
        self.validate_agents()?;
        self.validate_broker()?;
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
        if dcim_service::LogFormat::parse(&self.log.format).is_none() {
            return Err(self.invalid(
                "log.format",
                format!("`{}`: expected \"text\" or \"json\"", self.log.format),
            ));
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return Err(self.invalid(
                "log.level",
                format!(
                    "`{}` is not a log filter (e.g. \"info\" or \"warn,dcim_server=debug\")",
                    self.log.level
                ),
            ));
        }
        if let Some(t) = &self.metrics.scrape_token
            && t.len() < 16
        {
            return Err(self.invalid("metrics.scrape_token", "must have at least 16 characters"));
        }
        if let Some(l) = self.metrics.listen
            && l == self.http.listen
            && l.port() != 0
        {
            return Err(self.invalid("metrics.listen", format!("{l} is already http.listen")));
        }
        if self.status.unknown_after_ms <= 0 {
            return Err(self.invalid("status.unknown_after_ms", "must be at least 1 ms"));
        }
        if self.status.down_after_ms <= 0 {
            return Err(self.invalid("status.down_after_ms", "must be at least 1 ms"));
        }
        if self.ingest.max_clock_skew_ms < 0 {
            return Err(self.invalid("ingest.max_clock_skew_ms", "must be 0 or more"));
        }
        if self.auth.argon2_memory_kib < 64 {
            return Err(self.invalid("auth.argon2_memory_kib", "must be at least 64"));
        }
        self.validate_limits()?;
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
            if influx.buffer_max_mb < 16 {
                return Err(self.invalid("influx.buffer_max_mb", "must be at least 16"));
            }
            if let Some(q) = &influx.query_url
                && !(q.starts_with("http://") || q.starts_with("https://"))
            {
                return Err(self.invalid("influx.query_url", "expected http:// or https:// URL"));
            }
        }
        self.notify
            .validate()
            .map_err(|(field, message)| self.invalid(field, message))?;
        Ok(())
    }

    /// `[[agents]]`: identifiers, unique ids, a password, the devices they may publish for.
    fn validate_agents(&self) -> Result<(), ConfigError> {
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
        Ok(())
    }

    /// `[broker]`: the mode and its address, the log's size and budget, TLS.
    fn validate_broker(&self) -> Result<(), ConfigError> {
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
        if self.broker.log_segment_bytes < 1024 {
            return Err(self.invalid("broker.log_segment_bytes", "must be at least 1024"));
        }
        if self.broker.log_segments < 2 {
            return Err(self.invalid("broker.log_segments", "must be at least 2"));
        }
        if self.broker.log_budget() < self.broker.max_message() {
            return Err(self.invalid(
                "broker.log_segment_bytes",
                format!(
                    "(log_segments - 1) x log_segment_bytes must hold at least two of the largest messages (2 x (max_payload + 64 KiB) = {} bytes)",
                    2 * self.broker.max_message()
                ),
            ));
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
        Ok(())
    }

    /// The connection, timeout and sign-in limits (issue: nothing unauthenticated may exhaust
    /// memory, descriptors or the disk).
    fn validate_limits(&self) -> Result<(), ConfigError> {
        let positive = [
            ("http.header_timeout_s", self.http.header_timeout_s as usize),
            (
                "http.request_timeout_s",
                self.http.request_timeout_s as usize,
            ),
            ("http.idle_timeout_s", self.http.idle_timeout_s as usize),
            ("http.max_connections", self.http.max_connections),
            (
                "http.max_connections_per_address",
                self.http.max_connections_per_address,
            ),
            ("broker.max_connections", self.broker.max_connections),
            (
                "broker.max_connections_per_address",
                self.broker.max_connections_per_address,
            ),
            (
                "broker.max_pending_connects",
                self.broker.max_pending_connects,
            ),
            (
                "broker.connect_timeout_ms",
                self.broker.connect_timeout_ms as usize,
            ),
            ("auth.first_lock_s", self.auth.first_lock_s as usize),
            (
                "auth.max_concurrent_hashes",
                self.auth.max_concurrent_hashes,
            ),
            ("auth.token_days", self.auth.token_days as usize),
        ];
        for (field, v) in positive {
            if v == 0 {
                return Err(self.invalid(field, "must be at least 1"));
            }
        }
        if self.auth.max_lock_s < self.auth.first_lock_s {
            return Err(self.invalid("auth.max_lock_s", "must be at least auth.first_lock_s"));
        }
        if self.auth.token_days > 3650 {
            return Err(self.invalid("auth.token_days", "at most 3650 (ten years)"));
        }
        for (i, h) in self.http.allowed_hosts.iter().enumerate() {
            if h.is_empty() || h.contains('/') || h.contains(char::is_whitespace) {
                return Err(self.invalid(
                    format!("http.allowed_hosts[{i}]"),
                    format!("`{h}`: expected a host name such as dcim.example.org"),
                ));
            }
        }
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
    pub fn files(&self) -> crate::base::tls::TlsFiles<'_> {
        crate::base::tls::TlsFiles {
            cert_file: &self.cert_file,
            key_file: &self.key_file,
            client_ca_file: self.client_ca_file.as_deref(),
        }
    }
}

impl BrokerTlsConfig {
    pub fn files(&self) -> crate::base::tls::TlsFiles<'_> {
        crate::base::tls::TlsFiles {
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
    Some(dcim_source_lines::LineIndex::new(text).line(v.span().start))
}

/// 1-based line of a field named as in error messages (`agents[1].password`,
/// `notify.channels[0].url`, `broker.tls.listen`): the line of its value, else of the nearest
/// enclosing table or array entry that is in the text.
pub fn line_of_field(text: &str, field: &str) -> Option<usize> {
    use toml::de::DeValue;
    let root = toml::de::DeTable::parse(text).ok()?;
    let lines = dcim_source_lines::LineIndex::new(text);
    let line = |start: usize| lines.line(start);
    let mut table = root.get_ref();
    let mut found: Option<usize> = None;
    for part in field.split('.') {
        let (key, index) = match part.split_once('[') {
            Some((k, rest)) => (k, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        let Some((k, v)) = table.iter().find(|(k, _)| k.get_ref().as_ref() == key) else {
            return found;
        };
        found = Some(line(k.span().start));
        let mut value = v;
        if let Some(i) = index {
            match value.get_ref() {
                DeValue::Array(items) => match items.get(i) {
                    Some(item) => {
                        value = item;
                        found = Some(line(item.span().start));
                    }
                    None => return found,
                },
                _ => return found,
            }
        }
        match value.get_ref() {
            DeValue::Table(t) => table = t,
            _ => {
                found = Some(line(value.span().start));
                break;
            }
        }
    }
    found
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
    fn a_broker_log_too_small_for_the_largest_message_is_refused() {
        // Hazard: a log that cannot hold what the gate lets in unread drops acknowledged data.
        let err = p("[broker]\nlog_segments = 1\n").unwrap_err().to_string();
        assert!(err.contains("broker.log_segments"), "{err}");
        let err = p("[broker]\nlog_segment_bytes = 100\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("broker.log_segment_bytes"), "{err}");
        let err =
            p("[broker]\nmax_payload = 8388608\nlog_segment_bytes = 4194304\nlog_segments = 3\n")
                .unwrap_err()
                .to_string();
        assert!(
            err.contains("broker.log_segment_bytes") && err.contains("largest messages"),
            "{err}"
        );
        let c = p("[broker]\nmax_payload = 8388608\nlog_segment_bytes = 16777216\n").unwrap();
        assert_eq!(c.broker.log_segments, 4);
        assert_eq!(c.broker.new_points_per_agent_per_min, 100_000);
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
