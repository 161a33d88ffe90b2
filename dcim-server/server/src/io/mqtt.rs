//! The ingest shell. Messages come from either:
//!
//! - the embedded broker: telemetry straight from its gate, which hands each publish to the
//!   lanes ([`crate::io::broker::TelemetryIntake`]; no second loopback hop, no copy in rumqttd's
//!   log), and the other topics through rumqttd's in-process link (`LinkRx`; no TCP between
//!   broker and server; `Notification::Unschedule` is answered with `wake()`, or the link
//!   stalls, #582), or
//! - an rumqttc client subscribed to every agent's streams on an external broker. It uses
//!   manual acknowledgements: a QoS 1 message is acknowledged to the broker only after what it
//!   carries is committed (events) or applied (telemetry, state), so a crash before the commit
//!   makes the broker redeliver it (persistent session, `clean_session = false`).
//!
//! and go through two lanes, so that a telemetry backlog never delays an alarm:
//!
//! - the **bulk lane**: telemetry, raw, to the decoder task, then to the bulk worker, in order
//!   (decoding and applying run on two cores);
//! - the **priority lane**: events, agent state and command results (decoded by the reader),
//!   and the samples of each telemetry batch whose role feeds an alarm rule (fire stages
//!   first; found by a byte scan and a non-allocating decode, [`crate::engine::ingest::PriorityRoles`]),
//!   handled by their own worker at once. The batch still follows in the bulk lane, in which
//!   those samples are then no longer new.
//!
//! An events batch the store cannot commit (a full disk) is not retried on the priority
//! worker, which would hold up every alarm behind it: it is deferred ([`crate::io::deferred`]),
//! unacknowledged and with its budget charge kept, and a retry task commits it, in order, once
//! the store can; the lanes go on meanwhile.
//!
//! Every message is stamped with its arrival when the reader takes it; both passes of a
//! telemetry batch (priority and bulk) give the ingest that time, so a sample stamped a little
//! in the future is clamped to the same time in both (see `crate::engine::ingest::clock`).
//!
//! With the embedded broker, every message carries the gate's budget charge
//! (`broker::budget`), given back when a worker has handled it; the link reader also checks
//! rumqttd's log offsets and counts and raises a skipped range (`ingest-loss` alarm, metric
//! `dcim_ingest_skipped_messages_total`).
//!
//! An rumqttc client is connected in both modes: it publishes the commands to agents (on the
//! embedded broker over loopback to its internal listener, with the server's credential).
//!
//! Why not rumqttc over loopback for the embedded ingest: rumqttd 0.20 does not set
//! TCP_NODELAY on accepted sockets, so each large publish it forwards waits for the client's
//! delayed ACK (~40 ms): about 20 batches/s. The in-process link has no such limit.
//!
//! `App::bulk_pause` pauses the bulk lane alone (tests use it to prove the priority lane does not
//! wait). `points` live events are serialised only while a stream listens to them.

use crate::app::App;
use crate::base::metrics::inc;
use crate::engine::ingest::{Decoded, Outcome, TELEMETRY};
use crate::io::broker::budget::Lane;
use crate::storage::store::{AgentRecord, EventRecord};
use bytes::Bytes;
use dcim_wire::{CommandResult, TelemetryBatch};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, Publish, QoS, TlsConfiguration, Transport};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub struct Target {
    pub host: String,
    pub port: u16,
    pub tls_ca: Option<Vec<u8>>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub clean_session: bool,
}

const SUBSCRIPTIONS: [&str; 4] = ["telemetry", "events", "state", "cmd_result"];

/// One message for a worker, already decoded (JSON decoding is the largest part of the
/// ingest's work; doing it on its own task keeps it off the workers, so they run on different
/// cores).
pub struct Incoming {
    pub topic: String,
    pub msg: Decoded,
    /// The rumqttc message to acknowledge after processing (external broker).
    pub ack: Option<Publish>,
    /// The gate's charge to give back once handled (embedded broker).
    pub charge: Option<crate::io::broker::budget::Charge>,
    /// When the reader took it off the broker (ingest lag, ingest-to-alarm latency).
    pub received: std::time::Instant,
    /// When the reader took the message (the ingest's `now_ms` for it).
    pub received_ms: i64,
}

/// A telemetry message not decoded yet, on its way to the decoder.
struct Raw {
    topic: String,
    payload: Bytes,
    ack: Option<Publish>,
    charge: Option<crate::io::broker::budget::Charge>,
    received: std::time::Instant,
    received_ms: i64,
}

/// What the priority lane handles: events, agent state, command results, and the samples of
/// a telemetry batch that feed an alarm rule (taken out ahead of the batch, see
/// [`crate::engine::ingest::PriorityRoles`]).
enum Priority {
    Message(Incoming),
    Samples {
        topic: String,
        batch: TelemetryBatch,
        received: std::time::Instant,
        /// The batch's arrival, as the bulk lane gets it.
        received_ms: i64,
    },
}

type Link = crate::io::broker::IngestLink;

