//! Durable storage behind the [`Store`] trait; [`SqliteStore`] is the default implementation,
//! [`PgStore`] (`store/postgres.rs`, `[store] backend = "postgres"`) the multi-site one, with the
//! same schema and semantics. Both hold the leader lease and the replica heartbeats
//! (`store/lease.rs`); the contract is tested against both (`tests/it/store_conformance.rs`).
//!
//! Every method returns only after the transaction is committed (SQLite in WAL mode with
//! `synchronous=FULL`, so a commit is on disk), which is what lets callers acknowledge a write
//! to anyone only after it returned. Times are `i64` milliseconds since the Unix epoch, so that a
//! PostgreSQL implementation can use plain `bigint` columns. The times a store stamps itself
//! (audit rows, migrations, token expiry, SQLite's leases) come from the [`dcim_clock::Clock`]
//! it was opened with ([`open`]; `open` of each backend without one uses the system clock).
//!
//! Reads use `fetch_all`, never `fetch_one`/`fetch_optional` on the pool: sqlx's SQLite driver
//! resets a statement that was not read to the end later, on its worker thread, and until then
//! the pooled connection keeps an old WAL snapshot, so a read right after a commit could miss
//! it (sqlx issue #2543).
//!
//! A full disk: writes go through [`crate::base::disk::DiskGuard`] (a free-space reserve kept for
//! alarm and journal commits; writes that can wait are refused while the disk is full). And no
//! connection goes back to the pool inside a transaction: when SQLite rolls a transaction back
//! by itself (it may on SQLITE_FULL), sqlx's rollback on drop fails ("no transaction is
//! active") and leaves its transaction depth at 1, so the next `begin` on that connection
//! issues a SAVEPOINT, whose rollback ends nothing: the connection keeps the write lock and
//! every other connection gets "database is locked" for as long as it stays in the pool. The
//! pool's `after_release` check closes any connection whose depth is not 0.
//!
//! # Backends, migrations and contents
//!
//! `SqliteStore` is the default (WAL, `synchronous=FULL`, times as i64 ms);
//! `postgres::PgStore` is chosen with `[store] backend = "postgres"`. Both have the same numbered
//! migrations: 1 base tables, 2 alarm journal, 3 the spool epoch in the event and stream-mark keys,
//! 4 token expiry and the sessions-by-user index, 5 leases and replicas (`SCHEMA_VERSION` is the
//! last; a database with a newer schema is refused at open by both). Contents: events (unique on
//! agent + epoch + seq), agent states, telemetry sequence marks (agent, epoch, stream), users,
//! sessions, API tokens, audit log, alarm/incident snapshots, alarm journal, and JSON documents
//! (`put_doc`/`list_docs`) for small state. The alarm engine is stored as one `alarm` document
//! per alarm plus `alarm-engine/state`, in the same transaction as the journal rows they reflect.
//! Both backends hold the leader lease row with its fencing epoch (`try_lease`, `release_lease`;
//! `Batch.fence` makes a batch commit only at that epoch, else `Fenced`) and replica heartbeats
//! (`put_replica`, `list_replicas`), stamped with the database's clock (`lease`). The contract
//! runs against both in `tests/it/store_conformance.rs`.

use crate::base::disk::{DiskGuard, WriteClass};
use dcim_clock::Clock;
use futures_util::future::BoxFuture;
use serde::Serialize;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use std::path::Path;
use std::str::FromStr;

pub type StoreResult<T> = Result<T, sqlx::Error>;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EventRecord {
    pub site: String,
    pub agent: String,
    /// The agent's spool epoch (empty for agents without one): with `agent` and `seq`, the key.
    pub epoch: String,
    pub seq: i64,
    pub id: String,
    pub ts_ms: i64,
    pub device: String,
    pub kind: String,
    pub severity: String,
    pub message: String,
    pub data: serde_json::Value,
    pub test: bool,
    pub received_ms: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AgentRecord {
    pub agent: String,
    pub site: String,
    pub online: bool,
    pub ts_ms: i64,
    pub version: String,
    pub spool_pending: i64,
    pub thinned_samples: i64,
    pub last_seen_ms: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct UserRecord {
    pub name: String,
    pub role: String,
    #[serde(skip)]
    pub password_hash: String,
    pub created_ms: i64,
    pub disabled: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SessionRecord {
    pub token_hash: String,
    pub user: String,
    pub csrf: String,
    pub created_ms: i64,
    pub expires_ms: i64,
}

/// An API token as listed to admins (never the token itself, nor its full hash).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TokenRecord {
    /// The first [`TOKEN_ID_LEN`] hex digits of the token's SHA-256: names it for revocation.
    pub id: String,
    pub user: String,
    pub name: String,
    pub created_ms: i64,
    /// `None`: never expires (tokens made before expiry existed, and the CLI's with `--days 0`).
    pub expires_ms: Option<i64>,
}

/// Hex digits of a token hash shown as its id.
pub const TOKEN_ID_LEN: usize = 16;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AuditRecord {
    pub id: i64,
    pub ts_ms: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: serde_json::Value,
}

#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    pub since_ms: Option<i64>,
    pub agent: Option<String>,
    pub device: Option<String>,
    pub limit: i64,
}

/// A JSON document kept by id (alarms, incidents): the engines own the shape.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DocRecord {
    pub id: String,
    pub updated_ms: i64,
    pub body: serde_json::Value,
}

/// One alarm-journal row: an alarm engine record, kept forever.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct JournalRecord {
    pub id: i64,
    pub ts_ms: i64,
    pub alarm: String,
    pub record: serde_json::Value,
}

/// A stream's high-water mark: `(agent, epoch, stream, seq)`.
pub type StreamMark = (String, String, String, i64);

/// Writes committed together, in one transaction.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// `(kind, doc)` upserts.
    pub docs: Vec<(String, DocRecord)>,
    /// `(ts_ms, alarm, record)` appended to the alarm journal.
    pub journal: Vec<(i64, String, serde_json::Value)>,
    /// `(actor, action, target, detail)` appended to the audit log.
    pub audit: Vec<(String, String, String, serde_json::Value)>,
    /// Multi-site: commit only while this is the current lease epoch (a deposed leader's late
    /// write fails with [`Fenced`] and changes nothing). `None`: unconditional.
    pub fence: Option<Fence>,
}

