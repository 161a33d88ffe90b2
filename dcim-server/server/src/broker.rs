//! The embedded MQTT broker: rumqttd 0.20 on a loopback-only internal port, behind an
//! access-control gate that owns the public port.
//!
//! rumqttd 0.20 authenticates (username/password per connection) but has no topic ACLs
//! (upstream issues #495 and #1005; PR #1071 is not released), and its in-process link does not
//! tell who published a message. So agents never reach rumqttd directly: the gate accepts their
//! TCP connection, reads the MQTT 3.1.1 CONNECT, checks the agent's credentials, its client id
//! and its will topic, and then relays frames both ways, checking every PUBLISH and SUBSCRIBE
//! that the agent sends:
//!
//! - PUBLISH only to `dcim/v1/{its site}/{its id}/{telemetry|events|state|cmd_result}`;
//! - SUBSCRIBE only to filters under `dcim/v1/{its site}/{its id}/cmd/`.
//!
//! A violation is counted, audited and the connection is closed (MQTT 3.1.1 has no way to refuse
//! one PUBLISH, and silently dropping a QoS 1 message would leave the agent retrying forever).
//! The device ownership of each sample/event is checked at ingest, where the payload is decoded.
//!
//! The internal port (rumqttd's own listener, 127.0.0.1 on a random port) accepts only two
//! per-process random credentials that never leave the server process: the server's command
//! client, and the gate. After the gate has checked an agent's login it replaces the CONNECT's
//! user name and password with the gate's credential before relaying it, so agent passwords are
//! not valid on the internal port: a local process that knows an agent's password and connects
//! to the internal port directly, bypassing the topic checks, is refused at CONNECT.
//! (rumqttd 0.20 cannot serve an MQTT connection over anything but its own TCP listeners, so
//! the port itself remains, reachable from the host's loopback only.)
//!
//! TLS (`[broker.tls]`) is terminated at the gate (tokio-rustls), on a second listener, so the
//! ACL checks stay in one place; the relay to rumqttd is plain loopback TCP.
//!
//! Acknowledge after commit: the gate holds rumqttd's PUBACK of an agent's `events` publish
//! until the ingest has committed (or dropped for good) every event of the batch; see [`ack`].
//!
//! Backpressure: the gate charges every publish on an ingest topic to a byte budget before it
//! relays it, and the ingest gives the charge back when it has handled the message, so
//! rumqttd's log can never drop a message the ingest has not read (an acknowledged one); see
//! [`budget`].

use crate::App;
use crate::config::Config;
use crate::metrics::{Metrics, inc};
use anyhow::Context;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

mod ack;
pub mod budget;
pub use ack::{AckHold, EventsHandled, HoldError, events_mark};
use budget::Budgets;

/// How long the gate holds an events PUBACK before it gives up on the connection (the agent
/// reconnects and sends the batch again; nothing is acknowledged that was not handled).
pub const HOLD_LIMIT_MS: i64 = 30_000;

/// The ingest's side of the embedded broker: the in-process link, and the marks through which
/// the ingest worker tells the gate which events it has handled.
pub struct IngestLink {
    pub tx: rumqttd::local::LinkTx,
    pub rx: rumqttd::local::LinkRx,
    /// Advance with [`EventsHandled::mark`] after an events message was committed (or
    /// refused, or found duplicate): the gate then releases the agent's PUBACK.
    pub events_handled: EventsHandled,
    /// What the gate relayed and the ingest has not handled yet, per filter: give each
    /// message's charge back ([`budget::LogBudget::release`]) once it is handled.
    pub budgets: Arc<Budgets>,
}

pub struct EmbeddedBroker {
    /// Where agents connect with plain MQTT (the gate); None when `[broker.tls]` turns it off.
    pub public_addr: Option<SocketAddr>,
    /// Where agents connect with MQTT over TLS (the gate), with `[broker.tls]`.
    pub tls_addr: Option<SocketAddr>,
    /// In-process link to the router, used by the ingest (no TCP between broker and server).
    pub link: IngestLink,
    /// rumqttd's own listener (loopback).
    pub internal_addr: SocketAddr,
    pub gate_tasks: Vec<JoinHandle<()>>,
}

