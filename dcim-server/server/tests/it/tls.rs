//! TLS on the public listeners (HTTPS for the API, MQTT over TLS at the broker gate) with a
//! throwaway CA made in the test, and the embedded broker's internal port, which must not let
//! anyone but the server process in.

use crate::common;
use common::*;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, SanType};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, TlsConfiguration, Transport};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A CA and certificates it issued, written as PEM files.
struct Pki {
    dir: tempfile::TempDir,
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(rcgen::DnType::CommonName, format!("{name} test CA"));
        let ca = CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap();
        let pki = Pki {
            dir: tempfile::tempdir().unwrap(),
            ca,
        };
        std::fs::write(pki.path("ca.pem"), pki.ca.pem()).unwrap();
        pki
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Issues a certificate (server: for 127.0.0.1 and localhost; client: CN `name`) and
    /// writes `{name}.pem` and `{name}.key`.
    fn issue(&self, name: &str, server: bool) -> (PathBuf, PathBuf) {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, name);
        if server {
            p.subject_alt_names = vec![
                SanType::IpAddress("127.0.0.1".parse().unwrap()),
                SanType::DnsName("localhost".try_into().unwrap()),
            ];
            p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        } else {
            p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        }
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &self.ca).unwrap();
        let (c, k) = (
            self.path(&format!("{name}.pem")),
            self.path(&format!("{name}.key")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }

    fn ca_file(&self) -> PathBuf {
        self.path("ca.pem")
    }
}

fn client_tls(ca: &Path, client: Option<(PathBuf, PathBuf)>) -> rustls::ClientConfig {
    // A client set up as the edge agent's uplink is (ring provider, the CA file as the only
    // root, an optional client certificate); the agent's own `uplink::tls_config` is tested
    // against a TLS broker in edge-agent/agent/tests/it/tls_auth.rs. The server links no agent.
    let mut roots = rustls::RootCertStore::empty();
    for c in dcim_server::base::tls::read_certs("ca_file", ca).unwrap() {
        roots.add(c).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    match client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder
            .with_client_auth_cert(
                dcim_server::base::tls::read_certs("cert_file", &cert).unwrap(),
                dcim_server::base::tls::read_key("key_file", &key).unwrap(),
            )
            .unwrap(),
    }
}

fn https_client(tls: rustls::ClientConfig) -> reqwest::Client {
    install_crypto();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Connects an agent over TLS; returns once the CONNACK arrived (or the refusal).
async fn mqtts_agent(
    port: u16,
    id: &str,
    password: &str,
    tls: rustls::ClientConfig,
) -> (AsyncClient, EventLoop, Result<(), String>) {
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    o.set_credentials(id, password);
    o.set_keep_alive(Duration::from_secs(5));
    o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
        Arc::new(tls),
    )));
    connect_with(o).await
}

fn cookie<'a>(resp: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    resp.headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&format!("{name}=")))
}

