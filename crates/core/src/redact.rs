//! Secret redaction: every secret-bearing field is replaced by a fingerprint before a resource
//! leaves the collector, so no later stage (store, diff, logs, alerts) ever holds a clear secret.
//!
//! A fingerprint is `sha256:` followed by the first 12 hex digits of the secret's SHA-256. It is
//! stable, so a rotation still shows as a change, and too short and too one-way to recover a
//! random key from. Values that are not strings are fingerprinted over their JSON text.
//!
//! Policies are data ([`SecretRule`]); adding a secret-bearing field of a new kind is one more rule.

use serde_json::Value;

use crate::model::{ResourceKind, sha256_hex};

/// Prefix marking a fingerprinted value.
pub const FINGERPRINT_PREFIX: &str = "sha256:";

/// Fingerprint of one secret value.
pub fn fingerprint(secret: &str) -> String {
    format!(
        "{FINGERPRINT_PREFIX}{}",
        &sha256_hex(secret.as_bytes())[..12]
    )
}

/// One step of a field path.
#[derive(Debug, Clone, Copy)]
pub enum Step {
    /// An object key.
    Key(&'static str),
    /// Every element of an array.
    Each,
}

/// Where secrets live in a resource kind.
#[derive(Debug, Clone, Copy)]
pub enum SecretRule {
    /// The value(s) at a fixed path are secrets (e.g. a source's `writeKeys[*]`).
    Path {
        /// Kind the rule applies to.
        kind: ResourceKind,
        /// Path from the resource root.
        path: &'static [Step],
    },
    /// Under a free-form object (e.g. `settings`), any value whose key looks secret (see
    /// [`looks_secret`]) is a secret, at any depth.
    SecretKeysUnder {
        /// Kind the rule applies to.
        kind: ResourceKind,
        /// Path from the resource root to the free-form object.
        path: &'static [Step],
    },
    /// The path leads to entries (objects) that describe themselves as sensitive
    /// (`"sensitive": true` or `"secret": true`, as function settings do): every value of such
    /// an entry except its description fields ([`ENTRY_DESCRIPTION_FIELDS`]) is a secret.
    SensitiveEntries {
        /// Kind the rule applies to.
        kind: ResourceKind,
        /// Path from the resource root to the entries (usually ending in [`Step::Each`]).
        path: &'static [Step],
    },
}

/// The fields of a sensitive entry that describe it rather than hold its value.
pub const ENTRY_DESCRIPTION_FIELDS: &[&str] = &[
    "name",
    "label",
    "description",
    "type",
    "required",
    "sensitive",
    "secret",
];

/// Where a function's source code lives; fingerprinted unless the configuration keeps it
/// (`[collect] function_code = true`).
pub const FUNCTION_CODE: SecretRule = SecretRule::Path {
    kind: ResourceKind::Function,
    path: &[Step::Key("code")],
};

/// The rules segwatch applies: write keys; secret-looking keys in the settings of sources
/// (cloud sources keep credentials there), destinations (API keys) and warehouses (passwords,
/// private keys); function code ([`FUNCTION_CODE`]); function settings marked sensitive; and
/// secret-looking keys in audit events.
pub const DEFAULT_RULES: &[SecretRule] = &[
    SecretRule::Path {
        kind: ResourceKind::Source,
        path: &[Step::Key("writeKeys"), Step::Each],
    },
    SecretRule::SecretKeysUnder {
        kind: ResourceKind::Source,
        path: &[Step::Key("settings")],
    },
    SecretRule::SecretKeysUnder {
        kind: ResourceKind::Destination,
        path: &[Step::Key("settings")],
    },
    SecretRule::SecretKeysUnder {
        kind: ResourceKind::Warehouse,
        path: &[Step::Key("settings")],
    },
    // Actions mappings may carry an action's own credential (`api_secret`…) at any depth.
    SecretRule::SecretKeysUnder {
        kind: ResourceKind::DestinationSubscription,
        path: &[Step::Key("settings")],
    },
    // A transformation's hashing key (`hashPropertiesConfiguration.hashingKey`).
    SecretRule::SecretKeysUnder {
        kind: ResourceKind::Transformation,
        path: &[Step::Key("hashPropertiesConfiguration")],
    },
    FUNCTION_CODE,
    SecretRule::SensitiveEntries {
        kind: ResourceKind::Function,
        path: &[Step::Key("settings"), Step::Each],
    },
    SecretRule::SecretKeysUnder {
        kind: ResourceKind::Function,
        path: &[Step::Key("settings")],
    },
    // Audit events name tokens by id only; a secret-looking field the API may add is kept
    // out all the same.
    SecretRule::SecretKeysUnder {
        kind: ResourceKind::AuditEvent,
        path: &[],
    },
];

/// A set of [`SecretRule`]s applied to collected resources.
#[derive(Debug, Clone)]
pub struct SecretPolicy {
    rules: Vec<SecretRule>,
}

impl Default for SecretPolicy {
    fn default() -> Self {
        SecretPolicy {
            rules: DEFAULT_RULES.to_vec(),
        }
    }
}

impl SecretPolicy {
    /// A policy with exactly these rules.
    pub fn new(rules: Vec<SecretRule>) -> Self {
        SecretPolicy { rules }
    }

