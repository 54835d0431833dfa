//! OCSF output: alert events as [OCSF](https://schema.ocsf.io) findings, for SIEMs and security
//! data lakes (AWS Security Lake takes only OCSF; Splunk and Prowler speak it).
//!
//! The mapping is pure ([`event`], [`update_event`], [`events_between`], [`backfill`]); [`file`](mod@file) appends the events to a JSON
//! lines file with size-based rotation, and [`http`] posts them (Splunk HEC or NDJSON).
//!
//! # Mapping (OCSF 1.5.0)
//!
//! Field names and enum values follow the schema sources of OCSF 1.5.0 (`ocsf/ocsf-schema`,
//! tag `1.5.0`): `events/base_event.json`, `events/findings/finding.json`,
//! `events/findings/compliance_finding.json`, `events/findings/detection_finding.json`, and
//! `objects/{finding_info,resource_details,_resource,compliance,remediation,evidences,actor,
//! user,metadata,product,analytic}.json`; 1.5.0 is also the version `py-ocsf-models` (the
//! independent implementation the tests validate against) models.
//!
//! | segwatch | OCSF |
//! |---|---|
//! | compliance finding (`rule_kind = compliance`) | Compliance Finding, `class_uid` 2003 |
//! | change alert (`rule_kind = change`) | Detection Finding, `class_uid` 2004 |
//! | raised (a finding opened, a change alert fired) | `activity_id` 1 Create, `status_id` 1 New |
//! | updated (an open finding whose resource changed and still fails) | `activity_id` 2 Update, `status_id` 1 New |
//! | resolved | `activity_id` 3 Close, `status_id` 4 Resolved |
//! | resolved as `exempted` | `activity_id` 3 Close, `status_id` 3 Suppressed |
//! | severity info / low / medium / high / critical | `severity_id` 1 / 2 / 3 / 4 / 5 |
//! | `finding_uid()`, title, summary | `finding_info.uid`, `.title`, `.desc` |
//! | rule id | `finding_info.analytic` (`type_id` 1 Rule) and `metadata.event_code` |
//! | resource id, name, kind; workspace | `resources[0].uid`, `.name`, `.type`; `.group.name` |
//! | remediation | `remediation.desc` |
//! | tags (`soc2:CC6.3`) | `metadata.labels`; for 2003 also `compliance.standards` (`soc2`) and `compliance.requirements` (`soc2:CC6.3`), `compliance.control` = rule id |
//! | who made the change (audit trail) | `evidences[0].actor.user` (`uid`, `email_addr`), `evidences[0].uid` = the audit event id |
//! | explanation (the condition's values, changed fields), ids | `unmapped.segwatch` |
//!
//! `time` is when the event happened (raised: `opened_at`; resolved: `resolved_at`), in
//! milliseconds since the epoch like every OCSF timestamp; `finding_info.created_time` is when
//! the finding was raised and `modified_time` the event's time. `metadata.uid` is unique per
//! event (`segwatch-alert-<id>-raised` / `-resolved` / `-updated-<update id>`), so a receiver
//! can drop the duplicates at-least-once delivery allows; `finding_info.uid` is the same for
//! every event of a finding.
//!
//! An update ([`update_event`]) keeps `finding_info.created_time` (when the finding was raised)
//! and sets `time` and `finding_info.modified_time` to when the update was recorded. Its
//! `status_id` stays 1 New: the finding `status_id` enum of `events/findings/finding.json`
//! (1.5.0) reads 1 New "yet to be reviewed", 2 In Progress "under review", and segwatch
//! knows of no review; `compliance.status` stays Fail.

pub mod file;
pub mod http;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use segwatch_core::alerts::{AlertRecord, AlertStatus};
use segwatch_core::rules::Severity;
use segwatch_core::time::Timestamp;

use crate::{Message, SendError};

/// The OCSF schema version the events follow (`metadata.version`).
pub const OCSF_VERSION: &str = "1.5.0";
/// `class_uid` of a Compliance Finding.
pub const COMPLIANCE_FINDING: u32 = 2003;
/// `class_uid` of a Detection Finding.
pub const DETECTION_FINDING: u32 = 2004;
/// `category_uid` of the Findings category.
pub const FINDINGS_CATEGORY: u32 = 2;

