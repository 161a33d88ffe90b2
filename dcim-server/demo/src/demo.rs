//! `dcim-demo` (`cargo run -p dcim-demo`): the whole product in one process, for a first look
//! and for end-to-end tests.
//!
//! [`start`] brings up, in this order:
//! 1. the facility simulator's demo preset (`facility_sim::SimConfig::demo`): every device of the
//!    demo site model on its own loopback port (Modbus TCP, RTU-over-TCP row gateways, BACnet/IP);
//! 2. the server ([`dcim_server::start`]) with the demo site model, SQLite in the data directory and the
//!    embedded broker; the demo edge agent is its only `[[agents]]` entry, with a random
//!    per-run password and the exact device ids it polls as its ACL;
//! 3. a small device-side MQTT bus (a second, unauthenticated rumqttd on an ephemeral loopback
//!    port) for the simulated MQTT devices (cameras, network probes), as a plant network would
//!    have; it carries device payloads only, never the center's topics;
//! 4. the edge agent (`dcim_edge_agent::Agent`) with the configuration rendered by
//!    `facility_sim::demo::agent_config` for the ports of this run, logging in to the embedded
//!    broker with its credentials.
//!
//! The demo users (`admin`, `operator`, `viewer`) are created or have their password reset at
//! every start, so the credentials printed by [`run_cli`] always work.

use anyhow::Context;
use dcim_server::Server;
use dcim_server::config::{AgentConfig, Config, Role};
use dcim_server::storage::store::{SqliteStore, Store, UserRecord};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The demo site model (`dcim-server/site/sites/demo.toml`), built in so that the demo runs from
/// any directory.
pub const SITE_MODEL: &str = include_str!("../../site/sites/demo.toml");
/// The demo scenario of the facility simulator (feed loss, chiller trip, battery fire).
pub const SCENARIO: &str = include_str!("../../../tests/facility-sim/scenarios/demo.txt");
/// Site name of the demo site model and of its agent.
pub const SITE: &str = "demo";
/// Id (and MQTT user name) of the demo edge agent. The broker gate accepts a client id equal to
/// the user name or starting with `{user}-`; the agent connects as `{agent}-{site}`.
pub const AGENT: &str = "edge-demo";
/// Password of the demo users unless `DCIM_ADMIN_PASSWORD` is set.
pub const DEFAULT_PASSWORD: &str = "dcim-demo-2026";

/// What to start.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub http: SocketAddr,
    /// Where agents connect (the embedded broker's public port).
    pub broker: SocketAddr,
    /// Database, agent spool and the rendered agent configuration.
    pub data_dir: PathBuf,
    /// Password of the demo users.
    pub password: String,
    /// Run the simulator's demo scenario (feed loss, chiller trip, battery fire) in the
    /// background. Tests drive the simulator themselves and leave it off.
    pub scenario: bool,
    /// Cheap password hashing (argon2 with 64 KiB): for tests only.
    pub light_hashing: bool,
    /// Period of the simulated MQTT devices.
    pub mqtt_period: Duration,
    /// The server's `[dc09]` section (site-level events to the fire authority); off when
    /// `None`. `--dc09 LINK.toml` sets it with the demo's battery-room zones.
    pub dc09: Option<dcim_server::io::dc09::Dc09Config>,
    /// The server's `[status] down_after_ms` (default 5 min): tests shorten it.
    pub down_after: Option<Duration>,
    /// The server's `[store] reserve_kb` (default 8 MiB).
    pub reserve_kb: Option<u64>,
    /// The server's `[influx]` section (time series to an InfluxDB v2 compatible store, history
    /// from its query API); off when `None`. `--influx URL` sets it for VictoriaMetrics
    /// ([`influx_for`]).
    pub influx: Option<dcim_server::config::InfluxConfig>,
}

