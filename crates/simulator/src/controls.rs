//! The data controls of the simulated workspace: destination filters, Actions subscriptions,
//! source schema settings and transformations, with their generation.
//!
//! Fields follow Segment's Go SDK (`segmentio/public-api-sdk-go`):
//! `api/model_destination_filter_v1.go` (`DestinationFilterV1`) and
//! `api/model_destination_subscription.go` (`DestinationSubscription`); schema settings as
//! `listSchemaSettingsInSource` answers them in the v32 spec (`openapi.yaml`) and
//! `api/model_source_settings_output_v1.go`; `api/model_transformation_v1.go`
//! (`TransformationV1`, listed by `GET /transformations` in `api/api_transformations.go`);
//! `api/model_reverse_etl_model.go` (`ReverseEtlModel`, listed by `GET /reverse-etl-models`
//! in `api/api_reverse_etl.go`, `data.models`).

use fastrand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::generate::{random_id, random_secret, random_timestamp};
use crate::state::Destination;

/// A destination filter (`DestinationFilterV1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DestinationFilter {
    /// Filter id.
    pub id: String,
    /// The source whose events it filters.
    pub source_id: String,
    /// The destination it filters for.
    pub destination_id: String,
    /// The FQL condition selecting the events it applies to.
    #[serde(rename = "if")]
    pub condition: String,
    /// What it does (`DestinationFilterActionV1`): `DROP`, `SAMPLE`, `DROP_PROPERTIES`,
    /// `ALLOW_PROPERTIES` with their `fields`, `percent` and `path`.
    pub actions: Vec<Value>,
    /// Title.
    pub title: String,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Whether it is active.
    pub enabled: bool,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

/// An Actions subscription of a destination (`DestinationSubscription`): the trigger and the
/// field mapping that decide what the destination receives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    /// Subscription id.
    pub id: String,
    /// Name.
    pub name: String,
    /// The destination action it triggers.
    pub action_id: String,
    /// The action's slug, e.g. `trackEvent`.
    pub action_slug: String,
    /// The destination instance.
    pub destination_id: String,
    /// Whether it is enabled.
    pub enabled: bool,
    /// The mapping: destination field → directive (`{"@path": "$.properties.email"}`) or
    /// literal; may hold an action's credentials.
    pub settings: serde_json::Map<String, Value>,
    /// The FQL trigger, e.g. `type = "track"`.
    pub trigger: String,
}

/// The filters a destination starts with: none to three of the usual kinds.
pub(crate) fn generate_filters(rng: &mut Rng, d: &Destination) -> Vec<DestinationFilter> {
    let n = match rng.u32(..10) {
        0..=2 => 0,
        3..=6 => 1,
        7..=8 => 2,
        _ => 3,
    };
    let first = rng.usize(..FILTER_TEMPLATES.len());
    (0..n)
        .map(|i| {
            new_filter(
                rng,
                d,
                FILTER_TEMPLATES[(first + i) % FILTER_TEMPLATES.len()],
            )
        })
        .collect()
}

/// (title, condition, action)
type FilterTemplate = (&'static str, &'static str, fn() -> Value);

const FILTER_TEMPLATES: [FilterTemplate; 4] = [
    ("Drop PII properties", "all", || {
        json!({"type": "DROP_PROPERTIES", "fields": {"properties": ["email", "phone"],
               "context": ["ip"], "traits": ["address"]}})
    }),
    (
        "Block test events",
        "event = \"Test Event\"",
        || json!({"type": "DROP"}),
    ),
    (
        "Sample page views",
        "type = \"page\"",
        || json!({"type": "SAMPLE", "percent": 0.1, "path": "userId"}),
    ),
    (
        "Allow product fields only",
        "type = \"track\"",
        || json!({"type": "ALLOW_PROPERTIES", "fields": {"properties": ["plan", "revenue", "sku"]}}),
    ),
];

