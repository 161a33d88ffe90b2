//! `dcim-server backup FILE` and `dcim-server restore FILE`.
//!
//! SQLite (the default store): `backup` uses `VACUUM INTO`, SQLite's online copy: it reads one
//! consistent snapshot inside a read transaction, so it runs while the server is running and
//! writing, and the copy is a compact, complete database (no `-wal` file to carry along). The
//! copy is checked (`PRAGMA integrity_check`) and fsynced before the command succeeds.
//!
//! `restore` refuses while a server uses the data directory (the server holds
//! `<data_dir>/server.lock`), checks the file (integrity, and a schema this binary knows: a
//! backup made by a newer version is refused), keeps the current database as
//! `dcim.sqlite3.before-restore-<ms>` (with its `-wal`/`-shm`), then puts the copy in place
//! with a temporary file, fsync and rename, and opens it once (applying this binary's
//! migrations to an older backup).
//!
//! Not in the backup: the DC-09 outbox (`dc09-outbox/`: its sequence numbers must never go
//! back, so keep the directory of the host that runs) and the time-series buffer
//! (`tsdb-buffer/`: telemetry on its way to the store).
//!
//! PostgreSQL: when the server's store is PostgreSQL, use the database's own tools
//! (`pg_dump --format=custom` / `pg_restore`, or the replication and base backups of the
//! cluster); [`backup`] and [`restore`] are the SQLite implementations and the place where a
//! PostgreSQL store dispatches to them.

use crate::config::Config;
use crate::storage::store;
use anyhow::Context;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{ConnectOptions, Connection};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The lock file a running server holds in its data directory.
pub const LOCK_FILE: &str = "server.lock";

/// How long a busy data directory lock is retried before it is reported as held. A lock is
/// an `flock` on an open file: a child process that another thread forks keeps a copy of the
/// descriptor until it calls `exec`, so a server restarted in the same process right after a
/// stop (tests, the demo) can find the lock held for a moment by nobody that runs a server.
pub const LOCK_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// Takes the data directory's lock (exclusive, released when the file is closed): one server
/// per data directory, and no restore under a running server. A lock still held after
/// [`LOCK_GRACE`] is a running server.
pub fn lock_data_dir(dir: &Path) -> anyhow::Result<std::fs::File> {
    lock_data_dir_within(dir, LOCK_GRACE)
}

/// [`lock_data_dir`], retrying a busy lock for up to `grace`.
pub fn lock_data_dir_within(
    dir: &Path,
    grace: std::time::Duration,
) -> anyhow::Result<std::fs::File> {
    // Private from the start (it will hold the database: password hashes, sessions).
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(LOCK_FILE);
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    let deadline = std::time::Instant::now() + grace;
    loop {
        match f.try_lock() {
            Ok(()) => return Ok(f),
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
                "{} is in use by a running dcim-server (stop it first)",
                dir.display()
            ),
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("locking {}", path.display()));
            }
        }
    }
}

/// What a backup or a checked file holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    pub schema_version: i64,
    pub bytes: u64,
}

/// Opens `file` read-only and checks it is a dcim database this binary can use.
pub async fn check_file(file: &Path) -> anyhow::Result<Checked> {
    let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", file.display()))?
        .read_only(true)
        .immutable(true);
    let mut conn = opts
        .connect()
        .await
        .with_context(|| format!("{} is not a readable SQLite database", file.display()))?;
    let integrity: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(&mut conn)
        .await
        .with_context(|| format!("{}: integrity check", file.display()))?;
    anyhow::ensure!(
        integrity == ["ok"],
        "{} is damaged: {}",
        file.display(),
        integrity.join("; ")
    );
    let versions: Vec<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations")
        .fetch_all(&mut conn)
        .await
        .with_context(|| format!("{} is not a dcim-server database", file.display()))?;
    let version = versions.into_iter().max().unwrap_or(0);
    anyhow::ensure!(
        version <= store::SCHEMA_VERSION,
        "{}: schema version {version} is newer than this dcim-server knows ({}): it was made by a newer version",
        file.display(),
        store::SCHEMA_VERSION
    );
    conn.close().await.ok();
    Ok(Checked {
        schema_version: version,
        bytes: std::fs::metadata(file)?.len(),
    })
}