/// `[influx]` for a VictoriaMetrics at `url` (e.g. `http://127.0.0.1:8428`): lines written to
/// its `/api/v2/write`, the console's history read from its Prometheus API, other settings
/// their defaults.
pub fn influx_for(url: &str) -> anyhow::Result<dcim_server::config::InfluxConfig> {
    let url = url.trim_end_matches('/');
    anyhow::ensure!(
        url.starts_with("http://") || url.starts_with("https://"),
        "--influx `{url}`: expected http://HOST:PORT"
    );
    toml::from_str(&format!(
        "url = {url:?}\norg = \"dcim\"\nbucket = \"dcim\"\nquery_url = {url:?}\n"
    ))
    .context("the demo's [influx] section")
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            http: "127.0.0.1:8080".parse().expect("literal address"),
            broker: "127.0.0.1:1883".parse().expect("literal address"),
            data_dir: PathBuf::from(".data/demo"),
            password: DEFAULT_PASSWORD.into(),
            scenario: true,
            light_hashing: false,
            mqtt_period: Duration::from_secs(1),
            dc09: None,
            down_after: None,
            reserve_kb: None,
            influx: None,
        }
    }
}

impl DemoOptions {
    /// Ephemeral ports on 127.0.0.1, no scenario, light hashing: what tests use.
    pub fn for_tests(data_dir: impl Into<PathBuf>) -> DemoOptions {
        DemoOptions {
            http: "127.0.0.1:0".parse().expect("literal address"),
            broker: "127.0.0.1:0".parse().expect("literal address"),
            data_dir: data_dir.into(),
            scenario: false,
            light_hashing: true,
            mqtt_period: Duration::from_millis(500),
            ..DemoOptions::default()
        }
    }

    /// Applies `--http`, `--broker`, `--data`, `--dc09` and `--influx` (as parsed by `main`).
    pub fn from_args(opts: &[(String, String)]) -> anyhow::Result<DemoOptions> {
        let mut o = DemoOptions::default();
        if let Ok(p) = std::env::var("DCIM_ADMIN_PASSWORD")
            && !p.is_empty()
        {
            o.password = p;
        }
        for (k, v) in opts {
            match k.as_str() {
                "http" => {
                    o.http = v
                        .parse()
                        .with_context(|| format!("--http `{v}`: expected IP:PORT"))?
                }
                "broker" => {
                    o.broker = v
                        .parse()
                        .with_context(|| format!("--broker `{v}`: expected IP:PORT"))?
                }
                "data" => o.data_dir = PathBuf::from(v),
                "influx" => o.influx = Some(influx_for(v)?),
                "dc09" => {
                    let link = dc09_link::LinkConfig::from_file(std::path::Path::new(v))
                        .map_err(|e| anyhow::anyhow!("--dc09: {e}"))?;
                    let mut d = dcim_server::io::dc09::Dc09Config::with_link(link);
                    d.zone = dcim_server::io::dc09::Dc09Config::demo_zones(AGENT);
                    o.dc09 = Some(d);
                }
                other => anyhow::bail!("`demo` does not take --{other}"),
            }
        }
        dcim_server::state::auth::password::check_new(&o.password)
            .map_err(|e| anyhow::anyhow!("DCIM_ADMIN_PASSWORD: {e}"))?;
        Ok(o)
    }
}

/// A running demo.
pub struct Demo {
    pub server: Server,
    pub sim: facility_sim::SimHandle,
    /// The device-side MQTT bus of the simulated MQTT devices.
    pub device_bus: SocketAddr,
    /// The agent's configuration (credentials included).
    pub agent_config: dcim_edge_agent::config::Config,
    /// The rendered agent configuration file (without credentials), for reference.
    pub agent_config_file: PathBuf,
    /// Demo users: name, role, password.
    pub users: Vec<(String, Role, String)>,
    pub site_model: PathBuf,
    agent_stop: watch::Sender<bool>,
    agent_task: JoinHandle<dcim_edge_agent::Stopped>,
}

impl Demo {
    /// Stops the edge agent and starts it again with the same configuration; with
    /// `wipe_spool`, its spool directory is deleted in between (a disk replaced, a reinstall):
    /// the new spool draws a new epoch and its sequence numbers start again at 1.
    pub async fn restart_agent(&mut self, wipe_spool: bool) -> anyhow::Result<()> {
        let _ = self.agent_stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(10), &mut self.agent_task).await;
        self.agent_task.abort();
        if wipe_spool {
            let dir = &self.agent_config.spool.dir;
            std::fs::remove_dir_all(dir)
                .with_context(|| format!("wiping the agent spool {}", dir.display()))?;
        }
        let agent = dcim_edge_agent::Agent::start(self.agent_config.clone())
            .map_err(|e| anyhow::anyhow!("starting the edge agent again: {e}"))?;
        let (agent_stop, agent_stop_rx) = watch::channel(false);
        self.agent_stop = agent_stop;
        self.agent_task = tokio::spawn(agent.run(agent_stop_rx));
        Ok(())
    }
}

