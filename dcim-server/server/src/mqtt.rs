//! The ingest shell. Messages reach one worker task, in order, from either:
//!
//! - the embedded broker's in-process link (rumqttd `LinkRx`; no TCP between broker and
//!   server; `Notification::Unschedule` is answered with `wake()`, or the link stalls, #582), or
//! - an rumqttc client subscribed to every agent's streams on an external broker. It uses
//!   manual acknowledgements: a QoS 1 message is acknowledged to the broker only after what it
//!   carries is committed (events) or applied (telemetry, state), so a crash before the commit
//!   makes the broker redeliver it (persistent session, `clean_session = false`).
//!
//! An rumqttc client is connected in both modes: it publishes the commands to agents (on the
//! embedded broker over loopback to its internal listener, with the server's credential).
//!
//! Why not rumqttc over loopback for the embedded ingest: rumqttd 0.20 does not set
//! TCP_NODELAY on accepted sockets, so each large publish it forwards waits for the client's
//! delayed ACK (~40 ms): about 20 batches/s. The in-process link has no such limit.

use crate::ingest::{Decoded, EVENTS, Outcome, TELEMETRY};
use crate::metrics::inc;
use crate::store::{AgentRecord, EventRecord};
use crate::{App, now_ms};
use bytes::Bytes;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, Publish, QoS, TlsConfiguration, Transport};
use std::sync::Arc;
use std::sync::atomic::Ordering;
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

/// One message for the ingest worker, already decoded by the task that received it (JSON
/// decoding is the largest part of the ingest's work; doing it there keeps it off the worker,
/// so the two run on different cores).
pub struct Incoming {
    pub topic: String,
    pub msg: Decoded,
    /// The rumqttc message to acknowledge after processing (external broker).
    pub ack: Option<Publish>,
}

impl Incoming {
    fn new(topic: String, payload: &Bytes, ack: Option<Publish>) -> Incoming {
        let msg = crate::ingest::decode(&topic, payload);
        Incoming { topic, msg, ack }
    }
}

type Link = crate::broker::IngestLink;

