//! Back-off and lockout of failed sign-ins (pure: time is passed in).
//!
//! Failures are counted per [`Subject`]: the peer address (IPv6 by /64), the user name, and
//! the browser's device cookie (see `auth::device`). A subject that reaches its threshold is
//! locked for [`LimitConfig::first_lock_ms`]; every lock after that is twice as long, up to
//! [`LimitConfig::max_lock_ms`], and after a lock a quarter of the threshold (at least one)
//! failure locks it again. While any subject of an attempt is locked the attempt is refused
//! before a password is hashed, and does not count. A success clears the user's and the
//! device's counters (never the address's: an attacker's own account must not reset it). A
//! subject with no failure for [`LimitConfig::forget_ms`] is forgotten.
//!
//! Why the device cookie: a lock per user name would let anyone lock every operator out of
//! the console during a fire by failing their names. A sign-in that carries a valid device
//! cookie of that user (issued to the browser at its last successful sign-in) is counted
//! against that device instead of the user name, so the operator's own browser keeps working
//! while a guesser is locked out (OWASP "device cookies"). Bearer tokens are never locked.
//!
//! Memory is bounded: at most [`LimitConfig::max_entries`] subjects are tracked; when full,
//! entries for names of no account go first, then unlocked entries, then the oldest.

use serde::Serialize;
use std::collections::HashMap;
use std::net::IpAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitConfig {
    /// Failures of one user name (without its device cookie) before it is locked; 0 = never.
    pub user_failures: u32,
    /// Failures from one address before it is locked; 0 = never.
    pub address_failures: u32,
    pub first_lock_ms: i64,
    pub max_lock_ms: i64,
    pub forget_ms: i64,
    pub max_entries: usize,
}

impl Default for LimitConfig {
    fn default() -> Self {
        LimitConfig {
            user_failures: 5,
            address_failures: 20,
            first_lock_ms: 60_000,
            max_lock_ms: 15 * 60_000,
            forget_ms: 3_600_000,
            max_entries: 10_000,
        }
    }
}

/// What failures are counted against.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum Subject {
    /// A peer address (IPv6 addresses by their /64).
    Address(String),
    /// A user name, for attempts without that user's device cookie.
    User(String),
    /// A device cookie's id (the browser a user signed in with before).
    Device(String),
}

impl Subject {
    pub fn address(ip: IpAddr) -> Subject {
        Subject::Address(address_key(ip))
    }
}

/// The key of an address: IPv4 (and IPv4-mapped IPv6) as is, IPv6 by its /64 prefix (one
/// host usually holds a whole /64).
pub fn address_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    failures: u32,
    locks: u32,
    locked_until: i64,
    last_ms: i64,
    /// A user name that belongs to an account (kept before others when memory is full).
    real: bool,
}

/// A refusal because a subject is locked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Locked {
    pub subject: Subject,
    pub until_ms: i64,
    /// Failures that led to the lock.
    pub failures: u32,
    /// Locks in a row, this one included.
    pub locks: u32,
}

/// One tracked subject, for the admins' view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubjectView {
    pub subject: Subject,
    pub failures: u32,
    pub locks: u32,
    /// Set while locked.
    pub locked_until_ms: Option<i64>,
    pub last_failure_ms: i64,
}

#[derive(Debug, Clone, Default)]
pub struct LoginLimiter {
    config: LimitConfig,
    entries: HashMap<Subject, Entry>,
}

impl LoginLimiter {
    pub fn new(config: LimitConfig) -> LoginLimiter {
        LoginLimiter {
            config,
            entries: HashMap::new(),
        }
    }

    fn threshold(&self, s: &Subject) -> u32 {
        match s {
            Subject::Address(_) => self.config.address_failures,
            Subject::User(_) | Subject::Device(_) => self.config.user_failures,
        }
    }

    /// The first locked subject of an attempt, if any (checked before any hashing).
    pub fn check(&self, subjects: &[Subject], now_ms: i64) -> Result<(), Locked> {
        for s in subjects {
            if let Some(e) = self.entries.get(s)
                && e.locked_until > now_ms
            {
                return Err(Locked {
                    subject: s.clone(),
                    until_ms: e.locked_until,
                    failures: e.failures,
                    locks: e.locks,
                });
            }
        }
        Ok(())
    }

