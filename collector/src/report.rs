//! The CAC incident report object (`report` in `GET /api/v1/incidents/{id}`) and its Chinese
//! rendering (`?lang=zh` adds `report_zh`).
//!
//! The fields follow `docs/legal.md#incidents-and-deadlines`: reporting unit, system, line and
//! place, times (UTC and Beijing time, UTC+8), type, impact (bytes, persons), the recipient
//! (names seen on the wire, addresses, country), the five-tuples, evidence hashes, level and
//! deadline. Everything comes from the incident's own alerts, the flow records with the same
//! (gateway, flow id), the registry and the `[gateway."ID"]` metadata of the collector config.

use crate::util::{format_ms, parse_rfc3339_ms, sha256_hex};
use crossline_config::collector::CollectorConfig;
use crossline_config::event::Event;
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;

/// Flows looked up per incident for recipient names.
const MAX_FLOWS: usize = 50;
/// Alerts read per incident.
pub(crate) const MAX_ALERTS: i64 = 1000;
/// A flow record belongs to an alert when its time is this close to the alert's (flows end
/// after their alerts; long flows are cut by the agent's active timeout well before this).
pub(crate) const FLOW_NEAR_MS: i64 = 86_400_000;

/// (gateway, flow id, destination address, source port, alert time ms).
pub type FlowKey = (String, i64, Option<String>, Option<i64>, i64);

/// Unix ms as RFC 3339 in Beijing time (`2026-03-02T17:14:07.118+08:00`).
pub fn format_beijing(ms: i64) -> String {
    let s = format_ms(ms.saturating_add(8 * 3_600_000));
    match s.strip_suffix('Z') {
        Some(x) => format!("{x}+08:00"),
        None => s,
    }
}

fn beijing_of(v: Option<&Value>) -> Value {
    v.and_then(Value::as_str)
        .and_then(parse_rfc3339_ms)
        .map_or(Value::Null, |ms| Value::String(format_beijing(ms)))
}

/// One recipient name and where it was seen.
#[derive(Debug, Default)]
struct Names {
    list: Vec<(String, BTreeSet<&'static str>)>,
}

impl Names {
    fn add(&mut self, name: &str, source: &'static str) {
        let name = name.trim().trim_end_matches('.').to_ascii_lowercase();
        if name.is_empty() || name.parse::<std::net::IpAddr>().is_ok() || name.len() > 255 {
            return;
        }
        if let Some((_, s)) = self.list.iter_mut().find(|(n, _)| *n == name) {
            s.insert(source);
        } else if self.list.len() < 100 {
            self.list.push((name, BTreeSet::from([source])));
        }
    }

    /// The names an event carries (read in either layout: EVE's, or the one before it).
    fn add_event(&mut self, e: &Event) {
        for (name, source) in [
            (e.tls.as_ref().and_then(|t| t.sni.as_deref()), "sni"),
            (e.quic.as_ref().and_then(|q| q.sni.as_deref()), "sni"),
            (
                e.http.as_ref().and_then(|h| h.hostname.as_deref()),
                "http_host",
            ),
            (e.dns_name.as_deref(), "dns"),
        ] {
            if let Some(s) = name {
                self.add(s, source);
            }
        }
    }
}

/// One alert of an incident as the report reads it (both store backends fill these).
#[derive(Debug, Clone)]
pub struct ReportAlert {
    /// Alert id.
    pub id: i64,
    /// Protocol.
    pub proto: Option<String>,
    /// Source address.
    pub src_ip: Option<String>,
    /// Source port.
    pub src_port: Option<i64>,
    /// Destination address.
    pub dest_ip: Option<String>,
    /// Destination port.
    pub dest_port: Option<i64>,
    /// TLS/QUIC server name.
    pub sni: Option<String>,
    /// The alert line as received.
    pub json: String,
    /// Far end named by the alert.
    pub recipient: Option<String>,
    /// Persons estimate.
    pub persons: Option<i64>,
    /// Evidence items (JSON array text).
    pub evidence: String,
    /// Scenario id.
    pub scenario: Option<String>,
    /// Gateway id.
    pub gateway: String,
    /// Flow id.
    pub flow_id: Option<i64>,
    /// Alert kind.
    pub kind: String,
    /// Alert time, Unix ms.
    pub ts: i64,
}

/// The flow records to look up for an incident's alerts: (gateway, flow id, destination,
/// source port, alert time), one per (gateway, flow id), at most `MAX_FLOWS`. Flow ids restart
/// with each agent run, so a flow record must also match the alert's addresses and lie near in
/// time (`FLOW_NEAR_MS`).
pub fn flow_keys(alerts: &[ReportAlert]) -> Vec<FlowKey> {
    let mut flows: Vec<FlowKey> = Vec::new();
    for a in alerts {
        if let Some(f) = a.flow_id {
            if flows.len() < MAX_FLOWS && !flows.iter().any(|k| k.0 == a.gateway && k.1 == f) {
                flows.push((a.gateway.clone(), f, a.dest_ip.clone(), a.src_port, a.ts));
            }
        }
    }
    flows
}

/// What an incident's alerts say, gathered for its report (each list bounded).
#[derive(Default)]
struct Gathered {
    alert_ids: Vec<i64>,
    tuples: Vec<Value>,
    hashes: Vec<Value>,
    names: Names,
    addresses: Vec<String>,
    evidence: BTreeSet<String>,
    max_persons: Option<i64>,
    scenarios: BTreeSet<String>,
    kinds: BTreeSet<String>,
}

impl Gathered {
    fn of(alerts: &[ReportAlert]) -> Gathered {
        let mut g = Gathered::default();
        for a in alerts {
            g.add(a);
        }
        g
    }

