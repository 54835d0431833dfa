//! Microsoft Teams messages: an Adaptive Card in the message envelope a Teams Workflows
//! webhook ("When a Teams webhook request is received") takes, built in code so that its text
//! is always escaped and each part bounded.
//!
//! The envelope is the one Microsoft documents for posting an Adaptive Card to a Teams webhook
//! (<https://learn.microsoft.com/en-us/connectors/teams/#microsoft-teams-webhook>, and
//! "Send Adaptive Cards using an Incoming Webhook",
//! <https://learn.microsoft.com/en-us/microsoftteams/platform/webhooks-and-connectors/how-to/connectors-using>):
//! `{"type": "message", "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive",
//! "contentUrl": null, "content": {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
//! "type": "AdaptiveCard", "version": "1.5", "body": [...]}}]}`. Teams renders Adaptive Cards up
//! to version 1.5 ("Teams is also limited to version 1.5",
//! <https://learn.microsoft.com/en-us/microsoft-copilot-studio/guidance/adaptive-cards-overview>);
//! the cards use only elements of 1.0–1.2 (`TextBlock`, `FactSet`, `Container`,
//! `Action.OpenUrl`), so older clients render them too.

use serde_json::{Value, json};

use super::{AlertView, DigestView, Summary, VALUE_CHARS, summary_text, truncate};
use segwatch_core::rules::Severity;

/// The `contentType` of an Adaptive Card attachment.
pub const CONTENT_TYPE: &str = "application/vnd.microsoft.card.adaptive";
/// The card's `$schema`.
pub const SCHEMA: &str = "http://adaptivecards.io/schemas/adaptive-card.json";
/// The card's `version`: the highest Teams renders.
pub const VERSION: &str = "1.5";

/// Characters of a card's title.
const TITLE_CHARS: usize = 200;
/// Characters of a paragraph (summary, remediation, resolution).
const PARAGRAPH_CHARS: usize = 2000;
/// Characters of a fact's value (resource name, id, who).
const FACT_CHARS: usize = 300;
/// Changed fields a single alert's card lists (each at most ~370 characters).
const CHANGE_FACTS: usize = 20;

/// Text escaped for the Markdown subset Adaptive Cards render in `TextBlock` and `FactSet`:
/// names and values from the workspace cannot form links (`[text](url)`, `<url>`) or markup.
/// Emphasis (`*`, `_`) is left alone: it cannot mislead, and ids full of `\_` would.
pub(super) fn md(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | '[' | ']' | '<' | '>') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The color of a severity's title (Adaptive Card `TextBlock.color`).
fn color(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical | Severity::High => "Attention",
        Severity::Medium => "Warning",
        Severity::Low | Severity::Info => "Accent",
    }
}

fn text(s: &str, max: usize) -> Value {
    json!({"type": "TextBlock", "text": truncate(&md(s), max), "wrap": true})
}

fn small(s: &str) -> Value {
    json!({"type": "TextBlock", "text": truncate(&md(s), PARAGRAPH_CHARS), "wrap": true,
           "size": "Small", "isSubtle": true, "spacing": "Small"})
}

fn heading(s: &str) -> Value {
    json!({"type": "TextBlock", "text": truncate(&md(s), TITLE_CHARS), "wrap": true,
           "weight": "Bolder", "spacing": "Medium"})
}

/// A `FactSet` of (title, value) pairs; titles are shortened like values (a fact's title has
/// no limit of its own).
fn facts<T: AsRef<str>>(pairs: impl IntoIterator<Item = (T, String)>) -> Value {
    let facts: Vec<Value> = pairs
        .into_iter()
        .map(|(title, value)| {
            json!({"title": truncate(&md(title.as_ref()), VALUE_CHARS),
                   "value": truncate(&md(&value), FACT_CHARS)})
        })
        .collect();
    json!({"type": "FactSet", "facts": facts})
}

/// The message envelope around one card.
fn envelope(body: Vec<Value>, actions: Vec<Value>) -> Value {
    let mut card = json!({
        "$schema": SCHEMA,
        "type": "AdaptiveCard",
        "version": VERSION,
        "body": body,
        // Teams-only: the card takes the channel's width instead of a narrow bubble.
        "msteams": {"width": "Full"},
    });
    if !actions.is_empty() {
        card["actions"] = Value::Array(actions);
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": CONTENT_TYPE,
            "contentUrl": null,
            "content": card,
        }],
    })
}

fn open_in_segment(link: &str) -> Value {
    json!({"type": "Action.OpenUrl", "title": "Open in Segment", "url": link})
}

fn alert_title(a: &AlertView) -> Value {
    let (head, color) = if a.resolved {
        (format!("RESOLVED ({}): {}", a.label, a.title), "Good")
    } else if a.updated {
        (
            format!("UPDATED ({}): {}", a.label, a.title),
            color(a.severity_level),
        )
    } else {
        (format!("{}: {}", a.label, a.title), color(a.severity_level))
    };
    json!({"type": "TextBlock", "text": truncate(&md(&head), TITLE_CHARS), "wrap": true,
           "size": "Large", "weight": "Bolder", "color": color})
}

