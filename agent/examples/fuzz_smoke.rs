//! Stable-toolchain fuzz smoke run for the packet decoder and the L7 parsers (cargo-fuzz needs
//! nightly, which this machine does not have).
//!
//! Runs every target on random inputs and on mutated real seeds (the corpus samples in
//! `agent/testdata`, the seeds in `agent/fuzz/corpus`, and for the decoder every frame of the
//! captures in `tests/corpus`) for a fixed time per target,
//! catching panics and saving any crashing input under `target/fuzz-smoke-crashes/`.
//!
//! ```text
//! cargo run --release -p crossline-agent --example fuzz_smoke -- [SECONDS_PER_TARGET] [SEED] [TARGET]
//! ```

use crossline_agent::decode::{decode, linktype, Decoded, MAX_DEPTH};
use crossline_agent::l7::quic::{self, QuicInitial};
use crossline_agent::l7::{banner, dns, http, tls, Parse};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// xorshift64* — a small deterministic generator, so a run can be repeated from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
    fn byte(&mut self) -> u8 {
        (self.next() >> 32) as u8
    }
}

/// Applies 1–8 random edits (bit flips, interesting bytes, length-field nudges, truncation,
/// insertion, deletion, duplication, splicing with another seed).
fn mutate(rng: &mut Rng, seed: &[u8], other: &[u8]) -> Vec<u8> {
    let mut out = seed.to_vec();
    for _ in 0..1 + rng.below(8) {
        let len = out.len();
        let at = rng.below(len.max(1));
        match rng.below(9) {
            0 if len > 0 => out[at] ^= 1 << rng.below(8),
            1 if len > 0 => out[at] = [0, 0xff, 0x7f, 0x80, 0x01, 0x3f, 0xc0][rng.below(7)],
            2 if len > 1 => {
                let v = u16::from_be_bytes([out[at], out[(at + 1) % len]]);
                let v = v
                    .wrapping_add([1, 0xffff, 16, 0xfff0][rng.below(4)])
                    .to_be_bytes();
                out[at] = v[0];
                out[(at + 1) % len] = v[1];
            }
            3 => out.truncate(at),
            4 => out.insert(at.min(len), rng.byte()),
            5 if len > 0 => {
                out.remove(at);
            }
            6 if len > 0 => {
                let end = (at + 1 + rng.below(64)).min(len);
                let chunk = out[at..end].to_vec();
                out.splice(at..at, chunk);
            }
            7 if !other.is_empty() => {
                let from = rng.below(other.len());
                let end = (from + 1 + rng.below(256)).min(other.len());
                out.splice(at.min(len)..len, other[from..end].iter().copied());
            }
            _ => {
                let n = rng.below(16);
                for _ in 0..n {
                    out.insert(at.min(out.len()), rng.byte());
                }
            }
        }
        out.truncate(70_000);
    }
    out
}

fn read_dir_files(dir: &Path) -> Vec<Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    paths
        .into_iter()
        .filter(|p| p.is_file() && p.extension().is_none_or(|e| e != "tsv" && e != "txt"))
        .filter_map(|p| std::fs::read(p).ok())
        .collect()
}

/// Splits the `len16 + bytes` (QUIC) or `tag + len16 + bytes` (DNS) sample files.
fn split_records(raw: &[u8], tagged: bool) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = raw;
    loop {
        let skip = usize::from(tagged);
        let Some(header) = rest.get(skip..skip + 2) else {
            break;
        };
        let len = usize::from(u16::from_be_bytes([header[0], header[1]]));
        let Some(body) = rest.get(skip + 2..skip + 2 + len) else {
            break;
        };
        out.push(body.to_vec());
        rest = &rest[skip + 2 + len..];
    }
    out
}

struct Target {
    name: &'static str,
    seeds: Vec<Vec<u8>>,
    run: fn(&[u8]) -> u8,
}

fn outcome<T>(p: &Parse<T>) -> u8 {
    match p {
        Parse::Found(_) => 0,
        Parse::NeedMore => 1,
        Parse::NotThisProtocol => 2,
    }
}

fn run_tls(data: &[u8]) -> u8 {
    let whole = tls::parse_client_hello(data);
    if let Parse::Found(h) = &whole {
        assert!(h
            .sni
            .as_ref()
            .is_none_or(|s| s.len() <= 255 && !s.is_empty()));
        assert_eq!(h.ja4.len(), 36, "{}", h.ja4);
        let mut longer = data.to_vec();
        longer.extend_from_slice(&[0x17, 0x03, 0x03, 0x00]);
        assert_eq!(
            tls::parse_client_hello(&longer),
            whole,
            "Found must be stable"
        );
    }
    outcome(&whole)
}

