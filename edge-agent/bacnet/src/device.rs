//! A pure BACnet device: an object database plus the request handling of a small BACnet/IP
//! server (Who-Is, ReadProperty, ReadPropertyMultiple, SubscribeCOV) and COV detection.
//!
//! [`Device::handle`] takes a datagram and the time, and returns the datagrams to send; no
//! sockets and no clocks, so the server logic is tested without the network. `server.rs` is the
//! tokio shell around it.
//!
//! Invariants: a subscription is keyed by (subscriber address, process id, object); it is
//! removed at its expiry time (checked on every call that passes `now_ms`); every accepted
//! SubscribeCOV is followed by an initial notification; a COV notification is sent for an
//! analog object when present-value moved by at least its COV increment since the last one
//! sent to that subscriber, for other objects on any change, and for any object when its
//! status flags change.

use crate::codec::apdu::{Apdu, abort_reason, confirmed, reject_reason, unconfirmed};
use crate::codec::services::{
    CovNotification, IAm, PropertyValue, ReadAccessResult, ReadPropertyAck,
    ReadPropertyMultipleAck, ReadPropertyMultipleRequest, ReadPropertyRequest, ReadResultItem,
    SubscribeCovRequest, WhoIs,
};
use crate::codec::types::{
    BacnetError, BitString, ObjectId, ObjectType, PropertyId, Segmentation, Value,
};
use crate::codec::{Body, LinkKind, NetAddr, Npdu, decode_frame, encode_frame};
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// Largest APDU this device sends or accepts (no segmentation).
pub const MAX_APDU: u16 = 1476;
/// Most COV subscriptions held at once; more are refused with resources/no-space.
pub const MAX_SUBSCRIPTIONS: usize = 1024;
/// Delay between the SimpleACK of a SubscribeCOV and the initial notification.
pub const INITIAL_NOTIFICATION_DELAY_MS: u64 = 50;
/// Vendor id 999 is reserved by ASHRAE for testing; used as the default.
pub const DEFAULT_VENDOR_ID: u16 = 999;

/// Status flags: in-alarm, fault, overridden, out-of-service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatusFlags {
    pub in_alarm: bool,
    pub fault: bool,
    pub overridden: bool,
    pub out_of_service: bool,
}

impl StatusFlags {
    pub fn to_value(self) -> Value {
        Value::BitString(BitString::from_bits(&[
            self.in_alarm,
            self.fault,
            self.overridden,
            self.out_of_service,
        ]))
    }

    pub fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::BitString(b) => Some(StatusFlags {
                in_alarm: b.bit(0),
                fault: b.bit(1),
                overridden: b.bit(2),
                out_of_service: b.bit(3),
            }),
            _ => None,
        }
    }
}

/// One analog or binary object hosted by the device.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    pub id: ObjectId,
    pub name: String,
    pub description: String,
    /// Real for analog objects, Enumerated 0/1 (inactive/active) for binary objects.
    pub present_value: Value,
    /// Engineering units (analog objects only).
    pub units: Option<u32>,
    pub cov_increment: Option<f32>,
    pub status_flags: StatusFlags,
}

impl Object {
    pub fn analog(id: ObjectId, name: &str, value: f32, units: u32, cov_increment: f32) -> Self {
        Object {
            id,
            name: name.to_string(),
            description: String::new(),
            present_value: Value::Real(value),
            units: Some(units),
            cov_increment: Some(cov_increment),
            status_flags: StatusFlags::default(),
        }
    }

    pub fn binary(id: ObjectId, name: &str, value: bool) -> Self {
        Object {
            id,
            name: name.to_string(),
            description: String::new(),
            present_value: Value::Enumerated(u32::from(value)),
            units: None,
            cov_increment: None,
            status_flags: StatusFlags::default(),
        }
    }

    pub fn with_description(mut self, d: &str) -> Self {
        self.description = d.to_string();
        self
    }

