use super::*;
use crate::event::{format_eve_timestamp, AlertKind, PersonsSketch, Severity, VolumeSketch};
use proptest::prelude::*;
use std::collections::BTreeMap;

/// `write_json` of `e` and serde's JSON of `e`, which must be the same bytes.
fn both(e: &Event) -> (String, String) {
    let mut direct = Vec::new();
    EventRef::of(e).write_json(&mut direct);
    let serde = serde_json::to_string(e).expect("serialise");
    (String::from_utf8(direct).expect("utf-8"), serde)
}

const STATUSES: [VerdictStatus; 9] = VerdictStatus::ALL;

fn flow_event(text: &str, opt: [bool; 8], n: u64) -> Event {
    let mut e = Event::new(
        EventType::Flow,
        format_eve_timestamp(1_772_442_847_118_042),
        format!("gw-{text}"),
    );
    e.flow_id = Some(n);
    e.proto = Some("TCP".into());
    e.vlan = opt[0].then(|| vec![1, 4094, 7]);
    e.src_ip = Some("10.1.2.3".into());
    e.dest_ip = Some("2001:db8::1".into());
    (e.src_port, e.dest_port) = (Some(49152), Some(443));
    if opt[1] {
        (e.icmp_type, e.icmp_code) = (Some(8), Some(0));
        (e.response_icmp_type, e.response_icmp_code) = (Some(0), Some(255));
    }
    e.community_id = Some("1:LQU9qZlK+B5F3KDmev6m5PMibrg=".into());
    e.app_proto = opt[2].then(|| "tls".into());
    e.tls = opt[3].then(|| TlsMeta {
        sni: Some(text.into()),
        alpn: vec!["h2".into(), text.into()],
        ech: opt[4],
        ja4: Some("t13d1516h2_8daaf6152771_02713d6af862".into()),
        version: Some(3),
    });
    e.quic = opt[4].then(|| TlsMeta {
        sni: Some(text.into()),
        alpn: if opt[5] { vec!["h3".into()] } else { vec![] },
        ech: opt[6],
        ja4: None,
        version: Some(if opt[5] { 0x5130_3436 } else { n as u32 }),
    });
    e.http = opt[5].then(|| HttpMeta {
        hostname: Some(text.into()),
        http_method: opt[6].then(|| "POST".into()),
    });
    e.dns_name = opt[7].then(|| text.to_string());
    e.flow = Some(FlowRecord {
        pkts_toserver: n,
        pkts_toclient: u64::MAX,
        bytes_toserver: 0,
        bytes_toclient: n.wrapping_mul(1_000_003),
        start: format_eve_timestamp(-1),
        end: format_eve_timestamp(1_772_442_847_118_042),
        age: n % 1000,
        state: opt[2].then(|| "established".into()),
        reason: [
            "fin",
            "rst",
            "timeout",
            "active_timeout",
            "evicted",
            "shutdown",
        ][(n % 6) as usize]
            .into(),
        midstream: opt[6],
        alerted: opt[7],
    });
    e.direction = Some(
        [
            Direction::Export,
            Direction::Import,
            Direction::Internal,
            Direction::External,
        ][(n % 4) as usize],
    );
    e.export_bytes = opt[0].then_some(n);
    e.verdict = opt[1].then(|| Verdict {
        status: STATUSES[(n as usize) % STATUSES.len()],
        scenario: opt[2].then(|| text.into()),
        enterprise: opt[3].then(|| format!("企业 {text}")),
        name_source: opt[4].then(|| "tls".into()),
        ech: opt[5],
        exclude: opt[6].then(|| text.into()),
    });
    e.judged = opt[7].then_some(if opt[0] {
        Judged::FirstExport
    } else {
        Judged::Rejudged
    });
    e
}

