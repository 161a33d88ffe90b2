//! Test helpers: a private mosquitto instance and a recording subscriber.
#![allow(dead_code)]

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const MOSQUITTO: &str = "/usr/sbin/mosquitto";

/// `None` (with a printed reason) when mosquitto is missing and peers are not required.
pub fn mosquitto_available() -> bool {
    if Path::new(MOSQUITTO).exists() {
        return true;
    }
    dcim_test_support::peers::skip_or_fail(&format!(
        "{MOSQUITTO} is not installed (run tests/setup.sh)"
    ));
    false
}

#[allow(unused_imports)]
pub use dcim_test_support::free_port;

/// A mosquitto broker on 127.0.0.1 with persistence in its own directory, so that a persistent
/// subscriber session survives a restart.
pub struct Mosquitto {
    pub port: u16,
    dir: PathBuf,
    prelude: String,
    extra: String,
    child: Option<Child>,
}

impl Mosquitto {
    pub fn start(dir: &Path, port: u16) -> Mosquitto {
        Mosquitto::start_with(dir, port, "allow_anonymous true\n")
    }

    /// `extra` is appended to the listener section (TLS files, auth).
    pub fn start_with(dir: &Path, port: u16, extra: &str) -> Mosquitto {
        Mosquitto::start_full(dir, port, "", extra)
    }

    /// `prelude` goes before everything (e.g. `per_listener_settings true`).
    pub fn start_full(dir: &Path, port: u16, prelude: &str, extra: &str) -> Mosquitto {
        std::fs::create_dir_all(dir).unwrap();
        let mut m = Mosquitto {
            port,
            dir: dir.to_owned(),
            prelude: prelude.to_owned(),
            extra: extra.to_owned(),
            child: None,
        };
        m.restart();
        m
    }

    pub fn restart(&mut self) {
        assert!(self.child.is_none());
        let conf = self.dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "{}user root\npersistence true\npersistence_location {}/\nmax_queued_messages 0\nmax_inflight_messages 0\n\
                 log_dest file {}/mosquitto.log\nlog_type all\nlistener {} 127.0.0.1\n{}",
                self.prelude,
                self.dir.display(),
                self.dir.display(),
                self.port,
                self.extra
            ),
        )
        .unwrap();
        let child = Command::new(MOSQUITTO)
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "mosquitto did not listen on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM and wait: mosquitto saves its persistence file on the way out.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("mosquitto.log")).unwrap_or_default()
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Everything a subscriber received: (topic, payload), in arrival order.
pub type Received = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A persistent-session (clean_session = false) QoS 1 subscriber to `dcim/v1/#`; keeps
/// reconnecting until the returned handle is aborted.
pub async fn subscribe(port: u16, id: &str) -> (Received, tokio::task::JoinHandle<()>) {
    let got: Received = Arc::default();
    let sink = got.clone();
    let id = id.to_owned();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let mut o = MqttOptions::new(id, "127.0.0.1", port);
        o.set_clean_session(false)
            .set_keep_alive(Duration::from_secs(5))
            .set_max_packet_size(32 << 20, 1 << 20);
        let (client, mut el) = AsyncClient::new(o, 64);
        let mut ready = Some(ready_tx);
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    client
                        .subscribe("dcim/v1/#", QoS::AtLeastOnce)
                        .await
                        .unwrap();
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if let Some(tx) = ready.take() {
                        let _ = tx.send(());
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    sink.lock()
                        .unwrap()
                        .push((p.topic.clone(), p.payload.to_vec()));
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(5), ready_rx)
        .await
        .expect("subscriber did not get its SUBACK")
        .unwrap();
    (got, task)
}

/// Event sequence numbers and telemetry sequence numbers received, in arrival order.
pub fn sequences(got: &Received) -> (Vec<u64>, Vec<u64>) {
    let mut events = Vec::new();
    let mut telemetry = Vec::new();
    for (topic, payload) in got.lock().unwrap().iter() {
        if topic.ends_with("/events") {
            let b: dcim_wire::EventBatch = dcim_wire::decode(payload).expect("valid EventBatch");
            events.extend(b.events.iter().map(|e| e.seq));
        } else if topic.ends_with("/telemetry") {
            let b: dcim_wire::TelemetryBatch =
                dcim_wire::decode(payload).expect("valid TelemetryBatch");
            telemetry.push(b.seq);
        }
    }
    (events, telemetry)
}

