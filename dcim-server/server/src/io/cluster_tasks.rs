//! The cluster's tasks: the leader lease, the heartbeat to the other replicas and the witness,
//! and the follower's reload of the leader's state. Taking over restores the engines (alarms,
//! incidents, authority control, drill, maintenance windows) from the store before the new
//! leader acts. It sits above the modules whose state it restores; `cluster` below holds the
//! replica's view and the hooks the rest of the server asks.

use crate::app::App;
use crate::base::leader::{Change, Role, Seen};
use crate::state::cluster::views::{self, Heard, PeerState, View};
use crate::state::cluster::{Cluster, LEASE, LeaderInfo, PeerInfo};
use crate::storage::store::Fence;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

// ---------------------------------------------------------------------------------------------
// Tasks
// ---------------------------------------------------------------------------------------------

/// Starts the lease, heartbeat and follower-reload tasks.
pub fn start(app: Arc<App>, stop: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
    if app.cluster.is_none() {
        return Vec::new();
    }
    vec![
        tokio::spawn(lease_task(app.clone(), stop.clone())),
        tokio::spawn(heartbeat_task(app.clone(), stop.clone())),
        tokio::spawn(follower_task(app, stop)),
    ]
}

fn cluster(app: &App) -> &Cluster {
    app.cluster
        .as_ref()
        .expect("cluster tasks run only with [cluster]")
}

async fn lease_task(app: Arc<App>, mut stop: watch::Receiver<bool>) {
    let c = cluster(&app);
    let timing = c.config.timing();
    let info = json!({
        "replica": c.config.replica,
        "site": c.config.site,
        "url": c.config.advertise_url,
    });
    loop {
        let sent = c.mono();
        let deadline = c.core.lock().expect("lease core").deadline();
        let until_deadline = deadline.map_or(Duration::from_secs(3600), |d| {
            Duration::from_millis((d - sent).max(0) as u64)
        });
        let call = tokio::time::timeout(
            Duration::from_millis((2 * timing.renew_ms) as u64),
            app.store
                .try_lease(LEASE, &c.config.replica, &info, timing.ttl_ms),
        );
        let r = tokio::select! {
            r = call => Some(r),
            _ = tokio::time::sleep(until_deadline) => None,
            _ = crate::base::stop::stopped(&mut stop) => break,
        };
        let now = c.mono();
        let changes = lease_changes(c, sent, now, r);
        apply(&app, changes).await;
        publish_leader(c);
        let wait = next_attempt(c, timing.renew_ms, sent);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = crate::base::stop::stopped(&mut stop) => break,
        }
    }
    hand_over(&app, c).await;
}

/// The lease core's changes after one attempt: the lease the store answered (`sent` is when
/// the attempt began), a failure (an error, or no answer within two renewals), or `None` when
/// the deadline came first (a tick).
fn lease_changes(
    c: &Cluster,
    sent: i64,
    now: i64,
    r: Option<
        Result<
            crate::storage::store::StoreResult<crate::storage::store::LeaseRecord>,
            tokio::time::error::Elapsed,
        >,
    >,
) -> Vec<Change> {
    let mut core = c.core.lock().expect("lease core");
    match r {
        Some(Ok(Ok(l))) => {
            let seen = Seen {
                holder: l.holder.clone(),
                epoch: l.epoch,
                valid: l.expires_ms > l.now_ms,
                info: l.info.clone(),
            };
            core.on_lease(sent, now, seen)
        }
        Some(Ok(Err(e))) => {
            tracing::warn!("leader lease: {e}");
            core.on_failure(now)
        }
        Some(Err(_)) => {
            tracing::warn!("leader lease: no answer from the database in time");
            core.on_failure(now)
        }
        None => core.on_tick(now),
    }
}

/// How long until the next attempt: one renewal period after `sent`, sooner when the lease's
/// deadline comes first.
fn next_attempt(c: &Cluster, renew_ms: i64, sent: i64) -> Duration {
    let next = Duration::from_millis(renew_ms as u64)
        .saturating_sub(Duration::from_millis((c.mono() - sent).max(0) as u64));
    let deadline = c.core.lock().expect("lease core").deadline();
    match deadline {
        Some(d) => next.min(Duration::from_millis((d - c.mono()).max(0) as u64)),
        None => next,
    }
}

/// Graceful stop: hand over at once instead of letting the lease expire, and leave the
/// witness.
async fn hand_over(app: &Arc<App>, c: &Cluster) {
    let changes = c
        .core
        .lock()
        .expect("lease core")
        .step_down("shutting down");
    let was_leader = !changes.is_empty();
    apply(app, changes).await;
    if was_leader {
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            app.store.release_lease(LEASE, &c.config.replica),
        )
        .await;
    }
    if let Some(w) = &c.witness {
        let _ = tokio::time::timeout(Duration::from_secs(2), w.leave()).await;
    }
}

