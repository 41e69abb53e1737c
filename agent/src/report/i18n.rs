//! Every human-readable string of the self-check report, in Chinese and English.
//!
//! One [`Strings`] value per language, so the compiler checks that each label exists in both.
//! Templates use `{0}`, `{1}`, ... placeholders filled by [`fill`]; values are HTML-escaped by the
//! caller before they are filled in. Legal references follow DOMAIN.md: M = Beijing measure
//! (京网办发〔2024〕17号), O16 = CAC Order 16, PIPL = Personal Information Protection Law.

use crossline_config::event::{AlertKind, VerdictStatus};

/// Report language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    /// Simplified Chinese (default).
    #[default]
    Zh,
    /// English.
    En,
}

impl Lang {
    /// Parse `zh` / `en` (case-insensitive; `zh-cn`, `en-us` accepted).
    pub fn parse(s: &str) -> Option<Lang> {
        let s = s.to_ascii_lowercase();
        if s == "zh" || s.starts_with("zh-") || s.starts_with("zh_") {
            Some(Lang::Zh)
        } else if s == "en" || s.starts_with("en-") || s.starts_with("en_") {
            Some(Lang::En)
        } else {
            None
        }
    }

    /// The `lang` attribute value.
    pub fn html_tag(self) -> &'static str {
        match self {
            Lang::Zh => "zh-CN",
            Lang::En => "en",
        }
    }

    /// The string table of this language.
    pub fn strings(self) -> &'static Strings {
        match self {
            Lang::Zh => &ZH,
            Lang::En => &EN,
        }
    }
}

impl std::str::FromStr for Lang {
    type Err = String;

    fn from_str(s: &str) -> Result<Lang, String> {
        Lang::parse(s).ok_or_else(|| format!("unknown report language {s:?}: expected zh or en"))
    }
}

/// Texts about one alert kind.
#[derive(Debug, Clone, Copy)]
pub struct KindText {
    /// Short name.
    pub name: &'static str,
    /// What the finding means.
    pub meaning: &'static str,
    /// Legal basis it concerns (DOMAIN.md section 3, "Serves").
    pub basis: &'static str,
    /// What to do about it: the filing route and the measure it relates to.
    pub action: &'static str,
}

/// Names of the legal bases of a filing (registry `basis`).
#[derive(Debug, Clone, Copy)]
#[allow(missing_docs)]
pub struct BasisText {
    pub security_assessment: &'static str,
    pub standard_contract: &'static str,
    pub certification: &'static str,
    pub exemption: &'static str,
    pub ftz_negative_list: &'static str,
}