#[tokio::test]
async fn https_api_and_mqtt_over_tls_through_the_gate() {
    let pki = Pki::new("main");
    let (cert, key) = pki.issue("server", true);
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.http.tls = Some(dcim_server::config::HttpTlsConfig {
        cert_file: cert.clone(),
        key_file: key.clone(),
        client_ca_file: None,
        hsts_max_age_s: 600,
    });
    config.broker.tls = Some(dcim_server::config::BrokerTlsConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        cert_file: cert,
        key_file: key,
        client_ca_file: None,
        plain_listener: true,
    });
    let server = dcim_server::start(config).await.unwrap();
    let tokens = users_with_tokens(&server).await;
    let admin = tokens[2].1.clone();
    let base = format!("https://127.0.0.1:{}", server.http_addr.port());
    let client = https_client(client_tls(&pki.ca_file(), None));

    // Login over HTTPS: Secure cookies (implied by [http.tls]) and HSTS.
    let r = client
        .post(format!("{base}/api/login"))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(serde_json::json!({"username": "u-admin", "password": PASSWORD}).to_string())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "login: {}", r.status());
    assert_eq!(
        r.headers()
            .get("strict-transport-security")
            .and_then(|v| v.to_str().ok()),
        Some("max-age=600")
    );
    let session = cookie(&r, "dcim_session")
        .expect("session cookie")
        .to_owned();
    assert!(session.contains("; Secure"), "{session}");
    assert!(cookie(&r, "dcim_csrf").unwrap().contains("; Secure"));
    // An API call with that session, over TLS.
    let pair = session.split(';').next().unwrap().to_owned();
    let me = client
        .get(format!("{base}/api/me"))
        .header(reqwest::header::COOKIE, pair)
        .body_text()
        .await;
    let me: serde_json::Value = serde_json::from_str(&me).unwrap();
    assert_eq!(me["user"], "u-admin");

    // Plain HTTP to the HTTPS port gets no HTTP answer.
    let plain = http()
        .get(format!(
            "http://127.0.0.1:{}/health",
            server.http_addr.port()
        ))
        .send()
        .await;
    assert!(plain.is_err(), "plain HTTP answered: {plain:?}");
    // A client that does not trust the server's CA refuses it.
    let other = Pki::new("other");
    let r = https_client(client_tls(&other.ca_file(), None))
        .get(format!("{base}/health"))
        .send()
        .await;
    assert!(r.is_err(), "certificate of an unknown CA accepted");

    // MQTT over TLS: a1 publishes its own telemetry through the gate; it reaches the API.
    let mqtts = server.mqtts_addr.expect("TLS listener").port();
    let tls = client_tls(&pki.ca_file(), None);
    let (_c, _el, r) = mqtts_agent(mqtts, "a1", "wrong", tls.clone()).await;
    assert!(r.is_err(), "bad password accepted over TLS");
    let (c, el, r) = mqtts_agent(mqtts, "a1", "a1-secret", tls.clone()).await;
    r.unwrap();
    let mut a1 = Agent { c, el };
    a1.send("dcim/v1/s1/a1/telemetry", telemetry("a1", 1, "ups-1", 41.0))
        .await;
    let points = |device: &'static str| {
        let (client, base, admin) = (client.clone(), base.clone(), admin.clone());
        async move {
            get_json(
                &client,
                &format!("{base}/api/points?device={device}"),
                &admin,
            )
            .await["points"]
                .as_array()
                .unwrap()
                .len()
        }
    };
    eventually("a1's point over TLS", || async {
        points("ups-1").await == 1
    })
    .await;

    // The ACL still holds over TLS: publishing as a2 closes the connection.
    let r = a1
        .try_send("dcim/v1/s1/a2/telemetry", telemetry("a2", 1, "crah-1", 1.0))
        .await;
    assert!(r.is_err(), "publish as a2 over TLS was acknowledged");
    let metrics = client
        .get(format!("{base}/metrics"))
        .bearer_auth(&admin)
        .body_text()
        .await;
    assert!(
        metrics.lines().any(|l| l == "dcim_acl_rejections_total 1"),
        "{metrics}"
    );
    assert_eq!(points("crah-1").await, 0);

    // Plain MQTT to the TLS port is not an MQTT session.
    let (_c, _el, r) = mqtt_agent("127.0.0.1", mqtts, "a1", "a1-secret").await;
    assert!(r.is_err(), "plain MQTT accepted on the TLS port");

    // A third-party client: mosquitto_pub with --cafile.
    mosquitto_pub_over_tls(&pki, mqtts, &dir).await;
    if which("mosquitto_pub") {
        eventually("mosquitto_pub's point over TLS", || async {
            points("rack-9").await == 1
        })
        .await;
    }
    server.shutdown().await;
}

fn which(cmd: &str) -> bool {
    std::process::Command::new(cmd)
        .arg("--help")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok()
}

