//! Applying a mutation: the access changes (users, roles, groups, sources, invites, tokens,
//! churn) directly, the data-flow ones through [`super::data_flow`].

use fastrand::Rng;

use crate::SimError;
use crate::audit::Touched;
use crate::generate::{self, EXTRA_WORKSPACE_ROLES, distinct_indices, pick};
use crate::state::{Label, WorkspaceState};

use super::data_flow::{data_flow, flow_target};
use super::random::{different_label, random_non_member};
use super::{Mutation, not_found, valid_email};

/// Applies `m` to `st`, drawing any new ids or keys from `rng`. Returns a one-line description.
/// Every resource it touched is pushed to `trail`, as Segment's audit trail would record it.
pub(crate) fn apply(
    st: &mut WorkspaceState,
    rng: &mut Rng,
    m: Mutation,
    trail: &mut Vec<Touched>,
) -> Result<String, SimError> {
    let description = match m {
        Mutation::AddUser {
            email,
            name,
            role_name,
        } => add_user(st, rng, None, &email, name, &role_name, trail)?,
        Mutation::AddExistingUser {
            user_id,
            email,
            name,
            role_name,
        } => add_user(st, rng, Some(user_id), &email, name, &role_name, trail)?,
        Mutation::RemoveUser { user_id } => {
            let pos = st
                .user_position(&user_id)
                .ok_or_else(|| not_found("user", &user_id))?;
            let user = st.users.remove(pos);
            st.reindex_users();
            trail.push(Touched::new("User Removed", "user", &user.id, &user.email));
            let mut groups = 0;
            for g in &mut st.groups {
                let before = g.members.len();
                g.members.retain(|m| m != &user.id);
                if g.members.len() != before {
                    groups += 1;
                    trail.push(group_touched("Group Memberships Deleted", g));
                }
            }
            match groups {
                0 => format!("removed user {}", user.email),
                n => format!("removed user {} (and from {n} group(s))", user.email),
            }
        }
        Mutation::GrantRole { user_id, role_name } => {
            let role = st
                .role_by_name(&role_name)
                .ok_or_else(|| not_found("role", &role_name))?
                .clone();
            let ws = st.workspace.id.clone();
            let pos = st
                .user_position(&user_id)
                .ok_or_else(|| not_found("user", &user_id))?;
            let user = &mut st.users[pos];
            if user
                .permissions
                .iter()
                .any(|p| p.role_name == role.name && p.is_workspace_wide(&ws))
            {
                return Err(SimError::Conflict(format!(
                    "{} already holds {} on the workspace",
                    user.email, role.name
                )));
            }
            user.permissions
                .push(generate::workspace_permission(&role, &ws));
            trail.push(user_policy(user));
            format!("granted {} to {}", role.name, user.email)
        }
        Mutation::RevokeRole { user_id, role_name } => {
            let pos = st
                .user_position(&user_id)
                .ok_or_else(|| not_found("user", &user_id))?;
            let user = &mut st.users[pos];
            let before = user.permissions.len();
            user.permissions.retain(|p| p.role_name != role_name);
            if user.permissions.len() == before {
                return Err(SimError::Conflict(format!(
                    "{} does not hold {role_name}",
                    user.email
                )));
            }
            trail.push(user_policy(user));
            format!("revoked {role_name} from {}", user.email)
        }
        Mutation::RevokeGroupRole {
            group_id,
            role_name,
        } => {
            let gpos = st
                .group_position(&group_id)
                .ok_or_else(|| not_found("group", &group_id))?;
            let group = &mut st.groups[gpos];
            let before = group.permissions.len();
            group.permissions.retain(|p| p.role_name != role_name);
            if group.permissions.len() == before {
                return Err(SimError::Conflict(format!(
                    "group \"{}\" does not hold {role_name}",
                    group.name
                )));
            }
            trail.push(group_touched("Group Policy Updated", group));
            format!("revoked {role_name} from group \"{}\"", group.name)
        }
        Mutation::AddGroupMember { group_id, user_id } => {
            let gpos = st
                .group_position(&group_id)
                .ok_or_else(|| not_found("group", &group_id))?;
            let email = st
                .user(&user_id)
                .ok_or_else(|| not_found("user", &user_id))?
                .email
                .clone();
            let group = &mut st.groups[gpos];
            if group.members.contains(&user_id) {
                return Err(SimError::Conflict(format!(
                    "{email} is already a member of group \"{}\"",
                    group.name
                )));
            }
            group.members.push(user_id);
            trail.push(group_touched("Group Memberships Created", group));
            format!(
                "added {email} to group \"{}\" ({} members)",
                group.name,
                group.member_count()
            )
        }
        Mutation::RemoveGroupMember { group_id, user_id } => {
            let gpos = st
                .group_position(&group_id)
                .ok_or_else(|| not_found("group", &group_id))?;
            let email = st
                .user(&user_id)
                .map_or_else(|| user_id.clone(), |u| u.email.clone());
            let group = &mut st.groups[gpos];
            let Some(i) = group.members.iter().position(|m| m == &user_id) else {
                return Err(SimError::Conflict(format!(
                    "{email} is not a member of group \"{}\"",
                    group.name
                )));
            };
            group.members.remove(i);
            trail.push(group_touched("Group Memberships Deleted", group));
            format!(
                "removed {email} from group \"{}\" ({} members)",
                group.name,
                group.member_count()
            )
        }
        Mutation::RotateWriteKey { source_id } => {
            let pos = st
                .source_position(&source_id)
                .ok_or_else(|| not_found("source", &source_id))?;
            trail.push(source_touched(st, pos));
            rotate_key(st, rng, pos)
        }
        Mutation::SetSourceEnabled { source_id, enabled } => {
            let pos = st
                .source_position(&source_id)
                .ok_or_else(|| not_found("source", &source_id))?;
            if st.sources[pos].enabled != enabled {
                trail.push(source_touched(st, pos));
            }
            let source = &mut st.sources[pos];
            let was = std::mem::replace(&mut source.enabled, enabled);
            match (was, enabled) {
                (false, true) => format!("enabled source \"{}\"", source.name),
                (true, false) => format!("disabled source \"{}\"", source.name),
                _ => format!(
                    "source \"{}\" already {}",
                    source.name,
                    if enabled { "enabled" } else { "disabled" }
                ),
            }
        }
        Mutation::SetSourceLabel {
            source_id,
            key,
            value,
        } => {
            if key.is_empty() || value.is_empty() {
                return Err(SimError::Invalid(
                    "label key and value must not be empty".into(),
                ));
            }
            let pos = st
                .source_position(&source_id)
                .ok_or_else(|| not_found("source", &source_id))?;
            if st.sources[pos].label(&key) != Some(value.as_str()) {
                trail.push(source_touched(st, pos));
            }
            set_label(st, pos, &key, &value)
        }
        Mutation::RemoveSourceLabel { source_id, key } => {
            let pos = st
                .source_position(&source_id)
                .ok_or_else(|| not_found("source", &source_id))?;
            let source = &mut st.sources[pos];
            let Some(i) = source.labels.iter().position(|l| l.key == key) else {
                return Err(SimError::Conflict(format!(
                    "source \"{}\" has no label `{key}`",
                    source.name
                )));
            };
            let label = source.labels.remove(i);
            trail.push(Touched::new(
                "Source Modified",
                "source",
                &source.id,
                &source.name,
            ));
            format!(
                "removed label {}={} from source \"{}\"",
                label.key, label.value, source.name
            )
        }
        Mutation::Invite { email, group_id } => {
            let email = valid_email(&email)?;
            if st.user_by_email(&email).is_some() {
                return Err(SimError::Conflict(format!("{email} is already a user")));
            }
            let pending = st.invites.iter().any(|e| e.eq_ignore_ascii_case(&email));
            match group_id {
                Some(group_id) => {
                    let gpos = st
                        .group_position(&group_id)
                        .ok_or_else(|| not_found("group", &group_id))?;
                    let group = &mut st.groups[gpos];
                    if group.invites.iter().any(|e| e.eq_ignore_ascii_case(&email)) {
                        return Err(SimError::Conflict(format!(
                            "{email} is already invited to group \"{}\"",
                            group.name
                        )));
                    }
                    group.invites.push(email.clone());
                    trail.push(group_touched("User Group Updated", group));
                    let description = format!("invited {email} to group \"{}\"", group.name);
                    if !pending {
                        trail.push(Touched::new("User Invited", "invite", &email, &email));
                        st.invites.push(email);
                    }
                    description
                }
                None => {
                    if pending {
                        return Err(SimError::Conflict(format!("{email} is already invited")));
                    }
                    let description = format!("invited {email} to the workspace");
                    trail.push(Touched::new("User Invited", "invite", &email, &email));
                    st.invites.push(email);
                    description
                }
            }
        }
        Mutation::RevokeInvite { email } => {
            let before = st.invites.len();
            st.invites.retain(|e| !e.eq_ignore_ascii_case(&email));
            if st.invites.len() == before {
                return Err(not_found("invite", &email));
            }
            trail.push(Touched::new("Invite Deleted", "invite", &email, &email));
            for g in &mut st.groups {
                let before = g.invites.len();
                g.invites.retain(|e| !e.eq_ignore_ascii_case(&email));
                if g.invites.len() != before {
                    trail.push(group_touched("User Group Updated", g));
                }
            }
            format!("revoked invite for {email}")
        }
        Mutation::Churn { percent } => churn(st, rng, percent, trail)?,
        Mutation::CreateToken { name } => {
            if name.trim().is_empty() {
                return Err(SimError::Invalid("a token needs a name".into()));
            }
            let id = format!("tok_{}", generate::random_id(rng));
            trail.push(Touched::new(
                "Access Token Created",
                "access_token",
                id,
                &name,
            ));
            format!("created API token \"{name}\"")
        }
        Mutation::UpdateSsoSettings => {
            trail.push(Touched::new(
                "SSO Settings Updated",
                "workspace",
                &st.workspace.id,
                &st.workspace.name,
            ));
            "updated the workspace's SSO settings".to_owned()
        }
        other if super::controls::is_control(&other) => {
            super::controls::controls(st, rng, other, trail)?
        }
        other => {
            // Segment records data-flow changes in its audit trail like the others.
            let target = flow_target(&other);
            let description = data_flow(st, rng, other)?;
            if let Some(touched) = target.and_then(|t| t.resolve(st)) {
                trail.push(touched);
            }
            description
        }
    };
    debug_assert_eq!(st.check_invariants(), Ok(()));
    Ok(description)
}

