//! Product events and the per-authority code table that turns them into SIA-DCS or ADM-CID
//! payloads.
//!
//! Identity: `zone` is the fire zone / battery room (SIA-DCS area `ri`, ADM-CID partition) and
//! `rack` the rack or point within it (SIA-DCS unit number, ADM-CID zone), so the receiver
//! operator sees which rack raised what.

use crate::frame::{Account, Token};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// What happened, in product terms. Every kind except the periodic test has a restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EventKind {
    /// Pre-alarm (warning): the governing temperature passed the pre-alarm threshold (50 °C by
    /// default) before any suppression stage.
    #[serde(rename = "fire.prealarm")]
    FirePreAlarm,
    /// Stage 1, heat: 60 °C reached, battery power cut and fire blanket dropped.
    #[serde(rename = "fire.stage1")]
    FireStage1,
    /// Stage 2: 68 °C reached, extinguishing patch fired.
    #[serde(rename = "fire.stage2_patch")]
    FireStage2Patch,
    /// Stage 3: 80 °C reached, extinguishing agent released in the rack.
    #[serde(rename = "fire.stage3_agent")]
    FireStage3Agent,
    /// Stage 4: coolant water sprayed continuously (the temperature did not fall after the agent).
    #[serde(rename = "fire.stage4_coolant")]
    FireStage4Coolant,
    /// Stage 5: room extinguishing gas requested (pre-discharge warning running; the discharge
    /// itself is [`EventKind::FireGasReleased`]).
    #[serde(rename = "fire.stage5_gas")]
    FireStage5Gas,
    /// Room extinguishing gas released.
    #[serde(rename = "fire.gas_released")]
    FireGasReleased,
    /// Smoke detected.
    #[serde(rename = "fire.smoke")]
    FireSmoke,
    /// Fire system trouble (output feedback missing, actuator fault).
    #[serde(rename = "fire.trouble")]
    FireTrouble,
    /// A fire-detection sensor is invalid (out of range, open/short, stale, implausible).
    #[serde(rename = "fire.trouble.sensor")]
    FireTroubleSensor,
    /// Supervisory: battery off-gas detected.
    #[serde(rename = "fire.supervisory.offgas")]
    FireSupervisoryOffgas,
    /// Supervisory: the contaminated-water drain tank is high.
    #[serde(rename = "drain_tank.high")]
    DrainTankHigh,
    /// Automatic release bypassed: the rack is in manual-only mode.
    #[serde(rename = "fire.manual_only")]
    FireManualOnly,
    /// Battery string isolated (contactor open).
    #[serde(rename = "battery.isolated")]
    BatteryIsolated,
    /// The fire authority has taken command of the site (key switch or console).
    #[serde(rename = "fire.authority")]
    FireAuthority,
    /// A transmission path failed (restore: it works again). `rack` carries the path number.
    #[serde(rename = "path.fail")]
    PathFail,
    /// Periodic test report.
    #[serde(rename = "test.periodic")]
    PeriodicTest,
    /// Drill (fire test) begins; its restore is the end of the drill. Sent around the messages
    /// that a drill marks as test, so the receiving centre sees where the drill starts and ends.
    #[serde(rename = "test.drill")]
    DrillTest,
}

impl EventKind {
    pub const ALL: [EventKind; 18] = [
        EventKind::FirePreAlarm,
        EventKind::FireStage1,
        EventKind::FireStage2Patch,
        EventKind::FireStage3Agent,
        EventKind::FireStage4Coolant,
        EventKind::FireStage5Gas,
        EventKind::FireGasReleased,
        EventKind::FireSmoke,
        EventKind::FireTrouble,
        EventKind::FireTroubleSensor,
        EventKind::FireSupervisoryOffgas,
        EventKind::DrainTankHigh,
        EventKind::FireManualOnly,
        EventKind::BatteryIsolated,
        EventKind::FireAuthority,
        EventKind::PathFail,
        EventKind::PeriodicTest,
        EventKind::DrillTest,
    ];

