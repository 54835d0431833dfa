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
}

/// The rules segwatch applies: write keys, secret-looking keys in source settings (cloud
/// sources keep credentials there) and in audit events.
pub const DEFAULT_RULES: &[SecretRule] = &[
    SecretRule::Path {
        kind: ResourceKind::Source,
        path: &[Step::Key("writeKeys"), Step::Each],
    },
    SecretRule::SecretKeysUnder {
        kind: ResourceKind::Source,
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
                _ => {}
            }
        }
    }
}

/// Whether an object key names a secret: keys, tokens, secrets, passwords, credentials and
/// private keys, in any case and with any separator (`apiKey`, `api_key`, `clientSecret`).
pub fn looks_secret(key: &str) -> bool {
    let k: String = key
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase();
    const WORDS: &[&str] = &["key", "token", "secret", "password", "passwd", "credential"];
    WORDS.iter().any(|w| k.contains(w))
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
