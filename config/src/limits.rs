//! Limits shared by the agent and the collector.

/// Largest batch body (uncompressed newline-delimited JSON) an agent ever sends in one
/// `POST /v1/events`. The agent seals a batch before it would grow past this, and a collector
/// `max_body` below it would refuse batches an agent can legitimately build.
pub const MAX_BATCH_BODY: usize = 8 * 1024 * 1024;
