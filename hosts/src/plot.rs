//! A dependency-free SVG plot of a report's time series: lead and controller
//! target, ITL, and underruns over time, in three stacked panels.

use std::fmt::Write as _;

use antiphon_framework::report::Report;

const W: f64 = 960.0;
const PANEL_H: f64 = 190.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const GAP: f64 = 40.0;

struct Line<'a> {
    label: &'a str,
    color: &'a str,
    points: &'a [(f64, f64)],
    step: bool,
}

pub fn svg(r: &Report, title: &str) -> String {
    let s = &r.series;
    let t_max = [&s.lead_ms, &s.aim_ms, &s.itl_ms, &s.underruns]
        .iter()
        .flat_map(|v| v.iter().map(|p| p.0))
        .fold(1e-3, f64::max);
    let h = TOP + 3.0 * (PANEL_H + GAP);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{LEFT}\" y=\"22\" font-size=\"15\">{}</text>\n",
        escape(title)
    );
    let panels: [(&str, Vec<Line>); 3] = [
        (
            "lead (ms)",
            vec![
                Line {
                    label: "measured lead",
                    color: "#1f77b4",
                    points: &s.lead_ms,
                    step: false,
                },
                Line {
                    label: "lead aimed for (budget − recent production)",
                    color: "#d62728",
                    points: &s.aim_ms,
                    step: true,
                },
            ],
        ),
        (
            "ITL (ms)",
            vec![Line {
                label: "inter-frame latency",
                color: "#2ca02c",
                points: &s.itl_ms,
                step: false,
            }],
        ),
        (
            "underruns (callbacks, cumulative)",
            vec![Line {
                label: "underrun callbacks",
                color: "#9467bd",
                points: &s.underruns,
                step: true,
            }],
        ),
    ];
    for (i, (name, lines)) in panels.iter().enumerate() {
        panel(
            &mut out,
            TOP + i as f64 * (PANEL_H + GAP),
            name,
            lines,
            t_max,
        );
    }
    let _ = writeln!(
        out,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">time (s)</text>\n</svg>",
        LEFT + (W - LEFT - RIGHT) / 2.0,
        h - 8.0
    );
    out
}

fn panel(out: &mut String, y0: f64, name: &str, lines: &[Line], t_max: f64) {
    let pw = W - LEFT - RIGHT;
    let vals = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .filter(|v| v.is_finite());
    let (mut lo, mut hi) = vals.fold((0.0f64, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    if !hi.is_finite() || hi <= lo {
        hi = lo + 1.0;
    }
    hi += (hi - lo) * 0.05;
    lo -= if lo < 0.0 { (hi - lo) * 0.05 } else { 0.0 };
    let x = |t: f64| LEFT + t / t_max * pw;
    let y = |v: f64| y0 + PANEL_H - (v - lo) / (hi - lo) * PANEL_H;
    let _ = writeln!(
        out,
        "<rect x=\"{LEFT}\" y=\"{y0}\" width=\"{pw}\" height=\"{PANEL_H}\" fill=\"none\" stroke=\"#999\"/>\n\
         <text x=\"{LEFT}\" y=\"{}\" font-weight=\"bold\">{}</text>",
        y0 - 6.0,
        escape(name)
    );
    for k in 0..=4 {
        let v = lo + (hi - lo) * k as f64 / 4.0;
        let _ = writeln!(
            out,
            "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#eee\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{v:.0}</text>",
            LEFT + pw,
            LEFT - 6.0,
            y(v) + 4.0,
            yy = y(v)
        );
        let t = t_max * k as f64 / 4.0;
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#666\">{t:.0}</text>",
            x(t),
            y0 + PANEL_H + 14.0
        );
    }
    for (j, l) in lines.iter().enumerate() {
        let mut pts = String::new();
        let mut prev: Option<f64> = None;
        for &(t, v) in l.points.iter().filter(|p| p.1.is_finite()) {
            if let (true, Some(pv)) = (l.step, prev) {
                let _ = write!(pts, "{:.1},{:.1} ", x(t), y(pv));
            }
            let _ = write!(pts, "{:.1},{:.1} ", x(t), y(v));
            prev = Some(v);
        }
        let _ = writeln!(
            out,
            "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.2\" points=\"{}\"/>\
             <text x=\"{}\" y=\"{}\" fill=\"{}\">{}</text>",
            l.color,
            pts.trim_end(),
            W - RIGHT - 160.0,
            y0 + 14.0 + 14.0 * j as f64,
            l.color,
            escape(l.label)
        );
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
