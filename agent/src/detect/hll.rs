//! HyperLogLog distinct counter (Flajolet et al. 2007), p = 14: 16,384 one-byte registers,
//! standard error about 1.04/√m ≈ 0.8%. Fed with 64-bit hashes (the first 8 bytes of an
//! HMAC-SHA256), so no large-range correction is needed; linear counting is used for small
//! cardinalities.

/// Register index bits.
pub const P: u32 = 14;
const M: usize = 1 << P;

/// A HyperLogLog sketch.
#[derive(Clone)]
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(i: u64) -> u64 {
        let d = ring::digest::digest(&ring::digest::SHA256, &i.to_le_bytes());
        u64::from_le_bytes(d.as_ref()[..8].try_into().expect("8 bytes"))
    }

    #[test]
    fn accuracy_within_three_sigma() {
        for n in [10u64, 1_000, 50_000, 300_000] {
            let mut hll = HyperLogLog::new();
            for i in 0..n {
                hll.insert(h(i));
                hll.insert(h(i)); // duplicates do not count
            }
            let e = hll.estimate() as f64;
            let err = (e - n as f64).abs() / n as f64;
            assert!(err < 0.025, "n={n} estimate={e} err={err}");
        }
        assert_eq!(HyperLogLog::new().estimate(), 0);
    }
}
