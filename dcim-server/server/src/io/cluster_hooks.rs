//! The hooks the rest of the server asks of the cluster, given the running server: the fence
//! of a leader-only write (`App::leader_fence`), an agent's state as all replicas see it, the
//! uplink alarms, the agents as the DC-09 planner must see them, and `/health`'s view. Without
//! `[cluster]` they answer for a single server.

use crate::app::App;
use crate::base::leader;
use crate::state::cluster::*;
use crate::storage::store::Fence;

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
pub fn agent_state(
    app: &App,
    mut rec: crate::storage::store::AgentRecord,
) -> crate::storage::store::AgentRecord {
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
    let now = app.now_ms();
    let mut f = app.plant.facility.lock().await;
    if f.is_passive() {
        return;
    }
    let raised: Vec<String> = f
        .engine
        .alarms()
        .filter(|a| a.rule == "comm-lost" && a.subject.starts_with(&prefix) && a.raw)
        .map(|a| a.subject.clone())
        .collect();
    let mut changes = crate::engine::facility::Changes::default();
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
pub fn agent_views(app: &App) -> Option<Vec<crate::engine::dc09_plan::AgentView>> {
    let c = app.cluster.as_ref()?;
    Some(
        c.verdicts()
            .into_iter()
            .map(|(id, v)| crate::engine::dc09_plan::AgentView {
                id,
                online: !v.lost,
                since_ms: v.since_ms,
            })
            .collect(),
    )
}

/// For `/health`: why this replica's view may be out of date (a follower that cannot reload
/// the leader's state), if so. `None` without `[cluster]`.
pub fn health(app: &App) -> Option<String> {
    app.cluster.as_ref()?.stale(app.now_ms())
}

/// For tests: the lease core's view of the role.
pub fn role(app: &App) -> Option<leader::Role> {
    app.cluster
        .as_ref()
        .map(|c| c.core.lock().expect("lease core").role().clone())
}
