//! A `fmt::Write` sink that compares what is written with the expected text as it streams, so
//! the emulated MCU needs no buffer for the whole output.

use core::fmt;

/// First difference found.
#[derive(Debug)]
pub struct Mismatch<'e, 's> {
    /// 1-based line number.
    pub line: usize,
    /// The expected line.
    pub expected: &'e str,
    /// The line actually produced (truncated to 512 bytes).
    pub actual: &'s str,
}

/// Streaming comparison against `expected`.
pub struct Compare<'a> {
    expected: &'a str,
    pos: usize,
    line: usize,
    line_start: usize,
    actual: heapless::String<512>,
    failed: bool,
    actual_done: bool,
}

impl<'a> Compare<'a> {
    /// A comparison against `expected`.
    pub fn new(expected: &'a str) -> Self {
        Compare {
            expected,
            pos: 0,
            line: 1,
            line_start: 0,
            actual: heapless::String::new(),
            failed: false,
            actual_done: false,
        }
    }

    fn expected_line(&self) -> &'a str {
        let rest = self.expected.get(self.line_start..).unwrap_or("");
        rest.split('\n').next().unwrap_or("")
    }

    /// Lines compared, or the first difference (including output that stopped short).
    pub fn verdict(&self) -> Result<usize, Mismatch<'a, '_>> {
        if self.failed || self.pos != self.expected.len() {
            return Err(Mismatch {
                line: self.line,
                expected: self.expected_line(),
                actual: self.actual.as_str(),
            });
        }
        Ok(self.line - 1)
    }
}

impl fmt::Write for Compare<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.failed {
            // Keep collecting the rest of the differing line for the report.
            if !self.actual_done {
                for c in s.chars() {
                    if c == '\n' {
                        self.actual_done = true;
                        break;
                    }
                    let _ = self.actual.push(c);
                }
            }
            return Ok(());
        }
        for (i, c) in s.char_indices() {
            let want = self.expected.get(self.pos..).and_then(|r| r.chars().next());
            if want != Some(c) {
                self.failed = true;
                let rest = s.get(i..).unwrap_or("");
                for c in rest.chars() {
                    if c == '\n' {
                        self.actual_done = true;
                        break;
                    }
                    let _ = self.actual.push(c);
                }
                return Ok(());
            }
            self.pos += c.len_utf8();
            if c == '\n' {
                self.line += 1;
                self.line_start = self.pos;
                self.actual.clear();
            } else {
                let _ = self.actual.push(c);
            }
        }
        Ok(())
    }
}