    /// Counts a failed attempt against every subject; returns the locks it started. `real`
    /// says whether a `Subject::User` names an existing account.
    pub fn failed(&mut self, subjects: &[Subject], real: bool, now_ms: i64) -> Vec<Locked> {
        let mut out = Vec::new();
        for s in subjects {
            let threshold = self.threshold(s);
            if threshold == 0 {
                continue;
            }
            self.make_room(now_ms);
            let forget = self.config.forget_ms;
            let e = self.entries.entry(s.clone()).or_insert(Entry {
                failures: 0,
                locks: 0,
                locked_until: 0,
                last_ms: now_ms,
                real: false,
            });
            if now_ms - e.last_ms >= forget && e.locked_until <= now_ms {
                *e = Entry {
                    failures: 0,
                    locks: 0,
                    locked_until: 0,
                    last_ms: now_ms,
                    real: false,
                };
            }
            e.real |= real && matches!(s, Subject::User(_));
            e.last_ms = now_ms;
            if e.locked_until > now_ms {
                continue; // refused attempts do not count (they are not checked)
            }
            e.failures += 1;
            if e.failures >= threshold {
                let shift = e.locks.min(20);
                let ms = self
                    .config
                    .first_lock_ms
                    .saturating_mul(1i64 << shift)
                    .min(self.config.max_lock_ms);
                e.locks += 1;
                e.locked_until = now_ms + ms;
                out.push(Locked {
                    subject: s.clone(),
                    until_ms: e.locked_until,
                    failures: e.failures,
                    locks: e.locks,
                });
                // After a lock, a quarter of the threshold locks again.
                e.failures = threshold - (threshold / 4).max(1);
            }
        }
        out
    }

    /// A successful sign-in clears the counters of its user and device (not its address).
    pub fn succeeded(&mut self, subjects: &[Subject]) {
        for s in subjects {
            if !matches!(s, Subject::Address(_)) {
                self.entries.remove(s);
            }
        }
    }

    /// Removes a subject's counters and lock (an admin's unlock); whether it was tracked.
    pub fn clear(&mut self, subject: &Subject) -> bool {
        self.entries.remove(subject).is_some()
    }

