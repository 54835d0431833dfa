//! Personal-data fields: which of the field names a destination receives look personal, by a
//! configurable list of field-name patterns (`[flows] personal_field_patterns`).
//!
//! A field name and a pattern are both split into lowercase words: at every character that is
//! not a letter or a digit (`.`, `_`, `-`, `$`, spaces…) and at each lower-to-upper case
//! boundary (`firstName` → `first`, `name`; `IPAddress` → `ip`, `address`). A pattern matches a
//! field when some run of consecutive words of the field, written together, equals the
//! pattern's words written together: `email` matches `traits.email`, `user_email` and
//! `emailAddress`; `zip` matches `zipCode` but not `shipping`; `ip` matches `context.ip` and
//! `ipAddress` but not `recipient`; `postcode` matches `postCode` and `post_code`.
//!
//! Which field names a destination receives is for the caller to say ([`MappedField`]): today
//! the mapping-like settings of a destination ([`mapped_fields_in_settings`]); the Actions
//! subscriptions' field mappings plug in the same way.

use serde::Serialize;
use serde_json::Value;

/// The patterns used when `[flows] personal_field_patterns` is not set: identifiers of a
/// person (email, phone, name, birth date, national ids), where they live, and their network
/// address. See docs/FLOWS.md.
pub const DEFAULT_PERSONAL_FIELD_PATTERNS: &[&str] = &[
    "email",
    "phone",
    "mobile",
    "address",
    "street",
    "city",
    "postal code",
    "postcode",
    "zip",
    "ip",
    "first name",
    "last name",
    "full name",
    "surname",
    "birth date",
    "birthdate",
    "birthday",
    "date of birth",
    "dob",
    "ssn",
    "social security",
    "passport",
    "national id",
    "tax id",
    "gender",
    "latitude",
    "longitude",
];

/// A pattern that cannot match anything: it has no letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a field-name pattern: it has no letter or digit")]
pub struct BadPattern(pub String);

/// A checked list of field-name patterns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonalPatterns {
    /// (pattern as written, its words written together).
    patterns: Vec<(String, String)>,
}

impl Default for PersonalPatterns {
    fn default() -> Self {
        Self::new(DEFAULT_PERSONAL_FIELD_PATTERNS.iter().copied()).expect("the defaults are valid")
    }
}

impl PersonalPatterns {
    /// The patterns, checked; an empty list matches nothing.
    pub fn new<S: AsRef<str>>(patterns: impl IntoIterator<Item = S>) -> Result<Self, BadPattern> {
        let mut out = Vec::new();
        for p in patterns {
            let p = p.as_ref();
            let joined: String = field_words(p).concat();
            if joined.is_empty() {
                return Err(BadPattern(p.to_string()));
            }
            out.push((p.trim().to_string(), joined));
        }
        Ok(PersonalPatterns { patterns: out })
    }

    /// The patterns as written.
    pub fn patterns(&self) -> impl Iterator<Item = &str> {
        self.patterns.iter().map(|(p, _)| p.as_str())
    }

    /// The first pattern matching `field` (see the module docs), if any.
    pub fn matching(&self, field: &str) -> Option<&str> {
        let words = field_words(field);
        self.patterns
            .iter()
            .find(|(_, joined)| has_run(&words, joined))
            .map(|(p, _)| p.as_str())
    }
}

/// Whether consecutive `words`, written together, equal `joined`.
fn has_run(words: &[String], joined: &str) -> bool {
    (0..words.len()).any(|start| {
        let mut acc = String::new();
        for w in &words[start..] {
            acc.push_str(w);
            if acc.len() >= joined.len() {
                return acc == joined;
            }
            if !joined.starts_with(&acc) {
                return false;
            }
        }
        false
    })
}

/// The lowercase words of a field name (see the module docs).
pub fn field_words(name: &str) -> Vec<String> {
    let mut words = Vec::new();
    let chars: Vec<char> = name.chars().collect();
    let mut current = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_alphanumeric() {
            if !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
            continue;
        }
        let prev = i.checked_sub(1).map(|j| chars[j]);
        let next = chars.get(i + 1).copied();
        let boundary = c.is_uppercase()
            && prev.is_some_and(|p| {
                p.is_lowercase()
                    || p.is_ascii_digit()
                    || (p.is_uppercase() && next.is_some_and(char::is_lowercase))
            });
        if boundary && !current.is_empty() {
            words.push(std::mem::take(&mut current));
        }
        current.extend(c.to_lowercase());
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

/// A field name a destination receives, and where it was read.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct MappedField {
    /// Where the name was found, e.g. `settings.traitMapping.email`.
    pub path: String,
    /// The field name, e.g. `email` or `traits.email`.
    pub field: String,
}

