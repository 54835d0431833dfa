//! Randomized property checks: no change exactly when the canonical forms are equal, and
//! every path names the values it reports.

use serde_json::Map;

use super::*;
use crate::canonical::array_identities;

/// Keys for random objects: identity fields (so arrays of random objects are sometimes
/// keyed, sometimes mixed), ordinary keys and keys that need quoting in paths.
const KEYS: [&str; 14] = [
    "id", "roleId", "key", "email", "name", "value", "type", "labels", "settings", "a.b", "",
    "x y", "$", "q\"",
];
const STRINGS: [&str; 8] = ["a", "b", "prod", "", "a]b", " x", "Website", "r1"];

struct Gen(fastrand::Rng);

impl Gen {
    fn scalar(&mut self) -> Value {
        match self.0.u8(0..5) {
            0 => Value::Null,
            1 => json!(self.0.bool()),
            2 => json!(self.0.i64(-3..4)),
            _ => json!(STRINGS[self.0.usize(..STRINGS.len())]),
        }
    }

    fn value(&mut self, depth: u32) -> Value {
        if depth == 0 {
            return self.scalar();
        }
        match self.0.u8(0..10) {
            0..=1 => self.scalar(),
            2..=4 => self.object(depth),
            5..=7 => self.keyed_array(depth),
            8 => Value::Array((0..self.0.usize(0..4)).map(|_| self.scalar()).collect()),
            _ => Value::Array(
                (0..self.0.usize(0..4))
                    .map(|_| self.value(depth - 1))
                    .collect(),
            ),
        }
    }

    fn object(&mut self, depth: u32) -> Value {
        let mut m = Map::new();
        for _ in 0..self.0.usize(0..5) {
            m.insert(
                KEYS[self.0.usize(..KEYS.len())].to_string(),
                self.value(depth.saturating_sub(1)),
            );
        }
        Value::Object(m)
    }

    fn keyed_element(&mut self, field: &str, depth: u32) -> Value {
        let mut m = match self.object(depth) {
            Value::Object(m) => m,
            _ => unreachable!(),
        };
        // Identity pools small enough that duplicates (hence unkeyed arrays) happen now and then;
        // `7` and "7" collide too.
        let id = match self.0.u8(0..8) {
            0 => json!(self.0.u8(0..20)),
            1 => json!(["a]b", "", " x", "a@x.com", "7"][self.0.usize(..5)]),
            _ => json!(format!("u{}", self.0.u8(0..20))),
        };
        // Mostly one identity field per element, so that most generated arrays are keyed.
        if self.0.u8(0..8) != 0 {
            m.retain(|k, _| !crate::canonical::IDENTITY_FIELDS.contains(&k.as_str()));
        }
        m.insert(field.to_string(), id);
        Value::Object(m)
    }

    fn keyed_array(&mut self, depth: u32) -> Value {
        let field = ["id", "roleId", "key", "email"][self.0.usize(..4)];
        Value::Array(
            (0..self.0.usize(0..5))
                .map(|_| self.keyed_element(field, depth - 1))
                .collect(),
        )
    }

    /// Shuffles every identity-keyed array, at any depth: a change of order only.
    fn shuffle_keyed(&mut self, v: &mut Value) {
        match v {
            Value::Object(m) => m.values_mut().for_each(|v| self.shuffle_keyed(v)),
            Value::Array(items) => {
                items.iter_mut().for_each(|v| self.shuffle_keyed(v));
                if array_identities(items).is_some() {
                    self.0.shuffle(items);
                }
            }
            _ => {}
        }
    }

    /// One random edit somewhere in `v` (possibly a no-op, e.g. a scalar replaced by itself).
    fn mutate(&mut self, v: &mut Value, depth: u32) {
        let dig = self.0.u8(0..4) != 0;
        match v {
            Value::Object(m) if dig && !m.is_empty() => {
                let k = m.keys().nth(self.0.usize(..m.len())).unwrap().clone();
                self.mutate(m.get_mut(&k).unwrap(), depth.saturating_sub(1));
            }
            Value::Object(m) => {
                if self.0.bool() && !m.is_empty() {
                    let k = m.keys().nth(self.0.usize(..m.len())).unwrap().clone();
                    m.remove(&k);
                } else {
                    m.insert(
                        KEYS[self.0.usize(..KEYS.len())].to_string(),
                        self.value(depth),
                    );
                }
            }
            Value::Array(items) if dig && !items.is_empty() => {
                let i = self.0.usize(..items.len());
                self.mutate(&mut items[i], depth.saturating_sub(1));
            }
            Value::Array(items) => match self.0.u8(0..4) {
                0 if !items.is_empty() => {
                    items.remove(self.0.usize(..items.len()));
                }
                1 => self.0.shuffle(items),
                2 => {
                    let field = match array_identities(items) {
                        Some((field, _)) => field,
                        None => ["id", "roleId", "key", "email"][self.0.usize(..4)],
                    };
                    let e = self.keyed_element(field, depth);
                    items.push(e);
                }
                _ => items.push(self.value(depth)),
            },
            _ => *v = self.value(depth.min(2)),
        }
    }
}

