//! Authority control: the fire authority has taken command of the site. Pure state and
//! decisions, no I/O and no clock (times are passed in); the HTTP and ingest wiring is in
//! `api_authority`.
//!
//! The site enters authority control when any rack controller (or agent) reports its
//! fire-authority key switch on ([`Authority::key_report`], fed from `fire.authority` samples
//! and `fire.supervisory` events by [`key_from_sample`] / [`key_from_event`]), or when a user
//! enters it from the console ([`Authority::enter`]: operator, admin or the fire authority).
//! Turning a key off does not leave authority control: only an operator or admin does, with a
//! reason, and never while a key is still on ([`Authority::exit`]).
//!
//! While under authority control, [`Authority::check`] refuses the remote actions that could
//! surprise firefighters. The list of action kinds is closed ([`ActionKind`]); every write
//! route of the API maps to one of them (read-only queries and what-if are not actions and are
//! never refused). The policy ([`ActionKind::refused_under_control`]):
//!
//! | action kind        | under authority control | why |
//! |--------------------|-------------------------|-----|
//! | `device_command`   | refused | any command (silence, test mode, sensor inhibit, clock) changes what the rack does or logs |
//! | `maintenance`      | refused | setting or clearing maintenance changes which alarms and states the fire authority sees |
//! | `alarm_shelve`     | refused | hides an alarm; applies to every alarm: the server cannot tell which one matters to a fire |
//! | `alarm_out_of_service` | refused | same |
//! | `user_modify`      | refused | disabling, deleting, re-roling a user or resetting a password could lock out the fire role |
//! | `token_revoke`     | refused | could lock out the fire role's tools |
//! | `drill_start`      | refused | a drill injects faults and tags alarms as tests |
//! | `alarm_ack`, `alarm_comment` | allowed | acknowledging and commenting change nothing in the plant |
//! | `alarm_unshelve`, `alarm_return_to_service` | allowed | they make alarms visible again |
//! | `incident_write`   | allowed | the incident journal is how the handover is documented |
//! | `user_create`, `token_create` | allowed | e.g. an account for the arriving fire officer |
//!
//! `user_modify` and `token_revoke` have no API route yet; whoever adds one must call the check
//! with that kind. `drill::begin` checks `drill_start`. Entering from the console is also sent
//! to the fire authority's receiver by the server's DC-09 link (`dc09`), as `fire.authority`.
//!
//! Invariants: `active` is `Some` whenever `keys` is non-empty (a key report always enters);
//! [`Authority::exit`] succeeds only with `keys` empty.
//!
//! # Guard and lock order
//!
//! `guard()` is called by each write route before acting: a refusal is audited as
//! `authority.refused` and answered 423 (Locked); the lock is held while the action runs and is
//! always taken before the facility lock (with maintenance windows: authority, then the schedule,
//! then the facility). The state is the `authority/state` document, stored with its audit row and
//! pushed as the live `authority` event.

use crate::config::Role;
use dcim_points::{Quality, Sample, Value};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Longest accepted reason text, in characters.
pub const MAX_REASON: usize = 500;

/// Every kind of remote action the decision covers (closed list).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// `POST /api/devices/{device}/commands`.
    DeviceCommand,
    /// `POST /api/maintenance` (on or off).
    Maintenance,
    /// `POST /api/alarms/{id}/shelve`.
    AlarmShelve,
    /// `POST /api/alarms/{id}/out_of_service`.
    AlarmOutOfService,
    /// `POST /api/alarms/{id}/unshelve`.
    AlarmUnshelve,
    /// `POST /api/alarms/{id}/return_to_service`.
    AlarmReturnToService,
    /// `POST /api/alarms/{id}/ack`.
    AlarmAck,
    /// `POST /api/alarms/{id}/comment`.
    AlarmComment,
    /// `POST /api/incidents` and `POST /api/incidents/{id}/{op}`.
    IncidentWrite,
    /// `POST /api/users`.
    UserCreate,
    /// `POST /api/users/{name}/tokens`.
    TokenCreate,
    /// Disable, delete, change the role of a user or reset a password (no route yet).
    UserModify,
    /// Revoke an API token or another user's session (no route yet).
    TokenRevoke,
    /// Start a drill scenario (no route yet).
    DrillStart,
}

