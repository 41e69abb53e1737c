//! DNS response parser for the address → name cache.
//!
//! [`parse_answers`] reads one DNS message (UDP payload, or one message of a TCP stream split by
//! [`split_tcp_messages`]) and reports every A/AAAA answer. CNAME chains are followed from the
//! question name, so for `api.partner.example CNAME cdn-edge.example A 198.51.100.7` both
//! names are reported for the address. Names are lower-cased, at most 255 bytes, decoded into
//! stack buffers (no allocation); compression pointers must point backwards and at most
//! [`MAX_POINTER_JUMPS`] are followed per name, so a pointer loop cannot spin. Names containing
//! bytes outside printable ASCII (or a `.` inside a label) are skipped, not reported.

use super::Reader;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Compression pointers followed per name.
pub const MAX_POINTER_JUMPS: usize = 32;
/// CNAME records remembered per message for chain resolution.
const MAX_CNAMES: usize = 16;
/// Longest name (presentation form, without the trailing dot).
const MAX_NAME: usize = 255;
/// Placeholder in the fixed chain tables.
const NO_KEY: NameKey = NameKey { hash: 0, len: 0 };

const TYPE_A: u16 = 1;
const TYPE_CNAME: u16 = 5;
const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;

/// Why a DNS message was not (fully) read. Answers before the problem were already reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    /// The message ends before a header, question or record it announces.
    #[error("DNS message truncated")]
    Truncated,
    /// The QR bit is clear: a query, which carries no answers.
    #[error("DNS message is a query, not a response")]
    NotResponse,
    /// A name is malformed: bad label type, forward or looping compression pointer, too long.
    #[error("malformed DNS name (bad label type or compression pointer)")]
    BadName,
}

/// A decoded, lower-cased name in a fixed buffer (`len == 0` is the root).
#[derive(Clone, Copy)]
struct Name {
    buf: [u8; MAX_NAME],
    len: usize,
    /// Every byte is printable ASCII and no label contains a dot.
    printable: bool,
}

impl Name {
    /// The root name (empty), to read names into.
    fn empty() -> Self {
        Name {
            buf: [0; MAX_NAME],
            len: 0,
            printable: true,
        }
    }

    fn bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }

    fn as_str(&self) -> Option<&str> {
        if !self.printable || self.len == 0 {
            return None;
        }
        std::str::from_utf8(self.bytes()).ok()
    }

    /// A compact identity for chain matching (FNV-1a over the lower-cased name, plus its
    /// length); `None` for unusable names, which never match anything.
    fn key(&self) -> Option<NameKey> {
        if !self.printable || self.len == 0 {
            return None;
        }
        let hash = self
            .bytes()
            .iter()
            .fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
                (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
            });
        Some(NameKey {
            hash,
            len: self.len,
        })
    }
}

/// Identity of a name for CNAME chain matching: a 64-bit hash and the length, so the chain
/// tables stay small (a few hundred bytes on the stack instead of whole names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct NameKey {
    hash: u64,
    len: usize,
}

