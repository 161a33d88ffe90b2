//! The PostgreSQL store ([`PgStore`]) for multi-site deployments, and the choice of backend
//! (`[store]` in the server configuration, [`open`]).
//!
//! Same contract as the SQLite store: every method returns only after its transaction is
//! committed, and with PostgreSQL under Patroni in synchronous mode a commit returns only once
//! the synchronous standby (the other site) has it, so what the server acknowledges survives
//! the loss of a site. Same schema and semantics (times as `bigint` milliseconds, JSON as text,
//! the same unique keys), written in PostgreSQL's dialect; migrations are numbered like
//! SQLite's and applied under an advisory lock, so two replicas starting together do not race.
//!
//! Which node: `[store] urls` lists every PostgreSQL node. The store connects to the one that is
//! a primary (`pg_is_in_recovery()` false); every new pooled connection checks it again, and an
//! error that means "this node is gone or no longer primary" (connection errors, admin
//! shutdown, read-only transaction) makes the store look for the primary again. The failed
//! call returns its error (callers retry: events are idempotent, alarm records are carried into
//! the next commit), so nothing is acknowledged that was not committed.
//!
//! Order of ids: journal and audit rows are read by cursor (`id > n`). PostgreSQL hands out
//! identity values at insert time, not commit time, so two concurrent transactions could
//! commit their ids out of order and a reader could step over one; every transaction that
//! inserts such rows therefore takes one transaction-level advisory lock first, which makes
//! those inserts commit in id order (SQLite serialises writers anyway).
//!
//! A full disk: PostgreSQL keeps its own disk (and on another host); a write that fails for
//! lack of space is SQLSTATE 53100, which [`super::is_disk_full`] recognises, so the callers
//! treat it as SQLite's SQLITE_FULL (events stay in the agents' spools, alarm commits are
//! retried). The free-space reserve file (`[store] reserve_kb`) is SQLite's only.

use super::lease::{Fence, Fenced, LeaseRecord, ReplicaRecord};
use super::{
    AgentRecord, AuditRecord, Batch, DocRecord, EventQuery, EventRecord, JournalRecord,
    SessionRecord, SqliteStore, Store, StoreResult, StreamMark, TOKEN_ID_LEN, TokenRecord,
    UserRecord,
};
use futures_util::future::BoxFuture;
use serde::Deserialize;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{Connection, PgPool, Postgres, Row, Transaction};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

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

/// Opens the configured store: SQLite in `data_dir` (the default), or PostgreSQL.
pub async fn open(config: &crate::config::Config) -> anyhow::Result<Arc<dyn Store>> {
    use anyhow::Context;
    Ok(match config.store.backend {
        StoreBackend::Sqlite => Arc::new(
            SqliteStore::open_with_reserve(&config.data_dir, config.store.reserve_kb * 1024)
                .await
                .with_context(|| {
                    format!("opening the database in {}", config.data_dir.display())
                })?,
        ),
        StoreBackend::Postgres => {
            let s = Arc::new(PgStore::open(&config.store).await?);
            s.watch_nodes(Duration::from_secs(2));
            s
        }
    })
}

