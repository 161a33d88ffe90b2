//! Notifications on real sockets: a webhook receiver in the test, aiosmtpd (a third-party SMTP
//! server, `tests/interop/smtp/sink.py`) and mosquitto. A raised alarm reaches the webhook
//! (signed); a failing webhook opens its breaker and e-mail carries the notifications; an alarm
//! left unacknowledged is escalated to the next channel (MQTT), an acknowledged one is not, and
//! a restart does not escalate it again.

use crate::common;
use common::*;
use dcim_points::Value;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

const SECRET: &str = "webhook-secret";

/// A webhook receiver: `(signature header, JSON body)` of each POST; answers 500 while `fail`.
async fn webhook() -> (
    String,
    mpsc::UnboundedReceiver<(Option<String>, serde_json::Value)>,
    Arc<AtomicBool>,
) {
    use axum::http::{HeaderMap, StatusCode};
    let (tx, rx) = mpsc::unbounded_channel();
    let fail = Arc::new(AtomicBool::new(false));
    let f = fail.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: bytes::Bytes| {
            let tx = tx.clone();
            let f = f.clone();
            async move {
                if f.load(Ordering::SeqCst) {
                    return StatusCode::INTERNAL_SERVER_ERROR;
                }
                let sig = headers
                    .get("x-dcim-signature")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                assert_eq!(
                    sig.as_deref(),
                    Some(dcim_server::io::notify_io::sign(SECRET.as_bytes(), &body).as_str()),
                    "signature over the body"
                );
                let _ = tx.send((sig, serde_json::from_slice(&body).unwrap()));
                StatusCode::NO_CONTENT
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (url, rx, fail)
}

/// aiosmtpd on an ephemeral port: `(port, messages, process)`.
async fn smtp_sink(
    args: &[&std::path::Path],
) -> Option<(
    u16,
    mpsc::UnboundedReceiver<serde_json::Value>,
    tokio::process::Child,
)> {
    let py = std::env::var("DCIM_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = std::process::Command::new(&py)
        .args(["-c", "import aiosmtpd"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        skip_or_fail(&format!(
            "aiosmtpd cannot be imported by {py} (bash tests/setup.sh installs it)"
        ));
        return None;
    }
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/interop/smtp/sink.py"
    );
    let mut child = tokio::process::Command::new(py)
        .arg(script)
        .args(if args.is_empty() {
            &[][..]
        } else {
            &["--starttls"][..]
        })
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .expect("aiosmtpd starts within 10 s")
        .unwrap()
        .expect("aiosmtpd prints its port");
    let port = serde_json::from_str::<serde_json::Value>(&first).unwrap()["port"]
        .as_u64()
        .unwrap() as u16;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(l)) = lines.next_line().await {
            let _ = tx.send(serde_json::from_str(&l).unwrap());
        }
    });
    Some((port, rx, child))
}

async fn next<T>(rx: &mut mpsc::UnboundedReceiver<T>, what: &str) -> T {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
        .unwrap()
}

