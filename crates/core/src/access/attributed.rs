//! Access changes as a poll records them: each grant gained or lost, with the change of the
//! resource that caused it and who made that change, and the body access rules see.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde::Serialize;
use serde_json::{Value, json};

use super::{AccessChange, AccessLevel, ChangeKind, EffectiveAccess, LabelPair, Via, access_level};
use crate::diff::{ChangeOp, PlannedChange};
use crate::model::{Attribution, ResourceKind};

/// One access change of a snapshot, ready to store, show and evaluate.
#[derive(Debug, Clone, Serialize)]
pub struct AttributedAccessChange {
    /// The grant gained or lost, and its cause.
    pub change: AccessChange,
    /// The causing resource's name in the snapshot.
    pub cause_name: String,
    /// Position of the causing resource's change among the snapshot's changes, when it has one.
    pub cause_change: Option<usize>,
    /// That change's op (`added`, `removed`, `modified`), when there is one.
    pub cause_op: Option<ChangeOp>,
    /// Who made the causing change, from the audit trail.
    pub attribution: Attribution,
    /// The labels of the resource reached (sources), as the later snapshot holds them (the
    /// earlier one for a source removed).
    pub resource_labels: Vec<LabelPair>,
    /// How many users (not invites) can edit the resource reached after the snapshot: a
    /// grant of level `owner` or `edit` on it, or reaching it through the workspace.
    pub editors_after: usize,
}

impl AttributedAccessChange {
    /// `+` or `-`.
    pub fn sign(&self) -> char {
        match self.change.change {
            ChangeKind::Added => '+',
            ChangeKind::Removed => '-',
        }
    }

    /// The stable identity of the grant, the alert subject's id:
    /// `user|TYPE:resource|role|via|filter`.
    pub fn subject_id(&self) -> String {
        let g = &self.change.grant;
        let who = if g.user.id.is_empty() {
            format!("invite:{}", g.user.email)
        } else {
            g.user.id.clone()
        };
        let via = match &g.via {
            Via::Direct => "direct".to_string(),
            Via::Group { id, .. } => format!("group:{id}"),
        };
        format!(
            "{who}|{}:{}|{}|{via}|{}",
            g.resource.kind,
            g.resource.id,
            g.role_id,
            label_strings(&g.label_filter).join(",")
        )
    }

    /// The subject's name: `email: Role on Resource`.
    pub fn subject_name(&self) -> String {
        let g = &self.change.grant;
        format!("{}: {} on {}", g.user.email, g.role_name, g.resource.name)
    }

    /// One line for people: `+ carol@acme.io: Source Admin on Payments (prod) via group Data
    /// Eng, label environment=prod (source Payments (prod) changed, by alice@acme.io)`.
    pub fn describe(&self) -> String {
        let g = &self.change.grant;
        let mut line = format!("{} {}", self.sign(), self.subject_name());
        if g.invite {
            line.push_str(" (pending invite)");
        }
        if let Via::Group { name, .. } = &g.via {
            line.push_str(&format!(" via group {name}"));
        }
        if !g.label_filter.is_empty() {
            let labels: Vec<String> = g
                .label_filter
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let noun = if labels.len() == 1 { "label" } else { "labels" };
            line.push_str(&format!(", {noun} {}", labels.join(" or ")));
        }
        let what = match self.cause_op {
            Some(ChangeOp::Added) => "added",
            Some(ChangeOp::Removed) => "removed",
            _ => "changed",
        };
        line.push_str(&format!(
            " ({} {} {what}",
            self.change.cause.kind, self.cause_name
        ));
        if let Some(who) = self.attribution.who() {
            line.push_str(&format!(", by {who}"));
        }
        line.push(')');
        line
    }

