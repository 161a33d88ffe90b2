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

/// Where and how to reach a BACnet device (defined with the configuration).
pub use crate::config::BacnetTarget;

/// One polled point: its index in the profile and what to read.
#[derive(Debug, Clone, PartialEq)]
struct Polled {
    idx: usize,
    prop: PropertyRef,
    binary: bool,
}

/// Whether the device answering at the target is the configured device instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// Not checked since the device was last (re)contacted.
    Unverified,
    Confirmed,
    /// Something else answers: `Some(instance)` when it named itself.
    Mismatch(Option<u32>),
}

pub struct BacnetDevice {
    pub device: String,
    pub target: BacnetTarget,
    profile: Profile,
    tracker: DeviceTracker,
    /// Points per poll class (fast, normal, slow).
    classes: [Vec<Polled>; 3],
    identity: Identity,
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
        profile.require_protocol(Protocol::Bacnet)?;
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
            identity: Identity::Unverified,
        })
    }

    pub fn identity(&self) -> Identity {
        self.identity
    }

    /// The configured Device object.
    fn device_object(&self) -> ObjectId {
        ObjectId::new(ObjectType::DEVICE, self.target.instance)
    }

    /// What the shell reads to identify the device: the Device object's identifier through the
    /// wildcard instance (any device answers with its own identifier).
    pub fn identity_request() -> PropertyRef {
        PropertyRef::new(
            ObjectId::new(ObjectType::DEVICE, ObjectId::MAX_INSTANCE),
            PropertyId::OBJECT_IDENTIFIER,
        )
    }

    /// The same through the configured instance, for devices that refuse the wildcard.
    pub fn identity_request_fallback(&self) -> PropertyRef {
        PropertyRef::new(self.device_object(), PropertyId::OBJECT_IDENTIFIER)
    }

    /// The answer to the identity read (see [`BacnetDevice::identity_request`]).
    pub fn on_identity(
        &mut self,
        answer: &Result<BValue, ClientError>,
        now_ms: i64,
        out: &mut Vec<Sample>,
    ) -> Vec<EventDraft> {
        let before = self.tracker.online();
        let mut events = Vec::new();
        match answer {
            Ok(BValue::ObjectId(id)) if *id == self.device_object() => {
                events.extend(self.confirm(now_ms));
            }
            Ok(BValue::ObjectId(id)) if id.object_type == ObjectType::DEVICE => {
                events.extend(self.mismatch(Some(id.instance), now_ms, out));
            }
            Err(e) if e.is_comm_failure() => {
                self.unverify();
                let idx = self.all_points();
                self.tracker.failed(&idx, now_ms, out);
            }
            // An error for the configured Device object (unknown object) or an answer that is
            // not a device identifier: not the configured device.
            _ => events.extend(self.mismatch(None, now_ms, out)),
        }
        events.extend(self.transition(before, now_ms));
        events
    }

    /// After a failed exchange whoever answers next is checked again; a mismatch stays one
    /// until the right device is confirmed (so its end is reported).
    fn unverify(&mut self) {
        if self.identity == Identity::Confirmed {
            self.identity = Identity::Unverified;
        }
    }

    fn all_points(&self) -> Vec<usize> {
        self.classes.iter().flatten().map(|p| p.idx).collect()
    }

    fn confirm(&mut self, now_ms: i64) -> Option<EventDraft> {
        let was = std::mem::replace(&mut self.identity, Identity::Confirmed);
        matches!(was, Identity::Mismatch(_)).then(|| EventDraft {
            ts_ms: now_ms,
            device: self.device.clone(),
            kind: "device.identity_confirmed".into(),
            severity: Severity::Info,
            message: format!(
                "{}: device {} answers at {} again",
                self.device, self.target.instance, self.target.address
            ),
            data: serde_json::json!({
                "bacnet_instance": self.target.instance,
                "address": self.target.address.to_string(),
            }),
            test: false,
        })
    }

    /// Something else answers: a communication fault. No sample from it is used; the points
    /// go stale (last good value kept) and comm_lost when it lasts.
    fn mismatch(
        &mut self,
        seen: Option<u32>,
        now_ms: i64,
        out: &mut Vec<Sample>,
    ) -> Option<EventDraft> {
        let was = std::mem::replace(&mut self.identity, Identity::Mismatch(seen));
        let idx = self.all_points();
        self.tracker.failed(&idx, now_ms, out);
        if matches!(was, Identity::Mismatch(_)) {
            return None;
        }
        let who = match seen {
            Some(i) => format!("device {i}"),
            None => "a device without that device object".to_owned(),
        };
        Some(EventDraft {
            ts_ms: now_ms,
            device: self.device.clone(),
            kind: "device.identity_mismatch".into(),
            severity: Severity::Trouble,
            message: format!(
                "{}: {who} answers at {} instead of the configured device {}: its values are not used",
                self.device, self.target.address, self.target.instance
            ),
            data: serde_json::json!({
                "bacnet_instance": self.target.instance,
                "answered_instance": seen,
                "address": self.target.address.to_string(),
            }),
            test: false,
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

    /// What one poll of `class` reads, in order: the configured Device object's identifier
    /// first (every poll checks who answers), then the class's points.
    pub fn request(&self, class: PollClass) -> Vec<PropertyRef> {
        std::iter::once(self.identity_request_fallback())
            .chain(self.classes[class_index(class)].iter().map(|p| p.prop))
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

    /// The outcome of a poll of `class` (as returned by `read_multiple` for
    /// [`BacnetDevice::request`]). Values count only when the first result is the configured
    /// Device object's identifier.
    pub fn on_poll(
        &mut self,
        class: PollClass,
        result: &Result<Vec<Result<BValue, BacnetError>>, ClientError>,
        now_ms: i64,
        out: &mut Vec<Sample>,
    ) -> Vec<EventDraft> {
        let before = self.tracker.online();
        let mut events = Vec::new();
        match result {
            Ok(values) => {
                let expected = BValue::ObjectId(self.device_object());
                match values.first() {
                    Some(Ok(v)) if *v == expected => events.extend(self.confirm(now_ms)),
                    first => {
                        let seen = match first {
                            Some(Ok(BValue::ObjectId(id))) => Some(id.instance),
                            _ => None,
                        };
                        events.extend(self.mismatch(seen, now_ms, out));
                        events.extend(self.transition(before, now_ms));
                        return events;
                    }
                }
                self.tracker.answered(now_ms, out);
                let polled = &self.classes[class_index(class)];
                for (p, v) in polled.iter().zip(&values[1..]) {
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
                // The device refused the whole request, identity check included: what answers
                // is not known to be the configured device, so nothing it says is used.
                events.extend(self.mismatch(None, now_ms, out));
            }
            Err(_) => {
                self.unverify();
                let idx: Vec<usize> = self.classes[class_index(class)]
                    .iter()
                    .map(|p| p.idx)
                    .collect();
                self.tracker.failed(&idx, now_ms, out);
            }
        }
        events.extend(self.transition(before, now_ms));
        events
    }

    /// A COV notification for `object`: present-value (and status-flags `fault` -> bad).
    pub fn on_cov(
        &mut self,
        object: ObjectId,
        values: &dcim_bacnet::CovNotification,
        now_ms: i64,
        out: &mut Vec<Sample>,
    ) -> Option<EventDraft> {
        if self.identity != Identity::Confirmed || values.device != self.device_object() {
            // A notification from a device not (or no longer) known to be this one.
            return None;
        }
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

    fn transition(&mut self, before: Option<bool>, now_ms: i64) -> Option<EventDraft> {
        if self.tracker.online() == Some(false) && before != Some(false) {
            // Lost: whatever answers next is checked again first.
            if self.identity == Identity::Confirmed {
                self.unverify();
            }
        }
        EventDraft::comm_change(
            &self.device,
            before,
            self.tracker.online(),
            ["stopped answering", "answers again"],
            now_ms,
            serde_json::json!({
                "profile": self.profile.name,
                "bacnet_instance": self.target.instance,
            }),
        )
    }
}

fn deliver(
    ingest: &Ingest,
    samples: &mut Vec<Sample>,
    events: impl IntoIterator<Item = EventDraft>,
) {
    for e in events {
        warn!(device = %e.device, kind = %e.kind, "{}", e.message);
        let _ = ingest.event(e);
    }
    if !samples.is_empty() {
        ingest.samples(std::mem::take(samples));
    }
}

enum Msg {
    Identity(Result<BValue, ClientError>),
    Poll(
        PollClass,
        Result<Vec<Result<BValue, BacnetError>>, ClientError>,
    ),
    Cov(ObjectId, dcim_bacnet::CovNotification),
}

/// Runs one BACnet device: opens the socket, polls per poll class (after the device's identity
/// is confirmed), subscribes to COV and turns every answer into samples and events.
pub async fn run(ingest: Arc<Ingest>, mut dev: BacnetDevice, mut shutdown: watch::Receiver<bool>) {
    let Some(client) = open_client(&dev, &mut shutdown).await else {
        return;
    };
    if !dev.target.discover {
        client.add_device(DeviceInfo::fixed(dev.target.instance, dev.target.address));
    }
    let (tx, rx) = mpsc::channel::<Msg>(64);
    // Set by the receiving loop from the device's identity: polls wait until who answers is
    // checked.
    let confirmed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = spawn_polls(&dev, &client, &tx, &confirmed);
    let cov = dev.cov_objects();
    if !cov.is_empty() {
        tasks.push(tokio::spawn(subscribe_cov(
            client.clone(),
            dev.target.instance,
            dev.device.clone(),
            cov,
            tx.clone(),
        )));
    }
    drop(tx);
    receive(&ingest, &mut dev, rx, &confirmed, shutdown).await;
    for t in tasks {
        t.abort();
    }
}

/// The client socket, retried every 5 s until it opens; `None` when shut down first.
async fn open_client(
    dev: &BacnetDevice,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<Arc<BacnetClient>> {
    let comm = dev.profile.comm;
    let config = ClientConfig {
        broadcast: dev.target.address,
        timeout: Duration::from_millis(comm.timeout_ms.max(50)),
        retries: comm.retries.min(5),
        ..ClientConfig::default()
    };
    loop {
        match BacnetClient::bind_with(dev.target.bind, config.clone()).await {
            Ok(c) => return Some(Arc::new(c)),
            Err(e) => {
                warn!(device = %dev.device, bind = %dev.target.bind, error = %e, "cannot open the BACnet socket; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                    _ = shutdown.changed() => if *shutdown.borrow() { return None },
                }
            }
        }
    }
}

/// One polling task per poll class: reads the class's properties every period once the
/// identity is confirmed, the identity until then.
fn spawn_polls(
    dev: &BacnetDevice,
    client: &Arc<BacnetClient>,
    tx: &mpsc::Sender<Msg>,
    confirmed: &Arc<std::sync::atomic::AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let instance = dev.target.instance;
    let fallback = dev.identity_request_fallback();
    let mut tasks = Vec::new();
    for (class, period) in dev.schedule() {
        let props = dev.request(class);
        let client = client.clone();
        let tx = tx.clone();
        let discover = dev.target.discover;
        let target = dev.target.address;
        let confirmed = confirmed.clone();
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
                let msg = if confirmed.load(std::sync::atomic::Ordering::SeqCst) {
                    Msg::Poll(class, client.read_multiple(instance, &props).await)
                } else {
                    let wait = period.clamp(Duration::from_millis(100), Duration::from_millis(500));
                    Msg::Identity(read_identity(&client, instance, fallback, target, wait).await)
                };
                if tx.send(msg).await.is_err() {
                    return;
                }
            }
        }));
    }
    tasks
}

/// Subscribes to COV for `objects`, retrying the refused ones every 60 s (they stay polled).
async fn subscribe_cov(
    client: Arc<BacnetClient>,
    instance: u32,
    device: String,
    objects: Vec<ObjectId>,
    tx: mpsc::Sender<Msg>,
) {
    // Forwarders live in the set: dropping it (task aborted) cancels the subscriptions.
    let mut forwarders = tokio::task::JoinSet::new();
    let mut pending = objects;
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
}

/// Feeds the answers to the device (and its comm-loss check every second) into ingest until
/// shutdown or until every sender is gone; keeps `confirmed` in step with the identity.
async fn receive(
    ingest: &Ingest,
    dev: &mut BacnetDevice,
    mut rx: mpsc::Receiver<Msg>,
    confirmed: &std::sync::atomic::AtomicBool,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    let mut out = Vec::new();
    loop {
        tokio::select! {
            m = rx.recv() => match m {
                Some(Msg::Identity(r)) => {
                    let e = dev.on_identity(&r, ingest.clock().now_ms(), &mut out);
                    deliver(ingest, &mut out, e);
                }
                Some(Msg::Poll(class, r)) => {
                    let e = dev.on_poll(class, &r, ingest.clock().now_ms(), &mut out);
                    deliver(ingest, &mut out, e);
                }
                Some(Msg::Cov(o, n)) => {
                    let e = dev.on_cov(o, &n, ingest.clock().now_ms(), &mut out);
                    deliver(ingest, &mut out, e);
                }
                None => break,
            },
            _ = ticker.tick() => {
                let e = dev.tick(ingest.clock().now_ms(), &mut out);
                deliver(ingest, &mut out, e);
            }
            _ = shutdown.changed() => if *shutdown.borrow() { break },
        }
        confirmed.store(
            dev.identity() == Identity::Confirmed,
            std::sync::atomic::Ordering::SeqCst,
        );
    }
}

/// Reads the identifier of the Device object answering for `instance`: through the wildcard
/// instance first (the answer names the device, whichever it is), through the configured
/// instance when the device refuses the wildcard (older devices, and bacpypes3 0.0.110). When
/// that fails too, a unicast Who-Is to the address names whatever device answers there.
async fn read_identity(
    client: &BacnetClient,
    instance: u32,
    fallback: PropertyRef,
    address: SocketAddr,
    wait: Duration,
) -> Result<BValue, ClientError> {
    match client
        .read_property(instance, BacnetDevice::identity_request())
        .await
    {
        Err(e) if !e.is_comm_failure() => match client.read_property(instance, fallback).await {
            Err(e) if !e.is_comm_failure() => {
                let seen = client.discover_at(address, None, wait).await.ok();
                match seen
                    .into_iter()
                    .flatten()
                    .find(|d| d.addr == address && d.instance != instance)
                {
                    Some(d) => Ok(BValue::ObjectId(ObjectId::new(
                        ObjectType::DEVICE,
                        d.instance,
                    ))),
                    None => Err(e),
                }
            }
            r => r,
        },
        r => r,
    }
}
