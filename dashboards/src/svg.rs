//! Server-side SVG charts: line charts with axes, units, a legend, confidence bands, threshold
//! lines and a `<title>` tooltip on every point; heat maps; grouped bar charts (histograms).
//!
//! Geometry is pure (no I/O) and unit-tested; the output is plain SVG that needs no script.

use crate::html::esc;
use std::fmt::Write;

const W: f64 = 760.0;
const H: f64 = 280.0;
const ML: f64 = 70.0;
const MR: f64 = 16.0;
const MT: f64 = 30.0;
const MB: f64 = 44.0;

/// Series colours (colour-blind friendly, Okabe–Ito).
pub const PALETTE: &[&str] = &[
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442",
];

/// One line: points `(x, y)` and an optional band `(x, lower, upper)`.
#[derive(Debug, Clone, Default)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub band: Vec<(f64, f64, f64)>,
}

/// A horizontal reference line (threshold, zero).
#[derive(Debug, Clone)]
pub struct HLine {
    pub y: f64,
    pub label: String,
}

/// A line chart. `x_time`: x values are unix seconds (ticks are times, UTC).
#[derive(Debug, Clone, Default)]
pub struct LineChart {
    pub id: String,
    pub title: String,
    pub y_label: String,
    pub x_time: bool,
    pub series: Vec<Series>,
    pub hlines: Vec<HLine>,
}

/// "Nice" tick values covering `[lo, hi]` with about `n` steps (1, 2, 5 × 10^k).
pub fn nice_ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite()) || n == 0 {
        return Vec::new();
    }
    // A span the labels cannot resolve is flat: floating-point noise such as the
    // incremental cost of two versions with the same cost per inference (±1e-11 EUR) would
    // otherwise get ticks 1e-11 apart, every one labelled "0".
    let (lo, hi) = if hi - lo < 1e-9 * lo.abs().max(hi.abs()).max(1.0) {
        (
            lo - 0.5_f64.max(lo.abs() * 0.1),
            hi + 0.5_f64.max(hi.abs() * 0.1),
        )
    } else {
        (lo, hi)
    };
    let raw = (hi - lo) / n as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let start = (lo / step).floor();
    let mut out = Vec::new();
    for i in 0..50 {
        let v = (start + i as f64) * step;
        out.push(if v.abs() < step * 1e-9 { 0.0 } else { v });
        if v >= hi - step * 1e-9 {
            break;
        }
    }
    out
}

/// Tick values for a time axis (unix seconds), at round seconds/minutes/hours/days.
pub fn time_ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    const STEPS: &[f64] = &[
        1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0,
        10800.0, 21600.0, 43200.0, 86400.0, 172800.0, 604800.0,
    ];
    if !(lo.is_finite() && hi.is_finite()) || hi < lo || n == 0 {
        return Vec::new();
    }
    let span = (hi - lo).max(1.0);
    let step = STEPS
        .iter()
        .copied()
        .find(|s| span / s <= n as f64)
        .unwrap_or(604800.0);
    let mut v = (lo / step).ceil() * step;
    let mut out = Vec::new();
    while v <= hi && out.len() < 50 {
        out.push(v);
        v += step;
    }
    out
}

fn time_label(ts: f64, span: f64) -> String {
    let Some(t) = chrono::DateTime::from_timestamp(ts as i64, 0) else {
        return String::new();
    };
    if span <= 600.0 {
        t.format("%H:%M:%S").to_string()
    } else if span <= 2.0 * 86400.0 {
        t.format("%H:%M").to_string()
    } else {
        t.format("%m-%d %H:%M").to_string()
    }
}

/// A compact number for axis labels; never `-0` (a tick at −0.0 or at a rounding error below
/// zero reads `0`).
pub fn axis_label(v: f64) -> String {
    let a = v.abs();
    let s = if a == 0.0 {
        "0".into()
    } else if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.2}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    } else {
        format!("{v:.4}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    };
    crate::html::unsigned_zero(s)
}

/// Linear map from a data range to a pixel range.
#[derive(Debug, Clone, Copy)]
pub struct Scale {
    pub d0: f64,
    pub d1: f64,
    pub p0: f64,
    pub p1: f64,
}

impl Scale {
    pub fn map(&self, v: f64) -> f64 {
        if (self.d1 - self.d0).abs() < 1e-300 {
            return (self.p0 + self.p1) / 2.0;
        }
        self.p0 + (v - self.d0) / (self.d1 - self.d0) * (self.p1 - self.p0)
    }
}

fn legend(out: &mut String, names: &[&str]) {
    let mut x = ML;
    for (i, n) in names.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let _ = write!(
            out,
            "<g class=\"legend\"><rect x=\"{x:.1}\" y=\"8\" width=\"12\" height=\"12\" fill=\"{color}\"/>\
             <text x=\"{:.1}\" y=\"18\">{}</text></g>",
            x + 16.0,
            esc(n)
        );
        x += 28.0 + 7.0 * n.chars().count() as f64;
    }
}