/// Input: 2-byte length of the datagram part, the datagram, then decrypted frames.
fn run_quic(data: &[u8]) -> u8 {
    let split = data
        .get(..2)
        .map_or(0, |b| usize::from(u16::from_be_bytes([b[0], b[1]])));
    let body = data.get(2..).unwrap_or(&[]);
    let (datagram, frames) = body.split_at(split.min(body.len()));
    let _ = quic::looks_like_initial(datagram);
    let mut q = QuicInitial::new();
    let first = q.on_client_datagram(datagram);
    let _ = q.on_client_datagram(data);
    let mut q = QuicInitial::new();
    let last = q.on_decrypted_frames(quic::VERSION_1, frames);
    outcome(&first) * 3 + outcome(&last)
}

fn run_dns(data: &[u8]) -> u8 {
    let mut answers = 0u8;
    let r = dns::parse_answers(data, &mut |name, _, _| {
        assert!(!name.is_empty() && name.len() <= 255);
        assert!(name
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b.is_ascii_uppercase()));
        answers = answers.saturating_add(1);
    });
    for m in dns::split_tcp_messages(data) {
        let _ = dns::parse_answers(m, &mut |_, _, _| {});
    }
    match r {
        Ok(()) if answers > 0 => 0,
        Ok(()) => 1,
        Err(_) => 2,
    }
}

fn run_http(data: &[u8]) -> u8 {
    let p = http::parse_request(data);
    if let Parse::Found(r) = &p {
        if let Some(h) = &r.host {
            assert!(!h.is_empty() && h.len() <= 255);
            assert!(!h
                .bytes()
                .any(|b| b.is_ascii_uppercase() || b.is_ascii_control()));
        }
    }
    outcome(&p)
}

/// Link types of the `decode` target's selector byte (same list as `fuzz_targets/decode.rs`).
const LINKTYPES: [i32; 14] = [
    linktype::ETHERNET,
    linktype::RAW,
    linktype::NULL,
    linktype::LOOP,
    linktype::LINUX_SLL,
    linktype::LINUX_SLL2,
    linktype::PPP,
    linktype::PPP_HDLC,
    linktype::C_HDLC,
    linktype::IPV4,
    linktype::IPV6,
    linktype::RAW_DLT,
    linktype::RAW_DLT_OPENBSD,
    147, // a link type the decoder does not know
];

/// Input: selector byte (link type), then the frame.
fn run_decode(data: &[u8]) -> u8 {
    let Some((&sel, frame)) = data.split_first() else {
        return 0;
    };
    let lt = LINKTYPES[usize::from(sel) % LINKTYPES.len()];
    let mut d = Decoded::default();
    let first = decode(lt, frame, &mut d);
    if first.is_ok() {
        let end = d.payload_off as usize + d.payload_len as usize;
        assert!(
            end <= frame.len(),
            "payload {end} past frame {}",
            frame.len()
        );
        assert!(usize::from(d.tunnel_depth) <= MAX_DEPTH);
        if !d.v6 {
            assert!(d.src[4..].iter().chain(&d.dst[4..]).all(|&b| b == 0));
        }
    }
    let mut again = d;
    assert_eq!(decode(lt, frame, &mut again), first);
    match first {
        Ok(()) => {
            assert_eq!(again, d);
            if d.tunnel_depth > 0 {
                1
            } else {
                0
            }
        }
        Err(_) => 2,
    }
}

/// Every frame of the captures in `dir`, behind the selector byte of its link type.
fn capture_frames(dir: &Path) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for p in paths
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "pcap" || e == "pcapng"))
    {
        let Ok(mut cap) = pcap::Capture::from_file(p) else {
            continue;
        };
        let lt = cap.get_datalink().0;
        let Some(sel) = LINKTYPES.iter().position(|&l| l == lt) else {
            continue;
        };
        while let Ok(pkt) = cap.next_packet() {
            let mut seed = vec![sel as u8];
            seed.extend_from_slice(pkt.data);
            out.push(seed);
        }
    }
    out
}