/// The telemetry samples received, in arrival order.
pub fn samples(got: &Received) -> Vec<dcim_points::Sample> {
    got.lock()
        .unwrap()
        .iter()
        .filter(|(t, _)| t.ends_with("/telemetry"))
        .flat_map(|(_, p)| {
            dcim_wire::decode::<dcim_wire::TelemetryBatch>(p)
                .expect("valid TelemetryBatch")
                .samples
        })
        .collect()
}

/// The events received, in arrival order.
pub fn events(got: &Received) -> Vec<dcim_wire::Event> {
    got.lock()
        .unwrap()
        .iter()
        .filter(|(t, _)| t.ends_with("/events"))
        .flat_map(|(_, p)| {
            dcim_wire::decode::<dcim_wire::EventBatch>(p)
                .expect("valid EventBatch")
                .events
        })
        .collect()
}

/// The head of a test agent's configuration: site `s`, agent `agent`, log level `warn`, a spool
/// in `spool`, one broker `center` on 127.0.0.1:`broker_port` retried after 50 ms, and with
/// `batched` batches of at most 100 samples or 20 ms (so a sample is not held back for long).
/// The device and other sections follow.
pub fn config_head(agent: &str, broker_port: u16, batched: bool) -> String {
    let batch = if batched {
        "[batch]\nmax_samples = 100\nmax_delay_ms = 20\n"
    } else {
        ""
    };
    format!(
        "site = \"s\"\nagent = \"{agent}\"\nlog_level = \"warn\"\n[spool]\ndir = \"spool\"\n{batch}\
         [[broker]]\nname = \"center\"\nurl = \"mqtt://127.0.0.1:{broker_port}\"\n\
         backoff_initial_ms = 50\n"
    )
}

/// An agent running in a task until [`RunningAgent::stop`].
pub struct RunningAgent {
    /// The agent's shared state (spool, links), for looking inside while it runs.
    pub shared: Arc<dcim_edge_agent::ingest::Shared>,
    stop: tokio::sync::watch::Sender<bool>,
    run: tokio::task::JoinHandle<dcim_edge_agent::Stopped>,
}

impl RunningAgent {
    /// Parses `text` as `agent.toml` in `dir`, starts the agent and runs it in a task.
    pub fn start(text: &str, dir: &Path) -> RunningAgent {
        let cfg = dcim_edge_agent::config::parse("agent.toml", text, dir).unwrap();
        RunningAgent::start_config(cfg)
    }

    /// Starts the agent of an already parsed configuration and runs it in a task.
    pub fn start_config(cfg: dcim_edge_agent::config::Config) -> RunningAgent {
        let agent = dcim_edge_agent::Agent::start(cfg).unwrap();
        let shared = agent.shared().clone();
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let run = tokio::spawn(agent.run(stop_rx));
        RunningAgent { shared, stop, run }
    }

    /// Asks the agent to stop and waits until it has (a panic in the agent fails the test).
    pub async fn stop(self) -> dcim_edge_agent::Stopped {
        self.stop.send(true).unwrap();
        self.run.await.unwrap()
    }

    /// [`RunningAgent::stop`], failing the test when the agent takes longer than `limit` (its
    /// drain timeout) to stop.
    pub async fn stop_within(self, limit: Duration) -> dcim_edge_agent::Stopped {
        self.stop.send(true).unwrap();
        tokio::time::timeout(limit, self.run)
            .await
            .expect("the agent stops within its drain timeout")
            .unwrap()
    }
}

/// The retained/last `AgentState` messages received.
pub fn states(got: &Received) -> Vec<dcim_wire::AgentState> {
    got.lock()
        .unwrap()
        .iter()
        .filter(|(t, _)| t.ends_with("/state"))
        .map(|(_, p)| dcim_wire::decode(p).expect("valid AgentState"))
        .collect()
}

#[allow(unused_imports)]
pub use dcim_test_support::wait::poll_until as wait_until;

