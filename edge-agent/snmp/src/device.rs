//! The pure SNMP device: per-link expansion of a profile, the requests of each poll class, and
//! answers -> samples through the shared `DeviceTracker`, with the LLDP check of designed paths.
//! No sockets, no clock: time is passed in.

use crate::value::SnmpValue;
use dcim_points::{Quality, Sample, Value};
use dcim_profiles::{
    Address, DeviceTracker, PollClass, Profile, Protocol, Reading, SnmpAddress, SnmpSettings,
};
use dcim_wire::Severity;
use std::collections::{BTreeMap, HashMap};

/// One designed network link through a port of the device (from the agent configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkConfig {
    /// The link's name in the site model; becomes the `link` label.
    pub name: String,
    /// IF-MIB `ifIndex` of the port.
    pub if_index: u32,
    /// LLDP-MIB local port number of the port (`lldpLocPortNum`); most switches use the
    /// `ifIndex`, which is the default.
    pub lldp_port: u32,
    /// The system name (LLDP `lldpRemSysName`) the designed path leads to; `None` = not checked.
    pub neighbor: Option<String>,
}

/// Something the driver reports besides samples (the agent spools it as an event; `test` is
/// never set by the driver).
pub use dcim_wire::EventDraft as Notice;

/// The GET and walk requests of one poll class.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClassRequest {
    /// Object instances, at most `max_oids_per_request` per GET.
    pub gets: Vec<Vec<String>>,
    /// Table columns to walk (GETBULK).
    pub walks: Vec<String>,
}

/// What a poll of one class brought back.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PollAnswer {
    /// GET results by OID.
    pub values: HashMap<String, SnmpValue>,
    /// Walked rows by column OID: (index arcs after the column, value).
    pub rows: HashMap<String, Vec<(Vec<u32>, SnmpValue)>>,
}

#[derive(Debug, Clone)]
struct Polled {
    idx: usize,
    oid: String,
    /// For a walked column: the row pattern, `None` = any component.
    pattern: Option<Vec<Option<u32>>>,
}

/// Replaces the link placeholders of an OID, index pattern or label value.
fn fill(text: &str, link: &LinkConfig) -> String {
    text.replace("{if_index}", &link.if_index.to_string())
        .replace("{lldp_port}", &link.lldp_port.to_string())
        .replace("{link}", &link.name)
}

/// Replaces `{name}` in a label value by the device's label `name` (e.g. `feed = "{feed}"` with
/// the device configured with `labels = { feed = "A" }`).
fn fill_device(text: &str, device_labels: &BTreeMap<String, String>) -> String {
    let mut t = text.to_owned();
    for (k, v) in device_labels {
        t = t.replace(&format!("{{{k}}}"), v);
    }
    t
}

/// The profile with every per-link point (an OID or index with `{if_index}`/`{lldp_port}`)
/// replaced by one point per link: id `{id}.{link}`, placeholders filled, `{link}` in label
/// values replaced by the link's name. Per-link points of a device without links are left out.
/// `{name}` in any label value is replaced by the device's label `name`.
pub fn expand(
    profile: &Profile,
    links: &[LinkConfig],
    device_labels: &BTreeMap<String, String>,
) -> Profile {
    let mut out = profile.clone();
    out.points.clear();
    for p in &profile.points {
        let mut p = p.clone();
        p.labels = p
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), fill_device(v, device_labels)))
            .collect();
        let p = &p;
        match &p.address {
            Address::Snmp(a) if a.per_link() => {
                for l in links {
                    let mut q = p.clone();
                    q.id = format!("{}.{}", p.id, l.name);
                    q.address = Address::Snmp(SnmpAddress {
                        oid: fill(&a.oid, l),
                        index: a.index.as_deref().map(|i| fill(i, l)),
                    });
                    q.labels = p
                        .labels
                        .iter()
                        .map(|(k, v)| (k.clone(), fill(v, l)))
                        .collect();
                    q.labels.insert("link".into(), l.name.clone());
                    out.points.push(q);
                }
            }
            _ => out.points.push(p.clone()),
        }
    }
    out
}

fn class_index(c: PollClass) -> usize {
    match c {
        PollClass::Fast => 0,
        PollClass::Normal => 1,
        PollClass::Slow => 2,
    }
}

/// Per link with an expected neighbour: its `link.up` and `link.neighbor` points.
#[derive(Debug, Clone)]
struct Designed {
    link: String,
    expected: String,
    up: Option<usize>,
    neighbor: Option<usize>,
    /// Reported mismatch (to report a mismatch once and its end once).
    mismatch: bool,
}