/// Reads the name at `start` into `name` (whatever it held before); returns the offset just
/// after it in the record. A name longer than 255 bytes, or one whose compression pointer does
/// not go strictly backwards (a forward or looping pointer), is marked unusable rather than an
/// error, so the rest of the message can still be read; truncation and reserved label types
/// before the first pointer are errors (the record's extent is unknown then).
///
/// Read into a name the caller keeps, not returned: a returned name (272 bytes) was copied on
/// its way out and into each record, right after the byte stores that wrote it (a copy and a
/// store-forwarding stall per name, on the capture thread, which parses every DNS answer).
fn read_name(msg: &[u8], start: usize, name: &mut Name) -> Result<usize, DnsError> {
    name.len = 0;
    name.printable = true;
    let mut too_long = false;
    let mut pos = start;
    // Each pointer must point before the previous jump target (or the name's start), so the
    // walk strictly retreats and cannot loop; the jump count is capped as well.
    let mut limit = start;
    let mut after: Option<usize> = None;
    let mut jumps = 0;
    loop {
        let Some(&len) = msg.get(pos) else {
            return unusable(name, after, DnsError::Truncated);
        };
        match len & 0xc0 {
            0x00 if len == 0 => {
                if too_long {
                    name.printable = false;
                }
                return Ok(after.unwrap_or(pos + 1));
            }
            0x00 => {
                let Some(label) = msg.get(pos + 1..pos + 1 + usize::from(len)) else {
                    return unusable(name, after, DnsError::Truncated);
                };
                pos += 1 + usize::from(len);
                let dot = usize::from(name.len > 0);
                let new_len = name.len + dot + label.len();
                if too_long || new_len > MAX_NAME {
                    too_long = true;
                    continue;
                }
                if dot == 1 {
                    if let Some(b) = name.buf.get_mut(name.len) {
                        *b = b'.';
                    }
                }
                let dst = name
                    .buf
                    .get_mut(name.len + dot..new_len)
                    .ok_or(DnsError::BadName)?;
                for (d, &s) in dst.iter_mut().zip(label) {
                    if !s.is_ascii_graphic() || s == b'.' {
                        name.printable = false;
                    }
                    *d = s.to_ascii_lowercase();
                }
                name.len = new_len;
            }
            0xc0 => {
                let low = *msg.get(pos + 1).ok_or(DnsError::Truncated)?;
                let target = (usize::from(len & 0x3f) << 8) | usize::from(low);
                after.get_or_insert(pos + 2);
                jumps += 1;
                if jumps > MAX_POINTER_JUMPS || target >= limit {
                    return unusable(name, after, DnsError::BadName);
                }
                limit = target;
                pos = target;
            }
            _ => return unusable(name, after, DnsError::BadName),
        }
    }
}

/// A name whose pointed-to part is broken: once a pointer was read, the name's extent in the
/// record is known, so the record stays readable and only the name is marked unusable.
fn unusable(name: &mut Name, after: Option<usize>, error: DnsError) -> Result<usize, DnsError> {
    match after {
        Some(after) => {
            name.printable = false;
            Ok(after)
        }
        None => Err(error),
    }
}

/// One resource record's fixed fields (its owner name is read into the caller's); `rdata_at`
/// is its offset in the message.
#[derive(Clone, Copy)]
struct Record<'a> {
    rtype: u16,
    class: u16,
    ttl: u32,
    rdata: &'a [u8],
    rdata_at: usize,
}

/// The record at `pos`, its owner name read into `owner`, and the offset after it.
fn read_record<'m>(
    msg: &'m [u8],
    pos: usize,
    owner: &mut Name,
) -> Result<(Record<'m>, usize), DnsError> {
    let after = read_name(msg, pos, owner)?;
    let mut r = Reader::new(msg.get(after..).ok_or(DnsError::Truncated)?);
    let (rtype, class, ttl) = (
        r.u16().ok_or(DnsError::Truncated)?,
        r.u16().ok_or(DnsError::Truncated)?,
        r.u32().ok_or(DnsError::Truncated)?,
    );
    let rdata = r.vec_u16().ok_or(DnsError::Truncated)?;
    let rdata_at = after + 10;
    Ok((
        Record {
            rtype,
            class: class & 0x7fff, // mDNS cache-flush bit
            ttl,
            rdata,
            rdata_at,
        },
        rdata_at + rdata.len(),
    ))
}