impl ActionKind {
    pub const ALL: [ActionKind; 14] = [
        ActionKind::DeviceCommand,
        ActionKind::Maintenance,
        ActionKind::AlarmShelve,
        ActionKind::AlarmOutOfService,
        ActionKind::AlarmUnshelve,
        ActionKind::AlarmReturnToService,
        ActionKind::AlarmAck,
        ActionKind::AlarmComment,
        ActionKind::IncidentWrite,
        ActionKind::UserCreate,
        ActionKind::TokenCreate,
        ActionKind::UserModify,
        ActionKind::TokenRevoke,
        ActionKind::DrillStart,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::DeviceCommand => "device_command",
            ActionKind::Maintenance => "maintenance",
            ActionKind::AlarmShelve => "alarm_shelve",
            ActionKind::AlarmOutOfService => "alarm_out_of_service",
            ActionKind::AlarmUnshelve => "alarm_unshelve",
            ActionKind::AlarmReturnToService => "alarm_return_to_service",
            ActionKind::AlarmAck => "alarm_ack",
            ActionKind::AlarmComment => "alarm_comment",
            ActionKind::IncidentWrite => "incident_write",
            ActionKind::UserCreate => "user_create",
            ActionKind::TokenCreate => "token_create",
            ActionKind::UserModify => "user_modify",
            ActionKind::TokenRevoke => "token_revoke",
            ActionKind::DrillStart => "drill_start",
        }
    }

    /// Why the action is refused under authority control, or `None` when it stays allowed.
    pub fn refused_under_control(self) -> Option<&'static str> {
        match self {
            ActionKind::DeviceCommand => Some("device commands are not sent"),
            ActionKind::Maintenance => Some("maintenance cannot be set or cleared"),
            ActionKind::AlarmShelve => Some("alarms cannot be shelved"),
            ActionKind::AlarmOutOfService => Some("alarms cannot be taken out of service"),
            ActionKind::UserModify => Some("users cannot be disabled, deleted or changed"),
            ActionKind::TokenRevoke => Some("tokens and sessions cannot be revoked"),
            ActionKind::DrillStart => Some("drills cannot be started"),
            ActionKind::AlarmUnshelve
            | ActionKind::AlarmReturnToService
            | ActionKind::AlarmAck
            | ActionKind::AlarmComment
            | ActionKind::IncidentWrite
            | ActionKind::UserCreate
            | ActionKind::TokenCreate => None,
        }
    }

    /// The action kind of an alarm action name of the API (`ack`, `shelve`, ...).
    pub fn of_alarm_action(action: &str) -> Option<ActionKind> {
        Some(match action {
            "ack" => ActionKind::AlarmAck,
            "shelve" => ActionKind::AlarmShelve,
            "unshelve" => ActionKind::AlarmUnshelve,
            "comment" => ActionKind::AlarmComment,
            "out_of_service" => ActionKind::AlarmOutOfService,
            "return_to_service" => ActionKind::AlarmReturnToService,
            _ => return None,
        })
    }
}

/// How the site entered authority control.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum Cause {
    /// A rack controller or agent reported its authority key switch on.
    KeySwitch { device: String, agent: String },
    /// A user entered it from the console or the API.
    User {
        user: String,
        role: String,
        reason: String,
    },
}

impl Cause {
    /// Plain text for messages: "the key switch at rack r07" / "ops1 (operator): reason".
    pub fn describe(&self) -> String {
        match self {
            Cause::KeySwitch { device, agent } => {
                format!("the authority key switch at {device} (agent {agent})")
            }
            Cause::User { user, role, reason } => format!("{user} ({role}): {reason}"),
        }
    }
}

/// The site is under authority control.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Control {
    pub since_ms: i64,
    pub cause: Cause,
}

/// A key switch reported on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyOn {
    pub agent: String,
    pub since_ms: i64,
}

/// The authority-control state of the site (persisted as one document).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Authority {
    pub active: Option<Control>,
    /// Devices whose authority key switch is on, with who reported it and since when.
    #[serde(default)]
    pub keys: BTreeMap<String, KeyOn>,
}

/// What a change did (for the audit record and the live stream).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// Entered authority control (by a key or a user).
    Entered(Control),
    /// A key went on while already under authority control.
    KeyOn { device: String, agent: String },
    /// A key went off; `remaining` keys are still on. Authority control stays.
    KeyOff {
        device: String,
        agent: String,
        remaining: usize,
    },
    /// Left authority control.
    Exited {
        entered: Control,
        user: String,
        reason: String,
        duration_ms: i64,
    },
}

