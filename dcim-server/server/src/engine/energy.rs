//! Power usage effectiveness (PUE) and energy, as pure data: the site's facility and IT power
//! now, energy integrated over time into minute and hour buckets, PUE history and the monthly
//! energy report. No clock and no I/O: times are passed in; `api_energy` samples the live
//! readings, keeps the buckets and serves them.
//!
//! Definitions (after ISO/IEC 30134-2):
//! - Facility power: the sum of the `facility.power_kw` meters bound in the site model, or, when
//!   there is none, of the utility feeds' `feed.power_kw`. IT power: the sum of the racks'
//!   `it.power_kw`.
//! - PUE now = facility power / IT power, only when **every** meter of both sums has a current
//!   reading (good quality, not older than the site's `stale_after_ms`, not from the future, a
//!   finite number >= 0) and IT power is above zero. A silent feed meter would make the PUE look
//!   better than it is and a silent rack meter worse: a partial sum is never divided. What is
//!   missing is listed instead.
//! - Energy (kWh) is integrated by the trapezoid rule between consecutive observations that are
//!   both complete and at most [`MAX_GAP_MS`] apart; time not integrated that way is not
//!   "covered", and every bucket says how much of it was. PUE over a period = facility energy /
//!   IT energy over its covered time.
//!
//! Buckets: one minute wide for the last [`MINUTES_KEPT`] minutes (memory only), one hour wide
//! for [`HOURS_KEPT`] hours (stored by `api_energy`, so the monthly report survives restarts).
//!
//! Shell (`api_energy`): a sampler every 10 s; minute buckets kept `MINUTES_KEPT` (48 h, memory),
//! hour buckets `HOURS_KEPT` (400 days, `energy.hour` documents stored once a minute and at stop).
//! `GET /api/energy/pue` (now and history), `GET /api/energy/report` (per local day of a month at
//! `offset_min`, JSON or CSV, with covered time).

use dcim_points::{Quality, Sample, Value};
use dcim_site::{Kind, Site};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

pub const MINUTE_MS: i64 = 60_000;
pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 86_400_000;
/// Minute buckets kept (48 h).
pub const MINUTES_KEPT: usize = 48 * 60;
/// Hour buckets kept (400 days: a year and the month before it).
pub const HOURS_KEPT: i64 = 400 * 24;
/// Two observations further apart than this are not integrated (the server was down, or the
/// sampler stalled): that time is not covered.
pub const MAX_GAP_MS: i64 = 30_000;
/// A reading more than this far in the future is implausible, not current.
const FUTURE_SLACK_MS: i64 = 60_000;
/// How many missing meters a [`PowerNow`] names.
const MISSING_LISTED: usize = 50;

/// Which sum a meter belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Facility,
    It,
}

/// A power meter the PUE is computed from: a component's binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meter {
    pub side: Side,
    pub component: String,
    pub device: String,
    pub role: String,
    pub labels: BTreeMap<String, String>,
}

