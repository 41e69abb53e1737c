//! TLS ClientHello parser: server name (SNI), ALPN, ECH presence and the JA4 fingerprint.
//!
//! [`parse_client_hello`] takes the client's TCP byte stream from its first byte (the caller
//! concatenates segments in order). It walks TLS records, joins handshake fragments that span
//! records, and decodes the ClientHello once the whole handshake message is present. It answers
//! [`Parse::NeedMore`] until then — in particular until the SNI extension is complete — so an
//! ECH or ALPN extension that comes after the SNI is never missed, and the answer for every
//! longer prefix is the same. QUIC ([`super::quic`]) feeds its reassembled CRYPTO stream to
//! [`parse_handshake`], the same decoder.
//!
//! Bounds: a handshake message larger than [`MAX_HANDSHAKE`] bytes, a record that is not a
//! handshake record, or any length field that does not fit its container gives
//! [`Parse::NotThisProtocol`]. Joining fragments copies at most [`MAX_HANDSHAKE`] bytes; the
//! common single-record ClientHello is decoded in place.
//!
//! [`build_client_hello`] is test support for traffic generators: it emits a realistic
//! Chrome-like ClientHello record.

use super::ja4::{self, Ja4Input};
use super::{Parse, Reader, U16List};

/// Largest ClientHello handshake message accepted (body plus 4-byte header).
pub const MAX_HANDSHAKE: usize = 64 * 1024;

/// TLS record content type for handshake records.
const CONTENT_HANDSHAKE: u8 = 22;
/// Handshake message type of a ClientHello.
const HANDSHAKE_CLIENT_HELLO: u8 = 1;
/// Largest record fragment allowed by RFC 8446 (2^14) plus the TLS 1.2 expansion allowance.
const MAX_RECORD: usize = (1 << 14) + 2048;
/// Longest DNS host name accepted as an SNI.
const MAX_HOST_NAME: usize = 255;
/// At most this many ALPN protocol names are kept.
const MAX_ALPN: usize = 16;

const EXT_SERVER_NAME: u16 = 0x0000;
const EXT_SIGNATURE_ALGORITHMS: u16 = 0x000d;
const EXT_ALPN: u16 = 0x0010;
const EXT_SUPPORTED_VERSIONS: u16 = 0x002b;
const EXT_ENCRYPTED_CLIENT_HELLO: u16 = 0xfe0d;

/// What a ClientHello tells about the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHello {
    /// The server name (SNI), lower-cased, when present and a valid host name. With ECH this
    /// is the outer (cover) name.
    pub sni: Option<String>,
    /// Offered ALPN protocol names, in order (printable ASCII ones only, at most 16).
    pub alpn: Vec<String>,
    /// The encrypted_client_hello extension (0xfe0d) is present (real or GREASE ECH).
    pub ech: bool,
    /// JA4 fingerprint (`t13d1516h2_8daaf6152771_e5627efa2ab1` style).
    pub ja4: String,
}

/// Which transport carried the ClientHello (the first character of the JA4 fingerprint).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// TLS over TCP.
    Tcp,
    /// QUIC CRYPTO stream.
    Quic,
}

/// Parses the client's TCP stream from its first byte up to a complete ClientHello.
pub fn parse_client_hello(buf: &[u8]) -> Parse<ClientHello> {
    let mut rest = buf;
    // The first fragment is decoded in place; later ones are appended to `joined`.
    let mut first: &[u8] = &[];
    let mut joined: Vec<u8> = Vec::new();
    let mut records = 0usize;
    loop {
        let Some((header, body)) = rest.split_at_checked(5) else {
            return if record_header_prefix_ok(rest) {
                Parse::NeedMore
            } else {
                Parse::NotThisProtocol
            };
        };
        let mut h = Reader::new(header);
        let (content_type, major, minor, len) = match (h.u8(), h.u8(), h.u8(), h.u16()) {
            (Some(c), Some(ma), Some(mi), Some(l)) => (c, ma, mi, usize::from(l)),
            _ => return Parse::NotThisProtocol,
        };
        if content_type != CONTENT_HANDSHAKE
            || major != 3
            || minor > 4
            || len == 0
            || len > MAX_RECORD
        {
            return Parse::NotThisProtocol;
        }
        records += 1;
        // A record that is still arriving contributes the bytes present so far.
        let (fragment, next, partial) = match body.split_at_checked(len) {
            Some((fragment, next)) => (fragment, next, false),
            None => (body, &[][..], true),
        };
        if records == 1 {
            first = fragment;
        } else {
            if joined.is_empty() {
                joined.extend_from_slice(first);
            }
            let room = (MAX_HANDSHAKE + 4).saturating_sub(joined.len());
            joined.extend_from_slice(fragment.get(..room.min(fragment.len())).unwrap_or(&[]));
        }
        let handshake: &[u8] = if records == 1 { first } else { &joined };
        match handshake_status(handshake) {
            HandshakeStatus::Invalid => return Parse::NotThisProtocol,
            HandshakeStatus::Complete(n) => {
                return match handshake.get(..n) {
                    Some(msg) => parse_handshake(msg, Transport::Tcp),
                    None => Parse::NotThisProtocol,
                }
            }
            HandshakeStatus::Incomplete => {}
        }
        if partial {
            return Parse::NeedMore;
        }
        rest = next;
    }
}

