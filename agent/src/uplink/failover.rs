//! Which collector the uplink sends to, when it lists several (`[uplink] collector = [...]`).
//!
//! Batches go to one collector at a time, the *current* one. A failure that another collector
//! may not share (connection refused or reset, TLS handshake, no reply in time, a 5xx) backs
//! the current collector off with its own [`Backoff`] and moves to the next collector in the
//! list, round robin, that is not backing off itself; when all are, the uplink waits for the one
//! whose backoff ends first. So a dead collector is tried again only when its own backoff allows,
//! however often the others fail.
//!
//! The uplink stays on the collector that works: it does not return to the first of the list
//! when that one recovers. The collectors are replicas on one database, equal for the batches;
//! going back would cost a new TLS connection and, with a collector that comes and goes, a
//! failure each time it goes. The first of the list is where an agent starts.
//!
//! The batch in flight keeps its stream id and sequence (and its body) when it moves: the
//! collectors deduplicate on (gateway, stream, sequence), so a batch the failed collector had
//! stored before it went away is answered `duplicate` by the next one, never stored twice.
//!
//! Refusals (403 and other 4xx) and 429 stay with the current collector: it is up and answered,
//! and another replica would answer the same.

use super::endpoint::{Backoff, Endpoint};
use std::time::{Duration, Instant};

#[derive(Debug)]
struct Slot {
    endpoint: Endpoint,
    backoff: Backoff,
    /// Not tried again before this instant (its backoff after a failure).
    retry_at: Option<Instant>,
}

/// The collectors of the uplink and the current one. Time is passed in.
#[derive(Debug)]
pub struct Rotation {
    slots: Vec<Slot>,
    current: usize,
    failovers: u64,
}

/// What to do after a failure: wait `delay`, then send to collector `to` (index in the list).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Next {
    /// How long to wait before the next attempt.
    pub delay: Duration,
    /// The collector that failed.
    pub from: usize,
    /// The collector the next attempt goes to.
    pub to: usize,
}

impl Next {
    /// The next attempt goes to another collector.
    pub fn moved(&self) -> bool {
        self.from != self.to
    }
}

impl Rotation {
    /// The collectors in order of the list, each with its own copy of `backoff`; `None` when
    /// the list is empty.
    pub fn new(endpoints: Vec<Endpoint>, backoff: Backoff) -> Option<Rotation> {
        if endpoints.is_empty() {
            return None;
        }
        let slots = endpoints
            .into_iter()
            .map(|endpoint| Slot {
                endpoint,
                backoff,
                retry_at: None,
            })
            .collect();
        Some(Rotation {
            slots,
            current: 0,
            failovers: 0,
        })
    }

    /// Index of the current collector.
    pub fn current(&self) -> usize {
        self.current
    }

    /// The current collector.
    pub fn endpoint(&self) -> &Endpoint {
        &self.slots[self.current].endpoint
    }

    /// Collector `i` of the list (the current one when `i` is out of range).
    pub fn endpoint_at(&self, i: usize) -> &Endpoint {
        &self
            .slots
            .get(i)
            .unwrap_or(&self.slots[self.current])
            .endpoint
    }

    /// How many collectors.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Never empty (see [`Rotation::new`]).
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Times the current collector changed.
    pub fn failovers(&self) -> u64 {
        self.failovers
    }

    /// The current collector acknowledged or answered: forget its failures.
    pub fn succeeded(&mut self) {
        let slot = &mut self.slots[self.current];
        slot.backoff.reset();
        slot.retry_at = None;
    }

    /// A failure to retry on the current collector (a refusal, a 429): its backoff delay.
    pub fn back_off(&mut self, now: Instant) -> Duration {
        let slot = &mut self.slots[self.current];
        let delay = slot.backoff.next_delay();
        slot.retry_at = Some(now + delay);
        delay
    }

