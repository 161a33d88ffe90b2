//! `[dc09]`: the server's own DC-09 link to the fire authority and how alarms map to events.

use serde::{Deserialize, Serialize};
use sia_dc09::EventKind;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The `[dc09]` section of the server configuration (off when absent).
///
/// ```toml
/// [dc09]
/// link_config = "dc09-link.toml"   # dc09-link file: account, receivers/paths, key, codes_file
/// outbox_dir = "dc09-outbox"        # default: <data_dir>/dc09-outbox
/// agent_loss_after_s = 120
///
/// [[dc09.zone]]
/// number = 2                        # DC-09 zone (area), 0..=999
/// name = "battery room 2"
/// devices = ["bms-z2", "cam-z2"]    # exact ids or prefix*
/// racks = { "bms-z2" = 1 }          # DC-09 rack (unit) per device; others 0
/// agents = ["edge-b2"]              # loss of contact with these is a trouble of the zone
/// dc09_agents = ["edge-b2"]         # these send the zone's fire events themselves
///
/// [[dc09.alarm]]                    # default: rule "fire-stage" -> kind "fire.stage"
/// rule = "room-hot"
/// kind = "fire.stage1"              # a sia-dc09 event kind, or "fire.stage" (by stage value)
/// ```
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Dc09Config {
    /// A `dc09-link` configuration file (the format of the edge agent's `[dc09] link_config`).
    pub link_config: PathBuf,
    /// The transmitter's outbox; default `<data_dir>/dc09-outbox`.
    #[serde(default)]
    pub outbox_dir: Option<PathBuf>,
    #[serde(default = "d_loss")]
    pub agent_loss_after_s: u64,
    /// How often alarms, agent states and agent events are looked at.
    #[serde(default = "d_poll")]
    pub poll_ms: u64,
    /// After a restart, alarms sent by the previous process are not restored during this time
    /// (the alarm engine rebuilds its conditions from fresh samples first).
    #[serde(default = "d_grace")]
    pub restart_grace_s: u64,
    #[serde(default)]
    pub zone: Vec<ZoneConfig>,
    #[serde(default = "d_alarms")]
    pub alarm: Vec<AlarmMap>,
    /// An already loaded link configuration (tests, demo); takes precedence over the file.
    #[serde(skip)]
    pub link: Option<dc09_link::LinkConfig>,
}

fn d_loss() -> u64 {
    120
}
fn d_poll() -> u64 {
    250
}
fn d_grace() -> u64 {
    30
}
pub(crate) fn d_alarms() -> Vec<AlarmMap> {
    ["fire-prealarm", "fire-stage"]
        .into_iter()
        .map(|rule| AlarmMap {
            rule: rule.into(),
            kind: STAGE_KIND.into(),
        })
        .collect()
}

/// `kind` of an [`AlarmMap`] that takes the stage from the alarm's `fire.stage` value.
pub const STAGE_KIND: &str = "fire.stage";

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneConfig {
    pub number: u16,
    #[serde(default)]
    pub name: String,
    pub devices: Vec<String>,
    #[serde(default)]
    pub racks: BTreeMap<String, u16>,
    #[serde(default)]
    pub agents: Vec<String>,
    #[serde(default)]
    pub dc09_agents: Vec<String>,
}

impl ZoneConfig {
    pub fn has_device(&self, device: &str) -> bool {
        self.devices.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => device.starts_with(prefix),
            None => p == device,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AlarmMap {
    /// Alarm rule id of the server's alarm engine.
    pub rule: String,
    /// A sia-dc09 event kind name (`fire.stage1`, `fire.smoke`, ...) or `fire.stage`.
    pub kind: String,
}

impl Dc09Config {
    /// A configuration with a loaded link and no zones.
    pub fn with_link(link: dc09_link::LinkConfig) -> Dc09Config {
        Dc09Config {
            link_config: PathBuf::new(),
            outbox_dir: None,
            agent_loss_after_s: d_loss(),
            poll_ms: d_poll(),
            restart_grace_s: d_grace(),
            zone: Vec::new(),
            alarm: d_alarms(),
            link: Some(link),
        }
    }

    /// Checks zones and alarm maps; `Err((field, message))`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let mut numbers = BTreeSet::new();
        for (i, z) in self.zone.iter().enumerate() {
            let f = |s: &str| format!("dc09.zone[{i}].{s}");
            if z.number > 999 {
                return Err((f("number"), "a DC-09 zone is 0..=999".into()));
            }
            if !numbers.insert(z.number) {
                return Err((f("number"), format!("zone {} is listed twice", z.number)));
            }
            if z.devices.is_empty() {
                return Err((
                    f("devices"),
                    "list the zone's devices (ids or prefix*)".into(),
                ));
            }
            if let Some((d, n)) = z.racks.iter().find(|(_, n)| **n > 9999) {
                return Err((f("racks"), format!("{d} = {n}: a DC-09 rack is 0..=9999")));
            }
        }
        for (i, a) in self.alarm.iter().enumerate() {
            if a.kind != STAGE_KIND && EventKind::from_name(&a.kind).is_none() {
                let names: Vec<&str> = EventKind::ALL.iter().map(|k| k.name()).collect();
                return Err((
                    format!("dc09.alarm[{i}].kind"),
                    format!(
                        "`{}`: expected {STAGE_KIND} or one of {}",
                        a.kind,
                        names.join(", ")
                    ),
                ));
            }
        }
        if self.poll_ms == 0 {
            return Err(("dc09.poll_ms".into(), "must be at least 1".into()));
        }
        Ok(())
    }

    /// Resolves relative paths against the configuration file's directory.
    pub fn resolve(&mut self, base: &Path) {
        if !self.link_config.as_os_str().is_empty() && self.link_config.is_relative() {
            self.link_config = base.join(&self.link_config);
        }
        if let Some(o) = &self.outbox_dir
            && o.is_relative()
        {
            self.outbox_dir = Some(base.join(o));
        }
    }

    /// The demo site's battery rooms: zone n = UPS zone n (`bms-z{n}`, `cam-z{n}`), served by
    /// the demo agent, which has no DC-09 link of its own (so the server sends).
    pub fn demo_zones(agent: &str) -> Vec<ZoneConfig> {
        (1..=4)
            .map(|n| ZoneConfig {
                number: n,
                name: format!("battery room {n}"),
                devices: vec![format!("bms-z{n}"), format!("cam-z{n}")],
                racks: [(format!("bms-z{n}"), 1)].into(),
                agents: vec![agent.to_string()],
                dc09_agents: Vec::new(),
            })
            .collect()
    }
}
