//! Notification I/O: the shell around [`dcim_alarms::Notifier`] (pure policy: which channel,
//! circuit breakers with fallback chains, escalation steps).
//!
//! One tokio task owns the notifier. The alarm journal is its outbox: it reads the committed
//! records from the store after its cursor (the `notifier/journal` doc), plans the deliveries,
//! sends each on the channel the breakers allow (falling back along the chain when a send
//! fails), moves the cursor, and once a tick asks for the escalations of alarms still
//! unacknowledged. [`crate::app::App::commit_changes`] wakes it through a bounded queue after each
//! commit (a full queue only delays the records to the next tick; they are in the journal).
//!
//! Multi-site: only the leader notifies. When a replica becomes the leader it reloads the
//! cursor, the breakers and the escalation progress from the store and carries on where the
//! previous leader stopped; its writes of them carry the term's fence, so a deposed leader
//! cannot move them. A delivery has a stable id (`delivery_id` in the JSON, `X-Dcim-Delivery`
//! on webhooks: `j{journal id}-{n}` or `esc:{alarm}:{step}:{since}`): the cursor is stored
//! after each record that produced a delivery, so the only repeat possible is the delivery in
//! flight when a leader died, with the same id, which a receiver can discard.
//!
//! Channels: webhook (HTTP POST of JSON, optional HMAC-SHA256 signature), e-mail (SMTP through
//! `lettre`: plain to a relay, STARTTLS or implicit TLS, optional AUTH) and MQTT (JSON to a
//! topic on an external broker, or on the server's own broker connection).
//!
//! Every attempt is logged, counted in `/metrics` (`dcim_notify_*`) and written to the audit
//! log (`notify.sent`, `notify.failed`, `notify.undelivered`, target `alarm/<id>`), so an
//! operator can see that a notification went out or failed over.
//!
//! The notifier's run-time state (escalation steps already sent, breakers) is stored as the
//! `notifier/state` doc after it changes and restored at start, so that a restart does not
//! send an escalation step again; alarms still unacknowledged at start are escalated from the
//! time they last changed.
//!
//! Deliveries are sent one at a time, each bounded by its channel's timeout: a slow channel
//! delays the ones behind it but never blocks ingest (the queue is between them).

use crate::app::App;
use crate::base::metrics::inc;
use anyhow::Context;
use dcim_alarms::{AlarmState, Delivery, Event, Notifier, NotifierState, Record};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use crate::config::notify::{
    BreakerToml, ChannelConfig, EscalationConfig, Kind, NotifyConfig, SmtpSecurity, parse_smtp_url,
};

pub use crate::base::notify_templates::payload;

/// `sha256=<hex>` HMAC-SHA256 of `body` under `secret` (the `X-Dcim-Signature` header).
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes keys of any size");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Tracks which alarms are unacknowledged since when, from the records (the escalation input).
#[derive(Debug, Default)]
pub struct Unacked {
    /// alarm -> (unacknowledged since, grade, message)
    pub alarms: BTreeMap<String, (i64, u8, String)>,
}

impl Unacked {
    pub fn on_records(&mut self, records: &[Record]) {
        for r in records {
            if r.is_transition() {
                if r.to == AlarmState::Unacknowledged {
                    self.alarms
                        .insert(r.alarm.clone(), (r.ts_ms, r.grade, r.message.clone()));
                } else {
                    self.alarms.remove(&r.alarm);
                }
            } else if let (Event::GradeRaised { to, .. }, Some(a)) =
                (&r.event, self.alarms.get_mut(&r.alarm))
            {
                a.1 = *to;
            }
        }
    }
}

/// A resolved channel: where and how to send.
enum Sender {
    Webhook {
        client: reqwest::Client,
        url: String,
        secret: Option<Vec<u8>>,
        format: crate::base::notify_templates::Format,
    },
    Email {
        transport: lettre::AsyncSmtpTransport<lettre::Tokio1Executor>,
        from: lettre::message::Mailbox,
        to: Vec<lettre::message::Mailbox>,
    },
    Mqtt {
        topic: String,
        link: MqttLink,
    },
}

enum MqttLink {
    /// The server's own broker connection (best effort: queued counts as sent).
    Server(Arc<App>),
    /// An own connection; a send succeeds on the broker's PUBACK.
    Own {
        client: rumqttc::AsyncClient,
        acks: tokio::sync::Mutex<mpsc::Receiver<Result<u16, String>>>,
    },
}

use crate::config::notify::secret_of;

