//! Multi-site: this server as one replica of several (`[cluster]`), sharing one PostgreSQL
//! database (synchronously replicated between the sites by Patroni) and each fed by the broker
//! of its own site.
//!
//! - **Every replica ingests** the whole stream (events are idempotent on `(agent, seq)` in the
//!   shared store) and serves the console.
//! - **One leader** runs what must happen once: alarm-engine commits, notifications and their
//!   escalations, the server's DC-09 transmitter, drills, device commands and authority-control
//!   changes. It holds the lease row `dcim-leader` in the database ([`crate::leader`] is the
//!   pure decision, the task here its shell); its writes carry the lease epoch as a fence
//!   (`store::Fence`), so a deposed leader's late write fails.
//! - **Followers** keep their alarm engine passive (live values and redundancy only) and
//!   reload the leader's committed alarm, incident, authority and drill state from the store
//!   every second, so their console shows every acknowledged action; they refuse the writes
//!   that need the leader with 503 naming the leader ([`refuse_writes_on_follower`]).
//! - **Takeover**: when the lease is free or expired, a follower takes it with the next epoch,
//!   restores the engines from the store (after the lease is committed, so it reads everything
//!   the old leader committed), then leads; the notifier and the DC-09 planner pick up their
//!   outbox and state from the store (`notify_io`, `dc09`).
//! - **No single detector** ([`views`]): each replica publishes its view of the agents with
//!   its heartbeat (in the database and, when configured, in etcd: the witness), and an agent
//!   counts as lost for the fire authority only when every replica that can be heard agrees.
//!   A peer heard only through the witness is alive behind a cut link; it is reported as a
//!   communication loss with that replica (`comm-lost:replica:{id}`), not as lost agents.
//!
//! # Tasks, hooks and what only the leader does
//!
//! Three essential tasks (`cluster.lease`, `cluster.heartbeat`, `cluster.follower` in `/health`):
//! the lease (renew every `renew_ms`; on `Lead`, restore the alarm engine, incidents, authority,
//! drill state and maintenance-window schedule from the store, evaluate the live samples newer
//! than the last commit, then publish the fence; on `StepDown`, stop leader work first), the
//! heartbeat (this replica's view of the agents to the store and to the witness, etcd through its
//! v3 JSON gateway, `etcd`; the peers' states), and the follower reload (the leader's committed
//! state every second; journal records streamed live). Hooks: `App::leader_fence` (the fence for
//! leader-only writes: `commit_changes`, authority, drills, notifier, DC-09),
//! `Facility::set_passive`, and `refuse_writes_on_follower` (503 with header `X-Dcim-Leader`, for
//! alarm actions, maintenance and its windows, incidents, authority control, device commands).
//! Accounts (passwords, disable/enable, tokens and revocation) are served by any replica: plain
//! store writes, read back on every request. Also leader only: the maintenance-window ticker and
//! the energy flush (a follower meters for its console and stores its hours once it leads). A
//! follower raises no ingest-loss, clock-ahead or disk-full troubles of its own; its `/health`
//! shows them.
//!
//! Why a database row and not an etcd lease: the fence must be checked in the same transaction as
//! the write it guards (`SELECT ... FOR SHARE` on the lease row inside the batch), so a deposed
//! leader's write fails atomically; leading needs a writable primary anyway, and the database
//! already fails over through Patroni and etcd, so the lease adds no failure domain. etcd serves
//! what needs the third site: heartbeats and views, readable while the database link is cut.

pub mod etcd;
pub mod views;

use crate::leader::{self, Change, Core, Role, Seen, Timing};
use crate::store::Fence;
use crate::{App, now_ms};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use views::{AgentSeen, Heard, PeerState, View};

/// Name of the leader lease row.
pub const LEASE: &str = "dcim-leader";

