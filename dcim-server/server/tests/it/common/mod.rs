//! Helpers shared by the integration tests: a server on ephemeral ports in a temp dir, users of
//! every role with bearer tokens, an HTTP client and MQTT agent clients.
#![allow(dead_code, unused_imports)]

pub mod pg;

use dcim_server::config::{AgentConfig, Config, Role};
use dcim_server::store::UserRecord;
use dcim_server::{Server, auth};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use std::path::Path;
use std::time::Duration;

pub const PASSWORD: &str = "correct horse battery";

pub fn agent(id: &str, site: &str, devices: &[&str]) -> AgentConfig {
    AgentConfig {
        id: id.into(),
        site: site.into(),
        password: Some(format!("{id}-secret")),
        password_env: None,
        devices: devices.iter().map(|d| d.to_string()).collect(),
    }
}

pub fn config(dir: &Path) -> Config {
    let mut c = Config {
        data_dir: dir.to_owned(),
        ..Default::default()
    };
    c.http.listen = "127.0.0.1:0".parse().unwrap();
    c.broker.listen = "127.0.0.1:0".parse().unwrap();
    c.auth.argon2_memory_kib = 64;
    c.auth.argon2_iterations = 1;
    c.agents = vec![
        agent("a1", "s1", &["ups-1", "rack-*"]),
        agent("a2", "s1", &["crah-*"]),
    ];
    c
}

pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub fn http() -> reqwest::Client {
    install_crypto();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Creates a user of each role and returns bearer tokens `(role, token)`.
pub async fn users_with_tokens(server: &Server) -> Vec<(Role, String)> {
    let mut out = Vec::new();
    for role in [
        Role::Viewer,
        Role::Operator,
        Role::Admin,
        Role::FireAuthority,
    ] {
        let name = format!("u-{}", role.as_str());
        let store = &server.app.store;
        store
            .create_user(&UserRecord {
                name: name.clone(),
                role: role.as_str().into(),
                password_hash: auth::hash_password(PASSWORD, 64, 1).unwrap(),
                created_ms: 0,
                disabled: false,
            })
            .await
            .unwrap();
        let token = auth::new_token("dcim_");
        store
            .create_token(&auth::token_hash(&token), &name, "test", 0)
            .await
            .unwrap();
        out.push((role, token));
    }
    out
}

/// Sends a request and reads the whole answer as text (whatever the status: callers check it).
pub trait BodyText {
    fn body_text(self) -> impl std::future::Future<Output = String>;
}

impl BodyText for reqwest::RequestBuilder {
    async fn body_text(self) -> String {
        self.send().await.unwrap().text().await.unwrap()
    }
}

pub fn url(server: &Server, path: &str) -> String {
    format!("http://{}{}", server.http_addr, path)
}

pub async fn get_json(client: &reqwest::Client, url: &str, token: &str) -> serde_json::Value {
    let r = client.get(url).bearer_auth(token).send().await.unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    assert!(status.is_success(), "GET {url}: {status}: {text}");
    serde_json::from_str(&text).unwrap()
}

pub async fn metric(client: &reqwest::Client, server: &Server, token: &str, name: &str) -> f64 {
    metric_at(client, &url(server, ""), token, name).await
}

/// The value of the metric `name` at `base` (`http://host:port`) read with `token`; panics when
/// the metric is missing (a missing metric is no zero).
pub async fn metric_at(client: &reqwest::Client, base: &str, token: &str, name: &str) -> f64 {
    let text = client
        .get(format!("{base}/metrics"))
        .bearer_auth(token)
        .body_text()
        .await;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no metric {name} in {text}"))
        .parse()
        .unwrap()
}

/// Polls the metric `name` until it equals `want` or 10 s pass (then panics naming `what`).
pub async fn eventually_metric(
    what: &str,
    client: &reqwest::Client,
    server: &Server,
    token: &str,
    name: &str,
    want: f64,
) {
    eventually(what, || async {
        metric(client, server, token, name).await == want
    })
    .await
}

/// Polls `f` until it returns true or 10 s pass.
pub async fn eventually<F, Fut>(what: &str, f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    dcim_test_support::wait::wait_until(what, Duration::from_secs(10), f).await
}

/// An MQTT client for an agent; returns once the CONNACK arrived (or the refusal).
pub async fn mqtt_agent(
    host: &str,
    port: u16,
    id: &str,
    password: &str,
) -> (AsyncClient, EventLoop, Result<(), String>) {
    let mut o = MqttOptions::new(id, host, port);
    o.set_credentials(id, password);
    o.set_keep_alive(Duration::from_secs(5));
    o.set_max_packet_size(4 << 20, 4 << 20);
    let (c, mut el) = AsyncClient::new(o, 100);
    let r = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    })
    .await
    .unwrap_or_else(|_| Err("timeout".into()));
    (c, el, r)
}

