//! The shared state of the public surfaces' limits (the imperative shell around
//! `auth::limits`, `auth::coalesce` and `conn_limits`): sign-in back-off for HTTP and MQTT,
//! the bounded and coalesced audit rows of failures, the password-hashing gate, the device
//! cookie key and the connection trackers of the HTTP listener and the broker gate.
//!
//! Password hashing is bounded: at most `auth.max_concurrent_hashes` argon2 computations run
//! at once (each takes `auth.argon2_memory_kib`), at most [`MAX_WAITING`] sign-ins wait for
//! one ([`MAX_WAITING_PER_ADDRESS`] per address), the rest are refused at once with 503. A
//! sign-in for a name without an account is hashed against a dummy hash with the same
//! parameters, so the answer takes as long as for a real user (no enumeration by timing).

use crate::config::Config;
use crate::state::auth::coalesce::FailureAudit;
use crate::state::auth::limits::{LimitConfig, LoginLimiter};
use crate::state::conn_limits::{ConnLimits, ConnTracker};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::Semaphore;

/// Sign-ins waiting for a hashing slot, at most.
pub const MAX_WAITING: usize = 64;
/// Sign-ins from one address waiting for a hashing slot, at most.
pub const MAX_WAITING_PER_ADDRESS: usize = 4;
/// Doc kind and id of the device-cookie key (32 random bytes, hex).
pub(crate) const KEY_DOC: (&str, &str) = ("auth", "device-cookie-key");

pub struct Security {
    /// HTTP sign-ins: per address, per user name, per device cookie.
    pub logins: Mutex<LoginLimiter>,
    /// MQTT logins at the broker gate: per address only (an agent id is never locked, or
    /// anyone could cut the agent off by failing its name).
    pub mqtt_logins: Mutex<LoginLimiter>,
    pub(crate) failures: Mutex<FailureAudit>,
    pub(crate) hashing: Semaphore,
    /// argon2 memory of each hashing slot, allocated once and reused (see
    /// `auth::verify_password_in`).
    pub(crate) memory: Mutex<Vec<Vec<argon2::Block>>>,
    pub(crate) waiting: Mutex<HashMap<String, usize>>,
    pub(crate) dummy: OnceLock<String>,
    pub(crate) device_key: tokio::sync::OnceCell<Vec<u8>>,
    pub http_conns: Arc<ConnTracker>,
    pub mqtt_conns: Arc<ConnTracker>,
    /// MQTT connections that have not completed their login.
    pub mqtt_pending: Arc<ConnTracker>,
}

/// The hashing gate is full.
#[derive(Debug)]
pub struct Busy;

/// A place in the hashing gate: waiting, then (after [`HashTicket::run`]) hashing.
pub struct HashTicket<'a> {
    security: &'a Security,
    address: String,
}

impl Drop for HashTicket<'_> {
    fn drop(&mut self) {
        let mut w = self.security.waiting.lock().expect("waiting lock");
        if let Some(n) = w.get_mut(&self.address) {
            *n -= 1;
            if *n == 0 {
                w.remove(&self.address);
            }
        }
    }
}

impl HashTicket<'_> {
    /// Runs `f` (a password hash or verification) on the blocking pool once a hashing slot is
    /// free, if `still_wanted` (asked once the slot is there: a sign-in locked while it waited
    /// is not hashed) says so.
    pub async fn run<R: Send + 'static>(
        self,
        still_wanted: impl FnOnce() -> bool,
        f: impl FnOnce(&mut Vec<argon2::Block>) -> R + Send + 'static,
    ) -> Option<R> {
        let _permit = self.security.hashing.acquire().await.ok()?;
        if !still_wanted() {
            return None;
        }
        // One memory per slot: at most `max_concurrent_hashes` of them exist.
        let mut mem = self
            .security
            .memory
            .lock()
            .expect("hash memory")
            .pop()
            .unwrap_or_default();
        let (r, mem) = tokio::task::spawn_blocking(move || {
            let r = f(&mut mem);
            (r, mem)
        })
        .await
        .ok()?;
        self.security.memory.lock().expect("hash memory").push(mem);
        Some(r)
    }
}

impl Security {
    pub fn new(config: &Config) -> Security {
        let http = LimitConfig {
            user_failures: config.auth.user_failures_before_lock,
            address_failures: config.auth.address_failures_before_lock,
            first_lock_ms: config.auth.first_lock_s as i64 * 1000,
            max_lock_ms: config.auth.max_lock_s as i64 * 1000,
            ..Default::default()
        };
        let mqtt = LimitConfig {
            user_failures: 0,
            address_failures: config.broker.address_failures_before_lock,
            ..http
        };
        let b = &config.broker;
        Security {
            logins: Mutex::new(LoginLimiter::new(http)),
            mqtt_logins: Mutex::new(LoginLimiter::new(mqtt)),
            failures: Mutex::new(FailureAudit::default()),
            hashing: Semaphore::new(config.auth.max_concurrent_hashes.max(1)),
            memory: Mutex::new(Vec::new()),
            waiting: Mutex::new(HashMap::new()),
            dummy: OnceLock::new(),
            device_key: tokio::sync::OnceCell::new(),
            http_conns: ConnTracker::new(ConnLimits {
                total: config.http.max_connections,
                per_address: config.http.max_connections_per_address,
            }),
            mqtt_conns: ConnTracker::new(ConnLimits {
                total: b.max_connections,
                per_address: b.max_connections_per_address,
            }),
            mqtt_pending: ConnTracker::new(ConnLimits {
                total: b.max_pending_connects,
                per_address: (b.max_pending_connects / 4).max(1),
            }),
        }
    }

    /// A place in the hashing gate for a sign-in from `address`, or `Busy`.
    pub fn hash_ticket(&self, address: &str) -> Result<HashTicket<'_>, Busy> {
        let mut w = self.waiting.lock().expect("waiting lock");
        let total: usize = w.values().sum();
        let mine = w.get(address).copied().unwrap_or(0);
        if total >= MAX_WAITING || mine >= MAX_WAITING_PER_ADDRESS {
            return Err(Busy);
        }
        w.insert(address.to_owned(), mine + 1);
        Ok(HashTicket {
            security: self,
            address: address.to_owned(),
        })
    }

    /// A hash with the configured parameters of a password nobody has, to verify against
    /// when the user does not exist (computed once, on the blocking pool by the caller).
    pub fn dummy_hash(&self, memory_kib: u32, iterations: u32) -> String {
        self.dummy
            .get_or_init(|| {
                crate::state::auth::hash_password(
                    &crate::state::auth::new_token(""),
                    memory_kib,
                    iterations,
                )
                .unwrap_or_default()
            })
            .clone()
    }
}

#[cfg(test)]
mod tests {
    /// Hazard: the data directory was 0755 and the database 0644: any local user could read
    /// the password hashes and the sessions' CSRF tokens.
    #[cfg(unix)]
    #[test]
    fn the_data_directory_and_database_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let db = dir.join("dcim.sqlite3");
        assert!(
            crate::base::disk::secure_data_dir(&dir, &db)
                .unwrap()
                .is_empty()
        );
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&db), 0o600);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
        let wal = dir.join("dcim.sqlite3-wal");
        std::fs::write(&wal, b"").unwrap();
        std::fs::set_permissions(&wal, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(
            crate::base::disk::secure_data_dir(&dir, &db).unwrap().len(),
            3
        );
        assert_eq!(mode(&dir), 0o750);
        assert_eq!(mode(&db), 0o600);
        assert_eq!(mode(&wal), 0o600);
    }
}