    fn property_list(&self) -> Vec<PropertyId> {
        let mut p = vec![
            PropertyId::OBJECT_IDENTIFIER,
            PropertyId::OBJECT_NAME,
            PropertyId::OBJECT_TYPE,
            PropertyId::PRESENT_VALUE,
            PropertyId::STATUS_FLAGS,
            PropertyId::EVENT_STATE,
            PropertyId::OUT_OF_SERVICE,
            PropertyId::DESCRIPTION,
        ];
        if self.units.is_some() {
            p.push(PropertyId::UNITS);
        }
        if self.cov_increment.is_some() {
            p.push(PropertyId::COV_INCREMENT);
        }
        if self.id.object_type == ObjectType::BINARY_INPUT {
            p.push(PropertyId::POLARITY);
        }
        p
    }

    fn read(&self, prop: PropertyId) -> Result<Value, BacnetError> {
        Ok(match prop {
            PropertyId::OBJECT_IDENTIFIER => Value::ObjectId(self.id),
            PropertyId::OBJECT_NAME => Value::CharacterString(self.name.clone()),
            PropertyId::OBJECT_TYPE => Value::Enumerated(u32::from(self.id.object_type.0)),
            PropertyId::PRESENT_VALUE => self.present_value.clone(),
            PropertyId::STATUS_FLAGS => self.status_flags.to_value(),
            PropertyId::EVENT_STATE => Value::Enumerated(0),
            PropertyId::OUT_OF_SERVICE => Value::Boolean(self.status_flags.out_of_service),
            PropertyId::DESCRIPTION => Value::CharacterString(self.description.clone()),
            PropertyId::UNITS if self.units.is_some() => {
                Value::Enumerated(self.units.unwrap_or_default())
            }
            PropertyId::COV_INCREMENT if self.cov_increment.is_some() => {
                Value::Real(self.cov_increment.unwrap_or_default())
            }
            PropertyId::POLARITY if self.id.object_type == ObjectType::BINARY_INPUT => {
                Value::Enumerated(0)
            }
            PropertyId::PROPERTY_LIST => Value::List(
                self.property_list()
                    .into_iter()
                    .map(|p| Value::Enumerated(p.0))
                    .collect(),
            ),
            _ => return Err(BacnetError::unknown_property()),
        })
    }
}

/// Where a reply goes: the UDP address, and the network address behind a router if the request
/// was routed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Peer {
    pub addr: SocketAddr,
    pub route: Option<(u16, Vec<u8>)>,
}

impl Peer {
    fn npdu(&self, expecting_reply: bool) -> Npdu {
        match &self.route {
            Some((net, mac)) => Npdu::routed(
                NetAddr {
                    net: *net,
                    mac: mac.clone(),
                },
                expecting_reply,
            ),
            None => Npdu::local(expecting_reply),
        }
    }
}

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub to: SocketAddr,
    pub bytes: Vec<u8>,
    /// Send this long after the datagrams before it. Used for the initial COV notification,
    /// which must reach the subscriber after its SimpleACK (some stacks, e.g. bacpypes3, only
    /// register the subscription once they have processed the ACK).
    pub delay_ms: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    pub subscriber: Peer,
    pub process_id: u32,
    pub object: ObjectId,
    pub confirmed: bool,
    /// `None` for an indefinite subscription.
    pub expires_at_ms: Option<u64>,
    last_value: Value,
    last_flags: StatusFlags,
}

/// Device object properties and the hosted objects.
#[derive(Debug, Clone)]
pub struct Device {
    pub instance: u32,
    pub name: String,
    pub vendor_id: u16,
    pub vendor_name: String,
    pub model_name: String,
    objects: BTreeMap<ObjectId, Object>,
    subscriptions: Vec<Subscription>,
    next_invoke_id: u8,
    database_revision: u32,
}

/// Errors of the object database API.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DeviceError {
    #[error("no object {0} in this device")]
    UnknownObject(ObjectId),
    #[error("object {0} already exists")]
    Duplicate(ObjectId),
    #[error("object {0}: only analog and binary input/output/value objects can be hosted")]
    UnsupportedType(ObjectId),
    #[error("object {object}: present-value {value:?} does not fit the object type")]
    WrongValueType { object: ObjectId, value: Value },
}

/// A response datagram to `peer`.
fn reply(peer: &Peer, apdu: Apdu) -> Outgoing {
    Outgoing {
        to: peer.addr,
        bytes: encode_frame(false, &peer.npdu(false), &apdu),
        delay_ms: 0,
    }
}

