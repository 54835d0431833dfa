//! Alerts with fixed ids and timestamps, shared by the sink tests and their snapshots.

use serde_json::json;

use segwatch_core::alerts::{AlertRecord, AlertStatus};
use segwatch_core::ids::{AlertId, SnapshotId};
use segwatch_core::model::{Attribution, ResourceKind};
use segwatch_core::rules::Severity;

/// The Segment app base of the fixtures' workspace.
pub(crate) const APP_BASE: &str = "https://app.segment.com/acme-analytics";

/// A change alert: a user was made Workspace Owner.
pub(crate) fn change_alert() -> AlertRecord {
    AlertRecord {
        id: AlertId(41),
        rule_id: "owner-granted".to_owned(),
        rule_kind: "change".to_owned(),
        severity: Severity::High,
        title: "Workspace Owner granted".to_owned(),
        resource_kind: ResourceKind::User,
        resource_id: "usr_2Jd8kQ".to_owned(),
        resource_name: "alice@example.com".to_owned(),
        snapshot_id: SnapshotId(12),
        change_id: Some(305),
        status: AlertStatus::Fired,
        opened_at: "2026-03-02T09:15:00.000Z".parse().unwrap(),
        resolved_at: None,
        resolved_snapshot_id: None,
        resolution: None,
        summary: "alice@example.com was granted Workspace Owner".to_owned(),
        explanation: json!({
            "condition": "changed(change, \"permissions\") && has_role(after, \"Workspace Owner\")",
            "values": [
                {"expr": "changed(change, \"permissions\")", "value": true},
                {"expr": "has_role(after, \"Workspace Owner\")", "value": true},
            ],
            "changes": [
                {"path": "permissions[0].roleName", "old": "Read-Only Member", "new": "Workspace Owner"},
                {"path": "permissions[0].resources", "old": null, "new": [{"type": "WORKSPACE", "id": "ws_1"}]},
            ],
        }),
        remediation: "Confirm the grant with the workspace owners; if it was not expected,\nremove the role and review the user's recent activity.".to_owned(),
        tags: vec!["soc2:CC6.3".to_owned(), "iso27001:A.5.18".to_owned()],
        attribution: Attribution {
            actor: Some("usr_9Bq3Zt".to_owned()),
            actor_email: Some("bob@example.com".to_owned()),
            event_type: Some("User Policy Updated".to_owned()),
            event_id: Some("events/145876976".to_owned()),
        },
        workspace: "acme".to_owned(),
    }
}

/// A compliance finding: a production source without labels.
pub(crate) fn finding() -> AlertRecord {
    AlertRecord {
        id: AlertId(42),
        rule_id: "source-labelled".to_owned(),
        rule_kind: "compliance".to_owned(),
        severity: Severity::Medium,
        title: "Source has no environment label".to_owned(),
        resource_kind: ResourceKind::Source,
        resource_id: "src_9f3K2a".to_owned(),
        resource_name: "ios-app".to_owned(),
        snapshot_id: SnapshotId(12),
        change_id: None,
        status: AlertStatus::Open,
        opened_at: "2026-03-02T09:15:00.000Z".parse().unwrap(),
        resolved_at: None,
        resolved_snapshot_id: None,
        resolution: None,
        summary: "Source ios-app has no environment label".to_owned(),
        explanation: json!({
            "condition": "!has(resource.labels.environment)",
            "values": [{"expr": "resource.labels", "value": {}}],
        }),
        remediation: "Add an `environment` label (prod, staging or dev) to the source.".to_owned(),
        tags: vec!["internal:tagging".to_owned()],
        attribution: Attribution::default(),
        workspace: "acme".to_owned(),
    }
}

/// The finding, resolved because the source now complies.
pub(crate) fn resolved_finding() -> AlertRecord {
    AlertRecord {
        status: AlertStatus::Resolved,
        resolved_at: Some("2026-03-02T10:15:00.000Z".parse().unwrap()),
        resolved_snapshot_id: Some(SnapshotId(13)),
        resolution: Some("compliant".to_owned()),
        ..finding()
    }
}

/// The finding as of an update: its source was relabelled and still has no environment
/// label (the update's summary, explanation and who made the change).
pub(crate) fn updated_finding() -> AlertRecord {
    AlertRecord {
        summary: "Source ios-app has no environment label (labels: team)".to_owned(),
        explanation: json!({
            "condition": "!has(resource.labels.environment)",
            "values": [{"expr": "resource.labels", "value": {"team": "mobile"}}],
        }),
        attribution: Attribution {
            actor: Some("usr_9Bq3Zt".to_owned()),
            actor_email: Some("bob@example.com".to_owned()),
            event_type: Some("Source Modified".to_owned()),
            event_id: Some("events/145877001".to_owned()),
        },
        ..finding()
    }
}

/// The update of [`updated_finding`]: `alert_updates` row 3.
pub(crate) fn update() -> crate::Update {
    crate::Update {
        id: 3,
        at: "2026-03-02T09:45:00.000Z".parse().unwrap(),
    }
}

/// The integration key of the fixtures' PagerDuty sink (32 characters, like a real one).
pub(crate) const PAGERDUTY_KEY: &str = "fixturek3y0fa5erv1ce0000000000aa";
