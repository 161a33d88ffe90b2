//! Incidents: opened from grade-1/2 alarms (grouped by cause within a window) or by an
//! operator; five steps (detect, declare, handle, close, follow up); roles; a journal; cause,
//! impact, recovery, retrospective and follow-up items; the grade raised when recovery is late;
//! Markdown and JSON export.

use crate::engine::{Event, Record};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// The five steps of the operator's incident practice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Detected,
    Declared,
    Handling,
    Closed,
    FollowUp,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Detected => "detected",
            Phase::Declared => "declared",
            Phase::Handling => "handling",
            Phase::Closed => "closed",
            Phase::FollowUp => "follow-up",
        }
    }
}

/// Incident roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoleKind {
    /// Decides the grade and directs.
    ControlTower,
    Operator,
    /// Keeps the timeline on the dashboard.
    Communicator,
    /// Outside communication.
    ResponsibleManager,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Roles {
    pub control_tower: Option<String>,
    pub operators: Vec<String>,
    pub communicator: Option<String>,
    pub responsible_manager: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    Alarm,
    Action,
    Note,
    Phase,
    Grade,
}

/// One line of an incident's journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    pub ts_ms: i64,
    pub kind: EntryKind,
    /// Who (an operator, or `system:...`).
    pub user: String,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowUpItem {
    pub text: String,
    pub owner: Option<String>,
    pub done: bool,
}

/// One incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    pub id: u64,
    pub title: String,
    /// 1 = most users cannot use the service, 2 = felt by some, 3 = not felt.
    pub grade: u8,
    pub phase: Phase,
    pub opened_ms: i64,
    pub declared_ms: Option<i64>,
    pub closed_ms: Option<i64>,
    /// Recovery is expected by this time; later, the grade is raised one level (once).
    pub expected_recovery_ms: i64,
    pub grade_raised: bool,
    /// Grouping key (the cause of its first alarm), when opened from alarms.
    pub cause_key: Option<String>,
    pub roles: Roles,
    /// Alarm ids attached.
    pub alarms: Vec<String>,
    pub journal: Vec<JournalEntry>,
    pub cause: String,
    pub impact: String,
    pub recovery: String,
    pub retrospective: String,
    pub follow_ups: Vec<FollowUpItem>,
    /// Last time an alarm joined (for the grouping window).
    pub last_alarm_ms: i64,
}

/// Tuning of incident handling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentConfig {
    /// Alarms of one cause within this window of the incident's last alarm join it.
    pub group_window_ms: i64,
    /// Any grade-1/2 alarm within this time of an incident's opening joins it (burst of one
    /// event seen from several sides).
    pub burst_window_ms: i64,
    /// Expected time to recovery by grade (index 0 = grade 1).
    pub expected_recovery_ms: [i64; 3],
}

impl Default for IncidentConfig {
    fn default() -> Self {
        IncidentConfig {
            group_window_ms: 30 * 60_000,
            burst_window_ms: 60_000,
            expected_recovery_ms: [3_600_000, 4 * 3_600_000, 24 * 3_600_000],
        }
    }
}

/// What changed, for the caller to store and push.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum IncidentEvent {
    Opened { id: u64, grade: u8 },
    AlarmJoined { id: u64, alarm: String },
    PhaseChanged { id: u64, phase: Phase },
    GradeRaised { id: u64, from: u8, to: u8 },
    Updated { id: u64 },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IncidentError {
    #[error("unknown incident {0}")]
    Unknown(u64),
    #[error("incident {id} is {from}: cannot go to {to}")]
    BadPhase {
        id: u64,
        from: &'static str,
        to: &'static str,
    },
    #[error("grade must be 1, 2 or 3")]
    BadGrade,
    #[error("incident {id} is already grade {grade}")]
    SameGrade { id: u64, grade: u8 },
    #[error("incident {id} cannot be closed without a cause: record its cause first")]
    NoCause { id: u64 },
    #[error("an incident action needs a user")]
    NoUser,
    #[error("{what}: at most {max} characters (this one has {len})")]
    TooLong {
        what: &'static str,
        len: usize,
        max: usize,
    },
    #[error("incident {id} already has {max} {what}: open a follow-up incident")]
    TooMany {
        id: u64,
        what: &'static str,
        max: usize,
    },
}

