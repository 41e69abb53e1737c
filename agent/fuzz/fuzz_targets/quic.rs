//! QUIC Initial handling. Input: a 2-byte length, a datagram of that length (header parsing,
//! header protection, decryption failure paths), then decrypted frames (frame walker, CRYPTO
//! reassembly, ClientHello parser) — decryption is skipped for those, as smoltcp skips
//! checksums under cfg(fuzzing).
#![no_main]
use crossline_agent::l7::quic::{self, QuicInitial};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((len, body)) = data.split_first_chunk::<2>() else {
        return;
    };
    let (datagram, frames) = body.split_at(usize::from(u16::from_be_bytes(*len)).min(body.len()));
    let _ = quic::looks_like_initial(datagram);
    let mut q = QuicInitial::new();
    let _ = q.on_client_datagram(datagram);
    let _ = q.on_client_datagram(datagram);
    let mut q = QuicInitial::new();
    let _ = q.on_decrypted_frames(quic::VERSION_1, frames);
});
