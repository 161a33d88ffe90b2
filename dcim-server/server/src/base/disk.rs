//! The database's disk: a free-space reserve, and what may still be written when it is full.
//!
//! A full disk must not blind the center. The data directory holds a reserve file
//! (`reserve.bin`, `[store] reserve_kb`, blocks really allocated with `fallocate`). When a write
//! fails because the disk is full (SQLITE_FULL or ENOSPC), or the free space reaches zero,
//! the guard enters *disk-full mode*: it deletes the reserve, which gives its space back, and
//! from then on refuses the writes that can wait ([`WriteClass::Deferrable`]: agent events,
//! which stay unacknowledged in the agents' spools and come again; agent states; stream marks)
//! without touching the database, so that the space goes to the writes that cannot
//! ([`WriteClass::Essential`]: alarm records and the journal, incidents, audit records, logins
//! and sessions, documents). An essential write that failed for lack of space is tried once
//! more after the reserve was released.
//!
//! [`DiskGuard::check`] runs every second: it enters disk-full mode when the file system has no
//! free block left, and leaves it once there is room for the reserve again plus as much
//! headroom, recreating the reserve first. The state is shown by `/health`, the gauge
//! `dcim_store_disk_full` and the `store-disk-full` alarm.
//!
//! Alarm records of a failed commit are still carried into the next commit (`App::unjournaled`,
//! retried by the 1 s ticker). No pooled connection is reused inside a transaction
//! (`store::SqliteStore`, `after_release`): SQLite may roll back by itself on SQLITE_FULL and
//! leave the connection holding the write lock.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Name of the reserve file in the data directory.
pub const RESERVE_FILE: &str = "reserve.bin";

/// What a write is for (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteClass {
    /// Alarm records, journal, incidents, audit, logins: written from the reserve when the disk
    /// is full.
    Essential,
    /// Can wait (kept elsewhere and sent again): refused while the disk is full.
    Deferrable,
}

/// A change of disk-full mode found by [`DiskGuard::check`] or a failed write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskReport {
    pub full: bool,
    /// Free bytes on the data directory's file system when last measured.
    pub free_bytes: u64,
    pub detail: String,
}

/// The guard of one data directory (see the module docs).
#[derive(Debug)]
pub struct DiskGuard {
    dir: PathBuf,
    reserve: PathBuf,
    reserve_bytes: u64,
    full: AtomicBool,
    /// A reserve file of the full size exists.
    reserve_held: AtomicBool,
    free_bytes: AtomicU64,
    /// The last mode change not yet picked up by [`DiskGuard::take_change`].
    change: Mutex<Option<DiskReport>>,
}

/// Free bytes for unprivileged writers on the file system of `dir`.
pub fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    let s = rustix::fs::statvfs(dir)?;
    Ok(s.f_bavail.saturating_mul(s.f_frsize))
}

/// Allocates `len` bytes for `path` (really: `fallocate`, else by writing zeros), synced.
fn allocate(path: &Path, len: u64) -> std::io::Result<()> {
    let f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(path)?;
    match rustix::fs::fallocate(&f, rustix::fs::FallocateFlags::empty(), 0, len) {
        Ok(()) => {}
        Err(e) if e == rustix::io::Errno::OPNOTSUPP || e == rustix::io::Errno::NOSYS => {
            use std::io::Write;
            let mut w = std::io::BufWriter::new(&f);
            let chunk = vec![0u8; 64 * 1024];
            let mut left = len;
            while left > 0 {
                let n = left.min(chunk.len() as u64) as usize;
                w.write_all(&chunk[..n])?;
                left -= n as u64;
            }
            w.flush()?;
        }
        Err(e) => return Err(e.into()),
    }
    f.sync_all()
}

impl DiskGuard {
    /// A guard for `dir` with a reserve of `reserve_bytes` (0: no reserve). Creates the reserve
    /// when there is room for it; otherwise starts in disk-full mode.
    pub fn new(dir: &Path, reserve_bytes: u64) -> DiskGuard {
        let g = DiskGuard {
            dir: dir.to_owned(),
            reserve: dir.join(RESERVE_FILE),
            reserve_bytes,
            full: AtomicBool::new(false),
            reserve_held: AtomicBool::new(false),
            free_bytes: AtomicU64::new(0),
            change: Mutex::new(None),
        };
        if reserve_bytes > 0 {
            let have = std::fs::metadata(&g.reserve).is_ok_and(|m| m.len() == reserve_bytes);
            if have || allocate(&g.reserve, reserve_bytes).is_ok() {
                g.reserve_held.store(true, Ordering::Relaxed);
            } else {
                let _ = std::fs::remove_file(&g.reserve);
                g.enter_full("no room for the free-space reserve at start");
            }
        }
        if let Ok(f) = free_bytes(dir) {
            g.free_bytes.store(f, Ordering::Relaxed);
        }
        g
    }

    pub fn is_full(&self) -> bool {
        self.full.load(Ordering::Relaxed)
    }

    /// Free bytes when last measured.
    pub fn free(&self) -> u64 {
        self.free_bytes.load(Ordering::Relaxed)
    }

    /// Bytes the reserve holds now (0 while it is released).
    pub fn reserve_held(&self) -> u64 {
        if self.reserve_held.load(Ordering::Relaxed) {
            self.reserve_bytes
        } else {
            0
        }
    }