/// Whether a (short) record header prefix could still become a handshake record header.
fn record_header_prefix_ok(prefix: &[u8]) -> bool {
    let mut r = Reader::new(prefix);
    if let Some(content_type) = r.u8() {
        if content_type != CONTENT_HANDSHAKE {
            return false;
        }
    }
    if let Some(major) = r.u8() {
        if major != 3 {
            return false;
        }
    }
    if let Some(minor) = r.u8() {
        if minor > 4 {
            return false;
        }
    }
    true
}

/// Progress of a handshake message given its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HandshakeStatus {
    /// Not a ClientHello, or too large.
    Invalid,
    /// More bytes are needed.
    Incomplete,
    /// The message (header included) is this many bytes long and all of them are present.
    Complete(usize),
}

/// Checks the 4-byte handshake header at the start of `handshake`.
pub(crate) fn handshake_status(handshake: &[u8]) -> HandshakeStatus {
    let mut r = Reader::new(handshake);
    match r.u8() {
        None => return HandshakeStatus::Incomplete,
        Some(HANDSHAKE_CLIENT_HELLO) => {}
        Some(_) => return HandshakeStatus::Invalid,
    }
    let Some(body_len) = r.u24() else {
        return HandshakeStatus::Incomplete;
    };
    let total = body_len as usize + 4;
    // The smallest ClientHello body: version, random, three empty-ish vectors.
    if total > MAX_HANDSHAKE || body_len < 38 {
        return HandshakeStatus::Invalid;
    }
    if handshake.len() >= total {
        HandshakeStatus::Complete(total)
    } else {
        HandshakeStatus::Incomplete
    }
}

/// Decodes one complete ClientHello handshake message (`msg` starts at the handshake type byte
/// and ends exactly at the end of the message).
pub fn parse_handshake(msg: &[u8], transport: Transport) -> Parse<ClientHello> {
    match decode(msg, transport) {
        Some(hello) => Parse::Found(hello),
        None => Parse::NotThisProtocol,
    }
}

