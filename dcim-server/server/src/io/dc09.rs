//! Server-side SIA DC-09: the site-level events no single edge agent owns, sent to the fire
//! authority through a `dc09-link` transmitter with its own persistent outbox.
//!
//! What the server sends (and restores):
//! - **loss of contact with a zone's agent** (`fire.trouble` for the zone, rack 0), as soon as
//!   a fire stage is active in the zone, otherwise once the agent has been away for
//!   `agent_loss_after_s`;
//! - **alarms of the server's alarm engine** mapped by `[[dc09.alarm]]` (by default the
//!   `fire-stage` rule, whose value gives the stage: stage 1, 2, 3 and gas each become their
//!   own alarm), for devices of a configured zone.
//!
//! De-duplication with the agents, by event identity `(zone, rack, kind)`:
//! - the server never forwards an agent's events; an agent listed in a zone's `dc09_agents` sent
//!   its fire events over its own DC-09 link, so an identity an agent reported over MQTT
//!   (`fire.stage` events) is never sent by the server;
//! - an identity in a zone with a `dc09_agents` agent that is online is that agent's to send
//!   (the wire's `AgentState` carries no DC-09 link status, so "link up" is the agent's
//!   liveness: retained state `online = true`, the will sets it false);
//! - agent-loss troubles are site-level only: no agent ever covers them;
//! - **authority control entered from the console or the API** is sent as `fire.authority` for
//!   zone 0, rack 0 (restored when the site leaves it). Entered by a key switch, it is not: the
//!   rack controller or the agent reports that key switch for its own rack, so the receiver sees
//!   one message per key, not two;
//! - every server message has a stable event id (`srv:z{zone}:r{rack}:{kind}:{since_ms}`), so
//!   a restart re-submits the same id and the outbox drops it as a duplicate.
//!
//! [`Planner`] is the pure decision (inputs in, messages out, `now_ms` passed in); [`start`] is
//! the shell: it polls the alarm engine, the agent states and new agent events, submits what the
//! planner decides, and records every message (queued, ACK time, path) as a `dc09.msg` document.
//! During a drill every message is flagged as test (`Event::as_test`: the authority's test code)
//! and carries the drill id.
//!
//! # Terms, restarts and multi-site
//!
//! Restores of what a previous process sent wait `restart_grace_s`. The transmitter runs per term:
//! a single server has one, with `<data>/dc09-outbox`; a replica has one per leadership, in
//! `term-{epoch}`. A new term reserves sequence numbers ahead in the store (`dc09.state/seq`, in
//! blocks of `SEQ_BLOCK`) and queues again every recorded message not delivered, with its recorded
//! number. In multi-site, an agent is offline for the planner only when every replica that can be
//! heard lost it (`cluster_hooks::agent_views`). Each message is a `dc09.msg` document (queued, seq, ACK
//! time, path, status, drill), served by `GET /api/dc09`.

use crate::app::App;
use crate::state::control::Control;
use crate::storage::store::{Batch, DocRecord, EventQuery, Fence};
use anyhow::Context;
use sia_dc09::{Event as SiaEvent, EventKind};
use std::collections::BTreeSet;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Document kind of one server-sent DC-09 message.
pub const MSG_DOC: &str = "dc09.msg";
/// Document kind of the planner's state (survives restarts).
pub const STATE_DOC: &str = "dc09.state";

pub use crate::config::dc09::{AlarmMap, Dc09Config, STAGE_KIND, ZoneConfig};

pub use crate::engine::dc09_plan::*;

// ---------------------------------------------------------------------------------------------
// The shell
// ---------------------------------------------------------------------------------------------

pub use crate::state::dc09_tx::{Dc09, SEQ_BLOCK};
use crate::state::dc09_tx::{SEQ_ID, Term};

/// The `dc09.state/seq` reservation.
async fn stored_seq_floor(app: &App) -> anyhow::Result<u64> {
    Ok(app
        .store
        .list_docs(STATE_DOC)
        .await?
        .into_iter()
        .find(|d| d.id == SEQ_ID)
        .and_then(|d| d.body["upto"].as_u64())
        .unwrap_or(0))
}

fn seq_doc(upto: u64, now_ms: i64) -> (String, DocRecord) {
    (
        STATE_DOC.into(),
        DocRecord {
            id: SEQ_ID.into(),
            updated_ms: now_ms,
            body: serde_json::json!({ "upto": upto }),
        },
    )
}

/// The event a message record describes (to queue it again in a new term).
fn event_of(m: &MessageRecord) -> Option<SiaEvent> {
    let mut e = SiaEvent::new(EventKind::from_name(&m.kind)?, m.zone, m.rack);
    if m.restore {
        e = e.restored();
    }
    if m.test {
        e = e.as_test();
    }
    Some(e)
}

