//! Simulated facility hardware served over the real protocols.
//!
//! - Modbus TCP servers (tokio-modbus) for rack BMSs, UPS zones and dual-feed meters/ATSs, whose
//!   registers follow the profiles in `device-profiles/` (the simulator encodes values with the
//!   same profile the agent decodes them with);
//! - an MQTT thermal camera ([`publish_camera`], rumqttc) publishing one JSON message per region;
//! - scripted faults ([`Command`], [`parse_scenario`]): feed loss, breaker trips, a battery rack
//!   heating up through the fire stages, sensor failures, silent or slow devices.
//!
//! Library use (end-to-end tests): [`start`] a [`SimConfig`] in-process on ephemeral ports, read
//! [`SimHandle::endpoints`], drive it with [`SimHandle::command`].
//!
//! Adding a device kind: a module under [`kinds`] with a type implementing [`SimDevice`], and a
//! line in [`Facility::build`]. A kind that speaks another protocol (BACnet) serves itself from
//! its own module; [`Env`] carries facility-wide state such as tripped chillers.

pub mod demo;
pub mod kinds;
pub mod modbus;
pub mod scenario;

pub use modbus::{
    ModbusShared, RegisterBank, SimValue, serve_rtu_gateway, serve_rtu_serial, serve_tcp,
};
pub use scenario::{Command, CommandError, DeviceCommand, Step, parse_scenario};

use dcim_profiles::{Profile, Raw, load_file};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Facility-wide state every device sees when it steps.
#[derive(Debug, Clone, Default)]
pub struct Env {
    /// Utility feeds A and B.
    pub feed_up: [bool; 2],
    /// Chillers tripped by scenario (for BACnet chiller kinds).
    pub chillers_tripped: BTreeSet<String>,
    /// Camera regions and the surface temperature of what they watch. A region of a device
    /// watched by a dedicated camera is keyed `{device}:{region}` (see [`kinds::camera::Camera`]).
    pub regions: BTreeMap<String, f64>,
    /// Electrical load carried by a device (rack, PDU, UPS, transformer, ATS, feed meter), kW.
    /// Filled by the demo facility's load model ([`demo::compute_loads`]); empty otherwise.
    pub loads_kw: BTreeMap<String, f64>,
    /// Air temperature of a room (`hall-1`..), °C, from the cooling plant.
    pub room_temp: BTreeMap<String, f64>,
    /// Source each ATS is on (0 = A, 1 = B, None = no live feed), by ATS device id.
    pub ats_source: BTreeMap<String, Option<usize>>,
    /// Electrical power of the cooling plant (chillers, pumps, CRAH fans), kW.
    pub cooling_kw: f64,
    /// Total IT load, kW (heat into the chilled-water loop).
    pub it_kw: f64,
    /// IT load per room, kW.
    pub room_it_kw: BTreeMap<String, f64>,
    /// UPSs running on battery.
    pub ups_on_battery: BTreeSet<String>,
    /// Devices whose own breaker is open (row PDUs): their load moves to the other side.
    pub open_breakers: BTreeSet<String>,
}

/// One BACnet object of a simulated device, with its current value.
#[derive(Debug, Clone, PartialEq)]
pub struct BacnetObject {
    pub id: dcim_bacnet::codec::types::ObjectId,
    pub name: String,
    pub value: dcim_bacnet::codec::types::Value,
    pub units: Option<u32>,
    /// The sensor behind the object is failed (status flag `fault`).
    pub fault: bool,
}

/// A BACnet/IP device hosted by a simulated device kind (one UDP port each).
#[derive(Debug, Clone, PartialEq)]
pub struct BacnetDevice {
    pub device: String,
    pub profile: String,
    pub instance: u32,
    pub objects: Vec<BacnetObject>,
}

