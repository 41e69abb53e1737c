//! Where the uplink sends (a collector's address, parsed once from `[uplink] collector`) and how
//! long it waits after a failure (exponential backoff with full jitter).

use super::UplinkError;
use rustls::pki_types::ServerName;
use std::time::Duration;

/// Where batches go: parsed from `[uplink] collector`.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Host to connect to.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Request path (`/v1/events` unless the URL names another).
    pub path: String,
    /// `Host` header value.
    pub authority: String,
    /// Name checked against the collector's certificate.
    pub server_name: ServerName<'static>,
}

impl Endpoint {
    /// Parse `https://host:port[/path]`; `server_name` overrides the certificate name.
    pub fn parse(url: &str, server_name: Option<&str>) -> Result<Endpoint, UplinkError> {
        let bad = |message: &str| UplinkError::Url {
            url: url.to_string(),
            message: message.to_string(),
        };
        let rest = url
            .strip_prefix("https://")
            .ok_or_else(|| bad("expected https://host:port"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, p) = v6
                .split_once(']')
                .ok_or_else(|| bad("unclosed [ in IPv6 address"))?;
            (h, p.strip_prefix(':').unwrap_or(""))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, p),
                None => (authority, ""),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = if port.is_empty() {
            443
        } else {
            port.parse::<u16>()
                .map_err(|_| bad("port is not a number 1-65535"))?
        };
        let path = if path.is_empty() || path == "/" {
            "/v1/events".to_string()
        } else {
            path.to_string()
        };
        let name = server_name.unwrap_or(host).to_string();
        let server_name =
            ServerName::try_from(name).map_err(|e| bad(&format!("invalid server name: {e}")))?;
        Ok(Endpoint {
            host: host.to_string(),
            port,
            path,
            authority: authority.to_string(),
            server_name,
        })
    }
}

/// Exponential backoff with full jitter, bounded below by `min` and above by `max`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    /// A backoff that starts at `min` and grows to at most `max`.
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max: max.max(min),
            attempt: 0,
        }
    }

    /// Delay before the next attempt: uniform in `[min, min(max, min * 2^failures)]`.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self
            .min
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let span = ceiling.saturating_sub(self.min).as_millis() as u64;
        let jitter = if span == 0 {
            0
        } else {
            rand::random::<u64>() % (span + 1)
        };
        self.min + Duration::from_millis(jitter)
    }

    /// Forget past failures (after a success).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}
