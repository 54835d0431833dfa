//! `segwatch access review import FILE`: a filled-in review file read back, every line checked
//! against the grants of the snapshot it was exported from, and recorded as evidence
//! ([`Store::record_access_review`], sealed in the hash chain).

use std::collections::HashMap;
use std::path::Path;

use segwatch_core::access::{EffectiveAccess, Grant};
use segwatch_core::ids::SnapshotId;
use segwatch_core::model::sha256_hex;
use segwatch_store::{NewAccessReview, NewDecision, RecordedReview, Store, StoreError};

use super::{COLUMNS, identity, label_text, via_columns};

/// Why a file was not imported. Every message names the file, and the line and column when
/// one is at fault.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file could not be read.
    #[error("cannot read {file}: {cause}")]
    Read {
        /// The file.
        file: String,
        /// Why.
        cause: std::io::Error,
    },
    /// The file is not CSV, or a line is not.
    #[error("{file}: {message}")]
    Csv {
        /// The file.
        file: String,
        /// What the CSV reader said.
        message: String,
    },
    /// A line (or the header) is not what an export writes, or its decision is unknown.
    #[error("{file}:{line}: {message}")]
    Line {
        /// The file.
        file: String,
        /// The line (the header is line 1).
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// The file holds no line to import.
    #[error("{file}: no review line under the header")]
    Empty {
        /// The file.
        file: String,
    },
    /// Reading the snapshot or recording the review failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The columns an import reads (every other column of [`COLUMNS`] may be absent or edited).
const READ: [&str; 12] = [
    "workspace",
    "snapshot_id",
    "user_email",
    "user_id",
    "role_id",
    "resource_type",
    "resource_id",
    "via_group_id",
    "label_filter",
    "decision",
    "reviewer",
    "reviewed_at",
];

/// Reads the review file at `path` (an export of workspace `workspace`, filled in), checks
/// every line against the grants of the snapshot it names and records it. `reviewer` names who
/// decided the lines whose `reviewer` column is empty.
pub fn import(
    store: &mut Store,
    workspace_id: i64,
    workspace: &str,
    path: &Path,
    reviewer: Option<&str>,
) -> Result<RecordedReview, ImportError> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|cause| ImportError::Read {
        file: file.clone(),
        cause,
    })?;
    let csv_error = |e: csv::Error| ImportError::Csv {
        file: file.clone(),
        message: e.to_string(),
    };
    let at_line = |line: u64, message: String| ImportError::Line {
        file: file.clone(),
        line,
        message,
    };
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(bytes.as_slice());
    let header = reader.headers().map_err(csv_error)?.clone();
    let position = |name: &str| header.iter().position(|h| h.trim() == name);
    let mut columns: HashMap<&str, usize> = HashMap::new();
    for name in READ.into_iter().chain(["comment"]) {
        match position(name) {
            Some(i) => {
                columns.insert(name, i);
            }
            None if name == "comment" => {}
            None => {
                return Err(at_line(
                    1,
                    format!(
                        "the header has no column `{name}`: import a file written by `segwatch access review --format csv` (columns: {})",
                        COLUMNS.join(", ")
                    ),
                ));
            }
        }
    }
    // `column N` as a spreadsheet counts them, from 1.
    let cell = |record: &csv::StringRecord, name: &str| -> String {
        columns
            .get(name)
            .and_then(|&i| record.get(i))
            .unwrap_or("")
            .trim()
            .to_string()
    };
    let where_ = |name: &str| format!("column `{name}` (column {})", columns[name] + 1);

    let mut lines = Vec::new();
    let mut snapshot: Option<(i64, u64)> = None;
    for record in reader.records() {
        let record = record.map_err(csv_error)?;
        let line = record.position().map_or(0, |p| p.line());
        if record.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        let ws = cell(&record, "workspace");
        if ws != workspace {
            return Err(at_line(
                line,
                format!(
                    "{}: `{ws}` is not the workspace being imported into (`{workspace}`; choose it with --workspace)",
                    where_("workspace")
                ),
            ));
        }
        let text = cell(&record, "snapshot_id");
        let id: i64 = text.parse().map_err(|_| {
            at_line(
                line,
                format!("{}: `{text}` is not a snapshot id", where_("snapshot_id")),
            )
        })?;
        match snapshot {
            None => snapshot = Some((id, line)),
            Some((first, first_line)) if first != id => {
                return Err(at_line(
                    line,
                    format!(
                        "{}: snapshot {id}, but line {first_line} has snapshot {first}: one file reviews one snapshot",
                        where_("snapshot_id")
                    ),
                ));
            }
            Some(_) => {}
        }
        let decision = match cell(&record, "decision").to_ascii_lowercase().as_str() {
            "" => None,
            "approve" | "approved" => Some("approve"),
            "revoke" | "revoked" => Some("revoke"),
            _ => {
                return Err(at_line(
                    line,
                    format!(
                        "{}: unknown decision `{}`; expected approve, approved, revoke, revoked or empty (undecided)",
                        where_("decision"),
                        cell(&record, "decision")
                    ),
                ));
            }
        };
        let named = Some(cell(&record, "reviewer")).filter(|r| !r.is_empty());
        let who = named.or_else(|| reviewer.map(str::to_string));
        if decision.is_some() && who.is_none() {
            return Err(at_line(
                line,
                format!(
                    "{}: a decision needs a reviewer: fill in the column or pass --reviewer NAME",
                    where_("reviewer")
                ),
            ));
        }
        lines.push((line, record, decision, who));
    }
    let Some((snapshot_id, _)) = snapshot else {
        return Err(ImportError::Empty { file });
    };
    store.snapshot(workspace_id, SnapshotId(snapshot_id))?;
    let resources = crate::stored::state_at(store, workspace_id, SnapshotId(snapshot_id))?;
    let access = EffectiveAccess::compute(&resources);
    // A grant as a line names it: subject, role, resource, group and label filter.
    type Key = (String, String, String, String, String, String);
    let key_of = |subject: &str, g: (&str, &str, &str, &str, &str)| -> Key {
        (
            subject.to_string(),
            g.0.to_string(),
            g.1.to_string(),
            g.2.to_string(),
            g.3.to_string(),
            g.4.to_string(),
        )
    };
    let grants: HashMap<Key, Grant> = access
        .grants()
        .map(|g| {
            let subject = if g.user.id.is_empty() {
                format!("invite {}", g.user.email.to_ascii_lowercase())
            } else {
                g.user.id.clone()
            };
            let (_, group) = via_columns(&g.via);
            let filter = label_text(&g);
            let key = key_of(
                &subject,
                (
                    &g.role_id,
                    &g.resource.kind,
                    &g.resource.id,
                    &group,
                    &filter,
                ),
            );
            (key, g)
        })
        .collect();
    let mut decisions = Vec::with_capacity(lines.len());
    for (line, record, decision, who) in lines {
        let user_id = cell(&record, "user_id");
        let email = cell(&record, "user_email");
        let subject = if user_id.is_empty() {
            format!("invite {}", email.to_ascii_lowercase())
        } else {
            user_id
        };
        let key = key_of(
            &subject,
            (
                &cell(&record, "role_id"),
                &cell(&record, "resource_type"),
                &cell(&record, "resource_id"),
                &cell(&record, "via_group_id"),
                &cell(&record, "label_filter"),
            ),
        );
        let Some(g) = grants.get(&key) else {
            return Err(at_line(
                line,
                format!(
                    "no grant of snapshot {snapshot_id} matches this line (user `{email}`, role `{}`, {} `{}`, via group `{}`, label filter `{}`): its grant columns were edited, or it comes from another export",
                    key.1, key.2, key.3, key.4, key.5
                ),
            ));
        };
        let (group_name, group) = via_columns(&g.via);
        let optional = |name: &str| Some(cell(&record, name)).filter(|v| !v.is_empty());
        decisions.push(NewDecision {
            line: line as i64,
            grant: identity(g),
            email: g.user.email.clone(),
            invite: g.invite,
            resource_name: g.resource.name.clone(),
            role_name: g.role_name.clone(),
            via_group_name: (!group.is_empty()).then_some(group_name),
            decision,
            reviewer: who.filter(|_| decision.is_some()),
            reviewed_at: optional("reviewed_at"),
            comment: optional("comment"),
        });
    }
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| file.clone());
    Ok(store.record_access_review(&NewAccessReview {
        workspace_id,
        snapshot_id,
        file_name,
        file_sha256: sha256_hex(&bytes),
        decisions,
    })?)
}
