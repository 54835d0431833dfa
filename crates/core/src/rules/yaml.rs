//! A YAML document as a tree of nodes that each know their line.
//!
//! Rules are validated from this tree rather than deserialised into structs: serde stops at
//! the first mistake, and we want every mistake of every rule, each at its own line.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{DuplicateKeyPolicy, Spanned};

/// A YAML value with where it was written.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub(crate) value: Value,
    /// 1-based line.
    pub(crate) line: usize,
}

/// The YAML value of a [`Node`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Entries in file order; repeated keys are kept so that they can be reported.
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// The string, if this is one.
    pub(crate) fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// What this node is, for messages: "a list", "the number `12`", ….
    pub(crate) fn describe(&self) -> String {
        match &self.value {
            Value::Null => "nothing (an empty value)".to_string(),
            Value::Bool(b) => format!("the boolean `{b}`"),
            Value::Int(i) => format!("the number `{i}`"),
            Value::Float(x) => format!("the number `{x}`"),
            Value::Str(s) => format!("the string `{s}`"),
            Value::Seq(_) => "a list".to_string(),
            Value::Map(_) => "a mapping".to_string(),
        }
    }
}

/// A YAML syntax error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pub(crate) line: Option<usize>,
    pub(crate) message: String,
}

/// Parses the documents of a YAML stream (`---` separates them); empty documents are skipped.
///
/// Booleans are YAML 1.2's `true`/`false` only: under YAML 1.1 rules the key `on` of a change
/// rule would read as the boolean `true`, and `enabled: yes` would be silently accepted.
/// Repeated keys are passed through so that validation can name both lines.
pub(crate) fn parse(text: &str) -> Result<Vec<Node>, SyntaxError> {
    let options = serde_saphyr::options! {
        strict_booleans: true,
        duplicate_keys: DuplicateKeyPolicy::PassThrough,
        with_snippet: false,
    };
    serde_saphyr::from_str_multiple_with_options::<Node, Vec<Node>>(text, options).map_err(|e| {
        let location = e.location().filter(|l| l.line() > 0);
        let mut message = e.without_snippet().to_string();
        if let Some(l) = location {
            // The crate appends the position; we print the line ourselves, the column here.
            let suffix = format!(" at line {}, column {}", l.line(), l.column());
            if let Some(stripped) = message.strip_suffix(&suffix) {
                message = format!("{stripped} (column {})", l.column());
            }
        }
        if message.contains("found a tab") {
            message.push_str("; indent YAML with spaces, not tabs");
        }
        SyntaxError {
            line: location.map(|l| l.line() as usize),
            message,
        }
    })
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<Value>::deserialize(d)?;
        Ok(Node {
            value: spanned.value,
            line: spanned.referenced.line() as usize,
        })
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or(Value::Float(v as f64), Value::Int))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or(Value::Float(v as f64), Value::Int))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or(Value::Float(v as f64), Value::Int))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::Str(String::from_utf8_lossy(v).into_owned()))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Value::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry::<Node, Node>()? {
            entries.push(entry);
        }
        Ok(Value::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_know_their_lines_and_types() {
        let docs = parse("# c\n- id: a\n  on: [added]\n  enabled: yes\n  n: 12\n  x: ~\n").unwrap();
        let doc = &docs[0];
        let Value::Seq(rules) = &doc.value else {
            panic!("{doc:?}")
        };
        let Value::Map(fields) = &rules[0].value else {
            panic!()
        };
        assert_eq!(rules[0].line, 2);
        let keys: Vec<_> = fields.iter().map(|(k, _)| (k.as_str(), k.line)).collect();
        assert_eq!(
            keys,
            [
                (Some("id"), 2),
                (Some("on"), 3),
                (Some("enabled"), 4),
                (Some("n"), 5),
                (Some("x"), 6)
            ]
        );
        // YAML 1.1 booleans stay strings, so `enabled: yes` can be reported.
        assert_eq!(fields[2].1.value, Value::Str("yes".into()));
        assert_eq!(fields[3].1.value, Value::Int(12));
        assert_eq!(fields[4].1.value, Value::Null);
    }

    #[test]
    fn syntax_errors_have_a_line_and_no_duplicate_position() {
        let e = parse("- id: a\n  b: [1,\n").unwrap_err();
        assert_eq!(e.line, Some(2));
        assert_eq!(e.message, "unclosed bracket '[' (column 6)");
    }

    #[test]
    fn documents_are_separate_and_empty_ones_skipped() {
        let docs = parse("- a\n---\n---\n- b\n").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].line, 4);
        assert!(parse("").unwrap().is_empty());
    }

    #[test]
    fn repeated_keys_are_kept() {
        let docs = parse("a: 1\na: 2\n").unwrap();
        let Value::Map(entries) = &docs[0].value else {
            panic!()
        };
        assert_eq!(entries.len(), 2);
    }
}
