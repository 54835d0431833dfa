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

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::{Resource, ResourceKind};

mod attributed;

pub use attributed::{AttributedAccessChange, PolledAccess, label_strings};

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

#[cfg(test)]
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

#[cfg(test)]
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

// ---------------------------------------------------------------------------------------------
// The bodies, as Segment gives them.
//
// Bodies are read straight into these borrowed structs (only the fields used, strings borrowed
// from the resource's JSON unless escaped). A body that does not fit them exactly (a field of
// an unexpected type, a permission without a role id, …) is read again through
// `serde_json::Value` by the lenient `*_lenient` functions, which skip what does not parse
// element by element, as they always have.

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PermissionBody<'a> {
    #[serde(default, borrow)]
    role_id: Cow<'a, str>,
    #[serde(default, borrow)]
    role_name: Cow<'a, str>,
    #[serde(default, borrow)]
    resources: Vec<PermissionResourceBody<'a>>,
    #[serde(default, borrow)]
    labels: Option<Vec<LabelBody<'a>>>,
}

#[derive(Debug, Deserialize)]
struct PermissionResourceBody<'a> {
    #[serde(default, borrow)]
    id: Cow<'a, str>,
    #[serde(default, rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    labels: Option<Vec<LabelBody<'a>>>,
}

#[derive(Debug, Deserialize)]
struct LabelBody<'a> {
    #[serde(borrow)]
    key: Cow<'a, str>,
    #[serde(borrow)]
    value: Cow<'a, str>,
}

#[derive(Debug, Default, Deserialize)]
struct UserBody<'a> {
    #[serde(default, borrow)]
    email: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    permissions: Option<Vec<PermissionBody<'a>>>,
}

#[derive(Debug, Default, Deserialize)]
struct GroupBody<'a> {
    #[serde(default, borrow)]
    permissions: Option<Vec<PermissionBody<'a>>>,
    #[serde(default, borrow)]
    members: Option<Vec<MemberBody<'a>>>,
    #[serde(default, borrow)]
    invites: Option<Vec<Cow<'a, str>>>,
}

#[derive(Debug, Default, Deserialize)]
struct SourceBody<'a> {
    #[serde(default, borrow)]
    labels: Option<Vec<LabelBody<'a>>>,
}

/// A group member: `{id, name, email}` (other fields ignored; `id` and `email` may be absent or
/// null), or a bare email.
#[derive(Debug)]
enum MemberBody<'a> {
    Email(Cow<'a, str>),
    User {
        id: Option<Cow<'a, str>>,
        email: Option<Cow<'a, str>>,
    },
}

impl<'de: 'a, 'a> Deserialize<'de> for MemberBody<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for V<'a> {
            type Value = MemberBody<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a member object or an email")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(MemberBody::Email(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(MemberBody::Email(Cow::Owned(v.to_string())))
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut map: M,
            ) -> Result<Self::Value, M::Error> {
                let (mut id, mut email) = (None, None);
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    match &*key {
                        "id" => id = map.next_value::<Option<Cow<'de, str>>>()?,
                        "email" => email = map.next_value::<Option<Cow<'de, str>>>()?,
                        _ => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                        }
                    }
                }
                Ok(MemberBody::User { id, email })
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// Reads a body into `T`, exactly (fast) or else leniently through `Value`; `None` when the
/// body is not JSON.
fn read_body<'a, T: Deserialize<'a>>(body: &'a str, lenient: fn(&Value) -> T) -> Option<T> {
    match serde_json::from_str::<T>(body) {
        Ok(t) => Some(t),
        Err(_) => serde_json::from_str::<Value>(body)
            .ok()
            .map(|v| lenient(&v)),
    }
}

fn owned(s: &str) -> Cow<'static, str> {
    Cow::Owned(s.to_string())
}

fn permissions_lenient(body: &Value) -> Option<Vec<PermissionBody<'static>>> {
    Some(
        body.get("permissions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| {
                let p = p.as_object()?;
                let text = |k: &str| -> Option<Cow<'static, str>> {
                    match p.get(k) {
                        None => Some(Cow::Borrowed("")),
                        Some(Value::String(s)) => Some(owned(s)),
                        Some(_) => None,
                    }
                };
                let labels = |v: Option<&Value>| -> Option<Option<Vec<LabelBody<'static>>>> {
                    match v {
                        None | Some(Value::Null) => Some(None),
                        Some(Value::Array(a)) => a
                            .iter()
                            .map(label_lenient)
                            .collect::<Option<Vec<_>>>()
                            .map(Some),
                        Some(_) => None,
                    }
                };
                let resources = match p.get("resources") {
                    None => Vec::new(),
                    Some(Value::Array(a)) => a
                        .iter()
                        .map(|r| {
                            let r = r.as_object()?;
                            let text = |k: &str| -> Option<Cow<'static, str>> {
                                match r.get(k) {
                                    None => Some(Cow::Borrowed("")),
                                    Some(Value::String(s)) => Some(owned(s)),
                                    Some(_) => None,
                                }
                            };
                            Some(PermissionResourceBody {
                                id: text("id")?,
                                kind: text("type")?,
                                labels: labels(r.get("labels"))?,
                            })
                        })
                        .collect::<Option<Vec<_>>>()?,
                    Some(_) => return None,
                };
                Some(PermissionBody {
                    role_id: text("roleId")?,
                    role_name: text("roleName")?,
                    resources,
                    labels: labels(p.get("labels"))?,
                })
            })
            .collect(),
    )
}

