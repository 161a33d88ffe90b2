//! Plain data types shared by the logic, the event log and the persistence record.

use core::fmt;

/// A temperature in tenths of a degree Celsius (`615` is 61.5 C). Off-gas concentrations use the
/// same fixed-point scale for % LFL.
pub type DeciC = i32;

/// Formats a tenths value as a decimal number (`615` -> `61.5`, `-5` -> `-0.5`).
pub(crate) struct Tenths(pub i32);

impl fmt::Display for Tenths {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = i64::from(self.0);
        let sign = if v < 0 { "-" } else { "" };
        let a = v.unsigned_abs();
        write!(f, "{sign}{}.{}", a / 10, a % 10)
    }
}

/// The latched fire stage. The numeric code matches the `fire.stage` point role
/// (0 normal, 1 pre-alarm, 2..6 stages 1..5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Stage {
    /// No detection.
    #[default]
    Normal = 0,
    /// Warning only: temperature above the pre-alarm level, rate of rise, off-gas or smoke.
    PreAlarm = 1,
    /// Battery contactor open and fire blanket dropped.
    Stage1 = 2,
    /// Extinguishing patch fired.
    Stage2 = 3,
    /// Agent discharged through the rack nozzles.
    Stage3 = 4,
    /// Coolant water, continuously (never stopped by the logic).
    Stage4 = 5,
    /// Room extinguishing gas requested.
    Stage5 = 6,
}

impl Stage {
    /// All stages in order.
    pub const ALL: [Stage; 7] = [
        Stage::Normal,
        Stage::PreAlarm,
        Stage::Stage1,
        Stage::Stage2,
        Stage::Stage3,
        Stage::Stage4,
        Stage::Stage5,
    ];

    /// The numeric code (0..=6).
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The stage for a numeric code, if valid.
    pub const fn from_code(code: u8) -> Option<Stage> {
        match code {
            0 => Some(Stage::Normal),
            1 => Some(Stage::PreAlarm),
            2 => Some(Stage::Stage1),
            3 => Some(Stage::Stage2),
            4 => Some(Stage::Stage3),
            5 => Some(Stage::Stage4),
            6 => Some(Stage::Stage5),
            _ => None,
        }
    }

    /// A stable lowercase name (`normal`, `pre_alarm`, `stage1` .. `stage5`).
    pub const fn name(self) -> &'static str {
        match self {
            Stage::Normal => "normal",
            Stage::PreAlarm => "pre_alarm",
            Stage::Stage1 => "stage1",
            Stage::Stage2 => "stage2",
            Stage::Stage3 => "stage3",
            Stage::Stage4 => "stage4",
            Stage::Stage5 => "stage5",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The supervised sensor sources of one rack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceId {
    /// BMS maximum cell temperature.
    Bms = 0,
    /// Rack temperature sensor 1 (redundant partner of sensor 2).
    RackTemp1 = 1,
    /// Rack temperature sensor 2 (redundant partner of sensor 1).
    RackTemp2 = 2,
    /// Thermal camera maximum over the rack's region.
    Camera = 3,
    /// Smoke detector.
    Smoke = 4,
    /// Off-gas detector (% LFL), optional.
    OffGas = 5,
}

impl SourceId {
    /// All sources in order.
    pub const ALL: [SourceId; 6] = [
        SourceId::Bms,
        SourceId::RackTemp1,
        SourceId::RackTemp2,
        SourceId::Camera,
        SourceId::Smoke,
        SourceId::OffGas,
    ];
    /// The temperature sources.
    pub const TEMPERATURES: [SourceId; 4] = [
        SourceId::Bms,
        SourceId::RackTemp1,
        SourceId::RackTemp2,
        SourceId::Camera,
    ];

    /// Stable name, equal to the trace column without its unit suffix.
    pub const fn name(self) -> &'static str {
        match self {
            SourceId::Bms => "bms_max",
            SourceId::RackTemp1 => "rack_temp1",
            SourceId::RackTemp2 => "rack_temp2",
            SourceId::Camera => "camera_max",
            SourceId::Smoke => "smoke",
            SourceId::OffGas => "offgas",
        }
    }

    /// Parses a name produced by [`SourceId::name`].
    pub fn from_name(name: &str) -> Option<SourceId> {
        SourceId::ALL.into_iter().find(|s| s.name() == name)
    }

    /// True for the four temperature sources.
    pub const fn is_temperature(self) -> bool {
        matches!(
            self,
            SourceId::Bms | SourceId::RackTemp1 | SourceId::RackTemp2 | SourceId::Camera
        )
    }

    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for SourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of [`SourceId`]s (bit n = the source with discriminant n).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct SourceSet(u8);

impl SourceSet {
    /// The empty set.
    pub const NONE: SourceSet = SourceSet(0);
    /// True if `id` is in the set.
    pub const fn contains(self, id: SourceId) -> bool {
        self.0 & (1u8 << (id as u8)) != 0
    }
    /// Adds `id`.
    pub fn insert(&mut self, id: SourceId) {
        self.0 |= 1u8 << (id as u8);
    }
    /// True if empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// The raw bits.
    pub const fn bits(self) -> u8 {
        self.0
    }
    /// Iterates the sources in the set, in [`SourceId::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = SourceId> {
        SourceId::ALL.into_iter().filter(move |s| self.contains(*s))
    }
}

/// One analogue sample (temperature or off-gas), in tenths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Analog {
    /// No new sample this cycle.
    #[default]
    NoSample,
    /// A raw reading in tenths (may still be an open/short code or out of range).
    Value(i32),
    /// The sensor itself reports a fault.
    Fault,
}

