//! End-to-end test harness: the demo facility in one process (facility simulator -> edge agent
//! -> embedded broker -> server, see `dcim_demo::demo`) on ephemeral loopback ports with a
//! temporary data directory, and a small HTTP client for the server's API.
//!
//! Everything a test asserts is read through the server's REST API with a bearer token, the way
//! an operator's tools would see it; faults are injected with the simulator's commands
//! (`feed-loss A`, `heat bms-z2 1200`, ...).
//!
//! # The tests
//!
//! `Harness` wraps the one-process demo (temp dir, ephemeral ports, an admin bearer token) with API
//! helpers and an SSE client; tests inject faults with simulator commands and assert only through
//! the REST API and the live stream: `smoke`, `feed_loss` (2N to N, one grade-2 alarm and the
//! webhook notification), `chiller_trip` (ride-through minutes), `battery_fire` (stage 3, grade-1
//! alarm and incident), `fire_authority` (the agent's DC-09 alarm ACKed by pysiaalarm),
//! `snmp_network` (snmpsim switch, linkDown trap, network 2N to N), `silent_subsystem` (unverified
//! within seconds, Down after `down_after`), `stream_truth` (a sample from 2100 refused, a wiped
//! spool accepted as a new stream), `disk_full` (needs root for a tmpfs), `dashboards` (every
//! PromQL query against VictoriaMetrics), and `soak`: a 2,000-rack site over three agents through a
//! cuttable proxy to mosquitto, with a broker restart, a server SIGKILL and an uplink cut while a
//! feed is lost and a rack heats (events exactly once and in order, telemetry delivered or counted
//! as thinned, alarms equal to the faults). `multisite` (ignored by plain `cargo test`, run by
//! `tests/run.sh` and `tests/multisite/run.sh`): three etcd members, PostgreSQL on two sites under
//! Patroni, two server replicas, a 15 s link cut and then the SIGKILL of every process of the
//! leader's site (RPO 0, RTO printed, every notification and DC-09 message exactly once).

use anyhow::Context;
use dcim_demo::demo::{Demo, DemoOptions};
use serde_json::Value;
use std::future::Future;
use std::time::{Duration, Instant};

pub use dcim_demo::demo;

/// A running demo plus an authenticated API client.
pub struct Harness {
    pub demo: Demo,
    api: Api,
    _dir: tempfile::TempDir,
}