async fn mosquitto_pub_over_tls(pki: &Pki, port: u16, dir: &tempfile::TempDir) {
    if !which("mosquitto_pub") {
        let msg = "mosquitto_pub not found (Debian package mosquitto-clients; bash tests/setup.sh)";
        if std::env::var("DCIM_REQUIRE_PEERS").as_deref() == Ok("1") {
            panic!("{msg}");
        }
        println!("skipped: {msg}");
        return;
    }
    let payload = dir.path().join("telemetry.json");
    std::fs::write(&payload, telemetry("a1", 2, "rack-9", 3.0)).unwrap();
    let run = |ca: PathBuf| {
        let mut cmd = tokio::process::Command::new("mosquitto_pub");
        cmd.args(["-h", "127.0.0.1", "-p", &port.to_string(), "--cafile"])
            .arg(ca)
            .args(["-u", "a1", "-P", "a1-secret", "-i", "a1-tp", "-q", "1"])
            .args(["-t", "dcim/v1/s1/a1/telemetry", "-f"])
            .arg(&payload)
            .kill_on_drop(true);
        async move {
            tokio::time::timeout(Duration::from_secs(10), cmd.output())
                .await
                .expect("mosquitto_pub did not finish in 10 s")
                .unwrap()
        }
    };
    // With a CA that did not issue the server's certificate: refused.
    let other = Pki::new("other");
    let out = run(other.ca_file()).await;
    assert!(!out.status.success(), "mosquitto_pub trusted an unknown CA");
    let out = run(pki.ca_file()).await;
    assert!(
        out.status.success(),
        "mosquitto_pub over TLS: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn client_certificates_when_a_client_ca_is_set() {
    let pki = Pki::new("mtls");
    let (cert, key) = pki.issue("server", true);
    let agent_cert = pki.issue("a1", false);
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.http.tls = Some(dcim_server::config::HttpTlsConfig {
        cert_file: cert.clone(),
        key_file: key.clone(),
        client_ca_file: Some(pki.ca_file()),
        hsts_max_age_s: 0,
    });
    config.broker.tls = Some(dcim_server::config::BrokerTlsConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        cert_file: cert,
        key_file: key,
        client_ca_file: Some(pki.ca_file()),
        plain_listener: false,
    });
    let server = dcim_server::start(config).await.unwrap();
    assert_eq!(server.mqtt_addr, None, "plain listener turned off");
    let base = format!("https://127.0.0.1:{}", server.http_addr.port());

    // HTTPS: without a client certificate the handshake fails; with one, it works (no HSTS).
    let r = https_client(client_tls(&pki.ca_file(), None))
        .get(format!("{base}/health"))
        .send()
        .await;
    assert!(r.is_err(), "no client certificate, yet answered");
    let r = https_client(client_tls(&pki.ca_file(), Some(agent_cert.clone())))
        .get(format!("{base}/health"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    assert!(r.headers().get("strict-transport-security").is_none());

    // MQTT: the certificate is required in addition to the password.
    let mqtts = server.mqtts_addr.unwrap().port();
    let (_c, _el, r) =
        mqtts_agent(mqtts, "a1", "a1-secret", client_tls(&pki.ca_file(), None)).await;
    assert!(r.is_err(), "MQTT over TLS without a client certificate");
    let (_c, _el, r) = mqtts_agent(
        mqtts,
        "a1",
        "a1-secret",
        client_tls(&pki.ca_file(), Some(agent_cert)),
    )
    .await;
    r.unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn a_bad_certificate_path_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.http.tls = Some(dcim_server::config::HttpTlsConfig {
        cert_file: dir.path().join("missing.pem"),
        key_file: dir.path().join("missing.key"),
        client_ca_file: None,
        hsts_max_age_s: 0,
    });
    let err = match dcim_server::start(config).await {
        Ok(_) => panic!("started without its certificate"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        err.contains("http.tls.cert_file") && err.contains("missing.pem"),
        "{err}"
    );
}

/// The internal port of the embedded broker accepts only the server's own client and the gate:
/// a local client with a valid agent password cannot use it to skip the gate's topic checks.
#[tokio::test]
async fn broker_internal_port_refuses_everyone_but_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = dcim_server::start(config(dir.path())).await.unwrap();
    let internal = server.mqtt_internal_addr.expect("embedded broker");
    let public = server.mqtt_addr.unwrap();
    assert_ne!(internal.port(), public.port());
    assert!(internal.ip().is_loopback());

    // Through the gate, a1 may publish (the gate's relayed login is accepted internally).
    let mut a1 = Agent::connect_to("127.0.0.1", public.port(), "a1").await;
    a1.send("dcim/v1/s1/a1/telemetry", telemetry("a1", 1, "ups-1", 1.0))
        .await;

    // Directly on the internal port, a1's valid credentials are refused, so it cannot publish
    // as a2 there.
    let (c, el, r) = mqtt_agent("127.0.0.1", internal.port(), "a1", "a1-secret").await;
    assert!(
        r.is_err(),
        "agent credentials accepted on the internal port"
    );
    let mut direct = Agent { c, el };
    let r = direct
        .try_send("dcim/v1/s1/a2/telemetry", telemetry("a2", 1, "crah-1", 1.0))
        .await;
    assert!(r.is_err(), "publish on the internal port acknowledged");
    // Nor do the gate's or the server's user names with a guessed password, or no login.
    for user in ["dcim-gate", "dcim-server"] {
        let (_c, _el, r) = mqtt_agent("127.0.0.1", internal.port(), user, "guess").await;
        assert!(r.is_err(), "{user} with a wrong password accepted");
    }
    let mut o = MqttOptions::new("anon", "127.0.0.1", internal.port());
    o.set_keep_alive(Duration::from_secs(5));
    let (_c, mut el) = AsyncClient::new(o, 10);
    let anon = tokio::time::timeout(Duration::from_secs(5), el.poll())
        .await
        .expect("no answer from the internal port");
    assert!(
        !matches!(anon, Ok(Event::Incoming(Packet::ConnAck(ref a))) if a.code == rumqttc::ConnectReturnCode::Success),
        "anonymous login accepted on the internal port: {anon:?}"
    );

    // The server's client id cannot be taken over through the gate.
    let mut o = MqttOptions::new("dcim-server", "127.0.0.1", public.port());
    o.set_credentials("a1", "a1-secret");
    let (_c, mut el) = AsyncClient::new(o, 10);
    let r = tokio::time::timeout(Duration::from_secs(5), el.poll())
        .await
        .expect("no answer from the gate");
    assert!(r.is_err(), "the server's client id was accepted: {r:?}");

    // Only a1's own sample arrived.
    let tokens = users_with_tokens(&server).await;
    let client = http();
    let viewer = tokens[0].1.clone();
    let devices = || async {
        let pts = get_json(&client, &url(&server, "/api/points"), &viewer).await;
        pts["points"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["device"].as_str().map(str::to_owned))
            .collect::<Vec<_>>()
    };
    eventually("a1's point", || async { !devices().await.is_empty() }).await;
    assert_eq!(devices().await, ["ups-1"]);
    server.shutdown().await;
}