impl Demo {
    pub fn console_url(&self) -> String {
        format!("http://{}/console/", self.server.http_addr)
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.server.http_addr)
    }

    /// Stops the agent (flushing its spool), the simulator and the server.
    pub async fn shutdown(mut self) {
        let _ = self.agent_stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.agent_task).await;
        self.agent_task.abort();
        self.sim.shutdown();
        self.server.shutdown().await;
    }
}

fn free_loopback_port() -> anyhow::Result<SocketAddr> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?)
}

/// Starts an unauthenticated rumqttd on a free loopback port for the simulated field devices.
/// rumqttd cannot be stopped; its thread ends with the process.
async fn start_device_bus() -> anyhow::Result<SocketAddr> {
    let listen = free_loopback_port()?;
    let server = rumqttd::ServerSettings {
        name: "device-bus".into(),
        listen,
        tls: None,
        next_connection_delay_ms: 1,
        connections: rumqttd::ConnectionSettings {
            connection_timeout_ms: 10_000,
            max_payload_size: 1024 * 1024,
            max_inflight_count: 100,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        },
    };
    let config = rumqttd::Config {
        id: 0,
        router: rumqttd::RouterConfig {
            max_connections: 64,
            max_outgoing_packet_count: 200,
            max_segment_size: 16 * 1024 * 1024,
            max_segment_count: 2,
            ..Default::default()
        },
        v4: Some([("device-bus".to_string(), server)].into()),
        ..Default::default()
    };
    std::thread::Builder::new()
        .name("device-bus".into())
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(config);
            if let Err(e) = broker.start() {
                tracing::error!("demo device bus stopped: {e}");
            }
        })
        .context("starting the device bus thread")?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(listen).await.is_err() {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the demo device bus did not open {listen} within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(listen)
}

/// `[[device]]` entries for the simulator's BACnet/IP devices (chiller plant), polled from a
/// loopback socket (the soak test's agents poll them the same way).
pub fn bacnet_devices(endpoints: &[facility_sim::Endpoint]) -> String {
    let mut o = String::new();
    for e in endpoints {
        if let (facility_sim::Connection::Bacnet { addr, instance }, Some(profile)) =
            (e.connection, &e.profile_file)
        {
            o.push_str(&format!(
                "\n[[device]]\nid = {:?}\nprofile = {:?}\nbacnet = {{ address = \"{addr}\", instance = {instance}, bind = \"127.0.0.1:0\" }}\n",
                e.device,
                profile.display().to_string(),
            ));
        }
    }
    o
}

/// Creates the demo users, or resets their password when they exist.
async fn demo_users(
    config: &Config,
    password: &str,
) -> anyhow::Result<Vec<(String, Role, String)>> {
    let store = SqliteStore::open(&config.data_dir)
        .await
        .with_context(|| format!("opening the database in {}", config.data_dir.display()))?;
    let hash = dcim_server::state::auth::hash_password(
        password,
        config.auth.argon2_memory_kib,
        config.auth.argon2_iterations,
    )
    .map_err(|e| anyhow::anyhow!("hashing the demo password: {e}"))?;
    let mut users = Vec::new();
    for (name, role) in [
        ("admin", Role::Admin),
        ("operator", Role::Operator),
        ("viewer", Role::Viewer),
    ] {
        let created = store
            .create_user(&UserRecord {
                name: name.into(),
                role: role.as_str().into(),
                password_hash: hash.clone(),
                created_ms: dcim_clock::now_ms(),
                disabled: false,
            })
            .await?;
        if !created {
            store.set_password(name, &hash).await?;
        }
        users.push((name.to_string(), role, password.to_string()));
    }
    store.close().await;
    Ok(users)
}