fn build_sender(
    app: &Arc<App>,
    c: &ChannelConfig,
    stop: &watch::Receiver<bool>,
    tasks: &mut Vec<JoinHandle<()>>,
) -> anyhow::Result<Sender> {
    let timeout = Duration::from_millis(c.timeout_ms);
    let what = format!("notify channel `{}`", c.name);
    Ok(match c.kind {
        Kind::Webhook => Sender::Webhook {
            client: reqwest::Client::builder()
                .timeout(timeout)
                .build()
                .with_context(|| format!("{what}: http client"))?,
            url: c.url.clone().unwrap_or_default(),
            secret: secret_of(&c.secret, &c.secret_env, &what)?.map(String::into_bytes),
            format: c
                .webhook_format()
                .map_err(|e| anyhow::anyhow!("{what}: {e}"))?,
        },
        Kind::Email => email_sender(c, &what, timeout)?,
        Kind::Mqtt => Sender::Mqtt {
            topic: c.topic.clone().unwrap_or_default(),
            link: mqtt_link(app, c, &what, stop, tasks)?,
        },
    })
}

/// An e-mail channel: the SMTP transport (plain, STARTTLS or TLS; with `ca_file`, only that
/// CA is trusted), its credentials and the addresses.
fn email_sender(c: &ChannelConfig, what: &str, timeout: Duration) -> anyhow::Result<Sender> {
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::transport::smtp::extension::ClientId;
    use lettre::{AsyncSmtpTransport, Tokio1Executor};
    let url = c.url.as_deref().unwrap_or_default();
    let (sec, host, port) = parse_smtp_url(url).context("smtp url")?;
    let mut b = match (sec, &c.ca_file) {
        (SmtpSecurity::Plain, _) => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&host),
        (SmtpSecurity::StartTls, None) => {
            AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&host)?
        }
        (SmtpSecurity::Tls, None) => AsyncSmtpTransport::<Tokio1Executor>::relay(&host)?,
        // A private CA: only it is trusted (not the system roots).
        (sec, Some(path)) => {
            use lettre::transport::smtp::client::{
                Certificate, CertificateStore, Tls, TlsParameters,
            };
            let pem = std::fs::read(path)
                .with_context(|| format!("{what}: reading {}", path.display()))?;
            let params = TlsParameters::builder(host.clone())
                .certificate_store(CertificateStore::None)
                .add_root_certificate(Certificate::from_pem(&pem).with_context(|| {
                    format!("{what}: {} is not a PEM certificate", path.display())
                })?)
                .build()?;
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&host).tls(
                if sec == SmtpSecurity::Tls {
                    Tls::Wrapper(params)
                } else {
                    Tls::Required(params)
                },
            )
        }
    }
    .port(port)
    .timeout(Some(timeout));
    if let Some(h) = &c.helo_name {
        b = b.hello_name(ClientId::Domain(h.clone()));
    }
    if let Some(user) = &c.username {
        let pw = secret_of(&c.password, &c.password_env, what)?.unwrap_or_default();
        b = b.credentials(Credentials::new(user.clone(), pw));
    }
    let parse = |a: &str| {
        a.parse::<lettre::message::Mailbox>()
            .with_context(|| format!("{what}: address `{a}`"))
    };
    Ok(Sender::Email {
        transport: b.build(),
        from: parse(c.from.as_deref().unwrap_or_default())?,
        to: c
            .to
            .iter()
            .map(|a| parse(a))
            .collect::<anyhow::Result<_>>()?,
    })
}

/// An MQTT channel's link: the server's broker connection without `url`, else an own
/// connection (TLS with `ca_file` for `mqtts://`) whose task is pushed to `tasks`.
fn mqtt_link(
    app: &Arc<App>,
    c: &ChannelConfig,
    what: &str,
    stop: &watch::Receiver<bool>,
    tasks: &mut Vec<JoinHandle<()>>,
) -> anyhow::Result<MqttLink> {
    let Some(url) = &c.url else {
        return Ok(MqttLink::Server(app.clone()));
    };
    let (tls, host, port) = crate::config::parse_broker_url(url).context("mqtt url")?;
    let id = format!("{}-notify-{}", app.config.broker.client_id, c.name);
    let mut o = rumqttc::MqttOptions::new(id, host, port);
    o.set_keep_alive(Duration::from_secs(30));
    if let Some(u) = &c.username {
        let pw = secret_of(&c.password, &c.password_env, what)?.unwrap_or_default();
        o.set_credentials(u.clone(), pw);
    }
    if tls {
        let path = c.ca_file.as_ref().context("mqtts:// needs ca_file")?;
        let ca =
            std::fs::read(path).with_context(|| format!("{what}: reading {}", path.display()))?;
        o.set_transport(rumqttc::Transport::tls_with_config(
            rumqttc::TlsConfiguration::Simple {
                ca,
                alpn: None,
                client_auth: None,
            },
        ));
    }
    let (client, el) = rumqttc::AsyncClient::new(o, 16);
    let (tx, rx) = mpsc::channel(64);
    tasks.push(tokio::spawn(mqtt_loop(
        el,
        tx,
        stop.clone(),
        c.name.clone(),
    )));
    Ok(MqttLink::Own {
        client,
        acks: tokio::sync::Mutex::new(rx),
    })
}

