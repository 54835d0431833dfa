//! Effective access of one snapshot: who can reach what, with which role, and why.
//!
//! Segment grants a *role* on *resources* (`PermissionV1`: `roleId`, `roleName`, `resources`:
//! `PermissionResourceV1` {`id`, `type`, `labels`}, `labels`) to a user directly or to a
//! group, whose members all hold it. A workspace-level permission may be restricted by labels;
//! it then reaches the sources carrying those labels. docs/ACCESS.md gives the semantics with
//! the Segment pages they come from; in short, segwatch reads them as:
//!
//! - a user's access is the union of their direct permissions and those of every group they
//!   are a member of (roles are additive); every grant is kept, with its *via*;
//! - a permission on a `WORKSPACE` resource with labels (on the resource or on the permission)
//!   reaches every source carrying **any** of those labels (the docs are silent on several
//!   labels; *any* is the reading that never under-reports access), one grant per source;
//! - a permission on a `WORKSPACE` resource without labels is one grant on the workspace (all
//!   current and future resources of the role); it is not copied onto every source;
//! - labels on a non-workspace resource are ignored: Segment's API says labels are exclusive to
//!   workspace-level permissions, so the named resource is reached in full;
//! - pending invites of a group (emails, no user yet) get the group's grants, flagged `invite`.
//!
//! The result is kept factored ([`EffectiveAccess`]: one *policy* per subject × permission
//! resource, and an index of sources by label built once), because the expanded matrix is
//! large: at the benchmark's 100k users, 1,000 groups and 10,000 sources, label-restricted
//! policies alone expand to tens of millions of grants. [`EffectiveAccess::grant_count`] counts
//! them without expanding; [`EffectiveAccess::grants`] expands lazily, in a deterministic order;
//! [`diff`] finds the added and removed grants of two snapshots from the changed policies and
//! the changed sources only.

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::{Resource, ResourceKind};

mod attributed;

pub use attributed::{AttributedAccessChange, attribute, label_strings};

/// A label as `(key, value)`.
pub type LabelPair = (String, String);

/// Why a subject holds a grant.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Via {
    /// A permission of the user's own.
    Direct,
    /// A permission of a group the user is a member of (or is invited to).
    Group {
        /// The group's id.
        id: String,
        /// The group's name.
        name: String,
    },
}

/// The subject of a grant: a workspace user, or an email with a pending group invite.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Subject {
    /// The user's id; empty for a pending invite (an invite has no user yet).
    pub id: String,
    /// The user's (or invitee's) email.
    pub email: String,
}

/// A resource a grant reaches.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ResourceRef {
    /// Segment's `PermissionResourceV1.type`: `WORKSPACE`, `SOURCE`, `SPACE`, `WAREHOUSE` or
    /// `FUNCTION` (kept as Segment gives it).
    pub kind: String,
    /// The resource's id.
    pub id: String,
    /// The resource's name in the snapshot; the id when the snapshot does not hold it (spaces
    /// are not collected, or the permission names a resource that no longer exists).
    pub name: String,
}

/// One role held on one resource by one subject, and why.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Grant {
    /// Who holds it.
    pub user: Subject,
    /// What it reaches.
    pub resource: ResourceRef,
    /// The role's id (`roleId`).
    pub role_id: String,
    /// The role's name (`roleName`).
    pub role_name: String,
    /// Directly or through which group.
    pub via: Via,
    /// The labels of a label-restricted workspace-level permission (sorted); empty otherwise.
    /// The resource carries at least one of them.
    pub label_filter: Vec<LabelPair>,
    /// Held by a pending group invite rather than a user.
    pub invite: bool,
}

impl Grant {
    /// The identity of a grant across snapshots: everything but display names.
    fn key(&self) -> GrantKey<'_> {
        GrantKey {
            user_id: &self.user.id,
            email: if self.user.id.is_empty() {
                &self.user.email
            } else {
                ""
            },
            kind: &self.resource.kind,
            id: &self.resource.id,
            role_id: &self.role_id,
            via: match &self.via {
                Via::Direct => "",
                Via::Group { id, .. } => id,
            },
            filter: &self.label_filter,
        }
    }
}

#[derive(Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct GrantKey<'a> {
    user_id: &'a str,
    email: &'a str,
    kind: &'a str,
    id: &'a str,
    role_id: &'a str,
    via: &'a str,
    filter: &'a [LabelPair],
}