    /// The body access rules see as `resource` (and as `after` when added, `before` when
    /// removed). docs/RULES.md (*Access rules*) documents it.
    pub fn body(&self) -> Value {
        let g = &self.change.grant;
        let level = match access_level(&g.role_name) {
            AccessLevel::Owner => "owner",
            AccessLevel::Edit => "edit",
            AccessLevel::Read => "read",
            AccessLevel::Other => "other",
        };
        let via = match &g.via {
            Via::Direct => json!({"type": "direct", "id": null, "name": null}),
            Via::Group { id, name } => json!({"type": "group", "id": id, "name": name}),
        };
        json!({
            "op": match self.change.change {
                ChangeKind::Added => "added",
                ChangeKind::Removed => "removed",
            },
            "user": {"id": g.user.id, "email": g.user.email, "invite": g.invite},
            "resource": {
                "type": g.resource.kind,
                "id": g.resource.id,
                "name": g.resource.name,
                "labels": self.resource_labels.iter()
                    .map(|(k, v)| json!({"key": k, "value": v}))
                    .collect::<Vec<_>>(),
                "editors": self.editors_after,
            },
            "role": {"id": g.role_id, "name": g.role_name, "level": level},
            "via": via,
            "label_filter": label_strings(&g.label_filter),
            "cause": {
                "kind": self.change.cause.kind.as_str(),
                "id": self.change.cause.id,
                "name": self.cause_name,
            },
        })
    }
}

/// `key:value` strings of labels.
pub fn label_strings(labels: &[LabelPair]) -> Vec<String> {
    labels.iter().map(|(k, v)| format!("{k}:{v}")).collect()
}

/// The access changes of one poll, kept factored: both snapshots' effective access and the
/// changes as positions in them, made into [`AttributedAccessChange`]s one at a time. A relabel
/// that moves 250,000 grants then costs a few MiB held, not hundreds (each made change is a
/// dozen strings), however often the poll walks them (rules, then the commit).
#[derive(Debug)]
pub struct PolledAccess {
    before: EffectiveAccess,
    after: EffectiveAccess,
    pending: Vec<super::Pending>,
    /// Editors after the poll, per resource reached by a change.
    editors: HashMap<(String, String), usize>,
}

impl PolledAccess {
    /// The changes from `before` to `after`.
    pub fn between(before: EffectiveAccess, after: EffectiveAccess) -> PolledAccess {
        let pending = super::diff_lazily(&before, &after).into_pending();
        let mut polled = PolledAccess {
            before,
            after,
            pending,
            editors: HashMap::new(),
        };
        // The resources reached, read off the compact changes: no change is built for this.
        let targets: BTreeSet<(String, String)> = polled
            .pending
            .iter()
            .map(|c| {
                let ea = match c.change {
                    ChangeKind::Removed => &polled.before,
                    ChangeKind::Added => &polled.after,
                };
                ea.reached_resource(c)
            })
            .collect();
        polled.editors = polled.after.editor_counts(&targets);
        polled
    }

    /// No change.
    pub fn empty() -> PolledAccess {
        PolledAccess {
            before: EffectiveAccess::default(),
            after: EffectiveAccess::default(),
            pending: Vec::new(),
            editors: HashMap::new(),
        }
    }

    /// The number of changes.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// The changes, in the order of [`super::diff`].
    pub fn changes(&self) -> impl Iterator<Item = AccessChange> + '_ {
        super::made(&self.before, &self.after, &self.pending)
    }

    /// The changes with their causes' changes among `changes` (the snapshot's), who made
    /// them, the reached resource's labels and its editors after.
    ///
    /// A group that did not change itself cannot have caused a change of its grants: the
    /// member's user record did (e.g. a member listed by email who became a user), so the
    /// user's change is taken when there is one.
    pub fn attributed<'s>(
        &'s self,
        changes: &'s [PlannedChange<'_>],
    ) -> impl Iterator<Item = AttributedAccessChange> + 's {
        let by_resource: HashMap<(ResourceKind, &str), usize> = changes
            .iter()
            .enumerate()
            .map(|(i, c)| ((c.change.kind, c.change.resource_id.as_str()), i))
            .collect();
        self.changes().map(move |change| {
            let cause = &change.cause;
            let mut index = by_resource.get(&(cause.kind, cause.id.as_str())).copied();
            if index.is_none() && cause.kind == ResourceKind::Group {
                index = by_resource
                    .get(&(ResourceKind::User, change.grant.user.id.as_str()))
                    .copied();
            }
            let cause_name = index
                .map(|i| changes[i].change.name.clone())
                .unwrap_or_else(|| cause.id.clone());
            let attribution = index
                .map(|i| changes[i].change.attribution.clone())
                .unwrap_or_default();
            let cause_op = index.map(|i| changes[i].change.op);
            let r = &change.grant.resource;
            let resource_labels = if r.kind == "SOURCE" {
                self.after
                    .source_labels(&r.id)
                    .or_else(|| self.before.source_labels(&r.id))
                    .unwrap_or_default()
            } else {
                Vec::new()
            };
            let editors_after = self
                .editors
                .get(&(r.kind.clone(), r.id.clone()))
                .copied()
                .unwrap_or(0);
            AttributedAccessChange {
                change,
                cause_name,
                cause_change: index,
                cause_op,
                attribution,
                resource_labels,
                editors_after,
            }
        })
    }
}