/// Longest incident title, in characters.
pub const MAX_TITLE: usize = 200;
/// Longest note, in characters.
pub const MAX_NOTE: usize = 8_000;
/// Longest cause, impact, recovery or retrospective text, in characters.
pub const MAX_FIELD: usize = 20_000;
/// Longest follow-up item or person name, in characters.
pub const MAX_ITEM: usize = 2_000;
/// Notes an operator may add to one incident (alarm records are always journalled).
pub const MAX_NOTES: usize = 1_000;
/// Follow-up items of one incident.
pub const MAX_FOLLOW_UPS: usize = 200;

/// Refuses a text longer than `max` characters.
fn bounded(what: &'static str, text: &str, max: usize) -> Result<(), IncidentError> {
    let len = text.chars().count();
    if len > max {
        return Err(IncidentError::TooLong { what, len, max });
    }
    Ok(())
}

/// Everything of [`Incidents`] but the list: stored on its own, with one document per
/// incident, so that a large incident costs only its own writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentsMeta {
    pub config: IncidentConfig,
    pub next_id: u64,
}

/// Editable text fields of an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    Cause,
    Impact,
    Recovery,
    Retrospective,
    Title,
}

/// All incidents.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Incidents {
    pub config: IncidentConfig,
    pub list: Vec<Incident>,
    next_id: u64,
}

fn cause_key(r: &Record) -> String {
    r.component.clone().unwrap_or_else(|| {
        r.alarm
            .split_once(':')
            .map(|(_, s)| s.to_owned())
            .unwrap_or_else(|| r.alarm.clone())
    })
}

impl Incidents {
    pub fn new(config: IncidentConfig) -> Incidents {
        Incidents {
            config,
            list: Vec::new(),
            next_id: 1,
        }
    }

    pub fn get(&self, id: u64) -> Option<&Incident> {
        self.list.iter().find(|i| i.id == id)
    }

    /// The configuration and id counter (see [`IncidentsMeta`]).
    pub fn meta(&self) -> IncidentsMeta {
        IncidentsMeta {
            config: self.config.clone(),
            next_id: self.next_id,
        }
    }

    /// Incidents put back together from their meta and their list (any order).
    pub fn from_parts(meta: IncidentsMeta, mut list: Vec<Incident>) -> Incidents {
        list.sort_by_key(|i| i.id);
        let next_id = meta.next_id.max(list.last().map_or(1, |i| i.id + 1)).max(1);
        Incidents {
            config: meta.config,
            list,
            next_id,
        }
    }

    fn get_mut(&mut self, id: u64) -> Result<&mut Incident, IncidentError> {
        self.list
            .iter_mut()
            .find(|i| i.id == id)
            .ok_or(IncidentError::Unknown(id))
    }

    /// Open incidents (not closed, not in follow-up).
    pub fn open_incidents(&self) -> impl Iterator<Item = &Incident> {
        self.list.iter().filter(|i| i.phase < Phase::Closed)
    }

    fn new_incident(&mut self, title: String, grade: u8, now_ms: i64) -> &mut Incident {
        if self.next_id == 0 {
            self.next_id = 1;
        }
        let id = self.next_id;
        self.next_id += 1;
        let expected = self.config.expected_recovery_ms[(grade as usize - 1).min(2)];
        self.list.push(Incident {
            id,
            title,
            grade,
            phase: Phase::Detected,
            opened_ms: now_ms,
            declared_ms: None,
            closed_ms: None,
            expected_recovery_ms: now_ms + expected,
            grade_raised: false,
            cause_key: None,
            roles: Roles::default(),
            alarms: Vec::new(),
            journal: Vec::new(),
            cause: String::new(),
            impact: String::new(),
            recovery: String::new(),
            retrospective: String::new(),
            follow_ups: Vec::new(),
            last_alarm_ms: now_ms,
        });
        self.list.last_mut().expect("just pushed")
    }

    /// Feeds alarm records: a grade-1/2 activation opens an incident or joins an open one with
    /// the same cause (within `group_window_ms` of its last alarm) or any incident opened less
    /// than `burst_window_ms` ago; every record of an attached alarm goes to that journal.
    pub fn on_records(&mut self, records: &[Record]) -> Vec<IncidentEvent> {
        let mut out = Vec::new();
        for r in records {
            if r.alarm == "flood" {
                continue;
            }
            let Some(ix) = self.incident_for(r, &mut out) else {
                continue;
            };
            self.attach(ix, r, &mut out);
        }
        out
    }

