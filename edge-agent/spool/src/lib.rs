//! Bounded, checksummed on-disk spool for store-and-forward.
//!
//! The edge agent writes every event and every telemetry batch here before it tries to send
//! it, and removes it only once every configured broker has acknowledged it (PUBACK for QoS 1).
//!
//! # On-disk layout
//!
//! ```text
//! {dir}/LOCK                               exclusive lock (one process per spool)
//! {dir}/meta.json                          epoch, sequence floors, ack cursors, loss counters
//! {dir}/event-{first_seq:020}.seg          event segments, append-only
//! {dir}/telemetry-{first_seq:020}.seg      telemetry segments, append-only
//! ```
//!
//! Segment and record framing is described in [`format`]. Each class has its own sequence
//! numbers, assigned at append time, strictly increasing and (for events) without gaps; they are
//! the wire sequence numbers of `dcim-wire`. `meta.json` is replaced atomically (write to a
//! temporary file, fsync, rename, fsync the directory) and is always written before any segment
//! file is deleted, so a sequence number is never handed out twice.
//!
//! # Epoch
//!
//! A spool draws a random *epoch* (16 hex digits from the operating system's random source)
//! when it is created and keeps it in `meta.json`; a spool opened without one (created by an
//! older version) draws one then. Sequence numbers are unique only within an epoch: a spool that
//! is wiped and created again starts at 1 under a new epoch, which the wire carries
//! (`dcim_wire::TelemetryBatch::epoch`) so that receivers take it as a new stream.
//!
//! # Durability (fsync policy)
//!
//! Every append is written to the kernel with one `pwrite` before [`Spool::append`] returns, so a
//! crash of the agent process (kill -9, panic, OOM kill) loses nothing that was appended. The
//! fsync policy decides what survives a power cut or a kernel crash:
//!
//! * [`FsyncPolicy::Always`] (default for events): `fdatasync` before `append` returns. An
//!   acknowledged event survives a power cut. Costs one disk flush per record.
//! * [`FsyncPolicy::Interval`] (default for telemetry, 1 s): `fdatasync` at most once per
//!   interval, on the append or [`Spool::tick`] that finds the oldest unsynced record older than
//!   the interval. A power cut can lose up to one interval of telemetry.
//! * [`FsyncPolicy::Never`]: leave flushing to the kernel. Survives process crashes only.
//!
//! A record becomes visible to readers ([`Spool::read_after`]) only once it is durable under its
//! class's policy, so nothing is ever published that a power cut could make the spool forget;
//! that is what keeps sequence numbers unique across restarts (with `Never` it is the kernel's
//! page cache that counts as durable). The trade-off of `Interval` is latency: telemetry leaves
//! the agent up to one interval later.
//!
//! [`SpoolConfig::telemetry_visible_before_sync`] removes that wait for telemetry: a record is
//! visible as soon as it is written, and the uniqueness of sequence numbers is kept by a
//! reservation instead: before a not-yet-durable number is handed to readers, `meta.json`'s
//! floor for the class is raised (durably, one `meta.json` write per
//! [`SEQ_RESERVATION`] records) past it, so a power cut that loses the record can never give its
//! number to another one. The cost of a power cut or a crash is a gap in the telemetry sequence
//! (and at most one interval of telemetry, as before); [`Spool::flush`] at a clean shutdown gives
//! the reservation back. Events keep their fsync before they are visible.
//!
//! # Recovery
//!
//! [`Spool::open`] scans every segment. The first record whose frame is incomplete, whose
//! checksum does not match or whose sequence number is out of order ends the valid prefix; the
//! file is truncated there and everything before it is kept ([`Recovery`] says what was cut).
//!
//! # Bounds
//!
//! The spool holds at most `max_bytes` of segment files. When a new record does not fit,
//! acknowledged segments go first, then telemetry segments oldest-first (the number of batches
//! and samples lost is counted and persisted). Events are never thinned: telemetry is refused
//! while events alone fill the spool, and an event is written even over budget (both reported in
//! [`Stats`]). A full disk (`ENOSPC`) is reported as [`SpoolError::DiskFull`]; the partial write
//! is cut off again so the spool stays valid.
//!
//! # A full disk
//!
//! The file system can fill up before the budget does (other files on it, a small partition).
//! Then an event still gets room: when its write fails with `ENOSPC` the spool frees space and
//! tries again, first by deleting closed telemetry segments oldest-first (a counted loss, like
//! thinning), then by deleting `RESERVE`, a file of [`SpoolConfig::reserve_bytes`] (at most a
//! sixteenth of the budget) written at open and re-created by [`Spool::tick`] once space is
//! back. Telemetry that cannot be written is refused and counted by the caller. A spool whose
//! disk is full still opens: `meta.json` is written once there is room (the floors it holds
//! are also implied by the newest segment of each class, which is never deleted for room).

pub mod format;
pub mod policy;

use format::RecordPos;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tracing::{info, warn};

pub use format::Class;

/// When the spool calls `fdatasync` on its segment files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Before `append` returns.
    Always,
    /// At most once per interval (on `append` or `tick`).
    Interval(Duration),
    /// Never explicitly: survives process crashes, not power loss.
    Never,
}

#[derive(Debug, Clone)]
pub struct SpoolConfig {
    pub dir: PathBuf,
    /// Budget for all segment files together.
    pub max_bytes: u64,
    /// A segment is closed and a new one started once it would grow past this size.
    pub segment_bytes: u64,
    pub event_fsync: FsyncPolicy,
    pub telemetry_fsync: FsyncPolicy,
    /// Names of the consumers (brokers) that must all acknowledge a record before it is removed.
    pub consumers: Vec<String>,
    /// How often acknowledgement cursors are written to `meta.json` at most (they are also
    /// written whenever a segment is deleted and on `flush`). A cursor lost in a crash only
    /// means some records are sent again; receivers are idempotent on sequence numbers.
    pub meta_interval: Duration,
    /// Under `FsyncPolicy::Interval`, make telemetry visible to readers (publishable) before it
    /// is fsynced, its sequence number covered by a durable reservation (see the module docs).
    pub telemetry_visible_before_sync: bool,
    /// Disk space kept in `RESERVE` for events when the file system fills up (see the module
    /// docs); at most `max_bytes / 16`; 0 = none. Default 1 MiB.
    pub reserve_bytes: u64,
}

