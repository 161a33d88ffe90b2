//! Test (drill) mode of the agent, commanded by the center. Pure: time is passed in.
//!
//! Contract: the center sends `CommandKind::TestMode { on }` on `dcim/v1/{site}/{agent}/cmd/{agent}`
//! (the agent itself is the device). While test mode is on:
//! - every DC-09 message the agent sends is marked as test (`sia_dc09::Event::as_test`: the
//!   authority's test code), bracketed by the drill begin / end codes (`test.drill`: SIA FI/FK,
//!   Contact ID 1604/3604);
//! - every event the agent publishes carries `test: true`, and so does its retained
//!   `AgentState` (with `test_until_ms`);
//! - the fire logic itself is not altered in any way: stages, outputs and latches are the same.
//!
//! Bounds: test mode ends by itself `max` after the last `on` (a repeated `on` re-arms the timer),
//! and at once when the fire authority takes command (a device's `fire.authority` key switch reads
//! on); a restart never resumes it: the state file written at the start lets the restarted agent
//! close the drill at the receiver (the end code).

use serde::{Deserialize, Serialize};

/// The default maximum duration of a drill: 2 h.
pub const DEFAULT_MAX_MS: u64 = 2 * 3_600_000;

/// A drill in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Active {
    /// When it started (Unix ms); with the agent id it names the drill's bracket messages.
    pub since_ms: i64,
    /// When it ends by itself (Unix ms).
    pub until_ms: i64,
    /// Who asked (the command's `user`) and the command id, for the audit trail.
    pub user: String,
    pub command_id: String,
}

/// Why test mode ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// `TestMode { on: false }`.
    Command,
    /// The maximum duration passed.
    Expired,
    /// The agent restarted during the drill (found at start; drills never resume).
    Restart,
    /// The fire authority took command (a key switch reads on): from then on everything is
    /// sent for real.
    Authority,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Command => "command",
            EndReason::Expired => "expired",
            EndReason::Restart => "agent_restart",
            EndReason::Authority => "authority_control",
        }
    }
}

/// A change the shell must act on (bracket messages, wire events, the state file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Started(Active),
    /// The timer was re-armed by a repeated `on`.
    Extended(Active),
    Ended {
        drill: Active,
        reason: EndReason,
    },
}

/// The test-mode state machine.
#[derive(Debug, Clone)]
pub struct TestMode {
    max_ms: i64,
    active: Option<Active>,
}

impl TestMode {
    pub fn new(max_ms: u64) -> TestMode {
        TestMode {
            max_ms: max_ms.min(i64::MAX as u64) as i64,
            active: None,
        }
    }

    pub fn active(&self) -> Option<&Active> {
        self.active.as_ref()
    }

    /// On at `now_ms` (the expiry is not applied here: call [`TestMode::tick`] first).
    pub fn is_on(&self, now_ms: i64) -> bool {
        self.active.as_ref().is_some_and(|a| now_ms < a.until_ms)
    }

    /// Applies a `TestMode { on }` command; returns the answer's reason and the changes, in
    /// order (a drill that expired unnoticed is ended before anything else).
    pub fn command(
        &mut self,
        on: bool,
        now_ms: i64,
        user: &str,
        command_id: &str,
    ) -> (String, Vec<Change>) {
        let mut changes: Vec<Change> = self.tick(now_ms).into_iter().collect();
        let expired = !changes.is_empty();
        let until_ms = now_ms.saturating_add(self.max_ms);
        let reason = match (on, self.active.as_mut()) {
            (true, Some(a)) => {
                a.until_ms = until_ms;
                changes.push(Change::Extended(a.clone()));
                format!("test mode stays on, now until {until_ms} (Unix ms)")
            }
            (true, None) => {
                let a = Active {
                    since_ms: now_ms,
                    until_ms,
                    user: user.to_owned(),
                    command_id: command_id.to_owned(),
                };
                self.active = Some(a.clone());
                changes.push(Change::Started(a));
                format!(
                    "test mode on until {until_ms} (Unix ms); DC-09 messages and events are \
                     marked as test; the fire logic is unchanged"
                )
            }
            (false, Some(_)) => {
                let drill = self.active.take().expect("matched Some");
                changes.push(Change::Ended {
                    drill,
                    reason: EndReason::Command,
                });
                "test mode off".into()
            }
            (false, None) if expired => "test mode had already expired".into(),
            (false, None) => "test mode was not on".into(),
        };
        (reason, changes)
    }

    /// Ends the drill now, if one runs.
    pub fn end(&mut self, reason: EndReason) -> Option<Change> {
        let drill = self.active.take()?;
        Some(Change::Ended { drill, reason })
    }