/// A simulated device.
pub trait SimDevice: Send {
    fn id(&self) -> &str;
    fn kind(&self) -> &'static str;
    /// Recomputes the device's values at `t` seconds after start, `dt` seconds after the last step.
    fn step(&mut self, t: f64, dt: f64, env: &Env);
    /// A command addressed to this device.
    fn command(&mut self, cmd: &DeviceCommand) -> Result<(), String> {
        Err(format!("a {} does not understand {cmd:?}", self.kind()))
    }
    /// The Modbus server state and profile, for devices served over Modbus.
    fn modbus(&self) -> Option<(&Arc<ModbusShared>, &Arc<Profile>)> {
        None
    }
    /// A camera region this device is watched as, and its surface temperature.
    fn region(&self) -> Option<(String, f64)> {
        None
    }
    /// The thermal camera, for devices that are one.
    fn camera(&self) -> Option<&kinds::camera::Camera> {
        None
    }
    /// Adds what this device tells the rest of the facility to `env` (called before every
    /// step, with the values of the previous step). By default: its camera region.
    fn contribute(&self, env: &mut Env) {
        if let Some((r, t)) = self.region() {
            env.regions.insert(r, t);
        }
    }
    /// Whether commands addressed to `id` go to this device (a plant hosts several ids).
    fn owns(&self, id: &str) -> bool {
        self.id() == id
    }
    /// For devices behind a serial gateway: the gateway's name and this device's unit id.
    fn gateway(&self) -> Option<(String, u8)> {
        None
    }
    /// BACnet devices hosted by this kind, with their current values.
    fn bacnet(&self) -> Vec<BacnetDevice> {
        Vec::new()
    }
    /// MQTT messages (topic, JSON payload) this device publishes now.
    fn mqtt(&self, ts_ms: i64) -> Vec<(String, String)> {
        self.camera().map(|c| c.messages(ts_ms)).unwrap_or_default()
    }
    /// Profile file name (without `.toml`) of devices that are not Modbus (MQTT devices).
    fn profile_name(&self) -> Option<&str> {
        None
    }
}

/// Which facility to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Preset {
    /// `racks` battery-rack BMSs, `ups` UPS zones, `meters` ATS meters, a camera, and a chiller
    /// plant (`chiller_plant`) with its own ids (`bms-r01`, `ups-z1`, `meter-1`, `cam-1`,
    /// `chiller-1`...).
    #[default]
    Basic,
    /// The demo data center of `dcim-server/site/sites/demo.toml`, with its device ids
    /// (see [`demo`]); `racks`, `ups`, `meters`, `camera` and `chiller_plant` are ignored.
    Demo,
    /// The demo data center plus IT halls 4..=`halls` of 100 racks each (rows of 10 racks and
    /// two PDUs behind one RTU-over-TCP gateway, as in the demo halls): `halls = 20` is 2,000
    /// racks. The extra halls are outside the demo site model and its load model (see
    /// [`demo::extra_halls`]); they exist to load agents, broker and server at full scale.
    Large { halls: usize },
}

impl Preset {
    /// Whether the demo data center is part of this preset.
    pub fn has_demo(self) -> bool {
        matches!(self, Preset::Demo | Preset::Large { .. })
    }
}

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub preset: Preset,
    pub racks: usize,
    pub ups: usize,
    pub meters: usize,
    pub camera: bool,
    /// A chiller plant over BACnet/IP (basic preset): `chiller-1`, `chiller-2`, `tank-1`,
    /// `loop-a`, `crah-1`..`crah-4`.
    pub chiller_plant: bool,
    /// Folder of the device profiles.
    pub profiles_dir: PathBuf,
    /// First TCP port; 0 = an ephemeral port per device.
    pub base_port: u16,
    /// Step period of the simulation.
    pub step: Duration,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            preset: Preset::Basic,
            racks: 8,
            ups: 4,
            meters: 2,
            camera: true,
            chiller_plant: true,
            profiles_dir: default_profiles_dir(),
            base_port: 0,
            step: Duration::from_millis(200),
        }
    }
}

impl SimConfig {
    /// The demo data center (see [`demo`]) with profiles from `profiles_dir`, ephemeral ports.
    pub fn demo(profiles_dir: impl Into<PathBuf>) -> SimConfig {
        SimConfig {
            preset: Preset::Demo,
            profiles_dir: profiles_dir.into(),
            ..SimConfig::default()
        }
    }
}

/// `device-profiles/` of this source tree (or of the current directory when run elsewhere).
pub fn default_profiles_dir() -> PathBuf {
    let here = Path::new("device-profiles");
    if here.is_dir() {
        here.to_path_buf()
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../device-profiles")
    }
}

/// The simulated facility: devices, facility-wide state and per-point overrides.
pub struct Facility {
    devices: Vec<Box<dyn SimDevice>>,
    env: Env,
    /// (device, point) -> raw fault value written over the simulated one.
    overrides: HashMap<(String, String), Raw>,
    last_t: f64,
    preset: Preset,
}