/// All labels of one language. Each field is named after the place it is used (`col_*` are
/// table column heads, `chart_*` chart titles and notes, `section_*` section titles and notes,
/// `verdict_*` conclusion sentences); templates say which placeholders they take.
#[derive(Debug)]
#[allow(missing_docs)]
pub struct Strings {
    pub title: &'static str,
    pub subtitle: &'static str,
    pub generated: &'static str,
    pub gateways: &'static str,
    pub enterprises_in_registry: &'static str,
    pub conclusion: &'static str,
    /// `{0}` exports, `{1}` recipients.
    pub verdict_unfiled: &'static str,
    /// Follows `verdict_unfiled` when the route can be narrowed: `{0}` route.
    pub verdict_route: &'static str,
    /// Like `verdict_route` when the capture gave no person count: `{0}` route.
    pub verdict_route_unknown: &'static str,
    /// `{0}` packets dropped during capture.
    pub drops: &'static str,
    pub route_assessment: &'static str,
    pub route_contract: &'static str,
    pub route_contract_or_assessment: &'static str,
    /// `{0}` exports.
    pub verdict_deviation: &'static str,
    /// `{0}` cross-border exports.
    pub verdict_clean: &'static str,
    pub verdict_no_exports: &'static str,
    /// `{0}` flows without a verdict (classification was off).
    pub verdict_unclassified: &'static str,
    /// `{0}` number of other findings (PI, caps, ...) worth reading.
    pub verdict_other_findings: &'static str,
    pub capture_span: &'static str,
    pub packets: &'static str,
    pub flows: &'static str,
    pub cross_border_flows: &'static str,
    pub export_filed: &'static str,
    pub export_not_filed: &'static str,
    pub duration: &'static str,
    pub of_export: &'static str,
    pub no_data: &'static str,
    pub chart_time_title: &'static str,
    pub chart_time_note: &'static str,
    /// `{0}` width of one bar, e.g. `10 min`.
    pub chart_bin: &'static str,
    pub chart_recipients_title: &'static str,
    pub chart_recipients_note: &'static str,
    pub chart_heat_title: &'static str,
    pub chart_heat_note: &'static str,
    pub hour: &'static str,
    pub section_scenarios: &'static str,
    pub section_scenarios_note: &'static str,
    pub col_enterprise: &'static str,
    pub col_scenario: &'static str,
    pub col_basis: &'static str,
    pub col_recipient: &'static str,
    pub col_validity: &'static str,
    pub col_flows: &'static str,
    pub col_export: &'static str,
    pub col_cap: &'static str,
    pub col_max_day: &'static str,
    pub col_days_over: &'static str,
    pub col_persons: &'static str,
    pub col_status: &'static str,
    pub no_filing: &'static str,
    pub unknown_enterprise: &'static str,
    pub unregistered: &'static str,
    pub no_cap: &'static str,
    pub expired: &'static str,
    /// `{0}` days left.
    pub expires_in: &'static str,
    pub valid: &'static str,
    pub not_yet_valid: &'static str,
    pub unused: &'static str,
    pub section_persons: &'static str,
    pub section_persons_note: &'static str,
    pub persons_estimate: &'static str,
    pub persons_declared: &'static str,
    pub thresholds: &'static str,
    pub threshold_small: &'static str,
    pub threshold_assessment: &'static str,
    pub threshold_sensitive: &'static str,
    pub uscc: &'static str,
    pub ciio: &'static str,
    pub green_channel: &'static str,
    pub ftz: &'static str,
    pub section_expiring: &'static str,
    pub section_expiring_note: &'static str,
    pub none_expiring: &'static str,
    pub section_findings: &'static str,
    pub section_findings_note: &'static str,
    pub no_findings: &'static str,
    pub alerts: &'static str,
    pub occurrences: &'static str,
    pub bytes: &'static str,
    pub severity: &'static str,
    pub legal_basis: &'static str,
    pub what_to_do: &'static str,
    pub recipients: &'static str,
    pub services: &'static str,
    pub evidence: &'static str,
    pub evidence_note: &'static str,
    pub examples: &'static str,
    pub col_time: &'static str,
    pub col_summary: &'static str,
    /// `{0}` more values not listed.
    pub and_more: &'static str,
    pub section_method: &'static str,
    pub method_points: [&'static str; 5],
    pub severities: [&'static str; 5],
    /// Indexed like `VerdictStatus` (unfiled .. not_cross_border).
    pub verdicts: [&'static str; 9],
    /// Indexed like `AlertKind::ALL`.
    pub kinds: [KindText; 17],
    pub basis: BasisText,
    pub exemption_prefix: &'static str,
    /// CAC Order 16 article of each exemption: art3, art4, art5_contract, art5_hr,
    /// art5_emergency, art5_small.
    pub exemption_articles: [&'static str; 6],
    pub weekdays: [&'static str; 7],
    pub footer: &'static str,
}

impl Strings {
    /// Label of a verdict.
    pub fn verdict(&self, v: VerdictStatus) -> &'static str {
        self.verdicts[verdict_index(v)]
    }

    /// Texts of an alert kind.
    pub fn kind(&self, k: AlertKind) -> &KindText {
        &self.kinds[kind_index(k)]
    }
}

/// Position of a verdict in [`Strings::verdicts`] and in the report's verdict arrays.
pub fn verdict_index(v: VerdictStatus) -> usize {
    match v {
        VerdictStatus::Unfiled => 0,
        VerdictStatus::RecipientNotFiled => 1,
        VerdictStatus::ServiceNotFiled => 2,
        VerdictStatus::FilingExpired => 3,
        VerdictStatus::FilingNotYetValid => 4,
        VerdictStatus::OutsideWindow => 5,
        VerdictStatus::Filed => 6,
        VerdictStatus::NotCrossBorder => 7,
        VerdictStatus::Excluded => 8,
    }
}

/// Position of an alert kind in [`AlertKind::ALL`].
pub fn kind_index(k: AlertKind) -> usize {
    AlertKind::ALL.iter().position(|x| *x == k).unwrap_or(0)
}

/// Replace `{0}`, `{1}`, ... in `template` by `args`.
pub fn fill(template: &str, args: &[&str]) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                match after[..close]
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| args.get(i))
                {
                    Some(value) => out.push_str(value),
                    None => out.push_str(&rest[open..open + close + 2]),
                }
                rest = &after[close + 1..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Chinese.
pub static ZH: Strings = Strings {
    title: "数据出境自查报告",
    subtitle: "国际数据传输专线流量与已备案出境场景比对",
    generated: "生成时间",
    gateways: "网关",
    enterprises_in_registry: "登记企业",
    conclusion: "结论",
    verdict_unfiled: "{0} 次数据出境（发往 {1} 个接收方）未被任何已备案场景覆盖。继续传输前，请订立并备案标准合同，或申报数据出境安全评估（措施十四）。",
    verdict_route: "依据已观测到的个人信息规模，建议路径：{0}。",
    verdict_route_unknown: "本次采集未能统计个人信息人数，请按数据类别与人数选择路径：{0}。",
    drops: "丢包 {0}",
    route_assessment: "申报数据出境安全评估（《促进和规范数据跨境流动规定》第七条）",
    route_contract: "订立个人信息出境标准合同并备案，或通过个人信息保护认证（第八条）",
    route_contract_or_assessment: "先核实出境数据类别与人数：标准合同/认证（第八条）或安全评估（第七条），如适用可援引第三至五条豁免或自贸区负面清单（措施六）",
    verdict_deviation: "所有出境均有备案，但 {0} 次出境超出了备案条件（服务、有效期或时间窗口），请按下文调整备案或传输方式（措施十四、十五）。",
    verdict_clean: "观测到的 {0} 次跨境出境均由有效备案覆盖。",
    verdict_no_exports: "本次采集未观测到跨境出境流量。",
    verdict_unclassified: "{0} 条流没有判定结果：本次分析未启用备案比对，无法判断出境是否已备案。",
    verdict_other_findings: "另有 {0} 类发现（如个人信息明文、流量上限）需要处理，详见下文。",
    capture_span: "采集时段（北京时间）",
    packets: "数据包",
    flows: "流",
    cross_border_flows: "跨境流",
    export_filed: "已备案出境",
    export_not_filed: "未备案出境",
    duration: "时长",
    of_export: "占出境总量",
    no_data: "无数据",
    chart_time_title: "出境字节随时间变化（按判定结果堆叠）",
    chart_time_note: "北京时间；每根柱代表一个时间区间内结束的流的出境字节。",
    chart_bin: "每根柱 {0}。",
    chart_recipients_title: "出境字节最多的接收方",
    chart_recipients_note: "接收方为 TLS/QUIC SNI、HTTP Host、DNS 名称，否则为 IP 地址。",
    chart_heat_title: "未备案出境热力图（日期 × 小时，北京时间）",
    chart_heat_note: "颜色越深，该小时内未被备案覆盖的出境字节越多。",
    hour: "时",
    section_scenarios: "按企业与场景统计",
    section_scenarios_note: "出境字节、流数、每日上限对比（仅计已备案流量）及有效期。",
    col_enterprise: "企业",
    col_scenario: "场景 / 备案编号",
    col_basis: "依据",
    col_recipient: "境外接收方",
    col_validity: "有效期",
    col_flows: "流数",
    col_export: "出境字节",
    col_cap: "每日上限",
    col_max_day: "单日最高",
    col_days_over: "超限天数",
    col_persons: "人数估计",
    col_status: "状态",
    no_filing: "无备案",
    unknown_enterprise: "未识别企业",
    unregistered: "未登记",
    no_cap: "未设上限",
    expired: "已过期",
    expires_in: "{0} 天后到期",
    valid: "有效",
    not_yet_valid: "尚未生效",
    unused: "未观测到流量",
    section_persons: "个人信息人数与法定门槛",
    section_persons_note: "人数为本年度（北京时间）累计的下限估计，按统一社会信用代码统计；只包括本次采集中明文可见的标识。",
    persons_estimate: "估计人数（下限）",
    persons_declared: "备案申报人数",
    thresholds: "门槛",
    threshold_small: "10 万人：第五条第（四）项豁免上限，达到即需标准合同或认证",
    threshold_assessment: "100 万人：达到即需安全评估（第七条）",
    threshold_sensitive: "1 万人敏感个人信息：达到即需安全评估（第七条）",
    uscc: "统一社会信用代码",
    ciio: "关键信息基础设施运营者",
    green_channel: "绿色通道（措施七）",
    ftz: "自贸试验区（措施六）",
    section_expiring: "即将到期或已过期的备案",
    section_expiring_note: "以采集结束日为准；安全评估结果有效期 3 年，可在到期前 60 个工作日内申请延期（第九条）。",
    none_expiring: "没有在 60 天内到期或已过期的备案。",
    section_findings: "发现（按告警类型）",
    section_findings_note: "证据均为告警携带的脱敏形式；报告不包含任何原始个人标识。",
    no_findings: "没有告警。",
    alerts: "告警",
    occurrences: "次数",
    bytes: "字节",
    severity: "级别",
    legal_basis: "涉及依据",
    what_to_do: "处理建议",
    recipients: "接收方",
    services: "服务",
    evidence: "证据（脱敏）",
    evidence_note: "已脱敏",
    examples: "示例",
    col_time: "时间（北京）",
    col_summary: "摘要",
    and_more: "另有 {0} 项",
    section_method: "方法与局限",
    method_points: [
        "出境字节为境内端发送的整帧字节（与 tshark 会话统计口径一致）；境外方查询或下载境内数据同样计为出境。",
        "判定顺序：来源未备案 → 接收方未备案 → 服务未备案 → 备案失效 → 时间窗口外 → 已备案（最具体的场景）。",
        "使用 ECH 的连接不信任外层 SNI，仅按地址或 DNS 名称匹配。",
        "流量无法证明：出境依据是否真实、是否取得单独同意、个人信息保护影响评估、关键信息基础设施身份及其他出境途径。人数与字节均为下限。",
        "本报告为合规自查辅助，不构成法律意见。",
    ],
    severities: ["提示", "低", "中", "高", "严重"],
    verdicts: [
        "未备案",
        "接收方未备案",
        "服务未备案",
        "备案已失效",
        "备案尚未生效",
        "时间窗口外",
        "已备案",
        "非跨境",
        "已排除（基础设施）",
    ],
    kinds: [
        KindText {
            name: "未备案出境",
            meaning: "境内主机向境外发送数据，没有任何有效场景覆盖该来源。",
            basis: "措施十四；《个人信息保护法》第三十八条；《促进和规范数据跨境流动规定》第七、八条",
            action: "暂停或确认该传输：核实数据类别与人数后，选择安全评估（重要数据、100 万人以上个人信息、1 万人以上敏感个人信息或关键信息基础设施运营者）、标准合同备案或认证（10 万至 100 万人、不足 1 万人敏感个人信息），或核实是否适用第三至五条豁免、自贸区负面清单（措施六）；完成后将场景登记入备案清单。",
        },
        KindText {
            name: "接收方未备案",
            meaning: "已备案的境内主机向备案之外的境外地址、SNI 或域名发送数据。",
            basis: "措施十四；《个人信息保护法》第三十九条",
            action: "若为新的接收方：变更或重新备案标准合同/申报评估，并就该接收方取得个人单独同意；若为误配置：停止向该地址传输。",
        },
        KindText {
            name: "接收方国家不符",
            meaning: "接收方地址所在国家与备案国家不一致。",
            basis: "措施十四",
            action: "核实接收方实际存储地点；如有变化，变更备案中的接收方信息。",
        },
        KindText {
            name: "备案已失效",
            meaning: "传输发生在备案有效期之外。",
            basis: "《促进和规范数据跨境流动规定》第九条",
            action: "停止依赖该备案的传输，重新申报安全评估或重新备案标准合同；评估结果到期前 60 个工作日内可申请延期 3 年。",
        },
        KindText {
            name: "备案尚未生效",
            meaning: "传输发生在备案有效期开始之前。",
            basis: "《促进和规范数据跨境流动规定》第九条",
            action: "在备案生效之日前暂停该传输，或核实备案的生效日期是否登记正确。",
        },
        KindText {
            name: "备案即将到期",
            meaning: "备案有效期剩余不足 60 个工作日。",
            basis: "《促进和规范数据跨境流动规定》第九条",
            action: "立即申请延期（安全评估）或准备续签并备案标准合同。",
        },
        KindText {
            name: "超出每日上限",
            meaning: "某场景一天的出境字节超过备案的每日上限。",
            basis: "措施十五",
            action: "核实超量原因；如业务确需，变更备案的传输规模，否则控制传输量。",
        },
        KindText {
            name: "时间窗口外",
            meaning: "传输发生在备案的日期或时段之外。",
            basis: "措施十五",
            action: "将传输安排在备案时间窗口内，或变更备案的传输时段。",
        },
        KindText {
            name: "服务未备案",
            meaning: "使用了备案之外的端口、协议或应用。",
            basis: "措施十四",
            action: "将该服务补充进备案，或停止使用该协议传输。",
        },
        KindText {
            name: "个人信息明文传输",
            meaning: "负载中出现有效的身份证号、手机号或银行卡号，且未加密。",
            basis: "措施十三、十四；《个人信息保护法》第五十一条",
            action: "改为加密传输（TLS），确认所涉个人信息已在备案范围内；金融账户属敏感个人信息（第二十八条）。",
        },
        KindText {
            name: "人数达到门槛",
            meaning: "本年度出境个人信息人数达到法定门槛或申报人数的 80%/100%。",
            basis: "《促进和规范数据跨境流动规定》第五条第（四）项、第七条、第八条",
            action: "按人数升级出境路径：10 万人起需标准合同或认证，100 万人或 1 万人敏感个人信息起需安全评估；同步更新备案申报人数。",
        },
        KindText {
            name: "流量突增",
            meaning: "出境字节显著高于过去 28 天同一时段的基线。",
            basis: "措施十五",
            action: "确认突增有业务依据并留存说明；如为异常外传，按事件处置流程处理。",
        },
        KindText {
            name: "负面清单数据",
            meaning: "自贸区负面清单所列数据发往未获批准的接收方。",
            basis: "措施六；《促进和规范数据跨境流动规定》第六条",
            action: "清单内数据须按清单要求完成安全评估、标准合同或认证，并仅发往获批接收方。",
        },
        KindText {
            name: "不透明隧道",
            meaning: "专线上出现 WireGuard/IPsec/OpenVPN 或无法识别的高熵加密流量。",
            basis: "工信部 2017 年通知；措施十四",
            action: "国际专线仅限内部办公使用，拆除未经批准的 VPN/隧道，或说明其用途。",
        },
        KindText {
            name: "专线滥用",
            meaning: "大量境外来源访问境内服务，专线疑似用于对外业务平台。",
            basis: "工信部 2017 年通知",
            action: "专线不得用于连接数据中心或业务平台，调整网络架构。",
        },
        KindText {
            name: "重要数据特征",
            meaning: "负载命中重要数据目录特征。",
            basis: "《数据安全法》第三十一条；措施十三",
            action: "立即停止传输并向行业主管部门报告；重要数据出境须通过安全评估。",
        },
        KindText {
            name: "监测缺口",
            meaning: "采集丢包或代理停止，期间流量未被完整观测。",
            basis: "措施十五",
            action: "修复采集（缓冲区、队列、网卡），本报告数字为下限。",
        },
    ],
    basis: BasisText {
        security_assessment: "安全评估",
        standard_contract: "标准合同",
        certification: "个人信息保护认证",
        exemption: "豁免",
        ftz_negative_list: "自贸区负面清单",
    },
    exemption_prefix: "豁免",
    exemption_articles: [
        "第三条",
        "第四条",
        "第五条第（一）项",
        "第五条第（二）项",
        "第五条第（三）项",
        "第五条第（四）项",
    ],
    weekdays: ["周一", "周二", "周三", "周四", "周五", "周六", "周日"],
    footer: "crossline 自查报告 · 离线生成，不含外部资源",
};

/// English.
pub static EN: Strings = Strings {
    title: "Cross-border data export self-check",
    subtitle: "Leased-line traffic compared with the filed transfer scenarios",
    generated: "Generated",
    gateways: "Gateways",
    enterprises_in_registry: "Enterprises registered",
    conclusion: "Conclusion",
    verdict_unfiled: "{0} exports to {1} recipients are not covered by any filing; file a standard contract or apply for a security assessment before continuing (measure 十四).",
    verdict_route: "Given the personal information observed, the suggested route is: {0}.",
    verdict_route_unknown: "This capture gives no person count; choose by data categories and persons: {0}.",
    drops: "{0} dropped",
    route_assessment: "apply for a security assessment (CAC Order 16, Art. 7)",
    route_contract: "file a standard contract or obtain certification (CAC Order 16, Art. 8)",
    route_contract_or_assessment: "confirm data categories and person counts first: standard contract / certification (Art. 8) or security assessment (Art. 7); where applicable an exemption (Arts. 3–5) or the FTZ negative list (measure 六)",
    verdict_deviation: "Every export has a filing, but {0} exports fall outside its conditions (service, validity or time window); adjust the filing or the transfers as set out below (measures 十四, 十五).",
    verdict_clean: "All {0} cross-border exports observed are covered by valid filings.",
    verdict_no_exports: "No cross-border exports were observed in this capture.",
    verdict_unclassified: "{0} flows carry no verdict: classification against the filings was not run, so this report cannot tell whether exports are filed.",
    verdict_other_findings: "{0} further kinds of findings (e.g. cleartext personal information, caps) need attention; see below.",
    capture_span: "Capture span (Beijing time)",
    packets: "Packets",
    flows: "Flows",
    cross_border_flows: "Cross-border flows",
    export_filed: "Export, filed",
    export_not_filed: "Export, not filed",
    duration: "duration",
    of_export: "of export",
    no_data: "No data",
    chart_time_title: "Export bytes over time, stacked by verdict",
    chart_time_note: "Beijing time; each bar holds the export bytes of flow records ending in that interval.",
    chart_bin: "One bar = {0}.",
    chart_recipients_title: "Top recipients by export bytes",
    chart_recipients_note: "A recipient is the TLS/QUIC SNI, HTTP Host or DNS name, else the IP address.",
    chart_heat_title: "Exports not covered by a filing, day × hour (Beijing time)",
    chart_heat_note: "Darker cells carry more export bytes not covered by a filing.",
    hour: "h",
    section_scenarios: "By enterprise and scenario",
    section_scenarios_note: "Export bytes, flows, days against the daily cap (filed traffic only) and validity.",
    col_enterprise: "Enterprise",
    col_scenario: "Scenario / filing",
    col_basis: "Basis",
    col_recipient: "Recipient abroad",
    col_validity: "Valid",
    col_flows: "Flows",
    col_export: "Export",
    col_cap: "Daily cap",
    col_max_day: "Max day",
    col_days_over: "Days over cap",
    col_persons: "Persons est.",
    col_status: "Status",
    no_filing: "No filing",
    unknown_enterprise: "Unidentified enterprise",
    unregistered: "not in registry",
    no_cap: "no cap",
    expired: "expired",
    expires_in: "expires in {0} days",
    valid: "valid",
    not_yet_valid: "not yet valid",
    unused: "no traffic seen",
    section_persons: "Persons against the legal thresholds",
    section_persons_note: "Persons are a lower-bound estimate, cumulative from 1 January (Beijing time), per unified social credit code, from identifiers visible in cleartext in this capture.",
    persons_estimate: "Estimated persons (lower bound)",
    persons_declared: "Declared persons per year",
    thresholds: "Thresholds",
    threshold_small: "100,000: limit of the Art. 5(4) exemption; from here a standard contract or certification is needed",
    threshold_assessment: "1,000,000: security assessment required (Art. 7)",
    threshold_sensitive: "10,000 persons' sensitive PI: security assessment required (Art. 7)",
    uscc: "USCC",
    ciio: "critical information infrastructure operator",
    green_channel: "green channel (measure 七)",
    ftz: "free trade zone (measure 六)",
    section_expiring: "Filings expiring soon or expired",
    section_expiring_note: "Judged on the last day of the capture; an assessment result is valid 3 years and may be extended in the 60 working days before expiry (Art. 9).",
    none_expiring: "No filing expires within 60 days or has expired.",
    section_findings: "Findings by alert kind",
    section_findings_note: "Evidence is shown masked, exactly as the alerts carry it; the report holds no raw personal identifier.",
    no_findings: "No alerts.",
    alerts: "Alerts",
    occurrences: "Occurrences",
    bytes: "Bytes",
    severity: "Severity",
    legal_basis: "Legal basis",
    what_to_do: "What to do",
    recipients: "Recipients",
    services: "Services",
    evidence: "Evidence (masked)",
    evidence_note: "masked",
    examples: "Examples",
    col_time: "Time (Beijing)",
    col_summary: "Summary",
    and_more: "and {0} more",
    section_method: "Method and limits",
    method_points: [
        "Export bytes are whole frames sent by the domestic endpoint (as tshark counts conversations); an overseas party downloading data held in China is export too.",
        "Checks in order: source not filed → recipient not filed → service not filed → filing not valid → outside window → filed (most specific scenario).",
        "Connections offering ECH never match on their outer SNI; they match by address or DNS name only.",
        "Traffic cannot show the genuineness of a basis, separate consent, impact assessments, CIIO status or other export routes. Persons and bytes are lower bounds.",
        "This report supports a compliance self-check; it is not legal advice.",
    ],
    severities: ["info", "low", "medium", "high", "critical"],
    verdicts: [
        "Not filed",
        "Recipient not filed",
        "Service not filed",
        "Filing expired",
        "Filing not yet valid",
        "Outside window",
        "Filed",
        "Not cross-border",
        "Excluded (infrastructure)",
    ],
    kinds: [
        KindText {
            name: "Unfiled export",
            meaning: "A domestic host sent data abroad and no valid scenario covers that source.",
            basis: "Measure 十四; PIPL Art. 38; CAC Order 16 Arts. 7–8",
            action: "Stop or confirm the transfer. Establish the data categories and persons, then apply for a security assessment (important data, ≥1M persons, ≥10k persons' sensitive PI, or a CIIO), file a standard contract or obtain certification (100k–1M persons, <10k sensitive), or confirm an exemption (Arts. 3–5) or the FTZ negative list (measure 六); then register the scenario.",
        },
        KindText {
            name: "Recipient not filed",
            meaning: "A filed domestic host sent data to an address, SNI or name outside its filing.",
            basis: "Measure 十四; PIPL Art. 39",
            action: "For a new recipient: amend or re-file the standard contract / assessment and obtain separate consent naming it. For a misconfiguration: stop sending there.",
        },
        KindText {
            name: "Country mismatch",
            meaning: "The recipient's address lies in a country other than the filed one.",
            basis: "Measure 十四",
            action: "Verify where the recipient stores the data; amend the filed recipient if it changed.",
        },
        KindText {
            name: "Filing expired",
            meaning: "Transfers happened outside the filing's validity.",
            basis: "CAC Order 16 Art. 9",
            action: "Stop relying on the filing; re-apply for the assessment or re-file the contract. An assessment can be extended by 3 years when requested in the 60 working days before expiry.",
        },
        KindText {
            name: "Filing not yet valid",
            meaning: "Transfers happened before the filing's validity begins.",
            basis: "CAC Order 16 Art. 9",
            action: "Hold the transfer until the filing's start date, or check that the start date was registered correctly.",
        },
        KindText {
            name: "Filing expiring",
            meaning: "Fewer than 60 working days of validity are left.",
            basis: "CAC Order 16 Art. 9",
            action: "Request the extension now (assessment) or prepare and file the renewed standard contract.",
        },
        KindText {
            name: "Daily cap exceeded",
            meaning: "A scenario exported more bytes in a day than its filed cap.",
            basis: "Measure 十五",
            action: "Find the cause; amend the filed volume if the business needs it, else throttle.",
        },
        KindText {
            name: "Outside window",
            meaning: "Transfers happened outside the filed days or hours.",
            basis: "Measure 十五",
            action: "Schedule transfers inside the filed window or amend the window.",
        },
        KindText {
            name: "Service not filed",
            meaning: "A port, protocol or application outside the filing was used.",
            basis: "Measure 十四",
            action: "Add the service to the filing or stop using it for the transfer.",
        },
        KindText {
            name: "Personal information in cleartext",
            meaning: "A valid resident ID, mobile or card number travelled unencrypted.",
            basis: "Measures 十三, 十四; PIPL Art. 51",
            action: "Encrypt in transit (TLS) and confirm the personal information is within the filing; financial accounts are sensitive PI (PIPL Art. 28).",
        },
        KindText {
            name: "Persons threshold",
            meaning: "Persons exported this year reached 80%/100% of a legal threshold or the declared count.",
            basis: "CAC Order 16 Arts. 5(4), 7, 8",
            action: "Move to the route the count requires: standard contract or certification from 100k persons, security assessment from 1M persons or 10k persons' sensitive PI; update the declared count.",
        },
        KindText {
            name: "Volume surge",
            meaning: "Export bytes far above the 28-day same-hour-of-week baseline.",
            basis: "Measure 十五",
            action: "Confirm a business reason and keep a note; treat an unexplained surge as a possible leak.",
        },
        KindText {
            name: "Negative-list data",
            meaning: "Data on the FTZ negative list went to an unapproved recipient.",
            basis: "Measure 六; CAC Order 16 Art. 6",
            action: "Listed data needs the route the list requires (assessment, contract or certification) and may only go to the approved recipient.",
        },
        KindText {
            name: "Opaque tunnel",
            meaning: "WireGuard/IPsec/OpenVPN or unidentified high-entropy traffic on the line.",
            basis: "MIIT 2017 notice; measure 十四",
            action: "International leased lines are for internal office use only: remove unapproved VPNs/tunnels or document them.",
        },
        KindText {
            name: "Line misuse",
            meaning: "Many foreign sources reach domestic services: the line seems to serve a business platform.",
            basis: "MIIT 2017 notice",
            action: "Leased lines may not connect data centres or business platforms; change the network design.",
        },
        KindText {
            name: "Important-data marker",
            meaning: "Payload matched an important-data catalogue signature.",
            basis: "DSL Art. 31; measure 十三",
            action: "Stop the transfer and report to the sector authority; exporting important data requires a security assessment.",
        },
        KindText {
            name: "Sensor gap",
            meaning: "Capture loss or agent downtime: traffic was not fully observed.",
            basis: "Measure 十五",
            action: "Fix the capture (buffers, queues, NIC); figures in this report are lower bounds.",
        },
    ],
    basis: BasisText {
        security_assessment: "Security assessment",
        standard_contract: "Standard contract",
        certification: "Certification",
        exemption: "Exemption",
        ftz_negative_list: "FTZ negative list",
    },
    exemption_prefix: "Exemption",
    exemption_articles: [
        "O16 Art. 3",
        "O16 Art. 4",
        "O16 Art. 5(1)",
        "O16 Art. 5(2)",
        "O16 Art. 5(3)",
        "O16 Art. 5(4)",
    ],
    weekdays: ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"],
    footer: "crossline self-check report · generated offline, no external resources",
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_replaces_placeholders() {
        assert_eq!(fill("{0} to {1}", &["3", "2"]), "3 to 2");
        assert_eq!(fill("{2} {x} {", &["a"]), "{2} {x} {");
    }

    #[test]
    fn lang_parse() {
        assert_eq!(Lang::parse("ZH"), Some(Lang::Zh));
        assert_eq!(Lang::parse("en-US"), Some(Lang::En));
        assert_eq!(Lang::parse("fr"), None);
    }

    #[test]
    fn every_kind_has_a_basis_in_both_languages() {
        for k in AlertKind::ALL {
            for s in [&ZH, &EN] {
                let t = s.kind(k);
                assert!(!t.name.is_empty() && !t.basis.is_empty() && !t.action.is_empty());
            }
        }
    }
}
