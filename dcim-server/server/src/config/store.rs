//! `[store]`: which store the server uses (SQLite in the data directory, or PostgreSQL nodes).

use serde::Deserialize;
use sqlx::postgres::PgConnectOptions;
use std::str::FromStr;
/// `[store]` in the server configuration.
///
/// ```toml
/// [store]
/// backend = "postgres"          # default "sqlite": <data_dir>/dcim.sqlite3
/// # Every node of the cluster; the store uses the one that is primary. TLS and other libpq
/// # options go in the URL (sslmode=verify-full&sslrootcert=/etc/dcim/db-ca.pem).
/// urls = ["postgres://dcim@db-a.site-a:5432/dcim", "postgres://dcim@db-b.site-b:5432/dcim"]
/// password_env = "DCIM_DB_PASSWORD"   # or a password in the URL
/// max_connections = 8
/// connect_timeout_ms = 3000
/// reserve_kb = 8192   # SQLite only: a file of this size is kept in the data directory and
///                     # deleted when the disk fills, so that alarm and journal commits still
///                     # fit; while it is gone, writes that can wait (events stay in the agents'
///                     # spools, agent states, stream marks) are refused; 0 = no reserve.
///                     # PostgreSQL keeps its own disk: a full one is SQLSTATE 53100 there.
/// ```
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    pub backend: StoreBackend,
    pub urls: Vec<String>,
    pub password_env: Option<String>,
    pub max_connections: u32,
    pub connect_timeout_ms: u64,
    pub reserve_kb: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreBackend {
    Sqlite,
    Postgres,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            backend: StoreBackend::Sqlite,
            urls: Vec::new(),
            password_env: None,
            max_connections: 8,
            connect_timeout_ms: 3000,
            reserve_kb: 8192,
        }
    }
}

impl StoreConfig {
    /// Checks the section; `Err((field, message))`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        match self.backend {
            StoreBackend::Sqlite => {
                if !self.urls.is_empty() {
                    return Err((
                        "store.urls".into(),
                        "only used with backend = \"postgres\"".into(),
                    ));
                }
            }
            StoreBackend::Postgres => {
                if self.urls.is_empty() {
                    return Err((
                        "store.urls".into(),
                        "list the PostgreSQL nodes (postgres://user@host:port/database)".into(),
                    ));
                }
                for (i, u) in self.urls.iter().enumerate() {
                    if let Err(e) = PgConnectOptions::from_str(u) {
                        return Err((
                            format!("store.urls[{i}]"),
                            format!("expected postgres://user@host:port/database: {e}"),
                        ));
                    }
                }
            }
        }
        if self.max_connections < 2 {
            return Err(("store.max_connections".into(), "must be at least 2".into()));
        }
        if self.connect_timeout_ms == 0 {
            return Err((
                "store.connect_timeout_ms".into(),
                "must be at least 1".into(),
            ));
        }
        Ok(())
    }
}
