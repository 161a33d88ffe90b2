//! Who may receive each live-stream event (`/api/stream`): the same permission as the event's
//! REST twin, so the stream never shows a role what the API refuses it (a viewer gets 403 on
//! `/api/audit` and so no `audit` events: failed sign-in rows often hold a mistyped password
//! as the user name). An event name not in [`EVENTS`] is sent to admins only.

use crate::config::Role;
use crate::state::auth::{self, Access};

/// Every live event, the REST route that serves the same information, and the access it
/// needs there.
pub const EVENTS: &[(&str, &str, Access)] = &[
    ("points", "GET /api/points", Access::Read),
    ("event", "GET /api/events", Access::Read),
    ("agent", "GET /api/agents", Access::Read),
    ("agent_epoch", "GET /api/agents", Access::Read),
    ("alarm", "GET /api/alarms", Access::Read),
    ("incident", "GET /api/incidents", Access::Read),
    ("redundancy", "GET /api/site/redundancy", Access::Read),
    ("authority", "GET /api/authority", Access::Read),
    ("maintenance", "GET /api/maintenance/windows", Access::Read),
    ("audit", "GET /api/audit", Access::Admin),
];

/// The access an event needs: its REST twin's, Admin for an unknown one.
pub fn access_of(event: &str) -> Access {
    EVENTS
        .iter()
        .find(|(e, _, _)| *e == event)
        .map_or(Access::Admin, |(_, _, a)| *a)
}

/// Whether `role` receives `event` on the live stream. The stream's own `heartbeat` and
/// `lagged` events go to everyone.
pub fn may_receive(role: Role, event: &str) -> bool {
    matches!(event, "heartbeat" | "lagged") || auth::allows(role, access_of(event))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hazard: a viewer refused on /api/audit received every audit row on the stream,
    /// failed sign-in names included.
    #[test]
    fn every_event_has_its_rest_twins_permission() {
        for role in [
            Role::Viewer,
            Role::Operator,
            Role::Admin,
            Role::FireAuthority,
        ] {
            for (event, route, access) in EVENTS {
                let path = route.trim_start_matches("GET ");
                let doc = crate::http::api::ROUTES
                    .iter()
                    .find(|r| r.method == "GET" && r.path == path)
                    .unwrap_or_else(|| panic!("{event}: no route {route}"));
                assert_eq!(doc.access, Some(*access), "{event} vs {route}");
                assert_eq!(
                    may_receive(role, event),
                    auth::allows(role, *access),
                    "{role:?} {event}"
                );
            }
            assert!(may_receive(role, "heartbeat"));
        }
        assert!(!may_receive(Role::Viewer, "audit"));
        assert!(!may_receive(Role::FireAuthority, "audit"));
        assert!(may_receive(Role::Admin, "audit"));
        assert!(!may_receive(Role::Operator, "something-new"));
    }
}
