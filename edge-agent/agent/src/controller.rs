//! Fire events of racks with their own controller (`[[controller]]`), forwarded over DC-09.
//!
//! The controller runs the staged fire logic itself; the agent reads its input registers
//! (`device-profiles/rack-controller.toml`, map in `firmware/rack-registers`) in one request —
//! stage, status, troubles and the event-log window are one consistent image — and turns their
//! changes into the same DC-09 events as the agent's own `[[rack]]` logic (zone and rack number
//! kept).
//!
//! What comes from where:
//! - the event log (sequence numbers): stage entries (every stage, pre-alarm to stage 5, its
//!   own alarm), the room's gas release (stage 5, as the agent's own `[[rack]]` logic reports
//!   it: the stage it gives), local resets and resets with the key held (restores of every stage
//!   alarm sent), gas released, battery isolated, and unexpected controller resets (a fire
//!   trouble: carried by the trouble condition when that condition is raised in the same read,
//!   else its own trouble message, with its restore when no trouble is standing);
//! - the registers (reconciled on every read): the stage, as a backstop when log entries were
//!   missed (window overrun, controller reboot, first contact); aggregated conditions with
//!   alarm and restore: sensor trouble (trouble bits 0..=6), other troubles (bits 7..), off-gas
//!   supervisory, manual-only bypass, fire authority in command (status bits 1..=3), the
//!   reset-loop lockout (status bit 13: battery isolated, restored when a local reset ends it);
//!   and the controller not answering (a fire trouble of that rack).
//!
//! Exactly once across agent restarts: [`advance`] is pure and returns the next [`Cursor`] with
//! the messages to send in `pending`, each with a unique id (`{agent}:{device}:{boot}:s{seq}` for a
//! log entry, `...:c{n}` for a state change). The shell writes the cursor to disk (temp file,
//! fsync, rename) BEFORE submitting, then submits to the DC-09 outbox, which de-duplicates by
//! id; a restart resubmits what the saved cursor still lists as pending. So a crash at any point
//! neither loses a message (it is in the saved cursor or already in the outbox) nor sends one
//! twice (same id). `boot` changes when the controller reboots (its uptime goes back), because
//! its event sequence numbers may then repeat.
//!
//! While the controller itself is in test mode (status bit 4) its events are sent as test.

use crate::config::ControllerConfig;
use crate::fire::{dc09_reset, stage_kind};
use fire_logic::Stage;
use rack_registers::map::{self, event_entry, event_kind, input};
use serde::{Deserialize, Serialize};
use sia_dc09::{Event, EventKind as K};
use std::path::Path;
use std::time::Duration;
use tracing::{error, info, warn};

/// Input registers read per poll (the whole map).
pub const BLOCK: u16 = input::COUNT;

/// One log entry of the controller's window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogEntry {
    pub seq: u32,
    pub time_s: u32,
    pub kind: u8,
    pub detail: u16,
}

/// One consistent read of the controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    pub uptime_s: u32,
    pub stage: u16,
    pub status: u16,
    pub troubles: u32,
    pub event_seq: u32,
    /// Cause of the controller's last reset (`map::reset_cause` bits).
    pub reset_cause: u16,
    /// Newest first, as in the window.
    pub events: Vec<LogEntry>,
}

fn u32_at(regs: &[u16], a: u16) -> u32 {
    (u32::from(regs[usize::from(a)]) << 16) | u32::from(regs[usize::from(a) + 1])
}

/// Decodes the input-register image (`regs[0]` = register 0).
pub fn decode(regs: &[u16]) -> Result<Reading, String> {
    if regs.len() < usize::from(BLOCK) {
        return Err(format!("{} registers read, expected {BLOCK}", regs.len()));
    }
    let mv = regs[usize::from(input::MAP_VERSION)];
    if mv != map::MAP_VERSION {
        return Err(format!(
            "register map version {mv}, this agent reads version {}",
            map::MAP_VERSION
        ));
    }
    let stage = regs[usize::from(input::STAGE)];
    if Stage::from_code(stage.min(255) as u8).is_none() {
        return Err(format!("stage register holds {stage}, expected 0..=6"));
    }
    let n = regs[usize::from(input::EVENT_WINDOW_LEN)].min(map::EVENT_WINDOW_ENTRIES);
    let events = (0..n)
        .map(|i| {
            let b = input::EVENT_WINDOW + i * map::EVENT_ENTRY_REGS;
            let code = regs[usize::from(b + event_entry::CODE)];
            LogEntry {
                seq: u32_at(regs, b + event_entry::SEQ),
                time_s: u32_at(regs, b + event_entry::TIME_S),
                kind: code as u8,
                detail: regs[usize::from(b + event_entry::DETAIL)],
            }
        })
        .collect();
    Ok(Reading {
        uptime_s: u32_at(regs, input::UPTIME_S),
        stage,
        status: regs[usize::from(input::STATUS)],
        troubles: u32_at(regs, input::TROUBLES),
        event_seq: u32_at(regs, input::EVENT_SEQ),
        reset_cause: regs[usize::from(input::RESET_CAUSE)],
        events,
    })
}

