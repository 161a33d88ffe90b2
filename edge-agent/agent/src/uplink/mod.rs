//! The uplink: one task per configured broker publishes the spool to the center.
//!
//! Per connection: a fresh rumqttc client and event loop (clean session; the spool, not the
//! client, holds what is unacknowledged). On ConnAck the task publishes the retained
//! `AgentState` (online), subscribes to `cmd/#` (a clean session never has subscriptions, the
//! rumqttc #250 case), and restarts sending right after this broker's acknowledgement cursor in
//! the spool. Events are always read before telemetry. A spool cursor moves only on PUBACK (see
//! [`tracker`]). Errors drop the connection and reconnect after an exponential back-off.
//! The will is the retained `AgentState` with `online: false`.
//!
//! Two brokers each have their own cursor, and a record leaves the spool only after every
//! attached broker PUBACKed it. `lag` (pure `decide`, shell supervision once a second): past its
//! limit (`max_lag_bytes`, `max_lag_s` per `[[broker]]`) a broker is detached in the spool while
//! another broker is connected and within its limits (never the last one that flows), logged and
//! listed in `AgentState.detached`; it is attached again once under half of both limits. A
//! returning broker gets what is still in the spool after its cursor; what was removed meanwhile
//! is counted as missed. The MQTT client is rumqttc with rustls + ring.

pub mod backoff;
pub mod lag;
pub mod tracker;

use crate::commands::{self, Outcome};
use crate::config::BrokerConfig;
use crate::ingest::Shared;
use crate::payload;
use backoff::Backoff;
use dcim_spool::Class;
use dcim_wire::{AgentState, Channel, Topic, VERSION};
use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, LastWill, MqttOptions, Outgoing, Packet, QoS,
    TlsConfiguration, Transport,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tracing::{debug, info, warn};
use tracker::{Tag, Tracker};

/// Largest event batch (records) and payload read from the spool for one publish.
const EVENTS_PER_PUBLISH: usize = 200;
const BYTES_PER_PUBLISH: usize = 256 * 1024;
/// How long a graceful shutdown waits for outstanding acknowledgements.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(3);

/// Counters of one broker link, read by the health reporter.
#[derive(Debug, Default)]
pub struct LinkStatus {
    pub name: String,
    pub connected: AtomicBool,
    pub connects: AtomicU64,
    pub published: AtomicU64,
    pub acked_events: AtomicU64,
    pub acked_batches: AtomicU64,
}

fn topic(shared: &Shared, channel: Channel) -> String {
    Topic {
        site: shared.site.clone(),
        agent: shared.agent.clone(),
        channel,
    }
    .to_string()
}

fn state_payload(shared: &Shared, broker: &str, online: bool) -> Vec<u8> {
    let (pending, thinned, detached) = shared.with_spool(|s| {
        (
            s.pending_for(broker, Class::Event) + s.pending_for(broker, Class::Telemetry),
            s.stats().thinned_samples,
            s.detached().into_iter().map(|(b, _)| b).collect(),
        )
    });
    let now = shared.clock.now_ms();
    let drill = if online {
        shared.test_mode_at(now)
    } else {
        None
    };
    dcim_wire::encode(&AgentState {
        v: VERSION,
        agent: shared.agent.clone(),
        online,
        ts_ms: now,
        version: env!("CARGO_PKG_VERSION").into(),
        spool_pending: pending,
        thinned_samples: thinned,
        test: drill.is_some(),
        test_until_ms: drill.map(|d| d.until_ms),
        detached,
    })
}