/// Who leads, from the lease core, into the published status.
fn publish_leader(c: &Cluster) {
    let role = c.core.lock().expect("lease core").role().clone();
    let leader = match role {
        Role::Leader { epoch, .. } => Some(LeaderInfo {
            replica: c.config.replica.clone(),
            epoch,
            site: c.config.site.clone(),
            url: c.config.advertise_url.clone(),
        }),
        Role::Follower { leader: Some(s) } => Some(LeaderInfo {
            replica: s.holder.clone(),
            epoch: s.epoch,
            site: s.info["site"].as_str().unwrap_or_default().to_owned(),
            url: s.info["url"].as_str().map(str::to_owned),
        }),
        Role::Follower { leader: None } => None,
    };
    c.set_status(|s| s.leader = leader);
}

async fn apply(app: &Arc<App>, changes: Vec<Change>) {
    for ch in changes {
        match ch {
            Change::StepDown { epoch, reason } => step_down(app, epoch, &reason).await,
            Change::Lead { epoch } => {
                if let Err(e) = take_over(app, epoch).await {
                    tracing::error!(epoch, "takeover failed, not leading: {e:#}");
                    let c = cluster(app);
                    let more = c
                        .core
                        .lock()
                        .expect("lease core")
                        .step_down("the engines could not be restored");
                    // (the next renewal, still ours, starts a new attempt)
                    for m in more {
                        if let Change::StepDown { epoch, reason } = m {
                            step_down(app, epoch, &reason).await;
                        }
                    }
                }
            }
        }
    }
}

/// Becomes the leader of `epoch`: restores the engines from what the store has (read after the
/// lease was committed, so everything the previous leader committed is there), then publishes
/// the fence; the notifier and the DC-09 planner start their term when they see it.
async fn take_over(app: &Arc<App>, epoch: i64) -> anyhow::Result<()> {
    let c = cluster(app);
    let t0 = Instant::now();
    let store = app.store.as_ref();
    let committed_ms = store
        .list_docs(crate::storage::store::ALARM_ENGINE_DOC)
        .await?
        .into_iter()
        .find(|d| d.id == "state")
        .map_or(0, |d| d.updated_ms);
    let snap = crate::storage::store::load_alarm_snapshot(store).await?;
    // One document per incident plus their meta document (`incident_store`).
    let incidents = crate::storage::incident_store::load(store).await?;
    let authority = crate::io::authority_io::load(store).await?;
    let drill = crate::io::drill::load_active(store, app.now_ms()).await?;
    // The maintenance windows the previous leader scheduled (its ticker applied them; this
    // replica's ticker carries on from here).
    let windows = crate::io::windows_io::load(store).await?;
    // Lock order: authority, maintenance windows, then facility.
    let mut a = app.control.authority.lock().await;
    let mut w = app.control.windows.lock().await;
    let mut f = app.plant.facility.lock().await;
    if let Some(s) = snap {
        f.restore(s, app.now_ms());
    }
    if let Some(i) = incidents {
        f.incidents = i;
    }
    f.set_passive(false);
    *w = windows;
    drop(w);
    *a = authority;
    *app.control.drill.write().expect("drill lock") = drill;
    app.plant
        .unjournaled
        .lock()
        .expect("unjournaled lock")
        .clear();
    app.plant
        .alarms_resync
        .store(false, std::sync::atomic::Ordering::Relaxed);
    let fence = Fence {
        lease: LEASE.into(),
        holder: c.config.replica.clone(),
        epoch,
    };
    c.set_status(|s| {
        s.leading = Some(fence);
        s.terms += 1;
    });
    // What this replica ingested as a follower since the previous leader's last commit.
    let changes = f.replay_live_since(committed_ms, app.now_ms());
    if let Err(e) = app.commit_changes(&f, &changes, None).await {
        tracing::error!("committing the alarms of samples ingested while following: {e:#}");
    }
    drop(f);
    drop(a);
    tracing::warn!(
        epoch,
        restore_ms = t0.elapsed().as_millis() as u64,
        replica = %c.config.replica,
        "LEADING: this replica now runs alarm commits, notifications, DC-09, drills and commands"
    );
    Ok(())
}

