//! Alarm definitions: rules that turn samples, device communication and redundancy levels into
//! alarm conditions.
//!
//! `Rule::shelvable` is derived from the condition: fire-stage and battery-temperature alarms are
//! never shelved, by an operator or for chattering; every other shelve needs a reason. The
//! redundancy rule grades the known level (losing 2N is grade 2, below N grade 1); the
//! redundancy-unverified rule fires when the proven level stays below what Unknown components
//! would give for a minute.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What makes the alarm's condition true.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Condition {
    /// A numeric role above `high` or below `low`; it clears only `deadband` inside the limit.
    Threshold {
        role: String,
        high: Option<f64>,
        low: Option<f64>,
        #[serde(default)]
        deadband: f64,
    },
    /// A binary role equal to `alarm_when`.
    Binary { role: String, alarm_when: bool },
    /// The device stopped answering (`comm_lost` from the agent or the status engine).
    CommLost,
    /// A subsystem's redundancy below its design: losing 2N (or N+1) while still at N or above
    /// is graded `grade`; below N is always grade 1. Fed with the level known from what
    /// reported (Unknown components counted as up until they turn Down).
    Redundancy,
    /// A subsystem's level is not verified: Unknown components keep the level proven by
    /// measurement below what they would give (no data is never "redundant").
    RedundancyUnverified,
    /// `fire.stage` at stage 1 (`stage1`, code 2: power cut and fire blanket) or later, read
    /// through `fire_logic::STAGE_TABLE` (codes and keys): grade 1.
    FireStage,
    /// A trouble the server detects itself, fed by `Engine::on_trouble` with this `kind`:
    /// `breaker_mismatch` (a switch position disagrees with the measurement), `clock_ahead`
    /// (an agent's samples stamped in the future, refused), `spool_epoch` (an agent's spool
    /// restarted: a new stream), `disk_full` (the database cannot be written).
    Trouble { kind: String },
}

/// One alarm rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    pub id: String,
    pub name: String,
    pub condition: Condition,
    /// Incident grade 1-3 the alarm maps to.
    pub grade: u8,
    /// Only devices whose id starts with this prefix (all when empty).
    #[serde(default)]
    pub device_prefix: String,
    /// Labels a sample must carry to match.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The condition must hold this long before the alarm activates.
    #[serde(default)]
    pub on_delay_ms: i64,
    /// The condition must be gone this long before the alarm clears.
    #[serde(default)]
    pub off_delay_ms: i64,
    /// When the alarm lasts longer than this, its grade is raised one level (0 = never).
    #[serde(default)]
    pub expected_recovery_ms: i64,
}

impl Rule {
    fn new(id: &str, name: &str, condition: Condition, grade: u8) -> Rule {
        Rule {
            id: id.into(),
            name: name.into(),
            condition,
            grade,
            device_prefix: String::new(),
            labels: BTreeMap::new(),
            on_delay_ms: 0,
            off_delay_ms: 0,
            expected_recovery_ms: 0,
        }
    }

    /// Whether operators may shelve this rule's alarms. Fire-stage and battery-temperature
    /// alarms may not (ISA-18.2: safety alarms are not shelvable): a `fire_stage` condition,
    /// or any condition on `fire.stage`, `battery.cell_temp.*` or `battery.temp*`. Derived
    /// from the condition, so a rules file cannot make them shelvable.
    pub fn shelvable(&self) -> bool {
        if self.condition == Condition::FireStage {
            return false;
        }
        !self.role().is_some_and(|r| {
            r == "fire.stage" || r.starts_with("battery.cell_temp") || r.starts_with("battery.temp")
        })
    }

    /// The role a sample must have to be evaluated by this rule.
    pub fn role(&self) -> Option<&str> {
        match &self.condition {
            Condition::Threshold { role, .. } | Condition::Binary { role, .. } => Some(role),
            Condition::FireStage => Some("fire.stage"),
            _ => None,
        }
    }