/// A new enabled filter of `template` on `d`.
fn new_filter(rng: &mut Rng, d: &Destination, template: FilterTemplate) -> DestinationFilter {
    let (title, condition, action) = template;
    let created = random_timestamp(rng, 2025);
    DestinationFilter {
        id: random_id(rng),
        source_id: d.source_id.clone(),
        destination_id: d.id.clone(),
        condition: condition.to_owned(),
        actions: vec![action()],
        title: title.to_owned(),
        description: Some(format!("{title} before they reach {}", d.name)),
        enabled: true,
        created_at: created.clone(),
        updated_at: created,
    }
}

/// A filter dropping `fields` from the properties of every event, for the `add` mutation.
pub(crate) fn drop_fields_filter(
    rng: &mut Rng,
    d: &Destination,
    title: &str,
    fields: &[String],
) -> DestinationFilter {
    let mut f = new_filter(rng, d, FILTER_TEMPLATES[0]);
    f.title = title.to_owned();
    f.description = None;
    f.actions = vec![json!({"type": "DROP_PROPERTIES", "fields": {"properties": fields}})];
    f
}

/// The actions of an Actions destination: (action id, slug, name, trigger).
const ACTIONS: [(&str, &str, &str, &str); 3] = [
    (
        "sJbt1hjSTkgjjmBwB3XEDf",
        "trackEvent",
        "Track Event",
        "type = \"track\"",
    ),
    (
        "ePbq3yhXZCBpCujV8DzbPp",
        "updateUserProfile",
        "Update User Profile",
        "type = \"identify\"",
    ),
    (
        "oqeHfTXbAiHTYK9Pw7XwQ8",
        "trackPurchase",
        "Track Purchase",
        "event = \"Order Completed\"",
    ),
];

/// The subscriptions a destination starts with: one or two actions, some mapping personal
/// fields (email, phone, address, IP), some carrying an action-level credential.
pub(crate) fn generate_subscriptions(rng: &mut Rng, d: &Destination) -> Vec<Subscription> {
    let n = rng.usize(1..=2);
    let first = rng.usize(..ACTIONS.len());
    (0..n)
        .map(|i| {
            let action = ACTIONS[(first + i) % ACTIONS.len()];
            let mut settings = base_mapping(action.1);
            if rng.u32(..3) == 0 {
                settings.insert("email".into(), json!({"@path": "$.traits.email"}));
            }
            if rng.u32(..4) == 0 {
                settings.insert("phone".into(), json!({"@path": "$.traits.phone"}));
            }
            if rng.u32(..6) == 0 {
                settings.insert("address".into(), json!({"@path": "$.traits.address"}));
            }
            if rng.u32(..6) == 0 {
                settings.insert("ip".into(), json!({"@path": "$.context.ip"}));
            }
            if rng.u32(..5) == 0 {
                settings.insert("api_secret".into(), json!(random_secret(rng, 32)));
            }
            new_subscription(rng, d, action, settings)
        })
        .collect()
}

fn base_mapping(slug: &str) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    m.insert("external_id".into(), json!({"@path": "$.userId"}));
    match slug {
        "trackEvent" => {
            m.insert("name".into(), json!({"@path": "$.event"}));
            m.insert("properties".into(), json!({"@path": "$.properties.plan"}));
        }
        "trackPurchase" => {
            m.insert("products".into(), json!({"@path": "$.properties.products"}));
            m.insert("revenue".into(), json!({"@path": "$.properties.revenue"}));
        }
        _ => {
            m.insert("first_name".into(), json!({"@path": "$.traits.first_name"}));
        }
    }
    m.insert("enable_batching".into(), json!(false));
    m
}

fn new_subscription(
    rng: &mut Rng,
    d: &Destination,
    (action_id, slug, name, trigger): (&str, &str, &str, &str),
    settings: serde_json::Map<String, Value>,
) -> Subscription {
    Subscription {
        id: random_id(rng),
        name: name.to_owned(),
        action_id: action_id.to_owned(),
        action_slug: slug.to_owned(),
        destination_id: d.id.clone(),
        enabled: true,
        settings,
        trigger: trigger.to_owned(),
    }
}

