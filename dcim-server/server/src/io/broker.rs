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
//! Telemetry does not go through rumqttd: nothing but the ingest reads it (agents may only
//! subscribe to their own commands), so once the ingest runs the gate hands each telemetry
//! publish to it directly ([`TelemetryIntake`]) and acknowledges a QoS 1 one itself once it is
//! queued there. That saves a loopback hop, rumqttd's copy into its log and the forward to the
//! link: 0.51 → 0.26–0.31 µs of server CPU per sample at 2 M points/s. Events, state and
//! command results still pass through rumqttd. A connection opened before the ingest started
//! relays its telemetry through rumqttd for its whole life, so one agent's batches never take
//! two paths.
//!
//! Acknowledge after commit: the gate holds rumqttd's PUBACK of an agent's `events` publish
//! until the ingest has committed (or dropped for good) every event of the batch; PUBACKs leave
//! in the order of the publishes, the gate's own among them; see [`ack`].
//!
//! Backpressure: the gate charges every publish on an ingest topic to a byte budget before it
//! relays it (or hands it over), and the ingest gives the charge back when it has handled the
//! message, so rumqttd's log can never drop a message the ingest has not read (an acknowledged
//! one), and the telemetry queued in the server is bounded; see [`budget`].
//!
//! # Before a login
//!
//! A locked address is closed at accept; connections are limited in total
//! (`broker.max_connections`, default 1,024), per address (`max_connections_per_address`, 64) and
//! while logging in (`max_pending_connects`, 128, a quarter of it per address); the first packet
//! must be a CONNECT of at most 4 KiB (`dcim_mqtt_gate::codec::CONNECT_MAX`), read in 4 KiB
//! chunks, within `connect_timeout_ms` (5 s, TLS handshake included). A failed login, a malformed
//! CONNECT or a timeout counts against the peer's address (locked after
//! `broker.address_failures_before_lock`, 20, then doubling); agent ids are never locked by name
//! (anyone could cut an agent off). Nothing is allocated for a length a peer claims, only for
//! bytes that arrived (a connection buffers at most one frame plus one read). The gate refuses the
//! server's own client id.

use crate::app::App;
use crate::base::metrics::{Metrics, inc};
use crate::config::Config;
use crate::state::auth::limits::Subject;
use anyhow::Context;
use bytes::BytesMut;
use dcim_mqtt_gate::codec::{self, Frame};
use dcim_mqtt_gate::session::{self, Inbound, Violation};
use rumqttc::mqttbytes::QoS;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, BufWriter};
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

/// Where the gate hands an agent's telemetry publish, instead of relaying it through rumqttd
/// (the ingest's lanes). `take` returns once the message is queued for the ingest, false when
/// the ingest is gone.
pub trait TelemetryIntake: Send + Sync {
    fn take(
        &self,
        topic: String,
        payload: bytes::Bytes,
        charge: Option<budget::Charge>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + '_>>;
}

/// The ingest's [`TelemetryIntake`], once it runs. Until then (and if it is cleared) the gate
/// relays telemetry through rumqttd like every other topic, so nothing depends on start order.
#[derive(Clone, Default)]
pub struct IntakeSlot(Arc<std::sync::RwLock<Option<Arc<dyn TelemetryIntake>>>>);

impl IntakeSlot {
    pub fn set(&self, intake: Option<Arc<dyn TelemetryIntake>>) {
        *self.0.write().expect("intake slot") = intake;
    }

    fn get(&self) -> Option<Arc<dyn TelemetryIntake>> {
        self.0.read().expect("intake slot").clone()
    }
}

/// What the gate shares with the ingest: events handled, the budgets, the telemetry intake.
#[derive(Clone)]
struct ToIngest {
    handled: EventsHandled,
    budgets: Arc<Budgets>,
    intake: IntakeSlot,
}

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
    /// Set it to the ingest's lanes: the gate then hands telemetry to them directly.
    pub intake: IntakeSlot,
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

impl session::Logins for Credentials {
    fn open(&self) -> bool {
        self.agents.is_empty()
    }
    fn server_client_id(&self) -> &str {
        &self.server_user
    }
    fn site_of(&self, user: &str, password: &str) -> Option<String> {
        let (site, secret) = self.agents.get(user)?;
        crate::state::auth::same_secret(secret, password).then(|| site.clone())
    }
}

impl Credentials {
    /// The logins rumqttd accepts on the internal port: the server's and the gate's.
    fn internal_login_ok(&self, user: &str, password: &str) -> bool {
        (user == self.server_user && crate::state::auth::same_secret(&self.server_secret, password))
            || (user == GATE_USER && crate::state::auth::same_secret(&self.gate_secret, password))
    }
}

fn free_loopback_port() -> anyhow::Result<SocketAddr> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?)
}