/// The meters of a site: `facility.power_kw` bindings (else the feeds' `feed.power_kw`) and
/// the racks' `it.power_kw`.
pub fn meters(site: &Site) -> Vec<Meter> {
    let bind = |side, kinds: &[Kind], role: &str| -> Vec<Meter> {
        site.components
            .iter()
            .filter(|c| kinds.is_empty() || kinds.contains(&c.kind))
            .flat_map(|c| {
                c.bindings
                    .iter()
                    .filter(|b| b.role.as_str() == role)
                    .map(|b| Meter {
                        side,
                        component: c.id.clone(),
                        device: b.device.clone(),
                        role: role.to_owned(),
                        labels: b.labels.clone(),
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let mut out = bind(Side::Facility, &[], "facility.power_kw");
    if out.is_empty() {
        out = bind(Side::Facility, &[Kind::UtilityFeed], "feed.power_kw");
    }
    out.extend(bind(Side::It, &[Kind::Rack], "it.power_kw"));
    out
}

impl Meter {
    /// Whether a sample is this meter's reading (device, role, and the binding's labels as a
    /// subset of the sample's).
    pub fn matches(&self, s: &Sample) -> bool {
        s.device == self.device
            && s.role.as_str() == self.role
            && self.labels.iter().all(|(k, v)| s.labels.get(k) == Some(v))
    }
}

/// A meter's reading when it can be used now, in kW.
pub fn usable_kw(s: &Sample, now_ms: i64, stale_after_ms: i64) -> Option<f64> {
    if s.quality != Quality::Good
        || now_ms - s.ts_ms > stale_after_ms
        || s.ts_ms - now_ms > FUTURE_SLACK_MS
    {
        return None;
    }
    match s.value {
        Some(Value::Number(v)) if v.is_finite() && v >= 0.0 => Some(v),
        _ => None,
    }
}

/// Facility and IT power now, and the PUE when every meter reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PowerNow {
    pub ts_ms: i64,
    /// `facility_meter` (site meters), `utility_feeds`, or `none` (nothing to compute from).
    pub basis: &'static str,
    /// The sums, only when every meter of the side reports.
    pub facility_kw: Option<f64>,
    pub it_kw: Option<f64>,
    /// Facility / IT, only when both sums are complete and IT power is above zero.
    pub pue: Option<f64>,
    /// PUE below 1 (facility below IT): a metering error, not a good result.
    pub implausible: bool,
    pub facility_meters: usize,
    pub facility_reporting: usize,
    pub it_meters: usize,
    pub it_reporting: usize,
    /// What the reporting meters sum to (for people, never divided).
    pub facility_kw_reporting: f64,
    pub it_kw_reporting: f64,
    /// Components whose meter has no usable reading (at most 50).
    pub missing: Vec<String>,
}

impl PowerNow {
    /// Both sums, when complete.
    pub fn complete(&self) -> Option<(f64, f64)> {
        Some((self.facility_kw?, self.it_kw?))
    }
}

/// PUE now from the latest samples (`latest` yields candidate samples; those of no meter are
/// ignored).
pub fn power_now<'a>(
    meters: &[Meter],
    latest: impl IntoIterator<Item = &'a Sample>,
    now_ms: i64,
    stale_after_ms: i64,
) -> PowerNow {
    let mut kw: Vec<Option<f64>> = vec![None; meters.len()];
    // Meters by device, so each sample is matched against few.
    let mut by_device: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, m) in meters.iter().enumerate() {
        by_device.entry(m.device.as_str()).or_default().push(i);
    }
    for s in latest {
        for &i in by_device.get(s.device.as_str()).into_iter().flatten() {
            if meters[i].matches(s)
                && let Some(v) = usable_kw(s, now_ms, stale_after_ms)
            {
                // Several samples can match one binding (its labels are a subset): the first
                // usable one counts.
                kw[i].get_or_insert(v);
            }
        }
    }
    let side = |sd: Side| {
        let idx: Vec<usize> = (0..meters.len())
            .filter(|&i| meters[i].side == sd)
            .collect();
        let reporting: Vec<f64> = idx.iter().filter_map(|&i| kw[i]).collect();
        let sum: f64 = reporting.iter().sum();
        let complete = !idx.is_empty() && reporting.len() == idx.len();
        (idx.len(), reporting.len(), sum, complete.then_some(sum))
    };
    let (fm, fr, fsum, fkw) = side(Side::Facility);
    let (im, ir, isum, ikw) = side(Side::It);
    let basis = match meters.iter().find(|m| m.side == Side::Facility) {
        Some(m) if m.role == "facility.power_kw" => "facility_meter",
        Some(_) => "utility_feeds",
        None => "none",
    };
    let pue = match (fkw, ikw) {
        (Some(f), Some(i)) if i > 0.0 => Some(f / i),
        _ => None,
    };
    let mut missing: Vec<String> = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, m) in meters.iter().enumerate() {
        if kw[i].is_none() && seen.insert(m.component.as_str()) {
            missing.push(m.component.clone());
            if missing.len() >= MISSING_LISTED {
                break;
            }
        }
    }
    PowerNow {
        ts_ms: now_ms,
        basis,
        facility_kw: fkw,
        it_kw: ikw,
        pue,
        implausible: pue.is_some_and(|p| p < 1.0),
        facility_meters: fm,
        facility_reporting: fr,
        it_meters: im,
        it_reporting: ir,
        facility_kw_reporting: fsum,
        it_kw_reporting: isum,
        missing,
    }
}

/// Energy over one bucket of time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EnergyBucket {
    /// Start of the bucket (ms, aligned to its width from the Unix epoch).
    pub t_ms: i64,
    pub facility_kwh: f64,
    pub it_kwh: f64,
    /// Time of the bucket over which both sums were complete and integrated.
    pub covered_ms: i64,
}