/// The response to a confirmed request, or an abort when it exceeds the requester's
/// `max_apdu` (this device does not segment).
fn reply_within(peer: &Peer, invoke_id: u8, response: Apdu, max_apdu: u16) -> Outgoing {
    let resp = reply(peer, response);
    let limit = usize::from(max_apdu.min(MAX_APDU));
    // The APDU is what follows BVLC (4) and NPDU headers; compare its length.
    let apdu_len = {
        let mut n = Vec::new();
        crate::codec::npdu::encode(&peer.npdu(false), &mut n);
        resp.bytes.len() - 4 - n.len()
    };
    if apdu_len > limit {
        return reply(
            peer,
            Apdu::Abort {
                server: true,
                invoke_id,
                reason: abort_reason::SEGMENTATION_NOT_SUPPORTED,
            },
        );
    }
    resp
}

impl Device {
    pub fn new(instance: u32, name: &str) -> Self {
        Device {
            instance: instance.min(ObjectId::MAX_INSTANCE - 1),
            name: name.to_string(),
            vendor_id: DEFAULT_VENDOR_ID,
            vendor_name: "dcim".to_string(),
            model_name: "dcim-bacnet simulated device".to_string(),
            objects: BTreeMap::new(),
            subscriptions: Vec::new(),
            next_invoke_id: 0,
            database_revision: 1,
        }
    }

    pub fn id(&self) -> ObjectId {
        ObjectId::device(self.instance)
    }

    pub fn add_object(&mut self, obj: Object) -> Result<(), DeviceError> {
        if !(obj.id.object_type.is_analog() || obj.id.object_type.is_binary()) {
            return Err(DeviceError::UnsupportedType(obj.id));
        }
        check_value_type(obj.id, &obj.present_value)?;
        if self.objects.contains_key(&obj.id) {
            return Err(DeviceError::Duplicate(obj.id));
        }
        self.objects.insert(obj.id, obj);
        self.database_revision = self.database_revision.wrapping_add(1);
        Ok(())
    }

    pub fn object(&self, id: ObjectId) -> Option<&Object> {
        self.objects.get(&id)
    }

    pub fn objects(&self) -> impl Iterator<Item = &Object> {
        self.objects.values()
    }

    pub fn subscriptions(&self) -> &[Subscription] {
        &self.subscriptions
    }

    /// Sets present-value and returns the COV notifications this change triggers.
    pub fn set_present_value(
        &mut self,
        id: ObjectId,
        value: Value,
        now_ms: u64,
    ) -> Result<Vec<Outgoing>, DeviceError> {
        check_value_type(id, &value)?;
        let obj = self
            .objects
            .get_mut(&id)
            .ok_or(DeviceError::UnknownObject(id))?;
        obj.present_value = value;
        Ok(self.cov_check(id, now_ms))
    }

    /// Sets the status flags (fault, in-alarm...) and returns the COV notifications triggered.
    pub fn set_status_flags(
        &mut self,
        id: ObjectId,
        flags: StatusFlags,
        now_ms: u64,
    ) -> Result<Vec<Outgoing>, DeviceError> {
        let obj = self
            .objects
            .get_mut(&id)
            .ok_or(DeviceError::UnknownObject(id))?;
        obj.status_flags = flags;
        Ok(self.cov_check(id, now_ms))
    }

    /// Drops expired subscriptions.
    pub fn expire(&mut self, now_ms: u64) {
        self.subscriptions
            .retain(|s| s.expires_at_ms.is_none_or(|t| t > now_ms));
    }

    fn cov_check(&mut self, id: ObjectId, now_ms: u64) -> Vec<Outgoing> {
        self.expire(now_ms);
        let Some(obj) = self.objects.get(&id).cloned() else {
            return Vec::new();
        };
        let mut due = Vec::new();
        for s in self.subscriptions.iter_mut().filter(|s| s.object == id) {
            let value_changed = match (&obj.present_value, &s.last_value, obj.cov_increment) {
                (Value::Real(new), Value::Real(old), Some(inc)) => (new - old).abs() >= inc,
                (new, old, _) => new != old,
            };
            if value_changed || obj.status_flags != s.last_flags {
                s.last_value = obj.present_value.clone();
                s.last_flags = obj.status_flags;
                due.push(s.clone());
            }
        }
        due.iter()
            .map(|s| self.notification(s, &obj, now_ms))
            .collect()
    }

