//! Mergeable distinct counters shared by the agent (which fills them) and the collector (which
//! merges them across gateways): a HyperLogLog (Flajolet et al. 2007) with p = 14, 16,384
//! one-byte registers, standard error about 1.04/√m ≈ 0.8%, and its compact text encoding used
//! in `sketch` events and in the agent's state file.
//!
//! Fed with 64-bit hashes (the first 8 bytes of an HMAC-SHA256), so no large-range correction
//! is needed; linear counting is used for small cardinalities. Two sketches filled with the same
//! hash function merge exactly: the union's registers are the element-wise maximum, so merging a
//! sketch twice (a resent sketch) changes nothing.
//!
//! Encoding: `d:` + base64 of the 16,384 registers (21,848 characters), or, when fewer than
//! about 5,000 registers are set, `s:` + base64 of (index: u16 big-endian, value: u8) triples in
//! increasing index order. [`HyperLogLog::decode`] checks every index, value and length and
//! names what is wrong.

/// Register index bits.
pub const P: u32 = 14;
/// Number of registers.
pub const M: usize = 1 << P;
/// Highest register value a 64-bit hash can produce (64 - P + 1).
pub const MAX_RANK: u8 = (64 - P + 1) as u8;

/// A HyperLogLog sketch.
#[derive(Clone, PartialEq, Eq)]
pub struct HyperLogLog {
    registers: Box<[u8; M]>,
}

impl std::fmt::Debug for HyperLogLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HyperLogLog")
            .field("estimate", &self.estimate())
            .finish()
    }
}

impl Default for HyperLogLog {
    fn default() -> Self {
        HyperLogLog::new()
    }
}

impl HyperLogLog {
    /// An empty sketch.
    pub fn new() -> HyperLogLog {
        HyperLogLog {
            registers: Box::new([0u8; M]),
        }
    }

    /// Add a uniformly distributed 64-bit hash.
    pub fn insert(&mut self, hash: u64) {
        let index = (hash >> (64 - P)) as usize;
        let rest = hash << P;
        // Position of the first 1 bit in the remaining 50 bits, 1-based; 51 when all zero.
        let rank = (rest.leading_zeros().min(64 - P) + 1) as u8;
        let r = &mut self.registers[index];
        if rank > *r {
            *r = rank;
        }
    }

    /// Union with `other` (element-wise maximum). Idempotent, commutative, associative.
    pub fn merge(&mut self, other: &HyperLogLog) {
        for (a, b) in self.registers.iter_mut().zip(other.registers.iter()) {
            if *b > *a {
                *a = *b;
            }
        }
    }

    /// True when nothing was inserted.
    pub fn is_empty(&self) -> bool {
        self.registers.iter().all(|r| *r == 0)
    }

    /// Estimated number of distinct hashes inserted.
    pub fn estimate(&self) -> u64 {
        let m = M as f64;
        let mut sum = 0.0f64;
        let mut zeros = 0usize;
        for &r in self.registers.iter() {
            sum += 1.0 / f64::from(1u32 << r.min(31));
            if r == 0 {
                zeros += 1;
            }
        }
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        let raw = alpha * m * m / sum;
        let est = if raw <= 2.5 * m && zeros > 0 {
            m * (m / zeros as f64).ln()
        } else {
            raw
        };
        est.round() as u64
    }

    /// Relative standard error of [`HyperLogLog::estimate`] (1.04/√m).
    pub fn relative_error() -> f64 {
        1.04 / (M as f64).sqrt()
    }

    /// Compact text encoding (see the module documentation).
    pub fn encode(&self) -> String {
        let set = self.registers.iter().filter(|r| **r != 0).count();
        if set * 3 < M {
            let mut raw = Vec::with_capacity(set * 3);
            for (i, &r) in self.registers.iter().enumerate() {
                if r != 0 {
                    raw.extend_from_slice(&(i as u16).to_be_bytes());
                    raw.push(r);
                }
            }
            format!("s:{}", base64_encode(&raw))
        } else {
            format!("d:{}", base64_encode(&self.registers[..]))
        }
    }