/// Everything the server persists. Implementations commit before they return.
pub trait Store: Send + Sync + 'static {
    /// Inserts the events not already stored (unique on `(agent, epoch, seq)`); returns how
    /// many were new.
    fn insert_events<'a>(&'a self, events: &'a [EventRecord]) -> BoxFuture<'a, StoreResult<u64>>;
    fn list_events<'a>(&'a self, q: &'a EventQuery)
    -> BoxFuture<'a, StoreResult<Vec<EventRecord>>>;
    /// Highest stored event sequence per agent and epoch: `(agent, epoch, seq)`.
    fn event_high_water<'a>(&'a self) -> BoxFuture<'a, StoreResult<Vec<(String, String, i64)>>>;
    fn upsert_agent<'a>(&'a self, a: &'a AgentRecord) -> BoxFuture<'a, StoreResult<()>>;
    fn list_agents<'a>(&'a self) -> BoxFuture<'a, StoreResult<Vec<AgentRecord>>>;
    /// Stream sequence high-water marks (telemetry): `(agent, epoch, stream, seq)`.
    fn save_stream_seq<'a>(&'a self, marks: &'a [StreamMark]) -> BoxFuture<'a, StoreResult<()>>;
    fn stream_seqs<'a>(&'a self) -> BoxFuture<'a, StoreResult<Vec<StreamMark>>>;

    fn count_users<'a>(&'a self) -> BoxFuture<'a, StoreResult<i64>>;
    /// Creates a user; returns false when the name is taken.
    fn create_user<'a>(&'a self, u: &'a UserRecord) -> BoxFuture<'a, StoreResult<bool>>;
    fn set_password<'a>(&'a self, name: &'a str, hash: &'a str)
    -> BoxFuture<'a, StoreResult<bool>>;
    /// Disables or enables a user; false when there is no such user. A disabled user's
    /// sessions and tokens are refused (`api::authorize`); the caller deletes the sessions.
    fn set_user_disabled<'a>(
        &'a self,
        name: &'a str,
        disabled: bool,
    ) -> BoxFuture<'a, StoreResult<bool>>;
    fn get_user<'a>(&'a self, name: &'a str) -> BoxFuture<'a, StoreResult<Option<UserRecord>>>;
    fn list_users<'a>(&'a self) -> BoxFuture<'a, StoreResult<Vec<UserRecord>>>;

    fn create_session<'a>(&'a self, s: &'a SessionRecord) -> BoxFuture<'a, StoreResult<()>>;
    fn get_session<'a>(
        &'a self,
        token_hash: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<SessionRecord>>>;
    fn delete_session<'a>(&'a self, token_hash: &'a str) -> BoxFuture<'a, StoreResult<()>>;
    /// Deletes every session of `user` except the one whose hash is `keep`; returns how many.
    fn delete_sessions_of<'a>(
        &'a self,
        user: &'a str,
        keep: Option<&'a str>,
    ) -> BoxFuture<'a, StoreResult<u64>>;
    /// API tokens: `(token_hash, user, name, created_ms)`, never expiring.
    fn create_token<'a>(
        &'a self,
        token_hash: &'a str,
        user: &'a str,
        name: &'a str,
        now_ms: i64,
    ) -> BoxFuture<'a, StoreResult<()>> {
        self.create_token_until(token_hash, user, name, now_ms, None)
    }
    /// An API token that is refused from `expires_ms` on (`None`: never expires).
    fn create_token_until<'a>(
        &'a self,
        token_hash: &'a str,
        user: &'a str,
        name: &'a str,
        now_ms: i64,
        expires_ms: Option<i64>,
    ) -> BoxFuture<'a, StoreResult<()>>;
    /// The user of a token that exists and has not expired at `now_ms`.
    fn token_user<'a>(&'a self, token_hash: &'a str) -> BoxFuture<'a, StoreResult<Option<String>>>;
    /// The tokens of `user` (all users when `None`), oldest first.
    fn list_tokens<'a>(
        &'a self,
        user: Option<&'a str>,
    ) -> BoxFuture<'a, StoreResult<Vec<TokenRecord>>>;
    /// Deletes the token of `user` whose id ([`TokenRecord::id`]) is `id`; whether one was.
    fn revoke_token<'a>(&'a self, user: &'a str, id: &'a str) -> BoxFuture<'a, StoreResult<bool>>;

    fn audit<'a>(
        &'a self,
        ts_ms: i64,
        actor: &'a str,
        action: &'a str,
        target: &'a str,
        detail: &'a serde_json::Value,
    ) -> BoxFuture<'a, StoreResult<i64>>;
    fn list_audit<'a>(
        &'a self,
        since_id: i64,
        limit: i64,
    ) -> BoxFuture<'a, StoreResult<Vec<AuditRecord>>>;

    /// Documents by kind (`alarm`, `incident`, ...), written with an audit record in one
    /// transaction so that a change is never stored without who made it.
    fn put_doc<'a>(
        &'a self,
        kind: &'a str,
        doc: &'a DocRecord,
        audit: Option<(&'a str, &'a str, &'a serde_json::Value)>,
    ) -> BoxFuture<'a, StoreResult<()>>;
    fn list_docs<'a>(&'a self, kind: &'a str) -> BoxFuture<'a, StoreResult<Vec<DocRecord>>>;
    /// Commits docs, journal rows and audit records in one transaction; returns the audit ids.
    fn commit_batch<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, StoreResult<Vec<i64>>>;
    /// Alarm journal rows, oldest first; optionally of one alarm.
    fn list_journal<'a>(
        &'a self,
        alarm: Option<&'a str>,
        since_id: i64,
        limit: i64,
    ) -> BoxFuture<'a, StoreResult<Vec<JournalRecord>>>;

    /// Whether the store is in disk-full mode (see [`crate::base::disk`]).
    fn disk_full(&self) -> bool {
        false
    }

    /// The guard of the store's disk, when it has one.
    fn disk(&self) -> Option<&DiskGuard> {
        None
    }

    /// Highest alarm-journal id (0 when empty): where a reader that starts now begins.
    fn journal_high_water<'a>(&'a self) -> BoxFuture<'a, StoreResult<i64>>;

    // Multi-site (see `lease.rs`): a leader lease with a fencing epoch, and the replicas'
    // heartbeats. Times of these rows are the database's clock, so replicas whose clocks differ
    // still agree on who holds the lease.

    /// Takes or renews lease `name` for `holder` for `ttl_ms`, in one transaction: renewed when
    /// `holder` holds it and it has not expired; taken with the next epoch when it is free or
    /// expired; otherwise left as it is. Returns the lease as it is after the call.
    fn try_lease<'a>(
        &'a self,
        name: &'a str,
        holder: &'a str,
        info: &'a serde_json::Value,
        ttl_ms: i64,
    ) -> BoxFuture<'a, StoreResult<LeaseRecord>>;
    /// Ends `holder`'s lease at once (a graceful stop), so another replica need not wait for
    /// it to expire. No effect when someone else holds it.
    fn release_lease<'a>(
        &'a self,
        name: &'a str,
        holder: &'a str,
    ) -> BoxFuture<'a, StoreResult<()>>;
    /// A replica's heartbeat and view, stamped with the database's clock; returns that time.
    fn put_replica<'a>(
        &'a self,
        id: &'a str,
        body: &'a serde_json::Value,
    ) -> BoxFuture<'a, StoreResult<i64>>;
    /// Every replica's last heartbeat, and the database's clock now.
    fn list_replicas<'a>(&'a self) -> BoxFuture<'a, StoreResult<(Vec<ReplicaRecord>, i64)>>;

    /// Closes the connections (on shutdown).
    fn close<'a>(&'a self) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
}

