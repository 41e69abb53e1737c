//! Protocol detection from the first payload bytes of a flow ("banners" and magic headers).
//!
//! [`detect`] names the application protocol when the first payload in one direction carries an
//! unmistakable signature. It is meant for the protocols the classifier cares about beyond
//! TLS/QUIC — above all the opaque tunnels of alert XB-012 (WireGuard, OpenVPN, IPsec) — and
//! errs on the side of `None`: each rule checks exact lengths, reserved fields or a textual
//! prefix, so random or encrypted bytes rarely match.

/// IP protocol numbers used here.
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const PROTO_ESP: u8 = 50;

const HTTP_METHODS: [&[u8]; 9] = [
    b"GET ",
    b"POST ",
    b"PUT ",
    b"HEAD ",
    b"DELETE ",
    b"OPTIONS ",
    b"PATCH ",
    b"CONNECT ",
    b"TRACE ",
];

/// Names the protocol of a flow from one payload: `payload` is the first payload seen in one
/// direction, `from_initiator` tells which, `ip_proto` is the IP protocol number and
/// `server_port` the responder's port. Returns one of `"ssh"`, `"smtp"`, `"ftp"`, `"http"`,
/// `"wireguard"`, `"openvpn"`, `"ipsec"`, `"rdp"`, `"sip"`, or `None`.
pub fn detect(
    payload: &[u8],
    from_initiator: bool,
    ip_proto: u8,
    server_port: u16,
) -> Option<&'static str> {
    match ip_proto {
        PROTO_ESP => Some("ipsec"),
        PROTO_TCP => detect_tcp(payload, from_initiator, server_port),
        PROTO_UDP => detect_udp(payload, from_initiator, server_port),
        _ => None,
    }
}

fn detect_tcp(payload: &[u8], from_initiator: bool, server_port: u16) -> Option<&'static str> {
    if payload.starts_with(b"SSH-2.0-") || payload.starts_with(b"SSH-1.99-") {
        return Some("ssh");
    }
    if from_initiator {
        if HTTP_METHODS.iter().any(|m| payload.starts_with(m))
            && first_line_has(payload, b" HTTP/1.")
        {
            return Some("http");
        }
        if starts_with_ignore_case(payload, b"EHLO ") || starts_with_ignore_case(payload, b"HELO ")
        {
            return Some("smtp");
        }
        if payload.starts_with(b"USER ") && server_port != 110 && line_terminated(payload) {
            return Some("ftp");
        }
        if is_sip_request(payload) {
            return Some("sip");
        }
        if is_rdp_connection_request(payload, server_port) {
            return Some("rdp");
        }
        if is_openvpn_reset(payload.get(2..)?)
            && be16(payload, 0).map(usize::from) == Some(payload.len() - 2)
        {
            return Some("openvpn");
        }
        return None;
    }
    if payload.starts_with(b"HTTP/1.0 ") || payload.starts_with(b"HTTP/1.1 ") {
        return Some("http");
    }
    if payload.starts_with(b"SIP/2.0 ") {
        return Some("sip");
    }
    if payload.starts_with(b"220 ") || payload.starts_with(b"220-") {
        if first_line_has(payload, b"SMTP") {
            return Some("smtp");
        }
        if server_port == 21 || first_line_has(payload, b"FTP") {
            return Some("ftp");
        }
    }
    None
}

fn detect_udp(payload: &[u8], from_initiator: bool, server_port: u16) -> Option<&'static str> {
    if is_wireguard(payload) {
        return Some("wireguard");
    }
    if (server_port == 500 || server_port == 4500) && is_ike(payload, server_port) {
        return Some("ipsec");
    }
    if from_initiator && is_openvpn_reset(payload) {
        return Some("openvpn");
    }
    if is_sip_request(payload) || payload.starts_with(b"SIP/2.0 ") {
        return Some("sip");
    }
    None
}

/// WireGuard message types with their exact sizes and zero reserved bytes.
fn is_wireguard(p: &[u8]) -> bool {
    let Some((&ty, rest)) = p.split_first() else {
        return false;
    };
    if rest.get(..3) != Some(&[0, 0, 0]) {
        return false;
    }
    match ty {
        1 => p.len() == 148, // handshake initiation
        2 => p.len() == 92,  // handshake response
        3 => p.len() == 64,  // cookie reply
        // transport data: header 16, AEAD tag 16, payload padded to 16
        4 => p.len() >= 32 && p.len() & 0x0f == 0,
        _ => false,
    }
}

