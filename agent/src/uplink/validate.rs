//! The last check before an event is spooled: would the collector take it?
//!
//! The collector refuses a whole batch for one line it cannot read, so an event with an absurd
//! timestamp (a pcapng `if_tsoffset` of −2^62 gives year −290308) or a number its store cannot
//! hold would cost every event batched with it. Such an event is **dropped alone** (not clamped:
//! a made-up time would misdate an incident), counted by reason, and the first of each reason is
//! logged with the value. It is still in the agent's own JSON-lines output.
//!
//! The capture path already refuses packets with timestamps outside the window; this is the
//! last line of defence for anything that gets past it.

use crossline_config::event::{parse_timestamp_micros, Event};

/// Earliest timestamp sent: 1990-01-01T00:00:00Z, in Unix microseconds.
pub const MIN_TIMESTAMP_MICROS: i64 = 631_152_000_000_000;
/// Latest timestamp sent (exclusive): 2100-01-01T00:00:00Z, in Unix microseconds.
pub const MAX_TIMESTAMP_MICROS: i64 = 4_102_444_800_000_000;

/// Why an event is not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// A timestamp the collector cannot read (EVE time or RFC 3339).
    TimestampUnparsable,
    /// A timestamp outside 1990-01-01 .. 2100-01-01.
    TimestampOutOfRange,
    /// An integer above `i64::MAX` (the collector's store holds signed 64-bit integers).
    NumberOutOfRange,
    /// One event larger than the largest batch body.
    TooLarge,
}

impl Reason {
    /// Every reason, in counter order.
    pub const ALL: [Reason; 4] = [
        Reason::TimestampUnparsable,
        Reason::TimestampOutOfRange,
        Reason::NumberOutOfRange,
        Reason::TooLarge,
    ];

    /// Metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::TimestampUnparsable => "timestamp_unparsable",
            Reason::TimestampOutOfRange => "timestamp_out_of_range",
            Reason::NumberOutOfRange => "number_out_of_range",
            Reason::TooLarge => "too_large",
        }
    }

    /// Index in [`Reason::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// What is wrong with an event: the reason, the field and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// Why.
    pub reason: Reason,
    /// JSON path of the field in the event's EVE layout, e.g. `flow.start`,
    /// `crossline.export_bytes`.
    pub field: &'static str,
    /// The value as written.
    pub value: String,
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.reason {
            Reason::TimestampUnparsable => write!(
                f,
                "{} {:?} is not a time the collector reads, expected EVE's e.g. 2026-03-02T09:14:07.118042+0000",
                self.field, self.value
            ),
            Reason::TimestampOutOfRange => write!(
                f,
                "{} {:?} is outside 1990-01-01T00:00:00Z .. 2100-01-01T00:00:00Z",
                self.field, self.value
            ),
            Reason::NumberOutOfRange => write!(
                f,
                "{} = {} is above {} (the collector stores signed 64-bit integers)",
                self.field,
                self.value,
                i64::MAX
            ),
            Reason::TooLarge => write!(
                f,
                "the event is {} bytes, over the largest batch body of {} bytes",
                self.value,
                crossline_config::limits::MAX_BATCH_BODY
            ),
        }
    }
}

fn timestamp(field: &'static str, value: &str) -> Result<(), Invalid> {
    let invalid = |reason| Invalid {
        reason,
        field,
        value: value.to_string(),
    };
    match parse_timestamp_micros(value) {
        None => Err(invalid(Reason::TimestampUnparsable)),
        Some(t) if !(MIN_TIMESTAMP_MICROS..MAX_TIMESTAMP_MICROS).contains(&t) => {
            Err(invalid(Reason::TimestampOutOfRange))
        }
        Some(_) => Ok(()),
    }
}

fn number(field: &'static str, value: u64) -> Result<(), Invalid> {
    if value > i64::MAX as u64 {
        return Err(Invalid {
            reason: Reason::NumberOutOfRange,
            field,
            value: value.to_string(),
        });
    }
    Ok(())
}