/// `User Policy Updated` on a user.
fn user_policy(user: &crate::state::User) -> Touched {
    Touched::new("User Policy Updated", "user", &user.id, &user.email)
}

fn group_touched(event_type: &'static str, group: &crate::state::Group) -> Touched {
    Touched::new(event_type, "user_group", &group.id, &group.name)
}

fn source_touched(st: &WorkspaceState, pos: usize) -> Touched {
    let source = &st.sources[pos];
    Touched::new("Source Modified", "source", &source.id, &source.name)
}

fn add_user(
    st: &mut WorkspaceState,
    rng: &mut Rng,
    id: Option<String>,
    email: &str,
    name: String,
    role_name: &str,
    trail: &mut Vec<Touched>,
) -> Result<String, SimError> {
    let email = valid_email(email)?;
    let role = st
        .role_by_name(role_name)
        .ok_or_else(|| not_found("role", role_name))?
        .clone();
    if st.user_by_email(&email).is_some() {
        return Err(SimError::Conflict(format!(
            "a user with email {email} already exists"
        )));
    }
    let id = match id {
        Some(id) if st.user_position(&id).is_some() => {
            return Err(SimError::Conflict(format!("user {id} already exists")));
        }
        Some(id) if id.is_empty() => {
            return Err(SimError::Invalid("a user id must not be empty".into()));
        }
        Some(id) => id,
        None => loop {
            let id = generate::random_id(rng);
            if st.user_position(&id).is_none() {
                break id;
            }
        },
    };
    let display = if name.is_empty() {
        email.clone()
    } else {
        format!("{email} ({name})")
    };
    st.users.push(crate::state::User {
        id: id.clone(),
        name,
        email: email.clone(),
        permissions: vec![generate::workspace_permission(&role, &st.workspace.id)],
    });
    st.index_pushed_user();
    trail.push(Touched::new("User Added", "user", &id, &email));
    // Accepting an invite: it stops being pending and the user joins the inviting groups.
    let invited = st.invites.len();
    st.invites.retain(|e| !e.eq_ignore_ascii_case(&email));
    if st.invites.len() != invited {
        trail.push(Touched::new("Invite Accepted", "invite", &email, &email));
    }
    let mut joined = Vec::new();
    for g in &mut st.groups {
        let before = g.invites.len();
        g.invites.retain(|e| !e.eq_ignore_ascii_case(&email));
        if g.invites.len() != before {
            g.members.push(id.clone());
            joined.push(format!("\"{}\"", g.name));
            trail.push(group_touched("Group Memberships Created", g));
        }
    }
    let mut description = format!("added user {display} with {}", role.name);
    if !joined.is_empty() {
        description.push_str(&format!(", joining group(s) {}", joined.join(", ")));
    }
    Ok(description)
}

