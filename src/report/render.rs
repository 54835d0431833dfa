//! Rendering a [`Report`]: HTML (one self-contained file: inline CSS, no fonts, scripts or
//! images from elsewhere) and GitHub-flavoured Markdown from minijinja templates, or JSON.
//!
//! Both templates escape every value by default: the HTML one with minijinja's HTML escaping,
//! the Markdown one with [`escape_markdown`], so that a resource name from Segment can neither
//! inject markup nor break a table. Numbers and times are formatted by the filters registered
//! in [`environment`].

use chrono::DateTime;
use minijinja::value::Value;
use minijinja::{AutoEscape, Environment, Output, State};

use super::{Report, ReportError};

/// The HTML template (auto-escaped as HTML).
pub(super) const HTML_TEMPLATE: &str = include_str!("templates/report.html.j2");
/// The Markdown template (auto-escaped as Markdown).
pub(super) const MARKDOWN_TEMPLATE: &str = include_str!("templates/report.md.j2");

const HTML_NAME: &str = "report.html.j2";
const MARKDOWN_NAME: &str = "report.md.j2";
const MARKDOWN_ESCAPE: &str = "markdown";

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One self-contained HTML file.
    Html,
    /// GitHub-flavoured Markdown.
    Markdown,
    /// The report's data as JSON.
    Json,
}

/// Renders the report.
pub fn render(report: &Report, format: Format) -> Result<String, ReportError> {
    let name = match format {
        Format::Html => HTML_NAME,
        Format::Markdown => MARKDOWN_NAME,
        Format::Json => {
            let mut text = serde_json::to_string_pretty(report)
                .map_err(|e| ReportError::Corrupt(format!("the report does not serialise: {e}")))?;
            text.push('\n');
            return Ok(text);
        }
    };
    let env = environment();
    let failed = |e: minijinja::Error| ReportError::Render {
        name,
        message: segwatch_sinks::render::describe(&e),
    };
    env.get_template(name)
        .and_then(|t| {
            t.render(minijinja::value::Serde(&Context {
                report,
                flows: super::flows::view(&report.data_flows),
            }))
        })
        .map_err(failed)
}

/// What the templates see: `report`, the [`Report`] as serialised, and `flows`, its data-flow
/// section with names resolved and the graph laid out.
#[derive(serde::Serialize)]
struct Context<'a> {
    report: &'a Report,
    flows: super::flows::FlowView,
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_syntax(
        minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .expect("the default delimiters are valid"),
    );
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".md.j2") {
            AutoEscape::Custom(std::borrow::Cow::Borrowed(MARKDOWN_ESCAPE))
        } else {
            minijinja::default_auto_escape_callback(name)
        }
    });
    env.set_formatter(format_value);
    env.add_filter("pct", format_percent);
    env.add_filter("num", |n: i64| group_thousands(n));
    env.add_filter("duration", |secs: i64| format_duration(secs));
    env.add_filter("count", |n: i64, noun: &str| {
        let noun = if n == 1 {
            noun.to_string()
        } else {
            format!("{noun}s")
        };
        format!("{} {noun}", group_thousands(n))
    });
    env.add_filter("when", |text: &str| format_time(text));
    env.add_filter("day", |text: &str| {
        text.get(..10).unwrap_or(text).to_string()
    });
    env.add_filter("bar_class", bar_class);
    env.add_template(HTML_NAME, HTML_TEMPLATE)
        .expect("the built-in HTML report template compiles");
    env.add_template(MARKDOWN_NAME, MARKDOWN_TEMPLATE)
        .expect("the built-in Markdown report template compiles");
    env
}

/// Writes a value, escaped for the template's format; `none` prints as nothing.
fn format_value(
    out: &mut Output<'_>,
    state: &mut State<'_, '_>,
    value: &Value,
) -> Result<(), minijinja::Error> {
    if value.is_none() || value.is_undefined() {
        return Ok(());
    }
    match state.auto_escape() {
        AutoEscape::Custom(name) if name == MARKDOWN_ESCAPE => {
            let text = value.to_string();
            let written = if value.is_safe() {
                text
            } else {
                escape_markdown(&text)
            };
            out.write_str(&written).map_err(|e| {
                minijinja::Error::new(minijinja::ErrorKind::WriteFailure, e.to_string())
            })
        }
        _ => minijinja::escape_formatter(out, state, value),
    }
}

/// Escapes text for a GitHub-flavoured Markdown table cell: every character that could start
/// markup (emphasis, links, code, HTML, tables) gets a backslash, line breaks become spaces, and
/// other control characters and bidi overrides are escaped as `\u{…}`.
pub(super) fn escape_markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '~' | '&' | '#' | '!' => {
                out.push('\\');
                out.push(c);
            }
            '\r' | '\n' => out.push(' '),
            // Other control characters and bidi overrides would reach a terminal that shows
            // the report (`cat`, `less -R`) raw.
            c if segwatch_core::terminal::is_unsafe(c) => {
                out.push_str(&c.escape_default().to_string())
            }
            c => out.push(c),
        }
    }
    out
}

/// `87.5%`, with one decimal; never rounds up to 100.0% or down to 0.0% unless exact, so that a
/// single failing check in thousands still shows. `—` when there is no rate.
pub(super) fn format_percent(rate: Option<f64>) -> String {
    let Some(rate) = rate else {
        return "—".to_string();
    };
    let mut tenths = (rate * 10.0).round();
    if tenths >= 1000.0 && rate < 100.0 {
        tenths = 999.0;
    } else if tenths <= 0.0 && rate > 0.0 {
        tenths = 1.0;
    }
    format!("{:.1}%", tenths / 10.0)
}

/// Which colour a pass-rate bar gets.
fn bar_class(rate: Option<f64>) -> &'static str {
    match rate {
        None => "none",
        Some(r) if r >= 100.0 => "full",
        Some(r) if r >= 90.0 => "good",
        Some(r) if r >= 70.0 => "fair",
        Some(_) => "poor",
    }
}

/// `12,345`.
pub(super) fn group_thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// `3d 4h`, `5h 12m`, `7m 3s`, `42s`: the two largest units.
pub(super) fn format_duration(secs: i64) -> String {
    let secs = secs.max(0);
    let (d, h, m, s) = (
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

/// A stored RFC 3339 time as `2026-11-24 12:39:11 UTC`.
pub(super) fn format_time(text: &str) -> String {
    match DateTime::parse_from_rfc3339(text) {
        Ok(t) => t
            .with_timezone(&chrono::Utc)
            .format("%Y-%m-%d %H:%M:%S UTC")
            .to_string(),
        Err(_) => text.to_string(),
    }
}