fn decode(msg: &[u8], transport: Transport) -> Option<ClientHello> {
    let mut r = Reader::new(msg);
    if r.u8()? != HANDSHAKE_CLIENT_HELLO {
        return None;
    }
    let body_len = r.u24()? as usize;
    let mut r = Reader::new(r.take(body_len)?);
    let legacy_version = r.u16()?;
    if legacy_version >> 8 != 3 {
        return None;
    }
    r.skip(32)?; // random
    let session_id = r.vec_u8()?;
    if session_id.len() > 32 {
        return None;
    }
    let cipher_bytes = r.vec_u16()?;
    if cipher_bytes.is_empty() || cipher_bytes.len() % 2 != 0 {
        return None;
    }
    let ciphers = U16List::from_be_bytes(cipher_bytes);
    let compression = r.vec_u8()?;
    if compression.is_empty() {
        return None;
    }
    let extensions_bytes = if r.is_empty() { &[][..] } else { r.vec_u16()? };

    let mut sni_present = false;
    let mut sni_is_ip = false;
    let mut sni = None;
    let mut alpn = Vec::new();
    let mut first_alpn: Option<&[u8]> = None;
    let mut ech = false;
    // The lists a fingerprint needs live on the stack (see `U16List`).
    let mut supported_versions = U16List::new();
    let mut signature_algorithms = U16List::new();
    let mut extension_types = U16List::new();

    let mut e = Reader::new(extensions_bytes);
    while !e.is_empty() {
        let ext_type = e.u16()?;
        let data = e.vec_u16()?;
        if extension_types.len() < 512 {
            extension_types.push(ext_type);
        }
        match ext_type {
            EXT_SERVER_NAME if !sni_present => {
                sni_present = true;
                sni = server_name(data);
                sni_is_ip = sni
                    .as_deref()
                    .is_some_and(|n| n.parse::<std::net::IpAddr>().is_ok());
            }
            EXT_ALPN if first_alpn.is_none() => {
                let mut list = Reader::new(Reader::new(data).vec_u16()?);
                while let Some(name) = list.vec_u8() {
                    if first_alpn.is_none() {
                        first_alpn = Some(name);
                    }
                    if alpn.len() < MAX_ALPN
                        && !name.is_empty()
                        && name.iter().all(|b| b.is_ascii_graphic())
                    {
                        alpn.push(String::from_utf8_lossy(name).into_owned());
                    }
                }
                // An ALPN extension whose list is present but empty still counts as offered.
                first_alpn.get_or_insert(&[]);
            }
            EXT_SUPPORTED_VERSIONS if supported_versions.is_empty() => {
                if let Some(list) = Reader::new(data).vec_u8() {
                    supported_versions.extend_be_bytes(list);
                }
            }
            EXT_SIGNATURE_ALGORITHMS if signature_algorithms.is_empty() => {
                if let Some(list) = Reader::new(data).vec_u16() {
                    signature_algorithms.extend_be_bytes(list);
                }
            }
            EXT_ENCRYPTED_CLIENT_HELLO => ech = true,
            _ => {}
        }
    }
    let ja4 = ja4::fingerprint(&Ja4Input {
        transport: match transport {
            Transport::Tcp => b't',
            Transport::Quic => b'q',
        },
        legacy_version,
        supported_versions: supported_versions.as_slice(),
        sni_domain: sni_present && !sni_is_ip,
        ciphers: ciphers.as_slice(),
        extensions: extension_types.as_slice(),
        first_alpn: first_alpn.filter(|a| !a.is_empty()),
        signature_algorithms: signature_algorithms.as_slice(),
    });
    Some(ClientHello {
        sni,
        alpn,
        ech,
        ja4,
    })
}

/// The first host_name entry of a server_name extension, validated.
fn server_name(data: &[u8]) -> Option<String> {
    let mut list = Reader::new(Reader::new(data).vec_u16()?);
    while !list.is_empty() {
        let name_type = list.u8()?;
        let name = list.vec_u16()?;
        if name_type == 0 {
            return host_name(name);
        }
    }
    None
}

/// Validates and lower-cases a DNS host name (letters, digits, `-`, `_`, `.`; at most 255
/// bytes; one trailing dot removed). Anything else — control bytes, spaces, non-ASCII — is
/// rejected.
pub(crate) fn host_name(raw: &[u8]) -> Option<String> {
    let raw = raw.strip_suffix(b".").unwrap_or(raw);
    if raw.is_empty() || raw.len() > MAX_HOST_NAME {
        return None;
    }
    if !raw
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return None;
    }
    if raw.starts_with(b".") || raw.windows(2).any(|w| w == b"..") {
        return None;
    }
    let mut name = String::with_capacity(raw.len());
    name.extend(raw.iter().map(|&b| char::from(b.to_ascii_lowercase())));
    Some(name)
}

/// Builds a complete TLS record holding a realistic, Chrome-like ClientHello (test support for
/// traffic generators): GREASE, 15 cipher suites, supported_versions (TLS 1.3, 1.2), key_share
/// with X25519MLKEM768 and X25519 (random key bytes), the given SNI and ALPN, and, when `ech`
/// is set, an encrypted_client_hello extension (0xfe0d) with a random payload.
pub fn build_client_hello(sni: Option<&str>, alpn: &[&str], ech: bool) -> Vec<u8> {
    let handshake = build_client_hello_handshake(sni, alpn, ech);
    let mut record = Vec::with_capacity(handshake.len() + 5);
    record.extend_from_slice(&[CONTENT_HANDSHAKE, 3, 1]);
    push_u16(&mut record, handshake.len());
    record.extend_from_slice(&handshake);
    record
}

