//! Thin adapter over the pure engines: the site model and redundancy engine (`dcim-site`) and
//! the alarm engine and incidents (`dcim-alarms`). Synchronous and clock-free (`now_ms` passed
//! in); the shell (`lib.rs`, `mqtt.rs`, `api.rs`) commits what it returns before telling anyone.
//!
//! Kept deliberately small so that changes in the engines' APIs stay cheap to follow.

use dcim_alarms::{
    Action, ActionError, Engine, EngineConfig, IncidentConfig, IncidentEvent, Incidents, Record,
    Rule, SiteSuppression,
};
use dcim_points::Sample;
use dcim_site::{
    ComponentState, Evaluation, Live, Redundancy, Site, StatusPolicy, UnknownComponent, WhatIf,
};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// What one step changed: alarm records and incident events, to be committed then pushed;
/// redundancy level changes, to be pushed (the live `redundancy` event).
#[derive(Debug, Default, Clone, Serialize)]
pub struct Changes {
    pub records: Vec<Record>,
    pub incidents: Vec<IncidentEvent>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub redundancy: Vec<RedundancyChange>,
}

/// A subsystem's or a rack's current redundancy changed (between two evaluations).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RedundancyChange {
    pub subsystem: String,
    /// The rack, for a rack's level; absent for the subsystem's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rack: Option<String>,
    pub designed: Redundancy,
    pub before: Redundancy,
    pub current: Redundancy,
    pub ts_ms: i64,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.records.is_empty() && self.incidents.is_empty()
    }
}

/// After a restart, how long a subsystem whose components have not all reported yet keeps
/// its restored redundancy alarm unchanged: the site engine counts unknown components as
/// available, so without it a restored redundancy alarm would clear before the first samples
/// and be raised again when they arrive. Agents report every point at least every 10 s.
pub const RESTORE_WARMUP_MS: i64 = 20_000;

pub struct Facility {
    pub site: Option<Site>,
    live: Live,
    maintenance: BTreeSet<String>,
    states: Vec<ComponentState>,
    evaluation: Option<Evaluation>,
    pub engine: Engine,
    pub incidents: Incidents,
    /// A sample of a site device arrived since the last evaluation.
    dirty: bool,
    site_devices: BTreeSet<String>,
    pub status_policy: StatusPolicy,
    /// After a restore: until then, a subsystem with components not yet known keeps its
    /// restored redundancy alarm as it is (see [`RESTORE_WARMUP_MS`]).
    warmup_until_ms: Option<i64>,
    /// Current redundancy at the last tick, by `(subsystem, rack)` (`""` for the subsystem).
    levels: BTreeMap<(String, String), Redundancy>,
    /// Multi-site follower (`cluster`): samples update the live values and the redundancy
    /// evaluation, but the alarm engine is not run (the leader runs it; its committed state is
    /// restored here instead), so nothing is produced to commit.
    passive: bool,
}

impl Facility {
    pub fn new(site: Option<Site>, incidents: Option<Incidents>) -> Result<Facility, String> {
        let mut engine = Engine::new(Rule::defaults(), EngineConfig::default())?;
        let mut site_devices = BTreeSet::new();
        if let Some(s) = &site {
            engine.set_device_components(dcim_alarms::device_components(s));
            site_devices = s.devices().into_iter().collect();
        }
        Ok(Facility {
            site,
            live: Live::new(),
            maintenance: BTreeSet::new(),
            states: Vec::new(),
            evaluation: None,
            engine,
            incidents: incidents.unwrap_or_else(|| Incidents::new(IncidentConfig::default())),
            dirty: true,
            site_devices,
            status_policy: StatusPolicy::default(),
            warmup_until_ms: None,
            levels: BTreeMap::new(),
            passive: false,
        })
    }

    /// See the `passive` field: on for a multi-site follower, off for the leader.
    pub fn set_passive(&mut self, passive: bool) {
        self.passive = passive;
    }

    pub fn is_passive(&self) -> bool {
        self.passive
    }