    fn add(&mut self, a: &ReportAlert) {
        self.alert_ids.push(a.id);
        let t = json!({"proto": a.proto, "src_ip": a.src_ip, "src_port": a.src_port,
                       "dest_ip": a.dest_ip, "dest_port": a.dest_port});
        if a.src_ip.is_some() && !self.tuples.contains(&t) && self.tuples.len() < 100 {
            self.tuples.push(t);
        }
        if let Some(s) = &a.sni {
            self.names.add(s, "sni");
        }
        if let Some(r) = &a.recipient {
            self.names.add(r, "alert_recipient");
            if r.parse::<std::net::IpAddr>().is_ok() && !self.addresses.contains(r) {
                self.addresses.push(r.clone());
            }
        }
        if let Some(d) = &a.dest_ip {
            if !self.addresses.contains(d) && self.addresses.len() < 100 {
                self.addresses.push(d.clone());
            }
        }
        if let Ok(Value::Array(items)) = serde_json::from_str::<Value>(&a.evidence) {
            for i in items {
                if let Some(s) = i.as_str() {
                    if self.evidence.len() < 100_000 {
                        self.evidence.insert(s.to_string());
                    }
                }
            }
        }
        if let Some(p) = a.persons {
            self.max_persons = Some(self.max_persons.map_or(p, |m| m.max(p)));
        }
        if let Some(s) = &a.scenario {
            self.scenarios.insert(s.clone());
        }
        self.kinds.insert(a.kind.clone());
        self.hashes
            .push(json!({"alert_id": a.id, "sha256": sha256_hex(a.json.as_bytes())}));
    }
}

/// The report of an incident (`inc`, its API object) from its alerts, the flow records found
/// for [`flow_keys`] (`flow_lines`, as received) and its history (API objects): `inc` with
/// `history` and `report` added.
pub fn build(
    cfg: &CollectorConfig,
    mut inc: Value,
    alerts: &[ReportAlert],
    flow_lines: &[String],
    history: Vec<Value>,
) -> Value {
    let Gathered {
        alert_ids,
        tuples,
        hashes,
        mut names,
        addresses,
        evidence,
        max_persons,
        scenarios,
        kinds,
    } = Gathered::of(alerts);
    // Names carried by the flow records of the same flows (SNI, HTTP Host, DNS-learned name).
    for js in flow_lines {
        if let Ok((e, _)) = Event::from_json(js) {
            names.add_event(&e);
        }
    }

    let enterprise = inc
        .get("enterprise")
        .and_then(Value::as_str)
        .map(str::to_string);
    let info = enterprise
        .as_deref()
        .and_then(|e| cfg.registry.as_ref().and_then(|r| r.enterprise(e)));
    let gateway = inc
        .get("gateway")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let gw_info = cfg.gateway_info(&gateway);

    // Country: only where the registry names it for the scenario these alerts are about, and
    // the alert kind does not say the far end is someone else (an unfiled recipient, another
    // country than filed).
    let other_party = kinds
        .iter()
        .any(|k| k == "recipient_not_filed" || k == "country_mismatch");
    let mut filed: Vec<Value> = Vec::new();
    let mut countries: BTreeSet<String> = BTreeSet::new();
    if let Some(reg) = &cfg.registry {
        for sc in &scenarios {
            if let Some((name, country)) = reg.recipient(sc) {
                filed.push(json!({"scenario": sc, "name": name, "country": country}));
                countries.insert(country.to_string());
            }
        }
    }
    let (country, country_source) = if other_party || countries.len() != 1 {
        (Value::Null, Value::Null)
    } else {
        (
            json!(countries.iter().next()),
            json!("filed_recipient_of_scenario"),
        )
    };

    // Persons: the largest estimate an alert carries; where the alerts carry only masked
    // evidence, the number of distinct evidence items is a lower bound. The larger wins.
    let distinct_evidence = evidence.len() as i64;
    let alert_persons = max_persons.unwrap_or(0);
    let (persons_estimate, persons_basis) = if alert_persons == 0 && distinct_evidence == 0 {
        (0, "none")
    } else if alert_persons >= distinct_evidence {
        (alert_persons, "alert_persons_max")
    } else {
        (distinct_evidence, "distinct_evidence_lower_bound")
    };

    let get = |k: &str| inc.get(k).cloned().unwrap_or(Value::Null);
    let names_json: Vec<Value> = names
        .list
        .iter()
        .map(|(n, s)| json!({"name": n, "sources": s.iter().collect::<Vec<_>>()}))
        .collect();
    let sni: Vec<&str> = names
        .list
        .iter()
        .filter(|(_, s)| s.contains("sni"))
        .map(|(n, _)| n.as_str())
        .collect();
    let report = json!({
        "unit": info.map(|i| i.name.clone()).or(enterprise.clone()),
        "uscc": info.map(|i| i.uscc.clone()),
        "system": "international leased line",
        "gateway": gateway,
        "line": gw_info.and_then(|g| g.line.clone()),
        "place": gw_info.and_then(|g| g.location.clone()),
        "time": {
            "discovered_at": get("discovered_at"),
            "discovered_at_beijing": beijing_of(inc.get("discovered_at")),
            "last_alert_at": get("last_alert_at"),
            "last_alert_at_beijing": beijing_of(inc.get("last_alert_at")),
            "first_received_at": get("first_received_at"),
            "first_received_at_beijing": beijing_of(inc.get("first_received_at")),
            "deadline_at": get("deadline_at"),
            "deadline_at_beijing": beijing_of(inc.get("deadline_at")),
        },
        "type": get("kind"),
        "impact": {
            "export_bytes": get("bytes"),
            "export_bytes_saturated": get("bytes_saturated"),
            "persons_estimate": persons_estimate,
            "persons_basis": persons_basis,
            "alert_persons_max": max_persons,
            "distinct_evidence_items": distinct_evidence,
        },
        "recipient": {
            "names": names_json,
            "addresses": addresses,
            "country": country,
            "country_source": country_source,
            "filed_recipients": filed,
        },
        "five_tuples": tuples,
        "sni": sni,
        "alert_ids": alert_ids,
        "evidence_hashes": hashes,
        "discovered_at": get("discovered_at"),
        "discovered_at_beijing": beijing_of(inc.get("discovered_at")),
        "level": get("grade"),
        "deadline_at": get("deadline_at"),
        "deadline_at_beijing": beijing_of(inc.get("deadline_at")),
        "late_arrival": get("late_arrival"),
    });
    if let Value::Object(m) = &mut inc {
        m.insert("history".into(), Value::Array(history));
        m.insert("report".into(), report);
    }
    inc
}

/// Chinese name of an alert kind.
pub fn kind_zh(kind: &str) -> &'static str {
    match kind {
        "unfiled_export" => "未申报数据出境",
        "recipient_not_filed" => "境外接收方未在申报范围内",
        "country_mismatch" => "接收方所在国家与申报不一致",
        "filing_expired" => "申报已过有效期",
        "filing_not_yet_valid" => "申报尚未生效",
        "filing_expiring" => "申报即将到期",
        "volume_cap_exceeded" => "超出申报的数据量上限",
        "outside_window" => "超出申报的传输时间窗口",
        "service_not_filed" => "服务（协议/端口）未在申报范围内",
        "personal_info_cleartext" => "明文传输个人信息",
        "persons_threshold" => "个人信息出境人数达到申报门槛",
        "volume_surge" => "出境数据量异常激增",
        "negative_list_category" => "负面清单所列数据类别",
        "opaque_tunnel" => "无法识别内容的加密隧道",
        "line_misuse" => "国际专线违规使用",
        "important_data_marker" => "疑似重要数据",
        "sensor_gap" => "监测中断",
        _ => "其他",
    }
}

