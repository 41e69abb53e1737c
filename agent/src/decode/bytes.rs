//! A read cursor over packet bytes that cannot over-read: every accessor returns `None` when
//! the bytes are not there.

/// Position in a byte slice.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// At the start of `buf`.
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }

    /// At `pos` in `buf` (clamped to the end).
    pub(crate) fn at(buf: &'a [u8], pos: usize) -> Self {
        Cursor {
            buf,
            pos: pos.min(buf.len()),
        }
    }

    /// Current offset from the start of the buffer.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// The next `n` bytes without consuming them.
    pub(crate) fn peek(&self, n: usize) -> Option<&'a [u8]> {
        self.buf.get(self.pos..self.pos.checked_add(n)?)
    }

    /// Consume and return the next `n` bytes.
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.peek(n)?;
        self.pos += n;
        Some(s)
    }

    /// Consume one byte.
    pub(crate) fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
}