impl Transition {
    /// Audit action name.
    pub fn action(&self) -> &'static str {
        match self {
            Transition::Entered(_) => "authority.enter",
            Transition::KeyOn { .. } => "authority.key_on",
            Transition::KeyOff { .. } => "authority.key_off",
            Transition::Exited { .. } => "authority.exit",
        }
    }

    /// Audit detail.
    pub fn detail(&self) -> serde_json::Value {
        match self {
            Transition::Entered(c) => serde_json::json!({"since_ms": c.since_ms, "cause": c.cause}),
            Transition::KeyOn { device, agent } => {
                serde_json::json!({"device": device, "agent": agent})
            }
            Transition::KeyOff {
                device,
                agent,
                remaining,
            } => serde_json::json!({"device": device, "agent": agent, "keys_still_on": remaining}),
            Transition::Exited {
                entered,
                user,
                reason,
                duration_ms,
            } => serde_json::json!({
                "user": user, "reason": reason, "duration_ms": duration_ms,
                "since_ms": entered.since_ms, "entered": entered.cause,
            }),
        }
    }
}

/// Why entering or leaving was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    #[error("role {0} may not do this")]
    Role(&'static str),
    #[error("a reason is required (1-{MAX_REASON} characters)")]
    Reason,
    #[error("already under authority control since {since_ms} by {cause}")]
    AlreadyActive { since_ms: i64, cause: String },
    #[error("the site is not under authority control")]
    NotActive,
    #[error("the authority key switch is still on at {0}; it must be turned off first")]
    KeysOn(String),
}

/// A refused action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub kind: ActionKind,
    pub message: String,
}

fn reason_ok(reason: &str) -> Result<String, ChangeError> {
    let r = reason.trim();
    if r.is_empty() || r.chars().count() > MAX_REASON {
        return Err(ChangeError::Reason);
    }
    Ok(r.to_string())
}

impl Authority {
    pub fn is_active(&self) -> bool {
        self.active.is_some()
    }

    /// The decision: is this remote action allowed now?
    pub fn check(&self, kind: ActionKind) -> Result<(), Refusal> {
        let (Some(c), Some(why)) = (&self.active, kind.refused_under_control()) else {
            return Ok(());
        };
        Err(Refusal {
            kind,
            message: format!(
                "refused under authority control: {why} while the fire authority is in command (since {} ms, entered by {}); an operator must leave authority control first",
                c.since_ms,
                c.cause.describe()
            ),
        })
    }

    /// A key switch report from `device` (via `agent`). Returns what changed, if anything.
    pub fn key_report(
        &mut self,
        device: &str,
        agent: &str,
        on: bool,
        now_ms: i64,
    ) -> Option<Transition> {
        if on {
            if self.keys.contains_key(device) {
                return None;
            }
            self.keys.insert(
                device.to_string(),
                KeyOn {
                    agent: agent.to_string(),
                    since_ms: now_ms,
                },
            );
            if self.active.is_some() {
                return Some(Transition::KeyOn {
                    device: device.into(),
                    agent: agent.into(),
                });
            }
            let c = Control {
                since_ms: now_ms,
                cause: Cause::KeySwitch {
                    device: device.into(),
                    agent: agent.into(),
                },
            };
            self.active = Some(c.clone());
            Some(Transition::Entered(c))
        } else {
            let k = self.keys.remove(device)?;
            Some(Transition::KeyOff {
                device: device.into(),
                agent: k.agent,
                remaining: self.keys.len(),
            })
        }
    }

    /// A user enters authority control (operator, admin or the fire authority).
    pub fn enter(
        &mut self,
        user: &str,
        role: Role,
        reason: &str,
        now_ms: i64,
    ) -> Result<Transition, ChangeError> {
        if !matches!(role, Role::Operator | Role::Admin | Role::FireAuthority) {
            return Err(ChangeError::Role(role.as_str()));
        }
        let reason = reason_ok(reason)?;
        if let Some(c) = &self.active {
            return Err(ChangeError::AlreadyActive {
                since_ms: c.since_ms,
                cause: c.cause.describe(),
            });
        }
        let c = Control {
            since_ms: now_ms,
            cause: Cause::User {
                user: user.into(),
                role: role.as_str().into(),
                reason,
            },
        };
        self.active = Some(c.clone());
        Ok(Transition::Entered(c))
    }