/// `backup` and `restore` are SQLite's: with a PostgreSQL store they would copy (or replace) a
/// SQLite file the server does not use, and report success.
fn sqlite_only(config: &Config, what: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        config.store.backend == store::StoreBackend::Sqlite,
        "{what}: the store is PostgreSQL ([store] backend = \"postgres\"); use its own tools (pg_dump --format=custom and pg_restore, or the cluster's base backups; see docs/deploy/multisite.md)"
    );
    Ok(())
}

fn fsync(path: &Path) -> std::io::Result<()> {
    std::fs::File::open(path)?.sync_all()
}

/// Writes a consistent copy of the server's database to `dest` (which must not exist).
pub async fn backup(config: &Config, dest: &Path) -> anyhow::Result<Checked> {
    sqlite_only(config, "backup")?;
    let db = store::db_path(&config.data_dir);
    anyhow::ensure!(db.exists(), "no database at {}", db.display());
    anyhow::ensure!(!dest.exists(), "{} exists already", dest.display());
    let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", db.display()))?
        .busy_timeout(std::time::Duration::from_secs(30));
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(opts)
        .await
        .with_context(|| format!("opening {}", db.display()))?;
    sqlx::query("VACUUM INTO ?")
        .bind(dest.display().to_string())
        .execute(&pool)
        .await
        .with_context(|| format!("copying {} to {}", db.display(), dest.display()))?;
    pool.close().await;
    fsync(dest)?;
    if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
        fsync(dir)?;
    }
    check_file(dest).await
}