/// How much a role allows, read from the role descriptions of Segment's "Roles" page: a
/// Workspace Owner has "full read and edit access to everything", an *Admin* role edit access,
/// a *Read-only* role read access. Other roles (e.g. `Minimal Workspace Access`, `Engage User`)
/// are [`AccessLevel::Other`]. Used only to pick the highest of several grants on one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessLevel {
    /// Not comparable by name.
    Other,
    /// A `... Read-only` role.
    Read,
    /// A `... Admin` role.
    Edit,
    /// `Workspace Owner`.
    Owner,
}

/// The [`AccessLevel`] of a role, by its name.
pub fn access_level(role_name: &str) -> AccessLevel {
    let lower = role_name.to_ascii_lowercase();
    if lower == "workspace owner" {
        AccessLevel::Owner
    } else if lower.ends_with("admin") {
        AccessLevel::Edit
    } else if lower.ends_with("read-only") || lower.ends_with("read only") {
        AccessLevel::Read
    } else {
        AccessLevel::Other
    }
}

/// Whether a role granted on the whole workspace (without labels) reaches its sources.
///
/// Segment's *Roles* page scopes some workspace-level roles to other resources: `Minimal
/// Workspace Access` (signing in, no resource), `Workspace Billing Admin` (billing), and the
/// `Tracking Plan …`, `Warehouse Destination …`, `Engage …`, `Identity …` and `Unify …` roles
/// (tracking plans, warehouses, spaces). Those do not reach sources; every other role does —
/// `Workspace Owner`, `Source Admin`, `Source Read-only`, and any custom or unknown role (a
/// security monitor must not under-report access).
pub fn role_reaches_sources(role_name: &str) -> bool {
    let lower = role_name.to_ascii_lowercase();
    const ELSEWHERE: &[&str] = &["minimal workspace access", "workspace billing admin"];
    const PREFIXES: &[&str] = &[
        "tracking plan ",
        "warehouse destination ",
        "engage ",
        "identity ",
        "unify ",
    ];
    !(ELSEWHERE.contains(&lower.as_str()) || PREFIXES.iter().any(|p| lower.starts_with(p)))
}

/// Of several grants, the highest per subject × resource: the one of the highest
/// [`AccessLevel`] (ties: the first in order). Segment's docs: a user with both user and group
/// permissions has "the highest access given to either". Every grant stays reported by
/// [`EffectiveAccess::grants`]; this is a view of them.
pub fn highest_per_resource<I: IntoIterator<Item = Grant>>(grants: I) -> Vec<Grant> {
    let mut best: HashMap<(Subject, bool, String, String), Grant> = HashMap::new();
    for g in grants {
        let key = (
            g.user.clone(),
            g.invite,
            g.resource.kind.clone(),
            g.resource.id.clone(),
        );
        match best.get(&key) {
            Some(b) if access_level(&b.role_name) >= access_level(&g.role_name) => {}
            _ => {
                best.insert(key, g);
            }
        }
    }
    let mut out: Vec<Grant> = best.into_values().collect();
    out.sort();
    out
}

/// Whether a grant appeared or disappeared between two snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// In the later snapshot only.
    Added,
    /// In the earlier snapshot only.
    Removed,
}

/// One grant gained or lost.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AccessChange {
    /// Gained or lost.
    pub change: ChangeKind,
    /// The grant (as in the later snapshot when added, the earlier one when removed).
    pub grant: Grant,
    /// The resource whose change caused it.
    pub cause: Cause,
}

/// The resource whose change gained or lost a grant: the user (a permission of their own), the
/// group (its permissions, members or invites), or the source (its labels, or the source itself
/// added or removed, under a label-restricted permission).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Cause {
    /// `User`, `Group` or `Source`.
    pub kind: ResourceKind,
    /// Its id.
    pub id: String,
}

impl Cause {
    /// The cause of a policy held in one snapshot only: its user or its group.
    fn of_policy(p: &Policy) -> Cause {
        match &p.via {
            Via::Direct => Cause {
                kind: ResourceKind::User,
                id: p.subject.id.clone(),
            },
            Via::Group { id, .. } => Cause {
                kind: ResourceKind::Group,
                id: id.clone(),
            },
        }
    }