/// The queues between the reader (link or client), the decoder and the two workers.
#[derive(Clone)]
struct Lanes {
    raw: mpsc::Sender<Raw>,
    priority: mpsc::UnboundedSender<Priority>,
    roles: Arc<crate::engine::ingest::PriorityRoles>,
    /// Messages handed to a lane and not handled yet (the link's idle check).
    pending: Arc<AtomicUsize>,
    /// Messages routed so far, from the link or from the gate (the link's idle check).
    routed: Arc<std::sync::atomic::AtomicU64>,
}

/// The gate hands telemetry to the lanes directly (embedded broker).
impl crate::io::broker::TelemetryIntake for Lanes {
    fn take(
        &self,
        topic: String,
        payload: Bytes,
        charge: Option<crate::io::broker::budget::Charge>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + '_>> {
        Box::pin(self.route(topic, payload, None, charge))
    }
}

impl Lanes {
    /// Routes one received message: telemetry to the decoder (its alarm samples also to the
    /// priority lane at once), everything else decoded to the priority lane. Returns false
    /// when the workers are gone.
    async fn route(
        &self,
        topic: String,
        payload: Bytes,
        ack: Option<Publish>,
        charge: Option<crate::io::broker::budget::Charge>,
    ) -> bool {
        self.pending.fetch_add(1, Ordering::Relaxed);
        self.routed.fetch_add(1, Ordering::Relaxed);
        let received = std::time::Instant::now();
        let received_ms = dcim_clock::now_ms();
        if topic.ends_with("/telemetry") {
            if let Some(batch) = self.roles.extract(&payload) {
                let _ = self.priority.send(Priority::Samples {
                    topic: topic.clone(),
                    batch,
                    received,
                    received_ms,
                });
            }
            let raw = Raw {
                topic,
                payload,
                ack,
                charge,
                received,
                received_ms,
            };
            return self.raw.send(raw).await.is_ok();
        }
        let msg = crate::engine::ingest::decode(&topic, &payload);
        self.priority
            .send(Priority::Message(Incoming {
                topic,
                msg,
                ack,
                charge,
                received,
                received_ms,
            }))
            .is_ok()
    }
}

/// The shared end of a handled message: acknowledge it (external broker), give the gate's
/// charge back (embedded broker).
async fn finish(
    client: &AsyncClient,
    budgets: Option<&crate::io::broker::budget::Budgets>,
    pending: &AtomicUsize,
    ack: Option<Publish>,
    charge: Option<crate::io::broker::budget::Charge>,
) {
    release(client, budgets, ack, charge).await;
    pending.fetch_sub(1, Ordering::Relaxed);
}

/// Acknowledges and gives the charge back, for a message no longer counted as waiting for a
/// worker (a deferred events batch, once committed).
async fn release(
    client: &AsyncClient,
    budgets: Option<&crate::io::broker::budget::Budgets>,
    ack: Option<Publish>,
    charge: Option<crate::io::broker::budget::Charge>,
) {
    if let Some(p) = &ack {
        let _ = client.ack(p).await;
    }
    if let (Some(b), Some(c)) = (budgets, charge) {
        b.release(&c);
    }
}

/// rumqttd dropped `skipped` messages of a filter before the ingest read them: counted,
/// logged, and raised as the `ingest-loss` alarm (it never happens while the gate's budget
/// holds; see `broker::budget`).
async fn report_skip(app: &App, lane: Lane, skipped: u64) {
    inc(&app.metrics.ingest_skipped_messages_total, skipped);
    tracing::error!(
        ?lane,
        skipped,
        "the embedded broker dropped messages before the ingest read them"
    );
    let now = app.now_ms();
    let mut f = app.plant.facility.lock().await;
    let changes = f.on_ingest_loss(now);
    if let Err(e) = app.commit_changes(&f, &changes, None).await {
        app.store_write_failed("committing alarm changes", e.as_ref());
        tracing::error!("committing alarm changes: {e:#}");
    }
}