fn label_lenient(l: &Value) -> Option<LabelBody<'static>> {
    Some(LabelBody {
        key: owned(l.get("key")?.as_str()?),
        value: owned(l.get("value")?.as_str()?),
    })
}

fn user_lenient(body: &Value) -> UserBody<'static> {
    UserBody {
        email: body.get("email").and_then(Value::as_str).map(owned),
        permissions: permissions_lenient(body),
    }
}

fn group_lenient(body: &Value) -> GroupBody<'static> {
    GroupBody {
        permissions: permissions_lenient(body),
        members: Some(
            body.get("members")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|m| {
                    if let Some(email) = m.as_str() {
                        return MemberBody::Email(owned(email));
                    }
                    // Neither `id` nor `email`: skipped when members are resolved.
                    let id = m.get("id").and_then(Value::as_str).map(owned);
                    let email = m.get("email").and_then(Value::as_str).map(owned);
                    MemberBody::User { id, email }
                })
                .collect(),
        ),
        invites: Some(
            body.get("invites")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(owned)
                .collect(),
        ),
    }
}

fn source_lenient(body: &Value) -> SourceBody<'static> {
    SourceBody {
        labels: Some(
            body.get("labels")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(label_lenient)
                .collect(),
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// The factored form. Subjects, roles, vias, scopes and labels are held once each, in tables
// sorted in the order grants are reported; a policy is five small integers into them, so
// comparing two policies of one snapshot compares integers.

/// What one policy reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Scope {
    /// The named resource (`kind`, `id`), with its name in the snapshot (the id if absent).
    Resource {
        kind: String,
        id: String,
        name: String,
    },
    /// Every source carrying any of these labels (positions in `labels`, ascending, not
    /// empty; `pairs` the same labels), through a workspace-level permission on the
    /// workspace `workspace`.
    Labels {
        workspace: String,
        filter: Vec<u32>,
        pairs: Vec<LabelPair>,
    },
}

impl Scope {
    /// The order of [`EffectiveAccess::grants`]: resources before label filters, then by kind
    /// and id, or by workspace and labels.
    fn order(&self, other: &Scope) -> Ordering {
        match (self, other) {
            (
                Scope::Resource { kind, id, .. },
                Scope::Resource {
                    kind: k2, id: i2, ..
                },
            ) => (kind, id).cmp(&(k2, i2)),
            (Scope::Resource { .. }, Scope::Labels { .. }) => Ordering::Less,
            (Scope::Labels { .. }, Scope::Resource { .. }) => Ordering::Greater,
            (
                Scope::Labels {
                    workspace, pairs, ..
                },
                Scope::Labels {
                    workspace: w2,
                    pairs: p2,
                    ..
                },
            ) => (workspace, pairs).cmp(&(w2, p2)),
        }
    }
}

/// A role: its id and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Role {
    /// Ordered by name first, as grants are.
    name: String,
    id: String,
}

/// One subject × one permission resource: a grant, or a label-restricted family of grants.
/// Each field is a position in its table of [`EffectiveAccess`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Policy {
    subject: u32,
    invite: bool,
    role: u32,
    via: u32,
    scope: u32,
}

#[derive(Debug, Clone)]
struct LabelledSource {
    id: String,
    name: String,
    /// Positions in `labels`, ascending.
    labels: Vec<u32>,
}

/// The effective access of one snapshot, factored: policies plus sources indexed by label.
#[derive(Debug, Clone, Default)]
pub struct EffectiveAccess {
    /// Sorted in the order of [`EffectiveAccess::grants`], one per policy key.
    policies: Vec<Policy>,
    /// Sorted by email, then id.
    subjects: Vec<Subject>,
    /// Sorted by name, then id.
    roles: Vec<Role>,
    /// Sorted (`Direct` first, then groups by id and name).
    vias: Vec<Via>,
    /// Sorted by [`Scope::order`].
    scopes: Vec<Scope>,
    /// Every label of a source or a filter, sorted.
    labels: Vec<LabelPair>,
    /// Sources sorted by id.
    sources: Vec<LabelledSource>,
    /// Label position → positions in `sources` (ascending).
    by_label: Vec<Vec<u32>>,
}

/// The Fx hash (as in rustc): a multiply and a rotate per word, much cheaper than SipHash on
/// the short strings and integers hashed here. Not DoS-resistant, which does not matter for
/// tables built from one workspace's snapshot.
#[derive(Default, Clone, Copy)]
struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(last));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

type FxMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<FxHasher>>;
type FxSet<K> = HashSet<K, std::hash::BuildHasherDefault<FxHasher>>;

/// Strings to dense numbers, in order of first appearance.
struct Interner<K> {
    map: FxMap<K, u32>,
    items: Vec<K>,
}

impl<K: std::hash::Hash + Eq + Clone> Interner<K> {
    fn new() -> Self {
        Interner {
            map: FxMap::default(),
            items: Vec::new(),
        }
    }

    fn get(&mut self, key: K) -> u32 {
        if let Some(&i) = self.map.get(&key) {
            return i;
        }
        let i = self.items.len() as u32;
        self.items.push(key.clone());
        self.map.insert(key, i);
        i
    }

    /// Adds an item known to be new, or whose duplicates [`Interner::sorted`] may merge:
    /// no lookup.
    fn push(&mut self, key: K) -> u32 {
        let i = self.items.len() as u32;
        self.items.push(key);
        i
    }