/// A rack I/O module profile (Modbus): rack temperatures `t1`/`t2` in holding registers 0 and
/// 1 (0.1 °C), followed by `extra_points` (`[[point]]` tables).
pub fn rack_io_profile(extra_points: &str) -> String {
    format!("{RACK_IO_TEMPS}{extra_points}")
}

const RACK_IO_TEMPS: &str = r#"[profile]
name = "rack-io-test"
protocol = "modbus"
[comm]
timeout_ms = 300
retries = 0
comm_lost_after_ms = 2000
[poll]
fast_ms = 100
[modbus]
address_base = 0
[[point]]
id = "t1"
role = "rack.temp"
labels = { sensor = "1" }
unit = "degC"
table = "holding"
register = 0
type = "i16"
scale = 0.1
poll = "fast"
[[point]]
id = "t2"
role = "rack.temp"
labels = { sensor = "2" }
unit = "degC"
table = "holding"
register = 1
type = "i16"
scale = 0.1
poll = "fast"
"#;

/// The agent binary on `config`, its stderr appended to `log` (tests read what it logged, and a
/// restarted agent appends to the same log).
pub fn spawn_agent(config: &Path, log: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(env!("CARGO_BIN_EXE_dcim-edge-agent"))
        .arg("--config")
        .arg(config)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start dcim-edge-agent")
}

/// Sends `sig` (`-TERM`, `-KILL`) to `child` with kill(1).
pub fn signal(child: &Child, sig: &str) {
    Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
}

/// Writes `dir/link.toml`: account 1234, one TCP path `main` to the receiver on `port`, no test
/// reports, no path supervision; with `codes`, the example event-code table of `dcim-dc09`.
pub fn write_link_toml(dir: &Path, port: u16, codes: bool) {
    let codes = if codes {
        let file = dcim_test_support::repo_root().join("edge-agent/dc09/codes.example.toml");
        format!("codes_file = \"{}\"\n", file.display())
    } else {
        String::new()
    };
    std::fs::write(
        dir.join("link.toml"),
        format!(
            "account = \"1234\"\nack_timeout_ms = 1000\nattempts_per_path = 3\n\
             test_interval_ms = 0\n{codes}[[path]]\nname = \"main\"\n\
             addr = \"127.0.0.1:{port}\"\ntransport = \"tcp\"\nsupervision_ms = 0\n"
        ),
    )
    .unwrap();
}

/// A simulated rack I/O module on an ephemeral Modbus/TCP port: its profile
/// ([`rack_io_profile`] of `extra_points`, also written to `dir/rio.toml` for the agent), its
/// registers (both temperatures at a normal 25 °C, then `extra_values`), its address and its
/// server task.
pub async fn serve_rack_io(
    dir: &Path,
    extra_points: &str,
    extra_values: &[(&str, facility_sim::SimValue)],
) -> (
    dcim_profiles::Profile,
    Arc<facility_sim::ModbusShared>,
    std::net::SocketAddr,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let rio_profile = rack_io_profile(extra_points);
    std::fs::write(dir.join("rio.toml"), &rio_profile).unwrap();
    let profile = dcim_profiles::load_str("rio.toml", &rio_profile).unwrap();
    let rio = Arc::new(facility_sim::ModbusShared::default());
    let normal = facility_sim::SimValue::Number(25.0);
    rio.write_values(&profile, &[("t1", normal.clone()), ("t2", normal)]);
    rio.write_values(&profile, extra_values);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = facility_sim::serve_tcp(listener, rio.clone());
    (profile, rio, addr, server)
}

/// A `[[broker]]` section `name` on 127.0.0.1:`port`, retried after 50 ms and at most every
/// 200 ms, followed by the `extra` lines (e.g. `keep_alive_s = 5\n`).
pub fn broker_toml(name: &str, port: u16, extra: &str) -> String {
    format!(
        "[[broker]]\nname = \"{name}\"\nurl = \"mqtt://127.0.0.1:{port}\"\n\
         backoff_initial_ms = 50\nbackoff_max_ms = 200\n{extra}"
    )
}

/// The synthetic device `gen`: `points` points produced every `period_ms`, with an event every
/// `event_every` rounds.
pub fn synthetic_toml(points: u32, period_ms: u32, event_every: u32) -> String {
    format!(
        "[[device]]\nid = \"gen\"\n\
         synthetic = {{ points = {points}, period_ms = {period_ms}, event_every = {event_every} }}\n"
    )
}