/// Starts the broker client's event loop, the in-process link reader (embedded broker), the
/// telemetry decoder and the two ingest workers: the bulk lane (telemetry batches, in order)
/// and the priority lane (events, state, command results, and the alarm samples of telemetry),
/// so that a telemetry backlog never delays an alarm.
pub fn spawn(
    app: Arc<App>,
    target: Target,
    link: Option<Link>,
    stop: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let subscribe = link.is_none();
    let (client, eventloop) = AsyncClient::new(client_options(&app, &target, subscribe), 1024);
    let _ = app.intake.mqtt.set(client.clone());
    // The embedded broker's gate bounds what is unread by its budget, so the raw queue never
    // blocks the link (which would hold events behind telemetry); an external broker's
    // client is bounded here instead (the broker keeps the rest in the persistent session).
    let raw_capacity = if subscribe { 1024 } else { 1 << 20 };
    let (raw_tx, raw_rx) = mpsc::channel::<Raw>(raw_capacity);
    let (bulk_tx, bulk_rx) = mpsc::channel::<Incoming>(16);
    let (prio_tx, prio_rx) = mpsc::unbounded_channel::<Priority>();
    let roles = Arc::new(crate::engine::ingest::PriorityRoles::new(
        &crate::engine::facility::alarm_roles(),
    ));
    let lanes = Lanes {
        raw: raw_tx,
        priority: prio_tx,
        roles,
        pending: app.ops.ingest_pending.clone(),
        routed: Default::default(),
    };
    let mut tasks = Vec::new();
    // Tells the broker's gate which events are handled, so it releases the agents' PUBACKs.
    let events_handled = link.as_ref().map(|l| l.events_handled.clone());
    let ends = Ends {
        client: client.clone(),
        budgets: link.as_ref().map(|l| l.budgets.clone()),
        pending: lanes.pending.clone(),
    };
    if let Some(link) = link {
        // From now on the gate hands telemetry to the lanes itself.
        link.intake.set(Some(Arc::new(lanes.clone())));
        let reader = read_link(app.clone(), link, lanes.clone(), stop.clone());
        tasks.push(tokio::spawn(reader));
    }
    let poller = tokio::spawn(poll_client(
        app.clone(),
        client,
        eventloop,
        subscribe,
        lanes,
        stop.clone(),
    ));
    let decoder = tokio::spawn(decode_telemetry(raw_rx, bulk_tx));
    let bulk = tokio::spawn(bulk_lane(app.clone(), bulk_rx, ends.clone(), stop.clone()));
    let deferred = Arc::new(crate::io::deferred::DeferredEvents::default());
    let priority = tokio::spawn(priority_lane(
        app.clone(),
        prio_rx,
        ends.clone(),
        deferred.clone(),
        events_handled.clone(),
        stop.clone(),
    ));
    // Events that could not be committed (a full disk) are tried again in order, without
    // holding up either lane meanwhile.
    let retry = tokio::spawn(retry_deferred(
        app.clone(),
        deferred,
        ends,
        events_handled,
        stop.clone(),
    ));
    let marks = tokio::spawn(save_marks_every(app, stop));
    tasks.extend([poller, decoder, bulk, priority, retry, marks]);
    tasks
}

/// The broker client's options: keep-alive, session, manual acknowledgements when it
/// subscribes (external broker), credentials and TLS.
fn client_options(app: &App, target: &Target, subscribe: bool) -> MqttOptions {
    let mut opts = MqttOptions::new(
        app.config.broker.client_id.clone(),
        target.host.clone(),
        target.port,
    );
    opts.set_keep_alive(Duration::from_secs(30))
        .set_clean_session(target.clean_session)
        .set_manual_acks(subscribe)
        .set_inflight(200)
        .set_max_packet_size(app.config.broker.max_payload + 1024, 64 * 1024);
    if let (Some(u), Some(p)) = (&target.username, &target.password) {
        opts.set_credentials(u.clone(), p.clone());
    }
    if let Some(ca) = &target.tls_ca {
        opts.set_transport(Transport::tls_with_config(TlsConfiguration::Simple {
            ca: ca.clone(),
            alpn: None,
            client_auth: None,
        }));
    }
    opts
}

/// What a worker needs to finish a handled message ([`finish`], [`release`]).
#[derive(Clone)]
struct Ends {
    client: AsyncClient,
    budgets: Option<Arc<crate::io::broker::budget::Budgets>>,
    pending: Arc<AtomicUsize>,
}

