//! Status of devices and services (Up, Down, Warning, Maintenance, Unknown), as a pure function
//! of what was last seen and `now_ms`. Unknown that lasts past `down_after_ms` becomes Down.

use crate::live::Live;
use dcim_points::{Quality, Sample, Status, Value};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Timeouts of the status rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusPolicy {
    /// No good evidence for this long -> Unknown (default 60 s: probes run at least once a
    /// minute).
    pub unknown_after_ms: i64,
    /// Unknown for this long -> Down (default 5 min).
    pub down_after_ms: i64,
}

impl Default for StatusPolicy {
    fn default() -> Self {
        StatusPolicy {
            unknown_after_ms: 60_000,
            down_after_ms: 300_000,
        }
    }
}

/// What is known about one device or service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Observation {
    /// Last time good evidence of life arrived (ms since epoch), if ever.
    pub last_good_ms: Option<i64>,
    /// Since when the device has been reported comm-lost (the agent's own verdict), if it is.
    pub comm_lost_since_ms: Option<i64>,
    /// The device itself reports it is down (e.g. `device.online` false, a failed probe).
    pub reported_down: bool,
    /// Something is degraded (a bad or stale point, a warning flag) but it answers.
    pub warning: bool,
    /// Put in maintenance by an operator.
    pub maintenance: bool,
    /// When the status was first seen at all (used when nothing good ever arrived).
    pub first_seen_ms: Option<i64>,
}

/// The status rule:
/// 1. maintenance -> Maintenance;
/// 2. reported down -> Down;
/// 3. no good evidence since `unknown_after_ms` (or comm lost) -> Unknown, and once that has
///    lasted `down_after_ms` -> Down (Unknown starts at the comm-lost time, or at
///    `last_good + unknown_after`, or at first sight when nothing good ever came);
/// 4. warning -> Warning; else Up.
pub fn status(o: &Observation, now_ms: i64, p: &StatusPolicy) -> Status {
    if o.maintenance {
        return Status::Maintenance;
    }
    if o.reported_down {
        return Status::Down;
    }
    let unknown_since = match (o.comm_lost_since_ms, o.last_good_ms) {
        (Some(t), _) => Some(t),
        (None, Some(g)) if now_ms - g > p.unknown_after_ms => Some(g + p.unknown_after_ms),
        (None, Some(_)) => None,
        (None, None) => Some(o.first_seen_ms.unwrap_or(now_ms)),
    };
    if let Some(t) = unknown_since {
        return if now_ms - t >= p.down_after_ms {
            Status::Down
        } else {
            Status::Unknown
        };
    }
    if o.warning {
        Status::Warning
    } else {
        Status::Up
    }
}

/// What the status rule reads of the newest sample of one point.
#[derive(Debug, Clone, Copy)]
pub struct PointObs<'a> {
    pub ts_ms: i64,
    pub quality: Quality,
    pub role: &'a str,
    pub value: Option<&'a Value>,
}

impl<'a> PointObs<'a> {
    pub fn of(s: &'a Sample) -> PointObs<'a> {
        PointObs {
            ts_ms: s.ts_ms,
            quality: s.quality,
            role: s.role.as_str(),
            value: s.value.as_ref(),
        }
    }
}

/// Builds the observation of a device from its samples: newest good sample, comm-lost if its
/// newest sample says so, down when `device.online` is false, warning when any newest point is
/// bad or stale.
pub fn observe(live: &Live, device: &str, maintenance: bool) -> Observation {
    observe_points(live.device_samples(device).map(PointObs::of), maintenance)
}

/// [`observe`] over the newest sample of each point of a device, from any table of latest
/// values.
pub fn observe_points<'a>(
    points: impl IntoIterator<Item = PointObs<'a>>,
    maintenance: bool,
) -> Observation {
    let mut o = Observation {
        maintenance,
        ..Observation::default()
    };
    let mut newest: Option<(i64, Quality)> = None;
    for s in points {
        o.first_seen_ms = Some(o.first_seen_ms.map_or(s.ts_ms, |f| f.min(s.ts_ms)));
        if s.quality == Quality::Good {
            o.last_good_ms = Some(o.last_good_ms.map_or(s.ts_ms, |g| g.max(s.ts_ms)));
            if s.role == "device.online" && s.value.and_then(|v| v.as_bool()) == Some(false) {
                o.reported_down = true;
            }
        }
        if matches!(s.quality, Quality::Bad | Quality::Stale) {
            o.warning = true;
        }
        if newest.is_none_or(|(t, _)| s.ts_ms > t) {
            newest = Some((s.ts_ms, s.quality));
        }
    }
    if let Some((t, Quality::CommLost)) = newest {
        o.comm_lost_since_ms = Some(t);
    }
    o
}

