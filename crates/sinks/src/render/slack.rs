//! Slack Block Kit payloads, built in code so that they always stay within Slack's limits and
//! their text is always escaped.

use serde_json::{Value, json};

use super::{AlertView, DigestView, Summary, VALUE_CHARS, summary_text, truncate};
use segwatch_core::rules::Severity;

/// Slack limits (Block Kit): blocks per message, characters of a section's text, of a header.
pub(super) const SLACK_MAX_BLOCKS: usize = 50;
pub(super) const SLACK_SECTION_CHARS: usize = 3000;
const SLACK_HEADER_CHARS: usize = 150;
const SLACK_FIELD_CHARS: usize = 2000;
/// Changed fields a Slack message lists (each line is at most ~400 characters).
const SLACK_CHANGE_LINES: usize = 20;

fn emoji(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => ":red_circle:",
        Severity::High => ":large_orange_circle:",
        Severity::Medium => ":large_yellow_circle:",
        Severity::Low => ":large_blue_circle:",
        Severity::Info => ":white_circle:",
    }
}

/// Text escaped for Slack `mrkdwn` (`&`, `<`, `>`), so that names cannot form links or mentions.
pub(super) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Inline code for mrkdwn: backticks cannot be escaped, so they are replaced.
fn code(s: &str) -> String {
    format!("`{}`", esc(&s.replace('`', "'")))
}

fn header(text: &str) -> Value {
    json!({"type": "header", "text": {"type": "plain_text", "text": truncate(text, SLACK_HEADER_CHARS), "emoji": true}})
}

fn section(text: &str) -> Value {
    json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate(text, SLACK_SECTION_CHARS)}})
}

fn context(text: &str) -> Value {
    json!({"type": "context", "elements": [{"type": "mrkdwn", "text": truncate(text, SLACK_SECTION_CHARS)}]})
}

/// Lines packed into as few sections as fit Slack's section limit.
fn sections_of_lines(title: Option<&str>, lines: &[String]) -> Vec<Value> {
    let mut out = Vec::new();
    let mut current = title.map(str::to_owned).unwrap_or_default();
    for line in lines {
        let line = truncate(line, SLACK_SECTION_CHARS - 1);
        if !current.is_empty()
            && current.chars().count() + 1 + line.chars().count() > SLACK_SECTION_CHARS
        {
            out.push(section(&current));
            current.clear();
        }
        if !current.is_empty() {
            current.push('\n');
        }
        current.push_str(&line);
    }
    if !current.is_empty() {
        out.push(section(&current));
    }
    out
}

pub(super) fn slack_alert_blocks(a: &AlertView) -> Vec<Value> {
    let mut blocks = Vec::new();
    let head = if a.resolved {
        format!(":white_check_mark: RESOLVED ({}): {}", a.label, a.title)
    } else if a.updated {
        format!(
            "{} UPDATED ({}): {}",
            emoji(a.severity_level),
            a.label,
            a.title
        )
    } else {
        format!("{} {}: {}", emoji(a.severity_level), a.label, a.title)
    };
    blocks.push(header(&head));

    let fields = [
        format!("*Resource*\n{}", esc(&a.resource_name)),
        format!("*Kind*\n{}", a.resource_kind),
        format!("*ID*\n{}", code(&a.resource_id)),
        format!("*Rule*\n{}", code(&a.rule_id)),
    ];
    let fields: Vec<Value> = fields
        .iter()
        .map(|f| json!({"type": "mrkdwn", "text": truncate(f, SLACK_FIELD_CHARS)}))
        .collect();
    blocks.push(json!({"type": "section", "fields": fields}));

    if let Some(text) = &a.resolution_text {
        blocks.push(section(&format!(
            ":white_check_mark: *Resolved:* {}",
            esc(text)
        )));
    }
    if !a.summary.is_empty() {
        let was = if a.resolved { "_Finding was:_ " } else { "" };
        blocks.push(section(&format!("{was}{}", esc(&a.summary))));
    }
    if let Some(line) = &a.attribution {
        blocks.push(context(&format!(":bust_in_silhouette: {}", esc(line))));
    }
    if !a.changes.is_empty() {
        let mut lines: Vec<String> = a
            .changes
            .iter()
            .take(SLACK_CHANGE_LINES)
            .map(|c| {
                format!(
                    "• {}: {} → {}",
                    code(&truncate(&c.path, VALUE_CHARS)),
                    code(&c.old),
                    code(&c.new)
                )
            })
            .collect();
        if a.changes.len() > SLACK_CHANGE_LINES {
            lines.push(format!(
                "…and {} more changes",
                a.changes.len() - SLACK_CHANGE_LINES
            ));
        }
        blocks.extend(
            sections_of_lines(Some("*Changes*"), &lines)
                .into_iter()
                .take(5),
        );
    }
    if !a.resolved && !a.remediation.trim().is_empty() {
        blocks.push(section(&format!(
            "*Remediation*\n{}",
            esc(a.remediation.trim())
        )));
    }
    if let Some(link) = &a.link {
        blocks.push(section(&format!("<{}|Open in Segment>", esc(link))));
    }
    let mut ctx = format!(
        "{} · snapshot {} · {}",
        a.rule_kind,
        a.snapshot_id,
        esc(&a.opened_at.to_string())
    );
    if !a.tags.is_empty() {
        let tags: Vec<String> = a.tags.iter().map(|t| code(t)).collect();
        ctx = format!("{} · {ctx}", tags.join(" "));
    }
    blocks.push(context(&ctx));
    blocks
}

