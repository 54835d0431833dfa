//! Destinations, warehouses, functions and tracking plans: where the data goes. Drawn from a
//! generator of their own (see [`generate`](super::generate)).

use fastrand::Rng;
use serde_json::{Map, Value, json};

use crate::state::{
    DataFlow, Destination, Function, FunctionSetting, Source, TrackingPlan, User, Warehouse,
};

use super::access::slugify;
use super::{Sizes, distinct_indices, pick, random_alphanumeric, random_id};

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

pub(super) fn generate_flow(
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
                filters: Vec::new(),
                subscriptions: Vec::new(),
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