/// One digital sample: a detector (smoke), a switch or an output feedback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Digital {
    /// No new sample this cycle (switches and feedbacks keep their last level).
    #[default]
    NoSample,
    /// Normal / not active.
    Off,
    /// Alarm / active.
    On,
    /// Line or device fault.
    Fault,
}

/// Everything the logic reads in one control cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Inputs {
    /// BMS maximum cell temperature.
    pub bms_max: Analog,
    /// Rack temperature sensor 1.
    pub rack_temp1: Analog,
    /// Rack temperature sensor 2.
    pub rack_temp2: Analog,
    /// Thermal camera maximum for the rack region.
    pub camera_max: Analog,
    /// Smoke detector (`On` = smoke).
    pub smoke: Digital,
    /// Off-gas detector, tenths of % LFL.
    pub offgas: Analog,
    /// Feedbacks, indexed like [`Action::FEEDBACK`]: contactor open, blanket down, patch fired,
    /// agent pressure, coolant flow, gas released.
    pub feedback: [Digital; 6],
    /// Local reset key (a reset is attempted on the Off -> On edge; held for
    /// `reset_override_ms` it resets with invalid sources out of service).
    pub reset: Digital,
    /// Local hold-to-abort switch for the room gas (works only while held; a faulted line
    /// counts as held).
    pub hold: Digital,
    /// The rack's local manual release of the agent (acts on the Off -> On edge; an input
    /// already on when the logic starts or restarts is not a press until seen off).
    pub manual_release: Digital,
    /// The room's manual gas release (acts on the Off -> On edge, like `manual_release`): the
    /// gas follows the full pre-discharge warning, the hold switch holds it. Leave it
    /// `NoSample` where no such input is wired.
    pub room_gas_release: Digital,
    /// Manual-only mode (room occupied): automatic agent and gas disabled.
    pub manual_only: Digital,
    /// Fire-authority key switch: forces all battery power off.
    pub authority: Digital,
}

impl Inputs {
    /// The analogue sample of a source (smoke, which is digital, gives `NoSample`).
    pub(crate) fn analog(&self, id: SourceId) -> Analog {
        match id {
            SourceId::Bms => self.bms_max,
            SourceId::RackTemp1 => self.rack_temp1,
            SourceId::RackTemp2 => self.rack_temp2,
            SourceId::Camera => self.camera_max,
            SourceId::OffGas => self.offgas,
            SourceId::Smoke => match self.smoke {
                Digital::NoSample => Analog::NoSample,
                Digital::Off => Analog::Value(0),
                Digital::On => Analog::Value(1),
                Digital::Fault => Analog::Fault,
            },
        }
    }
}

