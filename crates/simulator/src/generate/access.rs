//! Users, groups, invites, sources and labels: the part of the workspace access reviews
//! look at.

use std::collections::HashMap;

use fastrand::Rng;

use crate::state::{
    Group, Label, Logos, Permission, PermissionResource, ResourceType, Role, Source,
    SourceMetadata, User,
};

use super::vocabulary::{
    CATALOG, ENVIRONMENTS, GROUP_NAMES, MINIMAL_ACCESS, SOURCE_BASES, TEAMS, WORKSPACE_OWNER,
};
use super::{
    Gen, distinct_indices, pick, random_domain, random_id, random_person, random_write_key,
};

/// Hands out unique emails: `first.last@domain`, then `first.last2@domain`, ...
#[derive(Default)]
pub(super) struct EmailBook {
    seen: HashMap<String, u32>,
}

impl EmailBook {
    fn email(&mut self, local: &str, domain: &str) -> String {
        let n = self.seen.entry(format!("{local}@{domain}")).or_insert(0);
        *n += 1;
        if *n == 1 {
            format!("{local}@{domain}")
        } else {
            format!("{local}{n}@{domain}")
        }
    }
}

/// Turns a name into a slug: lowercase alphanumerics separated by single dashes.
pub(crate) fn slugify(name: &str) -> String {
    let mut slug = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    while slug.ends_with('-') {
        slug.pop();
    }
    slug
}

pub(crate) fn label_description(key: &str, value: &str) -> String {
    match key {
        "environment" => match value {
            "prod" => "Production: live customer traffic".to_owned(),
            "staging" => "Staging: pre-release testing".to_owned(),
            "dev" => "Development: engineers' sandboxes".to_owned(),
            _ => format!("Environment {value}"),
        },
        "team" => format!("Owned by the {value} team"),
        _ => format!("{key}: {value}"),
    }
}

/// A permission granting `role` on the whole workspace.
pub(crate) fn workspace_permission(role: &Role, workspace_id: &str) -> Permission {
    Permission {
        role_id: role.id.clone(),
        role_name: role.name.clone(),
        resources: vec![PermissionResource {
            id: workspace_id.to_owned(),
            kind: ResourceType::Workspace,
            labels: None,
        }],
        labels: None,
    }
}

pub(super) fn label_definitions() -> Vec<Label> {
    ENVIRONMENTS
        .iter()
        .map(|v| ("environment", *v))
        .chain(TEAMS.iter().map(|v| ("team", *v)))
        .map(|(k, v)| Label {
            key: k.to_owned(),
            value: v.to_owned(),
            description: Some(label_description(k, v)),
        })
        .collect()
}

pub(crate) fn catalog_metadata(index: usize) -> SourceMetadata {
    let (id, name, slug, description, category, cloud) = CATALOG[index % CATALOG.len()];
    let logo = |variant: &str| format!("https://cdn.filepicker.io/api/file/{id}-{slug}-{variant}");
    SourceMetadata {
        id: id.to_owned(),
        name: name.to_owned(),
        slug: slug.to_owned(),
        description: description.to_owned(),
        logos: Logos {
            default: logo("default"),
            mark: logo("mark"),
            alt: logo("alt"),
        },
        options: Vec::new(),
        categories: vec![category.to_owned()],
        is_cloud_event_source: cloud,
        status: "PUBLIC".to_owned(),
    }
}

