//! Regulations (data-subject deletion and suppression): `POST /regulations`,
//! `GET /regulations/{id}` and `GET /regulations`. A regulation's status moves
//! `INITIALIZED` → `RUNNING` → `FINISHED`, one step per [`super::SimConfig::regulation_step`],
//! and so does each of the (up to three) destinations it reaches.

use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};

/// The `regulationType`s `POST /regulations` accepts (API spec 32.0.5 and 73.x).
pub(crate) const REGULATION_TYPES: &[&str] = &[
    "BULK_DELETE_ONLY",
    "DELETE_INTERNAL",
    "DELETE_ONLY",
    "SUPPRESS_ONLY",
    "SUPPRESS_WITH_DELETE",
    "UNSUPPRESS",
    "SUPPRESS_WITH_DELETE_INTERNAL",
    "DELETE_ARCHIVE_ONLY",
];
/// Most destinations a simulated regulation reports on.
const MAX_DESTINATIONS: usize = 3;

/// A regulation as the simulator received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRegulation {
    /// The `regulateId` handed back.
    pub id: String,
    /// `regulationType` as sent.
    pub regulation_type: String,
    /// `subjectType` as sent.
    pub subject_type: String,
    /// `subjectIds` as sent.
    pub subject_ids: Vec<String>,
}

struct Entry {
    recorded: RecordedRegulation,
    created: Instant,
    created_at: chrono::DateTime<chrono::Utc>,
    /// (id, name) of the destinations it reaches.
    destinations: Vec<(String, String)>,
}

/// Every regulation created so far, and how fast they progress.
pub(crate) struct Regulations {
    step: Duration,
    entries: Vec<Entry>,
}

/// The status after `steps` whole steps.
fn status_after(steps: u32) -> &'static str {
    match steps {
        0 => "INITIALIZED",
        1 => "RUNNING",
        _ => "FINISHED",
    }
}

impl Regulations {
    pub(crate) fn new(step: Duration) -> Self {
        Regulations {
            step,
            entries: Vec::new(),
        }
    }

    /// Validates a `POST /regulations` body as the spec does; `Err((field, message))`.
    pub(crate) fn validate(body: &Value) -> Result<RecordedRegulation, (&'static str, String)> {
        let text = |key: &'static str| {
            body.get(key)
                .and_then(Value::as_str)
                .ok_or((key, format!("`{key}` is required and must be a string")))
        };
        let regulation_type = text("regulationType")?;
        if !REGULATION_TYPES.contains(&regulation_type) {
            return Err((
                "regulationType",
                format!(
                    "`{regulation_type}` is not one of {}",
                    REGULATION_TYPES.join(", ")
                ),
            ));
        }
        let subject_type = text("subjectType")?;
        if subject_type != "USER_ID" && subject_type != "OBJECT_ID" {
            return Err((
                "subjectType",
                format!("`{subject_type}` is not one of USER_ID, OBJECT_ID"),
            ));
        }
        let ids = body
            .get("subjectIds")
            .and_then(Value::as_array)
            .ok_or(("subjectIds", "`subjectIds` is required".to_owned()))?;
        let subject_ids: Vec<String> = ids
            .iter()
            .map(|v| v.as_str().filter(|s| !s.is_empty()).map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or((
                "subjectIds",
                "every subject id must be a non-empty string".to_owned(),
            ))?;
        if subject_ids.is_empty() {
            return Err(("subjectIds", "`subjectIds` must not be empty".to_owned()));
        }
        Ok(RecordedRegulation {
            id: String::new(),
            regulation_type: regulation_type.to_owned(),
            subject_type: subject_type.to_owned(),
            subject_ids,
        })
    }

    /// Stores a validated regulation reaching `destinations` (id, name); returns its id.
    pub(crate) fn create(
        &mut self,
        mut recorded: RecordedRegulation,
        destinations: Vec<(String, String)>,
    ) -> String {
        let id = format!("reg_sim_{:06}", self.entries.len() + 1);
        recorded.id = id.clone();
        self.entries.push(Entry {
            recorded,
            created: Instant::now(),
            created_at: chrono::Utc::now(),
            destinations: destinations.into_iter().take(MAX_DESTINATIONS).collect(),
        });
        id
    }

    pub(crate) fn recorded(&self) -> Vec<RecordedRegulation> {
        self.entries.iter().map(|e| e.recorded.clone()).collect()
    }

    fn steps(&self, entry: &Entry, now: Instant) -> u32 {
        let elapsed = now.saturating_duration_since(entry.created);
        if self.step.is_zero() {
            return 2;
        }
        (elapsed.as_nanos() / self.step.as_nanos()).min(2) as u32
    }

    fn finished_at(&self, entry: &Entry, steps: u32, after: u32) -> Value {
        if steps >= after {
            let at = entry.created_at
                + chrono::Duration::from_std(self.step * after).unwrap_or_default();
            json!(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        } else {
            Value::Null
        }
    }

    /// `data.regulation` of `GET /regulations/{id}`.
    pub(crate) fn get(&self, id: &str, workspace_id: &str) -> Option<Value> {
        let now = Instant::now();
        let entry = self.entries.iter().find(|e| e.recorded.id == id)?;
        let steps = self.steps(entry, now);
        let destinations: Vec<Value> = entry
            .destinations
            .iter()
            .enumerate()
            .map(|(i, (dest_id, name))| {
                // The first destination finishes a step early, so RUNNING shows mixed progress.
                let finish = if i == 0 { 1 } else { 2 };
                let status = if steps >= finish {
                    "FINISHED"
                } else {
                    status_after(steps)
                };
                json!({
                    "name": name,
                    "id": dest_id,
                    "status": status,
                    "errString": "",
                    "finishedAt": self.finished_at(entry, steps, finish),
                })
            })
            .collect();
        Some(json!({
            "id": entry.recorded.id,
            "workspaceId": workspace_id,
            "overallStatus": status_after(steps),
            "createdAt": entry.created_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "finishedAt": self.finished_at(entry, steps, 2),
            "streamStatus": [{"id": "stream_sim_1", "destinationStatus": destinations}],
        }))
    }

    /// The `RegulationListEntryV1`s, oldest first, of the given `status` and types (`None`:
    /// any).
    pub(crate) fn list(&self, status: Option<&str>, types: Option<&[String]>) -> Vec<ListEntry> {
        let now = Instant::now();
        self.entries
            .iter()
            .map(|e| {
                let steps = self.steps(e, now);
                ListEntry {
                    id: e.recorded.id.clone(),
                    subject_type: e.recorded.subject_type.clone(),
                    subjects: e.recorded.subject_ids.clone(),
                    status: status_after(steps),
                    created_at: e
                        .created_at
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    finished_at: self.finished_at(e, steps, 2),
                    regulation_type: e.recorded.regulation_type.clone(),
                }
            })
            .filter(|e| status.is_none_or(|s| s == e.status))
            .filter(|e| types.is_none_or(|t| t.contains(&e.regulation_type)))
            .collect()
    }
}

/// One item of `GET /regulations`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ListEntry {
    id: String,
    subject_type: String,
    subjects: Vec<String>,
    status: &'static str,
    created_at: String,
    finished_at: Value,
    regulation_type: String,
}