mod lease;
pub mod postgres;
pub use lease::{Fence, Fenced, LeaseRecord, ReplicaRecord, fenced};
pub use postgres::{PgStore, StoreBackend, StoreConfig, open};

/// Schema migrations, applied in order and recorded in `schema_migrations`.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        r#"
CREATE TABLE events (
    agent TEXT NOT NULL, seq INTEGER NOT NULL, site TEXT NOT NULL, id TEXT NOT NULL,
    ts_ms INTEGER NOT NULL, device TEXT NOT NULL, kind TEXT NOT NULL, severity TEXT NOT NULL,
    message TEXT NOT NULL, data TEXT NOT NULL, test INTEGER NOT NULL, received_ms INTEGER NOT NULL,
    PRIMARY KEY (agent, seq)
);
CREATE INDEX events_ts ON events (ts_ms);
CREATE INDEX events_received ON events (received_ms);
CREATE TABLE agents (
    agent TEXT PRIMARY KEY, site TEXT NOT NULL, online INTEGER NOT NULL, ts_ms INTEGER NOT NULL,
    version TEXT NOT NULL, spool_pending INTEGER NOT NULL, thinned_samples INTEGER NOT NULL,
    last_seen_ms INTEGER NOT NULL
);
CREATE TABLE stream_seq (
    agent TEXT NOT NULL, stream TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (agent, stream)
);
CREATE TABLE users (
    name TEXT PRIMARY KEY, role TEXT NOT NULL, password_hash TEXT NOT NULL,
    created_ms INTEGER NOT NULL, disabled INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY, user TEXT NOT NULL REFERENCES users(name), csrf TEXT NOT NULL,
    created_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL
);
CREATE TABLE api_tokens (
    token_hash TEXT PRIMARY KEY, user TEXT NOT NULL REFERENCES users(name), name TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE TABLE audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT, ts_ms INTEGER NOT NULL, actor TEXT NOT NULL,
    action TEXT NOT NULL, target TEXT NOT NULL, detail TEXT NOT NULL
);
CREATE TABLE docs (
    kind TEXT NOT NULL, id TEXT NOT NULL, updated_ms INTEGER NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (kind, id)
);
"#,
    ),
    (
        2,
        r#"
CREATE TABLE alarm_journal (
    id INTEGER PRIMARY KEY AUTOINCREMENT, ts_ms INTEGER NOT NULL, alarm TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX alarm_journal_alarm ON alarm_journal (alarm, id);
"#,
    ),
    (
        3,
        r#"
CREATE TABLE events_v3 (
    agent TEXT NOT NULL, epoch TEXT NOT NULL DEFAULT '', seq INTEGER NOT NULL, site TEXT NOT NULL,
    id TEXT NOT NULL, ts_ms INTEGER NOT NULL, device TEXT NOT NULL, kind TEXT NOT NULL,
    severity TEXT NOT NULL, message TEXT NOT NULL, data TEXT NOT NULL, test INTEGER NOT NULL,
    received_ms INTEGER NOT NULL,
    PRIMARY KEY (agent, epoch, seq)
);
INSERT INTO events_v3 (agent, epoch, seq, site, id, ts_ms, device, kind, severity, message, data, test, received_ms)
    SELECT agent, '', seq, site, id, ts_ms, device, kind, severity, message, data, test, received_ms FROM events;
DROP TABLE events;
ALTER TABLE events_v3 RENAME TO events;
CREATE INDEX events_ts ON events (ts_ms);
CREATE INDEX events_received ON events (received_ms);
CREATE TABLE stream_seq_v3 (
    agent TEXT NOT NULL, epoch TEXT NOT NULL DEFAULT '', stream TEXT NOT NULL, seq INTEGER NOT NULL,
    PRIMARY KEY (agent, epoch, stream)
);
INSERT INTO stream_seq_v3 (agent, epoch, stream, seq) SELECT agent, '', stream, seq FROM stream_seq;
DROP TABLE stream_seq;
ALTER TABLE stream_seq_v3 RENAME TO stream_seq;
"#,
    ),
    (
        4,
        r#"
ALTER TABLE api_tokens ADD COLUMN expires_ms INTEGER;
CREATE INDEX sessions_user ON sessions (user);
"#,
    ),
    (5, lease::SQLITE_MIGRATION),
];

/// The newest schema this binary knows. A database whose schema is newer (written by a newer
/// `dcim-server`) is refused at open: an older binary would misread or damage it.
pub const SCHEMA_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].0;

pub struct SqliteStore {
    pool: SqlitePool,
    disk: DiskGuard,
    clock: Clock,
}

/// The database file in a data directory.
pub fn db_path(dir: &Path) -> std::path::PathBuf {
    dir.join("dcim.sqlite3")
}

/// Whether a store error means the file system holding the database is full (SQLITE_FULL, or
/// ENOSPC from the operating system). Such a write is not committed and may be retried once
/// space returns; SQLite keeps the database consistent meanwhile.
pub fn is_disk_full(e: &sqlx::Error) -> bool {
    const SQLITE_FULL: i64 = 13;
    const ENOSPC: i32 = 28;
    if postgres::is_disk_full(e) {
        return true;
    }
    match e {
        sqlx::Error::Database(db) => {
            db.code()
                .and_then(|c| c.parse::<i64>().ok())
                .is_some_and(|c| c & 0xff == SQLITE_FULL)
                || db.message().contains("disk is full")
        }
        sqlx::Error::Io(io) => {
            io.kind() == std::io::ErrorKind::StorageFull || io.raw_os_error() == Some(ENOSPC)
        }
        _ => false,
    }
}

impl SqliteStore {
    /// Opens (creating if needed) `dir/dcim.sqlite3` and applies the migrations, without a
    /// free-space reserve and on the system clock (tools and tests; the server uses
    /// [`SqliteStore::open_with_reserve`]).
    pub async fn open(dir: &Path) -> StoreResult<SqliteStore> {
        Self::open_with_reserve(dir, 0, Clock::system()).await
    }