    fn notification(&mut self, s: &Subscription, obj: &Object, now_ms: u64) -> Outgoing {
        let note = CovNotification {
            process_id: s.process_id,
            device: self.id(),
            object: obj.id,
            time_remaining: s
                .expires_at_ms
                .map(|t| (t.saturating_sub(now_ms).div_ceil(1000)) as u32)
                .unwrap_or(0),
            values: vec![
                PropertyValue {
                    property: PropertyId::PRESENT_VALUE,
                    array_index: None,
                    value: obj.present_value.clone(),
                    priority: None,
                },
                PropertyValue {
                    property: PropertyId::STATUS_FLAGS,
                    array_index: None,
                    value: obj.status_flags.to_value(),
                    priority: None,
                },
            ],
        };
        let mut data = Vec::new();
        note.encode(&mut data);
        let apdu = if s.confirmed {
            self.next_invoke_id = self.next_invoke_id.wrapping_add(1);
            Apdu::ConfirmedRequest {
                segmented_response_accepted: false,
                max_segments: 0,
                max_apdu: MAX_APDU,
                invoke_id: self.next_invoke_id,
                service: confirmed::CONFIRMED_COV_NOTIFICATION,
                data,
            }
        } else {
            Apdu::UnconfirmedRequest {
                service: unconfirmed::UNCONFIRMED_COV_NOTIFICATION,
                data,
            }
        };
        Outgoing {
            to: s.subscriber.addr,
            bytes: encode_frame(false, &s.subscriber.npdu(s.confirmed), &apdu),
            delay_ms: 0,
        }
    }

    fn i_am(&self) -> IAm {
        IAm {
            device: self.id(),
            max_apdu: u32::from(MAX_APDU),
            segmentation: Segmentation::None,
            vendor_id: self.vendor_id,
        }
    }

    /// The I-Am datagram this device sends (e.g. broadcast at start-up).
    pub fn i_am_frame(&self, broadcast: bool) -> Vec<u8> {
        let mut data = Vec::new();
        self.i_am().encode(&mut data);
        encode_frame(
            broadcast,
            &Npdu::local(false),
            &Apdu::UnconfirmedRequest {
                service: unconfirmed::I_AM,
                data,
            },
        )
    }

    fn object_list(&self) -> Vec<Value> {
        std::iter::once(Value::ObjectId(self.id()))
            .chain(self.objects.keys().map(|id| Value::ObjectId(*id)))
            .collect()
    }

    fn device_property_list() -> Vec<PropertyId> {
        vec![
            PropertyId::OBJECT_IDENTIFIER,
            PropertyId::OBJECT_NAME,
            PropertyId::OBJECT_TYPE,
            PropertyId::SYSTEM_STATUS,
            PropertyId::VENDOR_NAME,
            PropertyId::VENDOR_IDENTIFIER,
            PropertyId::MODEL_NAME,
            PropertyId::FIRMWARE_REVISION,
            PropertyId::APPLICATION_SOFTWARE_VERSION,
            PropertyId::PROTOCOL_VERSION,
            PropertyId::PROTOCOL_REVISION,
            PropertyId::PROTOCOL_SERVICES_SUPPORTED,
            PropertyId::PROTOCOL_OBJECT_TYPES_SUPPORTED,
            PropertyId::OBJECT_LIST,
            PropertyId::MAX_APDU_LENGTH_ACCEPTED,
            PropertyId::SEGMENTATION_SUPPORTED,
            PropertyId::APDU_TIMEOUT,
            PropertyId::NUMBER_OF_APDU_RETRIES,
            PropertyId::DEVICE_ADDRESS_BINDING,
            PropertyId::DATABASE_REVISION,
        ]
    }

