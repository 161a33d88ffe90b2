//! The security suite: every attack of the public-surface audit, run against the real
//! `dcim-server` binary (a child process, so its memory, descriptors and disk are measured
//! alone), each with a bound on time and count, asserting the bound that must hold. The
//! figures are printed (`cargo test -p dcim-server --test security -- --nocapture`) and
//! recorded in BENCHMARKS.md ("Security bounds").
//!
//! Attackers connect from other loopback addresses (127.0.0.2 and up) than the legitimate
//! agent and operator (127.0.0.1), as they would from other hosts: the per-address limits are
//! part of what is tested. The tests run one at a time (they measure).

#[path = "it/common/mod.rs"]
mod common;
use common::*;
use rumqttc::mqttbytes::v4;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The tests measure memory, descriptors and latency: one at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_dcim-server")
}

/// A `dcim-server` child process on its own ports and data directory, with an admin token.
struct Srv {
    child: Child,
    dir: tempfile::TempDir,
    cfg: PathBuf,
    http: u16,
    mqtt: u16,
    admin: String,
}

impl Drop for Srv {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cli(cfg: &Path, args: &[&str], password: Option<&str>) -> String {
    let mut c = Command::new(bin());
    c.args(args).arg("--config").arg(cfg);
    if let Some(p) = password {
        c.env("DCIM_NEW_PASSWORD", p);
    }
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

impl Srv {
    /// `auth` and `broker` are extra lines of those sections. Production password hashing
    /// (argon2id, 19 MiB, 2 passes) unless `auth` says otherwise.
    async fn start(auth: &str, broker: &str) -> Srv {
        let dir = tempfile::tempdir().unwrap();
        let (http, mqtt) = (free_port(), free_port());
        let cfg = dir.path().join("server.toml");
        std::fs::write(
            &cfg,
            format!(
                r#"data_dir = "data"
[http]
listen = "127.0.0.1:{http}"
header_timeout_s = 2
request_timeout_s = 10
idle_timeout_s = 5
[broker]
listen = "127.0.0.1:{mqtt}"
connect_timeout_ms = 2000
{broker}
[auth]
{auth}
[[agents]]
id = "a1"
site = "s1"
password = "a1-secret"
devices = ["rack-*", "ups-*"]
[[agents]]
id = "a2"
site = "s1"
password = "a2-secret"
devices = ["crah-*"]
"#
            ),
        )
        .unwrap();
        cli(
            &cfg,
            &["user", "add", "--name", "admin", "--role", "admin"],
            Some(PASSWORD),
        );
        let admin = cli(
            &cfg,
            &["user", "token", "--name", "admin", "--label", "suite"],
            None,
        );
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let child = Command::new(bin())
            .arg("--config")
            .arg(&cfg)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let s = Srv {
            child,
            dir,
            cfg,
            http,
            mqtt,
            admin,
        };
        let client = http_client();
        eventually("server up", || async {
            client.get(s.url("/health")).send().await.is_ok()
        })
        .await;
        // Warm up (first requests allocate pools and caches) before any baseline is taken.
        for _ in 0..3 {
            let _ = client
                .get(s.url("/api/agents"))
                .bearer_auth(&s.admin)
                .send()
                .await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        s
    }

    fn url(&self, p: &str) -> String {
        format!("http://127.0.0.1:{}{p}", self.http)
    }

    fn user(&self, name: &str, role: &str) {
        cli(
            &self.cfg,
            &["user", "add", "--name", name, "--role", role],
            Some(PASSWORD),
        );
    }

    /// (resident, peak resident) in MiB.
    fn memory_mib(&self) -> (f64, f64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kib = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        (kib("VmRSS:") / 1024.0, kib("VmHWM:") / 1024.0)
    }

    fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// Bytes of the data directory (database, WAL, everything).
    fn disk_bytes(&self) -> u64 {
        fn walk(p: &Path) -> u64 {
            std::fs::read_dir(p)
                .map(|d| {
                    d.flatten()
                        .map(|e| match e.metadata() {
                            Ok(m) if m.is_dir() => walk(&e.path()),
                            Ok(m) => m.len(),
                            Err(_) => 0,
                        })
                        .sum()
                })
                .unwrap_or(0)
        }
        walk(&self.dir.path().join("data"))
    }

    async fn json(&self, path: &str) -> serde_json::Value {
        get_json(&http_client(), &self.url(path), &self.admin).await
    }

    async fn metric(&self, name: &str) -> f64 {
        metric_at(&http_client(), &self.url(""), &self.admin, name).await
    }
}

fn http_client() -> reqwest::Client {
    http()
}

/// An HTTP client whose connections come from `ip` (a loopback address other than
/// 127.0.0.1 stands for another host).
fn client_from(ip: &str) -> reqwest::Client {
    install_crypto();
    reqwest::Client::builder()
        .local_address(ip.parse::<IpAddr>().unwrap())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A TCP connection to 127.0.0.1:`port` from `ip`.
async fn tcp_from(ip: &str, port: u16) -> std::io::Result<TcpStream> {
    let s = tokio::net::TcpSocket::new_v4()?;
    s.bind(SocketAddr::new(ip.parse().unwrap(), 0))?;
    s.connect(SocketAddr::from(([127, 0, 0, 1], port))).await
}

/// Whether the server has closed `s` (EOF or reset) within `wait`.
async fn closed_by_server(s: &mut TcpStream, wait: Duration) -> bool {
    let mut b = [0u8; 64];
    loop {
        match tokio::time::timeout(wait, s.read(&mut b)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue, // a CONNACK: keep reading until the close
            Err(_) => return false,
        }
    }
}

fn connect_packet(client_id: &str, user: &str, password: &str) -> Vec<u8> {
    let mut c = v4::Connect::new(client_id);
    c.set_login(user, password);
    let mut b = bytes::BytesMut::new();
    c.write(&mut b).unwrap();
    b.to_vec()
}

async fn login(
    client: &reqwest::Client,
    s: &Srv,
    user: &str,
    password: &str,
    device_cookie: Option<&str>,
) -> (u16, Option<String>) {
    let mut r = client
        .post(s.url("/api/login"))
        .header("content-type", "application/json")
        .body(serde_json::json!({"username": user, "password": password}).to_string());
    if let Some(c) = device_cookie {
        r = r.header("cookie", format!("dcim_device={c}"));
    }
    // A server may close the connection before reading a body it refuses.
    let Ok(resp) = r.send().await else {
        return (0, None);
    };
    let cookie = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("dcim_device="))
        .map(|v| v.split(';').next().unwrap_or_default().to_string());
    (resp.status().as_u16(), cookie)
}

/// An MQTT client with its own client id and login (`mqtt_agent` uses the id as user name).
async fn mqtt_as(
    port: u16,
    client_id: &str,
    user: &str,
    password: &str,
) -> (rumqttc::AsyncClient, rumqttc::EventLoop) {
    let mut o = rumqttc::MqttOptions::new(client_id, "127.0.0.1", port);
    o.set_credentials(user, password);
    o.set_keep_alive(Duration::from_secs(30));
    o.set_max_packet_size(8 << 20, 8 << 20);
    let (c, mut el) = rumqttc::AsyncClient::new(o, 100);
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match el.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => return,
                Ok(_) => {}
                Err(e) => panic!("{client_id}: {e}"),
            }
        }
    })
    .await
    .unwrap();
    (c, el)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Attack 1 (MQTT gate, before any login): 200 CONNECTs claiming 4 MB with five bytes sent