#[test]
fn every_kind_of_event_is_written_as_serde_writes_it() {
    let mut events = vec![flow_event("example.com", [true; 8], 7)];
    events.push(flow_event("plain", [false; 8], 0));
    let mut alert = Event::new(EventType::Alert, format_eve_timestamp(0), "gw".into());
    let mut a = Alert::new(AlertKind::ALL[3], "summary \"quoted\"\n".into());
    a.severity = Severity::Crit;
    a.evidence = vec!["a\u{1}b".into()];
    alert.alert = Some(a);
    alert.src_ip = Some("10.0.0.1".into());
    alert.judged = Some(Judged::FirstExport);
    events.push(alert);
    let mut stats = Event::new(EventType::Stats, format_eve_timestamp(5), "gw".into());
    stats.stats = Some(Stats {
        packets: 10,
        drops: BTreeMap::from([("kernel".to_string(), 3)]),
        decode_errors: BTreeMap::from([("short".to_string(), 2)]),
        ..Stats::default()
    });
    events.push(stats);
    let mut sketch = Event::new(EventType::Sketch, format_eve_timestamp(5), "gw".into());
    sketch.sketch = Some(Sketch {
        enterprise: "e1".into(),
        uscc: None,
        key_fingerprint: "ab".into(),
        persons: vec![PersonsSketch {
            year: 2026,
            category: "sensitive".into(),
            registers: "00ff".into(),
            estimate: 12,
            limit: Some(10_000),
        }],
        volumes: vec![VolumeSketch {
            scenario: "s".into(),
            day: "2026-03-02".into(),
            bytes: 9,
            cap: None,
        }],
    });
    events.push(sketch);
    for (i, kind) in AlertKind::ALL.iter().enumerate() {
        let mut e = Event::new(EventType::Alert, format_eve_timestamp(9), "gw".into());
        let sev = [
            Severity::Info,
            Severity::Low,
            Severity::Med,
            Severity::High,
            Severity::Crit,
        ][i % 5];
        let mut a = Alert::new(*kind, format!("alert {i}"));
        a.severity = sev;
        a.scenario = (i % 2 == 0).then(|| "s1".into());
        a.enterprise = (i % 3 == 0).then(|| "e1".into());
        a.recipient = (i % 2 == 1).then(|| "example.com".into());
        a.service = (i % 4 == 0).then(|| "tcp/443".into());
        a.persons = (i % 3 == 1).then_some(i as u64);
        a.followup = i % 2 == 0;
        a.green_channel = i % 5 == 0;
        a.days_left = [None, Some(-3), Some(0), Some(i64::MIN), Some(i64::MAX)][i % 5];
        a.valid_from = (i % 2 == 0).then(|| "2026-01-01".into());
        a.valid_until = (i % 3 == 0).then(|| "2027-01-01".into());
        a.scope = (i % 4 == 1).then(|| "enterprise".into());
        a.gateways = vec!["gw-1".into(); i % 3];
        e.alert = Some(a);
        events.push(e);
    }
    for e in &events {
        let (direct, serde) = both(e);
        assert_eq!(direct, serde, "{:?}", e.event_type);
        assert_eq!(
            &EventRef::of(e).to_event(),
            e,
            "to_event gives the event back"
        );
    }
}

#[test]
fn eve_time_is_the_eve_timestamp() {
    for m in [
        0,
        -1,
        1_772_442_847_118_042,
        253_402_300_799_999_999,
        253_402_300_800_000_000,
        i64::MIN,
        i64::MAX,
        -62_167_219_200_000_001,
    ] {
        assert_eq!(EveTime::new(m).as_str(), format_eve_timestamp(m), "{m}");
    }
}

fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z.-]{0,20}",
        "\\PC{0,12}",
        proptest::collection::vec(0u8..0x80, 0..16)
            .prop_map(|b| b.into_iter().map(char::from).collect()),
        "[\"\\\\\u{7f}\u{80}\u{2028}\u{fffd}\u{1F600}]{0,6}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn generated_flow_records_are_written_as_serde_writes_them(
        text in any_text(),
        opt in any::<[bool; 8]>(),
        n in any::<u64>(),
    ) {
        let e = flow_event(&text, opt, n);
        let (direct, serde) = both(&e);
        prop_assert_eq!(direct, serde);
        let back = EventRef::of(&e).to_event();
        prop_assert_eq!(back, e);
    }

    #[test]
    fn eve_time_matches_for_any_time(m in any::<i64>()) {
        let t = EveTime::new(m);
        prop_assert_eq!(t.as_str(), format_eve_timestamp(m));
    }

    /// A start and end in the same second, a second apart, on the same day or anywhere: each
    /// as its own timestamp would be.
    #[test]
    fn eve_time_pairs_match_each_time(
        first in any::<i64>(),
        within in 0i64..1_000_000,
        apart in prop_oneof![Just(0i64), Just(1), -3i64..3, any::<i32>().prop_map(i64::from)],
    ) {
        let second = first.div_euclid(1_000_000).saturating_add(apart);
        let last = second.saturating_mul(1_000_000).saturating_add(within);
        // Written in place one after the other: the two texts, back to back.
        let mut buf = [b'#'; 100];
        let (x, y) = EveTime::write_pair(first, last, &mut buf);
        let both = format!("{}{}", format_eve_timestamp(first), format_eve_timestamp(last));
        prop_assert_eq!(x + y, both.len());
        prop_assert_eq!(&buf[..x + y], both.as_bytes());
        prop_assert!(buf[x + y..].iter().all(|&c| c == b'#'));
    }
}

/// Written in place, a time that does not fit the room left is not written (length 0): a
/// start that fits and an end that does not, and neither.
#[test]
fn eve_time_pairs_in_place_that_do_not_fit() {
    let (first, last) = (1_772_442_847_000_001, 1_772_529_247_000_002);
    let mut buf = [0u8; 40];
    assert_eq!(EveTime::write_pair(first, last, &mut buf), (31, 0));
    assert_eq!(&buf[..31], format_eve_timestamp(first).as_bytes());
    assert_eq!(EveTime::write_pair(first, last, &mut buf[..30]), (0, 0));
    // The long form (another writer) that fits, and one that does not.
    let mut long = [0u8; 80];
    let (x, y) = EveTime::write_pair(i64::MIN, i64::MAX, &mut long);
    let want = format!(
        "{}{}",
        format_eve_timestamp(i64::MIN),
        format_eve_timestamp(i64::MAX)
    );
    assert_eq!(&long[..x + y], want.as_bytes());
    assert_eq!(EveTime::write_pair(i64::MIN, 0, &mut long[..20]), (0, 0));
}

/// The same second at its ends: the first and last microsecond, a negative time, the last
/// second of year 9999 and the first past it (another writer).
#[test]
fn eve_time_pairs_at_the_ends_of_a_second() {
    for (first, last) in [
        (1_772_442_847_000_000, 1_772_442_847_999_999),
        (1_772_442_847_999_999, 1_772_442_847_000_000),
        (-1, -999_999),
        (-1_000_000, -1),
        (253_402_300_799_000_000, 253_402_300_799_999_999),
        (253_402_300_800_000_000, 253_402_300_800_000_001),
        (i64::MAX - 5, i64::MAX),
        (i64::MIN, i64::MIN + 7),
    ] {
        let mut buf = [0u8; 80];
        let (a, b) = EveTime::write_pair(first, last, &mut buf);
        assert_eq!(&buf[..a], format_eve_timestamp(first).as_bytes(), "{first}");
        assert_eq!(
            &buf[a..a + b],
            format_eve_timestamp(last).as_bytes(),
            "{last}"
        );
    }
}

