//! SIGHUP reload of the real binary (`dcim-server --config FILE`, as systemd's `ExecReload`
//! sends it): the notification target and a new user are applied without a restart, a
//! restart-only section is named in the log, and a broken file changes nothing.
//!
//! Hazards: an operator changes the on-call webhook, reloads, and alarms keep going to the old
//! one; a reload that silently ignores a changed listener or agent list, so the operator
//! believes it took effect; a typo in the file that, on reload, leaves the server without
//! notifications.

use crate::common;
use common::*;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

struct Daemon {
    child: Child,
    log: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    fn start(config: &std::path::Path) -> Daemon {
        let mut child = Command::new(env!("CARGO_BIN_EXE_dcim-server"))
            .arg("--config")
            .arg(config)
            .env("DCIM_LATE_PASSWORD", "late-user-password-1")
            .env_remove("RUST_LOG")
            .env_remove("DCIM_LOG_FORMAT")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the dcim-server binary");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let l = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                match serde_json::from_str(&line) {
                    Ok(v) => l.lock().unwrap().push(v),
                    Err(_) => eprintln!("server: {line}"),
                }
            }
        });
        Daemon { child, log }
    }

    /// The first log record whose message contains `what`, waiting up to 15 s.
    async fn wait_log(&self, what: &str) -> serde_json::Value {
        self.wait_for(what, |m| m.contains(what)).await
    }

    /// The first log record whose message is `message`, waiting up to 15 s.
    async fn wait_exact(&self, message: &str) -> serde_json::Value {
        self.wait_for(message, |m| m == message).await
    }

    async fn wait_for(&self, what: &str, f: impl Fn(&str) -> bool) -> serde_json::Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(v) = self
                .log
                .lock()
                .unwrap()
                .iter()
                .find(|v| v["fields"]["message"].as_str().is_some_and(&f))
            {
                return v.clone();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no log record `{what}`: {:#?}",
                self.log.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// How many log records have exactly this message.
    fn count_log(&self, message: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|v| v["fields"]["message"] == message)
            .count()
    }

    fn hangup(&self) {
        // The shell's builtin kill: no procps needed.
        let ok = Command::new("sh")
            .arg("-c")
            .arg(format!("kill -HUP {}", self.child.id()))
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -HUP");
    }
}

/// A webhook receiver: the `alarm` of each POST.
async fn hook() -> (String, mpsc::UnboundedReceiver<String>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::Json<serde_json::Value>| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(body["alarm"].as_str().unwrap_or_default().to_string());
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    (url, rx)
}

fn config_text(dir: &std::path::Path, hook_url: &str, extra: &str) -> String {
    format!(
        r#"data_dir = "{data}"
{extra}
[http]
listen = "127.0.0.1:0"
session_ttl_s = 43200
[broker]
listen = "127.0.0.1:0"
[auth]
argon2_memory_kib = 64
argon2_iterations = 1
[log]
format = "json"
[[agents]]
id = "a1"
site = "s1"
password = "a1-secret"
devices = ["ups-*"]
[notify]
enabled = true
tick_ms = 200
grade2 = ["hook"]
[[notify.channels]]
name = "hook"
kind = "webhook"
url = "{hook_url}"
timeout_ms = 2000
"#,
        data = dir.join("data").display()
    )
}

async fn next(rx: &mut mpsc::UnboundedReceiver<String>, what: &str) -> String {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
        .unwrap()
}

async fn login(client: &reqwest::Client, base: &str, user: &str, pw: &str) -> u16 {
    login_response(client, base, user, pw)
        .await
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_applies_the_new_target_and_user_and_names_what_needs_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (old_url, mut old_hook) = hook().await;
    let (new_url, mut new_hook) = hook().await;
    let path = dir.path().join("server.toml");
    std::fs::write(&path, config_text(dir.path(), &old_url, "")).unwrap();
    let server = Daemon::start(&path);
    let started = server.wait_log("dcim-server started").await;
    let fields = &started["fields"];
    let base = format!("http://{}", fields["http_addr"].as_str().unwrap());
    let mqtt: std::net::SocketAddr = fields["mqtt"]
        .as_str()
        .and_then(|s| s.strip_prefix("Some(")?.strip_suffix(')'))
        .unwrap_or_else(|| panic!("broker address in {started}"))
        .parse()
        .unwrap();
    let client = http();
    let (c, mut el, r) = mqtt_agent(&mqtt.ip().to_string(), mqtt.port(), "a1", "a1-secret").await;
    r.unwrap();
    let topic = "dcim/v1/s1/a1/telemetry";

    // Before: the alarm goes to the old target; the user to come cannot log in.
    publish(&c, &mut el, topic, on_battery(1, "ups-1"))
        .await
        .unwrap();
    assert_eq!(
        next(&mut old_hook, "the old target").await,
        "ups-on-battery:ups-1"
    );
    assert_eq!(
        login(&client, &base, "late", "late-user-password-1").await,
        401
    );

    // The file changes: a new target, a new user, and a restart-only setting.
    let users =
        "[[users]]\nname = \"late\"\nrole = \"viewer\"\npassword_env = \"DCIM_LATE_PASSWORD\"\n";
    let changed = config_text(dir.path(), &new_url, "")
        .replace("session_ttl_s = 43200", "session_ttl_s = 3600")
        + users;
    std::fs::write(&path, changed).unwrap();
    server.hangup();
    let restart = server
        .wait_log("these sections changed and need a restart")
        .await;
    assert_eq!(restart["level"], "WARN", "{restart}");
    assert_eq!(
        restart["fields"]["sections"], "[\"http\"]",
        "the restart-only section is named: {restart}"
    );
    let reloaded = server.wait_exact("configuration reloaded").await;
    assert_eq!(reloaded["fields"]["notify_changed"], true, "{reloaded}");
    assert_eq!(reloaded["fields"]["users_created"], 1, "{reloaded}");

    // After: the new user logs in; the next alarm goes to the new target and not the old.
    assert_eq!(
        login(&client, &base, "late", "late-user-password-1").await,
        200
    );
    publish(&c, &mut el, topic, on_battery(2, "ups-2"))
        .await
        .unwrap();
    assert_eq!(
        next(&mut new_hook, "the new target").await,
        "ups-on-battery:ups-2"
    );
    assert!(old_hook.try_recv().is_err(), "the old target got it too");

    // A broken file: the reload fails, is logged, and changes nothing.
    std::fs::write(&path, "[notify\nenabled = maybe\n").unwrap();
    server.hangup();
    let failed = server.wait_log("configuration reload failed").await;
    assert_eq!(failed["level"], "ERROR", "{failed}");
    assert!(
        failed["fields"]["message"]
            .as_str()
            .unwrap()
            .contains("server.toml"),
        "the error names the file: {failed}"
    );
    publish(&c, &mut el, topic, on_battery(3, "ups-3"))
        .await
        .unwrap();
    assert_eq!(
        next(&mut new_hook, "the target kept after a failed reload").await,
        "ups-on-battery:ups-3"
    );
    assert_eq!(server.count_log("configuration reloaded"), 1);
    drop(c);
}