/// Renders a line chart; a chart without points says so instead of drawing empty axes.
pub fn line_chart(c: &LineChart) -> String {
    let pts: Vec<(f64, f64)> = c
        .series
        .iter()
        .flat_map(|s| {
            s.points
                .iter()
                .copied()
                .chain(s.band.iter().flat_map(|b| [(b.0, b.1), (b.0, b.2)]))
        })
        .filter(|p| p.0.is_finite() && p.1.is_finite())
        .collect();
    if pts.is_empty() {
        return format!(
            "<figure class=\"chart\" id=\"{}\"><figcaption>{}</figcaption><p class=\"empty\">no data points in this time range</p></figure>",
            esc(&c.id),
            esc(&c.title)
        );
    }
    let (mut x0, mut x1) = (f64::INFINITY, f64::NEG_INFINITY);
    let (mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY);
    for (x, y) in &pts {
        x0 = x0.min(*x);
        x1 = x1.max(*x);
        y0 = y0.min(*y);
        y1 = y1.max(*y);
    }
    for h in &c.hlines {
        if h.y.is_finite() {
            y0 = y0.min(h.y);
            y1 = y1.max(h.y);
        }
    }
    let yt = nice_ticks(y0, y1, 5);
    let (ylo, yhi) = (
        yt.first().copied().unwrap_or(y0).min(y0),
        yt.last().copied().unwrap_or(y1).max(y1),
    );
    if x1 - x0 < 1e-9 {
        x0 -= if c.x_time { 30.0 } else { 0.5 };
        x1 += if c.x_time { 30.0 } else { 0.5 };
    }
    let xs = Scale {
        d0: x0,
        d1: x1,
        p0: ML,
        p1: W - MR,
    };
    let ys = Scale {
        d0: ylo,
        d1: yhi,
        p0: H - MB,
        p1: MT,
    };
    let mut out = String::with_capacity(4096);
    let _ = write!(
        out,
        "<figure class=\"chart\" id=\"{id}\"><figcaption>{t}</figcaption>\
         <svg viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{t}\" data-points=\"{np}\">",
        id = esc(&c.id),
        t = esc(&c.title),
        np = c.series.iter().map(|s| s.points.len()).sum::<usize>()
    );
    // Axes and grid.
    for v in &yt {
        let y = ys.map(*v);
        let _ = write!(
            out,
            "<line class=\"grid\" x1=\"{ML}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/>\
             <text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            W - MR,
            ML - 6.0,
            y + 4.0,
            axis_label(*v)
        );
    }
    let xt = if c.x_time {
        time_ticks(x0, x1, 6)
    } else {
        nice_ticks(x0, x1, 6)
            .into_iter()
            .filter(|v| *v >= x0 && *v <= x1)
            .collect()
    };
    for v in &xt {
        let x = xs.map(*v);
        let label = if c.x_time {
            time_label(*v, x1 - x0)
        } else {
            axis_label(*v)
        };
        let _ = write!(
            out,
            "<line class=\"axis\" x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{:.1}\" y2=\"{:.1}\"/>\
             <text class=\"tick\" x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{label}</text>",
            H - MB,
            H - MB + 5.0,
            H - MB + 18.0
        );
    }
    let _ = write!(
        out,
        "<line class=\"axis\" x1=\"{ML}\" x2=\"{ML}\" y1=\"{MT}\" y2=\"{:.1}\"/>\
         <line class=\"axis\" x1=\"{ML}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\"/>\
         <text class=\"label\" transform=\"translate(14,{:.1}) rotate(-90)\" text-anchor=\"middle\">{}</text>\
         <text class=\"label\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
        H - MB,
        W - MR,
        H - MB,
        H - MB,
        (MT + H - MB) / 2.0,
        esc(&c.y_label),
        (ML + W - MR) / 2.0,
        H - 6.0,
        if c.x_time { "time (UTC)" } else { "" }
    );
    for h in &c.hlines {
        if !h.y.is_finite() {
            continue;
        }
        let y = ys.map(h.y);
        let _ = write!(
            out,
            "<line class=\"threshold\" x1=\"{ML}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\"><title>{}</title></line>\
             <text class=\"tlabel\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            W - MR,
            esc(&h.label),
            W - MR - 2.0,
            y - 3.0,
            esc(&h.label)
        );
    }
    for (i, s) in c.series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let band: Vec<_> = s
            .band
            .iter()
            .filter(|b| b.0.is_finite() && b.1.is_finite() && b.2.is_finite())
            .collect();
        if !band.is_empty() {
            let mut d = String::new();
            for (j, b) in band.iter().enumerate() {
                let _ = write!(
                    d,
                    "{}{:.1},{:.1}",
                    if j == 0 { "M" } else { "L" },
                    xs.map(b.0),
                    ys.map(b.2)
                );
            }
            for b in band.iter().rev() {
                let _ = write!(d, "L{:.1},{:.1}", xs.map(b.0), ys.map(b.1));
            }
            let _ = write!(
                out,
                "<path class=\"band\" d=\"{d}Z\" fill=\"{color}\" fill-opacity=\"0.18\" stroke=\"none\"><title>{} — 95 % interval</title></path>",
                esc(&s.name)
            );
        }
        let pts: Vec<_> = s
            .points
            .iter()
            .filter(|p| p.0.is_finite() && p.1.is_finite())
            .collect();
        if pts.len() > 1 {
            let mut d = String::new();
            for (j, p) in pts.iter().enumerate() {
                let _ = write!(
                    d,
                    "{}{:.1},{:.1}",
                    if j == 0 { "M" } else { "L" },
                    xs.map(p.0),
                    ys.map(p.1)
                );
            }
            let _ = write!(
                out,
                "<path class=\"line\" d=\"{d}\" stroke=\"{color}\" fill=\"none\"/>"
            );
        }
        for p in pts {
            let x_txt = if c.x_time {
                crate::html::time(p.0 as u32)
            } else {
                axis_label(p.0)
            };
            let _ = write!(
                out,
                "<circle class=\"pt\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{color}\"><title>{} · {}: {} {}</title></circle>",
                xs.map(p.0),
                ys.map(p.1),
                esc(&s.name),
                esc(&x_txt),
                axis_label(p.1),
                esc(&c.y_label)
            );
        }
    }
    let names: Vec<&str> = c.series.iter().map(|s| s.name.as_str()).collect();
    legend(&mut out, &names);
    out.push_str("</svg></figure>");
    out
}

