//! TLS (server verification against a CA file, client certificate) and username/password
//! against mosquitto; a wrong password keeps the link down and the data in the spool.

use crate::common;

use common::*;
use dcim_edge_agent::config;
use dcim_spool::Class;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn make_certs(dir: &Path) -> bool {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/interop/mqtt/make-test-certs.sh"
    );
    let ok = Command::new("bash")
        .arg(script)
        .arg(dir)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        if std::env::var("DCIM_REQUIRE_PEERS").as_deref() == Ok("1") {
            panic!("openssl could not create the test certificates");
        }
        println!("skipped: openssl could not create the test certificates");
    }
    ok
}

fn agent_config(dir: &Path, tls_port: u16, password: &str) -> config::Config {
    let text = format!(
        r#"
site = "s"
agent = "tls-agent"
log_level = "warn"
[spool]
dir = "spool-{password}"
[batch]
max_samples = 10
max_delay_ms = 20
[[broker]]
name = "center"
url = "mqtts://127.0.0.1:{tls_port}"
ca_file = "certs/ca.pem"
cert_file = "certs/client.pem"
key_file = "certs/client.key"
username = "agent"
password = "{password}"
backoff_initial_ms = 50
backoff_max_ms = 200
[[device]]
id = "gen"
synthetic = {{ points = 2, period_ms = 20, event_every = 1 }}
"#
    );
    config::parse("agent.toml", &text, dir).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tls_with_client_certificate_and_password() {
    if !mosquitto_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    if !make_certs(&certs) {
        return;
    }
    let passwd = dir.path().join("passwd");
    let st = Command::new("mosquitto_passwd")
        .args(["-b", "-c"])
        .arg(&passwd)
        .args(["agent", "s3cret"])
        .status()
        .expect("mosquitto_passwd");
    assert!(st.success());
    let (plain_port, tls_port) = (free_port(), free_port());
    // The plain listener (anonymous) is for the test's subscriber only.
    let extra = format!(
        "allow_anonymous true\n\
         listener {tls_port} 127.0.0.1\nallow_anonymous false\npassword_file {}\n\
         cafile {c}/ca.pem\ncertfile {c}/server.pem\nkeyfile {c}/server.key\nrequire_certificate true\n",
        passwd.display(),
        c = certs.display()
    );
    let broker = Mosquitto::start_full(
        &dir.path().join("broker"),
        plain_port,
        "per_listener_settings true\n",
        &extra,
    );
    let (got, sub) = subscribe(plain_port, "tls-test-sub").await;

    // Right password: events flow over TLS.
    let agent = RunningAgent::start_config(agent_config(dir.path(), tls_port, "s3cret"));
    let flowing = wait_until(Duration::from_secs(10), || sequences(&got).0.len() >= 10).await;
    agent.stop().await;
    assert!(flowing, "no events over TLS; broker log:\n{}", broker.log());

    // Wrong password: refused, nothing acknowledged, the spool keeps it all.
    let agent = RunningAgent::start_config(agent_config(dir.path(), tls_port, "wrong"));
    let shared = agent.shared.clone();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let (acked, pending) = shared.with_spool(|s| {
        (
            s.acked("center", Class::Event),
            s.pending_for("center", Class::Event),
        )
    });
    agent.stop().await;
    sub.abort();
    assert_eq!(acked, 0);
    assert!(
        pending >= 10,
        "events are kept while the broker refuses us: {pending}"
    );
}
