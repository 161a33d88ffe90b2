//! The bounded event log: every transition with its time, alarm > supervisory > trouble.

use core::fmt;

use heapless::Vec;

use crate::source::Invalidity;
use crate::types::{DeciC, SourceId, SourceSet, Stage, Supervisory, Tenths, Trouble};

/// Capacity of the event log.
pub const EVENT_LOG_CAPACITY: usize = 64;

/// Event priority class; the derived order is the priority (`Alarm` highest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventClass {
    /// A fault condition (lowest priority).
    Trouble = 0,
    /// A supervisory condition or an operator action.
    Supervisory = 1,
    /// A fire alarm or a suppression action (highest priority, never evicted for another class).
    Alarm = 2,
}

impl EventClass {
    /// Stable name.
    pub const fn name(self) -> &'static str {
        match self {
            EventClass::Trouble => "trouble",
            EventClass::Supervisory => "supervisory",
            EventClass::Alarm => "alarm",
        }
    }
}

/// Independent evidence that corroborated a stage 2+ decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Corroborator {
    /// A second valid temperature source at or above the previous threshold.
    Temperature {
        /// The second source.
        source: SourceId,
        /// Its confirmed value.
        value: DeciC,
    },
    /// Confirmed smoke.
    Smoke,
    /// Off-gas at or above the supervisory level.
    OffGas {
        /// The confirmed value (tenths of % LFL).
        value: i32,
    },
}

/// Why a timed stage (coolant, room gas) found that the fire has not fallen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotFallen {
    /// A valid source at or above the stage 1 threshold has not fallen `*_min_fall` below its
    /// own peak since the previous stage.
    Hot {
        /// The source.
        source: SourceId,
        /// Its peak since the previous stage.
        peak: DeciC,
        /// Its confirmed value now.
        now: DeciC,
    },
    /// A source was lost (fault, open, stale ...) while at or above the stage 1 threshold: a
    /// sensor the fire destroyed counts as still hot.
    LostWhileHot {
        /// The source.
        source: SourceId,
        /// Its last valid value.
        last: DeciC,
    },
    /// No temperature source is valid: the fire cannot be shown to be out.
    NoValidTemperature,
}

/// Why a stage was entered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// A confirmed temperature reached the stage threshold.
    Temperature {
        /// The governing source.
        source: SourceId,
        /// Its confirmed value.
        value: DeciC,
        /// The corroboration by an independent source (stage 2 and later).
        corroborated_by: Option<Corroborator>,
    },
    /// Confirmed off-gas reached the stage 1 level.
    OffGas {
        /// Tenths of % LFL.
        value: i32,
    },
    /// Off-gas at or above the supervisory level for `offgas_sustained_ms`.
    OffGasSustained {
        /// The latest confirmed value, if the detector is still valid (tenths of % LFL).
        value: Option<i32>,
    },
    /// Off-gas at or above the supervisory level and rising by `offgas_ror_rise` within its
    /// window.
    OffGasRising {
        /// Confirmed value (tenths of % LFL).
        value: i32,
        /// Rise within the window (tenths of % LFL).
        rise: i32,
    },
    /// Confirmed smoke together with off-gas at or above the supervisory level (independent
    /// detectors).
    SmokeAndOffGas {
        /// Off-gas, tenths of % LFL.
        value: i32,
    },
    /// Confirmed smoke together with a camera hot spot.
    SmokeAndHotSpot {
        /// The camera's confirmed value.
        camera: DeciC,
    },
    /// Confirmed smoke while no temperature source is valid.
    SmokeNoTemperature,
    /// Confirmed smoke alone (pre-alarm).
    Smoke,
    /// The governing temperature rose by `rise` within the rate-of-rise window.
    RateOfRise {
        /// Rise in tenths.
        rise: DeciC,
    },
    /// The fire has not fallen after the previous stage's delay.
    NotFallen(NotFallen),
    /// In stage 2 every temperature source was lost, one of them while at or above the stage 2
    /// threshold: the fire destroyed the evidence, escalation goes on.
    EvidenceLost {
        /// The source lost while hottest.
        source: SourceId,
        /// Its last valid value.
        last: DeciC,
    },
    /// The rack's local manual release (agent).
    ManualRelease,
    /// The room's gas release (a person decided to flood the room).
    RoomGasRelease,
}

/// Why a local reset was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetRefusal {
    /// A valid temperature reading is at or above `reset_max`.
    TemperatureHigh {
        /// The source.
        source: SourceId,
        /// Its latest value.
        value: DeciC,
    },
    /// Smoke is present.
    SmokePresent,
    /// Off-gas at or above the supervisory level.
    OffGasPresent,
    /// A fitted source is not valid (fault, open, stale, disagreeing ...): the fire cannot be
    /// shown to be out there. Holding the reset key for `reset_override_ms` takes it out of
    /// service.
    SourceInvalid {
        /// The first invalid source.
        source: SourceId,
    },
    /// No valid temperature source: the fire cannot be shown to be out (no override).
    NoValidTemperature,
}