/// Replaces the database of a stopped server by `src`. Returns where the previous database
/// was kept.
pub async fn restore(config: &Config, src: &Path) -> anyhow::Result<(Checked, Option<PathBuf>)> {
    sqlite_only(config, "restore")?;
    let checked = check_file(src).await?;
    let _lock = lock_data_dir(&config.data_dir)?;
    let db = store::db_path(&config.data_dir);
    // Wall time genuinely meant: it names the kept file for an operator (the server is stopped).
    let stamp = dcim_clock::now_ms();
    let mut kept = None;
    if db.exists() {
        for suffix in ["", "-wal", "-shm"] {
            let from = PathBuf::from(format!("{}{suffix}", db.display()));
            if from.exists() {
                let to = PathBuf::from(format!("{}.before-restore-{stamp}{suffix}", db.display()));
                std::fs::rename(&from, &to)
                    .with_context(|| format!("moving {} aside", from.display()))?;
                if suffix.is_empty() {
                    kept = Some(to);
                }
            }
        }
    }
    let tmp = config.data_dir.join("dcim.sqlite3.restore-tmp");
    std::fs::copy(src, &tmp).with_context(|| format!("copying {}", src.display()))?;
    fsync(&tmp)?;
    std::fs::rename(&tmp, &db)?;
    fsync(&config.data_dir)?;
    // Opening applies this binary's migrations to an older backup.
    let s = store::SqliteStore::open(&config.data_dir)
        .await
        .with_context(|| format!("opening the restored {}", db.display()))?;
    s.close().await;
    Ok((checked, kept))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::store::Store;

    fn cfg(dir: &Path) -> Config {
        Config {
            data_dir: dir.to_path_buf(),
            ..Config::default()
        }
    }

    /// Hazard: `backup` on a PostgreSQL deployment copies a stale SQLite file left in the data
    /// directory and reports success; the operator believes the site is backed up.
    #[tokio::test]
    async fn backup_and_restore_refuse_a_postgres_store() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        store::SqliteStore::open(&data).await.unwrap().close().await;
        let mut c = cfg(&data);
        c.store.backend = store::StoreBackend::Postgres;
        c.store.urls = vec!["postgres://dcim@127.0.0.1:1/dcim".into()];
        let e = backup(&c, &dir.path().join("b.sqlite3")).await.unwrap_err();
        assert!(e.to_string().contains("pg_dump"), "{e}");
        assert!(!dir.path().join("b.sqlite3").exists());
        let e = restore(&c, &dir.path().join("b.sqlite3"))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("PostgreSQL"), "{e}");
    }

    #[tokio::test]
    async fn a_backup_taken_while_the_database_is_written_restores_what_it_held() {
        // Hazard: a backup that copies the file while it is written is torn and restores
        // garbage, or silently misses committed rows that were still in the WAL.
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let store = store::SqliteStore::open(&data).await.unwrap();
        for i in 0..50 {
            store
                .audit(i, "t", "before", &format!("x{i}"), &serde_json::json!({}))
                .await
                .unwrap();
        }
        let file = dir.path().join("backup.sqlite3");
        let checked = backup(&cfg(&data), &file).await.unwrap();
        assert_eq!(checked.schema_version, store::SCHEMA_VERSION);
        // Written after the backup: gone after the restore.
        store
            .audit(99, "t", "after", "y", &serde_json::json!({}))
            .await
            .unwrap();
        // A running server (its lock) refuses the restore.
        let lock = lock_data_dir(&data).unwrap();
        let err = restore(&cfg(&data), &file).await.unwrap_err().to_string();
        assert!(err.contains("in use"), "{err}");
        drop(lock);
        store.close().await;
        let (_, kept) = restore(&cfg(&data), &file).await.unwrap();
        assert!(kept.unwrap().exists());
        let store = store::SqliteStore::open(&data).await.unwrap();
        let rows = store.list_audit(0, 1000).await.unwrap();
        assert_eq!(rows.len(), 50);
        assert!(rows.iter().all(|r| r.action == "before"));
        // A backup never overwrites a file.
        assert!(backup(&cfg(&data), &file).await.is_err());
    }

    #[test]
    fn a_lock_released_within_the_grace_is_taken_and_a_held_one_is_refused() {
        // Hazard: a server restarted right after a stop fails to start because a child process
        // forked by another thread briefly kept the old lock's descriptor; and, the other way,
        // two servers on one data directory corrupt each other's state.
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let held = lock_data_dir(&data).unwrap();
        let t0 = std::time::Instant::now();
        let err = lock_data_dir_within(&data, std::time::Duration::from_millis(100))
            .unwrap_err()
            .to_string();
        assert!(err.contains("in use"), "{err}");
        assert!(t0.elapsed() >= std::time::Duration::from_millis(100));
        let release = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(200));
            drop(held);
        });
        lock_data_dir_within(&data, std::time::Duration::from_secs(10)).unwrap();
        release.join().unwrap();
    }

    #[tokio::test]
    async fn a_database_from_a_newer_version_is_refused() {
        // Hazard: an older binary started on a database migrated by a newer one misreads or
        // damages it; a downgrade must stop with a clear message instead.
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let store = store::SqliteStore::open(&data).await.unwrap();
        store.close().await;
        let db = store::db_path(&data);
        let mut conn = SqliteConnectOptions::from_str(&format!("sqlite://{}", db.display()))
            .unwrap()
            .connect()
            .await
            .unwrap();
        sqlx::query("INSERT INTO schema_migrations (version, applied_ms) VALUES (?, 0)")
            .bind(store::SCHEMA_VERSION + 1)
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        let err = store::SqliteStore::open(&data)
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("newer than this dcim-server knows"), "{err}");
        let err = check_file(&db).await.unwrap_err().to_string();
        assert!(err.contains("newer"), "{err}");
        // Not a database at all.
        let junk = dir.path().join("junk");
        std::fs::write(&junk, b"not sqlite").unwrap();
        assert!(check_file(&junk).await.is_err());
    }
}