    /// Checks the rule; the message says which field is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=3).contains(&self.grade) {
            return Err(format!("rule {}: grade: expected 1, 2 or 3", self.id));
        }
        if self.on_delay_ms < 0 || self.off_delay_ms < 0 || self.expected_recovery_ms < 0 {
            return Err(format!("rule {}: delays: expected >= 0 ms", self.id));
        }
        if let Condition::Threshold {
            high,
            low,
            deadband,
            ..
        } = &self.condition
        {
            if high.is_none() && low.is_none() {
                return Err(format!("rule {}: threshold: expected high or low", self.id));
            }
            if *deadband < 0.0 {
                return Err(format!("rule {}: deadband: expected >= 0", self.id));
            }
        }
        if let Some(r) = self.role() {
            dcim_points::Role::new(r).map_err(|e| format!("rule {}: role: {e}", self.id))?;
        }
        Ok(())
    }

    /// The default rule set of the product (used by the demo and as a starting point).
    pub fn defaults() -> Vec<Rule> {
        let mut v = vec![
            Rule::new("fire-stage", "Battery fire stage", Condition::FireStage, 1),
            Rule {
                expected_recovery_ms: 600_000,
                ..Rule::new(
                    "fire-prealarm",
                    "Battery fire pre-alarm",
                    Condition::Threshold {
                        role: "fire.stage".into(),
                        high: Some(0.5),
                        low: None,
                        deadband: 0.0,
                    },
                    2,
                )
            },
            Rule {
                on_delay_ms: 2_000,
                expected_recovery_ms: 3_600_000,
                ..Rule::new(
                    "feed-breaker-open",
                    "Utility feed breaker open",
                    Condition::Binary {
                        role: "feed.breaker_closed".into(),
                        alarm_when: false,
                    },
                    3,
                )
            },
            Rule {
                expected_recovery_ms: 1_800_000,
                ..Rule::new(
                    "ups-on-battery",
                    "UPS on battery",
                    Condition::Binary {
                        role: "ups.on_battery".into(),
                        alarm_when: true,
                    },
                    2,
                )
            },
            Rule {
                expected_recovery_ms: 3_600_000,
                ..Rule::new(
                    "chiller-fault",
                    "Chiller fault",
                    Condition::Binary {
                        role: "chiller.fault".into(),
                        alarm_when: true,
                    },
                    3,
                )
            },
            Rule {
                on_delay_ms: 10_000,
                off_delay_ms: 10_000,
                expected_recovery_ms: 1_800_000,
                ..Rule::new(
                    "battery-hot",
                    "Battery cell temperature high",
                    Condition::Threshold {
                        role: "battery.cell_temp.max".into(),
                        high: Some(45.0),
                        low: None,
                        deadband: 2.0,
                    },
                    2,
                )
            },
            Rule {
                on_delay_ms: 30_000,
                off_delay_ms: 30_000,
                expected_recovery_ms: 1_800_000,
                ..Rule::new(
                    "room-hot",
                    "Room temperature high",
                    Condition::Threshold {
                        role: "room.temp".into(),
                        high: Some(32.0),
                        low: None,
                        deadband: 1.0,
                    },
                    2,
                )
            },
            Rule {
                on_delay_ms: 30_000,
                expected_recovery_ms: 1_800_000,
                ..Rule::new(
                    "comm-lost",
                    "Device communication lost",
                    Condition::CommLost,
                    3,
                )
            },
            Rule {
                expected_recovery_ms: 4 * 3_600_000,
                ..Rule::new(
                    "redundancy",
                    "Redundancy below design",
                    Condition::Redundancy,
                    2,
                )
            },
            // A minute without proof: probes run at least once a minute, and a start-up or
            // a reconnecting agent reports everything within it.
            Rule {
                on_delay_ms: 60_000,
                expected_recovery_ms: 3_600_000,
                ..Rule::new(
                    "redundancy-unverified",
                    "Redundancy unverified (no data from components)",
                    Condition::RedundancyUnverified,
                    2,
                )
            },
            Rule {
                on_delay_ms: 5_000,
                off_delay_ms: 5_000,
                expected_recovery_ms: 3_600_000,
                ..Rule::new(
                    "breaker-mismatch",
                    "Breaker position disagrees with the measurement",
                    Condition::Trouble {
                        kind: "breaker_mismatch".into(),
                    },
                    3,
                )
            },
            Rule {
                expected_recovery_ms: 3_600_000,
                ..Rule::new(
                    "agent-clock-ahead",
                    "Agent clock ahead: samples from the future refused",
                    Condition::Trouble {
                        kind: "clock_ahead".into(),
                    },
                    3,
                )
            },
            Rule::new(
                "agent-spool-new",
                "Agent spool restarted: a new stream began",
                Condition::Trouble {
                    kind: "spool_epoch".into(),
                },
                3,
            ),
            Rule {
                expected_recovery_ms: 900_000,
                ..Rule::new(
                    "store-disk-full",
                    "Database disk full: new data is not stored",
                    Condition::Trouble {
                        kind: "disk_full".into(),
                    },
                    2,
                )
            },
        ];
        for r in &mut v {
            debug_assert!(r.validate().is_ok());
            r.labels.clear();
        }
        v
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default)]
    rule: Vec<toml::Spanned<Rule>>,
}

