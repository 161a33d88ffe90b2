//! One alarm's ISA-18.2 state machine.
//!
//! The visible [`AlarmState`] is the *base* state (normal, unacknowledged, acknowledged,
//! returned-to-normal unacknowledged), unless an *overlay* hides it: shelved, suppressed by
//! design, suppressed by maintenance, or out of service. While an overlay is on, the process
//! condition is still tracked; when the overlay goes, the alarm returns to its base state
//! adjusted for what the condition did meanwhile (see [`Alarm::base_after_overlay`]).

use serde::{Deserialize, Serialize};

/// ISA-18.2 alarm states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmState {
    Normal,
    Unacknowledged,
    Acknowledged,
    /// Returned to normal, not yet acknowledged.
    RtnUnacknowledged,
    Shelved,
    SuppressedByDesign,
    SuppressedByMaintenance,
    OutOfService,
}

impl AlarmState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlarmState::Normal => "normal",
            AlarmState::Unacknowledged => "unacknowledged",
            AlarmState::Acknowledged => "acknowledged",
            AlarmState::RtnUnacknowledged => "rtn_unacknowledged",
            AlarmState::Shelved => "shelved",
            AlarmState::SuppressedByDesign => "suppressed_by_design",
            AlarmState::SuppressedByMaintenance => "suppressed_by_maintenance",
            AlarmState::OutOfService => "out_of_service",
        }
    }

    /// Whether an operator still has to acknowledge it (base state).
    pub fn needs_ack(self) -> bool {
        matches!(
            self,
            AlarmState::Unacknowledged | AlarmState::RtnUnacknowledged
        )
    }

    fn is_base(self) -> bool {
        matches!(
            self,
            AlarmState::Normal
                | AlarmState::Unacknowledged
                | AlarmState::Acknowledged
                | AlarmState::RtnUnacknowledged
        )
    }
}

/// The transitions ISA-18.2 (and this engine) allows. Every output record satisfies it.
pub fn valid_transition(from: AlarmState, to: AlarmState) -> bool {
    use AlarmState::*;
    if from == to {
        return false;
    }
    match (from, to) {
        (Normal, Unacknowledged) => true,
        (Unacknowledged, Acknowledged) | (Unacknowledged, RtnUnacknowledged) => true,
        (Acknowledged, Normal) => true,
        (RtnUnacknowledged, Normal) | (RtnUnacknowledged, Unacknowledged) => true,
        // Any base state can be shelved, suppressed or taken out of service...
        (b, Shelved | SuppressedByDesign | SuppressedByMaintenance | OutOfService)
            if b.is_base() =>
        {
            true
        }
        // ...and an overlay can give way to a stronger one (out of service beats maintenance
        // beats design beats shelved)...
        (Shelved, SuppressedByDesign | SuppressedByMaintenance | OutOfService) => true,
        (SuppressedByDesign, SuppressedByMaintenance | OutOfService) => true,
        (SuppressedByMaintenance, OutOfService) => true,
        // ...or to a weaker one that is still on when a stronger one ends...
        (OutOfService, SuppressedByMaintenance | SuppressedByDesign | Shelved) => true,
        (SuppressedByMaintenance, SuppressedByDesign | Shelved) => true,
        (SuppressedByDesign, Shelved) => true,
        // ...and every overlay returns to a base state.
        (Shelved | SuppressedByDesign | SuppressedByMaintenance | OutOfService, b) => b.is_base(),
        _ => false,
    }
}

/// Active overlays of one alarm; the strongest one is visible.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overlays {
    /// Shelved until this time (ms), by whom.
    pub shelved_until: Option<i64>,
    pub shelved_by: Option<String>,
    /// Suppressed by design: the cause (e.g. "feed-a lost").
    pub suppressed_by: Option<String>,
    pub maintenance: bool,
    pub out_of_service_by: Option<String>,
}

impl Overlays {
    pub fn visible(&self) -> Option<AlarmState> {
        if self.out_of_service_by.is_some() {
            Some(AlarmState::OutOfService)
        } else if self.maintenance {
            Some(AlarmState::SuppressedByMaintenance)
        } else if self.suppressed_by.is_some() {
            Some(AlarmState::SuppressedByDesign)
        } else if self.shelved_until.is_some() {
            Some(AlarmState::Shelved)
        } else {
            None
        }
    }
}