async fn step_down(app: &Arc<App>, epoch: i64, reason: &str) {
    let c = cluster(app);
    // First, so that no leader work starts from here on.
    c.set_status(|s| s.leading = None);
    let mut f = app.plant.facility.lock().await;
    f.set_passive(true);
    app.plant
        .unjournaled
        .lock()
        .expect("unjournaled lock")
        .clear();
    drop(f);
    c.alarmed.lock().await.clear();
    tracing::warn!(epoch, %reason, replica = %c.config.replica, "NOT LEADING ANY MORE: leader work stopped");
}

/// This replica's heartbeat (its view of the agents), and what the others' say.
async fn heartbeat_task(app: Arc<App>, mut stop: watch::Receiver<bool>) {
    let c = cluster(&app);
    let period = Duration::from_millis(c.config.renew_ms);
    let call_timeout = period.max(Duration::from_millis(500));
    let mut iv = tokio::time::interval(period);
    iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = iv.tick() => {}
            _ = crate::base::stop::stopped(&mut stop) => break,
        }
        let own = c.own.lock().expect("own view").clone();
        let body = json!({
            "replica": c.config.replica,
            "site": c.config.site,
            "url": c.config.advertise_url,
            "leading": c.fence().map(|f| f.epoch),
            "ts_ms": app.now_ms(),
            "agents": own,
        });
        let (put, witness_put) = tokio::join!(
            tokio::time::timeout(
                call_timeout,
                app.store.put_replica(&c.config.replica, &body)
            ),
            async {
                match &c.witness {
                    Some(w) => Some(w.beat(&c.config.replica, &body).await),
                    None => None,
                }
            }
        );
        match put {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::debug!("replica heartbeat to the database: {e}"),
            Err(_) => tracing::debug!("replica heartbeat to the database: timed out"),
        }
        if let Some(Err(e)) = witness_put {
            tracing::warn!("replica heartbeat to the witness: {e}");
        }
        let (stored, witnessed) = tokio::join!(
            tokio::time::timeout(call_timeout, app.store.list_replicas()),
            async {
                match &c.witness {
                    Some(w) => Some(w.read().await),
                    None => None,
                }
            }
        );
        let stored = match stored {
            Ok(Ok(v)) => Some(v),
            _ => None,
        };
        let witnessed: Option<BTreeMap<String, Value>> = match witnessed {
            Some(Ok(m)) => Some(m),
            Some(Err(e)) => {
                tracing::warn!("reading the witness: {e}");
                None
            }
            None => None,
        };
        update_peers(c, stored, witnessed);
        if app.leads() {
            alarm_peers(&app).await;
        }
    }
}

fn view_of(body: &Value) -> Option<View> {
    serde_json::from_value(body.get("agents")?.clone()).ok()
}

fn update_peers(
    c: &Cluster,
    stored: Option<(Vec<crate::storage::store::ReplicaRecord>, i64)>,
    witnessed: Option<BTreeMap<String, Value>>,
) {
    let me = &c.config.replica;
    let mut ids: BTreeSet<String> = BTreeSet::new();
    if let Some((recs, _)) = &stored {
        ids.extend(recs.iter().map(|r| r.id.clone()));
    }
    if let Some(w) = &witnessed {
        ids.extend(w.keys().cloned());
    }
    let mut peers = c.peers.lock().expect("peers");
    ids.extend(peers.keys().cloned());
    ids.remove(me);
    for id in ids {
        let rec = stored
            .as_ref()
            .and_then(|(recs, now)| recs.iter().find(|r| r.id == id).map(|r| (r, *now)));
        let wit = witnessed.as_ref().and_then(|w| w.get(&id));
        let heard = Heard {
            store_age_ms: rec.map(|(r, now)| now - r.seen_ms),
            witness: witnessed.as_ref().map(|w| w.contains_key(&id)),
            witness_configured: c.witness.is_some(),
        };
        let state = views::peer_state(heard, c.config.peer_timeout_ms as i64);
        // The newest view of the two channels.
        let bodies = [rec.map(|(r, _)| &r.body), wit];
        let newest = bodies
            .into_iter()
            .flatten()
            .max_by_key(|b| b["ts_ms"].as_i64().unwrap_or(0));
        let prev = peers.get(&id).cloned();
        let view = newest
            .and_then(view_of)
            .or(prev.as_ref().and_then(|p| p.view.clone()));
        let site = newest
            .and_then(|b| b["site"].as_str())
            .map(str::to_owned)
            .or(prev.map(|p| p.site))
            .unwrap_or_default();
        if peers.get(&id).is_none_or(|p| p.state != state) {
            tracing::warn!(peer = %id, ?state, ?heard, "replica state");
        }
        peers.insert(
            id.clone(),
            PeerInfo {
                replica: id,
                site,
                state,
                store_age_ms: heard.store_age_ms,
                witness: heard.witness,
                agents_seen: view.as_ref().map_or(0, |v| v.len()),
                view,
            },
        );
    }
}

