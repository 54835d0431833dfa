//! The field-level walk: two JSON values compared in step, identity-keyed arrays matched by
//! identity, each difference recorded at its [path](super#paths).

use std::borrow::Cow;
use std::collections::HashMap;

use serde_json::{Map, Value};

use super::FieldChange;
use super::paths::{push_key, push_selector};
use crate::canonical::{array_identities, canonicalize};

/// Lists the differences between `before` and `after`, sorted by path.
///
/// Identity-keyed arrays are matched by identity at any depth, so the inputs need not be
/// canonical; values in the result are canonical.
pub fn field_changes(before: &Value, after: &Value) -> Vec<FieldChange> {
    let mut walker = Walker {
        path: String::new(),
        out: Vec::new(),
    };
    walker.walk(before, after);
    let mut out = walker.out;
    // Paths are unique (object keys and identities are), so this order is total.
    out.sort_unstable_by(|a, b| a.path.cmp(&b.path));
    out
}

/// Walks two values in step, collecting changes at the current path.
struct Walker {
    /// The path of the values being compared; empty at the root.
    path: String,
    out: Vec<FieldChange>,
}

impl Walker {
    fn walk(&mut self, a: &Value, b: &Value) {
        match (a, b) {
            (Value::Object(ma), Value::Object(mb)) => self.walk_objects(ma, mb),
            (Value::Array(xa), Value::Array(xb)) => {
                // Cheap and common: most arrays of a modified resource are untouched.
                if xa == xb {
                    return;
                }
                match keyed_pair(xa, xb) {
                    Some((field, ida, idb)) => self.walk_keyed(field, xa, &ida, xb, &idb),
                    None if arrays_equivalent(xa, xb) => {}
                    None => self.record(Some(a), Some(b)),
                }
            }
            _ if a == b => {}
            _ => self.record(Some(a), Some(b)),
        }
    }

    fn walk_objects(&mut self, ma: &Map<String, Value>, mb: &Map<String, Value>) {
        let len = self.path.len();
        // Lookups rather than a merge of the sorted key sequences, so that correctness does not
        // depend on `Map` iterating in key order.
        for (k, va) in ma {
            push_key(&mut self.path, k);
            match mb.get(k) {
                Some(vb) => self.walk(va, vb),
                None => self.record(Some(va), None),
            }
            self.path.truncate(len);
        }
        for (k, vb) in mb {
            if !ma.contains_key(k) {
                push_key(&mut self.path, k);
                self.record(None, Some(vb));
                self.path.truncate(len);
            }
        }
    }

    fn walk_keyed(
        &mut self,
        field: &str,
        xa: &[Value],
        ida: &[Cow<'_, str>],
        xb: &[Value],
        idb: &[Cow<'_, str>],
    ) {
        let len = self.path.len();
        let index: HashMap<&str, usize> = ida
            .iter()
            .enumerate()
            .map(|(i, id)| (id.as_ref(), i))
            .collect();
        let mut matched = vec![false; xa.len()];
        for (vb, id) in xb.iter().zip(idb) {
            push_selector(&mut self.path, field, id);
            match index.get(id.as_ref()) {
                Some(&i) => {
                    matched[i] = true;
                    self.walk(&xa[i], vb);
                }
                None => self.record(None, Some(vb)),
            }
            self.path.truncate(len);
        }
        for ((va, id), _) in xa.iter().zip(ida).zip(&matched).filter(|(_, m)| !**m) {
            push_selector(&mut self.path, field, id);
            self.record(Some(va), None);
            self.path.truncate(len);
        }
    }

    fn record(&mut self, old: Option<&Value>, new: Option<&Value>) {
        let path = if self.path.is_empty() {
            "$".to_string()
        } else {
            self.path.clone()
        };
        self.out.push(FieldChange {
            path,
            old: old.map(|v| canonicalize(v.clone())),
            new: new.map(|v| canonicalize(v.clone())),
            api_drift: false,
        });
    }
}

/// Identity values of an array's elements, in order.
type Ids<'a> = Vec<Cow<'a, str>>;

/// The identities of two arrays that are to be matched element by element by identity: both
/// identity-keyed by the same field, or one of them empty and the other identity-keyed (a first
/// element granted or a last one revoked). `None` otherwise.
fn keyed_pair<'a, 'b>(
    xa: &'a [Value],
    xb: &'b [Value],
) -> Option<(&'static str, Ids<'a>, Ids<'b>)> {
    let ka = if xa.is_empty() {
        None
    } else {
        Some(array_identities(xa)?)
    };
    let kb = if xb.is_empty() {
        None
    } else {
        Some(array_identities(xb)?)
    };
    match (ka, kb) {
        (Some((fa, ia)), Some((fb, ib))) if fa == fb => Some((fa, ia, ib)),
        (Some((f, ia)), None) => Some((f, ia, Vec::new())),
        (None, Some((f, ib))) => Some((f, Vec::new(), ib)),
        _ => None,
    }
}

/// Whether two values have the same canonical form, without building it.
fn equivalent(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(ma), Value::Object(mb)) => {
            ma.len() == mb.len()
                && ma
                    .iter()
                    .all(|(k, va)| mb.get(k).is_some_and(|vb| equivalent(va, vb)))
        }
        (Value::Array(xa), Value::Array(xb)) => xa == xb || arrays_equivalent(xa, xb),
        _ => a == b,
    }
}

/// [`equivalent`] for arrays: identity-keyed arrays as sets by identity, others in order.
fn arrays_equivalent(xa: &[Value], xb: &[Value]) -> bool {
    if xa.len() != xb.len() {
        return false;
    }
    match keyed_pair(xa, xb) {
        Some((_, ida, idb)) => {
            // Same length and unique identities: every `b` identity found means a bijection.
            let index: HashMap<&str, &Value> = ida.iter().map(|id| id.as_ref()).zip(xa).collect();
            idb.iter()
                .zip(xb)
                .all(|(id, vb)| index.get(id.as_ref()).is_some_and(|va| equivalent(va, vb)))
        }
        None => xa.iter().zip(xb).all(|(va, vb)| equivalent(va, vb)),
    }
}
