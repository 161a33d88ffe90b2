//! Multi-site rows of the store: the leader lease with its fencing epoch, and the replicas'
//! heartbeats (types shared by both backends, and the SQLite statements; the PostgreSQL ones
//! are in `postgres.rs`).
//!
//! The lease is one row per name: `(holder, epoch, expires_ms, info)`. Taking it when it is
//! free or expired increments `epoch`; renewing keeps it. A [`Fence`] carried by a
//! [`super::Batch`] makes the batch commit only while `(holder, epoch)` is still the row's, and
//! the check runs inside the batch's own transaction: a deposed leader's late write fails with
//! [`Fenced`] and changes nothing, whatever its clock says.
//!
//! Times are the database's clock (PostgreSQL's `clock_timestamp()`; for SQLite, which only
//! ever serves one machine, the store's [`dcim_clock::Clock`], passed in as `now`).

use super::StoreResult;
use serde::Serialize;
use sqlx::{Row, SqlitePool};

/// The fencing token of a leader term.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fence {
    pub lease: String,
    pub holder: String,
    pub epoch: i64,
}

/// A fenced write found the lease in other hands (or at another epoch): nothing was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fenced {
    pub fence: Fence,
    /// The lease's `(holder, epoch)` now, when the row exists.
    pub current: Option<(String, i64)>,
}

impl std::fmt::Display for Fenced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.current {
            Some((h, e)) => write!(
                f,
                "fenced: lease `{}` is held by `{h}` at epoch {e}, not by `{}` at epoch {} (a deposed leader's write is refused)",
                self.fence.lease, self.fence.holder, self.fence.epoch
            ),
            None => write!(f, "fenced: lease `{}` does not exist", self.fence.lease),
        }
    }
}

impl std::error::Error for Fenced {}

impl Fenced {
    pub fn into_error(self) -> sqlx::Error {
        sqlx::Error::AnyDriverError(Box::new(self))
    }
}

/// The [`Fenced`] refusal inside a store error, if that is what it is.
pub fn fenced(e: &sqlx::Error) -> Option<&Fenced> {
    match e {
        sqlx::Error::AnyDriverError(b) => b.downcast_ref::<Fenced>(),
        _ => None,
    }
}

/// A lease as it is after [`super::Store::try_lease`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LeaseRecord {
    pub name: String,
    /// Empty when nobody ever held it.
    pub holder: String,
    pub epoch: i64,
    /// Database clock.
    pub expires_ms: i64,
    /// What the holder published about itself (address of its console, site).
    pub info: serde_json::Value,
    /// The database's clock when the lease was read.
    pub now_ms: i64,
}

impl LeaseRecord {
    /// Whether `holder` holds it now (by the database's clock).
    pub fn held_by(&self, holder: &str) -> bool {
        self.holder == holder && self.expires_ms > self.now_ms
    }

    pub fn fence(&self) -> Fence {
        Fence {
            lease: self.name.clone(),
            holder: self.holder.clone(),
            epoch: self.epoch,
        }
    }
}

/// A replica's last heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplicaRecord {
    pub id: String,
    /// When it was written, by the database's clock.
    pub seen_ms: i64,
    pub body: serde_json::Value,
}

pub(super) const SQLITE_MIGRATION: &str = r#"
CREATE TABLE leases (
    name TEXT PRIMARY KEY, holder TEXT NOT NULL, epoch INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL, info TEXT NOT NULL
);
CREATE TABLE replicas (
    id TEXT PRIMARY KEY, seen_ms INTEGER NOT NULL, body TEXT NOT NULL
);
"#;

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or(serde_json::Value::Null)
}