    pub fn name(self) -> &'static str {
        match self {
            EventKind::FirePreAlarm => "fire.prealarm",
            EventKind::FireStage1 => "fire.stage1",
            EventKind::FireStage2Patch => "fire.stage2_patch",
            EventKind::FireStage3Agent => "fire.stage3_agent",
            EventKind::FireStage4Coolant => "fire.stage4_coolant",
            EventKind::FireStage5Gas => "fire.stage5_gas",
            EventKind::FireGasReleased => "fire.gas_released",
            EventKind::FireSmoke => "fire.smoke",
            EventKind::FireTrouble => "fire.trouble",
            EventKind::FireTroubleSensor => "fire.trouble.sensor",
            EventKind::FireSupervisoryOffgas => "fire.supervisory.offgas",
            EventKind::DrainTankHigh => "drain_tank.high",
            EventKind::FireManualOnly => "fire.manual_only",
            EventKind::BatteryIsolated => "battery.isolated",
            EventKind::FireAuthority => "fire.authority",
            EventKind::PathFail => "path.fail",
            EventKind::PeriodicTest => "test.periodic",
            EventKind::DrillTest => "test.drill",
        }
    }

    pub fn from_name(s: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.name() == s)
    }

    /// Fire alarms (not their restores) jump the transmit queue. The pre-alarm is a warning,
    /// not a fire alarm.
    pub fn is_fire_alarm(self) -> bool {
        matches!(
            self,
            EventKind::FireStage1
                | EventKind::FireStage2Patch
                | EventKind::FireStage3Agent
                | EventKind::FireStage4Coolant
                | EventKind::FireStage5Gas
                | EventKind::FireGasReleased
                | EventKind::FireSmoke
        )
    }

    /// Test reports in their own right: sent with their own codes even in a drill (never
    /// replaced by the test code).
    pub fn is_test_report(self) -> bool {
        matches!(self, EventKind::PeriodicTest | EventKind::DrillTest)
    }

    pub fn has_restore(self) -> bool {
        self != EventKind::PeriodicTest
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One event occurrence (or its restore).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Event {
    pub kind: EventKind,
    /// `true` for the restore (return to normal) of `kind`.
    #[serde(default)]
    pub restore: bool,
    /// Fire zone / room number (SIA-DCS `ri` area 0..=999, ADM-CID partition 0..=99).
    #[serde(default)]
    pub zone: u16,
    /// Rack / point number (SIA-DCS unit 0..=9999, ADM-CID zone 0..=999).
    #[serde(default)]
    pub rack: u16,
    /// Drill or test: sent with the authority's test code so it can never be taken for a real
    /// alarm (test reports, [`EventKind::is_test_report`], keep their own codes).
    #[serde(default)]
    pub test: bool,
}

impl Event {
    pub fn new(kind: EventKind, zone: u16, rack: u16) -> Event {
        Event {
            kind,
            restore: false,
            zone,
            rack,
            test: false,
        }
    }
    #[must_use]
    pub fn restored(mut self) -> Event {
        self.restore = true;
        self
    }
    #[must_use]
    pub fn as_test(mut self) -> Event {
        self.test = true;
        self
    }
    /// Transmit priority: fire alarms first (0), everything else after (1).
    pub fn priority(&self) -> u8 {
        if self.kind.is_fire_alarm() && !self.restore && !self.test {
            0
        } else {
            1
        }
    }
}

/// Payload format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Format {
    #[default]
    #[serde(rename = "sia-dcs")]
    SiaDcs,
    #[serde(rename = "adm-cid")]
    AdmCid,
}

/// Codes for one event kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CodeEntry {
    /// SIA-DCS event code (two uppercase letters).
    pub sia: String,
    /// SIA-DCS restore code; `None` only for kinds without a restore.
    pub sia_restore: Option<String>,
    /// ADM-CID event code (3 digits; the qualifier 1/3 tells alarm from restore).
    pub cid: u16,
}

/// The payload of a message: its token and what goes between `[` and `]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    pub token: Token,
    pub data: String,
    /// The event code actually used (SIA letters or CID digits with qualifier).
    pub code: String,
}

