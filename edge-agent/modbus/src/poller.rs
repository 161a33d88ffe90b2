//! The tokio poller: one task per line (a TCP device, or a serial line / RTU-over-TCP gateway
//! shared by several unit ids), reads planned by [`crate::plan`], decoded by `dcim-profiles`,
//! reported through a [`DeviceTracker`] as batches of samples.
//!
//! Failure handling:
//! - every request (and every connect) is bounded by the device's `timeout_ms`;
//! - after any timeout or transport/protocol error the connection is dropped and recreated
//!   before the next request (tokio-modbus keeps a late reply queued otherwise, #324);
//! - a read is tried `1 + retries` times; when it still fails the device's poll fails, the rest
//!   of that poll is skipped and the device is retried after an exponential back-off. A device
//!   in back-off gets a single attempt per probe, so on a shared line a dead device costs at most
//!   one `timeout_ms` per back-off period;
//! - a Modbus exception is an answer, mapped to qualities as documented in
//!   `device-profiles/README.md` ("Modbus exceptions"): exceptions 1, 2 and 3 (illegal
//!   function / data address / data value) to a read of several points split it in two
//!   ([`crate::plan::bisect`]) until the refusing points are isolated; those are remembered,
//!   reported `bad` and once as a [`Notice::Refused`], left out of the class's reads (the
//!   learned split is kept) and probed alone every `comm.refused_retry_ms`; the other points
//!   stay `good`.
//!   Exceptions 4, 5, 6 and 8 make that read's points `bad` for this poll; 10 and 11 (gateway
//!   path / target not answering) count as no answer.

use crate::plan::{Item, Limits, Read, bisect, class_items, limits_of, plan};
use dcim_points::{Sample, Value};
use dcim_profiles::{
    DeviceTracker, Point, PollClass, Profile, Protocol, Reading, Table, WireType, encode_registers,
};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout};
use tokio_modbus::client::{Context, Reader, Writer};
use tokio_modbus::prelude::{SlaveContext, rtu, tcp};
use tokio_modbus::{ExceptionCode, Slave};

/// How to reach a device (or a line of devices).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Connection {
    /// Modbus TCP (MBAP framing).
    Tcp { addr: SocketAddr },
    /// RTU frames tunnelled over TCP by a serial gateway (no MBAP header, CRC kept).
    RtuOverTcp { addr: SocketAddr },
    /// RTU over a local serial port (RS-485).
    Rtu { path: String, baud_rate: u32 },
}

impl std::fmt::Display for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Connection::Tcp { addr } => write!(f, "tcp://{addr}"),
            Connection::RtuOverTcp { addr } => write!(f, "rtu+tcp://{addr}"),
            Connection::Rtu { path, baud_rate } => write!(f, "rtu://{path}?baud={baud_rate}"),
        }
    }
}

/// Something a line reports besides samples, once per occurrence (the agent logs it and turns
/// it into an event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// The device refused to read this point on its own (Modbus exception `exception`, e.g. 2
    /// "illegal data address"). The point is `bad` until the device serves it again.
    Refused {
        device: String,
        point: String,
        table: Table,
        /// Wire (0-based) address of the point's first register.
        address: u16,
        exception: u8,
    },
    /// A refused point is served again.
    Accepted { device: String, point: String },
}