    /// Whether a write of this class may go to the database now; a refusal is a disk-full
    /// error (`ENOSPC`), so callers treat it like the real one.
    pub fn admit(&self, class: WriteClass) -> Result<(), sqlx::Error> {
        if class == WriteClass::Deferrable && self.is_full() {
            return Err(sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                format!(
                    "disk full: {} is kept for alarm and journal commits; this write can wait",
                    self.dir.display()
                ),
            )));
        }
        Ok(())
    }

    /// A write failed because the disk is full: enter disk-full mode and release the reserve.
    /// Returns whether space was released (worth trying an essential write again).
    pub fn on_disk_full(&self, what: &str) -> bool {
        self.enter_full(what)
    }

    fn enter_full(&self, why: &str) -> bool {
        let was = self.full.swap(true, Ordering::Relaxed);
        let released = self.reserve_held.swap(false, Ordering::Relaxed)
            && std::fs::remove_file(&self.reserve).is_ok();
        if let Ok(f) = free_bytes(&self.dir) {
            self.free_bytes.store(f, Ordering::Relaxed);
        }
        if !was {
            *self.change.lock().expect("disk change lock") = Some(DiskReport {
                full: true,
                free_bytes: self.free(),
                detail: format!(
                    "{}: {why}; {}",
                    self.dir.display(),
                    if released {
                        format!(
                            "the {} KiB reserve was released for alarm and journal commits",
                            self.reserve_bytes / 1024
                        )
                    } else {
                        "no reserve left".to_owned()
                    }
                ),
            });
        }
        released
    }

    /// Measures the free space: enters disk-full mode when none is left, leaves it (recreating
    /// the reserve) when there is room for the reserve and as much again. Call every second.
    pub fn check(&self) {
        let Ok(free) = free_bytes(&self.dir) else {
            return;
        };
        self.free_bytes.store(free, Ordering::Relaxed);
        if !self.is_full() {
            if free == 0 {
                self.enter_full("no free block left on the file system");
            }
            return;
        }
        // Room for the reserve plus the same again, and at least 1 MiB, before leaving.
        let need = (2 * self.reserve_bytes).max(1 << 20);
        if free < need {
            return;
        }
        if self.reserve_bytes > 0 && !self.reserve_held.load(Ordering::Relaxed) {
            if allocate(&self.reserve, self.reserve_bytes).is_err() {
                let _ = std::fs::remove_file(&self.reserve);
                return;
            }
            self.reserve_held.store(true, Ordering::Relaxed);
        }
        self.full.store(false, Ordering::Relaxed);
        let free = free_bytes(&self.dir).unwrap_or(free);
        self.free_bytes.store(free, Ordering::Relaxed);
        *self.change.lock().expect("disk change lock") = Some(DiskReport {
            full: false,
            free_bytes: free,
            detail: format!(
                "{}: space is back ({} KiB free); reserve restored",
                self.dir.display(),
                free / 1024
            ),
        });
    }

    /// The last change of mode, once.
    pub fn take_change(&self) -> Option<DiskReport> {
        self.change.lock().expect("disk change lock").take()
    }
}

/// Makes the data directory private (0700 when created; an existing one loses every
/// permission for others and write for the group, so 0750 at most) and the database files
/// 0600 (created so, tightened if found wider): they hold password hashes, session CSRF
/// tokens and the device-cookie key. Returns what was tightened, for the log.
#[cfg(unix)]
pub fn secure_data_dir(
    dir: &std::path::Path,
    db: &std::path::Path,
) -> std::io::Result<Vec<String>> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    let mut changed = Vec::new();
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let mode = std::fs::metadata(dir)?.permissions().mode() & 0o777;
    if mode & 0o027 != 0 {
        let tight = mode & 0o750;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(tight))?;
        changed.push(format!("{} {mode:o} -> {tight:o}", dir.display()));
    }
    if !db.exists() {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(db)?;
    }
    let mut files = vec![db.to_owned()];
    for suffix in ["-wal", "-shm"] {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        files.push(p.into());
    }
    for f in files.iter().filter(|f| f.exists()) {
        let mode = std::fs::metadata(f)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o600))?;
            changed.push(format!("{} {mode:o} -> 600", f.display()));
        }
    }
    Ok(changed)
}

#[cfg(not(unix))]
pub fn secure_data_dir(_: &std::path::Path, _: &std::path::Path) -> std::io::Result<Vec<String>> {
    Ok(Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deferrable_writes_wait_while_full_and_the_reserve_comes_back() {
        // Hazard: with the disk full, alarm commits compete with telemetry marks and agent
        // states for the last blocks, and lose.
        let dir = tempfile::tempdir().unwrap();
        let g = DiskGuard::new(dir.path(), 64 * 1024);
        assert!(!g.is_full());
        assert_eq!(
            std::fs::metadata(dir.path().join(RESERVE_FILE))
                .unwrap()
                .len(),
            64 * 1024
        );
        assert!(g.admit(WriteClass::Deferrable).is_ok());
        assert!(g.on_disk_full("test"), "the reserve is released");
        assert!(!dir.path().join(RESERVE_FILE).exists());
        assert!(g.is_full());
        assert!(g.take_change().unwrap().full);
        assert!(g.admit(WriteClass::Essential).is_ok());
        let e = g.admit(WriteClass::Deferrable).unwrap_err();
        assert!(crate::storage::store::is_disk_full(&e), "{e}");
        assert!(!g.on_disk_full("again"), "nothing left to release");
        assert_eq!(g.take_change(), None, "one report per episode");
        // The temporary directory has room: the next check leaves disk-full mode.
        g.check();
        assert!(!g.is_full());
        assert!(!g.take_change().unwrap().full);
        assert_eq!(g.reserve_held(), 64 * 1024);
        assert!(dir.path().join(RESERVE_FILE).exists());
    }
}