/// made the server allocate 4 MB each (51 MB -> 862 MB). Bound: the claimed length costs
/// nothing (memory growth under 20 MiB for 200 of them plus 200 half-open sockets), the
/// sockets are closed at once or at the CONNECT timeout, and a real agent connects and
/// publishes meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_claimed_lengths_and_half_open_sockets_cost_no_memory() {
    let _one = ONE_AT_A_TIME.lock().await;
    let s = Srv::start("", "").await;
    let (rss0, _) = s.memory_mib();
    let fds0 = s.open_fds();
    let t0 = Instant::now();
    // A CONNECT fixed header claiming 4,194,303 bytes, then nothing.
    let mut claimed = Vec::new();
    for _ in 0..200 {
        let mut c = tcp_from("127.0.0.2", s.mqtt).await.unwrap();
        let _ = c.write_all(&[0x10, 0xff, 0xff, 0xff, 0x01]).await;
        claimed.push(c);
    }
    // A plausible CONNECT of 3,000 bytes, five of them sent: held until the timeout.
    let mut half = Vec::new();
    for _ in 0..200 {
        if let Ok(mut c) = tcp_from("127.0.0.3", s.mqtt).await {
            let _ = c.write_all(&[0x10, 0xb8, 0x17, 0x00, 0x04]).await;
            half.push(c);
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (rss1, _) = s.memory_mib();
    let fds1 = s.open_fds();
    // The real agent, meanwhile.
    let t = Instant::now();
    let (c, mut el, r) = mqtt_agent("127.0.0.1", s.mqtt, "a1", "a1-secret").await;
    r.unwrap();
    publish(
        &c,
        &mut el,
        "dcim/v1/s1/a1/telemetry",
        telemetry("a1", 1, "ups-1", 10.0),
    )
    .await
    .unwrap();
    let agent_ms = t.elapsed().as_millis();
    let mut closed_at_once = 0;
    for c in &mut claimed {
        if closed_by_server(c, Duration::from_millis(200)).await {
            closed_at_once += 1;
        }
    }
    // The CONNECT timeout (2 s here) ends the half-open ones.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let mut timed_out = 0;
    for c in &mut half {
        if closed_by_server(c, Duration::from_millis(100)).await {
            timed_out += 1;
        }
    }
    let fds2 = s.open_fds();
    let refused = s.metric("dcim_broker_connections_refused_total").await;
    println!(
        "mqtt claimed lengths: rss {rss0:.1} -> {rss1:.1} MiB (+{:.1}) with 200 claiming 4 MB and {} half-open; \
         fds {fds0} -> {fds1} -> {fds2}; agent connected and acknowledged in {agent_ms} ms; \
         {closed_at_once}/200 closed at once, {timed_out}/{} half-open closed by the timeout, {refused} refused at accept; {:.1} s",
        rss1 - rss0,
        half.len(),
        half.len(),
        t0.elapsed().as_secs_f64()
    );
    assert!(
        rss1 - rss0 < 20.0,
        "memory grew by {:.1} MiB before any login",
        rss1 - rss0
    );
    assert_eq!(
        closed_at_once, 200,
        "an oversized CONNECT is closed at once"
    );
    assert_eq!(timed_out, half.len(), "half-open logins end at the timeout");
    assert!(refused > 0.0, "one address cannot hold every login slot");
    assert!(agent_ms < 3_000, "the agent waited {agent_ms} ms");
    assert!(fds2 <= fds0 + 10, "descriptors {fds0} -> {fds2}");
}

/// Attack 2 (MQTT logins): 1,000 logins with 60 kB user names added 68 MB to the database in
/// 0.2 s. Bound: the names are refused at the CONNECT limit, the audit grows by at most a
/// few rows (coalesced), the disk by less than 256 KiB, the address is locked after 20
/// failures (visible to admins), and the agent whose name is used keeps connecting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_login_floods_write_bounded_audit_and_lock_the_address() {
    let _one = ONE_AT_A_TIME.lock().await;
    let s = Srv::start("", "").await;
    let disk0 = s.disk_bytes();
    let audit0 = s.json("/api/audit?limit=10000").await["audit"]
        .as_array()
        .unwrap()
        .len();
    let t0 = Instant::now();
    let long = "u".repeat(60_000);
    let big = connect_packet("x", &long, "pw");
    let mut sent = 0;
    for _ in 0..1000 {
        if let Ok(mut c) = tcp_from("127.0.0.4", s.mqtt).await {
            let _ = c.write_all(&big).await;
            sent += 1;
        }
    }
    // Well-formed logins with wrong passwords, using the agent's own name.
    let wrong = connect_packet("a1", "a1", "guess");
    let mut refused_connack = 0;
    for _ in 0..300 {
        if let Ok(mut c) = tcp_from("127.0.0.5", s.mqtt).await {
            let _ = c.write_all(&wrong).await;
            let mut b = [0u8; 4];
            if let Ok(Ok(4)) =
                tokio::time::timeout(Duration::from_millis(500), c.read_exact(&mut b)).await
                && b == [0x20, 0x02, 0x00, 0x05]
            {
                refused_connack += 1;
            }
        }
    }
    let attack_s = t0.elapsed().as_secs_f64();
    // The agent named in the guesses, from its own address: not locked.
    let (_c, _el, r) = mqtt_agent("127.0.0.1", s.mqtt, "a1", "a1-secret").await;
    r.expect("the agent whose name was guessed still connects");
    // Summary rows are written at the end of their minute; the rows so far are bounded.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let audit = s.json("/api/audit?limit=10000").await;
    let rows = audit["audit"].as_array().unwrap().len() - audit0;
    let lockouts = s.json("/api/auth/lockouts").await;
    let locked: Vec<String> = lockouts["mqtt"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| !v["locked_until_ms"].is_null())
        .map(|v| v["subject"]["name"].as_str().unwrap().to_string())
        .collect();
    let disk1 = s.disk_bytes();
    println!(
        "mqtt login flood: {sent} CONNECTs with 60 kB names and 300 wrong passwords in {attack_s:.1} s; \
         {refused_connack} answered 'not authorized' before the address was locked; audit +{rows} rows; \
         disk {disk0} -> {disk1} bytes (+{}); locked addresses {locked:?}",
        disk1.saturating_sub(disk0)
    );
    assert!(rows <= 25, "{rows} audit rows for 1,300 failed logins");
    assert!(
        disk1.saturating_sub(disk0) < 256 * 1024,
        "disk grew by {} bytes",
        disk1 - disk0
    );
    assert!(locked.contains(&"127.0.0.4".to_string()), "{lockouts}");
    assert!(locked.contains(&"127.0.0.5".to_string()), "{lockouts}");
    assert!(
        refused_connack <= 25,
        "{refused_connack} logins checked after the lock"
    );
    // A locked address is closed at accept.
    let mut c = tcp_from("127.0.0.5", s.mqtt).await.unwrap();
    let _ = c.write_all(&connect_packet("a1", "a1", "a1-secret")).await;
    assert!(closed_by_server(&mut c, Duration::from_secs(2)).await);
    assert!(attack_s < 30.0);
}