impl Facility {
    /// Builds the devices of `cfg` (ids: `bms-r01..`, `ups-z1..`, `meter-1..`, `cam-1`).
    pub fn build(cfg: &SimConfig) -> Result<Facility, String> {
        let load = |name: &str| load_profile(&cfg.profiles_dir, name);
        let mut devices: Vec<Box<dyn SimDevice>> = Vec::new();
        if cfg.preset == Preset::Demo {
            return Ok(Facility::with_devices(
                demo::build_devices(&cfg.profiles_dir)?,
                Preset::Demo,
            ));
        }
        if let Preset::Large { halls } = cfg.preset {
            let mut devices = demo::build_devices(&cfg.profiles_dir)?;
            devices.extend(demo::extra_halls(&cfg.profiles_dir, halls)?);
            return Ok(Facility::with_devices(devices, cfg.preset));
        }
        if cfg.racks > 0 {
            let p = load("rack-bms-li-ion")?;
            for i in 0..cfg.racks {
                let id = format!("bms-r{:02}", i + 1);
                devices.push(Box::new(kinds::bms::Bms::new(&id, i, p.clone())));
            }
        }
        if cfg.ups > 0 {
            let p = load("ups-modular-3ph")?;
            for i in 0..cfg.ups {
                let id = format!("ups-z{}", i + 1);
                devices.push(Box::new(kinds::ups::Ups::new(&id, i, p.clone())));
            }
        }
        if cfg.meters > 0 {
            let p = load("power-meter-dual-feed-ats")?;
            for i in 0..cfg.meters {
                let id = format!("meter-{}", i + 1);
                devices.push(Box::new(kinds::meter::Meter::new(&id, i, p.clone())));
            }
        }
        if cfg.camera {
            devices.push(Box::new(kinds::camera::Camera::new("cam-1")));
        }
        if cfg.chiller_plant {
            devices.push(Box::new(kinds::plant::Plant::new(
                kinds::plant::PlantLayout::basic(),
                &cfg.profiles_dir,
            )?));
        }
        Ok(Facility::with_devices(devices, Preset::Basic))
    }

    fn with_devices(devices: Vec<Box<dyn SimDevice>>, preset: Preset) -> Facility {
        let mut f = Facility {
            devices,
            env: Env {
                feed_up: [true, true],
                ..Env::default()
            },
            overrides: HashMap::new(),
            last_t: 0.0,
            preset,
        };
        // Two passes so that values depending on other devices (loads, room temperatures)
        // are consistent from the first read.
        f.step(0.0);
        f.step(0.0);
        f
    }

    pub fn devices(&self) -> impl Iterator<Item = &dyn SimDevice> {
        self.devices.iter().map(|d| d.as_ref())
    }

    pub fn env(&self) -> &Env {
        &self.env
    }

    /// Advances the simulation to `t` seconds after start.
    pub fn step(&mut self, t: f64) {
        let dt = (t - self.last_t).max(0.0);
        self.last_t = t;
        self.env.regions.clear();
        for d in &self.devices {
            d.contribute(&mut self.env);
        }
        if self.preset.has_demo() {
            demo::compute_loads(t, &mut self.env);
        }
        if let Preset::Large { halls } = self.preset {
            demo::extra_loads(t, halls, &mut self.env);
        }
        for d in &mut self.devices {
            d.step(t, dt, &self.env);
        }
        for ((dev, point), raw) in &self.overrides {
            if let Some((shared, profile)) = self
                .devices
                .iter()
                .find(|d| d.id() == dev)
                .and_then(|d| d.modbus())
                && let Some(p) = profile.point(point)
            {
                shared.bank.lock().expect("bank lock").write_raw(p, raw);
            }
        }
    }

    fn device_mut(&mut self, id: &str) -> Result<&mut Box<dyn SimDevice>, String> {
        self.devices
            .iter_mut()
            .find(|d| d.owns(id))
            .ok_or_else(|| format!("no device `{id}`"))
    }

    fn is_bacnet(&self, id: &str) -> bool {
        self.devices
            .iter()
            .any(|d| d.bacnet().iter().any(|b| b.device == id))
    }