    /// The current collector failed (connection, TLS, timeout, 5xx): back it off and move to
    /// the next collector, round robin, that may be tried at `now`; when none may, to the one
    /// whose backoff ends first (the current one when it is alone).
    pub fn fail_over(&mut self, now: Instant) -> Next {
        let from = self.current;
        self.back_off(now);
        let n = self.slots.len();
        let order = (1..=n).map(|k| (from + k) % n);
        let ready = order
            .clone()
            .find(|i| self.slots[*i].retry_at.is_none_or(|t| t <= now));
        let (to, delay) = match ready {
            Some(i) => (i, Duration::ZERO),
            None => order
                .map(|i| (i, self.slots[i].retry_at.unwrap_or(now)))
                .min_by_key(|(_, t)| *t)
                .map_or((from, Duration::ZERO), |(i, t)| {
                    (i, t.saturating_duration_since(now))
                }),
        };
        if to != from {
            self.current = to;
            self.failovers += 1;
        }
        Next { delay, from, to }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rotation(n: usize, min_ms: u64, max_ms: u64) -> Rotation {
        let endpoints = (0..n)
            .map(|i| Endpoint::parse(&format!("https://c{i}.example:{}", 7000 + i), None))
            .collect::<Result<Vec<_>, _>>()
            .expect("endpoints");
        let backoff = Backoff::new(Duration::from_millis(min_ms), Duration::from_millis(max_ms));
        Rotation::new(endpoints, backoff).expect("not empty")
    }

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn an_empty_list_has_no_rotation() {
        let backoff = Backoff::new(MS, MS);
        assert!(Rotation::new(Vec::new(), backoff).is_none());
    }

    #[test]
    fn a_single_collector_backs_off_in_place() {
        let mut r = rotation(1, 100, 100);
        let t0 = Instant::now();
        let next = r.fail_over(t0);
        assert_eq!(
            next,
            Next {
                delay: 100 * MS,
                from: 0,
                to: 0
            }
        );
        assert!(!next.moved());
        assert_eq!(r.failovers(), 0);
        assert_eq!(r.endpoint().port, 7000);
    }

    #[test]
    fn failures_move_round_robin_then_wait_for_the_earliest_backoff() {
        // Backoff 100 ms fixed: each failed collector rests 100 ms.
        let mut r = rotation(3, 100, 100);
        let t0 = Instant::now();
        assert_eq!(r.current(), 0);
        assert_eq!(
            r.fail_over(t0),
            Next {
                delay: Duration::ZERO,
                from: 0,
                to: 1
            }
        );
        assert_eq!(r.endpoint().port, 7001);
        let t1 = t0 + 10 * MS;
        assert_eq!(
            r.fail_over(t1),
            Next {
                delay: Duration::ZERO,
                from: 1,
                to: 2
            }
        );
        let t2 = t0 + 20 * MS;
        // All three back off now; collector 0 (failed at t0) is free first, at t0 + 100 ms.
        assert_eq!(
            r.fail_over(t2),
            Next {
                delay: 80 * MS,
                from: 2,
                to: 0
            }
        );
        assert_eq!(r.failovers(), 3);
        // A dead collector is not hammered: 0 fails again at t0 + 100 ms; 1 rests until
        // t0 + 110 ms, so the uplink waits 10 ms for it rather than retry anything sooner.
        let t3 = t0 + 100 * MS;
        assert_eq!(
            r.fail_over(t3),
            Next {
                delay: 10 * MS,
                from: 0,
                to: 1
            }
        );
    }

    #[test]
    fn the_uplink_stays_on_the_collector_that_works() {
        let mut r = rotation(3, 50, 50);
        let t0 = Instant::now();
        r.fail_over(t0);
        assert_eq!(r.current(), 1);
        r.succeeded();
        // Long after collector 0 could be tried again, the uplink stays on 1.
        assert_eq!(r.current(), 1);
        // When 1 fails, the next in the list is 2, not back to 0.
        let later = t0 + Duration::from_secs(10);
        assert_eq!(
            r.fail_over(later),
            Next {
                delay: Duration::ZERO,
                from: 1,
                to: 2
            }
        );
        // And from 2, the one after is 0 again (its backoff long over).
        assert_eq!(
            r.fail_over(later),
            Next {
                delay: Duration::ZERO,
                from: 2,
                to: 0
            }
        );
    }

    #[test]
    fn each_collector_keeps_its_own_backoff() {
        // Backoff doubles from 100 ms up to 10 s; jitter is within [min, ceiling].
        let mut r = rotation(2, 100, 10_000);
        let mut now = Instant::now();
        // Collector 0 fails 6 times in a row while 1 keeps failing too.
        for _ in 0..6 {
            let next = r.fail_over(now);
            now += next.delay;
        }
        // A success on the current one resets only its backoff.
        let cur = r.current();
        let other = r.slots[1 - cur].retry_at;
        assert!(other.is_some(), "the other one is backing off");
        r.succeeded();
        assert_eq!(r.slots[1 - cur].retry_at, other, "its backoff is its own");
        let next = r.fail_over(now);
        assert_eq!(next.from, cur);
        // The one that just succeeded rests exactly the minimum after its first new failure.
        let rest = r.slots[cur].retry_at.expect("backing off") - now;
        assert_eq!(rest, 100 * MS);
    }

    #[test]
    fn refusals_stay_on_the_current_collector() {
        let mut r = rotation(3, 100, 100);
        let t0 = Instant::now();
        for k in 0..3 {
            assert_eq!(r.back_off(t0 + k * 100 * MS), 100 * MS);
        }
        assert_eq!(r.current(), 0);
        assert_eq!(r.failovers(), 0);
        let t0 = t0 + 200 * MS;
        // The refused collector is backing off: a later failure elsewhere does not pick it
        // before its time.
        r.fail_over(t0);
        r.fail_over(t0);
        assert_eq!(r.current(), 2);
        assert_eq!(
            r.fail_over(t0 + 50 * MS),
            Next {
                delay: 50 * MS,
                from: 2,
                to: 0
            }
        );
    }
}