/// Mapping from event kinds to codes for one fire authority.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeTable {
    pub authority: String,
    pub format: Format,
    entries: BTreeMap<EventKind, CodeEntry>,
    /// Code for anything flagged as test (SIA-DCS).
    pub test_sia: String,
    /// Code for anything flagged as test (ADM-CID).
    pub test_cid: u16,
    /// The generic fire alarm of this authority's format, sent instead of a fire alarm's own
    /// code when the receiver answers DUH (unknown code) to it: SIA-DCS `FA`/`FH`, ADM-CID 110.
    /// See [`CodeTable::fallback_payload`].
    pub fallback_sia: String,
    pub fallback_sia_restore: String,
    pub fallback_cid: u16,
}

fn e(sia: &str, restore: Option<&str>, cid: u16) -> CodeEntry {
    CodeEntry {
        sia: sia.into(),
        sia_restore: restore.map(Into::into),
        cid,
    }
}

impl Default for CodeTable {
    /// The built-in table (SIA DC-03 letter codes, Contact ID codes). Why each code was chosen
    /// is written next to it in `codes.example.toml`.
    fn default() -> CodeTable {
        use EventKind::*;
        let entries = [
            (FirePreAlarm, e("KS", Some("KR"), 158)),
            (FireStage1, e("KA", Some("KH"), 114)),
            (FireStage2Patch, e("FA", Some("FH"), 110)),
            (FireStage3Agent, e("SA", Some("SH"), 113)),
            (FireStage4Coolant, e("WA", Some("WH"), 205)),
            (FireStage5Gas, e("GS", Some("GR"), 150)),
            (FireGasReleased, e("GA", Some("GH"), 151)),
            (FireSmoke, e("FA", Some("FH"), 111)),
            (FireTrouble, e("FT", Some("FJ"), 373)),
            (FireTroubleSensor, e("KT", Some("KJ"), 380)),
            (FireSupervisoryOffgas, e("FS", Some("FV"), 200)),
            (DrainTankHigh, e("SS", Some("SR"), 200)),
            (FireManualOnly, e("FB", Some("FU"), 570)),
            (BatteryIsolated, e("YM", Some("YR"), 311)),
            (FireAuthority, e("OS", Some("CS"), 409)),
            (PathFail, e("YS", Some("YK"), 350)),
            (PeriodicTest, e("RP", None, 602)),
            (DrillTest, e("FI", Some("FK"), 604)),
        ]
        .into_iter()
        .collect();
        CodeTable {
            authority: "default".into(),
            format: Format::SiaDcs,
            entries,
            test_sia: "FX".into(),
            test_cid: 601,
            fallback_sia: "FA".into(),
            fallback_sia_restore: "FH".into(),
            fallback_cid: 110,
        }
    }
}

/// A table validation error, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}:{line}: {field}: {message}")]
pub struct TableError {
    pub origin: String,
    /// 1-based line (0 when unknown).
    pub line: usize,
    pub field: String,
    pub message: String,
}

/// Error building a payload for an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("{what} {value} out of range for {format:?} (max {max})")]
    Range {
        what: &'static str,
        value: u16,
        max: u16,
        format: Format,
    },
    #[error("event kind {0} has no restore")]
    NoRestore(EventKind),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    authority: Option<String>,
    format: Option<toml::Spanned<String>>,
    test: Option<RawTest>,
    fallback: Option<RawFallback>,
    #[serde(default)]
    codes: BTreeMap<toml::Spanned<String>, RawEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTest {
    sia: Option<toml::Spanned<String>>,
    cid: Option<toml::Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFallback {
    sia: Option<toml::Spanned<String>>,
    sia_restore: Option<toml::Spanned<String>>,
    cid: Option<toml::Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    sia: Option<toml::Spanned<String>>,
    sia_restore: Option<toml::Spanned<String>>,
    cid: Option<toml::Spanned<i64>>,
}

/// Checks of a code table's fields, with errors naming the source, line and field.
struct TableCx<'a> {
    origin: &'a str,
    lines: dcim_source_lines::LineIndex,
}

