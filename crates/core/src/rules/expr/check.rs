//! Checking a parsed condition: every variable, function, helper and macro it names, reported
//! with its position and a caret excerpt, and suggestions for likely typos.

use std::collections::HashSet;

use cel::Program;
use cel::common::ast::{EntryExpr, Expr, IdedExpr};

use super::{
    CEL_MACROS, CEL_STANDARD_FUNCTIONS, CHANGE_VARIABLES, COMMON_VARIABLES, HELPER_FUNCTIONS,
    Scope, TIME_VARIABLES, TYPE_NAMES, excerpt, helper_usage, line_column, macro_usage,
};

pub(super) struct Checker<'a> {
    pub(super) program: &'a Program,
    pub(super) source: &'a str,
    pub(super) scope: Scope,
    /// Comprehension variables in scope, innermost last.
    pub(super) bound: Vec<&'a str>,
    pub(super) errors: Vec<String>,
    /// What was reported already, so that a name misused twice is reported once.
    pub(super) reported: HashSet<String>,
    pub(super) time_dependent: bool,
    pub(super) variables: HashSet<&'static str>,
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

    pub(super) fn check(&mut self, node: &'a IdedExpr) {
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
