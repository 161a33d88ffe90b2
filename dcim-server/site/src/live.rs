//! The latest sample of every point ([`Live`]): the table the state rules and the energy
//! rules read. Pure data; the server updates it with every ingested sample.

use crate::model::Binding;
use dcim_points::Sample;
use std::collections::{BTreeSet, HashMap};

/// The latest sample of every point, indexed by device, then by point and by role: an update
/// is one device lookup and one point lookup (no key is built for a point already known), a
/// binding lookup reads only the device's points of that role, and a device's samples are its
/// own list. Every per-sample and per-device cost is independent of the size of the site.
#[derive(Debug, Clone, Default)]
pub struct Live {
    devices: HashMap<String, DeviceLive>,
}

/// The points of one device.
#[derive(Debug, Clone, Default)]
struct DeviceLive {
    samples: Vec<Sample>,
    /// Point name -> index in `samples`.
    by_point: HashMap<String, usize>,
    /// Role -> indexes in `samples`.
    by_role: HashMap<String, Vec<usize>>,
}

impl Live {
    pub fn new() -> Live {
        Live::default()
    }

    /// Builds the table from any samples; for each `(device, point)` the newest one wins.
    pub fn from_samples<'a>(samples: impl IntoIterator<Item = &'a Sample>) -> Live {
        let mut live = Live::new();
        for s in samples {
            live.update(s.clone());
        }
        live
    }

    /// Inserts a sample, keeping only the newest per `(device, point)`.
    pub fn update(&mut self, s: Sample) {
        let d = match self.devices.get_mut(&s.device) {
            Some(d) => d,
            None => self.devices.entry(s.device.clone()).or_default(),
        };
        match d.by_point.get(&s.point) {
            Some(&i) => {
                let old = &mut d.samples[i];
                if s.ts_ms < old.ts_ms {
                    return;
                }
                if old.role != s.role {
                    // A point that changed its role moves to the new role's list.
                    if let Some(v) = d.by_role.get_mut(old.role.as_str()) {
                        v.retain(|&j| j != i);
                    }
                    d.by_role
                        .entry(s.role.as_str().to_owned())
                        .or_default()
                        .push(i);
                }
                *old = s;
            }
            None => {
                let i = d.samples.len();
                d.by_point.insert(s.point.clone(), i);
                match d.by_role.get_mut(s.role.as_str()) {
                    Some(v) => v.push(i),
                    None => {
                        d.by_role.insert(s.role.as_str().to_owned(), vec![i]);
                    }
                }
                d.samples.push(s);
            }
        }
    }

    /// The newest sample matching a binding (device, role and a subset of labels).
    pub fn get(&self, b: &Binding) -> Option<&Sample> {
        let d = self.devices.get(&b.device)?;
        d.by_role
            .get(b.role.as_str())?
            .iter()
            .map(|&i| &d.samples[i])
            .filter(|s| b.labels.iter().all(|(k, v)| s.labels.get(k) == Some(v)))
            .max_by_key(|s| s.ts_ms)
    }

    /// Every sample of a device.
    pub fn device_samples(&self, device: &str) -> impl Iterator<Item = &Sample> {
        self.devices
            .get(device)
            .into_iter()
            .flat_map(|d| d.samples.iter())
    }

    /// Every device with at least one sample.
    pub fn devices(&self) -> BTreeSet<&str> {
        self.devices.keys().map(String::as_str).collect()
    }

    /// Number of points (device and point) in the table.
    pub fn len(&self) -> usize {
        self.devices.values().map(|d| d.samples.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }
}
