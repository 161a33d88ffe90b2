//! BACnet/IP client over tokio UDP: Who-Is/I-Am discovery with devices keyed by device
//! instance, confirmed requests with invoke-id management, per-attempt timeout and retries,
//! ReadPropertyMultiple with per-property results, and SubscribeCOV with renewal.
//!
//! One receive task owns the socket's read side and routes every datagram: responses go to the
//! waiting request by (source address, invoke id); I-Am updates the [`DeviceTable`]; COV
//! notifications go to the subscription that owns their process id (confirmed ones are
//! acknowledged first). A late reply to a request that already timed out finds no waiter and is
//! dropped, so it can never be mistaken for the answer to a later request.

use crate::codec::apdu::{Apdu, abort_reason, confirmed, reject_reason, unconfirmed};
use crate::codec::services::{
    CovNotification, IAm, PropertyReference, ReadAccessSpec, ReadPropertyAck,
    ReadPropertyMultipleAck, ReadPropertyMultipleRequest, ReadPropertyRequest, SubscribeCovRequest,
    WhoIs,
};
use crate::codec::types::{BacnetError, ObjectId, PropertyId, Segmentation, Value};
use crate::codec::{Body, DecodeError, LinkKind, NetAddr, Npdu, decode_frame, encode_frame};
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// The standard BACnet/IP port.
pub const BACNET_PORT: u16 = 47808;

#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Where Who-Is broadcasts go. Default: the limited broadcast 255.255.255.255:47808, which
    /// reaches the local subnet of the default interface; on multi-homed hosts set the subnet's
    /// directed broadcast ([`directed_broadcast`]), or a unicast address (tests on loopback).
    pub broadcast: SocketAddr,
    /// Time to wait for each attempt of a confirmed request.
    pub timeout: Duration,
    /// Retransmissions after the first attempt.
    pub retries: u32,
    /// Largest APDU we accept (we do not accept segmented responses).
    pub max_apdu: u16,
    /// Most property references put in one ReadPropertyMultiple request; longer lists are
    /// split, and a request whose answer would need segmentation is split further.
    pub max_properties_per_request: usize,
}

/// The directed broadcast address of the IPv4 subnet `ip/prefix_len`, e.g. 10.1.2.3/24 ->
/// 10.1.2.255:port. Use it for [`ClientConfig::broadcast`] on hosts with several interfaces.
pub fn directed_broadcast(ip: Ipv4Addr, prefix_len: u8, port: u16) -> SocketAddr {
    let host_bits = 32u32.saturating_sub(u32::from(prefix_len.min(32)));
    let mask = if host_bits == 32 {
        0
    } else {
        u32::MAX << host_bits
    };
    let b = u32::from(ip) | !mask;
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(b), port))
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            broadcast: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::BROADCAST, BACNET_PORT)),
            timeout: Duration::from_secs(2),
            retries: 2,
            max_apdu: 1476,
            max_properties_per_request: 64,
        }
    }
}

/// A device found by discovery (or added statically), keyed by its device instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    pub instance: u32,
    /// UDP address of the device, or of the router in front of it.
    pub addr: SocketAddr,
    /// Network address behind a router, if the device is not on the local network.
    pub route: Option<NetAddr>,
    pub max_apdu: u32,
    pub segmentation: Segmentation,
    pub vendor_id: u16,
}

impl DeviceInfo {
    /// A statically configured device (no discovery), e.g. across a NAT where Who-Is cannot go.
    pub fn fixed(instance: u32, addr: SocketAddr) -> Self {
        DeviceInfo {
            instance,
            addr,
            route: None,
            max_apdu: 480,
            segmentation: Segmentation::None,
            vendor_id: 0,
        }
    }
}

/// What an I-Am changed in the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceChange {
    New,
    Moved { from: SocketAddr },
    Unchanged,
}

/// Known devices by instance. Pure: the client feeds it I-Am messages with their time.
#[derive(Debug, Default, Clone)]
pub struct DeviceTable {
    devices: BTreeMap<u32, (DeviceInfo, u64)>,
}

impl DeviceTable {
    /// Records an I-Am; an I-Am from a new address moves the device there.
    pub fn record(&mut self, info: DeviceInfo, now_ms: u64) -> DeviceChange {
        let change = match self.devices.get(&info.instance) {
            None => DeviceChange::New,
            Some((old, _)) if old.addr != info.addr || old.route != info.route => {
                DeviceChange::Moved { from: old.addr }
            }
            Some(_) => DeviceChange::Unchanged,
        };
        self.devices.insert(info.instance, (info, now_ms));
        change
    }

