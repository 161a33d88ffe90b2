//! When the spool cannot write (a full disk, an I/O error), say so once per episode, not for
//! every record (pure; time passed in). A full disk used to log ~50 errors a second.
//!
//! [`Episode::failed`] returns a report for the first failure of an episode and a reminder
//! every [`REMIND_MS`] while it lasts; [`Episode::succeeded`] returns the summary once writes
//! have gone through for [`QUIET_MS`] without a failure: how long it lasted, how many
//! telemetry samples were lost and how many events waited in memory at most (none is lost:
//! they wait in order). On a full disk writes fail and succeed in turn (an event frees room
//! that telemetry fills again): that is one episode, not one per turn.

/// A reminder while writes keep failing.
pub const REMIND_MS: u64 = 5 * 60_000;
/// Writes working for this long without a failure end an episode.
pub const QUIET_MS: u64 = 30_000;

/// What failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// An event could not be spooled; `waiting` events are now held in memory.
    Event { waiting: usize },
    /// A telemetry batch could not be spooled and is lost.
    Telemetry { samples: u32 },
    /// An fsync or `meta.json` write failed.
    Sync,
}

/// What to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    Started,
    Continuing {
        for_ms: u64,
        telemetry_samples_lost: u64,
        events_waiting: usize,
    },
    Over {
        lasted_ms: u64,
        telemetry_samples_lost: u64,
        telemetry_batches_lost: u64,
        events_waited_max: usize,
        failures: u64,
    },
}

#[derive(Debug, Default)]
pub struct Episode {
    since_ms: Option<u64>,
    last_failure_ms: u64,
    reported_ms: u64,
    failures: u64,
    samples_lost: u64,
    batches_lost: u64,
    events_waiting: usize,
    events_waited_max: usize,
}

impl Episode {
    pub fn failed(&mut self, now_ms: u64, what: Failure) -> Option<Report> {
        self.failures += 1;
        self.last_failure_ms = now_ms;
        match what {
            Failure::Event { waiting } => {
                self.events_waiting = waiting;
                self.events_waited_max = self.events_waited_max.max(waiting);
            }
            Failure::Telemetry { samples } => {
                self.samples_lost += u64::from(samples);
                self.batches_lost += 1;
            }
            Failure::Sync => {}
        }
        match self.since_ms {
            None => {
                self.since_ms = Some(now_ms);
                self.reported_ms = now_ms;
                Some(Report::Started)
            }
            Some(since) if now_ms.saturating_sub(self.reported_ms) >= REMIND_MS => {
                self.reported_ms = now_ms;
                Some(Report::Continuing {
                    for_ms: now_ms.saturating_sub(since),
                    telemetry_samples_lost: self.samples_lost,
                    events_waiting: self.events_waiting,
                })
            }
            Some(_) => None,
        }
    }

    /// A write went through; the summary if the episode ends with it (no failure for
    /// [`QUIET_MS`]).
    pub fn succeeded(&mut self, now_ms: u64) -> Option<Report> {
        let since = self.since_ms?;
        if now_ms.saturating_sub(self.last_failure_ms) < QUIET_MS {
            return None;
        }
        let r = Report::Over {
            lasted_ms: self.last_failure_ms.saturating_sub(since),
            telemetry_samples_lost: self.samples_lost,
            telemetry_batches_lost: self.batches_lost,
            events_waited_max: self.events_waited_max,
            failures: self.failures,
        };
        *self = Episode::default();
        Some(r)
    }

    /// Whether writes are failing now.
    pub fn active(&self) -> bool {
        self.since_ms.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hazard: on a full disk the agent logged ~50 errors a second, burying everything else
    /// (and filling the disk holding the log).
    #[test]
    fn an_episode_is_reported_once_then_reminded_then_summarised() {
        let mut e = Episode::default();
        assert_eq!(e.succeeded(0), None, "no episode, nothing to say");
        assert_eq!(
            e.failed(1_000, Failure::Event { waiting: 1 }),
            Some(Report::Started)
        );
        let mut said = 0;
        for i in 0..5_000u64 {
            let what = if i % 2 == 0 {
                Failure::Telemetry { samples: 10 }
            } else {
                Failure::Event {
                    waiting: (i / 2) as usize,
                }
            };
            if e.failed(1_000 + i * 20, what).is_some() {
                said += 1;
            }
        }
        assert_eq!(said, 0, "100 s of failures, nothing more said");
        // Writes between failures (an event freed room) do not end the episode.
        assert_eq!(e.succeeded(101_100), None);
        assert!(
            e.failed(101_200, Failure::Telemetry { samples: 0 })
                .is_none()
        );
        assert!(matches!(
            e.failed(1_000 + REMIND_MS, Failure::Sync),
            Some(Report::Continuing { .. })
        ));
        assert_eq!(e.succeeded(1_000 + REMIND_MS + 1), None, "not quiet yet");
        match e.succeeded(1_000 + REMIND_MS + QUIET_MS) {
            Some(Report::Over {
                lasted_ms,
                telemetry_samples_lost,
                events_waited_max,
                ..
            }) => {
                assert_eq!(lasted_ms, REMIND_MS);
                assert_eq!(telemetry_samples_lost, 25_000);
                assert_eq!(events_waited_max, 2_499);
            }
            other => panic!("{other:?}"),
        }
        assert!(!e.active());
        assert_eq!(e.succeeded(1_000_000), None);
    }
}