/// A personal-data field a destination receives.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct PersonalField {
    /// The field name as the destination's configuration writes it.
    pub field: String,
    /// The pattern it matched.
    pub pattern: String,
    /// Where it was read, e.g. `settings.traitMapping.email`.
    pub path: String,
}

/// The fields among `fields` that a pattern matches, sorted by path and field, one per path
/// (the first found: a mapping's key before its value).
pub fn personal_fields(fields: &[MappedField], patterns: &PersonalPatterns) -> Vec<PersonalField> {
    let mut out: Vec<PersonalField> = Vec::new();
    for f in fields {
        if out.iter().any(|p| p.path == f.path) {
            continue;
        }
        if let Some(pattern) = patterns.matching(&f.field) {
            out.push(PersonalField {
                field: f.field.clone(),
                pattern: pattern.to_string(),
                path: f.path.clone(),
            });
        }
    }
    out.sort();
    out
}

/// Words of a top-level setting's name that make it mapping-like: its keys and values name
/// the fields sent (`traitMapping`, `customDimensions`, `propertiesToSend`, `fieldMappings`…).
pub const MAPPING_WORDS: &[&str] = &[
    "map",
    "maps",
    "mapping",
    "mappings",
    "mapped",
    "dimension",
    "dimensions",
    "metric",
    "metrics",
    "field",
    "fields",
    "property",
    "properties",
    "trait",
    "traits",
    "attribute",
    "attributes",
    "parameter",
    "parameters",
    "params",
];

/// The field names a destination's `settings` show it receives: within each mapping-like
/// top-level setting (one whose name has a word of [`MAPPING_WORDS`]), every object key and
/// every string value that looks like a field name (no spaces, at most 128 characters), at any
/// depth. Other settings (API keys, endpoints, flags) name no field.
pub fn mapped_fields_in_settings(settings: &Value) -> Vec<MappedField> {
    let mut out = Vec::new();
    let Some(map) = settings.as_object() else {
        return out;
    };
    for (key, value) in map {
        let mapping_like = field_words(key)
            .iter()
            .any(|w| MAPPING_WORDS.contains(&w.as_str()));
        if mapping_like {
            collect(value, &format!("settings.{key}"), &mut out);
        }
    }
    out
}

/// The fields an Actions subscription (`DestinationSubscription.settings`: destination field →
/// directive) sends: for each mapping with an `@path` directive, the event field it reads
/// (`$.traits.email` → `traits.email`); for a mapping without one, the destination field's
/// name. Plain settings (a string or a number: an API key, a flag) send no event field.
pub fn mapped_fields_in_subscription(id: &str, settings: &Value) -> Vec<MappedField> {
    let mut out = Vec::new();
    let Some(map) = settings.as_object() else {
        return out;
    };
    for (key, value) in map {
        let path = format!("subscriptions[{id}].settings.{key}");
        let mut paths = Vec::new();
        directive_paths(value, &mut paths);
        if paths.is_empty() && value.is_object() {
            out.push(MappedField {
                path,
                field: key.clone(),
            });
        } else {
            out.extend(paths.into_iter().map(|p| MappedField {
                path: path.clone(),
                field: p.trim_start_matches("$.").to_owned(),
            }));
        }
    }
    out
}

/// Every `@path` string under a mapping directive.
fn directive_paths(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("@path", Value::String(p)) => out.push(p.clone()),
                    _ => directive_paths(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| directive_paths(v, out)),
        _ => {}
    }
}

fn collect(value: &Value, path: &str, out: &mut Vec<MappedField>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let inner = format!("{path}.{k}");
                out.push(MappedField {
                    path: inner.clone(),
                    field: k.clone(),
                });
                collect(v, &inner, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                collect(v, &format!("{path}[{i}]"), out);
            }
        }
        Value::String(s) if looks_like_field(s) => out.push(MappedField {
            path: path.to_string(),
            field: s.clone(),
        }),
        _ => {}
    }
}