/// `[cluster]` in the server configuration.
///
/// ```toml
/// [cluster]
/// replica = "site-a"                       # unique per replica
/// site = "Site A"                          # shown to operators
/// advertise_url = "https://dcim-a.example:8443"  # this replica's console, named in refusals
/// lease_ttl_ms = 5000                      # the leader's lease; takeover after at most this
/// renew_ms = 1000
/// peer_timeout_ms = 5000                   # a heartbeat older than this is not fresh
///
/// [cluster.witness]                        # etcd of the three sites (the witness's member too)
/// etcd = ["http://10.0.1.5:2379", "http://10.0.2.5:2379", "http://10.0.3.5:2379"]
/// prefix = "/dcim/replicas/"
/// ttl_s = 5
/// ```
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    pub replica: String,
    #[serde(default)]
    pub site: String,
    #[serde(default)]
    pub advertise_url: Option<String>,
    #[serde(default = "d_ttl")]
    pub lease_ttl_ms: u64,
    #[serde(default = "d_renew")]
    pub renew_ms: u64,
    #[serde(default = "d_peer")]
    pub peer_timeout_ms: u64,
    #[serde(default)]
    pub witness: Option<WitnessConfig>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessConfig {
    /// etcd client URLs (every member; the gateway `/v3` API).
    pub etcd: Vec<String>,
    #[serde(default = "d_prefix")]
    pub prefix: String,
    /// Lifetime of a replica's key without renewal.
    #[serde(default = "d_wttl")]
    pub ttl_s: u64,
    /// Time allowed per etcd call and endpoint.
    #[serde(default = "d_wtimeout")]
    pub timeout_ms: u64,
}

fn d_ttl() -> u64 {
    5000
}
fn d_renew() -> u64 {
    1000
}
fn d_peer() -> u64 {
    5000
}
fn d_prefix() -> String {
    "/dcim/replicas/".into()
}
fn d_wttl() -> u64 {
    5
}
fn d_wtimeout() -> u64 {
    1000
}

impl ClusterConfig {
    /// Checks the section; `Err((field, message))`.
    pub fn validate(&self, _config: &crate::config::Config) -> Result<(), (String, String)> {
        if dcim_wire::check_identifier(&self.replica).is_err() {
            return Err((
                "cluster.replica".into(),
                format!("`{}` must be 1-64 of [A-Za-z0-9._-]", self.replica),
            ));
        }
        self.timing()
            .validate()
            .map_err(|m| ("cluster.lease_ttl_ms".to_string(), m))?;
        if self.peer_timeout_ms < 2 * self.renew_ms {
            return Err((
                "cluster.peer_timeout_ms".into(),
                "must be at least two heartbeats (2 x renew_ms)".into(),
            ));
        }
        if let Some(u) = &self.advertise_url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            return Err((
                "cluster.advertise_url".into(),
                "expected http:// or https:// URL".into(),
            ));
        }
        if let Some(w) = &self.witness {
            if w.etcd.is_empty() {
                return Err((
                    "cluster.witness.etcd".into(),
                    "list the etcd members' client URLs".into(),
                ));
            }
            if let Some(u) = w
                .etcd
                .iter()
                .find(|u| !(u.starts_with("http://") || u.starts_with("https://")))
            {
                return Err((
                    "cluster.witness.etcd".into(),
                    format!("`{u}`: expected http:// or https:// URL"),
                ));
            }
            if w.ttl_s < 2 || w.timeout_ms == 0 {
                return Err((
                    "cluster.witness.ttl_s".into(),
                    "ttl_s must be at least 2 and timeout_ms at least 1".into(),
                ));
            }
        }
        Ok(())
    }

    pub fn timing(&self) -> Timing {
        Timing::new(self.lease_ttl_ms as i64, self.renew_ms as i64)
    }
}

/// Who leads, as this replica knows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LeaderInfo {
    pub replica: String,
    pub epoch: i64,
    pub site: String,
    pub url: Option<String>,
}

/// This replica's published status.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    pub replica: String,
    pub site: String,
    /// The fence of the term this replica leads (after the engines were restored), if any.
    pub leading: Option<Fence>,
    pub leader: Option<LeaderInfo>,
    /// When the role last changed (wall clock).
    pub since_ms: i64,
    /// Terms this replica has led since it started.
    pub terms: u64,
}

/// What is known of another replica.
#[derive(Debug, Clone, Serialize)]
pub struct PeerInfo {
    pub replica: String,
    pub site: String,
    pub state: PeerState,
    /// Age of its heartbeat in the database (database clock), if read.
    pub store_age_ms: Option<i64>,
    /// Whether its witness key is present (None: witness not read).
    pub witness: Option<bool>,
    #[serde(skip)]
    pub view: Option<View>,
    pub agents_seen: usize,
}