/// User name of the gate's relayed connections on the internal port.
const GATE_USER: &str = "dcim-gate";

/// Who may log in, and as what.
#[derive(Clone)]
struct Credentials {
    server_user: String,
    server_secret: String,
    /// Replaces every relayed agent's credentials on the internal port.
    gate_secret: String,
    /// agent id -> (site, secret)
    agents: HashMap<String, (String, String)>,
}

impl Credentials {
    fn agent(&self, user: &str, password: &str) -> Option<&str> {
        let (site, secret) = self.agents.get(user)?;
        crate::auth::same_secret(secret, password).then_some(site.as_str())
    }
    fn open(&self) -> bool {
        self.agents.is_empty()
    }
    /// The logins rumqttd accepts on the internal port: the server's and the gate's.
    fn internal_login_ok(&self, user: &str, password: &str) -> bool {
        (user == self.server_user && crate::auth::same_secret(&self.server_secret, password))
            || (user == GATE_USER && crate::auth::same_secret(&self.gate_secret, password))
    }
}

fn free_loopback_port() -> anyhow::Result<SocketAddr> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?)
}

pub async fn start_embedded(
    app: Arc<App>,
    server_secret: &str,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<EmbeddedBroker> {
    let config = &app.config;
    let creds = Credentials {
        server_user: config.broker.client_id.clone(),
        server_secret: server_secret.to_owned(),
        gate_secret: crate::auth::new_token(""),
        agents: config
            .agents
            .iter()
            .filter_map(|a| Some((a.id.clone(), (a.site.clone(), a.secret()?))))
            .collect(),
    };
    for a in &config.agents {
        if a.secret().is_none() {
            tracing::warn!(agent = %a.id, "agent has no password (password_env unset): it cannot connect");
        }
    }
    let internal_addr = free_loopback_port()?;
    let rumqttd_config = rumqttd_config(config, internal_addr, creds.clone());
    let (link_tx, link_rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("rumqttd".into())
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(rumqttd_config);
            let link = broker.link("dcim-server-ingest").map_err(|e| e.to_string());
            let _ = link_tx.send(link);
            if let Err(e) = broker.start() {
                tracing::error!("embedded broker stopped: {e}");
            }
        })
        .context("starting the embedded broker thread")?;
    let link = link_rx
        .recv_timeout(Duration::from_secs(10))
        .context("the embedded broker did not start")?
        .map_err(|e| anyhow::anyhow!("in-process link to the embedded broker: {e}"))?;
    // start() spawns its listener threads; wait until the port answers.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if TcpStream::connect(internal_addr).await.is_ok() {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("the embedded broker did not open {internal_addr} within 10 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let creds = Arc::new(creds);
    let events_handled = EventsHandled::default();
    let budgets = Arc::new(Budgets::new(
        budget::log_budget(&config.broker),
        crate::ingest::PriorityRoles::new(&crate::facility::alarm_roles()),
    ));
    let mut gate_tasks = Vec::new();
    let mut tls_addr = None;
    let mut plain = true;
    if let Some(t) = &config.broker.tls {
        let server_config = crate::tls::server_config(t.files(), &[])
            .map_err(|e| anyhow::anyhow!("broker.tls.{e}"))?;
        let listener = TcpListener::bind(t.listen)
            .await
            .with_context(|| format!("binding broker.tls.listen {}", t.listen))?;
        tls_addr = Some(listener.local_addr()?);
        let acceptor = tokio_rustls::TlsAcceptor::from(server_config);
        gate_tasks.push(tokio::spawn(gate(
            listener,
            Some(acceptor),
            internal_addr,
            creds.clone(),
            (events_handled.clone(), budgets.clone()),
            app.clone(),
            stop.clone(),
        )));
        plain = t.plain_listener;
    }
    let mut public_addr = None;
    if plain {
        let listener = TcpListener::bind(config.broker.listen)
            .await
            .with_context(|| format!("binding broker.listen {}", config.broker.listen))?;
        public_addr = Some(listener.local_addr()?);
        gate_tasks.push(tokio::spawn(gate(
            listener,
            None,
            internal_addr,
            creds,
            (events_handled.clone(), budgets.clone()),
            app,
            stop,
        )));
    }
    Ok(EmbeddedBroker {
        public_addr,
        tls_addr,
        link: IngestLink {
            tx: link.0,
            rx: link.1,
            events_handled,
            budgets,
        },
        internal_addr,
        gate_tasks,
    })
}