/// One Modbus device: its id in the site, its unit id (slave address) and its profile.
#[derive(Debug, Clone)]
pub struct ModbusDevice {
    pub id: String,
    pub unit_id: u8,
    pub profile: Arc<Profile>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpawnError {
    #[error("device `{0}`: profile `{1}` is not a modbus profile")]
    NotModbus(String, String),
    #[error("no devices on the line")]
    Empty,
}

impl ModbusDevice {
    /// Polls this device alone over its own connection until `tx` is closed. Samples (and the
    /// device's `device.online` changes) arrive on `tx` in batches.
    pub fn spawn(
        self,
        connection: Connection,
        tx: mpsc::Sender<Vec<Sample>>,
    ) -> Result<JoinHandle<()>, SpawnError> {
        spawn_line(connection, vec![self], tx)
    }
}

/// Polls several devices sharing one connection (an RS-485 line, or a gateway), one request at
/// a time, until `tx` is closed. For TCP devices use one line per device ([`ModbusDevice::spawn`]).
pub fn spawn_line(
    connection: Connection,
    devices: Vec<ModbusDevice>,
    tx: mpsc::Sender<Vec<Sample>>,
) -> Result<JoinHandle<()>, SpawnError> {
    if devices.is_empty() {
        return Err(SpawnError::Empty);
    }
    for d in &devices {
        if d.profile.protocol != Protocol::Modbus || d.profile.modbus.is_none() {
            return Err(SpawnError::NotModbus(d.id.clone(), d.profile.name.clone()));
        }
    }
    let line = Line::new(connection, devices, None);
    Ok(tokio::spawn(line.run(tx, None)))
}

/// A write of one point's value, carried out by the line task between two polls (so writes and
/// polls never interleave on a shared line).
#[derive(Debug)]
struct WriteRequest {
    device: String,
    point: String,
    value: Value,
    reply: oneshot::Sender<Result<(), WriteError>>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    #[error("no device `{0}` on this line")]
    UnknownDevice(String),
    #[error("device `{0}` has no point `{1}`")]
    UnknownPoint(String, String),
    #[error("point `{0}` cannot be written: {1}")]
    NotWritable(String, &'static str),
    #[error("the device refused the write (Modbus exception {0})")]
    Exception(String),
    #[error("no answer to the write within the timeout (after retries)")]
    NoAnswer,
    #[error("the line task has stopped")]
    Stopped,
}

/// A running line that also accepts writes (e.g. relay-module coils driven by local fire logic).
#[derive(Debug)]
pub struct LineHandle {
    pub task: JoinHandle<()>,
    writes: mpsc::Sender<WriteRequest>,
}

impl LineHandle {
    /// Writes `value` to `point` of `device` (a coil, or a holding register of a whole-register
    /// type; the profile's scale, offset and inversion are applied in reverse) and waits for the
    /// device's confirmation. Never silently dropped: every failure is returned.
    pub async fn write(&self, device: &str, point: &str, value: Value) -> Result<(), WriteError> {
        let (reply, answer) = oneshot::channel();
        self.writes
            .send(WriteRequest {
                device: device.to_owned(),
                point: point.to_owned(),
                value,
                reply,
            })
            .await
            .map_err(|_| WriteError::Stopped)?;
        answer.await.map_err(|_| WriteError::Stopped)?
    }
}

/// Like [`spawn_line`], and returns a handle that can also write points. Refused and
/// accepted-again points are reported on `notices` when given.
pub fn spawn_line_with_writes(
    connection: Connection,
    devices: Vec<ModbusDevice>,
    tx: mpsc::Sender<Vec<Sample>>,
    notices: Option<mpsc::UnboundedSender<Notice>>,
) -> Result<LineHandle, SpawnError> {
    if devices.is_empty() {
        return Err(SpawnError::Empty);
    }
    for d in &devices {
        if d.profile.protocol != Protocol::Modbus || d.profile.modbus.is_none() {
            return Err(SpawnError::NotModbus(d.id.clone(), d.profile.name.clone()));
        }
    }
    let (wtx, wrx) = mpsc::channel(16);
    let line = Line::new(connection, devices, notices);
    Ok(LineHandle {
        task: tokio::spawn(line.run(tx, Some(wrx))),
        writes: wtx,
    })
}

/// The registers (or coil) a point's value is written as; pure.
pub fn encode_write(point: &Point, value: &Value) -> Result<WriteData, &'static str> {
    let a = point.modbus().ok_or("not a Modbus point")?;
    match a.table {
        Table::Input | Table::Discrete => Err("input registers and discrete inputs are read-only"),
        Table::Coil => {
            let b = value.as_bool().ok_or("a coil takes true or false")?;
            Ok(WriteData::Coil(a.address, b != point.invert))
        }
        Table::Holding => {
            let raw = match (value, a.wire) {
                (_, WireType::Bit(_)) => {
                    return Err("a bit inside a register cannot be written on its own");
                }
                (_, WireType::String(_)) => return Err("strings are not written"),
                (Value::Bool(b), _) => (*b != point.invert) as u8 as f64,
                (Value::Number(x), _) => (x - point.offset) / point.scale,
                (Value::Text(t), _) => point
                    .enum_map
                    .as_ref()
                    .and_then(|m| m.iter().find(|(_, s)| *s == t))
                    .map(|(k, _)| *k as f64)
                    .ok_or("text not in the point's enum map")?,
            };
            if !raw.is_finite() {
                return Err("value is not a finite number");
            }
            Ok(WriteData::Registers(
                a.address,
                encode_registers(raw, a.wire, a.order),
            ))
        }
    }
}

/// What goes on the wire for a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteData {
    Coil(u16, bool),
    Registers(u16, Vec<u16>),
}

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

