//! Where a [`super::FileReader`] gets its bytes: a window of unread bytes of the file that the
//! reader asks to extend (`fill`) before it parses a record header or a whole record, then
//! consumes (`skip`, `take`). The parser only ever looks at that window, so the same parsing
//! code runs over
//!
//! - [`Chunks`]: `read()` into one reused buffer (any [`Read`]: files, pipes, FIFOs, stdin);
//! - [`Mapped`]: a regular file mapped into memory window by window, no copy;
//! - [`Bytes`]: bytes already in memory (tests, fuzzing).

use super::{bad, ReadError};
use crate::capture::mapped;
use memmap2::Mmap;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

/// The shared buffer bytes taken with [`Source::take_shared`] lie in, and their offset there.
pub type Held<'a> = (&'a Arc<Vec<u8>>, usize);

/// A byte source of a [`super::FileReader`].
pub trait Source {
    /// Make at least `need` unread bytes available if the file has them; returns how many
    /// are available (fewer than `need` only at the end of the file).
    fn fill(&mut self, need: usize) -> Result<usize, ReadError>;
    /// The unread bytes available now (as many as the last `fill` returned).
    fn window(&self) -> &[u8];
    /// Consume `n` available bytes.
    fn skip(&mut self, n: usize);
    /// Consume `n` available bytes and return them; they stay valid until the next call.
    fn take(&mut self, n: usize) -> &[u8];
    /// [`Source::take`], with the buffer the bytes lie in and their offset there when the
    /// source reads into a buffer it can share (see [`Chunks`]).
    fn take_shared(&mut self, n: usize) -> (&[u8], Option<Held<'_>>) {
        (self.take(n), None)
    }
    /// Bytes of the file consumed so far.
    fn consumed(&self) -> u64;
    /// The file header is parsed: the source may now work in its full chunk size.
    fn opened(&mut self) {}
    /// Give up on the rest of the file (after an error): `fill` returns 0 from now on.
    fn finish(&mut self);
    /// Whether this source can run dry without ending (a pipe or FIFO, see
    /// [`Source::would_wait`]). Files and bytes in memory cannot.
    fn can_stall(&self) -> bool {
        false
    }
    /// Reading more now would wait for a writer that has not written yet (a pipe or FIFO with
    /// nothing in it). Said once per wait: after a `true` the next `fill` waits as usual, so a
    /// caller that does its pending work in between never spins.
    fn would_wait(&mut self) -> bool {
        false
    }
}

/// `read()` in chunks into a reused buffer.
///
/// The buffer can be shared ([`Source::take_shared`]): a worker thread keeps a reference to it
/// and reads the packets handed to it from there, instead of the capture thread copying their
/// payloads into its batch. The reader never writes into a buffer someone else still holds:
/// when the buffer is shared at a refill, the unread bytes move to a buffer nobody holds (one
/// retired earlier whose holders are done, or a new one).
#[derive(Debug)]
pub struct Chunks<R> {
    src: R,
    buf: Arc<Vec<u8>>,
    /// Buffers given up while shared, for when their holders are done with them.
    retired: Vec<Arc<Vec<u8>>>,
    /// Read size once the header is parsed (`buf` stays small until then, so files opened up
    /// front cost little memory before they are read).
    chunk: usize,
    opened: bool,
    pos: usize,
    end: usize,
    /// File offset of `buf[0]`.
    base: u64,
    eof: bool,
    /// A pipe or FIFO to ask before a read that might wait (see [`Source::would_wait`]).
    watch: Option<OwnedFd>,
    /// A wait was already reported and no byte came since.
    reported: bool,
}

impl<R: Read> Chunks<R> {
    /// Read `src` `chunk` bytes at a time (at least 64).
    pub fn new(src: R, chunk: usize) -> Self {
        Chunks {
            src,
            buf: Arc::new(Vec::new()),
            retired: Vec::new(),
            chunk: chunk.max(64),
            opened: false,
            pos: 0,
            end: 0,
            base: 0,
            eof: false,
            watch: None,
            reported: false,
        }
    }
}

impl<R: Read + AsFd> Chunks<R> {
    /// [`Chunks::new`], able to tell when `src` runs dry (see [`Source::would_wait`]): for
    /// `stalls`, a pipe, FIFO, socket or terminal rather than a regular file.
    pub fn watched(src: R, chunk: usize, stalls: bool) -> Self {
        let watch = if stalls {
            src.as_fd().try_clone_to_owned().ok()
        } else {
            None
        };
        Chunks {
            watch,
            ..Chunks::new(src, chunk)
        }
    }
}