/// Opens the planner; the transmitter starts with the first term (at once on a single server,
/// when the replica leads in a cluster). Errors name the config.
pub async fn start(
    app: Arc<App>,
    cfg: &Dc09Config,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<(Arc<Dc09>, Vec<JoinHandle<()>>)> {
    cfg.validate()
        .map_err(|(f, m)| anyhow::anyhow!("[dc09] {f}: {m}"))?;
    let link_cfg = match &cfg.link {
        Some(l) => l.clone(),
        None => dc09_link::LinkConfig::from_file(&cfg.link_config)
            .map_err(|e| anyhow::anyhow!("[dc09] link_config: {e}"))?,
    };
    link_cfg
        .validate()
        .map_err(|e| anyhow::anyhow!("[dc09] link_config: {e}"))?;
    let outbox = cfg
        .outbox_dir
        .clone()
        .unwrap_or_else(|| app.config.data_dir.join("dc09-outbox"));
    let dc09 = Arc::new(Dc09 {
        cfg: cfg.clone(),
        link_cfg,
        outbox: outbox.clone(),
        term: std::sync::Mutex::new(None),
        planner: tokio::sync::Mutex::new(Planner::new(cfg, PlannerState::default())),
        records: Arc::new(tokio::sync::Mutex::new(())),
        wake: tokio::sync::Notify::new(),
    });
    // A single server starts its term now, so that a bad outbox stops the start.
    if let Ok(None) = app.leader_fence() {
        begin_term(&app, &dc09, None).await?;
    }
    let mut tasks = Vec::new();
    {
        let app = app.clone();
        let dc09 = dc09.clone();
        let mut stop = stop.clone();
        let poll = std::time::Duration::from_millis(cfg.poll_ms);
        tasks.push(tokio::spawn(async move {
            let mut iv = tokio::time::interval(poll);
            iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = crate::base::stop::stopped(&mut stop) => break,
                    _ = iv.tick() => {}
                    _ = dc09.wake.notified() => {}
                }
                let fence = match app.leader_fence() {
                    Ok(f) => f,
                    Err(crate::state::cluster::NotLeader) => {
                        dc09.end_term("this replica is not the leader").await;
                        continue;
                    }
                };
                if dc09.term_fence().as_ref() != Some(&fence) {
                    dc09.end_term("a new term").await;
                    if let Err(e) = begin_term(&app, &dc09, fence.clone()).await {
                        tracing::error!("DC-09: starting the transmitter: {e:#}");
                        continue;
                    }
                }
                if let Err(e) = cycle(&app, &dc09, &fence).await {
                    if e.downcast_ref::<sqlx::Error>()
                        .and_then(crate::storage::store::fenced)
                        .is_some()
                    {
                        dc09.end_term(&format!("{e}")).await;
                    } else {
                        tracing::error!("DC-09 planner: {e:#}");
                    }
                }
            }
            dc09.end_term("the server stops").await;
        }));
    }
    tracing::info!(outbox = %outbox.display(), zones = cfg.zone.len(), "server DC-09 planner started");
    Ok((dc09, tasks))
}

/// Starts a term: the planner state and the sequence reservation from the store, a
/// transmitter past every number reserved before, the delivery reports, and every recorded
/// message not delivered yet queued again with its number.
async fn begin_term(app: &Arc<App>, dc09: &Arc<Dc09>, fence: Option<Fence>) -> anyhow::Result<()> {
    *dc09.planner.lock().await = load_planner(app, dc09).await?;
    let floor = stored_seq_floor(app).await?;
    let dir = term_outbox(dc09, &fence);
    // Reserve ahead before anything is sent.
    let reserved = floor + SEQ_BLOCK;
    app.store
        .commit_batch(&Batch {
            docs: vec![seq_doc(reserved, app.now_ms())],
            fence: fence.clone(),
            ..Default::default()
        })
        .await?;
    let link = dc09_link::Transmitter::start_with_clock(
        dc09.link_cfg.clone(),
        &dir,
        floor,
        app.clock.clone(),
    )
    .await
    .with_context(|| format!("[dc09] starting the transmitter (outbox {})", dir.display()))?;
    let reports = tokio::spawn(delivery_reports(
        app.clone(),
        dc09.records.clone(),
        link.clone(),
        fence.clone(),
    ));
    *dc09.term.lock().expect("dc09 term") = Some(Term {
        fence: fence.clone(),
        link: link.clone(),
        reports,
        reserved,
    });
    ensure_reserved(app, dc09, &fence).await?;
    let again = queue_undelivered(app, &link).await?;
    tracing::info!(
        outbox = %dir.display(),
        seq_floor = floor,
        queued_again = again,
        epoch = fence.as_ref().map(|f| f.epoch),
        "server DC-09 transmitter started"
    );
    Ok(())
}

/// The planner from its stored state, holding restores for `restart_grace_s`.
async fn load_planner(app: &App, dc09: &Dc09) -> anyhow::Result<Planner> {
    let state = match app
        .store
        .list_docs(STATE_DOC)
        .await?
        .into_iter()
        .find(|d| d.id == "planner")
    {
        Some(d) => serde_json::from_value(d.body).context("stored DC-09 planner state")?,
        None => PlannerState::default(),
    };
    let mut planner = Planner::new(&dc09.cfg, state);
    planner.hold_restores_until(
        app.now_ms()
            .saturating_add((dc09.cfg.restart_grace_s as i64).saturating_mul(1000)),
    );
    Ok(planner)
}