/// Reports the A/AAAA answers of one DNS response: `f(name, address, ttl)` for the question
/// name and for the record's owner name when they differ and are linked by a CNAME chain, or
/// for the owner name alone when the record is unrelated to the question. Queries give
/// [`DnsError::NotResponse`]; a malformed message stops at the first problem (earlier answers
/// were already reported).
pub fn parse_answers(msg: &[u8], f: &mut dyn FnMut(&str, IpAddr, u32)) -> Result<(), DnsError> {
    let mut h = Reader::new(msg);
    let (_id, flags, qdcount, ancount) = (
        h.u16().ok_or(DnsError::Truncated)?,
        h.u16().ok_or(DnsError::Truncated)?,
        h.u16().ok_or(DnsError::Truncated)?,
        h.u16().ok_or(DnsError::Truncated)?,
    );
    if flags & 0x8000 == 0 {
        return Err(DnsError::NotResponse);
    }
    let mut pos = 12;
    // The first question's name, and the names of the records as they are read.
    let (mut question, mut owner, mut target) = (Name::empty(), Name::empty(), Name::empty());
    for i in 0..qdcount {
        // Later questions' names are read only to step over them.
        let into = if i == 0 { &mut question } else { &mut owner };
        let after = read_name(msg, pos, into)?;
        pos = after + 4; // type, class
        if pos > msg.len() {
            return Err(DnsError::Truncated);
        }
    }
    let answers_at = pos;

    // Pass 1: CNAME records (owner -> target), to resolve chains.
    let mut cnames = [(NO_KEY, NO_KEY); MAX_CNAMES];
    let mut n_cnames = 0;
    let mut pass1_error = None;
    for _ in 0..ancount {
        match read_record(msg, pos, &mut owner) {
            Ok((rec, next)) => {
                if rec.rtype == TYPE_CNAME && rec.class == CLASS_IN {
                    let target = read_name(msg, rec.rdata_at, &mut target)
                        .ok()
                        .and_then(|_| target.key());
                    if let (Some(owner), Some(target), Some(slot)) =
                        (owner.key(), target, cnames.get_mut(n_cnames))
                    {
                        *slot = (owner, target);
                        n_cnames += 1;
                    }
                }
                pos = next;
            }
            Err(e) => {
                pass1_error = Some(e);
                break;
            }
        }
    }
    let cnames = cnames.get(..n_cnames).unwrap_or(&[]);

    // The names reachable from the question through CNAMEs (the question itself first).
    let mut chain = [NO_KEY; MAX_CNAMES + 1];
    let mut chain_len = 0;
    let question = (qdcount > 0).then_some(&question);
    if let (Some(q), Some(first)) = (question.and_then(Name::key), chain.first_mut()) {
        *first = q;
        chain_len = 1;
        let mut current = q;
        while chain_len < chain.len() {
            let Some(&(_, next)) = cnames.iter().find(|(owner, _)| *owner == current) else {
                break;
            };
            if chain.get(..chain_len).is_some_and(|c| c.contains(&next)) {
                break; // CNAME loop
            }
            if let Some(slot) = chain.get_mut(chain_len) {
                *slot = next;
            }
            chain_len += 1;
            current = next;
        }
    }
    let chain = chain.get(..chain_len).unwrap_or(&[]);

    // Pass 2: addresses.
    let mut pos = answers_at;
    for _ in 0..ancount {
        let Ok((rec, next)) = read_record(msg, pos, &mut owner) else {
            break;
        };
        pos = next;
        if rec.class != CLASS_IN {
            continue;
        }
        let addr = match (rec.rtype, rec.rdata.len()) {
            (TYPE_A, 4) => {
                let b: [u8; 4] = rec.rdata.try_into().map_err(|_| DnsError::Truncated)?;
                IpAddr::V4(Ipv4Addr::from(b))
            }
            (TYPE_AAAA, 16) => {
                let b: [u8; 16] = rec.rdata.try_into().map_err(|_| DnsError::Truncated)?;
                IpAddr::V6(Ipv6Addr::from(b))
            }
            _ => continue,
        };
        let in_chain = owner.key().is_some_and(|k| chain.contains(&k));
        if in_chain {
            if let Some(q) = question.and_then(Name::as_str) {
                f(q, addr, rec.ttl);
            }
            let same = question.is_some_and(|q| q.bytes() == owner.bytes());
            if !same {
                if let Some(owner) = owner.as_str() {
                    f(owner, addr, rec.ttl);
                }
            }
        } else if let Some(owner) = owner.as_str() {
            f(owner, addr, rec.ttl);
        }
    }
    match pass1_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// DNS-over-TCP messages of a byte stream (each preceded by a two-byte length). Iteration stops
/// at the first incomplete message; [`TcpMessages::consumed`] tells how many bytes the complete
/// ones used, so the caller can keep the rest for the next segment.
pub fn split_tcp_messages(stream: &[u8]) -> TcpMessages<'_> {
    TcpMessages {
        rest: stream,
        consumed: 0,
    }
}