/// OpenVPN P_CONTROL_HARD_RESET_CLIENT_V2 (opcode 7) or V3 (opcode 10), key id 0, in one of
/// the three layouts a first client packet has:
/// - no control-channel protection: session id, ack count 0, message packet id 0 (14 bytes,
///   plus a few bytes of early-negotiation TLV in 2.6 clients);
/// - tls-auth: session id, HMAC (16/20/32/64 bytes), replay packet id 1, time, ack count 0,
///   message packet id 0;
/// - tls-crypt / tls-crypt-v2: session id, replay packet id 1, time, 32-byte tag, ciphertext.
///
/// The 8-byte session id is random: one made only of printable ASCII (text such as
/// `POST /po…`, whose `P` is opcode 10) is rejected.
fn is_openvpn_reset(p: &[u8]) -> bool {
    let Some(&first) = p.first() else {
        return false;
    };
    let opcode = first >> 3;
    if !(opcode == 7 || opcode == 10) || first & 0x07 != 0 {
        return false;
    }
    let Some(session_id) = p.get(1..9) else {
        return false;
    };
    if session_id
        .iter()
        .all(|&b| b == 0 || b == b' ' || b.is_ascii_graphic())
    {
        return false;
    }
    let len = p.len();
    let plain = (14..=40).contains(&len) && p.get(9..14) == Some(&[0; 5]);
    let tls_auth = [16usize, 20, 32, 64].iter().any(|&h| {
        (22 + h..=22 + h + 32).contains(&len)
            && p.get(9 + h..13 + h) == Some(&[0, 0, 0, 1])
            && p.get(17 + h..22 + h) == Some(&[0; 5])
    });
    let tls_crypt = (54..=1400).contains(&len) && p.get(9..13) == Some(&[0, 0, 0, 1]);
    plain || tls_auth || tls_crypt
}

/// IKEv2 header (RFC 7296): non-zero initiator SPI, version 2.0, a known exchange type and a
/// length field equal to the message size. On port 4500 a 4-byte zero non-ESP marker comes
/// first.
fn is_ike(p: &[u8], port: u16) -> bool {
    let p = if port == 4500 {
        match p.strip_prefix(&[0, 0, 0, 0]) {
            Some(rest) => rest,
            None => return false,
        }
    } else {
        p
    };
    let Some(header) = p.get(..28) else {
        return false;
    };
    let spi_i = header.get(..8).unwrap_or(&[]);
    let version = header.get(17).copied();
    let exchange = header.get(18).copied().unwrap_or(0);
    let length = header
        .get(24..28)
        .and_then(|l| <[u8; 4]>::try_from(l).ok())
        .map(u32::from_be_bytes);
    spi_i.iter().any(|&b| b != 0)
        && version == Some(0x20)
        && (34..=37).contains(&exchange)
        && length == u32::try_from(p.len()).ok()
}

/// RDP: TPKT (version 3, length = payload) carrying an X.224 Connection Request, with the
/// `Cookie: mstshash=` or an RDP negotiation request, or on port 3389.
fn is_rdp_connection_request(p: &[u8], port: u16) -> bool {
    let tpkt_ok = p.get(..2) == Some(&[3, 0]) && be16(p, 2).map(usize::from) == Some(p.len());
    let cr = p.get(5).is_some_and(|&code| code & 0xf0 == 0xe0);
    if !(tpkt_ok && cr) {
        return false;
    }
    let body = p.get(11..).unwrap_or(&[]);
    port == 3389
        || body.starts_with(b"Cookie: mstshash=")
        || (body.len() == 8 && body.first() == Some(&1))
}

fn is_sip_request(p: &[u8]) -> bool {
    const SIP_METHODS: [&[u8]; 6] = [
        b"INVITE sip:",
        b"REGISTER sip:",
        b"OPTIONS sip:",
        b"BYE sip:",
        b"ACK sip:",
        b"CANCEL sip:",
    ];
    SIP_METHODS.iter().any(|m| p.starts_with(m)) && first_line_has(p, b" SIP/2.0")
}