/// A client of one server's REST API with a bearer token.
#[derive(Clone)]
pub struct Api {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Api {
    /// The API at `base` (`http://127.0.0.1:8080`); every request times out after `timeout`.
    pub fn new(base: impl Into<String>, token: &str, timeout: Duration) -> anyhow::Result<Api> {
        Ok(Api {
            base: base.into(),
            token: token.into(),
            http: reqwest::Client::builder()
                .timeout(timeout)
                .no_proxy()
                .build()?,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// GET with the bearer token; the body as JSON (errors on a non-2xx status).
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let (status, text) = self.get_text(path).await?;
        anyhow::ensure!((200..300).contains(&status), "GET {path}: {status}: {text}");
        serde_json::from_str(&text).with_context(|| format!("GET {path}: body is not JSON"))
    }

    /// GET with the bearer token; the status and the body as text.
    pub async fn get_text(&self, path: &str) -> anyhow::Result<(u16, String)> {
        let r = self
            .http
            .get(self.url(path))
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        Ok((r.status().as_u16(), r.text().await?))
    }

    /// POST a JSON body with the bearer token: the status and the body as JSON (or as a JSON
    /// string when it is not JSON).
    pub async fn post(&self, path: &str, body: Value) -> anyhow::Result<(u16, Value)> {
        let r = self
            .http
            .post(self.url(path))
            .bearer_auth(&self.token)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        let status = r.status().as_u16();
        let text = r.text().await?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    /// An alarm by id from `/api/alarms?all=true` (active or not).
    pub async fn alarm(&self, id: &str) -> anyhow::Result<Option<Value>> {
        let r = self.get("/api/alarms?all=true").await?;
        Ok(r["alarms"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["id"] == id))
            .cloned())
    }
}

/// Creates an admin API token (label `e2e`) in the store of `server`.
pub async fn admin_token(server: &dcim_server::Server) -> anyhow::Result<String> {
    let token = dcim_server::state::auth::new_token("dcim_");
    server
        .app
        .store
        .create_token(
            &dcim_server::state::auth::token_hash(&token),
            "admin",
            "e2e",
            dcim_clock::now_ms(),
        )
        .await?;
    Ok(token)
}

impl Harness {
    /// Starts the demo (no scenario) and creates an admin API token.
    pub async fn start() -> anyhow::Result<Harness> {
        Self::start_with(|_| {}).await
    }

    /// As [`Harness::start`], with the test's changes to the demo options (e.g. a shorter
    /// `down_after`).
    pub async fn start_with(change: impl FnOnce(&mut DemoOptions)) -> anyhow::Result<Harness> {
        let dir = tempfile::tempdir()?;
        Self::start_in(dir, change).await
    }

    /// As [`Harness::start_with`], with the data directory under `dir` (e.g. a small file
    /// system for disk-full tests).
    pub async fn start_in(
        dir: tempfile::TempDir,
        change: impl FnOnce(&mut DemoOptions),
    ) -> anyhow::Result<Harness> {
        let mut opts = DemoOptions::for_tests(dir.path().join("data"));
        change(&mut opts);
        let demo = dcim_demo::demo::start(opts).await?;
        let token = admin_token(&demo.server).await?;
        let api = Api::new(demo.base_url(), &token, Duration::from_secs(10))?;
        Ok(Harness {
            demo,
            api,
            _dir: dir,
        })
    }

    pub fn url(&self, path: &str) -> String {
        self.api.url(path)
    }

    /// GET with the bearer token; the body as JSON (errors on a non-2xx status).
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.api.get(path).await
    }

    /// POST a JSON body with the bearer token: the status and the body as JSON (or as a JSON
    /// string when it is not JSON).
    pub async fn post(&self, path: &str, body: Value) -> anyhow::Result<(u16, Value)> {
        self.api.post(path, body).await
    }

    /// The value of a metric at `/metrics`.
    pub async fn metric(&self, name: &str) -> anyhow::Result<f64> {
        let (_, text) = self.get_text("/metrics").await?;
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .with_context(|| format!("no metric {name}"))?
            .trim()
            .parse()
            .with_context(|| format!("metric {name}"))
    }

    /// An alarm by id from `/api/alarms?all=true` (active or not).
    pub async fn alarm(&self, id: &str) -> anyhow::Result<Option<Value>> {
        self.api.alarm(id).await
    }

    /// GET with the bearer token; the body as text.
    pub async fn get_text(&self, path: &str) -> anyhow::Result<(u16, String)> {
        self.api.get_text(path).await
    }

    /// GET without credentials.
    pub async fn get_anonymous(&self, path: &str) -> anyhow::Result<(u16, String)> {
        let r = self.api.http.get(self.url(path)).send().await?;
        Ok((r.status().as_u16(), r.text().await?))
    }

    /// Opens the live stream (`/api/stream`, server-sent events).
    pub async fn events(&self) -> anyhow::Result<EventStream> {
        // No overall timeout: the body of a stream never ends.
        let client = reqwest::Client::builder().no_proxy().build()?;
        let resp = client
            .get(self.url("/api/stream"))
            .bearer_auth(&self.api.token)
            .send()
            .await
            .context("GET /api/stream")?;
        anyhow::ensure!(
            resp.status().is_success(),
            "GET /api/stream: {}",
            resp.status()
        );
        Ok(EventStream {
            resp,
            buf: String::new(),
        })
    }

    /// Applies a simulator command line (`feed-loss A`).
    pub fn sim(&self, line: &str) -> anyhow::Result<String> {
        let cmd = facility_sim::Command::parse(line)
            .map_err(|e| anyhow::anyhow!("simulator command `{line}`: {e}"))?;
        self.demo
            .sim
            .command(&cmd)
            .map_err(|e| anyhow::anyhow!("simulator command `{line}`: {e}"))
    }

    /// The redundancy report of one subsystem (`power`, `cooling`, `network`).
    pub async fn redundancy(&self, subsystem: &str) -> anyhow::Result<Value> {
        let r = self.get("/api/site/redundancy").await?;
        r["subsystems"]
            .as_array()
            .and_then(|a| a.iter().find(|s| s["subsystem"] == subsystem))
            .cloned()
            .with_context(|| format!("no subsystem `{subsystem}` in {r}"))
    }

    /// Active alarms (`/api/alarms`, `active` true).
    pub async fn active_alarms(&self) -> anyhow::Result<Vec<Value>> {
        let r = self.get("/api/alarms").await?;
        Ok(r["alarms"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|a| a["active"] == true)
            .collect())
    }

    pub async fn incidents(&self) -> anyhow::Result<Vec<Value>> {
        let r = self.get("/api/incidents").await?;
        Ok(r["incidents"].as_array().cloned().unwrap_or_default())
    }

    /// The latest value of a device's point with this role, if the server has it.
    pub async fn point(&self, device: &str, role: &str) -> anyhow::Result<Option<Value>> {
        let r = self.get(&format!("/api/points/{device}")).await?;
        Ok(r["points"]
            .as_array()
            .and_then(|a| a.iter().find(|p| p["role"] == role))
            .cloned())
    }

    /// Waits until the facility is in its designed state: every subsystem at its designed
    /// redundancy with nothing unknown, down or lost, and no active alarm.
    pub async fn wait_steady(&self, timeout: Duration) -> anyhow::Result<()> {
        wait_for(
            "the facility at its designed redundancy",
            timeout,
            || async {
                let r = self.get("/api/site/redundancy").await?;
                let subs = r["subsystems"].as_array().cloned().unwrap_or_default();
                let steady = !subs.is_empty()
                    && subs.iter().all(|s| {
                        s["current"] == s["designed"]
                            && s["down"].as_array().is_some_and(|a| a.is_empty())
                            && s["lost"].as_array().is_some_and(|a| a.is_empty())
                            && (s["subsystem"] == "cooling"
                                || s["unknown"].as_array().is_some_and(|a| a.is_empty()))
                    });
                Ok((steady && self.active_alarms().await?.is_empty()).then_some(()))
            },
        )
        .await
    }

    pub async fn shutdown(self) {
        self.demo.shutdown().await;
    }
}

impl Harness {
    /// Attaches a notifier to the running server whose grade-1 and grade-2 alarms go to a
    /// webhook receiver on 127.0.0.1 (an ephemeral port); returns the bodies it receives.
    pub async fn webhook_notifications(
        &self,
    ) -> anyhow::Result<tokio::sync::mpsc::UnboundedReceiver<Value>> {
        let (url, rx) = webhook_receiver().await?;
        let text = format!(
            "[notify]\nenabled = true\ngrade1 = [\"hook\"]\ngrade2 = [\"hook\"]\n\
             [[notify.channels]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{url}\"\n"
        );
        let cfg = dcim_server::config::Config::parse(&text, std::path::Path::new("e2e.toml"))?;
        dcim_server::io::notify_io::attach(&self.demo.server.app, &cfg.notify).await?;
        Ok(rx)
    }
}

/// A minimal HTTP/1.1 receiver of webhook POSTs (one request per connection, answered 204):
/// `(url, JSON bodies)`.
pub async fn webhook_receiver()
-> anyhow::Result<(String, tokio::sync::mpsc::UnboundedReceiver<Value>)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let body = loop {
                    let Ok(n) = sock.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + len {
                        break buf[end + 4..end + 4 + len].to_vec();
                    }
                };
                let _ = sock
                    .write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .await;
                if let Ok(v) = serde_json::from_slice(&body) {
                    let _ = tx.send(v);
                }
            });
        }
    });
    Ok((url, rx))
}