/// Build the rustls client configuration (ring provider) for an `mqtts://` broker.
pub fn tls_config(
    ca_file: Option<&std::path::Path>,
    client_auth: Option<&(std::path::PathBuf, std::path::PathBuf)>,
) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use std::io::BufReader;
    let read_certs = |p: &std::path::Path| -> Result<Vec<CertificateDer<'static>>, String> {
        let f = std::fs::File::open(p).map_err(|e| format!("{}: {e}", p.display()))?;
        let certs: Result<Vec<_>, _> = rustls_pemfile::certs(&mut BufReader::new(f)).collect();
        let certs = certs.map_err(|e| format!("{}: {e}", p.display()))?;
        if certs.is_empty() {
            return Err(format!("{}: no PEM certificate found", p.display()));
        }
        Ok(certs)
    };
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(p) => {
            for c in read_certs(p)? {
                roots.add(c).map_err(|e| format!("{}: {e}", p.display()))?;
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            for c in native.certs {
                let _ = roots.add(c);
            }
            if roots.is_empty() {
                return Err("no ca_file given and no system root certificates found".into());
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    match client_auth {
        None => Ok(builder.with_no_client_auth()),
        Some((cert, key)) => {
            let certs = read_certs(cert)?;
            let f = std::fs::File::open(key).map_err(|e| format!("{}: {e}", key.display()))?;
            let key_der: PrivateKeyDer<'static> =
                rustls_pemfile::private_key(&mut BufReader::new(f))
                    .map_err(|e| format!("{}: {e}", key.display()))?
                    .ok_or_else(|| format!("{}: no PEM private key found", key.display()))?;
            builder
                .with_client_auth_cert(certs, key_der)
                .map_err(|e| format!("client certificate: {e}"))
        }
    }
}

/// MQTT options for one broker; the will is the offline `AgentState`.
pub fn mqtt_options(
    cfg: &BrokerConfig,
    client_id: &str,
    will_topic: String,
    will: Vec<u8>,
    tls: Option<&rustls::ClientConfig>,
) -> MqttOptions {
    let mut o = MqttOptions::new(client_id, cfg.endpoint.host.clone(), cfg.endpoint.port);
    o.set_keep_alive(cfg.keep_alive)
        .set_clean_session(true)
        .set_max_packet_size(1 << 20, 32 << 20)
        .set_inflight((cfg.inflight + 8).min(u16::MAX as usize) as u16)
        .set_last_will(LastWill::new(will_topic, will, QoS::AtLeastOnce, true));
    if let Some((u, p)) = &cfg.credentials {
        o.set_credentials(u.clone(), p.clone());
    }
    if let Some(tls) = tls {
        o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            Arc::new(tls.clone()),
        )));
    }
    o
}

struct Link {
    shared: Arc<Shared>,
    cfg: BrokerConfig,
    status: Arc<LinkStatus>,
    client: AsyncClient,
    tracker: Tracker,
    /// Last sequence number handed to the client, per class.
    sent: [u64; 2],
    connected: bool,
}