impl EnergyBucket {
    fn new(t_ms: i64) -> EnergyBucket {
        EnergyBucket {
            t_ms,
            facility_kwh: 0.0,
            it_kwh: 0.0,
            covered_ms: 0,
        }
    }

    fn add(&mut self, o: &EnergyBucket) {
        self.facility_kwh += o.facility_kwh;
        self.it_kwh += o.it_kwh;
        self.covered_ms += o.covered_ms;
    }

    /// Facility energy over IT energy, when any IT energy was measured.
    pub fn pue(&self) -> Option<f64> {
        (self.it_kwh > 0.0 && self.covered_ms > 0).then(|| self.facility_kwh / self.it_kwh)
    }
}

/// Integrates observations into minute and hour buckets.
#[derive(Debug, Clone, Default)]
pub struct EnergyMeter {
    last: Option<(i64, Option<(f64, f64)>)>,
    minutes: VecDeque<EnergyBucket>,
    hours: BTreeMap<i64, EnergyBucket>,
    /// Hours changed since [`EnergyMeter::take_dirty`].
    dirty: BTreeSet<i64>,
}

/// `[a, b)` split at multiples of `width`: `(bucket start, overlap start, overlap end)`.
fn split(a: i64, b: i64, width: i64) -> Vec<(i64, i64, i64)> {
    let mut out = Vec::new();
    let mut t = a;
    while t < b {
        let start = t.div_euclid(width) * width;
        let end = (start + width).min(b);
        out.push((start, t, end));
        t = end;
    }
    out
}

impl EnergyMeter {
    /// Resumes from stored hour buckets.
    pub fn restore(hours: impl IntoIterator<Item = EnergyBucket>) -> EnergyMeter {
        EnergyMeter {
            hours: hours.into_iter().map(|b| (b.t_ms, b)).collect(),
            ..Default::default()
        }
    }

    /// One observation of both sums at `now_ms` (`None` when either is incomplete).
    pub fn observe(&mut self, now_ms: i64, sums: Option<(f64, f64)>) {
        if let Some((t0, Some((f0, i0)))) = self.last
            && let Some((f1, i1)) = sums
            && now_ms > t0
            && now_ms - t0 <= MAX_GAP_MS
        {
            // Linear between the two observations: the energy of a slice is its length times
            // the power at its middle.
            let at =
                |t: f64, a: f64, b: f64| a + (b - a) * ((t - t0 as f64) / (now_ms - t0) as f64);
            let slices = |width: i64| -> Vec<EnergyBucket> {
                split(t0, now_ms, width)
                    .into_iter()
                    .map(|(start, a, b)| {
                        let mid = (a + b) as f64 / 2.0;
                        let h = (b - a) as f64 / HOUR_MS as f64;
                        EnergyBucket {
                            t_ms: start,
                            facility_kwh: at(mid, f0, f1) * h,
                            it_kwh: at(mid, i0, i1) * h,
                            covered_ms: b - a,
                        }
                    })
                    .collect()
            };
            for s in slices(MINUTE_MS) {
                match self.minutes.iter_mut().rev().find(|m| m.t_ms == s.t_ms) {
                    Some(m) => m.add(&s),
                    None => {
                        if self.minutes.back().is_none_or(|m| m.t_ms < s.t_ms) {
                            self.minutes.push_back(s);
                        }
                    }
                }
            }
            for s in slices(HOUR_MS) {
                self.hours
                    .entry(s.t_ms)
                    .or_insert_with(|| EnergyBucket::new(s.t_ms))
                    .add(&s);
                self.dirty.insert(s.t_ms);
            }
        }
        if self.last.is_none_or(|(t0, _)| now_ms >= t0) {
            self.last = Some((now_ms, sums));
        }
        while self.minutes.len() > MINUTES_KEPT {
            self.minutes.pop_front();
        }
        let oldest = now_ms.div_euclid(HOUR_MS) * HOUR_MS - HOURS_KEPT * HOUR_MS;
        self.hours.retain(|&t, _| t >= oldest);
    }