    /// Opens the store with a free-space reserve of `reserve_bytes` in `dir` (see
    /// [`crate::base::disk`]), stamping its own times from `clock`.
    pub async fn open_with_reserve(
        dir: &Path,
        reserve_bytes: u64,
        clock: Clock,
    ) -> StoreResult<SqliteStore> {
        std::fs::create_dir_all(dir).map_err(sqlx::Error::Io)?;
        let disk = DiskGuard::new(dir, reserve_bytes);
        let path = db_path(dir);
        // Private: the database holds password hashes and session CSRF tokens.
        for c in crate::base::disk::secure_data_dir(dir, &path).map_err(sqlx::Error::Io)? {
            tracing::warn!("permissions tightened: {c}");
        }
        let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(std::time::Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            // A connection left in a transaction holds the write lock: never reuse it (see the
            // module docs).
            .after_release(|conn, _| {
                Box::pin(async move {
                    use sqlx::Connection;
                    Ok(!conn.is_in_transaction())
                })
            })
            .connect_with(opts)
            .await?;
        let store = SqliteStore { pool, disk, clock };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_ms INTEGER NOT NULL)",
        )
        .execute(&mut *tx)
        .await?;
        let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations")
            .fetch_all(&mut *tx)
            .await?;
        if let Some(newest) = applied.iter().copied().max()
            && newest > SCHEMA_VERSION
        {
            return Err(sqlx::Error::Protocol(format!(
                "the database schema is version {newest}, newer than this dcim-server knows ({SCHEMA_VERSION}): it was written by a newer version; install that version or restore a backup made by this one"
            )));
        }
        for (version, sql) in MIGRATIONS {
            if applied.contains(version) {
                continue;
            }
            sqlx::raw_sql(sql).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO schema_migrations (version, applied_ms) VALUES (?, ?)")
                .bind(version)
                .bind(self.clock.now_ms())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Runs a write through the disk guard: refused at once when it can wait and the disk is
    /// full; an essential write that failed for lack of space is tried once more after the
    /// reserve was released.
    async fn guarded<T, Fut>(
        &self,
        class: WriteClass,
        what: &str,
        f: impl Fn() -> Fut,
    ) -> StoreResult<T>
    where
        Fut: std::future::Future<Output = StoreResult<T>>,
    {
        self.disk.admit(class)?;
        match f().await {
            Err(e) if is_disk_full(&e) => {
                let released = self.disk.on_disk_full(what);
                if released && class == WriteClass::Essential {
                    f().await
                } else {
                    Err(e)
                }
            }
            r => r,
        }
    }
}

/// A JSON text column; text that does not parse (written by an older version) reads as null.
fn json_column(r: &sqlx::sqlite::SqliteRow, column: &str) -> serde_json::Value {
    serde_json::from_str(r.get::<&str, _>(column)).unwrap_or(serde_json::Value::Null)
}

fn event_from_row(r: &sqlx::sqlite::SqliteRow) -> EventRecord {
    EventRecord {
        site: r.get("site"),
        agent: r.get("agent"),
        epoch: r.get("epoch"),
        seq: r.get("seq"),
        id: r.get("id"),
        ts_ms: r.get("ts_ms"),
        device: r.get("device"),
        kind: r.get("kind"),
        severity: r.get("severity"),
        message: r.get("message"),
        data: json_column(r, "data"),
        test: r.get::<i64, _>("test") != 0,
        received_ms: r.get("received_ms"),
    }
}

fn user_from_row(r: &sqlx::sqlite::SqliteRow) -> UserRecord {
    UserRecord {
        name: r.get("name"),
        role: r.get("role"),
        password_hash: r.get("password_hash"),
        created_ms: r.get("created_ms"),
        disabled: r.get::<i64, _>("disabled") != 0,
    }
}

impl Store for SqliteStore {
    fn commit_batch<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, StoreResult<Vec<i64>>> {
        Box::pin(self.guarded(
            WriteClass::Essential,
            "committing alarm records",
            move || self.commit_batch_impl(batch),
        ))
    }

    fn disk_full(&self) -> bool {
        self.disk.is_full()
    }

    fn disk(&self) -> Option<&DiskGuard> {
        Some(&self.disk)
    }