/// Conditions reported with alarm and restore, as bits of [`Cursor::flags`].
const CONDITIONS: [(u8, K); 7] = [
    (0, K::FireTroubleSensor),
    (1, K::FireTrouble),
    (2, K::FireSupervisoryOffgas),
    (3, K::FireManualOnly),
    (4, K::FireAuthority),
    // the controller does not answer
    (5, K::FireTrouble),
    // the reset-loop lockout holds the battery isolated
    (6, K::BatteryIsolated),
];
const COMM_FLAG: u8 = 5;
const TROUBLE_FLAG: u8 = 1;

/// Sensor-invalid and no-valid-temperature trouble bits.
const SENSOR_TROUBLES: u32 = 0x7F;

fn conditions(r: &Reading) -> u8 {
    let mut f = 0u8;
    if r.troubles & SENSOR_TROUBLES != 0 {
        f |= 1 << 0;
    }
    if r.troubles & !SENSOR_TROUBLES != 0 {
        f |= 1 << 1;
    }
    if r.status & map::status::OFFGAS_WARNING != 0 {
        f |= 1 << 2;
    }
    if r.status & map::status::MANUAL_ONLY != 0 {
        f |= 1 << 3;
    }
    if r.status & map::status::AUTHORITY != 0 {
        f |= 1 << 4;
    }
    if r.status & map::status::RESET_LOOP != 0 {
        f |= 1 << 6;
    }
    f
}

/// What has been reported for one controller, and what is still to be submitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// Names the controller's current boot (Unix ms when the agent first saw it).
    pub boot: i64,
    /// Newest log entry handled in this boot.
    pub last_seq: u32,
    /// Uptime at the last read (smaller later = the controller rebooted).
    pub uptime_s: u32,
    /// Stage code whose alarms (and every lower stage's) were sent; 0 = none.
    pub stage: u16,
    /// Conditions reported active (bits of `CONDITIONS`).
    pub flags: u8,
    /// Counter for the ids of state-derived messages.
    pub next: u64,
    /// Messages decided but not yet confirmed in the DC-09 outbox: `(event id, event)`.
    pub pending: Vec<(String, Event)>,
    /// The controller has answered at least once (before that only its silence is reported).
    pub seen: bool,
}

impl Cursor {
    fn new(now_ms: i64) -> Cursor {
        Cursor {
            boot: now_ms,
            last_seq: 0,
            uptime_s: 0,
            stage: 0,
            flags: 0,
            next: 0,
            pending: Vec::new(),
            seen: false,
        }
    }
}

/// Identity of the controller in messages and ids.
#[derive(Debug, Clone)]
pub struct Ident {
    /// `{agent}:{device}`.
    pub prefix: String,
    pub zone: u16,
    pub rack: u16,
}

struct Out<'a> {
    c: &'a mut Cursor,
    id: &'a Ident,
    test: bool,
}

impl Out<'_> {
    fn push(&mut self, id: String, kind: K, restore: bool) {
        let mut ev = Event::new(kind, self.id.zone, self.id.rack);
        ev.restore = restore;
        ev.test = self.test;
        self.c.pending.push((id, ev));
    }
    fn state_id(&mut self) -> String {
        self.c.next += 1;
        format!("{}:{}:c{}", self.id.prefix, self.c.boot, self.c.next)
    }
    /// Alarms of every stage above the reported one up to `to`.
    fn raise_stages(&mut self, to: u16, log_id: Option<&str>) {
        for code in (self.c.stage + 1)..=to {
            let Some(kind) = Stage::from_code(code as u8).and_then(stage_kind) else {
                continue;
            };
            let id = match log_id {
                Some(l) if code == to => l.to_owned(),
                Some(l) => format!("{l}/{code}"),
                None => self.state_id(),
            };
            self.push(id, kind, false);
        }
        self.c.stage = self.c.stage.max(to);
    }
    /// Restores of every stage alarm sent (a local reset).
    fn restore_stages(&mut self, log_id: Option<&str>) {
        if self.c.stage == 0 {
            return;
        }
        let latched = Stage::from_code(self.c.stage as u8).unwrap_or(Stage::Stage5);
        for (i, ev) in dc09_reset(latched, 0, 0).into_iter().enumerate() {
            let id = match log_id {
                Some(l) => format!("{l}/{i}"),
                None => self.state_id(),
            };
            self.push(id, ev.kind, true);
        }
        self.c.stage = 0;
    }
}

/// The next cursor after a successful read at `now_ms` (Unix ms). `cursor` is `None` on first
/// contact (nothing reported yet): the log is not replayed then, the present state is reported.
pub fn advance(cursor: Option<&Cursor>, r: &Reading, now_ms: i64, ident: &Ident) -> Cursor {
    let mut c = cursor.cloned().unwrap_or_else(|| Cursor::new(now_ms));
    let new_boot = c.note_boot(r, now_ms);
    let test = r.status & map::status::TEST_MODE != 0;
    let mut out = Out {
        c: &mut c,
        id: ident,
        test,
    };
    let mut unexpected_resets = out.replay_log(r);
    // Backstop: a new boot whose reset entry left the window before this read (a busy first
    // second) still reports an unexpected cause, from the register.
    let reset_seen = r
        .events
        .iter()
        .any(|e| e.kind == event_kind::CONTROLLER_RESET);
    if new_boot && !reset_seen && r.reset_cause & map::reset_cause::UNEXPECTED != 0 {
        let id = out.state_id();
        unexpected_resets.push(id);
    }
    // Backstop: the registers are the truth for the stage.
    if r.stage < out.c.stage {
        out.restore_stages(None);
    }
    if r.stage > out.c.stage {
        out.raise_stages(r.stage, None);
    }
    // Conditions; this read succeeded, so a reported comm loss is restored too.
    let target = conditions(r);
    out.unexpected_resets(unexpected_resets, target);
    flags_to(&mut out, target);
    c
}