    /// The default policy, except that function code is stored in clear when `keep` is true
    /// (`[collect] function_code`): teams that review code changes in segwatch opt in.
    pub fn keeping_function_code(keep: bool) -> Self {
        let mut policy = SecretPolicy::default();
        if keep {
            policy.rules.retain(|r| !is_function_code(r));
        }
        policy
    }

    /// Replaces every secret in `value` (a resource of `kind`) by its fingerprint, in place.
    pub fn redact(&self, kind: ResourceKind, value: &mut Value) {
        for rule in &self.rules {
            match *rule {
                SecretRule::Path { kind: k, path } if k == kind => {
                    visit(value, path, &mut fingerprint_value);
                }
                SecretRule::SecretKeysUnder { kind: k, path } if k == kind => {
                    visit(value, path, &mut redact_secret_keys);
                }
                SecretRule::SensitiveEntries { kind: k, path } if k == kind => {
                    visit(value, path, &mut redact_sensitive_entry);
                }
                _ => {}
            }
        }
    }
}

/// Whether an object key names a secret: keys, tokens, secrets, passwords, passphrases,
/// credentials, private keys and authorization headers, in any case and with any separator
/// (`apiKey`, `api_key`, `clientSecret`, `Authorization`).
pub fn looks_secret(key: &str) -> bool {
    let k: String = key
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase();
    const WORDS: &[&str] = &[
        "key",
        "token",
        "secret",
        "password",
        "passwd",
        "passphrase",
        "credential",
        "authorization",
    ];
    WORDS.iter().any(|w| k.contains(w))
}

fn is_function_code(rule: &SecretRule) -> bool {
    matches!(
        rule,
        SecretRule::Path {
            kind: ResourceKind::Function,
            path: [Step::Key("code")]
        }
    )
}

/// An entry that says it is sensitive keeps only the fields describing it in clear.
fn redact_sensitive_entry(entry: &mut Value) {
    let Value::Object(map) = entry else { return };
    let flagged = |field: &str| map.get(field).and_then(Value::as_bool) == Some(true);
    if !(flagged("sensitive") || flagged("secret")) {
        return;
    }
    for (key, child) in map.iter_mut() {
        if !ENTRY_DESCRIPTION_FIELDS.contains(&key.as_str()) {
            fingerprint_value(child);
        }
    }
}

fn visit(value: &mut Value, path: &[Step], apply: &mut dyn FnMut(&mut Value)) {
    match path.split_first() {
        None => apply(value),
        Some((Step::Key(k), rest)) => {
            if let Some(child) = value.as_object_mut().and_then(|o| o.get_mut(*k)) {
                visit(child, rest, apply);
            }
        }
        Some((Step::Each, rest)) => {
            if let Some(items) = value.as_array_mut() {
                for item in items {
                    visit(item, rest, apply);
                }
            }
        }
    }
}

fn fingerprint_value(value: &mut Value) {
    let fp = match &*value {
        Value::Null => return,
        // Already a fingerprint: redaction is idempotent.
        Value::String(s) if is_fingerprint(s) => return,
        Value::String(s) => fingerprint(s),
        other => fingerprint(&other.to_string()),
    };
    *value = Value::String(fp);
}

fn is_fingerprint(s: &str) -> bool {
    s.strip_prefix(FINGERPRINT_PREFIX)
        .is_some_and(|h| h.len() == 12 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn redact_secret_keys(value: &mut Value) {
    match value {
        Value::Object(map) => {
            // A `{key|name: "Authorization", value: "…"}` pair (headers, mappings) names its
            // secret in a sibling field rather than in its own key.
            let names_secret = ["key", "name"].iter().any(|field| {
                map.get(*field)
                    .and_then(Value::as_str)
                    .is_some_and(looks_secret)
            });
            if names_secret && let Some(v) = map.get_mut("value") {
                fingerprint_value(v);
            }
            for (key, child) in map.iter_mut() {
                if looks_secret(key) {
                    fingerprint_value(child);
                } else {
                    redact_secret_keys(child);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_secret_keys),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn write_keys_become_stable_fingerprints() {
        let policy = SecretPolicy::default();
        let mut a = json!({"id": "s1", "writeKeys": ["k-one", "k-two"], "name": "web"});
        policy.redact(ResourceKind::Source, &mut a);
        assert_eq!(
            a["writeKeys"],
            json!([fingerprint("k-one"), fingerprint("k-two")])
        );
        assert!(!a.to_string().contains("k-one"));
        assert_eq!(a["name"], "web");
        // Redacting twice changes nothing, so a stored body can be re-checked safely.
        let before = a.clone();
        policy.redact(ResourceKind::Source, &mut a);
        assert_eq!(a, before);
        // Rotation shows as a different fingerprint.
        assert_ne!(fingerprint("k-one"), fingerprint("k-three"));
    }

    #[test]
    fn secret_looking_settings_are_fingerprinted_at_any_depth() {
        let policy = SecretPolicy::default();
        let mut s = json!({"settings": {"apiKey": "AK", "region": "us",
            "nested": {"client_secret": {"x": 1}, "endpoint": "https://e"},
            "list": [{"password": "pw", "user": "u"}]}});
        policy.redact(ResourceKind::Source, &mut s);
        let text = s.to_string();
        for clear in ["\"AK\"", "\"pw\""] {
            assert!(!text.contains(clear), "{clear} leaked: {text}");
        }
        assert_eq!(s["settings"]["region"], "us");
        assert_eq!(s["settings"]["list"][0]["user"], "u");
        assert!(
            s["settings"]["nested"]["client_secret"]
                .as_str()
                .unwrap()
                .starts_with("sha256:")
        );
    }

    #[test]
    fn destination_and_warehouse_credentials_are_fingerprinted() {
        let policy = SecretPolicy::default();
        let mut d = json!({"id": "d1", "sourceId": "s1", "settings": {"apiKey": "AK-123",
            "region": "eu", "mappings": [{"accessKey": "AC", "event": "Order"}],
            "oauth": {"refreshToken": "RT", "clientId": "c"}}});
        policy.redact(ResourceKind::Destination, &mut d);
        assert_eq!(d["settings"]["apiKey"], json!(fingerprint("AK-123")));
        assert_eq!(d["settings"]["region"], "eu");
        assert_eq!(d["settings"]["mappings"][0]["event"], "Order");
        assert_eq!(d["settings"]["oauth"]["clientId"], "c");
        assert_eq!(d["sourceId"], "s1");
        let text = d.to_string();
        for clear in ["AK-123", "\"AC\"", "\"RT\""] {
            assert!(!text.contains(clear), "{clear} leaked: {text}");
        }
        let mut w = json!({"settings": {"host": "db.acme.io", "port": 5439, "username": "sg",
            "password": "hunter2", "privateKeyPassphrase": "pp", "PRIVATE_KEY": "-----BEGIN"}});
        policy.redact(ResourceKind::Warehouse, &mut w);
        assert_eq!(w["settings"]["host"], "db.acme.io");
        assert_eq!(w["settings"]["username"], "sg");
        assert_eq!(w["settings"]["password"], json!(fingerprint("hunter2")));
        assert!(!w.to_string().contains("hunter2") && !w.to_string().contains("BEGIN"));
    }

    #[test]
    fn mappings_and_hashing_keys_are_fingerprinted_the_mapping_kept() {
        let policy = SecretPolicy::default();
        let mut sub = json!({"id": "sub1", "destinationId": "d1", "settings": {
            "email": {"@path": "$.traits.email"}, "api_secret": "S3CR3T",
            "auth": {"bearer_token": "BT", "region": "eu"}}});
        policy.redact(ResourceKind::DestinationSubscription, &mut sub);
        assert_eq!(sub["settings"]["email"], json!({"@path": "$.traits.email"}));
        assert_eq!(sub["settings"]["api_secret"], json!(fingerprint("S3CR3T")));
        assert_eq!(sub["settings"]["auth"]["region"], "eu");
        assert!(!sub.to_string().contains("S3CR3T") && !sub.to_string().contains("\"BT\""));
        let mut t = json!({"id": "t1", "hashPropertiesConfiguration": {
            "hashingKey": "HK-1", "paths": ["traits.email"]}});
        policy.redact(ResourceKind::Transformation, &mut t);
        assert_eq!(
            t["hashPropertiesConfiguration"]["hashingKey"],
            json!(fingerprint("HK-1"))
        );
        assert_eq!(t["hashPropertiesConfiguration"]["paths"][0], "traits.email");
    }

    #[test]
    fn header_pairs_naming_a_secret_are_fingerprinted() {
        let mut d = json!({"settings": {"webhooks": [{"url": "https://h", "headers": [
            {"key": "Authorization", "value": "Bearer abc"},
            {"key": "X-Team", "value": "growth"}]}]}});
        SecretPolicy::default().redact(ResourceKind::Destination, &mut d);
        let headers = &d["settings"]["webhooks"][0]["headers"];
        assert_eq!(headers[0]["value"], json!(fingerprint("Bearer abc")));
        assert_eq!(headers[1]["value"], "growth");
        assert_eq!(d["settings"]["webhooks"][0]["url"], "https://h");
    }

    #[test]
    fn function_code_and_sensitive_settings() {
        let body = json!({"id": "f1", "code": "async function onTrack() { secret() }",
            "settings": [
                {"name": "apiToken", "label": "API token", "type": "STRING", "required": true,
                 "sensitive": true, "value": "tok-1"},
                {"name": "endpoint", "label": "Endpoint", "type": "STRING", "required": false,
                 "sensitive": false, "value": "https://e"}]});
        let mut redacted = body.clone();
        SecretPolicy::default().redact(ResourceKind::Function, &mut redacted);
        assert_eq!(
            redacted["code"],
            json!(fingerprint("async function onTrack() { secret() }"))
        );
        assert_eq!(
            redacted["settings"][0]["value"],
            json!(fingerprint("tok-1"))
        );
        assert_eq!(redacted["settings"][0]["name"], "apiToken");
        assert_eq!(redacted["settings"][0]["sensitive"], true);
        assert_eq!(redacted["settings"][1]["value"], "https://e");
        // Opting in keeps the code, never the sensitive settings.
        let mut kept = body.clone();
        SecretPolicy::keeping_function_code(true).redact(ResourceKind::Function, &mut kept);
        assert_eq!(kept["code"], body["code"]);
        assert_eq!(kept["settings"][0]["value"], json!(fingerprint("tok-1")));
        let mut default = body;
        SecretPolicy::keeping_function_code(false).redact(ResourceKind::Function, &mut default);
        assert_eq!(default, redacted);
    }

    #[test]
    fn other_kinds_are_untouched() {
        let policy = SecretPolicy::default();
        let mut user = json!({"writeKeys": ["x"], "settings": {"token": "t"}});
        let before = user.clone();
        policy.redact(ResourceKind::User, &mut user);
        assert_eq!(user, before);
    }

    #[test]
    fn secret_key_names() {
        for k in [
            "apiKey",
            "api_key",
            "TOKEN",
            "clientSecret",
            "password",
            "credentials",
            "privateKey",
        ] {
            assert!(looks_secret(k), "{k}");
        }
        for k in ["region", "endpoint", "name", "enabled"] {
            assert!(!looks_secret(k), "{k}");
        }
    }
}
