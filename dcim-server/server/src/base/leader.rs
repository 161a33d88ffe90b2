//! Who leads: the pure core of the leader lease (no I/O, no clock: times are passed in).
//!
//! Exactly one replica of a multi-site deployment runs what must happen once (alarm-engine
//! commits, notifications and escalations, the server's DC-09 transmitter, drills, device
//! commands). It is the holder of a lease row in the shared database (`store::Store::try_lease`)
//! with a fencing epoch; [`Core`] decides, from the results of the lease calls, whether this
//! replica leads, and when it must stop.
//!
//! The rule that keeps two leaders from acting at once: a replica leads only until
//! `sent + ttl - margin`, where `sent` is when it *sent* the last renewal that succeeded
//! (measured on its own monotonic clock). The database granted that renewal until at least
//! `sent + ttl` on its clock, and no other replica can take the lease before then; the margin
//! covers clocks that run at slightly different rates. If renewals fail or hang, the leader
//! stops at that deadline whatever the database says, before anyone else can start. Writes
//! carry the epoch as a fence, so a write that was already in flight when the deadline passed
//! fails in the database instead of landing after the new leader's.
//!
//! Inputs: [`Core::on_lease`] with the lease as the database returned it (holder, epoch),
//! [`Core::on_failure`] when a call failed or timed out, [`Core::on_tick`] as time passes.
//! Outputs: [`Change`]s for the shell to carry out, and [`Core::role`].

use serde::Serialize;

/// Lease timing, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// How long a granted lease lasts (database clock).
    pub ttl_ms: i64,
    /// How often it is renewed.
    pub renew_ms: i64,
    /// Subtracted from `ttl_ms` for the local deadline (clock rate differences).
    pub margin_ms: i64,
}

impl Timing {
    pub fn new(ttl_ms: i64, renew_ms: i64) -> Timing {
        Timing {
            ttl_ms,
            renew_ms,
            // 10 % of the lease, at least 100 ms: far more than any clock rate difference
            margin_ms: (ttl_ms / 10).max(100),
        }
    }

    /// Checks the timing; `Err(message)`.
    pub fn validate(&self) -> Result<(), String> {
        if self.renew_ms < 100 {
            return Err("renew_ms must be at least 100".into());
        }
        if self.ttl_ms < 3 * self.renew_ms {
            return Err(format!(
                "lease_ttl_ms ({}) must be at least three renewals (3 x renew_ms = {}), so that one slow renewal does not end the lead",
                self.ttl_ms,
                3 * self.renew_ms
            ));
        }
        Ok(())
    }
}

/// The lease as the database returned it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Seen {
    pub holder: String,
    pub epoch: i64,
    /// Whether it was valid when read (not expired by the database's clock).
    pub valid: bool,
    /// What the holder published (its console address, its site).
    pub info: serde_json::Value,
}

/// This replica's role.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum Role {
    /// Leads at `epoch` until `until` (local monotonic milliseconds).
    Leader { epoch: i64, until: i64 },
    /// Another replica leads (when known), or nobody does.
    Follower { leader: Option<Seen> },
}

/// What the shell must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Lead from now, at this epoch: restore the engines' state from the store, then start the
    /// leader's work. Writes carry this epoch as their fence.
    Lead { epoch: i64 },
    /// Stop all leader work now (the lease is lost, or may be).
    StepDown { epoch: i64, reason: String },
}

#[derive(Debug, Clone)]
pub struct Core {
    me: String,
    timing: Timing,
    role: Role,
}

impl Core {
    pub fn new(me: impl Into<String>, timing: Timing) -> Core {
        Core {
            me: me.into(),
            timing,
            role: Role::Follower { leader: None },
        }
    }

    pub fn role(&self) -> &Role {
        &self.role
    }

    pub fn timing(&self) -> Timing {
        self.timing
    }

    /// The epoch this replica leads at, if it leads at `now`.
    pub fn leading(&self, now: i64) -> Option<i64> {
        match self.role {
            Role::Leader { epoch, until } if now < until => Some(epoch),
            _ => None,
        }
    }

    /// A lease call sent at `sent` returned `seen` at `now`.
    pub fn on_lease(&mut self, sent: i64, now: i64, seen: Seen) -> Vec<Change> {
        let mut out = self.on_tick(now);
        let mine = seen.holder == self.me && seen.valid;
        if !mine {
            if let Role::Leader { epoch, .. } = self.role {
                out.push(Change::StepDown {
                    epoch,
                    reason: format!("the lease is held by `{}` now", seen.holder),
                });
            }
            self.role = Role::Follower {
                leader: (seen.valid && !seen.holder.is_empty()).then_some(seen),
            };
            return out;
        }
        let until = sent + self.timing.ttl_ms - self.timing.margin_ms;
        if until <= now {
            // Granted, but the answer came too late to act on: do not lead on it.
            if let Role::Leader { epoch, .. } = self.role {
                out.push(Change::StepDown {
                    epoch,
                    reason: "the lease renewal came back too late".into(),
                });
                self.role = Role::Follower { leader: None };
            }
            return out;
        }
        match self.role {
            Role::Leader { epoch, .. } if epoch == seen.epoch => {
                self.role = Role::Leader { epoch, until };
            }
            Role::Leader { epoch, .. } => {
                // Lost and retaken in between (another epoch): a new term.
                out.push(Change::StepDown {
                    epoch,
                    reason: format!("a new term began (epoch {})", seen.epoch),
                });
                out.push(Change::Lead { epoch: seen.epoch });
                self.role = Role::Leader {
                    epoch: seen.epoch,
                    until,
                };
            }
            Role::Follower { .. } => {
                out.push(Change::Lead { epoch: seen.epoch });
                self.role = Role::Leader {
                    epoch: seen.epoch,
                    until,
                };
            }
        }
        out
    }