/// Schema migrations: the same numbers and tables as SQLite's, in PostgreSQL's dialect.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        r#"
CREATE TABLE events (
    agent TEXT NOT NULL, seq BIGINT NOT NULL, site TEXT NOT NULL, id TEXT NOT NULL,
    ts_ms BIGINT NOT NULL, device TEXT NOT NULL, kind TEXT NOT NULL, severity TEXT NOT NULL,
    message TEXT NOT NULL, data TEXT NOT NULL, test BOOLEAN NOT NULL, received_ms BIGINT NOT NULL,
    PRIMARY KEY (agent, seq)
);
CREATE INDEX events_ts ON events (ts_ms);
CREATE INDEX events_received ON events (received_ms);
CREATE TABLE agents (
    agent TEXT PRIMARY KEY, site TEXT NOT NULL, online BOOLEAN NOT NULL, ts_ms BIGINT NOT NULL,
    version TEXT NOT NULL, spool_pending BIGINT NOT NULL, thinned_samples BIGINT NOT NULL,
    last_seen_ms BIGINT NOT NULL
);
CREATE TABLE stream_seq (
    agent TEXT NOT NULL, stream TEXT NOT NULL, seq BIGINT NOT NULL, PRIMARY KEY (agent, stream)
);
CREATE TABLE users (
    name TEXT PRIMARY KEY, role TEXT NOT NULL, password_hash TEXT NOT NULL,
    created_ms BIGINT NOT NULL, disabled BOOLEAN NOT NULL DEFAULT false
);
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY, "user" TEXT NOT NULL REFERENCES users(name), csrf TEXT NOT NULL,
    created_ms BIGINT NOT NULL, expires_ms BIGINT NOT NULL
);
CREATE TABLE api_tokens (
    token_hash TEXT PRIMARY KEY, "user" TEXT NOT NULL REFERENCES users(name), name TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE TABLE audit (
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, ts_ms BIGINT NOT NULL,
    actor TEXT NOT NULL, action TEXT NOT NULL, target TEXT NOT NULL, detail TEXT NOT NULL
);
CREATE TABLE docs (
    kind TEXT NOT NULL, id TEXT NOT NULL, updated_ms BIGINT NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (kind, id)
);
"#,
    ),
    (
        2,
        r#"
CREATE TABLE alarm_journal (
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, ts_ms BIGINT NOT NULL,
    alarm TEXT NOT NULL, record TEXT NOT NULL
);
CREATE INDEX alarm_journal_alarm ON alarm_journal (alarm, id);
"#,
    ),
    (
        3,
        // The agent's spool epoch in the key of events and stream marks (rows from before
        // epochs get the empty epoch, as in SQLite's migration 3).
        r#"
ALTER TABLE events ADD COLUMN epoch TEXT NOT NULL DEFAULT '';
ALTER TABLE events DROP CONSTRAINT events_pkey;
ALTER TABLE events ADD PRIMARY KEY (agent, epoch, seq);
ALTER TABLE stream_seq ADD COLUMN epoch TEXT NOT NULL DEFAULT '';
ALTER TABLE stream_seq DROP CONSTRAINT stream_seq_pkey;
ALTER TABLE stream_seq ADD PRIMARY KEY (agent, epoch, stream);
"#,
    ),
    (
        4,
        r#"
ALTER TABLE api_tokens ADD COLUMN expires_ms BIGINT;
CREATE INDEX sessions_user ON sessions ("user");
"#,
    ),
    (
        5,
        r#"
CREATE TABLE leases (
    name TEXT PRIMARY KEY, holder TEXT NOT NULL, epoch BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL, info TEXT NOT NULL
);
CREATE TABLE replicas (
    id TEXT PRIMARY KEY, seen_ms BIGINT NOT NULL, body TEXT NOT NULL
);
"#,
    ),
];

// Both backends know the same schema versions: a PostgreSQL database and a SQLite one of the
// same binary are never at different versions (backup, restore and the refusal of newer
// schemas rely on one number).
const _: () = assert!(MIGRATIONS[MIGRATIONS.len() - 1].0 == super::SCHEMA_VERSION);

/// Advisory lock keys (arbitrary constants of this product).
const MIGRATION_LOCK: i64 = 0x6463_696d_0001;
const ID_ORDER_LOCK: i64 = 0x6463_696d_0002;

/// The database's clock in milliseconds.
const DB_NOW: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

/// The PostgreSQL store.
pub struct PgStore {
    nodes: Vec<(String, PgConnectOptions)>,
    opts: StoreConfig,
    /// The pool of the node in use and its index in `nodes`.
    current: std::sync::RwLock<(usize, PgPool)>,
    /// One search for the primary at a time.
    probing: tokio::sync::Mutex<()>,
}

/// Whether an error means the node is gone, unreachable, or no longer a primary.
fn wrong_node(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|c| {
            // 08: connection exception; 57P01-57P03: shutdown, cannot connect now;
            // 25006: read-only transaction (a standby, or a demoted primary)
            c.starts_with("08") || c.starts_with("57P") || c == "25006"
        }),
        _ => false,
    }
}

/// Whether a PostgreSQL error means the disk is full (SQLSTATE 53100).
pub fn is_disk_full(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some("53100"))
}

fn json(r: &PgRow, column: &str) -> serde_json::Value {
    serde_json::from_str(r.get::<&str, _>(column)).unwrap_or(serde_json::Value::Null)
}

fn event_from_row(r: &PgRow) -> EventRecord {
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
        data: json(r, "data"),
        test: r.get("test"),
        received_ms: r.get("received_ms"),
    }
}

fn user_from_row(r: &PgRow) -> UserRecord {
    UserRecord {
        name: r.get("name"),
        role: r.get("role"),
        password_hash: r.get("password_hash"),
        created_ms: r.get("created_ms"),
        disabled: r.get("disabled"),
    }
}

fn pool_for(opts: &StoreConfig, node: &PgConnectOptions) -> PgPool {
    PgPoolOptions::new()
        .max_connections(opts.max_connections)
        .acquire_timeout(Duration::from_millis(opts.connect_timeout_ms))
        // A pooled connection to a node that became a standby would fail every write.
        .after_connect(|conn, _| {
            Box::pin(async move {
                let standby: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
                    .fetch_one(&mut *conn)
                    .await?;
                if standby {
                    return Err(sqlx::Error::Protocol(
                        "connected to a standby, not the primary".into(),
                    ));
                }
                Ok(())
            })
        })
        .connect_lazy_with(node.clone())
}

