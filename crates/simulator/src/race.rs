//! Pagination races: a change lands between two page requests of one listing.
//!
//! Segment's cursors are offsets into the current list, so deleting an item on a page already
//! read shifts every later item one place forward (the client skips one), and inserting one
//! shifts them back (the client sees one twice). The race acts on the listing's first item,
//! which is on an earlier page whenever the requested page is not the first.

use serde::Serialize;

use super::faults::RaceAction;
use super::generate;
use super::mutations::{self, Mutation};
use super::server::Sim;

/// One pagination race the simulator ran, for tests to assert exactly what changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RaceRecord {
    /// The listing whose later page triggered it, e.g. `/users`.
    pub path: String,
    /// Deleted or inserted.
    pub action: RaceAction,
    /// The id of the item deleted or inserted.
    pub id: String,
    /// The mutation's one-line description, as the audit trail and logs show it.
    pub description: String,
}

/// Deletes the first item of the listing at `path`, or inserts a new one in front of it, as an
/// audited mutation. `None` if there is nothing to delete or nothing to attach an insert to.
pub(crate) fn run(
    sim: &mut Sim,
    action: RaceAction,
    path: &str,
    serial: usize,
) -> Option<RaceRecord> {
    let Sim { state, rng, audit } = sim;
    let (mutation, id_before) = match (path, action) {
        ("/users", RaceAction::Delete) => {
            let id = state.users.first()?.id.clone();
            (
                Mutation::RemoveUser {
                    user_id: id.clone(),
                },
                Some(id),
            )
        }
        ("/users", RaceAction::Insert) => {
            let email = (serial..)
                .map(|n| format!("race-{n}@{}", generate::COMPANY_DOMAIN))
                .find(|e| !state.users.iter().any(|u| u.email.eq_ignore_ascii_case(e)))?;
            (
                Mutation::AddUser {
                    email,
                    name: format!("Race Inserted {serial}"),
                    role_name: generate::MINIMAL_ACCESS.to_owned(),
                },
                None,
            )
        }
        ("/destinations", RaceAction::Delete) => {
            let id = state.destinations.first()?.id.clone();
            (
                Mutation::RemoveDestination {
                    destination_id: id.clone(),
                },
                Some(id),
            )
        }
        ("/destinations", RaceAction::Insert) => (
            Mutation::AddDestination {
                source_id: state.sources.first()?.id.clone(),
                name: format!("race-inserted-{serial}"),
            },
            None,
        ),
        (filters, RaceAction::Delete) if filters.starts_with("/destination/") => {
            let destination = filters
                .strip_prefix("/destination/")?
                .strip_suffix("/filters")?;
            let id = state
                .destinations
                .iter()
                .find(|d| d.id == destination)?
                .filters
                .first()?
                .id
                .clone();
            (
                Mutation::RemoveDestinationFilter {
                    filter_id: id.clone(),
                },
                Some(id),
            )
        }
        _ => return None,
    };
    let mut touched = Vec::new();
    let description = match mutations::apply(state, rng, mutation, &mut touched) {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(target: "segwatch::simulator", %path, error = %e, "pagination race did not apply");
            return None;
        }
    };
    audit.record(state, touched);
    // Mutations append; move the new item to the front so it lands on a page already read.
    let id = match (id_before, path) {
        (Some(id), _) => id,
        (None, "/users") => {
            let user = state.users.pop()?;
            let id = user.id.clone();
            state.users.insert(0, user);
            state.reindex_users();
            id
        }
        (None, _) => {
            let destination = state.destinations.pop()?;
            let id = destination.id.clone();
            state.destinations.insert(0, destination);
            state.reindex_flow();
            id
        }
    };
    tracing::info!(target: "segwatch::simulator", %path, action = action.spec(), %id, "pagination race: {description}");
    Some(RaceRecord {
        path: path.to_owned(),
        action,
        id,
        description,
    })
}
