//! CEL conditions: compiling, checking what they refer to, the helper functions, and the
//! sub-expressions an explanation reports.
//!
//! A condition is parsed once at load ([`compile`]). The parser accepts any identifier and
//! any function name, and the interpreter would only complain when it gets there (maybe never,
//! behind a `&&`), so [`compile`] walks the AST and rejects, with the position and a caret
//! excerpt: unknown variables, change-only variables in compliance rules, unknown functions,
//! helpers called with the wrong number of arguments or as methods, and misused macros.

mod check;
mod helpers;
mod probes;

use std::collections::HashSet;

use cel::Program;
use cel::common::ast::IdedExpr;

pub(crate) use check::did_you_mean;
pub(crate) use helpers::environment;

use check::Checker;
use probes::collect_probes;

/// The helper functions rules can call, on top of CEL's standard library (see the spec).
pub const HELPER_FUNCTIONS: [&str; 7] = [
    "role_names",
    "has_role",
    "workspace_roles",
    "has_label",
    "label",
    "email_domain",
    "changed",
];

/// CEL's standard functions, as `cel` 0.15 declares them (a test checks each is declared).
/// `optional.*` are written with their namespace.
pub const CEL_STANDARD_FUNCTIONS: [&str; 32] = [
    "size",
    "contains",
    "startsWith",
    "endsWith",
    "matches",
    "int",
    "uint",
    "double",
    "string",
    "bool",
    "bytes",
    "timestamp",
    "duration",
    "type",
    "dyn",
    "getDate",
    "getDayOfMonth",
    "getDayOfWeek",
    "getDayOfYear",
    "getFullYear",
    "getHours",
    "getMilliseconds",
    "getMinutes",
    "getMonth",
    "getSeconds",
    "optional.of",
    "optional.none",
    "optional.ofNonZeroValue",
    "hasValue",
    "value",
    "orValue",
    "or",
];

/// CEL's macros: expanded by the parser, so a call that survives parsing has the wrong form.
pub const CEL_MACROS: [&str; 8] = [
    "has",
    "all",
    "exists",
    "exists_one",
    "map",
    "filter",
    "optMap",
    "optFlatMap",
];

/// Variables every rule can read.
const COMMON_VARIABLES: [&str; 9] = [
    "resource",
    "id",
    "name",
    "now",
    "seen_since",
    "inventory",
    "related",
    "last_acting",
    "trail_since",
];

/// Variables only change rules can read.
const CHANGE_VARIABLES: [&str; 3] = ["before", "after", "change"];

/// Variables whose value changes without the resource changing (`related` follows the other
/// resources of the snapshot, `last_acting` and `trail_since` the audit trail).
const TIME_VARIABLES: [&str; 6] = [
    "now",
    "seen_since",
    "inventory",
    "related",
    "last_acting",
    "trail_since",
];

/// Type names an expression may use as values (`type(x) == string`).
const TYPE_NAMES: [&str; 10] = [
    "int",
    "uint",
    "double",
    "bool",
    "string",
    "bytes",
    "list",
    "map",
    "null_type",
    "type",
];

/// Bare variables an explanation reports: small values worth seeing. The bodies (`resource`,
/// `before`, `after`), `change`, `inventory` and `now` are shown through what is read of them.
const EXPLAINED_VARIABLES: [&str; 5] = ["id", "name", "seen_since", "last_acting", "trail_since"];

/// How each helper is called, for arity messages.
fn helper_usage(name: &str) -> Option<(usize, &'static str)> {
    Some(match name {
        "role_names" => (1, "role_names(x)"),
        "has_role" => (2, "has_role(x, \"Role Name\")"),
        "workspace_roles" => (1, "workspace_roles(x)"),
        "has_label" => (2, "has_label(x, \"key\")"),
        "label" => (2, "label(x, \"key\")"),
        "email_domain" => (1, "email_domain(\"a@acme.io\")"),
        "changed" => (2, "changed(change, \"path prefix\")"),
        _ => return None,
    })
}

/// How each macro is called, for messages about a call that did not expand.
fn macro_usage(name: &str) -> &'static str {
    match name {
        "has" => "has(x.field), testing one field of a map",
        "all" => "list.all(x, condition)",
        "exists" => "list.exists(x, condition)",
        "exists_one" => "list.exists_one(x, condition)",
        "map" => "list.map(x, expression) or list.map(x, condition, expression)",
        "filter" => "list.filter(x, condition)",
        "optMap" => "optional.optMap(x, expression)",
        _ => "optional.optFlatMap(x, expression)",
    }
}

