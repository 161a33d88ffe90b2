//! Topic access rules of an agent connected through the gate.

/// Whether `agent` of `site` may publish on `topic`: only its own
/// `dcim/v1/{site}/{agent}/{telemetry|events|state|cmd_result}`.
pub fn may_publish(site: &str, agent: &str, topic: &str) -> bool {
    match dcim_wire::Topic::parse(topic) {
        Ok(t) => {
            t.site == site
                && t.agent == agent
                && !matches!(t.channel, dcim_wire::Channel::Command { .. })
        }
        Err(_) => false,
    }
}

/// Whether `agent` of `site` may subscribe to `filter`: only its own command topics
/// (`dcim/v1/{site}/{agent}/cmd/{device}`, `.../cmd/+` or `.../cmd/#`).
pub fn may_subscribe(site: &str, agent: &str, filter: &str) -> bool {
    let prefix = format!("{}/{site}/{agent}/cmd/", dcim_wire::ROOT);
    filter
        .strip_prefix(&prefix)
        .is_some_and(|rest| !rest.is_empty() && !rest.contains('/') || rest == "#")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hazard: an agent publishing as another agent, or reading every agent's commands.
    #[test]
    fn topic_rules() {
        assert!(may_publish("s", "a1", "dcim/v1/s/a1/telemetry"));
        assert!(may_publish("s", "a1", "dcim/v1/s/a1/state"));
        assert!(!may_publish("s", "a1", "dcim/v1/s/a2/telemetry"));
        assert!(!may_publish("s", "a1", "dcim/v1/x/a1/telemetry"));
        assert!(!may_publish("s", "a1", "dcim/v1/s/a1/cmd/rack-1"));
        assert!(!may_publish("s", "a1", "other/topic"));
        assert!(may_subscribe("s", "a1", "dcim/v1/s/a1/cmd/+"));
        assert!(may_subscribe("s", "a1", "dcim/v1/s/a1/cmd/#"));
        assert!(may_subscribe("s", "a1", "dcim/v1/s/a1/cmd/rack-1"));
        assert!(!may_subscribe("s", "a1", "dcim/v1/s/a2/cmd/+"));
        assert!(!may_subscribe("s", "a1", "dcim/v1/s/+/cmd/+"));
        assert!(!may_subscribe("s", "a1", "#"));
        assert!(!may_subscribe("s", "a1", "dcim/v1/s/a1/cmd/x/y"));
    }
}