/// The embedded broker's in-process link reader: subscribes, routes every forwarded message
/// to the lanes, checks rumqttd's log offsets, and gives back stale budget charges when idle.
async fn read_link(app: Arc<App>, link: Link, lanes: Lanes, mut stop: watch::Receiver<bool>) {
    let crate::io::broker::IngestLink {
        tx: mut link_tx,
        rx: mut link_rx,
        budgets: link_budgets,
        ..
    } = link;
    for leaf in SUBSCRIPTIONS {
        if let Err(e) = link_tx.subscribe(dcim_wire::Topic::filter_all(leaf)) {
            tracing::error!("subscribing the in-process link: {e}");
            return;
        }
    }
    app.metrics.mqtt_connected.store(1, Ordering::Relaxed);
    let mut offsets = [crate::io::broker::budget::OffsetTracker::default(); 3];
    let mut last_read = tokio::time::Instant::now();
    let mut routed = lanes.routed.load(Ordering::Relaxed);
    let mut idle = tokio::time::interval(Duration::from_secs(1));
    loop {
        let n = tokio::select! {
            _ = crate::base::stop::stopped(&mut stop) => break,
            _ = idle.tick() => {
                // Idle with nothing queued: nothing charged can still be unread, so
                // a charge left over (a publish cut between the gate and rumqttd) is
                // given back. Telemetry the gate hands over directly counts as activity.
                let now_routed = lanes.routed.load(Ordering::Relaxed);
                if now_routed != routed {
                    routed = now_routed;
                    last_read = tokio::time::Instant::now();
                }
                if last_read.elapsed() >= Duration::from_secs(2)
                    && lanes.pending.load(Ordering::Relaxed) == 0
                {
                    resync_budgets(&app, &link_budgets);
                }
                continue;
            }
            n = link_rx.next() => n,
        };
        match n {
            Ok(Some(rumqttd::Notification::Forward(f))) => {
                last_read = tokio::time::Instant::now();
                let topic = String::from_utf8_lossy(&f.publish.topic).into_owned();
                let lane = Lane::of_topic(&topic);
                if let (Some(lane), Some((_, offset))) = (lane, f.cursor) {
                    let skipped = offsets[lane as usize].on_read(offset);
                    if skipped > 0 {
                        report_skip(&app, lane, skipped).await;
                    }
                }
                let charge = link_budgets.charge_of_message(
                    &topic,
                    crate::io::broker::budget::charge_of(
                        f.publish.topic.len(),
                        f.publish.payload.len(),
                    ),
                );
                if !lanes.route(topic, f.publish.payload, None, charge).await {
                    break;
                }
            }
            // Without this the router stops scheduling the link (#582).
            Ok(Some(rumqttd::Notification::Unschedule)) => {
                if let Err(e) = link_rx.wake().await {
                    tracing::error!("in-process link: {e}");
                    break;
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!("in-process link to the embedded broker closed: {e}");
                break;
            }
        }
    }
    app.metrics.mqtt_connected.store(0, Ordering::Relaxed);
    drop(link_tx);
}

/// Gives back the budget charges of publishes the ingest never received (the link is idle
/// with nothing queued).
fn resync_budgets(app: &App, budgets: &crate::io::broker::budget::Budgets) {
    budgets.shares.resync();
    for lane in [Lane::Telemetry, Lane::Events, Lane::Other] {
        let n = budgets.lane(lane).resync();
        if n > 0 {
            inc(&app.metrics.broker_budget_resyncs_total, 1);
            tracing::warn!(
                ?lane,
                bytes = n,
                "broker budget: gave back charges of publishes the ingest never received"
            );
        }
    }
}

/// The rumqttc client's event loop: routes what it receives (external broker), resubscribes
/// after a connection without session, and reconnects with backoff.
async fn poll_client(
    app: Arc<App>,
    client: AsyncClient,
    mut eventloop: rumqttc::EventLoop,
    subscribe: bool,
    lanes: Lanes,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let ev = tokio::select! {
            _ = crate::base::stop::stopped(&mut stop) => break,
            ev = eventloop.poll() => ev,
        };
        match ev {
            // In embedded mode this client only publishes commands, yet rumqttd 0.20 also
            // forwards it what the in-process link subscribed to (observed: every message
            // twice). Those copies are ignored; the link is the ingest path.
            Ok(Event::Incoming(Packet::Publish(_))) if !subscribe => {}
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let payload = p.payload.clone();
                if !lanes.route(p.topic.clone(), payload, Some(p), None).await {
                    break;
                }
            }
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                backoff = Duration::from_millis(100);
                app.metrics.mqtt_connected.store(1, Ordering::Relaxed);
                tracing::info!(
                    session_present = ack.session_present,
                    "ingest connected to the broker"
                );
                // rumqttc does not resubscribe by itself (#250).
                if !ack.session_present {
                    let filters = SUBSCRIPTIONS.iter().map(|leaf| rumqttc::SubscribeFilter {
                        path: dcim_wire::Topic::filter_all(leaf),
                        qos: QoS::AtLeastOnce,
                    });
                    if let Err(e) = client.try_subscribe_many(filters) {
                        tracing::error!("subscribing: {e}");
                    }
                }
            }
            Ok(_) => {}
            Err(e) => {
                if subscribe {
                    app.metrics.mqtt_connected.store(0, Ordering::Relaxed);
                }
                tracing::warn!("broker connection: {e}; retrying in {backoff:?}");
                tokio::select! {
                    _ = crate::base::stop::stopped(&mut stop) => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
    let _ = client.try_disconnect();
}

/// The decoder: telemetry JSON to batches, in order, on its own task.
async fn decode_telemetry(mut raw_rx: mpsc::Receiver<Raw>, bulk_tx: mpsc::Sender<Incoming>) {
    while let Some(r) = raw_rx.recv().await {
        let msg = crate::engine::ingest::decode(&r.topic, &r.payload);
        let m = Incoming {
            topic: r.topic,
            msg,
            ack: r.ack,
            charge: r.charge,
            received: r.received,
            received_ms: r.received_ms,
        };
        if bulk_tx.send(m).await.is_err() {
            break;
        }
    }
}

/// The bulk worker: decoded telemetry batches, in order, each under the bulk pause lock.
async fn bulk_lane(
    app: Arc<App>,
    mut bulk_rx: mpsc::Receiver<Incoming>,
    ends: Ends,
    stop: watch::Receiver<bool>,
) {
    while let Some(m) = bulk_rx.recv().await {
        if *stop.borrow() {
            break;
        }
        let pause = app.intake.bulk_pause.read().await;
        let handled = crate::base::observe::RECEIVED
            .scope(
                m.received,
                process(&app, &m.topic, m.msg, m.received_ms, &stop),
            )
            .await;
        drop(pause);
        // Only events are ever deferred, and they take the priority lane.
        if let Handled::Ack = handled {
            app.ops.ingest_handled(m.received);
            finish(
                &ends.client,
                ends.budgets.as_deref(),
                &ends.pending,
                m.ack,
                m.charge,
            )
            .await;
        }
    }
}

/// The priority worker: alarm samples of telemetry, events (deferred behind an agent's
/// earlier events that wait for the store), agent state and command results.
async fn priority_lane(
    app: Arc<App>,
    mut prio_rx: mpsc::UnboundedReceiver<Priority>,
    ends: Ends,
    deferred: Arc<crate::io::deferred::DeferredEvents>,
    events_handled: Option<crate::io::broker::EventsHandled>,
    stop: watch::Receiver<bool>,
) {
    while let Some(p) = prio_rx.recv().await {
        if *stop.borrow() {
            break;
        }
        let m = match p {
            Priority::Samples {
                topic,
                batch,
                received,
                received_ms,
            } => {
                crate::base::observe::RECEIVED
                    .scope(
                        received,
                        handle_priority_samples(&app, &topic, batch, received_ms),
                    )
                    .await;
                continue;
            }
            Priority::Message(m) => m,
        };
        priority_message(&app, &ends, &deferred, events_handled.as_ref(), m, &stop).await;
    }
}

/// One message of the priority lane: deferred behind the agent's events that wait for the
/// store, or processed, then finished (and its events marked handled for the gate) or
/// deferred.
async fn priority_message(
    app: &App,
    ends: &Ends,
    deferred: &crate::io::deferred::DeferredEvents,
    events_handled: Option<&crate::io::broker::EventsHandled>,
    m: Incoming,
    stop: &watch::Receiver<bool>,
) {
    let mark = events_handled.and_then(|_| {
        crate::io::broker::events_mark(&m.msg).map(|(a, e, s)| (a.to_owned(), e.to_owned(), s))
    });
    // Events of an agent whose earlier events wait for the store wait behind them
    // (commit order is sequence order); everything else goes on.
    let received = m.received;
    if let Some(agent) = crate::io::deferred::events_agent(&m.msg)
        && deferred.holds(agent)
    {
        // Handed on: it waits for the store now, not for a worker (the store's
        // disk-full state says why; /health must not call the ingest stalled).
        let p = crate::io::deferred::Pending {
            topic: m.topic,
            msg: m.msg,
            ack: m.ack,
            charge: m.charge,
            mark,
            received_ms: m.received_ms,
        };
        defer(app, ends, deferred, p, received, stop).await;
        return;
    }
    let handled = crate::base::observe::RECEIVED
        .scope(received, process(app, &m.topic, m.msg, m.received_ms, stop))
        .await;
    match handled {
        Handled::Ack => {
            app.ops.ingest_handled(received);
            finish(
                &ends.client,
                ends.budgets.as_deref(),
                &ends.pending,
                m.ack,
                m.charge,
            )
            .await;
            // Committed, duplicate or refused for good: the gate may release the
            // PUBACK.
            if let (Some(h), Some((agent, epoch, seq))) = (events_handled, mark) {
                h.mark(&agent, &epoch, seq);
            }
        }
        Handled::Hold => {}
        Handled::Defer(msg) => {
            let p = crate::io::deferred::Pending {
                topic: m.topic,
                msg,
                ack: m.ack,
                charge: m.charge,
                mark,
                received_ms: m.received_ms,
            };
            defer(app, ends, deferred, p, received, stop).await;
        }
    }
}

/// Hands an events message on to the deferred queue: it no longer waits for a worker (so
/// `/health` does not call the ingest stalled) but for the store.
async fn defer(
    app: &App,
    ends: &Ends,
    deferred: &crate::io::deferred::DeferredEvents,
    p: crate::io::deferred::Pending,
    received: std::time::Instant,
    stop: &watch::Receiver<bool>,
) {
    app.ops.ingest_handled(received);
    ends.pending.fetch_sub(1, Ordering::Relaxed);
    deferred.push(app, p, stop).await;
}

/// Retries the deferred events every half second, in order, until one cannot be committed.
async fn retry_deferred(
    app: Arc<App>,
    deferred: Arc<crate::io::deferred::DeferredEvents>,
    ends: Ends,
    events_handled: Option<crate::io::broker::EventsHandled>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = crate::base::stop::stopped(&mut stop) => break,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        while let Some((topic, msg, received_ms)) = deferred.front() {
            match process(&app, &topic, msg, received_ms, &stop).await {
                Handled::Ack => {
                    if let Some(p) = deferred.pop(&app) {
                        // Its pending count was given back when it was deferred.
                        release(&ends.client, ends.budgets.as_deref(), p.ack, p.charge).await;
                        if let (Some(h), Some((agent, epoch, seq))) = (&events_handled, p.mark) {
                            h.mark(&agent, &epoch, seq);
                        }
                    }
                }
                Handled::Hold | Handled::Defer(_) => break,
            }
        }
    }
}

/// Saves the agents' sequence marks every two seconds.
async fn save_marks_every(app: Arc<App>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = crate::base::stop::stopped(&mut stop) => break,
            _ = tokio::time::sleep(Duration::from_secs(2)) => save_marks(&app).await,
        }
    }
}

