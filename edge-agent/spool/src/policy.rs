//! What to drop when the spool is over its byte budget: a pure decision over segment summaries.
//!
//! Order of sacrifice:
//! 1. segments every consumer has already acknowledged (no loss: this is garbage collection);
//! 2. telemetry segments, oldest first (a counted loss);
//! 3. never event segments that are not yet acknowledged.
//!
//! If an incoming telemetry record cannot fit even after dropping every droppable segment
//! (events alone fill the spool), it is refused and nothing is dropped for it. An incoming event
//! is never refused for budget reasons: every telemetry segment is dropped and the event is
//! written over budget (the caller reports that loudly); only a disk that is really full stops
//! an event.

use crate::format::Class;

/// A summary of one segment, oldest first within each class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    pub class: Class,
    pub bytes: u64,
    /// Every record in it is acknowledged by every consumer.
    pub fully_acked: bool,
    /// The segment currently written to. An active event segment is never dropped.
    pub active: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Drop these candidates (indexes into the input), then the record fits.
    Fits { drop: Vec<usize> },
    /// An event that cannot fit: drop these (every telemetry and acked segment) and write anyway.
    EventOverBudget { drop: Vec<usize> },
    /// Telemetry that cannot fit because unacknowledged events fill the budget: drop nothing.
    RefuseTelemetry,
}

/// Decide what to drop so that `need` more bytes fit in `budget` with `used` bytes in use.
pub fn plan(
    candidates: &[Candidate],
    used: u64,
    budget: u64,
    need: u64,
    incoming: Class,
) -> Decision {
    let mut drop = Vec::new();
    let mut used_after = used;
    let fits = |u: u64| u.saturating_add(need) <= budget;
    if fits(used_after) {
        return Decision::Fits { drop };
    }
    // Acknowledged segments first (any class), oldest first in input order.
    let acked = candidates
        .iter()
        .enumerate()
        .filter(|(_, c)| c.fully_acked && !(c.active && c.class == Class::Event));
    // Then unacknowledged telemetry, oldest first.
    let telemetry = candidates
        .iter()
        .enumerate()
        .filter(|(_, c)| c.class == Class::Telemetry && !c.fully_acked);
    for (i, c) in acked.chain(telemetry) {
        if fits(used_after) {
            break;
        }
        drop.push(i);
        used_after = used_after.saturating_sub(c.bytes);
    }
    if fits(used_after) {
        Decision::Fits { drop }
    } else {
        match incoming {
            Class::Event => Decision::EventOverBudget { drop },
            Class::Telemetry => Decision::RefuseTelemetry,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(class: Class, bytes: u64, fully_acked: bool) -> Candidate {
        Candidate {
            class,
            bytes,
            fully_acked,
            active: false,
        }
    }

    #[test]
    fn nothing_is_dropped_while_the_record_fits() {
        let cands = [c(Class::Telemetry, 50, false)];
        assert_eq!(
            plan(&cands, 50, 100, 50, Class::Telemetry),
            Decision::Fits { drop: vec![] }
        );
    }

    #[test]
    fn acknowledged_segments_go_before_any_telemetry() {
        let cands = [
            c(Class::Telemetry, 40, false),
            c(Class::Event, 40, true),
            c(Class::Telemetry, 20, false),
        ];
        assert_eq!(
            plan(&cands, 100, 100, 30, Class::Telemetry),
            Decision::Fits { drop: vec![1] }
        );
    }

    #[test]
    fn telemetry_is_thinned_oldest_first_and_only_as_much_as_needed() {
        let cands = [
            c(Class::Event, 30, false),
            c(Class::Telemetry, 20, false),
            c(Class::Telemetry, 20, false),
            c(Class::Telemetry, 20, false),
        ];
        assert_eq!(
            plan(&cands, 90, 100, 30, Class::Telemetry),
            Decision::Fits { drop: vec![1] }
        );
        assert_eq!(
            plan(&cands, 90, 100, 45, Class::Event),
            Decision::Fits { drop: vec![1, 2] }
        );
    }

    #[test]
    fn unacknowledged_events_are_never_dropped() {
        let cands = [c(Class::Event, 90, false), c(Class::Telemetry, 10, false)];
        // Telemetry cannot fit beside 90 bytes of events: refused, nothing dropped.
        assert_eq!(
            plan(&cands, 100, 100, 20, Class::Telemetry),
            Decision::RefuseTelemetry
        );
        // An event goes in over budget after all telemetry is gone.
        assert_eq!(
            plan(&cands, 100, 100, 20, Class::Event),
            Decision::EventOverBudget { drop: vec![1] }
        );
    }

    #[test]
    fn the_active_event_segment_is_never_dropped_even_if_acked() {
        let mut active = c(Class::Event, 50, true);
        active.active = true;
        assert_eq!(
            plan(&[active], 100, 100, 10, Class::Telemetry),
            Decision::RefuseTelemetry
        );
    }
}
