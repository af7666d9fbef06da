//! HTML building blocks: escaping, number formatting, the page frame.
//!
//! Every string that did not come from this crate goes through [`esc`] before it reaches a page.

use std::fmt::Write;

/// Escapes text for HTML element content and double- or single-quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a query-string component.
pub fn url_enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// A number for people: thousands separators for counts, sensible decimals otherwise.
pub fn num(x: f64) -> String {
    if !x.is_finite() {
        return "–".into();
    }
    let a = x.abs();
    let s = if a >= 1000.0 {
        group(x.round() as i64)
    } else if a >= 100.0 {
        format!("{x:.1}")
    } else if a >= 1.0 {
        format!("{x:.2}")
    } else if a == 0.0 {
        "0".into()
    } else if a >= 0.001 {
        format!("{x:.4}")
    } else {
        format!("{x:.2e}")
    };
    unsigned_zero(s)
}

/// Drops the minus of a formatted number that shows nothing but zeros: `-0.00` → `0.00`,
/// `-0` → `0` (what `format!` makes of −0.0 and of small negatives rounded away).
pub fn unsigned_zero(s: String) -> String {
    match s.strip_prefix('-') {
        Some(rest) if !rest.is_empty() && rest.bytes().all(|b| b == b'0' || b == b'.') => {
            rest.to_string()
        }
        _ => s,
    }
}

/// `x` with `decimals` decimals; −0.0 and values that round to zero print as zero (`0.00`).
pub fn fixed(x: f64, decimals: usize) -> String {
    if !x.is_finite() {
        return "–".into();
    }
    unsigned_zero(format!("{x:.decimals$}"))
}

/// A p-value with 4 decimals, or `< 0.0001` when it rounds to zero (it never is zero).
pub fn p_value(p: f64) -> String {
    if p.is_finite() && p < 0.00005 {
        "< 0.0001".into()
    } else {
        fixed(p, 4)
    }
}

/// `x` with `decimals` decimals and a sign (`+1.50`, `−1.50`); a value that rounds to zero has
/// none (`0.00`).
pub fn signed(x: f64, decimals: usize) -> String {
    if !x.is_finite() {
        return "–".into();
    }
    let magnitude = fixed(x.abs(), decimals);
    if magnitude.bytes().all(|b| b == b'0' || b == b'.') {
        magnitude
    } else if x < 0.0 {
        format!("−{magnitude}")
    } else {
        format!("+{magnitude}")
    }
}

/// A share of a whole (0 to 1) as a percentage, e.g. `12.34 %`. A share is never below 0 or
/// above 100 %: anything outside is clamped (rounding of floating-point sums), and never shown
/// as `-0.00 %`.
pub fn share(x: f64, decimals: usize) -> String {
    if !x.is_finite() {
        return "–".into();
    }
    format!("{} %", fixed(x.clamp(0.0, 1.0) * 100.0, decimals))
}

/// An integer with thousands separators.
pub fn int(n: u64) -> String {
    group(n as i64)
}