/// The ClientHello handshake message of [`build_client_hello`] without the record header (what
/// QUIC carries in CRYPTO frames; see [`super::quic::build_initial_datagrams`]).
pub fn build_client_hello_handshake(sni: Option<&str>, alpn: &[&str], ech: bool) -> Vec<u8> {
    let random = |n: usize| -> Vec<u8> { (0..n).map(|_| rand::random::<u8>()).collect() };
    let grease = 0x0a0a_u16 + 0x1010 * u16::from(random(1).first().copied().unwrap_or(0) & 0x0f);

    let mut body = Vec::with_capacity(1800);
    push_u16(&mut body, 0x0303);
    body.extend_from_slice(&random(32));
    body.push(32);
    body.extend_from_slice(&random(32));
    let ciphers: [u16; 16] = [
        grease, 0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013,
        0xc014, 0x009c, 0x009d, 0x002f, 0x0035,
    ];
    push_u16(&mut body, ciphers.len() * 2);
    for c in ciphers {
        push_u16(&mut body, usize::from(c));
    }
    body.extend_from_slice(&[1, 0]); // compression: null

    let mut ext = Vec::with_capacity(1700);
    push_ext(&mut ext, grease, &[]);
    if let Some(name) = sni {
        let name = name.as_bytes();
        let mut data = Vec::with_capacity(name.len() + 5);
        push_u16(&mut data, name.len() + 3);
        data.push(0);
        push_u16(&mut data, name.len());
        data.extend_from_slice(name);
        push_ext(&mut ext, EXT_SERVER_NAME, &data);
    }
    push_ext(&mut ext, 0x0017, &[]); // extended_master_secret
    push_ext(&mut ext, 0xff01, &[0]); // renegotiation_info
    push_ext(
        &mut ext,
        0x000a,
        &[0, 8, 0x11, 0xec, 0, 0x1d, 0, 0x17, 0, 0x18],
    ); // groups
    push_ext(&mut ext, 0x000b, &[1, 0]); // ec_point_formats
    push_ext(&mut ext, 0x0023, &[]); // session_ticket
    if !alpn.is_empty() {
        let mut list = Vec::new();
        for name in alpn {
            let name = name.as_bytes();
            let name = name.get(..name.len().min(255)).unwrap_or(&[]);
            list.push(u8::try_from(name.len()).unwrap_or(u8::MAX));
            list.extend_from_slice(name);
        }
        let mut data = Vec::with_capacity(list.len() + 2);
        push_u16(&mut data, list.len());
        data.extend_from_slice(&list);
        push_ext(&mut ext, EXT_ALPN, &data);
    }
    push_ext(&mut ext, 0x0005, &[1, 0, 0, 0, 0]); // status_request
    let sigs: [u16; 8] = [
        0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601,
    ];
    let mut data = Vec::new();
    push_u16(&mut data, sigs.len() * 2);
    for s in sigs {
        push_u16(&mut data, usize::from(s));
    }
    push_ext(&mut ext, EXT_SIGNATURE_ALGORITHMS, &data);
    push_ext(&mut ext, 0x0012, &[]); // signed_certificate_timestamp
                                     // key_share: X25519MLKEM768 (1216 bytes) and X25519 (32 bytes).
    let mut shares = Vec::with_capacity(1260);
    push_u16(&mut shares, 0x11ec);
    push_u16(&mut shares, 1216);
    shares.extend_from_slice(&random(1216));
    push_u16(&mut shares, 0x001d);
    push_u16(&mut shares, 32);
    shares.extend_from_slice(&random(32));
    let mut data = Vec::with_capacity(shares.len() + 2);
    push_u16(&mut data, shares.len());
    data.extend_from_slice(&shares);
    push_ext(&mut ext, 0x0033, &data);
    push_ext(&mut ext, 0x002d, &[1, 1]); // psk_key_exchange_modes
    push_ext(
        &mut ext,
        EXT_SUPPORTED_VERSIONS,
        &[4, 0x03, 0x04, 0x03, 0x03],
    );
    push_ext(&mut ext, 0x001b, &[2, 0, 2]); // compress_certificate: brotli
    if ech {
        // Outer ECH: type, HPKE suite, config id, encapsulated key, payload.
        let mut data = vec![0, 0, 1, 0, 1];
        data.extend_from_slice(&random(1));
        push_u16(&mut data, 32);
        data.extend_from_slice(&random(32));
        push_u16(&mut data, 208);
        data.extend_from_slice(&random(208));
        push_ext(&mut ext, EXT_ENCRYPTED_CLIENT_HELLO, &data);
    }
    push_ext(&mut ext, grease ^ 0x1010, &[0]);
    push_u16(&mut body, ext.len());
    body.extend_from_slice(&ext);

    let mut msg = Vec::with_capacity(body.len() + 4);
    msg.push(HANDSHAKE_CLIENT_HELLO);
    let len = u32::try_from(body.len()).unwrap_or(0).to_be_bytes();
    msg.extend_from_slice(len.get(1..).unwrap_or(&[]));
    msg.extend_from_slice(&body);
    msg
}

fn push_u16(out: &mut Vec<u8>, value: usize) {
    out.extend_from_slice(&u16::try_from(value).unwrap_or(u16::MAX).to_be_bytes());
}