/// `activity_id` of a finding's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    /// 1: a finding was created.
    Create,
    /// 2: a finding was updated.
    Update,
    /// 3: a finding was closed.
    Close,
}

impl Activity {
    fn id(self) -> u32 {
        match self {
            Activity::Create => 1,
            Activity::Update => 2,
            Activity::Close => 3,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Activity::Create => "Create",
            Activity::Update => "Update",
            Activity::Close => "Close",
        }
    }
}

/// OCSF `severity_id` and its caption.
pub fn severity(s: Severity) -> (u32, &'static str) {
    match s {
        Severity::Info => (1, "Informational"),
        Severity::Low => (2, "Low"),
        Severity::Medium => (3, "Medium"),
        Severity::High => (4, "High"),
        Severity::Critical => (5, "Critical"),
    }
}

/// Whether `alert` (as of the event being delivered) is a resolution.
pub fn is_resolution(alert: &AlertRecord) -> bool {
    alert.status == AlertStatus::Resolved && alert.resolved_at.is_some()
}

/// The alert as it was when it was raised: a finding resolved since is announced as open.
pub fn as_raised(alert: &AlertRecord) -> AlertRecord {
    let mut raised = alert.clone();
    if raised.status == AlertStatus::Resolved {
        raised.status = AlertStatus::Open;
        raised.resolved_at = None;
        raised.resolved_snapshot_id = None;
        raised.resolution = None;
    }
    raised
}

fn millis(t: Timestamp) -> i64 {
    t.as_datetime().timestamp_millis()
}

/// The event's time: when it was resolved for a resolution, else when it was raised.
pub fn event_time(alert: &AlertRecord) -> Timestamp {
    if is_resolution(alert) {
        alert.resolved_at.unwrap_or(alert.opened_at)
    } else {
        alert.opened_at
    }
}

/// The OCSF event of one alert event: `alert` as of that event (a resolved record is its
/// resolution; use [`as_raised`] for the event that raised it).
pub fn event(alert: &AlertRecord) -> Value {
    let compliance = alert.rule_kind != "change";
    let class_uid = if compliance {
        COMPLIANCE_FINDING
    } else {
        DETECTION_FINDING
    };
    let class_name = if compliance {
        "Compliance Finding"
    } else {
        "Detection Finding"
    };
    let resolved = is_resolution(alert);
    let activity = if resolved {
        Activity::Close
    } else {
        Activity::Create
    };
    let exempted = alert.resolution.as_deref() == Some("exempted");
    let (status_id, status) = match (resolved, exempted) {
        (false, _) => (1, "New"),
        (true, true) => (3, "Suppressed"),
        (true, false) => (4, "Resolved"),
    };
    let (severity_id, severity) = severity(alert.severity);
    let time = event_time(alert);
    let event_name = if resolved { "resolved" } else { "raised" };

    let mut resource = Map::new();
    resource.insert("uid".into(), json!(alert.resource_id));
    resource.insert("name".into(), json!(alert.resource_name));
    resource.insert("type".into(), json!(alert.resource_kind.as_str()));
    resource.insert(
        "group".into(),
        json!({"name": alert.workspace, "type": "Segment workspace"}),
    );

    let mut out = Map::new();
    out.insert("activity_id".into(), json!(activity.id()));
    out.insert("activity_name".into(), json!(activity.name()));
    out.insert("category_name".into(), json!("Findings"));
    out.insert("category_uid".into(), json!(FINDINGS_CATEGORY));
    out.insert("class_name".into(), json!(class_name));
    out.insert("class_uid".into(), json!(class_uid));
    out.insert(
        "finding_info".into(),
        json!({
            "uid": alert.finding_uid(),
            "title": alert.title,
            "desc": alert.summary,
            "created_time": millis(alert.opened_at),
            "modified_time": millis(time),
            "analytic": {"uid": alert.rule_id, "name": alert.rule_id, "type_id": 1, "type": "Rule"},
        }),
    );
    out.insert("message".into(), json!(alert.summary));
    out.insert(
        "metadata".into(),
        metadata(&format!("segwatch-alert-{}-{event_name}", alert.id), alert),
    );
    out.insert(
        "resources".into(),
        Value::Array(vec![Value::Object(resource)]),
    );
    out.insert("severity".into(), json!(severity));
    out.insert("severity_id".into(), json!(severity_id));
    out.insert("status".into(), json!(status));
    out.insert("status_id".into(), json!(status_id));
    out.insert("time".into(), json!(millis(time)));
    out.insert(
        "type_name".into(),
        json!(format!("{class_name}: {}", activity.name())),
    );
    out.insert("type_uid".into(), json!(class_uid * 100 + activity.id()));
    if !alert.remediation.trim().is_empty() {
        out.insert("remediation".into(), json!({"desc": alert.remediation}));
    }
    if compliance {
        out.insert("compliance".into(), compliance_object(alert, resolved));
    } else {
        // A change alert is an alertable signal when raised (detection_finding.json `is_alert`).
        out.insert("is_alert".into(), json!(true));
    }
    if let Some(evidence) = actor_evidence(alert) {
        out.insert("evidences".into(), json!([evidence]));
    }
    out.insert("unmapped".into(), json!({"segwatch": unmapped(alert)}));
    Value::Object(out)
}