/// Loads rules from a TOML file of `[[rule]]` tables (the fields of [`Rule`]; `condition` is an
/// inline table with a `type`: `threshold`, `binary`, `comm_lost`, `redundancy`,
/// `redundancy_unverified`, `fire_stage`, `trouble` with a `kind`).
/// Errors name the file, the line and what was expected.
pub fn rules_from_toml(src: &str, file: &str) -> Result<Vec<Rule>, String> {
    let lines = dcim_source_lines::LineIndex::new(src);
    let line = |off: usize| lines.line(off);
    let f: RulesFile = toml::from_str(src).map_err(|e| {
        let l = e.span().map(|s| line(s.start)).unwrap_or(0);
        format!("{file}:{l}: {}", e.message().trim())
    })?;
    let mut out = Vec::new();
    for r in f.rule {
        let l = line(r.span().start);
        let r = r.into_inner();
        r.validate().map_err(|e| format!("{file}:{l}: {e}"))?;
        if out.iter().any(|o: &Rule| o.id == r.id) {
            return Err(format!(
                "{file}:{l}: rule {}: id: duplicate, expected each id once",
                r.id
            ));
        }
        out.push(r);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_load_from_toml() {
        let src = r#"
[[rule]]
id = "room-hot"
name = "Room hot"
grade = 2
on_delay_ms = 30000
condition = { type = "threshold", role = "room.temp", high = 32.0, deadband = 1.0 }

[[rule]]
id = "breaker"
name = "Breaker open"
grade = 3
device_prefix = "meter-"
condition = { type = "binary", role = "feed.breaker_closed", alarm_when = false }

[[rule]]
id = "redundancy"
name = "Redundancy"
grade = 2
condition = { type = "redundancy" }
"#;
        let rules = rules_from_toml(src, "rules.toml").unwrap();
        assert_eq!(rules.len(), 3);
        assert_eq!(rules[0].on_delay_ms, 30_000);
        assert_eq!(rules[1].device_prefix, "meter-");
        assert_eq!(rules[2].condition, Condition::Redundancy);
    }

    #[test]
    fn fire_and_battery_temperature_rules_are_never_shelvable() {
        // Hazard: a grade-1 battery-fire alarm hidden for 8 h with one click.
        let d = Rule::defaults();
        let shelvable: Vec<&str> = d
            .iter()
            .filter(|r| !r.shelvable())
            .map(|r| r.id.as_str())
            .collect();
        assert_eq!(shelvable, ["fire-stage", "fire-prealarm", "battery-hot"]);
        // Not even from a rules file.
        let r = rules_from_toml(
            "[[rule]]\nid = \"hot\"\nname = \"Hot\"\ngrade = 3\ncondition = { type = \"threshold\", role = \"battery.cell_temp.max\", high = 40.0 }\n",
            "r.toml",
        )
        .unwrap();
        assert!(!r[0].shelvable());
        let t = rules_from_toml(
            "[[rule]]\nid = \"t\"\nname = \"T\"\ngrade = 3\ncondition = { type = \"trouble\", kind = \"disk_full\" }\n",
            "r.toml",
        )
        .unwrap();
        assert!(t[0].shelvable());
    }

    #[test]
    fn bad_rules_name_file_and_line() {
        let e = rules_from_toml(
            "[[rule]]\nid = \"x\"\nname = \"x\"\ngrade = 5\ncondition = { type = \"comm_lost\" }\n",
            "r.toml",
        )
        .unwrap_err();
        assert!(e.starts_with("r.toml:1: rule x: grade"), "{e}");
        let e = rules_from_toml(
            "[[rule]]\nid = \"x\"\nname = \"x\"\ngrade = 2\ncondition = { type = \"bogus\" }\n",
            "r.toml",
        )
        .unwrap_err();
        assert!(e.starts_with("r.toml:"), "{e}");
        assert!(e.contains("bogus"), "{e}");
        let e = rules_from_toml("[[rule]]\nid = \"x\"\nname = \"x\"\ngrade = 2\ncondition = { type = \"binary\", role = \"no.such\", alarm_when = true }\n", "r.toml").unwrap_err();
        assert!(e.contains("role"), "{e}");
    }
}