    /// Every tracked subject with failures or a lock, locked ones first.
    pub fn view(&self, now_ms: i64) -> Vec<SubjectView> {
        let mut out: Vec<SubjectView> = self
            .entries
            .iter()
            .filter(|(_, e)| now_ms - e.last_ms < self.config.forget_ms || e.locked_until > now_ms)
            .map(|(s, e)| SubjectView {
                subject: s.clone(),
                failures: e.failures,
                locks: e.locks,
                locked_until_ms: (e.locked_until > now_ms).then_some(e.locked_until),
                last_failure_ms: e.last_ms,
            })
            .collect();
        out.sort_by(|a, b| {
            (b.locked_until_ms.is_some(), b.last_failure_ms, &a.subject).cmp(&(
                a.locked_until_ms.is_some(),
                a.last_failure_ms,
                &b.subject,
            ))
        });
        out
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Keeps the table under `max_entries` before an insert.
    fn make_room(&mut self, now_ms: i64) {
        if self.entries.len() < self.config.max_entries.max(1) {
            return;
        }
        let forget = self.config.forget_ms;
        self.entries
            .retain(|_, e| now_ms - e.last_ms < forget || e.locked_until > now_ms);
        if self.entries.len() < self.config.max_entries.max(1) {
            return;
        }
        // Evict one: names of no account first, then unlocked, then the oldest.
        let victim = self
            .entries
            .iter()
            .min_by_key(|(s, e)| {
                (
                    matches!(s, Subject::User(_)) && e.real,
                    e.locked_until > now_ms,
                    e.last_ms,
                )
            })
            .map(|(s, _)| s.clone());
        if let Some(v) = victim {
            self.entries.remove(&v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(n: &str) -> Subject {
        Subject::User(n.into())
    }
    fn addr(a: &str) -> Subject {
        Subject::Address(a.into())
    }

    /// Hazard: 200 wrong passwords at 40/s, then the right one worked (no throttling).
    #[test]
    fn a_user_is_locked_after_five_failures_and_the_lock_grows() {
        let mut l = LoginLimiter::new(LimitConfig::default());
        let s = [addr("10.0.0.1"), user("ops")];
        for i in 0..4 {
            assert!(l.check(&s, i).is_ok());
            assert!(l.failed(&s, true, i).is_empty());
        }
        let locks = l.failed(&s, true, 10);
        assert_eq!(locks.len(), 1);
        assert_eq!(locks[0].subject, user("ops"));
        assert_eq!(locks[0].until_ms, 10 + 60_000);
        let refused = l.check(&s, 20).unwrap_err();
        assert_eq!(refused.subject, user("ops"));
        // Attempts while locked are refused unhashed and do not count.
        assert!(l.failed(&s, true, 30).is_empty());
        // After the lock one more failure locks again, twice as long.
        let again = l.failed(&s, true, 70_000);
        assert_eq!(again[0].until_ms, 70_000 + 120_000);
        // ... up to the maximum.
        let mut t = 190_000;
        let mut last = 0;
        for _ in 0..10 {
            let locks = l.failed(&[user("ops")], true, t);
            last = locks[0].until_ms - t;
            t = locks[0].until_ms;
        }
        assert_eq!(last, 15 * 60_000);
        assert!(l.check(&s, t - 1).is_err());
        // A success (after the lock) clears the user, not the address.
        l.failed(&[addr("10.0.0.1")], false, t);
        l.succeeded(&s);
        assert!(l.check(&[user("ops")], t).is_ok());
        assert!(l.view(t).iter().any(|v| v.subject == addr("10.0.0.1")));
        assert!(!l.view(t).iter().any(|v| v.subject == user("ops")));
    }

    /// Hazard: anyone could lock the operators out of the console during a fire by failing
    /// their names; the operator's own browser (device cookie) is counted separately.
    #[test]
    fn the_device_of_a_user_is_not_locked_by_a_guesser() {
        let mut l = LoginLimiter::new(LimitConfig::default());
        for i in 0..10 {
            l.failed(&[addr("198.51.100.7"), user("ops")], true, i);
        }
        assert!(l.check(&[addr("198.51.100.7"), user("ops")], 20).is_err());
        assert!(
            l.check(&[addr("10.1.1.1"), Subject::Device("d1".into())], 20)
                .is_ok()
        );
    }

    #[test]
    fn an_address_is_locked_after_twenty_failures_across_names() {
        let mut l = LoginLimiter::new(LimitConfig::default());
        for i in 0..19 {
            l.failed(&[addr("a"), user(&format!("u{i}"))], false, i);
        }
        assert!(l.check(&[addr("a")], 19).is_ok());
        let locks = l.failed(&[addr("a"), user("x")], false, 19);
        assert_eq!(locks[0].subject, addr("a"));
        assert!(l.check(&[addr("a"), user("y")], 20).is_err());
        assert!(l.clear(&addr("a")));
        assert!(l.check(&[addr("a")], 21).is_ok());
    }

    #[test]
    fn counters_are_forgotten_and_memory_is_bounded() {
        let cfg = LimitConfig {
            max_entries: 100,
            ..Default::default()
        };
        let mut l = LoginLimiter::new(cfg);
        l.failed(&[user("real")], true, 0);
        l.failed(&[user("real")], true, 1);
        for i in 0..1000 {
            l.failed(&[user(&format!("ghost{i}"))], false, 2 + i);
        }
        assert!(l.len() <= 100);
        assert!(
            l.view(2000).iter().any(|v| v.subject == user("real")),
            "names of real accounts are kept before names of none"
        );
        // A quiet hour forgets the counters.
        for i in 0..4 {
            l.failed(&[user("q")], true, i);
        }
        l.failed(&[user("q")], true, 3_600_000 + 10);
        assert!(l.check(&[user("q")], 3_600_000 + 11).is_ok());
    }

    #[test]
    fn ipv6_addresses_count_by_prefix() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        let m: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(address_key(m), "192.0.2.1");
    }
}