impl fmt::Display for ResetRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResetRefusal::TemperatureHigh { source, value } => write!(
                f,
                "{source} at {} C is at or above the reset threshold",
                Tenths(*value)
            ),
            ResetRefusal::SmokePresent => f.write_str("smoke present"),
            ResetRefusal::OffGasPresent => f.write_str("off-gas present"),
            ResetRefusal::SourceInvalid { source } => write!(
                f,
                "{source} is not valid (hold the reset key to take it out of service)"
            ),
            ResetRefusal::NoValidTemperature => f.write_str("no valid temperature source"),
        }
    }
}

/// Why a network command was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Test mode is refused while any stage is active.
    StageActive,
    /// Only a faulted (invalid) sensor can be inhibited.
    SensorNotFaulted,
    /// The sensor is not fitted.
    SensorNotFitted,
    /// Another sensor is already inhibited (one at a time).
    AnotherSensorInhibited,
    /// The inhibit duration is zero or longer than `inhibit_max_ms`.
    BadDuration,
    /// The time given is not a plausible wall-clock time.
    BadTime,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refused::StageActive => "refused: a fire stage is active",
            Refused::SensorNotFaulted => "refused: only a faulted sensor can be inhibited",
            Refused::SensorNotFitted => "refused: sensor not fitted",
            Refused::AnotherSensorInhibited => "refused: another sensor is already inhibited",
            Refused::BadDuration => "refused: inhibit duration must be 1 ms .. inhibit_max_ms",
            Refused::BadTime => "refused: implausible wall-clock time",
        })
    }
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A stage was entered (one event per stage, even when several are entered at once).
    StageEntered {
        /// The stage.
        stage: Stage,
        /// Why.
        cause: Cause,
    },
    /// The local reset key was turned and the reset was accepted.
    ResetAccepted,
    /// The local reset key was held for `reset_override_ms` and the reset was accepted with
    /// these invalid sources taken out of service (the audit record of that local decision).
    ResetOverride {
        /// The sources that were not valid at the reset.
        out_of_service: SourceSet,
    },
    /// The local reset key was turned and the reset was refused.
    ResetRefused(ResetRefusal),
    /// The rack's local manual release was operated.
    ManualRelease,
    /// The room's gas release was operated (the gas follows the pre-discharge warning).
    RoomGasRelease,
    /// Agent released (automatic, or by manual release).
    AgentReleased,
    /// Agent held back because manual-only mode is on.
    AgentInhibitedManualOnly,
    /// The room gas pre-discharge warning started (release after the warning delay).
    GasWarningStarted,
    /// The hold-to-abort switch holds the room gas (the warning restarts when it is let go).
    GasHeld,
    /// Room gas waits for a manual release because manual-only mode is on.
    GasWaitingManualOnly,
    /// Room gas released.
    GasReleased,
    /// Battery isolated after losing every valid temperature source.
    BatteryIsolated,
    /// A source became invalid.
    SourceInvalid {
        /// The source.
        source: SourceId,
        /// Why.
        why: Invalidity,
    },
    /// A source became valid again.
    SourceValid {
        /// The source.
        source: SourceId,
    },
    /// A trouble (other than an invalid source) was raised.
    TroubleRaised(Trouble),
    /// A trouble (other than an invalid source) cleared.
    TroubleCleared(Trouble),
    /// A supervisory signal was raised.
    SupervisoryRaised(Supervisory),
    /// A supervisory signal cleared.
    SupervisoryCleared(Supervisory),
    /// Network: buzzer acknowledged.
    Acknowledged,
    /// Network: wall-clock time set (unix ms).
    TimeSynced {
        /// The wall-clock time received.
        unix_ms: i64,
    },
    /// Network: test mode started.
    TestModeStarted,
    /// Test mode ended (command, expiry, or a real detection).
    TestModeEnded {
        /// True if a real detection ended it.
        by_detection: bool,
    },
    /// Network: one faulted sensor inhibited.
    SensorInhibited {
        /// The sensor.
        source: SourceId,
        /// For how long.
        duration_ms: u32,
    },
    /// The inhibit of a sensor ended.
    InhibitEnded {
        /// The sensor.
        source: SourceId,
    },
    /// A network command was refused.
    CommandRefused(Refused),
    /// The logic was restored from a latch record after a controller restart.
    Restored {
        /// The restored stage.
        stage: Stage,
    },
}

