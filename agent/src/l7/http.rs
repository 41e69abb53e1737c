//! HTTP/1.0 and HTTP/1.1 request parser: method and host.
//!
//! [`parse_request`] looks at the first [`MAX_HEAD`] bytes of a client stream. The request line
//! must be `METHOD SP target SP HTTP/1.0|1.1 CRLF` with a known method. The host comes from an
//! absolute-form target (`GET http://host/…`, proxies) or a CONNECT authority first, else from
//! the `Host` header (name matched case-insensitively). It is lower-cased, the port is
//! stripped, brackets around an IPv6 literal are removed, and it must be a valid host name or
//! IP literal (otherwise `host` is `None`).

use super::tls::host_name;
use super::Parse;
use std::net::Ipv6Addr;

/// Bytes of a request head examined at most.
pub const MAX_HEAD: usize = 4096;

const METHODS: [&[u8]; 15] = [
    b"GET",
    b"POST",
    b"PUT",
    b"HEAD",
    b"DELETE",
    b"OPTIONS",
    b"PATCH",
    b"CONNECT",
    b"TRACE",
    b"PROPFIND",
    b"PROPPATCH",
    b"MKCOL",
    b"COPY",
    b"MOVE",
    b"REPORT",
];

/// What an HTTP request says about its destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// The request method, e.g. `GET`.
    pub method: String,
    /// The target host, lower-cased, without port or IPv6 brackets.
    pub host: Option<String>,
}

/// Parses the start of a client stream as an HTTP/1.x request head.
pub fn parse_request(payload: &[u8]) -> Parse<HttpRequest> {
    let head = payload.get(..payload.len().min(MAX_HEAD)).unwrap_or(&[]);
    let truncated_by_cap = payload.len() > MAX_HEAD;

    // The method, checked even before the line is complete.
    let method_end = head.iter().position(|&b| b == b' ');
    let method = match method_end {
        Some(end) => head.get(..end).unwrap_or(&[]),
        None => head,
    };
    let known = METHODS.iter().find(|m| **m == method);
    if known.is_none() {
        let could_grow = method_end.is_none() && METHODS.iter().any(|m| m.starts_with(method));
        return if could_grow && !truncated_by_cap {
            Parse::NeedMore
        } else {
            Parse::NotThisProtocol
        };
    }
    let Some((line, after_line)) = next_line(head) else {
        return if truncated_by_cap {
            Parse::NotThisProtocol
        } else if !head.is_empty() && request_line_prefix_ok(head) {
            Parse::NeedMore
        } else {
            Parse::NotThisProtocol
        };
    };
    // Lenient like tshark and most servers: runs of spaces separate the three parts.
    let mut parts = line.split(|&b| b == b' ').filter(|p| !p.is_empty());
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Parse::NotThisProtocol;
    };
    if version != b"HTTP/1.1" && version != b"HTTP/1.0" || target.is_empty() {
        return Parse::NotThisProtocol;
    }
    let method = String::from_utf8_lossy(method).into_owned();

    // Absolute-form target or CONNECT authority.
    let authority = if method == "CONNECT" {
        Some(target)
    } else {
        strip_prefix_ignore_case(target, b"http://")
            .or_else(|| strip_prefix_ignore_case(target, b"https://"))
            .map(|rest| {
                let end = rest
                    .iter()
                    .position(|&b| b == b'/' || b == b'?' || b == b'#')
                    .unwrap_or(rest.len());
                let auth = rest.get(..end).unwrap_or(&[]);
                // Drop userinfo.
                match auth.iter().rposition(|&b| b == b'@') {
                    Some(at) => auth.get(at + 1..).unwrap_or(&[]),
                    None => auth,
                }
            })
    };
    if let Some(auth) = authority {
        return Parse::Found(HttpRequest {
            method,
            host: normalize_host(auth),
        });
    }

    // Header lines.
    let mut rest = head.get(after_line..).unwrap_or(&[]);
    loop {
        let Some((line, after_line)) = next_line(rest) else {
            return if truncated_by_cap {
                Parse::Found(HttpRequest { method, host: None })
            } else {
                Parse::NeedMore
            };
        };
        if line.is_empty() {
            return Parse::Found(HttpRequest { method, host: None });
        }
        if let Some(value) = strip_prefix_ignore_case(line, b"host:") {
            return Parse::Found(HttpRequest {
                method,
                host: normalize_host(value),
            });
        }
        rest = rest.get(after_line..).unwrap_or(&[]);
    }
}

/// The next line: its content (without CR LF or a bare LF, which RFC 9112 section 2.2 lets a
/// recipient accept) and the offset after its terminator.
fn next_line(buf: &[u8]) -> Option<(&[u8], usize)> {
    let lf = buf.iter().position(|&b| b == b'\n')?;
    let line = buf.get(..lf)?;
    Some((line.strip_suffix(b"\r").unwrap_or(line), lf + 1))
}