    /// The distinct items sorted by `cmp` (a total order: `Equal` means equal items, which are
    /// merged), and for each first-appearance number its sorted position.
    fn sorted(self, cmp: impl Fn(&K, &K) -> Ordering) -> (Vec<K>, Vec<u32>) {
        drop(self.map);
        let mut order: Vec<u32> = (0..self.items.len() as u32).collect();
        order.sort_unstable_by(|&a, &b| cmp(&self.items[a as usize], &self.items[b as usize]));
        let mut remap = vec![0u32; self.items.len()];
        let mut keep: Vec<u32> = Vec::with_capacity(order.len());
        for (n, &i) in order.iter().enumerate() {
            if n == 0
                || cmp(&self.items[order[n - 1] as usize], &self.items[i as usize])
                    != Ordering::Equal
            {
                keep.push(i);
            }
            remap[i as usize] = keep.len() as u32 - 1;
        }
        let mut items: Vec<Option<K>> = self.items.into_iter().map(Some).collect();
        let sorted = keep
            .iter()
            .map(|&i| items[i as usize].take().expect("each once"))
            .collect();
        (sorted, remap)
    }
}

type Pair<'a> = (Cow<'a, str>, Cow<'a, str>);

/// A scope while computing: labels as first-appearance numbers of the label interner.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum RawScope<'a> {
    Resource(Cow<'a, str>, Cow<'a, str>),
    Labels(Cow<'a, str>, Vec<u32>),
}

/// Everything interned while reading the bodies.
struct Builder<'a> {
    subjects: Interner<Pair<'a>>,
    roles: Interner<Pair<'a>>,
    vias: Interner<Option<Pair<'a>>>,
    scopes: Interner<RawScope<'a>>,
    labels: Interner<Pair<'a>>,
    policies: Vec<Policy>,
    filter: Vec<Pair<'a>>,
}

impl<'a> Builder<'a> {
    fn push_policies(&mut self, subject: u32, invite: bool, via: u32, p: &PermissionBody<'a>) {
        let role = self.roles.get((p.role_id.clone(), p.role_name.clone()));
        for r in &p.resources {
            let scope = if r.kind == "WORKSPACE" {
                self.filter.clear();
                for l in r.labels.iter().flatten().chain(p.labels.iter().flatten()) {
                    self.filter.push((l.key.clone(), l.value.clone()));
                }
                if self.filter.is_empty() {
                    RawScope::Resource(r.kind.clone(), r.id.clone())
                } else {
                    self.filter.sort();
                    self.filter.dedup();
                    let filter = std::mem::take(&mut self.filter);
                    let ids = filter.iter().map(|l| self.labels.get(l.clone())).collect();
                    self.filter = filter;
                    RawScope::Labels(r.id.clone(), ids)
                }
            } else {
                // Labels are exclusive to workspace-level permissions: on any other resource
                // they refine nothing, and the named resource is reached in full.
                RawScope::Resource(r.kind.clone(), r.id.clone())
            };
            let scope = self.scopes.get(scope);
            self.policies.push(Policy {
                subject,
                invite,
                role,
                via,
                scope,
            });
        }
    }
}

impl EffectiveAccess {
    /// Computes the effective access of a snapshot from its resources (users, groups, sources,
    /// and the workspace, warehouses and functions for names). Bodies that do not parse are
    /// skipped; a group member is matched to a user by `id`, else by `email`.
    pub fn compute(resources: &[Resource]) -> EffectiveAccess {
        Self::compute_refs(&resources.iter().collect::<Vec<_>>())
    }