struct ClassPlan {
    period: Duration,
    /// The reads of the class, as learned: merged as far as the limits allow, split where the
    /// device refused a merged read, without the refused points.
    reads: Vec<Read>,
    /// One item per point of the class (for re-planning).
    items: Vec<Item>,
    /// Every point index of the class (to mark stale on failure).
    points: Vec<usize>,
    /// Points the device refused on their own: exception code and when to try again.
    refused: std::collections::BTreeMap<usize, (u8, Instant)>,
    due: Instant,
}

impl ClassPlan {
    /// Plans the class's reads again from every point not refused.
    fn replan(&mut self, limits: Limits) {
        let items: Vec<Item> = self
            .items
            .iter()
            .filter(|i| !self.refused.contains_key(&i.point))
            .copied()
            .collect();
        self.reads = plan(&items, limits);
    }
}

struct DeviceState {
    dev: ModbusDevice,
    tracker: DeviceTracker,
    classes: Vec<ClassPlan>,
    failures: u32,
    retry_at: Instant,
}

impl DeviceState {
    /// The next class to poll: earliest effective time (back-off included), and among equal
    /// times the one waiting longest, so a device in back-off cannot starve a class.
    fn next_due(&self) -> Option<(Instant, Instant, usize)> {
        self.classes
            .iter()
            .enumerate()
            .map(|(i, c)| (c.due.max(self.retry_at), c.due, i))
            .min()
    }

    /// The reads of class `ci`, then the refused points due for a probe, each read alone
    /// (`true`: a probe).
    fn work_list(&self, ci: usize, limits: Limits) -> std::collections::VecDeque<(Read, bool)> {
        let now = Instant::now();
        let c = &self.classes[ci];
        let probes: Vec<Read> = c
            .refused
            .iter()
            .filter(|(_, (_, at))| *at <= now)
            .flat_map(|(p, _)| {
                let its: Vec<Item> = c.items.iter().filter(|i| i.point == *p).copied().collect();
                plan(&its, limits)
            })
            .collect();
        c.reads
            .iter()
            .cloned()
            .map(|r| (r, false))
            .chain(probes.into_iter().map(|r| (r, true)))
            .collect()
    }

    /// Every point the device polls.
    fn all_points(&self) -> Vec<usize> {
        self.classes
            .iter()
            .flat_map(|c| c.points.iter().copied())
            .collect()
    }
}

struct Line {
    connection: Connection,
    devices: Vec<DeviceState>,
    ctx: Option<Context>,
    notices: Option<mpsc::UnboundedSender<Notice>>,
}

/// The bookkeeping of one class poll: what is left to read and what the answers taught.
#[derive(Default)]
struct PollRun {
    work: std::collections::VecDeque<(Read, bool)>,
    /// The reads that were answered, in order: the class's plan from now on.
    learned: Vec<Read>,
    split: bool,
    accepted_again: bool,
    notices: Vec<Notice>,
    /// Registers of text points read in parts, by point.
    parts: std::collections::BTreeMap<usize, Vec<Option<u16>>>,
}