/// Numbers are written as `Display` writes them, at every digit count and at the ends.
#[test]
fn numbers_are_written_as_display_writes_them() {
    let mut values = vec![
        0u64,
        1,
        9,
        10,
        11,
        99,
        100,
        101,
        999,
        1000,
        u64::MAX,
        u64::MAX - 1,
    ];
    let mut p = 1u64;
    while let Some(next) = p.checked_mul(10) {
        values.extend([p - 1, p, p + 1, next - 1]);
        p = next;
    }
    for v in values {
        let mut out = Vec::new();
        super::put_u64(&mut out, v);
        assert_eq!(String::from_utf8(out).expect("ascii"), v.to_string());
        // After other bytes, and followed by more: nothing of the room made for the digits
        // is left behind.
        let mut out = b"\"n\":".to_vec();
        super::put_u64(&mut out, v);
        out.push(b',');
        assert_eq!(
            String::from_utf8(out).expect("ascii"),
            format!("\"n\":{v},")
        );
    }
}

/// The EVE timestamp's fast path agrees with the formatting machinery it replaces.
#[test]
fn timestamps_are_written_as_the_formatter_writes_them() {
    for micros in [
        0i64,
        1,
        999_999,
        1_772_416_800_118_042,
        253_402_300_799_999_999, // 9999-12-31T23:59:59.999999
        -62_167_219_200_000_000, // 0000-01-01T00:00:00
        -1,
    ] {
        let fast = crate::event::EveTime::new(micros);
        let secs = micros.div_euclid(1_000_000);
        let frac = micros.rem_euclid(1_000_000);
        let (y, m, d) = crate::time::civil_from_days(secs.div_euclid(86_400));
        let sod = secs.rem_euclid(86_400);
        let slow = format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:06}+0000",
            sod / 3600,
            (sod / 60) % 60,
            sod % 60
        );
        assert_eq!(fast.as_str(), slow, "{micros}");
    }
}

/// Both timestamp spellings (EVE with microseconds, RFC 3339 with milliseconds) against the
/// formatter, at random times over the years 0..=9999 and on every second of one day.
#[test]
fn timestamps_at_random_times_are_written_as_the_formatter_writes_them() {
    let (lo, hi) = (-62_167_219_200_000_000i64, 253_402_300_799_999_999i64);
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut times: Vec<i64> = (0..100_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            lo + (x % (hi - lo) as u64) as i64
        })
        .collect();
    times.extend((0..86_400i64).map(|s| 1_772_409_600_000_000 + s * 1_000_000 + s * 11));
    for micros in times {
        let secs = micros.div_euclid(1_000_000);
        let frac = micros.rem_euclid(1_000_000);
        let (y, m, d) = crate::time::civil_from_days(secs.div_euclid(86_400));
        let sod = secs.rem_euclid(86_400);
        let (h, mi, se) = (sod / 3600, (sod / 60) % 60, sod % 60);
        let eve = format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{se:02}.{frac:06}+0000");
        assert_eq!(crate::event::EveTime::new(micros).as_str(), eve, "{micros}");
        assert_eq!(crate::event::format_eve_timestamp(micros), eve, "{micros}");
        let rfc = format!(
            "{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{se:02}.{:03}Z",
            frac / 1000
        );
        assert_eq!(
            crate::event::format_timestamp_micros(micros),
            rfc,
            "{micros}"
        );
    }
}

/// The word-at-a-time escape check agrees with the byte table for every length up to 24,
/// with each kind of byte at each position (the overlapping last words included).
#[test]
fn escape_check_agrees_with_the_byte_table() {
    for len in 0..=24usize {
        for pos in 0..len.max(1) {
            for b in [0x00u8, 0x1f, b'"', b'\\', 0x20, 0x7f, 0x80, 0xff, b'a'] {
                let mut v = vec![b'x'; len];
                if let Some(slot) = v.get_mut(pos) {
                    *slot = b;
                }
                let want = v.iter().any(|&c| super::ESCAPE[usize::from(c)] != 0);
                assert_eq!(super::has_escape(&v), want, "{v:?}");
            }
        }
    }
}
