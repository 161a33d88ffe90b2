//! The `fire.stage` point read through the fire logic's stage table
//! (`fire_logic::STAGE_TABLE`), the single source of every stage's code, key, name, condition,
//! default threshold and actions.
//!
//! A `fire.stage` sample carries either the numeric code (0 normal, 1 pre-alarm, 2..=6 stages
//! 1..5) or, from profiles with an `enum` map, the stage's key (`stage3`). Whatever names a
//! stage on the server (alarm texts, the redundancy engine's battery-room rule, the DC-09
//! mapping) goes through [`stage_of`], so a stage is never read as "no stage" because a device
//! reports it as a word.

use dcim_points::Value;
pub use fire_logic::{Action, STAGE_TABLE, Stage, StageInfo};

/// The stage a `fire.stage` value names: an integral code 0..=6, a stage key (`pre_alarm`,
/// `stage3`), or a key followed by `_` and a description (`stage3_agent`, the words of the
/// first rack-controller register map). `None` for anything else (which is never "normal").
pub fn stage_of(v: &Value) -> Option<&'static StageInfo> {
    match v {
        Value::Number(x) if x.fract() == 0.0 && (0.0..=6.0).contains(x) => {
            STAGE_TABLE.get(*x as usize)
        }
        Value::Number(_) | Value::Bool(_) => None,
        Value::Text(t) => {
            let t = t.trim();
            STAGE_TABLE.iter().find(|r| r.key == t).or_else(|| {
                STAGE_TABLE.iter().find(|r| {
                    r.stage >= Stage::Stage1
                        && t.strip_prefix(r.key)
                            .is_some_and(|rest| rest.starts_with('_'))
                })
            })
        }
    }
}

/// Whether a stage cuts the battery's power (stage 1 and later open the contactor).
pub fn cuts_power(s: &StageInfo) -> bool {
    s.stage >= Stage::Stage1
}

/// What an action does, in words for people (alarm texts, reports).
pub fn action_text(a: Action) -> &'static str {
    match a {
        Action::ContactorOpen => "battery contactor opened (power cut)",
        Action::BlanketDrop => "fire blanket dropped",
        Action::PatchFire => "extinguishing patch fired",
        Action::AgentRelease => "extinguishing agent released",
        Action::CoolantOn => "coolant water on",
        Action::GasRelease => "room gas released",
        Action::GasWarning => "room gas pre-discharge warning",
    }
}

/// Every action of the stages up to and including `s`, in stage order: what the fire logic
/// has done once it is in `s`.
pub fn actions_through(s: &StageInfo) -> Vec<Action> {
    STAGE_TABLE
        .iter()
        .filter(|r| r.code <= s.code)
        .flat_map(|r| r.actions.iter().copied())
        .collect()
}

/// The stage's default temperature threshold in °C, if it has one.
pub fn threshold_c(s: &StageInfo) -> Option<f64> {
    s.default_threshold.map(|t| f64::from(t) / 10.0)
}

/// The pre-alarm's default temperature in °C (the lowest stage threshold).
pub fn prealarm_c() -> f64 {
    threshold_c(Stage::PreAlarm.info()).unwrap_or(50.0)
}

/// The stage's name with its key, for texts: `Extinguishing agent (stage3)`.
pub fn label(s: &StageInfo) -> String {
    format!("{} ({})", s.name, s.key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_keys_and_old_register_words_name_the_same_stage() {
        // Hazard: a rack controller reporting its stage as a word (`stage3_agent`) read as
        // "no stage", so its fire never raised the fire-stage alarm.
        for row in &STAGE_TABLE {
            assert_eq!(stage_of(&Value::Number(f64::from(row.code))), Some(row));
            assert_eq!(stage_of(&Value::Text(row.key.into())), Some(row));
        }
        for (word, code) in [
            ("stage1_power_cut", 2),
            ("stage2_patch", 3),
            ("stage3_agent", 4),
            ("stage4_coolant", 5),
            ("stage5_room_gas", 6),
        ] {
            assert_eq!(stage_of(&Value::Text(word.into())).unwrap().code, code);
        }
        for bad in [
            Value::Number(7.0),
            Value::Number(2.5),
            Value::Number(-1.0),
            Value::Bool(true),
            Value::Text("stage9".into()),
            Value::Text("normality".into()),
        ] {
            assert_eq!(stage_of(&bad), None, "{bad:?}");
        }
    }

    #[test]
    fn actions_accumulate_by_stage_and_every_action_has_words() {
        let agent = Stage::Stage3.info();
        assert_eq!(
            actions_through(agent),
            [
                Action::ContactorOpen,
                Action::BlanketDrop,
                Action::PatchFire,
                Action::AgentRelease
            ]
        );
        assert!(actions_through(Stage::PreAlarm.info()).is_empty());
        for a in Action::ALL {
            assert!(!action_text(a).is_empty());
        }
        assert!(cuts_power(Stage::Stage1.info()) && !cuts_power(Stage::PreAlarm.info()));
        assert_eq!(threshold_c(agent), Some(80.0));
        assert_eq!(label(agent), "Extinguishing agent (stage3)");
    }
}