    fn read_device(&self, prop: PropertyId) -> Result<Value, BacnetError> {
        Ok(match prop {
            PropertyId::OBJECT_IDENTIFIER => Value::ObjectId(self.id()),
            PropertyId::OBJECT_NAME => Value::CharacterString(self.name.clone()),
            PropertyId::OBJECT_TYPE => Value::Enumerated(u32::from(ObjectType::DEVICE.0)),
            PropertyId::SYSTEM_STATUS => Value::Enumerated(0),
            PropertyId::VENDOR_NAME => Value::CharacterString(self.vendor_name.clone()),
            PropertyId::VENDOR_IDENTIFIER => Value::Unsigned(u64::from(self.vendor_id)),
            PropertyId::MODEL_NAME => Value::CharacterString(self.model_name.clone()),
            PropertyId::FIRMWARE_REVISION | PropertyId::APPLICATION_SOFTWARE_VERSION => {
                Value::CharacterString(env!("CARGO_PKG_VERSION").to_string())
            }
            PropertyId::PROTOCOL_VERSION => Value::Unsigned(1),
            PropertyId::PROTOCOL_REVISION => Value::Unsigned(14),
            PropertyId::PROTOCOL_SERVICES_SUPPORTED => {
                // Bit numbers are BACnetServicesSupported positions.
                // subscribeCOV(5), readProperty(12), readPropertyMultiple(14), i-Am(26),
                // who-Is(34).
                let mut bits = vec![false; 41];
                for b in [5usize, 12, 14, 26, 34] {
                    bits[b] = true;
                }
                Value::BitString(BitString::from_bits(&bits))
            }
            PropertyId::PROTOCOL_OBJECT_TYPES_SUPPORTED => {
                let mut bits = vec![false; 60];
                for t in [0usize, 2, 3, 5, 8] {
                    bits[t] = true;
                }
                Value::BitString(BitString::from_bits(&bits))
            }
            PropertyId::OBJECT_LIST => Value::List(self.object_list()),
            PropertyId::MAX_APDU_LENGTH_ACCEPTED => Value::Unsigned(u64::from(MAX_APDU)),
            PropertyId::SEGMENTATION_SUPPORTED => Value::Enumerated(Segmentation::None as u32),
            PropertyId::APDU_TIMEOUT => Value::Unsigned(3000),
            PropertyId::NUMBER_OF_APDU_RETRIES => Value::Unsigned(3),
            PropertyId::DEVICE_ADDRESS_BINDING => Value::List(Vec::new()),
            PropertyId::DATABASE_REVISION => Value::Unsigned(u64::from(self.database_revision)),
            PropertyId::DESCRIPTION => Value::CharacterString(String::new()),
            PropertyId::PROPERTY_LIST => Value::List(
                Self::device_property_list()
                    .into_iter()
                    .map(|p| Value::Enumerated(p.0))
                    .collect(),
            ),
            _ => return Err(BacnetError::unknown_property()),
        })
    }

    /// The device's wildcard instance (4194303) addresses this device too.
    fn resolve(&self, id: ObjectId) -> ObjectId {
        if id.object_type == ObjectType::DEVICE && id.instance == ObjectId::MAX_INSTANCE {
            self.id()
        } else {
            id
        }
    }

    /// Reads one property, applying an optional array index.
    pub fn read_property(
        &self,
        object: ObjectId,
        property: PropertyId,
        array_index: Option<u32>,
    ) -> Result<Value, BacnetError> {
        let object = self.resolve(object);
        let value = if object == self.id() {
            self.read_device(property)?
        } else {
            self.objects
                .get(&object)
                .ok_or(BacnetError::unknown_object())?
                .read(property)?
        };
        let Some(index) = array_index else {
            return Ok(value);
        };
        let is_array = matches!(
            property,
            PropertyId::OBJECT_LIST | PropertyId::PROPERTY_LIST
        );
        if !is_array {
            return Err(BacnetError {
                class: BacnetError::CLASS_PROPERTY,
                code: BacnetError::CODE_PROPERTY_IS_NOT_AN_ARRAY,
            });
        }
        let Value::List(items) = value else {
            return Err(BacnetError {
                class: BacnetError::CLASS_PROPERTY,
                code: BacnetError::CODE_PROPERTY_IS_NOT_AN_ARRAY,
            });
        };
        if index == 0 {
            return Ok(Value::Unsigned(items.len() as u64));
        }
        items
            .into_iter()
            .nth(index as usize - 1)
            .ok_or(BacnetError {
                class: BacnetError::CLASS_PROPERTY,
                code: BacnetError::CODE_INVALID_ARRAY_INDEX,
            })
    }