impl PgStore {
    /// Connects to the primary among `config.urls` and applies the migrations.
    pub async fn open(config: &StoreConfig) -> anyhow::Result<PgStore> {
        config
            .validate()
            .map_err(|(f, m)| anyhow::anyhow!("{f}: {m}"))?;
        let password = match &config.password_env {
            Some(var) => Some(std::env::var(var).map_err(|_| {
                anyhow::anyhow!("store.password_env: environment variable {var} is not set")
            })?),
            None => None,
        };
        let mut nodes = Vec::new();
        for u in &config.urls {
            let mut o = PgConnectOptions::from_str(u)?.application_name("dcim-server");
            if let Some(p) = &password {
                o = o.password(p);
            }
            let label = format!("{}:{}", o.get_host(), o.get_port());
            nodes.push((label, o));
        }
        let first = pool_for(config, &nodes[0].1);
        let store = PgStore {
            nodes,
            opts: config.clone(),
            current: std::sync::RwLock::new((0, first)),
            probing: tokio::sync::Mutex::new(()),
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            match store.find_primary().await {
                Ok(()) => break,
                Err(e) if tokio::time::Instant::now() < deadline => {
                    tracing::warn!("PostgreSQL: {e}; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => return Err(e),
            }
        }
        store.migrate().await?;
        Ok(store)
    }

    /// The node in use (`host:port`).
    pub fn node(&self) -> String {
        let i = self.current.read().expect("pool lock").0;
        self.nodes[i].0.clone()
    }

    fn pool(&self) -> PgPool {
        self.current.read().expect("pool lock").1.clone()
    }

    /// Looks for the primary among the nodes and switches to it. Every node is asked; when
    /// more than one says it is a primary (an old primary still running after a failover,
    /// e.g. its Patroni died without a watchdog to stop it), the one on the newest timeline is
    /// the real one: a promotion always starts a new timeline.
    async fn find_primary(&self) -> anyhow::Result<()> {
        let _one = self.probing.lock().await;
        let current = self.current.read().expect("pool lock").0;
        let timeout = Duration::from_millis(self.opts.connect_timeout_ms);
        let probes = self.nodes.iter().map(|(label, opts)| async move {
            let probe = async {
                let mut c = sqlx::PgConnection::connect_with(opts).await?;
                let row: (bool, Option<i32>) = sqlx::query_as(
                    "SELECT pg_is_in_recovery(), CASE WHEN pg_is_in_recovery() THEN NULL ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END",
                )
                .fetch_one(&mut c)
                .await?;
                let _ = c.close().await;
                Ok::<_, sqlx::Error>(row)
            };
            (label, tokio::time::timeout(timeout, probe).await)
        });
        let results = futures_util::future::join_all(probes).await;
        let mut why = Vec::new();
        let mut best: Option<(usize, i32)> = None;
        for (i, (label, r)) in results.into_iter().enumerate() {
            match r {
                Ok(Ok((false, timeline))) => {
                    let tl = timeline.unwrap_or(0);
                    // Newest timeline wins; on a tie the node in use stays.
                    if best.is_none_or(|(b, btl)| {
                        tl > btl || (tl == btl && i == current && b != current)
                    }) {
                        best = Some((i, tl));
                    }
                    why.push(format!("{label}: primary on timeline {tl}"));
                }
                Ok(Ok((true, _))) => why.push(format!("{label}: a standby")),
                Ok(Err(e)) => why.push(format!("{label}: {e}")),
                Err(_) => why.push(format!("{label}: no answer in {timeout:?}")),
            }
        }
        let Some((i, tl)) = best else {
            anyhow::bail!("no PostgreSQL primary among the nodes ({})", why.join("; "));
        };
        let mut cur = self.current.write().expect("pool lock");
        if cur.0 != i {
            tracing::warn!(node = %self.nodes[i].0, timeline = tl, nodes = %why.join("; "), "PostgreSQL: switching to the primary");
            let old = std::mem::replace(&mut *cur, (i, pool_for(&self.opts, &self.nodes[i].1)));
            drop(cur);
            old.1.close_event();
            tokio::spawn(async move { old.1.close().await });
        }
        Ok(())
    }

    /// With several nodes, every `period` asks all of them which is the primary, so that a
    /// failover is followed even when the node in use does not fail loudly (a surviving old
    /// primary whose synchronous commits hang).
    fn watch_nodes(self: &Arc<Self>, period: Duration) {
        if self.nodes.len() < 2 {
            return;
        }
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                let Some(store) = weak.upgrade() else { return };
                if store.pool().is_closed() {
                    return;
                }
                if let Err(e) = store.find_primary().await {
                    tracing::warn!("PostgreSQL: {e}");
                }
            }
        });
    }

    /// Called with a failed call's error: looks for the primary again when the error says
    /// the node is gone or no longer primary. The error is returned either way.
    async fn check(&self, e: sqlx::Error) -> sqlx::Error {
        if wrong_node(&e) {
            tracing::warn!(node = %self.node(), "PostgreSQL: {e}; looking for the primary");
            if let Err(p) = self.find_primary().await {
                tracing::error!("{p}");
            }
        }
        e
    }

    async fn migrate(&self) -> anyhow::Result<()> {
        let pool = self.pool();
        let mut tx = pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_ms BIGINT NOT NULL)",
        )
        .execute(&mut *tx)
        .await?;
        let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations")
            .fetch_all(&mut *tx)
            .await?;
        if let Some(newest) = applied.iter().copied().max()
            && newest > super::SCHEMA_VERSION
        {
            anyhow::bail!(
                "the database schema is version {newest}, newer than this dcim-server knows ({}): it was written by a newer version; install that version or restore a backup made by this one",
                super::SCHEMA_VERSION
            );
        }
        for (version, sql) in MIGRATIONS {
            if applied.contains(version) {
                continue;
            }
            sqlx::raw_sql(sql).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO schema_migrations (version, applied_ms) VALUES ($1, $2)")
                .bind(version)
                .bind(crate::now_ms())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Runs `f` on the pool in use; on a "wrong node" error looks for the primary again.
    async fn run<T, F, Fut>(&self, f: F) -> StoreResult<T>
    where
        F: FnOnce(PgPool) -> Fut,
        Fut: std::future::Future<Output = StoreResult<T>>,
    {
        match f(self.pool()).await {
            Ok(v) => Ok(v),
            Err(e) => Err(self.check(e).await),
        }
    }
}