fn run_banner(data: &[u8]) -> u8 {
    let Some((&sel, payload)) = data.split_first() else {
        return 0;
    };
    let proto = [6u8, 17, 50, 1][usize::from(sel & 3)];
    let port = [21u16, 25, 500, 4500, 3389, 1194, 443, 5060][usize::from((sel >> 2) & 7)];
    match banner::detect(payload, sel & 0x20 != 0, proto, port) {
        Some(_) => 0,
        None => 1,
    }
}

/// The native capture-file reader: one byte choosing the chunk size, then the file. The
/// packets and the end must not depend on the chunk size nor on the source (`read()`, the
/// bytes as one slice, the file mapped in 4 KiB windows), and never hand out more bytes than
/// the file has. Outcome: 0 clean end, 1 refused at open, 2 error after the header.
fn run_capture_file(data: &[u8]) -> u8 {
    use crossline_agent::capture::file::{FileReader, ReadError, Source};
    type Seen = (i64, i64, u32, Vec<u8>);
    fn read<S: Source>(
        file: &[u8],
        r: Result<FileReader<S>, ReadError>,
    ) -> (Vec<Seen>, Option<String>, u8) {
        let mut r = match r {
            Ok(r) => r,
            Err(e) => return (Vec::new(), Some(e.to_string()), 1),
        };
        let (mut out, mut total) = (Vec::new(), 0);
        loop {
            match r.next_packet() {
                Ok(Some(p)) => {
                    total += p.raw.data.len();
                    assert!(total <= file.len(), "more bytes out than in");
                    out.push((
                        p.raw.ts_micros,
                        p.ts_nsec,
                        p.raw.orig_len,
                        p.raw.data.to_vec(),
                    ));
                }
                Ok(None) => return (out, None, 0),
                Err(e) => return (out, Some(e.to_string()), 2),
            }
        }
    }
    let Some((&sel, file)) = data.split_first() else {
        return 0;
    };
    let small = read(file, FileReader::with_chunk(file, 64 + usize::from(sel)));
    let large = read(file, FileReader::with_chunk(file, 1 << 16));
    assert_eq!(small, large, "result depends on the chunk size");
    let slice = read(file, FileReader::from_bytes(file));
    assert_eq!(small, slice, "the slice source differs from read()");
    let mut f = tempfile::tempfile().expect("temporary file");
    std::io::Write::write_all(&mut f, file).expect("write temporary file");
    let mapped = read(file, FileReader::mapped_with_window(f, 4096));
    assert_eq!(small, mapped, "the mapped source differs from read()");
    small.2
}