/// The priority lane's share of a telemetry batch: its alarm samples go through the same
/// access checks and latest-value rule as the batch (an older or repeated sample changes
/// nothing, so a replayed batch raises nothing), feed the live table and the alarm engine, and
/// what that changes is committed now. The batch itself follows in the bulk lane, where these
/// samples are no longer new.
async fn handle_priority_samples(app: &App, topic: &str, batch: TelemetryBatch, received_ms: i64) {
    let now = app.now_ms();
    let samples = {
        let mut ing = app.intake.ingest.lock().expect("ingest lock");
        ing.apply_priority(topic, batch, None, received_ms)
    };
    if samples.is_empty() {
        return;
    }
    inc(
        &app.metrics.ingest_priority_samples_total,
        samples.len() as u64,
    );
    let (site, agent) = dcim_wire::Topic::parse(topic)
        .map(|t| (t.site, t.agent))
        .unwrap_or_default();
    // The bulk pass finds these samples already taken (not a change), so everything it does
    // with changed samples is done here for them: the time-series export, the alarm engine,
    // the fire authority's view and the live `points` event (the console learns of a breaker
    // or a fire stage at once, not at the next reading of another point).
    if let Some(influx) = &app.intake.influx {
        influx.push(&site, &agent, &samples);
    }
    {
        let mut f = app.plant.facility.lock().await;
        let changes = f.on_samples(&samples, now);
        if let Err(e) = app.commit_changes(&f, &changes, None).await {
            app.store_write_failed("committing alarm changes", e.as_ref());
            tracing::error!("committing alarm changes: {e:#}");
        }
    }
    crate::io::authority_io::on_samples(app, &agent, &samples).await;
    if app.metrics.sse_points_clients.load(Ordering::Relaxed) > 0 {
        app.publish_live(
            "points",
            &PointsEvent {
                agent: &agent,
                samples: &samples,
                site: &site,
            },
        );
    }
}

