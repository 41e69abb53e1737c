//! The worker writes alert events from the analysis' findings: an alert about a flow carries
//! the same flow fields (id, protocol, endpoints, Community ID, application protocol) as that
//! flow's record, on the committed sample capture through the real pipeline.

use crossline_agent::detect::{Classifier, DetectShared};
use crossline_agent::pipeline::{run_offline, OfflineOptions};
use crossline_agent::sink::{EventSink, JsonLinesSink, MemorySink};
use crossline_config::event::{Event, EventType};
use crossline_config::time::Date;
use crossline_testgen::{noise, tls_client_hello, Label, TcpFlow};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

#[test]
fn alerts_carry_the_flow_fields_of_their_flow_record() {
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let pcap = root.join("examples/demo.pcap");
    let today = Date::new(2026, 11, 16).expect("date");
    let (cfg, _) = crossline_config::load_agent_config(&root.join("examples/agent.toml"), today)
        .expect("examples/agent.toml is valid");
    let shared = DetectShared::new(&cfg).expect("detect state");
    let sink = MemorySink::default();
    let events = Arc::clone(&sink.events);
    let sinks: Vec<Box<dyn EventSink>> = vec![Box::new(sink)];
    let options = OfflineOptions {
        workers: Some(2),
        progress: false,
    };
    run_offline(&cfg, &[pcap], sinks, &options, move |i| {
        Classifier::new(Arc::clone(&shared), i)
    })
    .expect("pipeline");
    let events = events.lock().expect("events").clone();
    let fields = |e: &Event| {
        (
            e.proto.clone(),
            e.src_ip.clone(),
            e.src_port,
            e.dest_ip.clone(),
            e.dest_port,
            e.community_id.clone(),
            e.app_proto.clone(),
        )
    };
    let flows: HashMap<u64, _> = events
        .iter()
        .filter(|e| e.event_type == EventType::Flow)
        .filter_map(|e| Some((e.flow_id?, fields(e))))
        .collect();
    let mut checked = 0;
    for a in events.iter().filter(|e| e.event_type == EventType::Alert) {
        let Some(id) = a.flow_id else {
            // Tick alerts are about no flow: no flow fields at all.
            assert_eq!(fields(a), Default::default(), "{a:?}");
            continue;
        };
        let f = flows
            .get(&id)
            .unwrap_or_else(|| panic!("no flow record {id} for {a:?}"));
        assert_eq!(&fields(a), f, "alert {a:?}");
        assert!(a.community_id.is_some(), "{a:?}");
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} alerts about flows");
}

/// A `Write` into a buffer the test reads after the run.
#[derive(Clone, Default)]
struct Shared(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Workers write flow records and alerts straight into JSON lines when no sink wants owned
/// events, and the writer folds alerts from those lines (reading one back only for a
/// follow-up). With a sink that wants events, the same run goes through owned events instead.
/// Both must write the same bytes: every flow record, alert, folded follow-up and tick alert.
#[test]
fn lines_written_by_workers_equal_the_lines_of_owned_events() {
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let today = Date::new(2026, 11, 16).expect("date");
    let (cfg, _) = crossline_config::load_agent_config(&root.join("examples/agent.toml"), today)
        .expect("examples/agent.toml is valid");
    // The demo capture, then repeats that alert shaping folds: unfiled SSH exports from one
    // domestic /24 to one server, and TLS to a recipient its scenario does not file (with and
    // without ECH), a few seconds apart.
    let mut g = crossline_testgen::demo_capture();
    let at = |m: u32, s: u32| crossline_testgen::beijing_micros(2026, 11, 16, 10, m, s);
    let addr = |s: &str| -> std::net::SocketAddr { s.parse().expect("address") };
    for i in 0..6u32 {
        let ssh = TcpFlow::new(
            addr(&format!("10.99.1.{}:4100{i}", 10 + i)),
            addr("203.0.113.50:22"),
            at(40, 5 * i),
        )
        .reply(b"SSH-2.0-OpenSSH_9.6\r\n".to_vec())
        .send(b"SSH-2.0-OpenSSH_9.2p1\r\n".to_vec())
        .send(noise(4_000 + 100 * i as usize, u64::from(i)));
        g.tcp(&ssh, Label::new("repeated unfiled export", None));
        let tls = TcpFlow::new(
            addr(&format!("10.30.1.{}:5300{i}", 10 + i)),
            addr("192.0.2.200:443"),
            at(41, 5 * i),
        )
        .send(tls_client_hello(
            Some("telemetry.other-cloud.example"),
            i % 2 == 1,
        ))
        .reply(noise(800, 40 + u64::from(i)))
        .send(noise(5_000, 50 + u64::from(i)));
        g.tcp(&tls, Label::new("repeated recipient not filed", None));
    }
    let dir = tempfile::tempdir().expect("temporary directory");
    let pcap = dir.path().join("repeats.pcap");
    g.write(&pcap).expect("write the capture");
    let run = |with_events: bool, workers: usize| {
        let shared = DetectShared::new(&cfg).expect("detect state");
        let out = Shared::default();
        let mut sinks: Vec<Box<dyn EventSink>> =
            vec![Box::new(JsonLinesSink::new(Box::new(out.clone())))];
        if with_events {
            sinks.push(Box::new(MemorySink::default()));
        }
        let options = OfflineOptions {
            workers: Some(workers),
            progress: false,
        };
        run_offline(
            &cfg,
            std::slice::from_ref(&pcap),
            sinks,
            &options,
            move |i| Classifier::new(Arc::clone(&shared), i),
        )
        .expect("pipeline");
        let bytes = out.0.lock().expect("output").clone();
        String::from_utf8(bytes).expect("UTF-8 lines")
    };
    for workers in [1, 2] {
        let (lines, events) = (run(false, workers), run(true, workers));
        let alerts = |s: &str| {
            s.lines()
                .filter(|l| l.contains("\"event_type\":\"alert\""))
                .count()
        };
        let followups = lines
            .lines()
            .filter(|l| l.contains("\"followup\":true"))
            .count();
        assert!(alerts(&lines) >= 10, "only {} alerts", alerts(&lines));
        assert!(followups >= 1, "no folded follow-up in the run");
        for (i, (a, b)) in lines.lines().zip(events.lines()).enumerate() {
            assert_eq!(a, b, "line {i} differs ({workers} workers)");
        }
        assert_eq!(lines.lines().count(), events.lines().count());
    }
}
