//! The committed sample capture `examples/demo.pcap` against `examples/agent.toml` /
//! `examples/registry.toml`: every labelled flow gets the verdict, scenario and alerts that
//! `testgen::demo_capture` says it should (the README demo shows these).

use crossline_agent::detect::{Classifier, DetectShared};
use crossline_agent::pipeline::{run_offline, OfflineOptions};
use crossline_agent::sink::{EventSink, MemorySink};
use crossline_config::event::{AlertKind, EventType};
use crossline_config::time::Date;
use crossline_testgen::demo_capture;
use std::path::Path;
use std::sync::Arc;

#[test]
fn demo_pcap_matches_its_labels() {
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let pcap = root.join("examples/demo.pcap");
    assert!(
        pcap.exists(),
        "examples/demo.pcap is missing: run `cargo run -p crossline-agent --example make_demo_pcap`"
    );
    let today = Date::new(2026, 11, 16).expect("date");
    let (cfg, _) = crossline_config::load_agent_config(&root.join("examples/agent.toml"), today)
        .expect("examples/agent.toml is valid");
    let shared = DetectShared::new(&cfg).expect("detect state");
    let sink = MemorySink::default();
    let events = Arc::clone(&sink.events);
    let sinks: Vec<Box<dyn EventSink>> = vec![Box::new(sink)];
    // One worker: with several, the DNS answer and the flow it names can land on different
    // workers, and offline the flow's record may be classified before the other worker has
    // processed the answer (the shared DNS cache is not ordered across workers).
    let options = OfflineOptions {
        workers: Some(1),
        progress: false,
    };
    let s2 = Arc::clone(&shared);
    run_offline(&cfg, &[pcap], sinks, &options, move |i| {
        Classifier::new(Arc::clone(&s2), i)
    })
    .expect("pipeline");
    let events = events.lock().expect("events").clone();
    if std::env::var_os("CROSSLINE_DEMO_DUMP").is_some() {
        for e in &events {
            eprintln!("{}", serde_json::to_string(e).expect("json"));
        }
    }
    let gen = demo_capture();
    let mut failures = Vec::new();
    for l in &gen.labels {
        let same = |e: &&crossline_config::event::Event| {
            e.src_ip.as_deref() == Some(&l.src.ip().to_string())
                && e.src_port == Some(l.src.port())
                && e.dest_ip.as_deref() == Some(&l.dst.ip().to_string())
                && e.dest_port == Some(l.dst.port())
        };
        let Some(flow) = events
            .iter()
            .rev()
            .filter(same)
            .find(|e| e.event_type == EventType::Flow)
        else {
            failures.push(format!("{}: no flow event", l.name));
            continue;
        };
        let v = flow.verdict.as_ref().expect("verdict");
        if Some(v.status) != l.verdict {
            failures.push(format!(
                "{}: verdict {:?} != {:?}",
                l.name, v.status, l.verdict
            ));
        }
        if l.scenario.is_some() && v.scenario != l.scenario {
            failures.push(format!(
                "{}: scenario {:?} != {:?}",
                l.name, v.scenario, l.scenario
            ));
        }
        let kinds: Vec<AlertKind> = events
            .iter()
            .filter(same)
            .filter_map(|e| e.alert.as_ref().map(|a| a.kind))
            .collect();
        for k in &l.alerts {
            if !kinds.contains(k) {
                failures.push(format!("{}: missing {k:?}, got {kinds:?}", l.name));
            }
        }
    }
    let all: Vec<AlertKind> = events
        .iter()
        .filter_map(|e| e.alert.as_ref().map(|a| a.kind))
        .collect();
    for k in [AlertKind::LineMisuse, AlertKind::FilingExpiring] {
        if !all.contains(&k) {
            failures.push(format!("no {k:?} alert in the demo"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