fn group(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// Money with a currency code and a sign, e.g. `+1,234.50 EUR`, `−3.00 EUR`; an amount that
/// rounds to zero cents has no sign (`0.00 EUR`).
pub fn money(x: f64, currency: &str) -> String {
    if !x.is_finite() {
        return "–".into();
    }
    let cents = (x.abs() * 100.0).round() as i64;
    let sign = if cents == 0 {
        ""
    } else if x < 0.0 {
        "−"
    } else {
        "+"
    };
    format!(
        "{sign}{}.{:02} {}",
        group(cents / 100),
        cents % 100,
        esc(currency)
    )
}

/// A fraction as a percentage with a sign, e.g. `+3.10 %`, `−0.50 %`; one that rounds to zero
/// has none (`0.00 %`).
pub fn pct(x: f64) -> String {
    if !x.is_finite() {
        return "–".into();
    }
    format!("{} %", signed(x * 100.0, 2))
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS` UTC.
pub fn time(ts: u32) -> String {
    chrono::DateTime::from_timestamp(ts as i64, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

/// The navigation entries: (path under /ui, label).
pub const NAV: &[(&str, &str)] = &[
    ("", "Overview"),
    ("roi", "ROI"),
    ("drift", "Drift & quality"),
    ("fairness", "Fairness"),
    ("experiments", "Experiments"),
    ("llm", "LLM"),
    ("alerts", "Alerts"),
    ("shadow", "Shadow & retraining"),
];

/// What the frame needs to know about the request.
pub struct Frame<'a> {
    pub title: &'a str,
    /// Path under `/ui` of the current page (`""` for the overview).
    pub page: &'a str,
    /// Signed-in user's name and role, if any.
    pub user: Option<(&'a str, &'a str)>,
    /// CSRF token for the logout form.
    pub csrf: &'a str,
    /// Query string to keep when moving between pages (time range).
    pub keep_query: &'a str,
    /// A warning shown at the top (e.g. auth disabled).
    pub banner: Option<&'a str>,
}

/// Wraps `body` in the page frame: head, navigation, user box.
pub fn page(f: &Frame<'_>, body: &str) -> String {
    let mut nav = String::new();
    for (path, label) in NAV {
        let href = if f.keep_query.is_empty() {
            format!("/ui/{path}")
        } else {
            format!("/ui/{path}?{}", f.keep_query)
        };
        let cur = if *path == f.page {
            " aria-current=\"page\""
        } else {
            ""
        };
        let _ = write!(nav, "<a href=\"{}\"{cur}>{}</a>", esc(&href), esc(label));
    }
    let user = match f.user {
        Some((name, role)) => format!(
            "<form method=\"post\" action=\"/ui/logout\" class=\"user\"><span id=\"whoami\" data-role=\"{r}\">{n} · {r}</span>\
             <input type=\"hidden\" name=\"csrf\" value=\"{c}\"><button type=\"submit\">Sign out</button></form>",
            n = esc(name),
            r = esc(role),
            c = esc(f.csrf)
        ),
        None => String::new(),
    };
    let banner = f
        .banner
        .map(|b| format!("<p class=\"banner warn\">{}</p>", esc(b)))
        .unwrap_or_default();
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t} · vigil</title><link rel=\"stylesheet\" href=\"/ui/assets/app.css\">\
         <script src=\"/ui/assets/app.js\"></script></head><body>\
         <header><a class=\"brand\" href=\"/ui/\">vigil</a><nav>{nav}</nav>{user}</header>\
         {banner}<main><h1>{t}</h1>{body}</main>\
         <footer>vigil dashboards · times in UTC · every chart links its data as CSV</footer></body></html>",
        t = esc(f.title),
    )
}

/// A table from a header row and body rows of already-escaped cells.
pub fn table(id: &str, head: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!(
        "<div class=\"scroll\"><table id=\"{}\"><thead><tr>",
        esc(id)
    );
    for h in head {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr></thead><tbody>");
    for r in rows {
        out.push_str("<tr>");
        for c in r {
            let _ = write!(out, "<td>{c}</td>");
        }
        out.push_str("</tr>");
    }
    if rows.is_empty() {
        let _ = write!(
            out,
            "<tr><td colspan=\"{}\" class=\"empty\">no data in this time range</td></tr>",
            head.len().max(1)
        );
    }
    out.push_str("</tbody></table></div>");
    out
}

/// A link; both the target and the text are escaped.
pub fn link(href: &str, text: &str) -> String {
    format!("<a href=\"{}\">{}</a>", esc(href), esc(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_that_can_break_out() {
        assert_eq!(
            esc(r#"<script>alert("x&'y")</script>"#),
            "&lt;script&gt;alert(&quot;x&amp;&#39;y&quot;)&lt;/script&gt;"
        );
        assert_eq!(esc("plain ünïcode"), "plain ünïcode");
    }

    #[test]
    fn formats_numbers() {
        assert_eq!(int(1234567), "1,234,567");
        assert_eq!(int(999), "999");
        assert_eq!(money(-1234.5, "EUR"), "−1,234.50 EUR");
        assert_eq!(money(0.004, "<b>"), "0.00 &lt;b&gt;");
        assert_eq!(money(2.5, "EUR"), "+2.50 EUR");
        assert_eq!(pct(0.031), "+3.10 %");
        assert_eq!(pct(-0.031), "−3.10 %");
        assert_eq!(num(f64::NAN), "–");
        assert_eq!(num(0.5), "0.5000");
        assert_eq!(url_enc("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }

    #[test]
    fn tiny_p_values_are_bounded_not_zero() {
        assert_eq!(super::p_value(6.45e-80), "< 0.0001");
        assert_eq!(super::p_value(0.0123), "0.0123");
    }

    #[test]
    fn zero_is_never_signed() {
        // Issue #13: "−0.00 EUR" and "−0.00 %" on the demo's pages.
        for z in [-0.0, 0.0, -0.0001, 0.0001, -0.004, -1e-300] {
            assert_eq!(fixed(z, 2), "0.00", "{z}");
            assert_eq!(signed(z, 2), "0.00", "{z}");
            assert_eq!(money(z, "EUR"), "0.00 EUR", "{z}");
            assert_eq!(share(z / 100.0, 2), "0.00 %", "{z}");
        }
        for z in [-0.0, -0.00001, 0.00001] {
            assert_eq!(pct(z), "0.00 %", "{z}");
        }
        assert_eq!(fixed(-0.0, 0), "0");
        assert_eq!(fixed(-0.4, 0), "0");
        assert_eq!(fixed(-0.006, 2), "-0.01");
        assert_eq!(signed(-0.006, 2), "−0.01");
        assert_eq!(signed(0.006, 2), "+0.01");
        assert_eq!(num(-0.0), "0");
        assert_eq!(unsigned_zero("-0.00".into()), "0.00");
        assert_eq!(unsigned_zero("-0".into()), "0");
        assert_eq!(unsigned_zero("-1.00e-5".into()), "-1.00e-5");
        assert_eq!(unsigned_zero("-".into()), "-");
        // Shares stay within 0 and 100 %.
        assert_eq!(share(-0.0314, 2), "0.00 %");
        assert_eq!(share(1.2, 1), "100.0 %");
        assert_eq!(share(0.1234, 2), "12.34 %");
        assert_eq!(share(f64::NAN, 2), "–");
    }

    #[test]
    fn frame_escapes_user_and_marks_current_page() {
        let html = page(
            &Frame {
                title: "ROI",
                page: "roi",
                user: Some(("<eve>", "viewer")),
                csrf: "tok",
                keep_query: "range=1h",
                banner: None,
            },
            "<p>x</p>",
        );
        assert!(html.contains("&lt;eve&gt;"));
        assert!(!html.contains("<eve>"));
        assert!(html.contains("href=\"/ui/roi?range=1h\" aria-current=\"page\""));
    }
}