#[tokio::test]
async fn webhook_gets_the_alarm_and_email_carries_it_when_the_webhook_fails() {
    let Some((smtp_port, mut mails, sink)) = smtp_sink(&[]).await else {
        return;
    };
    let (hook_url, mut hooks, hook_fails) = webhook().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = notify_config(
        dir.path(),
        &format!(
            r#"grade2 = ["hook"]
[[notify.channels]]
name = "hook"
kind = "webhook"
url = "{hook_url}"
secret = "{SECRET}"
fallback = "mail"
timeout_ms = 2000
breaker = {{ consecutive_failures = 1, cool_down_ms = 600000 }}
[[notify.channels]]
name = "mail"
kind = "email"
url = "smtp://127.0.0.1:{smtp_port}"
from = "dcim@example.org"
to = ["ops@example.org"]
helo_name = "dcim.example.org"
"#
        ),
    );
    let (server, client, Tokens { admin, .. }) = started(cfg).await;
    let mut a1 = Agent::connect(&server, "a1").await;
    let topic = "dcim/v1/s1/a1/telemetry";

    // 1. A grade-2 alarm: the webhook gets it, signed.
    a1.send(
        topic,
        batch(
            1,
            vec![sample_now("ups-1", "ups.on_battery", Value::Bool(true))],
        ),
    )
    .await;
    let (_, body) = next(&mut hooks, "the webhook notification").await;
    assert_eq!(body["alarm"], "ups-on-battery:ups-1", "{body}");
    assert_eq!(body["grade"], 2);
    assert_eq!(body["channel"], "hook");
    assert!(body["subject"].as_str().unwrap().contains("[grade 2]"));

    // 2. The webhook fails: its breaker opens and the e-mail fallback carries the alarm.
    hook_fails.store(true, Ordering::SeqCst);
    a1.send(
        topic,
        batch(
            2,
            vec![sample_now("rack-1", "fire.stage", Value::Number(1.0))],
        ),
    )
    .await;
    let mail = next(&mut mails, "the fallback e-mail").await;
    assert_eq!(mail["from"], "dcim@example.org");
    assert_eq!(mail["to"], serde_json::json!(["ops@example.org"]));
    assert_eq!(mail["helo"], "dcim.example.org");
    let data = mail["data"].as_str().unwrap();
    assert!(data.contains("Subject: [grade 2]"), "{data}");
    assert!(data.contains("fire-prealarm:rack-1"), "{data}");

    // 3. With the breaker open the webhook is not even tried: straight to e-mail.
    hook_fails.store(false, Ordering::SeqCst);
    a1.send(
        topic,
        batch(
            3,
            vec![sample_now("rack-2", "fire.stage", Value::Number(1.0))],
        ),
    )
    .await;
    let mail = next(&mut mails, "the second e-mail").await;
    assert!(
        mail["data"]
            .as_str()
            .unwrap()
            .contains("fire-prealarm:rack-2"),
        "{mail}"
    );
    assert!(
        hooks.try_recv().is_err(),
        "the open breaker kept the webhook out"
    );

    // Counted and on the record.
    eventually_metric(
        "notification metrics",
        &client,
        &server,
        &admin,
        "dcim_notify_sent_total",
        3.0,
    )
    .await;
    assert_metrics(
        &client,
        &server,
        &admin,
        &[
            ("dcim_notify_failures_total", 1.0),
            ("dcim_notify_fallbacks_total", 2.0),
            ("dcim_notify_attempts_total", 4.0),
        ],
    )
    .await;
    let notes = || async {
        let audit = get_json(&client, &url(&server, "/api/audit"), &admin).await;
        audit["audit"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["actor"] == "system:notify")
            .map(|a| {
                (
                    a["action"].as_str().unwrap().to_owned(),
                    a["target"].as_str().unwrap().to_owned(),
                    a["detail"]["channel"].as_str().unwrap().to_owned(),
                )
            })
            .collect::<Vec<(String, String, String)>>()
    };
    // The audit record of a send is written right after it is counted.
    eventually("four notification audit records", || async {
        notes().await.len() == 4
    })
    .await;
    let notes = notes().await;
    let s = |a: &str, t: &str, c: &str| (a.to_owned(), t.to_owned(), c.to_owned());
    assert_eq!(
        notes,
        vec![
            s("notify.sent", "alarm/ups-on-battery:ups-1", "hook"),
            s("notify.failed", "alarm/fire-prealarm:rack-1", "hook"),
            s("notify.sent", "alarm/fire-prealarm:rack-1", "mail"),
            s("notify.sent", "alarm/fire-prealarm:rack-2", "mail"),
        ]
    );
    drop(a1);
    server.shutdown().await;
    // kill_on_drop ends aiosmtpd.
    drop(sink);
}

/// mosquitto on a free port (own config, anonymous, loopback only).
async fn mosquitto(dir: &std::path::Path) -> Option<(u16, tokio::process::Child)> {
    let Some(bin) = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
    else {
        skip_or_fail("mosquitto is not installed (apt-get install mosquitto)");
        return None;
    };
    let port = free_port();
    let conf = dir.join("mosquitto.conf");
    let mut text = String::new();
    if std::env::var("USER").as_deref() == Ok("root") || is_root() {
        text.push_str("user root\n");
    }
    text.push_str(&format!(
        "persistence false\nallow_anonymous true\nlistener {port} 127.0.0.1\n"
    ));
    std::fs::write(&conf, text).unwrap();
    let child = tokio::process::Command::new(bin)
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    eventually("mosquitto up", || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
    })
    .await;
    Some((port, child))
}