/// One heat-map cell: row, column, value in `[0, ∞)` relative to its threshold (1 = at the
/// threshold), tooltip text, and whether it is a breach. `None`: no data (grey).
#[derive(Debug, Clone)]
pub struct Cell {
    pub row: usize,
    pub col: usize,
    pub ratio: Option<f64>,
    pub breach: bool,
    pub tooltip: String,
}

/// Colour of a score/threshold ratio: green (0) → yellow (0.5) → red (≥ 1).
pub fn ratio_color(r: f64) -> String {
    let r = r.clamp(0.0, 1.0);
    let (g0, y, red) = (
        (26.0, 152.0, 80.0),
        (254.0, 224.0, 139.0),
        (215.0, 48.0, 39.0),
    );
    let lerp = |a: (f64, f64, f64), b: (f64, f64, f64), t: f64| {
        (
            a.0 + (b.0 - a.0) * t,
            a.1 + (b.1 - a.1) * t,
            a.2 + (b.2 - a.2) * t,
        )
    };
    let c = if r < 0.5 {
        lerp(g0, y, r * 2.0)
    } else {
        lerp(y, red, (r - 0.5) * 2.0)
    };
    format!("#{:02x}{:02x}{:02x}", c.0 as u8, c.1 as u8, c.2 as u8)
}