enum Seg {
    Key(String),
    Select(String, String),
}

/// A reader for the documented path syntax, to check that every path names its values.
fn parse_path(path: &str) -> Vec<Seg> {
    fn json_string(s: &str) -> (String, usize) {
        let mut it = serde_json::Deserializer::from_str(s).into_iter::<String>();
        let v = it.next().unwrap().unwrap();
        (v, it.byte_offset())
    }
    if path == "$" {
        return Vec::new();
    }
    let mut segs = Vec::new();
    let mut rest = path;
    let mut first = true;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('[') {
            if r.starts_with('"') {
                let (k, n) = json_string(r);
                segs.push(Seg::Key(k));
                rest = r[n..].strip_prefix(']').unwrap();
            } else {
                let eq = r.find('=').unwrap();
                let field = r[..eq].to_string();
                let r = &r[eq + 1..];
                let (value, r) = if r.starts_with('"') {
                    let (v, n) = json_string(r);
                    (v, &r[n..])
                } else {
                    let end = r.find(']').unwrap();
                    (r[..end].to_string(), &r[end..])
                };
                segs.push(Seg::Select(field, value));
                rest = r.strip_prefix(']').unwrap();
            }
        } else {
            let r = if first {
                rest
            } else {
                rest.strip_prefix('.').unwrap()
            };
            let end = r.find(['.', '[']).unwrap_or(r.len());
            assert!(end > 0, "empty bare key in {path}");
            segs.push(Seg::Key(r[..end].to_string()));
            rest = &r[end..];
        }
        first = false;
    }
    segs
}

fn resolve<'a>(mut v: &'a Value, segs: &[Seg]) -> Option<&'a Value> {
    for seg in segs {
        v = match seg {
            Seg::Key(k) => v.as_object()?.get(k)?,
            Seg::Select(field, value) => v.as_array()?.iter().find(|e| {
                e.as_object()
                    .and_then(identity)
                    .is_some_and(|(f, id)| f == field && &id == value)
            })?,
        };
    }
    Some(v)
}

#[test]
fn random_values_properties() {
    let (mut equal, mut different, mut selected) = (0, 0, 0);
    for seed in 0..400 {
        let mut g = Gen(fastrand::Rng::with_seed(seed));
        let mut a = g.object(4);
        // Resource-like: one keyed array near the top, with keyed arrays inside.
        a["permissions"] = g.keyed_array(4);
        let ca = canonicalize(a.clone());

        assert!(field_changes(&a, &a).is_empty(), "seed {seed}");
        assert_eq!(canonicalize(ca.clone()), ca, "idempotent, seed {seed}");
        assert!(is_canonical(&ca), "seed {seed}");
        assert_eq!(is_canonical(&a), a == ca, "seed {seed}");

        let mut shuffled = a.clone();
        g.shuffle_keyed(&mut shuffled);
        assert_eq!(canonicalize(shuffled.clone()), ca, "shuffle, seed {seed}");
        assert!(field_changes(&a, &shuffled).is_empty(), "seed {seed}");

        let mut b = a.clone();
        for _ in 0..g.0.usize(0..3) {
            g.mutate(&mut b, 3);
        }
        g.shuffle_keyed(&mut b);
        let cb = canonicalize(b.clone());
        let changes = field_changes(&a, &b);
        assert_eq!(changes.is_empty(), ca == cb, "iff, seed {seed}: {a} vs {b}");
        if changes.is_empty() {
            equal += 1;
        } else {
            different += 1;
        }

        // Sorted, unique paths; every change names the values found at its path.
        assert!(
            changes.windows(2).all(|w| w[0].path < w[1].path),
            "seed {seed}"
        );
        for c in &changes {
            selected += usize::from(c.path.contains('='));
            assert!(c.old.is_some() || c.new.is_some());
            let segs = parse_path(&c.path);
            assert_eq!(
                resolve(&ca, &segs),
                c.old.as_ref(),
                "old at {}, seed {seed}",
                c.path
            );
            assert_eq!(
                resolve(&cb, &segs),
                c.new.as_ref(),
                "new at {}, seed {seed}",
                c.path
            );
        }

        // Symmetry: the reverse diff swaps old and new, at the same paths.
        let reverse: Vec<FieldChange> = field_changes(&b, &a)
            .into_iter()
            .map(|c| change(&c.path, c.new, c.old))
            .collect();
        assert_eq!(reverse, changes, "symmetry, seed {seed}");
    }
    // Both outcomes are exercised, and changes inside matched elements too.
    assert!(
        equal > 40 && different > 200 && selected > 60,
        "equal {equal}, different {different}, selected {selected}"
    );
}

#[test]
fn random_unrelated_values_iff() {
    let mut g = Gen(fastrand::Rng::with_seed(7));
    for _ in 0..300 {
        let a = g.value(3);
        let b = g.value(3);
        let same = canonicalize(a.clone()) == canonicalize(b.clone());
        assert_eq!(field_changes(&a, &b).is_empty(), same, "{a} vs {b}");
    }
}