    /// Every BACnet device of the facility with its current values.
    pub fn bacnet_devices(&self) -> Vec<BacnetDevice> {
        self.devices.iter().flat_map(|d| d.bacnet()).collect()
    }

    fn shared(&mut self, id: &str) -> Result<Arc<ModbusShared>, String> {
        let d = self.device_mut(id)?;
        d.modbus()
            .map(|(s, _)| s.clone())
            .ok_or_else(|| format!("`{id}` is not a Modbus device"))
    }

    /// Applies a command; returns a line describing what happened.
    pub fn apply(&mut self, cmd: &Command) -> Result<String, String> {
        let msg = match cmd {
            Command::FeedLoss(f) => {
                self.env.feed_up[*f] = false;
                format!("feed {} lost", ["A", "B"][*f])
            }
            Command::FeedRestore(f) => {
                self.env.feed_up[*f] = true;
                format!("feed {} restored", ["A", "B"][*f])
            }
            Command::SensorFail { device, point } if self.is_bacnet(device) => {
                self.device_mut(device)?
                    .command(&DeviceCommand::PointFault {
                        device: device.clone(),
                        point: point.clone(),
                        failed: true,
                    })?;
                format!("{device}/{point} failed (BACnet status flag fault)")
            }
            Command::SensorOk { device, point } if self.is_bacnet(device) => {
                self.device_mut(device)?
                    .command(&DeviceCommand::PointFault {
                        device: device.clone(),
                        point: point.clone(),
                        failed: false,
                    })?;
                format!("{device}/{point} repaired")
            }
            Command::SensorFail { device, point } => {
                let d = self.device_mut(device)?;
                let (_, profile) = d
                    .modbus()
                    .ok_or_else(|| format!("`{device}` is not a Modbus device"))?;
                let p = profile
                    .point(point)
                    .ok_or_else(|| format!("`{device}` has no point `{point}`"))?;
                let raw = p
                    .health
                    .as_ref()
                    .and_then(|h| h.invalid.first())
                    .map_or(Raw::Unsigned(0xFFFF), |x| Raw::Float(*x));
                self.overrides.insert((device.clone(), point.clone()), raw);
                format!("{device}/{point} failed")
            }
            Command::SensorOk { device, point } => {
                self.overrides.remove(&(device.clone(), point.clone()));
                format!("{device}/{point} repaired")
            }
            Command::Silent(id) => {
                self.shared(id)?.silent.store(true, Ordering::Relaxed);
                format!("{id} silent")
            }
            Command::Revive(id) => {
                let s = self.shared(id)?;
                s.silent.store(false, Ordering::Relaxed);
                s.delay_ms.store(0, Ordering::Relaxed);
                format!("{id} answers again")
            }
            Command::Slow { device, ms } => {
                self.shared(device)?.delay_ms.store(*ms, Ordering::Relaxed);
                format!("{device} answers after {ms} ms")
            }
            Command::ChillerTrip(id) => {
                self.device_mut(id)?
                    .command(&DeviceCommand::ChillerTrip(id.clone()))?;
                self.env.chillers_tripped.insert(id.clone());
                format!("chiller {id} tripped")
            }
            Command::ChillerRestore(id) => {
                self.device_mut(id)?
                    .command(&DeviceCommand::ChillerReset(id.clone()))?;
                self.env.chillers_tripped.remove(id);
                format!("chiller {id} reset")
            }
            Command::Device { device, cmd } => {
                self.device_mut(device)?.command(cmd)?;
                format!("{device}: {cmd:?}")
            }
            Command::Status => self
                .devices
                .iter()
                .map(|d| format!("{} {}", d.id(), d.kind()))
                .collect::<Vec<_>>()
                .join("\n"),
        };
        let t = self.last_t;
        self.step(t);
        Ok(msg)
    }
}

/// How a simulated device is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connection {
    /// Its own Modbus TCP server.
    ModbusTcp { addr: SocketAddr, unit: u8 },
    /// A unit id behind an RTU-over-TCP serial gateway shared with other devices.
    ModbusRtuOverTcp { addr: SocketAddr, unit: u8 },
    /// A BACnet/IP device on its own UDP port.
    Bacnet { addr: SocketAddr, instance: u32 },
    /// Publishes to the MQTT broker given to [`SimHandle::publish_mqtt`].
    Mqtt,
    /// Not reachable (a model without a server of its own).
    None,
}