    fn source(id: &str) -> Cause {
        Cause {
            kind: ResourceKind::Source,
            id: id.to_string(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The bodies, as Segment gives them.

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PermissionBody {
    #[serde(default)]
    role_id: String,
    #[serde(default)]
    role_name: String,
    #[serde(default)]
    resources: Vec<PermissionResourceBody>,
    #[serde(default)]
    labels: Option<Vec<LabelBody>>,
}

#[derive(Debug, Deserialize)]
struct PermissionResourceBody {
    #[serde(default)]
    id: String,
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    labels: Option<Vec<LabelBody>>,
}

#[derive(Debug, Deserialize)]
struct LabelBody {
    key: String,
    value: String,
}

fn permissions(body: &Value) -> Vec<PermissionBody> {
    body.get("permissions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| PermissionBody::deserialize(p).ok())
        .collect()
}

fn labels_of(body: &Value) -> Vec<LabelPair> {
    let mut out: Vec<LabelPair> = body
        .get("labels")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|l| LabelBody::deserialize(l).ok())
        .map(|l| (l.key, l.value))
        .collect();
    out.sort();
    out.dedup();
    out
}

// ---------------------------------------------------------------------------------------------
// The factored form.

/// What one policy reaches.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Scope {
    /// The named resource (`kind`, `id`).
    Resource(String, String),
    /// Every source carrying any of these labels (sorted, not empty), through a workspace-level
    /// permission on the workspace `id`.
    Labels(String, Vec<LabelPair>),
}

/// One subject × one permission resource: a grant, or a label-restricted family of grants.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Policy {
    subject: Subject,
    invite: bool,
    role_id: String,
    role_name: String,
    via: Via,
    scope: Scope,
}

impl Policy {
    /// Identity across snapshots (names excluded).
    fn key(&self) -> (&str, &str, bool, &str, &str, &Scope) {
        let via = match &self.via {
            Via::Direct => "",
            Via::Group { id, .. } => id,
        };
        let email = if self.subject.id.is_empty() {
            self.subject.email.as_str()
        } else {
            ""
        };
        (
            &self.subject.id,
            email,
            self.invite,
            &self.role_id,
            via,
            &self.scope,
        )
    }
}

#[derive(Debug, Clone)]
struct LabelledSource {
    id: String,
    name: String,
    labels: Vec<LabelPair>,
}

/// The effective access of one snapshot, factored: policies plus sources indexed by label.
#[derive(Debug, Clone, Default)]
pub struct EffectiveAccess {
    policies: Vec<Policy>,
    /// Sources sorted by id.
    sources: Vec<LabelledSource>,
    /// Label → positions in `sources` (ascending).
    by_label: HashMap<LabelPair, Vec<u32>>,
    /// `(kind, id)` → name, for the resources a permission can name.
    names: HashMap<(String, String), String>,
}

impl EffectiveAccess {
    /// Computes the effective access of a snapshot from its resources (users, groups, sources,
    /// and the workspace, warehouses and functions for names). Bodies that do not parse are
    /// skipped; a group member is matched to a user by `id`, else by `email`.
    pub fn compute(resources: &[Resource]) -> EffectiveAccess {
        let mut names: HashMap<(String, String), String> = HashMap::new();
        let mut sources = Vec::new();
        let mut users: Vec<(Subject, Value)> = Vec::new();
        let mut groups: Vec<(String, String, Value)> = Vec::new();
        for r in resources {
            let type_name = match r.kind {
                ResourceKind::Workspace => "WORKSPACE",
                ResourceKind::Source => "SOURCE",
                ResourceKind::Warehouse => "WAREHOUSE",
                ResourceKind::Function => "FUNCTION",
                ResourceKind::User | ResourceKind::Group => "",
                _ => continue,
            };
            let Ok(body) = serde_json::from_str::<Value>(&r.body) else {
                continue;
            };
            match r.kind {
                ResourceKind::User => {
                    let email = body
                        .get("email")
                        .and_then(Value::as_str)
                        .unwrap_or(&r.name)
                        .to_string();
                    users.push((
                        Subject {
                            id: r.id.clone(),
                            email,
                        },
                        body,
                    ));
                }
                ResourceKind::Group => groups.push((r.id.clone(), r.name.clone(), body)),
                ResourceKind::Source => {
                    names.insert((type_name.into(), r.id.clone()), r.name.clone());
                    sources.push(LabelledSource {
                        id: r.id.clone(),
                        name: r.name.clone(),
                        labels: labels_of(&body),
                    });
                }
                _ => {
                    names.insert((type_name.into(), r.id.clone()), r.name.clone());
                }
            }
        }
        sources.sort_by(|a, b| a.id.cmp(&b.id));
        let mut by_label: HashMap<LabelPair, Vec<u32>> = HashMap::new();
        for (i, s) in sources.iter().enumerate() {
            for l in &s.labels {
                by_label.entry(l.clone()).or_default().push(i as u32);
            }
        }

        let mut policies = Vec::new();
        let by_id: HashMap<&str, &Subject> =
            users.iter().map(|(s, _)| (s.id.as_str(), s)).collect();
        let by_email: HashMap<&str, &Subject> =
            users.iter().map(|(s, _)| (s.email.as_str(), s)).collect();
        for (subject, body) in &users {
            for p in permissions(body) {
                push_policies(&mut policies, subject, false, &Via::Direct, &p);
            }
        }
        for (id, name, body) in &groups {
            let via = Via::Group {
                id: id.clone(),
                name: name.clone(),
            };
            let perms = permissions(body);
            let members: Vec<Subject> = body
                .get("members")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|m| member(m, &by_id, &by_email))
                .collect();
            let invites: Vec<Subject> = body
                .get("invites")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(|email| Subject {
                    id: String::new(),
                    email: email.to_string(),
                })
                .collect();
            for p in &perms {
                for m in &members {
                    push_policies(&mut policies, m, false, &via, p);
                }
                for m in &invites {
                    push_policies(&mut policies, m, true, &via, p);
                }
            }
        }
        policies.sort_by(policy_order);
        policies.dedup_by(|a, b| a.key() == b.key());
        EffectiveAccess {
            policies,
            sources,
            by_label,
            names,
        }
    }

    /// The number of grants, without expanding them.
    pub fn grant_count(&self) -> usize {
        self.policies
            .iter()
            .map(|p| match &p.scope {
                Scope::Resource(..) => 1,
                Scope::Labels(_, filter) => self.reached(filter).len(),
            })
            .sum()
    }

    /// The number of policies (subject × permission resource) the grants expand from.
    pub fn policy_count(&self) -> usize {
        self.policies.len()
    }

    /// Every grant, expanded lazily. Order: by subject (email, then id; users before invites),
    /// role, via and scope; the grants of one label-restricted permission by source id.
    pub fn grants(&self) -> impl Iterator<Item = Grant> + '_ {
        self.policies.iter().flat_map(move |p| self.expand(p))
    }