fn metadata(uid: &str, alert: &AlertRecord) -> Value {
    json!({
        "uid": uid,
        "event_code": alert.rule_id,
        "labels": alert.tags,
        "product": product(),
        "version": OCSF_VERSION,
    })
}

fn product() -> Value {
    json!({
        "name": "segwatch",
        "vendor_name": "segwatch",
        "version": env!("CARGO_PKG_VERSION"),
    })
}

/// `compliance`: the frameworks and controls the rule's tags name (`soc2:CC6.3`), the rule as
/// the control checked, and the check's result (`status_id` of `objects/compliance.json`:
/// 1 Pass, 3 Fail, 99 Other).
fn compliance_object(alert: &AlertRecord, resolved: bool) -> Value {
    let mut standards: Vec<&str> = Vec::new();
    let mut requirements: Vec<&str> = Vec::new();
    for tag in &alert.tags {
        if let Some((framework, control)) = tag.split_once(':')
            && !framework.is_empty()
            && !control.is_empty()
        {
            if !standards.contains(&framework) {
                standards.push(framework);
            }
            requirements.push(tag);
        }
    }
    let (status_id, status) = match (resolved, alert.resolution.as_deref()) {
        (false, _) => (3, "Fail".to_owned()),
        (true, Some("compliant")) => (1, "Pass".to_owned()),
        // Removed, exempted, rule changed or removed: no longer failing, but not a pass.
        (true, other) => (99, other.unwrap_or("resolved").to_owned()),
    };
    let mut out = Map::new();
    out.insert("control".into(), json!(alert.rule_id));
    out.insert("desc".into(), json!(alert.title));
    if !standards.is_empty() {
        out.insert("standards".into(), json!(standards));
        out.insert("requirements".into(), json!(requirements));
    }
    out.insert("status".into(), json!(status));
    out.insert("status_id".into(), json!(status_id));
    Value::Object(out)
}

/// Who made the change, from the audit trail: an evidence whose `actor.user` is the event's
/// actor (`objects/evidences.json`, `objects/actor.json`, `objects/user.json`).
fn actor_evidence(alert: &AlertRecord) -> Option<Value> {
    let a = &alert.attribution;
    if !a.is_known() && a.actor_email.is_none() {
        return None;
    }
    let mut user = Map::new();
    if let Some(actor) = &a.actor {
        user.insert("uid".into(), json!(actor));
    }
    if let Some(email) = &a.actor_email {
        user.insert("email_addr".into(), json!(email));
        user.insert("name".into(), json!(email));
    }
    let mut evidence = Map::new();
    evidence.insert("actor".into(), json!({"user": user}));
    if let Some(id) = &a.event_id {
        evidence.insert("uid".into(), json!(id));
    }
    if let Some(kind) = &a.event_type {
        evidence.insert("name".into(), json!(kind));
    }
    Some(Value::Object(evidence))
}