fn digest_line(a: &AlertView) -> String {
    let mark = if a.resolved {
        ":white_check_mark: resolved · "
    } else {
        ""
    };
    let name = match &a.link {
        Some(link) => format!("<{}|{}>", esc(link), esc(&a.resource_name)),
        None => esc(&a.resource_name),
    };
    let mut lines = vec![format!(
        "{} {mark}*{}* {} — {} ({})",
        emoji(a.severity_level),
        a.label,
        esc(&truncate(&a.title, 150)),
        name,
        a.resource_kind
    )];
    if let Some(who) = &a.attribution {
        lines.push(format!(
            "      :bust_in_silhouette: {}",
            esc(&truncate(who, 200))
        ));
    }
    for c in &a.digest_changes {
        lines.push(format!(
            "      • {}: {} → {}",
            code(&c.path),
            code(&c.old),
            code(&c.new)
        ));
    }
    if a.more_changes > 0 {
        lines.push(format!(
            "      …and {} more change{}",
            a.more_changes,
            if a.more_changes == 1 { "" } else { "s" }
        ));
    }
    lines.push(format!("      In full: {}", code(&a.command)));
    lines.join("\n")
}

pub(super) fn slack_digest_blocks(d: &DigestView) -> Vec<Value> {
    let mut blocks = vec![header(&format!(
        "segwatch: {} alert{} from snapshot {}",
        d.total,
        if d.total == 1 { "" } else { "s" },
        d.snapshot_id
    ))];
    if !d.counts_text.is_empty() {
        blocks.push(section(&esc(&d.counts_text)));
    }
    let mut lines: Vec<String> = d.alerts.iter().map(digest_line).collect();
    if d.more > 0 {
        lines.push(format!("…and {} more", d.more));
    }
    // Entries of about 1,000 characters (a title, who, three changes of shortened values, the
    // command), packed into sections; the outbox keeps a digest's block text under 12,000
    // characters, so a sent digest is far from 48 sections.
    blocks.extend(
        sections_of_lines(None, &lines)
            .into_iter()
            .take(SLACK_MAX_BLOCKS - 2),
    );
    blocks
}

pub(super) fn slack_summary_blocks(s: &Summary) -> Vec<Value> {
    vec![
        header(&format!(
            "segwatch: {} more alert{} not listed",
            s.count,
            if s.count == 1 { "" } else { "s" }
        )),
        section(&esc(&summary_text(s))),
    ]
}

pub(super) fn slack_test_blocks() -> Vec<Value> {
    vec![
        header(":wave: segwatch test message"),
        section("If you can read this, segwatch can deliver alerts to this channel."),
    ]
}
