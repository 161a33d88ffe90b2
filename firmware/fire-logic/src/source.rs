//! Supervision of one sensor source: staleness, plausibility, rate limiting and N-sample
//! confirmation.

use core::fmt;

use crate::config::{Config, MAX_CONFIRM_SAMPLES};
use crate::types::{Analog, SourceId};

/// Why a source is not valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalidity {
    /// Fitted, never sampled yet, still within three periods of start-up (not a trouble).
    Pending,
    /// No sample for three expected periods.
    Stale,
    /// The sensor reports a fault.
    Fault,
    /// The open-circuit code.
    Open,
    /// The short-circuit code.
    Short,
    /// Outside the plausible range.
    OutOfRange,
    /// Disagrees with its redundant partner beyond `partner_band` and lost the arbitration
    /// (it is the suspect one: the cooler one whenever independent evidence says it is hot).
    Disagree,
    /// Invalid for one of the reasons above and under a timed network inhibit: only the
    /// reporting changes (the `sensor_inhibited` trouble replaces the sensor's own), never what
    /// the logic does.
    Inhibited,
}

impl Invalidity {
    /// Stable name.
    pub const fn name(self) -> &'static str {
        match self {
            Invalidity::Pending => "pending",
            Invalidity::Stale => "stale",
            Invalidity::Fault => "fault",
            Invalidity::Open => "open",
            Invalidity::Short => "short",
            Invalidity::OutOfRange => "out_of_range",
            Invalidity::Disagree => "partner_disagreement",
            Invalidity::Inhibited => "inhibited",
        }
    }
}

impl fmt::Display for Invalidity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

const HIST: usize = MAX_CONFIRM_SAMPLES as usize;

/// State of one supervised source.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Source {
    id: SourceId,
    fitted: bool,
    /// Time of the last sample (or of start-up, before the first sample).
    last_ms: u64,
    ever_sampled: bool,
    /// Own status from the samples (None = valid).
    status: Option<Invalidity>,
    /// The latest in-range raw sample (None while invalid): what the sensor says now, used
    /// where the most pessimistic view counts (the reset check).
    last_raw: Option<i32>,
    /// The latest rate-limited value (reference for the next sample's rate limit).
    last_used: Option<i32>,
    /// Ring of the most recent consecutive valid (rate-limited) values.
    hist: [i32; HIST],
    hist_len: u8,
    hist_pos: u8,
    /// Excluded by the partner check this cycle.
    pub(crate) disagree: bool,
}

impl Source {
    pub(crate) fn new(id: SourceId, fitted: bool, now_ms: u64) -> Source {
        Source {
            id,
            fitted,
            last_ms: now_ms,
            ever_sampled: false,
            status: Some(Invalidity::Pending),
            last_raw: None,
            last_used: None,
            hist: [0; HIST],
            hist_len: 0,
            hist_pos: 0,
            disagree: false,
        }
    }

    /// Starts the staleness clock (first control cycle, or after a restore).
    pub(crate) fn start(&mut self, now_ms: u64) {
        self.last_ms = now_ms;
    }

    pub(crate) fn fitted(&self) -> bool {
        self.fitted
    }

    fn invalidate(&mut self, why: Invalidity) {
        self.status = Some(why);
        self.last_raw = None;
        self.last_used = None;
        self.hist_len = 0;
        self.hist_pos = 0;
    }

    fn push(&mut self, v: i32) {
        let pos = usize::from(self.hist_pos) % HIST;
        if let Some(slot) = self.hist.get_mut(pos) {
            *slot = v;
        }
        self.hist_pos = u8::try_from(pos.saturating_add(1) % HIST).unwrap_or(0);
        if usize::from(self.hist_len) < HIST {
            self.hist_len = self.hist_len.saturating_add(1);
        }
    }

    fn latest(&self) -> Option<i32> {
        if self.hist_len == 0 {
            return None;
        }
        let pos = (usize::from(self.hist_pos)
            .saturating_add(HIST)
            .saturating_sub(1))
            % HIST;
        self.hist.get(pos).copied()
    }