fn be16(p: &[u8], at: usize) -> Option<u16> {
    let bytes: [u8; 2] = p.get(at..at + 2)?.try_into().ok()?;
    Some(u16::from_be_bytes(bytes))
}

fn first_line(p: &[u8]) -> &[u8] {
    let p = p.get(..p.len().min(512)).unwrap_or(&[]);
    match p.iter().position(|&b| b == b'\n') {
        Some(end) => p.get(..end).unwrap_or(&[]),
        None => p,
    }
}

fn first_line_has(p: &[u8], needle: &[u8]) -> bool {
    first_line(p).windows(needle.len()).any(|w| w == needle)
}

fn line_terminated(p: &[u8]) -> bool {
    p.get(..p.len().min(512)).unwrap_or(&[]).contains(&b'\n')
}

fn starts_with_ignore_case(p: &[u8], prefix: &[u8]) -> bool {
    p.get(..prefix.len())
        .is_some_and(|h| h.eq_ignore_ascii_case(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: u8 = 6;
    const UDP: u8 = 17;

    #[test]
    fn ssh() {
        assert_eq!(
            detect(b"SSH-2.0-OpenSSH_9.2p1\r\n", true, TCP, 22),
            Some("ssh")
        );
        assert_eq!(
            detect(b"SSH-2.0-OpenSSH_9.2p1\r\n", false, TCP, 80),
            Some("ssh")
        );
        assert_eq!(detect(b"SSH-3.0-x\r\n", true, TCP, 22), None);
        assert_eq!(detect(b"SSH-2.0-x", true, UDP, 22), None);
    }

    #[test]
    fn smtp_and_ftp() {
        let smtp = b"220 mail.example ESMTP Postfix\r\n";
        assert_eq!(detect(smtp, false, TCP, 25), Some("smtp"));
        assert_eq!(
            detect(b"EHLO client.example\r\n", true, TCP, 25),
            Some("smtp")
        );
        assert_eq!(
            detect(b"220 (vsFTPd 3.0.3)\r\n", false, TCP, 21),
            Some("ftp")
        );
        assert_eq!(
            detect(b"220 ProFTPD Server ready\r\n", false, TCP, 2121),
            Some("ftp")
        );
        assert_eq!(detect(b"USER anonymous\r\n", true, TCP, 21), Some("ftp"));
        assert_eq!(detect(b"USER bob\r\n", true, TCP, 110), None, "POP3");
        assert_eq!(detect(b"220 ready\r\n", false, TCP, 8080), None);
        assert_eq!(
            detect(b"220 ready\r\n", true, TCP, 21),
            None,
            "banner comes from the server"
        );
    }

    #[test]
    fn http() {
        assert_eq!(
            detect(b"GET / HTTP/1.1\r\nHost: a\r\n", true, TCP, 80),
            Some("http")
        );
        assert_eq!(detect(b"HTTP/1.1 200 OK\r\n", false, TCP, 80), Some("http"));
        assert_eq!(detect(b"GET /\r\n", true, TCP, 80), None);
        assert_eq!(detect(b"GETTING / HTTP/1.1", true, TCP, 80), None);
    }

    #[test]
    fn wireguard() {
        let mut init = vec![1, 0, 0, 0];
        init.resize(148, 0x5a);
        assert_eq!(detect(&init, true, UDP, 51820), Some("wireguard"));
        let mut resp = vec![2, 0, 0, 0];
        resp.resize(92, 0x5a);
        assert_eq!(detect(&resp, false, UDP, 51820), Some("wireguard"));
        let mut data = vec![4, 0, 0, 0];
        data.resize(32 + 16 * 4, 0x11);
        assert_eq!(detect(&data, true, UDP, 51820), Some("wireguard"));
        init.push(0);
        assert_eq!(detect(&init, true, UDP, 51820), None, "149 bytes");
        let mut reserved = vec![1, 0, 1, 0];
        reserved.resize(148, 0);
        assert_eq!(detect(&reserved, true, UDP, 51820), None);
        assert_eq!(
            detect(&[4, 0, 0, 0, 1, 2], true, UDP, 51820),
            None,
            "too short"
        );
    }

    #[test]
    fn openvpn() {
        // P_CONTROL_HARD_RESET_CLIENT_V2, session id, no tls-auth: ack len 0, packet id 0.
        let udp = [0x38, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0, 0];
        assert_eq!(detect(&udp, true, UDP, 1194), Some("openvpn"));
        assert_eq!(
            detect(&udp, false, UDP, 1194),
            None,
            "the client sends the reset"
        );
        let mut tcp = vec![0, udp.len() as u8];
        tcp.extend_from_slice(&udp);
        assert_eq!(detect(&tcp, true, TCP, 1194), Some("openvpn"));
        tcp[1] += 1;
        assert_eq!(
            detect(&tcp, true, TCP, 1194),
            None,
            "length prefix mismatch"
        );
        let bad_key = [0x39, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0, 0];
        assert_eq!(detect(&bad_key, true, UDP, 1194), None);
        assert_eq!(detect(&[0x38; 3], true, UDP, 1194), None);
        // tls-auth with an HMAC-SHA1: replay packet id 1 after the 20-byte HMAC.
        let mut auth = vec![0x38, 0xa1, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08];
        auth.extend_from_slice(&[0x5a; 20]);
        auth.extend_from_slice(&[0, 0, 0, 1, 0x66, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0]);
        assert_eq!(auth.len(), 42);
        assert_eq!(detect(&auth, true, UDP, 1194), Some("openvpn"));
        // tls-crypt-v2 (opcode 10): replay packet id 1 right after the session id.
        let mut crypt = vec![
            0x50, 0xa1, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0, 0, 0, 1,
        ];
        crypt.resize(300, 0xc3);
        assert_eq!(detect(&crypt, true, UDP, 1194), Some("openvpn"));
        // Text starting with 'P' (0x50, opcode 10) or '8' (0x38, opcode 7) is not OpenVPN.
        assert_eq!(
            detect(b"POST /post HTTP/1.1\r\nHost: x\r\n", true, UDP, 80),
            None
        );
        assert_eq!(
            detect(b"8\x00\x00\x00\x01abcdefghijklmnopqrstu", true, UDP, 1194),
            None
        );
    }

    #[test]
    fn ipsec() {
        assert_eq!(detect(b"anything", true, 50, 0), Some("ipsec"));
        let mut ike = vec![0x11; 8];
        ike.extend_from_slice(&[0; 8]);
        ike.extend_from_slice(&[33, 0x20, 34, 0x08, 0, 0, 0, 0]);
        let len = (ike.len() + 4 + 8) as u32;
        ike.extend_from_slice(&len.to_be_bytes());
        ike.extend_from_slice(&[0; 8]);
        assert_eq!(detect(&ike, true, UDP, 500), Some("ipsec"));
        let mut nat_t = vec![0, 0, 0, 0];
        nat_t.extend_from_slice(&ike);
        assert_eq!(detect(&nat_t, true, UDP, 4500), Some("ipsec"));
        assert_eq!(detect(&ike, true, UDP, 53), None);
        let mut v1 = ike.clone();
        v1[17] = 0x10;
        assert_eq!(detect(&v1, true, UDP, 500), None);
    }

    #[test]
    fn rdp() {
        let mut cr = vec![3, 0, 0, 0, 0x1a, 0xe0, 0, 0, 0, 0, 0];
        cr.extend_from_slice(b"Cookie: mstshash=a\r\n");
        let len = cr.len() as u16;
        cr[2..4].copy_from_slice(&len.to_be_bytes());
        assert_eq!(detect(&cr, true, TCP, 13389), Some("rdp"));
        let mut s7 = vec![3, 0, 0, 22, 0x11, 0xe0, 0, 0, 0, 1, 0];
        s7.resize(22, 0xc1);
        assert_eq!(detect(&s7, true, TCP, 102), None, "TPKT on 102 is S7comm");
    }

    #[test]
    fn sip() {
        let invite = b"INVITE sip:bob@example.com SIP/2.0\r\nVia: x\r\n";
        assert_eq!(detect(invite, true, UDP, 5060), Some("sip"));
        assert_eq!(detect(b"SIP/2.0 200 OK\r\n", false, UDP, 5060), Some("sip"));
        assert_eq!(detect(b"INVITE someone", true, UDP, 5060), None);
    }

    #[test]
    fn random_bytes_are_nothing() {
        assert_eq!(detect(&[0x9c; 200], true, UDP, 443), None);
        assert_eq!(detect(&[], true, TCP, 22), None);
        assert_eq!(detect(b"hello", true, 1, 0), None);
    }
}