    /// Resumes the alarm engine from a stored snapshot (and the maintenance set the site
    /// evaluation uses), before any input arrives.
    pub fn restore(&mut self, snap: dcim_alarms::Snapshot, now_ms: i64) {
        self.warmup_until_ms = Some(now_ms + RESTORE_WARMUP_MS);
        self.maintenance = snap.maintenance.iter().cloned().collect();
        self.engine.restore(snap);
        if let Some(s) = &self.site {
            // Components follow the current site model, not the stored one.
            self.engine
                .set_device_components(dcim_alarms::device_components(s));
        }
        self.dirty = true;
    }

    fn finish(&mut self, records: Vec<Record>, now_ms: i64) -> Changes {
        let mut incidents = self.incidents.on_records(&records);
        incidents.extend(self.incidents.tick(now_ms));
        Changes {
            records,
            incidents,
            ..Default::default()
        }
    }

    /// New samples: the live table and the alarm rules on samples.
    pub fn on_samples(&mut self, samples: &[Sample], now_ms: i64) -> Changes {
        let mut records = Vec::new();
        for s in samples {
            if self.site_devices.contains(&s.device) {
                self.dirty = true;
            }
            self.live.update(s.clone());
            if !self.passive {
                records.extend(self.engine.on_sample(s, now_ms));
            }
        }
        if records.is_empty() {
            return Changes::default();
        }
        self.finish(records, now_ms)
    }

    /// Multi-site takeover: the alarm rules on every live sample newer than `since_ms` (when
    /// the previous leader last committed), so that what this replica ingested while it was a
    /// follower (and the previous leader may never have seen) is not left unevaluated until
    /// the device reports again.
    pub fn replay_live_since(&mut self, since_ms: i64, now_ms: i64) -> Changes {
        let samples: Vec<Sample> = self
            .live
            .devices()
            .into_iter()
            .flat_map(|d| self.live.device_samples(d))
            .filter(|s| s.ts_ms > since_ms)
            .cloned()
            .collect();
        let mut records = Vec::new();
        for s in &samples {
            records.extend(self.engine.on_sample(s, now_ms));
        }
        if records.is_empty() {
            return Changes::default();
        }
        self.finish(records, now_ms)
    }

    /// An edge event: communication loss and return feed the comm-lost rule.
    pub fn on_event(&mut self, kind: &str, device: &str, now_ms: i64) -> Changes {
        if self.passive {
            return Changes::default();
        }
        let records = match kind {
            "device.comm_lost" => self.engine.on_comm(device, true, now_ms),
            "device.comm_restored" | "device.comm_ok" => self.engine.on_comm(device, false, now_ms),
            _ => return Changes::default(),
        };
        self.finish(records, now_ms)
    }

    fn evaluate(&mut self, now_ms: i64) {
        let Some(site) = &self.site else { return };
        self.states = dcim_site::component_states(site, &self.live, &self.maintenance, now_ms);
        self.evaluation = Some(dcim_site::evaluate(site, &self.states));
        self.dirty = false;
    }