/// A new subscription of `d` mapping `field` (e.g. `email`) from the event's traits, for the
/// `add` mutation.
pub(crate) fn mapping_subscription(
    rng: &mut Rng,
    d: &Destination,
    name: &str,
    field: &str,
    settings: Option<serde_json::Map<String, Value>>,
) -> Subscription {
    let mut mapping = base_mapping("updateUserProfile");
    mapping.insert(
        field.to_owned(),
        json!({"@path": format!("$.traits.{field}")}),
    );
    if let Some(extra) = settings {
        mapping.extend(extra);
    }
    let mut s = new_subscription(rng, d, ACTIONS[1], mapping);
    s.name = name.to_owned();
    s
}

/// A source's schema settings (`SourceSettingsOutputV1`): what happens to events and traits a
/// connected tracking plan does not list, and where blocked events go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SchemaSettings {
    /// Track calls.
    pub track: TrackSettings,
    /// Identify calls.
    pub identify: TraitSettings,
    /// Group calls.
    pub group: TraitSettings,
    /// Source id blocked events are forwarded to (`""`: none).
    pub forwarding_blocked_events_to: String,
    /// Source id violations are forwarded to (`""`: none).
    pub forwarding_violations_to: String,
}

/// The track part of [`SchemaSettings`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrackSettings {
    /// Whether events the plan does not list are let through.
    pub allow_unplanned_events: bool,
    /// Whether properties the plan does not list are let through.
    pub allow_unplanned_event_properties: bool,
    /// Whether events with violations are let through.
    pub allow_event_on_violations: bool,
    /// Whether properties with violations are let through.
    pub allow_properties_on_violations: bool,
    /// `ALLOW`, `BLOCK` or `OMIT_PROPERTIES`.
    pub common_event_on_violations: String,
}

/// The identify and group parts of [`SchemaSettings`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TraitSettings {
    /// Whether traits with violations are let through.
    pub allow_traits_on_violations: bool,
    /// Whether traits the plan does not list are let through.
    pub allow_unplanned_traits: bool,
    /// `ALLOW`, `BLOCK` or `OMIT_TRAITS`.
    pub common_event_on_violations: String,
}

impl Default for SchemaSettings {
    /// Segment's defaults: everything let through.
    fn default() -> Self {
        SchemaSettings::with(true)
    }
}

impl SchemaSettings {
    /// Unplanned events and traits let through (`allow`) or blocked.
    pub(crate) fn with(allow: bool) -> Self {
        let common = if allow { "ALLOW" } else { "BLOCK" }.to_owned();
        let traits = TraitSettings {
            allow_traits_on_violations: true,
            allow_unplanned_traits: allow,
            common_event_on_violations: common.clone(),
        };
        SchemaSettings {
            track: TrackSettings {
                allow_unplanned_events: allow,
                allow_unplanned_event_properties: allow,
                allow_event_on_violations: allow,
                allow_properties_on_violations: true,
                common_event_on_violations: common,
            },
            identify: traits.clone(),
            group: traits,
            forwarding_blocked_events_to: String::new(),
            forwarding_violations_to: String::new(),
        }
    }
}

/// A transformation (`TransformationV1`): what it does to a source's matching events before
/// they reach destinations (drop them, rename, allow only some properties, hash some).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Transformation {
    /// Transformation id.
    pub id: String,
    /// Name.
    pub name: String,
    /// The source whose events it transforms.
    pub source_id: String,
    /// The destination (catalog) it applies to only, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_metadata_id: Option<String>,
    /// Whether it is enabled.
    pub enabled: bool,
    /// FQL matching the events it applies to.
    #[serde(rename = "if")]
    pub condition: String,
    /// Drop matching events entirely.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop: Option<bool>,
    /// Rename matching track events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_event_name: Option<String>,
    /// Only these properties pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_properties: Option<Vec<String>>,
    /// Hash these property paths (`{hashingKey, paths}`); the key is a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_properties_configuration: Option<Value>,
}