pub struct Cluster {
    pub config: ClusterConfig,
    core: std::sync::Mutex<Core>,
    status: watch::Sender<Status>,
    own: std::sync::Mutex<View>,
    peers: std::sync::Mutex<BTreeMap<String, PeerInfo>>,
    /// Peers whose communication-loss alarm this leader raised (cleared when heard again).
    alarmed: tokio::sync::Mutex<BTreeSet<String>>,
    witness: Option<etcd::Witness>,
    origin: Instant,
    /// When a follower last reloaded the leader's state (wall clock ms; 0: never).
    reloaded_ms: std::sync::atomic::AtomicI64,
}

/// A follower whose reload is older than this says its state may be out of date.
const RELOAD_STALE_MS: i64 = 3000;

impl Cluster {
    pub fn new(config: ClusterConfig) -> Cluster {
        let witness = config.witness.as_ref().map(|w| {
            etcd::Witness::new(
                w.etcd.clone(),
                w.prefix.clone(),
                w.ttl_s as i64,
                Duration::from_millis(w.timeout_ms),
            )
        });
        let (status, _) = watch::channel(Status {
            replica: config.replica.clone(),
            site: config.site.clone(),
            leading: None,
            leader: None,
            since_ms: now_ms(),
            terms: 0,
        });
        Cluster {
            core: std::sync::Mutex::new(Core::new(config.replica.clone(), config.timing())),
            status,
            own: Default::default(),
            peers: Default::default(),
            alarmed: Default::default(),
            witness,
            origin: Instant::now(),
            reloaded_ms: std::sync::atomic::AtomicI64::new(0),
            config,
        }
    }

    /// On a follower that could not reload the leader's committed state lately (the database
    /// is unreachable from here): why what it shows may be out of date. `None` on the leader.
    pub fn stale(&self, now: i64) -> Option<String> {
        if self.fence().is_some() {
            return None;
        }
        let at = self.reloaded_ms.load(std::sync::atomic::Ordering::Relaxed);
        if at > 0 && now - at <= RELOAD_STALE_MS {
            return None;
        }
        Some(if at == 0 {
            "follower: the leader's alarm state has not been loaded from the database yet; alarms shown may be out of date".into()
        } else {
            format!(
                "follower: the leader's alarm state could not be reloaded for {} s (database unreachable from this replica); alarms shown may be out of date",
                (now - at) / 1000
            )
        })
    }

    /// Monotonic milliseconds since start (the lease core's clock).
    fn mono(&self) -> i64 {
        self.origin.elapsed().as_millis() as i64
    }

    /// The fence of the term this replica leads, when it leads *now* (the local deadline is
    /// checked at every call, not only when the lease task wakes up).
    pub fn fence(&self) -> Option<Fence> {
        let leading = self.core.lock().expect("lease core").leading(self.mono());
        let st = self.status.borrow();
        match (&st.leading, leading) {
            (Some(f), Some(e)) if f.epoch == e => Some(f.clone()),
            _ => None,
        }
    }

    pub fn subscribe(&self) -> watch::Receiver<Status> {
        self.status.subscribe()
    }

    pub fn status(&self) -> Status {
        self.status.borrow().clone()
    }

    /// An agent's retained state arrived through this replica's broker.
    pub fn record_agent(&self, agent: &str, online: bool, now: i64) {
        let mut own = self.own.lock().expect("own view");
        match own.get_mut(agent) {
            Some(s) if s.online == online => {}
            Some(s) => {
                *s = AgentSeen {
                    online,
                    since_ms: now,
                }
            }
            None => {
                own.insert(
                    agent.to_owned(),
                    AgentSeen {
                        online,
                        since_ms: now,
                    },
                );
            }
        }
    }

    /// The verdict on every agent (see [`views::agents`]).
    pub fn verdicts(&self) -> BTreeMap<String, views::Verdict> {
        let own = self.own.lock().expect("own view").clone();
        let peers = self.peers.lock().expect("peers").clone();
        let list: Vec<views::Peer<'_>> = peers
            .values()
            .map(|p| views::Peer {
                id: &p.replica,
                state: p.state,
                view: p.view.as_ref(),
            })
            .collect();
        views::agents(&self.config.replica, &own, &list)
    }