impl TableCx<'_> {
    fn err(
        &self,
        span: Option<std::ops::Range<usize>>,
        field: &str,
        message: String,
    ) -> TableError {
        TableError {
            origin: self.origin.to_string(),
            line: span.map(|s| self.lines.line(s.start)).unwrap_or(0),
            field: field.to_string(),
            message,
        }
    }

    fn sia(&self, s: &toml::Spanned<String>, field: &str) -> Result<String, TableError> {
        let v = s.get_ref();
        if v.len() == 2 && v.bytes().all(|c| c.is_ascii_uppercase()) {
            Ok(v.clone())
        } else {
            Err(self.err(
                Some(s.span()),
                field,
                format!("expected a SIA code of two uppercase letters, got {v:?}"),
            ))
        }
    }

    fn cid(&self, c: &toml::Spanned<i64>, field: &str) -> Result<u16, TableError> {
        match u16::try_from(*c.get_ref()) {
            Ok(v) if (1..=999).contains(&v) => Ok(v),
            _ => Err(self.err(
                Some(c.span()),
                field,
                format!("expected a Contact ID code 1..=999, got {}", c.get_ref()),
            )),
        }
    }

    /// One `[codes."kind"]` entry over the built-in codes of that kind.
    fn code(
        &self,
        table: &mut CodeTable,
        name: &toml::Spanned<String>,
        entry: &RawEntry,
    ) -> Result<(), TableError> {
        let kind = EventKind::from_name(name.get_ref()).ok_or_else(|| {
            let known: Vec<_> = EventKind::ALL.iter().map(|k| k.name()).collect();
            self.err(
                Some(name.span()),
                &format!("codes.{:?}", name.get_ref()),
                format!("unknown event kind; known kinds: {}", known.join(", ")),
            )
        })?;
        let field = |f: &str| format!("codes.\"{}\".{f}", kind.name());
        let slot = table
            .entries
            .get_mut(&kind)
            .expect("default table covers every kind");
        if let Some(s) = &entry.sia {
            slot.sia = self.sia(s, &field("sia"))?;
        }
        match (&entry.sia_restore, kind.has_restore()) {
            (Some(s), true) => slot.sia_restore = Some(self.sia(s, &field("sia_restore"))?),
            (Some(s), false) => {
                return Err(self.err(
                    Some(s.span()),
                    &field("sia_restore"),
                    format!("{kind} has no restore; remove this field"),
                ));
            }
            (None, _) => {}
        }
        if let Some(c) = &entry.cid {
            slot.cid = self.cid(c, &field("cid"))?;
        }
        Ok(())
    }
}

impl CodeTable {
    /// Loads a table from TOML; kinds not listed keep the built-in codes. `origin` names the
    /// source (usually the file path) in error messages.
    ///
    /// ```toml
    /// authority = "Example fire ARC"
    /// format = "sia-dcs"            # or "adm-cid"
    /// [test]
    /// sia = "FX"
    /// cid = 601
    /// [codes."fire.stage1"]
    /// sia = "KA"
    /// sia_restore = "KH"
    /// cid = 114
    /// ```
    pub fn from_toml(text: &str, origin: &str) -> Result<CodeTable, TableError> {
        let cx = TableCx {
            origin,
            lines: dcim_source_lines::LineIndex::new(text),
        };
        let raw: RawTable = toml::from_str(text)
            .map_err(|e| cx.err(e.span(), "(syntax)", e.message().to_string()))?;
        let mut table = CodeTable::default();
        if let Some(a) = raw.authority {
            table.authority = a;
        }
        if let Some(f) = raw.format {
            table.format = match f.get_ref().as_str() {
                "sia-dcs" => Format::SiaDcs,
                "adm-cid" => Format::AdmCid,
                other => {
                    return Err(cx.err(
                        Some(f.span()),
                        "format",
                        format!("expected \"sia-dcs\" or \"adm-cid\", got {other:?}"),
                    ));
                }
            };
        }
        if let Some(t) = raw.test {
            if let Some(s) = &t.sia {
                table.test_sia = cx.sia(s, "test.sia")?;
            }
            if let Some(c) = &t.cid {
                table.test_cid = cx.cid(c, "test.cid")?;
            }
        }
        if let Some(f) = raw.fallback {
            if let Some(s) = &f.sia {
                table.fallback_sia = cx.sia(s, "fallback.sia")?;
            }
            if let Some(s) = &f.sia_restore {
                table.fallback_sia_restore = cx.sia(s, "fallback.sia_restore")?;
            }
            if let Some(c) = &f.cid {
                table.fallback_cid = cx.cid(c, "fallback.cid")?;
            }
        }
        for (name, entry) in &raw.codes {
            cx.code(&mut table, name, entry)?;
        }
        Ok(table)
    }

