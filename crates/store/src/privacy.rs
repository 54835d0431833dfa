//! Data-subject requests (Segment regulations) made with segwatch, recorded with the subject
//! pseudonymised: only an HMAC of the subject id, keyed with the database's own random salt.

use hmac::{Hmac, Mac};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use sha2::Sha256;

use super::{Result, Store, StoreError, opt_time_col, time_col};
use segwatch_core::time::Timestamp;

/// A request to record, right after Segment accepted it.
#[derive(Debug, Clone)]
pub struct NewPrivacyRequest<'a> {
    /// The workspace it was made in.
    pub workspace_id: i64,
    /// Segment's `regulateId`.
    pub regulation_id: &'a str,
    /// e.g. `SUPPRESS_WITH_DELETE`.
    pub regulation_type: &'a str,
    /// e.g. `USER_ID`.
    pub subject_type: &'a str,
    /// The subject id in clear; only its HMAC is stored.
    pub subject_id: &'a str,
    /// The OS user who ran the command.
    pub requested_by_os_user: Option<&'a str>,
    /// Who asked for it, as given on the command line.
    pub requested_by: Option<&'a str>,
}

/// A recorded request, as `privacy_requests` holds it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PrivacyRequestRecord {
    /// Segment's `regulateId`.
    pub regulation_id: String,
    /// e.g. `SUPPRESS_WITH_DELETE`.
    pub regulation_type: String,
    /// e.g. `USER_ID`.
    pub subject_type: String,
    /// Hex HMAC-SHA256 of the subject id.
    pub subject_hash: String,
    /// The OS user who ran the command.
    pub requested_by_os_user: Option<String>,
    /// Who asked for it, as given.
    pub requested_by: Option<String>,
    /// When it was recorded.
    pub requested_at: Timestamp,
    /// The last known overall status.
    pub overall_status: Option<String>,
    /// The last known per-destination statuses (JSON).
    pub destination_statuses: Option<serde_json::Value>,
    /// When the status was last read from Segment.
    pub last_checked_at: Option<Timestamp>,
}

impl Store {
    /// The hex HMAC-SHA256 of `subject_id` under this database's salt. Works read-only.
    pub fn subject_hash(&self, subject_id: &str) -> Result<String> {
        let salt: Option<Vec<u8>> = self
            .conn
            .query_row("SELECT salt FROM privacy_salt WHERE id = 1", [], |r| {
                r.get(0)
            })
            .optional()?;
        let salt = salt.ok_or_else(|| {
            StoreError::Snapshot("the database has no privacy salt (privacy_salt is empty)".into())
        })?;
        let mut mac = Hmac::<Sha256>::new_from_slice(&salt)
            .map_err(|e| StoreError::Snapshot(format!("unusable privacy salt: {e}")))?;
        mac.update(subject_id.as_bytes());
        Ok(mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect())
    }

    /// Records a request Segment accepted; the subject is stored only as its HMAC.
    pub fn record_privacy_request(&mut self, request: &NewPrivacyRequest<'_>) -> Result<()> {
        let hash = self.subject_hash(request.subject_id)?;
        self.conn.execute(
            "INSERT INTO privacy_requests (workspace_id, regulation_id, regulation_type,
                 subject_type, subject_hash, requested_by_os_user, requested_by, requested_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                request.workspace_id,
                request.regulation_id,
                request.regulation_type,
                request.subject_type,
                hash,
                request.requested_by_os_user,
                request.requested_by,
                super::now(),
            ],
        )?;
        Ok(())
    }

    /// Stores the status last read from Segment for a recorded request; false if the
    /// regulation was not recorded in this workspace.
    pub fn update_privacy_status(
        &mut self,
        workspace_id: i64,
        regulation_id: &str,
        overall_status: &str,
        destination_statuses: &serde_json::Value,
    ) -> Result<bool> {
        let updated = self.conn.execute(
            "UPDATE privacy_requests
             SET overall_status = ?3, destination_statuses = ?4, last_checked_at = ?5
             WHERE workspace_id = ?1 AND regulation_id = ?2",
            params![
                workspace_id,
                regulation_id,
                overall_status,
                destination_statuses.to_string(),
                super::now(),
            ],
        )?;
        Ok(updated > 0)
    }

    /// The recorded requests of a workspace, oldest first; only those of one subject hash when
    /// given.
    pub fn privacy_requests(
        &self,
        workspace_id: i64,
        subject_hash: Option<&str>,
    ) -> Result<Vec<PrivacyRequestRecord>> {
        let mut stmt = self.conn.prepare(
            "SELECT regulation_id, regulation_type, subject_type, subject_hash,
                    requested_by_os_user, requested_by, requested_at, overall_status,
                    destination_statuses, last_checked_at
             FROM privacy_requests
             WHERE workspace_id = ?1 AND (?2 IS NULL OR subject_hash = ?2)
             ORDER BY requested_at, id",
        )?;
        let rows = stmt.query_map(params![workspace_id, subject_hash], |r| {
            let statuses: Option<String> = r.get(8)?;
            Ok(PrivacyRequestRecord {
                regulation_id: r.get(0)?,
                regulation_type: r.get(1)?,
                subject_type: r.get(2)?,
                subject_hash: r.get(3)?,
                requested_by_os_user: r.get(4)?,
                requested_by: r.get(5)?,
                requested_at: time_col(r, 6)?,
                overall_status: r.get(7)?,
                destination_statuses: statuses.and_then(|s| serde_json::from_str(&s).ok()),
                last_checked_at: opt_time_col(r, 9)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_subject_is_stored_only_as_a_salted_hmac() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("a.db")).unwrap();
        let ws = store.workspace_id("default").unwrap();
        store
            .record_privacy_request(&NewPrivacyRequest {
                workspace_id: ws,
                regulation_id: "reg-1",
                regulation_type: "DELETE_ONLY",
                subject_type: "USER_ID",
                subject_id: "user-42",
                requested_by_os_user: Some("alice"),
                requested_by: None,
            })
            .unwrap();
        let hash = store.subject_hash("user-42").unwrap();
        assert_eq!(hash.len(), 64);
        let found = store.privacy_requests(ws, Some(&hash)).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].regulation_id, "reg-1");
        let other = store.subject_hash("user-43").unwrap();
        assert!(store.privacy_requests(ws, Some(&other)).unwrap().is_empty());

        // Another database has another salt: the same id hashes differently.
        let elsewhere = Store::open(&dir.path().join("b.db")).unwrap();
        assert_ne!(elsewhere.subject_hash("user-42").unwrap(), hash);

        assert!(
            store
                .update_privacy_status(ws, "reg-1", "RUNNING", &serde_json::json!([]))
                .unwrap()
        );
        assert!(
            !store
                .update_privacy_status(ws, "reg-2", "RUNNING", &serde_json::json!([]))
                .unwrap()
        );
        let row = &store.privacy_requests(ws, None).unwrap()[0];
        assert_eq!(row.overall_status.as_deref(), Some("RUNNING"));
        assert!(row.last_checked_at.is_some());
    }
}