/// The term's outbox: the configured one for a single server, `term-{epoch}` under it for a
/// replica (earlier terms' outboxes removed).
fn term_outbox(dc09: &Dc09, fence: &Option<Fence>) -> std::path::PathBuf {
    match fence {
        None => dc09.outbox.clone(),
        Some(f) => {
            // Earlier terms' outboxes: whatever they held is in the store (recorded before it
            // was queued) and is queued again below.
            if let Ok(entries) = std::fs::read_dir(&dc09.outbox) {
                for e in entries.flatten() {
                    if e.file_name().to_string_lossy().starts_with("term-") {
                        let _ = std::fs::remove_dir_all(e.path());
                    }
                }
            }
            dc09.outbox.join(format!("term-{}", f.epoch))
        }
    }
}

/// Queues again every recorded message still `queued`, with its recorded number; returns how
/// many were new to the outbox.
async fn queue_undelivered(app: &App, link: &dc09_link::Handle) -> anyhow::Result<usize> {
    let mut again = 0;
    for m in messages(app).await? {
        if m.status != "queued" {
            continue;
        }
        let Some(event) = event_of(&m) else {
            tracing::error!(event = %m.event_id, kind = %m.kind, "recorded DC-09 message has an unknown kind; NOT SENT");
            continue;
        };
        let sub = dc09_link::Submission {
            event_id: m.event_id.clone(),
            event,
        };
        let r = match sia_dc09::Seq::new(m.seq) {
            Some(seq) => link.submit_with_seq(sub, seq).await,
            None => link.submit(sub).await,
        };
        match r {
            Ok(q) if !q.duplicate => again += 1,
            Ok(_) => {}
            Err(e) => tracing::error!(event = %m.event_id, "DC-09 MESSAGE NOT QUEUED: {e}"),
        }
    }
    Ok(again)
}

/// Moves the store's reservation ahead of the transmitter's counter when it comes near.
async fn ensure_reserved(app: &App, dc09: &Dc09, fence: &Option<Fence>) -> anyhow::Result<()> {
    let (counter, reserved) = {
        let t = dc09.term.lock().expect("dc09 term");
        let Some(t) = t.as_ref() else { return Ok(()) };
        (t.link.seq_counter(), t.reserved)
    };
    if counter + SEQ_BLOCK / 2 < reserved {
        return Ok(());
    }
    let upto = counter + SEQ_BLOCK;
    app.store
        .commit_batch(&Batch {
            docs: vec![seq_doc(upto, app.now_ms())],
            fence: fence.clone(),
            ..Default::default()
        })
        .await?;
    if let Some(t) = dc09.term.lock().expect("dc09 term").as_mut() {
        t.reserved = upto;
    }
    Ok(())
}

/// Delivery reports of a term's transmitter -> message records.
async fn delivery_reports(
    app: Arc<App>,
    records: Arc<tokio::sync::Mutex<()>>,
    link: dc09_link::Handle,
    fence: Option<Fence>,
) {
    let mut rx = link.subscribe();
    loop {
        match rx.recv().await {
            Ok(dc09_link::LinkEvent::Delivered {
                event_id,
                path,
                acked_ms,
                ..
            }) => {
                update_msg(&app, &records, &fence, &event_id, |m| {
                    m.acked_ms = Some(acked_ms);
                    m.path = Some(path.clone());
                    m.status = "delivered".into();
                })
                .await;
            }
            Ok(dc09_link::LinkEvent::Rejected { event_id, path, .. }) => {
                update_msg(&app, &records, &fence, &event_id, |m| {
                    m.path = Some(path.clone());
                    m.status = "rejected".into();
                })
                .await;
            }
            Ok(_) => {}
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!("DC-09 delivery reports lagged by {n}");
            }
            Err(_) => break,
        }
    }
}