/// Starts the broker client's event loop, the in-process link reader (embedded broker) and the
/// ingest worker.
pub fn spawn(
    app: Arc<App>,
    target: Target,
    link: Option<Link>,
    stop: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let subscribe = link.is_none();
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
    let (client, mut eventloop) = AsyncClient::new(opts, 1024);
    let _ = app.mqtt.set(client.clone());
    let (tx, mut rx) = mpsc::channel::<Incoming>(1024);
    let mut tasks = Vec::new();
    // Tells the broker's gate which events are handled, so it releases the agents' PUBACKs.
    let events_handled = link.as_ref().map(|l| l.events_handled.clone());
    if let Some(crate::broker::IngestLink {
        tx: mut link_tx,
        rx: mut link_rx,
        ..
    }) = link
    {
        let tx = tx.clone();
        let app = app.clone();
        let mut stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            for leaf in SUBSCRIPTIONS {
                if let Err(e) = link_tx.subscribe(dcim_wire::Topic::filter_all(leaf)) {
                    tracing::error!("subscribing the in-process link: {e}");
                    return;
                }
            }
            app.metrics.mqtt_connected.store(1, Ordering::Relaxed);
            loop {
                let n = tokio::select! {
                    _ = crate::stopped(&mut stop) => break,
                    n = link_rx.next() => n,
                };
                match n {
                    Ok(Some(rumqttd::Notification::Forward(f))) => {
                        let topic = String::from_utf8_lossy(&f.publish.topic).into_owned();
                        let msg = Incoming::new(topic, &f.publish.payload, None);
                        if tx.send(msg).await.is_err() {
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
        }));
    }

    let loop_app = app.clone();
    let loop_client = client.clone();
    let mut loop_stop = stop.clone();
    let poller = tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        loop {
            let ev = tokio::select! {
                _ = crate::stopped(&mut loop_stop) => break,
                ev = eventloop.poll() => ev,
            };
            match ev {
                // In embedded mode this client only publishes commands, yet rumqttd 0.20 also
                // forwards it what the in-process link subscribed to (observed: every message
                // twice). Those copies are ignored; the link is the ingest path.
                Ok(Event::Incoming(Packet::Publish(_))) if !subscribe => {}
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let payload = p.payload.clone();
                    let msg = Incoming::new(p.topic.clone(), &payload, Some(p));
                    if tx.send(msg).await.is_err() {
                        break;
                    }
                }
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    backoff = Duration::from_millis(100);
                    loop_app.metrics.mqtt_connected.store(1, Ordering::Relaxed);
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
                        if let Err(e) = loop_client.try_subscribe_many(filters) {
                            tracing::error!("subscribing: {e}");
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    if subscribe {
                        loop_app.metrics.mqtt_connected.store(0, Ordering::Relaxed);
                    }
                    tracing::warn!("broker connection: {e}; retrying in {backoff:?}");
                    tokio::select! {
                        _ = crate::stopped(&mut loop_stop) => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
        let _ = loop_client.try_disconnect();
    });

    let worker_app = app.clone();
    let worker_stop = stop.clone();
    let worker = tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            if *worker_stop.borrow() {
                break;
            }
            let mark = events_handled
                .as_ref()
                .and_then(|_| crate::broker::events_mark(&m.msg).map(|(a, s)| (a.to_owned(), s)));
            if handle_decoded(&worker_app, &m.topic, m.msg, &worker_stop).await {
                if let Some(p) = &m.ack {
                    let _ = client.ack(p).await;
                }
                // Committed, duplicate or refused for good: the gate may release the PUBACK.
                if let (Some(h), Some((agent, seq))) = (&events_handled, mark) {
                    h.mark(&agent, seq);
                }
            }
        }
    });

    let marks_app = app;
    let mut marks_stop = stop;
    let marks = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = crate::stopped(&mut marks_stop) => break,
                _ = tokio::time::sleep(Duration::from_secs(2)) => save_marks(&marks_app).await,
            }
        }
    });
    tasks.extend([poller, worker, marks]);
    tasks
}

/// Persists the telemetry high-water marks (events have theirs in the events table).
pub async fn save_marks(app: &App) {
    let marks: Vec<(String, String, i64)> = {
        let ing = app.ingest.lock().expect("ingest lock");
        ing.high_waters()
            .filter(|(_, s, _)| *s == TELEMETRY)
            .map(|(a, s, q)| (a.to_owned(), s.to_owned(), q as i64))
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
    handle_decoded(app, topic, crate::ingest::decode(topic, payload), stop).await
}

/// The live `points` event: serialised straight from the samples.
#[derive(serde::Serialize)]
struct PointsEvent<'a> {
    agent: &'a str,
    samples: &'a [dcim_points::Sample],
    site: &'a str,
}