/// Iterator returned by [`split_tcp_messages`].
#[derive(Debug, Clone)]
pub struct TcpMessages<'a> {
    rest: &'a [u8],
    consumed: usize,
}

impl TcpMessages<'_> {
    /// Bytes of the stream used by the messages yielded so far.
    pub fn consumed(&self) -> usize {
        self.consumed
    }
}

impl<'a> Iterator for TcpMessages<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let mut r = Reader::new(self.rest);
        let msg = r.vec_u16()?;
        self.consumed += 2 + msg.len();
        self.rest = r.rest();
        Some(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Answers = Vec<(String, IpAddr, u32)>;

    fn collect(msg: &[u8]) -> (Answers, Result<(), DnsError>) {
        let mut out = Vec::new();
        let r = parse_answers(msg, &mut |n, a, t| out.push((n.to_string(), a, t)));
        (out, r)
    }

    /// A response for api.partner.example: CNAME cdn-edge.example, A 198.51.100.7,
    /// AAAA 2001:db8::7, using compression pointers.
    fn cname_response() -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 3, 0, 0, 0, 0];
        // Question at 12: api.partner.example
        m.extend_from_slice(b"\x03API\x07partner\x07example\x00\x00\x01\x00\x01");
        // Answer 1: owner ptr 12, CNAME, rdata = cdn-edge + ptr to "example" (offset 12+4+8=24)
        m.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60]);
        let rdata = [b"\x08cdn-edge".as_slice(), &[0xc0, 24]].concat();
        m.extend_from_slice(&[0, rdata.len() as u8]);
        let cdn_at = m.len();
        m.extend_from_slice(&rdata);
        // Answer 2: owner ptr cdn_at, A
        m.extend_from_slice(&[
            0xc0,
            cdn_at as u8,
            0,
            1,
            0,
            1,
            0,
            0,
            1,
            0,
            0,
            4,
            198,
            51,
            100,
            7,
        ]);
        // Answer 3: owner ptr cdn_at, AAAA
        m.extend_from_slice(&[0xc0, cdn_at as u8, 0, 28, 0, 1, 0, 0, 1, 0, 0, 16]);
        m.extend_from_slice(&"2001:db8::7".parse::<Ipv6Addr>().expect("v6").octets());
        m
    }

    #[test]
    fn cname_chain_reports_both_names() {
        let (out, r) = collect(&cname_response());
        assert_eq!(r, Ok(()));
        let a: IpAddr = "198.51.100.7".parse().expect("ip");
        let aaaa: IpAddr = "2001:db8::7".parse().expect("ip");
        assert_eq!(
            out,
            vec![
                ("api.partner.example".into(), a, 256),
                ("cdn-edge.example".into(), a, 256),
                ("api.partner.example".into(), aaaa, 256),
                ("cdn-edge.example".into(), aaaa, 256),
            ]
        );
    }

    fn wire_name(name: &str) -> Vec<u8> {
        let mut out = Vec::new();
        for label in name.split('.') {
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
        out.push(0);
        out
    }

    /// A response with the question `q` and answers `(owner, type, rdata)`.
    fn response(q: &str, answers: &[(&str, u16, Vec<u8>)]) -> Vec<u8> {
        let mut m = vec![0, 1, 0x81, 0x80, 0, 1, 0, answers.len() as u8, 0, 0, 0, 0];
        m.extend_from_slice(&wire_name(q));
        m.extend_from_slice(&[0, 1, 0, 1]);
        for (owner, rtype, rdata) in answers {
            m.extend_from_slice(&wire_name(owner));
            m.extend_from_slice(&rtype.to_be_bytes());
            m.extend_from_slice(&[0, 1, 0, 0, 0, 30]);
            m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            m.extend_from_slice(rdata);
        }
        m
    }

    #[test]
    fn long_chain_loop_and_unrelated_records() {
        let m = response(
            "a.example",
            &[
                ("a.example", TYPE_CNAME, wire_name("b.example")),
                ("b.example", TYPE_CNAME, wire_name("c.example")),
                ("c.example", TYPE_CNAME, wire_name("a.example")), // loop back
                ("c.example", TYPE_A, vec![192, 0, 2, 1]),
                ("z.example", TYPE_A, vec![192, 0, 2, 9]), // not in the chain
            ],
        );
        let (out, r) = collect(&m);
        assert_eq!(r, Ok(()));
        let names: Vec<(&str, String)> = out
            .iter()
            .map(|(n, a, _)| (n.as_str(), a.to_string()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("a.example", "192.0.2.1".to_string()),
                ("c.example", "192.0.2.1".to_string()),
                ("z.example", "192.0.2.9".to_string()),
            ]
        );
    }

    #[test]
    fn query_is_not_a_response() {
        let mut m = cname_response();
        m[2] &= 0x7f;
        assert_eq!(collect(&m).1, Err(DnsError::NotResponse));
    }

    #[test]
    fn pointer_loops_and_forward_pointers_make_names_unusable() {
        // Question name is a pointer to itself; the answer's owner is a pointer to the
        // question. Neither name is usable, nothing is reported, nothing loops.
        let mut m = vec![
            0, 0, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1,
        ];
        m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 10, 0, 0, 1]);
        assert_eq!(collect(&m), (vec![], Ok(())));
        // Label then a pointer back to that label: a loop only the retreat rule catches.
        let mut m = vec![
            0, 0, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0, 1, b'a', 0xc0, 12, 0, 1, 0, 1,
        ];
        m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 10, 0, 0, 1]);
        assert_eq!(collect(&m), (vec![], Ok(())));
        // Forward pointer in an answer owner; the A record after it is still read.
        let mut m = vec![0, 0, 0x81, 0x80, 0, 0, 0, 2, 0, 0, 0, 0];
        m.extend_from_slice(&[0xc0, 40, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 10, 0, 0, 1]);
        m.extend_from_slice(b"\x01b\x00\x00\x01\x00\x01\x00\x00\x00\x05\x00\x04\x0a\x00\x00\x02");
        let (out, r) = collect(&m);
        assert_eq!(r, Ok(()));
        assert_eq!(out, vec![("b".to_string(), IpAddr::from([10, 0, 0, 2]), 5)]);
    }

    #[test]
    fn reserved_label_type_is_an_error() {
        let m = [
            0, 0, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 0x41, 0, 0, 1, 0, 1,
        ];
        assert_eq!(collect(&m).1, Err(DnsError::BadName));
    }

    #[test]
    fn truncated_everywhere_never_panics() {
        let m = cname_response();
        for i in 0..m.len() {
            let _ = collect(&m[..i]);
        }
        assert_eq!(collect(&m[..5]).1, Err(DnsError::Truncated));
    }

    #[test]
    fn unprintable_names_skipped() {
        let mut m = vec![0, 0, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0];
        m.extend_from_slice(b"\x03a\x01b\x07example\x00\x00\x01\x00\x01");
        m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 10, 0, 0, 1]);
        assert_eq!(collect(&m), (vec![], Ok(())));
    }

    #[test]
    fn tcp_split() {
        let stream = [0, 2, 0xaa, 0xbb, 0, 1, 0xcc, 0, 5, 1];
        let mut it = split_tcp_messages(&stream);
        assert_eq!(it.next(), Some(&[0xaa, 0xbb][..]));
        assert_eq!(it.next(), Some(&[0xcc][..]));
        assert_eq!(it.next(), None, "incomplete third message");
        assert_eq!(it.consumed(), 7);
    }
}