    pub fn get(&self, instance: u32) -> Option<&DeviceInfo> {
        self.devices.get(&instance).map(|(d, _)| d)
    }

    /// Devices whose last I-Am arrived at or after `since_ms`.
    pub fn seen_since(&self, since_ms: u64) -> Vec<DeviceInfo> {
        self.devices
            .values()
            .filter(|(_, t)| *t >= since_ms)
            .map(|(d, _)| d.clone())
            .collect()
    }

    pub fn all(&self) -> Vec<DeviceInfo> {
        self.devices.values().map(|(d, _)| d.clone()).collect()
    }
}

/// One property of one object, as the agent polls it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PropertyRef {
    pub object: ObjectId,
    pub property: PropertyId,
    pub array_index: Option<u32>,
}

impl PropertyRef {
    pub fn new(object: ObjectId, property: PropertyId) -> Self {
        PropertyRef {
            object,
            property,
            array_index: None,
        }
    }

    pub fn present_value(object: ObjectId) -> Self {
        Self::new(object, PropertyId::PRESENT_VALUE)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("socket error: {0}")]
    Io(#[from] io::Error),
    #[error("device {0} is not known (not discovered and not added)")]
    UnknownDevice(u32),
    #[error("no answer from device {instance} at {addr} after {attempts} attempts")]
    Timeout {
        instance: u32,
        addr: SocketAddr,
        attempts: u32,
    },
    #[error("device answered with error {0}")]
    Bacnet(BacnetError),
    #[error("device rejected the request (reason {0})")]
    Reject(u8),
    #[error("device aborted the request (reason {0})")]
    Abort(u8),
    #[error("the response needs segmentation, which is not supported")]
    SegmentationNotSupported,
    #[error("undecodable response: {0}")]
    Decode(#[from] DecodeError),
    #[error("response does not match the request")]
    UnexpectedResponse,
    #[error("all 256 invoke ids towards {0} are in use")]
    Busy(SocketAddr),
    #[error("the client is shut down")]
    Closed,
}

impl ClientError {
    /// True when the device did not answer at all (as opposed to answering with an error).
    pub fn is_comm_failure(&self) -> bool {
        matches!(
            self,
            ClientError::Timeout { .. } | ClientError::Io(_) | ClientError::UnknownDevice(_)
        )
    }
}

/// Options of a COV subscription.
#[derive(Debug, Clone, Copy)]
pub struct CovOptions {
    /// Subscription lifetime in seconds (renewed at 3/4 of it). Must be at least 1.
    pub lifetime_s: u32,
    /// Ask for ConfirmedCOVNotification instead of unconfirmed ones.
    pub confirmed: bool,
}

impl Default for CovOptions {
    fn default() -> Self {
        CovOptions {
            lifetime_s: 300,
            confirmed: false,
        }
    }
}

/// What a COV subscription stream yields.
#[derive(Debug)]
pub enum CovEvent {
    Notification(CovNotification),
    /// The subscription was renewed (the device acknowledged it).
    Renewed,
    /// A renewal failed; the subscription may lapse. Renewal keeps being retried.
    RenewalFailed(ClientError),
}

type PendingKey = (SocketAddr, u8);

struct Shared {
    socket: UdpSocket,
    config: ClientConfig,
    epoch: Instant,
    pending: Mutex<HashMap<PendingKey, oneshot::Sender<Apdu>>>,
    next_invoke: Mutex<u8>,
    devices: Mutex<DeviceTable>,
    cov: Mutex<HashMap<u32, mpsc::UnboundedSender<CovEvent>>>,
    next_process_id: Mutex<u32>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn device(&self, instance: u32) -> Result<DeviceInfo, ClientError> {
        lock(&self.devices)
            .get(instance)
            .cloned()
            .ok_or(ClientError::UnknownDevice(instance))
    }

    fn npdu_to(dev: &DeviceInfo, expecting_reply: bool) -> Npdu {
        match &dev.route {
            Some(r) => Npdu::routed(r.clone(), expecting_reply),
            None => Npdu::local(expecting_reply),
        }
    }

    fn allocate_invoke_id(
        &self,
        addr: SocketAddr,
    ) -> Result<(u8, oneshot::Receiver<Apdu>), ClientError> {
        let mut pending = lock(&self.pending);
        let mut next = lock(&self.next_invoke);
        for _ in 0..256 {
            let id = *next;
            *next = next.wrapping_add(1);
            if let std::collections::hash_map::Entry::Vacant(e) = pending.entry((addr, id)) {
                let (tx, rx) = oneshot::channel();
                e.insert(tx);
                return Ok((id, rx));
            }
        }
        Err(ClientError::Busy(addr))
    }

    /// Sends a confirmed request to device `instance` and waits for its response APDU, with
    /// per-attempt timeout and retries (same invoke id). The device address is looked up when
    /// the request starts, so the next request after an I-Am from a new address goes there.
    async fn request(
        &self,
        instance: u32,
        service: u8,
        data: Vec<u8>,
    ) -> Result<Apdu, ClientError> {
        let dev = self.device(instance)?;
        let (invoke_id, mut rx) = self.allocate_invoke_id(dev.addr)?;
        let max_apdu = self.config.max_apdu.min(dev.max_apdu.min(1476) as u16);
        let frame = encode_frame(
            false,
            &Self::npdu_to(&dev, true),
            &Apdu::ConfirmedRequest {
                segmented_response_accepted: false,
                max_segments: 0,
                max_apdu,
                invoke_id,
                service,
                data,
            },
        );
        let attempts = self.config.retries + 1;
        let mut result = Err(ClientError::Timeout {
            instance,
            addr: dev.addr,
            attempts,
        });
        for _ in 0..attempts {
            if let Err(e) = self.socket.send_to(&frame, dev.addr).await {
                result = Err(ClientError::Io(e));
                break;
            }
            match tokio::time::timeout(self.config.timeout, &mut rx).await {
                Ok(Ok(apdu)) => {
                    result = Ok(apdu);
                    break;
                }
                Ok(Err(_)) => {
                    result = Err(ClientError::Closed);
                    break;
                }
                Err(_elapsed) => continue,
            }
        }
        lock(&self.pending).remove(&(dev.addr, invoke_id));
        let apdu = result?;
        match apdu {
            Apdu::Error { error, .. } => Err(ClientError::Bacnet(error)),
            Apdu::Reject { reason, .. } => Err(ClientError::Reject(reason)),
            Apdu::Abort { reason, .. } if reason == abort_reason::SEGMENTATION_NOT_SUPPORTED => {
                Err(ClientError::SegmentationNotSupported)
            }
            Apdu::Abort { reason, .. } => Err(ClientError::Abort(reason)),
            Apdu::SegmentedComplexAck { .. } => Err(ClientError::SegmentationNotSupported),
            Apdu::SimpleAck { service: s, .. } | Apdu::ComplexAck { service: s, .. }
                if s != service =>
            {
                Err(ClientError::UnexpectedResponse)
            }
            other => Ok(other),
        }
    }

    async fn send_reply(&self, to: SocketAddr, npdu: &Npdu, apdu: Apdu) {
        let bytes = encode_frame(false, npdu, &apdu);
        if let Err(e) = self.socket.send_to(&bytes, to).await {
            tracing::debug!(%to, error = %e, "bacnet client: reply failed");
        }
    }

    async fn dispatch(&self, from: SocketAddr, datagram: &[u8]) {
        let frame = match decode_frame(datagram) {
            Ok(Some(f)) => f,
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(%from, error = %e, "bacnet client: undecodable datagram");
                return;
            }
        };
        let Body::Apdu(apdu) = frame.body else {
            return;
        };
        let addr = match frame.link {
            LinkKind::Forwarded { origin } => SocketAddr::V4(origin),
            _ => from,
        };
        let reply_npdu = match &frame.npdu.source {
            Some(s) => Npdu::routed(s.clone(), false),
            None => Npdu::local(false),
        };
        match apdu {
            Apdu::UnconfirmedRequest { service, data } => match service {
                unconfirmed::I_AM => {
                    if let Ok(iam) = IAm::decode(&data) {
                        self.on_i_am(iam, addr, frame.npdu.source.clone());
                    }
                }
                unconfirmed::UNCONFIRMED_COV_NOTIFICATION => {
                    if let Ok(n) = CovNotification::decode(&data) {
                        self.on_cov(n);
                    }
                }
                _ => {}
            },
            Apdu::ConfirmedRequest {
                invoke_id,
                service,
                data,
                ..
            } => {
                let response = self.confirmed_request(invoke_id, service, &data);
                self.send_reply(addr, &reply_npdu, response).await;
            }
            Apdu::SegmentedConfirmedRequest { invoke_id, .. } => {
                let abort = Apdu::Abort {
                    server: true,
                    invoke_id,
                    reason: abort_reason::SEGMENTATION_NOT_SUPPORTED,
                };
                self.send_reply(addr, &reply_npdu, abort).await;
            }
            response if response.is_response() => {
                self.on_response(from, &reply_npdu, response).await
            }
            _ => {}
        }
    }

    /// The answer to a confirmed request from a server: only COV notifications are served.
    fn confirmed_request(&self, invoke_id: u8, service: u8, data: &[u8]) -> Apdu {
        if service == confirmed::CONFIRMED_COV_NOTIFICATION {
            match CovNotification::decode(data) {
                Ok(n) => {
                    self.on_cov(n);
                    Apdu::SimpleAck { invoke_id, service }
                }
                Err(_) => Apdu::Reject {
                    invoke_id,
                    reason: reject_reason::INVALID_TAG,
                },
            }
        } else {
            Apdu::Reject {
                invoke_id,
                reason: reject_reason::UNRECOGNIZED_SERVICE,
            }
        }
    }

    /// A response to one of our requests, handed to its waiter; the other segments of a
    /// segmented answer are refused.
    async fn on_response(&self, from: SocketAddr, reply_npdu: &Npdu, response: Apdu) {
        let Some(invoke_id) = response.invoke_id() else {
            return;
        };
        if matches!(response, Apdu::SegmentedComplexAck { .. }) {
            // Tell the server we will not take the other segments.
            let abort = Apdu::Abort {
                server: false,
                invoke_id,
                reason: abort_reason::SEGMENTATION_NOT_SUPPORTED,
            };
            self.send_reply(from, reply_npdu, abort).await;
        }
        let waiter = lock(&self.pending).remove(&(from, invoke_id));
        if let Some(tx) = waiter {
            let _ = tx.send(response);
        }
    }

    fn on_i_am(&self, iam: IAm, addr: SocketAddr, route: Option<NetAddr>) {
        let info = DeviceInfo {
            instance: iam.device.instance,
            addr,
            route,
            max_apdu: iam.max_apdu,
            segmentation: iam.segmentation,
            vendor_id: iam.vendor_id,
        };
        let now = self.now_ms();
        let change = lock(&self.devices).record(info, now);
        if let DeviceChange::Moved { from } = change {
            tracing::info!(
                instance = iam.device.instance,
                %from,
                to = %addr,
                "bacnet device moved to a new address"
            );
        }
    }

    fn on_cov(&self, n: CovNotification) {
        let tx = lock(&self.cov).get(&n.process_id).cloned();
        if let Some(tx) = tx {
            let _ = tx.send(CovEvent::Notification(n));
        }
    }
}

/// The BACnet/IP client. Dropping it stops its receive task.
pub struct BacnetClient {
    shared: Arc<Shared>,
    rx_task: JoinHandle<()>,
}

impl Drop for BacnetClient {
    fn drop(&mut self) {
        self.rx_task.abort();
    }
}

impl BacnetClient {
    /// Binds with the default configuration (`addr` port 0 picks an ephemeral port).
    pub async fn bind(addr: SocketAddr) -> io::Result<BacnetClient> {
        Self::bind_with(addr, ClientConfig::default()).await
    }