/// Which rule kind a condition is checked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// `before`, `after` and `change` are available.
    Change,
    /// They are not.
    Compliance,
    /// The rule's kind is invalid (already reported): allow them rather than pile on errors.
    Unknown,
}

/// A compiled, checked condition.
pub(crate) struct Condition {
    pub(crate) program: Program,
    /// What an explanation evaluates, deduplicated, in source order.
    pub(crate) probes: Vec<Probe>,
    pub(crate) time_dependent: bool,
    /// The rule variables the condition reads.
    pub(crate) variables: HashSet<&'static str>,
}

/// A sub-expression an explanation reports: its text and its AST, evaluated on its own.
pub(crate) struct Probe {
    pub(crate) text: String,
    pub(crate) expr: IdedExpr,
}

/// Compiles and checks a condition; the errors are complete messages, with positions and
/// excerpts, one per problem.
pub(crate) fn compile(source: &str, scope: Scope) -> Result<Condition, Vec<String>> {
    // Compiled with the environment the rules run in, so that its macros (the standard ones
    // and the optional library's) are the ones expanded.
    let program = match environment().compile(source) {
        Ok(p) => p,
        Err(e) => return Err(vec![syntax_message(source, &e)]),
    };
    let mut checker = Checker {
        program: &program,
        source,
        scope,
        bound: Vec::new(),
        errors: Vec::new(),
        reported: HashSet::new(),
        time_dependent: false,
        variables: HashSet::new(),
    };
    checker.check(program.expression());
    if !checker.errors.is_empty() {
        return Err(checker.errors);
    }
    let time_dependent = checker.time_dependent;
    let variables = std::mem::take(&mut checker.variables);
    let mut probes = Vec::new();
    let mut seen = HashSet::new();
    collect_probes(
        program.expression(),
        &mut Vec::new(),
        &mut seen,
        &mut probes,
    );
    Ok(Condition {
        program,
        probes,
        time_dependent,
        variables,
    })
}

/// Formats a parse failure: the first error (the others usually follow from it), where it
/// is, and an excerpt with a caret.
fn syntax_message(source: &str, errors: &cel::ParseErrors) -> String {
    let Some(first) = errors.errors.first() else {
        return "CEL syntax error".to_string();
    };
    let (mut line, mut column) = (first.pos.0.max(1) as usize, first.pos.1.max(1) as usize);
    // An unexpected end is reported past the text (after a YAML block's final newline, say):
    // point just after the last character instead, where something is missing.
    let text = source.trim_end();
    let at_end = text.lines().count() < line
        || (text.lines().count() == line
            && text
                .lines()
                .last()
                .is_some_and(|l| l.chars().count() < column));
    if at_end {
        (line, column) = line_column(text, text.chars().count());
    }
    let mut out = format!(
        "CEL syntax error at {line}:{column}: {}{}",
        tidy_parser_message(&first.msg),
        excerpt(source, line, column)
    );
    if errors.errors.len() > 1 {
        out.push_str(&format!(
            "\n    ({} more syntax error(s) may follow from this one)",
            errors.errors.len() - 1
        ));
    }
    out
}

/// Makes ANTLR's messages readable: the set of tokens that may start an expression becomes
/// "an expression", and `<EOF>` the end of the condition.
fn tidy_parser_message(msg: &str) -> String {
    let mut msg = msg
        .strip_prefix("Syntax error: ")
        .unwrap_or(msg)
        .to_string();
    if let Some(at) = msg.find(" expecting {")
        && msg[at..].contains("IDENTIFIER")
    {
        msg.truncate(at);
        msg.push_str(", expecting an expression");
    }
    msg.replace("mismatched input '<EOF>'", "unexpected end of condition")
        .replace("extraneous input", "unexpected input")
        .replace("expecting <EOF>", "expecting the end of the condition")
}

/// Two indented lines: the source line and a caret under `column` (both 1-based).
fn excerpt(source: &str, line: usize, column: usize) -> String {
    match source.lines().nth(line.saturating_sub(1)) {
        Some(text) => format!(
            "\n    | {}\n    | {}^",
            text.trim_end(),
            " ".repeat(column.saturating_sub(1))
        ),
        None => String::new(),
    }
}

/// 1-based line and column of a character offset.
fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let mut line = 1;
    let mut column = 1;
    for c in source.chars().take(offset) {
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    (line, column)
}
