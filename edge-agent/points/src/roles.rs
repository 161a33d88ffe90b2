//! The role vocabulary. Profiles map vendor registers onto these names; the server's redundancy,
//! alarm and fire views only ever look at roles.

/// What kind of value a role carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleKind {
    /// A measured quantity (`value` is a number).
    Analog,
    /// A true/false state (`value` is a bool).
    Binary,
    /// An enumerated state (`value` is a small integer or a text from an enum map).
    Enum,
    /// Free text (firmware version, model name).
    Text,
}

/// One entry of the vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleDef {
    pub name: &'static str,
    /// The unit values of this role are expected in after scaling; empty when unitless.
    pub unit: &'static str,
    pub kind: RoleKind,
    /// Labels the role is qualified by (e.g. `feed` for `feed.voltage`).
    pub labels: &'static [&'static str],
    pub description: &'static str,
}

const fn r(
    name: &'static str,
    unit: &'static str,
    kind: RoleKind,
    labels: &'static [&'static str],
    description: &'static str,
) -> RoleDef {
    RoleDef {
        name,
        unit,
        kind,
        labels,
        description,
    }
}

use RoleKind::{Analog, Binary, Enum, Text};

/// Every role the product understands.
pub const ROLES: &[RoleDef] = &[
    // Battery racks and their BMS.
    r(
        "battery.cell_temp.max",
        "degC",
        Analog,
        &[],
        "Highest cell temperature reported by the BMS",
    ),
    r(
        "battery.cell_temp.min",
        "degC",
        Analog,
        &[],
        "Lowest cell temperature reported by the BMS",
    ),
    r(
        "battery.cell_voltage.max",
        "V",
        Analog,
        &[],
        "Highest cell voltage",
    ),
    r(
        "battery.cell_voltage.min",
        "V",
        Analog,
        &[],
        "Lowest cell voltage",
    ),
    r("battery.voltage", "V", Analog, &[], "String (rack) voltage"),
    r(
        "battery.current",
        "A",
        Analog,
        &[],
        "String current, positive when discharging",
    ),
    r("battery.soc", "%", Analog, &[], "State of charge"),
    r("battery.soh", "%", Analog, &[], "State of health"),
    r(
        "battery.contactor_closed",
        "",
        Binary,
        &[],
        "Battery main contactor closed",
    ),
    r("battery.alarm", "", Enum, &[], "BMS alarm word"),
    r(
        "rack.temp",
        "degC",
        Analog,
        &["sensor"],
        "Rack air temperature sensor",
    ),
    r(
        "rack.smoke",
        "",
        Binary,
        &["sensor"],
        "Rack smoke detector in alarm",
    ),
    r(
        "rack.offgas_lfl",
        "%LFL",
        Analog,
        &[],
        "Off-gas (electrolyte vapour) concentration",
    ),
    // The rack controller's fire logic.
    r(
        "fire.stage",
        "",
        Enum,
        &[],
        "Latched fire stage (0 normal, 1 pre-alarm, 2..6 stages 1..5)",
    ),
    r(
        "fire.troubles",
        "",
        Enum,
        &[],
        "Bit set of active fire-logic troubles",
    ),
    r(
        "fire.contactor_open",
        "",
        Binary,
        &[],
        "Feedback: battery contactor open",
    ),
    r(
        "fire.blanket_down",
        "",
        Binary,
        &[],
        "Feedback: fire blanket dropped",
    ),
    r(
        "fire.patch_fired",
        "",
        Binary,
        &[],
        "Feedback: extinguishing patch fired",
    ),
    r(
        "fire.agent_pressure",
        "bar",
        Analog,
        &[],
        "Feedback: agent line pressure",
    ),
    r(
        "fire.coolant_flow",
        "l/min",
        Analog,
        &[],
        "Feedback: coolant water flow",
    ),
    r(
        "fire.gas_released",
        "",
        Binary,
        &[],
        "Feedback: room gas released",
    ),
    r(
        "fire.manual_only",
        "",
        Binary,
        &[],
        "Manual-only (occupied room) bypass active",
    ),
    r(
        "fire.authority",
        "",
        Binary,
        &[],
        "Fire-authority key switch in command",
    ),
    r(
        "drain_tank.level_pct",
        "%",
        Analog,
        &[],
        "Contaminated-water drain tank level",
    ),
    // UPS.
    r("ups.on_battery", "", Binary, &[], "UPS running on battery"),
    r("ups.on_bypass", "", Binary, &[], "UPS on static bypass"),
    r("ups.load_pct", "%", Analog, &[], "UPS output load"),
    r(
        "ups.output_kw",
        "kW",
        Analog,
        &[],
        "UPS output active power",
    ),
    r("ups.input_voltage", "V", Analog, &[], "UPS input voltage"),
    r("ups.output_voltage", "V", Analog, &[], "UPS output voltage"),
    r(
        "ups.runtime_s",
        "s",
        Analog,
        &[],
        "Estimated battery runtime at current load",
    ),
    r(
        "ups.battery_soc",
        "%",
        Analog,
        &[],
        "UPS battery state of charge",
    ),
    r("ups.alarm", "", Binary, &[], "UPS general alarm"),
    r(
        "ups.battery_temp",
        "degC",
        Analog,
        &[],
        "UPS battery (cabinet) temperature",
    ),
    r(
        "ups.battery_status",
        "",
        Enum,
        &[],
        "UPS battery status (e.g. UPS-MIB: unknown, normal, low, depleted)",
    ),
    r(
        "ups.output_source",
        "",
        Enum,
        &[],
        "What feeds the UPS output (e.g. UPS-MIB: none, normal, bypass, battery, booster, reducer)",
    ),
    r(
        "ups.output_current",
        "A",
        Analog,
        &["phase"],
        "UPS output current of one phase",
    ),
    r(
        "ups.output_phase_voltage",
        "V",
        Analog,
        &["phase"],
        "UPS output voltage of one phase (line to neutral)",
    ),
    // Power feeds, switchgear, ATS, transformers, PDUs.
    r(
        "feed.voltage",
        "V",
        Analog,
        &["feed"],
        "Feed voltage (line to line)",
    ),
    r("feed.current", "A", Analog, &["feed"], "Feed current"),
    r(
        "feed.power_kw",
        "kW",
        Analog,
        &["feed"],
        "Feed active power",
    ),
    r(
        "feed.energy_kwh",
        "kWh",
        Analog,
        &["feed"],
        "Feed energy counter",
    ),
    r("feed.frequency", "Hz", Analog, &["feed"], "Feed frequency"),
    r(
        "feed.phase_voltage",
        "V",
        Analog,
        &["feed", "phase"],
        "Voltage of one phase of a feed (line to neutral)",
    ),
    r(
        "feed.phase_current",
        "A",
        Analog,
        &["feed", "phase"],
        "Current of one phase of a feed",
    ),
    r(
        "feed.breaker_closed",
        "",
        Binary,
        &["feed"],
        "Feed breaker closed",
    ),
    r(
        "ats.source",
        "",
        Enum,
        &[],
        "Source the ATS is on (A, B or none)",
    ),
    r(
        "transformer.temp",
        "degC",
        Analog,
        &[],
        "Transformer winding temperature",
    ),
    r("transformer.load_pct", "%", Analog, &[], "Transformer load"),
    r("pdu.power_kw", "kW", Analog, &["feed"], "PDU output power"),
    r("pdu.current", "A", Analog, &["feed"], "PDU total current"),
    r(
        "pdu.phase_current",
        "A",
        Analog,
        &["feed", "phase"],
        "PDU current of one phase",
    ),
    r(
        "pdu.outlet_on",
        "",
        Binary,
        &["outlet"],
        "Switched PDU outlet energised",
    ),
    r(
        "pdu.outlet_current",
        "A",
        Analog,
        &["outlet"],
        "Current drawn through one PDU outlet",
    ),
    r(
        "pdu.breaker_closed",
        "",
        Binary,
        &["feed"],
        "PDU breaker closed",
    ),
    r("it.power_kw", "kW", Analog, &[], "IT load power (for PUE)"),
    r(
        "facility.power_kw",
        "kW",
        Analog,
        &[],
        "Total facility power (for PUE)",
    ),
    // Cooling.
    r("chiller.running", "", Binary, &[], "Chiller running"),
    r("chiller.fault", "", Binary, &[], "Chiller in fault"),
    r(
        "chiller.supply_temp",
        "degC",
        Analog,
        &[],
        "Chilled-water supply temperature",
    ),
    r(
        "chiller.return_temp",
        "degC",
        Analog,
        &[],
        "Chilled-water return temperature",
    ),
    r("chiller.load_kw", "kW", Analog, &[], "Cooling delivered"),
    r(
        "chiller.supply_setpoint",
        "degC",
        Analog,
        &[],
        "Chilled-water supply temperature setpoint",
    ),
    r(
        "chiller.power_kw",
        "kW",
        Analog,
        &[],
        "Electrical power drawn",
    ),
    r("loop.flow", "m3/h", Analog, &[], "Chilled-water loop flow"),
    r(
        "loop.supply_temp",
        "degC",
        Analog,
        &[],
        "Loop supply temperature",
    ),
    r(
        "loop.return_temp",
        "degC",
        Analog,
        &[],
        "Loop return temperature",
    ),
    r(
        "buffer_tank.temp",
        "degC",
        Analog,
        &[],
        "Buffer tank water temperature",
    ),
    r(
        "buffer_tank.level_pct",
        "%",
        Analog,
        &[],
        "Buffer tank level",
    ),
    r("crah.running", "", Binary, &[], "CRAH unit running"),
    r("crah.fault", "", Binary, &[], "CRAH unit in fault"),
    r(
        "crah.supply_air_temp",
        "degC",
        Analog,
        &[],
        "CRAH supply air temperature",
    ),
    r(
        "crah.return_air_temp",
        "degC",
        Analog,
        &[],
        "CRAH return air temperature",
    ),
    r("crah.fan_pct", "%", Analog, &[], "CRAH fan speed"),
    r(
        "crah.supply_air_setpoint",
        "degC",
        Analog,
        &[],
        "CRAH supply air temperature setpoint",
    ),
    r(
        "crah.valve_pct",
        "%",
        Analog,
        &[],
        "CRAH chilled-water valve position",
    ),
    r(
        "crah.cooling_kw",
        "kW",
        Analog,
        &[],
        "Cooling delivered by the CRAH",
    ),
    r("room.temp", "degC", Analog, &[], "Room air temperature"),
    r(
        "room.humidity",
        "%RH",
        Analog,
        &[],
        "Room relative humidity",
    ),
    // Thermal cameras.
    r(
        "camera.region_max_temp",
        "degC",
        Analog,
        &["region"],
        "Hottest pixel of a camera region",
    ),
    r(
        "camera.region_avg_temp",
        "degC",
        Analog,
        &["region"],
        "Mean temperature of a camera region",
    ),
    r(
        "camera.hotspot",
        "",
        Binary,
        &["region"],
        "Camera reports a hot spot in the region",
    ),
    // Network.
    r(
        "link.up",
        "",
        Binary,
        &["link"],
        "Carrier or inter-room link up",
    ),
    r(
        "link.latency_ms",
        "ms",
        Analog,
        &["link"],
        "Round-trip latency",
    ),
    r("link.loss_pct", "%", Analog, &["link"], "Packet loss"),
    r(
        "link.speed_gbps",
        "Gbit/s",
        Analog,
        &["link"],
        "Negotiated link speed (e.g. IF-MIB ifHighSpeed)",
    ),
    r(
        "link.admin_up",
        "",
        Binary,
        &["link"],
        "Port enabled by configuration (IF-MIB ifAdminStatus up)",
    ),
    r(
        "link.neighbor",
        "",
        Text,
        &["link"],
        "System name of the neighbour seen on the link (LLDP)",
    ),
    r(
        "link.throughput_gbps",
        "Gbit/s",
        Analog,
        &["link"],
        "Traffic carried",
    ),
    // Any device.
    r("device.online", "", Binary, &[], "Device answers its polls"),
    r("device.firmware", "", Text, &[], "Firmware version"),
    r("device.uptime_s", "s", Analog, &[], "Device uptime"),
    r(
        "device.name",
        "",
        Text,
        &[],
        "Name the device reports for itself (e.g. sysName)",
    ),
];

/// The vocabulary as the Markdown table in `device-profiles/README.md` (between the
/// `<!-- roles:begin -->` and `<!-- roles:end -->` markers), grouped by the part of the name
/// before the first dot. A test in `dcim-profiles` checks that the README holds exactly this.
pub fn vocabulary_markdown() -> String {
    let mut out = String::from(
        "| role | kind | unit | labels (required) | meaning |\n|---|---|---|---|---|\n",
    );
    for def in ROLES {
        let kind = match def.kind {
            Analog => "number",
            Binary => "true/false",
            Enum => "enum",
            Text => "text",
        };
        let unit = if def.unit.is_empty() {
            "-".to_owned()
        } else {
            format!("`{}`", def.unit)
        };
        let labels = if def.labels.is_empty() {
            "-".to_owned()
        } else {
            def.labels
                .iter()
                .map(|l| format!("`{l}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        out.push_str(&format!(
            "| `{}` | {kind} | {unit} | {labels} | {} |\n",
            def.name, def.description
        ));
    }
    out
}