impl<R: Read> Chunks<R> {
    /// [`Source::fill`] when the buffer does not hold `need` bytes: compact, grow, read.
    #[cold]
    #[inline(never)]
    fn refill(&mut self, need: usize) -> Result<usize, ReadError> {
        let want = if self.opened {
            need.max(self.chunk)
        } else {
            need.max(4096)
        };
        if Arc::get_mut(&mut self.buf).is_none() {
            self.unshare(want);
        }
        let Some(buf) = Arc::get_mut(&mut self.buf) else {
            return Err(bad(self.consumed(), "read buffer still shared".into()));
        };
        if buf.len() - self.pos < need {
            buf.copy_within(self.pos..self.end, 0);
            self.base += self.pos as u64;
            self.end -= self.pos;
            self.pos = 0;
            if buf.len() < want {
                buf.resize(want, 0);
            }
        }
        while self.end - self.pos < need {
            match self.src.read(&mut buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => {
                    self.end += n;
                    self.reported = false;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(bad(
                        self.consumed(),
                        format!("error reading dump file: {e}"),
                    ));
                }
            }
        }
        Ok(self.end - self.pos)
    }

    /// The buffer is shared: carry the unread bytes over to one nobody holds (a retired one
    /// whose holders are done, else a new one of `want` bytes), and retire this one.
    #[cold]
    fn unshare(&mut self, want: usize) {
        let free = self
            .retired
            .iter()
            .position(|b| Arc::strong_count(b) == 1 && b.len() >= want);
        let mut next = match free {
            Some(i) => self.retired.swap_remove(i),
            None => Arc::new(vec![0; want.max(self.buf.len())]),
        };
        if let Some(b) = Arc::get_mut(&mut next) {
            let unread = self.buf.get(self.pos..self.end).unwrap_or(&[]);
            if let Some(dst) = b.get_mut(..unread.len()) {
                dst.copy_from_slice(unread);
            }
        }
        self.base += self.pos as u64;
        self.end -= self.pos;
        self.pos = 0;
        let old = std::mem::replace(&mut self.buf, next);
        // Enough for the batches in flight at a time; beyond that a buffer is freed by its
        // last holder.
        if self.retired.len() < MAX_RETIRED {
            self.retired.push(old);
        }
    }
}

/// Read buffers a [`Chunks`] source keeps for reuse once their holders are done with them.
const MAX_RETIRED: usize = 64;

impl<R: Read> Source for Chunks<R> {
    #[inline]
    fn fill(&mut self, need: usize) -> Result<usize, ReadError> {
        if self.end - self.pos >= need || self.eof {
            return Ok(self.end - self.pos);
        }
        self.refill(need)
    }

    #[inline]
    fn window(&self) -> &[u8] {
        self.buf.get(self.pos..self.end).unwrap_or(&[])
    }

    #[inline]
    fn skip(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.end);
    }

    #[inline]
    fn take(&mut self, n: usize) -> &[u8] {
        self.take_shared(n).0
    }

    #[inline]
    fn take_shared(&mut self, n: usize) -> (&[u8], Option<Held<'_>>) {
        let start = self.pos;
        self.skip(n);
        let bytes = self.buf.get(start..self.pos).unwrap_or(&[]);
        (bytes, Some((&self.buf, start)))
    }

    fn consumed(&self) -> u64 {
        self.base + self.pos as u64
    }

    fn opened(&mut self) {
        self.opened = true;
    }

    fn finish(&mut self) {
        self.pos = self.end;
        self.eof = true;
    }

    #[inline]
    fn can_stall(&self) -> bool {
        self.watch.is_some()
    }

    fn would_wait(&mut self) -> bool {
        let Some(fd) = &self.watch else {
            return false;
        };
        if self.eof || self.reported {
            return false;
        }
        let mut fds = [rustix::event::PollFd::new(fd, rustix::event::PollFlags::IN)];
        // Readable, at its end (hang-up) or in error: a read would not wait. A poll that fails
        // says nothing: read as usual.
        let ready = match rustix::event::poll(&mut fds, Some(&rustix::event::Timespec::default())) {
            Ok(n) => n > 0,
            Err(_) => true,
        };
        self.reported = !ready;
        !ready
    }
}