    /// Ends an expired drill.
    pub fn tick(&mut self, now_ms: i64) -> Option<Change> {
        if self.active.as_ref().is_some_and(|a| now_ms >= a.until_ms) {
            let drill = self.active.take().expect("checked");
            return Some(Change::Ended {
                drill,
                reason: EndReason::Expired,
            });
        }
        None
    }
}

/// The state file's content: the drill in progress, if any (JSON).
pub fn encode_state(active: Option<&Active>) -> Vec<u8> {
    serde_json::to_vec(&active).unwrap_or_default()
}

/// Reads a state file's content; damaged content counts as a drill of unknown start, so that it
/// is still closed at the receiver.
pub fn decode_state(bytes: &[u8]) -> Option<Active> {
    match serde_json::from_slice::<Option<Active>>(bytes) {
        Ok(a) => a,
        Err(_) => Some(Active {
            since_ms: 0,
            until_ms: 0,
            user: String::new(),
            command_id: String::new(),
        }),
    }
}

/// DC-09 event ids of a drill's begin and end messages (stable, so a resend after a restart is
/// recognised by the outbox).
pub fn bracket_ids(agent: &str, drill: &Active) -> (String, String) {
    (
        format!("{agent}:drill:{}:begin", drill.since_ms),
        format!("{agent}:drill:{}:end", drill.since_ms),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_off_and_repeated_commands() {
        let mut t = TestMode::new(1000);
        assert!(!t.is_on(0));
        let (_, c) = t.command(true, 10, "op", "c1");
        assert!(matches!(&c[..], [Change::Started(a)] if a.since_ms == 10 && a.until_ms == 1010));
        assert!(t.is_on(500));
        let (_, c) = t.command(true, 500, "op", "c2");
        assert!(matches!(&c[..], [Change::Extended(a)] if a.since_ms == 10 && a.until_ms == 1500));
        let (_, c) = t.command(false, 600, "op", "c3");
        assert!(matches!(
            &c[..],
            [Change::Ended {
                reason: EndReason::Command,
                ..
            }]
        ));
        assert!(!t.is_on(600));
        let (why, c) = t.command(false, 700, "op", "c4");
        assert_eq!((why.as_str(), c), ("test mode was not on", vec![]));
    }

    #[test]
    fn a_drill_can_be_ended_by_the_fire_authority() {
        let mut t = TestMode::new(1000);
        assert_eq!(t.end(EndReason::Authority), None);
        t.command(true, 0, "op", "c1");
        assert!(matches!(
            t.end(EndReason::Authority),
            Some(Change::Ended {
                reason: EndReason::Authority,
                ..
            })
        ));
        assert!(!t.is_on(1));
    }

    #[test]
    fn test_mode_expires_by_itself() {
        let mut t = TestMode::new(1000);
        t.command(true, 0, "op", "c1");
        assert_eq!(t.tick(999), None);
        assert!(t.is_on(999));
        assert!(!t.is_on(1000));
        let c = t.tick(1000);
        assert!(matches!(
            c,
            Some(Change::Ended {
                reason: EndReason::Expired,
                ref drill
            }) if drill.since_ms == 0
        ));
        assert_eq!(t.tick(2000), None);
        // An `off` after an unnoticed expiry still reports the end once.
        t.command(true, 3000, "op", "c2");
        let (why, c) = t.command(false, 5000, "op", "c3");
        assert!(why.contains("expired"), "{why}");
        assert!(matches!(
            &c[..],
            [Change::Ended {
                reason: EndReason::Expired,
                ..
            }]
        ));
        // An `on` after an unnoticed expiry ends the old drill before starting the new one.
        t.command(true, 6000, "op", "c4");
        let (_, c) = t.command(true, 8000, "op", "c5");
        assert!(matches!(
            &c[..],
            [Change::Ended { drill, .. }, Change::Started(n)] if drill.since_ms == 6000 && n.since_ms == 8000
        ));
    }

    #[test]
    fn the_state_file_round_trips_and_damage_still_closes_the_drill() {
        let a = Active {
            since_ms: 5,
            until_ms: 10,
            user: "drill:d1".into(),
            command_id: "c".into(),
        };
        assert_eq!(decode_state(&encode_state(Some(&a))), Some(a.clone()));
        assert_eq!(decode_state(&encode_state(None)), None);
        assert!(decode_state(b"{garbage").is_some());
        let (b, e) = bracket_ids("ag", &a);
        assert_eq!(
            (b.as_str(), e.as_str()),
            ("ag:drill:5:begin", "ag:drill:5:end")
        );
    }
}