    fn properties_of(&self, object: ObjectId, which: PropertyId) -> Option<Vec<PropertyId>> {
        let object = self.resolve(object);
        let all = if object == self.id() {
            Self::device_property_list()
        } else {
            self.objects.get(&object)?.property_list()
        };
        Some(match which {
            PropertyId::REQUIRED => all
                .into_iter()
                .filter(|p| {
                    !matches!(
                        *p,
                        PropertyId::DESCRIPTION
                            | PropertyId::COV_INCREMENT
                            | PropertyId::MODEL_NAME
                    )
                })
                .collect(),
            PropertyId::OPTIONAL => all
                .into_iter()
                .filter(|p| matches!(*p, PropertyId::DESCRIPTION | PropertyId::COV_INCREMENT))
                .collect(),
            _ => all,
        })
    }

    fn read_multiple(&self, req: &ReadPropertyMultipleRequest) -> ReadPropertyMultipleAck {
        let mut results = Vec::new();
        for spec in &req.specs {
            let mut items = Vec::new();
            for p in &spec.properties {
                let expanded = matches!(
                    p.property,
                    PropertyId::ALL | PropertyId::REQUIRED | PropertyId::OPTIONAL
                );
                if expanded {
                    match self.properties_of(spec.object, p.property) {
                        Some(list) => items.extend(list.into_iter().map(|prop| ReadResultItem {
                            property: prop,
                            array_index: None,
                            result: self.read_property(spec.object, prop, None),
                        })),
                        None => items.push(ReadResultItem {
                            property: p.property,
                            array_index: None,
                            result: Err(BacnetError::unknown_object()),
                        }),
                    }
                } else {
                    items.push(ReadResultItem {
                        property: p.property,
                        array_index: p.array_index,
                        result: self.read_property(spec.object, p.property, p.array_index),
                    });
                }
            }
            results.push(ReadAccessResult {
                object: spec.object,
                results: items,
            });
        }
        ReadPropertyMultipleAck { results }
    }

    fn subscribe(
        &mut self,
        peer: &Peer,
        req: &SubscribeCovRequest,
        now_ms: u64,
    ) -> Result<Option<Outgoing>, BacnetError> {
        self.expire(now_ms);
        let key = |s: &Subscription| {
            s.subscriber == *peer && s.process_id == req.process_id && s.object == req.object
        };
        if req.is_cancellation() {
            self.subscriptions.retain(|s| !key(s));
            return Ok(None);
        }
        let obj = self
            .objects
            .get(&req.object)
            .cloned()
            .ok_or(BacnetError::unknown_object())?;
        let expires_at_ms = match req.lifetime {
            None | Some(0) => None,
            Some(l) => Some(now_ms + u64::from(l) * 1000),
        };
        let sub = Subscription {
            subscriber: peer.clone(),
            process_id: req.process_id,
            object: req.object,
            confirmed: req.confirmed.unwrap_or(false),
            expires_at_ms,
            last_value: obj.present_value.clone(),
            last_flags: obj.status_flags,
        };
        if let Some(existing) = self.subscriptions.iter_mut().find(|s| key(s)) {
            *existing = sub.clone();
        } else {
            if self.subscriptions.len() >= MAX_SUBSCRIPTIONS {
                return Err(BacnetError {
                    class: BacnetError::CLASS_RESOURCES,
                    code: BacnetError::CODE_NO_SPACE_TO_ADD_LIST_ELEMENT,
                });
            }
            self.subscriptions.push(sub.clone());
        }
        let mut initial = self.notification(&sub, &obj, now_ms);
        initial.delay_ms = INITIAL_NOTIFICATION_DELAY_MS;
        Ok(Some(initial))
    }

