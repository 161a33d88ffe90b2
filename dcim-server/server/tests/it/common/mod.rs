//! Helpers shared by the integration tests, so that each module shows only what it checks:
//! - a server on ephemeral ports in a temp dir ([`config`], [`site_config`], [`notify_config`]),
//!   started with users of every role and an HTTP client ([`started`], [`started_with_users`]);
//! - agents over MQTT ([`Agent`]: connect, send, subscribe, receive) and what they publish
//!   ([`batch`], [`batch_of`], [`sample_now`], [`sample_at`], [`telemetry`], [`on_battery`],
//!   [`events`]);
//! - the API ([`get_json`], [`post_json`], [`login_response`], [`audit_actions`]) and metrics
//!   ([`metric`], [`eventually_metric`], [`assert_metrics`]), never reading a missing metric
//!   as zero;
//! - the `dcim-server` binary and its CLI ([`write_config`], [`spawn`], [`cli_admin_token`]);
//! - VictoriaMetrics as a peer ([`vm_test`], [`start_vm`], [`influx`], [`vm_export`]); a
//!   missing peer skips, or fails under `DCIM_REQUIRE_PEERS=1` ([`skip_or_fail`]).
#![allow(dead_code, unused_imports)]

pub mod pg;

use dcim_server::config::{AgentConfig, Config, Role};
use dcim_server::storage::store::UserRecord;
use dcim_server::{Server, state::auth};
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
    connect_with(o).await
}

/// An MQTT client with options `o`; returns once the CONNACK arrived (or the refusal).
pub async fn connect_with(o: MqttOptions) -> (AsyncClient, EventLoop, Result<(), String>) {
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

/// Agent `agent`'s batch `seq`: the load of UPS `device` is `value` %, at 2023-11-14 plus
/// `seq` ms.
pub fn telemetry(agent: &str, seq: u64, device: &str, value: f64) -> Vec<u8> {
    batch_of(
        agent,
        seq,
        vec![load_sample(device, value, 1_700_000_000_000 + seq as i64)],
    )
}

/// A good reading of a UPS load (`load`, `ups.load_pct`, in %) taken at `ts_ms`.
pub fn load_sample(device: &str, value: f64, ts_ms: i64) -> dcim_points::Sample {
    let mut s = sample_at(
        device,
        "ups.load_pct",
        dcim_points::Value::Number(value),
        ts_ms,
    );
    s.point = "load".into();
    s.unit = "%".into();
    s
}

/// A telemetry batch of `agent` numbered `seq`.
pub fn batch_of(agent: &str, seq: u64, samples: Vec<dcim_points::Sample>) -> Vec<u8> {
    dcim_wire::encode(&dcim_wire::TelemetryBatch {
        v: dcim_wire::VERSION,
        agent: agent.into(),
        epoch: String::new(),
        seq,
        samples,
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

/// The bearer tokens of the users [`started`] creates, one per role.
pub struct Tokens {
    pub viewer: String,
    pub operator: String,
    pub admin: String,
    pub authority: String,
}

/// Starts the server in-process with `cfg`, creates a user of every role and returns the server,
/// an HTTP client and the users' tokens.
pub async fn started(cfg: Config) -> (Server, reqwest::Client, Tokens) {
    let (server, client, t) = started_with_users(cfg).await;
    let tokens = Tokens {
        viewer: t[0].1.clone(),
        operator: t[1].1.clone(),
        admin: t[2].1.clone(),
        authority: t[3].1.clone(),
    };
    (server, client, tokens)
}

/// [`started`] with the tokens as [`users_with_tokens`] lists them, `(role, token)`.
pub async fn started_with_users(cfg: Config) -> (Server, reqwest::Client, Vec<(Role, String)>) {
    let server = dcim_server::start(cfg).await.unwrap();
    let tokens = users_with_tokens(&server).await;
    (server, http(), tokens)
}

/// An agent connected to a server's embedded broker over MQTT (the client and its event loop).
pub struct Agent {
    pub c: AsyncClient,
    pub el: EventLoop,
}

impl Agent {
    /// Connects as agent `id` with its configured password (`{id}-secret`); panics when refused.
    pub async fn connect(server: &Server, id: &str) -> Agent {
        let mq = server.mqtt_addr.unwrap();
        Self::connect_to(&mq.ip().to_string(), mq.port(), id).await
    }

    /// Connects as agent `id` (password `{id}-secret`) to the broker at `host:port`.
    pub async fn connect_to(host: &str, port: u16, id: &str) -> Agent {
        let (c, el, r) = mqtt_agent(host, port, id, &format!("{id}-secret")).await;
        r.unwrap();
        Agent { c, el }
    }

    /// Publishes at QoS 1 and waits for the PUBACK; panics when the broker refuses or closes.
    pub async fn send(&mut self, topic: &str, payload: Vec<u8>) {
        publish(&self.c, &mut self.el, topic, payload)
            .await
            .unwrap_or_else(|e| panic!("publish on {topic}: {e}"));
    }

    /// Publishes at QoS 1: Ok on the PUBACK, Err when the broker closes the connection.
    pub async fn try_send(&mut self, topic: &str, payload: Vec<u8>) -> Result<(), String> {
        publish(&self.c, &mut self.el, topic, payload).await
    }

    /// Subscribes to `filter`: true once the SUBACK arrives, false when the broker closes the
    /// connection instead (5 s at most).
    pub async fn subscribe(&mut self, filter: &str) -> bool {
        self.c.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match self.el.poll().await {
                    Ok(Event::Incoming(Packet::SubAck(_))) => return true,
                    Ok(_) => {}
                    Err(_) => return false,
                }
            }
        })
        .await
        .expect("neither SUBACK nor close within 5 s")
    }

    /// The next message delivered to this agent (5 s at most).
    pub async fn next_publish(&mut self) -> rumqttc::Publish {
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                if let Ok(Event::Incoming(Packet::Publish(p))) = self.el.poll().await {
                    return p;
                }
            }
        })
        .await
        .expect("no message within 5 s")
    }
}