    /// [`EffectiveAccess::compute`] on borrowed resources, so that a caller assembling a
    /// snapshot from several places (a poll undoing its changes) copies no body.
    pub fn compute_refs(resources: &[&Resource]) -> EffectiveAccess {
        let mut b = Builder {
            subjects: Interner::new(),
            roles: Interner::new(),
            vias: Interner::new(),
            scopes: Interner::new(),
            labels: Interner::new(),
            policies: Vec::new(),
            filter: Vec::new(),
        };
        let mut names: FxMap<(&str, &str), &str> = FxMap::default();
        let mut sources: Vec<(&Resource, Vec<u32>)> = Vec::new();
        let mut groups: Vec<(&Resource, GroupBody)> = Vec::new();
        let users = resources
            .iter()
            .filter(|r| r.kind == ResourceKind::User)
            .count();
        let mut by_id: FxMap<&str, u32> =
            FxMap::with_capacity_and_hasher(users, Default::default());
        let mut by_email: FxMap<Cow<str>, u32> =
            FxMap::with_capacity_and_hasher(users, Default::default());
        b.subjects.items.reserve(users);
        let direct = b.vias.get(None);
        for &r in resources {
            match r.kind {
                ResourceKind::User => {
                    let Some(body) = read_body::<UserBody>(&r.body, user_lenient) else {
                        continue;
                    };
                    let email = body.email.unwrap_or(Cow::Borrowed(r.name.as_str()));
                    // Users are not looked up: equal subjects are merged when sorted.
                    let subject = b
                        .subjects
                        .push((Cow::Borrowed(r.id.as_str()), email.clone()));
                    by_id.insert(&r.id, subject);
                    by_email.insert(email, subject);
                    for p in body.permissions.iter().flatten() {
                        b.push_policies(subject, false, direct, p);
                    }
                }
                ResourceKind::Group => {
                    if let Some(body) = read_body::<GroupBody>(&r.body, group_lenient) {
                        groups.push((r, body));
                    }
                }
                ResourceKind::Source => {
                    let Some(body) = read_body::<SourceBody>(&r.body, source_lenient) else {
                        continue;
                    };
                    names.insert(("SOURCE", &r.id), &r.name);
                    let mut labels: Vec<u32> = body
                        .labels
                        .into_iter()
                        .flatten()
                        .map(|l| b.labels.get((l.key, l.value)))
                        .collect();
                    labels.sort_unstable();
                    labels.dedup();
                    sources.push((r, labels));
                }
                ResourceKind::Workspace | ResourceKind::Warehouse | ResourceKind::Function => {
                    if serde_json::from_str::<serde::de::IgnoredAny>(&r.body).is_err() {
                        continue;
                    }
                    let type_name = match r.kind {
                        ResourceKind::Workspace => "WORKSPACE",
                        ResourceKind::Warehouse => "WAREHOUSE",
                        _ => "FUNCTION",
                    };
                    names.insert((type_name, &r.id), &r.name);
                }
                _ => {}
            }
        }
        let mut members: Vec<u32> = Vec::new();
        let mut invites: Vec<u32> = Vec::new();
        for (r, body) in &groups {
            let via = b.vias.get(Some((
                Cow::Borrowed(r.id.as_str()),
                Cow::Borrowed(r.name.as_str()),
            )));
            members.clear();
            for m in body.members.iter().flatten() {
                let subject = match m {
                    MemberBody::Email(email) => match by_email.get(&**email) {
                        Some(&s) => s,
                        None => b.subjects.get((Cow::Borrowed(""), email.clone())),
                    },
                    MemberBody::User { id, email } => {
                        if let Some(&s) = id.as_deref().and_then(|id| by_id.get(id)) {
                            s
                        } else if let Some(&s) = email.as_deref().and_then(|e| by_email.get(e)) {
                            s
                        } else if let Some(id) = id {
                            b.subjects
                                .get((id.clone(), email.clone().unwrap_or(Cow::Borrowed(""))))
                        } else {
                            continue;
                        }
                    }
                };
                members.push(subject);
            }
            invites.clear();
            for email in body.invites.iter().flatten() {
                invites.push(b.subjects.get((Cow::Borrowed(""), email.clone())));
            }
            for p in body.permissions.iter().flatten() {
                for &m in &members {
                    b.push_policies(m, false, via, p);
                }
                for &m in &invites {
                    b.push_policies(m, true, via, p);
                }
            }
        }
        drop(by_id);
        drop(by_email);

        // The tables, sorted; the policies renumbered, sorted and deduplicated.
        let (labels, label_at) = b.labels.sorted(|x, y| x.cmp(y));
        let labels: Vec<LabelPair> = labels
            .into_iter()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let (subjects, subject_at) = b.subjects.sorted(|x, y| (&x.1, &x.0).cmp(&(&y.1, &y.0)));
        let subjects: Vec<Subject> = subjects
            .into_iter()
            .map(|(id, email)| Subject {
                id: id.into_owned(),
                email: email.into_owned(),
            })
            .collect();
        let (roles, role_at) = b.roles.sorted(|x, y| (&x.1, &x.0).cmp(&(&y.1, &y.0)));
        let roles: Vec<Role> = roles
            .into_iter()
            .map(|(id, name)| Role {
                id: id.into_owned(),
                name: name.into_owned(),
            })
            .collect();
        let (vias, via_at) = b.vias.sorted(|x, y| x.cmp(y));
        let vias: Vec<Via> = vias
            .into_iter()
            .map(|v| match v {
                None => Via::Direct,
                Some((id, name)) => Via::Group {
                    id: id.into_owned(),
                    name: name.into_owned(),
                },
            })
            .collect();
        let scopes: Vec<Scope> = b
            .scopes
            .items
            .iter()
            .map(|s| match s {
                RawScope::Resource(kind, id) => Scope::Resource {
                    kind: kind.to_string(),
                    id: id.to_string(),
                    name: names
                        .get(&(&**kind, &**id))
                        .copied()
                        .unwrap_or(id)
                        .to_string(),
                },
                RawScope::Labels(workspace, filter) => {
                    let filter: Vec<u32> = filter.iter().map(|&l| label_at[l as usize]).collect();
                    Scope::Labels {
                        workspace: workspace.to_string(),
                        pairs: filter.iter().map(|&l| labels[l as usize].clone()).collect(),
                        filter,
                    }
                }
            })
            .collect();
        let mut order: Vec<u32> = (0..scopes.len() as u32).collect();
        order.sort_unstable_by(|&x, &y| scopes[x as usize].order(&scopes[y as usize]));
        let mut scope_at = vec![0u32; scopes.len()];
        for (pos, &i) in order.iter().enumerate() {
            scope_at[i as usize] = pos as u32;
        }
        let mut scopes: Vec<Option<Scope>> = scopes.into_iter().map(Some).collect();
        let scopes: Vec<Scope> = order
            .iter()
            .map(|&i| scopes[i as usize].take().expect("each once"))
            .collect();
        let mut policies = b.policies;
        for p in &mut policies {
            p.subject = subject_at[p.subject as usize];
            p.role = role_at[p.role as usize];
            p.via = via_at[p.via as usize];
            p.scope = scope_at[p.scope as usize];
        }
        policies.sort_unstable();
        let mut computed = EffectiveAccess {
            policies: Vec::new(),
            subjects,
            roles,
            vias,
            scopes,
            labels,
            sources: Vec::new(),
            by_label: Vec::new(),
        };
        policies.dedup_by(|a, b| computed.key_eq(a, b));
        computed.policies = policies;

        let mut sources: Vec<LabelledSource> = sources
            .into_iter()
            .map(|(r, labels)| {
                let mut labels: Vec<u32> = labels.iter().map(|&l| label_at[l as usize]).collect();
                labels.sort_unstable();
                LabelledSource {
                    id: r.id.clone(),
                    name: r.name.clone(),
                    labels,
                }
            })
            .collect();
        sources.sort_by(|a, b| a.id.cmp(&b.id));
        let mut by_label: Vec<Vec<u32>> = vec![Vec::new(); computed.labels.len()];
        for (i, s) in sources.iter().enumerate() {
            for &l in &s.labels {
                by_label[l as usize].push(i as u32);
            }
        }
        computed.sources = sources;
        computed.by_label = by_label;
        computed
    }

