//! The disk holding the database fills up under the running server (`dcim-server` binary, data
//! directory on a small tmpfs, agents through an external mosquitto):
//!
//! - the failure is loud: logged with the database path and "disk full", `/health` reports it
//!   (and stays so, never flipping back to ok while the disk is full), `/metrics` has
//!   `dcim_store_disk_full 1`, and the `store-disk-full` alarm is raised;
//! - the free-space reserve keeps alarm and journal commits and logins working: an alarm raised
//!   while the disk is full is journalled at once, and an operator can log in;
//! - nothing that was not committed is acknowledged: events wait unacknowledged at the broker
//!   (deferred, without holding up the ingest), so a server killed with SIGKILL while the disk
//!   is full gets them again at restart;
//! - the server recovers by itself within seconds once space returns (the deferred events are
//!   committed, the alarm clears, `/health` is ok);
//! - every event is stored exactly once and in order, and `PRAGMA integrity_check` is `ok`.
//!
//! Mounting a tmpfs needs root (or CAP_SYS_ADMIN); without it the test prints "skipped" and
//! passes, unless `DCIM_REQUIRE_PEERS=1`. It also needs mosquitto.

use crate::common;
use common::*;
use dcim_test_support::tmpfs::{Tmpfs, fill};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const AGENT: &str = "a1";

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn server(config: &Path, log: &Path) -> Proc {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Proc(
        Command::new(env!("CARGO_BIN_EXE_dcim-server"))
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "warn,dcim_server=info")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    )
}

async fn get(client: &reqwest::Client, http: u16, path: &str, token: &str) -> serde_json::Value {
    get_json(client, &format!("http://127.0.0.1:{http}{path}"), token).await
}

async fn stored_seqs(client: &reqwest::Client, http: u16, token: &str) -> Vec<i64> {
    let v = get(client, http, "/api/events?limit=10000", token).await;
    let mut s: Vec<i64> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    s.sort();
    s
}

async fn metric_value(client: &reqwest::Client, http: u16, token: &str, name: &str) -> f64 {
    metric_at(client, &format!("http://127.0.0.1:{http}"), token, name).await
}

async fn health(client: &reqwest::Client, http: u16) -> Option<serde_json::Value> {
    let r = client
        .get(format!("http://127.0.0.1:{http}/health"))
        .send()
        .await
        .ok()?;
    serde_json::from_str(&r.text().await.ok()?).ok()
}

/// Polls `f` every 100 ms until it is true, for at most `secs` seconds.
async fn within<F, Fut>(secs: u64, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !f().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {secs} s waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls `f` every 100 ms until it returns `Some`, for at most `secs` seconds.
async fn within_value<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {secs} s waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Publishes one telemetry batch: `ups-1` on battery (the default rules alarm on it at once).
async fn publish_on_battery(port: u16) {
    let payload = dcim_wire::encode(&dcim_wire::TelemetryBatch {
        v: dcim_wire::VERSION,
        agent: AGENT.into(),
        epoch: String::new(),
        seq: 1,
        samples: vec![dcim_points::Sample {
            device: "ups-1".into(),
            point: "on_battery".into(),
            role: dcim_points::Role::new("ups.on_battery").unwrap(),
            labels: Default::default(),
            value: Some(dcim_points::Value::Bool(true)),
            unit: String::new(),
            quality: dcim_points::Quality::Good,
            ts_ms: dcim_clock::now_ms(),
        }],
    });
    let (c, mut el, r) = mqtt_agent("127.0.0.1", port, AGENT, "unused").await;
    r.unwrap();
    publish(&c, &mut el, "dcim/v1/s1/a1/telemetry", payload)
        .await
        .unwrap();
    let _ = c.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_secs(1), el.poll()).await;
}

const ALARM: &str = "ups-on-battery:ups-1";