fn rotate_key(st: &mut WorkspaceState, rng: &mut Rng, pos: usize) -> String {
    let source = &mut st.sources[pos];
    let key = generate::random_write_key(rng);
    match source.write_keys.first_mut() {
        Some(first) => *first = key,
        None => source.write_keys.push(key),
    }
    format!("rotated write key of source \"{}\"", source.name)
}

fn set_label(st: &mut WorkspaceState, pos: usize, key: &str, value: &str) -> String {
    if !st.labels.iter().any(|l| l.key == key && l.value == value) {
        st.labels.push(Label {
            key: key.to_owned(),
            value: value.to_owned(),
            description: Some(generate::label_description(key, value)),
        });
    }
    let source = &mut st.sources[pos];
    let previous = match source.labels.iter_mut().find(|l| l.key == key) {
        Some(label) => Some(std::mem::replace(&mut label.value, value.to_owned())),
        None => {
            source.labels.push(Label::new(key, value));
            None
        }
    };
    match previous {
        Some(p) if p == value => format!(
            "label {key}={value} already set on source \"{}\"",
            source.name
        ),
        Some(p) => format!(
            "set label {key}={value} on source \"{}\" (was {p})",
            source.name
        ),
        None => format!("set label {key}={value} on source \"{}\"", source.name),
    }
}