/// Who may log in: the server, the gate's own relay login, every agent with a password.
fn credentials(config: &Config, server_secret: &str) -> Credentials {
    let creds = Credentials {
        server_user: config.broker.client_id.clone(),
        server_secret: server_secret.to_owned(),
        gate_secret: crate::state::auth::new_token(""),
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
    creds
}

/// Runs rumqttd on its own thread, listening on `internal_addr` (loopback, behind the gate);
/// returns the in-process link of the ingest once the port answers.
async fn run_rumqttd(
    config: &Config,
    internal_addr: SocketAddr,
    creds: Credentials,
) -> anyhow::Result<(rumqttd::local::LinkTx, rumqttd::local::LinkRx)> {
    let rumqttd_config = rumqttd_config(config, internal_addr, creds);
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
    Ok(link)
}

pub async fn start_embedded(
    app: Arc<App>,
    server_secret: &str,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<EmbeddedBroker> {
    let config = &app.config;
    let creds = credentials(config, server_secret);
    let internal_addr = free_loopback_port()?;
    let link = run_rumqttd(config, internal_addr, creds.clone()).await?;
    let creds = Arc::new(creds);
    let events_handled = EventsHandled::default();
    let budgets = Arc::new(Budgets::new(
        config.broker.log_budget(),
        budget::agent_share(&config.broker),
        crate::engine::ingest::PriorityRoles::new(&crate::engine::facility::alarm_roles()),
    ));
    let to_ingest = ToIngest {
        handled: events_handled.clone(),
        budgets: budgets.clone(),
        intake: IntakeSlot::default(),
    };
    let mut gate_tasks = Vec::new();
    let mut tls_addr = None;
    let mut plain = true;
    if let Some(t) = &config.broker.tls {
        let server_config = crate::base::tls::server_config(t.files(), &[])
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
            to_ingest.clone(),
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
            to_ingest.clone(),
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
            intake: to_ingest.intake,
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
        max_payload_size: config.broker.max_message(),
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

/// What every connection of a gate listener shares.
#[derive(Clone)]
struct GateCtx {
    tls: Option<tokio_rustls::TlsAcceptor>,
    upstream: SocketAddr,
    creds: Arc<Credentials>,
    to_ingest: ToIngest,
    app: Arc<App>,
    connect_timeout: Duration,
}

async fn gate(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    upstream: SocketAddr,
    creds: Arc<Credentials>,
    to_ingest: ToIngest,
    app: Arc<App>,
    mut stop: watch::Receiver<bool>,
) {
    let ctx = GateCtx {
        connect_timeout: Duration::from_millis(app.config.broker.connect_timeout_ms),
        tls,
        upstream,
        creds,
        to_ingest,
        app,
    };
    loop {
        let (sock, peer) = tokio::select! {
            _ = crate::base::stop::stopped(&mut stop) => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: wait for descriptors to come back.
                    tracing::warn!("broker gate accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some((conn_permit, pending)) = admit(&ctx.app, peer) else {
            inc(&ctx.app.metrics.broker_connections_refused_total, 1);
            drop(sock);
            continue;
        };
        let _ = sock.set_nodelay(true);
        tokio::spawn(serve(
            ctx.clone(),
            sock,
            peer,
            (conn_permit, pending),
            stop.clone(),
        ));
    }
}

/// Limits before anything is read: a locked address, the connection counts (total and per
/// address), the logins in progress. `None`: refused.
fn admit(
    app: &App,
    peer: SocketAddr,
) -> Option<(
    crate::state::conn_limits::ConnPermit,
    crate::state::conn_limits::ConnPermit,
)> {
    let ip = peer.ip();
    let locked = app
        .security
        .mqtt_logins
        .lock()
        .expect("mqtt login limiter")
        .check(&[Subject::address(ip)], app.now_ms())
        .is_err();
    if locked {
        return None;
    }
    match (
        app.security.mqtt_conns.try_acquire(ip),
        app.security.mqtt_pending.try_acquire(ip),
    ) {
        (Ok(c), Ok(p)) => Some((c, p)),
        (Err(e), _) | (_, Err(e)) => {
            tracing::debug!(%peer, "broker gate: connection refused: {e}");
            None
        }
    }
}

/// One admitted connection: the TLS handshake if any, then the relay, within the connect
/// deadline for the CONNECT; the connection permit is held until it ends.
async fn serve(
    ctx: GateCtx,
    sock: TcpStream,
    peer: SocketAddr,
    (_conn_permit, pending): (
        crate::state::conn_limits::ConnPermit,
        crate::state::conn_limits::ConnPermit,
    ),
    mut conn_stop: watch::Receiver<bool>,
) {
    let app = &ctx.app;
    app.metrics.broker_clients.fetch_add(1, Ordering::Relaxed);
    let deadline = tokio::time::Instant::now() + ctx.connect_timeout;
    let session = async {
        let gate = Gate {
            upstream: ctx.upstream,
            creds: &ctx.creds,
            marks: &ctx.to_ingest.handled,
            budgets: &ctx.to_ingest.budgets,
            intake: ctx.to_ingest.intake.get(),
            app,
        };
        let r = match &ctx.tls {
            None => gate.relay(sock, pending, deadline).await,
            Some(acceptor) => {
                match tokio::time::timeout_at(deadline, acceptor.accept(sock)).await {
                    Ok(Ok(s)) => gate.relay(s, pending, deadline).await,
                    Ok(Err(e)) => Err(Closed::Protocol(format!("TLS handshake: {e}"))),
                    Err(_) => Err(Closed::ConnectTimeout),
                }
            }
        };
        if let Err(v) = r {
            v.report(app, peer).await;
        }
    };
    tokio::select! {
        _ = crate::base::stop::stopped(&mut conn_stop) => {}
        _ = session => {}
    }
    app.metrics.broker_clients.fetch_sub(1, Ordering::Relaxed);
}

/// Why the gate closed a connection.
#[derive(Debug)]
enum Closed {
    Io,
    Protocol(String),
    /// No complete CONNECT (or TLS handshake) within `broker.connect_timeout_ms`.
    ConnectTimeout,
    /// Refused at its CONNECT (malformed, bad login, server id, will topic).
    Refused(session::Refusal),
    Acl {
        user: String,
        what: &'static str,
        topic: String,
    },
}

impl Closed {
    async fn report(self, app: &App, peer: SocketAddr) {
        // Failures before a login count against the peer's address (back-off), and are
        // audited through the coalescer (bounded rows whatever a peer sends).
        let login_failure = |app: &App| {
            app.security
                .mqtt_logins
                .lock()
                .expect("mqtt login limiter")
                .failed(&[Subject::address(peer.ip())], false, app.now_ms())
        };
        let sec = &app.security;
        let peer_s = peer.ip().to_string();
        match self {
            Closed::Io => {}
            Closed::Protocol(p) => tracing::debug!(%peer, "broker gate: {p}"),
            Closed::ConnectTimeout => {
                tracing::debug!(%peer, "broker gate: no CONNECT in time");
                let locks = login_failure(app);
                sec.audit_locks(app, "mqtt", &peer_s, &locks).await;
            }
            Closed::Refused(r) => {
                let locks = login_failure(app);
                let (actor, action, detail) = match &r {
                    session::Refusal::Malformed { why, .. } => {
                        tracing::debug!(%peer, "broker gate: refused CONNECT: {why}");
                        (
                            String::new(),
                            "mqtt.connect_refused",
                            serde_json::json!({"reason": crate::state::auth::coalesce::bounded(why)}),
                        )
                    }
                    session::Refusal::BadLogin { user }
                    | session::Refusal::ServerClientId { user } => {
                        inc(&app.metrics.broker_auth_failures_total, 1);
                        tracing::warn!(%peer, %user, "broker gate: bad MQTT credentials");
                        (user.clone(), "mqtt.login_failed", serde_json::json!({}))
                    }
                    session::Refusal::Will { user, topic } => {
                        inc(&app.metrics.acl_rejections_total, 1);
                        tracing::warn!(%peer, %user, %topic, "broker gate: will topic not allowed");
                        (
                            user.clone(),
                            "mqtt.rejected",
                            serde_json::json!({"reason": "will", "topic": crate::state::auth::coalesce::bounded(topic)}),
                        )
                    }
                };
                sec.audit_failure(
                    app,
                    action,
                    &format!("mqtt:{actor}"),
                    "connect",
                    &peer_s,
                    detail,
                )
                .await;
                sec.audit_locks(app, "mqtt", &peer_s, &locks).await;
            }
            Closed::Acl { user, what, topic } => {
                inc(&app.metrics.acl_rejections_total, 1);
                tracing::warn!(%peer, %user, what, %topic, "broker gate: topic not allowed, connection closed");
                sec.audit_failure(
                    app,
                    "mqtt.rejected",
                    &format!("mqtt:{user}"),
                    &topic,
                    &peer_s,
                    serde_json::json!({"reason": what}),
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

impl From<HoldError> for Closed {
    fn from(e: HoldError) -> Closed {
        Closed::Protocol(format!("acknowledgements: {e:?}"))
    }
}

impl From<codec::FrameError> for Closed {
    fn from(e: codec::FrameError) -> Closed {
        Closed::Protocol(e.to_string())
    }
}

/// Reads the next whole frame of at most `max` bytes into `buf`, in reads of at most `chunk`
/// bytes: nothing is allocated for a length a peer claims, only for bytes that arrived.
async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut BytesMut,
    max: usize,
    chunk: usize,
) -> Result<Frame, Closed> {
    loop {
        if let Some(f) = codec::next_frame(buf, max)? {
            return Ok(f);
        }
        read_some(r, buf, codec::read_size(buf, max, chunk)).await?;
    }
}

/// The first frame of a connection: a CONNECT of at most `codec::CONNECT_MAX` bytes.
async fn read_connect<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut BytesMut,
) -> Result<Frame, Closed> {
    loop {
        if let Some(f) = codec::next_connect(buf)? {
            return Ok(f);
        }
        let n = codec::read_size(buf, codec::CONNECT_MAX, codec::LOGIN_CHUNK);
        read_some(r, buf, n).await?;
    }
}

async fn read_some<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut BytesMut,
    n: usize,
) -> Result<(), Closed> {
    buf.reserve(n);
    if (&mut *r).take(n as u64).read_buf(buf).await? == 0 {
        return Err(Closed::Io);
    }
    Ok(())
}

/// What a connection's relay needs of the gate.
struct Gate<'a> {
    upstream: SocketAddr,
    creds: &'a Credentials,
    marks: &'a EventsHandled,
    budgets: &'a Budgets,
    /// Where telemetry goes without rumqttd (None: the ingest is not running yet).
    intake: Option<Arc<dyn TelemetryIntake>>,
    app: &'a App,
}

/// The events PUBACKs of one connection and the agent they wait for (see [`ack`]).
struct Hold {
    state: AckHold,
    /// The agent whose events are held: the logged-in agent, or in open mode the agent of the
    /// first events publish (events of other agents on that connection are not held).
    agent: Option<String>,
    handled: Option<watch::Receiver<ack::Marks>>,
}

/// A connection's hold, and the wake-up of its writer when the gate itself acknowledged a
/// publish ([`AckHold::on_local`]).
struct Held {
    hold: std::sync::Mutex<Hold>,
    local: tokio::sync::Notify,
}

impl Held {
    fn lock(&self) -> std::sync::MutexGuard<'_, Hold> {
        self.hold.lock().expect("hold lock")
    }
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
    hold: &Held,
    marks: &EventsHandled,
    topic: &str,
    qos: QoS,
    pkid: u16,
    payload: &[u8],
) -> Result<(), Closed> {
    if !topic.ends_with("/events") || qos != QoS::AtLeastOnce {
        return Ok(());
    }
    // The same decoding as the ingest's: a batch it will refuse is not held.
    let decoded = crate::engine::ingest::decode(topic, payload);
    let Some((agent, epoch, seq)) = events_mark(&decoded) else {
        return Ok(());
    };
    let mut h = hold.lock();
    if h.agent.is_none() {
        h.bind(agent, marks);
    }
    if h.agent.as_deref() != Some(agent) {
        return Ok(());
    }
    Ok(h.state.on_publish(pkid, epoch, seq)?)
}

/// The next handled marks of the ingest; pending while there is no receiver yet.
async fn changed(rx: &mut Option<watch::Receiver<ack::Marks>>) -> ack::Marks {
    if let Some(rx) = rx
        && rx.changed().await.is_ok()
    {
        return rx.borrow_and_update().clone();
    }
    std::future::pending().await
}

/// Writes a PUBACK per packet id.
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

/// Forwards what rumqttd sends to the agent, holding events PUBACKs until the ingest has
/// handled their batch. Ends when rumqttd closes, or with an error when a hold lasts longer
/// than [`HOLD_LIMIT_MS`] (closing the connection makes the agent send the batch again).
async fn downstream<W: tokio::io::AsyncWrite + Unpin>(
    mut frames: mpsc::Receiver<Frame>,
    cw: W,
    hold: Arc<Held>,
) -> Result<(), Closed> {
    let mut cw = BufWriter::with_capacity(16 * 1024, cw);
    let mut handled: Option<watch::Receiver<ack::Marks>> = None;
    loop {
        let until = {
            let h = hold.lock();
            if handled.is_none() {
                handled = h.handled.clone();
            }
            h.state.held_since().map(|t| t + HOLD_LIMIT_MS)
        };
        let timeout = async {
            match until {
                Some(t) => {
                    let ms = (t - dcim_clock::now_ms()).max(0) as u64;
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
                if let Some(pkid) = session::puback_id(&f) {
                    let out = hold
                        .lock()
                        .state
                        .on_puback(pkid, dcim_clock::now_ms())?;
                    write_pubacks(&mut cw, &out).await?;
                } else {
                    cw.write_all(f.raw()).await?;
                }
                if frames.is_empty() {
                    cw.flush().await?;
                }
            }
            _ = hold.local.notified() => {
                let out = hold.lock().state.ready();
                if !out.is_empty() {
                    write_pubacks(&mut cw, &out).await?;
                    if frames.is_empty() {
                        cw.flush().await?;
                    }
                }
            }
            marks = changed(&mut handled) => {
                let out = hold.lock().state.on_handled(&marks);
                if !out.is_empty() {
                    write_pubacks(&mut cw, &out).await?;
                    cw.flush().await?;
                }
            }
            _ = timeout => {
                let agent = hold.lock().agent.clone().unwrap_or_default();
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

pub use dcim_mqtt_gate::acl::{may_publish, may_subscribe};

/// Reads the CONNECT (within `deadline`) and checks the login; a refusal with a CONNACK code
/// is answered with it. Bytes that are no CONNECT (or one over the limit) count as a failed
/// login.
async fn login<R, W>(
    cr: &mut R,
    cw: &mut W,
    buf: &mut BytesMut,
    deadline: tokio::time::Instant,
    creds: &Credentials,
) -> Result<session::Accepted, Closed>
where
    R: AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let connect = match tokio::time::timeout_at(deadline, read_connect(cr, buf)).await {
        Err(_) => return Err(Closed::ConnectTimeout),
        Ok(Err(Closed::Io)) => return Err(Closed::Io),
        // Bytes that are no CONNECT (or one over the limit) count as a failed login.
        Ok(Err(e)) => {
            return Err(Closed::Refused(session::Refusal::Malformed {
                why: format!("{e:?}"),
                connack: None,
            }));
        }
        Ok(Ok(f)) => f,
    };
    match session::connect(&connect, creds) {
        Ok(a) => Ok(a),
        Err(r) => {
            if let Some(code) = r.connack() {
                let _ = cw.write_all(&session::connack_packet(code)).await;
            }
            Err(Closed::Refused(r))
        }
    }
}

/// rumqttd -> gate: reads frames until the connection closes or the writer is gone.
async fn read_upstream(
    mut ur: tokio::net::tcp::OwnedReadHalf,
    frame_tx: mpsc::Sender<Frame>,
    max: usize,
) {
    let mut ubuf = BytesMut::with_capacity(16 * 1024);
    while let Ok(f) = read_frame(&mut ur, &mut ubuf, max, codec::READ_CHUNK).await {
        if frame_tx.send(f).await.is_err() {
            break;
        }
    }
}

/// An agent's frame the access rules refuse: the connection closes with the reason.
fn violation(v: Violation, identity: Option<&(String, String)>) -> Closed {
    let agent = || identity.map(|(_, a)| a.clone()).unwrap_or_default();
    match v {
        Violation::Publish { topic } => Closed::Acl {
            user: agent(),
            what: "publish",
            topic,
        },
        Violation::Subscribe { filter } => Closed::Acl {
            user: agent(),
            what: "subscribe",
            topic: filter,
        },
        Violation::Protocol(p) => Closed::Protocol(p),
    }
}

/// Backpressure for one publish of `lane`: waits until rumqttd's log has room the ingest has
/// read past. What is buffered for rumqttd (`uw`) goes first, so that the ingest can drain it.
/// Returns what it charged, to be given back once the ingest has handled the message.
#[inline]
async fn reserve(
    budgets: &Budgets,
    lane: budget::Lane,
    topic: &str,
    payload_len: usize,
    body: &[u8],
    uw: &mut BufWriter<tokio::net::tcp::OwnedWriteHalf>,
) -> Result<budget::Charge, Closed> {
    let b = budgets.lane(lane);
    let bytes = budget::charge_of(topic.len(), payload_len);
    let alarm = lane == budget::Lane::Telemetry && budgets.alarm_roles.matches(body);
    // The agent's share first (telemetry): one agent cannot fill the lane ahead of the others.
    let share = b.charge_for(bytes);
    let mut agent = None;
    if lane == budget::Lane::Telemetry
        && let Ok(t) = dcim_wire::Topic::parse(topic)
    {
        if !budgets.shares.try_reserve(&t.agent, share, alarm) {
            uw.flush().await?;
            budgets.shares.reserve(&t.agent, share).await;
        }
        agent = Some(Arc::from(t.agent.as_str()));
    }
    let n = match b.try_reserve(bytes, alarm) {
        Some(n) => n,
        None => {
            uw.flush().await?;
            b.reserve(bytes).await
        }
    };
    debug_assert_eq!(n, share);
    Ok(budget::Charge { lane, n, agent })
}

impl Gate<'_> {
    /// Hands a telemetry publish to the ingest (not through rumqttd: no second loopback hop,
    /// no copy in rumqttd's log) with the budget `charge` it took; a QoS 1 one is acknowledged
    /// once it is queued there, in its place among the connection's PUBACKs.
    async fn take_telemetry(
        &self,
        intake: &dyn TelemetryIntake,
        hold: &Held,
        (topic, qos, pkid): (String, QoS, u16),
        (payload, charge): (bytes::Bytes, budget::Charge),
    ) -> Result<(), Closed> {
        if !intake.take(topic, payload, Some(charge)).await {
            return Err(Closed::Protocol("the ingest has stopped".into()));
        }
        if qos == QoS::AtLeastOnce {
            hold.lock().state.on_local(pkid, dcim_clock::now_ms())?;
            hold.local.notify_one();
        }
        Ok(())
    }

    /// An agent's publish, allowed by the access rules: held if it carries events, charged to
    /// its budget (waiting for room), then handed to the ingest (telemetry; returns false) or
    /// left to be relayed to rumqttd (returns true).
    async fn publish(
        &self,
        hold: &Held,
        uw: &mut BufWriter<tokio::net::tcp::OwnedWriteHalf>,
        body: &[u8],
        (topic, qos, pkid, payload): (String, QoS, u16, bytes::Bytes),
    ) -> Result<bool, Closed> {
        hold_events_publish(hold, self.marks, &topic, qos, pkid, &payload)?;
        // Backpressure: wait until rumqttd's log (or the ingest's queue) has room the ingest
        // has read past. What is buffered for rumqttd goes first, so that the ingest can drain
        // it.
        let charge = match budget::Lane::of_topic(&topic) {
            Some(lane) => Some(reserve(self.budgets, lane, &topic, payload.len(), body, uw).await?),
            None => None,
        };
        match (&self.intake, charge, qos) {
            (Some(intake), Some(c), QoS::AtMostOnce | QoS::AtLeastOnce)
                if c.lane == budget::Lane::Telemetry =>
            {
                let publish = (topic, qos, pkid);
                self.take_telemetry(intake.as_ref(), hold, publish, (payload, c))
                    .await?;
                return Ok(false);
            }
            (_, _, QoS::AtLeastOnce) => hold.lock().state.on_relay(pkid)?,
            _ => {}
        }
        Ok(true)
    }

    /// Connects to rumqttd (no Nagle delay) and forwards the agent's CONNECT with the gate's
    /// own login.
    async fn connect_upstream(
        &self,
        connect: &rumqttc::mqttbytes::v4::Connect,
    ) -> Result<
        (
            tokio::net::tcp::OwnedReadHalf,
            BufWriter<tokio::net::tcp::OwnedWriteHalf>,
        ),
        Closed,
    > {
        let up = TcpStream::connect(self.upstream).await?;
        let _ = up.set_nodelay(true);
        let (ur, uw) = up.into_split();
        let mut uw = BufWriter::with_capacity(64 * 1024, uw);
        uw.write_all(&session::with_login(
            connect,
            GATE_USER,
            &self.creds.gate_secret,
        ))
        .await?;
        uw.flush().await?;
        Ok((ur, uw))
    }

    /// One agent connection: the CONNECT (within `deadline`, at most `CONNECT_MAX` bytes),
    /// then both directions until either side closes. `pending` is the place among the logins
    /// in progress, given back once the login is checked.
    async fn relay<S>(
        &self,
        client: S,
        pending: crate::state::conn_limits::ConnPermit,
        deadline: tokio::time::Instant,
    ) -> Result<(), Closed>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
    {
        let (creds, marks, app) = (self.creds, self.marks, self.app);
        let max = app.config.broker.max_message();
        let (mut cr, mut cw) = tokio::io::split(client);
        let mut buf = BytesMut::with_capacity(1024);
        let accepted = login(&mut cr, &mut cw, &mut buf, deadline, creds).await?;
        drop(pending);
        let identity = accepted.identity;
        let (ur, mut uw) = self.connect_upstream(&accepted.connect).await?;
        let hold = Arc::new(Held {
            hold: std::sync::Mutex::new(Hold {
                state: AckHold::default(),
                agent: None,
                handled: None,
            }),
            local: tokio::sync::Notify::new(),
        });
        if let Some((_, agent)) = &identity {
            hold.lock().bind(agent, marks);
        }
        // rumqttd -> agent: a reader task (so the writer can wait for frames, commits and a
        // deadline at once without losing a partly read frame) and the writer.
        let (frame_tx, frame_rx) = mpsc::channel::<Frame>(64);
        let reader = tokio::spawn(read_upstream(ur, frame_tx, max));
        let mut down = tokio::spawn(downstream(frame_rx, cw, hold.clone()));
        let up = async {
            loop {
                let f = read_frame(&mut cr, &mut buf, max, codec::READ_CHUNK).await?;
                match session::inbound(identity.as_ref(), &f) {
                    Err(v) => return Err(violation(v, identity.as_ref())),
                    Ok(Inbound::Publish {
                        topic,
                        qos,
                        pkid,
                        payload,
                    }) => {
                        let publish = (topic, qos, pkid, payload);
                        if !self.publish(&hold, &mut uw, f.body(), publish).await? {
                            if buf.is_empty() {
                                uw.flush().await?;
                            }
                            continue;
                        }
                    }
                    Ok(Inbound::Disconnect) => {
                        uw.write_all(f.raw()).await?;
                        uw.flush().await?;
                        return Ok(());
                    }
                    Ok(Inbound::Other) => {}
                }
                uw.write_all(f.raw()).await?;
                if buf.is_empty() {
                    uw.flush().await?;
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

    /// Hazard: a peer claiming a 4 MB CONNECT and sending five bytes made the gate allocate
    /// the claimed length before any login; now only the bytes that arrived are held.
    #[tokio::test]
    async fn a_connect_claiming_megabytes_is_refused_after_its_header() {
        let (mut a, mut b) = tokio::io::duplex(64);
        a.write_all(&[0x10, 0xff, 0xff, 0xff, 0x01]).await.unwrap();
        let mut buf = BytesMut::new();
        let r = read_connect(&mut b, &mut buf).await;
        assert!(matches!(r, Err(Closed::Protocol(_))), "{r:?}");
        assert!(buf.capacity() < 16 * 1024, "{}", buf.capacity());
    }

    #[tokio::test]
    async fn frames_are_read_in_bounded_chunks() {
        let (mut a, mut b) = tokio::io::duplex(1 << 20);
        let mut p = rumqttc::mqttbytes::v4::Publish::new("t", QoS::AtLeastOnce, vec![7u8; 300_000]);
        p.pkid = 1;
        let mut bytes = BytesMut::new();
        p.write(&mut bytes).unwrap();
        a.write_all(&bytes).await.unwrap();
        let mut buf = BytesMut::new();
        let f = read_frame(&mut b, &mut buf, 400_000, codec::READ_CHUNK)
            .await
            .unwrap();
        assert_eq!(f.raw().len(), bytes.len());
        assert!(matches!(
            session::inbound(None, &f),
            Ok(Inbound::Publish { pkid: 1, .. })
        ));
    }
}