fn push_ext(out: &mut Vec<u8>, ext_type: u16, data: &[u8]) {
    push_u16(out, usize::from(ext_type));
    push_u16(out, data.len());
    out.extend_from_slice(data);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(p: Parse<ClientHello>) -> ClientHello {
        match p {
            Parse::Found(h) => h,
            other => panic!("expected Found, got {other:?}"),
        }
    }

    #[test]
    fn built_hello_round_trips() {
        let rec = build_client_hello(Some("API.Partner.example"), &["h2", "http/1.1"], false);
        let h = found(parse_client_hello(&rec));
        assert_eq!(h.sni.as_deref(), Some("api.partner.example"));
        assert_eq!(h.alpn, vec!["h2".to_string(), "http/1.1".to_string()]);
        assert!(!h.ech);
        // 15 real ciphers; 14 non-GREASE extensions without ECH.
        assert!(h.ja4.starts_with("t13d1514h2_8daaf6152771_"), "{}", h.ja4);
    }

    #[test]
    fn ech_and_no_sni() {
        let rec = build_client_hello(None, &[], true);
        let h = found(parse_client_hello(&rec));
        assert_eq!(h.sni, None);
        assert!(h.alpn.is_empty());
        assert!(h.ech);
        assert!(h.ja4.starts_with("t13i151300_"), "{}", h.ja4);
    }

    #[test]
    fn fragmented_across_records() {
        let rec = build_client_hello(Some("cdn-edge.example"), &["h2"], true);
        let whole = found(parse_client_hello(&rec));
        let hs = rec.get(5..).expect("record body");
        // Re-frame the handshake into records of 100 bytes.
        let mut stream = Vec::new();
        for chunk in hs.chunks(100) {
            stream.extend_from_slice(&[22, 3, 3, 0, u8::try_from(chunk.len()).expect("len")]);
            stream.extend_from_slice(chunk);
        }
        assert_eq!(found(parse_client_hello(&stream)), whole);
        // Every prefix before the end of the message needs more.
        let hs_end = stream.len();
        for i in 0..hs_end {
            assert_eq!(
                parse_client_hello(stream.get(..i).expect("prefix")),
                Parse::NeedMore,
                "prefix {i}"
            );
        }
    }

    #[test]
    fn not_tls() {
        assert_eq!(
            parse_client_hello(b"GET / HTTP/1.1\r\n"),
            Parse::NotThisProtocol
        );
        assert_eq!(
            parse_client_hello(b"\x17\x03\x03\x00\x10"),
            Parse::NotThisProtocol
        );
        // A ServerHello (type 2) is not a ClientHello.
        assert_eq!(
            parse_client_hello(b"\x16\x03\x03\x00\x30\x02\x00\x00\x2c"),
            Parse::NotThisProtocol
        );
        // SSLv2-compatible hello.
        assert_eq!(
            parse_client_hello(b"\x80\x2e\x01\x03\x01"),
            Parse::NotThisProtocol
        );
        assert_eq!(parse_client_hello(b""), Parse::NeedMore);
        assert_eq!(parse_client_hello(b"\x16\x03"), Parse::NeedMore);
    }

    #[test]
    fn host_name_validation() {
        assert_eq!(
            host_name(b"WWW.Example.COM.").as_deref(),
            Some("www.example.com")
        );
        assert_eq!(host_name(b"a_b.example").as_deref(), Some("a_b.example"));
        assert_eq!(host_name(b"bad\x00name"), None);
        assert_eq!(host_name(b"sp ace.example"), None);
        assert_eq!(host_name(b""), None);
        assert_eq!(host_name(b"a..b"), None);
        assert_eq!(host_name(&[b'a'; 256]), None);
        assert!(host_name(&[b'a'; 255]).is_some());
    }

    #[test]
    fn control_bytes_in_sni_give_no_name() {
        let rec = build_client_hello(Some("evil\x07.example"), &[], false);
        let h = found(parse_client_hello(&rec));
        assert_eq!(h.sni, None);
        assert!(
            h.ja4.starts_with("t13d"),
            "SNI extension is present: {}",
            h.ja4
        );
    }

    #[test]
    fn builder_uses_grease() {
        let hs = build_client_hello_handshake(None, &[], false);
        let cipher = u16::from_be_bytes([hs[4 + 2 + 32 + 1 + 32 + 2], hs[4 + 2 + 32 + 1 + 32 + 3]]);
        assert!(ja4::is_grease(cipher), "{cipher:#06x}");
    }
}
