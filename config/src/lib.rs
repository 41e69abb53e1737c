//! crossline-config: the registry of filed transfer scenarios, the agent and collector
//! configuration, and the event types both sides share.
//!
//! Files are read in two stages: raw serde structures with `deny_unknown_fields`, then validated
//! types that cannot hold a bad state. Every problem in a file is reported in one pass as
//! `FILE:LINE:COLUMN: message`.
#![forbid(unsafe_code)]

pub mod agent;
pub mod checks;
pub mod event;
pub mod registry;
pub mod time;

pub use agent::AgentConfig;
pub use registry::Registry;
