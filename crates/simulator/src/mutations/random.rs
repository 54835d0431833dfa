//! Drawing a random mutation that is valid for the current state.

use fastrand::Rng;

use crate::generate::{
    self, ENVIRONMENTS, EXTRA_WORKSPACE_ROLES, MINIMAL_ACCESS, SOURCE_ADMIN, TEAMS,
    WORKSPACE_OWNER, pick,
};
use crate::state::WorkspaceState;

use super::Mutation;

/// An environment or team label whose value differs from the source's current one.
pub(super) fn different_label(
    st: &WorkspaceState,
    rng: &mut Rng,
    pos: usize,
) -> (&'static str, &'static str) {
    let (key, values) = if rng.u32(..3) == 0 {
        ("team", TEAMS)
    } else {
        ("environment", ENVIRONMENTS)
    };
    let current = st.sources[pos].label(key);
    loop {
        let value = *pick(rng, values);
        if Some(value) != current {
            return (key, value);
        }
    }
}

pub(super) fn random_non_member(
    st: &WorkspaceState,
    rng: &mut Rng,
    group: usize,
) -> Option<String> {
    if st.users.is_empty() {
        return None;
    }
    let members = &st.groups[group].members;
    // Random probing finds a non-member fast unless the group holds nearly everyone.
    for _ in 0..32 {
        let user = &st.users[rng.usize(..st.users.len())];
        if !members.contains(&user.id) {
            return Some(user.id.clone());
        }
    }
    st.users
        .iter()
        .find(|u| !members.contains(&u.id))
        .map(|u| u.id.clone())
}

/// An email not used by any user or invite, with a plausible name.
fn fresh_person(st: &WorkspaceState, rng: &mut Rng, external_percent: u32) -> (String, String) {
    let (name, local) = generate::random_person(rng);
    let domain = generate::random_domain(rng, external_percent);
    let taken = |candidate: &str| {
        st.users
            .iter()
            .any(|u| u.email.eq_ignore_ascii_case(candidate))
            || st.invites.iter().any(|e| e.eq_ignore_ascii_case(candidate))
    };
    let mut candidate = format!("{local}@{domain}");
    let mut n = 1;
    while taken(&candidate) {
        n += 1;
        candidate = format!("{local}{n}@{domain}");
    }
    (name, candidate)
}

fn owner_count(st: &WorkspaceState) -> usize {
    st.users_with_workspace_role(WORKSPACE_OWNER).count()
}

/// Picks a plausible mutation with valid targets, drawing from `rng`.
///
/// Weighted towards changes that make good alerts: owner grants, source label removals and
/// write key rotations.
pub(crate) fn random(st: &WorkspaceState, rng: &mut Rng) -> Mutation {
    const WEIGHTS: &[(Pick, u32)] = &[
        (Pick::GrantOwner, 18),
        (Pick::RemoveSourceLabel, 15),
        (Pick::RotateWriteKey, 15),
        (Pick::AddUser, 8),
        (Pick::RemoveUser, 5),
        (Pick::GrantOther, 6),
        (Pick::RevokeRole, 6),
        (Pick::AddGroupMember, 6),
        (Pick::RemoveGroupMember, 5),
        (Pick::ToggleSource, 5),
        (Pick::SetSourceLabel, 6),
        (Pick::Invite, 5),
        (Pick::RevokeInvite, 3),
        (Pick::CreateToken, 3),
        (Pick::UpdateSso, 2),
        (Pick::AddDestination, 4),
        (Pick::RemoveDestination, 2),
        (Pick::ChangeDestinationSetting, 4),
        (Pick::ToggleDestination, 2),
        (Pick::RotateWarehouseCredential, 3),
        (Pick::ChangeWarehouseHost, 2),
        (Pick::DeployFunction, 3),
        (Pick::ConnectTrackingPlan, 2),
        (Pick::DisconnectTrackingPlan, 2),
        (Pick::RemoveDestinationFilter, 2),
        (Pick::ToggleDestinationFilter, 2),
        (Pick::MapPersonalField, 3),
        (Pick::AllowUnplanned, 2),
        (Pick::ToggleTransformation, 1),
        (Pick::ChangeReverseEtlQuery, 1),
    ];
    let total: u32 = WEIGHTS.iter().map(|(_, w)| w).sum();
    for _ in 0..32 {
        let mut roll = rng.u32(..total);
        let choice = WEIGHTS
            .iter()
            .find(|(_, w)| {
                if roll < *w {
                    true
                } else {
                    roll -= w;
                    false
                }
            })
            .map(|(p, _)| *p)
            .unwrap_or(Pick::Invite);
        if let Some(m) = candidate(st, rng, choice) {
            return m;
        }
    }
    // Always possible: nothing else had a valid target (e.g. an empty workspace).
    let (_, email) = fresh_person(st, rng, 30);
    Mutation::Invite {
        email,
        group_id: None,
    }
}