    /// The hour buckets changed since the last call (to be stored).
    pub fn take_dirty(&mut self) -> Vec<EnergyBucket> {
        let d = std::mem::take(&mut self.dirty);
        d.into_iter()
            .filter_map(|t| self.hours.get(&t).copied())
            .collect()
    }

    /// Marks an hour to be stored again (its store failed).
    pub fn mark_dirty(&mut self, t_ms: i64) {
        if self.hours.contains_key(&t_ms) {
            self.dirty.insert(t_ms);
        }
    }

    pub fn hours(&self) -> &BTreeMap<i64, EnergyBucket> {
        &self.hours
    }

    /// PUE history over `[from, to]` in buckets of `step` (rounded up to the resolution):
    /// minute buckets when the step is under an hour and the range lies within the minutes
    /// kept, hour buckets otherwise.
    pub fn history(&self, from_ms: i64, to_ms: i64, step_ms: i64, now_ms: i64) -> History {
        let minutes_from = self.minutes.front().map(|m| m.t_ms);
        let use_minutes = step_ms < HOUR_MS
            && from_ms >= now_ms - MINUTES_KEPT as i64 * MINUTE_MS
            && minutes_from.is_some();
        let (res, src): (i64, Vec<EnergyBucket>) = if use_minutes {
            (MINUTE_MS, self.minutes.iter().copied().collect())
        } else {
            (HOUR_MS, self.hours.values().copied().collect())
        };
        let step = (step_ms.max(res) + res - 1) / res * res;
        let mut out: Vec<EnergyBucket> = Vec::new();
        for b in src
            .iter()
            .filter(|b| b.t_ms + res > from_ms && b.t_ms <= to_ms)
        {
            let t = b.t_ms.div_euclid(step) * step;
            match out.last_mut() {
                Some(o) if o.t_ms == t => o.add(b),
                _ => {
                    let mut n = EnergyBucket::new(t);
                    n.add(b);
                    out.push(n);
                }
            }
        }
        History {
            resolution_ms: res,
            step_ms: step,
            kept_from_ms: src.first().map(|b| b.t_ms),
            minutes_kept_ms: MINUTES_KEPT as i64 * MINUTE_MS,
            buckets: out
                .into_iter()
                .map(|b| HistoryBucket {
                    t_ms: b.t_ms,
                    span_ms: (b.t_ms + step).min(now_ms.max(b.t_ms)) - b.t_ms,
                    pue: b.pue(),
                    bucket: b,
                })
                .collect(),
        }
    }
}

/// PUE over time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct History {
    /// Width of the buckets it was made from (one minute or one hour).
    pub resolution_ms: i64,
    pub step_ms: i64,
    /// The oldest bucket held at that resolution: nothing older is kept.
    pub kept_from_ms: Option<i64>,
    /// How far back minute buckets reach.
    pub minutes_kept_ms: i64,
    pub buckets: Vec<HistoryBucket>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryBucket {
    pub t_ms: i64,
    /// Elapsed time of the bucket (less than the step for the current one).
    pub span_ms: i64,
    pub pue: Option<f64>,
    #[serde(flatten)]
    pub bucket: EnergyBucket,
}

// ---------------------------------------------------------------- calendar

/// Days since 1970-01-01 of a proleptic Gregorian date, and the date of a day number
/// (H. Hinnant's algorithms, kept with the DC-09 timestamp).
pub use sia_dc09::timestamp::{civil_from_days, days_from_civil};

/// `YYYY-MM` -> (year, month).
pub fn parse_month(s: &str) -> Option<(i64, u32)> {
    let (y, m) = s.split_once('-')?;
    if y.len() != 4 || m.len() != 2 {
        return None;
    }
    let (y, m): (i64, u32) = (y.parse().ok()?, m.parse().ok()?);
    (1970..=9999).contains(&y).then_some(())?;
    (1..=12).contains(&m).then_some((y, m))
}

/// Energy of one local day (or the month's total).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Period {
    /// `YYYY-MM-DD` (or `YYYY-MM` for the total).
    pub date: String,
    pub from_ms: i64,
    pub to_ms: i64,
    pub facility_kwh: f64,
    pub it_kwh: f64,
    pub pue: Option<f64>,
    pub covered_ms: i64,
    /// Elapsed time of the period up to now (0 for a day still to come).
    pub elapsed_ms: i64,
}