/// Attack 3 (HTTP sign-in): 300 concurrent wrong logins took the server to 3.3 GB (argon2
/// per attempt, unbounded). Bound, with production hashing (19 MiB): peak memory grows by less
/// than 120 MiB, the user's name is locked after 5 failures, and the user's own browser
/// (its device cookie) signs in during the attack within 5 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_wrong_logins_are_bounded_and_do_not_lock_out_the_owner() {
    let _one = ONE_AT_A_TIME.lock().await;
    let s = Srv::start("", "").await;
    s.user("ops", "operator");
    let own = client_from("127.0.0.1");
    let (st, cookie) = login(&own, &s, "ops", PASSWORD, None).await;
    assert_eq!(st, 200);
    let cookie = cookie.expect("a device cookie");
    let (rss0, hwm0) = s.memory_mib();
    let t0 = Instant::now();
    let mut attack = tokio::task::JoinSet::new();
    for i in 0..300 {
        let c = client_from(&format!("127.0.1.{}", 1 + i % 10));
        let url = s.url("/api/login");
        attack.spawn(async move {
            c.post(url)
                .header("content-type", "application/json")
                .body(
                    serde_json::json!({"username": "ops", "password": format!("guess {i}")})
                        .to_string(),
                )
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        });
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = Instant::now();
    let (owner, _) = login(&own, &s, "ops", PASSWORD, Some(&cookie)).await;
    let owner_ms = t.elapsed().as_millis();
    let mut codes = std::collections::BTreeMap::<u16, usize>::new();
    while let Some(r) = attack.join_next().await {
        *codes.entry(r.unwrap()).or_default() += 1;
    }
    let attack_s = t0.elapsed().as_secs_f64();
    let (rss1, hwm1) = s.memory_mib();
    // The attacker's client, with the right password: locked.
    let (guesser, _) = login(&client_from("127.0.1.1"), &s, "ops", PASSWORD, None).await;
    println!(
        "http login flood: 300 concurrent wrong logins in {attack_s:.1} s, answers {codes:?}; \
         rss {rss0:.1} -> {rss1:.1} MiB, peak {hwm0:.1} -> {hwm1:.1} MiB (+{:.1}); \
         the owner's browser signed in during it in {owner_ms} ms; the guesser's right password: {guesser}",
        hwm1 - hwm0
    );
    assert!(
        hwm1 - hwm0 < 120.0,
        "peak memory grew by {:.1} MiB",
        hwm1 - hwm0
    );
    assert!(
        codes.get(&401).copied().unwrap_or(0) <= 10,
        "too many guesses hashed: {codes:?}"
    );
    assert_eq!(owner, 200, "the owner's browser was locked out");
    assert!(owner_ms < 5_000, "the owner waited {owner_ms} ms");
    assert_eq!(guesser, 429, "a guessed right password passed the lock");
}

