//! `segwatch workspaces`: the workspaces of the configuration joined with those of the
//! database, each with its status. Pure: the caller reads both sides.

use serde::Serialize;

use crate::config::ConfiguredWorkspace;
use segwatch_core::model::ResourceKind;
use segwatch_store::{CompletePoll, FinishedPoll, StoredWorkspace};

/// Where a workspace stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum WorkspaceStatus {
    /// Configured, not paused, and polled at least once.
    #[serde(rename = "active")]
    Active,
    /// Configured with `paused = true`: its data is kept, it is not polled.
    #[serde(rename = "paused")]
    Paused,
    /// Only the database knows it (removed from the configuration); its data is kept until
    /// `segwatch workspaces delete`.
    #[serde(rename = "not configured")]
    NotConfigured,
    /// Configured and not paused, but no poll of it has finished yet.
    #[serde(rename = "never polled")]
    NeverPolled,
}

impl WorkspaceStatus {
    /// As printed.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkspaceStatus::Active => "active",
            WorkspaceStatus::Paused => "paused",
            WorkspaceStatus::NotConfigured => "not configured",
            WorkspaceStatus::NeverPolled => "never polled",
        }
    }
}

/// A kind the last complete poll could not read in full.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KindNotRead {
    /// The kind.
    pub kind: ResourceKind,
    /// `unavailable` or `incomplete`.
    pub status: &'static str,
    /// Why, as recorded.
    pub reason: String,
}

/// One line of `segwatch workspaces`.
#[derive(Debug, Clone, Serialize)]
pub struct WorkspaceOverview {
    /// Its label.
    pub name: String,
    /// `description` from the configuration.
    pub description: Option<String>,
    /// Where it stands.
    pub status: WorkspaceStatus,
    /// Segment's workspace id, once polled.
    pub segment_workspace_id: Option<String>,
    /// The last complete poll.
    pub last_complete: Option<CompletePoll>,
    /// The last finished poll and its outcome.
    pub last_poll: Option<FinishedPoll>,
    /// Kinds unavailable or incomplete at the last complete poll.
    pub kinds_not_read: Vec<KindNotRead>,
    /// Open compliance findings.
    pub open_findings: i64,
}

/// The configured workspaces in configuration order, then those only the database holds, by
/// name.
pub fn overview(
    configured: &[ConfiguredWorkspace],
    mut stored: Vec<StoredWorkspace>,
) -> Vec<WorkspaceOverview> {
    let mut out = Vec::with_capacity(configured.len() + stored.len());
    for c in configured {
        let found = stored
            .iter()
            .position(|s| s.name == c.name)
            .map(|i| stored.remove(i));
        let polled = found.as_ref().is_some_and(|s| s.last_poll.is_some());
        let status = match (c.paused, polled) {
            (true, _) => WorkspaceStatus::Paused,
            (false, true) => WorkspaceStatus::Active,
            (false, false) => WorkspaceStatus::NeverPolled,
        };
        out.push(line(&c.name, c.description.clone(), status, found));
    }
    for s in stored {
        let name = s.name.clone();
        out.push(line(&name, None, WorkspaceStatus::NotConfigured, Some(s)));
    }
    out
}

fn line(
    name: &str,
    description: Option<String>,
    status: WorkspaceStatus,
    stored: Option<StoredWorkspace>,
) -> WorkspaceOverview {
    let mut w = WorkspaceOverview {
        name: name.to_string(),
        description,
        status,
        segment_workspace_id: None,
        last_complete: None,
        last_poll: None,
        kinds_not_read: Vec::new(),
        open_findings: 0,
    };
    if let Some(s) = stored {
        w.segment_workspace_id = s.segment_id;
        w.last_complete = s.last_complete;
        w.last_poll = s.last_poll;
        w.open_findings = s.open_findings;
        w.kinds_not_read = s
            .kind_status
            .into_iter()
            .map(|(kind, st)| KindNotRead {
                kind,
                status: st.label(),
                reason: st.reason().to_string(),
            })
            .collect();
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;
    use segwatch_core::model::{KindStatus, KindStatuses};

    fn configured(name: &str, paused: bool) -> ConfiguredWorkspace {
        ConfiguredWorkspace {
            name: name.into(),
            description: Some(format!("{name} workspace")),
            paused,
        }
    }

    fn stored(name: &str, polled: bool) -> StoredWorkspace {
        let mut kind_status = KindStatuses::new();
        kind_status.insert(
            ResourceKind::Group,
            KindStatus::Unavailable {
                http_status: 403,
                reason: "plan lacks it".into(),
                carried: false,
            },
        );
        StoredWorkspace {
            id: 1,
            name: name.into(),
            segment_id: Some(format!("seg-{name}")),
            created_at: "2026-01-01T00:00:00.000Z".parse().unwrap(),
            last_complete: polled.then(|| CompletePoll {
                snapshot_id: segwatch_core::ids::SnapshotId(4),
                finished_at: "2026-01-02T00:00:00.000Z".parse().unwrap(),
            }),
            last_poll: polled.then(|| FinishedPoll {
                snapshot_id: segwatch_core::ids::SnapshotId(5),
                status: "failed".into(),
                finished_at: Some("2026-01-03T00:00:00.000Z".parse().unwrap()),
                error: Some("HTTP 401".into()),
            }),
            kind_status,
            open_findings: 3,
        }
    }

    #[test]
    fn each_status_comes_from_the_configuration_and_the_database() {
        let list = overview(
            &[
                configured("prod", false),
                configured("eu", true),
                configured("new", false),
            ],
            vec![
                stored("eu", true),
                stored("old", true),
                stored("prod", true),
            ],
        );
        let seen: Vec<(&str, WorkspaceStatus)> =
            list.iter().map(|w| (w.name.as_str(), w.status)).collect();
        assert_eq!(
            seen,
            [
                ("prod", WorkspaceStatus::Active),
                ("eu", WorkspaceStatus::Paused),
                ("new", WorkspaceStatus::NeverPolled),
                ("old", WorkspaceStatus::NotConfigured),
            ]
        );
        let prod = &list[0];
        assert_eq!(prod.description.as_deref(), Some("prod workspace"));
        assert_eq!(prod.segment_workspace_id.as_deref(), Some("seg-prod"));
        assert_eq!(prod.open_findings, 3);
        assert_eq!(prod.kinds_not_read[0].status, "unavailable");
        assert_eq!(list[2].last_poll, None);
        assert_eq!(list[3].description, None);
        let json = serde_json::to_value(&list).unwrap();
        assert_eq!(json[3]["status"], "not configured");
        assert_eq!(json[2]["status"], "never polled");
        assert_eq!(json[0]["kinds_not_read"][0]["kind"], "group");
    }
}