/// Loads `{dir}/{name}.toml`.
pub fn load_profile(dir: &Path, name: &str) -> Result<Arc<Profile>, String> {
    load_file(&dir.join(format!("{name}.toml")))
        .map(Arc::new)
        .map_err(|e| e.to_string())
}

/// Where a simulated device can be reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub device: String,
    pub kind: String,
    /// Profile file name (without `.toml`), empty for devices without one.
    pub profile: String,
    /// The profile file, when the device has one.
    pub profile_file: Option<PathBuf>,
    /// Modbus address (TCP server or gateway), for Modbus devices.
    pub modbus: Option<SocketAddr>,
    pub unit_id: u8,
    pub connection: Connection,
}

/// A running simulator. Dropping it stops every task.
pub struct SimHandle {
    pub facility: Arc<Mutex<Facility>>,
    pub endpoints: Vec<Endpoint>,
    tasks: Vec<JoinHandle<()>>,
    servers: Vec<JoinHandle<std::io::Result<()>>>,
}

impl SimHandle {
    pub fn command(&self, cmd: &Command) -> Result<String, String> {
        self.facility.lock().expect("facility lock").apply(cmd)
    }

    pub fn endpoint(&self, device: &str) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.device == device)
    }

    /// Modbus requests answered so far by `device`.
    pub fn requests(&self, device: &str) -> u64 {
        let f = self.facility.lock().expect("facility lock");
        f.devices()
            .find(|d| d.id() == device)
            .and_then(|d| d.modbus())
            .map_or(0, |(s, _)| s.requests.load(Ordering::Relaxed))
    }

    /// Publishes every MQTT device (cameras, network probes) to an MQTT broker
    /// (`mqtt://host:port` or `host:port`) every `period` until the simulator stops.
    pub fn publish_mqtt(&mut self, broker: &str, period: Duration) -> Result<(), String> {
        self.publish_camera(broker, period)
    }

    /// Publishes the thermal camera to an MQTT broker (`mqtt://host:port` or `host:port`)
    /// every `period` until the simulator stops.
    pub fn publish_camera(&mut self, broker: &str, period: Duration) -> Result<(), String> {
        let task = publish_camera(self.facility.clone(), broker, period)?;
        self.tasks.push(task);
        Ok(())
    }

    /// Runs a scenario's steps at their times (relative to now) in the background.
    pub fn run_scenario(&mut self, steps: Vec<Step>, log: bool) {
        let facility = self.facility.clone();
        self.tasks.push(tokio::spawn(async move {
            let start = tokio::time::Instant::now();
            for s in steps {
                tokio::time::sleep_until(start + Duration::from_secs_f64(s.at_s)).await;
                let r = facility.lock().expect("facility lock").apply(&s.command);
                if log {
                    match r {
                        Ok(m) => println!("[{:>7.1}s] {m}", s.at_s),
                        Err(e) => eprintln!("[{:>7.1}s] error: {e}", s.at_s),
                    }
                }
            }
        }));
    }

    pub fn shutdown(&mut self) {
        self.tasks.iter().for_each(|t| t.abort());
        self.servers.iter().for_each(|t| t.abort());
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Starts the simulator on 127.0.0.1 and steps the simulation in the background: one Modbus TCP
/// server per stand-alone Modbus device, one RTU-over-TCP gateway per group of devices behind a
/// serial gateway (one per row in the demo), one BACnet/IP device server (UDP) per BACnet device.
/// MQTT devices publish once [`SimHandle::publish_mqtt`] is given a broker. Must be called inside
/// a tokio runtime.
pub async fn start(cfg: SimConfig) -> Result<SimHandle, String> {
    let facility = Facility::build(&cfg)?;
    let mut endpoints = Vec::new();
    let mut servers = Vec::new();
    let mut port = cfg.base_port;
    let mut next_port = || {
        let p = port;
        if port != 0 {
            port += 1;
        }
        p
    };
    let profile_file = |name: &str| {
        let f = cfg.profiles_dir.join(format!("{name}.toml"));
        Some(std::fs::canonicalize(&f).unwrap_or(f))
    };
    // Serial gateways first: one listener per gateway.
    let mut gateways: BTreeMap<String, (SocketAddr, HashMap<u8, Arc<ModbusShared>>)> =
        BTreeMap::new();
    for d in facility.devices() {
        if let (Some((gw, _)), Some(_)) = (d.gateway(), d.modbus())
            && !gateways.contains_key(&gw)
        {
            let p = next_port();
            let listener = TcpListener::bind(("127.0.0.1", p))
                .await
                .map_err(|e| format!("cannot listen on 127.0.0.1:{p}: {e}"))?;
            let addr = listener.local_addr().map_err(|e| e.to_string())?;
            gateways.insert(gw.clone(), (addr, HashMap::new()));
            // The listener is served below, once every unit of the gateway is known.
            servers.push((gw, listener));
        }
    }
    let mut tcp_servers = Vec::new();
    for d in facility.devices() {
        let mut ep = Endpoint {
            device: d.id().to_owned(),
            kind: d.kind().to_owned(),
            profile: String::new(),
            profile_file: None,
            modbus: None,
            unit_id: 1,
            connection: Connection::None,
        };
        if let Some((shared, profile)) = d.modbus() {
            ep.profile = profile.name.clone();
            ep.profile_file = profile_file(&profile.name);
            match d.gateway() {
                Some((gw, unit)) => {
                    let (addr, units) = gateways.get_mut(&gw).expect("gateway bound above");
                    if units.insert(unit, shared.clone()).is_some() {
                        return Err(format!("gateway {gw}: unit {unit} used twice"));
                    }
                    ep.modbus = Some(*addr);
                    ep.unit_id = unit;
                    ep.connection = Connection::ModbusRtuOverTcp { addr: *addr, unit };
                }
                None => {
                    let p = next_port();
                    let listener = TcpListener::bind(("127.0.0.1", p))
                        .await
                        .map_err(|e| format!("cannot listen on 127.0.0.1:{p}: {e}"))?;
                    let addr = listener.local_addr().map_err(|e| e.to_string())?;
                    ep.modbus = Some(addr);
                    ep.connection = Connection::ModbusTcp { addr, unit: 1 };
                    tcp_servers.push(serve_tcp(listener, shared.clone()));
                }
            }
            endpoints.push(ep);
        } else if let Some(name) = d.profile_name() {
            ep.profile = name.to_owned();
            ep.profile_file = profile_file(name);
            ep.connection = Connection::Mqtt;
            endpoints.push(ep);
        } else if d.bacnet().is_empty() {
            endpoints.push(ep);
        }
    }
    for (gw, listener) in servers {
        let (_, units) = gateways.remove(&gw).expect("gateway bound above");
        tcp_servers.push(serve_rtu_gateway(listener, units));
    }
    // BACnet devices: one DeviceServer (UDP) each.
    let mut bacnet_servers = Vec::new();
    for b in facility.bacnet_devices() {
        let p = next_port();
        let device = bacnet_device(&b);
        let server =
            dcim_bacnet::server::DeviceServer::bind(SocketAddr::from(([127, 0, 0, 1], p)), device)
                .await
                .map_err(|e| {
                    format!("cannot bind BACnet/IP device {} on UDP {p}: {e}", b.device)
                })?;
        let addr = server.local_addr();
        endpoints.push(Endpoint {
            device: b.device.clone(),
            kind: "bacnet".into(),
            profile: b.profile.clone(),
            profile_file: profile_file(&b.profile),
            modbus: None,
            unit_id: 0,
            connection: Connection::Bacnet {
                addr,
                instance: b.instance,
            },
        });
        bacnet_servers.push((b.device.clone(), server));
    }
    let facility = Arc::new(Mutex::new(facility));
    let stepper = {
        let facility = facility.clone();
        let step = cfg.step;
        tokio::spawn(async move {
            let start = Instant::now();
            let mut tick = tokio::time::interval(step);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tick.tick().await;
                let t = start.elapsed().as_secs_f64();
                let snapshot = {
                    let mut f = facility.lock().expect("facility lock");
                    f.step(t);
                    f.bacnet_devices()
                };
                // Values go to the BACnet servers outside the facility lock (COV notifications
                // are sent from `update`).
                for (id, server) in &bacnet_servers {
                    if let Some(b) = snapshot.iter().find(|b| &b.device == id) {
                        server
                            .update(|dev, now| ((), write_bacnet(dev, b, now)))
                            .await;
                    }
                }
            }
        })
    };
    Ok(SimHandle {
        facility,
        endpoints,
        tasks: vec![stepper],
        servers: tcp_servers,
    })
}

