//! Reading Segment's audit trail (`GET /audit-events`); the events, the mark and attribution
//! are `segwatch_core::trail`'s.

use chrono::{DateTime, Utc};

use segwatch_core::model::{QUARANTINE_KEPT_PER_LISTING, Quarantined, ResourceKind};
use segwatch_core::redact::SecretPolicy;
use segwatch_core::trail::{AuditEvent, PATH, event_from, format_time, identify};

use crate::segment::{SegmentClient, SegmentError};

/// Why the trail could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TrailError {
    /// The API could not be read.
    #[error(
        "cannot read the audit trail: {0} (if the workspace's plan has no audit trail, set [collect] audit_events = false)"
    )]
    Api(SegmentError),
    /// Most events of the read could not be placed in time or identified: the API changed
    /// shape (a few such events are quarantined instead).
    #[error(
        "cannot read the audit trail: {bad} of the {total} events from GET {PATH} could not be \
         read (first: event {problem}); the API's response has changed shape, so this poll \
         stops rather than guess"
    )]
    Shape {
        /// Events that could not be read.
        bad: usize,
        /// Events listed.
        total: usize,
        /// What is wrong with the first of them.
        problem: String,
    },
}

/// Every event with a timestamp in `[start, end]`, as the API lists them, and the events that
/// could not be read (no id, no timestamp, a timestamp that is not a date, not an object),
/// quarantined so one odd event does not stop the watch. The mark moves on with the readable
/// events; a quarantined event read again by the next window is recognised by its content and
/// stored once.
pub async fn read(
    client: &SegmentClient,
    policy: &SecretPolicy,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<(Vec<AuditEvent>, Vec<Quarantined>), TrailError> {
    let query = vec![
        ("startTime".to_string(), format_time(start)),
        ("endTime".to_string(), format_time(end)),
    ];
    let mut pages = client.pages_with_query(PATH, query, "events");
    let mut out = Vec::new();
    let mut bad = Vec::new();
    let mut unreadable = 0;
    let mut index = 0;
    while let Some(page) = pages.next_page().await.map_err(TrailError::Api)? {
        for item in page {
            match identify(&item) {
                Ok((id, at)) => out.push(event_from(item, id, at, policy)),
                Err(problem) if bad.len() >= QUARANTINE_KEPT_PER_LISTING => {
                    unreadable += 1;
                    tracing::debug!(index, %problem, "unreadable audit event counted, not kept");
                }
                Err(problem) => {
                    unreadable += 1;
                    let mut raw = item;
                    policy.redact(ResourceKind::AuditEvent, &mut raw);
                    bad.push(Quarantined::new(
                        ResourceKind::AuditEvent,
                        PATH,
                        index,
                        format!("event {index} {problem}"),
                        &raw,
                    ));
                }
            }
            index += 1;
        }
    }
    if unreadable >= 2 && unreadable * 2 > index {
        return Err(TrailError::Shape {
            bad: unreadable,
            total: index,
            problem: bad[0].reason.clone(),
        });
    }
    if !bad.is_empty() {
        tracing::warn!(
            unreadable,
            kept = bad.len(),
            first = %bad[0].reason,
            "some audit events could not be read; kept in quarantine, the others are stored"
        );
    }
    Ok((out, bad))
}
