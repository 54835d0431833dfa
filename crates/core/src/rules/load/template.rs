//! Checking a rule's message template: it compiles, and reads only the variables its rule kind
//! has.

use std::collections::HashSet;

use minijinja::Environment;

use super::parser::RuleParser;
use crate::rules::expr::{Scope, did_you_mean};

/// What a message template can read in every rule, and in change rules only.
const TEMPLATE_VARIABLES: [&str; 5] = ["rule", "kind", "id", "name", "resource"];
const CHANGE_TEMPLATE_VARIABLES: [&str; 3] = ["before", "after", "change"];

impl RuleParser<'_> {
    /// Compiles a message template into the rule set's environment; false on error.
    pub(super) fn template(
        &mut self,
        templates: &mut Environment<'static>,
        name: &str,
        source: &str,
        line: usize,
        scope: Scope,
    ) -> bool {
        if let Err(e) = templates.add_template_owned(name.to_string(), source.to_string()) {
            let at = match e.line() {
                Some(l) if source.trim_end().contains('\n') => {
                    format!(" (line {l} of the template)")
                }
                _ => String::new(),
            };
            let detail = e.detail().map(|d| format!(": {d}")).unwrap_or_default();
            self.error(
                line,
                Some("message"),
                format!("invalid message template: {}{detail}{at}", e.kind()),
            );
            return false;
        }
        let Ok(template) = templates.get_template(name) else {
            return false;
        };
        let globals: HashSet<&str> = templates.globals().map(|(n, _)| n).collect();
        let mut unknown: Vec<String> = template
            .undeclared_variables(false)
            .into_iter()
            .filter(|v| !globals.contains(v.as_str()))
            .collect();
        unknown.sort();
        let available: Vec<&str> = match scope {
            Scope::Compliance => TEMPLATE_VARIABLES.to_vec(),
            _ => TEMPLATE_VARIABLES
                .iter()
                .chain(&CHANGE_TEMPLATE_VARIABLES)
                .copied()
                .collect(),
        };
        let mut ok = true;
        for variable in unknown {
            if available.contains(&variable.as_str()) {
                continue;
            }
            ok = false;
            let message = if CHANGE_TEMPLATE_VARIABLES.contains(&variable.as_str()) {
                format!(
                    "the message template uses `{variable}`, which only change rules have; use \
                     `resource`"
                )
            } else {
                let hint = did_you_mean(&variable, available.iter().copied());
                format!(
                    "the message template uses an unknown variable `{variable}`{hint}; it can \
                     use {}",
                    available.join(", ")
                )
            };
            self.error(line, Some("message"), message);
        }
        if !ok {
            templates.remove_template(name);
        }
        ok
    }
}
