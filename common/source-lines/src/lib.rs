//! Line numbers of byte offsets in a source text, for error messages that name the file, the
//! line and the field.
//!
//! [`LineIndex::new`] finds the newlines of a text once; each [`LineIndex::line`] or
//! [`LineIndex::line_col`] is then a binary search. Counting newlines before an offset on
//! every error or every item instead makes loading a file of `n` items O(n²).
//!
//! Lines are 1-based and end at `\n`: a `\r` before it belongs to its line (CRLF text has the
//! same line numbers), an offset at a newline is on the line that newline ends, and an offset
//! past the end of the text is on the last line.

#![forbid(unsafe_code)]

/// The newline positions of one text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineIndex {
    /// Byte offsets of every `\n`, ascending.
    newlines: Vec<usize>,
    len: usize,
}

impl LineIndex {
    /// Index `text` (one pass over its bytes).
    pub fn new(text: &str) -> LineIndex {
        LineIndex {
            newlines: text
                .bytes()
                .enumerate()
                .filter(|&(_, b)| b == b'\n')
                .map(|(i, _)| i)
                .collect(),
            len: text.len(),
        }
    }

    /// The 1-based line of byte `offset` (offsets past the end are on the last line).
    pub fn line(&self, offset: usize) -> usize {
        self.newlines_before(offset) + 1
    }

    /// The 1-based line and 1-based byte column of `offset` (offsets past the end are clamped
    /// to the end of the text).
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.len);
        let before = self.newlines_before(offset);
        let start = match before {
            0 => 0,
            n => self.newlines[n - 1] + 1,
        };
        (before + 1, offset - start + 1)
    }

    /// How many lines the text has (a text ending with `\n` has no extra empty line; an empty
    /// text has one line).
    pub fn line_count(&self) -> usize {
        match self.newlines.last() {
            Some(&last) if last + 1 == self.len => self.newlines.len(),
            _ => self.newlines.len() + 1,
        }
    }

    fn newlines_before(&self, offset: usize) -> usize {
        self.newlines.partition_point(|&nl| nl < offset)
    }
}

#[cfg(test)]
mod tests {
    use super::LineIndex;
    use proptest::prelude::*;

    /// What the index replaces: count the newlines before the offset.
    fn naive(text: &str, offset: usize) -> (usize, usize) {
        let before = &text.as_bytes()[..offset.min(text.len())];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        (line, before.len() - start + 1)
    }

    // Hazard for every test here: an error message pointing at the wrong line sends the
    // operator to fix a setting that is fine while the broken one stays.

    #[test]
    fn offset_zero_is_line_one_column_one() {
        let idx = LineIndex::new("a = 1\nb = 2\n");
        assert_eq!(idx.line(0), 1);
        assert_eq!(idx.line_col(0), (1, 1));
    }

    #[test]
    fn an_offset_at_a_newline_is_on_the_line_it_ends() {
        let idx = LineIndex::new("a = 1\nb = 2\n");
        assert_eq!(idx.line(5), 1);
        assert_eq!(idx.line_col(5), (1, 6));
        assert_eq!(idx.line(6), 2);
        assert_eq!(idx.line_col(6), (2, 1));
    }

    #[test]
    fn an_offset_past_the_end_is_on_the_last_line() {
        let idx = LineIndex::new("a\nb");
        assert_eq!(idx.line(3), 2);
        assert_eq!(idx.line(1000), 2);
        assert_eq!(idx.line_col(1000), (2, 2));
        let trailing = LineIndex::new("a\n");
        assert_eq!(trailing.line(2), 2);
        assert_eq!(trailing.line(99), 2);
    }

    #[test]
    fn crlf_text_has_the_same_lines_as_lf_text() {
        let crlf = "a = 1\r\nb = 2\r\nc = 3\r\n";
        let idx = LineIndex::new(crlf);
        let c = crlf.find('c').unwrap();
        assert_eq!(idx.line(c), 3);
        assert_eq!(idx.line_col(c), (3, 1));
        // The `\r` belongs to the line it ends.
        assert_eq!(idx.line(crlf.find('\r').unwrap()), 1);
        assert_eq!(idx.line_count(), 3);
    }

    #[test]
    fn empty_text_is_one_line() {
        let idx = LineIndex::new("");
        assert_eq!(idx.line(0), 1);
        assert_eq!(idx.line(5), 1);
        assert_eq!(idx.line_col(5), (1, 1));
        assert_eq!(idx.line_count(), 1);
    }

    #[test]
    fn line_count_ignores_a_final_newline() {
        assert_eq!(LineIndex::new("a").line_count(), 1);
        assert_eq!(LineIndex::new("a\n").line_count(), 1);
        assert_eq!(LineIndex::new("a\nb").line_count(), 2);
        assert_eq!(LineIndex::new("\n\n").line_count(), 2);
    }

    proptest! {
        #[test]
        fn agrees_with_naive_counting(
            text in "[a\\n\\r=é ]{0,64}",
            offsets in proptest::collection::vec(0usize..80, 1..16),
        ) {
            let idx = LineIndex::new(&text);
            for offset in offsets {
                let (line, col) = naive(&text, offset);
                prop_assert_eq!(idx.line(offset), line, "line at {}", offset);
                prop_assert_eq!(idx.line_col(offset), (line, col), "line_col at {}", offset);
            }
        }
    }
}