    /// Time passes: re-evaluate the site (states go stale with time, so always), feed the
    /// redundancy levels to the alarm engine, run its timers and the incidents' timers.
    pub fn tick(&mut self, now_ms: i64) -> Changes {
        self.evaluate(now_ms);
        let mut records = Vec::new();
        let mut redundancy = Vec::new();
        if self.passive {
            if let (Some(site), Some(ev)) = (&self.site, &self.evaluation) {
                level_changes(site, ev, &mut self.levels, &mut redundancy, now_ms);
            }
            return Changes {
                redundancy,
                ..Default::default()
            };
        }
        if let (Some(site), Some(ev)) = (&self.site, &self.evaluation) {
            level_changes(site, ev, &mut self.levels, &mut redundancy, now_ms);
            // Just restored: in a subsystem whose components have not all reported yet, no data
            // is not a change of redundancy (for the subsystem's alarm and its racks' alarms).
            let warming: BTreeSet<&str> = ev
                .subsystems
                .iter()
                .filter(|sub| {
                    !sub.unknown.is_empty() && self.warmup_until_ms.is_some_and(|t| now_ms < t)
                })
                .map(|sub| sub.subsystem.as_str())
                .collect();
            for sub in &ev.subsystems {
                if warming.contains(sub.subsystem.as_str()) {
                    continue;
                }
                let detail = if sub.lost.is_empty() && sub.degraded.is_empty() {
                    String::new()
                } else {
                    format!(
                        "{} lost, {} degraded; single points of failure: {}",
                        sub.lost.len(),
                        sub.degraded.len(),
                        sub.single_points_of_failure.join(", ")
                    )
                };
                records.extend(self.engine.on_redundancy(
                    sub.subsystem.as_str(),
                    sub.designed,
                    sub.current,
                    &detail,
                    now_ms,
                ));
            }
            // Every rack, after the subsystems (the rack alarms are grouped under theirs).
            for (c, h) in site.components.iter().zip(&ev.components) {
                if c.kind != dcim_site::Kind::Rack {
                    continue;
                }
                for sup in &h.supply {
                    if warming.contains(sup.subsystem.as_str()) {
                        continue;
                    }
                    let detail = if sup.current < sup.designed {
                        format!(
                            "{} of {} paths live; single points of failure: {}",
                            sup.live_paths,
                            sup.designed_paths,
                            sup.single_points_of_failure.join(", ")
                        )
                    } else {
                        String::new()
                    };
                    records.extend(self.engine.on_rack_redundancy(
                        sup.subsystem.as_str(),
                        &c.id,
                        sup.designed,
                        sup.current,
                        &detail,
                        now_ms,
                    ));
                }
            }
            let suppression = SiteSuppression::new(site, ev);
            records.extend(self.engine.tick(now_ms, &suppression));
        } else {
            records.extend(self.engine.tick(now_ms, &dcim_alarms::NoSuppression));
        }
        let mut changes = self.finish(records, now_ms);
        changes.redundancy = redundancy;
        changes
    }

    pub fn act(
        &mut self,
        alarm: &str,
        action: Action,
        user: &str,
        now_ms: i64,
    ) -> Result<Changes, ActionError> {
        let records = self.engine.act(alarm, action, user, now_ms)?;
        Ok(self.finish(records, now_ms))
    }

    pub fn set_maintenance(&mut self, subject: &str, on: bool, user: &str, now_ms: i64) -> Changes {
        if on {
            self.maintenance.insert(subject.to_owned());
        } else {
            self.maintenance.remove(subject);
        }
        self.dirty = true;
        let records = self.engine.set_maintenance(subject, on, user, now_ms);
        self.finish(records, now_ms)
    }

    pub fn maintenance(&self) -> &BTreeSet<String> {
        &self.maintenance
    }

    pub fn evaluation(&mut self, now_ms: i64) -> Option<&Evaluation> {
        if self.dirty || self.evaluation.is_none() {
            self.evaluate(now_ms);
        }
        self.evaluation.as_ref()
    }

    pub fn what_if(
        &mut self,
        failed: &[&str],
        now_ms: i64,
    ) -> Option<Result<WhatIf, UnknownComponent>> {
        self.evaluation(now_ms)?;
        let (site, ev) = (self.site.as_ref()?, self.evaluation.as_ref()?);
        Some(dcim_site::what_if(site, &self.states, ev, failed))
    }

    /// Up/Down/Warning/Maintenance/Unknown of every device of the site and every device seen.
    pub fn device_statuses(&self, now_ms: i64) -> BTreeMap<String, dcim_points::Status> {
        let mut devices: BTreeSet<&str> = self.site_devices.iter().map(String::as_str).collect();
        devices.extend(self.live.devices());
        dcim_site::device_statuses(
            &self.live,
            devices,
            &self.maintenance,
            now_ms,
            &self.status_policy,
        )
    }
}