    fn try_lease<'a>(
        &'a self,
        name: &'a str,
        holder: &'a str,
        info: &'a serde_json::Value,
        ttl_ms: i64,
    ) -> BoxFuture<'a, StoreResult<LeaseRecord>> {
        Box::pin(lease::sqlite_try_lease(
            &self.pool,
            name,
            holder,
            info,
            ttl_ms,
            self.clock.now_ms(),
        ))
    }

    fn release_lease<'a>(
        &'a self,
        name: &'a str,
        holder: &'a str,
    ) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(lease::sqlite_release_lease(&self.pool, name, holder))
    }

    fn put_replica<'a>(
        &'a self,
        id: &'a str,
        body: &'a serde_json::Value,
    ) -> BoxFuture<'a, StoreResult<i64>> {
        Box::pin(lease::sqlite_put_replica(
            &self.pool,
            id,
            body,
            self.clock.now_ms(),
        ))
    }

    fn list_replicas<'a>(&'a self) -> BoxFuture<'a, StoreResult<(Vec<ReplicaRecord>, i64)>> {
        Box::pin(lease::sqlite_list_replicas(&self.pool, self.clock.now_ms()))
    }

    fn close<'a>(&'a self) -> BoxFuture<'a, ()> {
        Box::pin(self.pool.close())
    }

    fn journal_high_water<'a>(&'a self) -> BoxFuture<'a, StoreResult<i64>> {
        Box::pin(async move {
            let v: Vec<i64> = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM alarm_journal")
                .fetch_all(&self.pool)
                .await?;
            Ok(v.first().copied().unwrap_or(0))
        })
    }

    fn list_journal<'a>(
        &'a self,
        alarm: Option<&'a str>,
        since_id: i64,
        limit: i64,
    ) -> BoxFuture<'a, StoreResult<Vec<JournalRecord>>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT * FROM alarm_journal WHERE id > ? AND (? IS NULL OR alarm = ?) ORDER BY id LIMIT ?",
            )
            .bind(since_id)
            .bind(alarm)
            .bind(alarm)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
            Ok(rows
                .iter()
                .map(|r| JournalRecord {
                    id: r.get("id"),
                    ts_ms: r.get("ts_ms"),
                    alarm: r.get("alarm"),
                    record: json_column(r, "record"),
                })
                .collect())
        })
    }

    fn insert_events<'a>(&'a self, events: &'a [EventRecord]) -> BoxFuture<'a, StoreResult<u64>> {
        Box::pin(self.guarded(WriteClass::Deferrable, "storing agent events", move || async move {
            let mut tx = self.pool.begin().await?;
            let mut inserted = 0;
            for e in events {
                let r = sqlx::query(
                    "INSERT OR IGNORE INTO events (agent, epoch, seq, site, id, ts_ms, device, kind, severity, message, data, test, received_ms) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                )
                .bind(&e.agent)
                .bind(&e.epoch)
                .bind(e.seq)
                .bind(&e.site)
                .bind(&e.id)
                .bind(e.ts_ms)
                .bind(&e.device)
                .bind(&e.kind)
                .bind(&e.severity)
                .bind(&e.message)
                .bind(e.data.to_string())
                .bind(e.test as i64)
                .bind(e.received_ms)
                .execute(&mut *tx)
                .await?;
                inserted += r.rows_affected();
            }
            tx.commit().await?;
            Ok(inserted)
        }))
    }

    fn list_events<'a>(
        &'a self,
        q: &'a EventQuery,
    ) -> BoxFuture<'a, StoreResult<Vec<EventRecord>>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT * FROM events WHERE ts_ms >= ? AND (? IS NULL OR agent = ?) AND (? IS NULL OR device = ?) ORDER BY ts_ms DESC, agent, seq DESC LIMIT ?",
            )
            .bind(q.since_ms.unwrap_or(i64::MIN))
            .bind(&q.agent)
            .bind(&q.agent)
            .bind(&q.device)
            .bind(&q.device)
            .bind(q.limit)
            .fetch_all(&self.pool)
            .await?;
            Ok(rows.iter().map(event_from_row).collect())
        })
    }

    fn event_high_water<'a>(&'a self) -> BoxFuture<'a, StoreResult<Vec<(String, String, i64)>>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT agent, epoch, MAX(seq) AS seq FROM events GROUP BY agent, epoch",
            )
            .fetch_all(&self.pool)
            .await?;
            Ok(rows
                .iter()
                .map(|r| (r.get("agent"), r.get("epoch"), r.get("seq")))
                .collect())
        })
    }

    fn upsert_agent<'a>(&'a self, a: &'a AgentRecord) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(self.guarded(WriteClass::Deferrable, "storing an agent state", move || async move {
            sqlx::query(
                "INSERT INTO agents (agent, site, online, ts_ms, version, spool_pending, thinned_samples, last_seen_ms) VALUES (?,?,?,?,?,?,?,?)
                 ON CONFLICT(agent) DO UPDATE SET site=excluded.site, online=excluded.online, ts_ms=excluded.ts_ms, version=excluded.version,
                 spool_pending=excluded.spool_pending, thinned_samples=excluded.thinned_samples, last_seen_ms=excluded.last_seen_ms",
            )
            .bind(&a.agent)
            .bind(&a.site)
            .bind(a.online as i64)
            .bind(a.ts_ms)
            .bind(&a.version)
            .bind(a.spool_pending)
            .bind(a.thinned_samples)
            .bind(a.last_seen_ms)
            .execute(&self.pool)
            .await?;
            Ok(())
        }))
    }

    fn list_agents<'a>(&'a self) -> BoxFuture<'a, StoreResult<Vec<AgentRecord>>> {
        Box::pin(async move {
            let rows = sqlx::query("SELECT * FROM agents ORDER BY agent")
                .fetch_all(&self.pool)
                .await?;
            Ok(rows
                .iter()
                .map(|r| AgentRecord {
                    agent: r.get("agent"),
                    site: r.get("site"),
                    online: r.get::<i64, _>("online") != 0,
                    ts_ms: r.get("ts_ms"),
                    version: r.get("version"),
                    spool_pending: r.get("spool_pending"),
                    thinned_samples: r.get("thinned_samples"),
                    last_seen_ms: r.get("last_seen_ms"),
                })
                .collect())
        })
    }

    fn save_stream_seq<'a>(&'a self, marks: &'a [StreamMark]) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(self.guarded(WriteClass::Deferrable, "saving stream marks", move || async move {
            let mut tx = self.pool.begin().await?;
            for (agent, epoch, stream, seq) in marks {
                sqlx::query(
                    "INSERT INTO stream_seq (agent, epoch, stream, seq) VALUES (?,?,?,?) ON CONFLICT(agent, epoch, stream) DO UPDATE SET seq = MAX(seq, excluded.seq)",
                )
                .bind(agent)
                .bind(epoch)
                .bind(stream)
                .bind(seq)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await
        }))
    }

    fn stream_seqs<'a>(&'a self) -> BoxFuture<'a, StoreResult<Vec<StreamMark>>> {
        Box::pin(async move {
            let rows = sqlx::query("SELECT agent, epoch, stream, seq FROM stream_seq")
                .fetch_all(&self.pool)
                .await?;
            Ok(rows
                .iter()
                .map(|r| {
                    (
                        r.get("agent"),
                        r.get("epoch"),
                        r.get("stream"),
                        r.get("seq"),
                    )
                })
                .collect())
        })
    }

    fn count_users<'a>(&'a self) -> BoxFuture<'a, StoreResult<i64>> {
        Box::pin(async move {
            let n: Vec<i64> = sqlx::query_scalar("SELECT COUNT(*) FROM users")
                .fetch_all(&self.pool)
                .await?;
            Ok(n.first().copied().unwrap_or(0))
        })
    }

    fn create_user<'a>(&'a self, u: &'a UserRecord) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(self.guarded(WriteClass::Essential, "creating a user", move || async move {
            let r = sqlx::query(
                "INSERT OR IGNORE INTO users (name, role, password_hash, created_ms, disabled) VALUES (?,?,?,?,?)",
            )
            .bind(&u.name)
            .bind(&u.role)
            .bind(&u.password_hash)
            .bind(u.created_ms)
            .bind(u.disabled as i64)
            .execute(&self.pool)
            .await?;
            Ok(r.rows_affected() == 1)
        }))
    }

    fn set_password<'a>(
        &'a self,
        name: &'a str,
        hash: &'a str,
    ) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(self.guarded(
            WriteClass::Essential,
            "setting a password",
            move || async move {
                let r = sqlx::query("UPDATE users SET password_hash = ? WHERE name = ?")
                    .bind(hash)
                    .bind(name)
                    .execute(&self.pool)
                    .await?;
                Ok(r.rows_affected() == 1)
            },
        ))
    }

    fn set_user_disabled<'a>(
        &'a self,
        name: &'a str,
        disabled: bool,
    ) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(self.guarded(
            WriteClass::Essential,
            "disabling or enabling a user",
            move || async move {
                let r = sqlx::query("UPDATE users SET disabled = ? WHERE name = ?")
                    .bind(disabled as i64)
                    .bind(name)
                    .execute(&self.pool)
                    .await?;
                Ok(r.rows_affected() == 1)
            },
        ))
    }

    fn get_user<'a>(&'a self, name: &'a str) -> BoxFuture<'a, StoreResult<Option<UserRecord>>> {
        Box::pin(async move {
            let rows = sqlx::query("SELECT * FROM users WHERE name = ?")
                .bind(name)
                .fetch_all(&self.pool)
                .await?;
            Ok(rows.first().map(user_from_row))
        })
    }

    fn list_users<'a>(&'a self) -> BoxFuture<'a, StoreResult<Vec<UserRecord>>> {
        Box::pin(async move {
            let rows = sqlx::query("SELECT * FROM users ORDER BY name")
                .fetch_all(&self.pool)
                .await?;
            Ok(rows.iter().map(user_from_row).collect())
        })
    }

    fn create_session<'a>(&'a self, s: &'a SessionRecord) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(self.guarded(WriteClass::Essential, "creating a session", move || async move {
            let mut tx = self.pool.begin().await?;
            sqlx::query("DELETE FROM sessions WHERE expires_ms < ?")
                .bind(s.created_ms)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO sessions (token_hash, user, csrf, created_ms, expires_ms) VALUES (?,?,?,?,?)",
            )
            .bind(&s.token_hash)
            .bind(&s.user)
            .bind(&s.csrf)
            .bind(s.created_ms)
            .bind(s.expires_ms)
            .execute(&mut *tx)
            .await?;
            tx.commit().await
        }))
    }

    fn get_session<'a>(
        &'a self,
        token_hash: &'a str,
    ) -> BoxFuture<'a, StoreResult<Option<SessionRecord>>> {
        Box::pin(async move {
            let rows = sqlx::query("SELECT * FROM sessions WHERE token_hash = ?")
                .bind(token_hash)
                .fetch_all(&self.pool)
                .await?;
            Ok(rows.into_iter().next().map(|r| SessionRecord {
                token_hash: r.get("token_hash"),
                user: r.get("user"),
                csrf: r.get("csrf"),
                created_ms: r.get("created_ms"),
                expires_ms: r.get("expires_ms"),
            }))
        })
    }

    fn delete_session<'a>(&'a self, token_hash: &'a str) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(self.guarded(
            WriteClass::Essential,
            "deleting a session",
            move || async move {
                sqlx::query("DELETE FROM sessions WHERE token_hash = ?")
                    .bind(token_hash)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            },
        ))
    }

    fn delete_sessions_of<'a>(
        &'a self,
        user: &'a str,
        keep: Option<&'a str>,
    ) -> BoxFuture<'a, StoreResult<u64>> {
        Box::pin(self.guarded(
            WriteClass::Essential,
            "ending a user's sessions",
            move || async move {
                let r = sqlx::query(
                    "DELETE FROM sessions WHERE user = ? AND (? IS NULL OR token_hash <> ?)",
                )
                .bind(user)
                .bind(keep)
                .bind(keep)
                .execute(&self.pool)
                .await?;
                Ok(r.rows_affected())
            },
        ))
    }

    fn create_token_until<'a>(
        &'a self,
        token_hash: &'a str,
        user: &'a str,
        name: &'a str,
        now_ms: i64,
        expires_ms: Option<i64>,
    ) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(self.guarded(
            WriteClass::Essential,
            "creating an API token",
            move || async move {
                sqlx::query(
                    "INSERT INTO api_tokens (token_hash, user, name, created_ms, expires_ms) VALUES (?,?,?,?,?)",
                )
                .bind(token_hash)
                .bind(user)
                .bind(name)
                .bind(now_ms)
                .bind(expires_ms)
                .execute(&self.pool)
                .await?;
                Ok(())
            },
        ))
    }

    fn token_user<'a>(&'a self, token_hash: &'a str) -> BoxFuture<'a, StoreResult<Option<String>>> {
        Box::pin(async move {
            let users: Vec<String> = sqlx::query_scalar(
                "SELECT user FROM api_tokens WHERE token_hash = ? AND (expires_ms IS NULL OR expires_ms > ?)",
            )
            .bind(token_hash)
            .bind(self.clock.now_ms())
            .fetch_all(&self.pool)
            .await?;
            Ok(users.into_iter().next())
        })
    }

    fn list_tokens<'a>(
        &'a self,
        user: Option<&'a str>,
    ) -> BoxFuture<'a, StoreResult<Vec<TokenRecord>>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT token_hash, user, name, created_ms, expires_ms FROM api_tokens WHERE (? IS NULL OR user = ?) ORDER BY created_ms, token_hash",
            )
            .bind(user)
            .bind(user)
            .fetch_all(&self.pool)
            .await?;
            Ok(rows
                .iter()
                .map(|r| TokenRecord {
                    id: r.get::<String, _>("token_hash")[..TOKEN_ID_LEN].to_string(),
                    user: r.get("user"),
                    name: r.get("name"),
                    created_ms: r.get("created_ms"),
                    expires_ms: r.get("expires_ms"),
                })
                .collect())
        })
    }

    fn revoke_token<'a>(&'a self, user: &'a str, id: &'a str) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(async move {
            if id.len() != TOKEN_ID_LEN || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Ok(false);
            }
            let id = id.to_ascii_lowercase();
            self.guarded(WriteClass::Essential, "revoking an API token", || async {
                let r = sqlx::query(
                    "DELETE FROM api_tokens WHERE user = ? AND substr(token_hash, 1, ?) = ?",
                )
                .bind(user)
                .bind(TOKEN_ID_LEN as i64)
                .bind(&id)
                .execute(&self.pool)
                .await?;
                Ok(r.rows_affected() > 0)
            })
            .await
        })
    }

    fn audit<'a>(
        &'a self,
        ts_ms: i64,
        actor: &'a str,
        action: &'a str,
        target: &'a str,
        detail: &'a serde_json::Value,
    ) -> BoxFuture<'a, StoreResult<i64>> {
        Box::pin(self.guarded(
            WriteClass::Essential,
            "writing an audit record",
            move || async move {
                let r = sqlx::query(
                    "INSERT INTO audit (ts_ms, actor, action, target, detail) VALUES (?,?,?,?,?)",
                )
                .bind(ts_ms)
                .bind(actor)
                .bind(action)
                .bind(target)
                .bind(detail.to_string())
                .execute(&self.pool)
                .await?;
                Ok(r.last_insert_rowid())
            },
        ))
    }

    fn list_audit<'a>(
        &'a self,
        since_id: i64,
        limit: i64,
    ) -> BoxFuture<'a, StoreResult<Vec<AuditRecord>>> {
        Box::pin(async move {
            let rows = sqlx::query("SELECT * FROM audit WHERE id > ? ORDER BY id LIMIT ?")
                .bind(since_id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
            Ok(rows
                .iter()
                .map(|r| AuditRecord {
                    id: r.get("id"),
                    ts_ms: r.get("ts_ms"),
                    actor: r.get("actor"),
                    action: r.get("action"),
                    target: r.get("target"),
                    detail: json_column(r, "detail"),
                })
                .collect())
        })
    }

    fn put_doc<'a>(
        &'a self,
        kind: &'a str,
        doc: &'a DocRecord,
        audit: Option<(&'a str, &'a str, &'a serde_json::Value)>,
    ) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(self.guarded(WriteClass::Essential, "writing a document", move || async move {
            let mut tx = self.pool.begin().await?;
            sqlx::query(
                "INSERT INTO docs (kind, id, updated_ms, body) VALUES (?,?,?,?) ON CONFLICT(kind, id) DO UPDATE SET updated_ms=excluded.updated_ms, body=excluded.body",
            )
            .bind(kind)
            .bind(&doc.id)
            .bind(doc.updated_ms)
            .bind(doc.body.to_string())
            .execute(&mut *tx)
            .await?;
            if let Some((actor, action, detail)) = audit {
                sqlx::query(
                    "INSERT INTO audit (ts_ms, actor, action, target, detail) VALUES (?,?,?,?,?)",
                )
                .bind(doc.updated_ms)
                .bind(actor)
                .bind(action)
                .bind(format!("{kind}/{}", doc.id))
                .bind(detail.to_string())
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await
        }))
    }

    fn list_docs<'a>(&'a self, kind: &'a str) -> BoxFuture<'a, StoreResult<Vec<DocRecord>>> {
        Box::pin(async move {
            let rows =
                sqlx::query("SELECT id, updated_ms, body FROM docs WHERE kind = ? ORDER BY id")
                    .bind(kind)
                    .fetch_all(&self.pool)
                    .await?;
            Ok(rows
                .iter()
                .map(|r| DocRecord {
                    id: r.get("id"),
                    updated_ms: r.get("updated_ms"),
                    body: json_column(r, "body"),
                })
                .collect())
        })
    }
}