impl EventKind {
    /// The priority class of this event.
    pub fn class(&self) -> EventClass {
        match self {
            EventKind::StageEntered { stage, .. } => {
                if *stage >= Stage::Stage1 {
                    EventClass::Alarm
                } else {
                    EventClass::Supervisory
                }
            }
            EventKind::ManualRelease
            | EventKind::RoomGasRelease
            | EventKind::AgentReleased
            | EventKind::GasWarningStarted
            | EventKind::GasReleased => EventClass::Alarm,
            EventKind::SourceInvalid { .. }
            | EventKind::SourceValid { .. }
            | EventKind::TroubleRaised(_)
            | EventKind::TroubleCleared(_) => EventClass::Trouble,
            _ => EventClass::Supervisory,
        }
    }
}

fn write_corroborator(f: &mut fmt::Formatter<'_>, c: &Corroborator) -> fmt::Result {
    match c {
        Corroborator::Temperature { source, value } => {
            write!(f, "{source} at {} C", Tenths(*value))
        }
        Corroborator::Smoke => f.write_str("smoke"),
        Corroborator::OffGas { value } => write!(f, "off-gas {} % LFL", Tenths(*value)),
    }
}

impl fmt::Display for NotFallen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotFallen::Hot { source, peak, now } => write!(
                f,
                "{source} at {} C has not fallen enough from its peak {} C",
                Tenths(*now),
                Tenths(*peak)
            ),
            NotFallen::LostWhileHot { source, last } => write!(
                f,
                "{source} was lost at {} C and counts as still hot",
                Tenths(*last)
            ),
            NotFallen::NoValidTemperature => {
                f.write_str("no valid temperature: the fire cannot be shown to be out")
            }
        }
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Temperature {
                source,
                value,
                corroborated_by,
            } => {
                write!(f, "{source} at {} C confirmed", Tenths(*value))?;
                if let Some(c) = corroborated_by {
                    f.write_str(", corroborated by ")?;
                    write_corroborator(f, c)?;
                }
                Ok(())
            }
            Cause::OffGas { value } => write!(f, "off-gas {} % LFL confirmed", Tenths(*value)),
            Cause::OffGasSustained { value } => {
                f.write_str("off-gas at or above the supervisory level for the sustained time")?;
                match value {
                    Some(v) => write!(f, " (now {} % LFL)", Tenths(*v)),
                    None => f.write_str(" (detector lost while high)"),
                }
            }
            Cause::OffGasRising { value, rise } => write!(
                f,
                "off-gas {} % LFL rising {} % LFL within the window",
                Tenths(*value),
                Tenths(*rise)
            ),
            Cause::SmokeAndOffGas { value } => {
                write!(f, "smoke with off-gas {} % LFL", Tenths(*value))
            }
            Cause::SmokeAndHotSpot { camera } => {
                write!(f, "smoke with camera hot spot {} C", Tenths(*camera))
            }
            Cause::SmokeNoTemperature => f.write_str("smoke with no valid temperature source"),
            Cause::Smoke => f.write_str("smoke confirmed"),
            Cause::RateOfRise { rise } => {
                write!(f, "temperature rose {} C within the window", Tenths(*rise))
            }
            Cause::NotFallen(n) => write!(f, "{n}"),
            Cause::EvidenceLost { source, last } => write!(
                f,
                "every temperature source lost, {source} at {} C: escalation goes on",
                Tenths(*last)
            ),
            Cause::ManualRelease => f.write_str("manual release"),
            Cause::RoomGasRelease => f.write_str("room gas release"),
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventKind::StageEntered { stage, cause } => write!(f, "{stage}: {cause}"),
            EventKind::ResetAccepted => f.write_str("local reset accepted"),
            EventKind::ResetOverride { out_of_service } => {
                f.write_str("local reset accepted (key held) with out of service:")?;
                for s in out_of_service.iter() {
                    write!(f, " {s}")?;
                }
                Ok(())
            }
            EventKind::ResetRefused(r) => write!(f, "local reset refused: {r}"),
            EventKind::ManualRelease => f.write_str("manual release operated"),
            EventKind::RoomGasRelease => f.write_str("room gas release operated"),
            EventKind::AgentReleased => f.write_str("agent released"),
            EventKind::AgentInhibitedManualOnly => f.write_str("agent held back: manual-only mode"),
            EventKind::GasWarningStarted => f.write_str("room gas pre-discharge warning started"),
            EventKind::GasHeld => f.write_str("room gas held by hold switch"),
            EventKind::GasWaitingManualOnly => {
                f.write_str("room gas waits for manual release: manual-only mode")
            }
            EventKind::GasReleased => f.write_str("room gas released"),
            EventKind::BatteryIsolated => {
                f.write_str("battery isolated: no valid temperature source")
            }
            EventKind::SourceInvalid { source, why } => write!(f, "{source} invalid: {why}"),
            EventKind::SourceValid { source } => write!(f, "{source} valid again"),
            EventKind::TroubleRaised(t) => write!(f, "trouble: {}", t.name()),
            EventKind::TroubleCleared(t) => write!(f, "trouble cleared: {}", t.name()),
            EventKind::SupervisoryRaised(s) => write!(f, "supervisory: {}", s.name()),
            EventKind::SupervisoryCleared(s) => write!(f, "supervisory cleared: {}", s.name()),
            EventKind::Acknowledged => f.write_str("buzzer acknowledged"),
            EventKind::TimeSynced { unix_ms } => write!(f, "time synchronised to {unix_ms}"),
            EventKind::TestModeStarted => f.write_str("test mode started"),
            EventKind::TestModeEnded { by_detection } => {
                if *by_detection {
                    f.write_str("test mode ended by a real detection")
                } else {
                    f.write_str("test mode ended")
                }
            }
            EventKind::SensorInhibited {
                source,
                duration_ms,
            } => write!(f, "{source} inhibited for {duration_ms} ms"),
            EventKind::InhibitEnded { source } => write!(f, "{source} inhibit ended"),
            EventKind::CommandRefused(r) => write!(f, "network command {r}"),
            EventKind::Restored { stage } => write!(f, "restored after restart in {stage}"),
        }
    }
}