/// Builds the dcim-bacnet device of a simulated BACnet device.
pub fn bacnet_device(b: &BacnetDevice) -> dcim_bacnet::device::Device {
    use dcim_bacnet::device::{Device, Object};
    let mut d = Device::new(b.instance, &b.device);
    d.model_name = format!("facility-sim {}", b.profile);
    for o in &b.objects {
        let obj = match (&o.value, o.units) {
            (dcim_bacnet::codec::types::Value::Real(x), u) => Object::analog(
                o.id,
                &o.name,
                *x,
                u.unwrap_or(dcim_bacnet::codec::types::units::NO_UNITS),
                0.1,
            ),
            (v, _) => Object::binary(
                o.id,
                &o.name,
                matches!(v, dcim_bacnet::codec::types::Value::Enumerated(1)),
            ),
        };
        // Ids come from one profile, where the loader rejects duplicates.
        let _ = d.add_object(obj);
    }
    let _ = write_bacnet(&mut d, b, 0);
    d
}

/// Writes the current values and fault flags of `b` into `dev`; returns the COV notifications.
pub fn write_bacnet(
    dev: &mut dcim_bacnet::device::Device,
    b: &BacnetDevice,
    now_ms: u64,
) -> Vec<dcim_bacnet::device::Outgoing> {
    let mut out = Vec::new();
    for o in &b.objects {
        if let Ok(n) = dev.set_present_value(o.id, o.value.clone(), now_ms) {
            out.extend(n);
        }
        let flags = dcim_bacnet::device::StatusFlags {
            fault: o.fault,
            ..Default::default()
        };
        if let Ok(n) = dev.set_status_flags(o.id, flags, now_ms) {
            out.extend(n);
        }
    }
    out
}