/// The redundancy level changes since the last evaluation (the live `redundancy` event), with
/// `levels` updated: every subsystem's, then every rack's.
fn level_changes(
    site: &Site,
    ev: &Evaluation,
    levels: &mut BTreeMap<(String, String), Redundancy>,
    out: &mut Vec<RedundancyChange>,
    now_ms: i64,
) {
    let mut level = |subsystem: &str, rack: &str, designed, current| {
        let key = (subsystem.to_owned(), rack.to_owned());
        match levels.insert(key, current) {
            Some(before) if before != current => out.push(RedundancyChange {
                subsystem: subsystem.to_owned(),
                rack: (!rack.is_empty()).then(|| rack.to_owned()),
                designed,
                before,
                current,
                ts_ms: now_ms,
            }),
            _ => {}
        }
    };
    for sub in &ev.subsystems {
        level(sub.subsystem.as_str(), "", sub.designed, sub.current);
    }
    for (c, h) in site.components.iter().zip(&ev.components) {
        if c.kind == dcim_site::Kind::Rack {
            for sup in &h.supply {
                level(sup.subsystem.as_str(), &c.id, sup.designed, sup.current);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_site_loses_power_redundancy_when_a_feed_opens() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../site/sites/demo.toml");
        let Ok(site) = Site::load(std::path::Path::new(path)) else {
            panic!("demo site at {path} does not load");
        };
        let now = 1_700_000_000_000;
        let samples = dcim_site::fixture::healthy_samples(&site, now);
        let mut f = Facility::new(Some(site), None).unwrap();
        f.on_samples(&samples, now);
        let c = f.tick(now);
        assert!(
            !c.records.iter().any(|r| r.alarm.starts_with("redundancy")),
            "a healthy site raises no redundancy alarm: {:?}",
            c.records
        );
        // Open feed A's breaker.
        let mut open: Vec<Sample> = samples
            .iter()
            .filter(|s| s.device == "meter-a" && s.role.as_str() == "feed.breaker_closed")
            .cloned()
            .collect();
        assert!(
            !open.is_empty(),
            "demo site binds meter-a feed.breaker_closed"
        );
        for s in &mut open {
            s.value = Some(dcim_points::Value::Bool(false));
            s.ts_ms = now + 1000;
        }
        f.on_samples(&open, now + 1000);
        let c = f.tick(now + 1000);
        let red: Vec<&Record> = c
            .records
            .iter()
            .filter(|r| r.alarm.contains("power"))
            .collect();
        assert!(
            !red.is_empty(),
            "feed loss raises a power redundancy alarm: {:?}",
            c.records
        );
        assert!(
            red.iter().all(|r| r.grade == 2),
            "losing 2N is grade 2: {red:?}"
        );
        assert!(!c.incidents.is_empty(), "a grade-2 alarm opens an incident");
        // One annunciated alarm: the racks' own alarms are grouped under it.
        let activated: Vec<&str> = c
            .records
            .iter()
            .filter(|r| r.event == dcim_alarms::Event::Activated)
            .map(|r| r.alarm.as_str())
            .collect();
        assert_eq!(activated, ["redundancy:power"]);
        let racks: Vec<&dcim_alarms::Alarm> = f
            .engine
            .active()
            .filter(|a| a.subject.starts_with("power/"))
            .collect();
        assert!(racks.len() >= 100, "per-rack alarms: {}", racks.len());
        assert!(
            racks
                .iter()
                .all(|a| f.engine.is_grouped_out(a) && a.grade == 2)
        );
        // The level changes for the live stream: the subsystem and every rack, 2N -> N.
        let power: Vec<&RedundancyChange> = c
            .redundancy
            .iter()
            .filter(|r| r.subsystem == "power")
            .collect();
        assert!(power.iter().any(|r| r.rack.is_none()));
        assert_eq!(
            power.iter().filter(|r| r.rack.is_some()).count(),
            racks.len()
        );
        assert!(
            power
                .iter()
                .all(|r| (r.before, r.current) == (Redundancy::TwoN, Redundancy::N))
        );
        assert!(
            f.tick(now + 2000).redundancy.is_empty(),
            "no change, no event"
        );
    }
}