/// A heat map of `rows` × `cols` (columns × windows for drift).
pub fn heat_map(id: &str, title: &str, rows: &[String], cols: &[String], cells: &[Cell]) -> String {
    if rows.is_empty() || cols.is_empty() {
        return format!(
            "<figure class=\"chart\" id=\"{}\"><figcaption>{}</figcaption><p class=\"empty\">no monitor results in this time range</p></figure>",
            esc(id),
            esc(title)
        );
    }
    let label_w = 230.0;
    let cw = ((W - label_w - MR) / cols.len() as f64).clamp(4.0, 80.0);
    let ch = 20.0;
    let h = MT + ch * rows.len() as f64 + 40.0;
    let w = W;
    let mut out = format!(
        "<figure class=\"chart\" id=\"{}\"><figcaption>{}</figcaption><svg viewBox=\"0 0 {w:.0} {h:.0}\" role=\"img\" aria-label=\"{}\" data-points=\"{}\">",
        esc(id),
        esc(title),
        esc(title),
        cells.len()
    );
    for (i, r) in rows.iter().enumerate() {
        let _ = write!(
            out,
            "<text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            label_w - 6.0,
            MT + ch * i as f64 + 15.0,
            esc(r)
        );
    }
    let every = (cols.len() / 6).max(1);
    for (j, c) in cols.iter().enumerate() {
        if j % every == 0 {
            let _ = write!(
                out,
                "<text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                label_w + cw * j as f64 + cw / 2.0,
                MT + ch * rows.len() as f64 + 16.0,
                esc(c)
            );
        }
    }
    for c in cells {
        let fill = c.ratio.map(ratio_color).unwrap_or_else(|| "#d0d0d0".into());
        let _ = write!(
            out,
            "<rect class=\"cell pt{}\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{fill}\"><title>{}</title></rect>",
            if c.breach { " breach" } else { "" },
            label_w + cw * c.col as f64 + 1.0,
            MT + ch * c.row as f64 + 1.0,
            (cw - 2.0).max(1.0),
            ch - 2.0,
            esc(&c.tooltip)
        );
    }
    let _ = write!(
        out,
        "<g class=\"legend\"><rect x=\"{label_w}\" y=\"8\" width=\"12\" height=\"12\" fill=\"{}\"/><text x=\"{:.0}\" y=\"18\">well below threshold</text>\
         <rect x=\"{:.0}\" y=\"8\" width=\"12\" height=\"12\" fill=\"{}\"/><text x=\"{:.0}\" y=\"18\">at/over threshold (drift)</text>\
         <rect x=\"{:.0}\" y=\"8\" width=\"12\" height=\"12\" fill=\"#d0d0d0\"/><text x=\"{:.0}\" y=\"18\">insufficient data</text></g>",
        ratio_color(0.0),
        label_w + 16.0,
        label_w + 170.0,
        ratio_color(1.0),
        label_w + 186.0,
        label_w + 370.0,
        label_w + 386.0
    );
    out.push_str("</svg></figure>");
    out
}