/// One suppression or power action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Battery contactor open (power cut).
    ContactorOpen = 0,
    /// Fire blanket dropped.
    BlanketDrop = 1,
    /// Extinguishing patch fired.
    PatchFire = 2,
    /// Agent discharged through the rack nozzles.
    AgentRelease = 3,
    /// Coolant water on.
    CoolantOn = 4,
    /// Room gas released.
    GasRelease = 5,
    /// Room gas pre-discharge warning (sounders) active.
    GasWarning = 6,
}

impl Action {
    /// All actions in bit order.
    pub const ALL: [Action; 7] = [
        Action::ContactorOpen,
        Action::BlanketDrop,
        Action::PatchFire,
        Action::AgentRelease,
        Action::CoolantOn,
        Action::GasRelease,
        Action::GasWarning,
    ];
    /// The actions with a feedback input, in [`Inputs::feedback`] order.
    pub const FEEDBACK: [Action; 6] = [
        Action::ContactorOpen,
        Action::BlanketDrop,
        Action::PatchFire,
        Action::AgentRelease,
        Action::CoolantOn,
        Action::GasRelease,
    ];

    /// Stable name.
    pub const fn name(self) -> &'static str {
        match self {
            Action::ContactorOpen => "contactor_open",
            Action::BlanketDrop => "blanket_drop",
            Action::PatchFire => "patch_fire",
            Action::AgentRelease => "agent_release",
            Action::CoolantOn => "coolant_on",
            Action::GasRelease => "gas_release",
            Action::GasWarning => "gas_warning",
        }
    }

    const fn bit(self) -> u16 {
        1u16 << (self as u16)
    }
}

/// A set of [`Action`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Actions(u16);

impl Actions {
    /// No action.
    pub const NONE: Actions = Actions(0);
    const MASK: u16 = 0x7f;

    /// True if `a` is in the set.
    pub const fn contains(self, a: Action) -> bool {
        self.0 & a.bit() != 0
    }
    /// Adds `a`.
    pub fn insert(&mut self, a: Action) {
        self.0 |= a.bit();
    }
    /// The raw bits (bit n = `Action` with discriminant n).
    pub const fn bits(self) -> u16 {
        self.0
    }
    /// From raw bits; unknown bits are rejected.
    pub const fn from_bits(bits: u16) -> Option<Actions> {
        if bits & !Self::MASK == 0 {
            Some(Actions(bits))
        } else {
            None
        }
    }
    /// True if `self` holds every action of `other`.
    pub const fn is_superset_of(self, other: Actions) -> bool {
        other.0 & !self.0 == 0
    }
    /// Iterates the actions in the set, in bit order.
    pub fn iter(self) -> impl Iterator<Item = Action> {
        Action::ALL.into_iter().filter(move |a| self.contains(*a))
    }
}

/// One trouble (a fault condition that is reported, never an alarm by itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trouble {
    /// BMS temperature source invalid.
    BmsInvalid = 0,
    /// Rack temperature 1 invalid.
    RackTemp1Invalid = 1,
    /// Rack temperature 2 invalid.
    RackTemp2Invalid = 2,
    /// Camera source invalid.
    CameraInvalid = 3,
    /// Smoke detector invalid.
    SmokeInvalid = 4,
    /// Off-gas detector invalid.
    OffGasInvalid = 5,
    /// No valid temperature source at all.
    NoValidTemperature = 6,
    /// One faulted sensor's trouble is inhibited by a network command (the sensor still does
    /// not count).
    SensorInhibited = 7,
    /// Contactor feedback disagrees with the command for longer than allowed.
    ContactorMismatch = 8,
    /// Blanket feedback disagrees with the command.
    BlanketMismatch = 9,
    /// Patch feedback disagrees with the command.
    PatchMismatch = 10,
    /// Agent pressure feedback disagrees with the command.
    AgentMismatch = 11,
    /// Coolant flow feedback disagrees with the command.
    CoolantMismatch = 12,
    /// Gas released feedback disagrees with the command.
    GasMismatch = 13,
    /// A feedback line reports a fault.
    FeedbackFault = 14,
    /// A local switch line reports a fault, or a momentary switch (reset, manual release, room
    /// gas release) is on since the logic started and was never seen released.
    SwitchFault = 15,
    /// The event log had to drop an event.
    EventLogOverflow = 16,
    /// The restored latch record was written under a different configuration.
    ConfigChanged = 17,
}