/// Persists the telemetry high-water marks (events have theirs in the events table).
pub async fn save_marks(app: &App) {
    let marks: Vec<crate::storage::store::StreamMark> = {
        let ing = app.intake.ingest.lock().expect("ingest lock");
        ing.high_waters()
            .filter(|(_, _, s, _)| *s == TELEMETRY)
            .map(|(a, e, s, q)| (a.to_owned(), e.to_owned(), s.to_owned(), q as i64))
            .collect()
    };
    if !marks.is_empty()
        && let Err(e) = app.store.save_stream_seq(&marks).await
    {
        app.store_write_failed("saving stream marks", &e);
        tracing::error!("saving stream marks: {e}");
    }
}

/// Processes one message; returns whether it may be acknowledged to the broker.
pub async fn handle(app: &App, topic: &str, payload: &[u8], stop: &watch::Receiver<bool>) -> bool {
    handle_decoded(
        app,
        topic,
        crate::engine::ingest::decode(topic, payload),
        stop,
    )
    .await
}

/// What became of one message.
pub enum Handled {
    /// Committed, applied, a duplicate or refused for good: acknowledge it.
    Ack,
    /// Not acknowledged (the server is stopping): the broker or the agent sends it again.
    Hold,
    /// Events the store could not commit (a full disk): try them again later, in order.
    Defer(Decoded),
}

/// Processes one decoded message received now; returns whether it may be acknowledged to the
/// broker (events the store cannot commit now are not).
pub async fn handle_decoded(
    app: &App,
    topic: &str,
    msg: Decoded,
    stop: &watch::Receiver<bool>,
) -> bool {
    matches!(
        process(app, topic, msg, app.now_ms(), stop).await,
        Handled::Ack
    )
}

/// The live `points` event: serialised straight from the samples.
#[derive(serde::Serialize)]
struct PointsEvent<'a> {
    agent: &'a str,
    samples: &'a [dcim_points::Sample],
    site: &'a str,
}

