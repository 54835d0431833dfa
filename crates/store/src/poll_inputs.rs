//! What one poll reads from the store, in one phase: the base it diffs against and everything
//! the pure stages after it (diff, attribution, drift, alerts) consult, so nothing between this
//! read and the commit asks the database again. Only what the API's answers name (the body of
//! a stored version, whether an audit event read is already stored) is looked up on demand,
//! through the narrow [`PollLookup`].

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use segwatch_core::activity::TrailActivity;
use segwatch_core::alerts::AlertRecord;
use segwatch_core::diff::CurrentVersion;
use segwatch_core::flows::stored::TrackedFlowFields;
use segwatch_core::ids::SnapshotId;
use segwatch_core::model::ResourceKind;
use segwatch_core::trail::{AuditEvent, Mark};

use crate::{Result, Store};

/// What a poll's configuration makes it read, beyond the base it always needs.
pub struct PollReads<'a> {
    /// The poll reads the audit trail: the last mark, and the events stored since the base
    /// started (which attribution matches changes against).
    pub audit_trail: bool,
    /// The poll evaluates rules: each rule's last fingerprint, and when `full_evaluation`
    /// says some rule must look at unchanged resources (given those fingerprints), when each
    /// current version was first seen.
    pub rules: bool,
    /// Whether a rule will be evaluated on every resource of its kind (see
    /// `segwatch_core::alerts::full_rules`); only then is `seen_since` worth reading.
    pub full_evaluation: &'a dyn Fn(&HashMap<String, String>) -> bool,
    /// A rule reads `last_acting` or `trail_since`: who the stored trail shows acting
    /// (read with the audit trail only).
    pub trail_activity: bool,
    /// Segment's id of the workspace the poll reached, when other configured workspaces must
    /// not have recorded it too.
    pub segment_id: Option<&'a str>,
}

/// A poll's inputs from the store: a plain value, read once.
#[derive(Debug, Clone, Default)]
pub struct PollInputs {
    /// The latest complete snapshot, the diff base (`None` for a baseline).
    pub base: Option<SnapshotId>,
    /// The current version of every resource (the base's state).
    pub current: HashMap<(ResourceKind, String), CurrentVersion>,
    /// The kinds the base vouches for ([`Store::known_kinds`]); empty without a base.
    pub known_kinds: Vec<ResourceKind>,
    /// Where the audit trail's next read starts (read with the audit trail only).
    pub audit_mark: Option<Mark>,
    /// Open findings of the workspace, segwatch's own included, newest first.
    pub open_findings: Vec<AlertRecord>,
    /// Each rule's fingerprint when last evaluated (read with rules only).
    pub rule_states: HashMap<String, String>,
    /// When each current version was first seen (read only when a rule evaluates every
    /// resource of its kind).
    pub seen_since: HashMap<(ResourceKind, String), DateTime<Utc>>,
    /// The workspaces (id, label) that recorded `PollReads::segment_id`.
    pub same_segment_id: Vec<(i64, String)>,
    /// Who the stored audit trail shows acting ([`Store::trail_activity`]; read with the audit
    /// trail, when a rule reads it; `None` too before the first read of the trail).
    pub trail_activity: Option<TrailActivity>,
    /// The patterns the flows' personal fields in force were matched with
    /// ([`Store::flow_field_patterns`]; `None` before they were first computed). The rows
    /// themselves are read only by a poll that recomputes them ([`PollLookup::tracked_flow_fields`]).
    pub flow_field_patterns: Option<String>,
}

impl Store {
    /// Reads a poll's inputs for `workspace_id`, as `reads` asks.
    pub fn poll_inputs(&self, workspace_id: i64, reads: &PollReads<'_>) -> Result<PollInputs> {
        let base = self.latest_complete(workspace_id)?;
        let mut inputs = PollInputs {
            base,
            current: self.current_versions(workspace_id)?,
            known_kinds: match base {
                Some(base) => self.known_kinds(base)?,
                None => Vec::new(),
            },
            open_findings: self.open_findings(workspace_id)?,
            flow_field_patterns: self.flow_field_patterns(workspace_id)?,
            ..PollInputs::default()
        };
        if reads.audit_trail {
            inputs.audit_mark = self.audit_mark(workspace_id)?;
            if reads.trail_activity {
                inputs.trail_activity = self.trail_activity(workspace_id, None)?;
            }
        }
        if reads.rules {
            inputs.rule_states = self.rule_states(workspace_id)?;
            if (reads.full_evaluation)(&inputs.rule_states) {
                inputs.seen_since = self.seen_since(workspace_id)?;
            }
        }
        if let Some(segment_id) = reads.segment_id {
            inputs.same_segment_id = self.workspaces_with_segment_id(segment_id)?;
        }
        Ok(inputs)
    }