    pub async fn bind_with(addr: SocketAddr, config: ClientConfig) -> io::Result<BacnetClient> {
        let socket = UdpSocket::bind(addr).await?;
        socket.set_broadcast(true)?;
        let shared = Arc::new(Shared {
            socket,
            config,
            epoch: Instant::now(),
            pending: Mutex::new(HashMap::new()),
            next_invoke: Mutex::new(0),
            devices: Mutex::new(DeviceTable::default()),
            cov: Mutex::new(HashMap::new()),
            next_process_id: Mutex::new(1),
        });
        let rx_task = tokio::spawn(receive_loop(shared.clone()));
        Ok(BacnetClient { shared, rx_task })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.shared.socket.local_addr()
    }

    pub fn config(&self) -> &ClientConfig {
        &self.shared.config
    }

    /// Sends a Who-Is to `target` (a broadcast or unicast address) without waiting.
    pub async fn who_is(&self, range: Option<(u32, u32)>, target: SocketAddr) -> io::Result<()> {
        let mut data = Vec::new();
        WhoIs { range }.encode(&mut data);
        let broadcast = target == self.shared.config.broadcast;
        let frame = encode_frame(
            broadcast,
            &Npdu::local(false),
            &Apdu::UnconfirmedRequest {
                service: unconfirmed::WHO_IS,
                data,
            },
        );
        self.shared.socket.send_to(&frame, target).await.map(|_| ())
    }

