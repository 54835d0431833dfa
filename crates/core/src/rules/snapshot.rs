//! Rules on a whole snapshot: the variables every subject of one snapshot shares (`inventory`,
//! `related`), built once and only when an enabled rule reads them, and every resource of a
//! complete state checked against the compliance rules.
//!
//! A poll builds its `inventory` here for [`crate::alerts::plan`]; `segwatch rules test` and
//! `segwatch report` evaluate a stored snapshot with [`SnapshotContext`] and [`check_state`],
//! so all three see the same variables.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::{Evaluator, RuleSet, Subject, Verdict, inventory};
use crate::activity::TrailActivity;
use crate::model::ResourceKind;
use crate::relations::Relations;

/// Whether an enabled rule of `rules` reads `variable` (e.g. `inventory`, `related`).
pub fn any_reads(rules: &RuleSet, variable: &str) -> bool {
    rules.rules().iter().any(|r| r.enabled && r.reads(variable))
}

/// The `inventory` variable of a snapshot's resources (kind + parsed body) when an enabled
/// rule reads it; otherwise an empty object, without iterating `resources`: building it parses
/// every body, and nothing would look at it.
pub fn inventory_if_read(
    rules: &RuleSet,
    resources: impl IntoIterator<Item = (ResourceKind, Value)>,
) -> Value {
    if any_reads(rules, "inventory") {
        inventory(resources)
    } else {
        json!({})
    }
}

/// One resource of a complete state (a stored snapshot), parsed for rules.
#[derive(Debug, Clone)]
pub struct StateResource<'a> {
    /// Its kind.
    pub kind: ResourceKind,
    /// Segment's id.
    pub id: &'a str,
    /// Display name.
    pub name: &'a str,
    /// The canonical JSON body, as stored (the relationships index it).
    pub body: &'a str,
    /// The same body, parsed.
    pub value: Value,
    /// When segwatch first saw this version, if known.
    pub seen_since: Option<DateTime<Utc>>,
}

impl StateResource<'_> {
    /// The resource as the subject of compliance rules.
    pub fn subject(&self) -> Subject<'_> {
        Subject {
            kind: self.kind,
            id: self.id,
            name: self.name,
            body: &self.value,
            seen_since: self.seen_since,
        }
    }
}

/// The snapshot-wide variables of one evaluation: built once, shared by every subject.
#[derive(Debug, Default)]
pub struct SnapshotContext<'a> {
    /// The `inventory` variable (an empty object when no enabled rule reads it).
    inventory: Value,
    /// The relationships behind `related` (`None` when no enabled rule reads it).
    relations: Option<Relations<'a>>,
    /// Who acted in the audit trail up to the snapshot (`None`: `last_acting` and
    /// `trail_since` are `null`).
    trail: Option<TrailActivity>,
}

impl<'a> SnapshotContext<'a> {
    /// The variables of a complete state, for `rules`.
    pub fn of_state(rules: &RuleSet, state: &'a [StateResource<'a>]) -> Self {
        let inventory = inventory_if_read(rules, state.iter().map(|r| (r.kind, r.value.clone())));
        let relations = any_reads(rules, "related")
            .then(|| Relations::from_parts(state.iter().map(|r| (r.kind, r.id, r.body))));
        SnapshotContext {
            inventory,
            relations,
            trail: None,
        }
    }

    /// Gives the evaluations `last_acting` and `trail_since` from `trail` (what the stored
    /// audit trail showed at the snapshot).
    pub fn with_trail(mut self, trail: Option<TrailActivity>) -> Self {
        self.trail = trail;
        self
    }

    /// An evaluator of `rules` at `now` with these variables, for compliance and change rules.
    pub fn evaluator<'e>(&'e self, rules: &'e RuleSet, now: DateTime<Utc>) -> Evaluator<'e> {
        let mut evaluator = Evaluator::new(rules, now, self.inventory.clone());
        if let Some(relations) = &self.relations {
            evaluator = evaluator.with_relations(relations);
        }
        if let Some(trail) = &self.trail {
            evaluator = evaluator.with_trail(trail);
        }
        evaluator
    }
}

/// Every enabled compliance rule of `evaluator` on every resource of `state`, in order: each
/// resource with its verdicts.
pub fn check_state<'r, 's>(
    evaluator: &'s Evaluator<'r>,
    state: &'s [StateResource<'s>],
) -> impl Iterator<Item = (&'s StateResource<'s>, Vec<Verdict<'r>>)> + 's {
    state.iter().map(|resource| {
        (
            resource,
            evaluator.check_resource(&resource.subject(), None),
        )
    })
}