/// One SNMP device (pure).
pub struct SnmpDevice {
    pub device: String,
    profile: Profile,
    settings: SnmpSettings,
    tracker: DeviceTracker,
    classes: [Vec<Polled>; 3],
    designed: Vec<Designed>,
    links: Vec<LinkConfig>,
}

impl SnmpDevice {
    pub fn new(
        device: &str,
        profile: &Profile,
        links: Vec<LinkConfig>,
        device_labels: &BTreeMap<String, String>,
        now_ms: i64,
    ) -> Result<SnmpDevice, String> {
        profile.require_protocol(Protocol::Snmp)?;
        let profile = expand(profile, &links, device_labels);
        if let Some((p, (k, v))) = profile.points.iter().find_map(|p| {
            p.labels
                .iter()
                .find(|(_, v)| v.contains('{'))
                .map(|kv| (p, kv))
        }) {
            return Err(format!(
                "point `{}`: label {k} = \"{v}\" names a device label this device does not have; add it to the device's `labels`",
                p.id
            ));
        }
        let mut classes: [Vec<Polled>; 3] = Default::default();
        for (idx, p) in profile.points.iter().enumerate() {
            let Address::Snmp(a) = &p.address else {
                continue;
            };
            let pattern = a.index.as_ref().map(|ix| {
                ix.split('.')
                    .map(|c| c.parse::<u32>().ok())
                    .collect::<Vec<_>>()
            });
            classes[class_index(p.poll)].push(Polled {
                idx,
                oid: a.oid.clone(),
                pattern,
            });
        }
        if classes.iter().all(Vec::is_empty) {
            return Err(format!(
                "profile `{}` has no SNMP points for this device (per-link points need links)",
                profile.name
            ));
        }
        let find = |role: &str, link: &str| {
            profile.points.iter().position(|p| {
                p.role.as_str() == role && p.labels.get("link").map(String::as_str) == Some(link)
            })
        };
        let designed = links
            .iter()
            .filter_map(|l| {
                l.neighbor.as_ref().map(|n| Designed {
                    link: l.name.clone(),
                    expected: n.clone(),
                    up: find("link.up", &l.name),
                    neighbor: find("link.neighbor", &l.name),
                    mismatch: false,
                })
            })
            .collect();
        Ok(SnmpDevice {
            device: device.to_owned(),
            settings: profile.snmp.unwrap_or_default(),
            tracker: DeviceTracker::new(device, &profile, now_ms),
            profile,
            classes,
            designed,
            links,
        })
    }

    /// The profile after per-link expansion (point indices of samples refer to it).
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// Last value and quality of the point `id` (of the expanded profile).
    pub fn current(&self, id: &str) -> Option<(Option<&Value>, Option<Quality>)> {
        let idx = self.profile.points.iter().position(|p| p.id == id)?;
        Some(self.tracker.current(idx))
    }

    pub fn links(&self) -> &[LinkConfig] {
        &self.links
    }

    /// The poll classes that have points, with their period in ms.
    pub fn schedule(&self) -> Vec<(PollClass, u64)> {
        PollClass::ALL
            .into_iter()
            .filter(|c| !self.classes[class_index(*c)].is_empty())
            .map(|c| (c, self.profile.poll.period_ms(c).max(100)))
            .collect()
    }

    /// What one poll of `class` asks for.
    pub fn request(&self, class: PollClass) -> ClassRequest {
        let polled = &self.classes[class_index(class)];
        let mut gets: Vec<String> = Vec::new();
        let mut walks: Vec<String> = Vec::new();
        for p in polled {
            let list = if p.pattern.is_some() {
                &mut walks
            } else {
                &mut gets
            };
            if !list.contains(&p.oid) {
                list.push(p.oid.clone());
            }
        }
        ClassRequest {
            gets: gets
                .chunks(usize::from(self.settings.max_oids_per_request.max(1)))
                .map(<[String]>::to_vec)
                .collect(),
            walks,
        }
    }

    pub fn max_repetitions(&self) -> u32 {
        self.settings.max_repetitions
    }

    fn reading(&self, p: &Polled, answer: &PollAnswer) -> Reading {
        let value = match &p.pattern {
            None => answer.values.get(&p.oid),
            Some(pattern) => answer.rows.get(&p.oid).and_then(|rows| {
                rows.iter()
                    .find(|(ix, _)| {
                        ix.len() == pattern.len()
                            && ix
                                .iter()
                                .zip(pattern)
                                .all(|(a, b)| b.is_none_or(|b| b == *a))
                    })
                    .map(|(_, v)| v)
            }),
        };
        match value.and_then(SnmpValue::raw) {
            Some(raw) => self.profile.points[p.idx].reading(&raw),
            // Not there (noSuchObject/Instance, end of the view, no matching row): the device
            // answered without this value.
            None => Reading::bad(None),
        }
    }