impl PollRun {
    /// An exception answer: a refusal splits the read (a single point refused on its own is
    /// left out of the reads from now on); any other exception makes the read's points bad
    /// for this poll, plan unchanged.
    #[allow(clippy::too_many_arguments)]
    fn exception(
        &mut self,
        d: &mut DeviceState,
        ci: usize,
        read: Read,
        probe: bool,
        code: u8,
        limits: Limits,
        now_ms: i64,
        out: &mut Vec<Sample>,
    ) {
        if classify_exception(code) == ExceptionClass::Refusal {
            let profile = d.dev.profile.clone();
            let class = &mut d.classes[ci];
            if let Some(parts) = bisect(&read, &class.items, limits) {
                self.split = true;
                for part in parts.into_iter().rev() {
                    self.work.push_front((part, probe));
                }
                return;
            }
            // One point, refused on its own: left out of the reads from now on.
            self.split = true;
            let pi = read.points[0];
            let again_at = Instant::now() + Duration::from_millis(profile.comm.refused_retry_ms);
            let new = class.refused.insert(pi, (code, again_at)).is_none();
            d.tracker.reading(pi, Reading::bad(None), now_ms, out);
            if new {
                let point = &profile.points[pi];
                let notice = Notice::Refused {
                    device: d.dev.id.clone(),
                    point: point.id.clone(),
                    table: read.table,
                    address: read.address,
                    exception: code,
                };
                self.notices.push(notice);
            }
            return;
        }
        // The device answered without values: bad for this poll, plan unchanged.
        for &pi in &read.points {
            d.tracker.reading(pi, Reading::bad(None), now_ms, out);
        }
        if !probe {
            self.learned.push(read);
        }
    }

    /// A probe answered: its points are served again.
    fn accepted(&mut self, d: &mut DeviceState, ci: usize, read: &Read) {
        for &pi in &read.points {
            if d.classes[ci].refused.remove(&pi).is_some() {
                self.accepted_again = true;
                let notice = Notice::Accepted {
                    device: d.dev.id.clone(),
                    point: d.dev.profile.points[pi].id.clone(),
                };
                self.notices.push(notice);
            }
        }
    }

    /// The readings of an answered read; parts of text points are kept until the last part.
    fn values(
        &mut self,
        d: &mut DeviceState,
        read: &Read,
        outcome: &ReadOutcome,
        now_ms: i64,
        out: &mut Vec<Sample>,
    ) {
        let profile = d.dev.profile.clone();
        for &pi in &read.points {
            let point = &profile.points[pi];
            let Some(addr) = point.modbus() else { continue };
            let (start, count) = (u32::from(addr.address), u32::from(addr.count()));
            if start < u32::from(read.address) || start + count > read.end() {
                // A text point read in parts: keep this part, decode after the last one.
                if let ReadOutcome::Registers(regs) = outcome {
                    let buf = self
                        .parts
                        .entry(pi)
                        .or_insert_with(|| vec![None; count as usize]);
                    for (k, r) in regs.iter().enumerate() {
                        let a = u32::from(read.address) + k as u32;
                        if (start..start + count).contains(&a) {
                            buf[(a - start) as usize] = Some(*r);
                        }
                    }
                }
                continue;
            }
            let off = (addr.address - read.address) as usize;
            let reading = match outcome {
                ReadOutcome::Registers(regs) => match regs.get(off..) {
                    Some(r) => point.reading_from_registers(r),
                    None => Reading::bad(None),
                },
                ReadOutcome::Bits(bits) => match bits.get(off) {
                    Some(b) => point.reading_from_bit(*b),
                    None => Reading::bad(None),
                },
                ReadOutcome::Exception(_) => Reading::bad(None),
            };
            d.tracker.reading(pi, reading, now_ms, out);
        }
    }
}

enum ReadOutcome {
    Registers(Vec<u16>),
    Bits(Vec<bool>),
    Exception(u8),
}