    /// Whether two policies have the same identity (names excluded): subject id (email for an
    /// invite or a subject without id), invite, role id, group id, scope.
    fn key_eq(&self, a: &Policy, b: &Policy) -> bool {
        let (sa, sb) = (
            &self.subjects[a.subject as usize],
            &self.subjects[b.subject as usize],
        );
        sa.id == sb.id
            && (!sa.id.is_empty() || sa.email == sb.email)
            && a.invite == b.invite
            && self.roles[a.role as usize].id == self.roles[b.role as usize].id
            && via_id(&self.vias[a.via as usize]) == via_id(&self.vias[b.via as usize])
            && a.scope == b.scope
    }

    /// The number of grants, without expanding them.
    pub fn grant_count(&self) -> usize {
        let per_scope: Vec<usize> = self
            .scopes
            .iter()
            .map(|s| match s {
                Scope::Resource { .. } => 1,
                Scope::Labels { filter, .. } => self.reached(filter).len(),
            })
            .collect();
        self.policies
            .iter()
            .map(|p| per_scope[p.scope as usize])
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
        let holds: Vec<bool> = self
            .subjects
            .iter()
            .map(|s| {
                (!s.id.is_empty() && s.id == id_or_email)
                    || s.email.eq_ignore_ascii_case(id_or_email)
            })
            .collect();
        self.policies
            .iter()
            .filter(move |p| holds[p.subject as usize])
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
        self.policies
            .iter()
            .filter_map(move |p| match &self.scopes[p.scope as usize] {
                Scope::Resource { kind: k, id: i, .. } if k == kind && i == id => {
                    self.expand(p).next()
                }
                Scope::Resource { kind: k, .. }
                    if kind == "SOURCE"
                        && k == "WORKSPACE"
                        && role_reaches_sources(&self.roles[p.role as usize].name) =>
                {
                    self.expand(p).next()
                }
                Scope::Labels { filter, .. } => source
                    .filter(|&i| carries_any(&self.sources[i].labels, filter))
                    .map(|i| self.source_grant(p, i)),
                Scope::Resource { .. } => None,
            })
    }

    /// The grants of one policy.
    fn expand<'a>(&'a self, p: &'a Policy) -> Box<dyn Iterator<Item = Grant> + 'a> {
        match &self.scopes[p.scope as usize] {
            Scope::Resource { .. } => Box::new(std::iter::once(self.resource_grant(p))),
            Scope::Labels { filter, .. } => Box::new(
                self.reached(filter)
                    .into_iter()
                    .map(move |i| self.source_grant(p, i as usize)),
            ),
        }
    }

    /// The grant of a policy on a named resource.
    fn resource_grant(&self, p: &Policy) -> Grant {
        let Scope::Resource { kind, id, name } = &self.scopes[p.scope as usize] else {
            unreachable!("a resource scope");
        };
        self.grant(
            p,
            ResourceRef {
                kind: kind.clone(),
                id: id.clone(),
                name: name.clone(),
            },
            Vec::new(),
        )
    }

    /// The grant of a label-restricted policy on source `i`.
    fn source_grant(&self, p: &Policy, i: usize) -> Grant {
        let Scope::Labels { pairs, .. } = &self.scopes[p.scope as usize] else {
            unreachable!("a label scope");
        };
        let s = &self.sources[i];
        self.grant(
            p,
            ResourceRef {
                kind: "SOURCE".into(),
                id: s.id.clone(),
                name: s.name.clone(),
            },
            pairs.clone(),
        )
    }

    fn grant(&self, p: &Policy, resource: ResourceRef, label_filter: Vec<LabelPair>) -> Grant {
        let role = &self.roles[p.role as usize];
        Grant {
            user: self.subjects[p.subject as usize].clone(),
            resource,
            role_id: role.id.clone(),
            role_name: role.name.clone(),
            via: self.vias[p.via as usize].clone(),
            label_filter,
            invite: p.invite,
        }
    }

    /// Positions of the sources carrying any label of `filter`, ascending.
    fn reached(&self, filter: &[u32]) -> Vec<u32> {
        let mut out: Vec<u32> = Vec::new();
        for &l in filter {
            out.extend_from_slice(&self.by_label[l as usize]);
        }
        if filter.len() > 1 {
            out.sort_unstable();
            out.dedup();
        }
        out
    }

