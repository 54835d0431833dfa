//! Rule files → validated, compiled rules, or every mistake in them.
//!
//! Each file is parsed into a tree of [`Node`](yaml::Node)s that know their line, and each rule
//! is checked field by field ([`parser`], [`template`], [`exceptions`]), so that one run reports
//! every mistake of every rule with its line, instead of the first one serde would stop at.

mod exceptions;
mod parser;
mod template;

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use minijinja::{Environment, UndefinedBehavior};

use super::yaml::{self, Value};
use super::{LoadError, LoadErrors, Rule, RuleSet};
use parser::RuleParser;

/// The longest rule id accepted.
const MAX_ID_LEN: usize = 64;

/// Loads a rule file or a directory of them.
pub(super) fn load_path(path: &Path) -> Result<RuleSet, LoadErrors> {
    let metadata = fs::metadata(path).map_err(|e| {
        LoadErrors(vec![file_error(
            path,
            format!("cannot read rules from here: {e}"),
        )])
    })?;
    if !metadata.is_dir() {
        return load_sources(vec![(path.to_path_buf(), fs::read_to_string(path))]);
    }
    let mut files = Vec::new();
    let mut errors = Vec::new();
    let mut visited = HashSet::new();
    find_rule_files(path, &mut visited, &mut files, &mut errors);
    files.sort();
    let sources = files
        .into_iter()
        .map(|f| {
            let text = fs::read_to_string(&f);
            (f, text)
        })
        .collect();
    match load_sources(sources) {
        Ok(rules) if errors.is_empty() => Ok(rules),
        Ok(_) => Err(LoadErrors(errors)),
        Err(LoadErrors(more)) => {
            errors.extend(more);
            Err(LoadErrors(errors))
        }
    }
}

/// Collects `*.yaml`/`*.yml` files under `dir`, skipping hidden entries (`.git`, editor
/// files) and directories already visited through a symlink.
fn find_rule_files(
    dir: &Path,
    visited: &mut HashSet<PathBuf>,
    files: &mut Vec<PathBuf>,
    errors: &mut Vec<LoadError>,
) {
    if let Ok(canonical) = dir.canonicalize()
        && !visited.insert(canonical)
    {
        return;
    }
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            errors.push(file_error(dir, format!("cannot list this directory: {e}")));
            return;
        }
    };
    for entry in entries {
        let path = match entry {
            Ok(entry) => entry.path(),
            Err(e) => {
                errors.push(file_error(dir, format!("cannot list this directory: {e}")));
                continue;
            }
        };
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        if path.is_dir() {
            find_rule_files(&path, visited, files, errors);
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e == "yaml" || e == "yml")
        {
            files.push(path);
        }
    }
}

fn file_error(file: &Path, message: String) -> LoadError {
    LoadError {
        file: file.to_path_buf(),
        line: None,
        rule_id: None,
        field: None,
        message,
    }
}

/// Loads rule files already read (or that failed to read), in the given order.
pub(super) fn load_sources(
    sources: Vec<(PathBuf, io::Result<String>)>,
) -> Result<RuleSet, LoadErrors> {
    let mut templates = Environment::new();
    // A typo in a template variable should not silently render as nothing: with strict
    // undefined, rendering fails, is logged, and the summary falls back to "<title>: <name>".
    templates.set_undefined_behavior(UndefinedBehavior::Strict);
    let mut errors = Vec::new();
    let mut rules: Vec<Rule> = Vec::new();
    let mut first_definition: HashMap<String, (PathBuf, usize)> = HashMap::new();
    // Numbers every rule read, valid or not, so that template names never collide.
    let mut sequence = 0;

    for (file, text) in sources {
        let text = match text {
            Ok(text) => text,
            Err(e) => {
                errors.push(file_error(&file, format!("cannot read this file: {e}")));
                continue;
            }
        };
        let mut file_errors = Vec::new();
        let documents = match yaml::parse(&text) {
            Ok(documents) => documents,
            Err(e) => {
                errors.push(LoadError {
                    file: file.clone(),
                    line: e.line,
                    rule_id: None,
                    field: None,
                    message: format!("invalid YAML: {}", e.message),
                });
                continue;
            }
        };
        let mut items = Vec::new();
        for document in documents {
            match document.value {
                Value::Null => {}
                Value::Seq(rules) => items.extend(rules),
                _ => file_errors.push(LoadError {
                    file: file.clone(),
                    line: Some(document.line),
                    rule_id: None,
                    field: None,
                    message: format!(
                        "a rule file must be a YAML list of rules, each starting with `- id: …`; \
                         found {}",
                        document.describe()
                    ),
                }),
            }
        }
        for item in &items {
            let mut parser = RuleParser {
                file: &file,
                rule_id: None,
                errors: Vec::new(),
            };
            sequence += 1;
            let rule = parser.parse(item, &mut templates, sequence);
            if let Some(id) = &parser.rule_id
                && is_valid_id(id)
            {
                match first_definition.get(id) {
                    Some((first_file, first_line)) => parser.errors.push(LoadError {
                        file: file.clone(),
                        line: Some(item.line),
                        rule_id: Some(id.clone()),
                        field: Some("id".to_string()),
                        message: format!(
                            "duplicate rule id `{id}`: already defined at {}:{first_line}; rule \
                             ids must be unique across all rule files",
                            first_file.display()
                        ),
                    }),
                    None => {
                        first_definition.insert(id.clone(), (file.clone(), item.line));
                    }
                }
            }
            match rule {
                Some(rule) if parser.errors.is_empty() => rules.push(rule),
                _ => file_errors.append(&mut parser.errors),
            }
        }
        // Errors of one rule come field by field; present each file top to bottom.
        file_errors.sort_by_key(|e| e.line);
        errors.append(&mut file_errors);
    }

    if !errors.is_empty() {
        return Err(LoadErrors(errors));
    }
    let by_id = rules
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id.clone(), i))
        .collect();
    Ok(RuleSet {
        rules,
        by_id,
        templates: Arc::new(templates),
    })
}

fn is_valid_id(id: &str) -> bool {
    id.len() <= MAX_ID_LEN
        && id.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}
