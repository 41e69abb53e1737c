//! Logs of both binaries: one line per event on stderr (the journal under systemd), with a UTC
//! timestamp, a level and a target naming the subsystem (`crossline_agent::uplink::client`,
//! `crossline_collector::ingest`, ...), as text or as JSON objects for log shippers.
//!
//! The level is `info` by default, `-v` debug, `-vv` trace, `-q` warnings, `-qq` errors only.
//! `RUST_LOG` takes `tracing` filter directives on top of it, e.g.
//! `RUST_LOG=crossline_agent::uplink=debug` or `RUST_LOG=warn,crossline_collector::ingest=info`.

use clap::{ArgAction, Args, ValueEnum};
use tracing_subscriber::filter::{EnvFilter, LevelFilter};

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// `2026-03-02T09:14:07.118Z  INFO crossline_agent::uplink::client: message`.
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `message` and the fields.
    Json,
}

/// The logging options shared by both binaries (global: accepted before or after the
/// subcommand).
#[derive(Debug, Clone, Default, Args)]
pub struct LogArgs {
    /// More detail in the logs: -v debug, -vv trace (RUST_LOG filters on top of it).
    #[arg(short, long, action = ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Less: -q warnings and errors only, -qq errors only.
    #[arg(short, long, action = ArgAction::Count, global = true, conflicts_with = "verbose")]
    pub quiet: u8,
    /// Log line format: text or json (one object per line, for log shippers).
    #[arg(long, value_enum, default_value_t, global = true)]
    pub log_format: LogFormat,
}

impl LogArgs {
    /// The level `-v`/`-q` ask for.
    pub fn level(&self) -> LevelFilter {
        match (self.verbose, self.quiet) {
            (0, 0) => LevelFilter::INFO,
            (1, _) => LevelFilter::DEBUG,
            (v, _) if v >= 2 => LevelFilter::TRACE,
            (_, 1) => LevelFilter::WARN,
            _ => LevelFilter::ERROR,
        }
    }

    /// Install the global subscriber. A `RUST_LOG` that does not parse is reported (and
    /// ignored) rather than silently dropping logs.
    pub fn init(&self) {
        let rust_log = std::env::var("RUST_LOG").unwrap_or_default();
        let (filter, bad) = filter(self.level(), &rust_log);
        let builder = tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_env_filter(filter)
            .with_target(true);
        let installed = match self.log_format {
            LogFormat::Text => builder.try_init(),
            LogFormat::Json => builder
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(false)
                .try_init(),
        };
        if let Err(e) = installed {
            eprintln!("cannot install the logger: {e}");
        }
        if let Some(e) = bad {
            tracing::warn!("RUST_LOG={rust_log:?} ignored: {e}; expected filter directives such as \"info\" or \"crossline_agent::uplink=debug\"");
        }
    }
}

/// The filter for `level` plus the `RUST_LOG` directives (ignored, with the reason, when they
/// do not parse). A bare level in `RUST_LOG` (`RUST_LOG=debug`) replaces `level`.
pub fn filter(level: LevelFilter, rust_log: &str) -> (EnvFilter, Option<String>) {
    let only_level = || {
        EnvFilter::builder()
            .with_default_directive(level.into())
            .parse_lossy("")
    };
    if rust_log.trim().is_empty() {
        return (only_level(), None);
    }
    match EnvFilter::builder().parse(rust_log) {
        Ok(f) => {
            let has_level = rust_log
                .split(',')
                .any(|d| d.trim().parse::<LevelFilter>().is_ok());
            if has_level {
                (f, None)
            } else {
                (f.add_directive(level.into()), None)
            }
        }
        Err(e) => (only_level(), Some(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbosity_maps_to_levels() {
        let l = |verbose, quiet| {
            LogArgs {
                verbose,
                quiet,
                log_format: LogFormat::Text,
            }
            .level()
        };
        assert_eq!(l(0, 0), LevelFilter::INFO);
        assert_eq!(l(1, 0), LevelFilter::DEBUG);
        assert_eq!(l(3, 0), LevelFilter::TRACE);
        assert_eq!(l(0, 1), LevelFilter::WARN);
        assert_eq!(l(0, 2), LevelFilter::ERROR);
    }

    #[test]
    fn rust_log_directives_apply_and_bad_ones_are_reported() {
        let (f, bad) = filter(LevelFilter::WARN, "crossline_agent::uplink=debug");
        assert!(bad.is_none());
        let text = f.to_string();
        assert!(
            text.contains("crossline_agent::uplink=debug") && text.contains("warn"),
            "{text}"
        );
        let (_, bad) = filter(LevelFilter::INFO, "crossline_agent=debug[");
        assert!(bad.is_some_and(|e| !e.is_empty()));
    }
}