impl Cursor {
    /// Takes the uptime of a successful read; true when the controller booted since the last
    /// one (its window is fresh and its sequence numbers may repeat old ones).
    fn note_boot(&mut self, r: &Reading, now_ms: i64) -> bool {
        let mut new_boot = false;
        if !self.seen {
            // First contact: the log is not replayed, the present state is reported below.
            self.seen = true;
            self.last_seq = r.event_seq;
        } else if r.uptime_s < self.uptime_s || r.event_seq < self.last_seq {
            // A new boot: its window is fresh and its sequence numbers may repeat old ones.
            self.boot = now_ms.max(self.boot + 1);
            self.last_seq = 0;
            new_boot = true;
        }
        self.uptime_s = r.uptime_s;
        new_boot
    }
}

impl Out<'_> {
    /// Reports the log entries not reported yet, in sequence order; returns the ids of the
    /// unexpected controller resets among them (reported with the conditions).
    fn replay_log(&mut self, r: &Reading) -> Vec<String> {
        let mut new: Vec<&LogEntry> = r
            .events
            .iter()
            .filter(|e| e.seq > self.c.last_seq)
            .collect();
        new.sort_by_key(|e| e.seq);
        let mut unexpected_resets = Vec::new();
        for e in new {
            let log_id = format!("{}:{}:s{}", self.id.prefix, self.c.boot, e.seq);
            match e.kind {
                event_kind::STAGE_ENTERED => {
                    let to = e.detail.min(6);
                    if to > self.c.stage {
                        self.raise_stages(to, Some(&log_id));
                    }
                }
                event_kind::RESET_ACCEPTED | event_kind::RESET_OVERRIDE => {
                    self.restore_stages(Some(&log_id))
                }
                // The room's gas release gives stage 5 (its stage entry follows in the same
                // cycle unless stage 5 was latched already): the stage-5 alarm, once.
                event_kind::ROOM_GAS_RELEASE => {
                    let to = fire_logic::Stage::Stage5.code().into();
                    if to > self.c.stage {
                        self.raise_stages(to, Some(&log_id));
                    }
                }
                event_kind::CONTROLLER_RESET if e.detail & map::reset_cause::UNEXPECTED != 0 => {
                    unexpected_resets.push(log_id)
                }
                event_kind::GAS_RELEASED => self.push(log_id, K::FireGasReleased, false),
                event_kind::BATTERY_ISOLATED => self.push(log_id, K::BatteryIsolated, false),
                _ => {}
            }
            self.c.last_seq = e.seq;
        }
        self.c.last_seq = self.c.last_seq.max(r.event_seq);
        unexpected_resets
    }

    /// An unexpected controller reset is a fire trouble. When the trouble condition is raised
    /// by this read (`target`), its alarm carries it; when a trouble is already standing, the
    /// reset gets its own trouble message (a second fault never hidden behind the first,
    /// closed by the standing trouble's restore); when no trouble stands after this read
    /// (acknowledged already), its own trouble message and the restore.
    fn unexpected_resets(&mut self, ids: Vec<String>, target: u8) {
        let trouble = |f: u8| f & (1 << TROUBLE_FLAG) != 0;
        let (before, after) = (trouble(self.c.flags), trouble(target));
        for id in ids {
            if before {
                self.push(id, K::FireTrouble, false);
            } else if !after {
                let restore = format!("{id}/r");
                self.push(id, K::FireTrouble, false);
                self.push(restore, K::FireTrouble, true);
            }
        }
    }
}

fn flags_to(out: &mut Out<'_>, target: u8) {
    for (bit, kind) in CONDITIONS {
        let was = out.c.flags & (1 << bit) != 0;
        let is = target & (1 << bit) != 0;
        if was != is {
            let id = out.state_id();
            out.push(id, kind, !is);
        }
    }
    out.c.flags = target;
}

/// The controller stopped answering (`lost`) or answers again: a fire trouble of the rack and
/// its restore. The restore also comes from the next successful [`advance`]. A controller that
/// has never answered is reported too (`cursor` `None`).
pub fn comm(cursor: Option<&Cursor>, lost: bool, now_ms: i64, ident: &Ident) -> Cursor {
    let mut c = cursor.cloned().unwrap_or_else(|| Cursor::new(now_ms));
    let target = if lost {
        c.flags | (1 << COMM_FLAG)
    } else {
        c.flags & !(1 << COMM_FLAG)
    };
    let mut out = Out {
        c: &mut c,
        id: ident,
        test: false,
    };
    flags_to(&mut out, target);
    c
}

/// Writes the cursor durably: temp file, fsync, rename, fsync of the directory.
pub fn save(path: &Path, c: &Cursor) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    crate::fire::write_durably(
        path,
        &serde_json::to_vec_pretty(c).map_err(std::io::Error::other)?,
    )
}

/// Reads a saved cursor. A missing file is a first contact; a damaged one is an error (the
/// caller refuses to guess: it logs and treats it as first contact, reporting the present state).
pub fn load(path: &Path) -> Result<Option<Cursor>, String> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// How many failed reads in a row make the controller "not answering".
const COMM_LOST_AFTER: u32 = 3;

