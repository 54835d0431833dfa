//! CEL conditions: compiling, checking what they refer to, the helper functions, and the
//! sub-expressions an explanation reports.
//!
//! A condition is parsed once at load ([`compile`]). The parser accepts any identifier and
//! any function name, and the interpreter would only complain when it gets there (maybe never,
//! behind a `&&`), so [`compile`] walks the AST and rejects, with the position and a caret
//! excerpt: unknown variables, change-only variables in compliance rules, unknown functions,
//! helpers called with the wrong number of arguments or as methods, and misused macros.

use std::collections::HashSet;
use std::sync::{Arc, LazyLock};

use cel::common::ast::{EntryExpr, Expr, IdedExpr, LiteralValue};
use cel::common::types::{
    CelBool, CelList, CelMap, CelMapKey, CelString, DYN_TYPE, Kind, STRING_TYPE,
};
use cel::common::value::{CowVal, Val};
use cel::{Env, ExecutionError, Program};

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
const COMMON_VARIABLES: [&str; 7] = [
    "resource",
    "id",
    "name",
    "now",
    "seen_since",
    "inventory",
    "related",
];

/// Variables only change rules can read.
const CHANGE_VARIABLES: [&str; 3] = ["before", "after", "change"];

/// Variables whose value changes without the resource changing (`related` follows the other
/// resources of the snapshot).
const TIME_VARIABLES: [&str; 4] = ["now", "seen_since", "inventory", "related"];

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
const EXPLAINED_VARIABLES: [&str; 3] = ["id", "name", "seen_since"];

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

struct Checker<'a> {
    program: &'a Program,
    source: &'a str,
    scope: Scope,
    /// Comprehension variables in scope, innermost last.
    bound: Vec<&'a str>,
    errors: Vec<String>,
    /// What was reported already, so that a name misused twice is reported once.
    reported: HashSet<String>,
    time_dependent: bool,
    variables: HashSet<&'static str>,
}

impl<'a> Checker<'a> {
    /// Reports `headline (at line:column)detail` and an excerpt, once per `key`.
    fn report(&mut self, key: String, node: &IdedExpr, headline: String, detail: String) {
        if !self.reported.insert(key) {
            return;
        }
        let (mut start, _) = self
            .program
            .source_info()
            .offset_for(node.id)
            .unwrap_or((0, 0));
        // A call is positioned at its `(`: point at the function's name instead.
        if let Expr::Call(call) = &node.expr
            && call
                .func_name
                .starts_with(|c: char| c.is_ascii_alphabetic())
        {
            start = start.saturating_sub(call.func_name.chars().count() as u32);
        }
        let (line, column) = line_column(self.source, start as usize);
        self.errors.push(format!(
            "{headline} (at {line}:{column}){detail}{}",
            excerpt(self.source, line, column)
        ));
    }

    fn check(&mut self, node: &'a IdedExpr) {
        match &node.expr {
            Expr::Ident(name) => self.check_ident(node, name),
            Expr::Select(select) => self.check(&select.operand),
            Expr::Call(call) => {
                let name = call.func_name.as_str();
                // `optional.of(x)` parses as a call of `of` on the identifier `optional`.
                let optional_call = matches!(
                    call.target.as_deref(),
                    Some(IdedExpr { expr: Expr::Ident(t), .. })
                        if t == "optional" && !self.bound.contains(&"optional")
                ) && CEL_STANDARD_FUNCTIONS
                    .contains(&format!("optional.{name}").as_str());
                if !optional_call {
                    self.check_call(node, name, call.target.is_some(), call.args.len());
                    if let Some(target) = &call.target {
                        self.check(target);
                    }
                }
                for arg in &call.args {
                    self.check(arg);
                }
            }
            Expr::Comprehension(c) => {
                self.check(&c.iter_range);
                self.check(&c.accu_init);
                let depth = self.bound.len();
                self.bound.push(&c.iter_var);
                if let Some(v) = &c.iter_var2 {
                    self.bound.push(v);
                }
                self.bound.push(&c.accu_var);
                self.check(&c.loop_cond);
                self.check(&c.loop_step);
                self.check(&c.result);
                self.bound.truncate(depth);
            }
            Expr::List(list) => list.elements.iter().for_each(|e| self.check(e)),
            Expr::Map(map) => {
                for entry in &map.entries {
                    match &entry.expr {
                        EntryExpr::MapEntry(e) => {
                            self.check(&e.key);
                            self.check(&e.value);
                        }
                        EntryExpr::StructField(f) => self.check(&f.value),
                    }
                }
            }
            Expr::Struct(s) => self.report(
                format!("struct {}", s.type_name),
                node,
                format!("unknown type `{}`", s.type_name),
                "; rules have no message types: build a map with {\"key\": value}".to_string(),
            ),
            Expr::Literal(_) | Expr::Unspecified => {}
        }
    }