impl Link {
    fn publish(&mut self, topic: String, retain: bool, payload: Vec<u8>, tag: Tag) -> bool {
        match self
            .client
            .try_publish(topic, QoS::AtLeastOnce, retain, payload)
        {
            Ok(()) => {
                self.tracker.published(tag);
                self.status.published.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(e) => {
                debug!(broker = %self.cfg.name, error = %e, "request queue full");
                false
            }
        }
    }

    /// Hand records to the client until the in-flight window is full; events first.
    fn fill(&mut self) {
        if !self.connected {
            return;
        }
        let (events_topic, telemetry_topic) = (
            topic(&self.shared, Channel::Events),
            topic(&self.shared, Channel::Telemetry),
        );
        while self.tracker.spool_in_flight() < self.cfg.inflight {
            let after_ev = self.sent[0];
            // One batch carries one epoch: records written before the spool had an epoch go
            // out without one.
            let events = self.shared.with_spool(|s| {
                s.read_after(
                    Class::Event,
                    after_ev,
                    EVENTS_PER_PUBLISH,
                    BYTES_PER_PUBLISH,
                )
                .map(|mut recs| {
                    let epoch = recs
                        .first()
                        .map(|r| s.epoch_of(Class::Event, r.seq).to_owned())
                        .unwrap_or_default();
                    recs.retain(|r| s.epoch_of(Class::Event, r.seq) == epoch);
                    (epoch, recs)
                })
            });
            let (epoch, events) = match events {
                Ok(e) => e,
                Err(e) => {
                    warn!(broker = %self.cfg.name, error = %e, "spool read failed");
                    return;
                }
            };
            if let Some(last) = events.last().map(|r| r.seq) {
                let body = payload::event_batch(
                    &self.shared.agent,
                    &epoch,
                    events.iter().map(|r| r.payload.as_slice()),
                );
                let tag = Tag::Spool {
                    class: Class::Event,
                    last_seq: last,
                };
                if !self.publish(events_topic.clone(), false, body, tag) {
                    return;
                }
                self.sent[0] = last;
                continue;
            }
            let after_tel = self.sent[1];
            let batch = self
                .shared
                .with_spool(|s| s.read_after(Class::Telemetry, after_tel, 1, BYTES_PER_PUBLISH));
            match batch {
                Ok(mut b) if !b.is_empty() => {
                    let rec = b.remove(0);
                    let tag = Tag::Spool {
                        class: Class::Telemetry,
                        last_seq: rec.seq,
                    };
                    if !self.publish(telemetry_topic.clone(), false, rec.payload, tag) {
                        return;
                    }
                    self.sent[1] = rec.seq;
                }
                Ok(_) => return,
                Err(e) => {
                    warn!(broker = %self.cfg.name, error = %e, "spool read failed");
                    return;
                }
            }
        }
    }

    fn on_connack(&mut self, session_present: bool) {
        self.connected = true;
        self.status.connected.store(true, Ordering::Relaxed);
        self.status.connects.fetch_add(1, Ordering::Relaxed);
        let name = self.cfg.name.clone();
        self.sent = self.shared.with_spool(|s| {
            [
                s.acked(&name, Class::Event),
                s.acked(&name, Class::Telemetry),
            ]
        });
        info!(broker = %name, after_event = self.sent[0], after_telemetry = self.sent[1], "connected; replaying spool");
        let state = state_payload(&self.shared, &name, true);
        self.publish(topic(&self.shared, Channel::State), true, state, Tag::Other);
        if !session_present {
            let filter = format!(
                "{}/cmd/#",
                topic(&self.shared, Channel::State).trim_end_matches("/state")
            );
            if let Err(e) = self.client.try_subscribe(filter, QoS::AtLeastOnce) {
                warn!(broker = %name, error = %e, "could not subscribe to commands");
            }
        }
        self.fill();
    }

    fn on_puback(&mut self, pkid: u16) {
        for (class, seq) in self.tracker.acked(pkid) {
            let name = self.cfg.name.clone();
            if let Err(e) = self.shared.with_spool(|s| s.ack(&name, class, seq)) {
                warn!(broker = %name, error = %e, "could not record acknowledgement");
            }
            match class {
                Class::Event => &self.status.acked_events,
                Class::Telemetry => &self.status.acked_batches,
            }
            .fetch_max(seq, Ordering::Relaxed);
        }
        self.fill();
    }

    fn on_message(&mut self, topic_name: &str, payload: &[u8]) {
        match commands::handle(
            &self.shared.site,
            &self.shared.agent,
            &self.shared.devices,
            &self.shared.authority_keys,
            topic_name,
            payload,
        ) {
            Outcome::Ignore(why) => {
                debug!(broker = %self.cfg.name, topic = topic_name, why, "ignored message")
            }
            Outcome::Answer { result, command } => {
                info!(
                    broker = %self.cfg.name,
                    topic = topic_name,
                    id = %result.id,
                    user = command.as_ref().map(|c| c.user.as_str()).unwrap_or(""),
                    accepted = result.accepted,
                    reason = %result.reason,
                    "command answered"
                );
                let t = topic(&self.shared, Channel::CommandResult);
                self.publish(t, false, dcim_wire::encode(&result), Tag::Other);
            }
            Outcome::TestMode { on, command } => {
                let reason = self.shared.command_test_mode(
                    on,
                    self.shared.clock.now_ms(),
                    &command.user,
                    &command.id,
                );
                warn!(
                    broker = %self.cfg.name,
                    id = %command.id,
                    user = %command.user,
                    on,
                    reason = %reason,
                    "test mode command accepted"
                );
                let result = dcim_wire::CommandResult {
                    v: VERSION,
                    id: command.id.clone(),
                    accepted: true,
                    reason,
                };
                let t = topic(&self.shared, Channel::CommandResult);
                self.publish(t, false, dcim_wire::encode(&result), Tag::Other);
                // The retained state shows the drill at once.
                let state = state_payload(&self.shared, &self.cfg.name, true);
                self.publish(topic(&self.shared, Channel::State), true, state, Tag::Other);
            }
        }
    }

    /// Publishes the retained state (online, pending count, thinned samples, test mode).
    fn publish_state(&mut self) {
        let state = state_payload(&self.shared, &self.cfg.name, true);
        let t = topic(&self.shared, Channel::State);
        self.publish(t, true, state, Tag::Other);
    }

    fn handle(&mut self, ev: Event) {
        match ev {
            Event::Incoming(Packet::ConnAck(ack)) => self.on_connack(ack.session_present),
            Event::Incoming(Packet::PubAck(ack)) => self.on_puback(ack.pkid),
            Event::Incoming(Packet::Publish(p)) => self.on_message(&p.topic, &p.payload),
            Event::Outgoing(Outgoing::Publish(pkid)) => self.tracker.assigned(pkid),
            _ => {}
        }
    }
}

fn new_client(
    shared: &Shared,
    cfg: &BrokerConfig,
    tls: Option<&rustls::ClientConfig>,
) -> (AsyncClient, EventLoop) {
    // `{agent}-{site}`: unique per broker, and it starts with the agent id, which is what
    // dcim-server's broker gate requires of a client logging in as that agent.
    let client_id = format!("{}-{}", shared.agent, shared.site);
    let will = state_payload(shared, &cfg.name, false);
    let opts = mqtt_options(cfg, &client_id, topic(shared, Channel::State), will, tls);
    AsyncClient::new(opts, 512)
}

/// Run one broker link until `shutdown` becomes true; then drain briefly, publish the offline
/// state and disconnect.
pub async fn run(
    shared: Arc<Shared>,
    cfg: BrokerConfig,
    status: Arc<LinkStatus>,
    state_interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let tls = if cfg.endpoint.tls {
        match tls_config(cfg.ca_file.as_deref(), cfg.client_auth.as_ref()) {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::error!(broker = %cfg.name, error = %e, "TLS configuration unusable; this broker link is down");
                return;
            }
        }
    } else {
        None
    };
    let mut wake = shared.spooled.subscribe();
    let mut state_changed = shared.state_changed.subscribe();
    let mut backoff = Backoff::new(cfg.backoff_initial, cfg.backoff_max);
    let mut seed = (shared.clock.now_ms() as u64) ^ (std::process::id() as u64);
    loop {
        let (client, mut eventloop) = new_client(&shared, &cfg, tls.as_ref());
        let mut link = Link {
            shared: shared.clone(),
            cfg: cfg.clone(),
            status: status.clone(),
            client,
            tracker: Tracker::new(),
            sent: [0, 0],
            connected: false,
        };
        let watches = Watches {
            wake: &mut wake,
            state_changed: &mut state_changed,
            shutdown: &mut shutdown,
        };
        let Some(err) = session(
            &mut link,
            &mut eventloop,
            state_interval,
            &mut backoff,
            watches,
        )
        .await
        else {
            return;
        };
        status.connected.store(false, Ordering::Relaxed);
        // xorshift for jitter
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = backoff.next_delay((seed % 1000) as f64 / 1000.0);
        if link.connected {
            warn!(broker = %cfg.name, error = %err, in_flight = link.tracker.spool_in_flight(), retry_in_ms = delay.as_millis() as u64, "broker connection lost");
        } else {
            warn!(broker = %cfg.name, error = %err, retry_in_ms = delay.as_millis() as u64, "cannot connect to broker");
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.changed() => {
                if *shutdown.borrow() {
                    return;
                }
            }
        }
    }
}

