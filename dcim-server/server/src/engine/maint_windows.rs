//! Maintenance windows scheduled in advance: who does the work, on what, from when to when and
//! why. Pure state and decisions, no clock and no I/O (`api_windows` stores the schedule, runs
//! [`Schedule::due`] every second and applies what it returns through the existing maintenance
//! mechanism, `Facility::set_maintenance`, with an audit record).
//!
//! Rules:
//! - A window starts by itself at `from_ms` and ends by itself at `to_ms`. Starting puts each
//!   of its subjects in maintenance **unless it already is** (set by hand or by another
//!   window); the subjects it put in maintenance are its `applied` list, and only those are
//!   taken out when it ends. A subject another active window also covers is handed over to
//!   that window instead of being taken out.
//! - Under authority control nothing starts or ends (setting or clearing maintenance changes
//!   which alarms the fire authority sees): the window is `held`, reported once, and what is
//!   due happens when authority control ends. A window whose end passed while held ends
//!   without ever starting.
//! - A window scheduled but not started can be cancelled (nothing changes in the plant);
//!   cancelling an active window ends it early (its subjects leave maintenance, which the API
//!   refuses under authority control).
//! - Ended and cancelled windows are kept for [`KEEP_FINISHED_MS`] (the audit log keeps them
//!   for good).
//!
//! The order of writes makes a crash fail toward visible alarms: the schedule with the
//! window's new `applied` list is stored before the maintenance is set, so a crash in between
//! leaves the subject out of maintenance (alarms annunciated), never in maintenance with no
//! window to end it.
//!
//! Shell: a 1 s ticker (`api_windows`) asks `Schedule::due` what starts or ends and applies it
//! through `Facility::set_maintenance`, committed with an audit record (actor `window:{id}`); the
//! schedule (one `maintenance.windows` document) is stored before the maintenance it implies.
//! Changes are pushed as the live event `maintenance`. Lock order: authority, schedule, facility.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Longest window.
pub const MAX_DURATION_MS: i64 = 31 * 86_400_000;
/// How far in the past a new window may start (a form filled in a minute ago).
pub const START_SLACK_MS: i64 = 5 * 60_000;
/// Finished windows are dropped from the schedule after this long.
pub const KEEP_FINISHED_MS: i64 = 90 * 86_400_000;
/// Most windows not yet finished.
pub const MAX_OPEN: usize = 1000;
/// Most subjects of one window.
pub const MAX_SUBJECTS: usize = 200;
const MAX_TEXT: usize = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Scheduled,
    Active,
    Ended,
    Cancelled,
}

/// What was due while authority control held it back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    pub since_ms: i64,
    /// `start` or `end`.
    pub what: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub id: u64,
    /// Components or devices put in maintenance.
    pub subjects: Vec<String>,
    /// Who does the work (a person, team or contractor).
    pub who: String,
    pub reason: String,
    pub from_ms: i64,
    pub to_ms: i64,
    pub created_by: String,
    pub created_ms: i64,
    pub status: Status,
    pub started_ms: Option<i64>,
    pub ended_ms: Option<i64>,
    /// The subjects this window put in maintenance (and will take out).
    pub applied: Vec<String>,
    pub held: Option<Held>,
    /// Who cancelled or ended it early, and why.
    pub cancelled_by: Option<String>,
    pub cancel_reason: Option<String>,
    /// Why it ended: `time`, `cancelled`, `missed` (its time passed under authority control).
    pub end_cause: Option<String>,
}

impl Window {
    /// Whether it covers `subject` now (active).
    pub fn covers(&self, subject: &str) -> bool {
        self.status == Status::Active && self.subjects.iter().any(|s| s == subject)
    }
}

/// A request to schedule a window.
#[derive(Debug, Clone, Deserialize)]
pub struct NewWindow {
    pub subjects: Vec<String>,
    pub who: String,
    pub reason: String,
    pub from_ms: i64,
    pub to_ms: i64,
}

/// A refused request: the field and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("no maintenance window {0}")]
    Unknown(u64),
    #[error("window {id} is {status:?}: only a scheduled or active window can be cancelled")]
    Finished { id: u64, status: Status },
}