/// Chinese name of an incident grade.
pub fn grade_zh(grade: &str) -> &'static str {
    match grade {
        "especially_serious" => "特别重大",
        "serious" => "重大",
        "major" => "较大",
        "compliance" => "合规问题（非分级事件）",
        _ => "自定义等级",
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "未知".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `report_zh` of an incident carrying `report` (see `attach`): the same report with Chinese
/// labels, as ordered fields and as one text block.
pub fn render_zh(inc: &Value) -> Value {
    let r = &inc["report"];
    let names: Vec<String> = r["recipient"]["names"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|n| n["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let addresses: Vec<String> = r["recipient"]["addresses"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|n| n.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let kind = r["type"].as_str().unwrap_or_default();
    let grade = r["level"].as_str().unwrap_or_default();
    let persons_basis = match r["impact"]["persons_basis"].as_str() {
        Some("alert_persons_max") => "告警中的最大估计人数",
        Some("distinct_evidence_lower_bound") => "不同证据条目数（下限）",
        _ => "无个人信息证据",
    };
    let late = if r["late_arrival"].as_bool() == Some(true) {
        "是（首条告警到达时已超过报告时限）"
    } else {
        "否"
    };
    let join = |v: &[String]| {
        if v.is_empty() {
            "未知".to_string()
        } else {
            v.join("、")
        }
    };
    let fields: Vec<(&str, &str, String)> = vec![
        ("unit", "报告单位", text(&r["unit"])),
        ("uscc", "统一社会信用代码", text(&r["uscc"])),
        ("system", "涉事系统", "国际专线".to_string()),
        ("line", "线路名称", text(&r["line"])),
        ("place", "发生地点", text(&r["place"])),
        ("gateway", "监测网关", text(&r["gateway"])),
        (
            "discovered_at_beijing",
            "发现时间（北京时间）",
            text(&r["time"]["discovered_at_beijing"]),
        ),
        (
            "last_alert_at_beijing",
            "最近告警时间（北京时间）",
            text(&r["time"]["last_alert_at_beijing"]),
        ),
        (
            "first_received_at_beijing",
            "首条告警到达时间（北京时间）",
            text(&r["time"]["first_received_at_beijing"]),
        ),
        ("type", "事件类型", format!("{}（{kind}）", kind_zh(kind))),
        (
            "level",
            "事件级别",
            format!("{}（{grade}）", grade_zh(grade)),
        ),
        (
            "deadline_at_beijing",
            "报告时限（北京时间）",
            text(&r["deadline_at_beijing"]),
        ),
        ("late_arrival", "迟到告警", late.to_string()),
        (
            "export_bytes",
            "出境数据量（字节）",
            text(&r["impact"]["export_bytes"]),
        ),
        (
            "persons_estimate",
            "涉及个人信息人数（估计）",
            format!(
                "{}（依据：{persons_basis}）",
                text(&r["impact"]["persons_estimate"])
            ),
        ),
        ("recipient_names", "境外接收方域名", join(&names)),
        ("recipient_addresses", "境外接收方地址", join(&addresses)),
        (
            "country",
            "接收方所在国家/地区",
            text(&r["recipient"]["country"]),
        ),
        (
            "alerts",
            "告警数量",
            text(inc.get("alert_count").unwrap_or(&Value::Null)),
        ),
        ("status", "处置状态", status_zh(inc["status"].as_str())),
    ];
    let mut out = Vec::with_capacity(fields.len());
    let mut block = String::from("数据出境安全事件报告\n");
    for (key, label, value) in &fields {
        out.push(json!({"key": key, "label": label, "value": value}));
        block.push_str(&format!("{label}：{value}\n"));
    }
    let mut m = Map::new();
    m.insert("fields".into(), Value::Array(out));
    m.insert("text".into(), Value::String(block));
    Value::Object(m)
}

fn status_zh(s: Option<&str>) -> String {
    match s {
        Some("open") => "待处置",
        Some("notified") => "已通知",
        Some("acknowledged") => "已确认",
        Some("resolved") => "已解决",
        _ => "未知",
    }
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beijing_time_is_utc_plus_8() {
        assert_eq!(
            format_beijing(1_772_442_847_118),
            "2026-03-02T17:14:07.118+08:00"
        );
        // Across midnight.
        assert_eq!(
            format_beijing(crate::util::parse_rfc3339_ms("2026-03-02T20:00:00Z").unwrap_or(0)),
            "2026-03-03T04:00:00.000+08:00"
        );
    }

    #[test]
    fn names_skip_addresses_and_keep_sources() {
        let mut n = Names::default();
        n.add("A.Example.COM.", "sni");
        n.add("a.example.com", "http_host");
        n.add("203.0.113.5", "alert_recipient");
        n.add("", "dns");
        assert_eq!(n.list.len(), 1);
        assert_eq!(n.list[0].0, "a.example.com");
        assert_eq!(
            n.list[0].1.iter().copied().collect::<Vec<_>>(),
            ["http_host", "sni"]
        );
    }
}
