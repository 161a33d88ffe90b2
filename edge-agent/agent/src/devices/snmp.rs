//! SNMP devices through `dcim-snmp`: one client per device polling every class of its
//! (per-link expanded) profile at the class period with GET and GETBULK walks; traps and
//! informs from the device's address become events and make the device be polled at once.
//! Samples and events come from the pure `SnmpDevice` (quality, deadband, comm loss, the LLDP
//! check of designed paths).

use crate::ingest::Ingest;
use dcim_points::Sample;
use dcim_profiles::{PollClass, Profile};
use dcim_snmp::{Notice, PollAnswer, SnmpClient, SnmpDevice, SnmpTarget, Trap, TrapReceiver};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, mpsc, watch};
use tracing::{info, warn};

/// A prepared SNMP device.
pub struct SnmpDriver {
    pub dev: SnmpDevice,
    pub target: SnmpTarget,
    comm: dcim_profiles::Comm,
    /// Notifications from the device's address (set by [`TrapRouter::register`]).
    pub traps: Option<mpsc::Receiver<Trap>>,
}

impl SnmpDriver {
    pub fn new(
        id: &str,
        cfg: &crate::config::snmp::SnmpDeviceConfig,
        profile: &Profile,
        now_ms: i64,
    ) -> Result<SnmpDriver, String> {
        Ok(SnmpDriver {
            dev: SnmpDevice::new(id, profile, cfg.links.clone(), &cfg.labels, now_ms)?,
            target: cfg.target.clone(),
            comm: profile.comm,
            traps: None,
        })
    }
}

/// Routes received notifications to devices by source IP address.
#[derive(Default, Clone)]
pub struct TrapRouter {
    by_ip: HashMap<IpAddr, (String, mpsc::Sender<Trap>)>,
}

impl TrapRouter {
    pub fn register(&mut self, d: &mut SnmpDriver) {
        let (tx, rx) = mpsc::channel(64);
        d.traps = Some(rx);
        self.by_ip
            .insert(d.target.address.ip(), (d.dev.device.clone(), tx));
    }

    pub fn is_empty(&self) -> bool {
        self.by_ip.is_empty()
    }
}

fn deliver(ingest: &Ingest, samples: &mut Vec<Sample>, notices: Vec<Notice>) {
    for e in notices {
        warn!(device = %e.device, kind = %e.kind, "{}", e.message);
        let _ = ingest.event(e);
    }
    if !samples.is_empty() {
        ingest.samples(std::mem::take(samples));
    }
}

enum Msg {
    Poll(PollClass, Result<PollAnswer, String>),
    Trap(Trap),
}

/// Runs one SNMP device: polls per poll class, forwards its traps, and turns both into samples
/// and events (a trap that says something changed triggers a poll at once).
pub async fn run(ingest: Arc<Ingest>, d: SnmpDriver, mut shutdown: watch::Receiver<bool>) {
    let SnmpDriver {
        mut dev,
        target,
        comm,
        traps,
    } = d;
    let timeout = Duration::from_millis(comm.timeout_ms.max(100));
    let client = loop {
        match SnmpClient::connect(&target, timeout, comm.retries.min(5)).await {
            Ok(c) => break Arc::new(c),
            Err(e) => {
                warn!(device = %dev.device, address = %target.address, error = %e, "cannot set up the SNMP client; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                    _ = shutdown.changed() => if *shutdown.borrow() { return },
                }
            }
        }
    };
    let (tx, rx) = mpsc::channel::<Msg>(64);
    let poll_now = Arc::new(Notify::new());
    let mut tasks = spawn_polls(&dev, &client, &tx, &poll_now);
    if let Some(mut traps) = traps {
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(t) = traps.recv().await {
                if tx.send(Msg::Trap(t)).await.is_err() {
                    return;
                }
            }
        }));
    }
    drop(tx);
    receive(&ingest, &mut dev, &target, rx, &poll_now, shutdown).await;
    for t in tasks {
        t.abort();
    }
}

