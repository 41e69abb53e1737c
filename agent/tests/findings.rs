//! The worker writes alert events from the analysis' findings: an alert about a flow carries
//! the same flow fields (id, protocol, endpoints, Community ID, application protocol) as that
//! flow's record, on the committed sample capture through the real pipeline.

use crossline_agent::detect::{Classifier, DetectShared};
use crossline_agent::pipeline::{run_offline, OfflineOptions};
use crossline_agent::sink::{EventSink, MemorySink};
use crossline_config::event::{Event, EventType};
use crossline_config::time::Date;
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
