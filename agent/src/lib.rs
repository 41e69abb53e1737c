//! crossline-agent: capture, decode, flows, L7 metadata, classification against the registry of
//! filed transfer scenarios, detectors, and the sinks that write or stream the events.
#![deny(unsafe_code)]

pub mod analysis;
