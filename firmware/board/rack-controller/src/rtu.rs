//! Modbus RTU framing on a serial line: a frame ends after 3.5 character times of silence
//! (fixed 1750 us above 19200 baud, as the Modbus serial line specification says).

use rack_registers::slave::MAX_FRAME;

/// A received frame.
pub type Frame = heapless::Vec<u8, MAX_FRAME>;

/// The inter-frame gap (t3.5) for a baud rate, microseconds.
pub const fn t35_us(baud: u32) -> u64 {
    if baud > 19_200 || baud == 0 {
        1_750
    } else {
        // 3.5 characters of 11 bits.
        38_500_000 / baud as u64
    }
}

/// Assembles bytes into frames by silence.
#[derive(Debug)]
pub struct RtuReceiver {
    buf: Frame,
    last_us: u64,
    gap_us: u64,
    overflow: bool,
}

impl RtuReceiver {
    /// A receiver for `baud`.
    pub const fn new(baud: u32) -> Self {
        RtuReceiver {
            buf: Frame::new(),
            last_us: 0,
            gap_us: t35_us(baud),
            overflow: false,
        }
    }

    fn finish(&mut self) -> Option<Frame> {
        let frame = core::mem::take(&mut self.buf);
        let overflow = core::mem::replace(&mut self.overflow, false);
        (!overflow && !frame.is_empty()).then_some(frame)
    }

    /// Adds a byte received at `at_us`. Returns the previous frame when this byte starts a new
    /// one (the silence before it was long enough). Oversized frames are dropped.
    pub fn push(&mut self, byte: u8, at_us: u64) -> Option<Frame> {
        let done = if !self.buf.is_empty() && at_us.saturating_sub(self.last_us) >= self.gap_us {
            self.finish()
        } else {
            None
        };
        if self.buf.push(byte).is_err() {
            self.overflow = true;
        }
        self.last_us = at_us;
        done
    }

    /// Returns the frame in progress once the line has been silent long enough at `now_us`.
    pub fn poll(&mut self, now_us: u64) -> Option<Frame> {
        if (!self.buf.is_empty() || self.overflow)
            && now_us.saturating_sub(self.last_us) >= self.gap_us
        {
            self.finish()
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gap_follows_the_specification() {
        assert_eq!(t35_us(9_600), 4_010);
        assert_eq!(t35_us(19_200), 2_005);
        assert_eq!(t35_us(115_200), 1_750);
    }

    #[test]
    fn frames_are_split_by_silence() {
        let mut rx = RtuReceiver::new(19_200);
        let mut t = 0;
        for b in [1u8, 4, 0, 0] {
            assert!(rx.push(b, t).is_none());
            t += 573;
        }
        assert!(
            rx.poll(t).is_none(),
            "a short pause is not the end of a frame"
        );
        assert_eq!(
            rx.poll(t - 573 + 2_005).as_deref(),
            Some(&[1u8, 4, 0, 0][..])
        );
        assert!(rx.poll(t + 10_000).is_none());
        // A byte after a long silence closes the frame before it.
        rx.push(7, 50_000);
        let f = rx.push(8, 60_000).unwrap();
        assert_eq!(f.as_slice(), &[7]);
    }

    #[test]
    fn oversized_frames_are_dropped() {
        let mut rx = RtuReceiver::new(115_200);
        for i in 0..(MAX_FRAME as u64 + 10) {
            assert!(rx.push(0x55, i * 10).is_none());
        }
        assert!(rx.poll(1_000_000).is_none());
        rx.push(1, 2_000_000);
        assert_eq!(rx.poll(3_000_000).as_deref(), Some(&[1u8][..]));
    }
}
