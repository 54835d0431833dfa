//! Checking a rule's exceptions: each names one resource by `id` or a glob of names, with a
//! reason and an optional last day.

use chrono::NaiveDate;
use globset::GlobBuilder;

use super::parser::{Fields, RuleParser};
use crate::rules::Exception;
use crate::rules::yaml::{Node, Value};

/// The fields an exception may have.
const EXCEPTION_FIELDS: [&str; 4] = ["id", "name", "reason", "expires"];

impl RuleParser<'_> {
    pub(super) fn exceptions(
        &mut self,
        fields: &Fields<'_>,
    ) -> (Vec<Exception>, Vec<Option<globset::GlobMatcher>>) {
        let mut exceptions = Vec::new();
        let mut globs = Vec::new();
        let Some((line, node)) = fields.get("exceptions").copied() else {
            return (exceptions, globs);
        };
        let Value::Seq(items) = &node.value else {
            self.error(
                line,
                Some("exceptions"),
                format!(
                    "expected a list of exceptions (`- name: \"…\"` or `- id: …`, each with a \
                     `reason`); found {}",
                    node.describe()
                ),
            );
            return (exceptions, globs);
        };
        for (i, item) in items.iter().enumerate() {
            if let Some((exception, glob)) = self.exception(i, item) {
                exceptions.push(exception);
                globs.push(glob);
            }
        }
        (exceptions, globs)
    }

    fn exception(
        &mut self,
        i: usize,
        item: &Node,
    ) -> Option<(Exception, Option<globset::GlobMatcher>)> {
        let path = format!("exceptions[{i}]");
        let Value::Map(entries) = &item.value else {
            self.error(
                item.line,
                Some(&path),
                format!(
                    "each exception must be a mapping with `id` or `name`, and `reason`; found {}",
                    item.describe()
                ),
            );
            return None;
        };
        let errors_before = self.errors.len();
        let fields = self.fields(
            entries,
            &EXCEPTION_FIELDS,
            &format!("{path}."),
            "an exception's",
        );
        let reason_field = format!("{path}.reason");
        let reason = self.string(&fields, "reason", &reason_field, true);
        if !fields.contains_key("reason") {
            self.error(
                item.line,
                Some(&reason_field),
                "an exception needs a `reason`: why exempting this resource is acceptable",
            );
        }
        let id = match fields.get("id").copied() {
            // Ids are usually letters and digits; one that is all digits reads as a number.
            Some((
                _,
                Node {
                    value: Value::Int(n),
                    ..
                },
            )) => Some(n.to_string()),
            Some(_) => self.string(&fields, "id", &format!("{path}.id"), true),
            None => None,
        };
        let name = self.string(&fields, "name", &format!("{path}.name"), true);
        let glob = match (fields.contains_key("id"), fields.contains_key("name")) {
            (false, false) => {
                self.error(
                    item.line,
                    Some(&path),
                    "an exception needs `id` (one resource) or `name` (a glob on resource names, \
                     e.g. \"breakglass-*@acme.io\"); it has neither",
                );
                None
            }
            (true, true) => {
                self.error(
                    item.line,
                    Some(&path),
                    "an exception has either `id` or `name`, not both; split it in two",
                );
                None
            }
            (false, true) => name.as_deref().and_then(|pattern| {
                match GlobBuilder::new(pattern).case_insensitive(true).build() {
                    Ok(glob) => Some(glob.compile_matcher()),
                    Err(e) => {
                        self.error(
                            fields["name"].0,
                            Some(&format!("{path}.name")),
                            format!(
                                "`{pattern}` is not a valid glob: {}; use `*` for any text, `?` \
                                 for one character",
                                e.kind()
                            ),
                        );
                        None
                    }
                }
            }),
            (true, false) => None,
        };
        let expires_field = format!("{path}.expires");
        let expires = match fields.get("expires").copied() {
            None => None,
            Some((line, node)) => {
                let parsed = node
                    .as_str()
                    .and_then(|s| NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok());
                if parsed.is_none() {
                    self.error(
                        line,
                        Some(&expires_field),
                        format!(
                            "expected the last day the exception applies, as YYYY-MM-DD (e.g. \
                             2027-03-31); found {}",
                            node.describe()
                        ),
                    );
                }
                parsed
            }
        };
        if self.errors.len() > errors_before {
            return None;
        }
        Some((
            Exception {
                id,
                name,
                reason: reason?,
                expires,
            },
            glob,
        ))
    }
}