/// Publishes at QoS 1 and drives the event loop until the PUBACK (Ok) or an error/close (Err).
pub async fn publish(
    c: &AsyncClient,
    el: &mut EventLoop,
    topic: &str,
    payload: Vec<u8>,
) -> Result<(), String> {
    c.publish(topic, QoS::AtLeastOnce, false, payload)
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    })
    .await
    .unwrap_or_else(|_| Err("timeout".into()))
}

pub fn telemetry(agent: &str, seq: u64, device: &str, value: f64) -> Vec<u8> {
    dcim_wire::encode(&dcim_wire::TelemetryBatch {
        v: dcim_wire::VERSION,
        agent: agent.into(),
        epoch: String::new(),
        seq,
        samples: vec![dcim_points::Sample {
            device: device.into(),
            point: "load".into(),
            role: dcim_points::Role::new("ups.load_pct").unwrap(),
            labels: Default::default(),
            value: Some(dcim_points::Value::Number(value)),
            unit: "%".into(),
            quality: dcim_points::Quality::Good,
            ts_ms: 1_700_000_000_000 + seq as i64,
        }],
    })
}

pub fn events(agent: &str, device: &str, seqs: std::ops::RangeInclusive<u64>) -> Vec<u8> {
    dcim_wire::encode(&dcim_wire::EventBatch {
        v: dcim_wire::VERSION,
        agent: agent.into(),
        epoch: String::new(),
        events: seqs
            .map(|seq| dcim_wire::Event {
                id: format!("{agent}:{seq}"),
                seq,
                ts_ms: 1_700_000_000_000 + seq as i64,
                device: device.into(),
                kind: "fire.stage".into(),
                severity: dcim_wire::Severity::Alarm,
                message: format!("stage event {seq}"),
                data: serde_json::json!({"stage": 1}),
                test: false,
            })
            .collect(),
    })
}

pub use dcim_test_support::free_port;

/// A server configuration file for the `dcim-server` binary: data under `dir/data`, agent `a1`
/// of site `s1` (password `a1-secret`) owning `rack-*`.
pub fn write_config(dir: &Path, http: u16, mqtt: u16) -> std::path::PathBuf {
    let path = dir.join("server.toml");
    std::fs::write(
        &path,
        format!(
            r#"
data_dir = "data"
[http]
listen = "127.0.0.1:{http}"
[broker]
listen = "127.0.0.1:{mqtt}"
[auth]
argon2_memory_kib = 64
argon2_iterations = 1
[[agents]]
id = "a1"
site = "s1"
password = "a1-secret"
devices = ["rack-*"]
"#
        ),
    )
    .unwrap();
    path
}

/// Starts the `dcim-server` binary with `config` (output discarded).
pub fn spawn(config: &Path) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_dcim-server"))
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// A VictoriaMetrics child process (the time-series store and Prometheus scraper the tests run
/// against), killed when dropped.
pub struct Vm(std::process::Child);

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `victoria-metrics` binary (Debian's package), if installed.
pub fn vm_bin() -> Option<std::path::PathBuf> {
    [
        "/usr/bin/victoria-metrics",
        "/usr/local/bin/victoria-metrics",
    ]
    .iter()
    .map(std::path::PathBuf::from)
    .find(|p| p.exists())
}

/// True when VictoriaMetrics is installed; without it the test is skipped, or fails under
/// `DCIM_REQUIRE_PEERS=1` (CI): a missing peer must not pass as a green test.
pub fn vm_or_skip(what: &str) -> bool {
    if vm_bin().is_some() {
        return true;
    }
    if std::env::var("DCIM_REQUIRE_PEERS").as_deref() == Ok("1") {
        panic!("required peer missing: victoria-metrics (apt-get install victoria-metrics)");
    }
    println!("skipped {what}: victoria-metrics is not installed");
    false
}

/// Starts VictoriaMetrics on `127.0.0.1:port` with its data in `dir`, nothing cached, samples
/// queryable at once, plus `extra` flags.
pub fn start_vm(dir: &Path, port: u16, extra: &[String]) -> Vm {
    Vm(
        std::process::Command::new(vm_bin().expect("victoria-metrics installed"))
            .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
            .arg(format!("-storageDataPath={}", dir.display()))
            .arg("-retentionPeriod=100y")
            .arg("-search.disableCache")
            .arg("-search.latencyOffset=0s")
            .args(extra)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("victoria-metrics starts"),
    )
}