/// Attack 4 (guessing and enumeration): 200 wrong passwords at 40/s, then the right one
/// worked; an unknown user answered in 2 ms, a known one in 22 ms. Bound: the right password
/// is refused (429) after the guesses, the lock is audited and visible to admins, and known
/// and unknown names take the same time (medians within a factor of 2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_locks_the_name_and_names_cannot_be_told_apart_by_time() {
    let _one = ONE_AT_A_TIME.lock().await;
    let s = Srv::start("", "").await;
    s.user("view", "viewer");
    for i in 0..4 {
        s.user(&format!("known{i}"), "viewer");
    }
    let guesser = client_from("127.0.2.1");
    let t0 = Instant::now();
    let mut codes = std::collections::BTreeMap::<u16, usize>::new();
    let mut tick = tokio::time::interval(Duration::from_millis(25));
    for i in 0..200 {
        tick.tick().await;
        let (st, _) = login(&guesser, &s, "view", &format!("wrong {i}"), None).await;
        *codes.entry(st).or_default() += 1;
    }
    let (right, _) = login(&guesser, &s, "view", PASSWORD, None).await;
    let guess_s = t0.elapsed().as_secs_f64();
    let lockouts = s.json("/api/auth/lockouts").await;
    let audit = s.json("/api/audit?limit=10000").await;
    let locked_rows = audit["audit"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["action"] == "login.locked")
        .count();
    // Timing: known names (4 accounts, 4 tries each, below their lock) and unknown ones,
    // interleaved, each from a fresh address.
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for i in 0..16 {
        for (name, out) in [
            (format!("known{}", i % 4), &mut known),
            (format!("ghost{i}"), &mut unknown),
        ] {
            let c = client_from(&format!("127.0.3.{}", 1 + i));
            let t = Instant::now();
            let (st, _) = login(&c, &s, &name, "not the password", None).await;
            assert_eq!(st, 401);
            out.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    let (mk, mu) = (median(known), median(unknown));
    println!(
        "guessing: 200 wrong passwords at 40/s in {guess_s:.1} s, answers {codes:?}, then the right one: {right}; \
         {locked_rows} login.locked audit rows; sign-in of a known name {mk:.1} ms, of an unknown name {mu:.1} ms (medians of 16)"
    );
    assert_eq!(right, 429, "the right password passed after 200 guesses");
    assert!(codes.get(&401).copied().unwrap_or(0) <= 5, "{codes:?}");
    assert!(locked_rows >= 1);
    assert!(
        lockouts["http"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["subject"]["name"] == "view" && !v["locked_until_ms"].is_null()),
        "{lockouts}"
    );
    // Factor 2: the defect was a factor of 11, and two cores shared with the rest of the
    // suite move medians of 16 by more than the 1.5 measured on a quiet machine.
    assert!(
        mk / mu < 2.0 && mu / mk < 2.0,
        "known {mk:.1} ms vs unknown {mu:.1} ms: names can be told apart"
    );
}

/// Attack 5 (disk through sign-in): 20 logins with 2 MB user names added 43 MB. Bound: bodies
/// over 8 KiB are refused (413), names that cannot exist are not hashed, and 1,000 failed
/// sign-ins with 4 kB names add less than 256 KiB to the disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_login_names_do_not_grow_the_disk() {
    let _one = ONE_AT_A_TIME.lock().await;
    let s = Srv::start("", "").await;
    let disk0 = s.disk_bytes();
    let t0 = Instant::now();
    let c = client_from("127.0.4.1");
    let huge = "n".repeat(2 << 20);
    let mut too_large = 0;
    for _ in 0..20 {
        let (st, _) = login(&c, &s, &huge, "x", None).await;
        if st == 413 {
            too_large += 1;
        }
    }
    let name = "n".repeat(4000);
    let mut codes = std::collections::BTreeMap::<u16, usize>::new();
    for i in 0..1000 {
        let c = client_from(&format!("127.0.5.{}", 1 + i % 50));
        let (st, _) = login(&c, &s, &format!("{name}{i}"), "x", None).await;
        *codes.entry(st).or_default() += 1;
    }
    let attack_s = t0.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let disk1 = s.disk_bytes();
    println!(
        "login names: 20 x 2 MB names -> {too_large} refused (413); 1,000 x 4 kB names -> {codes:?} in {attack_s:.1} s; \
         disk {disk0} -> {disk1} bytes (+{})",
        disk1.saturating_sub(disk0)
    );
    assert_eq!(too_large, 20);
    assert!(
        disk1.saturating_sub(disk0) < 256 * 1024,
        "disk grew by {} bytes",
        disk1 - disk0
    );
}