impl Trouble {
    /// All troubles in bit order.
    pub const ALL: [Trouble; 18] = [
        Trouble::BmsInvalid,
        Trouble::RackTemp1Invalid,
        Trouble::RackTemp2Invalid,
        Trouble::CameraInvalid,
        Trouble::SmokeInvalid,
        Trouble::OffGasInvalid,
        Trouble::NoValidTemperature,
        Trouble::SensorInhibited,
        Trouble::ContactorMismatch,
        Trouble::BlanketMismatch,
        Trouble::PatchMismatch,
        Trouble::AgentMismatch,
        Trouble::CoolantMismatch,
        Trouble::GasMismatch,
        Trouble::FeedbackFault,
        Trouble::SwitchFault,
        Trouble::EventLogOverflow,
        Trouble::ConfigChanged,
    ];

    /// Stable name.
    pub const fn name(self) -> &'static str {
        match self {
            Trouble::BmsInvalid => "bms_max_invalid",
            Trouble::RackTemp1Invalid => "rack_temp1_invalid",
            Trouble::RackTemp2Invalid => "rack_temp2_invalid",
            Trouble::CameraInvalid => "camera_max_invalid",
            Trouble::SmokeInvalid => "smoke_invalid",
            Trouble::OffGasInvalid => "offgas_invalid",
            Trouble::NoValidTemperature => "no_valid_temperature",
            Trouble::SensorInhibited => "sensor_inhibited",
            Trouble::ContactorMismatch => "contactor_feedback_mismatch",
            Trouble::BlanketMismatch => "blanket_feedback_mismatch",
            Trouble::PatchMismatch => "patch_feedback_mismatch",
            Trouble::AgentMismatch => "agent_feedback_mismatch",
            Trouble::CoolantMismatch => "coolant_feedback_mismatch",
            Trouble::GasMismatch => "gas_feedback_mismatch",
            Trouble::FeedbackFault => "feedback_fault",
            Trouble::SwitchFault => "switch_fault",
            Trouble::EventLogOverflow => "event_log_overflow",
            Trouble::ConfigChanged => "config_changed",
        }
    }

    /// The invalid-source trouble of a source.
    pub const fn for_source(id: SourceId) -> Trouble {
        match id {
            SourceId::Bms => Trouble::BmsInvalid,
            SourceId::RackTemp1 => Trouble::RackTemp1Invalid,
            SourceId::RackTemp2 => Trouble::RackTemp2Invalid,
            SourceId::Camera => Trouble::CameraInvalid,
            SourceId::Smoke => Trouble::SmokeInvalid,
            SourceId::OffGas => Trouble::OffGasInvalid,
        }
    }

    /// The source of an invalid-source trouble.
    pub const fn source(self) -> Option<SourceId> {
        match self {
            Trouble::BmsInvalid => Some(SourceId::Bms),
            Trouble::RackTemp1Invalid => Some(SourceId::RackTemp1),
            Trouble::RackTemp2Invalid => Some(SourceId::RackTemp2),
            Trouble::CameraInvalid => Some(SourceId::Camera),
            Trouble::SmokeInvalid => Some(SourceId::Smoke),
            Trouble::OffGasInvalid => Some(SourceId::OffGas),
            _ => None,
        }
    }

    /// The mismatch trouble of a feedback index (see [`Action::FEEDBACK`]).
    pub(crate) const fn mismatch(a: Action) -> Trouble {
        match a {
            Action::ContactorOpen => Trouble::ContactorMismatch,
            Action::BlanketDrop => Trouble::BlanketMismatch,
            Action::PatchFire => Trouble::PatchMismatch,
            Action::AgentRelease => Trouble::AgentMismatch,
            Action::CoolantOn => Trouble::CoolantMismatch,
            Action::GasRelease | Action::GasWarning => Trouble::GasMismatch,
        }
    }

    const fn bit(self) -> u32 {
        1u32 << (self as u32)
    }
}