    /// Handles one received datagram and returns the datagrams to send.
    pub fn handle(&mut self, from: SocketAddr, datagram: &[u8], now_ms: u64) -> Vec<Outgoing> {
        let Ok(Some(frame)) = decode_frame(datagram) else {
            return Vec::new();
        };
        let Body::Apdu(apdu) = frame.body else {
            return Vec::new();
        };
        // Only accept frames addressed to us (local, or routed to a global broadcast).
        if let Some(d) = &frame.npdu.destination
            && d.net != 0xFFFF
        {
            return Vec::new();
        }
        let addr = match frame.link {
            LinkKind::Forwarded { origin } => SocketAddr::V4(origin),
            _ => from,
        };
        let peer = Peer {
            addr,
            route: frame.npdu.source.as_ref().map(|s| (s.net, s.mac.clone())),
        };
        match apdu {
            Apdu::UnconfirmedRequest { service, data } => {
                if service == unconfirmed::WHO_IS
                    && let Ok(w) = WhoIs::decode(&data)
                    && w.matches(self.instance)
                {
                    // Answered by unicast to the requester: works on loopback and through NAT.
                    let mut d = Vec::new();
                    self.i_am().encode(&mut d);
                    return vec![reply(
                        &peer,
                        Apdu::UnconfirmedRequest {
                            service: unconfirmed::I_AM,
                            data: d,
                        },
                    )];
                }
                Vec::new()
            }
            Apdu::SegmentedConfirmedRequest { invoke_id, .. } => vec![reply(
                &peer,
                Apdu::Abort {
                    server: true,
                    invoke_id,
                    reason: abort_reason::SEGMENTATION_NOT_SUPPORTED,
                },
            )],
            Apdu::ConfirmedRequest {
                invoke_id,
                service,
                data,
                max_apdu,
                ..
            } => {
                let mut out = Vec::new();
                let response = self.confirmed(&peer, invoke_id, service, &data, now_ms, &mut out);
                let mut all = vec![reply_within(&peer, invoke_id, response, max_apdu)];
                all.extend(out);
                all
            }
            // Acks of our confirmed COV notifications, and stray responses: nothing to do.
            _ => Vec::new(),
        }
    }

    fn confirmed(
        &mut self,
        peer: &Peer,
        invoke_id: u8,
        service: u8,
        data: &[u8],
        now_ms: u64,
        after: &mut Vec<Outgoing>,
    ) -> Apdu {
        let reject = |reason| Apdu::Reject { invoke_id, reason };
        let error = |error| Apdu::Error {
            invoke_id,
            service,
            error,
        };
        match service {
            confirmed::READ_PROPERTY => {
                let Ok(req) = ReadPropertyRequest::decode(data) else {
                    return reject(reject_reason::INVALID_TAG);
                };
                match self.read_property(req.object, req.property, req.array_index) {
                    Ok(value) => {
                        let mut d = Vec::new();
                        ReadPropertyAck {
                            object: self.resolve(req.object),
                            property: req.property,
                            array_index: req.array_index,
                            value,
                        }
                        .encode(&mut d);
                        Apdu::ComplexAck {
                            invoke_id,
                            service,
                            data: d,
                        }
                    }
                    Err(e) => error(e),
                }
            }
            confirmed::READ_PROPERTY_MULTIPLE => {
                let Ok(req) = ReadPropertyMultipleRequest::decode(data) else {
                    return reject(reject_reason::INVALID_TAG);
                };
                let mut d = Vec::new();
                self.read_multiple(&req).encode(&mut d);
                Apdu::ComplexAck {
                    invoke_id,
                    service,
                    data: d,
                }
            }
            confirmed::SUBSCRIBE_COV => {
                let Ok(req) = SubscribeCovRequest::decode(data) else {
                    return reject(reject_reason::INVALID_TAG);
                };
                match self.subscribe(peer, &req, now_ms) {
                    Ok(initial) => {
                        after.extend(initial);
                        Apdu::SimpleAck { invoke_id, service }
                    }
                    Err(e) => error(e),
                }
            }
            _ => reject(reject_reason::UNRECOGNIZED_SERVICE),
        }
    }
}

fn check_value_type(id: ObjectId, value: &Value) -> Result<(), DeviceError> {
    let ok = if id.object_type.is_analog() {
        matches!(value, Value::Real(_))
    } else if id.object_type.is_binary() {
        matches!(value, Value::Enumerated(0 | 1))
    } else {
        true
    };
    if ok {
        Ok(())
    } else {
        Err(DeviceError::WrongValueType {
            object: id,
            value: value.clone(),
        })
    }
}
