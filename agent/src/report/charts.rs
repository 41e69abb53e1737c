//! Inline SVG charts of the report: export bytes over time stacked by verdict, top recipients,
//! and a day-by-hour heat map of exports not covered by a filing. No script, no external asset;
//! every mark carries a `<title>` so a browser shows the exact figure on hover.

use super::i18n::{verdict_index, Strings};
use super::text::{esc, fmt_bytes};
use super::{RecipientAgg, Series, VERDICTS};
use crossline_config::event::VerdictStatus;
use crossline_config::time::{self, Date};
use std::collections::BTreeMap;
use std::fmt::Write;

/// Colour of each verdict (indexed like `VerdictStatus`), the same in every chart and badge.
pub const VERDICT_COLORS: [&str; VERDICTS] = [
    "#c0392b", // unfiled
    "#e67e22", // recipient_not_filed
    "#d4a72c", // service_not_filed
    "#8e44ad", // filing_expired
    "#b07cc6", // filing_not_yet_valid
    "#4f81bd", // outside_window
    "#2e8b57", // filed
    "#aab2bd", // not_cross_border
    "#7f8c8d", // excluded
];

/// Stacking order, bottom to top: filed first, the most serious on top.
pub const STACK_ORDER: [VerdictStatus; 7] = [
    VerdictStatus::Filed,
    VerdictStatus::OutsideWindow,
    VerdictStatus::FilingNotYetValid,
    VerdictStatus::FilingExpired,
    VerdictStatus::ServiceNotFiled,
    VerdictStatus::RecipientNotFiled,
    VerdictStatus::Unfiled,
];

const FONT: &str = "font-family=\"inherit\"";

/// A "nice" upper bound for an axis (1, 2, 2.5, 5 × 10^n).
fn nice_ceiling(v: u64) -> u64 {
    if v == 0 {
        return 1;
    }
    let mut p = 1u64;
    while p.saturating_mul(10) <= v {
        p *= 10;
    }
    for m in [1u64, 2, 5, 10] {
        let c = p.saturating_mul(m);
        if c >= v {
            return c;
        }
    }
    p.saturating_mul(10)
}

/// Legend of the verdicts that occur in `present`.
pub fn legend(s: &Strings, present: &[bool; VERDICTS]) -> String {
    let mut out = String::from("<div class=\"legend\">");
    for v in STACK_ORDER.iter().rev() {
        let i = verdict_index(*v);
        if present[i] {
            let _ = write!(
                out,
                "<span><i style=\"background:{}\"></i>{}</span>",
                VERDICT_COLORS[i],
                esc(s.verdict(*v))
            );
        }
    }
    out.push_str("</div>");
    out
}

fn label_time(unix_secs: i64, width: i64, s: &Strings, with_date: bool) -> String {
    let t = time::shanghai(unix_secs);
    let hh = t.second_of_day / 3600;
    let mm = (t.second_of_day / 60) % 60;
    let ss = t.second_of_day % 60;
    let d = t.date;
    if width >= 86_400 {
        format!("{:02}-{:02}", d.month, d.day)
    } else if width < 60 {
        format!("{hh:02}:{mm:02}:{ss:02}")
    } else if with_date {
        format!(
            "{:02}-{:02} {} {hh:02}:{mm:02}",
            d.month,
            d.day,
            s.weekdays[usize::from(d.weekday())]
        )
    } else {
        format!("{hh:02}:{mm:02}")
    }
}

