//! crossline-agent: capture, decode, flows, L7 metadata, classification against the registry of
//! filed transfer scenarios, detectors, and the sinks that write or stream the events.
#![deny(unsafe_code)]

pub mod analysis;
pub mod capture;
pub mod classify;
pub mod decode;
pub mod detect;
pub mod dns_cache;
pub mod flow;
pub mod l7;
pub mod metrics;
pub mod pipeline;
pub mod preflight;
pub mod privilege;
pub mod report;
pub mod session;
pub mod sink;
pub mod stats;
pub mod taps;
pub mod text;
pub mod threads;
pub mod uplink;
pub mod worker;