    fn check_ident(&mut self, node: &IdedExpr, name: &str) {
        if self.bound.contains(&name) {
            return;
        }
        if let Some(known) = COMMON_VARIABLES
            .iter()
            .chain(CHANGE_VARIABLES.iter())
            .find(|v| **v == name)
        {
            self.variables.insert(known);
        }
        if COMMON_VARIABLES.contains(&name) {
            self.time_dependent |= TIME_VARIABLES.contains(&name);
            return;
        }
        if CHANGE_VARIABLES.contains(&name) {
            if self.scope == Scope::Compliance {
                self.report(
                    format!("var {name}"),
                    node,
                    format!("`{name}` is only available in change rules (kind: change)"),
                    "; a compliance rule reads the current resource as `resource`".to_string(),
                );
            }
            return;
        }
        if TYPE_NAMES.contains(&name) {
            return;
        }
        let available: Vec<&str> = match self.scope {
            Scope::Compliance => COMMON_VARIABLES.to_vec(),
            _ => COMMON_VARIABLES
                .iter()
                .chain(&CHANGE_VARIABLES)
                .copied()
                .collect(),
        };
        let hint = did_you_mean(name, available.iter().copied());
        self.report(
            format!("var {name}"),
            node,
            format!("unknown variable `{name}`{hint}"),
            format!("; the variables are {}", available.join(", ")),
        );
    }

    fn check_call(&mut self, node: &IdedExpr, name: &str, method: bool, args: usize) {
        // Operators are calls too (`_==_`, `!_`, `@in`, `@not_strictly_false`): not names a
        // rule writes.
        if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
            return;
        }
        if let Some((arity, usage)) = helper_usage(name) {
            if method {
                self.report(
                    format!("method {name}"),
                    node,
                    format!("`{name}` is a function, not a method"),
                    format!(": write {usage}"),
                );
            } else if args != arity {
                self.report(
                    format!("arity {name}"),
                    node,
                    format!("`{name}` is given {args} argument{}", plural(args)),
                    format!("; it takes {arity}, as in {usage}"),
                );
            }
            return;
        }
        if CEL_MACROS.contains(&name) {
            self.report(
                format!("macro {name}"),
                node,
                format!("`{name}` is not written as CEL expects"),
                format!(
                    "; write {}: a variable name, then an expression using it",
                    macro_usage(name)
                ),
            );
            return;
        }
        if CEL_STANDARD_FUNCTIONS.contains(&name) {
            return;
        }
        let known = HELPER_FUNCTIONS
            .iter()
            .chain(&CEL_STANDARD_FUNCTIONS)
            .chain(&CEL_MACROS)
            .copied();
        let hint = did_you_mean(name, known);
        self.report(
            format!("fn {name}"),
            node,
            format!("unknown function `{name}`{hint}"),
            format!(
                "; rules can call the helpers {} and CEL's standard functions (size, contains, \
                 startsWith, endsWith, matches, int, string, timestamp, duration, …)",
                HELPER_FUNCTIONS.join(", ")
            ),
        );
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// `" (did you mean `x`?)"` for the closest candidate within a small edit distance, or `""`.
pub(crate) fn did_you_mean<'c>(word: &str, candidates: impl Iterator<Item = &'c str>) -> String {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .map(|c| (edit_distance(&word.to_lowercase(), &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| format!(" (did you mean `{c}`?)"))
        .unwrap_or_default()
}

/// Edit distance counting insertions, deletions, substitutions and swaps of two adjacent
/// characters (optimal string alignment): `nmae` is one typo away from `name`.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for i in 0..=a.len() {
        for j in 0..=b.len() {
            d[i * width + j] = if i == 0 || j == 0 {
                i + j
            } else {
                let cost = usize::from(a[i - 1] != b[j - 1]);
                let mut best = (d[(i - 1) * width + j] + 1)
                    .min(d[i * width + j - 1] + 1)
                    .min(d[(i - 1) * width + j - 1] + cost);
                if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                    best = best.min(d[(i - 2) * width + j - 2] + 1);
                }
                best
            };
        }
    }
    d[a.len() * width + b.len()]
}