fn looks_like_field(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && !s.chars().any(char::is_whitespace) && !s.contains("://")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn words_split_at_separators_and_case_boundaries() {
        assert_eq!(field_words("traits.firstName"), ["traits", "first", "name"]);
        assert_eq!(field_words("IPAddress"), ["ip", "address"]);
        assert_eq!(field_words("user_email-2"), ["user", "email", "2"]);
        assert_eq!(field_words("$.context.ip"), ["context", "ip"]);
        assert_eq!(field_words("address1"), ["address1"]);
        assert!(field_words("--").is_empty());
    }

    #[test]
    fn default_patterns_match_whole_words_not_substrings() {
        let p = PersonalPatterns::default();
        for (field, pattern) in [
            ("email", "email"),
            ("traits.email", "email"),
            ("emailAddress", "email"),
            ("user_email", "email"),
            ("phoneNumber", "phone"),
            ("context.ip", "ip"),
            ("ipAddress", "address"),
            ("zipCode", "zip"),
            ("postal_code", "postal code"),
            ("postCode", "postcode"),
            ("first_name", "first name"),
            ("firstname", "first name"),
            ("LastName", "last name"),
            ("date_of_birth", "date of birth"),
            ("birthDate", "birth date"),
            ("SSN", "ssn"),
            ("street", "street"),
        ] {
            let found = p.matching(field);
            assert!(found.is_some(), "{field}");
            // `ipAddress` matches `address` first: the list's order decides which is named.
            if field != "ipAddress" {
                assert_eq!(found, Some(pattern), "{field}");
            }
        }
        // `emails` is not `email`: whole words only.
        for field in [
            "shipping",
            "recipient",
            "plan",
            "name",
            "measurementId",
            "apiKey",
            "endpoint",
            "emails_sent",
        ] {
            assert_eq!(p.matching(field), None, "{field}");
        }
    }

    #[test]
    fn configured_patterns_are_checked_and_replace_the_defaults() {
        let p = PersonalPatterns::new(["Loyalty Card", "iban"]).unwrap();
        assert_eq!(p.matching("loyaltyCardNumber"), Some("Loyalty Card"));
        assert_eq!(p.matching("properties.IBAN"), Some("iban"));
        assert_eq!(p.matching("email"), None);
        assert_eq!(p.patterns().collect::<Vec<_>>(), ["Loyalty Card", "iban"]);
        assert_eq!(
            PersonalPatterns::new(["ok", " .-"]),
            Err(BadPattern(" .-".into()))
        );
        assert_eq!(
            PersonalPatterns::new(Vec::<String>::new())
                .unwrap()
                .matching("email"),
            None
        );
    }

    #[test]
    fn mapping_like_settings_name_the_fields_sent() {
        let settings = json!({
            "apiKey": "sha256:0123456789ab",
            "endpoint": "https://api.example.com/email",
            "sendEmail": true,
            "traitMapping": {"email": "Email", "plan": "Plan"},
            "customDimensions": [{"from": "context.ip", "to": "dimension1"}],
            "propertiesToSend": ["order_id", "shipping"],
        });
        let fields = mapped_fields_in_settings(&settings);
        let paths: Vec<(&str, &str)> = fields
            .iter()
            .map(|f| (f.path.as_str(), f.field.as_str()))
            .collect();
        assert!(paths.contains(&("settings.traitMapping.email", "email")));
        assert!(paths.contains(&("settings.traitMapping.email", "Email")));
        assert!(paths.contains(&("settings.customDimensions[0].from", "context.ip")));
        assert!(paths.contains(&("settings.propertiesToSend[1]", "shipping")));
        assert!(
            !paths
                .iter()
                .any(|(p, _)| p.starts_with("settings.endpoint"))
        );
        assert!(
            !paths
                .iter()
                .any(|(p, _)| p.starts_with("settings.sendEmail"))
        );

        let personal = personal_fields(&fields, &PersonalPatterns::default());
        assert_eq!(
            personal,
            vec![
                PersonalField {
                    field: "context.ip".into(),
                    pattern: "ip".into(),
                    path: "settings.customDimensions[0].from".into()
                },
                PersonalField {
                    field: "email".into(),
                    pattern: "email".into(),
                    path: "settings.traitMapping.email".into()
                },
            ]
        );
        assert!(mapped_fields_in_settings(&json!(null)).is_empty());
    }
}