/// What OCSF has no place for: segwatch's own ids and the rule's explanation (the values the
/// condition read, and a change alert's changed fields).
fn unmapped(alert: &AlertRecord) -> Value {
    json!({
        "alert_id": alert.id,
        "rule_id": alert.rule_id,
        "rule_kind": alert.rule_kind,
        "snapshot_id": alert.snapshot_id,
        "change_id": alert.change_id,
        "resolved_snapshot_id": alert.resolved_snapshot_id,
        "resolution": alert.resolution,
        "workspace": alert.workspace,
        "explanation": alert.explanation,
    })
}

/// The event `segwatch sinks test` posts: an informational Detection Finding titled
/// "segwatch test event", with a uid of its own, so it is plainly not an alert.
pub fn test_event(now: DateTime<Utc>) -> Value {
    let time = now.timestamp_millis();
    json!({
        "activity_id": 1,
        "activity_name": "Create",
        "category_name": "Findings",
        "category_uid": FINDINGS_CATEGORY,
        "class_name": "Detection Finding",
        "class_uid": DETECTION_FINDING,
        "finding_info": {
            "uid": format!("segwatch-test-{time}"),
            "title": "segwatch test event",
            "desc": "Sent by `segwatch sinks test` to check that this sink is reachable; not an alert.",
            "created_time": time,
        },
        "message": "segwatch test event",
        "metadata": {
            "uid": format!("segwatch-test-{time}"),
            "labels": ["segwatch:test"],
            "product": product(),
            "version": OCSF_VERSION,
        },
        "severity": "Informational",
        "severity_id": 1,
        "status": "New",
        "status_id": 1,
        "time": time,
        "type_name": "Detection Finding: Create",
        "type_uid": DETECTION_FINDING * 100 + 1,
    })
}