// ---------------------------------------------------------------------------------------------
// Explanations

/// Collects, in source order, each helper call, each `has()` test and each maximal chain of
/// field selections and literal indexes rooted at a rule variable (`resource.email`,
/// `change.paths`, `inventory.role_holders["Workspace Owner"]`), plus the small bare
/// variables, skipping anything that reads a comprehension variable (it has no value outside
/// its loop) or that the renderer cannot write back as text.
fn collect_probes<'a>(
    node: &'a IdedExpr,
    bound: &mut Vec<&'a str>,
    seen: &mut HashSet<String>,
    out: &mut Vec<Probe>,
) {
    let mut push = |node: &IdedExpr, out: &mut Vec<Probe>| {
        if let Some(text) = render(node)
            && seen.insert(text.clone())
        {
            out.push(Probe {
                text,
                expr: node.clone(),
            });
        }
    };
    match &node.expr {
        Expr::Ident(name) => {
            if EXPLAINED_VARIABLES.contains(&name.as_str()) && !bound.contains(&name.as_str()) {
                push(node, out);
            }
        }
        Expr::Select(select) => {
            if chain_root(node).is_some_and(|root| is_free_variable(root, bound)) {
                push(node, out);
            } else {
                collect_probes(&select.operand, bound, seen, out);
            }
        }
        Expr::Call(call)
            if call.func_name == "_[_]"
                && chain_root(node).is_some_and(|root| is_free_variable(root, bound)) =>
        {
            push(node, out);
        }
        Expr::Call(call) => {
            if call.target.is_none()
                && HELPER_FUNCTIONS.contains(&call.func_name.as_str())
                && reads_only_variables(node, bound)
            {
                push(node, out);
            }
            if let Some(target) = &call.target {
                collect_probes(target, bound, seen, out);
            }
            for arg in &call.args {
                collect_probes(arg, bound, seen, out);
            }
        }
        Expr::Comprehension(c) => {
            collect_probes(&c.iter_range, bound, seen, out);
            let depth = bound.len();
            bound.push(&c.iter_var);
            if let Some(v) = &c.iter_var2 {
                bound.push(v);
            }
            bound.push(&c.accu_var);
            collect_probes(&c.loop_step, bound, seen, out);
            bound.truncate(depth);
        }
        Expr::List(list) => {
            for e in &list.elements {
                collect_probes(e, bound, seen, out);
            }
        }
        Expr::Map(map) => {
            for entry in &map.entries {
                if let EntryExpr::MapEntry(e) = &entry.expr {
                    collect_probes(&e.key, bound, seen, out);
                    collect_probes(&e.value, bound, seen, out);
                }
            }
        }
        Expr::Literal(_) | Expr::Struct(_) | Expr::Unspecified => {}
    }
}

/// The identifier a chain of field selections and literal indexes starts from: `a` for
/// `a.b.c`, `has(a.b)` and `a.b["key"].c`.
fn chain_root(node: &IdedExpr) -> Option<&str> {
    let mut node = node;
    loop {
        match &node.expr {
            Expr::Ident(name) => return Some(name),
            Expr::Select(select) => node = &select.operand,
            Expr::Call(call)
                if call.func_name == "_[_]"
                    && call.args.len() == 2
                    && matches!(call.args[1].expr, Expr::Literal(_)) =>
            {
                node = &call.args[0];
            }
            _ => return None,
        }
    }
}

fn is_free_variable(name: &str, bound: &[&str]) -> bool {
    !bound.contains(&name) && (COMMON_VARIABLES.contains(&name) || CHANGE_VARIABLES.contains(&name))
}

