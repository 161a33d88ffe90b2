//! `/health` and the systemd watchdog.
//!
//! `health_probe::report` looks at every part the server needs and says, per part, `ok`, `degraded`
//! (working but something an operator must see: a broker away, a store down while the buffer
//! holds the data, a disk filling, a DC-09 path down) or `failing` (the process cannot do its
//! job: an essential task has ended, the ingest is stalled). Nothing is reported `ok` for lack
//! of information: a part that cannot be assessed is `degraded` with the reason.
//!
//! The parts: `store` (last write result, the store's disk-full mode and a periodic read
//! probe), `disk` (free space where the database lives; "full" for as long as the store's
//! guard, `crate::base::disk`, is in disk-full mode, whatever the free-space figure says), `broker` (the ingest's connection), `ingest` (messages waiting and how
//! long the oldest progress is ago), `tasks` (each essential task alive; the engines' ticker
//! beating), `tsdb` (the on-disk buffer and the store behind it) and `dc09` (each path to the
//! fire authority, messages queued) and, on a multi-site replica (`[cluster]`), `cluster` (its
//! role and the leader; a follower that cannot reload the leader's alarm state is `degraded`,
//! since what it shows may be out of date, also said at the top level as `cluster`).
//!
//! `health_probe::supervise` runs once a second: it computes the report, logs changes, sets the systemd
//! status line, and sends `WATCHDOG=1` only while no part is `failing`, so that systemd
//! restarts a server whose ingest or engines are stuck (`WatchdogSec=` in the unit).
//!
//! The rules ([`assess`]) are pure; time and readings are passed in.
//!
//! The store's disk-full mode (`crate::base::disk`) is the one answer for the store and disk checks and
//! the top-level `store: "disk full"` (with `free_bytes`, `reserve_bytes`), whatever the free-space
//! figure says; events deferred for it count as handled, not as a stalled ingest. On a multi-site
//! replica `cluster` says its role and the leader; a follower that cannot reload the leader's
//! state, or knows no leader, is `degraded`. Essential tasks are registered at start by their
//! abort handles; `Server::run_until` stops the server within a second of one ending.

use serde::Serialize;
use serde_json::json;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use tokio::task::AbortHandle;

/// Worst first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Ok,
    Degraded,
    Failing,
}

/// One part of the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    pub status: Level,
    /// Why it is not `ok` (absent when it is).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Figures behind the verdict.
    pub detail: serde_json::Value,
}

impl Check {
    fn ok(detail: serde_json::Value) -> Check {
        Check {
            status: Level::Ok,
            reason: None,
            detail,
        }
    }
    fn with(status: Level, reason: impl Into<String>, detail: serde_json::Value) -> Check {
        Check {
            status,
            reason: Some(reason.into()),
            detail,
        }
    }
}

/// Essential tasks and beats, registered at start.
#[derive(Debug, Default)]
pub struct Health {
    tasks: Mutex<Vec<(String, AbortHandle)>>,
    /// Last beat of the engines' 1 s ticker (ms since the epoch; 0 = not yet).
    pub ticker_beat_ms: AtomicI64,
    /// Result of the last store read probe: when it succeeded, and the last error.
    pub store_probe_ok_ms: AtomicI64,
    pub store_probe_error: Mutex<Option<String>>,
    /// When the server became ready (ms); 0 while starting.
    pub ready_ms: AtomicI64,
}

impl Health {
    /// Registers a task whose end means the server no longer works.
    pub fn essential(&self, name: impl Into<String>, task: AbortHandle) {
        self.tasks
            .lock()
            .expect("health tasks")
            .push((name.into(), task));
    }

    /// Names of the registered tasks that have ended.
    pub fn ended_tasks(&self) -> (usize, Vec<String>) {
        let t = self.tasks.lock().expect("health tasks");
        (
            t.len(),
            t.iter()
                .filter(|(_, h)| h.is_finished())
                .map(|(n, _)| n.clone())
                .collect(),
        )
    }