    fn set_status(&self, f: impl FnOnce(&mut Status)) {
        self.status.send_modify(|s| {
            let before = (s.leading.clone(), s.leader.clone());
            f(s);
            if (s.leading.clone(), s.leader.clone()) != before {
                s.since_ms = now_ms();
            }
        });
    }
}

// ---------------------------------------------------------------------------------------------
// Hooks for the rest of the server
// ---------------------------------------------------------------------------------------------

/// This replica is a follower: the write is left to the leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotLeader;

impl App {
    /// The fence for a leader-only write: `Ok(None)` on a single server, `Ok(Some(fence))` on
    /// the leader, `Err(NotLeader)` on a follower (which must not write).
    pub fn leader_fence(&self) -> Result<Option<Fence>, NotLeader> {
        match &self.cluster {
            None => Ok(None),
            Some(c) => c.fence().map(Some).ok_or(NotLeader),
        }
    }

    /// Whether this server runs the leader's work (always, without `[cluster]`).
    pub fn leads(&self) -> bool {
        self.leader_fence().is_ok()
    }
}

/// An agent's state message arrived: record this replica's view and return the record to
/// store, with `online` as all replicas that can be heard see it (so two replicas that see the
/// agent differently do not flip the shared row back and forth). Unchanged without `[cluster]`.
pub fn agent_state(app: &App, mut rec: crate::store::AgentRecord) -> crate::store::AgentRecord {
    if let Some(c) = &app.cluster {
        c.record_agent(&rec.agent, rec.online, rec.last_seen_ms);
        if let Some(v) = c.verdicts().get(&rec.agent) {
            rec.online = !v.online_at.is_empty();
        }
    }
    rec
}

/// An agent reported which of its brokers it detached (lagging past their limit: a site
/// gone): each detached uplink is a communication loss of the device `{agent}/uplink/{broker}`
/// (the `comm-lost` rule), cleared when the agent no longer lists it. Leader only (a
/// follower's engine is passive). Works without `[cluster]` too.
pub async fn uplink_alarms(app: &App, agent: &str, detached: &[String]) {
    let prefix = format!("{agent}/uplink/");
    let now = now_ms();
    let mut f = app.facility.lock().await;
    if f.is_passive() {
        return;
    }
    let raised: Vec<String> = f
        .engine
        .alarms()
        .filter(|a| a.rule == "comm-lost" && a.subject.starts_with(&prefix) && a.raw)
        .map(|a| a.subject.clone())
        .collect();
    let mut changes = crate::facility::Changes::default();
    for b in detached {
        let device = format!("{prefix}{b}");
        if !raised.contains(&device) {
            let c = f.on_event("device.comm_lost", &device, now);
            changes.records.extend(c.records);
            changes.incidents.extend(c.incidents);
        }
    }
    for device in raised {
        if !detached.iter().any(|b| device.ends_with(&format!("/{b}"))) {
            let c = f.on_event("device.comm_restored", &device, now);
            changes.records.extend(c.records);
            changes.incidents.extend(c.incidents);
        }
    }
    if let Err(e) = app.commit_changes(&f, &changes, None).await {
        tracing::error!("committing the uplink alarms: {e:#}");
    }
}

/// The agents as the DC-09 planner must see them in a cluster: offline only when lost by
/// every replica that can be heard (`None` without `[cluster]`).
pub fn agent_views(app: &App) -> Option<Vec<crate::dc09::AgentView>> {
    let c = app.cluster.as_ref()?;
    Some(
        c.verdicts()
            .into_iter()
            .map(|(id, v)| crate::dc09::AgentView {
                id,
                online: !v.lost,
                since_ms: v.since_ms,
            })
            .collect(),
    )
}

/// Whether a write route needs the leader (it changes the alarm engine, incidents, authority
/// control, the maintenance windows the leader's ticker applies, or sends to devices).
///
/// Any replica serves the rest: users, passwords, disabling and enabling accounts, API tokens
/// and their revocation, sessions and sign-in lockouts are plain store writes with no state
/// kept in memory (every request reads the account, session and token from the shared store,
/// so a change made on one replica holds on the other at its next request); lockouts are per
/// replica by design (each replica limits the sign-ins it serves).
pub fn leader_only(method: &Method, path: &str) -> bool {
    *method == Method::POST
        && (path.starts_with("/api/alarms/")
            || path == "/api/maintenance"
            || path.starts_with("/api/maintenance/")
            || path.starts_with("/api/incidents")
            || path.starts_with("/api/authority/")
            || (path.starts_with("/api/devices/") && path.ends_with("/commands")))
}

