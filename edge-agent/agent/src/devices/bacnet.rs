//! BACnet/IP devices through `dcim-bacnet`: one [`BacnetClient`] (one UDP socket) per device,
//! the device keyed by its device instance, either at a fixed address or found by Who-Is.
//!
//! [`BacnetDevice`] is the pure part: it plans one ReadPropertyMultiple per poll class from the
//! profile's BACnet points, turns answers (per-property values or errors, or no answer at all)
//! and COV notifications into samples through the shared `DeviceTracker` (quality, deadband,
//! comm-lost), and reports comm-lost / restored transitions as events. [`run`] is the shell:
//! polls every class at its profile period, subscribes COV for points with `cov = true` (and
//! keeps polling them, so a lapsed subscription never freezes a value), retries failed
//! subscriptions once a minute, and ticks the tracker.

use crate::ingest::Ingest;
use crate::payload::EventDraft;
use crate::uplink::unix_ms;
use dcim_bacnet::{
    BacnetClient, BacnetError, ClientConfig, ClientError, CovEvent, CovOptions, DeviceInfo,
    ObjectId, ObjectType, PropertyId, PropertyRef, StatusFlags, Value as BValue,
};
use dcim_points::Sample;
use dcim_profiles::{Address, DeviceTracker, PollClass, Profile, Protocol, Raw, Reading};
use dcim_wire::Severity;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

/// Where and how to reach a BACnet device (from the `bacnet = { ... }` connection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BacnetTarget {
    /// The device's address; with `discover`, where the Who-Is goes (broadcast or unicast).
    pub address: SocketAddr,
    pub instance: u32,
    /// Local UDP address of the client socket.
    pub bind: SocketAddr,
    /// Find the device by Who-Is/I-Am instead of using `address` as its address.
    pub discover: bool,
}

/// One polled point: its index in the profile and what to read.
#[derive(Debug, Clone, PartialEq)]
struct Polled {
    idx: usize,
    prop: PropertyRef,
    binary: bool,
}

pub struct BacnetDevice {
    pub device: String,
    pub target: BacnetTarget,
    profile: Profile,
    tracker: DeviceTracker,
    /// Points per poll class (fast, normal, slow).
    classes: [Vec<Polled>; 3],
}

/// The `dcim-bacnet` object id of a profile address.
pub fn object_id(t: dcim_profiles::ObjectType, instance: u32) -> ObjectId {
    ObjectId::new(ObjectType(t.code()), instance)
}

/// A BACnet value as a profile raw value (`None` for types a point cannot hold).
pub fn raw_of(v: &BValue, binary_object: bool) -> Option<Raw> {
    Some(match v {
        BValue::Boolean(b) => Raw::Bool(*b),
        BValue::Enumerated(e) if binary_object => Raw::Bool(*e != 0),
        BValue::Enumerated(e) => Raw::Unsigned(u64::from(*e)),
        BValue::Unsigned(u) => Raw::Unsigned(*u),
        BValue::Signed(i) => Raw::Signed(*i),
        BValue::Real(r) => Raw::Float(f64::from(*r)),
        BValue::Double(d) => Raw::Float(*d),
        BValue::CharacterString(s) => Raw::Text(s.clone()),
        _ => return None,
    })
}

fn class_index(c: PollClass) -> usize {
    match c {
        PollClass::Fast => 0,
        PollClass::Normal => 1,
        PollClass::Slow => 2,
    }
}

impl BacnetDevice {
    pub fn new(
        device: &str,
        target: BacnetTarget,
        profile: Profile,
        now_ms: i64,
    ) -> Result<BacnetDevice, String> {
        if profile.protocol != Protocol::Bacnet {
            return Err(format!(
                "profile `{}` is for {}, not bacnet",
                profile.name,
                profile.protocol.as_str()
            ));
        }
        let mut classes: [Vec<Polled>; 3] = Default::default();
        for (idx, p) in profile.points.iter().enumerate() {
            let Address::Bacnet(a) = &p.address else {
                continue;
            };
            let property = PropertyId::from_name(&a.property).ok_or_else(|| {
                format!(
                    "point `{}`: property `{}` is not a BACnet property this agent knows",
                    p.id, a.property
                )
            })?;
            let object = object_id(a.object, a.instance);
            classes[class_index(p.poll)].push(Polled {
                idx,
                prop: PropertyRef::new(object, property),
                binary: object.object_type.is_binary(),
            });
        }
        if classes.iter().all(Vec::is_empty) {
            return Err(format!("profile `{}` has no BACnet points", profile.name));
        }
        Ok(BacnetDevice {
            device: device.to_owned(),
            target,
            tracker: DeviceTracker::new(device, &profile, now_ms),
            profile,
            classes,
        })
    }

    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// The poll classes that have points, with their period.
    pub fn schedule(&self) -> Vec<(PollClass, Duration)> {
        PollClass::ALL
            .into_iter()
            .filter(|c| !self.classes[class_index(*c)].is_empty())
            .map(|c| {
                (
                    c,
                    Duration::from_millis(self.profile.poll.period_ms(c).max(50)),
                )
            })
            .collect()
    }