    /// Processes this cycle's sample and the staleness check.
    pub(crate) fn update(&mut self, sample: Analog, now_ms: u64, cfg: &Config) {
        if !self.fitted {
            return;
        }
        match sample {
            Analog::NoSample => {}
            Analog::Fault => {
                self.last_ms = now_ms;
                self.ever_sampled = true;
                self.invalidate(Invalidity::Fault);
            }
            Analog::Value(v) => {
                self.last_ms = now_ms;
                self.ever_sampled = true;
                self.value(v, cfg);
            }
        }
        let period = cfg.period_ms.get(self.id.index()).copied().unwrap_or(1_000);
        let stale_after = u64::from(period).saturating_mul(3);
        if now_ms.saturating_sub(self.last_ms) > stale_after {
            self.invalidate(Invalidity::Stale);
        }
    }

    fn value(&mut self, v: i32, cfg: &Config) {
        let (min, max) = match self.id {
            SourceId::Smoke => (0, 1),
            SourceId::OffGas => (0, 1_000),
            _ => (cfg.valid_min, cfg.valid_max),
        };
        let temperature = self.id.is_temperature();
        if temperature && v == cfg.open_code {
            self.invalidate(Invalidity::Open);
            return;
        }
        if temperature && v == cfg.short_code {
            self.invalidate(Invalidity::Short);
            return;
        }
        if v < min || v > max {
            self.invalidate(Invalidity::OutOfRange);
            return;
        }
        self.last_raw = Some(v);
        // Rate limit (temperatures): follow the sensor by at most `max_jump` per sample. A
        // one-sample spike moves the used value by `max_jump` and is gone before it can be
        // confirmed; a reading that stays high (a flame, even one flickering by more than
        // `max_jump` from sample to sample) is followed and never rejected.
        let used = match (temperature, self.last_used) {
            (true, Some(p)) => {
                let step = cfg.max_jump;
                // max/min, not clamp: clamp panics when its bounds cross.
                v.max(p.saturating_sub(step)).min(p.saturating_add(step))
            }
            _ => v,
        };
        self.last_used = Some(used);
        self.status = None;
        self.push(used);
    }

    /// Why the source is invalid this cycle, or `None` if it is valid (partner check included).
    pub(crate) fn invalidity(&self) -> Option<Invalidity> {
        if !self.fitted {
            return None;
        }
        if self.status.is_none() && self.disagree {
            return Some(Invalidity::Disagree);
        }
        self.status
    }

    /// Invalid for its own reasons (ignoring the partner check).
    pub(crate) fn own_invalidity(&self) -> Option<Invalidity> {
        if !self.fitted { None } else { self.status }
    }

    pub(crate) fn is_valid(&self) -> bool {
        self.fitted && self.invalidity().is_none()
    }

    pub(crate) fn is_pending(&self) -> bool {
        self.fitted && !self.ever_sampled && self.status == Some(Invalidity::Pending)
    }

    /// The latest valid (rate-limited) value, partner check ignored.
    pub(crate) fn own_latest(&self) -> Option<i32> {
        if self.fitted && self.status.is_none() {
            self.latest()
        } else {
            None
        }
    }

    /// The latest valid (rate-limited) value, partner check included, confirmed or not.
    pub(crate) fn valid_latest(&self) -> Option<i32> {
        if self.is_valid() { self.latest() } else { None }
    }

    /// The latest in-range raw sample, while the source is valid for its own reasons.
    pub(crate) fn raw(&self) -> Option<i32> {
        if self.fitted && self.status.is_none() {
            self.last_raw
        } else {
            None
        }
    }

    /// The confirmed value: the minimum of the last `n` consecutive valid samples, so that a
    /// threshold counts only once `n` consecutive samples reached it.
    pub(crate) fn confirmed(&self, n: u8) -> Option<i32> {
        if !self.is_valid() || n == 0 || self.hist_len < n {
            return None;
        }
        let mut min = i32::MAX;
        let mut pos = usize::from(self.hist_pos);
        for _ in 0..n.min(MAX_CONFIRM_SAMPLES) {
            pos = pos.saturating_add(HIST).saturating_sub(1) % HIST;
            if let Some(v) = self.hist.get(pos) {
                min = min.min(*v);
            }
        }
        Some(min)
    }
}