    pub fn entry(&self, kind: EventKind) -> &CodeEntry {
        &self.entries[&kind]
    }

    pub fn entries(&self) -> impl Iterator<Item = (EventKind, &CodeEntry)> {
        self.entries.iter().map(|(k, v)| (*k, v))
    }

    /// The payload of a fire alarm (or its restore) with the generic fire alarm code of this
    /// table's format instead of its own, for a receiver that answered DUH to the own code:
    /// the receiving centre must learn of every fire alarm, even one its code table lacks.
    /// `None` when `ev` is not a fire alarm ([`EventKind::is_fire_alarm`]), when it is a test
    /// (a drill must never be turned into a real alarm code), or when its own code already is
    /// the generic one (nothing else to try).
    pub fn fallback_payload(&self, account: &Account, ev: &Event) -> Option<Payload> {
        if !ev.kind.is_fire_alarm() || ev.test {
            return None;
        }
        let own = self.payload(account, ev).ok()?;
        let generic = CodeTable {
            entries: [(
                ev.kind,
                CodeEntry {
                    sia: self.fallback_sia.clone(),
                    sia_restore: Some(self.fallback_sia_restore.clone()),
                    cid: self.fallback_cid,
                },
            )]
            .into_iter()
            .collect(),
            ..self.clone()
        };
        let p = generic.payload(account, ev).ok()?;
        (p.code != own.code).then_some(p)
    }

