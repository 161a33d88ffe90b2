//! Load generator: ingest throughput through the embedded broker, and alarm latency from MQTT
//! publish to the SSE `alarm` event, on this machine (loopback only, bounded in time).
//!
//! ```sh
//! cargo run --release -p dcim-demo --bin dcim-ingest-bench -- [--seconds 10] [--agents 4] [--batch 500] [--probes 200] [--store-url postgres://...]
//! ```
//!
//! `--store-url` runs the server on that PostgreSQL database (`[store] backend = "postgres"`,
//! e.g. the pair `tests/multisite/pg-pair.sh` starts, with a synchronous standby) instead of
//! SQLite in the temporary directory; the database must be empty (the bench's users and
//! agents are created in it).
//!
//! It starts a server in-process (temp data dir, embedded broker, its ACL gate), connects
//! `--agents` MQTT clients that publish telemetry batches of `--batch` samples at QoS 1 as fast
//! as the PUBACKs come back (at most 64 in flight each) for `--seconds`, waits (at most 60 s)
//! until every acknowledged sample was taken in by the ingest, and reports: the samples
//! acknowledged by the broker, the samples taken in, the rate taken in while publishing (over
//! the `--seconds`), the drain time after the publishers stopped, and the end-to-end rate (all
//! samples over publishing plus drain). It exits with status 1 when the ingest took in fewer
//! samples than were acknowledged (acknowledged telemetry lost), or when the broker skipped
//! messages. Alarm latency: each probe publishes `fire.stage = 3` for a new rack (in a batch of
//! its own, from a probe agent) and waits for the matching `alarm` record on `/api/stream` (the
//! record is committed to SQLite before it is streamed); reported as sample time -> decision
//! (the record's `ts_ms`) and publish -> record on the stream; first with the broker idle, then
//! while the telemetry load runs.

use dcim_points::{Quality, Role, Sample, Value};
use dcim_server::config::{AgentConfig, Config};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, oneshot};

struct Opts {
    seconds: u64,
    agents: usize,
    batch: usize,
    probes: usize,
    store_url: Option<String>,
}

fn opts() -> Opts {
    let mut o = Opts {
        seconds: 10,
        agents: 4,
        batch: 500,
        probes: 200,
        store_url: None,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        if pair[0] == "--store-url"
            && let Some(u) = pair.get(1)
        {
            o.store_url = Some(u.clone());
            continue;
        }
        let v = pair.get(1).and_then(|v| v.parse().ok());
        match (pair[0].as_str(), v) {
            ("--seconds", Some(v)) => o.seconds = v as u64,
            ("--agents", Some(v)) => o.agents = v,
            ("--batch", Some(v)) => o.batch = v,
            ("--probes", Some(v)) => o.probes = v,
            _ => {
                eprintln!(
                    "usage: dcim-ingest-bench [--seconds N] [--agents N] [--batch N] [--probes N] [--store-url postgres://...]"
                );
                std::process::exit(2);
            }
        }
    }
    o
}

fn sample(device: String, role: &str, value: f64, ts: i64) -> Sample {
    Sample {
        device,
        point: "p".into(),
        role: Role::new(role).expect("vocabulary role"),
        labels: Default::default(),
        value: Some(Value::Number(value)),
        unit: String::new(),
        quality: Quality::Good,
        ts_ms: ts,
    }
}

