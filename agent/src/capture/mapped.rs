//! The agent's second `unsafe` shim (the first is [`super::fanout`]): map part of a capture
//! file into memory, read-only, for the mapped file reader (`analyze --reader mmap`,
//! [`super::file::Mapped`]).
//!
//! **A file changed by another process while it is mapped.** The bytes of a mapping are the
//! file's page cache, not a private copy, so what another process does to the file shows
//! through:
//!
//! - *truncated* below the part being read: touching a mapped page that is now past the end
//!   of the file raises `SIGBUS`, and the agent dies of it (exit by signal, the events
//!   written so far stay written). It cannot read a wrong byte that way, and it cannot go on
//!   either.
//! - *rewritten in place*: the packets read afterwards carry the new bytes. The parser reads
//!   each header field once into a local and checks every length against the window's length
//!   (which the other process cannot change), so this gives garbage packets or a format error,
//!   as `read()` of a file being rewritten would, never a read outside the window.
//! - *appended to*: read on, as with `read()`: the size is checked again before each window.
//!
//! How the reader keeps that small, and why it is acceptable:
//!
//! - only regular files are mapped; pipes, FIFOs, character devices, stdin from a pipe, empty
//!   files and files the kernel refuses to map are read with `read()` (the
//!   [`super::file::Chunks`] source), which sees a truncation as a short file;
//! - only one window of the file (8 MiB, [`super::file::WINDOW`]) is mapped at a time, and the
//!   file's size is checked before each window, so a file cut short before the reader reaches
//!   the cut ends with the same "truncated dump file" error as with `read()`; only a cut inside
//!   the window being read is a `SIGBUS`;
//! - `analyze` reads finished capture files. An operator who analyses a file that another
//!   process may still cut short (a rotating capture, say) uses `--reader native`, which
//!   reads with `read()`. Catching `SIGBUS` instead would need a signal handler that jumps
//!   out of the parser: far more unsafe code than the condition deserves.
#![allow(unsafe_code)]

use memmap2::{Advice, Mmap, MmapOptions};
use std::fs::File;
use std::io;

/// Map `len` bytes of `file` from byte `offset` (any offset: the page alignment is done
/// here), read-only and advised sequential. Refuses anything but a regular file and a range
/// past the file's end.
pub fn map_read_only(file: &File, offset: u64, len: usize) -> io::Result<Mmap> {
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file, cannot be mapped",
        ));
    }
    let end = offset.checked_add(len as u64);
    if len == 0 || end.is_none_or(|e| e > meta.len()) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "bytes {offset}..+{len} are not inside the file ({} bytes)",
                meta.len()
            ),
        ));
    }
    // SAFETY: `Mmap::map` is unsafe because the returned bytes are the file's pages: another
    // process that rewrites the file changes them under the `&[u8]` the map derefs to, and one
    // that truncates it makes touching the pages past the new end raise SIGBUS. We map only
    // a regular file, only a range inside its current size, read-only and shared (no write
    // through this map can happen); the parser treats the bytes as untrusted and bounds every
    // access by the map's length, which nobody can change. What a concurrent truncation or
    // rewrite does then (SIGBUS ends the process; garbage bytes give garbage packets or a
    // format error), and why that is accepted for `analyze` of finished captures, is in the
    // module documentation.
    // `populate` maps the window's pages in one call instead of one page fault per 4 KiB
    // (the reader then beats `read()` by about 6 % on the benchmark cut, instead of trailing).
    let map = unsafe {
        MmapOptions::new()
            .offset(offset)
            .len(len)
            .populate()
            .map(file)?
    };
    // Advice changes speed, never the bytes: a kernel that refuses it is ignored.
    let _ = map.advise(Advice::Sequential);
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn maps_a_range_at_any_offset_and_refuses_what_is_not_in_the_file() {
        let mut f = tempfile::tempfile().expect("temporary file");
        let bytes: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        f.write_all(&bytes).expect("write");
        let m = map_read_only(&f, 5_000, 9_000).expect("map");
        assert_eq!(&m[..], &bytes[5_000..14_000]);
        let m = map_read_only(&f, 0, 20_000).expect("map");
        assert_eq!(&m[..], &bytes[..]);
        assert!(map_read_only(&f, 19_999, 2).is_err());
        assert!(map_read_only(&f, 0, 0).is_err());
        assert!(map_read_only(&f, u64::MAX, 1).is_err());
    }

    #[test]
    fn refuses_a_pipe() {
        let (r, _w) = std::io::pipe().expect("pipe");
        let f = File::from(std::os::fd::OwnedFd::from(r));
        let e = map_read_only(&f, 0, 1).expect_err("a pipe is not mapped");
        assert!(e.to_string().contains("not a regular file"), "{e}");
    }
}