/// Stacked bars of export bytes per time bin.
pub fn time_series(series: &Series, s: &Strings) -> String {
    let bins: Vec<(i64, [u64; VERDICTS])> = series.bins().map(|(t, v)| (t, *v)).collect();
    let (Some(first), Some(last)) = (bins.first(), bins.last()) else {
        return format!("<p class=\"empty\">{}</p>", esc(s.no_data));
    };
    let width = series.width_secs();
    let n = ((last.0 - first.0) / width + 1).max(1) as usize;
    let by_start: BTreeMap<i64, [u64; VERDICTS]> = bins.iter().copied().collect();
    let max_total = bins
        .iter()
        .map(|(_, v)| {
            STACK_ORDER
                .iter()
                .map(|x| v[verdict_index(*x)])
                .sum::<u64>()
        })
        .max()
        .unwrap_or(0);
    let top = nice_ceiling(max_total);

    let (w, h) = (960.0f64, 280.0f64);
    let (ml, mr, mt, mb) = (78.0, 16.0, 12.0, 44.0);
    let pw = w - ml - mr;
    let ph = h - mt - mb;
    let slot = pw / n as f64;
    let bar = (slot * 0.78).max(1.0);
    let mut out = String::new();
    let label = esc(s.chart_time_title);
    let _ = write!(
        out,
        "<svg class=\"chart\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"{label}\" xmlns=\"http://www.w3.org/2000/svg\" {FONT}>"
    );
    // Grid and y labels.
    for i in 0..=4u64 {
        let y = mt + ph - ph * i as f64 / 4.0;
        let _ = write!(
            out,
            "<line x1=\"{ml}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" class=\"grid\"/>\
             <text x=\"{}\" y=\"{:.1}\" class=\"axis\" text-anchor=\"end\">{}</text>",
            w - mr,
            ml - 8.0,
            y + 4.0,
            esc(&fmt_bytes(top / 4 * i + (top % 4) * i / 4))
        );
    }
    // Bars.
    for slot_index in 0..n {
        let start = first.0 + slot_index as i64 * width;
        let Some(v) = by_start.get(&start) else {
            continue;
        };
        let x = ml + slot * slot_index as f64 + (slot - bar) / 2.0;
        let mut y = mt + ph;
        let mut tip = label_time(start, width, s, true);
        for verdict in STACK_ORDER {
            let b = v[verdict_index(verdict)];
            if b == 0 {
                continue;
            }
            let _ = write!(tip, "\n{}: {}", s.verdict(verdict), fmt_bytes(b));
        }
        for verdict in STACK_ORDER {
            let i = verdict_index(verdict);
            let b = v[i];
            if b == 0 {
                continue;
            }
            let bh = (ph * b as f64 / top as f64).max(0.8);
            y -= bh;
            let _ = write!(
                out,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bar:.1}\" height=\"{bh:.1}\" fill=\"{}\"><title>{}</title></rect>",
                VERDICT_COLORS[i],
                esc(&tip)
            );
        }
    }
    // X labels: about six, the first with the date.
    let step = n.div_ceil(6).max(1);
    let mut last_date: Option<Date> = None;
    for slot_index in (0..n).step_by(step) {
        let start = first.0 + slot_index as i64 * width;
        let date = time::shanghai(start).date;
        let with_date = last_date != Some(date);
        last_date = Some(date);
        let x = ml + slot * (slot_index as f64 + 0.5);
        let _ = write!(
            out,
            "<text x=\"{x:.1}\" y=\"{:.1}\" class=\"axis\" text-anchor=\"middle\">{}</text>",
            h - mb + 18.0,
            esc(&label_time(start, width, s, with_date))
        );
    }
    let _ = write!(
        out,
        "<line x1=\"{ml}\" x2=\"{}\" y1=\"{:.1}\" y2=\"{:.1}\" class=\"baseline\"/></svg>",
        w - mr,
        mt + ph,
        mt + ph
    );
    out
}

/// Horizontal stacked bars of the top recipients.
pub fn recipients(top: &[(&str, &RecipientAgg)], s: &Strings) -> String {
    if top.is_empty() {
        return format!("<p class=\"empty\">{}</p>", esc(s.no_data));
    }
    let max_total = top.iter().map(|(_, r)| r.total()).max().unwrap_or(0).max(1);
    let row = 30.0f64;
    let (w, label_w, value_w) = (960.0f64, 300.0f64, 96.0f64);
    let h = row * top.len() as f64 + 8.0;
    let pw = w - label_w - value_w - 12.0;
    let mut out = String::new();
    let label = esc(s.chart_recipients_title);
    let _ = write!(
        out,
        "<svg class=\"chart\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"{label}\" xmlns=\"http://www.w3.org/2000/svg\" {FONT}>"
    );
    for (i, (name, r)) in top.iter().enumerate() {
        let y = 4.0 + row * i as f64;
        let shown: String = if name.chars().count() > 40 {
            let mut t: String = name.chars().take(39).collect();
            t.push('…');
            t
        } else {
            (*name).to_owned()
        };
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" class=\"label\" text-anchor=\"end\"><title>{}</title>{}</text>",
            label_w - 10.0,
            y + row / 2.0 + 4.0,
            esc(name),
            esc(&shown)
        );
        let mut x = label_w;
        for verdict in STACK_ORDER {
            let vi = verdict_index(verdict);
            let b = r.bytes[vi];
            if b == 0 {
                continue;
            }
            let bw = (pw * b as f64 / max_total as f64).max(1.0);
            let _ = write!(
                out,
                "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{bw:.1}\" height=\"{:.1}\" rx=\"2\" fill=\"{}\"><title>{} · {}: {}</title></rect>",
                y + 5.0,
                row - 10.0,
                VERDICT_COLORS[vi],
                esc(name),
                esc(s.verdict(verdict)),
                esc(&fmt_bytes(b))
            );
            x += bw;
        }
        let approx = if r.error > 0 { "≥ " } else { "" };
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" class=\"value\">{approx}{}</text>",
            x + 6.0,
            y + row / 2.0 + 4.0,
            esc(&fmt_bytes(r.total()))
        );
    }
    out.push_str("</svg>");
    out
}

