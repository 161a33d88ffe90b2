//! Suppression by design from the site model: an alarm about a component is suppressed when one
//! of the component's upstream groups is no longer satisfied (the component has lost its supply,
//! so its alarms are consequences of an upstream loss); the cause names the root components
//! (unavailable although their own supply is fine). Fire, battery-temperature, redundancy and
//! the server's own troubles are never suppressed ([`NEVER_SUPPRESSED`]).

use crate::alarm::Alarm;
use crate::engine::Suppression;
use dcim_site::{Evaluation, Site};
use std::collections::{BTreeMap, BTreeSet};

/// Rules never suppressed by design: fire, redundancy and the server's own blindness (no data,
/// full disk) must always be seen.
pub const NEVER_SUPPRESSED: &[&str] = &[
    "fire-stage",
    "fire-prealarm",
    "battery-hot",
    "redundancy",
    "redundancy-unverified",
    "store-disk-full",
    "agent-clock-ahead",
    "agent-spool-new",
];

/// A snapshot of "component -> cause" computed from one evaluation.
#[derive(Debug, Clone, Default)]
pub struct SiteSuppression {
    causes: BTreeMap<String, String>,
    exempt: BTreeSet<String>,
}

impl SiteSuppression {
    pub fn new(site: &Site, ev: &Evaluation) -> SiteSuppression {
        let n = site.components.len();
        let avail: Vec<bool> = ev.components.iter().map(|c| c.available).collect();
        let mut causes = BTreeMap::new();
        for i in 0..n {
            let c = &site.components[i];
            // Only when a group is no longer satisfied: losing one side of a 2N pair leaves the
            // component supplied, and its own alarms are then not consequences.
            let lost_upstream = c
                .groups
                .iter()
                .any(|g| g.members.iter().filter(|&&m| avail[m]).count() < g.need as usize);
            if !lost_upstream {
                continue;
            }
            // Roots: unavailable ancestors whose own members are all available.
            let mut roots = BTreeSet::new();
            let mut stack: Vec<usize> = c
                .groups
                .iter()
                .flat_map(|g| g.members.iter().copied())
                .filter(|&m| !avail[m])
                .collect();
            let mut seen = BTreeSet::new();
            while let Some(x) = stack.pop() {
                if !seen.insert(x) {
                    continue;
                }
                let bad: Vec<usize> = site.components[x]
                    .groups
                    .iter()
                    .flat_map(|g| g.members.iter().copied())
                    .filter(|&m| !avail[m])
                    .collect();
                if bad.is_empty() {
                    roots.insert(site.components[x].id.clone());
                } else {
                    stack.extend(bad);
                }
            }
            let list: Vec<String> = roots.into_iter().collect();
            causes.insert(c.id.clone(), format!("upstream lost: {}", list.join(", ")));
        }
        SiteSuppression {
            causes,
            exempt: NEVER_SUPPRESSED.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    /// The cause for a component, if its alarms are suppressed.
    pub fn cause(&self, component: &str) -> Option<&str> {
        self.causes.get(component).map(String::as_str)
    }
}

impl Suppression for SiteSuppression {
    fn suppressed_by(&self, alarm: &Alarm) -> Option<String> {
        if self.exempt.contains(&alarm.rule) {
            return None;
        }
        self.causes.get(alarm.component.as_ref()?).cloned()
    }
}

/// Device -> component id map for [`crate::engine::Engine::set_device_components`] (the first
/// component a device is bound to).
pub fn device_components(site: &Site) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for c in &site.components {
        for b in &c.bindings {
            m.entry(b.device.clone()).or_insert_with(|| c.id.clone());
        }
    }
    m
}
