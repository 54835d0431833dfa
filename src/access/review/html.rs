//! The printable review sheet: one self-contained HTML file (inline CSS; no script, font or
//! image from elsewhere), one table per user, every value from Segment escaped by minijinja's
//! HTML auto-escaping, as the compliance report (`crate::report`) renders.

use std::collections::BTreeMap;

use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

use super::{FollowUp, ReviewExport, ReviewRow};

const REVIEW_NAME: &str = "access-review.html.j2";
const FOLLOW_UP_NAME: &str = "access-follow-up.html.j2";

/// The review sheet of an export.
pub fn render_html(export: &ReviewExport, generator: &str) -> Result<String, minijinja::Error> {
    #[derive(Serialize)]
    struct Subject<'a> {
        email: &'a str,
        name: &'a str,
        user_id: &'a str,
        status: &'a str,
        user_type: &'a str,
        last_seen_acting: &'a str,
        rows: Vec<&'a ReviewRow>,
    }
    // Rows are in subject order already; grouping keeps that order.
    let mut by_subject: BTreeMap<(usize, &str), Subject<'_>> = BTreeMap::new();
    let mut first_seen: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for row in &export.rows {
        let n = first_seen.len();
        let order = *first_seen
            .entry((row.user_email.as_str(), row.user_id.as_str()))
            .or_insert(n);
        by_subject
            .entry((order, row.user_email.as_str()))
            .or_insert_with(|| Subject {
                email: &row.user_email,
                name: &row.user_name,
                user_id: &row.user_id,
                status: &row.status,
                user_type: &row.user_type,
                last_seen_acting: &row.last_seen_acting,
                rows: Vec::new(),
            })
            .rows
            .push(row);
    }
    let subjects: Vec<Subject<'_>> = by_subject.into_values().collect();
    #[derive(Serialize)]
    struct Sheet<'a> {
        export: &'a ReviewExport,
        subjects: Vec<Subject<'a>>,
        generator: &'a str,
    }
    environment()
        .get_template(REVIEW_NAME)?
        .render(minijinja::value::Serde(&Sheet {
            export,
            subjects,
            generator,
        }))
}

/// The follow-up sheet.
pub fn render_follow_up_html(
    follow_up: &FollowUp,
    generator: &str,
) -> Result<String, minijinja::Error> {
    #[derive(Serialize)]
    struct Sheet<'a> {
        f: &'a FollowUp,
        generator: &'a str,
    }
    environment()
        .get_template(FOLLOW_UP_NAME)?
        .render(minijinja::value::Serde(&Sheet {
            f: follow_up,
            generator,
        }))
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // The default callback escapes templates whose name ends in `.html` only.
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
    env.add_template(REVIEW_NAME, include_str!("access-review.html.j2"))
        .expect("the built-in review template compiles");
    env.add_template(FOLLOW_UP_NAME, include_str!("access-follow-up.html.j2"))
        .expect("the built-in follow-up template compiles");
    env
}

#[cfg(test)]
mod tests {
    use super::*;
    use segwatch_core::time::Timestamp;

    #[test]
    fn segment_text_is_escaped_and_nothing_is_fetched() {
        let hostile = "<script>alert(1)</script>";
        let row = ReviewRow {
            account_name: "a@x.io".into(),
            account_owner: "a@x.io".into(),
            role: hostile.into(),
            status: "Active".into(),
            workspace: "w".into(),
            snapshot_id: 1,
            user_email: "a@x.io".into(),
            user_name: "<b>Ann</b>".into(),
            user_id: "u1".into(),
            user_type: "unknown".into(),
            role_id: "r".into(),
            resource_type: "SOURCE".into(),
            resource_id: "s1".into(),
            resource_name: "\"><img src=x onerror=alert(1)>".into(),
            resource_labels: "env:prod".into(),
            via: "direct".into(),
            via_group_id: String::new(),
            label_filter: String::new(),
            granted_since: "<=2026-01-01T00:00:00.000Z".into(),
            last_seen_acting: String::new(),
            decision: String::new(),
            reviewer: String::new(),
            reviewed_at: String::new(),
            comment: String::new(),
        };
        let export = ReviewExport {
            workspace: "w".into(),
            at: "2026-01-02T00:00:00.000Z".into(),
            snapshot_id: 1,
            observed_at: "2026-01-01T00:00:00.000Z".parse::<Timestamp>().unwrap(),
            rows: vec![row],
        };
        let html = render_html(&export, "segwatch test").unwrap();
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(!html.contains("<b>Ann"), "{html}");
        assert!(html.contains("&lt;script&gt;"));
        assert!(html.contains("&lt;=2026-01-01"));
        for remote in ["http://", "https://", "<script", "<link", "@import", "url("] {
            assert!(!html.contains(remote), "{remote} in the sheet");
        }
        assert!(html.contains("page-break-inside: avoid"));
    }
}
