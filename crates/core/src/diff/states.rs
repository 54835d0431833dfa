//! Diffing two complete states of a workspace (two stored snapshots, reconstructed): the same
//! matching as a poll's [`plan`](super::plan), with the older state as the current versions,
//! so a diff between any two snapshots agrees with what the polls between them recorded.

use std::collections::HashMap;

use serde::de::IgnoredAny;

use super::{CurrentVersion, ResourceChange, plan};
use crate::model::{Resource, ResourceKind};

/// Every change from `before` to `after` (resources added, removed, modified), sorted by kind
/// and id, without attribution. Fails when a body that must be diffed is not JSON.
pub fn between(
    before: &[Resource],
    after: &[Resource],
) -> Result<Vec<ResourceChange>, serde_json::Error> {
    // A version id is the position in `before`: `load` below reads it back from there.
    let current: HashMap<(ResourceKind, String), CurrentVersion> = before
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let version = CurrentVersion {
                version_id: i as i64,
                hash: r.hash.clone(),
                name: r.name.clone(),
            };
            ((r.kind, r.id.clone()), version)
        })
        .collect();
    // `plan` trusts the bodies of a fresh collection; stored ones are checked here, so a
    // corrupt one is an error rather than a panic.
    for r in after {
        let unchanged = current
            .get(&(r.kind, r.id.clone()))
            .is_some_and(|c| c.hash == r.hash);
        if !unchanged {
            serde_json::from_str::<IgnoredAny>(&r.body)?;
        }
    }
    let delta = plan(after, &current, false, |version| {
        serde_json::from_str(&before[version as usize].body)
    })?;
    Ok(delta.changes.into_iter().map(|p| p.change).collect())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::diff::ChangeOp;

    fn user(id: &str, role: &str) -> Resource {
        Resource::new(
            ResourceKind::User,
            id.to_string(),
            format!("{id}@acme.io"),
            json!({"id": id, "role": role}),
        )
    }

    #[test]
    fn added_removed_and_modified_sorted_by_kind_and_id() {
        let before = [user("a", "owner"), user("b", "reader"), user("c", "reader")];
        let after = [user("d", "reader"), user("b", "owner"), user("c", "reader")];
        let changes = between(&before, &after).unwrap();
        let seen: Vec<_> = changes
            .iter()
            .map(|c| (c.resource_id.as_str(), c.op))
            .collect();
        assert_eq!(
            seen,
            [
                ("a", ChangeOp::Removed),
                ("b", ChangeOp::Modified),
                ("d", ChangeOp::Added)
            ]
        );
        assert_eq!(changes[1].fields[0].path, "role");
    }

    #[test]
    fn a_corrupt_body_is_an_error() {
        let mut broken = user("a", "owner");
        broken.body = "{".to_string();
        broken.hash = "other".to_string();
        assert!(between(&[user("a", "reader")], &[broken]).is_err());
    }
}