/// What an exception code means for the read it answered; pure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExceptionClass {
    /// 1 illegal function, 2 illegal data address, 3 illegal data value: the device refuses
    /// (part of) what was asked; split the read to find what.
    Refusal,
    /// 4 server device failure, 5 acknowledge, 6 busy, 8 memory parity, others: the device
    /// answered without the values; the read's points are `bad` for this poll.
    NoValues,
    /// 10 gateway path unavailable, 11 gateway target failed to respond: the device behind the
    /// gateway did not answer (a failed poll: stale, back-off, comm lost).
    NoAnswer,
}

pub fn classify_exception(code: u8) -> ExceptionClass {
    match code {
        1..=3 => ExceptionClass::Refusal,
        0x0A | 0x0B => ExceptionClass::NoAnswer,
        _ => ExceptionClass::NoValues,
    }
}

impl Line {
    fn new(
        connection: Connection,
        devices: Vec<ModbusDevice>,
        notices: Option<mpsc::UnboundedSender<Notice>>,
    ) -> Line {
        let now = Instant::now();
        let now_ms = wall_ms();
        let devices = devices
            .into_iter()
            .map(|dev| {
                let classes = PollClass::ALL
                    .iter()
                    .filter_map(|&class| {
                        let items = class_items(&dev.profile, dev.unit_id, class);
                        if items.is_empty() {
                            return None;
                        }
                        let reads = plan(&items, limits_of(&dev.profile));
                        let points = items.iter().map(|i| i.point).collect();
                        Some(ClassPlan {
                            period: Duration::from_millis(dev.profile.poll.period_ms(class)),
                            reads,
                            items,
                            points,
                            refused: Default::default(),
                            due: now,
                        })
                    })
                    .collect();
                DeviceState {
                    tracker: DeviceTracker::new(&dev.id, &dev.profile, now_ms),
                    dev,
                    classes,
                    failures: 0,
                    retry_at: now,
                }
            })
            .collect();
        Line {
            connection,
            devices,
            ctx: None,
            notices,
        }
    }

    fn notice(&self, n: Notice) {
        if let Some(tx) = &self.notices {
            let _ = tx.send(n);
        }
    }

    async fn connect(connection: &Connection, unit: u8, limit: Duration) -> Option<Context> {
        let slave = Slave(unit);
        let fut = async {
            match connection {
                Connection::Tcp { addr } => tcp::connect_slave(*addr, slave).await,
                Connection::RtuOverTcp { addr } => {
                    let stream = tokio::net::TcpStream::connect(addr).await?;
                    stream.set_nodelay(true)?;
                    Ok(rtu::attach_slave(stream, slave))
                }
                Connection::Rtu { path, baud_rate } => {
                    let builder = tokio_serial::new(path, *baud_rate);
                    let port = tokio_serial::SerialStream::open(&builder)
                        .map_err(std::io::Error::other)?;
                    Ok(rtu::attach_slave(port, slave))
                }
            }
        };
        match timeout(limit, fut).await {
            Ok(Ok(ctx)) => Some(ctx),
            _ => None,
        }
    }

    /// One request with its timeout; `None` when it failed (connection then dropped).
    async fn read_once(&mut self, read: &Read, limit: Duration) -> Option<ReadOutcome> {
        if self.ctx.is_none() {
            let connection = self.connection.clone();
            self.ctx = Some(Self::connect(&connection, read.unit, limit).await?);
        }
        let ctx = self.ctx.as_mut()?;
        ctx.set_slave(Slave(read.unit));
        let (a, n) = (read.address, read.count);
        let result = match read.table {
            Table::Holding => timeout(limit, ctx.read_holding_registers(a, n))
                .await
                .map(|r| r.map(|r| r.map(ReadOutcome::Registers))),
            Table::Input => timeout(limit, ctx.read_input_registers(a, n))
                .await
                .map(|r| r.map(|r| r.map(ReadOutcome::Registers))),
            Table::Coil => timeout(limit, ctx.read_coils(a, n))
                .await
                .map(|r| r.map(|r| r.map(ReadOutcome::Bits))),
            Table::Discrete => timeout(limit, ctx.read_discrete_inputs(a, n))
                .await
                .map(|r| r.map(|r| r.map(ReadOutcome::Bits))),
        };
        match result {
            Ok(Ok(Ok(outcome))) => Some(outcome),
            Ok(Ok(Err(exception))) => match classify_exception(exception_code(exception)) {
                // The gateway says the device behind it did not answer: like a timeout, but
                // the connection to the gateway is fine.
                ExceptionClass::NoAnswer => None,
                _ => Some(ReadOutcome::Exception(exception_code(exception))),
            },
            // Timeout, transport or protocol error: never reuse this context.
            Ok(Err(_)) | Err(_) => {
                self.ctx = None;
                None
            }
        }
    }