/// Sequence numbers reserved per `meta.json` write for records visible before their fsync.
pub const SEQ_RESERVATION: u64 = 4096;

impl SpoolConfig {
    pub fn new(dir: impl Into<PathBuf>) -> SpoolConfig {
        SpoolConfig {
            dir: dir.into(),
            max_bytes: 256 << 20,
            segment_bytes: 4 << 20,
            event_fsync: FsyncPolicy::Always,
            telemetry_fsync: FsyncPolicy::Interval(Duration::from_secs(1)),
            consumers: vec!["default".into()],
            meta_interval: Duration::from_secs(1),
            telemetry_visible_before_sync: false,
            reserve_bytes: 1 << 20,
        }
    }

    /// The size of `RESERVE`: `reserve_bytes`, at most a sixteenth of the budget.
    pub fn reserve_size(&self) -> u64 {
        self.reserve_bytes.min(self.max_bytes / 16)
    }

    fn policy(&self, class: Class) -> FsyncPolicy {
        match class {
            Class::Event => self.event_fsync,
            Class::Telemetry => self.telemetry_fsync,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool directory {dir}: {source}")]
    Dir { dir: PathBuf, source: io::Error },
    #[error("spool directory {0} is in use by another process (LOCK is held)")]
    Locked(PathBuf),
    #[error("disk full while writing {path}: the record was not spooled ({source})")]
    DiskFull { path: PathBuf, source: io::Error },
    #[error("I/O error on {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path} is not a usable spool file: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "spool is full of unacknowledged events ({event_bytes} of {max_bytes} bytes): telemetry refused ({count} samples lost)"
    )]
    FullOfEvents {
        event_bytes: u64,
        max_bytes: u64,
        count: u32,
    },
    #[error("record of {0} bytes is larger than the maximum of {max} bytes", max = format::MAX_RECORD_PAYLOAD)]
    TooLarge(usize),
    #[error("unknown consumer `{0}`")]
    UnknownConsumer(String),
}

fn io_err(path: &Path, source: io::Error) -> SpoolError {
    if source.kind() == ErrorKind::StorageFull || source.raw_os_error() == Some(28) {
        SpoolError::DiskFull {
            path: path.to_owned(),
            source,
        }
    } else {
        SpoolError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// A record read back from the spool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub class: Class,
    pub seq: u64,
    pub count: u32,
    pub payload: Vec<u8>,
}

/// What recovery found when the spool was opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    pub segments: usize,
    pub records: [u64; 2],
    /// Files whose damaged tail was cut, with the number of bytes removed and why.
    pub truncated: Vec<(PathBuf, u64, &'static str)>,
}

/// Counters for health reporting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Records not yet acknowledged by every consumer, per class (event, telemetry).
    pub pending: [u64; 2],
    pub bytes: u64,
    pub max_bytes: u64,
    pub segments: usize,
    /// Telemetry samples dropped since the spool was created (thinned or refused).
    pub thinned_samples: u64,
    /// Telemetry batches dropped since the spool was created (thinned or refused).
    pub thinned_batches: u64,
    /// Telemetry batches refused because events alone filled the spool.
    pub refused_batches: u64,
    /// Events currently hold more than the byte budget.
    pub events_over_budget: bool,
    /// Next sequence number per class.
    pub next_seq: [u64; 2],
    /// Records found damaged on disk when read back (skipped, lost) since the spool was opened.
    pub corrupt_skipped: u64,
    /// Bytes held in `RESERVE` for events on a full disk (0 once it was used up).
    pub reserve_bytes: u64,
    /// Telemetry batches deleted to make room for events on a full disk (also counted in
    /// `thinned_batches`) since the spool was opened.
    pub disk_full_thinned_batches: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Meta {
    format: u32,
    /// Random id drawn when the spool was created (see the module docs).
    #[serde(default)]
    epoch: String,
    /// Per class, the first sequence number under `epoch`: records before it were written
    /// before the spool had an epoch (the empty epoch). Absent: every record.
    #[serde(default)]
    epoch_from: BTreeMap<Class, u64>,
    /// Lowest sequence number that may be handed out next, per class.
    next_seq: BTreeMap<Class, u64>,
    thinned_samples: u64,
    thinned_batches: u64,
    refused_batches: u64,
    /// Per consumer and class: every record with `seq <= cursor` is acknowledged.
    acked: BTreeMap<String, BTreeMap<Class, u64>>,
    /// Consumers detached for lagging past their limit, with since when (Unix ms): they no
    /// longer hold records in the spool (see [`Spool::detach`]).
    #[serde(default)]
    detached: BTreeMap<String, i64>,
    /// How many times each consumer was detached since the spool was created.
    #[serde(default)]
    detaches: BTreeMap<String, u64>,
}

/// How far one consumer is behind (see [`Spool::lag`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lag {
    /// Records not acknowledged by it that are still in the spool, per class.
    pub records: [u64; 2],
    /// Their framed size in bytes.
    pub bytes: u64,
    /// How long it has acknowledged nothing while records waited for it (ms).
    pub stuck_ms: i64,
    /// Records it will never get from this spool (removed while it was detached), per class.
    pub missed: [u64; 2],
}

#[derive(Debug)]
struct Segment {
    path: PathBuf,
    file: File,
    first_seq: u64,
    records: Vec<RecordPos>,
    len: u64,
    synced_len: u64,
}

impl Segment {
    fn last_seq(&self) -> Option<u64> {
        self.records.last().map(|r| r.seq)
    }
}

#[derive(Debug)]
struct ClassState {
    segments: Vec<Segment>,
    next_seq: u64,
    /// Highest sequence number readers may see (durable under the class's policy).
    visible_seq: u64,
    /// Time of the oldest append not yet fsynced.
    dirty_since_ms: Option<u64>,
}