fn invalid(field: &'static str, message: impl Into<String>) -> WindowError {
    WindowError::Invalid {
        field,
        message: message.into(),
    }
}

/// What the shell must do for a window now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The window started: put `apply` in maintenance (the others already were).
    Start { id: u64, apply: Vec<String> },
    /// The window ended: take `clear` out of maintenance; `handed` stayed in maintenance under
    /// another active window (subject, that window's id).
    End {
        id: u64,
        clear: Vec<String>,
        handed: Vec<(String, u64)>,
        cause: &'static str,
    },
    /// Due, but authority control holds it back (reported once per hold).
    Held { id: u64, what: &'static str },
}

/// The request's subjects, trimmed, blanks skipped, duplicates dropped; each must be `known`
/// (a component or device of the site), 1 to [`MAX_SUBJECTS`] of them.
fn subjects_of(
    requested: &[String],
    known: impl Fn(&str) -> bool,
) -> Result<Vec<String>, WindowError> {
    let mut subjects: Vec<String> = Vec::new();
    for s in requested {
        let s = s.trim();
        if s.is_empty() {
            continue;
        }
        if !known(s) {
            return Err(invalid(
                "subjects",
                format!("`{s}`: expected the id of a component or device of the site"),
            ));
        }
        if !subjects.iter().any(|x| x == s) {
            subjects.push(s.to_owned());
        }
    }
    if subjects.is_empty() || subjects.len() > MAX_SUBJECTS {
        return Err(invalid(
            "subjects",
            format!("expected 1 to {MAX_SUBJECTS} components or devices"),
        ));
    }
    Ok(subjects)
}

/// Checks the request's `who` and `reason` (returned trimmed) and its times: a start from now
/// on (within [`START_SLACK_MS`]), an end after it, at most [`MAX_DURATION_MS`] long.
fn who_reason_and_times(req: &NewWindow, now_ms: i64) -> Result<(&str, &str), WindowError> {
    let who = req.who.trim();
    if who.is_empty() || who.chars().count() > 200 {
        return Err(invalid(
            "who",
            "expected who does the work (1 to 200 characters)",
        ));
    }
    let reason = req.reason.trim();
    if reason.is_empty() || reason.chars().count() > MAX_TEXT {
        return Err(invalid(
            "reason",
            format!("expected why (1 to {MAX_TEXT} characters)"),
        ));
    }
    if req.from_ms < now_ms - START_SLACK_MS {
        return Err(invalid(
            "from_ms",
            "expected a start from now on (a window is scheduled in advance)",
        ));
    }
    if req.to_ms <= req.from_ms {
        return Err(invalid("to_ms", "expected an end after the start"));
    }
    if req.to_ms - req.from_ms > MAX_DURATION_MS {
        return Err(invalid("to_ms", "expected a window of at most 31 days"));
    }
    Ok((who, reason))
}

/// Every window, and the next id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    pub next_id: u64,
    pub windows: Vec<Window>,
}

impl Schedule {
    /// Schedules a window. `known(subject)` says whether a subject is a component or device of
    /// the site.
    pub fn create(
        &mut self,
        req: NewWindow,
        user: &str,
        now_ms: i64,
        known: impl Fn(&str) -> bool,
    ) -> Result<&Window, WindowError> {
        let subjects = subjects_of(&req.subjects, known)?;
        let (who, reason) = who_reason_and_times(&req, now_ms)?;
        let open = self
            .windows
            .iter()
            .filter(|w| matches!(w.status, Status::Scheduled | Status::Active))
            .count();
        if open >= MAX_OPEN {
            return Err(invalid(
                "subjects",
                format!("{MAX_OPEN} windows are scheduled or active: expected fewer"),
            ));
        }
        self.next_id += 1;
        self.windows.push(Window {
            id: self.next_id,
            subjects,
            who: who.to_owned(),
            reason: reason.to_owned(),
            from_ms: req.from_ms,
            to_ms: req.to_ms,
            created_by: user.to_owned(),
            created_ms: now_ms,
            status: Status::Scheduled,
            started_ms: None,
            ended_ms: None,
            applied: Vec::new(),
            held: None,
            cancelled_by: None,
            cancel_reason: None,
            end_cause: None,
        });
        Ok(self.windows.last().expect("just pushed"))
    }

