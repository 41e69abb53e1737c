//! HyperLogLog distinct counter: the shared implementation of [`crossline_config::sketch`]
//! (p = 14, about 0.8% standard error), so the collector merges exactly what the agent counts.

pub use crossline_config::sketch::{HyperLogLog, P};
