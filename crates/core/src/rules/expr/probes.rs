//! What an explanation reports: the sub-expressions of a condition worth showing, and their
//! text written back from the AST.

use std::collections::HashSet;

use cel::common::ast::{EntryExpr, Expr, IdedExpr, LiteralValue};

use super::{CHANGE_VARIABLES, COMMON_VARIABLES, EXPLAINED_VARIABLES, HELPER_FUNCTIONS, Probe};

/// Collects, in source order, each helper call, each `has()` test and each maximal chain of
/// field selections and literal indexes rooted at a rule variable (`resource.email`,
/// `change.paths`, `inventory.role_holders["Workspace Owner"]`), plus the small bare
/// variables, skipping anything that reads a comprehension variable (it has no value outside
/// its loop) or that the renderer cannot write back as text.
pub(super) fn collect_probes<'a>(
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