    /// An operator or admin leaves authority control; refused while any key is on.
    pub fn exit(
        &mut self,
        user: &str,
        role: Role,
        reason: &str,
        now_ms: i64,
    ) -> Result<Transition, ChangeError> {
        if !matches!(role, Role::Operator | Role::Admin) {
            return Err(ChangeError::Role(role.as_str()));
        }
        let reason = reason_ok(reason)?;
        if self.active.is_none() {
            return Err(ChangeError::NotActive);
        }
        if !self.keys.is_empty() {
            let at: Vec<&str> = self.keys.keys().map(String::as_str).collect();
            return Err(ChangeError::KeysOn(at.join(", ")));
        }
        let entered = self.active.take().ok_or(ChangeError::NotActive)?;
        Ok(Transition::Exited {
            duration_ms: now_ms.saturating_sub(entered.since_ms).max(0),
            entered,
            user: user.into(),
            reason,
        })
    }

    /// The state as the API and the console show it.
    pub fn view(&self, now_ms: i64) -> View {
        let refused_actions = ActionKind::ALL
            .iter()
            .filter_map(|k| {
                k.refused_under_control().map(|why| RefusedView {
                    kind: k.as_str(),
                    why,
                })
            })
            .collect();
        View {
            active: self.active.is_some(),
            since_ms: self.active.as_ref().map(|c| c.since_ms),
            duration_ms: self
                .active
                .as_ref()
                .map(|c| now_ms.saturating_sub(c.since_ms).max(0)),
            cause: self.active.as_ref().map(|c| c.cause.clone()),
            keys_on: self
                .keys
                .iter()
                .map(|(d, k)| KeyView {
                    device: d.clone(),
                    agent: k.agent.clone(),
                    since_ms: k.since_ms,
                })
                .collect(),
            refused_actions,
        }
    }
}

/// The state as the API (`GET /api/authority`) and the live `authority` event show it; the
/// unset fields are `null` when not under authority control.
#[derive(Debug, Clone, Serialize)]
pub struct View {
    pub active: bool,
    pub since_ms: Option<i64>,
    pub duration_ms: Option<i64>,
    pub cause: Option<Cause>,
    pub keys_on: Vec<KeyView>,
    pub refused_actions: Vec<RefusedView>,
}

/// A key switch that is on.
#[derive(Debug, Clone, Serialize)]
pub struct KeyView {
    pub device: String,
    pub agent: String,
    pub since_ms: i64,
}

/// An action kind refused under authority control, and why.
#[derive(Debug, Clone, Serialize)]
pub struct RefusedView {
    pub kind: &'static str,
    pub why: &'static str,
}

/// The key-switch state a sample reports: `Some(on)` for a good `fire.authority` reading.
/// Stale, bad or lost readings say nothing (the last known state holds).
pub fn key_from_sample(s: &Sample) -> Option<bool> {
    if s.role.as_str() != "fire.authority" || s.quality != Quality::Good {
        return None;
    }
    match s.value.as_ref()? {
        Value::Bool(b) => Some(*b),
        Value::Number(x) if x.is_finite() => Some(*x != 0.0),
        Value::Text(t) => match t.as_str() {
            "on" | "true" | "in_command" => Some(true),
            "off" | "false" => Some(false),
            _ => None,
        },
        Value::Number(_) => None,
    }
}