#[derive(Debug, Clone, Copy)]
enum Pick {
    GrantOwner,
    RemoveSourceLabel,
    RotateWriteKey,
    AddUser,
    RemoveUser,
    GrantOther,
    RevokeRole,
    AddGroupMember,
    RemoveGroupMember,
    ToggleSource,
    SetSourceLabel,
    Invite,
    RevokeInvite,
    CreateToken,
    UpdateSso,
    AddDestination,
    RemoveDestination,
    ChangeDestinationSetting,
    ToggleDestination,
    RotateWarehouseCredential,
    ChangeWarehouseHost,
    DeployFunction,
    ConnectTrackingPlan,
    DisconnectTrackingPlan,
    RemoveDestinationFilter,
    ToggleDestinationFilter,
    MapPersonalField,
    AllowUnplanned,
    ToggleTransformation,
    ChangeReverseEtlQuery,
}

/// Tries a few random draws for an item satisfying `ok`.
fn find<'a, T>(rng: &mut Rng, items: &'a [T], ok: impl Fn(&T) -> bool) -> Option<&'a T> {
    if items.is_empty() {
        return None;
    }
    (0..16).map(|_| pick(rng, items)).find(|item| ok(item))
}

fn candidate(st: &WorkspaceState, rng: &mut Rng, choice: Pick) -> Option<Mutation> {
    let ws = st.workspace.id.as_str();
    let holds = |u: &crate::state::User, role: &str| {
        u.permissions
            .iter()
            .any(|p| p.role_name == role && p.is_workspace_wide(ws))
    };
    let filters: Vec<&crate::controls::DestinationFilter> =
        st.destinations.iter().flat_map(|d| &d.filters).collect();
    let subscriptions: Vec<&crate::controls::Subscription> = st
        .destinations
        .iter()
        .flat_map(|d| &d.subscriptions)
        .collect();
    Some(match choice {
        Pick::RemoveDestinationFilter => Mutation::RemoveDestinationFilter {
            filter_id: find(rng, &filters, |_| true)?.id.clone(),
        },
        Pick::ToggleDestinationFilter => {
            let filter = find(rng, &filters, |_| true)?;
            Mutation::SetDestinationFilterEnabled {
                filter_id: filter.id.clone(),
                enabled: !filter.enabled,
            }
        }
        Pick::MapPersonalField => {
            let sub = find(rng, &subscriptions, |s| s.enabled)?;
            let path = *pick(rng, &["$.traits.email", "$.traits.phone", "$.context.ip"]);
            let key = *pick(rng, &["contact", "recipient", "user_key"]);
            if sub.settings.get(key).and_then(|v| v.get("@path")) == Some(&path.into()) {
                return None;
            }
            Mutation::SetSubscriptionMapping {
                subscription_id: sub.id.clone(),
                key: key.to_owned(),
                path: Some(path.to_owned()),
            }
        }
        Pick::AllowUnplanned => {
            let source = find(rng, &st.sources, |s| {
                !s.schema_settings.track.allow_unplanned_events
            })?;
            Mutation::SetSchemaSettings {
                source_id: source.id.clone(),
                allow_unplanned_events: Some(true),
                allow_unplanned_traits: None,
            }
        }
        Pick::ToggleTransformation => {
            let t = find(rng, &st.transformations, |_| true)?;
            Mutation::SetTransformation {
                transformation_id: t.id.clone(),
                drop: None,
                enabled: Some(!t.enabled),
                stop_hashing: false,
            }
        }
        Pick::ChangeReverseEtlQuery => {
            let m = find(rng, &st.reverse_etl_models, |_| true)?;
            Mutation::SetReverseEtlQuery {
                model_id: m.id.clone(),
                query: format!(
                    "{} LIMIT {}",
                    m.query
                        .split(" LIMIT ")
                        .next()
                        .unwrap_or_default()
                        .trim_end_matches(';'),
                    rng.u32(100..10_000)
                ),
            }
        }
        Pick::GrantOwner => {
            let user = find(rng, &st.users, |u| !holds(u, WORKSPACE_OWNER))?;
            Mutation::GrantRole {
                user_id: user.id.clone(),
                role_name: WORKSPACE_OWNER.to_owned(),
            }
        }
        Pick::RemoveSourceLabel => {
            let source = find(rng, &st.sources, |s| !s.labels.is_empty())?;
            let key = match source.label("environment") {
                Some(_) if rng.u32(..4) != 0 => "environment".to_owned(),
                _ => pick(rng, &source.labels).key.clone(),
            };
            Mutation::RemoveSourceLabel {
                source_id: source.id.clone(),
                key,
            }
        }
        Pick::RotateWriteKey => Mutation::RotateWriteKey {
            source_id: find(rng, &st.sources, |_| true)?.id.clone(),
        },
        Pick::AddUser => {
            let (name, email) = fresh_person(st, rng, 15);
            let role_name = match rng.u32(..10) {
                0 => WORKSPACE_OWNER,
                1 => SOURCE_ADMIN,
                _ => MINIMAL_ACCESS,
            };
            Mutation::AddUser {
                email,
                name,
                role_name: role_name.to_owned(),
            }
        }
        Pick::RemoveUser => {
            let last_owner = owner_count(st) <= 1;
            let user = find(rng, &st.users, |u| {
                !(last_owner && holds(u, WORKSPACE_OWNER))
            })?;
            Mutation::RemoveUser {
                user_id: user.id.clone(),
            }
        }
        Pick::GrantOther => {
            let role_name = *pick(rng, EXTRA_WORKSPACE_ROLES);
            let user = find(rng, &st.users, |u| !holds(u, role_name))?;
            Mutation::GrantRole {
                user_id: user.id.clone(),
                role_name: role_name.to_owned(),
            }
        }
        Pick::RevokeRole => {
            let last_owner = owner_count(st) <= 1;
            let user = find(rng, &st.users, |u| !u.permissions.is_empty())?;
            let role_name = pick(rng, &user.permissions).role_name.clone();
            if last_owner && role_name == WORKSPACE_OWNER {
                return None;
            }
            Mutation::RevokeRole {
                user_id: user.id.clone(),
                role_name,
            }
        }
        Pick::AddGroupMember => {
            let group = find(rng, &st.groups, |_| true)?;
            let i = st.group_position(&group.id)?;
            Mutation::AddGroupMember {
                group_id: group.id.clone(),
                user_id: random_non_member(st, rng, i)?,
            }
        }
        Pick::RemoveGroupMember => {
            let group = find(rng, &st.groups, |g| !g.members.is_empty())?;
            Mutation::RemoveGroupMember {
                group_id: group.id.clone(),
                user_id: pick(rng, &group.members).clone(),
            }
        }
        Pick::ToggleSource => {
            let source = find(rng, &st.sources, |_| true)?;
            Mutation::SetSourceEnabled {
                source_id: source.id.clone(),
                enabled: !source.enabled,
            }
        }
        Pick::SetSourceLabel => {
            let pos = rng.usize(..st.sources.len().max(1));
            let source = st.sources.get(pos)?;
            let (key, value) = different_label(st, rng, pos);
            Mutation::SetSourceLabel {
                source_id: source.id.clone(),
                key: key.to_owned(),
                value: value.to_owned(),
            }
        }
        Pick::Invite => {
            let (_, email) = fresh_person(st, rng, 30);
            let group_id = if !st.groups.is_empty() && rng.u32(..10) < 4 {
                Some(pick(rng, &st.groups).id.clone())
            } else {
                None
            };
            Mutation::Invite { email, group_id }
        }
        Pick::RevokeInvite => Mutation::RevokeInvite {
            email: find(rng, &st.invites, |_| true)?.clone(),
        },
        Pick::CreateToken => Mutation::CreateToken {
            name: format!("{} automation", pick(rng, TEAMS)),
        },
        Pick::UpdateSso => Mutation::UpdateSsoSettings,
        Pick::AddDestination => {
            let source = find(rng, &st.sources, |_| true)?;
            let n = st.destinations.len() + 1;
            Mutation::AddDestination {
                source_id: source.id.clone(),
                name: format!("Export {n} for {}", source.name),
            }
        }
        Pick::RemoveDestination => Mutation::RemoveDestination {
            destination_id: find(rng, &st.destinations, |_| true)?.id.clone(),
        },
        Pick::ChangeDestinationSetting => {
            let d = find(rng, &st.destinations, |d| !d.settings.is_empty())?;
            let keys: Vec<&String> = d.settings.keys().collect();
            let key = (*pick(rng, &keys)).clone();
            let value = match d.settings.get(&key) {
                Some(serde_json::Value::Bool(b)) => serde_json::Value::Bool(!b),
                _ => serde_json::Value::String(generate::random_secret(rng, 32)),
            };
            Mutation::SetDestinationSetting {
                destination_id: d.id.clone(),
                key,
                value,
            }
        }
        Pick::ToggleDestination => {
            let d = find(rng, &st.destinations, |_| true)?;
            Mutation::SetDestinationEnabled {
                destination_id: d.id.clone(),
                enabled: !d.enabled,
            }
        }
        Pick::RotateWarehouseCredential => Mutation::RotateWarehouseCredential {
            warehouse_id: find(rng, &st.warehouses, |_| true)?.id.clone(),
        },
        Pick::ChangeWarehouseHost => {
            let w = find(rng, &st.warehouses, |w| w.settings.contains_key("host"))?;
            Mutation::SetWarehouseHost {
                warehouse_id: w.id.clone(),
                host: format!("db-{}.external-host.net", rng.u32(1000..10_000)),
            }
        }
        Pick::DeployFunction => Mutation::DeployFunction {
            function_id: find(rng, &st.functions, |_| true)?.id.clone(),
            code: None,
        },
        Pick::ConnectTrackingPlan => {
            let tp = find(rng, &st.tracking_plans, |t| {
                t.source_ids.len() < st.sources.len()
            })?;
            let source = find(rng, &st.sources, |s| !tp.source_ids.contains(&s.id))?;
            Mutation::ConnectTrackingPlan {
                tracking_plan_id: tp.id.clone(),
                source_id: source.id.clone(),
            }
        }
        Pick::DisconnectTrackingPlan => {
            let tp = find(rng, &st.tracking_plans, |t| !t.source_ids.is_empty())?;
            Mutation::DisconnectTrackingPlan {
                tracking_plan_id: tp.id.clone(),
                source_id: pick(rng, &tp.source_ids).clone(),
            }
        }
    })
}