    /// What one poll of `class` reads, in order.
    pub fn request(&self, class: PollClass) -> Vec<PropertyRef> {
        self.classes[class_index(class)]
            .iter()
            .map(|p| p.prop)
            .collect()
    }

    /// Objects with `cov = true` (subscribed for present-value notifications).
    pub fn cov_objects(&self) -> Vec<ObjectId> {
        let mut out: Vec<ObjectId> = self
            .profile
            .points
            .iter()
            .filter_map(|p| match &p.address {
                Address::Bacnet(a) if a.cov => Some(object_id(a.object, a.instance)),
                _ => None,
            })
            .collect();
        out.dedup();
        out
    }

    /// The outcome of a poll of `class` (as returned by `read_multiple`).
    pub fn on_poll(
        &mut self,
        class: PollClass,
        result: &Result<Vec<Result<BValue, BacnetError>>, ClientError>,
        now_ms: i64,
        out: &mut Vec<Sample>,
    ) -> Option<EventDraft> {
        let before = self.tracker.online();
        let polled = &self.classes[class_index(class)];
        match result {
            Ok(values) => {
                self.tracker.answered(now_ms, out);
                for (p, v) in polled.iter().zip(values) {
                    let r = match v {
                        Ok(v) => match raw_of(v, p.binary) {
                            Some(raw) => self.profile.points[p.idx].reading(&raw),
                            None => Reading::bad(None),
                        },
                        Err(_) => Reading::bad(None),
                    };
                    self.tracker.reading(p.idx, r, now_ms, out);
                }
            }
            Err(e) if !e.is_comm_failure() => {
                // The device answered, but refused the whole request: every point is bad.
                self.tracker.answered(now_ms, out);
                for p in polled {
                    self.tracker.reading(p.idx, Reading::bad(None), now_ms, out);
                }
            }
            Err(_) => {
                let idx: Vec<usize> = polled.iter().map(|p| p.idx).collect();
                self.tracker.failed(&idx, now_ms, out);
            }
        }
        self.transition(before, now_ms)
    }

    /// A COV notification for `object`: present-value (and status-flags `fault` -> bad).
    pub fn on_cov(
        &mut self,
        object: ObjectId,
        values: &dcim_bacnet::CovNotification,
        now_ms: i64,
        out: &mut Vec<Sample>,
    ) -> Option<EventDraft> {
        let before = self.tracker.online();
        self.tracker.answered(now_ms, out);
        let fault = values
            .value_of(PropertyId::STATUS_FLAGS)
            .and_then(StatusFlags::from_value)
            .is_some_and(|f| f.fault);
        for p in self.classes.iter().flatten() {
            if p.prop.object != object {
                continue;
            }
            let Some(v) = values.value_of(p.prop.property) else {
                continue;
            };
            let r = match raw_of(v, p.binary) {
                Some(raw) => {
                    let r = self.profile.points[p.idx].reading(&raw);
                    if fault { Reading::bad(r.value) } else { r }
                }
                None => Reading::bad(None),
            };
            self.tracker.reading(p.idx, r, now_ms, out);
        }
        self.transition(before, now_ms)
    }

    /// Periodic comm-loss check.
    pub fn tick(&mut self, now_ms: i64, out: &mut Vec<Sample>) -> Option<EventDraft> {
        let before = self.tracker.online();
        self.tracker.tick(now_ms, out);
        self.transition(before, now_ms)
    }

    fn transition(&self, before: Option<bool>, now_ms: i64) -> Option<EventDraft> {
        let (kind, severity, message) = match (before, self.tracker.online()) {
            (b, Some(false)) if b != Some(false) => (
                "device.comm_lost",
                Severity::Trouble,
                format!("{} stopped answering", self.device),
            ),
            (Some(false), Some(true)) => (
                "device.comm_restored",
                Severity::Info,
                format!("{} answers again", self.device),
            ),
            _ => return None,
        };
        Some(EventDraft {
            ts_ms: now_ms,
            device: self.device.clone(),
            kind: kind.into(),
            severity,
            message,
            data: serde_json::json!({
                "profile": self.profile.name,
                "bacnet_instance": self.target.instance,
            }),
            test: false,
        })
    }
}