impl SqliteStore {
    async fn commit_batch_impl(&self, batch: &Batch) -> StoreResult<Vec<i64>> {
        let mut tx = self.pool.begin().await?;
        if let Some(f) = &batch.fence {
            lease::sqlite_check_fence(&mut tx, f).await?;
        }
        for (kind, doc) in &batch.docs {
            sqlx::query(
                "INSERT INTO docs (kind, id, updated_ms, body) VALUES (?,?,?,?) ON CONFLICT(kind, id) DO UPDATE SET updated_ms=excluded.updated_ms, body=excluded.body",
            )
            .bind(kind)
            .bind(&doc.id)
            .bind(doc.updated_ms)
            .bind(doc.body.to_string())
            .execute(&mut *tx)
            .await?;
        }
        for (ts, alarm, record) in &batch.journal {
            sqlx::query("INSERT INTO alarm_journal (ts_ms, alarm, record) VALUES (?,?,?)")
                .bind(ts)
                .bind(alarm)
                .bind(record.to_string())
                .execute(&mut *tx)
                .await?;
        }
        let mut ids = Vec::new();
        let now = self.clock.now_ms();
        for (actor, action, target, detail) in &batch.audit {
            let r = sqlx::query(
                "INSERT INTO audit (ts_ms, actor, action, target, detail) VALUES (?,?,?,?,?)",
            )
            .bind(now)
            .bind(actor)
            .bind(action)
            .bind(target)
            .bind(detail.to_string())
            .execute(&mut *tx)
            .await?;
            ids.push(r.last_insert_rowid());
        }
        tx.commit().await?;
        Ok(ids)
    }
}