    pub fn get(&self, id: u64) -> Option<&Window> {
        self.windows.iter().find(|w| w.id == id)
    }

    /// Cancels a scheduled window (nothing to undo: `Ok(None)`) or ends an active one early
    /// (`Ok(Some(Step::End))`, to be applied by the caller).
    pub fn cancel(
        &mut self,
        id: u64,
        user: &str,
        reason: &str,
        now_ms: i64,
    ) -> Result<Option<Step>, WindowError> {
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > MAX_TEXT {
            return Err(invalid(
                "reason",
                format!("expected why (1 to {MAX_TEXT} characters)"),
            ));
        }
        let i = self
            .windows
            .iter()
            .position(|w| w.id == id)
            .ok_or(WindowError::Unknown(id))?;
        let status = self.windows[i].status;
        match status {
            Status::Scheduled => {
                let w = &mut self.windows[i];
                w.status = Status::Cancelled;
                w.ended_ms = Some(now_ms);
                w.cancelled_by = Some(user.to_owned());
                w.cancel_reason = Some(reason.to_owned());
                w.end_cause = Some("cancelled".into());
                w.held = None;
                Ok(None)
            }
            Status::Active => {
                let step = self.finish(i, now_ms, "cancelled");
                let w = &mut self.windows[i];
                w.status = Status::Cancelled;
                w.cancelled_by = Some(user.to_owned());
                w.cancel_reason = Some(reason.to_owned());
                Ok(Some(step))
            }
            s => Err(WindowError::Finished { id, status: s }),
        }
    }

    /// Ends window `i` now: which of its applied subjects leave maintenance and which are
    /// handed to another active window covering them.
    fn finish(&mut self, i: usize, now_ms: i64, cause: &'static str) -> Step {
        let id = self.windows[i].id;
        let applied = std::mem::take(&mut self.windows[i].applied);
        let w = &mut self.windows[i];
        w.status = Status::Ended;
        w.ended_ms = Some(now_ms);
        w.end_cause = Some(cause.into());
        w.held = None;
        let mut clear = Vec::new();
        let mut handed = Vec::new();
        for s in applied {
            // The other active window that ends last takes the subject over.
            let heir = self
                .windows
                .iter_mut()
                .filter(|o| o.id != id && o.covers(&s))
                .max_by_key(|o| o.to_ms);
            match heir {
                Some(o) => {
                    o.applied.push(s.clone());
                    handed.push((s, o.id));
                }
                None => clear.push(s),
            }
        }
        Step::End {
            id,
            clear,
            handed,
            cause,
        }
    }