/// Grouped bars: one group per label, one bar per series (e.g. reference vs current share).
pub fn bar_chart(
    id: &str,
    title: &str,
    y_label: &str,
    labels: &[String],
    series: &[(String, Vec<f64>)],
) -> String {
    let max = series
        .iter()
        .flat_map(|s| s.1.iter().copied())
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    if labels.is_empty() || series.is_empty() {
        return format!(
            "<figure class=\"chart\" id=\"{}\"><figcaption>{}</figcaption><p class=\"empty\">no data points in this time range</p></figure>",
            esc(id),
            esc(title)
        );
    }
    let yt = nice_ticks(0.0, max.max(1e-9), 4);
    let yhi = yt.last().copied().unwrap_or(max).max(max);
    let ys = Scale {
        d0: 0.0,
        d1: yhi,
        p0: H - MB,
        p1: MT,
    };
    let gw = (W - ML - MR) / labels.len() as f64;
    let bw = (gw * 0.8 / series.len() as f64).max(1.0);
    let mut out = format!(
        "<figure class=\"chart\" id=\"{}\"><figcaption>{}</figcaption><svg viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{}\" data-points=\"{}\">",
        esc(id),
        esc(title),
        esc(title),
        series.iter().map(|s| s.1.len()).sum::<usize>()
    );
    for v in &yt {
        let y = ys.map(*v);
        let _ = write!(
            out,
            "<line class=\"grid\" x1=\"{ML}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/><text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            W - MR,
            ML - 6.0,
            y + 4.0,
            axis_label(*v)
        );
    }
    let every = (labels.len() / 8).max(1);
    for (i, l) in labels.iter().enumerate() {
        if i % every == 0 {
            let _ = write!(
                out,
                "<text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                ML + gw * i as f64 + gw / 2.0,
                H - MB + 16.0,
                esc(l)
            );
        }
        for (k, (name, vals)) in series.iter().enumerate() {
            let v = vals.get(i).copied().unwrap_or(0.0);
            if !v.is_finite() {
                continue;
            }
            let y = ys.map(v);
            let _ = write!(
                out,
                "<rect class=\"bar pt\" x=\"{:.1}\" y=\"{y:.1}\" width=\"{bw:.1}\" height=\"{:.1}\" fill=\"{}\"><title>{} · {}: {} {}</title></rect>",
                ML + gw * i as f64 + gw * 0.1 + bw * k as f64,
                (H - MB - y).max(0.0),
                PALETTE[k % PALETTE.len()],
                esc(name),
                esc(l),
                axis_label(v),
                esc(y_label)
            );
        }
    }
    let _ = write!(
        out,
        "<line class=\"axis\" x1=\"{ML}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\"/><text class=\"label\" transform=\"translate(14,{:.1}) rotate(-90)\" text-anchor=\"middle\">{}</text>",
        W - MR,
        H - MB,
        H - MB,
        (MT + H - MB) / 2.0,
        esc(y_label)
    );
    let names: Vec<&str> = series.iter().map(|s| s.0.as_str()).collect();
    legend(&mut out, &names);
    out.push_str("</svg></figure>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_ticks_cover_the_range() {
        assert_eq!(
            nice_ticks(0.0, 10.0, 5),
            vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
        );
        let t = nice_ticks(0.013, 0.087, 4);
        assert!(t[0] <= 0.013 && *t.last().unwrap() >= 0.087, "{t:?}");
        // A flat series still gets a range.
        let t = nice_ticks(5.0, 5.0, 4);
        assert!(
            t.len() >= 2 && t[0] < 5.0 && *t.last().unwrap() > 5.0,
            "{t:?}"
        );
        assert!(nice_ticks(f64::NAN, 1.0, 4).is_empty());
        // So does a series of rounding noise around zero: ticks a label can tell apart.
        let t = nice_ticks(-2e-12, 3e-11, 5);
        let labels: Vec<String> = t.iter().map(|v| axis_label(*v)).collect();
        let mut distinct = labels.clone();
        distinct.dedup();
        assert_eq!(distinct, labels, "{t:?}");
        assert!(t[0] <= -2e-12 && *t.last().unwrap() >= 3e-11, "{t:?}");
    }

    #[test]
    fn time_ticks_are_round() {
        let t = time_ticks(1_000_000_007.0, 1_000_003_600.0, 6);
        assert!(t.iter().all(|v| v % 600.0 == 0.0), "{t:?}");
        assert!(t.len() <= 7 && !t.is_empty());
    }

    #[test]
    fn line_chart_draws_points_band_and_threshold() {
        let svg = line_chart(&LineChart {
            id: "c".into(),
            title: "Lift <x>".into(),
            y_label: "EUR".into(),
            x_time: true,
            series: vec![Series {
                name: "v2".into(),
                points: vec![(1000.0, 1.0), (1060.0, 2.0), (1120.0, f64::NAN)],
                band: vec![(1000.0, 0.5, 1.5), (1060.0, 1.0, 3.0)],
            }],
            hlines: vec![HLine {
                y: 0.0,
                label: "zero".into(),
            }],
        });
        assert_eq!(svg.matches("class=\"pt\"").count(), 2);
        assert!(svg.contains("class=\"band\""));
        assert!(svg.contains("class=\"threshold\""));
        assert!(svg.contains("Lift &lt;x&gt;"));
        assert!(svg.contains("data-points=\"3\""));
        let empty = line_chart(&LineChart::default());
        assert!(empty.contains("no data points"));
    }

    #[test]
    fn axis_labels_never_show_negative_zero() {
        assert_eq!(axis_label(-0.0), "0");
        assert_eq!(axis_label(-0.00001), "0");
        assert_eq!(axis_label(-1e-17), "0");
        assert_eq!(axis_label(-0.5), "-0.5");
        assert_eq!(axis_label(-2.0), "-2");
        assert_eq!(axis_label(12_000.0), "12k");
    }

    #[test]
    fn scale_maps_ends() {
        let s = Scale {
            d0: 0.0,
            d1: 10.0,
            p0: 100.0,
            p1: 0.0,
        };
        assert_eq!(s.map(0.0), 100.0);
        assert_eq!(s.map(10.0), 0.0);
        assert_eq!(s.map(5.0), 50.0);
    }

    #[test]
    fn heat_map_and_bars() {
        let h = heat_map(
            "h",
            "drift",
            &["a".into()],
            &["10:00".into(), "11:00".into()],
            &[
                Cell {
                    row: 0,
                    col: 0,
                    ratio: Some(0.2),
                    breach: false,
                    tooltip: "ok".into(),
                },
                Cell {
                    row: 0,
                    col: 1,
                    ratio: Some(2.0),
                    breach: true,
                    tooltip: "drift".into(),
                },
            ],
        );
        assert_eq!(h.matches("class=\"cell pt").count(), 2);
        assert!(h.contains("breach"));
        assert_eq!(ratio_color(5.0), ratio_color(1.0));
        let b = bar_chart(
            "b",
            "hist",
            "share",
            &["0–1".into(), "1–2".into()],
            &[
                ("reference".into(), vec![0.4, 0.6]),
                ("current".into(), vec![0.5, 0.5]),
            ],
        );
        assert_eq!(b.matches("class=\"bar pt\"").count(), 4);
    }
}
