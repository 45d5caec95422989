//! The line splitter: logical lines of line protocol (quoted newlines
//! included) as upload units, with their first input line.

use super::*;

/// A unit read by [`LineSplitter::next_unit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct UnitInfo {
    pub(super) first_line: u64,
    pub(super) is_data: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    /// Before the first non-blank byte of a physical line.
    Leading,
    /// After a leading `\r`: blank if a newline follows.
    LeadingCr,
    Comment,
    Data,
}

/// Cuts a byte stream into logical lines (see [`Client::write_lp`]).
pub(super) struct LineSplitter {
    /// Input line of the next byte.
    pub(super) line: u64,
    pub(super) bytes_read: u64,
}

impl LineSplitter {
    pub(super) fn new() -> Self {
        Self { line: 1, bytes_read: 0 }
    }

    /// Appends the next logical line, with its newline if it has one, to
    /// `out`; `None` at the end of the input. A line longer than `max_len`
    /// is an error.
    pub(super) fn next_unit(
        &mut self,
        reader: &mut impl BufRead,
        out: &mut Vec<u8>,
        max_len: usize,
    ) -> Result<Option<UnitInfo>, ClientError> {
        let first_line = self.line;
        let start = out.len();
        let mut state = State::Leading;
        let (mut escaped, mut quoted, mut in_field_set) = (false, false, false);
        let (mut equals, mut commas) = (0_usize, 0_usize);
        loop {
            let chunk = match reader.fill_buf() {
                Ok(c) => c,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => return Err(ClientError::Read { line: self.line, source }),
            };
            if chunk.is_empty() {
                // The last line may lack its newline.
                return Ok((out.len() > start).then_some(UnitInfo { first_line, is_data: state == State::Data }));
            }
            let mut taken = chunk.len();
            let mut done = false;
            for (i, &b) in chunk.iter().enumerate() {
                if b == b'\n' {
                    self.line += 1;
                }
                let ends = match state {
                    State::Leading => match b {
                        b' ' | b'\t' => false,
                        b'\r' => {
                            state = State::LeadingCr;
                            false
                        }
                        b'\n' => true,
                        b'#' => {
                            state = State::Comment;
                            false
                        }
                        _ => {
                            state = State::Data;
                            data_byte(b, &mut escaped, &mut quoted, &mut in_field_set, &mut equals, &mut commas)
                        }
                    },
                    State::LeadingCr => {
                        if b == b'\n' {
                            state = State::Leading;
                            true
                        } else {
                            state = State::Data;
                            data_byte(b, &mut escaped, &mut quoted, &mut in_field_set, &mut equals, &mut commas)
                        }
                    }
                    State::Comment => b == b'\n',
                    State::Data => data_byte(b, &mut escaped, &mut quoted, &mut in_field_set, &mut equals, &mut commas),
                };
                if ends {
                    taken = i + 1;
                    done = true;
                    break;
                }
            }
            out.extend_from_slice(&chunk[..taken]);
            reader.consume(taken);
            self.bytes_read += taken as u64;
            if out.len() - start > max_len {
                return Err(ClientError::LineTooLong { line: first_line, limit: max_len });
            }
            if done {
                return Ok(Some(UnitInfo { first_line, is_data: state == State::Data }));
            }
        }
    }
}

/// One byte of a data line; true when it is the newline that ends the line.
pub(super) fn data_byte(
    b: u8,
    escaped: &mut bool,
    quoted: &mut bool,
    in_field_set: &mut bool,
    equals: &mut usize,
    commas: &mut usize,
) -> bool {
    if *escaped {
        *escaped = false;
        return false;
    }
    match b {
        b'\\' => *escaped = true,
        b' ' => *in_field_set = true,
        b'=' if *in_field_set && !*quoted => *equals += 1,
        b',' if *in_field_set && !*quoted => *commas += 1,
        b'"' if *in_field_set && *equals > *commas => *quoted = !*quoted,
        b'\n' => return !*quoted,
        _ => {}
    }
    false
}