#[tokio::test]
async fn unacknowledged_alarm_is_escalated_to_mqtt_and_an_acknowledged_one_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let Some((mq_port, _mosquitto)) = mosquitto(dir.path()).await else {
        return;
    };
    // A subscriber on mosquitto.
    let mut o = rumqttc::MqttOptions::new("escalation-watch", "127.0.0.1", mq_port);
    o.set_keep_alive(Duration::from_secs(5));
    let (sub, mut sub_el) = rumqttc::AsyncClient::new(o, 10);
    sub.subscribe("ops/escalations", rumqttc::QoS::AtLeastOnce)
        .await
        .unwrap();
    let (esc_tx, mut escalations) = mpsc::unbounded_channel();
    let (subscribed_tx, mut subscribed) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            match sub_el.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))) => {
                    let _ = subscribed_tx.send(());
                }
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                    let v: serde_json::Value = serde_json::from_slice(&p.payload).unwrap();
                    let _ = esc_tx.send(v);
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    next(&mut subscribed, "the SUBACK").await;

    let (hook_url, mut hooks, _) = webhook().await;
    let cfg = notify_config(
        dir.path(),
        &format!(
            r#"grade2 = ["hook"]
[[notify.channels]]
name = "hook"
kind = "webhook"
url = "{hook_url}"
secret = "{SECRET}"
[[notify.channels]]
name = "pager"
kind = "mqtt"
url = "mqtt://127.0.0.1:{mq_port}"
topic = "ops/escalations"
[[notify.escalation]]
after_s = 1.5
channel = "pager"
to = "shift lead"
"#
        ),
    );
    let (server, client, t) = started(cfg.clone()).await;
    let (operator, admin) = (t.operator, t.admin);
    let mut a1 = Agent::connect(&server, "a1").await;
    a1.send(
        "dcim/v1/s1/a1/telemetry",
        batch(
            1,
            vec![
                sample_now("ups-1", "ups.on_battery", Value::Bool(true)),
                sample_now("rack-1", "fire.stage", Value::Number(1.0)),
            ],
        ),
    )
    .await;
    let mut first = vec![
        next(&mut hooks, "first notification").await.1["alarm"].clone(),
        next(&mut hooks, "second notification").await.1["alarm"].clone(),
    ];
    first.sort_by_key(|v| v.to_string());
    assert_eq!(
        first,
        vec![
            serde_json::json!("fire-prealarm:rack-1"),
            serde_json::json!("ups-on-battery:ups-1")
        ]
    );
    // The operator acknowledges one of them before the escalation step.
    let r = client
        .post(url(&server, "/api/alarms/fire-prealarm:rack-1/ack"))
        .bearer_auth(&operator)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let esc = next(&mut escalations, "the escalation on MQTT").await;
    assert_eq!(esc["alarm"], "ups-on-battery:ups-1", "{esc}");
    assert_eq!(esc["escalation"], 0);
    assert_eq!(esc["channel"], "pager");
    assert!(
        esc["subject"]
            .as_str()
            .unwrap()
            .starts_with("[escalation 1]"),
        "{esc}"
    );
    assert!(esc["body"].as_str().unwrap().contains("to: shift lead"));
    // Only one step is configured: nothing more, and nothing for the acknowledged alarm.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(escalations.try_recv().is_err());
    assert_eq!(
        metric(&client, &server, &admin, "dcim_notify_escalations_total").await,
        1.0
    );
    drop(a1);
    server.shutdown().await;

    // After a restart the alarm is still unacknowledged (restored), but its escalation step
    // was sent already: it is not sent again, and nothing is re-announced.
    let server = dcim_server::start(cfg).await.unwrap();
    {
        let f = server.app.plant.facility.lock().await;
        let a = f.engine.get("ups-on-battery:ups-1").unwrap();
        assert_eq!(a.state(), dcim_alarms::AlarmState::Unacknowledged);
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(escalations.try_recv().is_err(), "escalated twice");
    assert!(hooks.try_recv().is_err(), "announced twice");
    server.shutdown().await;
}

#[tokio::test]
async fn email_over_starttls_trusts_the_configured_ca_only() {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, SanType};
    // A throwaway CA and a certificate for 127.0.0.1.
    let pki = tempfile::tempdir().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.subject_alt_names = vec![SanType::IpAddress("127.0.0.1".parse().unwrap())];
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, &ca).unwrap();
    let (ca_pem, cert_pem, key_pem) = (
        pki.path().join("ca.pem"),
        pki.path().join("srv.pem"),
        pki.path().join("srv.key"),
    );
    std::fs::write(&ca_pem, ca.pem()).unwrap();
    std::fs::write(&cert_pem, cert.pem()).unwrap();
    std::fs::write(&key_pem, key.serialize_pem()).unwrap();
    let Some((smtp_port, mut mails, sink)) = smtp_sink(&[&cert_pem, &key_pem]).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = notify_config(
        dir.path(),
        &format!(
            r#"grade2 = ["mail"]
[[notify.channels]]
name = "mail"
kind = "email"
url = "smtp+starttls://127.0.0.1:{smtp_port}"
ca_file = "{}"
from = "dcim@example.org"
to = ["ops@example.org"]
"#,
            ca_pem.display()
        ),
    );
    let server = dcim_server::start(cfg).await.unwrap();
    let mut a1 = Agent::connect(&server, "a1").await;
    a1.send(
        "dcim/v1/s1/a1/telemetry",
        batch(
            1,
            vec![sample_now("ups-1", "ups.on_battery", Value::Bool(true))],
        ),
    )
    .await;
    let mail = next(&mut mails, "the e-mail over STARTTLS").await;
    assert_eq!(mail["tls"], true, "{mail}");
    assert!(
        mail["data"]
            .as_str()
            .unwrap()
            .contains("ups-on-battery:ups-1"),
        "{mail}"
    );
    drop(a1);
    server.shutdown().await;
    drop(sink);
}