    /// What a poll's pure stages may still ask of the store after [`Store::poll_inputs`].
    pub fn poll_lookup(&self, workspace_id: i64) -> PollLookup<'_> {
        PollLookup {
            store: self,
            workspace_id,
        }
    }
}

/// The questions only the API's answers can name, asked on demand while a poll's pure stages
/// run: loading every stored body, or every stored event attribution might match, up front
/// would cost a quiet poll the whole workspace or the whole window of the trail.
pub struct PollLookup<'s> {
    store: &'s Store,
    workspace_id: i64,
}

impl PollLookup<'_> {
    /// The parsed body of one stored version (the `before` side of a change).
    pub fn version_value(&self, version_id: i64) -> Result<serde_json::Value> {
        self.store.version_value(version_id)
    }

    /// When snapshot `base` started and the stored audit events attribution can match, until
    /// `end` ([`Store::events_since_snapshot`]): asked only when the poll found changes.
    pub fn events_since_snapshot(
        &self,
        base: SnapshotId,
        end: DateTime<Utc>,
    ) -> Result<(DateTime<Utc>, Vec<AuditEvent>)> {
        self.store
            .events_since_snapshot(self.workspace_id, base, end)
    }

    /// The flows' personal fields in force ([`Store::tracked_flow_fields`]): asked only when
    /// a poll recomputes them.
    pub fn tracked_flow_fields(&self) -> Result<Option<TrackedFlowFields>> {
        self.store.tracked_flow_fields(self.workspace_id)
    }

    /// Whether the workspace already stored the audit event `event_id`.
    pub fn has_audit_event(&self, event_id: &str) -> Result<bool> {
        self.store.has_audit_event(self.workspace_id, event_id)
    }
}

#[cfg(test)]
mod tests {
    use segwatch_core::alerts::AlertPlan;

    use super::*;
    use crate::tests::{commit_with, user};

    #[test]
    fn a_poll_reads_its_base_and_only_what_its_configuration_uses() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("s.db")).unwrap();
        let ws = store.workspace_id("default").unwrap();
        let unasked = |_: &HashMap<String, String>| -> bool { panic!("no rules, no question") };
        let plain = PollReads {
            audit_trail: false,
            rules: false,
            full_evaluation: &unasked,
            trail_activity: false,
            segment_id: None,
        };
        let first = store.poll_inputs(ws, &plain).unwrap();
        assert_eq!(first.base, None);
        assert!(first.current.is_empty() && first.known_kinds.is_empty());

        let (snapshot, _) =
            commit_with(&mut store, ws, &[user("u1", "r1")], &AlertPlan::default()).unwrap();
        let full = |_: &HashMap<String, String>| true;
        let everything = PollReads {
            audit_trail: true,
            rules: true,
            full_evaluation: &full,
            trail_activity: true,
            segment_id: Some("seg-ws"),
        };
        let inputs = store.poll_inputs(ws, &everything).unwrap();
        assert_eq!(inputs.base, Some(snapshot));
        assert_eq!(inputs.current.len(), 1);
        assert_eq!(inputs.known_kinds, ResourceKind::ALL.to_vec());
        assert_eq!(inputs.audit_mark, None, "no poll read the trail yet");
        assert_eq!(inputs.trail_activity, None, "no poll read the trail yet");
        assert_eq!(inputs.seen_since.len(), 1);
        assert_eq!(inputs.same_segment_id, vec![(ws, "default".to_string())]);

        let plain = store.poll_inputs(ws, &plain).unwrap();
        assert_eq!(plain.base, Some(snapshot));
        assert!(plain.seen_since.is_empty());
        assert!(plain.same_segment_id.is_empty());
    }
}