    /// The index of the incident a record belongs to: the open one its alarm is attached to;
    /// for an activation, else, an open one it groups with or (grade 1 or 2) a new one.
    fn incident_for(&mut self, r: &Record, out: &mut Vec<IncidentEvent>) -> Option<usize> {
        let key = cause_key(r);
        let attached = self
            .list
            .iter()
            .position(|i| i.phase < Phase::Closed && i.alarms.contains(&r.alarm));
        match attached {
            Some(ix) => Some(ix),
            None if matches!(r.event, Event::Activated) => {
                let cfg = self.config.clone();
                let join = self.list.iter().position(|i| {
                    i.phase < Phase::Closed
                        && ((i.cause_key.as_deref() == Some(key.as_str())
                            && r.ts_ms - i.last_alarm_ms <= cfg.group_window_ms)
                            || (i.cause_key.is_some()
                                && r.ts_ms - i.opened_ms <= cfg.burst_window_ms))
                });
                match join {
                    Some(ix) => Some(ix),
                    None if r.grade <= 2 => Some(self.open_from(r, key, out)),
                    None => None,
                }
            }
            None => None,
        }
    }

    /// Opens an incident detected from an alarm's activation; returns its index.
    fn open_from(&mut self, r: &Record, key: String, out: &mut Vec<IncidentEvent>) -> usize {
        let inc = self.new_incident(r.message.clone(), r.grade, r.ts_ms);
        inc.cause_key = Some(key);
        inc.journal.push(JournalEntry {
            ts_ms: r.ts_ms,
            kind: EntryKind::Phase,
            user: "system:alarms".into(),
            text: format!("detected from alarm {}", r.alarm),
        });
        out.push(IncidentEvent::Opened {
            id: inc.id,
            grade: inc.grade,
        });
        self.list.len() - 1
    }

    /// Attaches the record's alarm to incident `ix` (once), raises the incident's grade to an
    /// activation's, and journals the record.
    fn attach(&mut self, ix: usize, r: &Record, out: &mut Vec<IncidentEvent>) {
        let inc = &mut self.list[ix];
        if !inc.alarms.contains(&r.alarm) {
            inc.alarms.push(r.alarm.clone());
            out.push(IncidentEvent::AlarmJoined {
                id: inc.id,
                alarm: r.alarm.clone(),
            });
        }
        if matches!(r.event, Event::Activated) {
            inc.last_alarm_ms = r.ts_ms;
            if r.grade < inc.grade {
                let from = inc.grade;
                inc.grade = r.grade;
                out.push(IncidentEvent::GradeRaised {
                    id: inc.id,
                    from,
                    to: r.grade,
                });
            }
        }
        inc.journal.push(JournalEntry {
            ts_ms: r.ts_ms,
            kind: if r.user.as_deref().is_some_and(|u| !u.starts_with("system:")) {
                EntryKind::Action
            } else {
                EntryKind::Alarm
            },
            user: r.user.clone().unwrap_or_else(|| "system:alarms".into()),
            text: format!(
                "{} {} ({} -> {}, grade {}): {}",
                r.alarm,
                event_name(&r.event),
                r.from.as_str(),
                r.to.as_str(),
                r.grade,
                r.message
            ),
        });
    }

    /// An operator opens an incident by hand.
    pub fn open(
        &mut self,
        title: &str,
        grade: u8,
        user: &str,
        now_ms: i64,
    ) -> Result<u64, IncidentError> {
        if !(1..=3).contains(&grade) {
            return Err(IncidentError::BadGrade);
        }
        if user.is_empty() {
            return Err(IncidentError::NoUser);
        }
        bounded("title", title, MAX_TITLE)?;
        let inc = self.new_incident(title.to_owned(), grade, now_ms);
        inc.journal.push(JournalEntry {
            ts_ms: now_ms,
            kind: EntryKind::Phase,
            user: user.to_owned(),
            text: "opened by operator".into(),
        });
        Ok(inc.id)
    }