/// The spool. Not internally synchronised: wrap it in a mutex to share it.
#[derive(Debug)]
pub struct Spool {
    cfg: SpoolConfig,
    _lock: File,
    classes: [ClassState; 2],
    meta: Meta,
    meta_dirty: bool,
    meta_saved_ms: u64,
    total_bytes: u64,
    events_over_budget: bool,
    /// Test hook: fail writes with ENOSPC once this many more bytes have been written.
    write_budget: Option<u64>,
    /// Records found damaged when read back, and skipped.
    corrupt_skipped: std::sync::atomic::AtomicU64,
    /// Size of `RESERVE` on disk (0 when absent).
    reserve_present: u64,
    /// When `RESERVE` was last tried (ms, the caller's clock), so a full disk is not probed at
    /// every tick.
    reserve_tried_ms: Option<u64>,
    disk_full_thinned: u64,
    /// Per consumer: its cursors when last looked at by [`Spool::lag`] and since when
    /// (Unix ms) it has made no progress. In memory: after a restart every consumer gets a
    /// fresh period.
    progress: BTreeMap<String, ([u64; 2], i64)>,
}

const META: &str = "meta.json";
const RESERVE: &str = "RESERVE";
/// How often a missing `RESERVE` is tried again.
const RESERVE_RETRY_MS: u64 = 10_000;

/// A new epoch: 16 hex digits from `/dev/urandom`, or, where that cannot be read, from the
/// clock, the process id and an address (distinct between two creations in practice).
fn new_epoch() -> String {
    use std::io::Read;
    let mut b = [0u8; 8];
    let random = File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
    if random.is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let x = t ^ (u64::from(std::process::id()) << 32) ^ (&b as *const _ as u64);
        b = x.to_le_bytes();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err(dir, e))
}

/// Writes `buf` at `offset`, within the test hook's write budget when one is set: a write
/// past it stops where the budget ends, as on a full disk.
fn write_within(
    file: &File,
    write_budget: &mut Option<u64>,
    buf: &[u8],
    offset: u64,
) -> io::Result<()> {
    match write_budget {
        Some(left) if *left < buf.len() as u64 => {
            let part = *left as usize;
            *left = 0;
            file.write_all_at(&buf[..part], offset)
                .and(Err(io::Error::from(ErrorKind::StorageFull)))
        }
        Some(left) => {
            *left -= buf.len() as u64;
            file.write_all_at(buf, offset)
        }
        None => file.write_all_at(buf, offset),
    }
}

impl ClassState {
    fn empty() -> Self {
        ClassState {
            segments: Vec::new(),
            next_seq: 1,
            visible_seq: 0,
            dirty_since_ms: None,
        }
    }
}

/// Takes the spool directory's `LOCK` file: one process per spool.
fn lock_dir(dir: &Path) -> Result<File, SpoolError> {
    let lock_path = dir.join("LOCK");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| io_err(&lock_path, e))?;
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(fs::TryLockError::WouldBlock) => Err(SpoolError::Locked(dir.to_path_buf())),
        Err(fs::TryLockError::Error(e)) => Err(io_err(&lock_path, e)),
    }
}

/// `meta.json`, or a fresh one when there is none.
fn read_meta(dir: &Path) -> Result<Meta, SpoolError> {
    let meta_path = dir.join(META);
    match fs::read(&meta_path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| SpoolError::Corrupt {
            path: meta_path.clone(),
            reason: e.to_string(),
        }),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Meta {
            format: 1,
            ..Meta::default()
        }),
        Err(e) => Err(io_err(&meta_path, e)),
    }
}