/// Drives an own MQTT connection; reports PUBACKs (and connection errors) to the sender.
async fn mqtt_loop(
    mut el: rumqttc::EventLoop,
    tx: mpsc::Sender<Result<u16, String>>,
    mut stop: watch::Receiver<bool>,
    name: String,
) {
    use rumqttc::{Event, Packet};
    loop {
        // The channel was removed or replaced by a reload: its connection ends.
        if tx.is_closed() {
            return;
        }
        let ev = tokio::select! {
            _ = crate::base::stop::stopped(&mut stop) => return,
            ev = el.poll() => ev,
        };
        match ev {
            Ok(Event::Incoming(Packet::PubAck(a))) => {
                let _ = tx.try_send(Ok(a.pkid));
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(channel = %name, "notify mqtt connection: {e}");
                let _ = tx.try_send(Err(e.to_string()));
                tokio::select! {
                    _ = crate::base::stop::stopped(&mut stop) => return,
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
        }
    }
}

/// [`payload`] with the delivery's stable id.
fn payload_with_id(d: &Delivery, channel: &str, id: &str, now_ms: i64) -> serde_json::Value {
    let mut p = payload(d, channel, now_ms);
    p["delivery_id"] = id.into();
    p
}

impl Sender {
    /// Sends `d` over this channel, the documents stamped `now_ms` (the server's time).
    async fn send(
        &self,
        d: &Delivery,
        channel: &str,
        id: &str,
        timeout: Duration,
        now_ms: i64,
    ) -> Result<(), String> {
        match self {
            Sender::Webhook {
                client,
                url,
                secret,
                format,
            } => {
                let doc = webhook_doc(format, d, channel, id, now_ms)?;
                send_webhook(client, url, secret.as_deref(), &doc, id).await
            }
            Sender::Email {
                transport,
                from,
                to,
            } => send_email(transport, from, to, d, timeout).await,
            Sender::Mqtt { topic, link } => {
                let body = serde_json::to_vec(&payload_with_id(d, channel, id, now_ms))
                    .map_err(|e| e.to_string())?;
                send_mqtt(link, topic, body, timeout).await
            }
        }
    }
}

/// The webhook document of a delivery in the channel's format.
fn webhook_doc(
    format: &crate::base::notify_templates::Format,
    d: &Delivery,
    channel: &str,
    id: &str,
    now_ms: i64,
) -> Result<serde_json::Value, String> {
    let mut doc = crate::base::notify_templates::render(format, d, channel, now_ms)?;
    if matches!(format, crate::base::notify_templates::Format::Json) {
        // The stable id a receiver discards a repeat by (also in X-Dcim-Delivery).
        doc["delivery_id"] = id.into();
    }
    Ok(doc)
}

/// Posts the rendered delivery, signed with the channel's secret if any; 2xx is sent.
async fn send_webhook(
    client: &reqwest::Client,
    url: &str,
    secret: Option<&[u8]>,
    doc: &serde_json::Value,
    id: &str,
) -> Result<(), String> {
    let body = serde_json::to_vec(doc).map_err(|e| e.to_string())?;
    let mut req = client
        .post(url)
        .header("content-type", "application/json")
        .header("user-agent", "dcim-server")
        .header("x-dcim-delivery", id);
    if let Some(s) = secret {
        req = req.header("x-dcim-signature", sign(s, &body));
    }
    let r = req.body(body).send().await.map_err(|e| format!("{e}"))?;
    if r.status().is_success() {
        Ok(())
    } else {
        Err(format!("HTTP {}", r.status()))
    }
}

/// Mails the delivery to the channel's addresses, or to the escalation step's own address.
async fn send_email(
    transport: &lettre::AsyncSmtpTransport<lettre::Tokio1Executor>,
    from: &lettre::message::Mailbox,
    to: &[lettre::message::Mailbox],
    d: &Delivery,
    timeout: Duration,
) -> Result<(), String> {
    use lettre::AsyncTransport;
    let mut b = lettre::Message::builder()
        .from(from.clone())
        .subject(d.subject.clone())
        .header(lettre::message::header::ContentType::TEXT_PLAIN);
    let step_to = d
        .escalation
        .and(extract_address(&d.body))
        .and_then(|a| a.parse::<lettre::message::Mailbox>().ok());
    match step_to {
        Some(a) => b = b.to(a),
        None => {
            for a in to {
                b = b.to(a.clone());
            }
        }
    }
    let msg = b.body(d.body.clone()).map_err(|e| e.to_string())?;
    tokio::time::timeout(timeout, transport.send(msg))
        .await
        .map_err(|_| "timed out".to_string())?
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Publishes at QoS 1: through the server's connection, queued is sent; over an own
/// connection, sent on the broker's PUBACK.
async fn send_mqtt(
    link: &MqttLink,
    topic: &str,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<(), String> {
    match link {
        MqttLink::Server(app) => {
            let client = app.intake.mqtt.get().ok_or("no broker connection yet")?;
            client
                .try_publish(topic, rumqttc::QoS::AtLeastOnce, false, body)
                .map_err(|e| e.to_string())
        }
        MqttLink::Own { client, acks } => {
            let mut acks = acks.lock().await;
            while acks.try_recv().is_ok() {}
            client
                .try_publish(topic, rumqttc::QoS::AtLeastOnce, false, body)
                .map_err(|e| e.to_string())?;
            // One delivery at a time: the next PUBACK is this message's.
            match tokio::time::timeout(timeout, acks.recv()).await {
                Ok(Some(Ok(_))) => Ok(()),
                Ok(Some(Err(e))) => Err(e),
                Ok(None) => Err("connection task ended".into()),
                Err(_) => Err("no PUBACK in time".into()),
            }
        }
    }
}

/// The `to:` line of an escalation body, when it names an e-mail address.
fn extract_address(body: &str) -> Option<&str> {
    body.lines()
        .find_map(|l| l.strip_prefix("to: "))
        .map(str::trim)
        .filter(|a| a.contains('@'))
}

/// The running notifier.
struct Worker {
    app: Arc<App>,
    /// The notifier as configured (breakers closed, nothing escalated): each term starts from
    /// it and the stored state.
    configured: Notifier,
    notifier: Notifier,
    senders: BTreeMap<String, (Sender, Duration)>,
    unacked: Unacked,
    /// The notifier state last stored (escalation steps sent, breakers).
    saved: NotifierState,
    /// Journal id up to which records are notified.
    cursor: i64,
    saved_cursor: i64,
    /// The journal's end when this process started: where a notifier with no stored cursor
    /// begins (nothing older is notified twice, nothing newer skipped).
    initial_cursor: i64,
    /// The term being served: `Some(fence)` (None inside: a single server).
    term: Option<Option<crate::storage::store::Fence>>,
}

/// Doc (`notifier/state`) with the notifier's run-time state: escalation steps already sent,
/// so that a restart does not send them again, and the breakers.
pub const NOTIFIER_DOC: &str = "notifier";
/// Doc `notifier/journal`: `{"after_id": n}`, the journal id up to which records are notified.
pub const CURSOR_ID: &str = "journal";

impl Worker {
    /// Applies a reloaded `[notify]`: new senders and policy, the state kept (escalation steps
    /// sent, breakers of channels that keep their name). A section whose senders cannot be
    /// built (a missing secret, an unreadable CA) changes nothing.
    fn reconfigure(
        &mut self,
        cfg: &NotifyConfig,
        stop: &watch::Receiver<bool>,
        tasks: &mut Vec<JoinHandle<()>>,
    ) {
        let cfg = NotifyConfig {
            channels: if cfg.enabled {
                cfg.channels.clone()
            } else {
                Vec::new()
            },
            grade1: if cfg.enabled {
                cfg.grade1.clone()
            } else {
                Vec::new()
            },
            grade2: if cfg.enabled {
                cfg.grade2.clone()
            } else {
                Vec::new()
            },
            grade3: if cfg.enabled {
                cfg.grade3.clone()
            } else {
                Vec::new()
            },
            fire_channel: cfg.fire_channel.clone().filter(|_| cfg.enabled),
            escalation: if cfg.enabled {
                cfg.escalation.clone()
            } else {
                Vec::new()
            },
            ..cfg.clone()
        };
        let mut notifier = match cfg.notifier() {
            Ok(n) => n,
            Err(e) => {
                tracing::error!("[notify] reload refused: {e}");
                return;
            }
        };
        let mut senders = BTreeMap::new();
        let mut new_tasks = Vec::new();
        for c in &cfg.channels {
            match build_sender(&self.app, c, stop, &mut new_tasks) {
                Ok(s) => {
                    senders.insert(c.name.clone(), (s, Duration::from_millis(c.timeout_ms)));
                }
                Err(e) => {
                    tracing::error!("[notify] reload refused, channel `{}`: {e:#}", c.name);
                    for t in new_tasks {
                        t.abort();
                    }
                    return;
                }
            }
        }
        // The next term (multi-site takeover) starts from the reloaded policy too.
        self.configured = notifier.clone();
        notifier.restore_state(self.notifier.state());
        self.notifier = notifier;
        self.senders = senders;
        tasks.extend(new_tasks);
        tracing::info!(
            channels = cfg.channels.len(),
            enabled = cfg.enabled,
            "notification channels reloaded"
        );
    }

    async fn audit(&self, action: &str, d: &Delivery, detail: serde_json::Value) {
        if let Err(e) = self
            .app
            .audit(
                "system:notify",
                action,
                &format!("alarm/{}", d.alarm),
                detail,
            )
            .await
        {
            inc(&self.app.metrics.store_errors_total, 1);
            tracing::error!("recording a notification in the audit log: {e:#}");
        }
    }

    /// Sends one delivery: the planned channel or, when its breaker is open or the send
    /// fails, along its fallback chain.
    async fn deliver(&mut self, d: &Delivery, id: &str) {
        let m = self.app.metrics.clone();
        let mut planned = d.channel.clone();
        let mut tried: Vec<String> = Vec::new();
        loop {
            let now = self.app.now_ms();
            let Some(ch) = self.notifier.route(&planned, now) else {
                inc(&m.notify_undelivered_total, 1);
                tracing::error!(alarm = %d.alarm, channel = %d.channel, tried = ?tried, "notification undelivered: every channel of the chain is open or failed");
                self.audit(
                    "notify.undelivered",
                    d,
                    serde_json::json!({"planned_channel": d.channel, "tried": tried, "subject": d.subject, "escalation": d.escalation}),
                )
                .await;
                return;
            };
            if tried.contains(&ch) {
                // A chain that routes back to a channel already tried (cannot loop: checked at
                // start, but a breaker may have reopened).
                planned = String::new();
                continue;
            }
            let Some((sender, timeout)) = self.senders.get(&ch) else {
                return;
            };
            inc(&m.notify_attempts_total, 1);
            let t0 = Instant::now();
            let r = sender.send(d, &ch, id, *timeout, now).await;
            let latency = t0.elapsed().as_millis() as i64;
            self.notifier
                .report(&ch, r.is_ok(), latency, self.app.now_ms());
            tried.push(ch.clone());
            match r {
                Ok(()) => {
                    inc(&m.notify_sent_total, 1);
                    if ch != d.channel {
                        inc(&m.notify_fallbacks_total, 1);
                    }
                    tracing::info!(alarm = %d.alarm, channel = %ch, planned = %d.channel, latency_ms = latency, escalation = ?d.escalation, "notification sent");
                    self.audit(
                        "notify.sent",
                        d,
                        serde_json::json!({"channel": ch, "planned_channel": d.channel, "latency_ms": latency, "subject": d.subject, "escalation": d.escalation, "delivery_id": id}),
                    )
                    .await;
                    return;
                }
                Err(e) => {
                    inc(&m.notify_failures_total, 1);
                    tracing::warn!(alarm = %d.alarm, channel = %ch, latency_ms = latency, "notification failed: {e}");
                    self.audit(
                        "notify.failed",
                        d,
                        serde_json::json!({"channel": ch, "planned_channel": d.channel, "latency_ms": latency, "error": e, "escalation": d.escalation}),
                    )
                    .await;
                    match self
                        .notifier
                        .channels
                        .get(&ch)
                        .and_then(|c| c.fallback.clone())
                    {
                        Some(f) => planned = f,
                        None => planned = String::new(),
                    }
                }
            }
        }
    }

    /// Stores the notifier's state and cursor when they changed (with the term's fence).
    /// Returns false when the fence refused it: this replica no longer leads.
    async fn save(&mut self) -> bool {
        let state = self.notifier.state();
        if state == self.saved && self.cursor == self.saved_cursor {
            return true;
        }
        let Some(fence) = self.term.clone() else {
            return false;
        };
        let now = self.app.now_ms();
        let batch = crate::storage::store::Batch {
            docs: vec![
                (
                    NOTIFIER_DOC.into(),
                    crate::storage::store::DocRecord {
                        id: "state".into(),
                        updated_ms: now,
                        body: serde_json::to_value(&state).unwrap_or_default(),
                    },
                ),
                (
                    NOTIFIER_DOC.into(),
                    crate::storage::store::DocRecord {
                        id: CURSOR_ID.into(),
                        updated_ms: now,
                        body: serde_json::json!({"after_id": self.cursor}),
                    },
                ),
            ],
            fence,
            ..Default::default()
        };
        match self.app.store.commit_batch(&batch).await {
            Ok(_) => {
                self.saved = state;
                self.saved_cursor = self.cursor;
                true
            }
            Err(e) if crate::storage::store::fenced(&e).is_some() => {
                tracing::warn!("notifier: {e}; stopping (another replica leads)");
                self.term = None;
                false
            }
            Err(e) => {
                inc(&self.app.metrics.store_errors_total, 1);
                tracing::error!("storing the notifier state: {e}");
                true
            }
        }
    }

    /// Whether this worker may still act for its term.
    fn in_term(&self) -> bool {
        match (&self.term, self.app.leader_fence()) {
            (Some(t), Ok(f)) => *t == f,
            _ => false,
        }
    }

    /// Starts serving a term (or a single server's run): the stored state and cursor, and the
    /// alarms unacknowledged now.
    async fn begin_term(
        &mut self,
        fence: Option<crate::storage::store::Fence>,
    ) -> anyhow::Result<()> {
        let docs = self.app.store.list_docs(NOTIFIER_DOC).await?;
        let mut notifier = self.configured.clone();
        if let Some(d) = docs.iter().find(|d| d.id == "state") {
            match serde_json::from_value::<NotifierState>(d.body.clone()) {
                Ok(state) => notifier.restore_state(state),
                Err(e) => {
                    tracing::warn!("stored notifier state does not decode, starting afresh: {e}")
                }
            }
        }
        let cursor = docs
            .iter()
            .find(|d| d.id == CURSOR_ID)
            .and_then(|d| d.body["after_id"].as_i64())
            .unwrap_or(self.initial_cursor);
        let mut unacked = Unacked::default();
        {
            let f = self.app.plant.facility.lock().await;
            for a in f.engine.active() {
                if a.state() == AlarmState::Unacknowledged {
                    unacked
                        .alarms
                        .insert(a.id.clone(), (a.last_change_ms, a.grade, a.message.clone()));
                }
            }
        }
        self.saved = notifier.state();
        self.notifier = notifier;
        self.unacked = unacked;
        self.cursor = cursor;
        self.saved_cursor = cursor;
        if let Some(f) = &fence {
            tracing::info!(
                epoch = f.epoch,
                after_id = cursor,
                "notifier: leading, carrying on from the stored cursor"
            );
        }
        self.term = Some(fence);
        Ok(())
    }

    /// Notifies the committed records after the cursor, in journal order.
    async fn catch_up(&mut self) {
        loop {
            let rows = match self.app.store.list_journal(None, self.cursor, 200).await {
                Ok(r) => r,
                Err(e) => {
                    inc(&self.app.metrics.store_errors_total, 1);
                    tracing::error!("notifier: reading the alarm journal: {e}");
                    return;
                }
            };
            if rows.is_empty() {
                break;
            }
            for row in rows {
                if !self.in_term() {
                    return;
                }
                let records = match serde_json::from_value::<Record>(row.record.clone()) {
                    Ok(r) => vec![r],
                    Err(e) => {
                        tracing::warn!(
                            id = row.id,
                            "journal row does not decode, not notified: {e}"
                        );
                        Vec::new()
                    }
                };
                self.unacked.on_records(&records);
                let deliveries = self.notifier.plan(&records);
                for (n, d) in deliveries.iter().enumerate() {
                    self.deliver(d, &format!("j{}-{n}", row.id)).await;
                }
                self.cursor = row.id;
                if !deliveries.is_empty() && !self.save().await {
                    return;
                }
            }
        }
        self.save().await;
    }

    async fn on_tick(&mut self) {
        let now = self.app.now_ms();
        let due = self.notifier.escalations(
            self.unacked
                .alarms
                .iter()
                .map(|(id, (since, grade, msg))| (id.as_str(), *since, *grade, msg.as_str())),
            now,
        );
        for d in &due {
            if !self.in_term() {
                return;
            }
            inc(&self.app.metrics.notify_escalations_total, 1);
            let since = self.unacked.alarms.get(&d.alarm).map_or(0, |a| a.0);
            let id = format!("esc:{}:{}:{since}", d.alarm, d.escalation.unwrap_or(0));
            self.deliver(d, &id).await;
        }
        if !due.is_empty() {
            self.save().await;
        }
    }

    /// One wake-up: start or stop serving a term as leadership goes, then notify.
    async fn step(&mut self) {
        let fence = match self.app.leader_fence() {
            Ok(f) => f,
            Err(crate::state::cluster::NotLeader) => {
                if self.term.take().is_some() {
                    tracing::info!("notifier: not the leader, paused");
                }
                return;
            }
        };
        if self.term.as_ref() != Some(&fence)
            && let Err(e) = self.begin_term(fence).await
        {
            tracing::error!("notifier: loading its state: {e:#}");
            return;
        }
        self.catch_up().await;
        self.on_tick().await;
    }
}

/// Starts the notifier when `[notify]` is enabled: returns the queue the committed records go
/// to and the task. Alarms unacknowledged at start (restored) are escalated from the time
/// they last changed.
pub async fn spawn(
    app: Arc<App>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Option<(mpsc::Sender<Vec<Record>>, Vec<JoinHandle<()>>)>> {
    if !app.config.notify.enabled {
        return Ok(None);
    }
    let cfg = app.config.notify.clone();
    start(app, &cfg, stop).await.map(Some)
}

/// Starts a notifier with `cfg` on a running server whose own `[notify]` is off (embedding,
/// e.g. the demo or a test harness). It stops with the server.
pub async fn attach(app: &Arc<App>, cfg: &NotifyConfig) -> anyhow::Result<()> {
    let cfg = &NotifyConfig {
        enabled: true,
        ..cfg.clone()
    };
    cfg.validate()
        .map_err(|(field, message)| anyhow::anyhow!("{field}: {message}"))?;
    anyhow::ensure!(
        app.plant.notify.get().is_none(),
        "a notifier is already running on this server"
    );
    let (tx, _tasks) = start(app.clone(), cfg, app.stopping.clone()).await?;
    app.plant
        .notify
        .set(tx)
        .map_err(|_| anyhow::anyhow!("a notifier is already running on this server"))
}

async fn start(
    app: Arc<App>,
    cfg: &NotifyConfig,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<(mpsc::Sender<Vec<Record>>, Vec<JoinHandle<()>>)> {
    let configured = cfg
        .notifier()
        .map_err(|e| anyhow::anyhow!("[notify]: {e}"))?;
    let initial_cursor = app.store.journal_high_water().await?;
    let mut tasks = Vec::new();
    let mut senders = BTreeMap::new();
    for c in &cfg.channels {
        let s = build_sender(&app, c, &stop, &mut tasks)?;
        senders.insert(c.name.clone(), (s, Duration::from_millis(c.timeout_ms)));
    }
    let (tx, mut rx) = mpsc::channel::<Vec<Record>>(cfg.queue);
    let (reload_tx, mut reload_rx) = mpsc::unbounded_channel::<NotifyConfig>();
    let _ = app.reloadable.notify_tx.set(reload_tx);
    let tick = Duration::from_millis(cfg.tick_ms);
    let mut worker = Worker {
        app,
        notifier: configured.clone(),
        saved: configured.state(),
        configured,
        senders,
        unacked: Unacked::default(),
        cursor: initial_cursor,
        saved_cursor: initial_cursor,
        initial_cursor,
        term: None,
    };
    // A single server serves its one term from the start (state read before any commit).
    if let Ok(None) = worker.app.leader_fence() {
        worker.begin_term(None).await?;
    }
    let mut stop = stop;
    tasks.push(tokio::spawn(async move {
        let mut interval = tokio::time::interval(tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Connections of channels added by a reload (own MQTT links); they end with `stop`.
        let mut reloaded_tasks = Vec::new();
        loop {
            tokio::select! {
                _ = crate::base::stop::stopped(&mut stop) => break,
                r = rx.recv() => if r.is_none() { break },
                Some(cfg) = reload_rx.recv() => worker.reconfigure(&cfg, &stop, &mut reloaded_tasks),
                _ = interval.tick() => {}
            }
            worker.step().await;
        }
    }));
    Ok((tx, tasks))
}

#[cfg(test)]
mod tests {
    use super::*;
    use dcim_alarms::BreakerConfig;

    fn cfg(text: &str) -> Result<crate::config::Config, crate::config::ConfigError> {
        crate::config::Config::parse(text, std::path::Path::new("server.toml"))
    }

    const OK: &str = r#"
[notify]
enabled = true
grade2 = ["hook"]
[[notify.channels]]
name = "hook"
kind = "webhook"
url = "http://127.0.0.1:9/x"
fallback = "mail"
[[notify.channels]]
name = "mail"
kind = "email"
url = "smtp://127.0.0.1:2525"
from = "dcim@example.org"
to = ["ops@example.org"]
[[notify.escalation]]
after_s = 60
channel = "mail"
to = "lead@example.org"
"#;

    #[test]
    fn notify_is_off_by_default_and_a_full_section_parses() {
        assert!(!cfg("").unwrap().notify.enabled);
        let c = cfg(OK).unwrap();
        assert!(c.notify.enabled);
        let n = c.notify.notifier().unwrap();
        assert_eq!(n.policy.escalation[0].after_ms, 60_000);
        assert_eq!(n.channels["hook"].fallback.as_deref(), Some("mail"));
    }

    #[test]
    fn bad_notify_sections_name_the_field() {
        let e = cfg(&OK.replace("fallback = \"mail\"", "fallback = \"nope\""))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("server.toml") && e.contains("notify.channels") && e.contains("nope"),
            "{e}"
        );
        let e = cfg(&OK.replace("smtp://127", "http://127"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("notify.channels[1].url"), "{e}");
        let e = cfg(&OK.replace("grade2 = [\"hook\"]", "grade2 = [\"pager\"]"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("notify.grade2") && e.contains("pager"), "{e}");
        let e = cfg(&OK.replace("kind = \"webhook\"", "kind = \"pager\""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("line") && e.contains("pager"), "{e}");
        let e = cfg(&OK.replace("to = [\"ops@example.org\"]", "to = [\"not an address\"]"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("notify.channels[1].to"), "{e}");
    }

    #[test]
    fn the_documented_example_is_a_valid_section() {
        let text = include_str!("../../notify.example.toml");
        let c = cfg(text).unwrap();
        assert!(
            !c.notify.enabled,
            "the example is off until copied and enabled"
        );
        let on = cfg(&text.replace("enabled = false", "enabled = true")).unwrap();
        let n = on.notify.notifier().unwrap();
        assert_eq!(n.channels.len(), 7);
        assert_eq!(n.policy.escalation.len(), 2);
        assert_eq!(
            n.channels["ops-webhook"].breaker.config,
            BreakerConfig::default()
        );
    }

    #[test]
    fn relative_ca_files_are_relative_to_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.toml");
        let text = OK.replace(
            "to = [\"ops@example.org\"]",
            "to = [\"ops@example.org\"]\nca_file = \"pki/ca.pem\"",
        );
        std::fs::write(&path, text).unwrap();
        let c = crate::config::Config::load(&path).unwrap();
        assert_eq!(
            c.notify.channels[1].ca_file.as_deref(),
            Some(dir.path().join("pki/ca.pem").as_path())
        );
    }

    #[test]
    fn smtp_urls() {
        assert_eq!(
            parse_smtp_url("smtp://relay"),
            Some((SmtpSecurity::Plain, "relay".into(), 25))
        );
        assert_eq!(
            parse_smtp_url("smtp+starttls://m.example:2587"),
            Some((SmtpSecurity::StartTls, "m.example".into(), 2587))
        );
        assert_eq!(
            parse_smtp_url("smtps://m.example"),
            Some((SmtpSecurity::Tls, "m.example".into(), 465))
        );
        assert_eq!(parse_smtp_url("http://x"), None);
        assert_eq!(parse_smtp_url("smtp://:25"), None);
    }

    #[test]
    fn signature_is_hmac_sha256_of_the_body() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    fn rec(alarm: &str, event: Event, from: AlarmState, to: AlarmState, ts: i64) -> Record {
        Record {
            seq: 1,
            ts_ms: ts,
            alarm: alarm.into(),
            event,
            from,
            to,
            grade: 2,
            user: None,
            message: "m".into(),
            component: None,
            in_flood: false,
        }
    }

    #[test]
    fn unacked_follows_the_records() {
        use AlarmState::*;
        let mut u = Unacked::default();
        u.on_records(&[rec("a", Event::Activated, Normal, Unacknowledged, 5)]);
        assert_eq!(u.alarms["a"].0, 5);
        u.on_records(&[rec(
            "a",
            Event::GradeRaised { from: 2, to: 1 },
            Unacknowledged,
            Unacknowledged,
            9,
        )]);
        assert_eq!(u.alarms["a"], (5, 1, "m".into()));
        u.on_records(&[rec(
            "a",
            Event::Acknowledged,
            Unacknowledged,
            Acknowledged,
            10,
        )]);
        assert!(u.alarms.is_empty());
    }

    #[test]
    fn escalation_address_comes_from_the_step() {
        assert_eq!(
            extract_address("Not acknowledged for 60 s: x\nto: lead@example.org"),
            Some("lead@example.org")
        );
        assert_eq!(extract_address("Not acknowledged\nto: shift lead"), None);
    }
}
