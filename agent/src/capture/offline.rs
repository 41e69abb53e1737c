//! Offline capture: pcap and pcapng files read in order through libpcap.
//!
//! Every file is opened up front ([`OfflineFiles::open`]) so an unreadable file is reported
//! before any work starts. A file that ends in the middle of a record is read up to the cut;
//! the error is recorded in [`OfflineFiles::file_errors`] and reading continues with the next
//! file.

use super::{ts_micros, CaptureError, PacketSource, RawPacket, Status};
use pcap::{Capture, Offline};
use std::path::{Path, PathBuf};

/// A sequence of capture files read as one stream.
pub struct OfflineFiles {
    files: Vec<(PathBuf, Option<Capture<Offline>>, u64)>,
    current: usize,
    /// Files that could not be read completely, as `"FILE: message"`.
    pub file_errors: Vec<String>,
    /// Approximate bytes of the files consumed so far (record headers + captured bytes).
    pub bytes_read: u64,
    /// Sum of the file sizes.
    pub total_bytes: u64,
    record_overhead: u64,
}

impl std::fmt::Debug for OfflineFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OfflineFiles")
            .field("files", &self.files.len())
            .field("current", &self.current)
            .finish_non_exhaustive()
    }
}

impl OfflineFiles {
    /// Open every file; the first one that cannot be opened is an error naming it. With a
    /// `filter` (`capture.filter`), the BPF program is compiled for each file's link type and
    /// applied by libpcap, as on a live handle; a filter that does not compile is an error
    /// naming the filter and the file.
    pub fn open(paths: &[PathBuf], filter: Option<&str>) -> Result<Self, CaptureError> {
        let mut files = Vec::with_capacity(paths.len());
        let mut total = 0;
        for p in paths {
            let mut cap = open_one(p)?;
            if let Some(f) = filter {
                cap.filter(f, true).map_err(|e| CaptureError::Filter {
                    filter: f.to_string(),
                    source_name: p.display().to_string(),
                    message: e.to_string(),
                })?;
            }
            let size = std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
            total += size;
            files.push((p.clone(), Some(cap), size));
        }
        Ok(OfflineFiles {
            files,
            current: 0,
            file_errors: Vec::new(),
            bytes_read: 0,
            total_bytes: total,
            record_overhead: 16,
        })
    }

    /// Index of the file being read.
    pub fn current_file(&self) -> usize {
        self.current
    }
}

fn open_one(p: &Path) -> Result<Capture<Offline>, CaptureError> {
    let err = |message: String| CaptureError::Open {
        path: p.display().to_string(),
        message,
    };
    // libpcap's message for a missing file is fine, but check readability first for a clearer
    // one (and to refuse directories).
    match std::fs::metadata(p) {
        Ok(m) if m.is_dir() => return Err(err("is a directory".into())),
        Ok(_) => {}
        Err(e) => return Err(err(e.to_string())),
    }
    Capture::from_file(p).map_err(|e| err(e.to_string()))
}

impl PacketSource for OfflineFiles {
    fn read(
        &mut self,
        max: usize,
        f: &mut dyn FnMut(RawPacket<'_>),
    ) -> Result<Status, CaptureError> {
        let mut n = 0;
        while n < max {
            let Some(entry) = self.files.get_mut(self.current) else {
                break;
            };
            let Some(c) = entry.1.as_mut() else {
                self.current += 1;
                continue;
            };
            let linktype = c.get_datalink().0;
            match c.next_packet() {
                Ok(p) => {
                    self.bytes_read += self.record_overhead + p.data.len() as u64;
                    f(raw(&p, linktype));
                    n += 1;
                }
                Err(e) => {
                    if e != pcap::Error::NoMorePackets {
                        self.file_errors.push(format!("{}: {e}", entry.0.display()));
                    }
                    entry.1 = None;
                    self.current += 1;
                    self.bytes_read = self.files.iter().take(self.current).map(|f| f.2).sum();
                }
            }
        }
        Ok(if n > 0 {
            Status::Packets(n)
        } else {
            Status::End
        })
    }
}

/// Convert a pcap packet header into a [`RawPacket`].
pub fn raw<'a>(p: &pcap::Packet<'a>, linktype: i32) -> RawPacket<'a> {
    RawPacket {
        ts_micros: ts_micros(p.header.ts.tv_sec, p.header.ts.tv_usec),
        orig_len: p.header.len,
        data: p.data,
        linktype,
        shared: None,
    }
}
