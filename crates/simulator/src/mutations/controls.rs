//! The mutations of the data controls (destination filters, Actions subscriptions) and the
//! audit-trail entry each one leaves.

use fastrand::Rng;

use crate::SimError;
use crate::audit::Touched;
use crate::controls::{drop_fields_filter, mapping_subscription, new_reverse_etl_model};
use crate::state::WorkspaceState;

use super::{Mutation, not_found};

/// Whether `m` is a mutation of the data controls.
pub(super) fn is_control(m: &Mutation) -> bool {
    matches!(
        m,
        Mutation::AddDestinationFilter { .. }
            | Mutation::RemoveDestinationFilter { .. }
            | Mutation::SetDestinationFilterEnabled { .. }
            | Mutation::AddSubscription { .. }
            | Mutation::SetSubscriptionMapping { .. }
            | Mutation::SetSchemaSettings { .. }
            | Mutation::SetTransformation { .. }
            | Mutation::AddReverseEtlModel { .. }
            | Mutation::SetReverseEtlQuery { .. }
    )
}

/// Position of the destination holding filter `id`, and the filter's position in it.
fn find_filter(st: &WorkspaceState, id: &str) -> Result<(usize, usize), SimError> {
    st.destinations
        .iter()
        .enumerate()
        .find_map(|(d, dest)| dest.filters.iter().position(|f| f.id == id).map(|f| (d, f)))
        .ok_or_else(|| not_found("destination filter", id))
}