/// The audit record's actions, oldest or newest first as the API lists them.
pub async fn audit_actions(client: &reqwest::Client, server: &Server, token: &str) -> Vec<String> {
    get_json(client, &url(server, "/api/audit"), token).await["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap().to_string())
        .collect()
}

/// The time-series writer's configuration for a VictoriaMetrics on `127.0.0.1:vm_port`: small
/// batches flushed every 100 ms, history read back from the same store.
pub fn influx(vm_port: u16) -> dcim_server::config::InfluxConfig {
    dcim_server::config::InfluxConfig {
        url: format!("http://127.0.0.1:{vm_port}"),
        org: "dcim".into(),
        bucket: "dcim".into(),
        token: None,
        token_env: None,
        batch_size: 100,
        flush_interval_ms: 100,
        queue_capacity: 1000,
        measurement: "dcim".into(),
        buffer_dir: None,
        buffer_max_mb: 16,
        query_url: Some(format!("http://127.0.0.1:{vm_port}")),
        query_timeout_ms: 3000,
    }
}

/// Every raw sample VictoriaMetrics on `127.0.0.1:vm_port` holds of the measurement `dcim`
/// (its export API, one JSON series a line), after asking it to flush what it buffered.
pub async fn vm_export(client: &reqwest::Client, vm_port: u16) -> Vec<serde_json::Value> {
    let _ = client
        .get(format!("http://127.0.0.1:{vm_port}/internal/force_flush"))
        .send()
        .await;
    let export = format!(
        "http://127.0.0.1:{vm_port}/api/v1/export?match[]={}&start=0",
        "%7B__name__%3D%22dcim_value%22%7D"
    );
    let text = client.get(&export).body_text().await;
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A new token for the existing user `user` (e.g. `u-admin`) of a restarted server: the users
/// are in the database, their old tokens with the test that made them.
pub async fn token_again(server: &Server, user: &str) -> String {
    let token = auth::new_token("dcim_");
    server
        .app
        .store
        .create_token(&auth::token_hash(&token), user, "again", 0)
        .await
        .unwrap();
    token
}

pub use dcim_test_support::peers::{is_root, skip_or_fail};

/// A good sample of `role` at `device` taken now (point named after the role).
pub fn sample_now(device: &str, role: &str, v: dcim_points::Value) -> dcim_points::Sample {
    sample_at(device, role, v, dcim_clock::now_ms())
}

/// A good sample of `role` at `device` taken at `ts_ms` (point named after the role).
pub fn sample_at(
    device: &str,
    role: &str,
    v: dcim_points::Value,
    ts_ms: i64,
) -> dcim_points::Sample {
    dcim_points::Sample {
        device: device.into(),
        point: role.replace('.', "_"),
        role: dcim_points::Role::new(role).unwrap(),
        labels: Default::default(),
        value: Some(v),
        unit: String::new(),
        quality: dcim_points::Quality::Good,
        ts_ms,
    }
}

/// A telemetry batch of agent `a1` numbered `seq`.
pub fn batch(seq: u64, samples: impl Into<Vec<dcim_points::Sample>>) -> Vec<u8> {
    batch_of("a1", seq, samples.into())
}

/// Agent `a1`'s batch `seq`: the UPS `ups` is on battery now (point `on_battery`).
pub fn on_battery(seq: u64, ups: &str) -> Vec<u8> {
    let mut s = sample_now(ups, "ups.on_battery", dcim_points::Value::Bool(true));
    s.point = "on_battery".into();
    batch(seq, vec![s])
}

/// The test configuration with notifications on (ticking every 200 ms) and `extra` (TOML lines
/// of the `[notify]` section and its channels) parsed as the configuration file would be.
pub fn notify_config(dir: &Path, extra: &str) -> Config {
    let text = format!("[notify]\nenabled = true\ntick_ms = 200\n{extra}");
    let parsed = Config::parse(&text, Path::new("test.toml")).unwrap();
    let mut c = config(dir);
    c.notify = parsed.notify;
    c
}

/// Asserts each metric `(name, want)` of the server's `/metrics`, naming the one that differs.
pub async fn assert_metrics(
    client: &reqwest::Client,
    server: &Server,
    token: &str,
    want: &[(&str, f64)],
) {
    for (name, want) in want {
        assert_eq!(metric(client, server, token, name).await, *want, "{name}");
    }
}

/// Runs the command (the `dcim-server` CLI) and returns its standard output; panics with its
/// standard error when it fails.
pub fn cli_ok(cmd: &mut std::process::Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Creates the admin `ops` (password [`PASSWORD`]) with the server binary's CLI on the
/// configuration `cfg`, and returns a new API token of it (labelled `label`).
pub fn cli_admin_token(bin: &Path, cfg: &Path, label: &str) -> String {
    use std::process::Command;
    cli_ok(
        Command::new(bin)
            .args(["user", "add", "--name", "ops", "--role", "admin"])
            .arg("--config")
            .arg(cfg)
            .env("DCIM_NEW_PASSWORD", PASSWORD),
    );
    cli_ok(
        Command::new(bin)
            .args(["user", "token", "--name", "ops", "--label", label])
            .arg("--config")
            .arg(cfg),
    )
    .trim()
    .to_string()
}

/// POSTs the JSON `body` with `token`: the status and the answer's JSON (`Null` when none).
pub async fn post_json(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    body: serde_json::Value,
) -> (reqwest::StatusCode, serde_json::Value) {
    let r = client
        .post(url)
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let st = r.status();
    let text = r.text().await.unwrap();
    (
        st,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

/// POSTs a login of `user` with password `pw` to `base`.
pub async fn login_response(
    client: &reqwest::Client,
    base: &str,
    user: &str,
    pw: &str,
) -> reqwest::Response {
    client
        .post(format!("{base}/api/login"))
        .header("content-type", "application/json")
        .body(serde_json::json!({"username": user, "password": pw}).to_string())
        .send()
        .await
        .unwrap()
}

/// The demo site model shipped with the site crate.
pub fn demo_site() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../site/sites/demo.toml")
}

/// The test configuration with the demo site model and one agent `a1` of site `demo` owning
/// every device.
pub fn site_config(dir: &Path) -> Config {
    let mut c = config(dir);
    c.site_model = Some(demo_site());
    c.agents = vec![agent("a1", "demo", &["*"])];
    c
}

/// The `action` of each record of an `/api/audit` answer.
pub fn audit_action_names(audit: &serde_json::Value) -> Vec<&str> {
    audit["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect()
}

/// For a test against VictoriaMetrics: a temp dir, a free port for VictoriaMetrics and the
/// test configuration with its data under `dir/data`; `None` when VictoriaMetrics is not
/// installed (see [`vm_or_skip`]: skipped, or failed under `DCIM_REQUIRE_PEERS=1`).
pub fn vm_test(what: &str) -> Option<(tempfile::TempDir, u16, Config)> {
    if !vm_or_skip(what) {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&dir.path().join("data"));
    Some((dir, free_port(), cfg))
}

/// [`vm_test`] with VictoriaMetrics running on its port (data under `dir/vm`).
pub fn vm_running(what: &str) -> Option<(tempfile::TempDir, u16, Config, Vm)> {
    let (dir, vm_port, cfg) = vm_test(what)?;
    let vm = start_vm(&dir.path().join("vm"), vm_port, &[]);
    Some((dir, vm_port, cfg, vm))
}