async fn read_block(
    cfg: &ControllerConfig,
    ctx: &mut Option<tokio_modbus::client::Context>,
) -> Result<Vec<u16>, String> {
    use tokio_modbus::client::Reader;
    let timeout = Duration::from_millis(1000)
        .min(cfg.poll * 4)
        .max(Duration::from_millis(200));
    if ctx.is_none() {
        let stream = tokio::time::timeout(timeout, tokio::net::TcpStream::connect(cfg.addr))
            .await
            .map_err(|_| "connect timed out".to_string())?
            .map_err(|e| format!("connect: {e}"))?;
        let _ = stream.set_nodelay(true);
        let slave = tokio_modbus::Slave(cfg.unit);
        *ctx = Some(if cfg.rtu_over_tcp {
            tokio_modbus::prelude::rtu::attach_slave(stream, slave)
        } else {
            tokio_modbus::prelude::tcp::attach_slave(stream, slave)
        });
    }
    let c = ctx.as_mut().expect("connected above");
    match tokio::time::timeout(timeout, c.read_input_registers(0, BLOCK)).await {
        Ok(Ok(Ok(regs))) => Ok(regs),
        Ok(Ok(Err(exc))) => Err(format!("Modbus exception {exc}")),
        Ok(Err(e)) => {
            *ctx = None;
            Err(format!("read: {e}"))
        }
        Err(_) => {
            // tokio-modbus keeps a late reply queued (#324): start over with a new connection.
            *ctx = None;
            Err("read timed out".into())
        }
    }
}

/// Submits the cursor's pending messages; returns whether all are in the outbox.
async fn submit_pending(link: &dc09_link::Handle, c: &Cursor, device: &str) -> bool {
    let mut ok = true;
    for (id, ev) in &c.pending {
        match link
            .submit(dc09_link::Submission {
                event_id: id.clone(),
                event: *ev,
            })
            .await
        {
            Ok(q) => {
                if !q.duplicate {
                    info!(controller = %device, id = %id, kind = %ev.kind, restore = ev.restore, seq = %q.seq, "controller fire event queued for the fire authority");
                }
            }
            Err(e) => {
                ok = false;
                error!(controller = %device, id = %id, error = %e, "CONTROLLER FIRE EVENT NOT QUEUED FOR THE FIRE AUTHORITY LINK (retried)");
            }
        }
    }
    ok
}