/// The monthly energy report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MonthReport {
    pub month: String,
    /// Local time of the report: minutes east of UTC.
    pub offset_min: i32,
    pub total: Period,
    pub days: Vec<Period>,
    /// The oldest hour the server holds: a report before it is empty, not zero.
    pub kept_from_ms: Option<i64>,
}

/// The report of a local month (`offset_min` east of UTC; a day or month boundary that falls
/// inside a UTC hour takes the whole hour whose start lies in it) from hour buckets.
pub fn month_report(
    hours: &BTreeMap<i64, EnergyBucket>,
    year: i64,
    month: u32,
    offset_min: i32,
    now_ms: i64,
) -> MonthReport {
    let off = i64::from(offset_min) * MINUTE_MS;
    let first = days_from_civil(year, month, 1);
    let (ny, nm) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    let next = days_from_civil(ny, nm, 1);
    let period = |date: String, from: i64, to: i64| {
        let mut b = EnergyBucket::new(from);
        for (_, h) in hours.range(from..to) {
            b.add(h);
        }
        Period {
            date,
            from_ms: from,
            to_ms: to,
            facility_kwh: b.facility_kwh,
            it_kwh: b.it_kwh,
            pue: b.pue(),
            covered_ms: b.covered_ms,
            elapsed_ms: (now_ms.min(to) - from).max(0),
        }
    };
    let days = (first..next)
        .map(|d| {
            let (y, m, dd) = civil_from_days(d);
            period(
                format!("{y:04}-{m:02}-{dd:02}"),
                d * DAY_MS - off,
                (d + 1) * DAY_MS - off,
            )
        })
        .collect();
    MonthReport {
        month: format!("{year:04}-{month:02}"),
        offset_min,
        total: period(
            format!("{year:04}-{month:02}"),
            first * DAY_MS - off,
            next * DAY_MS - off,
        ),
        days,
        kept_from_ms: hours.keys().next().copied(),
    }
}