    /// Aborts the registered task `name` (what a panic in it does); false if there is none.
    /// Nothing in the server calls it: the supervision tests kill a task with it.
    pub fn abort(&self, name: &str) -> bool {
        let t = self.tasks.lock().expect("health tasks");
        let found = t
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, h)| h.abort())
            .count();
        found > 0
    }

    /// The alarm ticker ran at `now_ms` (the server's time, which `/health` compares it with).
    pub fn beat_ticker(&self, now_ms: i64) {
        self.ticker_beat_ms.store(now_ms, Ordering::Relaxed);
    }
}

/// Everything [`assess`] needs, read from the running server.
#[derive(Debug, Clone, Default)]
pub struct Readings {
    pub now_ms: i64,
    pub ready_ms: i64,
    pub store_error: Option<String>,
    pub store_probe_ok_ms: i64,
    pub store_probe_error: Option<String>,
    /// The store's disk-full mode (`crate::base::disk::DiskGuard`), when the store has a guard.
    pub disk_full: Option<DiskFullReadings>,
    /// `(free bytes, total bytes)` of the data directory's file system, `None` if unknown.
    pub disk: Option<(u64, u64)>,
    pub broker_connected: bool,
    pub broker_clients: i64,
    pub embedded_broker: bool,
    pub ingest_pending: u64,
    pub ingest_progress_ms: i64,
    pub ingest_last_wait_ms: i64,
    pub tasks: usize,
    pub ended_tasks: Vec<String>,
    pub ticker_beat_ms: i64,
    pub tsdb: Option<TsdbReadings>,
    pub dc09: Option<Dc09Readings>,
    /// Multi-site (`[cluster]`): this replica's role.
    pub cluster: Option<ClusterReadings>,
}

/// A multi-site replica's role, for the `cluster` check.
#[derive(Debug, Clone, Default)]
pub struct ClusterReadings {
    pub replica: String,
    pub leading: bool,
    /// The leader as last read from the lease (`None`: unknown, a takeover in progress).
    pub leader: Option<String>,
    /// Why a follower's view may be out of date (`crate::state::cluster::Cluster::stale`).
    pub stale: Option<String>,
}

/// The store's disk-full mode: one answer for `/health`, the `store-disk-full` alarm and
/// `dcim_store_disk_full`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiskFullReadings {
    pub full: bool,
    /// Free bytes when the guard last measured.
    pub free_bytes: u64,
    /// Bytes of the reserve still held (0 while it has been given back).
    pub reserve_bytes: u64,
}

#[derive(Debug, Clone, Default)]
pub struct TsdbReadings {
    pub buffer_bytes: i64,
    pub buffer_max_bytes: i64,
    pub batches: i64,
    pub oldest_pending_ms: i64,
    pub dropped_lines: u64,
    pub last_ok_ms: i64,
    pub last_error_ms: i64,
}

#[derive(Debug, Clone, Default)]
pub struct Dc09Readings {
    pub pending: usize,
    pub rejected: u64,
    pub paths: Vec<(String, bool)>,
}

/// Free space under which the disk is reported `degraded`: 1 GiB or 5 % of the file system,
/// whichever is smaller (a small dedicated volume is not "low" at 100 MiB of 200). A full disk
/// is reported by the store's disk guard (`crate::base::disk`), which also gives its reserve back.
pub const DISK_LOW_BYTES: u64 = 1 << 30;
/// Waiting ingest work with no progress for this long means the ingest is stalled.
pub const INGEST_STALLED_MS: i64 = 30_000;
/// A message that waited this long in the lanes means the ingest is behind.
pub const INGEST_BEHIND_MS: i64 = 10_000;
/// The 1 s ticker silent this long means the engines are stuck.
pub const TICKER_STUCK_MS: i64 = 15_000;
/// The store read probe older than this (or failing) means the store cannot be read.
pub const STORE_PROBE_STALE_MS: i64 = 30_000;
/// Grace after start before silence counts (the first tick, the first probe).
pub const START_GRACE_MS: i64 = 15_000;