    fn cause(&self, p: &Policy) -> Cause {
        match &self.vias[p.via as usize] {
            Via::Direct => Cause {
                kind: ResourceKind::User,
                id: self.subjects[p.subject as usize].id.clone(),
            },
            Via::Group { id, .. } => Cause {
                kind: ResourceKind::Group,
                id: id.clone(),
            },
        }
    }
}

/// A scope's identity (names excluded).
fn scope_key(s: &Scope) -> (bool, &str, &str, &[LabelPair]) {
    match s {
        Scope::Resource { kind, id, .. } => (false, kind.as_str(), id.as_str(), &[]),
        Scope::Labels {
            workspace, pairs, ..
        } => (true, "", workspace.as_str(), pairs.as_slice()),
    }
}

fn via_id(v: &Via) -> &str {
    match v {
        Via::Direct => "",
        Via::Group { id, .. } => id,
    }
}

fn carries_any(labels: &[u32], filter: &[u32]) -> bool {
    filter.iter().any(|l| labels.binary_search(l).is_ok())
}

/// Numbers the values of one table of `before` and of `after` by identity: equal identities
/// get the same number, whichever snapshot they come from. Returns the numbers of `before`'s
/// entries and of `after`'s.
fn identities<'a, T, K: std::hash::Hash + Eq>(
    before: &'a [T],
    after: &'a [T],
    key: impl Fn(&'a T) -> K,
) -> (Vec<u32>, Vec<u32>) {
    let mut map: FxMap<K, u32> = FxMap::with_capacity_and_hasher(after.len(), Default::default());
    let mut number = |t: &'a T| {
        let n = map.len() as u32;
        *map.entry(key(t)).or_insert(n)
    };
    let a: Vec<u32> = after.iter().map(&mut number).collect();
    let b: Vec<u32> = before.iter().map(&mut number).collect();
    (b, a)
}

/// One change, before it is made into an [`AccessChange`]: a policy of `before` (removed) or
/// `after` (added), on a named resource or on source `source` of that snapshot.
#[derive(Debug, Clone, Copy)]
struct Pending {
    change: ChangeKind,
    policy: u32,
    /// Position in the snapshot's sources, or `u32::MAX` for a policy's own resource.
    source: u32,
    /// Caused by the source (its labels, or it added or removed) rather than the policy.
    by_source: bool,
}

/// The grants gained and lost from `before` to `after`, sorted (removed before added for the
/// same grant order; see [`AccessChange`]'s ordering).
///
/// Works from what changed: policies present in only one snapshot expand to their grants; for
/// label-restricted policies present in both, only the sources added, removed or relabelled are
/// looked at, through the label index. A grant's identity ignores display names (a renamed
/// source or group is not an access change).
pub fn diff(before: &EffectiveAccess, after: &EffectiveAccess) -> Vec<AccessChange> {
    diff_lazily(before, after).iter().collect()
}