    /// Moves to the next step. Allowed: detected -> declared -> handling -> closed ->
    /// follow-up, plus detected -> handling (declared implicitly) and handling -> closed.
    /// Closing needs a cause ([`Field::Cause`]).
    pub fn advance(
        &mut self,
        id: u64,
        to: Phase,
        user: &str,
        now_ms: i64,
    ) -> Result<IncidentEvent, IncidentError> {
        if user.is_empty() {
            return Err(IncidentError::NoUser);
        }
        let inc = self.get_mut(id)?;
        let ok = matches!(
            (inc.phase, to),
            (Phase::Detected, Phase::Declared)
                | (Phase::Detected, Phase::Handling)
                | (Phase::Declared, Phase::Handling)
                | (Phase::Handling, Phase::Closed)
                | (Phase::Closed, Phase::FollowUp)
        );
        if !ok {
            return Err(IncidentError::BadPhase {
                id,
                from: inc.phase.as_str(),
                to: to.as_str(),
            });
        }
        // The incident report starts with its cause: an incident is never closed without one.
        if to == Phase::Closed && inc.cause.trim().is_empty() {
            return Err(IncidentError::NoCause { id });
        }
        if inc.declared_ms.is_none() && to >= Phase::Declared {
            inc.declared_ms = Some(now_ms);
        }
        if to == Phase::Closed {
            inc.closed_ms = Some(now_ms);
        }
        inc.phase = to;
        inc.journal.push(JournalEntry {
            ts_ms: now_ms,
            kind: EntryKind::Phase,
            user: user.to_owned(),
            text: format!("phase: {}", to.as_str()),
        });
        Ok(IncidentEvent::PhaseChanged { id, phase: to })
    }

    /// The control tower sets the grade (refused when it is the grade already).
    pub fn set_grade(
        &mut self,
        id: u64,
        grade: u8,
        user: &str,
        now_ms: i64,
    ) -> Result<IncidentEvent, IncidentError> {
        if !(1..=3).contains(&grade) {
            return Err(IncidentError::BadGrade);
        }
        let inc = self.get_mut(id)?;
        let from = inc.grade;
        if from == grade {
            // Nothing to journal: "grade 1 -> 1" is not an event.
            return Err(IncidentError::SameGrade { id, grade });
        }
        inc.grade = grade;
        inc.journal.push(JournalEntry {
            ts_ms: now_ms,
            kind: EntryKind::Grade,
            user: user.to_owned(),
            text: format!("grade {from} -> {grade}"),
        });
        Ok(IncidentEvent::GradeRaised {
            id,
            from,
            to: grade,
        })
    }

    pub fn assign(
        &mut self,
        id: u64,
        role: RoleKind,
        person: &str,
        user: &str,
        now_ms: i64,
    ) -> Result<IncidentEvent, IncidentError> {
        bounded("person", person, MAX_ITEM)?;
        let inc = self.get_mut(id)?;
        match role {
            RoleKind::ControlTower => inc.roles.control_tower = Some(person.to_owned()),
            RoleKind::Operator => {
                if !inc.roles.operators.iter().any(|o| o == person) {
                    inc.roles.operators.push(person.to_owned());
                }
            }
            RoleKind::Communicator => inc.roles.communicator = Some(person.to_owned()),
            RoleKind::ResponsibleManager => inc.roles.responsible_manager = Some(person.to_owned()),
        }
        inc.journal.push(JournalEntry {
            ts_ms: now_ms,
            kind: EntryKind::Action,
            user: user.to_owned(),
            text: format!("{person} is {role:?}"),
        });
        Ok(IncidentEvent::Updated { id })
    }

    pub fn note(
        &mut self,
        id: u64,
        text: &str,
        user: &str,
        now_ms: i64,
    ) -> Result<IncidentEvent, IncidentError> {
        if user.is_empty() {
            return Err(IncidentError::NoUser);
        }
        bounded("note", text, MAX_NOTE)?;
        let inc = self.get_mut(id)?;
        let notes = inc
            .journal
            .iter()
            .filter(|j| j.kind == EntryKind::Note)
            .count();
        if notes >= MAX_NOTES {
            return Err(IncidentError::TooMany {
                id,
                what: "notes",
                max: MAX_NOTES,
            });
        }
        inc.journal.push(JournalEntry {
            ts_ms: now_ms,
            kind: EntryKind::Note,
            user: user.to_owned(),
            text: text.to_owned(),
        });
        Ok(IncidentEvent::Updated { id })
    }