/// A set of [`Trouble`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Troubles(u32);

impl Troubles {
    /// No trouble.
    pub const NONE: Troubles = Troubles(0);
    /// True if `t` is in the set.
    pub const fn contains(self, t: Trouble) -> bool {
        self.0 & t.bit() != 0
    }
    /// Adds `t`.
    pub fn insert(&mut self, t: Trouble) {
        self.0 |= t.bit();
    }
    /// True if empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// The raw bits (bit n = `Trouble` with discriminant n).
    pub const fn bits(self) -> u32 {
        self.0
    }
    /// Iterates the troubles in the set, in bit order.
    pub fn iter(self) -> impl Iterator<Item = Trouble> {
        Trouble::ALL.into_iter().filter(move |t| self.contains(*t))
    }
}

/// One supervisory signal (reported, not a suppression stage).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Supervisory {
    /// The governing temperature rises faster than the configured rate.
    RateOfRise = 0,
    /// Off-gas at or above the supervisory level.
    OffGas = 1,
    /// Manual-only mode: automatic agent and gas are bypassed.
    ManualOnlyBypass = 2,
    /// The fire authority is in command (battery power forced off).
    Authority = 3,
    /// Test mode is active.
    TestMode = 4,
    /// Battery isolated because no valid temperature source remained.
    IsolatedNoTemperature = 5,
}

impl Supervisory {
    /// All supervisory signals in bit order.
    pub const ALL: [Supervisory; 6] = [
        Supervisory::RateOfRise,
        Supervisory::OffGas,
        Supervisory::ManualOnlyBypass,
        Supervisory::Authority,
        Supervisory::TestMode,
        Supervisory::IsolatedNoTemperature,
    ];
    /// Stable name.
    pub const fn name(self) -> &'static str {
        match self {
            Supervisory::RateOfRise => "rate_of_rise",
            Supervisory::OffGas => "offgas_warning",
            Supervisory::ManualOnlyBypass => "bypass_manual_only",
            Supervisory::Authority => "authority_in_command",
            Supervisory::TestMode => "test_mode",
            Supervisory::IsolatedNoTemperature => "isolated_no_temperature",
        }
    }
    const fn bit(self) -> u16 {
        1u16 << (self as u16)
    }
}

/// A set of [`Supervisory`] signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct SupervisoryFlags(u16);

impl SupervisoryFlags {
    /// No signal.
    pub const NONE: SupervisoryFlags = SupervisoryFlags(0);
    /// True if `s` is in the set.
    pub const fn contains(self, s: Supervisory) -> bool {
        self.0 & s.bit() != 0
    }
    /// Adds `s`.
    pub fn insert(&mut self, s: Supervisory) {
        self.0 |= s.bit();
    }
    /// The raw bits.
    pub const fn bits(self) -> u16 {
        self.0
    }
    /// Iterates the signals in the set, in bit order.
    pub fn iter(self) -> impl Iterator<Item = Supervisory> {
        Supervisory::ALL
            .into_iter()
            .filter(move |s| self.contains(*s))
    }
}

/// Everything the logic commands in one control cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Outputs {
    /// The latched stage.
    pub stage: Stage,
    /// The commanded actions (drive the outputs from these).
    pub actions: Actions,
    /// Active troubles.
    pub troubles: Troubles,
    /// Active supervisory signals.
    pub supervisory: SupervisoryFlags,
    /// Local buzzer (silenced by an acknowledge until the next new event).
    pub buzzer: bool,
    /// The governing temperature: highest confirmed valid reading, if any.
    pub governing: Option<DeciC>,
}