/// Polls `f` every 200 ms until it returns `Some`, or fails after `timeout` with `what`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let start = Instant::now();
    let mut last_err = None;
    loop {
        match f().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last_err = Some(e),
        }
        if start.elapsed() > timeout {
            return Err(match last_err {
                Some(e) => e.context(format!("waiting {timeout:?} for {what}")),
                None => anyhow::anyhow!("timed out after {timeout:?} waiting for {what}"),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A server-sent event stream.
pub struct EventStream {
    resp: reqwest::Response,
    buf: String,
}

impl EventStream {
    /// The next event as (event name, data), or None when the stream ends.
    pub async fn next(&mut self) -> anyhow::Result<Option<(String, String)>> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let (mut event, mut data) = (String::from("message"), String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim_start().to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        if !data.is_empty() {
                            data.push('\n');
                        }
                        data.push_str(v.strip_prefix(' ').unwrap_or(v));
                    }
                }
                if data.is_empty() {
                    continue; // keep-alive comment
                }
                return Ok(Some((event, data)));
            }
            match self.resp.chunk().await? {
                Some(c) => self
                    .buf
                    .push_str(&String::from_utf8_lossy(&c).replace("\r\n", "\n")),
                None => return Ok(None),
            }
        }
    }

    /// Waits up to `timeout` for an event named `event` whose data satisfies `f`.
    pub async fn wait(
        &mut self,
        event: &str,
        timeout: Duration,
        mut f: impl FnMut(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let next = tokio::time::timeout_at(deadline, self.next())
                .await
                .map_err(|_| anyhow::anyhow!("no matching `{event}` event within {timeout:?}"))??;
            let Some((name, data)) = next else {
                anyhow::bail!("the event stream ended");
            };
            if name == event {
                let v: Value = serde_json::from_str(&data)
                    .with_context(|| format!("`{event}` event data is not JSON: {data}"))?;
                if f(&v) {
                    return Ok(v);
                }
            }
        }
    }
}