/// The key-switch state a fire-logic event reports: the edge agent's local fire logic
/// publishes `fire.supervisory` events whose `data.detail` is `SupervisoryRaised(Authority)` /
/// `SupervisoryCleared(Authority)`.
pub fn key_from_event(kind: &str, data: &serde_json::Value) -> Option<bool> {
    if kind != "fire.supervisory" {
        return None;
    }
    match data.get("detail")?.as_str()? {
        "SupervisoryRaised(Authority)" => Some(true),
        "SupervisoryCleared(Authority)" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(role: &str, value: Option<Value>, quality: Quality) -> Sample {
        Sample {
            device: "r07".into(),
            point: "authority".into(),
            role: dcim_points::Role::new(role).unwrap(),
            labels: Default::default(),
            value,
            unit: String::new(),
            quality,
            ts_ms: 1,
        }
    }

    #[test]
    fn nothing_is_refused_outside_authority_control() {
        let a = Authority::default();
        for k in ActionKind::ALL {
            assert_eq!(a.check(k), Ok(()), "{k:?}");
        }
    }

    #[test]
    fn under_control_plant_changes_are_refused_and_ack_comment_stay_allowed() {
        let mut a = Authority::default();
        a.enter("ops", Role::Operator, "fire brigade on site", 100)
            .unwrap();
        let refused: Vec<ActionKind> = ActionKind::ALL
            .into_iter()
            .filter(|k| a.check(*k).is_err())
            .collect();
        assert_eq!(
            refused,
            vec![
                ActionKind::DeviceCommand,
                ActionKind::Maintenance,
                ActionKind::AlarmShelve,
                ActionKind::AlarmOutOfService,
                ActionKind::UserModify,
                ActionKind::TokenRevoke,
                ActionKind::DrillStart,
            ]
        );
        let r = a.check(ActionKind::DeviceCommand).unwrap_err();
        assert!(r.message.contains("authority control"), "{}", r.message);
        assert!(r.message.contains("ops (operator)"), "{}", r.message);
        for k in [
            ActionKind::AlarmAck,
            ActionKind::AlarmComment,
            ActionKind::AlarmUnshelve,
            ActionKind::AlarmReturnToService,
            ActionKind::IncidentWrite,
            ActionKind::UserCreate,
            ActionKind::TokenCreate,
        ] {
            assert_eq!(a.check(k), Ok(()), "{k:?}");
        }
    }

    #[test]
    fn every_alarm_action_name_maps_to_a_kind() {
        for (name, kind) in [
            ("ack", ActionKind::AlarmAck),
            ("shelve", ActionKind::AlarmShelve),
            ("unshelve", ActionKind::AlarmUnshelve),
            ("comment", ActionKind::AlarmComment),
            ("out_of_service", ActionKind::AlarmOutOfService),
            ("return_to_service", ActionKind::AlarmReturnToService),
        ] {
            assert_eq!(ActionKind::of_alarm_action(name), Some(kind));
        }
        assert_eq!(ActionKind::of_alarm_action("bogus"), None);
        let names: std::collections::BTreeSet<_> =
            ActionKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(names.len(), ActionKind::ALL.len());
        for k in ActionKind::ALL {
            let json = serde_json::to_value(k).unwrap();
            assert_eq!(json, k.as_str());
        }
    }

    #[test]
    fn a_key_enters_and_blocks_the_exit_until_it_is_off() {
        let mut a = Authority::default();
        let t = a.key_report("r07", "agent-1", true, 1000).unwrap();
        assert_eq!(t.action(), "authority.enter");
        assert!(a.is_active());
        assert_eq!(
            a.key_report("r07", "agent-1", true, 1100),
            None,
            "no change"
        );
        assert!(matches!(
            a.key_report("r08", "agent-1", true, 1200),
            Some(Transition::KeyOn { .. })
        ));
        assert_eq!(
            a.exit("ops", Role::Operator, "all clear", 2000),
            Err(ChangeError::KeysOn("r07, r08".into()))
        );
        assert!(matches!(
            a.key_report("r07", "agent-1", false, 2100),
            Some(Transition::KeyOff { remaining: 1, .. })
        ));
        assert_eq!(a.key_report("r07", "agent-1", false, 2150), None);
        a.key_report("r08", "agent-1", false, 2200).unwrap();
        assert!(a.is_active(), "turning the keys off does not leave");
        let t = a.exit("ops", Role::Operator, "all clear", 3000).unwrap();
        match &t {
            Transition::Exited {
                entered,
                duration_ms,
                user,
                reason,
            } => {
                assert_eq!(*duration_ms, 2000);
                assert_eq!(user, "ops");
                assert_eq!(reason, "all clear");
                assert!(
                    matches!(&entered.cause, Cause::KeySwitch { device, .. } if device == "r07")
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(t.detail()["duration_ms"], 2000);
        assert!(!a.is_active());
        assert_eq!(a.check(ActionKind::DeviceCommand), Ok(()));
    }

    #[test]
    fn who_may_enter_and_leave_and_reasons() {
        let mut a = Authority::default();
        assert_eq!(
            a.enter("v", Role::Viewer, "x", 1),
            Err(ChangeError::Role("viewer"))
        );
        assert_eq!(
            a.enter("f", Role::FireAuthority, "  ", 1),
            Err(ChangeError::Reason)
        );
        assert_eq!(
            a.enter("f", Role::FireAuthority, &"x".repeat(MAX_REASON + 1), 1),
            Err(ChangeError::Reason)
        );
        assert_eq!(
            a.exit("o", Role::Operator, "x", 1),
            Err(ChangeError::NotActive)
        );
        a.enter("f", Role::FireAuthority, " taking command ", 5)
            .unwrap();
        assert!(matches!(
            &a.active.as_ref().unwrap().cause,
            Cause::User { reason, role, .. } if reason == "taking command" && role == "fire_authority"
        ));
        assert!(matches!(
            a.enter("o", Role::Operator, "again", 6),
            Err(ChangeError::AlreadyActive { since_ms: 5, .. })
        ));
        assert_eq!(
            a.exit("f", Role::FireAuthority, "done", 7),
            Err(ChangeError::Role("fire_authority"))
        );
        assert_eq!(
            a.exit("v", Role::Viewer, "done", 7),
            Err(ChangeError::Role("viewer"))
        );
        assert_eq!(a.exit("a", Role::Admin, "", 7), Err(ChangeError::Reason));
        assert!(a.exit("a", Role::Admin, "handed back", 7).is_ok());
        // A key on while a user entered it: audited as a key, cause stays the user's.
        a.enter("o", Role::Operator, "smoke", 10).unwrap();
        assert!(matches!(
            a.key_report("r01", "ag", true, 11),
            Some(Transition::KeyOn { .. })
        ));
        assert!(matches!(
            a.active.as_ref().unwrap().cause,
            Cause::User { .. }
        ));
    }

    #[test]
    fn key_readings_from_samples_and_events() {
        let good = |v| sample("fire.authority", Some(v), Quality::Good);
        assert_eq!(key_from_sample(&good(Value::Bool(true))), Some(true));
        assert_eq!(key_from_sample(&good(Value::Bool(false))), Some(false));
        assert_eq!(key_from_sample(&good(Value::Number(1.0))), Some(true));
        assert_eq!(key_from_sample(&good(Value::Number(0.0))), Some(false));
        assert_eq!(key_from_sample(&good(Value::Number(f64::NAN))), None);
        assert_eq!(key_from_sample(&good(Value::Text("??".into()))), None);
        assert_eq!(
            key_from_sample(&sample(
                "fire.authority",
                Some(Value::Bool(false)),
                Quality::Stale
            )),
            None,
            "a stale reading does not turn a key off"
        );
        assert_eq!(
            key_from_sample(&sample("fire.authority", None, Quality::CommLost)),
            None
        );
        assert_eq!(
            key_from_sample(&sample(
                "fire.manual_only",
                Some(Value::Bool(true)),
                Quality::Good
            )),
            None
        );
        let ev = |detail: &str| serde_json::json!({"detail": detail});
        assert_eq!(
            key_from_event("fire.supervisory", &ev("SupervisoryRaised(Authority)")),
            Some(true)
        );
        assert_eq!(
            key_from_event("fire.supervisory", &ev("SupervisoryCleared(Authority)")),
            Some(false)
        );
        assert_eq!(
            key_from_event("fire.supervisory", &ev("SupervisoryRaised(OffGas)")),
            None
        );
        assert_eq!(
            key_from_event("fire.stage", &ev("SupervisoryRaised(Authority)")),
            None
        );
        assert_eq!(
            key_from_event("fire.supervisory", &serde_json::json!(1)),
            None
        );
    }

    #[test]
    fn the_state_round_trips_through_json_and_the_view_names_refusals() {
        let mut a = Authority::default();
        a.key_report("r07", "agent-1", true, 1000);
        let json = serde_json::to_value(&a).unwrap();
        let back: Authority = serde_json::from_value(json).unwrap();
        assert_eq!(back, a);
        let v = serde_json::to_value(a.view(4000)).unwrap();
        assert_eq!(v["active"], true);
        assert_eq!(v["duration_ms"], 3000);
        assert_eq!(v["cause"]["by"], "key_switch");
        assert_eq!(v["keys_on"][0]["device"], "r07");
        let kinds: Vec<&str> = v["refused_actions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["kind"].as_str().unwrap())
            .collect();
        assert!(kinds.contains(&"device_command") && !kinds.contains(&"alarm_ack"));
        let idle = serde_json::to_value(Authority::default().view(0)).unwrap();
        assert_eq!(idle["active"], false);
        // Not under authority control: the times and the cause are null, not absent (the
        // console tells "not active" from "no answer").
        assert!(idle["since_ms"].is_null() && idle.get("since_ms").is_some());
        assert!(idle.get("cause").is_some_and(|c| c.is_null()));
    }
}
