//! Exit statuses of `crossline-agent` and `crossline-collector` (the BSD `sysexits.h` values
//! where one fits), and the reading of command-line errors.

/// Success.
pub const OK: u8 = 0;
/// A runtime failure: a capture file or interface that cannot be read, a port that cannot be
/// bound, a store that cannot be opened, an output that cannot be written.
pub const RUNTIME: u8 = 1;
/// `crossline-agent analyze`: the events were written but did not all reach the collector.
pub const UPLINK_INCOMPLETE: u8 = 3;
/// `EX_USAGE`: the command line is wrong (unknown option, missing or malformed argument).
pub const USAGE: u8 = 64;
/// `EX_CONFIG`: a configuration file (or the registry it names) is unreadable or invalid, or
/// names something on this machine that cannot work (`check`'s preflight).
pub const CONFIG: u8 = 78;

/// The exit statuses, for `--help` and the man pages.
pub const EXIT_STATUS_HELP: &str = "Exit status:\n  \
     0   success\n  \
     1   runtime failure (a file, interface, port or store that cannot be used)\n  \
     3   analyze: events written but not all acknowledged by the collector\n  \
     64  usage error (EX_USAGE): wrong command line\n  \
     78  configuration error (EX_CONFIG): every problem of every file is printed";

/// Print a command-line parse error (or the help / version text it carries) and return the
/// exit status: [`USAGE`] for an error, [`OK`] for `--help` and `--version`.
pub fn command_line_error(e: &clap::Error) -> u8 {
    // Printing can only fail on a closed stdout/stderr; the status says what happened anyway.
    let _ = e.print();
    if e.use_stderr() {
        USAGE
    } else {
        OK
    }
}

/// The number of threads the config loaders may use, from the text of the
/// `CROSSLINE_CONFIG_THREADS` environment variable (read by the binaries): a positive number,
/// else `None` (the default: the number of cores, at most 8).
pub fn config_threads(value: Option<&str>) -> Option<usize> {
    value
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| *n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_setting() {
        assert_eq!(config_threads(Some(" 1 ")), Some(1));
        assert_eq!(config_threads(Some("0")), None);
        assert_eq!(config_threads(Some("many")), None);
        assert_eq!(config_threads(None), None);
    }
}