/// One alert event: severity and title, the resource, who, what changed, remediation, link.
pub(super) fn teams_alert(a: &AlertView) -> Value {
    let mut body = vec![alert_title(a)];
    let mut pairs = vec![
        ("Resource", a.resource_name.clone()),
        ("Kind", a.resource_kind.to_owned()),
        ("ID", a.resource_id.clone()),
        ("Rule", format!("{} ({})", a.rule_id, a.rule_kind)),
        ("Workspace", a.workspace.clone()),
    ];
    if let Some(who) = &a.attribution {
        pairs.push(("Who", who.clone()));
    }
    body.push(facts(pairs));
    if let Some(resolution) = &a.resolution_text {
        let when = a.resolved_at.map(|t| format!(" ({t})")).unwrap_or_default();
        body.push(json!({"type": "TextBlock", "text": truncate(&md(&format!("Resolved because {resolution}{when}.")), PARAGRAPH_CHARS),
                         "wrap": true, "color": "Good"}));
    }
    if !a.summary.is_empty() {
        let was = if a.resolved { "Finding was: " } else { "" };
        body.push(text(&format!("{was}{}", a.summary), PARAGRAPH_CHARS));
    }
    if !a.changes.is_empty() {
        body.push(heading("Changes"));
        body.push(facts(
            a.changes
                .iter()
                .take(CHANGE_FACTS)
                .map(|c| (c.path.as_str(), format!("{} → {}", c.old, c.new))),
        ));
        if a.changes.len() > CHANGE_FACTS {
            body.push(small(&format!(
                "…and {} more changes",
                a.changes.len() - CHANGE_FACTS
            )));
        }
    }
    if !a.resolved && !a.remediation.trim().is_empty() {
        body.push(heading("Remediation"));
        body.push(text(a.remediation.trim(), PARAGRAPH_CHARS));
    }
    let mut context = format!(
        "{} · snapshot {} · {}",
        a.rule_kind, a.snapshot_id, a.opened_at
    );
    if !a.tags.is_empty() {
        context = format!("{} · {context}", a.tags.join(", "));
    }
    body.push(small(&context));
    let actions = a.link.iter().map(|l| open_in_segment(l)).collect();
    envelope(body, actions)
}

/// One alert of a digest: a container with its title, who, up to three changes and where to
/// see it whole.
fn digest_entry(a: &AlertView) -> Value {
    let head = if a.resolved {
        format!(
            "RESOLVED ({}) {} — {} ({})",
            a.label, a.title, a.resource_name, a.resource_kind
        )
    } else {
        format!(
            "{} {} — {} ({})",
            a.label, a.title, a.resource_name, a.resource_kind
        )
    };
    let color = if a.resolved {
        "Good"
    } else {
        color(a.severity_level)
    };
    let mut items = vec![
        json!({"type": "TextBlock", "text": truncate(&md(&head), 400),
                                "wrap": true, "weight": "Bolder", "color": color}),
    ];
    if let Some(who) = &a.attribution {
        items.push(small(who));
    }
    if !a.digest_changes.is_empty() {
        items.push(facts(
            a.digest_changes
                .iter()
                .map(|c| (c.path.as_str(), format!("{} → {}", c.old, c.new))),
        ));
    }
    if a.more_changes > 0 {
        items.push(small(&format!(
            "…and {} more change{}",
            a.more_changes,
            if a.more_changes == 1 { "" } else { "s" }
        )));
    }
    let mut pointer = String::new();
    if let Some(link) = &a.link {
        // The link is segwatch's own (app_base and a checked id): Markdown may carry it.
        pointer.push_str(&format!("[Open in Segment]({link}) · "));
    }
    pointer.push_str(&format!("In full: `{}`", a.command.replace('`', "'")));
    items.push(
        json!({"type": "TextBlock", "text": pointer, "wrap": true, "size": "Small",
                      "isSubtle": true, "spacing": "Small"}),
    );
    json!({"type": "Container", "items": items, "separator": true, "spacing": "Medium"})
}

/// A digest: counts, then each alert as a container.
pub(super) fn teams_digest(d: &DigestView) -> Value {
    let mut body = vec![json!({
        "type": "TextBlock",
        "text": format!(
            "segwatch: {} alert{} from snapshot {}",
            d.total,
            if d.total == 1 { "" } else { "s" },
            d.snapshot_id
        ),
        "wrap": true, "size": "Large", "weight": "Bolder",
    })];
    if !d.counts_text.is_empty() {
        body.push(text(&d.counts_text, PARAGRAPH_CHARS));
    }
    body.extend(d.alerts.iter().map(digest_entry));
    if d.more > 0 {
        body.push(text(&format!("…and {} more", d.more), PARAGRAPH_CHARS));
    }
    envelope(body, Vec::new())
}

/// The last message of a run that reached `max_messages_per_run`.
pub(super) fn teams_summary(s: &Summary) -> Value {
    let body = vec![
        json!({"type": "TextBlock", "text": format!(
            "segwatch: {} more alert{} not listed",
            s.count,
            if s.count == 1 { "" } else { "s" }
        ), "wrap": true, "size": "Large", "weight": "Bolder"}),
        text(&summary_text(s), 4 * PARAGRAPH_CHARS),
        json!({"type": "TextBlock", "text": truncate(&md(&s.command), PARAGRAPH_CHARS),
               "wrap": true, "fontType": "Monospace"}),
    ];
    envelope(body, Vec::new())
}

/// `segwatch sinks test`.
pub(super) fn teams_test() -> Value {
    envelope(
        vec![
            json!({"type": "TextBlock", "text": "segwatch test message", "wrap": true,
                   "size": "Large", "weight": "Bolder"}),
            text(
                "If you can read this, segwatch can deliver alerts to this channel.",
                PARAGRAPH_CHARS,
            ),
        ],
        Vec::new(),
    )
}