async fn update_msg(
    app: &App,
    lock: &tokio::sync::Mutex<()>,
    fence: &Option<Fence>,
    event_id: &str,
    f: impl Fn(&mut MessageRecord),
) {
    // The queued record is written before the submission, so it exists; retry briefly if a
    // delivery report overtakes it.
    for _ in 0..20 {
        let _guard = lock.lock().await;
        let docs = match app.store.list_docs(MSG_DOC).await {
            Ok(d) => d,
            Err(e) => {
                tracing::error!("DC-09 message records: {e}");
                return;
            }
        };
        if let Some(d) = docs.into_iter().find(|d| d.id == event_id)
            && let Ok(mut m) = serde_json::from_value::<MessageRecord>(d.body)
        {
            f(&mut m);
            if let Err(e) = put_msgs(app, std::slice::from_ref(&m), None, fence).await {
                tracing::error!("storing DC-09 message record {}: {e}", m.event_id);
            }
            return;
        }
        drop(_guard);
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    tracing::debug!(%event_id, "delivery report for a message not sent by the planner");
}

/// Stores message records (and the planner state) in one transaction, fenced.
async fn put_msgs(
    app: &App,
    msgs: &[MessageRecord],
    planner: Option<&PlannerState>,
    fence: &Option<Fence>,
) -> Result<(), sqlx::Error> {
    let now = app.now_ms();
    let mut batch = Batch {
        fence: fence.clone(),
        ..Default::default()
    };
    for m in msgs {
        batch.docs.push((
            MSG_DOC.into(),
            DocRecord {
                id: m.event_id.clone(),
                updated_ms: now,
                body: serde_json::to_value(m).unwrap_or_default(),
            },
        ));
    }
    if let Some(p) = planner {
        batch.docs.push((
            STATE_DOC.into(),
            DocRecord {
                id: "planner".into(),
                updated_ms: now,
                body: serde_json::to_value(p).unwrap_or_default(),
            },
        ));
    }
    app.store.commit_batch(&batch).await.map(|_| ())
}

/// Every server-sent DC-09 message recorded, oldest first.
pub async fn messages(app: &App) -> anyhow::Result<Vec<MessageRecord>> {
    let mut v: Vec<MessageRecord> = app
        .store
        .list_docs(MSG_DOC)
        .await?
        .into_iter()
        .filter_map(|d| serde_json::from_value(d.body).ok())
        .collect();
    v.sort_by_key(|m| (m.queued_ms, m.seq));
    Ok(v)
}

/// One planner cycle: new agent events, then alarms and agent states, then submissions.
async fn cycle(app: &App, dc09: &Dc09, fence: &Option<Fence>) -> anyhow::Result<()> {
    let Some(link) = dc09.link() else {
        return Ok(());
    };
    ensure_reserved(app, dc09, fence).await?;
    let now = app.now_ms();
    let agents = agent_views(app).await?;
    let mut planner = dc09.planner.lock().await;
    let before = planner.state.clone();
    feed_agent_events(app, &mut planner).await?;
    let alarms: Vec<AlarmView> = {
        let f = app.plant.facility.lock().await;
        f.engine.alarms().map(AlarmView::of).collect()
    };
    let drill = app.active_drill_id();
    let authority = authority_by_user(&app.control).await;
    let out = planner.step(&Inputs {
        now_ms: now,
        alarms: &alarms,
        agents: &agents,
        drill: drill.as_deref(),
        authority,
    });
    if planner.state == before && out.is_empty() {
        return Ok(());
    }
    // Each message gets its sequence number now and is recorded with it, together with the
    // planner state that decided it, in one fenced transaction, before it is queued: a
    // leader that dies after this leaves it to the next one, with the same number.
    let (recs, subs) = number_new(app, &link, out).await?;
    {
        let _guard = dc09.records.lock().await;
        if let Err(e) = put_msgs(app, &recs, Some(&planner.state), fence).await {
            // Not recorded, so not sent: the planner decides again from the stored state.
            planner.state = before;
            return Err(e.into());
        }
    }
    drop(planner);
    submit_recorded(&link, subs).await;
    Ok(())
}

/// The agents as the planner sees them. Multi-site: an agent is offline for the planner only
/// when every replica that can be heard has lost it (`cluster::views`).
async fn agent_views(app: &App) -> anyhow::Result<Vec<AgentView>> {
    Ok(match crate::io::cluster_hooks::agent_views(app) {
        Some(v) => v,
        None => app
            .store
            .list_agents()
            .await?
            .into_iter()
            .map(|a| AgentView {
                id: a.agent,
                online: a.online,
                // when the server received the state: for the will, the moment contact was lost
                since_ms: a.last_seen_ms,
            })
            .collect(),
    })
}

/// Feeds the planner the agent events stored since its cursors (what the agents sent over
/// their own DC-09 links) and moves the cursors.
async fn feed_agent_events(app: &App, planner: &mut Planner) -> anyhow::Result<()> {
    let high = app.store.event_high_water().await?;
    for (agent, epoch, seq) in high {
        // One cursor per spool epoch: a wiped spool's new stream starts again at 1.
        let key = if epoch.is_empty() {
            agent.clone()
        } else {
            format!("{agent}@{epoch}")
        };
        let cursor = planner.state.cursors.get(&key).copied().unwrap_or(0);
        if seq <= cursor {
            continue;
        }
        let q = EventQuery {
            agent: Some(agent.clone()),
            limit: 10_000,
            ..Default::default()
        };
        let mut evs: Vec<_> = app
            .store
            .list_events(&q)
            .await?
            .into_iter()
            .filter(|e| e.epoch == epoch && e.seq > cursor)
            .collect();
        evs.sort_by_key(|e| e.seq);
        for e in &evs {
            let covered = planner.on_agent_event(&e.agent, &e.device, &e.kind, &e.data);
            if !covered.is_empty() {
                tracing::info!(agent = %e.agent, event = %e.id, ?covered, "fire event sent by the agent over its own DC-09 link; the server does not send it");
            }
        }
        planner.state.cursors.insert(key, seq);
    }
    Ok(())
}

/// Authority control entered by a user (console or API): since when and the cause; a key
/// switch is the rack's own to report.
async fn authority_by_user(control: &Control) -> Option<(i64, String)> {
    let a = control.authority.lock().await;
    match &a.active {
        Some(crate::engine::authority::Control {
            since_ms,
            cause: cause @ crate::engine::authority::Cause::User { .. },
        }) => Some((*since_ms, cause.describe())),
        _ => None,
    }
}

/// Gives each message not recorded yet its sequence number: the records to store and the
/// submissions to queue after.
async fn number_new(
    app: &App,
    link: &dc09_link::Handle,
    out: Vec<Outgoing>,
) -> anyhow::Result<(Vec<MessageRecord>, Vec<(Outgoing, sia_dc09::Seq)>)> {
    let existing: BTreeSet<String> = if out.is_empty() {
        BTreeSet::new()
    } else {
        app.store
            .list_docs(MSG_DOC)
            .await?
            .into_iter()
            .map(|d| d.id)
            .collect()
    };
    let mut recs = Vec::new();
    let mut subs = Vec::new();
    for o in out {
        if existing.contains(&o.event_id) {
            tracing::debug!(event = %o.event_id, "already recorded; not queued again");
            continue;
        }
        let seq = link.reserve_seq().await?;
        recs.push(MessageRecord {
            event_id: o.event_id.clone(),
            kind: o.event.kind.name().into(),
            zone: o.identity.zone,
            rack: o.identity.rack,
            restore: o.event.restore,
            test: o.event.test,
            drill: o.drill.clone(),
            source: o.source.clone(),
            seq: seq.get(),
            queued_ms: app.now_ms(),
            acked_ms: None,
            path: None,
            status: "queued".into(),
        });
        subs.push((o, seq));
    }
    Ok((recs, subs))
}

/// Queues the recorded messages with their numbers.
async fn submit_recorded(link: &dc09_link::Handle, subs: Vec<(Outgoing, sia_dc09::Seq)>) {
    for (o, seq) in subs {
        match link
            .submit_with_seq(
                dc09_link::Submission {
                    event_id: o.event_id.clone(),
                    event: o.event,
                },
                seq,
            )
            .await
        {
            Ok(q) if !q.duplicate => {
                tracing::info!(event = %o.event_id, seq = q.seq.get(), source = %o.source, "DC-09 message queued");
            }
            Ok(_) => tracing::debug!(event = %o.event_id, "already in the DC-09 outbox"),
            Err(e) => {
                tracing::error!(event = %o.event_id, "DC-09 MESSAGE NOT QUEUED: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::dc09::d_alarms;
    use std::collections::BTreeMap;
    use std::path::Path;

    fn cfg() -> Dc09Config {
        let mut c = Dc09Config::with_link(dc09_link::LinkConfig::new(
            sia_dc09::Account::new("1234").unwrap(),
            Vec::new(),
        ));
        c.agent_loss_after_s = 60;
        c.zone = vec![
            ZoneConfig {
                number: 1,
                name: "battery room 1".into(),
                devices: vec!["bms-z1".into(), "rack-1*".into()],
                racks: [("bms-z1".to_string(), 7)].into(),
                agents: vec!["a1".into()],
                dc09_agents: vec!["a1".into()],
            },
            ZoneConfig {
                number: 2,
                name: "battery room 2".into(),
                devices: vec!["bms-z2".into()],
                racks: BTreeMap::new(),
                agents: vec!["a2".into()],
                dc09_agents: vec![],
            },
        ];
        c.alarm.push(AlarmMap {
            rule: "room-hot".into(),
            kind: "fire.stage1".into(),
        });
        c
    }

    fn alarm(rule: &str, subject: &str, active: bool, value: f64, since: i64) -> AlarmView {
        AlarmView {
            id: format!("{rule}:{subject}"),
            rule: rule.into(),
            subject: subject.into(),
            active,
            active_since_ms: active.then_some(since),
            value: Some(value),
        }
    }

    fn agent(id: &str, online: bool, since: i64) -> AgentView {
        AgentView {
            id: id.into(),
            online,
            since_ms: since,
        }
    }

    fn kinds(out: &[Outgoing]) -> Vec<(u16, u16, &'static str, bool)> {
        out.iter()
            .map(|o| {
                (
                    o.identity.zone,
                    o.identity.rack,
                    o.event.kind.name(),
                    o.event.restore,
                )
            })
            .collect()
    }

    #[test]
    fn config_validation_names_the_field() {
        let mut c = cfg();
        c.zone[1].number = 1;
        assert_eq!(c.validate().unwrap_err().0, "dc09.zone[1].number");
        let mut c = cfg();
        c.alarm[0].kind = "fire.big".into();
        let (f, m) = c.validate().unwrap_err();
        assert_eq!(f, "dc09.alarm[0].kind");
        assert!(m.contains("fire.stage1"), "{m}");
        let mut c = cfg();
        c.zone[0].racks.insert("x".into(), 10_000);
        assert_eq!(c.validate().unwrap_err().0, "dc09.zone[0].racks");
        assert!(cfg().validate().is_ok());
    }

    #[test]
    fn parses_from_toml() {
        let c: Dc09Config = toml::from_str(
            "link_config = \"l.toml\"\n[[zone]]\nnumber = 3\ndevices = [\"bms-z3\"]\nracks = { \"bms-z3\" = 2 }\n",
        )
        .unwrap();
        assert_eq!(c.zone[0].racks["bms-z3"], 2);
        assert_eq!(c.alarm, d_alarms());
        assert_eq!(c.agent_loss_after_s, 120);
        let e = toml::from_str::<Dc09Config>("link_config = \"l\"\nzones = 1\n").unwrap_err();
        assert!(e.to_string().contains("zones"), "{e}");
    }

    #[test]
    fn server_config_section_is_checked_and_resolved() {
        use crate::config::Config;
        let ok = "[dc09]\nlink_config = \"arc.toml\"\n[[dc09.zone]]\nnumber = 1\ndevices = [\"bms-z1\"]\n";
        let c = Config::parse(ok, Path::new("server.toml")).unwrap();
        assert_eq!(c.dc09.as_ref().unwrap().zone[0].number, 1);
        assert!(
            Config::parse("", Path::new("server.toml"))
                .unwrap()
                .dc09
                .is_none()
        );
        let e = Config::parse(
            "[dc09]\nlink_config = \"a\"\n[[dc09.zone]]\nnumber = 1000\ndevices = [\"x\"]\n",
            Path::new("server.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("server.toml") && e.contains("dc09.zone[0].number"),
            "{e}"
        );
        let e = Config::parse(
            "[dc09]\nlink_config = \"a\"\nzones = 3\n",
            Path::new("server.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("line 3") && e.contains("zones"), "{e}");
        // relative paths are relative to the configuration file
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("server.toml");
        std::fs::write(&file, ok).unwrap();
        let c = Config::load(&file).unwrap();
        assert_eq!(c.dc09.unwrap().link_config, dir.path().join("arc.toml"));
    }

    #[test]
    fn stage_values_map_to_every_stage_reached() {
        assert!(stage_kinds(0.0).is_empty());
        assert_eq!(stage_kinds(1.0), vec![EventKind::FirePreAlarm]);
        assert_eq!(
            stage_kinds(2.0),
            vec![EventKind::FirePreAlarm, EventKind::FireStage1]
        );
        assert_eq!(
            stage_kinds(4.0),
            vec![
                EventKind::FirePreAlarm,
                EventKind::FireStage1,
                EventKind::FireStage2Patch,
                EventKind::FireStage3Agent
            ]
        );
        assert_eq!(stage_kinds(6.0).last(), Some(&EventKind::FireStage5Gas));
        assert_eq!(stage_kinds(6.0).len(), 6);
    }

    #[test]
    fn site_level_alarm_in_an_uncovered_zone_is_sent_once_then_restored() {
        let c = cfg();
        let mut p = Planner::new(&c, PlannerState::default());
        let agents = [agent("a2", true, 0)];
        let alarms = [alarm("fire-stage", "bms-z2", true, 3.0, 1000)];
        let out = p.step(&Inputs {
            now_ms: 2000,
            alarms: &alarms,
            agents: &agents,
            drill: None,
            authority: None,
        });
        assert_eq!(
            kinds(&out),
            vec![
                (2, 0, "fire.prealarm", false),
                (2, 0, "fire.stage1", false),
                (2, 0, "fire.stage2_patch", false)
            ]
        );
        assert_eq!(out[1].event_id, "srv:z2:r0:fire.stage1:1000");
        assert!(!out[0].event.test);
        // steady: nothing more
        let again = p.step(&Inputs {
            now_ms: 3000,
            alarms: &alarms,
            agents: &agents,
            drill: None,
            authority: None,
        });
        assert!(again.is_empty(), "{again:?}");
        // stage 3 adds one
        let alarms = [alarm("fire-stage", "bms-z2", true, 4.0, 1000)];
        let out = p.step(&Inputs {
            now_ms: 4000,
            alarms: &alarms,
            agents: &agents,
            drill: None,
            authority: None,
        });
        assert_eq!(kinds(&out), vec![(2, 0, "fire.stage3_agent", false)]);
        // the condition clears: every sent alarm is restored, with its own restore id
        let alarms = [alarm("fire-stage", "bms-z2", false, 0.0, 0)];
        let out = p.step(&Inputs {
            now_ms: 5000,
            alarms: &alarms,
            agents: &agents,
            drill: None,
            authority: None,
        });
        assert_eq!(out.len(), 4);
        assert!(out.iter().all(|o| o.event.restore));
        assert!(out.iter().all(|o| o.event_id.ends_with(":restore")));
        assert!(p.state.sent.is_empty());
    }

    #[test]
    fn zone_with_an_online_dc09_agent_is_the_agents_to_send() {
        let c = cfg();
        let mut p = Planner::new(&c, PlannerState::default());
        let alarms = [alarm("fire-stage", "bms-z1", true, 2.0, 1000)];
        let online = [agent("a1", true, 0)];
        let out = p.step(&Inputs {
            now_ms: 2000,
            alarms: &alarms,
            agents: &online,
            drill: None,
            authority: None,
        });
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(
            p.covered_by(
                &Identity {
                    zone: 1,
                    rack: 7,
                    kind: EventKind::FireStage1
                },
                &online
            ),
            Some("a1".into())
        );
        // the agent is gone before it reported the stage: the server sends it, and the
        // agent's loss is a trouble at once because a fire stage is active in the zone
        let offline = [agent("a1", false, 1500)];
        let out = p.step(&Inputs {
            now_ms: 2500,
            alarms: &alarms,
            agents: &offline,
            drill: None,
            authority: None,
        });
        assert_eq!(
            kinds(&out),
            vec![
                (1, 0, "fire.trouble", false),
                (1, 7, "fire.prealarm", false),
                (1, 7, "fire.stage1", false)
            ]
        );
    }

    #[test]
    fn an_event_an_agent_reported_is_never_sent_again_by_the_server() {
        let c = cfg();
        let mut p = Planner::new(&c, PlannerState::default());
        let covered = p.on_agent_event(
            "a1",
            "bms-z1",
            "fire.stage",
            &serde_json::json!({"stage_code": 3, "rack": "bms-z1"}),
        );
        assert_eq!(covered.len(), 3);
        // even with the agent offline since, the identities it reported stay its own
        let alarms = [alarm("fire-stage", "bms-z1", true, 3.0, 1000)];
        let offline = [agent("a1", false, 1500)];
        let out = p.step(&Inputs {
            now_ms: 1600,
            alarms: &alarms,
            agents: &offline,
            drill: None,
            authority: None,
        });
        assert_eq!(kinds(&out), vec![(1, 0, "fire.trouble", false)]);
        // stage 3 was not reported by the agent: the server sends that one
        let alarms = [alarm("fire-stage", "bms-z1", true, 4.0, 1000)];
        let out = p.step(&Inputs {
            now_ms: 1700,
            alarms: &alarms,
            agents: &offline,
            drill: None,
            authority: None,
        });
        assert_eq!(kinds(&out), vec![(1, 7, "fire.stage3_agent", false)]);
        // a local reset reported by the agent clears its identities
        p.on_agent_event(
            "a1",
            "bms-z1",
            "fire.stage",
            &serde_json::json!({"stage_code": 0}),
        );
        assert!(p.state.agent_reported.is_empty());
        // an agent without its own DC-09 link covers nothing
        let mut p = Planner::new(&c, PlannerState::default());
        assert!(
            p.on_agent_event(
                "a2",
                "bms-z2",
                "fire.stage",
                &serde_json::json!({"stage_code": 4})
            )
            .is_empty()
        );
        // other event kinds are not fire stages
        assert!(
            p.on_agent_event("a1", "bms-z1", "device.comm_lost", &serde_json::Value::Null)
                .is_empty()
        );
    }

    #[test]
    fn agent_loss_becomes_a_trouble_after_the_configured_time_and_restores() {
        let c = cfg();
        let mut p = Planner::new(&c, PlannerState::default());
        let away = [agent("a2", false, 10_000)];
        let at = |p: &mut Planner, now: i64, agents: &[AgentView]| {
            p.step(&Inputs {
                now_ms: now,
                alarms: &[],
                agents,
                drill: None,
                authority: None,
            })
        };
        assert!(at(&mut p, 69_999, &away).is_empty());
        let out = at(&mut p, 70_000, &away);
        assert_eq!(kinds(&out), vec![(2, 0, "fire.trouble", false)]);
        assert_eq!(out[0].source, "agent a2 lost");
        assert!(at(&mut p, 80_000, &away).is_empty());
        let back = [agent("a2", true, 90_000)];
        let out = at(&mut p, 90_000, &back);
        assert_eq!(kinds(&out), vec![(2, 0, "fire.trouble", true)]);
        // never seen: nothing to lose
        let mut p = Planner::new(&c, PlannerState::default());
        assert!(at(&mut p, 1_000_000, &[]).is_empty());
    }

    #[test]
    fn drill_messages_are_tests_and_their_restores_too() {
        let c = cfg();
        let mut p = Planner::new(&c, PlannerState::default());
        let alarms = [alarm("room-hot", "bms-z2", true, 35.0, 500)];
        let out = p.step(&Inputs {
            now_ms: 1000,
            alarms: &alarms,
            agents: &[],
            drill: Some("d1"),
            authority: None,
        });
        // the drill bracket first, then the alarm, all as tests
        assert_eq!(
            kinds(&out),
            vec![(0, 0, "test.drill", false), (2, 0, "fire.stage1", false)]
        );
        assert_eq!(out[0].event_id, "srv:z0:r0:test.drill:d1");
        assert!(out.iter().all(|o| o.event.test));
        assert_eq!(out[1].drill.as_deref(), Some("d1"));
        assert!(
            p.step(&Inputs {
                now_ms: 1500,
                alarms: &alarms,
                agents: &[],
                drill: Some("d1"),
                authority: None,
            })
            .is_empty()
        );
        // the drill ends, and the condition clears after it: the bracket closes, and the
        // alarm's restore is still a test
        let out = p.step(&Inputs {
            now_ms: 2000,
            alarms: &alarms,
            agents: &[],
            drill: None,
            authority: None,
        });
        assert_eq!(kinds(&out), vec![(0, 0, "test.drill", true)]);
        assert!(out[0].event.test);
        let out = p.step(&Inputs {
            now_ms: 2500,
            alarms: &[],
            agents: &[],
            drill: None,
            authority: None,
        });
        assert_eq!(kinds(&out), vec![(2, 0, "fire.stage1", true)]);
        assert!(out[0].event.test);
        assert_eq!(out[0].drill.as_deref(), Some("d1"));
    }

    #[test]
    fn authority_control_entered_by_a_user_is_sent_once_and_restored_on_exit() {
        let c = cfg();
        let mut p = Planner::new(&c, PlannerState::default());
        let entered = Some((900, "ops (operator): brigade on site".to_string()));
        let step = |p: &mut Planner, now_ms, authority: &Option<(i64, String)>| {
            p.step(&Inputs {
                now_ms,
                alarms: &[],
                agents: &[],
                drill: None,
                authority: authority.clone(),
            })
        };
        let out = step(&mut p, 1000, &entered);
        assert_eq!(kinds(&out), vec![(0, 0, "fire.authority", false)]);
        assert_eq!(out[0].event_id, "srv:z0:r0:fire.authority:900");
        assert!(step(&mut p, 1500, &entered).is_empty(), "sent once");
        let out = step(&mut p, 2000, &None);
        assert_eq!(kinds(&out), vec![(0, 0, "fire.authority", true)]);
    }

    #[test]
    fn unmapped_rules_and_devices_outside_zones_send_nothing() {
        let c = cfg();
        let mut p = Planner::new(&c, PlannerState::default());
        let alarms = [
            alarm("chiller-fault", "bms-z2", true, 1.0, 1),
            alarm("fire-stage", "bms-r99", true, 4.0, 1),
        ];
        let out = p.step(&Inputs {
            now_ms: 10,
            alarms: &alarms,
            agents: &[],
            drill: None,
            authority: None,
        });
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn restores_of_alarms_sent_before_a_restart_wait_for_the_grace_time() {
        let c = cfg();
        let mut p = Planner::new(&c, PlannerState::default());
        let alarms = [alarm("fire-stage", "bms-z2", true, 2.0, 1000)];
        let sent = p.step(&Inputs {
            now_ms: 2000,
            alarms: &alarms,
            agents: &[],
            drill: None,
            authority: None,
        });
        assert_eq!(sent.len(), 2);
        let mut p2 = Planner::new(&c, p.state.clone());
        p2.hold_restores_until(10_000);
        let none = Inputs {
            now_ms: 5000,
            alarms: &[],
            agents: &[],
            drill: None,
            authority: None,
        };
        assert!(p2.step(&none).is_empty(), "held");
        let out = p2.step(&Inputs {
            now_ms: 10_000,
            ..none
        });
        assert_eq!(
            kinds(&out),
            vec![(2, 0, "fire.prealarm", true), (2, 0, "fire.stage1", true)]
        );
    }

    #[test]
    fn state_survives_a_restart_without_resending() {
        let c = cfg();
        let mut p = Planner::new(&c, PlannerState::default());
        let alarms = [alarm("fire-stage", "bms-z2", true, 2.0, 1000)];
        let first = p.step(&Inputs {
            now_ms: 2000,
            alarms: &alarms,
            agents: &[],
            drill: None,
            authority: None,
        });
        assert_eq!(first.len(), 2);
        let saved: PlannerState =
            serde_json::from_value(serde_json::to_value(&p.state).unwrap()).unwrap();
        let mut p2 = Planner::new(&c, saved);
        assert!(
            p2.step(&Inputs {
                now_ms: 3000,
                alarms: &alarms,
                agents: &[],
                drill: None,
                authority: None,
            })
            .is_empty()
        );
        // without the saved state the same event id is produced (the outbox drops it)
        let mut p3 = Planner::new(&c, PlannerState::default());
        let again = p3.step(&Inputs {
            now_ms: 9000,
            alarms: &alarms,
            agents: &[],
            drill: None,
            authority: None,
        });
        assert_eq!(again[0].event_id, first[0].event_id);
    }
}
