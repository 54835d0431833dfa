//! Deterministic generation of a plausible workspace from a seed and sizes.
//!
//! Everything is drawn from one `fastrand::Rng` in a fixed order and no hash map is ever
//! iterated, so the same seed and sizes always give the same state, byte for byte.

mod access;
mod flow;
mod vocabulary;

use fastrand::Rng;

use super::state::{
    Label, Permission, PermissionResource, ResourceType, Role, Workspace, WorkspaceState,
};
use access::{
    EmailBook, generate_groups, generate_invites, generate_sources, generate_users,
    label_definitions,
};
use flow::generate_flow;
use vocabulary::{FIRST_NAMES, LAST_NAMES};

pub(crate) use access::{label_description, workspace_permission};
pub(crate) use flow::{
    FUNCTION_TYPES, destination_metadata, destination_settings, function_code, new_function,
    random_password, random_secret, random_timestamp,
};
pub(crate) use vocabulary::{
    COMPANY_DOMAIN, ENVIRONMENTS, EXTERNAL_DOMAINS, EXTRA_WORKSPACE_ROLES, MINIMAL_ACCESS, ROLES,
    SOURCE_ADMIN, SOURCE_READ_ONLY, TEAMS, WORKSPACE_OWNER,
};

/// How many items of each kind to generate.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sizes {
    pub(crate) users: usize,
    pub(crate) groups: usize,
    pub(crate) sources: usize,
    pub(crate) invites: usize,
    pub(crate) destinations: usize,
    pub(crate) warehouses: usize,
    pub(crate) functions: usize,
    pub(crate) tracking_plans: usize,
}

/// Mixed into the seed for destinations, warehouses, functions and tracking plans, drawn from a
/// generator of their own so the rest of the workspace is the same whatever their numbers.
const FLOW_SEED_SALT: u64 = 0xf10e_da7a_0dd5_eed5;

/// Length of generated ids, like Segment's.
const ID_LEN: usize = 27;
/// Length of generated write keys.
const WRITE_KEY_LEN: usize = 32;

pub(crate) fn random_id(rng: &mut Rng) -> String {
    random_alphanumeric(rng, ID_LEN)
}

pub(crate) fn random_write_key(rng: &mut Rng) -> String {
    random_alphanumeric(rng, WRITE_KEY_LEN)
}

fn random_alphanumeric(rng: &mut Rng, len: usize) -> String {
    (0..len).map(|_| rng.alphanumeric()).collect()
}

/// Picks one element; `items` must not be empty.
pub(crate) fn pick<'a, T>(rng: &mut Rng, items: &'a [T]) -> &'a T {
    &items[rng.usize(..items.len())]
}

/// A random person: (display name, email local part without disambiguating number).
pub(crate) fn random_person(rng: &mut Rng) -> (String, String) {
    let first = pick(rng, FIRST_NAMES);
    let last = pick(rng, LAST_NAMES);
    let local = format!("{}.{}", email_part(first), email_part(last));
    (format!("{first} {last}"), local)
}

fn email_part(name: &str) -> String {
    name.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Mostly the company domain, sometimes an outside one; `external_percent` sets the share.
pub(crate) fn random_domain(rng: &mut Rng, external_percent: u32) -> &'static str {
    if rng.u32(..100) < external_percent {
        pick::<&str>(rng, EXTERNAL_DOMAINS)
    } else {
        COMPANY_DOMAIN
    }
}

/// Generation context: the rng plus what later items refer to.
struct Gen<'a> {
    rng: &'a mut Rng,
    workspace_id: String,
    roles: Vec<Role>,
    source_ids: Vec<String>,
}