/// Status of every device in `devices` (typically [`crate::Site::devices`] plus whatever
/// reported), sorted by id.
pub fn device_statuses<'a>(
    live: &Live,
    devices: impl IntoIterator<Item = &'a str>,
    maintenance: &BTreeSet<String>,
    now_ms: i64,
    policy: &StatusPolicy,
) -> BTreeMap<String, Status> {
    devices
        .into_iter()
        .map(|d| {
            let o = observe(live, d, maintenance.contains(d));
            (d.to_owned(), status(&o, now_ms, policy))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::sample;
    use dcim_points::Value;

    const T: i64 = 1_800_000_000_000;
    const P: StatusPolicy = StatusPolicy {
        unknown_after_ms: 60_000,
        down_after_ms: 300_000,
    };

    fn seen(ms_ago: i64) -> Observation {
        Observation {
            last_good_ms: Some(T - ms_ago),
            ..Observation::default()
        }
    }

    #[test]
    fn recent_good_evidence_is_up() {
        assert_eq!(status(&seen(1_000), T, &P), Status::Up);
        assert_eq!(status(&seen(60_000), T, &P), Status::Up);
    }

    #[test]
    fn no_evidence_past_the_timeout_is_unknown_then_down() {
        assert_eq!(status(&seen(60_001), T, &P), Status::Unknown);
        // Unknown since T-300_000 (+60 s) = 299_999 ms ago: still unknown.
        assert_eq!(status(&seen(359_999), T, &P), Status::Unknown);
        assert_eq!(status(&seen(360_000), T, &P), Status::Down);
    }

    #[test]
    fn comm_lost_is_unknown_from_its_start_and_down_after_the_timeout() {
        let mut o = seen(1_000);
        o.comm_lost_since_ms = Some(T - 10_000);
        assert_eq!(status(&o, T, &P), Status::Unknown);
        o.comm_lost_since_ms = Some(T - 300_000);
        assert_eq!(status(&o, T, &P), Status::Down);
    }

    #[test]
    fn never_seen_is_unknown_from_first_sight() {
        let o = Observation {
            first_seen_ms: Some(T - 1_000),
            ..Observation::default()
        };
        assert_eq!(status(&o, T, &P), Status::Unknown);
        assert_eq!(status(&o, T + 299_000, &P), Status::Down);
    }

    #[test]
    fn maintenance_beats_everything_and_reported_down_beats_warning() {
        let mut o = seen(1_000);
        o.warning = true;
        assert_eq!(status(&o, T, &P), Status::Warning);
        o.reported_down = true;
        assert_eq!(status(&o, T, &P), Status::Down);
        o.maintenance = true;
        assert_eq!(status(&o, T, &P), Status::Maintenance);
    }

    #[test]
    fn observations_from_samples() {
        let mut live = Live::new();
        live.update(sample(
            "core-1",
            "device.online",
            Value::Bool(true),
            T - 5_000,
        ));
        let mut stale = sample("core-1", "link.latency_ms", Value::Number(3.0), T - 4_000);
        stale.quality = Quality::Stale;
        live.update(stale);
        live.update(sample(
            "mmr-1",
            "device.online",
            Value::Bool(false),
            T - 1_000,
        ));
        let mut lost = sample(
            "chiller-1",
            "chiller.running",
            Value::Bool(true),
            T - 20_000,
        );
        lost.quality = Quality::CommLost;
        live.update(lost);
        let st = device_statuses(
            &live,
            ["core-1", "mmr-1", "chiller-1", "tank-1"],
            &["tank-1".to_string()].into(),
            T,
            &P,
        );
        assert_eq!(st["core-1"], Status::Warning);
        assert_eq!(st["mmr-1"], Status::Down);
        assert_eq!(st["chiller-1"], Status::Unknown);
        assert_eq!(st["tank-1"], Status::Maintenance);
        let st = device_statuses(&live, ["chiller-1"], &BTreeSet::new(), T + 280_000, &P);
        assert_eq!(st["chiller-1"], Status::Down);
    }
}