    /// The grants held by one subject: a user by id, or a user or pending invite by email
    /// (ASCII case-insensitive). Only that subject's policies are expanded.
    pub fn held_by<'a>(&'a self, id_or_email: &'a str) -> impl Iterator<Item = Grant> + 'a {
        self.policies
            .iter()
            .filter(move |p| {
                (!p.subject.id.is_empty() && p.subject.id == id_or_email)
                    || p.subject.email.eq_ignore_ascii_case(id_or_email)
            })
            .flat_map(move |p| self.expand(p))
    }

    /// The grants through which resource `kind` (`PermissionResourceV1.type`: `SOURCE`,
    /// `WORKSPACE`, …) `id` is reached, in the order of [`EffectiveAccess::grants`]:
    ///
    /// - every grant on that resource itself (direct, group, and for a source the
    ///   label-restricted ones whose labels it carries, with their `label_filter`);
    /// - for a source, also the **unrestricted workspace-level** grants of roles that reach
    ///   sources ([`role_reaches_sources`]). Those stay one grant on the workspace (their
    ///   `resource` is the workspace, as in [`EffectiveAccess::grants`]): the row says *why*
    ///   the source is reached.
    pub fn reaching<'a>(&'a self, kind: &'a str, id: &'a str) -> impl Iterator<Item = Grant> + 'a {
        let source = if kind == "SOURCE" {
            self.sources
                .binary_search_by(|s| s.id.as_str().cmp(id))
                .ok()
        } else {
            None
        };
        self.policies.iter().filter_map(move |p| match &p.scope {
            Scope::Resource(k, i) if k == kind && i == id => self.expand(p).next(),
            Scope::Resource(k, _)
                if kind == "SOURCE" && k == "WORKSPACE" && role_reaches_sources(&p.role_name) =>
            {
                self.expand(p).next()
            }
            Scope::Labels(_, filter) => source
                .filter(|&i| carries_any(&self.sources[i].labels, filter))
                .map(|i| self.source_grant(p, i, filter)),
            Scope::Resource(..) => None,
        })
    }

    /// The grants of one policy.
    fn expand<'a>(&'a self, p: &'a Policy) -> Box<dyn Iterator<Item = Grant> + 'a> {
        match &p.scope {
            Scope::Resource(kind, id) => {
                let name = self
                    .names
                    .get(&(kind.clone(), id.clone()))
                    .cloned()
                    .unwrap_or_else(|| id.clone());
                Box::new(std::iter::once(grant(
                    p,
                    ResourceRef {
                        kind: kind.clone(),
                        id: id.clone(),
                        name,
                    },
                    Vec::new(),
                )))
            }
            Scope::Labels(_, filter) => Box::new(
                self.reached(filter)
                    .into_iter()
                    .map(move |i| self.source_grant(p, i as usize, filter)),
            ),
        }
    }

    fn source_grant(&self, p: &Policy, i: usize, filter: &[LabelPair]) -> Grant {
        let s = &self.sources[i];
        grant(
            p,
            ResourceRef {
                kind: "SOURCE".into(),
                id: s.id.clone(),
                name: s.name.clone(),
            },
            filter.to_vec(),
        )
    }

    /// Positions of the sources carrying any label of `filter`, ascending.
    fn reached(&self, filter: &[LabelPair]) -> Vec<u32> {
        let mut out: Vec<u32> = Vec::new();
        for l in filter {
            if let Some(ix) = self.by_label.get(l) {
                out.extend_from_slice(ix);
            }
        }
        if filter.len() > 1 {
            out.sort_unstable();
            out.dedup();
        }
        out
    }

    fn source(&self, id: &str) -> Option<&LabelledSource> {
        self.sources
            .binary_search_by(|s| s.id.as_str().cmp(id))
            .ok()
            .map(|i| &self.sources[i])
    }
}

