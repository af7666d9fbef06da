//! `/ui/{page}/csv?chart=ID`: rebuilds the page with the same query string and serves the
//! dataset behind one of its charts or tables.

use super::{build_for, error_response, Built, St};
use crate::DashboardError;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};

fn csv_escape(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// One CSV record: cells quoted where needed, joined by commas, ended by a newline.
pub(super) fn csv_line(cells: &[String]) -> String {
    let mut line = cells
        .iter()
        .map(|v| csv_escape(v))
        .collect::<Vec<_>>()
        .join(",");
    line.push('\n');
    line
}

pub(super) async fn csv(req: HttpRequest, st: St) -> HttpResponse {
    let name = req.match_info().get("page").unwrap_or("");
    let Built {
        session: s,
        ctx: c,
        page: p,
        ..
    } = match build_for(&req, &st, name).await {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let chart = c.q.get("chart").cloned().unwrap_or_default();
    let Some(d) = p.data.into_iter().find(|d| d.id == chart) else {
        return error_response(
            &s,
            &DashboardError::NotFound(format!("chart `{chart}` on this page")),
        );
    };
    let mut out = csv_line(&d.header);
    for r in &d.rows {
        out.push_str(&csv_line(r));
    }
    let file: String =
        d.id.chars()
            .map(|ch| {
                if ch.is_ascii_alphanumeric() || ch == '-' {
                    ch
                } else {
                    '_'
                }
            })
            .collect();
    HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{file}.csv\""),
        ))
        .body(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_quoted() {
        assert_eq!(csv_line(&["a".into(), "b,c".into()]), "a,\"b,c\"\n");
        assert_eq!(csv_escape("a,b"), "\"a,b\"");
        assert_eq!(csv_escape("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_escape("plain"), "plain");
    }
}