    /// What is due at `now_ms`, in order (starts before ends, so a subject moving from one
    /// window to the next back to back is handed over, never out of maintenance in between).
    /// `in_maintenance(subject)`: whether it is in maintenance now. The schedule is updated as
    /// if the caller does what the steps say.
    pub fn due(
        &mut self,
        now_ms: i64,
        in_maintenance: impl Fn(&str) -> bool,
        authority_active: bool,
    ) -> Vec<Step> {
        let mut steps = Vec::new();
        let hold = |w: &mut Window, what: &'static str, steps: &mut Vec<Step>| {
            if w.held.as_ref().is_none_or(|h| h.what != what) {
                w.held = Some(Held {
                    since_ms: now_ms,
                    what: what.into(),
                });
                steps.push(Step::Held { id: w.id, what });
            }
        };
        // Starts. Subjects set on earlier in this pass count as in maintenance.
        let mut set_now: BTreeSet<String> = BTreeSet::new();
        for w in self.windows.iter_mut() {
            if w.status != Status::Scheduled || now_ms < w.from_ms {
                continue;
            }
            if now_ms >= w.to_ms {
                // Its whole time passed without it starting (held under authority control).
                w.status = Status::Ended;
                w.ended_ms = Some(now_ms);
                w.end_cause = Some("missed".into());
                w.held = None;
                steps.push(Step::End {
                    id: w.id,
                    clear: Vec::new(),
                    handed: Vec::new(),
                    cause: "missed",
                });
                continue;
            }
            if authority_active {
                hold(w, "start", &mut steps);
                continue;
            }
            let apply: Vec<String> = w
                .subjects
                .iter()
                .filter(|s| !in_maintenance(s) && !set_now.contains(*s))
                .cloned()
                .collect();
            set_now.extend(apply.iter().cloned());
            w.status = Status::Active;
            w.started_ms = Some(now_ms);
            w.applied = apply.clone();
            w.held = None;
            steps.push(Step::Start { id: w.id, apply });
        }
        // Ends.
        for i in 0..self.windows.len() {
            let w = &mut self.windows[i];
            if w.status == Status::Active && now_ms >= w.to_ms {
                if authority_active {
                    hold(w, "end", &mut steps);
                } else {
                    steps.push(self.finish(i, now_ms, "time"));
                }
            }
        }
        steps
    }

    /// Drops finished windows older than [`KEEP_FINISHED_MS`]; whether anything was dropped.
    pub fn prune(&mut self, now_ms: i64) -> bool {
        let n = self.windows.len();
        self.windows.retain(|w| {
            matches!(w.status, Status::Scheduled | Status::Active)
                || w.ended_ms.is_none_or(|t| now_ms - t < KEEP_FINISHED_MS)
        });
        n != self.windows.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    const NOW: i64 = 1_800_000_000_000;
    const MIN: i64 = 60_000;

    fn req(subjects: &[&str], from: i64, to: i64) -> NewWindow {
        NewWindow {
            subjects: subjects.iter().map(|s| s.to_string()).collect(),
            who: "Kim, UPS vendor".into(),
            reason: "Battery string replacement".into(),
            from_ms: from,
            to_ms: to,
        }
    }

    fn known(s: &str) -> bool {
        matches!(s, "ups-z1" | "ups-z2" | "pdu-1")
    }

    /// The shell in miniature: applies the steps to a maintenance set.
    struct Plant {
        maint: RefCell<BTreeSet<String>>,
    }
    impl Plant {
        fn new() -> Plant {
            Plant {
                maint: RefCell::new(BTreeSet::new()),
            }
        }
        fn run(&self, s: &mut Schedule, now: i64, authority: bool) -> Vec<Step> {
            let steps = s.due(now, |x| self.maint.borrow().contains(x), authority);
            for st in &steps {
                match st {
                    Step::Start { apply, .. } => {
                        self.maint.borrow_mut().extend(apply.iter().cloned())
                    }
                    Step::End { clear, .. } => {
                        for c in clear {
                            self.maint.borrow_mut().remove(c);
                        }
                    }
                    Step::Held { .. } => {}
                }
            }
            steps
        }
        fn has(&self, x: &str) -> bool {
            self.maint.borrow().contains(x)
        }
    }

    #[test]
    fn requests_are_checked_field_by_field() {
        // Hazard: a window on a misspelt component that silently does nothing.
        let mut s = Schedule::default();
        let field = |r: Result<&Window, WindowError>| match r {
            Err(WindowError::Invalid { field, .. }) => field,
            other => panic!("accepted: {other:?}"),
        };
        assert_eq!(
            field(s.create(req(&["ups-z9"], NOW, NOW + MIN), "op", NOW, known)),
            "subjects"
        );
        assert_eq!(
            field(s.create(req(&[" "], NOW, NOW + MIN), "op", NOW, known)),
            "subjects"
        );
        assert_eq!(
            field(s.create(
                req(&["ups-z1"], NOW - 10 * MIN, NOW + MIN),
                "op",
                NOW,
                known
            )),
            "from_ms"
        );
        assert_eq!(
            field(s.create(req(&["ups-z1"], NOW + MIN, NOW + MIN), "op", NOW, known)),
            "to_ms"
        );
        assert_eq!(
            field(s.create(
                req(&["ups-z1"], NOW, NOW + MAX_DURATION_MS + 1),
                "op",
                NOW,
                known
            )),
            "to_ms"
        );
        let mut r = req(&["ups-z1"], NOW, NOW + MIN);
        r.reason = "  ".into();
        assert_eq!(field(s.create(r, "op", NOW, known)), "reason");
        let mut r = req(&["ups-z1"], NOW, NOW + MIN);
        r.who = String::new();
        assert_eq!(field(s.create(r, "op", NOW, known)), "who");
        let w = s
            .create(
                req(&["ups-z1", "ups-z1", "pdu-1"], NOW + MIN, NOW + 2 * MIN),
                "op",
                NOW,
                known,
            )
            .unwrap();
        assert_eq!(
            (w.id, w.status, w.subjects.len()),
            (1, Status::Scheduled, 2)
        );
    }

    #[test]
    fn a_window_starts_and_ends_by_itself_and_only_undoes_what_it_did() {
        // Hazard: a window that never ends leaves alarms suppressed for good; one that clears
        // a maintenance set by hand makes a UPS under repair annunciate and count as supply.
        let plant = Plant::new();
        plant.maint.borrow_mut().insert("pdu-1".into()); // set by hand before
        let mut s = Schedule::default();
        s.create(
            req(&["ups-z1", "pdu-1"], NOW + MIN, NOW + 10 * MIN),
            "op",
            NOW,
            known,
        )
        .unwrap();
        assert!(
            plant.run(&mut s, NOW, false).is_empty(),
            "nothing before its time"
        );
        let steps = plant.run(&mut s, NOW + MIN, false);
        assert_eq!(
            steps,
            [Step::Start {
                id: 1,
                apply: vec!["ups-z1".into()]
            }]
        );
        assert!(plant.has("ups-z1") && plant.has("pdu-1"));
        assert!(
            plant.run(&mut s, NOW + 5 * MIN, false).is_empty(),
            "a start happens once"
        );
        let steps = plant.run(&mut s, NOW + 10 * MIN, false);
        assert!(
            matches!(&steps[..], [Step::End { id: 1, clear, cause: "time", .. }] if clear == &["ups-z1".to_string()])
        );
        assert!(!plant.has("ups-z1"), "ended by itself");
        assert!(plant.has("pdu-1"), "the hand-set maintenance stays");
        assert_eq!(s.get(1).unwrap().status, Status::Ended);
    }

    #[test]
    fn overlapping_windows_hand_a_subject_over_instead_of_clearing_it() {
        let plant = Plant::new();
        let mut s = Schedule::default();
        s.create(req(&["ups-z1"], NOW, NOW + 10 * MIN), "op", NOW, known)
            .unwrap();
        s.create(
            req(&["ups-z1"], NOW + 5 * MIN, NOW + 20 * MIN),
            "op",
            NOW,
            known,
        )
        .unwrap();
        plant.run(&mut s, NOW, false);
        let steps = plant.run(&mut s, NOW + 5 * MIN, false);
        assert_eq!(
            steps,
            [Step::Start {
                id: 2,
                apply: vec![]
            }]
        );
        let steps = plant.run(&mut s, NOW + 10 * MIN, false);
        assert!(
            matches!(&steps[..], [Step::End { id: 1, clear, handed, .. }] if clear.is_empty() && handed == &[("ups-z1".to_string(), 2)])
        );
        assert!(plant.has("ups-z1"), "still covered by window 2");
        plant.run(&mut s, NOW + 20 * MIN, false);
        assert!(!plant.has("ups-z1"), "window 2 ends what it took over");
        // Back to back: the second starts as the first ends and takes the subject over,
        // without a moment out of maintenance.
        let mut s = Schedule::default();
        s.create(req(&["ups-z2"], NOW, NOW + MIN), "op", NOW, known)
            .unwrap();
        plant.run(&mut s, NOW, false);
        s.create(req(&["ups-z2"], NOW + MIN, NOW + 2 * MIN), "op", NOW, known)
            .unwrap();
        let steps = plant.run(&mut s, NOW + MIN, false);
        assert_eq!(steps.len(), 2);
        assert_eq!(
            steps[0],
            Step::Start {
                id: 2,
                apply: vec![]
            }
        );
        assert!(
            matches!(&steps[1], Step::End { clear, handed, .. } if clear.is_empty() && handed == &[("ups-z2".to_string(), 2)])
        );
        assert!(plant.has("ups-z2"));
        plant.run(&mut s, NOW + 2 * MIN, false);
        assert!(!plant.has("ups-z2"), "and ends it");
    }

    /// Window 1 for `ups-z1` from a minute on to ten, window 2 for `ups-z2` from now to
    /// `z2_end`.
    fn z1_later_and_z2_now(z2_end: i64) -> Schedule {
        let mut s = Schedule::default();
        s.create(
            req(&["ups-z1"], NOW + MIN, NOW + 10 * MIN),
            "op",
            NOW,
            known,
        )
        .unwrap();
        s.create(req(&["ups-z2"], NOW, z2_end), "op", NOW, known)
            .unwrap();
        s
    }

    #[test]
    fn authority_control_holds_starts_and_ends_until_it_is_left() {
        // Hazard: alarms hidden (or changed) behind the fire authority's back.
        let plant = Plant::new();
        let mut s = z1_later_and_z2_now(NOW + 3 * MIN);
        plant.run(&mut s, NOW, false); // window 2 starts
        let steps = plant.run(&mut s, NOW + MIN, true);
        assert_eq!(
            steps,
            [Step::Held {
                id: 1,
                what: "start"
            }]
        );
        assert!(
            plant.run(&mut s, NOW + 2 * MIN, true).is_empty(),
            "reported once"
        );
        assert!(!plant.has("ups-z1"));
        assert_eq!(
            plant.run(&mut s, NOW + 3 * MIN, true),
            [Step::Held { id: 2, what: "end" }]
        );
        assert!(plant.has("ups-z2"), "not ended under authority control");
        // Left: both happen.
        let steps = plant.run(&mut s, NOW + 4 * MIN, false);
        assert_eq!(steps.len(), 2);
        assert!(!plant.has("ups-z2") && plant.has("ups-z1"));
        assert_eq!(s.get(1).unwrap().held, None);
        // A window whose whole time passed while held ends without starting.
        s.create(
            req(&["pdu-1"], NOW + 5 * MIN, NOW + 6 * MIN),
            "op",
            NOW + 4 * MIN,
            known,
        )
        .unwrap();
        plant.run(&mut s, NOW + 5 * MIN, true);
        let steps = plant.run(&mut s, NOW + 7 * MIN, false);
        assert!(steps.iter().any(|st| matches!(
            st,
            Step::End {
                id: 3,
                cause: "missed",
                ..
            }
        )));
        assert!(!plant.has("pdu-1"));
    }

    #[test]
    fn cancelling_a_scheduled_window_changes_nothing_and_an_active_one_ends_it() {
        let plant = Plant::new();
        let mut s = z1_later_and_z2_now(NOW + 10 * MIN);
        plant.run(&mut s, NOW, false);
        assert_eq!(s.cancel(1, "op2", "vendor postponed", NOW), Ok(None));
        assert!(matches!(
            s.cancel(1, "op2", "again", NOW),
            Err(WindowError::Finished { .. })
        ));
        assert!(
            plant.run(&mut s, NOW + MIN, false).is_empty(),
            "a cancelled window never starts"
        );
        assert!(matches!(
            s.cancel(2, "op2", "", NOW),
            Err(WindowError::Invalid {
                field: "reason",
                ..
            })
        ));
        let Ok(Some(Step::End { clear, .. })) = s.cancel(2, "op2", "done early", NOW + 2 * MIN)
        else {
            panic!("an active window ends when cancelled");
        };
        assert_eq!(clear, ["ups-z2"]);
        let w = s.get(2).unwrap();
        assert_eq!(
            (w.status, w.cancelled_by.as_deref()),
            (Status::Cancelled, Some("op2"))
        );
        assert!(matches!(
            s.cancel(9, "op", "x", NOW),
            Err(WindowError::Unknown(9))
        ));
        assert!(!s.prune(NOW + KEEP_FINISHED_MS - 1));
        assert!(s.prune(NOW + KEEP_FINISHED_MS + 3 * MIN));
        assert!(s.windows.is_empty());
    }
}
