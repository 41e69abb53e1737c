//! Monotonic u64 totals from libpcap's u32 counters, which wrap (after about 71 minutes at
//! 1 Mpps) and can reset.

/// Accumulates a wrapping u32 counter as a u64 total.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WrapCounter {
    last: Option<u32>,
    total: u64,
}

impl WrapCounter {
    /// A counter that has seen nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed the latest u32 reading; returns the delta added to the total. A smaller reading
    /// than the last one is taken as a wrap past `u32::MAX`.
    pub fn update(&mut self, reading: u32) -> u64 {
        let delta = match self.last {
            None => u64::from(reading),
            Some(last) => u64::from(reading.wrapping_sub(last)),
        };
        self.last = Some(reading);
        self.total += delta;
        delta
    }

    /// Total since the first reading (the first reading counts from zero).
    pub fn total(&self) -> u64 {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accumulates_and_survives_wrap() {
        let mut c = WrapCounter::new();
        assert_eq!(c.update(10), 10);
        assert_eq!(c.update(15), 5);
        assert_eq!(c.update(u32::MAX - 1), u64::from(u32::MAX - 16));
        assert_eq!(c.update(3), 5, "wrapped: MAX-1 -> 3 is 5 packets");
        assert_eq!(c.total(), 10 + 5 + u64::from(u32::MAX - 16) + 5);
        assert!(c.total() > u64::from(u32::MAX), "total exceeds u32");
    }
}