/// Processes one decoded message; returns whether it may be acknowledged to the broker.
pub async fn handle_decoded(
    app: &App,
    topic: &str,
    msg: Decoded,
    stop: &watch::Receiver<bool>,
) -> bool {
    let m = &app.metrics;
    inc(&m.ingest_messages_total, 1);
    let now = now_ms();
    let outcome = {
        let mut ing = app.ingest.lock().expect("ingest lock");
        let o = ing.apply(msg, None, now);
        m.points.store(ing.point_count() as i64, Ordering::Relaxed);
        o
    };
    match outcome {
        Outcome::Telemetry {
            site,
            agent,
            samples,
            ..
        } => {
            inc(&m.ingest_samples_total, samples.len() as u64);
            if let Some(influx) = &app.influx {
                influx.push(&site, &agent, &samples);
            }
            if !samples.is_empty() {
                let mut f = app.facility.lock().await;
                let changes = f.on_samples(&samples, now);
                if let Err(e) = app.commit_changes(&f, &changes, None).await {
                    app.store_write_failed("committing alarm changes", e.as_ref());
                    tracing::error!("committing alarm changes: {e:#}");
                }
                drop(f);
                crate::api_authority::on_samples(app, &agent, &samples).await;
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
            true
        }
        Outcome::Events {
            site,
            agent,
            events,
            gap,
        } => {
            if gap > 0 {
                inc(&m.ingest_event_gaps_total, gap);
                tracing::warn!(%agent, gap, "event sequence has a gap");
            }
            let records: Vec<EventRecord> = events
                .iter()
                .map(|e| EventRecord {
                    site: site.clone(),
                    agent: agent.clone(),
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
                    received_ms: now,
                })
                .collect();
            // Events are never dropped: retry the commit until it succeeds or the server stops
            // (then the message is not acknowledged and the broker redelivers it).
            let mut delay = Duration::from_millis(200);
            loop {
                match app.store.insert_events(&records).await {
                    Ok(_) => {
                        app.store_write_ok();
                        break;
                    }
                    Err(e) => {
                        app.store_write_failed("committing events", &e);
                        tracing::error!(%agent, "committing events: {e}; retrying");
                        if *stop.borrow() {
                            return false;
                        }
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(5));
                    }
                }
            }
            let last = events.iter().map(|e| e.seq).max().unwrap_or(0);
            app.ingest
                .lock()
                .expect("ingest lock")
                .events_committed(&agent, last);
            inc(&m.ingest_events_total, records.len() as u64);
            for r in &records {
                app.publish_live("event", r);
            }
            crate::api_authority::on_events(app, &agent, &events).await;
            let mut f = app.facility.lock().await;
            for e in &events {
                let changes = f.on_event(&e.kind, &e.device, now);
                if let Err(e) = app.commit_changes(&f, &changes, None).await {
                    app.store_write_failed("committing alarm changes", e.as_ref());
                    tracing::error!("committing alarm changes: {e:#}");
                }
            }
            true
        }
        Outcome::State { site, state } => {
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
            crate::cluster::uplink_alarms(app, &state.agent, &state.detached).await;
            let rec = crate::cluster::agent_state(app, rec);
            match app.store.upsert_agent(&rec).await {
                Ok(()) => app.store_write_ok(),
                Err(e) => {
                    app.store_write_failed("storing agent state", &e);
                    tracing::error!("storing agent state: {e}");
                }
            }
            app.publish_live("agent", &rec);
            true
        }
        Outcome::CommandResult {
            site,
            agent,
            result,
        } => {
            let _ = app
                .audit(
                    &format!("mqtt:{agent}"),
                    "command.result",
                    &format!("{site}/{agent}"),
                    serde_json::to_value(&result).unwrap_or_default(),
                )
                .await;
            true
        }
        Outcome::Duplicate {
            agent,
            stream,
            count,
        } => {
            inc(&m.ingest_duplicate_batches_total, 1);
            inc(&m.ingest_duplicate_items_total, count);
            tracing::debug!(%agent, stream, count, "duplicate batch dropped");
            let _ = EVENTS;
            true
        }
        Outcome::Rejected(r) => {
            if r.is_acl() {
                inc(&m.acl_rejections_total, 1);
                tracing::warn!(topic = %topic, ?r, "message refused by access control");
                let agent = dcim_wire::Topic::parse(topic)
                    .map(|t| t.agent)
                    .unwrap_or_default();
                if let Err(e) = app
                    .audit(
                        &format!("mqtt:{agent}"),
                        "mqtt.rejected",
                        topic,
                        serde_json::to_value(&r).unwrap_or_default(),
                    )
                    .await
                {
                    tracing::error!("auditing a rejection: {e}");
                }
            } else {
                inc(&m.ingest_malformed_total, 1);
                tracing::warn!(topic = %topic, ?r, "malformed message dropped");
            }
            true
        }
    }
}
