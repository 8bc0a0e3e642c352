//! Physical line numbers of records. The csv crate's record position is
//! where the parser started looking for the record: after the previous
//! record's `\r` (Data Loader writes CRLF) and before blank lines it skips,
//! so its line lags. The input's line ends are counted here instead, by
//! byte offset, and a record's line is that of its first byte.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, Read};
use std::rc::Rc;

/// Offsets of the `\r` and `\n` bytes read that no record has passed yet,
/// and how many `\n` came before them: memory stays bounded by the parser's
/// read-ahead.
#[derive(Default)]
struct LineEnds {
    passed: u64,
    pending: VecDeque<(u64, bool)>,
    offset: u64,
}

/// The reader side: notes line ends as the parser reads.
pub(crate) struct CountingReader<R> {
    inner: R,
    ends: Rc<RefCell<LineEnds>>,
}

/// The lookup side: the line of a record from where its parse started.
pub(crate) struct LineIndex {
    ends: Rc<RefCell<LineEnds>>,
}

pub(crate) fn counting<R: Read>(inner: R) -> (CountingReader<R>, LineIndex) {
    let ends = Rc::new(RefCell::new(LineEnds::default()));
    let index = LineIndex {
        ends: Rc::clone(&ends),
    };
    (CountingReader { inner, ends }, index)
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut ends = self.ends.borrow_mut();
        let start = ends.offset;
        for (i, byte) in buf[..n].iter().enumerate() {
            if matches!(byte, b'\r' | b'\n') {
                ends.pending.push_back((start + i as u64, *byte == b'\n'));
            }
        }
        ends.offset += n as u64;
        Ok(n)
    }
}

impl LineIndex {
    /// The 1-based line of the first byte of a record whose parse started
    /// at byte `start`. Records must be asked for in file order. A record's
    /// content never starts with a line end (blank lines are skipped), so
    /// line ends from `start` on are the ones the parser skipped.
    pub(crate) fn line_of(&self, start: u64) -> u64 {
        let mut ends = self.ends.borrow_mut();
        let mut first_byte = start;
        while let Some(&(offset, newline)) = ends.pending.front() {
            if offset > first_byte {
                break;
            }
            if offset == first_byte {
                first_byte += 1;
            }
            ends.pending.pop_front();
            ends.passed += u64::from(newline);
        }
        ends.passed + 1
    }
}