pub(super) async fn sqlite_try_lease(
    pool: &SqlitePool,
    name: &str,
    holder: &str,
    info: &serde_json::Value,
    ttl_ms: i64,
    now: i64,
) -> StoreResult<LeaseRecord> {
    let mut tx = pool.begin().await?;
    // A write first, so that the transaction holds SQLite's write lock before it reads.
    sqlx::query(
        "INSERT INTO leases (name, holder, epoch, expires_ms, info) VALUES (?, '', 0, 0, 'null') ON CONFLICT(name) DO NOTHING",
    )
    .bind(name)
    .execute(&mut *tx)
    .await?;
    let rows = sqlx::query("SELECT holder, epoch, expires_ms FROM leases WHERE name = ?")
        .bind(name)
        .fetch_all(&mut *tx)
        .await?;
    let row = rows.first().ok_or(sqlx::Error::RowNotFound)?;
    let (cur_holder, epoch, expires): (String, i64, i64) =
        (row.get("holder"), row.get("epoch"), row.get("expires_ms"));
    if cur_holder == holder && expires > now {
        sqlx::query("UPDATE leases SET expires_ms = ?, info = ? WHERE name = ?")
            .bind(now + ttl_ms)
            .bind(info.to_string())
            .bind(name)
            .execute(&mut *tx)
            .await?;
    } else if expires <= now {
        sqlx::query(
            "UPDATE leases SET holder = ?, epoch = ?, expires_ms = ?, info = ? WHERE name = ?",
        )
        .bind(holder)
        .bind(epoch + 1)
        .bind(now + ttl_ms)
        .bind(info.to_string())
        .bind(name)
        .execute(&mut *tx)
        .await?;
    }
    let rows = sqlx::query("SELECT holder, epoch, expires_ms, info FROM leases WHERE name = ?")
        .bind(name)
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    let row = rows.first().ok_or(sqlx::Error::RowNotFound)?;
    Ok(LeaseRecord {
        name: name.to_owned(),
        holder: row.get("holder"),
        epoch: row.get("epoch"),
        expires_ms: row.get("expires_ms"),
        info: json(row.get::<&str, _>("info")),
        now_ms: now,
    })
}

pub(super) async fn sqlite_release_lease(
    pool: &SqlitePool,
    name: &str,
    holder: &str,
) -> StoreResult<()> {
    sqlx::query("UPDATE leases SET expires_ms = 0 WHERE name = ? AND holder = ?")
        .bind(name)
        .bind(holder)
        .execute(pool)
        .await?;
    Ok(())
}

/// The fence check inside a batch's transaction: a no-op write that matches only while the
/// fence holds (a write, so that SQLite takes its write lock before anything else).
pub(super) async fn sqlite_check_fence(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    f: &Fence,
) -> StoreResult<()> {
    let r =
        sqlx::query("UPDATE leases SET epoch = epoch WHERE name = ? AND holder = ? AND epoch = ?")
            .bind(&f.lease)
            .bind(&f.holder)
            .bind(f.epoch)
            .execute(&mut **tx)
            .await?;
    if r.rows_affected() == 1 {
        return Ok(());
    }
    let rows = sqlx::query("SELECT holder, epoch FROM leases WHERE name = ?")
        .bind(&f.lease)
        .fetch_all(&mut **tx)
        .await?;
    Err(Fenced {
        fence: f.clone(),
        current: rows.first().map(|r| (r.get("holder"), r.get("epoch"))),
    }
    .into_error())
}

pub(super) async fn sqlite_put_replica(
    pool: &SqlitePool,
    id: &str,
    body: &serde_json::Value,
    now: i64,
) -> StoreResult<i64> {
    sqlx::query(
        "INSERT INTO replicas (id, seen_ms, body) VALUES (?,?,?) ON CONFLICT(id) DO UPDATE SET seen_ms = excluded.seen_ms, body = excluded.body",
    )
    .bind(id)
    .bind(now)
    .bind(body.to_string())
    .execute(pool)
    .await?;
    Ok(now)
}

pub(super) async fn sqlite_list_replicas(
    pool: &SqlitePool,
    now: i64,
) -> StoreResult<(Vec<ReplicaRecord>, i64)> {
    let rows = sqlx::query("SELECT id, seen_ms, body FROM replicas ORDER BY id")
        .fetch_all(pool)
        .await?;
    Ok((
        rows.iter()
            .map(|r| ReplicaRecord {
                id: r.get("id"),
                seen_ms: r.get("seen_ms"),
                body: json(r.get::<&str, _>("body")),
            })
            .collect(),
        now,
    ))
}
