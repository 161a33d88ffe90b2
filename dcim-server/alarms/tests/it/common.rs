//! Rules shared by the modules.

use dcim_alarms::{Condition, Rule};

/// The UPS-on-battery rule: alarm while `ups.on_battery` is true, grade 2, no delays.
pub fn binary_rule(id: &str) -> Rule {
    Rule {
        id: id.into(),
        name: "UPS on battery".into(),
        condition: Condition::Binary {
            role: "ups.on_battery".into(),
            alarm_when: true,
        },
        grade: 2,
        device_prefix: String::new(),
        labels: Default::default(),
        on_delay_ms: 0,
        off_delay_ms: 0,
        expected_recovery_ms: 0,
    }
}