    /// Polls one class of one device; returns the samples to report.
    async fn poll(&mut self, di: usize, ci: usize, out: &mut Vec<Sample>) {
        let (limit, attempts) = {
            let d = &self.devices[di];
            let comm = d.dev.profile.comm;
            let attempts = if d.failures > 0 { 1 } else { 1 + comm.retries };
            (Duration::from_millis(comm.timeout_ms), attempts)
        };
        let limits = limits_of(&self.devices[di].dev.profile);
        let mut run = PollRun {
            work: self.devices[di].work_list(ci, limits),
            ..PollRun::default()
        };
        while let Some((read, probe)) = run.work.pop_front() {
            let mut outcome = None;
            for _ in 0..attempts {
                outcome = self.read_once(&read, limit).await;
                if outcome.is_some() {
                    break;
                }
            }
            let now_ms = wall_ms();
            let d = &mut self.devices[di];
            let Some(outcome) = outcome else {
                d.failures += 1;
                let wait = d.dev.profile.comm.backoff_ms(d.failures);
                d.retry_at = Instant::now() + Duration::from_millis(wait);
                // The device does not answer: all its points are stale, not only this class's.
                let points = d.all_points();
                d.tracker.failed(&points, now_ms, out);
                break;
            };
            d.failures = 0;
            d.retry_at = Instant::now();
            d.tracker.answered(now_ms, out);
            if let ReadOutcome::Exception(code) = outcome {
                run.exception(d, ci, read, probe, code, limits, now_ms, out);
                continue;
            }
            if probe {
                run.accepted(d, ci, &read);
            } else {
                run.learned.push(read.clone());
            }
            run.values(d, &read, &outcome, now_ms, out);
        }
        for n in std::mem::take(&mut run.notices) {
            self.notice(n);
        }
        if self.devices[di].failures > 0 {
            return; // the poll failed part-way: keep the plan as it was
        }
        let now_ms = wall_ms();
        let d = &mut self.devices[di];
        for (pi, buf) in std::mem::take(&mut run.parts) {
            let regs: Option<Vec<u16>> = buf.into_iter().collect();
            let reading = match regs {
                Some(regs) => d.dev.profile.points[pi].reading_from_registers(&regs),
                // A part was refused or not answered: the text is incomplete.
                None => Reading::bad(None),
            };
            d.tracker.reading(pi, reading, now_ms, out);
        }
        let class = &mut self.devices[di].classes[ci];
        if run.accepted_again {
            // Merge the point back; a refusal of the merged read is learned again.
            class.replan(limits);
        } else if run.split {
            class.reads = run.learned;
        }
    }

