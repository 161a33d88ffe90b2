//! The stage table: the single source of every stage's code, key, name, entry condition and
//! actions.
//!
//! Register docs, wire events, alarm texts, the DC-09 mapping, the API and the console labels
//! all read this table (directly, or through the server's `/api/fire/stages`), so a stage is
//! never called one thing in one place and another elsewhere. Show [`StageInfo::name`] to people;
//! [`StageInfo::key`] is the stable machine name used on the wire and in traces; the numeric
//! [`StageInfo::code`] (the `fire.stage` point value) is never shown on its own.

use crate::config::Config;
use crate::types::{Action, DeciC, Stage};

/// What the table says about one stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StageInfo {
    /// The stage.
    pub stage: Stage,
    /// The `fire.stage` point value (0..=6).
    pub code: u8,
    /// Stable machine name (`normal`, `pre_alarm`, `stage1` .. `stage5`).
    pub key: &'static str,
    /// Short human name, e.g. "Power cut and fire blanket".
    pub name: &'static str,
    /// When the stage is entered, in plain words, with the default thresholds.
    pub condition: &'static str,
    /// The default temperature threshold of the stage, if it has one (tenths of a degree C).
    /// Equal to the matching [`Config::default`] field (pinned by a test).
    pub default_threshold: Option<DeciC>,
    /// Actions this stage adds to those of the stages before it.
    pub actions: &'static [Action],
}

impl StageInfo {
    /// The threshold of this stage in `config` (the same field as `default_threshold`).
    pub const fn threshold(&self, config: &Config) -> Option<DeciC> {
        match self.stage {
            Stage::PreAlarm => Some(config.prealarm),
            Stage::Stage1 => Some(config.stage1),
            Stage::Stage2 => Some(config.stage2),
            Stage::Stage3 => Some(config.stage3),
            Stage::Normal | Stage::Stage4 | Stage::Stage5 => None,
        }
    }
}

/// Every stage in code order; `STAGE_TABLE[code]` describes the stage with that code.
pub const STAGE_TABLE: [StageInfo; 7] = [
    StageInfo {
        stage: Stage::Normal,
        code: 0,
        key: "normal",
        name: "Normal",
        condition: "no detection",
        default_threshold: None,
        actions: &[],
    },
    StageInfo {
        stage: Stage::PreAlarm,
        code: 1,
        key: "pre_alarm",
        name: "Pre-alarm",
        condition: "temperature >= 50 C, off-gas >= 10 % LFL, smoke, or a rise of 8 C within 60 s",
        default_threshold: Some(500),
        actions: &[],
    },
    StageInfo {
        stage: Stage::Stage1,
        code: 2,
        key: "stage1",
        name: "Power cut and fire blanket",
        condition: "temperature >= 60 C; off-gas >= 25 % LFL, >= 10 % LFL for 60 s, or >= 10 % LFL \
                    and rising 5 % LFL within 60 s; smoke with off-gas >= 10 % LFL, with the camera \
                    >= 50 C, or with no valid temperature",
        default_threshold: Some(600),
        actions: &[Action::ContactorOpen, Action::BlanketDrop],
    },
    StageInfo {
        stage: Stage::Stage2,
        code: 3,
        key: "stage2",
        name: "Extinguishing patch",
        condition: "temperature >= 68 C corroborated by an independent source (a temperature \
                    >= 60 C outside its common-cause group, smoke or off-gas >= 10 % LFL)",
        default_threshold: Some(680),
        actions: &[Action::PatchFire],
    },
    StageInfo {
        stage: Stage::Stage3,
        code: 4,
        key: "stage3",
        name: "Extinguishing agent",
        condition: "temperature >= 80 C corroborated by an independent source (a temperature \
                    >= 68 C outside its common-cause group, smoke or off-gas >= 10 % LFL), every \
                    temperature source lost in stage 2 (one of them at >= 68 C), or the rack's \
                    manual release",
        default_threshold: Some(800),
        actions: &[Action::AgentRelease],
    },
    StageInfo {
        stage: Stage::Stage4,
        code: 5,
        key: "stage4",
        name: "Continuous coolant",
        condition: "120 s after the agent (timer kept without temperatures and across \
                    restarts): a valid temperature >= 60 C not fallen 5 C below its own peak, a \
                    source lost while >= 60 C, or no valid temperature",
        default_threshold: None,
        actions: &[Action::CoolantOn],
    },
    StageInfo {
        stage: Stage::Stage5,
        code: 6,
        key: "stage5",
        name: "Room gas",
        condition: "300 s after the coolant, the same test against the peaks since the \
                    coolant; or the room gas release. The gas is released only after 30 s of \
                    pre-discharge warning (hold switch honoured)",
        default_threshold: None,
        actions: &[Action::GasWarning, Action::GasRelease],
    },
];

impl Stage {
    /// This stage's row of [`STAGE_TABLE`].
    pub const fn info(self) -> &'static StageInfo {
        match self {
            Stage::Normal => &STAGE_TABLE[0],
            Stage::PreAlarm => &STAGE_TABLE[1],
            Stage::Stage1 => &STAGE_TABLE[2],
            Stage::Stage2 => &STAGE_TABLE[3],
            Stage::Stage3 => &STAGE_TABLE[4],
            Stage::Stage4 => &STAGE_TABLE[5],
            Stage::Stage5 => &STAGE_TABLE[6],
        }
    }

    /// The human name from the stage table, e.g. "Extinguishing agent".
    pub const fn title(self) -> &'static str {
        self.info().name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_rows_match_their_stage_code_and_key() {
        for (i, row) in STAGE_TABLE.iter().enumerate() {
            assert_eq!(usize::from(row.code), i);
            assert_eq!(row.stage.code(), row.code);
            assert_eq!(row.stage.name(), row.key);
            assert_eq!(Stage::from_code(row.code), Some(row.stage));
            assert_eq!(row.stage.info(), row);
        }
    }

    #[test]
    fn default_thresholds_are_the_config_defaults() {
        // Hazard: docs, alarm texts or console saying 45 C where the logic acts at 50 C.
        let config = Config::default();
        for row in &STAGE_TABLE {
            assert_eq!(row.threshold(&config), row.default_threshold, "{}", row.key);
        }
    }

    #[test]
    fn conditions_quote_the_default_thresholds() {
        extern crate std;
        for row in &STAGE_TABLE {
            if let Some(t) = row.default_threshold {
                let text = std::format!("{} C", t.div_euclid(10));
                assert!(
                    row.condition.contains(&text),
                    "{}: condition does not name {text}",
                    row.key
                );
            }
        }
    }
}