/// The leader raises a communication-loss alarm (`comm-lost:replica:{id}`) for every peer
/// not heard through the database, and clears it when it is heard again.
async fn alarm_peers(app: &Arc<App>) {
    let c = cluster(app);
    let states: Vec<(String, PeerState)> = c
        .peers
        .lock()
        .expect("peers")
        .values()
        .map(|p| (p.replica.clone(), p.state))
        .collect();
    let mut alarmed = c.alarmed.lock().await;
    let now = app.now_ms();
    for (id, state) in states {
        let lost = state != PeerState::Fresh;
        if lost == alarmed.contains(&id) {
            continue;
        }
        let device = format!("replica:{id}");
        let mut f = app.plant.facility.lock().await;
        let kind = if lost {
            "device.comm_lost"
        } else {
            "device.comm_restored"
        };
        let changes = f.on_event(kind, &device, now);
        match app.commit_changes(&f, &changes, None).await {
            Ok(()) => {
                if lost {
                    alarmed.insert(id);
                } else {
                    alarmed.remove(&id);
                }
            }
            Err(e) => tracing::error!("committing the replica alarm: {e:#}"),
        }
    }
}

/// Followers: the leader's committed alarm, incident, authority and drill state, reloaded
/// every second, with the journal records streamed live as the leader's were.
async fn follower_task(app: Arc<App>, mut stop: watch::Receiver<bool>) {
    let mut iv = tokio::time::interval(Duration::from_secs(1));
    iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last: Option<(i64, Value)> = None;
    let mut cursor: Option<i64> = None;
    loop {
        tokio::select! {
            _ = iv.tick() => {}
            _ = crate::base::stop::stopped(&mut stop) => break,
        }
        if app.leads() {
            last = None;
            cursor = None;
            continue;
        }
        match follow(&app, &mut last, &mut cursor).await {
            Ok(()) => cluster(&app)
                .reloaded_ms
                .store(app.now_ms(), std::sync::atomic::Ordering::Relaxed),
            Err(e) => tracing::debug!("follower reload: {e:#}"),
        }
    }
}

async fn follow(
    app: &Arc<App>,
    last: &mut Option<(i64, Value)>,
    cursor: &mut Option<i64>,
) -> anyhow::Result<()> {
    let store = app.store.as_ref();
    if cursor.is_none() {
        *cursor = Some(store.journal_high_water().await?);
    }
    let engine = store
        .list_docs(crate::storage::store::ALARM_ENGINE_DOC)
        .await?
        .into_iter()
        .find(|d| d.id == "state");
    let key = engine
        .as_ref()
        .map(|d| (d.updated_ms, d.body["seq"].clone()));
    if key != *last {
        let snap = crate::storage::store::load_alarm_snapshot(store).await?;
        let incidents = crate::storage::incident_store::load(store).await?;
        let rows = store
            .list_journal(None, cursor.unwrap_or(0), 10_000)
            .await?;
        let mut f = app.plant.facility.lock().await;
        if app.leads() {
            return Ok(());
        }
        if let Some(s) = snap {
            f.restore(s, app.now_ms());
        }
        let incidents_changed = incidents.is_some();
        if let Some(i) = incidents {
            f.incidents = i;
        }
        drop(f);
        for r in &rows {
            app.publish_live("alarm", &r.record);
        }
        if let Some(r) = rows.last() {
            *cursor = Some(r.id);
        }
        if incidents_changed {
            app.publish_live("incident", &json!({"reloaded": true}));
        }
        *last = key;
    }
    let authority = crate::io::authority_io::load(store).await?;
    {
        let mut a = app.control.authority.lock().await;
        if app.leads() {
            return Ok(());
        }
        if *a != authority {
            *a = authority;
            app.publish_live(crate::io::authority_io::DOC_KIND, &a.view(app.now_ms()));
        }
    }
    let drill = crate::io::drill::load_active(store, app.now_ms()).await?;
    *app.control.drill.write().expect("drill lock") = drill;
    // The maintenance windows the leader schedules and applies (its ticker's; a follower's
    // does not run).
    let windows = crate::io::windows_io::load(store).await?;
    {
        let mut w = app.control.windows.lock().await;
        if app.leads() {
            return Ok(());
        }
        if *w != windows {
            *w = windows;
            app.publish_live(
                "maintenance",
                &json!({"windows": true, "ts_ms": app.now_ms()}),
            );
        }
    }
    Ok(())
}