/// Creates the data directory and writes the demo's site model into it; returns both paths
/// (the directory canonical).
fn prepare_data_dir(dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating the data directory {}", dir.display()))?;
    let data_dir =
        std::fs::canonicalize(dir).with_context(|| format!("resolving {}", dir.display()))?;

    let site_model = data_dir.join("site-demo.toml");
    std::fs::write(&site_model, SITE_MODEL)
        .with_context(|| format!("writing {}", site_model.display()))?;
    Ok((data_dir, site_model))
}

/// The server's configuration for the demo: the options' listeners, DC-09, time-series store
/// and timings, and the one agent with its devices.
fn server_config(
    opts: &DemoOptions,
    data_dir: &Path,
    site_model: &Path,
    agent_secret: &str,
    device_ids: Vec<String>,
) -> Config {
    let mut config = Config {
        data_dir: data_dir.to_path_buf(),
        site_model: Some(site_model.to_path_buf()),
        ..Config::default()
    };
    config.http.listen = opts.http;
    config.broker.listen = opts.broker;
    config.dc09 = opts.dc09.clone();
    if let Some(d) = opts.down_after {
        config.status.down_after_ms = d.as_millis() as i64;
    }
    if let Some(r) = opts.reserve_kb {
        config.store.reserve_kb = r;
    }
    config.influx = opts.influx.clone();
    if opts.light_hashing {
        config.auth.argon2_memory_kib = 64;
        config.auth.argon2_iterations = 1;
    }
    config.agents = vec![AgentConfig {
        id: AGENT.into(),
        site: SITE.into(),
        password: Some(agent_secret.to_owned()),
        password_env: None,
        devices: device_ids,
    }];
    config
}

/// Plays the demo scenario on the simulator (in the background).
fn run_scenario(sim: &mut facility_sim::SimHandle) -> anyhow::Result<()> {
    let steps = facility_sim::parse_scenario(SCENARIO)
        .map_err(|e| anyhow::anyhow!("demo scenario: {e}"))?;
    sim.run_scenario(steps, true);
    Ok(())
}

/// Starts the simulator, the server, the device bus and the edge agent (see the module docs).
pub async fn start(opts: DemoOptions) -> anyhow::Result<Demo> {
    let (data_dir, site_model) = prepare_data_dir(&opts.data_dir)?;

    let mut sim = facility_sim::start(facility_sim::SimConfig::demo(
        facility_sim::default_profiles_dir(),
    ))
    .await
    .map_err(|e| anyhow::anyhow!("starting the facility simulator: {e}"))?;

    let device_bus = start_device_bus().await?;

    // The agent's configuration for the ports of this run. The broker address is filled in
    // once the server has bound it (it may be ephemeral).
    let render = |broker: SocketAddr| {
        let mut ao = facility_sim::demo::AgentOptions::new(
            &format!("mqtt://{broker}"),
            data_dir.join("agent-spool"),
        );
        ao.site = SITE.into();
        ao.agent = AGENT.into();
        ao.devices_broker_url = format!("mqtt://{device_bus}");
        let mut text = facility_sim::demo::agent_config(&sim.endpoints, &ao);
        if !text.contains("bacnet = {") {
            text.push_str(&bacnet_devices(&sim.endpoints));
        }
        text
    };
    let parse = |text: &str| {
        dcim_edge_agent::config::parse("dcim-demo.toml", text, &data_dir)
            .map_err(|e| anyhow::anyhow!("the rendered agent configuration: {e}"))
    };
    // The device ids (the agent's ACL) do not depend on the broker's port; any valid one will do.
    let placeholder: SocketAddr = "127.0.0.1:1883".parse().expect("literal address");
    let device_ids: Vec<String> = parse(&render(placeholder))?
        .devices
        .iter()
        .map(|d| d.id.clone())
        .collect();

    let agent_secret = dcim_server::state::auth::new_token("");
    let config = server_config(&opts, &data_dir, &site_model, &agent_secret, device_ids);
    let users = demo_users(&config, &opts.password).await?;
    let server = dcim_server::start(config).await?;
    let broker = server
        .mqtt_addr
        .context("the embedded broker has no public address")?;

    let text = render(broker);
    let agent_config_file = data_dir.join("agent.toml");
    std::fs::write(&agent_config_file, &text)
        .with_context(|| format!("writing {}", agent_config_file.display()))?;
    let mut agent_config = parse(&text)?;
    for b in &mut agent_config.brokers {
        b.credentials = Some((AGENT.into(), agent_secret.clone()));
    }

    sim.publish_mqtt(&format!("mqtt://{device_bus}"), opts.mqtt_period)
        .map_err(|e| anyhow::anyhow!("simulated MQTT devices: {e}"))?;

    let agent = dcim_edge_agent::Agent::start(agent_config.clone())
        .map_err(|e| anyhow::anyhow!("starting the edge agent: {e}"))?;
    let (agent_stop, agent_stop_rx) = watch::channel(false);
    let agent_task = tokio::spawn(agent.run(agent_stop_rx));

    if opts.scenario {
        run_scenario(&mut sim)?;
    }

    Ok(Demo {
        server,
        sim,
        device_bus,
        agent_config,
        agent_config_file,
        users,
        site_model,
        agent_stop,
        agent_task,
    })
}