/// Applies a data-control mutation, pushing what it touched to `trail`.
pub(super) fn controls(
    st: &mut WorkspaceState,
    rng: &mut Rng,
    m: Mutation,
    trail: &mut Vec<Touched>,
) -> Result<String, SimError> {
    let destination = |st: &WorkspaceState, id: &str| {
        st.destination_position(id)
            .ok_or_else(|| not_found("destination", id))
    };
    Ok(match m {
        Mutation::AddDestinationFilter {
            destination_id,
            title,
            fields,
        } => {
            if fields.is_empty() {
                return Err(SimError::Invalid(
                    "a filter drops at least one field".into(),
                ));
            }
            let pos = destination(st, &destination_id)?;
            let d = &st.destinations[pos];
            let filter = drop_fields_filter(rng, d, &title, &fields);
            trail.push(Touched::new(
                "Destination Filter Created",
                "destination_filter",
                &filter.id,
                &filter.title,
            ));
            let name = d.name.clone();
            st.destinations[pos].filters.push(filter);
            format!("added filter \"{title}\" to destination \"{name}\"")
        }
        Mutation::RemoveDestinationFilter { filter_id } => {
            let (d, f) = find_filter(st, &filter_id)?;
            let removed = st.destinations[d].filters.remove(f);
            trail.push(Touched::new(
                "Destination Filter Deleted",
                "destination_filter",
                &removed.id,
                &removed.title,
            ));
            format!(
                "removed filter \"{}\" from destination \"{}\"",
                removed.title, st.destinations[d].name
            )
        }
        Mutation::SetDestinationFilterEnabled { filter_id, enabled } => {
            let (d, f) = find_filter(st, &filter_id)?;
            let filter = &mut st.destinations[d].filters[f];
            if std::mem::replace(&mut filter.enabled, enabled) == enabled {
                return Err(SimError::Conflict(format!(
                    "filter \"{}\" is already {}",
                    filter.title,
                    if enabled { "enabled" } else { "disabled" }
                )));
            }
            filter.updated_at = crate::generate::random_timestamp(rng, 2026);
            trail.push(Touched::new(
                "Destination Filter Modified",
                "destination_filter",
                &filter.id,
                &filter.title,
            ));
            let verb = if enabled { "enabled" } else { "disabled" };
            format!("{verb} filter \"{}\"", filter.title)
        }
        Mutation::AddSubscription {
            destination_id,
            name,
            field,
            settings,
        } => {
            if field.trim().is_empty() {
                return Err(SimError::Invalid("a mapped field must not be empty".into()));
            }
            let pos = destination(st, &destination_id)?;
            let d = &st.destinations[pos];
            let sub = mapping_subscription(rng, d, &name, &field, settings);
            trail.push(Touched::new(
                "Destination Subscription Created",
                "destination_subscription",
                &sub.id,
                &sub.name,
            ));
            let dest_name = d.name.clone();
            st.destinations[pos].subscriptions.push(sub);
            format!("subscribed destination \"{dest_name}\" to \"{name}\", mapping `{field}`")
        }
        Mutation::SetSchemaSettings {
            source_id,
            allow_unplanned_events,
            allow_unplanned_traits,
        } => {
            let pos = st
                .source_position(&source_id)
                .ok_or_else(|| not_found("source", &source_id))?;
            let source = &mut st.sources[pos];
            let before = source.schema_settings.clone();
            let s = &mut source.schema_settings;
            if let Some(allow) = allow_unplanned_events {
                s.track.allow_unplanned_events = allow;
                s.track.allow_unplanned_event_properties = allow;
            }
            if let Some(allow) = allow_unplanned_traits {
                s.identify.allow_unplanned_traits = allow;
                s.group.allow_unplanned_traits = allow;
            }
            if *s == before {
                return Err(SimError::Conflict(format!(
                    "source \"{}\" already has these schema settings",
                    source.name
                )));
            }
            trail.push(Touched::new(
                "Source Settings Modified",
                "source",
                &source.id,
                &source.name,
            ));
            format!("changed the schema settings of source \"{}\"", source.name)
        }
        Mutation::SetTransformation {
            transformation_id,
            drop,
            enabled,
            stop_hashing,
        } => {
            let t = st
                .transformations
                .iter_mut()
                .find(|t| t.id == transformation_id)
                .ok_or_else(|| not_found("transformation", &transformation_id))?;
            let before = t.clone();
            if let Some(drop) = drop {
                t.drop = Some(drop);
            }
            if let Some(enabled) = enabled {
                t.enabled = enabled;
            }
            if stop_hashing {
                t.hash_properties_configuration = None;
            }
            if *t == before {
                return Err(SimError::Conflict(format!(
                    "transformation \"{}\" is already so",
                    t.name
                )));
            }
            trail.push(Touched::new(
                "Transformation Modified",
                "transformation",
                &t.id,
                &t.name,
            ));
            format!("changed transformation \"{}\"", t.name)
        }
        Mutation::AddReverseEtlModel {
            source_id,
            name,
            query,
        } => {
            if query.trim().is_empty() {
                return Err(SimError::Invalid("a model needs a query".into()));
            }
            if st.source(&source_id).is_none() {
                return Err(not_found("source", &source_id));
            }
            let model = new_reverse_etl_model(rng, &source_id, &name, &query);
            trail.push(Touched::new(
                "Reverse ETL Model Created",
                "reverse_etl_model",
                &model.id,
                &model.name,
            ));
            st.reverse_etl_models.push(model);
            format!("created reverse ETL model \"{name}\"")
        }
        Mutation::SetReverseEtlQuery { model_id, query } => {
            let m = st
                .reverse_etl_models
                .iter_mut()
                .find(|m| m.id == model_id)
                .ok_or_else(|| not_found("reverse ETL model", &model_id))?;
            if m.query == query {
                return Err(SimError::Conflict(format!(
                    "reverse ETL model \"{}\" already runs that query",
                    m.name
                )));
            }
            m.query = query;
            trail.push(Touched::new(
                "Reverse ETL Model Modified",
                "reverse_etl_model",
                &m.id,
                &m.name,
            ));
            format!("changed the query of reverse ETL model \"{}\"", m.name)
        }
        Mutation::SetSubscriptionMapping {
            subscription_id,
            key,
            path,
        } => {
            let sub = st
                .destinations
                .iter_mut()
                .flat_map(|d| d.subscriptions.iter_mut())
                .find(|s| s.id == subscription_id)
                .ok_or_else(|| not_found("destination subscription", &subscription_id))?;
            let new = path.as_ref().map(|p| serde_json::json!({ "@path": p }));
            if sub.settings.get(&key) == new.as_ref() {
                return Err(SimError::Conflict(format!(
                    "subscription \"{}\" already maps `{key}` so",
                    sub.name
                )));
            }
            match new {
                Some(v) => sub.settings.insert(key.clone(), v),
                None => sub.settings.remove(&key),
            };
            trail.push(Touched::new(
                "Destination Subscription Updated",
                "destination_subscription",
                &sub.id,
                &sub.name,
            ));
            match path {
                Some(p) => format!("mapped `{key}` from `{p}` in subscription \"{}\"", sub.name),
                None => format!("stopped mapping `{key}` in subscription \"{}\"", sub.name),
            }
        }
        other => unreachable!("not a data-control mutation: {other:?}"),
    })
}