    /// The outcome of a poll of `class`: the answer, or why there was none (no answer within
    /// the timeout, authentication or privacy refused, ...). Returns the notices to report.
    pub fn on_poll(
        &mut self,
        class: PollClass,
        result: &Result<PollAnswer, String>,
        now_ms: i64,
        out: &mut Vec<Sample>,
    ) -> Vec<Notice> {
        let before = self.tracker.online();
        let mut notices = Vec::new();
        let polled = self.classes[class_index(class)].clone();
        match result {
            Ok(answer) => {
                self.tracker.answered(now_ms, out);
                let mut readings: BTreeMap<usize, Reading> = polled
                    .iter()
                    .map(|p| (p.idx, self.reading(p, answer)))
                    .collect();
                notices.extend(self.check_designed(&mut readings, now_ms));
                for (idx, r) in readings {
                    self.tracker.reading(idx, r, now_ms, out);
                }
            }
            Err(_) => {
                let idx: Vec<usize> = polled.iter().map(|p| p.idx).collect();
                self.tracker.failed(&idx, now_ms, out);
            }
        }
        notices.extend(self.transition(before, now_ms));
        notices
    }

    /// A link that is up but leads to another neighbour than designed does not carry the
    /// designed path: its `link.up` is reported `bad` (the value kept), never good, and the
    /// mismatch is reported once.
    fn check_designed(
        &mut self,
        readings: &mut BTreeMap<usize, Reading>,
        now_ms: i64,
    ) -> Vec<Notice> {
        let mut notices = Vec::new();
        for i in 0..self.designed.len() {
            let d = &self.designed[i];
            let (Some(up), Some(nb)) = (d.up, d.neighbor) else {
                continue;
            };
            let neighbor = match readings.get(&nb) {
                Some(r) if r.quality == Quality::Good => r.value.clone(),
                Some(_) => None,
                None => match self.tracker.current(nb) {
                    (v, Some(Quality::Good)) => v.cloned(),
                    _ => None,
                },
            };
            let Some(Value::Text(seen)) = neighbor else {
                continue;
            };
            let matches = seen.trim().eq_ignore_ascii_case(d.expected.trim());
            if !matches {
                match readings.get_mut(&up) {
                    Some(r) => r.quality = Quality::Bad,
                    // `link.up` is polled in another class: take its last value back now.
                    None => {
                        if let (Some(v), Some(Quality::Good)) = self.tracker.current(up) {
                            readings.insert(up, Reading::bad(Some(v.clone())));
                        }
                    }
                }
            }
            let d = &mut self.designed[i];
            if matches == d.mismatch {
                d.mismatch = !matches;
                let (kind, severity, message) = if matches {
                    (
                        "link.neighbor_confirmed",
                        Severity::Info,
                        format!(
                            "{}: link {} leads to {} as designed again",
                            self.device, d.link, d.expected
                        ),
                    )
                } else {
                    (
                        "link.neighbor_mismatch",
                        Severity::Trouble,
                        format!(
                            "{}: link {} leads to {seen}, not to {} as designed: the designed path is not proven",
                            self.device, d.link, d.expected
                        ),
                    )
                };
                notices.push(Notice {
                    ts_ms: now_ms,
                    device: self.device.clone(),
                    kind: kind.into(),
                    severity,
                    message,
                    data: serde_json::json!({
                        "link": d.link,
                        "expected": d.expected,
                        "seen": seen,
                    }),
                    test: false,
                });
            }
        }
        notices
    }

    /// Periodic comm-loss check.
    pub fn tick(&mut self, now_ms: i64, out: &mut Vec<Sample>) -> Vec<Notice> {
        let before = self.tracker.online();
        self.tracker.tick(now_ms, out);
        self.transition(before, now_ms).into_iter().collect()
    }