/// A bench's `main`: runs `bench` on a multi-threaded runtime, or says it is skipped when
/// mosquitto is not installed.
pub fn bench_with_mosquitto<F: std::future::Future<Output = ()>>(bench: impl FnOnce() -> F) {
    if !Path::new(MOSQUITTO).exists() {
        println!("skipped: {MOSQUITTO} is not installed");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(bench());
}

/// The head of a fire-forwarding agent's configuration: site `s`, agent `fire-agent`, log level
/// `warn`, a spool in `spool`, the broker `center` on 127.0.0.1:`broker_port` and DC-09 through
/// `link.toml` ([`write_link_toml`]).
pub fn dc09_agent_head(broker_port: u16) -> String {
    format!(
        "\nsite = \"s\"\nagent = \"fire-agent\"\nlog_level = \"warn\"\n[spool]\ndir = \"spool\"\n\
         [[broker]]\nname = \"center\"\nurl = \"mqtt://127.0.0.1:{broker_port}\"\n\
         [dc09]\nlink_config = \"link.toml\"\n"
    )
}

/// The rack I/O module at `addr` ([`serve_rack_io`]) as device `rio`, and the rack `rack-07`
/// (number 7, zone `room-1`, DC-09 zone `dc09_zone` when given) measured by its two
/// temperatures, declared independent: the tests drive them to corroborate each other. Further
/// `[[rack]]` keys may follow.
pub fn rack_07_toml(addr: std::net::SocketAddr, dc09_zone: Option<u8>) -> String {
    let dc09_zone = dc09_zone.map_or(String::new(), |z| format!("dc09_zone = {z}\n"));
    format!(
        "[[device]]\nid = \"rio\"\nprofile = \"rio.toml\"\n\
         modbus = {{ tcp = \"{addr}\", unit = 1 }}\n\
         [[rack]]\nid = \"rack-07\"\nnumber = 7\nzone = \"room-1\"\n{dc09_zone}\
         temp1 = \"rio/t1\"\ntemp2 = \"rio/t2\"\n\
         common_cause = {{ temp1 = 1, temp2 = 2 }}\n"
    )
}

/// The agent `dual` of site `s` (log level `warn`): a spool in `spool` of `spool_mb` MiB in
/// 64 KiB segments, batches of at most `max_samples` samples or 20 ms, then `sections` (its
/// brokers and devices).
pub fn dual_agent_toml(spool_mb: u32, max_samples: u32, sections: &str) -> String {
    format!(
        "\nsite = \"s\"\nagent = \"dual\"\nlog_level = \"warn\"\n\
         [spool]\ndir = \"spool\"\nmax_mb = {spool_mb}\nsegment_kb = 64\n\
         [batch]\nmax_samples = {max_samples}\nmax_delay_ms = 20\n{sections}"
    )
}

/// The brokers of two sites (`a` and `b` under a directory) on free ports, each with a
/// recording subscriber ([`subscribe`]).
pub struct TwoSites {
    pub port_a: u16,
    pub port_b: u16,
    pub a: Mosquitto,
    pub b: Mosquitto,
    pub got_a: Received,
    pub sub_a: tokio::task::JoinHandle<()>,
    pub got_b: Received,
    pub sub_b: tokio::task::JoinHandle<()>,
}

impl TwoSites {
    /// [`TwoSites::start`] when mosquitto is installed; `None` (the test is skipped) otherwise.
    pub async fn start_if_available(dir: &Path) -> Option<TwoSites> {
        if !mosquitto_available() {
            return None;
        }
        Some(TwoSites::start(dir).await)
    }

    pub async fn start(dir: &Path) -> TwoSites {
        let (port_a, port_b) = (free_port(), free_port());
        let a = Mosquitto::start(&dir.join("a"), port_a);
        let b = Mosquitto::start(&dir.join("b"), port_b);
        let (got_a, sub_a) = subscribe(port_a, "site-a-sub").await;
        let (got_b, sub_b) = subscribe(port_b, "site-b-sub").await;
        TwoSites {
            port_a,
            port_b,
            a,
            b,
            got_a,
            sub_a,
            got_b,
            sub_b,
        }
    }
}