pub(super) fn generate_sources(rng: &mut Rng, workspace_id: &str, count: usize) -> Vec<Source> {
    // One metadata value per catalog entry, cloned into each source.
    let catalog: Vec<SourceMetadata> = (0..CATALOG.len()).map(catalog_metadata).collect();
    let mut name_counts: HashMap<(usize, usize), u32> = HashMap::new();
    // Small workspaces get distinct products before any repeats.
    let mut first_bases: Vec<usize> = (0..SOURCE_BASES.len()).collect();
    rng.shuffle(&mut first_bases);
    let mut sources = Vec::with_capacity(count);
    for i in 0..count {
        let base = match first_bases.get(i) {
            Some(&b) => b,
            None => rng.usize(..SOURCE_BASES.len()),
        };
        let env = match rng.u32(..10) {
            0..=4 => 0,
            5..=7 => 1,
            _ => 2,
        };
        let (base_name, catalog_index) = SOURCE_BASES[base];
        let n = name_counts.entry((base, env)).or_insert(0);
        *n += 1;
        let env_name = ENVIRONMENTS[env];
        let name = if *n == 1 {
            format!("{base_name} ({env_name})")
        } else {
            format!("{base_name} {n} ({env_name})")
        };
        let mut labels = Vec::with_capacity(2);
        // Some sources were never labelled, which label-based rules should notice.
        if rng.u32(..100) < 85 {
            labels.push(Label::new("environment", env_name));
        }
        if rng.u32(..100) < 40 {
            labels.push(Label::new("team", *pick(rng, TEAMS)));
        }
        let key_count = if rng.u32(..100) < 80 { 1 } else { 2 };
        let write_keys = (0..key_count).map(|_| random_write_key(rng)).collect();
        sources.push(Source {
            id: random_id(rng),
            slug: slugify(&name),
            name,
            workspace_id: workspace_id.to_owned(),
            enabled: rng.u32(..100) < 90,
            write_keys,
            metadata: catalog[catalog_index].clone(),
            settings: serde_json::Map::new(),
            labels,
            schema_settings: Default::default(),
        });
    }
    sources
}

pub(super) fn generate_users(g: &mut Gen<'_>, emails: &mut EmailBook, count: usize) -> Vec<User> {
    let owner_count = g.rng.usize(2..=3);
    let owners = distinct_indices(g.rng, count, owner_count);
    let mut users = Vec::with_capacity(count);
    for i in 0..count {
        let (name, local) = random_person(g.rng);
        let domain = random_domain(g.rng, 6);
        let email = emails.email(&local, domain);
        let name = if g.rng.u32(..100) < 3 {
            String::new()
        } else {
            name
        };
        let mut permissions = Vec::with_capacity(2);
        if owners.contains(&i) {
            permissions.push(g.workspace_permission(WORKSPACE_OWNER));
        } else {
            if g.rng.u32(..100) < 88 {
                permissions.push(g.workspace_permission(MINIMAL_ACCESS));
            }
            let roll = g.rng.u32(..100);
            if roll < 15 {
                permissions.extend(g.source_permission());
            } else if roll < 20 {
                permissions.push(g.label_permission());
            } else if roll < 26 {
                permissions.push(g.extra_workspace_permission());
            }
        }
        users.push(User {
            id: random_id(g.rng),
            name,
            email,
            permissions,
        });
    }
    users
}

pub(super) fn generate_invites(rng: &mut Rng, emails: &mut EmailBook, count: usize) -> Vec<String> {
    (0..count)
        .map(|_| {
            let (_, local) = random_person(rng);
            let domain = random_domain(rng, 30);
            emails.email(&local, domain)
        })
        .collect()
}

pub(super) fn generate_groups(
    g: &mut Gen<'_>,
    users: &[User],
    invites: &[String],
    count: usize,
) -> Vec<Group> {
    let n = users.len();
    // Small workspaces get proportionally smaller groups; large ones 20–50 members.
    let lo = 20.min(n / 4);
    let hi = 50.min(n / 2).max(lo);
    let mut groups = Vec::with_capacity(count);
    for i in 0..count {
        let base = GROUP_NAMES[i % GROUP_NAMES.len()];
        let round = i / GROUP_NAMES.len();
        let name = if round == 0 {
            base.to_owned()
        } else {
            format!("{base} {}", round + 1)
        };
        let permissions = if base == "Workspace Admins" {
            vec![g.workspace_permission(WORKSPACE_OWNER)]
        } else {
            let k = if g.rng.u32(..100) < 30 { 2 } else { 1 };
            (0..k).map(|_| g.group_permission()).collect()
        };
        let size = g.rng.usize(lo..=hi);
        let members = distinct_indices(g.rng, n, size)
            .into_iter()
            .map(|i| users[i].id.clone())
            .collect();
        // A few groups carry pending invites; the first always does, so there is one to see.
        let group_invites = if !invites.is_empty() && (i == 0 || g.rng.u32(..100) < 15) {
            let k = g.rng.usize(1..=2).min(invites.len());
            distinct_indices(g.rng, invites.len(), k)
                .into_iter()
                .map(|i| invites[i].clone())
                .collect()
        } else {
            Vec::new()
        };
        groups.push(Group {
            id: random_id(g.rng),
            name,
            permissions,
            members,
            invites: group_invites,
        });
    }
    groups
}
