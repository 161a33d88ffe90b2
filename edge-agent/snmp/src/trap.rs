//! Traps and informs as events (pure): which notification it is, which device and link it is
//! about, and whether the device should be polled at once (a link or power change announced
//! by the device itself is confirmed by a poll rather than waited for).

use crate::device::{LinkConfig, Notice};
use crate::value::SnmpValue;
use dcim_wire::Severity;

/// A received notification (trap or inform), version-independent.
#[derive(Debug, Clone, PartialEq)]
pub struct Trap {
    /// `snmpTrapOID.0` (for SNMPv1 traps, the equivalent RFC 3584 OID).
    pub trap_oid: String,
    /// Variable bindings after `sysUpTime.0` and `snmpTrapOID.0`.
    pub varbinds: Vec<(String, SnmpValue)>,
    /// An InformRequest (acknowledged by the receiver).
    pub inform: bool,
    /// How it was authenticated: `v2c community` (cleartext, unverified content) or
    /// `v3 user X authPriv` etc.
    pub security: String,
}

pub const COLD_START: &str = "1.3.6.1.6.3.1.1.5.1";
pub const WARM_START: &str = "1.3.6.1.6.3.1.1.5.2";
pub const LINK_DOWN: &str = "1.3.6.1.6.3.1.1.5.3";
pub const LINK_UP: &str = "1.3.6.1.6.3.1.1.5.4";
pub const IF_INDEX: &str = "1.3.6.1.2.1.2.2.1.1";
/// UPS-MIB (RFC 1628) notifications.
pub const UPS_ON_BATTERY: &str = "1.3.6.1.2.1.33.2.1";
pub const UPS_TEST_COMPLETED: &str = "1.3.6.1.2.1.33.2.2";
pub const UPS_ALARM_ADDED: &str = "1.3.6.1.2.1.33.2.3";
pub const UPS_ALARM_REMOVED: &str = "1.3.6.1.2.1.33.2.4";

/// The event for `trap` from `device`, and whether to poll the device at once.
pub fn classify(trap: &Trap, device: &str, links: &[LinkConfig], ts_ms: i64) -> (Notice, bool) {
    let if_index = trap
        .varbinds
        .iter()
        .find(|(oid, _)| oid.starts_with(IF_INDEX) && oid.len() > IF_INDEX.len())
        .and_then(|(_, v)| v.as_u64());
    let link = if_index.and_then(|i| links.iter().find(|l| u64::from(l.if_index) == i));
    let port = match (link, if_index) {
        (Some(l), _) => format!("link {}", l.name),
        (None, Some(i)) => format!("port with ifIndex {i} (not a configured link)"),
        (None, None) => "a port".to_owned(),
    };
    let (kind, severity, message, poll) = meaning(&trap.trap_oid, device, &port, link.is_some());
    let varbinds: serde_json::Map<String, serde_json::Value> = trap
        .varbinds
        .iter()
        .map(|(o, v)| (o.clone(), serde_json::Value::String(v.to_string())))
        .collect();
    let notice = Notice {
        ts_ms,
        device: device.to_owned(),
        kind: kind.into(),
        severity,
        message,
        data: serde_json::json!({
            "trap_oid": trap.trap_oid,
            "inform": trap.inform,
            "security": trap.security,
            "link": link.map(|l| l.name.clone()),
            "if_index": if_index,
            "varbinds": varbinds,
        }),
        test: false,
    };
    (notice, poll)
}

/// The event kind, severity and message of a notification, and whether it calls for a poll at
/// once; `port` names the port of a link notification, `known_link` whether it is a configured
/// link (a configured link going down is a trouble).
fn meaning(
    trap_oid: &str,
    device: &str,
    port: &str,
    known_link: bool,
) -> (&'static str, Severity, String, bool) {
    match trap_oid {
        LINK_DOWN => (
            "link.down",
            if known_link {
                Severity::Trouble
            } else {
                Severity::Info
            },
            format!("{device} reports {port} down"),
            true,
        ),
        LINK_UP => (
            "link.up",
            Severity::Info,
            format!("{device} reports {port} up"),
            true,
        ),
        COLD_START | WARM_START => (
            "device.restarted",
            Severity::Info,
            format!("{device} restarted"),
            true,
        ),
        UPS_ON_BATTERY => (
            "ups.on_battery",
            Severity::Trouble,
            format!("{device} reports it runs on battery"),
            true,
        ),
        UPS_ALARM_ADDED => (
            "ups.alarm",
            Severity::Trouble,
            format!("{device} reports a new UPS alarm"),
            true,
        ),
        UPS_ALARM_REMOVED => (
            "ups.alarm_cleared",
            Severity::Info,
            format!("{device} reports a UPS alarm cleared"),
            true,
        ),
        UPS_TEST_COMPLETED => (
            "ups.test_completed",
            Severity::Info,
            format!("{device} completed a UPS self-test"),
            false,
        ),
        other => (
            "snmp.trap",
            Severity::Info,
            format!("{device} sent notification {other}"),
            false,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link() -> LinkConfig {
        LinkConfig {
            name: "core-a-row1".into(),
            if_index: 2,
            lldp_port: 2,
            neighbor: None,
        }
    }

    /// Hazard: a linkDown for a designed link read as a mere notification would let a lost
    /// network path wait for the next poll, and one for an unknown port must not raise a
    /// trouble for a link that is not designed.
    #[test]
    fn link_down_names_the_configured_link_and_asks_for_a_poll() {
        let t = Trap {
            trap_oid: LINK_DOWN.into(),
            varbinds: vec![
                (format!("{IF_INDEX}.2"), SnmpValue::Integer(2)),
                ("1.3.6.1.2.1.2.2.1.8.2".into(), SnmpValue::Integer(2)),
            ],
            inform: false,
            security: "v2c community".into(),
        };
        let (n, poll) = classify(&t, "sw-core-a", &[link()], 5);
        assert!(poll);
        assert_eq!(
            (n.kind.as_str(), n.severity),
            ("link.down", Severity::Trouble)
        );
        assert_eq!(n.data["link"], "core-a-row1");
        assert!(n.message.contains("link core-a-row1 down"), "{}", n.message);
        let other = Trap {
            varbinds: vec![(format!("{IF_INDEX}.9"), SnmpValue::Integer(9))],
            ..t
        };
        let (n, _) = classify(&other, "sw-core-a", &[link()], 5);
        assert_eq!(n.severity, Severity::Info);
        assert!(n.data["link"].is_null());
    }

    #[test]
    fn ups_mib_and_unknown_notifications() {
        let t = |oid: &str| Trap {
            trap_oid: oid.into(),
            varbinds: vec![],
            inform: true,
            security: "v3 user dcim authPriv".into(),
        };
        let (n, poll) = classify(&t(UPS_ON_BATTERY), "ups-1", &[], 1);
        assert_eq!((n.kind.as_str(), poll), ("ups.on_battery", true));
        assert_eq!(n.data["inform"], true);
        let (n, poll) = classify(&t("1.3.6.1.4.1.9999.1"), "ups-1", &[], 1);
        assert_eq!((n.kind.as_str(), poll), ("snmp.trap", false));
        assert_eq!(n.data["trap_oid"], "1.3.6.1.4.1.9999.1");
    }
}