/// One logged event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// Sequence number, increasing by one per event logged (including evicted ones).
    pub seq: u32,
    /// Logic time (`now_ms` of the cycle or command that produced it).
    pub t_ms: u64,
    /// What happened.
    pub kind: EventKind,
}

impl Event {
    /// The priority class.
    pub fn class(&self) -> EventClass {
        self.kind.class()
    }
}

/// A bounded FIFO of events. When full, the oldest event of the lowest class present is
/// evicted, provided that class is not above the new event's class; otherwise the new event
/// is dropped. So an alarm is only ever lost if the whole log is alarms (counted in
/// [`EventLog::dropped_alarms`], and raised as the `event_log_overflow` trouble).
#[derive(Debug, Clone)]
pub struct EventLog {
    entries: Vec<Event, EVENT_LOG_CAPACITY>,
    next_seq: u32,
    dropped: u32,
    dropped_alarms: u32,
}

impl Default for EventLog {
    fn default() -> Self {
        EventLog::new(0)
    }
}

impl EventLog {
    /// An empty log whose next sequence number is `next_seq`.
    pub const fn new(next_seq: u32) -> EventLog {
        EventLog {
            entries: Vec::new(),
            next_seq,
            dropped: 0,
            dropped_alarms: 0,
        }
    }

    /// Logs an event, evicting by priority if full. Returns the event's sequence number.
    pub fn push(&mut self, t_ms: u64, kind: EventKind) -> u32 {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        let ev = Event { seq, t_ms, kind };
        if self.entries.is_full() {
            let lowest = self.entries.iter().map(Event::class).min();
            let victim = lowest
                .filter(|c| *c <= ev.class())
                .and_then(|c| self.entries.iter().position(|e| e.class() == c));
            self.dropped = self.dropped.saturating_add(1);
            match victim {
                Some(i) if i < self.entries.len() => {
                    let old = self.entries.remove(i);
                    if old.class() == EventClass::Alarm {
                        self.dropped_alarms = self.dropped_alarms.saturating_add(1);
                    }
                }
                _ => {
                    // The new event is of a lower class than everything logged: drop it.
                    if ev.class() == EventClass::Alarm {
                        self.dropped_alarms = self.dropped_alarms.saturating_add(1);
                    }
                    return seq;
                }
            }
        }
        if self.entries.push(ev).is_err() {
            // Unreachable: a slot was freed above. Counted rather than ignored.
            self.dropped = self.dropped.saturating_add(1);
        }
        seq
    }

    /// Removes and returns the oldest event.
    pub fn pop(&mut self) -> Option<Event> {
        if self.entries.is_empty() {
            None
        } else {
            Some(self.entries.remove(0))
        }
    }

    /// The events, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Event> {
        self.entries.iter()
    }

    /// Number of events held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if no event is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The sequence number the next event will get.
    pub fn next_seq(&self) -> u32 {
        self.next_seq
    }

    /// Events lost to overflow (any class).
    pub fn dropped(&self) -> u32 {
        self.dropped
    }

    /// Alarms lost to overflow (only possible when the whole log is alarms).
    pub fn dropped_alarms(&self) -> u32 {
        self.dropped_alarms
    }
}
