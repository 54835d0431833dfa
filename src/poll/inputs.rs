//! The poll's one read of the store ([`Store::poll_inputs`]), asked for what this poller's
//! configuration uses, and the checks made on what it returned.

use std::collections::HashMap;

use segwatch_core::alerts;
use segwatch_core::rules::{RuleSet, any_reads};
use segwatch_store::{PollInputs, PollReads, Store, StoreError};

use super::Poller;

impl Poller {
    /// Reads this poll's inputs; `segment_id` is the Segment workspace `collect` reached, if
    /// it did.
    pub(super) fn read_inputs(
        &self,
        store: &Store,
        workspace_id: i64,
        segment_id: Option<&str>,
    ) -> Result<PollInputs, StoreError> {
        // Only a rule that must look at unchanged resources needs their age.
        let full_evaluation = |states: &HashMap<String, String>| {
            self.rules
                .as_ref()
                .is_some_and(|rules| !alerts::full_rules(rules, states).is_empty())
        };
        store.poll_inputs(
            workspace_id,
            &PollReads {
                audit_trail: self.audit_lookback.is_some(),
                rules: self.rules.is_some(),
                full_evaluation: &full_evaluation,
                trail_activity: self.rules.as_ref().is_some_and(|rules| reads_trail(rules)),
                segment_id: segment_id.filter(|_| !self.siblings.is_empty()),
            },
        )
    }

    /// The configured workspace other than this one that already recorded the Segment
    /// workspace this poll reached (labels only the database knows do not count).
    pub(super) fn sibling_in(&self, inputs: &PollInputs, workspace_id: i64) -> Option<String> {
        inputs
            .same_segment_id
            .iter()
            .find(|(id, name)| *id != workspace_id && self.siblings.contains(name))
            .map(|(_, name)| name.clone())
    }
}

/// Whether an enabled rule reads what the audit trail shows of its actors.
pub(super) fn reads_trail(rules: &RuleSet) -> bool {
    any_reads(rules, "last_acting") || any_reads(rules, "trail_since")
}