async fn connect(port: u16, id: &str) -> (AsyncClient, rumqttc::EventLoop) {
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    o.set_credentials(id, format!("{id}-secret"));
    o.set_max_packet_size(8 << 20, 8 << 20);
    o.set_inflight(64);
    o.set_keep_alive(Duration::from_secs(30));
    AsyncClient::new(o, 128)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Per probe alarm id: where to send (arrival, the record's `ts_ms`).
type Waiters = Arc<Mutex<HashMap<String, oneshot::Sender<(Instant, i64)>>>>;

/// Reads the live stream and completes the waiter of each activated fire alarm.
async fn watch_stream(resp: reqwest::Response, waiters: Waiters) {
    let mut resp = resp;
    let mut buf = String::new();
    let mut event = String::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        let at = Instant::now();
        buf.push_str(&String::from_utf8_lossy(&chunk));
        let mut consumed = 0;
        while let Some(i) = buf[consumed..].find('\n') {
            let line = buf[consumed..consumed + i].trim_end().to_string();
            consumed += i + 1;
            let line = line.as_str();
            if let Some(e) = line.strip_prefix("event: ") {
                event = e.to_string();
            } else if let Some(d) = line.strip_prefix("data: ")
                && event == "alarm"
            {
                let v: serde_json::Value = serde_json::from_str(d).unwrap_or_default();
                if v["event"]["type"] == "activated"
                    && let Some(id) = v["alarm"].as_str()
                    && let Some(tx) = waiters.lock().await.remove(id)
                {
                    let _ = tx.send((at, v["ts_ms"].as_i64().unwrap_or(0)));
                }
            }
        }
        buf.drain(..consumed);
    }
}

/// `(sample time -> decision, publish -> stream)` in ms, per probe answered.
async fn probe_latencies(port: u16, waiters: &Waiters, n: usize, tag: &str) -> Vec<(f64, f64)> {
    let (c, mut el) = connect(port, "probe").await;
    tokio::spawn(async move { while el.poll().await.is_ok() {} });
    let mut out = Vec::new();
    for i in 0..n {
        let device = format!("rack-{tag}-{i:05}");
        let (tx, rx) = oneshot::channel();
        waiters
            .lock()
            .await
            .insert(format!("fire-stage:{device}"), tx);
        let ts = dcim_clock::now_ms();
        let payload = dcim_wire::encode(&dcim_wire::TelemetryBatch {
            v: dcim_wire::VERSION,
            agent: "probe".into(),
            epoch: String::new(),
            seq: (i + 1) as u64 + if tag == "load" { 1_000_000 } else { 0 },
            samples: vec![sample(device, "fire.stage", 3.0, ts)],
        });
        let t0 = Instant::now();
        c.publish(
            "dcim/v1/bench/probe/telemetry",
            QoS::AtLeastOnce,
            false,
            payload,
        )
        .await
        .expect("publish");
        match tokio::time::timeout(Duration::from_secs(5), rx).await {
            Ok(Ok((at, decided))) => out.push((
                (decided - ts) as f64,
                at.duration_since(t0).as_secs_f64() * 1000.0,
            )),
            _ => eprintln!("probe {i}: no alarm within 5 s"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    out
}

fn report(name: &str, probes: usize, v: Vec<(f64, f64)>) {
    let (mut decided, mut stream): (Vec<f64>, Vec<f64>) = v.into_iter().unzip();
    decided.sort_by(|a, b| a.total_cmp(b));
    stream.sort_by(|a, b| a.total_cmp(b));
    println!(
        "alarm latency ({name}): {} of {probes} probes; sample time -> decision p50={:.0} ms p99={:.0} ms max={:.0} ms; publish -> stream p50={:.2} ms p99={:.2} ms max={:.2} ms",
        stream.len(),
        percentile(&decided, 0.5),
        percentile(&decided, 0.99),
        decided.last().copied().unwrap_or(f64::NAN),
        percentile(&stream, 0.5),
        percentile(&stream, 0.99),
        stream.last().copied().unwrap_or(f64::NAN)
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let o = opts();
    let dir = tempfile_dir()?;
    let config = bench_config(&o, &dir)?;
    let server = dcim_server::start(config).await?;
    let port = server.mqtt_addr.expect("embedded broker").port();
    let waiters = watch_alarms(&server).await?;

    println!(
        "dcim-ingest-bench: {} agents x batches of {} samples, {} s, QoS 1 through the embedded broker and its ACL gate",
        o.agents, o.batch, o.seconds
    );
    let idle = probe_latencies(port, &waiters, o.probes, "idle").await;
    let m = server.app.metrics.clone();
    let load = run_load(&o, port, &waiters, &m).await?;
    // The probes' own samples (one per probe batch) are taken in too.
    let accepted = wait_taken_in(&m, &load, o.probes as u64).await;
    let skipped = print_ingest(&m, &load, accepted);
    report("idle broker", o.probes, idle);
    report("during the ingest load", o.probes, load.probed);
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    let sent = load.sent;
    if accepted != sent || skipped > 0 {
        eprintln!(
            "FAILED: {} acknowledged samples not taken in, {skipped} broker messages skipped",
            sent.saturating_sub(accepted)
        );
        std::process::exit(1);
    }
    Ok(())
}

/// Subscribes to the server's alarm stream with an admin token; the probes' waiters are
/// answered from it.
async fn watch_alarms(server: &dcim_server::Server) -> anyhow::Result<Waiters> {
    let token = dcim_server::state::auth::new_token("dcim_");
    let store = &server.app.store;
    store
        .create_token(
            &dcim_server::state::auth::token_hash(&token),
            "admin",
            "bench",
            0,
        )
        .await?;
    let http = reqwest::Client::new();
    let resp = http
        .get(format!(
            "http://{}/api/stream?events=alarm",
            server.http_addr
        ))
        .bearer_auth(&token)
        .send()
        .await?;
    anyhow::ensure!(resp.status().is_success(), "stream: {}", resp.status());
    let waiters: Waiters = Arc::default();
    tokio::spawn(watch_stream(resp, waiters.clone()));
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(waiters)
}

/// What the throughput phase measured.
struct Load {
    /// Samples acknowledged by the broker.
    sent: u64,
    /// The ingest counter when the phase began.
    start_samples: u64,
    /// Samples taken in while the publishers ran, over `publish_s` seconds.
    during: u64,
    publish_s: f64,
    t0: Instant,
    /// When the publishers stopped.
    stopped: Instant,
    /// The probes' latencies under load.
    probed: Vec<(f64, f64)>,
}

/// The throughput phase: `o.agents` publishers for `o.seconds`, probes running alongside.
async fn run_load(
    o: &Opts,
    port: u16,
    waiters: &Waiters,
    m: &dcim_server::base::metrics::Metrics,
) -> anyhow::Result<Load> {
    let running = Arc::new(AtomicBool::new(true));
    let published = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut publishers = Vec::new();
    for i in 0..o.agents {
        let running = running.clone();
        let published = published.clone();
        let batch = o.batch;
        publishers.push(tokio::spawn(publish_load(
            i, port, batch, running, published,
        )));
    }
    let start_samples = m.ingest_samples_total.load(Ordering::Relaxed);
    let t0 = Instant::now();
    let probes_port = port;
    let load_waiters = waiters.clone();
    let load_probes = o.probes;
    let under_load = tokio::spawn(async move {
        probe_latencies(probes_port, &load_waiters, load_probes, "load").await
    });
    tokio::time::sleep(Duration::from_secs(o.seconds)).await;
    let during = m.ingest_samples_total.load(Ordering::Relaxed) - start_samples;
    let publish_s = t0.elapsed().as_secs_f64();
    running.store(false, Ordering::Relaxed);
    for p in publishers {
        let _ = p.await;
    }
    let sent = published.load(Ordering::Relaxed);
    let stopped = Instant::now();
    let probed = under_load.await?;
    Ok(Load {
        sent,
        start_samples,
        during,
        publish_s,
        t0,
        stopped,
        probed,
    })
}

/// Waits until everything acknowledged was taken in (bounded, 60 s); returns the samples taken
/// in, the probes' own `probe_samples` left out.
async fn wait_taken_in(
    m: &dcim_server::base::metrics::Metrics,
    load: &Load,
    probe_samples: u64,
) -> u64 {
    let (sent, t0) = (load.sent, load.t0);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = 0;
    let mut progress = Instant::now();
    while Instant::now() < deadline {
        last = (m.ingest_samples_total.load(Ordering::Relaxed) - load.start_samples)
            .saturating_sub(probe_samples);
        if last >= sent {
            break;
        }
        if progress.elapsed() >= Duration::from_secs(1) {
            progress = Instant::now();
            eprintln!(
                "  {:.0} s: {last} of {sent} samples taken in",
                t0.elapsed().as_secs_f64()
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    last
}

/// Prints the ingest line; returns the broker messages skipped.
fn print_ingest(m: &dcim_server::base::metrics::Metrics, load: &Load, accepted: u64) -> u64 {
    let Load {
        sent,
        during,
        publish_s,
        ..
    } = *load;
    let elapsed = load.t0.elapsed().as_secs_f64();
    let drain = load.stopped.elapsed().as_secs_f64();
    let skipped = m.ingest_skipped_messages_total.load(Ordering::Relaxed);
    println!(
        "ingest: {sent} samples acknowledged by the broker, {accepted} taken in ({}); {:.0} points/s taken in while publishing ({during} in {publish_s:.1} s), drained {drain:.1} s after the publishers stopped, {:.0} points/s end to end (duplicates {}, ACL rejections {}, broker messages skipped {skipped}, points in memory {})",
        if accepted == sent {
            "accepted == acknowledged"
        } else {
            "LOST ACKNOWLEDGED SAMPLES"
        },
        during as f64 / publish_s,
        accepted as f64 / elapsed,
        m.ingest_duplicate_batches_total.load(Ordering::Relaxed),
        m.acl_rejections_total.load(Ordering::Relaxed),
        m.points.load(Ordering::Relaxed),
    );
    skipped
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("dcim-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// The server's configuration for the bench: ephemeral listeners, light hashing, the store
/// (SQLite in `dir`, or PostgreSQL at `--store-url`), the load agents and the probe agent.
fn bench_config(o: &Opts, dir: &std::path::Path) -> anyhow::Result<Config> {
    let mut config = Config {
        data_dir: dir.to_path_buf(),
        ..Default::default()
    };
    config.http.listen = "127.0.0.1:0".parse()?;
    config.broker.listen = "127.0.0.1:0".parse()?;
    config.broker.max_payload = 8 << 20;
    config.auth.argon2_memory_kib = 64;
    config.auth.argon2_iterations = 1;
    if let Some(url) = &o.store_url {
        config.store = dcim_server::storage::store::StoreConfig {
            backend: dcim_server::storage::store::StoreBackend::Postgres,
            urls: vec![url.clone()],
            ..Default::default()
        };
    }
    println!(
        "store: {}",
        o.store_url
            .as_deref()
            .unwrap_or("SQLite (temporary directory)")
    );
    let mut agents: Vec<AgentConfig> = (0..o.agents)
        .map(|i| AgentConfig {
            id: format!("load{i}"),
            site: "bench".into(),
            password: Some(format!("load{i}-secret")),
            password_env: None,
            devices: vec![format!("dev{i}-*")],
        })
        .collect();
    agents.push(AgentConfig {
        id: "probe".into(),
        site: "bench".into(),
        password: Some("probe-secret".into()),
        password_env: None,
        devices: vec!["rack-*".into()],
    });
    config.agents = agents;
    Ok(config)
}

/// One load agent: publishes telemetry batches of `batch` samples until `running` clears,
/// counting in `published` the samples of each batch the broker acknowledged.
async fn publish_load(
    i: usize,
    port: u16,
    batch: usize,
    running: Arc<AtomicBool>,
    published: Arc<std::sync::atomic::AtomicU64>,
) {
    let id = format!("load{i}");
    let (c, mut el) = connect(port, &id).await;
    let topic = format!("dcim/v1/bench/{id}/telemetry");
    // Counts what the broker acknowledged: a publish handed to the client is only
    // queued (and lost when the client stops), so only PUBACKs count as published.
    let acked = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let pump_acked = acked.clone();
    let pump_published = published.clone();
    let pump = tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    pump_acked.fetch_add(1, Ordering::Relaxed);
                    pump_published.fetch_add(batch as u64, Ordering::Relaxed);
                }
                Ok(Event::Incoming(Packet::Disconnect)) | Err(_) => break,
                _ => {}
            }
        }
    });
    let mut seq = 0u64;
    while running.load(Ordering::Relaxed) {
        seq += 1;
        let ts = dcim_clock::now_ms();
        let samples = (0..batch)
            .map(|k| {
                sample(
                    format!("dev{i}-{:04}", k % 1000),
                    "ups.load_pct",
                    (seq % 100) as f64,
                    ts,
                )
            })
            .collect();
        let payload = dcim_wire::encode(&dcim_wire::TelemetryBatch {
            v: dcim_wire::VERSION,
            agent: id.clone(),
            epoch: String::new(),
            seq,
            samples,
        });
        if c.publish(topic.as_str(), QoS::AtLeastOnce, false, payload)
            .await
            .is_err()
        {
            break;
        }
    }
    // Let the queued and in-flight publishes be acknowledged before leaving.
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked.load(Ordering::Relaxed) < seq && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _ = c.disconnect().await;
    pump.abort();
}