/// The alert events of `alerts` that happened in `[since, until)`, oldest first (ties by alert
/// id, a raise before its resolution): each alert raised in the window as raised
/// ([`as_raised`]), and each resolved in it as resolved. Map each with [`event`].
pub fn events_between(
    alerts: &[AlertRecord],
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Vec<AlertRecord> {
    let within = |t: Timestamp| {
        let t = t.as_datetime();
        t >= since && t < until
    };
    let mut out: Vec<(Timestamp, i64, u8, AlertRecord)> = Vec::new();
    for a in alerts {
        if within(a.opened_at) {
            out.push((a.opened_at, a.id.get(), 0, as_raised(a)));
        }
        if let Some(resolved) = a.resolved_at
            && a.status == AlertStatus::Resolved
            && within(resolved)
        {
            out.push((resolved, a.id.get(), 1, a.clone()));
        }
    }
    out.sort_by_key(|a| (a.0, a.1, a.2));
    out.into_iter().map(|(_, _, _, a)| a).collect()
}

/// The OCSF event of an update of an open finding: `alert` is the finding with the update's
/// summary, explanation and attribution; `update` says which update and when.
pub fn update_event(alert: &AlertRecord, update: crate::Update) -> Value {
    let open = as_raised(alert);
    let mut out = event(&open);
    let class_uid = out["class_uid"].as_u64().unwrap_or_default();
    let class_name = out["class_name"].as_str().unwrap_or_default().to_owned();
    out["activity_id"] = json!(Activity::Update.id());
    out["activity_name"] = json!(Activity::Update.name());
    out["type_uid"] = json!(class_uid * 100 + u64::from(Activity::Update.id()));
    out["type_name"] = json!(format!("{class_name}: {}", Activity::Update.name()));
    out["time"] = json!(millis(update.at));
    out["finding_info"]["modified_time"] = json!(millis(update.at));
    out["metadata"]["uid"] = json!(format!("segwatch-alert-{}-updated-{}", alert.id, update.id));
    out["unmapped"]["segwatch"]["update_id"] = json!(update.id);
    out
}

/// The OCSF events of `[since, until)` for a backfill, oldest first: the events of `alerts`
/// ([`events_between`]) and `updates` (each the finding as of its update, see
/// [`crate::outbox::as_of_update`], recorded in the window), as an `ocsf` sink wrote them. At
/// one instant a raising comes before an update, an update before a resolution.
pub fn backfill(
    alerts: &[AlertRecord],
    updates: &[(AlertRecord, crate::Update)],
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Vec<Value> {
    let mut out: Vec<(Timestamp, i64, u8, Value)> = events_between(alerts, since, until)
        .into_iter()
        .map(|a| {
            let order = if is_resolution(&a) { 2 } else { 0 };
            (event_time(&a), a.id.get(), order, event(&a))
        })
        .collect();
    out.extend(
        updates
            .iter()
            .filter(|(_, u)| u.at.as_datetime() >= since && u.at.as_datetime() < until)
            .map(|(a, u)| (u.at, a.id.get(), 1, update_event(a, *u))),
    );
    out.sort_by_key(|e| (e.0, e.1, e.2));
    out.into_iter().map(|(_, _, _, v)| v).collect()
}

/// One event as a JSON line (with its `\n`).
#[cfg(test)]
pub(crate) fn line(alert: &AlertRecord) -> Vec<u8> {
    http::body(http::HttpFormat::Ndjson, &[event(alert)])
}

/// Where an OCSF sink writes: exactly one of a file and a collector.
#[derive(Debug, Clone)]
pub enum OcsfTarget {
    /// JSON lines appended to a rotated file.
    File(file::FileConfig),
    /// Batches POSTed to a collector.
    Http(http::HttpConfig),
}

/// An OCSF sink ready to write.
#[derive(Debug, Clone)]
pub enum OcsfSink {
    /// To a file.
    File(file::FileSink),
    /// To a collector.
    Http(http::HttpSink),
}

impl OcsfSink {
    /// Builds the writer of `target`.
    pub fn new(target: &OcsfTarget) -> Result<OcsfSink, SendError> {
        Ok(match target {
            OcsfTarget::File(config) => OcsfSink::File(file::FileSink::new(config.clone())),
            OcsfTarget::Http(config) => OcsfSink::Http(http::HttpSink::new(config.clone())?),
        })
    }

    /// The bytes one message becomes: JSON lines for a file or an NDJSON collector, HEC
    /// envelopes for Splunk. `None` for a summary (never sent: see [`crate::Sink::summarises`])
    /// and a test.
    pub fn body(&self, message: &Message<'_>) -> Option<Vec<u8>> {
        let events: Vec<Value> = match *message {
            Message::Alert(alert) => vec![event(alert)],
            Message::Update { alert, update } => vec![update_event(alert, update)],
            Message::Digest { alerts, .. } => alerts.iter().map(event).collect(),
            Message::Summary(_) | Message::Test => return None,
        };
        Some(match self {
            // A file holds the same JSON lines as an NDJSON collector's body.
            OcsfSink::File(_) => http::body(http::HttpFormat::Ndjson, &events),
            OcsfSink::Http(h) => http::body(h.format(), &events),
        })
    }

    /// Writes or posts one message.
    pub async fn send(&self, message: &Message<'_>) -> Result<(), SendError> {
        match (self, message) {
            (OcsfSink::File(f), Message::Test) => f.check().await,
            (OcsfSink::Http(h), Message::Test) => {
                h.post(http::body(h.format(), &[test_event(Utc::now())]))
                    .await
            }
            (_, Message::Summary(_)) => Err(SendError::Permanent {
                message: "an OCSF sink takes no summaries (every event is written)".to_owned(),
            }),
            (OcsfSink::File(f), _) => f.append(self.body(message).unwrap_or_default()).await,
            (OcsfSink::Http(h), _) => h.post(self.body(message).unwrap_or_default()).await,
        }
    }
}

#[cfg(test)]
mod tests;
