//! Banner / magic-byte protocol detection for every direction, transport and a few ports.
#![no_main]
use crossline_agent::l7::banner;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, payload)) = data.split_first() else {
        return;
    };
    let proto = [6u8, 17, 50, 1][usize::from(selector & 3)];
    let port = [21u16, 25, 500, 4500, 3389, 1194, 443, 5060][usize::from((selector >> 2) & 7)];
    let _ = banner::detect(payload, selector & 0x20 != 0, proto, port);
});