/// One polling task per poll class, each polling every period or at once when `poll_now` is
/// notified.
fn spawn_polls(
    dev: &SnmpDevice,
    client: &Arc<SnmpClient>,
    tx: &mpsc::Sender<Msg>,
    poll_now: &Arc<Notify>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let max_rep = dev.max_repetitions();
    let mut tasks = Vec::new();
    for (class, period) in dev.schedule() {
        let req = dev.request(class);
        let client = client.clone();
        let tx = tx.clone();
        let poll_now = poll_now.clone();
        tasks.push(tokio::spawn(async move {
            let mut iv = tokio::time::interval(Duration::from_millis(period));
            iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = iv.tick() => {}
                    _ = poll_now.notified() => iv.reset(),
                }
                let r = client.poll(&req, max_rep).await;
                if tx.send(Msg::Poll(class, r)).await.is_err() {
                    return;
                }
            }
        }));
    }
    tasks
}

/// Feeds poll answers, traps and the comm-loss check every second into ingest until shutdown
/// or until every sender is gone; logs a failing poll once per distinct error.
async fn receive(
    ingest: &Ingest,
    dev: &mut SnmpDevice,
    target: &SnmpTarget,
    mut rx: mpsc::Receiver<Msg>,
    poll_now: &Notify,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    let mut out = Vec::new();
    let mut last_error: Option<String> = None;
    loop {
        tokio::select! {
            m = rx.recv() => match m {
                Some(Msg::Poll(class, r)) => {
                    match &r {
                        Err(e) if last_error.as_ref() != Some(e) => {
                            warn!(device = %dev.device, address = %target.address, error = %e, "SNMP poll failed");
                            last_error = Some(e.clone());
                        }
                        Ok(_) if last_error.take().is_some() => {
                            info!(device = %dev.device, "SNMP polls succeed again");
                        }
                        _ => {}
                    }
                    let n = dev.on_poll(class, &r, ingest.clock().now_ms(), &mut out);
                    deliver(ingest, &mut out, n);
                }
                Some(Msg::Trap(t)) => {
                    let (n, poll) = dcim_snmp::classify(&t, &dev.device, dev.links(), ingest.clock().now_ms());
                    if poll {
                        poll_now.notify_waiters();
                    }
                    deliver(ingest, &mut out, vec![n]);
                }
                None => break,
            },
            _ = ticker.tick() => {
                let n = dev.tick(ingest.clock().now_ms(), &mut out);
                deliver(ingest, &mut out, n);
            }
            _ = shutdown.changed() => if *shutdown.borrow() { break },
        }
    }
}

/// Receives traps and informs and hands each to the device at its source address. Notifications
/// from other addresses are logged (at most once a minute per address) and dropped: an event
/// needs a device of this agent.
pub async fn receive_traps(
    settings: dcim_snmp::ReceiverSettings,
    router: TrapRouter,
    mut shutdown: watch::Receiver<bool>,
) {
    let receiver = loop {
        match TrapReceiver::bind(&settings).await {
            Ok(r) => break r,
            Err(e) => {
                warn!(error = %e, "SNMP trap receiver cannot start; retrying in 5 s");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                    _ = shutdown.changed() => if *shutdown.borrow() { return },
                }
            }
        }
    };
    info!(listen = %receiver.local_addr(), "SNMP trap receiver listening");
    let mut unknown: HashMap<IpAddr, std::time::Instant> = HashMap::new();
    loop {
        tokio::select! {
            r = receiver.recv() => match r {
                Ok(r) => match router.by_ip.get(&r.source.ip()) {
                    Some((_, tx)) => {
                        let _ = tx.send(r.trap).await;
                    }
                    None => {
                        let due = unknown
                            .get(&r.source.ip())
                            .is_none_or(|t| t.elapsed() > Duration::from_secs(60));
                        if due {
                            warn!(source = %r.source, trap = %r.trap.trap_oid, "SNMP notification from an address that is no configured device: dropped");
                            unknown.insert(r.source.ip(), std::time::Instant::now());
                        }
                    }
                },
                Err(e) => warn!(error = %e, "SNMP notification refused"),
            },
            _ = shutdown.changed() => if *shutdown.borrow() { return },
        }
    }
}