/// The segment files of the directory, sorted by class and first sequence number; leftover
/// `.tmp` files are removed.
fn segment_files(dir: &Path) -> Result<Vec<(Class, u64, PathBuf)>, SpoolError> {
    let mut found: Vec<(Class, u64, PathBuf)> = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
        let entry = entry.map_err(|e| io_err(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some((class, first)) = format::parse_segment_file_name(name) {
            found.push((class, first, entry.path()));
        } else if name.ends_with(".tmp") {
            let _ = fs::remove_file(entry.path());
        }
    }
    found.sort();
    Ok(found)
}

/// Scans one segment file, makes its records durable and cuts a damaged tail (noted in
/// `recovery`); `None` when the file is removed (its header never reached the disk).
fn recover_segment(
    class: Class,
    first_seq: u64,
    path: PathBuf,
    recovery: &mut Recovery,
) -> Result<Option<Segment>, SpoolError> {
    let bytes = fs::read(&path).map_err(|e| io_err(&path, e))?;
    let scan = format::scan_segment(&bytes).map_err(|e| SpoolError::Corrupt {
        path: path.clone(),
        reason: e.to_string(),
    });
    let scan = match scan {
        Ok(s) if s.header.class == class && s.header.first_seq == first_seq => s,
        // A segment whose header never reached the disk (crash right after creation).
        _ if bytes.len() < format::SEGMENT_HEADER_LEN => {
            warn!(path = %path.display(), "removing segment with an incomplete header");
            fs::remove_file(&path).map_err(|e| io_err(&path, e))?;
            return Ok(None);
        }
        Ok(_) => {
            return Err(SpoolError::Corrupt {
                path,
                reason: "header does not match the file name".into(),
            });
        }
        Err(e) => return Err(e),
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| io_err(&path, e))?;
    // Records written before a process crash may still be only in the page cache;
    // make them durable before they become visible (and publishable) again.
    file.sync_data().map_err(|e| io_err(&path, e))?;
    if let Some(why) = scan.damage {
        let cut = bytes.len() as u64 - scan.valid_len;
        warn!(path = %path.display(), bytes = cut, reason = why, "truncating damaged spool tail");
        file.set_len(scan.valid_len)
            .and_then(|()| file.sync_all())
            .map_err(|e| io_err(&path, e))?;
        recovery.truncated.push((path.clone(), cut, why));
    }
    Ok(Some(Segment {
        path,
        file,
        first_seq,
        records: scan.records,
        len: scan.valid_len,
        synced_len: scan.valid_len,
    }))
}

/// The metadata after recovery: an epoch drawn when there is none, cursors of the configured
/// consumers only, none beyond the records that exist.
fn settle_meta(mut meta: Meta, classes: &[ClassState; 2], cfg: &SpoolConfig, dir: &Path) -> Meta {
    if meta.epoch.is_empty() {
        meta.epoch = new_epoch();
        // Records already here were sent (or will be) without an epoch.
        for class in Class::ALL {
            let next = classes[class.index()].next_seq;
            if next > 1 {
                meta.epoch_from.insert(class, next);
            }
        }
        info!(dir = %dir.display(), epoch = %meta.epoch, "spool epoch drawn");
    }
    meta.acked.retain(|name, _| cfg.consumers.contains(name));
    meta.detached.retain(|name, _| cfg.consumers.contains(name));
    for c in &cfg.consumers {
        let cursors = meta.acked.entry(c.clone()).or_default();
        // A cursor can never cover a record that does not exist yet.
        for class in Class::ALL {
            let limit = classes[class.index()].next_seq - 1;
            if let Some(cur) = cursors.get_mut(&class) {
                *cur = (*cur).min(limit);
            }
        }
    }
    meta
}

impl Spool {
    /// Open (or create) the spool in `cfg.dir`, recovering from any crash.
    pub fn open(cfg: SpoolConfig) -> Result<(Spool, Recovery), SpoolError> {
        let dir = cfg.dir.clone();
        fs::create_dir_all(&dir).map_err(|source| SpoolError::Dir {
            dir: dir.clone(),
            source,
        })?;
        let lock = lock_dir(&dir)?;
        let meta = read_meta(&dir)?;
        let mut recovery = Recovery::default();
        let mut classes = [ClassState::empty(), ClassState::empty()];
        let mut total_bytes = 0;
        for (class, first_seq, path) in segment_files(&dir)? {
            let Some(seg) = recover_segment(class, first_seq, path, &mut recovery)? else {
                continue;
            };
            let state = &mut classes[class.index()];
            // Records must continue the class's sequence across files.
            let mut seg = seg;
            let prev_last = state
                .segments
                .last()
                .and_then(Segment::last_seq)
                .unwrap_or(0);
            seg.records.retain(|r| r.seq > prev_last);
            recovery.records[class.index()] += seg.records.len() as u64;
            total_bytes += seg.len;
            state.segments.push(seg);
        }
        for class in Class::ALL {
            let state = &mut classes[class.index()];
            let last = state
                .segments
                .iter()
                .rev()
                .find_map(Segment::last_seq)
                .unwrap_or(0);
            let floor = meta.next_seq.get(&class).copied().unwrap_or(1);
            state.next_seq = floor.max(last + 1).max(1);
            state.visible_seq = last;
            recovery.segments += state.segments.len();
        }
        let meta = settle_meta(meta, &classes, &cfg, &dir);
        info!(
            dir = %dir.display(),
            events = recovery.records[0],
            telemetry = recovery.records[1],
            truncated = recovery.truncated.len(),
            "spool opened"
        );
        let mut spool = Spool {
            cfg,
            _lock: lock,
            classes,
            meta,
            meta_dirty: true,
            meta_saved_ms: 0,
            total_bytes,
            events_over_budget: false,
            write_budget: None,
            corrupt_skipped: Default::default(),
            reserve_present: fs::metadata(dir.join(RESERVE)).map_or(0, |m| m.len()),
            reserve_tried_ms: None,
            disk_full_thinned: 0,
            progress: BTreeMap::new(),
        };
        // A full disk does not stop the start: `meta.json` is written at the next tick that
        // can (what it would hold now is implied by the segments, found again by a restart).
        match spool.save_meta() {
            Ok(()) => {}
            Err(SpoolError::DiskFull { path, .. }) => {
                warn!(path = %path.display(), "disk full at start: meta.json is written once there is room");
                spool.meta_dirty = true;
            }
            Err(e) => return Err(e),
        }
        spool.ensure_reserve(0);
        Ok((spool, recovery))
    }

    pub fn config(&self) -> &SpoolConfig {
        &self.cfg
    }

    /// The spool's epoch (see the module docs): sequence numbers are unique within it.
    pub fn epoch(&self) -> &str {
        &self.meta.epoch
    }

    /// The epoch of record `seq` of `class`: the spool's, or empty for a record written before
    /// the spool had an epoch.
    pub fn epoch_of(&self, class: Class, seq: u64) -> &str {
        match self.meta.epoch_from.get(&class) {
            Some(&from) if seq < from => "",
            _ => &self.meta.epoch,
        }
    }

    /// Append one record. `build` receives the sequence number assigned to the record and returns
    /// its payload (so the payload can embed it); `count` is the number of items it stands for.
    /// Returns the sequence number once the record is written (and fsynced under `Always`).
    pub fn append(
        &mut self,
        class: Class,
        count: u32,
        now_ms: u64,
        build: impl FnOnce(u64) -> Vec<u8>,
    ) -> Result<u64, SpoolError> {
        let seq = self.classes[class.index()].next_seq;
        let payload = build(seq);
        if payload.len() > format::MAX_RECORD_PAYLOAD {
            return Err(SpoolError::TooLarge(payload.len()));
        }
        loop {
            match self.append_built(class, seq, count, now_ms, &payload) {
                // An event gets room on a full disk: older telemetry, then the reserve.
                Err(SpoolError::DiskFull { .. })
                    if class == Class::Event && self.free_disk_for_event()? => {}
                r => return r,
            }
        }
    }

    fn append_built(
        &mut self,
        class: Class,
        seq: u64,
        count: u32,
        now_ms: u64,
        payload: &[u8],
    ) -> Result<u64, SpoolError> {
        let framed = (format::RECORD_HEADER_LEN + payload.len()) as u64;
        self.make_room(class, framed, count)?;
        let mut buf = Vec::with_capacity(framed as usize);
        format::encode_record(seq, count, payload, &mut buf);

        let needs_new = match self.classes[class.index()].segments.last() {
            None => true,
            Some(seg) => !seg.records.is_empty() && seg.len + framed > self.cfg.segment_bytes,
        };
        if needs_new {
            self.sync_class(class)?;
            self.new_segment(class, seq)?;
        }
        let write_budget = &mut self.write_budget;
        let state = &mut self.classes[class.index()];
        let Some(seg) = state.segments.last_mut() else {
            return Err(no_active_segment());
        };
        let offset = seg.len;
        if let Err(e) = write_within(&seg.file, write_budget, &buf, offset) {
            // Cut off whatever part of the record reached the file, so the spool stays valid.
            if let Err(trunc) = seg.file.set_len(offset) {
                warn!(path = %seg.path.display(), error = %trunc, "could not cut a partial record");
            }
            return Err(io_err(&seg.path, e));
        }
        seg.records.push(RecordPos {
            seq,
            count,
            offset,
            framed_len: framed as u32,
        });
        seg.len += framed;
        self.total_bytes += framed;
        state.next_seq = seq + 1;
        match self.cfg.policy(class) {
            FsyncPolicy::Always => {
                if let Err(e) = seg.file.sync_data() {
                    // The state of the page cache is unknown after a failed fsync: retract.
                    let _ = seg.file.set_len(offset);
                    seg.records.pop();
                    seg.len = offset;
                    self.total_bytes -= framed;
                    state.next_seq = seq;
                    return Err(io_err(&seg.path, e));
                }
                seg.synced_len = seg.len;
                state.visible_seq = seq;
            }
            FsyncPolicy::Never => state.visible_seq = seq,
            FsyncPolicy::Interval(iv) => {
                let since = *state.dirty_since_ms.get_or_insert(now_ms);
                if now_ms.saturating_sub(since) >= iv.as_millis() as u64 {
                    self.sync_class(class)?;
                } else if class == Class::Telemetry && self.cfg.telemetry_visible_before_sync {
                    self.reveal_unsynced(class, seq);
                }
            }
        }
        Ok(seq)
    }

    /// Makes `seq` visible before its fsync once the durable floor covers it (raising the floor
    /// by a block when needed). If the floor cannot be written the record stays invisible until
    /// its fsync: a sequence number is never published unprotected.
    fn reveal_unsynced(&mut self, class: Class, seq: u64) {
        let floor = self.meta.next_seq.get(&class).copied().unwrap_or(1);
        if seq >= floor {
            let before = self.meta.next_seq.insert(class, seq + SEQ_RESERVATION);
            if let Err(e) = self.save_meta() {
                match before {
                    Some(b) => self.meta.next_seq.insert(class, b),
                    None => self.meta.next_seq.remove(&class),
                };
                warn!(error = %e, "cannot reserve telemetry sequence numbers: records wait for their fsync");
                return;
            }
        }
        self.classes[class.index()].visible_seq = seq;
    }

    /// Count telemetry samples the caller could not spool (e.g. the disk was full) as lost, so
    /// the loss is reported with the thinned samples.
    pub fn note_lost_telemetry(&mut self, samples: u32) {
        self.meta.thinned_samples += u64::from(samples);
        self.meta.thinned_batches += 1;
        self.meta_dirty = true;
    }

    /// Run time-based work: fsync telemetry under the `Interval` policy, persist ack cursors.
    pub fn tick(&mut self, now_ms: u64) -> Result<(), SpoolError> {
        for class in Class::ALL {
            if let FsyncPolicy::Interval(iv) = self.cfg.policy(class)
                && let Some(since) = self.classes[class.index()].dirty_since_ms
                && now_ms.saturating_sub(since) >= iv.as_millis() as u64
            {
                self.sync_class(class)?;
            }
        }
        if self.meta_dirty
            && now_ms.saturating_sub(self.meta_saved_ms)
                >= self.cfg.meta_interval.as_millis() as u64
        {
            self.save_meta()?;
            self.meta_saved_ms = now_ms;
        }
        self.ensure_reserve(now_ms);
        Ok(())
    }

    /// Writes `RESERVE` when it is missing (at most every 10 s): real blocks, not a sparse
    /// file, so deleting it frees space. A disk too full for it is left alone.
    fn ensure_reserve(&mut self, now_ms: u64) {
        let size = self.cfg.reserve_size();
        if size == 0 || self.reserve_present >= size {
            return;
        }
        if self
            .reserve_tried_ms
            .is_some_and(|t| now_ms.saturating_sub(t) < RESERVE_RETRY_MS)
        {
            return;
        }
        self.reserve_tried_ms = Some(now_ms);
        // Not on a disk that is still (nearly) full: the attempt would fill it for a moment.
        if self.write_budget.is_none()
            && rustix::fs::statvfs(&self.cfg.dir)
                .is_ok_and(|v| v.f_bavail.saturating_mul(v.f_frsize) < 2 * size)
        {
            return;
        }
        let path = self.cfg.dir.join(RESERVE);
        let tmp = self.cfg.dir.join("RESERVE.tmp");
        let budget = &mut self.write_budget;
        let written = (|| {
            let f = File::create(&tmp)?;
            let chunk = vec![0u8; 64 * 1024];
            let mut at = 0u64;
            while at < size {
                let n = (size - at).min(chunk.len() as u64);
                if let Some(left) = budget.as_mut() {
                    if *left < n {
                        return Err(io::Error::from(ErrorKind::StorageFull));
                    }
                    *left -= n;
                }
                f.write_all_at(&chunk[..n as usize], at)?;
                at += n;
            }
            f.sync_all()?;
            fs::rename(&tmp, &path)
        })();
        match written {
            Ok(()) => {
                self.reserve_present = size;
                let _ = sync_dir(&self.cfg.dir);
            }
            Err(_) => {
                let _ = fs::remove_file(&tmp);
            }
        }
    }

    /// Frees disk space for an event that did not fit: closed telemetry segments oldest-first
    /// (counted as thinned), then `RESERVE`. Whether anything was freed.
    fn free_disk_for_event(&mut self) -> Result<bool, SpoolError> {
        let closed = &self.classes[Class::Telemetry.index()].segments;
        if closed.len() > 1 {
            let first = closed[0].first_seq;
            // The newest telemetry segment stays: it carries the class's sequence floor, so
            // this needs no meta.json write first (there may be no room for one).
            self.drop_segments_on_full_disk(&[(Class::Telemetry, first)])?;
            self.disk_full_thinned += 1;
            return Ok(true);
        }
        if self.reserve_present > 0 {
            let path = self.cfg.dir.join(RESERVE);
            fs::remove_file(&path).map_err(|e| io_err(&path, e))?;
            if let Some(left) = self.write_budget.as_mut() {
                *left += self.reserve_present;
            }
            self.reserve_present = 0;
            warn!(
                path = %path.display(),
                "disk full: the spool's reserve was released to keep events"
            );
            return Ok(true);
        }
        Ok(false)
    }

    /// [`Spool::drop_segments`] for a full disk: the meta file is written first if it can be
    /// (else right after the delete), so the loss is counted.
    fn drop_segments_on_full_disk(&mut self, victims: &[(Class, u64)]) -> Result<(), SpoolError> {
        match self.drop_segments_logged(victims, true) {
            Err(SpoolError::DiskFull { .. }) => {}
            r => return r,
        }
        // The meta file could not be written: count, delete, then write it with the room
        // the delete made.
        self.count_thinned(victims, true);
        for &(class, first) in victims {
            self.remove_segment(class, first)?;
        }
        self.meta_dirty = true;
        let _ = sync_dir(&self.cfg.dir);
        if self.save_meta().is_ok() {
            self.meta_dirty = false;
        }
        Ok(())
    }

    /// Fsync everything and persist the cursors (on shutdown). With every record durable, a
    /// sequence reservation is no longer needed: the floors go back to the next numbers, so a
    /// clean restart continues without a gap.
    pub fn flush(&mut self) -> Result<(), SpoolError> {
        for class in Class::ALL {
            self.sync_class(class)?;
        }
        for class in Class::ALL {
            let next = self.classes[class.index()].next_seq;
            self.meta.next_seq.insert(class, next);
        }
        self.save_meta()
    }

    fn sync_class(&mut self, class: Class) -> Result<(), SpoolError> {
        let state = &mut self.classes[class.index()];
        for seg in state.segments.iter_mut().rev() {
            if seg.synced_len == seg.len {
                break;
            }
            seg.file.sync_data().map_err(|e| io_err(&seg.path, e))?;
            seg.synced_len = seg.len;
        }
        state.dirty_since_ms = None;
        if let Some(last) = state.segments.iter().rev().find_map(Segment::last_seq) {
            state.visible_seq = last;
        }
        Ok(())
    }

    fn new_segment(&mut self, class: Class, first_seq: u64) -> Result<(), SpoolError> {
        let path = self
            .cfg
            .dir
            .join(format::segment_file_name(class, first_seq));
        let header = format::encode_segment_header(&format::SegmentHeader { class, first_seq });
        let created = (|| {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)?;
            if let Some(left) = self.write_budget.as_mut() {
                if *left < header.len() as u64 {
                    return Err(io::Error::from(ErrorKind::StorageFull));
                }
                *left -= header.len() as u64;
            }
            file.write_all_at(&header, 0)?;
            file.sync_all()?;
            Ok(file)
        })();
        let file = match created {
            Ok(f) => f,
            Err(e) => {
                let _ = fs::remove_file(&path);
                return Err(io_err(&path, e));
            }
        };
        sync_dir(&self.cfg.dir)?;
        let len = header.len() as u64;
        self.total_bytes += len;
        self.classes[class.index()].segments.push(Segment {
            path,
            file,
            first_seq,
            records: Vec::new(),
            len,
            synced_len: len,
        });
        Ok(())
    }

    /// Lowest cursor over the consumers that hold records (every consumer not detached, or
    /// every consumer when all are detached): records up to it may be removed.
    fn min_acked(&self, class: Class) -> u64 {
        let attached: Vec<&String> = self
            .cfg
            .consumers
            .iter()
            .filter(|c| !self.meta.detached.contains_key(*c))
            .collect();
        let holders = if attached.is_empty() {
            self.cfg.consumers.iter().collect()
        } else {
            attached
        };
        holders
            .into_iter()
            .map(|c| self.acked(c, class))
            .min()
            .unwrap_or(0)
    }

    /// How far `consumer` is behind at `now_ms`. A consumer that has nothing pending, or whose
    /// cursor moved since the last call, has made progress now.
    pub fn lag(&mut self, consumer: &str, now_ms: i64) -> Lag {
        let cursors = Class::ALL.map(|c| self.acked(consumer, c));
        let mut lag = Lag::default();
        for class in Class::ALL {
            let cur = cursors[class.index()];
            let segs = &self.classes[class.index()].segments;
            for seg in segs {
                let first = seg.records.partition_point(|r| r.seq <= cur);
                lag.records[class.index()] += (seg.records.len() - first) as u64;
                lag.bytes += seg.records[first..]
                    .iter()
                    .map(|r| u64::from(r.framed_len))
                    .sum::<u64>();
            }
            let oldest = segs
                .iter()
                .find_map(|s| s.records.first())
                .map(|r| r.seq)
                .unwrap_or(self.classes[class.index()].next_seq);
            lag.missed[class.index()] = oldest.saturating_sub(1).saturating_sub(cur);
        }
        let pending = lag.records.iter().sum::<u64>() > 0;
        let entry = self
            .progress
            .entry(consumer.to_owned())
            .or_insert((cursors, now_ms));
        if !pending || entry.0 != cursors {
            *entry = (cursors, now_ms);
        }
        lag.stuck_ms = now_ms - entry.1;
        lag
    }

    /// Stops `consumer` from holding records: from now on a record leaves the spool once
    /// every other consumer has it. Persisted and counted. Returns whether it was attached.
    /// A detached consumer still reads and acknowledges as before; records removed meanwhile
    /// are [`Lag::missed`] for it.
    pub fn detach(&mut self, consumer: &str, now_ms: i64) -> Result<bool, SpoolError> {
        if !self.cfg.consumers.iter().any(|c| c == consumer) {
            return Err(SpoolError::UnknownConsumer(consumer.to_owned()));
        }
        if self.meta.detached.contains_key(consumer) {
            return Ok(false);
        }
        self.meta.detached.insert(consumer.to_owned(), now_ms);
        *self.meta.detaches.entry(consumer.to_owned()).or_insert(0) += 1;
        self.save_meta()?;
        self.collect_garbage()?;
        Ok(true)
    }

    /// `consumer` holds records again. Returns whether it was detached.
    pub fn attach(&mut self, consumer: &str) -> Result<bool, SpoolError> {
        if self.meta.detached.remove(consumer).is_none() {
            return Ok(false);
        }
        self.save_meta()?;
        Ok(true)
    }

    /// Detached consumers and since when (Unix ms).
    pub fn detached(&self) -> Vec<(String, i64)> {
        self.meta
            .detached
            .iter()
            .map(|(c, t)| (c.clone(), *t))
            .collect()
    }

    pub fn is_detached(&self, consumer: &str) -> bool {
        self.meta.detached.contains_key(consumer)
    }

    /// How many times `consumer` was detached since the spool was created.
    pub fn detach_count(&self, consumer: &str) -> u64 {
        self.meta.detaches.get(consumer).copied().unwrap_or(0)
    }

    fn make_room(&mut self, class: Class, need: u64, count: u32) -> Result<(), SpoolError> {
        if self.total_bytes + need <= self.cfg.max_bytes {
            self.events_over_budget = false;
            return Ok(());
        }
        let mut cands = Vec::new();
        let mut ids = Vec::new();
        for c in Class::ALL {
            let min = self.min_acked(c);
            let n = self.classes[c.index()].segments.len();
            for (i, seg) in self.classes[c.index()].segments.iter().enumerate() {
                cands.push(policy::Candidate {
                    class: c,
                    bytes: seg.len,
                    fully_acked: seg.last_seq().is_none_or(|l| l <= min),
                    active: i + 1 == n,
                });
                ids.push((c, seg.first_seq));
            }
        }
        let decision = policy::plan(&cands, self.total_bytes, self.cfg.max_bytes, need, class);
        let drop = match decision {
            policy::Decision::Fits { drop } => {
                self.events_over_budget = false;
                drop
            }
            policy::Decision::EventOverBudget { drop } => {
                if !self.events_over_budget {
                    warn!(
                        max_bytes = self.cfg.max_bytes,
                        "spool over budget with unacknowledged events alone; events are still kept"
                    );
                }
                self.events_over_budget = true;
                drop
            }
            policy::Decision::RefuseTelemetry => {
                self.events_over_budget = true;
                self.meta.thinned_samples += u64::from(count);
                self.meta.thinned_batches += 1;
                self.meta.refused_batches += 1;
                self.save_meta()?;
                let event_bytes = self.classes[0].segments.iter().map(|s| s.len).sum();
                return Err(SpoolError::FullOfEvents {
                    event_bytes,
                    max_bytes: self.cfg.max_bytes,
                    count,
                });
            }
        };
        let victims: Vec<(Class, u64)> = drop.into_iter().map(|i| ids[i]).collect();
        self.drop_segments(&victims)
    }

    /// Delete whole segments; unacknowledged telemetry in them is counted as thinned. The meta
    /// file (with the sequence floors) is saved before any file is removed.
    fn drop_segments(&mut self, victims: &[(Class, u64)]) -> Result<(), SpoolError> {
        self.drop_segments_logged(victims, false)
    }

    /// [`Spool::drop_segments`]; `disk_full`: the thinning is reported by the caller's
    /// episode, not logged per segment.
    fn drop_segments_logged(
        &mut self,
        victims: &[(Class, u64)],
        disk_full: bool,
    ) -> Result<(), SpoolError> {
        if victims.is_empty() {
            return Ok(());
        }
        let counted = (self.meta.thinned_batches, self.meta.thinned_samples);
        self.count_thinned(victims, disk_full);
        for class in Class::ALL {
            let state = &self.classes[class.index()];
            self.meta.next_seq.insert(class, state.next_seq);
        }
        if let Err(e) = self.save_meta() {
            // Nothing deleted: the count is taken back (the caller may count it again).
            (self.meta.thinned_batches, self.meta.thinned_samples) = counted;
            return Err(e);
        }
        for &(class, first) in victims {
            self.remove_segment(class, first)?;
        }
        sync_dir(&self.cfg.dir)
    }

    fn remove_segment(&mut self, class: Class, first: u64) -> Result<(), SpoolError> {
        let state = &mut self.classes[class.index()];
        if let Some(pos) = state.segments.iter().position(|s| s.first_seq == first) {
            let seg = state.segments.remove(pos);
            fs::remove_file(&seg.path).map_err(|e| io_err(&seg.path, e))?;
            self.total_bytes -= seg.len;
            // The test hook's simulated disk gets the space back.
            if let Some(left) = self.write_budget.as_mut() {
                *left += seg.len;
            }
        }
        Ok(())
    }

    /// Counts the unacknowledged telemetry in `victims` as thinned (logged, unless on a full
    /// disk, where the caller reports the episode once).
    fn count_thinned(&mut self, victims: &[(Class, u64)], disk_full: bool) {
        for &(class, first) in victims {
            let min = self.min_acked(class);
            let state = &self.classes[class.index()];
            if let Some(seg) = state.segments.iter().find(|s| s.first_seq == first) {
                let lost: Vec<&RecordPos> = seg.records.iter().filter(|r| r.seq > min).collect();
                if !lost.is_empty() {
                    let samples: u64 = lost.iter().map(|r| u64::from(r.count)).sum();
                    if disk_full {
                        tracing::debug!(
                            batches = lost.len(),
                            samples,
                            "disk full: oldest telemetry deleted to keep events"
                        );
                    } else {
                        warn!(
                            class = %class,
                            batches = lost.len(),
                            samples,
                            first_seq = lost[0].seq,
                            "spool full: thinning oldest telemetry"
                        );
                    }
                    self.meta.thinned_batches += lost.len() as u64;
                    self.meta.thinned_samples += samples;
                }
            }
        }
    }

    /// Remove closed segments that every consumer has acknowledged.
    fn collect_garbage(&mut self) -> Result<(), SpoolError> {
        let mut victims = Vec::new();
        for class in Class::ALL {
            let min = self.min_acked(class);
            let segs = &self.classes[class.index()].segments;
            for seg in segs.iter().take(segs.len().saturating_sub(1)) {
                match seg.last_seq() {
                    Some(last) if last <= min => victims.push((class, seg.first_seq)),
                    None => victims.push((class, seg.first_seq)),
                    _ => break,
                }
            }
        }
        self.drop_segments(&victims)
    }

    /// Up to `max_records` visible records of `class` with `seq > after`, in order, stopping
    /// early once `max_bytes` of payload is reached (at least one record is returned if any).
    pub fn read_after(
        &self,
        class: Class,
        after: u64,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Vec<Record>, SpoolError> {
        let state = &self.classes[class.index()];
        let mut out = Vec::new();
        let mut bytes = 0usize;
        let start = state
            .segments
            .partition_point(|s| s.last_seq().is_some_and(|l| l <= after));
        'segs: for seg in &state.segments[start..] {
            let first = seg.records.partition_point(|r| r.seq <= after);
            for pos in &seg.records[first..] {
                if pos.seq > state.visible_seq
                    || out.len() >= max_records
                    || (!out.is_empty() && bytes + pos.framed_len as usize > max_bytes)
                {
                    break 'segs;
                }
                let mut buf = vec![0u8; pos.framed_len as usize];
                seg.file
                    .read_exact_at(&mut buf, pos.offset)
                    .map_err(|e| io_err(&seg.path, e))?;
                match format::decode_record(&buf) {
                    format::Decoded::Record {
                        seq,
                        count,
                        payload,
                        ..
                    } if seq == pos.seq => {
                        bytes += payload.len();
                        out.push(Record {
                            class,
                            seq,
                            count,
                            payload: payload.to_vec(),
                        });
                    }
                    _ => {
                        // The bytes changed on disk after they were written and checked (media
                        // error). Skipping the record lets everything behind it through; the
                        // receiver sees the gap and the counter reports it.
                        self.corrupt_skipped
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        tracing::error!(
                            path = %seg.path.display(),
                            class = %class,
                            seq = pos.seq,
                            offset = pos.offset,
                            "SPOOL RECORD DAMAGED ON DISK: skipped"
                        );
                    }
                }
            }
        }
        Ok(out)
    }

    /// Record that `consumer` has acknowledged every record of `class` up to `upto`.
    /// Cursors only move forward. Fully acknowledged closed segments are deleted.
    pub fn ack(&mut self, consumer: &str, class: Class, upto: u64) -> Result<(), SpoolError> {
        let cursors = self
            .meta
            .acked
            .get_mut(consumer)
            .ok_or_else(|| SpoolError::UnknownConsumer(consumer.to_owned()))?;
        let cursor = cursors.entry(class).or_insert(0);
        if upto > *cursor {
            *cursor = upto;
            self.meta_dirty = true;
            self.collect_garbage()?;
        }
        Ok(())
    }

    /// The acknowledgement cursor of a consumer (0 when it has acknowledged nothing).
    pub fn acked(&self, consumer: &str, class: Class) -> u64 {
        self.meta
            .acked
            .get(consumer)
            .and_then(|c| c.get(&class))
            .copied()
            .unwrap_or(0)
    }

    /// Records of `class` not yet acknowledged by `consumer`.
    pub fn pending_for(&self, consumer: &str, class: Class) -> u64 {
        let cursor = self.acked(consumer, class);
        self.classes[class.index()]
            .segments
            .iter()
            .map(|s| s.records.iter().filter(|r| r.seq > cursor).count() as u64)
            .sum()
    }

    pub fn stats(&self) -> Stats {
        let pending = Class::ALL.map(|c| {
            let min = self.min_acked(c);
            self.classes[c.index()]
                .segments
                .iter()
                .map(|s| s.records.len() - s.records.partition_point(|r| r.seq <= min))
                .sum::<usize>() as u64
        });
        Stats {
            pending,
            bytes: self.total_bytes,
            max_bytes: self.cfg.max_bytes,
            segments: self.classes.iter().map(|c| c.segments.len()).sum(),
            thinned_samples: self.meta.thinned_samples,
            thinned_batches: self.meta.thinned_batches,
            refused_batches: self.meta.refused_batches,
            events_over_budget: self.events_over_budget,
            next_seq: Class::ALL.map(|c| self.classes[c.index()].next_seq),
            corrupt_skipped: self
                .corrupt_skipped
                .load(std::sync::atomic::Ordering::Relaxed),
            reserve_bytes: self.reserve_present,
            disk_full_thinned_batches: self.disk_full_thinned,
        }
    }

    /// Length of the part of the newest segment of `class` that is known to be on disk, and its
    /// path: everything past it may be lost in a power cut. For crash tests.
    #[doc(hidden)]
    pub fn durable_tail(&self, class: Class) -> Option<(PathBuf, u64)> {
        self.classes[class.index()]
            .segments
            .last()
            .map(|s| (s.path.clone(), s.synced_len))
    }

    /// Make writes fail with ENOSPC once `bytes` more bytes have been written (segments,
    /// `meta.json`, `RESERVE`); deleting a segment or the reserve gives its bytes back, like a
    /// file system with `bytes` free. For tests.
    #[doc(hidden)]
    pub fn fail_writes_after(&mut self, bytes: Option<u64>) {
        self.write_budget = bytes;
    }

    fn save_meta(&mut self) -> Result<(), SpoolError> {
        for class in Class::ALL {
            let next = self.classes[class.index()].next_seq;
            let floor = self.meta.next_seq.entry(class).or_insert(1);
            *floor = (*floor).max(next);
        }
        let path = self.cfg.dir.join(META);
        let tmp = self.cfg.dir.join("meta.json.tmp");
        let bytes = serde_json::to_vec_pretty(&self.meta).unwrap_or_default();
        let budget = self.write_budget;
        let written = (|| {
            let f = File::create(&tmp)?;
            // Test hook: a rewrite of meta.json fits unless the disk is completely full (it
            // replaces the previous one).
            if budget.is_some_and(|left| left == 0) {
                return Err(io::Error::from(ErrorKind::StorageFull));
            }
            f.write_all_at(&bytes, 0)?;
            f.sync_all()?;
            fs::rename(&tmp, &path)
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(io_err(&path, e));
        }
        sync_dir(&self.cfg.dir)?;
        self.meta_dirty = false;
        Ok(())
    }
}

fn no_active_segment() -> SpoolError {
    SpoolError::Corrupt {
        path: PathBuf::new(),
        reason: "internal: no active segment after creating one".into(),
    }
}

#[cfg(test)]
mod tests;