    /// Decode [`HyperLogLog::encode`]'s output; the error says what is wrong.
    pub fn decode(text: &str) -> Result<HyperLogLog, String> {
        let (kind, body) = text
            .split_once(':')
            .ok_or_else(|| "expected \"d:\" or \"s:\" followed by base64".to_string())?;
        let raw = base64_decode(body)?;
        let mut h = HyperLogLog::new();
        match kind {
            "d" => {
                if raw.len() != M {
                    return Err(format!(
                        "dense registers: {} bytes, expected {M}",
                        raw.len()
                    ));
                }
                for (i, &r) in raw.iter().enumerate() {
                    if r > MAX_RANK {
                        return Err(format!("register {i} = {r}, expected at most {MAX_RANK}"));
                    }
                }
                h.registers.copy_from_slice(&raw);
            }
            "s" => {
                if !raw.len().is_multiple_of(3) {
                    return Err(format!(
                        "sparse registers: {} bytes, expected a multiple of 3",
                        raw.len()
                    ));
                }
                let mut last: Option<usize> = None;
                for t in raw.chunks_exact(3) {
                    let i = usize::from(u16::from_be_bytes([t[0], t[1]]));
                    let r = t[2];
                    if i >= M || last.is_some_and(|l| i <= l) {
                        return Err(format!(
                            "sparse register index {i}: expected increasing indexes below {M}"
                        ));
                    }
                    if r == 0 || r > MAX_RANK {
                        return Err(format!("register {i} = {r}, expected 1 to {MAX_RANK}"));
                    }
                    h.registers[i] = r;
                    last = Some(i);
                }
            }
            other => {
                return Err(format!(
                    "encoding \"{other}\": expected \"d\" (dense) or \"s\" (sparse)"
                ))
            }
        }
        Ok(h)
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (RFC 4648 section 4).
pub fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(char::from(B64[((n >> (18 - 6 * k)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decode standard base64 with padding; the error names the offending position.
pub fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return Err(format!(
            "base64 of {} characters, expected a multiple of 4",
            bytes.len()
        ));
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    let quads = bytes.len() / 4;
    for (q, chunk) in bytes.chunks_exact(4).enumerate() {
        let mut n = 0u32;
        let mut pad = 0usize;
        for (k, &c) in chunk.iter().enumerate() {
            let v = match c {
                b'A'..=b'Z' => c - b'A',
                b'a'..=b'z' => c - b'a' + 26,
                b'0'..=b'9' => c - b'0' + 52,
                b'+' => 62,
                b'/' => 63,
                b'=' if q + 1 == quads && k >= 2 && (k == 3 || chunk[3] == b'=') => {
                    pad += 1;
                    0
                }
                _ => {
                    return Err(format!(
                        "base64 character {:?} at position {}",
                        char::from(c),
                        q * 4 + k
                    ))
                }
            };
            n = (n << 6) | u32::from(v);
        }
        let b = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&b[..3 - pad]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// splitmix64: a well-mixed stand-in for the HMAC the agent uses.
    fn h(i: u64) -> u64 {
        let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    #[test]
    fn accuracy_within_three_sigma() {
        for n in [10u64, 1_000, 50_000, 300_000] {
            let mut hll = HyperLogLog::new();
            for i in 0..n {
                hll.insert(h(i));
                hll.insert(h(i));
            }
            let e = hll.estimate() as f64;
            let err = (e - n as f64).abs() / n as f64;
            assert!(err < 0.025, "n={n} estimate={e} err={err}");
        }
        assert_eq!(HyperLogLog::new().estimate(), 0);
    }

    #[test]
    fn merge_is_union_and_idempotent() {
        // Two gateways: 60,000 persons each, 35,000 in common: 85,000 distinct.
        let mut a = HyperLogLog::new();
        let mut b = HyperLogLog::new();
        let mut exact = HyperLogLog::new();
        for i in 0..60_000u64 {
            a.insert(h(i));
            exact.insert(h(i));
        }
        for i in 25_000..85_000u64 {
            b.insert(h(i));
            exact.insert(h(i));
        }
        assert!(a.estimate() < 80_000 && b.estimate() < 80_000);
        let mut u = a.clone();
        u.merge(&b);
        assert_eq!(
            u, exact,
            "union registers equal those of one sketch fed both"
        );
        let e = u.estimate() as f64;
        assert!((e - 85_000.0).abs() / 85_000.0 < 0.025, "estimate {e}");
        let before = u.clone();
        u.merge(&b);
        u.merge(&a);
        assert_eq!(u, before, "merging again changes nothing");
    }

    #[test]
    fn encodings_round_trip_and_reject_garbage() {
        let mut small = HyperLogLog::new();
        for i in 0..100 {
            small.insert(h(i));
        }
        let s = small.encode();
        assert!(s.starts_with("s:") && s.len() < 500, "{}", s.len());
        assert_eq!(HyperLogLog::decode(&s).expect("sparse"), small);
        let mut big = HyperLogLog::new();
        for i in 0..100_000 {
            big.insert(h(i));
        }
        let d = big.encode();
        assert!(d.starts_with("d:"));
        assert_eq!(d.len(), 2 + M.div_ceil(3) * 4);
        assert_eq!(HyperLogLog::decode(&d).expect("dense"), big);
        assert_eq!(
            HyperLogLog::decode(&HyperLogLog::new().encode()).expect("empty"),
            HyperLogLog::new()
        );
        for bad in [
            "", "x:AAAA", "d:AAAA", "s:AAA", "s:AAA*", "s:AAAA", "s:QAAB",
        ] {
            assert!(HyperLogLog::decode(bad).is_err(), "{bad:?} accepted");
        }
        // Out-of-order sparse indexes.
        let raw = [0u8, 5, 1, 0, 4, 1];
        assert!(HyperLogLog::decode(&format!("s:{}", base64_encode(&raw))).is_err());
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(plain.as_bytes()), enc);
            assert_eq!(base64_decode(enc).expect(enc), plain.as_bytes());
        }
        assert!(base64_decode("Zg=a").is_err());
        assert!(base64_decode("=AAA").is_err());
    }
}