/// Attack 6 (HTTP descriptors): 500 half-open connections were kept for ever; at 1,024
/// descriptors the console, sign-in and the MQTT gate stopped answering. Bound: one address
/// gets at most `http.max_connections_per_address` (128), the rest are closed at accept;
/// connections without a complete header end after `http.header_timeout_s` (2 s here); the
/// operator's sign-in and the agent work meanwhile; a page under another host name gets 421.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_http_connections_are_limited_and_time_out() {
    let _one = ONE_AT_A_TIME.lock().await;
    let s = Srv::start("argon2_memory_kib = 64\nargon2_iterations = 1", "").await;
    s.user("ops", "operator");
    let fds0 = s.open_fds();
    let t0 = Instant::now();
    let mut held = Vec::new();
    for i in 0..500 {
        // Two attacking hosts: 250 connections each.
        if let Ok(mut c) = tcp_from(&format!("127.0.6.{}", 1 + i % 2), s.http).await {
            let _ = c.write_all(b"GET /api/status HTTP/1.1\r\nHo").await;
            held.push(c);
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let fds1 = s.open_fds();
    let t = Instant::now();
    let (st, _) = login(&client_from("127.0.0.1"), &s, "ops", PASSWORD, None).await;
    let login_ms = t.elapsed().as_millis();
    assert_eq!(st, 200);
    let (_c, _el, r) = mqtt_agent("127.0.0.1", s.mqtt, "a1", "a1-secret").await;
    r.expect("the agent connects while HTTP is attacked");
    let refused = s.metric("dcim_http_connections_refused_total").await;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let mut closed = 0;
    for c in &mut held {
        if closed_by_server(c, Duration::from_millis(50)).await {
            closed += 1;
        }
    }
    let fds2 = s.open_fds();
    // DNS rebinding: a browser request under a foreign name.
    let rebind = http_client()
        .get(s.url("/api/me"))
        .header("host", "evil.example:8080")
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    let bearer_ok = http_client()
        .get(s.url("/api/me"))
        .header("host", "evil.example:8080")
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    println!(
        "http half-open: 500 connections from 2 hosts: fds {fds0} -> {fds1} -> {fds2} after the header timeout; \
         {refused} refused at accept, {closed}/{} closed; sign-in during it {login_ms} ms; \
         foreign Host: {rebind} (with a bearer token: {bearer_ok}); {:.1} s",
        held.len(),
        t0.elapsed().as_secs_f64()
    );
    assert!(refused >= 244.0, "per-address limit: {refused} refused");
    assert!(fds1 <= fds0 + 2 * 128 + 10, "descriptors {fds0} -> {fds1}");
    assert!(fds2 <= fds0 + 10, "descriptors {fds0} -> {fds2}");
    assert_eq!(closed, held.len());
    assert!(login_ms < 2_000, "sign-in took {login_ms} ms");
    assert_eq!(rebind, 421);
    assert_eq!(bearer_ok, 200);
}

/// Attack 7 (ingest): one agent publishing 25 batches of 20,000 new point names made the
/// live table quadratic; the other agents' data went 170 s stale and their events missed the
/// commit window. Bound: the flood is refused past the agent's budget of new points (counted),
/// the other agent's telemetry shows within 2 s of its publish at every moment, and its
/// events are acknowledged (committed) within 2 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_flooding_new_points_does_not_stall_another() {
    let _one = ONE_AT_A_TIME.lock().await;
    let s = Srv::start("argon2_memory_kib = 64\nargon2_iterations = 1", "").await;
    // The flood, prepared before the clock starts: 25 x 20,000 new points.
    let batches: Vec<Vec<u8>> = (0..25u64)
        .map(|b| {
            dcim_wire::encode(&dcim_wire::TelemetryBatch {
                v: dcim_wire::VERSION,
                agent: "a2".into(),
                epoch: String::new(),
                seq: b + 1,
                samples: (0..20_000)
                    .map(|i| dcim_points::Sample {
                        device: format!("crah-{b}"),
                        point: format!("p{i}"),
                        role: dcim_points::Role::new("custom.flood").unwrap(),
                        labels: Default::default(),
                        value: Some(dcim_points::Value::Number(i as f64)),
                        unit: String::new(),
                        quality: dcim_points::Quality::Good,
                        ts_ms: 1_700_000_000_000,
                    })
                    .collect(),
            })
        })
        .collect();
    let flood_bytes: usize = batches.iter().map(Vec::len).sum();
    let (fc, mut fel) = mqtt_as(s.mqtt, "a2", "a2", "a2-secret").await;
    let (tc, mut tel) = mqtt_as(s.mqtt, "a1-t", "a1", "a1-secret").await;
    let (ec, mut eel) = mqtt_as(s.mqtt, "a1-e", "a1", "a1-secret").await;
    let t0 = Instant::now();
    let flood = tokio::spawn(async move {
        for (i, b) in batches.into_iter().enumerate() {
            publish(&fc, &mut fel, "dcim/v1/s1/a2/telemetry", b)
                .await
                .unwrap_or_else(|e| panic!("flood batch {i}: {e}"));
        }
        t0.elapsed()
    });
    // a1: telemetry every 200 ms (its value is its sequence number), events every 500 ms.
    let client = http_client();
    let mut worst_stale_ms = 0u128;
    let mut worst_event_ms = 0u128;
    let mut sent_at = std::collections::HashMap::new();
    let mut seq = 0u64;
    let mut event_seq = 0u64;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut flood_done: Option<Duration> = None;
    let mut rounds_after = 0;
    while Instant::now() < deadline && rounds_after < 10 {
        seq += 1;
        sent_at.insert(seq, Instant::now());
        publish(
            &tc,
            &mut tel,
            "dcim/v1/s1/a1/telemetry",
            telemetry("a1", seq, "ups-1", seq as f64),
        )
        .await
        .unwrap();
        if seq.is_multiple_of(3) {
            event_seq += 1;
            let t = Instant::now();
            publish(
                &ec,
                &mut eel,
                "dcim/v1/s1/a1/events",
                events("a1", "rack-1", event_seq..=event_seq),
            )
            .await
            .unwrap();
            worst_event_ms = worst_event_ms.max(t.elapsed().as_millis());
        }
        // What the API shows now: the newest value seen is at most this old.
        let p = get_json(&client, &s.url("/api/points?device=ups-1"), &s.admin).await;
        let shown = p["points"][0]["value"].as_f64().unwrap_or(0.0) as u64;
        // Staleness: how long ago the first value newer than the one shown was sent.
        if shown < seq {
            worst_stale_ms = worst_stale_ms.max(sent_at[&(shown + 1)].elapsed().as_millis());
        }
        if flood_done.is_none() && flood.is_finished() {
            flood_done = Some(t0.elapsed());
        }
        if flood_done.is_some() {
            rounds_after += 1;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let flood_s = flood.await.unwrap().as_secs_f64();
    let refused = s.metric("dcim_ingest_new_points_refused_total").await;
    println!(
        "new-point flood: 25 x 20,000 new points ({:.0} MB) acknowledged in {flood_s:.1} s; {refused} samples refused past the budget; \
         the other agent: telemetry at most {worst_stale_ms} ms stale, events committed within {worst_event_ms} ms ({seq} batches, {event_seq} events)",
        flood_bytes as f64 / 1e6
    );
    assert!(flood_done.is_some(), "the flood did not finish in 60 s");
    assert!(
        refused >= 350_000.0,
        "only {refused} new points refused (budget 100,000 a minute)"
    );
    assert!(
        worst_stale_ms < 2_000,
        "the other agent's data went {worst_stale_ms} ms stale"
    );
    assert!(
        worst_event_ms < 2_000,
        "the other agent's events waited {worst_event_ms} ms for their commit"
    );
}

/// Attack 8 (incidents): notes of 2 MB were accepted; after 20 of them every incident
/// operation took up to a second. Bound: a note over 8,000 characters is refused (413), and
/// with 20 incidents holding 50 maximal notes each, an operation on another incident takes
/// less than three times as long as before them (and under 250 ms).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_incident_notes_are_refused_and_a_big_incident_slows_only_itself() {
    let _one = ONE_AT_A_TIME.lock().await;
    let s = Srv::start("argon2_memory_kib = 64\nargon2_iterations = 1", "").await;
    let c = http_client();
    let post = |path: String, body: serde_json::Value| {
        let c = c.clone();
        let url = s.url(&path);
        let admin = s.admin.clone();
        async move {
            let r = c
                .post(url)
                .bearer_auth(admin)
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .unwrap();
            let st = r.status().as_u16();
            let text = r.text().await.unwrap_or_default();
            let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            (st, v)
        }
    };
    let (st, small) = post(
        "/api/incidents".into(),
        serde_json::json!({"title": "small", "grade": 3}),
    )
    .await;
    assert_eq!(st, 201, "{small}");
    let small = small["incident"]["id"].as_u64().unwrap();
    let time_op = |n: usize| {
        let post = &post;
        async move {
            let mut ms = Vec::new();
            for i in 0..n {
                let t = Instant::now();
                let (st, _) = post(
                    format!("/api/incidents/{small}/note"),
                    serde_json::json!({"text": format!("small note {i}")}),
                )
                .await;
                assert_eq!(st, 200);
                ms.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            median(ms)
        }
    };
    let before = time_op(9).await;
    let (st, _) = post(
        format!("/api/incidents/{small}/note"),
        serde_json::json!({"text": "x".repeat(2 << 20)}),
    )
    .await;
    assert_eq!(st, 413, "a 2 MB note");
    let t0 = Instant::now();
    let note = "y".repeat(8_000);
    for i in 0..20 {
        let (_, inc) = post(
            "/api/incidents".into(),
            serde_json::json!({"title": format!("big {i}"), "grade": 3}),
        )
        .await;
        let id = inc["incident"]["id"].as_u64().unwrap();
        for _ in 0..50 {
            let (st, _) = post(
                format!("/api/incidents/{id}/note"),
                serde_json::json!({"text": note}),
            )
            .await;
            assert_eq!(st, 200);
        }
    }
    let fill_s = t0.elapsed().as_secs_f64();
    let after = time_op(9).await;
    println!(
        "incidents: a 2 MB note refused (413); 20 incidents x 50 notes of 8,000 characters written in {fill_s:.1} s; \
         a note on another incident: {before:.1} ms before, {after:.1} ms after (medians of 9)"
    );
    assert!(
        after < 3.0 * before.max(5.0) && after < 250.0,
        "an operation on a small incident went from {before:.1} to {after:.1} ms"
    );
}

/// The live stream (`/api/stream`) gave a viewer every audit row, failed sign-in names
/// included, while `/api/audit` refused it. Bound: every event kind reaches exactly the roles
/// its REST twin allows; the failed sign-in reaches no viewer, operator or fire authority.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_stream_gives_each_role_only_what_its_rest_twin_allows() {
    use dcim_server::config::Role;
    use dcim_server::state::auth::allows;
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let server = dcim_server::start(config(dir.path())).await.unwrap();
    let tokens = users_with_tokens(&server).await;
    let client = http();
    // One stream per role.
    let mut streams = Vec::new();
    for (role, token) in &tokens {
        let resp = client
            .get(url(&server, "/api/stream"))
            .bearer_auth(token)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        streams.push((*role, resp));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Every event kind, published as the server publishes it, marked so it can be found.
    for (event, _, _) in dcim_server::state::stream_access::EVENTS {
        server
            .app
            .publish_live(event, &serde_json::json!({"probe": event}));
    }
    // And a real failed sign-in (its audit row names what was typed as the user name).
    let _ = client
        .post(url(&server, "/api/login"))
        .header("content-type", "application/json")
        .body(r#"{"username":"my-secret-password","password":"x"}"#)
        .send()
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (role, resp) in streams {
        let mut got = String::new();
        let mut body = resp;
        while let Ok(Ok(Some(chunk))) =
            tokio::time::timeout(Duration::from_millis(300), body.chunk()).await
        {
            got.push_str(&String::from_utf8_lossy(&chunk));
        }
        for (event, twin, access) in dcim_server::state::stream_access::EVENTS {
            let probe = format!("event: {event}\ndata: {{\"probe\":\"{event}\"}}");
            assert_eq!(
                got.contains(&probe),
                allows(role, *access),
                "{role:?} and `{event}` (REST twin {twin})"
            );
        }
        assert_eq!(
            got.contains("my-secret-password"),
            role == Role::Admin,
            "{role:?}: the failed sign-in's name"
        );
        println!(
            "stream as {role:?}: {}",
            dcim_server::state::stream_access::EVENTS
                .iter()
                .filter(|(_, _, a)| allows(role, *a))
                .map(|(e, _, _)| *e)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    server.shutdown().await;
}