/// The changes of [`diff`], found and sorted but not yet made into [`AccessChange`]s (each one
/// a dozen strings: at hundreds of thousands of changes, the `Vec` of [`diff`] is hundreds of
/// megabytes). [`AccessChanges::iter`] makes them one at a time, in [`diff`]'s order.
pub fn diff_lazily<'a>(
    before: &'a EffectiveAccess,
    after: &'a EffectiveAccess,
) -> AccessChanges<'a> {
    // Identities shared by both snapshots: a policy's key as numbers.
    let (sb, sa) = identities(&before.subjects, &after.subjects, |s| {
        (
            s.id.as_str(),
            if s.id.is_empty() {
                s.email.as_str()
            } else {
                ""
            },
        )
    });
    let (rb, ra) = identities(&before.roles, &after.roles, |r| r.id.as_str());
    let (vb, va) = identities(&before.vias, &after.vias, via_id);
    let (cb, ca) = identities(&before.scopes, &after.scopes, scope_key);
    let key = |p: &Policy, s: &[u32], r: &[u32], v: &[u32], c: &[u32]| {
        (
            s[p.subject as usize],
            p.invite,
            r[p.role as usize],
            v[p.via as usize],
            c[p.scope as usize],
        )
    };
    let before_keys: FxMap<_, u32> = before
        .policies
        .iter()
        .enumerate()
        .map(|(i, p)| (key(p, &sb, &rb, &vb, &cb), i as u32))
        .collect();
    let after_keys: FxSet<_> = after
        .policies
        .iter()
        .map(|p| key(p, &sa, &ra, &va, &ca))
        .collect();

    let mut removed: Vec<Pending> = Vec::new();
    let mut added: Vec<Pending> = Vec::new();
    let expand = |out: &mut Vec<Pending>, ea: &EffectiveAccess, i: usize, change| {
        let p = &ea.policies[i];
        match &ea.scopes[p.scope as usize] {
            Scope::Resource { .. } => out.push(Pending {
                change,
                policy: i as u32,
                source: u32::MAX,
                by_source: false,
            }),
            Scope::Labels { filter, .. } => {
                out.extend(ea.reached(filter).into_iter().map(|s| Pending {
                    change,
                    policy: i as u32,
                    source: s,
                    by_source: false,
                }))
            }
        }
    };
    for (i, p) in before.policies.iter().enumerate() {
        if !after_keys.contains(&key(p, &sb, &rb, &vb, &cb)) {
            expand(&mut removed, before, i, ChangeKind::Removed);
        }
    }
    // Label policies held in both snapshots, indexed by label of `after`, with their
    // counterpart in `before`.
    let mut common_by_label: Vec<Vec<u32>> = vec![Vec::new(); after.labels.len()];
    let mut counterpart: Vec<u32> = vec![u32::MAX; after.policies.len()];
    let mut any_common = false;
    for (i, p) in after.policies.iter().enumerate() {
        if let Some(&old) = before_keys.get(&key(p, &sa, &ra, &va, &ca)) {
            if let Scope::Labels { filter, .. } = &after.scopes[p.scope as usize] {
                counterpart[i] = old;
                any_common = true;
                for &l in filter {
                    common_by_label[l as usize].push(i as u32);
                }
            }
        } else {
            expand(&mut added, after, i, ChangeKind::Added);
        }
    }
    // Both kinds of changes, in the order the old implementation made them (sorting below is
    // stable, so ties stay in that order).
    let mut pending = removed;
    pending.append(&mut added);
    // The two sides' changes are told apart by `change` only while generating; a source
    // change's policy is on the side of its change kind.
    if any_common {
        // `before`'s labels as positions in `after`'s (`u32::MAX`: not in `after`).
        let label_map: Vec<u32> = {
            let ix: FxMap<&LabelPair, u32> = after
                .labels
                .iter()
                .enumerate()
                .map(|(i, l)| (l, i as u32))
                .collect();
            before
                .labels
                .iter()
                .map(|l| ix.get(l).copied().unwrap_or(u32::MAX))
                .collect()
        };
        let mut seen: Vec<u32> = vec![u32::MAX; after.policies.len()];
        let (mut i, mut j) = (0, 0);
        let mut bl: Vec<u32> = Vec::new();
        let mut step = 0u32;
        // Sources of both, merged by id.
        while i < before.sources.len() || j < after.sources.len() {
            let order = match (before.sources.get(i), after.sources.get(j)) {
                (Some(b), Some(a)) => b.id.cmp(&a.id),
                (Some(_), None) => Ordering::Less,
                _ => Ordering::Greater,
            };
            let (b, a) = match order {
                Ordering::Less => {
                    i += 1;
                    (Some(i - 1), None)
                }
                Ordering::Greater => {
                    j += 1;
                    (None, Some(j - 1))
                }
                Ordering::Equal => {
                    i += 1;
                    j += 1;
                    (Some(i - 1), Some(j - 1))
                }
            };
            // `before`'s labels of the source, as `after`'s positions (those `after` lacks
            // can match no common policy, but still make the label sets differ).
            let raw_bl: &[u32] = b.map_or(&[], |b| &before.sources[b].labels);
            let al: &[u32] = a.map_or(&[], |a| &after.sources[a].labels);
            bl.clear();
            bl.extend(raw_bl.iter().map(|&l| label_map[l as usize]));
            let lost_label = bl.contains(&u32::MAX);
            if b.is_some() == a.is_some() && !lost_label && bl == al {
                continue;
            }
            bl.retain(|&l| l != u32::MAX);
            step += 1;
            for &l in bl.iter().chain(al.iter()) {
                for &p in &common_by_label[l as usize] {
                    if seen[p as usize] == step {
                        continue;
                    }
                    seen[p as usize] = step;
                    let Scope::Labels { filter, .. } =
                        &after.scopes[after.policies[p as usize].scope as usize]
                    else {
                        continue;
                    };
                    let was = b.is_some() && carries_any(&bl, filter);
                    let is = a.is_some() && carries_any(al, filter);
                    if was && !is {
                        pending.push(Pending {
                            change: ChangeKind::Removed,
                            policy: counterpart[p as usize],
                            source: b.expect("present") as u32,
                            by_source: true,
                        });
                    } else if is && !was {
                        pending.push(Pending {
                            change: ChangeKind::Added,
                            policy: p,
                            source: a.expect("present") as u32,
                            by_source: true,
                        });
                    }
                }
            }
        }
    }
    sort_changes(before, after, &mut pending);
    AccessChanges {
        before,
        after,
        pending,
    }
}

/// The changes from one snapshot to another, as [`diff_lazily`] found them.
#[derive(Debug, Clone)]
pub struct AccessChanges<'a> {
    before: &'a EffectiveAccess,
    after: &'a EffectiveAccess,
    pending: Vec<Pending>,
}

impl<'a> AccessChanges<'a> {
    /// The number of changes.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// The changes, made one at a time, in the order of [`diff`].
    pub fn iter(&self) -> impl Iterator<Item = AccessChange> + '_ {
        made(self.before, self.after, &self.pending)
    }

    /// The compact changes, to keep with the two states they index.
    fn into_pending(self) -> Vec<Pending> {
        self.pending
    }
}

/// `pending` (positions in `before` and `after`) made into changes one at a time.
fn made<'p>(
    before: &'p EffectiveAccess,
    after: &'p EffectiveAccess,
    pending: &'p [Pending],
) -> impl Iterator<Item = AccessChange> + 'p {
    {
        pending.iter().map(move |c| {
            let ea = match c.change {
                ChangeKind::Removed => before,
                ChangeKind::Added => after,
            };
            let p = &ea.policies[c.policy as usize];
            let grant = if c.source == u32::MAX {
                ea.resource_grant(p)
            } else {
                ea.source_grant(p, c.source as usize)
            };
            let cause = if c.by_source {
                Cause {
                    kind: ResourceKind::Source,
                    id: ea.sources[c.source as usize].id.clone(),
                }
            } else {
                ea.cause(p)
            };
            AccessChange {
                change: c.change,
                grant,
                cause,
            }
        })
    }
}