/// Doc kind of one alarm instance (id = alarm id), rewritten with every record about it.
pub const ALARM_DOC: &str = "alarm";
/// Doc kind of the rest of the alarm engine's snapshot (one doc, id `state`): maintenance set,
/// record sequence, chattering counters and flood window.
pub const ALARM_ENGINE_DOC: &str = "alarm-engine";

/// The `alarm-engine/state` doc for a batch (see [`load_alarm_snapshot`]). Activation times
/// older than the chattering window are left out (they can no longer count), so the doc stays
/// small however many alarms once activated.
pub fn alarm_engine_doc(
    engine: &dcim_alarms::Engine,
    now_ms: i64,
) -> serde_json::Result<(String, DocRecord)> {
    let mut meta = engine.snapshot_meta();
    let window = engine.config.chatter_window_ms;
    meta.chatter.retain(|_, times| {
        times.retain(|&t| now_ms - t < window);
        !times.is_empty()
    });
    Ok((
        ALARM_ENGINE_DOC.into(),
        DocRecord {
            id: "state".into(),
            updated_ms: now_ms,
            body: serde_json::to_value(meta)?,
        },
    ))
}

/// The alarm engine's snapshot as last committed: the `alarm-engine/state` doc completed with
/// every `alarm` doc. `None` on a fresh database. Alarm rows that no longer decode are skipped
/// with a warning (the journal keeps their history).
pub async fn load_alarm_snapshot(
    store: &dyn Store,
) -> anyhow::Result<Option<dcim_alarms::Snapshot>> {
    use anyhow::Context;
    let meta = store
        .list_docs(ALARM_ENGINE_DOC)
        .await?
        .into_iter()
        .find(|d| d.id == "state");
    let rows = store.list_docs(ALARM_DOC).await?;
    if meta.is_none() && rows.is_empty() {
        return Ok(None);
    }
    let snap: dcim_alarms::Snapshot = match meta {
        Some(d) => serde_json::from_value(d.body).context("stored alarm engine state")?,
        // Written by a version that kept only the alarm rows.
        None => dcim_alarms::Snapshot {
            alarms: Vec::new(),
            maintenance: Vec::new(),
            seq: 0,
            chatter: Default::default(),
            annunciations: Vec::new(),
            flooding: None,
        },
    };
    let mut alarms = Vec::with_capacity(rows.len());
    for d in rows {
        match serde_json::from_value::<dcim_alarms::Alarm>(d.body) {
            Ok(a) => alarms.push(a),
            Err(e) => tracing::warn!(alarm = %d.id, "stored alarm does not decode, skipped: {e}"),
        }
    }
    Ok(Some(snap.with_alarms(alarms)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(agent: &str, seq: i64) -> EventRecord {
        EventRecord {
            site: "s".into(),
            agent: agent.into(),
            epoch: String::new(),
            seq,
            id: format!("{agent}:{seq}"),
            ts_ms: 1000 + seq,
            device: "rack-1".into(),
            kind: "fire.stage".into(),
            severity: "alarm".into(),
            message: "m".into(),
            data: serde_json::json!({"stage": 1}),
            test: false,
            received_ms: 5,
        }
    }

    /// Hazard: a store that read the system clock itself would expire leases and tokens and
    /// stamp audit rows by real time whatever clock the server runs on: a failover test would
    /// have to sleep out a lease, and one on a manual clock would see a lease expire (or not)
    /// by the machine's speed instead of by the clock it set.
    #[tokio::test]
    async fn the_store_stamps_leases_tokens_and_audit_rows_from_its_clock() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Clock::manual(1_000_000);
        let s = SqliteStore::open_with_reserve(dir.path(), 0, clock.clone())
            .await
            .unwrap();
        let info = serde_json::json!({});
        let a = s.try_lease("leader", "a", &info, 10_000).await.unwrap();
        assert!(a.held_by("a"));
        assert_eq!((a.now_ms, a.expires_ms), (1_000_000, 1_010_000));
        std::thread::sleep(std::time::Duration::from_millis(20));
        clock.advance(std::time::Duration::from_millis(9_999));
        let still = s.try_lease("leader", "b", &info, 10_000).await.unwrap();
        assert!(
            still.held_by("a"),
            "taken before the clock reached the expiry"
        );
        clock.advance(std::time::Duration::from_millis(1));
        let b = s.try_lease("leader", "b", &info, 10_000).await.unwrap();
        assert!(b.held_by("b"));
        assert_eq!(b.epoch, a.epoch + 1);
        assert_eq!(s.put_replica("r1", &info).await.unwrap(), 1_010_000);
        assert_eq!(s.list_replicas().await.unwrap().1, 1_010_000);

        s.create_user(&UserRecord {
            name: "u".into(),
            role: "viewer".into(),
            password_hash: "x".into(),
            created_ms: 0,
            disabled: false,
        })
        .await
        .unwrap();
        s.create_token_until("h", "u", "t", 0, Some(1_020_000))
            .await
            .unwrap();
        assert_eq!(s.token_user("h").await.unwrap().as_deref(), Some("u"));
        clock.advance(std::time::Duration::from_millis(10_000));
        assert_eq!(
            s.token_user("h").await.unwrap(),
            None,
            "expired by the clock"
        );

        s.commit_batch(&Batch {
            audit: vec![("op".into(), "x".into(), "y".into(), info.clone())],
            ..Default::default()
        })
        .await
        .unwrap();
        let audit = s.list_audit(0, 10).await.unwrap();
        assert_eq!(audit.last().unwrap().ts_ms, 1_020_000);
    }

    #[tokio::test]
    async fn events_are_unique_per_agent_and_seq_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = SqliteStore::open(dir.path()).await.unwrap();
            assert_eq!(s.insert_events(&[ev("a", 1), ev("a", 2)]).await.unwrap(), 2);
            assert_eq!(s.insert_events(&[ev("a", 2), ev("a", 3)]).await.unwrap(), 1);
            assert_eq!(s.insert_events(&[ev("b", 1)]).await.unwrap(), 1);
            s.close().await;
        }
        let s = SqliteStore::open(dir.path()).await.unwrap();
        let all = s
            .list_events(&EventQuery {
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(all.len(), 4);
        assert_eq!(all[0].data, serde_json::json!({"stage": 1}));
        let mut hw = s.event_high_water().await.unwrap();
        hw.sort();
        assert_eq!(
            hw,
            vec![
                ("a".into(), String::new(), 3),
                ("b".into(), String::new(), 1)
            ]
        );
        // A new epoch of the same agent is a new stream: its seq 1 is not a duplicate.
        let mut e = ev("a", 1);
        e.epoch = "e2".into();
        assert_eq!(s.insert_events(&[e]).await.unwrap(), 1);
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&s.pool)
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&s.pool)
            .await
            .unwrap();
        assert_eq!(sync, 2, "synchronous=FULL");
    }

    #[tokio::test]
    async fn a_database_from_before_epochs_keeps_its_events_and_marks() {
        let dir = tempfile::tempdir().unwrap();
        {
            let opts = SqliteConnectOptions::from_str(&format!(
                "sqlite://{}",
                db_path(dir.path()).display()
            ))
            .unwrap()
            .create_if_missing(true);
            let pool = SqlitePoolOptions::new().connect_with(opts).await.unwrap();
            sqlx::raw_sql("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_ms INTEGER NOT NULL)")
                .execute(&pool).await.unwrap();
            for (v, sql) in &MIGRATIONS[..2] {
                sqlx::raw_sql(sql).execute(&pool).await.unwrap();
                sqlx::query("INSERT INTO schema_migrations VALUES (?, 0)")
                    .bind(v)
                    .execute(&pool)
                    .await
                    .unwrap();
            }
            sqlx::raw_sql(
                "INSERT INTO events VALUES ('a', 7, 's', 'a:7', 1, 'd', 'k', 'alarm', 'm', '{}', 0, 2);
                 INSERT INTO stream_seq VALUES ('a', 'telemetry', 99);",
            )
            .execute(&pool)
            .await
            .unwrap();
            pool.close().await;
        }
        let s = SqliteStore::open(dir.path()).await.unwrap();
        assert_eq!(
            s.event_high_water().await.unwrap(),
            vec![("a".to_string(), String::new(), 7)]
        );
        assert_eq!(
            s.stream_seqs().await.unwrap(),
            vec![("a".into(), String::new(), "telemetry".into(), 99)]
        );
        // The old stream's seq 7 is a duplicate; the same seq in a new epoch is not.
        let mut e = ev("a", 7);
        assert_eq!(s.insert_events(&[e.clone()]).await.unwrap(), 0);
        e.epoch = "e1".into();
        assert_eq!(s.insert_events(&[e]).await.unwrap(), 1);
    }

    #[tokio::test]
    async fn doc_writes_carry_their_audit_record() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(dir.path()).await.unwrap();
        let doc = DocRecord {
            id: "a1".into(),
            updated_ms: 7,
            body: serde_json::json!({"state": "acked"}),
        };
        s.put_doc(
            "alarm",
            &doc,
            Some(("op", "alarm.ack", &serde_json::json!({}))),
        )
        .await
        .unwrap();
        assert_eq!(s.list_docs("alarm").await.unwrap(), vec![doc]);
        let audit = s.list_audit(0, 10).await.unwrap();
        assert_eq!(audit.len(), 1);
        assert_eq!(audit[0].target, "alarm/a1");
    }

    #[tokio::test]
    async fn alarm_engine_snapshot_survives_a_round_trip_through_the_store() {
        use dcim_alarms::{Action, Engine, EngineConfig, Rule};
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(dir.path()).await.unwrap();
        assert!(load_alarm_snapshot(&s).await.unwrap().is_none());
        let mut e = Engine::new(Rule::defaults(), EngineConfig::default()).unwrap();
        let t = 1_800_000_000_000;
        let sample = |device: &str, on: bool, ts: i64| dcim_points::Sample {
            device: device.into(),
            point: "on_battery".into(),
            role: dcim_points::Role::new("ups.on_battery").unwrap(),
            labels: Default::default(),
            value: Some(dcim_points::Value::Bool(on)),
            unit: String::new(),
            quality: dcim_points::Quality::Good,
            ts_ms: ts,
        };
        let mut recs = e.on_sample(&sample("ups-1", true, t), t);
        recs.extend(e.on_sample(&sample("ups-2", true, t), t));
        recs.extend(
            e.act("ups-on-battery:ups-1", Action::Ack, "op", t + 1)
                .unwrap(),
        );
        let shelve = Action::Shelve {
            until_ms: t + 60_000,
            reason: "test".into(),
        };
        recs.extend(e.act("ups-on-battery:ups-2", shelve, "op", t + 2).unwrap());
        recs.extend(e.set_maintenance("ups-9", true, "op", t + 3));
        // As the server commits: the touched alarm rows and the engine doc, in one batch.
        let mut batch = Batch::default();
        for a in e.alarms() {
            batch.docs.push((
                ALARM_DOC.into(),
                DocRecord {
                    id: a.id.clone(),
                    updated_ms: t,
                    body: serde_json::to_value(a).unwrap(),
                },
            ));
        }
        batch.docs.push(alarm_engine_doc(&e, t).unwrap());
        // Activation times outside the chattering window are not kept.
        let (_, late) = alarm_engine_doc(&e, t + e.config.chatter_window_ms).unwrap();
        assert_eq!(late.body["chatter"], serde_json::json!({}));
        s.commit_batch(&batch).await.unwrap();
        s.close().await;

        let s = SqliteStore::open(dir.path()).await.unwrap();
        let snap = load_alarm_snapshot(&s).await.unwrap().unwrap();
        assert_eq!(snap, e.snapshot());
        let mut e2 = Engine::new(Rule::defaults(), EngineConfig::default()).unwrap();
        e2.restore(snap);
        assert_eq!(e2.snapshot(), e.snapshot());
        // The same conditions again raise nothing new.
        assert!(
            e2.on_sample(&sample("ups-1", true, t + 5), t + 5)
                .is_empty()
        );
        assert!(
            e2.on_sample(&sample("ups-2", true, t + 5), t + 5)
                .is_empty()
        );
    }
}