/// An incomplete request line is still plausible: printable, at most three words.
fn request_line_prefix_ok(partial: &[u8]) -> bool {
    partial
        .iter()
        .all(|&b| b.is_ascii_graphic() || b == b' ' || b == b'\r')
        && partial
            .split(|&b| b == b' ')
            .filter(|p| !p.is_empty())
            .count()
            <= 3
}

fn strip_prefix_ignore_case<'a>(s: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let (head, tail) = s.split_at_checked(prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then_some(tail)
}

/// Trims, strips the port and IPv6 brackets, validates and lower-cases a host value.
fn normalize_host(value: &[u8]) -> Option<String> {
    let value = value.trim_ascii();
    if let Some(inner) = value.strip_prefix(b"[") {
        let close = inner.iter().position(|&b| b == b']')?;
        let literal = std::str::from_utf8(inner.get(..close)?).ok()?;
        let after = inner.get(close + 1..)?;
        if !(after.is_empty() || (after.first() == Some(&b':') && port_ok(after.get(1..)?))) {
            return None;
        }
        let addr: Ipv6Addr = literal.parse().ok()?;
        return Some(addr.to_string());
    }
    let host = match value.iter().position(|&b| b == b':') {
        Some(colon) => {
            if !port_ok(value.get(colon + 1..)?) {
                return None;
            }
            value.get(..colon)?
        }
        None => value,
    };
    host_name(host)
}

fn port_ok(port: &[u8]) -> bool {
    port.len() <= 5 && port.iter().all(u8::is_ascii_digit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(req: &[u8]) -> Option<String> {
        match parse_request(req) {
            Parse::Found(r) => r.host,
            other => panic!("expected Found, got {other:?}"),
        }
    }

    #[test]
    fn host_header_variants() {
        assert_eq!(
            host(b"GET / HTTP/1.1\r\nUser-Agent: x\r\nHOST: Api.Partner.Example:8080\r\n\r\n")
                .as_deref(),
            Some("api.partner.example")
        );
        assert_eq!(
            host(b"POST /x HTTP/1.0\r\nhost:[2001:DB8::1]:80\r\n\r\n").as_deref(),
            Some("2001:db8::1")
        );
        assert_eq!(host(b"GET / HTTP/1.0\r\n\r\n"), None);
        assert_eq!(host(b"GET / HTTP/1.1\r\nHost: bad\x01name\r\n\r\n"), None);
        assert_eq!(
            host(b"GET http://user@Proxy.Example:3128/p HTTP/1.1\r\nHost: other\r\n\r\n")
                .as_deref(),
            Some("proxy.example")
        );
        assert_eq!(
            host(b"CONNECT tunnel.example:443 HTTP/1.1\r\n\r\n").as_deref(),
            Some("tunnel.example")
        );
    }

    #[test]
    fn bare_lf_and_extra_spaces() {
        assert_eq!(
            host(b"OPTIONS * HTTP/1.1\nHost: www.example.com\n\n").as_deref(),
            Some("www.example.com")
        );
        assert_eq!(
            host(b"GET      /a HTTP/1.1\r\nHost: h.example\r\n\r\n").as_deref(),
            Some("h.example")
        );
    }

    #[test]
    fn method_is_kept() {
        match parse_request(b"DELETE /a HTTP/1.1\r\nHost: h\r\n\r\n") {
            Parse::Found(r) => assert_eq!(r.method, "DELETE"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn incomplete_and_foreign() {
        assert_eq!(parse_request(b"GE"), Parse::NeedMore);
        assert_eq!(parse_request(b"GET /index.html HT"), Parse::NeedMore);
        assert_eq!(
            parse_request(b"GET / HTTP/1.1\r\nAccept: */*\r\n"),
            Parse::NeedMore
        );
        assert_eq!(
            parse_request(b"FOO / HTTP/1.1\r\n\r\n"),
            Parse::NotThisProtocol
        );
        assert_eq!(
            parse_request(b"GET / HTTP/2.0\r\n\r\n"),
            Parse::NotThisProtocol
        );
        assert_eq!(
            parse_request(b"\x16\x03\x01\x02\x00"),
            Parse::NotThisProtocol
        );
        assert_eq!(
            parse_request(b"SSH-2.0-OpenSSH\r\n"),
            Parse::NotThisProtocol
        );
        assert_eq!(
            parse_request(b"GET /\r\n"),
            Parse::NotThisProtocol,
            "HTTP/0.9"
        );
    }

    #[test]
    fn bounded_to_4k() {
        let mut req = b"GET / HTTP/1.1\r\n".to_vec();
        while req.len() < 5000 {
            req.extend_from_slice(b"X-Filler: aaaaaaaaaaaaaaaaaaaa\r\n");
        }
        req.extend_from_slice(b"Host: late.example\r\n\r\n");
        assert_eq!(host(&req), None, "Host beyond 4 KiB is not seen");
    }
}