async fn check_fence(tx: &mut Transaction<'_, Postgres>, f: &Fence) -> StoreResult<()> {
    let rows = sqlx::query("SELECT holder, epoch FROM leases WHERE name = $1 FOR SHARE")
        .bind(&f.lease)
        .fetch_all(&mut **tx)
        .await?;
    let current = rows
        .first()
        .map(|r| (r.get::<String, _>("holder"), r.get::<i64, _>("epoch")));
    match &current {
        Some((h, e)) if *h == f.holder && *e == f.epoch => Ok(()),
        _ => Err(Fenced {
            fence: f.clone(),
            current,
        }
        .into_error()),
    }
}

async fn order_ids(tx: &mut Transaction<'_, Postgres>) -> StoreResult<()> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(ID_ORDER_LOCK)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

const UPSERT_DOC: &str = "INSERT INTO docs (kind, id, updated_ms, body) VALUES ($1,$2,$3,$4) ON CONFLICT (kind, id) DO UPDATE SET updated_ms = excluded.updated_ms, body = excluded.body";
const INSERT_AUDIT: &str =
    "INSERT INTO audit (ts_ms, actor, action, target, detail) VALUES ($1,$2,$3,$4,$5) RETURNING id";

async fn commit_batch(pool: PgPool, batch: &Batch) -> StoreResult<Vec<i64>> {
    let mut tx = pool.begin().await?;
    if let Some(f) = &batch.fence {
        check_fence(&mut tx, f).await?;
    }
    if !batch.journal.is_empty() || !batch.audit.is_empty() {
        order_ids(&mut tx).await?;
    }
    for (kind, doc) in &batch.docs {
        sqlx::query(UPSERT_DOC)
            .bind(kind)
            .bind(&doc.id)
            .bind(doc.updated_ms)
            .bind(doc.body.to_string())
            .execute(&mut *tx)
            .await?;
    }
    for (ts, alarm, record) in &batch.journal {
        sqlx::query("INSERT INTO alarm_journal (ts_ms, alarm, record) VALUES ($1,$2,$3)")
            .bind(ts)
            .bind(alarm)
            .bind(record.to_string())
            .execute(&mut *tx)
            .await?;
    }
    let mut ids = Vec::new();
    let now = crate::now_ms();
    for (actor, action, target, detail) in &batch.audit {
        let id: i64 = sqlx::query_scalar(INSERT_AUDIT)
            .bind(now)
            .bind(actor)
            .bind(action)
            .bind(target)
            .bind(detail.to_string())
            .fetch_one(&mut *tx)
            .await?;
        ids.push(id);
    }
    tx.commit().await?;
    Ok(ids)
}

impl Store for PgStore {
    fn insert_events<'a>(&'a self, events: &'a [EventRecord]) -> BoxFuture<'a, StoreResult<u64>> {
        Box::pin(self.run(move |pool| async move {
            let mut tx = pool.begin().await?;
            let mut inserted = 0;
            for e in events {
                let r = sqlx::query(
                    "INSERT INTO events (agent, epoch, seq, site, id, ts_ms, device, kind, severity, message, data, test, received_ms) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13) ON CONFLICT (agent, epoch, seq) DO NOTHING",
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
                .bind(e.test)
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
        Box::pin(self.run(move |pool| async move {
            let rows = sqlx::query(
                r#"SELECT * FROM events WHERE ts_ms >= $1 AND ($2::text IS NULL OR agent = $2) AND ($3::text IS NULL OR device = $3) ORDER BY ts_ms DESC, agent COLLATE "C", seq DESC LIMIT $4"#,
            )
            .bind(q.since_ms.unwrap_or(i64::MIN))
            .bind(&q.agent)
            .bind(&q.device)
            .bind(q.limit)
            .fetch_all(&pool)
            .await?;
            Ok(rows.iter().map(event_from_row).collect())
        }))
    }

    fn event_high_water<'a>(&'a self) -> BoxFuture<'a, StoreResult<Vec<(String, String, i64)>>> {
        Box::pin(self.run(move |pool| async move {
            let rows = sqlx::query(
                "SELECT agent, epoch, MAX(seq) AS seq FROM events GROUP BY agent, epoch",
            )
            .fetch_all(&pool)
            .await?;
            Ok(rows
                .iter()
                .map(|r| (r.get("agent"), r.get("epoch"), r.get("seq")))
                .collect())
        }))
    }

    fn upsert_agent<'a>(&'a self, a: &'a AgentRecord) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(self.run(move |pool| async move {
            sqlx::query(
                "INSERT INTO agents (agent, site, online, ts_ms, version, spool_pending, thinned_samples, last_seen_ms) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)
                 ON CONFLICT (agent) DO UPDATE SET site = excluded.site, online = excluded.online, ts_ms = excluded.ts_ms, version = excluded.version,
                 spool_pending = excluded.spool_pending, thinned_samples = excluded.thinned_samples, last_seen_ms = excluded.last_seen_ms",
            )
            .bind(&a.agent)
            .bind(&a.site)
            .bind(a.online)
            .bind(a.ts_ms)
            .bind(&a.version)
            .bind(a.spool_pending)
            .bind(a.thinned_samples)
            .bind(a.last_seen_ms)
            .execute(&pool)
            .await?;
            Ok(())
        }))
    }

    fn list_agents<'a>(&'a self) -> BoxFuture<'a, StoreResult<Vec<AgentRecord>>> {
        Box::pin(self.run(move |pool| async move {
            let rows = sqlx::query(r#"SELECT * FROM agents ORDER BY agent COLLATE "C""#)
                .fetch_all(&pool)
                .await?;
            Ok(rows
                .iter()
                .map(|r| AgentRecord {
                    agent: r.get("agent"),
                    site: r.get("site"),
                    online: r.get("online"),
                    ts_ms: r.get("ts_ms"),
                    version: r.get("version"),
                    spool_pending: r.get("spool_pending"),
                    thinned_samples: r.get("thinned_samples"),
                    last_seen_ms: r.get("last_seen_ms"),
                })
                .collect())
        }))
    }

    fn save_stream_seq<'a>(&'a self, marks: &'a [StreamMark]) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(self.run(move |pool| async move {
            let mut tx = pool.begin().await?;
            for (agent, epoch, stream, seq) in marks {
                sqlx::query(
                    "INSERT INTO stream_seq (agent, epoch, stream, seq) VALUES ($1,$2,$3,$4) ON CONFLICT (agent, epoch, stream) DO UPDATE SET seq = GREATEST(stream_seq.seq, excluded.seq)",
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
        Box::pin(self.run(move |pool| async move {
            let rows = sqlx::query("SELECT agent, epoch, stream, seq FROM stream_seq")
                .fetch_all(&pool)
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
        }))
    }

    fn count_users<'a>(&'a self) -> BoxFuture<'a, StoreResult<i64>> {
        Box::pin(self.run(move |pool| async move {
            sqlx::query_scalar("SELECT COUNT(*) FROM users")
                .fetch_one(&pool)
                .await
        }))
    }

    fn create_user<'a>(&'a self, u: &'a UserRecord) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(self.run(move |pool| async move {
            let r = sqlx::query(
                "INSERT INTO users (name, role, password_hash, created_ms, disabled) VALUES ($1,$2,$3,$4,$5) ON CONFLICT (name) DO NOTHING",
            )
            .bind(&u.name)
            .bind(&u.role)
            .bind(&u.password_hash)
            .bind(u.created_ms)
            .bind(u.disabled)
            .execute(&pool)
            .await?;
            Ok(r.rows_affected() == 1)
        }))
    }

    fn set_password<'a>(
        &'a self,
        name: &'a str,
        hash: &'a str,
    ) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(self.run(move |pool| async move {
            let r = sqlx::query("UPDATE users SET password_hash = $1 WHERE name = $2")
                .bind(hash)
                .bind(name)
                .execute(&pool)
                .await?;
            Ok(r.rows_affected() == 1)
        }))
    }

    fn set_user_disabled<'a>(
        &'a self,
        name: &'a str,
        disabled: bool,
    ) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(self.run(move |pool| async move {
            let r = sqlx::query("UPDATE users SET disabled = $1 WHERE name = $2")
                .bind(disabled)
                .bind(name)
                .execute(&pool)
                .await?;
            Ok(r.rows_affected() == 1)
        }))
    }

    fn get_user<'a>(&'a self, name: &'a str) -> BoxFuture<'a, StoreResult<Option<UserRecord>>> {
        Box::pin(self.run(move |pool| async move {
            let rows = sqlx::query("SELECT * FROM users WHERE name = $1")
                .bind(name)
                .fetch_all(&pool)
                .await?;
            Ok(rows.first().map(user_from_row))
        }))
    }

    fn list_users<'a>(&'a self) -> BoxFuture<'a, StoreResult<Vec<UserRecord>>> {
        Box::pin(self.run(move |pool| async move {
            let rows = sqlx::query(r#"SELECT * FROM users ORDER BY name COLLATE "C""#)
                .fetch_all(&pool)
                .await?;
            Ok(rows.iter().map(user_from_row).collect())
        }))
    }

    fn create_session<'a>(&'a self, s: &'a SessionRecord) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(self.run(move |pool| async move {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM sessions WHERE expires_ms < $1")
                .bind(s.created_ms)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                r#"INSERT INTO sessions (token_hash, "user", csrf, created_ms, expires_ms) VALUES ($1,$2,$3,$4,$5)"#,
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
        Box::pin(self.run(move |pool| async move {
            let rows = sqlx::query("SELECT * FROM sessions WHERE token_hash = $1")
                .bind(token_hash)
                .fetch_all(&pool)
                .await?;
            Ok(rows.into_iter().next().map(|r| SessionRecord {
                token_hash: r.get("token_hash"),
                user: r.get("user"),
                csrf: r.get("csrf"),
                created_ms: r.get("created_ms"),
                expires_ms: r.get("expires_ms"),
            }))
        }))
    }

    fn delete_session<'a>(&'a self, token_hash: &'a str) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(self.run(move |pool| async move {
            sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
                .bind(token_hash)
                .execute(&pool)
                .await?;
            Ok(())
        }))
    }

    fn delete_sessions_of<'a>(
        &'a self,
        user: &'a str,
        keep: Option<&'a str>,
    ) -> BoxFuture<'a, StoreResult<u64>> {
        Box::pin(self.run(move |pool| async move {
            let r = sqlx::query(
                r#"DELETE FROM sessions WHERE "user" = $1 AND ($2::text IS NULL OR token_hash <> $2)"#,
            )
            .bind(user)
            .bind(keep)
            .execute(&pool)
            .await?;
            Ok(r.rows_affected())
        }))
    }

    fn create_token_until<'a>(
        &'a self,
        token_hash: &'a str,
        user: &'a str,
        name: &'a str,
        now_ms: i64,
        expires_ms: Option<i64>,
    ) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(self.run(move |pool| async move {
            sqlx::query(
                r#"INSERT INTO api_tokens (token_hash, "user", name, created_ms, expires_ms) VALUES ($1,$2,$3,$4,$5)"#,
            )
            .bind(token_hash)
            .bind(user)
            .bind(name)
            .bind(now_ms)
            .bind(expires_ms)
            .execute(&pool)
            .await?;
            Ok(())
        }))
    }

    fn token_user<'a>(&'a self, token_hash: &'a str) -> BoxFuture<'a, StoreResult<Option<String>>> {
        Box::pin(self.run(move |pool| async move {
            let users: Vec<String> = sqlx::query_scalar(
                r#"SELECT "user" FROM api_tokens WHERE token_hash = $1 AND (expires_ms IS NULL OR expires_ms > $2)"#,
            )
            .bind(token_hash)
            .bind(crate::now_ms())
            .fetch_all(&pool)
            .await?;
            Ok(users.into_iter().next())
        }))
    }

    fn list_tokens<'a>(
        &'a self,
        user: Option<&'a str>,
    ) -> BoxFuture<'a, StoreResult<Vec<TokenRecord>>> {
        Box::pin(self.run(move |pool| async move {
            let rows = sqlx::query(
                r#"SELECT token_hash, "user", name, created_ms, expires_ms FROM api_tokens WHERE ($1::text IS NULL OR "user" = $1) ORDER BY created_ms, token_hash COLLATE "C""#,
            )
            .bind(user)
            .fetch_all(&pool)
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
        }))
    }

    fn revoke_token<'a>(&'a self, user: &'a str, id: &'a str) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(self.run(move |pool| async move {
            if id.len() != TOKEN_ID_LEN || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Ok(false);
            }
            let r = sqlx::query(
                r#"DELETE FROM api_tokens WHERE "user" = $1 AND substr(token_hash, 1, $2) = $3"#,
            )
            .bind(user)
            .bind(TOKEN_ID_LEN as i32)
            .bind(id.to_ascii_lowercase())
            .execute(&pool)
            .await?;
            Ok(r.rows_affected() > 0)
        }))
    }

    fn audit<'a>(
        &'a self,
        ts_ms: i64,
        actor: &'a str,
        action: &'a str,
        target: &'a str,
        detail: &'a serde_json::Value,
    ) -> BoxFuture<'a, StoreResult<i64>> {
        Box::pin(self.run(move |pool| async move {
            let mut tx = pool.begin().await?;
            order_ids(&mut tx).await?;
            let id: i64 = sqlx::query_scalar(INSERT_AUDIT)
                .bind(ts_ms)
                .bind(actor)
                .bind(action)
                .bind(target)
                .bind(detail.to_string())
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(id)
        }))
    }

    fn list_audit<'a>(
        &'a self,
        since_id: i64,
        limit: i64,
    ) -> BoxFuture<'a, StoreResult<Vec<AuditRecord>>> {
        Box::pin(self.run(move |pool| async move {
            let rows = sqlx::query("SELECT * FROM audit WHERE id > $1 ORDER BY id LIMIT $2")
                .bind(since_id)
                .bind(limit)
                .fetch_all(&pool)
                .await?;
            Ok(rows
                .iter()
                .map(|r| AuditRecord {
                    id: r.get("id"),
                    ts_ms: r.get("ts_ms"),
                    actor: r.get("actor"),
                    action: r.get("action"),
                    target: r.get("target"),
                    detail: json(r, "detail"),
                })
                .collect())
        }))
    }

    fn put_doc<'a>(
        &'a self,
        kind: &'a str,
        doc: &'a DocRecord,
        audit: Option<(&'a str, &'a str, &'a serde_json::Value)>,
    ) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(self.run(move |pool| async move {
            let mut tx = pool.begin().await?;
            if audit.is_some() {
                order_ids(&mut tx).await?;
            }
            sqlx::query(UPSERT_DOC)
                .bind(kind)
                .bind(&doc.id)
                .bind(doc.updated_ms)
                .bind(doc.body.to_string())
                .execute(&mut *tx)
                .await?;
            if let Some((actor, action, detail)) = audit {
                sqlx::query(INSERT_AUDIT)
                    .bind(doc.updated_ms)
                    .bind(actor)
                    .bind(action)
                    .bind(format!("{kind}/{}", doc.id))
                    .bind(detail.to_string())
                    .fetch_one(&mut *tx)
                    .await?;
            }
            tx.commit().await
        }))
    }

    fn list_docs<'a>(&'a self, kind: &'a str) -> BoxFuture<'a, StoreResult<Vec<DocRecord>>> {
        Box::pin(self.run(move |pool| async move {
            let rows = sqlx::query(
                r#"SELECT id, updated_ms, body FROM docs WHERE kind = $1 ORDER BY id COLLATE "C""#,
            )
            .bind(kind)
            .fetch_all(&pool)
            .await?;
            Ok(rows
                .iter()
                .map(|r| DocRecord {
                    id: r.get("id"),
                    updated_ms: r.get("updated_ms"),
                    body: json(r, "body"),
                })
                .collect())
        }))
    }

    fn commit_batch<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, StoreResult<Vec<i64>>> {
        Box::pin(self.run(move |pool| commit_batch(pool, batch)))
    }

    fn list_journal<'a>(
        &'a self,
        alarm: Option<&'a str>,
        since_id: i64,
        limit: i64,
    ) -> BoxFuture<'a, StoreResult<Vec<JournalRecord>>> {
        Box::pin(self.run(move |pool| async move {
            let rows = sqlx::query(
                "SELECT * FROM alarm_journal WHERE id > $1 AND ($2::text IS NULL OR alarm = $2) ORDER BY id LIMIT $3",
            )
            .bind(since_id)
            .bind(alarm)
            .bind(limit)
            .fetch_all(&pool)
            .await?;
            Ok(rows
                .iter()
                .map(|r| JournalRecord {
                    id: r.get("id"),
                    ts_ms: r.get("ts_ms"),
                    alarm: r.get("alarm"),
                    record: json(r, "record"),
                })
                .collect())
        }))
    }

    fn try_lease<'a>(
        &'a self,
        name: &'a str,
        holder: &'a str,
        info: &'a serde_json::Value,
        ttl_ms: i64,
    ) -> BoxFuture<'a, StoreResult<LeaseRecord>> {
        Box::pin(self.run(move |pool| async move {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO leases (name, holder, epoch, expires_ms, info) VALUES ($1, '', 0, 0, 'null') ON CONFLICT (name) DO NOTHING",
            )
            .bind(name)
            .execute(&mut *tx)
            .await?;
            let row = sqlx::query(&format!(
                "SELECT holder, epoch, expires_ms, {DB_NOW} AS now FROM leases WHERE name = $1 FOR UPDATE"
            ))
            .bind(name)
            .fetch_one(&mut *tx)
            .await?;
            let (cur, epoch, expires, now): (String, i64, i64, i64) = (
                row.get("holder"),
                row.get("epoch"),
                row.get("expires_ms"),
                row.get("now"),
            );
            if cur == holder && expires > now {
                sqlx::query("UPDATE leases SET expires_ms = $1, info = $2 WHERE name = $3")
                    .bind(now + ttl_ms)
                    .bind(info.to_string())
                    .bind(name)
                    .execute(&mut *tx)
                    .await?;
            } else if expires <= now {
                sqlx::query(
                    "UPDATE leases SET holder = $1, epoch = $2, expires_ms = $3, info = $4 WHERE name = $5",
                )
                .bind(holder)
                .bind(epoch + 1)
                .bind(now + ttl_ms)
                .bind(info.to_string())
                .bind(name)
                .execute(&mut *tx)
                .await?;
            }
            let row = sqlx::query("SELECT holder, epoch, expires_ms, info FROM leases WHERE name = $1")
                .bind(name)
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(LeaseRecord {
                name: name.to_owned(),
                holder: row.get("holder"),
                epoch: row.get("epoch"),
                expires_ms: row.get("expires_ms"),
                info: json(&row, "info"),
                now_ms: now,
            })
        }))
    }

    fn release_lease<'a>(
        &'a self,
        name: &'a str,
        holder: &'a str,
    ) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(self.run(move |pool| async move {
            sqlx::query("UPDATE leases SET expires_ms = 0 WHERE name = $1 AND holder = $2")
                .bind(name)
                .bind(holder)
                .execute(&pool)
                .await?;
            Ok(())
        }))
    }

    fn put_replica<'a>(
        &'a self,
        id: &'a str,
        body: &'a serde_json::Value,
    ) -> BoxFuture<'a, StoreResult<i64>> {
        Box::pin(self.run(move |pool| async move {
            sqlx::query_scalar(&format!(
                "INSERT INTO replicas (id, seen_ms, body) VALUES ($1, {DB_NOW}, $2) ON CONFLICT (id) DO UPDATE SET seen_ms = excluded.seen_ms, body = excluded.body RETURNING seen_ms"
            ))
            .bind(id)
            .bind(body.to_string())
            .fetch_one(&pool)
            .await
        }))
    }

    fn list_replicas<'a>(&'a self) -> BoxFuture<'a, StoreResult<(Vec<ReplicaRecord>, i64)>> {
        Box::pin(self.run(move |pool| async move {
            let mut tx = pool.begin().await?;
            let rows =
                sqlx::query(r#"SELECT id, seen_ms, body FROM replicas ORDER BY id COLLATE "C""#)
                    .fetch_all(&mut *tx)
                    .await?;
            let now: i64 = sqlx::query_scalar(&format!("SELECT {DB_NOW}"))
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok((
                rows.iter()
                    .map(|r| ReplicaRecord {
                        id: r.get("id"),
                        seen_ms: r.get("seen_ms"),
                        body: json(r, "body"),
                    })
                    .collect(),
                now,
            ))
        }))
    }

    fn close<'a>(&'a self) -> BoxFuture<'a, ()> {
        Box::pin(async move { self.pool().close().await })
    }

    fn journal_high_water<'a>(&'a self) -> BoxFuture<'a, StoreResult<i64>> {
        Box::pin(self.run(move |pool| async move {
            sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM alarm_journal")
                .fetch_one(&pool)
                .await
        }))
    }
}