impl EffectiveAccess {
    /// For each resource `(kind, id)` of `targets`, how many users (not invites) hold a role of
    /// level `owner` or `edit` reaching it, as [`EffectiveAccess::reaching`] counts reach: grants
    /// on it, and for a source the label-restricted grants whose labels it carries and the
    /// unrestricted workspace-level grants of roles that reach sources. One pass over the
    /// policies, whatever the number of targets.
    pub(super) fn editor_counts(
        &self,
        targets: &BTreeSet<(String, String)>,
    ) -> HashMap<(String, String), usize> {
        let edits: Vec<bool> = self
            .roles
            .iter()
            .map(|r| access_level(&r.name) >= AccessLevel::Edit)
            .collect();
        let wanted: HashSet<(&str, &str)> = targets
            .iter()
            .map(|(k, i)| (k.as_str(), i.as_str()))
            .collect();
        let mut direct: HashMap<(&str, &str), HashSet<u32>> = HashMap::new();
        let mut workspace_wide: HashSet<u32> = HashSet::new();
        let mut by_scope: HashMap<u32, HashSet<u32>> = HashMap::new();
        for p in &self.policies {
            if p.invite || !edits[p.role as usize] {
                continue;
            }
            match &self.scopes[p.scope as usize] {
                super::Scope::Resource { kind, id, .. } => {
                    if wanted.contains(&(kind.as_str(), id.as_str())) {
                        direct
                            .entry((kind.as_str(), id.as_str()))
                            .or_default()
                            .insert(p.subject);
                    }
                    if kind == "WORKSPACE"
                        && super::role_reaches_sources(&self.roles[p.role as usize].name)
                    {
                        workspace_wide.insert(p.subject);
                    }
                }
                super::Scope::Labels { .. } => {
                    by_scope.entry(p.scope).or_default().insert(p.subject);
                }
            }
        }
        targets
            .iter()
            .map(|(kind, id)| {
                let mut users: HashSet<u32> = direct
                    .get(&(kind.as_str(), id.as_str()))
                    .cloned()
                    .unwrap_or_default();
                let source = (kind == "SOURCE")
                    .then(|| {
                        self.sources
                            .binary_search_by(|s| s.id.as_str().cmp(id))
                            .ok()
                    })
                    .flatten();
                if let Some(i) = source {
                    users.extend(&workspace_wide);
                    for (scope, subjects) in &by_scope {
                        if let super::Scope::Labels { filter, .. } = &self.scopes[*scope as usize]
                            && super::carries_any(&self.sources[i].labels, filter)
                        {
                            users.extend(subjects);
                        }
                    }
                }
                ((kind.clone(), id.clone()), users.len())
            })
            .collect()
    }

    /// `(PermissionResourceV1.type, id)` of what a compact change of this state reaches: the
    /// source it names, or its policy's own resource.
    pub(super) fn reached_resource(&self, c: &super::Pending) -> (String, String) {
        if c.source != u32::MAX {
            return (
                "SOURCE".to_owned(),
                self.sources[c.source as usize].id.clone(),
            );
        }
        let p = &self.policies[c.policy as usize];
        match &self.scopes[p.scope as usize] {
            super::Scope::Resource { kind, id, .. } => (kind.clone(), id.clone()),
            // A label scope's changes always name a source.
            super::Scope::Labels { workspace, .. } => ("WORKSPACE".to_owned(), workspace.clone()),
        }
    }

    /// The labels of source `id`, when this snapshot holds it.
    fn source_labels(&self, id: &str) -> Option<Vec<LabelPair>> {
        let i = self
            .sources
            .binary_search_by(|s| s.id.as_str().cmp(id))
            .ok()?;
        Some(
            self.sources[i]
                .labels
                .iter()
                .map(|&l| self.labels[l as usize].clone())
                .collect(),
        )
    }
}
