//! The tokio UDP shell around [`Device`]: receives datagrams, lets the device answer, sends
//! what it returns. Value updates from the owner (a simulator) go through [`DeviceServer::update`]
//! so that COV notifications leave immediately.

use crate::device::{Device, Outgoing};
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

struct Shared {
    socket: UdpSocket,
    device: Mutex<Device>,
    epoch: Instant,
}

impl Shared {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn device(&self) -> MutexGuard<'_, Device> {
        // A panic while holding the lock cannot leave the device half-updated in a way that
        // matters more than stopping the simulator; keep serving.
        self.device.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn send_one(&self, o: &Outgoing) {
        if let Err(e) = self.socket.send_to(&o.bytes, o.to).await {
            tracing::debug!(to = %o.to, error = %e, "bacnet server: send failed");
        }
    }

    /// Sends datagrams in order; from the first one with a delay on, the rest go from a
    /// separate task so that the receive loop never sleeps.
    async fn send_all(self: &Arc<Self>, out: Vec<Outgoing>) {
        let mut iter = out.into_iter();
        for o in iter.by_ref() {
            if o.delay_ms > 0 {
                let me = self.clone();
                let rest: Vec<Outgoing> = std::iter::once(o).chain(iter).collect();
                tokio::spawn(async move {
                    for o in rest {
                        if o.delay_ms > 0 {
                            tokio::time::sleep(Duration::from_millis(o.delay_ms)).await;
                        }
                        me.send_one(&o).await;
                    }
                });
                return;
            }
            self.send_one(&o).await;
        }
    }
}

/// A running BACnet/IP device server. Dropping it stops the server.
pub struct DeviceServer {
    shared: Arc<Shared>,
    task: JoinHandle<()>,
    local_addr: SocketAddr,
}

impl DeviceServer {
    /// Binds a UDP socket (use port 0 for an ephemeral port) and starts answering requests.
    pub async fn bind(addr: SocketAddr, device: Device) -> io::Result<DeviceServer> {
        let socket = UdpSocket::bind(addr).await?;
        socket.set_broadcast(true)?;
        let local_addr = socket.local_addr()?;
        let shared = Arc::new(Shared {
            socket,
            device: Mutex::new(device),
            epoch: Instant::now(),
        });
        let task = tokio::spawn(run(shared.clone()));
        Ok(DeviceServer {
            shared,
            task,
            local_addr,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Milliseconds since the server started (the clock passed to the device).
    pub fn now_ms(&self) -> u64 {
        self.shared.now_ms()
    }

    /// Changes the device under its lock and sends the COV notifications the change returns.
    /// `f` receives the device and the current time in milliseconds.
    pub async fn update<R>(&self, f: impl FnOnce(&mut Device, u64) -> (R, Vec<Outgoing>)) -> R {
        let now = self.shared.now_ms();
        let (r, out) = {
            let mut dev = self.shared.device();
            f(&mut dev, now)
        };
        self.shared.send_all(out).await;
        r
    }

    /// Reads the device state (no side effects).
    pub fn with_device<R>(&self, f: impl FnOnce(&Device) -> R) -> R {
        f(&self.shared.device())
    }

    /// Sends this device's I-Am to `to` (a broadcast address or a client).
    pub async fn announce(&self, to: SocketAddr) -> io::Result<()> {
        let frame = self.shared.device().i_am_frame(true);
        self.shared.socket.send_to(&frame, to).await.map(|_| ())
    }

    /// Stops the server and waits for its task to end.
    pub async fn shutdown(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }
}

impl Drop for DeviceServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(shared: Arc<Shared>) {
    let mut buf = vec![0u8; 2048];
    let mut housekeeping = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            r = shared.socket.recv_from(&mut buf) => match r {
                Ok((n, from)) => {
                    let now = shared.now_ms();
                    let out = shared.device().handle(from, &buf[..n], now);
                    shared.send_all(out).await;
                }
                Err(e) => {
                    // ICMP port-unreachable from a vanished subscriber surfaces here on some
                    // systems; it must not stop the server.
                    tracing::debug!(error = %e, "bacnet server: receive error");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            _ = housekeeping.tick() => {
                let now = shared.now_ms();
                shared.device().expire(now);
            }
        }
    }
}