/// Sorts changes by their grant's identity (user id, email of an invite, resource kind and id,
/// role id, group id, label filter), then removed after added; stable. Each part is first
/// ranked among the values the changes hold, so the sort compares numbers.
fn sort_changes(before: &EffectiveAccess, after: &EffectiveAccess, pending: &mut [Pending]) {
    let side = |c: &Pending| match c.change {
        ChangeKind::Removed => before,
        ChangeKind::Added => after,
    };
    /// Ranks the distinct values of one part: `value` gives (side, position in that side's
    /// table, sort key); equal keys get equal ranks.
    fn rank<K: Ord>(
        pending: &[Pending],
        sizes: (usize, usize),
        value: impl Fn(&Pending) -> (usize, usize, K),
    ) -> Vec<u32> {
        let mut slot = [vec![u32::MAX; sizes.0], vec![u32::MAX; sizes.1]];
        let mut distinct: Vec<(K, usize, usize)> = Vec::new();
        for c in pending {
            let (s, i, k) = value(c);
            if slot[s][i] == u32::MAX {
                slot[s][i] = 0;
                distinct.push((k, s, i));
            }
        }
        distinct.sort_by(|x, y| x.0.cmp(&y.0));
        let mut r = 0u32;
        for n in 0..distinct.len() {
            if n > 0 && distinct[n].0 != distinct[n - 1].0 {
                r += 1;
            }
            slot[distinct[n].1][distinct[n].2] = r;
        }
        pending
            .iter()
            .map(|c| {
                let (s, i, _) = value(c);
                slot[s][i]
            })
            .collect()
    }
    let s = |c: &Pending| c.change as usize;
    let policy = |c: &Pending| side(c).policies[c.policy as usize];
    let subject = rank(
        pending,
        (after.subjects.len(), before.subjects.len()),
        |c| {
            let p = policy(c);
            let u = &side(c).subjects[p.subject as usize];
            (
                s(c),
                p.subject as usize,
                (
                    u.id.as_str(),
                    if u.id.is_empty() {
                        u.email.as_str()
                    } else {
                        ""
                    },
                ),
            )
        },
    );
    // The resource: a named one (its scope) or a source; sources after scopes in the table.
    let resource = rank(
        pending,
        (
            after.scopes.len() + after.sources.len(),
            before.scopes.len() + before.sources.len(),
        ),
        |c| {
            let ea = side(c);
            if c.source == u32::MAX {
                let p = policy(c);
                let Scope::Resource { kind, id, .. } = &ea.scopes[p.scope as usize] else {
                    unreachable!("a resource scope");
                };
                (s(c), p.scope as usize, (kind.as_str(), id.as_str()))
            } else {
                (
                    s(c),
                    ea.scopes.len() + c.source as usize,
                    ("SOURCE", ea.sources[c.source as usize].id.as_str()),
                )
            }
        },
    );
    let role = rank(pending, (after.roles.len(), before.roles.len()), |c| {
        let p = policy(c);
        (
            s(c),
            p.role as usize,
            side(c).roles[p.role as usize].id.as_str(),
        )
    });
    let via = rank(pending, (after.vias.len(), before.vias.len()), |c| {
        let p = policy(c);
        (s(c), p.via as usize, via_id(&side(c).vias[p.via as usize]))
    });
    let filter = rank(pending, (after.scopes.len(), before.scopes.len()), |c| {
        let p = policy(c);
        let pairs: &[LabelPair] = match &side(c).scopes[p.scope as usize] {
            Scope::Labels { pairs, .. } => pairs,
            Scope::Resource { .. } => &[],
        };
        (s(c), p.scope as usize, pairs)
    });
    // Packed into one number (index last, so the sort is stable) when the ranks fit, as they
    // do unless hundreds of millions of values change at once.
    let bits = |r: &[u32]| 32 - r.iter().copied().max().unwrap_or(0).leading_zeros();
    let parts = [&subject, &resource, &role, &via, &filter];
    let index_bits = 32 - (pending.len() as u32).leading_zeros();
    let widths = parts.map(|r| bits(r));
    let total: u32 = widths.iter().sum::<u32>() + 1 + index_bits;
    let order: Vec<u32> = if total <= 128 {
        let mut keys: Vec<u128> = (0..pending.len())
            .map(|n| {
                let mut k: u128 = 0;
                for (r, w) in parts.iter().zip(widths) {
                    k = (k << w) | u128::from(r[n]);
                }
                k = (k << 1) | pending[n].change as u128;
                (k << index_bits) | n as u128
            })
            .collect();
        keys.sort_unstable();
        let mask = (1u128 << index_bits) - 1;
        keys.iter().map(|k| (k & mask) as u32).collect()
    } else {
        let mut order: Vec<u32> = (0..pending.len() as u32).collect();
        order.sort_by_key(|&n| {
            let n = n as usize;
            (
                subject[n],
                resource[n],
                role[n],
                via[n],
                filter[n],
                pending[n].change,
            )
        });
        order
    };
    let sorted: Vec<Pending> = order.iter().map(|&n| pending[n as usize]).collect();
    pending.copy_from_slice(&sorted);
}

pub mod domains;

#[cfg(test)]
mod tests;
