//! Serving simulated register banks over real Modbus: one TCP server per device (as each real
//! UPS or meter has its own network card), or an RTU-over-TCP gateway that answers several unit
//! ids on one socket (a serial line behind a gateway).

use dcim_profiles::{Point, Profile, Raw, Table, WireType, encode_registers, encode_string};
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_modbus::{ExceptionCode, Request, Response, SlaveRequest};

/// The four Modbus tables of one device. Unwritten registers read as 0.
#[derive(Debug, Default, Clone)]
pub struct RegisterBank {
    holding: HashMap<u16, u16>,
    input: HashMap<u16, u16>,
    coils: HashMap<u16, bool>,
    discrete: HashMap<u16, bool>,
}

impl RegisterBank {
    fn words(&self, table: Table) -> &HashMap<u16, u16> {
        match table {
            Table::Input => &self.input,
            _ => &self.holding,
        }
    }
    fn words_mut(&mut self, table: Table) -> &mut HashMap<u16, u16> {
        match table {
            Table::Input => &mut self.input,
            _ => &mut self.holding,
        }
    }
    fn bits_mut(&mut self, table: Table) -> &mut HashMap<u16, bool> {
        match table {
            Table::Discrete => &mut self.discrete,
            _ => &mut self.coils,
        }
    }

    pub fn set_registers(&mut self, table: Table, address: u16, regs: &[u16]) {
        let m = self.words_mut(table);
        for (i, r) in regs.iter().enumerate() {
            m.insert(address.wrapping_add(i as u16), *r);
        }
    }

    pub fn registers(&self, table: Table, address: u16, count: u16) -> Vec<u16> {
        let m = self.words(table);
        (0..count)
            .map(|i| *m.get(&address.wrapping_add(i)).unwrap_or(&0))
            .collect()
    }

    pub fn set_bit(&mut self, table: Table, address: u16, value: bool) {
        self.bits_mut(table).insert(address, value);
    }

    pub fn bits(&self, table: Table, address: u16, count: u16) -> Vec<bool> {
        let m = match table {
            Table::Discrete => &self.discrete,
            _ => &self.coils,
        };
        (0..count)
            .map(|i| *m.get(&address.wrapping_add(i)).unwrap_or(&false))
            .collect()
    }

    /// Writes a point's engineering value the way a device following `point` would hold it
    /// (inverse of the profile's scale/offset, enum map and inversion).
    pub fn write_point(&mut self, point: &Point, value: &SimValue) {
        let Some(a) = point.modbus() else { return };
        if a.table.is_bits() {
            let b = value.as_bool() != point.invert;
            self.set_bit(a.table, a.address, b);
            return;
        }
        match (a.wire, value) {
            (WireType::String(chars), SimValue::Text(t)) => {
                let regs = encode_string(t, chars, a.order);
                self.set_registers(a.table, a.address, &regs);
            }
            (WireType::Bit(bit), v) => {
                let mut r = self.registers(a.table, a.address, 1)[0];
                if a.order.byte_swap {
                    r = r.swap_bytes();
                }
                let on = v.as_bool() != point.invert;
                r = if on { r | (1 << bit) } else { r & !(1 << bit) };
                if a.order.byte_swap {
                    r = r.swap_bytes();
                }
                self.set_registers(a.table, a.address, &[r]);
            }
            (wire, v) => {
                let raw = match v {
                    SimValue::Text(t) => point
                        .enum_map
                        .as_ref()
                        .and_then(|m| m.iter().find(|(_, s)| *s == t).map(|(k, _)| *k as f64))
                        .unwrap_or(0.0),
                    SimValue::Bool(b) => (*b != point.invert) as u8 as f64,
                    SimValue::Number(x) => (x - point.offset) / point.scale,
                };
                self.set_registers(a.table, a.address, &encode_registers(raw, wire, a.order));
            }
        }
    }

    /// Writes a raw value (e.g. a sensor's fault code) into a point's registers.
    pub fn write_raw(&mut self, point: &Point, raw: &Raw) {
        let Some(a) = point.modbus() else { return };
        let x = match raw {
            Raw::Unsigned(u) => *u as f64,
            Raw::Signed(i) => *i as f64,
            Raw::Float(f) => *f,
            Raw::Bool(b) => *b as u8 as f64,
            Raw::Text(_) => 0.0,
        };
        if a.table.is_bits() {
            self.set_bit(a.table, a.address, x != 0.0);
        } else {
            self.set_registers(a.table, a.address, &encode_registers(x, a.wire, a.order));
        }
    }
}

/// An engineering value produced by a simulated device.
#[derive(Debug, Clone, PartialEq)]
pub enum SimValue {
    Number(f64),
    Bool(bool),
    Text(String),
}

impl SimValue {
    fn as_bool(&self) -> bool {
        match self {
            SimValue::Bool(b) => *b,
            SimValue::Number(x) => *x != 0.0,
            SimValue::Text(t) => !t.is_empty(),
        }
    }
}

/// What a Modbus server of one device shares with the simulation.
#[derive(Debug, Default)]
pub struct ModbusShared {
    pub bank: Mutex<RegisterBank>,
    /// The device does not answer at all (requests are swallowed).
    pub silent: AtomicBool,
    /// Extra delay before each answer, in milliseconds.
    pub delay_ms: AtomicU64,
    /// Requests answered (for tests and benchmarks).
    pub requests: AtomicU64,
}