    /// Builds the payload for an event.
    pub fn payload(&self, account: &Account, ev: &Event) -> Result<Payload, PayloadError> {
        let entry = self.entry(ev.kind);
        if ev.restore && !ev.kind.has_restore() {
            return Err(PayloadError::NoRestore(ev.kind));
        }
        let range = |what, value: u16, max: u16| {
            if value > max {
                Err(PayloadError::Range {
                    what,
                    value,
                    max,
                    format: self.format,
                })
            } else {
                Ok(())
            }
        };
        match self.format {
            Format::SiaDcs => {
                range("zone", ev.zone, 999)?;
                range("rack", ev.rack, 9999)?;
                let code = if ev.test && !ev.kind.is_test_report() {
                    self.test_sia.clone()
                } else if ev.restore {
                    entry
                        .sia_restore
                        .clone()
                        .ok_or(PayloadError::NoRestore(ev.kind))?
                } else {
                    entry.sia.clone()
                };
                let data = format!("#{account}|Nri{}/{code}{:04}", ev.zone, ev.rack);
                Ok(Payload {
                    token: Token::SiaDcs,
                    data,
                    code,
                })
            }
            Format::AdmCid => {
                range("zone", ev.zone, 99)?;
                range("rack", ev.rack, 999)?;
                let (q, cid) = if ev.test && !ev.kind.is_test_report() {
                    (1, self.test_cid)
                } else {
                    (if ev.restore { 3 } else { 1 }, entry.cid)
                };
                let code = format!("{q}{cid:03}");
                let data = format!("#{account}|{code} {:02} {:03}", ev.zone, ev.rack);
                Ok(Payload {
                    token: Token::AdmCid,
                    data,
                    code,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acct() -> Account {
        Account::new("1234").unwrap()
    }

    #[test]
    fn default_table_has_restore_for_every_alarm_trouble_supervisory() {
        let t = CodeTable::default();
        for k in EventKind::ALL {
            let en = t.entry(k);
            assert_eq!(en.sia_restore.is_some(), k.has_restore(), "{k}");
            assert!(en.sia.len() == 2 && (1..=999).contains(&en.cid));
        }
    }

    #[test]
    fn sia_and_cid_payloads() {
        let mut t = CodeTable::default();
        let ev = Event::new(EventKind::FireStage3Agent, 1, 101);
        let p = t.payload(&acct(), &ev).unwrap();
        assert_eq!(p.data, "#1234|Nri1/SA0101");
        assert_eq!(
            t.payload(&acct(), &ev.restored()).unwrap().data,
            "#1234|Nri1/SH0101"
        );
        assert_eq!(
            t.payload(&acct(), &ev.as_test()).unwrap().data,
            "#1234|Nri1/FX0101"
        );
        t.format = Format::AdmCid;
        assert_eq!(t.payload(&acct(), &ev).unwrap().data, "#1234|1113 01 101");
        assert_eq!(
            t.payload(&acct(), &ev.restored()).unwrap().data,
            "#1234|3113 01 101"
        );
        assert!(matches!(
            t.payload(&acct(), &Event::new(EventKind::FireSmoke, 100, 1)),
            Err(PayloadError::Range { what: "zone", .. })
        ));
        assert!(matches!(
            t.payload(
                &acct(),
                &Event::new(EventKind::PeriodicTest, 0, 0).restored()
            ),
            Err(PayloadError::NoRestore(_))
        ));
    }

    #[test]
    fn stage_codes_and_the_drill_bracket() {
        let mut t = CodeTable::default();
        let code = |t: &CodeTable, ev: Event| t.payload(&acct(), &ev).unwrap().code;
        for (k, alarm, restore) in [
            (EventKind::FirePreAlarm, "KS", "KR"),
            (EventKind::FireStage4Coolant, "WA", "WH"),
            (EventKind::FireStage5Gas, "GS", "GR"),
            (EventKind::DrillTest, "FI", "FK"),
        ] {
            let ev = Event::new(k, 2, 7);
            assert_eq!(code(&t, ev), alarm, "{k}");
            assert_eq!(code(&t, ev.restored()), restore, "{k}");
        }
        // Inside a drill every event is sent with the test code; the bracket and the periodic
        // test report keep their own codes.
        let ev = Event::new(EventKind::FireStage4Coolant, 2, 7);
        assert_eq!(code(&t, ev.as_test()), "FX");
        let drill = Event::new(EventKind::DrillTest, 0, 0);
        assert_eq!(code(&t, drill.as_test()), "FI");
        assert_eq!(code(&t, drill.restored().as_test()), "FK");
        assert_eq!(
            code(&t, Event::new(EventKind::PeriodicTest, 0, 0).as_test()),
            "RP"
        );
        assert!(!EventKind::FirePreAlarm.is_fire_alarm());
        assert_eq!(Event::new(EventKind::FireStage5Gas, 1, 1).priority(), 0);
        t.format = Format::AdmCid;
        assert_eq!(code(&t, drill), "1604");
        assert_eq!(code(&t, drill.restored().as_test()), "3604");
        assert_eq!(code(&t, Event::new(EventKind::FirePreAlarm, 1, 1)), "1158");
        assert_eq!(code(&t, ev.restored()), "3205");
    }

    #[test]
    fn a_refused_fire_alarm_falls_back_to_the_generic_fire_code_of_its_format() {
        // Hazard: a receiver whose table lacks a stage code answers DUH; without a fallback the
        // receiving centre never learns of that fire stage.
        let mut t = CodeTable::default();
        let stage4 = Event::new(EventKind::FireStage4Coolant, 2, 7);
        let p = t.fallback_payload(&acct(), &stage4).unwrap();
        assert_eq!(
            (p.code.as_str(), p.data.as_str()),
            ("FA", "#1234|Nri2/FA0007")
        );
        assert_eq!(
            t.fallback_payload(&acct(), &stage4.restored())
                .unwrap()
                .code,
            "FH"
        );
        t.format = Format::AdmCid;
        assert_eq!(
            t.fallback_payload(&acct(), &stage4).unwrap().data,
            "#1234|1110 02 007"
        );
        assert_eq!(
            t.fallback_payload(&acct(), &stage4.restored())
                .unwrap()
                .code,
            "3110"
        );
        // Stage 2 already uses 110 / FA: nothing else to try.
        let stage2 = Event::new(EventKind::FireStage2Patch, 1, 1);
        assert!(t.fallback_payload(&acct(), &stage2).is_none());
        // Only fire alarms fall back, and never a drill message (it must stay a test code).
        assert!(
            t.fallback_payload(&acct(), &Event::new(EventKind::FireTrouble, 1, 1))
                .is_none()
        );
        assert!(t.fallback_payload(&acct(), &stage4.as_test()).is_none());
        let t = CodeTable::from_toml("[fallback]\nsia = \"FX\"\ncid = 111\n", "f.toml");
        let t = t.unwrap();
        assert_eq!((t.fallback_sia.as_str(), t.fallback_cid), ("FX", 111));
        let e = CodeTable::from_toml("[fallback]\ncid = 0\n", "f.toml").unwrap_err();
        assert_eq!((e.line, e.field.as_str()), (2, "fallback.cid"));
    }

    #[test]
    fn toml_overrides_and_errors() {
        let t = CodeTable::from_toml(
            "authority = \"ARC North\"\nformat = \"adm-cid\"\n[codes.\"fire.stage1\"]\nsia = \"FA\"\ncid = 110\n",
            "arc.toml",
        )
        .unwrap();
        assert_eq!(t.authority, "ARC North");
        assert_eq!(t.format, Format::AdmCid);
        assert_eq!(t.entry(EventKind::FireStage1).sia, "FA");
        assert_eq!(
            t.entry(EventKind::FireStage1).sia_restore.as_deref(),
            Some("KH")
        );

        let e =
            CodeTable::from_toml("[codes.\"fire.nope\"]\nsia = \"FA\"\n", "a.toml").unwrap_err();
        assert_eq!(e.line, 1);
        assert!(e.message.contains("unknown event kind"), "{e}");
        let e =
            CodeTable::from_toml("\n[codes.\"fire.smoke\"]\nsia = \"fa\"\n", "a.toml").unwrap_err();
        assert_eq!((e.line, e.field.as_str()), (3, "codes.\"fire.smoke\".sia"));
        assert!(
            e.to_string()
                .starts_with("a.toml:3: codes.\"fire.smoke\".sia: expected"),
            "{e}"
        );
        let e = CodeTable::from_toml("[codes.\"fire.smoke\"]\ncid = 1000\n", "a.toml").unwrap_err();
        assert_eq!(e.line, 2);
        let e = CodeTable::from_toml(
            "[codes.\"test.periodic\"]\nsia_restore = \"RP\"\n",
            "a.toml",
        )
        .unwrap_err();
        assert!(e.message.contains("no restore"));
        let e = CodeTable::from_toml("format = \"cid\"\n", "a.toml").unwrap_err();
        assert_eq!(e.field, "format");
        let e = CodeTable::from_toml("formt = 1\n", "a.toml").unwrap_err();
        assert_eq!(e.line, 1);
    }
}

#[cfg(test)]
mod example_file {
    use super::*;

    #[test]
    fn example_table_equals_the_built_in_one() {
        let text = include_str!("../codes.example.toml");
        let t = CodeTable::from_toml(text, "codes.example.toml").unwrap();
        let d = CodeTable::default();
        assert_eq!(t.entries, d.entries);
        assert_eq!(
            (t.test_sia.as_str(), t.test_cid),
            (d.test_sia.as_str(), d.test_cid)
        );
        assert_eq!(
            (&t.fallback_sia, &t.fallback_sia_restore, t.fallback_cid),
            (&d.fallback_sia, &d.fallback_sia_restore, d.fallback_cid)
        );
        assert_eq!(t.entries.len(), EventKind::ALL.len());
    }
}