/// Publishes event batches of 10 at QoS 1 from `first` to `last` (the agent's side: the broker
/// acknowledges them; the server acknowledges to the broker only after its commit).
async fn publish_events(port: u16, first: u64, last: u64) {
    let (c, mut el, r) = mqtt_agent("127.0.0.1", port, AGENT, "unused").await;
    r.unwrap();
    let mut s = first;
    while s <= last {
        let e = (s + 9).min(last);
        publish(
            &c,
            &mut el,
            "dcim/v1/s1/a1/events",
            events(AGENT, "rack-1", s..=e),
        )
        .await
        .unwrap();
        s = e + 1;
    }
    let _ = c.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_secs(1), el.poll()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_disk_full_is_reported_never_acknowledged_and_recovered() {
    if !dcim_test_support::slow::run("the server's full-disk test") {
        return;
    }
    let Some(mosquitto) = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
    else {
        return skip_or_fail("mosquitto is not installed (apt-get install mosquitto)");
    };
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    let Some(_tmpfs) = Tmpfs::mount_or_skip(&mnt, "4m", "the data directory") else {
        return;
    };
    let data = mnt.join("data");
    let db = data.join("dcim.sqlite3");

    // mosquitto: anonymous, on loopback, kept up for the whole test (the server's persistent
    // session and its unacknowledged messages live there).
    let mport = free_port();
    let is_root = is_root();
    let mconf = dir.path().join("mosquitto.conf");
    std::fs::write(
        &mconf,
        format!(
            "{}listener {mport} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n",
            if is_root { "user root\n" } else { "" }
        ),
    )
    .unwrap();
    let _broker = Proc(
        Command::new(&mosquitto)
            .arg("-c")
            .arg(&mconf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    within(10, "mosquitto", || async {
        tokio::net::TcpStream::connect(("127.0.0.1", mport))
            .await
            .is_ok()
    })
    .await;

    let http = free_port();
    let cfg = dir.path().join("server.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"data_dir = "{}"
[http]
listen = "127.0.0.1:{http}"
[broker]
mode = "external"
url = "mqtt://127.0.0.1:{mport}"
client_id = "dcim-server-disk-full"
[auth]
argon2_memory_kib = 64
argon2_iterations = 1
[store]
reserve_kb = 256
[[agents]]
id = "{AGENT}"
site = "s1"
password = "unused"
devices = ["rack-*", "ups-*"]
"#,
            data.display()
        ),
    )
    .unwrap();
    let token = cli_admin_token(Path::new(env!("CARGO_BIN_EXE_dcim-server")), &cfg, "t");

    let log = dir.path().join("server.log");
    let mut srv = server(&cfg, &log);
    let client = http_client();
    within(20, "the server", || async {
        health(&client, http).await.is_some()
    })
    .await;
    // Let the ingest subscribe before anything is published.
    within(10, "the ingest connected", || async {
        metric_value(&client, http, &token, "dcim_mqtt_connected").await == 1.0
    })
    .await;

    // 1. Normal operation.
    publish_events(mport, 1, 100).await;
    within(20, "events 1..=100 stored", || async {
        stored_seqs(&client, http, &token).await.len() == 100
    })
    .await;
    assert_eq!(
        health(&client, http).await.unwrap()["status"],
        "ok",
        "healthy before the disk fills"
    );

    // 2. The disk fills; an alarm is raised and events keep coming. Neither the alarm's journal
    //    record nor the events are stored, the failure is visible, and space coming back lets
    //    the retried commits through without a restart.
    let filled = fill(&mnt);
    publish_on_battery(mport).await;
    within(10, "the on-battery alarm raised in memory", || async {
        get(&client, http, "/api/alarms", &token).await["alarms"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x["id"] == ALARM))
    })
    .await;
    let journal = format!("/api/alarms/{ALARM}/journal");
    let full_since = std::time::Instant::now();
    publish_events(mport, 101, 200).await;
    within(20, "the disk-full state in /health", || async {
        health(&client, http)
            .await
            .is_some_and(|h| h.to_string().contains("disk full"))
    })
    .await;
    let h = health(&client, http).await.unwrap();
    assert_eq!(h["status"], "degraded", "{h}");
    assert_eq!(h["store"], "disk full", "{h}");
    assert_eq!(
        metric_value(&client, http, &token, "dcim_store_disk_full").await,
        1.0
    );
    assert!(metric_value(&client, http, &token, "dcim_store_errors_total").await >= 1.0);
    let text = std::fs::read_to_string(&log).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("disk full"))
        .unwrap_or_else(|| panic!("no `disk full` in the log:\n{text}"));
    assert!(line.contains(&db.display().to_string()), "{line}");
    println!("logged: {line}");
    let during = {
        let r = client
            .get(format!("http://127.0.0.1:{http}/api/events?limit=10000"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        if !r.status().is_success() {
            tokio::time::sleep(Duration::from_millis(300)).await;
            for l in std::fs::read_to_string(&log)
                .unwrap()
                .lines()
                .filter(|l| l.contains("ERROR"))
                .collect::<Vec<_>>()
                .iter()
                .rev()
                .take(6)
            {
                println!("DEBUGLOG {l}");
            }
        }
        stored_seqs(&client, http, &token).await
    };
    // The reserve: the alarm raised while the disk is full is journalled all the same, the
    // disk-full alarm too, and logins work.
    within(
        10,
        "the on-battery alarm journalled from the reserve",
        || async {
            get(&client, http, &journal, &token).await["journal"]
                .as_array()
                .is_some_and(|j| !j.is_empty())
        },
    )
    .await;
    let disk_alarm = within_value(10, "the store-disk-full alarm", || async {
        get(&client, http, "/api/alarms", &token).await["alarms"]
            .as_array()
            .and_then(|a| {
                a.iter()
                    .find(|x| x["id"] == "store-disk-full:database" && x["active"] == true)
                    .cloned()
            })
    })
    .await;
    assert_eq!(disk_alarm["grade"], 2, "{disk_alarm}");
    let login = client
        .post(format!("http://127.0.0.1:{http}/api/login"))
        .header("content-type", "application/json")
        .body(serde_json::json!({"username": "ops", "password": PASSWORD}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200, "a login while the disk is full");
    assert!(
        during.len() < 200,
        "the disk was full yet every event was stored ({filled} bytes filled)"
    );
    // Never flips back to ok while the disk stays full.
    for _ in 0..10 {
        let h = health(&client, http).await.unwrap();
        assert_eq!(h["store"], "disk full", "{h}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "disk full for {:?} before space is freed",
        full_since.elapsed()
    );
    std::fs::remove_file(mnt.join("filler")).unwrap();
    let freed = std::time::Instant::now();
    within(30, "events 1..=200 stored after space returned", || async {
        stored_seqs(&client, http, &token).await.len() == 200
    })
    .await;
    within(
        10,
        "the alarm's record journalled after space returned",
        || async {
            get(&client, http, &journal, &token).await["journal"]
                .as_array()
                .is_some_and(|j| !j.is_empty())
        },
    )
    .await;
    within(10, "healthy again", || async {
        health(&client, http)
            .await
            .is_some_and(|h| h["status"] == "ok")
    })
    .await;
    println!("recovered {:?} after space was freed", freed.elapsed());
    assert_eq!(
        metric_value(&client, http, &token, "dcim_store_disk_full").await,
        0.0
    );
    within(10, "the store-disk-full alarm cleared", || async {
        get(&client, http, "/api/alarms?all=true", &token).await["alarms"]
            .as_array()
            .is_some_and(|a| {
                a.iter()
                    .any(|x| x["id"] == "store-disk-full:database" && x["active"] == false)
            })
    })
    .await;

    // 3. The disk fills again and the server is killed while it cannot commit: what it had not
    //    committed was not acknowledged, so the broker delivers it again after the restart.
    fill(&mnt);
    publish_events(mport, 201, 300).await;
    within(20, "the disk-full state again", || async {
        metric_value(&client, http, &token, "dcim_store_disk_full").await == 1.0
    })
    .await;
    let before_kill = stored_seqs(&client, http, &token).await.len();
    srv.0.kill().unwrap();
    srv.0.wait().unwrap();
    std::fs::remove_file(mnt.join("filler")).unwrap();
    let _srv = server(&cfg, &log);
    within(20, "the restarted server", || async {
        health(&client, http).await.is_some()
    })
    .await;
    within(30, "events 1..=300 stored after the restart", || async {
        stored_seqs(&client, http, &token).await.len() == 300
    })
    .await;
    let seqs = stored_seqs(&client, http, &token).await;
    assert_eq!(
        seqs,
        (1..=300).collect::<Vec<i64>>(),
        "each event exactly once"
    );
    println!(
        "disk full: {} events stored while full (of 100), {before_kill} stored when killed; all 300 stored after recovery",
        during.len() - 100
    );
    drop(_srv);

    // 4. The database is sound, and events were committed in sequence order.
    let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(&db);
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect_with(&opts)
        .await
        .unwrap();
    let check: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(check, "ok");
    let rows: Vec<(i64, i64)> =
        sqlx::query_as("SELECT seq, received_ms FROM events WHERE agent = ? ORDER BY seq")
            .bind(AGENT)
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(rows.len(), 300);
    assert!(
        rows.windows(2).all(|w| w[1].1 >= w[0].1),
        "events committed in sequence order"
    );
}

fn http_client() -> reqwest::Client {
    http()
}

/// Writes the store as the server does (transactions of alarm documents and journal rows, and
/// plain statements) until the disk refuses them.
async fn write_some(
    s: &dcim_server::storage::store::SqliteStore,
    n: usize,
    tag: &str,
) -> (usize, usize) {
    use dcim_server::storage::store::{Batch, DocRecord, Store};
    let (mut ok, mut failed) = (0, 0);
    for i in 0..n {
        let mut b = Batch::default();
        for k in 0..20 {
            b.docs.push((
                "alarm".into(),
                DocRecord {
                    id: format!("{tag}-{i}-{k}"),
                    updated_ms: 1,
                    body: serde_json::json!({"pad": "x".repeat(2000)}),
                },
            ));
        }
        b.journal.push((
            1,
            format!("{tag}-{i}"),
            serde_json::json!({"pad": "y".repeat(2000)}),
        ));
        match s.commit_batch(&b).await {
            Ok(_) => ok += 1,
            Err(_) => failed += 1,
        }
        if s.audit(
            1,
            "t",
            tag,
            "x",
            &serde_json::json!({"pad": "z".repeat(500)}),
        )
        .await
        .is_err()
        {
            failed += 1;
        }
    }
    (ok, failed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_recovers_within_seconds_once_space_returns() {
    if !dcim_test_support::slow::run("the store's full-disk recovery test") {
        return;
    }
    // Hazard: after a full disk, SQLite rolled a failed transaction back by itself, sqlx's
    // rollback then failed and its connection went back to the pool believing it was inside
    // a transaction; the next "begin" on it opened a savepoint that never ended, so the
    // connection kept the write lock and every write answered "database is locked" for
    // minutes after space came back.
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    let Some(_tmpfs) = Tmpfs::mount_or_skip(&mnt, "2m", "the data directory") else {
        return;
    };
    let s = dcim_server::storage::store::SqliteStore::open(&mnt)
        .await
        .unwrap();
    let (ok, _) = write_some(&s, 5, "before").await;
    assert_eq!(ok, 5);
    fill(&mnt);
    let (_, failed) = write_some(&s, 40, "full").await;
    assert!(failed > 0, "the disk was full yet nothing failed");
    std::fs::remove_file(mnt.join("filler")).unwrap();
    let start = std::time::Instant::now();
    let mut writes_ok = 0;
    while start.elapsed() < Duration::from_secs(3) {
        let (ok, failed) = write_some(&s, 1, "after").await;
        if ok == 1 && failed == 0 {
            writes_ok += 1;
            if writes_ok == 5 {
                break;
            }
        }
    }
    assert_eq!(
        writes_ok,
        5,
        "the store still refuses writes {:?} after space returned",
        start.elapsed()
    );
    println!(
        "store writable again {:?} after space returned",
        start.elapsed()
    );
}
