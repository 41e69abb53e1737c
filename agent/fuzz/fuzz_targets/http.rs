//! HTTP/1.x request head parser.
#![no_main]
use crossline_agent::l7::{http, Parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Parse::Found(req) = http::parse_request(data) {
        if let Some(host) = req.host {
            assert!(!host.is_empty() && host.len() <= 255);
            assert!(!host
                .bytes()
                .any(|b| b.is_ascii_uppercase() || b.is_ascii_control()));
        }
    }
});