/// The refusal of a follower: 503 with the leader's replica, site and console address.
pub fn not_leader(c: &Cluster) -> Response {
    let st = c.status();
    let (msg, leader) = match &st.leader {
        Some(l) => (
            format!(
                "replica `{}` ({}) is not the leader: replica `{}` ({}) is{}; make this change there",
                st.replica,
                st.site,
                l.replica,
                l.site,
                l.url
                    .as_deref()
                    .map(|u| format!(" at {u}"))
                    .unwrap_or_default()
            ),
            json!(l),
        ),
        None => (
            format!(
                "replica `{}` ({}) is not the leader and no leader is known right now (a takeover is in progress or the database cannot be reached); retry shortly",
                st.replica, st.site
            ),
            Value::Null,
        ),
    };
    let mut r = (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"error": msg, "leader": leader})),
    )
        .into_response();
    let h = r.headers_mut();
    h.insert("retry-after", HeaderValue::from_static("2"));
    if let Some(u) = st.leader.as_ref().and_then(|l| l.url.as_deref())
        && let Ok(v) = HeaderValue::from_str(u)
    {
        h.insert("x-dcim-leader", v);
    }
    r
}

/// Middleware: on a follower, a leader-only write from an authenticated client is refused
/// with 503 naming the leader (an unauthenticated one goes on to get its 401).
pub async fn refuse_writes_on_follower(
    State(app): State<Arc<App>>,
    req: Request,
    next: Next,
) -> Response {
    if let Some(c) = &app.cluster
        && leader_only(req.method(), req.uri().path())
        && c.fence().is_none()
        && crate::api::authorize(&app, req.headers(), &Method::GET, crate::auth::Access::Read)
            .await
            .is_ok()
    {
        return not_leader(c);
    }
    next.run(req).await
}

pub fn routes() -> Router<Arc<App>> {
    Router::new().route("/api/cluster", axum::routing::get(cluster_status))
}