fn main() {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(30);
    let seed: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(0x5eed);
    let only: Option<String> = args.next();
    let agent = Path::new(env!("CARGO_MANIFEST_DIR"));
    let testdata = agent.join("testdata");
    let fuzz = agent.join("fuzz/corpus");

    let mut tls_seeds = read_dir_files(&testdata.join("tls"));
    tls_seeds.extend(read_dir_files(&fuzz.join("tls")));
    tls_seeds.push(tls::build_client_hello(Some("a.example"), &["h2"], true));
    let mut quic_seeds: Vec<Vec<u8>> = read_dir_files(&testdata.join("quic"))
        .iter()
        .flat_map(|f| split_records(f, false).into_iter().take(2))
        .map(|d| {
            // Length, datagram, then plausible frames: PING, a CRYPTO frame with the second
            // half of a hello, an ACK, PADDING, the first half (out of order).
            let hello = tls::build_client_hello_handshake(Some("q.example"), &["h3"], false);
            let (a, b) = hello.split_at(hello.len() / 2);
            let mut v = (d.len() as u16).to_be_bytes().to_vec();
            v.extend_from_slice(&d);
            v.push(0x01);
            v.extend_from_slice(&[0x06, 0x40 | (a.len() >> 8) as u8, a.len() as u8]);
            v.extend_from_slice(&[0x40 | (b.len() >> 8) as u8, b.len() as u8]);
            v.extend_from_slice(b);
            v.extend_from_slice(&[0x02, 0x05, 0x00, 0x01, 0x00, 0x02, 0x01, 0, 0, 0]);
            v.extend_from_slice(&[0x06, 0x00, 0x40 | (a.len() >> 8) as u8, a.len() as u8]);
            v.extend_from_slice(a);
            v
        })
        .collect();
    quic_seeds.extend(read_dir_files(&fuzz.join("quic")));
    let mut dns_seeds: Vec<Vec<u8>> = read_dir_files(&testdata.join("dns"))
        .iter()
        .flat_map(|f| split_records(f, true))
        .collect();
    dns_seeds.extend(read_dir_files(&fuzz.join("dns")));
    let mut http_seeds = read_dir_files(&fuzz.join("http"));
    http_seeds.extend(read_dir_files(&testdata.join("http")));
    http_seeds.push(b"GET http://u@h.example:81/ HTTP/1.1\r\nHost: x\r\n\r\n".to_vec());
    let mut banner_seeds = read_dir_files(&fuzz.join("banner"));
    // Real first payloads, behind each possible selector byte's TCP variants.
    for sample in read_dir_files(&testdata.join("banner")) {
        for selector in [0x00u8, 0x04, 0x20, 0x24] {
            let mut seed = vec![selector];
            seed.extend_from_slice(&sample);
            banner_seeds.push(seed);
        }
    }

    let mut decode_seeds = capture_frames(&agent.join("../tests/corpus"));
    decode_seeds.extend(read_dir_files(&fuzz.join("decode")));

    let mut file_seeds = read_dir_files(&fuzz.join("capture_file"));
    for f in read_dir_files(&agent.join("../tests/corpus")) {
        if f.len() <= 4096 && f.starts_with(&[0xd4, 0xc3, 0xb2, 0xa1]) {
            file_seeds.push([&[0u8][..], &f].concat());
        }
    }

    let targets = [
        Target {
            name: "capture_file",
            seeds: file_seeds,
            run: run_capture_file,
        },
        Target {
            name: "decode",
            seeds: decode_seeds,
            run: run_decode,
        },
        Target {
            name: "tls",
            seeds: tls_seeds,
            run: run_tls,
        },
        Target {
            name: "quic",
            seeds: quic_seeds,
            run: run_quic,
        },
        Target {
            name: "dns",
            seeds: dns_seeds,
            run: run_dns,
        },
        Target {
            name: "http",
            seeds: http_seeds,
            run: run_http,
        },
        Target {
            name: "banner",
            seeds: banner_seeds,
            run: run_banner,
        },
    ];

    // Keep panic output short: report through our own counter.
    std::panic::set_hook(Box::new(|_| {}));
    let crash_dir = agent.join("../target/fuzz-smoke-crashes");
    let mut rng = Rng(seed | 1);
    let mut total_crashes = 0;
    println!("fuzz smoke: {seconds} s per target, seed {seed:#x}");
    for t in targets
        .iter()
        .filter(|t| only.as_deref().is_none_or(|o| o == t.name))
    {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let (mut execs, mut crashes) = (0u64, 0u64);
        let mut outcomes = [0u64; 16];
        while Instant::now() < deadline {
            for _ in 0..256 {
                let input = if t.seeds.is_empty() || rng.below(4) == 0 {
                    let max = if rng.below(2) == 0 { 64 } else { 2048 };
                    let n = rng.below(max);
                    (0..n).map(|_| rng.byte()).collect()
                } else {
                    let s = &t.seeds[rng.below(t.seeds.len())];
                    let o = &t.seeds[rng.below(t.seeds.len())];
                    mutate(&mut rng, s, o)
                };
                execs += 1;
                match catch_unwind(AssertUnwindSafe(|| (t.run)(&input))) {
                    Ok(o) => outcomes[usize::from(o & 15)] += 1,
                    Err(_) => {
                        crashes += 1;
                        if crashes <= 5 {
                            let _ = std::fs::create_dir_all(&crash_dir);
                            let path = crash_dir.join(format!("{}-{execs}.bin", t.name));
                            let _ = std::fs::write(&path, &input);
                            eprintln!("{}: panic, input saved to {}", t.name, path.display());
                        }
                    }
                }
            }
        }
        total_crashes += crashes;
        let seen: Vec<String> = outcomes
            .iter()
            .enumerate()
            .filter(|(_, &n)| n > 0)
            .map(|(i, n)| format!("{i}:{n}"))
            .collect();
        println!(
            "{:<7} seeds {:>4}  execs {:>10}  ({:>8.0}/s)  crashes {crashes}  outcomes {}",
            t.name,
            t.seeds.len(),
            execs,
            execs as f64 / seconds.max(1) as f64,
            seen.join(" ")
        );
    }
    if total_crashes > 0 {
        std::process::exit(1);
    }
}