fn member<'a>(
    m: &Value,
    by_id: &HashMap<&str, &'a Subject>,
    by_email: &HashMap<&str, &'a Subject>,
) -> Option<Subject> {
    if let Some(email) = m.as_str() {
        return Some(
            by_email
                .get(email)
                .map(|s| (*s).clone())
                .unwrap_or_else(|| Subject {
                    id: String::new(),
                    email: email.to_string(),
                }),
        );
    }
    let id = m.get("id").and_then(Value::as_str);
    let email = m.get("email").and_then(Value::as_str);
    if let Some(s) = id.and_then(|id| by_id.get(id)) {
        return Some((*s).clone());
    }
    if let Some(s) = email.and_then(|e| by_email.get(e)) {
        return Some((*s).clone());
    }
    Some(Subject {
        id: id?.to_string(),
        email: email.unwrap_or_default().to_string(),
    })
}

fn push_policies(
    out: &mut Vec<Policy>,
    subject: &Subject,
    invite: bool,
    via: &Via,
    p: &PermissionBody,
) {
    let permission_labels: Vec<LabelPair> = p
        .labels
        .iter()
        .flatten()
        .map(|l| (l.key.clone(), l.value.clone()))
        .collect();
    for r in &p.resources {
        let scope = if r.kind == "WORKSPACE" {
            let mut filter: Vec<LabelPair> = r
                .labels
                .iter()
                .flatten()
                .map(|l| (l.key.clone(), l.value.clone()))
                .chain(permission_labels.iter().cloned())
                .collect();
            filter.sort();
            filter.dedup();
            if filter.is_empty() {
                Scope::Resource(r.kind.clone(), r.id.clone())
            } else {
                Scope::Labels(r.id.clone(), filter)
            }
        } else {
            // Labels are exclusive to workspace-level permissions: on any other resource they
            // refine nothing, and the named resource is reached in full.
            Scope::Resource(r.kind.clone(), r.id.clone())
        };
        out.push(Policy {
            subject: subject.clone(),
            invite,
            role_id: p.role_id.clone(),
            role_name: p.role_name.clone(),
            via: via.clone(),
            scope,
        });
    }
}