async fn cluster_status(
    State(app): State<Arc<App>>,
    headers: axum::http::HeaderMap,
) -> Result<Response, crate::api::ApiError> {
    crate::api::authorize(&app, &headers, &Method::GET, crate::auth::Access::Read).await?;
    let Some(c) = &app.cluster else {
        return Ok(Json(json!({"enabled": false})).into_response());
    };
    let st = c.status();
    let peers: Vec<PeerInfo> = c.peers.lock().expect("peers").values().cloned().collect();
    Ok(Json(json!({
        "enabled": true,
        "replica": st.replica,
        "site": st.site,
        "role": if c.fence().is_some() { "leader" } else { "follower" },
        "epoch": st.leading.as_ref().map(|f| f.epoch),
        "leader": st.leader,
        "since_ms": st.since_ms,
        "terms": st.terms,
        "stale": c.stale(now_ms()),
        "peers": peers,
        "agents": c.verdicts(),
        "witness": c.witness.is_some(),
    }))
    .into_response())
}

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
            _ = crate::stopped(&mut stop) => break,
        };
        let now = c.mono();
        let changes = {
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
        };
        apply(&app, changes).await;
        publish_leader(c);
        let next = Duration::from_millis(timing.renew_ms as u64)
            .saturating_sub(Duration::from_millis((c.mono() - sent).max(0) as u64));
        let deadline = c.core.lock().expect("lease core").deadline();
        let wait = match deadline {
            Some(d) => next.min(Duration::from_millis((d - c.mono()).max(0) as u64)),
            None => next,
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = crate::stopped(&mut stop) => break,
        }
    }
    // Graceful stop: hand over at once instead of letting the lease expire.
    let changes = c
        .core
        .lock()
        .expect("lease core")
        .step_down("shutting down");
    let was_leader = !changes.is_empty();
    apply(&app, changes).await;
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
        .list_docs(crate::store::ALARM_ENGINE_DOC)
        .await?
        .into_iter()
        .find(|d| d.id == "state")
        .map_or(0, |d| d.updated_ms);
    let snap = crate::store::load_alarm_snapshot(store).await?;
    // One document per incident plus their meta document (`incident_store`).
    let incidents = crate::incident_store::load(store).await?;
    let authority = crate::api_authority::load(store).await?;
    let drill = crate::drill::load_active(store).await?;
    // The maintenance windows the previous leader scheduled (its ticker applied them; this
    // replica's ticker carries on from here).
    let windows = crate::api_windows::load(store).await?;
    // Lock order: authority, maintenance windows, then facility.
    let mut a = app.authority.lock().await;
    let mut w = app.windows.lock().await;
    let mut f = app.facility.lock().await;
    if let Some(s) = snap {
        f.restore(s, now_ms());
    }
    if let Some(i) = incidents {
        f.incidents = i;
    }
    f.set_passive(false);
    *w = windows;
    drop(w);
    *a = authority;
    *app.drill.write().expect("drill lock") = drill;
    app.unjournaled.lock().expect("unjournaled lock").clear();
    app.alarms_resync
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
    let changes = f.replay_live_since(committed_ms, now_ms());
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
    let mut f = app.facility.lock().await;
    f.set_passive(true);
    app.unjournaled.lock().expect("unjournaled lock").clear();
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
            _ = crate::stopped(&mut stop) => break,
        }
        let own = c.own.lock().expect("own view").clone();
        let body = json!({
            "replica": c.config.replica,
            "site": c.config.site,
            "url": c.config.advertise_url,
            "leading": c.fence().map(|f| f.epoch),
            "ts_ms": now_ms(),
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
    stored: Option<(Vec<crate::store::ReplicaRecord>, i64)>,
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
    let now = now_ms();
    for (id, state) in states {
        let lost = state != PeerState::Fresh;
        if lost == alarmed.contains(&id) {
            continue;
        }
        let device = format!("replica:{id}");
        let mut f = app.facility.lock().await;
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
            _ = crate::stopped(&mut stop) => break,
        }
        if app.leads() {
            last = None;
            cursor = None;
            continue;
        }
        match follow(&app, &mut last, &mut cursor).await {
            Ok(()) => cluster(&app)
                .reloaded_ms
                .store(now_ms(), std::sync::atomic::Ordering::Relaxed),
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
        .list_docs(crate::store::ALARM_ENGINE_DOC)
        .await?
        .into_iter()
        .find(|d| d.id == "state");
    let key = engine
        .as_ref()
        .map(|d| (d.updated_ms, d.body["seq"].clone()));
    if key != *last {
        let snap = crate::store::load_alarm_snapshot(store).await?;
        let incidents = crate::incident_store::load(store).await?;
        let rows = store
            .list_journal(None, cursor.unwrap_or(0), 10_000)
            .await?;
        let mut f = app.facility.lock().await;
        if app.leads() {
            return Ok(());
        }
        if let Some(s) = snap {
            f.restore(s, now_ms());
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
    let authority = crate::api_authority::load(store).await?;
    {
        let mut a = app.authority.lock().await;
        if app.leads() {
            return Ok(());
        }
        if *a != authority {
            *a = authority;
            app.publish_live(crate::api_authority::DOC_KIND, &a.view(now_ms()));
        }
    }
    let drill = crate::drill::load_active(store).await?;
    *app.drill.write().expect("drill lock") = drill;
    // The maintenance windows the leader schedules and applies (its ticker's; a follower's
    // does not run).
    let windows = crate::api_windows::load(store).await?;
    {
        let mut w = app.windows.lock().await;
        if app.leads() {
            return Ok(());
        }
        if *w != windows {
            *w = windows;
            app.publish_live("maintenance", &json!({"windows": true, "ts_ms": now_ms()}));
        }
    }
    Ok(())
}

/// For `/health`: why this replica's view may be out of date (a follower that cannot reload
/// the leader's state), if so. `None` without `[cluster]`.
pub fn health(app: &App) -> Option<String> {
    app.cluster.as_ref()?.stale(now_ms())
}

/// For tests: the lease core's view of the role.
pub fn role(app: &App) -> Option<leader::Role> {
    app.cluster
        .as_ref()
        .map(|c| c.core.lock().expect("lease core").role().clone())
}