/// Heat colour for a share 0..=1 of the maximum (light rose to deep red).
fn heat_color(share: f64) -> String {
    let t = share.clamp(0.0, 1.0).sqrt();
    let lerp = |a: f64, b: f64| (a + (b - a) * t).round() as u8;
    format!(
        "#{:02x}{:02x}{:02x}",
        lerp(251.0, 150.0),
        lerp(228.0, 30.0),
        lerp(224.0, 30.0)
    )
}

/// Days shown in the heat map at most (the latest that have not-filed exports).
pub const HEAT_DAYS: usize = 31;

/// Day × hour heat map of not-filed export bytes (the last [`HEAT_DAYS`] days that have any).
pub fn heat_map(heat: &BTreeMap<Date, [u64; 24]>, s: &Strings) -> String {
    let days: Vec<(&Date, &[u64; 24])> = heat
        .iter()
        .filter(|(_, h)| h.iter().any(|b| *b > 0))
        .collect();
    if days.is_empty() {
        return format!("<p class=\"empty\">{}</p>", esc(s.no_data));
    }
    let days = &days[days.len().saturating_sub(HEAT_DAYS)..];
    let max = days
        .iter()
        .flat_map(|(_, h)| h.iter().copied())
        .max()
        .unwrap_or(1)
        .max(1);
    let (label_w, cell_w, cell_h, top) = (110.0f64, 34.0f64, 20.0f64, 24.0f64);
    let w = label_w + cell_w * 24.0 + 10.0;
    let h = top + cell_h * days.len() as f64 + 40.0;
    let mut out = String::new();
    let label = esc(s.chart_heat_title);
    let _ = write!(
        out,
        "<svg class=\"chart heat\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"{label}\" xmlns=\"http://www.w3.org/2000/svg\" {FONT}>"
    );
    for hour in (0..24).step_by(2) {
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"16\" class=\"axis\" text-anchor=\"middle\">{hour:02}</text>",
            label_w + cell_w * (hour as f64 + 0.5)
        );
    }
    for (row, (date, hours)) in days.iter().enumerate() {
        let y = top + cell_h * row as f64;
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" class=\"label\" text-anchor=\"end\">{} {}</text>",
            label_w - 8.0,
            y + cell_h / 2.0 + 4.0,
            date,
            esc(s.weekdays[usize::from(date.weekday())])
        );
        for (hour, b) in hours.iter().enumerate() {
            let fill = if *b == 0 {
                "#f1f3f5".to_owned()
            } else {
                heat_color(*b as f64 / max as f64)
            };
            let _ = write!(
                out,
                "<rect x=\"{:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" rx=\"2\" fill=\"{fill}\"><title>{date} {hour:02}:00–{hour:02}:59 · {}</title></rect>",
                label_w + cell_w * hour as f64 + 1.0,
                cell_w - 2.0,
                cell_h - 2.0,
                esc(&fmt_bytes(*b))
            );
        }
    }
    // Scale: the grey of an hour without such exports, then light (little) to dark (the most).
    let ly = top + cell_h * days.len() as f64 + 14.0;
    let _ = write!(
        out,
        "<rect x=\"{:.1}\" y=\"{ly:.1}\" width=\"20\" height=\"12\" fill=\"#f1f3f5\" stroke=\"#d5dae0\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\" class=\"axis\" text-anchor=\"end\">{}</text>",
        label_w,
        label_w - 8.0,
        ly + 10.0,
        esc(s.legend_heat_none)
    );
    let x0 = label_w + 40.0;
    let _ = write!(
        out,
        "<text x=\"{:.1}\" y=\"{:.1}\" class=\"axis\" text-anchor=\"end\">&gt; 0</text>",
        x0 - 4.0,
        ly + 10.0
    );
    for i in 0..12 {
        let _ = write!(
            out,
            "<rect x=\"{:.1}\" y=\"{ly:.1}\" width=\"20\" height=\"12\" fill=\"{}\"/>",
            x0 + 20.0 * f64::from(i),
            heat_color(f64::from(i) / 11.0)
        );
    }
    let _ = write!(
        out,
        "<text x=\"{:.1}\" y=\"{:.1}\" class=\"axis\">{}</text></svg>",
        x0 + 246.0,
        ly + 10.0,
        esc(&fmt_bytes(max))
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_ceilings() {
        assert_eq!(nice_ceiling(0), 1);
        assert_eq!(nice_ceiling(7), 10);
        assert_eq!(nice_ceiling(130), 200);
        assert_eq!(nice_ceiling(4_300_000), 5_000_000);
        assert_eq!(nice_ceiling(1000), 1000);
    }
}