fn deliver(ingest: &Ingest, samples: &mut Vec<Sample>, event: Option<EventDraft>) {
    if let Some(e) = event {
        warn!(device = %e.device, kind = %e.kind, "{}", e.message);
        let _ = ingest.event(e);
    }
    if !samples.is_empty() {
        ingest.samples(std::mem::take(samples));
    }
}

enum Msg {
    Poll(
        PollClass,
        Result<Vec<Result<BValue, BacnetError>>, ClientError>,
    ),
    Cov(ObjectId, dcim_bacnet::CovNotification),
}

pub async fn run(ingest: Arc<Ingest>, mut dev: BacnetDevice, mut shutdown: watch::Receiver<bool>) {
    let comm = dev.profile.comm;
    let config = ClientConfig {
        broadcast: dev.target.address,
        timeout: Duration::from_millis(comm.timeout_ms.max(50)),
        retries: comm.retries.min(5),
        ..ClientConfig::default()
    };
    let client = loop {
        match BacnetClient::bind_with(dev.target.bind, config.clone()).await {
            Ok(c) => break Arc::new(c),
            Err(e) => {
                warn!(device = %dev.device, bind = %dev.target.bind, error = %e, "cannot open the BACnet socket; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                    _ = shutdown.changed() => if *shutdown.borrow() { return },
                }
            }
        }
    };
    let instance = dev.target.instance;
    if !dev.target.discover {
        client.add_device(DeviceInfo::fixed(instance, dev.target.address));
    }
    let (tx, mut rx) = mpsc::channel::<Msg>(64);
    let mut tasks = Vec::new();
    for (class, period) in dev.schedule() {
        let props = dev.request(class);
        let client = client.clone();
        let tx = tx.clone();
        let discover = dev.target.discover;
        let target = dev.target.address;
        tasks.push(tokio::spawn(async move {
            let mut iv = tokio::time::interval(period);
            iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                iv.tick().await;
                if discover && client.device(instance).is_none() {
                    let _ = client
                        .find_device(instance, target, period.min(Duration::from_secs(3)))
                        .await;
                }
                let r = client.read_multiple(instance, &props).await;
                if tx.send(Msg::Poll(class, r)).await.is_err() {
                    return;
                }
            }
        }));
    }
    let cov = dev.cov_objects();
    if !cov.is_empty() {
        let client = client.clone();
        let tx = tx.clone();
        let device = dev.device.clone();
        tasks.push(tokio::spawn(async move {
            // Forwarders live in the set: dropping it (task aborted) cancels the subscriptions.
            let mut forwarders = tokio::task::JoinSet::new();
            let mut pending = cov;
            loop {
                let mut still = Vec::new();
                for object in pending {
                    match client
                        .subscribe_cov(instance, object, CovOptions::default())
                        .await
                    {
                        Ok(mut s) => {
                            let tx = tx.clone();
                            forwarders.spawn(async move {
                                while let Some(ev) = s.next().await {
                                    if let CovEvent::Notification(n) = ev
                                        && tx.send(Msg::Cov(s.object(), n)).await.is_err()
                                    {
                                        break;
                                    }
                                }
                            });
                        }
                        Err(e) => {
                            info!(device = %device, object = ?object, error = %e, "COV subscription failed; the point stays polled, retry in 60 s");
                            still.push(object);
                        }
                    }
                }
                pending = still;
                tokio::time::sleep(Duration::from_secs(60)).await;
                while forwarders.try_join_next().is_some() {}
            }
        }));
    }
    drop(tx);
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    let mut out = Vec::new();
    loop {
        tokio::select! {
            m = rx.recv() => match m {
                Some(Msg::Poll(class, r)) => {
                    let e = dev.on_poll(class, &r, unix_ms(), &mut out);
                    deliver(&ingest, &mut out, e);
                }
                Some(Msg::Cov(o, n)) => {
                    let e = dev.on_cov(o, &n, unix_ms(), &mut out);
                    deliver(&ingest, &mut out, e);
                }
                None => break,
            },
            _ = ticker.tick() => {
                let e = dev.tick(unix_ms(), &mut out);
                deliver(&ingest, &mut out, e);
            }
            _ = shutdown.changed() => if *shutdown.borrow() { break },
        }
    }
    for t in tasks {
        t.abort();
    }
}