/// Whether every identifier in `node` is a rule variable (no comprehension variable).
fn reads_only_variables(node: &IdedExpr, bound: &[&str]) -> bool {
    match &node.expr {
        Expr::Ident(name) => is_free_variable(name, bound),
        Expr::Select(s) => reads_only_variables(&s.operand, bound),
        Expr::Call(c) => {
            c.target
                .as_deref()
                .is_none_or(|t| reads_only_variables(t, bound))
                && c.args.iter().all(|a| reads_only_variables(a, bound))
        }
        Expr::List(l) => l.elements.iter().all(|e| reads_only_variables(e, bound)),
        Expr::Literal(_) => true,
        Expr::Map(_) | Expr::Comprehension(_) | Expr::Struct(_) | Expr::Unspecified => false,
    }
}

/// Writes an expression back as CEL text; `None` for what has no simple text (comprehensions,
/// structs, optional syntax, bytes).
pub(crate) fn render(node: &IdedExpr) -> Option<String> {
    Some(match &node.expr {
        Expr::Ident(name) if !name.starts_with('@') => name.clone(),
        Expr::Literal(literal) => render_literal(literal)?,
        Expr::Select(select) => {
            let operand = render_operand(&select.operand)?;
            if select.test {
                format!("has({operand}.{})", select.field)
            } else {
                format!("{operand}.{}", select.field)
            }
        }
        Expr::List(list) if list.optional_indices.is_empty() => {
            format!("[{}]", render_all(&list.elements)?)
        }
        Expr::Map(map) => {
            let mut entries = Vec::new();
            for entry in &map.entries {
                match &entry.expr {
                    EntryExpr::MapEntry(e) if !e.optional => {
                        entries.push(format!("{}: {}", render(&e.key)?, render(&e.value)?));
                    }
                    _ => return None,
                }
            }
            format!("{{{}}}", entries.join(", "))
        }
        Expr::Call(call) => {
            let args = &call.args;
            match (call.func_name.as_str(), args.len()) {
                (name, 2) if binary_operator(name).is_some() => format!(
                    "{} {} {}",
                    render_operand(&args[0])?,
                    binary_operator(name)?,
                    render_operand(&args[1])?
                ),
                ("!_", 1) => format!("!{}", render_operand(&args[0])?),
                ("-_", 1) => format!("-{}", render_operand(&args[0])?),
                ("_[_]", 2) => format!("{}[{}]", render_operand(&args[0])?, render(&args[1])?),
                ("_?_:_", 3) => format!(
                    "{} ? {} : {}",
                    render_operand(&args[0])?,
                    render_operand(&args[1])?,
                    render_operand(&args[2])?
                ),
                (name, _) if !name.starts_with(|c: char| c.is_ascii_alphabetic()) => return None,
                (name, _) => match &call.target {
                    Some(target) => {
                        format!("{}.{name}({})", render_operand(target)?, render_all(args)?)
                    }
                    None => format!("{name}({})", render_all(args)?),
                },
            }
        }
        _ => return None,
    })
}

fn render_all(nodes: &[IdedExpr]) -> Option<String> {
    let parts: Option<Vec<String>> = nodes.iter().map(render).collect();
    Some(parts?.join(", "))
}

/// Renders an operand, in parentheses when it is itself an operator expression.
fn render_operand(node: &IdedExpr) -> Option<String> {
    let text = render(node)?;
    let is_operator = matches!(&node.expr, Expr::Call(c)
        if !c.func_name.starts_with(|ch: char| ch.is_ascii_alphabetic()) && c.func_name != "_[_]");
    Some(if is_operator {
        format!("({text})")
    } else {
        text
    })
}

fn binary_operator(name: &str) -> Option<&'static str> {
    Some(match name {
        "_==_" => "==",
        "_!=_" => "!=",
        "_<_" => "<",
        "_<=_" => "<=",
        "_>_" => ">",
        "_>=_" => ">=",
        "_+_" => "+",
        "_-_" => "-",
        "_*_" => "*",
        "_/_" => "/",
        "_%_" => "%",
        "_&&_" => "&&",
        "_||_" => "||",
        "@in" => "in",
        _ => return None,
    })
}

fn render_literal(literal: &LiteralValue) -> Option<String> {
    Some(match literal {
        LiteralValue::Boolean(b) => b.inner().to_string(),
        LiteralValue::Int(i) => i.inner().to_string(),
        LiteralValue::UInt(u) => format!("{}u", u.inner()),
        LiteralValue::Double(d) => format!("{:?}", d.inner()),
        // A JSON string is a valid CEL string literal.
        LiteralValue::String(s) => serde_json::to_string(s.inner()).ok()?,
        LiteralValue::Null => "null".to_string(),
        LiteralValue::Bytes(_) => return None,
    })
}

