//! Supervision of one sensor source: staleness, plausibility and N-sample confirmation.

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
    /// Changed more than `max_jump` between two samples (counts again after
    /// `jump_recover_samples` plausible samples).
    Jump,
    /// Disagrees with its redundant partner beyond `partner_band` and lost the arbitration.
    Disagree,
    /// Inhibited by a network command.
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
            Invalidity::Jump => "implausible_jump",
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
    /// Last in-range value (reference for the jump check).
    last_plausible: Option<i32>,
    recover_left: u8,
    /// Ring of the most recent consecutive valid samples.
    hist: [i32; HIST],
    hist_len: u8,
    hist_pos: u8,
    /// Excluded by the partner check this cycle.
    pub(crate) disagree: bool,
    /// Excluded by an inhibit command.
    pub(crate) inhibited: bool,
}

impl Source {
    pub(crate) fn new(id: SourceId, fitted: bool, now_ms: u64) -> Source {
        Source {
            id,
            fitted,
            last_ms: now_ms,
            ever_sampled: false,
            status: Some(Invalidity::Pending),
            last_plausible: None,
            recover_left: 0,
            hist: [0; HIST],
            hist_len: 0,
            hist_pos: 0,
            disagree: false,
            inhibited: false,
        }
    }

    /// Starts the staleness clock (first control cycle, or after a restore).
    pub(crate) fn start(&mut self, now_ms: u64) {
        self.last_ms = now_ms;
    }

    pub(crate) fn fitted(&self) -> bool {
        self.fitted
    }

    fn clear_history(&mut self) {
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
                self.status = Some(Invalidity::Fault);
                self.last_plausible = None;
                self.clear_history();
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
            self.status = Some(Invalidity::Stale);
            self.last_plausible = None;
            self.clear_history();
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
            self.status = Some(Invalidity::Open);
            self.clear_history();
            return;
        }
        if temperature && v == cfg.short_code {
            self.status = Some(Invalidity::Short);
            self.clear_history();
            return;
        }
        if v < min || v > max {
            self.status = Some(Invalidity::OutOfRange);
            self.clear_history();
            return;
        }
        let previous = self.last_plausible.replace(v);
        if temperature {
            let jumped = previous.is_some_and(|p| p.abs_diff(v) > cfg.max_jump.unsigned_abs());
            if jumped {
                self.status = Some(Invalidity::Jump);
                self.recover_left = cfg.jump_recover_samples;
                self.clear_history();
                return;
            }
            if self.recover_left > 0 {
                self.recover_left = self.recover_left.saturating_sub(1);
                if self.recover_left > 0 {
                    self.status = Some(Invalidity::Jump);
                    return;
                }
            }
        }
        self.status = None;
        self.push(v);
    }

    /// Why the source is invalid this cycle, or `None` if it is valid.
    pub(crate) fn invalidity(&self) -> Option<Invalidity> {
        if !self.fitted {
            return None;
        }
        if self.inhibited {
            return Some(Invalidity::Inhibited);
        }
        if self.status.is_none() && self.disagree {
            return Some(Invalidity::Disagree);
        }
        self.status
    }

    /// Invalid for its own reasons (ignoring the partner check and the inhibit).
    pub(crate) fn own_invalidity(&self) -> Option<Invalidity> {
        if !self.fitted { None } else { self.status }
    }

    pub(crate) fn is_valid(&self) -> bool {
        self.fitted && self.invalidity().is_none()
    }

    pub(crate) fn is_pending(&self) -> bool {
        self.fitted && !self.ever_sampled && self.status == Some(Invalidity::Pending)
    }

    /// The latest valid value (partner/inhibit ignored).
    pub(crate) fn own_latest(&self) -> Option<i32> {
        if self.fitted && self.status.is_none() {
            self.latest()
        } else {
            None
        }
    }

    /// The latest valid value.
    pub(crate) fn valid_latest(&self) -> Option<i32> {
        if self.is_valid() { self.latest() } else { None }
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