/// The scenario lines of the banner. The stages come from the fire logic's stage table, the
/// stage reached from the simulator's thresholds (the scenario heats past stage3's).
pub fn scenario_banner() -> String {
    let reached = fire_logic::Stage::Stage3.info();
    let pre = fire_logic::Stage::PreAlarm.info();
    let t = |s: &fire_logic::StageInfo| s.default_threshold.unwrap_or(0) / 10;
    format!(
        "\n  Scenario:  0:30 utility line A lost (2N -> N), 1:00 chiller 1 trips (buffer tank\n\
         \x20            ride-through, about an hour), 1:30-4:05 a battery string in battery\n\
         \x20            room 2 heats through the fire stages ({} {} °C ... {} \"{}\" {} °C),\n\
         \x20            5:30 line A back, 6:30 chiller 1 reset.\n",
        pre.name,
        t(pre),
        reached.key,
        reached.name,
        t(reached),
    )
}

/// The banner printed at start.
pub fn banner(demo: &Demo, opts: &DemoOptions) -> String {
    let mut s = String::new();
    let line = "=".repeat(78);
    s.push_str(&format!("{line}\n  DCIM demo is running\n\n"));
    s.push_str(&format!("  Console:   {}\n", demo.console_url()));
    s.push_str(&format!(
        "  API:       {}/api/  (OpenAPI at {}/api/openapi.json)\n",
        demo.base_url(),
        demo.base_url()
    ));
    s.push_str("  Log in as:\n");
    for (name, role, pw) in &demo.users {
        s.push_str(&format!(
            "             {name:<9} password {pw}   ({})\n",
            role.as_str()
        ));
    }
    if let Some(m) = demo.server.mqtt_addr {
        s.push_str(&format!(
            "  MQTT:      mqtt://{m} (embedded broker; agent `{AGENT}` of site `{SITE}`)\n"
        ));
    }
    let modbus = demo
        .sim
        .endpoints
        .iter()
        .filter(|e| e.modbus.is_some())
        .count();
    s.push_str(&format!(
        "  Simulator: {} devices ({} on Modbus, others on BACnet/IP or MQTT device bus mqtt://{})\n",
        demo.sim.endpoints.len(),
        modbus,
        demo.device_bus
    ));
    s.push_str(&format!(
        "  Agent:     {} devices polled; configuration {}\n",
        demo.agent_config.devices.len(),
        demo.agent_config_file.display()
    ));
    s.push_str(&format!(
        "  Data:      {} (delete it to start from scratch)\n",
        opts.data_dir.display()
    ));
    if opts.scenario {
        s.push_str(&scenario_banner());
    }
    s.push_str(&format!("\n  Stop with Ctrl-C.\n{line}\n"));
    s
}

/// `dcim-demo [--http ADDR] [--broker ADDR] [--data DIR] [--dc09 LINK.toml] [--influx URL]`.
pub async fn run_cli(
    opts: &[(String, String)],
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let opts = DemoOptions::from_args(opts)?;
    if !opts.http.ip().is_loopback() {
        tracing::warn!(
            "the demo HTTP port {} is not on loopback: set DCIM_ADMIN_PASSWORD, the demo users share one password",
            opts.http
        );
    }
    let demo = start(opts.clone()).await?;
    print!("{}", banner(&demo, &opts));
    shutdown.await;
    tracing::info!("shutting down the demo");
    demo.shutdown().await;
    Ok(())
}