// ---------------------------------------------------------------------------------------------
// Helper functions

/// The CEL environment rules run in: the standard library plus the helpers, built once per
/// process (building a standard environment costs tens of microseconds).
pub(crate) fn environment() -> Arc<Env> {
    static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| {
        let mut env = Env::stdlib();
        let declared = [
            env.add_overload("role_names", "role_names_dyn", vec![DYN_TYPE], role_names),
            env.add_overload(
                "has_role",
                "has_role_dyn_string",
                vec![DYN_TYPE, STRING_TYPE],
                has_role,
            ),
            env.add_overload(
                "workspace_roles",
                "workspace_roles_dyn",
                vec![DYN_TYPE],
                workspace_roles,
            ),
            env.add_overload(
                "has_label",
                "has_label_dyn_string",
                vec![DYN_TYPE, STRING_TYPE],
                has_label,
            ),
            env.add_overload(
                "label",
                "label_dyn_string",
                vec![DYN_TYPE, STRING_TYPE],
                label,
            ),
            env.add_overload(
                "email_domain",
                "email_domain_dyn",
                vec![DYN_TYPE],
                email_domain,
            ),
            env.add_overload(
                "changed",
                "changed_dyn_string",
                vec![DYN_TYPE, STRING_TYPE],
                changed,
            ),
        ];
        for result in declared {
            result.expect("the helpers' names are not standard CEL functions");
        }
        Arc::new(env)
    });
    Arc::clone(&ENV)
}

type HelperResult<'b, 'v> = Result<CowVal<'b, 'v>, ExecutionError>;

fn is_null(value: &dyn Val) -> bool {
    value.get_type().kind() == Kind::NullType
}

/// A field of a map value; absent and `null` fields are both `None`.
fn field<'a, 'v>(value: &'a (dyn Val + 'v), key: &'static str) -> Option<&'a (dyn Val + 'v)> {
    let map = value.downcast_ref::<CelMap>()?;
    let key: CelMapKey<'v> = CelMapKey::from(key);
    map.inner()
        .get(&key)
        .map(|v| v.as_ref())
        .filter(|v| !is_null(*v))
}

fn string_field<'a>(value: &'a dyn Val, key: &'static str) -> Option<&'a str> {
    field(value, key)?
        .downcast_ref::<CelString>()
        .map(|s| s.inner())
}

/// The elements of a list field; an absent or `null` field is empty.
fn list_field<'a, 'v>(
    function: &str,
    value: &'a (dyn Val + 'v),
    key: &'static str,
) -> Result<&'a [Box<dyn Val + 'v>], ExecutionError> {
    match field(value, key) {
        None => Ok(&[]),
        Some(list) => list
            .downcast_ref::<CelList>()
            .map(|l| l.inner())
            .ok_or_else(|| {
                ExecutionError::function_error(
                    function,
                    format!("`{key}` is a {}, expected a list", list.get_type().name()),
                )
            }),
    }
}

/// Checks that a helper's subject is a map or null (treated as empty).
fn subject<'a, 'v>(
    function: &str,
    value: &'a (dyn Val + 'v),
    what: &str,
) -> Result<Option<&'a (dyn Val + 'v)>, ExecutionError> {
    if is_null(value) {
        Ok(None)
    } else if value.downcast_ref::<CelMap>().is_some() {
        Ok(Some(value))
    } else {
        Err(ExecutionError::function_error(
            function,
            format!(
                "expected {what} (a map) or null, got a {}",
                value.get_type().name()
            ),
        ))
    }
}

/// The permissions of a user or group body (none for null).
fn permissions<'a, 'v>(
    function: &str,
    value: &'a (dyn Val + 'v),
) -> Result<&'a [Box<dyn Val + 'v>], ExecutionError> {
    match subject(function, value, "a user or group")? {
        None => Ok(&[]),
        Some(body) => list_field(function, body, "permissions"),
    }
}

fn string_arg<'a>(args: &'a [CowVal<'_, '_>], i: usize) -> &'a str {
    // Overload resolution only calls a helper with a string where its signature says so.
    args[i]
        .downcast_ref::<CelString>()
        .map(|s| s.inner())
        .unwrap_or_default()
}