/// A reverse ETL model (`ReverseEtlModel`): a SQL query run on a warehouse source, whose rows
/// its subscriptions send to destinations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReverseEtlModel {
    /// Model id.
    pub id: String,
    /// The source (a warehouse source) it queries.
    pub source_id: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Whether its syncs run.
    pub enabled: bool,
    /// The SQL query.
    pub query: String,
    /// The column identifying a row.
    pub query_identifier_column: String,
}

/// A new reverse ETL model.
pub(crate) fn new_reverse_etl_model(
    rng: &mut Rng,
    source_id: &str,
    name: &str,
    query: &str,
) -> ReverseEtlModel {
    ReverseEtlModel {
        id: random_id(rng),
        source_id: source_id.to_owned(),
        name: name.to_owned(),
        description: format!("{name}, synced to the CRM"),
        enabled: true,
        query: query.to_owned(),
        query_identifier_column: "user_id".to_owned(),
    }
}

/// Reverse ETL models: about one per 50 sources (at least one in all).
fn generate_reverse_etl_models(
    rng: &mut Rng,
    sources: &[crate::state::Source],
) -> Vec<ReverseEtlModel> {
    let n = (sources.len() / 50).max(1.min(sources.len()));
    (0..n)
        .map(|i| {
            let source = &sources[(i * 50 + 3) % sources.len()];
            new_reverse_etl_model(
                rng,
                &source.id,
                &format!("Active customers {i}"),
                "SELECT user_id, plan, last_seen FROM analytics.customers WHERE active",
            )
        })
        .collect()
}

/// Transformations of the workspace: about one source in ten has one (at least two in all).
pub(crate) fn generate_transformations(
    rng: &mut Rng,
    sources: &[crate::state::Source],
) -> Vec<Transformation> {
    let n = (sources.len() / 10).max(2.min(sources.len()));
    (0..n)
        .map(|i| {
            let source = &sources[(i * 10) % sources.len()];
            let mut t = Transformation {
                id: random_id(rng),
                name: String::new(),
                source_id: source.id.clone(),
                destination_metadata_id: None,
                enabled: true,
                condition: "type = \"identify\"".to_owned(),
                drop: None,
                new_event_name: None,
                allow_properties: None,
                hash_properties_configuration: None,
            };
            match i % 3 {
                0 => {
                    t.name = format!("Hash emails of {}", source.name);
                    t.hash_properties_configuration = Some(json!({
                        "hashingKey": random_secret(rng, 32),
                        "paths": ["traits.email", "traits.phone"],
                    }));
                }
                1 => {
                    t.name = format!("Drop debug events of {}", source.name);
                    t.condition = "event = \"Debug\"".to_owned();
                    t.drop = Some(true);
                }
                _ => {
                    t.name = format!("Allow product fields of {}", source.name);
                    t.condition = "type = \"track\"".to_owned();
                    t.allow_properties = Some(vec!["plan".into(), "sku".into()]);
                }
            }
            t
        })
        .collect()
}

/// Seed salt of the controls' own generator, so adding them leaves the rest of a seed's
/// workspace as it was.
pub(crate) const CONTROLS_SEED_SALT: u64 = 0x0c0b_7201_5a1e_d00d;

/// Fills every destination's filters and subscriptions from a generator of their own.
pub(crate) fn generate_controls(
    seed: u64,
    sources: &mut [crate::state::Source],
    destinations: &mut [Destination],
) -> (Vec<Transformation>, Vec<ReverseEtlModel>) {
    let mut rng = Rng::with_seed(seed ^ CONTROLS_SEED_SALT);
    for d in destinations.iter_mut() {
        d.filters = generate_filters(&mut rng, d);
        d.subscriptions = generate_subscriptions(&mut rng, d);
    }
    // Most sources keep Segment's defaults; some block what their plan does not list.
    for s in sources.iter_mut() {
        s.schema_settings = SchemaSettings::with(rng.u32(..3) != 0);
    }
    let transformations = generate_transformations(&mut rng, sources);
    (
        transformations,
        generate_reverse_etl_models(&mut rng, sources),
    )
}