/// Processes one decoded message that arrived at `received_ms` (see [`Handled`]).
pub async fn process(
    app: &App,
    topic: &str,
    msg: Decoded,
    received_ms: i64,
    stop: &watch::Receiver<bool>,
) -> Handled {
    let m = &app.metrics;
    inc(&m.ingest_messages_total, 1);
    let now = app.now_ms();
    // An events batch is kept until committed: it is deferred when the store refuses it.
    let keep = matches!(msg, Decoded::Events(..)).then(|| msg.clone());
    match apply_decoded(app, msg, received_ms) {
        Outcome::Telemetry {
            site,
            agent,
            samples,
            taken,
            refused_new,
            new_epoch,
            future,
            ..
        } => {
            inc(&m.ingest_samples_total, taken);
            report_telemetry(
                app,
                &site,
                &agent,
                new_epoch.as_ref(),
                &future,
                refused_new,
                now,
            )
            .await;
            apply_samples(app, &site, &agent, &samples, now).await;
            crate::engine::ingest::recycle(samples);
        }
        Outcome::Events {
            site,
            agent,
            epoch,
            events,
            gap,
            new_epoch,
        } => {
            report_events(app, &site, &agent, new_epoch.as_ref(), gap, now).await;
            let records = event_records(&site, &agent, &epoch, &events, received_ms);
            // Events are never dropped: a failed commit defers the batch (tried again in order,
            // acknowledged only once committed), and the lanes go on meanwhile.
            if let Err(held) = commit_events(app, &agent, &records, keep, stop).await {
                return held;
            }
            events_committed(app, &agent, &epoch, &events, &records, now).await;
        }
        Outcome::State { site, state } => store_agent_state(app, site, &state, now).await,
        Outcome::CommandResult {
            site,
            agent,
            result,
        } => audit_command_result(app, &site, &agent, &result).await,
        Outcome::Duplicate {
            agent,
            stream,
            count,
        } => {
            inc(&m.ingest_duplicate_batches_total, 1);
            inc(&m.ingest_duplicate_items_total, count);
            tracing::debug!(%agent, stream, count, "duplicate batch dropped");
        }
        Outcome::Rejected(r) => report_rejected(app, topic, &r).await,
    }
    Handled::Ack
}

/// A telemetry batch's stream anomalies: a new epoch, samples stamped in the future, and
/// samples of new points refused (logged once per agent and minute).
async fn report_telemetry(
    app: &App,
    site: &str,
    agent: &str,
    new_epoch: Option<&crate::engine::ingest::NewEpoch>,
    future: &crate::engine::ingest::Future,
    refused_new: u64,
    now: i64,
) {
    if let Some(n) = new_epoch {
        crate::io::stream_report::new_epoch(app, site, agent, n, now).await;
    }
    crate::io::stream_report::future_samples(app, agent, future, now).await;
    if refused_new > 0 {
        inc(&app.metrics.ingest_new_points_refused_total, refused_new);
        // Once per agent and window: the first refusals of the minute.
        let w = app
            .intake
            .ingest
            .lock()
            .expect("ingest lock")
            .new_point_window(agent);
        if w.is_some_and(|(_, _, r)| r == refused_new) {
            tracing::warn!(
                %agent,
                limit = app.config.broker.new_points_per_agent_per_min,
                "agent exceeds its budget of new points per minute: samples of further new points are refused until the next minute"
            );
        }
    }
}

/// The samples that changed their point's latest value: the time-series writer, the alarm engine (its changes
/// committed), the authority's view, and the live stream when someone watches it.
async fn apply_samples(
    app: &App,
    site: &str,
    agent: &str,
    samples: &[dcim_points::Sample],
    now: i64,
) {
    if let Some(influx) = &app.intake.influx {
        influx.push(site, agent, samples);
    }
    if samples.is_empty() {
        return;
    }
    let mut f = app.plant.facility.lock().await;
    let changes = f.on_samples(samples, now);
    if let Err(e) = app.commit_changes(&f, &changes, None).await {
        app.store_write_failed("committing alarm changes", e.as_ref());
        tracing::error!("committing alarm changes: {e:#}");
    }
    drop(f);
    crate::io::authority_io::on_samples(app, agent, samples).await;
    if app.metrics.sse_points_clients.load(Ordering::Relaxed) > 0 {
        app.publish_live(
            "points",
            &PointsEvent {
                agent,
                samples,
                site,
            },
        );
    }
}

/// Runs a decoded message through the ingest (under its lock) and updates the point count.
#[inline]
fn apply_decoded(app: &App, msg: Decoded, received_ms: i64) -> Outcome {
    let mut ing = app.intake.ingest.lock().expect("ingest lock");
    let o = ing.apply(msg, None, received_ms);
    app.metrics
        .points
        .store(ing.point_count() as i64, Ordering::Relaxed);
    o
}

/// An events batch's stream anomalies: a new epoch, and a gap in the sequence.
async fn report_events(
    app: &App,
    site: &str,
    agent: &str,
    new_epoch: Option<&crate::engine::ingest::NewEpoch>,
    gap: u64,
    now: i64,
) {
    if let Some(n) = new_epoch {
        crate::io::stream_report::new_epoch(app, site, agent, n, now).await;
    }
    if gap > 0 {
        inc(&app.metrics.ingest_event_gaps_total, gap);
        tracing::warn!(%agent, gap, "event sequence has a gap");
    }
}