fn parse_broker(url: &str) -> Result<(String, u16), String> {
    let rest = url
        .strip_prefix("mqtt://")
        .or_else(|| url.strip_prefix("tcp://"))
        .unwrap_or(url);
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>()
                .map_err(|_| format!("broker `{url}`: `{p}` is not a port"))?,
        ),
        None => (rest, 1883),
    };
    if host.is_empty() {
        return Err(format!("broker `{url}`: expected mqtt://host:port"));
    }
    Ok((host.to_owned(), port))
}

/// Publishes every MQTT device of `facility` (thermal cameras, network probes) to `broker` every
/// `period` (QoS 0: these devices stream).
pub fn publish_camera(
    facility: Arc<Mutex<Facility>>,
    broker: &str,
    period: Duration,
) -> Result<JoinHandle<()>, String> {
    let (host, port) = parse_broker(broker)?;
    // A client id per publisher: two simulators on one broker must not take over each other's
    // session.
    static PUBLISHERS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = PUBLISHERS.fetch_add(1, Ordering::Relaxed);
    let client_id = format!("facility-sim-{}-{n}", std::process::id());
    let mut opts = rumqttc::MqttOptions::new(client_id, host, port);
    opts.set_keep_alive(Duration::from_secs(10));
    let (client, mut eventloop) = rumqttc::AsyncClient::new(opts, 1024);
    Ok(tokio::spawn(async move {
        let driver = tokio::spawn(async move {
            loop {
                if eventloop.poll().await.is_err() {
                    // Broker away: keep trying, gently.
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        });
        let mut tick = tokio::time::interval(period);
        loop {
            tick.tick().await;
            let ts_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            let messages: Vec<(String, String)> = {
                let f = facility.lock().expect("facility lock");
                f.devices().flat_map(|d| d.mqtt(ts_ms)).collect()
            };
            for (topic, body) in messages {
                if client
                    .try_publish(topic, rumqttc::QoS::AtMostOnce, false, body)
                    .is_err()
                {
                    break;
                }
            }
            if driver.is_finished() {
                return;
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls() {
        assert_eq!(
            parse_broker("mqtt://127.0.0.1:1884").unwrap(),
            ("127.0.0.1".into(), 1884)
        );
        assert_eq!(
            parse_broker("localhost").unwrap(),
            ("localhost".into(), 1883)
        );
        assert!(parse_broker("mqtt://:x").is_err());
    }
}