/// Polls one controller until `shutdown`, forwarding its fire events to `link`.
pub async fn run(
    agent: String,
    clock: dcim_clock::Clock,
    cfg: ControllerConfig,
    link: dc09_link::Handle,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let ident = Ident {
        prefix: format!("{agent}:{}", cfg.device),
        zone: cfg.dc09_zone,
        rack: cfg.number,
    };
    let mut cursor = match load(&cfg.cursor_file) {
        Ok(c) => c,
        Err(e) => {
            error!(controller = %cfg.device, error = %e, "damaged controller cursor: starting as on first contact (the present state is reported)");
            None
        }
    };
    // What a previous run decided but may not have queued is submitted again on the first
    // tick (the outbox recognises what it already has by the ids).
    let mut ctx = None;
    let mut failures = 0u32;
    let mut iv = tokio::time::interval(cfg.poll);
    iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = iv.tick() => {}
            _ = shutdown.changed() => if *shutdown.borrow() { return },
        }
        let next = match read_block(&cfg, &mut ctx).await.and_then(|r| decode(&r)) {
            Ok(r) => {
                if failures >= COMM_LOST_AFTER {
                    info!(controller = %cfg.device, "controller answers again");
                }
                failures = 0;
                Some(advance(cursor.as_ref(), &r, clock.now_ms(), &ident))
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                if failures == COMM_LOST_AFTER {
                    warn!(controller = %cfg.device, error = %e, "controller not answering: reported as a fire trouble");
                    Some(comm(cursor.as_ref(), true, clock.now_ms(), &ident))
                } else {
                    None
                }
            }
        };
        if let Some(next) = next
            && cursor.as_ref() != Some(&next)
        {
            // Write-ahead: the decision is on disk before anything is queued.
            if let Err(e) = save(&cfg.cursor_file, &next) {
                error!(controller = %cfg.device, error = %e, "controller cursor not saved: events are queued anyway and may repeat after a restart");
            }
            cursor = Some(next);
        }
        // Queue what is decided (retried every poll until the outbox takes it).
        if let Some(c) = &mut cursor
            && !c.pending.is_empty()
            && submit_pending(&link, c, &cfg.device).await
        {
            c.pending.clear();
            if let Err(e) = save(&cfg.cursor_file, c) {
                error!(controller = %cfg.device, error = %e, "controller cursor not saved");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ident() -> Ident {
        Ident {
            prefix: "ag:rc-08".into(),
            zone: 2,
            rack: 8,
        }
    }

    fn entry(seq: u32, kind: u8, detail: u16) -> LogEntry {
        LogEntry {
            seq,
            time_s: seq,
            kind,
            detail,
        }
    }

    fn reading(uptime_s: u32, stage: u16, log: &[LogEntry]) -> Reading {
        let mut events: Vec<LogEntry> = log.to_vec();
        events.sort_by_key(|e| std::cmp::Reverse(e.seq));
        events.truncate(8);
        Reading {
            uptime_s,
            stage,
            status: 0,
            troubles: 0,
            event_seq: log.iter().map(|e| e.seq).max().unwrap_or(0),
            reset_cause: 0,
            events,
        }
    }

    fn codes(c: &Cursor) -> Vec<(String, K, bool)> {
        c.pending
            .iter()
            .map(|(id, e)| (id.clone(), e.kind, e.restore))
            .collect()
    }

    #[test]
    fn decode_reads_the_firmware_image() {
        use rack_registers::{EventEntry, Snapshot};
        let mut snap = Snapshot {
            uptime_s: 70_000,
            stage: 4,
            status: map::status::AUTHORITY,
            troubles: map::trouble::NV_WRITE | 1,
            event_seq: 12,
            ..Snapshot::default()
        };
        for seq in [12, 11] {
            let _ = snap.events.push(EventEntry {
                seq,
                time_s: 5,
                priority: 1,
                kind: event_kind::STAGE_ENTERED,
                detail: 4,
            });
        }
        let mut regs = [0u16; rack_registers::INPUT_COUNT];
        snap.encode_inputs(&mut regs);
        let r = decode(&regs).unwrap();
        assert_eq!(
            (r.uptime_s, r.stage, r.status, r.troubles, r.event_seq),
            (
                70_000,
                4,
                map::status::AUTHORITY,
                map::trouble::NV_WRITE | 1,
                12
            )
        );
        assert_eq!(r.events.len(), 2);
        assert_eq!(
            r.events[0],
            entry(12, event_kind::STAGE_ENTERED, 4).with_time(5)
        );
        regs[usize::from(input::MAP_VERSION)] = 9;
        assert!(decode(&regs).unwrap_err().contains("map version 9"));
        assert!(decode(&regs[..10]).is_err());
    }

    impl LogEntry {
        fn with_time(mut self, t: u32) -> LogEntry {
            self.time_s = t;
            self
        }
    }

    #[test]
    fn a_reset_with_dead_sensors_out_of_service_restores_the_alarms_too() {
        // Hazard: the fire authority keeps seeing a fire after a local reset with the key held.
        let mut log = vec![entry(1, event_kind::SOURCE_VALID, 0)];
        let c = advance(None, &reading(10, 0, &log), 1000, &ident());
        log.push(entry(2, event_kind::STAGE_ENTERED, 1));
        log.push(entry(3, event_kind::STAGE_ENTERED, 2));
        let mut c = advance(Some(&c), &reading(11, 2, &log), 2000, &ident());
        c.pending.clear();
        log.push(entry(4, event_kind::RESET_OVERRIDE, 1 << 3));
        let c = advance(Some(&c), &reading(12, 0, &log), 3000, &ident());
        let r: Vec<(K, bool)> = codes(&c).into_iter().map(|x| (x.1, x.2)).collect();
        assert_eq!(r, vec![(K::FireStage1, true), (K::FirePreAlarm, true)]);
        assert_eq!(c.stage, 0);
    }

    #[test]
    fn stages_from_the_log_then_reset_restores_each_alarm_sent() {
        let mut log = vec![entry(1, event_kind::SOURCE_VALID, 0)];
        // first contact: nothing replayed, normal state
        let c = advance(None, &reading(10, 0, &log), 1000, &ident());
        assert!(c.pending.is_empty());
        assert_eq!(c.last_seq, 1);
        log.push(entry(2, event_kind::STAGE_ENTERED, 1));
        log.push(entry(3, event_kind::STAGE_ENTERED, 2));
        let c = advance(Some(&c), &reading(11, 2, &log), 2000, &ident());
        assert_eq!(
            codes(&c),
            vec![
                ("ag:rc-08:1000:s2".into(), K::FirePreAlarm, false),
                ("ag:rc-08:1000:s3".into(), K::FireStage1, false),
            ]
        );
        let mut c = c;
        c.pending.clear();
        // the same read again: nothing new
        let again = advance(Some(&c), &reading(11, 2, &log), 2100, &ident());
        assert_eq!(again, c);
        // stage 2 and 3 between two reads; the zone and rack are kept
        log.push(entry(4, event_kind::STAGE_ENTERED, 3));
        log.push(entry(5, event_kind::STAGE_ENTERED, 4));
        log.push(entry(6, event_kind::AGENT_RELEASED, 0));
        let c = advance(Some(&c), &reading(12, 4, &log), 3000, &ident());
        let k: Vec<K> = codes(&c).into_iter().map(|x| x.1).collect();
        assert_eq!(k, vec![K::FireStage2Patch, K::FireStage3Agent]);
        assert!(
            c.pending
                .iter()
                .all(|(_, e)| e.zone == 2 && e.rack == 8 && !e.test)
        );
        let mut c = c;
        c.pending.clear();
        log.push(entry(7, event_kind::RESET_ACCEPTED, 0));
        let c = advance(Some(&c), &reading(13, 0, &log), 4000, &ident());
        let r: Vec<(K, bool)> = codes(&c).into_iter().map(|x| (x.1, x.2)).collect();
        assert_eq!(
            r,
            vec![
                (K::FireStage3Agent, true),
                (K::FireStage2Patch, true),
                (K::FireStage1, true),
                (K::FirePreAlarm, true),
            ]
        );
        assert_eq!(c.stage, 0);
    }

    #[test]
    fn missed_log_entries_are_made_up_from_the_stage_register() {
        let c = advance(None, &reading(10, 0, &[]), 1000, &ident());
        // 20 events happened while the agent was away: the window holds only the newest 8
        let log: Vec<LogEntry> = (1..=20)
            .map(|s| {
                if s == 20 {
                    entry(s, event_kind::STAGE_ENTERED, 5)
                } else {
                    entry(s, event_kind::SOURCE_VALID, 0)
                }
            })
            .collect();
        let c = advance(Some(&c), &reading(500, 5, &log), 2000, &ident());
        let k: Vec<K> = codes(&c).into_iter().map(|x| x.1).collect();
        assert_eq!(
            k,
            vec![
                K::FirePreAlarm,
                K::FireStage1,
                K::FireStage2Patch,
                K::FireStage3Agent,
                K::FireStage4Coolant
            ]
        );
        assert_eq!(c.pending.last().unwrap().0, "ag:rc-08:1000:s20");
    }

    #[test]
    fn first_contact_reports_the_present_state() {
        let mut r = reading(10, 3, &[entry(40, event_kind::STAGE_ENTERED, 3)]);
        r.troubles = map::trouble::RACK_TEMP1_INVALID;
        r.status = map::status::AUTHORITY;
        let c = advance(None, &r, 1000, &ident());
        let k: Vec<(K, bool)> = codes(&c).into_iter().map(|x| (x.1, x.2)).collect();
        assert_eq!(
            k,
            vec![
                (K::FirePreAlarm, false),
                (K::FireStage1, false),
                (K::FireStage2Patch, false),
                (K::FireTroubleSensor, false),
                (K::FireAuthority, false),
            ]
        );
        // ids are unique
        let mut ids: Vec<&String> = c.pending.iter().map(|p| &p.0).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), c.pending.len());
    }

    #[test]
    fn conditions_raise_and_restore_and_comm_loss_is_a_trouble() {
        let c = advance(None, &reading(10, 0, &[]), 1000, &ident());
        let mut r = reading(11, 0, &[]);
        r.troubles = map::trouble::NV_WRITE;
        r.status = map::status::OFFGAS_WARNING;
        let mut c = advance(Some(&c), &r, 2000, &ident());
        assert_eq!(
            codes(&c)
                .into_iter()
                .map(|x| (x.1, x.2))
                .collect::<Vec<_>>(),
            vec![(K::FireTrouble, false), (K::FireSupervisoryOffgas, false)]
        );
        c.pending.clear();
        let mut lost = comm(Some(&c), true, 2500, &ident());
        assert_eq!(
            codes(&lost)
                .into_iter()
                .map(|x| (x.1, x.2))
                .collect::<Vec<_>>(),
            vec![(K::FireTrouble, false)]
        );
        lost.pending.clear();
        // back, with the trouble cleared: the trouble and the comm loss are both restored
        r.troubles = 0;
        r.uptime_s = 12;
        let c = advance(Some(&lost), &r, 3000, &ident());
        assert_eq!(
            codes(&c)
                .into_iter()
                .map(|x| (x.1, x.2))
                .collect::<Vec<_>>(),
            vec![(K::FireTrouble, true), (K::FireTrouble, true)]
        );
    }

    #[test]
    fn a_controller_that_never_answered_is_a_trouble_then_first_contact() {
        let mut c = comm(None, true, 500, &ident());
        assert_eq!(
            codes(&c),
            vec![("ag:rc-08:500:c1".into(), K::FireTrouble, false)]
        );
        c.pending.clear();
        // It answers at last, in stage 1 with a long log: the log is not replayed, the state is
        // reported and the trouble restored.
        let log: Vec<LogEntry> = (1..=30)
            .map(|s| entry(s, event_kind::STAGE_ENTERED, 2))
            .collect();
        let c = advance(Some(&c), &reading(9000, 2, &log), 1000, &ident());
        let k: Vec<(K, bool)> = codes(&c).into_iter().map(|x| (x.1, x.2)).collect();
        assert_eq!(
            k,
            vec![
                (K::FirePreAlarm, false),
                (K::FireStage1, false),
                (K::FireTrouble, true)
            ]
        );
        assert_eq!((c.last_seq, c.boot, c.seen), (30, 500, true));
    }

    #[test]
    fn a_controller_reboot_starts_a_new_boot_so_repeated_sequence_numbers_are_not_lost() {
        let log = vec![entry(5, event_kind::STAGE_ENTERED, 2)];
        let c = advance(None, &reading(100, 0, &[]), 1000, &ident());
        let mut c = advance(Some(&c), &reading(101, 2, &log), 2000, &ident());
        c.pending.clear();
        // rebooted (uptime back to 3 s), latch restored at stage 1, and a new stage 2 entry
        // with a sequence number that was used before the reboot
        let log2 = vec![
            entry(4, event_kind::RESTORED, 2),
            entry(5, event_kind::STAGE_ENTERED, 3),
        ];
        let c2 = advance(Some(&c), &reading(3, 3, &log2), 5000, &ident());
        assert_eq!(c2.boot, 5000);
        assert_eq!(
            codes(&c2),
            vec![("ag:rc-08:5000:s5".into(), K::FireStage2Patch, false)]
        );
    }

    #[test]
    fn test_mode_of_the_controller_marks_its_events() {
        let c = advance(None, &reading(10, 0, &[]), 1000, &ident());
        let mut r = reading(11, 1, &[entry(1, event_kind::STAGE_ENTERED, 1)]);
        r.status = map::status::TEST_MODE;
        let c = advance(Some(&c), &r, 2000, &ident());
        assert!(c.pending.iter().all(|(_, e)| e.test));
        assert_eq!(c.pending.len(), 1);
    }

    #[test]
    fn the_cursor_survives_a_save_and_load() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/ctl.json");
        assert_eq!(load(&p).unwrap(), None);
        let c = advance(None, &reading(10, 2, &[]), 1000, &ident());
        save(&p, &c).unwrap();
        assert_eq!(load(&p).unwrap(), Some(c));
        std::fs::write(&p, b"{").unwrap();
        assert!(load(&p).is_err());
    }

    fn flag_reading(log: &[LogEntry], uptime_s: u32, troubles: u32, status: u16) -> Reading {
        let mut r = reading(uptime_s, 0, log);
        r.troubles = troubles;
        r.status = status;
        r
    }

    #[test]
    fn an_unexpected_controller_reset_is_one_fire_trouble_however_the_trouble_condition_stands() {
        // Hazard: a controller that reset itself (watchdog, fault) while another trouble was
        // already reported: the aggregated trouble condition does not change, and the fire
        // authority never hears of the reset.
        use map::reset_cause as rc;
        let board = map::trouble::BOARD;
        let boot = |cause: u16| vec![entry(1, event_kind::CONTROLLER_RESET, cause)];
        let troubles = |c: &Cursor| -> Vec<bool> {
            c.pending
                .iter()
                .filter(|(_, e)| e.kind == K::FireTrouble)
                .map(|(_, e)| e.restore)
                .collect()
        };
        // 1. No trouble before; the reset raises the board trouble: one alarm, from the
        // condition (nothing extra).
        let c0 = advance(None, &flag_reading(&[], 100, 0, 0), 1, &ident());
        let c = advance(
            Some(&c0),
            &flag_reading(&boot(rc::IWDG), 1, board, 0),
            2,
            &ident(),
        );
        assert_eq!(troubles(&c), [false]);
        // 2. A trouble already standing: the reset gets its own trouble message.
        let mut c0 = advance(None, &flag_reading(&[], 100, board, 0), 1, &ident());
        c0.pending.clear();
        let c = advance(
            Some(&c0),
            &flag_reading(&boot(rc::FAULT), 1, board, 0),
            2,
            &ident(),
        );
        assert_eq!(troubles(&c), [false]);
        assert!(c.pending[0].0.ends_with(":s1"), "{:?}", codes(&c));
        // 3. Acknowledged before the agent read it: its own trouble and restore.
        let c0 = advance(None, &flag_reading(&[], 100, 0, 0), 1, &ident());
        let c = advance(
            Some(&c0),
            &flag_reading(&boot(rc::WWDG), 1, 0, 0),
            2,
            &ident(),
        );
        assert_eq!(troubles(&c), [false, true]);
        // A power-up is not a trouble.
        let c = advance(
            Some(&c0),
            &flag_reading(&boot(rc::POWER_ON), 1, 0, 0),
            2,
            &ident(),
        );
        assert_eq!(troubles(&c), Vec::<bool>::new());
        // The reset entry already pushed out of the window by the new boot's first events:
        // the register still tells, once per boot.
        let mut c0 = advance(None, &flag_reading(&[], 100, board, 0), 1, &ident());
        c0.pending.clear();
        let later: Vec<LogEntry> = (2..12)
            .map(|s| entry(s, event_kind::SOURCE_INVALID, 1))
            .collect();
        let mut r = flag_reading(&later, 1, board, 0);
        r.reset_cause = rc::IWDG;
        let c = advance(Some(&c0), &r, 2, &ident());
        assert_eq!(troubles(&c), [false]);
        let mut c1 = c.clone();
        c1.pending.clear();
        let mut r = flag_reading(&later, 2, board, 0);
        r.reset_cause = rc::IWDG;
        assert_eq!(
            troubles(&advance(Some(&c1), &r, 3, &ident())),
            Vec::<bool>::new()
        );
    }

    #[test]
    fn the_reset_loop_lockout_is_a_battery_isolated_alarm_until_a_local_reset_ends_it() {
        // Hazard: the controller holds the battery isolated after a reset loop and the fire
        // authority is told nothing (or is never told that it ended).
        let st = map::status::RESET_LOOP;
        let c0 = advance(None, &flag_reading(&[], 100, 0, 0), 1, &ident());
        let c = advance(Some(&c0), &flag_reading(&[], 101, 0, st), 2, &ident());
        let iso: Vec<_> = codes(&c)
            .into_iter()
            .filter(|x| x.1 == K::BatteryIsolated)
            .collect();
        assert_eq!(iso.len(), 1);
        assert!(!iso[0].2);
        let mut c1 = c.clone();
        c1.pending.clear();
        let c = advance(Some(&c1), &flag_reading(&[], 102, 0, st), 3, &ident());
        assert!(c.pending.is_empty(), "reported once");
        let c = advance(Some(&c), &flag_reading(&[], 103, 0, 0), 4, &ident());
        assert_eq!(
            codes(&c)
                .into_iter()
                .map(|x| (x.1, x.2))
                .collect::<Vec<_>>(),
            [(K::BatteryIsolated, true)]
        );
    }

    #[test]
    fn the_controller_and_the_agents_own_logic_send_the_same_fire_alarms() {
        // Hazard: the same fire reported differently to the fire authority depending on whether
        // the rack has its own controller: here the room's gas release in manual-only mode
        // (kind 28), the gas after its warning, and a reset with the key held (kind 27).
        use crate::config::RackConfig;
        use crate::fire::RackRunner;
        use dcim_points::{Quality, Value};
        use std::collections::BTreeMap;
        let p = |pt: &str| Some(("rio".to_owned(), pt.to_owned()));
        let mut cfg = RackConfig {
            id: "r8".into(),
            number: 8,
            zone: "room".into(),
            dc09_zone: 2,
            bms: p("bms"),
            temp1: p("t1"),
            temp2: p("t2"),
            camera: None,
            smoke: p("smoke"),
            offgas: None,
            relay: None,
            coils: Default::default(),
            feedback: Default::default(),
            panel: Default::default(),
            cycle: Duration::from_millis(100),
            latch_file: "unused".into(),
            logic: fire_logic::Config::default(),
        };
        cfg.logic.common_cause = [0, 1, 1, 0, 0, 0];
        cfg.panel.room_gas_release = p("gas");
        cfg.panel.manual_only = p("occupied");
        cfg.panel.reset_key = p("key");
        let mut runner = RackRunner::new(cfg, None, 0).unwrap();
        // The controller's logic: the same configuration, the same inputs.
        let mut logic = fire_logic::RackLogic::new(*runner.logic.config()).unwrap();
        let mut latest: BTreeMap<(String, String), (Option<Value>, Quality)> = BTreeMap::new();
        let set = |l: &mut BTreeMap<_, _>, pt: &str, v: Value| {
            l.insert(("rio".to_owned(), pt.to_owned()), (Some(v), Quality::Good));
        };
        for pt in ["bms", "t1", "t2"] {
            set(&mut latest, pt, Value::Number(25.0));
        }
        for pt in ["smoke", "gas", "key"] {
            set(&mut latest, pt, Value::Bool(false));
        }
        set(&mut latest, "occupied", Value::Bool(true));
        let mut local = Vec::new();
        let mut window: Vec<LogEntry> = Vec::new();
        let mut cursor: Option<Cursor> = None;
        let mut remote = Vec::new();
        let mut now = 0u64;
        let mut run = |latest: &BTreeMap<_, _>, ms: u64, now: &mut u64| {
            let end = *now + ms;
            while *now < end {
                for (_, dc09) in runner.step(*now, 0, latest).events {
                    local.extend(dc09.into_iter().map(|e| (e.kind, e.restore)));
                }
                let inputs = runner.inputs(latest);
                logic.step(*now, &inputs);
                while let Some(ev) = logic.take_event() {
                    let e = rack_registers::controller::event_entry(&ev);
                    window.insert(
                        0,
                        LogEntry {
                            seq: e.seq,
                            time_s: e.time_s,
                            kind: e.kind,
                            detail: e.detail,
                        },
                    );
                }
                let r = Reading {
                    uptime_s: (*now / 1000) as u32 + 1,
                    stage: u16::from(logic.stage().code()),
                    status: 0,
                    troubles: 0,
                    event_seq: window.first().map_or(0, |e| e.seq),
                    reset_cause: 0,
                    events: window.iter().take(8).copied().collect(),
                };
                let c = advance(cursor.as_ref(), &r, 1, &ident());
                remote.extend(c.pending.iter().map(|(_, e)| (e.kind, e.restore)));
                let mut c = c;
                c.pending.clear();
                cursor = Some(c);
                *now += 100;
            }
        };
        run(&latest, 3_000, &mut now);
        set(&mut latest, "gas", Value::Bool(true));
        run(&latest, 35_000, &mut now);
        set(&mut latest, "gas", Value::Bool(false));
        set(&mut latest, "occupied", Value::Bool(false));
        // A dead transmitter: the reset is refused, then accepted with the key held 10 s.
        latest.insert(("rio".into(), "t2".into()), (None, Quality::Bad));
        run(&latest, 3_000, &mut now);
        set(&mut latest, "key", Value::Bool(true));
        run(&latest, 12_000, &mut now);
        assert_eq!(logic.stage(), Stage::Normal, "reset with the key held");
        let fire = |v: &[(K, bool)]| -> Vec<(K, bool)> {
            v.iter()
                .copied()
                .filter(|(k, _)| {
                    matches!(
                        k,
                        K::FirePreAlarm
                            | K::FireStage1
                            | K::FireStage2Patch
                            | K::FireStage3Agent
                            | K::FireStage4Coolant
                            | K::FireStage5Gas
                            | K::FireGasReleased
                            | K::BatteryIsolated
                    )
                })
                .collect()
        };
        let (l, r) = (fire(&local), fire(&remote));
        assert!(l.contains(&(K::FireStage5Gas, false)), "{l:?}");
        assert!(l.contains(&(K::FireGasReleased, false)), "{l:?}");
        assert!(
            l.contains(&(K::FireStage5Gas, true)),
            "reset restores: {l:?}"
        );
        assert_eq!(l, r, "the [[rack]] logic and the controller path differ");
    }
}
