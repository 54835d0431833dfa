//! Reordering the workspace's lists without changing their content.

use fastrand::Rng;

use crate::state::WorkspaceState;

/// Reorders every list and inner array without changing content.
///
/// Write keys keep their order (the first key is the primary one). Top-level lists of two or
/// more items always end up in a different order, so tests can rely on a visible reordering.
pub(crate) fn shuffle(st: &mut WorkspaceState, rng: &mut Rng) {
    let shuffle_permissions = |rng: &mut Rng, permissions: &mut Vec<crate::state::Permission>| {
        rng.shuffle(permissions);
        for p in permissions {
            rng.shuffle(&mut p.resources);
            for r in &mut p.resources {
                if let Some(labels) = &mut r.labels {
                    rng.shuffle(labels);
                }
            }
            if let Some(labels) = &mut p.labels {
                rng.shuffle(labels);
            }
        }
    };
    reorder(rng, &mut st.roles);
    reorder(rng, &mut st.users);
    for u in &mut st.users {
        shuffle_permissions(rng, &mut u.permissions);
    }
    reorder(rng, &mut st.groups);
    for g in &mut st.groups {
        shuffle_permissions(rng, &mut g.permissions);
        rng.shuffle(&mut g.members);
        rng.shuffle(&mut g.invites);
    }
    reorder(rng, &mut st.invites);
    reorder(rng, &mut st.sources);
    for s in &mut st.sources {
        rng.shuffle(&mut s.labels);
        rng.shuffle(&mut s.metadata.categories);
    }
    reorder(rng, &mut st.labels);
    reorder(rng, &mut st.destinations);
    reorder(rng, &mut st.warehouses);
    for w in &mut st.warehouses {
        rng.shuffle(&mut w.connected_source_ids);
    }
    reorder(rng, &mut st.functions);
    reorder(rng, &mut st.tracking_plans);
    for t in &mut st.tracking_plans {
        rng.shuffle(&mut t.source_ids);
    }
    st.reindex();
}

/// Shuffles `items` into an order different from the current one (when it has 2+ items).
fn reorder<T>(rng: &mut Rng, items: &mut Vec<T>) {
    let n = items.len();
    if n < 2 {
        return;
    }
    let mut order: Vec<usize> = (0..n).collect();
    rng.shuffle(&mut order);
    if order.iter().enumerate().all(|(i, &j)| i == j) {
        order.rotate_left(1);
    }
    let mut slots: Vec<Option<T>> = items.drain(..).map(Some).collect();
    items.extend(
        order
            .into_iter()
            .map(|i| slots[i].take().expect("a permutation takes each slot once")),
    );
}
