//! What the store keeps of each flow beyond its two ends (`flow_personal_fields`, read by the
//! `audit_data_flows` view): the way its data takes (`via`, e.g. a reverse ETL model) and its
//! personal fields, computed at poll time with the configured patterns, stored as rows valid
//! from the snapshot that first saw them until the one that saw them change, so the table grows
//! with changes, not with polls.

use std::collections::{BTreeMap, BTreeSet};

use super::{FlowMap, PersonalPatterns, TargetKind};
use crate::model::ResourceKind;

/// The resource kinds a flow map reads: a change of any of them may change a flow's fields.
pub const FLOW_KINDS: [ResourceKind; 9] = [
    ResourceKind::Source,
    ResourceKind::TrackingPlan,
    ResourceKind::Function,
    ResourceKind::Destination,
    ResourceKind::Warehouse,
    ResourceKind::DestinationFilter,
    ResourceKind::DestinationSubscription,
    ResourceKind::Transformation,
    ResourceKind::ReverseEtlModel,
];

/// A flow: (source id, `destination` or `warehouse`, target id).
pub type FlowKey = (String, String, String);

/// What a row says of one flow.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct FlowFacts {
    /// The way its data takes: `destination`, `destination function NAME`, `warehouse` or
    /// `reverse ETL model NAME`.
    pub via: String,
    /// Its personal fields, sorted and distinct.
    pub fields: Vec<String>,
}

/// One stored row still in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenFlowFields {
    /// Row id.
    pub id: i64,
    /// The flow.
    pub key: FlowKey,
    /// What it says.
    pub facts: FlowFacts,
}

/// What the store holds for a workspace whose flow fields are tracked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrackedFlowFields {
    /// The patterns the open rows were matched with (one per line, as written).
    pub patterns: String,
    /// The rows in force.
    pub open: Vec<OpenFlowFields>,
}

/// What one snapshot writes: rows it closes and rows it opens.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlowFieldsUpdate {
    /// The patterns in force (recorded for the next poll).
    pub patterns: String,
    /// Ids of rows whose flow is gone or whose fields changed.
    pub close: Vec<i64>,
    /// New rows: each flow that is new or whose facts changed.
    pub open: Vec<(FlowKey, FlowFacts)>,
}

/// The patterns as stored: one per line, as written.
pub fn patterns_text(patterns: &PersonalPatterns) -> String {
    patterns.patterns().collect::<Vec<_>>().join("\n")
}

/// Each flow's way and personal fields (sorted, distinct; empty for a flow that carries none).
pub fn facts_by_flow(map: &FlowMap) -> BTreeMap<FlowKey, FlowFacts> {
    let mut out: BTreeMap<FlowKey, (String, BTreeSet<String>)> = BTreeMap::new();
    for f in &map.flows {
        let kind = match f.target_kind {
            TargetKind::Destination => "destination",
            TargetKind::Warehouse => "warehouse",
        };
        let entry = out
            .entry((f.source_id.clone(), kind.to_owned(), f.target_id.clone()))
            .or_insert_with(|| (f.via.clone(), BTreeSet::new()));
        entry.1.extend(f.personal_field_names());
    }
    out.into_iter()
        .map(|(k, (via, fields))| {
            (
                k,
                FlowFacts {
                    via,
                    fields: fields.into_iter().collect(),
                },
            )
        })
        .collect()
}

/// The rows to close and open so that the open rows say `now`. With `tracked` `None` (the
/// first computation), every flow opens a row.
pub fn update(
    tracked: Option<&TrackedFlowFields>,
    now: &BTreeMap<FlowKey, FlowFacts>,
    patterns: String,
) -> FlowFieldsUpdate {
    let mut update = FlowFieldsUpdate {
        patterns,
        ..FlowFieldsUpdate::default()
    };
    let open: BTreeMap<&FlowKey, &OpenFlowFields> = tracked
        .map(|t| t.open.iter().map(|o| (&o.key, o)).collect())
        .unwrap_or_default();
    for (key, facts) in now {
        match open.get(key) {
            Some(o) if &o.facts == facts => {}
            Some(o) => {
                update.close.push(o.id);
                update.open.push((key.clone(), facts.clone()));
            }
            None => update.open.push((key.clone(), facts.clone())),
        }
    }
    for (key, o) in &open {
        if !now.contains_key(*key) {
            update.close.push(o.id);
        }
    }
    update.close.sort_unstable();
    update
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str, t: &str) -> FlowKey {
        (s.to_owned(), "destination".to_owned(), t.to_owned())
    }

    fn facts(fields: &[&str]) -> FlowFacts {
        FlowFacts {
            via: "destination".to_owned(),
            fields: fields.iter().map(|f| f.to_string()).collect(),
        }
    }

    #[test]
    fn rows_change_only_where_a_flows_fields_changed() {
        let first: BTreeMap<FlowKey, FlowFacts> = [
            (key("s1", "d1"), facts(&["email"])),
            (key("s1", "d2"), facts(&[])),
            (key("s2", "d3"), facts(&["phone"])),
        ]
        .into();
        let started = update(None, &first, "email".into());
        assert_eq!(
            started.open.len(),
            3,
            "the first computation opens every flow"
        );
        assert!(started.close.is_empty());

        let tracked = TrackedFlowFields {
            patterns: "email".into(),
            open: started
                .open
                .iter()
                .enumerate()
                .map(|(i, (k, f))| OpenFlowFields {
                    id: i as i64 + 1,
                    key: k.clone(),
                    facts: f.clone(),
                })
                .collect(),
        };
        assert_eq!(
            update(Some(&tracked), &first, "email".into()),
            FlowFieldsUpdate {
                patterns: "email".into(),
                ..FlowFieldsUpdate::default()
            },
            "nothing changed: nothing written"
        );

        let mut next = first.clone();
        next.insert(key("s1", "d2"), facts(&["ip"]));
        next.remove(&key("s2", "d3"));
        next.insert(key("s3", "d4"), facts(&[]));
        let reverse_etl = FlowFacts {
            via: "reverse ETL model Churn scores".to_owned(),
            ..facts(&["email"])
        };
        next.insert(key("s1", "d1"), reverse_etl.clone());
        let u = update(Some(&tracked), &next, "email".into());
        assert_eq!(
            u.close,
            vec![1, 2, 3],
            "d1's way changed, d2's fields, d3 is gone"
        );
        assert_eq!(
            u.open,
            vec![
                (key("s1", "d1"), reverse_etl),
                (key("s1", "d2"), facts(&["ip"])),
                (key("s3", "d4"), facts(&[]))
            ]
        );
    }
}
