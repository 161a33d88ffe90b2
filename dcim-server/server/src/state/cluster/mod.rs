//! Multi-site: this server as one replica of several (`[cluster]`), sharing one PostgreSQL
//! database (synchronously replicated between the sites by Patroni) and each fed by the broker
//! of its own site.
//!
//! - **Every replica ingests** the whole stream (events are idempotent on `(agent, seq)` in the
//!   shared store) and serves the console.
//! - **One leader** runs what must happen once: alarm-engine commits, notifications and their
//!   escalations, the server's DC-09 transmitter, drills, device commands and authority-control
//!   changes. It holds the lease row `dcim-leader` in the database ([`crate::base::leader`] is the
//!   pure decision, the task here its shell); its writes carry the lease epoch as a fence
//!   (`store::Fence`), so a deposed leader's late write fails.
//! - **Followers** keep their alarm engine passive (live values and redundancy only) and
//!   reload the leader's committed alarm, incident, authority and drill state from the store
//!   every second, so their console shows every acknowledged action; they refuse the writes
//!   that need the leader with 503 naming the leader (`api_cluster::refuse_writes_on_follower`).
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
//! This module holds the replica's view and the hooks; the tasks are in `cluster_tasks` (above
//! the engines they restore) and the HTTP side in `api_cluster`. Three essential tasks (`cluster.lease`, `cluster.heartbeat`, `cluster.follower` in `/health`):
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

use crate::base::leader::Core;
use crate::storage::store::Fence;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use views::{AgentSeen, PeerState, View};

/// Name of the leader lease row.
pub const LEASE: &str = "dcim-leader";
pub use crate::config::cluster::{ClusterConfig, WitnessConfig};

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
    pub(crate) core: std::sync::Mutex<Core>,
    pub(crate) status: watch::Sender<Status>,
    pub(crate) own: std::sync::Mutex<View>,
    pub(crate) peers: std::sync::Mutex<BTreeMap<String, PeerInfo>>,
    /// Peers whose communication-loss alarm this leader raised (cleared when heard again).
    pub(crate) alarmed: tokio::sync::Mutex<BTreeSet<String>>,
    pub(crate) witness: Option<etcd::Witness>,
    pub(crate) origin: Instant,
    /// When a follower last reloaded the leader's state (wall clock ms; 0: never).
    pub(crate) reloaded_ms: std::sync::atomic::AtomicI64,
    /// The server's clock (`Status::since_ms`).
    clock: dcim_clock::Clock,
}

/// A follower whose reload is older than this says its state may be out of date.
const RELOAD_STALE_MS: i64 = 3000;

impl Cluster {
    pub fn new(config: ClusterConfig, clock: dcim_clock::Clock) -> Cluster {
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
            since_ms: clock.now_ms(),
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
            clock,
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
    pub(crate) fn mono(&self) -> i64 {
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

    pub(crate) fn set_status(&self, f: impl FnOnce(&mut Status)) {
        self.status.send_modify(|s| {
            let before = (s.leading.clone(), s.leader.clone());
            f(s);
            if (s.leading.clone(), s.leader.clone()) != before {
                s.since_ms = self.clock.now_ms();
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