/// What a broker session waits on besides the connection itself.
struct Watches<'a> {
    /// New records in the spool.
    wake: &'a mut watch::Receiver<u64>,
    /// Test mode or detached brokers changed: the retained state is republished.
    state_changed: &'a mut watch::Receiver<u64>,
    shutdown: &'a mut watch::Receiver<bool>,
}

/// One connection to the broker, from the connect attempt until it fails (the error is
/// returned) or shutdown (drained and closed, `None`).
async fn session(
    link: &mut Link,
    eventloop: &mut EventLoop,
    state_interval: Duration,
    backoff: &mut Backoff,
    w: Watches<'_>,
) -> Option<ConnectionError> {
    let mut state_tick = tokio::time::interval(state_interval);
    state_tick.tick().await;
    loop {
        tokio::select! {
            // (its sender lives in `Shared`, which this task holds: it never closes)
            _ = w.state_changed.changed(), if link.connected => {
                // Test mode started or ended: the retained state shows it at once.
                link.publish_state();
            }
            _ = state_tick.tick(), if link.connected => {
                // Refresh the retained state (pending count, thinned samples).
                link.publish_state();
            }
            ev = eventloop.poll() => match ev {
                Ok(ev) => {
                    if matches!(ev, Event::Incoming(Packet::ConnAck(_))) {
                        backoff.reset();
                    }
                    link.handle(ev);
                }
                Err(e) => return Some(e),
            },
            // Only while connected: winning this branch cancels `eventloop.poll()`, and a
            // poll cancelled mid-connect drops the half-open connection (the agent then
            // needed many attempts to reconnect under load).
            _ = w.wake.changed(), if link.connected => link.fill(),
            _ = w.shutdown.changed() => {
                if *w.shutdown.borrow() {
                    graceful_close(link, eventloop).await;
                    return None;
                }
            }
        }
    }
}

async fn graceful_close(link: &mut Link, eventloop: &mut EventLoop) {
    if !link.connected {
        return;
    }
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    // Send what the final flush added, then wait for the acknowledgements.
    link.fill();
    while !link.tracker.is_empty() && Instant::now() < deadline {
        match tokio::time::timeout_at(deadline.into(), eventloop.poll()).await {
            Ok(Ok(ev)) => link.handle(ev),
            _ => break,
        }
    }
    let state = state_payload(&link.shared, &link.cfg.name, false);
    let t = topic(&link.shared, Channel::State);
    link.publish(t, true, state, Tag::Other);
    let _ = link.client.try_disconnect();
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        match tokio::time::timeout_at(until.into(), eventloop.poll()).await {
            Ok(Ok(Event::Outgoing(Outgoing::Disconnect))) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(ev)) => link.handle(ev),
        }
    }
    info!(broker = %link.cfg.name, left_in_flight = link.tracker.spool_in_flight(), "disconnected");
}