    pub fn set_field(
        &mut self,
        id: u64,
        field: Field,
        text: &str,
        user: &str,
        now_ms: i64,
    ) -> Result<IncidentEvent, IncidentError> {
        match field {
            Field::Title => bounded("title", text, MAX_TITLE)?,
            _ => bounded("text", text, MAX_FIELD)?,
        }
        let inc = self.get_mut(id)?;
        let slot = match field {
            Field::Cause => &mut inc.cause,
            Field::Impact => &mut inc.impact,
            Field::Recovery => &mut inc.recovery,
            Field::Retrospective => &mut inc.retrospective,
            Field::Title => &mut inc.title,
        };
        *slot = text.to_owned();
        inc.journal.push(JournalEntry {
            ts_ms: now_ms,
            kind: EntryKind::Action,
            user: user.to_owned(),
            text: format!("{field:?} set"),
        });
        Ok(IncidentEvent::Updated { id })
    }

    pub fn add_follow_up(
        &mut self,
        id: u64,
        text: &str,
        owner: Option<&str>,
        user: &str,
        now_ms: i64,
    ) -> Result<IncidentEvent, IncidentError> {
        bounded("follow-up", text, MAX_ITEM)?;
        bounded("owner", owner.unwrap_or_default(), MAX_ITEM)?;
        let inc = self.get_mut(id)?;
        if inc.follow_ups.len() >= MAX_FOLLOW_UPS {
            return Err(IncidentError::TooMany {
                id,
                what: "follow-up items",
                max: MAX_FOLLOW_UPS,
            });
        }
        inc.follow_ups.push(FollowUpItem {
            text: text.to_owned(),
            owner: owner.map(str::to_owned),
            done: false,
        });
        inc.journal.push(JournalEntry {
            ts_ms: now_ms,
            kind: EntryKind::Action,
            user: user.to_owned(),
            text: format!("follow-up added: {text}"),
        });
        Ok(IncidentEvent::Updated { id })
    }

    pub fn complete_follow_up(
        &mut self,
        id: u64,
        index: usize,
        user: &str,
        now_ms: i64,
    ) -> Result<IncidentEvent, IncidentError> {
        let inc = self.get_mut(id)?;
        let Some(item) = inc.follow_ups.get_mut(index) else {
            return Err(IncidentError::Unknown(id));
        };
        item.done = true;
        let text = item.text.clone();
        inc.journal.push(JournalEntry {
            ts_ms: now_ms,
            kind: EntryKind::Action,
            user: user.to_owned(),
            text: format!("follow-up done: {text}"),
        });
        Ok(IncidentEvent::Updated { id })
    }

    /// Time passes: an open incident past its expected recovery is raised one grade (once; a
    /// grade-1 incident cannot go higher).
    pub fn tick(&mut self, now_ms: i64) -> Vec<IncidentEvent> {
        let mut out = Vec::new();
        for inc in &mut self.list {
            if inc.phase < Phase::Closed && !inc.grade_raised && now_ms > inc.expected_recovery_ms {
                inc.grade_raised = true;
                if inc.grade > 1 {
                    let from = inc.grade;
                    inc.grade -= 1;
                    inc.journal.push(JournalEntry {
                        ts_ms: now_ms,
                        kind: EntryKind::Grade,
                        user: "system:recovery".into(),
                        text: format!(
                            "recovery later than expected: grade {from} -> {}",
                            inc.grade
                        ),
                    });
                    out.push(IncidentEvent::GradeRaised {
                        id: inc.id,
                        from,
                        to: inc.grade,
                    });
                }
            }
        }
        out
    }
}

fn event_name(e: &Event) -> String {
    let v = serde_json::to_value(e).unwrap_or_default();
    v.get("type")
        .and_then(|t| t.as_str())
        .unwrap_or("event")
        .replace('_', " ")
}

