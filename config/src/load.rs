//! The registry and agent loaders under their former path: [`crate::registry::load`] and
//! [`crate::agent::load`].

pub use crate::agent::load::{
    load_agent_config, resolve_path, DEFAULT_BATCH_BYTES, DEFAULT_STATE_INTERVAL,
    DEVELOPMENT_PI_KEY,
};
pub use crate::registry::load::{
    load_registry, load_registry_with, parse_registry, parse_threads, set_parse_threads,
    EXPIRY_WARNING_DAYS,
};