    async fn write(&mut self, req: &WriteRequest) -> Result<(), WriteError> {
        let d = self
            .devices
            .iter()
            .find(|d| d.dev.id == req.device)
            .ok_or_else(|| WriteError::UnknownDevice(req.device.clone()))?;
        let point = d
            .dev
            .profile
            .point(&req.point)
            .ok_or_else(|| WriteError::UnknownPoint(req.device.clone(), req.point.clone()))?;
        let data = encode_write(point, &req.value)
            .map_err(|why| WriteError::NotWritable(req.point.clone(), why))?;
        let unit = d.dev.unit_id;
        let limit = Duration::from_millis(d.dev.profile.comm.timeout_ms);
        let attempts = 1 + d.dev.profile.comm.retries;
        for _ in 0..attempts {
            if self.ctx.is_none() {
                let connection = self.connection.clone();
                self.ctx = Self::connect(&connection, unit, limit).await;
            }
            let Some(ctx) = self.ctx.as_mut() else {
                continue;
            };
            ctx.set_slave(Slave(unit));
            let r = match &data {
                WriteData::Coil(a, b) => timeout(limit, ctx.write_single_coil(*a, *b)).await,
                WriteData::Registers(a, regs) if regs.len() == 1 => {
                    timeout(limit, ctx.write_single_register(*a, regs[0])).await
                }
                WriteData::Registers(a, regs) => {
                    timeout(limit, ctx.write_multiple_registers(*a, regs)).await
                }
            };
            match r {
                Ok(Ok(Ok(()))) => return Ok(()),
                Ok(Ok(Err(code))) => return Err(WriteError::Exception(format!("{code:?}"))),
                Ok(Err(_)) | Err(_) => self.ctx = None,
            }
        }
        Err(WriteError::NoAnswer)
    }

    async fn run(
        mut self,
        tx: mpsc::Sender<Vec<Sample>>,
        mut writes: Option<mpsc::Receiver<WriteRequest>>,
    ) {
        const TICK: Duration = Duration::from_millis(500);
        loop {
            // Writes first: they are rare and usually urgent (relay outputs).
            while let Some(req) = writes.as_mut().and_then(|w| w.try_recv().ok()) {
                let result = self.write(&req).await;
                let _ = req.reply.send(result);
            }
            let next = self
                .devices
                .iter()
                .enumerate()
                .filter_map(|(di, d)| d.next_due().map(|(t, waiting, ci)| (t, waiting, di, ci)))
                .min();
            let now = Instant::now();
            let mut out = Vec::new();
            match next {
                Some((t, _, di, ci)) if t <= now => {
                    self.poll(di, ci, &mut out).await;
                    let c = &mut self.devices[di].classes[ci];
                    // Keep the cadence, but never try to catch up on missed polls.
                    c.due = (c.due + c.period).max(Instant::now());
                }
                Some((t, _, _, _)) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(t.min(now + TICK)) => {}
                        _ = tx.closed() => return,
                        Some(req) = recv_write(&mut writes) => {
                            let result = self.write(&req).await;
                            let _ = req.reply.send(result);
                        }
                    }
                }
                None => {
                    tokio::select! {
                        _ = tokio::time::sleep(TICK) => {}
                        _ = tx.closed() => return,
                        Some(req) = recv_write(&mut writes) => {
                            let result = self.write(&req).await;
                            let _ = req.reply.send(result);
                        }
                    }
                }
            }
            let now_ms = wall_ms();
            for d in &mut self.devices {
                d.tracker.tick(now_ms, &mut out);
            }
            if !out.is_empty() && tx.send(out).await.is_err() {
                return;
            }
        }
    }
}

fn exception_code(e: ExceptionCode) -> u8 {
    u8::from(e)
}

/// The next write request; pending forever when there is no write channel or it closed.
async fn recv_write(writes: &mut Option<mpsc::Receiver<WriteRequest>>) -> Option<WriteRequest> {
    match writes {
        Some(w) => match w.recv().await {
            Some(r) => Some(r),
            None => {
                *writes = None;
                std::future::pending().await
            }
        },
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hazard: a gateway answering "target did not respond" for a dead device must not read as
    /// a live device with bad values (it would never be declared lost), and a refusal must not
    /// read as a device failure (nothing would be learned and the block would stay bad).
    #[test]
    fn exception_codes_map_to_refusal_no_values_or_no_answer() {
        for c in [1, 2, 3] {
            assert_eq!(classify_exception(c), ExceptionClass::Refusal, "{c}");
        }
        for c in [4, 5, 6, 8, 0x20] {
            assert_eq!(classify_exception(c), ExceptionClass::NoValues, "{c}");
        }
        for c in [0x0A, 0x0B] {
            assert_eq!(classify_exception(c), ExceptionClass::NoAnswer, "{c}");
        }
        assert_eq!(exception_code(ExceptionCode::IllegalDataAddress), 2);
    }
}
