//! DNS answer parser, over UDP payloads and DNS-over-TCP streams.
#![no_main]
use crossline_agent::l7::dns;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut n = 0usize;
    let _ = dns::parse_answers(data, &mut |name, _, _| {
        assert!(!name.is_empty() && name.len() <= 255);
        n += 1;
    });
    for msg in dns::split_tcp_messages(data) {
        let _ = dns::parse_answers(msg, &mut |_, _, _| {});
    }
});