fn rumqttd_config(config: &Config, listen: SocketAddr, creds: Credentials) -> rumqttd::Config {
    let mut connections = rumqttd::ConnectionSettings {
        connection_timeout_ms: 10_000,
        // The gate's own limit (it refuses larger packets first, so rumqttd never drops a
        // relayed publish the gate has charged to a budget).
        max_payload_size: budget::max_message(&config.broker),
        max_inflight_count: 500,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    // Only the server's own client and the gate log in here (see the module documentation).
    connections.set_auth_handler(move |_client_id: String, user: String, pass: String| {
        let ok = creds.internal_login_ok(&user, &pass);
        async move { ok }
    });
    let server = rumqttd::ServerSettings {
        name: "internal".into(),
        listen,
        tls: None,
        next_connection_delay_ms: 1,
        connections,
    };
    rumqttd::Config {
        id: 0,
        router: rumqttd::RouterConfig {
            max_connections: 10_010,
            max_outgoing_packet_count: 200,
            max_segment_size: config.broker.log_segment_bytes.max(1024),
            max_segment_count: config.broker.log_segments.max(1),
            ..Default::default()
        },
        v4: Some([("internal".to_string(), server)].into()),
        ..Default::default()
    }
}

async fn gate(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    upstream: SocketAddr,
    creds: Arc<Credentials>,
    (handled, budgets): (EventsHandled, Arc<Budgets>),
    app: Arc<App>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let (sock, peer) = tokio::select! {
            _ = crate::stopped(&mut stop) => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!("broker gate accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = sock.set_nodelay(true);
        let creds = creds.clone();
        let handled = handled.clone();
        let budgets = budgets.clone();
        let app = app.clone();
        let mut conn_stop = stop.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            app.metrics.broker_clients.fetch_add(1, Ordering::Relaxed);
            let session = async {
                let r = match &tls {
                    None => relay(sock, upstream, &creds, &handled, &budgets, &app).await,
                    Some(acceptor) => match crate::tls::handshake(acceptor, sock).await {
                        Ok(s) => relay(s, upstream, &creds, &handled, &budgets, &app).await,
                        Err(e) => Err(Closed::Protocol(format!("TLS handshake: {e}"))),
                    },
                };
                if let Err(v) = r {
                    v.report(&app, peer).await;
                }
            };
            tokio::select! {
                _ = crate::stopped(&mut conn_stop) => {}
                _ = session => {}
            }
            app.metrics.broker_clients.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// Why the gate closed a connection.
#[derive(Debug)]
enum Closed {
    Io,
    Protocol(String),
    BadLogin {
        user: String,
    },
    Acl {
        user: String,
        what: &'static str,
        topic: String,
    },
}

impl Closed {
    async fn report(self, app: &App, peer: SocketAddr) {
        match self {
            Closed::Io => {}
            Closed::Protocol(p) => tracing::debug!(%peer, "broker gate: {p}"),
            Closed::BadLogin { user } => {
                inc(&app.metrics.broker_auth_failures_total, 1);
                tracing::warn!(%peer, %user, "broker gate: bad MQTT credentials");
                let _ = app
                    .audit(
                        &format!("mqtt:{user}"),
                        "mqtt.login_failed",
                        &peer.to_string(),
                        serde_json::json!({}),
                    )
                    .await;
            }
            Closed::Acl { user, what, topic } => {
                inc(&app.metrics.acl_rejections_total, 1);
                tracing::warn!(%peer, %user, what, %topic, "broker gate: topic not allowed, connection closed");
                let _ = app
                    .audit(
                        &format!("mqtt:{user}"),
                        "mqtt.rejected",
                        &topic,
                        serde_json::json!({"reason": what, "peer": peer.to_string()}),
                    )
                    .await;
            }
        }
    }
}

impl From<std::io::Error> for Closed {
    fn from(_: std::io::Error) -> Closed {
        Closed::Io
    }
}

/// One MQTT control packet: the first byte and the remaining bytes (header bytes included in
/// `raw` so the frame can be relayed unchanged).
struct Frame {
    kind: u8,
    raw: Vec<u8>,
    body_start: usize,
}

impl Frame {
    fn body(&self) -> &[u8] {
        &self.raw[self.body_start..]
    }
}

async fn read_frame<R: AsyncRead + Unpin>(r: &mut R, max: usize) -> Result<Frame, Closed> {
    let first = r.read_u8().await?;
    let mut raw = vec![first];
    let mut len: usize = 0;
    let mut shift = 0;
    loop {
        let b = r.read_u8().await?;
        raw.push(b);
        len |= ((b & 0x7f) as usize) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 21 {
            return Err(Closed::Protocol("malformed remaining length".into()));
        }
    }
    if len > max {
        return Err(Closed::Protocol(format!(
            "packet of {len} bytes exceeds the limit"
        )));
    }
    let body_start = raw.len();
    raw.resize(body_start + len, 0);
    r.read_exact(&mut raw[body_start..]).await?;
    Ok(Frame {
        kind: first >> 4,
        raw,
        body_start,
    })
}

/// Reads a length-prefixed MQTT string or binary field.
fn field<'a>(buf: &'a [u8], pos: &mut usize) -> Option<&'a [u8]> {
    let len = u16::from_be_bytes([*buf.get(*pos)?, *buf.get(*pos + 1)?]) as usize;
    let start = *pos + 2;
    let out = buf.get(start..start + len)?;
    *pos = start + len;
    Some(out)
}

#[derive(Debug, Default, PartialEq)]
struct Connect {
    client_id: String,
    will_topic: Option<String>,
    user: Option<String>,
    password: Option<String>,
    /// Offset of the connect-flags byte in the body.
    flags_at: usize,
    /// Offset where the user name (if any) starts: the end of the client id and will fields.
    login_at: usize,
}

fn parse_connect(body: &[u8]) -> Option<Connect> {
    let mut pos = 0;
    let proto = field(body, &mut pos)?;
    if proto != b"MQTT" && proto != b"MQIsdp" {
        return None;
    }
    let level = *body.get(pos)?;
    if level != 4 && level != 3 {
        return None; // MQTT 3.1/3.1.1 only (the gate does not parse v5 properties)
    }
    let flags_at = pos + 1;
    let flags = *body.get(flags_at)?;
    pos += 4; // level, flags, keep-alive
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).ok();
    let mut c = Connect {
        client_id: text(field(body, &mut pos)?)?,
        flags_at,
        ..Default::default()
    };
    if flags & 0x04 != 0 {
        c.will_topic = Some(text(field(body, &mut pos)?)?);
        field(body, &mut pos)?; // will message
    }
    c.login_at = pos;
    if flags & 0x80 != 0 {
        c.user = Some(text(field(body, &mut pos)?)?);
    }
    if flags & 0x40 != 0 {
        c.password = Some(text(field(body, &mut pos)?)?);
    }
    Some(c)
}

/// The CONNECT packet `c` (parsed from `body`) with its user name and password replaced.
fn with_login(body: &[u8], c: &Connect, user: &str, password: &str) -> Vec<u8> {
    let mut b = body[..c.login_at].to_vec();
    b[c.flags_at] |= 0x80 | 0x40;
    for f in [user.as_bytes(), password.as_bytes()] {
        b.extend_from_slice(&(f.len() as u16).to_be_bytes());
        b.extend_from_slice(f);
    }
    let mut raw = vec![0x10];
    let mut len = b.len();
    loop {
        let byte = (len % 128) as u8;
        len /= 128;
        raw.push(if len > 0 { byte | 0x80 } else { byte });
        if len == 0 {
            break;
        }
    }
    raw.extend_from_slice(&b);
    raw
}

fn publish_topic(f: &Frame) -> Option<String> {
    let mut pos = 0;
    String::from_utf8(field(f.body(), &mut pos)?.to_vec()).ok()
}

/// rumqttd's size of a PUBLISH in its log (see [`budget::charge_of`]).
fn publish_charge(f: &Frame, topic: &str) -> usize {
    let id = if (f.raw[0] >> 1) & 3 == 0 { 0 } else { 2 };
    let payload = f.body().len().saturating_sub(2 + topic.len() + id);
    budget::charge_of(topic.len(), payload)
}

/// The packet id and payload of a QoS 1 PUBLISH (None for QoS 0 and 2).
fn publish_qos1(f: &Frame) -> Option<(u16, &[u8])> {
    if (f.raw[0] >> 1) & 3 != 1 {
        return None;
    }
    let body = f.body();
    let mut pos = 0;
    field(body, &mut pos)?;
    let pkid = u16::from_be_bytes([*body.get(pos)?, *body.get(pos + 1)?]);
    Some((pkid, body.get(pos + 2..)?))
}

/// The events PUBACKs of one connection and the agent they wait for (see [`ack`]).
struct Hold {
    state: AckHold,
    /// The agent whose events are held: the logged-in agent, or in open mode the agent of the
    /// first events publish (events of other agents on that connection are not held).
    agent: Option<String>,
    handled: Option<watch::Receiver<ack::Marks>>,
}

impl Hold {
    fn bind(&mut self, agent: &str, marks: &EventsHandled) {
        let rx = marks.subscribe(agent);
        let current = rx.borrow().clone();
        self.state.on_handled(&current);
        self.agent = Some(agent.to_owned());
        self.handled = Some(rx);
    }
}

/// Records an events publish before it is relayed, so that its PUBACK is held.
fn hold_events_publish(
    hold: &std::sync::Mutex<Hold>,
    marks: &EventsHandled,
    topic: &str,
    f: &Frame,
) -> Result<(), Closed> {
    if !topic.ends_with("/events") {
        return Ok(());
    }
    let Some((pkid, payload)) = publish_qos1(f) else {
        return Ok(());
    };
    // The same decoding as the ingest's: a batch it will refuse is not held.
    let decoded = crate::ingest::decode(topic, payload);
    let Some((agent, epoch, seq)) = events_mark(&decoded) else {
        return Ok(());
    };
    let mut h = hold.lock().expect("hold lock");
    if h.agent.is_none() {
        h.bind(agent, marks);
    }
    if h.agent.as_deref() != Some(agent) {
        return Ok(());
    }
    h.state
        .on_publish(pkid, epoch, seq)
        .map_err(|e| Closed::Protocol(format!("events acknowledgements: {e:?}")))
}

/// Forwards what rumqttd sends to the agent, holding events PUBACKs until the ingest has
/// handled their batch. Ends when rumqttd closes, or with an error when a hold lasts longer
/// than [`HOLD_LIMIT_MS`] (closing the connection makes the agent send the batch again).
async fn downstream<W: tokio::io::AsyncWrite + Unpin>(
    mut frames: mpsc::Receiver<Frame>,
    cw: W,
    hold: Arc<std::sync::Mutex<Hold>>,
) -> Result<(), Closed> {
    async fn changed(rx: &mut Option<watch::Receiver<ack::Marks>>) -> ack::Marks {
        if let Some(rx) = rx
            && rx.changed().await.is_ok()
        {
            return rx.borrow_and_update().clone();
        }
        std::future::pending().await
    }
    async fn write_pubacks<W: tokio::io::AsyncWrite + Unpin>(
        w: &mut W,
        pkids: &[u16],
    ) -> std::io::Result<()> {
        for p in pkids {
            let [hi, lo] = p.to_be_bytes();
            w.write_all(&[0x40, 0x02, hi, lo]).await?;
        }
        Ok(())
    }
    let mut cw = BufWriter::with_capacity(16 * 1024, cw);
    let mut handled: Option<watch::Receiver<ack::Marks>> = None;
    loop {
        let until = {
            let h = hold.lock().expect("hold lock");
            if handled.is_none() {
                handled = h.handled.clone();
            }
            h.state.held_since().map(|t| t + HOLD_LIMIT_MS)
        };
        let timeout = async {
            match until {
                Some(t) => {
                    let ms = (t - crate::now_ms()).max(0) as u64;
                    tokio::time::sleep(Duration::from_millis(ms)).await
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            f = frames.recv() => {
                let Some(f) = f else {
                    let _ = cw.flush().await;
                    return Ok(());
                };
                if f.kind == 4 && f.body().len() == 2 {
                    let pkid = u16::from_be_bytes([f.body()[0], f.body()[1]]);
                    let out = hold
                        .lock()
                        .expect("hold lock")
                        .state
                        .on_puback(pkid, crate::now_ms())
                        .map_err(|e| Closed::Protocol(format!("events acknowledgements: {e:?}")))?;
                    write_pubacks(&mut cw, &out).await?;
                } else {
                    cw.write_all(&f.raw).await?;
                }
                if frames.is_empty() {
                    cw.flush().await?;
                }
            }
            marks = changed(&mut handled) => {
                let out = hold.lock().expect("hold lock").state.on_handled(&marks);
                if !out.is_empty() {
                    write_pubacks(&mut cw, &out).await?;
                    cw.flush().await?;
                }
            }
            _ = timeout => {
                let agent = hold.lock().expect("hold lock").agent.clone().unwrap_or_default();
                tracing::warn!(
                    %agent,
                    "events not committed within {} s of receipt: closing the agent's connection so that it sends them again",
                    HOLD_LIMIT_MS / 1000
                );
                return Err(Closed::Protocol("events acknowledgement held too long".into()));
            }
        }
    }
}

fn subscribe_filters(f: &Frame) -> Option<Vec<String>> {
    let body = f.body();
    let mut pos = 2; // packet id
    let mut out = Vec::new();
    while pos < body.len() {
        out.push(String::from_utf8(field(body, &mut pos)?.to_vec()).ok()?);
        pos += 1; // requested QoS
    }
    Some(out)
}

/// Whether `agent` of `site` may publish on `topic`.
pub fn may_publish(site: &str, agent: &str, topic: &str) -> bool {
    match dcim_wire::Topic::parse(topic) {
        Ok(t) => {
            t.site == site
                && t.agent == agent
                && !matches!(t.channel, dcim_wire::Channel::Command { .. })
        }
        Err(_) => false,
    }
}

/// Whether `agent` of `site` may subscribe to `filter`: only its own command topics.
pub fn may_subscribe(site: &str, agent: &str, filter: &str) -> bool {
    let prefix = format!("{}/{site}/{agent}/cmd/", dcim_wire::ROOT);
    filter
        .strip_prefix(&prefix)
        .is_some_and(|rest| !rest.is_empty() && !rest.contains('/') || rest == "#")
}

async fn relay<S>(
    client: S,
    upstream: SocketAddr,
    creds: &Credentials,
    marks: &EventsHandled,
    budgets: &Budgets,
    app: &App,
) -> Result<(), Closed>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let max = app.config.broker.max_payload + 64 * 1024;
    let (cr, cw) = tokio::io::split(client);
    let mut cr = BufReader::with_capacity(64 * 1024, cr);
    let mut cw = cw;
    let connect = tokio::time::timeout(Duration::from_secs(10), read_frame(&mut cr, max))
        .await
        .map_err(|_| Closed::Protocol("no CONNECT within 10 s".into()))??;
    if connect.kind != 1 {
        return Err(Closed::Protocol("first packet is not CONNECT".into()));
    }
    let c = parse_connect(connect.body())
        .ok_or_else(|| Closed::Protocol("unreadable CONNECT".into()))?;
    // The server's own client id: an agent taking it over would disconnect the server.
    if c.client_id == creds.server_user {
        let _ = cw.write_all(&[0x20, 0x02, 0x00, 0x02]).await; // identifier rejected
        return Err(Closed::BadLogin {
            user: c.user.clone().unwrap_or_default(),
        });
    }
    // (site, agent) the connection is bound to; None in open mode.
    let identity = if creds.open() {
        None
    } else {
        let user = c.user.clone().unwrap_or_default();
        let site = match creds.agent(&user, c.password.as_deref().unwrap_or_default()) {
            Some(site) if c.client_id == user || c.client_id.starts_with(&format!("{user}-")) => {
                site.to_owned()
            }
            _ => {
                // CONNACK, return code 5: not authorized.
                let _ = cw.write_all(&[0x20, 0x02, 0x00, 0x05]).await;
                return Err(Closed::BadLogin { user });
            }
        };
        if let Some(w) = &c.will_topic
            && !may_publish(&site, &user, w)
        {
            let _ = cw.write_all(&[0x20, 0x02, 0x00, 0x05]).await;
            return Err(Closed::Acl {
                user,
                what: "will",
                topic: w.clone(),
            });
        }
        Some((site, user))
    };
    let up = TcpStream::connect(upstream).await?;
    let _ = up.set_nodelay(true);
    let (ur, uw) = up.into_split();
    let mut uw = BufWriter::with_capacity(64 * 1024, uw);
    uw.write_all(&with_login(
        connect.body(),
        &c,
        GATE_USER,
        &creds.gate_secret,
    ))
    .await?;
    uw.flush().await?;
    let hold = Arc::new(std::sync::Mutex::new(Hold {
        state: AckHold::default(),
        agent: None,
        handled: None,
    }));
    if let Some((_, agent)) = &identity {
        hold.lock().expect("hold lock").bind(agent, marks);
    }
    // rumqttd -> agent: a reader task (so the writer can wait for frames, commits and a
    // deadline at once without losing a partly read frame) and the writer.
    let (frame_tx, frame_rx) = mpsc::channel::<Frame>(64);
    let reader = tokio::spawn(async move {
        let mut ur = BufReader::with_capacity(16 * 1024, ur);
        while let Ok(f) = read_frame(&mut ur, max).await {
            if frame_tx.send(f).await.is_err() {
                break;
            }
        }
    });
    let mut down = tokio::spawn(downstream(frame_rx, cw, hold.clone()));
    let up = async {
        loop {
            let f = read_frame(&mut cr, max).await?;
            if f.kind == 3 {
                let topic = publish_topic(&f).unwrap_or_default();
                if let Some((site, agent)) = &identity
                    && !may_publish(site, agent, &topic)
                {
                    return Err(Closed::Acl {
                        user: agent.clone(),
                        what: "publish",
                        topic,
                    });
                }
                hold_events_publish(&hold, marks, &topic, &f)?;
                // Backpressure: wait until rumqttd's log has room the ingest has read past.
                // What is buffered for rumqttd goes first, so that the ingest can drain it.
                if let Some(lane) = budget::Lane::of_topic(&topic) {
                    let b = budgets.lane(lane);
                    let bytes = publish_charge(&f, &topic);
                    let alarm =
                        lane == budget::Lane::Telemetry && budgets.alarm_roles.matches(f.body());
                    if b.try_reserve(bytes, alarm).is_none() {
                        uw.flush().await?;
                        b.reserve(bytes).await;
                    }
                }
            }
            if f.kind == 8
                && let Some((site, agent)) = &identity
            {
                for filter in subscribe_filters(&f).unwrap_or_default() {
                    if !may_subscribe(site, agent, &filter) {
                        return Err(Closed::Acl {
                            user: agent.clone(),
                            what: "subscribe",
                            topic: filter,
                        });
                    }
                }
            }
            uw.write_all(&f.raw).await?;
            if cr.buffer().is_empty() {
                uw.flush().await?;
            }
            if f.kind == 14 {
                return Ok(()); // DISCONNECT
            }
        }
    };
    let result = tokio::select! {
        r = up => r,
        r = &mut down => match r {
            Ok(Err(e)) => Err(e),
            _ => Ok(()), // rumqttd closed the connection
        },
    };
    down.abort();
    reader.abort();
    result
}

/// Used by tests and the benchmark to see the gate's view.
pub fn metrics_snapshot(m: &Metrics) -> (i64, u64) {
    (
        m.broker_clients.load(Ordering::Relaxed),
        m.acl_rejections_total.load(Ordering::Relaxed),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_rules() {
        assert!(may_publish("s", "a1", "dcim/v1/s/a1/telemetry"));
        assert!(may_publish("s", "a1", "dcim/v1/s/a1/state"));
        assert!(!may_publish("s", "a1", "dcim/v1/s/a2/telemetry"));
        assert!(!may_publish("s", "a1", "dcim/v1/x/a1/telemetry"));
        assert!(!may_publish("s", "a1", "dcim/v1/s/a1/cmd/rack-1"));
        assert!(!may_publish("s", "a1", "other/topic"));
        assert!(may_subscribe("s", "a1", "dcim/v1/s/a1/cmd/+"));
        assert!(may_subscribe("s", "a1", "dcim/v1/s/a1/cmd/#"));
        assert!(may_subscribe("s", "a1", "dcim/v1/s/a1/cmd/rack-1"));
        assert!(!may_subscribe("s", "a1", "dcim/v1/s/a2/cmd/+"));
        assert!(!may_subscribe("s", "a1", "dcim/v1/s/+/cmd/+"));
        assert!(!may_subscribe("s", "a1", "#"));
        assert!(!may_subscribe("s", "a1", "dcim/v1/s/a1/cmd/x/y"));
    }

    #[tokio::test]
    async fn connect_and_subscribe_frames_parse() {
        // CONNECT v3.1.1, flags: user+password+will(qos1,retain)+clean.
        let mut body = Vec::new();
        let s = |b: &mut Vec<u8>, x: &[u8]| {
            b.extend_from_slice(&(x.len() as u16).to_be_bytes());
            b.extend_from_slice(x);
        };
        s(&mut body, b"MQTT");
        body.extend_from_slice(&[4, 0x80 | 0x40 | 0x20 | 0x08 | 0x04 | 0x02, 0, 30]);
        s(&mut body, b"a1");
        s(&mut body, b"dcim/v1/s/a1/state");
        s(&mut body, b"{}");
        s(&mut body, b"a1");
        s(&mut body, b"pw");
        let mut raw = vec![0x10, body.len() as u8];
        raw.extend_from_slice(&body);
        let f = read_frame(&mut &raw[..], 1024).await.unwrap();
        assert_eq!(f.kind, 1);
        assert_eq!(
            parse_connect(f.body()).unwrap(),
            Connect {
                client_id: "a1".into(),
                will_topic: Some("dcim/v1/s/a1/state".into()),
                user: Some("a1".into()),
                password: Some("pw".into()),
                flags_at: 7,
                login_at: 2 + 4 + 4 + 2 + 2 + 2 + 18 + 2 + 2,
            }
        );
        // The gate's login replaces the agent's; client id and will are kept.
        let c = parse_connect(f.body()).unwrap();
        let long = "x".repeat(200); // remaining length over 127: two length bytes
        let g = with_login(f.body(), &c, "dcim-gate", &long);
        let f2 = read_frame(&mut &g[..], 1024).await.unwrap();
        assert_eq!(f2.kind, 1);
        let c2 = parse_connect(f2.body()).unwrap();
        assert_eq!(c2.client_id, "a1");
        assert_eq!(c2.will_topic.as_deref(), Some("dcim/v1/s/a1/state"));
        assert_eq!(c2.user.as_deref(), Some("dcim-gate"));
        assert_eq!(c2.password.as_deref(), Some(long.as_str()));
        // ... and is added to a CONNECT that had none (open mode).
        let mut anon = Vec::new();
        s(&mut anon, b"MQTT");
        anon.extend_from_slice(&[4, 0x02, 0, 30]);
        s(&mut anon, b"c1");
        let c = parse_connect(&anon).unwrap();
        let g = with_login(&anon, &c, "dcim-gate", "pw");
        let c3 = parse_connect(read_frame(&mut &g[..], 1024).await.unwrap().body()).unwrap();
        assert_eq!(
            (
                c3.client_id.as_str(),
                c3.user.as_deref(),
                c3.password.as_deref()
            ),
            ("c1", Some("dcim-gate"), Some("pw"))
        );
        let mut sub = vec![0x82, 0];
        let mut b = vec![0, 1];
        s(&mut b, b"dcim/v1/s/a1/cmd/+");
        b.push(1);
        s(&mut b, b"#");
        b.push(0);
        sub[1] = b.len() as u8;
        sub.extend_from_slice(&b);
        let f = read_frame(&mut &sub[..], 1024).await.unwrap();
        assert_eq!(f.kind, 8);
        assert_eq!(
            subscribe_filters(&f).unwrap(),
            vec!["dcim/v1/s/a1/cmd/+", "#"]
        );
        // Oversized packets are refused before they are read.
        assert!(read_frame(&mut &raw[..], 4).await.is_err());
    }
}
