//! Deterministic generation of a plausible workspace from a seed and sizes.
//!
//! Everything is drawn from one `fastrand::Rng` in a fixed order and no hash map is ever
//! iterated, so the same seed and sizes always give the same state, byte for byte.

use std::collections::HashMap;

use fastrand::Rng;

use serde_json::{Map, Value, json};

use super::state::{
    DataFlow, Destination, Function, FunctionSetting, Group, Label, Logos, Permission,
    PermissionResource, ResourceType, Role, Source, SourceMetadata, TrackingPlan, User, Warehouse,
    Workspace, WorkspaceState,
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

pub(crate) const WORKSPACE_OWNER: &str = "Workspace Owner";
pub(crate) const MINIMAL_ACCESS: &str = "Minimal Workspace Access";
pub(crate) const SOURCE_ADMIN: &str = "Source Admin";
pub(crate) const SOURCE_READ_ONLY: &str = "Source Read-only";

pub(crate) const ROLES: &[(&str, &str)] = &[
    (
        WORKSPACE_OWNER,
        "Full read and edit access to the workspace, including members, billing and every resource.",
    ),
    (
        MINIMAL_ACCESS,
        "Access to the workspace without access to any resource; required to sign in.",
    ),
    (
        SOURCE_ADMIN,
        "Edit access to the assigned sources, their settings, destinations and debugger.",
    ),
    (
        SOURCE_READ_ONLY,
        "Read access to the assigned sources, their settings, destinations and debugger.",
    ),
    (
        "Workspace Billing Admin",
        "Manage the workspace plan, payment details and invoices.",
    ),
    (
        "Tracking Plan Admin",
        "Create, edit and connect tracking plans and Protocols transformations.",
    ),
    (
        "Tracking Plan Read-only",
        "Read access to tracking plans and their violations.",
    ),
    (
        "Warehouse Destination Admin",
        "Edit access to warehouses, their settings and sync schedules.",
    ),
    (
        "Warehouse Destination Read-only",
        "Read access to warehouses and their sync history.",
    ),
    (
        "Engage User",
        "Create and edit audiences, computed traits and journeys in Engage spaces.",
    ),
    (
        "Engage Read-only",
        "Read access to Engage spaces, audiences and profiles.",
    ),
    (
        "Identity Admin",
        "Edit identity resolution settings and profile data in Engage spaces.",
    ),
];

/// Roles handed out on the workspace besides owner and minimal access.
pub(crate) const EXTRA_WORKSPACE_ROLES: &[&str] = &[
    SOURCE_READ_ONLY,
    "Workspace Billing Admin",
    "Tracking Plan Admin",
    "Tracking Plan Read-only",
    "Warehouse Destination Admin",
    "Warehouse Destination Read-only",
    "Engage User",
    "Engage Read-only",
    "Identity Admin",
];

pub(crate) const ENVIRONMENTS: &[&str] = &["prod", "staging", "dev"];
pub(crate) const TEAMS: &[&str] = &["growth", "data-platform", "mobile", "marketing", "payments"];

const FIRST_NAMES: &[&str] = &[
    "Alice",
    "Aaron",
    "Ana",
    "Beatriz",
    "Ben",
    "Bob",
    "Carol",
    "Chen",
    "Chloe",
    "Daniel",
    "David",
    "Diego",
    "Elena",
    "Emma",
    "Eva",
    "Farah",
    "Felix",
    "Finn",
    "Gabriel",
    "George",
    "Grace",
    "Hannah",
    "Hugo",
    "Ines",
    "Isabel",
    "Ivan",
    "Jamal",
    "Jonas",
    "Julia",
    "Kenji",
    "Kira",
    "Laura",
    "Leila",
    "Liam",
    "Marco",
    "Mateo",
    "Maya",
    "Nina",
    "Noah",
    "Nora",
    "Olivia",
    "Omar",
    "Oscar",
    "Pablo",
    "Paula",
    "Priya",
    "Quinn",
    "Rafael",
    "Rosa",
    "Samir",
    "Sofia",
    "Tara",
    "Tom",
    "Uma",
    "Umar",
    "Valentina",
    "Victor",
    "Wei",
    "William",
    "Xavier",
    "Yara",
    "Yusuf",
    "Zara",
    "Zoe",
];

const LAST_NAMES: &[&str] = &[
    "Adams", "Ali", "Andersen", "Baker", "Brown", "Byrne", "Campbell", "Carter", "Chen", "Clark",
    "Cohen", "Costa", "Davies", "Dubois", "Evans", "Fischer", "Garcia", "Green", "Haddad", "Hall",
    "Hill", "Hughes", "Jensen", "Johnson", "Jones", "Kelly", "Khan", "Kim", "King", "Kowalski",
    "Larsen", "Lee", "Levi", "Lewis", "Lopez", "Martin", "Mitchell", "Moreau", "Murphy", "Nelson",
    "Ng", "Nguyen", "Novak", "O'Brien", "Olsen", "Ortiz", "Parker", "Patel", "Perez", "Phillips",
    "Ramos", "Roberts", "Rossi", "Sato", "Schmidt", "Scott", "Silva", "Singh", "Smith", "Tanaka",
    "Taylor", "Turner", "Walker", "Walsh", "Wang", "Weber", "Williams", "Wilson", "Wright",
    "Young",
];

pub(crate) const COMPANY_DOMAIN: &str = "acme.io";
pub(crate) const EXTERNAL_DOMAINS: &[&str] = &["gmail.com", "contractor.dev", "partner-agency.com"];

const GROUP_NAMES: &[&str] = &[
    "Data Engineering",
    "Marketing Analytics",
    "Growth",
    "Mobile Engineering",
    "Platform",
    "Security",
    "Customer Success",
    "Product Analytics",
    "Web Engineering",
    "Data Science",
    "Lifecycle Marketing",
    "Payments",
    "Finance",
    "Support",
    "Sales Operations",
    "QA",
    "Contractors",
    "Privacy & Compliance",
    "Infrastructure",
    "Partnerships",
    "Design",
    "Content",
    "Executives",
    "Workspace Admins",
];

/// Catalog entries: (catalog id, name, slug, description, category, cloud event source).
const CATALOG: &[(&str, &str, &str, &str, &str, bool)] = &[
    (
        "IqDTy1TpoU",
        "Javascript",
        "javascript",
        "Analytics.js, the JavaScript library for tracking website visitors.",
        "Website",
        false,
    ),
    (
        "UBrsG9RVzw",
        "iOS",
        "ios",
        "The Analytics for iOS library for native Apple apps.",
        "Mobile",
        false,
    ),
    (
        "V6ynUvQgbc",
        "Android",
        "android",
        "The Analytics for Android library for native Android apps.",
        "Mobile",
        false,
    ),
    (
        "xqegKCQA0W",
        "HTTP API",
        "http-api",
        "Send data to Segment from any device or server over HTTP.",
        "Server",
        false,
    ),
    (
        "yMu7LWoGzj",
        "Node.js",
        "nodejs",
        "The Analytics for Node.js library for server-side tracking.",
        "Server",
        false,
    ),
    (
        "Fd4Ox9bZVg",
        "Python",
        "python",
        "The Analytics for Python library for server-side tracking.",
        "Server",
        false,
    ),
    (
        "9TYqEh3nMe",
        "React Native",
        "react-native",
        "The Analytics for React Native library for cross-platform apps.",
        "Mobile",
        false,
    ),
    (
        "WcLx8iF2pA",
        "Ruby",
        "ruby",
        "The Analytics for Ruby library for server-side tracking.",
        "Server",
        false,
    ),
    (
        "Kd2nS6uHtR",
        "Go",
        "go",
        "The Analytics for Go library for server-side tracking.",
        "Server",
        false,
    ),
    (
        "Ju3vB7qLxe",
        "Java",
        "java",
        "The Analytics for Java library for server-side tracking.",
        "Server",
        false,
    ),
    (
        "zPk4Ya8GmT",
        "Stripe",
        "stripe",
        "Import payments, subscriptions and customer objects from Stripe.",
        "Payments",
        true,
    ),
];

/// Source base names and the catalog entry (index into `CATALOG`) each is built from.
const SOURCE_BASES: &[(&str, usize)] = &[
    ("Marketing Site", 0),
    ("Web App", 0),
    ("iOS App", 1),
    ("Android App", 2),
    ("Orders API", 3),
    ("Billing Service", 4),
    ("Data Pipeline", 5),
    ("Docs Site", 0),
    ("React Native App", 6),
    ("Partner Webhooks", 3),
    ("Checkout", 0),
    ("Backend Events", 4),
    ("ML Features", 5),
    ("Rails Monolith", 7),
    ("Search Service", 8),
    ("Payments Service", 9),
    ("Stripe Billing", 10),
    ("Support Portal", 0),
];

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

/// Hands out unique emails: `first.last@domain`, then `first.last2@domain`, ...
#[derive(Default)]
struct EmailBook {
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
    let sources = generate_sources(&mut rng, &workspace.id, sizes.sources);
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
    let flow = generate_flow(&mut flow_rng, sizes, &workspace.id, &sources, &users);
    WorkspaceState::new(
        workspace, roles, users, groups, invites, sources, labels, flow,
    )
}

/// Destination catalog entries: (catalog id, name, slug, category).
const DESTINATION_CATALOG: &[(&str, &str, &str, &str)] = &[
    (
        "60ad61f9ff47a16b8fb7b5d9",
        "Google Analytics 4 Cloud",
        "google-analytics-4-cloud",
        "Analytics",
    ),
    (
        "54521fd725e721e32a72eec6",
        "Amplitude",
        "amplitude",
        "Analytics",
    ),
    (
        "54521fd925e721e32a72eee1",
        "Mixpanel",
        "mixpanel",
        "Analytics",
    ),
    (
        "5d2d8f56f159f30001b3c3a9",
        "Braze",
        "braze",
        "Marketing Automation",
    ),
    (
        "54521fd925e721e32a72eee8",
        "Webhooks",
        "webhooks",
        "Raw Data",
    ),
    (
        "54521fd525e721e32a72ee8f",
        "Amazon S3",
        "amazon-s3",
        "Raw Data",
    ),
    (
        "54521fdb25e721e32a72ef0a",
        "Salesforce",
        "salesforce",
        "CRM",
    ),
    (
        "5d11c0a9d7c01c0001c3d1f3",
        "Facebook Conversions API",
        "facebook-conversions-api",
        "Advertising",
    ),
];

/// Warehouse catalog entries: (catalog id, name, slug).
const WAREHOUSE_CATALOG: &[(&str, &str, &str)] = &[
    ("aea3b2e7-snowflake", "Snowflake", "snowflake"),
    ("1a2b3c4d-bigquery", "BigQuery", "bigquery"),
    ("f8e7d6c5-redshift", "Redshift", "redshift"),
    ("0c9d8e7f-postgres", "Postgres", "postgres"),
];

const FUNCTION_NAMES: &[&str] = &[
    "Enrich Orders",
    "Zendesk Tickets",
    "Mask PII",
    "Forward to Data Lake",
    "Stripe Webhook",
    "Score Leads",
    "Drop Test Events",
    "Slack Alerts",
];

const TRACKING_PLAN_NAMES: &[&str] = &[
    "Web Events",
    "Mobile Events",
    "Server Events",
    "Checkout Funnel",
    "Marketing Attribution",
];

/// The function types, in the order `GET /functions?resourceType=…` is asked for them.
pub(crate) const FUNCTION_TYPES: &[&str] = &[
    "DESTINATION",
    "SOURCE",
    "INSERT_DESTINATION",
    "INSERT_SOURCE",
    "INSERT_TRANSFORMATION",
];

/// A plausible timestamp in 2025, as Segment writes them.
pub(crate) fn random_timestamp(rng: &mut Rng, year: u32) -> String {
    format!(
        "{year}-{:02}-{:02}T{:02}:{:02}:{:02}.000Z",
        rng.u32(1..=12),
        rng.u32(1..=28),
        rng.u32(0..24),
        rng.u32(0..60),
        rng.u32(0..60)
    )
}

/// A random secret-looking value of `len` characters.
pub(crate) fn random_secret(rng: &mut Rng, len: usize) -> String {
    random_alphanumeric(rng, len)
}

pub(crate) fn destination_metadata(index: usize) -> Value {
    let (id, name, slug, category) = DESTINATION_CATALOG[index % DESTINATION_CATALOG.len()];
    json!({
        "id": id,
        "name": name,
        "slug": slug,
        "description": format!("Send your Segment data to {name}."),
        "status": "PUBLIC",
        "categories": [category],
        "website": format!("https://www.{slug}.com"),
        "logos": {
            "default": format!("https://cdn.filepicker.io/api/file/{id}-default"),
            "mark": format!("https://cdn.filepicker.io/api/file/{id}-mark"),
        },
        "supportedMethods": {"track": true, "identify": true, "page": true, "group": false, "alias": false},
        "supportedPlatforms": {"browser": true, "server": true, "mobile": false},
        "supportedFeatures": {"cloudModeInstances": "*", "deviceModeInstances": "0", "replay": false},
        "options": [],
        "actions": [],
        "presets": [],
    })
}

/// Settings of a new destination of catalog entry `index`, secrets included.
pub(crate) fn destination_settings(rng: &mut Rng, index: usize) -> Map<String, Value> {
    let secret = |rng: &mut Rng, n| Value::String(random_secret(rng, n));
    let mut m = Map::new();
    match index % DESTINATION_CATALOG.len() {
        0 => {
            m.insert(
                "measurementId".into(),
                json!(format!("G-{}", random_secret(rng, 10))),
            );
            m.insert("apiSecret".into(), secret(rng, 22));
        }
        1 => {
            m.insert("apiKey".into(), secret(rng, 32));
            m.insert("secretKey".into(), secret(rng, 32));
            m.insert("endpoint".into(), json!("north_america"));
        }
        2 => {
            m.insert("token".into(), secret(rng, 32));
            m.insert("apiSecret".into(), secret(rng, 32));
            m.insert("people".into(), json!(true));
        }
        3 => {
            m.insert("restApiKey".into(), secret(rng, 36));
            m.insert("appIdentifier".into(), json!(random_id(rng)));
            m.insert(
                "restEndpoint".into(),
                json!("https://rest.iad-01.braze.com"),
            );
        }
        4 => {
            m.insert(
                "webhooks".into(),
                json!([{"url": "https://hooks.acme.io/segment", "headers": [{"key": "Authorization", "value": format!("Bearer {}", random_secret(rng, 24))}]}]),
            );
            m.insert("sharedSecret".into(), secret(rng, 24));
        }
        5 => {
            m.insert("bucket".into(), json!("acme-segment-logs"));
            m.insert("region".into(), json!("us-west-2"));
            m.insert(
                "iamRoleArn".into(),
                json!("arn:aws:iam::123456789012:role/segment-s3"),
            );
        }
        6 => {
            m.insert(
                "instanceUrl".into(),
                json!("https://acme.my.salesforce.com"),
            );
            m.insert(
                "oauth".into(),
                json!({"clientId": random_id(rng), "clientSecret": random_secret(rng, 40), "refreshToken": random_secret(rng, 60)}),
            );
        }
        _ => {
            m.insert(
                "pixelId".into(),
                json!(format!("{}", rng.u64(100_000_000_000..999_999_999_999))),
            );
            m.insert("accessToken".into(), secret(rng, 48));
        }
    }
    m
}

pub(crate) fn warehouse_metadata(index: usize) -> Value {
    let (id, name, slug) = WAREHOUSE_CATALOG[index % WAREHOUSE_CATALOG.len()];
    json!({
        "id": id,
        "name": name,
        "slug": slug,
        "description": format!("Sync Segment data to {name}."),
        "logos": {"default": format!("https://cdn.filepicker.io/api/file/{id}-default")},
        "options": [],
    })
}

/// Settings of a new warehouse of catalog entry `index`, its credential included.
pub(crate) fn warehouse_settings(rng: &mut Rng, index: usize, n: usize) -> Map<String, Value> {
    let (_, name, slug) = WAREHOUSE_CATALOG[index % WAREHOUSE_CATALOG.len()];
    let mut m = Map::new();
    m.insert("name".into(), json!(format!("{name} {n}")));
    match slug {
        "bigquery" => {
            m.insert("project".into(), json!("acme-analytics"));
            m.insert("location".into(), json!("US"));
            m.insert(
                "credentials".into(),
                json!(format!(
                    "{{\"type\":\"service_account\",\"private_key\":\"{}\"}}",
                    random_secret(rng, 64)
                )),
            );
        }
        _ => {
            let host = match slug {
                "snowflake" => format!("acme{n}.us-east-1.snowflakecomputing.com"),
                "redshift" => format!("acme-{n}.c2abc.us-west-2.redshift.amazonaws.com"),
                _ => format!("pg-{n}.internal.acme.io"),
            };
            m.insert("host".into(), json!(host));
            m.insert(
                "port".into(),
                json!(if slug == "redshift" { 5439 } else { 5432 }),
            );
            m.insert("database".into(), json!("segment"));
            m.insert("username".into(), json!("segment_loader"));
            m.insert("password".into(), json!(random_password(rng)));
        }
    }
    m
}

/// A fresh warehouse password.
pub(crate) fn random_password(rng: &mut Rng) -> String {
    random_secret(rng, 24)
}

/// The code of a function: deterministic from its type and a version number.
pub(crate) fn function_code(resource_type: &str, version: u32) -> String {
    let handler = match resource_type {
        "SOURCE" => {
            "async function onRequest(request, settings) {\n  const body = request.json();\n  Segment.track({ event: body.type, userId: body.user, properties: body });\n}"
        }
        "INSERT_TRANSFORMATION" => {
            "async function onTrack(event, settings) {\n  delete event.properties.email;\n  return event;\n}"
        }
        _ => {
            "async function onTrack(event, settings) {\n  await fetch(settings.endpoint, {\n    method: 'POST',\n    headers: { Authorization: `Bearer ${settings.apiKey}` },\n    body: JSON.stringify(event),\n  });\n}"
        }
    };
    format!("// version {version}\n{handler}\n")
}

fn function_settings() -> Vec<FunctionSetting> {
    vec![
        FunctionSetting {
            name: "apiKey".into(),
            label: "API Key".into(),
            description: "Key of the receiving service.".into(),
            kind: "STRING".into(),
            required: true,
            sensitive: true,
        },
        FunctionSetting {
            name: "endpoint".into(),
            label: "Endpoint".into(),
            description: "Where events are sent.".into(),
            kind: "STRING".into(),
            required: false,
            sensitive: false,
        },
    ]
}

/// A new function of `resource_type`.
pub(crate) fn new_function(
    rng: &mut Rng,
    id: String,
    display_name: String,
    resource_type: &str,
    created_by: String,
) -> Function {
    let created_at = random_timestamp(rng, 2025);
    Function {
        catalog_id: random_id(rng),
        logo_url: "https://cdn.segment.com/functions/logo.svg".into(),
        description: format!("{display_name} ({})", resource_type.to_ascii_lowercase()),
        display_name,
        resource_type: resource_type.to_owned(),
        created_by,
        deployed_at: Some(created_at.clone()),
        created_at,
        code: function_code(resource_type, 1),
        settings: function_settings(),
        preview_webhook_url: if resource_type == "SOURCE" {
            format!("https://fn.segmentapis.com/?b={}", random_secret(rng, 20))
        } else {
            String::new()
        },
        batch_max_count: 0,
        is_latest_version: true,
        id,
    }
}

fn generate_flow(
    rng: &mut Rng,
    sizes: Sizes,
    workspace_id: &str,
    sources: &[Source],
    users: &[User],
) -> DataFlow {
    let mut flow = DataFlow::default();
    if !sources.is_empty() {
        for i in 0..sizes.destinations {
            let catalog = rng.usize(..DESTINATION_CATALOG.len());
            let source = pick(rng, sources);
            let (_, catalog_name, _, _) = DESTINATION_CATALOG[catalog];
            flow.destinations.push(Destination {
                id: random_id(rng),
                name: format!("{catalog_name} for {}", source.name),
                enabled: rng.u32(..100) < 90 || i == 0,
                metadata: destination_metadata(catalog),
                source_id: source.id.clone(),
                settings: destination_settings(rng, catalog),
            });
        }
    }
    for i in 0..sizes.warehouses {
        let catalog = i % WAREHOUSE_CATALOG.len();
        let count = rng.usize(1..=4);
        let connected = distinct_indices(rng, sources.len(), count);
        flow.warehouses.push(Warehouse {
            id: random_id(rng),
            metadata: warehouse_metadata(catalog),
            workspace_id: workspace_id.to_owned(),
            enabled: true,
            settings: warehouse_settings(rng, catalog, i + 1),
            connected_source_ids: connected
                .into_iter()
                .map(|j| sources[j].id.clone())
                .collect(),
        });
    }
    for i in 0..sizes.functions {
        let resource_type = FUNCTION_TYPES[i % FUNCTION_TYPES.len()];
        let name = FUNCTION_NAMES[i % FUNCTION_NAMES.len()];
        let display_name = if i < FUNCTION_NAMES.len() {
            name.to_owned()
        } else {
            format!("{name} {}", i / FUNCTION_NAMES.len() + 1)
        };
        let created_by = users
            .get(rng.usize(..users.len().max(1)))
            .map_or_else(String::new, |u| u.id.clone());
        let id = random_id(rng);
        flow.functions.push(new_function(
            rng,
            id,
            display_name,
            resource_type,
            created_by,
        ));
    }
    for i in 0..sizes.tracking_plans {
        let base = TRACKING_PLAN_NAMES[i % TRACKING_PLAN_NAMES.len()];
        let name = if i < TRACKING_PLAN_NAMES.len() {
            base.to_owned()
        } else {
            format!("{base} {}", i / TRACKING_PLAN_NAMES.len() + 1)
        };
        let count = rng.usize(1..=3);
        let connected = distinct_indices(rng, sources.len(), count);
        let created_at = random_timestamp(rng, 2024);
        flow.tracking_plans.push(TrackingPlan {
            id: format!("tp_{}", random_id(rng)),
            slug: slugify(&name),
            description: format!("Events and properties of the {name} plan."),
            name,
            kind: "LIVE".into(),
            updated_at: random_timestamp(rng, 2025),
            created_at,
            source_ids: connected
                .into_iter()
                .map(|j| sources[j].id.clone())
                .collect(),
        });
    }
    flow
}

fn label_definitions() -> Vec<Label> {
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

fn generate_sources(rng: &mut Rng, workspace_id: &str, count: usize) -> Vec<Source> {
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
        });
    }
    sources
}

fn generate_users(g: &mut Gen<'_>, emails: &mut EmailBook, count: usize) -> Vec<User> {
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

fn generate_invites(rng: &mut Rng, emails: &mut EmailBook, count: usize) -> Vec<String> {
    (0..count)
        .map(|_| {
            let (_, local) = random_person(rng);
            let domain = random_domain(rng, 30);
            emails.email(&local, domain)
        })
        .collect()
}

fn generate_groups(
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
