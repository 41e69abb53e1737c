//! crossline-config: the registry of filed transfer scenarios, the agent and collector
//! configuration, and the event types both sides share.
//!
//! Files are read in two stages: raw serde structures with `deny_unknown_fields`, then validated
//! types that cannot hold a bad state. Every problem in a file is reported in one pass as
//! `FILE:LINE:COLUMN: message`.
#![forbid(unsafe_code)]

pub mod agent;
pub mod bytes;
pub mod check;
pub mod checks;
pub mod cli_docs;
pub mod collector;
pub mod diag;
pub mod event;
pub mod exit;
mod fields;
pub mod holidays;
pub mod limits;
pub mod load;
pub mod logging;
pub mod parse;
pub mod raw;
pub mod read;
pub mod registry;
pub mod sketch;
pub mod time;

pub use agent::AgentConfig;
pub use check::{check_command, today_beijing};
pub use diag::{ConfigError, Diagnostic};
pub use load::{load_agent_config, load_registry};
pub use parse::{parse_byte_size, parse_duration};
pub use registry::Registry;
