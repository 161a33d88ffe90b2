//! Connection limits of a public listener: at most `total` connections at once, and at most
//! `per_address` from one address (IPv6 by /64), so that one peer cannot take every file
//! descriptor of the process. A [`ConnPermit`] is held for the life of a connection.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    pub total: usize,
    pub per_address: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    Total(usize),
    Address { address: String, limit: usize },
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Total(n) => write!(f, "{n} connections already open"),
            Refused::Address { address, limit } => {
                write!(f, "{limit} connections already open from {address}")
            }
        }
    }
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    by_address: HashMap<String, usize>,
}

/// Counts open connections (shared by the accept loop and the connection tasks).
#[derive(Debug)]
pub struct ConnTracker {
    limits: ConnLimits,
    counts: Mutex<Counts>,
}

/// One open connection; dropping it frees its place.
#[derive(Debug)]
pub struct ConnPermit {
    tracker: Arc<ConnTracker>,
    address: String,
}

impl Drop for ConnPermit {
    fn drop(&mut self) {
        let mut c = self.tracker.counts.lock().expect("connection counts");
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.by_address.get_mut(&self.address) {
            *n -= 1;
            if *n == 0 {
                c.by_address.remove(&self.address);
            }
        }
    }
}

impl ConnTracker {
    pub fn new(limits: ConnLimits) -> Arc<ConnTracker> {
        Arc::new(ConnTracker {
            limits,
            counts: Mutex::new(Counts::default()),
        })
    }

    /// A place for a connection from `ip`, or why there is none.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Result<ConnPermit, Refused> {
        let address = crate::state::auth::limits::address_key(ip);
        let mut c = self.counts.lock().expect("connection counts");
        if c.total >= self.limits.total {
            return Err(Refused::Total(self.limits.total));
        }
        let n = c.by_address.get(&address).copied().unwrap_or(0);
        if n >= self.limits.per_address {
            return Err(Refused::Address {
                address,
                limit: self.limits.per_address,
            });
        }
        c.total += 1;
        c.by_address.insert(address.clone(), n + 1);
        Ok(ConnPermit {
            tracker: self.clone(),
            address,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.counts.lock().expect("connection counts").total
    }

    pub fn limits(&self) -> ConnLimits {
        self.limits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hazard: 500 half-open connections from one peer took every file descriptor: the
    /// console, sign-in and the MQTT gate stopped answering.
    #[test]
    fn one_address_cannot_take_every_place() {
        let t = ConnTracker::new(ConnLimits {
            total: 5,
            per_address: 2,
        });
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let p1 = t.try_acquire(a).unwrap();
        let _p2 = t.try_acquire(a).unwrap();
        assert!(matches!(t.try_acquire(a), Err(Refused::Address { .. })));
        let _q: Vec<_> = (0..2).map(|_| t.try_acquire(b).unwrap()).collect();
        drop(p1);
        let _p3 = t.try_acquire(a).unwrap();
        let c: IpAddr = "10.0.0.3".parse().unwrap();
        let _r = t.try_acquire(c).unwrap();
        assert_eq!(t.try_acquire(c).unwrap_err(), Refused::Total(5));
        assert_eq!(t.open(), 5);
    }
}