/// The report as CSV (UTF-8, `\r\n`): one line per day and a total; PUE and coverage empty
/// when not known.
pub fn month_csv(r: &MonthReport) -> String {
    let mut out = String::from("date,facility_kwh,it_kwh,pue,covered_hours,elapsed_hours\r\n");
    for p in r.days.iter().chain(std::iter::once(&r.total)) {
        let pue = p.pue.map(|v| format!("{v:.3}")).unwrap_or_default();
        out.push_str(&format!(
            "{},{:.1},{:.1},{},{:.2},{:.2}\r\n",
            p.date,
            p.facility_kwh,
            p.it_kwh,
            pue,
            p.covered_ms as f64 / HOUR_MS as f64,
            p.elapsed_ms as f64 / HOUR_MS as f64
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use dcim_points::Role;

    const SITE: &str = r#"
[site]
name = "t"
stale_after_ms = 30000

[[component]]
id = "feed-a"
kind = "utility_feed"
device = "meter-a"
points = ["feed.power_kw"]

[[component]]
id = "feed-b"
kind = "utility_feed"
device = "meter-b"
points = ["feed.power_kw"]

[[generate]]
count = 2
[generate.template]
id = "r{n}"
kind = "rack"
device = "bms-r{n}"
points = ["it.power_kw"]
"#;

    fn sample(device: &str, role: &str, v: f64, ts: i64) -> Sample {
        Sample {
            device: device.into(),
            point: role.replace('.', "_"),
            role: Role::new(role).unwrap(),
            labels: Default::default(),
            value: Some(Value::Number(v)),
            unit: String::new(),
            quality: Quality::Good,
            ts_ms: ts,
        }
    }

    const NOW: i64 = 1_800_000_000_000;

    fn all(ts: i64) -> Vec<Sample> {
        vec![
            sample("meter-a", "feed.power_kw", 90.0, ts),
            sample("meter-b", "feed.power_kw", 30.0, ts),
            sample("bms-r001", "it.power_kw", 50.0, ts),
            sample("bms-r002", "it.power_kw", 50.0, ts),
        ]
    }

    #[test]
    fn pue_is_facility_over_it_only_when_every_meter_reports() {
        let site = Site::from_toml_str(SITE, "t.toml").unwrap();
        let m = meters(&site);
        assert_eq!(m.len(), 4);
        let p = power_now(&m, &all(NOW - 1000), NOW, 30_000);
        assert_eq!(
            (p.facility_kw, p.it_kw, p.pue),
            (Some(120.0), Some(100.0), Some(1.2))
        );
        assert_eq!(p.basis, "utility_feeds");
        // Hazard: feed B's meter silent, and the PUE drops to 0.9 and looks excellent.
        let mut s = all(NOW - 1000);
        s[1].ts_ms = NOW - 31_000;
        let p = power_now(&m, &s, NOW, 30_000);
        assert_eq!((p.facility_kw, p.pue), (None, None));
        assert_eq!(p.missing, ["feed-b"]);
        assert_eq!((p.facility_reporting, p.facility_meters), (1, 2));
        assert_eq!(p.facility_kw_reporting, 90.0);
        // A rack meter of bad quality, or one from the future: not current either.
        let mut s = all(NOW - 1000);
        s[2].quality = Quality::Bad;
        s[3].ts_ms = NOW + 120_000;
        let p = power_now(&m, &s, NOW, 30_000);
        assert_eq!((p.it_kw, p.pue), (None, None));
        assert_eq!(p.missing, ["r001", "r002"]);
        // Facility below IT: shown as implausible.
        let mut s = all(NOW - 1000);
        s[0].value = Some(Value::Number(10.0));
        assert!(power_now(&m, &s, NOW, 30_000).implausible);
    }

    #[test]
    fn a_site_meter_takes_precedence_over_the_feeds() {
        // Hazard: facility power counted twice, from the main meter and from the feeds.
        let src = format!(
            "{SITE}\n[[component]]\nid = \"main\"\nkind = \"switchgear\"\ndevice = \"main-meter\"\npoints = [\"facility.power_kw\"]\n"
        );
        let site = Site::from_toml_str(&src, "t.toml").unwrap();
        let m = meters(&site);
        assert!(
            m.iter()
                .filter(|x| x.side == Side::Facility)
                .all(|x| x.component == "main")
        );
        let mut s = all(NOW);
        s.push(sample("main-meter", "facility.power_kw", 150.0, NOW));
        let p = power_now(&m, &s, NOW, 30_000);
        assert_eq!((p.basis, p.pue), ("facility_meter", Some(1.5)));
    }

    #[test]
    fn energy_integrates_only_complete_observations_close_together() {
        // Hazard: energy guessed across the time the server was down or a meter was silent.
        let mut e = EnergyMeter::default();
        let t0 = NOW.div_euclid(HOUR_MS) * HOUR_MS + 59 * MINUTE_MS + 50_000; // 10 s before an hour
        e.observe(t0, Some((120.0, 100.0)));
        e.observe(t0 + 20_000, Some((120.0, 100.0)));
        // 20 s at 120 kW = 0.6667 kWh facility, split 10 s / 10 s across the hour boundary.
        let hours: Vec<&EnergyBucket> = e.hours().values().collect();
        assert_eq!(hours.len(), 2);
        assert!((hours[0].facility_kwh - 120.0 * 10.0 / 3600.0).abs() < 1e-9);
        assert_eq!((hours[0].covered_ms, hours[1].covered_ms), (10_000, 10_000));
        assert!((hours[1].pue().unwrap() - 1.2).abs() < 1e-9);
        assert_eq!(e.take_dirty().len(), 2);
        assert!(e.take_dirty().is_empty());
        // Incomplete, then complete again: the interval touching the gap is not covered.
        e.observe(t0 + 30_000, None);
        e.observe(t0 + 40_000, Some((120.0, 100.0)));
        // A gap longer than MAX_GAP_MS (the server was down) is not integrated either.
        e.observe(t0 + 40_000 + MAX_GAP_MS + 1, Some((120.0, 100.0)));
        let covered: i64 = e.hours().values().map(|b| b.covered_ms).sum();
        assert_eq!(covered, 20_000, "only the first 20 s are covered");
        // A ramp: the trapezoid, not the end value.
        let mut e = EnergyMeter::default();
        e.observe(0, Some((0.0, 0.0)));
        e.observe(20_000, Some((360.0, 180.0)));
        let b = e.hours()[&0];
        assert!((b.facility_kwh - 1.0).abs() < 1e-9, "{}", b.facility_kwh);
    }

    #[test]
    fn history_uses_minutes_for_short_ranges_and_hours_for_long_ones() {
        // Hazard: a 30-day chart asked of minute buckets that only reach back 48 h.
        let mut e = EnergyMeter::default();
        let start = NOW.div_euclid(HOUR_MS) * HOUR_MS;
        let mut t = start;
        while t <= start + 2 * HOUR_MS {
            e.observe(t, Some((130.0, 100.0)));
            t += 10_000;
        }
        let now = start + 2 * HOUR_MS;
        let h = e.history(now - HOUR_MS, now, MINUTE_MS, now);
        assert_eq!(h.resolution_ms, MINUTE_MS);
        assert!(h.buckets.len() >= 60);
        assert!(
            h.buckets
                .iter()
                .all(|b| (b.pue.unwrap() - 1.3).abs() < 1e-9)
        );
        let h = e.history(now - 30 * DAY_MS, now, HOUR_MS, now);
        assert_eq!(h.resolution_ms, HOUR_MS);
        assert_eq!(h.kept_from_ms, Some(start));
        assert_eq!(h.buckets.len(), 2);
        // A step that is not a multiple of the resolution is rounded up.
        assert_eq!(e.history(now - HOUR_MS, now, 90_000, now).step_ms, 120_000);
    }

    #[test]
    fn the_calendar_round_trips() {
        // Hazard: a leap day or a month end putting a day's energy in the wrong report.
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        for d in [-1000, 0, 59, 60, 11_016, 20_000, 30_000] {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
        assert_eq!(civil_from_days(days_from_civil(2024, 2, 29)), (2024, 2, 29));
        assert_eq!(parse_month("2026-05"), Some((2026, 5)));
        for bad in ["2026-13", "2026-5", "26-05", "2026/05", ""] {
            assert_eq!(parse_month(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_monthly_report_sums_local_days_and_says_what_is_covered() {
        // Hazard: a day the server did not see reported as zero energy, or Korean days cut at
        // UTC midnight.
        // Korea (UTC+09:00): 1 May 2026 starts at 30 April 15:00 UTC.
        let may1 = days_from_civil(2026, 5, 1) * DAY_MS - 9 * HOUR_MS;
        let mut hours = BTreeMap::new();
        for h in [-1, 0, 1, 24] {
            let t = may1 + h * HOUR_MS;
            hours.insert(
                t,
                EnergyBucket {
                    t_ms: t,
                    facility_kwh: 130.0,
                    it_kwh: 100.0,
                    covered_ms: HOUR_MS,
                },
            );
        }
        let now = may1 + 30 * HOUR_MS;
        let r = month_report(&hours, 2026, 5, 540, now);
        assert_eq!(r.days.len(), 31);
        assert_eq!(r.days[0].date, "2026-05-01");
        assert_eq!(r.days[0].from_ms, may1);
        assert_eq!(
            (r.days[0].facility_kwh, r.days[0].covered_ms),
            (260.0, 2 * HOUR_MS)
        );
        assert_eq!(r.days[1].facility_kwh, 130.0);
        assert_eq!(r.days[1].elapsed_ms, 6 * HOUR_MS);
        assert_eq!(
            r.days[2].elapsed_ms, 0,
            "a day still to come has no elapsed time"
        );
        assert_eq!((r.total.facility_kwh, r.total.it_kwh), (390.0, 300.0));
        assert!((r.total.pue.unwrap() - 1.3).abs() < 1e-9);
        assert_eq!(r.days[5].pue, None, "a day without data has no PUE, not 0");
        let csv = month_csv(&r);
        assert!(csv.starts_with("date,facility_kwh,it_kwh,pue,covered_hours,elapsed_hours\r\n2026-05-01,260.0,200.0,1.300,2.00,24.00\r\n"), "{csv}");
        assert!(
            csv.contains("\r\n2026-05-06,0.0,0.0,,0.00,0.00\r\n"),
            "{csv}"
        );
        assert!(
            csv.ends_with("2026-05,390.0,300.0,1.300,3.00,30.00\r\n"),
            "{csv}"
        );
    }
}
