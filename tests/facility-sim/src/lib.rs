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
    /// Camera regions and the surface temperature of what they watch.
    pub regions: BTreeMap<String, f64>,
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
}

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub racks: usize,
    pub ups: usize,
    pub meters: usize,
    pub camera: bool,
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
            racks: 8,
            ups: 4,
            meters: 2,
            camera: true,
            profiles_dir: default_profiles_dir(),
            base_port: 0,
            step: Duration::from_millis(200),
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
}

impl Facility {
    /// Builds the devices of `cfg` (ids: `bms-r01..`, `ups-z1..`, `meter-1..`, `cam-1`).
    pub fn build(cfg: &SimConfig) -> Result<Facility, String> {
        let load = |name: &str| -> Result<Arc<Profile>, String> {
            load_file(&cfg.profiles_dir.join(format!("{name}.toml")))
                .map(Arc::new)
                .map_err(|e| e.to_string())
        };
        let mut devices: Vec<Box<dyn SimDevice>> = Vec::new();
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
        let mut f = Facility {
            devices,
            env: Env {
                feed_up: [true, true],
                ..Env::default()
            },
            overrides: HashMap::new(),
            last_t: 0.0,
        };
        f.step(0.0);
        Ok(f)
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
        self.env.regions = self.devices.iter().filter_map(|d| d.region()).collect();
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
            .find(|d| d.id() == id)
            .ok_or_else(|| format!("no device `{id}`"))
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
                self.env.chillers_tripped.insert(id.clone());
                format!("chiller {id} tripped (no BACnet chiller is simulated in this build)")
            }
            Command::ChillerRestore(id) => {
                self.env.chillers_tripped.remove(id);
                format!("chiller {id} restored")
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

/// Where a simulated device can be reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub device: String,
    pub kind: String,
    /// Profile file name (without `.toml`), empty for devices without one.
    pub profile: String,
    /// Modbus TCP address, for Modbus devices.
    pub modbus: Option<SocketAddr>,
    pub unit_id: u8,
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

/// Starts the simulator: binds one Modbus TCP server per Modbus device on 127.0.0.1 and steps the
/// simulation in the background. Must be called inside a tokio runtime.
pub async fn start(cfg: SimConfig) -> Result<SimHandle, String> {
    let facility = Facility::build(&cfg)?;
    let mut endpoints = Vec::new();
    let mut servers = Vec::new();
    let mut port = cfg.base_port;
    for d in facility.devices() {
        let mut ep = Endpoint {
            device: d.id().to_owned(),
            kind: d.kind().to_owned(),
            profile: String::new(),
            modbus: None,
            unit_id: 1,
        };
        if let Some((shared, profile)) = d.modbus() {
            let listener = TcpListener::bind(("127.0.0.1", port))
                .await
                .map_err(|e| format!("cannot listen on 127.0.0.1:{port}: {e}"))?;
            ep.modbus = Some(listener.local_addr().map_err(|e| e.to_string())?);
            ep.profile = profile.name.clone();
            servers.push(serve_tcp(listener, shared.clone()));
            if port != 0 {
                port += 1;
            }
        }
        endpoints.push(ep);
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
                facility.lock().expect("facility lock").step(t);
            }
        })
    };
    Ok(SimHandle {
        facility,
        endpoints,
        tasks: vec![stepper],
        servers,
    })
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

/// Publishes every camera of `facility` to `broker` every `period` (QoS 0: a camera streams).
pub fn publish_camera(
    facility: Arc<Mutex<Facility>>,
    broker: &str,
    period: Duration,
) -> Result<JoinHandle<()>, String> {
    let (host, port) = parse_broker(broker)?;
    let mut opts = rumqttc::MqttOptions::new("facility-sim-camera", host, port);
    opts.set_keep_alive(Duration::from_secs(10));
    let (client, mut eventloop) = rumqttc::AsyncClient::new(opts, 256);
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
                f.devices()
                    .filter_map(|d| d.camera())
                    .flat_map(|c| c.messages(ts_ms))
                    .collect()
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
