//! Segment's regulations (data-subject deletion and suppression): `POST /regulations` and
//! `GET /regulations/{regulateId}`.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{SegmentClient, SegmentError};

/// What a regulation asks Segment to do with a subject's data (`regulationType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[value(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RegulationType {
    /// Stop collecting the subject's data and delete what Segment and destinations hold.
    SuppressWithDelete,
    /// Delete what Segment and destinations hold, without suppressing new data.
    DeleteOnly,
    /// Stop collecting the subject's data, deleting nothing.
    SuppressOnly,
    /// Lift an earlier suppression.
    Unsuppress,
    /// Delete from Segment's internal storage only (not from destinations).
    DeleteInternal,
}

impl RegulationType {
    /// The API's name, e.g. `SUPPRESS_WITH_DELETE`.
    pub fn as_str(self) -> &'static str {
        match self {
            RegulationType::SuppressWithDelete => "SUPPRESS_WITH_DELETE",
            RegulationType::DeleteOnly => "DELETE_ONLY",
            RegulationType::SuppressOnly => "SUPPRESS_ONLY",
            RegulationType::Unsuppress => "UNSUPPRESS",
            RegulationType::DeleteInternal => "DELETE_INTERNAL",
        }
    }
}

/// The subject type segwatch regulates by: Segment's `userId`.
pub const SUBJECT_TYPE_USER_ID: &str = "USER_ID";

/// Overall statuses after which a regulation no longer changes.
pub const FINAL_STATUSES: &[&str] = &[
    "FINISHED",
    "FAILED",
    "INVALID",
    "NOT_SUPPORTED",
    "PARTIAL_SUCCESS",
];

/// A regulation as `GET /regulations/{regulateId}` returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Regulation {
    /// The regulation id (`regulateId`).
    pub id: String,
    /// `INITIALIZED`, `RUNNING`, `FINISHED`, `FAILED`, `INVALID`, `NOT_SUPPORTED` or
    /// `PARTIAL_SUCCESS` (kept as text: newer API versions may add statuses).
    pub overall_status: String,
    /// When Segment created it.
    #[serde(default)]
    pub created_at: Option<String>,
    /// When it finished, if it has.
    #[serde(default)]
    pub finished_at: Option<String>,
    /// Progress per stream and destination.
    #[serde(default)]
    pub stream_status: Vec<StreamStatus>,
}

impl Regulation {
    /// Whether the overall status is final.
    pub fn is_final(&self) -> bool {
        FINAL_STATUSES.contains(&self.overall_status.as_str())
    }
}

/// Progress of one stream of a regulation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamStatus {
    /// The stream id.
    #[serde(default)]
    pub id: Option<String>,
    /// Progress per destination.
    #[serde(default)]
    pub destination_status: Vec<DestinationStatus>,
}

/// Progress of a regulation in one destination.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DestinationStatus {
    /// The destination's name.
    #[serde(default)]
    pub name: Option<String>,
    /// The destination's id.
    #[serde(default)]
    pub id: Option<String>,
    /// Its status (same values as the overall status).
    #[serde(default)]
    pub status: Option<String>,
    /// Why it failed, if it did.
    #[serde(default)]
    pub err_string: Option<String>,
    /// When it finished, if it has.
    #[serde(default)]
    pub finished_at: Option<String>,
}

impl SegmentClient {
    /// `POST /regulations` for user ids; returns the new regulation's id (`regulateId`).
    ///
    /// Not retried once it may have been received (see [`SegmentClient::post_data`]).
    pub async fn create_regulation(
        &self,
        regulation_type: RegulationType,
        user_ids: &[String],
    ) -> Result<String, SegmentError> {
        let path = "/regulations";
        let body = json!({
            "regulationType": regulation_type.as_str(),
            "subjectType": SUBJECT_TYPE_USER_ID,
            "subjectIds": user_ids,
        });
        let data = self.post_data(path, &body).await?;
        match data.get("regulateId") {
            Some(Value::String(id)) if !id.is_empty() => Ok(id.clone()),
            _ => Err(SegmentError::Malformed {
                method: "POST".to_owned(),
                path: path.to_owned(),
                detail: "`data.regulateId` is missing or not a string".to_owned(),
            }),
        }
    }

    /// `GET /regulations/{regulateId}`.
    pub async fn get_regulation(&self, regulate_id: &str) -> Result<Regulation, SegmentError> {
        let path = format!("/regulations/{}", urlencoding_segment(regulate_id));
        let value = self.get_object(&path, "regulation").await?;
        serde_json::from_value(value).map_err(|e| SegmentError::Malformed {
            method: "GET".to_owned(),
            path,
            detail: format!("`data.regulation` is not a regulation: {e}"),
        })
    }
}

/// Percent-encodes a path segment, so an id cannot change the path it is put in.
fn urlencoding_segment(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
