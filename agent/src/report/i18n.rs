//! Every human-readable string of the self-check report, in Chinese and English.
//!
//! One [`Strings`] value per language, so the compiler checks that each label exists in both.
//! Templates use `{0}`, `{1}`, ... placeholders filled by [`fill`]; values are HTML-escaped by the
//! caller before they are filled in. Legal references are explained in `docs/legal.md`: Measure N = the Beijing measures on
//! facilitating cross-border data flows (京网办发〔2024〕17号), O16 = CAC Order 16, PIPL = Personal
//! Information Protection Law.

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
    /// Legal basis it concerns (see `docs/legal.md`).
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
    pub verdict_uncovered: &'static str,
    /// `verdict_uncovered` for exports to a single recipient: `{0}` exports.
    pub verdict_uncovered_one_recipient: &'static str,
    /// `verdict_uncovered` for a single export.
    pub verdict_uncovered_one: &'static str,
    /// `{0}` exports.
    pub verdict_deviation: &'static str,
    /// `{0}` cross-border exports.
    pub verdict_clean: &'static str,
    pub verdict_no_exports: &'static str,
    /// `{0}` flows without a verdict (classification was off).
    pub verdict_unclassified: &'static str,
    /// `{0}` number of other findings (PI, caps, ...) worth reading.
    pub verdict_other_findings: &'static str,
    /// `{0}` flows, `{1}` bytes left out as infrastructure traffic.
    pub verdict_excluded: &'static str,
    /// `{0}` packets dropped during capture.
    pub drops: &'static str,
    /// `{0}` exports, `{1}` filing id, `{2}` enterprise, `{3}` recipients.
    pub advice_recipient: &'static str,
    /// `{0}` exports, `{1}` enterprise, `{2}` recipients (no filing id known).
    pub advice_recipient_no_filing: &'static str,
    /// `{0}` exports, `{1}` recipients.
    pub advice_unfiled: &'static str,
    /// `{0}` persons (below 100,000), `{1}` the route options.
    pub route_small: &'static str,
    /// `{0}` persons, `{1}` route.
    pub route_known: &'static str,
    /// `{0}` route.
    pub route_important: &'static str,
    /// `{0}` the route options.
    pub route_unknown: &'static str,
    pub route_assessment: &'static str,
    pub route_contract: &'static str,
    pub route_options: &'static str,
    /// `{0}` filing, `{1}` enterprise, `{2}` services.
    pub advice_service: &'static str,
    /// `{0}` filing, `{1}` enterprise, `{2}` exports.
    pub advice_window: &'static str,
    /// `{0}` filing, `{1}` enterprise, `{2}` cap, `{3}` days over the cap.
    pub advice_cap: &'static str,
    /// `{0}` filing, `{1}` enterprise, `{2}` start date, `{3}` exports.
    pub advice_not_yet_valid: &'static str,
    /// `{0}` filing, `{1}` enterprise, `{2}` end date, `{3}` exports.
    pub advice_expired: &'static str,
    /// `{0}` filing, `{1}` enterprise, `{2}` end date.
    pub advice_expiring: &'static str,
    /// `{0}` further filings with the same kind of finding.
    pub advice_more: &'static str,
    /// Separator of the items of a list of names.
    pub list_sep: &'static str,
    /// Between a label and its value.
    pub colon: &'static str,
    /// Between two sentences.
    pub sentence_gap: &'static str,
    /// Unit names: day, hour, minute, second.
    pub units: [&'static str; 4],
    /// `{0}` shown, `{1}` total: the line under a cut table or list.
    pub shown_of: &'static str,
    /// Like `shown_of` when the total is only known as a lower bound.
    pub shown_of_at_least: &'static str,
    /// Under a cut example table: which alerts were kept.
    pub examples_kept: &'static str,
    /// Under a cut recipient chart.
    pub recipients_kept: &'static str,
    /// Under a cut heat map.
    pub days_kept: &'static str,
    /// Legend of the `≥` marker of the recipient chart.
    pub legend_lower_bound: &'static str,
    pub legend_threshold: &'static str,
    pub legend_declared: &'static str,
    pub legend_persons_fill: &'static str,
    pub legend_heat_none: &'static str,
    pub section_excluded: &'static str,
    pub section_excluded_note: &'static str,
    pub col_exclude_entry: &'static str,
    /// Example sentence: `{0}` bytes, `{1}` recipient, `{2}` service (a flow's part).
    pub ex_flow: &'static str,
    /// Example sentence, the reason, per alert kind (indexed like `AlertKind::ALL`):
    /// `{0}` filing, `{1}` valid from, `{2}` valid until, `{3}` persons, `{4}` count,
    /// `{5}` bytes, `{6}` daily cap, `{7}` service.
    pub ex_why: [&'static str; 17],
    /// `{0}` days: appended to a not-yet-valid reason.
    pub ex_days_until: &'static str,
    /// `{0}` working days: appended to an expiring reason.
    pub ex_working_days_left: &'static str,
    /// Joins the flow part and the reason.
    pub ex_join: &'static str,
    pub sentence_end: &'static str,
    /// `{0}` start date, `{1}` days until then.
    pub starts_on: &'static str,
    /// `{0}` end date.
    pub expired_on: &'static str,
    /// `{0}` exports before the filing's start.
    pub exports_before_start: &'static str,
    /// `{0}` exports after the filing's end.
    pub exports_after_end: &'static str,
    pub action_hold: &'static str,
    pub action_reapply: &'static str,
    pub action_renew: &'static str,
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
    verdict_uncovered: "{0} 次数据出境（发往 {1} 个接收方）未被任何已备案场景覆盖。",
    verdict_uncovered_one_recipient: "{0} 次数据出境（发往 1 个接收方）未被任何已备案场景覆盖。",
    verdict_uncovered_one: "1 次数据出境（发往 1 个接收方）未被任何已备案场景覆盖。",
    verdict_deviation: "所有出境均有备案，但 {0} 次出境不符合备案条件（服务、时间窗口、有效期或生效日期），各备案的处理办法见下。",
    verdict_clean: "观测到的 {0} 次跨境出境均由有效备案覆盖。",
    verdict_no_exports: "本次采集未观测到跨境出境流量。",
    verdict_unclassified: "{0} 条流没有判定结果：本次分析未启用备案比对，无法判断出境是否已备案。",
    verdict_other_findings: "另有 {0} 类发现（如个人信息明文、流量上限）需要处理，详见下文。",
    verdict_excluded: "{0} 条基础设施流（{1}）按配置的排除项单独统计，不计入出境判定，见“已排除的基础设施流量”。",
    drops: "丢包 {0}",
    advice_recipient: "{0} 次出境从备案 {1}（{2}）的来源发往 {3}，该接收方不在此备案的目的地中：变更该备案、增加此接收方，或停止该传输。",
    advice_recipient_no_filing: "{0} 次出境从{1}已备案的来源发往 {2}，其备案均未列此接收方：变更覆盖这些来源的备案、增加此接收方，或停止该传输。",
    advice_unfiled: "{0} 次出境（发往 {1}）的来源未列入任何备案。",
    route_small: "已观测到约 {0} 人的个人信息（下限），请按数据类别选择路径：{1}。",
    route_known: "已观测到约 {0} 人的个人信息，应走的路径：{1}。",
    route_important: "已观测到重要数据特征，应走的路径：{0}。",
    route_unknown: "本次采集未能统计个人信息人数，请按数据类别与人数选择路径：{0}。",
    route_assessment: "申报数据出境安全评估（《促进和规范数据跨境流动规定》第七条）",
    route_contract: "订立个人信息出境标准合同并备案，或通过个人信息保护认证（第八条）",
    route_options: "重要数据、100 万人以上个人信息或 1 万人以上敏感个人信息申报安全评估（第七条）；10 万人以上订立标准合同或通过认证（第八条）；不足 10 万人或符合第三至五条、自贸区负面清单（措施六）的，核实豁免条件",
    advice_service: "备案 {0}（{1}）未列明服务 {2}：将该服务补充进备案，或停止以该服务传输。",
    advice_window: "备案 {0}（{1}）：{2} 次出境发生在备案时间窗口之外：将传输安排在窗口内，或变更备案的时间窗口。",
    advice_cap: "备案 {0}（{1}）有 {3} 天超过每日上限 {2}：变更备案的传输规模，或控制传输量。",
    advice_not_yet_valid: "备案 {0}（{1}）自 {2} 起生效，此前已有 {3} 次出境：在 {2} 前暂停该传输；如生效日期登记有误，请更正。",
    advice_expired: "备案 {0}（{1}）已于 {2} 到期，仍有 {3} 次出境依赖该备案：停止该传输，重新申报安全评估或重新备案标准合同。",
    advice_expiring: "备案 {0}（{1}）将于 {2} 到期：现在申请延期或准备续签。",
    advice_more: "另有 {0} 个备案存在同类问题，见下文。",
    list_sep: "、",
    colon: "：",
    sentence_gap: "",
    units: ["天", "小时", "分钟", "秒"],
    shown_of: "显示 {0} 项，共 {1} 项。",
    shown_of_at_least: "显示 {0} 项，共至少 {1} 项。",
    examples_kept: "保留的是级别最高、字节最多的告警。",
    recipients_kept: "按出境字节从多到少显示。",
    days_kept: "显示有未备案出境的最近几天。",
    legend_lower_bound: "≥：下限（该接收方曾因容量限制被移出统计）",
    legend_threshold: "法定门槛（10 万人、100 万人）",
    legend_declared: "备案申报人数",
    legend_persons_fill: "色条为估计人数：绿色低于各标记，橙色达到 10 万人或申报人数，红色达到 100 万人",
    legend_heat_none: "无",
    section_excluded: "已排除的基础设施流量",
    section_excluded_note: "与代理配置中 [[exclude]] 排除项匹配的跨境流（如解析服务器、时间服务器、运营商网管）。它们不是数据出境，不与备案比对，也不产生告警；在此单独列出，不会被悄悄丢弃。",
    col_exclude_entry: "排除项",
    ex_flow: "经 {2} 向 {1} 发送 {0}",
    ex_why: [
        "该来源未列入任何备案",
        "该接收方不在备案 {0} 的目的地中",
        "接收方地址不在备案 {0} 登记的国家",
        "备案 {0} 已于 {2} 到期",
        "备案 {0} 自 {1} 起才生效",
        "备案 {0} 将于 {2} 到期",
        "备案 {0} 单日（北京时间）出境 {5}，超过每日上限 {6}",
        "发生在备案 {0} 的时间窗口之外",
        "备案 {0} 未列明服务 {7}",
        "个人信息以明文传输",
        "本年度出境个人信息约 {3} 人，已达到门槛",
        "备案 {0} 一小时内出境 {5}，远高于同时段基线",
        "负面清单数据发往未获批准的接收方",
        "隧道或无法识别的加密流量隐藏了传输内容",
        "一小时内大量境外来源访问该境内服务",
        "负载含重要数据特征",
        "采集丢失 {4} 个数据包或流，期间流量未被完整观测",
    ],
    ex_days_until: "（{0} 天后）",
    ex_working_days_left: "，剩余 {0} 个工作日",
    ex_join: "：",
    sentence_end: "。",
    starts_on: "尚未生效：{0} 起生效（{1} 天后）",
    expired_on: "已于 {0} 到期",
    exports_before_start: "生效前出境 {0} 次",
    exports_after_end: "判定为备案已失效的出境 {0} 次",
    action_hold: "生效前暂停传输，或更正登记的生效日期",
    action_reapply: "停止依赖该备案的传输，重新申报评估或重新备案合同",
    action_renew: "申请延期（安全评估）或续签并备案标准合同",
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
    section_expiring: "即将到期、已过期或尚未生效的备案",
    section_expiring_note: "以采集结束日为准，列出 90 个自然日（约 60 个工作日）内到期的备案；安全评估结果有效期 3 年，可在到期前 60 个工作日内申请延期（第九条）。",
    none_expiring: "没有 90 天内到期、已过期或尚未生效的备案。",
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
        "判定顺序：排除项 → 来源未备案 → 接收方未备案 → 服务未备案 → 备案已失效或尚未生效 → 时间窗口外 → 已备案（最具体的场景）。",
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
            action: "暂停或确认该传输：核实数据类别与人数后，选择安全评估（重要数据、100 万人以上个人信息、1 万人以上敏感个人信息或关键信息基础设施运营者）、标准合同备案或认证（10 万至 100 万人，且敏感信息不足 1 万人），或核实是否适用第三至五条豁免、自贸区负面清单（措施六）；完成后将场景登记入备案清单。",
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
    verdict_uncovered: "{0} exports to {1} recipients are not covered by any filing.",
    verdict_uncovered_one_recipient: "{0} exports to one recipient are not covered by any filing.",
    verdict_uncovered_one: "One export is not covered by any filing.",
    verdict_deviation: "Every export has a filing, but {0} exports break its conditions (service, time window, validity or start date); the steps for each filing follow.",
    verdict_clean: "All {0} cross-border exports observed are covered by valid filings.",
    verdict_no_exports: "No cross-border exports were observed in this capture.",
    verdict_unclassified: "{0} flows carry no verdict: classification against the filings was not run, so this report cannot tell whether exports are filed.",
    verdict_other_findings: "{0} further kinds of findings (e.g. cleartext personal information, caps) need attention; see below.",
    verdict_excluded: "Infrastructure flows that match the configured exclusions (flows: {0}; {1}) are counted apart and not judged; see \u{201c}Excluded infrastructure traffic\u{201d}.",
    drops: "{0} dropped",
    advice_recipient: "Filing {1} ({2}) does not list {3} among its destinations, yet its sources exported there (flows: {0}): amend that filing to add the recipient, or stop the flow.",
    advice_recipient_no_filing: "No filing of {1} lists {2}, yet its filed sources exported there (flows: {0}): amend the filing that covers these sources to add the recipient, or stop the flow.",
    advice_unfiled: "Sources that no filing lists exported data (flows: {0}) to {1}.",
    route_small: "About {0} persons' information was observed (a lower bound); choose the route by the data categories: {1}.",
    route_known: "About {0} persons' information was observed, so the route is: {1}.",
    route_important: "Important data was observed, so the route is: {0}.",
    route_unknown: "This capture gives no person count; choose the route by the data categories and the number of persons: {0}.",
    route_assessment: "a security assessment (CAC Order 16, Art. 7)",
    route_contract: "a standard contract filing or a certification (CAC Order 16, Art. 8)",
    route_options: "a security assessment (Art. 7) for important data, from 1,000,000 persons or from 10,000 persons' sensitive information; a standard contract or certification (Art. 8) from 100,000 persons; below that, or where Arts. 3\u{2013}5 or the free-trade-zone negative list (Measure 6) apply, check the exemption",
    advice_service: "Filing {0} ({1}) does not list {2}: add the service to the filing, or stop using it for this transfer.",
    advice_window: "Filing {0} ({1}): exports outside its filed window (flows: {2}); schedule them inside the window, or amend the window.",
    advice_cap: "Filing {0} ({1}) exceeded its daily cap of {2} (days: {3}): amend the filed volume, or throttle the transfers.",
    advice_not_yet_valid: "Filing {0} ({1}) takes effect only on {2}, yet exports relied on it before (flows: {3}): hold them until {2}, or correct the start date if it was registered wrongly.",
    advice_expired: "Filing {0} ({1}) expired on {2}, yet exports still relied on it (flows: {3}): stop them, and re-apply for the assessment or re-file the contract.",
    advice_expiring: "Filing {0} ({1}) expires on {2}: request the extension or prepare the renewal now.",
    advice_more: "Filings with the same kind of finding not listed here: {0}; see below.",
    list_sep: ", ",
    colon: ": ",
    sentence_gap: " ",
    units: ["d", "h", "min", "s"],
    shown_of: "{0} of {1} shown.",
    shown_of_at_least: "{0} of at least {1} shown.",
    examples_kept: "Kept: the most severe alerts, then the largest.",
    recipients_kept: "Largest export first.",
    days_kept: "The latest days with exports not covered by a filing.",
    legend_lower_bound: "\u{2265}: lower bound (the recipient was once pruned from the bounded table)",
    legend_threshold: "legal threshold (100,000 and 1,000,000 persons)",
    legend_declared: "declared persons per year",
    legend_persons_fill: "bar: estimated persons; green below every mark, orange from 100,000 or the declared count, red from 1,000,000",
    legend_heat_none: "none",
    section_excluded: "Excluded infrastructure traffic",
    section_excluded_note: "Cross-border flows that match an [[exclude]] entry of the agent configuration (resolvers, time servers, the carrier's management). Such flows carry no data export: they are not judged against the filings and raise no alert, and are listed here so that nothing is dropped silently.",
    col_exclude_entry: "Exclusion",
    ex_flow: "{0} to {1} over {2}",
    ex_why: [
        "no filing lists this source",
        "the recipient is not a destination of filing {0}",
        "the recipient's address lies outside the country filed in {0}",
        "filing {0} expired on {2}",
        "filing {0} takes effect only on {1}",
        "filing {0} expires on {2}",
        "filing {0} exported {5} in one Beijing day, above its daily cap of {6}",
        "outside the filed window of filing {0}",
        "filing {0} does not list service {7}",
        "personal information sent unencrypted",
        "personal information of about {3} persons exported this year reached a threshold",
        "filing {0} exported {5} in one hour, far above its usual volume",
        "negative-list data went to a recipient not approved for it",
        "a tunnel or unidentified encrypted stream hides the content",
        "many foreign sources reached this domestic service within an hour",
        "the payload carries an important-data marker",
        "the sensor lost {4} packets or flows, so traffic was not fully observed",
    ],
    ex_days_until: " ({0} days later)",
    ex_working_days_left: "; {0} working days left",
    ex_join: ": ",
    sentence_end: ".",
    starts_on: "not yet valid: takes effect on {0} (in {1} days)",
    expired_on: "expired on {0}",
    exports_before_start: "exports before the start: {0}",
    exports_after_end: "exports judged expired: {0}",
    action_hold: "hold transfers until the start, or correct the registered start date",
    action_reapply: "stop relying on the filing; re-apply for the assessment or re-file the contract",
    action_renew: "request the extension (assessment) or renew and file the contract",
    capture_span: "Capture span (Beijing time)",
    packets: "Packets",
    flows: "Flows",
    cross_border_flows: "cross-border",
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
    green_channel: "green channel (Measure 7)",
    ftz: "free trade zone (Measure 6)",
    section_expiring: "Filings expiring soon, expired or not yet valid",
    section_expiring_note: "Judged on the last day of the capture; filings ending within 90 calendar days (about 60 working days) are listed. An assessment result is valid 3 years and may be extended when requested in the 60 working days before expiry (Art. 9).",
    none_expiring: "No filing expires within 90 days, has expired or has yet to take effect.",
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
        "Checks in order: exclusions → source not filed → recipient not filed → service not filed → filing expired or not yet valid → outside window → filed (most specific scenario).",
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
            basis: "Measure 14; PIPL Art. 38; CAC Order 16 Arts. 7–8",
            action: "Stop or confirm the transfer. Establish the data categories and persons, then apply for a security assessment (important data, ≥1M persons, ≥10k persons' sensitive PI, or a CIIO), file a standard contract or obtain certification (100k–1M persons, <10k sensitive), or confirm an exemption (Arts. 3–5) or the FTZ negative list (Measure 6); then register the scenario.",
        },
        KindText {
            name: "Recipient not filed",
            meaning: "A filed domestic host sent data to an address, SNI or name outside its filing.",
            basis: "Measure 14; PIPL Art. 39",
            action: "For a new recipient: amend or re-file the standard contract / assessment and obtain separate consent naming it. For a misconfiguration: stop sending there.",
        },
        KindText {
            name: "Country mismatch",
            meaning: "The recipient's address lies in a country other than the filed one.",
            basis: "Measure 14",
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
            basis: "Measure 15",
            action: "Find the cause; amend the filed volume if the business needs it, else throttle.",
        },
        KindText {
            name: "Outside window",
            meaning: "Transfers happened outside the filed days or hours.",
            basis: "Measure 15",
            action: "Schedule transfers inside the filed window or amend the window.",
        },
        KindText {
            name: "Service not filed",
            meaning: "A port, protocol or application outside the filing was used.",
            basis: "Measure 14",
            action: "Add the service to the filing or stop using it for the transfer.",
        },
        KindText {
            name: "Personal information in cleartext",
            meaning: "A valid resident ID, mobile or card number travelled unencrypted.",
            basis: "Measures 13 and 14; PIPL Art. 51",
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
            basis: "Measure 15",
            action: "Confirm a business reason and keep a note; treat an unexplained surge as a possible leak.",
        },
        KindText {
            name: "Negative-list data",
            meaning: "Data on the FTZ negative list went to an unapproved recipient.",
            basis: "Measure 6; CAC Order 16 Art. 6",
            action: "Listed data needs the route the list requires (assessment, contract or certification) and may only go to the approved recipient.",
        },
        KindText {
            name: "Opaque tunnel",
            meaning: "WireGuard/IPsec/OpenVPN or unidentified high-entropy traffic on the line.",
            basis: "MIIT 2017 notice; Measure 14",
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
            basis: "DSL Art. 31; Measure 13",
            action: "Stop the transfer and report to the sector authority; exporting important data requires a security assessment.",
        },
        KindText {
            name: "Sensor gap",
            meaning: "Capture loss or agent downtime: traffic was not fully observed.",
            basis: "Measure 15",
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