fn churn(
    st: &mut WorkspaceState,
    rng: &mut Rng,
    percent: f64,
    trail: &mut Vec<Touched>,
) -> Result<String, SimError> {
    if !percent.is_finite() || percent <= 0.0 || percent > 100.0 {
        return Err(SimError::Invalid(format!(
            "churn percent must be in (0, 100], got {percent}"
        )));
    }
    let share = |n: usize| ((n as f64) * percent / 100.0).ceil() as usize;
    let ws = st.workspace.id.clone();

    let mut users = distinct_indices(rng, st.users.len(), share(st.users.len()));
    users.sort_unstable();
    for &i in &users {
        let user = &mut st.users[i];
        let held: Vec<usize> = user
            .permissions
            .iter()
            .enumerate()
            .filter(|(_, p)| {
                EXTRA_WORKSPACE_ROLES.contains(&p.role_name.as_str()) && p.is_workspace_wide(&ws)
            })
            .map(|(i, _)| i)
            .collect();
        let grantable: Vec<&str> = EXTRA_WORKSPACE_ROLES
            .iter()
            .copied()
            .filter(|r| !user.permissions.iter().any(|p| p.role_name == *r))
            .collect();
        if grantable.is_empty() || (!held.is_empty() && rng.bool()) {
            user.permissions.remove(*pick(rng, &held));
        } else {
            let role_name = *pick(rng, &grantable);
            let role = st
                .roles
                .iter()
                .find(|r| r.name == role_name)
                .expect("extra roles are generated");
            let permission = generate::workspace_permission(role, &ws);
            st.users[i].permissions.push(permission);
        }
        trail.push(user_policy(&st.users[i]));
    }

    let mut groups = distinct_indices(rng, st.groups.len(), share(st.groups.len()));
    groups.sort_unstable();
    let mut changed_groups = 0;
    for &i in &groups {
        let remove = !st.groups[i].members.is_empty() && rng.bool();
        if !remove && let Some(user_id) = random_non_member(st, rng, i) {
            st.groups[i].members.push(user_id);
            changed_groups += 1;
            trail.push(group_touched("Group Memberships Created", &st.groups[i]));
        } else if !st.groups[i].members.is_empty() {
            let members = &mut st.groups[i].members;
            members.remove(rng.usize(..members.len()));
            changed_groups += 1;
            trail.push(group_touched("Group Memberships Deleted", &st.groups[i]));
        }
    }

    let mut sources = distinct_indices(rng, st.sources.len(), share(st.sources.len()));
    sources.sort_unstable();
    for &i in &sources {
        trail.push(source_touched(st, i));
        match rng.u32(..10) {
            0..=3 => {
                rotate_key(st, rng, i);
            }
            4..=7 => {
                let (key, value) = different_label(st, rng, i);
                set_label(st, i, key, value);
            }
            _ => st.sources[i].enabled = !st.sources[i].enabled,
        }
    }
    Ok(format!(
        "churned {percent}%: changed {} users, {changed_groups} groups, {} sources",
        users.len(),
        sources.len()
    ))
}