fn string_list<'b, 'v>(items: Vec<String>) -> CowVal<'b, 'v> {
    let items: Vec<Box<dyn Val + 'v>> = items
        .into_iter()
        .map(|s| Box::new(CelString::from(s)) as Box<dyn Val + 'v>)
        .collect();
    CowVal::owned(CelList::from(items))
}

fn role_names<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> HelperResult<'b, 'v> {
    let names = permissions("role_names", args[0].as_ref())?
        .iter()
        .filter_map(|p| string_field(p.as_ref(), "roleName"))
        .map(str::to_owned)
        .collect();
    Ok(string_list(names))
}

fn has_role<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> HelperResult<'b, 'v> {
    let role = string_arg(&args, 1);
    let found = permissions("has_role", args[0].as_ref())?
        .iter()
        .any(|p| string_field(p.as_ref(), "roleName") == Some(role));
    Ok(CowVal::owned(CelBool::from(found)))
}

/// Whether a value restricts by labels: a non-empty `labels` list.
fn has_label_restriction(value: &dyn Val) -> bool {
    field(value, "labels").is_some_and(|labels| {
        labels
            .downcast_ref::<CelList>()
            .is_none_or(|l| !l.inner().is_empty())
    })
}

fn workspace_roles<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> HelperResult<'b, 'v> {
    let mut names: Vec<String> = Vec::new();
    for permission in permissions("workspace_roles", args[0].as_ref())? {
        let permission = permission.as_ref();
        if has_label_restriction(permission) {
            continue;
        }
        let resources = list_field("workspace_roles", permission, "resources")?;
        let whole_workspace = resources.iter().any(|r| {
            string_field(r.as_ref(), "type") == Some("WORKSPACE")
                && !has_label_restriction(r.as_ref())
        });
        if let (true, Some(name)) = (whole_workspace, string_field(permission, "roleName"))
            && !names.iter().any(|n| n == name)
        {
            names.push(name.to_owned());
        }
    }
    Ok(string_list(names))
}

/// The `value` of the label with this key, `Some("")` for a label without a string value.
fn find_label<'a>(
    function: &str,
    value: &'a dyn Val,
    key: &str,
) -> Result<Option<&'a str>, ExecutionError> {
    let Some(body) = subject(function, value, "a resource")? else {
        return Ok(None);
    };
    Ok(list_field(function, body, "labels")?
        .iter()
        .find(|l| string_field(l.as_ref(), "key") == Some(key))
        .map(|l| string_field(l.as_ref(), "value").unwrap_or_default()))
}

fn has_label<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> HelperResult<'b, 'v> {
    let found = find_label("has_label", args[0].as_ref(), string_arg(&args, 1))?.is_some();
    Ok(CowVal::owned(CelBool::from(found)))
}

fn label<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> HelperResult<'b, 'v> {
    let value = find_label("label", args[0].as_ref(), string_arg(&args, 1))?
        .unwrap_or_default()
        .to_owned();
    Ok(CowVal::owned(CelString::from(value)))
}

fn email_domain<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> HelperResult<'b, 'v> {
    let value = args[0].as_ref();
    let domain = if is_null(value) {
        String::new()
    } else {
        let email = value
            .downcast_ref::<CelString>()
            .ok_or_else(|| {
                ExecutionError::function_error(
                    "email_domain",
                    format!(
                        "expected a string or null, got a {}",
                        value.get_type().name()
                    ),
                )
            })?
            .inner();
        email
            .rsplit_once('@')
            .map(|(_, domain)| domain.to_lowercase())
            .unwrap_or_default()
    };
    Ok(CowVal::owned(CelString::from(domain)))
}

fn changed<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> HelperResult<'b, 'v> {
    let prefix = string_arg(&args, 1);
    let found = match subject("changed", args[0].as_ref(), "`change`")? {
        None => false,
        Some(change) => list_field("changed", change, "paths")?.iter().any(|p| {
            p.downcast_ref::<CelString>().is_some_and(|p| {
                let path = p.inner();
                path.strip_prefix(prefix).is_some_and(|rest| {
                    rest.is_empty() || rest.starts_with('.') || rest.starts_with('[')
                })
            })
        }),
    };
    Ok(CowVal::owned(CelBool::from(found)))
}