fn fmt_ts(ms: i64) -> String {
    // UTC, RFC 3339-like, without a date library: days from civil (Howard Hinnant).
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

impl Incident {
    /// The incident report as Markdown.
    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# Incident {}: {}\n", self.id, self.title);
        let _ = writeln!(s, "- Grade: {}", self.grade);
        let _ = writeln!(s, "- Phase: {}", self.phase.as_str());
        let _ = writeln!(s, "- Opened: {}", fmt_ts(self.opened_ms));
        if let Some(t) = self.declared_ms {
            let _ = writeln!(s, "- Declared: {}", fmt_ts(t));
        }
        if let Some(t) = self.closed_ms {
            let _ = writeln!(s, "- Closed: {}", fmt_ts(t));
        }
        let r = &self.roles;
        let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
        let _ = writeln!(s, "- Control tower: {}", opt(&r.control_tower));
        let _ = writeln!(
            s,
            "- Operators: {}",
            if r.operators.is_empty() {
                "-".into()
            } else {
                r.operators.join(", ")
            }
        );
        let _ = writeln!(s, "- Communicator: {}", opt(&r.communicator));
        let _ = writeln!(s, "- Responsible manager: {}", opt(&r.responsible_manager));
        for (h, t) in [
            ("Cause", &self.cause),
            ("Impact", &self.impact),
            ("Recovery", &self.recovery),
            ("Retrospective", &self.retrospective),
        ] {
            let _ = writeln!(s, "\n## {h}\n\n{}", if t.is_empty() { "-" } else { t });
        }
        let _ = writeln!(s, "\n## Follow-up\n");
        if self.follow_ups.is_empty() {
            let _ = writeln!(s, "-");
        }
        for f in &self.follow_ups {
            let _ = writeln!(
                s,
                "- [{}] {}{}",
                if f.done { "x" } else { " " },
                f.text,
                f.owner
                    .as_ref()
                    .map(|o| format!(" ({o})"))
                    .unwrap_or_default()
            );
        }
        let _ = writeln!(s, "\n## Alarms\n");
        for a in &self.alarms {
            let _ = writeln!(s, "- `{a}`");
        }
        let _ = writeln!(
            s,
            "\n## Journal\n\n| Time | Kind | Who | What |\n|---|---|---|---|"
        );
        for j in &self.journal {
            let _ = writeln!(
                s,
                "| {} | {:?} | {} | {} |",
                fmt_ts(j.ts_ms),
                j.kind,
                j.user,
                j.text.replace('|', "\\|").replace('\n', " ")
            );
        }
        s
    }

    /// The incident as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("incidents serialize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hazard: notes of 2 MB were accepted; twenty of them made every incident operation take
    /// up to a second (one document of all incidents rewritten each time).
    #[test]
    fn texts_and_counts_are_bounded() {
        let mut inc = Incidents::new(IncidentConfig::default());
        let id = inc.open("fire", 1, "op", 0).unwrap();
        assert!(matches!(
            inc.note(id, &"x".repeat(MAX_NOTE + 1), "op", 1),
            Err(IncidentError::TooLong { .. })
        ));
        // Characters, not bytes.
        assert!(inc.note(id, &"é".repeat(MAX_NOTE), "op", 1).is_ok());
        assert!(matches!(
            inc.open(&"t".repeat(MAX_TITLE + 1), 1, "op", 0),
            Err(IncidentError::TooLong { .. })
        ));
        assert!(
            inc.set_field(id, Field::Cause, &"c".repeat(MAX_FIELD + 1), "op", 2)
                .is_err()
        );
        assert!(
            inc.set_field(id, Field::Title, &"c".repeat(MAX_TITLE + 1), "op", 2)
                .is_err()
        );
        assert!(
            inc.add_follow_up(id, "x", Some(&"o".repeat(MAX_ITEM + 1)), "op", 3)
                .is_err()
        );
        for i in 1..MAX_NOTES {
            inc.note(id, "n", "op", i as i64).unwrap();
        }
        assert!(matches!(
            inc.note(id, "one too many", "op", 9),
            Err(IncidentError::TooMany { .. })
        ));
        let before = inc.get(id).unwrap().journal.len();
        assert_eq!(before, MAX_NOTES + 1, "opened + notes");
    }

    #[test]
    fn incidents_come_back_from_meta_and_list_in_any_order() {
        let mut inc = Incidents::new(IncidentConfig::default());
        let a = inc.open("a", 2, "op", 0).unwrap();
        let b = inc.open("b", 3, "op", 0).unwrap();
        let mut list = inc.list.clone();
        list.reverse();
        let mut back = Incidents::from_parts(inc.meta(), list);
        assert_eq!(back.list.iter().map(|i| i.id).collect::<Vec<_>>(), [a, b]);
        let c = back.open("c", 1, "op", 1).unwrap();
        assert!(c > b, "ids are never reused");
        // A lost meta counter is repaired from the list.
        let meta = IncidentsMeta {
            config: IncidentConfig::default(),
            next_id: 1,
        };
        let mut back = Incidents::from_parts(meta, inc.list.clone());
        assert!(back.open("d", 1, "op", 1).unwrap() > b);
    }
}