/// A command's result, in the audit log.
async fn audit_command_result(app: &App, site: &str, agent: &str, result: &CommandResult) {
    let _ = app
        .audit(
            &format!("mqtt:{agent}"),
            "command.result",
            &format!("{site}/{agent}"),
            serde_json::to_value(result).unwrap_or_default(),
        )
        .await;
}

/// The store's rows for an events batch.
fn event_records(
    site: &str,
    agent: &str,
    epoch: &str,
    events: &[dcim_wire::Event],
    received_ms: i64,
) -> Vec<EventRecord> {
    events
        .iter()
        .map(|e| EventRecord {
            site: site.to_owned(),
            agent: agent.to_owned(),
            epoch: epoch.to_owned(),
            seq: e.seq as i64,
            id: e.id.clone(),
            ts_ms: e.ts_ms,
            device: e.device.clone(),
            kind: e.kind.clone(),
            severity: serde_json::to_value(e.severity)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            message: e.message.clone(),
            data: e.data.clone(),
            test: e.test,
            received_ms,
        })
        .collect()
}

/// Commits an events batch. On failure, the batch is held (stopping) or deferred (`keep`).
async fn commit_events(
    app: &App,
    agent: &str,
    records: &[EventRecord],
    keep: Option<Decoded>,
    stop: &watch::Receiver<bool>,
) -> Result<(), Handled> {
    let t0 = std::time::Instant::now();
    let inserted = app.store.insert_events(records).await;
    app.ops.commit_took("events", t0);
    match inserted {
        Ok(_) => {
            app.store_write_ok();
            Ok(())
        }
        Err(e) => {
            app.store_write_failed("committing events", &e);
            tracing::error!(%agent, "committing events: {e}; kept and tried again");
            if *stop.borrow() {
                return Err(Handled::Hold);
            }
            Err(match keep {
                Some(msg) => Handled::Defer(msg),
                None => Handled::Hold,
            })
        }
    }
}

/// After an events batch is committed: the ingest's committed mark, the live stream, the
/// authority's view and the alarm engine (its changes committed).
async fn events_committed(
    app: &App,
    agent: &str,
    epoch: &str,
    events: &[dcim_wire::Event],
    records: &[EventRecord],
    now: i64,
) {
    let last = events.iter().map(|e| e.seq).max().unwrap_or(0);
    app.intake
        .ingest
        .lock()
        .expect("ingest lock")
        .events_committed(agent, epoch, last);
    inc(&app.metrics.ingest_events_total, records.len() as u64);
    for r in records {
        app.publish_live("event", r);
    }
    crate::io::authority_io::on_events(app, agent, events).await;
    let mut f = app.plant.facility.lock().await;
    for e in events {
        let changes = f.on_event(&e.kind, &e.device, now);
        if let Err(e) = app.commit_changes(&f, &changes, None).await {
            app.store_write_failed("committing alarm changes", e.as_ref());
            tracing::error!("committing alarm changes: {e:#}");
        }
    }
}

/// An agent's state: stored (this replica's view, `online` as every replica sees it) and
/// published; an uplink the agent detached (its site gone) is alarmed.
async fn store_agent_state(app: &App, site: String, state: &dcim_wire::AgentState, now: i64) {
    let rec = AgentRecord {
        agent: state.agent.clone(),
        site,
        online: state.online,
        ts_ms: state.ts_ms,
        version: state.version.clone(),
        spool_pending: state.spool_pending as i64,
        thinned_samples: state.thinned_samples as i64,
        last_seen_ms: now,
    };
    // Multi-site: this replica's view, and `online` as every replica sees it; an
    // uplink the agent detached (its site gone) is alarmed.
    crate::io::cluster_hooks::uplink_alarms(app, &state.agent, &state.detached).await;
    let rec = crate::io::cluster_hooks::agent_state(app, rec);
    let t0 = std::time::Instant::now();
    let upserted = app.store.upsert_agent(&rec).await;
    app.ops.commit_took("agent_state", t0);
    match upserted {
        Ok(()) => app.store_write_ok(),
        Err(e) => {
            app.store_write_failed("storing agent state", &e);
            tracing::error!("storing agent state: {e}");
        }
    }
    app.publish_live("agent", &rec);
}

/// A refused message: an access-control refusal is counted, logged and audited; anything
/// else is counted and logged as malformed.
async fn report_rejected(app: &App, topic: &str, r: &crate::engine::ingest::Rejection) {
    if r.is_acl() {
        inc(&app.metrics.acl_rejections_total, 1);
        tracing::warn!(topic = %topic, ?r, "message refused by access control");
        let agent = dcim_wire::Topic::parse(topic)
            .map(|t| t.agent)
            .unwrap_or_default();
        if let Err(e) = app
            .audit(
                &format!("mqtt:{agent}"),
                "mqtt.rejected",
                topic,
                serde_json::to_value(r).unwrap_or_default(),
            )
            .await
        {
            tracing::error!("auditing a rejection: {e}");
        }
    } else {
        inc(&app.metrics.ingest_malformed_total, 1);
        tracing::warn!(topic = %topic, ?r, "malformed message dropped");
    }
}