/// The pure verdict: one check per part, and the overall level (the worst).
pub fn assess(r: &Readings) -> (Level, Vec<(&'static str, Check)>) {
    let starting = r.ready_ms == 0 || r.now_ms - r.ready_ms < START_GRACE_MS;
    let since_progress = if r.ingest_progress_ms > 0 {
        r.now_ms - r.ingest_progress_ms
    } else {
        r.now_ms - r.ready_ms.max(1)
    };
    let mut out = vec![
        ("store", store_check(r, starting)),
        ("disk", disk_check(r)),
        ("broker", broker_check(r)),
        ("ingest", ingest_check(r, starting, since_progress)),
        ("tasks", tasks_check(r, starting, since_progress)),
    ];
    if let Some(t) = &r.tsdb {
        out.push(("tsdb", tsdb_check(t)));
    }
    if let Some(d) = &r.dc09 {
        out.push(("dc09", dc09_check(d)));
    }
    if let Some(c) = &r.cluster {
        out.push(("cluster", cluster_check(c, starting)));
    }
    let level = out.iter().map(|(_, c)| c.status).max().unwrap_or(Level::Ok);
    (level, out)
}

/// The store: disk full, failing writes, a failed or stale read probe.
fn store_check(r: &Readings, starting: bool) -> Check {
    let probe_age = r.now_ms - r.store_probe_ok_ms;
    let full = r.disk_full.filter(|d| d.full);
    let detail = json!({"last_read_probe_ms": r.store_probe_ok_ms, "write_error": r.store_error, "probe_error": r.store_probe_error,
        "disk_full": full.is_some(), "reserve_bytes": r.disk_full.map(|d| d.reserve_bytes)});
    match (&r.store_error, &r.store_probe_error) {
        _ if full.is_some() => Check::with(
            Level::Degraded,
            "disk full: only alarm, journal and audit commits are written (from the reserve); \
             agent events wait in the agents' spools",
            detail,
        ),
        (Some(w), _) => Check::with(Level::Degraded, format!("writes fail: {w}"), detail),
        (None, Some(e)) => Check::with(Level::Degraded, format!("read probe failed: {e}"), detail),
        (None, None) if r.store_probe_ok_ms == 0 && !starting => {
            Check::with(Level::Degraded, "not probed yet", detail)
        }
        (None, None) if r.store_probe_ok_ms > 0 && probe_age > STORE_PROBE_STALE_MS => Check::with(
            Level::Degraded,
            format!("no successful read probe for {} s", probe_age / 1000),
            detail,
        ),
        _ => Check::ok(detail),
    }
}

/// The data directory's file system: full, unknown or low.
fn disk_check(r: &Readings) -> Check {
    let full = r.disk_full.filter(|d| d.full);
    match r.disk {
        _ if full.is_some() => Check::with(
            Level::Degraded,
            format!(
                "full: the database cannot grow ({} MiB free, reserve given back)",
                full.map_or(0, |d| d.free_bytes) >> 20
            ),
            json!({"free_bytes": full.map(|d| d.free_bytes), "total_bytes": r.disk.map(|d| d.1)}),
        ),
        None => Check::with(
            Level::Degraded,
            "free space of the data directory unknown",
            json!({}),
        ),
        Some((free, total)) => {
            let detail = json!({"free_bytes": free, "total_bytes": total});
            let low = DISK_LOW_BYTES.min(total / 20);
            if free < low {
                Check::with(
                    Level::Degraded,
                    format!(
                        "{} MiB free on the data directory's file system",
                        free >> 20
                    ),
                    detail,
                )
            } else {
                Check::ok(detail)
            }
        }
    }
}

/// The ingest's broker connection.
fn broker_check(r: &Readings) -> Check {
    let detail = json!({"connected": r.broker_connected, "embedded": r.embedded_broker, "clients": r.broker_clients});
    if r.broker_connected {
        Check::ok(detail)
    } else {
        Check::with(
            Level::Degraded,
            "the ingest is not connected to the broker",
            detail,
        )
    }
}

/// The ingest: stalled (messages wait, nothing handled) or behind.
fn ingest_check(r: &Readings, starting: bool, since_progress: i64) -> Check {
    let detail = json!({"pending_messages": r.ingest_pending, "last_progress_ms": r.ingest_progress_ms, "last_wait_ms": r.ingest_last_wait_ms});
    if r.ingest_pending > 0 && since_progress > INGEST_STALLED_MS && !starting {
        Check::with(
            Level::Failing,
            format!(
                "stalled: {} messages waiting, nothing handled for {} s",
                r.ingest_pending,
                since_progress / 1000
            ),
            detail,
        )
    } else if r.ingest_last_wait_ms > INGEST_BEHIND_MS && r.ingest_pending > 0 {
        Check::with(
            Level::Degraded,
            format!(
                "behind: the last message waited {} ms",
                r.ingest_last_wait_ms
            ),
            detail,
        )
    } else {
        Check::ok(detail)
    }
}

/// Essential tasks that ended, and the engines' ticker.
fn tasks_check(r: &Readings, starting: bool, since_progress: i64) -> Check {
    let ticker_age = r.now_ms - r.ticker_beat_ms;
    let detail = json!({"essential": r.tasks, "ended": r.ended_tasks, "ticker_last_beat_ms": r.ticker_beat_ms});
    if !r.ended_tasks.is_empty() {
        Check::with(
            Level::Failing,
            format!("essential tasks ended: {}", r.ended_tasks.join(", ")),
            detail,
        )
    } else if (r.ticker_beat_ms == 0 && !starting)
        || (r.ticker_beat_ms > 0 && ticker_age > TICKER_STUCK_MS)
    {
        Check::with(
            Level::Failing,
            format!(
                "the engines' ticker is stuck ({} s since its last beat)",
                if r.ticker_beat_ms == 0 {
                    since_progress / 1000
                } else {
                    ticker_age / 1000
                }
            ),
            detail,
        )
    } else {
        Check::ok(detail)
    }
}

/// The time-series writer's on-disk buffer and store.
fn tsdb_check(t: &TsdbReadings) -> Check {
    let detail = json!({
        "buffer_bytes": t.buffer_bytes, "buffer_max_bytes": t.buffer_max_bytes,
        "batches_waiting": t.batches, "oldest_waiting_ms": t.oldest_pending_ms,
        "dropped_lines": t.dropped_lines, "last_write_ok_ms": t.last_ok_ms,
        "last_write_error_ms": t.last_error_ms,
    });
    let failing_now = t.last_error_ms > t.last_ok_ms;
    if t.dropped_lines > 0 && t.buffer_bytes * 10 >= t.buffer_max_bytes * 9 {
        Check::with(
            Level::Degraded,
            format!(
                "the on-disk buffer is full: {} lines dropped (oldest first)",
                t.dropped_lines
            ),
            detail,
        )
    } else if failing_now && t.batches > 0 {
        Check::with(
            Level::Degraded,
            format!(
                "the store does not accept writes; {} batches wait in the on-disk buffer",
                t.batches
            ),
            detail,
        )
    } else if t.dropped_lines > 0 {
        Check::with(
            Level::Degraded,
            format!(
                "{} lines were dropped (buffer full or refused by the store)",
                t.dropped_lines
            ),
            detail,
        )
    } else {
        Check::ok(detail)
    }
}

/// The DC-09 paths to the fire authority.
fn dc09_check(d: &Dc09Readings) -> Check {
    let down: Vec<&str> = d
        .paths
        .iter()
        .filter(|(_, up)| !up)
        .map(|(n, _)| n.as_str())
        .collect();
    let detail = json!({"queued": d.pending, "rejected": d.rejected,
        "paths": d.paths.iter().map(|(n, up)| json!({"path": n, "up": up})).collect::<Vec<_>>()});
    if d.paths.is_empty() {
        Check::with(Level::Degraded, "no DC-09 path configured", detail)
    } else if down.len() == d.paths.len() {
        Check::with(
            Level::Degraded,
            format!(
                "every path to the fire authority is down ({} queued)",
                d.pending
            ),
            detail,
        )
    } else if !down.is_empty() {
        Check::with(
            Level::Degraded,
            format!("path(s) down: {}", down.join(", ")),
            detail,
        )
    } else if d.rejected > 0 {
        Check::with(
            Level::Degraded,
            format!("{} messages refused by the receiver", d.rejected),
            detail,
        )
    } else {
        Check::ok(detail)
    }
}

/// A multi-site replica's role and view.
fn cluster_check(c: &ClusterReadings, starting: bool) -> Check {
    let detail = json!({"replica": c.replica, "role": if c.leading { "leader" } else { "follower" },
        "leader": c.leader});
    match &c.stale {
        Some(why) => Check::with(Level::Degraded, why.clone(), detail),
        None if !c.leading && c.leader.is_none() && !starting => Check::with(
            Level::Degraded,
            "follower: no leader is known (a takeover is in progress or the database cannot be reached)",
            detail,
        ),
        None => Check::ok(detail),
    }
}

/// Free and total bytes of the file system holding `dir`.
pub fn disk_space(dir: &std::path::Path) -> Option<(u64, u64)> {
    let s = rustix::fs::statvfs(dir).ok()?;
    Some((s.f_bavail * s.f_frsize, s.f_blocks * s.f_frsize))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy() -> Readings {
        Readings {
            now_ms: 100_000,
            ready_ms: 10_000,
            store_probe_ok_ms: 99_000,
            disk: Some((50 << 30, 100 << 30)),
            broker_connected: true,
            embedded_broker: true,
            tasks: 8,
            ticker_beat_ms: 99_500,
            ..Default::default()
        }
    }

    fn check<'a>(c: &'a [(&'static str, Check)], name: &str) -> &'a Check {
        &c.iter().find(|(n, _)| *n == name).unwrap().1
    }

    #[test]
    fn a_healthy_server_is_ok() {
        let (level, checks) = assess(&healthy());
        assert_eq!(level, Level::Ok, "{checks:?}");
    }

    /// Hazard: a multi-site follower cut off from the database keeps showing the alarm state
    /// it last loaded; reported `ok`, operators would trust alarms that may be long over (or
    /// miss new ones).
    #[test]
    fn a_follower_that_cannot_reload_or_knows_no_leader_is_degraded() {
        let mut r = healthy();
        r.cluster = Some(ClusterReadings {
            replica: "b".into(),
            leading: false,
            leader: Some("a".into()),
            stale: None,
        });
        let (level, checks) = assess(&r);
        assert_eq!(level, Level::Ok, "a follower that reloads: {checks:?}");
        assert_eq!(check(&checks, "cluster").detail["role"], "follower");
        r.cluster.as_mut().unwrap().stale = Some("follower: could not reload for 9 s".into());
        let (level, checks) = assess(&r);
        assert_eq!(level, Level::Degraded);
        assert!(
            check(&checks, "cluster")
                .reason
                .as_deref()
                .unwrap()
                .contains("could not reload")
        );
        r.cluster.as_mut().unwrap().stale = None;
        r.cluster.as_mut().unwrap().leader = None;
        assert_eq!(assess(&r).0, Level::Degraded, "no leader known");
        r.cluster.as_mut().unwrap().leading = true;
        r.cluster.as_mut().unwrap().leader = Some("b".into());
        let (level, checks) = assess(&r);
        assert_eq!(level, Level::Ok);
        assert_eq!(check(&checks, "cluster").detail["role"], "leader");
    }

    #[test]
    fn an_ended_essential_task_or_a_stuck_ticker_is_failing() {
        // Hazard: the ingest worker panicked and the server kept answering /health "ok":
        // nothing is ingested, no alarm is raised, and systemd never restarts it.
        let mut r = healthy();
        r.ended_tasks = vec!["ingest.priority".into()];
        let (level, c) = assess(&r);
        assert_eq!(level, Level::Failing);
        assert!(
            check(&c, "tasks")
                .reason
                .as_ref()
                .unwrap()
                .contains("ingest.priority")
        );
        let mut r = healthy();
        r.ticker_beat_ms = 80_000;
        assert_eq!(assess(&r).0, Level::Failing);
        // Never beaten after the start grace is no better than stuck.
        let mut r = healthy();
        r.ticker_beat_ms = 0;
        assert_eq!(assess(&r).0, Level::Failing);
        r.ready_ms = 95_000;
        assert_ne!(assess(&r).0, Level::Failing, "within the start grace");
    }

    #[test]
    fn a_stalled_ingest_is_failing_and_a_slow_one_degraded() {
        let mut r = healthy();
        r.ingest_pending = 12;
        r.ingest_progress_ms = 50_000;
        assert_eq!(assess(&r).0, Level::Failing);
        let mut r = healthy();
        r.ingest_pending = 12;
        r.ingest_progress_ms = 99_900;
        r.ingest_last_wait_ms = 12_000;
        assert_eq!(assess(&r).0, Level::Degraded);
        // Idle (nothing waiting) is not stalled, however long ago the last message was.
        let mut r = healthy();
        r.ingest_progress_ms = 1;
        assert_eq!(assess(&r).0, Level::Ok);
    }

    #[test]
    fn unknown_is_never_ok() {
        // Hazard: a check that cannot read its part reporting "ok" hides the failure it was
        // meant to show.
        let mut r = healthy();
        r.disk = None;
        assert_eq!(assess(&r).0, Level::Degraded);
        let mut r = healthy();
        r.store_probe_ok_ms = 0;
        assert_eq!(assess(&r).0, Level::Degraded);
        let mut r = healthy();
        r.store_probe_ok_ms = 10_000;
        assert_eq!(assess(&r).0, Level::Degraded, "a stale probe");
        let mut r = healthy();
        r.broker_connected = false;
        assert_eq!(assess(&r).0, Level::Degraded);
        let mut r = healthy();
        r.dc09 = Some(Dc09Readings::default());
        assert_eq!(assess(&r).0, Level::Degraded);
    }

    #[test]
    fn store_disk_and_paths_degrade_with_their_reason() {
        let mut r = healthy();
        r.store_error = Some("disk full".into());
        let (level, c) = assess(&r);
        assert_eq!(level, Level::Degraded);
        assert!(
            check(&c, "store")
                .reason
                .as_ref()
                .unwrap()
                .contains("disk full")
        );
        let mut r = healthy();
        r.disk = Some((100 << 20, 100 << 30));
        assert_eq!(assess(&r).0, Level::Degraded);
        let mut r = healthy();
        r.dc09 = Some(Dc09Readings {
            pending: 2,
            rejected: 0,
            paths: vec![("primary".into(), true), ("backup".into(), false)],
        });
        let (level, c) = assess(&r);
        assert_eq!(level, Level::Degraded);
        assert!(
            check(&c, "dc09")
                .reason
                .as_ref()
                .unwrap()
                .contains("backup")
        );
    }

    #[test]
    fn the_store_disk_full_mode_is_one_answer_for_store_and_disk() {
        // Hazard: the store's guard refuses writes (disk full) while /health reads a free-space
        // figure above its threshold (the reserve just given back) and says "ok": the center is
        // deaf to new events and nobody is told.
        let mut r = healthy();
        r.disk_full = Some(DiskFullReadings {
            full: true,
            free_bytes: 8 << 20,
            reserve_bytes: 0,
        });
        let (level, c) = assess(&r);
        assert_eq!(level, Level::Degraded);
        assert!(
            check(&c, "store")
                .reason
                .as_ref()
                .unwrap()
                .contains("disk full")
        );
        assert!(check(&c, "disk").reason.as_ref().unwrap().contains("full"));
        // Out of the mode, the guard's presence alone changes nothing.
        r.disk_full = Some(DiskFullReadings {
            full: false,
            free_bytes: 50 << 30,
            reserve_bytes: 8 << 20,
        });
        assert_eq!(assess(&r).0, Level::Ok);
    }

    #[test]
    fn a_time_series_outage_is_degraded_and_a_full_buffer_says_so() {
        // Hazard: history silently stops while the store is down; or the buffer overflows
        // and trends have holes nobody was told about.
        let mut r = healthy();
        r.tsdb = Some(TsdbReadings {
            buffer_bytes: 10 << 20,
            buffer_max_bytes: 1 << 30,
            batches: 40,
            oldest_pending_ms: 60_000,
            dropped_lines: 0,
            last_ok_ms: 50_000,
            last_error_ms: 99_000,
        });
        let (level, c) = assess(&r);
        assert_eq!(level, Level::Degraded);
        assert!(
            check(&c, "tsdb")
                .reason
                .as_ref()
                .unwrap()
                .contains("40 batches")
        );
        let t = r.tsdb.as_mut().unwrap();
        t.buffer_bytes = 1 << 30;
        t.dropped_lines = 5000;
        let (_, c) = assess(&r);
        assert!(
            check(&c, "tsdb")
                .reason
                .as_ref()
                .unwrap()
                .contains("5000 lines dropped")
        );
        let t = r.tsdb.as_mut().unwrap();
        t.last_ok_ms = 99_500;
        t.buffer_bytes = 0;
        t.batches = 0;
        t.dropped_lines = 0;
        assert_eq!(assess(&r).0, Level::Ok);
    }
}
