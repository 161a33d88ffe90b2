//! HTTP side of the cluster: `/api/cluster`, and the middleware that refuses leader-only
//! writes on a follower (503 with `X-Dcim-Leader` naming the leader's console).

use crate::app::App;
use crate::state::cluster::views::Verdict;
use crate::state::cluster::{Cluster, LeaderInfo, PeerInfo};
use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

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

/// The body of a follower's refusal: why, and the leader (`null` while none is known).
#[derive(Serialize)]
pub struct NotLeader {
    pub error: String,
    pub leader: Option<LeaderInfo>,
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
            Some(l.clone()),
        ),
        None => (
            format!(
                "replica `{}` ({}) is not the leader and no leader is known right now (a takeover is in progress or the database cannot be reached); retry shortly",
                st.replica, st.site
            ),
            None,
        ),
    };
    let mut r = (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(NotLeader { error: msg, leader }),
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
        && crate::http::api_base::authorize(
            &app,
            req.headers(),
            &Method::GET,
            crate::state::auth::Access::Read,
        )
        .await
        .is_ok()
    {
        return not_leader(c);
    }
    next.run(req).await
}

/// `GET /api/cluster`: `{enabled: false}` alone on a single server, else this replica's view.
#[derive(Serialize)]
pub struct ClusterState {
    pub enabled: bool,
    #[serde(flatten)]
    pub replica: Option<ReplicaState>,
}

/// What a replica knows of the cluster.
#[derive(Serialize)]
pub struct ReplicaState {
    pub replica: String,
    pub site: String,
    /// `leader` or `follower`.
    pub role: &'static str,
    /// The epoch this replica leads at (`null` on a follower).
    pub epoch: Option<i64>,
    pub leader: Option<LeaderInfo>,
    pub since_ms: i64,
    pub terms: u64,
    /// Why this replica's view may be out of date, if it may.
    pub stale: Option<String>,
    pub peers: Vec<PeerInfo>,
    pub agents: BTreeMap<String, Verdict>,
    pub witness: bool,
}

pub(crate) async fn cluster_status(
    State(app): State<Arc<App>>,
) -> Result<Json<ClusterState>, crate::http::api_base::ApiError> {
    let Some(c) = &app.cluster else {
        return Ok(Json(ClusterState {
            enabled: false,
            replica: None,
        }));
    };
    let st = c.status();
    let peers: Vec<PeerInfo> = c.peers.lock().expect("peers").values().cloned().collect();
    Ok(Json(ClusterState {
        enabled: true,
        replica: Some(ReplicaState {
            replica: st.replica,
            site: st.site,
            role: if c.fence().is_some() {
                "leader"
            } else {
                "follower"
            },
            epoch: st.leading.as_ref().map(|f| f.epoch),
            leader: st.leader,
            since_ms: st.since_ms,
            terms: st.terms,
            stale: c.stale(app.now_ms()),
            peers,
            agents: c.verdicts(),
            witness: c.witness.is_some(),
        }),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_single_server_answers_enabled_false_and_nothing_else() {
        // Hazard: a single server answering `role: null`, `peers: []`... would read as a
        // cluster without a leader or peers; it must answer only `{enabled: false}`.
        let body = ClusterState {
            enabled: false,
            replica: None,
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            json!({"enabled": false})
        );
    }

    #[test]
    fn a_follower_without_a_leader_says_so_with_null() {
        // Hazard: `leader` absent instead of null: a console cannot tell "no leader known" from
        // an answer of an older server.
        let body = NotLeader {
            error: "no leader".into(),
            leader: None,
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            json!({"error": "no leader", "leader": null})
        );
    }
}
