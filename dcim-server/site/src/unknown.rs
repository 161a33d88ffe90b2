//! The seed rule for components: Unknown that lasts becomes Down.
//!
//! [`crate::state::component_state`] is a pure function of the latest samples, so it can say a
//! component is Unknown but not for how long (a comm-lost point is re-reported with a new
//! timestamp at every heartbeat). [`UnknownTimer`] remembers, across evaluations, since when
//! each component has been Unknown, and turns it Down once that has lasted `down_after_ms`.
//! A Down component carries no supply, so a plant that stayed silent for that long counts as
//! lost in every level, what-if and alarm. Time is passed in; the timer holds no clock.

use crate::model::Site;
use crate::state::{CompState, ComponentState};

/// Since when each component (by index in [`Site::components`]) has been Unknown.
#[derive(Debug, Clone, Default)]
pub struct UnknownTimer {
    since: Vec<Option<i64>>,
}

impl UnknownTimer {
    pub fn new() -> UnknownTimer {
        UnknownTimer::default()
    }

    /// Records which components are Unknown at `now_ms` and turns those Unknown for at least
    /// `down_after_ms` into Down (reason: how long, and the last reason). Unknown starts at the
    /// first evaluation that found the component Unknown, or earlier when the state says so
    /// (`unknown_since_ms`, e.g. a good sample that went stale); it ends when the component is
    /// anything else. Sets `unknown_since_ms` on every Unknown (and timed-out) component.
    pub fn apply(
        &mut self,
        site: &Site,
        states: &mut [ComponentState],
        now_ms: i64,
        down_after_ms: i64,
    ) {
        if self.since.len() != site.components.len() {
            self.since = vec![None; site.components.len()];
        }
        for (since, st) in self.since.iter_mut().zip(states.iter_mut()) {
            if st.state != CompState::Unknown {
                *since = None;
                continue;
            }
            let start = match (*since, st.unknown_since_ms) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => a.or(b).unwrap_or(now_ms),
            };
            *since = Some(start);
            st.unknown_since_ms = Some(start);
            if now_ms - start >= down_after_ms {
                st.state = CompState::Down;
                st.reason = format!(
                    "no usable data for {} s (Unknown longer than {} s is Down): {}",
                    (now_ms - start) / 1000,
                    down_after_ms / 1000,
                    st.reason
                );
            }
        }
    }

    /// Forgets everything (e.g. after the site model changed).
    pub fn reset(&mut self) {
        self.since.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::sample;
    use crate::state::{Live, component_states};
    use dcim_points::{Quality, Value};
    use std::collections::BTreeSet;

    const T: i64 = 1_800_000_000_000;

    fn site() -> Site {
        crate::fixture::test_site(
            r#"stale_after_ms = 10000
[[component]]
id = "ch"
kind = "chiller"
device = "chiller-1"
points = ["chiller.running"]
"#,
        )
    }

    #[test]
    fn unknown_that_lasts_becomes_down_and_good_data_ends_it() {
        // Hazard: a chiller whose controller went silent counted as running for ever.
        let s = site();
        let mut live = Live::new();
        let mut lost = sample("chiller-1", "chiller.running", Value::Bool(true), T);
        lost.quality = Quality::CommLost;
        live.update(lost.clone());
        let mut timer = UnknownTimer::new();
        let mut at = |live: &Live, now: i64| {
            let mut st = component_states(&s, live, &BTreeSet::new(), now);
            timer.apply(&s, &mut st, now, 60_000);
            st.remove(0)
        };
        let a = at(&live, T);
        assert_eq!((a.state, a.unknown_since_ms), (CompState::Unknown, Some(T)));
        // Heartbeats of the comm-lost point do not restart the clock.
        lost.ts_ms = T + 30_000;
        live.update(lost);
        assert_eq!(at(&live, T + 59_999).state, CompState::Unknown);
        let d = at(&live, T + 60_000);
        assert_eq!(d.state, CompState::Down);
        assert!(d.reason.contains("no usable data for 60 s"), "{}", d.reason);
        // A good reading ends it at once, and the next silence starts a new clock.
        live.update(sample(
            "chiller-1",
            "chiller.running",
            Value::Bool(true),
            T + 61_000,
        ));
        assert_eq!(at(&live, T + 61_000).state, CompState::Up);
        // Stale from T + 61 s + 10 s: Unknown since then, not since the evaluation.
        let late = at(&live, T + 100_000);
        assert_eq!(
            (late.state, late.unknown_since_ms),
            (CompState::Unknown, Some(T + 71_000))
        );
        assert_eq!(at(&live, T + 131_000).state, CompState::Down);
    }

    #[test]
    fn never_reported_is_down_after_the_timeout_from_the_first_evaluation() {
        let s = site();
        let live = Live::new();
        let mut timer = UnknownTimer::new();
        let mut st = component_states(&s, &live, &BTreeSet::new(), T);
        timer.apply(&s, &mut st, T, 60_000);
        assert_eq!(st[0].state, CompState::Unknown);
        let mut st = component_states(&s, &live, &BTreeSet::new(), T + 60_000);
        timer.apply(&s, &mut st, T + 60_000, 60_000);
        assert_eq!(st[0].state, CompState::Down);
    }
}