/// One alarm instance (a rule applied to one subject).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alarm {
    /// `rule:subject`, e.g. `feed-breaker:meter-a` or `redundancy:power`.
    pub id: String,
    pub rule: String,
    /// Device or subsystem the alarm is about.
    pub subject: String,
    /// Component of the site model, when known (for suppression by design and grouping).
    pub component: Option<String>,
    pub message: String,
    /// Incident grade 1 (worst) to 3; may be raised while the alarm lasts.
    pub grade: u8,
    /// The grade the rule gave it (before any raise).
    pub base_grade: u8,
    pub base: AlarmState,
    pub overlays: Overlays,
    /// Debounced process condition.
    pub active: bool,
    /// Raw condition (before on/off delays) and since when it has had that value.
    pub raw: bool,
    pub raw_since_ms: i64,
    /// When the alarm last went from normal to active (for recovery-time escalation).
    pub active_since_ms: Option<i64>,
    pub last_change_ms: i64,
    pub acked_by: Option<String>,
    /// Latest value that drove the condition, when numeric.
    pub value: Option<f64>,
    /// Timestamps of recent activations (chattering detection); persisted in
    /// [`crate::Snapshot::chatter`], not in the alarm's own serialised form.
    #[serde(skip)]
    pub(crate) recent_activations: Vec<i64>,
    #[serde(default)]
    pub(crate) grade_raised: bool,
}

impl Alarm {
    pub fn new(id: String, rule: String, subject: String, grade: u8, now_ms: i64) -> Alarm {
        Alarm {
            id,
            rule,
            subject,
            component: None,
            message: String::new(),
            grade,
            base_grade: grade,
            base: AlarmState::Normal,
            overlays: Overlays::default(),
            active: false,
            raw: false,
            raw_since_ms: now_ms,
            active_since_ms: None,
            last_change_ms: now_ms,
            acked_by: None,
            value: None,
            recent_activations: Vec::new(),
            grade_raised: false,
        }
    }

    /// The state operators see.
    pub fn state(&self) -> AlarmState {
        self.overlays.visible().unwrap_or(self.base)
    }

    /// Whether the alarm belongs on the operators' list: every state but normal, except an
    /// alarm that is quiet (condition clear, nothing to acknowledge) and hidden only because
    /// its equipment is in maintenance or lost its supply upstream. Such an alarm hides
    /// nothing; listing it would show, say, "UPS on battery (suppressed)" for a UPS on mains.
    /// Shelving and out-of-service are an operator's decision about the alarm itself and stay
    /// listed.
    pub fn is_listed(&self) -> bool {
        if self.state() == AlarmState::Normal {
            return false;
        }
        let o = &self.overlays;
        let quiet = self.base == AlarmState::Normal && !self.active && !self.raw;
        !(quiet && o.shelved_until.is_none() && o.out_of_service_by.is_none())
    }

    /// Base state after a process change (no overlay involved).
    pub(crate) fn base_on_condition(base: AlarmState, active: bool) -> AlarmState {
        use AlarmState::*;
        match (base, active) {
            (Normal, true) => Unacknowledged,
            (Unacknowledged, false) => RtnUnacknowledged,
            (Acknowledged, false) => Normal,
            (RtnUnacknowledged, true) => Unacknowledged,
            (b, _) => b,
        }
    }

    /// Base state when the last overlay goes: the state it had, adjusted for the condition.
    pub fn base_after_overlay(base: AlarmState, active: bool) -> AlarmState {
        Alarm::base_on_condition(base, active)
    }

    /// Base state after an acknowledgement; `None` when there is nothing to acknowledge.
    pub(crate) fn base_on_ack(base: AlarmState) -> Option<AlarmState> {
        match base {
            AlarmState::Unacknowledged => Some(AlarmState::Acknowledged),
            AlarmState::RtnUnacknowledged => Some(AlarmState::Normal),
            _ => None,
        }
    }
}