    /// Broadcasts Who-Is (to the configured broadcast address) and returns the devices in
    /// `range` that answered within `wait`.
    pub async fn discover(
        &self,
        range: Option<(u32, u32)>,
        wait: Duration,
    ) -> io::Result<Vec<DeviceInfo>> {
        self.discover_at(self.shared.config.broadcast, range, wait)
            .await
    }

    /// Like [`BacnetClient::discover`] but sends the Who-Is to `target` (e.g. a device's
    /// unicast address).
    pub async fn discover_at(
        &self,
        target: SocketAddr,
        range: Option<(u32, u32)>,
        wait: Duration,
    ) -> io::Result<Vec<DeviceInfo>> {
        let since = self.shared.now_ms();
        self.who_is(range, target).await?;
        tokio::time::sleep(wait).await;
        let who = WhoIs { range };
        Ok(lock(&self.shared.devices)
            .seen_since(since)
            .into_iter()
            .filter(|d| who.matches(d.instance))
            .collect())
    }

    /// Sends Who-Is for one instance until it answers or `wait` elapses; returns it.
    pub async fn find_device(
        &self,
        instance: u32,
        target: SocketAddr,
        wait: Duration,
    ) -> io::Result<Option<DeviceInfo>> {
        let deadline = tokio::time::Instant::now() + wait;
        let since = self.shared.now_ms();
        loop {
            self.who_is(Some((instance, instance)), target).await?;
            let step = tokio::time::Instant::now() + Duration::from_millis(200);
            while tokio::time::Instant::now() < step.min(deadline) {
                tokio::time::sleep(Duration::from_millis(10)).await;
                let table = lock(&self.shared.devices);
                if let Some(d) = table
                    .seen_since(since)
                    .into_iter()
                    .find(|d| d.instance == instance)
                {
                    return Ok(Some(d));
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(None);
            }
        }
    }

    /// Adds or replaces a device binding without discovery.
    pub fn add_device(&self, info: DeviceInfo) {
        let now = self.shared.now_ms();
        lock(&self.shared.devices).record(info, now);
    }

    pub fn device(&self, instance: u32) -> Option<DeviceInfo> {
        lock(&self.shared.devices).get(instance).cloned()
    }

    pub fn devices(&self) -> Vec<DeviceInfo> {
        lock(&self.shared.devices).all()
    }

    /// ReadProperty of one property.
    pub async fn read_property(
        &self,
        instance: u32,
        prop: PropertyRef,
    ) -> Result<Value, ClientError> {
        let mut data = Vec::new();
        ReadPropertyRequest {
            object: prop.object,
            property: prop.property,
            array_index: prop.array_index,
        }
        .encode(&mut data);
        match self
            .shared
            .request(instance, confirmed::READ_PROPERTY, data)
            .await?
        {
            Apdu::ComplexAck { data, .. } => {
                let ack = ReadPropertyAck::decode(&data)?;
                if ack.property != prop.property {
                    return Err(ClientError::UnexpectedResponse);
                }
                Ok(ack.value)
            }
            _ => Err(ClientError::UnexpectedResponse),
        }
    }

    /// Reads a list of properties with ReadPropertyMultiple and returns one result per
    /// reference, in the order given: the value, or the error the device reported for that
    /// property. The outer error means the device did not answer usefully at all.
    pub async fn read_multiple(
        &self,
        instance: u32,
        props: &[PropertyRef],
    ) -> Result<Vec<Result<Value, BacnetError>>, ClientError> {
        let mut out = Vec::with_capacity(props.len());
        let chunk = self.shared.config.max_properties_per_request.max(1);
        for part in props.chunks(chunk) {
            out.extend(self.read_multiple_split(instance, part).await?);
        }
        Ok(out)
    }

    async fn read_multiple_split(
        &self,
        instance: u32,
        props: &[PropertyRef],
    ) -> Result<Vec<Result<Value, BacnetError>>, ClientError> {
        // Iterative halving when an answer would need segmentation.
        let mut stack = vec![props];
        let mut results = Vec::with_capacity(props.len());
        while let Some(part) = stack.pop() {
            match self.read_multiple_once(instance, part).await {
                Ok(r) => results.extend(r),
                Err(ClientError::SegmentationNotSupported) if part.len() > 1 => {
                    let (a, b) = part.split_at(part.len() / 2);
                    stack.push(b);
                    stack.push(a);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(results)
    }

    async fn read_multiple_once(
        &self,
        instance: u32,
        props: &[PropertyRef],
    ) -> Result<Vec<Result<Value, BacnetError>>, ClientError> {
        // Group consecutive references to the same object into one access specification.
        let mut specs: Vec<ReadAccessSpec> = Vec::new();
        for p in props {
            let r = PropertyReference {
                property: p.property,
                array_index: p.array_index,
            };
            match specs.last_mut() {
                Some(s) if s.object == p.object => s.properties.push(r),
                _ => specs.push(ReadAccessSpec {
                    object: p.object,
                    properties: vec![r],
                }),
            }
        }
        let mut data = Vec::new();
        ReadPropertyMultipleRequest { specs }.encode(&mut data);
        let apdu = self
            .shared
            .request(instance, confirmed::READ_PROPERTY_MULTIPLE, data)
            .await?;
        let Apdu::ComplexAck { data, .. } = apdu else {
            return Err(ClientError::UnexpectedResponse);
        };
        let ack = ReadPropertyMultipleAck::decode(&data)?;
        let mut by_ref: HashMap<PropertyRef, Result<Value, BacnetError>> = HashMap::new();
        for res in ack.results {
            for item in res.results {
                by_ref.insert(
                    PropertyRef {
                        object: res.object,
                        property: item.property,
                        array_index: item.array_index,
                    },
                    item.result,
                );
            }
        }
        props
            .iter()
            .map(|p| {
                by_ref
                    .get(p)
                    .cloned()
                    .ok_or(ClientError::UnexpectedResponse)
            })
            .collect()
    }

    /// Subscribes to COV notifications of `object` on device `instance`. The subscription is
    /// renewed at 3/4 of its lifetime for as long as the returned stream is alive; dropping
    /// the stream stops renewing (the device drops the subscription at its expiry), and
    /// [`CovSubscription::cancel`] cancels it on the device at once.
    pub async fn subscribe_cov(
        &self,
        instance: u32,
        object: ObjectId,
        options: CovOptions,
    ) -> Result<CovSubscription, ClientError> {
        let process_id = {
            let mut p = lock(&self.shared.next_process_id);
            let id = *p;
            *p = p.wrapping_add(1).max(1);
            id
        };
        let (tx, rx) = mpsc::unbounded_channel();
        lock(&self.shared.cov).insert(process_id, tx.clone());
        let req = SubscribeCovRequest {
            process_id,
            object,
            confirmed: Some(options.confirmed),
            lifetime: Some(options.lifetime_s.max(1)),
        };
        if let Err(e) = subscribe(&self.shared, instance, &req).await {
            lock(&self.shared.cov).remove(&process_id);
            return Err(e);
        }
        let renew = tokio::spawn(renewal_loop(
            Arc::downgrade(&self.shared),
            instance,
            req,
            tx,
        ));
        Ok(CovSubscription {
            shared: Arc::downgrade(&self.shared),
            instance,
            request: req,
            rx,
            renew,
        })
    }
}

async fn subscribe(
    shared: &Shared,
    instance: u32,
    req: &SubscribeCovRequest,
) -> Result<(), ClientError> {
    let mut data = Vec::new();
    req.encode(&mut data);
    match shared
        .request(instance, confirmed::SUBSCRIBE_COV, data)
        .await?
    {
        Apdu::SimpleAck { .. } => Ok(()),
        _ => Err(ClientError::UnexpectedResponse),
    }
}

/// Renewal period for a lifetime: 3/4 of it, at least one second.
pub fn renewal_period(lifetime_s: u32) -> Duration {
    Duration::from_millis((u64::from(lifetime_s) * 750).max(1000))
}

async fn renewal_loop(
    shared: Weak<Shared>,
    instance: u32,
    req: SubscribeCovRequest,
    tx: mpsc::UnboundedSender<CovEvent>,
) {
    let period = renewal_period(req.lifetime.unwrap_or(300));
    let retry = (period / 4).max(Duration::from_secs(1));
    let mut wait = period;
    loop {
        tokio::time::sleep(wait).await;
        let Some(s) = shared.upgrade() else { return };
        if tx.is_closed() {
            return;
        }
        let event = match subscribe(&s, instance, &req).await {
            Ok(()) => {
                wait = period;
                CovEvent::Renewed
            }
            Err(e) => {
                wait = retry;
                CovEvent::RenewalFailed(e)
            }
        };
        drop(s);
        if tx.send(event).is_err() {
            return;
        }
    }
}

/// A live COV subscription: a stream of [`CovEvent`]s.
pub struct CovSubscription {
    shared: Weak<Shared>,
    instance: u32,
    request: SubscribeCovRequest,
    rx: mpsc::UnboundedReceiver<CovEvent>,
    renew: JoinHandle<()>,
}

impl CovSubscription {
    /// The next notification or renewal event; `None` once the client is gone.
    pub async fn next(&mut self) -> Option<CovEvent> {
        self.rx.recv().await
    }

    /// The next notification, skipping renewal events, waiting at most `wait`.
    pub async fn next_notification(&mut self, wait: Duration) -> Option<CovNotification> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(CovEvent::Notification(n))) => return Some(n),
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => return None,
            }
        }
    }

