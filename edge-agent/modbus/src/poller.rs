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
//! - a Modbus exception is an answer: the points of that read get quality `bad`.

use crate::plan::{Read, plan_class};
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
use tokio_modbus::Slave;
use tokio_modbus::client::{Context, Reader, Writer};
use tokio_modbus::prelude::{SlaveContext, rtu, tcp};

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
    let line = Line::new(connection, devices);
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

/// Like [`spawn_line`], and returns a handle that can also write points.
pub fn spawn_line_with_writes(
    connection: Connection,
    devices: Vec<ModbusDevice>,
    tx: mpsc::Sender<Vec<Sample>>,
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
    let line = Line::new(connection, devices);
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
    reads: Vec<Read>,
    /// Every point index of the class (to mark stale on failure).
    points: Vec<usize>,
    due: Instant,
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
}

enum ReadOutcome {
    Registers(Vec<u16>),
    Bits(Vec<bool>),
    Exception,
}

impl Line {
    fn new(connection: Connection, devices: Vec<ModbusDevice>) -> Line {
        let now = Instant::now();
        let now_ms = wall_ms();
        let devices = devices
            .into_iter()
            .map(|dev| {
                let classes = PollClass::ALL
                    .iter()
                    .filter_map(|&class| {
                        let reads = plan_class(&dev.profile, dev.unit_id, class);
                        if reads.is_empty() {
                            return None;
                        }
                        let points = reads.iter().flat_map(|r| r.points.clone()).collect();
                        Some(ClassPlan {
                            period: Duration::from_millis(dev.profile.poll.period_ms(class)),
                            reads,
                            points,
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
            Ok(Ok(Err(_exception))) => Some(ReadOutcome::Exception),
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
        let reads = self.devices[di].classes[ci].reads.clone();
        for read in &reads {
            let mut outcome = None;
            for _ in 0..attempts {
                outcome = self.read_once(read, limit).await;
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
                return;
            };
            d.failures = 0;
            d.retry_at = Instant::now();
            d.tracker.answered(now_ms, out);
            let profile = d.dev.profile.clone();
            for &pi in &read.points {
                let point = &profile.points[pi];
                let Some(addr) = point.modbus() else { continue };
                let off = (addr.address - read.address) as usize;
                let reading = match &outcome {
                    ReadOutcome::Registers(regs) => match regs.get(off..) {
                        Some(r) => point.reading_from_registers(r),
                        None => Reading::bad(None),
                    },
                    ReadOutcome::Bits(bits) => match bits.get(off) {
                        Some(b) => point.reading_from_bit(*b),
                        None => Reading::bad(None),
                    },
                    ReadOutcome::Exception => Reading::bad(None),
                };
                d.tracker.reading(pi, reading, now_ms, out);
            }
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
