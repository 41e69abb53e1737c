//! The one way configuration files are read: `agent.toml`, the registry, the collector config,
//! PEM files, a GeoIP database.
//!
//! A configuration path that names a FIFO, a device such as `/dev/zero`, a socket or a directory
//! is refused by name before anything is read, and a file larger than [`MAX_CONFIG_FILE_BYTES`]
//! is refused instead of being read into memory. The type is checked on the path first (so a FIFO
//! is never opened), then again on the open handle (so a file swapped between the two checks is
//! still caught); the open uses `O_NONBLOCK`, which cannot block on a FIFO either. The read itself
//! is bounded with `take(limit + 1)`, so a file that grows while it is read is refused too.

use std::fs::{File, Metadata, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Largest configuration file read: 64 MiB. Registries of tens of thousands of scenarios are a
/// few MiB; anything past this is a mistake (or `/dev/zero`), not a configuration.
pub const MAX_CONFIG_FILE_BYTES: u64 = 64 << 20;

/// Why a configuration file was not read. The message names the file.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The path is not a regular file.
    #[error("{path}: is {kind}, expected a regular file")]
    NotRegular {
        /// The path as given.
        path: PathBuf,
        /// What it is instead ("a directory", "a FIFO (named pipe)", ...).
        kind: &'static str,
    },
    /// The file is over the size limit.
    #[error("{path}: {size} bytes is over the limit of {limit} bytes ({limit_mib} MiB) for a configuration file", limit_mib = limit >> 20)]
    TooLarge {
        /// The path as given.
        path: PathBuf,
        /// Its size (at least `limit + 1` when it grew while being read).
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The file is not UTF-8 text.
    #[error("{path}: not UTF-8 text at byte {offset}, expected a text file")]
    NotText {
        /// The path as given.
        path: PathBuf,
        /// Offset of the first invalid byte.
        offset: usize,
    },
    /// The OS refused (missing file, permissions, ...).
    #[error("{path}: {source}")]
    Io {
        /// The path as given.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

impl ReadError {
    /// The OS error, if that is what this is (e.g. to tell "not found" apart).
    pub fn io_kind(&self) -> Option<std::io::ErrorKind> {
        match self {
            ReadError::Io { source, .. } => Some(source.kind()),
            _ => None,
        }
    }

    /// What is wrong, without the path (for messages that name the file themselves).
    pub fn reason(&self) -> String {
        match self {
            ReadError::NotRegular { kind, .. } => format!("is {kind}, expected a regular file"),
            ReadError::TooLarge { size, limit, .. } => format!(
                "{size} bytes is over the limit of {limit} bytes ({} MiB) for a configuration file",
                limit >> 20
            ),
            ReadError::NotText { offset, .. } => {
                format!("not UTF-8 text at byte {offset}, expected a text file")
            }
            ReadError::Io { source, .. } => source.to_string(),
        }
    }

    /// As an I/O error (the OS error itself, or [`ReadError::reason`] as `InvalidData`).
    pub fn into_io_error(self) -> std::io::Error {
        match self {
            ReadError::Io { source, .. } => source,
            other => std::io::Error::new(std::io::ErrorKind::InvalidData, other.reason()),
        }
    }
}

fn kind_of(meta: &Metadata) -> Option<&'static str> {
    let t = meta.file_type();
    if t.is_file() {
        None
    } else if t.is_dir() {
        Some("a directory")
    } else if t.is_fifo() {
        Some("a FIFO (named pipe)")
    } else if t.is_char_device() {
        Some("a character device")
    } else if t.is_block_device() {
        Some("a block device")
    } else if t.is_socket() {
        Some("a socket")
    } else {
        Some("not a regular file")
    }
}

/// Read a configuration file of at most [`MAX_CONFIG_FILE_BYTES`].
pub fn read_config_file(path: &Path) -> Result<Vec<u8>, ReadError> {
    read_limited(path, MAX_CONFIG_FILE_BYTES)
}

/// Read a configuration text file (UTF-8) of at most [`MAX_CONFIG_FILE_BYTES`].
pub fn read_config_text(path: &Path) -> Result<String, ReadError> {
    let bytes = read_config_file(path)?;
    String::from_utf8(bytes).map_err(|e| ReadError::NotText {
        path: path.to_path_buf(),
        offset: e.utf8_error().valid_up_to(),
    })
}

/// Read a regular file of at most `limit` bytes.
pub fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let io = |source: std::io::Error| ReadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let check = |meta: &Metadata| -> Result<(), ReadError> {
        if let Some(kind) = kind_of(meta) {
            return Err(ReadError::NotRegular {
                path: path.to_path_buf(),
                kind,
            });
        }
        if meta.len() > limit {
            return Err(ReadError::TooLarge {
                path: path.to_path_buf(),
                size: meta.len(),
                limit,
            });
        }
        Ok(())
    };
    // On the path first (follows symlinks): a FIFO or device is never opened.
    check(&std::fs::metadata(path).map_err(io)?)?;
    let file: File = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(io)?;
    // Then on what was opened, in case the path changed in between.
    let meta = file.metadata().map_err(io)?;
    check(&meta)?;
    let mut out = Vec::with_capacity(meta.len() as usize);
    file.take(limit + 1).read_to_end(&mut out).map_err(io)?;
    if out.len() as u64 > limit {
        return Err(ReadError::TooLarge {
            path: path.to_path_buf(),
            size: out.len() as u64,
            limit,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// A fresh temporary directory, removed when dropped (also when the test fails).
    fn tmp(name: &str) -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix(&format!("crossline-read-{name}-"))
            .tempdir()
            .expect("temporary directory")
    }

    #[test]
    fn a_regular_file_is_read_whole() {
        let scratch = tmp("ok");
        let dir = scratch.path();
        let p = dir.join("a.toml");
        std::fs::write(&p, "gateway = \"gw\"\n").expect("write");
        assert_eq!(read_config_text(&p).expect("read"), "gateway = \"gw\"\n");
    }

    #[test]
    fn devices_directories_and_fifos_are_refused_by_name_without_blocking() {
        let scratch = tmp("kinds");
        let dir = scratch.path();
        let started = Instant::now();
        let e = read_config_file(Path::new("/dev/zero")).expect_err("/dev/zero");
        assert!(
            e.to_string()
                .contains("/dev/zero: is a character device, expected a regular file"),
            "{e}"
        );
        let e = read_config_file(dir).expect_err("directory");
        assert!(e.to_string().contains("is a directory"), "{e}");
        let fifo = dir.join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .is_ok_and(|s| s.success());
        assert!(made, "mkfifo failed");
        let e = read_config_file(&fifo).expect_err("fifo");
        assert!(e.to_string().contains("is a FIFO (named pipe)"), "{e}");
        // A symlink to a device is judged by what it points to.
        let link = dir.join("link");
        std::os::unix::fs::symlink("/dev/zero", &link).expect("symlink");
        let e = read_config_file(&link).expect_err("link to /dev/zero");
        assert!(e.to_string().contains("character device"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(2), "slow refusal");
    }

    #[test]
    fn an_oversized_file_is_refused_with_its_size_and_the_limit() {
        let scratch = tmp("big");
        let dir = scratch.path();
        let p = dir.join("registry.toml");
        // Sparse: takes no disk space.
        let f = File::create(&p).expect("create");
        f.set_len(MAX_CONFIG_FILE_BYTES + 1).expect("set_len");
        drop(f);
        let started = Instant::now();
        let e = read_config_file(&p).expect_err("too large");
        assert!(
            e.to_string().contains(&format!(
                "{} bytes is over the limit of {MAX_CONFIG_FILE_BYTES} bytes (64 MiB)",
                MAX_CONFIG_FILE_BYTES + 1
            )),
            "{e}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "read it anyway?"
        );
        // With a small limit the bounded read is what refuses.
        std::fs::write(&p, "0123456789").expect("write");
        assert!(matches!(
            read_limited(&p, 9),
            Err(ReadError::TooLarge { size: 10, .. })
        ));
        assert_eq!(read_limited(&p, 10).expect("fits").len(), 10);
        let e = read_config_file(&dir.join("missing")).expect_err("missing");
        assert_eq!(e.io_kind(), Some(std::io::ErrorKind::NotFound));
    }

    #[test]
    fn not_utf8_is_named() {
        let scratch = tmp("utf8");
        let dir = scratch.path();
        let p = dir.join("x.toml");
        std::fs::write(&p, b"ab\xffcd").expect("write");
        let e = read_config_text(&p).expect_err("not text");
        assert!(e.to_string().contains("not UTF-8 text at byte 2"), "{e}");
    }
}