    /// A lease call failed or timed out: nothing changes until the deadline (see
    /// [`Core::on_tick`]), but a follower no longer knows who leads.
    pub fn on_failure(&mut self, now: i64) -> Vec<Change> {
        let out = self.on_tick(now);
        if let Role::Follower { leader } = &mut self.role {
            *leader = None;
        }
        out
    }

    /// Time passes: a leader whose deadline passed steps down.
    pub fn on_tick(&mut self, now: i64) -> Vec<Change> {
        match self.role {
            Role::Leader { epoch, until } if now >= until => {
                self.role = Role::Follower { leader: None };
                vec![Change::StepDown {
                    epoch,
                    reason: "the lease could not be renewed in time".into(),
                }]
            }
            _ => Vec::new(),
        }
    }

    /// When the shell must act next (the leader's deadline), if leading.
    pub fn deadline(&self) -> Option<i64> {
        match self.role {
            Role::Leader { until, .. } => Some(until),
            Role::Follower { .. } => None,
        }
    }

    /// Steps down for the shell's own reasons (shutdown, a write refused by the fence).
    pub fn step_down(&mut self, reason: &str) -> Vec<Change> {
        match std::mem::replace(&mut self.role, Role::Follower { leader: None }) {
            Role::Leader { epoch, .. } => vec![Change::StepDown {
                epoch,
                reason: reason.into(),
            }],
            r => {
                self.role = r;
                Vec::new()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(holder: &str, epoch: i64) -> Seen {
        Seen {
            holder: holder.into(),
            epoch,
            valid: true,
            info: serde_json::Value::Null,
        }
    }

    fn t() -> Timing {
        Timing::new(5000, 1000)
    }

    #[test]
    fn a_granted_lease_leads_until_sent_plus_ttl_minus_margin() {
        let mut c = Core::new("a", t());
        assert_eq!(
            c.on_lease(1000, 1010, seen("a", 1)),
            [Change::Lead { epoch: 1 }]
        );
        assert_eq!(c.leading(1010), Some(1));
        // 1000 + 5000 - 500: the deadline counts from when the request was sent, not answered
        assert_eq!(c.deadline(), Some(5500));
        assert_eq!(c.leading(5499), Some(1));
        assert_eq!(c.leading(5500), None, "never acts past the deadline");
    }

    #[test]
    fn a_leader_whose_renewals_fail_steps_down_at_its_deadline_not_before() {
        // Hazard: a leader cut off from the database keeps sending notifications while
        // another replica has taken over and sends them too.
        let mut c = Core::new("a", t());
        c.on_lease(0, 5, seen("a", 3));
        assert!(c.on_failure(1000).is_empty());
        assert!(
            c.on_failure(4000).is_empty(),
            "a failed renewal is not yet a loss"
        );
        assert_eq!(c.leading(4000), Some(3));
        let ch = c.on_tick(4500);
        assert!(
            matches!(ch.as_slice(), [Change::StepDown { epoch: 3, .. }]),
            "{ch:?}"
        );
        assert_eq!(c.leading(4500), None);
        assert!(c.on_tick(9000).is_empty(), "steps down once");
    }

    #[test]
    fn another_holder_means_follow_and_step_down_at_once() {
        let mut c = Core::new("a", t());
        c.on_lease(0, 5, seen("a", 1));
        let ch = c.on_lease(1000, 1005, seen("b", 2));
        assert!(
            matches!(ch.as_slice(), [Change::StepDown { epoch: 1, .. }]),
            "{ch:?}"
        );
        match c.role() {
            Role::Follower { leader: Some(l) } => assert_eq!(l.holder, "b"),
            r => panic!("{r:?}"),
        }
    }

    #[test]
    fn a_new_epoch_for_the_same_holder_is_a_new_term() {
        // Hazard: the lease expired and was retaken (epoch 2) while this replica still acted
        // as leader of epoch 1; the engines must be restored again for the new term.
        let mut c = Core::new("a", t());
        c.on_lease(0, 5, seen("a", 1));
        let ch = c.on_lease(1000, 1005, seen("a", 2));
        assert!(
            matches!(
                ch.as_slice(),
                [Change::StepDown { epoch: 1, .. }, Change::Lead { epoch: 2 }]
            ),
            "{ch:?}"
        );
    }

    #[test]
    fn an_answer_that_comes_too_late_is_not_acted_on() {
        let mut c = Core::new("a", t());
        assert!(c.on_lease(0, 4600, seen("a", 1)).is_empty());
        assert_eq!(c.leading(4600), None);
        c.on_lease(5000, 5005, seen("a", 1));
        let ch = c.on_lease(6000, 10_600, seen("a", 1));
        assert!(matches!(ch.as_slice(), [Change::StepDown { .. }]), "{ch:?}");
    }

    #[test]
    fn an_expired_lease_held_by_nobody_names_no_leader() {
        let mut c = Core::new("a", t());
        let mut s = seen("b", 4);
        s.valid = false;
        assert!(c.on_lease(0, 5, s).is_empty());
        assert_eq!(c.role(), &Role::Follower { leader: None });
    }

    #[test]
    fn timing_needs_three_renewals_per_lease() {
        assert!(Timing::new(5000, 1000).validate().is_ok());
        assert!(Timing::new(2000, 1000).validate().is_err());
        assert!(Timing::new(5000, 50).validate().is_err());
    }
}