impl Gen<'_> {
    fn role(&self, name: &str) -> &Role {
        self.roles
            .iter()
            .find(|r| r.name == name)
            .expect("every role name used by the generator is in ROLES")
    }

    fn workspace_permission(&self, role_name: &str) -> Permission {
        workspace_permission(self.role(role_name), &self.workspace_id)
    }

    /// Source Admin or Read-only on one to three specific sources.
    fn source_permission(&mut self) -> Option<Permission> {
        if self.source_ids.is_empty() {
            return None;
        }
        let role_name = if self.rng.bool() {
            SOURCE_ADMIN
        } else {
            SOURCE_READ_ONLY
        };
        let n = self.rng.usize(1..=3).min(self.source_ids.len());
        let mut resources: Vec<PermissionResource> = Vec::with_capacity(n);
        while resources.len() < n {
            let id = pick(self.rng, &self.source_ids);
            if !resources.iter().any(|r| &r.id == id) {
                resources.push(PermissionResource {
                    id: id.clone(),
                    kind: ResourceType::Source,
                    labels: None,
                });
            }
        }
        let role = self.role(role_name);
        Some(Permission {
            role_id: role.id.clone(),
            role_name: role.name.clone(),
            resources,
            labels: None,
        })
    }

    /// Source Admin or Read-only on the sources carrying one environment label.
    fn label_permission(&mut self) -> Permission {
        let role_name = if self.rng.u32(..3) == 0 {
            SOURCE_ADMIN
        } else {
            SOURCE_READ_ONLY
        };
        let env = *pick(self.rng, ENVIRONMENTS);
        let labels = vec![Label::new("environment", env)];
        let role = self.role(role_name);
        Permission {
            role_id: role.id.clone(),
            role_name: role.name.clone(),
            resources: vec![PermissionResource {
                id: self.workspace_id.clone(),
                kind: ResourceType::Workspace,
                labels: Some(labels.clone()),
            }],
            labels: Some(labels),
        }
    }

    fn extra_workspace_permission(&mut self) -> Permission {
        let role_name = *pick(self.rng, EXTRA_WORKSPACE_ROLES);
        self.workspace_permission(role_name)
    }

    /// A scoped permission of the kind groups usually hold.
    fn group_permission(&mut self) -> Permission {
        match self.rng.u32(..10) {
            0..=3 => match self.source_permission() {
                Some(p) => p,
                None => self.extra_workspace_permission(),
            },
            4..=5 => self.label_permission(),
            _ => self.extra_workspace_permission(),
        }
    }
}

/// Generates a workspace. Same `seed` and `sizes` give the same state.
pub(crate) fn generate(seed: u64, sizes: Sizes) -> WorkspaceState {
    let mut rng = Rng::with_seed(seed);
    let workspace = Workspace {
        id: random_id(&mut rng),
        slug: "acme-analytics".to_owned(),
        name: "Acme Analytics".to_owned(),
    };
    let roles: Vec<Role> = ROLES
        .iter()
        .map(|(name, description)| Role {
            id: random_id(&mut rng),
            name: (*name).to_owned(),
            description: (*description).to_owned(),
        })
        .collect();
    let labels = label_definitions();
    let mut sources = generate_sources(&mut rng, &workspace.id, sizes.sources);
    let mut g = Gen {
        rng: &mut rng,
        workspace_id: workspace.id.clone(),
        roles,
        source_ids: sources.iter().map(|s| s.id.clone()).collect(),
    };
    let mut emails = EmailBook::default();
    let users = generate_users(&mut g, &mut emails, sizes.users);
    let invites = generate_invites(g.rng, &mut emails, sizes.invites);
    let groups = generate_groups(&mut g, &users, &invites, sizes.groups);
    let roles = g.roles;
    let mut flow_rng = Rng::with_seed(seed ^ FLOW_SEED_SALT);
    let mut flow = generate_flow(&mut flow_rng, sizes, &workspace.id, &sources, &users);
    let (transformations, models) =
        crate::controls::generate_controls(seed, &mut sources, &mut flow.destinations);
    let mut state = WorkspaceState::new(
        workspace, roles, users, groups, invites, sources, labels, flow,
    );
    state.transformations = transformations;
    state.reverse_etl_models = models;
    state
}

/// `k` distinct indices below `n` (fewer if `n < k`), in draw order.
pub(crate) fn distinct_indices(rng: &mut Rng, n: usize, k: usize) -> Vec<usize> {
    let k = k.min(n);
    if k * 4 >= n {
        // Dense draw: a partial Fisher–Yates over all indices.
        let mut all: Vec<usize> = (0..n).collect();
        for i in 0..k {
            let j = rng.usize(i..n);
            all.swap(i, j);
        }
        all.truncate(k);
        all
    } else {
        // Sparse draw: rejection sampling; `k` is small next to `n`, so collisions are rare.
        let mut picked = std::collections::HashSet::with_capacity(k);
        let mut out = Vec::with_capacity(k);
        while out.len() < k {
            let i = rng.usize(..n);
            if picked.insert(i) {
                out.push(i);
            }
        }
        out
    }
}