    pub fn process_id(&self) -> u32 {
        self.request.process_id
    }

    pub fn object(&self) -> ObjectId {
        self.request.object
    }

    /// Cancels the subscription on the device and stops renewing.
    pub async fn cancel(self) -> Result<(), ClientError> {
        self.renew.abort();
        let Some(shared) = self.shared.upgrade() else {
            return Err(ClientError::Closed);
        };
        lock(&shared.cov).remove(&self.request.process_id);
        let cancel = SubscribeCovRequest {
            confirmed: None,
            lifetime: None,
            ..self.request
        };
        subscribe(&shared, self.instance, &cancel).await
    }
}

impl Drop for CovSubscription {
    fn drop(&mut self) {
        self.renew.abort();
        if let Some(shared) = self.shared.upgrade() {
            lock(&shared.cov).remove(&self.request.process_id);
        }
    }
}

async fn receive_loop(shared: Arc<Shared>) {
    let mut buf = vec![0u8; 2048];
    loop {
        match shared.socket.recv_from(&mut buf).await {
            Ok((n, from)) => shared.dispatch(from, &buf[..n]).await,
            Err(e) => {
                // e.g. ICMP port unreachable reported on a later receive; keep going.
                tracing::debug!(error = %e, "bacnet client: receive error");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(instance: u32, port: u16) -> DeviceInfo {
        DeviceInfo::fixed(instance, SocketAddr::from(([127, 0, 0, 1], port)))
    }

    #[test]
    fn device_table_is_keyed_by_instance_and_follows_moves() {
        let mut t = DeviceTable::default();
        assert_eq!(t.record(info(7, 1000), 1), DeviceChange::New);
        assert_eq!(t.record(info(7, 1000), 2), DeviceChange::Unchanged);
        assert_eq!(
            t.record(info(7, 2000), 3),
            DeviceChange::Moved {
                from: SocketAddr::from(([127, 0, 0, 1], 1000))
            }
        );
        assert_eq!(t.get(7).unwrap().addr.port(), 2000);
        assert_eq!(t.all().len(), 1);
        t.record(info(8, 2000), 4);
        assert_eq!(
            t.all().len(),
            2,
            "two devices behind one address stay distinct"
        );
        assert_eq!(t.seen_since(4).len(), 1);
    }

    #[test]
    fn directed_broadcast_addresses() {
        let ip = Ipv4Addr::new(10, 1, 2, 3);
        assert_eq!(
            directed_broadcast(ip, 24, 47808).to_string(),
            "10.1.2.255:47808"
        );
        assert_eq!(directed_broadcast(ip, 8, 1).to_string(), "10.255.255.255:1");
        assert_eq!(
            directed_broadcast(ip, 0, 1).to_string(),
            "255.255.255.255:1"
        );
        assert_eq!(directed_broadcast(ip, 32, 1).to_string(), "10.1.2.3:1");
    }

    #[test]
    fn renewal_happens_before_expiry() {
        assert_eq!(renewal_period(300), Duration::from_secs(225));
        assert!(renewal_period(1) >= Duration::from_secs(1));
        assert!(renewal_period(2) < Duration::from_secs(2));
    }
}
