//! The faults in force and which request each one fires on.

use super::{Fault, FaultKind};

/// The faults in force, with their per-fault counters.
#[derive(Debug, Default)]
pub(crate) struct FaultSet {
    entries: Vec<Entry>,
}

#[derive(Debug)]
struct Entry {
    fault: Fault,
    skipped: u32,
    fired: u32,
}

impl FaultSet {
    pub(crate) fn new(faults: Vec<Fault>) -> Self {
        let mut set = FaultSet::default();
        for f in faults {
            set.push(f);
        }
        set
    }

    pub(crate) fn push(&mut self, fault: Fault) {
        self.entries.push(Entry {
            fault,
            skipped: 0,
            fired: 0,
        });
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }

    /// Picks the fault for one request and updates counters.
    ///
    /// Faults are checked in order. A spent fault (fired `times` times) and an endless-cursor
    /// fault on a request that is not a paginated list never match. A matching fault still in
    /// its `skip` phase counts the request and lets later faults have a look; the first
    /// matching fault past its skip phase fires, and later faults do not see the request.
    pub(crate) fn select(&mut self, path: &str, query: &str, paginated: bool) -> Option<FaultKind> {
        self.select_page(path, query, paginated, false)
    }

    /// [`FaultSet::select`] knowing whether the request asks for a later page (cursor offset
    /// above 0): a pagination race only fires on a later page of its own listing, and
    /// malformed-item faults only on paginated lists.
    pub(crate) fn select_page(
        &mut self,
        path: &str,
        query: &str,
        paginated: bool,
        later_page: bool,
    ) -> Option<FaultKind> {
        for e in &mut self.entries {
            if e.fault.times.is_some_and(|t| e.fired >= t)
                || !e.fault.matches_path(path)
                || !e.fault.matches_query(query)
            {
                continue;
            }
            let applies = match e.fault.kind {
                FaultKind::EndlessCursor { .. }
                | FaultKind::BadItem { .. }
                | FaultKind::BadEvent { .. } => paginated,
                FaultKind::PaginationRace { .. } => {
                    paginated
                        && later_page
                        && e.fault.path.as_deref().map(|p| p.trim_end_matches('/')) == Some(path)
                }
                _ => true,
            };
            if !applies {
                continue;
            }
            if e.skipped < e.fault.skip {
                e.skipped += 1;
                continue;
            }
            e.fired += 1;
            return Some(e.fault.kind.clone());
        }
        None
    }
}