/// Check one event (its serialised form is `line_len` bytes) the way the collector will read it.
pub fn check(event: &Event, line_len: usize) -> Result<(), Invalid> {
    if line_len + 1 > crossline_config::limits::MAX_BATCH_BODY {
        return Err(Invalid {
            reason: Reason::TooLarge,
            field: "",
            value: line_len.to_string(),
        });
    }
    timestamp("timestamp", &event.timestamp)?;
    if let Some(id) = event.flow_id {
        number("flow_id", id)?;
    }
    if let Some(b) = event.export_bytes {
        number("crossline.export_bytes", b)?;
    }
    if let Some(f) = &event.flow {
        timestamp("flow.start", &f.start)?;
        timestamp("flow.end", &f.end)?;
        number("flow.pkts_toserver", f.pkts_toserver)?;
        number("flow.pkts_toclient", f.pkts_toclient)?;
        number("flow.bytes_toserver", f.bytes_toserver)?;
        number("flow.bytes_toclient", f.bytes_toclient)?;
        number("flow.age", f.age)?;
    }
    if let Some(a) = &event.alert {
        number("crossline.alert.count", a.count)?;
        number("crossline.alert.bytes", a.bytes)?;
        if let Some(p) = a.persons {
            number("crossline.alert.persons", p)?;
        }
    }
    if let Some(s) = &event.stats {
        number("crossline.stats.packets", s.packets)?;
        number("crossline.stats.bytes", s.bytes)?;
        number("crossline.stats.flows", s.flows)?;
    }
    if let Some(s) = &event.sketch {
        for p in &s.persons {
            number("crossline.sketch.persons.estimate", p.estimate)?;
            if let Some(l) = p.limit {
                number("crossline.sketch.persons.limit", l)?;
            }
        }
        for v in &s.volumes {
            number("crossline.sketch.volumes.bytes", v.bytes)?;
            if let Some(c) = v.cap {
                number("crossline.sketch.volumes.cap", c)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossline_config::event::{format_eve_timestamp, EventType, FlowRecord};

    fn flow(ts: &str, start: &str) -> Event {
        let mut e = Event::new(EventType::Flow, ts.to_string(), "gw".to_string());
        e.flow = Some(FlowRecord {
            start: start.to_string(),
            end: ts.to_string(),
            reason: "timeout".to_string(),
            ..FlowRecord::default()
        });
        e
    }

    #[test]
    fn window_edges_and_absurd_years() {
        assert_eq!(
            format_eve_timestamp(MIN_TIMESTAMP_MICROS),
            "1990-01-01T00:00:00.000000+0000"
        );
        assert_eq!(
            format_eve_timestamp(MAX_TIMESTAMP_MICROS),
            "2100-01-01T00:00:00.000000+0000"
        );
        let ok = "2026-03-02T09:14:07.118042+0000";
        assert_eq!(check(&flow(ok, ok), 100), Ok(()));
        assert_eq!(
            check(&flow(ok, "1990-01-01T00:00:00.000000+0000"), 100),
            Ok(())
        );
        // What a pcapng if_tsoffset of -2^62 produced.
        let absurd = format_eve_timestamp(-(1i64 << 62));
        assert!(absurd.starts_with('-'), "{absurd}");
        let e = check(&flow(ok, &absurd), 100).expect_err("absurd start");
        assert_eq!(e.reason, Reason::TimestampUnparsable, "{e}");
        assert_eq!(e.field, "flow.start");
        let late = format_eve_timestamp(MAX_TIMESTAMP_MICROS);
        let e = check(&flow(&late, ok), 100).expect_err("2100");
        assert_eq!(e.reason, Reason::TimestampOutOfRange);
        assert!(
            e.to_string().contains("2100-01-01T00:00:00.000000+0000"),
            "{e}"
        );
        let early = "1989-12-31T23:59:59.999999+0000";
        assert_eq!(
            check(&flow(ok, early), 100).map_err(|e| e.reason),
            Err(Reason::TimestampOutOfRange)
        );
    }

    #[test]
    fn numbers_beyond_i64_and_oversized_events() {
        let ok = "2026-03-02T09:14:07.118042+0000";
        let mut e = flow(ok, ok);
        e.export_bytes = Some(i64::MAX as u64);
        assert_eq!(check(&e, 100), Ok(()));
        e.export_bytes = Some(u64::MAX);
        let err = check(&e, 100).expect_err("u64::MAX");
        assert_eq!(
            (err.reason, err.field),
            (Reason::NumberOutOfRange, "crossline.export_bytes")
        );
        assert!(err.to_string().contains("18446744073709551615"), "{err}");
        let e = flow(ok, ok);
        assert_eq!(
            check(&e, crossline_config::limits::MAX_BATCH_BODY).map_err(|e| e.reason),
            Err(Reason::TooLarge)
        );
    }
}