/// Bytes already in memory.
#[derive(Debug)]
pub struct Bytes<B> {
    bytes: B,
    pos: usize,
}

impl<B: AsRef<[u8]>> Bytes<B> {
    /// Read `bytes` as a file.
    pub fn new(bytes: B) -> Self {
        Bytes { bytes, pos: 0 }
    }
}

impl<B: AsRef<[u8]>> Source for Bytes<B> {
    #[inline]
    fn fill(&mut self, _need: usize) -> Result<usize, ReadError> {
        Ok(self.bytes.as_ref().len() - self.pos)
    }

    #[inline]
    fn window(&self) -> &[u8] {
        self.bytes.as_ref().get(self.pos..).unwrap_or(&[])
    }

    #[inline]
    fn skip(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.bytes.as_ref().len());
    }

    #[inline]
    fn take(&mut self, n: usize) -> &[u8] {
        let start = self.pos;
        self.skip(n);
        self.bytes.as_ref().get(start..self.pos).unwrap_or(&[])
    }

    fn consumed(&self) -> u64 {
        self.pos as u64
    }

    fn finish(&mut self) {
        self.pos = self.bytes.as_ref().len();
    }
}

/// Default window of a [`Mapped`] source. The window, not the file, is what the process
/// holds mapped (and what counts in its resident set once touched), so a 2 GB capture costs
/// 8 MiB of address space and RSS, not 2 GB; one `mmap`/`munmap` pair per 8 MiB is ~24 pairs
/// for a 196 MB file.
pub const WINDOW: usize = 8 << 20;

/// A regular file mapped read-only into memory, one window at a time: packets are handed out
/// as slices of the map, nothing is copied. Before each new window the file's size is checked
/// again, so a file that grows while it is read is read on (as with `read()`), and one cut
/// short before the reader gets there ends with the same truncation error as with `read()`.
/// See [`mapped`] for what a file cut short *inside* the window being read does.
#[derive(Debug)]
pub struct Mapped {
    file: File,
    map: Option<Mmap>,
    /// File offset of the map's first byte.
    base: u64,
    /// Read position in the map.
    pos: usize,
    window: usize,
    done: bool,
}

impl Mapped {
    /// Read `file` (a regular file) through windows of `window` bytes (at least one page).
    pub fn new(file: File, window: usize) -> Self {
        Mapped {
            file,
            map: None,
            base: 0,
            pos: 0,
            window: window.max(4096),
            done: false,
        }
    }

    #[inline]
    fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }

    #[inline]
    fn avail(&self) -> usize {
        self.bytes().len() - self.pos
    }

    /// [`Source::fill`] past the end of the window: map the next one from the read position.
    #[cold]
    #[inline(never)]
    fn remap(&mut self, need: usize) -> Result<usize, ReadError> {
        let have = self.avail();
        let at = self.base + self.pos as u64;
        let err = |e: std::io::Error| bad(at, format!("error reading dump file: {e}"));
        let size = self.file.metadata().map_err(err)?.len();
        let rest = usize::try_from(size.saturating_sub(at)).unwrap_or(usize::MAX);
        if rest <= have {
            // Nothing more in the file (or it shrank under the current window).
            return Ok(have);
        }
        let len = rest.min(need.max(self.window));
        // Unmap the old window before mapping the next one (and stay consistent, with no
        // window, if that fails).
        self.map = None;
        self.base = at;
        self.pos = 0;
        self.map = Some(mapped::map_read_only(&self.file, at, len).map_err(err)?);
        Ok(self.avail())
    }
}

impl Source for Mapped {
    #[inline]
    fn fill(&mut self, need: usize) -> Result<usize, ReadError> {
        let have = self.avail();
        if have >= need || self.done {
            return Ok(have);
        }
        self.remap(need)
    }

    #[inline]
    fn window(&self) -> &[u8] {
        self.bytes().get(self.pos..).unwrap_or(&[])
    }

    #[inline]
    fn skip(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.bytes().len());
    }

    #[inline]
    fn take(&mut self, n: usize) -> &[u8] {
        let start = self.pos;
        self.skip(n);
        self.bytes().get(start..self.pos).unwrap_or(&[])
    }

    fn consumed(&self) -> u64 {
        self.base + self.pos as u64
    }

    fn finish(&mut self) {
        self.base += self.pos as u64;
        self.pos = 0;
        self.map = None;
        self.done = true;
    }
}
