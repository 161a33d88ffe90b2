//! No single detector (pure): whether an agent is lost, from what every replica sees.
//!
//! Each replica ingests from the broker of its own site, so each has its own view of which
//! agents are connected. A replica alone cannot tell "the agent is gone" from "the path between
//! the agent and my site is gone", and during a cut between the sites each replica sees the
//! other site's agents disappear. So an agent-loss trouble goes to the fire authority only when
//! every replica that can still be heard agrees the agent is gone ([`agents`]); a replica that
//! is known to be gone does not count. A replica is heard through the shared database
//! (its heartbeat row) or, when the database link is cut, through the witness (etcd in the
//! third site): [`peer_state`] says which. A replica that can be heard by neither channel
//! while the witness itself cannot be reached is *unknown*: then nothing it might see is
//! assumed, and no agent is declared lost on this replica's word alone.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One replica's view of one agent (the agent's retained state as its broker delivered it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentSeen {
    pub online: bool,
    /// Since when it is in that state (the replica's clock).
    pub since_ms: i64,
}

/// Agent id -> what one replica sees.
pub type View = BTreeMap<String, AgentSeen>;

/// How another replica can be heard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerState {
    /// Its heartbeat in the shared database is fresh.
    Fresh,
    /// Not through the database, but its heartbeat reaches the witness: alive, and the link
    /// between it and the database (the other site) is cut.
    WitnessOnly,
    /// Heard by neither, and the witness (reachable) has no fresh heartbeat of it: gone.
    Gone,
    /// Not heard through the database and the witness cannot be reached: not known.
    Unknown,
}

/// What is known of a peer replica's heartbeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heard {
    /// Age of its last heartbeat in the database (database clock), if any.
    pub store_age_ms: Option<i64>,
    /// Whether its witness key is present (the witness expires it when the replica stops
    /// renewing it); `None` when the witness was not read successfully just now.
    pub witness: Option<bool>,
    /// Whether a witness is configured at all.
    pub witness_configured: bool,
}

/// A peer's state from its heartbeats. Without a witness, a replica not heard through the
/// database counts as gone (so a cut between the sites looks like the loss of the other site:
/// deployments need the witness for the link-cut guarantee).
pub fn peer_state(h: Heard, timeout_ms: i64) -> PeerState {
    if h.store_age_ms.is_some_and(|a| a <= timeout_ms) {
        return PeerState::Fresh;
    }
    if !h.witness_configured {
        return PeerState::Gone;
    }
    match h.witness {
        Some(true) => PeerState::WitnessOnly,
        Some(false) => PeerState::Gone,
        None => PeerState::Unknown,
    }
}

/// A peer replica as [`agents`] needs it.
#[derive(Debug, Clone)]
pub struct Peer<'a> {
    pub id: &'a str,
    pub state: PeerState,
    /// Its last view (from the database or the witness, whichever is newer).
    pub view: Option<&'a View>,
}

/// The verdict on one agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// Every replica that can be heard sees it offline (or the others are gone).
    pub lost: bool,
    /// Since when it is lost: the latest of the replicas' offline times (when the last one of
    /// them lost it). When not lost: since when this replica sees it in its state.
    pub since_ms: i64,
    /// Replicas that see it online.
    pub online_at: Vec<String>,
    /// Why it is not declared lost although this replica does not see it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held: Option<String>,
}