    fn transition(&self, before: Option<bool>, now_ms: i64) -> Option<Notice> {
        Notice::comm_change(
            &self.device,
            before,
            self.tracker.online(),
            ["stopped answering", "answers again"],
            now_ms,
            serde_json::json!({ "profile": self.profile.name }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROFILE: &str = r#"
[profile]
name = "sw"
protocol = "snmp"
[snmp]
max_oids_per_request = 2
[[point]]
id = "up"
role = "link.up"
labels = { link = "{link}" }
oid = "1.3.6.1.2.1.2.2.1.8.{if_index}"
true_values = [1]
poll = "fast"
[[point]]
id = "neighbor"
role = "link.neighbor"
labels = { link = "{link}" }
oid = "1.0.8802.1.1.2.1.4.1.1.9"
index = "*.{lldp_port}.*"
poll = "fast"
[[point]]
id = "name"
role = "device.name"
oid = "1.3.6.1.2.1.1.5.0"
poll = "fast"
"#;

    fn links() -> Vec<LinkConfig> {
        vec![
            LinkConfig {
                name: "a".into(),
                if_index: 1,
                lldp_port: 11,
                neighbor: Some("core-a".into()),
            },
            LinkConfig {
                name: "b".into(),
                if_index: 2,
                lldp_port: 12,
                neighbor: None,
            },
        ]
    }

    fn device() -> SnmpDevice {
        let p = dcim_profiles::load_str("sw.toml", PROFILE).unwrap();
        SnmpDevice::new("sw", &p, links(), &BTreeMap::new(), 0).unwrap()
    }

    #[test]
    fn per_link_points_are_expanded_and_requests_chunked() {
        let d = device();
        let ids: Vec<&str> = d.profile().points.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["up.a", "up.b", "neighbor.a", "neighbor.b", "name"]);
        assert_eq!(d.profile().points[1].labels["link"], "b");
        let r = d.request(PollClass::Fast);
        assert_eq!(
            r.gets,
            vec![
                vec![
                    "1.3.6.1.2.1.2.2.1.8.1".to_string(),
                    "1.3.6.1.2.1.2.2.1.8.2".to_string()
                ],
                vec!["1.3.6.1.2.1.1.5.0".to_string()],
            ]
        );
        assert_eq!(
            r.walks,
            vec!["1.0.8802.1.1.2.1.4.1.1.9".to_string()],
            "walked once"
        );
    }

    fn answer(neighbor_a: &str) -> PollAnswer {
        PollAnswer {
            values: [
                ("1.3.6.1.2.1.2.2.1.8.1".to_string(), SnmpValue::Integer(1)),
                ("1.3.6.1.2.1.2.2.1.8.2".to_string(), SnmpValue::Integer(7)),
                ("1.3.6.1.2.1.1.5.0".to_string(), SnmpValue::Missing),
            ]
            .into(),
            rows: [(
                "1.0.8802.1.1.2.1.4.1.1.9".to_string(),
                vec![
                    (vec![0, 11, 1], SnmpValue::Text(neighbor_a.into())),
                    (vec![0, 13, 1], SnmpValue::Text("elsewhere".into())),
                ],
            )]
            .into(),
        }
    }

    /// Hazard: a port cabled to the wrong switch is up, and read as the designed path it would
    /// hide a lost redundancy; `lowerLayerDown` (7) read as non-zero would hide a lost link.
    #[test]
    fn a_wrong_neighbour_makes_link_up_bad_once_and_lower_layer_down_is_down() {
        let mut d = device();
        let mut out = Vec::new();
        let n = d.on_poll(PollClass::Fast, &Ok(answer("core-x")), 1, &mut out);
        let get = |out: &[Sample], id: &str| out.iter().rfind(|s| s.point == id).cloned().unwrap();
        let a = get(&out, "up.a");
        assert_eq!(
            (a.quality, a.value),
            (Quality::Bad, Some(Value::Bool(true)))
        );
        assert_eq!(get(&out, "up.b").value, Some(Value::Bool(false)));
        assert_eq!(
            get(&out, "neighbor.b").quality,
            Quality::Bad,
            "no LLDP row for port 12"
        );
        assert_eq!(get(&out, "name").quality, Quality::Bad, "noSuchInstance");
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].kind, "link.neighbor_mismatch");
        out.clear();
        assert!(
            d.on_poll(PollClass::Fast, &Ok(answer("core-x")), 2, &mut out)
                .is_empty()
        );
        let n = d.on_poll(PollClass::Fast, &Ok(answer("CORE-A")), 3, &mut out);
        assert_eq!(n[0].kind, "link.neighbor_confirmed");
        assert_eq!(get(&out, "up.a").quality, Quality::Good);
    }

    #[test]
    fn a_failed_poll_makes_points_stale_then_comm_lost() {
        let mut d = device();
        let mut out = Vec::new();
        d.on_poll(PollClass::Fast, &Ok(answer("core-a")), 1, &mut out);
        out.clear();
        d.on_poll(PollClass::Fast, &Err("timeout".into()), 2, &mut out);
        assert!(out.iter().all(|s| s.quality == Quality::Stale));
        let n = d.tick(1 + 15_000, &mut out);
        assert_eq!(n[0].kind, "device.comm_lost");
    }
}