fn policy_order(a: &Policy, b: &Policy) -> Ordering {
    (
        &a.subject.email,
        &a.subject.id,
        a.invite,
        &a.role_name,
        &a.role_id,
        &a.via,
        &a.scope,
    )
        .cmp(&(
            &b.subject.email,
            &b.subject.id,
            b.invite,
            &b.role_name,
            &b.role_id,
            &b.via,
            &b.scope,
        ))
}

fn grant(p: &Policy, resource: ResourceRef, label_filter: Vec<LabelPair>) -> Grant {
    Grant {
        user: p.subject.clone(),
        resource,
        role_id: p.role_id.clone(),
        role_name: p.role_name.clone(),
        via: p.via.clone(),
        label_filter,
        invite: p.invite,
    }
}

fn carries_any(labels: &[LabelPair], filter: &[LabelPair]) -> bool {
    filter.iter().any(|l| labels.binary_search(l).is_ok())
}

/// The grants gained and lost from `before` to `after`, sorted (removed before added for the
/// same grant order; see [`AccessChange`]'s ordering).
///
/// Works from what changed: policies present in only one snapshot expand to their grants; for
/// label-restricted policies present in both, only the sources added, removed or relabelled are
/// looked at, through the label index. A grant's identity ignores display names (a renamed
/// source or group is not an access change).
pub fn diff(before: &EffectiveAccess, after: &EffectiveAccess) -> Vec<AccessChange> {
    let mut out = Vec::new();
    let before_keys: HashMap<_, &Policy> = before.policies.iter().map(|p| (p.key(), p)).collect();
    let after_keys: HashSet<_> = after.policies.iter().map(|p| p.key()).collect();
    for p in &before.policies {
        if !after_keys.contains(&p.key()) {
            out.extend(before.expand(p).map(|grant| AccessChange {
                change: ChangeKind::Removed,
                grant,
                cause: Cause::of_policy(p),
            }));
        }
    }
    // Label policies held in both snapshots, indexed by label.
    let mut common_by_label: HashMap<&LabelPair, Vec<&Policy>> = HashMap::new();
    for p in &after.policies {
        if before_keys.contains_key(&p.key()) {
            if let Scope::Labels(_, filter) = &p.scope {
                for l in filter {
                    common_by_label.entry(l).or_default().push(p);
                }
            }
        } else {
            out.extend(after.expand(p).map(|grant| AccessChange {
                change: ChangeKind::Added,
                grant,
                cause: Cause::of_policy(p),
            }));
        }
    }
    if !common_by_label.is_empty() {
        // Sources whose label set differs (including added and removed sources).
        let ids: BTreeSet<&str> = before
            .sources
            .iter()
            .chain(after.sources.iter())
            .map(|s| s.id.as_str())
            .collect();
        for id in ids {
            let b = before.source(id);
            let a = after.source(id);
            let no_labels: &[LabelPair] = &[];
            let bl = b.map_or(no_labels, |s| &s.labels[..]);
            let al = a.map_or(no_labels, |s| &s.labels[..]);
            if b.is_some() == a.is_some() && bl == al {
                continue;
            }
            let mut seen: HashSet<*const Policy> = HashSet::new();
            for l in bl.iter().chain(al.iter()) {
                for &p in common_by_label.get(l).into_iter().flatten() {
                    if !seen.insert(p as *const Policy) {
                        continue;
                    }
                    let Scope::Labels(_, filter) = &p.scope else {
                        continue;
                    };
                    let was = b.is_some() && carries_any(bl, filter);
                    let is = a.is_some() && carries_any(al, filter);
                    if was && !is {
                        let old = before_keys[&p.key()];
                        let i = before
                            .sources
                            .binary_search_by(|s| s.id.as_str().cmp(id))
                            .expect("present");
                        out.push(AccessChange {
                            change: ChangeKind::Removed,
                            grant: before.source_grant(old, i, filter),
                            cause: Cause::source(id),
                        });
                    } else if is && !was {
                        let i = after
                            .sources
                            .binary_search_by(|s| s.id.as_str().cmp(id))
                            .expect("present");
                        out.push(AccessChange {
                            change: ChangeKind::Added,
                            grant: after.source_grant(p, i, filter),
                            cause: Cause::source(id),
                        });
                    }
                }
            }
        }
    }
    out.sort_by(|x, y| {
        x.grant
            .key()
            .cmp(&y.grant.key())
            .then(x.change.cmp(&y.change))
    });
    out
}

pub mod domains;

#[cfg(test)]
mod tests;
