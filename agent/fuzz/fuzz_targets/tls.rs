//! TLS ClientHello parser on arbitrary client streams; every prefix must agree with the whole.
#![no_main]
use crossline_agent::l7::{tls, Parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let whole = tls::parse_client_hello(data);
    if let Parse::Found(_) = &whole {
        // Once found, appending bytes must not change the answer.
        let mut longer = data.to_vec();
        longer.extend_from_slice(&[0x17, 0x03, 0x03]);
        assert_eq!(tls::parse_client_hello(&longer), whole);
    }
});