/// The verdict on every agent any replica has seen. `me` is this replica, `own` its view.
pub fn agents(me: &str, own: &View, peers: &[Peer<'_>]) -> BTreeMap<String, Verdict> {
    let counting: Vec<(&str, &View)> = std::iter::once((me, own))
        .chain(
            peers
                .iter()
                .filter(|p| matches!(p.state, PeerState::Fresh | PeerState::WitnessOnly))
                .filter_map(|p| p.view.map(|v| (p.id, v))),
        )
        .collect();
    let unknown: Vec<&str> = peers
        .iter()
        .filter(|p| {
            p.state == PeerState::Unknown
                || (matches!(p.state, PeerState::Fresh | PeerState::WitnessOnly)
                    && p.view.is_none())
        })
        .map(|p| p.id)
        .collect();
    let mut ids: Vec<&String> = counting.iter().flat_map(|(_, v)| v.keys()).collect();
    ids.sort();
    ids.dedup();
    let mut out = BTreeMap::new();
    for id in ids {
        let seen: Vec<(&str, AgentSeen)> = counting
            .iter()
            .filter_map(|(who, v)| v.get(id).map(|s| (*who, *s)))
            .collect();
        let online_at: Vec<String> = seen
            .iter()
            .filter(|(_, s)| s.online)
            .map(|(w, _)| (*w).to_owned())
            .collect();
        let own_since = own.get(id).map(|s| s.since_ms);
        let verdict = if !online_at.is_empty() {
            let held = (own.get(id).is_some_and(|s| !s.online)).then(|| {
                format!(
                    "not seen here, but seen by {} (a path to this site is cut, not the agent)",
                    online_at.join(", ")
                )
            });
            Verdict {
                lost: false,
                since_ms: own_since.unwrap_or(0),
                online_at,
                held,
            }
        } else if !unknown.is_empty() {
            Verdict {
                lost: false,
                since_ms: own_since.unwrap_or(0),
                online_at,
                held: Some(format!(
                    "not seen here; what {} sees is not known (no heartbeat through the database, witness unreachable)",
                    unknown.join(", ")
                )),
            }
        } else {
            Verdict {
                lost: true,
                since_ms: seen.iter().map(|(_, s)| s.since_ms).max().unwrap_or(0),
                online_at,
                held: None,
            }
        };
        out.insert(id.clone(), verdict);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(entries: &[(&str, bool, i64)]) -> View {
        entries
            .iter()
            .map(|(a, on, t)| {
                (
                    a.to_string(),
                    AgentSeen {
                        online: *on,
                        since_ms: *t,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn a_cut_between_the_sites_is_not_a_lost_agent() {
        // Hazard: during a cut, replica A sees site B's agent drop from its broker and would
        // report it to the fire authority as lost, although replica B (heard through the
        // witness) still receives it.
        let own = view(&[("edge-b", false, 100), ("edge-a", true, 0)]);
        let b = view(&[("edge-b", true, 0), ("edge-a", false, 100)]);
        let peers = [Peer {
            id: "b",
            state: PeerState::WitnessOnly,
            view: Some(&b),
        }];
        let v = agents("a", &own, &peers);
        assert!(!v["edge-b"].lost);
        assert_eq!(v["edge-b"].online_at, ["b"]);
        assert!(v["edge-b"].held.as_deref().unwrap().contains("cut"));
        assert!(
            !v["edge-a"].lost,
            "B's view of A's agent does not count against A's"
        );
    }

    #[test]
    fn an_agent_every_live_replica_lost_is_lost_from_the_latest_loss() {
        let own = view(&[("edge-1", false, 100)]);
        let b = view(&[("edge-1", false, 250)]);
        let peers = [Peer {
            id: "b",
            state: PeerState::Fresh,
            view: Some(&b),
        }];
        let v = agents("a", &own, &peers);
        assert!(v["edge-1"].lost);
        assert_eq!(
            v["edge-1"].since_ms, 250,
            "counted from when the last replica lost it"
        );
    }

    #[test]
    fn a_gone_peer_does_not_hold_back_a_loss() {
        // Hazard: site B burned with its replica; the survivor must still report the agents
        // it lost, not wait for a vote that never comes.
        let own = view(&[("edge-1", false, 100)]);
        let b = view(&[("edge-1", true, 0)]);
        let peers = [Peer {
            id: "b",
            state: PeerState::Gone,
            view: Some(&b),
        }];
        let v = agents("a", &own, &peers);
        assert!(
            v["edge-1"].lost,
            "the dead replica's stale 'online' is not evidence"
        );
    }

    #[test]
    fn an_unknown_peer_holds_the_verdict_and_says_why() {
        let own = view(&[("edge-1", false, 100)]);
        let peers = [Peer {
            id: "b",
            state: PeerState::Unknown,
            view: None,
        }];
        let v = agents("a", &own, &peers);
        assert!(!v["edge-1"].lost);
        assert!(v["edge-1"].held.as_deref().unwrap().contains("not known"));
    }

    #[test]
    fn an_agent_only_a_peer_sees_is_listed_and_only_lost_when_it_loses_it() {
        let own = View::new();
        let b = view(&[("edge-x", true, 0)]);
        let peers = [Peer {
            id: "b",
            state: PeerState::Fresh,
            view: Some(&b),
        }];
        assert!(!agents("a", &own, &peers)["edge-x"].lost);
        let b = view(&[("edge-x", false, 40)]);
        let peers = [Peer {
            id: "b",
            state: PeerState::Fresh,
            view: Some(&b),
        }];
        assert!(agents("a", &own, &peers)["edge-x"].lost);
    }

    #[test]
    fn peer_states_from_heartbeats() {
        let h = |store, witness, conf| Heard {
            store_age_ms: store,
            witness,
            witness_configured: conf,
        };
        assert_eq!(peer_state(h(Some(500), None, true), 5000), PeerState::Fresh);
        assert_eq!(
            peer_state(h(Some(9000), Some(true), true), 5000),
            PeerState::WitnessOnly
        );
        assert_eq!(
            peer_state(h(None, Some(false), true), 5000),
            PeerState::Gone
        );
        assert_eq!(
            peer_state(h(Some(9000), None, true), 5000),
            PeerState::Unknown
        );
        assert_eq!(
            peer_state(h(Some(9000), None, false), 5000),
            PeerState::Gone,
            "without a witness a silent peer counts as gone"
        );
    }
}