impl ModbusShared {
    fn answer(&self, req: Request<'_>) -> Result<Response, ExceptionCode> {
        let max_ok = |n: u16, max: u16| {
            if n == 0 || n > max {
                Err(ExceptionCode::IllegalDataValue)
            } else {
                Ok(())
            }
        };
        let mut bank = self.bank.lock().expect("bank lock");
        Ok(match req {
            Request::ReadHoldingRegisters(a, n) => {
                max_ok(n, 125)?;
                Response::ReadHoldingRegisters(bank.registers(Table::Holding, a, n))
            }
            Request::ReadInputRegisters(a, n) => {
                max_ok(n, 125)?;
                Response::ReadInputRegisters(bank.registers(Table::Input, a, n))
            }
            Request::ReadCoils(a, n) => {
                max_ok(n, 2000)?;
                Response::ReadCoils(bank.bits(Table::Coil, a, n))
            }
            Request::ReadDiscreteInputs(a, n) => {
                max_ok(n, 2000)?;
                Response::ReadDiscreteInputs(bank.bits(Table::Discrete, a, n))
            }
            Request::WriteSingleCoil(a, v) => {
                bank.set_bit(Table::Coil, a, v);
                Response::WriteSingleCoil(a, v)
            }
            Request::WriteSingleRegister(a, v) => {
                bank.set_registers(Table::Holding, a, &[v]);
                Response::WriteSingleRegister(a, v)
            }
            Request::WriteMultipleRegisters(a, v) => {
                bank.set_registers(Table::Holding, a, &v);
                Response::WriteMultipleRegisters(a, v.len() as u16)
            }
            Request::WriteMultipleCoils(a, v) => {
                for (i, b) in v.iter().enumerate() {
                    bank.set_bit(Table::Coil, a.wrapping_add(i as u16), *b);
                }
                Response::WriteMultipleCoils(a, v.len() as u16)
            }
            _ => return Err(ExceptionCode::IllegalFunction),
        })
    }

    fn respond(
        self: &Arc<Self>,
        req: Request<'static>,
    ) -> Pin<Box<dyn Future<Output = Result<Option<Response>, ExceptionCode>> + Send>> {
        let me = self.clone();
        Box::pin(async move {
            let delay = me.delay_ms.load(Ordering::Relaxed);
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            if me.silent.load(Ordering::Relaxed) {
                return Ok(None);
            }
            me.requests.fetch_add(1, Ordering::Relaxed);
            me.answer(req).map(Some)
        })
    }

    /// Fills the bank from a profile and a value per point id.
    pub fn write_values(&self, profile: &Profile, values: &[(&str, SimValue)]) {
        let mut bank = self.bank.lock().expect("bank lock");
        for (id, v) in values {
            if let Some(p) = profile.point(id) {
                bank.write_point(p, v);
            }
        }
    }
}

struct TcpService(Arc<ModbusShared>);

impl tokio_modbus::server::Service for TcpService {
    type Request = Request<'static>;
    type Response = Option<Response>;
    type Exception = ExceptionCode;
    type Future = Pin<Box<dyn Future<Output = Result<Option<Response>, ExceptionCode>> + Send>>;
    fn call(&self, req: Self::Request) -> Self::Future {
        self.0.respond(req)
    }
}

struct GatewayService(Arc<HashMap<u8, Arc<ModbusShared>>>);

impl tokio_modbus::server::Service for GatewayService {
    type Request = SlaveRequest<'static>;
    type Response = Option<Response>;
    type Exception = ExceptionCode;
    type Future = Pin<Box<dyn Future<Output = Result<Option<Response>, ExceptionCode>> + Send>>;
    fn call(&self, req: Self::Request) -> Self::Future {
        match self.0.get(&req.slave) {
            Some(dev) => dev.respond(req.request),
            // No device at this address on the line: nobody answers.
            None => Box::pin(async { Ok(None) }),
        }
    }
}

/// Serves one device over Modbus TCP on `listener` until the task is aborted.
pub fn serve_tcp(listener: TcpListener, device: Arc<ModbusShared>) -> JoinHandle<io::Result<()>> {
    tokio::spawn(async move {
        let server = tokio_modbus::server::tcp::Server::new(listener);
        let on_connected = |stream: tokio::net::TcpStream, _addr: SocketAddr| {
            let dev = device.clone();
            async move {
                stream.set_nodelay(true)?;
                Ok(Some((TcpService(dev), stream)))
            }
        };
        server.serve(&on_connected, |_err| {}).await
    })
}

/// Serves several devices, by unit id, as RTU frames over TCP (a serial gateway) until aborted.
pub fn serve_rtu_gateway(
    listener: TcpListener,
    devices: HashMap<u8, Arc<ModbusShared>>,
) -> JoinHandle<io::Result<()>> {
    let devices = Arc::new(devices);
    tokio::spawn(async move {
        let server = tokio_modbus::server::rtu_over_tcp::Server::new(listener);
        let on_connected = |stream: tokio::net::TcpStream, _addr: SocketAddr| {
            let devs = devices.clone();
            async move {
                stream.set_nodelay(true)?;
                Ok(Some((GatewayService(devs), stream)))
            }
        };
        server.serve(&on_connected, |_err| {}).await
    })
}

/// Serves several devices, by unit id, as Modbus RTU on a serial port (e.g. one end of a
/// pseudo-terminal pair in tests) until aborted.
pub fn serve_rtu_serial(
    port: tokio_serial::SerialStream,
    devices: HashMap<u8, Arc<ModbusShared>>,
) -> JoinHandle<io::Result<()>> {
    let service = GatewayService(Arc::new(devices));
    tokio::spawn(async move {
        tokio_modbus::server::rtu::Server::new(port)
            .serve_forever(service)
            .await
    })
}
